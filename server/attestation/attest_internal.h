/*
 * attest_internal: what attest.c lends the other verifiers of Apple attestation chains in
 * server/attestation/ (device_attest.c, the ACME route), so that a chain and a leaf are judged
 * alike whichever way they reached vouchd: the same DER rule for each item, the same Apple
 * extension reader, the same path validation to the verifier's roots, with its cache of
 * intermediates and its rule that a leaf hangs under an intermediate. Not for use outside
 * server/attestation/: attest.h is the public face.
 *
 * Ownership: nothing here keeps a pointer to its arguments; X509 objects returned are the
 * caller's (X509_free()).
 */
#ifndef VOUCH_ATTEST_INTERNAL_H
#define VOUCH_ATTEST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/types.h>

#include "attest.h"

enum attest_chain_status {
    ATTEST_CHAIN_VERIFIED = 0,
    ATTEST_CHAIN_MALFORMED,     /* no item or more than ATTEST_MAX_CERTS, or an item empty, over
                                   ATTEST_MAX_CERT_BYTES or not exactly one DER certificate */
    ATTEST_CHAIN_BAD_EXTENSION, /* the leaf is DER, but an Apple extension (or its validity) does
                                   not parse with its exact encoding */
    ATTEST_CHAIN_UNTRUSTED,     /* does not verify to a configured root at that time */
};

/* What attest_chain_verify() read of the leaf. */
struct attest_leaf {
    bool parsed; /* properties, not_before and not_after are meaningful */
    struct attest_properties properties;
    time_t not_before, not_after;
    uint8_t sha256[32]; /* of the leaf's DER; all zero when the items were out of bounds */
};

/* Verifies ders[0..count) (leaf first, as the device sent them) at time t against v's roots:
 * the leaf's Apple extensions are read first (a leaf that does not parse is refused whatever
 * its chain), then the path. Always fills leaf; on ATTEST_CHAIN_UNTRUSTED leaf->parsed is true
 * and its properties are what the untrusted leaf claims. Uses and fills v's cache. */
enum attest_chain_status attest_chain_verify(struct attest_verifier *v, const uint8_t *const *ders,
                                             const size_t *lens, size_t count, time_t t,
                                             struct attest_leaf *leaf)
    __attribute__((warn_unused_result));

/* One DER certificate of at most ATTEST_MAX_CERT_BYTES with no trailing byte, else NULL. */
X509 *attest_parse_der(const uint8_t *der, size_t len) __attribute__((warn_unused_result));

/* The table of the P-384 public key `key` (a copy of the curve with key as its generator, its
 * multiples precomputed), for attest_p384_verify(); NULL if key is not a P-384 key. The caller
 * owns it (EC_GROUP_free()). Meant for keys that sign many signatures: it costs milliseconds
 * and about 200 KiB. */
EC_GROUP *attest_p384_key_table(struct attest_verifier *v, EVP_PKEY *key)
    __attribute__((warn_unused_result));

/* True if sig (an ECDSA-Sig-Value, in DER) is a valid ECDSA signature of digest (SHA-384, 48
 * bytes) by the key of key_table, the answer EVP_PKEY_verify would give. Uses v's generator table
 * and scratch space: v must have made key_table. */
bool attest_p384_verify(struct attest_verifier *v, const EC_GROUP *key_table,
                        const uint8_t digest[48], const uint8_t *sig, size_t sig_len)
    __attribute__((warn_unused_result));

/* v's SHA-256, fetched once (OpenSSL 3's implicit fetches cost on every call). */
const EVP_MD *attest_verifier_get0_sha256(const struct attest_verifier *v);

#endif
