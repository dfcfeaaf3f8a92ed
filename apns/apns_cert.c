#include "apns_cert.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 0.9.2342.19200300.100.1.1, the LDAP "uid" attribute: NID_userId. */
static bool read_topic(X509 *cert, char *topic, size_t size)
{
    X509_NAME *subject = X509_get_subject_name(cert);
    int index = X509_NAME_get_index_by_NID(subject, NID_userId, -1);
    if (index < 0)
        return false;
    ASN1_STRING *value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, value);
    bool ok = len > 0 && (size_t)len < size;
    for (int i = 0; ok && i < len; i++)
        ok = utf8[i] > 0x20 && utf8[i] < 0x7f;
    if (ok) {
        memcpy(topic, utf8, (size_t)len);
        topic[len] = '\0';
    }
    OPENSSL_free(utf8);
    return ok;
}

static char *to_pem(int (*write)(BIO *, void *), void *object, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio != NULL && write(bio, object)) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0 && (out = malloc((size_t)n + 1)) != NULL) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
            *len = (size_t)n;
        }
    }
    BIO_free(bio);
    return out;
}

static int write_cert(BIO *bio, void *cert)
{
    return PEM_write_bio_X509(bio, cert);
}

static int write_key(BIO *bio, void *key)
{
    return PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
}

static bool fill(struct apns_cert *out, X509 *cert, EVP_PKEY *key, char *err, size_t err_size)
{
    memset(out, 0, sizeof(*out));
    struct tm tm;
    if (!read_topic(cert, out->topic, sizeof(out->topic))) {
        snprintf(err, err_size, "the push certificate's subject has no UID (topic) attribute");
        return false;
    }
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) {
        snprintf(err, err_size, "cannot read the push certificate's expiry");
        return false;
    }
    out->not_after = timegm(&tm);
    if (X509_check_private_key(cert, key) != 1) {
        snprintf(err, err_size, "the key does not belong to the push certificate");
        return false;
    }
    out->cert_pem = to_pem(write_cert, cert, &out->cert_pem_len);
    out->key_pem = to_pem(write_key, key, &out->key_pem_len);
    if (out->cert_pem == NULL || out->key_pem == NULL) {
        apns_cert_clear(out);
        snprintf(err, err_size, "out of memory");
        return false;
    }
    return true;
}

bool apns_cert_from_pem(struct apns_cert *out, const char *cert_text, size_t cert_len,
                        const char *key_text, size_t key_len, char *err, size_t err_size)
{
    BIO *cert_bio = BIO_new_mem_buf(cert_text, (int)cert_len);
    BIO *key_bio = key_text ? BIO_new_mem_buf(key_text, (int)key_len)
                            : BIO_new_mem_buf(cert_text, (int)cert_len);
    X509 *cert = cert_bio ? PEM_read_bio_X509(cert_bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = key_bio ? PEM_read_bio_PrivateKey(key_bio, NULL, NULL, NULL) : NULL;
    bool ok = false;
    memset(out, 0, sizeof(*out));
    if (cert == NULL)
        snprintf(err, err_size, "apns_cert: no PEM certificate");
    else if (key == NULL)
        snprintf(err, err_size, "apns_key: no PEM private key (an encrypted key is not accepted)");
    else
        ok = fill(out, cert, key, err, err_size);
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cert_bio);
    BIO_free(key_bio);
    ERR_clear_error();
    return ok;
}

/* Keychain Access exports PKCS#12 with RC2-40 and 3DES, which OpenSSL 3 reads only with its
 * legacy provider. Loaded once, beside the default one (loading any provider explicitly stops
 * the default from loading implicitly), and unloaded at exit before OpenSSL cleans up (else
 * what they hold is never freed). */
static OSSL_PROVIDER *default_provider, *legacy_provider;

static void unload_providers(void)
{
    if (legacy_provider != NULL)
        OSSL_PROVIDER_unload(legacy_provider);
    if (default_provider != NULL)
        OSSL_PROVIDER_unload(default_provider);
    legacy_provider = default_provider = NULL;
}

bool apns_cert_from_pkcs12(struct apns_cert *out, const unsigned char *data, size_t len,
                           const char *password, char *err, size_t err_size)
{
    static bool providers_loaded;
    if (!providers_loaded) {
        providers_loaded = true;
        default_provider = OSSL_PROVIDER_load(NULL, "default");
        legacy_provider = OSSL_PROVIDER_load(NULL, "legacy");
        if (default_provider == NULL || legacy_provider == NULL)
            ERR_clear_error();    /* modern files still open */
        atexit(unload_providers); /* runs before OpenSSL's own exit handler, set up earlier */
    }
    const unsigned char *p = data;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    bool ok = false;
    memset(out, 0, sizeof(*out));
    if (p12 == NULL)
        snprintf(err, err_size, "apns_cert: not a PKCS#12 file");
    else if (!PKCS12_parse(p12, password ? password : "", &key, &cert, NULL) || cert == NULL ||
             key == NULL)
        snprintf(err, err_size, "apns_cert: cannot open the PKCS#12 file (wrong password?)");
    else
        ok = fill(out, cert, key, err, err_size);
    PKCS12_free(p12);
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

void apns_cert_clear(struct apns_cert *cert)
{
    if (cert->key_pem != NULL)
        OPENSSL_cleanse(cert->key_pem, cert->key_pem_len);
    free(cert->cert_pem);
    free(cert->key_pem);
    memset(cert, 0, sizeof(*cert));
}

long apns_cert_days_left(const struct apns_cert *cert, time_t now)
{
    double seconds = difftime(cert->not_after, now);
    return (long)(seconds / 86400.0 - (seconds < 0 ? 1 : 0));
}

bool apns_cert_check_installable(const struct apns_cert *cert, time_t now, char *err,
                                 size_t err_size)
{
    size_t prefix_len = strlen(APNS_MDM_TOPIC_PREFIX);
    if (strncmp(cert->topic, APNS_MDM_TOPIC_PREFIX, prefix_len) != 0 ||
        cert->topic[prefix_len] == '\0') {
        snprintf(err, err_size,
                 "the certificate's topic (subject UID) '%s' is not an MDM push topic (%s...): "
                 "is this the certificate from Apple's Push Certificates Portal?",
                 cert->topic, APNS_MDM_TOPIC_PREFIX);
        return false;
    }
    if (difftime(cert->not_after, now) <= 0) {
        char when[32];
        apns_cert_not_after_text(cert, when, sizeof(when));
        snprintf(err, err_size, "the push certificate for %s expired on %s: renew it", cert->topic,
                 when);
        return false;
    }
    return true;
}

void apns_cert_not_after_text(const struct apns_cert *cert, char *out, size_t size)
{
    struct tm tm;
    time_t t = cert->not_after;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, size, "?");
}
