/*
 * push: wakes devices up. Whoever queues commands asks push_devices() to push the devices
 * concerned; the service looks up their tokens, sends one APNs push per device however many
 * commands or callers asked (a device with a push in flight is not pushed twice), records every
 * answer in the database in batches, stops pushing dead tokens (410), and every 30 seconds (first
 * 2 seconds after start) pushes again the devices whose push failed transiently and that still
 * have commands waiting, or whose commands were queued over a minute ago and never pushed.
 *
 * Owns the APNs client and the table of pushes in flight. Runs on the event loop.
 */
#ifndef VOUCH_PUSH_H
#define VOUCH_PUSH_H

#include <stdbool.h>
#include <stddef.h>

struct apns_client;
struct evbuffer;
struct vouchd;
struct push_service;

/* What happened to one device's push: result is "delivered", "unregistered", "rejected",
 * "forbidden", "transient", "no_token" (not enrolled, no token, or the token is dead),
 * "no_certificate" (its enrollment's topic is not the push certificate's: a migrated device,
 * not sent) or "unavailable" (the database was away); detail is the apns-id or APNs' reason. */
struct push_report {
    const char *udid;
    const char *result;
    const char *detail;
};

typedef void push_batch_fn(void *arg, const struct push_report *reports, size_t count);

/* Takes ownership of apns (set0). */
struct push_service *push_service_new(struct vouchd *srv, struct apns_client *apns);
/* At shutdown, before the database pool is freed (it fails the queries still out, and their
 * callbacks name the service): from now on their answers are dropped, nobody is told. */
void push_service_stop(struct push_service *ps);
/* After the database pool: pushes still waiting are dropped, their callers not told. */
void push_service_free(struct push_service *ps);

/* Pushes udids[0..count) (copied). done (may be NULL) runs once with a report per udid, in
 * order, when every push has its answer. */
void push_devices(struct push_service *ps, const char *const *udids, size_t count,
                  push_batch_fn *done, void *arg);

struct apns_client *push_service_get0_apns(struct push_service *ps);

/* True after APNs refused the push certificate (403), until a push is delivered again. */
bool push_service_certificate_refused(const struct push_service *ps);

/* Prometheus lines for the push figures. */
void push_service_render_metrics(const struct push_service *ps, struct evbuffer *out);

#endif
