#include "queries_acme.h"

#include <stdio.h>
#include <stdlib.h>

#include "hex.h"
#include "log.h"
#include "params.h"

static void seconds_text(unsigned seconds, char out[24])
{
    snprintf(out, 24, "%u seconds", seconds);
}

static const char sql_nonce_add[] = "SELECT vouch_acme_nonce_add($1, $2::interval)";

void db_acme_nonce_add(struct db_pool *pool, const char *nonce, unsigned lifetime_s,
                       db_result_fn *cb, void *arg)
{
    char lifetime[24];
    seconds_text(lifetime_s, lifetime);
    const struct db_param params[] = {text_param(nonce), text_param(lifetime)};
    db_query(pool, sql_nonce_add, params, 2, false, cb, arg);
}

static const char sql_begin[] = "SELECT vouch_acme_begin($1, $2, $3::interval, $4)::text";

void db_acme_begin(struct db_pool *pool, const char *nonce, const char *next, unsigned lifetime_s,
                   const char *account, db_result_fn *cb, void *arg)
{
    char lifetime[24];
    seconds_text(lifetime_s, lifetime);
    const struct db_param params[] = {text_param(nonce), text_param(next), text_param(lifetime),
                                      text_param(account)};
    db_query(pool, sql_begin, params, 4, false, cb, arg);
}

static const char sql_new_account[] =
    "SELECT vouch_acme_new_account($1, $2, $3, $4::json, $5::boolean)::text";

void db_acme_new_account(struct db_pool *pool, const char *id, const uint8_t thumbprint[32],
                         const char *jwk, const char *contact_json, bool only_existing,
                         db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(id), bytes_param(thumbprint, 32), text_param(jwk),
                                      text_param(contact_json),
                                      text_param(only_existing ? "t" : "f")};
    db_query(pool, sql_new_account, params, 5, false, cb, arg);
}

static const char sql_new_order[] =
    "SELECT vouch_acme_new_order($1, $2, $3, $4, $5::interval)::text";

void db_acme_new_order(struct db_pool *pool, const char *account, const char *order_id,
                       const char *token, const char *client_id, unsigned lifetime_s,
                       db_result_fn *cb, void *arg)
{
    char lifetime[24];
    seconds_text(lifetime_s, lifetime);
    const struct db_param params[] = {text_param(account), text_param(order_id), text_param(token),
                                      text_param(client_id), text_param(lifetime)};
    db_query(pool, sql_new_order, params, 5, false, cb, arg);
}

static const char sql_order_get[] = "SELECT vouch_acme_order_get($1, $2)::text";

void db_acme_order_get(struct db_pool *pool, const char *account, const char *order_id,
                       db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(account), text_param(order_id)};
    db_query(pool, sql_order_get, params, 2, false, cb, arg);
}

static const char sql_challenge_claim[] = "SELECT vouch_acme_challenge_claim($1, $2)::text";

void db_acme_challenge_claim(struct db_pool *pool, const char *account, const char *order_id,
                             db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(account), text_param(order_id)};
    db_query(pool, sql_challenge_claim, params, 2, false, cb, arg);
}

/* The chain travels as a text[] of hex items, decoded by the statement. */
static char *hex_array_literal(const uint8_t *const *items, const size_t *lens, size_t count)
{
    char **texts = calloc(count + 1, sizeof(*texts));
    if (texts == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++) {
        texts[i] = malloc(2 * lens[i] + 1);
        if (texts[i] == NULL)
            log_fatal("out of memory");
        hex_encode(items[i], lens[i], texts[i]);
    }
    char *literal = db_text_array_literal((const char *const *)texts, count);
    for (size_t i = 0; i < count; i++)
        free(texts[i]);
    free(texts);
    return literal;
}

static const char sql_challenge_result[] =
    "SELECT vouch_acme_challenge_result($1, $2, $3, $4, $5, $6,"
    " ARRAY(SELECT decode(x, 'hex') FROM unnest($7::text[]) WITH ORDINALITY AS u(x, n)"
    " ORDER BY n), $8, $9::timestamptz, $10::timestamptz, $11::json)::text";

void db_acme_challenge_result(struct db_pool *pool, const char *order_id,
                              const struct db_acme_attestation *att, db_result_fn *cb, void *arg)
{
    char *chain = hex_array_literal(att->chain, att->chain_lens, att->chain_count);
    const struct db_param params[] = {
        text_param(order_id),
        text_param(att->reason),
        text_param(att->detail),
        text_param(att->udid),
        text_param(att->serial_number),
        bytes_param(att->spki_len > 0 ? att->spki : NULL, att->spki_len),
        text_param(chain),
        bytes_param(att->leaf_sha256, att->leaf_sha256 ? 32 : 0),
        text_param(att->generated_at),
        text_param(att->leaf_expires_at),
        text_param(att->properties_json),
    };
    db_query(pool, sql_challenge_result, params, 11, false, cb, arg);
    free(chain);
}

static const char sql_refuse[] = "SELECT vouch_acme_refuse($1, $2, $3, $4, $5, $6, $7)::text";

void db_acme_refuse(struct db_pool *pool, const char *order_id, const char *client_id,
                    const char *type, const char *reason, const char *detail, const char *udid,
                    const char *serial_number, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {
        text_param(order_id), text_param(client_id), text_param(type),         text_param(reason),
        text_param(detail),   text_param(udid),      text_param(serial_number)};
    db_query(pool, sql_refuse, params, 7, false, cb, arg);
}

static const char sql_finalize[] =
    "SELECT vouch_acme_finalize($1, $2, $3, $4, $5, $6::timestamptz, $7::timestamptz)::text";

void db_acme_finalize(struct db_pool *pool, const char *account, const char *order_id,
                      const struct db_acme_certificate *cert, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {
        text_param(account),
        text_param(order_id),
        text_param(cert->serial_hex),
        bytes_param(cert->sha256, 32),
        bytes_param(cert->der, cert->der_len),
        text_param(cert->not_before),
        text_param(cert->not_after),
    };
    db_query(pool, sql_finalize, params, 7, false, cb, arg);
}

static const char sql_certificate[] = "SELECT vouch_acme_certificate($1, $2)::text";

void db_acme_certificate(struct db_pool *pool, const char *account, const char *serial_hex,
                         db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(account), text_param(serial_hex)};
    db_query(pool, sql_certificate, params, 2, false, cb, arg);
}

static const char sql_revoke[] = "SELECT vouch_acme_revoke($1, $2, $3)::text";

void db_acme_revoke(struct db_pool *pool, const char *account, const uint8_t sha256[32],
                    const char *reason, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(account), bytes_param(sha256, 32),
                                      text_param(reason)};
    db_query(pool, sql_revoke, params, 3, false, cb, arg);
}

static const char sql_client_id_new[] =
    "SELECT vouch_acme_client_id_new($1, $2, $3::interval)::text";

void db_acme_client_id_new(struct db_pool *pool, const char *value,
                           const uint8_t *device_token_sha256, unsigned lifetime_s,
                           db_result_fn *cb, void *arg)
{
    char lifetime[24];
    seconds_text(lifetime_s, lifetime);
    const struct db_param params[] = {
        text_param(value), bytes_param(device_token_sha256, device_token_sha256 ? 32 : 0),
        text_param(lifetime)};
    db_query(pool, sql_client_id_new, params, 3, false, cb, arg);
}

static const char sql_expect_devices[] =
    "SELECT vouch_expect_devices($1::text[],"
    " ARRAY(SELECT decode(x, 'hex') FROM unnest($2::text[]) WITH ORDINALITY AS u(x, n)"
    " ORDER BY n))";

void db_expect_devices(struct db_pool *pool, const char *const *serials,
                       const uint8_t *token_sha256s, size_t count, db_result_fn *cb, void *arg)
{
    const uint8_t **hashes = malloc((count + 1) * sizeof(*hashes));
    size_t *lens = malloc((count + 1) * sizeof(*lens));
    if (hashes == NULL || lens == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++) {
        hashes[i] = token_sha256s + 32 * i;
        lens[i] = 32;
    }
    char *serial_array = db_text_array_literal(serials, count);
    char *hash_array = hex_array_literal(hashes, lens, count);
    const struct db_param params[] = {text_param(serial_array), text_param(hash_array)};
    db_query(pool, sql_expect_devices, params, 2, false, cb, arg);
    free(serial_array);
    free(hash_array);
    free(hashes);
    free(lens);
}

static const char sql_expected_list[] = "SELECT vouch_expected_list()";

void db_expected_list(struct db_pool *pool, db_result_fn *cb, void *arg)
{
    db_query(pool, sql_expected_list, NULL, 0, false, cb, arg);
}

static const char sql_cert_list[] = "SELECT vouch_cert_list($1, $2::integer)";

void db_cert_list(struct db_pool *pool, const char *udid, unsigned limit, db_result_fn *cb,
                  void *arg)
{
    char limit_text[16];
    snprintf(limit_text, sizeof(limit_text), "%u", limit);
    const struct db_param params[] = {text_param(udid), text_param(limit_text)};
    db_query(pool, sql_cert_list, params, 2, false, cb, arg);
}

static const char sql_cert_revoke[] = "SELECT vouch_cert_revoke($1, $2)";

void db_cert_revoke(struct db_pool *pool, const char *serial_hex, const char *reason,
                    db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(serial_hex), text_param(reason)};
    db_query(pool, sql_cert_revoke, params, 2, false, cb, arg);
}
