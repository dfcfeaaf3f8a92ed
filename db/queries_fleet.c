#include "queries_fleet.h"

#include <stdlib.h>
#include <string.h>

const char *const db_attestation_statuses[DB_ATTESTATION_STATUSES] = {"none", "verified", "failed",
                                                                      "unsupported", "expired"};

static const char sql_devices_by_attestation[] =
    "SELECT status, devices FROM vouch_devices_by_attestation()";

void db_devices_by_attestation(struct db_pool *pool, db_result_fn *cb, void *arg)
{
    db_query(pool, sql_devices_by_attestation, NULL, 0, false, cb, arg);
}

static bool parse_count(const char *text, int64_t *out)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 0)
        return false;
    *out = v;
    return true;
}

bool db_decode_attestation_counts(const PGresult *res, struct db_attestation_counts *out)
{
    memset(out, 0, sizeof(*out));
    if (PQnfields(res) != 2)
        return false;
    for (int row = 0; row < PQntuples(res); row++) {
        const char *status = PQgetvalue(res, row, 0);
        int64_t *slot = strcmp(status, "pending") == 0 ? &out->pending : NULL;
        for (size_t i = 0; slot == NULL && i < DB_ATTESTATION_STATUSES; i++) {
            if (strcmp(status, db_attestation_statuses[i]) == 0)
                slot = &out->by_status[i];
        }
        if (slot == NULL || !parse_count(PQgetvalue(res, row, 1), slot))
            return false;
    }
    return true;
}
