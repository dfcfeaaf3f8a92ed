/*
 * `vouchctl certs`: the identity certificates vouchd's ACME server issued (GET /v1/certs), and
 * `certs revoke` (POST /v1/certs/{serial}/revoke).
 */
#include "vouchctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "client.h"
#include "json.h"
#include "output.h"

/* The admin API's largest page. It has no cursor: this is as far back as the list goes. */
#define CERTS_LIMIT 1000
#define CERTS_LIMIT_TEXT "1000"
/* What the server accepts: a serial of up to 64 hex digits, a reason of 1 to 64 bytes. */
#define CERT_SERIAL_MAX 64
#define REVOKE_REASON_MAX 64

/* Now in the admin API's time format, "YYYY-MM-DDTHH:MM:SSZ" (UTC): fixed width, so two such
 * times order as text. Empty when the clock cannot be read. */
static void certs_now(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;

    out[0] = '\0';
    if (now == (time_t)-1 || gmtime_r(&now, &tm) == NULL ||
        strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        out[0] = '\0';
}

/* The STATE cell: "revoked (reason)", "expired" or "active". */
static void cert_state(const struct json_value *cert, const char *now, char *out, size_t size)
{
    const struct json_value *revoked_at = json_object_find(cert, "revoked_at");
    const char *reason = json_object_get_string(cert, "revoked_reason");
    const char *not_after = json_object_get_string(cert, "not_after");
    int m;

    if (revoked_at != NULL && !json_value_is_null(revoked_at))
        m = reason != NULL ? snprintf(out, size, "revoked (%s)", reason)
                           : snprintf(out, size, "revoked");
    else if (not_after != NULL && now[0] != '\0' && strcmp(not_after, now) <= 0)
        m = snprintf(out, size, "expired");
    else
        m = snprintf(out, size, "active");
    if (m < 0)
        out[0] = '\0';
}

struct certs_rows {
    struct table *table;
    char now[32];
};

static bool certs_add_row(struct certs_rows *rows, const struct json_value *cert)
{
    char state[128];

    cert_state(cert, rows->now, state, sizeof(state));
    const char *cells[] = {
        json_object_get_string(cert, "serial"),         json_object_get_string(cert, "udid"),
        json_object_get_string(cert, "serial_number"),  json_object_get_string(cert, "issued_at"),
        json_object_get_string(cert, "not_after"),      state,
        output_scalar(json_object_find(cert, "bound")),
    };
    return table_add_row(rows->table, cells);
}

/* GET /v1/certs?limit=1000[&udid=U] */
static int certs_list(struct ctl *ctl, const char *udid)
{
    static const char *const headers[] = {"SERIAL",    "UDID",  "DEVICE SERIAL", "ISSUED",
                                          "NOT AFTER", "STATE", "BOUND"};
    struct certs_rows rows = {0};
    struct json_doc *doc = NULL;
    char *udid_esc = NULL;
    char *path = NULL;
    int rc;

    if (udid != NULL && (udid_esc = client_escape(ctl->client, udid)) == NULL)
        return api_fail_nomem();
    path = api_str_join("/v1/certs?limit=" CERTS_LIMIT_TEXT, udid_esc ? "&udid=" : "",
                        udid_esc ? udid_esc : "", (const char *)NULL);
    if (path == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *list = json_doc_root(doc);
    if (json_value_kind(list) != JSON_KIND_ARRAY) {
        rc = api_unexpected_shape(ctl, path, "a JSON array of certificates");
        goto out;
    }
    size_t count = json_array_length(list);
    /* No certificate, and no such device either: the answer every command gives. */
    if (count == 0 && udid != NULL && api_device_unknown(ctl, udid)) {
        rc = api_unknown_device(udid);
        goto out;
    }
    if (ctl->json) {
        rc = api_print_json(list);
    } else if (count == 0) {
        if (udid != NULL) {
            char *safe = output_sanitize(udid);
            fprintf(stderr, "no identity certificates for %s\n", safe != NULL ? safe : "?");
            free(safe);
        } else {
            fprintf(stderr, "no identity certificates\n");
        }
    } else {
        certs_now(rows.now, sizeof(rows.now));
        if ((rows.table = table_new(sizeof(headers) / sizeof(*headers), headers)) == NULL) {
            rc = api_fail_nomem();
            goto out;
        }
        for (size_t i = 0; i < count; i++) {
            if (!certs_add_row(&rows, json_array_at(list, i))) {
                rc = api_fail_nomem();
                goto out;
            }
        }
        table_print(rows.table, stdout);
    }
    if (count >= CERTS_LIMIT)
        fprintf(stderr, "vouchctl: only the newest %d certificates are shown\n", CERTS_LIMIT);
out:
    table_free(rows.table);
    json_doc_free(doc);
    free(path);
    free(udid_esc);
    return rc;
}

/* SERIAL as given, without the colons openssl puts between bytes, into out (at most
 * CERT_SERIAL_MAX hex digits); false when it is not a serial. */
static bool cert_serial_normalize(const char *given, char *out, size_t size)
{
    size_t n = 0;

    for (const char *p = given; *p != '\0'; p++) {
        if (*p == ':')
            continue;
        if (strchr("0123456789abcdefABCDEF", *p) == NULL || n + 1 >= size || n >= CERT_SERIAL_MAX)
            return false;
        out[n++] = *p;
    }
    out[n] = '\0';
    return n > 0;
}

/* Prints a certificate object as the answer of a revocation. */
static void certs_print_revoked(const struct json_value *cert)
{
    const char *fields[][2] = {
        {"serial", json_object_get_string(cert, "serial")},
        {"udid", json_object_get_string(cert, "udid")},
        {"serial_number", json_object_get_string(cert, "serial_number")},
        {"revoked_at", json_object_get_string(cert, "revoked_at")},
        {"revoked_reason", json_object_get_string(cert, "revoked_reason")},
        {"not_after", json_object_get_string(cert, "not_after")},
        {"bound", output_scalar(json_object_find(cert, "bound"))},
    };
    char now[32], state[128];

    certs_now(now, sizeof(now));
    cert_state(cert, now, state, sizeof(state));
    char *serial = output_sanitize(fields[0][1] != NULL ? fields[0][1] : "?");
    printf("certificate %s: %s\n", serial != NULL ? serial : "?", state);
    free(serial);
    for (size_t i = 1; i < sizeof(fields) / sizeof(*fields); i++) {
        char *safe = output_sanitize(fields[i][1] != NULL ? fields[i][1] : "-");
        printf("  %-15s %s\n", fields[i][0], safe != NULL ? safe : "?");
        free(safe);
    }
}

/* POST /v1/certs/{serial}/revoke [{"reason": "..."}] */
static int certs_revoke(struct ctl *ctl)
{
    char serial[CERT_SERIAL_MAX + 1];
    char path[CERT_SERIAL_MAX + 32];
    struct json_writer *w = NULL;
    struct json_doc *doc = NULL;
    const char *body = "";
    size_t body_len = 0;
    int rc;

    if (ctl->nargs < 2)
        return ctl_usage_error("certs", "certs revoke needs a certificate SERIAL");
    if (!cert_serial_normalize(ctl->args[1], serial, sizeof(serial)))
        return ctl_usage_error("certs",
                               "'%s' is not a certificate serial (1 to %d hex digits, as "
                               "'vouchctl certs' lists them)",
                               ctl->args[1], CERT_SERIAL_MAX);
    if (ctl->reason != NULL && (ctl->reason[0] == '\0' || strlen(ctl->reason) > REVOKE_REASON_MAX))
        return ctl_usage_error("certs", "--reason must be 1 to %d bytes", REVOKE_REASON_MAX);
    if (ctl->reason != NULL) {
        if ((w = json_writer_new(1024, 0)) == NULL)
            return api_fail_nomem();
        if (!json_write_begin_object(w) || !json_write_key(w, "reason") ||
            !json_write_string(w, ctl->reason) || !json_write_end_object(w) ||
            !json_writer_finish(w, &body, &body_len)) {
            /* Not valid UTF-8, most likely: the server would refuse it too. */
            rc =
                ctl_usage_error("certs", "--reason: %s", json_write_strerror(json_writer_error(w)));
            goto out;
        }
    }
    snprintf(path, sizeof(path), "/v1/certs/%s/revoke", serial);
    rc = api_call(ctl, "POST", path, body, body_len, body_len > 0 ? "application/json" : NULL, 0,
                  &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *cert = json_doc_root(doc);
    if (json_value_kind(cert) != JSON_KIND_OBJECT) {
        rc = api_unexpected_shape(ctl, path, "a certificate object");
        goto out;
    }
    if (ctl->json)
        rc = api_print_json(cert);
    else
        certs_print_revoked(cert);
    const struct json_value *revoked_at = json_object_find(cert, "revoked_at");
    if (revoked_at == NULL || json_value_is_null(revoked_at)) {
        fprintf(stderr, "vouchctl: the server answered, but the certificate is not revoked\n");
        rc = CTL_EXIT_FAILURE;
    }
out:
    json_doc_free(doc);
    json_writer_free(w);
    return rc;
}

int cmd_certs(struct ctl *ctl)
{
    bool revoke = ctl->nargs > 0 && strcmp(ctl->args[0], "revoke") == 0;

    if (revoke) /* at most 2 arguments: vouchctl.c checked */
        return certs_revoke(ctl);
    if (ctl->nargs > 1)
        return ctl_usage_error("certs", "unexpected argument '%s' (to revoke: certs revoke SERIAL)",
                               ctl->args[1]);
    if (ctl->reason != NULL)
        return ctl_usage_error("certs", "--reason goes with certs revoke");
    return certs_list(ctl, ctl->nargs > 0 ? ctl->args[0] : NULL);
}
