#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- Document: an arena that owns every node and string ---- */

struct json_block {
    struct json_block *next;
    size_t cap;
    size_t used;
    _Alignas(max_align_t) unsigned char data[];
};

struct json_member {
    const char *key;
    size_t key_len;
    const struct json_value *value;
};

struct json_value {
    enum json_type type;
    union {
        bool boolean;
        struct {
            double value;
            const char *text;
        } number;
        struct {
            const char *ptr;
            size_t len;
        } string;
        struct {
            const struct json_value **items;
            size_t count;
        } array;
        struct {
            const struct json_member *members; /* document order */
            const struct json_member **sorted; /* by key, for lookups */
            size_t count;
        } object;
    } u;
};

struct json_doc {
    struct json_block *blocks;
    size_t next_block_size;
    const struct json_value *root;
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
    free(doc);
}

const struct json_value *json_doc_root(const struct json_doc *doc)
{
    return doc == NULL ? NULL : doc->root;
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

/*
 * The parser is iterative: nesting lives in frames[], not on the C stack, so max_depth is
 * limited by memory alone. Children of open containers wait on pending[] and are copied into
 * the document when their container closes, so arrays index in O(1).
 */
struct json_frame {
    struct json_value *container;
    size_t first_pending;
    const char *key; /* objects: the key whose value comes next */
    size_t key_len;
};

struct json_parser {
    const unsigned char *text;
    size_t len;
    size_t pos;
    const struct json_limits *limits;
    struct json_doc *doc;
    size_t nodes;
    struct json_frame *frames;
    size_t depth;
    size_t frames_cap;
    struct json_member *pending;
    size_t pending_len;
    size_t pending_cap;
    enum json_error error;
    size_t error_offset;
    const char *error_message;
};

static bool parser_fail(struct json_parser *p, enum json_error error, size_t offset,
                        const char *message)
{
    p->error = error;
    p->error_offset = offset;
    p->error_message = message;
    return false;
}

static void parser_skip_ws(struct json_parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static struct json_value *parser_new_value(struct json_parser *p, enum json_type type)
{
    if (p->nodes >= p->limits->max_nodes) {
        parser_fail(p, JSON_ERR_TOO_MANY, p->pos, "too many values");
        return NULL;
    }
    struct json_value *v = doc_alloc(p->doc, sizeof(*v));
    if (v == NULL) {
        parser_fail(p, JSON_ERR_NOMEM, p->pos, "out of memory");
        return NULL;
    }
    p->nodes++;
    memset(v, 0, sizeof(*v));
    v->type = type;
    return v;
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits of a \u escape at text[at]. */
static bool parser_hex4(struct json_parser *p, size_t at, size_t end, uint32_t *out)
{
    uint32_t v = 0;
    if (end - at < 4)
        return parser_fail(p, JSON_ERR_STRING, at, "truncated \\u escape");
    for (size_t i = 0; i < 4; i++) {
        int d = hex_digit(p->text[at + i]);
        if (d < 0)
            return parser_fail(p, JSON_ERR_STRING, at + i, "bad hex digit in \\u escape");
        v = (v << 4) | (uint32_t)d;
    }
    *out = v;
    return true;
}

/*
 * Parses the string whose opening quote is at p->pos into the document. Decoding never makes a
 * string longer, so the raw length bounds the allocation.
 */
static bool parser_string(struct json_parser *p, const char **out, size_t *out_len)
{
    size_t start = p->pos + 1;
    size_t end = start;

    /* First find the closing quote, so the decoded string can be allocated once. */
    for (;;) {
        if (end >= p->len)
            return parser_fail(p, JSON_ERR_SYNTAX, p->pos, "unterminated string");
        unsigned char c = p->text[end];
        if (c == '"')
            break;
        end += (c == '\\') ? 2 : 1;
    }

    char *buf = doc_alloc(p->doc, end - start + 1);
    if (buf == NULL)
        return parser_fail(p, JSON_ERR_NOMEM, start, "out of memory");
    size_t n = 0;
    size_t i = start;
    while (i < end) {
        unsigned char c = p->text[i];
        if (c == '\\') {
            unsigned char e = p->text[i + 1];
            switch (e) {
            case '"':
            case '\\':
            case '/':
                buf[n++] = (char)e;
                i += 2;
                continue;
            case 'b':
                buf[n++] = '\b';
                i += 2;
                continue;
            case 'f':
                buf[n++] = '\f';
                i += 2;
                continue;
            case 'n':
                buf[n++] = '\n';
                i += 2;
                continue;
            case 'r':
                buf[n++] = '\r';
                i += 2;
                continue;
            case 't':
                buf[n++] = '\t';
                i += 2;
                continue;
            case 'u':
                break;
            default:
                return parser_fail(p, JSON_ERR_STRING, i, "invalid escape");
            }
            uint32_t cp;
            if (!parser_hex4(p, i + 2, end, &cp))
                return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return parser_fail(p, JSON_ERR_STRING, i, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t low;
                size_t j = i + 6;
                if (end - j < 6 || p->text[j] != '\\' || p->text[j + 1] != 'u')
                    return parser_fail(p, JSON_ERR_STRING, i,
                                       "high surrogate not followed by a low surrogate");
                if (!parser_hex4(p, j + 2, end, &low))
                    return false;
                if (low < 0xDC00 || low > 0xDFFF)
                    return parser_fail(p, JSON_ERR_STRING, j,
                                       "high surrogate not followed by a low surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            }
            n += utf8_encode(cp, buf + n);
            i += 6;
        } else if (c < 0x20) {
            return parser_fail(p, JSON_ERR_STRING, i, "control character in string");
        } else if (c < 0x80) {
            buf[n++] = (char)c;
            i++;
        } else {
            size_t k = utf8_sequence_length(p->text + i, end - i);
            if (k == 0)
                return parser_fail(p, JSON_ERR_UTF8, i, "invalid UTF-8 in string");
            memcpy(buf + n, p->text + i, k);
            n += k;
            i += k;
        }
    }
    buf[n] = '\0';
    p->pos = end + 1;
    *out = buf;
    *out_len = n;
    return true;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool parser_number(struct json_parser *p, struct json_value *v)
{
    size_t start = p->pos;
    size_t i = start;
    const unsigned char *t = p->text;

    if (i < p->len && t[i] == '-')
        i++;
    if (i >= p->len || !is_digit(t[i]))
        return parser_fail(p, JSON_ERR_SYNTAX, i, "expected a digit");
    if (t[i] == '0') {
        i++;
    } else {
        while (i < p->len && is_digit(t[i]))
            i++;
    }
    if (i < p->len && t[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(t[i]))
            return parser_fail(p, JSON_ERR_SYNTAX, i, "expected a digit after '.'");
        while (i < p->len && is_digit(t[i]))
            i++;
    }
    if (i < p->len && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < p->len && (t[i] == '+' || t[i] == '-'))
            i++;
        if (i >= p->len || !is_digit(t[i]))
            return parser_fail(p, JSON_ERR_SYNTAX, i, "expected a digit in the exponent");
        while (i < p->len && is_digit(t[i]))
            i++;
    }
    size_t n = i - start;
    if (n > JSON_MAX_NUMBER_LEN)
        return parser_fail(p, JSON_ERR_NUMBER, start, "number too long");
    char *text = doc_alloc(p->doc, n + 1);
    if (text == NULL)
        return parser_fail(p, JSON_ERR_NOMEM, start, "out of memory");
    memcpy(text, t + start, n);
    text[n] = '\0';

    /* The grammar was checked above, so strtod sees a plain C-locale number. */
    errno = 0;
    char *endp = NULL;
    double d = strtod(text, &endp);
    if (endp != text + n)
        return parser_fail(p, JSON_ERR_NUMBER, start, "unreadable number");
    if (errno == ERANGE && isinf(d))
        return parser_fail(p, JSON_ERR_NUMBER, start, "number out of range");
    v->u.number.value = d;
    v->u.number.text = text;
    p->pos = i;
    return true;
}

static bool parser_literal(struct json_parser *p, const char *word, size_t n)
{
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0)
        return parser_fail(p, JSON_ERR_SYNTAX, p->pos, "unexpected character");
    p->pos += n;
    return true;
}

/* Parses a scalar at p->pos (which is not at the end of input). */
static const struct json_value *parser_scalar(struct json_parser *p)
{
    unsigned char c = p->text[p->pos];
    struct json_value *v;

    switch (c) {
    case '"':
        v = parser_new_value(p, JSON_STRING);
        if (v == NULL || !parser_string(p, &v->u.string.ptr, &v->u.string.len))
            return NULL;
        return v;
    case 't':
    case 'f':
        v = parser_new_value(p, JSON_BOOL);
        if (v == NULL)
            return NULL;
        v->u.boolean = c == 't';
        if (!parser_literal(p, c == 't' ? "true" : "false", c == 't' ? 4 : 5))
            return NULL;
        return v;
    case 'n':
        v = parser_new_value(p, JSON_NULL);
        if (v == NULL || !parser_literal(p, "null", 4))
            return NULL;
        return v;
    default:
        if (c != '-' && !is_digit(c)) {
            parser_fail(p, JSON_ERR_SYNTAX, p->pos, "unexpected character");
            return NULL;
        }
        v = parser_new_value(p, JSON_NUMBER);
        if (v == NULL || !parser_number(p, v))
            return NULL;
        return v;
    }
}

static bool grow_array(void **ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return false;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return false;
    void *n = realloc(*ptr, ncap * elem);
    if (n == NULL)
        return false;
    *ptr = n;
    *cap = ncap;
    return true;
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

/* Moves the pending children of the innermost container into it and closes it. */
static bool parser_close(struct json_parser *p)
{
    struct json_frame *f = &p->frames[p->depth - 1];
    struct json_value *c = f->container;
    size_t count = p->pending_len - f->first_pending;
    /* pending is still NULL when nothing was ever pending. */
    const struct json_member *kids = count > 0 ? p->pending + f->first_pending : NULL;

    if (c->type == JSON_ARRAY) {
        const struct json_value **items = NULL;
        if (count > 0) {
            items = doc_alloc(p->doc, count * sizeof(*items));
            if (items == NULL)
                return parser_fail(p, JSON_ERR_NOMEM, p->pos, "out of memory");
            for (size_t i = 0; i < count; i++)
                items[i] = kids[i].value;
        }
        c->u.array.items = items;
        c->u.array.count = count;
    } else {
        struct json_member *members = NULL;
        const struct json_member **sorted = NULL;
        if (count > 0) {
            members = doc_alloc(p->doc, count * sizeof(*members));
            sorted = doc_alloc(p->doc, count * sizeof(*sorted));
            if (members == NULL || sorted == NULL)
                return parser_fail(p, JSON_ERR_NOMEM, p->pos, "out of memory");
            memcpy(members, kids, count * sizeof(*members));
            for (size_t i = 0; i < count; i++)
                sorted[i] = &members[i];
            qsort(sorted, count, sizeof(*sorted), member_compare);
            for (size_t i = 1; i < count; i++) {
                if (member_compare(&sorted[i - 1], &sorted[i]) == 0)
                    return parser_fail(p, JSON_ERR_DUPLICATE_KEY, p->pos, "duplicate key");
            }
        }
        c->u.object.members = members;
        c->u.object.sorted = sorted;
        c->u.object.count = count;
    }
    p->pending_len = f->first_pending;
    p->depth--;
    return true;
}

/* Parses `"key" :` inside an object into the innermost frame. */
static bool parser_key(struct json_parser *p)
{
    struct json_frame *f = &p->frames[p->depth - 1];
    parser_skip_ws(p);
    if (p->pos >= p->len || p->text[p->pos] != '"')
        return parser_fail(p, JSON_ERR_SYNTAX, p->pos, "expected a string key");
    if (!parser_string(p, &f->key, &f->key_len))
        return false;
    parser_skip_ws(p);
    if (p->pos >= p->len || p->text[p->pos] != ':')
        return parser_fail(p, JSON_ERR_SYNTAX, p->pos, "expected ':'");
    p->pos++;
    return true;
}

static bool parser_run(struct json_parser *p)
{
    const struct json_value *v;

    for (;;) {
        /* A value is due. */
        parser_skip_ws(p);
        if (p->pos >= p->len)
            return parser_fail(p, JSON_ERR_SYNTAX, p->pos, "unexpected end of input");
        unsigned char c = p->text[p->pos];
        if (c == '{' || c == '[') {
            if (p->depth >= p->limits->max_depth)
                return parser_fail(p, JSON_ERR_TOO_DEEP, p->pos, "nesting too deep");
            struct json_value *cv = parser_new_value(p, c == '{' ? JSON_OBJECT : JSON_ARRAY);
            if (cv == NULL)
                return false;
            if (!grow_array((void **)&p->frames, &p->frames_cap, p->depth + 1, sizeof(*p->frames)))
                return parser_fail(p, JSON_ERR_NOMEM, p->pos, "out of memory");
            struct json_frame *f = &p->frames[p->depth++];
            f->container = cv;
            f->first_pending = p->pending_len;
            f->key = NULL;
            f->key_len = 0;
            p->pos++;
            parser_skip_ws(p);
            if (p->pos < p->len && p->text[p->pos] == (c == '{' ? '}' : ']')) {
                p->pos++;
                if (!parser_close(p))
                    return false;
                v = cv;
            } else {
                if (c == '{' && !parser_key(p))
                    return false;
                continue;
            }
        } else {
            v = parser_scalar(p);
            if (v == NULL)
                return false;
        }

        /* A value is complete: hand it to its container, closing containers as they end. */
        for (;;) {
            if (p->depth == 0) {
                p->doc->root = v;
                return true;
            }
            struct json_frame *f = &p->frames[p->depth - 1];
            if (!grow_array((void **)&p->pending, &p->pending_cap, p->pending_len + 1,
                            sizeof(*p->pending)))
                return parser_fail(p, JSON_ERR_NOMEM, p->pos, "out of memory");
            struct json_member *m = &p->pending[p->pending_len++];
            m->key = f->key;
            m->key_len = f->key_len;
            m->value = v;

            bool is_object = f->container->type == JSON_OBJECT;
            parser_skip_ws(p);
            if (p->pos >= p->len)
                return parser_fail(p, JSON_ERR_SYNTAX, p->pos, "unexpected end of input");
            c = p->text[p->pos++];
            if (c == ',') {
                if (is_object && !parser_key(p))
                    return false;
                break; /* the next element is due */
            }
            if (c != (is_object ? '}' : ']'))
                return parser_fail(p, JSON_ERR_SYNTAX, p->pos - 1,
                                   is_object ? "expected ',' or '}'" : "expected ',' or ']'");
            v = f->container;
            if (!parser_close(p))
                return false;
        }
    }
}

enum json_error json_parse(const char *text, size_t len, const struct json_limits *limits,
                           struct json_doc **out, struct json_parse_error *err)
{
    struct json_parser p;

    *out = NULL;
    memset(&p, 0, sizeof(p));
    p.text = (const unsigned char *)text;
    p.len = len;
    p.limits = limits;
    p.error = JSON_OK;

    if (len > limits->max_bytes) {
        parser_fail(&p, JSON_ERR_TOO_LARGE, limits->max_bytes, "document too large");
        goto out;
    }
    p.doc = calloc(1, sizeof(*p.doc));
    if (p.doc == NULL) {
        parser_fail(&p, JSON_ERR_NOMEM, 0, "out of memory");
        goto out;
    }
    p.doc->next_block_size = JSON_BLOCK_MIN;
    if (!parser_run(&p))
        goto out;
    parser_skip_ws(&p);
    if (p.pos != p.len) {
        parser_fail(&p, JSON_ERR_TRAILING, p.pos, "trailing data after the value");
        goto out;
    }
    *out = p.doc;
    p.doc = NULL;
out:
    json_doc_free(p.doc);
    free(p.frames);
    free(p.pending);
    if (err != NULL) {
        err->offset = p.error == JSON_OK ? 0 : p.error_offset;
        err->message = p.error == JSON_OK ? "ok" : p.error_message;
    }
    return p.error;
}

/* ---- Accessors ---- */

enum json_type json_value_type(const struct json_value *v)
{
    return v == NULL ? JSON_NULL : v->type;
}

bool json_is_null(const struct json_value *v)
{
    return v != NULL && v->type == JSON_NULL;
}

const struct json_value *json_object_getn(const struct json_value *obj, const char *key,
                                          size_t key_len)
{
    if (obj == NULL || obj->type != JSON_OBJECT || key == NULL || obj->u.object.count == 0)
        return NULL;
    struct json_member probe = {.key = key, .key_len = key_len, .value = NULL};
    const struct json_member *pp = &probe;
    const struct json_member *const *hit = bsearch(&pp, obj->u.object.sorted, obj->u.object.count,
                                                   sizeof(*obj->u.object.sorted), member_compare);
    return hit == NULL ? NULL : (*hit)->value;
}

const struct json_value *json_object_get(const struct json_value *obj, const char *key)
{
    if (key == NULL)
        return NULL;
    return json_object_getn(obj, key, strlen(key));
}

size_t json_object_size(const struct json_value *obj)
{
    return (obj == NULL || obj->type != JSON_OBJECT) ? 0 : obj->u.object.count;
}

bool json_object_member(const struct json_value *obj, size_t index, const char **key,
                        size_t *key_len, const struct json_value **value)
{
    if (obj == NULL || obj->type != JSON_OBJECT || index >= obj->u.object.count)
        return false;
    const struct json_member *m = &obj->u.object.members[index];
    if (key != NULL)
        *key = m->key;
    if (key_len != NULL)
        *key_len = m->key_len;
    if (value != NULL)
        *value = m->value;
    return true;
}

size_t json_array_length(const struct json_value *arr)
{
    return (arr == NULL || arr->type != JSON_ARRAY) ? 0 : arr->u.array.count;
}

const struct json_value *json_array_get(const struct json_value *arr, size_t index)
{
    if (arr == NULL || arr->type != JSON_ARRAY || index >= arr->u.array.count)
        return NULL;
    return arr->u.array.items[index];
}

bool json_get_bool(const struct json_value *v, bool *out)
{
    if (v == NULL || v->type != JSON_BOOL)
        return false;
    *out = v->u.boolean;
    return true;
}

bool json_get_double(const struct json_value *v, double *out)
{
    if (v == NULL || v->type != JSON_NUMBER)
        return false;
    *out = v->u.number.value;
    return true;
}

bool json_get_int64(const struct json_value *v, int64_t *out)
{
    if (v == NULL || v->type != JSON_NUMBER)
        return false;
    const char *t = v->u.number.text;
    if (strpbrk(t, ".eE") != NULL)
        return false;
    errno = 0;
    char *end = NULL;
    _Static_assert(sizeof(long long) == sizeof(int64_t), "long long is not 64 bits");
    long long n = strtoll(t, &end, 10);
    if (errno != 0 || end == t || *end != '\0')
        return false;
    *out = (int64_t)n;
    return true;
}

const char *json_number_text(const struct json_value *v)
{
    return (v == NULL || v->type != JSON_NUMBER) ? NULL : v->u.number.text;
}

bool json_get_string(const struct json_value *v, const char **out, size_t *len)
{
    if (v == NULL || v->type != JSON_STRING)
        return false;
    if (len == NULL) {
        if (memchr(v->u.string.ptr, '\0', v->u.string.len) != NULL)
            return false;
    } else {
        *len = v->u.string.len;
    }
    *out = v->u.string.ptr;
    return true;
}

const char *json_object_get_string(const struct json_value *obj, const char *key)
{
    const char *s;
    if (!json_get_string(json_object_get(obj, key), &s, NULL))
        return NULL;
    return s;
}

/* ---- Writer ---- */

enum json_level_kind { LEVEL_ARRAY, LEVEL_OBJECT };

struct json_level {
    enum json_level_kind kind;
    bool key_pending; /* objects: a key was written, its value is due */
    size_t count;
};

struct json_writer {
    char *buf;
    size_t len;
    size_t cap;
    size_t max;
    unsigned flags;
    enum json_write_error error;
    bool done; /* the top-level value is complete */
    size_t depth;
    struct json_level levels[JSON_WRITER_MAX_DEPTH];
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
    free(w->buf);
    free(w);
}

void json_writer_reset(struct json_writer *w)
{
    w->len = 0;
    if (w->buf != NULL)
        w->buf[0] = '\0';
    w->error = JSON_WRITE_OK;
    w->done = false;
    w->depth = 0;
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
        return "non-finite number";
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

static bool writer_put(struct json_writer *w, const char *data, size_t n)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (n == 0)
        return true;
    if (n > w->max - w->len || n >= SIZE_MAX - w->len)
        return writer_fail(w, JSON_WRITE_TOO_LARGE);
    /* need <= max + 1 after the check above, and it cannot wrap. */
    size_t need = w->len + n + 1; /* the NUL kept after the text */
    if (need > w->cap) {
        size_t limit = w->max < SIZE_MAX ? w->max + 1 : SIZE_MAX;
        size_t ncap = w->cap ? w->cap : 256;
        while (ncap < need && ncap <= SIZE_MAX / 2)
            ncap *= 2;
        if (ncap > limit)
            ncap = limit;
        if (ncap < need)
            ncap = need;
        char *nb = realloc(w->buf, ncap);
        if (nb == NULL)
            return writer_fail(w, JSON_WRITE_NOMEM);
        w->buf = nb;
        w->cap = ncap;
    }
    memcpy(w->buf + w->len, data, n);
    w->len += n;
    w->buf[w->len] = '\0';
    return true;
}

static bool writer_newline(struct json_writer *w, size_t depth)
{
    static const char spaces[] = "                                ";
    if (!(w->flags & JSON_WRITER_PRETTY))
        return true;
    if (!writer_put(w, "\n", 1))
        return false;
    size_t n = depth * 2;
    while (n > 0) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
        if (!writer_put(w, spaces, k))
            return false;
        n -= k;
    }
    return true;
}

static bool writer_escaped(struct json_writer *w, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* start of the bytes not yet copied */

    if (!writer_put(w, "\"", 1))
        return false;
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t k = utf8_sequence_length(u + i, len - i);
            if (k == 0)
                return writer_fail(w, JSON_WRITE_UTF8);
            i += k;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (!writer_put(w, s + run, i - run))
            return false;
        char esc[8];
        const char *e = esc;
        size_t elen = 2;
        switch (c) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        default: {
            int m = snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)c);
            if (m != 6)
                return writer_fail(w, JSON_WRITE_NOMEM);
            elen = 6;
            break;
        }
        }
        if (!writer_put(w, e, elen))
            return false;
        i++;
        run = i;
    }
    if (!writer_put(w, s + run, len - run))
        return false;
    return writer_put(w, "\"", 1);
}

/* Everything due before a value: the check that one is allowed here, a comma, an indent. */
static bool writer_before_value(struct json_writer *w)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth == 0)
        return w->done ? writer_fail(w, JSON_WRITE_MISUSE) : true;
    struct json_level *l = &w->levels[w->depth - 1];
    if (l->kind == LEVEL_OBJECT) {
        if (!l->key_pending)
            return writer_fail(w, JSON_WRITE_MISUSE);
        l->key_pending = false;
        return true;
    }
    if (l->count > 0 && !writer_put(w, ",", 1))
        return false;
    l->count++;
    return writer_newline(w, w->depth);
}

static void writer_after_value(struct json_writer *w)
{
    if (w->depth == 0)
        w->done = true;
}

static bool writer_scalar(struct json_writer *w, const char *text, size_t len)
{
    if (!writer_before_value(w) || !writer_put(w, text, len))
        return false;
    writer_after_value(w);
    return true;
}

static bool writer_begin(struct json_writer *w, enum json_level_kind kind)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth >= JSON_WRITER_MAX_DEPTH)
        return writer_fail(w, JSON_WRITE_TOO_DEEP);
    if (!writer_before_value(w) || !writer_put(w, kind == LEVEL_OBJECT ? "{" : "[", 1))
        return false;
    struct json_level *l = &w->levels[w->depth++];
    l->kind = kind;
    l->key_pending = false;
    l->count = 0;
    return true;
}

static bool writer_end(struct json_writer *w, enum json_level_kind kind)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth == 0)
        return writer_fail(w, JSON_WRITE_MISUSE);
    struct json_level *l = &w->levels[w->depth - 1];
    if (l->kind != kind || l->key_pending)
        return writer_fail(w, JSON_WRITE_MISUSE);
    size_t count = l->count;
    w->depth--;
    if (count > 0 && !writer_newline(w, w->depth))
        return false;
    if (!writer_put(w, kind == LEVEL_OBJECT ? "}" : "]", 1))
        return false;
    writer_after_value(w);
    return true;
}

bool json_write_begin_object(struct json_writer *w)
{
    return writer_begin(w, LEVEL_OBJECT);
}

bool json_write_end_object(struct json_writer *w)
{
    return writer_end(w, LEVEL_OBJECT);
}

bool json_write_begin_array(struct json_writer *w)
{
    return writer_begin(w, LEVEL_ARRAY);
}

bool json_write_end_array(struct json_writer *w)
{
    return writer_end(w, LEVEL_ARRAY);
}

bool json_write_keyn(struct json_writer *w, const char *key, size_t len)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth == 0 || key == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    struct json_level *l = &w->levels[w->depth - 1];
    if (l->kind != LEVEL_OBJECT || l->key_pending)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (l->count > 0 && !writer_put(w, ",", 1))
        return false;
    if (!writer_newline(w, w->depth) || !writer_escaped(w, key, len))
        return false;
    if (!writer_put(w, (w->flags & JSON_WRITER_PRETTY) ? ": " : ":",
                    (w->flags & JSON_WRITER_PRETTY) ? 2 : 1))
        return false;
    l->key_pending = true;
    l->count++;
    return true;
}

bool json_write_key(struct json_writer *w, const char *key)
{
    if (key == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    return json_write_keyn(w, key, strlen(key));
}

bool json_write_stringn(struct json_writer *w, const char *s, size_t len)
{
    if (s == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (!writer_before_value(w) || !writer_escaped(w, s, len))
        return false;
    writer_after_value(w);
    return true;
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
    char text[32];
    int m = snprintf(text, sizeof(text), "%" PRId64, n);
    if (m < 0 || (size_t)m >= sizeof(text))
        return writer_fail(w, JSON_WRITE_NOMEM);
    return writer_scalar(w, text, (size_t)m);
}

bool json_write_uint64(struct json_writer *w, uint64_t n)
{
    char text[32];
    int m = snprintf(text, sizeof(text), "%" PRIu64, n);
    if (m < 0 || (size_t)m >= sizeof(text))
        return writer_fail(w, JSON_WRITE_NOMEM);
    return writer_scalar(w, text, (size_t)m);
}

bool json_write_double(struct json_writer *w, double d)
{
    char text[40];
    int m = -1;

    if (!isfinite(d))
        return writer_fail(w, JSON_WRITE_NUMBER);
    /* The shortest of %.15g..%.17g that reads back exactly: 0.1 stays "0.1". */
    for (int prec = 15; prec <= 17; prec++) {
        m = snprintf(text, sizeof(text), "%.*g", prec, d);
        if (m < 0 || (size_t)m >= sizeof(text))
            return writer_fail(w, JSON_WRITE_NOMEM);
        if (strtod(text, NULL) == d)
            break;
    }
    return writer_scalar(w, text, (size_t)m);
}

bool json_write_bool(struct json_writer *w, bool b)
{
    return b ? writer_scalar(w, "true", 4) : writer_scalar(w, "false", 5);
}

bool json_write_null(struct json_writer *w)
{
    return writer_scalar(w, "null", 4);
}

bool json_write_raw(struct json_writer *w, const char *json, size_t len)
{
    if (json == NULL || len == 0)
        return writer_fail(w, JSON_WRITE_MISUSE);
    return writer_scalar(w, json, len);
}

bool json_write_value(struct json_writer *w, const struct json_value *v)
{
    if (v == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    switch (v->type) {
    case JSON_NULL:
        return json_write_null(w);
    case JSON_BOOL:
        return json_write_bool(w, v->u.boolean);
    case JSON_NUMBER:
        return writer_scalar(w, v->u.number.text, strlen(v->u.number.text));
    case JSON_STRING:
        return json_write_stringn(w, v->u.string.ptr, v->u.string.len);
    case JSON_ARRAY:
        /* Recursion is bounded: writer_begin() refuses to nest past JSON_WRITER_MAX_DEPTH. */
        if (!json_write_begin_array(w))
            return false;
        for (size_t i = 0; i < v->u.array.count; i++) {
            if (!json_write_value(w, v->u.array.items[i]))
                return false;
        }
        return json_write_end_array(w);
    case JSON_OBJECT:
        if (!json_write_begin_object(w))
            return false;
        for (size_t i = 0; i < v->u.object.count; i++) {
            const struct json_member *m = &v->u.object.members[i];
            if (!json_write_keyn(w, m->key, m->key_len) || !json_write_value(w, m->value))
                return false;
        }
        return json_write_end_object(w);
    }
    return writer_fail(w, JSON_WRITE_MISUSE);
}

bool json_writer_finish(struct json_writer *w, const char **data, size_t *len)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (!w->done || w->depth != 0)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (data != NULL)
        *data = w->buf;
    if (len != NULL)
        *len = w->len;
    return true;
}
