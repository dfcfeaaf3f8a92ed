/*
 * mdm_message_fixture: what the unit tests of server/device/mdm_message.c
 * (tests/unit/test_mdm_message_*.c, one cmocka program per concern) share: the plist text macros
 * and ids the bodies are written with, a growing text buffer, the peers' captured plists of
 * tests/testdata/peer-plists/, and the helpers that parse a body that must be accepted or refused.
 *
 * The helpers keep the short names the tests were written with (buf_*, parse_ok, parse_fail, ...):
 * they are the tests' vocabulary and live only in these programs. They fail the running test
 * (cmocka) instead of returning errors. Ownership: a struct buf's data and read_peer_file()'s text
 * are malloc()ed, freed by the caller; a message filled by parse_ok*() is the caller's, to
 * mdm_message_clear().
 */
#ifndef VOUCH_MDM_MESSAGE_FIXTURE_H
#define VOUCH_MDM_MESSAGE_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mdm_message.h"

/* The tests run with the repository root as working directory. */
#define PEER_DIR "tests/testdata/peer-plists/"

#define PL_HEAD                                                                                    \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                                 \
    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "                                      \
    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"                                        \
    "<plist version=\"1.0\">\n<dict>\n"
#define PL_TAIL "</dict>\n</plist>\n"
#define KS(k, v) "\t<key>" k "</key>\n\t<string>" v "</string>\n"

#define TOPIC "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9"
#define UDID1 "66ADE930-5FDF-5EC4-8429-15640684C489"

/* A NUL-terminated text that grows as it is written ({0} is empty). */
struct buf {
    char *data;
    size_t len, cap;
};

/* buf_add() appends n bytes of s, buf_puts() the string s, buf_repeat() s `times` times. */
void buf_add(struct buf *b, const char *s, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_repeat(struct buf *b, const char *s, size_t times);

/* The bytes of PEER_DIR name (malloc()ed, NUL-terminated), their count in *len. */
char *read_peer_file(const char *name, size_t *len);

/* Parses a body that must be accepted. The caller clears msg. */
void parse_ok_len(const char *body, size_t len, enum mdm_channel channel, struct mdm_message *msg);
void parse_ok(const char *body, enum mdm_channel channel, struct mdm_message *msg);

/* Parses a body that must be refused with `expected`; `field` is the key that must be named (NULL:
 * none). The message must be left cleared. */
void parse_fail_len(const char *body, size_t len, enum mdm_channel channel,
                    enum mdm_parse_error expected, const char *expected_field);
void parse_fail(const char *body, enum mdm_channel channel, enum mdm_parse_error expected,
                const char *expected_field);

#endif
