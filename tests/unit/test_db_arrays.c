/* Unit tests of db_binary_array (db/queries.c): arrays in PostgreSQL's binary format (what
 * array_recv reads), the parameters of vouch_report_answers. The layout: dimensions (1), a
 * has-NULLs flag, the element type's OID, the dimension's size and lower bound (1), then each
 * element as a 4-byte big-endian length (-1: NULL) and its bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "queries.h"

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_text_items(void **state)
{
    (void)state;
    const void *items[] = {"UDID-1", "ab"};
    const size_t lens[] = {6, 2};
    size_t len;
    uint8_t *a = db_binary_array(25, items, lens, 2, &len);
    assert_int_equal(len, 20 + 4 + 6 + 4 + 2);
    assert_int_equal(be32_at(a), 1);      /* dimensions */
    assert_int_equal(be32_at(a + 4), 0);  /* no NULLs */
    assert_int_equal(be32_at(a + 8), 25); /* text */
    assert_int_equal(be32_at(a + 12), 2); /* items */
    assert_int_equal(be32_at(a + 16), 1); /* lower bound */
    assert_int_equal(be32_at(a + 20), 6);
    assert_memory_equal(a + 24, "UDID-1", 6);
    assert_int_equal(be32_at(a + 30), 2);
    assert_memory_equal(a + 34, "ab", 2);
    free(a);
}

static void test_bytes_with_a_null_and_an_empty_item(void **state)
{
    (void)state;
    const uint8_t zeros[3] = {0, 0, 0}; /* bytes, not a string: NULs kept */
    const void *items[] = {zeros, NULL, ""};
    const size_t lens[] = {3, 99, 0};
    size_t len;
    uint8_t *a = db_binary_array(17, items, lens, 3, &len);
    assert_int_equal(len, 20 + 4 + 3 + 4 + 4);
    assert_int_equal(be32_at(a + 4), 1);  /* has NULLs */
    assert_int_equal(be32_at(a + 8), 17); /* bytea */
    assert_int_equal(be32_at(a + 12), 3);
    assert_int_equal(be32_at(a + 20), 3);
    assert_memory_equal(a + 24, zeros, 3);
    assert_int_equal(be32_at(a + 27), UINT32_MAX); /* -1: NULL, no bytes (its length ignored) */
    assert_int_equal(be32_at(a + 31), 0);          /* empty, not NULL */
    free(a);
}

static void test_no_items(void **state)
{
    (void)state;
    size_t len;
    uint8_t *a = db_binary_array(25, NULL, NULL, 0, &len);
    assert_int_equal(len, 20);
    assert_int_equal(be32_at(a), 1);
    assert_int_equal(be32_at(a + 12), 0); /* an empty array */
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_items),
        cmocka_unit_test(test_bytes_with_a_null_and_an_empty_item),
        cmocka_unit_test(test_no_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
