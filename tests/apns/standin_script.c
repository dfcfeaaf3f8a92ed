/*
 * standin_script: see standin_script.h. Rules are kept in a chained hash table keyed by token,
 * each key holding a FIFO of rules; the "*" rules have a queue of their own.
 */
#include "standin_script.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 200
#define LINE_MAX_WORDS 8
#define INITIAL_BUCKETS 64

struct rule {
    struct standin_answer answer;
    long remaining; /* -1: forever */
    struct rule *next;
};

struct rule_queue {
    struct rule *head;
    struct rule *tail;
};

struct key_entry {
    char key[KEY_MAX + 1];
    struct rule_queue rules;
    struct key_entry *next;
};

struct standin_script {
    struct key_entry **buckets;
    size_t nbuckets;
    size_t nkeys;
    size_t nrules;
    struct rule_queue wildcard;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "apns-standin: out of memory\n");
        abort();
    }
    return p;
}

static uint64_t hash_key(const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *key != '\0'; key++) {
        h ^= (unsigned char)*key;
        h *= 1099511628211ull;
    }
    return h;
}

struct standin_script *standin_script_new(void)
{
    struct standin_script *s = xcalloc(1, sizeof(*s));
    s->nbuckets = INITIAL_BUCKETS;
    s->buckets = xcalloc(s->nbuckets, sizeof(*s->buckets));
    return s;
}

static void queue_free(struct rule_queue *q)
{
    struct rule *r = q->head;
    while (r != NULL) {
        struct rule *next = r->next;
        free(r);
        r = next;
    }
    q->head = q->tail = NULL;
}

void standin_script_clear(struct standin_script *s)
{
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct key_entry *e = s->buckets[i];
        while (e != NULL) {
            struct key_entry *next = e->next;
            queue_free(&e->rules);
            free(e);
            e = next;
        }
        s->buckets[i] = NULL;
    }
    queue_free(&s->wildcard);
    s->nkeys = 0;
    s->nrules = 0;
}

void standin_script_free(struct standin_script *s)
{
    if (s == NULL)
        return;
    standin_script_clear(s);
    free(s->buckets);
    free(s);
}

size_t standin_script_count(const struct standin_script *s)
{
    return s->nrules;
}

static struct key_entry *find_key(const struct standin_script *s, const char *key)
{
    struct key_entry *e = s->buckets[hash_key(key) & (s->nbuckets - 1)];
    while (e != NULL && strcmp(e->key, key) != 0)
        e = e->next;
    return e;
}

static void grow_buckets(struct standin_script *s)
{
    size_t n = s->nbuckets * 2;
    struct key_entry **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct key_entry *e = s->buckets[i];
        while (e != NULL) {
            struct key_entry *next = e->next;
            size_t j = hash_key(e->key) & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

static struct rule_queue *queue_for(struct standin_script *s, const char *key)
{
    if (strcmp(key, "*") == 0)
        return &s->wildcard;
    struct key_entry *e = find_key(s, key);
    if (e != NULL)
        return &e->rules;
    if (s->nkeys >= s->nbuckets)
        grow_buckets(s);
    e = xcalloc(1, sizeof(*e));
    snprintf(e->key, sizeof(e->key), "%s", key);
    size_t j = hash_key(key) & (s->nbuckets - 1);
    e->next = s->buckets[j];
    s->buckets[j] = e;
    s->nkeys++;
    return &e->rules;
}

static void remove_key(struct standin_script *s, const char *key)
{
    struct key_entry **pp = &s->buckets[hash_key(key) & (s->nbuckets - 1)];
    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    if (*pp == NULL)
        return;
    struct key_entry *e = *pp;
    *pp = e->next;
    free(e);
    s->nkeys--;
}

/* --- parsing --------------------------------------------------------------------------------- */

static const char *default_reason(int status)
{
    switch (status) {
    case 400:
        return "BadDeviceToken";
    case 403:
        return "BadCertificate";
    case 404:
        return "BadPath";
    case 405:
        return "MethodNotAllowed";
    case 410:
        return "Unregistered";
    case 413:
        return "PayloadTooLarge";
    case 429:
        return "TooManyRequests";
    case 500:
        return "InternalServerError";
    case 503:
        return "ServiceUnavailable";
    default:
        return "InternalServerError";
    }
}

static bool parse_number(const char *s, long long max, long long *out)
{
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > max)
        return false;
    *out = v;
    return true;
}

static bool is_reason(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > STANDIN_REASON_MAX)
        return false;
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static bool is_key(const char *s)
{
    size_t n = strlen(s);
    if (strcmp(s, "*") == 0)
        return true;
    if (n == 0 || n > KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

struct parsed_rule {
    char key[KEY_MAX + 1];
    struct rule rule;
};

static bool line_error(char *err, size_t err_size, size_t lineno, const char *why)
{
    snprintf(err, err_size, "line %zu: %s", lineno, why);
    return false;
}

/* Parses the words of one rule line into out. */
static bool parse_rule(char **w, size_t nw, size_t lineno, struct parsed_rule *out, char *err,
                       size_t err_size)
{
    struct standin_answer *a = &out->rule.answer;
    long long n;
    size_t i = 2;

    memset(out, 0, sizeof(*out));
    out->rule.remaining = -1;
    a->timestamp_ms = -1;
    if (nw < 2)
        return line_error(err, err_size, lineno, "expected KEY ACTION [COUNT]");
    if (!is_key(w[0]))
        return line_error(err, err_size, lineno, "KEY must be a hex device token or *");
    for (size_t k = 0; w[0][k] != '\0'; k++)
        out->key[k] = (char)(w[0][k] >= 'A' && w[0][k] <= 'F' ? w[0][k] - 'A' + 'a' : w[0][k]);

    if (strcmp(w[1], "goaway") == 0) {
        a->kind = STANDIN_ANSWER_GOAWAY;
    } else if (strcmp(w[1], "delay") == 0) {
        if (nw < 3 || !parse_number(w[2], 3600000, &n))
            return line_error(err, err_size, lineno, "delay needs milliseconds (0..3600000)");
        a->kind = STANDIN_ANSWER_DELAY;
        a->delay_ms = (unsigned)n;
        i = 3;
    } else if (parse_number(w[1], 599, &n) && (n == 200 || n >= 400)) {
        if (n == 200) {
            a->kind = STANDIN_ANSWER_NORMAL;
        } else {
            a->kind = STANDIN_ANSWER_STATUS;
            a->status = (int)n;
            snprintf(a->reason, sizeof(a->reason), "%s", default_reason(a->status));
            if (i < nw && is_reason(w[i]))
                snprintf(a->reason, sizeof(a->reason), "%s", w[i++]);
            if (i < nw && strncmp(w[i], "ts=", 3) == 0) {
                if (!parse_number(w[i] + 3, INT64_MAX / 2, &a->timestamp_ms))
                    return line_error(err, err_size, lineno, "ts= needs milliseconds");
                i++;
            }
        }
    } else {
        return line_error(err, err_size, lineno,
                          "ACTION must be 200, a status 400..599, goaway or delay MS");
    }
    if (i < nw) {
        if (!parse_number(w[i], INT32_MAX, &n) || n == 0)
            return line_error(err, err_size, lineno, "COUNT must be a positive integer");
        out->rule.remaining = (long)n;
        i++;
    }
    if (i < nw)
        return line_error(err, err_size, lineno, "unexpected words after the rule");
    return true;
}

bool standin_script_add(struct standin_script *s, const char *text, size_t len, char *err,
                        size_t err_size)
{
    struct parsed_rule *parsed = NULL;
    size_t nparsed = 0, cap = 0;
    char line[1024];
    size_t lineno = 0;
    size_t pos = 0;
    bool ok = false;

    while (pos < len) {
        size_t start = pos;
        while (pos < len && text[pos] != '\n')
            pos++;
        size_t n = pos - start;
        pos++;
        lineno++;
        if (n > 0 && text[start + n - 1] == '\r')
            n--;
        if (n >= sizeof(line)) {
            line_error(err, err_size, lineno, "line too long");
            goto out;
        }
        memcpy(line, text + start, n);
        line[n] = '\0';
        if (memchr(line, '\0', n) != NULL) {
            line_error(err, err_size, lineno, "NUL in line");
            goto out;
        }

        char *w[LINE_MAX_WORDS + 1];
        size_t nw = 0;
        char *save = NULL;
        for (char *t = strtok_r(line, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
            if (nw == LINE_MAX_WORDS + 1)
                break;
            w[nw++] = t;
        }
        if (nw == 0 || w[0][0] == '#')
            continue;
        if (nw > LINE_MAX_WORDS) {
            line_error(err, err_size, lineno, "too many words");
            goto out;
        }
        if (s->nrules + nparsed >= STANDIN_SCRIPT_MAX_RULES) {
            line_error(err, err_size, lineno, "too many rules");
            goto out;
        }
        if (nparsed == cap) {
            cap = cap ? cap * 2 : 16;
            struct parsed_rule *grown = realloc(parsed, cap * sizeof(*parsed));
            if (grown == NULL) {
                line_error(err, err_size, lineno, "out of memory");
                goto out;
            }
            parsed = grown;
        }
        if (!parse_rule(w, nw, lineno, &parsed[nparsed], err, err_size))
            goto out;
        nparsed++;
    }

    for (size_t i = 0; i < nparsed; i++) {
        struct rule_queue *q = queue_for(s, parsed[i].key);
        struct rule *r = xcalloc(1, sizeof(*r));
        *r = parsed[i].rule;
        r->next = NULL;
        if (q->tail != NULL)
            q->tail->next = r;
        else
            q->head = r;
        q->tail = r;
        s->nrules++;
    }
    ok = true;
out:
    free(parsed);
    return ok;
}

/* --- answering ------------------------------------------------------------------------------- */

/* Takes one use of the head rule of q; true when q had one. */
static bool queue_take(struct standin_script *s, struct rule_queue *q, struct standin_answer *out)
{
    struct rule *r = q->head;
    if (r == NULL)
        return false;
    *out = r->answer;
    if (r->remaining > 0 && --r->remaining == 0) {
        q->head = r->next;
        if (q->head == NULL)
            q->tail = NULL;
        free(r);
        s->nrules--;
    }
    return true;
}

void standin_script_take(struct standin_script *s, const char *token, struct standin_answer *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = STANDIN_ANSWER_NORMAL;
    out->timestamp_ms = -1;
    if (s->nrules == 0)
        return;
    struct key_entry *e = find_key(s, token);
    if (e != NULL) {
        bool taken = queue_take(s, &e->rules, out);
        if (e->rules.head == NULL)
            remove_key(s, token);
        if (taken)
            return;
    }
    queue_take(s, &s->wildcard, out);
}

static void dump_queue(const char *key, const struct rule_queue *q,
                       void (*emit)(const char *line, void *arg), void *arg)
{
    for (const struct rule *r = q->head; r != NULL; r = r->next) {
        const struct standin_answer *a = &r->answer;
        char line[KEY_MAX + STANDIN_REASON_MAX + 96];
        char action[STANDIN_REASON_MAX + 64];
        char count[24] = "";
        switch (a->kind) {
        case STANDIN_ANSWER_NORMAL:
            snprintf(action, sizeof(action), "200");
            break;
        case STANDIN_ANSWER_GOAWAY:
            snprintf(action, sizeof(action), "goaway");
            break;
        case STANDIN_ANSWER_DELAY:
            snprintf(action, sizeof(action), "delay %u", a->delay_ms);
            break;
        case STANDIN_ANSWER_STATUS:
            if (a->timestamp_ms >= 0)
                snprintf(action, sizeof(action), "%d %s ts=%lld", a->status, a->reason,
                         a->timestamp_ms);
            else
                snprintf(action, sizeof(action), "%d %s", a->status, a->reason);
            break;
        }
        if (r->remaining > 0)
            snprintf(count, sizeof(count), " %ld", r->remaining);
        snprintf(line, sizeof(line), "%s %s%s\n", key, action, count);
        emit(line, arg);
    }
}

void standin_script_dump(const struct standin_script *s, void (*emit)(const char *line, void *arg),
                         void *arg)
{
    for (size_t i = 0; i < s->nbuckets; i++)
        for (const struct key_entry *e = s->buckets[i]; e != NULL; e = e->next)
            dump_queue(e->key, &e->rules, emit, arg);
    dump_queue("*", &s->wildcard, emit, arg);
}
