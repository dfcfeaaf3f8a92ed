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

int ctl_get_device_json(struct ctl *ctl, const char *udid, const char *suffix,
                        struct json_doc **doc)
{
    char *path = udid_path(ctl, udid, suffix);
    if (path == NULL)
        return fail_nomem();
    int rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, doc, NULL);
    free(path);
    return rc;
}

/* ---- devices ---- */

/* The verdicts, and "pending": devices with a request out, whatever their last verdict. */
static const char *const attestation_statuses[] = {"verified", "failed", "expired", "none",
                                                   "unsupported", "pending"};

/* Whether a device object passes the filter (see attestation_statuses). */
static bool attestation_matches(const struct json_value *att, const char *filter)
{
    if (strcmp(filter, "pending") == 0) {
        const struct json_value *request = json_object_get(att, "request");
        return request != NULL && json_value_type(request) == JSON_OBJECT;
    }
    const char *status = json_object_get_string(att, "status");
    return status != NULL && strcmp(status, filter) == 0;
}

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
    char model_cell[256], os_cell[128], att_cell[128], enrolled_cell[64];
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
    /* A new identity certificate for the UDID started another enrollment generation. */
    const char *enrolled = output_scalar(json_object_get(dev, "enrolled"));
    const struct json_value *gen = json_object_get(dev, "generation");
    if (json_value_type(gen) == JSON_NUMBER && strcmp(output_scalar(gen), "1") != 0)
        m = snprintf(enrolled_cell, sizeof(enrolled_cell), "%s (generation %s)", enrolled,
                     output_scalar(gen));
    else
        m = snprintf(enrolled_cell, sizeof(enrolled_cell), "%s", enrolled);
    if (m < 0)
        enrolled_cell[0] = '\0';
    const struct json_value *request = json_object_get(att, "request");
    bool rechecking = request != NULL && json_value_type(request) == JSON_OBJECT;
    if (att_status != NULL && att_reason != NULL)
        m = snprintf(att_cell, sizeof(att_cell), "%s (%s)%s", att_status, att_reason,
                     rechecking ? ", request pending" : "");
    else
        m = snprintf(att_cell, sizeof(att_cell), "%s%s", att_status != NULL ? att_status : "",
                     rechecking ? ", request pending" : "");
    if (m < 0)
        att_cell[0] = '\0';

    const char *cells[] = {
        json_object_get_string(dev, "udid"),
        json_object_get_string(dev, "serial_number"),
        model_cell,
        os_cell,
        enrolled_cell,
        json_object_get_string(dev, "last_seen_at"),
        att_cell,
        json_object_get_string(att, "next_due_at"),
    };
    return table_add_row(t, cells);
}

/* Every page of a device listing, kept alive for the values borrowed from them. */
struct device_pages {
    struct json_doc **docs;
    size_t ndocs;
};

static void device_pages_free(struct device_pages *pages)
{
    for (size_t i = 0; i < pages->ndocs; i++)
        json_doc_free(pages->docs[i]);
    free(pages->docs);
    pages->docs = NULL;
    pages->ndocs = 0;
}

/* Called for each device object of a listing; false when out of memory. */
typedef bool device_visit_fn(void *arg, const struct json_value *dev);

static bool attestation_status_known(const char *status)
{
    for (size_t i = 0; i < sizeof(attestation_statuses) / sizeof(*attestation_statuses); i++) {
        if (strcmp(status, attestation_statuses[i]) == 0)
            return true;
    }
    return false;
}

/*
 * Follows GET /v1/devices?limit=1000&after=... (with &attestation=filter unless filter is NULL)
 * to the end and calls visit for each device object, ordered by UDID, in pages that stay alive
 * until device_pages_free(). The filter is applied here too, in case a server ignores it: an
 * `attest --failed` must never reach devices that did not fail. Returns an exit status.
 */
static int devices_fetch(struct ctl *ctl, const char *filter, struct device_pages *pages,
                         device_visit_fn *visit, void *arg)
{
    char *filter_esc = NULL;
    char *after_esc = NULL;
    char *path = NULL;
    const char *after = NULL; /* the last udid of the previous page */
    int rc = CTL_EXIT_FAILURE;

    if (filter != NULL && (filter_esc = client_escape(ctl->client, filter)) == NULL)
        return fail_nomem();
    for (;;) {
        free(path);
        path = str_join("/v1/devices?limit=" DEVICES_PAGE_TEXT, after_esc ? "&after=" : "",
                        after_esc ? after_esc : "", filter_esc ? "&attestation=" : "",
                        filter_esc ? filter_esc : "", (const char *)NULL);
        if (path == NULL) {
            rc = fail_nomem();
            goto out;
        }
        struct json_doc **nd = realloc(pages->docs, (pages->ndocs + 1) * sizeof(*pages->docs));
        if (nd == NULL) {
            rc = fail_nomem();
            goto out;
        }
        pages->docs = nd;
        rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &pages->docs[pages->ndocs], NULL);
        if (rc != CTL_EXIT_OK)
            goto out;
        const struct json_value *page = json_doc_root(pages->docs[pages->ndocs++]);
        if (json_value_type(page) != JSON_ARRAY) {
            rc = unexpected_shape(ctl, path, "a JSON array of devices");
            goto out;
        }
        size_t count = json_array_length(page);
        for (size_t i = 0; i < count; i++) {
            const struct json_value *dev = json_array_get(page, i);
            if (json_value_type(dev) != JSON_OBJECT ||
                json_object_get_string(dev, "udid") == NULL) {
                rc = unexpected_shape(ctl, path, "device objects with a udid");
                goto out;
            }
            if (filter != NULL && !attestation_matches(json_object_get(dev, "attestation"), filter))
                continue;
            if (!visit(arg, dev)) {
                rc = fail_nomem();
                goto out;
            }
        }
        if (count < DEVICES_PAGE)
            break;
        const char *last = json_object_get_string(json_array_get(page, count - 1), "udid");
        if (after != NULL && strcmp(last, after) <= 0) {
            char *safe = output_sanitize(after);
            fprintf(stderr, "vouchctl: the server's device pages do not advance (after=%s)\n",
                    safe != NULL ? safe : "?");
            free(safe);
            rc = CTL_EXIT_FAILURE;
            goto out;
        }
        after = last;
        free(after_esc);
        if ((after_esc = client_escape(ctl->client, after)) == NULL) {
            rc = fail_nomem();
            goto out;
        }
    }
    rc = CTL_EXIT_OK;
out:
    free(path);
    free(filter_esc);
    free(after_esc);
    return rc;
}

/* A growable list of values borrowed from their documents. */
struct value_list {
    const struct json_value **items;
    size_t n, cap;
};

static bool value_list_add(struct value_list *l, const struct json_value *item)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 256;
        const struct json_value **ni = realloc(l->items, ncap * sizeof(*ni));
        if (ni == NULL)
            return false;
        l->items = ni;
        l->cap = ncap;
    }
    l->items[l->n++] = item;
    return true;
}

static bool devices_collect(void *arg, const struct json_value *dev)
{
    return value_list_add(arg, dev);
}

static bool devices_add_row_visit(void *arg, const struct json_value *dev)
{
    return devices_add_row(arg, dev);
}

int cmd_devices(struct ctl *ctl)
{
    static const char *const headers[] = {"UDID",     "SERIAL",    "MODEL/PRODUCT", "OS",
                                          "ENROLLED", "LAST SEEN", "ATTESTATION",   "NEXT CHECK"};
    struct device_pages pages = {0};
    struct value_list devices = {0};
    struct table *table = NULL;
    int rc;

    if (ctl->attestation != NULL && !attestation_status_known(ctl->attestation))
        return ctl_usage_error("devices",
                               "unknown attestation status '%s' (use verified, failed, "
                               "expired, none, unsupported or pending)",
                               ctl->attestation);
    if (ctl->json) {
        rc = devices_fetch(ctl, ctl->attestation, &pages, devices_collect, &devices);
        if (rc == CTL_EXIT_OK && !output_json_array(devices.items, devices.n, stdout))
            rc = CTL_EXIT_FAILURE;
        goto out;
    }
    table = table_new(sizeof(headers) / sizeof(*headers), headers);
    if (table == NULL) {
        rc = fail_nomem();
        goto out;
    }
    rc = devices_fetch(ctl, ctl->attestation, &pages, devices_add_row_visit, table);
    if (rc != CTL_EXIT_OK)
        goto out;
    if (table_rows(table) == 0) {
        if (ctl->attestation != NULL)
            fprintf(stderr, "no devices with attestation status %s\n", ctl->attestation);
        else
            fprintf(stderr, "no devices\n");
    } else {
        table_print(table, stdout);
    }
out:
    table_free(table);
    free(devices.items);
    device_pages_free(&pages);
    return rc;
}

/* ---- device ---- */

int cmd_device(struct ctl *ctl)
{
    struct json_doc *doc = NULL;
    char *path = NULL;
    int rc;

    if (ctl->nargs == 2) {
        if (strcmp(ctl->args[1], "allow-reenroll") != 0)
            return ctl_usage_error("device", "unknown action '%s' (allow-reenroll)",
                                   ctl->args[1]);
        if ((path = udid_path(ctl, ctl->args[0], "/allow-reenroll")) == NULL)
            return fail_nomem();
        rc = api_call(ctl, "POST", path, "", 0, NULL, 0, &doc, NULL);
        if (rc == CTL_EXIT_OK)
            printf("%s may enroll once more with a new identity certificate\n", ctl->args[0]);
        goto out;
    }
    if ((path = udid_path(ctl, ctl->args[0], "")) == NULL)
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
        output_device(dev, stdout);
out:
    json_doc_free(doc);
    free(path);
    return rc;
}

/* ---- commands ---- */

/*
 * GET /v1/devices/{udid}/<suffix>, which answers a JSON array of `what`. With --json the array is
 * printed here; an empty one gets a note. *list is set only when there are rows for a table.
 */
static int device_array_get(struct ctl *ctl, const char *suffix, const char *what,
                            struct json_doc **doc, const struct json_value **list)
{
    char *path = udid_path(ctl, ctl->args[0], suffix);
    *list = NULL;
    if (path == NULL)
        return fail_nomem();
    int rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, doc, NULL);
    const struct json_value *array = rc == CTL_EXIT_OK ? json_doc_root(*doc) : NULL;
    if (rc != CTL_EXIT_OK) {
        /* reported by api_call */
    } else if (json_value_type(array) != JSON_ARRAY) {
        char expected[64];
        snprintf(expected, sizeof(expected), "a JSON array of %s", what);
        rc = unexpected_shape(ctl, path, expected);
    } else if (ctl->json) {
        rc = print_json(array);
    } else if (json_array_length(array) == 0) {
        fprintf(stderr, "no %s for this device\n", what);
    } else {
        *list = array;
    }
    free(path);
    return rc;
}

int cmd_commands(struct ctl *ctl)
{
    static const char *const headers[] = {"COMMAND UUID", "REQUEST TYPE", "STATUS", "QUEUED AT",
                                          "RESULT AT"};
    struct json_doc *doc = NULL;
    struct table *table = NULL;
    const struct json_value *list;
    int rc = device_array_get(ctl, "/commands", "commands", &doc, &list);
    if (rc != CTL_EXIT_OK || list == NULL)
        goto out;
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
    return rc;
}

/* ---- enqueue ---- */

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
    if (!ctl_read_file(ctl->file, ENQUEUE_MAX_FILE, &data, &len))
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

/* ---- attest ---- */

/* UDIDs per POST /v1/attest: the admin API's maximum. */
#define ATTEST_BATCH 1000
/* Largest {"udids": [...]} body built (vouchd refuses far less; the server says so). */
#define ATTEST_MAX_BODY ((size_t)64 * 1024 * 1024)

/* What happened to one device. */
enum attest_outcome {
    ATTEST_OUTCOME_QUEUED,
    ATTEST_OUTCOME_PENDING, /* a request was already out: its command is reused */
    ATTEST_OUTCOME_UNKNOWN_DEVICE,
    ATTEST_OUTCOME_ERROR, /* another error, or no result at all */
};

/* Reads one device's result object; *uuid borrows the command UUID, *text the RESULT cell. */
static enum attest_outcome attest_outcome_of(const struct json_value *result, const char **uuid,
                                             const char **text)
{
    const char *error = json_object_get_string(result, "error");
    bool queued;

    *uuid = json_object_get_string(result, "command_uuid");
    if (error != NULL) {
        *text = error;
        return strcmp(error, "unknown device") == 0 ? ATTEST_OUTCOME_UNKNOWN_DEVICE
                                                    : ATTEST_OUTCOME_ERROR;
    }
    if (json_value_type(result) != JSON_OBJECT) {
        *text = "no result from the server";
        return ATTEST_OUTCOME_ERROR;
    }
    if (!json_get_bool(json_object_get(result, "queued"), &queued) || *uuid == NULL) {
        *text = "unexpected result from the server";
        return ATTEST_OUTCOME_ERROR;
    }
    *text = queued ? "queued" : "already pending";
    return queued ? ATTEST_OUTCOME_QUEUED : ATTEST_OUTCOME_PENDING;
}

struct indexed_udid {
    const char *udid;
    size_t index;
};

static int compare_indexed_udids(const void *a, const void *b)
{
    const struct indexed_udid *x = a, *y = b;
    int c = strcmp(x->udid, y->udid);
    if (c != 0)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Drops repeated UDIDs from udids[0..*n), keeping the first of each and the order (a repeated
 * UDID would be a repeated key in the server's results object). False when out of memory.
 */
static bool udids_dedupe(const char **udids, size_t *n)
{
    struct indexed_udid *sorted = calloc(*n ? *n : 1, sizeof(*sorted));
    bool *keep = calloc(*n ? *n : 1, sizeof(*keep));
    size_t kept = 0;

    if (sorted == NULL || keep == NULL) {
        free(sorted);
        free(keep);
        return false;
    }
    for (size_t i = 0; i < *n; i++)
        sorted[i] = (struct indexed_udid){udids[i], i};
    qsort(sorted, *n, sizeof(*sorted), compare_indexed_udids);
    for (size_t i = 0; i < *n; i++)
        keep[sorted[i].index] = i == 0 || strcmp(sorted[i - 1].udid, sorted[i].udid) != 0;
    for (size_t i = 0; i < *n; i++) {
        if (keep[i])
            udids[kept++] = udids[i];
    }
    free(sorted);
    free(keep);
    *n = kept;
    return true;
}

/* One `vouchctl attest`: the devices to ask and the server's answers. */
struct attest_run {
    const char **udids; /* in the order asked; borrowed from argv or the device pages */
    size_t n;
    bool single;               /* one UDID given: POST /v1/devices/{udid}/attest */
    struct json_doc **answers; /* one per request answered; batch i covers udids[i*1000...] */
    size_t nanswers;
    size_t sent; /* udids[0..sent) were asked and answered */
};

/* The devices to ask, from the arguments or from the server's list. */
static int attest_targets(struct ctl *ctl, struct device_pages *pages, struct attest_run *run)
{
    if (ctl->nargs > 0) {
        for (size_t i = 0; i < ctl->nargs; i++) {
            if (ctl->args[i][0] == '\0')
                return ctl_usage_error("attest", "empty UDID");
        }
        run->udids = calloc(ctl->nargs, sizeof(*run->udids));
        if (run->udids == NULL)
            return fail_nomem();
        for (size_t i = 0; i < ctl->nargs; i++)
            run->udids[i] = ctl->args[i];
        run->n = ctl->nargs;
        if (!udids_dedupe(run->udids, &run->n))
            return fail_nomem();
        run->single = run->n == 1;
        return CTL_EXIT_OK;
    }
    struct value_list devices = {0};
    int rc = devices_fetch(ctl, ctl->failed ? "failed" : NULL, pages, devices_collect, &devices);
    if (rc == CTL_EXIT_OK && devices.n > 0) {
        run->udids = calloc(devices.n, sizeof(*run->udids));
        if (run->udids == NULL) {
            rc = fail_nomem();
        } else {
            for (size_t i = 0; i < devices.n; i++)
                run->udids[i] = json_object_get_string(devices.items[i], "udid");
            run->n = devices.n;
            if (!udids_dedupe(run->udids, &run->n))
                rc = fail_nomem();
        }
    }
    free(devices.items);
    return rc;
}

static int attest_send_single(struct ctl *ctl, struct attest_run *run)
{
    char *path = udid_path(ctl, run->udids[0], "/attest");
    long status = 0;
    int rc;

    if (path == NULL)
        return fail_nomem();
    run->answers = calloc(1, sizeof(*run->answers));
    if (run->answers == NULL) {
        free(path);
        return fail_nomem();
    }
    /* A 404 is the answer for an unknown device, unless it says something else. */
    rc = api_call(ctl, "POST", path, "", 0, NULL, 404, &run->answers[0], &status);
    if (rc == CTL_EXIT_OK) {
        const struct json_value *answer = json_doc_root(run->answers[0]);
        const char *error = json_object_get_string(answer, "error");
        if (status == 404 && (error == NULL || strcmp(error, "unknown device") != 0)) {
            char *safe = output_sanitize(error != NULL ? error : "not found");
            fprintf(stderr, "vouchctl: %s (HTTP 404 Not Found)\n", safe != NULL ? safe : "?");
            free(safe);
            rc = CTL_EXIT_FAILURE;
        } else if (json_value_type(answer) != JSON_OBJECT) {
            rc = unexpected_shape(ctl, path, "a JSON object");
        }
    }
    if (rc == CTL_EXIT_OK) {
        run->nanswers = 1;
        run->sent = 1;
    } else {
        json_doc_free(run->answers[0]);
        run->answers[0] = NULL;
    }
    free(path);
    return rc;
}

/* POST /v1/attest in batches; stops at the first that fails, keeping what came before. */
static int attest_send_batches(struct ctl *ctl, struct attest_run *run)
{
    static const char path[] = "/v1/attest";
    size_t nbatches = (run->n + ATTEST_BATCH - 1) / ATTEST_BATCH;
    struct json_writer *w = json_writer_new(ATTEST_MAX_BODY, 0);
    int rc = CTL_EXIT_OK;

    run->answers = calloc(nbatches ? nbatches : 1, sizeof(*run->answers));
    if (w == NULL || run->answers == NULL) {
        json_writer_free(w);
        return fail_nomem();
    }
    for (size_t b = 0; b < nbatches && rc == CTL_EXIT_OK; b++) {
        size_t first = b * ATTEST_BATCH;
        size_t count = run->n - first < ATTEST_BATCH ? run->n - first : ATTEST_BATCH;
        const char *body;
        size_t body_len;

        json_writer_reset(w);
        bool ok =
            json_write_begin_object(w) && json_write_key(w, "udids") && json_write_begin_array(w);
        for (size_t i = 0; ok && i < count; i++)
            ok = json_write_string(w, run->udids[first + i]);
        ok = ok && json_write_end_array(w) && json_write_end_object(w) &&
             json_writer_finish(w, &body, &body_len);
        if (!ok) {
            fprintf(stderr, "vouchctl: cannot build the request: %s\n",
                    json_write_strerror(json_writer_error(w)));
            rc = CTL_EXIT_FAILURE;
            break;
        }
        struct json_doc *doc = NULL;
        rc = api_call(ctl, "POST", path, body, body_len, "application/json", 0, &doc, NULL);
        if (rc != CTL_EXIT_OK)
            break;
        if (json_value_type(json_object_get(json_doc_root(doc), "results")) != JSON_OBJECT) {
            json_doc_free(doc);
            rc = unexpected_shape(ctl, path, "an object with per-device results");
            break;
        }
        run->answers[run->nanswers++] = doc;
        run->sent = first + count;
    }
    json_writer_free(w);
    if (run->sent < run->n)
        fprintf(stderr, "vouchctl: %zu of %zu devices were not asked\n", run->n - run->sent,
                run->n);
    return rc;
}

/* The server's result for udids[i] (asked), or NULL when it sent none. */
static const struct json_value *attest_result(const struct attest_run *run, size_t i)
{
    if (run->single)
        return json_doc_root(run->answers[0]);
    const struct json_value *results =
        json_object_get(json_doc_root(run->answers[i / ATTEST_BATCH]), "results");
    return json_object_get(results, run->udids[i]);
}

/* --json: the single answer as it came, or every batch's results merged into one object. */
static bool attest_print_json(const struct attest_run *run)
{
    if (run->single)
        return run->nanswers == 0 || output_json(json_doc_root(run->answers[0]), stdout);

    struct json_writer *w = json_writer_new(CLIENT_MAX_RESPONSE * 2, JSON_WRITER_PRETTY);
    const char *text;
    size_t len;
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "results") &&
              json_write_begin_object(w);
    for (size_t b = 0; ok && b < run->nanswers; b++) {
        const struct json_value *results =
            json_object_get(json_doc_root(run->answers[b]), "results");
        for (size_t i = 0; ok && i < json_object_size(results); i++) {
            const char *key;
            size_t key_len;
            const struct json_value *v;
            ok = json_object_member(results, i, &key, &key_len, &v) &&
                 json_write_keyn(w, key, key_len) && json_write_value(w, v);
        }
    }
    ok = ok && json_write_end_object(w) && json_write_end_object(w) &&
         json_writer_finish(w, &text, &len);
    if (ok) {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
    } else {
        fprintf(stderr, "vouchctl: cannot print JSON: %s\n",
                w != NULL ? json_write_strerror(json_writer_error(w)) : "out of memory");
    }
    json_writer_free(w);
    return ok;
}

/* Appends ", N what" to buf when n is not 0. */
static void summary_part(char *buf, size_t size, size_t n, const char *what)
{
    size_t used = strlen(buf);
    if (n == 0 || used >= size)
        return;
    int m = snprintf(buf + used, size - used, "%s%zu %s", used > 0 ? ", " : "", n, what);
    if (m < 0)
        buf[used] = '\0';
}

int cmd_attest(struct ctl *ctl)
{
    static const char *const headers[] = {"UDID", "COMMAND UUID", "RESULT"};
    struct attest_run run = {0};
    struct device_pages pages = {0};
    struct table *table = NULL;
    size_t counts[4] = {0};
    int rc;

    if (ctl->all && ctl->failed)
        return ctl_usage_error("attest", "--all and --failed cannot be combined");
    if ((ctl->all || ctl->failed) && ctl->nargs > 0)
        return ctl_usage_error("attest", "give UDIDs or %s, not both",
                               ctl->all ? "--all" : "--failed");
    if (!ctl->all && !ctl->failed && ctl->nargs == 0)
        return ctl_usage_error("attest", "missing UDID (or --all, or --failed)");

    rc = attest_targets(ctl, &pages, &run);
    if (rc != CTL_EXIT_OK)
        goto out;
    if (run.n == 0) {
        if (ctl->json && !attest_print_json(&run))
            rc = CTL_EXIT_FAILURE;
        fprintf(stderr, "%s\n", ctl->failed ? "no devices whose attestation failed" : "no devices");
        goto out;
    }
    rc = run.single ? attest_send_single(ctl, &run) : attest_send_batches(ctl, &run);

    if (ctl->json) {
        if (!attest_print_json(&run))
            rc = CTL_EXIT_FAILURE;
    } else if ((table = table_new(3, headers)) == NULL) {
        rc = fail_nomem();
        goto out;
    }
    for (size_t i = 0; i < run.sent; i++) {
        const char *uuid, *text;
        enum attest_outcome o = attest_outcome_of(attest_result(&run, i), &uuid, &text);
        counts[o]++;
        if (table != NULL) {
            const char *cells[] = {run.udids[i], uuid, text};
            if (!table_add_row(table, cells)) {
                rc = fail_nomem();
                goto out;
            }
        }
    }
    if (table != NULL && run.sent > 0) {
        char summary[256] = "";
        table_print(table, stdout);
        summary_part(summary, sizeof(summary), counts[ATTEST_OUTCOME_QUEUED], "queued");
        summary_part(summary, sizeof(summary), counts[ATTEST_OUTCOME_PENDING], "already pending");
        summary_part(summary, sizeof(summary), counts[ATTEST_OUTCOME_UNKNOWN_DEVICE],
                     counts[ATTEST_OUTCOME_UNKNOWN_DEVICE] == 1 ? "unknown device"
                                                                : "unknown devices");
        summary_part(summary, sizeof(summary), counts[ATTEST_OUTCOME_ERROR], "failed");
        summary_part(summary, sizeof(summary), run.n - run.sent, "not asked");
        printf("\n%zu device%s: %s\n", run.n, run.n == 1 ? "" : "s", summary);
    }
    if (rc == CTL_EXIT_OK &&
        counts[ATTEST_OUTCOME_QUEUED] + counts[ATTEST_OUTCOME_PENDING] != run.n)
        rc = CTL_EXIT_FAILURE;
out:
    table_free(table);
    for (size_t i = 0; i < run.nanswers; i++)
        json_doc_free(run.answers[i]);
    free(run.answers);
    free(run.udids);
    device_pages_free(&pages);
    return rc;
}

/* ---- attestations ---- */

int cmd_attestations(struct ctl *ctl)
{
    static const char *const headers[] = {"RECEIVED",       "STATUS",    "FRESHNESS", "REASON",
                                          "REQUEST REASON", "GENERATED", "OS"};
    struct json_doc *doc = NULL;
    struct table *table = NULL;
    const struct json_value *list;
    int rc = device_array_get(ctl, "/attestations", "attestations", &doc, &list);
    if (rc != CTL_EXIT_OK || list == NULL)
        goto out;
    table = table_new(sizeof(headers) / sizeof(*headers), headers);
    if (table == NULL) {
        rc = fail_nomem();
        goto out;
    }
    for (size_t i = 0; i < json_array_length(list); i++) {
        const struct json_value *a = json_array_get(list, i);
        const char *status = json_object_get_string(a, "status");
        const char *device_status = json_object_get_string(a, "device_status");
        char status_cell[256];
        int m;
        /* An "error" row is the device's refusal: its Status says which. */
        if (status != NULL && device_status != NULL && strcmp(status, "error") == 0)
            m = snprintf(status_cell, sizeof(status_cell), "%s (%s)", status, device_status);
        else
            m = snprintf(status_cell, sizeof(status_cell), "%s", status != NULL ? status : "");
        if (m < 0)
            status_cell[0] = '\0';
        const char *cells[] = {
            json_object_get_string(a, "received_at"),
            status_cell,
            json_object_get_string(a, "freshness"),
            json_object_get_string(a, "reason"),
            json_object_get_string(a, "request_reason"),
            json_object_get_string(a, "generated_at"),
            json_object_get_string(json_object_get(a, "properties"), "os_version"),
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
    return rc;
}

/* ---- events ---- */

static int events_retry(struct ctl *ctl)
{
    if (ctl->nargs < 2)
        return ctl_usage_error("events", "events retry needs event IDs");
    int rc = CTL_EXIT_OK;
    for (size_t i = 1; i < ctl->nargs && rc == CTL_EXIT_OK; i++) {
        const char *id = ctl->args[i];
        if (id[0] == '\0' || strspn(id, "0123456789") != strlen(id) || strlen(id) > 18)
            return ctl_usage_error("events", "'%s' is not an event ID", id);
        char path[64];
        snprintf(path, sizeof(path), "/v1/events/%s/retry", id);
        struct json_doc *doc = NULL;
        rc = api_call(ctl, "POST", path, "", 0, NULL, 0, &doc, NULL);
        if (rc == CTL_EXIT_OK) {
            if (ctl->json)
                rc = print_json(json_doc_root(doc));
            else
                printf("event %s: sent again\n", id);
        }
        json_doc_free(doc);
    }
    return rc;
}

/* GET /v1/events[?status=...]; "events retry ID...": POST /v1/events/{id}/retry. */
int cmd_events(struct ctl *ctl)
{
    static const char *const headers[] = {"ID",     "TOPIC",    "UDID",       "CREATED",
                                          "STATUS", "ATTEMPTS", "NEXT",       "LAST ERROR",
                                          "RECEIVER"};
    if (ctl->nargs > 0) {
        if (strcmp(ctl->args[0], "retry") != 0)
            return ctl_usage_error("events", "unknown events command '%s'", ctl->args[0]);
        return events_retry(ctl);
    }
    if (ctl->status != NULL && strcmp(ctl->status, "pending") != 0 &&
        strcmp(ctl->status, "delivered") != 0 && strcmp(ctl->status, "dead") != 0)
        return ctl_usage_error("events", "unknown status '%s' (use pending, delivered or dead)",
                               ctl->status);
    char path[96];
    snprintf(path, sizeof(path), "/v1/events?limit=1000%s%s", ctl->status ? "&status=" : "",
             ctl->status ? ctl->status : "");
    struct json_doc *doc = NULL;
    struct table *table = NULL;
    int rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    const struct json_value *list = rc == CTL_EXIT_OK ? json_doc_root(doc) : NULL;
    if (rc != CTL_EXIT_OK)
        goto out;
    if (json_value_type(list) != JSON_ARRAY) {
        rc = unexpected_shape(ctl, path, "a JSON array of events");
        goto out;
    }
    if (ctl->json) {
        rc = print_json(list);
        goto out;
    }
    if (json_array_length(list) == 0) {
        fprintf(stderr, "no events\n");
        goto out;
    }
    if ((table = table_new(sizeof(headers) / sizeof(*headers), headers)) == NULL) {
        rc = fail_nomem();
        goto out;
    }
    for (size_t i = 0; i < json_array_length(list); i++) {
        const struct json_value *e = json_array_get(list, i);
        const char *cells[] = {
            output_scalar(json_object_get(e, "id")),
            json_object_get_string(e, "topic"),
            json_object_get_string(e, "udid"),
            json_object_get_string(e, "created_at"),
            json_object_get_string(e, "status"),
            output_scalar(json_object_get(e, "attempts")),
            json_object_get_string(e, "next_attempt_at"),
            json_object_get_string(e, "last_error"),
            json_object_get_string(e, "receiver"),
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
    return rc;
}

/* ---- profile ---- */

/* GET /mdm/enroll[?token=]: the profile as the server sends it (XML, or signed DER). */
int cmd_profile(struct ctl *ctl)
{
    char *path = NULL;
    if (ctl->enroll_token != NULL) {
        char *esc = client_escape(ctl->client, ctl->enroll_token);
        path = esc ? str_join("/mdm/enroll?token=", esc, (const char *)NULL) : NULL;
        free(esc);
    } else {
        path = str_join("/mdm/enroll", (const char *)NULL);
    }
    if (path == NULL)
        return fail_nomem();
    struct client_response resp;
    int rc = CTL_EXIT_OK;
    if (!client_request(ctl->client, "GET", path, NULL, 0, NULL, &resp)) {
        fprintf(stderr, "vouchctl: %s\n", client_error(ctl->client));
        free(path);
        return CTL_EXIT_FAILURE;
    }
    if (resp.status != 200) {
        report_http_error(ctl, "GET", path, &resp);
        rc = CTL_EXIT_FAILURE;
    } else {
        FILE *out = ctl->out ? fopen(ctl->out, "wb") : stdout;
        if (out == NULL || fwrite(resp.body, 1, resp.len, out) != resp.len ||
            (out != stdout && fclose(out) != 0)) {
            fprintf(stderr, "vouchctl: cannot write %s\n", ctl->out ? ctl->out : "the profile");
            rc = CTL_EXIT_FAILURE;
        } else if (ctl->out != NULL) {
            fprintf(stderr, "wrote %s (%zu bytes)\n", ctl->out, resp.len);
        }
    }
    client_response_free(&resp);
    free(path);
    return rc;
}

/* ---- push ---- */

/* GET /v1/push/{udid,...}: vouchd answers when every push has its answer from APNs. */
int cmd_push(struct ctl *ctl)
{
    static const char *const headers[] = {"UDID", "RESULT", "DETAIL"};
    struct json_doc *doc = NULL;
    struct table *table = NULL;
    char *ids = NULL, *path = NULL;
    int rc = CTL_EXIT_OK;
    for (size_t i = 0; i < ctl->nargs; i++) {
        char *esc = client_escape(ctl->client, ctl->args[i]);
        char *joined =
            esc ? str_join(ids ? ids : "", ids ? "," : "", esc, (const char *)NULL) : NULL;
        free(esc);
        free(ids);
        if ((ids = joined) == NULL)
            return fail_nomem();
    }
    if ((path = str_join("/v1/push/", ids, (const char *)NULL)) == NULL) {
        free(ids);
        return fail_nomem();
    }
    long status = 0;
    /* 404 carries the per-device answers when no push was delivered. */
    rc = api_call(ctl, "GET", path, NULL, 0, NULL, 404, &doc, &status);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *results = json_object_get(json_doc_root(doc), "status");
    if (json_value_type(results) != JSON_OBJECT) {
        rc = unexpected_shape(ctl, path, "{\"status\": {...}}");
        goto out;
    }
    if (ctl->json) {
        rc = print_json(json_doc_root(doc));
        if (rc == CTL_EXIT_OK && status != 200)
            rc = CTL_EXIT_FAILURE;
        goto out;
    }
    if ((table = table_new(3, headers)) == NULL) {
        rc = fail_nomem();
        goto out;
    }
    size_t delivered = 0;
    for (size_t i = 0; i < json_object_size(results); i++) {
        const char *udid;
        size_t udid_len;
        const struct json_value *r;
        if (!json_object_member(results, i, &udid, &udid_len, &r))
            continue;
        const char *id = json_object_get_string(r, "push_result");
        const char *error = json_object_get_string(r, "push_error");
        const char *cells[] = {udid, id ? "delivered" : (error ? error : "?"),
                               id ? id : json_object_get_string(r, "reason")};
        delivered += id != NULL;
        if (!table_add_row(table, cells)) {
            rc = fail_nomem();
            goto out;
        }
    }
    table_print(table, stdout);
    printf("%zu of %zu device(s) pushed\n", delivered, json_object_size(results));
    if (delivered < json_object_size(results))
        rc = CTL_EXIT_FAILURE;
out:
    table_free(table);
    json_doc_free(doc);
    free(path);
    free(ids);
    return rc;
}
