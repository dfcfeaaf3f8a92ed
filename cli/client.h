/*
 * client: vouchctl's blocking HTTP client of the vouchd admin API (libcurl easy interface).
 *
 * A struct client owns one curl handle (so consecutive requests reuse the connection), the base
 * URL and the bearer token. Each response body is read into memory up to CLIENT_MAX_RESPONSE
 * bytes and handed to the caller, who frees it with client_response_free(). Transport failures
 * (refused connection, timeout, oversized response) leave a message in client_error(); HTTP
 * error statuses are not transport failures: the caller sees the status and the body.
 */
#ifndef VOUCH_CLI_CLIENT_H
#define VOUCH_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#define CLIENT_MAX_RESPONSE ((size_t)64 * 1024 * 1024)

struct client;

struct client_response {
    long status; /* HTTP status code */
    char *body;  /* NUL-terminated; len bytes before the NUL */
    size_t len;
};

/* A client of the server at base_url (http:// or https://, trailing slashes ignored). token may be
 * NULL or empty: requests then carry no Authorization header. NULL when out of memory or when
 * curl cannot start. Needs curl_global_init() first. */
struct client *client_new(const char *base_url, const char *token)
    __attribute__((warn_unused_result));
void client_free(struct client *c);
/* Verifies the server's TLS certificate against the CA certificates in path (PEM) instead of
 * the system's; NULL keeps the system's. False when out of memory. */
bool client_set_ca_file(struct client *c, const char *path) __attribute__((warn_unused_result));

/*
 * Sends METHOD base_url+path (path starts with '/' and is already URL-escaped) with an optional
 * body of the given Content-Type, and waits for the whole response. False on a transport failure
 * (see client_error()); true with *resp filled for any HTTP status.
 */
bool client_request(struct client *c, const char *method, const char *path, const char *body,
                    size_t body_len, const char *content_type, struct client_response *resp)
    __attribute__((warn_unused_result));
void client_response_free(struct client_response *resp);

/* Why the last request failed, e.g. "cannot reach http://127.0.0.1:8080: Connection refused". */
const char *client_error(const struct client *c);
/* The base URL as used (without trailing slashes). */
const char *client_base_url(const struct client *c);

/* s percent-encoded as one path or query component (everything but A-Z a-z 0-9 - . _ ~), in
 * memory the caller frees with free(). NULL when out of memory. */
char *client_escape(struct client *c, const char *s) __attribute__((warn_unused_result));

#endif
