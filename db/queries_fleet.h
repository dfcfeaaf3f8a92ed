/*
 * queries_fleet: figures about the whole fleet that /metrics shows, read by a timer
 * (server/operator/fleet_metrics.c), never during a scrape.
 */
#ifndef VOUCH_QUERIES_FLEET_H
#define VOUCH_QUERIES_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "queries.h"

/* The attestation statuses of the device object (docs/api.md), in the order of the counts. */
#define DB_ATTESTATION_STATUSES 5
extern const char *const db_attestation_statuses[DB_ATTESTATION_STATUSES];

struct db_attestation_counts {
    int64_t by_status[DB_ATTESTATION_STATUSES]; /* each device once */
    int64_t pending;                            /* devices with an attestation request out */
};

/* Devices by attestation status (vouch_devices_by_attestation()). */
void db_devices_by_attestation(struct db_pool *pool, db_result_fn *cb, void *arg);
/* False for an answer of another shape or with a status not in db_attestation_statuses. */
bool db_decode_attestation_counts(const PGresult *res, struct db_attestation_counts *out)
    __attribute__((warn_unused_result));

#endif
