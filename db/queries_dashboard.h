/*
 * queries_dashboard: what the dashboard reads (server/operator/fleet_api.c): the overview of the
 * fleet and a searchable, sortable page of device objects, each one JSON text made by the
 * database (db/functions/97_dashboard.sql), counted there so that no answer grows with the
 * fleet beyond one page. The caller owns nothing after a call; the answer is one text value
 * (db_decode_text()).
 */
#ifndef VOUCH_QUERIES_DASHBOARD_H
#define VOUCH_QUERIES_DASHBOARD_H

#include <stdbool.h>
#include <time.h>

#include "queries.h"

/* GET /v1/fleet (vouch_fleet_summary()): apns is "ok", "degraded" or "off"; certificate_not_after
 * is the push certificate's notAfter, or 0 for none; os_top is how many OS versions are named
 * before the rest is "other". */
void db_fleet_summary(struct db_pool *pool, const char *apns, time_t certificate_not_after,
                      unsigned os_top, db_result_fn *cb, void *arg);

/* One page of GET /v1/fleet/devices (vouch_fleet_devices()). q and attestation may be NULL (no
 * filter); sort is one of the keys the function knows, checked by the caller. */
struct db_fleet_page {
    const char *q;
    const char *attestation;
    const char *sort;
    bool descending;
    unsigned offset;
    unsigned limit;
};
void db_fleet_devices(struct db_pool *pool, const struct db_fleet_page *page, db_result_fn *cb,
                      void *arg);

#endif
