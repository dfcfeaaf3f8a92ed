/*
 * queries: every SQL statement vouchd sends while serving, with typed wrappers that build the
 * parameters and typed decoders for the results. All SQL is parameterized; the MDM state
 * changes live in server-side functions (db/migrations/), so one device request is one
 * statement, one round trip and one transaction.
 *
 * Strings passed in are copied by db_query(); results decoded here borrow from the PGresult
 * handed to the callback and are valid only until it returns.
 */
#ifndef VOUCH_QUERIES_H
#define VOUCH_QUERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define DB_CERT_HASH_LEN 32

/* A PostgreSQL text[] literal, {"a","b"} with quotes and backslashes escaped, a NULL item as
 * SQL NULL (for parameters: one array instead of one statement per item). Never NULL; the
 * caller frees it. */
char *db_text_array_literal(const char *const *items, size_t count);
/* items[0..count) (lens[i] bytes each; NULL is SQL NULL) as a one-dimensional array in
 * PostgreSQL's binary format, of element type element_oid (25 text, 17 bytea): a binary
 * parameter for a $n::text[] or $n::bytea[]. Returns a malloc'd buffer of *len bytes. */
uint8_t *db_binary_array(uint32_t element_oid, const void *const *items, const size_t *lens,
                         size_t count, size_t *len);

/* What a device-request function decided. */
enum db_verdict {
    DB_VERDICT_OK = 0,
    DB_VERDICT_UNKNOWN_DEVICE,       /* no enrollment for this UDID */
    DB_VERDICT_IDENTITY_MISMATCH,    /* the certificate is not the one bound to this UDID */
    DB_VERDICT_CERT_BOUND_ELSEWHERE, /* the certificate speaks for another device */
    DB_VERDICT_NOT_ENROLLED,         /* checked out, or no TokenUpdate yet */
    DB_VERDICT_BAD_RESULT,           /* the database answered something unexpected */
    DB_VERDICT_OK_QUEUED,            /* ok, and a command was queued: push the device */
    DB_VERDICT_REENROLL_REFUSED,     /* a new certificate for an enrolled device (reenroll =
                                        refuse) that no operator allowed */
    DB_VERDICT_IDENTITY_REVOKED,     /* an identity certificate Vouch issued and then revoked */
};

const char *db_verdict_name(enum db_verdict verdict);

/* What Authenticate tells about the device; NULL fields are unknown. */
struct db_device_facts {
    const char *udid;
    const char *topic;
    const char *serial_number;
    const char *model;
    const char *model_name;
    const char *product_name;
    const char *os_version;
    const char *build_version;
    const char *device_name;
    const char *imei;
    const char *meid;
    const uint8_t *raw; /* the message as received (for the mdm.* web-hook events) */
    size_t raw_len;
    bool reenroll_refuse; /* reenroll = refuse: a new certificate for an enrolled device needs
                             an operator's allowance */
    const char *url_params; /* JSON object of the request URL's query (mdm_url_params_json), or
                               NULL: the web-hook event's url_params */
};

/* The identity certificate a request was verified with. */
struct db_cert {
    uint8_t sha256[DB_CERT_HASH_LEN];
    const char *not_after; /* RFC 3339, may be NULL */
};

void db_authenticate(struct db_pool *pool, const struct db_device_facts *facts,
                     const struct db_cert *cert, db_result_fn *cb, void *arg);
/* An attestation request vouchd made (command_new_attestation): a DeviceInformation command's
 * UUID and the fresh nonce it carries. Its body is not sent: vouchd builds it from these two when
 * the device fetches it. */
struct db_attest_request {
    const char *command_uuid;
    const uint8_t *nonce;
    size_t nonce_len;
};

/* attest (may be NULL) is queued if this is the enrollment's first TokenUpdate. */
void db_token_update(struct db_pool *pool, const char *udid, const struct db_cert *cert,
                     const char *topic, const uint8_t *token, size_t token_len,
                     const char *push_magic, const uint8_t *unlock_token,
                     size_t unlock_token_len, int awaiting_configuration /* -1: absent */,
                     const struct db_attest_request *attest, const uint8_t *raw,
                     size_t raw_len, const char *url_params, db_result_fn *cb, void *arg);
void db_checkout(struct db_pool *pool, const char *udid, const struct db_cert *cert,
                 const uint8_t *raw, size_t raw_len, const char *url_params, db_result_fn *cb,
                 void *arg);
/* A check-in type vouchd does not serve (its MessageType, a static name): the identity check,
 * and the mdm.<MessageType> web-hook event for an enrolled device. */
void db_unsupported_checkin(struct db_pool *pool, const char *udid, const struct db_cert *cert,
                            const char *message_type, const uint8_t *raw, size_t raw_len,
                            const char *url_params, db_result_fn *cb, void *arg);
/* Decodes the answer of the four above. */
enum db_verdict db_decode_verdict(const PGresult *res);

/* A report's body: as the device sent it, and (stored != NULL) as command_results keeps it
 * once its verdict is recorded, without the attestation's certificates. */
struct db_report_body {
    const uint8_t *report;
    size_t report_len;
    const uint8_t *stored; /* NULL: the report itself */
    size_t stored_len;
    /* An attestation answer the attestation row can give back whole: its packed shape
     * (command_answer_shape_pack); NULL: none. */
    const char *answer;
    const char *url_params; /* JSON object of the request URL's query, or NULL */
};

/* A command report. verdict_json is NULL on the first call; when the report answers a pending
 * attestation request, that call writes nothing and returns attestation_context, and the caller
 * calls again with the verdict (see vouch_report in db/functions/50_commands.sql). */
void db_report(struct db_pool *pool, const char *udid, const struct db_cert *cert,
               const char *status, const char *command_uuid, const struct db_report_body *body,
               const char *os_version, const char *build_version, const char *verdict_json,
               db_result_fn *cb, void *arg);
struct db_report_outcome {
    enum db_verdict verdict;
    bool attestation_context; /* verify, then call again with the verdict */
    bool result_stored;   /* false for a repeated report */
    const char *next_command_uuid; /* NULL: nothing queued */
    const uint8_t *next_body;      /* NULL with next_nonce: an attestation request */
    size_t next_body_len;
    const uint8_t *next_nonce; /* the request's nonce: its body is built again from it */
    size_t next_nonce_len;
    /* With attestation_context: */
    const uint8_t *request_nonce;
    size_t request_nonce_len;
    const uint8_t *older_nonces; /* consecutive 32-byte nonces of the same generation */
    size_t older_nonces_len;
    const uint8_t *older_requested_at; /* when each was asked: 8-byte big-endian Unix seconds */
    size_t older_requested_at_len;
    const char *enrolled_serial;     /* may be NULL */
    const char *enrolled_os_version; /* may be NULL */
    const char *product_name;        /* may be NULL */
    bool generation_verified;        /* this generation has had a verified answer */
    const char *request_reason;      /* why the request was asked (os_change, ...) */
    int64_t clock;                   /* the server's time (Unix seconds): verify at this */
};
bool db_decode_report(const PGresult *res, struct db_report_outcome *out)
    __attribute__((warn_unused_result));
/* One device's answer to an operator's command, for db_report_answers. */
struct db_answer {
    const char *udid;
    const struct db_cert *cert;
    const char *status; /* Acknowledged, Error or CommandFormatError */
    const char *command_uuid;
    const uint8_t *report; /* the body the device sent */
    size_t report_len;
};
/* The answers answers[0..count) of as many devices (one each), in one statement
 * (vouch_report_answers): a row for each answer it took, none for the others, which go to
 * db_report. db_decode_answer_row reads a row. */
void db_report_answers(struct db_pool *pool, const struct db_answer *answers, size_t count,
                       db_result_fn *cb, void *arg);
/* Row row: which answer (its index in answers[]) and its outcome, as db_decode_report gives
 * an answer's (verdict DB_VERDICT_OK); false for a malformed row. *index DB_ANSWERS_NONE: the
 * one row of a batch that took none because a web-hook receiver wants mdm.Connect. */
#define DB_ANSWERS_NONE SIZE_MAX
bool db_decode_answer_row(const PGresult *res, int row, size_t *index,
                          struct db_report_outcome *out) __attribute__((warn_unused_result));

/* An 8-byte big-endian integer, as PostgreSQL's binary format and int8send() write them. */
int64_t db_int64_be(const uint8_t bytes[8]);

/* Queues one command for udids[0..count). The answer has one row per udid: db_decode_enqueue
 * tells whether row i was queued. A duplicate command_uuid fails with SQLSTATE 23505. */
void db_enqueue(struct db_pool *pool, const char *command_uuid, const char *request_type,
                const uint8_t *body, size_t body_len, const char *const *udids, size_t count,
                db_result_fn *cb, void *arg);
bool db_decode_enqueue_row(const PGresult *res, int row, const char **udid, bool *queued)
    __attribute__((warn_unused_result));

/* Asks devices udids[0..count) for an attestation with the requests vouchd made (one each).
 * The answer has one row per udid: db_decode_attestation_row. */
void db_request_attestations(struct db_pool *pool, const char *const *udids,
                             const struct db_attest_request *requests, size_t count,
                             const char *reason, db_result_fn *cb, void *arg);
/* outcome: "queued", "pending" (command_uuid is the pending one) or "unknown_device". */
bool db_decode_attestation_row(const PGresult *res, int row, const char **udid,
                               const char **outcome, const char **command_uuid)
    __attribute__((warn_unused_result));

/* JSON text produced by the database: an array page of device objects (attestation: a status
 * to filter on, serial: a serial number to filter on, each or NULL; udids_only: objects holding
 * the udid alone), one device object (NULL
 * text: unknown), a device's commands or its attestation history (NULL text: unknown device).
 * A device's UDID may be given in any case (vouch_udid_resolve: exact match first). */
void db_device_list(struct db_pool *pool, const char *after, unsigned limit,
                    const char *attestation, const char *serial, bool udids_only, db_result_fn *cb,
                    void *arg);
void db_device_attestations(struct db_pool *pool, const char *udid, unsigned limit,
                            db_result_fn *cb, void *arg);
void db_device_get(struct db_pool *pool, const char *udid, db_result_fn *cb, void *arg);
void db_device_commands(struct db_pool *pool, const char *udid, unsigned limit,
                        db_result_fn *cb, void *arg);
/* The single text value of a one-row, one-column answer; *text is NULL for SQL NULL. */
bool db_decode_text(const PGresult *res, const char **text, size_t *len)
    __attribute__((warn_unused_result));

/* One scheduler tick: requests[0..count) are attestation requests made for whichever devices
 * are due (unused ones are dropped); the info command goes to up to info_limit devices due for
 * a light query. Rows (udid, kind "attestation" | "info", reason) name the devices to push. */
void db_scheduler_tick(struct db_pool *pool, const struct db_attest_request *requests,
                       size_t count, const char *info_command_uuid, const uint8_t *info_body,
                       size_t info_body_len, unsigned info_limit, db_result_fn *cb, void *arg);
bool db_decode_tick_row(const PGresult *res, int row, const char **udid, const char **kind,
                        const char **reason) __attribute__((warn_unused_result));
/* What the scheduler has to do (vouch_scheduler_next): attestation requests due now (at most
 * limit), whether light queries are due now, when the next work falls due (seconds by the
 * database's clock, if anything is planned) and what the fleet-wide budget still allows. */
struct db_scheduler_next {
    int attest_due;
    bool other_due; /* light queries, unanswered requests past their time, expiring verdicts */
    bool anything_planned;
    double due_in;
    int budget;
};
void db_scheduler_next(struct db_pool *pool, unsigned limit, db_result_fn *cb, void *arg);
bool db_decode_scheduler_next(const PGresult *res, struct db_scheduler_next *out)
    __attribute__((warn_unused_result));

/* The web-hook outbox (see vouch_emit and vouch_webhook_* in the schema). */
/* Up to limit due deliveries, each leased for lease_s: rows (id, receiver, body, attempts). */
void db_webhook_claim(struct db_pool *pool, unsigned limit, unsigned lease_s, db_result_fn *cb,
                      void *arg);
bool db_decode_webhook_claim(const PGresult *res, int row, int64_t *id, const char **receiver,
                             const char **body, size_t *body_len, int *attempts)
    __attribute__((warn_unused_result));
struct db_webhook_result {
    int64_t id;
    const char *receiver;
    bool ok;
    const char *error; /* when !ok */
    double retry_s;    /* when !ok: delay before the next attempt */
};
/* Rows (id, receiver, status: delivered | pending | dead, age_s) for the deliveries recorded. */
void db_webhook_results(struct db_pool *pool, const struct db_webhook_result *results,
                        size_t count, unsigned max_age_s, db_result_fn *cb, void *arg);
bool db_decode_webhook_result(const PGresult *res, int row, const char **status, double *age_s)
    __attribute__((warn_unused_result));
/* A JSON array of deliveries (status may be NULL: all), newest first, ids below before. */
void db_event_list(struct db_pool *pool, const char *status, const char *before, unsigned limit,
                   db_result_fn *cb, void *arg);
/* Lets the next new identity certificate of an enrolled device in (reenroll = refuse): the
 * answer's JSON text, or NULL for an unknown device. */
void db_allow_reenroll(struct db_pool *pool, const char *udid, db_result_fn *cb, void *arg);
/* Sends an event again now: one integer, the deliveries revived. */
void db_event_retry(struct db_pool *pool, const char *id, db_result_fn *cb, void *arg);

struct db_stats {
    int64_t queue_depth;
    int64_t devices;
    int64_t enrolled;
    double clock_skew; /* seconds the sessions' clock is moved by (0 but with test_clock) */
};
void db_stats(struct db_pool *pool, db_result_fn *cb, void *arg);
bool db_decode_stats(const PGresult *res, struct db_stats *out) __attribute__((warn_unused_result));

/* Deletes up to batch rows of each kind of history: finished results, unneeded commands and
 * finished events older than retention_s; attestations and answered attestation requests older
 * than attestation_retention_s (each device keeps its current and newest verified attestation). */
void db_prune(struct db_pool *pool, unsigned retention_s, unsigned batch,
              unsigned attestation_retention_s, db_result_fn *cb, void *arg);
bool db_decode_count(const PGresult *res, int64_t *count) __attribute__((warn_unused_result));

#endif
