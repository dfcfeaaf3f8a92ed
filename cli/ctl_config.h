/*
 * ctl_config: the reader of vouchctl's configuration file (vouchctl.conf), pure: it takes the
 * file's text and says what it names, and does no I/O (settings.c finds and reads the file).
 *
 * The format is lib/conf's `key = value` lines, in sections an operator writes by hand:
 *
 *     default = prod               # the server used without --server (optional)
 *
 *     [server prod]
 *     url = https://mdm.example.com
 *     token_file = prod.token      # relative to the file's folder; mode 0600 or stricter
 *     ca_file = /etc/ssl/mdm-ca.pem  # optional: the CA that signed the server's certificate
 *
 * Keys before the first section are the file's own (default); a section takes url, token_file
 * and ca_file. Every error names its line. Ownership: the strings of a struct ctl_config_server are
 * malloc()ed here and freed with ctl_config_server_clear().
 */
#ifndef VOUCH_CLI_CTL_CONFIG_H
#define VOUCH_CLI_CTL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* What the file says about one server. */
struct ctl_config_server {
    char *name; /* the section's name */
    char *url;
    char *token_file;
    char *ca_file;
};

enum ctl_config_result {
    CTL_CONFIG_FOUND = 0, /* *out holds the server */
    CTL_CONFIG_NO_SERVER, /* name is NULL and the file names no default: nothing to take */
    CTL_CONFIG_UNKNOWN,   /* no [server NAME] section for the name asked (or the default) */
    CTL_CONFIG_BAD_FILE,  /* the file is malformed: err says where */
};

/*
 * Parses the whole text (every section is checked, not only the one asked) and fills *out with
 * section `name`, or, when name is NULL, with the file's default server. err (err_size bytes)
 * says what is wrong on CTL_CONFIG_BAD_FILE and CTL_CONFIG_UNKNOWN.
 */
enum ctl_config_result ctl_config_parse(const char *text, size_t len, const char *name,
                                        struct ctl_config_server *out, char *err, size_t err_size)
    __attribute__((warn_unused_result));

/* Calls visit with the name of each [server NAME] section, in the file's order; false when the
 * file is malformed. */
bool ctl_config_list_servers(const char *text, size_t len,
                             void (*visit)(void *arg, const char *name), void *arg)
    __attribute__((warn_unused_result));

void ctl_config_server_clear(struct ctl_config_server *s);

#endif
