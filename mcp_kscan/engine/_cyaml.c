/* Manifests read by libyaml's event parser, built straight into Python objects.
 *
 * PyYAML's C loader runs this same parser (libyaml) and then spends most of its time in Python:
 * one node object, one resolver call and one constructor call per scalar. Here the events become
 * dict/list/str values in C. The one YAML 1.1 rule a plain scalar needs (``yes`` is true, ``0644``
 * is 420, ``~`` is null) stays in Python, in ``fastyaml.plain_value``, PyYAML's own resolver and
 * constructors; this file calls it only for plain scalars whose first character some implicit
 * resolver looks at (the caller passes that set of characters), once per text (a cache).
 *
 * Only the subset proven equal to PyYAML is answered (tests/engine/test_fastyaml.py); anything
 * else raises the caller's ``NotFast`` and the caller reads the text with PyYAML:
 * anchors, aliases, tags and directives (their rules live in the full path), a collection as a mapping key
 * (PyYAML refuses it as unhashable), nesting deeper than ``max_depth`` and every libyaml error.
 * Duplicate keys: the last value wins, at the first key's place, as in PyYAML (a dict does it).
 *
 * The GIL is held throughout: the scan runs it in forked workers, and the resolver is Python.
 * No state outlives a call but the caller's three caches (plain dicts, touched under the GIL).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <yaml.h>

typedef struct {
    PyObject *container; /* borrowed: its parent (or the document) holds it */
    PyObject *key;       /* owned: a mapping's key still waiting for its value, or NULL */
    int is_map;
} frame_t;

typedef struct {
    PyObject *resolve;   /* resolve(text, as_key) -> value, or raises NotFast */
    PyObject *values;    /* plain scalar text -> value, as a value */
    PyObject *keys;      /* plain scalar text -> value, as a mapping key ("=" differs) */
    PyObject *strings;   /* quoted or block scalar text -> the same text */
    PyObject *not_fast;
    const unsigned char *resolvable; /* 256 flags: does an implicit resolver start with this byte? */
    Py_ssize_t cache_limit;
} ctx_t;

/* Scalars longer than this are built afresh each time: the caches keep the short ones that
 * manifests repeat endlessly (keys, kinds, images, ports, true). */
#define CACHED_MAX_BYTES 64

/* The value of the scalar ``text`` (a new reference, consumed): from ``cache``, else resolved
 * (``resolve``) or the text itself, then stored there. A hit returns the one object already
 * built, so a 10k scan holds each repeated key and value once (as the rapidyaml path does), and
 * interned: the controls look keys up with literals, which then compare by identity. */
static PyObject *
cached(const ctx_t *ctx, PyObject *cache, PyObject *text, int resolve, int as_key)
{
    PyObject *value = PyDict_GetItemWithError(cache, text);
    if (value != NULL) {
        Py_INCREF(value);
        Py_DECREF(text);
        return value;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(text);
        return NULL;
    }
    if (resolve) {
        value = PyObject_CallFunctionObjArgs(ctx->resolve, text, as_key ? Py_True : Py_False, NULL);
        if (value == NULL) {
            Py_DECREF(text);
            return NULL;
        }
    } else {  /* no resolver looks at it: the text itself */
        PyUnicode_InternInPlace(&text);
        Py_INCREF(text);
        value = text;
    }
    if (PyDict_GET_SIZE(cache) >= ctx->cache_limit)
        PyDict_Clear(cache);
    int rc = PyDict_SetItem(cache, text, value);
    Py_DECREF(text);
    if (rc < 0)
        Py_CLEAR(value);
    return value;
}

static PyObject *
scalar(const ctx_t *ctx, const yaml_event_t *event, int as_key)
{
    const char *text = (const char *)event->data.scalar.value;
    size_t length = event->data.scalar.length;
    int plain = event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE; /* else quoted, literal, folded: a string */
    /* An empty plain scalar is null; a resolver may claim any other by its first byte. */
    int resolve = plain && (length == 0 || ctx->resolvable[(unsigned char)text[0]]);
    PyObject *str = PyUnicode_DecodeUTF8(text, (Py_ssize_t)length, "strict");
    if (str == NULL || (length > CACHED_MAX_BYTES && !resolve))
        return str;
    return cached(ctx, plain ? (as_key ? ctx->keys : ctx->values) : ctx->strings, str, resolve, as_key);
}

/* Hands ``value`` (a new reference) to its place: the document, a sequence, or a mapping (as the
 * key it waits for, or as the value of that key). Consumes the reference, also on failure. */
static int
attach(PyObject **root, frame_t *top, PyObject *value)
{
    if (top == NULL) {
        *root = value;
        return 0;
    }
    if (!top->is_map) {
        int rc = PyList_Append(top->container, value);
        Py_DECREF(value);
        return rc;
    }
    if (top->key == NULL) {
        top->key = value;
        return 0;
    }
    int rc = PyDict_SetItem(top->container, top->key, value);
    Py_DECREF(value);
    Py_CLEAR(top->key);
    return rc;
}

static PyObject *
cyaml_load(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError,
                        "load(data, resolve, values, keys, strings, resolvable, max_depth, cache_limit, not_fast)");
        return NULL;
    }
    PyObject *data = args[0];
    ctx_t ctx = {args[1], args[2], args[3], args[4], args[8], NULL, 0};
    if (!PyBytes_Check(data) || !PyDict_CheckExact(ctx.values) || !PyDict_CheckExact(ctx.keys)
        || !PyDict_CheckExact(ctx.strings) || !PyBytes_Check(args[5]) || PyBytes_GET_SIZE(args[5]) != 256) {
        PyErr_SetString(PyExc_TypeError, "load: data and resolvable are bytes (256 flags), the caches dicts");
        return NULL;
    }
    ctx.resolvable = (const unsigned char *)PyBytes_AS_STRING(args[5]);
    Py_ssize_t max_depth = PyLong_AsSsize_t(args[6]);
    ctx.cache_limit = PyLong_AsSsize_t(args[7]);
    if (PyErr_Occurred())
        return NULL;
    if (max_depth < 1 || ctx.cache_limit < 1) {
        PyErr_SetString(PyExc_ValueError, "load: max_depth and cache_limit must be positive");
        return NULL;
    }

    frame_t *stack = PyMem_Malloc((size_t)max_depth * sizeof(frame_t)); /* each frame is set when pushed */
    if (stack == NULL)
        return PyErr_NoMemory();
    Py_ssize_t depth = 0;
    PyObject *docs = PyList_New(0);
    PyObject *root = NULL;
    yaml_parser_t parser;
    yaml_event_t event;
    int have_event = 0;
    if (docs == NULL)
        goto fail_no_parser;
    if (!yaml_parser_initialize(&parser)) {
        PyErr_NoMemory();
        goto fail_no_parser;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)PyBytes_AS_STRING(data),
                                 (size_t)PyBytes_GET_SIZE(data));
    /* UTF-8 only, as the loader reads files; the caller declines a leading byte-order mark,
     * which libyaml would keep as a character once the encoding is given. */
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

    for (;;) {
        if (!yaml_parser_parse(&parser, &event)) {
            PyErr_Format(ctx.not_fast, "libyaml: %s", parser.problem ? parser.problem : "error");
            goto fail;
        }
        have_event = 1;
        frame_t *top = depth ? &stack[depth - 1] : NULL;
        PyObject *value;
        switch (event.type) {
        case YAML_STREAM_END_EVENT:
            yaml_event_delete(&event);
            yaml_parser_delete(&parser);
            PyMem_Free(stack);
            return docs;
        case YAML_DOCUMENT_END_EVENT:
            if (root == NULL || depth != 0) {
                PyErr_SetString(ctx.not_fast, "document ended without a value");
                goto fail;
            }
            if (PyList_Append(docs, root) < 0)
                goto fail;
            Py_CLEAR(root);
            break;
        case YAML_ALIAS_EVENT:
            PyErr_SetString(ctx.not_fast, "alias");
            goto fail;
        case YAML_SCALAR_EVENT:
            if (event.data.scalar.anchor != NULL || event.data.scalar.tag != NULL) {
                PyErr_SetString(ctx.not_fast, "anchor or tag");
                goto fail;
            }
            value = scalar(&ctx, &event, top != NULL && top->is_map && top->key == NULL);
            if (value == NULL || attach(&root, top, value) < 0)
                goto fail;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            int is_map = event.type == YAML_MAPPING_START_EVENT;
            if ((is_map ? event.data.mapping_start.anchor : event.data.sequence_start.anchor) != NULL
                || (is_map ? event.data.mapping_start.tag : event.data.sequence_start.tag) != NULL) {
                PyErr_SetString(ctx.not_fast, "anchor or tag");
                goto fail;
            }
            if (top != NULL && top->is_map && top->key == NULL) {
                PyErr_SetString(ctx.not_fast, "collection as a mapping key");
                goto fail;
            }
            if (depth >= max_depth) {
                PyErr_SetString(ctx.not_fast, "nested too deeply for the fast path");
                goto fail;
            }
            value = is_map ? PyDict_New() : PyList_New(0);
            if (value == NULL)
                goto fail;
            PyObject *container = value; /* borrowed below: attach gives it to its parent */
            if (attach(&root, top, value) < 0)
                goto fail;
            stack[depth].container = container;
            stack[depth].key = NULL;
            stack[depth].is_map = is_map;
            depth++;
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (top == NULL || top->key != NULL) { /* libyaml pairs every key with a value */
                PyErr_SetString(ctx.not_fast, "unbalanced collection end");
                goto fail;
            }
            depth--;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (event.data.document_start.version_directive != NULL
                || event.data.document_start.tag_directives.start != event.data.document_start.tag_directives.end) {
                PyErr_SetString(ctx.not_fast, "directive"); /* %TAG serves tags; both are rare: PyYAML's */
                goto fail;
            }
            break;
        default: /* the stream's start: nothing to build */
            break;
        }
        yaml_event_delete(&event);
        have_event = 0;
    }

fail:
    if (have_event)
        yaml_event_delete(&event);
    yaml_parser_delete(&parser);
fail_no_parser:
    while (depth > 0)
        Py_XDECREF(stack[--depth].key);
    PyMem_Free(stack);
    Py_XDECREF(root);
    Py_XDECREF(docs);
    return NULL;
}

static PyObject *
cyaml_libyaml_version(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyUnicode_FromString(yaml_get_version_string());
}

static PyMethodDef cyaml_methods[] = {
    {"load", (PyCFunction)(void (*)(void))cyaml_load, METH_FASTCALL,
     "load(data, resolve, values, keys, strings, resolvable, max_depth, cache_limit, not_fast) -> list\n\n"
     "Every document of the UTF-8 bytes ``data``; see mcp_kscan.engine.fastyaml.libyaml_load."},
    {"libyaml_version", cyaml_libyaml_version, METH_NOARGS, "The version of the libyaml this module runs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cyaml_module = {
    PyModuleDef_HEAD_INIT, "_cyaml", "libyaml events built into Python objects (see fastyaml).", 0,
    cyaml_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__cyaml(void)
{
    return PyModule_Create(&cyaml_module);
}
