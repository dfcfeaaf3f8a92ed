/*
 * conf: the generic reader of `key = value` configuration, for any program: a file's text (lines,
 * `#` comment lines, blanks trimmed, a value running to the end of its line) and the
 * environment (PREFIX<KEY>, upper case, which wins over the file), into the fields of the caller's
 * struct, described by a table of keys. Numbers are checked against their bounds, durations take
 * a unit (s, m, h, d), booleans are true or false, log levels are log.h's. Every error names the
 * line or the variable and the key.
 *
 * Pure: no I/O (the caller reads the file and passes the environment). The caller owns the
 * target struct; string fields are malloc()ed here, and the previous value freed, so the caller
 * frees them when it is done.
 */
#ifndef VOUCH_CONF_H
#define VOUCH_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conf_kind {
    CONF_STRING,    /* char *, malloc()ed */
    CONF_SIZE,      /* size_t, a whole number within [min, max] */
    CONF_UINT,      /* unsigned, a whole number within [min, max] */
    CONF_DURATION,  /* unsigned seconds, a whole number with an optional unit, within [min, max] */
    CONF_LOG_LEVEL, /* char *: debug, info, warn or error */
    CONF_BOOL,      /* bool: true or false */
};

struct conf_key {
    const char *name;
    enum conf_kind kind;
    size_t offset; /* of the field in the target struct */
    uint64_t min, max;
};

struct conf_schema {
    const struct conf_key *keys;
    size_t key_count;
    const char *env_prefix;         /* "VOUCH_" */
    const char *const *env_ignored; /* lower-case names after the prefix that belong to other
                                       programs, NULL-terminated; any other unknown one is an
                                       error */
    /* Keys of the file starting with family_prefix (NULL: none) are a family of the caller's,
     * named at run time ("policy.web.require"): each goes to family(), with its line number,
     * instead of being an unknown key. False with a message in err stops the parse. The
     * environment cannot set them. */
    const char *family_prefix;
    bool (*family)(void *target, const char *key, const char *value, unsigned line, char *err,
                   size_t err_size);
};

/* Sets the fields named in text (a file's contents). False with a message at the first bad line:
 * unknown key, no '=', a NUL byte, a value too long or out of its kind or bounds. */
bool conf_parse_text(void *target, const struct conf_schema *schema, const char *text,
                     size_t text_len, char *err, size_t err_size)
    __attribute__((warn_unused_result));

/* Sets the fields named by PREFIX<KEY> variables of envp (NULL: none). */
bool conf_parse_env(void *target, const struct conf_schema *schema, char *const *envp, char *err,
                    size_t err_size) __attribute__((warn_unused_result));

/* "90", "90s", "15m", "24h", "7d": seconds. False for anything else, or too large. */
bool conf_parse_duration(const char *text, uint64_t *seconds) __attribute__((warn_unused_result));

#endif
