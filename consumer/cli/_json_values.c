/* The values a mapping reads from one JSON line, read straight from its bytes: what
 * `orjson.loads` then reading the mapping's paths gives, without building the event's tree.
 *
 * Why: `capi-consumer map` spent about half of its instructions per line building every
 * object of the ~1.8 KB line (orjson) and then walking the dicts for the ~40 paths a mapping
 * reads. This reader builds only the values at those paths (and the item list's items as
 * tuples of their values), and only checks the rest.
 *
 * It may decline a line, never misread one: it returns None for anything it does not take
 * (invalid JSON, a top-level value other than an object, a key with an escape, a key given
 * twice on a path, an integer of more than 18 digits, a float that overflows, a lone surrogate
 * escape, nesting deeper than MAX_DEPTH), and the caller then maps the line the reference way
 * (orjson.loads and the path readers), which decides. So whatever it accepts must be valid
 * JSON read exactly as orjson reads it; tests and `make fuzz` hold it to that.
 *
 * Paths come as a tree: a node is a tuple of entries (key: str, slot: int or -1, items: bool,
 * child: node or None); `items` marks the slot of the item list, whose object entries are read
 * as tuples of the item paths' values (the item tree). A value off the paths' objects (a
 * path through a string, a list) reads None, as `transforms.paths.get_path` has it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* orjson's own limit is 1024; deeper lines are left to it. */
#define MAX_DEPTH 256
/* Keys of one node are told apart by a 64-bit mask (a key given twice declines the line). */
#define MAX_ENTRIES 64

typedef struct Node Node;

typedef struct {
    char *key; /* UTF-8, owned */
    Py_ssize_t key_len;
    Py_ssize_t slot; /* -1: no value stored for this key itself */
    int items;
    Node *child; /* NULL: no path goes deeper */
    int next;    /* the next entry of the same hash, or -1 */
} Entry;

#define TABLE_SIZE 64

struct Node {
    Py_ssize_t count;
    Entry *entries;
    int heads[TABLE_SIZE]; /* by key_hash: the first entry, or -1 */
};

/* Keys are looked up per key of the line: a hash of what is at hand, not of every byte. */
static inline unsigned int
key_hash(const unsigned char *key, Py_ssize_t length)
{
    if (length == 0) {
        return 0;
    }
    return (unsigned int)(length * 7 + key[0] + key[length - 1] * 3) & (TABLE_SIZE - 1);
}

typedef struct {
    const unsigned char *pos;
    const unsigned char *end;
} Cursor;

/* Outcomes of the parsing functions: OK, or DECLINE (no exception set: the line is left to
 * orjson), or FAILED (an exception is set: out of memory). */
enum { OK = 0, DECLINE = -1, FAILED = -2 };

/* Bytes that end the plain run of a string: the quote, the backslash, control characters, and
 * anything not ASCII (checked as UTF-8). */
static unsigned char STRING_STOP[256];

static void
init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        STRING_STOP[c] = (c < 0x20 || c == '"' || c == '\\' || c >= 0x80);
    }
}

/* The first byte at or after p that ends a string's plain run (STRING_STOP), or end; eight
 * bytes at a time. A byte below 0x20 or equal to '"' or '\\' is found by the classic test for
 * a zero byte (its lowest hit is exact: a false one only follows a true one), a byte from
 * 0x80 by its high bit. */
static inline const unsigned char *
plain_run(const unsigned char *p, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
        uint64_t stops = (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
                          ((x - ones * 0x20) & ~x) | x) & highs;
        if (stops != 0) {
            return p + (__builtin_ctzll(stops) >> 3);
        }
        p += 8;
    }
    while (p < end && !STRING_STOP[*p]) {
        p++;
    }
    return p;
}

static inline void
skip_ws(Cursor *cur)
{
    while (cur->pos < cur->end &&
           (*cur->pos == ' ' || *cur->pos == '\n' || *cur->pos == '\r' || *cur->pos == '\t')) {
        cur->pos++;
    }
}

/* One UTF-8 sequence starting at p (its lead byte >= 0x80): its length, or 0 when invalid
 * (overlong, a surrogate, above U+10FFFF, truncated). */
static inline Py_ssize_t
utf8_sequence(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF) {
        return (end - p >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) {
            return 0;
        }
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0)) {
            return 0; /* overlong, or a surrogate */
        }
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80) {
            return 0;
        }
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90)) {
            return 0; /* overlong, or above U+10FFFF */
        }
        return 4;
    }
    return 0;
}

static inline int
hex4(const unsigned char *p, unsigned int *out)
{
    unsigned int value = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        value <<= 4;
        if (c >= '0' && c <= '9') {
            value |= (unsigned int)(c - '0');
        }
        else if (c >= 'a' && c <= 'f') {
            value |= (unsigned int)(c - 'a' + 10);
        }
        else if (c >= 'A' && c <= 'F') {
            value |= (unsigned int)(c - 'A' + 10);
        }
        else {
            return -1;
        }
    }
    *out = value;
    return 0;
}

/* An escape after its backslash (cur->pos at the letter): its code point, advancing past it;
 * -1 when invalid or a lone surrogate. A surrogate pair gives one code point. */
static long
read_escape(Cursor *cur)
{
    const unsigned char *p = cur->pos;
    if (p >= cur->end) {
        return -1;
    }
    switch (*p) {
    case '"': cur->pos++; return '"';
    case '\\': cur->pos++; return '\\';
    case '/': cur->pos++; return '/';
    case 'b': cur->pos++; return '\b';
    case 'f': cur->pos++; return '\f';
    case 'n': cur->pos++; return '\n';
    case 'r': cur->pos++; return '\r';
    case 't': cur->pos++; return '\t';
    case 'u': break;
    default: return -1;
    }
    unsigned int high, low;
    if (cur->end - p < 5 || hex4(p + 1, &high) < 0) {
        return -1;
    }
    if (high < 0xD800 || high > 0xDFFF) {
        cur->pos = p + 5;
        return (long)high;
    }
    if (high > 0xDBFF || cur->end - p < 11 || p[5] != '\\' || p[6] != 'u' ||
        hex4(p + 7, &low) < 0 || low < 0xDC00 || low > 0xDFFF) {
        return -1;
    }
    cur->pos = p + 11;
    return 0x10000 + (((long)high - 0xD800) << 10) + ((long)low - 0xDC00);
}

/* A string's body (cur->pos just past the opening quote) checked, cur->pos left past the
 * closing quote. `*escaped`: whether it holds an escape; `*ascii`: whether it is all ASCII. */
static int
scan_string(Cursor *cur, int *escaped, int *ascii)
{
    const unsigned char *p = cur->pos, *end = cur->end;
    *escaped = 0;
    *ascii = 1;
    for (;;) {
        p = plain_run(p, end);
        if (p >= end) {
            return DECLINE;
        }
        unsigned char c = *p;
        if (c == '"') {
            cur->pos = p + 1;
            return OK;
        }
        if (c == '\\') {
            cur->pos = p + 1;
            if (read_escape(cur) < 0) {
                return DECLINE;
            }
            p = cur->pos;
            *escaped = 1;
            continue;
        }
        if (c < 0x20) {
            return DECLINE;
        }
        Py_ssize_t length = utf8_sequence(p, end);
        if (length == 0) {
            return DECLINE;
        }
        *ascii = 0;
        p += length;
    }
}

static void
put_utf8(unsigned char **out, long code)
{
    unsigned char *o = *out;
    if (code < 0x80) {
        *o++ = (unsigned char)code;
    }
    else if (code < 0x800) {
        *o++ = (unsigned char)(0xC0 | (code >> 6));
        *o++ = (unsigned char)(0x80 | (code & 0x3F));
    }
    else if (code < 0x10000) {
        *o++ = (unsigned char)(0xE0 | (code >> 12));
        *o++ = (unsigned char)(0x80 | ((code >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (code & 0x3F));
    }
    else {
        *o++ = (unsigned char)(0xF0 | (code >> 18));
        *o++ = (unsigned char)(0x80 | ((code >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((code >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (code & 0x3F));
    }
    *out = o;
}

/* The string at cur->pos (just past its opening quote) as a str, in *result. */
static int
read_string(Cursor *cur, PyObject **result)
{
    const unsigned char *start = cur->pos;
    int escaped, ascii;
    int status = scan_string(cur, &escaped, &ascii);
    if (status != OK) {
        return status;
    }
    Py_ssize_t length = (cur->pos - 1) - start;
    if (!escaped) {
        if (ascii) {
            *result = PyUnicode_New(length, 127);
            if (*result == NULL) {
                return FAILED;
            }
            memcpy(PyUnicode_DATA(*result), start, (size_t)length);
            return OK;
        }
        *result = PyUnicode_DecodeUTF8((const char *)start, length, "strict");
        return *result == NULL ? FAILED : OK;
    }
    /* Unescaped, the text is never longer than its source. */
    unsigned char small[256];
    unsigned char *buffer = length <= (Py_ssize_t)sizeof small ? small : PyMem_Malloc((size_t)length);
    if (buffer == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    unsigned char *out = buffer;
    Cursor inner = {start, cur->pos - 1};
    while (inner.pos < inner.end) {
        if (*inner.pos == '\\') {
            inner.pos++;
            put_utf8(&out, read_escape(&inner)); /* checked by scan_string */
        }
        else {
            *out++ = *inner.pos++;
        }
    }
    *result = PyUnicode_DecodeUTF8((const char *)buffer, out - buffer, "strict");
    if (buffer != small) {
        PyMem_Free(buffer);
    }
    return *result == NULL ? FAILED : OK;
}

/* A number checked against JSON's grammar; built into *result when result is not NULL. */
static int
read_number(Cursor *cur, PyObject **result)
{
    const unsigned char *start = cur->pos, *p = start, *end = cur->end;
    int is_float = 0;
    if (p < end && *p == '-') {
        p++;
    }
    const unsigned char *digits = p;
    if (p < end && *p == '0') {
        p++;
    }
    else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    else {
        return DECLINE;
    }
    Py_ssize_t integer_digits = p - digits, fraction_digits = 0;
    if (p < end && *p == '.') {
        is_float = 1;
        p++;
        if (p >= end || *p < '0' || *p > '9') {
            return DECLINE;
        }
        const unsigned char *fraction = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        fraction_digits = p - fraction;
    }
    int has_exponent = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_float = has_exponent = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= end || *p < '0' || *p > '9') {
            return DECLINE;
        }
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    cur->pos = p;
    /* Checked even when only skipped: orjson refuses a number out of its range anywhere. */
    if (!is_float) {
        if (integer_digits > 18) {
            return DECLINE; /* beyond what a long long surely holds: orjson decides */
        }
        if (result == NULL) {
            return OK;
        }
        long long value = 0;
        for (const unsigned char *d = digits; d < p; d++) {
            value = value * 10 + (*d - '0');
        }
        *result = PyLong_FromLongLong(*start == '-' ? -value : value);
        return *result == NULL ? FAILED : OK;
    }
    if (result == NULL && !has_exponent && integer_digits <= 308) {
        return OK; /* below DBL_MAX (1.8e308): it cannot overflow */
    }
    if (!has_exponent && integer_digits + fraction_digits <= 15) {
        /* The usual price: its digits and the power of ten are both exact doubles (below
         * 2**53 and 1e22), so one division, correctly rounded, is strtod's answer. */
        static const double powers[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                        1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
        long long mantissa = 0;
        for (const unsigned char *d = digits; d < p; d++) {
            if (*d != '.') {
                mantissa = mantissa * 10 + (*d - '0');
            }
        }
        double value = (double)mantissa / powers[fraction_digits];
        *result = PyFloat_FromDouble(*start == '-' ? -value : value);
        return *result == NULL ? FAILED : OK;
    }
    char text[64];
    Py_ssize_t length = p - start;
    if (length >= (Py_ssize_t)sizeof text) {
        return DECLINE;
    }
    memcpy(text, start, (size_t)length);
    text[length] = '\0';
    char *stop;
    double value = PyOS_string_to_double(text, &stop, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        return FAILED;
    }
    if (stop != text + length || Py_IS_INFINITY(value)) {
        return DECLINE;
    }
    if (result == NULL) {
        return OK;
    }
    *result = PyFloat_FromDouble(value);
    return *result == NULL ? FAILED : OK;
}

static int
read_literal(Cursor *cur, const char *word, Py_ssize_t length)
{
    if (cur->end - cur->pos < length || memcmp(cur->pos, word, (size_t)length) != 0) {
        return DECLINE;
    }
    cur->pos += length;
    return OK;
}


typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Node *event;
    Py_ssize_t slot_count;
    Node *item;
    Py_ssize_t item_slot_count;
} Projector;

static int read_value(const Projector *self, Cursor *cur, PyObject **result, int depth);

static inline int
expect(Cursor *cur, unsigned char c)
{
    skip_ws(cur);
    if (cur->pos < cur->end && *cur->pos == c) {
        cur->pos++;
        return OK;
    }
    return DECLINE;
}

static PyObject *
none_tuple(Py_ssize_t size)
{
    PyObject *tuple = PyTuple_New(size);
    if (tuple != NULL) {
        for (Py_ssize_t i = 0; i < size; i++) {
            PyTuple_SET_ITEM(tuple, i, Py_NewRef(Py_None));
        }
    }
    return tuple;
}

static inline void
store(PyObject *slots, Py_ssize_t slot, PyObject *value)
{
    PyObject *old = PyTuple_GET_ITEM(slots, slot);
    PyTuple_SET_ITEM(slots, slot, value);
    Py_DECREF(old);
}

static int read_array(const Projector *self, Cursor *cur, PyObject **result, int depth,
                      Py_ssize_t item_slots);

/* After a member or an element: ANOTHER when a ',' announces one more, else the status of the
 * closing `closer`. */
#define ANOTHER 1
static inline int
after_item(Cursor *cur, unsigned char closer)
{
    skip_ws(cur);
    if (cur->pos < cur->end && *cur->pos == ',') {
        cur->pos++;
        return ANOTHER;
    }
    return expect(cur, closer);
}

/* A container being built (NULL when only checking) handed over in *result when `status` is OK,
 * else released. */
static inline int
hand_over(PyObject *built, int status, PyObject **result)
{
    if (built != NULL) {
        if (status == OK) {
            *result = built;
        }
        else {
            Py_DECREF(built);
        }
    }
    return status;
}

/* An object (cur->pos just past its '{'). Three ways: built into *result (result not NULL);
 * read into `slots` along `node` (node not NULL); or only checked. */
static int
read_object(const Projector *self, Cursor *cur, const Node *node, PyObject *slots,
            PyObject **result, int depth)
{
    if (depth >= MAX_DEPTH) {
        return DECLINE;
    }
    PyObject *dict = NULL;
    if (result != NULL && (dict = PyDict_New()) == NULL) {
        return FAILED;
    }
    uint64_t seen = 0;
    int status = OK;
    skip_ws(cur);
    if (cur->pos < cur->end && *cur->pos == '}') {
        cur->pos++;
        goto done;
    }
    for (;;) {
        if ((status = expect(cur, '"')) != OK) {
            goto done;
        }
        PyObject *key = NULL;
        const Entry *entry = NULL;
        if (dict != NULL) {
            status = read_string(cur, &key);
        }
        else {
            const unsigned char *start = cur->pos;
            int escaped, ascii;
            status = scan_string(cur, &escaped, &ascii);
            if (status == OK && node != NULL) {
                if (escaped) {
                    status = DECLINE; /* an escaped key could spell a path's key */
                }
                Py_ssize_t length = (cur->pos - 1) - start;
                int i = status == OK ? node->heads[key_hash(start, length)] : -1;
                for (; i >= 0; i = node->entries[i].next) {
                    const Entry *candidate = &node->entries[i];
                    if (candidate->key_len == length &&
                        memcmp(candidate->key, start, (size_t)length) == 0) {
                        if (seen & ((uint64_t)1 << i)) {
                            status = DECLINE; /* given twice: orjson keeps the last */
                        }
                        seen |= (uint64_t)1 << i;
                        entry = candidate;
                        break;
                    }
                }
            }
        }
        if (status == OK) {
            status = expect(cur, ':');
        }
        if (status != OK) {
            Py_XDECREF(key);
            goto done;
        }
        skip_ws(cur);
        if (dict != NULL) {
            PyObject *value = NULL;
            status = read_value(self, cur, &value, depth + 1);
            if (status == OK) {
                status = PyDict_SetItem(dict, key, value) < 0 ? FAILED : OK;
                Py_DECREF(value);
            }
            Py_DECREF(key);
        }
        else if (entry == NULL) {
            status = read_value(self, cur, NULL, depth + 1);
        }
        else if (entry->child != NULL) {
            if (cur->pos < cur->end && *cur->pos == '{') {
                cur->pos++;
                status = read_object(self, cur, entry->child, slots, NULL, depth + 1);
            }
            else {
                status = read_value(self, cur, NULL, depth + 1);
            }
        }
        else {
            PyObject *value = NULL;
            if (entry->items && cur->pos < cur->end && *cur->pos == '[') {
                status = read_array(self, cur, &value, depth + 1, self->item_slot_count);
            }
            else {
                status = read_value(self, cur, &value, depth + 1);
            }
            if (status == OK) {
                store(slots, entry->slot, value);
            }
        }
        if (status != OK || (status = after_item(cur, '}')) != ANOTHER) {
            goto done;
        }
    }
done:
    return hand_over(dict, status, result);
}

/* An array (cur->pos at its '['): built into *result unless result is NULL; with `item_slots`
 * >= 0 (the item list), its objects are read as tuples of the item paths' values. */
static int
read_array(const Projector *self, Cursor *cur, PyObject **result, int depth,
           Py_ssize_t item_slots)
{
    if (depth >= MAX_DEPTH) {
        return DECLINE;
    }
    cur->pos++;
    PyObject *list = NULL;
    if (result != NULL && (list = PyList_New(0)) == NULL) {
        return FAILED;
    }
    int status = OK;
    skip_ws(cur);
    if (cur->pos < cur->end && *cur->pos == ']') {
        cur->pos++;
        goto done;
    }
    for (;;) {
        skip_ws(cur);
        PyObject *item = NULL;
        if (item_slots >= 0 && cur->pos < cur->end && *cur->pos == '{') {
            cur->pos++;
            if ((item = none_tuple(item_slots)) == NULL) {
                status = FAILED;
            }
            else if ((status = read_object(self, cur, self->item, item, NULL, depth + 1)) != OK) {
                Py_CLEAR(item);
            }
        }
        else {
            status = read_value(self, cur, list != NULL ? &item : NULL, depth + 1);
        }
        if (status == OK && list != NULL) {
            status = PyList_Append(list, item) < 0 ? FAILED : OK;
            Py_DECREF(item);
        }
        if (status != OK || (status = after_item(cur, ']')) != ANOTHER) {
            goto done;
        }
    }
done:
    return hand_over(list, status, result);
}

/* Any value at cur->pos: checked, and built into *result unless result is NULL. */
static int
read_value(const Projector *self, Cursor *cur, PyObject **result, int depth)
{
    if (cur->pos >= cur->end) {
        return DECLINE;
    }
    unsigned char c = *cur->pos;
    switch (c) {
    case '"':
        cur->pos++;
        if (result != NULL) {
            return read_string(cur, result);
        }
        int escaped, ascii;
        return scan_string(cur, &escaped, &ascii);
    case '{':
        cur->pos++;
        return read_object(self, cur, NULL, NULL, result, depth);
    case '[':
        return read_array(self, cur, result, depth, -1);
    case 't':
    case 'f':
    case 'n': {
        const char *word = c == 't' ? "true" : c == 'f' ? "false" : "null";
        PyObject *value = c == 't' ? Py_True : c == 'f' ? Py_False : Py_None;
        if (read_literal(cur, word, (Py_ssize_t)strlen(word)) != OK) {
            return DECLINE;
        }
        if (result != NULL) {
            *result = Py_NewRef(value);
        }
        return OK;
    }
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            return read_number(cur, result);
        }
        return DECLINE;
    }
}

static PyObject *
projector_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                     PyObject *kwnames)
{
    Projector *self = (Projector *)callable;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "projector(line: bytes)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Cursor cur = {(const unsigned char *)view.buf, (const unsigned char *)view.buf + view.len};
    PyObject *slots = NULL;
    int status = expect(&cur, '{');
    if (status == OK) {
        slots = none_tuple(self->slot_count);
        status = slots == NULL ? FAILED : read_object(self, &cur, self->event, slots, NULL, 0);
    }
    if (status == OK) {
        skip_ws(&cur);
        if (cur.pos != cur.end) {
            status = DECLINE;
        }
    }
    PyBuffer_Release(&view);
    if (status == OK) {
        return slots;
    }
    Py_XDECREF(slots);
    if (status == FAILED) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
            return NULL; /* out of memory */
        }
        PyErr_Clear(); /* a decode error: orjson decides */
    }
    Py_RETURN_NONE;
}

static void
free_node(Node *node)
{
    if (node == NULL) {
        return;
    }
    for (Py_ssize_t i = 0; i < node->count; i++) {
        PyMem_Free(node->entries[i].key);
        free_node(node->entries[i].child);
    }
    PyMem_Free(node->entries);
    PyMem_Free(node);
}

/* A node from its Python form (see the top of this file), its slots below `slot_count`. */
static Node *
build_node(PyObject *spec, Py_ssize_t slot_count, int depth)
{
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) > MAX_ENTRIES || depth >= MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError,
                        "a node is a tuple of at most 64 entries, nested at most 256 deep");
        return NULL;
    }
    Node *node = PyMem_Calloc(1, sizeof(Node));
    Py_ssize_t count = PyTuple_GET_SIZE(spec);
    if (node == NULL || (count && (node->entries = PyMem_Calloc((size_t)count, sizeof(Entry))) == NULL)) {
        PyMem_Free(node);
        PyErr_NoMemory();
        return NULL;
    }
    for (int h = 0; h < TABLE_SIZE; h++) {
        node->heads[h] = -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key, *child;
        Py_ssize_t slot;
        int items;
        Entry *entry = &node->entries[i];
        node->count = i + 1;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spec, i), "UnpO", &key, &slot, &items, &child)) {
            goto error;
        }
        Py_ssize_t length;
        const char *utf8 = PyUnicode_AsUTF8AndSize(key, &length);
        if (utf8 == NULL || (entry->key = PyMem_Malloc((size_t)length + 1)) == NULL) {
            goto error;
        }
        memcpy(entry->key, utf8, (size_t)length + 1);
        entry->key_len = length;
        /* Chained at the end, so that a lookup meets entries in their order. */
        unsigned int hash = key_hash((const unsigned char *)utf8, length);
        entry->next = -1;
        int *link = &node->heads[hash];
        while (*link >= 0) {
            link = &node->entries[*link].next;
        }
        *link = (int)i;
        entry->slot = slot;
        entry->items = items;
        if (slot < -1 || slot >= slot_count || (child != Py_None) == (slot >= 0) ||
            (items && slot < 0)) {
            PyErr_SetString(PyExc_ValueError,
                            "an entry has a slot in range or a child node, not both");
            goto error;
        }
        if (child != Py_None && (entry->child = build_node(child, slot_count, depth + 1)) == NULL) {
            goto error;
        }
    }
    return node;
error:
    if (!PyErr_Occurred()) {
        PyErr_NoMemory();
    }
    free_node(node);
    return NULL;
}

static PyObject *
projector_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"event", "slot_count", "item", "item_slot_count", NULL};
    PyObject *event, *item;
    Py_ssize_t slot_count, item_slot_count;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnOn", keywords, &event, &slot_count, &item,
                                     &item_slot_count)) {
        return NULL;
    }
    if (slot_count < 0 || item_slot_count < 0) {
        PyErr_SetString(PyExc_ValueError, "slot counts are not negative");
        return NULL;
    }
    Projector *self = (Projector *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->slot_count = slot_count;
    self->item_slot_count = item_slot_count;
    self->vectorcall = projector_vectorcall;
    if ((self->event = build_node(event, slot_count, 0)) == NULL ||
        (self->item = build_node(item, item_slot_count, 0)) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
projector_dealloc(Projector *self)
{
    free_node(self->event);
    free_node(self->item);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject ProjectorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "consumer.cli._json_values.Projector",
    .tp_basicsize = sizeof(Projector),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Projector(event, slot_count, item, item_slot_count): projector(line) -> tuple | None",
    .tp_new = projector_new,
    .tp_dealloc = (destructor)projector_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Projector, vectorcall),
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "consumer.cli._json_values",
    .m_doc = "A mapping's values read straight from a JSON line (see consumer/cli/json_values.py).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__json_values(void)
{
    init_tables();
    if (PyType_Ready(&ProjectorType) < 0) {
        return NULL;
    }
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(mod, "Projector", (PyObject *)&ProjectorType) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
