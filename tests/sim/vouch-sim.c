/*
 * vouch-sim: plays a fleet of Apple devices against a vouchd, for integration tests, the
 * quickstart and load tests.
 *
 * Subcommands: init-ca (the device-identity CA and the stand-in Apple attestation hierarchy),
 * enroll (Authenticate + TokenUpdate), connect (Idle sessions that answer every queued command,
 * attestation requests included), run (enroll then connect), serve (follow the push log of the
 * stand-in APNs server and run a session for each device pushed, as real devices do), checkout,
 * list, tokens, and answer (one device answers one command plist offline). Devices, their
 * identities, push tokens and attestation caches live in the state directory (sim_store.h) so
 * runs can be chained.
 *
 * Threads: the main thread parses options, prepares the fleet and prints progress; K worker
 * threads, each owning one kept-alive libcurl handle and its own statistics, take devices from a
 * shared atomic counter. Statistics are merged after the workers are joined, so the only shared
 * mutable state during a phase is a few atomic counters and the per-device state bytes (each
 * written by the one worker that holds the device). serve: the main thread tails the push log
 * and queues pushed devices; the K workers take them from a mutex-protected queue (a device is
 * in at most one session at a time; a push during its session asks for one more).
 *
 * Output: progress and one line per failure on stderr; exactly one JSON summary line on stdout
 * (answer: the report plist instead).
 * Exit status: 0 success, 1 any failure, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fake_apple.h"
#include "sim_attest.h"
#include "sim_device.h"
#include "sim_http.h"
#include "sim_pki.h"
#include "sim_store.h"
#include "tu_file.h"
#include "tu_text.h"

#define SIM_EXIT_OK 0
#define SIM_EXIT_FAIL 1
#define SIM_EXIT_USAGE 2

#define SIM_DEFAULT_TOPIC "com.apple.mgmt.External.00000000-0000-0000-0000-000000000000"
#define SIM_DEFAULT_PREFIX "sim"
#define SIM_DEFAULT_CONCURRENCY 8
#define SIM_MAX_CONCURRENCY 1024
#define SIM_MAX_DEVICES 10000000UL
#define SIM_DEFAULT_MAX_COMMANDS 1000
#define SIM_DEFAULT_TIMEOUT 30
#define SIM_MAX_BODY (1024 * 1024)
#define SIM_URL_MAX 2048
#define SIM_MAX_TYPES 64
#define SIM_SHOWN_FAILURES 50
#define SIM_SNIPPET 200
#define SIM_PROGRESS_INTERVAL 2.0
#define SIM_CT_CHECKIN "application/x-apple-aspen-mdm-checkin"
#define SIM_CT_REPORT "application/x-apple-aspen-mdm"
#define SIM_NOW_ENV "VOUCH_SIM_NOW"

enum sim_mode {
    MODE_INIT_CA,
    MODE_ENROLL,
    MODE_CONNECT,
    MODE_RUN,
    MODE_CHECKOUT,
    MODE_LIST,
    MODE_ANSWER,
    MODE_SERVE,
    MODE_TOKENS,
    MODE_COUNT
};

static const char *const mode_names[MODE_COUNT] = {
    [MODE_INIT_CA] = "init-ca", [MODE_ENROLL] = "enroll",     [MODE_CONNECT] = "connect",
    [MODE_RUN] = "run",         [MODE_CHECKOUT] = "checkout", [MODE_LIST] = "list",
    [MODE_ANSWER] = "answer",   [MODE_SERVE] = "serve",       [MODE_TOKENS] = "tokens",
};

static const char *const mode_usage[MODE_COUNT] = {
    [MODE_INIT_CA] =
        "init-ca --dir DIR [--key-type rsa|ec]\n"
        "  Creates the test device-identity CA DIR/ca.pem + DIR/ca.key and the stand-in\n"
        "  Apple attestation hierarchy DIR/apple-root.pem, apple-root.key, apple-sub.pem,\n"
        "  apple-sub.key unless present; configure vouchd with identity_ca = DIR/ca.pem\n"
        "  and attestation_roots = DIR/apple-root.pem.",
    [MODE_ENROLL] = "enroll --url URL --dir DIR --devices N [options]\n"
                    "  Creates (or reuses) N device identities in DIR, then each device sends\n"
                    "  Authenticate and TokenUpdate (a new random push token and PushMagic) to\n"
                    "  URL/mdm/checkin; the tokens the server accepted go to DIR/tokens.tsv.",
    [MODE_CONNECT] = "connect --url URL --dir DIR [options]\n"
                     "  Each device PUTs Status Idle to URL/mdm/connect and answers every command\n"
                     "  it is handed until the server returns an empty body. A DeviceInformation\n"
                     "  query DevicePropertiesAttestation gets a chain from DIR's stand-in Apple\n"
                     "  hierarchy under Apple's 7-day rule (cache in DIR/attestations), except\n"
                     "  on models too old to attest (see list).",
    [MODE_RUN] = "run --url URL --dir DIR --devices N [options]\n"
                 "  enroll, then connect (devices whose enrollment failed are skipped).",
    [MODE_SERVE] =
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
    [MODE_CHECKOUT] = "checkout --url URL --dir DIR [options]\n"
                      "  Each device sends CheckOut (its MDM profile was removed).",
    [MODE_LIST] =
        "list --dir DIR [--devices N]\n"
        "  Prints one tab-separated line per device: index, UDID, SerialNumber,\n"
        "  ProductName, Model, ModelName, OSVersion, BuildVersion, IMEI (or -), DeviceName,\n"
        "  and attest (the model can attest) or no-attest.",
    [MODE_TOKENS] =
        "tokens --dir DIR [--devices N]\n"
        "  Prints UDID, push token (hex) and PushMagic, tab-separated, for each device\n"
        "  with a token in DIR/tokens.tsv (sent in its last accepted TokenUpdate).",
    [MODE_ANSWER] =
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
    OPT_EXPECT_PUSHES
};

#define MODE_BIT(m) (1u << (m))
#define MODES_ALL ((1u << MODE_COUNT) - 1)
#define MODES_NET                                                                                  \
    (MODE_BIT(MODE_ENROLL) | MODE_BIT(MODE_CONNECT) | MODE_BIT(MODE_RUN) |                         \
     MODE_BIT(MODE_CHECKOUT) | MODE_BIT(MODE_SERVE))
#define MODES_CHECKIN (MODE_BIT(MODE_ENROLL) | MODE_BIT(MODE_RUN) | MODE_BIT(MODE_CHECKOUT))
#define MODES_ROUNDS (MODE_BIT(MODE_CONNECT) | MODE_BIT(MODE_RUN))
#define MODES_REPORT (MODES_ROUNDS | MODE_BIT(MODE_SERVE)) /* devices hold Idle sessions */
#define MODES_CREATE (MODE_BIT(MODE_ENROLL) | MODE_BIT(MODE_RUN))
#define MODES_ANSWER (MODES_REPORT | MODE_BIT(MODE_ANSWER))
#define SIM_DEFAULT_IDLE_EXIT 10
#define SIM_TAIL_POLL_MS 20
#define SIM_TAIL_CHECK_MS 250 /* how often serve looks for a replaced or truncated push log */
#define SIM_PUSH_LINE_MAX 1024

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
    {"dir", required_argument, OPT_DIR, MODES_ALL, "DIR", "state directory (required)"},
    {"url", required_argument, OPT_URL, MODES_NET, "URL",
     "vouchd base URL, e.g. http://127.0.0.1:8080"},
    {"checkin-url", required_argument, OPT_CHECKIN_URL, MODES_CHECKIN, "URL",
     "full CheckInURL (default URL/mdm/checkin)"},
    {"server-url", required_argument, OPT_SERVER_URL, MODES_REPORT, "URL",
     "full ServerURL (default URL/mdm/connect)"},
    {"devices", required_argument, OPT_DEVICES, MODES_CREATE, "N",
     "fleet size (required); identities in DIR are reused"},
    {"devices", required_argument, OPT_DEVICES,
     MODE_BIT(MODE_CONNECT) | MODE_BIT(MODE_CHECKOUT) | MODE_BIT(MODE_LIST) | MODE_BIT(MODE_SERVE) |
         MODE_BIT(MODE_TOKENS),
     "N", "use the first N devices of DIR (default: all)"},
    {"pushes", required_argument, OPT_PUSHES, MODE_BIT(MODE_SERVE), "FILE",
     "the push log to follow, e.g. D/pushes.log of apns-standin --notify-dir D (required; it "
     "may appear later)"},
    {"from-start", no_argument, OPT_FROM_START, MODE_BIT(MODE_SERVE), NULL,
     "handle the pushes already in FILE too (default: only those appended from now on)"},
    {"idle-exit", required_argument, OPT_IDLE_EXIT, MODE_BIT(MODE_SERVE), "S",
     "stop after S seconds without a push once no session runs (default 10; 0: never)"},
    {"max-seconds", required_argument, OPT_MAX_SECONDS, MODE_BIT(MODE_SERVE), "S",
     "stop after S seconds: queued sessions are dropped, running ones finish (default: none)"},
    {"expect-pushes", required_argument, OPT_EXPECT_PUSHES, MODE_BIT(MODE_SERVE), "N",
     "stop once N pushes to DIR's devices were handled and their sessions ended; stopping "
     "earlier (idle, max-seconds, signal) is then a failure"},
    {"concurrency", required_argument, OPT_CONCURRENCY, MODES_NET, "K",
     "worker threads, one kept-alive connection each (default 8)"},
    {"prefix", required_argument, OPT_PREFIX, MODES_CREATE, "P",
     "fleet name the UDIDs derive from (default sim; fixed once DIR has devices)"},
    {"key-type", required_argument, OPT_KEY_TYPE, MODES_CREATE, "rsa|ec",
     "new device keys: RSA 2048 (default) or P-256"},
    {"key-type", required_argument, OPT_KEY_TYPE, MODE_BIT(MODE_INIT_CA), "rsa|ec",
     "CA key: P-256 (default) or RSA 2048"},
    {"topic", required_argument, OPT_TOPIC, MODES_CHECKIN, "TOPIC",
     "APNs topic (default " SIM_DEFAULT_TOPIC ")"},
    {"device", required_argument, OPT_DEVICE, MODE_BIT(MODE_ANSWER), "I",
     "the index of the device that answers (required)"},
    {"command", required_argument, OPT_COMMAND, MODE_BIT(MODE_ANSWER), "FILE",
     "command plist, XML or binary (default -: stdin)"},
    {"answer", required_argument, OPT_ANSWER, MODES_ANSWER, "ack|notnow|error|formaterror",
     "how devices answer commands (default ack)"},
    {"now", required_argument, OPT_NOW, MODES_ANSWER, "UNIXTIME",
     "the devices' clock: attestation age and leaf notBefore (default $" SIM_NOW_ENV
     ", else the time)"},
    {"attest-tamper", required_argument, OPT_ATTEST_TAMPER, MODES_ANSWER, "KIND",
     "answer attestation requests wrongly: other-root, expired, wrong-os, no-freshness, "
     "wrong-nonce, garbage or empty (negative tests; minted fresh, cache untouched)"},
    {"attest-as-device", required_argument, OPT_ATTEST_AS_DEVICE, MODES_ANSWER, "N",
     "answer attestation requests with a valid chain made for device N (negative tests)"},
    {"attest-legacy-leaf", no_argument, OPT_ATTEST_LEGACY_LEAF, MODES_ANSWER, NULL,
     "devices on an OS before 17.2 leave .9.4, .10.1 and .10.3 out, as real ones do"},
    {"attest-reuse-key", no_argument, OPT_ATTEST_REUSE_KEY, MODES_REPORT, NULL,
     "each worker's leaves certify one key, not a new P-384 key each (load tests)"},
    {"rounds", required_argument, OPT_ROUNDS, MODES_ROUNDS, "R",
     "Idle sessions per device (default 1)"},
    {"max-commands", required_argument, OPT_MAX_COMMANDS, MODES_REPORT, "N",
     "commands one session may hand out before it counts as a loop (default 1000)"},
    {"expect-status", required_argument, OPT_EXPECT_STATUS, MODES_NET & ~MODE_BIT(MODE_SERVE),
     "CODE", "every device must get HTTP CODE (non-2xx: its flow stops there)"},
    {"expect-status", required_argument, OPT_EXPECT_STATUS, MODE_BIT(MODE_SERVE), "CODE",
     "every session must get HTTP CODE (non-2xx: the session stops there)"},
    {"timeout", required_argument, OPT_TIMEOUT, MODES_NET, "SECONDS",
     "per-request timeout (default 30)"},
    {"cacert", required_argument, OPT_CACERT, MODES_NET, "FILE", "CA bundle for an https URL"},
    {"insecure", no_argument, OPT_INSECURE, MODES_NET, NULL, "do not verify the TLS server"},
    {"http", required_argument, OPT_HTTP, MODES_NET, "1.1|2|h2c",
     "HTTP version (default: libcurl's choice)"},
    {"no-signature", no_argument, OPT_NO_SIGNATURE, MODES_NET, NULL,
     "send no Mdm-Signature header"},
    {"bad-signature", no_argument, OPT_BAD_SIGNATURE, MODES_NET, NULL,
     "sign bytes other than the body (negative tests)"},
    {"swap-identities", no_argument, OPT_SWAP_IDENTITIES, MODES_NET, NULL,
     "device i signs with device i+1's identity (negative tests)"},
    {"cert-header", required_argument, OPT_CERT_HEADER, MODES_NET, "NAME",
     "also send the certificate in header NAME as :base64-DER: (RFC 9440)"},
    {"quiet", no_argument, OPT_QUIET, MODES_NET, NULL, "no progress lines on stderr"},
    {"help", no_argument, OPT_HELP, MODES_ALL, NULL, "this help"},
};

#define OPT_DOC_COUNT (sizeof(opt_docs) / sizeof(opt_docs[0]))

struct sim_options {
    enum sim_mode mode;
    const char *dir;
    const char *url;
    const char *checkin_url_opt;
    const char *server_url_opt;
    char checkin_url[SIM_URL_MAX];
    char server_url[SIM_URL_MAX];
    unsigned long devices;
    bool devices_set;
    unsigned concurrency;
    const char *prefix;
    bool prefix_set;
    enum sim_key_type key_type;
    bool key_type_set;
    const char *topic;
    enum sim_answer answer;
    unsigned long rounds;
    unsigned long max_commands;
    long expect_status; /* 0: every response must be 2xx */
    long timeout;
    const char *cacert;
    bool insecure;
    enum sim_http_version http_version;
    bool no_signature;
    bool bad_signature;
    bool swap_identities;
    const char *cert_header;
    bool quiet;
    time_t now; /* the devices' clock */
    bool now_set;
    enum sim_attest_tamper attest_tamper;
    unsigned long attest_as_device;
    bool attest_as_device_set;
    bool attest_legacy_leaf;
    bool attest_reuse_key;
    unsigned long device; /* answer: the device's index */
    bool device_set;
    const char *command_file;
    const char *pushes; /* serve */
    bool from_start;
    unsigned long idle_exit;
    unsigned long max_seconds; /* 0: none */
    unsigned long expect_pushes;
    bool expect_pushes_set;
};

/* What devices did with attestation requests (DevicePropertiesAttestation queries). */
enum attest_count {
    ATTEST_COUNT_GENERATED,   /* a new attestation */
    ATTEST_COUNT_CACHED,      /* the cached one (7-day rule) */
    ATTEST_COUNT_TAMPERED,    /* --attest-tamper / --attest-as-device */
    ATTEST_COUNT_UNSUPPORTED, /* a model that cannot attest answered without */
    ATTEST_COUNT_BAD_NONCE,   /* CommandFormatError for an unusable DeviceAttestationNonce */
    ATTEST_COUNT_N
};

static const char *const attest_count_names[ATTEST_COUNT_N] = {
    [ATTEST_COUNT_GENERATED] = "generated", [ATTEST_COUNT_CACHED] = "cached",
    [ATTEST_COUNT_TAMPERED] = "tampered",   [ATTEST_COUNT_UNSUPPORTED] = "unsupported",
    [ATTEST_COUNT_BAD_NONCE] = "bad_nonce",
};

struct sim_type_count {
    char name[SIM_REQUEST_TYPE_MAX];
    unsigned long count;
};

/* One worker's counters; merged into a total after the phase. */
/* Request latencies: bucket b holds the requests that took [b, b + 1) * LATENCY_STEP_US, the
 * last one everything slower. Fine enough for p50/p99 of round trips around a millisecond. */
#define LATENCY_STEP_US 50
#define LATENCY_BUCKETS 4000 /* up to 200 ms in 50 µs steps */

struct sim_stats {
    unsigned long latency[LATENCY_BUCKETS];
    unsigned long requests;
    unsigned long new_connections;
    unsigned long http_errors;
    unsigned long transport_errors;
    unsigned long protocol_errors;
    unsigned long local_errors;
    unsigned long enrolled;
    unsigned long checked_out;
    unsigned long sessions;
    unsigned long failed_devices;
    unsigned long expected_hits;
    unsigned long answers[SIM_ANSWER_COUNT];
    unsigned long attest[ATTEST_COUNT_N];
    struct sim_type_count types[SIM_MAX_TYPES];
    size_t ntypes;
    unsigned long other_types;
    unsigned long status[600];
};

/* What serve made of the push log. */
struct serve_counts {
    unsigned long pushes_seen;      /* non-empty lines read */
    unsigned long pushes_unknown;   /* well-formed, but no device of ours has the token */
    unsigned long pushes_bad_magic; /* ours, with another PushMagic: ignored, a protocol error */
    unsigned long pushes_malformed; /* not "<token> <magic>" */
    unsigned long pushes_handled;   /* ours (bad magic included): what --expect-pushes counts */
    unsigned long pushes_coalesced; /* ours, folded into a session already queued */
    unsigned long sessions_dropped; /* queued when serve stopped early */
    size_t devices_with_tokens;
    const char *stopped_by;
};

enum sim_phase { PHASE_ENROLL, PHASE_CONNECT, PHASE_CHECKOUT };

/* Per-device state across the phases of one invocation. */
#define DEV_FAILED 0x01
#define DEV_STOPPED 0x02 /* got the --expect-status answer; its flow ended there */

struct sim_run {
    const struct sim_options *opt;
    const struct sim_fleet *fleet;
    struct sim_attest_options attest;
    size_t ndevices;
    enum sim_phase phase;
    bool last_phase;
    bool serving; /* serve: a device runs a session per push, failed before or not */
    unsigned char *state;
    /* enroll: the token each device sent in a TokenUpdate the server accepted (present false
     * otherwise), written by the worker holding the device, saved after the phase. */
    struct sim_push_token *tokens;
    atomic_size_t next;
    atomic_size_t done;
    atomic_ulong requests;
    atomic_ulong failures;
    atomic_uint workers_left;
};

struct serve_pool;

struct sim_worker {
    struct sim_run *run;
    struct serve_pool *pool; /* serve only */
    pthread_t thread;
    struct sim_http *http;
    struct sim_pki_loader *loader;
    struct fake_apple *apple;       /* this worker's copy of DIR's stand-in Apple hierarchy */
    struct fake_apple *apple_other; /* --attest-tamper other-root: the second one */
    struct sim_stats stats;
};

/* One device's exchange with the server during a phase. */
struct sim_conn {
    struct sim_worker *worker;
    const struct sim_device *dev;
    struct sim_identity *id;
    char *cert_header_line;
    bool failed;
    bool saw_expected;
    bool stop; /* no further request for this device in this phase */
};

enum req_result {
    REQ_OK,      /* 2xx (or the expected 2xx): go on */
    REQ_STOPPED, /* the expected non-2xx status: the device's flow ends, successfully */
    REQ_FAILED   /* reported and counted */
};

static atomic_ulong failures_shown;

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

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

        if (!(d->modes & MODE_BIT(mode)))
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

static void print_general_usage(FILE *f)
{
    fprintf(f, "usage: vouch-sim SUBCOMMAND [options]   (vouch-sim SUBCOMMAND --help for more)\n\n"
               "subcommands:\n");
    for (int m = 0; m < MODE_COUNT; m++) {
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
    default:
        return usage_error(opt->mode, "unhandled option --%s", name);
    }
    return SIM_EXIT_OK;
}

/* Checks the combination of options once all are parsed. */
static int check_options(struct sim_options *opt)
{
    enum sim_mode m = opt->mode;
    bool checkin = (MODES_CHECKIN & MODE_BIT(m)) != 0;
    bool report = (MODES_REPORT & MODE_BIT(m)) != 0;

    if (opt->dir == NULL || opt->dir[0] == '\0')
        return usage_error(m, "--dir is required");
    if ((MODES_CREATE & MODE_BIT(m)) && !opt->devices_set)
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
    if (m == MODE_ANSWER && !opt->device_set)
        return usage_error(m, "--device is required");
    if (m == MODE_SERVE && opt->pushes == NULL)
        return usage_error(m, "--pushes is required");
    if ((MODES_ANSWER & MODE_BIT(m)) && !opt->now_set) {
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

/* Parses argv (argv[0] is the subcommand). Returns SIM_EXIT_OK, SIM_EXIT_USAGE, or -1 when
 * help was printed. */
static int parse_options(struct sim_options *opt, int argc, char **argv)
{
    struct option longopts[OPT_DOC_COUNT + 1];
    size_t n = 0;
    int c;

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
                allowed = allowed || (opt_docs[i].modes & MODE_BIT(opt->mode)) != 0;
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

/* ---- statistics and output ---------------------------------------------------------------- */

static void stats_count_type(struct sim_stats *s, const char *type, unsigned long count)
{
    for (size_t i = 0; i < s->ntypes; i++) {
        if (strcmp(s->types[i].name, type) == 0) {
            s->types[i].count += count;
            return;
        }
    }
    if (s->ntypes == SIM_MAX_TYPES) {
        s->other_types += count;
        return;
    }
    snprintf(s->types[s->ntypes].name, sizeof(s->types[s->ntypes].name), "%s", type);
    s->types[s->ntypes].count = count;
    s->ntypes++;
}

static void stats_merge(struct sim_stats *into, const struct sim_stats *from)
{
    for (size_t i = 0; i < LATENCY_BUCKETS; i++)
        into->latency[i] += from->latency[i];
    into->requests += from->requests;
    into->new_connections += from->new_connections;
    into->http_errors += from->http_errors;
    into->transport_errors += from->transport_errors;
    into->protocol_errors += from->protocol_errors;
    into->local_errors += from->local_errors;
    into->enrolled += from->enrolled;
    into->checked_out += from->checked_out;
    into->sessions += from->sessions;
    into->failed_devices += from->failed_devices;
    into->expected_hits += from->expected_hits;
    into->other_types += from->other_types;
    for (int i = 0; i < SIM_ANSWER_COUNT; i++)
        into->answers[i] += from->answers[i];
    for (int i = 0; i < ATTEST_COUNT_N; i++)
        into->attest[i] += from->attest[i];
    for (size_t i = 0; i < from->ntypes; i++)
        stats_count_type(into, from->types[i].name, from->types[i].count);
    for (size_t i = 0; i < sizeof(into->status) / sizeof(into->status[0]); i++)
        into->status[i] += from->status[i];
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static int compare_types(const void *a, const void *b)
{
    const struct sim_type_count *x = a;
    const struct sim_type_count *y = b;

    return strcmp(x->name, y->name);
}

static void print_summary(const struct sim_options *opt, size_t ndevices, unsigned long created,
                          struct sim_stats *s, const struct serve_counts *serve, double prepare,
                          double elapsed)
{
    bool first = true;

    qsort(s->types, s->ntypes, sizeof(s->types[0]), compare_types);
    printf("{\"mode\":");
    json_string(stdout, mode_names[opt->mode]);
    printf(",\"devices\":%zu,\"identities_created\":%lu,\"enrolled\":%lu,\"checked_out\":%lu,"
           "\"sessions\":%lu,\"requests\":%lu,\"connections\":%lu,\"http_errors\":%lu,"
           "\"transport_errors\":%lu,\"protocol_errors\":%lu,\"local_errors\":%lu,"
           "\"failed_devices\":%lu,",
           ndevices, created, s->enrolled, s->checked_out, s->sessions, s->requests,
           s->new_connections, s->http_errors, s->transport_errors, s->protocol_errors,
           s->local_errors, s->failed_devices);
    if (opt->expect_status != 0)
        printf("\"expected_status\":%ld,", opt->expect_status);
    else
        printf("\"expected_status\":null,");
    printf("\"expected_hits\":%lu,\"statuses\":{", s->expected_hits);
    for (size_t i = 0; i < sizeof(s->status) / sizeof(s->status[0]); i++) {
        if (s->status[i] == 0)
            continue;
        printf("%s\"%zu\":%lu", first ? "" : ",", i, s->status[i]);
        first = false;
    }
    printf("},\"commands\":{");
    for (size_t i = 0; i < s->ntypes; i++) {
        if (i > 0)
            putchar(',');
        json_string(stdout, s->types[i].name);
        printf(":%lu", s->types[i].count);
    }
    if (s->other_types > 0)
        printf("%s\"(other)\":%lu", s->ntypes > 0 ? "," : "", s->other_types);
    printf("},\"answers\":{");
    for (int i = 0; i < SIM_ANSWER_COUNT; i++) {
        printf("%s", i > 0 ? "," : "");
        json_string(stdout, sim_device_answer_status((enum sim_answer)i));
        printf(":%lu", s->answers[i]);
    }
    printf("},\"attestations\":{");
    for (int i = 0; i < ATTEST_COUNT_N; i++) {
        printf("%s", i > 0 ? "," : "");
        json_string(stdout, attest_count_names[i]);
        printf(":%lu", s->attest[i]);
    }
    printf("}");
    if (serve != NULL) {
        printf(",\"pushes_seen\":%lu,\"pushes_unknown_token\":%lu,\"pushes_bad_magic\":%lu,"
               "\"pushes_malformed\":%lu,\"pushes_handled\":%lu,\"pushes_coalesced\":%lu,"
               "\"sessions_dropped\":%lu,\"devices_with_tokens\":%zu,",
               serve->pushes_seen, serve->pushes_unknown, serve->pushes_bad_magic,
               serve->pushes_malformed, serve->pushes_handled, serve->pushes_coalesced,
               serve->sessions_dropped, serve->devices_with_tokens);
        if (opt->expect_pushes_set)
            printf("\"expected_pushes\":%lu,", opt->expect_pushes);
        else
            printf("\"expected_pushes\":null,");
        printf("\"stopped_by\":");
        json_string(stdout, serve->stopped_by);
    }
    unsigned long timed = 0, seen = 0;
    for (size_t i = 0; i < LATENCY_BUCKETS; i++)
        timed += s->latency[i];
    if (timed > 0) {
        /* The upper edge of the bucket holding the quantile (the last bucket: "at least"). */
        const double quantiles[] = {0.5, 0.99};
        double edge_ms[2] = {0, 0};
        size_t q = 0;
        for (size_t i = 0; i < LATENCY_BUCKETS && q < 2; i++) {
            seen += s->latency[i];
            while (q < 2 && (double)seen >= quantiles[q] * (double)timed)
                edge_ms[q++] = (double)((i + 1) * LATENCY_STEP_US) / 1000.0;
        }
        printf(",\"latency_ms\":{\"p50\":%.2f,\"p99\":%.2f}", edge_ms[0], edge_ms[1]);
    }
    printf(",\"prepare_s\":%.3f,\"elapsed_s\":%.3f}\n", prepare, elapsed);
    fflush(stdout);
}

/* ---- one device ----------------------------------------------------------------------------- */

/* A printable excerpt of a response body for diagnostics. */
static void body_snippet(char *out, size_t outlen, const char *body, size_t len)
{
    size_t n = len < SIM_SNIPPET ? len : SIM_SNIPPET;
    size_t j = 0;

    for (size_t i = 0; i < n && j + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : (ch == '\n' || ch == '\t') ? ' ' : '.';
    }
    if (len > n && j + 4 < outlen) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

static void device_fail(struct sim_conn *c, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Marks the device failed and prints one diagnostic line (the first SIM_SHOWN_FAILURES only). */
static void device_fail(struct sim_conn *c, const char *what, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    unsigned long shown;

    c->failed = true;
    c->stop = true;
    atomic_fetch_add(&c->worker->run->failures, 1);
    shown = atomic_fetch_add(&failures_shown, 1);
    if (shown > SIM_SHOWN_FAILURES)
        return;
    if (shown == SIM_SHOWN_FAILURES) {
        fprintf(stderr, "vouch-sim: further failures are counted but not shown\n");
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "vouch-sim: device %lu %s: %s: %s\n", c->dev->index, c->dev->udid, what, msg);
}

/* Sends one signed PUT and classifies the answer (see enum req_result). */
static enum req_result device_put(struct sim_conn *c, const char *what, const char *url,
                                  const char *content_type, const char *body, size_t len,
                                  struct sim_http_response *resp)
{
    struct sim_worker *w = c->worker;
    const struct sim_options *opt = w->run->opt;
    const char *headers[4];
    size_t nheaders = 0;
    char ct_line[128];
    char *sig = NULL;
    char *sig_line = NULL;
    char *tampered = NULL;
    char err[512];
    char snippet[SIM_SNIPPET * 2];
    enum req_result result = REQ_FAILED;
    bool sent;

    snprintf(ct_line, sizeof(ct_line), "Content-Type: %s", content_type);
    headers[nheaders++] = ct_line;
    headers[nheaders++] = "Expect:"; /* no 100-continue round trip */
    if (!opt->no_signature) {
        const char *signed_bytes = body;
        size_t sig_size;

        if (opt->bad_signature) {
            tampered = malloc(len + 1);
            if (tampered == NULL) {
                w->stats.local_errors++;
                device_fail(c, what, "out of memory");
                goto out;
            }
            memcpy(tampered, body, len);
            tampered[len] = '\n'; /* sign one byte more than is sent */
            signed_bytes = tampered;
        }
        if (!sim_pki_sign_detached(c->id, signed_bytes, len + (opt->bad_signature ? 1 : 0), &sig,
                                   err, sizeof(err))) {
            w->stats.local_errors++;
            device_fail(c, what, "signing: %s", err);
            goto out;
        }
        sig_size = strlen(sig) + sizeof("Mdm-Signature: ");
        sig_line = malloc(sig_size);
        if (sig_line == NULL) {
            w->stats.local_errors++;
            device_fail(c, what, "out of memory");
            goto out;
        }
        snprintf(sig_line, sig_size, "Mdm-Signature: %s", sig);
        headers[nheaders++] = sig_line;
    }
    if (c->cert_header_line != NULL)
        headers[nheaders++] = c->cert_header_line;

    w->stats.requests++;
    atomic_fetch_add(&w->run->requests, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sent = sim_http_put(w->http, url, headers, nheaders, body, len, resp, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long us =
        (long long)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    size_t bucket = us < 0 ? 0 : (size_t)(us / LATENCY_STEP_US);
    w->stats.latency[bucket < LATENCY_BUCKETS ? bucket : LATENCY_BUCKETS - 1]++;
    if (!sent) {
        w->stats.transport_errors++;
        device_fail(c, what, "PUT %s: %s", url, err);
        goto out;
    }
    w->stats.new_connections +=
        (unsigned long)(resp->new_connections > 0 ? resp->new_connections : 0);
    if (resp->status >= 100 && resp->status < 600)
        w->stats.status[resp->status]++;

    if (opt->expect_status != 0 && resp->status == opt->expect_status) {
        if (resp->status >= 200 && resp->status < 300) {
            result = REQ_OK;
        } else {
            w->stats.expected_hits++;
            c->saw_expected = true;
            c->stop = true;
            result = REQ_STOPPED;
        }
        goto out;
    }
    if (resp->status >= 200 && resp->status < 300 &&
        (opt->expect_status == 0 || opt->expect_status >= 300)) {
        result = REQ_OK;
        goto out;
    }
    w->stats.http_errors++;
    body_snippet(snippet, sizeof(snippet), resp->body, resp->body_len);
    if (opt->expect_status != 0)
        device_fail(c, what, "HTTP %ld (expected %ld) from PUT %s: %s", resp->status,
                    opt->expect_status, url, snippet[0] != '\0' ? snippet : "(empty body)");
    else
        device_fail(c, what, "HTTP %ld from PUT %s: %s", resp->status, url,
                    snippet[0] != '\0' ? snippet : "(empty body)");
out:
    free(tampered);
    free(sig);
    free(sig_line);
    return result;
}

static void device_enroll(struct sim_conn *c)
{
    const struct sim_options *opt = c->worker->run->opt;
    struct sim_push_token tok;
    struct sim_http_response resp;
    enum req_result r;
    size_t len = 0;
    char *body = sim_device_authenticate(c->dev, opt->topic, &len);

    if (body == NULL) {
        c->worker->stats.local_errors++;
        device_fail(c, "Authenticate", "cannot build the message");
        return;
    }
    r = device_put(c, "Authenticate", opt->checkin_url, SIM_CT_CHECKIN, body, len, &resp);
    free(body);
    if (r != REQ_OK)
        return;
    body = sim_device_push_token_new(&tok) ? sim_device_token_update(c->dev, opt->topic, &tok, &len)
                                           : NULL;
    if (body == NULL) {
        c->worker->stats.local_errors++;
        device_fail(c, "TokenUpdate", "cannot build the message");
        return;
    }
    r = device_put(c, "TokenUpdate", opt->checkin_url, SIM_CT_CHECKIN, body, len, &resp);
    free(body);
    if (r == REQ_OK) {
        c->worker->stats.enrolled++;
        if (c->worker->run->tokens != NULL)
            c->worker->run->tokens[c->dev->index] = tok;
    }
}

static void device_checkout(struct sim_conn *c)
{
    const struct sim_options *opt = c->worker->run->opt;
    struct sim_http_response resp;
    size_t len = 0;
    char *body = sim_device_checkout(c->dev, opt->topic, &len);

    if (body == NULL) {
        c->worker->stats.local_errors++;
        device_fail(c, "CheckOut", "cannot build the message");
        return;
    }
    if (device_put(c, "CheckOut", opt->checkin_url, SIM_CT_CHECKIN, body, len, &resp) == REQ_OK)
        c->worker->stats.checked_out++;
    free(body);
}

/* The CommandUUIDs answered NotNow in the current session. */
struct notnow_list {
    char (*uuids)[SIM_COMMAND_UUID_MAX];
    size_t count;
    size_t cap;
};

static bool notnow_contains(const struct notnow_list *l, const char *uuid)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->uuids[i], uuid) == 0)
            return true;
    }
    return false;
}

static bool notnow_add(struct notnow_list *l, const char *uuid)
{
    if (l->count == l->cap) {
        size_t cap = l->cap == 0 ? 8 : l->cap * 2;
        char(*grown)[SIM_COMMAND_UUID_MAX] = realloc(l->uuids, cap * sizeof(*grown));
        if (grown == NULL)
            return false;
        l->uuids = grown;
        l->cap = cap;
    }
    snprintf(l->uuids[l->count++], SIM_COMMAND_UUID_MAX, "%s", uuid);
    return true;
}

/* What dev does with cmd's attestation request, if any: *answer turns into CommandFormatError
 * for an unusable nonce; when the report must carry DevicePropertiesAttestation, *attached is
 * true and chain holds its items (the caller frees them with fake_chain_free()). Counts what it
 * did in counts[]. False with a reason in err on a local failure. */
static bool device_attestation(const char *dir, const struct sim_attest_options *aopt,
                               const struct fake_apple *apple, const struct fake_apple *other,
                               const struct sim_device *dev, const struct sim_command *cmd,
                               enum sim_answer *answer, struct fake_chain *chain, bool *attached,
                               unsigned long counts[ATTEST_COUNT_N], char *err, size_t errlen)
{
    unsigned char nonce[SIM_NONCE_MAX];
    size_t nonce_len = 0;
    struct sim_attest_cache cache;
    enum sim_attest_source source = SIM_ATTEST_GENERATED;
    enum sim_attest_ask ask;
    bool honest = aopt->tamper == SIM_TAMPER_NONE && aopt->as_device == NULL;
    bool changed = false;
    bool ok;

    *attached = false;
    memset(chain, 0, sizeof(*chain));
    memset(&cache, 0, sizeof(cache));
    if (*answer != SIM_ANSWER_ACK)
        return true;
    ask = sim_device_attest_request(cmd, nonce, &nonce_len);
    if (ask == SIM_ATTEST_NOT_ASKED)
        return true;
    if (!sim_device_supports_attestation(dev)) {
        counts[ATTEST_COUNT_UNSUPPORTED]++;
        return true;
    }
    if (ask == SIM_ATTEST_BAD_NONCE) {
        counts[ATTEST_COUNT_BAD_NONCE]++;
        *answer = SIM_ANSWER_FORMAT_ERROR;
        return true;
    }
    if (honest && !sim_store_attest_load(dir, dev->udid, &cache, err, errlen))
        return false;
    ok = sim_attest_answer(apple, other, aopt, dev, nonce, nonce_len, &cache, &changed, chain,
                           &source, err, errlen);
    if (ok && changed && !sim_store_attest_save(dir, dev->udid, &cache, err, errlen)) {
        fake_chain_free(chain);
        ok = false;
    }
    sim_attest_cache_free(&cache);
    if (!ok)
        return false;
    counts[source == SIM_ATTEST_GENERATED ? ATTEST_COUNT_GENERATED
           : source == SIM_ATTEST_CACHED  ? ATTEST_COUNT_CACHED
                                          : ATTEST_COUNT_TAMPERED]++;
    *attached = true;
    return true;
}

/* Borrows chain's items for sim_device_report(). */
static void attest_items(struct sim_attest_items *items, const struct fake_chain *chain)
{
    memset(items, 0, sizeof(*items));
    for (size_t i = 0; i < chain->count && i < SIM_ATTEST_ITEMS_MAX; i++) {
        items->der[i] = chain->der[i];
        items->len[i] = chain->len[i];
        items->count++;
    }
}

/* One Idle session: report Idle, answer each command handed back, until an empty body. */
static void device_session(struct sim_conn *c)
{
    struct sim_worker *w = c->worker;
    const struct sim_options *opt = w->run->opt;
    struct notnow_list notnow = {NULL, 0, 0};
    char what[SIM_REQUEST_TYPE_MAX + SIM_COMMAND_UUID_MAX + 32] = "Idle";
    unsigned long handed = 0;
    size_t len = 0;
    char *body = sim_device_idle(c->dev, &len);

    w->stats.sessions++;
    if (body == NULL) {
        w->stats.local_errors++;
        device_fail(c, what, "cannot build the message");
        return;
    }
    for (;;) {
        struct sim_http_response resp;
        struct sim_command cmd;
        struct fake_chain chain;
        struct sim_attest_items items;
        enum sim_answer answer;
        bool attached = false;
        char err[512];
        char snippet[SIM_SNIPPET * 2];
        enum req_result r = device_put(c, what, opt->server_url, SIM_CT_REPORT, body, len, &resp);

        free(body);
        body = NULL;
        if (r != REQ_OK || resp.body_len == 0)
            break;
        if (++handed > opt->max_commands) {
            w->stats.protocol_errors++;
            device_fail(c, what, "the server handed out more than %lu commands in one session",
                        opt->max_commands);
            break;
        }
        if (!sim_device_parse_command(resp.body, resp.body_len, &cmd, err, sizeof(err))) {
            w->stats.protocol_errors++;
            body_snippet(snippet, sizeof(snippet), resp.body, resp.body_len);
            device_fail(c, what, "%s (Content-Type %s): %s", err,
                        resp.content_type[0] != '\0' ? resp.content_type : "none", snippet);
            break;
        }
        if (notnow_contains(&notnow, cmd.uuid)) {
            w->stats.protocol_errors++;
            device_fail(c, what,
                        "the server handed back command %s (%s) in the session where"
                        " the device answered it NotNow",
                        cmd.uuid, cmd.request_type);
            sim_device_command_free(&cmd);
            break;
        }
        stats_count_type(&w->stats, cmd.request_type, 1);
        answer = opt->answer;
        if (!device_attestation(opt->dir, &w->run->attest, w->apple, w->apple_other, c->dev, &cmd,
                                &answer, &chain, &attached, w->stats.attest, err, sizeof(err))) {
            w->stats.local_errors++;
            device_fail(c, "attestation", "%s %s: %s", cmd.request_type, cmd.uuid, err);
            sim_device_command_free(&cmd);
            break;
        }
        attest_items(&items, &chain);
        w->stats.answers[answer]++;
        body = sim_device_report(c->dev, &cmd, answer, attached ? &items : NULL, &len);
        fake_chain_free(&chain);
        snprintf(what, sizeof(what), "%s %s %s", sim_device_answer_status(answer), cmd.request_type,
                 cmd.uuid);
        if (body == NULL || (answer == SIM_ANSWER_NOTNOW && !notnow_add(&notnow, cmd.uuid))) {
            w->stats.local_errors++;
            device_fail(c, what, "cannot build the report");
            sim_device_command_free(&cmd);
            break;
        }
        sim_device_command_free(&cmd);
    }
    free(body);
    free(notnow.uuids);
}

static void device_connect(struct sim_conn *c)
{
    for (unsigned long round = 0; round < c->worker->run->opt->rounds && !c->stop; round++)
        device_session(c);
}

static void worker_device(struct sim_worker *w, size_t i)
{
    struct sim_run *run = w->run;
    const struct sim_options *opt = run->opt;
    const struct sim_device *signer;
    struct sim_conn c;
    char err[512];

    memset(&c, 0, sizeof(c));
    c.worker = w;
    c.dev = &run->fleet->devices[i];
    /* In run mode, devices whose enrollment failed or ended as expected do not connect. */
    if (!run->serving && (run->state[i] & (DEV_FAILED | DEV_STOPPED)))
        return;
    signer = &run->fleet->devices[opt->swap_identities ? (i + 1) % run->ndevices : i];
    c.id = sim_pki_identity_load(w->loader, signer->identity_pem, signer->identity_pem_len, err,
                                 sizeof(err));
    if (c.id == NULL) {
        w->stats.local_errors++;
        device_fail(&c, "identity", "device %lu's identity in %s: %s", signer->index, opt->dir,
                    err);
        goto done;
    }
    if (opt->cert_header != NULL) {
        char *value = NULL;
        size_t n;

        if (!sim_pki_cert_header_value(c.id, &value, err, sizeof(err))) {
            w->stats.local_errors++;
            device_fail(&c, "identity", "%s", err);
            goto done;
        }
        n = strlen(opt->cert_header) + strlen(value) + 3;
        c.cert_header_line = malloc(n);
        if (c.cert_header_line == NULL) {
            free(value);
            w->stats.local_errors++;
            device_fail(&c, "identity", "out of memory");
            goto done;
        }
        snprintf(c.cert_header_line, n, "%s: %s", opt->cert_header, value);
        free(value);
    }
    switch (run->phase) {
    case PHASE_ENROLL:
        device_enroll(&c);
        break;
    case PHASE_CONNECT:
        device_connect(&c);
        break;
    case PHASE_CHECKOUT:
        device_checkout(&c);
        break;
    }
done:
    if (!c.failed && run->last_phase && opt->expect_status >= 300 && !c.saw_expected)
        device_fail(&c, "expect-status", "expected HTTP %ld, but every request succeeded",
                    opt->expect_status);
    if (c.failed) {
        w->stats.failed_devices++;
        run->state[i] |= DEV_FAILED;
    }
    if (c.saw_expected)
        run->state[i] |= DEV_STOPPED;
    free(c.cert_header_line);
    sim_pki_identity_free(c.id);
}

static void *worker_main(void *arg)
{
    struct sim_worker *w = arg;
    struct sim_run *run = w->run;
    size_t i;

    while ((i = atomic_fetch_add(&run->next, 1)) < run->ndevices) {
        worker_device(w, i);
        atomic_fetch_add(&run->done, 1);
    }
    atomic_fetch_sub(&run->workers_left, 1);
    return NULL;
}

/* Waits for a phase's workers, printing a progress line every few seconds. */
static void wait_with_progress(const char *label, atomic_uint *workers_left, atomic_size_t *done,
                               size_t total, atomic_ulong *requests, atomic_ulong *failures,
                               bool quiet)
{
    double start = now_seconds();
    double last = start;

    while (atomic_load(workers_left) > 0) {
        double t;

        sleep_ms(100);
        t = now_seconds();
        if (quiet || t - last < SIM_PROGRESS_INTERVAL)
            continue;
        last = t;
        if (requests != NULL)
            fprintf(stderr, "vouch-sim: %s %zu/%zu devices, %lu requests (%.0f/s), %lu failed\n",
                    label, atomic_load(done), total, atomic_load(requests),
                    (double)atomic_load(requests) / (t - start), atomic_load(failures));
        else
            fprintf(stderr, "vouch-sim: %s %zu/%zu\n", label, atomic_load(done), total);
    }
}

static const char *phase_name(enum sim_phase phase)
{
    switch (phase) {
    case PHASE_ENROLL:
        return "enroll";
    case PHASE_CONNECT:
        return "connect";
    case PHASE_CHECKOUT:
        return "checkout";
    }
    return "?";
}

/* Runs one phase over all devices with the given workers; false if no thread could start. */
static bool run_phase(struct sim_run *run, struct sim_worker *workers, unsigned nworkers)
{
    unsigned started = 0;
    double t0 = now_seconds();

    atomic_store(&run->next, 0);
    atomic_store(&run->done, 0);
    atomic_store(&run->requests, 0);
    atomic_store(&run->workers_left, nworkers);
    for (; started < nworkers; started++) {
        int rc = pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]);
        if (rc != 0) {
            fprintf(stderr, "vouch-sim: starting worker %u: %s\n", started, strerror(rc));
            atomic_fetch_sub(&run->workers_left, nworkers - started);
            break;
        }
    }
    if (started == 0)
        return false;
    wait_with_progress(phase_name(run->phase), &run->workers_left, &run->done, run->ndevices,
                       &run->requests, &run->failures, run->opt->quiet);
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    if (!run->opt->quiet)
        fprintf(stderr, "vouch-sim: %s: %zu devices, %lu requests in %.2f s\n",
                phase_name(run->phase), run->ndevices, atomic_load(&run->requests),
                now_seconds() - t0);
    return true;
}

/* ---- identities ----------------------------------------------------------------------------- */

struct gen_job {
    const struct sim_options *opt;
    struct sim_device *devices;
    char **pems;
    size_t *pem_lens;
    size_t n;
    atomic_size_t next;
    atomic_size_t done;
    atomic_bool failed;
    atomic_uint workers_left;
    pthread_mutex_t lock;
    char err[512];
};

static void gen_fail(struct gen_job *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void gen_fail(struct gen_job *job, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&job->lock);
    if (!atomic_load(&job->failed)) {
        va_start(ap, fmt);
        vsnprintf(job->err, sizeof(job->err), fmt, ap);
        va_end(ap);
        atomic_store(&job->failed, true);
    }
    pthread_mutex_unlock(&job->lock);
}

static void *gen_main(void *arg)
{
    struct gen_job *job = arg;
    char err[512];
    bool absent = false;
    /* Each thread its own copy of the CA: nothing OpenSSL-side is shared between threads. */
    struct sim_ca *ca = sim_store_ca_load(job->opt->dir, &absent, err, sizeof(err));
    size_t i;

    if (ca == NULL)
        gen_fail(job, "loading the CA: %s", err);
    while (ca != NULL && !atomic_load(&job->failed) &&
           (i = atomic_fetch_add(&job->next, 1)) < job->n) {
        if (!sim_pki_identity_issue(ca, job->devices[i].udid, job->opt->key_type, &job->pems[i],
                                    &job->pem_lens[i], err, sizeof(err)))
            gen_fail(job, "device %lu: %s", job->devices[i].index, err);
        atomic_fetch_add(&job->done, 1);
    }
    sim_pki_ca_free(ca);
    atomic_fetch_sub(&job->workers_left, 1);
    return NULL;
}

/* Derives n devices from first on and issues their identities with K threads. */
static bool identities_create(const struct sim_options *opt, const char *prefix, size_t first,
                              size_t n, struct sim_device **devices_out, char ***pems_out,
                              size_t **lens_out)
{
    struct gen_job job;
    unsigned nthreads = opt->concurrency < n ? opt->concurrency : (unsigned)n;
    pthread_t *threads = calloc(nthreads, sizeof(*threads));
    unsigned started = 0;
    bool ok = false;

    memset(&job, 0, sizeof(job));
    job.opt = opt;
    job.n = n;
    job.devices = calloc(n, sizeof(*job.devices));
    job.pems = calloc(n, sizeof(*job.pems));
    job.pem_lens = calloc(n, sizeof(*job.pem_lens));
    if (threads == NULL || job.devices == NULL || job.pems == NULL || job.pem_lens == NULL) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sim_device_derive(&job.devices[i], prefix, (unsigned long)(first + i))) {
            fprintf(stderr, "vouch-sim: cannot derive device %zu\n", first + i);
            goto out;
        }
    }
    if (pthread_mutex_init(&job.lock, NULL) != 0) {
        fprintf(stderr, "vouch-sim: pthread_mutex_init failed\n");
        goto out;
    }
    if (!opt->quiet)
        fprintf(stderr, "vouch-sim: issuing %zu %s device identities\n", n,
                opt->key_type == SIM_KEY_RSA ? "RSA 2048" : "P-256");
    atomic_store(&job.workers_left, nthreads);
    for (; started < nthreads; started++) {
        int rc = pthread_create(&threads[started], NULL, gen_main, &job);
        if (rc != 0) {
            fprintf(stderr, "vouch-sim: starting thread: %s\n", strerror(rc));
            atomic_fetch_sub(&job.workers_left, nthreads - started);
            break;
        }
    }
    if (started > 0)
        wait_with_progress("identities", &job.workers_left, &job.done, n, NULL, NULL, opt->quiet);
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&job.lock);
    if (started == 0)
        goto out;
    if (atomic_load(&job.failed)) {
        fprintf(stderr, "vouch-sim: issuing identities: %s\n", job.err);
        goto out;
    }
    ok = true;
out:
    free(threads);
    if (!ok) {
        for (size_t i = 0; job.pems != NULL && i < n; i++)
            free(job.pems[i]);
        free(job.pems);
        free(job.pem_lens);
        free(job.devices);
        return false;
    }
    *devices_out = job.devices;
    *pems_out = job.pems;
    *lens_out = job.pem_lens;
    return true;
}

/* enroll/run: makes sure DIR holds a CA and at least opt->devices devices, then loads them. */
static bool fleet_prepare(const struct sim_options *opt, struct sim_fleet *fleet,
                          unsigned long *created)
{
    char err[512];
    bool ca_created = false;
    int lock;
    bool ok = false;
    const char *prefix;

    *created = 0;
    memset(fleet, 0, sizeof(*fleet));
    if (!sim_store_prepare_dir(opt->dir, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return false;
    }
    lock = sim_store_lock(opt->dir, err, sizeof(err));
    if (lock < 0) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return false;
    }
    if (!sim_store_ca_init(opt->dir, SIM_KEY_EC, &ca_created, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        goto out;
    }
    if (ca_created)
        fprintf(stderr,
                "vouch-sim: created the device-identity CA %s/ca.pem; vouchd's identity_ca must "
                "name it\n",
                opt->dir);
    if (!sim_store_fleet_load(opt->dir, fleet, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        goto out;
    }
    if (fleet->count > 0 && opt->prefix_set && strcmp(opt->prefix, fleet->prefix) != 0) {
        fprintf(stderr, "vouch-sim: %s holds the fleet '%s'; use another --dir for prefix '%s'\n",
                opt->dir, fleet->prefix, opt->prefix);
        goto out;
    }
    prefix = fleet->count > 0 ? fleet->prefix : opt->prefix;
    if (fleet->count < opt->devices) {
        size_t n = opt->devices - fleet->count;
        struct sim_device *devices = NULL;
        char **pems = NULL;
        size_t *lens = NULL;
        bool saved;

        if (!identities_create(opt, prefix, fleet->count, n, &devices, &pems, &lens))
            goto out;
        saved = sim_store_fleet_append(opt->dir, fleet, prefix, devices, pems, lens, n, err,
                                       sizeof(err));
        for (size_t i = 0; i < n; i++)
            free(pems[i]);
        free(pems);
        free(lens);
        free(devices);
        if (!saved) {
            fprintf(stderr, "vouch-sim: %s\n", err);
            goto out;
        }
        *created = (unsigned long)n;
        sim_store_fleet_free(fleet);
        if (!sim_store_fleet_load(opt->dir, fleet, err, sizeof(err))) {
            fprintf(stderr, "vouch-sim: %s\n", err);
            goto out;
        }
    }
    ok = true;
out:
    sim_store_unlock(lock);
    if (!ok)
        sim_store_fleet_free(fleet);
    return ok;
}

/* connect/checkout/list: loads DIR's fleet, which must hold the devices asked for. */
static bool fleet_open(const struct sim_options *opt, struct sim_fleet *fleet)
{
    char err[512];

    if (!sim_store_fleet_load(opt->dir, fleet, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return false;
    }
    if (fleet->count == 0) {
        fprintf(stderr, "vouch-sim: %s holds no devices (run vouch-sim enroll first)\n", opt->dir);
        sim_store_fleet_free(fleet);
        return false;
    }
    if (opt->devices_set && opt->devices > fleet->count) {
        fprintf(stderr, "vouch-sim: %s holds only %zu devices, not %lu\n", opt->dir, fleet->count,
                opt->devices);
        sim_store_fleet_free(fleet);
        return false;
    }
    return true;
}

/* Loads DIR's stand-in Apple hierarchy, creating it (under DIR/.lock) when DIR holds none. */
static struct fake_apple *apple_prepare(const struct sim_options *opt, bool *created)
{
    char err[512];
    struct fake_apple *apple;
    int lock;

    *created = false;
    if (!sim_store_prepare_dir(opt->dir, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return NULL;
    }
    lock = sim_store_lock(opt->dir, err, sizeof(err));
    if (lock < 0) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return NULL;
    }
    apple = fake_apple_open(opt->dir, created, err, sizeof(err));
    sim_store_unlock(lock);
    if (apple == NULL)
        fprintf(stderr, "vouch-sim: stand-in Apple hierarchy in %s: %s\n", opt->dir, err);
    else if (*created && opt->mode != MODE_INIT_CA)
        fprintf(stderr,
                "vouch-sim: created the stand-in Apple attestation hierarchy %s/%s; vouchd's "
                "attestation_roots must name it\n",
                opt->dir, FAKE_APPLE_ROOT_CERT_FILE);
    return apple;
}

/* The attestation behaviour of this run; false (after a message) for a bad --attest-as-device. */
static bool attest_options_for(const struct sim_options *opt, const struct sim_fleet *fleet,
                               struct sim_attest_options *aopt)
{
    memset(aopt, 0, sizeof(*aopt));
    aopt->tamper = opt->attest_tamper;
    aopt->legacy_leaf = opt->attest_legacy_leaf;
    aopt->now = opt->now;
    if (opt->attest_as_device_set) {
        if (opt->attest_as_device >= fleet->count) {
            fprintf(stderr, "vouch-sim: --attest-as-device %lu: %s holds only %zu devices\n",
                    opt->attest_as_device, opt->dir, fleet->count);
            return false;
        }
        aopt->as_device = &fleet->devices[opt->attest_as_device];
    }
    return true;
}

/* ---- subcommands ---------------------------------------------------------------------------- */

static int cmd_init_ca(const struct sim_options *opt)
{
    char err[512];
    char path[4096];
    bool created = false;
    bool apple_created = false;
    struct fake_apple *apple;
    int lock;
    bool ok;

    if (!sim_store_prepare_dir(opt->dir, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return SIM_EXIT_FAIL;
    }
    lock = sim_store_lock(opt->dir, err, sizeof(err));
    if (lock < 0) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return SIM_EXIT_FAIL;
    }
    ok = sim_store_ca_init(opt->dir, opt->key_type_set ? opt->key_type : SIM_KEY_EC, &created, err,
                           sizeof(err));
    sim_store_unlock(lock);
    if (!ok) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return SIM_EXIT_FAIL;
    }
    apple = apple_prepare(opt, &apple_created);
    if (apple == NULL)
        return SIM_EXIT_FAIL;
    fake_apple_free(apple);
    printf("{\"mode\":\"init-ca\",\"ca\":");
    snprintf(path, sizeof(path), "%s/ca.pem", opt->dir);
    json_string(stdout, path);
    printf(",\"created\":%s,\"attestation_roots\":", created ? "true" : "false");
    snprintf(path, sizeof(path), "%s/%s", opt->dir, FAKE_APPLE_ROOT_CERT_FILE);
    json_string(stdout, path);
    printf(",\"attestation_roots_created\":%s}\n", apple_created ? "true" : "false");
    return SIM_EXIT_OK;
}

static int cmd_list(const struct sim_options *opt)
{
    struct sim_fleet fleet;
    size_t n;

    if (!fleet_open(opt, &fleet))
        return SIM_EXIT_FAIL;
    n = opt->devices_set ? opt->devices : fleet.count;
    for (size_t i = 0; i < n; i++) {
        const struct sim_device *d = &fleet.devices[i];
        printf("%lu\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d->index, d->udid, d->serial,
               d->product_name, d->model, d->model_name, d->os_version, d->build_version,
               d->imei[0] != '\0' ? d->imei : "-", d->device_name,
               sim_device_supports_attestation(d) ? "attest" : "no-attest");
    }
    sim_store_fleet_free(&fleet);
    return fflush(stdout) == 0 ? SIM_EXIT_OK : SIM_EXIT_FAIL;
}

/* Session modes: the attestation options of the run, DIR's stand-in Apple hierarchy and, for
 * --attest-tamper other-root, a second one. False after a message. */
static bool sessions_prepare(const struct sim_options *opt, const struct sim_fleet *fleet,
                             struct sim_run *run, struct fake_apple **apple,
                             struct fake_apple **apple_other)
{
    char err[512];
    bool created = false;

    if (!attest_options_for(opt, fleet, &run->attest))
        return false;
    *apple = apple_prepare(opt, &created);
    if (*apple == NULL)
        return false;
    if (opt->attest_tamper == SIM_TAMPER_OTHER_ROOT) {
        *apple_other = fake_apple_new(err, sizeof(err));
        if (*apple_other == NULL) {
            fprintf(stderr, "vouch-sim: the second stand-in Apple hierarchy: %s\n", err);
            return false;
        }
    }
    return true;
}

static void workers_free(struct sim_worker *workers, unsigned n)
{
    for (unsigned i = 0; workers != NULL && i < n; i++) {
        sim_http_free(workers[i].http);
        sim_pki_loader_free(workers[i].loader);
        fake_apple_free(workers[i].apple);
        fake_apple_free(workers[i].apple_other);
    }
    free(workers);
}

/* n workers of run, each with its own HTTP client, key loader and copies of the Apple
 * hierarchies (either may be NULL). sim_http_global_init() must have run. NULL after a message. */
static struct sim_worker *workers_new(struct sim_run *run, unsigned n,
                                      const struct fake_apple *apple,
                                      const struct fake_apple *apple_other)
{
    const struct sim_options *opt = run->opt;
    struct sim_http_options http_opt;
    struct sim_worker *workers = calloc(n, sizeof(*workers));
    char err[512];

    if (workers == NULL) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        return NULL;
    }
    memset(&http_opt, 0, sizeof(http_opt));
    http_opt.timeout_seconds = opt->timeout;
    http_opt.cacert = opt->cacert;
    http_opt.insecure = opt->insecure;
    http_opt.version = opt->http_version;
    http_opt.max_body = SIM_MAX_BODY;
    for (unsigned i = 0; i < n; i++) {
        workers[i].run = run;
        workers[i].http = sim_http_new(&http_opt, err, sizeof(err));
        workers[i].loader = workers[i].http != NULL ? sim_pki_loader_new(err, sizeof(err)) : NULL;
        if (workers[i].loader == NULL) {
            fprintf(stderr, "vouch-sim: %s\n", err);
            workers_free(workers, n);
            return NULL;
        }
        /* Each worker its own copies: no OpenSSL object is shared between threads. */
        if ((apple != NULL &&
             (workers[i].apple = fake_apple_dup(apple, err, sizeof(err))) == NULL) ||
            (apple_other != NULL &&
             (workers[i].apple_other = fake_apple_dup(apple_other, err, sizeof(err))) == NULL) ||
            (run->opt->attest_reuse_key && workers[i].apple != NULL &&
             !fake_apple_reuse_leaf_key(workers[i].apple, err, sizeof(err)))) {
            fprintf(stderr, "vouch-sim: %s\n", err);
            workers_free(workers, n);
            return NULL;
        }
    }
    return workers;
}

/* Records in DIR/tokens.tsv the tokens that devices[0..n) had accepted (under DIR/.lock). */
static bool tokens_save(const struct sim_options *opt, const struct sim_fleet *fleet,
                        const struct sim_push_token *tokens, size_t n)
{
    char err[512];
    size_t count = 0;
    int lock;
    bool ok;

    for (size_t i = 0; i < n; i++)
        count += tokens[i].present;
    if (count == 0)
        return true;
    lock = sim_store_lock(opt->dir, err, sizeof(err));
    if (lock < 0) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return false;
    }
    ok = sim_store_tokens_update(opt->dir, fleet, tokens, n, err, sizeof(err));
    sim_store_unlock(lock);
    if (!ok)
        fprintf(stderr, "vouch-sim: saving the push tokens: %s\n", err);
    else if (!opt->quiet)
        fprintf(stderr, "vouch-sim: saved %zu push tokens in %s/%s\n", count, opt->dir,
                SIM_STORE_TOKENS_FILE);
    return ok;
}

static int cmd_network(const struct sim_options *opt)
{
    struct sim_fleet fleet;
    struct sim_run run;
    struct sim_worker *workers = NULL;
    struct sim_stats total;
    enum sim_phase phases[2];
    size_t nphases = 0;
    unsigned nworkers = 0;
    unsigned long created = 0;
    double t0 = now_seconds();
    double t_ready = t0;
    char err[512];
    int rc = SIM_EXIT_FAIL;
    bool http_ready = false;
    struct fake_apple *apple = NULL;
    struct fake_apple *apple_other = NULL;
    bool tokens_failed = false;

    memset(&run, 0, sizeof(run));
    memset(&total, 0, sizeof(total));
    if (opt->mode == MODE_ENROLL || opt->mode == MODE_RUN) {
        if (!fleet_prepare(opt, &fleet, &created))
            return SIM_EXIT_FAIL;
    } else if (!fleet_open(opt, &fleet)) {
        return SIM_EXIT_FAIL;
    }
    run.opt = opt;
    run.fleet = &fleet;
    if ((MODES_REPORT & MODE_BIT(opt->mode)) &&
        !sessions_prepare(opt, &fleet, &run, &apple, &apple_other))
        goto out;
    run.ndevices = opt->devices_set ? opt->devices : fleet.count;
    if (opt->swap_identities && run.ndevices < 2) {
        fprintf(stderr, "vouch-sim: --swap-identities needs at least 2 devices\n");
        goto out;
    }
    run.state = calloc(run.ndevices, 1);
    if (MODES_CREATE & MODE_BIT(opt->mode))
        run.tokens = calloc(run.ndevices, sizeof(*run.tokens));
    if (run.state == NULL || ((MODES_CREATE & MODE_BIT(opt->mode)) && run.tokens == NULL)) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        goto out;
    }
    if (!sim_http_global_init(err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        goto out;
    }
    http_ready = true;
    nworkers = opt->concurrency < run.ndevices ? opt->concurrency : (unsigned)run.ndevices;
    workers = workers_new(&run, nworkers, apple, apple_other);
    if (workers == NULL)
        goto out;

    switch (opt->mode) {
    case MODE_ENROLL:
        phases[nphases++] = PHASE_ENROLL;
        break;
    case MODE_CONNECT:
        phases[nphases++] = PHASE_CONNECT;
        break;
    case MODE_RUN:
        phases[nphases++] = PHASE_ENROLL;
        phases[nphases++] = PHASE_CONNECT;
        break;
    case MODE_CHECKOUT:
        phases[nphases++] = PHASE_CHECKOUT;
        break;
    default:
        goto out;
    }
    t_ready = now_seconds();
    for (size_t p = 0; p < nphases; p++) {
        run.phase = phases[p];
        run.last_phase = p + 1 == nphases;
        if (!run_phase(&run, workers, nworkers))
            goto out;
        /* Saved before connect: a concurrent serve may already be waiting for them. */
        if (run.phase == PHASE_ENROLL && !tokens_save(opt, &fleet, run.tokens, run.ndevices))
            tokens_failed = true;
    }
    for (unsigned i = 0; i < nworkers; i++)
        stats_merge(&total, &workers[i].stats);
    if (tokens_failed)
        total.local_errors++;
    print_summary(opt, run.ndevices, created, &total, NULL, t_ready - t0, now_seconds() - t0);
    rc = total.failed_devices == 0 && !tokens_failed ? SIM_EXIT_OK : SIM_EXIT_FAIL;
out:
    workers_free(workers, nworkers);
    fake_apple_free(apple);
    fake_apple_free(apple_other);
    free(run.state);
    free(run.tokens);
    if (http_ready)
        sim_http_global_cleanup();
    sim_store_fleet_free(&fleet);
    return rc;
}

/* ---- tokens and serve ----------------------------------------------------------------------- */

/* Loads the push tokens of DIR's first n devices into a new array; NULL after a message. */
static struct sim_push_token *tokens_load(const struct sim_options *opt,
                                          const struct sim_fleet *fleet, size_t n,
                                          struct sim_store_stamp *stamp)
{
    struct sim_push_token *tokens = calloc(n > 0 ? n : 1, sizeof(*tokens));
    size_t skipped = 0;
    char err[512];

    if (tokens == NULL) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        return NULL;
    }
    if (!sim_store_tokens_load(opt->dir, fleet, tokens, n, &skipped, stamp, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        free(tokens);
        return NULL;
    }
    if (skipped > 0)
        fprintf(stderr, "vouch-sim: %s/%s: %zu records name no device of %s/devices.pem\n",
                opt->dir, SIM_STORE_TOKENS_FILE, skipped, opt->dir);
    return tokens;
}

static int cmd_tokens(const struct sim_options *opt)
{
    struct sim_fleet fleet;
    struct sim_push_token *tokens;
    char hex[2 * SIM_TOKEN_LEN + 1];
    size_t n;
    size_t missing = 0;

    if (!fleet_open(opt, &fleet))
        return SIM_EXIT_FAIL;
    n = opt->devices_set ? opt->devices : fleet.count;
    tokens = tokens_load(opt, &fleet, n, NULL);
    if (tokens == NULL) {
        sim_store_fleet_free(&fleet);
        return SIM_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!tokens[i].present) {
            missing++;
            continue;
        }
        sim_store_token_hex(tokens[i].token, hex);
        printf("%s\t%s\t%s\n", fleet.devices[i].udid, hex, tokens[i].push_magic);
    }
    if (missing > 0)
        fprintf(stderr, "vouch-sim: %zu of %zu devices have no push token (not enrolled yet)\n",
                missing, n);
    free(tokens);
    sim_store_fleet_free(&fleet);
    return fflush(stdout) == 0 ? SIM_EXIT_OK : SIM_EXIT_FAIL;
}

/* A device's place in serve's pool; only read or written under the pool's lock. */
enum serve_dev_state {
    SERVE_IDLE,
    SERVE_QUEUED,       /* waiting for a worker */
    SERVE_RUNNING,      /* in a session */
    SERVE_RUNNING_AGAIN /* in a session, and pushed since it began: one more after it */
};

struct serve_pool {
    struct sim_run *run;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    size_t *queue; /* a ring of run->ndevices: a device is queued at most once */
    size_t head;
    size_t queued;
    unsigned running;
    bool stopping;
    unsigned char *dstate; /* enum serve_dev_state, by device index */
    unsigned long dropped;
};

/* Caller holds the lock. */
static void serve_enqueue(struct serve_pool *pool, size_t i)
{
    size_t n = pool->run->ndevices;

    pool->queue[(pool->head + pool->queued) % n] = i;
    pool->queued++;
    pool->dstate[i] = SERVE_QUEUED;
    pthread_cond_signal(&pool->wake);
}

static void *serve_worker_main(void *arg)
{
    struct sim_worker *w = arg;
    struct serve_pool *pool = w->pool;
    struct sim_run *run = w->run;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        size_t i;

        while (pool->queued == 0 && !pool->stopping)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->queued == 0)
            break;
        i = pool->queue[pool->head];
        pool->head = (pool->head + 1) % run->ndevices;
        pool->queued--;
        pool->dstate[i] = SERVE_RUNNING;
        pool->running++;
        pthread_mutex_unlock(&pool->lock);

        worker_device(w, i);
        atomic_fetch_add(&run->done, 1);

        pthread_mutex_lock(&pool->lock);
        pool->running--;
        if (pool->dstate[i] == SERVE_RUNNING_AGAIN && !pool->stopping) {
            serve_enqueue(pool, i); /* at the tail: the other pushed devices go first */
        } else {
            if (pool->dstate[i] == SERVE_RUNNING_AGAIN)
                pool->dropped++;
            pool->dstate[i] = SERVE_IDLE;
        }
    }
    pthread_mutex_unlock(&pool->lock);
    atomic_fetch_sub(&run->workers_left, 1);
    return NULL;
}

/* Token -> device index, open addressing over a power-of-two table. */
struct token_index {
    size_t *slots; /* device index + 1; 0: empty */
    size_t mask;
};

static size_t token_hash(const unsigned char token[SIM_TOKEN_LEN])
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: test tokens need not be random */

    for (size_t i = 0; i < SIM_TOKEN_LEN; i++) {
        h ^= token[i];
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

/* Rebuilds idx over tokens[0..n); returns the number of devices with a token, or (size_t)-1
 * when memory runs out. */
static size_t token_index_build(struct token_index *idx, const struct sim_push_token *tokens,
                                size_t n)
{
    size_t cap = 16;
    size_t count = 0;

    while (cap < 2 * n)
        cap *= 2;
    free(idx->slots);
    idx->slots = calloc(cap, sizeof(*idx->slots));
    idx->mask = cap - 1;
    if (idx->slots == NULL)
        return (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t h;

        if (!tokens[i].present)
            continue;
        count++;
        for (h = token_hash(tokens[i].token) & idx->mask; idx->slots[h] != 0;
             h = (h + 1) & idx->mask) {
            if (memcmp(tokens[idx->slots[h] - 1].token, tokens[i].token, SIM_TOKEN_LEN) == 0)
                break; /* two devices with one token: the first keeps it */
        }
        if (idx->slots[h] == 0)
            idx->slots[h] = i + 1;
    }
    return count;
}

/* The device holding token, or (size_t)-1. */
static size_t token_index_find(const struct token_index *idx, const struct sim_push_token *tokens,
                               const unsigned char token[SIM_TOKEN_LEN])
{
    for (size_t h = token_hash(token) & idx->mask; idx->slots[h] != 0; h = (h + 1) & idx->mask) {
        if (memcmp(tokens[idx->slots[h] - 1].token, token, SIM_TOKEN_LEN) == 0)
            return idx->slots[h] - 1;
    }
    return (size_t)-1;
}

/* Follows the push log like tail -f. */
struct push_tail {
    const char *path;
    int fd; /* -1: the file does not exist (yet) */
    dev_t dev;
    ino_t ino;
    off_t offset; /* bytes of the current file read so far */
    char line[SIM_PUSH_LINE_MAX + 1];
    size_t len;
    bool overlong; /* the current line outgrew line[]; it is skipped up to its newline */
    double next_check;
};

/* before(arg) runs once per chunk read, before its lines; line(arg, ...) for each line. */
struct push_tail_handler {
    void (*before)(void *arg);
    void (*line)(void *arg, char *line, size_t len, bool overlong);
    void *arg;
};

/* Opens the log if it exists: at its end, or at its start with from_start. */
static bool tail_start(struct push_tail *t, const char *path, bool from_start)
{
    struct stat st;

    memset(t, 0, sizeof(*t));
    t->path = path;
    t->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (t->fd < 0) {
        if (errno == ENOENT)
            return true; /* when it appears, all of it is new */
        fprintf(stderr, "vouch-sim: opening %s: %s\n", path, strerror(errno));
        return false;
    }
    if (fstat(t->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "vouch-sim: %s is not a regular file\n", path);
        close(t->fd);
        t->fd = -1;
        return false;
    }
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    if (!from_start) {
        t->offset = lseek(t->fd, 0, SEEK_END);
        if (t->offset < 0) {
            fprintf(stderr, "vouch-sim: seeking %s: %s\n", path, strerror(errno));
            close(t->fd);
            t->fd = -1;
            return false;
        }
    }
    return true;
}

static void tail_stop(struct push_tail *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

/* (Re)opens the file at path from its start; false when it is not there. */
static bool tail_reopen(struct push_tail *t)
{
    struct stat st;
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return false;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return false;
    }
    tail_stop(t);
    t->fd = fd;
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    t->offset = 0;
    t->len = 0; /* a partial line of the old file never ends */
    t->overlong = false;
    return true;
}

/* Reads what was appended and hands each complete line to fn; looks for a replaced or
 * truncated file now and then. Returns the number of bytes read, -1 on a read error. */
static long tail_poll(struct push_tail *t, const struct push_tail_handler *h)
{
    char buf[65536];
    long total = 0;
    double now = now_seconds();

    if (t->fd < 0) {
        if (now < t->next_check)
            return 0;
        t->next_check = now + SIM_TAIL_CHECK_MS / 1000.0;
        if (!tail_reopen(t))
            return 0;
    }
    while (total < 1024L * 1024L) {
        ssize_t n = read(t->fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "vouch-sim: reading %s: %s\n", t->path, strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        t->offset += n;
        total += n;
        h->before(h->arg);
        for (ssize_t k = 0; k < n; k++) {
            if (buf[k] == '\n') {
                t->line[t->len] = '\0';
                h->line(h->arg, t->line, t->len, t->overlong);
                t->len = 0;
                t->overlong = false;
            } else if (t->len < SIM_PUSH_LINE_MAX) {
                t->line[t->len++] = buf[k];
            } else {
                t->overlong = true;
            }
        }
    }
    if (total == 0 && now >= t->next_check) {
        struct stat st;

        t->next_check = now + SIM_TAIL_CHECK_MS / 1000.0;
        if (stat(t->path, &st) == 0) {
            if (st.st_dev != t->dev || st.st_ino != t->ino) {
                tail_reopen(t); /* replaced (rotated): the old one was read to its end */
            } else if (st.st_size < t->offset) {
                fprintf(stderr, "vouch-sim: %s was truncated; reading it from the start\n",
                        t->path);
                if (lseek(t->fd, 0, SEEK_SET) == 0) {
                    t->offset = 0;
                    t->len = 0;
                    t->overlong = false;
                }
            }
        }
    }
    return total;
}

static volatile sig_atomic_t serve_signal;

static void serve_on_signal(int sig)
{
    serve_signal = sig;
}

/* The main thread's view of a serve run. */
struct serve_ctx {
    const struct sim_options *opt;
    struct sim_run *run;
    struct serve_pool *pool;
    struct sim_push_token *tokens;
    struct sim_store_stamp stamp;
    struct token_index index;
    unsigned char *bad_magic; /* devices pushed with a wrong PushMagic */
    struct serve_counts counts;
    struct sim_stats stats; /* the main thread's own: protocol and local errors */
    double last_push;
    bool failed; /* a local failure that ends the run */
};

static void serve_fail(struct serve_ctx *sc, const struct sim_device *dev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One diagnostic line (counted against SIM_SHOWN_FAILURES like device_fail()). */
static void serve_fail(struct serve_ctx *sc, const struct sim_device *dev, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    unsigned long shown = atomic_fetch_add(&failures_shown, 1);

    atomic_fetch_add(&sc->run->failures, 1);
    if (shown > SIM_SHOWN_FAILURES)
        return;
    if (shown == SIM_SHOWN_FAILURES) {
        fprintf(stderr, "vouch-sim: further failures are counted but not shown\n");
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (dev != NULL)
        fprintf(stderr, "vouch-sim: device %lu %s: push: %s\n", dev->index, dev->udid, msg);
    else
        fprintf(stderr, "vouch-sim: push: %s\n", msg);
}

/* Reloads DIR/tokens.tsv when it changed (a re-enrollment gave devices new tokens). Runs
 * before each chunk of the push log is handled: pushes were appended after it was read, so a
 * token a re-enrollment retired before the push is never taken for its old device. */
static void serve_reload_tokens(void *arg)
{
    struct serve_ctx *sc = arg;
    struct sim_store_stamp stamp;
    size_t skipped = 0;
    size_t count;
    char err[512];

    if (!sim_store_tokens_changed(sc->opt->dir, &sc->stamp))
        return;
    if (!sim_store_tokens_load(sc->opt->dir, sc->run->fleet, sc->tokens, sc->run->ndevices,
                               &skipped, &stamp, err, sizeof(err))) {
        /* A half-written file cannot be seen (writers rename), so this one is broken. */
        fprintf(stderr, "vouch-sim: reloading the push tokens: %s\n", err);
        sc->stats.local_errors++;
        sc->failed = true;
        return;
    }
    sc->stamp = stamp;
    count = token_index_build(&sc->index, sc->tokens, sc->run->ndevices);
    if (count == (size_t)-1) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        sc->stats.local_errors++;
        sc->failed = true;
        return;
    }
    sc->counts.devices_with_tokens = count;
    if (!sc->opt->quiet)
        fprintf(stderr, "vouch-sim: serve: reloaded %s/%s: %zu devices with push tokens\n",
                sc->opt->dir, SIM_STORE_TOKENS_FILE, count);
}

/* One line of the push log: "<token hex> <push magic>". */
static void serve_line(void *arg, char *line, size_t len, bool overlong)
{
    struct serve_ctx *sc = arg;
    const struct sim_options *opt = sc->opt;
    struct serve_pool *pool = sc->pool;
    unsigned char token[SIM_TOKEN_LEN];
    const char *magic;
    char *space;
    size_t i;

    if (sc->failed || (opt->expect_pushes_set && sc->counts.pushes_handled >= opt->expect_pushes))
        return; /* past the point where serve stops */
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    if (len == 0 && !overlong)
        return;
    sc->counts.pushes_seen++;
    sc->last_push = now_seconds();
    space = memchr(line, ' ', len);
    if (overlong || space == NULL || space == line) {
        sc->counts.pushes_malformed++;
        if (sc->counts.pushes_malformed <= 5)
            fprintf(stderr, "vouch-sim: %s: not \"<token> <magic>\": %.80s%s\n", opt->pushes, line,
                    overlong || len > 80 ? "..." : "");
        return;
    }
    *space = '\0';
    magic = space + 1;
    if (!sim_store_token_parse(line, (size_t)(space - line), token)) {
        sc->counts.pushes_unknown++;
        return;
    }
    i = token_index_find(&sc->index, sc->tokens, token);
    if (i == (size_t)-1) {
        sc->counts.pushes_unknown++;
        return;
    }
    sc->counts.pushes_handled++;
    if (strcmp(magic, sc->tokens[i].push_magic) != 0) {
        /* A real device drops it silently; for a test that is a server bug. */
        sc->counts.pushes_bad_magic++;
        sc->stats.protocol_errors++;
        sc->bad_magic[i] = 1;
        serve_fail(sc, &sc->run->fleet->devices[i],
                   "pushed with PushMagic '%.60s', but its TokenUpdate sent '%s'", magic,
                   sc->tokens[i].push_magic);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    switch ((enum serve_dev_state)pool->dstate[i]) {
    case SERVE_IDLE:
        serve_enqueue(pool, i);
        break;
    case SERVE_RUNNING:
        pool->dstate[i] = SERVE_RUNNING_AGAIN;
        break;
    case SERVE_QUEUED:
    case SERVE_RUNNING_AGAIN:
        sc->counts.pushes_coalesced++;
        break;
    }
    pthread_mutex_unlock(&pool->lock);
}

/* Follows the push log until a stop condition; returns what stopped it. */
static const char *serve_loop(struct serve_ctx *sc, struct push_tail *tail, double t0)
{
    const struct sim_options *opt = sc->opt;
    struct serve_pool *pool = sc->pool;
    double last_progress = t0;
    unsigned long shown_seen = 0;
    unsigned long shown_requests = 0;
    const struct push_tail_handler handler = {serve_reload_tokens, serve_line, sc};

    sc->last_push = t0;
    for (;;) {
        long got;
        bool idle;
        double now;

        if (serve_signal != 0)
            return serve_signal == SIGINT ? "SIGINT" : "SIGTERM";
        got = tail_poll(tail, &handler);
        if (got < 0 || sc->failed) {
            sc->stats.local_errors += got < 0;
            sc->failed = true;
            return "error";
        }
        now = now_seconds();
        pthread_mutex_lock(&pool->lock);
        idle = pool->queued == 0 && pool->running == 0;
        pthread_mutex_unlock(&pool->lock);
        if (opt->expect_pushes_set && sc->counts.pushes_handled >= opt->expect_pushes && idle)
            return "expect-pushes";
        if (opt->max_seconds > 0 && now - t0 >= (double)opt->max_seconds)
            return "max-seconds";
        if (opt->idle_exit > 0 && idle && now - sc->last_push >= (double)opt->idle_exit)
            return "idle-exit";
        if (!opt->quiet && now - last_progress >= SIM_PROGRESS_INTERVAL &&
            (sc->counts.pushes_seen != shown_seen ||
             atomic_load(&sc->run->requests) != shown_requests)) {
            last_progress = now;
            shown_seen = sc->counts.pushes_seen;
            shown_requests = atomic_load(&sc->run->requests);
            fprintf(stderr,
                    "vouch-sim: serve: %lu pushes (%lu ours, %lu unknown), %zu sessions ended, "
                    "%lu requests, %lu failures\n",
                    shown_seen, sc->counts.pushes_handled, sc->counts.pushes_unknown,
                    atomic_load(&sc->run->done), shown_requests, atomic_load(&sc->run->failures));
        }
        if (got == 0)
            sleep_ms(SIM_TAIL_POLL_MS);
    }
}

static int cmd_serve(const struct sim_options *opt)
{
    struct sim_fleet fleet;
    struct sim_run run;
    struct serve_pool pool;
    struct serve_ctx sc;
    struct push_tail tail;
    struct sim_worker *workers = NULL;
    struct sim_stats total;
    struct fake_apple *apple = NULL;
    struct fake_apple *apple_other = NULL;
    struct sigaction sa;
    sigset_t block;
    sigset_t old_mask;
    unsigned nworkers = 0;
    unsigned started = 0;
    double t0 = now_seconds();
    char err[512];
    int rc = SIM_EXIT_FAIL;
    bool http_ready = false;
    bool pool_ready = false;
    bool tail_ready = false;
    size_t count;

    memset(&run, 0, sizeof(run));
    memset(&pool, 0, sizeof(pool));
    memset(&sc, 0, sizeof(sc));
    memset(&total, 0, sizeof(total));
    if (!fleet_open(opt, &fleet))
        return SIM_EXIT_FAIL;
    run.opt = opt;
    run.fleet = &fleet;
    run.phase = PHASE_CONNECT;
    run.last_phase = true;
    run.serving = true;
    if (!sessions_prepare(opt, &fleet, &run, &apple, &apple_other))
        goto out;
    run.ndevices = opt->devices_set ? opt->devices : fleet.count;
    if (opt->swap_identities && run.ndevices < 2) {
        fprintf(stderr, "vouch-sim: --swap-identities needs at least 2 devices\n");
        goto out;
    }
    sc.opt = opt;
    sc.run = &run;
    sc.pool = &pool;
    sc.tokens = tokens_load(opt, &fleet, run.ndevices, &sc.stamp);
    if (sc.tokens == NULL)
        goto out;
    run.state = calloc(run.ndevices, 1);
    sc.bad_magic = calloc(run.ndevices, 1);
    pool.run = &run;
    pool.queue = calloc(run.ndevices, sizeof(*pool.queue));
    pool.dstate = calloc(run.ndevices, 1);
    count = token_index_build(&sc.index, sc.tokens, run.ndevices);
    if (run.state == NULL || sc.bad_magic == NULL || pool.queue == NULL || pool.dstate == NULL ||
        count == (size_t)-1) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        goto out;
    }
    sc.counts.devices_with_tokens = count;
    if (count == 0)
        fprintf(stderr,
                "vouch-sim: no device in %s has a push token yet (vouch-sim enroll sends "
                "them); every push counts as unknown until %s/%s has them\n",
                opt->dir, opt->dir, SIM_STORE_TOKENS_FILE);
    if (pthread_mutex_init(&pool.lock, NULL) != 0 || pthread_cond_init(&pool.wake, NULL) != 0) {
        fprintf(stderr, "vouch-sim: cannot create the pool's lock\n");
        goto out;
    }
    pool_ready = true;
    if (!sim_http_global_init(err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        goto out;
    }
    http_ready = true;
    nworkers = opt->concurrency < run.ndevices ? opt->concurrency : (unsigned)run.ndevices;
    workers = workers_new(&run, nworkers, apple, apple_other);
    if (workers == NULL)
        goto out;
    if (!tail_start(&tail, opt->pushes, opt->from_start))
        goto out;
    tail_ready = true;

    /* SIGINT and SIGTERM stop serve cleanly; only the main thread takes them. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = serve_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);
    atomic_store(&run.workers_left, nworkers);
    for (; started < nworkers; started++) {
        int prc;

        workers[started].pool = &pool;
        prc = pthread_create(&workers[started].thread, NULL, serve_worker_main, &workers[started]);
        if (prc != 0) {
            fprintf(stderr, "vouch-sim: starting worker %u: %s\n", started, strerror(prc));
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (started == 0)
        goto out;

    fprintf(stderr,
            "vouch-sim: serve: ready, following %s from byte %lld%s (%zu devices, %zu with push "
            "tokens, %u workers)\n",
            opt->pushes, (long long)tail.offset, tail.fd < 0 ? " once it exists" : "", run.ndevices,
            count, started);
    double t_ready = now_seconds();
    sc.counts.stopped_by = serve_loop(&sc, &tail, t0);

    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    while (pool.queued > 0) { /* only after max-seconds, a signal or an error */
        pool.dstate[pool.queue[pool.head]] = SERVE_IDLE;
        pool.head = (pool.head + 1) % run.ndevices;
        pool.queued--;
        pool.dropped++;
    }
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    sc.counts.sessions_dropped = pool.dropped;
    if (pool.dropped > 0)
        fprintf(stderr, "vouch-sim: serve: stopped (%s) with %lu pushed sessions not run\n",
                sc.counts.stopped_by, pool.dropped);

    for (unsigned i = 0; i < nworkers; i++)
        stats_merge(&total, &workers[i].stats);
    stats_merge(&total, &sc.stats);
    total.failed_devices = 0;
    for (size_t i = 0; i < run.ndevices; i++)
        total.failed_devices += (run.state[i] & DEV_FAILED) != 0 || sc.bad_magic[i] != 0;
    if (opt->expect_pushes_set && sc.counts.pushes_handled < opt->expect_pushes)
        fprintf(stderr, "vouch-sim: serve: expected %lu pushes to %s's devices, got %lu (%s)\n",
                opt->expect_pushes, opt->dir, sc.counts.pushes_handled, sc.counts.stopped_by);
    print_summary(opt, run.ndevices, 0, &total, &sc.counts, t_ready - t0, now_seconds() - t0);
    rc = total.failed_devices == 0 && total.local_errors == 0 && !sc.failed &&
                 (!opt->expect_pushes_set || sc.counts.pushes_handled >= opt->expect_pushes)
             ? SIM_EXIT_OK
             : SIM_EXIT_FAIL;
out:
    if (tail_ready)
        tail_stop(&tail);
    workers_free(workers, nworkers);
    if (pool_ready) {
        pthread_mutex_destroy(&pool.lock);
        pthread_cond_destroy(&pool.wake);
    }
    fake_apple_free(apple);
    fake_apple_free(apple_other);
    free(pool.queue);
    free(pool.dstate);
    free(sc.index.slots);
    free(sc.bad_magic);
    free(sc.tokens);
    free(run.state);
    if (http_ready)
        sim_http_global_cleanup();
    sim_store_fleet_free(&fleet);
    return rc;
}

/* Reads the whole command file (or stdin for "-") into a malloc()ed buffer of at most max bytes. */
static char *read_command(const char *name, size_t max, size_t *len)
{
    bool is_stdin = strcmp(name, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(name, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    char err[512];

    if (fd < 0) {
        fprintf(stderr, "vouch-sim: opening %s: %s\n", name, strerror(errno));
        return NULL;
    }
    if (!tu_file_read_fd(fd, is_stdin ? "stdin" : name, max, &buf, len, err, sizeof(err)))
        fprintf(stderr, "vouch-sim: %s\n", err);
    if (!is_stdin)
        close(fd);
    return buf;
}

static int cmd_answer(const struct sim_options *opt)
{
    struct sim_fleet fleet;
    struct sim_attest_options aopt;
    struct sim_command cmd;
    struct fake_chain chain = {0, {NULL}, {0}};
    struct sim_attest_items items;
    struct fake_apple *apple = NULL;
    struct fake_apple *apple_other = NULL;
    unsigned long counts[ATTEST_COUNT_N] = {0};
    const struct sim_device *dev;
    enum sim_answer answer = opt->answer;
    bool attached = false;
    bool created = false;
    bool have_cmd = false;
    char err[512];
    char *input = NULL;
    char *report = NULL;
    size_t input_len = 0;
    size_t report_len = 0;
    const char *what = "not asked";
    int rc = SIM_EXIT_FAIL;

    if (!fleet_open(opt, &fleet))
        return SIM_EXIT_FAIL;
    if (opt->device >= fleet.count) {
        fprintf(stderr, "vouch-sim: --device %lu: %s holds only %zu devices\n", opt->device,
                opt->dir, fleet.count);
        goto out;
    }
    dev = &fleet.devices[opt->device];
    if (!attest_options_for(opt, &fleet, &aopt))
        goto out;
    input =
        read_command(opt->command_file != NULL ? opt->command_file : "-", SIM_MAX_BODY, &input_len);
    if (input == NULL)
        goto out;
    if (!sim_device_parse_command(input, input_len, &cmd, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        goto out;
    }
    have_cmd = true;
    apple = apple_prepare(opt, &created);
    if (apple == NULL)
        goto out;
    if (opt->attest_tamper == SIM_TAMPER_OTHER_ROOT) {
        apple_other = fake_apple_new(err, sizeof(err));
        if (apple_other == NULL) {
            fprintf(stderr, "vouch-sim: the second stand-in Apple hierarchy: %s\n", err);
            goto out;
        }
    }
    if (!device_attestation(opt->dir, &aopt, apple, apple_other, dev, &cmd, &answer, &chain,
                            &attached, counts, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: device %lu %s: attestation: %s\n", dev->index, dev->udid, err);
        goto out;
    }
    attest_items(&items, &chain);
    report = sim_device_report(dev, &cmd, answer, attached ? &items : NULL, &report_len);
    if (report == NULL) {
        fprintf(stderr, "vouch-sim: cannot build the report\n");
        goto out;
    }
    for (int i = 0; i < ATTEST_COUNT_N; i++) {
        if (counts[i] > 0)
            what = attest_count_names[i];
    }
    fprintf(stderr, "vouch-sim: device %lu %s (%s) answers %s %s %s; attestation: %s\n", dev->index,
            dev->udid, dev->product_name, sim_device_answer_status(answer), cmd.request_type,
            cmd.uuid, what);
    if (fwrite(report, 1, report_len, stdout) != report_len || fflush(stdout) != 0)
        goto out;
    rc = SIM_EXIT_OK;
out:
    free(report);
    fake_chain_free(&chain);
    if (have_cmd)
        sim_device_command_free(&cmd);
    free(input);
    fake_apple_free(apple);
    fake_apple_free(apple_other);
    sim_store_fleet_free(&fleet);
    return rc;
}

int main(int argc, char **argv)
{
    struct sim_options opt;
    int mode = -1;
    int rc;

    if (argc < 2) {
        print_general_usage(stderr);
        return SIM_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_general_usage(stdout);
        return SIM_EXIT_OK;
    }
    for (int m = 0; m < MODE_COUNT; m++) {
        if (strcmp(argv[1], mode_names[m]) == 0)
            mode = m;
    }
    if (mode < 0) {
        fprintf(stderr, "vouch-sim: unknown subcommand '%s'\n\n", argv[1]);
        print_general_usage(stderr);
        return SIM_EXIT_USAGE;
    }

    memset(&opt, 0, sizeof(opt));
    opt.mode = (enum sim_mode)mode;
    opt.concurrency = SIM_DEFAULT_CONCURRENCY;
    opt.prefix = SIM_DEFAULT_PREFIX;
    opt.key_type = SIM_KEY_RSA;
    opt.topic = SIM_DEFAULT_TOPIC;
    opt.answer = SIM_ANSWER_ACK;
    opt.rounds = 1;
    opt.max_commands = SIM_DEFAULT_MAX_COMMANDS;
    opt.timeout = SIM_DEFAULT_TIMEOUT;
    opt.idle_exit = SIM_DEFAULT_IDLE_EXIT;
    rc = parse_options(&opt, argc - 1, argv + 1);
    if (rc < 0)
        return SIM_EXIT_OK;
    if (rc != SIM_EXIT_OK)
        return rc;

    /* A server closing a TLS connection under a write must not kill the simulator. */
    signal(SIGPIPE, SIG_IGN);
    switch (opt.mode) {
    case MODE_INIT_CA:
        return cmd_init_ca(&opt);
    case MODE_LIST:
        return cmd_list(&opt);
    case MODE_ANSWER:
        return cmd_answer(&opt);
    case MODE_TOKENS:
        return cmd_tokens(&opt);
    case MODE_SERVE:
        return cmd_serve(&opt);
    default:
        return cmd_network(&opt);
    }
}
