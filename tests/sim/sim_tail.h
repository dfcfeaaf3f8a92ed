/*
 * sim_tail: follows a file like tail -f, line by line: the push log serve reads (one
 * "<token hex> <PushMagic>" line per push the stand-in APNs server answered 200).
 *
 * A log that does not exist yet is read from its start once it appears; one that is replaced
 * (renamed away) or truncated is read again from its start. Only complete lines are handed on,
 * so a half-written line waits for its newline; a line longer than SIM_TAIL_LINE_MAX is handed
 * on cut, marked overlong. Messages go to stderr ("vouch-sim: ..."). One thread.
 */
#ifndef VOUCH_SIM_TAIL_H
#define VOUCH_SIM_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SIM_TAIL_LINE_MAX 1024

struct sim_tail {
    const char *path;
    int fd; /* -1: the file does not exist (yet) */
    dev_t dev;
    ino_t ino;
    off_t offset; /* bytes of the current file read so far */
    char line[SIM_TAIL_LINE_MAX + 1];
    size_t len;
    bool overlong; /* the current line outgrew line[]; it is skipped up to its newline */
    double next_check;
};

/* before(arg) runs once per chunk read, before its lines; line(arg, ...) for each line (NUL-
 * terminated at len; the callee may change it). */
struct sim_tail_handler {
    void (*before)(void *arg);
    void (*line)(void *arg, char *line, size_t len, bool overlong);
    void *arg;
};

/* Opens the file if it exists: at its end, or at its start with from_start. False (after a
 * message) when it exists but cannot be followed. */
bool sim_tail_start(struct sim_tail *t, const char *path, bool from_start)
    __attribute__((warn_unused_result));

void sim_tail_stop(struct sim_tail *t);

/* Reads what was appended (up to about 1 MiB) and hands each complete line to h; now (the
 * monotonic clock, in seconds) paces the looks for a replaced or truncated file. Returns the
 * number of bytes read, -1 on a read error. */
long sim_tail_poll(struct sim_tail *t, const struct sim_tail_handler *h, double now);

#endif
