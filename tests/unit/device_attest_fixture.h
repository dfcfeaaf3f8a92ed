/*
 * device_attest_fixture: what the unit tests of server/attestation/device_attest.c
 * (tests/unit/test_device_attest_*.c, one cmocka program per concern: what a verified answer
 * holds and why a leaf or chain is refused; the attObj's CBOR and base64url) share.
 *
 * The stand-in Apple PKI of tests/lib/fake_apple.h (and another hierarchy with the same names and
 * its own keys), a long-lived verifier whose cache holds the stand-in sub CA after the first
 * answer: device_attest_fixture_setup() makes them in g, device_attest_fixture_teardown() frees
 * them (each program's cmocka group set-up and tear-down). The challenge tokens, the enrolled
 * device, and the helpers that build an attObj with libcbor's builder and take verdicts.
 *
 * Every verdict is taken twice, on g.warm and on a new verifier (full path validation), and both
 * must agree (verify_both()).
 *
 * The helpers keep the short names the tests were written with (issue, att_obj, expect_item,
 * verify_both, ...): they are the tests' vocabulary and live only in these programs. They fail the
 * running test (cmocka) instead of returning errors. Ownership: the CBOR builders hand out a new
 * item; map_put(), serialize(), encode() and expect_item() take the item they are given; text and
 * bytes handed out (b64url(), serialize(), encode(), attobj_of()) are malloc()ed, freed by the
 * caller; a result filled by verify_on() or verify_both() is the caller's, to
 * device_attest_clear().
 */
#ifndef VOUCH_DEVICE_ATTEST_FIXTURE_H
#define VOUCH_DEVICE_ATTEST_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cbor.h>
#include <stdbool.h>
#include <time.h>

#include "attest.h"
#include "device_attest.h"
#include "fake_apple.h"

#define DAY ((time_t)86400)
#define NOW ((time_t)1768435200) /* 2026-01-15T00:00:00Z: the verification time */
#define MINTED (NOW - 60)        /* a device asks Apple right after it reads the challenge */

/* Challenge tokens as vouchd mints them: 32 random bytes, base64url. */
extern const char token[];
extern const char other_token[];
/* The enrolled device. */
extern const char dev_serial[];
extern const char dev_udid[];

struct device_attest_fixture {
    struct fake_apple *pki;   /* the stand-in Apple */
    struct fake_apple *other; /* another hierarchy, same names, its own keys: not trusted */
    char *root_pem;
    struct attest_verifier *warm; /* its cache holds pki's sub CA after the first answer */
};

extern struct device_attest_fixture g;

/* Set-up and tear-down of g, for cmocka_run_group_tests(). */
int device_attest_fixture_setup(void **state);
int device_attest_fixture_teardown(void **state);

/* A verifier trusting the roots of pem (fails the test if there is none). */
struct attest_verifier *new_verifier(const char *pem);

void sha256(const void *data, size_t len, uint8_t out[32]);
/* data in base64url without padding (malloc()ed). */
char *b64url(const uint8_t *data, size_t len);

/* The enrolled device's leaf spec, its freshness code SHA-256(tok) (NULL: none). */
void device_spec(struct fake_leaf_spec *spec, const char *tok);
/* fake_apple_leaf() that fails the test when it fails. */
void issue(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
           struct fake_chain *chain);

/* [DER...] as a definite CBOR array of byte strings. */
cbor_item_t *x5c_of(uint8_t *const *der, const size_t *len, size_t count);
void map_put(cbor_item_t *map, const char *key, cbor_item_t *value);
/* {x5c: x5c} (x5c NULL: {}). */
cbor_item_t *att_stmt(cbor_item_t *x5c);
/* {fmt: fmt, attStmt: stmt} (either NULL: left out). */
cbor_item_t *att_obj(const char *fmt, cbor_item_t *stmt);
/* item's encoding (malloc()ed); takes item. */
uint8_t *serialize(cbor_item_t *item, size_t *len);
/* item as attObj text (malloc()ed); takes item. */
char *encode(cbor_item_t *item);
/* The attObj a device sends for chain: {fmt: "apple", attStmt: {x5c: chain}}. */
char *attobj_of(const struct fake_chain *chain);

bool same_properties(const struct attest_properties *a, const struct attest_properties *b);

/* device_attest_verify() on v, checking what every call must hold: true exactly when OK, an
 * empty OpenSSL error queue, a name for every refusal, no key unless verified. */
enum device_attest_reason verify_on(struct attest_verifier *v, const char *text, size_t len,
                                    const char *tok, time_t t, struct device_attest_result *out);

/* The verdict on text on g.warm and on a new verifier: both must be want, and agree. out (the
 * cleared result is the caller's to device_attest_clear()) holds g.warm's. */
void verify_both(const char *text, size_t len, const char *tok, time_t t,
                 enum device_attest_reason want, struct device_attest_result *out);

/* verify_both() of text with token at NOW. */
void expect_text(const char *text, enum device_attest_reason want);
/* expect_text() of item's encoding; takes item. */
void expect_item(cbor_item_t *item, enum device_attest_reason want);
/* expect_text() of raw CBOR bytes. */
void expect_bytes(const uint8_t *bytes, size_t len, enum device_attest_reason want);
/* Issues spec from pki and expects want for the attObj of the chain. */
void expect_spec(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
                 enum device_attest_reason want);

#endif
