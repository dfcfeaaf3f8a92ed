/*
 * sim_attest: how a simulated device answers DevicePropertiesAttestation, Apple's 7-day rule
 * included, and the tampered answers of negative tests.
 *
 * A real device caches the last attestation it generated. No nonce, or the nonce of the cached
 * one: it returns the cached chain. A new nonce: it generates a new attestation only if the cached
 * one is at least 7 days old, else it returns the cached chain, whose freshness code is the older
 * nonce. Leaves come from the stand-in Apple hierarchy (tests/lib/fake_apple.h) and carry the
 * device's serial number, UDID, OS version (also as sepOS and LLB version, as on iOS),
 * SoftwareUpdateDeviceID, and the nonce as freshness code; notBefore is the simulator's clock.
 *
 * Tampered answers (--attest-tamper, --attest-as-device) are minted fresh at the clock with the
 * command's nonce, so that each one differs from an honest fresh answer in exactly one way; they
 * neither read nor change the cache.
 *
 * Pure: no I/O (sim_store keeps the cache in the state directory). Chains handed out are malloc()ed
 * items freed with fake_chain_free().
 */
#ifndef VOUCH_SIM_ATTEST_H
#define VOUCH_SIM_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "fake_apple.h"
#include "sim_device.h"

#define SIM_ATTEST_CACHE_SECONDS (7L * 24 * 3600) /* Apple: at most one attestation a week */

enum sim_attest_tamper {
    SIM_TAMPER_NONE,
    SIM_TAMPER_OTHER_ROOT,   /* [leaf, sub CA] of a second stand-in hierarchy (same names) */
    SIM_TAMPER_EXPIRED,      /* validity ended a day before the clock */
    SIM_TAMPER_WRONG_OS,     /* the leaf states another OS version than the answer reports */
    SIM_TAMPER_NO_FRESHNESS, /* no .11.1 extension */
    SIM_TAMPER_WRONG_NONCE,  /* 32 random bytes as freshness code */
    SIM_TAMPER_GARBAGE,      /* two <data> items that are not certificates */
    SIM_TAMPER_EMPTY,        /* an empty array */
    SIM_TAMPER_COUNT
};

/* The attestation a device generated last: its cache. */
struct sim_attest_cache {
    bool present;
    time_t generated_at;                /* the clock when it was made (= the leaf's notBefore) */
    unsigned char nonce[SIM_NONCE_MAX]; /* the nonce it answered */
    size_t nonce_len;                   /* 0: made without a nonce (no freshness code) */
    struct fake_chain chain;            /* owned */
};

enum sim_attest_source {
    SIM_ATTEST_GENERATED, /* a new attestation (the cache now holds it) */
    SIM_ATTEST_CACHED,    /* the cached one */
    SIM_ATTEST_TAMPERED   /* a negative-test answer */
};

struct sim_attest_options {
    enum sim_attest_tamper tamper;
    const struct sim_device *as_device; /* not NULL: answer with a leaf made for this device */
    bool legacy_leaf; /* OS before 17.2: no .9.4, .10.1, .10.3, as real leaves of that age */
    time_t now;       /* the simulator's clock */
};

const char *sim_attest_tamper_name(enum sim_attest_tamper tamper);
bool sim_attest_tamper_parse(const char *name, enum sim_attest_tamper *tamper)
    __attribute__((warn_unused_result));
const char *sim_attest_source_name(enum sim_attest_source source);

void sim_attest_cache_free(struct sim_attest_cache *cache);

/* What dev answers to a DevicePropertiesAttestation query with nonce[0..nonce_len) (nonce_len 0:
 * no nonce). apple is the hierarchy the device's chains come from; other, needed only for
 * SIM_TAMPER_OTHER_ROOT, the second one. cache is dev's cache (a cache whose chain is not from
 * apple's sub CA counts as absent); *cache_changed says whether the caller must store it again.
 * out receives the items to send. False with a reason in err on a local failure. */
bool sim_attest_answer(const struct fake_apple *apple, const struct fake_apple *other,
                       const struct sim_attest_options *opt, const struct sim_device *dev,
                       const unsigned char *nonce, size_t nonce_len, struct sim_attest_cache *cache,
                       bool *cache_changed, struct fake_chain *out, enum sim_attest_source *source,
                       char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
