/*
 * `vouchctl tokens`: the admin API's named tokens (GET /v1/tokens), `tokens create` (POST
 * /v1/tokens) and `tokens revoke` (POST /v1/tokens/{name}/revoke); and `vouchctl audit` (GET
 * /v1/audit), what the admin API's callers did.
 */
#include "vouchctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json.h"
#include "output.h"

/* What the server accepts: names of 1 to 64 of these, audit pages of 1 to 1000. */
#define TOKEN_NAME_MAX 64
#define TOKEN_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define AUDIT_LIMIT_MAX 1000
#define AUDIT_ID_MAX_DIGITS 18

static bool token_name_ok(const char *name)
{
    size_t len = strlen(name);
    return len > 0 && len <= TOKEN_NAME_MAX && strspn(name, TOKEN_NAME_CHARS) == len;
}

static bool scope_ok(const char *scope)
{
    return strcmp(scope, "admin") == 0 || strcmp(scope, "read") == 0 || strcmp(scope, "trust") == 0;
}

static bool tokens_row(struct table *t, const struct json_value *token)
{
    const struct json_value *revoked_at = json_object_find(token, "revoked_at");
    bool revoked = revoked_at != NULL && !json_value_is_null(revoked_at);
    const char *cells[] = {
        json_object_get_string(token, "name"),
        json_object_get_string(token, "scope"),
        json_object_get_string(token, "created_at"),
        json_object_get_string(token, "created_by"),
        revoked ? "revoked" : "active",
        json_object_get_string(token, "revoked_at"),
    };
    return table_add_row(t, cells);
}

/* GET /v1/tokens */
static int tokens_list(struct ctl *ctl)
{
    static const char *const headers[] = {"NAME", "SCOPE", "CREATED", "BY", "STATE", "REVOKED"};
    static const char path[] = "/v1/tokens";
    struct json_doc *doc = NULL;
    int rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *list = json_doc_root(doc);
    if (json_value_kind(list) != JSON_KIND_ARRAY) {
        rc = api_unexpected_shape(ctl, path, "a JSON array of tokens");
        goto out;
    }
    if (ctl->json)
        rc = api_print_json(list);
    else if (json_array_length(list) == 0)
        fprintf(stderr, "no API tokens (besides the server's admin_token, if it has one)\n");
    else
        rc = api_print_table(headers, sizeof(headers) / sizeof(*headers), list, tokens_row);
out:
    json_doc_free(doc);
    return rc;
}

/* POST /v1/tokens {"name", "scope"}: the token goes to stdout alone, the warning to stderr. */
static int tokens_create(struct ctl *ctl)
{
    static const char path[] = "/v1/tokens";
    struct json_writer *w = NULL;
    struct json_doc *doc = NULL;
    const char *body;
    size_t body_len;
    int rc;

    if (ctl->nargs < 2)
        return ctl_usage_error("tokens", "tokens create needs a NAME");
    if (!token_name_ok(ctl->args[1]))
        return ctl_usage_error("tokens",
                               "'%s' is not a token name (1 to %d letters, digits, '.', '_' "
                               "or '-')",
                               ctl->args[1], TOKEN_NAME_MAX);
    if (strcmp(ctl->args[1], "admin_token") == 0)
        return ctl_usage_error("tokens",
                               "admin_token is the name of the server's configured token");
    if (ctl->scope == NULL)
        return ctl_usage_error("tokens", "tokens create needs --scope admin, read or trust");
    if (!scope_ok(ctl->scope))
        return ctl_usage_error("tokens", "unknown scope '%s' (use admin, read or trust)",
                               ctl->scope);
    if ((w = json_writer_new(1024, 0)) == NULL)
        return api_fail_nomem();
    if (!json_write_begin_object(w) || !json_write_key(w, "name") ||
        !json_write_string(w, ctl->args[1]) || !json_write_key(w, "scope") ||
        !json_write_string(w, ctl->scope) || !json_write_end_object(w) ||
        !json_writer_finish(w, &body, &body_len)) {
        rc = api_fail_nomem();
        goto out;
    }
    rc = api_call(ctl, "POST", path, body, body_len, "application/json", 0, &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *created = json_doc_root(doc);
    const char *token = json_object_get_string(created, "token");
    if (token == NULL) {
        rc = api_unexpected_shape(ctl, path, "an object with the new token");
        goto out;
    }
    if (ctl->json) {
        rc = api_print_json(created);
    } else {
        char *safe = output_sanitize(token);
        if (safe == NULL) {
            rc = api_fail_nomem();
            goto out;
        }
        printf("%s\n", safe);
        free(safe);
    }
    fprintf(stderr,
            "vouchctl: token %s (scope %s) created. This is the only time it is shown: the\n"
            "server keeps only its SHA-256. Store it now, where only its user can read it.\n",
            ctl->args[1], ctl->scope);
out:
    json_doc_free(doc);
    json_writer_free(w);
    return rc;
}

/* POST /v1/tokens/{name}/revoke */
static int tokens_revoke(struct ctl *ctl)
{
    char path[TOKEN_NAME_MAX + 32];
    struct json_doc *doc = NULL;

    if (ctl->nargs < 2)
        return ctl_usage_error("tokens", "tokens revoke needs a NAME");
    if (!token_name_ok(ctl->args[1]))
        return ctl_usage_error("tokens", "'%s' is not a token name", ctl->args[1]);
    snprintf(path, sizeof(path), "/v1/tokens/%s/revoke", ctl->args[1]);
    int rc = api_call(ctl, "POST", path, "", 0, NULL, 0, &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *token = json_doc_root(doc);
    const char *revoked_at = json_object_get_string(token, "revoked_at");
    if (json_value_kind(token) != JSON_KIND_OBJECT) {
        rc = api_unexpected_shape(ctl, path, "a token object");
    } else if (ctl->json) {
        rc = api_print_json(token);
    } else {
        char *safe = output_sanitize(revoked_at != NULL ? revoked_at : "?");
        printf("token %s: revoked at %s\n", ctl->args[1], safe != NULL ? safe : "?");
        free(safe);
    }
    if (rc == CTL_EXIT_OK && revoked_at == NULL) {
        fprintf(stderr, "vouchctl: the server answered, but the token is not revoked\n");
        rc = CTL_EXIT_FAILURE;
    }
out:
    json_doc_free(doc);
    return rc;
}

int cmd_tokens(struct ctl *ctl)
{
    const char *action = ctl->nargs > 0 ? ctl->args[0] : NULL;

    if (action != NULL && strcmp(action, "create") == 0)
        return tokens_create(ctl);
    if (ctl->scope != NULL)
        return ctl_usage_error("tokens", "--scope goes with tokens create");
    if (action != NULL && strcmp(action, "revoke") == 0)
        return tokens_revoke(ctl);
    if (action != NULL)
        return ctl_usage_error("tokens", "unknown tokens command '%s' (use create or revoke)",
                               action);
    return tokens_list(ctl);
}

static bool audit_row(struct table *t, const struct json_value *entry)
{
    const char *cells[] = {
        output_scalar(json_object_find(entry, "id")), json_object_get_string(entry, "at"),
        json_object_get_string(entry, "token"),       json_object_get_string(entry, "scope"),
        json_object_get_string(entry, "method"),      json_object_get_string(entry, "path"),
        json_object_get_string(entry, "client"),
    };
    return table_add_row(t, cells);
}

static bool digits_ok(const char *text, size_t max_digits)
{
    size_t len = strlen(text);
    return len > 0 && len <= max_digits && strspn(text, "0123456789") == len && text[0] != '0';
}

/* GET /v1/audit?limit=N[&before=ID] */
int cmd_audit(struct ctl *ctl)
{
    static const char *const headers[] = {"ID", "AT", "TOKEN", "SCOPE", "METHOD", "PATH", "CLIENT"};
    const char *limit = ctl->limit != NULL ? ctl->limit : "100";
    if (!digits_ok(limit, 4) || strtol(limit, NULL, 10) > AUDIT_LIMIT_MAX)
        return ctl_usage_error("audit", "--limit must be a whole number from 1 to %d",
                               AUDIT_LIMIT_MAX);
    if (ctl->before != NULL && !digits_ok(ctl->before, AUDIT_ID_MAX_DIGITS))
        return ctl_usage_error("audit", "--before must be an audit entry ID");
    char path[96];
    snprintf(path, sizeof(path), "/v1/audit?limit=%s%s%s", limit, ctl->before ? "&before=" : "",
             ctl->before ? ctl->before : "");
    struct json_doc *doc = NULL;
    int rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
    if (rc != CTL_EXIT_OK)
        goto out;
    const struct json_value *list = json_doc_root(doc);
    if (json_value_kind(list) != JSON_KIND_ARRAY) {
        rc = api_unexpected_shape(ctl, path, "a JSON array of audit entries");
        goto out;
    }
    if (ctl->json)
        rc = api_print_json(list);
    else if (json_array_length(list) == 0)
        fprintf(stderr, "no audit entries\n");
    else
        rc = api_print_table(headers, sizeof(headers) / sizeof(*headers), list, audit_row);
out:
    json_doc_free(doc);
    return rc;
}
