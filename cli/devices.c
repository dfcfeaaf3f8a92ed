/* devices: see devices.h. `vouchctl devices` and `vouchctl device`. */
#include "devices.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "client.h"
#include "json.h"
#include "output.h"

/* Devices asked for per page: the admin API's maximum. */
#define DEVICES_PAGE 1000
#define DEVICES_PAGE_TEXT "1000"

/* The verdicts, and "pending": devices with a request out, whatever their last verdict. */
static const char *const attestation_statuses[] = {"verified", "failed",      "expired",
                                                   "none",     "unsupported", "pending"};

/* Whether a device object passes the filter (see attestation_statuses). */
static bool attestation_matches(const struct json_value *att, const char *filter)
{
    if (strcmp(filter, "pending") == 0) {
        const struct json_value *request = json_object_find(att, "request");
        return request != NULL && json_value_kind(request) == JSON_KIND_OBJECT;
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
    const struct json_value *att = json_object_find(dev, "attestation");
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
    const char *enrolled = output_scalar(json_object_find(dev, "enrolled"));
    const struct json_value *gen = json_object_find(dev, "generation");
    if (json_value_kind(gen) == JSON_KIND_NUMBER && strcmp(output_scalar(gen), "1") != 0)
        m = snprintf(enrolled_cell, sizeof(enrolled_cell), "%s (generation %s)", enrolled,
                     output_scalar(gen));
    else
        m = snprintf(enrolled_cell, sizeof(enrolled_cell), "%s", enrolled);
    if (m < 0)
        enrolled_cell[0] = '\0';
    const struct json_value *request = json_object_find(att, "request");
    bool rechecking = request != NULL && json_value_kind(request) == JSON_KIND_OBJECT;
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

void devices_pages_free(struct devices_pages *pages)
{
    for (size_t i = 0; i < pages->ndocs; i++)
        json_doc_free(pages->docs[i]);
    free(pages->docs);
    pages->docs = NULL;
    pages->ndocs = 0;
}

static bool attestation_status_known(const char *status)
{
    for (size_t i = 0; i < sizeof(attestation_statuses) / sizeof(*attestation_statuses); i++) {
        if (strcmp(status, attestation_statuses[i]) == 0)
            return true;
    }
    return false;
}

int devices_fetch(struct ctl *ctl, const char *filter, bool udids_only,
                  struct devices_pages *pages, devices_visit_fn *visit, void *arg)
{
    char *filter_esc = NULL;
    char *after_esc = NULL;
    char *path = NULL;
    const char *after = NULL; /* the last udid of the previous page */
    int rc = CTL_EXIT_FAILURE;

    assert(filter == NULL || !udids_only);
    if (filter != NULL && (filter_esc = client_escape(ctl->client, filter)) == NULL)
        return api_fail_nomem();
    for (;;) {
        free(path);
        path = api_str_join("/v1/devices?limit=" DEVICES_PAGE_TEXT, after_esc ? "&after=" : "",
                            after_esc ? after_esc : "", filter_esc ? "&attestation=" : "",
                            filter_esc ? filter_esc : "", udids_only ? "&fields=udid" : "",
                            (const char *)NULL);
        if (path == NULL) {
            rc = api_fail_nomem();
            goto out;
        }
        struct json_doc **nd = realloc(pages->docs, (pages->ndocs + 1) * sizeof(*pages->docs));
        if (nd == NULL) {
            rc = api_fail_nomem();
            goto out;
        }
        pages->docs = nd;
        long status = 0;
        rc = api_call(ctl, "GET", path, NULL, 0, NULL, udids_only ? 400 : 0,
                      &pages->docs[pages->ndocs], &status);
        if (rc != CTL_EXIT_OK)
            goto out;
        if (status == 400) {
            /* A vouchd from before fields=udid refuses it: whole device objects, then. */
            json_doc_free(pages->docs[pages->ndocs]);
            pages->docs[pages->ndocs] = NULL;
            udids_only = false;
            continue;
        }
        const struct json_value *page = json_doc_root(pages->docs[pages->ndocs++]);
        if (json_value_kind(page) != JSON_KIND_ARRAY) {
            rc = api_unexpected_shape(ctl, path, "a JSON array of devices");
            goto out;
        }
        size_t count = json_array_length(page);
        for (size_t i = 0; i < count; i++) {
            const struct json_value *dev = json_array_at(page, i);
            if (json_value_kind(dev) != JSON_KIND_OBJECT ||
                json_object_get_string(dev, "udid") == NULL) {
                rc = api_unexpected_shape(ctl, path, "device objects with a udid");
                goto out;
            }
            if (filter != NULL &&
                !attestation_matches(json_object_find(dev, "attestation"), filter))
                continue;
            if (!visit(arg, dev)) {
                rc = api_fail_nomem();
                goto out;
            }
        }
        if (count < DEVICES_PAGE)
            break;
        const char *last = json_object_get_string(json_array_at(page, count - 1), "udid");
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
            rc = api_fail_nomem();
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

static bool devices_list_add(struct devices_list *l, const struct json_value *item)
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

bool devices_collect(void *arg, const struct json_value *dev)
{
    return devices_list_add(arg, dev);
}

static bool devices_add_row_visit(void *arg, const struct json_value *dev)
{
    return devices_add_row(arg, dev);
}

int cmd_devices(struct ctl *ctl)
{
    static const char *const headers[] = {"UDID",     "SERIAL",    "MODEL/PRODUCT", "OS",
                                          "ENROLLED", "LAST SEEN", "ATTESTATION",   "NEXT CHECK"};
    struct devices_pages pages = {0};
    struct devices_list devices = {0};
    struct table *table = NULL;
    int rc;

    if (ctl->nargs > 0)
        return devices_expect_run(ctl);
    if (ctl->attestation != NULL && !attestation_status_known(ctl->attestation))
        return ctl_usage_error("devices",
                               "unknown attestation status '%s' (use verified, failed, "
                               "expired, none, unsupported or pending)",
                               ctl->attestation);
    if (ctl->json) {
        rc = devices_fetch(ctl, ctl->attestation, false, &pages, devices_collect, &devices);
        if (rc == CTL_EXIT_OK && !output_json_array(devices.items, devices.n, stdout))
            rc = CTL_EXIT_FAILURE;
        goto out;
    }
    table = table_new(sizeof(headers) / sizeof(*headers), headers);
    if (table == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    rc = devices_fetch(ctl, ctl->attestation, false, &pages, devices_add_row_visit, table);
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
    devices_pages_free(&pages);
    return rc;
}

/* `device --serial S`: GET /v1/devices?serial=S, each device found shown as `device` shows one.
 * No device with that serial is the same failure as an unknown UDID. */
static int device_by_serial(struct ctl *ctl)
{
    struct json_doc *doc = NULL;
    char *esc = client_escape(ctl->client, ctl->serial);
    char *path = esc != NULL ? api_str_join("/v1/devices?serial=", esc, (const char *)NULL) : NULL;
    int rc;

    free(esc);
    if (path == NULL)
        return api_fail_nomem();
    rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *list = json_doc_root(doc);
    if (json_value_kind(list) != JSON_KIND_ARRAY) {
        rc = api_unexpected_shape(ctl, path, "a JSON array of devices");
        goto out;
    }
    size_t n = json_array_length(list);
    if (n == 0) {
        char *safe = output_sanitize(ctl->serial);
        fprintf(stderr, "vouchctl: no device with serial number '%s'\n", safe ? safe : "?");
        free(safe);
        rc = CTL_EXIT_FAILURE;
    } else if (ctl->json) {
        rc = api_print_json(n == 1 ? json_array_at(list, 0) : list);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                fputc('\n', stdout);
            output_device(json_array_at(list, i), stdout);
        }
    }
out:
    json_doc_free(doc);
    free(path);
    return rc;
}

int cmd_device(struct ctl *ctl)
{
    struct json_doc *doc = NULL;
    int rc;

    if (ctl->serial != NULL) {
        if (ctl->nargs > 0)
            return ctl_usage_error("device", "give a UDID or --serial, not both");
        return device_by_serial(ctl);
    }
    if (ctl->nargs == 0)
        return ctl_usage_error("device", "missing UDID (or --serial SERIAL)");
    if (ctl->nargs == 2) {
        if (strcmp(ctl->args[1], "allow-reenroll") != 0)
            return ctl_usage_error("device", "unknown action '%s' (allow-reenroll)", ctl->args[1]);
        if (ctl->dry_run) {
            char *safe = output_sanitize(ctl->args[0]);
            printf("would let %s enroll once more with a new identity certificate (dry run: "
                   "nothing sent)\n",
                   safe != NULL ? safe : "?");
            free(safe);
            return CTL_EXIT_OK;
        }
        rc = api_device_call(ctl, "POST", ctl->args[0], "/allow-reenroll", "", 0, &doc);
        if (rc == CTL_EXIT_OK)
            printf("%s may enroll once more with a new identity certificate\n", ctl->args[0]);
        goto out;
    }
    rc = api_device_call(ctl, "GET", ctl->args[0], "", NULL, 0, &doc);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *dev = json_doc_root(doc);
    if (json_value_kind(dev) != JSON_KIND_OBJECT) {
        rc = api_unexpected_shape(ctl, "/v1/devices/{udid}", "a device object");
        goto out;
    }
    if (ctl->json)
        rc = api_print_json(dev);
    else
        output_device(dev, stdout);
out:
    json_doc_free(doc);
    return rc;
}
