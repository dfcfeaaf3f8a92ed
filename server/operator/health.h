/*
 * health: what anyone may ask without a token: GET /healthz (can this instance serve devices?),
 * GET /metrics (Prometheus text: the counters of metrics.c, the database pool, pushes, the
 * scheduler, web-hooks and the modules' own families) and /version (as NanoMDM's, any method).
 */
#ifndef VOUCH_HEALTH_H
#define VOUCH_HEALTH_H

/* Registers /healthz, /metrics and /version with the HTTP front (http_route). */
void health_register_routes(void);

#endif
