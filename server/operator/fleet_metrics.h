/*
 * fleet_metrics: how many devices stand where, for /metrics: vouch_devices{attestation=STATUS}
 * (each device once, by the status its device object shows: none, verified, failed,
 * unsupported, expired) and vouch_devices_attestation_pending (devices with a request out).
 *
 * A timer reads them from the database every FLEET_METRICS_INTERVAL_S seconds (and once right
 * after start), so a scrape never waits for a query; until the first answer the families are
 * absent. The module owns its timer and the last figures, and renders them through
 * metrics_add_renderer(). Free it after the database pool (whose last callbacks name it).
 */
#ifndef VOUCH_FLEET_METRICS_H
#define VOUCH_FLEET_METRICS_H

#define FLEET_METRICS_INTERVAL_S 15

struct vouchd;
struct fleet_metrics;

/* Starts the timer on srv's loop (srv->db must exist). NULL when out of memory. */
struct fleet_metrics *fleet_metrics_new(struct vouchd *srv);
void fleet_metrics_free(struct fleet_metrics *fm);

#endif
