/* Unit tests of server/config.c, the values each key accepts: whole numbers and durations,
 * log_level, admin_token, the attestation policy, web-hooks (http:// receivers included) and the
 * enrollment profile keys, with the message of every refusal.
 *
 * Shared helpers: config_fixture.h. */
#include "config_fixture.h"
#include "conf.h"

#include <stdio.h>
#include <string.h>

/* ---- Numbers, log_level and admin_token ---- */

static void test_apns_connections(void **state)
{
    struct config cfg;
    parse_ok(&cfg, "log_level = info\n", NULL);
    assert_int_equal(cfg.apns_connections, 2); /* the default */
    config_clear(&cfg);
    parse_ok(&cfg, "apns_connections = 1\n", NULL);
    assert_int_equal(cfg.apns_connections, 1);
    config_clear(&cfg);
    parse_ok(&cfg, "apns_connections = 16\n", NULL);
    assert_int_equal(cfg.apns_connections, 16);
    config_clear(&cfg);
    fail_text("apns_connections = 0\n", "apns_connections", "range");
    fail_text("apns_connections = 17\n", "apns_connections", "range");
    fail_text("apns_connections = two\n", "apns_connections", "line 1");
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
    parse_ok(&cfg, "", NULL);
    assert_int_equal(cfg.identity_cache_size, 4096);
    config_clear(&cfg);
    parse_ok(&cfg, "identity_cache_size = 1048576\n", NULL);
    assert_int_equal(cfg.identity_cache_size, 1u << 20);
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
    fail_text("identity_cache_size = 0\n", "identity_cache_size", "range");
    fail_text("identity_cache_size = 1048577\n", "identity_cache_size", "range");
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
        if (!conf_parse_duration(good[i].text, &s))
            print_error("duration '%s' refused\n", good[i].text);
        assert_true(conf_parse_duration(good[i].text, &s));
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
        if (conf_parse_duration(bad[i], &s))
            print_error("duration '%s' accepted as %llu\n", bad[i], (unsigned long long)s);
        assert_false(conf_parse_duration(bad[i], &s));
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
    fail_text("webhook_url = a b c d e f g h i\nwebhook_secret = k\n", "webhook_url", "at most");
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
    fail_text("profile_signing_cert = /etc/c.pem\n", "profile_signing_cert", "profile_signing_key");
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

/* migration = on|off: NanoMDM's /migration (server/operator/migration.c), off unless on. */
static void test_migration(void **state)
{
    struct config cfg;
    (void)state;
    parse_ok(&cfg, "", NULL);
    assert_false(cfg.migration_on);
    config_clear(&cfg);
    parse_ok(&cfg, "migration = off\n", NULL);
    assert_false(cfg.migration_on);
    config_clear(&cfg);
    parse_ok(&cfg, "migration = on\n", NULL);
    assert_true(cfg.migration_on);
    config_clear(&cfg);
    fail_text("migration = yes\n", "migration", "on or off");
}

/* ui = on|off: the dashboard (server/dashboard/), on unless turned off. */
static void test_ui(void **state)
{
    struct config cfg;
    (void)state;
    parse_ok(&cfg, "", NULL);
    assert_false(cfg.ui_off);
    config_clear(&cfg);
    parse_ok(&cfg, "ui = on\n", NULL);
    assert_false(cfg.ui_off);
    config_clear(&cfg);
    parse_ok(&cfg, "ui = off\n", NULL);
    assert_true(cfg.ui_off);
    config_clear(&cfg);
    fail_text("ui = true\n", "ui", "on or off");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_apns_connections),
        cmocka_unit_test(test_log_level),
        cmocka_unit_test(test_admin_token_empty_is_null),
        cmocka_unit_test(test_admin_token_length),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_attestation_policy),
        cmocka_unit_test(test_webhooks),
        cmocka_unit_test(test_webhook_http_receivers),
        cmocka_unit_test(test_enrollment_keys),
        cmocka_unit_test(test_reenroll),
        cmocka_unit_test(test_migration),
        cmocka_unit_test(test_ui),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
