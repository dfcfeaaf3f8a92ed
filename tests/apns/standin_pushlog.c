/*
 * standin_pushlog: see standin_pushlog.h. The record is a ring of malloc()ed JSON lines; since
 * sequence numbers are consecutive, the line after `since` is found by arithmetic, not search.
 */
#include "standin_pushlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "standin_check.h"

struct record {
    char *line;
    size_t len;
};

struct standin_pushlog {
    struct record *ring;
    size_t capacity;
    size_t first; /* index of the oldest line */
    size_t count;
    uint64_t next_seq;
    int notify_fd;    /* -1: none */
    char *notify_buf; /* whole lines waiting for one write() at the end of the loop turn */
    size_t notify_len;
    struct event *notify_flush;
    void (*listener)(void *arg);
    void *listener_arg;
};

/* A growable string with a hard maximum; a line that would pass it is cut (and stays JSON). */
struct strbuf {
    char *data;
    size_t len;
    size_t cap;
};

#define LINE_MAX_BYTES (64 * 1024)
#define NOTIFY_BUF_BYTES (64 * 1024)
#define NOTIFY_LINE_MAX (STANDIN_TOKEN_MAX + STANDIN_MAX_PAYLOAD + 4)

static void sb_put(struct strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            fprintf(stderr, "apns-standin: out of memory\n");
            abort();
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(struct strbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* Writes s as a JSON string. Bytes >= 0x80 pass through when utf8 is true (the push magic, valid
 * UTF-8 once parsed); otherwise they become \u00XX so the line stays valid JSON whatever the
 * client sent. */
static void sb_json_string(struct strbuf *b, const char *s, bool utf8)
{
    static const char hex[] = "0123456789abcdef";
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char esc[7];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_put(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !utf8)) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0xF];
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_field_string(struct strbuf *b, const char *name, const char *value, bool utf8)
{
    sb_puts(b, ",\"");
    sb_puts(b, name);
    sb_puts(b, "\":");
    if (value == NULL)
        sb_puts(b, "null");
    else
        sb_json_string(b, value, utf8);
}

static void sb_field_number(struct strbuf *b, const char *name, long long v)
{
    char num[64];
    snprintf(num, sizeof(num), ",\"%s\":%lld", name, v);
    sb_puts(b, num);
}

/* A header that should be an integer: a JSON number when it is one, else the raw string. */
static void sb_field_integer(struct strbuf *b, const char *name, const char *raw)
{
    size_t n = raw != NULL ? strlen(raw) : 0;
    bool digits = n > 0 && n <= 18 && (raw[0] != '0' || n == 1);
    for (size_t i = 0; i < n && digits; i++)
        digits = raw[i] >= '0' && raw[i] <= '9';
    if (digits)
        sb_field_number(b, name, strtoll(raw, NULL, 10));
    else
        sb_field_string(b, name, raw, false);
}

static void notify_write(struct standin_pushlog *log);
static void notify_flush(evutil_socket_t fd, short what, void *arg);

struct standin_pushlog *standin_pushlog_new(struct event_base *base, size_t max_records,
                                            const char *notify_dir, char *err, size_t err_size)
{
    struct standin_pushlog *log = calloc(1, sizeof(*log));
    if (log == NULL || max_records == 0) {
        snprintf(err, err_size, "pushlog: %s", log ? "max records must be positive" : "no memory");
        free(log);
        return NULL;
    }
    log->capacity = max_records;
    log->next_seq = 1;
    log->notify_fd = -1;
    log->ring = calloc(max_records, sizeof(*log->ring));
    if (log->ring == NULL) {
        snprintf(err, err_size, "pushlog: no memory for %zu records", max_records);
        free(log);
        return NULL;
    }
    if (notify_dir != NULL) {
        char path[4096];
        int n = snprintf(path, sizeof(path), "%s/%s", notify_dir, STANDIN_NOTIFY_FILE);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            snprintf(err, err_size, "--notify-dir: path too long");
            standin_pushlog_free(log);
            return NULL;
        }
        log->notify_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log->notify_fd < 0) {
            snprintf(err, err_size, "%s: %s", path, strerror(errno));
            standin_pushlog_free(log);
            return NULL;
        }
        log->notify_buf = malloc(NOTIFY_BUF_BYTES);
        log->notify_flush = event_new(base, -1, 0, notify_flush, log);
        if (log->notify_buf == NULL || log->notify_flush == NULL) {
            snprintf(err, err_size, "pushlog: no memory");
            standin_pushlog_free(log);
            return NULL;
        }
    }
    return log;
}

void standin_pushlog_clear(struct standin_pushlog *log)
{
    for (size_t i = 0; i < log->count; i++) {
        struct record *r = &log->ring[(log->first + i) % log->capacity];
        free(r->line);
        r->line = NULL;
    }
    log->first = 0;
    log->count = 0;
}

void standin_pushlog_free(struct standin_pushlog *log)
{
    if (log == NULL)
        return;
    standin_pushlog_clear(log);
    if (log->notify_fd >= 0) {
        if (log->notify_buf != NULL)
            notify_write(log);
        close(log->notify_fd);
    }
    if (log->notify_flush != NULL)
        event_free(log->notify_flush);
    free(log->notify_buf);
    free(log->ring);
    free(log);
}

/* Writes the waiting notification lines with one write(): O_APPEND keeps them whole and in
 * order for a reader tailing the file. */
static void notify_write(struct standin_pushlog *log)
{
    if (log->notify_len == 0)
        return;
    ssize_t w = write(log->notify_fd, log->notify_buf, log->notify_len);
    if (w < 0 || (size_t)w != log->notify_len)
        fprintf(stderr, "apns-standin: %s: short write: %s\n", STANDIN_NOTIFY_FILE,
                w < 0 ? strerror(errno) : "disk full?");
    log->notify_len = 0;
}

static void notify_flush(evutil_socket_t fd, short what, void *arg)
{
    notify_write(arg);
}

/* Queues "<token> <magic>\n"; whitespace and control bytes in the magic become '?' so the line
 * always splits into two words. The lines of one loop turn go out together right after it. */
static void notify_push(struct standin_pushlog *log, const char *token, const char *magic)
{
    if (NOTIFY_BUF_BYTES - log->notify_len < NOTIFY_LINE_MAX)
        notify_write(log);
    char *line = log->notify_buf + log->notify_len;
    size_t n = 0;
    for (const char *p = token; *p != '\0' && n < STANDIN_TOKEN_MAX; p++)
        line[n++] = *p;
    line[n++] = ' ';
    for (const unsigned char *p = (const unsigned char *)magic;
         *p != '\0' && n < NOTIFY_LINE_MAX - 1; p++)
        line[n++] = (char)(*p <= 0x20 || *p == 0x7f ? '?' : *p);
    line[n++] = '\n';
    log->notify_len += n;
    if (!event_pending(log->notify_flush, EV_TIMEOUT, NULL))
        event_active(log->notify_flush, EV_TIMEOUT, 0);
}

uint64_t standin_pushlog_append(struct standin_pushlog *log, const struct standin_push *p)
{
    struct strbuf b = {0};
    uint64_t seq = log->next_seq++;
    char head[96];

    snprintf(head, sizeof(head), "{\"seq\":%llu,\"time_ms\":%lld", (unsigned long long)seq,
             p->time_ms);
    sb_puts(&b, head);
    sb_field_number(&b, "conn", (long long)p->conn);
    sb_field_number(&b, "stream", p->stream);
    sb_field_string(&b, "token", p->token, false);
    sb_field_string(&b, "topic", p->topic, false);
    sb_field_string(&b, "push_type", p->push_type, false);
    sb_field_string(&b, "push_magic", p->push_magic, true);
    sb_field_integer(&b, "expiration", p->expiration);
    sb_field_integer(&b, "priority", p->priority);
    sb_field_string(&b, "apns_id", p->apns_id, false);
    sb_field_number(&b, "status", p->status);
    sb_field_string(&b, "reason", p->reason, false);
    if (p->timestamp_ms >= 0)
        sb_field_number(&b, "timestamp", p->timestamp_ms);
    sb_puts(&b, "}\n");
    if (b.len > LINE_MAX_BYTES) {
        /* Only a huge magic gets here (each byte escaped six-fold); keep the line parseable. */
        b.len = 0;
        snprintf(head, sizeof(head), "{\"seq\":%llu,\"status\":%d,\"truncated\":true}\n",
                 (unsigned long long)seq, p->status);
        sb_puts(&b, head);
    }

    if (log->count == log->capacity) {
        free(log->ring[log->first].line);
        log->first = (log->first + 1) % log->capacity;
        log->count--;
    }
    struct record *r = &log->ring[(log->first + log->count) % log->capacity];
    r->line = b.data;
    r->len = b.len;
    log->count++;

    if (log->notify_fd >= 0 && p->status == 200 && p->token != NULL && p->push_magic != NULL)
        notify_push(log, p->token, p->push_magic);
    if (log->listener != NULL)
        log->listener(log->listener_arg);
    return seq;
}

size_t standin_pushlog_read(const struct standin_pushlog *log, uint64_t since, size_t limit,
                            void (*emit)(const char *line, size_t len, void *arg), void *arg)
{
    uint64_t oldest = log->next_seq - log->count; /* seq of ring[first] */
    size_t skip = since < oldest ? 0 : (size_t)(since - oldest + 1);
    size_t emitted = 0;
    for (size_t i = skip; i < log->count; i++) {
        if (limit != 0 && emitted == limit)
            break;
        const struct record *r = &log->ring[(log->first + i) % log->capacity];
        emit(r->line, r->len, arg);
        emitted++;
    }
    return emitted;
}

uint64_t standin_pushlog_last_seq(const struct standin_pushlog *log)
{
    return log->next_seq - 1;
}

size_t standin_pushlog_count(const struct standin_pushlog *log)
{
    return log->count;
}

void standin_pushlog_set_listener(struct standin_pushlog *log, void (*fn)(void *arg), void *arg)
{
    log->listener = fn;
    log->listener_arg = arg;
}
