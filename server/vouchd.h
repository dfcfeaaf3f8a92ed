/*
 * vouchd: the daemon's shared state, one instance owned by main.c for the life of the process.
 *
 * Modules get a pointer to it and use what they need; only main.c creates and frees what it
 * points to. Everything runs on the one event-loop thread.
 */
#ifndef VOUCH_VOUCHD_H
#define VOUCH_VOUCHD_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "queries.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct identity_verifier;
struct attest_verifier;
struct push_service;
struct answer_batch;
struct acme;
struct tokens;
struct trust;

struct vouchd {
    const struct config *cfg;
    const char *config_path; /* where cfg came from (SIGHUP rereads the policies) */
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    struct db_pool *db;
    struct answer_batch *answers;   /* devices' answers, several a statement */
    struct identity_verifier *identity;
    struct attest_verifier *attest; /* trusts attestation_roots */
    struct push_service *push;      /* NULL when no apns_cert is configured */
    struct scheduler *scheduler;    /* NULL when scheduler_batch is 0 */
    struct webhook *webhook;        /* the outbox's dispatcher */
    struct enroll *enroll;          /* GET /mdm/enroll */
    struct acme *acme;              /* /acme/: NULL without acme_ca_cert */
    struct tokens *tokens;          /* who may call /v1/ */
    struct trust *trust;            /* /v1/trust/: the policies */
    struct db_stats stats; /* refreshed by a timer for /metrics */
    bool stats_known;
    unsigned inflight; /* device and admin requests waiting for the database */
    bool stopping;
};

#endif
