#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

/* The parser (lib/json.c) and the writer (lib/json_write.c). Each input is parsed (the tree must
 * agree with itself and with the limits, and write back to the same text twice) and also run as
 * a program of writer calls (run_writer()), whose finished text must parse back. */

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

/* ---- The writer, driven by the same bytes ---- */

struct program {
    const uint8_t *p;
    size_t left;
};

static uint8_t next_byte(struct program *pg)
{
    if (pg->left == 0)
        return 0;
    pg->left--;
    return *pg->p++;
}

/* Up to n bytes of the program, as an argument; *len gets how many. */
static const char *next_bytes(struct program *pg, size_t n, size_t *len)
{
    const char *s = (const char *)pg->p;
    *len = n < pg->left ? n : pg->left;
    pg->p += *len;
    pg->left -= *len;
    return s;
}

static uint64_t next_u64(struct program *pg)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | next_byte(pg);
    return v;
}

/*
 * Runs data as a program of writer calls (the first byte picks the maximum and the layout, then
 * one byte per call and its arguments), checking the contract: a failed call leaves an error, the
 * error is sticky, and a finished text is at most the maximum, NUL-terminated, parses back, and
 * is what the writer writes again from its parse. doc, when not NULL, is what the parser made of
 * the same bytes: json_write_value() writes it.
 */
static void run_writer(const uint8_t *data, size_t size, const struct json_doc *doc)
{
    static const size_t maxes[] = {0, 8, 64, 256, 4096, 1 << 16, 1 << 20, (size_t)1 << 22};
    struct program pg = {data, size};
    uint8_t head = next_byte(&pg);
    unsigned flags = head & 1 ? JSON_WRITER_PRETTY : 0;
    size_t max = maxes[(head >> 1) % 8];
    struct json_writer *w = json_writer_new(max, flags);
    if (w == NULL)
        abort();
    bool open[JSON_WRITER_MAX_DEPTH + 1]; /* true for an object */
    size_t depth = 0;
    bool pending = false; /* a key waits for its value */
    char cstr[64];

    while (pg.left > 0) {
        enum json_write_error before = json_writer_error(w);
        uint8_t op = next_byte(&pg);
        const char *s;
        size_t len;
        bool ok;
        switch (op % 16) {
        case 0:
        case 2:
            ok = op % 16 == 0 ? json_write_begin_object(w) : json_write_begin_array(w);
            if (ok) {
                if (depth >= JSON_WRITER_MAX_DEPTH)
                    abort();
                open[depth++] = op % 16 == 0;
            }
            break;
        case 1:
        case 3:
            ok = op % 16 == 1 ? json_write_end_object(w) : json_write_end_array(w);
            if (ok) {
                if (depth == 0 || open[depth - 1] != (op % 16 == 1))
                    abort();
                depth--;
            }
            break;
        case 4:
            s = next_bytes(&pg, next_byte(&pg) % 32, &len);
            ok = json_write_keyn(w, s, len);
            break;
        case 5:
            s = next_bytes(&pg, next_byte(&pg), &len);
            ok = json_write_stringn(w, s, len);
            break;
        case 6:
            ok = json_write_int64(w, (int64_t)next_u64(&pg));
            break;
        case 7:
            ok = json_write_uint64(w, next_u64(&pg) >> (next_byte(&pg) % 64));
            break;
        case 8: {
            uint64_t bits = next_u64(&pg);
            double d;
            memcpy(&d, &bits, sizeof(d));
            ok = json_write_double(w, d);
            break;
        }
        case 9:
            ok = json_write_bool(w, next_byte(&pg) & 1);
            break;
        case 10:
            ok = json_write_null(w);
            break;
        case 11:
            s = next_bytes(&pg, next_byte(&pg), &len);
            ok = json_write_raw(w, s, len);
            break;
        case 12:
            json_writer_reset(w);
            depth = 0;
            pending = false;
            continue;
        case 13:
            s = next_bytes(&pg, next_byte(&pg) % sizeof(cstr), &len);
            memcpy(cstr, s, len);
            cstr[len] = '\0';
            ok = op & 0x80 ? json_write_key(w, cstr) : json_write_string_or_null(w, cstr);
            break;
        case 14:
            ok = json_write_string_or_null(w, NULL);
            break;
        default:
            if (doc == NULL)
                continue;
            ok = json_write_value(w, json_doc_root(doc));
            break;
        }
        enum json_write_error after = json_writer_error(w);
        if (ok != (after == JSON_WRITE_OK) || (before != JSON_WRITE_OK && after != before))
            abort();
        if (ok)
            pending = op % 16 == 4 || (op % 16 == 13 && (op & 0x80));
    }
    /* Close what is open (a pending key gets a null first), then finish. */
    bool ok = !pending || json_write_null(w);
    for (; ok && depth > 0; depth--)
        ok = open[depth - 1] ? json_write_end_object(w) : json_write_end_array(w);
    const char *t;
    size_t l;
    if (json_writer_finish(w, &t, &l)) {
        if (l > max || t[l] != '\0')
            abort();
        const struct json_limits lim3 = {
            .max_bytes = l, .max_depth = JSON_WRITER_MAX_DEPTH, .max_nodes = SIZE_MAX};
        struct json_doc *back = NULL;
        enum json_error e = json_parse(t, l, &lim3, &back, NULL);
        if (e == JSON_OK) {
            /* The writer's text of a parse of its text is the same text. */
            struct json_writer *w2 = json_writer_new(max, flags);
            const char *t2;
            size_t l2;
            if (!json_write_value(w2, json_doc_root(back)) || !json_writer_finish(w2, &t2, &l2) ||
                l2 != l || memcmp(t, t2, l) != 0)
                abort();
            json_writer_free(w2);
        } else if (!(e == JSON_ERR_STRING && strstr(t, "\\u0000") != NULL)) {
            abort(); /* only a NUL in a key, which the writer allows and the parser refuses */
        }
        json_doc_free(back);
    } else if (json_writer_error(w) == JSON_WRITE_OK) {
        abort();
    }
    json_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_doc *doc = NULL;
    struct json_parse_error err;
    if (json_parse((const char *)data, size, &lim, &doc, &err) != JSON_OK) {
        if (doc != NULL || err.offset > size || err.message == NULL)
            abort();
        run_writer(data, size, NULL);
        return 0;
    }
    run_writer(data, size, doc);
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
