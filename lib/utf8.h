/*
 * utf8: the one strict UTF-8 decoder step the parsers share (plist messages, plist to JSON).
 *
 * Strict as RFC 3629 says: no overlong forms, no surrogates, nothing past U+10FFFF. Pure, no
 * allocation; the caller owns the bytes.
 */
#ifndef VOUCH_UTF8_H
#define VOUCH_UTF8_H

#include <stddef.h>

/* The length (1 to 4) of the valid UTF-8 sequence that starts s[0..len), len > 0; 0 when it is
 * not one. A NUL byte is a valid sequence of 1: callers that refuse it check it themselves. */
size_t utf8_sequence_length(const unsigned char *s, size_t len);

#endif
