/*
 * policy_fixture: see policy_fixture.h.
 */
#include "policy_fixture.h"

#include <stdio.h>
#include <string.h>

/* Parses items (line numbers as given) and expects success. */
void parse_ok(const struct trust_policy_item *items, size_t count, struct trust_policies *out)
{
    char err[256] = "";
    bool ok = trust_policies_parse(items, count, out, err, sizeof(err));
    if (!ok)
        fail_msg("parse failed: %s", err);
}

/* Parses items and expects failure with exactly want. */
void parse_fails(const struct trust_policy_item *items, size_t count, const char *want)
{
    struct trust_policies out = {(struct trust_policy *)1, 99};
    char err[256] = "";
    assert_false(trust_policies_parse(items, count, &out, err, sizeof(err)));
    assert_string_equal(err, want);
    /* A failed parse leaves nothing to free. */
    assert_null(out.items);
    assert_int_equal(out.count, 0);
    trust_policies_clear(&out);
}

/* One item at line 7: the error that follows. */
void one_item_fails(const char *key, const char *value, const char *why)
{
    struct trust_policy_item item = {key, value, 7};
    char want[256];
    snprintf(want, sizeof(want), "line 7: %s: %s", key, why);
    parse_fails(&item, 1, want);
}

const struct trust_policy *find(const struct trust_policies *p, const char *name)
{
    return trust_policy_find(p, name, strlen(name));
}

/* A device that every policy of these tests admits. */
struct trust_facts good_facts(void)
{
    return (struct trust_facts){
        .device_found = true,
        .by_certificate = true,
        .cert_current = true,
        .enrolled = true,
        .udid = "00008110-000A1B2C3D4E5F60",
        .serial_number = "F4GXK0ABCD12",
        .model = "MTUV3LL/A",
        .product_name = "iPhone16,1",
        .os_version = "17.4.1",
        .hardware_bound = true,
        .identity_revoked = false,
        .identity_not_after = NOW + 100000,
        .attestation_status = "verified",
        .freshness = "fresh",
        .verified_at = NOW - 100,
        .expires_at = NOW + 50000,
        .generated_at = NOW - 200,
        .now = NOW,
    };
}

struct trust_policy plain_policy(void)
{
    struct trust_policy p;
    memset(&p, 0, sizeof(p));
    memcpy(p.name, "web", 4);
    p.require = TRUST_REQUIRE_VERIFIED;
    return p;
}

/* Expects exactly the reasons given (terminated by -1), in that order. */
void expect_reasons(const struct trust_decision *d, ...)
{
    va_list ap;
    va_start(ap, d);
    size_t n = 0;
    for (int r = va_arg(ap, int); r != -1; r = va_arg(ap, int)) {
        if (n >= d->reason_count)
            fail_msg("missing reason %s (only %zu given)", trust_reason_name(r), d->reason_count);
        if (d->reasons[n] != (enum trust_reason)r)
            fail_msg("reason %zu: got %s, want %s", n, trust_reason_name(d->reasons[n]),
                     trust_reason_name(r));
        n++;
    }
    va_end(ap);
    if (n != d->reason_count)
        fail_msg("extra reason %s", trust_reason_name(d->reasons[n]));
    assert_int_equal(d->allow, n == 0);
    if (!d->allow)
        assert_int_equal(d->valid_until, 0);
}

struct trust_decision judge(const struct trust_policy *p, const struct trust_facts *f)
{
    struct trust_decision d;
    memset(&d, 0xa5, sizeof(d));
    trust_evaluate(p, f, &d);
    return d;
}

/* One reason alone: the good device, changed by one thing. */
void expect_only(const struct trust_policy *p, const struct trust_facts *f, enum trust_reason r)
{
    struct trust_decision d = judge(p, f);
    expect_reasons(&d, (int)r, -1);
}
