/* Unit tests of server/operator/migration_plist.c: a binary check-in plist sent to /migration
 * written again as XML, then read by the check-in parser as any device body. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <plist/plist.h>
#include <stdlib.h>
#include <string.h>

#include "mdm_message.h"
#include "migration_plist.h"

/* root as a binary plist; the caller frees *bin with free(). */
static void to_bin(plist_t root, char **bin, uint32_t *len)
{
    char *out = NULL;
    plist_to_bin(root, &out, len);
    assert_non_null(out);
    *bin = malloc(*len);
    assert_non_null(*bin);
    memcpy(*bin, out, *len);
    plist_to_bin_free(out);
}

static plist_t authenticate(void)
{
    plist_t d = plist_new_dict();
    plist_dict_set_item(d, "MessageType", plist_new_string("Authenticate"));
    plist_dict_set_item(d, "UDID", plist_new_string("00008110-000A1B2C3D4E5F60"));
    plist_dict_set_item(d, "Topic", plist_new_string("com.apple.mgmt.External.test"));
    plist_dict_set_item(d, "SerialNumber", plist_new_string("F4GXK0ABCD12"));
    return d;
}

static void test_binary_authenticate_parses(void **state)
{
    plist_t root = authenticate();
    char *bin, *xml;
    uint32_t bin_len;
    size_t xml_len;
    to_bin(root, &bin, &bin_len);
    plist_free(root);
    assert_true(migration_plist_is_binary(bin, bin_len));
    assert_true(migration_plist_to_xml(bin, bin_len, &xml, &xml_len));
    assert_int_equal(strlen(xml), xml_len);
    struct mdm_message msg;
    const char *field;
    assert_int_equal(mdm_message_parse(xml, xml_len, MDM_CHANNEL_CHECKIN, &msg, &field),
                     MDM_PARSE_OK);
    assert_int_equal(msg.kind, MDM_AUTHENTICATE);
    assert_string_equal(msg.udid, "00008110-000A1B2C3D4E5F60");
    assert_string_equal(msg.serial_number, "F4GXK0ABCD12");
    mdm_message_clear(&msg);
    free(xml);
    free(bin);
}

static void test_not_binary_or_broken(void **state)
{
    char *xml = (char *)1;
    size_t xml_len = 1;
    static const char text[] = "<?xml version=\"1.0\"?><plist><dict/></plist>";
    assert_false(migration_plist_is_binary(text, sizeof(text) - 1));
    assert_false(migration_plist_to_xml(text, sizeof(text) - 1, &xml, &xml_len));
    assert_null(xml);
    assert_int_equal(xml_len, 0);
    static const char magic_only[] = "bplist00";
    assert_false(migration_plist_to_xml(magic_only, 8, &xml, &xml_len));
    assert_false(migration_plist_to_xml(magic_only, 5, &xml, &xml_len));
    char zeros[64] = "bplist00";
    assert_false(migration_plist_to_xml(zeros, sizeof(zeros), &xml, &xml_len));
    assert_null(xml);
    /* A real one cut short. */
    plist_t root = authenticate();
    char *bin;
    uint32_t bin_len;
    to_bin(root, &bin, &bin_len);
    plist_free(root);
    assert_false(migration_plist_to_xml(bin, bin_len - 10, &xml, &xml_len));
    free(bin);
}

/* Nesting a binary plist allows is refused by the parser's depth check once it is XML. */
static void test_deep_binary_refused_by_the_parser(void **state)
{
    plist_t root = authenticate();
    plist_t inner = plist_new_array();
    plist_t top = inner;
    for (int i = 0; i < MDM_MAX_DEPTH + 10; i++) {
        plist_t next = plist_new_array();
        plist_array_append_item(inner, next);
        inner = next;
    }
    plist_dict_set_item(root, "Deep", top);
    char *bin, *xml;
    uint32_t bin_len;
    size_t xml_len;
    to_bin(root, &bin, &bin_len);
    plist_free(root);
    if (migration_plist_to_xml(bin, bin_len, &xml, &xml_len)) {
        struct mdm_message msg;
        const char *field;
        assert_int_equal(mdm_message_parse(xml, xml_len, MDM_CHANNEL_CHECKIN, &msg, &field),
                         MDM_PARSE_TOO_DEEP);
        free(xml);
    }
    free(bin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_authenticate_parses),
        cmocka_unit_test(test_not_binary_or_broken),
        cmocka_unit_test(test_deep_binary_refused_by_the_parser),
    };
    return cmocka_run_group_tests_name("migration_plist", tests, NULL, NULL);
}
