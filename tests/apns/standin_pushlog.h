/*
 * standin_pushlog: the record of every request apns-standin answered, for GET /pushes, and the
 * notification file the device simulator tails.
 *
 * Each request becomes one JSON line with a sequence number that only grows (POST /reset empties
 * the record but does not restart the numbers, so a reader polling with ?since= never misses or
 * repeats a line). The record keeps the newest max_records lines and drops the oldest.
 *
 * With a notify directory, every push answered 200 also appends "<token> <push magic>\n" to
 * DIR/pushes.log (never truncated), written once per turn of the event loop: a reader sees
 * whole lines, at most one loop turn late. The pushlog owns its lines and the file descriptor.
 */
#ifndef VOUCH_STANDIN_PUSHLOG_H
#define VOUCH_STANDIN_PUSHLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STANDIN_NOTIFY_FILE "pushes.log"

/* One answered request; every pointer is borrowed for the call, NULL when absent. */
struct standin_push {
    uint64_t conn;
    int32_t stream;
    long long time_ms; /* when the request ended */
    const char *token; /* from the path */
    const char *topic;
    const char *push_type;
    const char *expiration; /* raw header value */
    const char *priority;   /* raw header value */
    const char *push_magic;
    const char *apns_id;
    int status; /* 0: answered with GOAWAY or cancelled by the client */
    const char *reason;
    long long timestamp_ms; /* the 410 timestamp; -1: none */
};

struct standin_pushlog;

struct event_base;

/* notify_dir may be NULL; base runs the flush of the notification lines. NULL (with err) when
 * the notification file cannot be opened. */
struct standin_pushlog *standin_pushlog_new(struct event_base *base, size_t max_records,
                                            const char *notify_dir, char *err, size_t err_size);
void standin_pushlog_free(struct standin_pushlog *log);

/* Records p and returns its sequence number (the first is 1). */
uint64_t standin_pushlog_append(struct standin_pushlog *log, const struct standin_push *p);

/* Calls emit for each recorded line with a sequence number above since, oldest first, at most
 * limit of them (0: no limit). Lines end with '\n'. Returns the number of lines emitted. */
size_t standin_pushlog_read(const struct standin_pushlog *log, uint64_t since, size_t limit,
                            void (*emit)(const char *line, size_t len, void *arg), void *arg);

uint64_t standin_pushlog_last_seq(const struct standin_pushlog *log);
size_t standin_pushlog_count(const struct standin_pushlog *log);

/* Forgets every line; sequence numbers go on. */
void standin_pushlog_clear(struct standin_pushlog *log);

/* fn(arg) runs after each append (used to wake long-polling readers); NULL to unset. */
void standin_pushlog_set_listener(struct standin_pushlog *log, void (*fn)(void *arg), void *arg);

#endif
