/*
 * identity_fixture: what the unit tests of server/device/identity.c (test_identity.c, the checks;
 * test_identity_cache.c, the cache of verified certificates) share: a PKI built in memory (a
 * trusted CA, an "evil" CA with the same name and its own key, devices issued by each), a body
 * to sign, and the helpers that sign, encode and check. The helpers fail the running test
 * (cmocka) instead of returning errors; what they return is malloc()ed (cert_der: OPENSSL_free)
 * and the caller's. identity_fixture_setup/_teardown are the programs' group setup.
 */
#ifndef VOUCH_IDENTITY_FIXTURE_H
#define VOUCH_IDENTITY_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>

#include "identity.h"

#define NOT_AFTER_ASN1 "20350102030405Z"
#define NOT_AFTER_RFC3339 "2035-01-02T03:04:05Z"
#define CA_NAME "Vouch Test Identity CA"

/* The test PKI: a trusted CA and an "evil" CA with the same name but its own key. */
struct pki {
    EVP_PKEY *ca_key, *evil_ca_key, *dev_key, *dev_rsa_key, *evil_dev_key, *expired_key;
    X509 *ca, *evil_ca;
    X509 *dev;         /* P-256, issued by ca */
    X509 *dev_rsa;     /* RSA-2048, issued by ca */
    X509 *evil_dev;    /* P-256, issued by evil_ca, same subject as dev */
    X509 *expired_dev; /* issued by ca, expired in 2021 */
    char *ca_pem;
    struct identity_verifier *verifier;
};

extern struct pki pki;

static const char body[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n"
    "\t<key>MessageType</key>\n\t<string>Authenticate</string>\n"
    "\t<key>UDID</key>\n\t<string>66ADE930-5FDF-5EC4-8429-15640684C489</string>\n"
    "</dict>\n</plist>\n";

EVP_PKEY *new_ec_key(void);
EVP_PKEY *new_rsa_key(void);
X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
               long serial, const char *not_before, const char *not_after);
char *cert_pem(X509 *cert);
unsigned char *cert_der(X509 *cert, size_t *len);
void cert_sha256(X509 *cert, uint8_t out[32]);
char *base64(const unsigned char *data, size_t len);
char *cms_base64(CMS_ContentInfo *cms, const char *trailing, size_t trailing_len);
char *sign_with_flags(X509 *cert, EVP_PKEY *key, const void *data, size_t len, int flags);
char *sign(X509 *cert, EVP_PKEY *key, const void *data, size_t len);
int identity_fixture_setup(void **state);
int identity_fixture_teardown(void **state);
enum identity_error check_signature_len(struct identity_verifier *v, const char *header,
                                        size_t header_len, const void *data, size_t data_len,
                                        enum identity_error expected, struct device_identity *out);
void check_signature(const char *header, const void *data, size_t data_len,
                     enum identity_error expected);
void check_cert_header_len(struct identity_verifier *v, const char *header, size_t len,
                           enum identity_error expected, struct device_identity *out);
void check_cert_header(const char *header, enum identity_error expected);
void assert_identity_is(const struct device_identity *id, X509 *cert, const char *subject);
char *rfc9440(X509 *cert);

#endif
