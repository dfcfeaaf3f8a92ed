/*
 * standin: the helpers every part of apns-standin uses (standin.h).
 */
#include "standin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

long long standin_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool standin_parse_address(const char *text, struct sockaddr_storage *out, socklen_t *out_len)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    const char *h = text;
    size_t hlen;

    if (colon == NULL)
        return false;
    hlen = (size_t)(colon - text);
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        h = text + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';

    const char *p = colon + 1;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long port = strtoul(p, &end, 10);
    if (errno != 0 || *end != '\0' || port > 65535)
        return false;

    memset(out, 0, sizeof(*out));
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *out_len = sizeof(*in);
        return true;
    }
    if (h != text && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *out_len = sizeof(*in6);
        return true;
    }
    return false;
}
