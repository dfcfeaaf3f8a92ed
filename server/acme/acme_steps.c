#include "acme_internal.h"

#include <event2/http.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "attest_json.h"
#include "device_attest.h"
#include "hex.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "queries_acme.h"
#include "vouchd.h"

/* ---- the steps --------------------------------------------------------------------------- */

static void account_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    const struct json_value *root = json_doc_root(doc);
    const struct json_value *account = json_object_find(root, "account");
    if (account == NULL) {
        acme_problem_from_db(ar, json_object_find(root, "problem"));
    } else {
        bool created = false;
        if (!json_get_bool(json_object_find(account, "created"), &created))
            created = false;
        acme_reply_account(ar, created ? 201 : 200, json_object_get_string(account, "id"),
                           json_object_get_string(account, "status"),
                           json_object_find(account, "contact"), NULL);
    }
    json_doc_free(doc);
}

/* contact: at most ACME_MAX_CONTACTS "mailto:" strings, kept as they are. */
static bool contact_json(const struct json_value *contact, char *out, size_t out_size)
{
    snprintf(out, out_size, "null");
    if (contact == NULL)
        return true;
    if (json_value_kind(contact) != JSON_KIND_ARRAY ||
        json_array_length(contact) > ACME_MAX_CONTACTS)
        return false;
    struct json_writer *w = json_writer_new(out_size - 1, 0);
    bool ok = w != NULL && json_write_begin_array(w);
    for (size_t i = 0; ok && i < json_array_length(contact); i++) {
        const char *s;
        size_t len;
        ok = json_get_string(json_array_at(contact, i), &s, &len) && len <= 256 &&
             strncmp(s, "mailto:", 7) == 0 && json_write_stringn(w, s, len);
    }
    const char *text;
    size_t len;
    ok = ok && json_write_end_array(w) && json_writer_finish(w, &text, &len) && len < out_size;
    if (ok)
        memcpy(out, text, len + 1);
    json_writer_free(w);
    return ok;
}

static void step_new_account(struct acme_request *ar)
{
    const struct json_value *root = json_doc_root(ar->payload);
    bool only_existing = false;
    const struct json_value *only = json_object_find(root, "onlyReturnExisting");
    if (only != NULL && !json_get_bool(only, &only_existing)) {
        acme_problem(ar, 400, "malformed", "malformed", "onlyReturnExisting must be a boolean");
        return;
    }
    if (!contact_json(json_object_find(root, "contact"), ar->account_contact,
                      sizeof(ar->account_contact))) {
        acme_problem(ar, 400, "invalidContact", "malformed",
                     "contact: at most %d mailto: addresses", ACME_MAX_CONTACTS);
        return;
    }
    char id[64];
    if (!acme_random_text(ACME_RANDOM_BYTES, id, sizeof(id))) {
        acme_problem(ar, 500, "serverInternal", "other", "no random bytes");
        return;
    }
    db_acme_new_account(ar->srv->db, id, ar->jws.jwk_thumbprint, ar->jws.jwk_canonical,
                        ar->account_contact, only_existing, account_done, ar);
}

static void step_account(struct acme_request *ar)
{
    if (strcmp(ar->id, ar->account) != 0) {
        acme_problem(ar, 403, "unauthorized", "not_owner", "this account is not the signer's");
        return;
    }
    const struct json_value *status = json_object_find(json_doc_root(ar->payload), "status");
    if (status != NULL) {
        acme_problem(ar, 400, "malformed", "malformed", "account changes are not supported");
        return;
    }
    acme_reply_account(ar, 200, ar->account, ar->account_status, NULL, ar->account_contact);
}

static void order_created(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    const struct json_value *root = json_doc_root(doc);
    const struct json_value *order = json_object_find(root, "order");
    if (order == NULL) {
        acme_problem_from_db(ar, json_object_find(root, "problem"));
    } else {
        metrics_count_acme("order");
        acme_reply_order(ar, 201, order);
    }
    json_doc_free(doc);
}

/* A ClientIdentifier as this server mints them (and RFC 8555's permanent-identifier allows). */
static bool identifier_acceptable(const char *value, size_t len)
{
    return len > 0 && len <= ACME_MAX_IDENTIFIER &&
           strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
               len;
}

static void step_new_order(struct acme_request *ar)
{
    const struct json_value *root = json_doc_root(ar->payload);
    const struct json_value *identifiers = json_object_find(root, "identifiers");
    if (json_object_find(root, "notBefore") != NULL || json_object_find(root, "notAfter") != NULL) {
        acme_problem(ar, 400, "malformed", "malformed",
                     "notBefore and notAfter are not supported: the validity is Vouch's");
        return;
    }
    if (json_value_kind(identifiers) != JSON_KIND_ARRAY || json_array_length(identifiers) != 1) {
        acme_problem(ar, 400, "malformed", "malformed",
                     "an order names exactly one identifier, the profile's ClientIdentifier");
        return;
    }
    const struct json_value *identifier = json_array_at(identifiers, 0);
    const char *type = json_object_get_string(identifier, "type");
    const char *value;
    size_t value_len;
    if (type == NULL || strcmp(type, "permanent-identifier") != 0) {
        acme_problem(ar, 400, "unsupportedIdentifier", "unsupported_identifier",
                     "only permanent-identifier orders are served here");
        return;
    }
    if (!json_get_string(json_object_find(identifier, "value"), &value, &value_len) ||
        !identifier_acceptable(value, value_len)) {
        acme_problem(ar, 400, "malformed", "malformed",
                     "the identifier's value is not a ClientIdentifier");
        return;
    }
    char order_id[64], token[64];
    if (!acme_random_text(ACME_RANDOM_BYTES, order_id, sizeof(order_id)) ||
        !acme_random_text(ACME_TOKEN_BYTES, token, sizeof(token))) {
        acme_problem(ar, 500, "serverInternal", "other", "no random bytes");
        return;
    }
    db_acme_new_order(ar->srv->db, ar->account, order_id, token, value, ACME_ORDER_LIFETIME_S,
                      order_created, ar);
}

/* Answers an object step (order, authz, challenge) from {"order"}, a problem, or missing. */
static const struct json_value *order_or_answer(struct acme_request *ar,
                                                const struct json_value *root)
{
    const struct json_value *order = json_object_find(root, "order");
    if (order != NULL)
        return order;
    if (json_object_find(root, "missing") != NULL)
        acme_problem(ar, 404, "malformed", "not_found", "no such object");
    else
        acme_problem_from_db(ar, json_object_find(root, "problem"));
    return NULL;
}

static void object_read(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    const struct json_value *order = order_or_answer(ar, json_doc_root(doc));
    if (order != NULL) {
        if (ar->step == STEP_ORDER)
            acme_reply_order(ar, 200, order);
        else if (ar->step == STEP_AUTHZ)
            acme_reply_writer(ar, 200, acme_authz_document(ar->acme, order), NULL);
        else
            acme_reply_challenge(ar, order);
    }
    json_doc_free(doc);
}

static void challenge_recorded(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    const struct json_value *order = order_or_answer(ar, json_doc_root(doc));
    if (order != NULL) {
        metrics_count_acme("challenge_valid");
        log_info("acme: order %s: attestation verified", ar->id);
        acme_reply_challenge(ar, order);
    }
    json_doc_free(doc);
}

/* The verdict's properties as JSON text (for the history), or NULL. */
static char *properties_json(const struct attest_properties *props)
{
    struct json_writer *w = json_writer_new(16 * 1024, 0);
    const char *text;
    size_t len;
    char *copy = NULL;
    if (w != NULL && attest_json_write_properties(w, props) && json_writer_finish(w, &text, &len))
        copy = strdup(text);
    json_writer_free(w);
    return copy;
}

/* Verifies the attestation of a claimed challenge and records the outcome. */
static void verify_challenge(struct acme_request *ar, const struct json_value *order)
{
    const struct json_value *root = json_doc_root(ar->payload);
    const char *att_obj;
    size_t att_obj_len;
    int64_t clock = 0;
    if (!json_get_int64(json_object_find(order, "clock"), &clock))
        clock = 0;
    struct device_attest_result result;
    const char *client_error = json_object_get_string(root, "error");
    if (!json_get_string(json_object_find(root, "attObj"), &att_obj, &att_obj_len)) {
        att_obj = "";
        att_obj_len = 0;
    }
    if (client_error != NULL && client_error[0] != '\0') {
        /* The device said it could not attest (the payload's "error"). */
        memset(&result, 0, sizeof(result));
        result.reason = DEVICE_ATTEST_NO_ATTESTATION;
    } else {
        device_attest_verify(ar->srv->attest, att_obj, att_obj_len,
                             json_object_get_string(order, "token"), (time_t)clock, &result);
    }
    const char *reason = device_attest_reason_name(result.reason);
    char detail[300] = "";
    if (reason != NULL)
        snprintf(detail, sizeof(detail), "the attestation is not acceptable: %s%s%s", reason,
                 client_error ? "; the device reported: " : "", client_error ? client_error : "");
    const struct attest_properties *p = &result.properties;
    char generated[21] = "", expires[21] = "";
    char *props = NULL;
    if (result.leaf_parsed) {
        attest_json_format_time(result.not_before, generated);
        attest_json_format_time(result.not_after, expires);
        props = properties_json(p);
    }
    const struct db_acme_attestation att = {
        .reason = reason,
        .detail = reason ? detail : NULL,
        .udid = result.leaf_parsed && p->has_udid ? p->udid : NULL,
        .serial_number = result.leaf_parsed && p->has_serial_number ? p->serial_number : NULL,
        .spki = result.spki,
        .spki_len = reason == NULL ? result.spki_len : 0,
        .chain = (const uint8_t *const *)result.chain,
        .chain_lens = result.chain_len,
        .chain_count = result.chain_count,
        .leaf_sha256 = result.leaf_parsed ? result.leaf_sha256 : NULL,
        .generated_at = result.leaf_parsed ? generated : NULL,
        .leaf_expires_at = result.leaf_parsed ? expires : NULL,
        .properties_json = props,
    };
    metrics_count_attestation(reason ? reason : "verified");
    db_acme_challenge_result(ar->srv->db, ar->id, &att, challenge_recorded, ar);
    free(props);
    device_attest_clear(&result);
}

static void challenge_claimed(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    const struct json_value *root = json_doc_root(doc);
    const struct json_value *order = order_or_answer(ar, root);
    if (order != NULL) {
        if (json_object_find(root, "claimed") != NULL)
            verify_challenge(ar, order);
        else
            acme_reply_challenge(ar, order); /* settled, or being verified: its state */
    }
    json_doc_free(doc);
}

static void step_challenge(struct acme_request *ar)
{
    if (ar->payload == NULL) { /* POST-as-GET */
        db_acme_order_get(ar->srv->db, ar->account, ar->id, object_read, ar);
        return;
    }
    const struct json_value *root = json_doc_root(ar->payload);
    if (json_value_kind(root) != JSON_KIND_OBJECT) {
        acme_problem(ar, 400, "malformed", "malformed", "the challenge answer is not an object");
        return;
    }
    const struct json_value *att_obj = json_object_find(root, "attObj");
    const struct json_value *client_error = json_object_find(root, "error");
    if ((att_obj == NULL || json_value_kind(att_obj) != JSON_KIND_STRING) &&
        (client_error == NULL || json_value_kind(client_error) != JSON_KIND_STRING)) {
        acme_problem(ar, 400, "malformed", "malformed", "device-attest-01 needs attObj");
        return;
    }
    db_acme_challenge_claim(ar->srv->db, ar->account, ar->id, challenge_claimed, ar);
}

static void finalized(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    const struct json_value *order = order_or_answer(ar, json_doc_root(doc));
    if (order != NULL) {
        metrics_count_acme("issued");
        char serial[64];
        log_info("acme: issued certificate %s for udid %s (serial number %s)",
                 ar->issued.serial_hex,
                 log_sanitize(ar->udid, strlen(ar->udid), serial, sizeof(serial)), ar->serial);
        acme_reply_order(ar, 200, order);
    }
    json_doc_free(doc);
}

static void csr_refused(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    acme_problem_from_db(ar, json_object_find(json_doc_root(doc), "problem"));
    json_doc_free(doc);
}

/* Issues the certificate for a ready order whose CSR carries the attested key. */
static void finalize_order(struct acme_request *ar, const struct json_value *order)
{
    const char *status = json_object_get_string(order, "status");
    const char *spki_hex = json_object_get_string(order, "spki");
    const char *udid = json_object_get_string(order, "udid");
    const char *serial = json_object_get_string(order, "serial_number");
    const char *client_id = json_object_get_string(order, "client_id");
    if (status == NULL || strcmp(status, "ready") != 0 || spki_hex == NULL || udid == NULL ||
        serial == NULL) {
        acme_problem(ar, 403, "orderNotReady", "order_not_ready", "the order is %s, not ready",
                     status ? status : "?");
        return;
    }
    snprintf(ar->client_id, sizeof(ar->client_id), "%s", client_id ? client_id : "");
    snprintf(ar->udid, sizeof(ar->udid), "%s", udid);
    snprintf(ar->serial, sizeof(ar->serial), "%s", serial);
    uint8_t spki[DEVICE_ATTEST_MAX_SPKI];
    size_t spki_len;
    if (!hex_decode(spki_hex, strlen(spki_hex), spki, sizeof(spki), &spki_len)) {
        acme_problem(ar, 500, "serverInternal", "other", "the attested key cannot be read");
        return;
    }
    const char *csr_text;
    size_t csr_text_len;
    uint8_t csr[ACME_CA_MAX_CSR];
    size_t csr_len = 0;
    if (!json_get_string(json_object_find(json_doc_root(ar->payload), "csr"), &csr_text,
                         &csr_text_len) ||
        csr_text_len > b64url_encoded_len(sizeof(csr)) ||
        !b64url_decode(csr_text, csr_text_len, csr, &csr_len)) {
        acme_problem(ar, 400, "badCSR", "csr_malformed",
                     "csr: not base64url DER of at most %d bytes", ACME_CA_MAX_CSR);
        return;
    }
    enum acme_csr_error csr_error = acme_csr_check(csr, csr_len, spki, spki_len);
    if (csr_error == ACME_CSR_KEY_MISMATCH) {
        /* Not the key Apple attested: that device does not get a certificate on this order. */
        db_acme_refuse(ar->srv->db, ar->id, ar->client_id, "badCSR", "csr_key_mismatch",
                       "the CSR's key is not the key Apple attested", ar->udid, ar->serial,
                       csr_refused, ar);
        return;
    }
    if (csr_error != ACME_CSR_OK) {
        acme_problem(ar, 400, "badCSR",
                     csr_error == ACME_CSR_BAD_SIGNATURE ? "csr_bad_signature" : "csr_malformed",
                     "the CSR is %s", acme_csr_error_name(csr_error));
        return;
    }
    int64_t clock = 0;
    if (!json_get_int64(json_object_find(order, "clock"), &clock))
        clock = (int64_t)time(NULL);
    const struct acme_issue_request issue = {
        .spki = spki,
        .spki_len = spki_len,
        .udid = ar->udid,
        .serial_number = ar->serial,
        .organization = ar->acme->organization,
        .not_before = (time_t)clock,
        .lifetime_s = ar->srv->cfg->acme_cert_lifetime,
    };
    char err[256];
    if (!acme_ca_issue(ar->acme->ca, &issue, &ar->issued, err, sizeof(err))) {
        log_error("acme: cannot issue a certificate: %s", err);
        acme_problem(ar, 500, "serverInternal", "other", "the certificate could not be issued");
        return;
    }
    char not_before[21], not_after[21];
    attest_json_format_time(ar->issued.not_before, not_before);
    attest_json_format_time(ar->issued.not_after, not_after);
    const struct db_acme_certificate cert = {
        .serial_hex = ar->issued.serial_hex,
        .sha256 = ar->issued.sha256,
        .der = ar->issued.der,
        .der_len = ar->issued.der_len,
        .not_before = not_before,
        .not_after = not_after,
    };
    db_acme_finalize(ar->srv->db, ar->account, ar->id, &cert, finalized, ar);
}

static void finalize_read(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    const struct json_value *order = order_or_answer(ar, json_doc_root(doc));
    if (order != NULL)
        finalize_order(ar, order);
    json_doc_free(doc);
}

static void certificate_read(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    const struct json_value *root = json_doc_root(doc);
    const char *der_hex = json_object_get_string(root, "der");
    if (der_hex == NULL) {
        if (json_object_find(root, "missing") != NULL)
            acme_problem(ar, 404, "malformed", "not_found", "no such certificate");
        else
            acme_problem_from_db(ar, json_object_find(root, "problem"));
        json_doc_free(doc);
        return;
    }
    size_t hex_len = strlen(der_hex), der_len = 0, pem_len = 0;
    uint8_t *der = malloc(hex_len / 2 + 1);
    char *pem = NULL;
    if (der != NULL && hex_decode(der_hex, hex_len, der, hex_len / 2 + 1, &der_len))
        pem = acme_ca_chain_pem(ar->acme->ca, der, der_len, &pem_len);
    if (pem != NULL)
        acme_reply(ar, 200, "application/pem-certificate-chain", pem, pem_len, NULL);
    else
        acme_problem(ar, 500, "serverInternal", "other", "the certificate cannot be read");
    free(pem);
    free(der);
    json_doc_free(doc);
}

static void revoked(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    const struct json_value *root = json_doc_root(doc);
    if (json_object_find(root, "revoked") != NULL) {
        metrics_count_acme("revoked");
        acme_reply(ar, 200, NULL, NULL, 0, NULL);
    } else {
        acme_problem_from_db(ar, json_object_find(root, "problem"));
    }
    json_doc_free(doc);
}

/* RFC 5280 CRLReason codes an ACME client may give (RFC 8555 §7.6). */
static const char *revocation_reason(int64_t code)
{
    switch (code) {
    case 0:
        return "unspecified";
    case 1:
        return "keyCompromise";
    case 3:
        return "affiliationChanged";
    case 4:
        return "superseded";
    case 5:
        return "cessationOfOperation";
    default:
        return NULL;
    }
}

static void step_revoke(struct acme_request *ar)
{
    const struct json_value *root = json_doc_root(ar->payload);
    const char *text;
    size_t text_len;
    uint8_t der[ATTEST_MAX_CERT_BYTES];
    size_t der_len = 0;
    if (!json_get_string(json_object_find(root, "certificate"), &text, &text_len) ||
        text_len > b64url_encoded_len(sizeof(der)) ||
        !b64url_decode(text, text_len, der, &der_len)) {
        acme_problem(ar, 400, "malformed", "malformed", "certificate: not base64url DER");
        return;
    }
    int64_t code = 0;
    const struct json_value *reason = json_object_find(root, "reason");
    if (reason != NULL && (!json_get_int64(reason, &code) || revocation_reason(code) == NULL)) {
        acme_problem(ar, 400, "badRevocationReason", "bad_revocation_reason",
                     "reason: 0, 1, 3, 4 or 5 (RFC 5280)");
        return;
    }
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)der_len);
    if (cert == NULL || p != der + der_len) {
        X509_free(cert);
        acme_problem(ar, 400, "malformed", "malformed", "certificate: not one DER certificate");
        return;
    }
    /* Signed with a key instead of an account: it must be the certificate's own key. */
    bool own_key = ar->jws.jwk != NULL;
    bool key_matches = own_key && EVP_PKEY_eq(X509_get0_pubkey(cert), ar->jws.jwk) == 1;
    X509_free(cert);
    if (own_key && !key_matches) {
        acme_problem(
            ar, 403, "unauthorized", "not_owner",
            "the request is signed by neither the ordering account nor the certificate's key");
        return;
    }
    uint8_t sha256[32];
    EVP_Digest(der, der_len, sha256, NULL, EVP_sha256(), NULL);
    db_acme_revoke(ar->srv->db, own_key ? NULL : ar->account, sha256, revocation_reason(code),
                   revoked, ar);
}

void acme_run_step(struct acme_request *ar)
{
    switch (ar->step) {
    case STEP_NEW_ACCOUNT:
        step_new_account(ar);
        break;
    case STEP_ACCOUNT:
        step_account(ar);
        break;
    case STEP_NEW_ORDER:
        step_new_order(ar);
        break;
    case STEP_ORDER:
    case STEP_AUTHZ:
        if (ar->payload != NULL)
            acme_problem(ar, 400, "malformed", "malformed",
                         "expected POST-as-GET (an empty payload)");
        else
            db_acme_order_get(ar->srv->db, ar->account, ar->id, object_read, ar);
        break;
    case STEP_CHALLENGE:
        step_challenge(ar);
        break;
    case STEP_FINALIZE:
        if (ar->payload == NULL)
            acme_problem(ar, 400, "malformed", "malformed", "finalize needs a csr");
        else
            db_acme_order_get(ar->srv->db, ar->account, ar->id, finalize_read, ar);
        break;
    case STEP_CERT:
        if (ar->payload != NULL)
            acme_problem(ar, 400, "malformed", "malformed",
                         "expected POST-as-GET (an empty payload)");
        else
            db_acme_certificate(ar->srv->db, ar->account, ar->id, certificate_read, ar);
        break;
    case STEP_REVOKE:
        if (ar->payload == NULL)
            acme_problem(ar, 400, "malformed", "malformed", "revokeCert needs a certificate");
        else
            step_revoke(ar);
        break;
    }
}
