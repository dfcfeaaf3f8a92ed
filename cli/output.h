/*
 * output: how vouchctl shows what the server said: aligned tables, indented "key: value"
 * listings of JSON objects, and pretty-printed JSON.
 *
 * Every text that came from the server passes through output_sanitize() before it reaches the
 * terminal, so a device-reported name cannot smuggle escape sequences or bidirectional overrides
 * into the operator's terminal. A struct table owns sanitized copies of its cells.
 */
#ifndef VOUCH_CLI_OUTPUT_H
#define VOUCH_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct json_doc;
struct json_value;
struct table;

/* A copy of s (valid UTF-8 or not) in which control characters (C0, DEL, C1), bidirectional
 * formatting characters and invalid UTF-8 are each replaced by '?'. Free with free(). */
char *output_sanitize(const char *s) __attribute__((warn_unused_result));

/* A one-line display form of a scalar: the string itself, the number's text, "yes"/"no", "-" for
 * null or absent; "(n items)" and "{...}" for containers. Borrowed from v or static. */
const char *output_scalar(const struct json_value *v);

/* A table with ncols columns under the given headers. NULL when out of memory. */
struct table *table_new(size_t ncols, const char *const *headers)
    __attribute__((warn_unused_result));
void table_free(struct table *t);
/* Appends a row of ncols cells (NULL shows as "-"). */
bool table_add_row(struct table *t, const char *const *cells) __attribute__((warn_unused_result));
size_t table_rows(const struct table *t);
/* Columns are padded to their widest cell and separated by two spaces. */
void table_print(const struct table *t, FILE *out);

/* Prints an object as "key: value" lines, values aligned per level, nested objects indented by
 * two spaces under their key. */
void output_listing(const struct json_value *obj, FILE *out);

/* Prints a device object as output_listing() does, but its identity member on one line
 * ("identity: acme-attested (hardware-bound), certificate SERIAL, until TIME") and its
 * attestation member last, as output_attestation() does. */
void output_device(const struct json_value *dev, FILE *out);

/* Prints an attestation object (a device object's, a history entry, or a verdict of `vouchctl
 * verify`) as aligned "key: value" lines indented by indent: the status, reason and freshness
 * codes each followed by what they mean, '-' for a null member, then the attested properties,
 * each on its line, "null" for one Apple did not establish, then any other member. */
void output_attestation(const struct json_value *att, size_t indent, FILE *out);

/* Prints v as indented JSON followed by a newline. False (with a message on stderr) when it
 * cannot be formatted. */
bool output_json(const struct json_value *v, FILE *out) __attribute__((warn_unused_result));
/* Prints the n values as one indented JSON array followed by a newline. */
bool output_json_array(const struct json_value *const *items, size_t n, FILE *out)
    __attribute__((warn_unused_result));
/* Prints {"member": {...}}: the members of each doc's root.member, in order, as one object (the
 * answers of a request sent in chunks, printed as if it had been one). */
bool output_json_merged(struct json_doc *const *docs, size_t ndocs, const char *member, FILE *out)
    __attribute__((warn_unused_result));

#endif
