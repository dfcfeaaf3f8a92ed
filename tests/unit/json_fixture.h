/*
 * json_fixture: what the unit tests of lib/json.c (tests/unit/test_json_*.c, one cmocka program
 * per concern) share: the limits the tests parse with and the helpers that parse a text that must
 * be valid JSON.
 *
 * The helpers keep the short names the tests were written with (parse, parse_len): they are the
 * tests' vocabulary and live only in these programs. They fail the running test (cmocka) instead
 * of returning errors. Ownership: the document they return is the caller's, to json_doc_free().
 */
#ifndef VOUCH_JSON_FIXTURE_H
#define VOUCH_JSON_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "json.h"

/* 1 MiB, 64 levels, 100,000 values. */
extern const struct json_limits test_limits;

/* Parses len bytes that must be valid JSON (under test_limits). */
struct json_doc *parse_len(const char *text, size_t len);
/* parse_len() of a NUL-terminated text. */
struct json_doc *parse(const char *text);

#endif
