/*
 * settings: where vouchctl sends its requests and with which token, from the command line, the
 * environment and the configuration file (ctl_config.c reads its text; this module finds and reads
 * the files), and `vouchctl config`, which shows the outcome without the token.
 *
 * Precedence, for each value: the command line (--url, --token, --token-file, and the server
 * that --server names), then the environment (VOUCH_URL, VOUCH_ADMIN_TOKEN), then the file's
 * default server, then the built-in URL. A token file must be a regular file that neither group
 * nor others may read (as ssh wants of a private key).
 *
 * Ownership: a struct settings owns its strings; settings_clear() frees them and wipes the token.
 */
#ifndef VOUCH_CLI_SETTINGS_H
#define VOUCH_CLI_SETTINGS_H

#include <stdbool.h>

/* What the command line said (borrowed from argv; each may be NULL). */
struct settings_request {
    const char *url;
    const char *token;
    const char *token_file;
    const char *config; /* --config FILE */
    const char *server; /* --server NAME */
};

struct settings {
    char *config_path; /* the file read; NULL when there is none */
    char *server;      /* the server section used, or NULL */
    char *server_how;  /* "--server", "default = in the file" */
    char *url;
    char *url_source;   /* "--url", "VOUCH_URL", "server lab", "built-in default" */
    char *token;        /* NULL: none */
    char *token_source; /* "--token", "token_file /path (server lab)", ..., "none" */
    char *ca_file;      /* NULL: the system's CAs */
};

/* Fills *out. Returns an exit status (enum ctl_exit): a usage error or a failure, said on
 * stderr, when a file cannot be read, is malformed, or a token file is open to others. */
int settings_resolve(const struct settings_request *req, struct settings *out)
    __attribute__((warn_unused_result));
void settings_clear(struct settings *s);

#endif
