/*
 * webhook: delivers the outbox (the events table) to the receivers in webhook_url, each with
 * the topics it takes (its own after '#', else webhook_topics: config.h, struct
 * config_receiver; stored at start by migrate_store_settings()).
 *
 * Events are written by the database functions in the transaction of the change that causes
 * them (vouch_emit), one delivery per receiver that takes the topic. This dispatcher takes due
 * deliveries in batches (each leased: another instance sends it again only if this one has not
 * answered when the lease ends), POSTs each body with X-Hmac-Signature = base64(HMAC-SHA256(body,
 * webhook_secret)) through libcurl's multi interface on the event loop, and records the answers
 * in batches: 2xx is delivered; anything else, a timeout or a connection error is retried with
 * jittered exponential backoff until the event is webhook_max_age old, then it is dead. It wakes
 * on NOTIFY vouch_events and looks every few seconds for retries that fell due.
 *
 * At least once: a receiver may see an event twice (after a crash or a lost answer) and drops
 * duplicates by event_id. Owned by main; runs on the event loop.
 */
#ifndef VOUCH_WEBHOOK_H
#define VOUCH_WEBHOOK_H

struct evbuffer;
struct vouchd;
struct webhook;

/* Starts delivering to the receivers stored at start (migrate_store_settings: none when
 * webhook_url is unset; the last instance to start wins). */
struct webhook *webhook_new(struct vouchd *srv);
/* Call after the database pool is gone (its callbacks may still name the dispatcher). */
void webhook_free(struct webhook *wh);

void webhook_render_metrics(const struct webhook *wh, struct evbuffer *out);

#endif
