/*
 * sim_h1: a bare HTTP/1.1 client for the devices' PUTs over cleartext, one kept-alive connection.
 *
 * libcurl spends more of the simulator's CPU around a small PUT than the request itself costs
 * (its option setting, header lists, connection checks, a poll() before every read); a device
 * sends nothing libcurl is needed for on http:// URLs: one request line, its headers and a body
 * in one sendmsg(), the answer read with recv(). sim_http uses it for PUT to http:// URLs at
 * HTTP/1.1 (the default) and keeps libcurl for everything else (https, HTTP/2, ACME's GET, HEAD
 * and POST).
 *
 * Answers may carry Content-Length or be chunked, or end with the connection; 1xx answers are
 * skipped. A request on a kept-alive connection the server has closed meanwhile is sent again
 * once on a new one, as libcurl does. Bounded: headers up to SIM_H1_HEAD_MAX, a body up to the
 * max_body given at creation. The timeout bounds each connect, send and read.
 *
 * A client belongs to one thread.
 */
#ifndef VOUCH_SIM_H1_H
#define VOUCH_SIM_H1_H

#include <stdbool.h>
#include <stddef.h>

#include "sim_http.h"

#define SIM_H1_HEAD_MAX (64 * 1024)

struct sim_h1;

struct sim_h1 *sim_h1_new(long timeout_seconds, size_t max_body);
void sim_h1_free(struct sim_h1 *h1);

/* Whether sim_h1_put() handles url: "http://host[:port]/path..." without user information. */
bool sim_h1_handles(const char *url);

/* PUTs body[0..len) to url (sim_h1_handles()) with the given header lines ("Name: value"; a
 * "Name:" without a value is left out, as libcurl does). True when an HTTP answer arrived, its
 * status, headers and body in resp (the body NUL-terminated, valid until the next request);
 * false with a reason in err on a transport failure or a malformed answer. */
bool sim_h1_put(struct sim_h1 *h1, const char *url, const char *const *headers, size_t nheaders,
                const char *body, size_t len, struct sim_http_response *resp, char *err,
                size_t errlen) __attribute__((warn_unused_result));

#endif
