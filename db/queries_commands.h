/*
 * queries_commands: the statements behind the admin API's command answers and cancelling
 * (db/functions/65_command_answers.sql; server/operator/command_answers.c).
 *
 * Results come in binary format, every column text but the report (the XML plist the device
 * sent, or the binary plist of an attestation answer stored without its certificates, as
 * bytes) and the chain of the attestation it carried; db_decode_command_row() lends
 * out a row's values, valid while the PGresult lives. Strings passed in are copied by db_query();
 * NULL strings are SQL NULL.
 */
#ifndef VOUCH_QUERIES_COMMANDS_H
#define VOUCH_QUERIES_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queries.h"

/* One device's answer to one command: no row when the device has no such command. */
void db_command_answer(struct db_pool *pool, const char *udid, const char *command_uuid,
                       db_result_fn *cb, void *arg);

/* A command on every device: no row for an unknown command; else a first row with udid NULL
 * (request_type, created_at, truncated), then up to limit devices by UDID, cut short once their
 * reports pass max_report_bytes in all (the first device always comes). */
void db_command_answers(struct db_pool *pool, const char *command_uuid, unsigned limit,
                        uint64_t max_report_bytes, db_result_fn *cb, void *arg);

/* A row of either: NULL for SQL NULL (status NULL only in the header row). */
struct db_command_row {
    const char *udid, *command_uuid, *request_type, *status, *queued_at, *result_at;
    const char *not_now_count; /* decimal text */
    const uint8_t *report;     /* NULL while queued */
    size_t report_len;
    /* The certificates of the attestation the answer carried, each a 4-byte big-endian length
     * and its DER (vouch_answer_chain); NULL when none. A report stored without them has its
     * DevicePropertiesAttestation left an empty array: they go there. */
    const uint8_t *chain;
    size_t chain_len;
    const char *created_at; /* db_command_answers' first row */
    bool truncated;         /* db_command_answers' first row */
};
bool db_decode_command_row(const PGresult *res, int row, struct db_command_row *out)
    __attribute__((warn_unused_result));

/* Takes a queued command off a device's queue; text: "canceled", "answered" (too late) or
 * "unknown". actor (the token's name) goes into the command.canceled event. */
void db_command_cancel(struct db_pool *pool, const char *udid, const char *command_uuid,
                       const char *actor, db_result_fn *cb, void *arg);
/* Takes a command off every queue; text: the number of devices, or NULL (unknown command). */
void db_command_cancel_all(struct db_pool *pool, const char *command_uuid, const char *actor,
                           db_result_fn *cb, void *arg);

#endif
