/*
 * tu_file: see tu_file.h.
 */
#include "tu_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a read of something of unknown size starts with, and the least it grows by. */
#define TU_FILE_CHUNK ((size_t)64 * 1024)

/* read() that carries on when a signal interrupts it. */
static ssize_t tu_read_retry(int fd, void *buf, size_t n)
{
    ssize_t got;

    do
        got = read(fd, buf, n);
    while (got < 0 && errno == EINTR);
    return got;
}

/* Reads fd to its end into a buffer of at most max bytes, starting with room for hint. A
 * buffer that is full is only grown once a read shows that more is coming, so a file read in
 * one go at its stat() size is never copied. */
static bool tu_read_all(int fd, const char *name, size_t max, size_t hint, char **data, size_t *len,
                        char *err, size_t errlen)
{
    size_t cap = hint < max ? hint : max;
    size_t done = 0;
    char *buf = malloc(cap + 1);

    if (buf == NULL) {
        snprintf(err, errlen, "out of memory reading %s", name);
        return false;
    }
    for (;;) {
        char probe;
        bool full = done == cap;
        ssize_t n = full ? tu_read_retry(fd, &probe, 1) : tu_read_retry(fd, buf + done, cap - done);
        size_t grow = cap < TU_FILE_CHUNK ? TU_FILE_CHUNK : cap;
        char *bigger;

        if (n < 0) {
            snprintf(err, errlen, "reading %s: %s", name, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        if (!full) {
            done += (size_t)n;
            continue;
        }
        if (cap == max) {
            snprintf(err, errlen, "%s is larger than %zu bytes", name, max);
            goto fail;
        }
        cap = max - cap < grow ? max : cap + grow;
        bigger = realloc(buf, cap + 1);
        if (bigger == NULL) {
            snprintf(err, errlen, "out of memory reading %s", name);
            goto fail;
        }
        buf = bigger;
        buf[done++] = probe;
    }
    buf[done] = '\0';
    *data = buf;
    *len = done;
    return true;
fail:
    free(buf);
    return false;
}

bool tu_file_read_fd(int fd, const char *name, size_t max, char **data, size_t *len, char *err,
                     size_t errlen)
{
    struct stat st;
    size_t hint = TU_FILE_CHUNK;

    *data = NULL;
    *len = 0;
    if (max >= SIZE_MAX)
        max = SIZE_MAX - 1;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "reading %s: %s", name, strerror(errno));
        return false;
    }
    if (S_ISREG(st.st_mode)) {
        if ((unsigned long long)st.st_size > max) {
            snprintf(err, errlen, "%s is larger than %zu bytes", name, max);
            return false;
        }
        hint = (size_t)st.st_size;
    }
    return tu_read_all(fd, name, max, hint, data, len, err, errlen);
}

enum tu_read tu_file_read(const char *path, size_t max, char **data, size_t *len, char *err,
                          size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    bool ok;

    *data = NULL;
    *len = 0;
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "opening %s: %s", path, strerror(e));
        return e == ENOENT ? TU_READ_ABSENT : TU_READ_ERROR;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        close(fd);
        return TU_READ_ERROR;
    }
    ok = tu_file_read_fd(fd, path, max, data, len, err, errlen);
    close(fd);
    return ok ? TU_READ_OK : TU_READ_ERROR;
}

bool tu_path_join(char *out, size_t outlen, const char *dir, const char *name)
{
    int n = snprintf(out, outlen, "%s/%s", dir, name);

    return n > 0 && (size_t)n < outlen;
}

FILE *tu_file_create_tmp(const char *path, mode_t mode, char *tmp, size_t tmplen, char *err,
                         size_t errlen)
{
    int n = snprintf(tmp, tmplen, "%s.tmp.%ld", path, (long)getpid());
    int fd;
    FILE *f;

    if (n <= 0 || (size_t)n >= tmplen) {
        snprintf(err, errlen, "path too long: %s", path);
        return NULL;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "creating %s: %s", tmp, strerror(errno));
        return NULL;
    }
    f = fdopen(fd, "w");
    if (f == NULL) {
        snprintf(err, errlen, "fdopen %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
    }
    return f;
}

static bool commit_tmp(FILE *f, bool sync, const char *tmp, const char *path, char *err,
                       size_t errlen)
{
    bool ok = fflush(f) == 0 && !ferror(f) && (!sync || fsync(fileno(f)) == 0);

    if (fclose(f) != 0)
        ok = false;
    if (!ok) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return false;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "renaming %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}

bool tu_file_commit_tmp(FILE *f, const char *tmp, const char *path, char *err, size_t errlen)
{
    return commit_tmp(f, true, tmp, path, err, errlen);
}

bool tu_file_commit_tmp_unsynced(FILE *f, const char *tmp, const char *path, char *err,
                                 size_t errlen)
{
    return commit_tmp(f, false, tmp, path, err, errlen);
}

bool tu_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                          size_t errlen)
{
    char tmp[4096];
    FILE *f = tu_file_create_tmp(path, mode, tmp, sizeof(tmp), err, errlen);

    if (f == NULL)
        return false;
    if (fwrite(data, 1, len, f) != len) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return false;
    }
    return tu_file_commit_tmp(f, tmp, path, err, errlen);
}
