/*
 * trust: the trust API (docs/trust.md), how other services ask Vouch whether a device may come
 * in, now:
 *   POST /v1/trust/{policy}        {"certificate": PEM} | {"certificate_sha256": hex} |
 *                                  {"udid": U} | {"serial_number": S}: the decision as JSON
 *   GET  /v1/trust/{policy}/nginx  for nginx auth_request: the client certificate nginx passes
 *                                  (Vouch-Client-Cert: $ssl_client_escaped_cert); 204 allow /
 *                                  403 deny, the decision in Vouch-Decision, Vouch-Reasons,
 *                                  Vouch-Device-Serial; Cache-Control bounded by valid_until
 * Callers need a token of scope admin or trust (server/operator/tokens.h). The facts come from
 * one indexed query, the policy from memory (server/trust/policy.h); a denial is a
 * trust.denied event (at most one per device and policy every 10 minutes).
 *
 * The struct trust (owned by main.c through struct vouchd) holds the policies; SIGHUP reloads
 * them from the configuration file, keeping the old ones when the new ones do not parse.
 */
#ifndef VOUCH_TRUST_H
#define VOUCH_TRUST_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct trust;
struct vouchd;

/* The policies of cfg (and their serial lists); NULL with "line N: key: why" in err. */
struct trust *trust_new(const struct config *cfg, char *err, size_t err_size);
void trust_free(struct trust *trust);

/* Rereads the policies from the configuration file at path; on any error logs it and keeps the
 * current ones. */
void trust_reload(struct trust *trust, const char *path);

/* Registers /v1/trust/ with the HTTP front (http_route). */
void trust_register_routes(void);

#endif
