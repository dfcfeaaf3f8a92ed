/* `vouchctl push`: push devices now and show what APNs answered. */
#include "vouchctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "client.h"
#include "json.h"
#include "output.h"
#include "progress.h"

/* UDIDs per GET /v1/push/...: the admin API's maximum, or, while a progress line is shown, 100,
 * so that it moves. */
#define PUSH_CHUNK 1000
#define PUSH_CHUNK_PROGRESS 100

/* GET /v1/push/{udid,...} for args[first, first+count): vouchd answers when every push has its
 * answer from APNs. *doc holds {"status": {...}}. */
static int push_chunk(struct ctl *ctl, size_t first, size_t count, struct json_doc **doc)
{
    char *path = api_str_join("/v1/push/", (const char *)NULL);
    for (size_t i = first; path != NULL && i < first + count; i++) {
        char *esc = client_escape(ctl->client, ctl->args[i]);
        char *longer =
            esc ? api_str_join(path, i > first ? "," : "", esc, (const char *)NULL) : NULL;
        free(esc);
        free(path);
        path = longer;
    }
    if (path == NULL)
        return api_fail_nomem();
    long status = 0;
    /* 404 carries the per-device answers when no push was delivered. */
    int rc = api_call(ctl, "GET", path, NULL, 0, NULL, 404, doc, &status);
    if (rc == CTL_EXIT_OK &&
        json_value_kind(json_object_find(json_doc_root(*doc), "status")) != JSON_KIND_OBJECT)
        rc = api_unexpected_shape(ctl, path, "{\"status\": {...}}");
    free(path);
    return rc;
}

static int push_dry_run(const struct ctl *ctl)
{
    for (size_t i = 0; i < ctl->nargs; i++) {
        char *safe = output_sanitize(ctl->args[i]);
        printf("would push %s\n", safe != NULL ? safe : "?");
        free(safe);
    }
    printf("%zu device(s) would be pushed (dry run: nothing sent)\n", ctl->nargs);
    return CTL_EXIT_OK;
}

int cmd_push(struct ctl *ctl)
{
    static const char *const headers[] = {"UDID", "RESULT", "DETAIL"};
    size_t chunk = progress_wanted(ctl->json) ? PUSH_CHUNK_PROGRESS : PUSH_CHUNK;
    size_t nchunks = (ctl->nargs + chunk - 1) / chunk;
    struct json_doc **docs = NULL;
    size_t ndocs = 0, total = 0, delivered = 0;
    struct table *table = NULL;
    int rc = CTL_EXIT_OK;

    for (size_t i = 0; i < ctl->nargs; i++) {
        if (ctl->args[i][0] == '\0' || strchr(ctl->args[i], ',') != NULL)
            return ctl_usage_error("push", "invalid UDID '%s'", ctl->args[i]);
    }
    if (ctl->dry_run)
        return push_dry_run(ctl);
    if ((docs = calloc(nchunks, sizeof(*docs))) == NULL)
        return api_fail_nomem();
    struct progress *progress =
        ctl->nargs > 1 ? progress_begin("push", ctl->nargs, ctl->json) : NULL;
    for (size_t c = 0; c < nchunks && rc == CTL_EXIT_OK; c++) {
        size_t first = c * chunk;
        size_t count = ctl->nargs - first < chunk ? ctl->nargs - first : chunk;
        rc = push_chunk(ctl, first, count, &docs[ndocs]);
        if (rc == CTL_EXIT_OK)
            ndocs++;
        progress_update(progress, first + count);
    }
    progress_end(progress);
    if (rc != CTL_EXIT_OK && ndocs == 0)
        goto out;
    if (ctl->json) {
        if (!output_json_merged(docs, ndocs, "status", stdout))
            rc = CTL_EXIT_FAILURE;
        for (size_t d = 0; d < ndocs; d++) {
            const struct json_value *st = json_object_find(json_doc_root(docs[d]), "status");
            for (size_t i = 0; i < json_object_count(st); i++) {
                const char *udid;
                const struct json_value *r;
                if (json_object_member(st, i, &udid, NULL, &r) &&
                    json_object_get_string(r, "push_result") == NULL)
                    rc = CTL_EXIT_FAILURE;
            }
        }
        goto out;
    }
    if ((table = table_new(3, headers)) == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    size_t unknown = 0;
    for (size_t d = 0; d < ndocs; d++) {
        const struct json_value *results = json_object_find(json_doc_root(docs[d]), "status");
        for (size_t i = 0; i < json_object_count(results); i++) {
            const char *udid;
            size_t udid_len;
            const struct json_value *r;
            if (!json_object_member(results, i, &udid, &udid_len, &r))
                continue;
            const char *id = json_object_get_string(r, "push_result");
            const char *error = json_object_get_string(r, "push_error");
            const char *detail = id ? id : json_object_get_string(r, "reason");
            const char *result = id ? "delivered" : (error ? error : "?");
            /* no_token also answers a UDID the server does not know: say which it is. */
            if (error != NULL && strcmp(error, "no_token") == 0 && api_device_unknown(ctl, udid)) {
                api_unknown_device(udid);
                result = "unknown device";
                detail = NULL;
                unknown++;
            }
            const char *cells[] = {udid, result, detail};
            delivered += id != NULL;
            total++;
            if (!table_add_row(table, cells)) {
                rc = api_fail_nomem();
                goto out;
            }
        }
    }
    /* One unknown UDID alone gets the answer every command gives, and nothing else. */
    if (!(ctl->nargs == 1 && unknown == 1)) {
        table_print(table, stdout);
        printf("%zu of %zu device(s) pushed\n", delivered, total);
    }
    if (delivered < total)
        rc = CTL_EXIT_FAILURE;
out:
    table_free(table);
    for (size_t d = 0; d < ndocs; d++)
        json_doc_free(docs[d]);
    free(docs);
    return rc;
}
