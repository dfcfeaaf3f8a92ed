#include "trust.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attest_json.h"
#include "config.h"
#include "http.h"
#include "hex.h"
#include "identity.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "queries_trust.h"
#include "tokens.h"
#include "vouchd.h"

#define TRUST_BODY_MAX (64 * 1024)
#define TRUST_ANSWER_MAX (16 * 1024)
#define TRUST_CACHE_MAX_S 60     /* the longest an allow may be cached (nginx), whatever else */
#define DENIAL_EVENT_EVERY_S 600 /* trust.denied: at most one per subject and policy */
#define DENIAL_SLOTS 4096
#define LATENCY_BUCKETS 8

static const double latency_bounds[LATENCY_BUCKETS - 1] = {0.0005, 0.001, 0.002, 0.005,
                                                           0.01,   0.05,  0.25};

/* Decisions counted by policy: the names live as long as the process (reloads add names). */
struct policy_counts {
    char name[TRUST_POLICY_NAME_MAX + 1];
    uint64_t allow, deny;
    uint64_t reasons[TRUST_REASON_COUNT];
};

#define RETIRED_POLICIES 16

struct trust {
    struct trust_policies policies;
    /* Replaced by reloads, kept a while: a question in flight may still point into them. */
    struct trust_policies retired[RETIRED_POLICIES];
    size_t retired_next;
    struct policy_counts counts[2 * TRUST_MAX_POLICIES];
    size_t count_slots;
    uint64_t latency[LATENCY_BUCKETS];
    double latency_sum;
    uint64_t latency_count;
    struct {
        uint64_t key;
        time_t at;
    } denials[DENIAL_SLOTS];
};

enum subject_kind { SUBJECT_CERTIFICATE, SUBJECT_UDID, SUBJECT_SERIAL };

/* One question, from its arrival to its answer. */
struct trust_request {
    struct vouchd *srv;
    struct evhttp_request *req;
    const struct trust_policy *policy; /* valid until the answer: reloads wait for none */
    char policy_name[TRUST_POLICY_NAME_MAX + 1];
    bool nginx;
    enum subject_kind kind;
    char subject[160]; /* hex SHA-256, UDID or serial, for logs and the denial event */
    double started;
};

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- policies and metrics ---------------------------------------------------------------- */

static bool load_policies(const struct config *cfg, struct trust_policies *out, char *err,
                          size_t err_size)
{
    struct trust_policy_item *items = calloc(cfg->policy_item_count + 1, sizeof(*items));
    if (items == NULL) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    for (size_t i = 0; i < cfg->policy_item_count; i++) {
        items[i].key = cfg->policy_items[i].key;
        items[i].value = cfg->policy_items[i].value;
        items[i].line = cfg->policy_items[i].line;
    }
    bool ok = trust_policies_parse(items, cfg->policy_item_count, out, err, err_size) &&
              trust_policies_load_lists(out, err, err_size);
    free(items);
    if (!ok)
        trust_policies_clear(out);
    return ok;
}

static struct policy_counts *counts_of(struct trust *t, const char *name)
{
    for (size_t i = 0; i < t->count_slots; i++) {
        if (strcmp(t->counts[i].name, name) == 0)
            return &t->counts[i];
    }
    if (t->count_slots == sizeof(t->counts) / sizeof(t->counts[0]))
        return NULL; /* reloaded with new names too often: those go uncounted */
    struct policy_counts *c = &t->counts[t->count_slots++];
    snprintf(c->name, sizeof(c->name), "%s", name);
    return c;
}

static void render_metrics(void *arg, struct evbuffer *out)
{
    struct trust *t = arg;
    evbuffer_add_printf(out, "# HELP vouch_trust_decisions_total Trust decisions, by policy and "
                             "decision.\n# TYPE vouch_trust_decisions_total counter\n");
    for (size_t i = 0; i < t->count_slots; i++) {
        const struct policy_counts *c = &t->counts[i];
        evbuffer_add_printf(out,
                            "vouch_trust_decisions_total{policy=\"%s\",decision=\"allow\"} "
                            "%" PRIu64 "\n"
                            "vouch_trust_decisions_total{policy=\"%s\",decision=\"deny\"} "
                            "%" PRIu64 "\n",
                            c->name, c->allow, c->name, c->deny);
    }
    evbuffer_add_printf(out, "# HELP vouch_trust_denials_total Reasons of denied trust "
                             "decisions, by policy.\n# TYPE vouch_trust_denials_total counter\n");
    for (size_t i = 0; i < t->count_slots; i++) {
        for (int r = 0; r < TRUST_REASON_COUNT; r++) {
            if (t->counts[i].reasons[r] != 0)
                evbuffer_add_printf(out,
                                    "vouch_trust_denials_total{policy=\"%s\",reason=\"%s\"} "
                                    "%" PRIu64 "\n",
                                    t->counts[i].name, trust_reason_name((enum trust_reason)r),
                                    t->counts[i].reasons[r]);
        }
    }
    evbuffer_add_printf(out, "# HELP vouch_trust_decision_seconds Time from a trust question to "
                             "its answer.\n# TYPE vouch_trust_decision_seconds histogram\n");
    uint64_t cumulative = 0;
    for (int b = 0; b < LATENCY_BUCKETS; b++) {
        cumulative += t->latency[b];
        if (b < LATENCY_BUCKETS - 1)
            evbuffer_add_printf(out, "vouch_trust_decision_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                                latency_bounds[b], cumulative);
        else
            evbuffer_add_printf(
                out, "vouch_trust_decision_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
    }
    evbuffer_add_printf(out,
                        "vouch_trust_decision_seconds_sum %.6f\n"
                        "vouch_trust_decision_seconds_count %" PRIu64 "\n",
                        t->latency_sum, t->latency_count);
}

struct trust *trust_new(const struct config *cfg, char *err, size_t err_size)
{
    struct trust *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    if (!load_policies(cfg, &t->policies, err, err_size)) {
        free(t);
        return NULL;
    }
    metrics_add_renderer(render_metrics, t);
    return t;
}

void trust_free(struct trust *t)
{
    if (t == NULL)
        return;
    metrics_remove_renderer(render_metrics, t);
    trust_policies_clear(&t->policies);
    for (size_t i = 0; i < RETIRED_POLICIES; i++)
        trust_policies_clear(&t->retired[i]);
    free(t);
}

void trust_reload(struct trust *t, const char *path)
{
    struct config cfg;
    struct trust_policies fresh;
    char err[512];
    if (!config_load(&cfg, path, err, sizeof(err))) {
        log_error("SIGHUP: keeping the current trust policies: %s: %s", path, err);
        return;
    }
    bool ok = load_policies(&cfg, &fresh, err, sizeof(err));
    config_clear(&cfg);
    if (!ok) {
        log_error("SIGHUP: keeping the current trust policies: %s: %s", path, err);
        return;
    }
    /* A question in flight points into the current policies until its answer: they retire
     * instead of going at once (a question lasts a database round trip; RETIRED_POLICIES reloads
     * take longer than that). */
    struct trust_policies *slot = &t->retired[t->retired_next];
    trust_policies_clear(slot);
    *slot = t->policies;
    t->retired_next = (t->retired_next + 1) % RETIRED_POLICIES;
    t->policies = fresh;
    log_info("SIGHUP: %zu trust policies loaded", fresh.count);
}

/* ---- answers ----------------------------------------------------------------------------- */

static void request_done(struct trust_request *tr)
{
    struct trust *t = tr->srv->trust;
    double elapsed = monotonic_s() - tr->started;
    int b = 0;
    while (b < LATENCY_BUCKETS - 1 && elapsed > latency_bounds[b])
        b++;
    t->latency[b]++;
    t->latency_sum += elapsed;
    t->latency_count++;
    tr->srv->inflight--;
    free(tr);
}

static void refuse(struct trust_request *tr, int status, const char *reason, const char *message)
{
    char peer[128];
    metrics_count_rejection(reason);
    log_warn("trust: refused a question from %s: %s (%d)", http_peer(tr->req, peer, sizeof(peer)),
             message, status);
    http_reply_json_error(tr->req, EP_TRUST, status, message);
    request_done(tr);
}

static uint64_t fnv1a(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *s = a; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *s = b; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h | 1;
}

static bool write_time(struct json_writer *w, int64_t t)
{
    if (t == 0)
        return json_write_null(w);
    char text[21];
    attest_json_format_time((time_t)t, text);
    return json_write_string(w, text);
}

static void denial_stored(void *arg, enum db_outcome outcome, const PGresult *res)
{
    (void)arg;
    if (outcome != DB_OK)
        log_warn("trust: a trust.denied event was not stored: %s",
                 res ? PQresultErrorMessage(res) : "the database is not available");
}

/* A denial is worth telling the SOC about once per subject and policy in a while. */
static void maybe_emit_denial(struct trust_request *tr, const struct db_trust_row *row,
                              const struct trust_decision *d, int64_t now)
{
    struct trust *t = tr->srv->trust;
    uint64_t key = fnv1a(tr->policy_name, tr->subject);
    size_t slot = (size_t)(key % DENIAL_SLOTS);
    if (t->denials[slot].key == key && now - t->denials[slot].at < DENIAL_EVENT_EVERY_S)
        return;
    t->denials[slot].key = key;
    t->denials[slot].at = (time_t)now;
    static const char *const kinds[] = {"certificate_sha256", "udid", "serial_number"};
    struct json_writer *w = json_writer_new(TRUST_ANSWER_MAX, 0);
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "policy") &&
              json_write_string(w, tr->policy_name) && json_write_key(w, "reasons") &&
              json_write_begin_array(w);
    for (size_t i = 0; ok && i < d->reason_count; i++)
        ok = json_write_string(w, trust_reason_name(d->reasons[i]));
    ok = ok && json_write_end_array(w) && json_write_key(w, "subject") &&
         json_write_begin_object(w) && json_write_key(w, kinds[tr->kind]) &&
         json_write_string(w, tr->subject) && json_write_end_object(w) &&
         json_write_key(w, "udid") && json_write_string_or_null(w, row->udid) &&
         json_write_key(w, "serial_number") && json_write_string_or_null(w, row->serial_number) &&
         json_write_end_object(w);
    const char *text;
    size_t len;
    if (ok && json_writer_finish(w, &text, &len))
        db_trust_denied(tr->srv->db, row->udid, text, denial_stored, NULL);
    json_writer_free(w);
}

/* The device's attestation status as the device object shows it at now: a verified verdict past
 * its expiry reads "expired" even before the scheduler's tick marks it (db/functions/30_devices.sql
 * says the same), so the answer never calls verified what its own reasons call expired. */
static const char *status_at(const struct db_trust_row *row, int64_t now)
{
    const char *status = row->attestation_status;
    if (status != NULL && strcmp(status, "verified") == 0 && row->expires_at != 0 &&
        row->expires_at <= now)
        return "expired";
    return status;
}

static bool write_device(struct json_writer *w, const struct db_trust_row *row, int64_t now)
{
    if (!row->device_found)
        return json_write_null(w);
    enum trust_platform platform;
    bool known = trust_platform_of(row->product_name, &platform);
    return json_write_begin_object(w) && json_write_key(w, "udid") &&
           json_write_string_or_null(w, row->udid) && json_write_key(w, "serial_number") &&
           json_write_string_or_null(w, row->serial_number) && json_write_key(w, "model") &&
           json_write_string_or_null(w, row->model) && json_write_key(w, "product_name") &&
           json_write_string_or_null(w, row->product_name) && json_write_key(w, "platform") &&
           json_write_string_or_null(w, known ? trust_platform_name(platform) : NULL) &&
           json_write_key(w, "os_version") && json_write_string_or_null(w, row->os_version) &&
           json_write_key(w, "enrolled") && json_write_bool(w, row->enrolled) &&
           json_write_key(w, "attestation") && json_write_begin_object(w) &&
           json_write_key(w, "status") && json_write_string_or_null(w, status_at(row, now)) &&
           json_write_key(w, "freshness") && json_write_string_or_null(w, row->freshness) &&
           json_write_key(w, "verified_at") && write_time(w, row->verified_at) &&
           json_write_key(w, "generated_at") && write_time(w, row->generated_at) &&
           json_write_key(w, "expires_at") && write_time(w, row->expires_at) &&
           json_write_end_object(w) && json_write_key(w, "identity") &&
           json_write_begin_object(w) && json_write_key(w, "kind") &&
           json_write_string(w, row->hardware_bound ? "acme-attested" : "scep") &&
           json_write_key(w, "hardware_bound") && json_write_bool(w, row->hardware_bound) &&
           json_write_key(w, "revoked") && json_write_bool(w, row->identity_revoked) &&
           json_write_key(w, "current") && json_write_bool(w, row->cert_current) &&
           json_write_key(w, "not_after") && write_time(w, row->identity_not_after) &&
           json_write_end_object(w) && json_write_end_object(w);
}

/* How long a client may keep the answer: an allow until time could change it (at most
 * TRUST_CACHE_MAX_S), a deny not at all. */
static void add_cache_control(struct evhttp_request *req, const struct trust_decision *d,
                              int64_t now)
{
    char value[48] = "no-store";
    if (d->allow) {
        int64_t left = d->valid_until == 0 ? TRUST_CACHE_MAX_S : d->valid_until - now;
        if (left > TRUST_CACHE_MAX_S)
            left = TRUST_CACHE_MAX_S;
        if (left > 0) {
            snprintf(value, sizeof(value), "private, max-age=%" PRId64, left);
            /* nginx's proxy_cache takes "private" for "do not cache"; X-Accel-Expires (which
             * only nginx reads, and does not pass on) says how long it may. */
            char seconds[24];
            snprintf(seconds, sizeof(seconds), "%" PRId64, left);
            evhttp_add_header(evhttp_request_get_output_headers(req), "X-Accel-Expires", seconds);
        }
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", value);
}

static void reply_nginx(struct trust_request *tr, const struct db_trust_row *row,
                        const struct trust_decision *d)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(tr->req);
    char reasons[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < d->reason_count && used < sizeof(reasons); i++)
        used += (size_t)snprintf(reasons + used, sizeof(reasons) - used, "%s%s", i ? "," : "",
                                 trust_reason_name(d->reasons[i]));
    evhttp_add_header(headers, "Vouch-Decision", d->allow ? "allow" : "deny");
    evhttp_add_header(headers, "Vouch-Policy", tr->policy_name);
    if (d->reason_count > 0)
        evhttp_add_header(headers, "Vouch-Reasons", reasons);
    /* Values from the database that can be passed upstream as headers: printable ASCII only. */
    char safe[160];
    if (row->serial_number != NULL)
        evhttp_add_header(
            headers, "Vouch-Device-Serial",
            log_sanitize(row->serial_number, strlen(row->serial_number), safe, sizeof(safe)));
    if (row->udid != NULL)
        evhttp_add_header(headers, "Vouch-Device-UDID",
                          log_sanitize(row->udid, strlen(row->udid), safe, sizeof(safe)));
    http_reply(tr->req, EP_TRUST, d->allow ? 204 : 403, NULL, NULL, 0);
}

static void reply_json(struct trust_request *tr, const struct db_trust_row *row,
                       const struct trust_decision *d, int64_t now)
{
    static const char *const kinds[] = {"certificate_sha256", "udid", "serial_number"};
    struct json_writer *w = json_writer_new(TRUST_ANSWER_MAX, 0);
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "decision") &&
              json_write_string(w, d->allow ? "allow" : "deny") && json_write_key(w, "policy") &&
              json_write_string(w, tr->policy_name) && json_write_key(w, "reasons") &&
              json_write_begin_array(w);
    for (size_t i = 0; ok && i < d->reason_count; i++)
        ok = json_write_string(w, trust_reason_name(d->reasons[i]));
    ok = ok && json_write_end_array(w) && json_write_key(w, "subject") &&
         json_write_begin_object(w) && json_write_key(w, kinds[tr->kind]) &&
         json_write_string(w, tr->subject) && json_write_end_object(w) &&
         json_write_key(w, "device") && write_device(w, row, now) &&
         json_write_key(w, "evaluated_at") && write_time(w, now) &&
         json_write_key(w, "valid_until") && write_time(w, d->allow ? d->valid_until : 0) &&
         json_write_end_object(w);
    const char *text;
    size_t len;
    if (ok && json_writer_finish(w, &text, &len))
        http_reply(tr->req, EP_TRUST, 200, "application/json", text, len);
    else
        http_reply_json_error(tr->req, EP_TRUST, 500, "internal error");
    json_writer_free(w);
}

static void facts_read(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct trust_request *tr = arg;
    struct db_trust_row row;
    if (outcome == DB_UNAVAILABLE || outcome == DB_OVERLOADED) {
        refuse(tr, 503, "database_unavailable", "the database is not available");
        return;
    }
    if (outcome != DB_OK || !db_decode_trust_row(res, &row)) {
        log_error("trust: unexpected answer from the database: %s",
                  res ? PQresultErrorMessage(res) : "none");
        refuse(tr, 500, "internal_error", "internal error");
        return;
    }
    int64_t now = row.now != 0 ? row.now : (int64_t)time(NULL);
    const struct trust_facts facts = {
        .device_found = row.device_found,
        .by_certificate = tr->kind == SUBJECT_CERTIFICATE,
        .cert_current = row.cert_current,
        .enrolled = row.enrolled,
        .udid = row.udid,
        .serial_number = row.serial_number,
        .model = row.model,
        .product_name = row.product_name,
        .os_version = row.os_version,
        .hardware_bound = row.hardware_bound,
        .identity_revoked = row.identity_revoked,
        .identity_provisional = row.identity_provisional,
        .identity_unproven = row.identity_unproven,
        .identity_not_after = row.identity_not_after,
        .attestation_status = row.attestation_status,
        .freshness = row.freshness,
        .verified_at = row.verified_at,
        .expires_at = row.expires_at,
        .generated_at = row.generated_at,
        .now = now,
    };
    struct trust_decision d;
    trust_evaluate(tr->policy, &facts, &d);
    struct policy_counts *c = counts_of(tr->srv->trust, tr->policy_name);
    if (c != NULL) {
        if (d.allow)
            c->allow++;
        else
            c->deny++;
        for (size_t i = 0; i < d.reason_count; i++)
            c->reasons[d.reasons[i]]++;
    }
    if (!d.allow) {
        char shown[64];
        log_info("trust: %s denied %s (%s)%s%s", tr->policy_name, tr->subject,
                 trust_reason_name(d.reasons[0]), row.udid ? " udid " : "",
                 row.udid ? log_sanitize(row.udid, strlen(row.udid), shown, sizeof(shown)) : "");
        maybe_emit_denial(tr, &row, &d, now);
    }
    add_cache_control(tr->req, &d, now);
    if (tr->nginx)
        reply_nginx(tr, &row, &d);
    else
        reply_json(tr, &row, &d, now);
    request_done(tr);
}

/* ---- questions --------------------------------------------------------------------------- */

static void ask_by_certificate(struct trust_request *tr, const uint8_t sha256[32])
{
    tr->kind = SUBJECT_CERTIFICATE;
    hex_encode(sha256, 32, tr->subject);
    db_trust_by_certificate(tr->srv->db, sha256, facts_read, tr);
}

/* The nginx gate: the client certificate nginx verified, as $ssl_client_escaped_cert. */
static void ask_nginx(struct trust_request *tr)
{
    const char *cert = NULL;
    if (!http_header_once(tr->req, "Vouch-Client-Cert", &cert)) {
        refuse(tr, 400, "bad_request", "Vouch-Client-Cert appears more than once");
        return;
    }
    uint8_t sha256[32];
    if (identity_cert_sha256(cert, cert ? strlen(cert) : 0, sha256) != IDENTITY_OK) {
        /* No (readable) certificate: nobody Vouch knows. Denied, not an error: nginx shows the
         * client a 403. */
        memset(sha256, 0, sizeof(sha256));
    }
    ask_by_certificate(tr, sha256);
}

static bool identifier_ok(const char *s, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    }
    return true;
}

/* POST: {"certificate": PEM} | {"certificate_sha256": hex} | {"udid"} | {"serial_number"}. */
static void ask_json(struct trust_request *tr)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(tr->req);
    size_t len = evbuffer_get_length(in);
    static const struct json_limits limits = {TRUST_BODY_MAX, 4, 64};
    struct json_doc *doc = NULL;
    const char *body = (const char *)evbuffer_pullup(in, -1);
    if (len > TRUST_BODY_MAX || body == NULL ||
        json_parse(body, len, &limits, &doc, NULL) != JSON_OK ||
        json_value_kind(json_doc_root(doc)) != JSON_KIND_OBJECT) {
        json_doc_free(doc);
        refuse(tr, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    const struct json_value *root = json_doc_root(doc);
    static const char *const names[] = {"certificate", "certificate_sha256", "udid",
                                        "serial_number"};
    const char *value = NULL;
    size_t value_len = 0, given = 0, which = 0;
    for (size_t i = 0; i < 4; i++) {
        const struct json_value *v = json_object_find(root, names[i]);
        if (v != NULL) {
            given++;
            which = i;
            if (!json_get_string(v, &value, &value_len))
                given = 99;
        }
    }
    if (given != 1) {
        json_doc_free(doc);
        refuse(tr, 400, "bad_request",
               "name the subject by exactly one string: certificate, certificate_sha256, udid "
               "or serial_number");
        return;
    }
    uint8_t sha256[32];
    size_t sha_len = 0;
    const char *problem = NULL;
    if (which == 0 && identity_cert_sha256(value, value_len, sha256) != IDENTITY_OK)
        problem = "certificate: not a PEM certificate";
    else if (which == 1 &&
             (value_len != 64 || !hex_decode(value, value_len, sha256, sizeof(sha256), &sha_len)))
        problem = "certificate_sha256: 64 hex digits";
    else if (which >= 2 && !identifier_ok(value, value_len))
        problem = "udid and serial_number: 1 to 128 printable characters";
    if (problem == NULL && which >= 2) {
        tr->kind = which == 2 ? SUBJECT_UDID : SUBJECT_SERIAL;
        memcpy(tr->subject, value, value_len);
        tr->subject[value_len] = '\0';
    }
    json_doc_free(doc);
    if (problem != NULL)
        refuse(tr, 400, "bad_request", problem);
    else if (which < 2)
        ask_by_certificate(tr, sha256);
    else if (tr->kind == SUBJECT_UDID)
        db_trust_by_udid(tr->srv->db, tr->subject, facts_read, tr);
    else
        db_trust_by_serial(tr->srv->db, tr->subject, facts_read, tr);
}

/* /v1/trust/{policy} and /v1/trust/{policy}/nginx */
static void handle_request(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    struct token_caller caller;
    if (!tokens_authorize(srv, req, &caller))
        return;
    if (!token_scope_allows(caller.scope, true, false)) {
        metrics_count_rejection("token_scope");
        http_reply_json_error(req, EP_TRUST, 403,
                              "this token's scope does not allow trust decisions");
        return;
    }
    const char *name = path + strlen("/v1/trust/");
    size_t name_len = strcspn(name, "/");
    bool nginx = strcmp(name + name_len, "/nginx") == 0;
    if (!nginx && name[name_len] != '\0') {
        http_reply_json_error(req, EP_TRUST, 404, "not found");
        return;
    }
    const struct trust_policy *policy = trust_policy_find(&srv->trust->policies, name, name_len);
    if (policy == NULL) {
        http_reply_json_error(req, EP_TRUST, 404, "no such policy");
        return;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (nginx ? method != EVHTTP_REQ_GET : method != EVHTTP_REQ_POST) {
        http_reply_json_error(req, EP_TRUST, 405, nginx ? "use GET" : "use POST");
        return;
    }
    struct trust_request *tr = calloc(1, sizeof(*tr));
    if (tr == NULL)
        log_fatal("out of memory");
    tr->srv = srv;
    tr->req = req;
    tr->policy = policy;
    tr->nginx = nginx;
    tr->started = monotonic_s();
    snprintf(tr->policy_name, sizeof(tr->policy_name), "%s", policy->name);
    srv->inflight++;
    if (nginx)
        ask_nginx(tr);
    else
        ask_json(tr);
}

void trust_register_routes(void)
{
    http_route("/v1/trust/", handle_request);
}
