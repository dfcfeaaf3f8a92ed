/*
 * sim_options: see sim_options.h.
 */
#include "sim_options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tu_text.h"

#define SIM_DEFAULT_TOPIC "com.apple.mgmt.External.00000000-0000-0000-0000-000000000000"
#define SIM_DEFAULT_PREFIX "sim"
#define SIM_DEFAULT_CONCURRENCY 8
#define SIM_MAX_CONCURRENCY 1024
#define SIM_MAX_DEVICES 10000000UL
#define SIM_DEFAULT_MAX_COMMANDS 1000
#define SIM_DEFAULT_TIMEOUT 30
#define SIM_DEFAULT_IDLE_EXIT 10
#define SIM_NOW_ENV "VOUCH_SIM_NOW"

static const char *const mode_names[SIM_MODE_COUNT] = {
    [SIM_MODE_INIT_CA] = "init-ca",   [SIM_MODE_ENROLL] = "enroll",
    [SIM_MODE_CONNECT] = "connect",   [SIM_MODE_RUN] = "run",
    [SIM_MODE_CHECKOUT] = "checkout", [SIM_MODE_LIST] = "list",
    [SIM_MODE_ANSWER] = "answer",     [SIM_MODE_SERVE] = "serve",
    [SIM_MODE_TOKENS] = "tokens",
};

static const char *const mode_usage[SIM_MODE_COUNT] = {
    [SIM_MODE_INIT_CA] =
        "init-ca --dir DIR [--key-type rsa|ec]\n"
        "  Creates the test device-identity CA DIR/ca.pem + DIR/ca.key and the stand-in\n"
        "  Apple attestation hierarchy DIR/apple-root.pem, apple-root.key, apple-sub.pem,\n"
        "  apple-sub.key unless present; configure vouchd with identity_ca = DIR/ca.pem\n"
        "  and attestation_roots = DIR/apple-root.pem.",
    [SIM_MODE_ENROLL] =
        "enroll --url URL --dir DIR --devices N [options]\n"
        "  Creates (or reuses) N device identities in DIR, then each device sends\n"
        "  Authenticate and TokenUpdate (a new random push token and PushMagic) to\n"
        "  URL/mdm/checkin; the tokens the server accepted go to DIR/tokens.tsv.\n"
        "  With --identity acme each device first downloads the enrollment profile and\n"
        "  gets its identity from vouchd's ACME server (device-attest-01, a P-384 key the\n"
        "  stand-in Apple hierarchy attests); DIR/devices.pem keeps the certificate.",
    [SIM_MODE_CONNECT] =
        "connect --url URL --dir DIR [options]\n"
        "  Each device PUTs Status Idle to URL/mdm/connect and answers every command\n"
        "  it is handed until the server returns an empty body. A DeviceInformation\n"
        "  query DevicePropertiesAttestation gets a chain from DIR's stand-in Apple\n"
        "  hierarchy under Apple's 7-day rule (cache in DIR/attestations), except\n"
        "  on models too old to attest (see list).",
    [SIM_MODE_RUN] = "run --url URL --dir DIR --devices N [options]\n"
                     "  enroll, then connect (devices whose enrollment failed are skipped).",
    [SIM_MODE_SERVE] =
        "serve --url URL --dir DIR --pushes FILE [options]\n"
        "  Follows FILE, the push log of the stand-in APNs server (its --notify-dir D writes\n"
        "  D/pushes.log: one \"<token hex> <PushMagic>\" line per push it accepted), from its\n"
        "  current end like tail -f, and for each push to one of DIR's devices runs one\n"
        "  session exactly as connect does, on K workers. A push to a device in a session\n"
        "  makes one more session after it; unknown tokens are counted and ignored; a push\n"
        "  with another PushMagic than the device's is a protocol error (the device ignores\n"
        "  it). Stops after --idle-exit seconds without a push and no session running, at\n"
        "  --max-seconds, once --expect-pushes pushes were handled, or on SIGINT/SIGTERM.\n"
        "  Prints \"vouch-sim: serve: ready ...\" on stderr once it follows FILE.",
    [SIM_MODE_CHECKOUT] = "checkout --url URL --dir DIR [options]\n"
                          "  Each device sends CheckOut (its MDM profile was removed).",
    [SIM_MODE_LIST] =
        "list --dir DIR [--devices N]\n"
        "  Prints one tab-separated line per device: index, UDID, SerialNumber,\n"
        "  ProductName, Model, ModelName, OSVersion, BuildVersion, IMEI (or -), DeviceName,\n"
        "  and attest (the model can attest) or no-attest.",
    [SIM_MODE_TOKENS] =
        "tokens --dir DIR [--devices N]\n"
        "  Prints UDID, push token (hex) and PushMagic, tab-separated, for each device\n"
        "  with a token in DIR/tokens.tsv (sent in its last accepted TokenUpdate).",
    [SIM_MODE_ANSWER] =
        "answer --dir DIR --device I [--command FILE] [options]\n"
        "  Offline: device I answers the command plist in FILE (default: stdin) exactly as\n"
        "  connect would, attestation cache included, and prints the report plist on\n"
        "  stdout; what it did with an attestation request goes to stderr.",
};

enum opt_id {
    OPT_HELP = 'h',
    OPT_DIR = 256,
    OPT_URL,
    OPT_CHECKIN_URL,
    OPT_SERVER_URL,
    OPT_DEVICES,
    OPT_CONCURRENCY,
    OPT_PREFIX,
    OPT_KEY_TYPE,
    OPT_TOPIC,
    OPT_ANSWER,
    OPT_ROUNDS,
    OPT_MAX_COMMANDS,
    OPT_EXPECT_STATUS,
    OPT_TIMEOUT,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_HTTP,
    OPT_NO_SIGNATURE,
    OPT_BAD_SIGNATURE,
    OPT_SWAP_IDENTITIES,
    OPT_CERT_HEADER,
    OPT_QUIET,
    OPT_NOW,
    OPT_ATTEST_TAMPER,
    OPT_ATTEST_AS_DEVICE,
    OPT_ATTEST_LEGACY_LEAF,
    OPT_ATTEST_REUSE_KEY,
    OPT_DEVICE,
    OPT_COMMAND,
    OPT_PUSHES,
    OPT_FROM_START,
    OPT_IDLE_EXIT,
    OPT_MAX_SECONDS,
    OPT_EXPECT_PUSHES,
    OPT_IDENTITY,
    OPT_ENROLL_TOKEN,
    OPT_ACME_REUSE_CLIENT_ID,
    OPT_ACME_WRONG_CSR_KEY,
    OPT_MIGRATE
};

#define SIM_MODES_ALL ((1u << SIM_MODE_COUNT) - 1)
#define SIM_MODES_NET                                                                              \
    (SIM_MODE_BIT(SIM_MODE_ENROLL) | SIM_MODE_BIT(SIM_MODE_CONNECT) | SIM_MODE_BIT(SIM_MODE_RUN) | \
     SIM_MODE_BIT(SIM_MODE_CHECKOUT) | SIM_MODE_BIT(SIM_MODE_SERVE))
#define SIM_MODES_CHECKIN                                                                          \
    (SIM_MODE_BIT(SIM_MODE_ENROLL) | SIM_MODE_BIT(SIM_MODE_RUN) | SIM_MODE_BIT(SIM_MODE_CHECKOUT))
#define SIM_MODES_ROUNDS (SIM_MODE_BIT(SIM_MODE_CONNECT) | SIM_MODE_BIT(SIM_MODE_RUN))
#define SIM_MODES_ANSWER (SIM_MODES_REPORT | SIM_MODE_BIT(SIM_MODE_ANSWER))

/* One documented option. A name may appear twice with different help for different modes. */
struct opt_doc {
    const char *name;
    int has_arg;
    int id;
    unsigned modes;
    const char *arg;
    const char *help;
};

static const struct opt_doc opt_docs[] = {
    {"dir", required_argument, OPT_DIR, SIM_MODES_ALL, "DIR", "state directory (required)"},
    {"url", required_argument, OPT_URL, SIM_MODES_NET, "URL",
     "vouchd base URL, e.g. http://127.0.0.1:8080"},
    {"checkin-url", required_argument, OPT_CHECKIN_URL, SIM_MODES_CHECKIN, "URL",
     "full CheckInURL (default URL/mdm/checkin)"},
    {"server-url", required_argument, OPT_SERVER_URL, SIM_MODES_REPORT, "URL",
     "full ServerURL (default URL/mdm/connect)"},
    {"devices", required_argument, OPT_DEVICES, SIM_MODES_CREATE, "N",
     "fleet size (required); identities in DIR are reused"},
    {"devices", required_argument, OPT_DEVICES,
     SIM_MODE_BIT(SIM_MODE_CONNECT) | SIM_MODE_BIT(SIM_MODE_CHECKOUT) |
         SIM_MODE_BIT(SIM_MODE_LIST) | SIM_MODE_BIT(SIM_MODE_SERVE) | SIM_MODE_BIT(SIM_MODE_TOKENS),
     "N", "use the first N devices of DIR (default: all)"},
    {"pushes", required_argument, OPT_PUSHES, SIM_MODE_BIT(SIM_MODE_SERVE), "FILE",
     "the push log to follow, e.g. D/pushes.log of apns-standin --notify-dir D (required; it "
     "may appear later)"},
    {"from-start", no_argument, OPT_FROM_START, SIM_MODE_BIT(SIM_MODE_SERVE), NULL,
     "handle the pushes already in FILE too (default: only those appended from now on)"},
    {"idle-exit", required_argument, OPT_IDLE_EXIT, SIM_MODE_BIT(SIM_MODE_SERVE), "S",
     "stop after S seconds without a push once no session runs (default 10; 0: never)"},
    {"max-seconds", required_argument, OPT_MAX_SECONDS, SIM_MODE_BIT(SIM_MODE_SERVE), "S",
     "stop after S seconds: queued sessions are dropped, running ones finish (default: none)"},
    {"expect-pushes", required_argument, OPT_EXPECT_PUSHES, SIM_MODE_BIT(SIM_MODE_SERVE), "N",
     "stop once N pushes to DIR's devices were handled and their sessions ended; stopping "
     "earlier (idle, max-seconds, signal) is then a failure"},
    {"concurrency", required_argument, OPT_CONCURRENCY, SIM_MODES_NET, "K",
     "worker threads, one kept-alive connection each (default 8)"},
    {"prefix", required_argument, OPT_PREFIX, SIM_MODES_CREATE, "P",
     "fleet name the UDIDs derive from (default sim; fixed once DIR has devices)"},
    {"key-type", required_argument, OPT_KEY_TYPE, SIM_MODES_CREATE, "rsa|ec",
     "new device keys: RSA 2048 (default) or P-256"},
    {"key-type", required_argument, OPT_KEY_TYPE, SIM_MODE_BIT(SIM_MODE_INIT_CA), "rsa|ec",
     "CA key: P-256 (default) or RSA 2048"},
    {"identity", required_argument, OPT_IDENTITY, SIM_MODES_CREATE, "local|acme",
     "local: the identity DIR's CA issued (as SCEP would; default); acme: GET URL/mdm/enroll, "
     "then vouchd's ACME server issues one for a P-384 key the stand-in Apple hierarchy attests "
     "with freshness SHA-256(token)"},
    {"enroll-token", required_argument, OPT_ENROLL_TOKEN, SIM_MODES_CREATE, "TOKEN",
     "--identity acme: the ?token= of GET /mdm/enroll (vouchd's enroll_token)"},
    {"acme-reuse-client-id", required_argument, OPT_ACME_REUSE_CLIENT_ID, SIM_MODES_CREATE, "N",
     "--identity acme: the last N devices order with a ClientIdentifier another device of the "
     "run has used; vouchd must refuse (counted in acme.refused, not a failure)"},
    {"acme-wrong-csr-key", required_argument, OPT_ACME_WRONG_CSR_KEY, SIM_MODES_CREATE, "N",
     "--identity acme: the N devices before those finalize with a CSR for another key than the "
     "attested one; vouchd must refuse (counted in acme.refused, not a failure)"},
    {"migrate", required_argument, OPT_MIGRATE, SIM_MODES_CREATE, "KEY",
     "a fleet moved from another MDM: Authenticate and TokenUpdate go unsigned to URL/migration "
     "(PUT, Basic nanomdm:KEY, as NanoMDM's nano2nano sends them; KEY: vouchd's admin token) "
     "instead of the CheckInURL; each device keeps DIR's identity (the old server's SCEP CA) "
     "and shows it at its first check-in (connect, or run's connect phase)"},
    {"topic", required_argument, OPT_TOPIC, SIM_MODES_CHECKIN, "TOPIC",
     "APNs topic (default " SIM_DEFAULT_TOPIC ")"},
    {"device", required_argument, OPT_DEVICE, SIM_MODE_BIT(SIM_MODE_ANSWER), "I",
     "the index of the device that answers (required)"},
    {"command", required_argument, OPT_COMMAND, SIM_MODE_BIT(SIM_MODE_ANSWER), "FILE",
     "command plist, XML or binary (default -: stdin)"},
    {"answer", required_argument, OPT_ANSWER, SIM_MODES_ANSWER, "ack|notnow|error|formaterror",
     "how devices answer commands (default ack)"},
    {"now", required_argument, OPT_NOW, SIM_MODES_ANSWER, "UNIXTIME",
     "the devices' clock: attestation age and leaf notBefore (default $" SIM_NOW_ENV
     ", else the time)"},
    {"attest-tamper", required_argument, OPT_ATTEST_TAMPER, SIM_MODES_ANSWER, "KIND",
     "answer attestation requests wrongly: other-root, expired, wrong-os, no-freshness, "
     "wrong-nonce, garbage or empty (negative tests; minted fresh, cache untouched)"},
    {"attest-as-device", required_argument, OPT_ATTEST_AS_DEVICE, SIM_MODES_ANSWER, "N",
     "answer attestation requests with a valid chain made for device N (negative tests)"},
    {"attest-legacy-leaf", no_argument, OPT_ATTEST_LEGACY_LEAF, SIM_MODES_ANSWER, NULL,
     "devices on an OS before 17.2 leave .9.4, .10.1 and .10.3 out, as real ones do"},
    {"attest-reuse-key", no_argument, OPT_ATTEST_REUSE_KEY, SIM_MODES_REPORT, NULL,
     "each worker's leaves certify one key, not a new P-384 key each (load tests)"},
    {"rounds", required_argument, OPT_ROUNDS, SIM_MODES_ROUNDS, "R",
     "Idle sessions per device (default 1)"},
    {"max-commands", required_argument, OPT_MAX_COMMANDS, SIM_MODES_REPORT, "N",
     "commands one session may hand out before it counts as a loop (default 1000)"},
    {"expect-status", required_argument, OPT_EXPECT_STATUS,
     SIM_MODES_NET & ~SIM_MODE_BIT(SIM_MODE_SERVE), "CODE",
     "every device must get HTTP CODE (non-2xx: its flow stops there)"},
    {"expect-status", required_argument, OPT_EXPECT_STATUS, SIM_MODE_BIT(SIM_MODE_SERVE), "CODE",
     "every session must get HTTP CODE (non-2xx: the session stops there)"},
    {"timeout", required_argument, OPT_TIMEOUT, SIM_MODES_NET, "SECONDS",
     "per-request timeout (default 30)"},
    {"cacert", required_argument, OPT_CACERT, SIM_MODES_NET, "FILE", "CA bundle for an https URL"},
    {"insecure", no_argument, OPT_INSECURE, SIM_MODES_NET, NULL, "do not verify the TLS server"},
    {"http", required_argument, OPT_HTTP, SIM_MODES_NET, "1.1|2|h2c",
     "HTTP version (default: libcurl's choice)"},
    {"no-signature", no_argument, OPT_NO_SIGNATURE, SIM_MODES_NET, NULL,
     "send no Mdm-Signature header"},
    {"bad-signature", no_argument, OPT_BAD_SIGNATURE, SIM_MODES_NET, NULL,
     "sign bytes other than the body (negative tests)"},
    {"swap-identities", no_argument, OPT_SWAP_IDENTITIES, SIM_MODES_NET, NULL,
     "device i signs with device i+1's identity (negative tests)"},
    {"cert-header", required_argument, OPT_CERT_HEADER, SIM_MODES_NET, "NAME",
     "also send the certificate in header NAME as :base64-DER: (RFC 9440)"},
    {"quiet", no_argument, OPT_QUIET, SIM_MODES_NET, NULL, "no progress lines on stderr"},
    {"help", no_argument, OPT_HELP, SIM_MODES_ALL, NULL, "this help"},
};

#define OPT_DOC_COUNT (sizeof(opt_docs) / sizeof(opt_docs[0]))

/* Prints an option's help from column 31, wrapped at word boundaries before column 100. */
static void print_option_help(FILE *f, const char *help)
{
    const int width = 100 - 31;

    while (*help != '\0') {
        int n = (int)strlen(help);

        if (n > width) {
            n = width;
            while (n > 0 && help[n] != ' ')
                n--;
            if (n == 0)
                n = width;
        }
        fprintf(f, "%.*s\n", n, help);
        help += n;
        while (*help == ' ')
            help++;
        if (*help != '\0')
            fprintf(f, "  %-28s ", "");
    }
}

static void print_usage(FILE *f, enum sim_mode mode)
{
    fprintf(f, "usage: vouch-sim %s\n\noptions:\n", mode_usage[mode]);
    for (size_t i = 0; i < OPT_DOC_COUNT; i++) {
        const struct opt_doc *d = &opt_docs[i];
        char left[64];

        if (!(d->modes & SIM_MODE_BIT(mode)))
            continue;
        snprintf(left, sizeof(left), "--%s%s%s", d->name, d->arg != NULL ? " " : "",
                 d->arg != NULL ? d->arg : "");
        if (strlen(left) > 28)
            fprintf(f, "  %s\n  %-28s ", left, "");
        else
            fprintf(f, "  %-28s ", left);
        print_option_help(f, d->help);
    }
}

void sim_options_general_usage(FILE *f)
{
    fprintf(f, "usage: vouch-sim SUBCOMMAND [options]   (vouch-sim SUBCOMMAND --help for more)\n\n"
               "subcommands:\n");
    for (int m = 0; m < SIM_MODE_COUNT; m++) {
        const char *text = mode_usage[m];
        const char *nl = strchr(text, '\n');
        fprintf(f, "  %.*s\n", nl != NULL ? (int)(nl - text) : (int)strlen(text), text);
    }
    fprintf(f, "\nExit status: 0 success, 1 failure, 2 usage error. A JSON summary goes to stdout\n"
               "(answer: the report plist).\n");
}

static int usage_error(enum sim_mode mode, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(enum sim_mode mode, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vouch-sim %s: ", mode_names[mode]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see vouch-sim %s --help)\n", mode_names[mode]);
    return SIM_EXIT_USAGE;
}

/* Parses a decimal number in [min, max]; no sign, no trailing characters. */
static bool parse_ulong(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v;

    if (text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool build_url(char *out, size_t outlen, const char *base, const char *path)
{
    size_t n = strlen(base);
    int written;

    while (n > 0 && base[n - 1] == '/')
        n--;
    if (n > INT32_MAX)
        return false;
    written = snprintf(out, outlen, "%.*s%s", (int)n, base, path);
    return written > 0 && (size_t)written < outlen;
}

static bool header_name_ok(const char *name)
{
    if (name[0] == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    }
    return true;
}

/* Applies one parsed option; returns SIM_EXIT_OK or SIM_EXIT_USAGE. */
static int apply_option(struct sim_options *opt, int id, const char *name, const char *arg)
{
    unsigned long v;

    switch (id) {
    case OPT_DIR:
        opt->dir = arg;
        break;
    case OPT_URL:
        opt->url = arg;
        break;
    case OPT_CHECKIN_URL:
        opt->checkin_url_opt = arg;
        break;
    case OPT_SERVER_URL:
        opt->server_url_opt = arg;
        break;
    case OPT_DEVICES:
        if (!parse_ulong(arg, 1, SIM_MAX_DEVICES, &opt->devices))
            return usage_error(opt->mode, "--devices wants 1..%lu, not '%s'", SIM_MAX_DEVICES, arg);
        opt->devices_set = true;
        break;
    case OPT_CONCURRENCY:
        if (!parse_ulong(arg, 1, SIM_MAX_CONCURRENCY, &v))
            return usage_error(opt->mode, "--concurrency wants 1..%d, not '%s'",
                               SIM_MAX_CONCURRENCY, arg);
        opt->concurrency = (unsigned)v;
        break;
    case OPT_PREFIX:
        if (!sim_device_prefix_ok(arg))
            return usage_error(opt->mode, "--prefix wants 1..%d characters of [A-Za-z0-9._-]",
                               SIM_PREFIX_MAX - 1);
        opt->prefix = arg;
        opt->prefix_set = true;
        break;
    case OPT_KEY_TYPE:
        if (strcmp(arg, "rsa") == 0)
            opt->key_type = SIM_KEY_RSA;
        else if (strcmp(arg, "ec") == 0)
            opt->key_type = SIM_KEY_EC;
        else
            return usage_error(opt->mode, "--key-type wants rsa or ec, not '%s'", arg);
        opt->key_type_set = true;
        break;
    case OPT_TOPIC:
        if (arg[0] == '\0')
            return usage_error(opt->mode, "--topic must not be empty");
        opt->topic = arg;
        break;
    case OPT_ANSWER:
        if (strcmp(arg, "ack") == 0)
            opt->answer = SIM_ANSWER_ACK;
        else if (strcmp(arg, "notnow") == 0)
            opt->answer = SIM_ANSWER_NOTNOW;
        else if (strcmp(arg, "error") == 0)
            opt->answer = SIM_ANSWER_ERROR;
        else if (strcmp(arg, "formaterror") == 0)
            opt->answer = SIM_ANSWER_FORMAT_ERROR;
        else
            return usage_error(opt->mode, "--answer wants ack, notnow, error or formaterror");
        break;
    case OPT_ROUNDS:
        if (!parse_ulong(arg, 1, 1000000UL, &opt->rounds))
            return usage_error(opt->mode, "--rounds wants 1..1000000, not '%s'", arg);
        break;
    case OPT_MAX_COMMANDS:
        if (!parse_ulong(arg, 1, 1000000UL, &opt->max_commands))
            return usage_error(opt->mode, "--max-commands wants 1..1000000, not '%s'", arg);
        break;
    case OPT_EXPECT_STATUS:
        if (!parse_ulong(arg, 100, 599, &v))
            return usage_error(opt->mode, "--expect-status wants an HTTP status 100..599");
        opt->expect_status = (long)v;
        break;
    case OPT_TIMEOUT:
        if (!parse_ulong(arg, 1, 3600, &v))
            return usage_error(opt->mode, "--timeout wants 1..3600 seconds, not '%s'", arg);
        opt->timeout = (long)v;
        break;
    case OPT_CACERT:
        opt->cacert = arg;
        break;
    case OPT_INSECURE:
        opt->insecure = true;
        break;
    case OPT_HTTP:
        if (strcmp(arg, "1.1") == 0)
            opt->http_version = SIM_HTTP_1_1;
        else if (strcmp(arg, "2") == 0)
            opt->http_version = SIM_HTTP_2;
        else if (strcmp(arg, "h2c") == 0)
            opt->http_version = SIM_HTTP_2_PRIOR_KNOWLEDGE;
        else
            return usage_error(opt->mode, "--http wants 1.1, 2 or h2c, not '%s'", arg);
        break;
    case OPT_NO_SIGNATURE:
        opt->no_signature = true;
        break;
    case OPT_BAD_SIGNATURE:
        opt->bad_signature = true;
        break;
    case OPT_SWAP_IDENTITIES:
        opt->swap_identities = true;
        break;
    case OPT_CERT_HEADER:
        if (!header_name_ok(arg))
            return usage_error(opt->mode, "--cert-header wants a header name, not '%s'", arg);
        opt->cert_header = arg;
        break;
    case OPT_QUIET:
        opt->quiet = true;
        break;
    case OPT_NOW:
        if (!tu_parse_unix_time(arg, &opt->now))
            return usage_error(opt->mode, "--now wants a Unix time in seconds, not '%s'", arg);
        opt->now_set = true;
        break;
    case OPT_ATTEST_TAMPER:
        if (!sim_attest_tamper_parse(arg, &opt->attest_tamper) ||
            opt->attest_tamper == SIM_TAMPER_NONE)
            return usage_error(opt->mode,
                               "--attest-tamper wants other-root, expired, wrong-os, "
                               "no-freshness, wrong-nonce, garbage or empty, not '%s'",
                               arg);
        break;
    case OPT_ATTEST_AS_DEVICE:
        if (!parse_ulong(arg, 0, SIM_MAX_DEVICES - 1, &opt->attest_as_device))
            return usage_error(opt->mode, "--attest-as-device wants a device index, not '%s'", arg);
        opt->attest_as_device_set = true;
        break;
    case OPT_ATTEST_LEGACY_LEAF:
        opt->attest_legacy_leaf = true;
        break;
    case OPT_ATTEST_REUSE_KEY:
        opt->attest_reuse_key = true;
        break;
    case OPT_DEVICE:
        if (!parse_ulong(arg, 0, SIM_MAX_DEVICES - 1, &opt->device))
            return usage_error(opt->mode, "--device wants a device index, not '%s'", arg);
        opt->device_set = true;
        break;
    case OPT_COMMAND:
        if (arg[0] == '\0')
            return usage_error(opt->mode, "--command wants a file name (- for stdin)");
        opt->command_file = arg;
        break;
    case OPT_PUSHES:
        if (arg[0] == '\0')
            return usage_error(opt->mode, "--pushes wants a file name");
        opt->pushes = arg;
        break;
    case OPT_FROM_START:
        opt->from_start = true;
        break;
    case OPT_IDLE_EXIT:
        if (!parse_ulong(arg, 0, 86400UL * 365, &opt->idle_exit))
            return usage_error(opt->mode, "--idle-exit wants 0..31536000 seconds, not '%s'", arg);
        break;
    case OPT_MAX_SECONDS:
        if (!parse_ulong(arg, 1, 86400UL * 365, &opt->max_seconds))
            return usage_error(opt->mode, "--max-seconds wants 1..31536000 seconds, not '%s'", arg);
        break;
    case OPT_EXPECT_PUSHES:
        if (!parse_ulong(arg, 1, 1000000000UL, &opt->expect_pushes))
            return usage_error(opt->mode, "--expect-pushes wants 1..1000000000, not '%s'", arg);
        opt->expect_pushes_set = true;
        break;
    case OPT_IDENTITY:
        if (strcmp(arg, "local") == 0)
            opt->identity = SIM_IDENTITY_LOCAL;
        else if (strcmp(arg, "acme") == 0)
            opt->identity = SIM_IDENTITY_ACME;
        else
            return usage_error(opt->mode, "--identity wants local or acme, not '%s'", arg);
        break;
    case OPT_ENROLL_TOKEN:
        if (arg[0] == '\0' || strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                          "0123456789-._~") != strlen(arg))
            return usage_error(opt->mode, "--enroll-token wants URL-safe characters");
        opt->enroll_token = arg;
        break;
    case OPT_ACME_REUSE_CLIENT_ID:
    case OPT_ACME_WRONG_CSR_KEY:
        if (!parse_ulong(arg, 0, SIM_MAX_DEVICES, &v))
            return usage_error(opt->mode, "--%s wants a number of devices, not '%s'", name, arg);
        if (id == OPT_ACME_REUSE_CLIENT_ID)
            opt->acme_reuse_client_id = v;
        else
            opt->acme_wrong_csr_key = v;
        break;
    case OPT_MIGRATE:
        if (arg[0] == '\0' || strlen(arg) > 512 || strpbrk(arg, "\r\n") != NULL)
            return usage_error(opt->mode, "--migrate wants the admin token (1..512 bytes)");
        opt->migrate_key = arg;
        break;
    default:
        return usage_error(opt->mode, "unhandled option --%s", name);
    }
    return SIM_EXIT_OK;
}

/* Checks the combination of options once all are parsed. */
static int check_options(struct sim_options *opt)
{
    enum sim_mode m = opt->mode;
    bool checkin = (SIM_MODES_CHECKIN & SIM_MODE_BIT(m)) != 0;
    bool report = (SIM_MODES_REPORT & SIM_MODE_BIT(m)) != 0;

    if (opt->dir == NULL || opt->dir[0] == '\0')
        return usage_error(m, "--dir is required");
    if ((SIM_MODES_CREATE & SIM_MODE_BIT(m)) && !opt->devices_set)
        return usage_error(m, "--devices is required");
    if (checkin) {
        if (opt->checkin_url_opt != NULL)
            snprintf(opt->checkin_url, sizeof(opt->checkin_url), "%s", opt->checkin_url_opt);
        else if (opt->url == NULL)
            return usage_error(m, "--url (or --checkin-url) is required");
        else if (!build_url(opt->checkin_url, sizeof(opt->checkin_url), opt->url, "/mdm/checkin"))
            return usage_error(m, "--url is too long");
    }
    if (report) {
        if (opt->server_url_opt != NULL)
            snprintf(opt->server_url, sizeof(opt->server_url), "%s", opt->server_url_opt);
        else if (opt->url == NULL)
            return usage_error(m, "--url (or --server-url) is required");
        else if (!build_url(opt->server_url, sizeof(opt->server_url), opt->url, "/mdm/connect"))
            return usage_error(m, "--url is too long");
    }
    if (opt->no_signature && opt->bad_signature)
        return usage_error(m, "--no-signature and --bad-signature exclude each other");
    if (opt->swap_identities && opt->devices_set && opt->devices < 2)
        return usage_error(m, "--swap-identities needs at least 2 devices");
    if (opt->identity != SIM_IDENTITY_ACME &&
        (opt->enroll_token != NULL || opt->acme_reuse_client_id > 0 || opt->acme_wrong_csr_key > 0))
        return usage_error(m, "--enroll-token and --acme-* need --identity acme");
    if (opt->identity == SIM_IDENTITY_ACME) {
        unsigned long odd = opt->acme_reuse_client_id + opt->acme_wrong_csr_key;
        if (opt->url == NULL)
            return usage_error(m, "--identity acme needs --url (GET URL/mdm/enroll)");
        if (opt->swap_identities)
            return usage_error(m, "--swap-identities does not combine with --identity acme");
        if (odd > opt->devices || (opt->acme_reuse_client_id > 0 && odd == opt->devices))
            return usage_error(m, "--acme-reuse-client-id and --acme-wrong-csr-key take at most "
                                  "--devices, less when a device must reuse another's identifier");
    }
    if (opt->migrate_key != NULL) {
        /* "Authorization: Basic " + base64("nanomdm:" KEY): 4/3 of at most 520 bytes. */
        unsigned char userpass[600];
        int n = snprintf((char *)userpass, sizeof(userpass), "nanomdm:%s", opt->migrate_key);
        static const char prefix[] = "Authorization: Basic ";
        if (opt->identity == SIM_IDENTITY_ACME)
            return usage_error(m, "--migrate keeps DIR's identities: not with --identity acme");
        if (opt->url == NULL)
            return usage_error(m, "--migrate needs --url (PUT URL/migration)");
        if (!build_url(opt->migrate_url, sizeof(opt->migrate_url), opt->url, "/migration"))
            return usage_error(m, "--url is too long");
        memcpy(opt->migrate_auth, prefix, sizeof(prefix) - 1);
        EVP_EncodeBlock((unsigned char *)opt->migrate_auth + sizeof(prefix) - 1, userpass, n);
    }
    if (m == SIM_MODE_ANSWER && !opt->device_set)
        return usage_error(m, "--device is required");
    if (m == SIM_MODE_SERVE && opt->pushes == NULL)
        return usage_error(m, "--pushes is required");
    if ((SIM_MODES_ANSWER & SIM_MODE_BIT(m)) && !opt->now_set) {
        const char *env = getenv(SIM_NOW_ENV);
        if (env != NULL && env[0] != '\0') {
            if (!tu_parse_unix_time(env, &opt->now))
                return usage_error(m, "%s wants a Unix time in seconds, not '%s'", SIM_NOW_ENV,
                                   env);
            opt->now_set = true;
        } else {
            opt->now = time(NULL);
        }
    }
    return SIM_EXIT_OK;
}

int sim_options_parse(struct sim_options *opt, enum sim_mode mode, int argc, char **argv)
{
    struct option longopts[OPT_DOC_COUNT + 1];
    size_t n = 0;
    int c;

    memset(opt, 0, sizeof(*opt));
    opt->mode = mode;
    opt->concurrency = SIM_DEFAULT_CONCURRENCY;
    opt->prefix = SIM_DEFAULT_PREFIX;
    opt->key_type = SIM_KEY_RSA;
    opt->topic = SIM_DEFAULT_TOPIC;
    opt->answer = SIM_ANSWER_ACK;
    opt->rounds = 1;
    opt->max_commands = SIM_DEFAULT_MAX_COMMANDS;
    opt->timeout = SIM_DEFAULT_TIMEOUT;
    opt->idle_exit = SIM_DEFAULT_IDLE_EXIT;
    memset(longopts, 0, sizeof(longopts));
    for (size_t i = 0; i < OPT_DOC_COUNT; i++) {
        bool seen = false;
        for (size_t j = 0; j < n; j++)
            seen = seen || strcmp(longopts[j].name, opt_docs[i].name) == 0;
        if (seen)
            continue;
        longopts[n].name = opt_docs[i].name;
        longopts[n].has_arg = opt_docs[i].has_arg;
        longopts[n].flag = NULL;
        longopts[n].val = opt_docs[i].id;
        n++;
    }
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        const char *name = NULL;
        bool allowed = false;
        int rc;

        if (c == '?')
            return usage_error(opt->mode, "unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return usage_error(opt->mode, "option '%s' needs a value", argv[optind - 1]);
        for (size_t i = 0; i < OPT_DOC_COUNT; i++) {
            if (opt_docs[i].id == c) {
                name = opt_docs[i].name;
                allowed = allowed || (opt_docs[i].modes & SIM_MODE_BIT(opt->mode)) != 0;
            }
        }
        if (c == OPT_HELP) {
            print_usage(stdout, opt->mode);
            return -1;
        }
        if (!allowed)
            return usage_error(opt->mode, "--%s does not apply to %s", name != NULL ? name : "?",
                               mode_names[opt->mode]);
        rc = apply_option(opt, c, name, optarg);
        if (rc != SIM_EXIT_OK)
            return rc;
    }
    if (optind < argc)
        return usage_error(opt->mode, "unexpected argument '%s'", argv[optind]);
    return check_options(opt);
}

const char *sim_mode_name(enum sim_mode mode)
{
    return mode_names[mode];
}

bool sim_mode_lookup(const char *name, enum sim_mode *mode)
{
    for (int m = 0; m < SIM_MODE_COUNT; m++) {
        if (strcmp(name, mode_names[m]) == 0) {
            *mode = (enum sim_mode)m;
            return true;
        }
    }
    return false;
}
