#include "db.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "histogram.h"
#include "log.h"

#define RECONNECT_MIN_MS 100
#define MAX_PREPARED 64 /* statements each connection keeps prepared (queries.c has fewer) */
#define RECONNECT_MAX_MS 5000
#define CONNECT_TIMEOUT_S 10

struct db_job {
    struct db_job *next;
    const char *sql;
    int nparams;
    const char **values;
    int *lengths;
    int *formats;
    bool binary_results;
    db_result_fn *cb;
    void *arg;
    enum db_outcome deferred_outcome; /* for jobs failed before they were sent */
    struct db_pool *pool;
    struct timespec queued_at;               /* CLOCK_MONOTONIC, at db_query() */
    char request_id[LOG_REQUEST_ID_MAX + 1]; /* current at db_query(): current again at its end */
};

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct db_conn {
    struct db_pool *pool;
    unsigned index;
    PGconn *pg;
    enum conn_state state;
    struct event io; /* the socket; assigned again whenever libpq's socket changes */
    bool io_assigned;
    short io_what;      /* what io watches for, as assigned */
    struct event retry; /* reconnect timer */
    unsigned backoff_ms;
    struct db_job *job; /* in flight while CONN_BUSY */
    PGresult *result;
    bool listener; /* the pool's LISTEN connection: never given queries */
    /* Statements prepared on this connection, by the address of their SQL (the static strings
     * of queries.c): each is parsed and planned once per connection, not once per query. */
    const char *prepared[MAX_PREPARED];
    unsigned prepared_count;
    bool preparing; /* the job's statement is being prepared; the job is sent after */
};

struct db_pool {
    struct event_base *base;
    /* The connection parameters: conninfo's, with vouch.test_clock added to its options. */
    PQconninfoOption *params;
    const char **keywords, **values;
    char *options;
    unsigned size;
    unsigned max_waiting;
    struct db_conn *conns;
    struct db_job *wait_head, *wait_tail;
    unsigned waiting;
    uint64_t queries, failures, reconnects;
    struct histogram latency[DB_OUTCOMES];
    struct db_conn *listener; /* NULL until db_listen() */
    char listen_sql[DB_MAX_CHANNELS * (DB_MAX_CHANNEL_LEN + 9) + 1];
    struct {
        char name[DB_MAX_CHANNEL_LEN + 1];
        db_notify_fn *cb;
        void *arg;
    } channels[DB_MAX_CHANNELS];
    unsigned channel_count;
};

/* Every channel's callback: after a (re)connect, when notifications may have been missed. */
static void notify_all(struct db_pool *pool)
{
    for (unsigned i = 0; i < pool->channel_count; i++)
        pool->channels[i].cb(pool->channels[i].arg);
}

static void conn_connect(struct db_conn *conn);
static void conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void pool_dispatch(struct db_pool *pool);
static void conn_flush(struct db_conn *conn);
static bool conn_prepared(struct db_conn *conn);

static void job_free(struct db_job *job)
{
    free(job);
}

/* Runs body with the request id of job current (what its callback and the lines logged while
 * its answer is read belong to), then restores the one before. */
#define WITH_REQUEST_ID_OF(job, body)                                                              \
    do {                                                                                           \
        char previous_id_[LOG_REQUEST_ID_MAX + 1];                                                 \
        snprintf(previous_id_, sizeof(previous_id_), "%s", log_get0_request_id());                 \
        log_set_request_id((job)->request_id);                                                     \
        body;                                                                                      \
        log_set_request_id(previous_id_);                                                          \
    } while (0)

static void job_finish(struct db_job *job, enum db_outcome outcome, const PGresult *res)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    histogram_observe(&job->pool->latency[outcome],
                      (double)(now.tv_sec - job->queued_at.tv_sec) +
                          (double)(now.tv_nsec - job->queued_at.tv_nsec) / 1e9);
    if (outcome != DB_OK)
        job->pool->failures++;
    WITH_REQUEST_ID_OF(job, job->cb(job->arg, outcome, res));
    job_free(job);
}

static void job_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_job *job = arg;
    job_finish(job, job->deferred_outcome, NULL);
}

/* Fails a job on the next loop iteration, so callbacks never run inside db_query(). */
static void job_fail_later(struct db_job *job, enum db_outcome outcome)
{
    static const struct timeval now = {0, 0};
    job->deferred_outcome = outcome;
    if (event_base_once(job->pool->base, -1, EV_TIMEOUT, job_deferred_cb, job, &now) != 0)
        log_fatal("event_base_once failed");
}

static bool pool_any_up(const struct db_pool *pool)
{
    for (unsigned i = 0; i < pool->size; i++) {
        if (pool->conns[i].state == CONN_IDLE || pool->conns[i].state == CONN_BUSY)
            return true;
    }
    return false;
}

static void conn_watch(struct db_conn *conn, short what, const struct timeval *timeout)
{
    /* A busy connection is watched for reading between queries already: keeping the event as it
     * is saves an epoll_ctl pair per query. */
    if (conn->io_assigned && timeout == NULL && what == conn->io_what && (what & EV_PERSIST) &&
        event_get_fd(&conn->io) == PQsocket(conn->pg) &&
        event_pending(&conn->io, (short)(what & (EV_READ | EV_WRITE)), NULL))
        return;
    if (conn->io_assigned)
        event_del(&conn->io);
    event_assign(&conn->io, conn->pool->base, PQsocket(conn->pg), what, conn_io_cb, conn);
    conn->io_assigned = true;
    conn->io_what = what;
    if (event_add(&conn->io, timeout) != 0)
        log_fatal("event_add failed");
}

static void conn_schedule_reconnect(struct db_conn *conn)
{
    struct timeval tv = {conn->backoff_ms / 1000, (conn->backoff_ms % 1000) * 1000};
    conn->backoff_ms =
        conn->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : conn->backoff_ms * 2;
    evtimer_add(&conn->retry, &tv);
}

/* The connection is gone: fail what it was doing, and what waits if nothing else is up. */
static void conn_broken(struct db_conn *conn, const char *why)
{
    struct db_pool *pool = conn->pool;
    bool was_up = conn->state == CONN_IDLE || conn->state == CONN_BUSY;
    if (was_up || conn->backoff_ms == RECONNECT_MIN_MS)
        log_warn("database connection %u: %s", conn->index, why);
    if (conn->io_assigned) {
        event_del(&conn->io);
        conn->io_assigned = false;
    }
    PQfinish(conn->pg);
    conn->pg = NULL;
    conn->state = CONN_DOWN;
    if (conn->result != NULL) {
        PQclear(conn->result);
        conn->result = NULL;
    }
    if (conn->job != NULL) {
        struct db_job *job = conn->job;
        conn->job = NULL;
        job_finish(job, DB_UNAVAILABLE, NULL);
    }
    if (!pool_any_up(pool)) {
        while (pool->wait_head != NULL) {
            struct db_job *job = pool->wait_head;
            pool->wait_head = job->next;
            pool->waiting--;
            job_finish(job, DB_UNAVAILABLE, NULL);
        }
        pool->wait_tail = NULL;
    }
    conn_schedule_reconnect(conn);
}

static void conn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *conn = arg;
    conn->pool->reconnects++;
    conn_connect(conn);
}

static void conn_ready(struct db_conn *conn)
{
    if (PQsetnonblocking(conn->pg, 1) != 0) {
        conn_broken(conn, "cannot make the connection non-blocking");
        return;
    }
    if (conn->backoff_ms > RECONNECT_MIN_MS || conn->pool->reconnects > 0)
        log_info("database connection %u is up", conn->index);
    conn->backoff_ms = RECONNECT_MIN_MS;
    conn->state = CONN_IDLE;
    if (conn->listener) {
        /* Its LISTEN's answer is drained like any input on an idle connection. Whatever was
         * notified while it was down is lost: the caller hears "look again" now. */
        if (!PQsendQuery(conn->pg, conn->pool->listen_sql)) {
            conn_broken(conn, "cannot send LISTEN");
            return;
        }
        conn_flush(conn);
        if (conn->state == CONN_IDLE)
            notify_all(conn->pool);
        return;
    }
    /* Watch an idle socket too, so a server that goes away is noticed before the next query. */
    conn_watch(conn, EV_READ | EV_PERSIST, NULL);
    pool_dispatch(conn->pool);
}

static void conn_continue_connect(struct db_conn *conn)
{
    static const struct timeval timeout = {CONNECT_TIMEOUT_S, 0};
    switch (PQconnectPoll(conn->pg)) {
    case PGRES_POLLING_READING:
        conn_watch(conn, EV_READ, &timeout);
        break;
    case PGRES_POLLING_WRITING:
        conn_watch(conn, EV_WRITE, &timeout);
        break;
    case PGRES_POLLING_OK:
        conn_ready(conn);
        break;
    default: {
        char why[256];
        const char *msg = PQerrorMessage(conn->pg);
        log_sanitize(msg, strcspn(msg, "\n"), why, sizeof(why));
        conn_broken(conn, why);
        break;
    }
    }
}

void db_log_notices(PGconn *pg)
{
    PQsetNoticeReceiver(pg, db_notice_received, NULL);
}

static void conn_connect(struct db_conn *conn)
{
    conn->prepared_count = 0;
    conn->preparing = false;
    conn->pg = PQconnectStartParams(conn->pool->keywords, conn->pool->values, 0);
    if (conn->pg != NULL)
        db_log_notices(conn->pg);
    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
        conn->state = CONN_CONNECTING;
        conn_broken(conn, conn->pg ? PQerrorMessage(conn->pg) : "out of memory");
        return;
    }
    conn->state = CONN_CONNECTING;
    /* libpq's rule: after PQconnectStart, wait until the socket is writable. */
    conn_watch(conn, EV_WRITE, NULL);
}

/* PostgreSQL's severities, in the level vouchd logs them at: a NOTICE or INFO (RAISE NOTICE,
 * "... does not exist, skipping") at info, a WARNING at warn, DEBUG and LOG at debug. */
static enum log_level notice_level(const char *severity)
{
    if (severity == NULL)
        return LOG_INFO;
    if (strcmp(severity, "WARNING") == 0)
        return LOG_WARN;
    if (strncmp(severity, "DEBUG", 5) == 0 || strcmp(severity, "LOG") == 0)
        return LOG_DEBUG;
    return LOG_INFO;
}

void db_notice_received(void *arg, const PGresult *res)
{
    (void)arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    enum log_level level = notice_level(severity);
    if (!log_enabled(level))
        return;
    char msg[512], more[512];
    log_sanitize(primary ? primary : "", primary ? strlen(primary) : 0, msg, sizeof(msg));
    log_sanitize(detail ? detail : "", detail ? strlen(detail) : 0, more, sizeof(more));
    log_write(level, "database %s: %s%s%s%s", severity ? severity : "NOTICE", msg,
              detail ? " (" : "", detail ? more : "", detail ? ")" : "");
}

static enum db_outcome classify_error(const PGresult *res)
{
    const char *state = db_sqlstate(res);
    /* Connection exceptions, shutdown, lack of resources, and transaction conflicts are
     * conditions a retry can cure: the device is told 503 and comes back. */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strncmp(state, "53", 2) == 0 || strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return DB_UNAVAILABLE;
    return DB_QUERY_ERROR;
}

static void conn_finish_job(struct db_conn *conn)
{
    struct db_job *job = conn->job;
    PGresult *res = conn->result;
    conn->job = NULL;
    conn->result = NULL;
    conn->state = CONN_IDLE;

    enum db_outcome outcome = DB_OK;
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        outcome = res ? classify_error(res) : DB_UNAVAILABLE;
        if (outcome == DB_QUERY_ERROR) {
            char msg[512];
            const char *text = res ? PQresultErrorMessage(res) : "";
            log_error("database query failed: %s",
                      log_sanitize(text, strcspn(text, "\n"), msg, sizeof(msg)));
        }
    }
    job_finish(job, outcome, res);
    PQclear(res);
}

static void conn_read(struct db_conn *conn)
{
    if (!PQconsumeInput(conn->pg)) {
        conn_broken(conn, "lost the connection to the database");
        return;
    }
    if (conn->state != CONN_BUSY) {
        /* Input on an idle connection: a notice, or the server saying goodbye. */
        PGresult *res;
        while (!PQisBusy(conn->pg) && (res = PQgetResult(conn->pg)) != NULL)
            PQclear(res);
        if (PQstatus(conn->pg) != CONNECTION_OK) {
            conn_broken(conn, "the database closed the connection");
            return;
        }
        /* Several notifications of one channel in one read wake its owner once. */
        bool notified[DB_MAX_CHANNELS] = {false};
        struct db_pool *pool = conn->pool;
        PGnotify *n;
        while ((n = PQnotifies(conn->pg)) != NULL) {
            for (unsigned i = 0; i < pool->channel_count; i++)
                notified[i] = notified[i] || strcmp(n->relname, pool->channels[i].name) == 0;
            PQfreemem(n);
        }
        for (unsigned i = 0; i < pool->channel_count && conn->listener; i++) {
            if (notified[i])
                pool->channels[i].cb(pool->channels[i].arg);
        }
        return;
    }
    while (!PQisBusy(conn->pg)) {
        PGresult *res = PQgetResult(conn->pg);
        if (res == NULL) {
            if (conn->preparing && conn_prepared(conn))
                return; /* the job itself is on its way now */
            conn_finish_job(conn);
            pool_dispatch(conn->pool);
            return;
        }
        /* One statement per job: keep the last result (an error, if there was one). */
        if (conn->result != NULL && PQresultStatus(conn->result) == PGRES_FATAL_ERROR)
            PQclear(res);
        else {
            PQclear(conn->result);
            conn->result = res;
        }
    }
    if (PQstatus(conn->pg) != CONNECTION_OK)
        conn_broken(conn, "lost the connection to the database");
}

static void conn_flush(struct db_conn *conn)
{
    int r = PQflush(conn->pg);
    if (r < 0)
        conn_broken(conn, "cannot send to the database");
    else
        conn_watch(conn, (short)(EV_READ | EV_PERSIST | (r == 1 ? EV_WRITE : 0)), NULL);
}

static void conn_io(struct db_conn *conn, short what)
{
    if (conn->state == CONN_CONNECTING) {
        if (what & EV_TIMEOUT)
            conn_broken(conn, "timed out connecting to the database");
        else
            conn_continue_connect(conn);
        return;
    }
    if (what & EV_WRITE) {
        conn_flush(conn);
        if (conn->state == CONN_DOWN)
            return;
    }
    if (what & EV_READ)
        conn_read(conn);
}

/* What the connection reads for a job (notices included) belongs to the job's request. */
static void conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *conn = arg;
    if (conn->job == NULL)
        conn_io(conn, what);
    else
        WITH_REQUEST_ID_OF(conn->job, conn_io(conn, what));
}

static int prepared_index(const struct db_conn *conn, const char *sql)
{
    for (unsigned i = 0; i < conn->prepared_count; i++) {
        if (conn->prepared[i] == sql)
            return (int)i;
    }
    return -1;
}

/* Sends the job as the prepared statement i. */
static void conn_send_prepared(struct db_conn *conn, int i)
{
    struct db_job *job = conn->job;
    char name[16];
    snprintf(name, sizeof(name), "v%d", i);
    if (!PQsendQueryPrepared(conn->pg, name, job->nparams, job->values, job->lengths, job->formats,
                             job->binary_results ? 1 : 0)) {
        conn_broken(conn, "cannot send a query to the database");
        return;
    }
    conn_flush(conn);
}

/* The statement of the job is prepared (or failed to be: then the job ends with that error).
 * Returns true when the job was sent. */
static bool conn_prepared(struct db_conn *conn)
{
    conn->preparing = false;
    if (conn->result == NULL || PQresultStatus(conn->result) != PGRES_COMMAND_OK)
        return false;
    PQclear(conn->result);
    conn->result = NULL;
    conn->prepared[conn->prepared_count] = conn->job->sql;
    conn_send_prepared(conn, (int)conn->prepared_count++);
    return true;
}

static void conn_send(struct db_conn *conn, struct db_job *job)
{
    conn->job = job;
    conn->state = CONN_BUSY;
    conn->pool->queries++;
    int i = prepared_index(conn, job->sql);
    if (i >= 0) {
        conn_send_prepared(conn, i);
        return;
    }
    bool sent;
    if (conn->prepared_count < MAX_PREPARED) {
        char name[16];
        snprintf(name, sizeof(name), "v%u", conn->prepared_count);
        conn->preparing = true;
        sent = PQsendPrepare(conn->pg, name, job->sql, job->nparams, NULL);
    } else {
        sent = PQsendQueryParams(conn->pg, job->sql, job->nparams, NULL, job->values, job->lengths,
                                 job->formats, job->binary_results ? 1 : 0);
    }
    if (!sent) {
        conn_broken(conn, "cannot send a query to the database");
        return;
    }
    conn_flush(conn);
}

static void pool_dispatch(struct db_pool *pool)
{
    for (unsigned i = 0; i < pool->size && pool->wait_head != NULL; i++) {
        struct db_conn *conn = &pool->conns[i];
        if (conn->state != CONN_IDLE)
            continue;
        struct db_job *job = pool->wait_head;
        pool->wait_head = job->next;
        if (pool->wait_head == NULL)
            pool->wait_tail = NULL;
        pool->waiting--;
        job->next = NULL;
        conn_send(conn, job);
    }
}

void db_query(struct db_pool *pool, const char *sql, const struct db_param *params, int nparams,
              bool binary_results, db_result_fn *cb, void *arg)
{
    /* One allocation holds the job, its parameter arrays and copies of the values. */
    size_t bytes = sizeof(struct db_job) + (size_t)nparams * (sizeof(char *) + 2 * sizeof(int));
    for (int i = 0; i < nparams; i++)
        bytes += params[i].data ? (size_t)params[i].len + 1 : 0;
    struct db_job *job = calloc(1, bytes);
    if (job == NULL)
        log_fatal("out of memory");
    job->pool = pool;
    job->sql = sql;
    job->nparams = nparams;
    job->binary_results = binary_results;
    job->cb = cb;
    job->arg = arg;
    clock_gettime(CLOCK_MONOTONIC, &job->queued_at);
    snprintf(job->request_id, sizeof(job->request_id), "%s", log_get0_request_id());
    char *p = (char *)(job + 1);
    job->values = (const char **)(void *)p;
    p += (size_t)nparams * sizeof(char *);
    job->lengths = (int *)(void *)p;
    p += (size_t)nparams * sizeof(int);
    job->formats = (int *)(void *)p;
    p += (size_t)nparams * sizeof(int);
    for (int i = 0; i < nparams; i++) {
        job->lengths[i] = params[i].len;
        job->formats[i] = params[i].binary ? 1 : 0;
        if (params[i].data == NULL) {
            job->values[i] = NULL;
            continue;
        }
        memcpy(p, params[i].data, (size_t)params[i].len);
        p[params[i].len] = '\0';
        job->values[i] = p;
        p += params[i].len + 1;
    }

    if (!pool_any_up(pool)) {
        job_fail_later(job, DB_UNAVAILABLE);
        return;
    }
    if (pool->waiting >= pool->max_waiting) {
        job_fail_later(job, DB_OVERLOADED);
        return;
    }
    if (pool->wait_tail)
        pool->wait_tail->next = job;
    else
        pool->wait_head = job;
    pool->wait_tail = job;
    pool->waiting++;
    pool_dispatch(pool);
}

/* conninfo's parameters, with "-c vouch.test_clock=on|off" after whatever options it has. */
static bool pool_set_params(struct db_pool *pool, const char *conninfo, bool test_clock)
{
    char *err = NULL;
    pool->params = PQconninfoParse(conninfo, &err);
    PQfreemem(err);
    if (pool->params == NULL)
        return false;
    size_t n = 0;
    const char *options = "";
    for (PQconninfoOption *o = pool->params; o->keyword != NULL; o++) {
        n++;
        if (strcmp(o->keyword, "options") == 0 && o->val != NULL)
            options = o->val;
    }
    size_t len = strlen(options) + 32;
    pool->options = malloc(len);
    pool->keywords = calloc(n + 2, sizeof(*pool->keywords));
    pool->values = calloc(n + 2, sizeof(*pool->values));
    if (pool->options == NULL || pool->keywords == NULL || pool->values == NULL)
        return false;
    snprintf(pool->options, len, "%s%s-c vouch.test_clock=%s", options, options[0] ? " " : "",
             test_clock ? "on" : "off");
    size_t k = 0;
    for (PQconninfoOption *o = pool->params; o->keyword != NULL; o++) {
        if (o->val == NULL || strcmp(o->keyword, "options") == 0)
            continue;
        pool->keywords[k] = o->keyword;
        pool->values[k++] = o->val;
    }
    pool->keywords[k] = "options";
    pool->values[k] = pool->options;
    return true;
}

static void pool_free_params(struct db_pool *pool)
{
    PQconninfoFree(pool->params);
    free(pool->keywords);
    free(pool->values);
    free(pool->options);
}

struct db_pool *db_pool_new(struct event_base *base, const char *conninfo, unsigned size,
                            unsigned max_waiting, bool test_clock)
{
    struct db_pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pool->base = base;
    pool->size = size;
    pool->max_waiting = max_waiting;
    pool->conns = calloc(size, sizeof(*pool->conns));
    if (!pool_set_params(pool, conninfo, test_clock) || pool->conns == NULL) {
        pool_free_params(pool);
        free(pool->conns);
        free(pool);
        return NULL;
    }
    for (unsigned i = 0; i < size; i++) {
        struct db_conn *conn = &pool->conns[i];
        conn->pool = pool;
        conn->index = i;
        conn->backoff_ms = RECONNECT_MIN_MS;
        evtimer_assign(&conn->retry, base, conn_retry_cb, conn);
        conn_connect(conn);
    }
    return pool;
}

void db_listen(struct db_pool *pool, const char *channel, db_notify_fn *cb, void *arg)
{
    if (pool->channel_count == DB_MAX_CHANNELS || strlen(channel) > DB_MAX_CHANNEL_LEN ||
        (pool->listener != NULL && pool->listener->state != CONN_CONNECTING &&
         pool->listener->state != CONN_DOWN))
        log_fatal("db_listen(%s): too many channels, or called after the loop started", channel);
    unsigned i = pool->channel_count++;
    snprintf(pool->channels[i].name, sizeof(pool->channels[i].name), "%s", channel);
    pool->channels[i].cb = cb;
    pool->channels[i].arg = arg;
    size_t used = strlen(pool->listen_sql);
    snprintf(pool->listen_sql + used, sizeof(pool->listen_sql) - used, "%sLISTEN %s",
             used ? "; " : "", channel);
    if (pool->listener != NULL)
        return; /* its connection, still being made, will LISTEN on this channel too */
    pool->listener = calloc(1, sizeof(*pool->listener));
    if (pool->listener == NULL)
        log_fatal("out of memory");
    struct db_conn *conn = pool->listener;
    conn->pool = pool;
    conn->index = pool->size;
    conn->listener = true;
    conn->backoff_ms = RECONNECT_MIN_MS;
    evtimer_assign(&conn->retry, pool->base, conn_retry_cb, conn);
    conn_connect(conn);
}

void db_pool_free(struct db_pool *pool)
{
    if (pool == NULL)
        return;
    if (pool->listener != NULL) {
        if (pool->listener->io_assigned)
            event_del(&pool->listener->io);
        evtimer_del(&pool->listener->retry);
        PQfinish(pool->listener->pg);
        free(pool->listener);
    }
    for (unsigned i = 0; i < pool->size; i++) {
        struct db_conn *conn = &pool->conns[i];
        if (conn->io_assigned)
            event_del(&conn->io);
        evtimer_del(&conn->retry);
        PQclear(conn->result);
        if (conn->job != NULL)
            job_finish(conn->job, DB_UNAVAILABLE, NULL);
        PQfinish(conn->pg);
    }
    while (pool->wait_head != NULL) {
        struct db_job *job = pool->wait_head;
        pool->wait_head = job->next;
        job_finish(job, DB_UNAVAILABLE, NULL);
    }
    free(pool->conns);
    pool_free_params(pool);
    free(pool);
}

bool db_pool_is_up(const struct db_pool *pool)
{
    return pool_any_up(pool);
}

void db_pool_get_stats(const struct db_pool *pool, struct db_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->size = pool->size;
    for (unsigned i = 0; i < pool->size; i++) {
        enum conn_state st = pool->conns[i].state;
        out->up += st == CONN_IDLE || st == CONN_BUSY;
        out->busy += st == CONN_BUSY;
    }
    out->waiting = pool->waiting;
    out->queries = pool->queries;
    out->failures = pool->failures;
    out->reconnects = pool->reconnects;
}

const struct histogram *db_pool_get0_latency(const struct db_pool *pool, enum db_outcome outcome)
{
    return &pool->latency[outcome];
}

const char *db_outcome_name(enum db_outcome outcome)
{
    static const char *const names[DB_OUTCOMES] = {"ok", "unavailable", "overloaded", "error"};
    return names[outcome];
}

const char *db_sqlstate(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state ? state : "";
}
