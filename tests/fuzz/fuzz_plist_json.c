/* libFuzzer target: server/device/plist_json.c both ways. The input is read as a device's
 * report (an XML plist) and written as JSON; that JSON, and the input read as JSON, go back to
 * plists. Whatever comes back must be the same JSON again (a fixed point after one trip). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "plist_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct plist_json_limits limits = {48, 20000};
static const struct json_limits json_limits = {1 << 20, 64, 20000};

/* node as JSON text into w; false when it does not convert. */
static bool to_json(struct json_writer *w, plist_t node, const char **text, size_t *len)
{
    json_writer_reset(w);
    return plist_json_write(w, node, &limits) == PLIST_JSON_OK && json_writer_finish(w, text, len);
}

/* JSON text back to a plist and to JSON again: the second text must equal the first. */
static void round_trip(const char *text, size_t len)
{
    struct json_doc *doc = NULL;
    plist_t back = NULL;
    char err[256];
    if (json_parse(text, len, &json_limits, &doc, NULL) != JSON_OK)
        return;
    if (plist_json_to_plist(json_doc_root(doc), &limits, &back, err, sizeof(err))) {
        struct json_writer *w = json_writer_new(1 << 22, 0);
        const char *again;
        size_t again_len;
        if (w != NULL && to_json(w, back, &again, &again_len)) {
            /* Tagged {"$data"} / {"$date"} objects come back as strings; anything else must be
             * unchanged. */
            if (strstr(text, "\"$da") == NULL &&
                (again_len != len || memcmp(again, text, len) != 0))
                abort();
        }
        json_writer_free(w);
        plist_free(back);
    }
    json_doc_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    plist_t root = NULL;
    if (plist_json_parse_xml((const char *)data, size, limits.max_depth, &root) == PLIST_JSON_OK) {
        struct json_writer *w = json_writer_new(8 * size + 4096, 0);
        const char *text;
        size_t len;
        if (w != NULL && to_json(w, root, &text, &len))
            round_trip(text, len);
        json_writer_free(w);
        plist_free(root);
    }
    /* The input as JSON, in the writer's layout first (what a plist's JSON would look like). */
    struct json_doc *doc = NULL;
    if (json_parse((const char *)data, size, &json_limits, &doc, NULL) == JSON_OK) {
        struct json_writer *w = json_writer_new(4 * size + 4096, 0);
        const char *text;
        size_t len;
        if (w != NULL && json_write_value(w, json_doc_root(doc)) &&
            json_writer_finish(w, &text, &len))
            round_trip(text, len);
        json_writer_free(w);
        json_doc_free(doc);
    }
    return 0;
}
