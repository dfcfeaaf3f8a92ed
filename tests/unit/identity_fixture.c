/* identity_fixture: the PKI and helpers that the unit tests of server/device/identity.c share. */
#include "identity_fixture.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pki pki;

/* ---- Building the PKI ---- */

EVP_PKEY *new_ec_key(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    return key;
}

EVP_PKEY *new_rsa_key(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    assert_non_null(key);
    return key;
}

static void add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* issuer NULL: self-signed. */
X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
               long serial, const char *not_before, const char *not_after)
{
    X509 *cert = X509_new();
    assert_non_null(cert);
    assert_int_equal(X509_set_version(cert, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(cert), serial), 1);
    if (not_before != NULL)
        assert_int_equal(ASN1_TIME_set_string_X509(X509_getm_notBefore(cert), not_before), 1);
    else
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(cert), -3600));
    assert_int_equal(ASN1_TIME_set_string_X509(X509_getm_notAfter(cert), not_after), 1);
    assert_int_equal(X509_set_pubkey(cert, key), 1);

    X509_NAME *name = X509_get_subject_name(cert);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                                (const unsigned char *)"Vouch Test", -1, -1, 0),
                     1);
    assert_int_equal(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
        1);
    assert_int_equal(X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name), 1);

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
    if (ca) {
        add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        /* What SCEP/ACME device identities carry: client authentication, not S/MIME. */
        add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment");
        add_ext(cert, &ctx, NID_ext_key_usage, "clientAuth");
    }
    add_ext(cert, &ctx, NID_subject_key_identifier, "hash");
    add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always");

    assert_true(X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return cert;
}

char *cert_pem(X509 *cert)
{
    BIO *mem = BIO_new(BIO_s_mem());
    assert_non_null(mem);
    assert_int_equal(PEM_write_bio_X509(mem, cert), 1);
    char *data = NULL;
    long len = BIO_get_mem_data(mem, &data);
    assert_true(len > 0);
    char *pem = malloc((size_t)len + 1);
    assert_non_null(pem);
    memcpy(pem, data, (size_t)len);
    pem[len] = '\0';
    BIO_free(mem);
    return pem;
}

unsigned char *cert_der(X509 *cert, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(cert, &der);
    assert_true(n > 0);
    *len = (size_t)n;
    return der; /* OPENSSL_free */
}

void cert_sha256(X509 *cert, uint8_t out[32])
{
    size_t len;
    unsigned char *der = cert_der(cert, &len);
    assert_int_equal(EVP_Digest(der, len, out, NULL, EVP_sha256(), NULL), 1);
    OPENSSL_free(der);
}

/* One-line base64. */
char *base64(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    assert_non_null(out);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    assert_true(n >= 0);
    out[n] = '\0';
    return out;
}

char *cms_base64(CMS_ContentInfo *cms, const char *trailing, size_t trailing_len)
{
    unsigned char *der = NULL;
    int n = i2d_CMS_ContentInfo(cms, &der);
    assert_true(n > 0);
    unsigned char *all = malloc((size_t)n + trailing_len);
    assert_non_null(all);
    memcpy(all, der, (size_t)n);
    if (trailing_len > 0)
        memcpy(all + n, trailing, trailing_len);
    char *b64 = base64(all, (size_t)n + trailing_len);
    free(all);
    OPENSSL_free(der);
    return b64;
}

/* An Mdm-Signature header value: base64 of a CMS signature over data (flags as CMS_sign). */
char *sign_with_flags(X509 *cert, EVP_PKEY *key, const void *data, size_t len, int flags)
{
    BIO *in = BIO_new_mem_buf(data, (int)len);
    assert_non_null(in);
    CMS_ContentInfo *cms = CMS_sign(cert, key, NULL, in, (unsigned)flags);
    assert_non_null(cms);
    BIO_free(in);
    char *b64 = cms_base64(cms, NULL, 0);
    CMS_ContentInfo_free(cms);
    return b64;
}

char *sign(X509 *cert, EVP_PKEY *key, const void *data, size_t len)
{
    return sign_with_flags(cert, key, data, len, CMS_DETACHED | CMS_BINARY);
}

int identity_fixture_setup(void **state)
{
    memset(&pki, 0, sizeof(pki));
    pki.ca_key = new_ec_key();
    pki.evil_ca_key = new_ec_key();
    pki.dev_key = new_ec_key();
    pki.dev_rsa_key = new_rsa_key();
    pki.evil_dev_key = new_ec_key();
    pki.expired_key = new_ec_key();
    pki.ca = new_cert(pki.ca_key, CA_NAME, NULL, NULL, true, 1, NULL, "20400101000000Z");
    pki.evil_ca = new_cert(pki.evil_ca_key, CA_NAME, NULL, NULL, true, 1, NULL, "20400101000000Z");
    pki.dev =
        new_cert(pki.dev_key, "device-ec", pki.ca, pki.ca_key, false, 100, NULL, NOT_AFTER_ASN1);
    pki.dev_rsa = new_cert(pki.dev_rsa_key, "device-rsa", pki.ca, pki.ca_key, false, 101, NULL,
                           NOT_AFTER_ASN1);
    pki.evil_dev = new_cert(pki.evil_dev_key, "device-ec", pki.evil_ca, pki.evil_ca_key, false, 100,
                            NULL, NOT_AFTER_ASN1);
    pki.expired_dev = new_cert(pki.expired_key, "device-expired", pki.ca, pki.ca_key, false, 102,
                               "20200101000000Z", "20210101000000Z");
    pki.ca_pem = cert_pem(pki.ca);
    char err[256] = "";
    pki.verifier = identity_verifier_new(pki.ca_pem, strlen(pki.ca_pem), IDENTITY_CACHE_DEFAULT,
                                         err, sizeof(err));
    if (pki.verifier == NULL)
        print_error("identity_verifier_new: %s\n", err);
    assert_non_null(pki.verifier);
    assert_int_equal(ERR_peek_error(), 0);
    return 0;
}

int identity_fixture_teardown(void **state)
{
    identity_verifier_free(pki.verifier);
    free(pki.ca_pem);
    X509 *certs[] = {pki.ca, pki.evil_ca, pki.dev, pki.dev_rsa, pki.evil_dev, pki.expired_dev};
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
    EVP_PKEY *keys[] = {pki.ca_key,      pki.evil_ca_key,  pki.dev_key,
                        pki.dev_rsa_key, pki.evil_dev_key, pki.expired_key};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    return 0;
}

/* ---- Checking results ---- */

enum identity_error check_signature_len(struct identity_verifier *v, const char *header,
                                        size_t header_len, const void *data, size_t data_len,
                                        enum identity_error expected, struct device_identity *out)
{
    ERR_clear_error();
    enum identity_error e = identity_from_signature(v, header, header_len, data, data_len, out);
    if (e != expected)
        print_error("identity_from_signature: expected %s, got %s\n", identity_error_name(expected),
                    identity_error_name(e));
    assert_int_equal(e, expected);
    /* "Every function ... leaves OpenSSL's error queue empty." */
    assert_int_equal(ERR_peek_error(), 0);
    return e;
}

void check_signature(const char *header, const void *data, size_t data_len,
                     enum identity_error expected)
{
    struct device_identity id;
    check_signature_len(pki.verifier, header, header ? strlen(header) : 0, data, data_len, expected,
                        &id);
}

void check_cert_header_len(struct identity_verifier *v, const char *header, size_t len,
                           enum identity_error expected, struct device_identity *out)
{
    ERR_clear_error();
    enum identity_error e = identity_from_cert_header(v, header, len, out);
    if (e != expected)
        print_error("identity_from_cert_header: expected %s, got %s for %.*s\n",
                    identity_error_name(expected), identity_error_name(e),
                    (int)(len > 200 ? 200 : len), header ? header : "(null)");
    assert_int_equal(e, expected);
    assert_int_equal(ERR_peek_error(), 0);
}

void check_cert_header(const char *header, enum identity_error expected)
{
    struct device_identity id;
    check_cert_header_len(pki.verifier, header, header ? strlen(header) : 0, expected, &id);
}

void assert_identity_is(const struct device_identity *id, X509 *cert, const char *subject)
{
    uint8_t sha[32];
    cert_sha256(cert, sha);
    assert_memory_equal(id->sha256, sha, 32);
    assert_string_equal(id->subject, subject);
    assert_string_equal(id->not_after, NOT_AFTER_RFC3339);
}

char *rfc9440(X509 *cert)
{
    size_t der_len;
    unsigned char *der = cert_der(cert, &der_len);
    char *b64 = base64(der, der_len);
    OPENSSL_free(der);
    size_t len = strlen(b64) + 3;
    char *header = malloc(len);
    assert_non_null(header);
    snprintf(header, len, ":%s:", b64);
    free(b64);
    return header;
}
