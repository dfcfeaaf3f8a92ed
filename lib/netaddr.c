/* netaddr: see netaddr.h. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

bool net_addr_parse(const char *text, size_t len, struct net_addr *out)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char buf[INET6_ADDRSTRLEN + 1];
    if (len == 0 || len >= sizeof(buf) || memchr(text, '\0', len) != NULL)
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->bytes) == 1) {
        out->family = 4;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out->bytes) != 1)
        return false;
    out->family = 6;
    if (memcmp(out->bytes, v4_mapped, sizeof(v4_mapped)) == 0) {
        memmove(out->bytes, out->bytes + 12, 4);
        memset(out->bytes + 4, 0, 12);
        out->family = 4;
    }
    return true;
}

const char *net_addr_text(const struct net_addr *a, char *buf, size_t size)
{
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes, text, sizeof(text)) == NULL)
        snprintf(text, sizeof(text), "?");
    snprintf(buf, size, "%s", text);
    return buf;
}

/* Clears the bits of a beyond its first prefix bits; says whether any was set. */
static bool mask_to_prefix(struct net_addr *a, unsigned prefix)
{
    bool changed = false;
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * i : 0;
        uint8_t mask = (uint8_t)(0xffu >> keep); /* the bits beyond the prefix */
        changed = changed || (a->bytes[i] & mask) != 0;
        a->bytes[i] = (uint8_t)(a->bytes[i] & ~mask);
    }
    return changed;
}

bool net_prefix_parse(const char *text, struct net_prefix *out, char *err, size_t err_size)
{
    char shown[80];
    log_sanitize(text, strlen(text), shown, sizeof(shown));
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    memset(out, 0, sizeof(*out));
    if (!net_addr_parse(text, len, &out->addr)) {
        snprintf(err, err_size, "'%s' is not an IPv4 or IPv6 address, nor address/prefix", shown);
        return false;
    }
    /* The prefix counts the bits of the address as written: ::ffff:10.0.0.0/104 is 10.0.0.0/8. */
    bool written_v6 = memchr(text, ':', len) != NULL;
    unsigned width = written_v6 ? 128 : 32;
    unsigned prefix = width;
    if (slash != NULL) {
        const char *digits = slash + 1;
        size_t n = strlen(digits);
        if (n == 0 || n > 3 || strspn(digits, "0123456789") != n || (n > 1 && digits[0] == '0')) {
            snprintf(err, err_size, "'%s': the prefix after '/' must be a number of bits", shown);
            return false;
        }
        prefix = 0;
        for (size_t i = 0; i < n; i++)
            prefix = prefix * 10 + (unsigned)(digits[i] - '0');
        if (prefix > width) {
            snprintf(err, err_size, "'%s': the prefix of an IPv%c address is at most /%u", shown,
                     written_v6 ? '6' : '4', width);
            return false;
        }
    }
    if (written_v6 && out->addr.family == 4) {
        if (prefix < 96) {
            snprintf(err, err_size, "'%s' reaches beyond the IPv4-mapped addresses (::ffff:0:0/96)",
                     shown);
            return false;
        }
        prefix -= 96;
    }
    /* Everyone's forwarding headers would be believed, so anyone could claim any certificate. */
    if (prefix == 0) {
        snprintf(err, err_size, "'%s' would trust every address: list the proxies' addresses",
                 shown);
        return false;
    }
    struct net_addr network = out->addr;
    if (mask_to_prefix(&network, prefix)) {
        char suggestion[INET6_ADDRSTRLEN];
        snprintf(err, err_size, "'%s' has bits set beyond its /%u prefix (did you mean %s/%u?)",
                 shown, prefix, net_addr_text(&network, suggestion, sizeof(suggestion)), prefix);
        return false;
    }
    out->prefix = (uint8_t)prefix;
    return true;
}

bool net_prefix_contains(const struct net_prefix *net, const struct net_addr *a)
{
    if (net->addr.family != a->family)
        return false;
    struct net_addr masked = *a;
    mask_to_prefix(&masked, net->prefix);
    return memcmp(masked.bytes, net->addr.bytes, sizeof(masked.bytes)) == 0;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* ":port" of an X-Forwarded-For element (some proxies add it). */
static bool is_port(const char *s, size_t len)
{
    if (len < 2 || len > 6 || s[0] != ':')
        return false;
    unsigned port = 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (unsigned)(s[i] - '0');
    }
    return port <= 65535;
}

/* One element: "a.b.c.d", "a.b.c.d:port", an IPv6 address, "[v6]" or "[v6]:port". */
static bool forwarded_element(const char *s, size_t len, struct net_addr *out)
{
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return false;
        size_t after = len - (size_t)(close - s) - 1;
        return (after == 0 || is_port(close + 1, after)) &&
               net_addr_parse(s + 1, (size_t)(close - s) - 1, out);
    }
    const char *colon = memchr(s, ':', len);
    if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) == NULL) {
        size_t host = (size_t)(colon - s);
        return is_port(colon, len - host) && net_addr_parse(s, host, out) && out->family == 4;
    }
    return net_addr_parse(s, len, out);
}

/* Is a in one of the n networks? */
static bool trusted(const struct net_prefix *nets, size_t n, const struct net_addr *a)
{
    for (size_t i = 0; i < n; i++) {
        if (net_prefix_contains(&nets[i], a))
            return true;
    }
    return false;
}

bool net_forwarded_client(const struct net_prefix *proxies, size_t proxy_count,
                          const struct net_addr *peer, const char *const *lines, size_t n,
                          struct net_addr *client)
{
    *client = *peer;
    if (!trusted(proxies, proxy_count, peer))
        return true;
    /* From the right: each trusted proxy vouches for the address left of its own; the first
     * address that is not a proxy is the client. What lies further left, the client wrote. */
    for (size_t i = n; i-- > 0;) {
        const char *line = lines[i];
        size_t end = strlen(line);
        while (end > 0) {
            size_t start = end;
            while (start > 0 && line[start - 1] != ',')
                start--;
            size_t a = start, b = end;
            end = start > 0 ? start - 1 : 0;
            while (a < b && is_ows(line[a]))
                a++;
            while (b > a && is_ows(line[b - 1]))
                b--;
            if (a == b)
                continue; /* an empty list element, allowed by HTTP's list syntax */
            struct net_addr element;
            if (!forwarded_element(line + a, b - a, &element))
                return false;
            *client = element;
            if (!trusted(proxies, proxy_count, &element))
                return true;
        }
    }
    return true;
}
