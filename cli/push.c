/* `vouchctl push`: push devices now and show what APNs answered. */
#include "vouchctl.h"

#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "client.h"
#include "json.h"
#include "output.h"

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
            esc ? api_str_join(ids ? ids : "", ids ? "," : "", esc, (const char *)NULL) : NULL;
        free(esc);
        free(ids);
        if ((ids = joined) == NULL)
            return api_fail_nomem();
    }
    if ((path = api_str_join("/v1/push/", ids, (const char *)NULL)) == NULL) {
        free(ids);
        return api_fail_nomem();
    }
    long status = 0;
    /* 404 carries the per-device answers when no push was delivered. */
    rc = api_call(ctl, "GET", path, NULL, 0, NULL, 404, &doc, &status);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *results = json_object_find(json_doc_root(doc), "status");
    if (json_value_kind(results) != JSON_KIND_OBJECT) {
        rc = api_unexpected_shape(ctl, path, "{\"status\": {...}}");
        goto out;
    }
    if (ctl->json) {
        rc = api_print_json(json_doc_root(doc));
        if (rc == CTL_EXIT_OK && status != 200)
            rc = CTL_EXIT_FAILURE;
        goto out;
    }
    if ((table = table_new(3, headers)) == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    size_t delivered = 0;
    for (size_t i = 0; i < json_object_count(results); i++) {
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
            rc = api_fail_nomem();
            goto out;
        }
    }
    table_print(table, stdout);
    printf("%zu of %zu device(s) pushed\n", delivered, json_object_count(results));
    if (delivered < json_object_count(results))
        rc = CTL_EXIT_FAILURE;
out:
    table_free(table);
    json_doc_free(doc);
    free(path);
    free(ids);
    return rc;
}
