/*
 * log: one line per event on stderr, with a level and a UTC timestamp.
 *
 * The log owns nothing but its level. Messages are formatted into a bounded stack buffer, so a
 * log call never allocates and a value from the network can never make a line unbounded.
 * log_fatal() is the one way to stop the process on a broken invariant: it records file and line.
 */
#ifndef VOUCH_LOG_H
#define VOUCH_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug", "info", "warn" or "error". */
bool log_parse_level(const char *name, enum log_level *out) __attribute__((warn_unused_result));
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void log_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_fatal(...) log_fatal_at(__FILE__, __LINE__, __VA_ARGS__)

/* Copies at most out_size-1 bytes of untrusted text into out, replacing anything that is not
 * printable ASCII with '?', so it can be quoted in a log line. Returns out. */
const char *log_sanitize(const char *in, size_t in_len, char *out, size_t out_size);

#endif
