/* libFuzzer target: Mdm-Signature and proxy certificate headers through identity.c.
 *
 * Two verifiers:
 *  - one trusting the Apple attestation root vouchd builds in (VOUCH_FUZZ_CA, or the path from
 *    the repository root): any PEM CA will do for raw inputs, which exercise decoding and CMS
 *    parsing, run before any chain is trusted;
 *  - one trusting a CA made here at start, whose cache holds a device certificate it issued, so
 *    that mutations of that device's real signature take the cached way (the certificates cut
 *    out of the CMS, the signature checked with the cached certificate). Whatever that verifier
 *    accepts, a verifier with an empty cache must accept too, with the same identity: the cache
 *    may make a check cheaper, never weaker.
 *
 * The first byte picks the way: bit 0 set, a certificate header; else bit 1 set, a mutation of
 * the cached device's signature (two bytes of offset, then bytes XORed into its DER); else a raw
 * Mdm-Signature header value. */
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char body[] = "<plist></plist>";

static struct identity_verifier *verifier;
static struct identity_verifier *cached_verifier;
static char *made_ca_pem; /* the CA made here, to build a fresh verifier for a comparison */
static size_t made_ca_pem_len;
static uint8_t *signature_der; /* the cached device's Mdm-Signature, DER */
static size_t signature_der_len;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_identity: %s\n", what);
    abort();
}

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL)
        die("cannot make a P-256 key");
    return key;
}

/* A certificate for key; without issuer, a self-signed CA. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                      long serial)
{
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();
    if (cert == NULL || name == NULL ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_version(cert, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(cert), serial) ||
        !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 24 * 3600) ||
        !X509_set_subject_name(cert, name) ||
        !X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) ||
        !X509_set_pubkey(cert, key))
        die("cannot make a certificate");
    if (issuer == NULL) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
        X509_EXTENSION *ext =
            X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        if (ext == NULL || !X509_add_ext(cert, ext, -1))
            die("cannot make a CA certificate");
        X509_EXTENSION_free(ext);
    }
    if (!X509_sign(cert, issuer_key, EVP_sha256()))
        die("cannot sign a certificate");
    X509_NAME_free(name);
    return cert;
}

/* A CA, a device certificate it issued, the device's signature over body, and a verifier
 * trusting the CA that has seen that signature once (so its certificate is cached). */
static void make_cached_device(void)
{
    EVP_PKEY *ca_key = new_key(), *device_key = new_key();
    X509 *ca = new_cert(ca_key, "fuzz identity CA", NULL, ca_key, 1);
    X509 *device = new_cert(device_key, "fuzz device", ca, ca_key, 2);
    BIO *content = BIO_new_mem_buf(body, (int)sizeof(body) - 1);
    CMS_ContentInfo *cms = CMS_sign(device, device_key, NULL, content, CMS_DETACHED | CMS_BINARY);
    unsigned char *der = NULL;
    int der_len = cms ? i2d_CMS_ContentInfo(cms, &der) : 0;
    BIO *pem = BIO_new(BIO_s_mem());
    if (der_len <= 0 || pem == NULL || !PEM_write_bio_X509(pem, ca))
        die("cannot sign");
    char *text;
    long text_len = BIO_get_mem_data(pem, &text);
    made_ca_pem = malloc((size_t)text_len);
    signature_der = malloc((size_t)der_len);
    if (made_ca_pem == NULL || signature_der == NULL)
        die("out of memory");
    memcpy(made_ca_pem, text, (size_t)text_len);
    made_ca_pem_len = (size_t)text_len;
    memcpy(signature_der, der, (size_t)der_len);
    signature_der_len = (size_t)der_len;

    char err[256];
    cached_verifier = identity_verifier_new(made_ca_pem, made_ca_pem_len, IDENTITY_CACHE_DEFAULT,
                                            err, sizeof(err));
    if (cached_verifier == NULL)
        die(err);
    char header[4096];
    int header_len = EVP_EncodeBlock((unsigned char *)header, der, der_len);
    struct device_identity id;
    if (header_len <= 0 || header_len >= (int)sizeof(header) ||
        identity_from_signature(cached_verifier, header, (size_t)header_len, body, sizeof(body) - 1,
                                &id) != IDENTITY_OK ||
        identity_from_signature(cached_verifier, header, (size_t)header_len, body, sizeof(body) - 1,
                                &id) != IDENTITY_OK)
        die("the device's own signature does not verify");
    struct identity_cache_stats stats;
    identity_verifier_cache_stats(cached_verifier, &stats);
    if (stats.hits != 1)
        die("the device's certificate was not cached");

    OPENSSL_free(der);
    BIO_free(pem);
    BIO_free(content);
    CMS_ContentInfo_free(cms);
    X509_free(device);
    X509_free(ca);
    EVP_PKEY_free(device_key);
    EVP_PKEY_free(ca_key);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = getenv("VOUCH_FUZZ_CA");
    if (path == NULL)
        path = "server/attestation/certs/apple-enterprise-attestation-root-ca.pem";
    FILE *f = fopen(path, "rb");
    char pem[8192];
    size_t len = f ? fread(pem, 1, sizeof(pem), f) : 0;
    if (f)
        fclose(f);
    char err[256];
    verifier = identity_verifier_new(pem, len, IDENTITY_CACHE_DEFAULT, err, sizeof(err));
    if (verifier == NULL) {
        fprintf(stderr, "fuzz_identity: %s: %s (set VOUCH_FUZZ_CA)\n", path, err);
        abort();
    }
    make_cached_device();
    return 0;
}

/* The cached device's signature with data XORed in at the offset data's first two bytes give;
 * whatever the cached verifier accepts, a fresh one must accept the same way. */
static void mutate_cached_signature(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    uint8_t der[4096];
    if (signature_der_len > sizeof(der))
        die("signature too long");
    memcpy(der, signature_der, signature_der_len);
    size_t at = ((size_t)data[0] << 8 | data[1]) % signature_der_len;
    for (size_t i = 2; i < size && at < signature_der_len; i++, at++)
        der[at] ^= data[i];
    char header[8192];
    int header_len = EVP_EncodeBlock((unsigned char *)header, der, (int)signature_der_len);
    struct device_identity cached_id;
    if (identity_from_signature(cached_verifier, header, (size_t)header_len, body, sizeof(body) - 1,
                                &cached_id) != IDENTITY_OK)
        return;
    char err[256];
    struct identity_verifier *fresh = identity_verifier_new(
        made_ca_pem, made_ca_pem_len, IDENTITY_CACHE_DEFAULT, err, sizeof(err));
    if (fresh == NULL)
        die(err);
    struct device_identity fresh_id;
    enum identity_error fresh_result = identity_from_signature(fresh, header, (size_t)header_len,
                                                               body, sizeof(body) - 1, &fresh_id);
    identity_verifier_free(fresh);
    if (fresh_result != IDENTITY_OK)
        die("the cache accepted a signature a full verification refuses");
    if (memcmp(cached_id.sha256, fresh_id.sha256, sizeof(fresh_id.sha256)) != 0 ||
        strcmp(cached_id.subject, fresh_id.subject) != 0)
        die("the cache gave another identity than a full verification");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct device_identity id;
    if (size < 1)
        return 0;
    const char *value = (const char *)data + 1;
    if (data[0] & 1)
        (void)identity_from_cert_header(verifier, value, size - 1, &id);
    else if (data[0] & 2)
        mutate_cached_signature(data + 1, size - 1);
    else
        (void)identity_from_signature(verifier, value, size - 1, body, sizeof(body) - 1, &id);
    return 0;
}
