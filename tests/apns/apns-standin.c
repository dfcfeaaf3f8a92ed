/*
 * apns-standin: a stand-in for api.push.apple.com, for Vouch's tests and bench. Not installed.
 *
 * An HTTP/2-over-TLS server that requires a client certificate, checks each MDM push the way
 * APNs does (standin_check.h), answers as a script says (standin_script.h), records every request
 * (standin_pushlog.h) and can be driven over a loopback HTTP/1.1 control API
 * (standin_control.h). When ready it prints one line on stdout:
 *
 *   apns-standin ready listen=127.0.0.1:PORT control=127.0.0.1:PORT2 noauth=-
 *
 * ("-" for a part not asked for; noauth is the --listen-noauth front, for h2load).
 *
 * SIGTERM or SIGINT: stop accepting, GOAWAY every connection, let requests in progress finish
 * (at most 5 seconds), exit 0. Exit status: 0 clean shutdown, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "standin.h"
#include "standin_check.h"
#include "standin_control.h"
#include "standin_h2.h"
#include "standin_pushlog.h"
#include "standin_script.h"

#define EXIT_USAGE 2
#define DEFAULT_MAX_RECORDS 200000
#define DEFAULT_MAX_CONNECTIONS 1024
#define SHUTDOWN_GRACE_S 5
#define LOG_FLUSH_MS 100

static const char usage_text[] =
    "usage: apns-standin --listen HOST:PORT --cert server.pem --key server.key\n"
    "                    --client-ca ca.pem [options]\n"
    "\n"
    "A stand-in for api.push.apple.com (HTTP/2 over TLS, client certificate required) for MDM\n"
    "pushes. PORT 0 picks a free port; the ready line on stdout tells which.\n"
    "\n"
    "  --listen HOST:PORT     where to serve HTTP/2 over TLS (an IP address)\n"
    "  --cert FILE            server certificate chain, PEM\n"
    "  --key FILE             its private key, PEM\n"
    "  --client-ca FILE       CA certificates a client certificate must chain to, PEM\n"
    "  --topic TOPIC          the one topic every client may push to (default: the UID of the\n"
    "                         client certificate's subject, as APNs does for MDM certificates)\n"
    "  --listen-noauth HOST:PORT\n"
    "                         the same server without client authentication, for h2load\n"
    "                         (which cannot present a certificate); its clients may push to\n"
    "                         --topic, or to any topic without --topic. Never for auth tests.\n"
    "  --control HOST:PORT    loopback HTTP/1.1 control API: POST /script, GET /script,\n"
    "                         GET /pushes?since=S&limit=N&wait=MS, GET /stats, POST /reset,\n"
    "                         POST /goaway, GET /healthz\n"
    "  --notify-dir DIR       append \"<token> <push magic>\\n\" to DIR/pushes.log for every\n"
    "                         push answered 200 (for the device simulator)\n"
    "  --log FILE             one line per request to FILE\n"
    "  --verbose              one line per request to stderr (when there is no --log)\n"
    "  --max-records N        requests kept for GET /pushes (default 200000; oldest dropped)\n"
    "  --max-connections N    connections at once (default 1024)\n"
    "  --help\n"
    "\n"
    "Script lines (POST /script): KEY ACTION [COUNT], KEY a hex token or *, ACTION 200, a status\n"
    "400..599 [REASON] [ts=MS], goaway, or delay MS; COUNT uses, default all. Examples:\n"
    "  TOKEN 500 2        TOKEN 410        TOKEN 400 DeviceTokenNotForTopic\n"
    "  TOKEN goaway 1     * delay 200      TOKEN 410 Unregistered ts=1700000000000\n"
    "Exit status: 0 clean shutdown (SIGTERM, SIGINT), 1 failure, 2 usage error.\n";

struct options {
    const char *listen;
    const char *listen_noauth;
    const char *cert;
    const char *key;
    const char *client_ca;
    const char *topic;
    const char *control;
    const char *notify_dir;
    const char *log;
    bool verbose;
    size_t max_records;
    size_t max_connections;
};

struct app {
    struct standin ctx;
    struct standin_h2 *h2;
    struct standin_control *control;
    struct event *sigterm;
    struct event *sigint;
    struct event *flush_timer;
    struct event *grace_timer;
    bool stopping;
};

static bool parse_size(const char *s, size_t min, size_t max, size_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = (size_t)v;
    return true;
}

static int usage_error(const char *why)
{
    fprintf(stderr, "apns-standin: %s\n%s", why, usage_text);
    return EXIT_USAGE;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum {
        OPT_LISTEN = 256,
        OPT_LISTEN_NOAUTH,
        OPT_CERT,
        OPT_KEY,
        OPT_CLIENT_CA,
        OPT_TOPIC,
        OPT_CONTROL,
        OPT_NOTIFY_DIR,
        OPT_LOG,
        OPT_VERBOSE,
        OPT_MAX_RECORDS,
        OPT_MAX_CONNECTIONS,
        OPT_HELP
    };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"listen-noauth", required_argument, NULL, OPT_LISTEN_NOAUTH},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"client-ca", required_argument, NULL, OPT_CLIENT_CA},
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"control", required_argument, NULL, OPT_CONTROL},
        {"notify-dir", required_argument, NULL, OPT_NOTIFY_DIR},
        {"log", required_argument, NULL, OPT_LOG},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"max-records", required_argument, NULL, OPT_MAX_RECORDS},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int opt;

    memset(o, 0, sizeof(*o));
    o->max_records = DEFAULT_MAX_RECORDS;
    o->max_connections = DEFAULT_MAX_CONNECTIONS;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN:
            o->listen = optarg;
            break;
        case OPT_LISTEN_NOAUTH:
            o->listen_noauth = optarg;
            break;
        case OPT_CERT:
            o->cert = optarg;
            break;
        case OPT_KEY:
            o->key = optarg;
            break;
        case OPT_CLIENT_CA:
            o->client_ca = optarg;
            break;
        case OPT_TOPIC:
            o->topic = optarg;
            break;
        case OPT_CONTROL:
            o->control = optarg;
            break;
        case OPT_NOTIFY_DIR:
            o->notify_dir = optarg;
            break;
        case OPT_LOG:
            o->log = optarg;
            break;
        case OPT_VERBOSE:
            o->verbose = true;
            break;
        case OPT_MAX_RECORDS:
            if (!parse_size(optarg, 1, 100000000, &o->max_records))
                return usage_error("--max-records: 1..100000000");
            break;
        case OPT_MAX_CONNECTIONS:
            if (!parse_size(optarg, 1, 1000000, &o->max_connections))
                return usage_error("--max-connections: 1..1000000");
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            return EXIT_SUCCESS;
        default:
            return usage_error("unknown option");
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument");
    if (o->listen == NULL || o->cert == NULL || o->key == NULL || o->client_ca == NULL)
        return usage_error("--listen, --cert, --key and --client-ca are required");
    if (o->topic != NULL && (o->topic[0] == '\0' || strlen(o->topic) > STANDIN_TOPIC_MAX))
        return usage_error("--topic: 1..200 bytes");
    if (o->notify_dir != NULL) {
        struct stat st;
        if (stat(o->notify_dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return usage_error("--notify-dir: not a directory");
    }
    return -1;
}

static void flush_log(evutil_socket_t fd, short what, void *arg)
{
    struct app *app = arg;
    if (app->ctx.request_log != NULL)
        fflush(app->ctx.request_log);
}

static void all_closed(void *arg)
{
    struct app *app = arg;
    event_base_loopexit(app->ctx.base, NULL);
}

static void grace_expired(evutil_socket_t fd, short what, void *arg)
{
    struct app *app = arg;
    fprintf(stderr, "apns-standin: %zu connections still open after %d s, closing them\n",
            standin_h2_open_connections(app->h2), SHUTDOWN_GRACE_S);
    event_base_loopexit(app->ctx.base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    if (app->stopping) {
        event_base_loopexit(app->ctx.base, NULL);
        return;
    }
    app->stopping = true;
    fprintf(stderr, "apns-standin: %s, shutting down\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    struct timeval grace = {SHUTDOWN_GRACE_S, 0};
    evtimer_add(app->grace_timer, &grace);
    standin_h2_shutdown(app->h2, all_closed, app);
}

static int run(const struct options *o)
{
    struct app app;
    char err[512];
    int status = EXIT_FAILURE;

    memset(&app, 0, sizeof(app));
    app.ctx.base = event_base_new();
    app.ctx.script = standin_script_new();
    if (app.ctx.base == NULL) {
        fprintf(stderr, "apns-standin: event_base_new failed\n");
        goto out;
    }
    app.ctx.pushlog =
        standin_pushlog_new(app.ctx.base, o->max_records, o->notify_dir, err, sizeof(err));
    if (app.ctx.pushlog == NULL) {
        fprintf(stderr, "apns-standin: %s\n", err);
        goto out;
    }
    if (o->log != NULL) {
        app.ctx.request_log = fopen(o->log, "ae");
        if (app.ctx.request_log == NULL) {
            fprintf(stderr, "apns-standin: --log %s: %s\n", o->log, strerror(errno));
            goto out;
        }
    } else if (o->verbose) {
        app.ctx.request_log = stderr;
    }

    struct standin_h2_config cfg = {
        .listen = o->listen,
        .listen_noauth = o->listen_noauth,
        .cert_file = o->cert,
        .key_file = o->key,
        .client_ca_file = o->client_ca,
        .topic = o->topic,
        .max_connections = o->max_connections,
    };
    app.h2 = standin_h2_new(&app.ctx, &cfg, err, sizeof(err));
    if (app.h2 == NULL) {
        fprintf(stderr, "apns-standin: %s\n", err);
        goto out;
    }
    if (o->control != NULL) {
        app.control = standin_control_new(&app.ctx, app.h2, o->control, err, sizeof(err));
        if (app.control == NULL) {
            fprintf(stderr, "apns-standin: %s\n", err);
            goto out;
        }
    }

    app.sigterm = evsignal_new(app.ctx.base, SIGTERM, on_signal, &app);
    app.sigint = evsignal_new(app.ctx.base, SIGINT, on_signal, &app);
    app.flush_timer = event_new(app.ctx.base, -1, EV_PERSIST, flush_log, &app);
    app.grace_timer = evtimer_new(app.ctx.base, grace_expired, &app);
    struct timeval flush_every = {0, LOG_FLUSH_MS * 1000};
    if (app.sigterm == NULL || app.sigint == NULL || app.flush_timer == NULL ||
        app.grace_timer == NULL || evsignal_add(app.sigterm, NULL) != 0 ||
        evsignal_add(app.sigint, NULL) != 0 || event_add(app.flush_timer, &flush_every) != 0) {
        fprintf(stderr, "apns-standin: cannot set up events\n");
        goto out;
    }

    const char *noauth = standin_h2_get0_noauth_address(app.h2);
    printf("apns-standin ready listen=%s control=%s noauth=%s\n", standin_h2_get0_address(app.h2),
           app.control != NULL ? standin_control_get0_address(app.control) : "-",
           noauth != NULL ? noauth : "-");
    fflush(stdout);
    if (event_base_dispatch(app.ctx.base) != 0) {
        fprintf(stderr, "apns-standin: event loop failed\n");
        goto out;
    }
    status = EXIT_SUCCESS;
out:
    standin_control_free(app.control);
    standin_h2_free(app.h2);
    if (app.sigterm != NULL)
        event_free(app.sigterm);
    if (app.sigint != NULL)
        event_free(app.sigint);
    if (app.flush_timer != NULL)
        event_free(app.flush_timer);
    if (app.grace_timer != NULL)
        event_free(app.grace_timer);
    if (app.ctx.request_log != NULL && app.ctx.request_log != stderr)
        fclose(app.ctx.request_log);
    standin_pushlog_free(app.ctx.pushlog);
    standin_script_free(app.ctx.script);
    if (app.ctx.base != NULL)
        event_base_free(app.ctx.base);
    return status;
}

int main(int argc, char **argv)
{
    struct options o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    return run(&o);
}
