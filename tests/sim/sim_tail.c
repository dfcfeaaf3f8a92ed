/*
 * sim_tail: see sim_tail.h.
 */
#include "sim_tail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIM_TAIL_CHECK_MS 250 /* how often serve looks for a replaced or truncated push log */

bool sim_tail_start(struct sim_tail *t, const char *path, bool from_start)
{
    struct stat st;

    memset(t, 0, sizeof(*t));
    t->path = path;
    t->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (t->fd < 0) {
        if (errno == ENOENT)
            return true; /* when it appears, all of it is new */
        fprintf(stderr, "vouch-sim: opening %s: %s\n", path, strerror(errno));
        return false;
    }
    if (fstat(t->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "vouch-sim: %s is not a regular file\n", path);
        close(t->fd);
        t->fd = -1;
        return false;
    }
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    if (!from_start) {
        t->offset = lseek(t->fd, 0, SEEK_END);
        if (t->offset < 0) {
            fprintf(stderr, "vouch-sim: seeking %s: %s\n", path, strerror(errno));
            close(t->fd);
            t->fd = -1;
            return false;
        }
    }
    return true;
}

void sim_tail_stop(struct sim_tail *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

/* (Re)opens the file at path from its start; false when it is not there. */
static bool sim_tail_reopen(struct sim_tail *t)
{
    struct stat st;
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return false;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return false;
    }
    sim_tail_stop(t);
    t->fd = fd;
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    t->offset = 0;
    t->len = 0; /* a partial line of the old file never ends */
    t->overlong = false;
    return true;
}

long sim_tail_poll(struct sim_tail *t, const struct sim_tail_handler *h, double now)
{
    char buf[65536];
    long total = 0;

    if (t->fd < 0) {
        if (now < t->next_check)
            return 0;
        t->next_check = now + SIM_TAIL_CHECK_MS / 1000.0;
        if (!sim_tail_reopen(t))
            return 0;
    }
    while (total < 1024L * 1024L) {
        ssize_t n = read(t->fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "vouch-sim: reading %s: %s\n", t->path, strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        t->offset += n;
        total += n;
        h->before(h->arg);
        for (ssize_t k = 0; k < n; k++) {
            if (buf[k] == '\n') {
                t->line[t->len] = '\0';
                h->line(h->arg, t->line, t->len, t->overlong);
                t->len = 0;
                t->overlong = false;
            } else if (t->len < SIM_TAIL_LINE_MAX) {
                t->line[t->len++] = buf[k];
            } else {
                t->overlong = true;
            }
        }
    }
    if (total == 0 && now >= t->next_check) {
        struct stat st;

        t->next_check = now + SIM_TAIL_CHECK_MS / 1000.0;
        if (stat(t->path, &st) == 0) {
            if (st.st_dev != t->dev || st.st_ino != t->ino) {
                sim_tail_reopen(t); /* replaced (rotated): the old one was read to its end */
            } else if (st.st_size < t->offset) {
                fprintf(stderr, "vouch-sim: %s was truncated; reading it from the start\n",
                        t->path);
                if (lseek(t->fd, 0, SEEK_SET) == 0) {
                    t->offset = 0;
                    t->len = 0;
                    t->overlong = false;
                }
            }
        }
    }
    return total;
}
