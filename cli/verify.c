/*
 * vouchctl verify: checks a Managed Device Attestation chain offline, with the very verifier
 * vouchd uses (server/attestation/attest.c), and prints its verdict in the shapes of the admin API.
 *
 * No server, no network: the certificates come from files, the trust anchors from --roots or the
 * built-in Apple root, the time from --at or the clock. With --server, one stored answer comes
 * from the device's attestation history instead, with what vouchd checked it against (nonces,
 * UDID, serial, OS version, time), and the verdict of the re-check is compared with the stored
 * one.
 */
#include "vouchctl.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "attest.h"
#include "attest_json.h"
#include "hex.h"
#include "json.h"
#include "output.h"

/* A certificate or roots file larger than this is not what it claims to be. */
#define VERIFY_MAX_FILE ((size_t)1024 * 1024)
/* Certificates read in all; attest_verify() itself refuses more than ATTEST_MAX_CERTS. */
#define VERIFY_MAX_CERTS 64
#define VERIFY_MAX_JSON ((size_t)1024 * 1024)

/* The chain as read, leaf first. */
struct verify_chain {
    uint8_t *certs[VERIFY_MAX_CERTS];
    size_t lens[VERIFY_MAX_CERTS];
    size_t count;
};

static void verify_chain_clear(struct verify_chain *chain)
{
    for (size_t i = 0; i < chain->count; i++)
        free(chain->certs[i]);
    chain->count = 0;
}

/* Takes ownership of der. False (with a message) when the chain is already full. */
static bool verify_chain_add(struct verify_chain *chain, const char *file, uint8_t *der, size_t len)
{
    if (chain->count == VERIFY_MAX_CERTS) {
        free(der);
        ctl_usage_error("verify", "%s: more than %d certificates in all", file, VERIFY_MAX_CERTS);
        return false;
    }
    chain->certs[chain->count] = der;
    chain->lens[chain->count] = len;
    chain->count++;
    return true;
}

/* An even number of hex digits, 1 to max bytes. */
static bool parse_hex(const char *text, uint8_t *out, size_t max, size_t *len)
{
    return text[0] != '\0' && hex_decode(text, strlen(text), out, max, len);
}

/* Exactly n decimal digits at *p, advancing it. */
static bool take_digits(const char **p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool take_char(const char **p, const char *allowed)
{
    if (**p == '\0' || strchr(allowed, **p) == NULL)
        return false;
    (*p)++;
    return true;
}

/* RFC 3339 date-time ("2025-08-01T00:00:00Z", "2025-08-01T02:00:00.5+02:00"; fractions of a
 * second are dropped), or a Unix time in seconds. */
static bool parse_time(const char *text, time_t *out)
{
    const char *p = text;
    struct tm tm = {0}, check;
    int year, month, day, hour, minute, second, off_h = 0, off_m = 0, sign = 0;

    if (*p >= '0' && *p <= '9' && strspn(p, "0123456789") == strlen(p)) {
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno != 0 || *end != '\0' || (long long)(time_t)v != v)
            return false;
        *out = (time_t)v;
        return true;
    }
    if (!take_digits(&p, 4, &year) || !take_char(&p, "-") || !take_digits(&p, 2, &month) ||
        !take_char(&p, "-") || !take_digits(&p, 2, &day) || !take_char(&p, "Tt ") ||
        !take_digits(&p, 2, &hour) || !take_char(&p, ":") || !take_digits(&p, 2, &minute) ||
        !take_char(&p, ":") || !take_digits(&p, 2, &second))
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        p += strspn(p, "0123456789");
    }
    if (take_char(&p, "Zz")) {
        sign = 0;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (!take_digits(&p, 2, &off_h) || !take_char(&p, ":") || !take_digits(&p, 2, &off_m) ||
            off_h > 23 || off_m > 59)
            return false;
    } else {
        return false; /* RFC 3339 wants the offset: a bare local time is ambiguous */
    }
    if (*p != '\0' || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60)
        return false;
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second == 60 ? 59 : second; /* a leap second: its last whole second */
    time_t t = timegm(&tm);
    /* timegm() normalizes 31 April into 1 May: refuse what did not survive the round trip. */
    if (gmtime_r(&t, &check) == NULL || check.tm_mday != day || check.tm_mon != month - 1)
        return false;
    *out = t - (time_t)sign * (off_h * 3600 + off_m * 60);
    return true;
}

static bool is_certificate_block(const char *name)
{
    return strcmp(name, PEM_STRING_X509) == 0 || strcmp(name, PEM_STRING_X509_OLD) == 0;
}

/*
 * Adds the certificates of one file: every CERTIFICATE block of a PEM file, in order, or the
 * whole file as one DER certificate. Whether the DER is really one certificate is the verifier's
 * question (a wrong answer is "malformed"). Returns an exit status.
 */
static int read_cert_file(const char *file, struct verify_chain *chain)
{
    char *data = NULL;
    size_t len = 0;
    int rc = CTL_EXIT_USAGE;

    if (!ctl_read_file(file, VERIFY_MAX_FILE, &data, &len))
        return CTL_EXIT_USAGE;
    if (len == 0) {
        ctl_usage_error("verify", "%s: empty file", file);
        goto out;
    }
    if (strstr(data, "-----BEGIN ") == NULL || memchr(data, '\0', len) != NULL) {
        uint8_t *der = malloc(len);
        if (der == NULL) {
            fprintf(stderr, "vouchctl: out of memory\n");
            rc = CTL_EXIT_FAILURE;
            goto out;
        }
        memcpy(der, data, len);
        rc = verify_chain_add(chain, file, der, len) ? CTL_EXIT_OK : CTL_EXIT_USAGE;
        goto out;
    }

    BIO *bio = BIO_new_mem_buf(data, (int)len);
    size_t found = 0;
    if (bio == NULL) {
        fprintf(stderr, "vouchctl: out of memory\n");
        rc = CTL_EXIT_FAILURE;
        goto out;
    }
    ERR_clear_error();
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long der_len = 0;
        if (PEM_read_bio(bio, &name, &header, &der, &der_len) != 1) {
            unsigned long e = ERR_peek_last_error();
            /* The end of the file reads as "no start line"; anything else is damage. */
            if (found == 0 || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
                ctl_usage_error("verify", "%s: %s", file,
                                found == 0 ? "no PEM certificate in the file"
                                           : "a damaged PEM block");
                rc = CTL_EXIT_USAGE;
            } else {
                rc = CTL_EXIT_OK;
            }
            break;
        }
        bool is_cert = is_certificate_block(name);
        if (!is_cert)
            ctl_usage_error("verify", "%s: a PEM block of type '%s' is not a certificate", file,
                            name);
        uint8_t *copy = is_cert && der_len > 0 ? malloc((size_t)der_len) : NULL;
        if (copy != NULL)
            memcpy(copy, der, (size_t)der_len);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        if (!is_cert)
            break;
        if (copy == NULL) {
            if (der_len > 0) {
                fprintf(stderr, "vouchctl: out of memory\n");
                rc = CTL_EXIT_FAILURE;
            } else {
                ctl_usage_error("verify", "%s: an empty PEM certificate", file);
            }
            break;
        }
        if (!verify_chain_add(chain, file, copy, (size_t)der_len))
            break;
        found++;
    }
    ERR_clear_error();
    BIO_free(bio);
out:
    free(data);
    return rc;
}

/* The verdict's JSON, exactly as attest_json_write_verdict() writes it, in a writer the caller
 * frees. NULL (with a message) on failure. */
static struct json_writer *verdict_json(const struct attest_verdict *verdict, unsigned flags,
                                        const char **text, size_t *len)
{
    struct json_writer *w = json_writer_new(VERIFY_MAX_JSON, flags);

    if (w == NULL) {
        fprintf(stderr, "vouchctl: out of memory\n");
        return NULL;
    }
    if (!attest_json_write_verdict(w, verdict, NULL) || !json_writer_finish(w, text, len)) {
        fprintf(stderr, "vouchctl: cannot write the verdict: %s\n",
                json_write_strerror(json_writer_error(w)));
        json_writer_free(w);
        return NULL;
    }
    return w;
}

/* The human form: the verdict's members as `vouchctl device` shows an attestation, with the
 * leaf's freshness code, which the JSON shape does not carry. */
static bool print_verdict(const struct attest_verdict *verdict)
{
    static const struct json_limits limits = {VERIFY_MAX_JSON, 8, 1024};
    const char *text;
    size_t len;
    struct json_writer *w = verdict_json(verdict, 0, &text, &len);
    struct json_writer *shown = NULL;
    struct json_doc *doc = NULL;
    bool ok = false;

    if (w == NULL)
        return false;
    if (json_parse(text, len, &limits, &doc, NULL) != JSON_OK) {
        fprintf(stderr, "vouchctl: cannot read back the verdict\n");
        goto out;
    }
    /* A copy of the verdict with "freshness_code" after leaf_sha256. */
    const struct json_value *root = json_doc_root(doc);
    shown = json_writer_new(VERIFY_MAX_JSON, 0);
    ok = shown != NULL && json_write_begin_object(shown);
    for (size_t i = 0; ok && i < json_object_count(root); i++) {
        const char *key;
        const struct json_value *v;
        ok = json_object_member(root, i, &key, NULL, &v) && json_write_key(shown, key) &&
             json_write_value(shown, v);
        if (ok && strcmp(key, "leaf_sha256") == 0 && verdict->leaf_parsed) {
            const struct attest_properties *p = &verdict->properties;
            char hex[2 * ATTEST_MAX_NONCE_BYTES + 1] = "";
            for (size_t j = 0; p->has_freshness && j < p->freshness_len; j++)
                snprintf(hex + 2 * j, 3, "%02x", p->freshness[j]);
            ok = json_write_key(shown, "freshness_code") &&
                 json_write_string_or_null(shown, p->has_freshness ? hex : NULL);
        }
    }
    ok = ok && json_write_end_object(shown) && json_writer_finish(shown, &text, &len);
    json_doc_free(doc);
    doc = NULL;
    if (!ok || json_parse(text, len, &limits, &doc, NULL) != JSON_OK) {
        fprintf(stderr, "vouchctl: cannot format the verdict\n");
        ok = false;
        goto out;
    }
    output_attestation(json_doc_root(doc), 0, stdout);
out:
    json_doc_free(doc);
    json_writer_free(shown);
    json_writer_free(w);
    return ok;
}

/* ---- --server: a stored answer, checked again ---- */

/* Standard base64 (as the admin API writes DER) into chain; false when it is not. */
static bool chain_add_base64(struct verify_chain *chain, const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len % 4 != 0 || len > 4 * (ATTEST_MAX_CERT_BYTES / 3 + 1) ||
        chain->count == VERIFY_MAX_CERTS)
        return false;
    uint8_t *der = malloc(len / 4 * 3);
    if (der == NULL)
        return false;
    int n = EVP_DecodeBlock(der, (const unsigned char *)text, (int)len);
    size_t pad = (text[len - 1] == '=') + (text[len - 2] == '=');
    if (n < 0 || (size_t)n < pad || !verify_chain_add(chain, "stored chain", der, (size_t)n - pad)) {
        free(der);
        return false;
    }
    return true;
}

/* The history entry to check: the one with this id, or the newest with a chain. */
static const struct json_value *pick_answer(const struct json_value *history, const char *id)
{
    for (size_t i = 0; i < json_array_length(history); i++) {
        const struct json_value *e = json_array_at(history, i);
        const struct json_value *chain = json_object_find(e, "chain");
        const struct json_value *eid = json_object_find(e, "id");
        if (id != NULL ? json_value_kind(eid) == JSON_KIND_NUMBER &&
                             strcmp(json_number_text(eid), id) == 0
                       : json_value_kind(chain) == JSON_KIND_ARRAY)
            return e;
    }
    return NULL;
}

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* vouchctl verify --server UDID [ID]: 0 when the re-check agrees with the stored verdict. */
static int verify_stored(struct ctl *ctl, struct attest_verifier *verifier)
{
    struct verify_chain chain = {0};
    struct json_doc *doc = NULL;
    struct json_writer *w = NULL;
    const char *udid = ctl->args[0], *id = ctl->nargs > 1 ? ctl->args[1] : NULL;
    int rc = ctl_get_device_json(ctl, udid, "/attestations", &doc);
    if (rc != CTL_EXIT_OK)
        return rc;
    rc = CTL_EXIT_FAILURE;
    const struct json_value *e = pick_answer(json_doc_root(doc), id);
    if (e == NULL) {
        fprintf(stderr, "vouchctl: %s has no stored answer %s%s\n", udid, id ? "with id " : "",
                id ? id : "with a chain");
        goto out;
    }
    const struct json_value *items = json_object_find(e, "chain");
    if (json_value_kind(items) != JSON_KIND_ARRAY) {
        fprintf(stderr, "vouchctl: answer %s is %s without a chain: nothing to check again\n",
                json_number_text(json_object_find(e, "id")),
                json_object_get_string(e, "status") ? json_object_get_string(e, "status") : "?");
        goto out;
    }
    for (size_t i = 0; i < json_array_length(items); i++) {
        const char *b64;
        if (!json_get_string(json_array_at(items, i), &b64, NULL) ||
            !chain_add_base64(&chain, b64)) {
            fprintf(stderr, "vouchctl: the stored chain is not base64 DER\n");
            goto out;
        }
    }
    uint8_t nonce[ATTEST_MAX_NONCE_BYTES], cached[ATTEST_MAX_NONCE_BYTES];
    size_t nonce_len = 0, cached_len = 0;
    const char *nonce_hex = json_object_get_string(e, "nonce");
    const char *cached_hex = json_object_get_string(e, "cached_nonce");
    if ((nonce_hex != NULL && !parse_hex(nonce_hex, nonce, sizeof(nonce), &nonce_len)) ||
        (cached_hex != NULL && !parse_hex(cached_hex, cached, sizeof(cached), &cached_len))) {
        fprintf(stderr, "vouchctl: the stored nonces are not hex\n");
        goto out;
    }
    /* What vouchd checked it against; an answer stored before vouchd kept it gives the UDID and
     * the time it was received only. */
    const struct json_value *checked = json_object_find(e, "checked");
    bool known = json_value_kind(checked) == JSON_KIND_OBJECT;
    time_t at = 0, asked = 0;
    bool require_fresh = false;
    const char *at_text = known ? json_object_get_string(checked, "at")
                                : json_object_get_string(e, "received_at");
    const char *asked_text = known ? json_object_get_string(checked, "cached_requested_at") : NULL;
    if (at_text == NULL || !parse_time(at_text, &at) ||
        (asked_text != NULL && !parse_time(asked_text, &asked)) ||
        (known && !json_get_bool(json_object_find(checked, "require_fresh"), &require_fresh))) {
        fprintf(stderr, "vouchctl: the stored answer does not say when it was checked\n");
        goto out;
    }
    if (!known)
        fprintf(stderr, "vouchctl: note: stored before vouchd kept what it checked against: the "
                        "UDID and the time are checked, not the serial, OS or cache bounds\n");
    const uint8_t *certs[VERIFY_MAX_CERTS];
    for (size_t i = 0; i < chain.count; i++)
        certs[i] = chain.certs[i];
    const uint8_t *older[1] = {cached};
    const size_t older_lens[1] = {cached_len};
    const time_t older_asked[1] = {asked};
    const struct attest_input in = {
        .certs = certs,
        .cert_lens = chain.lens,
        .cert_count = chain.count,
        .request_nonce = nonce_hex != NULL ? nonce : NULL,
        .request_nonce_len = nonce_len,
        .older_nonces = older,
        .older_nonce_lens = older_lens,
        .older_requested_at = asked_text != NULL ? older_asked : NULL,
        .older_nonce_count = cached_hex != NULL ? 1 : 0,
        .require_fresh = require_fresh,
        .expected_udid = known ? json_object_get_string(checked, "udid") : udid,
        .expected_serial = known ? json_object_get_string(checked, "serial") : NULL,
        .reported_os_version = known ? json_object_get_string(checked, "os_version") : NULL,
        .verify_time = at,
    };
    struct attest_verdict verdict;
    attest_verify(verifier, &in, &verdict);

    const char *status = json_object_get_string(e, "status");
    const char *reason = json_object_get_string(e, "reason");
    const char *freshness = json_object_get_string(e, "freshness");
    bool agree = same_text(status, attest_status_name(verdict.status)) &&
                 same_text(reason, attest_reason_name(verdict.reason)) &&
                 same_text(freshness, attest_freshness_name(verdict.freshness));
    const char *answer_id = json_number_text(json_object_find(e, "id"));
    if (ctl->json) {
        const char *text;
        size_t len;
        w = json_writer_new(VERIFY_MAX_JSON, JSON_WRITER_PRETTY);
        if (w == NULL || !json_write_begin_object(w) || !json_write_key(w, "id") ||
            !json_write_value(w, json_object_find(e, "id")) || !json_write_key(w, "stored") ||
            !json_write_begin_object(w) || !json_write_key(w, "status") ||
            !json_write_string_or_null(w, status) || !json_write_key(w, "reason") ||
            !json_write_string_or_null(w, reason) || !json_write_key(w, "freshness") ||
            !json_write_string_or_null(w, freshness) || !json_write_end_object(w) ||
            !json_write_key(w, "rechecked") || !attest_json_write_verdict(w, &verdict, NULL) ||
            !json_write_key(w, "agree") || !json_write_bool(w, agree) ||
            !json_write_end_object(w) || !json_writer_finish(w, &text, &len)) {
            fprintf(stderr, "vouchctl: cannot write the answer\n");
            goto out;
        }
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
    } else {
        printf("answer %s of %s (generation %s, %s request), checked at %s\n", answer_id, udid,
               output_scalar(json_object_find(e, "generation")),
               output_scalar(json_object_find(e, "request_reason")), at_text);
        printf("  stored:     %s%s%s%s (%s)\n", status ? status : "-", reason ? " (" : "",
               reason ? reason : "", reason ? ")" : "", freshness ? freshness : "-");
        const char *r = attest_reason_name(verdict.reason);
        const char *f = attest_freshness_name(verdict.freshness);
        printf("  re-checked: %s%s%s%s (%s)\n", attest_status_name(verdict.status), r ? " (" : "",
               r ? r : "", r ? ")" : "", f ? f : "-");
        printf("%s\n", agree ? "the verifier agrees with the stored verdict"
                             : "the verifier DISAGREES with the stored verdict (other --roots?)");
    }
    rc = agree ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
out:
    json_writer_free(w);
    json_doc_free(doc);
    verify_chain_clear(&chain);
    return rc;
}

int cmd_verify(struct ctl *ctl)
{
    struct verify_chain chain = {0};
    struct attest_verifier *verifier = NULL;
    uint8_t nonce[ATTEST_MAX_NONCE_BYTES];
    size_t nonce_len = 0;
    time_t at = time(NULL);
    char *roots = NULL;
    size_t roots_len = 0;
    char err[256] = "";
    int rc;

    if (ctl->nonce != NULL && !parse_hex(ctl->nonce, nonce, sizeof(nonce), &nonce_len))
        return ctl_usage_error("verify",
                               "--nonce: '%s' is not 1 to %d bytes in hex (two digits a byte)",
                               ctl->nonce, ATTEST_MAX_NONCE_BYTES);
    if (ctl->at != NULL && !parse_time(ctl->at, &at))
        return ctl_usage_error("verify",
                               "--at: '%s' is neither an RFC 3339 time "
                               "(2025-08-01T00:00:00Z) nor a Unix time",
                               ctl->at);
    if (ctl->udid != NULL && ctl->udid[0] == '\0')
        return ctl_usage_error("verify", "--udid: empty");
    if (ctl->serial != NULL && ctl->serial[0] == '\0')
        return ctl_usage_error("verify", "--serial: empty");
    if (ctl->server && (ctl->nargs > 2 || ctl->nonce != NULL || ctl->udid != NULL ||
                        ctl->serial != NULL || ctl->at != NULL))
        return ctl_usage_error("verify", "--server takes UDID [ID]: the nonces, UDID, serial "
                                         "and time come from the server");

    for (size_t i = 0; !ctl->server && i < ctl->nargs; i++) {
        rc = read_cert_file(ctl->args[i], &chain);
        if (rc != CTL_EXIT_OK)
            goto out;
    }
    if (ctl->roots != NULL) {
        if (!ctl_read_file(ctl->roots, VERIFY_MAX_FILE, &roots, &roots_len)) {
            rc = CTL_EXIT_USAGE;
            goto out;
        }
        verifier = attest_verifier_new(roots, roots_len, err, sizeof(err));
    } else {
        verifier = attest_verifier_new(attest_apple_root_pem, strlen(attest_apple_root_pem), err,
                                       sizeof(err));
    }
    if (verifier == NULL) {
        rc = ctl_usage_error("verify", "%s: %s",
                             ctl->roots != NULL ? ctl->roots : "the built-in Apple root",
                             err[0] != '\0' ? err : "cannot load the trust anchors");
        goto out;
    }
    if (ctl->server) {
        rc = verify_stored(ctl, verifier);
        goto out;
    }

    const uint8_t *certs[VERIFY_MAX_CERTS];
    for (size_t i = 0; i < chain.count; i++)
        certs[i] = chain.certs[i];
    struct attest_input in = {
        .certs = certs,
        .cert_lens = chain.lens,
        .cert_count = chain.count,
        .request_nonce = ctl->nonce != NULL ? nonce : NULL,
        .request_nonce_len = nonce_len,
        .expected_udid = ctl->udid,
        .expected_serial = ctl->serial,
        .verify_time = at,
    };
    struct attest_verdict verdict;
    attest_verify(verifier, &in, &verdict);

    bool printed;
    if (ctl->json) {
        const char *text;
        size_t len;
        struct json_writer *w = verdict_json(&verdict, JSON_WRITER_PRETTY, &text, &len);
        printed = w != NULL;
        if (printed) {
            fwrite(text, 1, len, stdout);
            fputc('\n', stdout);
        }
        json_writer_free(w);
    } else {
        printed = print_verdict(&verdict);
    }
    if (!printed) {
        rc = CTL_EXIT_FAILURE;
        goto out;
    }
    if (chain.count > ATTEST_MAX_CERTS)
        fprintf(stderr,
                "vouchctl: note: %zu certificates given; a chain has at most %d (a "
                "device sends the leaf and the Sub CA)\n",
                chain.count, ATTEST_MAX_CERTS);
    if (verdict.reason == ATTEST_REASON_NONCE_MISMATCH && ctl->nonce == NULL)
        fprintf(stderr, "vouchctl: note: without --nonce the freshness code cannot be matched: "
                        "pass the nonce that was sent\n");
    if (verdict.reason == ATTEST_REASON_UNTRUSTED_CHAIN && chain.count == 1)
        fprintf(stderr, "vouchctl: note: only the leaf was given; the chain needs the "
                        "intermediate (Apple Enterprise Attestation Sub CA 1) the device sent "
                        "after it\n");
    rc = verdict.status == ATTEST_VERIFIED ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
out:
    attest_verifier_free(verifier);
    free(roots);
    verify_chain_clear(&chain);
    return rc;
}
