/* Unit tests of server/attestation/attest.c, the P-384 verification by precomputed tables
 * (attest_p384_key_table, attest_p384_verify): on every signature, valid, altered, out of range,
 * badly encoded or at the edges of the arithmetic, it must give the answer of OpenSSL's own
 * EVP_PKEY_verify, and it must take only P-384 keys.
 *
 * Shared set-up and helpers: attest_fixture.h. */
#include "attest_fixture.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest_internal.h"

#define KEYS 3

struct keys {
    struct attest_verifier *v;
    EVP_PKEY *key[KEYS];
    EC_GROUP *table[KEYS];
};

static void keys_new(struct keys *k)
{
    k->v = new_verifier(g.root_pem);
    for (int i = 0; i < KEYS; i++) {
        k->key[i] = EVP_EC_gen("P-384");
        assert_non_null(k->key[i]);
        k->table[i] = attest_p384_key_table(k->v, k->key[i]);
        assert_non_null(k->table[i]);
    }
}

static void keys_free(struct keys *k)
{
    for (int i = 0; i < KEYS; i++) {
        EC_GROUP_free(k->table[i]);
        EVP_PKEY_free(k->key[i]);
    }
    attest_verifier_free(k->v);
}

/* OpenSSL's answer: EVP_PKEY_verify of the digest, as X509_verify ends. */
static bool openssl_verify(EVP_PKEY *key, const uint8_t digest[48], const uint8_t *sig,
                           size_t sig_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
    bool ok = EVP_PKEY_verify(ctx, sig, sig_len, digest, 48) == 1;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

static size_t sign(EVP_PKEY *key, const uint8_t digest[48], uint8_t *sig, size_t size)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    size_t len = size;
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_sign_init(ctx), 1);
    assert_int_equal(EVP_PKEY_sign(ctx, sig, &len, digest, 48), 1);
    EVP_PKEY_CTX_free(ctx);
    return len;
}

/* The DER of (r, s) as given, whatever their range. */
static size_t encode(const BIGNUM *r, const BIGNUM *s, uint8_t *out, size_t size)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *rr = BN_dup(r), *ss = BN_dup(s);
    assert_non_null(sig);
    assert_int_equal(ECDSA_SIG_set0(sig, rr, ss), 1);
    unsigned char *der = NULL;
    int len = i2d_ECDSA_SIG(sig, &der);
    assert_true(len > 0 && (size_t)len <= size);
    memcpy(out, der, (size_t)len);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return (size_t)len;
}

static unsigned disagreements;

static void compare(struct keys *k, int key, int table, const uint8_t digest[48],
                    const uint8_t *sig, size_t len, const char *what, bool expect_valid)
{
    bool ours = attest_p384_verify(k->v, k->table[table], digest, sig, len);
    bool theirs = openssl_verify(k->key[key], digest, sig, len);
    if (ours != theirs) {
        print_error("%s: tables say %d, OpenSSL says %d\n", what, ours, theirs);
        disagreements++;
    }
    if (theirs != expect_valid) {
        print_error("%s: OpenSSL says %d, the test expected %d\n", what, theirs, expect_valid);
        disagreements++;
    }
}

/* Valid signatures, each with one thing changed. */
static void test_p384_matches_openssl(void **state)
{
    (void)state;
    struct keys k;
    keys_new(&k);
    disagreements = 0;
    EC_GROUP *curve = EC_GROUP_new_by_curve_name(NID_secp384r1);
    assert_non_null(curve);
    const BIGNUM *n = EC_GROUP_get0_order(curve);
    BIGNUM *t = BN_new();
    for (int i = 0; i < 60; i++) {
        int key = i % KEYS;
        uint8_t digest[48], sig[160], alt[160];
        RAND_bytes(digest, sizeof(digest));
        size_t len = sign(k.key[key], digest, sig, sizeof(sig));
        compare(&k, key, key, digest, sig, len, "valid", true);
        compare(&k, (key + 1) % KEYS, (key + 1) % KEYS, digest, sig, len, "another key", false);

        uint8_t other[48];
        memcpy(other, digest, sizeof(other));
        other[i % 48] ^= (uint8_t)(1u << (i % 8));
        compare(&k, key, key, other, sig, len, "another digest", false);

        /* Every byte of the DER altered in turn, one per signature. */
        memcpy(alt, sig, len);
        alt[i % len] ^= 0x01;
        compare(&k, key, key, digest, alt, len, "one byte altered", false);
        compare(&k, key, key, digest, sig, len - 1, "truncated", false);
        memcpy(alt, sig, len);
        alt[len] = 0;
        compare(&k, key, key, digest, alt, len + 1, "a trailing byte", false);

        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
        assert_non_null(es);
        const BIGNUM *sr, *ss;
        ECDSA_SIG_get0(es, &sr, &ss);
        /* (r, n - s) is valid too: ECDSA does not fix the sign of the point. */
        assert_int_equal(BN_sub(t, n, ss), 1);
        size_t l2 = encode(sr, t, alt, sizeof(alt));
        compare(&k, key, key, digest, alt, l2, "s negated", true);
        assert_int_equal(BN_add(t, ss, n), 1);
        l2 = encode(sr, t, alt, sizeof(alt));
        compare(&k, key, key, digest, alt, l2, "s + n", false);
        assert_int_equal(BN_add(t, sr, n), 1);
        l2 = encode(t, ss, alt, sizeof(alt));
        compare(&k, key, key, digest, alt, l2, "r + n", false);
        l2 = encode(ss, sr, alt, sizeof(alt));
        compare(&k, key, key, digest, alt, l2, "r and s swapped", false);
        ECDSA_SIG_free(es);
    }
    BN_free(t);
    EC_GROUP_free(curve);
    keys_free(&k);
    if (disagreements != 0)
        fail_msg("%u disagreements with OpenSSL", disagreements);
}

/* r and s out of range, and encodings OpenSSL refuses (not DER). */
static void test_p384_refuses_what_openssl_refuses(void **state)
{
    (void)state;
    struct keys k;
    keys_new(&k);
    disagreements = 0;
    EC_GROUP *curve = EC_GROUP_new_by_curve_name(NID_secp384r1);
    const BIGNUM *n = EC_GROUP_get0_order(curve);
    BIGNUM *zero = BN_new(), *one = BN_new(), *n1 = BN_dup(n);
    BN_zero(zero);
    BN_one(one);
    BN_sub_word(n1, 1);
    uint8_t digest[48], sig[160], alt[200];
    RAND_bytes(digest, sizeof(digest));
    size_t len = sign(k.key[0], digest, sig, sizeof(sig));
    const BIGNUM *values[] = {zero, one, n1, n};
    const char *names[] = {"0", "1", "n - 1", "n"};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 4; j++) {
            char what[64];
            snprintf(what, sizeof(what), "r = %s, s = %s", names[i], names[j]);
            size_t l = encode(values[i], values[j], alt, sizeof(alt));
            compare(&k, 0, 0, digest, alt, l, what, false);
        }
    }
    /* The same signature in BER: a long-form length where the short form fits. */
    assert_true(sig[1] < 0x80);
    alt[0] = 0x30;
    alt[1] = 0x81;
    alt[2] = sig[1];
    memcpy(alt + 3, sig + 2, len - 2);
    compare(&k, 0, 0, digest, alt, len + 1, "BER length", false);
    /* An integer padded with a zero byte it does not need. */
    size_t rlen = sig[3];
    alt[0] = 0x30;
    alt[1] = (uint8_t)(sig[1] + 1);
    alt[2] = 0x02;
    alt[3] = (uint8_t)(rlen + 1);
    alt[4] = 0x00;
    memcpy(alt + 5, sig + 4, len - 4);
    if (sig[4] < 0x80) /* a zero before a byte under 0x80 is never needed */
        compare(&k, 0, 0, digest, alt, len + 1, "padded r", false);
    compare(&k, 0, 0, digest, sig, 0, "empty", false);
    /* Negative integers (i2d_ECDSA_SIG will not write them). */
    const uint8_t negative_r[] = {0x30, 0x06, 0x02, 0x01, 0xff, 0x02, 0x01, 0x01};
    const uint8_t negative_s[] = {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0xff};
    compare(&k, 0, 0, digest, negative_r, sizeof(negative_r), "r = -1", false);
    compare(&k, 0, 0, digest, negative_s, sizeof(negative_s), "s = -1", false);
    BN_free(zero);
    BN_free(one);
    BN_free(n1);
    EC_GROUP_free(curve);
    keys_free(&k);
    if (disagreements != 0)
        fail_msg("%u disagreements with OpenSSL", disagreements);
}

/* Digests at the edges of the arithmetic: 0 (u1 = 0, u1*G at infinity), n (the same modulo n)
 * and all ones (above n): signed, verified, and altered. */
static void test_p384_digest_edges(void **state)
{
    (void)state;
    struct keys k;
    keys_new(&k);
    disagreements = 0;
    EC_GROUP *curve = EC_GROUP_new_by_curve_name(NID_secp384r1);
    uint8_t digests[3][48];
    memset(digests[0], 0, 48);
    assert_int_equal(BN_bn2binpad(EC_GROUP_get0_order(curve), digests[1], 48), 48);
    memset(digests[2], 0xff, 48);
    for (int d = 0; d < 3; d++) {
        for (int i = 0; i < 4; i++) {
            uint8_t sig[160];
            size_t len = sign(k.key[i % KEYS], digests[d], sig, sizeof(sig));
            compare(&k, i % KEYS, i % KEYS, digests[d], sig, len, "edge digest", true);
            sig[len - 1] ^= 0x80;
            compare(&k, i % KEYS, i % KEYS, digests[d], sig, len, "edge digest, altered", false);
        }
    }
    EC_GROUP_free(curve);
    keys_free(&k);
    if (disagreements != 0)
        fail_msg("%u disagreements with OpenSSL", disagreements);
}

/* Only P-384 keys get a table: anything else is verified the general way. */
static void test_p384_key_table_takes_p384_only(void **state)
{
    (void)state;
    struct attest_verifier *v = new_verifier(g.root_pem);
    EVP_PKEY *p256 = EVP_EC_gen("P-256"), *p521 = EVP_EC_gen("P-521");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(p256);
    assert_non_null(p521);
    assert_non_null(ed);
    assert_null(attest_p384_key_table(v, p256));
    assert_null(attest_p384_key_table(v, p521));
    assert_null(attest_p384_key_table(v, ed));
    assert_null(attest_p384_key_table(v, NULL));
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p521);
    EVP_PKEY_free(ed);
    attest_verifier_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_p384_matches_openssl),
        cmocka_unit_test(test_p384_refuses_what_openssl_refuses),
        cmocka_unit_test(test_p384_digest_edges),
        cmocka_unit_test(test_p384_key_table_takes_p384_only),
    };
    return cmocka_run_group_tests(tests, attest_fixture_setup, attest_fixture_teardown);
}
