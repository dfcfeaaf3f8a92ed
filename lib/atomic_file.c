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

/* Syncs the folder holding path, so that a rename survives a crash. */
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

bool atomic_file_prepare(struct atomic_file *file, const char *path, const void *data, size_t len,
                         mode_t mode, char *err, size_t err_size)
{
    file->path = path;
    file->tmp[0] = '\0';
    if (snprintf(file->tmp, sizeof(file->tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(file->tmp)) {
        snprintf(err, err_size, "%s: the path is too long", path);
        file->tmp[0] = '\0';
        return false;
    }
    int fd = mkstemp(file->tmp);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create a file beside %s: %s", path, strerror(errno));
        file->tmp[0] = '\0';
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
    if (!ok) {
        snprintf(err, err_size, "cannot %s a new %s: %s", step, path, strerror(saved));
        atomic_file_abort(file);
    }
    return ok;
}

bool atomic_file_commit(struct atomic_file *file, char *err, size_t err_size)
{
    if (rename(file->tmp, file->path) != 0) {
        snprintf(err, err_size, "cannot replace %s: %s", file->path, strerror(errno));
        atomic_file_abort(file);
        return false;
    }
    file->tmp[0] = '\0';
    if (!sync_folder(file->path)) {
        snprintf(err, err_size, "%s was replaced, but its folder cannot be synced: %s", file->path,
                 strerror(errno));
        return false;
    }
    return true;
}

void atomic_file_abort(struct atomic_file *file)
{
    if (file->tmp[0] != '\0')
        unlink(file->tmp);
    file->tmp[0] = '\0';
}
