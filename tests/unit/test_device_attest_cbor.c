/* Unit tests of server/attestation/device_attest.c, the attObj's shape: its format, where the
 * attestation is (or is not), the x5c items, the maps, CBOR that libcbor's builder will not write
 * (written here byte by byte), and the base64url text around it. Leaves come from the stand-in
 * Apple PKI with the freshness code SHA-256 of the challenge token; what a verified answer holds
 * and why a leaf or chain is refused are in test_device_attest_verify.c; the helpers in
 * device_attest_fixture.c.
 *
 * Every verdict is taken twice, on a verifier whose cache already holds the stand-in sub CA and
 * on a new one (full path validation), and both must agree (verify_both()). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cbor.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "device_attest.h"
#include "device_attest_fixture.h"
#include "fake_apple.h"

/* ---- the attObj's shape ---- */

static void test_format(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    expect_item(att_obj("packed", att_stmt(x5c_of(chain.der, chain.len, chain.count))),
                DEVICE_ATTEST_UNSUPPORTED_FORMAT);
    expect_item(att_obj("Apple", att_stmt(x5c_of(chain.der, chain.len, chain.count))),
                DEVICE_ATTEST_UNSUPPORTED_FORMAT);
    expect_item(att_obj("apple-appattest", att_stmt(NULL)), DEVICE_ATTEST_UNSUPPORTED_FORMAT);
    /* No fmt, or one that is not text. */
    expect_item(att_obj(NULL, att_stmt(x5c_of(chain.der, chain.len, chain.count))),
                DEVICE_ATTEST_MALFORMED);
    cbor_item_t *obj = cbor_new_definite_map(2);
    map_put(obj, "fmt", cbor_build_bytestring((const uint8_t *)"apple", 5));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, chain.count)));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);
    fake_chain_free(&chain);
}

static void test_no_attestation(void **state)
{
    (void)state;
    expect_item(att_obj("apple", att_stmt(NULL)), DEVICE_ATTEST_NO_ATTESTATION);
    expect_item(att_obj("apple", att_stmt(cbor_new_definite_array(0))),
                DEVICE_ATTEST_NO_ATTESTATION);
    expect_item(att_obj("apple", NULL), DEVICE_ATTEST_NO_ATTESTATION);
    /* An attStmt with other members only. */
    cbor_item_t *stmt = cbor_new_definite_map(1);
    map_put(stmt, "alg", cbor_build_negint8(6));
    expect_item(att_obj("apple", stmt), DEVICE_ATTEST_NO_ATTESTATION);
}

static void test_x5c_items(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    uint8_t *der[ATTEST_MAX_CERTS + 1];
    size_t len[ATTEST_MAX_CERTS + 1];

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);

    /* A leaf with a trailing byte, then a sub CA with one. */
    for (size_t k = 0; k < 2; k++) {
        uint8_t *longer = malloc(chain.len[k] + 1);
        assert_non_null(longer);
        memcpy(longer, chain.der[k], chain.len[k]);
        longer[chain.len[k]] = 0;
        der[0] = chain.der[0];
        der[1] = chain.der[1];
        len[0] = chain.len[0];
        len[1] = chain.len[1];
        der[k] = longer;
        len[k]++;
        expect_item(att_obj("apple", att_stmt(x5c_of(der, len, 2))), DEVICE_ATTEST_MALFORMED);
        free(longer);
    }

    /* One more item than ATTEST_MAX_CERTS. */
    for (size_t i = 0; i <= ATTEST_MAX_CERTS; i++) {
        der[i] = chain.der[i == 0 ? 0 : 1];
        len[i] = chain.len[i == 0 ? 0 : 1];
    }
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, ATTEST_MAX_CERTS + 1))),
                DEVICE_ATTEST_MALFORMED);
    /* ATTEST_MAX_CERTS is fine (the sub CA repeated). */
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, ATTEST_MAX_CERTS))), DEVICE_ATTEST_OK);

    /* An empty item, an item over ATTEST_MAX_CERT_BYTES, a garbage intermediate. */
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    uint8_t *big = calloc(1, ATTEST_MAX_CERT_BYTES + 1);
    assert_non_null(big);
    der[0] = chain.der[0];
    len[0] = chain.len[0];
    der[1] = big;
    len[1] = 0;
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, 2))), DEVICE_ATTEST_MALFORMED);
    len[1] = ATTEST_MAX_CERT_BYTES + 1;
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, 2))), DEVICE_ATTEST_MALFORMED);
    memcpy(big, junk, sizeof(junk));
    len[1] = sizeof(junk);
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, 2))), DEVICE_ATTEST_MALFORMED);
    free(big);

    /* Items of the wrong type: text, a tagged byte string; x5c not an array. */
    cbor_item_t *x5c = cbor_new_definite_array(2);
    assert_true(cbor_array_push(x5c, cbor_move(cbor_build_bytestring(chain.der[0], chain.len[0]))));
    assert_true(cbor_array_push(x5c, cbor_move(cbor_build_string("Apple Sub CA 1"))));
    expect_item(att_obj("apple", att_stmt(x5c)), DEVICE_ATTEST_MALFORMED);
    x5c = cbor_new_definite_array(2);
    assert_true(cbor_array_push(
        x5c, cbor_move(cbor_build_tag(
                 24, cbor_move(cbor_build_bytestring(chain.der[0], chain.len[0]))))));
    assert_true(cbor_array_push(x5c, cbor_move(cbor_build_bytestring(chain.der[1], chain.len[1]))));
    expect_item(att_obj("apple", att_stmt(x5c)), DEVICE_ATTEST_MALFORMED);
    expect_item(att_obj("apple", att_stmt(cbor_build_bytestring(chain.der[0], chain.len[0]))),
                DEVICE_ATTEST_MALFORMED);
    /* attStmt not a map. */
    expect_item(att_obj("apple", x5c_of(chain.der, chain.len, chain.count)),
                DEVICE_ATTEST_MALFORMED);
    fake_chain_free(&chain);
}

static void test_maps(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);

    /* The top level an array, a text string. */
    cbor_item_t *array = cbor_new_definite_array(2);
    assert_true(cbor_array_push(array, cbor_move(cbor_build_string("apple"))));
    assert_true(cbor_array_push(array, cbor_move(att_stmt(x5c_of(chain.der, chain.len, 2)))));
    expect_item(array, DEVICE_ATTEST_MALFORMED);
    expect_item(cbor_build_string("apple"), DEVICE_ATTEST_MALFORMED);

    /* A key stated twice, at the top and in attStmt. */
    cbor_item_t *obj = cbor_new_definite_map(3);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
    map_put(obj, "fmt", cbor_build_string("apple"));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);
    obj = cbor_new_definite_map(3);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
    map_put(obj, "attStmt", att_stmt(NULL));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);
    cbor_item_t *stmt = cbor_new_definite_map(2);
    map_put(stmt, "x5c", x5c_of(chain.der, chain.len, 2));
    map_put(stmt, "x5c", x5c_of(chain.der, chain.len, 1));
    expect_item(att_obj("apple", stmt), DEVICE_ATTEST_MALFORMED);
    /* Even a duplicate of a member nobody reads. */
    obj = cbor_new_definite_map(4);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
    map_put(obj, "authData", cbor_build_bytestring((const uint8_t *)"a", 1));
    map_put(obj, "authData", cbor_build_bytestring((const uint8_t *)"b", 1));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);

    /* A key that is not text, in each map. */
    obj = cbor_new_definite_map(3);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
    assert_true(cbor_map_add(obj, (struct cbor_pair){.key = cbor_move(cbor_build_uint8(1)),
                                                     .value = cbor_move(cbor_build_uint8(2))}));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);
    stmt = cbor_new_definite_map(2);
    map_put(stmt, "x5c", x5c_of(chain.der, chain.len, 2));
    assert_true(cbor_map_add(
        stmt, (struct cbor_pair){.key = cbor_move(cbor_build_bytestring((const uint8_t *)"x5c", 3)),
                                 .value = cbor_move(cbor_build_uint8(2))}));
    expect_item(att_obj("apple", stmt), DEVICE_ATTEST_MALFORMED);
    fake_chain_free(&chain);
}

/* What libcbor's builder will not write. */
static void test_raw_cbor(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    size_t len;

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    uint8_t *good = serialize(att_obj("apple", att_stmt(x5c_of(chain.der, chain.len, 2))), &len);
    expect_bytes(good, len, DEVICE_ATTEST_OK);

    /* Cut short anywhere, or followed by anything. */
    static const size_t cuts[] = {1, 2, 5, 20, 100};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
        expect_bytes(good, len - cuts[i], DEVICE_ATTEST_MALFORMED);
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, good, len);
    longer[len] = 0x00;
    expect_bytes(longer, len + 1, DEVICE_ATTEST_MALFORMED);
    longer[len] = 0xa0; /* a second map */
    expect_bytes(longer, len + 1, DEVICE_ATTEST_MALFORMED);
    free(longer);

    /* The same object with indefinite lengths (refused, see device_attest.c): the top map. */
    uint8_t *indef = malloc(len + 1);
    assert_non_null(indef);
    assert_int_equal(good[0], 0xa2);
    indef[0] = 0xbf;
    memcpy(indef + 1, good + 1, len - 1);
    indef[len] = 0xff;
    expect_bytes(indef, len + 1, DEVICE_ATTEST_MALFORMED);
    free(indef);
    free(good);

    /* Garbage, and headers that declare more than any input holds. */
    static const uint8_t garbage[] = {'n', 'o', 't', ' ', 'C', 'B', 'O', 'R', '!'};
    static const uint8_t huge_array[] = {0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t huge_map[] = {0xbb, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00};
    static const uint8_t huge_bytes[] = {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t reserved[] = {0xa1, 0x63, 'f', 'm', 't', 0x1c};
    static const uint8_t lone_break[] = {0xff};
    static const uint8_t empty_map[] = {0xa0};
    expect_bytes(garbage, sizeof(garbage), DEVICE_ATTEST_MALFORMED);
    expect_bytes(huge_array, sizeof(huge_array), DEVICE_ATTEST_MALFORMED);
    expect_bytes(huge_map, sizeof(huge_map), DEVICE_ATTEST_MALFORMED);
    expect_bytes(huge_bytes, sizeof(huge_bytes), DEVICE_ATTEST_MALFORMED);
    expect_bytes(reserved, sizeof(reserved), DEVICE_ATTEST_MALFORMED);
    expect_bytes(lone_break, sizeof(lone_break), DEVICE_ATTEST_MALFORMED);
    expect_bytes(empty_map, sizeof(empty_map), DEVICE_ATTEST_MALFORMED);

    /* {"fmt": "apple", "x": [[[...[0]...]]]}: the map and the arrays in an ignored member, up to
     * DEVICE_ATTEST_MAX_DEPTH containers, then one more. Within bounds, the object reads on to
     * "no attestation". */
    static const uint8_t head[] = {0xa2, 0x63, 'f', 'm', 't',  0x65, 'a',
                                   'p',  'p',  'l', 'e', 0x61, 'x'};
    uint8_t deep[sizeof(head) + DEVICE_ATTEST_MAX_DEPTH + 1];
    for (size_t arrays = DEVICE_ATTEST_MAX_DEPTH - 1; arrays <= DEVICE_ATTEST_MAX_DEPTH; arrays++) {
        size_t n = sizeof(head);
        memcpy(deep, head, sizeof(head));
        memset(deep + n, 0x81, arrays);
        n += arrays;
        deep[n++] = 0x00;
        expect_bytes(deep, n,
                     arrays < DEVICE_ATTEST_MAX_DEPTH ? DEVICE_ATTEST_NO_ATTESTATION
                                                      : DEVICE_ATTEST_MALFORMED);
    }

    /* DEVICE_ATTEST_MAX_ITEMS data items, then one more: the 4 of head, an array, zeros. */
    uint8_t many[sizeof(head) + 2 + DEVICE_ATTEST_MAX_ITEMS];
    for (size_t zeros = DEVICE_ATTEST_MAX_ITEMS - 5; zeros <= DEVICE_ATTEST_MAX_ITEMS - 4;
         zeros++) {
        size_t n = sizeof(head);
        memcpy(many, head, sizeof(head));
        many[n++] = 0x98;
        many[n++] = (uint8_t)zeros;
        memset(many + n, 0x00, zeros);
        n += zeros;
        expect_bytes(many, n,
                     zeros + 5 <= DEVICE_ATTEST_MAX_ITEMS ? DEVICE_ATTEST_NO_ATTESTATION
                                                          : DEVICE_ATTEST_MALFORMED);
    }
    fake_chain_free(&chain);
}

static void test_base64url(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    char *text = attobj_of(&chain);
    size_t len = strlen(text);
    char *buf = malloc(len + 8);
    assert_non_null(buf);
    expect_text(text, DEVICE_ATTEST_OK);

    /* Padding: make the length one that base64 would pad, then pad it. */
    char *padded_text = NULL;
    {
        /* Whatever the object's length, one of "", "=", "==" is its padding; add one more
         * byte through an ignored member until some padding is due. */
        uint8_t filler[3] = {0};
        for (size_t extra = 0; extra < 3 && padded_text == NULL; extra++) {
            cbor_item_t *obj = cbor_new_definite_map(3);
            map_put(obj, "fmt", cbor_build_string("apple"));
            map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
            map_put(obj, "authData", cbor_build_bytestring(filler, extra + 1));
            char *t = encode(obj);
            if (strlen(t) % 4 != 0)
                padded_text = t;
            else
                free(t);
        }
    }
    assert_non_null(padded_text);
    expect_text(padded_text, DEVICE_ATTEST_OK);
    size_t plen = strlen(padded_text);
    char *with_pad = malloc(plen + 3);
    assert_non_null(with_pad);
    memcpy(with_pad, padded_text, plen);
    size_t pads = 4 - plen % 4;
    memset(with_pad + plen, '=', pads);
    with_pad[plen + pads] = '\0';
    expect_text(with_pad, DEVICE_ATTEST_MALFORMED);
    free(with_pad);
    free(padded_text);

    /* Whitespace, a line break, plain base64's '+' and '/', a NUL. */
    static const char bad[] = {' ', '\n', '\r', '\t', '+', '/', '=', '.', '\0'};
    for (size_t i = 0; i < sizeof(bad); i++) {
        memcpy(buf, text, len + 1);
        buf[len / 2] = bad[i];
        struct device_attest_result bad_r;
        verify_both(buf, len, token, NOW, DEVICE_ATTEST_MALFORMED, &bad_r);
        device_attest_clear(&bad_r);
    }
    /* A trailing newline. */
    memcpy(buf, text, len);
    buf[len] = '\n';
    buf[len + 1] = '\0';
    expect_text(buf, DEVICE_ATTEST_MALFORMED);
    /* A length no encoding has (4k + 1), and unused bits that are not zero. */
    struct device_attest_result r;
    verify_both(text, (len - 1) / 4 * 4 + 1, token, NOW, DEVICE_ATTEST_MALFORMED, &r);
    device_attest_clear(&r);
    if (len % 4 != 0) {
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        memcpy(buf, text, len + 1);
        /* The last character carries 2 or 4 unused bits: set the lowest. */
        size_t v = (size_t)(strchr(alphabet, buf[len - 1]) - alphabet);
        buf[len - 1] = alphabet[v | 1];
        expect_text(buf, DEVICE_ATTEST_MALFORMED);
    }

    /* Empty, and over DEVICE_ATTEST_MAX_ATTOBJ. */
    verify_both("", 0, token, NOW, DEVICE_ATTEST_MALFORMED, &r);
    device_attest_clear(&r);
    verify_both(NULL, 0, token, NOW, DEVICE_ATTEST_MALFORMED, &r);
    device_attest_clear(&r);
    char *huge = malloc(DEVICE_ATTEST_MAX_ATTOBJ + 4);
    assert_non_null(huge);
    memset(huge, 'A', DEVICE_ATTEST_MAX_ATTOBJ + 4);
    verify_both(huge, DEVICE_ATTEST_MAX_ATTOBJ + 4, token, NOW, DEVICE_ATTEST_MALFORMED, &r);
    device_attest_clear(&r);
    free(huge);
    free(buf);
    free(text);
    fake_chain_free(&chain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),    cmocka_unit_test(test_no_attestation),
        cmocka_unit_test(test_x5c_items), cmocka_unit_test(test_maps),
        cmocka_unit_test(test_raw_cbor),  cmocka_unit_test(test_base64url),
    };
    return cmocka_run_group_tests(tests, device_attest_fixture_setup,
                                  device_attest_fixture_teardown);
}
