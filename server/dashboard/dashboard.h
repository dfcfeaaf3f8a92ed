/*
 * dashboard: the operator's page, GET /ui/ (docs/api.md, "Dashboard"): static HTML, CSS and
 * JavaScript built into vouchd (assets/, dashboard_assets.h) that read the admin API with a
 * token the operator pastes; the files themselves need no token.
 *
 *   GET /ui          308 to /ui/
 *   GET /ui/         index.html
 *   GET /ui/{asset}  one file of assets/, its Content-Type by its extension; 404 for any other
 *
 * Every answer under /ui carries a strict Content-Security-Policy (no inline script or style,
 * nothing from elsewhere), X-Frame-Options: DENY, nosniff, no referrer and Cache-Control:
 * no-cache (a new vouchd's page is fetched again). With `ui = off` every path is 404. Nothing is
 * owned beyond a request's reply.
 */
#ifndef VOUCH_DASHBOARD_H
#define VOUCH_DASHBOARD_H

/* Registers /ui and /ui/ with the HTTP front (http_route). */
void dashboard_register_routes(void);

#endif
