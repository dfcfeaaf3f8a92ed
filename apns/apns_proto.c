#include "apns_proto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "utf8.h"

static bool fail(char *err, size_t err_size, const char *url, const char *why)
{
    snprintf(err, err_size, "apns_url '%s': %s", url, why);
    return false;
}

bool apns_target_parse(const char *url, struct apns_target *out, char *err, size_t err_size)
{
    static const char scheme[] = "https://";
    memset(out, 0, sizeof(*out));
    if (url == NULL || strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
        return fail(err, err_size, url ? url : "", "not an https:// URL");
    const char *p = url + sizeof(scheme) - 1;
    size_t len = strlen(p);
    while (len > 0 && p[len - 1] == '/')
        len--;
    if (len == 0 || memchr(p, '/', len) != NULL || memchr(p, '?', len) || memchr(p, '#', len) ||
        memchr(p, '@', len))
        return fail(err, err_size, url, "expected https://host[:port] and nothing more");
    if (len >= sizeof(out->authority))
        return fail(err, err_size, url, "host name too long");
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(p, ']', len);
        if (host_end == NULL)
            return fail(err, err_size, url, "unterminated [IPv6 address]");
        if ((size_t)(host_end + 1 - p) < len) {
            if (host_end[1] != ':')
                return fail(err, err_size, url, "junk after the [IPv6 address]");
            port = host_end + 2;
        }
    } else {
        host_end = memchr(p, ':', len);
        if (host_end != NULL)
            port = host_end + 1;
        else
            host_end = p + len;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0 || host_len > APNS_HOST_MAX)
        return fail(err, err_size, url, "no host");
    for (size_t i = 0; i < host_len; i++) {
        char ch = host[i];
        if (!(ch == '.' || ch == '-' || ch == ':' || (ch >= '0' && ch <= '9') ||
              (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
            return fail(err, err_size, url, "bad character in the host");
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = 443;
    if (port != NULL) {
        size_t port_len = (size_t)(p + len - port);
        unsigned long value = 0;
        if (port_len == 0 || port_len > 5)
            return fail(err, err_size, url, "bad port");
        for (size_t i = 0; i < port_len; i++) {
            if (port[i] < '0' || port[i] > '9')
                return fail(err, err_size, url, "bad port");
            value = value * 10 + (unsigned long)(port[i] - '0');
        }
        if (value == 0 || value > 65535)
            return fail(err, err_size, url, "bad port");
        out->port = (uint16_t)value;
    }
    if (*p != '[' && strchr(out->host, ':') != NULL)
        return fail(err, err_size, url, "an IPv6 address needs brackets");
    unsigned char addr[16];
    out->host_is_ip =
        inet_pton(AF_INET, out->host, addr) == 1 || inet_pton(AF_INET6, out->host, addr) == 1;
    if (*p == '[' && !out->host_is_ip)
        return fail(err, err_size, url, "not an IPv6 address in brackets");
    memcpy(out->authority, p, len);
    out->authority[len] = '\0';
    out->authority_len = len;
    return true;
}

enum apns_outcome apns_outcome_of_status(int status)
{
    if (status == 200)
        return APNS_DELIVERED;
    if (status == 410)
        return APNS_UNREGISTERED;
    if (status == 403)
        return APNS_FORBIDDEN;
    if (status == 429 || status >= 500 || status <= 0)
        return APNS_TRANSIENT;
    return APNS_REJECTED;
}

void apns_reply_parse_body(const char *body, size_t len, struct apns_response *r)
{
    static const struct json_limits limits = {
        .max_bytes = APNS_REPLY_BODY_MAX, .max_depth = 4, .max_nodes = 32};
    struct json_doc *doc = NULL;
    if (len == 0 || len > APNS_REPLY_BODY_MAX ||
        json_parse(body, len, &limits, &doc, NULL) != JSON_OK)
        return;
    const char *reason = json_object_get_string(json_doc_root(doc), "reason");
    if (reason != NULL) {
        /* A label for logs and metrics: printable ASCII only. */
        size_t n = 0;
        for (; reason[n] != '\0' && n < sizeof(r->reason) - 1; n++)
            r->reason[n] = reason[n] > 0x20 && reason[n] < 0x7f ? reason[n] : '?';
        r->reason[n] = '\0';
    }
    int64_t ts;
    if (json_get_int64(json_object_find(json_doc_root(doc), "timestamp"), &ts) && ts > 0)
        r->timestamp_ms = ts;
    json_doc_free(doc);
}

unsigned apns_backoff_ms(unsigned failures, unsigned base_ms, unsigned max_ms, uint32_t random)
{
    uint64_t cap = (uint64_t)base_ms << (failures < 16 ? failures : 16);
    if (cap > max_ms)
        cap = max_ms;
    if (cap < 2)
        return (unsigned)cap;
    return (unsigned)(cap / 2 + random % (cap / 2 + 1));
}

size_t apns_mdm_body(const char *push_magic, size_t len, char *out, size_t out_max)
{
    static const char head[] = "{\"mdm\":\"", tail[] = "\"}", hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)push_magic;
    size_t n = sizeof(head) - 1;
    if (out_max < n)
        return 0;
    memcpy(out, head, n);
    for (size_t i = 0; i < len;) {
        char esc[7];
        size_t k = 1, e = 0;
        if (s[i] >= 0x80) {
            k = utf8_sequence_length(s + i, len - i);
            if (k == 0)
                return 0;
        } else if (s[i] == '"' || s[i] == '\\') {
            esc[e++] = '\\';
            esc[e++] = (char)s[i];
        } else if (s[i] < 0x20) {
            static const char short_form[] = {['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n',
                                              ['\r'] = 'r', ['\t'] = 't'};
            esc[e++] = '\\';
            if (s[i] < sizeof(short_form) && short_form[s[i]] != 0) {
                esc[e++] = short_form[s[i]];
            } else {
                memcpy(esc + e, "u00", 3);
                e += 3;
                esc[e++] = hex[s[i] >> 4];
                esc[e++] = hex[s[i] & 15];
            }
        }
        const char *from = e > 0 ? esc : (const char *)s + i;
        size_t m = e > 0 ? e : k;
        if (out_max - n < m)
            return 0;
        memcpy(out + n, from, m);
        n += m;
        i += k;
    }
    if (out_max - n < sizeof(tail) - 1)
        return 0;
    memcpy(out + n, tail, sizeof(tail) - 1);
    return n + sizeof(tail) - 1;
}
