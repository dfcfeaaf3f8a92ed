#include "enroll.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "apns.h"
#include "hex.h"
#include "json.h"
#include "queries_acme.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "profile.h"
#include "push.h"
#include "vouchd.h"

/* A ClientIdentifier: 128 random bits as hex. */
#define CLIENT_ID_BYTES 16

struct enroll {
    X509 *signer;
    EVP_PKEY *key;
    STACK_OF(X509) * chain; /* the certificates after the first in profile_signing_cert */
    char *ca_pem;
    size_t ca_pem_len;
    unsigned char token_sha256[32];
    bool token_required;
};

static bool read_all(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    size_t cap = 64 * 1024;
    *data = malloc(cap + 1);
    *len = *data ? fread(*data, 1, cap, f) : 0;
    bool ok = *data != NULL && !ferror(f) && *len < cap;
    fclose(f);
    if (ok)
        (*data)[*len] = '\0';
    else {
        free(*data);
        *data = NULL;
    }
    return ok;
}

static bool load_signer(struct enroll *e, const struct config *cfg, char *err, size_t err_size)
{
    BIO *bio = BIO_new_file(cfg->profile_signing_cert, "r");
    e->signer = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    e->chain = sk_X509_new_null();
    X509 *more;
    while (bio != NULL && e->chain != NULL &&
           (more = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        sk_X509_push(e->chain, more);
    BIO_free(bio);
    bio = BIO_new_file(cfg->profile_signing_key, "r");
    e->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    if (e->signer == NULL || e->key == NULL || e->chain == NULL ||
        X509_check_private_key(e->signer, e->key) != 1) {
        snprintf(err, err_size,
                 "profile_signing_cert / profile_signing_key: not a PEM certificate and its key");
        return false;
    }
    return true;
}

struct enroll *enroll_new(const struct vouchd *srv, char *err, size_t err_size)
{
    const struct config *cfg = srv->cfg;
    struct enroll *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    if (cfg->profile_signing_cert != NULL && !load_signer(e, cfg, err, err_size)) {
        enroll_free(e);
        return NULL;
    }
    if (cfg->profile_ca != NULL && !read_all(cfg->profile_ca, &e->ca_pem, &e->ca_pem_len)) {
        snprintf(err, err_size, "profile_ca: cannot read %s (at most 64 KiB)", cfg->profile_ca);
        enroll_free(e);
        return NULL;
    }
    if (cfg->enroll_token != NULL && cfg->enroll_token[0] != '\0') {
        e->token_required = true;
        EVP_Digest(cfg->enroll_token, strlen(cfg->enroll_token), e->token_sha256, NULL,
                   EVP_sha256(), NULL);
    }
    return e;
}

void enroll_free(struct enroll *e)
{
    if (e == NULL)
        return;
    X509_free(e->signer);
    EVP_PKEY_free(e->key);
    sk_X509_pop_free(e->chain, X509_free);
    free(e->ca_pem);
    free(e);
}

/* The ?token= of the request, or NULL (the caller clears query). */
static const char *query_token(struct evhttp_request *req, struct evkeyvalq *query)
{
    TAILQ_INIT(query);
    const char *text = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (text == NULL || evhttp_parse_query_str(text, query) != 0)
        return NULL;
    return evhttp_find_header(query, "token");
}

static bool is_enroll_token(const struct enroll *e, const char *token)
{
    unsigned char digest[32];
    return e->token_required && token != NULL &&
           EVP_Digest(token, strlen(token), digest, NULL, EVP_sha256(), NULL) == 1 &&
           CRYPTO_memcmp(digest, e->token_sha256, sizeof(digest)) == 0;
}

static void refuse(struct evhttp_request *req, int status, const char *reason, const char *detail)
{
    metrics_count_rejection(reason);
    log_warn("refused %s: %s", metrics_endpoint_name(EP_MDM_ENROLL), detail);
    http_reply_text(req, EP_MDM_ENROLL, status, detail);
}

/* Builds, signs and sends the profile with this download's ClientIdentifier. */
static void send_profile(struct vouchd *srv, struct evhttp_request *req, const char *client_id)
{
    const struct config *cfg = srv->cfg;
    struct enroll *e = srv->enroll;
    const struct apns_cert *push =
        srv->push ? apns_client_get0_cert(push_service_get0_apns(srv->push)) : NULL;
    const struct profile_options opts = {
        .public_url = cfg->public_url,
        .topic = push ? push->topic : NULL,
        .organization = cfg->organization,
        .identity = cfg->enroll_identity && strcmp(cfg->enroll_identity, "acme") == 0
                        ? PROFILE_ACME
                        : PROFILE_SCEP,
        .scep_url = cfg->scep_url,
        .scep_challenge = cfg->scep_challenge,
        .acme_directory_url = cfg->acme_directory_url,
        .acme_client_identifier = client_id,
        .ca_pem = e->ca_pem,
        .ca_pem_len = e->ca_pem_len,
    };
    char err[256], *xml = NULL;
    size_t len = 0;
    if (!profile_build(&opts, &xml, &len, err, sizeof(err))) {
        /* Not the device's fault: the server is not set up to enroll (yet). */
        refuse(req, 503, "enroll_unavailable", err);
        return;
    }
    const char *type = "application/x-apple-aspen-config";
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Disposition",
                      "attachment; filename=\"vouch.mobileconfig\"");
    if (e->signer == NULL) {
        http_reply(req, EP_MDM_ENROLL, 200, type, xml, len);
    } else {
        unsigned char *der = NULL;
        size_t der_len = 0;
        if (profile_sign(xml, len, e->signer, e->key, e->chain, &der, &der_len, err, sizeof(err)))
            http_reply(req, EP_MDM_ENROLL, 200, type, der, der_len);
        else
            refuse(req, 503, "enroll_unavailable", err);
        OPENSSL_free(der);
    }
    free(xml);
}

/* A download whose ClientIdentifier vouchd's own ACME server must know first. */
struct minting {
    struct vouchd *srv;
    struct evhttp_request *req;
    char client_id[2 * CLIENT_ID_BYTES + 1];
};

static void client_id_minted(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct minting *m = arg;
    const char *text = NULL;
    size_t len = 0;
    struct json_doc *doc = NULL;
    static const struct json_limits limits = {4096, 4, 16};
    if (outcome != DB_OK) {
        refuse(m->req, 503, outcome == DB_QUERY_ERROR ? "internal_error" : "database_unavailable",
               "cannot mint a ClientIdentifier now: try again");
    } else if (!db_decode_text(res, &text, &len) || text == NULL ||
               json_parse(text, len, &limits, &doc, NULL) != JSON_OK) {
        refuse(m->req, 503, "internal_error", "cannot mint a ClientIdentifier");
    } else {
        const char *refused = json_object_get_string(json_doc_root(doc), "refused");
        if (refused != NULL && strcmp(refused, "token_spent") == 0)
            refuse(m->req, 403, "enroll_token",
                   "this device's enrollment token has been used: its identity was issued");
        else if (refused != NULL)
            refuse(m->req, 403, "enroll_token", "a valid enrollment token is required");
        else
            send_profile(m->srv, m->req, m->client_id);
    }
    json_doc_free(doc);
    m->srv->inflight--;
    free(m);
}

static void handle_request(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    struct enroll *e = srv->enroll;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        refuse(req, 405, "method_not_allowed", "use GET");
        return;
    }
    /* The deployment's enroll_token opens the profile to any device; with vouchd's own ACME
     * server, an expected device's own token (vouchctl devices expect) ties the profile's
     * ClientIdentifier to its serial. */
    struct evkeyvalq query;
    const char *token = query_token(req, &query);
    bool deployment_token = is_enroll_token(e, token);
    bool device_token = srv->acme != NULL && token != NULL && !deployment_token;
    uint8_t device_token_sha256[32];
    if (device_token)
        EVP_Digest(token, strlen(token), device_token_sha256, NULL, EVP_sha256(), NULL);
    evhttp_clear_headers(&query);
    if (e->token_required && !deployment_token && !device_token) {
        refuse(req, 403, "enroll_token", "a valid enrollment token is required");
        return;
    }
    /* The ClientIdentifier of an ACME profile: one per download (the device's order). */
    unsigned char random[CLIENT_ID_BYTES];
    char client_id[2 * CLIENT_ID_BYTES + 1];
    if (RAND_bytes(random, sizeof(random)) != 1) {
        refuse(req, 503, "internal_error", "no random bytes");
        return;
    }
    hex_encode(random, sizeof(random), client_id);
    if (srv->acme == NULL) {
        send_profile(srv, req, client_id);
        return;
    }
    struct minting *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        refuse(req, 503, "internal_error", "out of memory");
        return;
    }
    m->srv = srv;
    m->req = req;
    memcpy(m->client_id, client_id, sizeof(client_id));
    srv->inflight++;
    db_acme_client_id_new(srv->db, client_id, device_token ? device_token_sha256 : NULL,
                          srv->cfg->acme_identifier_lifetime, client_id_minted, m);
}

void enroll_register_routes(void)
{
    http_route("/mdm/enroll", handle_request);
}
