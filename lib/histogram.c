/* histogram: see histogram.h. */
#include "histogram.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

const double histogram_bounds[HISTOGRAM_BOUNDS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};

size_t histogram_bucket_of(double seconds)
{
    if (!(seconds > 0))
        seconds = 0;
    for (size_t i = 0; i < HISTOGRAM_BOUNDS; i++) {
        if (seconds <= histogram_bounds[i])
            return i;
    }
    return HISTOGRAM_BOUNDS;
}

void histogram_observe(struct histogram *h, double seconds)
{
    if (!(seconds > 0))
        seconds = 0;
    h->buckets[histogram_bucket_of(seconds)]++;
    h->sum += seconds;
    h->count++;
}

/* One line; a line that does not fit (names are the code's own, short) is a broken invariant. */
static void emit_line(counters_emit_fn *emit, void *arg, const char *line, size_t size, int n)
{
    if (n < 0 || (size_t)n >= size)
        log_fatal("histogram: a line longer than %zu bytes", size);
    emit(arg, line, (size_t)n);
}

void histogram_render_header(const char *name, const char *help, counters_emit_fn *emit, void *arg)
{
    char line[512];
    emit_line(
        emit, arg, line, sizeof(line),
        snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s histogram\n", name, help, name));
}

void histogram_render(const struct histogram *h, const char *name, const char *label,
                      const char *value, counters_emit_fn *emit, void *arg)
{
    char line[512], labels[256] = "", le[32];
    if (label != NULL)
        snprintf(labels, sizeof(labels), "%s=\"%s\",", label, value);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= HISTOGRAM_BOUNDS; i++) {
        cumulative += h->buckets[i];
        if (i < HISTOGRAM_BOUNDS)
            snprintf(le, sizeof(le), "%g", histogram_bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        emit_line(emit, arg, line, sizeof(line),
                  snprintf(line, sizeof(line), "%s_bucket{%sle=\"%s\"} %" PRIu64 "\n", name, labels,
                           le, cumulative));
    }
    const char *open = label != NULL ? "{" : "", *close = label != NULL ? "}" : "";
    if (label != NULL)
        labels[strlen(labels) - 1] = '\0'; /* no trailing comma without le */
    emit_line(emit, arg, line, sizeof(line),
              snprintf(line, sizeof(line), "%s_sum%s%s%s %.6f\n%s_count%s%s%s %" PRIu64 "\n", name,
                       open, labels, close, h->sum, name, open, labels, close, h->count));
}
