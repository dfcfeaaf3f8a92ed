/*
 * sim_session: one device's exchanges with vouchd, as a worker plays it. Every request is a PUT
 * signed with the device's identity (Mdm-Signature, unless the options say otherwise); enroll
 * sends Authenticate and TokenUpdate (with --identity acme, after getting that identity from
 * vouchd's ACME server, sim_acme.h), checkout CheckOut, connect and serve Idle sessions that
 * answer each command handed back until an empty body, DevicePropertiesAttestation included.
 *
 * A failure is counted in the worker's statistics and the run's failure counter, marks the
 * device failed and prints one line on stderr (device, request, HTTP status, body excerpt); only
 * the first SIM_SESSION_SHOWN_FAILURES lines of the process are shown.
 */
#ifndef VOUCH_SIM_SESSION_H
#define VOUCH_SIM_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "fake_apple.h"
#include "sim_attest.h"
#include "sim_device.h"
#include "sim_stats.h"
#include "sim_workers.h"

/* The largest response body a device reads (and the largest command file `answer` takes). */
#define SIM_MAX_BODY (1024 * 1024)
#define SIM_SESSION_SHOWN_FAILURES 50

/* Device i plays run->phase with worker w: loads (or swaps, --swap-identities) its identity,
 * then enrolls, holds --rounds Idle sessions (one when serving) or checks out. Updates
 * run->state[i]. In a run after a failed enrollment the device does nothing. */
void sim_session_device(struct sim_worker *w, size_t i);

/* What dev does with cmd's attestation request, if any: *answer turns into CommandFormatError
 * for an unusable nonce; when the report must carry DevicePropertiesAttestation, *attached is
 * true and chain holds its items (the caller frees them with fake_chain_free()). Reads and
 * updates dev's attestation cache in dir for an honest answer. Counts what it did in counts[].
 * False with a reason in err on a local failure. */
bool sim_session_attestation(const char *dir, const struct sim_attest_options *aopt,
                             const struct fake_apple *apple, const struct fake_apple *other,
                             const struct sim_device *dev, const struct sim_command *cmd,
                             enum sim_answer *answer, struct fake_chain *chain, bool *attached,
                             unsigned long counts[SIM_STATS_ATTEST_N], char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Borrows chain's items for sim_device_report(). */
void sim_session_attest_items(struct sim_attest_items *items, const struct fake_chain *chain);

/* Counts one failure line against SIM_SESSION_SHOWN_FAILURES (for the whole process, all
 * threads): true when the caller should print it. The first one past the limit prints "further
 * failures are counted but not shown" instead. */
bool sim_session_failure_shown(void) __attribute__((warn_unused_result));

#endif
