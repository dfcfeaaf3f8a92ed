/* json.h's contract on libjansson: the limits and the accessors around its parser, the writer's
 * rules around its encoder. */

#include <jansson.h>

#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(JSON_MAX_DEPTH < JSON_PARSER_MAX_DEPTH, "JSON_MAX_DEPTH above libjansson's");
_Static_assert(sizeof(json_int_t) == sizeof(int64_t), "libjansson's integers are not 64 bits");

/* ---- Shared: UTF-8 ---- */

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF) that starts at s with avail bytes available, or 0 if there is none.
 */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    return n;
}

/* The writer checks text itself, so that a bad string is JSON_WRITE_UTF8 and a failed
 * allocation JSON_WRITE_NOMEM (libjansson's checked setters say -1 to both). */
static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_sequence_length(u + i, len - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* ---- Document: libjansson's tree, and beside it the nodes json.h hands out ---- */

/*
 * libjansson has no index into an object's members and no number text, and json.h's values are
 * const, so every value gets a node when the document is parsed. Nodes borrow strings and keys
 * from the libjansson tree, which the document keeps; they live in blocks freed all at once.
 */
struct json_member;

struct json_value {
    json_t *j; /* in the document's tree; the writer shares it */
    enum json_kind type;
    unsigned height; /* containers in this value, nested: 0 for a scalar, 1 for "[1]" */
    size_t count;    /* arrays and objects: elements or members */
    union {
        const char *number;          /* numbers: json_number_text() */
        struct json_value *items;    /* arrays */
        struct json_member *members; /* objects, in document order */
    } u;
    const struct json_member **sorted; /* objects of more than SORTED_MIN members: by key */
};

struct json_member {
    const char *key;
    size_t key_len;
    struct json_value value;
};

/* Objects this small are searched in order; larger ones through a sorted index. */
#define SORTED_MIN 16

struct json_block {
    struct json_block *next;
    size_t cap;
    size_t used;
    _Alignas(max_align_t) unsigned char data[];
};

struct json_doc {
    json_t *tree;
    struct json_block *blocks;
    size_t next_block_size;
    struct json_value root;
};

#define JSON_BLOCK_MIN 4096
#define JSON_BLOCK_MAX (1024 * 1024)

static void *doc_alloc(struct json_doc *doc, size_t size)
{
    const size_t align = _Alignof(max_align_t);
    struct json_block *b = doc->blocks;

    if (size > SIZE_MAX - align)
        return NULL;
    size = (size + align - 1) & ~(align - 1);
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = doc->next_block_size;
        if (cap < size)
            cap = size;
        if (cap > SIZE_MAX - sizeof(*b))
            return NULL;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = doc->blocks;
        doc->blocks = b;
        /* Grow geometrically so a large document costs few mallocs, but never waste much. */
        if (doc->next_block_size < JSON_BLOCK_MAX)
            doc->next_block_size *= 2;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

void json_doc_free(struct json_doc *doc)
{
    if (doc == NULL)
        return;
    struct json_block *b = doc->blocks;
    while (b != NULL) {
        struct json_block *next = b->next;
        free(b);
        b = next;
    }
    json_decref(doc->tree);
    free(doc);
}

const struct json_value *json_doc_root(const struct json_doc *doc)
{
    return doc == NULL ? NULL : &doc->root;
}

const char *json_strerror(enum json_error error)
{
    switch (error) {
    case JSON_OK:
        return "ok";
    case JSON_ERR_TOO_LARGE:
        return "document too large";
    case JSON_ERR_TOO_DEEP:
        return "nesting too deep";
    case JSON_ERR_TOO_MANY:
        return "too many values";
    case JSON_ERR_SYNTAX:
        return "syntax error";
    case JSON_ERR_TRAILING:
        return "trailing data after the value";
    case JSON_ERR_STRING:
        return "invalid string";
    case JSON_ERR_UTF8:
        return "invalid UTF-8";
    case JSON_ERR_NUMBER:
        return "invalid number";
    case JSON_ERR_DUPLICATE_KEY:
        return "duplicate object key";
    case JSON_ERR_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}

/* ---- Parser ---- */

struct json_parse {
    const struct json_limits *limits;
    enum json_error error;
    size_t offset;
    const char *message;
    size_t nul; /* offset of the first NUL byte outside strings, or SIZE_MAX */
    size_t nul_depth;
};

static enum json_error parse_fail(struct json_parse *p, enum json_error error, size_t offset,
                                  const char *message)
{
    p->error = error;
    p->offset = offset;
    p->message = message != NULL ? message : json_strerror(error);
    return error;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * The depth and value limits, checked on the text before libjansson allocates a tree for it, so
 * that they bound memory. Strings are skipped. In valid JSON every value but the top one follows
 * a container's opening bracket or a comma, so there are 1 + commas + non-empty containers; text
 * that is not JSON may be miscounted, and libjansson refuses it next.
 */
static enum json_error parse_check_limits(struct json_parse *p, const unsigned char *t, size_t len)
{
    size_t max_depth =
        p->limits->max_depth < JSON_MAX_DEPTH ? p->limits->max_depth : JSON_MAX_DEPTH;
    size_t depth = 0, nodes = 1;

    if (p->limits->max_nodes == 0)
        return parse_fail(p, JSON_ERR_TOO_MANY, 0, NULL);
    for (size_t i = 0; i < len; i++) {
        switch (t[i]) {
        case '"':
            /* To the next quote not escaped by an odd run of backslashes. */
            for (;;) {
                const unsigned char *q = memchr(t + i + 1, '"', len - i - 1);
                if (q == NULL)
                    return JSON_OK; /* unterminated: libjansson says so */
                i = (size_t)(q - t);
                size_t k = i;
                while (t[k - 1] == '\\')
                    k--;
                if ((i - k) % 2 == 0)
                    break;
            }
            break;
        case '[':
        case '{': {
            if (depth == max_depth)
                return parse_fail(p, JSON_ERR_TOO_DEEP, i, NULL);
            depth++;
            size_t k = i + 1;
            while (k < len && is_ws(t[k]))
                k++;
            if (k < len && t[k] != ']' && t[k] != '}')
                nodes++;
            break;
        }
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        case ',':
            nodes++;
            break;
        case '\0':
            if (p->nul == SIZE_MAX) {
                p->nul = i;
                p->nul_depth = depth;
            }
            break;
        default:
            break;
        }
        if (nodes > p->limits->max_nodes)
            return parse_fail(p, JSON_ERR_TOO_MANY, i, NULL);
    }
    return JSON_OK;
}

/* libjansson says "invalid syntax" for string errors too: these are told by their message. */
static const struct {
    const char *prefix;
    const char *message;
} string_errors[] = {
    {"unexpected newline", "control character in string"},
    {"control character", "control character in string"},
    {"invalid escape", "invalid escape"},
    {"invalid Unicode", "lone or mismatched UTF-16 surrogate in \\u escape"},
};

static enum json_error parse_fail_jansson(struct json_parse *p, const json_error_t *e, size_t len)
{
    size_t at = e->position < 0 ? 0 : (size_t)e->position;
    if (at > len)
        at = len;
    if (e->text[0] == '\0') /* libjansson failed without a word: an allocation */
        return parse_fail(p, JSON_ERR_NOMEM, at, NULL);
    switch (json_error_code(e)) {
    case json_error_out_of_memory:
        return parse_fail(p, JSON_ERR_NOMEM, at, NULL);
    case json_error_stack_overflow:
        return parse_fail(p, JSON_ERR_TOO_DEEP, at, NULL);
    case json_error_invalid_utf8:
        return parse_fail(p, JSON_ERR_UTF8, at, NULL);
    case json_error_end_of_input_expected:
        return parse_fail(p, JSON_ERR_TRAILING, at, NULL);
    case json_error_numeric_overflow:
        return parse_fail(p, JSON_ERR_NUMBER, at, "number out of range");
    case json_error_duplicate_key:
        return parse_fail(p, JSON_ERR_DUPLICATE_KEY, at, NULL);
    case json_error_null_byte_in_key:
        return parse_fail(p, JSON_ERR_STRING, at, "\\u0000 in an object key");
    case json_error_invalid_syntax:
        for (size_t i = 0; i < sizeof(string_errors) / sizeof(string_errors[0]); i++) {
            if (strncmp(e->text, string_errors[i].prefix, strlen(string_errors[i].prefix)) == 0)
                return parse_fail(p, JSON_ERR_STRING, at, string_errors[i].message);
        }
        return parse_fail(p, JSON_ERR_SYNTAX, at, NULL);
    default:
        return parse_fail(p, JSON_ERR_SYNTAX, at, NULL);
    }
}

static int member_compare(const void *a, const void *b)
{
    const struct json_member *x = *(const struct json_member *const *)a;
    const struct json_member *y = *(const struct json_member *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c != 0)
        return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Fills v for j and, depth first, the nodes under it. Recursion is bounded: libjansson parses
 * no deeper than JSON_PARSER_MAX_DEPTH. */
static bool doc_node(struct json_doc *doc, json_t *j, struct json_value *v)
{
    char text[64];
    size_t n;

    memset(v, 0, sizeof(*v));
    v->j = j;
    switch (json_typeof(j)) {
    case JSON_NULL:
        v->type = JSON_KIND_NULL;
        return true;
    case JSON_TRUE:
    case JSON_FALSE:
        v->type = JSON_KIND_BOOL;
        return true;
    case JSON_STRING:
        v->type = JSON_KIND_STRING;
        return true;
    case JSON_INTEGER:
    case JSON_REAL:
        v->type = JSON_KIND_NUMBER;
        if (json_typeof(j) == JSON_INTEGER) {
            int m = snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
            n = m < 0 ? 0 : (size_t)m;
        } else {
            /* The writer's spelling, so that the text is what json_write_value() writes. */
            n = json_dumpb(j, text, sizeof(text), JSON_ENCODE_ANY);
        }
        if (n == 0 || n >= sizeof(text))
            return false;
        char *copy = doc_alloc(doc, n + 1);
        if (copy == NULL)
            return false;
        memcpy(copy, text, n);
        copy[n] = '\0';
        v->u.number = copy;
        return true;
    case JSON_ARRAY:
        v->type = JSON_KIND_ARRAY;
        v->count = json_array_size(j);
        if (v->count == 0) {
            v->height = 1;
            return true;
        }
        v->u.items = doc_alloc(doc, v->count * sizeof(*v->u.items));
        if (v->u.items == NULL)
            return false;
        for (size_t i = 0; i < v->count; i++) {
            struct json_value *item = &v->u.items[i];
            if (!doc_node(doc, json_array_get(j, i), item))
                return false;
            if (item->height > v->height)
                v->height = item->height;
        }
        v->height++;
        return true;
    case JSON_OBJECT:
        v->type = JSON_KIND_OBJECT;
        v->count = json_object_size(j);
        if (v->count == 0) {
            v->height = 1;
            return true;
        }
        v->u.members = doc_alloc(doc, v->count * sizeof(*v->u.members));
        if (v->u.members == NULL)
            return false;
        n = 0;
        for (void *it = json_object_iter(j); it != NULL; it = json_object_iter_next(j, it)) {
            struct json_member *m = &v->u.members[n++];
            m->key = json_object_iter_key(it);
            m->key_len = json_object_iter_key_len(it);
            if (!doc_node(doc, json_object_iter_value(it), &m->value))
                return false;
            if (m->value.height > v->height)
                v->height = m->value.height;
        }
        v->height++;
        if (v->count > SORTED_MIN) {
            const struct json_member **sorted = doc_alloc(doc, v->count * sizeof(*sorted));
            if (sorted == NULL)
                return false;
            for (size_t i = 0; i < v->count; i++)
                sorted[i] = &v->u.members[i];
            qsort(sorted, v->count, sizeof(*sorted), member_compare);
            v->sorted = sorted;
        }
        return true;
    }
    return false;
}

enum json_error json_parse(const char *text, size_t len, const struct json_limits *limits,
                           struct json_doc **out, struct json_parse_error *err)
{
    struct json_parse p = {.limits = limits, .error = JSON_OK, .nul = SIZE_MAX};
    struct json_doc *doc = NULL;
    json_error_t jerr;

    *out = NULL;
    if (len > limits->max_bytes) {
        parse_fail(&p, JSON_ERR_TOO_LARGE, limits->max_bytes, NULL);
        goto out;
    }
    if (parse_check_limits(&p, (const unsigned char *)text, len) != JSON_OK)
        goto out;
    doc = calloc(1, sizeof(*doc));
    if (doc == NULL) {
        parse_fail(&p, JSON_ERR_NOMEM, 0, NULL);
        goto out;
    }
    doc->next_block_size = JSON_BLOCK_MIN;
    doc->tree =
        json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (doc->tree == NULL) {
        parse_fail_jansson(&p, &jerr, len);
        goto out;
    }
    /* libjansson skips a NUL byte right after a number or a literal ("1\0", "[true\0]"). No
     * NUL byte outside a string is JSON. */
    if (p.nul != SIZE_MAX) {
        parse_fail(&p, p.nul_depth == 0 ? JSON_ERR_TRAILING : JSON_ERR_SYNTAX, p.nul,
                   "NUL byte outside a string");
        goto out;
    }
    if (!doc_node(doc, doc->tree, &doc->root)) {
        parse_fail(&p, JSON_ERR_NOMEM, 0, NULL);
        goto out;
    }
    *out = doc;
    doc = NULL;
out:
    json_doc_free(doc);
    if (err != NULL) {
        err->offset = p.error == JSON_OK ? 0 : p.offset;
        err->message = p.error == JSON_OK ? "ok" : p.message;
    }
    return p.error;
}

/* ---- Accessors ---- */

enum json_kind json_value_kind(const struct json_value *v)
{
    return v == NULL ? JSON_KIND_NULL : v->type;
}

bool json_value_is_null(const struct json_value *v)
{
    return v != NULL && v->type == JSON_KIND_NULL;
}

const struct json_value *json_object_findn(const struct json_value *obj, const char *key,
                                           size_t key_len)
{
    if (obj == NULL || obj->type != JSON_KIND_OBJECT || key == NULL || obj->count == 0)
        return NULL;
    if (obj->sorted == NULL) {
        for (size_t i = 0; i < obj->count; i++) {
            const struct json_member *m = &obj->u.members[i];
            if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0)
                return &m->value;
        }
        return NULL;
    }
    struct json_member probe = {.key = key, .key_len = key_len};
    const struct json_member *pp = &probe;
    const struct json_member *const *hit =
        bsearch(&pp, obj->sorted, obj->count, sizeof(*obj->sorted), member_compare);
    return hit == NULL ? NULL : &(*hit)->value;
}

const struct json_value *json_object_find(const struct json_value *obj, const char *key)
{
    if (key == NULL)
        return NULL;
    return json_object_findn(obj, key, strlen(key));
}

size_t json_object_count(const struct json_value *obj)
{
    return (obj == NULL || obj->type != JSON_KIND_OBJECT) ? 0 : obj->count;
}

bool json_object_member(const struct json_value *obj, size_t index, const char **key,
                        size_t *key_len, const struct json_value **value)
{
    if (obj == NULL || obj->type != JSON_KIND_OBJECT || index >= obj->count)
        return false;
    const struct json_member *m = &obj->u.members[index];
    if (key != NULL)
        *key = m->key;
    if (key_len != NULL)
        *key_len = m->key_len;
    if (value != NULL)
        *value = &m->value;
    return true;
}

size_t json_array_length(const struct json_value *arr)
{
    return (arr == NULL || arr->type != JSON_KIND_ARRAY) ? 0 : arr->count;
}

const struct json_value *json_array_at(const struct json_value *arr, size_t index)
{
    if (arr == NULL || arr->type != JSON_KIND_ARRAY || index >= arr->count)
        return NULL;
    return &arr->u.items[index];
}

bool json_get_bool(const struct json_value *v, bool *out)
{
    if (v == NULL || v->type != JSON_KIND_BOOL)
        return false;
    *out = json_typeof(v->j) == JSON_TRUE;
    return true;
}

bool json_get_double(const struct json_value *v, double *out)
{
    if (v == NULL || v->type != JSON_KIND_NUMBER)
        return false;
    *out = json_number_value(v->j);
    return true;
}

bool json_get_int64(const struct json_value *v, int64_t *out)
{
    if (v == NULL || json_typeof(v->j) != JSON_INTEGER)
        return false;
    *out = (int64_t)json_integer_value(v->j);
    return true;
}

const char *json_number_text(const struct json_value *v)
{
    return (v == NULL || v->type != JSON_KIND_NUMBER) ? NULL : v->u.number;
}

bool json_get_string(const struct json_value *v, const char **out, size_t *len)
{
    if (v == NULL || v->type != JSON_KIND_STRING)
        return false;
    const char *s = json_string_value(v->j);
    size_t n = json_string_length(v->j);
    if (len == NULL) {
        if (memchr(s, '\0', n) != NULL)
            return false;
    } else {
        *len = n;
    }
    *out = s;
    return true;
}

const char *json_object_get_string(const struct json_value *obj, const char *key)
{
    const char *s;
    if (!json_get_string(json_object_find(obj, key), &s, NULL))
        return NULL;
    return s;
}

/* ---- Writer ---- */

struct json_writer {
    size_t max;
    unsigned flags;
    enum json_write_error error;
    json_t *root;                        /* the top-level value, once one is written */
    json_t *open[JSON_WRITER_MAX_DEPTH]; /* open containers, innermost last (borrowed) */
    size_t depth;
    bool key_pending; /* the innermost object has a key and waits for its value */
    char *key;        /* that key, copied */
    size_t key_len;
    size_t key_cap;
    size_t least; /* the text will be at least this long: an early JSON_WRITE_TOO_LARGE */
    char *text;   /* json_writer_finish()'s */
    size_t len;
    size_t cap;
    bool finished;
};

struct json_writer *json_writer_new(size_t max_bytes, unsigned flags)
{
    struct json_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->max = max_bytes;
    w->flags = flags;
    return w;
}

void json_writer_free(struct json_writer *w)
{
    if (w == NULL)
        return;
    json_decref(w->root);
    free(w->key);
    free(w->text);
    free(w);
}

void json_writer_reset(struct json_writer *w)
{
    json_decref(w->root);
    w->root = NULL;
    w->depth = 0;
    w->key_pending = false;
    w->least = 0;
    w->len = 0;
    if (w->text != NULL)
        w->text[0] = '\0';
    w->finished = false;
    w->error = JSON_WRITE_OK;
}

enum json_write_error json_writer_error(const struct json_writer *w)
{
    return w->error;
}

const char *json_write_strerror(enum json_write_error error)
{
    switch (error) {
    case JSON_WRITE_OK:
        return "ok";
    case JSON_WRITE_TOO_LARGE:
        return "JSON output too large";
    case JSON_WRITE_TOO_DEEP:
        return "JSON output nested too deep";
    case JSON_WRITE_MISUSE:
        return "JSON writer calls out of order";
    case JSON_WRITE_UTF8:
        return "invalid UTF-8 in a JSON string";
    case JSON_WRITE_NUMBER:
        return "non-finite or too large number";
    case JSON_WRITE_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}

static bool writer_fail(struct json_writer *w, enum json_write_error error)
{
    if (w->error == JSON_WRITE_OK)
        w->error = error;
    return false;
}

/* Counts n more bytes of text. */
static bool writer_grow(struct json_writer *w, size_t n)
{
    if (n > w->max - w->least)
        return writer_fail(w, JSON_WRITE_TOO_LARGE);
    w->least += n;
    return true;
}

/*
 * Puts v (a new reference, or NULL when libjansson could not allocate it) where the next value
 * goes: the top level, the innermost array, or the innermost object under the pending key. least
 * is the fewest bytes it takes in the text.
 */
static bool writer_add(struct json_writer *w, json_t *v, size_t least)
{
    if (w->error != JSON_WRITE_OK) {
        json_decref(v);
        return false;
    }
    if (v == NULL)
        return writer_fail(w, JSON_WRITE_NOMEM);
    if (w->depth == 0) {
        if (w->root != NULL) {
            json_decref(v);
            return writer_fail(w, JSON_WRITE_MISUSE);
        }
        w->root = v;
        return writer_grow(w, least);
    }
    json_t *c = w->open[w->depth - 1];
    if (json_typeof(c) == JSON_OBJECT) {
        if (!w->key_pending) {
            json_decref(v);
            return writer_fail(w, JSON_WRITE_MISUSE);
        }
        size_t members = json_object_size(c);
        if (json_object_setn_new_nocheck(c, w->key, w->key_len, v) != 0)
            return writer_fail(w, JSON_WRITE_NOMEM);
        /* libjansson replaced the key's first value: a JSON object has each key once. */
        if (json_object_size(c) == members)
            return writer_fail(w, JSON_WRITE_MISUSE);
        w->key_pending = false;
        return writer_grow(w, least);
    }
    if (json_array_size(c) > 0)
        least++; /* the comma */
    if (json_array_append_new(c, v) != 0)
        return writer_fail(w, JSON_WRITE_NOMEM);
    return writer_grow(w, least);
}

static bool writer_begin(struct json_writer *w, json_t *c)
{
    if (w->error != JSON_WRITE_OK) {
        json_decref(c);
        return false;
    }
    if (w->depth >= JSON_WRITER_MAX_DEPTH) {
        json_decref(c);
        return writer_fail(w, JSON_WRITE_TOO_DEEP);
    }
    if (!writer_add(w, c, 1))
        return false;
    w->open[w->depth++] = c; /* its parent (or the root) holds the reference */
    return true;
}

static bool writer_end(struct json_writer *w, json_type kind)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth == 0 || json_typeof(w->open[w->depth - 1]) != kind || w->key_pending)
        return writer_fail(w, JSON_WRITE_MISUSE);
    w->depth--;
    return writer_grow(w, 1);
}

bool json_write_begin_object(struct json_writer *w)
{
    return writer_begin(w, json_object());
}

bool json_write_end_object(struct json_writer *w)
{
    return writer_end(w, JSON_OBJECT);
}

bool json_write_begin_array(struct json_writer *w)
{
    return writer_begin(w, json_array());
}

bool json_write_end_array(struct json_writer *w)
{
    return writer_end(w, JSON_ARRAY);
}

bool json_write_keyn(struct json_writer *w, const char *key, size_t len)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth == 0 || key == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    json_t *c = w->open[w->depth - 1];
    if (json_typeof(c) != JSON_OBJECT || w->key_pending)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (!utf8_valid(key, len))
        return writer_fail(w, JSON_WRITE_UTF8);
    if (len >= w->key_cap) {
        size_t cap = len + 1 > 64 ? len + 1 : 64;
        char *k = realloc(w->key, cap);
        if (k == NULL)
            return writer_fail(w, JSON_WRITE_NOMEM);
        w->key = k;
        w->key_cap = cap;
    }
    if (len > 0)
        memcpy(w->key, key, len);
    w->key[len] = '\0';
    w->key_len = len;
    w->key_pending = true;
    /* Quotes and colon, and a comma after an earlier member. */
    return writer_grow(w, len + 3 + (json_object_size(c) > 0));
}

bool json_write_key(struct json_writer *w, const char *key)
{
    if (key == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    return json_write_keyn(w, key, strlen(key));
}

bool json_write_stringn(struct json_writer *w, const char *s, size_t len)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (s == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (!utf8_valid(s, len))
        return writer_fail(w, JSON_WRITE_UTF8);
    if (len > w->max - w->least) /* before copying it */
        return writer_fail(w, JSON_WRITE_TOO_LARGE);
    return writer_add(w, json_stringn_nocheck(s, len), len + 2);
}

bool json_write_string(struct json_writer *w, const char *s)
{
    if (s == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    return json_write_stringn(w, s, strlen(s));
}

bool json_write_string_or_null(struct json_writer *w, const char *s)
{
    return s == NULL ? json_write_null(w) : json_write_string(w, s);
}

bool json_write_int64(struct json_writer *w, int64_t n)
{
    return writer_add(w, json_integer((json_int_t)n), 1);
}

bool json_write_uint64(struct json_writer *w, uint64_t n)
{
    if (n > INT64_MAX)
        return writer_fail(w, JSON_WRITE_NUMBER);
    return json_write_int64(w, (int64_t)n);
}

bool json_write_double(struct json_writer *w, double d)
{
    if (!isfinite(d))
        return writer_fail(w, JSON_WRITE_NUMBER);
    return writer_add(w, json_real(d), 1);
}

bool json_write_bool(struct json_writer *w, bool b)
{
    return writer_add(w, json_boolean(b), b ? 4 : 5);
}

bool json_write_null(struct json_writer *w)
{
    return writer_add(w, json_null(), 4);
}

bool json_write_raw(struct json_writer *w, const char *json, size_t len)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (json == NULL || len == 0)
        return writer_fail(w, JSON_WRITE_MISUSE);
    const struct json_limits limits = {
        .max_bytes = len, .max_depth = JSON_WRITER_MAX_DEPTH - w->depth, .max_nodes = SIZE_MAX};
    struct json_doc *doc = NULL;
    enum json_error e = json_parse(json, len, &limits, &doc, NULL);
    if (e != JSON_OK)
        return writer_fail(w, e == JSON_ERR_TOO_DEEP ? JSON_WRITE_TOO_DEEP
                              : e == JSON_ERR_NOMEM  ? JSON_WRITE_NOMEM
                                                     : JSON_WRITE_MISUSE);
    bool ok = json_write_value(w, json_doc_root(doc));
    json_doc_free(doc);
    return ok;
}

bool json_write_value(struct json_writer *w, const struct json_value *v)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (v == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (v->height > JSON_WRITER_MAX_DEPTH - w->depth)
        return writer_fail(w, JSON_WRITE_TOO_DEEP);
    /* Shared, not copied: neither the document nor the writer changes it. */
    return writer_add(w, json_incref(v->j), 1);
}

/* libjansson's output, into the writer's buffer, up to its maximum. */
static int writer_dump(const char *buffer, size_t size, void *data)
{
    struct json_writer *w = data;

    if (size > w->max - w->len) {
        writer_fail(w, JSON_WRITE_TOO_LARGE);
        return -1;
    }
    if (w->len + size + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + size + 1)
            cap *= 2;
        char *t = realloc(w->text, cap);
        if (t == NULL) {
            writer_fail(w, JSON_WRITE_NOMEM);
            return -1;
        }
        w->text = t;
        w->cap = cap;
    }
    memcpy(w->text + w->len, buffer, size);
    w->len += size;
    return 0;
}

bool json_writer_finish(struct json_writer *w, const char **data, size_t *len)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->root == NULL || w->depth != 0)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (!w->finished) {
        size_t flags = JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
                       ((w->flags & JSON_WRITER_PRETTY) ? JSON_INDENT(2) : JSON_COMPACT);
        w->len = 0;
        if (json_dump_callback(w->root, writer_dump, w, flags) != 0)
            return writer_fail(w, JSON_WRITE_NOMEM); /* unless writer_dump() said why */
        w->text[w->len] = '\0';
        w->finished = true;
    }
    if (data != NULL)
        *data = w->text;
    if (len != NULL)
        *len = w->len;
    return true;
}
