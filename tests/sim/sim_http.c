/*
 * sim_http: a worker's kept-alive libcurl handle with a bounded response buffer; see sim_http.h.
 */
#include "sim_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

struct sim_http {
    CURL *curl;
    char *body; /* response buffer, grows up to max_body + 1 (the NUL) */
    size_t body_len;
    size_t body_cap;
    size_t max_body;
    bool too_big;
    char curl_error[CURL_ERROR_SIZE];
    struct sim_http_response *resp; /* the response being received, for its headers */
};

bool sim_http_global_init(char *err, size_t errlen)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

    if (rc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(rc));
        return false;
    }
    return true;
}

void sim_http_global_cleanup(void)
{
    curl_global_cleanup();
}

static size_t http_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct sim_http *http = userdata;
    size_t n = size * nmemb;

    if (n > http->max_body - http->body_len) {
        http->too_big = true;
        return 0; /* makes libcurl fail the transfer with CURLE_WRITE_ERROR */
    }
    if (http->body_len + n + 1 > http->body_cap) {
        size_t cap = http->body_cap == 0 ? 4096 : http->body_cap;
        char *grown;

        while (cap < http->body_len + n + 1)
            cap *= 2;
        if (cap > http->max_body + 1)
            cap = http->max_body + 1;
        grown = realloc(http->body, cap);
        if (grown == NULL)
            return 0;
        http->body = grown;
        http->body_cap = cap;
    }
    memcpy(http->body + http->body_len, data, n);
    http->body_len += n;
    http->body[http->body_len] = '\0';
    return n;
}

/* Copies the value of header line data[0..n) into out when its name is name (case-insensitive),
 * without surrounding whitespace; a value that does not fit leaves out empty. */
static void http_header_value(const char *data, size_t n, const char *name, char *out,
                              size_t outlen)
{
    size_t name_len = strlen(name);
    const char *v;
    const char *end = data + n;

    if (n <= name_len || strncasecmp(data, name, name_len) != 0 || data[name_len] != ':')
        return;
    v = data + name_len + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    out[0] = '\0';
    if ((size_t)(end - v) < outlen) {
        memcpy(out, v, (size_t)(end - v));
        out[end - v] = '\0';
    }
}

static size_t http_header(char *data, size_t size, size_t nitems, void *userdata)
{
    struct sim_http *http = userdata;
    size_t n = size * nitems;

    if (http->resp == NULL)
        return n;
    /* A status line starts a response of its own (after a 1xx): forget what came before. */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        http->resp->replay_nonce[0] = '\0';
        http->resp->location[0] = '\0';
        return n;
    }
    http_header_value(data, n, "Replay-Nonce", http->resp->replay_nonce,
                      sizeof(http->resp->replay_nonce));
    http_header_value(data, n, "Location", http->resp->location, sizeof(http->resp->location));
    return n;
}

/* Sets one option; on failure leaves the reason in err. */
#define HTTP_SETOPT(http, opt, value, err, errlen)                                                 \
    do {                                                                                           \
        CURLcode setopt_rc_ = curl_easy_setopt((http)->curl, opt, value);                          \
        if (setopt_rc_ != CURLE_OK) {                                                              \
            snprintf(err, errlen, "curl_easy_setopt(%s): %s", #opt,                                \
                     curl_easy_strerror(setopt_rc_));                                              \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

struct sim_http *sim_http_new(const struct sim_http_options *options, char *err, size_t errlen)
{
    struct sim_http *http = calloc(1, sizeof(*http));
    long version = CURL_HTTP_VERSION_NONE;

    if (http == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    http->max_body = options->max_body;
    http->curl = curl_easy_init();
    if (http->curl == NULL) {
        snprintf(err, errlen, "curl_easy_init failed");
        goto fail;
    }
    switch (options->version) {
    case SIM_HTTP_DEFAULT:
        version = CURL_HTTP_VERSION_NONE;
        break;
    case SIM_HTTP_1_1:
        version = CURL_HTTP_VERSION_1_1;
        break;
    case SIM_HTTP_2:
        version = CURL_HTTP_VERSION_2_0;
        break;
    case SIM_HTTP_2_PRIOR_KNOWLEDGE:
        version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
        break;
    }
    /* Worker threads: libcurl must not use signals (SIGALRM for DNS timeouts). */
    HTTP_SETOPT(http, CURLOPT_NOSIGNAL, 1L, err, errlen);
    HTTP_SETOPT(http, CURLOPT_ERRORBUFFER, http->curl_error, err, errlen);
    HTTP_SETOPT(http, CURLOPT_WRITEFUNCTION, http_write, err, errlen);
    HTTP_SETOPT(http, CURLOPT_WRITEDATA, http, err, errlen);
    HTTP_SETOPT(http, CURLOPT_HEADERFUNCTION, http_header, err, errlen);
    HTTP_SETOPT(http, CURLOPT_HEADERDATA, http, err, errlen);
    HTTP_SETOPT(http, CURLOPT_TIMEOUT, options->timeout_seconds, err, errlen);
    HTTP_SETOPT(http, CURLOPT_CONNECTTIMEOUT, options->timeout_seconds, err, errlen);
    HTTP_SETOPT(http, CURLOPT_TCP_KEEPALIVE, 1L, err, errlen);
    HTTP_SETOPT(http, CURLOPT_PROTOCOLS_STR, "http,https", err, errlen);
    /* What iOS sends; servers sometimes log or route on it. */
    HTTP_SETOPT(http, CURLOPT_USERAGENT, "MDM/1.0", err, errlen);
    HTTP_SETOPT(http, CURLOPT_CUSTOMREQUEST, "PUT", err, errlen);
    HTTP_SETOPT(http, CURLOPT_HTTP_VERSION, version, err, errlen);
    if (options->cacert != NULL)
        HTTP_SETOPT(http, CURLOPT_CAINFO, options->cacert, err, errlen);
    if (options->insecure) {
        HTTP_SETOPT(http, CURLOPT_SSL_VERIFYPEER, 0L, err, errlen);
        HTTP_SETOPT(http, CURLOPT_SSL_VERIFYHOST, 0L, err, errlen);
    }
    return http;
fail:
    sim_http_free(http);
    return NULL;
}

void sim_http_free(struct sim_http *http)
{
    if (http == NULL)
        return;
    if (http->curl != NULL)
        curl_easy_cleanup(http->curl);
    free(http->body);
    free(http);
}

bool sim_http_put(struct sim_http *http, const char *url, const char *const *headers,
                  size_t nheaders, const char *body, size_t len, struct sim_http_response *resp,
                  char *err, size_t errlen)
{
    return sim_http_request(http, "PUT", url, headers, nheaders, body, len, resp, err, errlen);
}

bool sim_http_request(struct sim_http *http, const char *method, const char *url,
                      const char *const *headers, size_t nheaders, const char *body, size_t len,
                      struct sim_http_response *resp, char *err, size_t errlen)
{
    bool head = strcmp(method, "HEAD") == 0;
    bool get = strcmp(method, "GET") == 0;
    struct curl_slist *list = NULL;
    CURLcode rc;
    const char *content_type = NULL;
    bool ok = false;

    memset(resp, 0, sizeof(*resp));
    http->body_len = 0;
    http->too_big = false;
    http->curl_error[0] = '\0';
    if (http->body != NULL)
        http->body[0] = '\0';
    for (size_t i = 0; i < nheaders; i++) {
        struct curl_slist *next = curl_slist_append(list, headers[i]);
        if (next == NULL) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        list = next;
    }
    HTTP_SETOPT(http, CURLOPT_URL, url, err, errlen);
    HTTP_SETOPT(http, CURLOPT_HTTPHEADER, list, err, errlen);
    /* One handle serves every method: each request sets all that decides its method. */
    HTTP_SETOPT(http, CURLOPT_NOBODY, head ? 1L : 0L, err, errlen);
    if (head || get) {
        if (get)
            HTTP_SETOPT(http, CURLOPT_HTTPGET, 1L, err, errlen);
        HTTP_SETOPT(http, CURLOPT_CUSTOMREQUEST, NULL, err, errlen);
    } else {
        HTTP_SETOPT(http, CURLOPT_POSTFIELDS, body != NULL ? body : "", err, errlen);
        HTTP_SETOPT(http, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len, err, errlen);
        HTTP_SETOPT(http, CURLOPT_CUSTOMREQUEST, method, err, errlen);
    }

    http->resp = resp;
    rc = curl_easy_perform(http->curl);
    http->resp = NULL;
    if (rc != CURLE_OK) {
        if (http->too_big)
            snprintf(err, errlen, "response body larger than %zu bytes", http->max_body);
        else
            snprintf(err, errlen, "%s%s%s", curl_easy_strerror(rc),
                     http->curl_error[0] != '\0' ? ": " : "", http->curl_error);
        goto out;
    }
    if (curl_easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &resp->status) != CURLE_OK ||
        curl_easy_getinfo(http->curl, CURLINFO_NUM_CONNECTS, &resp->new_connections) != CURLE_OK ||
        curl_easy_getinfo(http->curl, CURLINFO_CONTENT_TYPE, &content_type) != CURLE_OK) {
        snprintf(err, errlen, "curl_easy_getinfo failed");
        goto out;
    }
    if (content_type != NULL)
        snprintf(resp->content_type, sizeof(resp->content_type), "%s", content_type);
    resp->body = http->body != NULL ? http->body : "";
    resp->body_len = http->body_len;
    ok = true;
out:
fail:
    /* The handle keeps pointers to the list and body: clear them before they go away. */
    (void)curl_easy_setopt(http->curl, CURLOPT_HTTPHEADER, NULL);
    (void)curl_easy_setopt(http->curl, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(list);
    return ok;
}
