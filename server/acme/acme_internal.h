/*
 * acme_internal: what the parts of vouchd's ACME server share (server/acme/acme.h is its face):
 * acme.c (set-up, routing, the JWS envelope), acme_answer.c (answers, problems and the ACME
 * objects) and acme_steps.c (one function per step of RFC 8555's flow).
 *
 * A struct acme_request lives from a request's arrival to its answer: every path ends in exactly
 * one acme_reply*() or acme_problem(), which sends the answer and frees the request.
 */
#ifndef VOUCH_ACME_INTERNAL_H
#define VOUCH_ACME_INTERNAL_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

#include "acme_ca.h"
#include "attest.h"
#include "db.h"
#include "jws.h"

#define ACME_RANDOM_BYTES 16    /* nonces, account and order ids: 128 bits */
#define ACME_TOKEN_BYTES 32     /* challenge tokens: 256 bits */
#define ACME_MAX_ID 64          /* the id segment of an object URL */
#define ACME_MAX_IDENTIFIER 128 /* a ClientIdentifier (minted: 32 hex characters) */
#define ACME_NONCE_LIFETIME_S 3600
#define ACME_ORDER_LIFETIME_S (24 * 3600)
#define ACME_MAX_CONTACTS 4
#define ACME_MAX_ANSWER (64 * 1024) /* a JSON document vouchd answers */

struct evhttp_request;
struct json_doc;
struct json_value;
struct json_writer;
struct vouchd;

struct acme {
    struct acme_ca *ca;
    const char *organization;
    char public_base[512]; /* public_url without its trailing slashes */
    char base[520];        /* public_base + "/acme" */
};

enum acme_step {
    STEP_NEW_ACCOUNT,
    STEP_NEW_ORDER,
    STEP_ACCOUNT,
    STEP_ORDER,
    STEP_AUTHZ,
    STEP_CHALLENGE,
    STEP_FINALIZE,
    STEP_CERT,
    STEP_REVOKE,
};

/* One ACME request, from its arrival to its answer. */
struct acme_request {
    struct vouchd *srv;
    struct acme *acme;
    struct evhttp_request *req;
    enum acme_step step;
    char id[ACME_MAX_ID + 1]; /* the object the path names */
    struct jws jws;
    struct json_doc *payload; /* NULL for POST-as-GET */
    char nonce[64];           /* the answer's Replay-Nonce, once stored */
    bool nonce_stored;
    char account[ACME_MAX_ID + 1]; /* the signer's account, once known */
    char account_status[16];
    char account_contact[1024]; /* JSON, or "null" */
    EVP_PKEY *account_key;      /* from the stored JWK (kid requests) */
    /* A problem waiting for its nonce to be stored. */
    int problem_status;
    char problem_type[40];
    char problem_reason[40];
    char problem_detail[300];
    /* finalize: the certificate issued, kept until the database has it. */
    struct acme_issued issued;
    char client_id[ACME_MAX_IDENTIFIER + 1];
    char udid[ATTEST_MAX_VALUE + 1], serial[ATTEST_MAX_VALUE + 1];
};

/* 128..256 random bits as base64url (nonces, ids, tokens). */
bool acme_random_text(size_t bytes, char *out, size_t out_size) __attribute__((warn_unused_result));
/* An object id of a path: 1..ACME_MAX_ID characters of the base64url alphabet. */
bool acme_read_id(const char *text, char out[ACME_MAX_ID + 1]) __attribute__((warn_unused_result));
void acme_request_free(struct acme_request *ar);

/* ---- answers (acme_answer.c); each sends the answer and frees ar ---- */
void acme_add_headers(struct acme_request *ar); /* Link rel=index, no-store, Replay-Nonce */
void acme_reply(struct acme_request *ar, int status, const char *type, const void *body, size_t len,
                const char *location);
/* w's document (w freed; NULL: 500). */
void acme_reply_writer(struct acme_request *ar, int status, struct json_writer *w,
                       const char *location);
/* Refuses with an RFC 8555 problem (type without its prefix; reason is Vouch's code for logs and
 * counters). Stores a fresh nonce first when the request has none yet. */
void acme_problem(struct acme_request *ar, int status, const char *type, const char *reason,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A problem the database chose ({"type", "detail", "reason"}). */
void acme_problem_from_db(struct acme_request *ar, const struct json_value *p);
/* The JSON document a step of the database answered, or NULL after answering the client. */
struct json_doc *acme_db_answer(struct acme_request *ar, enum db_outcome outcome,
                                const PGresult *res);
/* The ACME objects, rendered from the database's order state (vouch_acme_order_state). */
void acme_reply_order(struct acme_request *ar, int status, const struct json_value *order);
void acme_reply_challenge(struct acme_request *ar, const struct json_value *order);
void acme_reply_account(struct acme_request *ar, int status, const char *id,
                        const char *account_status, const struct json_value *contact,
                        const char *contact_json);
struct json_writer *acme_authz_document(const struct acme *acme, const struct json_value *order);

/* ---- the steps (acme_steps.c) ---- */
/* Runs ar's step once its envelope, nonce and signature have passed. */
void acme_run_step(struct acme_request *ar);

#endif
