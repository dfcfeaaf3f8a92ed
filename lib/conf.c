/* conf: see conf.h. */
#include "conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const struct conf_key *key_find(const struct conf_schema *schema, const char *name,
                                       size_t len)
{
    for (size_t i = 0; i < schema->key_count; i++) {
        if (strlen(schema->keys[i].name) == len && strncmp(schema->keys[i].name, name, len) == 0)
            return &schema->keys[i];
    }
    return NULL;
}

static bool parse_uint(const char *text, uint64_t *out)
{
    if (*text < '0' || *text > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

bool conf_parse_duration(const char *text, uint64_t *seconds)
{
    size_t len = strlen(text);
    if (len == 0 || len > 30)
        return false;
    char digits[32];
    memcpy(digits, text, len + 1);
    uint64_t unit = 1;
    switch (digits[len - 1]) {
    case 's':
        unit = 1;
        digits[len - 1] = '\0';
        break;
    case 'm':
        unit = 60;
        digits[len - 1] = '\0';
        break;
    case 'h':
        unit = 3600;
        digits[len - 1] = '\0';
        break;
    case 'd':
        unit = 86400;
        digits[len - 1] = '\0';
        break;
    default:
        break;
    }
    uint64_t v;
    if (!parse_uint(digits, &v) || v > UINT64_MAX / unit)
        return false;
    *seconds = v * unit;
    return true;
}

static bool set_value(void *target, const struct conf_key *key, const char *value,
                      const char *origin, char *err, size_t err_size)
{
    char *field = (char *)target + key->offset;
    uint64_t v = 0;
    switch (key->kind) {
    case CONF_LOG_LEVEL: {
        enum log_level level;
        if (!log_parse_level(value, &level)) {
            snprintf(err, err_size, "%s: bad value for %s: expected debug, info, warn or error",
                     origin, key->name);
            return false;
        }
        __attribute__((fallthrough));
    }
    case CONF_STRING: {
        char *copy = strdup(value);
        if (copy == NULL) {
            snprintf(err, err_size, "out of memory");
            return false;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return true;
    }
    case CONF_BOOL:
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            snprintf(err, err_size, "%s: bad value for %s: expected true or false", origin,
                     key->name);
            return false;
        }
        *(bool *)field = strcmp(value, "true") == 0;
        return true;
    case CONF_SIZE:
    case CONF_UINT:
        if (!parse_uint(value, &v))
            goto bad_number;
        break;
    case CONF_DURATION:
        if (!conf_parse_duration(value, &v))
            goto bad_number;
        break;
    }
    if (v < key->min || v > key->max) {
        snprintf(err, err_size, "%s: %s = %s is out of range (%llu to %llu)", origin, key->name,
                 value, (unsigned long long)key->min, (unsigned long long)key->max);
        return false;
    }
    if (key->kind == CONF_SIZE)
        *(size_t *)field = (size_t)v;
    else
        *(unsigned *)field = (unsigned)v;
    return true;

bad_number:
    snprintf(err, err_size, "%s: bad value for %s: expected a whole number%s", origin, key->name,
             key->kind == CONF_DURATION ? " with an optional unit s, m, h or d" : "");
    return false;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

bool conf_parse_text(void *target, const struct conf_schema *schema, const char *text,
                     size_t text_len, char *err, size_t err_size)
{
    size_t pos = 0;
    unsigned line_no = 0;
    while (pos < text_len) {
        line_no++;
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', text_len - pos);
        size_t len = nl ? (size_t)(nl - line) : text_len - pos;
        pos += len + (nl ? 1 : 0);

        while (len > 0 && is_blank(*line)) {
            line++;
            len--;
        }
        while (len > 0 && is_blank(line[len - 1]))
            len--;
        if (len == 0 || line[0] == '#')
            continue;
        if (memchr(line, '\0', len) != NULL) {
            snprintf(err, err_size, "line %u: NUL byte", line_no);
            return false;
        }
        const char *eq = memchr(line, '=', len);
        if (eq == NULL) {
            snprintf(err, err_size, "line %u: expected key = value", line_no);
            return false;
        }
        size_t key_len = (size_t)(eq - line);
        while (key_len > 0 && is_blank(line[key_len - 1]))
            key_len--;
        const char *value = eq + 1;
        size_t value_len = len - (size_t)(value - line);
        while (value_len > 0 && is_blank(*value)) {
            value++;
            value_len--;
        }
        const struct conf_key *key = key_find(schema, line, key_len);
        size_t family_len = schema->family_prefix ? strlen(schema->family_prefix) : 0;
        if (key == NULL && family_len > 0 && key_len > family_len &&
            strncmp(line, schema->family_prefix, family_len) == 0) {
            char name[256], family_value[4096];
            if (key_len >= sizeof(name) || value_len >= sizeof(family_value)) {
                snprintf(err, err_size, "line %u: key or value too long", line_no);
                return false;
            }
            memcpy(name, line, key_len);
            name[key_len] = '\0';
            memcpy(family_value, value, value_len);
            family_value[value_len] = '\0';
            if (!schema->family(target, name, family_value, line_no, err, err_size))
                return false;
            continue;
        }
        if (key == NULL) {
            char name[64];
            snprintf(err, err_size, "line %u: unknown key '%s'", line_no,
                     log_sanitize(line, key_len, name, sizeof(name)));
            return false;
        }
        char value_copy[4096];
        if (value_len >= sizeof(value_copy)) {
            snprintf(err, err_size, "line %u: value of %s is too long", line_no, key->name);
            return false;
        }
        memcpy(value_copy, value, value_len);
        value_copy[value_len] = '\0';
        char origin[32];
        snprintf(origin, sizeof(origin), "line %u", line_no);
        if (!set_value(target, key, value_copy, origin, err, err_size))
            return false;
    }
    return true;
}

static bool env_ignored(const struct conf_schema *schema, const char *name)
{
    for (const char *const *i = schema->env_ignored; i != NULL && *i != NULL; i++) {
        if (strcmp(*i, name) == 0)
            return true;
    }
    return false;
}

bool conf_parse_env(void *target, const struct conf_schema *schema, char *const *envp, char *err,
                    size_t err_size)
{
    size_t prefix_len = strlen(schema->env_prefix);
    for (; envp != NULL && *envp != NULL; envp++) {
        const char *entry = *envp;
        if (strncmp(entry, schema->env_prefix, prefix_len) != 0)
            continue;
        const char *name = entry + prefix_len;
        const char *eq = strchr(name, '=');
        if (eq == NULL)
            continue;
        char lower[64];
        size_t len = (size_t)(eq - name);
        if (len >= sizeof(lower))
            len = sizeof(lower) - 1;
        for (size_t i = 0; i < len; i++)
            lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
        lower[len] = '\0';
        const struct conf_key *key = key_find(schema, lower, len);
        if (key == NULL) {
            if (env_ignored(schema, lower))
                continue;
            snprintf(err, err_size, "environment: unknown key %s%.*s", schema->env_prefix, (int)len,
                     name);
            return false;
        }
        char origin[80];
        snprintf(origin, sizeof(origin), "environment %s%.*s", schema->env_prefix, (int)len, name);
        if (!set_value(target, key, eq + 1, origin, err, err_size))
            return false;
    }
    return true;
}
