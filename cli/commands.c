/* `vouchctl commands` (a device's command history) and `vouchctl enqueue` (queue a command
 * plist for devices). */
#include "vouchctl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plist/plist.h>

#include "api.h"
#include "client.h"
#include "json.h"
#include "output.h"
#include "progress.h"

/* A command plist larger than this is surely a mistake (vouchd accepts 1 MiB by default). */
#define ENQUEUE_MAX_FILE ((size_t)16 * 1024 * 1024)

static bool commands_row(struct table *t, const struct json_value *cmd)
{
    const char *cells[] = {
        json_object_get_string(cmd, "command_uuid"), json_object_get_string(cmd, "request_type"),
        json_object_get_string(cmd, "status"),       json_object_get_string(cmd, "queued_at"),
        json_object_get_string(cmd, "result_at"),
    };
    return table_add_row(t, cells);
}

int cmd_commands(struct ctl *ctl)
{
    static const char *const headers[] = {"COMMAND UUID", "REQUEST TYPE", "STATUS", "QUEUED AT",
                                          "RESULT AT"};
    struct json_doc *doc = NULL;
    const struct json_value *list;
    int rc = api_device_array_get(ctl, "/commands", "commands", &doc, &list);

    if (rc == CTL_EXIT_OK && list != NULL)
        rc = api_print_table(headers, sizeof(headers) / sizeof(*headers), list, commands_row);
    json_doc_free(doc);
    return rc;
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
    const struct json_value *status = json_object_find(answer, "status");
    struct table *table = NULL;
    size_t failed = 0;

    if (!ctl->json) {
        table = table_new(2, headers);
        if (table == NULL) {
            api_fail_nomem();
            return false;
        }
    }
    for (size_t i = 0; i < ctl->nargs; i++) {
        const struct json_value *st = json_object_find(status, ctl->args[i]);
        bool queued = false;
        char result[512];
        int m;
        if (!json_get_bool(json_object_find(st, "queued"), &queued)) {
            queued = false;
            m = snprintf(result, sizeof(result), "unknown: no result from the server");
        } else if (queued) {
            m = snprintf(result, sizeof(result), "queued");
        } else if (api_device_unknown(ctl, ctl->args[i])) {
            api_unknown_device(ctl->args[i]);
            m = snprintf(result, sizeof(result), "unknown device");
            if (ctl->nargs == 1) {
                /* One unknown UDID alone: the answer every command gives, and nothing else. */
                table_free(table);
                return false;
            }
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
                api_fail_nomem();
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
    if (ctl->dry_run) {
        for (size_t i = 0; i < ctl->nargs; i++) {
            char *safe = output_sanitize(ctl->args[i]);
            printf("would queue %s for %s\n", ctl->file, safe != NULL ? safe : "?");
            free(safe);
        }
        printf("%zu device(s) would get the command (dry run: nothing sent)\n", ctl->nargs);
        rc = CTL_EXIT_OK;
        goto out;
    }

    /* PUT /v1/enqueue/udid1,udid2,... with every UDID escaped on its own. */
    path = api_str_join("/v1/enqueue/", (const char *)NULL);
    for (size_t i = 0; path != NULL && i < ctl->nargs; i++) {
        char *esc = client_escape(ctl->client, ctl->args[i]);
        char *longer = esc ? api_str_join(path, i > 0 ? "," : "", esc, (const char *)NULL) : NULL;
        free(esc);
        free(path);
        path = longer;
    }
    if (path == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    long status = 0;
    /* One request: the server queues one command (one CommandUUID) for every device in one
     * transaction, so the line says how many are being queued, then clears. */
    struct progress *progress = progress_begin("enqueue", ctl->nargs, ctl->json);
    rc = api_call(ctl, "PUT", path, xml ? xml : data, xml ? xml_len : len, "application/xml", 404,
                  &doc, &status);
    progress_update(progress, ctl->nargs);
    progress_end(progress);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *answer = json_doc_root(doc);
    if (json_value_kind(json_object_find(answer, "status")) != JSON_KIND_OBJECT) {
        if (status == 404) {
            /* A plain {"error": ...} 404, without per-device results. */
            const char *message = json_object_get_string(answer, "error");
            char *safe = output_sanitize(message != NULL ? message : "no such device");
            fprintf(stderr, "vouchctl: %s (HTTP 404 Not Found)\n", safe != NULL ? safe : "?");
            free(safe);
            rc = CTL_EXIT_FAILURE;
        } else {
            rc = api_unexpected_shape(ctl, path, "an object with a per-device status");
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
