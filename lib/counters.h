/*
 * counters: a family of counters by label value, rendered in the Prometheus text format. The
 * label values are static strings the code chooses (reason codes, message types), never text from
 * the network, so a family holds at most COUNTERS_MAX_LABELS series; one more is a broken
 * invariant (log_fatal). The caller owns the family (usually a static one) and touches it from
 * one thread.
 */
#ifndef VOUCH_COUNTERS_H
#define VOUCH_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#define COUNTERS_MAX_LABELS 64

struct counters {
    const char *name, *help, *label; /* vouch_rejections_total, its help, "reason" */
    const char *values[COUNTERS_MAX_LABELS];
    uint64_t counts[COUNTERS_MAX_LABELS];
    unsigned used;
};

#define COUNTERS_INIT(name, help, label)                                                           \
    {                                                                                              \
        (name), (help), (label), {0}, {0}, 0                                                       \
    }

/* Counts one more for value (a static string). */
void counters_add(struct counters *c, const char *value);

/* Receives the text, a line at a time. */
typedef void counters_emit_fn(void *arg, const char *text, size_t len);

/* "# HELP", "# TYPE ... counter", then one name{label="value"} count line per value seen. */
void counters_render(const struct counters *c, counters_emit_fn *emit, void *arg);

#endif
