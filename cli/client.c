#include "client.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "vouch_version.h"

/* A CLI may wait on a slow server, but never forever. */
#define CLIENT_CONNECT_TIMEOUT_S 10L
#define CLIENT_TIMEOUT_S 300L

struct client {
    CURL *curl;
    char *base_url;
    char *auth_header; /* "Authorization: Bearer ..." or NULL */
    char *ca_file;     /* CURLOPT_CAINFO, or NULL: the system's CAs */
    char curl_error[CURL_ERROR_SIZE];
    char error[CURL_ERROR_SIZE + 512];
};

/* The response body being received, bounded by max. */
struct client_body {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
    bool too_large;
    bool no_memory;
};

static char *client_strdup(const char *s)
{
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (copy != NULL)
        memcpy(copy, s, n + 1);
    return copy;
}

struct client *client_new(const char *base_url, const char *token)
{
    struct client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->base_url = client_strdup(base_url);
    if (c->base_url == NULL)
        goto fail;
    size_t n = strlen(c->base_url);
    while (n > 0 && c->base_url[n - 1] == '/')
        c->base_url[--n] = '\0';
    if (token != NULL && token[0] != '\0') {
        static const char prefix[] = "Authorization: Bearer ";
        size_t len = sizeof(prefix) + strlen(token);
        c->auth_header = malloc(len);
        if (c->auth_header == NULL)
            goto fail;
        int m = snprintf(c->auth_header, len, "%s%s", prefix, token);
        if (m < 0 || (size_t)m >= len)
            goto fail;
    }
    c->curl = curl_easy_init();
    if (c->curl == NULL)
        goto fail;
    return c;
fail:
    client_free(c);
    return NULL;
}

void client_free(struct client *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    free(c->base_url);
    free(c->ca_file);
    if (c->auth_header != NULL) {
        /* The token is a secret: do not leave it lying in freed memory. */
        explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
    }
    free(c);
}

bool client_set_ca_file(struct client *c, const char *path)
{
    free(c->ca_file);
    c->ca_file = NULL;
    if (path == NULL)
        return true;
    c->ca_file = client_strdup(path);
    return c->ca_file != NULL;
}

const char *client_error(const struct client *c)
{
    return c->error;
}

const char *client_base_url(const struct client *c)
{
    return c->base_url;
}

char *client_escape(struct client *c, const char *s)
{
    size_t n = strlen(s);
    if (n > INT_MAX)
        return NULL;
    char *e = curl_easy_escape(c->curl, s, (int)n);
    if (e == NULL)
        return NULL;
    char *copy = client_strdup(e);
    curl_free(e);
    return copy;
}

static size_t client_on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct client_body *b = userdata;
    size_t n = size * nmemb; /* curl documents size as always 1 */

    if (n > b->max - b->len) {
        b->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 16384;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        if (ncap > b->max + 1)
            ncap = b->max + 1;
        char *nd = realloc(b->data, ncap);
        if (nd == NULL) {
            b->no_memory = true;
            return 0;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Leaves "<what> <base url>: <detail>" in c->error. */
static void client_set_error(struct client *c, const char *what, const char *detail)
{
    int m = snprintf(c->error, sizeof(c->error), "%s %s: %s", what, c->base_url, detail);
    if (m < 0)
        c->error[0] = '\0';
}

/* Each curl_easy_setopt() is checked: an option the library refuses is a failed request. */
#define CLIENT_SETOPT(opt, val)                                                                    \
    do {                                                                                           \
        rc = curl_easy_setopt(c->curl, opt, val);                                                  \
        if (rc != CURLE_OK)                                                                        \
            goto out;                                                                              \
    } while (0)

bool client_request(struct client *c, const char *method, const char *path, const char *body,
                    size_t body_len, const char *content_type, struct client_response *resp)
{
    struct curl_slist *headers = NULL;
    struct client_body rb = {.max = CLIENT_MAX_RESPONSE};
    char *url = NULL;
    char content_type_header[256];
    bool ok = false;
    CURLcode rc = CURLE_OK;

    memset(resp, 0, sizeof(*resp));
    c->error[0] = '\0';
    c->curl_error[0] = '\0';

    size_t url_len = strlen(c->base_url) + strlen(path) + 1;
    url = malloc(url_len);
    if (url == NULL) {
        rc = CURLE_OUT_OF_MEMORY;
        goto out;
    }
    int m = snprintf(url, url_len, "%s%s", c->base_url, path);
    if (m < 0 || (size_t)m >= url_len) {
        rc = CURLE_OUT_OF_MEMORY;
        goto out;
    }

    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (h == NULL) {
        rc = CURLE_OUT_OF_MEMORY;
        goto out;
    }
    headers = h;
    /* An empty Expect: stops curl waiting for "100 Continue" before sending a body. */
    const char *extra[3] = {"Expect:", c->auth_header, NULL};
    if (content_type != NULL) {
        m = snprintf(content_type_header, sizeof(content_type_header), "Content-Type: %s",
                     content_type);
        if (m < 0 || (size_t)m >= sizeof(content_type_header)) {
            rc = CURLE_BAD_FUNCTION_ARGUMENT;
            goto out;
        }
        extra[2] = content_type_header;
    }
    for (size_t i = 0; i < 3; i++) {
        if (extra[i] == NULL)
            continue;
        h = curl_slist_append(headers, extra[i]);
        if (h == NULL) {
            rc = CURLE_OUT_OF_MEMORY;
            goto out;
        }
        headers = h;
    }

    /* Reset per request, keeping the live connection, so no option leaks into the next one. */
    curl_easy_reset(c->curl);
    CLIENT_SETOPT(CURLOPT_ERRORBUFFER, c->curl_error);
    CLIENT_SETOPT(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    CLIENT_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    CLIENT_SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    CLIENT_SETOPT(CURLOPT_NOSIGNAL, 1L);
    CLIENT_SETOPT(CURLOPT_CONNECTTIMEOUT, CLIENT_CONNECT_TIMEOUT_S);
    CLIENT_SETOPT(CURLOPT_TIMEOUT, CLIENT_TIMEOUT_S);
    CLIENT_SETOPT(CURLOPT_USERAGENT, "vouchctl/" VOUCH_VERSION);
    CLIENT_SETOPT(CURLOPT_HTTPHEADER, headers);
    CLIENT_SETOPT(CURLOPT_WRITEFUNCTION, client_on_data);
    CLIENT_SETOPT(CURLOPT_WRITEDATA, &rb);
    CLIENT_SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CLIENT_MAX_RESPONSE);
    /* Redirects are not followed: the admin API never sends one, and the token stays put. */
    CLIENT_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    if (c->ca_file != NULL)
        CLIENT_SETOPT(CURLOPT_CAINFO, c->ca_file);
    if (strcmp(method, "GET") != 0)
        CLIENT_SETOPT(CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        CLIENT_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        CLIENT_SETOPT(CURLOPT_POSTFIELDS, body);
    }

    rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK)
        goto out;
    rc = curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
    if (rc != CURLE_OK)
        goto out;
    if (rb.data == NULL) {
        rb.data = calloc(1, 1);
        if (rb.data == NULL) {
            rc = CURLE_OUT_OF_MEMORY;
            goto out;
        }
    }
    resp->body = rb.data;
    resp->len = rb.len;
    rb.data = NULL;
    ok = true;
out:
    if (!ok) {
        const char *detail = c->curl_error[0] ? c->curl_error : curl_easy_strerror(rc);
        if (rb.too_large || rc == CURLE_FILESIZE_EXCEEDED)
            client_set_error(c, "response from", "larger than 64 MiB");
        else if (rb.no_memory || rc == CURLE_OUT_OF_MEMORY)
            client_set_error(c, "request to", "out of memory");
        else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                 rc == CURLE_COULDNT_RESOLVE_PROXY)
            client_set_error(c, "cannot reach", detail);
        else
            client_set_error(c, "request to", detail);
    }
    free(rb.data);
    free(url);
    curl_slist_free_all(headers);
    return ok;
}

void client_response_free(struct client_response *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}
