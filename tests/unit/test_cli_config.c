/* Unit tests of cli/ctl_config.c: vouchctl.conf's sections, its default server, and errors that
 * name their line. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_config.h"

static const char two_servers[] = "# servers\n"
                                  "default = lab\n"
                                  "\n"
                                  "[server prod]\n"
                                  "url = https://mdm.example.com\n"
                                  "token_file = prod.token\n"
                                  "ca_file = /etc/vouch/ca.pem\n"
                                  "\n"
                                  "  [server lab]  \n"
                                  "url = http://127.0.0.1:8080\n"
                                  "token_file = ~/lab.token\n";

static enum ctl_config_result parse(const char *text, const char *name, struct ctl_config_server *s,
                                    char *err, size_t err_size)
{
    return ctl_config_parse(text, strlen(text), name, s, err, err_size);
}

static void test_named_server(void **state)
{
    struct ctl_config_server s;
    char err[256] = "";
    (void)state;
    assert_int_equal(parse(two_servers, "prod", &s, err, sizeof(err)), CTL_CONFIG_FOUND);
    assert_string_equal(s.name, "prod");
    assert_string_equal(s.url, "https://mdm.example.com");
    assert_string_equal(s.token_file, "prod.token");
    assert_string_equal(s.ca_file, "/etc/vouch/ca.pem");
    ctl_config_server_clear(&s);
}

static void test_default_server(void **state)
{
    struct ctl_config_server s;
    char err[256] = "";
    (void)state;
    assert_int_equal(parse(two_servers, NULL, &s, err, sizeof(err)), CTL_CONFIG_FOUND);
    assert_string_equal(s.name, "lab");
    assert_string_equal(s.url, "http://127.0.0.1:8080");
    assert_null(s.ca_file);
    ctl_config_server_clear(&s);
}

static void test_no_default(void **state)
{
    struct ctl_config_server s;
    char err[256] = "";
    (void)state;
    assert_int_equal(parse("[server a]\nurl = http://a\n", NULL, &s, err, sizeof(err)),
                     CTL_CONFIG_NO_SERVER);
    assert_null(s.url);
    assert_int_equal(parse("", NULL, &s, err, sizeof(err)), CTL_CONFIG_NO_SERVER);
}

static void test_unknown_server(void **state)
{
    struct ctl_config_server s;
    char err[256] = "";
    (void)state;
    assert_int_equal(parse(two_servers, "staging", &s, err, sizeof(err)), CTL_CONFIG_UNKNOWN);
    assert_non_null(strstr(err, "no [server staging] section"));
    assert_int_equal(parse("default = gone\n[server a]\n", NULL, &s, err, sizeof(err)),
                     CTL_CONFIG_UNKNOWN);
    assert_non_null(strstr(err, "default"));
}

/* Each mistake is found wherever it is, even in a section not asked for, with its line. */
static void test_errors_name_their_line(void **state)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"[server a]\nurl = http://a\n[srv b]\n", "line 3:"},
        {"[server a]\nurl = http://a\n[server a]\n", "line 3: a second [server a]"},
        {"[server]\n", "line 1:"},
        {"[server a b]\n", "line 1:"},
        {"[server a]\nurl = http://a\n\n[server b]\ntoken = x\n", "line 5:"},
        {"url = http://a\n", "line 1:"},
        {"[server a]\nno equals sign\n", "line 2:"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ctl_config_server s;
        char err[256] = "";
        assert_int_equal(parse(cases[i].text, "a", &s, err, sizeof(err)), CTL_CONFIG_BAD_FILE);
        if (strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].needle);
        assert_null(s.url);
    }
}

static void collect(void *arg, const char *name)
{
    char *names = arg;
    size_t used = strlen(names);
    int m = snprintf(names + used, 64 - used, "%s,", name);
    assert_true(m > 0 && (size_t)m < 64 - used);
}

static void test_list_servers(void **state)
{
    char names[64] = "";
    (void)state;
    assert_true(ctl_config_list_servers(two_servers, strlen(two_servers), collect, names));
    assert_string_equal(names, "prod,lab,");
    assert_false(ctl_config_list_servers("[bad\n", 5, collect, names));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_named_server),
        cmocka_unit_test(test_default_server),
        cmocka_unit_test(test_no_default),
        cmocka_unit_test(test_unknown_server),
        cmocka_unit_test(test_errors_name_their_line),
        cmocka_unit_test(test_list_servers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
