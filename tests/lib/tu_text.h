/*
 * tu_text: the small text codec the tests and the tools share (apns-standin, vouch-sim,
 * fake-apple): Unix times on a command line. Pure: no I/O, no allocation. (Hex digits and strings
 * are lib/hex.h's, which production code uses too.)
 */
#ifndef VOUCH_TU_TEXT_H
#define VOUCH_TU_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The latest Unix time tu_parse_unix_time() accepts: 9999-12-31T23:59:59Z. */
#define TU_UNIX_TIME_MAX 253402300799LL

/* Parses a Unix time in seconds: decimal digits only (no sign, no space), at most
 * TU_UNIX_TIME_MAX. */
bool tu_parse_unix_time(const char *text, time_t *out) __attribute__((warn_unused_result));

#endif
