/*
 * sim_cms: the Mdm-Signature of a P-256 identity, written straight in DER.
 *
 * What a device sends is always the same shape: a detached CMS SignedData, SHA-256, the signer
 * certificate included, one SignerInfo by issuer and serial number with the signed attributes
 * contentType, signingTime and messageDigest, ECDSA with SHA-256. OpenSSL 3.0 makes the same bytes
 * (sim_pki keeps CMS_sign() for every other key), but spends most of the simulator's CPU around
 * them: d2i_X509() decodes the public key through a freshly built decoder (0.2 ms an identity),
 * CMS_sign() fetches algorithms and builds ASN.1 objects for every message (twice the ECDSA
 * signature itself). Here an identity is its certificate's DER, two slices of it and a signing
 * context made once; a message costs a SHA-256, an ECDSA signature and a few copies.
 *
 * Issuing such an identity has the same trouble: X509_set_pubkey() and PEM_write_bio_PrivateKey()
 * encode the key through an encoder built for the call and decode it again (three quarters of an
 * identity's issue); sim_cms_p256_export() gives both encodings from the key's parameters.
 *
 * Pure: no I/O, no global state. A signer belongs to one thread; the sim_cms_keys it was made
 * with must outlive it.
 */
#ifndef VOUCH_SIM_CMS_H
#define VOUCH_SIM_CMS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define SIM_CMS_P256_POINT 65  /* uncompressed: 04 || x || y */
#define SIM_CMS_P256_PKCS8 138 /* PKCS#8 with RFC 5915 ECPrivateKey, public key included */

struct evp_pkey_st;
struct sim_cms_keys;
struct sim_cms_signer;

/* What a thread fetches once for all its signers: SHA-256 and the EC key builder. */
struct sim_cms_keys *sim_cms_keys_new(void);
void sim_cms_keys_free(struct sim_cms_keys *keys);

enum sim_cms_load {
    SIM_CMS_LOADED,
    SIM_CMS_NOT_P256, /* a key this module does not handle: use OpenSSL's CMS */
    SIM_CMS_BAD       /* a malformed certificate or key, or one that does not match */
};

/* A signer for a certificate (DER) and its unencrypted PKCS#8 P-256 key (DER) holding its public
 * key, as sim_pki_identity_issue() writes them. The certificate is copied. SIM_CMS_BAD leaves a
 * reason in err. */
enum sim_cms_load sim_cms_signer_new(struct sim_cms_keys *keys, const unsigned char *cert,
                                     size_t cert_len, const unsigned char *key, size_t key_len,
                                     struct sim_cms_signer **out, char *err, size_t errlen);
void sim_cms_signer_free(struct sim_cms_signer *signer);

/* A P-256 key's public point and its PKCS#8 DER, byte for byte what OpenSSL writes for it (no
 * parameters in the ECPrivateKey: the AlgorithmIdentifier names the curve). False for any other
 * key. */
bool sim_cms_p256_export(const struct evp_pkey_st *key, unsigned char point[SIM_CMS_P256_POINT],
                         unsigned char pkcs8[SIM_CMS_P256_PKCS8])
    __attribute__((warn_unused_result));

/* The signer's certificate (DER), borrowed. */
const unsigned char *sim_cms_signer_cert(const struct sim_cms_signer *signer, size_t *len);

/* *der (malloc()ed, *der_len bytes) = the detached SignedData over body[0..len), signingTime =
 * now (1950 to 2049: UTCTime). */
bool sim_cms_sign(struct sim_cms_signer *signer, const void *body, size_t len, time_t now,
                  unsigned char **der, size_t *der_len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
