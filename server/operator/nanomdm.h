/*
 * nanomdm: the text of NanoMDM's API answers, for the clients that speak it (docs/api.md section
 * 9): JSON indented with tabs as Go's json.MarshalIndent writes it. The answers' content is
 * admin.c's; this module only shapes and sends it.
 */
#ifndef VOUCH_NANOMDM_H
#define VOUCH_NANOMDM_H

#include <stddef.h>

#include "metrics.h"

struct evhttp_request;

/* Sends the compact JSON text[0..len) re-indented with tabs, as application/json. */
void nanomdm_reply_json(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                        const char *text, size_t len);
/* NanoMDM's answer for a request refused as a whole: {"command_error": "..."} (or push_error,
 * as key says). NanoMDM answers 500; Vouch a 4xx where the client is at fault. */
void nanomdm_reply_error(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                         const char *key, const char *message);

#endif
