/* ctl_config: see ctl_config.h. */
#include "ctl_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define CONFIG_NAME_MAX 64

struct config_top {
    char *default_server;
};

static const struct conf_key top_keys[] = {
    {"default", CONF_STRING, offsetof(struct config_top, default_server), 0, 0},
};
static const struct conf_key server_keys[] = {
    {"url", CONF_STRING, offsetof(struct ctl_config_server, url), 0, 0},
    {"token_file", CONF_STRING, offsetof(struct ctl_config_server, token_file), 0, 0},
    {"ca_file", CONF_STRING, offsetof(struct ctl_config_server, ca_file), 0, 0},
};
static const struct conf_schema top_schema = {top_keys, 1, "VOUCHCTL_", NULL, NULL, NULL};
static const struct conf_schema server_schema = {server_keys, 3, "VOUCHCTL_", NULL, NULL, NULL};

/* One [server NAME] section: its body runs from body to end (offsets into the text). */
struct config_section {
    char name[CONFIG_NAME_MAX + 1];
    size_t body, end;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/*
 * Finds the section headers. *sections (freed by the caller) gets one entry per section, *top_end
 * the end of the keys before the first one. False with err on a malformed header or a name used
 * twice.
 */
static bool find_sections(const char *text, size_t len, struct config_section **sections,
                          size_t *count, size_t *top_end, char *err, size_t err_size)
{
    unsigned line_no = 0;

    *sections = NULL;
    *count = 0;
    *top_end = len;
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        size_t next = pos + line_len + (nl != NULL);
        line_no++;
        while (line_len > 0 && is_blank(*line)) {
            line++;
            line_len--;
        }
        while (line_len > 0 && is_blank(line[line_len - 1]))
            line_len--;
        if (line_len == 0 || line[0] != '[') {
            pos = next;
            continue;
        }
        static const char prefix[] = "[server ";
        size_t plen = sizeof(prefix) - 1;
        size_t name_len = line_len > plen + 1 ? line_len - plen - 1 : 0;
        bool ok = line_len > plen + 1 && memcmp(line, prefix, plen) == 0 &&
                  line[line_len - 1] == ']' && name_len <= CONFIG_NAME_MAX;
        for (size_t i = 0; ok && i < name_len; i++)
            ok = name_char(line[plen + i]);
        if (!ok) {
            snprintf(err, err_size,
                     "line %u: expected a section header [server NAME] (NAME: letters, digits, "
                     ". _ -, at most %d)",
                     line_no, CONFIG_NAME_MAX);
            goto fail;
        }
        for (size_t i = 0; i < *count; i++) {
            if (strlen((*sections)[i].name) == name_len &&
                memcmp((*sections)[i].name, line + plen, name_len) == 0) {
                snprintf(err, err_size, "line %u: a second [server %.*s]", line_no, (int)name_len,
                         line + plen);
                goto fail;
            }
        }
        struct config_section *ns = realloc(*sections, (*count + 1) * sizeof(**sections));
        if (ns == NULL) {
            snprintf(err, err_size, "out of memory");
            goto fail;
        }
        *sections = ns;
        struct config_section *s = &ns[*count];
        memcpy(s->name, line + plen, name_len);
        s->name[name_len] = '\0';
        s->body = next;
        s->end = len;
        if (*count > 0)
            ns[*count - 1].end = pos;
        else
            *top_end = pos;
        (*count)++;
        pos = next;
    }
    return true;
fail:
    free(*sections);
    *sections = NULL;
    *count = 0;
    return false;
}

/* Parses text[from, to) with schema into target; the rest of the text is blanked, so that the
 * line numbers of errors are the file's. */
static bool parse_part(const char *text, size_t len, size_t from, size_t to, void *target,
                       const struct conf_schema *schema, char *err, size_t err_size)
{
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    for (size_t i = 0; i < len; i++)
        copy[i] = (i >= from && i < to) || text[i] == '\n' ? text[i] : ' ';
    copy[len] = '\0';
    bool ok = conf_parse_text(target, schema, copy, len, err, err_size);
    free(copy);
    return ok;
}

void ctl_config_server_clear(struct ctl_config_server *s)
{
    free(s->name);
    free(s->url);
    free(s->token_file);
    free(s->ca_file);
    memset(s, 0, sizeof(*s));
}

enum ctl_config_result ctl_config_parse(const char *text, size_t len, const char *name,
                                        struct ctl_config_server *out, char *err, size_t err_size)
{
    struct config_section *sections = NULL;
    struct config_top top = {0};
    size_t count = 0, top_end = 0;
    enum ctl_config_result result = CTL_CONFIG_BAD_FILE;

    memset(out, 0, sizeof(*out));
    if (memchr(text, '\0', len) != NULL) {
        snprintf(err, err_size, "a NUL byte in the file");
        return CTL_CONFIG_BAD_FILE;
    }
    if (!find_sections(text, len, &sections, &count, &top_end, err, err_size) ||
        !parse_part(text, len, 0, top_end, &top, &top_schema, err, err_size))
        goto out;
    /* Every section is read, so that a mistake is found where it is, not on the day it is used. */
    const char *wanted = name != NULL ? name : top.default_server;
    for (size_t i = 0; i < count; i++) {
        struct ctl_config_server s = {0};
        if (!parse_part(text, len, sections[i].body, sections[i].end, &s, &server_schema, err,
                        err_size)) {
            ctl_config_server_clear(&s);
            ctl_config_server_clear(out);
            goto out;
        }
        if (wanted != NULL && strcmp(sections[i].name, wanted) == 0) {
            s.name = strdup(sections[i].name);
            if (s.name == NULL) {
                snprintf(err, err_size, "out of memory");
                ctl_config_server_clear(&s);
                goto out;
            }
            *out = s;
        } else {
            ctl_config_server_clear(&s);
        }
    }
    if (wanted == NULL) {
        result = CTL_CONFIG_NO_SERVER;
    } else if (out->name == NULL) {
        snprintf(err, err_size, "no [server %s] section%s", wanted,
                 name == NULL ? " (named by default =)" : "");
        result = CTL_CONFIG_UNKNOWN;
    } else {
        result = CTL_CONFIG_FOUND;
    }
out:
    free(top.default_server);
    free(sections);
    return result;
}

bool ctl_config_list_servers(const char *text, size_t len,
                             void (*visit)(void *arg, const char *name), void *arg)
{
    struct config_section *sections = NULL;
    size_t count = 0, top_end = 0;
    char err[256];

    if (memchr(text, '\0', len) != NULL ||
        !find_sections(text, len, &sections, &count, &top_end, err, sizeof(err)))
        return false;
    for (size_t i = 0; i < count; i++)
        visit(arg, sections[i].name);
    free(sections);
    return true;
}
