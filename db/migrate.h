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

/* db/functions/NN_name.sql: every function, CREATE OR REPLACE, in the order of their numbers. */
struct schema_functions {
    const char *name;
    const char *sql;
};

extern const struct schema_functions schema_functions[];
extern const size_t schema_function_file_count;

/* Applies every migration newer than the database's, then (re)creates every function, all in
 * one transaction, however many times it runs. On success sets *applied to how many migrations
 * ran. */
bool migrate_database(const char *conninfo, int *applied, char *err, size_t err_size)
    __attribute__((warn_unused_result));

/* What an instance's configuration says that every instance must follow, stored at start before
 * anything is served (the last instance to start wins): the attestation policy (seconds, see
 * vouch_plan_attestation) and the web-hook receivers with the topics they take. */
struct db_settings {
    unsigned long long max_age, min_interval, mean_interval, info_interval, rate_limit,
        retry_limit, retry_delay;
    const char *const *webhook_urls;
    size_t webhook_url_count;
    /* Per receiver (webhook_urls[i]): its topics, separated by commas; NULL: every topic. */
    const char *const *webhook_topic_lists;
};
bool migrate_store_settings(const char *conninfo, const struct db_settings *settings, char *err,
                            size_t err_size) __attribute__((warn_unused_result));

/* The test clock (vouch_now()): reads whether the database's owner lets sessions live by it
 * (the database's own vouch.test_clock) and how far vouch_clock moves it (*skew_s). With
 * test_clock (vouchd's configuration asks for it) and no such permission: false, with a message
 * saying what the owner must do. */
bool migrate_check_clock(const char *conninfo, bool test_clock, double *skew_s, char *err,
                         size_t err_size) __attribute__((warn_unused_result));

#endif
