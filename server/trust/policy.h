/*
 * policy: trust policies (docs/trust.md) and the decision one makes about a device: may this
 * device in, now?
 *
 * Policies come from the configuration's `policy.NAME.KEY = value` lines (server/config.c hands
 * them over as items with their line numbers); a policy named "default" always exists. The
 * decision is taken from what the database knows about the subject (struct trust_facts, one
 * query) and the policy in memory: this is on the path of every login of every device.
 *
 * Pure, except trust_policies_load_lists(), which reads the serial list files a policy names.
 * Ownership: a struct trust_policies owns everything in it (trust_policies_clear()); the strings
 * of struct trust_facts are the caller's.
 */
#ifndef VOUCH_POLICY_H
#define VOUCH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRUST_MAX_POLICIES 32
#define TRUST_POLICY_NAME_MAX 32 /* letters, digits, '-' and '_' */
#define TRUST_VERSION_MAX 16     /* "17.4.1" */
#define TRUST_MAX_SERIALS 100000 /* per list file */

enum trust_platform { TRUST_IOS, TRUST_IPADOS, TRUST_TVOS, TRUST_PLATFORM_COUNT };

/* What a policy requires of the attestation. */
enum trust_requirement {
    TRUST_REQUIRE_ENROLLED, /* require = enrolled: a known, current identity, enrolled */
    TRUST_REQUIRE_VERIFIED, /* require = verified (the default) */
    TRUST_REQUIRE_FRESH,    /* require = verified fresh: the verdict rests on a fresh answer */
};

/* One `policy.NAME.KEY = value` line of the configuration. */
struct trust_policy_item {
    const char *key; /* the whole key, "policy.web.min_os_version.ios" */
    const char *value;
    unsigned line;
};

struct trust_policy {
    char name[TRUST_POLICY_NAME_MAX + 1];
    enum trust_requirement require;
    unsigned max_attestation_age;                           /* seconds since Apple made it; 0: none */
    char min_os_version[TRUST_PLATFORM_COUNT][TRUST_VERSION_MAX + 1]; /* "": none */
    bool require_hardware_bound_identity;
    bool allow_unsupported; /* a device that cannot attest (older models) meets "verified" */
    char *deny_serials_path, *allow_serials_path;           /* NULL: none */
    char **deny_serials, **allow_serials;                   /* sorted, after loading */
    size_t deny_count, allow_count;
};

struct trust_policies {
    struct trust_policy *items;
    size_t count;
};

/* Builds the policies from the configuration's items (any order; the default policy is added
 * when not configured). False with "line N: KEY: why" in err for an unknown key, a bad value, a
 * bad policy name or too many policies. No I/O: the serial files are read by
 * trust_policies_load_lists(). */
bool trust_policies_parse(const struct trust_policy_item *items, size_t count,
                          struct trust_policies *out, char *err, size_t err_size)
    __attribute__((warn_unused_result));
/* Reads every deny_serials / allow_serials file (one serial per line, '#' comments, blanks
 * ignored, at most TRUST_MAX_SERIALS). False with the file and line in err. */
bool trust_policies_load_lists(struct trust_policies *policies, char *err, size_t err_size)
    __attribute__((warn_unused_result));
void trust_policies_clear(struct trust_policies *policies);
/* The policy named name[0..len), or NULL. */
const struct trust_policy *trust_policy_find(const struct trust_policies *policies,
                                             const char *name, size_t len);

/* What the database knows about the subject of a question (a certificate, a UDID or a serial).
 * Times are Unix seconds, 0 when unknown; strings may be NULL. */
struct trust_facts {
    bool device_found;   /* a device matched (for a certificate: the one it is bound to) */
    bool by_certificate; /* the subject was a certificate */
    bool cert_current;   /* by_certificate: it is the enrollment's current identity */
    bool enrolled;       /* TokenUpdate seen, not checked out */
    const char *udid, *serial_number, *model, *product_name, *os_version;
    bool hardware_bound;  /* the identity is one vouchd's ACME server issued */
    bool identity_revoked;
    bool identity_provisional; /* a migrated device's identity, bound but not yet proven */
    bool identity_unproven;    /* a migrated device no certificate is bound to (never yet, or
                                  its provisional binding was released) */
    int64_t identity_not_after;
    const char *attestation_status; /* none, verified, failed, unsupported, expired */
    const char *freshness;          /* fresh, cached, unknown; NULL */
    int64_t verified_at, expires_at, generated_at;
    int64_t now; /* the database's clock: decide at this time */
};

enum trust_reason {
    TRUST_NOT_ENROLLED,          /* no such device, or not enrolled (checked out, no TokenUpdate) */
    TRUST_IDENTITY_UNKNOWN,      /* the certificate is bound to no device */
    TRUST_IDENTITY_SUPERSEDED,   /* bound once, but the device now uses another */
    TRUST_IDENTITY_REVOKED,
    TRUST_IDENTITY_EXPIRED,
    TRUST_IDENTITY_PROVISIONAL,  /* migrated: bound by its first request, no attestation yet */
    TRUST_IDENTITY_UNPROVEN,     /* migrated: no identity bound, or the binding was released */
    TRUST_ATTESTATION_MISSING,   /* no verdict yet */
    TRUST_ATTESTATION_FAILED,
    TRUST_ATTESTATION_EXPIRED,
    TRUST_ATTESTATION_UNSUPPORTED, /* the device cannot attest and the policy does not allow it */
    TRUST_ATTESTATION_NOT_FRESH,   /* require = verified fresh, the verdict rests on a cached one */
    TRUST_ATTESTATION_TOO_OLD,     /* older than max_attestation_age */
    TRUST_OS_TOO_OLD,
    TRUST_OS_UNKNOWN,            /* a minimum applies but the OS version or platform is unknown */
    TRUST_NOT_HARDWARE_BOUND,
    TRUST_SERIAL_DENIED,
    TRUST_SERIAL_NOT_ALLOWED,
    TRUST_REASON_COUNT
};

struct trust_decision {
    bool allow;
    enum trust_reason reasons[TRUST_REASON_COUNT]; /* every reason found, in enum order */
    size_t reason_count;
    int64_t valid_until; /* when the answer may change by time alone (an allow ending); 0: not
                            by time */
};

/* Decides; always fills out. Allow exactly when no reason is found. */
void trust_evaluate(const struct trust_policy *policy, const struct trust_facts *facts,
                    struct trust_decision *out);

const char *trust_reason_name(enum trust_reason reason); /* "not_enrolled", ... */
const char *trust_platform_name(enum trust_platform platform); /* "iOS", "iPadOS", "tvOS" */
/* The platform of an Apple product name ("iPhone16,1" -> iOS, "iPad13,4" -> iPadOS,
 * "AppleTV11,1" -> tvOS); false when none of them. */
bool trust_platform_of(const char *product_name, enum trust_platform *out);
/* Compares dotted version numbers numerically ("17.10" > "17.9"; "17.4" == "17.4.0");
 * -1, 0, 1; a version that is not digits and dots sorts below every valid one. */
int trust_version_compare(const char *a, const char *b);

#endif
