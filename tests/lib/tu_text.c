/*
 * tu_text: see tu_text.h.
 */
#include "tu_text.h"

#include <errno.h>
#include <stdlib.h>

int tu_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool tu_hex_decode(const char *hex, size_t n, unsigned char *out, size_t max, size_t *len)
{
    if (n % 2 != 0 || n / 2 > max)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = tu_hex_digit((unsigned char)hex[2 * i]);
        int lo = tu_hex_digit((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    *len = n / 2;
    return true;
}

void tu_hex_encode(const unsigned char *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

bool tu_parse_unix_time(const char *text, time_t *out)
{
    char *end = NULL;
    long long v;

    if (text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v > TU_UNIX_TIME_MAX)
        return false;
    *out = (time_t)v;
    return true;
}
