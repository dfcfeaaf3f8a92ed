/*
 * standin_control: the control API of apns-standin, plain HTTP/1.1 on a loopback address.
 *
 *   POST /script[?replace=1]   add rules (text body, standin_script.h); replace=1 drops the
 *                              current rules first (an empty body then just clears). 200 "N
 *                              rules\n", or 400 "line N: why\n" and nothing changes.
 *   GET  /script               the remaining rules, one a line, as POST /script takes them
 *   GET  /pushes[?since=S][&limit=N][&wait=MS]
 *                              recorded requests as JSON lines (standin_pushlog.h), those with
 *                              seq > S, at most N; with wait, holds the request up to MS
 *                              milliseconds (at most 60000) until there is one. Header
 *                              X-Next-Since: the S to pass next time.
 *   GET  /stats                counters (standin.h) as one JSON object
 *   POST /reset                drops rules, records and counters (not the sequence numbers)
 *   POST /goaway               GOAWAY on every connection now; 200 "N connections\n"
 *   GET  /healthz              200 "ok\n"
 *
 * The listener refuses to bind anything but a loopback address, and each request is checked to
 * come from loopback too. Bodies are limited to 16 MiB. The control API borrows the struct standin
 * and the h2 front; it owns its evhttp and the requests it holds for long polls.
 */
#ifndef VOUCH_STANDIN_CONTROL_H
#define VOUCH_STANDIN_CONTROL_H

#include <stddef.h>

struct standin;
struct standin_h2;
struct standin_control;

/* NULL with a reason in err when listen is not a loopback HOST:PORT or cannot be bound. */
struct standin_control *standin_control_new(struct standin *ctx, struct standin_h2 *h2,
                                            const char *listen, char *err, size_t err_size);

/* Answers held long polls with what there is, then frees the control API. */
void standin_control_free(struct standin_control *ctl);

/* The address actually bound, e.g. "127.0.0.1:43124". */
const char *standin_control_get0_address(const struct standin_control *ctl);

#endif
