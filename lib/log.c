#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE_MAX_BYTES 2048
#define FIELDS_MAX_BYTES 768

static enum log_level current_level = LOG_INFO;
static enum log_format current_format = LOG_TEXT;
static char current_request_id[LOG_REQUEST_ID_MAX + 1];

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const format_names[] = {"text", "json"};

bool log_parse_level(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

bool log_parse_format(const char *name, enum log_format *out)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (enum log_format)i;
            return true;
        }
    }
    return false;
}

void log_set_level(enum log_level level)
{
    current_level = level;
}

void log_set_format(enum log_format format)
{
    current_format = format;
}

bool log_enabled(enum log_level level)
{
    return level >= current_level;
}

bool log_request_id_is_sane(const char *id, size_t len)
{
    if (id == NULL || len == 0 || len > LOG_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c != '\0' && strchr("-_.:+/=@", c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

void log_set_request_id(const char *id)
{
    size_t len = id != NULL ? strnlen(id, LOG_REQUEST_ID_MAX + 1) : 0;
    if (len == 0 || !log_request_id_is_sane(id, len)) {
        current_request_id[0] = '\0';
        return;
    }
    memcpy(current_request_id, id, len);
    current_request_id[len] = '\0';
}

const char *log_get0_request_id(void)
{
    return current_request_id;
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0: no overlong forms, no
 * surrogates, nothing above U+10FFFF. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

size_t log_json_escape(const char *in, size_t in_len, char *out, size_t out_size)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t j = 0;
    if (out_size == 0)
        return 0;
    for (size_t i = 0; i < in_len;) {
        char piece[8];
        size_t piece_len, used = 1;
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            piece[0] = '\\';
            piece[1] = (char)c;
            piece_len = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            piece[0] = '\\';
            piece[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            piece_len = 2;
        } else if (c < 0x20) {
            piece_len = (size_t)snprintf(piece, sizeof(piece), "\\u%04x", (unsigned)c);
        } else if (c < 0x80) {
            piece[0] = (char)c;
            piece_len = 1;
        } else if ((used = utf8_sequence(s + i, in_len - i)) > 0) {
            memcpy(piece, s + i, used);
            piece_len = used;
        } else {
            memcpy(piece, "\\ufffd", 6);
            piece_len = 6;
            used = 1;
        }
        if (j + piece_len >= out_size)
            break;
        memcpy(out + j, piece, piece_len);
        j += piece_len;
        i += used;
    }
    out[j] = '\0';
    return j;
}

/* Appends text to out (at *len, bounded by size, room kept for the NUL); false when cut. */
static bool append(char *out, size_t size, size_t *len, const char *text, size_t text_len)
{
    size_t room = size - 1 - *len;
    bool whole = text_len <= room;
    if (!whole)
        text_len = room;
    memcpy(out + *len, text, text_len);
    *len += text_len;
    out[*len] = '\0';
    return whole;
}

/* The fields as a JSON line carries them (,"key":value ...) or as a text line (key=value ...). */
static size_t format_fields(char *out, size_t size, enum log_format format,
                            const struct log_field *fields, size_t nfields)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < nfields; i++) {
        char value[512], item[640];
        int n;
        if (fields[i].text == NULL) {
            n = snprintf(item, sizeof(item), format == LOG_JSON ? ",\"%s\":%.15g" : " %s=%.15g",
                         fields[i].key, fields[i].number);
        } else if (format == LOG_JSON) {
            log_json_escape(fields[i].text, strlen(fields[i].text), value, sizeof(value));
            n = snprintf(item, sizeof(item), ",\"%s\":\"%s\"", fields[i].key, value);
        } else {
            /* Quoted (as JSON would) when it holds a blank or a quote, else as it is. */
            const char *text = fields[i].text;
            bool quote = text[0] == '\0' || strpbrk(text, " \"\\") != NULL;
            if (quote)
                log_json_escape(text, strlen(text), value, sizeof(value));
            n = snprintf(item, sizeof(item), quote ? " %s=\"%s\"" : " %s=%s", fields[i].key,
                         quote ? value : text);
        }
        if (n < 0 || (size_t)n >= sizeof(item) || len + (size_t)n >= size)
            break; /* a field that does not fit is left out whole */
        append(out, size, &len, item, (size_t)n);
    }
    return len;
}

size_t log_format_line(char *out, size_t out_size, enum log_format format, const char *ts,
                       enum log_level level, const char *request_id, const char *msg,
                       size_t msg_len, const struct log_field *fields, size_t nfields)
{
    char head[160], tail[FIELDS_MAX_BYTES];
    size_t len = 0,
           tail_len = format_fields(tail, sizeof(tail) < out_size / 2 ? sizeof(tail) : out_size / 2,
                                    format, fields, nfields);
    bool has_id = request_id != NULL && request_id[0] != '\0';
    int n;
    if (format == LOG_JSON)
        n = snprintf(head, sizeof(head), "{\"ts\":\"%s\",\"level\":\"%s\"%s%s%s", ts,
                     level_names[level], has_id ? ",\"request_id\":\"" : "",
                     has_id ? request_id : "", has_id ? "\"" : "");
    else
        n = snprintf(head, sizeof(head), "%s %s %s%s%s", ts, level_names[level],
                     has_id ? "request_id=" : "", has_id ? request_id : "", has_id ? " " : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        n = 0;
    out[0] = '\0';
    append(out, out_size, &len, head, (size_t)n);
    /* What the message may take: all but the fields and the closing bytes. */
    static const char json_close[] = "\"}\n";
    size_t closing = format == LOG_JSON ? sizeof(json_close) - 1 : 1;
    if (len + tail_len + closing + 16 >= out_size)
        tail_len = 0; /* a buffer too small for the fields: the message goes first */
    if (format == LOG_JSON) {
        append(out, out_size, &len, tail, tail_len);
        append(out, out_size, &len, ",\"msg\":\"", 8);
        size_t room = out_size - 1 > len + closing ? out_size - 1 - len - closing : 0;
        len += log_json_escape(msg, msg_len, out + len, room + 1);
        append(out, out_size, &len, json_close, closing);
    } else {
        size_t room =
            out_size - 1 > len + tail_len + closing ? out_size - 1 - len - tail_len - closing : 0;
        append(out, out_size, &len, msg, msg_len < room ? msg_len : room);
        append(out, out_size, &len, tail, tail_len);
        append(out, out_size, &len, "\n", 1);
    }
    return len;
}

static void log_vwrite(enum log_level level, const struct log_field *fields, size_t nfields,
                       const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void log_vwrite(enum log_level level, const struct log_field *fields, size_t nfields,
                       const char *fmt, va_list ap)
{
    char msg[LINE_MAX_BYTES], line[LINE_MAX_BYTES + 256], ts[64];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(now.tv_nsec / 1000000));
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t msg_len = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    size_t len = log_format_line(line, sizeof(line), current_format, ts, level, current_request_id,
                                 msg, msg_len, fields, nfields);
    /* One write per line keeps lines whole when several processes share stderr. */
    fwrite(line, 1, len, stderr);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (level < current_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void log_write_fields(enum log_level level, const struct log_field *fields, size_t nfields,
                      const char *fmt, ...)
{
    if (level < current_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, fields, nfields, fmt, ap);
    va_end(ap);
}

void log_fatal_at(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_write(LOG_ERROR, "fatal at %s:%d: %s", file, line, msg);
    abort();
}

const char *log_sanitize(const char *in, size_t in_len, char *out, size_t out_size)
{
    size_t j = 0;
    if (out_size == 0)
        return out;
    for (size_t i = 0; i < in_len && j + 1 < out_size; i++) {
        unsigned char c = (unsigned char)in[i];
        out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[j] = '\0';
    return out;
}
