/*
 * json: bounded JSON (RFC 8259) parsing on libjansson, and writing, shared by vouchd and vouchctl.
 *
 * The module is pure: it does no I/O of its own and keeps no global state, so it can be
 * unit-tested and fuzzed alone, and it is safe on untrusted input. (libjansson seeds the hash
 * function of its objects once per process, from /dev/urandom when it can.)
 *
 * Parsing: json_parse() reads a whole document with libjansson (duplicate keys refused) under
 * limits the caller chooses (input bytes, nesting depth, number of values), checked on the text
 * before libjansson builds anything, and returns a struct json_doc that owns every value, key
 * and string of the tree. The parser is strict: it rejects trailing garbage, invalid UTF-8, raw
 * control characters in strings, lone UTF-16 surrogates in \u escapes, duplicate object keys,
 * integers outside int64_t and numbers that overflow a double. Every `const struct json_value *`
 * handed out by the getters borrows from its document and is valid until json_doc_free().
 * Strings are decoded to UTF-8, stored with their length (a "\u0000" escape yields an embedded
 * NUL; object keys never contain one) and NUL-terminated.
 *
 * Writing: a struct json_writer streams one JSON value: each call appends its text at once to a
 * buffer that refuses to grow past a maximum fixed at creation (no tree is built), and the text
 * is byte for byte what libjansson's encoder writes for the same value (compact, or with
 * JSON_WRITER_PRETTY its two-space indent), so a writer's text is the same whichever way it is
 * made. It places commas and colons itself and fails on misuse (a value where a key is due,
 * unbalanced ends, a second top-level value, a key written twice in one object: the keys of
 * each open object are kept in a hash set). Errors are sticky: the first one is kept, later
 * calls do nothing and return false, and json_writer_finish() reports it, so a caller may check
 * each call or chain them and check once. The writer owns its buffer; json_writer_finish() lends
 * it out until the writer is reset or freed.
 *
 * No name here is libjansson's (json_object_find, json_array_at, enum json_kind where it has
 * json_object_get, json_array_get, json_type), so a file may include both headers.
 */
#ifndef VOUCH_JSON_H
#define VOUCH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_WUR __attribute__((warn_unused_result))

/* ---- Parser ---- */

enum json_kind {
    JSON_KIND_NULL,
    JSON_KIND_BOOL,
    JSON_KIND_NUMBER,
    JSON_KIND_STRING,
    JSON_KIND_ARRAY,
    JSON_KIND_OBJECT,
};

enum json_error {
    JSON_OK = 0,
    JSON_ERR_TOO_LARGE,     /* input longer than limits->max_bytes */
    JSON_ERR_TOO_DEEP,      /* containers nested deeper than limits->max_depth or JSON_MAX_DEPTH */
    JSON_ERR_TOO_MANY,      /* more than limits->max_nodes values */
    JSON_ERR_SYNTAX,        /* not JSON (includes an empty input and a truncated document) */
    JSON_ERR_TRAILING,      /* a complete value followed by something other than whitespace */
    JSON_ERR_STRING,        /* raw control character or bad escape in a string, \u0000 in a key */
    JSON_ERR_UTF8,          /* invalid UTF-8 in a string */
    JSON_ERR_NUMBER,        /* an integer outside int64_t, or a number that overflows a double */
    JSON_ERR_DUPLICATE_KEY, /* the same key twice in one object */
    JSON_ERR_NOMEM,
};

/* Hard caps on one parse. A scalar document has depth 0, "[]" depth 1, "[{}]" depth 2. Every
 * value counts as one node (object keys do not). A limit of 0 allows nothing beyond its minimum:
 * max_depth 0 accepts only scalars, max_nodes 0 rejects everything. A max_depth above
 * JSON_MAX_DEPTH acts as JSON_MAX_DEPTH. */
struct json_limits {
    size_t max_bytes;
    size_t max_depth;
    size_t max_nodes;
};

/* Where and why a parse failed. message is a static string. */
struct json_parse_error {
    size_t offset; /* byte offset into the input: the offending byte for a limit; for other
                      errors where libjansson stopped, usually just after the offending token */
    const char *message;
};

/* Deepest nesting any parse accepts: libjansson's parser recurses, and stops at 2048 levels of
 * values (JSON_PARSER_MAX_DEPTH), so at 2047 levels of containers that hold a scalar. */
#define JSON_MAX_DEPTH 2047

struct json_doc;
struct json_value;

/*
 * Parses text[0..len) (NUL bytes are not special) into *out, which the caller frees with
 * json_doc_free(). On failure *out is NULL and, when err is not NULL, err says where and why.
 */
enum json_error json_parse(const char *text, size_t len, const struct json_limits *limits,
                           struct json_doc **out, struct json_parse_error *err) JSON_WUR;
/* Frees the document and everything borrowed from it. NULL is allowed. */
void json_doc_free(struct json_doc *doc);
const struct json_value *json_doc_root(const struct json_doc *doc);
/* A short static description of an error code. */
const char *json_strerror(enum json_error error);

/* Accessors accept NULL and values of the wrong type: they then return false, 0 or NULL, so
 * lookups can be chained (json_object_find(json_object_find(doc, "push"), "token_state")). */
enum json_kind json_value_kind(const struct json_value *v);
bool json_value_is_null(const struct json_value *v);

/* The value of an object's key, or NULL when v is not an object or has no such key. The
 * key is compared byte for byte. */
const struct json_value *json_object_find(const struct json_value *obj, const char *key);
const struct json_value *json_object_findn(const struct json_value *obj, const char *key,
                                           size_t key_len);
/* Number of members of an object (0 for anything else). */
size_t json_object_count(const struct json_value *obj);
/* The index-th member in document order. key_len may be NULL. */
bool json_object_member(const struct json_value *obj, size_t index, const char **key,
                        size_t *key_len, const struct json_value **value) JSON_WUR;

/* Number of elements of an array (0 for anything else), and the index-th one (NULL if out of
 * range). */
size_t json_array_length(const struct json_value *arr);
const struct json_value *json_array_at(const struct json_value *arr, size_t index);

bool json_get_bool(const struct json_value *v, bool *out) JSON_WUR;
bool json_get_double(const struct json_value *v, double *out) JSON_WUR;
/* Only integer literals (no fraction or exponent; the parser refuses those outside int64_t). */
bool json_get_int64(const struct json_value *v, int64_t *out) JSON_WUR;
/* The number's text as the writer writes it, or NULL if v is no number: an integer in decimal
 * ("-0" reads as 0), any other number as libjansson writes a double ("%.17g", with ".0" added
 * when it would look like an integer: "1.50" gives "1.5", "1e3" gives "1000.0"). */
const char *json_number_text(const struct json_value *v);
/* Borrows the decoded UTF-8 string. With len NULL the caller wants a C string, so a string
 * containing a NUL byte is refused; with len set, any string is returned with its length. */
bool json_get_string(const struct json_value *v, const char **out, size_t *len) JSON_WUR;
/* Shorthand: the C string under key, or NULL when absent, not a string, or containing NUL. */
const char *json_object_get_string(const struct json_value *obj, const char *key);

/* ---- Writer ---- */

enum json_write_error {
    JSON_WRITE_OK = 0,
    JSON_WRITE_TOO_LARGE, /* the text would pass the writer's maximum */
    JSON_WRITE_TOO_DEEP,  /* containers nested deeper than JSON_WRITER_MAX_DEPTH */
    JSON_WRITE_MISUSE,    /* call out of order, or a key twice: see the module comment */
    JSON_WRITE_UTF8,      /* a string or key that is not valid UTF-8 */
    JSON_WRITE_NUMBER,    /* a NaN or infinite double, an integer above INT64_MAX */
    JSON_WRITE_NOMEM,
};

#define JSON_WRITER_MAX_DEPTH 128

/* Flags for json_writer_new(). */
#define JSON_WRITER_PRETTY 0x1u /* newlines and two-space indents */

struct json_writer;

/* A writer whose text may never exceed max_bytes bytes (not counting the NUL it keeps after
 * the text). A call fails with JSON_WRITE_TOO_LARGE as soon as what it adds certainly passes the
 * maximum; json_writer_finish() checks the exact length. NULL when out of memory. */
struct json_writer *json_writer_new(size_t max_bytes, unsigned flags) JSON_WUR;
void json_writer_free(struct json_writer *w);
/* Forgets the text and any error; keeps the buffer, the maximum and the flags. */
void json_writer_reset(struct json_writer *w);
enum json_write_error json_writer_error(const struct json_writer *w);
const char *json_write_strerror(enum json_write_error error);

/*
 * Checks that exactly one complete top-level value was written and no call failed, then lends
 * out the NUL-terminated text (valid until the writer is reset or freed). data and len may each
 * be NULL.
 */
bool json_writer_finish(struct json_writer *w, const char **data, size_t *len) JSON_WUR;

bool json_write_begin_object(struct json_writer *w) JSON_WUR;
bool json_write_end_object(struct json_writer *w) JSON_WUR;
bool json_write_begin_array(struct json_writer *w) JSON_WUR;
bool json_write_end_array(struct json_writer *w) JSON_WUR;
/* A member name; the next call must write its value. A key already written in the same object
 * makes that value call fail (JSON_WRITE_MISUSE). */
bool json_write_key(struct json_writer *w, const char *key) JSON_WUR;
bool json_write_keyn(struct json_writer *w, const char *key, size_t len) JSON_WUR;
/* Strings must be valid UTF-8; they are escaped as needed (quote, backslash, and control
 * characters as \b \f \n \r \t or \u00XX; nothing else). */
bool json_write_string(struct json_writer *w, const char *s) JSON_WUR;
bool json_write_stringn(struct json_writer *w, const char *s, size_t len) JSON_WUR;
/* A string, or null when s is NULL (the admin API's "absent = null"). */
bool json_write_string_or_null(struct json_writer *w, const char *s) JSON_WUR;
bool json_write_int64(struct json_writer *w, int64_t n) JSON_WUR;
/* Up to INT64_MAX (the parser refuses larger integers): above it, JSON_WRITE_NUMBER. */
bool json_write_uint64(struct json_writer *w, uint64_t n) JSON_WUR;
/* Finite numbers only, written so they read back to the same double: "%.17g", with ".0" added
 * when it would look like an integer (0.1 gives "0.10000000000000001", 2 gives "2.0"). */
bool json_write_double(struct json_writer *w, double d) JSON_WUR;
bool json_write_bool(struct json_writer *w, bool b) JSON_WUR;
bool json_write_null(struct json_writer *w) JSON_WUR;
/* Pre-serialized JSON, parsed and inserted as one value (so written in the writer's layout);
 * anything but exactly one valid JSON value is JSON_WRITE_MISUSE. */
bool json_write_raw(struct json_writer *w, const char *json, size_t len) JSON_WUR;
/* A parsed value, re-serialized (members keep their order, numbers read back the same; their
 * text is json_number_text()'s). Its text is written at once: the document may be freed next. */
bool json_write_value(struct json_writer *w, const struct json_value *v) JSON_WUR;

#endif
