/*
 * atomic_file: replaces small files as a whole, so that a reader (or a restart) sees the old
 * contents or the new ones, never a mix: each new text goes to a temporary file in the target's
 * folder, written and synced (atomic_file_prepare), then is renamed over the target and the
 * folder synced (atomic_file_commit). Preparing every file of a set before committing any keeps
 * the set whole when a disk is full or a folder read-only. For the push certificate (vouchd's PUT
 * /v1/pushcert, vouchctl pushcert install); the caller owns the bytes and the struct.
 *
 * Blocking I/O: a few kilobytes and a few fsync() calls.
 */
#ifndef VOUCH_ATOMIC_FILE_H
#define VOUCH_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define ATOMIC_FILE_PATH_MAX 4096

struct atomic_file {
    const char *path; /* borrowed: the target */
    char tmp[ATOMIC_FILE_PATH_MAX];
};

/* Writes data[0..len) to a new temporary file beside path, with mode (set before a byte is
 * written, so that a key is never readable by others), and syncs it. False with the reason
 * (naming path) in err, and nothing left behind. */
bool atomic_file_prepare(struct atomic_file *file, const char *path, const void *data, size_t len,
                         mode_t mode, char *err, size_t err_size)
    __attribute__((warn_unused_result));
/* Renames the prepared file over its target and syncs the folder. On failure the temporary file
 * is removed and the target is as it was (or, if only the folder's sync failed, replaced). */
bool atomic_file_commit(struct atomic_file *file, char *err, size_t err_size)
    __attribute__((warn_unused_result));
/* Removes a prepared file that will not be committed. */
void atomic_file_abort(struct atomic_file *file);

#endif
