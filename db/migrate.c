#include "migrate.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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
    const char *params[] = {version, m->name};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                 2, NULL, params, NULL, NULL, 0);
    bool inserted = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!inserted)
        snprintf(err, err_size, "%s", PQresultErrorMessage(res));
    PQclear(res);
    if (inserted && exec_ok(conn, "COMMIT", err, err_size))
        return true;

rollback:;
    char ignored[8];
    (void)exec_ok(conn, "ROLLBACK", ignored, sizeof(ignored));
    return false;
}

bool migrate_database(const char *conninfo, int *applied, char *err, size_t err_size)
{
    *applied = 0;
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, err_size, "cannot connect to the database: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return false;
    }
    bool ok = exec_ok(conn, "SET client_min_messages = warning", err, err_size) &&
              exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, err_size) &&
              exec_ok(conn,
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      " version integer PRIMARY KEY, name text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now())",
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
    /* Closing the session releases the advisory lock, also after an error. */
    PQfinish(conn);
    return ok;
}
