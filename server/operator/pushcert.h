/*
 * pushcert: the admin API's push certificate (NanoMDM's /v1/pushcert, docs/api.md), behind
 * admin.c's authentication, scope check and audit:
 *   GET /v1/pushcert[?topic=T]  {"topic", "not_after"} of the certificate vouchd pushes with
 *   PUT /v1/pushcert            body: PEM certificate then PEM private key. Checked (a matching
 *                               pair, an MDM push topic, not expired: apns_cert.h), written over
 *                               the files apns_cert / apns_key name, and taken by the running
 *                               push service as SIGHUP does; answers like GET.
 * Everything happens within the request, on the loop: the files are a few kilobytes, written
 * once a year (apns_cert_store.h).
 */
#ifndef VOUCH_PUSHCERT_H
#define VOUCH_PUSHCERT_H

struct evhttp_request;
struct token_caller;
struct vouchd;

/* Answers a request for /v1/pushcert (any method) from an authorized caller. */
void pushcert_handle(struct vouchd *srv, struct evhttp_request *req,
                     const struct token_caller *caller);

#endif
