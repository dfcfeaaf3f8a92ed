/*
 * atomic_file: replaces a small file as a whole, so that a reader (or a restart) sees the old
 * contents or the new ones, never a mix: a temporary file in the same folder, written and synced,
 * then renamed over the target, and the folder synced. For the push certificate (vouchd's PUT
 * /v1/pushcert, vouchctl pushcert install); the caller owns the bytes.
 *
 * Blocking I/O: a few kilobytes and two fsync() calls.
 */
#ifndef VOUCH_ATOMIC_FILE_H
#define VOUCH_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Writes data[0..len) to path with the given mode (applied before a byte is written, so a key
 * is never readable by others). False with the reason (naming path) in err; the target is then
 * untouched and no temporary file is left. */
bool atomic_file_write(const char *path, const void *data, size_t len, mode_t mode, char *err,
                       size_t err_size) __attribute__((warn_unused_result));

#endif
