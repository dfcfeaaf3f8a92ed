/*
 * hex: hexadecimal digits and strings, the one copy every layer uses (nonces on vouchctl's
 * command line, percent-escapes in request paths, the tests' and tools' files). Pure: no I/O, no
 * allocation.
 */
#ifndef VOUCH_HEX_H
#define VOUCH_HEX_H

#include <stdbool.h>
#include <stddef.h>

/* The value of one hex digit (either case), or -1. */
int hex_digit(int c);

/* Decodes the n characters at hex (an even number of hex digits, either case; no NUL needed)
 * into out; false when they are not hex digits in pairs or make more than max bytes. n == 0
 * decodes to nothing. */
bool hex_decode(const char *hex, size_t n, unsigned char *out, size_t max, size_t *len)
    __attribute__((warn_unused_result));

/* Writes len bytes as 2 * len lowercase hex digits and a NUL to out (2 * len + 1 bytes). */
void hex_encode(const unsigned char *data, size_t len, char *out);

#endif
