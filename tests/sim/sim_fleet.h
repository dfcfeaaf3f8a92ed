/*
 * sim_fleet: what a subcommand opens in the state directory before it plays devices: the fleet
 * (created up to --devices, with identities issued by K threads, for enroll and run), DIR's
 * stand-in Apple hierarchy (created when missing), the attestation options of the run, and the
 * push tokens (saved after enroll, loaded by tokens and serve). Writers hold DIR/.lock.
 *
 * Every function prints its own one-line message ("vouch-sim: ...") on stderr when it fails.
 * Ownership: fleets are freed with sim_store_fleet_free(), hierarchies with fake_apple_free(),
 * token arrays with free().
 */
#ifndef VOUCH_SIM_FLEET_H
#define VOUCH_SIM_FLEET_H

#include <stdbool.h>
#include <stddef.h>

#include "fake_apple.h"
#include "sim_attest.h"
#include "sim_options.h"
#include "sim_store.h"

/* Creates DIR if need be and takes DIR/.lock: a descriptor for sim_store_unlock(), or -1 after a
 * message. */
int sim_fleet_lock(const struct sim_options *opt) __attribute__((warn_unused_result));

/* enroll/run: makes sure DIR holds a CA and at least opt->devices devices, then loads them;
 * *created counts the devices made now. */
bool sim_fleet_prepare(const struct sim_options *opt, struct sim_fleet *fleet,
                       unsigned long *created) __attribute__((warn_unused_result));

/* The other subcommands: loads DIR's fleet, which must hold the devices asked for. */
bool sim_fleet_open(const struct sim_options *opt, struct sim_fleet *fleet)
    __attribute__((warn_unused_result));

/* Loads DIR's stand-in Apple hierarchy, creating it (under DIR/.lock) when DIR holds none. */
struct fake_apple *sim_fleet_apple(const struct sim_options *opt, bool *created);

/* The attestation behaviour of this run; false for a bad --attest-as-device. */
bool sim_fleet_attest_options(const struct sim_options *opt, const struct sim_fleet *fleet,
                              struct sim_attest_options *aopt) __attribute__((warn_unused_result));

/* Session modes: the attestation options of the run, DIR's stand-in Apple hierarchy and, for
 * --attest-tamper other-root, a second one (what is set on failure is the caller's to free). */
bool sim_fleet_sessions_prepare(const struct sim_options *opt, const struct sim_fleet *fleet,
                                struct sim_attest_options *aopt, struct fake_apple **apple,
                                struct fake_apple **apple_other)
    __attribute__((warn_unused_result));

/* Records in DIR/tokens.tsv the tokens that devices[0..n) had accepted (under DIR/.lock). */
bool sim_fleet_tokens_save(const struct sim_options *opt, const struct sim_fleet *fleet,
                           const struct sim_push_token *tokens, size_t n)
    __attribute__((warn_unused_result));

/* Records in DIR/devices.pem the identities pems[0..n) (NULL: unchanged) that devices of fleet
 * got from vouchd's ACME server (under DIR/.lock). */
bool sim_fleet_identities_save(const struct sim_options *opt, const struct sim_fleet *fleet,
                               char *const *pems, const size_t *pem_lens, size_t n)
    __attribute__((warn_unused_result));

/* Loads the push tokens of DIR's first n devices into a new array (stamp: see
 * sim_store_tokens_load()). */
struct sim_push_token *sim_fleet_tokens_load(const struct sim_options *opt,
                                             const struct sim_fleet *fleet, size_t n,
                                             struct sim_store_stamp *stamp);

#endif
