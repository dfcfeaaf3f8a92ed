/* `vouchctl events`: the web-hook events and their delivery, and `events retry`. */
#include "vouchctl.h"

#include <stdio.h>
#include <string.h>

#include "api.h"
#include "json.h"
#include "output.h"

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
                rc = api_print_json(json_doc_root(doc));
            else
                printf("event %s: sent again\n", id);
        }
        json_doc_free(doc);
    }
    return rc;
}

static bool events_row(struct table *t, const struct json_value *e)
{
    const char *cells[] = {
        output_scalar(json_object_find(e, "id")),
        json_object_get_string(e, "topic"),
        json_object_get_string(e, "udid"),
        json_object_get_string(e, "created_at"),
        json_object_get_string(e, "status"),
        output_scalar(json_object_find(e, "attempts")),
        json_object_get_string(e, "next_attempt_at"),
        json_object_get_string(e, "last_error"),
        json_object_get_string(e, "receiver"),
    };
    return table_add_row(t, cells);
}

/* GET /v1/events[?status=...]; "events retry ID...": POST /v1/events/{id}/retry. */
int cmd_events(struct ctl *ctl)
{
    static const char *const headers[] = {"ID",       "TOPIC", "UDID",       "CREATED", "STATUS",
                                          "ATTEMPTS", "NEXT",  "LAST ERROR", "RECEIVER"};
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
    int rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    const struct json_value *list = rc == CTL_EXIT_OK ? json_doc_root(doc) : NULL;
    if (rc != CTL_EXIT_OK)
        goto out;
    if (json_value_kind(list) != JSON_KIND_ARRAY) {
        rc = api_unexpected_shape(ctl, path, "a JSON array of events");
        goto out;
    }
    if (ctl->json) {
        rc = api_print_json(list);
        goto out;
    }
    if (json_array_length(list) == 0) {
        fprintf(stderr, "no events\n");
        goto out;
    }
    rc = api_print_table(headers, sizeof(headers) / sizeof(*headers), list, events_row);
out:
    json_doc_free(doc);
    return rc;
}
