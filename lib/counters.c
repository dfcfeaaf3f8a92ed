/* counters: see counters.h. */
#include "counters.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

void counters_add(struct counters *c, const char *value)
{
    for (unsigned i = 0; i < c->used; i++) {
        if (c->values[i] == value || strcmp(c->values[i], value) == 0) {
            c->counts[i]++;
            return;
        }
    }
    if (c->used == COUNTERS_MAX_LABELS)
        log_fatal("%s: more than %d label values: %s", c->name, COUNTERS_MAX_LABELS, value);
    c->values[c->used] = value;
    c->counts[c->used++] = 1;
}

/* One line; a line that does not fit (names are the code's own, short) is a broken invariant. */
static void emit_line(counters_emit_fn *emit, void *arg, char *line, size_t size, int n)
{
    if (n < 0 || (size_t)n >= size)
        log_fatal("counters: a line longer than %zu bytes", size);
    emit(arg, line, (size_t)n);
}

void counters_render(const struct counters *c, counters_emit_fn *emit, void *arg)
{
    char line[512];
    emit_line(emit, arg, line, sizeof(line),
              snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s counter\n", c->name, c->help,
                       c->name));
    for (unsigned i = 0; i < c->used; i++)
        emit_line(emit, arg, line, sizeof(line),
                  snprintf(line, sizeof(line), "%s{%s=\"%s\"} %" PRIu64 "\n", c->name, c->label,
                           c->values[i], c->counts[i]));
}
