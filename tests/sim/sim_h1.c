/*
 * sim_h1: the devices' PUTs over a kept-alive HTTP/1.1 connection; see sim_h1.h.
 */
#include "sim_h1.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#define H1_AUTHORITY_MAX 300
#define H1_READ_CHUNK 16384

struct sim_h1 {
    int fd;                           /* -1: no connection */
    char authority[H1_AUTHORITY_MAX]; /* host[:port] fd is connected to */
    long timeout_seconds;
    size_t max_body;
    char *head; /* the request head being sent, grown as needed */
    size_t head_cap;
    char *in; /* bytes read from the connection, not yet consumed */
    size_t in_len, in_pos, in_cap;
    char *body; /* the answer's body, NUL-terminated */
    size_t body_len, body_cap;
};

struct h1_url {
    char authority[H1_AUTHORITY_MAX];
    char host[H1_AUTHORITY_MAX];
    char port[8];
    const char *path; /* into the URL; "" means "/" */
};

static bool h1_parse_url(const char *url, struct h1_url *u)
{
    const char *a = url + 7;
    size_t n = strcspn(a, "/?#");
    const char *colon;

    if (strncmp(url, "http://", 7) != 0 || n == 0 || n >= sizeof(u->authority) ||
        memchr(a, '@', n) != NULL)
        return false;
    memcpy(u->authority, a, n);
    u->authority[n] = '\0';
    u->path = a + n;
    if (u->authority[0] == '[') { /* [IPv6]:port */
        char *close = strchr(u->authority, ']');
        if (close == NULL)
            return false;
        memcpy(u->host, u->authority + 1, (size_t)(close - u->authority - 1));
        u->host[close - u->authority - 1] = '\0';
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] != '\0' && colon == NULL)
            return false;
    } else {
        colon = strchr(u->authority, ':');
        n = colon != NULL ? (size_t)(colon - u->authority) : strlen(u->authority);
        memcpy(u->host, u->authority, n);
        u->host[n] = '\0';
    }
    if (colon == NULL) {
        snprintf(u->port, sizeof(u->port), "80");
    } else {
        size_t plen = strlen(colon + 1);
        if (plen == 0 || plen >= sizeof(u->port) || strspn(colon + 1, "0123456789") != plen)
            return false;
        memcpy(u->port, colon + 1, plen + 1);
    }
    return u->host[0] != '\0' && u->path[0] != '#';
}

bool sim_h1_handles(const char *url)
{
    struct h1_url u;

    return h1_parse_url(url, &u);
}

struct sim_h1 *sim_h1_new(long timeout_seconds, size_t max_body)
{
    struct sim_h1 *h1 = calloc(1, sizeof(*h1));

    if (h1 == NULL)
        return NULL;
    h1->fd = -1;
    h1->timeout_seconds = timeout_seconds;
    h1->max_body = max_body;
    return h1;
}

static void h1_close(struct sim_h1 *h1)
{
    if (h1->fd >= 0)
        close(h1->fd);
    h1->fd = -1;
    h1->authority[0] = '\0';
    h1->in_len = h1->in_pos = 0;
}

void sim_h1_free(struct sim_h1 *h1)
{
    if (h1 == NULL)
        return;
    h1_close(h1);
    free(h1->head);
    free(h1->in);
    free(h1->body);
    free(h1);
}

static bool h1_connect(struct sim_h1 *h1, const struct h1_url *u, char *err, size_t errlen)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct timeval tv = {h1->timeout_seconds, 0};
    int one = 1;
    int rc;
    int saved = 0;

    h1_close(h1);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "resolving %s: %s", u->host, gai_strerror(rc));
        return false;
    }
    for (struct addrinfo *ai = res; ai != NULL && h1->fd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        /* SO_SNDTIMEO also bounds connect() on Linux. */
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            h1->fd = fd;
        } else {
            saved = errno;
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (h1->fd < 0) {
        snprintf(err, errlen, "connecting to %s: %s", u->authority,
                 saved == EAGAIN || saved == EINPROGRESS ? "timed out" : strerror(saved));
        return false;
    }
    snprintf(h1->authority, sizeof(h1->authority), "%s", u->authority);
    return true;
}

/* Grows *buf to hold need bytes (no more than limit). */
static bool h1_reserve(char **buf, size_t *cap, size_t need, size_t limit)
{
    size_t n = *cap == 0 ? 4096 : *cap;
    char *grown;

    if (need <= *cap)
        return true;
    if (need > limit)
        return false;
    while (n < need)
        n *= 2;
    if (n > limit)
        n = limit;
    grown = realloc(*buf, n);
    if (grown == NULL)
        return false;
    *buf = grown;
    *cap = n;
    return true;
}

/* The request head: request line, Host, the caller's headers, Content-Length. */
static bool h1_head(struct sim_h1 *h1, const struct h1_url *u, const char *const *headers,
                    size_t nheaders, size_t len, size_t *head_len)
{
    size_t need = strlen(u->path) + strlen(u->authority) + 192;
    size_t used;

    for (size_t i = 0; i < nheaders; i++)
        need += strlen(headers[i]) + 2;
    if (!h1_reserve(&h1->head, &h1->head_cap, need, need))
        return false;
    used = (size_t)snprintf(h1->head, need,
                            "PUT %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: MDM/1.0\r\n"
                            "Accept: */*\r\n",
                            u->path[0] == '/' ? "" : "/", u->path, u->authority);
    for (size_t i = 0; i < nheaders; i++) {
        const char *colon = strchr(headers[i], ':');
        if (colon == NULL || colon[1 + strspn(colon + 1, " \t")] == '\0')
            continue; /* "Name:" alone: no such header */
        used += (size_t)snprintf(h1->head + used, need - used, "%s\r\n", headers[i]);
    }
    used += (size_t)snprintf(h1->head + used, need - used, "Content-Length: %zu\r\n\r\n", len);
    *head_len = used;
    return used < need;
}

static bool h1_send(struct sim_h1 *h1, size_t head_len, const char *body, size_t len)
{
    struct iovec iov[2] = {{h1->head, head_len}, {(void *)body, len}};
    struct msghdr msg;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = len > 0 ? 2 : 1;
    while (msg.msg_iovlen > 0) {
        ssize_t n = sendmsg(h1->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        while (msg.msg_iovlen > 0 && (size_t)n >= msg.msg_iov[0].iov_len) {
            n -= (ssize_t)msg.msg_iov[0].iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen > 0) {
            msg.msg_iov[0].iov_base = (char *)msg.msg_iov[0].iov_base + n;
            msg.msg_iov[0].iov_len -= (size_t)n;
        }
    }
    return true;
}

/* Reads more of the answer: 1 bytes came, 0 the connection ended, -1 an error (errno). */
static int h1_read(struct sim_h1 *h1)
{
    size_t limit = SIM_H1_HEAD_MAX + 2 * h1->max_body + H1_READ_CHUNK;
    ssize_t n;

    if (h1->in_pos > 0 && h1->in_pos == h1->in_len)
        h1->in_pos = h1->in_len = 0;
    if (!h1_reserve(&h1->in, &h1->in_cap, h1->in_len + H1_READ_CHUNK, limit)) {
        errno = EMSGSIZE;
        return -1;
    }
    do
        n = recv(h1->fd, h1->in + h1->in_len, h1->in_cap - h1->in_len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        h1->in_len += (size_t)n;
    return n > 0 ? 1 : n == 0 ? 0 : -1;
}

/* Waits until the unread input holds "\r\n" (line) or "\r\n\r\n" (head); *end is past it. */
static int h1_until(struct sim_h1 *h1, const char *mark, size_t max, size_t *end)
{
    size_t mlen = strlen(mark);

    for (;;) {
        const char *start = h1->in + h1->in_pos;
        size_t avail = h1->in_len - h1->in_pos;
        const char *hit = avail >= mlen ? memmem(start, avail, mark, mlen) : NULL;
        int rc;

        if (hit != NULL) {
            *end = (size_t)(hit - h1->in) + mlen;
            return 1;
        }
        if (avail > max) {
            errno = EMSGSIZE;
            return -1;
        }
        if ((rc = h1_read(h1)) <= 0)
            return rc;
    }
}

static bool h1_body_add(struct sim_h1 *h1, const char *data, size_t n)
{
    if (n > h1->max_body - h1->body_len ||
        !h1_reserve(&h1->body, &h1->body_cap, h1->body_len + n + 1, h1->max_body + 1))
        return false;
    memcpy(h1->body + h1->body_len, data, n);
    h1->body_len += n;
    h1->body[h1->body_len] = '\0';
    return true;
}

/* Moves n body bytes of input (reading as needed) to the body. */
static int h1_take(struct sim_h1 *h1, size_t n)
{
    while (n > 0) {
        size_t avail = h1->in_len - h1->in_pos;
        size_t k = avail < n ? avail : n;
        int rc;

        if (k > 0) {
            if (!h1_body_add(h1, h1->in + h1->in_pos, k)) {
                errno = EFBIG;
                return -1;
            }
            h1->in_pos += k;
            n -= k;
        } else if ((rc = h1_read(h1)) <= 0) {
            return rc;
        }
    }
    return 1;
}

/* Copies header value v[0..n) into out when it fits, else leaves out empty. */
static void h1_copy(char *out, size_t outlen, const char *v, size_t n)
{
    out[0] = '\0';
    if (n < outlen) {
        memcpy(out, v, n);
        out[n] = '\0';
    }
}

struct h1_answer {
    bool chunked, close, has_length;
    size_t length;
};

/* Parses the head in[start..end): status line and the headers that matter. */
static bool h1_parse_head(const char *p, const char *end, struct sim_http_response *resp,
                          struct h1_answer *a)
{
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    char *num_end;

    memset(a, 0, sizeof(*a));
    if (eol == NULL || eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return false;
    a->close = p[7] == '0';
    resp->status = strtol(p + 9, &num_end, 10);
    if (num_end != p + 12 || resp->status < 100 || resp->status > 999)
        return false;
    for (p = eol + 2; p < end && !(p[0] == '\r' && p[1] == '\n'); p = eol + 2) {
        const char *colon;
        const char *v;
        const char *vend;

        eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        colon = eol != NULL ? memchr(p, ':', (size_t)(eol - p)) : NULL;
        if (colon == NULL)
            return false;
        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
            ;
        for (vend = eol; vend > v && (vend[-1] == ' ' || vend[-1] == '\t'); vend--)
            ;
#define H1_IS(name)                                                                                \
    ((size_t)(colon - p) == sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0)
        if (H1_IS("Content-Length")) {
            unsigned long long n = strtoull(v, &num_end, 10);
            if (num_end != vend || v == vend || (a->has_length && a->length != n))
                return false;
            a->has_length = true;
            a->length = (size_t)n;
        } else if (H1_IS("Transfer-Encoding")) {
            a->chunked = vend - v >= 7 && strncasecmp(vend - 7, "chunked", 7) == 0;
            if (!a->chunked)
                return false; /* nothing else is spoken here */
        } else if (H1_IS("Connection")) {
            if ((size_t)(vend - v) == 5 && strncasecmp(v, "close", 5) == 0)
                a->close = true;
            else if ((size_t)(vend - v) == 10 && strncasecmp(v, "keep-alive", 10) == 0)
                a->close = false;
        } else if (H1_IS("Content-Type")) {
            h1_copy(resp->content_type, sizeof(resp->content_type), v, (size_t)(vend - v));
        } else if (H1_IS("Replay-Nonce")) {
            h1_copy(resp->replay_nonce, sizeof(resp->replay_nonce), v, (size_t)(vend - v));
        } else if (H1_IS("Location")) {
            h1_copy(resp->location, sizeof(resp->location), v, (size_t)(vend - v));
        }
#undef H1_IS
    }
    return true;
}

/* The chunked body (RFC 9112 §7.1), trailers skipped. */
static int h1_chunked(struct sim_h1 *h1)
{
    for (;;) {
        size_t end;
        char *num_end;
        unsigned long long size;
        int rc = h1_until(h1, "\r\n", 1024, &end);

        if (rc <= 0)
            return rc;
        size = strtoull(h1->in + h1->in_pos, &num_end, 16);
        if (num_end == h1->in + h1->in_pos || (*num_end != '\r' && *num_end != ';') ||
            size > h1->max_body) {
            errno = EPROTO;
            return -1;
        }
        h1->in_pos = end;
        if (size == 0) {
            do { /* trailer lines, then the empty line */
                if ((rc = h1_until(h1, "\r\n", SIM_H1_HEAD_MAX, &end)) <= 0)
                    return rc;
                rc = end - h1->in_pos == 2;
                h1->in_pos = end;
            } while (!rc);
            return 1;
        }
        if ((rc = h1_take(h1, (size_t)size)) <= 0 || (rc = h1_until(h1, "\r\n", 2, &end)) <= 0)
            return rc;
        if (end - h1->in_pos != 2) {
            errno = EPROTO;
            return -1;
        }
        h1->in_pos = end;
    }
}

/* One exchange on the open connection. 1: an answer; 0: the connection was closed before any
 * of it came (a kept-alive connection the server dropped); -1: failed (errno, or EPROTO). */
static int h1_exchange(struct sim_h1 *h1, size_t head_len, const char *body, size_t len,
                       struct sim_http_response *resp, bool *close_after)
{
    struct h1_answer a;
    size_t end;
    int rc;

    if (!h1_send(h1, head_len, body, len))
        return errno == EPIPE || errno == ECONNRESET ? 0 : -1;
    h1->in_len = h1->in_pos = 0;
    for (;;) {
        rc = h1_until(h1, "\r\n\r\n", SIM_H1_HEAD_MAX, &end);
        if (rc <= 0)
            return h1->in_len == 0 && (rc == 0 || errno == ECONNRESET) ? 0 : -1;
        if (!h1_parse_head(h1->in + h1->in_pos, h1->in + end, resp, &a)) {
            errno = EPROTO;
            return -1;
        }
        h1->in_pos = end;
        if (resp->status >= 200)
            break;
        memset(resp->content_type, 0, sizeof(resp->content_type));
    }
    h1->body_len = 0;
    if (!h1_reserve(&h1->body, &h1->body_cap, 1, h1->max_body + 1)) {
        errno = ENOMEM;
        return -1;
    }
    h1->body[0] = '\0';
    if (resp->status == 204 || resp->status == 304) {
        rc = 1;
    } else if (a.chunked) {
        rc = h1_chunked(h1);
    } else if (a.has_length) {
        if (a.length > h1->max_body) {
            errno = EFBIG;
            return -1;
        }
        rc = h1_take(h1, a.length);
    } else { /* the body ends with the connection */
        a.close = true;
        while ((rc = h1_take(h1, h1->in_len - h1->in_pos)) > 0 && (rc = h1_read(h1)) > 0)
            ;
        rc = rc == 0 ? 1 : rc;
    }
    if (rc == 0) {
        errno = ECONNRESET; /* ended in the middle of the answer */
        return -1;
    }
    *close_after = a.close || h1->in_pos != h1->in_len;
    return rc;
}

bool sim_h1_put(struct sim_h1 *h1, const char *url, const char *const *headers, size_t nheaders,
                const char *body, size_t len, struct sim_http_response *resp, char *err,
                size_t errlen)
{
    struct h1_url u;
    size_t head_len;
    bool close_after = false;
    int rc = 0;

    memset(resp, 0, sizeof(*resp));
    if (!h1_parse_url(url, &u)) {
        snprintf(err, errlen, "not an http:// URL: %s", url);
        return false;
    }
    if (!h1_head(h1, &u, headers, nheaders, len, &head_len)) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    if (h1->fd >= 0 && strcmp(h1->authority, u.authority) != 0)
        h1_close(h1);
    /* A kept-alive connection may have been closed by the server since: once more, afresh. */
    for (int attempt = 0; attempt < 2 && rc == 0; attempt++) {
        bool fresh = h1->fd < 0 || attempt > 0;
        if (fresh) {
            if (!h1_connect(h1, &u, err, errlen))
                return false;
            resp->new_connections++;
        }
        rc = h1_exchange(h1, head_len, body, len, resp, &close_after);
        if (rc == 0 && fresh) {
            rc = -1;
            errno = ECONNRESET;
        }
    }
    if (rc < 0) {
        int e = errno;
        snprintf(err, errlen, "PUT %s: %s", url,
                 e == EAGAIN || e == EWOULDBLOCK ? "timed out"
                 : e == EPROTO                   ? "malformed HTTP answer"
                 : e == EFBIG                    ? "response body too large"
                                                 : strerror(e));
        h1_close(h1);
        return false;
    }
    if (close_after)
        h1_close(h1);
    resp->body = h1->body;
    resp->body_len = h1->body_len;
    return true;
}
