/* Unit test of lib/json_write.c, the writer, against libjansson: random sequences of writer calls
 * (random nesting, keys that repeat, strings of every byte value, valid and invalid UTF-8, numbers
 * at their edges, large and small maximums, compact and pretty) go to the streaming writer and to a
 * reference that builds the same value as a libjansson tree, with the writer's rules as they were
 * when it was built on libjansson, and dumps it with json_dump_callback(). Every call must answer
 * the same and leave the same error, and the finished texts must be byte for byte the same.
 *
 * Shared helpers: json_fixture.h. */
#include "json_fixture.h"

#include <jansson.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The reference: the writer's contract on a libjansson tree ---- */

struct ref {
    size_t max;
    unsigned flags;
    enum json_write_error error;
    json_t *root;
    json_t *open[JSON_WRITER_MAX_DEPTH];
    size_t depth;
    bool key_pending;
    char key[256];
    size_t key_len;
    size_t least;
    char *text;
    size_t len;
};

static bool ref_fail(struct ref *r, enum json_write_error error)
{
    if (r->error == JSON_WRITE_OK)
        r->error = error;
    return false;
}

static bool ref_grow(struct ref *r, size_t n)
{
    if (n > r->max - r->least)
        return ref_fail(r, JSON_WRITE_TOO_LARGE);
    r->least += n;
    return true;
}

static bool utf8_ok(const char *s, size_t len)
{
    /* libjansson's own check, through a string it refuses when invalid */
    json_t *j = json_stringn(s, len);
    json_decref(j);
    return j != NULL;
}

static bool ref_add(struct ref *r, json_t *v, size_t least)
{
    assert_non_null(v);
    if (r->error != JSON_WRITE_OK) {
        json_decref(v);
        return false;
    }
    if (r->depth == 0) {
        if (r->root != NULL) {
            json_decref(v);
            return ref_fail(r, JSON_WRITE_MISUSE);
        }
        r->root = v;
        return ref_grow(r, least);
    }
    json_t *c = r->open[r->depth - 1];
    if (json_is_object(c)) {
        if (!r->key_pending) {
            json_decref(v);
            return ref_fail(r, JSON_WRITE_MISUSE);
        }
        size_t members = json_object_size(c);
        assert_int_equal(json_object_setn_new_nocheck(c, r->key, r->key_len, v), 0);
        if (json_object_size(c) == members)
            return ref_fail(r, JSON_WRITE_MISUSE);
        r->key_pending = false;
        return ref_grow(r, least);
    }
    if (json_array_size(c) > 0)
        least++;
    assert_int_equal(json_array_append_new(c, v), 0);
    return ref_grow(r, least);
}

static bool ref_begin(struct ref *r, json_t *c)
{
    if (r->error != JSON_WRITE_OK) {
        json_decref(c);
        return false;
    }
    if (r->depth >= JSON_WRITER_MAX_DEPTH) {
        json_decref(c);
        return ref_fail(r, JSON_WRITE_TOO_DEEP);
    }
    if (!ref_add(r, c, 1))
        return false;
    r->open[r->depth++] = c;
    return true;
}

static bool ref_end(struct ref *r, json_type kind)
{
    if (r->error != JSON_WRITE_OK)
        return false;
    if (r->depth == 0 || json_typeof(r->open[r->depth - 1]) != kind || r->key_pending)
        return ref_fail(r, JSON_WRITE_MISUSE);
    r->depth--;
    return ref_grow(r, 1);
}

static bool ref_key(struct ref *r, const char *key, size_t len)
{
    if (r->error != JSON_WRITE_OK)
        return false;
    if (r->depth == 0 || !json_is_object(r->open[r->depth - 1]) || r->key_pending)
        return ref_fail(r, JSON_WRITE_MISUSE);
    if (!utf8_ok(key, len))
        return ref_fail(r, JSON_WRITE_UTF8);
    assert_true(len < sizeof(r->key));
    memcpy(r->key, key, len);
    r->key_len = len;
    r->key_pending = true;
    return ref_grow(r, len + 3 + (json_object_size(r->open[r->depth - 1]) > 0));
}

static bool ref_string(struct ref *r, const char *s, size_t len)
{
    if (r->error != JSON_WRITE_OK)
        return false;
    if (!utf8_ok(s, len))
        return ref_fail(r, JSON_WRITE_UTF8);
    if (len > r->max - r->least)
        return ref_fail(r, JSON_WRITE_TOO_LARGE);
    return ref_add(r, json_stringn_nocheck(s, len), len + 2);
}

static size_t height(const json_t *j)
{
    size_t h = 0;
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            size_t k = height(json_array_get(j, i));
            if (k > h)
                h = k;
        }
        return h + 1;
    }
    if (json_is_object(j)) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)j, key, v)
        {
            size_t k = height(v);
            if (k > h)
                h = k;
        }
        return h + 1;
    }
    return 0;
}

/* json_write_raw() of a text json_parse() takes: the same tree from libjansson's parser. */
static bool ref_raw(struct ref *r, const char *text, size_t len)
{
    if (r->error != JSON_WRITE_OK)
        return false;
    const struct json_limits limits = {
        .max_bytes = len, .max_depth = JSON_WRITER_MAX_DEPTH - r->depth, .max_nodes = SIZE_MAX};
    struct json_doc *doc = NULL;
    enum json_error e = json_parse(text, len, &limits, &doc, NULL);
    json_doc_free(doc);
    if (e != JSON_OK)
        return ref_fail(r, e == JSON_ERR_TOO_DEEP ? JSON_WRITE_TOO_DEEP : JSON_WRITE_MISUSE);
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(j);
    if (height(j) > JSON_WRITER_MAX_DEPTH - r->depth) {
        json_decref(j);
        return ref_fail(r, JSON_WRITE_TOO_DEEP);
    }
    return ref_add(r, j, 1);
}

static int ref_dump(const char *buffer, size_t size, void *data)
{
    struct ref *r = data;
    if (size > r->max - r->len) {
        ref_fail(r, JSON_WRITE_TOO_LARGE);
        return -1;
    }
    r->text = realloc(r->text, r->len + size + 1);
    assert_non_null(r->text);
    memcpy(r->text + r->len, buffer, size);
    r->len += size;
    return 0;
}

static bool ref_finish(struct ref *r)
{
    if (r->error != JSON_WRITE_OK)
        return false;
    if (r->root == NULL || r->depth != 0)
        return ref_fail(r, JSON_WRITE_MISUSE);
    size_t flags = JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
                   ((r->flags & JSON_WRITER_PRETTY) ? JSON_INDENT(2) : JSON_COMPACT);
    r->len = 0;
    /* libjansson ignores a callback's failure on an object's key and goes on, so the old
     * writer could answer true with its error set and the key missing from the text: the
     * reference (and the writer) say TOO_LARGE. */
    if (json_dump_callback(r->root, ref_dump, r, flags) != 0 || r->error != JSON_WRITE_OK) {
        assert_int_equal(r->error, JSON_WRITE_TOO_LARGE);
        return false;
    }
    if (r->text == NULL)
        r->text = malloc(1);
    r->text[r->len] = '\0';
    return true;
}

/* ---- Generated input ---- */

static uint64_t rng_state;
static size_t text_bytes, text_max; /* what was compared */

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* Pieces strings are made of: every byte value alone (so invalid UTF-8 too), and well-formed
 * and ill-formed sequences. */
static const char *const pieces[] = {
    "\xc2\x80",
    "\xdf\xbf",
    "\xe0\xa0\x80",
    "\xef\xbf\xbf",
    "\xed\x9f\xbf",
    "\xee\x80\x80",
    "\xf0\x90\x80\x80",
    "\xf4\x8f\xbf\xbf",
    "\xc3\xa9",
    "\xe2\x82\xac",
    "\xf0\x9f\x98\x80",
    "\xc0\xaf",
    "\xe0\x80\xaf",
    "\xed\xa0\x80",
    "\xf4\x90\x80\x80",
    "\xf8\x88\x80\x80\x80",
    "\xe2\x82",
    "\xf0\x9f\x98",
    "\\u0041",
    "\\",
    "\"",
    "/",
    "\x7f",
    "abc",
    "</script>",
    "0123456789abcdef0123456789ABCDEF",
};

/* A string of up to max bytes; invalid says whether it may hold invalid UTF-8. */
static size_t gen_string(char *buf, size_t max, bool invalid)
{
    size_t n = 0, parts = below(8);
    for (size_t p = 0; p < parts; p++) {
        unsigned kind = below(10);
        if (kind < 3) { /* any byte */
            unsigned char c = (unsigned char)below(256);
            if (!invalid && c >= 0x80)
                c = (unsigned char)(c & 0x7F);
            if (n + 1 > max)
                break;
            buf[n++] = (char)c;
        } else if (kind < 5) { /* a control character */
            if (n + 1 > max)
                break;
            buf[n++] = (char)below(0x20);
        } else {
            const char *s = pieces[below(sizeof(pieces) / sizeof(pieces[0]))];
            size_t l = strlen(s);
            if (!invalid && !utf8_ok(s, l))
                continue;
            if (n + l > max)
                break;
            memcpy(buf + n, s, l);
            n += l;
        }
    }
    return n;
}

static double gen_double(void)
{
    static const double edges[] = {0.0,         -0.0,
                                   1.0,         -1.0,
                                   0.1,         0.5,
                                   1e22,        1e21,
                                   1e-7,        1e-5,
                                   1e15,        1e16,
                                   1e17,        1e300,
                                   5e-324,      DBL_MIN,
                                   DBL_MAX,     -DBL_MAX,
                                   123456789.0, 2.5e-5,
                                   1.0 / 3,     9007199254740993.0,
                                   NAN,         INFINITY,
                                   -INFINITY};
    if (below(2) == 0)
        return edges[below(sizeof(edges) / sizeof(edges[0]))];
    uint64_t bits = rnd();
    double d;
    memcpy(&d, &bits, sizeof(d));
    return isfinite(d) || below(4) == 0 ? d : (double)(int64_t)bits / 1e6;
}

static int64_t gen_int64(void)
{
    static const int64_t edges[] = {0,
                                    1,
                                    -1,
                                    9,
                                    10,
                                    -10,
                                    99,
                                    100,
                                    INT64_MAX,
                                    INT64_MIN,
                                    INT64_MIN + 1,
                                    1000000000000000000,
                                    -999999999999999999};
    if (below(2) == 0)
        return edges[below(sizeof(edges) / sizeof(edges[0]))];
    return (int64_t)(rnd() >> below(64));
}

static const char *const raws[] = {
    "1",
    " [1, {\"a\": 2.50}] ",
    "{}",
    "[]",
    "\"x\\u0000y\\/\"",
    "[[[]]]",
    "{\"k\":{\"k\":[null,true]}}",
    "{\"\xc3\xa9\":\"\\u001f\",\"\\ud83d\\ude00\":[1E3,-0,1e-7,0.1,-1.5e300]}",
    "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19]",
    "[1] [2]",
    "{\"a\":1,\"a\":2}",
    "nul",
    "[1,]",
    "\"\xff\"",
};

/* ---- The comparison ---- */

struct pair {
    struct json_writer *w;
    struct ref r;
};

static void check(struct pair *p, bool got, bool want, const char *what)
{
    if (got != want || json_writer_error(p->w) != p->r.error)
        fail_msg("%s: writer %d (error %d), reference %d (error %d)", what, got,
                 (int)json_writer_error(p->w), want, (int)p->r.error);
}

/* One random call on both. */
static void step(struct pair *p)
{
    char buf[200];
    size_t n;
    bool in_object = p->r.depth > 0 && json_is_object(p->r.open[p->r.depth - 1]);
    unsigned op = below(100);
    if (op >= 90 && below(4) != 0)
        op = below(90);
    /* Mostly calls that fit where they come (a key in an object when one is due, an end once
     * in a while), sometimes anything. */
    if (op < 90 && in_object && !p->r.key_pending)
        op = below(10) < 8 ? 200 : 201; /* a key, or the end */
    if (op < 90 && p->r.depth > 0 && !p->r.key_pending && below(p->r.depth > 3 ? 3 : 12) == 0)
        op = in_object ? 201 : 202;

    switch (op) {
    case 200: { /* a key: now and then one the object has already */
        unsigned kind = below(10);
        if (kind < 3) {
            n = gen_string(buf, 40, below(40) == 0);
        } else if (kind < 4) {
            n = 1;
            buf[0] = (char)('a' + below(4));
        } else {
            n = (size_t)snprintf(buf, sizeof(buf), "k%u", below(100000));
        }
        check(p, json_write_keyn(p->w, buf, n), ref_key(&p->r, buf, n), "key");
        return;
    }
    case 201:
        check(p, json_write_end_object(p->w), ref_end(&p->r, JSON_OBJECT), "end_object");
        return;
    case 202:
        check(p, json_write_end_array(p->w), ref_end(&p->r, JSON_ARRAY), "end_array");
        return;
    default:
        break;
    }
    if (op == 89 && below(10) == 0) { /* a dive to the depth limit */
        while (p->r.error == JSON_WRITE_OK && p->r.depth <= JSON_WRITER_MAX_DEPTH)
            check(p, json_write_begin_array(p->w), ref_begin(&p->r, json_array()), "dive");
        return;
    }
    switch (op % 12) {
    case 0:
        check(p, json_write_begin_object(p->w), ref_begin(&p->r, json_object()), "begin_object");
        break;
    case 1:
        check(p, json_write_begin_array(p->w), ref_begin(&p->r, json_array()), "begin_array");
        break;
    case 2:
    case 3:
        n = gen_string(buf, sizeof(buf), below(40) == 0);
        check(p, json_write_stringn(p->w, buf, n), ref_string(&p->r, buf, n), "string");
        break;
    case 4: {
        int64_t i = gen_int64();
        check(p, json_write_int64(p->w, i), ref_add(&p->r, json_integer(i), 1), "int64");
        break;
    }
    case 5: {
        uint64_t u = below(8) == 0 ? (uint64_t)INT64_MAX + below(3) : rnd() >> below(64);
        bool want = u > INT64_MAX ? ref_fail(&p->r, JSON_WRITE_NUMBER)
                                  : ref_add(&p->r, json_integer((json_int_t)u), 1);
        check(p, json_write_uint64(p->w, u), want, "uint64");
        break;
    }
    case 6: {
        double d = gen_double();
        bool want =
            !isfinite(d) ? ref_fail(&p->r, JSON_WRITE_NUMBER) : ref_add(&p->r, json_real(d), 1);
        check(p, json_write_double(p->w, d), want, "double");
        break;
    }
    case 7: {
        bool b = below(2);
        check(p, json_write_bool(p->w, b), ref_add(&p->r, json_boolean(b), b ? 4 : 5), "bool");
        break;
    }
    case 8:
        check(p, json_write_null(p->w), ref_add(&p->r, json_null(), 4), "null");
        break;
    case 9: {
        /* the last ones are no JSON, or not one value */
        const char *raw = raws[below(4) == 0 ? below(sizeof(raws) / sizeof(raws[0])) : below(9)];
        check(p, json_write_raw(p->w, raw, strlen(raw)), ref_raw(&p->r, raw, strlen(raw)), "raw");
        break;
    }
    case 10: {
        /* A parsed value: the writer's json_write_value(), the reference's parsed tree. */
        const char *raw = raws[below(9)];
        struct json_doc *doc = parse(raw);
        bool got = json_write_value(p->w, json_doc_root(doc));
        json_doc_free(doc);
        check(p, got, ref_raw(&p->r, raw, strlen(raw)), "value");
        break;
    }
    default:
        if (p->r.depth > 0 && !p->r.key_pending)
            check(p, json_write_end_array(p->w), ref_end(&p->r, JSON_ARRAY), "end_array");
        break;
    }
}

static void ref_clear(struct ref *r, size_t max, unsigned flags)
{
    json_decref(r->root);
    free(r->text);
    memset(r, 0, sizeof(*r));
    r->max = max;
    r->flags = flags;
}

static void run_one(struct pair *p, size_t max, unsigned flags, unsigned steps)
{
    ref_clear(&p->r, max, flags);
    /* Mostly a container at the top, so that documents nest. */
    if (below(4) != 0)
        check(p, json_write_begin_object(p->w), ref_begin(&p->r, json_object()), "begin_object");
    for (unsigned i = 0; i < steps && p->r.error == JSON_WRITE_OK; i++) {
        step(p);
        if (p->r.root != NULL && p->r.depth == 0 && below(8) != 0)
            break;
    }
    /* Close what is open, mostly: an unfinished text is misuse on both sides. */
    if (below(8) != 0) {
        while (p->r.error == JSON_WRITE_OK && p->r.depth > 0) {
            if (p->r.key_pending)
                check(p, json_write_null(p->w), ref_add(&p->r, json_null(), 4), "null");
            else if (json_is_object(p->r.open[p->r.depth - 1]))
                check(p, json_write_end_object(p->w), ref_end(&p->r, JSON_OBJECT), "end");
            else
                check(p, json_write_end_array(p->w), ref_end(&p->r, JSON_ARRAY), "end");
        }
    }
    const char *text = NULL;
    size_t len = 0;
    bool want = ref_finish(&p->r);
    check(p, json_writer_finish(p->w, &text, &len), want, "finish");
    if (want) {
        if (len != p->r.len || memcmp(text, p->r.text, len) != 0 || text[len] != '\0')
            fail_msg("text differs:\n writer    %.*s\n reference %.*s", (int)len, text,
                     (int)p->r.len, p->r.text);
        /* and it is JSON that reads back (the parser refuses a NUL in a key; the writer does
         * not, like libjansson) */
        struct json_doc *doc = NULL;
        enum json_error e = json_parse(text, len, &test_limits, &doc, NULL);
        json_doc_free(doc);
        if (e != JSON_OK && !(e == JSON_ERR_STRING && strstr(text, "\\u0000") != NULL) &&
            !(e == JSON_ERR_TOO_DEEP && p->r.max == 1 << 20))
            fail_msg("the text does not parse back (%d): %s", (int)e, text);
        text_bytes += len;
        if (len > text_max)
            text_max = len;
        /* finish again lends the same text */
        const char *again = NULL;
        assert_true(json_writer_finish(p->w, &again, NULL));
        assert_ptr_equal(again, text);
    }
}

static void test_write_diff(void **state)
{
    static const size_t maxes[] = {1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 0,
                                   1,       7,       20,      64,      200,     1000};
    rng_state = 23;
    unsigned docs = 0, texts = 0, errors[JSON_WRITE_NOMEM + 1] = {0};
    for (unsigned flags = 0; flags < 2; flags++) {
        /* A writer reused through resets, and fresh ones. */
        struct pair reused = {.w = json_writer_new(1 << 20, flags)};
        assert_non_null(reused.w);
        for (unsigned i = 0; i < 20000; i++) {
            size_t max = maxes[below(sizeof(maxes) / sizeof(maxes[0]))];
            unsigned steps = below(4) == 0 ? 600 : 60;
            struct pair fresh = {.w = NULL};
            struct pair *p = &reused;
            if (max != 1 << 20 || below(4) == 0) {
                fresh.w = json_writer_new(max, flags);
                assert_non_null(fresh.w);
                p = &fresh;
            } else {
                json_writer_reset(reused.w);
            }
            run_one(p, max, flags, steps);
            docs++;
            texts += p->r.error == JSON_WRITE_OK;
            errors[p->r.error]++;
            if (p == &fresh) {
                ref_clear(&fresh.r, 0, 0);
                json_writer_free(fresh.w);
            }
        }
        ref_clear(&reused.r, 0, 0);
        json_writer_free(reused.w);
    }
    /* The generator reaches every outcome it means to. */
    print_message("%zu bytes of text compared, longest %zu\n", text_bytes, text_max);
    print_message("%u documents: %u texts, too large %u, too deep %u, misuse %u, utf8 %u, "
                  "number %u\n",
                  docs, texts, errors[JSON_WRITE_TOO_LARGE], errors[JSON_WRITE_TOO_DEEP],
                  errors[JSON_WRITE_MISUSE], errors[JSON_WRITE_UTF8], errors[JSON_WRITE_NUMBER]);
    assert_true(texts > docs / 4);
    assert_true(errors[JSON_WRITE_TOO_LARGE] > 0 && errors[JSON_WRITE_MISUSE] > 0 &&
                errors[JSON_WRITE_UTF8] > 0 && errors[JSON_WRITE_NUMBER] > 0);
}

/* Depth: the limit, and a parsed value that would pass it. Large objects: the key set. */
static void test_write_diff_deep_and_wide(void **state)
{
    for (unsigned flags = 0; flags < 2; flags++) {
        struct pair p = {.w = json_writer_new(1 << 22, flags)};
        assert_non_null(p.w);
        ref_clear(&p.r, 1 << 22, flags);
        for (unsigned i = 0; i <= JSON_WRITER_MAX_DEPTH; i++) {
            if (i % 2 == 0) {
                check(&p, json_write_begin_array(p.w), ref_begin(&p.r, json_array()), "begin");
            } else {
                check(&p, json_write_begin_object(p.w), ref_begin(&p.r, json_object()), "begin");
                check(&p, json_write_key(p.w, "k"), ref_key(&p.r, "k", 1), "key");
            }
        }
        assert_int_equal(json_writer_error(p.w), JSON_WRITE_TOO_DEEP);
        ref_clear(&p.r, 1 << 22, flags);
        json_writer_reset(p.w);

        /* 5,000 keys in one object, inner objects reusing them, then one repeated. */
        char key[32];
        check(&p, json_write_begin_object(p.w), ref_begin(&p.r, json_object()), "begin");
        for (unsigned i = 0; i < 5000; i++) {
            int n = snprintf(key, sizeof(key), "device-%u", i * 7919u % 100003u);
            check(&p, json_write_keyn(p.w, key, (size_t)n), ref_key(&p.r, key, (size_t)n), "key");
            check(&p, json_write_begin_object(p.w), ref_begin(&p.r, json_object()), "begin");
            check(&p, json_write_keyn(p.w, key, (size_t)n), ref_key(&p.r, key, (size_t)n), "key");
            check(&p, json_write_int64(p.w, i), ref_add(&p.r, json_integer(i), 1), "int");
            check(&p, json_write_end_object(p.w), ref_end(&p.r, JSON_OBJECT), "end");
        }
        check(&p, json_write_end_object(p.w), ref_end(&p.r, JSON_OBJECT), "end");
        const char *text;
        size_t len;
        check(&p, json_writer_finish(p.w, &text, &len), ref_finish(&p.r), "finish");
        assert_int_equal(len, p.r.len);
        assert_memory_equal(text, p.r.text, len);

        json_writer_reset(p.w);
        ref_clear(&p.r, 1 << 22, flags);
        check(&p, json_write_begin_object(p.w), ref_begin(&p.r, json_object()), "begin");
        for (unsigned i = 0; i < 3000; i++) {
            int n = snprintf(key, sizeof(key), "%u", i);
            check(&p, json_write_keyn(p.w, key, (size_t)n), ref_key(&p.r, key, (size_t)n), "key");
            check(&p, json_write_null(p.w), ref_add(&p.r, json_null(), 4), "null");
        }
        check(&p, json_write_key(p.w, "1234"), ref_key(&p.r, "1234", 4), "key");
        check(&p, json_write_null(p.w), ref_add(&p.r, json_null(), 4), "duplicate");
        assert_int_equal(json_writer_error(p.w), JSON_WRITE_MISUSE);
        ref_clear(&p.r, 0, 0);
        json_writer_free(p.w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_diff),
        cmocka_unit_test(test_write_diff_deep_and_wide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
