#include "output.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Largest pretty-printed JSON document vouchctl will print (all pages of a device list). */
#define OUTPUT_MAX_JSON ((size_t)1024 * 1024 * 1024)

/*
 * Decodes the UTF-8 sequence at s (at least one byte, NUL-terminated): its code point and length,
 * or false for anything malformed (overlong, surrogate, above U+10FFFF, truncated).
 */
static bool utf8_decode(const unsigned char *s, uint32_t *cp, size_t *len)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n;
    uint32_t v;

    if (s[0] < 0x80) {
        *cp = s[0];
        *len = 1;
        return true;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        v = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        v = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        v = s[0] & 0x07;
    } else {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
            return false;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min_cp[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return false;
    *cp = v;
    *len = n;
    return true;
}

/* Characters that would let text rewrite the terminal or reorder what the operator reads. */
static bool output_unsafe(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C || cp == 0x200E ||
           cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

char *output_sanitize(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    char *out = malloc(n + 1); /* replacements never lengthen the text */
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len;
        if (!utf8_decode(u + i, &cp, &len)) {
            out[o++] = '?';
            i++;
        } else if (output_unsafe(cp)) {
            out[o++] = '?';
            i += len;
        } else {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        }
    }
    out[o] = '\0';
    return out;
}

/* Terminal columns taken by sanitized text: one per code point (wide CJK characters are rare in
 * device data and counted as one). */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p & 0xC0) != 0x80)
            w++;
    }
    return w;
}

static void put_spaces(size_t n, FILE *out)
{
    for (size_t i = 0; i < n; i++)
        fputc(' ', out);
}

const char *output_scalar(const struct json_value *v)
{
    const char *s;
    bool b;

    switch (json_value_kind(v)) {
    case JSON_KIND_NULL:
        return "-";
    case JSON_KIND_BOOL:
        if (!json_get_bool(v, &b))
            return "-";
        return b ? "yes" : "no";
    case JSON_KIND_NUMBER:
        return json_number_text(v);
    case JSON_KIND_STRING:
        /* A string with an embedded NUL cannot be shown faithfully. */
        if (!json_get_string(v, &s, NULL))
            return "?";
        return s;
    case JSON_KIND_ARRAY:
        return "[...]";
    case JSON_KIND_OBJECT:
        return "{...}";
    }
    return "-";
}

/* ---- Tables ---- */

struct table {
    size_t ncols;
    size_t nrows; /* including the header row */
    size_t cap_rows;
    char **cells; /* nrows * ncols sanitized strings */
    size_t *widths;
};

size_t table_rows(const struct table *t)
{
    return t->nrows - 1;
}

void table_free(struct table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->widths);
    free(t);
}

bool table_add_row(struct table *t, const char *const *cells)
{
    if (t->nrows == t->cap_rows) {
        size_t ncap = t->cap_rows ? t->cap_rows * 2 : 32;
        if (ncap > SIZE_MAX / t->ncols / sizeof(*t->cells))
            return false;
        char **nc = realloc(t->cells, ncap * t->ncols * sizeof(*t->cells));
        if (nc == NULL)
            return false;
        t->cells = nc;
        t->cap_rows = ncap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        const char *text = cells[i] != NULL && cells[i][0] != '\0' ? cells[i] : "-";
        row[i] = output_sanitize(text);
        if (row[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(row[j]);
            return false;
        }
    }
    for (size_t i = 0; i < t->ncols; i++) {
        size_t w = display_width(row[i]);
        if (w > t->widths[i])
            t->widths[i] = w;
    }
    t->nrows++;
    return true;
}

struct table *table_new(size_t ncols, const char *const *headers)
{
    struct table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    t->widths = calloc(ncols, sizeof(*t->widths));
    if (t->widths == NULL || !table_add_row(t, headers)) {
        table_free(t);
        return NULL;
    }
    return t;
}

void table_print(const struct table *t, FILE *out)
{
    for (size_t r = 0; r < t->nrows; r++) {
        char *const *row = t->cells + r * t->ncols;
        for (size_t i = 0; i < t->ncols; i++) {
            fputs(row[i], out);
            if (i + 1 < t->ncols)
                put_spaces(t->widths[i] - display_width(row[i]) + 2, out);
        }
        fputc('\n', out);
    }
}

/* ---- Listings ---- */

static bool is_container(const struct json_value *v)
{
    enum json_kind t = json_value_kind(v);
    return t == JSON_KIND_ARRAY || t == JSON_KIND_OBJECT;
}

/* Whether v prints on its key's line: scalars, empty containers, arrays of scalars. */
static bool listing_inline(const struct json_value *v)
{
    if (json_value_kind(v) == JSON_KIND_OBJECT)
        return json_object_count(v) == 0;
    for (size_t i = 0; i < json_array_length(v); i++) {
        if (is_container(json_array_at(v, i)))
            return false;
    }
    return true;
}

static void listing_value_inline(const struct json_value *v, FILE *out)
{
    if (json_value_kind(v) == JSON_KIND_OBJECT ||
        (json_value_kind(v) == JSON_KIND_ARRAY && json_array_length(v) == 0)) {
        fputs("(none)", out);
        return;
    }
    if (json_value_kind(v) != JSON_KIND_ARRAY) {
        char *s = output_sanitize(output_scalar(v));
        fputs(s != NULL ? s : "?", out);
        free(s);
        return;
    }
    for (size_t i = 0; i < json_array_length(v); i++) {
        char *s = output_sanitize(output_scalar(json_array_at(v, i)));
        if (i > 0)
            fputs(", ", out);
        fputs(s != NULL ? s : "?", out);
        free(s);
    }
}

static void listing_object(const struct json_value *obj, size_t indent, FILE *out);

/* One "key: value" line, or "key:" and the indented block under it. */
static void listing_member(const char *key, size_t width, const struct json_value *v, size_t indent,
                           FILE *out)
{
    put_spaces(indent, out);
    fputs(key, out);
    fputc(':', out);
    if (listing_inline(v)) {
        size_t kw = display_width(key);
        put_spaces((width > kw ? width - kw : 0) + 1, out);
        listing_value_inline(v, out);
        fputc('\n', out);
        return;
    }
    fputc('\n', out);
    if (json_value_kind(v) == JSON_KIND_OBJECT) {
        listing_object(v, indent + 2, out);
        return;
    }
    for (size_t i = 0; i < json_array_length(v); i++) {
        char label[32];
        int m = snprintf(label, sizeof(label), "[%zu]", i);
        listing_member(m > 0 ? label : "[?]", 0, json_array_at(v, i), indent + 2, out);
    }
}

/* The width of the widest key among obj's members that print on their key's line, skip aside. */
static size_t listing_key_width(const struct json_value *obj, const char *skip)
{
    size_t width = 0;

    for (size_t i = 0; i < json_object_count(obj); i++) {
        const char *key;
        const struct json_value *v;
        if (!json_object_member(obj, i, &key, NULL, &v) || !listing_inline(v) ||
            (skip != NULL && strcmp(key, skip) == 0))
            continue;
        char *k = output_sanitize(key);
        if (k != NULL && display_width(k) > width)
            width = display_width(k);
        free(k);
    }
    return width;
}

/* Lists obj's members in order, but not the one named skip (NULL: none). */
static void listing_object_skip(const struct json_value *obj, size_t indent, const char *skip,
                                FILE *out)
{
    size_t width = listing_key_width(obj, skip);

    for (size_t i = 0; i < json_object_count(obj); i++) {
        const char *key;
        const struct json_value *v;
        if (!json_object_member(obj, i, &key, NULL, &v) || (skip != NULL && strcmp(key, skip) == 0))
            continue;
        char *k = output_sanitize(key);
        if (k == NULL)
            continue;
        listing_member(k, listing_inline(v) ? width : 0, v, indent, out);
        free(k);
    }
}

static void listing_object(const struct json_value *obj, size_t indent, FILE *out)
{
    listing_object_skip(obj, indent, NULL, out);
}

void output_listing(const struct json_value *obj, FILE *out)
{
    listing_object(obj, 0, out);
}

/* ---- Attestations ---- */

/* What the codes of docs/attestation.md mean, for the operator who has not read it. */
static const char *attestation_explain(const char *key, const char *value)
{
    static const struct {
        const char *key, *value, *meaning;
    } meanings[] = {
        {"status", "none", "no verdict in this enrollment"},
        {"status", "expired", "verified once, but past attestation_max_age or its leaf"},
        {"status", "unsupported", "a device that cannot attest answered without one"},
        {"status", "error", "the device answered the request with an error"},
        {"freshness", "fresh", "made for the request it answers"},
        {"freshness", "cached", "the device's cached attestation, made for an earlier request"},
        {"freshness", "unknown", "the freshness code matches no nonce sent to the device"},
        {"reason", "malformed", "not a list of DER certificates, or a bad Apple extension"},
        {"reason", "untrusted_chain",
         "does not verify to a trusted root at the time of verification"},
        {"reason", "nonce_mismatch", "the freshness code is none of the expected nonces"},
        {"reason", "nonce_missing", "the leaf carries no freshness code"},
        {"reason", "udid_mismatch", "the attested UDID is not the device's"},
        {"reason", "serial_mismatch", "the attested serial number is not the device's"},
        {"reason", "os_version_mismatch",
         "a fresh attestation states another OS version than the device reports"},
        {"reason", "stale_attestation",
         "a cached attestation older than its request or than Apple's 7-day cache"},
        {"reason", "attestation_withheld",
         "a device that can attest (or did) answered without an attestation"},
        {"reason", "no_answer", "errors or silence past attestation_retry_limit"},
        {"next_due_reason", "random", "a random re-check, unpredictable to the device"},
        {"next_due_reason", "max_age", "the attestation reaches attestation_max_age"},
        {"next_due_reason", "os_change", "the OS changed: as soon as Apple's 7-day limit allows"},
        {"next_due_reason", "retry", "the last answer failed: asked again"},
    };
    for (size_t i = 0; i < sizeof(meanings) / sizeof(meanings[0]); i++) {
        if (strcmp(meanings[i].key, key) == 0 && strcmp(meanings[i].value, value) == 0)
            return meanings[i].meaning;
    }
    return NULL;
}

/* "key:" padded to width, then text (sanitized) and an optional explanation. */
static void attestation_line(const char *key, size_t width, const char *text, const char *meaning,
                             size_t indent, FILE *out)
{
    char *safe = output_sanitize(text);

    put_spaces(indent, out);
    fputs(key, out);
    fputc(':', out);
    size_t kw = display_width(key);
    put_spaces((width > kw ? width - kw : 0) + 1, out);
    fputs(safe != NULL ? safe : "?", out);
    if (meaning != NULL)
        fprintf(out, " (%s)", meaning);
    fputc('\n', out);
    free(safe);
}

/* The attested properties: one aligned line each, "null" for what Apple did not establish. */
static void attestation_properties(const struct json_value *props, size_t indent, FILE *out)
{
    size_t width = listing_key_width(props, NULL);

    for (size_t i = 0; i < json_object_count(props); i++) {
        const char *key;
        const struct json_value *v;
        if (!json_object_member(props, i, &key, NULL, &v))
            continue;
        char *k = output_sanitize(key);
        if (k == NULL)
            continue;
        if (json_value_is_null(v))
            attestation_line(k, width, "null", NULL, indent, out);
        else
            listing_member(k, listing_inline(v) ? width : 0, v, indent, out);
        free(k);
    }
}

void output_attestation(const struct json_value *att, size_t indent, FILE *out)
{
    static const char *const known[] = {
        "status",      "reason",          "freshness",   "device_status",  "verified_at",
        "expires_at",  "requested_at",    "received_at", "generated_at",   "leaf_expires_at",
        "next_due_at", "next_due_reason", "leaf_sha256", "freshness_code",
    };
    const size_t nknown = sizeof(known) / sizeof(known[0]);
    const struct json_value *props = json_object_find(att, "properties");
    size_t width = listing_key_width(att, NULL);

    for (size_t i = 0; i < nknown; i++) {
        const struct json_value *v = json_object_find(att, known[i]);
        if (v == NULL)
            continue;
        const char *text = output_scalar(v);
        const char *meaning =
            json_value_kind(v) == JSON_KIND_STRING ? attestation_explain(known[i], text) : NULL;
        attestation_line(known[i], width, text, meaning, indent, out);
    }
    if (json_value_kind(props) == JSON_KIND_OBJECT) {
        const char *status = json_object_get_string(att, "status");
        put_spaces(indent, out);
        /* What a failed answer states is the device's claim, not Apple's word about it. */
        fputs(status != NULL && strcmp(status, "failed") == 0
                  ? "properties: (from a failed attestation: not trusted)\n"
                  : "properties:\n",
              out);
        attestation_properties(props, indent + 2, out);
    } else if (props != NULL) {
        attestation_line("properties", width, output_scalar(props), NULL, indent, out);
    }
    /* Whatever else the server sends (chain, reported, ...) is shown as it is. */
    for (size_t i = 0; i < json_object_count(att); i++) {
        const char *key;
        const struct json_value *v;
        bool seen = false;
        if (!json_object_member(att, i, &key, NULL, &v))
            continue;
        seen = strcmp(key, "properties") == 0;
        for (size_t j = 0; !seen && j < nknown; j++)
            seen = strcmp(key, known[j]) == 0;
        if (seen)
            continue;
        char *k = output_sanitize(key);
        if (k != NULL)
            listing_member(k, listing_inline(v) ? width : 0, v, indent, out);
        free(k);
    }
}

/* The device's identity on one line: "acme-attested (hardware-bound), certificate SERIAL, until
 * TIME", "scep, until TIME", with ", revoked" when it is; a migrated one says how far its proof
 * has come: "migrated, unbound", "migrated, bound provisionally", "migrated, bound", with its
 * reason ("migrated, unbound: identity_unproven"). */
static void device_identity_line(const struct json_value *identity, size_t width, FILE *out)
{
    const char *kind = json_object_get_string(identity, "kind");
    const char *serial = json_object_get_string(identity, "certificate_serial");
    const char *not_after = json_object_get_string(identity, "not_after");
    const char *reason = json_object_get_string(identity, "reason");
    bool hardware_bound = false, revoked = false, bound = false, provisional = false;
    const char *state = "";
    char text[512];

    if (kind != NULL && strcmp(kind, "migrated") == 0 &&
        json_get_bool(json_object_find(identity, "bound"), &bound)) {
        if (!json_get_bool(json_object_find(identity, "provisional"), &provisional))
            provisional = false;
        state = !bound ? ", unbound" : provisional ? ", bound provisionally" : ", bound";
    }
    if (!json_get_bool(json_object_find(identity, "hardware_bound"), &hardware_bound))
        hardware_bound = false;
    if (!json_get_bool(json_object_find(identity, "revoked"), &revoked))
        revoked = false;
    int m = snprintf(text, sizeof(text), "%s%s%s%s%s%s%s%s%s%s", kind != NULL ? kind : "-",
                     hardware_bound ? " (hardware-bound)" : "", state, reason != NULL ? ": " : "",
                     reason != NULL ? reason : "", serial != NULL ? ", certificate " : "",
                     serial != NULL ? serial : "", not_after != NULL ? ", until " : "",
                     not_after != NULL ? not_after : "", revoked ? ", revoked" : "");
    if (m < 0)
        text[0] = '\0';
    attestation_line("identity", width, text, NULL, 0, out);
}

void output_device(const struct json_value *dev, FILE *out)
{
    const struct json_value *att = json_object_find(dev, "attestation");
    bool att_block = json_value_kind(att) == JSON_KIND_OBJECT;
    size_t width = listing_key_width(dev, att_block ? "attestation" : NULL);

    if (width < strlen("identity"))
        width = strlen("identity");
    for (size_t i = 0; i < json_object_count(dev); i++) {
        const char *key;
        const struct json_value *v;
        if (!json_object_member(dev, i, &key, NULL, &v) ||
            (att_block && strcmp(key, "attestation") == 0))
            continue;
        if (strcmp(key, "identity") == 0 && json_value_kind(v) == JSON_KIND_OBJECT) {
            device_identity_line(v, width, out);
            continue;
        }
        char *k = output_sanitize(key);
        if (k == NULL)
            continue;
        listing_member(k, listing_inline(v) ? width : 0, v, 0, out);
        free(k);
    }
    if (att_block) {
        fputs("attestation:\n", out);
        output_attestation(att, 2, out);
    }
}

/* ---- JSON ---- */

/* Prints what w holds when ok, and frees w. */
static bool output_finish(struct json_writer *w, bool ok, FILE *out)
{
    const char *text;
    size_t len;
    if (!ok || !json_writer_finish(w, &text, &len)) {
        fprintf(stderr, "vouchctl: cannot print JSON: %s\n",
                json_write_strerror(json_writer_error(w)));
        json_writer_free(w);
        return false;
    }
    fwrite(text, 1, len, out);
    fputc('\n', out);
    json_writer_free(w);
    return true;
}

/* Writes v, or when v is NULL an array of the n items, as indented JSON. */
static bool output_json_items(const struct json_value *v, const struct json_value *const *items,
                              size_t n, FILE *out)
{
    struct json_writer *w = json_writer_new(OUTPUT_MAX_JSON, JSON_WRITER_PRETTY);
    bool ok;

    if (w == NULL) {
        fprintf(stderr, "vouchctl: out of memory\n");
        return false;
    }
    if (v != NULL) {
        ok = json_write_value(w, v);
    } else {
        ok = json_write_begin_array(w);
        for (size_t i = 0; ok && i < n; i++)
            ok = json_write_value(w, items[i]);
        ok = ok && json_write_end_array(w);
    }
    return output_finish(w, ok, out);
}

bool output_json(const struct json_value *v, FILE *out)
{
    return output_json_items(v, NULL, 0, out);
}

bool output_json_array(const struct json_value *const *items, size_t n, FILE *out)
{
    return output_json_items(NULL, items, n, out);
}

bool output_json_merged(struct json_doc *const *docs, size_t ndocs, const char *member, FILE *out)
{
    struct json_writer *w = json_writer_new(OUTPUT_MAX_JSON, JSON_WRITER_PRETTY);
    if (w == NULL) {
        fprintf(stderr, "vouchctl: out of memory\n");
        return false;
    }
    bool ok = json_write_begin_object(w) && json_write_key(w, member) && json_write_begin_object(w);
    for (size_t d = 0; ok && d < ndocs; d++) {
        const struct json_value *part = json_object_find(json_doc_root(docs[d]), member);
        for (size_t i = 0; ok && i < json_object_count(part); i++) {
            const char *key;
            size_t key_len;
            const struct json_value *v;
            ok = json_object_member(part, i, &key, &key_len, &v) &&
                 json_write_keyn(w, key, key_len) && json_write_value(w, v);
        }
    }
    ok = ok && json_write_end_object(w) && json_write_end_object(w);
    return output_finish(w, ok, out);
}
