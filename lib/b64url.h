/*
 * b64url: base64url without padding (RFC 4648 §5), as JOSE and WebAuthn write it. The decoder is
 * strict: it refuses padding, whitespace, the '+' and '/' of plain base64, a length no encoding
 * has (4k + 1) and non-zero unused bits in the last character, so that text and bytes match one
 * to one (a signed text cannot be altered into another that decodes the same). Pure.
 */
#ifndef VOUCH_B64URL_H
#define VOUCH_B64URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The encoded length of n bytes (no NUL counted). */
size_t b64url_encoded_len(size_t n);
/* Writes b64url_encoded_len(n) characters and a NUL to dst. */
void b64url_encode(const uint8_t *src, size_t n, char *dst);
/* Decodes src[0..len) into dst, which must hold len * 3 / 4 bytes; false for any text that is
 * not the one encoding of some bytes. */
bool b64url_decode(const char *src, size_t len, uint8_t *dst, size_t *dst_len)
    __attribute__((warn_unused_result));

#endif
