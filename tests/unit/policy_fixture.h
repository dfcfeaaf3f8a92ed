/*
 * policy_fixture: what the unit tests of server/trust/policy.c (tests/unit/test_policy_*.c, one
 * cmocka program per concern: parsing the policy.* keys, the serial list files, the decision)
 * share.
 *
 * NOW, the time every decision is taken at; good_facts(), a device every policy of these tests
 * admits, and plain_policy(), a policy "web" that requires a verified attestation and nothing
 * else; the helpers that parse items that must be accepted or refused, and judge a device and
 * check the reasons given.
 *
 * The helpers keep the short names the tests were written with (parse_ok, find, judge,
 * expect_reasons, ...): they are the tests' vocabulary and live only in these programs. They fail
 * the running test (cmocka) instead of returning errors. Ownership: struct trust_policies filled
 * by parse_ok() are the caller's, to trust_policies_clear(); the rest borrow.
 */
#ifndef VOUCH_POLICY_FIXTURE_H
#define VOUCH_POLICY_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

#define NOW 1800000000
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Parses items (line numbers as given) and expects success. */
void parse_ok(const struct trust_policy_item *items, size_t count, struct trust_policies *out);

/* Parses items and expects failure with exactly want. */
void parse_fails(const struct trust_policy_item *items, size_t count, const char *want);

/* One item at line 7: the error that follows. */
void one_item_fails(const char *key, const char *value, const char *why);

/* The policy of that name in p (NULL: none). */
const struct trust_policy *find(const struct trust_policies *p, const char *name);

/* A device that every policy of these tests admits. */
struct trust_facts good_facts(void);

/* A policy "web" requiring a verified attestation, nothing else. */
struct trust_policy plain_policy(void);

/* Expects exactly the reasons given (terminated by -1), in that order. */
void expect_reasons(const struct trust_decision *d, ...);

/* trust_evaluate() of f under p (the decision filled with garbage first). */
struct trust_decision judge(const struct trust_policy *p, const struct trust_facts *f);

/* One reason alone: the good device, changed by one thing. */
void expect_only(const struct trust_policy *p, const struct trust_facts *f, enum trust_reason r);

#endif
