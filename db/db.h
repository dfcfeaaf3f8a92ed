/*
 * db: a small pool of non-blocking PostgreSQL connections driven by vouchd's libevent loop.
 *
 * Each connection is a state machine (down, connecting, idle, busy) whose socket is watched by
 * an event embedded in it; a query is sent as a prepared statement (each SQL text is prepared
 * once per connection, the first time it is used there) and its result read when libevent says
 * the socket is readable, so nothing here blocks the loop. Queries wait in one
 * FIFO in front of the pool, bounded by max_waiting. A connection that breaks is reconnected by
 * itself with backoff; while no connection is up, queries fail at once with DB_UNAVAILABLE, which
 * the HTTP layer turns into 503 so devices retry.
 *
 * A query notes lib/log's current request id when it is sent and makes it current again while
 * its answer is read and its callback runs, so what is logged for a request carries its id
 * however many queries away from the handler.
 *
 * The pool owns its connections and the jobs waiting in it; a caller owns nothing after
 * db_query() returns. The callback runs exactly once, always from the event loop and never from
 * inside db_query(); the PGresult it gets is borrowed and freed after the callback returns.
 */
#ifndef VOUCH_DB_H
#define VOUCH_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct db_pool;
struct histogram;

enum db_outcome {
    DB_OK = 0,
    DB_UNAVAILABLE, /* no connection, or it broke: the caller may retry later (503) */
    DB_OVERLOADED,  /* too many queries waiting (503) */
    DB_QUERY_ERROR, /* PostgreSQL refused the query: res holds the error */
};
#define DB_OUTCOMES 4

/* One query parameter: data == NULL is SQL NULL; binary parameters (bytea) are sent as bytes,
 * text ones as a string of len bytes. */
struct db_param {
    const void *data;
    int len;
    bool binary;
};

typedef void db_result_fn(void *arg, enum db_outcome outcome, const PGresult *res);

struct db_pool_stats {
    unsigned size;
    unsigned up; /* idle or busy */
    unsigned busy;
    unsigned waiting; /* queries queued in front of the pool */
    uint64_t queries;
    uint64_t failures; /* queries that ended in DB_UNAVAILABLE or DB_QUERY_ERROR */
    uint64_t reconnects;
};

/* A pool of size sessions on conninfo. Every session says whether it lives by the test clock
 * (vouch.test_clock, see vouch_now() in db/functions/10_clock.sql): off, the database's
 * real time, whatever its settings or vouch_clock say. NULL when conninfo does not parse. */
struct db_pool *db_pool_new(struct event_base *base, const char *conninfo, unsigned size,
                            unsigned max_waiting, bool test_clock);
void db_pool_free(struct db_pool *pool);

bool db_pool_is_up(const struct db_pool *pool);
void db_pool_get_stats(const struct db_pool *pool, struct db_pool_stats *out);

/* Sends sql (a static string from db/queries.c) with its parameters, copied here. Results come
 * in binary format when binary_results (bytea as raw bytes), else as text. */
void db_query(struct db_pool *pool, const char *sql, const struct db_param *params, int nparams,
              bool binary_results, db_result_fn *cb, void *arg);

/* Keeps one more connection that LISTENs on channel (an SQL identifier) and calls cb from the
 * loop when notifications arrive on it, and each time that connection comes up (what was
 * notified while it was down is lost, so the owner should look again). Call before the loop
 * runs, once per channel (at most DB_MAX_CHANNELS). */
#define DB_MAX_CHANNELS 4
#define DB_MAX_CHANNEL_LEN 63
typedef void db_notify_fn(void *arg);
void db_listen(struct db_pool *pool, const char *channel, db_notify_fn *cb, void *arg);

/* How long queries took, from db_query() to their callback (waiting in the pool included), by
 * how they ended: vouch_db_query_duration_seconds{outcome=db_outcome_name()}. */
const struct histogram *db_pool_get0_latency(const struct db_pool *pool, enum db_outcome outcome);
/* "ok", "unavailable", "overloaded" or "error". */
const char *db_outcome_name(enum db_outcome outcome);

/* Folds PostgreSQL's notices and warnings on pg into vouchd's log (at info, warn or debug by
 * their severity), instead of libpq's default print to stderr. The pool's connections have it;
 * db/migrate.c's too. db_notice_received is the receiver (a PQnoticeReceiver). */
void db_log_notices(PGconn *pg);
void db_notice_received(void *arg, const PGresult *res);

/* The SQLSTATE of an error result, or "" */
const char *db_sqlstate(const PGresult *res);

#endif
