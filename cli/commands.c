/* vouchctl's subcommands: each sends admin API requests and prints what came back. */
#include "vouchctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plist/plist.h>

#include "client.h"
#include "json.h"
#include "output.h"

/* Devices asked for per page: the admin API's maximum. */
#define DEVICES_PAGE 1000
#define DEVICES_PAGE_TEXT "1000"
/* A command plist larger than this is surely a mistake (vouchd accepts 1 MiB by default). */
#define ENQUEUE_MAX_FILE ((size_t)16 * 1024 * 1024)

/* Responses are trusted no more than any other input. */
static const struct json_limits response_limits = {
    .max_bytes = CLIENT_MAX_RESPONSE,
    .max_depth = 64,
    .max_nodes = 4 * 1024 * 1024,
};

/* ---- Small helpers ---- */

/* The concatenation of the NULL-terminated list of strings, or NULL when out of memory. */
static char *str_join(const char *first, ...)
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

static int fail_nomem(void)
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

/* Explains an HTTP error status: the server's {"error": "..."} message when it sent one. */
static void report_http_error(const struct ctl *ctl, const char *method, const char *path,
                              const struct client_response *resp)
{
    const char *reason = http_reason(resp->status);
    struct json_doc *doc = NULL;
    const char *message = NULL;

    if (json_parse(resp->body, resp->len, &response_limits, &doc, NULL) == JSON_OK)
        message = json_object_get_string(json_doc_root(doc), "error");
    char *safe = message != NULL ? output_sanitize(message) : NULL;
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

/*
 * Sends one request and parses the JSON answer into *doc. A 2xx status is success, and so is
 * also_ok when not 0 (enqueue's 404 carries per-device results); *status tells which. Anything
 * else is reported on stderr and gives CTL_EXIT_FAILURE.
 */
static int api_call(struct ctl *ctl, const char *method, const char *path, const char *body,
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
        report_http_error(ctl, method, path, &resp);
        client_response_free(&resp);
        return CTL_EXIT_FAILURE;
    }
    enum json_error e = json_parse(resp.body, resp.len, &response_limits, doc, &perr);
    if (e != JSON_OK) {
        if (resp.status == also_ok) {
            /* Not the expected shape: show it as the error it is. */
            report_http_error(ctl, method, path, &resp);
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

static int unexpected_shape(struct ctl *ctl, const char *path, const char *expected)
{
    fprintf(stderr, "vouchctl: unexpected answer from %s%s: expected %s\n",
            client_base_url(ctl->client), path, expected);
    return CTL_EXIT_FAILURE;
}

/* Prints a parsed answer with --json. */
static int print_json(const struct json_value *v)
{
    return output_json(v, stdout) ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
}

static char *udid_path(struct ctl *ctl, const char *udid, const char *suffix)
{
    char *esc = client_escape(ctl->client, udid);
    if (esc == NULL)
        return NULL;
    char *path = str_join("/v1/devices/", esc, suffix, (const char *)NULL);
    free(esc);
    return path;
}

/* ---- devices ---- */

static const char *const attestation_statuses[] = {"verified", "failed", "pending", "none",
                                                   "unsupported"};

/* Adds a device object's row to the devices table. */
static bool devices_add_row(struct table *t, const struct json_value *dev)
{
    const char *model = json_object_get_string(dev, "model");
    const char *product = json_object_get_string(dev, "product_name");
    const char *os = json_object_get_string(dev, "os_version");
    const char *build = json_object_get_string(dev, "build_version");
    const struct json_value *att = json_object_get(dev, "attestation");
    const char *att_status = json_object_get_string(att, "status");
    const char *att_reason = json_object_get_string(att, "reason");
    char model_cell[256], os_cell[128], att_cell[128];
    int m;

    if (model != NULL && product != NULL && strcmp(model, product) != 0)
        m = snprintf(model_cell, sizeof(model_cell), "%s/%s", model, product);
    else if (model != NULL || product != NULL)
        m = snprintf(model_cell, sizeof(model_cell), "%s", model != NULL ? model : product);
    else
        m = snprintf(model_cell, sizeof(model_cell), "%s", "");
    if (m < 0)
        model_cell[0] = '\0';
    if (os != NULL && build != NULL)
        m = snprintf(os_cell, sizeof(os_cell), "%s (%s)", os, build);
    else
        m = snprintf(os_cell, sizeof(os_cell), "%s", os != NULL ? os : "");
    if (m < 0)
        os_cell[0] = '\0';
    if (att_status != NULL && att_reason != NULL)
        m = snprintf(att_cell, sizeof(att_cell), "%s (%s)", att_status, att_reason);
    else
        m = snprintf(att_cell, sizeof(att_cell), "%s", att_status != NULL ? att_status : "");
    if (m < 0)
        att_cell[0] = '\0';

    const char *cells[] = {
        json_object_get_string(dev, "udid"),
        json_object_get_string(dev, "serial_number"),
        model_cell,
        os_cell,
        output_scalar(json_object_get(dev, "enrolled")),
        json_object_get_string(dev, "last_seen_at"),
        att_cell,
    };
    return table_add_row(t, cells);
}

int cmd_devices(struct ctl *ctl)
{
    static const char *const headers[] = {"UDID",     "SERIAL",    "MODEL/PRODUCT", "OS",
                                          "ENROLLED", "LAST SEEN", "ATTESTATION"};
    struct json_doc **docs = NULL; /* every page, kept alive for the borrowed values */
    size_t ndocs = 0;
    const struct json_value **devices = NULL;
    size_t ndevices = 0, cap_devices = 0;
    struct table *table = NULL;
    char *filter_esc = NULL;
    char *after_esc = NULL;
    int rc = CTL_EXIT_FAILURE;

    if (ctl->attestation != NULL) {
        bool known = false;
        for (size_t i = 0; i < sizeof(attestation_statuses) / sizeof(*attestation_statuses); i++)
            known = known || strcmp(ctl->attestation, attestation_statuses[i]) == 0;
        if (!known)
            return ctl_usage_error("devices",
                                   "unknown attestation status '%s' (use verified, failed, "
                                   "pending, none or unsupported)",
                                   ctl->attestation);
        filter_esc = client_escape(ctl->client, ctl->attestation);
        if (filter_esc == NULL)
            return fail_nomem();
    }
    if (!ctl->json) {
        table = table_new(sizeof(headers) / sizeof(*headers), headers);
        if (table == NULL) {
            rc = fail_nomem();
            goto out;
        }
    }

    const char *after = NULL; /* the last udid of the previous page */
    for (;;) {
        char *path = str_join("/v1/devices?limit=" DEVICES_PAGE_TEXT, after_esc ? "&after=" : "",
                              after_esc ? after_esc : "", filter_esc ? "&attestation=" : "",
                              filter_esc ? filter_esc : "", (const char *)NULL);
        if (path == NULL) {
            rc = fail_nomem();
            goto out;
        }
        struct json_doc **nd = realloc(docs, (ndocs + 1) * sizeof(*docs));
        if (nd == NULL) {
            free(path);
            rc = fail_nomem();
            goto out;
        }
        docs = nd;
        rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &docs[ndocs], NULL);
        if (rc != CTL_EXIT_OK) {
            free(path);
            goto out;
        }
        const struct json_value *page = json_doc_root(docs[ndocs++]);
        if (json_value_type(page) != JSON_ARRAY) {
            rc = unexpected_shape(ctl, path, "a JSON array of devices");
            free(path);
            goto out;
        }
        size_t count = json_array_length(page);
        for (size_t i = 0; i < count; i++) {
            const struct json_value *dev = json_array_get(page, i);
            if (json_value_type(dev) != JSON_OBJECT ||
                json_object_get_string(dev, "udid") == NULL) {
                rc = unexpected_shape(ctl, path, "device objects with a udid");
                free(path);
                goto out;
            }
            /* Filter here too, in case the server ignores the query parameter. */
            const char *status =
                json_object_get_string(json_object_get(dev, "attestation"), "status");
            if (ctl->attestation != NULL &&
                (status == NULL || strcmp(status, ctl->attestation) != 0))
                continue;
            if (ctl->json) {
                if (ndevices == cap_devices) {
                    size_t ncap = cap_devices ? cap_devices * 2 : 256;
                    const struct json_value **nv = realloc(devices, ncap * sizeof(*devices));
                    if (nv == NULL) {
                        free(path);
                        rc = fail_nomem();
                        goto out;
                    }
                    devices = nv;
                    cap_devices = ncap;
                }
                devices[ndevices++] = dev;
            } else if (!devices_add_row(table, dev)) {
                free(path);
                rc = fail_nomem();
                goto out;
            }
        }
        if (count < DEVICES_PAGE) {
            free(path);
            break;
        }
        const char *last = json_object_get_string(json_array_get(page, count - 1), "udid");
        if (after != NULL && strcmp(last, after) <= 0) {
            fprintf(stderr, "vouchctl: the server's device pages do not advance (after=%s)\n",
                    after);
            free(path);
            rc = CTL_EXIT_FAILURE;
            goto out;
        }
        free(path);
        after = last;
        free(after_esc);
        after_esc = client_escape(ctl->client, after);
        if (after_esc == NULL) {
            rc = fail_nomem();
            goto out;
        }
    }

    rc = CTL_EXIT_OK;
    if (ctl->json) {
        if (!output_json_array(devices, ndevices, stdout))
            rc = CTL_EXIT_FAILURE;
    } else if (table_rows(table) == 0) {
        if (ctl->attestation != NULL)
            fprintf(stderr, "no devices with attestation status %s\n", ctl->attestation);
        else
            fprintf(stderr, "no devices\n");
    } else {
        table_print(table, stdout);
    }
out:
    table_free(table);
    free(devices);
    for (size_t i = 0; i < ndocs; i++)
        json_doc_free(docs[i]);
    free(docs);
    free(filter_esc);
    free(after_esc);
    return rc;
}

/* ---- device ---- */

int cmd_device(struct ctl *ctl)
{
    struct json_doc *doc = NULL;
    char *path = udid_path(ctl, ctl->args[0], "");
    int rc;

    if (path == NULL)
        return fail_nomem();
    rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *dev = json_doc_root(doc);
    if (json_value_type(dev) != JSON_OBJECT) {
        rc = unexpected_shape(ctl, path, "a device object");
        goto out;
    }
    if (ctl->json)
        rc = print_json(dev);
    else
        output_listing(dev, stdout);
out:
    json_doc_free(doc);
    free(path);
    return rc;
}

/* ---- commands ---- */

int cmd_commands(struct ctl *ctl)
{
    static const char *const headers[] = {"COMMAND UUID", "REQUEST TYPE", "STATUS", "QUEUED AT",
                                          "RESULT AT"};
    struct json_doc *doc = NULL;
    struct table *table = NULL;
    char *path = udid_path(ctl, ctl->args[0], "/commands");
    int rc;

    if (path == NULL)
        return fail_nomem();
    rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *list = json_doc_root(doc);
    if (json_value_type(list) != JSON_ARRAY) {
        rc = unexpected_shape(ctl, path, "a JSON array of commands");
        goto out;
    }
    if (ctl->json) {
        rc = print_json(list);
        goto out;
    }
    if (json_array_length(list) == 0) {
        fprintf(stderr, "no commands for this device\n");
        goto out;
    }
    table = table_new(sizeof(headers) / sizeof(*headers), headers);
    if (table == NULL) {
        rc = fail_nomem();
        goto out;
    }
    for (size_t i = 0; i < json_array_length(list); i++) {
        const struct json_value *cmd = json_array_get(list, i);
        const char *cells[] = {
            json_object_get_string(cmd, "command_uuid"),
            json_object_get_string(cmd, "request_type"),
            json_object_get_string(cmd, "status"),
            json_object_get_string(cmd, "queued_at"),
            json_object_get_string(cmd, "result_at"),
        };
        if (!table_add_row(table, cells)) {
            rc = fail_nomem();
            goto out;
        }
    }
    table_print(table, stdout);
out:
    table_free(table);
    json_doc_free(doc);
    free(path);
    return rc;
}

/* ---- enqueue ---- */

/* Reads all of path ("-": standard input), at most max bytes, into *data (NUL-terminated). */
static bool read_file(const char *path, size_t max, char **data, size_t *len)
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

/*
 * Checks that data is a command property list: a dictionary with a Command dictionary holding a
 * RequestType string (and, if there is one, a string CommandUUID). A binary plist is converted to
 * XML, the form the admin API takes; *xml is then set and the caller frees it with
 * plist_to_xml_free(). Prints the problem and returns false otherwise.
 */
static bool check_command_plist(const char *file, const char *data, size_t len, char **xml,
                                uint32_t *xml_len)
{
    plist_t root = NULL;
    const char *problem = NULL;

    *xml = NULL;
    if (len == 0 || len > UINT32_MAX) {
        fprintf(stderr, "vouchctl: %s: %s\n", file, len == 0 ? "empty file" : "too large");
        return false;
    }
    plist_from_memory(data, (uint32_t)len, &root);
    if (root == NULL) {
        problem = "not a property list";
    } else if (!PLIST_IS_DICT(root)) {
        problem = "not a dictionary at the top level";
    } else {
        plist_t cmd = plist_dict_get_item(root, "Command");
        plist_t type = PLIST_IS_DICT(cmd) ? plist_dict_get_item(cmd, "RequestType") : NULL;
        plist_t uuid = plist_dict_get_item(root, "CommandUUID");
        const char *type_str = PLIST_IS_STRING(type) ? plist_get_string_ptr(type, NULL) : NULL;
        if (!PLIST_IS_DICT(cmd))
            problem = "no Command dictionary";
        else if (type_str == NULL || type_str[0] == '\0')
            problem = "no RequestType string in the Command dictionary";
        else if (uuid != NULL && !PLIST_IS_STRING(uuid))
            problem = "CommandUUID is not a string";
    }
    if (problem == NULL && plist_is_binary(data, (uint32_t)len)) {
        plist_to_xml(root, xml, xml_len);
        if (*xml == NULL)
            problem = "cannot convert the binary property list to XML";
    }
    plist_free(root);
    if (problem != NULL) {
        fprintf(stderr, "vouchctl: %s: %s\n", file, problem);
        return false;
    }
    return true;
}

/* Prints the per-device results; true when every device was queued. */
static bool enqueue_print(struct ctl *ctl, const struct json_value *answer)
{
    static const char *const headers[] = {"UDID", "RESULT"};
    const struct json_value *status = json_object_get(answer, "status");
    struct table *table = NULL;
    size_t failed = 0;

    if (!ctl->json) {
        table = table_new(2, headers);
        if (table == NULL) {
            fail_nomem();
            return false;
        }
    }
    for (size_t i = 0; i < ctl->nargs; i++) {
        const struct json_value *st = json_object_get(status, ctl->args[i]);
        bool queued = false;
        char result[512];
        int m;
        if (!json_get_bool(json_object_get(st, "queued"), &queued)) {
            queued = false;
            m = snprintf(result, sizeof(result), "unknown: no result from the server");
        } else if (queued) {
            m = snprintf(result, sizeof(result), "queued");
        } else {
            const char *why = json_object_get_string(st, "error");
            m = snprintf(result, sizeof(result), "not queued: %s", why ? why : "no reason given");
        }
        if (m < 0)
            result[0] = '\0';
        if (!queued)
            failed++;
        if (table != NULL) {
            const char *cells[] = {ctl->args[i], result};
            if (!table_add_row(table, cells)) {
                fail_nomem();
                table_free(table);
                return false;
            }
        }
    }
    if (table != NULL) {
        const char *uuid = json_object_get_string(answer, "command_uuid");
        const char *type = json_object_get_string(answer, "request_type");
        char *safe_uuid = output_sanitize(uuid ? uuid : "-");
        char *safe_type = output_sanitize(type ? type : "-");
        printf("command_uuid: %s\nrequest_type: %s\n\n", safe_uuid ? safe_uuid : "?",
               safe_type ? safe_type : "?");
        free(safe_uuid);
        free(safe_type);
        table_print(table, stdout);
        table_free(table);
    }
    if (failed > 0)
        fprintf(stderr, "vouchctl: %zu of %zu device%s not queued\n", failed, ctl->nargs,
                ctl->nargs == 1 ? "" : "s");
    return failed == 0;
}

int cmd_enqueue(struct ctl *ctl)
{
    char *data = NULL, *xml = NULL, *path = NULL;
    size_t len = 0;
    uint32_t xml_len = 0;
    struct json_doc *doc = NULL;
    int rc = CTL_EXIT_FAILURE;

    if (ctl->file == NULL)
        return ctl_usage_error("enqueue", "missing --file CMD.plist");
    for (size_t i = 0; i < ctl->nargs; i++) {
        if (ctl->args[i][0] == '\0' || strchr(ctl->args[i], ',') != NULL)
            return ctl_usage_error("enqueue", "invalid UDID '%s'", ctl->args[i]);
    }
    if (!read_file(ctl->file, ENQUEUE_MAX_FILE, &data, &len))
        return CTL_EXIT_FAILURE;
    if (!check_command_plist(ctl->file, data, len, &xml, &xml_len))
        goto out;

    /* PUT /v1/enqueue/udid1,udid2,... with every UDID escaped on its own. */
    path = str_join("/v1/enqueue/", (const char *)NULL);
    for (size_t i = 0; path != NULL && i < ctl->nargs; i++) {
        char *esc = client_escape(ctl->client, ctl->args[i]);
        char *longer = esc ? str_join(path, i > 0 ? "," : "", esc, (const char *)NULL) : NULL;
        free(esc);
        free(path);
        path = longer;
    }
    if (path == NULL) {
        rc = fail_nomem();
        goto out;
    }
    long status = 0;
    rc = api_call(ctl, "PUT", path, xml ? xml : data, xml ? xml_len : len, "application/xml", 404,
                  &doc, &status);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *answer = json_doc_root(doc);
    if (json_value_type(json_object_get(answer, "status")) != JSON_OBJECT) {
        if (status == 404) {
            /* A plain {"error": ...} 404, without per-device results. */
            const char *message = json_object_get_string(answer, "error");
            char *safe = output_sanitize(message != NULL ? message : "no such device");
            fprintf(stderr, "vouchctl: %s (HTTP 404 Not Found)\n", safe != NULL ? safe : "?");
            free(safe);
            rc = CTL_EXIT_FAILURE;
        } else {
            rc = unexpected_shape(ctl, path, "an object with a per-device status");
        }
        goto out;
    }
    if (ctl->json && !output_json(answer, stdout)) {
        rc = CTL_EXIT_FAILURE;
        goto out;
    }
    rc = enqueue_print(ctl, answer) ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
out:
    json_doc_free(doc);
    if (xml != NULL)
        plist_to_xml_free(xml);
    free(data);
    free(path);
    return rc;
}
