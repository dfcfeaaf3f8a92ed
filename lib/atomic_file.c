#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool write_all(int fd, const unsigned char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Syncs the folder holding path, so that the rename survives a crash. */
static bool sync_folder(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return false;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

bool atomic_file_write(const char *path, const void *data, size_t len, mode_t mode, char *err,
                       size_t err_size)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp)) {
        snprintf(err, err_size, "%s: the path is too long", path);
        return false;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create a file beside %s: %s", path, strerror(errno));
        return false;
    }
    const char *step = "set the mode of";
    bool ok = fchmod(fd, mode) == 0;
    if (ok) {
        step = "write";
        ok = write_all(fd, data, len);
    }
    if (ok) {
        step = "sync";
        ok = fsync(fd) == 0;
    }
    int saved = errno;
    if (close(fd) != 0 && ok) {
        saved = errno;
        step = "write";
        ok = false;
    }
    if (ok) {
        step = "replace";
        ok = rename(tmp, path) == 0;
        saved = errno;
    }
    if (!ok) {
        snprintf(err, err_size, "cannot %s %s: %s", step, path, strerror(saved));
        unlink(tmp);
        return false;
    }
    if (!sync_folder(path)) {
        snprintf(err, err_size, "%s was replaced, but its folder cannot be synced: %s", path,
                 strerror(errno));
        return false;
    }
    return true;
}
