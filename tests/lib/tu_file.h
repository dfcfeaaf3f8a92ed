/*
 * tu_file: reading a whole file with a size limit, and replacing a file atomically, for the
 * tests and the tools (vouch-sim, fake-apple, the unit tests). One copy instead of one per
 * program. Production code (vouchd, vouchctl) keeps its own: it does not link tests/lib.
 *
 * Every read is bounded by the caller's max (the size a file of that kind can sensibly reach).
 * Errors go to err as one line naming the file and the reason ("opening PATH: No such file or
 * directory", "PATH is larger than N bytes", "reading PATH: ...", "out of memory reading
 * PATH"); err is left alone on success.
 *
 * Ownership: tu_file_read() and tu_file_read_fd() hand over a malloc()ed, NUL-terminated buffer
 * (the NUL is not counted in *len) that the caller frees; on failure *data is NULL.
 * tu_file_create_tmp() hands over a FILE that tu_file_commit_tmp() closes (and removes on
 * failure).
 */
#ifndef VOUCH_TU_FILE_H
#define VOUCH_TU_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

enum tu_read { TU_READ_OK, TU_READ_ABSENT, TU_READ_ERROR };

/* Reads the regular file at path, at most max bytes. TU_READ_ABSENT when it does not exist (err
 * says so too, for callers that treat absence as an error); TU_READ_ERROR when it cannot be
 * opened or read, is not a regular file, or is larger than max. */
enum tu_read tu_file_read(const char *path, size_t max, char **data, size_t *len, char *err,
                          size_t errlen) __attribute__((warn_unused_result));

/* Reads fd (any kind: a file, a pipe, stdin) to its end, at most max bytes; name is what err
 * calls it. Does not close fd. */
bool tu_file_read_fd(int fd, const char *name, size_t max, char **data, size_t *len, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/* "DIR/NAME" into out; false when it does not fit. */
bool tu_path_join(char *out, size_t outlen, const char *dir, const char *name)
    __attribute__((warn_unused_result));

/* Opens path's temporary sibling (PATH.tmp.PID, created with mode) for writing; tmp receives
 * its name. NULL after a message in err. */
FILE *tu_file_create_tmp(const char *path, mode_t mode, char *tmp, size_t tmplen, char *err,
                         size_t errlen) __attribute__((warn_unused_result));

/* Flushes, syncs and closes f, then renames tmp over path. Removes tmp on failure. */
bool tu_file_commit_tmp(FILE *f, const char *tmp, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The same without the fsync: the replacement stays atomic (rename), but a machine crash may
 * leave the old file or an empty one. For files that are cheap to lose and written often. */
bool tu_file_commit_tmp_unsynced(FILE *f, const char *tmp, const char *path, char *err,
                                 size_t errlen) __attribute__((warn_unused_result));

/* Replaces path with the len bytes of data (through a temporary sibling and a rename, so a
 * reader sees the old file or the new one, never half of one). */
bool tu_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                          size_t errlen) __attribute__((warn_unused_result));

#endif
