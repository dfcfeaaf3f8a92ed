/* api: see api.h. */
#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "json.h"
#include "output.h"

/* Responses are trusted no more than any other input. */
static const struct json_limits response_limits = {
    .max_bytes = CLIENT_MAX_RESPONSE,
    .max_depth = 64,
    .max_nodes = 4 * 1024 * 1024,
};

char *api_str_join(const char *first, ...)
{
    va_list ap;
    size_t total = 0;

    va_start(ap, first);
    for (const char *s = first; s != NULL; s = va_arg(ap, const char *)) {
        size_t n = strlen(s);
        if (n > SIZE_MAX - total - 1) {
            va_end(ap);
            return NULL;
        }
        total += n;
    }
    va_end(ap);

    char *out = malloc(total + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    va_start(ap, first);
    for (const char *s = first; s != NULL; s = va_arg(ap, const char *)) {
        size_t n = strlen(s);
        memcpy(out + o, s, n);
        o += n;
    }
    va_end(ap);
    out[o] = '\0';
    return out;
}

int api_fail_nomem(void)
{
    fprintf(stderr, "vouchctl: out of memory\n");
    return CTL_EXIT_FAILURE;
}

static const char *http_reason(long status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

void api_report_http_error(const struct ctl *ctl, const char *method, const char *path,
                           const struct client_response *resp)
{
    const char *reason = http_reason(resp->status);
    struct json_doc *doc = NULL;
    const char *message = NULL;

    if (json_parse(resp->body, resp->len, &response_limits, &doc, NULL) == JSON_OK)
        message = json_object_get_string(json_doc_root(doc), "error");
    char *safe = message != NULL ? output_sanitize(message) : NULL;
    char *text_reason = NULL;
    /* Not every refusal is {"error": ...}: /mdm/enroll, for one, says why in plain text. The
     * first line of a short text body is the server's reason, better than a bare status. */
    if (message == NULL && doc == NULL && resp->len > 0 && resp->len <= 2048 &&
        memchr(resp->body, '\0', resp->len) == NULL && resp->body[0] != '<') {
        size_t n = strcspn(resp->body, "\r\n");
        text_reason = strndup(resp->body, n);
        safe = text_reason != NULL ? output_sanitize(text_reason) : NULL;
    }
    free(text_reason);
    if (safe != NULL && safe[0] != '\0')
        fprintf(stderr, "vouchctl: %s (HTTP %ld%s%s)\n", safe, resp->status, reason[0] ? " " : "",
                reason);
    else
        fprintf(stderr, "vouchctl: %s %s%s: HTTP %ld%s%s\n", method, client_base_url(ctl->client),
                path, resp->status, reason[0] ? " " : "", reason);
    free(safe);
    json_doc_free(doc);

    if (resp->status == 401) {
        if (ctl->have_token)
            fprintf(stderr, "vouchctl: the server refused the admin token\n");
        else
            fprintf(stderr, "vouchctl: no admin token: pass --token or set VOUCH_ADMIN_TOKEN\n");
    }
}

int api_call(struct ctl *ctl, const char *method, const char *path, const char *body,
             size_t body_len, const char *content_type, long also_ok, struct json_doc **doc,
             long *status)
{
    struct client_response resp;
    struct json_parse_error perr;

    *doc = NULL;
    if (!client_request(ctl->client, method, path, body, body_len, content_type, &resp)) {
        fprintf(stderr, "vouchctl: %s\n", client_error(ctl->client));
        return CTL_EXIT_FAILURE;
    }
    if (status != NULL)
        *status = resp.status;
    if ((resp.status < 200 || resp.status > 299) && (also_ok == 0 || resp.status != also_ok)) {
        api_report_http_error(ctl, method, path, &resp);
        client_response_free(&resp);
        return CTL_EXIT_FAILURE;
    }
    enum json_error e = json_parse(resp.body, resp.len, &response_limits, doc, &perr);
    if (e != JSON_OK) {
        if (resp.status == also_ok) {
            /* Not the expected shape: show it as the error it is. */
            api_report_http_error(ctl, method, path, &resp);
        } else {
            fprintf(stderr,
                    "vouchctl: %s %s%s: the server's answer is not valid JSON: %s "
                    "at byte %zu\n",
                    method, client_base_url(ctl->client), path, perr.message, perr.offset);
        }
        client_response_free(&resp);
        return CTL_EXIT_FAILURE;
    }
    client_response_free(&resp);
    return CTL_EXIT_OK;
}

int api_unexpected_shape(struct ctl *ctl, const char *path, const char *expected)
{
    fprintf(stderr, "vouchctl: unexpected answer from %s%s: expected %s\n",
            client_base_url(ctl->client), path, expected);
    return CTL_EXIT_FAILURE;
}

int api_print_json(const struct json_value *v)
{
    return output_json(v, stdout) ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
}

int api_print_table(const char *const *headers, size_t ncols, const struct json_value *list,
                    api_row_fn *row)
{
    struct table *table = table_new(ncols, headers);

    if (table == NULL)
        return api_fail_nomem();
    for (size_t i = 0; i < json_array_length(list); i++) {
        if (!row(table, json_array_at(list, i))) {
            table_free(table);
            return api_fail_nomem();
        }
    }
    table_print(table, stdout);
    table_free(table);
    return CTL_EXIT_OK;
}

char *api_udid_path(struct ctl *ctl, const char *udid, const char *suffix)
{
    char *esc = client_escape(ctl->client, udid);
    if (esc == NULL)
        return NULL;
    char *path = api_str_join("/v1/devices/", esc, suffix, (const char *)NULL);
    free(esc);
    return path;
}

int api_unknown_device(const char *udid)
{
    char *safe = output_sanitize(udid);
    fprintf(stderr, "vouchctl: unknown device '%s'\n", safe != NULL ? safe : "?");
    free(safe);
    return CTL_EXIT_FAILURE;
}

bool api_device_unknown(struct ctl *ctl, const char *udid)
{
    char *path = api_udid_path(ctl, udid, "");
    struct client_response resp;
    bool unknown = false;

    if (path == NULL)
        return false;
    if (client_request(ctl->client, "GET", path, NULL, 0, NULL, &resp)) {
        unknown = resp.status == 404;
        client_response_free(&resp);
    }
    free(path);
    return unknown;
}

int api_device_call(struct ctl *ctl, const char *method, const char *udid, const char *suffix,
                    const char *body, size_t body_len, struct json_doc **doc)
{
    char *path = api_udid_path(ctl, udid, suffix);
    long status = 0;
    if (path == NULL)
        return api_fail_nomem();
    int rc = api_call(ctl, method, path, body, body_len, NULL, 404, doc, &status);
    if (rc == CTL_EXIT_OK && status == 404) {
        const char *error = json_object_get_string(json_doc_root(*doc), "error");
        if (error != NULL && strcmp(error, "unknown device") == 0) {
            rc = api_unknown_device(udid);
        } else {
            char *safe = output_sanitize(error != NULL ? error : "not found");
            fprintf(stderr, "vouchctl: %s (HTTP 404 Not Found)\n", safe != NULL ? safe : "?");
            free(safe);
            rc = CTL_EXIT_FAILURE;
        }
        json_doc_free(*doc);
        *doc = NULL;
    }
    free(path);
    return rc;
}

int ctl_get_device_json(struct ctl *ctl, const char *udid, const char *suffix,
                        struct json_doc **doc)
{
    return api_device_call(ctl, "GET", udid, suffix, NULL, 0, doc);
}

int api_device_array_get(struct ctl *ctl, const char *suffix, const char *what,
                         struct json_doc **doc, const struct json_value **list)
{
    char *path = api_udid_path(ctl, ctl->args[0], suffix);
    *list = NULL;
    if (path == NULL)
        return api_fail_nomem();
    int rc = api_device_call(ctl, "GET", ctl->args[0], suffix, NULL, 0, doc);
    const struct json_value *array = rc == CTL_EXIT_OK ? json_doc_root(*doc) : NULL;
    if (rc != CTL_EXIT_OK) {
        /* reported by api_call */
    } else if (json_value_kind(array) != JSON_KIND_ARRAY) {
        char expected[64];
        snprintf(expected, sizeof(expected), "a JSON array of %s", what);
        rc = api_unexpected_shape(ctl, path, expected);
    } else if (ctl->json) {
        rc = api_print_json(array);
    } else if (json_array_length(array) == 0) {
        fprintf(stderr, "no %s for this device\n", what);
    } else {
        *list = array;
    }
    free(path);
    return rc;
}

bool ctl_read_file(const char *path, size_t max, char **data, size_t *len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (f == NULL) {
        fprintf(stderr, "vouchctl: cannot open %s: %s\n", path, strerror(errno));
        return false;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                fprintf(stderr, "vouchctl: %s is larger than %zu bytes\n", path, max);
                goto fail;
            }
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, ncap + 1);
            if (nb == NULL) {
                fprintf(stderr, "vouchctl: out of memory\n");
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                fprintf(stderr, "vouchctl: cannot read %s: %s\n", path, strerror(errno));
                goto fail;
            }
            break;
        }
    }
    if (n > max) {
        fprintf(stderr, "vouchctl: %s is larger than %zu bytes\n", path, max);
        goto fail;
    }
    if (!is_stdin && fclose(f) != 0) {
        fprintf(stderr, "vouchctl: cannot read %s: %s\n", path, strerror(errno));
        free(buf);
        return false;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return true;
fail:
    if (!is_stdin && fclose(f) != 0)
        fprintf(stderr, "vouchctl: cannot close %s: %s\n", path, strerror(errno));
    free(buf);
    return false;
}
