/*
 * sim_workers: the threads that play the devices, and the subcommands that run them phase by
 * phase over the fleet (enroll, connect, run = enroll then connect, checkout).
 *
 * The main thread prepares the fleet and prints progress; K worker threads, each owning one
 * kept-alive libcurl handle (sim_http.h), a key loader, its own copies of the stand-in Apple
 * hierarchies and its own statistics, take devices from a shared atomic counter and play them
 * (sim_session.h). Statistics are merged after the workers are joined, so the only shared
 * mutable state during a phase is a few atomic counters and the per-device state bytes (each
 * written by the one worker that holds the device). serve (sim_serve.h) runs the same workers
 * on a queue of pushed devices instead.
 *
 * Ownership: sim_workers_new() hands over an array freed with sim_workers_free(); a struct
 * sim_run and what it points to belong to the subcommand that runs it.
 */
#ifndef VOUCH_SIM_WORKERS_H
#define VOUCH_SIM_WORKERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "fake_apple.h"
#include "sim_attest.h"
#include "sim_http.h"
#include "sim_options.h"
#include "sim_pki.h"
#include "sim_stats.h"
#include "sim_store.h"

/* Seconds between two progress lines on stderr. */
#define SIM_PROGRESS_INTERVAL 2.0

enum sim_phase { SIM_PHASE_ENROLL, SIM_PHASE_CONNECT, SIM_PHASE_CHECKOUT };

/* Per-device state across the phases of one invocation (struct sim_run's state bytes). */
#define SIM_DEV_FAILED 0x01
#define SIM_DEV_STOPPED 0x02 /* got the --expect-status answer; its flow ended there */

struct sim_run {
    const struct sim_options *opt;
    const struct sim_fleet *fleet;
    struct sim_attest_options attest;
    size_t ndevices;
    enum sim_phase phase;
    bool last_phase;
    bool serving; /* serve: a device runs a session per push, failed before or not */
    unsigned char *state;
    /* enroll: the token each device sent in a TokenUpdate the server accepted (present false
     * otherwise), written by the worker holding the device, saved after the phase. */
    struct sim_push_token *tokens;
    /* --identity acme: the identity (certificate PEM, then key PEM) each device got from vouchd's
     * ACME server in this invocation (NULL otherwise), written by the worker holding the device,
     * saved in DIR/devices.pem after the enroll phase and used by the connect phase of run. */
    char **acme_pems;
    size_t *acme_pem_lens;
    struct sim_acme_pool *acme_pool; /* the ClientIdentifiers used, for the reusing devices */
    atomic_size_t next;
    atomic_size_t done;
    atomic_ulong requests;
    atomic_ulong failures;
    atomic_uint workers_left;
};

struct sim_serve_pool;
struct sim_acme_pool;

struct sim_worker {
    struct sim_run *run;
    struct sim_serve_pool *pool; /* serve only */
    pthread_t thread;
    struct sim_http *http;
    struct sim_pki_loader *loader;
    struct fake_apple *apple;       /* this worker's copy of DIR's stand-in Apple hierarchy */
    struct fake_apple *apple_other; /* --attest-tamper other-root: the second one */
    struct sim_stats stats;
};

/* The monotonic clock, in seconds. */
double sim_workers_clock(void);

/* Sleeps ms milliseconds, signals notwithstanding. */
void sim_workers_sleep_ms(long ms);

/* Waits until *workers_left is 0, printing "vouch-sim: LABEL done/total ..." on stderr every
 * SIM_PROGRESS_INTERVAL seconds unless quiet (with the request rate when requests is not NULL). */
void sim_workers_wait(const char *label, atomic_uint *workers_left, atomic_size_t *done,
                      size_t total, atomic_ulong *requests, atomic_ulong *failures, bool quiet);

/* Sets run->ndevices from run->opt and run->fleet (the first --devices, or all); false after a
 * message when --swap-identities has fewer than 2. */
bool sim_workers_devices(struct sim_run *run) __attribute__((warn_unused_result));

/* Starts libcurl (sim_http_global_init(); from then on *http_ready is true and the caller runs
 * sim_http_global_cleanup() at its end), then makes run's *nworkers workers: --concurrency, at
 * most one per device, each with its own HTTP client, key loader and copies of the Apple
 * hierarchies (either may be NULL). NULL after a message. */
struct sim_worker *sim_workers_new(struct sim_run *run, const struct fake_apple *apple,
                                   const struct fake_apple *apple_other, unsigned *nworkers,
                                   bool *http_ready);
void sim_workers_free(struct sim_worker *workers, unsigned n);

/* Runs run->phase over all devices with the given workers; false if no thread could start. */
bool sim_workers_run_phase(struct sim_run *run, struct sim_worker *workers, unsigned nworkers)
    __attribute__((warn_unused_result));

/* enroll, connect, run and checkout: prints the summary; returns the exit status. */
int sim_workers_command(const struct sim_options *opt);

#endif
