/*
 * histogram: a latency histogram in the Prometheus text format: counts by bucket over one fixed
 * set of upper bounds (seconds, from half a millisecond to ten seconds), their sum and count.
 *
 * The caller owns the histogram (usually a static one or a field of its own struct) and touches
 * it from one thread; rendering only reads it. Label values are the caller's static strings,
 * never text from the network.
 */
#ifndef VOUCH_HISTOGRAM_H
#define VOUCH_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#include "counters.h"

#define HISTOGRAM_BOUNDS 14

/* The upper bounds, ascending: an observation of v falls in the first bucket whose bound is at
 * least v (Prometheus's le), or in +Inf. */
extern const double histogram_bounds[HISTOGRAM_BOUNDS];

struct histogram {
    uint64_t buckets[HISTOGRAM_BOUNDS + 1]; /* not cumulative; the last one is +Inf */
    double sum;
    uint64_t count;
};

/* The index of the bucket that takes seconds (HISTOGRAM_BOUNDS for +Inf); a negative or NaN
 * value is taken as 0. */
size_t histogram_bucket_of(double seconds);

void histogram_observe(struct histogram *h, double seconds);

/* "# HELP name help" and "# TYPE name histogram": once per family, before its series. */
void histogram_render_header(const char *name, const char *help, counters_emit_fn *emit, void *arg);

/* The series of one label value: name_bucket{label="value",le="..."} cumulative counts up to
 * +Inf, then name_sum and name_count. label NULL: a histogram without labels. */
void histogram_render(const struct histogram *h, const char *name, const char *label,
                      const char *value, counters_emit_fn *emit, void *arg);

#endif
