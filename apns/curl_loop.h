/*
 * curl_loop: a libcurl multi handle driven by a libevent loop (curl's hiperfifo pattern): curl
 * says which sockets and which timeout to watch, libevent says when they fire, and each finished
 * transfer is handed to the owner's callback, then `after` runs once for the batch (a good place
 * to start more transfers). Used by the web-hook dispatcher (the APNs client speaks HTTP/2
 * itself, apns_conn.c).
 *
 * Owns the multi handle and its socket watches; the owner owns its easy handles and removes them
 * (curl_loop_remove) before freeing them. Callbacks run from the loop, never from inside
 * curl_loop_add.
 */
#ifndef VOUCH_CURL_LOOP_H
#define VOUCH_CURL_LOOP_H

#include <curl/curl.h>

struct event_base;
struct curl_loop;

typedef void curl_loop_done_fn(void *arg, CURL *easy, CURLcode result);
typedef void curl_loop_after_fn(void *arg);

struct curl_loop *curl_loop_new(struct event_base *base, curl_loop_done_fn *done,
                                curl_loop_after_fn *after, void *arg);
void curl_loop_free(struct curl_loop *loop);

/* The multi handle, for curl_multi_setopt. */
CURLM *curl_loop_multi(struct curl_loop *loop);
CURLMcode curl_loop_add(struct curl_loop *loop, CURL *easy);
void curl_loop_remove(struct curl_loop *loop, CURL *easy);

#endif
