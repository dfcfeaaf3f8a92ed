/* Unit tests of server/config.c: defaults, the key = value file, VOUCH_ environment overrides,
 * value checking and durations, the start-up refusals, trusted_proxies and the X-Forwarded-For
 * rule. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

extern char **environ;

/* The shortest admin_token accepted (CONFIG_MIN_ADMIN_TOKEN characters). */
#define TOKEN "0123456789abcdef0123456789abcdef"

/* Parses text (and env) that must be accepted. */
static void parse_ok(struct config *cfg, const char *text, char *const *envp)
{
    char err[256] = "";
    bool ok = config_parse(cfg, text, text ? strlen(text) : 0, envp, err, sizeof(err));
    if (!ok)
        print_error("unexpected config error: %s\nfor:\n%s\n", err, text ? text : "(null)");
    assert_true(ok);
}

/* Parses text (and env) that must be refused; every substring in `needles` (NULL-terminated)
 * must appear in the message, and the struct must be left cleared. */
static void parse_fail(const char *text, size_t text_len, char *const *envp,
                       const char *const *needles)
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

static void fail_text(const char *text, const char *n1, const char *n2)
{
    const char *needles[] = {n1, n2, NULL};
    parse_fail(text, strlen(text), NULL, needles);
}

static void fail_env(char *const *envp, const char *n1, const char *n2)
{
    const char *needles[] = {n1, n2, NULL};
    parse_fail(NULL, 0, envp, needles);
}

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

static void test_numbers(void **state)
{
    struct config cfg;

    /* Bounds are inclusive. */
    parse_ok(&cfg, "db_pool_size = 1\nhttp_timeout = 1\nmax_body_bytes = 1024\n", NULL);
    assert_int_equal(cfg.db_pool_size, 1);
    assert_int_equal(cfg.http_timeout, 1);
    assert_int_equal(cfg.max_body_bytes, 1024);
    config_clear(&cfg);
    parse_ok(&cfg, "max_body_bytes = 67108864\nresult_retention = 3650d\n", NULL);
    assert_int_equal(cfg.max_body_bytes, 64u << 20);
    assert_int_equal(cfg.result_retention, 3650u * 86400);
    config_clear(&cfg);
    parse_ok(&cfg, "result_retention = 1h\n", NULL);
    assert_int_equal(cfg.result_retention, 3600);
    config_clear(&cfg);
    parse_ok(&cfg, "result_retention = 3600\n", NULL);
    assert_int_equal(cfg.result_retention, 3600);
    config_clear(&cfg);

    /* Not whole numbers. */
    static const char *const bad[] = {
        "abc", "-1", "+4", "4x", "0x10", "4.0", "1e3", "", "99999999999999999999999", "4 4"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "\ndb_pool_size = %s\n", bad[i]);
        fail_text(line, "db_pool_size", "line 2");
        snprintf(line, sizeof(line), "max_body_bytes = %s\n", bad[i]);
        fail_text(line, "max_body_bytes", "line 1");
        snprintf(line, sizeof(line), "result_retention = %s\n", bad[i]);
        fail_text(line, "result_retention", "line 1");
    }

    /* Out of range. */
    fail_text("db_pool_size = 0\n", "db_pool_size", "range");
    fail_text("db_pool_size = 65\n", "db_pool_size", "range");
    fail_text("db_pool_size = 4294967297\n", "db_pool_size", "range");
    fail_text("http_timeout = 0\n", "http_timeout", "range");
    fail_text("http_timeout = 3601\n", "http_timeout", "range");
    fail_text("max_body_bytes = 1023\n", "max_body_bytes", "range");
    fail_text("max_body_bytes = 67108865\n", "max_body_bytes", "range");
    fail_text("result_retention = 59m\n", "result_retention", "range");
    fail_text("result_retention = 3599\n", "result_retention", "range");
    fail_text("result_retention = 3651d\n", "result_retention", "range");
    fail_text("result_retention = 18446744073709551615\n", "result_retention", "range");
}

static void test_log_level(void **state)
{
    static const char *const good[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "log_level = %s\n", good[i]);
        struct config cfg;
        parse_ok(&cfg, line, NULL);
        assert_string_equal(cfg.log_level, good[i]);
        config_clear(&cfg);
    }
    static const char *const bad[] = {"verbose", "INFO", "", "warning", "info debug", "0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "listen = x:1\nlog_level = %s\n", bad[i]);
        fail_text(line, "log_level", "line 2");
    }
    char *envp[] = {"VOUCH_LOG_LEVEL=loud", NULL};
    fail_env(envp, "VOUCH_LOG_LEVEL", "log_level");
}

static void test_admin_token_empty_is_null(void **state)
{
    struct config cfg;
    parse_ok(&cfg, "admin_token =\n", NULL);
    assert_null(cfg.admin_token);
    config_clear(&cfg);

    parse_ok(&cfg, "admin_token =    \t\n", NULL);
    assert_null(cfg.admin_token);
    config_clear(&cfg);

    /* The environment can switch off a token the file sets. */
    char *envp[] = {"VOUCH_ADMIN_TOKEN=", NULL};
    parse_ok(&cfg, "admin_token = from-file-" TOKEN "\n", envp);
    assert_null(cfg.admin_token);
    config_clear(&cfg);

    char *envp2[] = {"VOUCH_ADMIN_TOKEN=from-env-" TOKEN, NULL};
    parse_ok(&cfg, "admin_token = from-file-" TOKEN "\n", envp2);
    assert_string_equal(cfg.admin_token, "from-env-" TOKEN);
    config_clear(&cfg);
}

static void test_admin_token_length(void **state)
{
    struct config cfg;
    parse_ok(&cfg, "admin_token = " TOKEN "\n", NULL);
    assert_string_equal(cfg.admin_token, TOKEN);
    config_clear(&cfg);
    /* openssl rand -hex 32, as the example says. */
    parse_ok(&cfg, "admin_token = " TOKEN TOKEN "\n", NULL);
    config_clear(&cfg);

    /* One short: the message names the key, the length and the minimum. */
    fail_text("admin_token = 0123456789abcdef0123456789abcde\n", "admin_token", "31 characters");
    fail_text("admin_token = change-me\n", "admin_token", "at least 32");
    fail_text("admin_token = x\n", "admin_token", "openssl rand -hex 32");
    char *envp[] = {"VOUCH_ADMIN_TOKEN=short", NULL};
    fail_env(envp, "admin_token", "5 characters");
    /* The environment's long token wins over the file's short one. */
    char *envp2[] = {"VOUCH_ADMIN_TOKEN=" TOKEN, NULL};
    parse_ok(&cfg, "admin_token = short\n", envp2);
    assert_string_equal(cfg.admin_token, TOKEN);
    config_clear(&cfg);
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

/* ---- Durations ---- */

static void test_durations(void **state)
{
    static const struct {
        const char *text;
        uint64_t seconds;
    } good[] = {
        {"30d", 30 * 86400},
        {"12h", 12 * 3600},
        {"90", 90},
        {"5m", 300},
        {"45s", 45},
        {"0", 0},
        {"0d", 0},
        {"007", 7},
        {"18446744073709551615", UINT64_MAX},
        {"18446744073709551615s", UINT64_MAX},
        {"213503982334601d", 213503982334601ull * 86400},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t s = 12345;
        if (!config_parse_duration(good[i].text, &s))
            print_error("duration '%s' refused\n", good[i].text);
        assert_true(config_parse_duration(good[i].text, &s));
        assert_int_equal(s, good[i].seconds);
    }

    static const char *const bad[] = {
        "",
        "d",
        "s",
        "-1",
        "-1d",
        "+1",
        " 1",
        "1 ",
        "1 d",
        "1w",
        "1D",
        "1.5h",
        "h1",
        "1dd",
        "0x10",
        "1e3",
        "1ms",
        "18446744073709551616",                     /* UINT64_MAX + 1 */
        "99999999999999999999999999",               /* strtoull overflow */
        "213503982334602d",                         /* overflows only once multiplied by 86400 */
        "307445734561825861m",                      /* UINT64_MAX / 60 + 1 */
        "5124095576030432h",                        /* UINT64_MAX / 3600 + 1 */
        "1111111111111111111111111111111111111111", /* longer than the parser's buffer */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t s = 12345;
        if (config_parse_duration(bad[i], &s))
            print_error("duration '%s' accepted as %llu\n", bad[i], (unsigned long long)s);
        assert_false(config_parse_duration(bad[i], &s));
        assert_int_equal(s, 12345); /* untouched on failure */
    }
}

/* ---- The attestation policy ---- */

static void test_attestation_policy(void **state)
{
    struct config cfg;
    parse_ok(&cfg, NULL, NULL);
    assert_int_equal(cfg.attestation_max_age, 30 * 86400);
    assert_int_equal(cfg.attestation_min_interval, 7 * 86400);
    assert_int_equal(cfg.attestation_mean_interval, 14 * 86400);
    assert_int_equal(cfg.info_interval, 86400);
    assert_int_equal(cfg.attestation_rate_limit, 1000);
    assert_int_equal(cfg.attestation_retry_limit, 3);
    assert_int_equal(cfg.attestation_retry_delay, 3600);
    assert_int_equal(cfg.scheduler_batch, 200);
    config_clear(&cfg);

    parse_ok(&cfg,
             "attestation_max_age = 60d\nattestation_min_interval = 8d\n"
             "attestation_mean_interval = 21d\ninfo_interval = 12h\n"
             "attestation_rate_limit = 50\nattestation_retry_limit = 0\n"
             "attestation_retry_delay = 10m\nscheduler_batch = 0\n",
             NULL);
    assert_int_equal(cfg.attestation_max_age, 60 * 86400);
    assert_int_equal(cfg.attestation_min_interval, 8 * 86400);
    assert_int_equal(cfg.attestation_mean_interval, 21 * 86400);
    assert_int_equal(cfg.info_interval, 12 * 3600);
    assert_int_equal(cfg.attestation_rate_limit, 50);
    assert_int_equal(cfg.attestation_retry_limit, 0);
    assert_int_equal(cfg.attestation_retry_delay, 600);
    assert_int_equal(cfg.scheduler_batch, 0);
    config_clear(&cfg);

    /* The random interval's mean must leave room beyond Apple's window, and max_age must not
     * end before the window does. */
    fail_text("attestation_mean_interval = 7d\n", "attestation_mean_interval",
              "attestation_min_interval");
    fail_text("attestation_min_interval = 14d\n", "attestation_mean_interval",
              "attestation_min_interval");
    fail_text("attestation_max_age = 6d\n", "attestation_max_age", "attestation_min_interval");
    fail_text("attestation_rate_limit = 0\n", "attestation_rate_limit", "out of range");
    fail_text("attestation_retention = 29d\n", "attestation_retention", "out of range");
    parse_ok(&cfg, "attestation_retention = 30d\n", NULL);
    assert_int_equal(cfg.attestation_retention, 30 * 86400);
    config_clear(&cfg);
    fail_text("scheduler_batch = 10001\n", "scheduler_batch", "out of range");
    fail_text("info_interval = 1w\n", "info_interval", "unit");
    char *env[] = {"VOUCH_ATTESTATION_MAX_AGE=2d", NULL};
    fail_env(env, "attestation_max_age", "attestation_min_interval");
}

/* ---- Web-hooks ---- */

static void test_webhooks(void **state)
{
    struct config cfg;
    parse_ok(&cfg,
             "webhook_url = https://a.example/hook, http://b.example:8080/x\n"
             "webhook_secret = k\nwebhook_topics = mdm.Connect device.os_changed\n"
             "webhook_timeout = 30s\nwebhook_max_age = 1d\n",
             NULL);
    char items[CONFIG_MAX_RECEIVERS + 1][CONFIG_MAX_ITEM + 1];
    assert_int_equal(config_split_list(cfg.webhook_url, items, CONFIG_MAX_RECEIVERS), 2);
    assert_string_equal(items[0], "https://a.example/hook");
    assert_string_equal(items[1], "http://b.example:8080/x");
    assert_int_equal(config_split_list(cfg.webhook_topics, items, CONFIG_MAX_RECEIVERS), 2);
    assert_string_equal(items[1], "device.os_changed");
    assert_int_equal(cfg.webhook_timeout, 30);
    assert_int_equal(cfg.webhook_max_age, 86400);
    config_clear(&cfg);

    parse_ok(&cfg, NULL, NULL);
    assert_int_equal(cfg.webhook_timeout, 10);
    assert_int_equal(cfg.webhook_max_age, 72 * 3600);
    assert_int_equal(config_split_list(cfg.webhook_url, items, CONFIG_MAX_RECEIVERS), 0);
    config_clear(&cfg);

    fail_text("webhook_url = https://a.example/hook\n", "webhook_secret", "webhook_url");
    fail_text("webhook_url = https://a.example/hook\nwebhook_secret =\n", "webhook_secret",
              "webhook_url");
    fail_text("webhook_url = ftp://a.example/\nwebhook_secret = k\n", "webhook_url",
              "ftp://a.example/");
    fail_text("webhook_url = a b c d e f g h i\nwebhook_secret = k\n", "webhook_url",
              "at most");
    fail_text("webhook_topics = mdm.Connect, mdm.Nothing\n", "webhook_topics", "mdm.Nothing");
    fail_text("webhook_timeout = 0\n", "webhook_timeout", "out of range");
    assert_int_equal(config_split_list(" , a,,b  c ,", items, 3), 3);
    assert_int_equal(config_split_list("a b c d", items, 3), 4); /* more than max */
}

/* An http:// receiver may not take mdm.TokenUpdate (the UnlockToken) without
 * webhook_allow_http = true. */
static void test_webhook_http_receivers(void **state)
{
    struct config cfg;
    /* Every topic (webhook_topics unset or empty) includes mdm.TokenUpdate. */
    fail_text("webhook_url = http://127.0.0.1:9000/hook\nwebhook_secret = k\n", "webhook_url",
              "webhook_allow_http");
    fail_text("webhook_url = http://127.0.0.1:9000/hook\nwebhook_secret = k\nwebhook_topics =\n",
              "mdm.TokenUpdate", "webhook_allow_http");
    fail_text("webhook_url = http://h.example/x\nwebhook_secret = k\n"
              "webhook_topics = mdm.Connect, mdm.TokenUpdate\n",
              "http://h.example/x", "webhook_allow_http");
    /* One https and one http receiver: the http one is named. */
    fail_text("webhook_url = https://a.example/x http://b.example/y\nwebhook_secret = k\n",
              "http://b.example/y", "webhook_allow_http = true");
    fail_text("webhook_url = http://h.example/x\nwebhook_secret = k\n"
              "webhook_allow_http = false\n",
              "webhook_url", "webhook_allow_http");
    char *envp[] = {"VOUCH_WEBHOOK_ALLOW_HTTP=false", NULL};
    const char *needles[] = {"webhook_allow_http", NULL};
    static const char http_all[] = "webhook_url = http://h.example/x\nwebhook_secret = k\n"
                                   "webhook_allow_http = true\n";
    parse_fail(http_all, strlen(http_all), envp, needles);

    /* Allowed: https; http without mdm.TokenUpdate; http with webhook_allow_http = true. */
    parse_ok(&cfg, "webhook_url = https://h.example/x\nwebhook_secret = k\n", NULL);
    assert_false(cfg.webhook_allow_http);
    config_clear(&cfg);
    parse_ok(&cfg,
             "webhook_url = http://h.example/x\nwebhook_secret = k\n"
             "webhook_topics = mdm.Authenticate mdm.CheckOut mdm.Connect attestation.verified "
             "attestation.failed device.os_changed\n",
             NULL);
    config_clear(&cfg);
    parse_ok(&cfg, http_all, NULL);
    assert_true(cfg.webhook_allow_http);
    config_clear(&cfg);
    char *envp2[] = {"VOUCH_WEBHOOK_ALLOW_HTTP=true", NULL};
    parse_ok(&cfg, "webhook_url = http://h.example/x\nwebhook_secret = k\n", envp2);
    assert_true(cfg.webhook_allow_http);
    config_clear(&cfg);

    /* A boolean is true or false, nothing else. */
    static const char *const bad[] = {"yes", "1", "TRUE", "", "on", "true false"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "webhook_allow_http = %s\n", bad[i]);
        fail_text(line, "webhook_allow_http", "true or false");
    }
}

/* ---- trusted_proxies and the forwarded client ---- */

static struct config_addr addr_of(const char *text)
{
    struct config_addr a;
    if (!config_parse_addr(text, strlen(text), &a))
        print_error("not an address: %s\n", text);
    assert_true(config_parse_addr(text, strlen(text), &a));
    return a;
}

static void assert_trusted(const struct config *cfg, const char *addr, bool want)
{
    struct config_addr a = addr_of(addr);
    if (config_is_trusted_proxy(cfg, &a) != want)
        print_error("%s: expected %s\n", addr, want ? "trusted" : "not trusted");
    assert_true(config_is_trusted_proxy(cfg, &a) == want);
}

static void test_addresses(void **state)
{
    static const struct {
        const char *in, *out;
        int family;
    } good[] = {
        {"127.0.0.1", "127.0.0.1", 4},
        {"0.0.0.0", "0.0.0.0", 4},
        {"255.255.255.255", "255.255.255.255", 4},
        {"::1", "::1", 6},
        {"::", "::", 6},
        {"2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1", 6},
        {"fe80::1:2", "fe80::1:2", 6},
        /* IPv4-mapped IPv6 is the IPv4 address. */
        {"::ffff:192.0.2.1", "192.0.2.1", 4},
        {"::FFFF:c000:0201", "192.0.2.1", 4},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct config_addr a = addr_of(good[i].in);
        char text[64];
        assert_int_equal(a.family, good[i].family);
        assert_string_equal(config_addr_text(&a, text, sizeof(text)), good[i].out);
    }
    static const char *const bad[] = {
        "",
        "1.2.3",
        "1.2.3.4.5",
        "256.0.0.1",
        "01.2.3.4",
        "1.2.3.4 ",
        " 1.2.3.4",
        "::1::",
        "fe80::1%eth0",
        "[::1]",
        "localhost",
        "1.2.3.4/8",
        "1.2.3.-1",
        "0x7f.0.0.1",
        "1:2:3:4:5:6:7:8:9",
        "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config_addr a;
        if (config_parse_addr(bad[i], strlen(bad[i]), &a))
            print_error("'%s' accepted as an address\n", bad[i]);
        assert_false(config_parse_addr(bad[i], strlen(bad[i]), &a));
    }
    /* The length bounds the text: a NUL inside it, or a text longer than any address. */
    struct config_addr a;
    assert_false(config_parse_addr("1.2.3.4\0", 8, &a));
    assert_true(config_parse_addr("1.2.3.4 junk", 7, &a));
    char long_text[200];
    memset(long_text, '1', sizeof(long_text));
    assert_false(config_parse_addr(long_text, sizeof(long_text), &a));
}

static void test_trusted_proxies(void **state)
{
    struct config cfg;
    parse_ok(&cfg,
             "trusted_proxies = 127.0.0.1, ::1\t10.0.0.0/8 ,192.168.1.0/24 2001:db8::/32 "
             "198.51.100.7/32 2001:db8:ffff::5/128 ::ffff:172.16.0.0/108 224.0.0.0/3\n",
             NULL);
    assert_int_equal(cfg.proxy_count, 9);
    assert_trusted(&cfg, "127.0.0.1", true);
    assert_trusted(&cfg, "127.0.0.2", false);
    assert_trusted(&cfg, "::1", true);
    assert_trusted(&cfg, "::2", false);
    assert_trusted(&cfg, "10.0.0.0", true);
    assert_trusted(&cfg, "10.255.255.255", true);
    assert_trusted(&cfg, "11.0.0.0", false);
    assert_trusted(&cfg, "240.1.2.3", true); /* 224.0.0.0/3: 224-255.x */
    assert_trusted(&cfg, "223.255.255.255", false);
    assert_trusted(&cfg, "192.168.1.77", true);
    assert_trusted(&cfg, "192.168.2.1", false);
    assert_trusted(&cfg, "2001:db8:1234::1", true);
    assert_trusted(&cfg, "2001:db9::1", false);
    assert_trusted(&cfg, "198.51.100.7", true);
    assert_trusted(&cfg, "198.51.100.8", false);
    assert_trusted(&cfg, "2001:db8:ffff::5", true); /* also in 2001:db8::/32 */
    assert_trusted(&cfg, "172.16.3.4", true);       /* ::ffff:172.16.0.0/108 is 172.16.0.0/12 */
    assert_trusted(&cfg, "172.32.0.1", false);
    assert_trusted(&cfg, "::ffff:10.1.2.3", true); /* a mapped peer is its IPv4 address */
    assert_trusted(&cfg, "203.0.113.1", false);
    /* IPv4 networks never hold IPv6 addresses: ::a00:1 is not 10.0.0.1. */
    assert_trusted(&cfg, "::a00:1", false);
    config_clear(&cfg);

    /* Unset and empty: no proxy. */
    parse_ok(&cfg, "trusted_proxies =\n", NULL);
    assert_int_equal(cfg.proxy_count, 0);
    assert_trusted(&cfg, "127.0.0.1", false);
    config_clear(&cfg);
    parse_ok(&cfg, "trusted_proxies = , ,\n", NULL);
    assert_int_equal(cfg.proxy_count, 0);
    config_clear(&cfg);

    /* Odd but exact prefix bounds. */
    parse_ok(&cfg, "trusted_proxies = 128.0.0.0/1 ::/1 10.0.0.0/31 ::ffff:10.0.0.0/104\n", NULL);
    assert_int_equal(cfg.proxy_count, 4);
    assert_int_equal(cfg.proxies[0].prefix, 1);
    assert_int_equal(cfg.proxies[3].prefix, 8);
    assert_int_equal(cfg.proxies[3].addr.family, 4);
    assert_trusted(&cfg, "10.0.0.1", true);
    assert_trusted(&cfg, "10.0.0.2", true); /* in ::ffff:10.0.0.0/104 */
    config_clear(&cfg);

    /* The environment wins, as for every key. */
    char *envp[] = {"VOUCH_TRUSTED_PROXIES=192.0.2.1", NULL};
    parse_ok(&cfg, "trusted_proxies = 10.0.0.1\n", envp);
    assert_int_equal(cfg.proxy_count, 1);
    assert_trusted(&cfg, "192.0.2.1", true);
    assert_trusted(&cfg, "10.0.0.1", false);
    config_clear(&cfg);

    /* Bad values name the key and what is wrong. */
    fail_text("trusted_proxies = 10.0.0.0/33\n", "trusted_proxies", "at most /32");
    fail_text("trusted_proxies = ::/129\n", "trusted_proxies", "at most /128");
    fail_text("trusted_proxies = 2001:db8::/1000\n", "trusted_proxies", "prefix");
    fail_text("trusted_proxies = 10.0.0.1/8\n", "trusted_proxies", "did you mean 10.0.0.0/8");
    fail_text("trusted_proxies = 2001:db8::1/32\n", "trusted_proxies", "2001:db8::/32");
    fail_text("trusted_proxies = 10.0.0.0/\n", "trusted_proxies", "prefix");
    fail_text("trusted_proxies = 10.0.0.0/08\n", "trusted_proxies", "prefix");
    fail_text("trusted_proxies = 10.0.0.0/+8\n", "trusted_proxies", "prefix");
    fail_text("trusted_proxies = 10.0.0.0/8/8\n", "trusted_proxies", "prefix");
    fail_text("trusted_proxies = 10.0.0.0/x\n", "trusted_proxies", "prefix");
    fail_text("trusted_proxies = /8\n", "trusted_proxies", "not an IPv4 or IPv6");
    fail_text("trusted_proxies = 0.0.0.0/0\n", "trusted_proxies", "every address");
    fail_text("trusted_proxies = ::/0\n", "trusted_proxies", "every address");
    fail_text("trusted_proxies = ::ffff:10.0.0.0/95\n", "trusted_proxies", "IPv4-mapped");
    fail_text("trusted_proxies = 127.0.0.1, localhost\n", "trusted_proxies", "'localhost'");
    fail_text("trusted_proxies = 10.0.0\n", "trusted_proxies", "'10.0.0'");
    fail_text("trusted_proxies = 300.0.0.1\n", "trusted_proxies", "300.0.0.1");
    fail_text("trusted_proxies = [::1]\n", "trusted_proxies", "[::1]");
    fail_text("trusted_proxies = fe80::1%eth0\n", "trusted_proxies", "fe80::1%eth0");
    fail_text("trusted_proxies = 10.0.0.1;10.0.0.2\n", "trusted_proxies", "10.0.0.1;10.0.0.2");
    char *bad_env[] = {"VOUCH_TRUSTED_PROXIES=nginx", NULL};
    fail_env(bad_env, "trusted_proxies", "nginx");

    /* At most CONFIG_MAX_TRUSTED_PROXIES entries; an entry longer than any network. */
    char text[2048];
    size_t k = (size_t)snprintf(text, sizeof(text), "trusted_proxies =");
    for (int i = 0; i < CONFIG_MAX_TRUSTED_PROXIES; i++)
        k += (size_t)snprintf(text + k, sizeof(text) - k, " 10.0.%d.1", i);
    snprintf(text + k, sizeof(text) - k, "\n");
    parse_ok(&cfg, text, NULL);
    assert_int_equal(cfg.proxy_count, CONFIG_MAX_TRUSTED_PROXIES);
    config_clear(&cfg);
    snprintf(text + k, sizeof(text) - k, " 10.1.0.1\n");
    fail_text(text, "trusted_proxies", "at most 64");
    fail_text("trusted_proxies = 1111111111111111111111111111111111111111111111111111111111111\n",
              "trusted_proxies", "not an address");
}

/* cert_header is believed from trusted_proxies only: without any it could never be. */
static void test_cert_header_needs_trusted_proxies(void **state)
{
    struct config cfg;
    fail_text("cert_header = X-Client-Cert\n", "cert_header", "trusted_proxies");
    fail_text("cert_header = X-Client-Cert\ntrusted_proxies =\n", "cert_header", "trusted_proxies");
    char *envp[] = {"VOUCH_CERT_HEADER=Client-Cert", NULL};
    fail_env(envp, "cert_header", "trusted_proxies");

    parse_ok(&cfg, "cert_header = X-Client-Cert\ntrusted_proxies = 127.0.0.1, ::1\n", NULL);
    assert_string_equal(cfg.cert_header, "X-Client-Cert");
    assert_int_equal(cfg.proxy_count, 2);
    config_clear(&cfg);

    /* An empty cert_header names no header: the same as unset, so no proxy is needed. */
    parse_ok(&cfg, "cert_header =\n", NULL);
    assert_null(cfg.cert_header);
    config_clear(&cfg);
    /* trusted_proxies alone (X-Forwarded-For only) is fine. */
    parse_ok(&cfg, "trusted_proxies = 10.0.0.1\n", NULL);
    assert_null(cfg.cert_header);
    config_clear(&cfg);
}

/* Runs config_forwarded_client() with trusted_proxies = 10.0.0.0/8, ::1, 2001:db8::/64. */
static bool forwarded(const char *peer, const char *const *lines, size_t n, char *client,
                      size_t size)
{
    struct config cfg;
    parse_ok(&cfg, "trusted_proxies = 10.0.0.0/8, ::1, 2001:db8::/64\n", NULL);
    struct config_addr p = addr_of(peer), c;
    memset(&c, 0xAA, sizeof(c));
    bool ok = config_forwarded_client(&cfg, &p, lines, n, &c);
    if (ok)
        config_addr_text(&c, client, size);
    config_clear(&cfg);
    return ok;
}

static void assert_forwarded(const char *peer, const char *line, const char *want)
{
    const char *lines[] = {line};
    char client[64] = "";
    bool ok = forwarded(peer, lines, line ? 1 : 0, client, sizeof(client));
    if (!ok || strcmp(client, want) != 0)
        print_error("peer %s, X-Forwarded-For '%s': expected %s, got %s\n", peer,
                    line ? line : "(none)", want, ok ? client : "a refusal");
    assert_true(ok);
    assert_string_equal(client, want);
}

static void assert_forwarded_bad(const char *peer, const char *line)
{
    const char *lines[] = {line};
    char client[64] = "";
    if (forwarded(peer, lines, 1, client, sizeof(client)))
        print_error("peer %s, X-Forwarded-For '%s': accepted as %s\n", peer, line, client);
    assert_false(forwarded(peer, lines, 1, client, sizeof(client)));
}

static void test_forwarded_client(void **state)
{
    /* A peer that is not a trusted proxy is the client, whatever it claims. */
    assert_forwarded("203.0.113.5", "198.51.100.1", "203.0.113.5");
    assert_forwarded("203.0.113.5", "garbage", "203.0.113.5");
    assert_forwarded("2001:db9::1", NULL, "2001:db9::1");
    /* A trusted proxy without X-Forwarded-For is itself the client. */
    assert_forwarded("10.0.0.2", NULL, "10.0.0.2");
    assert_forwarded("10.0.0.2", "", "10.0.0.2");
    assert_forwarded("10.0.0.2", " , ,", "10.0.0.2");
    /* The right-most address that is not a proxy. */
    assert_forwarded("10.0.0.2", "198.51.100.1", "198.51.100.1");
    assert_forwarded("::1", "198.51.100.1", "198.51.100.1");
    assert_forwarded("10.0.0.2", "198.51.100.1, 10.0.0.3", "198.51.100.1");
    assert_forwarded("10.0.0.2", "198.51.100.1,10.0.0.3,::1", "198.51.100.1");
    /* What the client wrote itself (left of the first untrusted address) is never believed, nor
     * even read: a spoofed or malformed entry there changes nothing. */
    assert_forwarded("10.0.0.2", "10.9.9.9, 198.51.100.1", "198.51.100.1");
    assert_forwarded("10.0.0.2", "192.0.2.66, 198.51.100.1", "198.51.100.1");
    assert_forwarded("10.0.0.2", "not an address, 198.51.100.1", "198.51.100.1");
    /* All trusted: the left-most. */
    assert_forwarded("10.0.0.2", "10.0.0.4, 10.0.0.3", "10.0.0.4");
    assert_forwarded("::1", "2001:db8::7, ::1", "2001:db8::7");
    /* IPv6, brackets, ports, mapped addresses, blanks and empty elements. */
    assert_forwarded("10.0.0.2", "2001:db9::1", "2001:db9::1");
    assert_forwarded("10.0.0.2", "[2001:db9::1]", "2001:db9::1");
    assert_forwarded("10.0.0.2", "[2001:db9::1]:443", "2001:db9::1");
    assert_forwarded("10.0.0.2", "198.51.100.1:5678", "198.51.100.1");
    assert_forwarded("10.0.0.2", "::ffff:198.51.100.1", "198.51.100.1");
    assert_forwarded("10.0.0.2", "\t198.51.100.1 ,, \t", "198.51.100.1");
    assert_forwarded("10.0.0.2", "2001:DB9:0::0001", "2001:db9::1");
    /* An element that must be read and is not an address: refused. */
    assert_forwarded_bad("10.0.0.2", "unknown");
    assert_forwarded_bad("10.0.0.2", "198.51.100.1, garbage");
    assert_forwarded_bad("10.0.0.2", "198.51.100.1, 10.0.0.3, garbage");
    assert_forwarded_bad("10.0.0.2", "198.51.100.1:99999");
    assert_forwarded_bad("10.0.0.2", "198.51.100.1:");
    assert_forwarded_bad("10.0.0.2", "198.51.100.1:80:80");
    assert_forwarded_bad("10.0.0.2", "[2001:db9::1");
    assert_forwarded_bad("10.0.0.2", "[2001:db9::1]x");
    assert_forwarded_bad("10.0.0.2", "[]");
    assert_forwarded_bad("10.0.0.2", "198.51.100.1 198.51.100.2");
    assert_forwarded_bad("10.0.0.2", "host.example");
    assert_forwarded_bad("10.0.0.2", "198.51.100.1/32");

    /* Several field lines are one list, in order: the last line is the right-most. */
    const char *lines[] = {"192.0.2.66, 198.51.100.1", "10.0.0.5"};
    char client[64] = "";
    assert_true(forwarded("10.0.0.2", lines, 2, client, sizeof(client)));
    assert_string_equal(client, "198.51.100.1");
    const char *lines2[] = {"198.51.100.1", "garbage"};
    assert_false(forwarded("10.0.0.2", lines2, 2, client, sizeof(client)));
    const char *lines3[] = {"garbage", "198.51.100.9"};
    assert_true(forwarded("10.0.0.2", lines3, 2, client, sizeof(client)));
    assert_string_equal(client, "198.51.100.9");
}

/* ---- The enrollment profile ---- */

static void test_enrollment_keys(void **state)
{
    struct config cfg;
    parse_ok(&cfg,
             "enroll_identity = acme\nacme_directory_url = https://acme.example/dir\n"
             "enroll_token = t\norganization = Org\n",
             NULL);
    assert_string_equal(cfg.enroll_identity, "acme");
    assert_string_equal(cfg.acme_directory_url, "https://acme.example/dir");
    assert_string_equal(cfg.enroll_token, "t");
    config_clear(&cfg);
    fail_text("enroll_identity = est\n", "enroll_identity", "scep or acme");
    fail_text("enroll_identity = acme\n", "enroll_identity", "acme_directory_url");
    fail_text("scep_challenge = x\n", "scep_challenge", "scep_url");
    fail_text("profile_signing_cert = /etc/c.pem\n", "profile_signing_cert",
              "profile_signing_key");
}

static void test_reenroll(void **state)
{
    struct config cfg;
    parse_ok(&cfg, "", NULL);
    assert_false(cfg.reenroll_refuse); /* default: allow */
    config_clear(&cfg);
    parse_ok(&cfg, "reenroll = allow\n", NULL);
    assert_false(cfg.reenroll_refuse);
    config_clear(&cfg);
    parse_ok(&cfg, "reenroll = refuse\n", NULL);
    assert_true(cfg.reenroll_refuse);
    config_clear(&cfg);
    fail_text("reenroll = sometimes\n", "reenroll", "allow or refuse");
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
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_log_level),
        cmocka_unit_test(test_admin_token_empty_is_null),
        cmocka_unit_test(test_admin_token_length),
        cmocka_unit_test(test_env_overrides_file),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_attestation_policy),
        cmocka_unit_test(test_webhooks),
        cmocka_unit_test(test_webhook_http_receivers),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_cert_header_needs_trusted_proxies),
        cmocka_unit_test(test_forwarded_client),
        cmocka_unit_test(test_enrollment_keys),
        cmocka_unit_test(test_reenroll),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_check_runtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
