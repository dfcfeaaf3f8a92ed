/* json.h's writer: a streaming writer of its own that writes what libjansson's encoder would
 * (the parser is json.c). */

#include "json.h"
#include "json_internal.h"
#include "utf8.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Writer ---- */

/*
 * The writer appends text as it goes: each call places its value (a comma, and in the pretty
 * layout a newline and indent, where libjansson's json_dumpb() with JSON_INDENT(2) or
 * JSON_COMPACT puts them) and writes it at once, so the text is the one libjansson would make
 * of the same tree, byte for byte.
 *
 * Two lengths are kept. least is what the calls have certainly added (the fewest bytes of each
 * value, its key and its comma, none of the escapes or the indents): it gives the early
 * JSON_WRITE_TOO_LARGE, when a call would take it past the maximum. len is the text itself: once
 * it would pass the maximum, nothing more is appended (the buffer never grows past max + 1) and
 * json_writer_finish() says JSON_WRITE_TOO_LARGE, unless an earlier error comes first.
 *
 * The keys of the open objects are kept in a stack (their bytes in one arena), indexed by an
 * open-addressing hash table: an object closes after every object opened inside it, so closing
 * one pops the newest entries, and clearing their slots leaves the table as it was before they
 * were added (linear probing undone in reverse order).
 */

struct writer_frame {
    bool object;
    size_t count;     /* members or elements written so far */
    size_t keys_base; /* w->keys.count when it opened: its keys are the entries above */
};

struct key_entry {
    uint64_t hash;
    size_t off; /* into key_set.bytes */
    size_t len;
    size_t slot; /* in key_set.table */
};

struct key_set {
    char *bytes;
    size_t bytes_len;
    size_t bytes_cap;
    struct key_entry *entries; /* a stack: innermost object's keys last */
    size_t count;
    size_t entries_cap;
    uint32_t *table; /* entry index + 1, 0 when free; a power of 2, at least half free */
    size_t table_size;
    uint64_t seed;
};

struct json_writer {
    size_t max;
    unsigned flags;
    enum json_write_error error;
    bool has_root;                                   /* the top-level value is written, or begun */
    struct writer_frame open[JSON_WRITER_MAX_DEPTH]; /* open containers, innermost last */
    size_t depth;
    bool key_pending;   /* the innermost object has a key and waits for its value */
    bool key_duplicate; /* that key is already in the object: its value call fails */
    size_t least;       /* the text will be at least this long: an early JSON_WRITE_TOO_LARGE */
    char *text;         /* NUL-terminated by json_writer_finish() */
    size_t len;
    size_t cap;
    bool overflow; /* the text passed max: it stopped growing, and finish says so */
    struct key_set keys;
};

struct json_writer *json_writer_new(size_t max_bytes, unsigned flags)
{
    struct json_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->max = max_bytes;
    w->flags = flags;
    /* The key hash is seeded so that keys chosen to collide cannot be planned without knowing
     * where the allocator put the writer (ASLR). */
    w->keys.seed =
        ((uint64_t)(uintptr_t)w * 0x9E3779B97F4A7C15u) ^ (uint64_t)(uintptr_t)&json_writer_new;
    return w;
}

void json_writer_free(struct json_writer *w)
{
    if (w == NULL)
        return;
    free(w->keys.bytes);
    free(w->keys.entries);
    free(w->keys.table);
    free(w->text);
    free(w);
}

/* Pops the key entries above base, clearing their slots newest first. */
static void keys_pop(struct key_set *ks, size_t base)
{
    if (ks->count <= base)
        return;
    ks->bytes_len = ks->entries[base].off;
    while (ks->count > base) {
        ks->count--;
        ks->table[ks->entries[ks->count].slot] = 0;
    }
}

void json_writer_reset(struct json_writer *w)
{
    keys_pop(&w->keys, 0);
    w->has_root = false;
    w->depth = 0;
    w->key_pending = false;
    w->key_duplicate = false;
    w->least = 0;
    w->len = 0;
    if (w->text != NULL)
        w->text[0] = '\0';
    w->overflow = false;
    w->error = JSON_WRITE_OK;
}

enum json_write_error json_writer_error(const struct json_writer *w)
{
    return w->error;
}

const char *json_write_strerror(enum json_write_error error)
{
    switch (error) {
    case JSON_WRITE_OK:
        return "ok";
    case JSON_WRITE_TOO_LARGE:
        return "JSON output too large";
    case JSON_WRITE_TOO_DEEP:
        return "JSON output nested too deep";
    case JSON_WRITE_MISUSE:
        return "JSON writer calls out of order";
    case JSON_WRITE_UTF8:
        return "invalid UTF-8 in a JSON string";
    case JSON_WRITE_NUMBER:
        return "non-finite or too large number";
    case JSON_WRITE_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}

static bool writer_fail(struct json_writer *w, enum json_write_error error)
{
    if (w->error == JSON_WRITE_OK)
        w->error = error;
    return false;
}

/* Counts n more bytes of text. */
static bool writer_grow(struct json_writer *w, size_t n)
{
    if (n > w->max - w->least)
        return writer_fail(w, JSON_WRITE_TOO_LARGE);
    w->least += n;
    return true;
}

/* ---- Writer: text ---- */

/* writer_room()'s slow path: the text would pass the maximum, or the buffer must grow. */
static char *writer_room_grow(struct json_writer *w, size_t n)
{
    if (w->overflow)
        return NULL;
    if (n > w->max - w->len) {
        w->overflow = true;
        return NULL;
    }
    size_t need = w->len + n + 1; /* and one byte for the NUL */
    size_t cap = w->cap < 1024 ? 1024 : w->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (w->max < SIZE_MAX && cap > w->max + 1)
        cap = w->max + 1;
    char *t = realloc(w->text, cap);
    if (t == NULL) {
        writer_fail(w, JSON_WRITE_NOMEM);
        return NULL;
    }
    w->text = t;
    w->cap = cap;
    char *p = w->text + w->len;
    w->len += n;
    return p;
}

/*
 * Room for n more bytes of text, or NULL: when the text would pass the maximum (w->overflow:
 * the caller goes on without writing) or when out of memory (w->error is set).
 */
static inline char *writer_room(struct json_writer *w, size_t n)
{
    /* cap - len - 1 bytes are free; cap <= max + 1, so they are within the maximum. */
    if (w->overflow || n >= w->cap - w->len)
        return writer_room_grow(w, n);
    char *p = w->text + w->len;
    w->len += n;
    return p;
}

/* Appends; false only when out of memory. */
static inline bool writer_put(struct json_writer *w, const char *s, size_t n)
{
    char *p = writer_room(w, n);
    if (p == NULL)
        return w->error == JSON_WRITE_OK;
    memcpy(p, s, n);
    return true;
}

/*
 * What comes between values: a comma when comma is set, in the pretty layout a newline and the
 * indent of depth, then closer (a bracket or brace) when it is not 0.
 */
static bool writer_put_break(struct json_writer *w, bool comma, size_t depth, char closer)
{
    bool pretty = w->flags & JSON_WRITER_PRETTY;
    size_t size = (size_t)comma + (pretty ? 1 + 2 * depth : 0) + (closer != 0);
    if (size == 0)
        return true;
    char *p = writer_room(w, size);
    if (p == NULL)
        return w->error == JSON_WRITE_OK;
    if (comma)
        *p++ = ',';
    if (pretty) {
        *p++ = '\n';
        memset(p, ' ', 2 * depth);
        p += 2 * depth;
    }
    if (closer != 0)
        *p = closer;
    return true;
}

/*
 * How libjansson writes a string: quote, backslash and control characters escaped (\b \f \n \r
 * \t, or \u00XX in upper case), everything else as it is. ESC_UTF8 marks the lead bytes and
 * continuation bytes of multi-byte sequences, which are checked; other entries are how many
 * bytes the escape adds.
 */
#define ESC_UTF8 0xFF
/* clang-format off */
static const unsigned char escape_extra[256] = {
    5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5, /* \b \t \n \f \r */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
#define ESC_ROW ESC_UTF8, ESC_UTF8, ESC_UTF8, ESC_UTF8, ESC_UTF8, ESC_UTF8, ESC_UTF8, ESC_UTF8
    ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW,
    ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW, ESC_ROW,
#undef ESC_ROW
};
/* clang-format on */

/* Whether none of the 8 bytes in x needs a look: no control character, quote, backslash or
 * byte above 0x7F. (Each test may flag a byte above one it rightly flags; that only sends the
 * word to the byte loop.) */
static inline bool word_plain(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t control = (x - 0x20 * ones) & ~x;
    uint64_t quote = x ^ ('"' * ones), backslash = x ^ ('\\' * ones);
    quote = (quote - ones) & ~quote;
    backslash = (backslash - ones) & ~backslash;
    return ((control | quote | backslash | x) & highs) == 0;
}

/* One pass over s: false if it is not valid UTF-8, else *extra is what escaping adds. */
static bool string_scan(const char *s, size_t len, size_t *extra)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t more = 0, i = 0;
    while (i < len) {
        uint64_t x;
        if (len - i >= 8) {
            memcpy(&x, u + i, 8);
            if (word_plain(x)) {
                i += 8;
                continue;
            }
        } else if (len >= 8) {
            /* The tail, as the last 8 bytes: those before i are looked at again, harmlessly. */
            memcpy(&x, u + len - 8, 8);
            if (word_plain(x))
                break;
        }
        unsigned char e = escape_extra[u[i]];
        if (e == 0) {
            i++;
        } else if (e != ESC_UTF8) {
            more += e;
            i++;
        } else {
            size_t k = utf8_sequence_length(u + i, len - i);
            if (k == 0)
                return false;
            i += k;
        }
    }
    *extra = more;
    return true;
}

/* Fills p with s quoted and escaped (len + 2 + extra bytes, extra string_scan()'s); returns the
 * end. */
static char *string_fill(char *p, const char *s, size_t len, size_t extra)
{
    static const char hex[] = "0123456789ABCDEF";
    *p++ = '"';
    if (extra == 0) {
        if (len > 0)
            memcpy(p, s, len);
        p += len;
        *p++ = '"';
        return p;
    }
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* bytes to copy as they are, pending */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = u[i];
        unsigned char e = escape_extra[c];
        if (e == 0 || e == ESC_UTF8) {
            run++;
            continue;
        }
        memcpy(p, s + i - run, run);
        p += run;
        run = 0;
        *p++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *p++ = (char)c;
            break;
        case '\b':
            *p++ = 'b';
            break;
        case '\f':
            *p++ = 'f';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        default:
            memcpy(p, "u00", 3);
            p[3] = hex[c >> 4];
            p[4] = hex[c & 0xF];
            p += 5;
            break;
        }
    }
    memcpy(p, s + len - run, run);
    p += run;
    *p++ = '"';
    return p;
}

/* The bytes a quoted string takes, or SIZE_MAX when that does not fit in a size_t. */
static size_t string_size(size_t len, size_t extra)
{
    return len > SIZE_MAX - 3 - extra ? SIZE_MAX : len + 2 + extra;
}

/* Writes s quoted, escaped; extra is string_scan()'s. */
static bool writer_put_string(struct json_writer *w, const char *s, size_t len, size_t extra)
{
    char *p = writer_room(w, string_size(len, extra));
    if (p == NULL)
        return w->error == JSON_WRITE_OK;
    string_fill(p, s, len, extra);
    return true;
}

/* Decimal, as "%" PRId64 writes it. buf holds 20 bytes; returns where the digits start. */
static char *format_int64(char buf[20], int64_t n)
{
    static const char pairs[] = "000102030405060708091011121314151617181920212223242526272829"
                                "303132333435363738394041424344454647484950515253545556575859"
                                "606162636465666768697071727374757677787980818283848586878889"
                                "90919293949596979899";
    uint64_t u = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    char *p = buf + 20;
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        *--p = pairs[d + 1];
        *--p = pairs[d];
    }
    if (u >= 10) {
        unsigned d = (unsigned)u * 2;
        *--p = pairs[d + 1];
        *--p = pairs[d];
    } else {
        *--p = (char)('0' + u);
    }
    if (n < 0)
        *--p = '-';
    return p;
}

/*
 * A double as libjansson writes it (jsonp_dtostr() at its default precision): "%.17g", the
 * locale's decimal point made '.', ".0" appended when there is neither a '.' nor an 'e', and the
 * exponent without '+' or leading zeros ("1e+22" gives "1e22", "2.5e-05" gives "2.5e-5").
 */
static size_t format_double(char buf[64], double d)
{
    int m = snprintf(buf, 64, "%.17g", d);
    if (m < 0 || m >= 64 - 3)
        return 0; /* not reached: a finite double takes at most 24 bytes */
    size_t n = (size_t)m;
    const char *point = localeconv()->decimal_point;
    if (point[0] != '.' && point[0] != '\0') {
        char *at = strchr(buf, point[0]);
        if (at != NULL)
            *at = '.';
    }
    if (strchr(buf, '.') == NULL && strchr(buf, 'e') == NULL) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    char *start = strchr(buf, 'e');
    if (start != NULL) {
        start++;
        char *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, n + 1 - (size_t)(end - buf));
            n -= (size_t)(end - start);
        }
    }
    return n;
}

/* ---- Writer: the keys of the open objects ---- */

static uint64_t key_hash(uint64_t seed, const char *key, size_t len)
{
    const uint64_t m = 0x9E3779B97F4A7C15u;
    uint64_t h = seed ^ (len * m);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, key + i, 8);
        h = (h ^ x) * m;
        h ^= h >> 29;
    }
    if (i < len) {
        /* The tail: the last 8 bytes when there are as many, else byte by byte. */
        uint64_t x = 0;
        if (len >= 8)
            memcpy(&x, key + len - 8, 8);
        else
            for (; i < len; i++)
                x = x << 8 | (unsigned char)key[i];
        h = (h ^ x) * m;
        h ^= h >> 29;
    }
    h *= m;
    return h ^ (h >> 32);
}

/* Puts entry index into the table (which has a free slot). */
static void keys_place(struct key_set *ks, size_t index)
{
    size_t mask = ks->table_size - 1;
    size_t slot = (size_t)ks->entries[index].hash & mask;
    while (ks->table[slot] != 0)
        slot = (slot + 1) & mask;
    ks->table[slot] = (uint32_t)(index + 1);
    ks->entries[index].slot = slot;
}

/*
 * Adds key to the innermost object, whose entries start at base. *seen says whether it was
 * there already (then nothing is added). False when out of memory.
 */
static bool keys_add(struct key_set *ks, size_t base, const char *key, size_t len, bool *seen)
{
    uint64_t hash = key_hash(ks->seed, key, len);
    *seen = false;
    if (ks->table_size > 0) {
        size_t mask = ks->table_size - 1;
        for (size_t slot = (size_t)hash & mask; ks->table[slot] != 0; slot = (slot + 1) & mask) {
            size_t index = ks->table[slot] - 1;
            const struct key_entry *e = &ks->entries[index];
            /* (an empty key: no bytes kept yet, and memcmp must not see a null pointer) */
            if (e->hash == hash && index >= base && e->len == len &&
                (len == 0 || memcmp(ks->bytes + e->off, key, len) == 0)) {
                *seen = true;
                return true;
            }
        }
    }
    if (ks->count >= UINT32_MAX - 1)
        return false;
    if (ks->count == ks->entries_cap) {
        size_t cap = ks->entries_cap ? ks->entries_cap * 2 : 64;
        struct key_entry *e = realloc(ks->entries, cap * sizeof(*e));
        if (e == NULL)
            return false;
        ks->entries = e;
        ks->entries_cap = cap;
    }
    if (len > ks->bytes_cap - ks->bytes_len) {
        size_t cap = ks->bytes_cap ? ks->bytes_cap : 1024;
        while (cap - ks->bytes_len < len)
            cap *= 2;
        char *b = realloc(ks->bytes, cap);
        if (b == NULL)
            return false;
        ks->bytes = b;
        ks->bytes_cap = cap;
    }
    if ((ks->count + 1) * 2 > ks->table_size) {
        size_t size = ks->table_size ? ks->table_size * 2 : 128;
        uint32_t *t = realloc(ks->table, size * sizeof(*t));
        if (t == NULL)
            return false;
        memset(t, 0, size * sizeof(*t));
        ks->table = t;
        ks->table_size = size;
        for (size_t i = 0; i < ks->count; i++) /* in order, as they were added */
            keys_place(ks, i);
    }
    struct key_entry *e = &ks->entries[ks->count];
    e->hash = hash;
    e->off = ks->bytes_len;
    e->len = len;
    if (len > 0)
        memcpy(ks->bytes + ks->bytes_len, key, len);
    ks->bytes_len += len;
    keys_place(ks, ks->count++);
    return true;
}

/* ---- Writer: calls ---- */

/*
 * Places the next value (least is the fewest bytes it takes) where it goes: the top level, the
 * innermost array (after a comma and the indent), or the innermost object under the pending
 * key, which writing the key has laid out already.
 */
static bool writer_place(struct json_writer *w, size_t least)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth == 0) {
        if (w->has_root)
            return writer_fail(w, JSON_WRITE_MISUSE);
        w->has_root = true;
        return writer_grow(w, least);
    }
    struct writer_frame *f = &w->open[w->depth - 1];
    if (f->object) {
        /* A JSON object has each key once. */
        if (!w->key_pending || w->key_duplicate)
            return writer_fail(w, JSON_WRITE_MISUSE);
        w->key_pending = false;
        f->count++;
        return writer_grow(w, least);
    }
    bool comma = f->count > 0;
    f->count++;
    return writer_grow(w, least + comma) && writer_put_break(w, comma, w->depth, 0);
}

static bool writer_begin(struct json_writer *w, bool object)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth >= JSON_WRITER_MAX_DEPTH)
        return writer_fail(w, JSON_WRITE_TOO_DEEP);
    if (!writer_place(w, 1) || !writer_put(w, object ? "{" : "[", 1))
        return false;
    w->open[w->depth++] =
        (struct writer_frame){.object = object, .count = 0, .keys_base = w->keys.count};
    return true;
}

static bool writer_end(struct json_writer *w, bool object)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth == 0 || w->open[w->depth - 1].object != object || w->key_pending)
        return writer_fail(w, JSON_WRITE_MISUSE);
    const struct writer_frame *f = &w->open[--w->depth];
    if (object)
        keys_pop(&w->keys, f->keys_base);
    if (!writer_grow(w, 1))
        return false;
    char closer = object ? '}' : ']';
    return f->count > 0 ? writer_put_break(w, false, w->depth, closer) : writer_put(w, &closer, 1);
}

bool json_write_begin_object(struct json_writer *w)
{
    return writer_begin(w, true);
}

bool json_write_end_object(struct json_writer *w)
{
    return writer_end(w, true);
}

bool json_write_begin_array(struct json_writer *w)
{
    return writer_begin(w, false);
}

bool json_write_end_array(struct json_writer *w)
{
    return writer_end(w, false);
}

/* A member's name and what precedes and follows it (a comma after an earlier member, in the
 * pretty layout a newline and indent, and the colon), ready for its value. */
static bool writer_put_key(struct json_writer *w, const struct writer_frame *f, const char *key,
                           size_t len, size_t extra)
{
    bool pretty = w->flags & JSON_WRITER_PRETTY;
    size_t indent = pretty ? 2 * w->depth : 0;
    size_t size = string_size(len, extra);
    if (size > SIZE_MAX - 4 - indent)
        size = SIZE_MAX;
    else
        size += (f->count > 0) + (pretty ? 1 + indent + 2 : 1);
    char *p = writer_room(w, size);
    if (p == NULL)
        return w->error == JSON_WRITE_OK;
    if (f->count > 0)
        *p++ = ',';
    if (pretty) {
        *p++ = '\n';
        memset(p, ' ', indent);
        p += indent;
    }
    p = string_fill(p, key, len, extra);
    *p++ = ':';
    if (pretty)
        *p = ' ';
    return true;
}

bool json_write_keyn(struct json_writer *w, const char *key, size_t len)
{
    size_t extra;
    if (w->error != JSON_WRITE_OK)
        return false;
    if (w->depth == 0 || key == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    struct writer_frame *f = &w->open[w->depth - 1];
    if (!f->object || w->key_pending)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (!string_scan(key, len, &extra))
        return writer_fail(w, JSON_WRITE_UTF8);
    /* Quotes and colon, and a comma after an earlier member: counted before the key is kept,
     * so that the key set stays within the maximum too. */
    if (len > SIZE_MAX - 4 || !writer_grow(w, len + 3 + (f->count > 0)))
        return writer_fail(w, JSON_WRITE_TOO_LARGE);
    if (!keys_add(&w->keys, f->keys_base, key, len, &w->key_duplicate))
        return writer_fail(w, JSON_WRITE_NOMEM);
    w->key_pending = true;
    return writer_put_key(w, f, key, len, extra);
}

bool json_write_key(struct json_writer *w, const char *key)
{
    if (key == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    return json_write_keyn(w, key, strlen(key));
}

bool json_write_stringn(struct json_writer *w, const char *s, size_t len)
{
    size_t extra;
    if (w->error != JSON_WRITE_OK)
        return false;
    if (s == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (!string_scan(s, len, &extra))
        return writer_fail(w, JSON_WRITE_UTF8);
    if (len > w->max - w->least)
        return writer_fail(w, JSON_WRITE_TOO_LARGE);
    return writer_place(w, len + 2) && writer_put_string(w, s, len, extra);
}

bool json_write_string(struct json_writer *w, const char *s)
{
    if (s == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    return json_write_stringn(w, s, strlen(s));
}

bool json_write_string_or_null(struct json_writer *w, const char *s)
{
    return s == NULL ? json_write_null(w) : json_write_string(w, s);
}

bool json_write_int64(struct json_writer *w, int64_t n)
{
    char buf[20];
    if (!writer_place(w, 1))
        return false;
    const char *p = format_int64(buf, n);
    return writer_put(w, p, (size_t)(buf + sizeof(buf) - p));
}

bool json_write_uint64(struct json_writer *w, uint64_t n)
{
    if (n > INT64_MAX)
        return writer_fail(w, JSON_WRITE_NUMBER);
    return json_write_int64(w, (int64_t)n);
}

bool json_write_double(struct json_writer *w, double d)
{
    char buf[64];
    if (!isfinite(d))
        return writer_fail(w, JSON_WRITE_NUMBER);
    if (!writer_place(w, 1))
        return false;
    return writer_put(w, buf, format_double(buf, d));
}

bool json_write_bool(struct json_writer *w, bool b)
{
    if (!writer_place(w, b ? 4 : 5))
        return false;
    return b ? writer_put(w, "true", 4) : writer_put(w, "false", 5);
}

bool json_write_null(struct json_writer *w)
{
    return writer_place(w, 4) && writer_put(w, "null", 4);
}

bool json_write_raw(struct json_writer *w, const char *json, size_t len)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (json == NULL || len == 0)
        return writer_fail(w, JSON_WRITE_MISUSE);
    const struct json_limits limits = {
        .max_bytes = len, .max_depth = JSON_WRITER_MAX_DEPTH - w->depth, .max_nodes = SIZE_MAX};
    struct json_doc *doc = NULL;
    enum json_error e = json_parse(json, len, &limits, &doc, NULL);
    if (e != JSON_OK)
        return writer_fail(w, e == JSON_ERR_TOO_DEEP ? JSON_WRITE_TOO_DEEP
                              : e == JSON_ERR_NOMEM  ? JSON_WRITE_NOMEM
                                                     : JSON_WRITE_MISUSE);
    bool ok = json_write_value(w, json_doc_root(doc));
    json_doc_free(doc);
    return ok;
}

/* Writes a parsed value whose containers open at depth + 1. Its keys are unique (the parser
 * refuses duplicates) and its strings valid UTF-8; the recursion is bounded by the caller's
 * height check. */
static bool writer_put_value(struct json_writer *w, const struct json_value *v, size_t depth)
{
    const char *s;
    size_t len, extra;
    bool b;

    switch (v->type) {
    case JSON_KIND_NULL:
        return writer_put(w, "null", 4);
    case JSON_KIND_BOOL:
        b = json_typeof(v->j) == JSON_TRUE;
        return b ? writer_put(w, "true", 4) : writer_put(w, "false", 5);
    case JSON_KIND_NUMBER:
        return writer_put(w, v->u.number, strlen(v->u.number));
    case JSON_KIND_STRING:
        s = json_string_value(v->j);
        len = json_string_length(v->j);
        if (!string_scan(s, len, &extra))
            return writer_fail(w, JSON_WRITE_UTF8);
        return writer_put_string(w, s, len, extra);
    case JSON_KIND_ARRAY:
        if (!writer_put(w, "[", 1))
            return false;
        for (size_t i = 0; i < v->count && !w->overflow; i++) {
            if (!writer_put_break(w, i > 0, depth + 1, 0) ||
                !writer_put_value(w, &v->u.items[i], depth + 1))
                return false;
        }
        return v->count > 0 ? writer_put_break(w, false, depth, ']') : writer_put(w, "]", 1);
    case JSON_KIND_OBJECT:
        if (!writer_put(w, "{", 1))
            return false;
        for (size_t i = 0; i < v->count && !w->overflow; i++) {
            const struct json_member *m = &v->u.members[i];
            if (!writer_put_break(w, i > 0, depth + 1, 0))
                return false;
            if (!string_scan(m->key, m->key_len, &extra))
                return writer_fail(w, JSON_WRITE_UTF8);
            if (!writer_put_string(w, m->key, m->key_len, extra) ||
                !writer_put(w, (w->flags & JSON_WRITER_PRETTY) ? ": " : ":",
                            (w->flags & JSON_WRITER_PRETTY) ? 2 : 1) ||
                !writer_put_value(w, &m->value, depth + 1))
                return false;
        }
        return v->count > 0 ? writer_put_break(w, false, depth, '}') : writer_put(w, "}", 1);
    }
    return writer_fail(w, JSON_WRITE_MISUSE);
}

bool json_write_value(struct json_writer *w, const struct json_value *v)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (v == NULL)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (v->height > JSON_WRITER_MAX_DEPTH - w->depth)
        return writer_fail(w, JSON_WRITE_TOO_DEEP);
    if (!writer_place(w, 1))
        return false;
    /* The text stops at the maximum: a large value need not be walked to its end. */
    return w->overflow || writer_put_value(w, v, w->depth);
}

bool json_writer_finish(struct json_writer *w, const char **data, size_t *len)
{
    if (w->error != JSON_WRITE_OK)
        return false;
    if (!w->has_root || w->depth != 0)
        return writer_fail(w, JSON_WRITE_MISUSE);
    if (w->overflow)
        return writer_fail(w, JSON_WRITE_TOO_LARGE);
    w->text[w->len] = '\0'; /* writer_room() left a byte for it */
    if (data != NULL)
        *data = w->text;
    if (len != NULL)
        *len = w->len;
    return true;
}
