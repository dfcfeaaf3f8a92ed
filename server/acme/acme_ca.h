/*
 * acme_ca: Vouch's own issuing CA for hardware-bound device identities (docs/acme.md): checks a
 * finalize CSR against the attested key and issues the identity certificate.
 *
 * Pure: no I/O beyond reading the CA's two PEM files in acme_ca_load(), no clock (the caller
 * passes the time); acme_ca_create(), for the CLI only, writes files and reads the clock.
 *
 * What Vouch issues is its choice, never the CSR's: the attested key, subject CN = the attested
 * UDID (O = the configured organization, serialNumber = the attested serial), SAN otherName
 * permanent-identifier (1.3.6.1.5.5.7.8.3) = the attested UDID, EKU clientAuth, keyUsage
 * digitalSignature (critical), basicConstraints CA:FALSE (critical), authority and subject key
 * identifiers, a random positive serial of exactly 16 bytes (about 127 random bits), ECDSA with
 * SHA-384 (SHA-256 for a P-256 or RSA CA), validity [not_before - 5 min, not_before + lifetime],
 * never outside the CA's own.
 *
 * Ownership: the CA owns its certificate and key; DER and PEM handed out are malloc()ed (free()).
 * Every function leaves OpenSSL's error queue empty.
 */
#ifndef VOUCH_ACME_CA_H
#define VOUCH_ACME_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ACME_CA_MAX_CSR (16 * 1024) /* DER bytes of a finalize CSR */
#define ACME_CA_SERIAL_HEX 33       /* 16 bytes as lowercase hex, and NUL */

enum acme_csr_error {
    ACME_CSR_OK = 0,
    ACME_CSR_MALFORMED,     /* not one DER PKCS#10 request, or trailing bytes */
    ACME_CSR_BAD_SIGNATURE, /* its self-signature does not verify */
    ACME_CSR_KEY_MISMATCH,  /* its key is not byte-for-byte the attested key */
};

struct acme_ca;

/* Loads a PEM certificate (a CA: basicConstraints CA:TRUE, a keyUsage with keyCertSign) and
 * its unencrypted PEM private key (EC P-384 or P-256, or RSA of 2048 bits or more); NULL with a
 * one-line reason naming the file in err when either cannot be used or they do not match. */
struct acme_ca *acme_ca_load(const char *cert_path, const char *key_path, char *err,
                             size_t err_size);
void acme_ca_free(struct acme_ca *ca);

/* The CA certificate as PEM (NUL-terminated, owned by the CA): what identity_ca must trust
 * and what follows each issued leaf in the downloaded chain. */
const char *acme_ca_pem(const struct acme_ca *ca);

/* Checks a CSR (DER, at most ACME_CA_MAX_CSR bytes): exactly one PKCS#10 request, its
 * self-signature valid, whose SubjectPublicKeyInfo (as the request encodes it) equals
 * spki[0..spki_len) byte for byte. Its names and extensions are ignored. Errors are checked in
 * the enum's order: a request that fails several gets the first. */
enum acme_csr_error acme_csr_check(const uint8_t *der, size_t len, const uint8_t *spki,
                                   size_t spki_len) __attribute__((warn_unused_result));
const char *acme_csr_error_name(enum acme_csr_error err); /* "malformed", ...; NULL for OK */

struct acme_issue_request {
    const uint8_t *spki; /* the attested key, DER SubjectPublicKeyInfo */
    size_t spki_len;
    const char *udid;          /* attested */
    const char *serial_number; /* attested */
    const char *organization;  /* may be NULL */
    time_t not_before;
    unsigned lifetime_s;
};

struct acme_issued {
    uint8_t *der; /* the certificate (owned: free()) */
    size_t der_len;
    uint8_t sha256[32];                  /* of der */
    char serial_hex[ACME_CA_SERIAL_HEX]; /* always 32 digits */
    time_t not_before, not_after;        /* as in the certificate: back-dated, maybe cut short */
};

/* Issues one certificate; false with a reason in err (out then holds nothing to free): a
 * missing key, UDID or serial number, a name longer than 64 bytes or that its attribute cannot
 * encode, a spki that is not exactly one DER SubjectPublicKeyInfo, a lifetime of 0, or a CA
 * that is not valid at not_before. not_after is cut short to the CA's own. */
bool acme_ca_issue(const struct acme_ca *ca, const struct acme_issue_request *req,
                   struct acme_issued *out, char *err, size_t err_size)
    __attribute__((warn_unused_result));

/* The chain a client downloads (NUL-terminated; its length without the NUL in *len unless len
 * is NULL): the certificate's PEM, then the CA's. NULL when out of memory or when der is not
 * exactly one DER certificate. */
char *acme_ca_chain_pem(const struct acme_ca *ca, const uint8_t *der, size_t der_len, size_t *len);

/* Makes a new CA for `vouchctl ca init`: a P-384 key and a self-signed certificate (CN
 * common_name, at most 64 bytes; basicConstraints CA:TRUE pathlen 0 and keyUsage keyCertSign
 * cRLSign, both critical; a subject key identifier; ECDSA-SHA384; valid from 5 minutes ago to 1
 * to 36500 `days` from now), written as PEM to cert_path (mode 0644) and key_path (unencrypted
 * PKCS#8, mode 0600). Refuses when either path exists (a dangling link too), and leaves neither
 * file behind when it fails. */
bool acme_ca_create(const char *cert_path, const char *key_path, const char *common_name,
                    unsigned days, char *err, size_t err_size) __attribute__((warn_unused_result));

#endif
