/*
 * sim_pki: device-identity CA, identities and Mdm-Signature; see sim_pki.h.
 */
#include "sim_pki.h"

#include "fake_apple.h"
#include "sim_cms.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Identities are stored and reused across runs, so they must outlive any test campaign. */
#define PKI_CA_DAYS 3650
#define PKI_DEVICE_DAYS 3650
/* Backdated so that a server whose clock is a little behind still accepts a fresh certificate. */
#define PKI_BACKDATE_SECONDS (-3600L)
#define PKI_ORGANIZATION "Vouch Sim"
#define PKI_CA_COMMON_NAME "Vouch Sim Device Identity CA"

struct sim_ca {
    X509 *cert;
    EVP_PKEY *key;
};

/* A P-256 identity is a sim_cms signer (cert and key NULL); any other, OpenSSL's objects. */
struct sim_identity {
    X509 *cert;
    EVP_PKEY *key;
    struct sim_cms_signer *signer;
};

static EVP_PKEY *pki_keygen(enum sim_key_type key_type)
{
    if (key_type == SIM_KEY_EC)
        return EVP_EC_gen("P-256");
    return EVP_RSA_gen(2048);
}

/* base64 without line breaks; NULL when out of memory or len is too large. */
static char *pki_base64(const unsigned char *data, size_t len)
{
    size_t out_len;
    char *out;

    if (len > (size_t)INT_MAX / 4 * 3 - 3)
        return NULL;
    out_len = 4 * ((len + 2) / 3) + 1;
    out = malloc(out_len);
    if (out == NULL)
        return NULL;
    if (EVP_EncodeBlock((unsigned char *)out, data, (int)len) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* A P-256 subject's public key from its point (sim_cms_p256_export()): X509_set_pubkey() would
 * encode the key and decode it again through the providers. */
static bool pki_set_p256_key(X509 *cert, const unsigned char point[SIM_CMS_P256_POINT])
{
    unsigned char *copy = OPENSSL_memdup(point, SIM_CMS_P256_POINT);

    if (copy == NULL)
        return false;
    if (X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert), OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                               V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1), copy,
                               SIM_CMS_P256_POINT) != 1) {
        OPENSSL_free(copy);
        return false;
    }
    return true;
}

/* Builds and signs a certificate for subject_key (whose P-256 point, when not NULL, gives its
 * public key). issuer == NULL makes it self-signed (a CA). */
static X509 *pki_make_cert(const char *common_name, EVP_PKEY *subject_key,
                           const unsigned char *point, X509 *issuer, EVP_PKEY *issuer_key,
                           enum sim_key_type key_type, char *err, size_t errlen)
{
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509V3_CTX ctx;
    bool is_ca = issuer == NULL;
    const char *what = "building the certificate";

    if (cert == NULL || name == NULL)
        goto fail;
    if (X509_set_version(cert, X509_VERSION_3) != 1 || !fake_x509_random_serial(cert, 127))
        goto fail;
    if (X509_gmtime_adj(X509_getm_notBefore(cert), PKI_BACKDATE_SECONDS) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(cert), is_ca ? PKI_CA_DAYS : PKI_DEVICE_DAYS, 0,
                         NULL) == NULL)
        goto fail;
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                   (const unsigned char *)PKI_ORGANIZATION, -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name,
                                   -1, -1, 0) != 1)
        goto fail;
    if (X509_set_subject_name(cert, name) != 1 ||
        X509_set_issuer_name(cert, is_ca ? name : X509_get_subject_name(issuer)) != 1 ||
        !(point != NULL ? pki_set_p256_key(cert, point) : X509_set_pubkey(cert, subject_key) == 1))
        goto fail;

    what = "adding certificate extensions";
    X509V3_set_ctx(&ctx, is_ca ? cert : issuer, cert, NULL, NULL, 0);
    if (is_ca) {
        if (!fake_x509_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE") ||
            !fake_x509_add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
            !fake_x509_add_ext(cert, &ctx, NID_subject_key_identifier, "hash"))
            goto fail;
    } else {
        const char *usage = key_type == SIM_KEY_RSA ? "critical,digitalSignature,keyEncipherment"
                                                    : "critical,digitalSignature";
        if (!fake_x509_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
            !fake_x509_add_ext(cert, &ctx, NID_key_usage, usage) ||
            !fake_x509_add_ext(cert, &ctx, NID_ext_key_usage, "clientAuth") ||
            !fake_x509_add_ext(cert, &ctx, NID_subject_key_identifier, "hash") ||
            !fake_x509_add_ext(cert, &ctx, NID_authority_key_identifier, "keyid"))
            goto fail;
    }

    what = "signing the certificate";
    if (X509_sign(cert, is_ca ? subject_key : issuer_key, EVP_sha256()) <= 0)
        goto fail;
    X509_NAME_free(name);
    return cert;

fail:
    fake_openssl_error(err, errlen, what);
    X509_NAME_free(name);
    X509_free(cert);
    return NULL;
}

bool sim_pki_ca_create(enum sim_key_type key_type, char **cert_pem, char **key_pem, char *err,
                       size_t errlen)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    BIO *cert_bio = NULL;
    BIO *key_bio = NULL;
    bool ok = false;

    *cert_pem = NULL;
    *key_pem = NULL;
    key = pki_keygen(key_type);
    if (key == NULL) {
        fake_openssl_error(err, errlen, "generating the CA key");
        goto out;
    }
    cert = pki_make_cert(PKI_CA_COMMON_NAME, key, NULL, NULL, NULL, key_type, err, errlen);
    if (cert == NULL)
        goto out;
    cert_bio = BIO_new(BIO_s_mem());
    key_bio = BIO_new(BIO_s_mem());
    if (cert_bio == NULL || key_bio == NULL || PEM_write_bio_X509(cert_bio, cert) != 1 ||
        PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        fake_openssl_error(err, errlen, "encoding the CA as PEM");
        goto out;
    }
    *cert_pem = fake_bio_string(cert_bio, NULL);
    *key_pem = fake_bio_string(key_bio, NULL);
    if (*cert_pem == NULL || *key_pem == NULL) {
        snprintf(err, errlen, "out of memory");
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = NULL;
        *key_pem = NULL;
        goto out;
    }
    ok = true;
out:
    BIO_free(cert_bio);
    BIO_free(key_bio);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok;
}

/* Reads one certificate and one private key from two PEM buffers. */
static bool pki_read_pair(const char *cert_pem, size_t cert_len, const char *key_pem,
                          size_t key_len, X509 **cert, EVP_PKEY **key, char *err, size_t errlen)
{
    BIO *bio;

    *cert = NULL;
    *key = NULL;
    if (cert_len > INT_MAX || key_len > INT_MAX) {
        snprintf(err, errlen, "PEM text too large");
        return false;
    }
    bio = BIO_new_mem_buf(cert_pem, (int)cert_len);
    if (bio == NULL || (*cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
        BIO_free(bio);
        fake_openssl_error(err, errlen, "reading the certificate PEM");
        return false;
    }
    BIO_free(bio);
    bio = BIO_new_mem_buf(key_pem, (int)key_len);
    if (bio == NULL || (*key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
        BIO_free(bio);
        fake_openssl_error(err, errlen, "reading the private key PEM");
        goto fail;
    }
    BIO_free(bio);
    if (X509_check_private_key(*cert, *key) != 1) {
        fake_openssl_error(err, errlen, "the private key does not belong to the certificate");
        goto fail;
    }
    return true;
fail:
    X509_free(*cert);
    EVP_PKEY_free(*key);
    *cert = NULL;
    *key = NULL;
    return false;
}

struct sim_ca *sim_pki_ca_load(const char *cert_pem, size_t cert_len, const char *key_pem,
                               size_t key_len, char *err, size_t errlen)
{
    struct sim_ca *ca = calloc(1, sizeof(*ca));

    if (ca == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!pki_read_pair(cert_pem, cert_len, key_pem, key_len, &ca->cert, &ca->key, err, errlen)) {
        free(ca);
        return NULL;
    }
    if (X509_check_ca(ca->cert) < 1) {
        snprintf(err, errlen, "the CA certificate is not a CA (basicConstraints CA:TRUE missing)");
        sim_pki_ca_free(ca);
        return NULL;
    }
    return ca;
}

void sim_pki_ca_free(struct sim_ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

bool sim_pki_identity_issue(const struct sim_ca *ca, const char *udid, enum sim_key_type key_type,
                            char **pem, size_t *pem_len, char *err, size_t errlen)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    BIO *bio = NULL;
    unsigned char point[SIM_CMS_P256_POINT];
    unsigned char pkcs8[SIM_CMS_P256_PKCS8];
    bool p256;
    bool ok = false;

    *pem = NULL;
    key = pki_keygen(key_type);
    if (key == NULL) {
        fake_openssl_error(err, errlen, "generating the device key");
        goto out;
    }
    p256 = key_type == SIM_KEY_EC && sim_cms_p256_export(key, point, pkcs8);
    cert = pki_make_cert(udid, key, p256 ? point : NULL, ca->cert, ca->key, key_type, err, errlen);
    if (cert == NULL)
        goto out;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_X509(bio, cert) != 1 ||
        (p256 ? PEM_write_bio(bio, PEM_STRING_PKCS8INF, "", pkcs8, sizeof(pkcs8)) <= 0
              : PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)) {
        fake_openssl_error(err, errlen, "encoding the device identity as PEM");
        goto out;
    }
    *pem = fake_bio_string(bio, pem_len);
    if (*pem == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    ok = true;
out:
    OPENSSL_cleanse(pkcs8, sizeof(pkcs8));
    BIO_free(bio);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok;
}

struct sim_pki_loader {
    OSSL_DECODER_CTX *decoder;
    EVP_PKEY *decoded; /* where the decoder puts each key it decodes */
    struct sim_cms_keys *cms;
};

struct sim_pki_loader *sim_pki_loader_new(char *err, size_t errlen)
{
    struct sim_pki_loader *loader = calloc(1, sizeof(*loader));

    if (loader == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* Any key type (a fleet may mix RSA and EC identities), PEM in, private key out. */
    loader->decoder = OSSL_DECODER_CTX_new_for_pkey(&loader->decoded, "PEM", NULL, NULL,
                                                    OSSL_KEYMGMT_SELECT_KEYPAIR, NULL, NULL);
    loader->cms = sim_cms_keys_new();
    if (loader->decoder == NULL || loader->cms == NULL) {
        fake_openssl_error(err, errlen, "creating the key decoder");
        sim_pki_loader_free(loader);
        return NULL;
    }
    return loader;
}

void sim_pki_loader_free(struct sim_pki_loader *loader)
{
    if (loader == NULL)
        return;
    OSSL_DECODER_CTX_free(loader->decoder);
    EVP_PKEY_free(loader->decoded);
    sim_cms_keys_free(loader->cms);
    free(loader);
}

/* The DER of the first PEM block of pem[0..len) (OPENSSL_free), and whether it is a name block. */
static bool pki_pem_der(const char *pem, size_t len, const char *name, unsigned char **der,
                        long *der_len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    char *pem_name = NULL;
    char *pem_header = NULL;
    bool ok;

    *der = NULL;
    ok = bio != NULL && PEM_read_bio(bio, &pem_name, &pem_header, der, der_len) == 1 &&
         strcmp(pem_name, name) == 0;
    if (!ok) {
        OPENSSL_free(*der);
        *der = NULL;
    }
    OPENSSL_free(pem_name);
    OPENSSL_free(pem_header);
    BIO_free(bio);
    return ok;
}

struct sim_identity *sim_pki_identity_load(struct sim_pki_loader *loader, const char *pem,
                                           size_t pem_len, char *err, size_t errlen)
{
    static const char cert_end[] = "-----END CERTIFICATE-----";
    struct sim_identity *id = NULL;
    const char *split = memmem(pem, pem_len, cert_end, sizeof(cert_end) - 1);
    const unsigned char *key_pem;
    size_t key_len;
    unsigned char *der = NULL;
    unsigned char *key_der = NULL;
    const unsigned char *der_p;
    long der_len = 0;
    long key_der_len = 0;
    bool ok = false;

    if (split == NULL || pem_len > INT_MAX) {
        snprintf(err, errlen, "no certificate PEM block");
        return NULL;
    }
    split += sizeof(cert_end) - 1;
    id = calloc(1, sizeof(*id));
    if (id == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!pki_pem_der(pem, (size_t)(split - pem), PEM_STRING_X509, &der, &der_len)) {
        fake_openssl_error(err, errlen, "reading the certificate PEM");
        goto fail;
    }
    key_pem = (const unsigned char *)split;
    key_len = pem_len - (size_t)(split - pem);
    /* A P-256 key (PKCS#8, as sim_pki_identity_issue() writes it) signs without OpenSSL's
     * certificate and CMS objects (sim_cms.h); anything else takes the general way below. */
    if (pki_pem_der(split, key_len, PEM_STRING_PKCS8INF, &key_der, &key_der_len)) {
        switch (sim_cms_signer_new(loader->cms, der, (size_t)der_len, key_der, (size_t)key_der_len,
                                   &id->signer, err, errlen)) {
        case SIM_CMS_LOADED:
            ok = true;
            goto fail;
        case SIM_CMS_BAD:
            goto fail;
        case SIM_CMS_NOT_P256:
            break;
        }
    }
    ERR_clear_error();
    /* d2i_X509() on the DER is about twice as fast as PEM_read_bio_X509() in OpenSSL 3.0. */
    der_p = der;
    id->cert = d2i_X509(NULL, &der_p, der_len);
    if (id->cert == NULL || der_p != der + der_len) {
        fake_openssl_error(err, errlen, "parsing the certificate");
        goto fail;
    }
    EVP_PKEY_free(loader->decoded);
    loader->decoded = NULL;
    if (OSSL_DECODER_from_data(loader->decoder, &key_pem, &key_len) != 1 ||
        loader->decoded == NULL) {
        fake_openssl_error(err, errlen, "reading the private key PEM");
        goto fail;
    }
    id->key = loader->decoded;
    loader->decoded = NULL;
    if (X509_check_private_key(id->cert, id->key) != 1) {
        fake_openssl_error(err, errlen, "the private key does not belong to the certificate");
        goto fail;
    }
    ok = true;
fail:
    if (key_der != NULL)
        OPENSSL_clear_free(key_der, (size_t)key_der_len);
    OPENSSL_free(der);
    if (!ok) {
        sim_pki_identity_free(id);
        return NULL;
    }
    return id;
}

void sim_pki_identity_free(struct sim_identity *id)
{
    if (id == NULL)
        return;
    X509_free(id->cert);
    EVP_PKEY_free(id->key);
    sim_cms_signer_free(id->signer);
    free(id);
}

bool sim_pki_sign_detached(struct sim_identity *id, const void *body, size_t len, char **b64,
                           char *err, size_t errlen)
{
    /*
     * CMS_BINARY: sign the bytes as they are; without it OpenSSL would canonicalise line endings
     * to CRLF (S/MIME text rules) and the server, hashing the real body, would see a mismatch.
     * Signed attributes (contentType, signingTime, messageDigest) are kept, as a device sends
     * them; CMS_NOSMIMECAP only drops the S/MIME capabilities list no device sends.
     */
    const unsigned int flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP;
    CMS_ContentInfo *cms = NULL;
    BIO *in = NULL;
    unsigned char *der = NULL;
    int der_len;
    bool ok = false;

    *b64 = NULL;
    if (len > INT_MAX) {
        snprintf(err, errlen, "body too large to sign");
        return false;
    }
    if (id->signer != NULL) {
        size_t n = 0;
        unsigned char *bytes = NULL;

        if (!sim_cms_sign(id->signer, body, len, time(NULL), &bytes, &n, err, errlen))
            return false;
        *b64 = pki_base64(bytes, n);
        free(bytes);
        if (*b64 == NULL)
            snprintf(err, errlen, "out of memory");
        return *b64 != NULL;
    }
    in = BIO_new_mem_buf(len > 0 ? body : "", (int)len);
    cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
    if (in == NULL || cms == NULL ||
        CMS_add1_signer(cms, id->cert, id->key, EVP_sha256(), flags) == NULL ||
        CMS_final(cms, in, NULL, flags) != 1) {
        fake_openssl_error(err, errlen, "making the CMS signature");
        goto out;
    }
    der_len = i2d_CMS_ContentInfo(cms, &der);
    if (der_len <= 0) {
        fake_openssl_error(err, errlen, "encoding the CMS signature");
        goto out;
    }
    *b64 = pki_base64(der, (size_t)der_len);
    if (*b64 == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    ok = true;
out:
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return ok;
}

bool sim_pki_cert_header_value(const struct sim_identity *id, char **value, char *err,
                               size_t errlen)
{
    unsigned char *der = NULL;
    int der_len;
    char *b64;
    size_t n;

    *value = NULL;
    if (id->signer != NULL) {
        size_t cert_len;
        const unsigned char *cert = sim_cms_signer_cert(id->signer, &cert_len);
        b64 = pki_base64(cert, cert_len);
    } else {
        der_len = i2d_X509(id->cert, &der);
        if (der_len <= 0) {
            fake_openssl_error(err, errlen, "encoding the certificate");
            return false;
        }
        b64 = pki_base64(der, (size_t)der_len);
        OPENSSL_free(der);
    }
    if (b64 == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    n = strlen(b64) + 3;
    *value = malloc(n);
    if (*value == NULL) {
        free(b64);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    snprintf(*value, n, ":%s:", b64);
    free(b64);
    return true;
}
