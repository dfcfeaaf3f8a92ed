/*
 * migrate: brings the database schema up to date from the numbered migrations in db/migrations/,
 * which the build embeds in the binary.
 *
 * Runs before the event loop starts (`vouchd migrate` and vouchd's start-up), so it uses a
 * blocking libpq connection of its own. A session advisory lock makes concurrent starts safe: the
 * second instance waits, then finds nothing left to do. Each migration runs in its own
 * transaction together with its row in schema_migrations, which keeps the checksum of its text:
 * a database whose applied migrations differ from this binary's is refused, never patched.
 */
#ifndef VOUCH_MIGRATE_H
#define VOUCH_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

struct migration {
    int version;
    const char *name;
    const char *checksum; /* SHA-256 of sql, hex */
    const char *sql;
};

extern const struct migration migrations[];
extern const size_t migration_count;

/* Applies every migration newer than the database's. On success sets *applied to how many ran. */
bool migrate_database(const char *conninfo, int *applied, char *err, size_t err_size)
    __attribute__((warn_unused_result));

#endif
