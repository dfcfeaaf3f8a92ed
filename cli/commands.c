/* `vouchctl commands` (a device's command history, one answer with --show, cancelling with
 * `commands cancel`) and `vouchctl enqueue` (queue a command for devices: a plist or JSON file,
 * or one of the templates built here with a fresh CommandUUID). */
#include "vouchctl.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plist/plist.h>

#include "api.h"
#include "client.h"
#include "command.h"
#include "json.h"
#include "mdm_message.h"
#include "output.h"
#include "plist_json.h"
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

/* What a command status means, for the operator who has not read docs/api.md. */
static const char *status_meaning(const char *status)
{
    static const char *const meanings[][2] = {
        {"queued", "waiting for the device to ask for it"},
        {"NotNow", "the device was busy; it is asked again later"},
        {"Acknowledged", "carried out"},
        {"Error", "the device could not carry it out"},
        {"CommandFormatError", "the device did not understand it"},
    };
    for (size_t i = 0; status != NULL && i < sizeof(meanings) / sizeof(meanings[0]); i++)
        if (strcmp(status, meanings[i][0]) == 0)
            return meanings[i][1];
    return "unknown status";
}

/* "Domain code: description" of an ErrorChain entry, into buf (sanitized by the caller). */
static const char *describe_error(const struct json_value *e, char *buf, size_t size)
{
    const char *domain = json_object_get_string(e, "ErrorDomain");
    const char *text = json_object_get_string(e, "USEnglishDescription");
    if (text == NULL)
        text = json_object_get_string(e, "LocalizedDescription");
    const char *code = output_scalar(json_object_find(e, "ErrorCode"));
    snprintf(buf, size, "%s %s: %s", domain != NULL ? domain : "-", code,
             text != NULL ? text : "no description");
    return buf;
}

static void print_line(const char *label, const char *text)
{
    char *safe = output_sanitize(text != NULL ? text : "-");
    printf("%s%s\n", label, safe != NULL ? safe : "?");
    free(safe);
}

/* One command answer (docs/api.md): its status and what it means, each error of the chain, then
 * every member as a "key: value" tree (the report under it). */
static void print_answer(const struct json_value *a)
{
    const char *status = json_object_get_string(a, "status");
    char line[512];
    snprintf(line, sizeof(line), "%s (%s)", status != NULL ? status : "-", status_meaning(status));
    print_line("", line);
    const struct json_value *chain = json_object_find(a, "error_chain");
    for (size_t i = 0; i < json_array_length(chain); i++) {
        char err[400];
        describe_error(json_array_at(chain, i), err, sizeof(err));
        print_line("  error: ", err);
    }
    putchar('\n');
    output_listing(a, stdout);
}

/* GET the answer(s) of ctl->show: on args[0], or on every device with --all. */
static int show_answers(struct ctl *ctl)
{
    static const char *const headers[] = {"UDID", "STATUS", "QUEUED AT", "RESULT AT", "ERROR"};
    char *esc = client_escape(ctl->client, ctl->show);
    char *path = NULL;
    if (esc != NULL && ctl->all)
        path = api_str_join("/v1/commands/", esc, (const char *)NULL);
    else if (esc != NULL) {
        char *suffix = api_str_join("/commands/", esc, (const char *)NULL);
        path = suffix != NULL ? api_udid_path(ctl, ctl->args[0], suffix) : NULL;
        free(suffix);
    }
    free(esc);
    if (path == NULL)
        return api_fail_nomem();
    struct json_doc *doc = NULL;
    int rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    const struct json_value *answer = rc == CTL_EXIT_OK ? json_doc_root(doc) : NULL;
    const struct json_value *devices = json_object_find(answer, "devices");
    if (rc != CTL_EXIT_OK) {
        /* reported by api_call */
    } else if (json_value_kind(answer) != JSON_KIND_OBJECT ||
               (ctl->all && json_value_kind(devices) != JSON_KIND_ARRAY)) {
        rc = api_unexpected_shape(ctl, path, "a command answer object");
    } else if (ctl->json) {
        rc = api_print_json(answer);
    } else if (!ctl->all) {
        print_answer(answer);
    } else {
        print_line("command_uuid: ", json_object_get_string(answer, "command_uuid"));
        print_line("request_type: ", json_object_get_string(answer, "request_type"));
        print_line("created_at:   ", json_object_get_string(answer, "created_at"));
        putchar('\n');
        struct table *t = table_new(5, headers);
        for (size_t i = 0; t != NULL && i < json_array_length(devices); i++) {
            const struct json_value *a = json_array_at(devices, i);
            char err[400] = "-";
            const struct json_value *first = json_array_at(json_object_find(a, "error_chain"), 0);
            if (first != NULL)
                describe_error(first, err, sizeof(err));
            const char *cells[] = {json_object_get_string(a, "udid"),
                                   json_object_get_string(a, "status"),
                                   json_object_get_string(a, "queued_at"),
                                   json_object_get_string(a, "result_at"), err};
            if (!table_add_row(t, cells)) {
                table_free(t);
                t = NULL;
            }
        }
        if (t == NULL) {
            rc = api_fail_nomem();
        } else {
            table_print(t, stdout);
            table_free(t);
        }
        bool truncated = false;
        if (json_get_bool(json_object_find(answer, "truncated"), &truncated) && truncated)
            fprintf(stderr,
                    "vouchctl: only the first %zu devices are shown (the server's "
                    "limit); ask for each device with 'vouchctl commands UDID --show'\n",
                    json_array_length(devices));
    }
    json_doc_free(doc);
    free(path);
    return rc;
}

/* `commands cancel UDID UUID` or `commands cancel --all UUID`. */
static int cancel_command(struct ctl *ctl)
{
    const char *uuid = ctl->args[ctl->nargs - 1];
    if (ctl->all ? ctl->nargs != 2 : ctl->nargs != 3)
        return ctl_usage_error("commands", ctl->all ? "cancel --all takes one COMMAND-UUID"
                                                    : "cancel takes UDID and COMMAND-UUID");
    char *esc = client_escape(ctl->client, uuid);
    char *path = NULL;
    if (esc != NULL && ctl->all)
        path = api_str_join("/v1/commands/", esc, (const char *)NULL);
    else if (esc != NULL) {
        char *suffix = api_str_join("/commands/", esc, (const char *)NULL);
        path = suffix != NULL ? api_udid_path(ctl, ctl->args[1], suffix) : NULL;
        free(suffix);
    }
    free(esc);
    if (path == NULL)
        return api_fail_nomem();
    struct json_doc *doc = NULL;
    int rc = api_call(ctl, "DELETE", path, NULL, 0, NULL, 0, &doc, NULL);
    const struct json_value *answer = rc == CTL_EXIT_OK ? json_doc_root(doc) : NULL;
    const struct json_value *canceled = json_object_find(answer, "canceled");
    int64_t n = 0;
    bool one = false;
    if (rc != CTL_EXIT_OK) {
        /* reported by api_call: 404 unknown, 409 already answered */
    } else if (ctl->all ? !json_get_int64(canceled, &n) : !json_get_bool(canceled, &one)) {
        rc = api_unexpected_shape(ctl, path, "an object with \"canceled\"");
    } else if (ctl->json) {
        rc = api_print_json(answer);
    } else if (ctl->all) {
        char line[256];
        snprintf(line, sizeof(line), "canceled on %" PRId64 " device%s: %s", n, n == 1 ? "" : "s",
                 uuid);
        print_line("", line);
    } else {
        char line[512];
        snprintf(line, sizeof(line), "canceled: %s on %s", uuid, ctl->args[1]);
        print_line("", line);
    }
    json_doc_free(doc);
    free(path);
    return rc;
}

int cmd_commands(struct ctl *ctl)
{
    static const char *const headers[] = {"COMMAND UUID", "REQUEST TYPE", "STATUS", "QUEUED AT",
                                          "RESULT AT"};
    if (ctl->nargs > 0 && strcmp(ctl->args[0], "cancel") == 0) {
        if (ctl->show != NULL)
            return ctl_usage_error("commands", "cancel and --show do not go together");
        return cancel_command(ctl);
    }
    if (ctl->all && ctl->show == NULL)
        return ctl_usage_error("commands", "--all goes with --show UUID or cancel");
    if (ctl->nargs != (ctl->all ? 0u : 1u))
        return ctl_usage_error("commands", ctl->all          ? "--all --show takes no UDID"
                                           : ctl->nargs == 0 ? "missing UDID"
                                                             : "one UDID only");
    if (ctl->show != NULL)
        return show_answers(ctl);
    struct json_doc *doc = NULL;
    const struct json_value *list;
    int rc = api_device_array_get(ctl, "/commands", "commands", &doc, &list);

    if (rc == CTL_EXIT_OK && list != NULL)
        rc = api_print_table(headers, sizeof(headers) / sizeof(*headers), list, commands_row);
    json_doc_free(doc);
    return rc;
}

/* The command templates of `enqueue --type`: a RequestType, a fresh CommandUUID, and no other
 * key but DeviceInformation's Queries (--queries, else DEFAULT_QUERIES). Commands with more to
 * say (a PIN, a profile) come from --file. */
static const char *const templates[] = {
    "DeviceInformation", "SecurityInfo",
    "ProfileList",       "InstalledApplicationList",
    "CertificateList",   "AvailableOSUpdates",
    "RestartDevice",     "ShutDownDevice",
    "DeviceLock",        "ProvisioningProfileList",
};
#define DEFAULT_QUERIES                                                                            \
    "DeviceName,OSVersion,BuildVersion,ProductName,Model,ModelName,SerialNumber,UDID"
#define QUERY_MAX 128

/* The template's plist into *root; a usage error (printed) otherwise. */
static int build_template(struct ctl *ctl, plist_t *root)
{
    const char *type = NULL;
    for (size_t i = 0; i < sizeof(templates) / sizeof(templates[0]) && type == NULL; i++)
        if (strcmp(ctl->type, templates[i]) == 0)
            type = templates[i];
    if (type == NULL)
        return ctl_usage_error("enqueue",
                               "no template for --type '%s' (see the list below "
                               "'vouchctl enqueue --help'; other commands: --file)",
                               ctl->type);
    bool info = strcmp(type, "DeviceInformation") == 0;
    if (ctl->queries != NULL && !info)
        return ctl_usage_error("enqueue", "--queries goes with --type DeviceInformation");
    char uuid[37];
    if (!command_new_uuid(uuid)) {
        fprintf(stderr, "vouchctl: no random bytes for a CommandUUID\n");
        return CTL_EXIT_FAILURE;
    }
    plist_t cmd = plist_new_dict();
    plist_dict_set_item(cmd, "RequestType", plist_new_string(type));
    if (info) {
        plist_t queries = plist_new_array();
        const char *list = ctl->queries != NULL ? ctl->queries : DEFAULT_QUERIES;
        for (const char *p = list;;) {
            size_t n = strcspn(p, ",");
            while (n > 0 && *p == ' ') {
                p++;
                n--;
            }
            while (n > 0 && p[n - 1] == ' ')
                n--;
            char query[QUERY_MAX + 1];
            if (n == 0 || n > QUERY_MAX || !mdm_utf8_valid(p, n)) {
                plist_free(queries);
                plist_free(cmd);
                return ctl_usage_error("enqueue", "--queries takes names separated by commas, "
                                                  "e.g. OSVersion,SerialNumber");
            }
            memcpy(query, p, n);
            query[n] = '\0';
            plist_array_append_item(queries, plist_new_string(query));
            p += strcspn(p, ",");
            if (*p == '\0')
                break;
            p++;
        }
        plist_dict_set_item(cmd, "Queries", queries);
    }
    *root = plist_new_dict();
    plist_dict_set_item(*root, "Command", cmd);
    plist_dict_set_item(*root, "CommandUUID", plist_new_string(uuid));
    return CTL_EXIT_OK;
}

/* Whether data is JSON (its first character that is no blank or BOM is '{'). */
static bool looks_like_json(const char *data, size_t len)
{
    size_t i = len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    return i < len && data[i] == '{';
}

/* The file's command into *root: a plist (XML or binary) or JSON (docs/api.md, "Command
 * answers": {"$data": ...} and {"$date": ...} for the plist types JSON lacks). Prints the
 * problem and returns false otherwise. */
static bool read_command_file(const char *file, const char *data, size_t len, plist_t *root)
{
    static const struct plist_json_limits plist_limits = {MDM_MAX_DEPTH, 1000000};
    static const struct json_limits json_limits = {ENQUEUE_MAX_FILE, MDM_MAX_DEPTH, 1000000};
    *root = NULL;
    if (len == 0 || len > UINT32_MAX) {
        fprintf(stderr, "vouchctl: %s: %s\n", file, len == 0 ? "empty file" : "too large");
        return false;
    }
    if (!looks_like_json(data, len)) {
        plist_from_memory(data, (uint32_t)len, root);
        if (*root == NULL)
            fprintf(stderr, "vouchctl: %s: not a property list, nor JSON\n", file);
        return *root != NULL;
    }
    struct json_doc *doc = NULL;
    struct json_parse_error perr;
    enum json_error e = json_parse(data, len, &json_limits, &doc, &perr);
    char why[300];
    if (e != JSON_OK)
        fprintf(stderr, "vouchctl: %s: not JSON (%s at byte %zu)\n", file, perr.message,
                perr.offset);
    else if (!plist_json_to_plist(json_doc_root(doc), &plist_limits, root, why, sizeof(why)))
        fprintf(stderr, "vouchctl: %s: %s\n", file, why);
    json_doc_free(doc);
    return *root != NULL;
}

/* Why root is no command (a dictionary with a Command dictionary holding a RequestType string
 * and, if there is one, a string CommandUUID), or NULL. */
static const char *command_problem(plist_t root)
{
    if (!PLIST_IS_DICT(root))
        return "not a dictionary at the top level";
    plist_t cmd = plist_dict_get_item(root, "Command");
    plist_t type = PLIST_IS_DICT(cmd) ? plist_dict_get_item(cmd, "RequestType") : NULL;
    plist_t uuid = plist_dict_get_item(root, "CommandUUID");
    const char *type_str = PLIST_IS_STRING(type) ? plist_get_string_ptr(type, NULL) : NULL;
    if (!PLIST_IS_DICT(cmd))
        return "no Command dictionary";
    if (type_str == NULL || type_str[0] == '\0')
        return "no RequestType string in the Command dictionary";
    if (uuid != NULL && !PLIST_IS_STRING(uuid))
        return "CommandUUID is not a string";
    return NULL;
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

    plist_t root = NULL;
    bool send_file = false; /* an XML plist file goes as it is, byte for byte */

    if ((ctl->file == NULL) == (ctl->type == NULL))
        return ctl_usage_error("enqueue", ctl->file == NULL
                                              ? "missing --file CMD or --type TYPE"
                                              : "--file and --type exclude each other");
    if (ctl->queries != NULL && ctl->type == NULL)
        return ctl_usage_error("enqueue", "--queries goes with --type DeviceInformation");
    for (size_t i = 0; i < ctl->nargs; i++) {
        if (ctl->args[i][0] == '\0' || strchr(ctl->args[i], ',') != NULL)
            return ctl_usage_error("enqueue", "invalid UDID '%s'", ctl->args[i]);
    }
    if (ctl->type != NULL) {
        if ((rc = build_template(ctl, &root)) != CTL_EXIT_OK)
            return rc;
        rc = CTL_EXIT_FAILURE;
    } else {
        if (!ctl_read_file(ctl->file, ENQUEUE_MAX_FILE, &data, &len))
            return CTL_EXIT_FAILURE;
        if (!read_command_file(ctl->file, data, len, &root))
            goto out;
        const char *problem = command_problem(root);
        if (problem != NULL) {
            fprintf(stderr, "vouchctl: %s: %s\n", ctl->file, problem);
            goto out;
        }
        send_file = !looks_like_json(data, len) && !plist_is_binary(data, (uint32_t)len);
    }
    if (!send_file) {
        plist_to_xml(root, &xml, &xml_len);
        if (xml == NULL) {
            fprintf(stderr, "vouchctl: cannot write the command as an XML property list\n");
            goto out;
        }
    }
    if (ctl->dry_run) {
        for (size_t i = 0; i < ctl->nargs; i++) {
            char *safe = output_sanitize(ctl->args[i]);
            printf("would queue %s for %s\n", ctl->file != NULL ? ctl->file : ctl->type,
                   safe != NULL ? safe : "?");
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
    plist_free(root);
    free(data);
    free(path);
    return rc;
}
