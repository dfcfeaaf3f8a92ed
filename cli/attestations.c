/* `vouchctl attest` (ask devices for a new attestation, one by one or in batches) and
 * `vouchctl attestations` (a device's attestation history). */
#include "vouchctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "client.h"
#include "devices.h"
#include "json.h"
#include "output.h"
#include "progress.h"

#include <unistd.h>

/* UDIDs per POST /v1/attest: the admin API's maximum, or, while a progress line is shown, 100,
 * so that it moves (a fleet of 10,000 then takes 100 requests). */
#define ATTEST_BATCH 1000
#define ATTEST_BATCH_PROGRESS 100
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
    if (json_value_kind(result) != JSON_KIND_OBJECT) {
        *text = "no result from the server";
        return ATTEST_OUTCOME_ERROR;
    }
    if (!json_get_bool(json_object_find(result, "queued"), &queued) || *uuid == NULL) {
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
    struct json_doc **answers; /* one per request answered; batch i covers udids[i*batch...] */
    size_t nanswers;
    size_t sent;  /* udids[0..sent) were asked and answered */
    size_t batch; /* UDIDs per POST /v1/attest */
};

/* The devices to ask, from the arguments or from the server's list. */
static int attest_targets(struct ctl *ctl, struct devices_pages *pages, struct attest_run *run)
{
    if (ctl->nargs > 0) {
        for (size_t i = 0; i < ctl->nargs; i++) {
            if (ctl->args[i][0] == '\0')
                return ctl_usage_error("attest", "empty UDID");
        }
        run->udids = calloc(ctl->nargs, sizeof(*run->udids));
        if (run->udids == NULL)
            return api_fail_nomem();
        for (size_t i = 0; i < ctl->nargs; i++)
            run->udids[i] = ctl->args[i];
        run->n = ctl->nargs;
        if (!udids_dedupe(run->udids, &run->n))
            return api_fail_nomem();
        run->single = run->n == 1;
        return CTL_EXIT_OK;
    }
    struct devices_list devices = {0};
    int rc = devices_fetch(ctl, ctl->failed ? "failed" : NULL, !ctl->failed, pages,
                           devices_collect, &devices);
    if (rc == CTL_EXIT_OK && devices.n > 0) {
        run->udids = calloc(devices.n, sizeof(*run->udids));
        if (run->udids == NULL) {
            rc = api_fail_nomem();
        } else {
            for (size_t i = 0; i < devices.n; i++)
                run->udids[i] = json_object_get_string(devices.items[i], "udid");
            run->n = devices.n;
            if (!udids_dedupe(run->udids, &run->n))
                rc = api_fail_nomem();
        }
    }
    free(devices.items);
    return rc;
}

static int attest_send_single(struct ctl *ctl, struct attest_run *run)
{
    char *path = api_udid_path(ctl, run->udids[0], "/attest");
    long status = 0;
    int rc;

    if (path == NULL)
        return api_fail_nomem();
    run->answers = calloc(1, sizeof(*run->answers));
    if (run->answers == NULL) {
        free(path);
        return api_fail_nomem();
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
        } else if (json_value_kind(answer) != JSON_KIND_OBJECT) {
            rc = api_unexpected_shape(ctl, path, "a JSON object");
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
    run->batch = progress_wanted(ctl->json) ? ATTEST_BATCH_PROGRESS : ATTEST_BATCH;
    size_t nbatches = (run->n + run->batch - 1) / run->batch;
    struct json_writer *w = json_writer_new(ATTEST_MAX_BODY, 0);
    int rc = CTL_EXIT_OK;

    run->answers = calloc(nbatches ? nbatches : 1, sizeof(*run->answers));
    if (w == NULL || run->answers == NULL) {
        json_writer_free(w);
        return api_fail_nomem();
    }
    struct progress *progress = progress_begin("attest", run->n, ctl->json);
    for (size_t b = 0; b < nbatches && rc == CTL_EXIT_OK; b++) {
        size_t first = b * run->batch;
        size_t count = run->n - first < run->batch ? run->n - first : run->batch;
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
        if (json_value_kind(json_object_find(json_doc_root(doc), "results")) != JSON_KIND_OBJECT) {
            json_doc_free(doc);
            rc = api_unexpected_shape(ctl, path, "an object with per-device results");
            break;
        }
        run->answers[run->nanswers++] = doc;
        run->sent = first + count;
        progress_update(progress, run->sent);
    }
    progress_end(progress);
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
        json_object_find(json_doc_root(run->answers[i / run->batch]), "results");
    const struct json_value *r = json_object_find(results, run->udids[i]);
    /* A UDID typed in another case is answered under the device's own. */
    for (size_t k = 0; r == NULL && k < json_object_count(results); k++) {
        const char *key;
        const struct json_value *v;
        if (json_object_member(results, k, &key, NULL, &v) && strcasecmp(key, run->udids[i]) == 0)
            r = v;
    }
    return r;
}

/* attest --all on a terminal: asks first. Without a terminal, --yes is the only answer. */
static int attest_confirm(const struct ctl *ctl, size_t n)
{
    char line[16];

    if (ctl->yes || ctl->dry_run || !ctl->all)
        return CTL_EXIT_OK;
    if (isatty(STDIN_FILENO) != 1 || isatty(STDERR_FILENO) != 1)
        return ctl_usage_error("attest", "--all asks every device: confirm with --yes when "
                                         "not on a terminal");
    fprintf(stderr, "Ask all %zu device%s for a new attestation? [y/N] ", n, n == 1 ? "" : "s");
    fflush(stderr);
    if (fgets(line, sizeof(line), stdin) == NULL || (line[0] != 'y' && line[0] != 'Y')) {
        fprintf(stderr, "vouchctl: nothing asked\n");
        return CTL_EXIT_FAILURE;
    }
    return CTL_EXIT_OK;
}

/* --dry-run: the devices that would be asked, and nothing sent. */
static int attest_dry_run(const struct ctl *ctl, const struct attest_run *run)
{
    static const char *const headers[] = {"UDID", "WOULD"};
    struct table *table = table_new(2, headers);

    if (table == NULL)
        return api_fail_nomem();
    for (size_t i = 0; i < run->n; i++) {
        const char *cells[] = {run->udids[i], "ask for an attestation"};
        if (!table_add_row(table, cells)) {
            table_free(table);
            return api_fail_nomem();
        }
    }
    table_print(table, stdout);
    table_free(table);
    printf("\n%zu device%s would be asked (dry run: nothing sent)\n", run->n,
           run->n == 1 ? "" : "s");
    (void)ctl;
    return CTL_EXIT_OK;
}

/* --json: the single answer as it came, or every batch's results merged into one object. */
static bool attest_print_json(const struct attest_run *run)
{
    if (run->single)
        return run->nanswers == 0 || output_json(json_doc_root(run->answers[0]), stdout);

    return output_json_merged(run->answers, run->nanswers, "results", stdout);
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
    struct devices_pages pages = {0};
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
    /* Refused before anything is fetched: a script without --yes learns it at once. */
    if (ctl->all && !ctl->yes && !ctl->dry_run &&
        (isatty(STDIN_FILENO) != 1 || isatty(STDERR_FILENO) != 1))
        return ctl_usage_error("attest", "--all asks every device: confirm with --yes when "
                                         "not on a terminal");

    rc = attest_targets(ctl, &pages, &run);
    if (rc != CTL_EXIT_OK)
        goto out;
    if (run.n == 0) {
        if (ctl->json && !attest_print_json(&run))
            rc = CTL_EXIT_FAILURE;
        fprintf(stderr, "%s\n", ctl->failed ? "no devices whose attestation failed" : "no devices");
        goto out;
    }
    if (ctl->dry_run) {
        rc = attest_dry_run(ctl, &run);
        goto out;
    }
    if ((rc = attest_confirm(ctl, run.n)) != CTL_EXIT_OK)
        goto out;
    rc = run.single ? attest_send_single(ctl, &run) : attest_send_batches(ctl, &run);
    if (rc == CTL_EXIT_OK && run.single && run.nanswers == 1 &&
        json_object_get_string(json_doc_root(run.answers[0]), "error") != NULL &&
        strcmp(json_object_get_string(json_doc_root(run.answers[0]), "error"), "unknown device") ==
            0) {
        rc = api_unknown_device(run.udids[0]);
        goto out;
    }

    if (ctl->json) {
        if (!attest_print_json(&run))
            rc = CTL_EXIT_FAILURE;
    } else if ((table = table_new(3, headers)) == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    for (size_t i = 0; i < run.sent; i++) {
        const char *uuid, *text;
        enum attest_outcome o = attest_outcome_of(attest_result(&run, i), &uuid, &text);
        counts[o]++;
        if (o == ATTEST_OUTCOME_UNKNOWN_DEVICE)
            api_unknown_device(run.udids[i]);
        if (table != NULL) {
            const char *cells[] = {run.udids[i], uuid, text};
            if (!table_add_row(table, cells)) {
                rc = api_fail_nomem();
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
    devices_pages_free(&pages);
    return rc;
}

static bool attestations_row(struct table *t, const struct json_value *a)
{
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
        json_object_get_string(json_object_find(a, "properties"), "os_version"),
    };
    return table_add_row(t, cells);
}

int cmd_attestations(struct ctl *ctl)
{
    static const char *const headers[] = {"RECEIVED",       "STATUS",    "FRESHNESS", "REASON",
                                          "REQUEST REASON", "GENERATED", "OS"};
    struct json_doc *doc = NULL;
    const struct json_value *list;
    int rc = api_device_array_get(ctl, "/attestations", "attestations", &doc, &list);

    if (rc == CTL_EXIT_OK && list != NULL)
        rc = api_print_table(headers, sizeof(headers) / sizeof(*headers), list, attestations_row);
    json_doc_free(doc);
    return rc;
}
