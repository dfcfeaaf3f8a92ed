/*
 * json_internal: the node of a parsed JSON document, shared by lib/json.c (which builds and reads
 * it) and lib/json_write.c (json_write_value walks it). Not part of json.h's contract.
 */
#ifndef VOUCH_JSON_INTERNAL_H
#define VOUCH_JSON_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "json.h"

/*
 * libjansson has no index into an object's members and no number text, and json.h's values are
 * const, so every value gets a node when the document is parsed. Nodes borrow strings and keys
 * from the libjansson tree, which the document keeps; they live in blocks freed all at once.
 */
struct json_member;

struct json_value {
    json_t *j; /* in the document's tree: scalars read their value from it */
    enum json_kind type;
    unsigned height; /* containers in this value, nested: 0 for a scalar, 1 for "[1]" */
    size_t count;    /* arrays and objects: elements or members */
    union {
        const char *number;          /* numbers: json_number_text() */
        struct json_value *items;    /* arrays */
        struct json_member *members; /* objects, in document order */
    } u;
    const struct json_member **sorted; /* large objects (json.c's SORTED_MIN): by key */
};

struct json_member {
    const char *key;
    size_t key_len;
    struct json_value value;
};

#endif
