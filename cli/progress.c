/* progress: see progress.h. */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define PROGRESS_BAR_WIDTH 30

struct progress {
    const char *what;
    size_t total;
    size_t drawn; /* the count last drawn, or SIZE_MAX before the first */
};

bool progress_wanted(bool json)
{
    return !json && isatty(STDERR_FILENO) == 1;
}

struct progress *progress_begin(const char *what, size_t total, bool json)
{
    if (!progress_wanted(json) || total == 0)
        return NULL;
    struct progress *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->what = what;
    p->total = total;
    p->drawn = (size_t)-1;
    progress_update(p, 0);
    return p;
}

void progress_update(struct progress *p, size_t done)
{
    char bar[PROGRESS_BAR_WIDTH + 1];

    if (p == NULL || done == p->drawn)
        return;
    if (done > p->total)
        done = p->total;
    size_t filled = p->total > 0 ? done * PROGRESS_BAR_WIDTH / p->total : 0;
    for (size_t i = 0; i < PROGRESS_BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[PROGRESS_BAR_WIDTH] = '\0';
    /* \r and erase-to-end-of-line: the line is redrawn where it is. */
    fprintf(stderr, "\r\033[K%s  [%s]  %zu/%zu devices", p->what, bar, done, p->total);
    fflush(stderr);
    p->drawn = done;
}

void progress_end(struct progress *p)
{
    if (p == NULL)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    free(p);
}
