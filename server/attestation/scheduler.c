#include "scheduler.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "command.h"
#include "config.h"
#include "log.h"
#include "push.h"
#include "queries.h"
#include "vouchd.h"

#define MAX_SLEEP_S 60      /* look at least this often, whatever the plan says */
#define RETRY_S 5           /* after a failed tick, or while the rate budget is spent */
#define INFO_LIMIT_FACTOR 4 /* light queries per tick: this times scheduler_batch */
#define NOTIFY_CHANNEL "vouch_scheduler"
/* A NOTIFY waits this long for those that follow it: a burst (a migrated fleet's first
 * check-ins, each planning a request at once) makes one tick, not one per device. */
#define NOTIFY_GATHER_S 0.1

static const char *const reasons[] = {"os_change", "random", "max_age", "retry", "migration"};
#define REASON_COUNT (sizeof(reasons) / sizeof(reasons[0]))

struct scheduler {
    struct vouchd *srv;
    struct event timer;
    bool busy;  /* a query of this module is out */
    bool again; /* woken while busy: look once more afterwards */
    bool gathering; /* the timer fires within NOTIFY_GATHER_S for a NOTIFY */
    struct timespec tick_started;
    /* figures */
    uint64_t ticks, failed_ticks, info_queries;
    uint64_t requests[REASON_COUNT];
    double last_tick_ms;
};

static void look(struct scheduler *s);

static void sleep_for(struct scheduler *s, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    if (seconds > MAX_SLEEP_S)
        seconds = MAX_SLEEP_S;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    evtimer_del(&s->timer);
    evtimer_add(&s->timer, &tv);
    s->gathering = false;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct scheduler *s = arg;
    s->gathering = false;
    look(s);
}

/* The database says something may be due now (or the listener came back up). */
static void notified(void *arg)
{
    struct scheduler *s = arg;
    if (s->busy) {
        s->again = true;
    } else if (!s->gathering) {
        sleep_for(s, NOTIFY_GATHER_S);
        s->gathering = true;
    }
}

static void failed(struct scheduler *s, const char *what, enum db_outcome outcome)
{
    log_warn("scheduler: %s failed: %s", what,
             outcome == DB_QUERY_ERROR ? "query error" : "database unavailable");
    s->busy = false;
    s->failed_ticks++;
    sleep_for(s, RETRY_S);
}

static double ms_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) * 1e3 +
           (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static void tick_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct scheduler *s = arg;
    if (outcome != DB_OK) {
        failed(s, "tick", outcome);
        return;
    }
    s->ticks++;
    s->last_tick_ms = ms_since(&s->tick_started);
    int rows = PQntuples(res);
    const char **udids = malloc(((size_t)rows + 1) * sizeof(*udids));
    if (udids == NULL)
        log_fatal("out of memory");
    size_t count = 0, attest = 0;
    for (int i = 0; i < rows; i++) {
        const char *udid, *kind, *reason;
        if (!db_decode_tick_row(res, i, &udid, &kind, &reason))
            continue;
        udids[count++] = udid;
        if (strcmp(kind, "info") == 0) {
            s->info_queries++;
            continue;
        }
        attest++;
        for (size_t r = 0; r < REASON_COUNT; r++) {
            if (reason != NULL && strcmp(reason, reasons[r]) == 0)
                s->requests[r]++;
        }
    }
    if (count > 0) {
        log_info("scheduler: %zu attestation request(s) and %zu OS query(ies) queued in %.1f ms",
                 attest, count - attest, s->last_tick_ms);
        if (s->srv->push != NULL)
            push_devices(s->srv->push, udids, count, NULL, NULL);
    }
    free(udids);
    s->busy = false;
    /* Claimed nothing although work was due: another instance holds it. Look again shortly
     * rather than spin. A full batch: look again now, for what it could not take. Less: what
     * falls due now trickles in (a fleet's first check-ins), so gather it as a NOTIFY does. */
    if (count == 0) {
        sleep_for(s, 1);
    } else if (attest >= s->srv->cfg->scheduler_batch) {
        look(s);
    } else {
        sleep_for(s, NOTIFY_GATHER_S);
        s->gathering = true;
    }
}

/* The light query: what OS the device runs now, without an attestation. */
static bool build_info_query(struct prepared_command *out)
{
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<plist version=\"1.0\"><dict><key>Command</key><dict>"
        "<key>RequestType</key><string>DeviceInformation</string>"
        "<key>Queries</key><array><string>OSVersion</string><string>BuildVersion</string>"
        "<string>ProductName</string><string>Model</string></array>"
        "</dict></dict></plist>\n";
    char err[128];
    return command_prepare(body, sizeof(body) - 1, out, err, sizeof(err));
}

/* Makes count attestation requests, builds the light query, and claims devices for them. */
static void run_tick(struct scheduler *s, size_t count)
{
    char(*uuids)[37] = calloc(count + 1, 37);
    struct db_attest_request *requests = calloc(count + 1, sizeof(*requests));
    uint8_t(*nonces)[COMMAND_NONCE_BYTES] = calloc(count + 1, COMMAND_NONCE_BYTES);
    struct prepared_command info;
    if (uuids == NULL || requests == NULL || nonces == NULL)
        log_fatal("out of memory");
    bool built = build_info_query(&info);
    size_t n = 0;
    while (built && n < count && command_new_attestation(uuids[n], nonces[n])) {
        requests[n] = (struct db_attest_request){uuids[n], nonces[n], COMMAND_NONCE_BYTES};
        n++;
    }
    if (!built || n < count) {
        log_error("scheduler: cannot build DeviceInformation requests");
        s->busy = false;
        s->failed_ticks++;
        sleep_for(s, RETRY_S);
    } else {
        clock_gettime(CLOCK_MONOTONIC, &s->tick_started);
        db_scheduler_tick(s->srv->db, requests, n, info.uuid, (const uint8_t *)info.xml,
                          info.xml_len, s->srv->cfg->scheduler_batch * INFO_LIMIT_FACTOR, tick_done,
                          s);
    }
    if (built)
        command_clear(&info);
    free(uuids);
    free(requests);
    free(nonces);
}

static void next_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct scheduler *s = arg;
    struct db_scheduler_next next;
    if (outcome != DB_OK || !db_decode_scheduler_next(res, &next)) {
        failed(s, "looking for due work", outcome == DB_OK ? DB_QUERY_ERROR : outcome);
        return;
    }
    int attest = next.attest_due < next.budget ? next.attest_due : next.budget;
    if (attest > 0 || next.other_due) {
        run_tick(s, attest > 0 ? (size_t)attest : 0);
        return;
    }
    s->busy = false;
    if (s->again) {
        s->again = false;
        sleep_for(s, 0);
    } else if (!next.anything_planned) {
        sleep_for(s, MAX_SLEEP_S);
    } else if (next.due_in <= 0) {
        sleep_for(s, RETRY_S); /* due, but this minute's fleet-wide budget is spent */
    } else {
        sleep_for(s, next.due_in);
    }
}

/* One round: what is due now? Then a tick for it, then another look, until nothing is due. */
static void look(struct scheduler *s)
{
    if (s->busy) {
        s->again = true;
        return;
    }
    if (s->srv->stopping)
        return;
    s->busy = true;
    s->again = false;
    db_scheduler_next(s->srv->db, s->srv->cfg->scheduler_batch, next_done, s);
}

struct scheduler *scheduler_new(struct vouchd *srv)
{
    if (srv->cfg->scheduler_batch == 0) {
        log_info("scheduler_batch = 0: this instance plans no attestations");
        return NULL;
    }
    struct scheduler *s = calloc(1, sizeof(*s));
    if (s == NULL)
        log_fatal("out of memory");
    s->srv = srv;
    evtimer_assign(&s->timer, srv->base, timer_cb, s);
    /* The listener's first connection wakes the first tick. */
    db_listen(srv->db, NOTIFY_CHANNEL, notified, s);
    sleep_for(s, 1);
    return s;
}

void scheduler_free(struct scheduler *s)
{
    if (s == NULL)
        return;
    evtimer_del(&s->timer);
    free(s);
}

void scheduler_render_metrics(const struct scheduler *s, struct evbuffer *out)
{
    if (s == NULL)
        return;
    evbuffer_add_printf(out,
                        "# HELP vouch_scheduler_ticks_total Scheduler ticks, by result.\n"
                        "# TYPE vouch_scheduler_ticks_total counter\n"
                        "vouch_scheduler_ticks_total{result=\"ok\"} %" PRIu64 "\n"
                        "vouch_scheduler_ticks_total{result=\"failed\"} %" PRIu64 "\n",
                        s->ticks, s->failed_ticks);
    evbuffer_add_printf(out, "# HELP vouch_scheduler_requests_total Attestation requests the "
                             "scheduler queued, by reason.\n"
                             "# TYPE vouch_scheduler_requests_total counter\n");
    for (size_t r = 0; r < REASON_COUNT; r++)
        evbuffer_add_printf(out, "vouch_scheduler_requests_total{reason=\"%s\"} %" PRIu64 "\n",
                            reasons[r], s->requests[r]);
    evbuffer_add_printf(out,
                        "# HELP vouch_scheduler_info_queries_total Light DeviceInformation "
                        "queries (OS version) the scheduler queued.\n"
                        "# TYPE vouch_scheduler_info_queries_total counter\n"
                        "vouch_scheduler_info_queries_total %" PRIu64 "\n"
                        "# HELP vouch_scheduler_last_tick_seconds Duration of the last tick.\n"
                        "# TYPE vouch_scheduler_last_tick_seconds gauge\n"
                        "vouch_scheduler_last_tick_seconds %.6f\n",
                        s->info_queries, s->last_tick_ms / 1e3);
}
