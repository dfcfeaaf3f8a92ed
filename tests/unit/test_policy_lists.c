/* Unit tests of server/trust/policy.c, the serial list files (written to a temporary directory):
 * how they are read (sorted, upper case, comments and blank lines skipped), their errors and
 * their bounds, and the decision on the lists read. The helpers are in policy_fixture.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_fixture.h"
#include "tu_file.h"

/* ---- serial lists ---- */

static char dir[64];

static int make_dir(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_policy.XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int remove_dir(void **state)
{
    static const char *const names[] = {"deny.txt", "allow.txt", "bad.txt",  "long.txt",
                                        "many.txt", "big.txt",   "empty.txt"};
    for (size_t i = 0; i < COUNT(names); i++) {
        char path[128];
        if (tu_path_join(path, sizeof(path), dir, names[i]))
            unlink(path);
    }
    return rmdir(dir) == 0 ? 0 : -1;
}

/* Writes text to DIR/name; path receives the file's path. */
static void write_list(const char *name, const char *text, size_t len, char *path, size_t size)
{
    char err[256];
    assert_true(tu_path_join(path, size, dir, name));
    if (!tu_file_write_atomic(path, text, len, 0600, err, sizeof(err)))
        fail_msg("%s", err);
}

/* A policy "web" whose deny and allow lists are the files at the given paths (NULL: none). */
static void policies_with_lists(const char *deny, const char *allow, struct trust_policies *ps)
{
    struct trust_policy_item items[3] = {{"policy.web.require", "verified", 1}};
    size_t n = 1;
    if (deny != NULL)
        items[n++] = (struct trust_policy_item){"policy.web.deny_serials", deny, 2};
    if (allow != NULL)
        items[n++] = (struct trust_policy_item){"policy.web.allow_serials", allow, 3};
    parse_ok(items, n, ps);
}

static void load_fails(const char *deny, const char *want)
{
    struct trust_policies ps;
    policies_with_lists(deny, NULL, &ps);
    char err[512] = "";
    assert_false(trust_policies_load_lists(&ps, err, sizeof(err)));
    assert_string_equal(err, want);
    trust_policies_clear(&ps);
}

static void test_lists_load_sorted_upper_case(void **state)
{
    static const char deny_text[] = "# lost in March\n"
                                    "  f4gxk0abcd12 \r\n"
                                    "\n"
                                    "\t\n"
                                    "C02ABC\n"
                                    "   # indented comment\n"
                                    "b1"; /* no final newline */
    static const char allow_text[] = "DMPXY123\nF4GXK0ABCD12\nf4gxk0abcd12\n";
    char deny[128], allow[128];
    write_list("deny.txt", deny_text, strlen(deny_text), deny, sizeof(deny));
    write_list("allow.txt", allow_text, strlen(allow_text), allow, sizeof(allow));
    struct trust_policies ps;
    policies_with_lists(deny, allow, &ps);
    char err[256];
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    const struct trust_policy *web = find(&ps, "web");
    assert_int_equal(web->deny_count, 3);
    assert_string_equal(web->deny_serials[0], "B1");
    assert_string_equal(web->deny_serials[1], "C02ABC");
    assert_string_equal(web->deny_serials[2], "F4GXK0ABCD12");
    assert_int_equal(web->allow_count, 3);
    assert_string_equal(web->allow_serials[0], "DMPXY123");
    assert_string_equal(web->allow_serials[1], "F4GXK0ABCD12");
    assert_string_equal(web->allow_serials[2], "F4GXK0ABCD12");
    assert_int_equal(find(&ps, "default")->deny_count, 0);

    /* The decision looks them up in any case. */
    struct trust_facts f = good_facts();
    f.serial_number = "dmpxy123";
    struct trust_decision d = judge(web, &f);
    expect_reasons(&d, -1);
    f.serial_number = "zz9";
    d = judge(web, &f);
    expect_reasons(&d, TRUST_SERIAL_NOT_ALLOWED, -1);
    f.serial_number = "c02abc";
    d = judge(web, &f);
    expect_reasons(&d, TRUST_SERIAL_DENIED, TRUST_SERIAL_NOT_ALLOWED, -1);
    f.serial_number = "f4gXK0abcd12";
    d = judge(web, &f);
    expect_reasons(&d, TRUST_SERIAL_DENIED, -1);

    /* Loading again (a reload) replaces the lists. */
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    assert_int_equal(find(&ps, "web")->deny_count, 3);
    trust_policies_clear(&ps);
}

static void test_lists_empty_allow_admits_nobody(void **state)
{
    char allow[128];
    write_list("empty.txt", "# nobody yet\n\n", 14, allow, sizeof(allow));
    struct trust_policies ps;
    policies_with_lists(NULL, allow, &ps);
    char err[256];
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    const struct trust_policy *web = find(&ps, "web");
    assert_int_equal(web->allow_count, 0);
    struct trust_facts f = good_facts();
    expect_only(web, &f, TRUST_SERIAL_NOT_ALLOWED);
    trust_policies_clear(&ps);
}

static void test_lists_errors(void **state)
{
    char path[128], want[512];

    assert_true(tu_path_join(path, sizeof(path), dir, "absent.txt"));
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
    load_fails(path, want);

    snprintf(want, sizeof(want), "%s: cannot read: not a regular file", dir);
    load_fails(dir, want);

    static const char bad[] = "# ok\nABC123\nABC 123\n";
    write_list("bad.txt", bad, strlen(bad), path, sizeof(path));
    snprintf(want, sizeof(want),
             "%s line 3: not a serial number (letters, digits, '-', '_' or '.'; one a line)", path);
    load_fails(path, want);

    static const char nul[] = "ABC\n\nAB\0C\n";
    write_list("bad.txt", nul, sizeof(nul) - 1, path, sizeof(path));
    snprintf(want, sizeof(want),
             "%s line 3: not a serial number (letters, digits, '-', '_' or '.'; one a line)", path);
    load_fails(path, want);

    char long_line[80];
    memset(long_line, 'A', 65);
    long_line[65] = '\n';
    write_list("long.txt", long_line, 66, path, sizeof(path));
    snprintf(want, sizeof(want), "%s line 1: serial number longer than 64 characters", path);
    load_fails(path, want);
    write_list("long.txt", long_line + 1, 65, path, sizeof(path)); /* 64: fine */
    struct trust_policies ps;
    policies_with_lists(path, NULL, &ps);
    char err[256];
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    trust_policies_clear(&ps);
}

static void test_lists_bounds(void **state)
{
    /* TRUST_MAX_SERIALS serials, then one more. */
    size_t line_len = 8;
    size_t size = (TRUST_MAX_SERIALS + 2) * line_len + 16;
    char *text = malloc(size);
    assert_non_null(text);
    size_t len = (size_t)snprintf(text, size, "# many\n");
    for (int i = 0; i < TRUST_MAX_SERIALS; i++)
        len += (size_t)snprintf(text + len, size - len, "S%06d\n", i);
    char path[128];
    write_list("many.txt", text, len, path, sizeof(path));
    struct trust_policies ps;
    policies_with_lists(path, NULL, &ps);
    char err[256];
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    const struct trust_policy *web = find(&ps, "web");
    assert_int_equal(web->deny_count, TRUST_MAX_SERIALS);
    struct trust_facts f = good_facts();
    f.serial_number = "s099999";
    expect_only(web, &f, TRUST_SERIAL_DENIED);
    f.serial_number = "S100000";
    struct trust_decision d = judge(web, &f);
    expect_reasons(&d, -1);
    trust_policies_clear(&ps);

    len += (size_t)snprintf(text + len, size - len, "\nS100000\n");
    write_list("many.txt", text, len, path, sizeof(path));
    char want[256];
    snprintf(want, sizeof(want), "%s line %d: more than %d serial numbers", path,
             TRUST_MAX_SERIALS + 3, TRUST_MAX_SERIALS);
    load_fails(path, want);
    free(text);

    /* A file over 8 MiB is refused before it is parsed (a sparse one will do). */
    assert_true(tu_path_join(path, sizeof(path), dir, "big.txt"));
    FILE *big = fopen(path, "w");
    assert_non_null(big);
    assert_int_equal(ftruncate(fileno(big), 8 * 1024 * 1024 + 1), 0);
    assert_int_equal(fclose(big), 0);
    snprintf(want, sizeof(want), "%s: larger than %u bytes", path, 8u * 1024 * 1024);
    load_fails(path, want);
}
int main(void)
{
    const struct CMUnitTest lists[] = {
        cmocka_unit_test(test_lists_load_sorted_upper_case),
        cmocka_unit_test(test_lists_empty_allow_admits_nobody),
        cmocka_unit_test(test_lists_errors),
        cmocka_unit_test(test_lists_bounds),
    };
    int failed = cmocka_run_group_tests_name("policy lists", lists, make_dir, remove_dir);
    return failed == 0 ? 0 : 1;
}
