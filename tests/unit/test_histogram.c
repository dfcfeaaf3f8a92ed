/* Unit tests of lib/histogram.c: which bucket takes a value (Prometheus's le: a value equal to a
 * bound is in that bucket), negative and NaN values, the sum and count, and the text: cumulative
 * buckets up to +Inf equal to the count, with and without a label. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "histogram.h"

static void test_bucket_of(void **state)
{
    (void)state;
    assert_int_equal(histogram_bucket_of(0), 0);
    assert_int_equal(histogram_bucket_of(histogram_bounds[0]), 0);
    assert_int_equal(histogram_bucket_of(0.0006), 1);
    assert_int_equal(histogram_bucket_of(0.001), 1);
    assert_int_equal(histogram_bucket_of(0.3), 9); /* 0.25 < 0.3 <= 0.5 */
    assert_int_equal(histogram_bucket_of(10), HISTOGRAM_BOUNDS - 1);
    assert_int_equal(histogram_bucket_of(10.001), HISTOGRAM_BOUNDS);
    assert_int_equal(histogram_bucket_of(1e9), HISTOGRAM_BOUNDS);
    assert_int_equal(histogram_bucket_of(-1), 0);
    assert_int_equal(histogram_bucket_of(NAN), 0);
    for (size_t i = 1; i < HISTOGRAM_BOUNDS; i++)
        assert_true(histogram_bounds[i - 1] < histogram_bounds[i]);
}

static void test_observe(void **state)
{
    (void)state;
    struct histogram h = {0};
    histogram_observe(&h, 0.002);
    histogram_observe(&h, 0.002);
    histogram_observe(&h, 3);
    histogram_observe(&h, 60);
    histogram_observe(&h, -5); /* a clock step back: counted as 0 */
    assert_int_equal(h.count, 5);
    assert_true(fabs(h.sum - 63.004) < 1e-9);
    assert_int_equal(h.buckets[0], 1);
    assert_int_equal(h.buckets[2], 2);
    assert_int_equal(h.buckets[12], 1); /* 2.5 < 3 <= 5 */
    assert_int_equal(h.buckets[HISTOGRAM_BOUNDS], 1);
}

struct text {
    char buf[8192];
    size_t len;
};

static void emit(void *arg, const char *s, size_t len)
{
    struct text *t = arg;
    assert_true(t->len + len < sizeof(t->buf));
    memcpy(t->buf + t->len, s, len);
    t->len += len;
    t->buf[t->len] = '\0';
}

static void test_render(void **state)
{
    (void)state;
    struct histogram h = {0};
    histogram_observe(&h, 0.0004);
    histogram_observe(&h, 0.2);
    histogram_observe(&h, 20);
    struct text t = {.len = 0};
    histogram_render_header("x_seconds", "Time.", emit, &t);
    histogram_render(&h, "x_seconds", "endpoint", "/v1/devices", emit, &t);
    assert_non_null(strstr(t.buf, "# HELP x_seconds Time.\n# TYPE x_seconds histogram\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{endpoint=\"/v1/devices\",le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{endpoint=\"/v1/devices\",le=\"0.1\"} 1\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{endpoint=\"/v1/devices\",le=\"0.25\"} 2\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{endpoint=\"/v1/devices\",le=\"10\"} 2\n"));
    assert_non_null(strstr(t.buf, "x_seconds_bucket{endpoint=\"/v1/devices\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t.buf, "x_seconds_sum{endpoint=\"/v1/devices\"} 20.200400\n"));
    assert_non_null(strstr(t.buf, "x_seconds_count{endpoint=\"/v1/devices\"} 3\n"));
    /* One line per bound, +Inf, sum and count, after the two of the header. */
    size_t lines = 0;
    for (size_t i = 0; i < t.len; i++)
        lines += t.buf[i] == '\n';
    assert_int_equal(lines, 2 + HISTOGRAM_BOUNDS + 1 + 2);

    struct text bare = {.len = 0};
    histogram_render(&h, "y_seconds", NULL, NULL, emit, &bare);
    assert_non_null(strstr(bare.buf, "y_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(bare.buf, "\ny_seconds_count 3\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_of),
        cmocka_unit_test(test_observe),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
