/* Unit tests of server/config.c, who the client is: IPv4 and IPv6 addresses (net_addr_parse),
 * trusted_proxies and its networks, cert_header's need of them, and the X-Forwarded-For rule
 * (config_forwarded_client).
 *
 * Shared helpers: config_fixture.h. */
#include "config_fixture.h"

#include <stdio.h>
#include <string.h>

/* ---- trusted_proxies and the forwarded client ---- */

static struct net_addr addr_of(const char *text)
{
    struct net_addr a;
    if (!net_addr_parse(text, strlen(text), &a))
        print_error("not an address: %s\n", text);
    assert_true(net_addr_parse(text, strlen(text), &a));
    return a;
}

static void assert_trusted(const struct config *cfg, const char *addr, bool want)
{
    struct net_addr a = addr_of(addr);
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
        struct net_addr a = addr_of(good[i].in);
        char text[64];
        assert_int_equal(a.family, good[i].family);
        assert_string_equal(net_addr_text(&a, text, sizeof(text)), good[i].out);
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
        struct net_addr a;
        if (net_addr_parse(bad[i], strlen(bad[i]), &a))
            print_error("'%s' accepted as an address\n", bad[i]);
        assert_false(net_addr_parse(bad[i], strlen(bad[i]), &a));
    }
    /* The length bounds the text: a NUL inside it, or a text longer than any address. */
    struct net_addr a;
    assert_false(net_addr_parse("1.2.3.4\0", 8, &a));
    assert_true(net_addr_parse("1.2.3.4 junk", 7, &a));
    char long_text[200];
    memset(long_text, '1', sizeof(long_text));
    assert_false(net_addr_parse(long_text, sizeof(long_text), &a));
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
    struct net_addr p = addr_of(peer), c;
    memset(&c, 0xAA, sizeof(c));
    bool ok = config_forwarded_client(&cfg, &p, lines, n, &c);
    if (ok)
        net_addr_text(&c, client, size);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_cert_header_needs_trusted_proxies),
        cmocka_unit_test(test_forwarded_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
