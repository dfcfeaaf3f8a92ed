/*
 * log: one line per event on stderr, with a level and a UTC timestamp, as text or as JSON.
 *
 * The log owns its level, its format and the id of the request being handled (the current
 * request id), nothing else. Messages are formatted into a bounded stack buffer, so a log call
 * never allocates and a value from the network can never make a line unbounded.
 * log_fatal() is the one way to stop the process on a broken invariant: it records file and line.
 *
 * Text lines: "TIME LEVEL [request_id=ID ]MESSAGE". JSON lines (log_format = json): one object
 * {"ts": TIME, "level": LEVEL, "msg": MESSAGE[, "request_id": ID][, fields]} per line, its
 * strings escaped (control characters as \u00XX, bytes that are not UTF-8 as U+FFFD).
 *
 * The current request id: vouchd's HTTP front sets it while a request's handler runs, and the
 * database pool while a query started for that request completes (it notes the id when the
 * query is sent), so every line logged on behalf of a request carries its id. Everything runs on
 * one thread; whoever sets it restores what was there before.
 */
#ifndef VOUCH_LOG_H
#define VOUCH_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_TEXT, LOG_JSON };

/* Parses "debug", "info", "warn" or "error". */
bool log_parse_level(const char *name, enum log_level *out) __attribute__((warn_unused_result));
/* Parses "text" or "json". */
bool log_parse_format(const char *name, enum log_format *out) __attribute__((warn_unused_result));
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
bool log_enabled(enum log_level level);

/* A request id: 1 to LOG_REQUEST_ID_MAX characters of A-Z a-z 0-9 and - _ . : + / = @ (what
 * UUIDs, ULIDs, base64 and most proxies' ids are made of; nothing that needs escaping). */
#define LOG_REQUEST_ID_MAX 64
bool log_request_id_is_sane(const char *id, size_t len);
/* Makes id (sane, or NULL/"" for none) the current request id; log_get0_request_id() returns it
 * ("" when there is none). */
void log_set_request_id(const char *id);
const char *log_get0_request_id(void);

/* A key = value a JSON line carries as a member of its own (text lines: after the message, as
 * key=value). text NULL: number is written instead. */
struct log_field {
    const char *key;
    const char *text;
    double number;
};

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_write_fields(enum log_level level, const struct log_field *fields, size_t nfields,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
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

/* Writes in (in_len bytes) as the inside of a JSON string into out, escaped: '"', '\\' and
 * control characters escaped, valid UTF-8 kept, any other byte as U+FFFD. Never cuts an escape
 * or a character in two; out is NUL-terminated. Returns the length written (< out_size). */
size_t log_json_escape(const char *in, size_t in_len, char *out, size_t out_size);

/* One whole line (newline included) as log_write() writes it, into out: pure, for the tests.
 * ts is the timestamp text, request_id "" for none. The message is cut to fit; a JSON line stays
 * one valid object. Returns its length (< out_size; out_size at least 256). */
size_t log_format_line(char *out, size_t out_size, enum log_format format, const char *ts,
                       enum log_level level, const char *request_id, const char *msg,
                       size_t msg_len, const struct log_field *fields, size_t nfields);

#endif
