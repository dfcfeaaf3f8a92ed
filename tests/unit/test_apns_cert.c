/* Unit tests of apns/apns_cert.c: reading the MDM push certificate, its topic and expiry, from
 * PEM and PKCS#12, and refusing what cannot push. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apns_cert.h"
#include "fake_apple.h"

#define TOPIC "com.apple.mgmt.External.7e5f3c8a-1d2b-4c3e-9f00-0123456789ab"

struct pair {
    X509 *cert;
    EVP_PKEY *key;
};

/* A self-signed certificate like Apple's push certificates: UID = topic in the subject. */
static struct pair make_pair(const char *uid, long days)
{
    struct pair p = {X509_new(), EVP_EC_gen("P-256")};
    assert_non_null(p.cert);
    assert_non_null(p.key);
    X509_set_version(p.cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(p.cert), 42);
    X509_gmtime_adj(X509_getm_notBefore(p.cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(p.cert), days * 86400);
    X509_NAME *name = X509_get_subject_name(p.cert);
    if (uid != NULL)
        assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_userId, MBSTRING_ASC,
                                                    (const unsigned char *)uid, -1, -1, 0),
                         1);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"APSP:7e5f3c8a", -1,
                               -1, 0);
    X509_set_issuer_name(p.cert, name);
    X509_set_pubkey(p.cert, p.key);
    assert_true(X509_sign(p.cert, p.key, EVP_sha256()) > 0);
    return p;
}

static void free_pair(struct pair *p)
{
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
}

/* The PEM of a certificate or a key, through the stand-in PKI's memory-BIO helper. */
static char *cert_pem(X509 *cert, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_X509(bio, cert));
    char *out = fake_bio_string(bio, len);
    BIO_free(bio);
    assert_non_null(out);
    return out;
}

static char *key_pem(EVP_PKEY *key, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL));
    char *out = fake_bio_string(bio, len);
    BIO_free(bio);
    assert_non_null(out);
    return out;
}

static void test_pem(void **state)
{
    struct pair p = make_pair(TOPIC, 365);
    size_t cert_len, key_len;
    char *cert = cert_pem(p.cert, &cert_len);
    char *key = key_pem(p.key, &key_len);
    struct apns_cert out;
    char err[256];
    assert_true(apns_cert_from_pem(&out, cert, cert_len, key, key_len, err, sizeof(err)));
    assert_string_equal(out.topic, TOPIC);
    long days = apns_cert_days_left(&out, time(NULL));
    assert_true(days >= 363 && days <= 365);
    assert_non_null(strstr(out.cert_pem, "BEGIN CERTIFICATE"));
    assert_non_null(strstr(out.key_pem, "PRIVATE KEY"));
    apns_cert_clear(&out);

    /* Certificate and key in one file. */
    size_t both_len = cert_len + key_len;
    char *both = malloc(both_len + 1);
    memcpy(both, cert, cert_len);
    memcpy(both + cert_len, key, key_len + 1);
    assert_true(apns_cert_from_pem(&out, both, both_len, NULL, 0, err, sizeof(err)));
    assert_string_equal(out.topic, TOPIC);
    apns_cert_clear(&out);
    free(both);
    free(cert);
    free(key);
    free_pair(&p);
}

static void test_refusals(void **state)
{
    struct pair p = make_pair(TOPIC, 30), other = make_pair(TOPIC, 30),
                no_uid = make_pair(NULL, 30);
    size_t cert_len, key_len, other_key_len, no_uid_len;
    char *cert = cert_pem(p.cert, &cert_len);
    char *key = key_pem(p.key, &key_len);
    char *other_key = key_pem(other.key, &other_key_len);
    char *no_uid_cert = cert_pem(no_uid.cert, &no_uid_len);
    struct apns_cert out;
    char err[256];

    assert_false(
        apns_cert_from_pem(&out, cert, cert_len, other_key, other_key_len, err, sizeof(err)));
    assert_non_null(strstr(err, "does not belong"));
    assert_false(apns_cert_from_pem(&out, no_uid_cert, no_uid_len, key, key_len, err, sizeof(err)));
    assert_non_null(strstr(err, "UID"));
    assert_false(apns_cert_from_pem(&out, "garbage", 7, key, key_len, err, sizeof(err)));
    assert_false(apns_cert_from_pem(&out, cert, cert_len, NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "private key"));
    free(cert);
    free(key);
    free(other_key);
    free(no_uid_cert);
    free_pair(&p);
    free_pair(&other);
    free_pair(&no_uid);
}

static void test_pkcs12(void **state)
{
    struct pair p = make_pair(TOPIC, 100);
    PKCS12 *p12 = PKCS12_create("s3cret", "push", p.key, p.cert, NULL, 0, 0, 0, 0, 0);
    assert_non_null(p12);
    unsigned char *der = NULL;
    int len = i2d_PKCS12(p12, &der);
    assert_true(len > 0);
    struct apns_cert out;
    char err[256];
    assert_true(apns_cert_from_pkcs12(&out, der, (size_t)len, "s3cret", err, sizeof(err)));
    assert_string_equal(out.topic, TOPIC);
    apns_cert_clear(&out);
    assert_false(apns_cert_from_pkcs12(&out, der, (size_t)len, "wrong", err, sizeof(err)));
    assert_non_null(strstr(err, "password"));
    assert_false(apns_cert_from_pkcs12(&out, (const unsigned char *)"xx", 2, "", err, sizeof(err)));
    OPENSSL_free(der);
    PKCS12_free(p12);
    free_pair(&p);
}

static void test_expired(void **state)
{
    struct pair p = make_pair(TOPIC, -2);
    size_t cert_len, key_len;
    char *cert = cert_pem(p.cert, &cert_len);
    char *key = key_pem(p.key, &key_len);
    struct apns_cert out;
    char err[256];
    /* An expired certificate still loads: vouchd reports it rather than refusing to start. */
    assert_true(apns_cert_from_pem(&out, cert, cert_len, key, key_len, err, sizeof(err)));
    assert_true(apns_cert_days_left(&out, time(NULL)) < 0);
    apns_cert_clear(&out);
    free(cert);
    free(key);
    free_pair(&p);
}

/* What PUT /v1/pushcert and vouchctl pushcert install accept: a push topic, not expired. */
static bool installable(const char *uid, long days, char *err, size_t err_size)
{
    struct pair p = make_pair(uid, days);
    size_t cert_len, key_len;
    char *cert = cert_pem(p.cert, &cert_len);
    char *key = key_pem(p.key, &key_len);
    struct apns_cert out;
    assert_true(apns_cert_from_pem(&out, cert, cert_len, key, key_len, err, err_size));
    bool ok = apns_cert_check_installable(&out, time(NULL), err, err_size);
    apns_cert_clear(&out);
    free(cert);
    free(key);
    free_pair(&p);
    return ok;
}

static void test_installable(void **state)
{
    char err[512];
    assert_true(installable(TOPIC, 365, err, sizeof(err)));
    assert_true(installable(TOPIC, 1, err, sizeof(err))); /* soon: a warning, not a refusal */
    assert_true(installable("com.apple.mgmt.XServer.1234", 365, err, sizeof(err)));
    assert_false(installable(TOPIC, -2, err, sizeof(err)));
    assert_non_null(strstr(err, "expired"));
    assert_false(installable("com.example.app", 365, err, sizeof(err)));
    assert_non_null(strstr(err, "not an MDM push topic"));
    assert_false(installable("com.apple.mgmt.", 365, err, sizeof(err)));
    assert_false(installable("com.apple.mgmtExternal.1234", 365, err, sizeof(err)));
}

static void test_not_after_text(void **state)
{
    struct apns_cert cert = {.not_after = 1800000000}; /* 2027-01-15T08:00:00Z */
    char text[32];
    apns_cert_not_after_text(&cert, text, sizeof(text));
    assert_string_equal(text, "2027-01-15T08:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pem),         cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_pkcs12),      cmocka_unit_test(test_expired),
        cmocka_unit_test(test_installable), cmocka_unit_test(test_not_after_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
