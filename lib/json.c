/* json.h's parser: the limits and the accessors around libjansson's parser, and the document
 * they hand out (its nodes: json_internal.h). The writer is json_write.c. */

#include <jansson.h>

#include "json.h"
#include "json_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(JSON_MAX_DEPTH < JSON_PARSER_MAX_DEPTH, "JSON_MAX_DEPTH above libjansson's");
_Static_assert(sizeof(json_int_t) == sizeof(int64_t), "libjansson's integers are not 64 bits");

/* ---- Document: libjansson's tree, and beside it the nodes json.h hands out ---- */

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
