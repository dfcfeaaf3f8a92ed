/*
 * tu_text: the small text codecs the tests and the tools share (apns-standin, vouch-sim,
 * fake-apple, the unit tests): hex digits, hex strings, Unix times on a command line. Pure: no
 * I/O, no allocation. Production code keeps its own (it does not link tests/lib).
 */
#ifndef VOUCH_TU_TEXT_H
#define VOUCH_TU_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The latest Unix time tu_parse_unix_time() accepts: 9999-12-31T23:59:59Z. */
#define TU_UNIX_TIME_MAX 253402300799LL

/* The value of one hex digit (either case), or -1. */
int tu_hex_digit(int c);

/* Decodes the n characters at hex (an even number of hex digits, either case; no NUL needed)
 * into out; false when they are not hex digits in pairs or make more than max bytes. n == 0
 * decodes to nothing. */
bool tu_hex_decode(const char *hex, size_t n, unsigned char *out, size_t max, size_t *len)
    __attribute__((warn_unused_result));

/* Writes len bytes as 2 * len lowercase hex digits and a NUL to out (2 * len + 1 bytes). */
void tu_hex_encode(const unsigned char *data, size_t len, char *out);

/* Parses a Unix time in seconds: decimal digits only (no sign, no space), at most
 * TU_UNIX_TIME_MAX. */
bool tu_parse_unix_time(const char *text, time_t *out) __attribute__((warn_unused_result));

#endif
