/*
 * apns_cert: the MDM push certificate: reads it (PEM certificate and key, or PKCS#12), finds its
 * topic (the subject's UID attribute, com.apple.mgmt.External.<uuid>) and its expiry, and keeps
 * the certificate and key as PEM, from which the APNs client makes its TLS context.
 *
 * Pure: it works on bytes the caller read. The struct apns_cert owns its copies; free it with
 * apns_cert_clear().
 */
#ifndef VOUCH_APNS_CERT_H
#define VOUCH_APNS_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define APNS_TOPIC_MAX 255

struct apns_cert {
    char topic[APNS_TOPIC_MAX + 1];
    time_t not_after;
    char *cert_pem; /* the certificate (the leaf) */
    size_t cert_pem_len;
    char *key_pem; /* the private key, unencrypted PKCS#8 */
    size_t key_pem_len;
};

/* From a PEM certificate and a PEM key (key may be NULL when cert holds both). */
bool apns_cert_from_pem(struct apns_cert *out, const char *cert, size_t cert_len, const char *key,
                        size_t key_len, char *err, size_t err_size)
    __attribute__((warn_unused_result));
/* From PKCS#12 bytes and their password (may be NULL or ""). */
bool apns_cert_from_pkcs12(struct apns_cert *out, const unsigned char *p12, size_t len,
                           const char *password, char *err, size_t err_size)
    __attribute__((warn_unused_result));
void apns_cert_clear(struct apns_cert *cert);

/* Days until not_after from now (negative: expired). */
long apns_cert_days_left(const struct apns_cert *cert, time_t now);

/* The topic prefix of every MDM push certificate (Apple's portal issues
 * com.apple.mgmt.External.<uuid>; NanoMDM accepts the same prefix). */
#define APNS_MDM_TOPIC_PREFIX "com.apple.mgmt."

/* Is cert, read and matched with its key by apns_cert_from_pem(), one to install now: an MDM
 * push topic, and not expired at now? False with the reason in err. (A certificate that expires
 * soon is installable: the caller warns, see APNS_CERT_WARN_DAYS.) */
bool apns_cert_check_installable(const struct apns_cert *cert, time_t now, char *err,
                                 size_t err_size) __attribute__((warn_unused_result));
#define APNS_CERT_WARN_DAYS 30

/* not_after as RFC 3339 UTC ("2027-01-31T12:00:00Z") into out (at least 21 bytes). */
void apns_cert_not_after_text(const struct apns_cert *cert, char *out, size_t size);

#endif
