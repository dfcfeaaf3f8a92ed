/*
 * sim_stats: what vouch-sim counts and the one JSON summary line it prints on stdout.
 *
 * Each worker thread owns a struct sim_stats and nobody else writes it; the main thread merges
 * them after joining the workers, so the counters need no lock. Request latencies are kept in
 * 50 µs buckets (fine enough for p50/p99 of round trips around a millisecond).
 */
#ifndef VOUCH_SIM_STATS_H
#define VOUCH_SIM_STATS_H

#include <stddef.h>
#include <stdio.h>

#include "sim_device.h"
#include "sim_options.h"

#define SIM_STATS_MAX_TYPES 64
/* Bucket b holds the requests that took [b, b + 1) * SIM_STATS_LATENCY_STEP_US, the last one
 * everything slower. */
#define SIM_STATS_LATENCY_STEP_US 50
#define SIM_STATS_LATENCY_BUCKETS 4000 /* up to 200 ms in 50 µs steps */

/* What devices did with attestation requests (DevicePropertiesAttestation queries). */
enum sim_stats_attest {
    SIM_STATS_ATTEST_GENERATED,   /* a new attestation */
    SIM_STATS_ATTEST_CACHED,      /* the cached one (7-day rule) */
    SIM_STATS_ATTEST_TAMPERED,    /* --attest-tamper / --attest-as-device */
    SIM_STATS_ATTEST_UNSUPPORTED, /* a model that cannot attest answered without */
    SIM_STATS_ATTEST_BAD_NONCE,   /* CommandFormatError for an unusable DeviceAttestationNonce */
    SIM_STATS_ATTEST_N
};

/* What devices enrolling with --identity acme got from vouchd's ACME server. */
struct sim_stats_acme {
    unsigned long requests;          /* every ACME request, /mdm/enroll included */
    unsigned long certificates;      /* identities issued and downloaded */
    unsigned long refused_reused_id; /* --acme-reuse-client-id devices refused at newOrder */
    unsigned long refused_csr_key;   /* --acme-wrong-csr-key devices refused at finalize */
    unsigned long not_refused;       /* misbehaving devices vouchd let through (failures) */
    unsigned long local_identities;  /* models that cannot attest kept DIR's identity */
};

struct sim_stats_type {
    char name[SIM_REQUEST_TYPE_MAX];
    unsigned long count;
};

/* One worker's counters; merged into a total after the phase. */
struct sim_stats {
    unsigned long latency[SIM_STATS_LATENCY_BUCKETS];
    unsigned long requests;
    unsigned long new_connections;
    unsigned long http_errors;
    unsigned long transport_errors;
    unsigned long protocol_errors;
    unsigned long local_errors;
    unsigned long enrolled;
    unsigned long checked_out;
    unsigned long sessions;
    unsigned long failed_devices;
    unsigned long expected_hits;
    unsigned long answers[SIM_ANSWER_COUNT];
    unsigned long attest[SIM_STATS_ATTEST_N];
    struct sim_stats_acme acme;
    struct sim_stats_type types[SIM_STATS_MAX_TYPES];
    size_t ntypes;
    unsigned long other_types;
    unsigned long status[600];
};

/* What serve made of the push log. */
struct sim_stats_serve {
    unsigned long pushes_seen;      /* non-empty lines read */
    unsigned long pushes_unknown;   /* well-formed, but no device of ours has the token */
    unsigned long pushes_bad_magic; /* ours, with another PushMagic: ignored, a protocol error */
    unsigned long pushes_malformed; /* not "<token> <magic>" */
    unsigned long pushes_handled;   /* ours (bad magic included): what --expect-pushes counts */
    unsigned long pushes_coalesced; /* ours, folded into a session already queued */
    unsigned long sessions_dropped; /* queued when serve stopped early */
    size_t devices_with_tokens;
    const char *stopped_by;
};

/* The summary's name of an attestation count ("generated", "cached", ...). */
const char *sim_stats_attest_name(enum sim_stats_attest which);

/* Counts count commands of RequestType type (past SIM_STATS_MAX_TYPES types: "(other)"). */
void sim_stats_count_type(struct sim_stats *s, const char *type, unsigned long count);

/* Counts one request's round trip of us microseconds. */
void sim_stats_add_latency(struct sim_stats *s, long long us);

void sim_stats_merge(struct sim_stats *into, const struct sim_stats *from);

/* Writes s as a JSON string (quotes, backslashes and control characters escaped). */
void sim_stats_json_string(FILE *f, const char *s);

/* The process's CPU seconds so far (user + system, every thread). */
double sim_stats_cpu_seconds(void);

/* Prints the JSON summary line on stdout (s's command types get sorted). serve: NULL but for
 * serve. prepare and elapsed are seconds since the start; prepare_cpu the CPU seconds
 * (sim_stats_cpu_seconds()) when the first request could go. */
void sim_stats_print_summary(const struct sim_options *opt, size_t ndevices, unsigned long created,
                             struct sim_stats *s, const struct sim_stats_serve *serve,
                             double prepare, double elapsed, double prepare_cpu);

#endif
