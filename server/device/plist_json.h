/*
 * plist_json: property lists to JSON and back, for people and programs that read JSON.
 *
 * vouchd shows a device's answer to a command (the plist it stored: command_results.report)
 * as JSON in the admin API; vouchctl turns a command written as JSON into the plist the admin API
 * takes. The mapping (docs/api.md, "Command answers"):
 *
 *   plist          JSON
 *   dict           object (keys in the plist's order)
 *   array          array
 *   string         string (invalid UTF-8 bytes become U+FFFD)
 *   integer        number (a signed 64-bit integer: libplist 2.2 cannot tell 2^64-1 from -1)
 *   real           number; null for NaN and the infinities, which JSON cannot hold
 *   true, false    true, false
 *   data           string: base64 (RFC 4648, padded); from JSON: {"$data": "base64"}
 *   date           string: RFC 3339 UTC to the second; from JSON: {"$date": "RFC 3339 UTC"}
 *
 * Pure: no I/O, no global state; unit-tested and fuzzed alone. Input is untrusted: the XML is
 * scanned for depth before libplist reads it (mdm_xml_scan), and every conversion stops at a
 * depth and a number of values. The caller owns what it passes and gets: a plist_t from here is
 * freed with plist_free(), a writer stays the caller's.
 */
#ifndef VOUCH_PLIST_JSON_H
#define VOUCH_PLIST_JSON_H

#include <plist/plist.h>
#include <stdbool.h>
#include <stddef.h>

struct json_value;
struct json_writer;

/* Bounds of one conversion: containers nested at most max_depth deep (the top-level container
 * is depth 1; at most JSON_WRITER_MAX_DEPTH), at most max_nodes values in all. */
struct plist_json_limits {
    unsigned max_depth;
    size_t max_nodes;
};

enum plist_json_error {
    PLIST_JSON_OK = 0,
    PLIST_JSON_NOT_XML,   /* empty, or not an XML property list */
    PLIST_JSON_TOO_DEEP,  /* nested deeper than max_depth */
    PLIST_JSON_TOO_MANY,  /* more than max_nodes values */
    PLIST_JSON_MALFORMED, /* libplist could not read it, or XML a plist does not need */
    PLIST_JSON_WRITE,     /* the writer refused (too large for its maximum): json_writer_error */
};

const char *plist_json_strerror(enum plist_json_error err);

/* Reads xml[0..len), an XML property list whose dicts and arrays nest at most max_depth deep,
 * into *out (the caller frees it with plist_free()). */
enum plist_json_error plist_json_parse_xml(const char *xml, size_t len, unsigned max_depth,
                                           plist_t *out) __attribute__((warn_unused_result));

/* Writes node as one JSON value to w (as the table above says). On an error the writer may
 * hold part of the value: the caller resets or drops it. */
enum plist_json_error plist_json_write(struct json_writer *w, plist_t node,
                                       const struct plist_json_limits *limits)
    __attribute__((warn_unused_result));

/* Builds the plist of a JSON value (as the table above says; JSON null has no plist form, and a
 * number with a fraction or an exponent is a real). On failure returns false with the reason and
 * the JSON path of the value at fault in err ("$.Command.Queries[2]: null has no plist form"). */
bool plist_json_to_plist(const struct json_value *v, const struct plist_json_limits *limits,
                         plist_t *out, char *err, size_t err_size)
    __attribute__((warn_unused_result));

#endif
