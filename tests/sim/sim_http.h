/*
 * sim_http: one worker's HTTP client, a libcurl easy handle reused for all of the worker's
 * devices so that requests ride on kept-alive connections, as a fleet behind a NAT would.
 *
 * sim_http_global_init() runs once in the main thread before any worker starts. A struct
 * sim_http belongs to one thread. Response bodies are collected in a buffer with a hard maximum
 * set at creation; a bigger body fails the request instead of growing without bound.
 */
#ifndef VOUCH_SIM_HTTP_H
#define VOUCH_SIM_HTTP_H

#include <stdbool.h>
#include <stddef.h>

enum sim_http_version {
    SIM_HTTP_DEFAULT, /* libcurl's choice: HTTP/1.1, or HTTP/2 when TLS ALPN offers it */
    SIM_HTTP_1_1,
    SIM_HTTP_2,                /* HTTP/2 over TLS, HTTP/1.1 upgrade attempt on cleartext */
    SIM_HTTP_2_PRIOR_KNOWLEDGE /* HTTP/2 straight away, also on cleartext (h2c) */
};

struct sim_http_options {
    long timeout_seconds;
    const char *cacert; /* CA bundle for https, NULL = the system's */
    bool insecure;      /* skip TLS peer verification */
    enum sim_http_version version;
    size_t max_body;
};

#define SIM_HTTP_NONCE_MAX 128
#define SIM_HTTP_LOCATION_MAX 1024

struct sim_http_response {
    long status;
    const char *body; /* NUL-terminated, owned by the client, valid until its next request */
    size_t body_len;
    char content_type[128];
    long new_connections; /* connections this request had to open (0 = reused) */
    /* The ACME headers (RFC 8555 §6.5, §7.3): empty when absent or longer than the field. */
    char replay_nonce[SIM_HTTP_NONCE_MAX];
    char location[SIM_HTTP_LOCATION_MAX];
};

struct sim_http;

bool sim_http_global_init(char *err, size_t errlen) __attribute__((warn_unused_result));
void sim_http_global_cleanup(void);

struct sim_http *sim_http_new(const struct sim_http_options *options, char *err, size_t errlen);
void sim_http_free(struct sim_http *http);

/* Sends method ("GET", "HEAD", "POST" or "PUT"; body and len only for the last two) to url with
 * the given complete header lines ("Name: value"). True when an HTTP response arrived, whatever
 * its status; false (reason in err) on a transport failure. */
bool sim_http_request(struct sim_http *http, const char *method, const char *url,
                      const char *const *headers, size_t nheaders, const char *body, size_t len,
                      struct sim_http_response *resp, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* sim_http_request() with "PUT". */
bool sim_http_put(struct sim_http *http, const char *url, const char *const *headers,
                  size_t nheaders, const char *body, size_t len, struct sim_http_response *resp,
                  char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
