/*
 * identities: the admin API's view of hardware-bound identities (docs/api.md), behind admin.c's
 * authentication:
 *   GET  /v1/certs[?udid=U&limit=N]        identity certificates vouchd's ACME server issued
 *   POST /v1/certs/{serial}/revoke         revokes one ({"reason": "..."} optional)
 *   GET  /v1/expected-devices              the serials the operator expects
 *   POST /v1/expected-devices              {"serial_numbers": [...]}: expects them, each with its
 *                                          own enrollment token and profile URL (shown once)
 * The lists are JSON made by the database; a request owns its state until the database answers.
 */
#ifndef VOUCH_IDENTITIES_H
#define VOUCH_IDENTITIES_H

#include <stdbool.h>

struct evhttp_request;
struct vouchd;

/* Handles path if it is one of the above (and replies); false when it is not. */
bool identities_handle(struct vouchd *srv, struct evhttp_request *req, const char *path);

#endif
