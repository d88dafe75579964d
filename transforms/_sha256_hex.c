/* `sha256_hex(text)`: SHA-256 of a str's UTF-8 bytes as 64 lowercase hex digits, in one call;
   `sha256_hex_many(texts)`: the same for a list, an event's identities at once.

   hashlib takes an encode to bytes, a hash object and `hexdigest`: three allocations and two
   method calls around a ~3k-instruction compression, for five identities per event. Here: the
   str's own UTF-8 buffer (no copy for ASCII text), the padded block on the stack, one str
   allocated. The compression, chosen at import from what the CPU has:
   - `sha_ni`: the x86-64 SHA extensions, one message at a time (~10x cheaper than portable C);
   - `avx2`: without them, 8 one-block messages (up to 55 bytes, every usual identity) side by
     side in the lanes of 256-bit registers, for about the instructions of one (`many` only);
   - `portable`: plain C.

   The digest is FIPS 180-4 SHA-256; tests/transforms/test_sha256_hex.py holds every path equal
   to hashlib's for the test vectors and for any text hypothesis generates. Optional like the Avro
   reader: without a C compiler, identity.py hashes with hashlib. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86_PATHS 1
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static inline uint32_t load_be32(const uint8_t *p) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t word;
    memcpy(&word, p, sizeof word);
    return __builtin_bswap32(word);
#else
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
#endif
}

/* One round with the eight working variables named in place (no shuffling between rounds). */
#define ROUND(a, b, c, d, e, f, g, h, t)                                                         \
    do {                                                                                       \
        uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + (g ^ (e & (f ^ g))) + K[t] \
                      + w[t];                                                                  \
        d += t1;                                                                               \
        h = t1 + (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) | (c & (a | b)));         \
    } while (0)

static void compress_portable(uint32_t state[8], const uint8_t *blocks, size_t count) {
    for (; count; count--, blocks += 64) {
        uint32_t w[64];
        for (int t = 0; t < 16; t++) w[t] = load_be32(blocks + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 64; t += 8) {
            ROUND(a, b, c, d, e, f, g, h, t);
            ROUND(h, a, b, c, d, e, f, g, t + 1);
            ROUND(g, h, a, b, c, d, e, f, t + 2);
            ROUND(f, g, h, a, b, c, d, e, t + 3);
            ROUND(e, f, g, h, a, b, c, d, t + 4);
            ROUND(d, e, f, g, h, a, b, c, t + 5);
            ROUND(c, d, e, f, g, h, a, b, t + 6);
            ROUND(b, c, d, e, f, g, h, a, t + 7);
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
    }
}

#ifdef HAVE_X86_PATHS
/* The SHA extensions' round structure (Intel's white paper "New Instructions Supporting the
   Secure Hash Algorithm on Intel Architecture Processors"): state as ABEF/CDGH, four rounds per
   sha256rnds2 pair, the message schedule with sha256msg1/msg2. */
#define SHA_NI_TARGET __attribute__((target("sha,sse4.1")))

static SHA_NI_TARGET void compress_sha_ni(uint32_t state[8], const uint8_t *blocks, size_t count) {
    const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    for (; count; count--, blocks += 64) {
        __m128i abef_saved = abef, cdgh_saved = cdgh;
        __m128i m[4]; /* the schedule's words w[4i..4i+3], four groups in turn */
        for (int i = 0; i < 4; i++)
            m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 16 * i)), byte_swap);
        for (int i = 0; i < 16; i++) {
            __m128i current = m[i & 3];
            __m128i wk = _mm_add_epi32(current, _mm_loadu_si128((const __m128i *)&K[4 * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
            if (i >= 3 && i <= 14) { /* w[4i+4..4i+7], from msg1's half and w[4i-3..4i+3] */
                __m128i next = _mm_add_epi32(m[(i + 1) & 3], _mm_alignr_epi8(current, m[(i - 1) & 3], 4));
                m[(i + 1) & 3] = _mm_sha256msg2_epu32(next, current);
            }
            if (i >= 1 && i <= 12) m[(i - 1) & 3] = _mm_sha256msg1_epu32(m[(i - 1) & 3], current);
        }
        abef = _mm_add_epi32(abef, abef_saved);
        cdgh = _mm_add_epi32(cdgh, cdgh_saved);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
}

static int cpu_has_sha_ni(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_SSE4_1) || !(ecx & bit_SSSE3))
        return 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    return (ebx >> 29) & 1;
}

/* Eight one-block messages at once: lane i of each register holds message i's word. */
#define AVX2_TARGET __attribute__((target("avx2")))
#define ROTR8(x, n) _mm256_or_si256(_mm256_srli_epi32((x), (n)), _mm256_slli_epi32((x), 32 - (n)))

static AVX2_TARGET void compress8_avx2(const uint32_t words[16][8], uint32_t digests[8][8]) {
    /* The whole schedule first: the rounds then keep the eight state registers and their
       temporaries in the sixteen ymm registers, reading w[t] from memory. */
    __m256i w[64];
    for (int t = 0; t < 16; t++) w[t] = _mm256_loadu_si256((const __m256i *)words[t]);
    for (int t = 16; t < 64; t++) {
        __m256i w15 = w[t - 15], w2 = w[t - 2];
        __m256i s0 = _mm256_xor_si256(_mm256_xor_si256(ROTR8(w15, 7), ROTR8(w15, 18)),
                                      _mm256_srli_epi32(w15, 3));
        __m256i s1 = _mm256_xor_si256(_mm256_xor_si256(ROTR8(w2, 17), ROTR8(w2, 19)),
                                      _mm256_srli_epi32(w2, 10));
        w[t] = _mm256_add_epi32(_mm256_add_epi32(w[t - 16], s0), _mm256_add_epi32(w[t - 7], s1));
    }
    __m256i a = _mm256_set1_epi32((int)H0[0]), b = _mm256_set1_epi32((int)H0[1]);
    __m256i c = _mm256_set1_epi32((int)H0[2]), d = _mm256_set1_epi32((int)H0[3]);
    __m256i e = _mm256_set1_epi32((int)H0[4]), f = _mm256_set1_epi32((int)H0[5]);
    __m256i g = _mm256_set1_epi32((int)H0[6]), h = _mm256_set1_epi32((int)H0[7]);
    for (int t = 0; t < 64; t++) {
        __m256i sigma1 = _mm256_xor_si256(_mm256_xor_si256(ROTR8(e, 6), ROTR8(e, 11)), ROTR8(e, 25));
        __m256i choice = _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g)));
        __m256i t1 = _mm256_add_epi32(_mm256_add_epi32(h, sigma1),
                                      _mm256_add_epi32(choice, _mm256_add_epi32(
                                          _mm256_set1_epi32((int)K[t]), w[t])));
        __m256i sigma0 = _mm256_xor_si256(_mm256_xor_si256(ROTR8(a, 2), ROTR8(a, 13)), ROTR8(a, 22));
        __m256i majority = _mm256_or_si256(_mm256_and_si256(a, b),
                                           _mm256_and_si256(c, _mm256_or_si256(a, b)));
        h = g;
        g = f;
        f = e;
        e = _mm256_add_epi32(d, t1);
        d = c;
        c = b;
        b = a;
        a = _mm256_add_epi32(t1, _mm256_add_epi32(sigma0, majority));
    }
    __m256i state[8] = {a, b, c, d, e, f, g, h};
    for (int i = 0; i < 8; i++) {
        uint32_t lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, _mm256_add_epi32(state[i], _mm256_set1_epi32((int)H0[i])));
        for (int lane = 0; lane < 8; lane++) digests[lane][i] = lanes[lane];
    }
}

static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#endif

typedef void (*compress_fn)(uint32_t state[8], const uint8_t *blocks, size_t count);
/* Set once, at import: the best single-message compression, and whether 8-lane AVX2 is there. */
static compress_fn best_compress = compress_portable;
static int have_avx2 = 0;

enum { PATH_BEST, PATH_PORTABLE, PATH_AVX2, PATH_SHA_NI };

/* The last one or two blocks of a message whose first `whole` blocks are compressed: the tail,
   0x80, zeros, and the length in bits. Returns how many blocks (1, or 2 past 55 tail bytes). */
static size_t pad_tail(const uint8_t *data, size_t length, uint8_t last[128]) {
    size_t tail = length % 64;
    size_t size = tail < 56 ? 64 : 128;
    memset(last, 0, size);
    memcpy(last, data + (length - tail), tail);
    last[tail] = 0x80;
    uint64_t bits = (uint64_t)length * 8;
    for (int i = 0; i < 8; i++) last[size - 1 - i] = (uint8_t)(bits >> (8 * i));
    return size / 64;
}

static void sha256(compress_fn compress, const uint8_t *data, size_t length, uint32_t state[8]) {
    memcpy(state, H0, 8 * sizeof(uint32_t));
    if (length >= 64) compress(state, data, length / 64);
    uint8_t last[128];
    compress(state, last, pad_tail(data, length, last));
}

/* "00".."ff": the digest is written a byte (two digits) at a time. */
static char hex_pairs[256][2];

/* The digest (eight state words) as a new str of 64 lowercase hex digits. */
static PyObject *hex_of(const uint32_t state[8]) {
    PyObject *hex = PyUnicode_New(64, 127);
    if (hex == NULL) return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(hex);
    for (int i = 0; i < 8; i++, out += 8) {
        memcpy(out, hex_pairs[state[i] >> 24], 2);
        memcpy(out + 2, hex_pairs[(state[i] >> 16) & 255], 2);
        memcpy(out + 4, hex_pairs[(state[i] >> 8) & 255], 2);
        memcpy(out + 6, hex_pairs[state[i] & 255], 2);
    }
    return hex;
}

/* The UTF-8 bytes of `text`: NULL with no error set for lone surrogates (no digest), NULL with
   an error for anything else. */
static const char *utf8_of(PyObject *text, Py_ssize_t *length) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "sha256_hex() takes a str, not %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, length);
    if (utf8 == NULL && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        PyErr_Clear(); /* lone surrogates cannot be UTF-8: no digest, as identity.sha256_hex */
    }
    return utf8;
}

static PyObject *hex_digest(compress_fn compress, PyObject *text) {
    Py_ssize_t length;
    const char *utf8 = utf8_of(text, &length);
    if (utf8 == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    uint32_t state[8];
    sha256(compress, (const uint8_t *)utf8, (size_t)length, state);
    return hex_of(state);
}

static compress_fn compress_of(int path) {
#ifdef HAVE_X86_PATHS
    if (path == PATH_SHA_NI) return compress_sha_ni;
#endif
    return path == PATH_BEST ? best_compress : compress_portable;
}

#ifdef HAVE_X86_PATHS
/* Compresses the `used` lanes of `words` (the others zeroed) and stores each digest at its
   item of `digests`. */
static int flush_lanes(uint32_t words[16][8], int used, const Py_ssize_t items[8], PyObject *digests) {
    uint32_t lane_digests[8][8];
    for (int lane = used; lane < 8; lane++)
        for (int t = 0; t < 16; t++) words[t][lane] = 0;
    compress8_avx2((const uint32_t(*)[8])words, lane_digests);
    for (int lane = 0; lane < used; lane++) {
        PyObject *hex = hex_of(lane_digests[lane]);
        if (hex == NULL) return -1;
        PyList_SET_ITEM(digests, items[lane], hex);
    }
    return 0;
}
#endif

/* The digests of a list of str (None for lone surrogates), by `path`. */
static PyObject *many(PyObject *texts, int path) {
    if (!PyList_Check(texts)) {
        PyErr_Format(PyExc_TypeError, "sha256_hex_many() takes a list, not %.100s",
                     Py_TYPE(texts)->tp_name);
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(texts);
    PyObject *digests = PyList_New(count);
    if (digests == NULL) return NULL;
    compress_fn compress = compress_of(path);
#ifdef HAVE_X86_PATHS
    /* Up to 8 messages of one block each, compressed together; the others one at a time. The
       SHA extensions, where present, are cheaper still one message at a time. */
    int lanes = path == PATH_AVX2 || (path == PATH_BEST && compress == compress_portable && have_avx2);
    uint32_t words[16][8];
    Py_ssize_t lane_items[8];
    int used = 0;
#endif
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = PyList_GET_ITEM(texts, i);
        Py_ssize_t length;
        const char *utf8 = utf8_of(text, &length);
        if (utf8 == NULL) {
            if (PyErr_Occurred()) goto fail;
            PyList_SET_ITEM(digests, i, Py_NewRef(Py_None));
            continue;
        }
#ifdef HAVE_X86_PATHS
        if (lanes && length <= 55) {
            /* pad_tail's one-block case, written out: its general tail (memcpy at an offset,
               8 length bytes) cost ~80 instructions more per message. */
            uint8_t block[64] = {0};
            memcpy(block, utf8, (size_t)length);
            block[length] = 0x80;
            block[62] = (uint8_t)(length >> 5);
            block[63] = (uint8_t)(length << 3);
            for (int t = 0; t < 16; t++) words[t][used] = load_be32(block + 4 * t);
            lane_items[used++] = i;
            if (used == 8) {
                if (flush_lanes(words, used, lane_items, digests) < 0) goto fail;
                used = 0;
            }
            continue;
        }
#endif
        uint32_t state[8];
        sha256(compress, (const uint8_t *)utf8, (size_t)length, state);
        PyObject *hex = hex_of(state);
        if (hex == NULL) goto fail;
        PyList_SET_ITEM(digests, i, hex);
    }
#ifdef HAVE_X86_PATHS
    if (used && flush_lanes(words, used, lane_items, digests) < 0) goto fail;
#endif
    return digests;
fail:
    /* Items not set yet are NULL, which list deallocation skips. */
    Py_DECREF(digests);
    return NULL;
}

static PyObject *sha256_hex(PyObject *module, PyObject *text) {
    return hex_digest(best_compress, text);
}

static PyObject *sha256_hex_many(PyObject *module, PyObject *texts) {
    return many(texts, PATH_BEST);
}

static PyObject *sha256_hex_many_by(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "sha256_hex_many_by(texts, implementation: str)");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(args[1]);
    if (name == NULL) return NULL;
    int path = strcmp(name, "portable") == 0 ? PATH_PORTABLE
               : strcmp(name, "avx2") == 0 && have_avx2 ? PATH_AVX2
               : strcmp(name, "sha_ni") == 0 && best_compress != compress_portable ? PATH_SHA_NI
                                                                                  : -1;
    if (path < 0) {
        PyErr_Format(PyExc_ValueError, "%s is not an implementation this CPU has", name);
        return NULL;
    }
    return many(args[0], path);
}

static PyObject *implementations(PyObject *module, PyObject *unused) {
    if (have_avx2 && best_compress != compress_portable)
        return Py_BuildValue("[sss]", "portable", "avx2", "sha_ni");
    if (have_avx2) return Py_BuildValue("[ss]", "portable", "avx2");
    if (best_compress != compress_portable) return Py_BuildValue("[ss]", "portable", "sha_ni");
    return Py_BuildValue("[s]", "portable");
}

static PyMethodDef methods[] = {
    {"sha256_hex", sha256_hex, METH_O,
     "SHA-256 of the str's UTF-8 bytes, 64 lowercase hex digits; None for lone surrogates."},
    {"sha256_hex_many", sha256_hex_many, METH_O, "sha256_hex of each str of a list, as a list."},
    {"sha256_hex_many_by", (PyCFunction)(void (*)(void))sha256_hex_many_by, METH_FASTCALL,
     "sha256_hex_many with one implementation (tests hold each to hashlib)."},
    {"implementations", implementations, METH_NOARGS,
     "The compressions this CPU can run: 'portable', 'avx2', 'sha_ni'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "transforms._sha256_hex", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit__sha256_hex(void) {
    static const char digits[] = "0123456789abcdef";
    for (int byte = 0; byte < 256; byte++) {
        hex_pairs[byte][0] = digits[byte >> 4];
        hex_pairs[byte][1] = digits[byte & 15];
    }
#ifdef HAVE_X86_PATHS
    if (cpu_has_sha_ni()) best_compress = compress_sha_ni;
    have_avx2 = cpu_has_avx2();
#endif
    return PyModule_Create(&module_definition);
}
