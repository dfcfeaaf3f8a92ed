/*
 * progress: the progress line of vouchctl's operations over many devices (attest, push,
 * enqueue), on standard error, redrawn in place: "attest  [#######.......]  300/1050".
 *
 * Shown only when standard error is a terminal and the output is not --json: a pipe or a log
 * file never receives it. The line is cleared when the operation ends, so what follows on the
 * terminal reads as it would without it. A struct progress is owned by its caller
 * (progress_end() frees it); every function accepts NULL (no progress shown).
 */
#ifndef VOUCH_CLI_PROGRESS_H
#define VOUCH_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

struct progress;

/* Whether a progress line belongs on this standard error (a terminal, and not json). */
bool progress_wanted(bool json);

/* A progress line for total steps labelled what (a static string), or NULL when it is not
 * wanted (or out of memory: the operation goes on without one). */
struct progress *progress_begin(const char *what, size_t total, bool json);
/* done of total steps are done. */
void progress_update(struct progress *p, size_t done);
/* Clears the line and frees p. */
void progress_end(struct progress *p);

#endif
