/*
 * sim_options: vouch-sim's command line. The subcommands (modes), the options each one takes
 * with their help text, the defaults, and the checks of a combination of options (required
 * options, URLs built from --url, $VOUCH_SIM_NOW).
 *
 * Usage errors go to stderr as "vouch-sim MODE: what\n(see vouch-sim MODE --help)" and make
 * exit status SIM_EXIT_USAGE. A struct sim_options borrows its strings from argv.
 */
#ifndef VOUCH_SIM_OPTIONS_H
#define VOUCH_SIM_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "sim_attest.h"
#include "sim_device.h"
#include "sim_http.h"
#include "sim_pki.h"

#define SIM_EXIT_OK 0
#define SIM_EXIT_FAIL 1
#define SIM_EXIT_USAGE 2

#define SIM_URL_MAX 2048

enum sim_mode {
    SIM_MODE_INIT_CA,
    SIM_MODE_ENROLL,
    SIM_MODE_CONNECT,
    SIM_MODE_RUN,
    SIM_MODE_CHECKOUT,
    SIM_MODE_LIST,
    SIM_MODE_ANSWER,
    SIM_MODE_SERVE,
    SIM_MODE_TOKENS,
    SIM_MODE_COUNT
};

/* Sets of modes, for "does this apply to mode m": SIM_MODE_BIT(m) & set. */
#define SIM_MODE_BIT(m) (1u << (m))
/* The modes whose devices hold Idle sessions (and answer commands). */
#define SIM_MODES_REPORT                                                                           \
    (SIM_MODE_BIT(SIM_MODE_CONNECT) | SIM_MODE_BIT(SIM_MODE_RUN) | SIM_MODE_BIT(SIM_MODE_SERVE))
/* The modes that create the devices they lack (and enroll them). */
#define SIM_MODES_CREATE (SIM_MODE_BIT(SIM_MODE_ENROLL) | SIM_MODE_BIT(SIM_MODE_RUN))

/* How an enrolling device gets its identity certificate. */
enum sim_identity_source {
    SIM_IDENTITY_LOCAL, /* DIR's CA issued it when the device was made, as a SCEP server would */
    SIM_IDENTITY_ACME   /* vouchd's ACME server, for a P-384 key Apple (the stand-in) attests */
};

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
    enum sim_identity_source identity;
    const char *enroll_token;           /* ?token= of GET /mdm/enroll (acme) */
    unsigned long acme_reuse_client_id; /* the last N devices order with a used identifier */
    unsigned long acme_wrong_csr_key;   /* the N before them finalize with another key */
    /* --migrate KEY (enroll, run): Authenticate and TokenUpdate go to migrate_url, unsigned,
     * with the header line migrate_auth ("Authorization: Basic base64(nanomdm:KEY)"), as
     * NanoMDM's nano2nano sends them; NULL otherwise. */
    const char *migrate_key;
    char migrate_url[SIM_URL_MAX];
    char migrate_auth[SIM_URL_MAX];
};

/* The subcommand's name ("init-ca", "enroll", ...). */
const char *sim_mode_name(enum sim_mode mode);

/* The mode named name; false for an unknown subcommand. */
bool sim_mode_lookup(const char *name, enum sim_mode *mode) __attribute__((warn_unused_result));

/* The list of subcommands, for `vouch-sim --help` (stdout) and usage errors (stderr). */
void sim_options_general_usage(FILE *f);

/* Fills opt with mode's defaults, then parses argv (argv[0] is the subcommand) and checks the
 * result. Returns SIM_EXIT_OK, SIM_EXIT_USAGE (after a message), or -1 when --help was printed
 * on stdout. */
int sim_options_parse(struct sim_options *opt, enum sim_mode mode, int argc, char **argv)
    __attribute__((warn_unused_result));

#endif
