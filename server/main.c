/*
 * vouchd: the Vouch MDM server. Parses the command line and configuration, brings the schema up
 * to date, then serves HTTP on one libevent loop until SIGTERM or SIGINT.
 */
#include <event2/event.h>
#include <event2/http.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme.h"
#include "admin.h"
#include "answer_batch.h"
#include "dashboard.h"
#include "health.h"
#include "fleet_metrics.h"
#include "apns.h"
#include "apns_cert.h"
#include "push.h"
#include "scheduler.h"
#include "tokens.h"
#include "trust.h"
#include "webhook.h"
#include "enroll.h"
#include "attest.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "identity.h"
#include "log.h"
#include "mdm.h"
#include "migrate.h"
#include "migration.h"
#include "queries.h"
#include "vouch_version.h"
#include "vouchd.h"

#define DB_MAX_WAITING 4096
#define STATS_INTERVAL_S 15
#define PRUNE_INTERVAL_S 600
#define PRUNE_BATCH 10000
#define SHUTDOWN_GRACE_S 10
#define APNS_MAX_IN_FLIGHT 1000
#define APNS_MAX_ATTEMPTS 5
#define APNS_TIMEOUT_MS 30000
#define CERT_CHECK_INTERVAL_S 86400
#define CERT_WARN_DAYS 30

static const char usage[] =
    "Usage: vouchd --config FILE          run the server\n"
    "       vouchd migrate --config FILE  apply database migrations and exit\n"
    "       vouchd --help | --version\n"
    "\n"
    "Vouch is an MDM server that makes Apple devices prove who they are.\n"
    "\n"
    "The configuration file holds `key = value` lines and comment lines starting with #\n"
    "(a value runs to the end of its line, # included); every key can also be set as\n"
    "VOUCH_<KEY> in the environment, which wins over the file. Keys:\n"
    "  listen            address:port of the HTTP listener (default 127.0.0.1:8080)\n"
    "  database_url      libpq connection string or URI (required)\n"
    "  identity_ca       PEM file of the CAs that issue device identity certificates\n"
    "                    (required unless acme_ca_cert is set; that CA is trusted as well)\n"
    "  cert_header       header in which a TLS-terminating proxy passes the client certificate\n"
    "                    (needs trusted_proxies)\n"
    "  trusted_proxies   addresses and networks (IPv4, IPv6, CIDR; commas or blanks) of the\n"
    "                    proxies whose cert_header and X-Forwarded-For are believed (default\n"
    "                    empty; a request carrying either from any other peer gets 403)\n"
    "  reenroll          allow or refuse a new identity certificate for an enrolled device\n"
    "                    that has not checked out (default allow; it starts a new enrollment\n"
    "                    generation: no verdict until it attests; refuse: 403 until an\n"
    "                    operator allows it with vouchctl device UDID allow-reenroll)\n"
    "  migration         on or off (default off): PUT /migration takes NanoMDM's migrated\n"
    "                    Authenticate and TokenUpdate plists (nano2nano, llorne), with an\n"
    "                    admin-scoped token; off: /migration is 404\n"
    "  admin_token       bearer token of the admin API, at least 32 characters (unset: no\n"
    "                    admin API); make one with: openssl rand -hex 32\n"
    "  admin_login_limit failed admin logins per client address and minute before it gets\n"
    "                    429 for the rest of the minute (default 10; 0: no limit)\n"
    "  public_url        the https base URL devices use\n"
    "  max_body_bytes    largest request body accepted (default 1048576)\n"
    "  db_pool_size      PostgreSQL connections (default 4)\n"
    "  identity_cache_size\n"
    "                    verified device certificates kept (default 4096, about 4.6 KiB\n"
    "                    each): size it to the fleet when memory allows\n"
    "  http_timeout      seconds a connection may stay silent (default 30)\n"
    "  request_timeout   seconds a client has to send a whole request once it began\n"
    "                    (head and body; default 30): a slow sender is disconnected\n"
    "  max_connections   connections at once (default 10000); beyond, vouchd stops\n"
    "                    accepting until one closes\n"
    "  result_retention  how long finished command results are kept (default 30d)\n"
    "  attestation_retention\n"
    "                    how long attestation history is kept (default 365d, at least 30d);\n"
    "                    each device's current and newest verified attestation stay\n"
    "  log_level         debug, info, warn or error (default info)\n"
    "  log_format        text or json: one JSON object per line (default text)\n"
    "  test_clock        true or false: take verdicts at the database's test clock\n"
    "                    (vouch_clock), for test suites only; refused unless the database's\n"
    "                    owner set vouch.test_clock = on for it (default false: real time)\n"
    "  attestation_roots PEM file of trusted attestation roots (default: the Apple Enterprise\n"
    "                    Attestation Root CA, built in)\n"
    "  apns_cert         the MDM push certificate: PEM (with apns_key, or holding the key)\n"
    "                    or PKCS#12 (with apns_cert_password); unset: no pushes\n"
    "  apns_key          PEM file of the push certificate's private key\n"
    "  apns_cert_password password of a PKCS#12 apns_cert\n"
    "  apns_url          APNs base URL (default https://api.push.apple.com; sandbox:\n"
    "                    https://api.sandbox.push.apple.com)\n"
    "  apns_ca           PEM file of CAs that verify the APNs server (default: system store)\n";

/* The rest of the keys (C99 guarantees string literals of 4095 bytes only). */
static const char usage_more[] =
    "  apns_expiration   how long APNs keeps a push for an offline device (default 7d)\n"
    "  apns_connections  HTTP/2 connections to APNs, pushes spread over them (default 2)\n"
    "  attestation_max_age        renew a verified attestation older than this (default 30d)\n"
    "  attestation_min_interval   Apple's limit: no new attestation sooner after the last one\n"
    "                             was generated (default 7d)\n"
    "  attestation_mean_interval  mean interval of random re-attestation (default 14d)\n"
    "  info_interval              light OS-version query to notice OS changes (default 24h)\n"
    "  attestation_rate_limit     scheduled requests per minute, all instances (default 1000)\n"
    "  attestation_retry_limit    retries after a failed answer (default 3)\n"
    "  attestation_retry_delay    first retry delay, doubling (default 1h)\n"
    "  scheduler_batch            requests per scheduler tick; 0: no scheduler here (default 200)\n"
    "  webhook_url       where events are POSTed: one or more http(s) URLs (commas or blanks);\n"
    "                    URL#TOPIC+TOPIC... takes those topics instead of webhook_topics\n"
    "  webhook_secret    HMAC-SHA256 key of X-Hmac-Signature (required with webhook_url)\n"
    "  webhook_topics    topics sent (default all): mdm.Authenticate, mdm.TokenUpdate,\n"
    "                    mdm.CheckOut, mdm.Connect, mdm.UserAuthenticate, mdm.SetBootstrapToken,\n"
    "                    mdm.GetBootstrapToken, mdm.DeclarativeManagement, mdm.GetToken,\n"
    "                    attestation.verified, attestation.failed, attestation.expired,\n"
    "                    device.os_changed, device.reenrolled, identity.issued,\n"
    "                    identity.refused, identity.revoked, identity.unproven,\n"
    "                    trust.denied, command.canceled;\n"
    "                    the group nanomdm: the nine mdm.* topics (NanoMDM's)\n"
    "  webhook_allow_http true or false: may an http:// receiver take mdm.TokenUpdate, which\n"
    "                    carries the device's UnlockToken? (default false; then such a\n"
    "                    receiver stops vouchd at start)\n"
    "  webhook_timeout   how long a receiver has to answer (default 10s)\n"
    "  webhook_max_age   an event not delivered by then is dead (default 72h)\n"
    "  mdm_path          one more path for check-ins and reports on one URL, as /mdm\n"
    "                    (default /mdm/connect: nothing extra; /mdm and /checkin are always\n"
    "                    served, as NanoMDM has them)\n"
    "  checkin_path      one more path for check-ins, as /mdm/checkin (default /mdm/checkin)\n"
    "  enroll_identity   the profile's device identity: acme (the default with acme_ca_cert)\n"
    "                    or scep (the default without)\n"
    "  scep_url, scep_challenge     the SCEP server devices get their identity from\n"
    "  acme_directory_url           the ACME server (attested, hardware-bound P-384 key;\n"
    "                               default with acme_ca_cert: public_url/acme/directory)\n"
    "  acme_ca_cert, acme_ca_key    PEM: vouchd's own ACME server (device-attest-01) issues\n"
    "                               device identities from this CA (`vouchctl ca init`)\n"
    "  acme_cert_lifetime           validity of an issued identity (default 365d)\n"
    "  acme_identifier_lifetime     how long a profile's ClientIdentifier can be used\n"
    "                               (default 24h)\n"
    "  enroll_token      GET /mdm/enroll?token= must carry it (unset: open)\n"
    "  profile_ca        PEM CA certificate to put in the profile (the server's TLS chain)\n"
    "  profile_signing_cert, profile_signing_key  PEM: sign the profile (CMS)\n"
    "  organization      the profile's PayloadOrganization\n"
    "  ui                on or off: the dashboard, a page at /ui/ that reads the admin API\n"
    "                    with a token the operator pastes (default on)\n"
    "\n"
    "  policy.NAME.KEY   trust policies for /v1/trust/NAME (docs/trust.md): require,\n"
    "                    max_attestation_age, min_os_version.ios|ipados|tvos,\n"
    "                    require_hardware_bound_identity, allow_unsupported, deny_serials,\n"
    "                    allow_serials; a policy named default always exists\n"
    "\n"
    "Signals: SIGTERM/SIGINT stop after the requests in flight; SIGHUP reloads the push\n"
    "certificate and the trust policies.\n";

struct timers {
    struct event *stats, *prune, *sigterm, *sigint, *sighup, *shutdown_poll, *cert_check;
};

static struct vouchd *the_server;

static void stats_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct vouchd *srv = arg;
    struct db_stats stats;
    if (outcome == DB_OK && db_decode_stats(res, &stats)) {
        srv->stats = stats;
        srv->stats_known = true;
    }
}

static void stats_tick(evutil_socket_t fd, short what, void *arg)
{
    struct vouchd *srv = arg;
    if (db_pool_is_up(srv->db))
        db_stats(srv->db, stats_done, srv);
}

static void prune_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    int64_t deleted;
    if (outcome == DB_OK && db_decode_count(res, &deleted) && deleted > 0)
        log_info("pruned %lld rows of history (results, commands, events, attestations)",
                 (long long)deleted);
}

static void prune_tick(evutil_socket_t fd, short what, void *arg)
{
    struct vouchd *srv = arg;
    if (!db_pool_is_up(srv->db))
        return;
    db_prune(srv->db, srv->cfg->result_retention, PRUNE_BATCH, srv->cfg->attestation_retention,
             prune_done, srv);
    /* push_topics counts an instance's topic only while it is written again (30 minutes). */
    if (srv->push != NULL)
        migration_note_push_topics(srv,
                                   apns_client_get0_cert(push_service_get0_apns(srv->push))->topic);
}

static void shutdown_poll(evutil_socket_t fd, short what, void *arg)
{
    static unsigned waited_ms;
    struct vouchd *srv = arg;
    waited_ms += 100;
    if (srv->inflight == 0 || waited_ms >= SHUTDOWN_GRACE_S * 1000)
        event_base_loopbreak(srv->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct timers *t = arg;
    struct vouchd *srv = the_server;
    if (srv->stopping) {
        log_warn("second signal: stopping now");
        event_base_loopbreak(srv->base);
        return;
    }
    log_info("signal %d: no new connections; finishing %u request(s) in flight", (int)sig,
             srv->inflight);
    srv->stopping = true;
    http_stop_listening(srv);
    static const struct timeval every = {0, 100000};
    event_add(t->shutdown_poll, &every);
}

static bool read_file(const char *path, char **text, size_t *len, char *err, size_t err_size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_size, "cannot open %s", path);
        return false;
    }
    size_t cap = 1 << 20;
    *text = malloc(cap);
    *len = *text ? fread(*text, 1, cap, f) : 0;
    bool ok = *text != NULL && !ferror(f) && *len < cap;
    fclose(f);
    if (!ok) {
        snprintf(err, err_size, "cannot read %s (or larger than 1 MiB)", path);
        free(*text);
        *text = NULL;
    }
    return ok;
}

/* Reads the push certificate named by the configuration: PEM (apns_cert + apns_key, or both in
 * apns_cert) or PKCS#12 (apns_cert, with apns_cert_password). */
static bool load_push_cert(const struct config *cfg, struct apns_cert *out, char *err,
                           size_t err_size)
{
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    bool ok = read_file(cfg->apns_cert, &cert, &cert_len, err, err_size) &&
              (cfg->apns_key == NULL || read_file(cfg->apns_key, &key, &key_len, err, err_size));
    if (ok) {
        bool pem = memmem(cert, cert_len, "-----BEGIN", 10) != NULL;
        ok = pem ? apns_cert_from_pem(out, cert, cert_len, key, key_len, err, err_size)
                 : apns_cert_from_pkcs12(out, (const unsigned char *)cert, cert_len,
                                         cfg->apns_cert_password, err, err_size);
    }
    free(cert);
    if (key != NULL) {
        OPENSSL_cleanse(key, key_len);
        free(key);
    }
    return ok;
}

static void report_cert_expiry(const struct apns_cert *cert)
{
    long days = apns_cert_days_left(cert, time(NULL));
    if (days < 0)
        log_error("the push certificate for %s has EXPIRED: APNs will refuse every push; renew "
                  "it in Apple's Push Certificates Portal",
                  cert->topic);
    else if (days < CERT_WARN_DAYS)
        log_warn("the push certificate for %s expires in %ld day(s): renew it", cert->topic, days);
}

static void cert_check_tick(evutil_socket_t fd, short what, void *arg)
{
    struct vouchd *srv = arg;
    if (srv->push != NULL)
        report_cert_expiry(apns_client_get0_cert(push_service_get0_apns(srv->push)));
}

/* SIGHUP: a renewed push certificate is taken without a restart; queued pushes are kept. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct vouchd *srv = arg;
    char err[512];
    struct apns_cert cert;
    trust_reload(srv->trust, srv->config_path);
    if (srv->push == NULL) {
        log_info("SIGHUP: no apns_cert configured: no push certificate to reload");
        return;
    }
    if (!load_push_cert(srv->cfg, &cert, err, sizeof(err))) {
        log_error("SIGHUP: keeping the current push certificate: %s", err);
        return;
    }
    log_info("SIGHUP: push certificate reloaded (topic %s)", cert.topic);
    report_cert_expiry(&cert);
    migration_note_push_topics(srv, cert.topic);
    apns_client_set_cert(push_service_get0_apns(srv->push), &cert);
}

static bool start_push(struct vouchd *srv, char *err, size_t err_size)
{
    struct apns_cert cert;
    if (srv->cfg->apns_cert == NULL) {
        log_warn("no apns_cert: vouchd sends no pushes, so devices get their commands only "
                 "when they connect by themselves");
        return true;
    }
    if (!load_push_cert(srv->cfg, &cert, err, err_size))
        return false;
    report_cert_expiry(&cert);
    const struct apns_config apns = {
        .url = srv->cfg->apns_url,
        .ca_file = srv->cfg->apns_ca,
        .expiration_s = srv->cfg->apns_expiration,
        .max_in_flight = APNS_MAX_IN_FLIGHT,
        .max_attempts = APNS_MAX_ATTEMPTS,
        .timeout_ms = APNS_TIMEOUT_MS,
        .connections = srv->cfg->apns_connections,
    };
    char topic[APNS_TOPIC_MAX + 1];
    snprintf(topic, sizeof(topic), "%s", cert.topic);
    struct apns_client *client = apns_client_new(srv->base, &apns, &cert, err, err_size);
    if (client == NULL) {
        apns_cert_clear(&cert);
        return false;
    }
    srv->push = push_service_new(srv, client);
    log_info("pushing to %s for topic %s", srv->cfg->apns_url, topic);
    return true;
}

static int run_migrate(const struct config *cfg)
{
    char err[1024];
    int applied;
    if (!migrate_database(cfg->database_url, &applied, err, sizeof(err))) {
        log_error("%s", err);
        return 1;
    }
    log_info("database schema is up to date (%d migration(s) applied)", applied);
    return 0;
}

/* What every instance must follow, before anything is served: the attestation policy and the
 * web-hook receivers (so that the first event already goes to them). */
static bool store_settings(const struct config *cfg)
{
    const char *url_ptrs[CONFIG_MAX_RECEIVERS], *topic_lists[CONFIG_MAX_RECEIVERS];
    char lists[CONFIG_MAX_RECEIVERS][CONFIG_MAX_TOPICS * 32];
    size_t n = cfg->receiver_count;
    for (size_t i = 0; i < n; i++) {
        const struct config_receiver *r = &cfg->receivers[i];
        url_ptrs[i] = r->url;
        topic_lists[i] = r->every_topic ? NULL : lists[i];
        lists[i][0] = '\0';
        /* At most CONFIG_MAX_TOPICS names of under 32 bytes: it fits; the bound is a guard. */
        for (size_t t = 0, used = 0; t < r->topic_count && used < sizeof(lists[i]); t++)
            used += (size_t)snprintf(lists[i] + used, sizeof(lists[i]) - used, "%s%s", t ? "," : "",
                                     r->topics[t]);
        /* config_parse() let plain http through only without mdm.TokenUpdate in its topics or
         * with webhook_allow_http = true. */
        if (strncmp(r->url, "http://", 7) == 0)
            log_warn("web-hook receiver %s is plain http: its events travel unencrypted%s", r->url,
                     cfg->webhook_allow_http ? " (webhook_allow_http = true: with mdm.TokenUpdate, "
                                               "the device's UnlockToken)"
                                             : "");
    }
    const struct db_settings settings = {
        .max_age = cfg->attestation_max_age,
        .min_interval = cfg->attestation_min_interval,
        .mean_interval = cfg->attestation_mean_interval,
        .info_interval = cfg->info_interval,
        .rate_limit = cfg->attestation_rate_limit,
        .retry_limit = cfg->attestation_retry_limit,
        .retry_delay = cfg->attestation_retry_delay,
        .webhook_urls = url_ptrs,
        .webhook_url_count = n,
        .webhook_topic_lists = topic_lists,
    };
    char err[1024];
    if (!migrate_store_settings(cfg->database_url, &settings, err, sizeof(err))) {
        log_error("%s", err);
        return false;
    }
    if (n > 0)
        log_info("web-hooks go to %zu receiver(s)", n);
    return true;
}

/* One clock: vouchd's sessions take verdicts at the database's real time unless test_clock. A
 * moved clock is said at every start, whether it counts or not. */
static bool check_clock(const struct config *cfg)
{
    char err[1024];
    double skew;
    if (!migrate_check_clock(cfg->database_url, cfg->test_clock, &skew, err, sizeof(err))) {
        log_error("%s", err);
        return false;
    }
    if (cfg->test_clock)
        log_warn("test clock: verdicts are taken at the database's clock, moved by %.0f s "
                 "(never in production)",
                 skew);
    else if (skew != 0)
        log_warn("vouch_clock is moved by %.0f s, which vouchd ignores (test_clock is off): "
                 "verdicts are taken at the database's real time",
                 skew);
    return true;
}

/* The PEM the identity verifier trusts: identity_ca's file, then the ACME CA's certificate. */
static bool identity_trust(const struct config *cfg, const struct acme *acme, char **pem,
                           size_t *pem_len, char *err, size_t err_size)
{
    *pem = NULL;
    *pem_len = 0;
    if (cfg->identity_ca != NULL && !read_file(cfg->identity_ca, pem, pem_len, err, err_size))
        return false;
    if (acme == NULL)
        return true;
    const char *ca = acme_get0_ca_pem(acme);
    size_t ca_len = strlen(ca);
    char *both = realloc(*pem, *pem_len + ca_len + 2);
    if (both == NULL) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    both[(*pem_len)++] = '\n';
    memcpy(both + *pem_len, ca, ca_len + 1);
    *pem = both;
    *pem_len += ca_len;
    return true;
}

static int serve(const struct config *cfg, const char *config_path)
{
    char err[1024];
    struct vouchd srv = {.cfg = cfg, .config_path = config_path};
    struct timers t = {0};
    struct fleet_metrics *fleet = NULL;
    int status = 1;
    the_server = &srv;

    char *pem = NULL;
    size_t pem_len = 0;
    /* A bad policy stops vouchd here, naming the file, the line and the key. */
    if ((srv.trust = trust_new(cfg, err, sizeof(err))) == NULL) {
        log_error("%s: %s", config_path, err);
        return 1;
    }
    if (cfg->acme_ca_cert != NULL && (srv.acme = acme_new(&srv, err, sizeof(err))) == NULL) {
        log_error("%s", err);
        trust_free(srv.trust);
        return 1;
    }
    /* Devices are identified by identity_ca's certificates and by the ACME CA's. */
    if (!identity_trust(cfg, srv.acme, &pem, &pem_len, err, sizeof(err)) ||
        (srv.identity = identity_verifier_new(pem, pem_len, cfg->identity_cache_size, err,
                                              sizeof(err))) == NULL) {
        log_error("identity_ca: %s", err);
        free(pem);
        acme_free(srv.acme);
        trust_free(srv.trust);
        return 1;
    }
    free(pem);
    pem = NULL;
    if (cfg->attestation_roots != NULL &&
        !read_file(cfg->attestation_roots, &pem, &pem_len, err, sizeof(err))) {
        log_error("attestation_roots: %s", err);
        goto out;
    }
    /* Default: the Apple Enterprise Attestation Root CA, built into vouchd. */
    srv.attest = pem ? attest_verifier_new(pem, pem_len, err, sizeof(err))
                     : attest_verifier_new(attest_apple_root_pem, strlen(attest_apple_root_pem),
                                           err, sizeof(err));
    free(pem);
    if (srv.attest == NULL) {
        log_error("attestation_roots: %s", err);
        goto out;
    }
    if (run_migrate(cfg) != 0 || !store_settings(cfg) || !check_clock(cfg))
        goto out;
    if ((srv.enroll = enroll_new(&srv, err, sizeof(err))) == NULL) {
        log_error("%s", err);
        goto out;
    }

    /* epoll's change list: the enables and disables of one loop turn (evhttp's on every request,
     * the database connections' on every query) reach the kernel as one epoll_ctl per descriptor
     * at most, or none when they cancel out. Safe here: no descriptor is dup()ed. */
    struct event_config *ev_cfg = event_config_new();
    if (ev_cfg != NULL) {
        event_config_set_flag(ev_cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        srv.base = event_base_new_with_config(ev_cfg);
        event_config_free(ev_cfg); /* which takes no NULL */
    }
    /* Two priorities: 0 for the little that must run before any I/O of the next turn (the
     * HTTP connection guard's registration), 1 (the default) for everything else. */
    if (srv.base == NULL || event_base_priority_init(srv.base, HTTP_PRIORITIES) != 0) {
        log_error("cannot create the event loop");
        goto out;
    }
    srv.db = db_pool_new(srv.base, cfg->database_url, cfg->db_pool_size, DB_MAX_WAITING,
                         cfg->test_clock);
    if (srv.db == NULL) {
        log_error("cannot create the database pool");
        goto out;
    }
    /* As many answer statements out as the pool has connections. */
    srv.answers = answer_batch_new(srv.db, cfg->db_pool_size);
    if ((srv.tokens = tokens_new(&srv)) == NULL) {
        log_error("out of memory");
        goto out;
    }
    if (!start_push(&srv, err, sizeof(err))) {
        log_error("%s", err);
        goto out;
    }
    if (!migration_store_push_topics(
            &srv, srv.push ? apns_client_get0_cert(push_service_get0_apns(srv.push))->topic : NULL))
        goto out;
    /* The endpoint families: the HTTP front knows none of them. */
    mdm_register_routes(cfg);
    enroll_register_routes();
    acme_register_routes();
    trust_register_routes();
    admin_register_routes();
    dashboard_register_routes();
    health_register_routes();
    migration_register_routes(cfg->migration_on);
    if (!http_start(&srv, err, sizeof(err))) {
        log_error("%s", err);
        goto out;
    }
    srv.scheduler = scheduler_new(&srv);
    srv.webhook = webhook_new(&srv);
    fleet = fleet_metrics_new(&srv);
    t.stats = event_new(srv.base, -1, EV_PERSIST, stats_tick, &srv);
    t.prune = event_new(srv.base, -1, EV_PERSIST, prune_tick, &srv);
    t.shutdown_poll = event_new(srv.base, -1, EV_PERSIST, shutdown_poll, &srv);
    t.sigterm = evsignal_new(srv.base, SIGTERM, on_signal, &t);
    t.sigint = evsignal_new(srv.base, SIGINT, on_signal, &t);
    t.sighup = evsignal_new(srv.base, SIGHUP, on_sighup, &srv);
    t.cert_check = event_new(srv.base, -1, EV_PERSIST, cert_check_tick, &srv);
    if (!t.stats || !t.prune || !t.shutdown_poll || !t.sigterm || !t.sigint || !t.sighup ||
        !t.cert_check) {
        log_error("cannot create timers");
        goto out;
    }
    const struct timeval stats_every = {STATS_INTERVAL_S, 0};
    const struct timeval prune_every = {PRUNE_INTERVAL_S, 0};
    const struct timeval soon = {1, 0};
    event_add(t.stats, &stats_every);
    event_add(t.prune, &prune_every);
    event_add(t.sigterm, NULL);
    event_add(t.sigint, NULL);
    event_add(t.sighup, NULL);
    const struct timeval daily = {CERT_CHECK_INTERVAL_S, 0};
    event_add(t.cert_check, &daily);
    event_base_once(srv.base, -1, EV_TIMEOUT, stats_tick, &srv, &soon);

    if (cfg->proxy_count > 0)
        log_info("believing %s%sX-Forwarded-For from %zu trusted proxy address(es) or network(s)",
                 cfg->cert_header ? cfg->cert_header : "", cfg->cert_header ? " and " : "",
                 cfg->proxy_count);
    log_info("vouchd %s listening on %s", VOUCH_VERSION, cfg->listen);
    event_base_dispatch(srv.base);
    log_info("vouchd stopped");
    status = 0;

out:
    if (t.stats)
        event_free(t.stats);
    if (t.prune)
        event_free(t.prune);
    if (t.shutdown_poll)
        event_free(t.shutdown_poll);
    if (t.sigterm)
        event_free(t.sigterm);
    if (t.sigint)
        event_free(t.sigint);
    if (t.sighup)
        event_free(t.sighup);
    if (t.cert_check)
        event_free(t.cert_check);
    answer_batch_stop(srv.answers); /* its answers' requests go with the HTTP front */
    http_free(&srv);
    push_service_stop(srv.push);
    db_pool_free(srv.db);
    answer_batch_free(srv.answers); /* after the pool: its batches' last callbacks name it */
    push_service_free(srv.push); /* after the pool, as the scheduler */
    scheduler_free(srv.scheduler); /* after the pool: its last callbacks name the scheduler */
    fleet_metrics_free(fleet);     /* the same */
    webhook_free(srv.webhook);
    enroll_free(srv.enroll);
    acme_free(srv.acme);
    tokens_free(srv.tokens);
    trust_free(srv.trust);
    if (srv.base)
        event_base_free(srv.base);
    identity_verifier_free(srv.identity);
    attest_verifier_free(srv.attest);
    return status;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool migrate_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            fputs(usage_more, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("vouchd %s\n", VOUCH_VERSION);
            return 0;
        } else if (strcmp(argv[i], "migrate") == 0 && !migrate_only) {
            migrate_only = true;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else {
            fprintf(stderr, "vouchd: unknown argument '%s'\n\n%s%s", argv[i], usage, usage_more);
            return 2;
        }
    }
    if (config_path == NULL) {
        fprintf(stderr, "vouchd: --config FILE is required\n\n%s%s", usage, usage_more);
        return 2;
    }

    struct config cfg;
    char err[1024];
    if (!config_load(&cfg, config_path, err, sizeof(err))) {
        fprintf(stderr, "vouchd: %s: %s\n", config_path, err);
        return 1;
    }
    enum log_level level = LOG_INFO;
    if (!log_parse_level(cfg.log_level, &level)) /* validated by config_parse */
        level = LOG_INFO;
    log_set_level(level);
    enum log_format format = LOG_TEXT;
    if (cfg.log_format != NULL && log_parse_format(cfg.log_format, &format)) /* validated too */
        log_set_format(format);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "vouchd: cannot initialise libcurl\n");
        config_clear(&cfg);
        return 1;
    }

    int status;
    if (migrate_only) {
        if (cfg.database_url == NULL) {
            fprintf(stderr, "vouchd: %s: database_url is required\n", config_path);
            status = 1;
        } else {
            status = run_migrate(&cfg);
        }
    } else if (!config_check_runtime(&cfg, err, sizeof(err))) {
        fprintf(stderr, "vouchd: %s: %s\n", config_path, err);
        status = 1;
    } else {
        status = serve(&cfg, config_path);
    }
    config_clear(&cfg);
    curl_global_cleanup();
    return status;
}
