/* A compiled Avro binary reader: one schema "program" (nested tuples built by
 * consumer/avro/programs.py), message bytes in, the record as plain Python objects out.
 *
 * Why: decoding was the largest cost per event (fastavro ~65 us, cavro ~35 us on the
 * project's ~1 KB events). This reader does one pass over the bytes with no per-field
 * Python calls. It produces exactly fastavro's output (checked at start on sample records
 * before it is used), and it never trusts the input: every length, count, varint and union
 * index is bounds-checked, so malformed bytes raise ValueError (or UnicodeDecodeError),
 * never read out of bounds or allocate without bound.
 *
 * Program nodes (tuples; the first item is the opcode):
 *   (NULL) (BOOLEAN) (LONG) (FLOAT) (DOUBLE) (BYTES) (STRING)
 *   (RECORD, names: tuple[str], fields: tuple[node])
 *   (ENUM, symbols: tuple[str])
 *   (ARRAY, item: node, item_min_bytes: int, item_charge: int)
 *   (MAP, value: node, entry_min_bytes: int, entry_charge: int)
 *   (UNION, branches: tuple[node])
 *   (FIXED, size: int)
 *   (PROJECT, slot_count: int, target) -> a tuple of slot_count values (None unless stored)
 * Projection targets say what becomes of each part of a projected record:
 *   (SKIP, node)                     read and checked, no object made
 *   (STORE, slot: int, node)         decoded into the slot of the enclosing PROJECT
 *   (INTO_RECORD, targets: tuple)    one target per field
 *   (INTO_UNION, targets: tuple)     one target per branch
 * Schemas are not recursive (decoding.py falls back to fastavro for recursive ones), so
 * the C recursion depth is bounded by the schema's nesting.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
    OP_NULL = 0,
    OP_BOOLEAN = 1,
    OP_LONG = 2,
    OP_FLOAT = 3,
    OP_DOUBLE = 4,
    OP_BYTES = 5,
    OP_STRING = 6,
    OP_RECORD = 7,
    OP_ENUM = 8,
    OP_ARRAY = 9,
    OP_MAP = 10,
    OP_UNION = 11,
    OP_FIXED = 12,
    OP_PROJECT = 13,
    OP_SKIP = 14,
    OP_STORE = 15,
    OP_INTO_RECORD = 16,
    OP_INTO_UNION = 17,
};

/* Items that build more objects than they take bytes (null, records of nulls: zero-width, or
 * a boolean and a hundred nulls) would let a small message build a huge tree. Each such item
 * charges the objects it builds (its "charge", computed by decoding.py; 0 for the others,
 * which the bytes left bound) against this budget per message. decoding.py's pre-scan for the
 * other readers uses the same number (_AMPLIFIED_OBJECTS). */
#define MAX_AMPLIFIED_OBJECTS 250000

typedef struct {
    const unsigned char *pos;
    const unsigned char *end;
    /* Per message, not per array: arrays of arrays of nulls would multiply a per-array bound
     * (each inner array costs 4 bytes of input). */
    Py_ssize_t objects_left;
} Cursor;

/* With keep == 0 the datum is only read and checked, and the result is None. */
static PyObject *decode_node(PyObject *node, Cursor *cur, int keep);
static int project_into(PyObject *target, Cursor *cur, PyObject *slots);

static PyObject *
malformed(const char *what)
{
    PyErr_SetString(PyExc_ValueError, what);
    return NULL;
}

static int
read_long_slow(Cursor *cur, int64_t *out)
{
    uint64_t value = 0;
    int shift = 0;
    while (cur->pos < cur->end) {
        unsigned char byte = *cur->pos++;
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
            return 0;
        }
        shift += 7;
        if (shift > 63) {
            malformed("varint longer than 10 bytes");
            return -1;
        }
    }
    malformed("truncated varint");
    return -1;
}

/* Union indexes, most lengths and most counts are one byte: that case without the loop. */
static inline int
read_long(Cursor *cur, int64_t *out)
{
    if (cur->pos < cur->end && *cur->pos < 0x80) {
        unsigned char byte = *cur->pos++;
        *out = (int64_t)(byte >> 1) ^ -(int64_t)(byte & 1);
        return 0;
    }
    return read_long_slow(cur, out);
}

static int
read_length(Cursor *cur, Py_ssize_t *out)
{
    int64_t length;
    if (read_long(cur, &length) < 0) {
        return -1;
    }
    if (length < 0) {
        malformed("negative length");
        return -1;
    }
    if (length > cur->end - cur->pos) {
        malformed("length past the end of the input");
        return -1;
    }
    *out = (Py_ssize_t)length;
    return 0;
}

/* A small non-negative int of a checked program (opcodes, slots, sizes), read without
 * PyLong_AsLong: that call was ~3 % of all the instructions of a run. */
static inline Py_ssize_t
small_int(PyObject *number)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (PyUnstable_Long_IsCompact((PyLongObject *)number)) {
        return PyUnstable_Long_CompactValue((PyLongObject *)number);
    }
#else
    switch (Py_SIZE(number)) {
    case 0:
        return 0;
    case 1:
        return (Py_ssize_t)((PyLongObject *)number)->ob_digit[0];
    default:
        break;
    }
#endif
    return PyLong_AsSsize_t(number);
}

static inline long
opcode(PyObject *node)
{
    return (long)small_int(PyTuple_GET_ITEM(node, 0));
}

/* A dict sized for its fields up front: no resizes while it is filled. */
static inline PyObject *
new_dict(Py_ssize_t size)
{
#if PY_VERSION_HEX < 0x030E0000
    return _PyDict_NewPresized(size);
#else
    (void)size;
    return PyDict_New();
#endif
}

static PyObject *
decode_record(PyObject *node, Cursor *cur, int keep)
{
    PyObject *names = PyTuple_GET_ITEM(node, 1);
    PyObject *fields = PyTuple_GET_ITEM(node, 2);
    Py_ssize_t count = PyTuple_GET_SIZE(fields);
    if (!keep) {
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *value = decode_node(PyTuple_GET_ITEM(fields, i), cur, 0);
            if (value == NULL) {
                return NULL;
            }
            Py_DECREF(value);
        }
        Py_RETURN_NONE;
    }
    PyObject *record = new_dict(count);
    if (record == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = decode_node(PyTuple_GET_ITEM(fields, i), cur, 1);
        if (value == NULL || PyDict_SetItem(record, PyTuple_GET_ITEM(names, i), value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(record);
            return NULL;
        }
        Py_DECREF(value);
    }
    return record;
}

/* The count of the next array or map block (0 ends), checked against what is left. */
static int
read_block_count(Cursor *cur, long min_bytes, long charge, Py_ssize_t *out)
{
    int64_t count;
    if (read_long(cur, &count) < 0) {
        return -1;
    }
    if (count < 0) {
        int64_t block_bytes;
        if (count == INT64_MIN) {
            malformed("bad block count");
            return -1;
        }
        count = -count;
        if (read_long(cur, &block_bytes) < 0) {
            return -1;
        }
        if (block_bytes < 0 || block_bytes > cur->end - cur->pos) {
            malformed("block size past the end of the input");
            return -1;
        }
    }
    if (min_bytes > 0 && count > (cur->end - cur->pos) / min_bytes) {
        malformed("block count past the end of the input");
        return -1;
    }
    if (min_bytes == 0 && charge < 1) {
        charge = 1; /* zero-width items are always charged */
    }
    if (charge > 0) {
        if (count > cur->objects_left / charge) {
            malformed("too many objects for the input (zero-width or amplifying items)");
            return -1;
        }
        cur->objects_left -= (Py_ssize_t)count * charge;
    }
    *out = (Py_ssize_t)count;
    return 0;
}

static PyObject *
decode_string(Cursor *cur, int keep)
{
    Py_ssize_t length;
    if (read_length(cur, &length) < 0) {
        return NULL;
    }
    const unsigned char *start = cur->pos;
    cur->pos += length;
    /* Most values are ASCII: copy them without running the UTF-8 decoder. Checked 8 bytes at
     * a time rather than one: the same check in fewer instructions. */
    uint64_t high = 0;
    Py_ssize_t i = 0;
    for (; i + 8 <= length; i += 8) {
        uint64_t word;
        memcpy(&word, start + i, sizeof word);
        high |= word;
    }
    for (; i < length; i++) {
        high |= start[i];
    }
    if (!(high & 0x8080808080808080ULL)) {
        if (!keep) {
            Py_RETURN_NONE;
        }
        PyObject *text = PyUnicode_New(length, 127);
        if (text != NULL) {
            memcpy(PyUnicode_1BYTE_DATA(text), start, (size_t)length);
        }
        return text;
    }
    /* Skipped or not, invalid UTF-8 is an error: projecting must not accept what decoding
     * refuses. */
    PyObject *text = PyUnicode_DecodeUTF8((const char *)start, length, NULL);
    if (text != NULL && !keep) {
        Py_SETREF(text, Py_NewRef(Py_None));
    }
    return text;
}

/* An array or a map: blocks of items (a map entry is a string key, then its value), ended by a
 * block of zero items. */
static PyObject *
decode_blocks(PyObject *node, Cursor *cur, int is_map, int keep)
{
    PyObject *item = PyTuple_GET_ITEM(node, 1);
    long min_bytes = (long)small_int(PyTuple_GET_ITEM(node, 2));
    long charge = (long)small_int(PyTuple_GET_ITEM(node, 3));
    if (is_map && min_bytes < 1) {
        min_bytes = 1; /* every entry has at least its key's length byte */
    }
    Py_ssize_t count;
    PyObject *out = !keep ? Py_NewRef(Py_None) : is_map ? PyDict_New() : PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    for (;;) {
        if (read_block_count(cur, min_bytes, charge, &count) < 0) {
            goto fail;
        }
        if (count == 0) {
            return out;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *key = NULL;
            if (is_map && (key = decode_string(cur, keep)) == NULL) {
                goto fail;
            }
            PyObject *value = decode_node(item, cur, keep);
            if (value == NULL) {
                Py_XDECREF(key);
                goto fail;
            }
            int failed = !keep ? 0
                         : is_map ? PyDict_SetItem(out, key, value)
                                  : PyList_Append(out, value);
            Py_XDECREF(key);
            Py_DECREF(value);
            if (failed < 0) {
                goto fail;
            }
        }
    }
fail:
    Py_DECREF(out);
    return NULL;
}

/* The item of `choices` (enum symbols, union branches) that the next varint picks: a borrowed
 * reference, or NULL with ValueError(`out_of_range`). */
static inline PyObject *
read_choice(Cursor *cur, PyObject *choices, const char *out_of_range)
{
    int64_t index;
    if (read_long(cur, &index) < 0) {
        return NULL;
    }
    if (index < 0 || index >= PyTuple_GET_SIZE(choices)) {
        return malformed(out_of_range);
    }
    return PyTuple_GET_ITEM(choices, (Py_ssize_t)index);
}

/* A float (4 bytes) or a double (8), little-endian IEEE 754. */
static PyObject *
decode_float(Cursor *cur, Py_ssize_t size, int keep)
{
    if (cur->end - cur->pos < size) {
        return malformed(size == 4 ? "truncated float" : "truncated double");
    }
    const char *at = (const char *)cur->pos;
    cur->pos += size;
    if (!keep) {
        Py_RETURN_NONE;
    }
    return PyFloat_FromDouble(size == 4 ? PyFloat_Unpack4(at, 1) : PyFloat_Unpack8(at, 1));
}

/* The next `size` bytes (known to be there) as bytes. */
static PyObject *
take_bytes(Cursor *cur, Py_ssize_t size, int keep)
{
    const char *at = (const char *)cur->pos;
    cur->pos += size;
    return keep ? PyBytes_FromStringAndSize(at, size) : Py_NewRef(Py_None);
}

/* Reads one projected datum: its stored parts go to `slots` (a new tuple, not shared yet). */
static int
project_into(PyObject *target, Cursor *cur, PyObject *slots)
{
    switch (opcode(target)) {
    case OP_SKIP: {
        PyObject *node = PyTuple_GET_ITEM(target, 1);
        /* Most skipped fields are null in a ["null", ...] union: no call, no object. */
        if (opcode(node) == OP_UNION) {
            node = read_choice(cur, PyTuple_GET_ITEM(node, 1), "union index out of range");
            if (node == NULL) {
                return -1;
            }
        }
        if (opcode(node) == OP_NULL) {
            return 0;
        }
        PyObject *none = decode_node(node, cur, 0);
        if (none == NULL) {
            return -1;
        }
        Py_DECREF(none);
        return 0;
    }
    case OP_STORE: {
        PyObject *value = decode_node(PyTuple_GET_ITEM(target, 2), cur, 1);
        if (value == NULL) {
            return -1;
        }
        Py_ssize_t slot = small_int(PyTuple_GET_ITEM(target, 1));
        Py_SETREF(((PyTupleObject *)slots)->ob_item[slot], value);
        return 0;
    }
    case OP_INTO_RECORD: {
        PyObject *fields = PyTuple_GET_ITEM(target, 1);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
            if (project_into(PyTuple_GET_ITEM(fields, i), cur, slots) < 0) {
                return -1;
            }
        }
        return 0;
    }
    case OP_INTO_UNION: {
        PyObject *branch =
            read_choice(cur, PyTuple_GET_ITEM(target, 1), "union index out of range");
        return branch == NULL ? -1 : project_into(branch, cur, slots);
    }
    default:
        PyErr_SetString(PyExc_SystemError, "bad Avro reader program");
        return -1;
    }
}

/* A PROJECT node: a tuple of its slots, filled by its target. */
static PyObject *
decode_projection(PyObject *node, Cursor *cur)
{
    Py_ssize_t count = small_int(PyTuple_GET_ITEM(node, 1));
    PyObject *slots = PyTuple_New(count);
    if (slots == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyTuple_SET_ITEM(slots, i, Py_NewRef(Py_None));
    }
    if (project_into(PyTuple_GET_ITEM(node, 2), cur, slots) < 0) {
        Py_DECREF(slots);
        return NULL;
    }
    return slots;
}

static PyObject *
decode_node(PyObject *node, Cursor *cur, int keep)
{
    switch (opcode(node)) {
    case OP_NULL:
        Py_RETURN_NONE;
    case OP_BOOLEAN: {
        if (cur->pos >= cur->end) {
            return malformed("truncated boolean");
        }
        unsigned char byte = *cur->pos++;
        if (byte > 1) {
            return malformed("boolean byte is neither 0 nor 1");
        }
        return keep ? PyBool_FromLong(byte) : Py_NewRef(Py_None);
    }
    case OP_LONG: {
        int64_t value;
        if (read_long(cur, &value) < 0) {
            return NULL;
        }
        if (!keep) {
            Py_RETURN_NONE;
        }
        return PyLong_FromLongLong(value);
    }
    case OP_FLOAT:
        return decode_float(cur, 4, keep);
    case OP_DOUBLE:
        return decode_float(cur, 8, keep);
    case OP_BYTES: {
        Py_ssize_t length;
        if (read_length(cur, &length) < 0) {
            return NULL;
        }
        return take_bytes(cur, length, keep);
    }
    case OP_STRING:
        return decode_string(cur, keep);
    case OP_RECORD:
        return decode_record(node, cur, keep);
    case OP_ENUM: {
        PyObject *symbol = read_choice(cur, PyTuple_GET_ITEM(node, 1), "enum index out of range");
        if (symbol == NULL) {
            return NULL;
        }
        return Py_NewRef(keep ? symbol : Py_None);
    }
    case OP_ARRAY:
        return decode_blocks(node, cur, 0, keep);
    case OP_MAP:
        return decode_blocks(node, cur, 1, keep);
    case OP_UNION: {
        PyObject *branch =
            read_choice(cur, PyTuple_GET_ITEM(node, 1), "union index out of range");
        if (branch == NULL) {
            return NULL;
        }
        if (opcode(branch) == OP_NULL) { /* the usual branch: no call */
            Py_RETURN_NONE;
        }
        return decode_node(branch, cur, keep);
    }
    case OP_FIXED: {
        Py_ssize_t size = small_int(PyTuple_GET_ITEM(node, 1));
        if (cur->end - cur->pos < size) {
            return malformed("truncated fixed");
        }
        return take_bytes(cur, size, keep);
    }
    case OP_PROJECT: {
        PyObject *slots = decode_projection(node, cur);
        if (slots != NULL && !keep) {
            Py_SETREF(slots, Py_NewRef(Py_None));
        }
        return slots;
    }
    default:
        PyErr_SetString(PyExc_SystemError, "bad Avro reader program");
        return NULL;
    }
}

/* --- Reader: a checked program, called as reader(value: bytes, start: int) -> object --- */

typedef struct {
    PyObject_HEAD
    PyObject *program;
    PyObject *trailing_error; /* raised when bytes are left after the record */
    vectorcallfunc vectorcall;
} Reader;

static int check_target(PyObject *target, int depth, Py_ssize_t slot_count);

/* A node or target is a tuple of at least `min_size` items starting with an opcode. */
static int
check_header(PyObject *node, int depth, Py_ssize_t min_size, const char *what)
{
    if (depth > 64) {
        PyErr_SetString(PyExc_ValueError, "program nested too deeply");
        return -1;
    }
    if (!PyTuple_Check(node) || PyTuple_GET_SIZE(node) < min_size ||
        !PyLong_Check(PyTuple_GET_ITEM(node, 0))) {
        PyErr_Format(PyExc_TypeError, "a %s is a tuple starting with an opcode", what);
        return -1;
    }
    return 0;
}

static int
check_program(PyObject *node, int depth)
{
    if (check_header(node, depth, 1, "program node") < 0) {
        return -1;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(node);
    long op = opcode(node);
    switch (op) {
    case OP_NULL: case OP_BOOLEAN: case OP_LONG: case OP_FLOAT: case OP_DOUBLE:
    case OP_BYTES: case OP_STRING:
        return 0;
    case OP_RECORD: {
        if (size != 3 || !PyTuple_Check(PyTuple_GET_ITEM(node, 1)) ||
            !PyTuple_Check(PyTuple_GET_ITEM(node, 2)) ||
            PyTuple_GET_SIZE(PyTuple_GET_ITEM(node, 1)) !=
                PyTuple_GET_SIZE(PyTuple_GET_ITEM(node, 2))) {
            break;
        }
        PyObject *names = PyTuple_GET_ITEM(node, 1);
        PyObject *fields = PyTuple_GET_ITEM(node, 2);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
            if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i)) ||
                check_program(PyTuple_GET_ITEM(fields, i), depth + 1) < 0) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_TypeError, "record field names are str");
                }
                return -1;
            }
        }
        return 0;
    }
    case OP_ENUM:
        if (size == 2 && PyTuple_Check(PyTuple_GET_ITEM(node, 1))) {
            return 0;
        }
        break;
    case OP_ARRAY: case OP_MAP:
        if (size == 4 && PyLong_Check(PyTuple_GET_ITEM(node, 2)) &&
            PyLong_AsLong(PyTuple_GET_ITEM(node, 2)) >= 0 &&
            PyLong_Check(PyTuple_GET_ITEM(node, 3)) &&
            PyLong_AsLong(PyTuple_GET_ITEM(node, 3)) >= 0) {
            return check_program(PyTuple_GET_ITEM(node, 1), depth + 1);
        }
        break;
    case OP_UNION:
        if (size == 2 && PyTuple_Check(PyTuple_GET_ITEM(node, 1))) {
            PyObject *branches = PyTuple_GET_ITEM(node, 1);
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(branches); i++) {
                if (check_program(PyTuple_GET_ITEM(branches, i), depth + 1) < 0) {
                    return -1;
                }
            }
            return 0;
        }
        break;
    case OP_FIXED:
        if (size == 2 && PyLong_Check(PyTuple_GET_ITEM(node, 1)) &&
            PyLong_AsSsize_t(PyTuple_GET_ITEM(node, 1)) >= 0) {
            return 0;
        }
        break;
    case OP_PROJECT:
        if (size == 3 && PyLong_Check(PyTuple_GET_ITEM(node, 1)) &&
            PyLong_AsSsize_t(PyTuple_GET_ITEM(node, 1)) >= 0) {
            return check_target(PyTuple_GET_ITEM(node, 2), depth + 1,
                                PyLong_AsSsize_t(PyTuple_GET_ITEM(node, 1)));
        }
        break;
    default:
        break;
    }
    if (!PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "malformed program node (opcode %ld)", op);
    }
    return -1;
}

/* A projection target, whose STOREs must name slots of the enclosing PROJECT. */
static int
check_target(PyObject *target, int depth, Py_ssize_t slot_count)
{
    if (check_header(target, depth, 2, "projection target") < 0) {
        return -1;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(target);
    long op = opcode(target);
    switch (op) {
    case OP_SKIP:
        if (size == 2) {
            return check_program(PyTuple_GET_ITEM(target, 1), depth + 1);
        }
        break;
    case OP_STORE:
        if (size == 3 && PyLong_Check(PyTuple_GET_ITEM(target, 1))) {
            Py_ssize_t slot = PyLong_AsSsize_t(PyTuple_GET_ITEM(target, 1));
            if (slot < 0 || slot >= slot_count) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_ValueError, "projection slot out of range");
                }
                return -1;
            }
            return check_program(PyTuple_GET_ITEM(target, 2), depth + 1);
        }
        break;
    case OP_INTO_RECORD: case OP_INTO_UNION:
        if (size == 2 && PyTuple_Check(PyTuple_GET_ITEM(target, 1))) {
            PyObject *parts = PyTuple_GET_ITEM(target, 1);
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(parts); i++) {
                if (check_target(PyTuple_GET_ITEM(parts, i), depth + 1, slot_count) < 0) {
                    return -1;
                }
            }
            return 0;
        }
        break;
    default:
        break;
    }
    if (!PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "malformed projection target (opcode %ld)", op);
    }
    return -1;
}

static PyObject *
reader_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Reader *self = (Reader *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "reader(value: bytes, start: int)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    if (start < 0 || start > view.len) {
        PyErr_SetString(PyExc_ValueError, "start outside the value");
    }
    else {
        Cursor cur = {(const unsigned char *)view.buf + start,
                      (const unsigned char *)view.buf + view.len, MAX_AMPLIFIED_OBJECTS};
        result = decode_node(self->program, &cur, 1);
        if (result != NULL && cur.pos != cur.end) {
            Py_CLEAR(result);
            PyErr_SetString(self->trailing_error, "bytes left over after the Avro record");
        }
    }
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
reader_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"program", "trailing_error", NULL};
    PyObject *program, *trailing_error = PyExc_ValueError;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O", keywords, &program, &trailing_error)) {
        return NULL;
    }
    if (!PyExceptionClass_Check(trailing_error)) {
        PyErr_SetString(PyExc_TypeError, "trailing_error must be an exception class");
        return NULL;
    }
    if (check_program(program, 0) < 0) {
        return NULL;
    }
    Reader *self = (Reader *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->program = Py_NewRef(program);
    self->trailing_error = Py_NewRef(trailing_error);
    self->vectorcall = reader_vectorcall;
    return (PyObject *)self;
}

static void
reader_dealloc(Reader *self)
{
    Py_XDECREF(self->program);
    Py_XDECREF(self->trailing_error);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "consumer.avro._avro_reader.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Reader(program, trailing_error=ValueError): reader(value, start) -> record",
    .tp_new = reader_new,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Reader, vectorcall),
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "consumer.avro._avro_reader",
    .m_doc = "A compiled Avro binary reader (see consumer/avro/programs.py).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__avro_reader(void)
{
    if (PyType_Ready(&ReaderType) < 0) {
        return NULL;
    }
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(mod, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
