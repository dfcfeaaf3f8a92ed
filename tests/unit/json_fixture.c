/*
 * json_fixture: see json_fixture.h.
 */
#include "json_fixture.h"

#include <string.h>

const struct json_limits test_limits = {
    .max_bytes = 1 << 20,
    .max_depth = 64,
    .max_nodes = 100000,
};

/* Parses len bytes that must be valid JSON. */
struct json_doc *parse_len(const char *text, size_t len)
{
    struct json_doc *doc = NULL;
    struct json_parse_error err;
    enum json_error e = json_parse(text, len, &test_limits, &doc, &err);
    if (e != JSON_OK)
        print_error("unexpected parse error %d at %zu (%s) for: %s\n", (int)e, err.offset,
                    err.message, text);
    assert_int_equal(e, JSON_OK);
    assert_non_null(doc);
    assert_non_null(json_doc_root(doc));
    return doc;
}

struct json_doc *parse(const char *text)
{
    return parse_len(text, strlen(text));
}
