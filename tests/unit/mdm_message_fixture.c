/*
 * mdm_message_fixture: see mdm_message_fixture.h.
 */
#include "mdm_message_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = realloc(b->data, cap);
        assert_non_null(b->data);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_repeat(struct buf *b, const char *s, size_t times)
{
    for (size_t i = 0; i < times; i++)
        buf_puts(b, s);
}

char *read_peer_file(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s%s", PEER_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        print_error("cannot open %s (the tests run from the repository root)\n", path);
    assert_non_null(f);
    struct buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_add(&b, chunk, n);
    fclose(f);
    assert_true(b.len > 0);
    *len = b.len;
    return b.data;
}

static const char *channel_name(enum mdm_channel channel)
{
    return channel == MDM_CHANNEL_CHECKIN ? "check-in" : "report";
}

/* Parses a body that must be accepted. The caller clears msg. */
void parse_ok_len(const char *body, size_t len, enum mdm_channel channel, struct mdm_message *msg)
{
    const char *field = "untouched";
    enum mdm_parse_error e = mdm_message_parse(body, len, channel, msg, &field);
    if (e != MDM_PARSE_OK)
        print_error("%s refused: %s (field %s) for:\n%.*s\n", channel_name(channel),
                    mdm_parse_error_name(e), field ? field : "-", (int)(len > 2000 ? 2000 : len),
                    body);
    assert_int_equal(e, MDM_PARSE_OK);
    assert_null(field);
    assert_non_null(msg->plist);
}

void parse_ok(const char *body, enum mdm_channel channel, struct mdm_message *msg)
{
    parse_ok_len(body, strlen(body), channel, msg);
}

/* Parses a body that must be refused with `expected`; `field` is the key that must be named (NULL:
 * none). The message must be left cleared. */
void parse_fail_len(const char *body, size_t len, enum mdm_channel channel,
                    enum mdm_parse_error expected, const char *expected_field)
{
    struct mdm_message msg;
    memset(&msg, 0xa5, sizeof(msg));
    const char *field = "untouched";
    enum mdm_parse_error e = mdm_message_parse(body, len, channel, &msg, &field);
    if (e != expected)
        print_error("%s: expected %s, got %s (field %s) for:\n%.*s\n", channel_name(channel),
                    mdm_parse_error_name(expected), mdm_parse_error_name(e), field ? field : "-",
                    (int)(len > 2000 ? 2000 : len), body);
    assert_int_equal(e, expected);
    if (expected_field == NULL) {
        assert_null(field);
    } else {
        assert_non_null(field);
        assert_string_equal(field, expected_field);
    }
    assert_null(msg.plist);
    assert_null(msg.udid);
    assert_null(msg.topic);
    assert_null(msg.token);
    assert_null(msg.command_uuid);
    assert_null(msg.message_type);
    assert_null(msg.status_text);
}

void parse_fail(const char *body, enum mdm_channel channel, enum mdm_parse_error expected,
                const char *expected_field)
{
    parse_fail_len(body, strlen(body), channel, expected, expected_field);
}
