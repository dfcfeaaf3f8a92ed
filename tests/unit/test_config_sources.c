/* Unit tests of server/config.c, where a configuration comes from: the defaults, the key = value
 * file (layout, later lines, length, errors), VOUCH_ environment overrides, config_clear(), and
 * what touches the disk: config_load() and config_check_runtime()'s start-up refusals.
 *
 * Shared helpers: config_fixture.h. */
#include "config_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* ---- Defaults ---- */

static void test_defaults(void **state)
{
    struct config cfg;
    parse_ok(&cfg, NULL, NULL);
    assert_string_equal(cfg.listen, CONFIG_DEFAULT_LISTEN);
    assert_string_equal(cfg.apns_url, CONFIG_DEFAULT_APNS_URL);
    assert_string_equal(cfg.log_level, "info");
    assert_int_equal(cfg.max_body_bytes, 1024 * 1024);
    assert_int_equal(cfg.db_pool_size, 4);
    assert_int_equal(cfg.http_timeout, 30);
    assert_int_equal(cfg.request_timeout, 30);
    assert_int_equal(cfg.max_connections, 10000);
    assert_int_equal(cfg.admin_login_limit, 10);
    assert_int_equal(cfg.result_retention, 30 * 86400);
    assert_int_equal(cfg.attestation_retention, 365 * 86400);
    assert_null(cfg.database_url);
    assert_null(cfg.public_url);
    assert_null(cfg.identity_ca);
    assert_null(cfg.cert_header);
    assert_null(cfg.attestation_roots);
    assert_null(cfg.apns_cert);
    assert_null(cfg.apns_key);
    assert_null(cfg.apns_ca);
    assert_null(cfg.webhook_url);
    assert_null(cfg.webhook_secret);
    assert_null(cfg.admin_token);
    assert_null(cfg.trusted_proxies);
    assert_int_equal(cfg.proxy_count, 0);
    assert_false(cfg.webhook_allow_http);
    config_clear(&cfg);

    /* An empty file and an empty environment give the same defaults. */
    char *empty_env[] = {NULL};
    parse_ok(&cfg, "", empty_env);
    assert_string_equal(cfg.listen, CONFIG_DEFAULT_LISTEN);
    assert_int_equal(cfg.db_pool_size, 4);
    config_clear(&cfg);
}

/* ---- The file ---- */

static void test_file_every_key(void **state)
{
    static const char text[] = "listen = 0.0.0.0:9443\n"
                               "database_url = postgres://vouch@db/vouch?sslmode=require\n"
                               "public_url = https://mdm.example.com\n"
                               "identity_ca = /etc/vouch/identity-ca.pem\n"
                               "cert_header = X-Client-Cert\n"
                               "trusted_proxies = 10.0.0.5, ::1\n"
                               "attestation_roots = /etc/vouch/roots.pem\n"
                               "apns_cert = /etc/vouch/push.pem\n"
                               "apns_key = /etc/vouch/push.key\n"
                               "apns_url = https://api.sandbox.push.apple.com\n"
                               "apns_ca = /etc/ssl/certs/ca.pem\n"
                               "webhook_url = https://hooks.example.com/mdm\n"
                               "webhook_secret = s3cret\n"
                               "webhook_allow_http = true\n"
                               "admin_token = " TOKEN "\n"
                               "log_level = debug\n"
                               "max_body_bytes = 2048\n"
                               "db_pool_size = 64\n"
                               "http_timeout = 3600\n"
                               "result_retention = 7d\n";
    struct config cfg;
    parse_ok(&cfg, text, NULL);
    assert_string_equal(cfg.listen, "0.0.0.0:9443");
    /* Only the first '=' separates key and value. */
    assert_string_equal(cfg.database_url, "postgres://vouch@db/vouch?sslmode=require");
    assert_string_equal(cfg.public_url, "https://mdm.example.com");
    assert_string_equal(cfg.identity_ca, "/etc/vouch/identity-ca.pem");
    assert_string_equal(cfg.cert_header, "X-Client-Cert");
    assert_string_equal(cfg.trusted_proxies, "10.0.0.5, ::1");
    assert_int_equal(cfg.proxy_count, 2);
    assert_true(cfg.webhook_allow_http);
    assert_string_equal(cfg.attestation_roots, "/etc/vouch/roots.pem");
    assert_string_equal(cfg.apns_cert, "/etc/vouch/push.pem");
    assert_string_equal(cfg.apns_key, "/etc/vouch/push.key");
    assert_string_equal(cfg.apns_url, "https://api.sandbox.push.apple.com");
    assert_string_equal(cfg.apns_ca, "/etc/ssl/certs/ca.pem");
    assert_string_equal(cfg.webhook_url, "https://hooks.example.com/mdm");
    assert_string_equal(cfg.webhook_secret, "s3cret");
    assert_string_equal(cfg.admin_token, TOKEN);
    assert_string_equal(cfg.log_level, "debug");
    assert_int_equal(cfg.max_body_bytes, 2048);
    assert_int_equal(cfg.db_pool_size, 64);
    assert_int_equal(cfg.http_timeout, 3600);
    assert_int_equal(cfg.result_retention, 7 * 86400);
    config_clear(&cfg);
}

static void test_file_layout(void **state)
{
    /* Comments, blank lines, blanks around '=', tabs, CRLF, no final newline. */
    static const char text[] = "# vouchd configuration\n"
                               "\n"
                               "   # an indented comment = not a key\n"
                               "\t\n"
                               "  listen   =   10.0.0.1:8443   \n"
                               "log_level=warn\r\n"
                               "\tdb_pool_size\t=\t8\t\r\n"
                               "   \r\n"
                               "public_url =https://a.example\n"
                               "webhook_secret= spaces inside stay \n"
                               "http_timeout = 45";
    struct config cfg;
    parse_ok(&cfg, text, NULL);
    assert_string_equal(cfg.listen, "10.0.0.1:8443");
    assert_string_equal(cfg.log_level, "warn");
    assert_int_equal(cfg.db_pool_size, 8);
    assert_string_equal(cfg.public_url, "https://a.example");
    assert_string_equal(cfg.webhook_secret, "spaces inside stay");
    assert_int_equal(cfg.http_timeout, 45);
    config_clear(&cfg);
}

static void test_file_later_line_wins(void **state)
{
    struct config cfg;
    parse_ok(&cfg, "listen = a:1\nlisten = b:2\nlog_level = error\nlog_level = info\n", NULL);
    assert_string_equal(cfg.listen, "b:2");
    assert_string_equal(cfg.log_level, "info");
    config_clear(&cfg);
}

static void test_file_honours_length(void **state)
{
    /* text_len bounds the text: the second line is outside it and must not be read. */
    static const char text[] = "listen = a:1\nbogus = 1\n";
    struct config cfg;
    char err[256] = "";
    assert_true(config_parse(&cfg, text, strlen("listen = a:1\n"), NULL, err, sizeof(err)));
    assert_string_equal(cfg.listen, "a:1");
    config_clear(&cfg);

    /* Cut in the middle of a value: only the bytes given are the value. */
    assert_true(config_parse(&cfg, text, strlen("listen = a"), NULL, err, sizeof(err)));
    assert_string_equal(cfg.listen, "a");
    config_clear(&cfg);
}

static void test_file_errors(void **state)
{
    fail_text("listen = a:1\n\n# c\nbogus = 1\n", "bogus", "line 4");
    fail_text("Listen = a:1\n", "Listen", "line 1");
    fail_text("= value\n", "line 1", "unknown key");
    fail_text("listen = a:1\njust some words\n", "line 2", "=");
    fail_text("listen\n", "line 1", "=");
    /* Anything that is not printable is sanitised in the message, but the line is named. */
    fail_text("\nbad\x01key = 1\n", "line 2", "bad?key");

    /* A NUL byte inside the text. */
    static const char with_nul[] = "listen = a\0b\n";
    const char *needles[] = {"line 1", NULL};
    parse_fail(with_nul, sizeof(with_nul) - 1, NULL, needles);

    /* A value longer than the parser keeps. */
    size_t n = 5000;
    char *big = malloc(n + 32);
    assert_non_null(big);
    int k = snprintf(big, n + 32, "webhook_url = ");
    memset(big + k, 'x', n);
    big[k + (int)n] = '\0';
    fail_text(big, "webhook_url", "line 1");
    free(big);
}

/* ---- The environment ---- */

static void test_env_overrides_file(void **state)
{
    char *envp[] = {
        "PATH=/usr/bin:/bin",
        "HOME=/root",
        "VOUCHER=not ours", /* prefix is VOUCH_, not VOUCH */
        "VOUCH_LISTEN=[::]:9000",
        "VOUCH_DB_POOL_SIZE=16",
        "VOUCH_RESULT_RETENTION=12h",
        "VOUCH_DATABASE_URL=host=db user=vouch", /* '=' inside the value */
        "VOUCH_URL=http://127.0.0.1:8080",       /* vouchctl's, ignored */
        "VOUCH_BUILD_DIR=/tmp/build",            /* the tests', ignored */
        "VOUCH_NO_EQUALS_SIGN",                  /* not NAME=value: ignored */
        NULL,
    };
    struct config cfg;
    parse_ok(&cfg,
             "listen = 1.2.3.4:5\ndb_pool_size = 2\nhttp_timeout = 10\n"
             "database_url = postgres://file\n",
             envp);
    assert_string_equal(cfg.listen, "[::]:9000");
    assert_int_equal(cfg.db_pool_size, 16);
    assert_int_equal(cfg.result_retention, 12 * 3600);
    assert_string_equal(cfg.database_url, "host=db user=vouch");
    /* Keys the environment does not name keep the file's value. */
    assert_int_equal(cfg.http_timeout, 10);
    config_clear(&cfg);

    /* Environment alone, without a file. */
    char *envp2[] = {"VOUCH_HTTP_TIMEOUT=99", NULL};
    parse_ok(&cfg, NULL, envp2);
    assert_int_equal(cfg.http_timeout, 99);
    assert_string_equal(cfg.listen, CONFIG_DEFAULT_LISTEN);
    config_clear(&cfg);
}

static void test_env_errors(void **state)
{
    char *unknown[] = {"VOUCH_LISTEN=x:1", "VOUCH_BOGUS_KEY=1", NULL};
    fail_env(unknown, "VOUCH_BOGUS_KEY", "unknown");

    char *bad_number[] = {"VOUCH_DB_POOL_SIZE=lots", NULL};
    fail_env(bad_number, "VOUCH_DB_POOL_SIZE", "db_pool_size");

    char *out_of_range[] = {"VOUCH_HTTP_TIMEOUT=0", NULL};
    fail_env(out_of_range, "VOUCH_HTTP_TIMEOUT", "http_timeout");

    char *bad_duration[] = {"VOUCH_RESULT_RETENTION=1w", NULL};
    fail_env(bad_duration, "VOUCH_RESULT_RETENTION", "result_retention");

    /* An error in the environment also fails a good file, and the struct is cleared. */
    const char *needles[] = {"VOUCH_MAX_BODY_BYTES", NULL};
    char *too_small[] = {"VOUCH_MAX_BODY_BYTES=1", NULL};
    static const char text[] = "listen = a:1\nadmin_token = " TOKEN "\n";
    parse_fail(text, strlen(text), too_small, needles);

    /* A very long unknown name is refused, not overflowed. */
    char long_name[300];
    memcpy(long_name, "VOUCH_", 6);
    memset(long_name + 6, 'A', 250);
    memcpy(long_name + 256, "=1", 3);
    char *long_env[] = {long_name, NULL};
    fail_env(long_env, "VOUCH_AAAA", "unknown");
}

/* ---- Clearing ---- */

static void test_clear(void **state)
{
    struct config cfg;
    char *envp[] = {"VOUCH_WEBHOOK_SECRET=w", NULL};
    parse_ok(&cfg,
             "listen = l:1\ndatabase_url = d\nadmin_token = " TOKEN "\nlog_level = debug\n"
             "trusted_proxies = 10.0.0.1\n",
             envp);
    assert_int_equal(cfg.proxy_count, 1);
    config_clear(&cfg);
    assert_null(cfg.listen);
    assert_null(cfg.database_url);
    assert_null(cfg.admin_token);
    assert_null(cfg.log_level);
    assert_null(cfg.webhook_secret);
    assert_null(cfg.apns_url);
    assert_null(cfg.trusted_proxies);
    assert_int_equal(cfg.proxy_count, 0);
    /* Clearing twice is harmless. */
    config_clear(&cfg);
    assert_null(cfg.listen);
}

/* ---- config_load and config_check_runtime (touch the disk) ---- */

/* config_load reads the real environment: keep the caller's VOUCH_ variables out of it. */
static void unset_vouch_env(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; e != NULL && *e != NULL; e++) {
            if (strncmp(*e, "VOUCH_", 6) == 0) {
                const char *eq = strchr(*e, '=');
                size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
                if (len >= sizeof(name))
                    len = sizeof(name) - 1;
                memcpy(name, *e, len);
                name[len] = '\0';
                break;
            }
        }
        if (name[0] == '\0')
            return;
        assert_int_equal(unsetenv(name), 0);
    }
}

static char *write_temp(const char *text, size_t len)
{
    char *path = strdup("/tmp/vouch-test-config-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    close(fd);
    return path;
}

static void test_load(void **state)
{
    unset_vouch_env();
    struct config cfg;
    char err[512] = "";

    static const char text[] = "listen = 127.0.0.1:9999\nhttp_timeout = 12\n";
    char *path = write_temp(text, strlen(text));
    assert_int_equal(setenv("VOUCH_HTTP_TIMEOUT", "13", 1), 0);
    bool ok = config_load(&cfg, path, err, sizeof(err));
    if (!ok)
        print_error("config_load: %s\n", err);
    assert_true(ok);
    assert_string_equal(cfg.listen, "127.0.0.1:9999");
    assert_int_equal(cfg.http_timeout, 13); /* environ wins */
    config_clear(&cfg);
    assert_int_equal(unsetenv("VOUCH_HTTP_TIMEOUT"), 0);
    unlink(path);

    /* A missing file names the path. */
    assert_false(config_load(&cfg, path, err, sizeof(err)));
    assert_non_null(strstr(err, path));
    free(path);

    /* A file over CONFIG_MAX_FILE_BYTES is refused. */
    size_t big_len = CONFIG_MAX_FILE_BYTES + 1;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, '\n', big_len);
    path = write_temp(big, big_len);
    free(big);
    err[0] = '\0';
    assert_false(config_load(&cfg, path, err, sizeof(err)));
    assert_non_null(strstr(err, path));
    unlink(path);
    free(path);

    /* A file of exactly CONFIG_MAX_FILE_BYTES is read. */
    big = malloc(CONFIG_MAX_FILE_BYTES);
    assert_non_null(big);
    memset(big, '\n', CONFIG_MAX_FILE_BYTES);
    static const char last[] = "db_pool_size = 9\n";
    memcpy(big + CONFIG_MAX_FILE_BYTES - strlen(last), last, strlen(last));
    path = write_temp(big, CONFIG_MAX_FILE_BYTES);
    free(big);
    assert_true(config_load(&cfg, path, err, sizeof(err)));
    assert_int_equal(cfg.db_pool_size, 9);
    config_clear(&cfg);
    unlink(path);
    free(path);

    /* A bad key in the file fails the load and names it. */
    static const char bad[] = "listen = x:1\nnope = 2\n";
    path = write_temp(bad, strlen(bad));
    assert_false(config_load(&cfg, path, err, sizeof(err)));
    assert_non_null(strstr(err, "nope"));
    assert_non_null(strstr(err, "line 2"));
    unlink(path);
    free(path);
}

static void test_check_runtime(void **state)
{
    struct config cfg;
    char err[512] = "";
    char *readable = write_temp("x", 1);

    parse_ok(&cfg, "identity_ca = /dev/null\n", NULL);
    assert_false(config_check_runtime(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "database_url"));
    config_clear(&cfg);

    parse_ok(&cfg, "database_url = postgres://x\n", NULL);
    assert_false(config_check_runtime(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "identity_ca"));
    config_clear(&cfg);

    char text[512];
    snprintf(text, sizeof(text), "database_url = postgres://x\nidentity_ca = %s\n", readable);
    parse_ok(&cfg, text, NULL);
    assert_true(config_check_runtime(&cfg, err, sizeof(err)));
    config_clear(&cfg);

    snprintf(text, sizeof(text),
             "database_url = postgres://x\nidentity_ca = %s\napns_key = /nonexistent/vouch.key\n",
             readable);
    parse_ok(&cfg, text, NULL);
    assert_false(config_check_runtime(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "apns_key"));
    assert_non_null(strstr(err, "/nonexistent/vouch.key"));
    config_clear(&cfg);

    parse_ok(&cfg, "database_url = postgres://x\nidentity_ca = /nonexistent/ca.pem\n", NULL);
    assert_false(config_check_runtime(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "identity_ca"));
    config_clear(&cfg);

    unlink(readable);
    free(readable);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_every_key),
        cmocka_unit_test(test_file_layout),
        cmocka_unit_test(test_file_later_line_wins),
        cmocka_unit_test(test_file_honours_length),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_env_overrides_file),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_check_runtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
