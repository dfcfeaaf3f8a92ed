#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct json_limits lim = {.max_bytes = 1 << 16, .max_depth = 100, .max_nodes = 10000};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_doc *doc = NULL;
    struct json_parse_error err;
    if (json_parse((const char *)data, size, &lim, &doc, &err) != JSON_OK) {
        if (doc != NULL || err.offset > size) abort();
        return 0;
    }
    for (unsigned flags = 0; flags < 2; flags++) {
        struct json_writer *w = json_writer_new(1 << 22, flags);
        const char *t1; size_t l1;
        if (!json_write_value(w, json_doc_root(doc)) || !json_writer_finish(w, &t1, &l1)) {
            /* only depth > JSON_WRITER_MAX_DEPTH can fail */
            if (json_writer_error(w) != JSON_WRITE_TOO_DEEP) abort();
            json_writer_free(w);
            continue;
        }
        struct json_doc *doc2 = NULL;
        if (json_parse(t1, l1, &lim, &doc2, NULL) != JSON_OK) abort();
        struct json_writer *w2 = json_writer_new(1 << 22, flags);
        const char *t2; size_t l2;
        if (!json_write_value(w2, json_doc_root(doc2)) || !json_writer_finish(w2, &t2, &l2)) abort();
        if (l1 != l2 || memcmp(t1, t2, l1) != 0) abort();
        json_writer_free(w2);
        json_doc_free(doc2);
        json_writer_free(w);
    }
    json_doc_free(doc);
    return 0;
}
