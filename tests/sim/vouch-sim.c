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
 * This file owns main(): the subcommand dispatch, and the subcommands that play no device over
 * the network (init-ca, list, tokens, answer). The others live in their modules: the command
 * line in sim_options.c, enroll/connect/run/checkout in sim_workers.c (threads, phases), one
 * device's requests in sim_session.c (its ACME enrollment in sim_acme.c), serve in
 * sim_serve.c (with the log follower sim_tail.c), the state a subcommand opens in sim_fleet.c,
 * the counters and JSON summary in sim_stats.c.
 *
 * Output: progress and one line per failure on stderr; exactly one JSON summary line on stdout
 * (answer: the report plist instead; list and tokens: their lines).
 * Exit status: 0 success, 1 any failure, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_apple.h"
#include "sim_attest.h"
#include "sim_device.h"
#include "sim_fleet.h"
#include "sim_options.h"
#include "sim_serve.h"
#include "sim_session.h"
#include "sim_stats.h"
#include "sim_store.h"
#include "sim_workers.h"
#include "tu_file.h"

static int cmd_init_ca(const struct sim_options *opt)
{
    char err[512];
    char path[4096];
    bool created = false;
    bool apple_created = false;
    struct fake_apple *apple;
    int lock;
    bool ok;

    lock = sim_fleet_lock(opt);
    if (lock < 0)
        return SIM_EXIT_FAIL;
    ok = sim_store_ca_init(opt->dir, opt->key_type_set ? opt->key_type : SIM_KEY_EC, &created, err,
                           sizeof(err));
    sim_store_unlock(lock);
    if (!ok) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return SIM_EXIT_FAIL;
    }
    apple = sim_fleet_apple(opt, &apple_created);
    if (apple == NULL)
        return SIM_EXIT_FAIL;
    fake_apple_free(apple);
    printf("{\"mode\":\"init-ca\",\"ca\":");
    snprintf(path, sizeof(path), "%s/ca.pem", opt->dir);
    sim_stats_json_string(stdout, path);
    printf(",\"created\":%s,\"attestation_roots\":", created ? "true" : "false");
    snprintf(path, sizeof(path), "%s/%s", opt->dir, FAKE_APPLE_ROOT_CERT_FILE);
    sim_stats_json_string(stdout, path);
    printf(",\"attestation_roots_created\":%s}\n", apple_created ? "true" : "false");
    return SIM_EXIT_OK;
}

static int cmd_list(const struct sim_options *opt)
{
    struct sim_fleet fleet;
    size_t n;

    if (!sim_fleet_open(opt, &fleet))
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

static int cmd_tokens(const struct sim_options *opt)
{
    struct sim_fleet fleet;
    struct sim_push_token *tokens;
    char hex[2 * SIM_TOKEN_LEN + 1];
    size_t n;
    size_t missing = 0;

    if (!sim_fleet_open(opt, &fleet))
        return SIM_EXIT_FAIL;
    n = opt->devices_set ? opt->devices : fleet.count;
    tokens = sim_fleet_tokens_load(opt, &fleet, n, NULL);
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

/* Reads the whole command file (or stdin for "-") into a malloc()ed buffer of at most max
 * bytes. */
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
    unsigned long counts[SIM_STATS_ATTEST_N] = {0};
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

    if (!sim_fleet_open(opt, &fleet))
        return SIM_EXIT_FAIL;
    if (opt->device >= fleet.count) {
        fprintf(stderr, "vouch-sim: --device %lu: %s holds only %zu devices\n", opt->device,
                opt->dir, fleet.count);
        goto out;
    }
    dev = &fleet.devices[opt->device];
    if (!sim_fleet_attest_options(opt, &fleet, &aopt))
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
    apple = sim_fleet_apple(opt, &created);
    if (apple == NULL)
        goto out;
    if (opt->attest_tamper == SIM_TAMPER_OTHER_ROOT) {
        apple_other = fake_apple_new(err, sizeof(err));
        if (apple_other == NULL) {
            fprintf(stderr, "vouch-sim: the second stand-in Apple hierarchy: %s\n", err);
            goto out;
        }
    }
    if (!sim_session_attestation(opt->dir, &aopt, apple, apple_other, dev, &cmd, &answer, &chain,
                                 &attached, counts, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: device %lu %s: attestation: %s\n", dev->index, dev->udid, err);
        goto out;
    }
    sim_session_attest_items(&items, &chain);
    report = sim_device_report(dev, &cmd, answer, attached ? &items : NULL, &report_len);
    if (report == NULL) {
        fprintf(stderr, "vouch-sim: cannot build the report\n");
        goto out;
    }
    for (int i = 0; i < SIM_STATS_ATTEST_N; i++) {
        if (counts[i] > 0)
            what = sim_stats_attest_name((enum sim_stats_attest)i);
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
    enum sim_mode mode;
    int rc;

    if (argc < 2) {
        sim_options_general_usage(stderr);
        return SIM_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        sim_options_general_usage(stdout);
        return SIM_EXIT_OK;
    }
    if (!sim_mode_lookup(argv[1], &mode)) {
        fprintf(stderr, "vouch-sim: unknown subcommand '%s'\n\n", argv[1]);
        sim_options_general_usage(stderr);
        return SIM_EXIT_USAGE;
    }
    rc = sim_options_parse(&opt, mode, argc - 1, argv + 1);
    if (rc < 0)
        return SIM_EXIT_OK;
    if (rc != SIM_EXIT_OK)
        return rc;

    /* A server closing a TLS connection under a write must not kill the simulator. */
    signal(SIGPIPE, SIG_IGN);
    switch (opt.mode) {
    case SIM_MODE_INIT_CA:
        return cmd_init_ca(&opt);
    case SIM_MODE_LIST:
        return cmd_list(&opt);
    case SIM_MODE_ANSWER:
        return cmd_answer(&opt);
    case SIM_MODE_TOKENS:
        return cmd_tokens(&opt);
    case SIM_MODE_SERVE:
        return sim_serve_command(&opt);
    default:
        return sim_workers_command(&opt);
    }
}
