/* vouchctl: command-line parsing, help texts and the entry point. */
#include "vouchctl.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "client.h"
#include "vouch_version.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

/* The help texts are user documentation: keep them under 80 columns. */
/* clang-format off */
static const char main_usage[] =
    "Usage: vouchctl [OPTIONS] COMMAND [ARGUMENTS]\n"
    "\n"
    "vouchctl is the operator's command line for a Vouch MDM server. Through the\n"
    "server's admin API it lists devices, shows their push and attestation state,\n"
    "and queues MDM commands.\n"
    "\n"
    "Commands:\n"
    "  devices                 List the devices the server knows\n"
    "  device UDID             Show one device, with its push and attestation state\n"
    "  commands UDID           Show a device's queued commands and recent results\n"
    "  enqueue UDID... --file CMD.plist\n"
    "                          Queue an MDM command for one or more devices\n"
    "  help [COMMAND]          Show this help, or the help of one command\n"
    "\n"
    "Options (before or after the command):\n"
    "  --url URL               Base URL of the server (default: $VOUCH_URL, or\n"
    "                          " DEFAULT_URL ")\n"
    "  --token TOKEN           Bearer token of the admin API: the server's\n"
    "                          admin_token (default: $VOUCH_ADMIN_TOKEN). Prefer the\n"
    "                          variable: other users can see command lines.\n"
    "  --json                  Print the server's JSON, indented, not tables\n"
    "  -h, --help              Show help and exit\n"
    "  --version               Show the version of vouchctl and exit\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  failure: the server could not be reached, or answered with an error\n"
    "  2  usage error: unknown command or option, missing argument\n"
    "\n"
    "Example:\n"
    "  export VOUCH_URL=https://mdm.example.com VOUCH_ADMIN_TOKEN=...\n"
    "  vouchctl devices --attestation failed\n"
    "\n"
    "Run 'vouchctl COMMAND --help' for the details of one command.\n";

/* Every command's help ends with this pointer to the options all commands share. */
#define GLOBAL_OPTIONS_HINT                                                                        \
    "\n"                                                                                           \
    "The options --url, --token and --json work with every command: see\n"                         \
    "'vouchctl --help'.\n"

static const char devices_usage[] =
    "Usage: vouchctl devices [--attestation STATUS] [--json]\n"
    "\n"
    "List every device the server knows, ordered by UDID, one line each. vouchctl\n"
    "follows the server's pages to the end. The columns:\n"
    "\n"
    "  UDID           the device's unique identifier\n"
    "  SERIAL         serial number\n"
    "  MODEL/PRODUCT  model and product name, as the device reported them\n"
    "  OS             OS version (build)\n"
    "  ENROLLED       yes from the device's TokenUpdate until its CheckOut\n"
    "  LAST SEEN      the device's last contact with the server (UTC)\n"
    "  ATTESTATION    verified, failed (with the reason), pending, none (never\n"
    "                 asked) or unsupported\n"
    "\n"
    "A '-' marks a value the server does not know.\n"
    "\n"
    "Options:\n"
    "  --attestation STATUS    Only devices whose attestation status is STATUS:\n"
    "                          verified, failed, pending, none or unsupported\n"
    "  --json                  Print one JSON array of device objects\n"
    GLOBAL_OPTIONS_HINT;

static const char device_usage[] =
    "Usage: vouchctl device UDID [--json]\n"
    "\n"
    "Show what the server knows about one device: identity, OS, enrollment, the\n"
    "state of its push token, and its attestation: status, freshness, the reason\n"
    "of a failure, when it was requested, received and is next due, and the\n"
    "properties the device attested (serial number, UDID, OS and firmware versions,\n"
    "SIP, secure boot, kernel extensions). Times are UTC; '-' marks an unknown\n"
    "value.\n"
    "\n"
    "Exits 1 if the server does not know the device.\n"
    "\n"
    "Options:\n"
    "  --json                  Print the server's device object\n"
    GLOBAL_OPTIONS_HINT;

static const char commands_usage[] =
    "Usage: vouchctl commands UDID [--json]\n"
    "\n"
    "Show a device's commands, newest first: those still waiting, and the results\n"
    "of recent ones. STATUS is one of:\n"
    "\n"
    "  queued              waiting for the device to ask for it\n"
    "  NotNow              the device was busy; it is asked again later\n"
    "  Acknowledged        carried out\n"
    "  Error               the device could not carry it out\n"
    "  CommandFormatError  the device did not understand it\n"
    "\n"
    "Options:\n"
    "  --json                  Print the server's JSON array\n"
    GLOBAL_OPTIONS_HINT;

static const char enqueue_usage[] =
    "Usage: vouchctl enqueue UDID... --file CMD.plist [--json]\n"
    "\n"
    "Queue one MDM command for one or more devices. CMD.plist is a property list\n"
    "(XML or binary) whose Command dictionary holds the RequestType and the\n"
    "command's other keys; vouchctl checks that before sending it. The server adds\n"
    "a CommandUUID when the file has none. Each device receives the command the\n"
    "next time it asks the server for work.\n"
    "\n"
    "Prints the command's UUID and, for each device, whether it was queued. Exits\n"
    "0 only when every device was queued.\n"
    "\n"
    "Options:\n"
    "  -f, --file CMD.plist    The command; '-' reads it from standard input\n"
    "  --json                  Print the server's JSON answer\n"
    "\n"
    "Example:\n"
    "  cat > info.plist <<'EOF'\n"
    "  <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "  <plist version=\"1.0\">\n"
    "  <dict>\n"
    "    <key>Command</key>\n"
    "    <dict>\n"
    "      <key>RequestType</key>\n"
    "      <string>DeviceInformation</string>\n"
    "      <key>Queries</key>\n"
    "      <array><string>OSVersion</string><string>SerialNumber</string></array>\n"
    "    </dict>\n"
    "  </dict>\n"
    "  </plist>\n"
    "  EOF\n"
    "  vouchctl enqueue 663b07bb783e9ade1dae4fbb92ea12afc0ce5b69 --file info.plist\n"
    GLOBAL_OPTIONS_HINT;

static const char help_usage[] =
    "Usage: vouchctl help [COMMAND]\n"
    "\n"
    "Show the help of vouchctl, or of one command.\n";
/* clang-format on */

enum opt_id {
    OPT_URL,
    OPT_TOKEN,
    OPT_JSON,
    OPT_HELP,
    OPT_VERSION,
    OPT_FILE,
    OPT_ATTESTATION,
};

struct opt_spec {
    const char *name; /* long name, without "--" */
    char short_name;  /* 0: none */
    bool has_arg;
    enum opt_id id;
};

static const struct opt_spec global_opts[] = {
    {"url", 0, true, OPT_URL},          {"token", 0, true, OPT_TOKEN},
    {"json", 0, false, OPT_JSON},       {"help", 'h', false, OPT_HELP},
    {"version", 0, false, OPT_VERSION},
};
static const struct opt_spec devices_opts[] = {{"attestation", 0, true, OPT_ATTESTATION}};
static const struct opt_spec enqueue_opts[] = {{"file", 'f', true, OPT_FILE}};

struct subcommand {
    const char *name;
    const char *usage;
    const struct opt_spec *opts;
    size_t nopts;
    size_t min_args;
    size_t max_args;
    const char *args_name; /* what is missing when there are too few arguments */
    int (*run)(struct ctl *ctl);
};

static const struct subcommand subcommands[] = {
    {"devices", devices_usage, devices_opts, 1, 0, 0, NULL, cmd_devices},
    {"device", device_usage, NULL, 0, 1, 1, "UDID", cmd_device},
    {"commands", commands_usage, NULL, 0, 1, 1, "UDID", cmd_commands},
    {"enqueue", enqueue_usage, enqueue_opts, 1, 1, SIZE_MAX, "UDID", cmd_enqueue},
    {"help", help_usage, NULL, 0, 0, 1, NULL, NULL},
};

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
    const struct opt_spec *tables[2] = {global_opts, sub != NULL ? sub->opts : NULL};
    size_t sizes[2] = {sizeof(global_opts) / sizeof(global_opts[0]), sub != NULL ? sub->nopts : 0};

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

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
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

    const char *url = cl->url != NULL ? cl->url : env_nonempty("VOUCH_URL");
    if (url == NULL)
        url = DEFAULT_URL;
    if (!url_is_http(url))
        return ctl_usage_error(NULL,
                               "invalid server URL '%s': it must start with http:// or "
                               "https://",
                               url);
    const char *token = cl->token != NULL ? cl->token : env_nonempty("VOUCH_ADMIN_TOKEN");
    if (token != NULL && !token_is_printable(token))
        return ctl_usage_error(NULL, "the admin token contains control characters");

    struct ctl ctl = {
        .json = cl->json,
        .have_token = token != NULL && token[0] != '\0',
        .subcommand = sub->name,
        .args = cl->args,
        .nargs = cl->nargs,
        .file = cl->file,
        .attestation = cl->attestation,
    };
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "vouchctl: cannot initialize libcurl\n");
        return CTL_EXIT_FAILURE;
    }
    ctl.client = client_new(url, token);
    if (ctl.client == NULL) {
        fprintf(stderr, "vouchctl: cannot create the HTTP client\n");
        curl_global_cleanup();
        return CTL_EXIT_FAILURE;
    }
    int rc = sub->run(&ctl);
    client_free(ctl.client);
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
