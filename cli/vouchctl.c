/* vouchctl: command-line parsing and the entry point (the help texts: usage.c). */
#include "vouchctl.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "client.h"
#include "settings.h"
#include "usage.h"
#include "vouch_version.h"

enum opt_id {
    OPT_URL,
    OPT_TOKEN,
    OPT_JSON,
    OPT_HELP,
    OPT_VERSION,
    OPT_FILE,
    OPT_ATTESTATION,
    OPT_ALL,
    OPT_FAILED,
    OPT_ROOTS,
    OPT_NONCE,
    OPT_UDID,
    OPT_SERIAL,
    OPT_AT,
    OPT_SERVER,
    OPT_STATUS,
    OPT_ENROLL_TOKEN,
    OPT_OUT,
    OPT_CERT,
    OPT_KEY,
    OPT_CN,
    OPT_DAYS,
    OPT_REASON,
    OPT_SCOPE,
    OPT_LIMIT,
    OPT_BEFORE,
    OPT_CERT_SHA256,
    OPT_SHOW,
    OPT_TYPE,
    OPT_QUERIES,
    OPT_VENDOR_CERT, /* pushcert's, from here to OPT_VOUCHD_CONFIG, in struct ctl's order */
    OPT_VENDOR_KEY,
    OPT_CSR,
    OPT_WWDR,
    OPT_APPLE_ROOT,
    OPT_TO,
    OPT_VOUCHD_CONFIG,
    OPT_CONFIG,
    OPT_SERVER_NAME,
    OPT_TOKEN_FILE,
    OPT_YES,
    OPT_DRY_RUN,
    OPT_WATCH,
    OPT_PARALLEL,
};

struct opt_spec {
    const char *name; /* long name, without "--" */
    char short_name;  /* 0: none */
    bool has_arg;
    enum opt_id id;
};

static const struct opt_spec global_opts[] = {
    {"url", 0, true, OPT_URL},
    {"token", 0, true, OPT_TOKEN},
    {"json", 0, false, OPT_JSON},
    {"help", 'h', false, OPT_HELP},
    {"version", 0, false, OPT_VERSION},
    {"config", 0, true, OPT_CONFIG},
    {"server", 0, true, OPT_SERVER_NAME},
    {"token-file", 0, true, OPT_TOKEN_FILE},
};
static const struct opt_spec devices_opts[] = {{"attestation", 0, true, OPT_ATTESTATION},
                                               {"dry-run", 0, false, OPT_DRY_RUN}};
static const struct opt_spec enqueue_opts[] = {{"file", 'f', true, OPT_FILE},
                                               {"type", 0, true, OPT_TYPE},
                                               {"queries", 0, true, OPT_QUERIES},
                                               {"dry-run", 0, false, OPT_DRY_RUN}};
static const struct opt_spec commands_opts[] = {{"show", 0, true, OPT_SHOW},
                                                {"all", 0, false, OPT_ALL}};
static const struct opt_spec attest_opts[] = {{"all", 0, false, OPT_ALL},
                                              {"failed", 0, false, OPT_FAILED},
                                              {"yes", 'y', false, OPT_YES},
                                              {"dry-run", 0, false, OPT_DRY_RUN}};
static const struct opt_spec device_opts[] = {{"serial", 0, true, OPT_SERIAL},
                                              {"dry-run", 0, false, OPT_DRY_RUN}};
static const struct opt_spec push_opts[] = {{"dry-run", 0, false, OPT_DRY_RUN}};
static const struct opt_spec events_opts[] = {{"status", 0, true, OPT_STATUS}};
static const struct opt_spec profile_opts[] = {{"enroll-token", 0, true, OPT_ENROLL_TOKEN},
                                               {"out", 'o', true, OPT_OUT}};
static const struct opt_spec ca_opts[] = {
    {"cert", 0, true, OPT_CERT},
    {"key", 0, true, OPT_KEY},
    {"cn", 0, true, OPT_CN},
    {"days", 0, true, OPT_DAYS},
};
static const struct opt_spec certs_opts[] = {{"reason", 0, true, OPT_REASON}};
static const struct opt_spec tokens_opts[] = {{"scope", 0, true, OPT_SCOPE}};
static const struct opt_spec audit_opts[] = {{"limit", 0, true, OPT_LIMIT},
                                             {"before", 0, true, OPT_BEFORE}};
static const struct opt_spec trust_opts[] = {
    {"serial", 0, true, OPT_SERIAL},
    {"cert", 0, true, OPT_CERT},
    {"cert-sha256", 0, true, OPT_CERT_SHA256},
};
static const struct opt_spec verify_opts[] = {
    {"roots", 0, true, OPT_ROOTS}, {"nonce", 0, true, OPT_NONCE},
    {"udid", 0, true, OPT_UDID},   {"serial", 0, true, OPT_SERIAL},
    {"at", 0, true, OPT_AT},       {"server", 0, false, OPT_SERVER},
};

static const struct opt_spec migrate_opts[] = {{"watch", 0, false, OPT_WATCH},
                                               {"dry-run", 0, false, OPT_DRY_RUN},
                                               {"parallel", 0, true, OPT_PARALLEL}};

static const struct opt_spec pushcert_opts[] = {
    {"key", 0, true, OPT_KEY},
    {"out", 'o', true, OPT_OUT},
    {"cn", 0, true, OPT_CN},
    {"cert", 0, true, OPT_CERT},
    {"server", 0, false, OPT_SERVER},
    {"vendor-cert", 0, true, OPT_VENDOR_CERT},
    {"vendor-key", 0, true, OPT_VENDOR_KEY},
    {"csr", 0, true, OPT_CSR},
    {"wwdr", 0, true, OPT_WWDR},
    {"apple-root", 0, true, OPT_APPLE_ROOT},
    {"to", 0, true, OPT_TO},
    {"vouchd-config", 0, true, OPT_VOUCHD_CONFIG},
};

struct subcommand {
    const char *name;
    const char *usage;
    const struct opt_spec *opts;
    size_t nopts;
    size_t min_args;
    size_t max_args;
    const char *args_name; /* what is missing when there are too few arguments */
    bool offline;          /* needs no server: no URL, token or HTTP client */
    int (*run)(struct ctl *ctl);
};

static const struct subcommand subcommands[] = {
    /* devices checks its own arguments: none, or expect SERIAL..., or expected. */
    {"devices", devices_usage, devices_opts, 2, 0, SIZE_MAX, NULL, false, cmd_devices},
    /* device checks its own arguments: UDID [allow-reenroll], or --serial. */
    {"device", device_usage, device_opts, 2, 0, 2, "UDID", false, cmd_device},
    /* commands checks its own arguments: UDID [--show UUID], --all --show UUID, or cancel. */
    {"commands", commands_usage, commands_opts, 2, 0, 3, "UDID", false, cmd_commands},
    {"enqueue", enqueue_usage, enqueue_opts, 4, 1, SIZE_MAX, "UDID", false, cmd_enqueue},
    /* attest checks its own arguments: UDIDs, or --all, or --failed. */
    {"attest", attest_usage, attest_opts, 4, 0, SIZE_MAX, "UDID", false, cmd_attest},
    {"attestations", attestations_usage, NULL, 0, 1, 1, "UDID", false, cmd_attestations},
    {"push", push_usage, push_opts, 1, 1, SIZE_MAX, "UDID", false, cmd_push},
    {"events", events_usage, events_opts, 1, 0, SIZE_MAX, NULL, false, cmd_events},
    {"profile", profile_usage, profile_opts, 2, 0, 0, NULL, false, cmd_profile},
    {"verify", verify_usage, verify_opts, 6, 1, SIZE_MAX, "CERT", true, cmd_verify},
    /* certs checks its own arguments: [UDID], or revoke SERIAL. */
    {"certs", certs_usage, certs_opts, 1, 0, 2, NULL, false, cmd_certs},
    /* tokens checks its own arguments: none, create NAME, or revoke NAME. */
    {"tokens", tokens_usage, tokens_opts, 1, 0, 2, NULL, false, cmd_tokens},
    {"audit", audit_usage, audit_opts, 2, 0, 0, NULL, false, cmd_audit},
    /* trust checks its own subject: UDID, or --serial, --cert or --cert-sha256. */
    {"trust", trust_usage, trust_opts, 3, 1, 2, "POLICY", false, cmd_trust},
    {"ca", ca_usage, ca_opts, 4, 1, 1, "action (init)", true, cmd_ca},
    {"pushcert", pushcert_usage, pushcert_opts, 12, 1, 1, "action (csr, sign, install)", true,
     cmd_pushcert},
    /* migrate checks its own arguments: FILE...|DIR, or status [--watch]. */
    {"migrate", migrate_usage, migrate_opts, 3, 1, SIZE_MAX, "FILE, DIR or status", false,
     cmd_migrate},
    {"config", config_usage, NULL, 0, 0, 1, NULL, false, cmd_config},
    {"completion", completion_usage, NULL, 0, 1, 1, "shell (bash)", true, cmd_completion},
    {"help", help_usage, NULL, 0, 0, 1, NULL, false, NULL},
};

void ctl_visit_options(ctl_option_visit_fn *visit, void *arg)
{
    for (size_t i = 0; i < sizeof(global_opts) / sizeof(global_opts[0]); i++)
        visit(arg, NULL, global_opts[i].name, global_opts[i].short_name, global_opts[i].has_arg);
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        visit(arg, subcommands[i].name, NULL, 0, false);
        for (size_t j = 0; j < subcommands[i].nopts; j++)
            visit(arg, subcommands[i].name, subcommands[i].opts[j].name,
                  subcommands[i].opts[j].short_name, subcommands[i].opts[j].has_arg);
    }
}

static const struct subcommand *find_subcommand(const char *name)
{
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        if (strcmp(subcommands[i].name, name) == 0)
            return &subcommands[i];
    }
    return NULL;
}

int ctl_usage_error(const char *subcommand, const char *fmt, ...)
{
    va_list ap;
    fputs("vouchctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (subcommand != NULL)
        fprintf(stderr, "\nTry 'vouchctl %s --help' for more information.\n", subcommand);
    else
        fputs("\nTry 'vouchctl --help' for more information.\n", stderr);
    return CTL_EXIT_USAGE;
}

/* The option arg names (short or long, without dashes), among the globals and sub's own. */
static const struct opt_spec *find_option(const struct subcommand *sub, const char *name,
                                          size_t name_len, bool is_short)
{
    /* The subcommand's own first: `verify --server` is verify's flag, while the global
     * --server NAME goes before the subcommand. */
    const struct opt_spec *tables[2] = {sub != NULL ? sub->opts : NULL, global_opts};
    size_t sizes[2] = {sub != NULL ? sub->nopts : 0, sizeof(global_opts) / sizeof(global_opts[0])};

    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < sizes[t]; i++) {
            const struct opt_spec *o = &tables[t][i];
            if (is_short ? (name_len == 1 && o->short_name == name[0])
                         : (strlen(o->name) == name_len && memcmp(o->name, name, name_len) == 0))
                return o;
        }
    }
    return NULL;
}

/* What the command line asked for, before anything is sent. */
struct cmdline {
    const struct subcommand *sub;
    const char *url;
    const char *token;
    bool json;
    bool help;
    bool version;
    const char *file;
    const char *attestation;
    bool all;
    bool failed;
    const char *roots;
    const char *nonce;
    const char *udid;
    const char *serial;
    const char *at;
    bool server;
    const char *status;
    const char *enroll_token;
    const char *out;
    const char *ca_cert;
    const char *ca_key;
    const char *ca_cn;
    const char *ca_days;
    const char *reason;
    const char *scope;
    const char *limit;
    const char *before;
    const char *cert_sha256;
    const char *show;
    const char *type;
    const char *queries;
    const char *pushcert[OPT_VOUCHD_CONFIG - OPT_VENDOR_CERT + 1];
    const char *config;
    const char *server_name;
    const char *token_file;
    bool yes;
    bool dry_run;
    bool watch;
    const char *parallel;
    char **args;
    size_t nargs;
};

/*
 * Sorts argv into options and positional arguments. Options may come anywhere: global ones before
 * or after the subcommand, a subcommand's own after it. "--" ends the options. Returns
 * CTL_EXIT_OK, or CTL_EXIT_USAGE after printing why.
 */
static int parse_cmdline(int argc, char **argv, struct cmdline *cl)
{
    bool options_done = false;

    cl->args = calloc((size_t)argc, sizeof(*cl->args));
    if (cl->args == NULL) {
        fprintf(stderr, "vouchctl: out of memory\n");
        return CTL_EXIT_FAILURE;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *sub_name = cl->sub != NULL ? cl->sub->name : NULL;

        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (cl->sub == NULL) {
                cl->sub = find_subcommand(a);
                if (cl->sub == NULL)
                    return ctl_usage_error(NULL, "unknown command '%s'", a);
            } else {
                cl->args[cl->nargs++] = argv[i];
            }
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }

        bool is_short = a[1] != '-';
        const char *name = is_short ? a + 1 : a + 2;
        const char *eq = is_short ? NULL : strchr(name, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const struct opt_spec *o = find_option(cl->sub, name, name_len, is_short);
        if (o == NULL)
            return ctl_usage_error(sub_name, "unknown option '%s'", a);

        const char *value = NULL;
        if (o->has_arg) {
            if (eq != NULL) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                return ctl_usage_error(sub_name, "option '%s' needs an argument", a);
            }
        } else if (eq != NULL) {
            return ctl_usage_error(sub_name, "option '--%.*s' takes no argument", (int)name_len,
                                   name);
        }

        switch (o->id) {
        case OPT_URL:
            cl->url = value;
            break;
        case OPT_TOKEN:
            cl->token = value;
            break;
        case OPT_JSON:
            cl->json = true;
            break;
        case OPT_HELP:
            cl->help = true;
            break;
        case OPT_VERSION:
            cl->version = true;
            break;
        case OPT_FILE:
            cl->file = value;
            break;
        case OPT_ATTESTATION:
            cl->attestation = value;
            break;
        case OPT_STATUS:
            cl->status = value;
            break;
        case OPT_ENROLL_TOKEN:
            cl->enroll_token = value;
            break;
        case OPT_OUT:
            cl->out = value;
            break;
        case OPT_ALL:
            cl->all = true;
            break;
        case OPT_FAILED:
            cl->failed = true;
            break;
        case OPT_ROOTS:
            cl->roots = value;
            break;
        case OPT_NONCE:
            cl->nonce = value;
            break;
        case OPT_UDID:
            cl->udid = value;
            break;
        case OPT_SERIAL:
            cl->serial = value;
            break;
        case OPT_AT:
            cl->at = value;
            break;
        case OPT_SERVER:
            cl->server = true;
            break;
        case OPT_CERT:
            cl->ca_cert = value;
            break;
        case OPT_KEY:
            cl->ca_key = value;
            break;
        case OPT_CN:
            cl->ca_cn = value;
            break;
        case OPT_DAYS:
            cl->ca_days = value;
            break;
        case OPT_REASON:
            cl->reason = value;
            break;
        case OPT_SCOPE:
            cl->scope = value;
            break;
        case OPT_LIMIT:
            cl->limit = value;
            break;
        case OPT_BEFORE:
            cl->before = value;
            break;
        case OPT_CERT_SHA256:
            cl->cert_sha256 = value;
            break;
        case OPT_SHOW:
            cl->show = value;
            break;
        case OPT_TYPE:
            cl->type = value;
            break;
        case OPT_QUERIES:
            cl->queries = value;
            break;
        case OPT_VENDOR_CERT:
        case OPT_VENDOR_KEY:
        case OPT_CSR:
        case OPT_WWDR:
        case OPT_APPLE_ROOT:
        case OPT_TO:
        case OPT_VOUCHD_CONFIG:
            cl->pushcert[o->id - OPT_VENDOR_CERT] = value;
            break;
        case OPT_CONFIG:
            cl->config = value;
            break;
        case OPT_SERVER_NAME:
            cl->server_name = value;
            break;
        case OPT_TOKEN_FILE:
            cl->token_file = value;
            break;
        case OPT_YES:
            cl->yes = true;
            break;
        case OPT_DRY_RUN:
            cl->dry_run = true;
            break;
        case OPT_WATCH:
            cl->watch = true;
            break;
        case OPT_PARALLEL:
            cl->parallel = value;
            break;
        }
    }
    return CTL_EXIT_OK;
}

/* "help [COMMAND]" and "--help": the help goes to stdout, as asked for. */
static int print_help(const struct subcommand *sub, const char *topic)
{
    if (topic != NULL) {
        sub = find_subcommand(topic);
        if (sub == NULL)
            return ctl_usage_error(NULL, "unknown command '%s'", topic);
    }
    fputs(sub != NULL && strcmp(sub->name, "help") != 0 ? sub->usage : main_usage, stdout);
    return CTL_EXIT_OK;
}

static bool url_is_http(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

/* A token goes into an HTTP header line: a CR or LF in it would start another header. */
static bool token_is_printable(const char *token)
{
    for (const unsigned char *p = (const unsigned char *)token; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

static int run(struct cmdline *cl)
{
    const struct subcommand *sub = cl->sub;

    if (cl->version) {
        printf("vouchctl %s\n", VOUCH_VERSION);
        return CTL_EXIT_OK;
    }
    if (cl->help)
        return print_help(sub, NULL);
    if (sub == NULL) {
        fputs(main_usage, stderr);
        return CTL_EXIT_USAGE;
    }
    if (sub->run == NULL) /* help */
        return print_help(NULL, cl->nargs > 0 ? cl->args[0] : NULL);
    if (cl->nargs < sub->min_args)
        return ctl_usage_error(sub->name, "missing %s", sub->args_name);
    if (cl->nargs > sub->max_args)
        return ctl_usage_error(sub->name, "unexpected argument '%s'", cl->args[sub->max_args]);

    struct ctl ctl = {
        .json = cl->json,
        .subcommand = sub->name,
        .args = cl->args,
        .nargs = cl->nargs,
        .file = cl->file,
        .attestation = cl->attestation,
        .status = cl->status,
        .enroll_token = cl->enroll_token,
        .out = cl->out,
        .all = cl->all,
        .failed = cl->failed,
        .roots = cl->roots,
        .nonce = cl->nonce,
        .udid = cl->udid,
        .serial = cl->serial,
        .at = cl->at,
        .server = cl->server,
        .ca_cert = cl->ca_cert,
        .ca_key = cl->ca_key,
        .ca_cn = cl->ca_cn,
        .ca_days = cl->ca_days,
        .reason = cl->reason,
        .scope = cl->scope,
        .limit = cl->limit,
        .before = cl->before,
        .cert_sha256 = cl->cert_sha256,
        .show = cl->show,
        .type = cl->type,
        .queries = cl->queries,
        .vendor_cert = cl->pushcert[OPT_VENDOR_CERT - OPT_VENDOR_CERT],
        .vendor_key = cl->pushcert[OPT_VENDOR_KEY - OPT_VENDOR_CERT],
        .csr = cl->pushcert[OPT_CSR - OPT_VENDOR_CERT],
        .wwdr = cl->pushcert[OPT_WWDR - OPT_VENDOR_CERT],
        .apple_root = cl->pushcert[OPT_APPLE_ROOT - OPT_VENDOR_CERT],
        .to = cl->pushcert[OPT_TO - OPT_VENDOR_CERT],
        .vouchd_config = cl->pushcert[OPT_VOUCHD_CONFIG - OPT_VENDOR_CERT],
        .yes = cl->yes,
        .dry_run = cl->dry_run,
        .watch = cl->watch,
        .parallel = cl->parallel,
    };
    if (sub->offline && !cl->server)
        return sub->run(&ctl);

    /* Where to and with which token: the command line, the environment, vouchctl.conf. */
    const struct settings_request want = {cl->url, cl->token, cl->token_file, cl->config,
                                          cl->server_name};
    struct settings settings;
    int rc = settings_resolve(&want, &settings);
    if (rc != CTL_EXIT_OK)
        return rc;
    ctl.settings = &settings;
    const char *url = settings.url;
    const char *token = settings.token;
    if (!url_is_http(url))
        rc = ctl_usage_error(NULL,
                             "invalid server URL '%s': it must start with http:// or "
                             "https://",
                             url);
    else if (token != NULL && !token_is_printable(token))
        rc = ctl_usage_error(NULL, "the admin token contains control characters");
    if (rc != CTL_EXIT_OK) {
        settings_clear(&settings);
        return rc;
    }

    ctl.have_token = token != NULL && token[0] != '\0';
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "vouchctl: cannot initialize libcurl\n");
        settings_clear(&settings);
        return CTL_EXIT_FAILURE;
    }
    ctl.client = client_new(url, token);
    if (ctl.client == NULL || !client_set_ca_file(ctl.client, settings.ca_file)) {
        fprintf(stderr, "vouchctl: cannot create the HTTP client\n");
        client_free(ctl.client);
        settings_clear(&settings);
        curl_global_cleanup();
        return CTL_EXIT_FAILURE;
    }
    rc = sub->run(&ctl);
    client_free(ctl.client);
    settings_clear(&settings);
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    struct cmdline cl;

    memset(&cl, 0, sizeof(cl));
    int rc = parse_cmdline(argc, argv, &cl);
    if (rc == CTL_EXIT_OK)
        rc = run(&cl);
    free(cl.args);

    /* Output that could not be written is a failure, not a silent truncation. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "vouchctl: cannot write to standard output\n");
        if (rc == CTL_EXIT_OK)
            rc = CTL_EXIT_FAILURE;
    }
    return rc;
}
