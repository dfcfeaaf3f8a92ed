/* Unit tests of server/config.c, the web-hook receivers and the device paths of NanoMDM's
 * layout: each receiver's topics (its own after '#', else webhook_topics; the nanomdm group),
 * the plain-http rule per receiver, and mdm_path / checkin_path (what they may be, what they may
 * not collide with).
 *
 * Shared helpers: config_fixture.h. */
#include "config_fixture.h"

#include <stdio.h>
#include <string.h>

static bool has_topic(const struct config_receiver *r, const char *topic)
{
    for (size_t i = 0; i < r->topic_count; i++) {
        if (strcmp(r->topics[i], topic) == 0)
            return true;
    }
    return false;
}

/* Every configuration of before stays valid, and means what it meant. */
static void test_receivers_without_topics_of_their_own(void **state)
{
    struct config cfg;
    parse_ok(&cfg,
             "webhook_url = https://a.example/hook, https://b.example/x\n"
             "webhook_secret = k\nwebhook_topics = mdm.Connect device.os_changed\n",
             NULL);
    assert_int_equal(cfg.receiver_count, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_false(cfg.receivers[i].every_topic);
        assert_int_equal(cfg.receivers[i].topic_count, 2);
        assert_true(has_topic(&cfg.receivers[i], "mdm.Connect"));
        assert_true(has_topic(&cfg.receivers[i], "device.os_changed"));
    }
    assert_string_equal(cfg.receivers[1].url, "https://b.example/x");
    config_clear(&cfg);
    assert_null(cfg.receivers);
    assert_int_equal(cfg.receiver_count, 0);

    parse_ok(&cfg, "webhook_url = https://a.example/hook\nwebhook_secret = k\n", NULL);
    assert_int_equal(cfg.receiver_count, 1);
    assert_true(cfg.receivers[0].every_topic);
    assert_int_equal(cfg.receivers[0].topic_count, 0);
    config_clear(&cfg);

    parse_ok(&cfg, NULL, NULL);
    assert_int_equal(cfg.receiver_count, 0);
    config_clear(&cfg);
}

static void test_topics_per_receiver(void **state)
{
    struct config cfg;
    parse_ok(&cfg,
             "webhook_url = https://siem.example/vouch https://nanocmd.example/webhook#nanomdm "
             "https://c.example/x#mdm.Connect+attestation.verified\n"
             "webhook_secret = k\n",
             NULL);
    assert_int_equal(cfg.receiver_count, 3);
    assert_true(cfg.receivers[0].every_topic);
    const struct config_receiver *nano = &cfg.receivers[1];
    assert_string_equal(nano->url, "https://nanocmd.example/webhook"); /* without the fragment */
    assert_false(nano->every_topic);
    assert_int_equal(nano->topic_count, 9);
    static const char *const mdm[] = {
        "mdm.Authenticate",      "mdm.TokenUpdate",           "mdm.CheckOut",
        "mdm.Connect",           "mdm.UserAuthenticate",      "mdm.SetBootstrapToken",
        "mdm.GetBootstrapToken", "mdm.DeclarativeManagement", "mdm.GetToken"};
    for (size_t i = 0; i < sizeof(mdm) / sizeof(mdm[0]); i++)
        assert_true(has_topic(nano, mdm[i]));
    for (size_t i = 0; i < nano->topic_count; i++)
        assert_memory_equal(nano->topics[i], "mdm.", 4); /* never attestation.*, identity.* ... */
    const struct config_receiver *c = &cfg.receivers[2];
    assert_int_equal(c->topic_count, 2);
    assert_true(has_topic(c, "mdm.Connect"));
    assert_true(has_topic(c, "attestation.verified"));
    config_clear(&cfg);

    /* The receiver's own topics win over webhook_topics; a group twice, or a topic of it again,
     * is taken once; a group in webhook_topics too. */
    parse_ok(&cfg,
             "webhook_url = https://a.example/x https://b.example/y#nanomdm+mdm.Connect+nanomdm\n"
             "webhook_secret = k\nwebhook_topics = nanomdm trust.denied\n",
             NULL);
    assert_int_equal(cfg.receivers[0].topic_count, 10);
    assert_true(has_topic(&cfg.receivers[0], "trust.denied"));
    assert_int_equal(cfg.receivers[1].topic_count, 9);
    assert_false(has_topic(&cfg.receivers[1], "trust.denied"));
    config_clear(&cfg);

    assert_non_null(config_topic_group("nanomdm"));
    assert_null(config_topic_group("mdm"));

    fail_text("webhook_url = https://a.example/x#nanomdm+mdm.Nothing\nwebhook_secret = k\n",
              "webhook_url", "mdm.Nothing");
    fail_text("webhook_url = https://a.example/x#\nwebhook_secret = k\n", "webhook_url", "'#'");
    fail_text("webhook_url = https://a.example/x#mdm.Connect++mdm.CheckOut\nwebhook_secret = k\n",
              "webhook_url", "empty");
    fail_text("webhook_url = https://a.example/x https://a.example/x#nanomdm\n"
              "webhook_secret = k\n",
              "https://a.example/x", "twice");
    fail_text("webhook_url = ftp://a.example/x#nanomdm\nwebhook_secret = k\n", "webhook_url",
              "ftp://a.example/x");
}

/* webhook_allow_http's rule holds per receiver: an http:// receiver whose own topics take
 * mdm.TokenUpdate (the nanomdm group does) needs it; one without it does not. */
static void test_plain_http_per_receiver(void **state)
{
    struct config cfg;
    fail_text("webhook_url = https://a.example/x http://nanocmd.example/webhook#nanomdm\n"
              "webhook_secret = k\nwebhook_topics = attestation.verified\n",
              "http://nanocmd.example/webhook", "webhook_allow_http");
    parse_ok(&cfg,
             "webhook_url = https://a.example/x http://b.example/y#mdm.Connect+mdm.CheckOut\n"
             "webhook_secret = k\n",
             NULL);
    assert_int_equal(cfg.receiver_count, 2);
    config_clear(&cfg);
    /* Every topic for the https one does not make the http one take mdm.TokenUpdate. */
    parse_ok(&cfg,
             "webhook_url = https://a.example/x http://b.example/y#attestation.verified\n"
             "webhook_secret = k\n",
             NULL);
    config_clear(&cfg);
    parse_ok(&cfg,
             "webhook_url = http://nanocmd.example/webhook#nanomdm\nwebhook_secret = k\n"
             "webhook_allow_http = true\n",
             NULL);
    config_clear(&cfg);
}

static void test_device_paths(void **state)
{
    struct config cfg;
    parse_ok(&cfg, NULL, NULL);
    assert_null(cfg.mdm_path);
    assert_null(cfg.checkin_path);
    config_clear(&cfg);

    parse_ok(&cfg, "mdm_path = /nanomdm/mdm\ncheckin_path = /nanomdm/checkin\n", NULL);
    assert_string_equal(cfg.mdm_path, "/nanomdm/mdm");
    assert_string_equal(cfg.checkin_path, "/nanomdm/checkin");
    config_clear(&cfg);

    /* Vouch's own paths: nothing extra (the defaults). */
    parse_ok(&cfg, "mdm_path = /mdm/connect\ncheckin_path = /mdm/checkin\n", NULL);
    assert_true(config_is_device_path(cfg.mdm_path));
    assert_true(config_is_device_path(cfg.checkin_path));
    config_clear(&cfg);
    parse_ok(&cfg, "mdm_path = /mdm\ncheckin_path = /checkin\n", NULL);
    config_clear(&cfg);
    assert_false(config_is_device_path("/mdm/enroll"));
    char *envp[] = {"VOUCH_MDM_PATH=/x/mdm", NULL};
    parse_ok(&cfg, NULL, envp);
    assert_string_equal(cfg.mdm_path, "/x/mdm");
    config_clear(&cfg);

    /* Not an absolute path, a query, a fragment, escapes, empty and dot segments. */
    fail_text("mdm_path = mdm\n", "mdm_path", "absolute");
    fail_text("mdm_path = /\n", "mdm_path", "absolute");
    fail_text("mdm_path = /x/\n", "mdm_path", "trailing");
    fail_text("mdm_path = /x?a=b\n", "mdm_path", "'?'");
    fail_text("checkin_path = /x#y\n", "checkin_path", "'#'");
    fail_text("checkin_path = /x%2fy\n", "checkin_path", "'%'");
    fail_text("checkin_path = /x//y\n", "checkin_path", "empty or dot");
    fail_text("checkin_path = /x/../v1\n", "checkin_path", "empty or dot");
    fail_text("checkin_path = /x/.\n", "checkin_path", "empty or dot");
    /* Another route's path, or under it. */
    static const char *const taken[] = {"/v1",       "/v1/devices", "/ui",         "/ui/x",
                                        "/acme/new", "/migration",  "/mdm/enroll", "/healthz",
                                        "/metrics",  "/version"};
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "mdm_path = %s\n", taken[i]);
        fail_text(text, "mdm_path", "another path");
    }
    /* Names that only start like one are free. */
    parse_ok(&cfg, "mdm_path = /v1x\ncheckin_path = /migrations-old\n", NULL);
    config_clear(&cfg);
    /* One URL for both is mdm_path alone. */
    fail_text("mdm_path = /x\ncheckin_path = /x\n", "mdm_path and checkin_path", "/x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receivers_without_topics_of_their_own),
        cmocka_unit_test(test_topics_per_receiver),
        cmocka_unit_test(test_plain_http_per_receiver),
        cmocka_unit_test(test_device_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
