/* Unit tests of server/device/identity.c: device identity from an Mdm-Signature (detached CMS) and
 * from a TLS proxy's certificate header, against a PKI built in memory for the tests
 * (identity_fixture.c). */
#include "identity_fixture.h"

#include <ctype.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The verifier ---- */

static void test_verifier_new(void **state)
{
    char err[256];

    /* No certificate: NULL with a message. */
    static const char *const bad[] = {
        "",
        "garbage",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(identity_verifier_new(bad[i], strlen(bad[i]), IDENTITY_CACHE_DEFAULT, err,
                                          sizeof(err)));
        assert_true(err[0] != '\0');
        assert_int_equal(ERR_peek_error(), 0);
    }

    /* A PEM private key is not a certificate. */
    BIO *mem = BIO_new(BIO_s_mem());
    assert_non_null(mem);
    assert_int_equal(PEM_write_bio_PrivateKey(mem, pki.dev_key, NULL, NULL, 0, NULL, NULL), 1);
    char *key_pem = NULL;
    long key_len = BIO_get_mem_data(mem, &key_pem);
    err[0] = '\0';
    assert_null(
        identity_verifier_new(key_pem, (size_t)key_len, IDENTITY_CACHE_DEFAULT, err, sizeof(err)));
    assert_true(err[0] != '\0');
    BIO_free(mem);
    assert_int_equal(ERR_peek_error(), 0);

    /* pem_len bounds the text: cut before the END line, there is no certificate. */
    const char *end = strstr(pki.ca_pem, "-----END");
    assert_non_null(end);
    err[0] = '\0';
    assert_null(identity_verifier_new(pki.ca_pem, (size_t)(end - pki.ca_pem),
                                      IDENTITY_CACHE_DEFAULT, err, sizeof(err)));
    assert_true(err[0] != '\0');

    /* A bundle of two CAs trusts both. */
    char *evil_pem = cert_pem(pki.evil_ca);
    size_t bundle_len = strlen(pki.ca_pem) + strlen(evil_pem);
    char *bundle = malloc(bundle_len + 1);
    assert_non_null(bundle);
    snprintf(bundle, bundle_len + 1, "%s%s", pki.ca_pem, evil_pem);
    struct identity_verifier *both =
        identity_verifier_new(bundle, bundle_len, IDENTITY_CACHE_DEFAULT, err, sizeof(err));
    assert_non_null(both);
    char *sig = sign(pki.evil_dev, pki.evil_dev_key, body, sizeof(body) - 1);
    struct device_identity id;
    check_signature_len(both, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_OK, &id);
    assert_identity_is(&id, pki.evil_dev, "CN=device-ec,O=Vouch Test");
    free(sig);
    identity_verifier_free(both);
    free(bundle);
    free(evil_pem);

    identity_verifier_free(NULL);
}

/* ---- Mdm-Signature ---- */

static void test_signature_ok(void **state)
{
    char *sig = sign(pki.dev, pki.dev_key, body, sizeof(body) - 1);
    assert_null(strchr(sig, '\n'));
    struct device_identity id;
    memset(&id, 0, sizeof(id));
    check_signature_len(pki.verifier, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_OK, &id);
    assert_identity_is(&id, pki.dev, "CN=device-ec,O=Vouch Test");
    assert_true(id.subject[0] != '\0');
    assert_true(id.not_after[0] != '\0');
    free(sig);
}

static void test_signature_with_and_without_attributes(void **state)
{
    /* CMS_sign adds signed attributes (content type, digest, signing time) by default; Apple's
     * devices may or may not: both verify. */
    char *with =
        sign_with_flags(pki.dev, pki.dev_key, body, sizeof(body) - 1, CMS_DETACHED | CMS_BINARY);
    char *without = sign_with_flags(pki.dev, pki.dev_key, body, sizeof(body) - 1,
                                    CMS_DETACHED | CMS_BINARY | CMS_NOATTR);
    assert_string_not_equal(with, without);
    struct device_identity a, b;
    check_signature_len(pki.verifier, with, strlen(with), body, sizeof(body) - 1, IDENTITY_OK, &a);
    check_signature_len(pki.verifier, without, strlen(without), body, sizeof(body) - 1, IDENTITY_OK,
                        &b);
    assert_memory_equal(a.sha256, b.sha256, 32);
    assert_identity_is(&b, pki.dev, "CN=device-ec,O=Vouch Test");
    free(with);
    free(without);
}

static void test_signature_rsa(void **state)
{
    char *sig = sign(pki.dev_rsa, pki.dev_rsa_key, body, sizeof(body) - 1);
    struct device_identity id;
    check_signature_len(pki.verifier, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_OK, &id);
    assert_identity_is(&id, pki.dev_rsa, "CN=device-rsa,O=Vouch Test");
    free(sig);

    sig = sign_with_flags(pki.dev_rsa, pki.dev_rsa_key, body, sizeof(body) - 1,
                          CMS_DETACHED | CMS_BINARY | CMS_NOATTR);
    check_signature(sig, body, sizeof(body) - 1, IDENTITY_OK);
    free(sig);
}

static void test_signature_line_wrapped(void **state)
{
    /* Whitespace inside the base64 is allowed: wrap at 64 columns with CRLF. */
    char *sig = sign(pki.dev, pki.dev_key, body, sizeof(body) - 1);
    size_t len = strlen(sig);
    char *wrapped = malloc(len + len / 64 * 2 + 1);
    assert_non_null(wrapped);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (i > 0 && i % 64 == 0) {
            wrapped[n++] = '\r';
            wrapped[n++] = '\n';
        }
        wrapped[n++] = sig[i];
    }
    wrapped[n] = '\0';
    check_signature(wrapped, body, sizeof(body) - 1, IDENTITY_OK);
    free(wrapped);
    free(sig);
}

static void test_signature_body_changed(void **state)
{
    const int flag_sets[] = {CMS_DETACHED | CMS_BINARY, CMS_DETACHED | CMS_BINARY | CMS_NOATTR};
    for (size_t f = 0; f < 2; f++) {
        char *sig = sign_with_flags(pki.dev, pki.dev_key, body, sizeof(body) - 1, flag_sets[f]);
        char changed[sizeof(body)];
        memcpy(changed, body, sizeof(body));

        /* One byte changed, at the start, the middle and the end. */
        size_t where[] = {0, sizeof(body) / 2, sizeof(body) - 2};
        for (size_t i = 0; i < 3; i++) {
            changed[where[i]] ^= 0x01;
            check_signature(sig, changed, sizeof(body) - 1, IDENTITY_BAD_SIGNATURE);
            changed[where[i]] ^= 0x01;
        }
        /* One byte fewer, one byte more. */
        check_signature(sig, body, sizeof(body) - 2, IDENTITY_BAD_SIGNATURE);
        check_signature(sig, body, sizeof(body), IDENTITY_BAD_SIGNATURE);
        /* Sanity: the unchanged body still verifies. */
        check_signature(sig, changed, sizeof(body) - 1, IDENTITY_OK);
        free(sig);
    }

    /* A signature over another body entirely. */
    char *other = sign(pki.dev, pki.dev_key, "<plist/>", 8);
    check_signature(other, body, sizeof(body) - 1, IDENTITY_BAD_SIGNATURE);
    free(other);
}

static void test_signature_untrusted(void **state)
{
    /* Signed by a device certificate from the evil CA (same CA name, other key). */
    char *sig = sign(pki.evil_dev, pki.evil_dev_key, body, sizeof(body) - 1);
    check_signature(sig, body, sizeof(body) - 1, IDENTITY_UNTRUSTED);
    free(sig);
    sig = sign_with_flags(pki.evil_dev, pki.evil_dev_key, body, sizeof(body) - 1,
                          CMS_DETACHED | CMS_BINARY | CMS_NOATTR);
    check_signature(sig, body, sizeof(body) - 1, IDENTITY_UNTRUSTED);
    free(sig);

    /* Signed by the evil CA itself. */
    sig = sign(pki.evil_ca, pki.evil_ca_key, body, sizeof(body) - 1);
    check_signature(sig, body, sizeof(body) - 1, IDENTITY_UNTRUSTED);
    free(sig);

    /* Issued by the trusted CA, but expired. */
    sig = sign(pki.expired_dev, pki.expired_key, body, sizeof(body) - 1);
    check_signature(sig, body, sizeof(body) - 1, IDENTITY_UNTRUSTED);
    free(sig);

    /* Self-signed device certificate with the trusted device's name. */
    X509 *self =
        new_cert(pki.evil_dev_key, "device-ec", NULL, NULL, false, 100, NULL, NOT_AFTER_ASN1);
    sig = sign(self, pki.evil_dev_key, body, sizeof(body) - 1);
    check_signature(sig, body, sizeof(body) - 1, IDENTITY_UNTRUSTED);
    free(sig);
    X509_free(self);
}

/* The classification must not depend on what other code left in OpenSSL's (per-thread) error
 * queue: the event loop thread also runs TLS. */
static void test_signature_stale_error_queue(void **state)
{
    char *evil = sign(pki.evil_dev, pki.evil_dev_key, body, sizeof(body) - 1);
    char *good = sign(pki.dev, pki.dev_key, body, sizeof(body) - 1);
    struct device_identity id;

    ERR_raise(ERR_LIB_EVP, EVP_R_BAD_DECRYPT);
    enum identity_error e =
        identity_from_signature(pki.verifier, evil, strlen(evil), body, sizeof(body) - 1, &id);
    ERR_clear_error();
    if (e != IDENTITY_UNTRUSTED)
        print_error("with a stale error queued: expected %s, got %s\n",
                    identity_error_name(IDENTITY_UNTRUSTED), identity_error_name(e));

    ERR_raise(ERR_LIB_EVP, EVP_R_BAD_DECRYPT);
    enum identity_error e_good =
        identity_from_signature(pki.verifier, good, strlen(good), body, sizeof(body) - 1, &id);
    ERR_clear_error();
    free(evil);
    free(good);
    assert_int_equal(e_good, IDENTITY_OK);
    assert_int_equal(e, IDENTITY_UNTRUSTED);
}

static void test_signature_encoding(void **state)
{
    check_signature(NULL, body, sizeof(body) - 1, IDENTITY_MISSING);
    check_signature("", body, sizeof(body) - 1, IDENTITY_MISSING);

    /* Not base64. */
    check_signature("not base64!", body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);
    check_signature("MIIB%3D", body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);
    check_signature("====", body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);
    check_signature("   ", body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);
    check_signature("QUJD=QUJD", body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);

    /* Base64 of something that is not DER. */
    check_signature("aGVsbG8gd29ybGQ=", body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);
    check_signature("AAAA", body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);

    /* Valid DER followed by trailing bytes. */
    BIO *in = BIO_new_mem_buf(body, (int)(sizeof(body) - 1));
    CMS_ContentInfo *cms = CMS_sign(pki.dev, pki.dev_key, NULL, in, CMS_DETACHED | CMS_BINARY);
    assert_non_null(cms);
    BIO_free(in);
    char *b64 = cms_base64(cms, NULL, 0);
    check_signature(b64, body, sizeof(body) - 1, IDENTITY_OK); /* control */
    free(b64);
    b64 = cms_base64(cms, "\x00\x00", 2);
    check_signature(b64, body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);
    free(b64);
    b64 = cms_base64(cms, "\x30\x03\x02\x01\x01", 5); /* a second DER value */
    check_signature(b64, body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);
    free(b64);

    /* Truncated DER. */
    unsigned char *der = NULL;
    int der_len = i2d_CMS_ContentInfo(cms, &der);
    assert_true(der_len > 100);
    b64 = base64(der, (size_t)der_len - 7);
    check_signature(b64, body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);
    free(b64);
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);

    /* Longer than IDENTITY_MAX_HEADER_LEN. */
    size_t big = IDENTITY_MAX_HEADER_LEN + 4;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, 'A', big);
    huge[big] = '\0';
    check_signature(huge, body, sizeof(body) - 1, IDENTITY_BAD_ENCODING);
    free(huge);
}

static void test_signature_not_detached(void **state)
{
    /* Content embedded in the CMS. */
    char *sig = sign_with_flags(pki.dev, pki.dev_key, body, sizeof(body) - 1, CMS_BINARY);
    check_signature(sig, body, sizeof(body) - 1, IDENTITY_BAD_CMS);
    free(sig);

    /* Two signers, both trusted. */
    BIO *in = BIO_new_mem_buf(body, (int)(sizeof(body) - 1));
    CMS_ContentInfo *cms =
        CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_DETACHED | CMS_BINARY);
    assert_non_null(cms);
    assert_non_null(CMS_add1_signer(cms, pki.dev, pki.dev_key, EVP_sha256(), 0));
    assert_non_null(CMS_add1_signer(cms, pki.dev_rsa, pki.dev_rsa_key, EVP_sha256(), 0));
    assert_int_equal(CMS_final(cms, in, NULL, CMS_DETACHED | CMS_BINARY), 1);
    BIO_free(in);
    sig = cms_base64(cms, NULL, 0);
    CMS_ContentInfo_free(cms);
    check_signature(sig, body, sizeof(body) - 1, IDENTITY_BAD_CMS);
    free(sig);

    /* A CMS that is not SignedData. */
    in = BIO_new_mem_buf(body, (int)(sizeof(body) - 1));
    cms = CMS_data_create(in, CMS_BINARY);
    assert_non_null(cms);
    BIO_free(in);
    sig = cms_base64(cms, NULL, 0);
    CMS_ContentInfo_free(cms);
    check_signature(sig, body, sizeof(body) - 1, IDENTITY_BAD_CMS);
    free(sig);

    /* A DER certificate where a CMS is expected. */
    size_t der_len;
    unsigned char *der = cert_der(pki.dev, &der_len);
    sig = base64(der, der_len);
    OPENSSL_free(der);
    struct device_identity id;
    ERR_clear_error();
    enum identity_error e =
        identity_from_signature(pki.verifier, sig, strlen(sig), body, sizeof(body) - 1, &id);
    assert_true(e == IDENTITY_BAD_ENCODING || e == IDENTITY_BAD_CMS);
    assert_int_equal(ERR_peek_error(), 0);
    free(sig);
}

/* ---- Certificate headers ---- */

/* URL-escapes s: every byte outside [A-Za-z0-9] and `keep` becomes %XX. */
static char *url_escape(const char *s, const char *keep)
{
    size_t len = strlen(s);
    char *out = malloc(len * 3 + 1);
    assert_non_null(out);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || (c != '\0' && strchr(keep, c) != NULL)) {
            out[n++] = (char)c;
        } else {
            snprintf(out + n, 4, "%%%02X", c);
            n += 3;
        }
    }
    out[n] = '\0';
    return out;
}

static void test_cert_header_rfc9440(void **state)
{
    char *h = rfc9440(pki.dev);
    struct device_identity id;
    check_cert_header_len(pki.verifier, h, strlen(h), IDENTITY_OK, &id);
    assert_identity_is(&id, pki.dev, "CN=device-ec,O=Vouch Test");

    /* The same certificate through the signature gives the same identity. */
    char *sig = sign(pki.dev, pki.dev_key, body, sizeof(body) - 1);
    struct device_identity via_sig;
    check_signature_len(pki.verifier, sig, strlen(sig), body, sizeof(body) - 1, IDENTITY_OK,
                        &via_sig);
    assert_memory_equal(id.sha256, via_sig.sha256, 32);
    assert_string_equal(id.subject, via_sig.subject);
    assert_string_equal(id.not_after, via_sig.not_after);
    free(sig);
    free(h);

    h = rfc9440(pki.dev_rsa);
    check_cert_header_len(pki.verifier, h, strlen(h), IDENTITY_OK, &id);
    assert_identity_is(&id, pki.dev_rsa, "CN=device-rsa,O=Vouch Test");
    free(h);
}

static void test_cert_header_escaped_pem(void **state)
{
    char *pem = cert_pem(pki.dev);
    struct device_identity id;

    /* Every non-alphanumeric byte escaped. */
    char *h = url_escape(pem, "");
    assert_null(strchr(h, '\n'));
    check_cert_header_len(pki.verifier, h, strlen(h), IDENTITY_OK, &id);
    assert_identity_is(&id, pki.dev, "CN=device-ec,O=Vouch Test");
    free(h);

    /* RFC 3986 unreserved characters left as they are ("-----BEGIN" stays readable). */
    h = url_escape(pem, "-._~");
    assert_memory_equal(h, "-----BEGIN%20CERTIFICATE-----%0A", 32);
    check_cert_header_len(pki.verifier, h, strlen(h), IDENTITY_OK, &id);
    assert_identity_is(&id, pki.dev, "CN=device-ec,O=Vouch Test");
    free(h);
    free(pem);
}

static void test_cert_header_untrusted(void **state)
{
    char *h = rfc9440(pki.evil_dev);
    check_cert_header(h, IDENTITY_UNTRUSTED);
    free(h);
    h = rfc9440(pki.expired_dev);
    check_cert_header(h, IDENTITY_UNTRUSTED);
    free(h);
    h = rfc9440(pki.evil_ca);
    check_cert_header(h, IDENTITY_UNTRUSTED);
    free(h);

    char *pem = cert_pem(pki.evil_dev);
    h = url_escape(pem, "-._~");
    check_cert_header(h, IDENTITY_UNTRUSTED);
    free(h);
    free(pem);
}

static void test_cert_header_encoding(void **state)
{
    check_cert_header(NULL, IDENTITY_MISSING);
    check_cert_header("", IDENTITY_MISSING);

    check_cert_header("garbage", IDENTITY_BAD_ENCODING);
    check_cert_header(":", IDENTITY_BAD_ENCODING);
    check_cert_header("::", IDENTITY_BAD_ENCODING);
    check_cert_header(":not base64!:", IDENTITY_BAD_ENCODING);
    check_cert_header(":aGVsbG8gd29ybGQ=:", IDENTITY_BAD_ENCODING);
    check_cert_header("%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE%2D%2D%2D%2D%2D%0AbWVo%0A%2D%2D%2D%2D%2D"
                      "END%20CERTIFICATE%2D%2D%2D%2D%2D%0A",
                      IDENTITY_BAD_ENCODING);
    check_cert_header("%ZZ%GG", IDENTITY_BAD_ENCODING);

    /* DER followed by trailing bytes. */
    size_t der_len;
    unsigned char *der = cert_der(pki.dev, &der_len);
    unsigned char *longer = malloc(der_len + 3);
    assert_non_null(longer);
    memcpy(longer, der, der_len);
    memcpy(longer + der_len, "\x00\x01\x02", 3);
    char *b64 = base64(longer, der_len + 3);
    char *h = malloc(strlen(b64) + 3);
    assert_non_null(h);
    snprintf(h, strlen(b64) + 3, ":%s:", b64);
    check_cert_header(h, IDENTITY_BAD_ENCODING);
    free(h);
    free(b64);
    /* Truncated DER. */
    b64 = base64(der, der_len - 5);
    h = malloc(strlen(b64) + 3);
    assert_non_null(h);
    snprintf(h, strlen(b64) + 3, ":%s:", b64);
    check_cert_header(h, IDENTITY_BAD_ENCODING);
    free(h);
    free(b64);
    free(longer);
    OPENSSL_free(der);

    /* A NUL byte inside. */
    char *good = rfc9440(pki.dev);
    size_t good_len = strlen(good);
    good[good_len / 2] = '\0';
    struct device_identity id;
    check_cert_header_len(pki.verifier, good, good_len, IDENTITY_BAD_ENCODING, &id);
    free(good);

    /* Over IDENTITY_MAX_HEADER_LEN. */
    size_t big = IDENTITY_MAX_HEADER_LEN + 2;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, 'A', big);
    huge[0] = ':';
    huge[big - 1] = ':';
    huge[big] = '\0';
    check_cert_header(huge, IDENTITY_BAD_ENCODING);
    free(huge);
}

static void test_error_names(void **state)
{
    assert_string_equal(identity_error_name(IDENTITY_OK), "ok");
    for (int e = IDENTITY_OK; e <= IDENTITY_UNTRUSTED; e++) {
        const char *name = identity_error_name((enum identity_error)e);
        assert_non_null(name);
        for (int f = IDENTITY_OK; f < e; f++)
            assert_string_not_equal(name, identity_error_name((enum identity_error)f));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verifier_new),
        cmocka_unit_test(test_signature_ok),
        cmocka_unit_test(test_signature_with_and_without_attributes),
        cmocka_unit_test(test_signature_rsa),
        cmocka_unit_test(test_signature_line_wrapped),
        cmocka_unit_test(test_signature_body_changed),
        cmocka_unit_test(test_signature_untrusted),
        cmocka_unit_test(test_signature_stale_error_queue),
        cmocka_unit_test(test_signature_encoding),
        cmocka_unit_test(test_signature_not_detached),
        cmocka_unit_test(test_cert_header_rfc9440),
        cmocka_unit_test(test_cert_header_escaped_pem),
        cmocka_unit_test(test_cert_header_untrusted),
        cmocka_unit_test(test_cert_header_encoding),
        cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests(tests, identity_fixture_setup, identity_fixture_teardown);
}
