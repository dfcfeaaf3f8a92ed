/* Unit tests of server/device/mdm_message.c, NanoMDM's url_params (mdm_url_params_json: the
 * query string of the URL a device used, read as Go's url.ParseQuery reads it, bounded) and the
 * channel of a body on a URL that takes both check-ins and reports (MDM_CHANNEL_EITHER: a
 * MessageType makes a check-in).
 *
 * Shared helpers: mdm_message_fixture.h. */
#include "mdm_message_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_params(const char *query, const char *json)
{
    char *got = mdm_url_params_json(query);
    const char *shown = query != NULL ? query : "(no query)";
    if (json == NULL) {
        if (got != NULL)
            fail_msg("%s: expected nothing, got %s", shown, got);
        return;
    }
    if (got == NULL)
        fail_msg("%s: expected %s, got nothing", shown, json);
    assert_string_equal(got, json);
    free(got);
}

static void test_url_params(void **state)
{
    expect_params(NULL, NULL);
    expect_params("", NULL);
    expect_params("a=b", "{\"a\":\"b\"}");
    expect_params("group=sales&site=paris", "{\"group\":\"sales\",\"site\":\"paris\"}");
    /* Escapes and '+' decoded; a key without '=' has an empty value; an empty key is a key. */
    expect_params("q=a%20b+c&flag&=x", "{\"q\":\"a b c\",\"flag\":\"\",\"\":\"x\"}");
    expect_params("k%3D1=v%26w", "{\"k=1\":\"v&w\"}");
    /* The first value of a key, as NanoMDM's v[0]. */
    expect_params("a=1&a=2&b=3", "{\"a\":\"1\",\"b\":\"3\"}");
    /* Empty pairs skipped; quotes and controls are escaped in the JSON. */
    expect_params("&&a=%22x%0A&", "{\"a\":\"\\\"x\\n\"}");
    /* UTF-8 is kept. */
    expect_params("name=Z%C3%BCrich", "{\"name\":\"Z\xc3\xbcrich\"}");
}

static void test_url_params_left_out(void **state)
{
    /* A pair with ';' or a bad escape is left out (Go's ParseQuery), the others kept. */
    expect_params("a=1;b=2&c=3", "{\"c\":\"3\"}");
    expect_params("a=%zz&b=%4&c=%&d=1", "{\"d\":\"1\"}");
    expect_params("a%g1=1", NULL);
    /* Not UTF-8, or a NUL byte, after decoding. */
    expect_params("a=%ff&b=%00&c=ok", "{\"c\":\"ok\"}");
    /* Bounds: a key of MDM_MAX_URL_PARAM_KEY bytes and a value of MDM_MAX_URL_PARAM_VALUE are
     * kept; one byte more is too long. */
    char query[MDM_MAX_URL_QUERY + 16], json[MDM_MAX_URL_QUERY + 64];
    memset(query, 'k', MDM_MAX_URL_PARAM_KEY);
    snprintf(query + MDM_MAX_URL_PARAM_KEY, 8, "=v");
    snprintf(json, sizeof(json), "{\"%.*s\":\"v\"}", MDM_MAX_URL_PARAM_KEY, query);
    expect_params(query, json);
    memset(query, 'k', MDM_MAX_URL_PARAM_KEY + 1);
    snprintf(query + MDM_MAX_URL_PARAM_KEY + 1, 8, "=v");
    expect_params(query, NULL);
    query[0] = 'v';
    query[1] = '=';
    memset(query + 2, 'x', MDM_MAX_URL_PARAM_VALUE + 1);
    query[2 + MDM_MAX_URL_PARAM_VALUE + 1] = '\0';
    expect_params(query, NULL);
    query[2 + MDM_MAX_URL_PARAM_VALUE] = '\0';
    char *got = mdm_url_params_json(query);
    assert_non_null(got);
    assert_int_equal(strlen(got), 8 + MDM_MAX_URL_PARAM_VALUE); /* {"v":"x...x"} */
    free(got);
    /* At most MDM_MAX_URL_PARAMS keys: the first ones. */
    size_t used = 0;
    for (int i = 0; i < MDM_MAX_URL_PARAMS + 4; i++)
        used +=
            (size_t)snprintf(query + used, sizeof(query) - used, "%sk%d=%d", i ? "&" : "", i, i);
    got = mdm_url_params_json(query);
    assert_non_null(got);
    char last[32], beyond[32];
    snprintf(last, sizeof(last), "\"k%d\"", MDM_MAX_URL_PARAMS - 1);
    snprintf(beyond, sizeof(beyond), "\"k%d\"", MDM_MAX_URL_PARAMS);
    assert_non_null(strstr(got, last));
    assert_null(strstr(got, beyond));
    free(got);
    /* A query longer than MDM_MAX_URL_QUERY is left out whole. */
    memset(query, 'a', MDM_MAX_URL_QUERY + 1);
    query[1] = '=';
    query[MDM_MAX_URL_QUERY + 1] = '\0';
    expect_params(query, NULL);
    query[MDM_MAX_URL_QUERY] = '\0';
    got = mdm_url_params_json(query);
    assert_null(got); /* one value far over MDM_MAX_URL_PARAM_VALUE: no pair kept */
}

/* On a URL that takes both, the body says which: a MessageType makes a check-in, anything else
 * is read as a report (and refused as one when it is not). */
static void test_either_channel(void **state)
{
    struct mdm_message m;
    parse_ok(PL_HEAD KS("MessageType", "Authenticate") KS("UDID", UDID1) KS("Topic", TOPIC) PL_TAIL,
             MDM_CHANNEL_EITHER, &m);
    assert_int_equal(m.kind, MDM_AUTHENTICATE);
    mdm_message_clear(&m);
    parse_ok(PL_HEAD KS("Status", "Idle") KS("UDID", UDID1) PL_TAIL, MDM_CHANNEL_EITHER, &m);
    assert_int_equal(m.kind, MDM_REPORT);
    assert_int_equal(m.status, MDM_STATUS_IDLE);
    mdm_message_clear(&m);
    parse_ok(PL_HEAD KS("MessageType", "GetBootstrapToken") KS("UDID", UDID1) PL_TAIL,
             MDM_CHANNEL_EITHER, &m);
    assert_int_equal(m.kind, MDM_CHECKIN_UNSUPPORTED);
    assert_string_equal(m.message_type, "GetBootstrapToken");
    mdm_message_clear(&m);
    /* A MessageType wins over a Status. */
    parse_ok(PL_HEAD KS("MessageType", "CheckOut") KS("Status", "Idle") KS("UDID", UDID1) PL_TAIL,
             MDM_CHANNEL_EITHER, &m);
    assert_int_equal(m.kind, MDM_CHECKOUT);
    mdm_message_clear(&m);
    /* Neither: refused as a report without its Status. */
    parse_fail(PL_HEAD KS("UDID", UDID1) PL_TAIL, MDM_CHANNEL_EITHER, MDM_PARSE_MISSING_FIELD,
               "Status");
    parse_fail(PL_HEAD KS("MessageType", "Frobnicate") KS("UDID", UDID1) PL_TAIL,
               MDM_CHANNEL_EITHER, MDM_PARSE_UNKNOWN_TYPE, "MessageType");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_params),
        cmocka_unit_test(test_url_params_left_out),
        cmocka_unit_test(test_either_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
