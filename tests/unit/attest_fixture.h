/*
 * attest_fixture: what the attestation verifier's unit tests (tests/unit/test_attest_*.c, one
 * cmocka program per concern, all testing server/attestation/attest.c and server/attestation/attest_json.c) share.
 *
 * The stand-in Apple PKI of tests/lib/fake_apple.h (and a lookalike with the same names and its
 * own keys), its keys for crafting certificates its spec cannot describe, the request nonces, the
 * real Apple leaf of tests/testdata/apple/ as DER, and a long-lived verifier whose cache already
 * holds the stand-in sub CA: attest_fixture_setup() makes them in g, attest_fixture_teardown()
 * frees them (each program's cmocka group set-up and tear-down).
 *
 * Most verdicts are taken twice: on a new verifier (nothing cached: full path validation) and on
 * g.warm (the cached-intermediate path). Both must give the same verdict; a message says which
 * path disagreed (expect(), expect_chain(), expect_default()).
 *
 * The helpers keep the short names the tests were written with (run, expect, issue, items_of,
 * ...): they are the tests' vocabulary, used in every test, and live only in these programs.
 * They fail the running test (cmocka) instead of returning errors. Ownership: DER buffers handed
 * out (cert_der(), craft_*()) are malloc()ed, freed by the caller; struct items borrow theirs.
 */
#ifndef VOUCH_ATTEST_FIXTURE_H
#define VOUCH_ATTEST_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <time.h>

#include "attest.h"
#include "fake_apple.h"
#include "json.h"

#define TESTDATA "tests/testdata/apple/" /* the tests run from the repository root */
#define REAL_LEAF_PEM TESTDATA "real-leaf-macos-TMWFWWWP67.pem"
#define APPLE_ARC "1.2.840.113635.100.8."

#define DAY ((time_t)86400)
/* 2025-08-01T00:00:00Z, inside the real leaf's life. */
#define REAL_LEAF_TIME ((time_t)1754006400)
#define NOW ((time_t)1768435200)             /* 2026-01-15T00:00:00Z: the verification time */
#define MINTED (NOW - DAY)                   /* stand-in leaves are minted the day before */
#define PRIVATE_OID "1.3.6.1.4.1.57264.99.1" /* an extension nobody understands */

/* The enrolled device. */
extern const char dev_udid[];
extern const char dev_serial[];
extern const char dev_os[];
extern const char dev_sudid[];

extern const struct json_limits json_limits;

struct attest_fixture {
    struct fake_apple *pki;       /* the stand-in Apple */
    struct fake_apple *lookalike; /* same names, its own keys */
    char *root_pem, *lookalike_root_pem;
    struct attest_verifier *warm; /* long-lived: its cache holds pki's sub CA */
    X509 *root, *sub;             /* pki's, with their keys, for crafting */
    EVP_PKEY *root_key, *sub_key, *leaf_key;
    uint8_t *real_leaf;
    size_t real_leaf_len;
    uint8_t nonce[32];        /* the nonce of this request */
    uint8_t older_nonce[32];  /* one this server sent this device before */
    uint8_t other_nonce[32];  /* one this server sent another device */
    uint8_t random_nonce[32]; /* one nobody sent */
};

extern struct attest_fixture g;

/* Set-up and tear-down of g, for cmocka_run_group_tests(). */
int attest_fixture_setup(void **state);
int attest_fixture_teardown(void **state);

/* cert's DER (malloc()ed). */
uint8_t *cert_der(X509 *cert, size_t *len);
/* The first certificate of a PEM text. */
X509 *pem_cert(const char *pem, size_t len);
/* SHA-256 of data as 64 lowercase hex digits. */
void sha256_hex(const uint8_t *data, size_t len, char out[65]);
time_t asn1_time(const ASN1_TIME *t);
/* A verifier trusting the roots of pem (fails the test if there is none). */
struct attest_verifier *new_verifier(const char *pem);
/* name, or "(none)" for NULL (for messages). */
const char *name_or_none(const char *name);

/* A list of items as a device sends them. */
struct items {
    const uint8_t *der[8];
    size_t len[8];
    size_t count;
};

void items_push(struct items *it, const uint8_t *der, size_t len);
/* The items of chain, borrowed. */
struct items items_of(const struct fake_chain *chain);

/* What the server knows about the request. */
struct request {
    const uint8_t *nonce;
    size_t nonce_len;
    const uint8_t *older[4];
    size_t older_len[4];
    time_t older_at[4]; /* when each was asked, used when bounded */
    bool bounded;       /* pass older_at: cached answers held to their request and Apple's cache */
    bool require_fresh; /* a request asked when a new attestation is due */
    size_t older_count;
    const char *udid, *serial, *os;
    time_t at;
};

/* This request's nonce g.nonce (g.older_nonce asked before), the enrolled device, at NOW. */
struct request default_request(void);

/* attest_verify() of it for r on v, into out (filled with garbage first: every field must be
 * set by the verifier). */
void run(struct attest_verifier *v, const struct items *it, const struct request *r,
         struct attest_verdict *out);

/* Fails the test unless v has this status, freshness and reason; path names the verifier. */
void assert_verdict(const struct attest_verdict *v, const char *path, enum attest_status status,
                    enum attest_freshness freshness, enum attest_reason reason);

bool same_properties(const struct attest_properties *a, const struct attest_properties *b);
/* Prints the difference and returns false when the verdicts differ. */
bool same_verdict(const struct attest_verdict *a, const struct attest_verdict *b, const char *what);

/* Fails the test when the verdicts differ. */
void assert_same_verdict(const struct attest_verdict *a, const struct attest_verdict *b,
                         const char *what);

/* Verifies on a new verifier (full path) and on g.warm (cached sub CA); both must give the
 * expected verdict, and the same one. out: the full path's. */
void expect(const struct items *it, const struct request *r, enum attest_status status,
            enum attest_freshness freshness, enum attest_reason reason, struct attest_verdict *out);

/* expect() on chain's items. */
void expect_chain(const struct fake_chain *chain, const struct request *r,
                  enum attest_status status, enum attest_freshness freshness,
                  enum attest_reason reason, struct attest_verdict *out);

/* expect_chain() with default_request(). */
void expect_default(const struct fake_chain *chain, enum attest_status status,
                    enum attest_freshness freshness, enum attest_reason reason);

/* The enrolled device's leaf (iOS-like), with freshness nonce[0..nonce_len) (NULL: none). */
void device_spec(struct fake_leaf_spec *spec, const uint8_t *nonce, size_t nonce_len);

/* fake_apple_leaf() that fails the test when it fails. */
void issue(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
           struct fake_chain *chain);
/* issue() of device_spec() from g.pki. */
void issue_device(struct fake_chain *chain, const uint8_t *nonce, size_t nonce_len);

/* ---- crafting what fake_leaf_spec cannot describe ---- */

/* An extension from its OpenSSL config text; one of raw DER value bytes; a private one of pad
 * bytes (none for 0); a CN. */
void add_conf_ext(X509 *cert, X509 *issuer, int nid, const char *value);
void add_raw_ext(X509 *cert, const char *oid, int critical, const void *value, size_t len);
void add_pad_ext(X509 *cert, size_t pad);
void set_name(X509_NAME *name, const char *cn);

enum leaf_twist {
    TWIST_NONE,
    TWIST_PAD,           /* a non-critical private extension of pad bytes */
    TWIST_AKID_OTHER,    /* an authorityKeyIdentifier naming another key */
    TWIST_DUP_KEY_USAGE, /* a second (non-critical) keyUsage */
    TWIST_BAD_SAN,       /* a subjectAltName whose value is not DER */
    TWIST_SHA1,          /* signed with ECDSA-SHA1 */
    TWIST_RSA512,        /* an RSA-512 leaf key */
};

/* A leaf of the enrolled device issued by pki's sub CA, with one twist. */
uint8_t *craft_leaf(enum leaf_twist twist, size_t pad, time_t not_before, time_t not_after,
                    size_t *len);

/* pki's sub CA again (same name, same key, signed by pki's root) with another validity and an
 * optional private extension of pad bytes. */
uint8_t *craft_sub(time_t not_before, time_t not_after, size_t pad, size_t *len);

/* A crafted leaf (is_leaf) or sub CA of exactly target bytes. ECDSA signatures vary in length,
 * so this retries. */
uint8_t *craft_exact(bool is_leaf, size_t target);

#endif
