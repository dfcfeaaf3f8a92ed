/*
 * sim_acme: a simulated device gets its MDM identity from vouchd's ACME server, as an Apple device
 * does with the com.apple.security.acme payload of its enrollment profile (RFC 8555 with the
 * device-attest-01 challenge; docs/acme.md).
 *
 * The flow: GET URL/mdm/enroll (libplist reads the payload's ClientIdentifier, DirectoryURL and
 * KeySize; a CMS-signed profile is unwrapped first), GET the directory, HEAD newNonce, newAccount
 * (a fresh ES256 account key, the JWS flattened and signed here with OpenSSL), newOrder for
 * {"type": "permanent-identifier", "value": ClientIdentifier}, POST-as-GET the authorization,
 * then the device makes its key (P-384, as a Secure Enclave for KeySize 384) and the stand-in
 * Apple hierarchy (tests/lib/fake_apple.h) attests it with freshness SHA-256(token); the answer
 * is {"attObj": base64url(CBOR {fmt: "apple", attStmt: {x5c: [leaf, sub CA]}})} (libcbor).
 * finalize sends a CSR of that key, and the certificate is downloaded with POST-as-GET.
 *
 * URLs: vouchd names its resources under public_url (the profile's DirectoryURL minus
 * "/acme/directory"); every JWS "url" is that public URL, and the request goes to the same path
 * under --url, which is where the simulator reaches vouchd.
 *
 * Two deliberate misbehaviours that vouchd must refuse: ordering with a ClientIdentifier that
 * another device of the run has already used (it takes one from a struct sim_acme_pool), and
 * finalizing with a CSR for another key than the attested one. Their refusal is the outcome
 * SIM_ACME_REFUSED, not a failure.
 *
 * Ownership: the identity PEM of a result is malloc()ed (sim_acme_result_clear()). A pool is
 * shared by the workers of one run (it has its own lock); everything else belongs to the calling
 * thread.
 */
#ifndef VOUCH_SIM_ACME_H
#define VOUCH_SIM_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "fake_apple.h"
#include "sim_device.h"
#include "sim_http.h"
#include "sim_stats.h"

#define SIM_ACME_CLIENT_ID_MAX 128 /* vouchd's ACME_MAX_IDENTIFIER */

enum sim_acme_behaviour {
    SIM_ACME_HONEST,
    SIM_ACME_REUSE_CLIENT_ID, /* orders with a ClientIdentifier another device has used */
    SIM_ACME_WRONG_CSR_KEY    /* finalizes with a CSR for another key than the attested one */
};

enum sim_acme_outcome {
    SIM_ACME_ISSUED,  /* the result holds the identity */
    SIM_ACME_REFUSED, /* a misbehaving device was refused, as it must be */
    SIM_ACME_FAILED   /* the result says why */
};

/* What kind of failure, for the simulator's counters. */
enum sim_acme_failure {
    SIM_ACME_FAIL_LOCAL,      /* out of memory, OpenSSL, no identifier to reuse */
    SIM_ACME_FAIL_TRANSPORT,  /* no HTTP answer */
    SIM_ACME_FAIL_HTTP,       /* an HTTP status or ACME problem the flow did not expect */
    SIM_ACME_FAIL_PROTOCOL,   /* a 2xx answer the device cannot use (no nonce, bad JSON, ...) */
    SIM_ACME_FAIL_NOT_REFUSED /* vouchd issued a certificate to a misbehaving device */
};

/* The ClientIdentifiers the devices of one run have used (their certificate was issued), for
 * the devices that reuse one. honest: how many devices of the run will report to it. */
struct sim_acme_pool;
struct sim_acme_pool *sim_acme_pool_new(size_t honest);
void sim_acme_pool_free(struct sim_acme_pool *pool);
/* One of the honest devices is done: client_id is the identifier its certificate used up, or
 * NULL (it failed, or did not enroll over ACME). sim_acme_enroll() reports for the devices it
 * plays; a device that never calls it must report itself. pool may be NULL. */
void sim_acme_pool_report(struct sim_acme_pool *pool, const char *client_id);

/* One device's enrollment. */
struct sim_acme_device {
    struct sim_http *http;
    const char *base_url;     /* --url: where requests go */
    const char *enroll_token; /* NULL: none */
    const struct fake_apple *apple;
    const struct sim_device *dev;
    enum sim_acme_behaviour behaviour;
    struct sim_acme_pool *pool; /* required for SIM_ACME_REUSE_CLIENT_ID */
    time_t now;                 /* the attestation's notBefore */
    struct sim_stats_acme *stats;
};

struct sim_acme_result {
    enum sim_acme_failure failure;
    const char *step; /* where the flow ended: "profile", "newOrder", "finalize", ... */
    long status;      /* the last HTTP status (0: none) */
    char client_id[SIM_ACME_CLIENT_ID_MAX + 1]; /* the identifier ordered */
    char problem[64];                           /* an ACME problem's type, without its prefix */
    char detail[512];                           /* the reason, one line */
    char *identity_pem; /* SIM_ACME_ISSUED: certificate PEM, then unencrypted PKCS#8 key PEM */
    size_t identity_pem_len;
};

/* Runs d's enrollment. An honest device and one with a wrong CSR report to d->pool (when set)
 * whatever happens; a reusing device waits there for an identifier to reuse (until every other
 * device reported). */
enum sim_acme_outcome sim_acme_enroll(const struct sim_acme_device *d, struct sim_acme_result *r)
    __attribute__((warn_unused_result));
void sim_acme_result_clear(struct sim_acme_result *r);

/* base64url without padding of data[0..len) (malloc()ed, NUL-terminated); NULL when out of
 * memory. */
char *sim_acme_b64url(const unsigned char *data, size_t len);

/* The attObj text (base64url of the CBOR attestation object) of chain; NULL when out of memory. */
char *sim_acme_att_obj(const struct fake_chain *chain);

#endif
