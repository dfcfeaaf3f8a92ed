#include "migrate.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "queries.h"

/* pg_advisory_lock key: "vouch" in ASCII. */
#define MIGRATE_LOCK_KEY "508806604904"

static bool exec_ok(PGconn *conn, const char *sql, char *err, size_t err_size)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, err_size, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

static bool exec_params_ok(PGconn *conn, const char *sql, int n, const char *const *params,
                           const char *what, char *err, size_t err_size)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, err_size, "%s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

static bool current_version(PGconn *conn, int *version, char *err, size_t err_size)
{
    PGresult *res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok)
        *version = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    else
        snprintf(err, err_size, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

static bool apply_one(PGconn *conn, const struct migration *m, char *err, size_t err_size)
{
    if (!exec_ok(conn, "BEGIN", err, err_size))
        return false;
    if (!exec_ok(conn, m->sql, err, err_size))
        goto rollback;

    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name, m->checksum};
    if (exec_params_ok(conn,
                       "INSERT INTO schema_migrations (version, name, checksum)"
                       " VALUES ($1, $2, $3)",
                       3, params, "recording it", err, err_size) &&
        exec_ok(conn, "COMMIT", err, err_size))
        return true;

rollback:;
    char ignored[8];
    (void)exec_ok(conn, "ROLLBACK", ignored, sizeof(ignored));
    return false;
}

/* The functions are code: every start makes them what this binary says, in one transaction. */
static bool apply_functions(PGconn *conn, char *err, size_t err_size)
{
    if (!exec_ok(conn, "BEGIN", err, err_size))
        return false;
    for (size_t i = 0; i < schema_function_file_count; i++) {
        if (!exec_ok(conn, schema_functions[i].sql, err, err_size)) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", err);
            snprintf(err, err_size, "functions %s: %s", schema_functions[i].name, msg);
            char ignored[8];
            (void)exec_ok(conn, "ROLLBACK", ignored, sizeof(ignored));
            return false;
        }
    }
    return exec_ok(conn, "COMMIT", err, err_size);
}

/* The migrations the database applied must be this binary's, text for text. */
static bool check_applied(PGconn *conn, int version, char *err, size_t err_size)
{
    PGresult *res = PQexec(conn, "SELECT version, coalesce(checksum, '') FROM schema_migrations"
                                 " ORDER BY version");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, err_size, "%s", PQresultErrorMessage(res));
    for (int row = 0; ok && row < PQntuples(res); row++) {
        long v = strtol(PQgetvalue(res, row, 0), NULL, 10);
        if (v < 1 || v > version || (size_t)v > migration_count)
            continue;
        const struct migration *m = &migrations[v - 1];
        if (strcmp(PQgetvalue(res, row, 1), m->checksum) != 0) {
            snprintf(err, err_size,
                     "the database applied another text of migration %04d_%s than this vouchd "
                     "carries (a pre-release schema?): recreate the database, or run the vouchd "
                     "that created it",
                     m->version, m->name);
            ok = false;
        }
    }
    PQclear(res);
    return ok;
}

/* A blocking session of its own (start-up only, before the event loop), or NULL with why. */
static PGconn *connect_blocking(const char *conninfo, char *err, size_t err_size)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) == CONNECTION_OK) {
        db_log_notices(conn);
        return conn;
    }
    snprintf(err, err_size, "cannot connect to the database: %s", PQerrorMessage(conn));
    PQfinish(conn);
    return NULL;
}

bool migrate_database(const char *conninfo, int *applied, char *err, size_t err_size)
{
    *applied = 0;
    PGconn *conn = connect_blocking(conninfo, err, err_size);
    if (conn == NULL)
        return false;
    bool ok = exec_ok(conn, "SET client_min_messages = warning", err, err_size) &&
              exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, err_size) &&
              exec_ok(conn,
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      " version integer PRIMARY KEY, name text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now(), checksum text)",
                      err, err_size) &&
              exec_ok(conn, "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text",
                      err, err_size);
    int version = 0;
    if (ok)
        ok = current_version(conn, &version, err, err_size);
    if (ok && version > (int)migration_count) {
        snprintf(err, err_size,
                 "the database is at schema version %d, newer than this vouchd knows (%zu)",
                 version, migration_count);
        ok = false;
    }
    if (ok)
        ok = check_applied(conn, version, err, err_size);
    for (size_t i = 0; ok && i < migration_count; i++) {
        const struct migration *m = &migrations[i];
        if (m->version <= version)
            continue;
        if (!apply_one(conn, m, err, err_size)) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", err);
            snprintf(err, err_size, "migration %04d_%s failed: %s", m->version, m->name, msg);
            ok = false;
            break;
        }
        log_info("applied migration %04d_%s", m->version, m->name);
        (*applied)++;
    }
    if (ok)
        ok = apply_functions(conn, err, err_size);
    /* Closing the session releases the advisory lock, also after an error. */
    PQfinish(conn);
    return ok;
}

bool migrate_check_clock(const char *conninfo, bool test_clock, double *skew_s, char *err,
                         size_t err_size)
{
    *skew_s = 0;
    PGconn *conn = connect_blocking(conninfo, err, err_size);
    if (conn == NULL)
        return false;
    /* This session sets nothing itself: what it sees is the database's (and role's) setting. */
    PGresult *res = PQexec(conn, "SELECT coalesce(current_setting('vouch.test_clock', true), ''),"
                                 " extract(epoch FROM skew)::double precision, current_database()"
                                 " FROM vouch_clock");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (!ok) {
        snprintf(err, err_size, "reading the clock: %s", PQresultErrorMessage(res));
    } else {
        bool allowed = strcmp(PQgetvalue(res, 0, 0), "on") == 0;
        *skew_s = strtod(PQgetvalue(res, 0, 1), NULL);
        if (test_clock && !allowed) {
            snprintf(err, err_size,
                     "test_clock = true, but the database does not allow a test clock: its owner "
                     "must run ALTER DATABASE \"%s\" SET vouch.test_clock = on (never in "
                     "production)",
                     PQgetvalue(res, 0, 2));
            ok = false;
        }
    }
    PQclear(res);
    PQfinish(conn);
    return ok;
}

bool migrate_store_settings(const char *conninfo, const struct db_settings *s, char *err,
                            size_t err_size)
{
    PGconn *conn = connect_blocking(conninfo, err, err_size);
    if (conn == NULL)
        return false;
    char v[7][24];
    const unsigned long long values[7] = {s->max_age,    s->min_interval, s->mean_interval,
                                          s->info_interval, s->rate_limit,  s->retry_limit,
                                          s->retry_delay};
    const char *policy[7];
    for (size_t i = 0; i < 7; i++) {
        snprintf(v[i], sizeof(v[i]), "%llu", values[i]);
        policy[i] = v[i];
    }
    char *urls = db_text_array_literal(s->webhook_urls, s->webhook_url_count);
    char *topics = db_text_array_literal(s->webhook_topic_lists, s->webhook_url_count);
    const char *hooks[2] = {urls, topics};
    bool ok = exec_params_ok(conn,
                             "SELECT vouch_set_policy(make_interval(secs => $1::bigint),"
                             " make_interval(secs => $2::bigint),"
                             " make_interval(secs => $3::bigint),"
                             " make_interval(secs => $4::bigint), $5::integer, $6::integer,"
                             " make_interval(secs => $7::bigint))",
                             7, policy, "storing the attestation policy", err, err_size) &&
              exec_params_ok(conn, "SELECT vouch_set_webhook_receivers($1::text[], $2::text[])", 2,
                             hooks, "storing the web-hook receivers", err, err_size);
    free(urls);
    free(topics);
    PQfinish(conn);
    return ok;
}
