/* Unit tests of server/attestation/attest.c, the verifier's intermediate cache: it must give the verdict the
 * full path would (lookalike leaves, variants of the sub CA, eviction, validity edges, the leaf's
 * own checks).
 *
 * Shared set-up and helpers: attest_fixture.h. */
#include "attest_fixture.h"

#include <openssl/bio.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest_json.h"

/* A verifier caches pki's sub CA on a good answer; leaves from the look-alike hierarchy must
 * still be refused afterwards, whatever intermediate they come with. */
static void test_cache_refuses_lookalike_leaf(void **state)
{
    (void)state;
    struct attest_verifier *v = new_verifier(g.root_pem);
    struct request r = default_request();
    struct attest_verdict out;
    struct fake_chain good, evil_ours, evil_theirs;
    struct fake_leaf_spec spec;
    issue_device(&good, g.nonce, sizeof(g.nonce));
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.signer = g.lookalike;
    issue(g.pki, &spec, &evil_ours);
    issue(g.lookalike, &spec, &evil_theirs);
    struct items it_good = items_of(&good), it_ours = items_of(&evil_ours),
                 it_theirs = items_of(&evil_theirs);
    for (int round = 0; round < 3; round++) {
        run(v, &it_good, &r, &out);
        assert_verdict(&out, "good", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
        run(v, &it_ours, &r, &out);
        assert_verdict(&out, "look-alike leaf, our cached sub CA", ATTEST_FAILED,
                       ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
        run(v, &it_theirs, &r, &out);
        assert_verdict(&out, "look-alike leaf and sub CA", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                       ATTEST_REASON_UNTRUSTED_CHAIN);
    }
    attest_verifier_free(v);
    fake_chain_free(&good);
    fake_chain_free(&evil_ours);
    fake_chain_free(&evil_theirs);
}

enum variant {
    V_GOOD,
    V_CACHED,
    V_LOOKALIKE_SIGNER,
    V_EXPIRED,
    V_UNKNOWN_CRITICAL,
    V_WRONG_NONCE,
    V_OTHER_UDID,
    V_LOOKALIKE_CHAIN,
    V_NOT_YET_VALID,
    V_LEAF_BY_ROOT,
    V_COUNT
};

static void variant_chain(enum variant variant, struct fake_chain *chain)
{
    struct fake_leaf_spec spec;
    static const uint8_t null_value[] = {0x05, 0x00};
    device_spec(&spec,
                variant == V_CACHED        ? g.older_nonce
                : variant == V_WRONG_NONCE ? g.random_nonce
                                           : g.nonce,
                32);
    const struct fake_apple *issuer = g.pki;
    switch (variant) {
    case V_LOOKALIKE_SIGNER:
        spec.signer = g.lookalike;
        break;
    case V_EXPIRED:
        spec.not_before = NOW - 92 * DAY;
        break;
    case V_UNKNOWN_CRITICAL:
        assert_true(fake_leaf_spec_add_extra(&spec, PRIVATE_OID, true, null_value, 2));
        break;
    case V_OTHER_UDID:
        assert_true(fake_leaf_spec_set_string(&spec, FAKE_PROP_UDID, "00008030-0000000000000000"));
        break;
    case V_LOOKALIKE_CHAIN:
        issuer = g.lookalike;
        break;
    case V_NOT_YET_VALID:
        spec.not_before = NOW + 3600;
        break;
    case V_LEAF_BY_ROOT:
        spec.issuer = FAKE_ISSUER_ROOT;
        break;
    default:
        break;
    }
    issue(issuer, &spec, chain);
}

/* 50 leaves of every kind, twice, through one verifier; each against a new verifier. */
static void test_cache_matches_full_path(void **state)
{
    (void)state;
    enum { N = 50 };
    struct fake_chain chains[N];
    struct attest_verdict full[N];
    struct request r = default_request();
    struct attest_verifier *shared = new_verifier(g.root_pem);
    for (size_t i = 0; i < N; i++) {
        variant_chain((enum variant)(i % V_COUNT), &chains[i]);
        struct items it = items_of(&chains[i]);
        struct attest_verifier *fresh = new_verifier(g.root_pem);
        run(fresh, &it, &r, &full[i]);
        attest_verifier_free(fresh);
    }
    unsigned verified = 0, differ = 0;
    char what[96];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < N; i++) {
            struct items it = items_of(&chains[i]);
            struct attest_verdict v;
            run(shared, &it, &r, &v);
            snprintf(what, sizeof(what), "leaf %zu (variant %zu), round %d: full vs shared", i,
                     i % V_COUNT, round);
            differ += !same_verdict(&full[i], &v, what);
            verified += v.status == ATTEST_VERIFIED;
        }
    }
    for (size_t i = 0; i < N; i++)
        fake_chain_free(&chains[i]);
    attest_verifier_free(shared);
    if (differ > 0)
        fail_msg("%u of %d verdicts differ between the full path and the cache", differ, 2 * N);
    assert_int_equal(verified, 2 * 10); /* V_GOOD and V_CACHED, 5 each, twice */
}

/* More distinct sub CAs than the cache holds (8), all with the same names: entries are evicted
 * and refilled, and a leaf of one hierarchy never passes under another's cached sub CA. */
static void test_cache_eviction(void **state)
{
    (void)state;
    enum { H = 11 };
    struct fake_apple *pkis[H];
    struct fake_chain chains[H], crossed[H];
    char *pems[H];
    size_t total = 1;
    char err[256] = "";
    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    for (size_t i = 0; i < H; i++) {
        pkis[i] = fake_apple_new(err, sizeof(err));
        if (pkis[i] == NULL)
            fail_msg("fake_apple_new: %s", err);
        pems[i] = fake_apple_root_pem(pkis[i]);
        assert_non_null(pems[i]);
        total += strlen(pems[i]);
        issue(pkis[i], &spec, &chains[i]);
    }
    for (size_t i = 0; i < H; i++) {
        /* hierarchy i+1's leaf with hierarchy i's sub CA */
        struct fake_leaf_spec s = spec;
        s.signer = pkis[(i + 1) % H];
        issue(pkis[i], &s, &crossed[i]);
    }
    char *all = malloc(total);
    assert_non_null(all);
    size_t used = 0;
    for (size_t i = 0; i < H; i++) {
        size_t n = strlen(pems[i]);
        memcpy(all + used, pems[i], n);
        used += n;
    }
    all[used] = '\0';
    struct attest_verifier *v = new_verifier(all);
    struct request r = default_request();
    struct attest_verdict out;
    char what[64];
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < H; i++) {
            size_t k = round % 2 ? H - 1 - i : i; /* forwards, then backwards */
            struct items it = items_of(&chains[k]);
            run(v, &it, &r, &out);
            snprintf(what, sizeof(what), "hierarchy %zu, round %d", k, round);
            assert_verdict(&out, what, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
            it = items_of(&crossed[k]);
            run(v, &it, &r, &out);
            snprintf(what, sizeof(what), "crossed %zu, round %d", k, round);
            assert_verdict(&out, what, ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                           ATTEST_REASON_UNTRUSTED_CHAIN);
        }
    }
    attest_verifier_free(v);
    free(all);
    for (size_t i = 0; i < H; i++) {
        fake_chain_free(&chains[i]);
        fake_chain_free(&crossed[i]);
        free(pems[i]);
        fake_apple_free(pkis[i]);
    }
}

static unsigned disagreements; /* of same_at(), for the test to fail on at its end */

/* Verifies items at time t with a new verifier and with one primed at prime_at; counts (and
 * prints) a disagreement. Returns the full path's status. */
static enum attest_status same_at(const struct items *it, time_t t, time_t prime_at,
                                  const char *what)
{
    struct request r = default_request();
    struct attest_verdict full, cached;
    struct attest_verifier *fresh = new_verifier(g.root_pem), *primed = new_verifier(g.root_pem);
    r.at = t;
    run(fresh, it, &r, &full);
    /* Prime with a good answer at prime_at, so the sub CA is cached. */
    struct fake_leaf_spec spec;
    struct fake_chain good;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = prime_at - DAY;
    issue(g.pki, &spec, &good);
    struct items git = items_of(&good);
    struct request pr = default_request();
    pr.at = prime_at;
    struct attest_verdict pv;
    run(primed, &git, &pr, &pv);
    assert_verdict(&pv, "priming", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
    run(primed, it, &r, &cached);
    char msg[160];
    snprintf(msg, sizeof(msg), "%s: full path vs cached sub CA", what);
    disagreements += !same_verdict(&full, &cached, msg);
    fake_chain_free(&good);
    attest_verifier_free(fresh);
    attest_verifier_free(primed);
    return full.status;
}

/* The edges of the leaf's and the sub CA's validity: the cache must draw them where path
 * validation does. */
static void test_cache_validity_edges(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    struct items it = items_of(&chain);
    time_t nb = MINTED, na = MINTED + 91 * DAY;
    disagreements = 0;
    assert_int_equal(same_at(&it, nb - 1, NOW, "leaf notBefore - 1"), ATTEST_FAILED);
    assert_int_equal(same_at(&it, nb, NOW, "leaf notBefore"), ATTEST_VERIFIED);
    assert_int_equal(same_at(&it, na - 1, NOW, "leaf notAfter - 1"), ATTEST_VERIFIED);
    (void)same_at(&it, na, NOW, "leaf notAfter");
    assert_int_equal(same_at(&it, na + 1, NOW, "leaf notAfter + 1"), ATTEST_FAILED);
    fake_chain_free(&chain);

    /* The sub CA's end, with a leaf that outlives it. */
    time_t sub_end = asn1_time(X509_get0_notAfter(g.sub));
    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = sub_end - 10 * DAY;
    issue(g.pki, &spec, &chain);
    it = items_of(&chain);
    assert_int_equal(same_at(&it, sub_end - 1, sub_end - 2 * DAY, "sub CA notAfter - 1"),
                     ATTEST_VERIFIED);
    (void)same_at(&it, sub_end, sub_end - 2 * DAY, "sub CA notAfter");
    assert_int_equal(same_at(&it, sub_end + 1, sub_end - 2 * DAY, "sub CA notAfter + 1"),
                     ATTEST_FAILED);
    fake_chain_free(&chain);
    if (disagreements > 0)
        fail_msg("the cache disagrees with path validation at %u validity edges", disagreements);
}

/* Leaves whose signature is good but which path validation refuses for another reason: the
 * cached-intermediate path must refuse them too. */
static void test_cache_leaf_checks(void **state)
{
    (void)state;
    static const struct {
        enum leaf_twist twist;
        const char *what;
    } twists[] = {
        {TWIST_NONE, "a plain crafted leaf"},
        {TWIST_AKID_OTHER, "an authorityKeyIdentifier naming another key"},
        {TWIST_DUP_KEY_USAGE, "keyUsage twice"},
        {TWIST_BAD_SAN, "a subjectAltName that is not DER"},
        {TWIST_SHA1, "an ECDSA-SHA1 signature"},
        {TWIST_RSA512, "an RSA-512 key"},
    };
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    disagreements = 0;
    for (size_t i = 0; i < sizeof(twists) / sizeof(twists[0]); i++) {
        size_t len;
        uint8_t *leaf = craft_leaf(twists[i].twist, 0, MINTED, MINTED + 91 * DAY, &len);
        struct items it = items_of(&chain);
        it.der[0] = leaf;
        it.len[0] = len;
        enum attest_status s = same_at(&it, NOW, NOW, twists[i].what);
        print_message("  %s: full path says %s\n", twists[i].what, attest_status_name(s));
        if (twists[i].twist == TWIST_NONE)
            assert_int_equal(s, ATTEST_VERIFIED);
        free(leaf);
    }
    fake_chain_free(&chain);
    if (disagreements > 0)
        fail_msg("the cache accepts %u leaves that path validation refuses", disagreements);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_refuses_lookalike_leaf),
        cmocka_unit_test(test_cache_matches_full_path),
        cmocka_unit_test(test_cache_eviction),
        cmocka_unit_test(test_cache_validity_edges),
        cmocka_unit_test(test_cache_leaf_checks),
    };
    return cmocka_run_group_tests(tests, attest_fixture_setup, attest_fixture_teardown);
}
