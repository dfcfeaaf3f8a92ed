/*
 * sim_attest: a device's attestation answers and its 7-day cache; see sim_attest.h.
 */
#include "sim_attest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#define ATTEST_DAY_SECONDS 86400L

static const char *const tamper_names[SIM_TAMPER_COUNT] = {
    [SIM_TAMPER_NONE] = "none",
    [SIM_TAMPER_OTHER_ROOT] = "other-root",
    [SIM_TAMPER_EXPIRED] = "expired",
    [SIM_TAMPER_WRONG_OS] = "wrong-os",
    [SIM_TAMPER_NO_FRESHNESS] = "no-freshness",
    [SIM_TAMPER_WRONG_NONCE] = "wrong-nonce",
    [SIM_TAMPER_GARBAGE] = "garbage",
    [SIM_TAMPER_EMPTY] = "empty",
};

/* What SIM_TAMPER_GARBAGE sends: text, and a DER SEQUENCE that is no certificate. */
static const unsigned char garbage_text[] = "this is not a certificate\n";
static const unsigned char garbage_der[] = {0x30, 0x03, 0x02, 0x01, 0x00};

const char *sim_attest_tamper_name(enum sim_attest_tamper tamper)
{
    if ((unsigned)tamper >= SIM_TAMPER_COUNT)
        return "?";
    return tamper_names[tamper];
}

bool sim_attest_tamper_parse(const char *name, enum sim_attest_tamper *tamper)
{
    for (int i = 0; i < SIM_TAMPER_COUNT; i++) {
        if (strcmp(name, tamper_names[i]) == 0) {
            *tamper = (enum sim_attest_tamper)i;
            return true;
        }
    }
    return false;
}

const char *sim_attest_source_name(enum sim_attest_source source)
{
    switch (source) {
    case SIM_ATTEST_GENERATED:
        return "generated";
    case SIM_ATTEST_CACHED:
        return "cached";
    case SIM_ATTEST_TAMPERED:
        return "tampered";
    }
    return "?";
}

void sim_attest_cache_free(struct sim_attest_cache *cache)
{
    fake_chain_free(&cache->chain);
    memset(cache, 0, sizeof(*cache));
}

static bool chain_add(struct fake_chain *chain, const unsigned char *data, size_t len)
{
    unsigned char *copy;

    if (chain->count >= FAKE_CHAIN_MAX)
        return false;
    copy = malloc(len > 0 ? len : 1);
    if (copy == NULL)
        return false;
    if (len > 0)
        memcpy(copy, data, len);
    chain->der[chain->count] = copy;
    chain->len[chain->count] = len;
    chain->count++;
    return true;
}

static bool chain_copy(struct fake_chain *dst, const struct fake_chain *src)
{
    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; i < src->count && i < FAKE_CHAIN_MAX; i++) {
        if (!chain_add(dst, src->der[i], src->len[i])) {
            fake_chain_free(dst);
            return false;
        }
    }
    return true;
}

/* The cache counts only when its chain came from apple's sub CA: a state directory whose
 * hierarchy was made again must not hand out chains nobody can verify. */
static bool cache_usable(const struct fake_apple *apple, const struct sim_attest_cache *cache)
{
    unsigned char *sub = NULL;
    size_t sub_len = 0;
    bool ok;

    if (!cache->present || cache->chain.count != 2 || !fake_apple_sub_der(apple, &sub, &sub_len))
        return false;
    ok = cache->chain.len[1] == sub_len && memcmp(cache->chain.der[1], sub, sub_len) == 0;
    free(sub);
    return ok;
}

/* major.minor of an OS version: "16.7.8" -> 16, 7. */
static void os_major_minor(const char *version, long *major, long *minor)
{
    char *end = NULL;

    *major = strtol(version, &end, 10);
    *minor = end != NULL && *end == '.' ? strtol(end + 1, NULL, 10) : 0;
}

/* An OS version other than version, for SIM_TAMPER_WRONG_OS. */
static const char *other_os_version(const char *version)
{
    long major;
    long minor;

    os_major_minor(version, &major, &minor);
    return major >= 17 ? "16.7.8" : "17.5.1";
}

/* Mints a leaf for who with freshness nonce (none when nonce_len is 0) at opt->now, applying
 * opt->tamper; out gets [leaf, sub CA] (or the tampered items). */
static bool attest_mint(const struct fake_apple *apple, const struct fake_apple *other,
                        const struct sim_attest_options *opt, const struct sim_device *who,
                        const unsigned char *nonce, size_t nonce_len, struct fake_chain *out,
                        char *err, size_t errlen)
{
    struct fake_apple_device facts;
    struct fake_leaf_spec *spec;
    const struct fake_apple *issuer = apple;
    unsigned char random_nonce[32];
    long major;
    long minor;
    bool ok;

    memset(out, 0, sizeof(*out));
    if (opt->tamper == SIM_TAMPER_EMPTY)
        return true;
    if (opt->tamper == SIM_TAMPER_GARBAGE) {
        if (!chain_add(out, garbage_text, sizeof(garbage_text) - 1) ||
            !chain_add(out, garbage_der, sizeof(garbage_der))) {
            fake_chain_free(out);
            snprintf(err, errlen, "out of memory");
            return false;
        }
        return true;
    }
    memset(&facts, 0, sizeof(facts));
    facts.serial_number = who->serial;
    facts.udid = who->udid;
    facts.os_version = who->os_version;
    facts.software_update_device_id = sim_device_software_update_id(who);
    if (nonce_len > 0) {
        facts.nonce = nonce;
        facts.nonce_len = nonce_len;
    }
    switch (opt->tamper) {
    case SIM_TAMPER_WRONG_OS:
        facts.os_version = other_os_version(who->os_version);
        break;
    case SIM_TAMPER_NO_FRESHNESS:
        facts.nonce = NULL;
        facts.nonce_len = 0;
        break;
    case SIM_TAMPER_WRONG_NONCE:
        if (RAND_bytes(random_nonce, sizeof(random_nonce)) != 1) {
            snprintf(err, errlen, "random generator failed");
            return false;
        }
        facts.nonce = random_nonce;
        facts.nonce_len = sizeof(random_nonce);
        break;
    case SIM_TAMPER_OTHER_ROOT:
        if (other == NULL) {
            snprintf(err, errlen, "no second hierarchy for --attest-tamper other-root");
            return false;
        }
        issuer = other;
        break;
    default:
        break;
    }
    spec = malloc(sizeof(*spec)); /* about 4 KiB: not on a worker's stack */
    if (spec == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    if (!fake_leaf_spec_device(spec, &facts, opt->now)) {
        snprintf(err, errlen, "device %lu: a fact is too long for a leaf", who->index);
        free(spec);
        return false;
    }
    os_major_minor(facts.os_version, &major, &minor);
    if (opt->legacy_leaf && (major < 17 || (major == 17 && minor < 2))) {
        fake_leaf_spec_omit(spec, FAKE_PROP_SOFTWARE_UPDATE_DEVICE_ID);
        fake_leaf_spec_omit(spec, FAKE_PROP_OS_VERSION);
        fake_leaf_spec_omit(spec, FAKE_PROP_LLB_VERSION);
    }
    if (opt->tamper == SIM_TAMPER_EXPIRED) {
        spec->not_before = opt->now - (FAKE_APPLE_LEAF_DAYS + 1) * ATTEST_DAY_SECONDS;
        spec->not_after = opt->now - ATTEST_DAY_SECONDS;
    }
    ok = fake_apple_leaf(issuer, spec, out, err, errlen);
    free(spec);
    return ok;
}

bool sim_attest_answer(const struct fake_apple *apple, const struct fake_apple *other,
                       const struct sim_attest_options *opt, const struct sim_device *dev,
                       const unsigned char *nonce, size_t nonce_len, struct sim_attest_cache *cache,
                       bool *cache_changed, struct fake_chain *out, enum sim_attest_source *source,
                       char *err, size_t errlen)
{
    bool have_cache;

    *cache_changed = false;
    memset(out, 0, sizeof(*out));
    if (nonce_len > SIM_NONCE_MAX) {
        snprintf(err, errlen, "nonce longer than %d bytes", SIM_NONCE_MAX);
        return false;
    }
    if (opt->tamper != SIM_TAMPER_NONE || opt->as_device != NULL) {
        *source = SIM_ATTEST_TAMPERED;
        return attest_mint(apple, other, opt, opt->as_device != NULL ? opt->as_device : dev, nonce,
                           nonce_len, out, err, errlen);
    }
    have_cache = cache_usable(apple, cache);
    /* now < generated_at (a test moved the clock back) counts as "not 7 days yet". */
    if (have_cache &&
        (nonce_len == 0 ||
         (nonce_len == cache->nonce_len && memcmp(nonce, cache->nonce, nonce_len) == 0) ||
         opt->now < cache->generated_at ||
         opt->now - cache->generated_at < SIM_ATTEST_CACHE_SECONDS)) {
        *source = SIM_ATTEST_CACHED;
        if (!chain_copy(out, &cache->chain)) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        return true;
    }
    *source = SIM_ATTEST_GENERATED;
    if (!attest_mint(apple, other, opt, dev, nonce, nonce_len, out, err, errlen))
        return false;
    sim_attest_cache_free(cache);
    if (!chain_copy(&cache->chain, out)) {
        fake_chain_free(out);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    cache->present = true;
    cache->generated_at = opt->now;
    if (nonce_len > 0)
        memcpy(cache->nonce, nonce, nonce_len);
    cache->nonce_len = nonce_len;
    *cache_changed = true;
    return true;
}
