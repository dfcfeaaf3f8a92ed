/*
 * scheduler: keeps the fleet's attestations fresh by itself, on any number of instances.
 *
 * The policy (when each device is next due, and why) lives in the database, in
 * vouch_plan_attestation, so every instance plans alike and every decision is visible in the
 * device object. This module decides only when to tick. A tick builds up to scheduler_batch
 * attestation requests (DeviceInformation with a fresh 32-byte nonce each) and one light
 * DeviceInformation query, and hands them to vouch_scheduler_tick, which in one transaction
 * claims the due devices (row locks, SKIP LOCKED: never a device another instance holds),
 * within the fleet-wide rate limit, and queues their commands; the devices claimed are then
 * pushed. A tick that dies rolls back; a device whose commands were committed but whose push
 * was lost is pushed by the push service's sweep.
 *
 * Ticks happen at start, when the database notifies vouch_scheduler (an instance made
 * something due now), when the next planned work falls due (by the database's clock), and at
 * least every minute. Owned by main; runs on the event loop.
 */
#ifndef VOUCH_SCHEDULER_H
#define VOUCH_SCHEDULER_H

#include <stdint.h>

struct evbuffer;
struct vouchd;
struct scheduler;

/* Starts ticking (the policy is stored at start, see migrate_store_settings). NULL when
 * scheduler_batch is 0. */
struct scheduler *scheduler_new(struct vouchd *srv);
/* Call after the database pool is gone (its callbacks may still name the scheduler). */
void scheduler_free(struct scheduler *s);

/* Prometheus lines for the scheduler's figures. */
void scheduler_render_metrics(const struct scheduler *s, struct evbuffer *out);

#endif
