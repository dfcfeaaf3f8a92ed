/*
 * profile: the enrollment profile (.mobileconfig) a device installs to enroll.
 *
 * Pure: from the options (vouchd's configuration and the push certificate's topic) it builds the
 * configuration profile plist — the com.apple.mdm payload pointing at an identity payload (SCEP,
 * or ACME with a hardware-bound, attested P-384 key), optionally the CA certificate of the
 * server's TLS chain — and checks what it built: a libplist round trip and every key Apple
 * requires (docs/protocol.md, Enrollment profile). profile_sign() wraps it in CMS SignedData. Every
 * payload has a stable PayloadIdentifier and a fresh PayloadUUID each time.
 *
 * The caller owns what comes out (free() the XML, OPENSSL_free() the DER).
 */
#ifndef VOUCH_PROFILE_H
#define VOUCH_PROFILE_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

enum profile_identity { PROFILE_SCEP, PROFILE_ACME };

struct profile_options {
    const char *public_url;   /* https://mdm.example.com: ServerURL = /mdm/connect, CheckInURL */
    const char *topic;        /* the push certificate's UID */
    const char *organization; /* PayloadOrganization; may be NULL */
    enum profile_identity identity;
    /* SCEP */
    const char *scep_url;
    const char *scep_challenge; /* may be NULL */
    /* ACME */
    const char *acme_directory_url;
    const char
        *acme_client_identifier; /* one per download: the device's order at the ACME server */
    /* optional: a PEM CA certificate to trust (the server's TLS chain) */
    const char *ca_pem;
    size_t ca_pem_len;
};

#define PROFILE_IDENTIFIER "io.vouch.enrollment"
#define PROFILE_ACCESS_RIGHTS 8191 /* every right */

/* Builds and checks the profile; on failure returns false with a reason in err. */
bool profile_build(const struct profile_options *opts, char **xml, size_t *xml_len, char *err,
                   size_t err_size) __attribute__((warn_unused_result));

/* Checks an enrollment profile: it parses, and its MDM payload has every required key and names
 * the identity payload it carries. Used on what profile_build makes, and by the tests. */
bool profile_check(const char *xml, size_t xml_len, char *err, size_t err_size)
    __attribute__((warn_unused_result));

/* CMS SignedData (DER) over the profile, by signer/key, with chain (may be NULL) included. */
bool profile_sign(const char *data, size_t len, X509 *signer, EVP_PKEY *key, STACK_OF(X509) * chain,
                  unsigned char **der, size_t *der_len, char *err, size_t err_size)
    __attribute__((warn_unused_result));

#endif
