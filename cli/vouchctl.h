/*
 * vouchctl: the operator CLI, a client of vouchd's admin API.
 *
 * main() (vouchctl.c) parses the command line into a struct ctl, opens the client and runs one
 * subcommand (commands.c, devices.c, expected.c, certs.c, attestations.c, events.c, push.c,
 * profile.c, tokens.c, trust.c, migrate.c, on api.c; the offline `verify`, verify.c, gets no client but with
 * --server; nor does `ca`, ca.c, which makes the ACME CA's files, nor `pushcert`, pushcert.c, but
 * with install --server). A subcommand returns the process exit status. The struct ctl borrows
 * its strings from argv and the environment, and owns the client. Where the client goes and with
 * which token comes from settings.c (the command line, the environment, vouchctl.conf); `config`
 * and `completion` (settings.c, completion.c) show that and the options table.
 */
#ifndef VOUCH_CLI_VOUCHCTL_H
#define VOUCH_CLI_VOUCHCTL_H

#include <stdbool.h>
#include <stddef.h>

enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAILURE = 1, /* the server could not be reached or answered with an error */
    CTL_EXIT_USAGE = 2,   /* unknown subcommand or option, missing argument */
    CTL_EXIT_DENIED = 3,  /* trust: the server answered, and its decision is deny */
};

struct client;
struct json_doc;
struct settings;

struct ctl {
    struct client *client;
    bool json;       /* --json: print the server's JSON */
    bool have_token; /* whether a token was given, for the hint after a 401 */
    const char *subcommand;
    char **args; /* positional arguments after the subcommand */
    size_t nargs;
    const char *file;         /* enqueue --file */
    const char *attestation;  /* devices --attestation */
    bool all;                 /* attest --all, commands --all */
    bool failed;              /* attest --failed */
    const char *roots;        /* verify --roots */
    const char *nonce;        /* verify --nonce */
    const char *udid;         /* verify --udid */
    const char *serial;       /* verify, trust and device --serial */
    const char *at;           /* verify --at */
    bool server;              /* verify --server: a stored answer, from the server */
    const char *status;       /* events --status */
    const char *enroll_token; /* profile --enroll-token */
    const char *out;          /* profile --out */
    const char *ca_cert;      /* ca init --cert (to write), trust --cert (to read) */
    const char *ca_key;       /* ca init --key */
    const char *ca_cn;        /* ca init --cn */
    const char *ca_days;      /* ca init --days, as given */
    const char *reason;       /* certs revoke --reason */
    const char *scope;        /* tokens create --scope */
    const char *limit;        /* audit --limit, as given */
    const char *before;       /* audit --before, as given */
    const char *cert_sha256;  /* trust --cert-sha256, as given */
    const char *show;         /* commands --show COMMAND-UUID */
    const char *type;         /* enqueue --type: a command template */
    const char *queries;      /* enqueue --queries, with --type DeviceInformation */
    /* pushcert (pushcert.c) also takes --key, --out, --cn, --cert and --server */
    const char *vendor_cert, *vendor_key, *csr, *wwdr, *apple_root, *to, *vouchd_config;
    bool yes;                 /* attest --all --yes: no question asked */
    bool dry_run;             /* --dry-run: say what would be done, send nothing that acts */
    bool watch;               /* migrate status --watch */
    const char *parallel;     /* migrate --parallel, as given */

    /* Where the requests go (settings.h); NULL for an offline command. */
    const struct settings *settings;
};

/* Prints "vouchctl: <message>" and a pointer to the subcommand's help (NULL: the main help) on
 * stderr; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const char *subcommand, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads all of path ("-": standard input), at most max bytes, into *data (NUL-terminated, freed
 * by the caller). Prints why and returns false when it cannot. */
bool ctl_read_file(const char *path, size_t max, char **data, size_t *len)
    __attribute__((warn_unused_result));

int cmd_devices(struct ctl *ctl);
int cmd_device(struct ctl *ctl);
int cmd_commands(struct ctl *ctl);
int cmd_enqueue(struct ctl *ctl);
int cmd_attest(struct ctl *ctl);
int cmd_attestations(struct ctl *ctl);
int cmd_events(struct ctl *ctl);
int cmd_profile(struct ctl *ctl);
int cmd_push(struct ctl *ctl);
int cmd_certs(struct ctl *ctl);
int cmd_tokens(struct ctl *ctl);
int cmd_audit(struct ctl *ctl);
int cmd_pushcert(struct ctl *ctl);
/* `migrate FILE...|DIR` and `migrate status [--watch]` (migrate.c). */
int cmd_migrate(struct ctl *ctl);
/* Returns CTL_EXIT_OK for an allow, CTL_EXIT_DENIED for a deny. */
int cmd_trust(struct ctl *ctl);
/* Offline: ctl->client is NULL, but with --server. */
int cmd_verify(struct ctl *ctl);
/* Offline: ctl->client is NULL. */
int cmd_ca(struct ctl *ctl);
/* `config [show|servers]` (settings.c): what ctl->settings holds, never the token. */
int cmd_config(struct ctl *ctl);
/* `completion bash` (completion.c), offline: the script, made from the options table. */
int cmd_completion(struct ctl *ctl);

/* Called for each global option (subcommand NULL), each subcommand (option NULL) and each of its
 * options, in the order of vouchctl.c's tables: what the completion script is made from. */
typedef void ctl_option_visit_fn(void *arg, const char *subcommand, const char *option,
                                 char short_name, bool has_arg);
void ctl_visit_options(ctl_option_visit_fn *visit, void *arg);

/* GET /v1/devices/{udid}<suffix> (the UDID escaped): a JSON document into *doc (freed by the
 * caller), or an exit status other than CTL_EXIT_OK, said on stderr. */
int ctl_get_device_json(struct ctl *ctl, const char *udid, const char *suffix,
                        struct json_doc **doc);

#endif
