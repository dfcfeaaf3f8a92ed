/*
 * params: building struct db_param values (db.h) for the query modules of db/. Header-only;
 * a parameter borrows its data, which db_query() copies.
 */
#ifndef VOUCH_DB_PARAMS_H
#define VOUCH_DB_PARAMS_H

#include <stdbool.h>
#include <string.h>

#include "db.h"

/* A text parameter; NULL is SQL NULL. */
static inline struct db_param text_param(const char *s)
{
    struct db_param p = {s, s ? (int)strlen(s) : 0, false};
    return p;
}

/* A bytea parameter sent as bytes; NULL data is SQL NULL. */
static inline struct db_param bytes_param(const void *data, size_t len)
{
    struct db_param p = {data, (int)len, true};
    return p;
}

#endif
