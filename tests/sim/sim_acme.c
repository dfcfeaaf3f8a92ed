/*
 * sim_acme: a device's ACME enrollment (device-attest-01); see sim_acme.h.
 */
#include "sim_acme.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cbor.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <plist/plist.h>

#include "json.h"

#define ACME_URL_MAX 1024
#define ACME_PROBLEM_PREFIX "urn:ietf:params:acme:error:"
#define ACME_PAYLOAD_TYPE "com.apple.security.acme"
#define ACME_DIRECTORY_SUFFIX "/acme/directory"
#define ACME_JSON_MAX (64 * 1024)
#define ACME_JWS_MAX (64 * 1024)
#define ACME_POLLS 20 /* an order still "processing" is read again this often, 100 ms apart */

/* ---- the pool of used ClientIdentifiers ------------------------------------------------------ */

struct sim_acme_pool {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    size_t pending; /* devices that have not reported yet */
    char (*used)[SIM_ACME_CLIENT_ID_MAX + 1];
    size_t count;
    size_t cap;
    size_t taken; /* round robin over used */
};

struct sim_acme_pool *sim_acme_pool_new(size_t honest)
{
    struct sim_acme_pool *pool = calloc(1, sizeof(*pool));

    if (pool == NULL)
        return NULL;
    if (pthread_mutex_init(&pool->lock, NULL) != 0) {
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->changed, NULL) != 0) {
        pthread_mutex_destroy(&pool->lock);
        free(pool);
        return NULL;
    }
    pool->pending = honest;
    return pool;
}

void sim_acme_pool_free(struct sim_acme_pool *pool)
{
    if (pool == NULL)
        return;
    pthread_cond_destroy(&pool->changed);
    pthread_mutex_destroy(&pool->lock);
    free(pool->used);
    free(pool);
}

void sim_acme_pool_report(struct sim_acme_pool *pool, const char *client_id)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    if (pool->pending > 0)
        pool->pending--;
    if (client_id != NULL && pool->count == pool->cap) {
        size_t cap = pool->cap == 0 ? 16 : pool->cap * 2;
        char(*grown)[SIM_ACME_CLIENT_ID_MAX + 1] = realloc(pool->used, cap * sizeof(*grown));
        if (grown != NULL) {
            pool->used = grown;
            pool->cap = cap;
        }
    }
    if (client_id != NULL && pool->count < pool->cap)
        snprintf(pool->used[pool->count++], SIM_ACME_CLIENT_ID_MAX + 1, "%s", client_id);
    pthread_cond_broadcast(&pool->changed);
    pthread_mutex_unlock(&pool->lock);
}

/* Waits for a used identifier; false when every device reported and none has one. */
static bool pool_take(struct sim_acme_pool *pool, char out[SIM_ACME_CLIENT_ID_MAX + 1])
{
    bool ok = false;

    pthread_mutex_lock(&pool->lock);
    while (pool->count == 0 && pool->pending > 0)
        pthread_cond_wait(&pool->changed, &pool->lock);
    if (pool->count > 0) {
        snprintf(out, SIM_ACME_CLIENT_ID_MAX + 1, "%s", pool->used[pool->taken++ % pool->count]);
        ok = true;
    }
    pthread_mutex_unlock(&pool->lock);
    return ok;
}

/* ---- encodings ------------------------------------------------------------------------------- */

char *sim_acme_b64url(const unsigned char *data, size_t len)
{
    size_t out_len;
    char *out;
    int n;

    if (len > (size_t)INT_MAX / 4 * 3 - 3)
        return NULL;
    out_len = 4 * ((len + 2) / 3) + 1;
    out = malloc(out_len);
    if (out == NULL)
        return NULL;
    n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    if (n < 0) {
        free(out);
        return NULL;
    }
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p != '\0'; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
    }
    return out;
}

/* Adds key: value to map; takes over value's reference (and drops it on failure). */
static bool cbor_put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    cbor_item_t *k = cbor_build_string(key);
    bool ok = k != NULL && value != NULL &&
              cbor_map_add(map, (struct cbor_pair){.key = k, .value = value});

    if (k != NULL)
        cbor_decref(&k);
    if (value != NULL)
        cbor_decref(&value);
    return ok;
}

char *sim_acme_att_obj(const struct fake_chain *chain)
{
    cbor_item_t *obj = cbor_new_definite_map(2);
    cbor_item_t *stmt = cbor_new_definite_map(1);
    cbor_item_t *x5c = cbor_new_definite_array(chain->count);
    unsigned char *bytes = NULL;
    size_t size = 0;
    size_t len = 0;
    char *text = NULL;
    bool ok = obj != NULL && stmt != NULL && x5c != NULL;

    for (size_t i = 0; ok && i < chain->count; i++) {
        cbor_item_t *item = cbor_build_bytestring(chain->der[i], chain->len[i]);
        ok = item != NULL && cbor_array_push(x5c, item);
        if (item != NULL)
            cbor_decref(&item);
    }
    /* authData is left out, as Apple's devices do ([DA] §5: SHOULD be omitted). cbor_put()
     * consumes a reference; the maps keep their own, so take one for each. */
    ok = ok && cbor_put(stmt, "x5c", cbor_incref(x5c)) &&
         cbor_put(obj, "fmt", cbor_build_string("apple")) &&
         cbor_put(obj, "attStmt", cbor_incref(stmt));
    if (ok)
        len = cbor_serialize_alloc(obj, &bytes, &size);
    if (len > 0)
        text = sim_acme_b64url(bytes, len);
    free(bytes);
    if (x5c != NULL)
        cbor_decref(&x5c);
    if (stmt != NULL)
        cbor_decref(&stmt);
    if (obj != NULL)
        cbor_decref(&obj);
    return text;
}

/* ---- one enrollment -------------------------------------------------------------------------- */

struct acme_flow {
    const struct sim_acme_device *d;
    struct sim_acme_result *r;
    struct sim_http_response resp;
    char public_base[ACME_URL_MAX]; /* DirectoryURL without "/acme/directory" */
    char directory_url[ACME_URL_MAX];
    char new_nonce[ACME_URL_MAX];
    char new_account[ACME_URL_MAX];
    char new_order[ACME_URL_MAX];
    char kid[ACME_URL_MAX]; /* the account URL */
    char nonce[SIM_HTTP_NONCE_MAX];
    char own_client_id[SIM_ACME_CLIENT_ID_MAX + 1]; /* what the profile gave this device */
    long key_bits;                                  /* the payload's KeySize: 256 or 384 */
    /* A problem type (without its prefix) that ends the flow as SIM_ACME_REFUSED; NULL while
     * nothing is expected. */
    const char *refusal_type;
    bool refused;
    EVP_PKEY *account_key;
    EVP_PKEY *device_key;
    struct json_doc *doc; /* the last JSON answer */
};

static bool flow_fail(struct acme_flow *f, enum sim_acme_failure failure, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records why the flow stops; always false, for `return flow_fail(...)`. */
static bool flow_fail(struct acme_flow *f, enum sim_acme_failure failure, const char *fmt, ...)
{
    va_list ap;

    f->r->failure = failure;
    va_start(ap, fmt);
    vsnprintf(f->r->detail, sizeof(f->r->detail), fmt, ap);
    va_end(ap);
    return false;
}

/* A printable excerpt of the last answer's body. */
static void body_excerpt(const struct sim_http_response *resp, char *out, size_t outlen)
{
    size_t n = 0;

    for (size_t i = 0; i < resp->body_len && n + 1 < outlen && i < 300; i++) {
        unsigned char ch = (unsigned char)resp->body[i];
        out[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
    }
    out[n] = '\0';
}

/* The request URL for a public URL of vouchd's: the same path under --url. */
static bool local_url(struct acme_flow *f, const char *public_url, char *out, size_t outlen)
{
    size_t base_len = strlen(f->public_base);
    size_t n = strlen(f->d->base_url);
    int written;

    if (strncmp(public_url, f->public_base, base_len) != 0 || public_url[base_len] != '/')
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the URL %s is not under the directory's %s",
                         public_url, f->public_base);
    while (n > 0 && f->d->base_url[n - 1] == '/')
        n--;
    written = snprintf(out, outlen, "%.*s%s", (int)n, f->d->base_url, public_url + base_len);
    if (written < 0 || (size_t)written >= outlen)
        return flow_fail(f, SIM_ACME_FAIL_LOCAL, "URL too long");
    return true;
}

/* Sends one request; false (recorded) on a transport failure. Keeps the answer's nonce. */
static bool flow_send(struct acme_flow *f, const char *method, const char *url,
                      const char *const *headers, size_t nheaders, const char *body, size_t len)
{
    char err[512];

    f->d->stats->requests++;
    if (!sim_http_request(f->d->http, method, url, headers, nheaders, body, len, &f->resp, err,
                          sizeof(err))) {
        f->r->status = 0;
        return flow_fail(f, SIM_ACME_FAIL_TRANSPORT, "%s %s: %s", method, url, err);
    }
    f->r->status = f->resp.status;
    if (f->resp.replay_nonce[0] != '\0')
        snprintf(f->nonce, sizeof(f->nonce), "%s", f->resp.replay_nonce);
    return true;
}

/* The problem type of the last answer (suffix after urn:ietf:params:acme:error:), or "". */
static void answer_problem(struct acme_flow *f)
{
    static const struct json_limits limits = {ACME_JSON_MAX, 4, 64};
    struct json_doc *doc = NULL;
    const char *type;

    f->r->problem[0] = '\0';
    if (strncmp(f->resp.content_type, "application/problem+json", 24) != 0 ||
        json_parse(f->resp.body, f->resp.body_len, &limits, &doc, NULL) != JSON_OK)
        return;
    type = json_object_get_string(json_doc_root(doc), "type");
    if (type != NULL && strncmp(type, ACME_PROBLEM_PREFIX, strlen(ACME_PROBLEM_PREFIX)) == 0)
        snprintf(f->r->problem, sizeof(f->r->problem), "%s", type + strlen(ACME_PROBLEM_PREFIX));
    json_doc_free(doc);
}

/* Checks the answer's status; a problem the flow expects ends it as refused (false, with
 * f->refused set). */
static bool flow_expect(struct acme_flow *f, long want, long also)
{
    char excerpt[320];

    if (f->resp.status == want || (also != 0 && f->resp.status == also))
        return true;
    answer_problem(f);
    body_excerpt(&f->resp, excerpt, sizeof(excerpt));
    if (f->refusal_type != NULL && strcmp(f->r->problem, f->refusal_type) == 0 &&
        f->resp.status >= 400 && f->resp.status < 500) {
        f->refused = true;
        snprintf(f->r->detail, sizeof(f->r->detail), "HTTP %ld %s", f->resp.status, excerpt);
        return false;
    }
    return flow_fail(f, SIM_ACME_FAIL_HTTP, "HTTP %ld (expected %ld): %s", f->resp.status, want,
                     excerpt[0] != '\0' ? excerpt : "(empty body)");
}

/* Parses the last answer as a JSON object into f->doc. */
static bool flow_json(struct acme_flow *f)
{
    static const struct json_limits limits = {ACME_JSON_MAX, 8, 1024};
    struct json_parse_error why;

    json_doc_free(f->doc);
    f->doc = NULL;
    if (json_parse(f->resp.body, f->resp.body_len, &limits, &f->doc, &why) != JSON_OK ||
        json_value_kind(json_doc_root(f->doc)) != JSON_KIND_OBJECT)
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the answer is not a JSON object");
    return true;
}

/* Copies the string member key of obj into out. */
static bool json_member(struct acme_flow *f, const struct json_value *obj, const char *key,
                        char *out, size_t outlen)
{
    const char *s = json_object_get_string(obj, key);

    if (s == NULL || s[0] == '\0' || strlen(s) >= outlen)
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the answer has no usable \"%s\"", key);
    memcpy(out, s, strlen(s) + 1);
    return true;
}

/* ---- the profile ----------------------------------------------------------------------------- */

/* The plist of a profile as vouchd serves it: XML or binary, or inside a CMS SignedData. */
static plist_t profile_plist(const char *body, size_t len)
{
    plist_t root = NULL;
    CMS_ContentInfo *cms = NULL;
    BIO *out = NULL;
    const unsigned char *p = (const unsigned char *)body;
    char *content;
    long content_len;

    if (len > INT_MAX)
        return NULL;
    if (len > 0 && (body[0] == '<' || (len >= 6 && memcmp(body, "bplist", 6) == 0))) {
        plist_from_memory(body, (uint32_t)len, &root);
        return root;
    }
    /* Signed: the signature is checked (the content's integrity); the signer is not. */
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    out = BIO_new(BIO_s_mem());
    if (cms != NULL && out != NULL &&
        CMS_verify(cms, NULL, NULL, NULL, out, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1) {
        content_len = BIO_get_mem_data(out, &content);
        if (content_len > 0 && content_len <= INT_MAX)
            plist_from_memory(content, (uint32_t)content_len, &root);
    }
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    return root;
}

static const char *plist_string(plist_t dict, const char *key)
{
    plist_t node = plist_dict_get_item(dict, key);

    if (node == NULL || plist_get_node_type(node) != PLIST_STRING)
        return NULL;
    return plist_get_string_ptr(node, NULL);
}

/* GET URL/mdm/enroll and read its ACME payload. */
static bool flow_profile(struct acme_flow *f)
{
    char url[ACME_URL_MAX + 160];
    const char *base = f->d->base_url;
    size_t n = strlen(base);
    plist_t root;
    plist_t content;
    plist_t acme = NULL;
    const char *cid;
    const char *dir;
    size_t dir_len;
    size_t suffix_len = strlen(ACME_DIRECTORY_SUFFIX);
    bool ok = false;

    f->r->step = "profile";
    while (n > 0 && base[n - 1] == '/')
        n--;
    if (n > ACME_URL_MAX)
        return flow_fail(f, SIM_ACME_FAIL_LOCAL, "--url too long");
    snprintf(url, sizeof(url), "%.*s/mdm/enroll%s%s", (int)n, base,
             f->d->enroll_token != NULL ? "?token=" : "",
             f->d->enroll_token != NULL ? f->d->enroll_token : "");
    if (!flow_send(f, "GET", url, NULL, 0, NULL, 0) || !flow_expect(f, 200, 0))
        return false;
    root = profile_plist(f->resp.body, f->resp.body_len);
    content = root != NULL ? plist_dict_get_item(root, "PayloadContent") : NULL;
    for (uint32_t i = 0; content != NULL && plist_get_node_type(content) == PLIST_ARRAY &&
                         i < plist_array_get_size(content);
         i++) {
        plist_t item = plist_array_get_item(content, i);
        const char *type =
            plist_get_node_type(item) == PLIST_DICT ? plist_string(item, "PayloadType") : NULL;
        if (type != NULL && strcmp(type, ACME_PAYLOAD_TYPE) == 0)
            acme = item;
    }
    if (acme == NULL) {
        flow_fail(f, SIM_ACME_FAIL_PROTOCOL,
                  "the enrollment profile has no %s payload (is vouchd's acme_ca_cert set?)",
                  ACME_PAYLOAD_TYPE);
        goto out;
    }
    cid = plist_string(acme, "ClientIdentifier");
    dir = plist_string(acme, "DirectoryURL");
    if (cid == NULL || cid[0] == '\0' || strlen(cid) > SIM_ACME_CLIENT_ID_MAX || dir == NULL ||
        strlen(dir) >= sizeof(f->directory_url)) {
        flow_fail(f, SIM_ACME_FAIL_PROTOCOL,
                  "the ACME payload lacks a usable ClientIdentifier "
                  "or DirectoryURL");
        goto out;
    }
    snprintf(f->own_client_id, sizeof(f->own_client_id), "%s", cid);
    snprintf(f->directory_url, sizeof(f->directory_url), "%s", dir);
    f->key_bits = 384;
    plist_t size = plist_dict_get_item(acme, "KeySize");
    if (size != NULL && plist_get_node_type(size) == PLIST_UINT) {
        uint64_t bits = 0;
        plist_get_uint_val(size, &bits);
        f->key_bits = bits == 256 ? 256 : 384;
    }
    /* vouchd's URLs are all under public_url, which is where its directory is. */
    dir_len = strlen(dir);
    if (dir_len > suffix_len && strcmp(dir + dir_len - suffix_len, ACME_DIRECTORY_SUFFIX) == 0) {
        snprintf(f->public_base, sizeof(f->public_base), "%.*s", (int)(dir_len - suffix_len), dir);
    } else {
        const char *host = strstr(dir, "://");
        const char *slash = host != NULL ? strchr(host + 3, '/') : NULL;
        snprintf(f->public_base, sizeof(f->public_base), "%.*s",
                 (int)(slash != NULL ? slash - dir : (long)dir_len), dir);
    }
    ok = true;
out:
    plist_free(root);
    return ok;
}

/* ---- JWS ------------------------------------------------------------------------------------- */

/* The curve size of an EC key in bytes (32 or 48); 0 for anything else. */
static size_t key_coordinate_size(EVP_PKEY *key)
{
    int bits = EVP_PKEY_get_bits(key);

    return bits == 256 ? 32 : bits == 384 ? 48 : 0;
}

/* Writes the public JWK of an EC key (RFC 7518 §6.2) as the current value of w. */
static bool write_jwk(struct json_writer *w, EVP_PKEY *key)
{
    size_t size = key_coordinate_size(key);
    BIGNUM *x = NULL;
    BIGNUM *y = NULL;
    unsigned char bx[48];
    unsigned char by[48];
    char *tx = NULL;
    char *ty = NULL;
    bool ok = size > 0 && EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
              EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
              BN_bn2binpad(x, bx, (int)size) == (int)size &&
              BN_bn2binpad(y, by, (int)size) == (int)size;

    if (ok) {
        tx = sim_acme_b64url(bx, size);
        ty = sim_acme_b64url(by, size);
    }
    ok = ok && tx != NULL && ty != NULL && json_write_begin_object(w) && json_write_key(w, "crv") &&
         json_write_string(w, size == 32 ? "P-256" : "P-384") && json_write_key(w, "kty") &&
         json_write_string(w, "EC") && json_write_key(w, "x") && json_write_string(w, tx) &&
         json_write_key(w, "y") && json_write_string(w, ty) && json_write_end_object(w);
    BN_free(x);
    BN_free(y);
    free(tx);
    free(ty);
    return ok;
}

/* The JWS signature of input: ECDSA with SHA-256 (P-256) or SHA-384 (P-384), as r||s. */
static char *jws_sign(EVP_PKEY *key, const char *input, size_t len)
{
    size_t size = key_coordinate_size(key);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[160];
    size_t der_len = sizeof(der);
    const unsigned char *p = der;
    ECDSA_SIG *sig = NULL;
    const BIGNUM *r;
    const BIGNUM *s;
    unsigned char raw[96];
    char *text = NULL;

    if (ctx != NULL && size > 0 &&
        EVP_DigestSignInit(ctx, NULL, size == 32 ? EVP_sha256() : EVP_sha384(), NULL, key) == 1 &&
        EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)input, len) == 1 &&
        (sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) != NULL) {
        ECDSA_SIG_get0(sig, &r, &s);
        if (BN_bn2binpad(r, raw, (int)size) == (int)size &&
            BN_bn2binpad(s, raw + size, (int)size) == (int)size)
            text = sim_acme_b64url(raw, 2 * size);
    }
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(ctx);
    return text;
}

/* The flattened JWS of payload (NULL: POST-as-GET, payload "") for public_url; signed with the
 * account key, naming it by jwk (newAccount) or kid. */
static char *jws_build(struct acme_flow *f, const char *public_url, const char *payload,
                       bool use_jwk, size_t *out_len)
{
    struct json_writer *w = json_writer_new(8192, 0);
    struct json_writer *env = json_writer_new(ACME_JWS_MAX, 0);
    const char *header;
    size_t header_len;
    char *p64 = NULL;
    char *b64 = NULL;
    char *input = NULL;
    char *sig = NULL;
    char *out = NULL;
    const char *text;
    size_t len;
    bool ok = w != NULL && env != NULL && json_write_begin_object(w) && json_write_key(w, "alg") &&
              json_write_string(w, key_coordinate_size(f->account_key) == 32 ? "ES256" : "ES384");

    if (use_jwk)
        ok = ok && json_write_key(w, "jwk") && write_jwk(w, f->account_key);
    else
        ok = ok && json_write_key(w, "kid") && json_write_string(w, f->kid);
    ok = ok && json_write_key(w, "nonce") && json_write_string(w, f->nonce) &&
         json_write_key(w, "url") && json_write_string(w, public_url) && json_write_end_object(w) &&
         json_writer_finish(w, &header, &header_len);
    if (ok) {
        p64 = sim_acme_b64url((const unsigned char *)header, header_len);
        b64 = sim_acme_b64url((const unsigned char *)(payload != NULL ? payload : ""),
                              payload != NULL ? strlen(payload) : 0);
    }
    if (p64 != NULL && b64 != NULL) {
        size_t n = strlen(p64) + 1 + strlen(b64) + 1;
        input = malloc(n);
        if (input != NULL) {
            snprintf(input, n, "%s.%s", p64, b64);
            sig = jws_sign(f->account_key, input, n - 1);
        }
    }
    ok = sig != NULL && json_write_begin_object(env) && json_write_key(env, "protected") &&
         json_write_string(env, p64) && json_write_key(env, "payload") &&
         json_write_string(env, b64) && json_write_key(env, "signature") &&
         json_write_string(env, sig) && json_write_end_object(env) &&
         json_writer_finish(env, &text, &len);
    if (ok && (out = malloc(len + 1)) != NULL) {
        memcpy(out, text, len + 1);
        *out_len = len;
    }
    free(p64);
    free(b64);
    free(input);
    free(sig);
    json_writer_free(w);
    json_writer_free(env);
    return out;
}

/* HEAD newNonce: a fresh nonce. */
static bool flow_fresh_nonce(struct acme_flow *f)
{
    char url[ACME_URL_MAX + 64];

    f->nonce[0] = '\0';
    if (!local_url(f, f->new_nonce, url, sizeof(url)) ||
        !flow_send(f, "HEAD", url, NULL, 0, NULL, 0) || !flow_expect(f, 200, 204))
        return false;
    if (f->nonce[0] == '\0')
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "newNonce answered without Replay-Nonce");
    return true;
}

/* POSTs a JWS of payload (NULL: POST-as-GET) to public_url; a badNonce answer is retried once
 * with the nonce it carries, as RFC 8555 §6.5 asks of clients. */
static bool flow_post(struct acme_flow *f, const char *public_url, const char *payload,
                      bool use_jwk)
{
    static const char *const headers[] = {"Content-Type: application/jose+json", "Expect:"};
    char url[ACME_URL_MAX + 64];

    if (!local_url(f, public_url, url, sizeof(url)))
        return false;
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t len = 0;
        char *body;
        bool sent;

        if (f->nonce[0] == '\0' && !flow_fresh_nonce(f))
            return false;
        body = jws_build(f, public_url, payload, use_jwk, &len);
        if (body == NULL)
            return flow_fail(f, SIM_ACME_FAIL_LOCAL, "cannot sign the JWS");
        f->nonce[0] = '\0'; /* used: the answer brings the next one */
        sent = flow_send(f, "POST", url, headers, 2, body, len);
        free(body);
        if (!sent)
            return false;
        if (f->resp.status != 400 || attempt > 0)
            break;
        answer_problem(f);
        if (strcmp(f->r->problem, "badNonce") != 0)
            break;
    }
    return true;
}

/* ---- the steps ------------------------------------------------------------------------------- */

static bool flow_directory(struct acme_flow *f)
{
    char url[ACME_URL_MAX + 64];
    const struct json_value *root;

    f->r->step = "directory";
    if (!local_url(f, f->directory_url, url, sizeof(url)) ||
        !flow_send(f, "GET", url, NULL, 0, NULL, 0) || !flow_expect(f, 200, 0) || !flow_json(f))
        return false;
    root = json_doc_root(f->doc);
    return json_member(f, root, "newNonce", f->new_nonce, sizeof(f->new_nonce)) &&
           json_member(f, root, "newAccount", f->new_account, sizeof(f->new_account)) &&
           json_member(f, root, "newOrder", f->new_order, sizeof(f->new_order));
}

static bool flow_account(struct acme_flow *f)
{
    f->r->step = "newNonce";
    if (!flow_fresh_nonce(f))
        return false;
    f->r->step = "newAccount";
    f->account_key = EVP_EC_gen("P-256");
    if (f->account_key == NULL)
        return flow_fail(f, SIM_ACME_FAIL_LOCAL, "cannot make the account key");
    if (!flow_post(f, f->new_account, "{\"termsOfServiceAgreed\":true}", true) ||
        !flow_expect(f, 201, 200))
        return false;
    if (f->resp.location[0] == '\0')
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "newAccount answered without Location");
    snprintf(f->kid, sizeof(f->kid), "%s", f->resp.location);
    return true;
}

/* newOrder for client_id; order_url, authz and finalize receive the order's URLs. */
static bool flow_order(struct acme_flow *f, const char *client_id, char *order_url, char *authz,
                       char *finalize)
{
    struct json_writer *w = json_writer_new(4096, 0);
    const char *payload;
    const struct json_value *auths;
    const char *a = NULL;
    size_t alen = 0;
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "identifiers") &&
              json_write_begin_array(w) && json_write_begin_object(w) &&
              json_write_key(w, "type") && json_write_string(w, "permanent-identifier") &&
              json_write_key(w, "value") && json_write_string(w, client_id) &&
              json_write_end_object(w) && json_write_end_array(w) && json_write_end_object(w) &&
              json_writer_finish(w, &payload, NULL);

    f->r->step = "newOrder";
    if (!ok) {
        json_writer_free(w);
        return flow_fail(f, SIM_ACME_FAIL_LOCAL, "cannot write the order");
    }
    ok = flow_post(f, f->new_order, payload, false);
    json_writer_free(w);
    if (!ok || !flow_expect(f, 201, 0) || !flow_json(f))
        return false;
    if (f->resp.location[0] == '\0')
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "newOrder answered without Location");
    snprintf(order_url, ACME_URL_MAX, "%s", f->resp.location);
    auths = json_object_find(json_doc_root(f->doc), "authorizations");
    if (json_value_kind(auths) != JSON_KIND_ARRAY || json_array_length(auths) != 1 ||
        json_value_kind(json_array_at(auths, 0)) != JSON_KIND_STRING)
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the order has not one authorization");
    if (!json_get_string(json_array_at(auths, 0), &a, &alen) || alen == 0 || alen >= ACME_URL_MAX)
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the authorization URL is unusable");
    memcpy(authz, a, alen + 1);
    return json_member(f, json_doc_root(f->doc), "finalize", finalize, ACME_URL_MAX);
}

/* POST-as-GET the authorization: its device-attest-01 challenge's URL and token. */
static bool flow_challenge(struct acme_flow *f, const char *authz, char *chall_url, char *token,
                           size_t token_size)
{
    const struct json_value *challenges;

    f->r->step = "authorization";
    if (!flow_post(f, authz, NULL, false) || !flow_expect(f, 200, 0) || !flow_json(f))
        return false;
    challenges = json_object_find(json_doc_root(f->doc), "challenges");
    for (size_t i = 0; i < json_array_length(challenges); i++) {
        const struct json_value *c = json_array_at(challenges, i);
        const char *type = json_object_get_string(c, "type");
        if (type != NULL && strcmp(type, "device-attest-01") == 0)
            return json_member(f, c, "url", chall_url, ACME_URL_MAX) &&
                   json_member(f, c, "token", token, token_size);
    }
    return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the authorization offers no device-attest-01");
}

/* The device makes its key; Apple attests it for token; the answer goes to the challenge. */
static bool flow_attest(struct acme_flow *f, const char *chall_url, const char *token)
{
    const struct sim_device *dev = f->d->dev;
    struct fake_apple_device facts;
    struct fake_leaf_spec *spec = NULL;
    struct fake_chain chain = {0, {NULL}, {0}};
    unsigned char freshness[32];
    char err[512];
    char *att_obj = NULL;
    char *payload = NULL;
    const char *status;
    bool ok = false;

    f->r->step = "challenge";
    f->device_key = EVP_EC_gen(f->key_bits == 256 ? "P-256" : "P-384");
    spec = malloc(sizeof(*spec));
    if (f->device_key == NULL || spec == NULL) {
        flow_fail(f, SIM_ACME_FAIL_LOCAL, "cannot make the device key");
        goto out;
    }
    /* The freshness code of an ACME attestation: SHA-256 of the token's ASCII ([A-CRED]). */
    EVP_Digest(token, strlen(token), freshness, NULL, EVP_sha256(), NULL);
    memset(&facts, 0, sizeof(facts));
    facts.serial_number = dev->serial;
    facts.udid = dev->udid;
    facts.os_version = dev->os_version;
    facts.software_update_device_id = sim_device_software_update_id(dev);
    facts.nonce = freshness;
    facts.nonce_len = sizeof(freshness);
    if (!fake_leaf_spec_device(spec, &facts, f->d->now)) {
        flow_fail(f, SIM_ACME_FAIL_LOCAL, "the device's facts do not fit a leaf");
        goto out;
    }
    spec->key = f->device_key;
    if (!fake_apple_leaf(f->d->apple, spec, &chain, err, sizeof(err))) {
        flow_fail(f, SIM_ACME_FAIL_LOCAL, "attesting the key: %s", err);
        goto out;
    }
    att_obj = sim_acme_att_obj(&chain);
    if (att_obj != NULL) {
        size_t n = strlen(att_obj) + sizeof("{\"attObj\":\"\"}");
        payload = malloc(n);
        if (payload != NULL)
            snprintf(payload, n, "{\"attObj\":\"%s\"}", att_obj);
    }
    if (payload == NULL) {
        flow_fail(f, SIM_ACME_FAIL_LOCAL, "out of memory");
        goto out;
    }
    if (!flow_post(f, chall_url, payload, false) || !flow_expect(f, 200, 0) || !flow_json(f))
        goto out;
    status = json_object_get_string(json_doc_root(f->doc), "status");
    if (status == NULL || strcmp(status, "valid") != 0) {
        char excerpt[320];
        body_excerpt(&f->resp, excerpt, sizeof(excerpt));
        flow_fail(f, SIM_ACME_FAIL_HTTP, "the challenge is %s: %s", status ? status : "?", excerpt);
        goto out;
    }
    ok = true;
out:
    free(payload);
    free(att_obj);
    fake_chain_free(&chain);
    free(spec);
    return ok;
}

/* A CSR for key, subject CN = the device's UDID (vouchd writes its own names). */
static char *csr_text(EVP_PKEY *key, const char *udid)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    unsigned char *der = NULL;
    int der_len = 0;
    char *text = NULL;

    if (req != NULL && name != NULL && X509_REQ_set_version(req, 0) == 1 &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)udid, -1, -1,
                                   0) == 1 &&
        X509_REQ_set_subject_name(req, name) == 1 && X509_REQ_set_pubkey(req, key) == 1 &&
        X509_REQ_sign(req, key, EVP_sha256()) > 0 && (der_len = i2d_X509_REQ(req, &der)) > 0)
        text = sim_acme_b64url(der, (size_t)der_len);
    OPENSSL_free(der);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return text;
}

/* finalize with a CSR (of the attested key, or another one); cert_url receives the certificate
 * URL once the order is valid. */
static bool flow_finalize(struct acme_flow *f, const char *order_url, const char *finalize,
                          char *cert_url)
{
    EVP_PKEY *other = NULL;
    EVP_PKEY *csr_key = f->device_key;
    char *csr;
    char *payload = NULL;
    const char *status;
    bool ok;

    f->r->step = "finalize";
    if (f->d->behaviour == SIM_ACME_WRONG_CSR_KEY) {
        other = EVP_EC_gen(f->key_bits == 256 ? "P-256" : "P-384");
        csr_key = other;
        f->refusal_type = "badCSR";
    }
    csr = csr_key != NULL ? csr_text(csr_key, f->d->dev->udid) : NULL;
    if (csr != NULL) {
        size_t n = strlen(csr) + sizeof("{\"csr\":\"\"}");
        payload = malloc(n);
        if (payload != NULL)
            snprintf(payload, n, "{\"csr\":\"%s\"}", csr);
    }
    EVP_PKEY_free(other);
    free(csr);
    if (payload == NULL)
        return flow_fail(f, SIM_ACME_FAIL_LOCAL, "cannot make the CSR");
    ok = flow_post(f, finalize, payload, false) && flow_expect(f, 200, 0) && flow_json(f);
    free(payload);
    if (!ok)
        return false;
    if (f->d->behaviour == SIM_ACME_WRONG_CSR_KEY)
        return flow_fail(f, SIM_ACME_FAIL_NOT_REFUSED,
                         "vouchd accepted at finalize a CSR for another key than the attested one");
    /* vouchd issues at once; a server that takes its time says "processing": ask again. */
    for (int poll = 0; poll < ACME_POLLS; poll++) {
        status = json_object_get_string(json_doc_root(f->doc), "status");
        if (status == NULL || strcmp(status, "processing") != 0)
            break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        f->r->step = "order";
        if (!flow_post(f, order_url, NULL, false) || !flow_expect(f, 200, 0) || !flow_json(f))
            return false;
    }
    status = json_object_get_string(json_doc_root(f->doc), "status");
    if (status == NULL || strcmp(status, "valid") != 0)
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the order is %s after finalize",
                         status ? status : "?");
    return json_member(f, json_doc_root(f->doc), "certificate", cert_url, ACME_URL_MAX);
}

/* POST-as-GET the certificate chain; the identity is its first certificate with the key. */
static bool flow_download(struct acme_flow *f, const char *cert_url)
{
    BIO *in = NULL;
    BIO *out = NULL;
    X509 *cert = NULL;
    bool ok = false;

    f->r->step = "certificate";
    if (!flow_post(f, cert_url, NULL, false) || !flow_expect(f, 200, 0))
        return false;
    if (f->resp.body_len > INT_MAX)
        return flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the certificate chain is too long");
    in = BIO_new_mem_buf(f->resp.body, (int)f->resp.body_len);
    cert = in != NULL ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
    if (cert == NULL) {
        flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the answer is not a PEM certificate chain");
        goto out;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(cert), f->device_key) != 1) {
        flow_fail(f, SIM_ACME_FAIL_PROTOCOL, "the certificate is not for the device's key");
        goto out;
    }
    out = BIO_new(BIO_s_mem());
    if (out == NULL || PEM_write_bio_X509(out, cert) != 1 ||
        PEM_write_bio_PrivateKey(out, f->device_key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (f->r->identity_pem = fake_bio_string(out, &f->r->identity_pem_len)) == NULL) {
        flow_fail(f, SIM_ACME_FAIL_LOCAL, "cannot encode the identity");
        goto out;
    }
    ok = true;
out:
    X509_free(cert);
    BIO_free(in);
    BIO_free(out);
    return ok;
}

enum sim_acme_outcome sim_acme_enroll(const struct sim_acme_device *d, struct sim_acme_result *r)
{
    struct acme_flow f;
    char order_url[ACME_URL_MAX] = "";
    char authz[ACME_URL_MAX] = "";
    char finalize[ACME_URL_MAX] = "";
    char chall[ACME_URL_MAX] = "";
    char cert_url[ACME_URL_MAX] = "";
    char token[256] = "";
    bool reuse = d->behaviour == SIM_ACME_REUSE_CLIENT_ID;
    enum sim_acme_outcome outcome = SIM_ACME_FAILED;
    bool issued;

    memset(r, 0, sizeof(*r));
    memset(&f, 0, sizeof(f));
    f.d = d;
    f.r = r;
    r->step = "profile";
    issued = flow_profile(&f) && flow_directory(&f) && flow_account(&f);
    if (issued && reuse) {
        /* A ClientIdentifier intercepted from another device, after that device used it. */
        r->step = "newOrder";
        if (d->pool == NULL || !pool_take(d->pool, r->client_id))
            issued = flow_fail(&f, SIM_ACME_FAIL_LOCAL,
                               "no device of this run used a ClientIdentifier this one could "
                               "reuse");
        f.refusal_type = "rejectedIdentifier";
    } else if (issued) {
        snprintf(r->client_id, sizeof(r->client_id), "%s", f.own_client_id);
    }
    issued = issued && flow_order(&f, r->client_id, order_url, authz, finalize) &&
             flow_challenge(&f, authz, chall, token, sizeof(token)) &&
             flow_attest(&f, chall, token) && flow_finalize(&f, order_url, finalize, cert_url) &&
             flow_download(&f, cert_url);
    if (f.refused) {
        outcome = SIM_ACME_REFUSED;
    } else if (issued && reuse) {
        r->failure = SIM_ACME_FAIL_NOT_REFUSED;
        snprintf(r->detail, sizeof(r->detail),
                 "vouchd issued a certificate for a ClientIdentifier another device had used");
        sim_acme_result_clear(r);
    } else if (issued) {
        outcome = SIM_ACME_ISSUED;
    }
    if (!reuse)
        sim_acme_pool_report(d->pool, outcome == SIM_ACME_ISSUED ? r->client_id : NULL);
    json_doc_free(f.doc);
    EVP_PKEY_free(f.account_key);
    EVP_PKEY_free(f.device_key);
    return outcome;
}

void sim_acme_result_clear(struct sim_acme_result *r)
{
    free(r->identity_pem);
    r->identity_pem = NULL;
    r->identity_pem_len = 0;
}
