/*
 * `vouchctl devices expect SERIAL...` (POST /v1/expected-devices) and `vouchctl devices expected`
 * (GET /v1/expected-devices): the devices the operator expects, each with its own enrollment
 * token. See devices.h.
 */
#include "devices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "client.h"
#include "json.h"
#include "output.h"

/* Serials per request, and the longest serial: the admin API's limits. */
#define EXPECT_BATCH 1000
#define EXPECT_SERIAL_MAX 64
#define EXPECT_MAX_BODY ((size_t)EXPECT_BATCH * (EXPECT_SERIAL_MAX + 4) + 64)

static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static int serial_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks the serials (usage errors) before anything is sent: the server would refuse the whole
 * batch for one bad serial, after the batches before it had their tokens replaced. */
static int expect_check_serials(char **serials, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(serials[i]);
        if (len == 0 || len > EXPECT_SERIAL_MAX || strspn(serials[i], alnum) != len)
            return ctl_usage_error("devices",
                                   "'%s' is not a serial number (1 to %d letters and digits)",
                                   serials[i], EXPECT_SERIAL_MAX);
    }
    const char **sorted = malloc(n * sizeof(*sorted));
    if (sorted == NULL)
        return api_fail_nomem();
    memcpy(sorted, serials, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), serial_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            int rc = ctl_usage_error("devices", "serial number %s is named twice", sorted[i]);
            free(sorted);
            return rc;
        }
    }
    free(sorted);
    return CTL_EXIT_OK;
}

/* The profile URL as the operator can use it: vouchd without public_url answers a path, which is
 * then taken relative to the URL vouchctl talks to. Caller frees. */
static char *expect_profile_url(struct ctl *ctl, const char *url)
{
    if (url[0] == '/')
        return api_str_join(client_base_url(ctl->client), url, (const char *)NULL);
    return api_str_join(url, (const char *)NULL);
}

/* Prints the answers of the batches sent so far: one table (or JSON array) for all of them, even
 * after a failure, since each token exists only in these answers. */
static int expect_print(struct ctl *ctl, const struct devices_list *items)
{
    static const char *const headers[] = {"SERIAL", "STATE", "PROFILE URL"};
    size_t with_url = 0, relative = 0;
    int rc = CTL_EXIT_OK;

    for (size_t i = 0; i < items->n; i++) {
        const char *url = json_object_get_string(items->items[i], "profile_url");
        with_url += url != NULL;
        relative += url != NULL && url[0] == '/';
    }
    if (ctl->json) {
        if (!output_json_array(items->items, items->n, stdout))
            rc = CTL_EXIT_FAILURE;
    } else if (items->n > 0) {
        struct table *table = table_new(sizeof(headers) / sizeof(*headers), headers);
        if (table == NULL)
            return api_fail_nomem();
        for (size_t i = 0; i < items->n && rc == CTL_EXIT_OK; i++) {
            const struct json_value *item = items->items[i];
            const char *url = json_object_get_string(item, "profile_url");
            char *full = url != NULL ? expect_profile_url(ctl, url) : NULL;
            const char *cells[] = {
                json_object_get_string(item, "serial_number"),
                json_object_get_string(item, "state"),
                full,
            };
            if ((url != NULL && full == NULL) || !table_add_row(table, cells))
                rc = api_fail_nomem();
            free(full);
        }
        if (rc == CTL_EXIT_OK)
            table_print(table, stdout);
        table_free(table);
    }
    if (with_url > 0)
        fprintf(stderr, "vouchctl: warning: each profile URL carries its device's own "
                        "enrollment token,\n"
                        "shown only this once: keep it now. 'vouchctl devices expect SERIAL' "
                        "again makes\n"
                        "a new one, and the old one stops working.\n");
    if (relative > 0 && !ctl->json)
        fprintf(stderr, "vouchctl: the server has no public_url: the URLs start with --url\n");
    if (with_url < items->n)
        fprintf(stderr, "vouchctl: a device that enrolled already gets no new token\n");
    return rc;
}

static int devices_expect(struct ctl *ctl)
{
    static const char path[] = "/v1/expected-devices";
    char **serials = ctl->args + 1;
    size_t n = ctl->nargs - 1;
    struct devices_pages answers = {0};
    struct devices_list items = {0};
    struct json_writer *w = NULL;
    int rc;

    if (n == 0)
        return ctl_usage_error("devices", "devices expect needs serial numbers");
    if (ctl->attestation != NULL)
        return ctl_usage_error("devices", "--attestation goes with the device list only");
    rc = expect_check_serials(serials, n);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (ctl->dry_run) {
        for (size_t i = 0; i < n; i++)
            printf("would expect %s\n", serials[i]);
        printf("%zu serial number(s) would be expected (dry run: nothing sent)\n", n);
        return CTL_EXIT_OK;
    }
    size_t nbatches = (n + EXPECT_BATCH - 1) / EXPECT_BATCH;
    answers.docs = calloc(nbatches, sizeof(*answers.docs));
    w = json_writer_new(EXPECT_MAX_BODY, 0);
    if (answers.docs == NULL || w == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    for (size_t b = 0; b < nbatches && rc == CTL_EXIT_OK; b++) {
        size_t first = b * EXPECT_BATCH;
        size_t count = n - first < EXPECT_BATCH ? n - first : EXPECT_BATCH;
        const char *body;
        size_t body_len;

        json_writer_reset(w);
        bool ok = json_write_begin_object(w) && json_write_key(w, "serial_numbers") &&
                  json_write_begin_array(w);
        for (size_t i = 0; ok && i < count; i++)
            ok = json_write_string(w, serials[first + i]);
        ok = ok && json_write_end_array(w) && json_write_end_object(w) &&
             json_writer_finish(w, &body, &body_len);
        if (!ok) {
            fprintf(stderr, "vouchctl: cannot build the request: %s\n",
                    json_write_strerror(json_writer_error(w)));
            rc = CTL_EXIT_FAILURE;
            break;
        }
        rc = api_call(ctl, "POST", path, body, body_len, "application/json", 0,
                      &answers.docs[answers.ndocs], NULL);
        if (rc != CTL_EXIT_OK)
            break;
        const struct json_value *list = json_doc_root(answers.docs[answers.ndocs++]);
        if (json_value_kind(list) != JSON_KIND_ARRAY) {
            rc = api_unexpected_shape(ctl, path, "a JSON array of expected devices");
            break;
        }
        for (size_t i = 0; i < json_array_length(list); i++) {
            const struct json_value *item = json_array_at(list, i);
            if (json_value_kind(item) != JSON_KIND_OBJECT) {
                rc = api_unexpected_shape(ctl, path, "expected-device objects");
                break;
            }
            if (!devices_collect(&items, item)) {
                rc = api_fail_nomem();
                break;
            }
        }
    }
    /* Whatever the server answered is shown, even after a later batch failed. */
    if (items.n > 0 || rc == CTL_EXIT_OK) {
        int prc = expect_print(ctl, &items);
        if (rc == CTL_EXIT_OK)
            rc = prc;
    }
    if (rc != CTL_EXIT_OK && items.n > 0)
        fprintf(stderr, "vouchctl: only the serials shown above are expected\n");
out:
    json_writer_free(w);
    free(items.items);
    devices_pages_free(&answers);
    return rc;
}

static bool expected_row(struct table *t, const struct json_value *x)
{
    const char *cells[] = {
        json_object_get_string(x, "serial_number"),
        json_object_get_string(x, "expected_at"),
        json_object_get_string(x, "enrolled_at"),
    };
    return table_add_row(t, cells);
}

static int devices_expected(struct ctl *ctl)
{
    static const char path[] = "/v1/expected-devices";
    static const char *const headers[] = {"SERIAL", "EXPECTED", "ENROLLED"};
    struct json_doc *doc = NULL;

    if (ctl->nargs > 1)
        return ctl_usage_error("devices", "unexpected argument '%s'", ctl->args[1]);
    if (ctl->attestation != NULL)
        return ctl_usage_error("devices", "--attestation goes with the device list only");
    int rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *list = json_doc_root(doc);
    if (json_value_kind(list) != JSON_KIND_ARRAY)
        rc = api_unexpected_shape(ctl, path, "a JSON array of expected devices");
    else if (ctl->json)
        rc = api_print_json(list);
    else if (json_array_length(list) == 0)
        fprintf(stderr, "no expected devices\n");
    else
        rc = api_print_table(headers, sizeof(headers) / sizeof(*headers), list, expected_row);
out:
    json_doc_free(doc);
    return rc;
}

int devices_expect_run(struct ctl *ctl)
{
    const char *action = ctl->args[0];

    if (strcmp(action, "expect") == 0)
        return devices_expect(ctl);
    if (strcmp(action, "expected") == 0)
        return devices_expected(ctl);
    return ctl_usage_error("devices",
                           "unknown devices command '%s' (expect or expected; to show one "
                           "device: vouchctl device UDID)",
                           action);
}
