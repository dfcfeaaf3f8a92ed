/*
 * fleet_api: what the dashboard reads of the whole fleet (docs/api.md, "Fleet"), behind
 * admin.c's authentication and its read scope:
 *   GET /v1/fleet           the overview: devices by verdict, failed by reason, pending,
 *                           attestation ages, OS versions, the next 7 days of planned checks,
 *                           push and web-hook health
 *   GET /v1/fleet/devices   ?q=&attestation=&sort=&order=&offset=&limit=: a page of device
 *                           objects with the total that matched
 * The database counts and pages (db/queries_dashboard.h), so an answer stays one page at any
 * fleet size. A request owns its state until the database answers.
 */
#ifndef VOUCH_FLEET_API_H
#define VOUCH_FLEET_API_H

#include <stdbool.h>

struct evhttp_request;
struct vouchd;

/* Handles path if it is one of the above (and replies); false when it is not. */
bool fleet_api_handle(struct vouchd *srv, struct evhttp_request *req, const char *path);

#endif
