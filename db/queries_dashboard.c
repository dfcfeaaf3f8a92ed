#include "queries_dashboard.h"

#include <stdio.h>

#include "params.h"

static const char sql_fleet_summary[] =
    "SELECT vouch_fleet_summary($1, CASE WHEN $2::bigint = 0 THEN NULL "
    "ELSE to_timestamp($2::bigint) END, $3::integer)";

static const char sql_fleet_devices[] =
    "SELECT vouch_fleet_devices($1, $2, $3, $4::boolean, $5::integer, $6::integer)";

void db_fleet_summary(struct db_pool *pool, const char *apns, time_t certificate_not_after,
                      unsigned os_top, db_result_fn *cb, void *arg)
{
    char not_after[24], top[16];
    snprintf(not_after, sizeof(not_after), "%lld", (long long)certificate_not_after);
    snprintf(top, sizeof(top), "%u", os_top);
    const struct db_param params[] = {text_param(apns), text_param(not_after), text_param(top)};
    db_query(pool, sql_fleet_summary, params, 3, false, cb, arg);
}

void db_fleet_devices(struct db_pool *pool, const struct db_fleet_page *page, db_result_fn *cb,
                      void *arg)
{
    char offset[16], limit[16];
    snprintf(offset, sizeof(offset), "%u", page->offset);
    snprintf(limit, sizeof(limit), "%u", page->limit);
    const struct db_param params[] = {
        text_param(page->q),    text_param(page->attestation),
        text_param(page->sort), text_param(page->descending ? "true" : "false"),
        text_param(offset),     text_param(limit)};
    db_query(pool, sql_fleet_devices, params, 6, false, cb, arg);
}
