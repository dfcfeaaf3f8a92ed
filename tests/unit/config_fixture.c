/*
 * config_fixture: see config_fixture.h.
 */
#include "config_fixture.h"

#include <stdio.h>
#include <string.h>

/* Parses text (and env) that must be accepted. */
void parse_ok(struct config *cfg, const char *text, char *const *envp)
{
    char err[256] = "";
    bool ok = config_parse(cfg, text, text ? strlen(text) : 0, envp, err, sizeof(err));
    if (!ok)
        print_error("unexpected config error: %s\nfor:\n%s\n", err, text ? text : "(null)");
    assert_true(ok);
}

/* Parses text (and env) that must be refused; every substring in `needles` (NULL-terminated)
 * must appear in the message, and the struct must be left cleared. */
void parse_fail(const char *text, size_t text_len, char *const *envp, const char *const *needles)
{
    struct config cfg;
    char err[256] = "";
    bool ok = config_parse(&cfg, text, text_len, envp, err, sizeof(err));
    if (ok)
        print_error("config accepted, expected an error for:\n%.*s\n", (int)text_len,
                    text ? text : "(null)");
    assert_false(ok);
    assert_true(err[0] != '\0');
    for (const char *const *n = needles; *n != NULL; n++) {
        if (strstr(err, *n) == NULL)
            print_error("error message '%s' does not contain '%s'\n", err, *n);
        assert_non_null(strstr(err, *n));
    }
    /* "cfg is then cleared" */
    assert_null(cfg.listen);
    assert_null(cfg.apns_url);
    assert_null(cfg.log_level);
    assert_null(cfg.database_url);
    assert_null(cfg.admin_token);
}

void fail_text(const char *text, const char *n1, const char *n2)
{
    const char *needles[] = {n1, n2, NULL};
    parse_fail(text, strlen(text), NULL, needles);
}

void fail_env(char *const *envp, const char *n1, const char *n2)
{
    const char *needles[] = {n1, n2, NULL};
    parse_fail(NULL, 0, envp, needles);
}
