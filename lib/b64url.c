/* b64url: see b64url.h. */
#include "b64url.h"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64url_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

void b64url_encode(const uint8_t *src, size_t n, char *dst)
{
    size_t i = 0;
    char *o = dst;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        *o++ = b64url_alphabet[v >> 18];
        *o++ = b64url_alphabet[v >> 12 & 63];
        *o++ = b64url_alphabet[v >> 6 & 63];
        *o++ = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        *o++ = b64url_alphabet[src[i] >> 2];
        *o++ = b64url_alphabet[(src[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 8 | src[i + 1];
        *o++ = b64url_alphabet[v >> 10];
        *o++ = b64url_alphabet[v >> 4 & 63];
        *o++ = b64url_alphabet[(v & 15) << 2];
    }
    *o = '\0';
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

bool b64url_decode(const char *src, size_t len, uint8_t *dst, size_t *dst_len)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    if (len % 4 == 1)
        return false; /* 6 bits cannot end a byte */
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)src[i]);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return false; /* the unused bits of the last character */
    *dst_len = o;
    return true;
}

/* Decodes text that must make at most max bytes. */
