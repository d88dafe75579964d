/* `sha256_hex(text)`: SHA-256 of a str's UTF-8 bytes as 64 lowercase hex digits, in one call.

   identity.sha256_hex does this with hashlib: encode to bytes, a hash object, `hexdigest`, three
   allocations and two method calls around a ~3k-instruction compression, for five identities
   per event. Here: the str's own UTF-8 buffer (no copy for ASCII text), one compression per
   64-byte block on the stack, one str allocated. Where the CPU has the SHA extensions (x86-64
   `sha_ni`, detected at import) the compression uses them, several times cheaper again.

   The digest is FIPS 180-4 SHA-256; tests/transforms/test_sha256_hex.py holds it equal to
   hashlib's for the test vectors and for any text hypothesis generates. Optional like the Avro
   reader: without a C compiler, identity.py hashes with hashlib. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI_PATH 1
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
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
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

#ifdef HAVE_SHA_NI_PATH
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
#endif

typedef void (*compress_fn)(uint32_t state[8], const uint8_t *blocks, size_t count);
static compress_fn best_compress = compress_portable; /* set once, at import */

static void sha256(compress_fn compress, const uint8_t *data, size_t length, uint8_t digest[32]) {
    uint32_t state[8];
    memcpy(state, H0, sizeof state);
    size_t whole = length / 64;
    if (whole) compress(state, data, whole);
    /* The tail, 0x80, zeros, and the length in bits: one block, or two past 55 tail bytes. */
    uint8_t last[128] = {0};
    size_t tail = length - whole * 64;
    memcpy(last, data + whole * 64, tail);
    last[tail] = 0x80;
    size_t size = tail < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)length * 8;
    for (int i = 0; i < 8; i++) last[size - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(state, last, size / 64);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)state[i];
    }
}

static PyObject *hex_digest(compress_fn compress, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "sha256_hex() takes a str, not %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &length);
    if (utf8 == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return NULL;
        PyErr_Clear(); /* lone surrogates cannot be UTF-8: no digest, as identity.sha256_hex */
        Py_RETURN_NONE;
    }
    uint8_t digest[32];
    sha256(compress, (const uint8_t *)utf8, (size_t)length, digest);
    PyObject *hex = PyUnicode_New(64, 127);
    if (hex == NULL) return NULL;
    static const char digits[] = "0123456789abcdef";
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(hex);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = (Py_UCS1)digits[digest[i] >> 4];
        out[2 * i + 1] = (Py_UCS1)digits[digest[i] & 15];
    }
    return hex;
}

static PyObject *sha256_hex(PyObject *module, PyObject *text) {
    return hex_digest(best_compress, text);
}

static PyObject *sha256_hex_portable(PyObject *module, PyObject *text) {
    return hex_digest(compress_portable, text);
}

static PyObject *implementation(PyObject *module, PyObject *unused) {
    return PyUnicode_FromString(best_compress == compress_portable ? "portable" : "sha_ni");
}

static PyMethodDef methods[] = {
    {"sha256_hex", sha256_hex, METH_O,
     "SHA-256 of the str's UTF-8 bytes, 64 lowercase hex digits; None for lone surrogates."},
    {"implementation", implementation, METH_NOARGS,
     "'sha_ni' when the CPU's SHA extensions compress, else 'portable'."},
    {"sha256_hex_portable", sha256_hex_portable, METH_O,
     "sha256_hex without the SHA extensions (tests hold both paths to hashlib)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "transforms._sha256_hex", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit__sha256_hex(void) {
#ifdef HAVE_SHA_NI_PATH
    if (cpu_has_sha_ni()) best_compress = compress_sha_ni;
#endif
    return PyModule_Create(&module_definition);
}
