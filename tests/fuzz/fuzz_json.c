#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct json_limits lim = {.max_bytes = 1 << 16, .max_depth = 100, .max_nodes = 10000};

/* json.c's nodes agree with themselves: every member is found under its key, the limits held,
 * every number has a text. Returns the number of values in v; *depth gets its nesting. */
static size_t check_tree(const struct json_value *v, size_t *depth)
{
    size_t nodes = 1, deepest = 0, d;
    switch (json_value_kind(v)) {
    case JSON_KIND_ARRAY:
        for (size_t i = 0; i < json_array_length(v); i++) {
            nodes += check_tree(json_array_at(v, i), &d);
            if (d > deepest)
                deepest = d;
        }
        *depth = deepest + 1;
        return nodes;
    case JSON_KIND_OBJECT:
        for (size_t i = 0; i < json_object_count(v); i++) {
            const char *key;
            size_t key_len;
            const struct json_value *m;
            if (!json_object_member(v, i, &key, &key_len, &m) || memchr(key, '\0', key_len) ||
                key[key_len] != '\0' || json_object_findn(v, key, key_len) != m)
                abort();
            nodes += check_tree(m, &d);
            if (d > deepest)
                deepest = d;
        }
        *depth = deepest + 1;
        return nodes;
    case JSON_KIND_NUMBER:
        if (json_number_text(v) == NULL)
            abort();
        break;
    default:
        break;
    }
    *depth = 0;
    return nodes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_doc *doc = NULL;
    struct json_parse_error err;
    if (json_parse((const char *)data, size, &lim, &doc, &err) != JSON_OK) {
        if (doc != NULL || err.offset > size || err.message == NULL)
            abort();
        return 0;
    }
    size_t depth;
    if (check_tree(json_doc_root(doc), &depth) > lim.max_nodes || depth > lim.max_depth)
        abort();
    for (unsigned flags = 0; flags < 2; flags++) {
        struct json_writer *w = json_writer_new(1 << 22, flags);
        const char *t1;
        size_t l1;
        if (!json_write_value(w, json_doc_root(doc)) || !json_writer_finish(w, &t1, &l1)) {
            /* only depth > JSON_WRITER_MAX_DEPTH can fail */
            if (json_writer_error(w) != JSON_WRITE_TOO_DEEP)
                abort();
            json_writer_free(w);
            continue;
        }
        /* The pretty text may be longer than the input. */
        const struct json_limits lim2 = {
            .max_bytes = l1, .max_depth = lim.max_depth, .max_nodes = lim.max_nodes};
        struct json_doc *doc2 = NULL;
        if (json_parse(t1, l1, &lim2, &doc2, NULL) != JSON_OK)
            abort();
        struct json_writer *w2 = json_writer_new(1 << 22, flags);
        const char *t2;
        size_t l2;
        if (!json_write_value(w2, json_doc_root(doc2)) || !json_writer_finish(w2, &t2, &l2))
            abort();
        if (l1 != l2 || memcmp(t1, t2, l1) != 0)
            abort();
        json_writer_free(w2);
        json_doc_free(doc2);
        json_writer_free(w);
    }
    json_doc_free(doc);
    return 0;
}
