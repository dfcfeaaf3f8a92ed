/* Unit tests of server/attestation/attest.c, chain validation: lookalike roots, validity of leaf and sub CA,
 * leaves signed by the root or sent alone, foreign sub CAs, only the configured roots as anchors,
 * and answers of the wrong shape (item counts, items that are not certificates, the size limit).
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

static void test_untrusted_lookalike_root(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    struct attest_verdict v;
    struct request r = default_request();
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    issue(g.lookalike, &spec, &chain); /* [lookalike leaf, lookalike sub CA] */
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN,
                 &v);
    /* Properties are still read for the record. */
    assert_true(v.leaf_parsed);
    assert_string_equal(v.properties.udid, dev_udid);
    assert_string_equal(v.properties.serial_number, dev_serial);
    fake_chain_free(&chain);

    /* With the look-alike's root appended as a third item. */
    issue(g.lookalike, &spec, &chain);
    uint8_t *root_der;
    size_t root_len;
    assert_true(fake_apple_root_der(g.lookalike, &root_der, &root_len));
    struct items it = items_of(&chain);
    items_push(&it, root_der, root_len);
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    free(root_der);
    fake_chain_free(&chain);
}

static void test_untrusted_leaf_validity(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = NOW - 100 * DAY; /* expired 9 days ago */
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = NOW + DAY; /* not yet valid */
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = NOW - 2 * DAY;
    spec.not_after = NOW - 1; /* expired a second ago */
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = NOW + 1; /* valid a second from now */
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);
}

static void test_untrusted_sub_ca_validity(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    size_t len;

    /* pki's sub CA re-issued with the same name and key but expired in 2021: only its validity
     * is wrong (the leaf's signature, the root and the leaf's validity are good). */
    uint8_t *expired = craft_sub((time_t)1577836800, (time_t)1609459200, 0, &len);
    struct items it = {0};
    struct request r = default_request();
    struct attest_verdict v;
    items_push(&it, chain.der[0], chain.len[0]);
    items_push(&it, expired, len);
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    free(expired);

    /* ... and not yet valid (from 2027). */
    uint8_t *future = craft_sub((time_t)1798761600, (time_t)1893456000, 0, &len);
    it.der[1] = future;
    it.len[1] = len;
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    free(future);

    /* ... and valid: the crafting itself is sound. */
    uint8_t *valid = craft_sub(NOW - 365 * DAY, NOW + 365 * DAY, 0, &len);
    it.der[1] = valid;
    it.len[1] = len;
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    free(valid);
    fake_chain_free(&chain);

    /* A whole hierarchy that expired in 2020 (root and sub CA), trusted by its own verifier. */
    char err[256] = "";
    struct fake_apple *old =
        fake_apple_new_valid((time_t)1420070400, (time_t)1577836800, err, sizeof(err));
    if (old == NULL)
        fail_msg("fake_apple_new_valid: %s", err);
    char *old_pem = fake_apple_root_pem(old);
    struct attest_verifier *ov = new_verifier(old_pem);
    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    issue(old, &spec, &chain);
    it = items_of(&chain);
    run(ov, &it, &r, &v);
    assert_verdict(&v, "expired hierarchy", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    /* ... which does verify at a time inside its life. */
    r.at = (time_t)1500000000;
    spec.not_before = r.at - DAY;
    spec.not_after = NOW + 30 * DAY; /* outlives its hierarchy */
    fake_chain_free(&chain);
    issue(old, &spec, &chain);
    it = items_of(&chain);
    run(ov, &it, &r, &v);
    assert_verdict(&v, "expired hierarchy in its time", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH,
                   ATTEST_REASON_NONE);
    /* The cache remembers the sub CA with its window: later, it is refused again. */
    r.at = NOW;
    run(ov, &it, &r, &v);
    assert_verdict(&v, "expired hierarchy, sub CA cached", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    attest_verifier_free(ov);
    free(old_pem);
    fake_chain_free(&chain);
    fake_apple_free(old);
}

/* Apple's leaves are always issued by the Sub CA; one signed by the root directly is refused
 * (the brief's rule). */
static void test_untrusted_leaf_signed_by_root(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.issuer = FAKE_ISSUER_ROOT;
    issue(g.pki, &spec, &chain); /* [leaf by root, sub CA] */
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    struct items it = {0};
    struct request r = default_request();
    struct attest_verdict v;
    items_push(&it, chain.der[0], chain.len[0]); /* alone */
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    fake_chain_free(&chain);
}

static void test_untrusted_leaf_alone(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    struct items it = {0};
    struct request r = default_request();
    struct attest_verdict v;
    items_push(&it, chain.der[0], chain.len[0]);
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    assert_true(v.leaf_parsed);
    /* The sub CA sent twice is fine; sent first, it is not a leaf of this device. */
    items_push(&it, chain.der[1], chain.len[1]);
    items_push(&it, chain.der[1], chain.len[1]);
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    struct items reversed = {0};
    items_push(&reversed, chain.der[1], chain.len[1]);
    items_push(&reversed, chain.der[0], chain.len[0]);
    /* The sub CA as the "leaf" hangs straight under the root: not Apple's shape. */
    expect(&reversed, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    fake_chain_free(&chain);
}

static void test_untrusted_foreign_sub_ca(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    /* Our leaf (signed by pki's sub CA) with the look-alike's sub CA. */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.signer = g.pki;
    issue(g.lookalike, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    /* The look-alike's leaf with our (trusted, cached) sub CA. */
    spec.signer = g.lookalike;
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);
}

/* leaf_bad: the leaf itself is what is malformed (then nothing may be read from it); otherwise
 * whether the leaf's properties are kept is the verifier's choice. */
static void expect_malformed(const struct items *it, bool leaf_bad)
{
    struct request r = default_request();
    struct attest_verdict v;
    expect(it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_MALFORMED, &v);
    if (leaf_bad) {
        assert_false(v.leaf_parsed);
        assert_int_equal(v.properties.sip_enabled, -1);
        assert_int_equal(v.properties.third_party_kexts_allowed, -1);
        assert_false(v.properties.has_udid);
    }
}

static void test_malformed_item_counts(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    struct items it = {0};
    expect_malformed(&it, true); /* 0 items */
    it = items_of(&chain);
    items_push(&it, chain.der[1], chain.len[1]);
    items_push(&it, chain.der[1], chain.len[1]);
    struct request r = default_request();
    struct attest_verdict v;
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v); /* 4 */
    items_push(&it, chain.der[1], chain.len[1]);
    expect_malformed(&it, false); /* 5 items */
    fake_chain_free(&chain);
}

static void test_malformed_items(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    static const uint8_t garbage[] = "this is not a certificate, but it is long enough to look";
    struct items it;

    /* An item of 0 bytes, as the leaf and as the intermediate. */
    it = items_of(&chain);
    it.len[0] = 0;
    expect_malformed(&it, true);
    it = items_of(&chain);
    it.len[1] = 0;
    expect_malformed(&it, false);

    /* Garbage, as the leaf and as the intermediate. */
    it = items_of(&chain);
    it.der[0] = garbage;
    it.len[0] = sizeof(garbage);
    expect_malformed(&it, true);
    it = items_of(&chain);
    it.der[1] = garbage;
    it.len[1] = sizeof(garbage);
    expect_malformed(&it, false);
    it = items_of(&chain);
    items_push(&it, garbage, sizeof(garbage));
    expect_malformed(&it, false);

    /* DER followed by trailing bytes. */
    for (size_t which = 0; which < 2; which++) {
        uint8_t *padded = malloc(chain.len[which] + 1);
        assert_non_null(padded);
        memcpy(padded, chain.der[which], chain.len[which]);
        padded[chain.len[which]] = 0;
        it = items_of(&chain);
        it.der[which] = padded;
        it.len[which] = chain.len[which] + 1;
        expect_malformed(&it, which == 0);
        /* Truncated by one byte. */
        it.len[which] = chain.len[which] - 1;
        expect_malformed(&it, which == 0);
        /* Two certificates in one item. */
        uint8_t *two = malloc(chain.len[0] + chain.len[1]);
        assert_non_null(two);
        memcpy(two, chain.der[which], chain.len[which]);
        memcpy(two + chain.len[which], chain.der[1 - which], chain.len[1 - which]);
        it = items_of(&chain);
        it.der[which] = two;
        it.len[which] = chain.len[0] + chain.len[1];
        expect_malformed(&it, which == 0);
        free(two);
        free(padded);
    }

    /* PEM is not DER. */
    BIO *bio = BIO_new(BIO_s_mem());
    const unsigned char *p = chain.der[0];
    X509 *leaf = d2i_X509(NULL, &p, (long)chain.len[0]);
    assert_non_null(leaf);
    assert_int_equal(PEM_write_bio_X509(bio, leaf), 1);
    char *pem;
    long pem_len = BIO_get_mem_data(bio, &pem);
    it = items_of(&chain);
    it.der[0] = (const uint8_t *)pem;
    it.len[0] = (size_t)pem_len;
    expect_malformed(&it, true);
    BIO_free(bio);
    X509_free(leaf);
    fake_chain_free(&chain);
}

/* ATTEST_MAX_CERT_BYTES (16 KiB) is allowed, one byte more is not, for both items. */
static void test_malformed_size_limit(void **state)
{
    (void)state;
    struct request r = default_request();
    struct attest_verdict v;
    struct items it;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));

    uint8_t *leaf = craft_exact(true, ATTEST_MAX_CERT_BYTES);
    it = items_of(&chain);
    it.der[0] = leaf;
    it.len[0] = ATTEST_MAX_CERT_BYTES;
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    free(leaf);
    leaf = craft_exact(true, ATTEST_MAX_CERT_BYTES + 1);
    it.der[0] = leaf;
    it.len[0] = ATTEST_MAX_CERT_BYTES + 1;
    expect_malformed(&it, true);
    struct attest_properties props;
    time_t nb, na;
    assert_false(attest_read_leaf(leaf, ATTEST_MAX_CERT_BYTES + 1, &props, &nb, &na));
    free(leaf);

    uint8_t *sub = craft_exact(false, ATTEST_MAX_CERT_BYTES);
    it = items_of(&chain);
    it.der[1] = sub;
    it.len[1] = ATTEST_MAX_CERT_BYTES;
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    free(sub);
    sub = craft_exact(false, ATTEST_MAX_CERT_BYTES + 1);
    it.der[1] = sub;
    it.len[1] = ATTEST_MAX_CERT_BYTES + 1;
    expect_malformed(&it, false);
    free(sub);
    fake_chain_free(&chain);
}

static void test_only_configured_roots(void **state)
{
    (void)state;
    struct fake_chain chain;
    struct request r = default_request();
    struct attest_verdict v;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    struct items it = items_of(&chain);

    /* The Apple verifier does not take the stand-in's chain. */
    struct attest_verifier *apple = new_verifier(attest_apple_root_pem);
    run(apple, &it, &r, &v);
    assert_verdict(&v, "stand-in chain, Apple root", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    /* Not even with the stand-in root sent along. */
    uint8_t *root_der;
    size_t root_len;
    assert_true(fake_apple_root_der(g.pki, &root_der, &root_len));
    struct items with_root = it;
    items_push(&with_root, root_der, root_len);
    run(apple, &with_root, &r, &v);
    assert_verdict(&v, "stand-in chain + its root, Apple root", ATTEST_FAILED,
                   ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);

    /* The stand-in verifier does not take Apple's leaf, with or without Apple's root. */
    struct items real = {0};
    items_push(&real, g.real_leaf, g.real_leaf_len);
    struct request rr = {.at = REAL_LEAF_TIME};
    struct attest_verifier *stand_in = new_verifier(g.root_pem);
    run(stand_in, &real, &rr, &v);
    assert_verdict(&v, "Apple leaf, stand-in root", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    X509 *apple_root = pem_cert(attest_apple_root_pem, strlen(attest_apple_root_pem));
    size_t apple_root_len;
    uint8_t *apple_root_der = cert_der(apple_root, &apple_root_len);
    items_push(&real, apple_root_der, apple_root_len);
    run(stand_in, &real, &rr, &v);
    assert_verdict(&v, "Apple leaf + Apple root, stand-in root", ATTEST_FAILED,
                   ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    /* Nor the stand-in's chain with Apple's root added. */
    with_root = it;
    items_push(&with_root, apple_root_der, apple_root_len);
    run(stand_in, &with_root, &r, &v);
    assert_verdict(&v, "stand-in chain + Apple root, stand-in root", ATTEST_VERIFIED,
                   ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);

    /* The look-alike's verifier does not take ours. */
    struct attest_verifier *lookalike = new_verifier(g.lookalike_root_pem);
    run(lookalike, &it, &r, &v);
    assert_verdict(&v, "stand-in chain, look-alike root", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);

    /* Both roots configured: both hierarchies' chains verify. */
    size_t both_len = strlen(g.lookalike_root_pem) + strlen(g.root_pem) + 1;
    char *both = malloc(both_len);
    assert_non_null(both);
    snprintf(both, both_len, "%s%s", g.lookalike_root_pem, g.root_pem);
    struct attest_verifier *two = new_verifier(both);
    struct fake_leaf_spec spec;
    struct fake_chain theirs;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    issue(g.lookalike, &spec, &theirs);
    struct items it_theirs = items_of(&theirs);
    for (int round = 0; round < 2; round++) {
        run(two, &it, &r, &v);
        assert_verdict(&v, "ours, two roots", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH,
                       ATTEST_REASON_NONE);
        run(two, &it_theirs, &r, &v);
        assert_verdict(&v, "theirs, two roots", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH,
                       ATTEST_REASON_NONE);
    }

    /* Bad configurations. */
    char err[256] = "";
    assert_null(attest_verifier_new("", 0, err, sizeof(err)));
    assert_true(err[0] != '\0');
    err[0] = '\0';
    assert_null(attest_verifier_new("not a PEM", 9, err, sizeof(err)));
    assert_true(err[0] != '\0');

    attest_verifier_free(apple);
    attest_verifier_free(stand_in);
    attest_verifier_free(lookalike);
    attest_verifier_free(two);
    attest_verifier_free(NULL);
    free(both);
    free(root_der);
    free(apple_root_der);
    X509_free(apple_root);
    fake_chain_free(&theirs);
    fake_chain_free(&chain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_untrusted_lookalike_root),
        cmocka_unit_test(test_untrusted_leaf_validity),
        cmocka_unit_test(test_untrusted_sub_ca_validity),
        cmocka_unit_test(test_untrusted_leaf_signed_by_root),
        cmocka_unit_test(test_untrusted_leaf_alone),
        cmocka_unit_test(test_untrusted_foreign_sub_ca),
        cmocka_unit_test(test_malformed_item_counts),
        cmocka_unit_test(test_malformed_items),
        cmocka_unit_test(test_malformed_size_limit),
        cmocka_unit_test(test_only_configured_roots),
    };
    return cmocka_run_group_tests(tests, attest_fixture_setup, attest_fixture_teardown);
}
