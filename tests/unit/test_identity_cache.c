/* Unit tests of the cache of verified certificates in server/device/identity.c: a hit proves the
 * same identity with one signature check, and is never weaker than the full verification (same
 * errors, the whole chain's validity, the way in it was verified for). */
#include "identity_fixture.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct identity_verifier *sized_verifier(const char *ca_pem, size_t cache_size)
{
    char err[256];
    struct identity_verifier *v =
        identity_verifier_new(ca_pem, strlen(ca_pem), cache_size, err, sizeof(err));
    assert_non_null(v);
    return v;
}

static struct identity_verifier *fresh_verifier(const char *ca_pem)
{
    return sized_verifier(ca_pem, IDENTITY_CACHE_DEFAULT);
}

static void assert_cache(struct identity_verifier *v, uint64_t hits, uint64_t misses)
{
    struct identity_cache_stats st;
    identity_verifier_cache_stats(v, &st);
    if (st.hits != hits || st.misses != misses)
        print_error("cache: expected %llu hits %llu misses, got %llu %llu\n",
                    (unsigned long long)hits, (unsigned long long)misses,
                    (unsigned long long)st.hits, (unsigned long long)st.misses);
    assert_true(st.hits == hits && st.misses == misses);
}

/* Signs data with key, carrying `carried` as the only certificate (not the signer's own). */
static char *sign_carrying(X509 *signer, EVP_PKEY *key, X509 *carried, const void *data, size_t len)
{
    BIO *in = BIO_new_mem_buf(data, (int)len);
    CMS_ContentInfo *cms = CMS_sign(signer, key, NULL, in, CMS_DETACHED | CMS_BINARY | CMS_NOCERTS);
    assert_non_null(cms);
    assert_int_equal(CMS_add1_cert(cms, carried), 1);
    BIO_free(in);
    char *b64 = cms_base64(cms, NULL, 0);
    CMS_ContentInfo_free(cms);
    return b64;
}

static void test_cache_hit_and_miss(void **state)
{
    struct identity_verifier *v = fresh_verifier(pki.ca_pem);
    static const char other[] = "<plist version=\"1.0\"><dict/></plist>";
    char *a = sign(pki.dev, pki.dev_key, body, sizeof(body) - 1);
    char *b = sign(pki.dev, pki.dev_key, other, sizeof(other) - 1);
    struct device_identity id;
    check_signature_len(v, a, strlen(a), body, sizeof(body) - 1, IDENTITY_OK, &id);
    assert_cache(v, 0, 1);
    /* Another message signed with the same certificate: a hit, the same identity. */
    memset(&id, 0, sizeof(id));
    check_signature_len(v, b, strlen(b), other, sizeof(other) - 1, IDENTITY_OK, &id);
    assert_cache(v, 1, 1);
    assert_identity_is(&id, pki.dev, "CN=device-ec,O=Vouch Test");
    /* A hit still checks the body. */
    check_signature_len(v, b, strlen(b), body, sizeof(body) - 1, IDENTITY_BAD_SIGNATURE, &id);
    check_signature_len(v, a, strlen(a), other, sizeof(other) - 1, IDENTITY_BAD_SIGNATURE, &id);
    assert_cache(v, 1, 1);

    /* A certificate verified for a signature does not vouch for a header, nor the reverse. */
    char *h = rfc9440(pki.dev);
    check_cert_header_len(v, h, strlen(h), IDENTITY_OK, &id);
    assert_cache(v, 1, 2);
    memset(&id, 0, sizeof(id));
    ERR_clear_error();
    assert_int_equal(identity_from_cert_header(v, h, strlen(h), &id), IDENTITY_OK);
    assert_cache(v, 2, 2);
    assert_identity_is(&id, pki.dev, "CN=device-ec,O=Vouch Test");
    free(h);
    free(a);
    free(b);
    identity_verifier_free(v);
}

static void test_cache_forged_signature(void **state)
{
    struct identity_verifier *v = fresh_verifier(pki.ca_pem);
    char *good = sign(pki.dev, pki.dev_key, body, sizeof(body) - 1);
    struct device_identity id;
    check_signature_len(v, good, strlen(good), body, sizeof(body) - 1, IDENTITY_OK, &id);
    /* The evil device's key (same issuer name and serial as the trusted device) with the cached
     * certificate carried in place of its own: refused, as without the cache. */
    char *forged = sign_carrying(pki.evil_dev, pki.evil_dev_key, pki.dev, body, sizeof(body) - 1);
    check_signature_len(v, forged, strlen(forged), body, sizeof(body) - 1, IDENTITY_BAD_SIGNATURE,
                        &id);
    check_signature_len(pki.verifier, forged, strlen(forged), body, sizeof(body) - 1,
                        IDENTITY_BAD_SIGNATURE, &id);
    /* The signature's last byte changed. */
    unsigned char der[4096];
    int n = EVP_DecodeBlock(der, (const unsigned char *)good, (int)strlen(good));
    assert_true(n > 10);
    size_t len = (size_t)n - (good[strlen(good) - 1] == '=') - (good[strlen(good) - 2] == '=');
    der[len - 1] ^= 0x01;
    char *flipped = base64(der, len);
    check_signature_len(v, flipped, strlen(flipped), body, sizeof(body) - 1, IDENTITY_BAD_SIGNATURE,
                        &id);
    /* The evil device with its own certificate: untrusted, whatever is cached. */
    char *evil = sign(pki.evil_dev, pki.evil_dev_key, body, sizeof(body) - 1);
    check_signature_len(v, evil, strlen(evil), body, sizeof(body) - 1, IDENTITY_UNTRUSTED, &id);
    assert_cache(v, 0, 1);
    check_signature_len(v, good, strlen(good), body, sizeof(body) - 1, IDENTITY_OK, &id);
    assert_cache(v, 1, 1);
    free(good);
    free(forged);
    free(flipped);
    free(evil);
    identity_verifier_free(v);
}

static void test_cache_same_subject(void **state)
{
    /* Another trusted certificate with the trusted device's subject and issuer: its own entry,
     * its own identity. */
    struct identity_verifier *v = fresh_verifier(pki.ca_pem);
    EVP_PKEY *key = new_ec_key();
    X509 *twin = new_cert(key, "device-ec", pki.ca, pki.ca_key, false, 103, NULL, NOT_AFTER_ASN1);
    char *a = sign(pki.dev, pki.dev_key, body, sizeof(body) - 1);
    char *b = sign(twin, key, body, sizeof(body) - 1);
    struct device_identity id;
    for (int round = 0; round < 2; round++) {
        check_signature_len(v, a, strlen(a), body, sizeof(body) - 1, IDENTITY_OK, &id);
        assert_identity_is(&id, pki.dev, "CN=device-ec,O=Vouch Test");
        check_signature_len(v, b, strlen(b), body, sizeof(body) - 1, IDENTITY_OK, &id);
        assert_identity_is(&id, twin, "CN=device-ec,O=Vouch Test");
    }
    assert_cache(v, 2, 2);
    free(a);
    free(b);
    X509_free(twin);
    EVP_PKEY_free(key);
    identity_verifier_free(v);
}

static time_t utc(const char *asn1)
{
    ASN1_TIME *t = ASN1_TIME_new();
    struct tm tm;
    assert_int_equal(ASN1_TIME_set_string_X509(t, asn1), 1);
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    ASN1_TIME_free(t);
    return timegm(&tm);
}

static void test_cache_expiry(void **state)
{
    /* The device expires in 2035; its CA in 2030: an entry lasts as long as its whole chain. */
    EVP_PKEY *ca_key = new_ec_key(), *key = new_ec_key();
    X509 *ca = new_cert(ca_key, CA_NAME, NULL, NULL, true, 1, "20200101000000Z", "20300101000000Z");
    X509 *dev =
        new_cert(key, "device-ec", ca, ca_key, false, 100, "20200101000000Z", NOT_AFTER_ASN1);
    char *ca_text = cert_pem(ca);
    struct identity_verifier *v = fresh_verifier(ca_text);
    char *sig = sign(dev, key, body, sizeof(body) - 1);
    char *h = rfc9440(dev);
    struct device_identity id;
    struct identity_cache_stats st;

    identity_verifier_set_time(v, utc("20291231235958Z"));
    check_signature_len(v, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_OK, &id);
    check_cert_header_len(v, h, strlen(h), IDENTITY_OK, &id);
    identity_verifier_set_time(v, utc("20291231235959Z"));
    check_signature_len(v, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_OK, &id);
    assert_int_equal(identity_from_cert_header(v, h, strlen(h), &id), IDENTITY_OK);
    assert_cache(v, 2, 2);
    /* The CA's notAfter: expired for OpenSSL, so for the cache too. */
    identity_verifier_set_time(v, utc("20300101000000Z"));
    check_signature_len(v, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_UNTRUSTED, &id);
    ERR_clear_error();
    assert_int_equal(identity_from_cert_header(v, h, strlen(h), &id), IDENTITY_UNTRUSTED);
    identity_verifier_cache_stats(v, &st);
    assert_int_equal(st.expired, 2);
    /* Before the device's notBefore: not yet valid. */
    identity_verifier_set_time(v, utc("20291231235958Z"));
    check_signature_len(v, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_OK, &id);
    identity_verifier_set_time(v, utc("20191231235959Z"));
    check_signature_len(v, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_UNTRUSTED, &id);
    identity_verifier_cache_stats(v, &st);
    assert_int_equal(st.expired, 3);
    assert_cache(v, 2, 3);

    free(sig);
    free(h);
    free(ca_text);
    identity_verifier_free(v);
    X509_free(dev);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
}

static void test_cache_ber_not_kept(void **state)
{
    /* The ContentInfo in indefinite-length BER, as streaming encoders write it: OpenSSL reads
     * it, the cache does not, so it is verified in full each time. */
    struct identity_verifier *v = fresh_verifier(pki.ca_pem);
    BIO *in = BIO_new_mem_buf(body, (int)(sizeof(body) - 1));
    CMS_ContentInfo *cms = CMS_sign(pki.dev, pki.dev_key, NULL, in, CMS_DETACHED | CMS_BINARY);
    assert_non_null(cms);
    BIO_free(in);
    unsigned char *der = NULL;
    int len = i2d_CMS_ContentInfo(cms, &der);
    assert_true(len > 4 && der[0] == 0x30 && der[1] == 0x82);
    unsigned char *ber = malloc((size_t)len);
    assert_non_null(ber);
    ber[0] = 0x30;
    ber[1] = 0x80;
    memcpy(ber + 2, der + 4, (size_t)len - 4);
    ber[len - 2] = ber[len - 1] = 0x00; /* end of contents */
    char *sig = base64(ber, (size_t)len);
    struct device_identity id;
    check_signature_len(v, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_OK, &id);
    check_signature_len(v, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_OK, &id);
    assert_identity_is(&id, pki.dev, "CN=device-ec,O=Vouch Test");
    assert_cache(v, 0, 2);
    free(sig);
    free(ber);
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    identity_verifier_free(v);
}

/* count certificates proven twice each through a cache of cache_size entries; returns the
 * cache's figures. Each answer must be its own certificate's. */
static struct identity_cache_stats prove_twice(size_t cache_size, int count)
{
    struct identity_verifier *v = sized_verifier(pki.ca_pem, cache_size);
    char **headers = calloc((size_t)count, sizeof(*headers));
    uint8_t(*sha)[32] = calloc((size_t)count, 32);
    assert_true(headers != NULL && sha != NULL);
    for (int i = 0; i < count; i++) {
        X509 *cert = new_cert(pki.dev_key, "device-ec", pki.ca, pki.ca_key, false, 1000 + i, NULL,
                              NOT_AFTER_ASN1);
        headers[i] = rfc9440(cert);
        cert_sha256(cert, sha[i]);
        X509_free(cert);
    }
    struct device_identity id;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < count; i++) {
            ERR_clear_error();
            assert_int_equal(identity_from_cert_header(v, headers[i], strlen(headers[i]), &id),
                             IDENTITY_OK);
            assert_memory_equal(id.sha256, sha[i], 32);
        }
    struct identity_cache_stats st;
    identity_verifier_cache_stats(v, &st);
    for (int i = 0; i < count; i++)
        free(headers[i]);
    free(headers);
    free(sha);
    identity_verifier_free(v);
    return st;
}

static void test_cache_bounded(void **state)
{
    /* More certificates than the cache holds: older entries make room, every identity is still
     * proven. */
    const int count = 100 + 256;
    struct identity_cache_stats st = prove_twice(100, count);
    assert_int_equal(st.hits + st.misses, 2 * (uint64_t)count);
    assert_true(st.evicted >= (uint64_t)(count - 100));
    assert_true(st.misses >= (uint64_t)count);
}

static void test_cache_sized(void **state)
{
    /* identity_cache_size: a cache the fleet's size keeps all of it (every certificate proven a
     * second time is a hit, nothing evicted: no set of a few ways overflows); a cache of 1 keeps
     * nothing twice here; 0 and more than the maximum are refused. */
    const int count = 200;
    struct identity_cache_stats st = prove_twice(count, count);
    assert_int_equal(st.misses, count);
    assert_int_equal(st.hits, count);
    assert_int_equal(st.evicted, 0);
    st = prove_twice(1, count);
    assert_int_equal(st.hits, 0);
    char err[256];
    assert_null(identity_verifier_new(pki.ca_pem, strlen(pki.ca_pem), 0, err, sizeof(err)));
    assert_non_null(strstr(err, "cache size"));
    assert_null(identity_verifier_new(pki.ca_pem, strlen(pki.ca_pem), IDENTITY_CACHE_MAX + 1, err,
                                      sizeof(err)));
}

static void test_cache_least_recently_used_goes(void **state)
{
    /* A cache of 2: a, b, a again (a hit), then c takes b's place, not a's. */
    struct identity_verifier *v = sized_verifier(pki.ca_pem, 2);
    char *headers[3];
    for (int i = 0; i < 3; i++) {
        X509 *cert = new_cert(pki.dev_key, "device-ec", pki.ca, pki.ca_key, false, 2000 + i, NULL,
                              NOT_AFTER_ASN1);
        headers[i] = rfc9440(cert);
        X509_free(cert);
    }
    struct device_identity id;
    const int order[] = {0, 1, 0, 2, 0, 1};
    const uint64_t hits_after[] = {0, 0, 1, 1, 2, 2};
    for (size_t step = 0; step < sizeof(order) / sizeof(order[0]); step++) {
        const char *h = headers[order[step]];
        assert_int_equal(identity_from_cert_header(v, h, strlen(h), &id), IDENTITY_OK);
        struct identity_cache_stats st;
        identity_verifier_cache_stats(v, &st);
        assert_int_equal(st.hits, hits_after[step]);
    }
    struct identity_cache_stats st;
    identity_verifier_cache_stats(v, &st);
    assert_int_equal(st.evicted, 2); /* b for c, then c (older than a) for b */
    for (int i = 0; i < 3; i++)
        free(headers[i]);
    identity_verifier_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_hit_and_miss),
        cmocka_unit_test(test_cache_forged_signature),
        cmocka_unit_test(test_cache_same_subject),
        cmocka_unit_test(test_cache_expiry),
        cmocka_unit_test(test_cache_ber_not_kept),
        cmocka_unit_test(test_cache_bounded),
        cmocka_unit_test(test_cache_sized),
        cmocka_unit_test(test_cache_least_recently_used_goes),
    };
    return cmocka_run_group_tests(tests, identity_fixture_setup, identity_fixture_teardown);
}
