/*
 * config_fixture: what the unit tests of server/config.c (tests/unit/test_config_*.c, one cmocka
 * program per concern) share: TOKEN, an admin_token of the shortest accepted length, and the
 * helpers that parse a configuration text (and environment) that must be accepted or refused.
 *
 * The helpers keep the short names the tests were written with (parse_ok, parse_fail, fail_text,
 * fail_env): they are the tests' vocabulary and live only in these programs. They fail the running
 * test (cmocka) instead of returning errors. Ownership: a struct config filled by parse_ok() is the
 * caller's, to config_clear().
 */
#ifndef VOUCH_CONFIG_FIXTURE_H
#define VOUCH_CONFIG_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"

/* The shortest admin_token accepted (CONFIG_MIN_ADMIN_TOKEN characters). */
#define TOKEN "0123456789abcdef0123456789abcdef"

/* Parses text (and env) that must be accepted. */
void parse_ok(struct config *cfg, const char *text, char *const *envp);

/* Parses text (and env) that must be refused; every substring in `needles` (NULL-terminated)
 * must appear in the message, and the struct must be left cleared. */
void parse_fail(const char *text, size_t text_len, char *const *envp, const char *const *needles);

/* parse_fail() of text (no environment), or of envp (no file): the message must name n1 and n2. */
void fail_text(const char *text, const char *n1, const char *n2);
void fail_env(char *const *envp, const char *n1, const char *n2);

#endif
