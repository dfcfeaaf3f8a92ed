/*
 * sim_session: see sim_session.h.
 */
#include "sim_session.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_acme.h"
#include "sim_http.h"
#include "sim_pki.h"
#include "sim_store.h"

#define SIM_SNIPPET 200
#define SIM_CT_CHECKIN "application/x-apple-aspen-mdm-checkin"
#define SIM_CT_REPORT "application/x-apple-aspen-mdm"

/* One device's exchange with the server during a phase. */
struct sim_conn {
    struct sim_worker *worker;
    const struct sim_device *dev;
    struct sim_identity *id;
    char *cert_header_line;
    bool failed;
    bool saw_expected;
    bool acme_refused; /* a misbehaving device vouchd's ACME server refused, as it must */
    bool stop;         /* no further request for this device in this phase */
};

enum req_result {
    REQ_OK,      /* 2xx (or the expected 2xx): go on */
    REQ_STOPPED, /* the expected non-2xx status: the device's flow ends, successfully */
    REQ_FAILED   /* reported and counted */
};

static atomic_ulong failures_shown;

bool sim_session_failure_shown(void)
{
    unsigned long shown = atomic_fetch_add(&failures_shown, 1);

    if (shown > SIM_SESSION_SHOWN_FAILURES)
        return false;
    if (shown == SIM_SESSION_SHOWN_FAILURES) {
        fprintf(stderr, "vouch-sim: further failures are counted but not shown\n");
        return false;
    }
    return true;
}

/* A printable excerpt of a response body for diagnostics. */
static void body_snippet(char *out, size_t outlen, const char *body, size_t len)
{
    size_t n = len < SIM_SNIPPET ? len : SIM_SNIPPET;
    size_t j = 0;

    for (size_t i = 0; i < n && j + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : (ch == '\n' || ch == '\t') ? ' ' : '.';
    }
    if (len > n && j + 4 < outlen) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

static void device_fail(struct sim_conn *c, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Marks the device failed and prints one diagnostic line (the first
 * SIM_SESSION_SHOWN_FAILURES only). */
static void device_fail(struct sim_conn *c, const char *what, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    c->failed = true;
    c->stop = true;
    atomic_fetch_add(&c->worker->run->failures, 1);
    if (!sim_session_failure_shown())
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "vouch-sim: device %lu %s: %s: %s\n", c->dev->index, c->dev->udid, what, msg);
}

/* Sends one signed PUT and classifies the answer (see enum req_result). */
static enum req_result device_put(struct sim_conn *c, const char *what, const char *url,
                                  const char *content_type, const char *body, size_t len,
                                  struct sim_http_response *resp)
{
    struct sim_worker *w = c->worker;
    const struct sim_options *opt = w->run->opt;
    const char *headers[4];
    size_t nheaders = 0;
    char ct_line[128];
    char *sig = NULL;
    char *sig_line = NULL;
    char *tampered = NULL;
    char err[512];
    char snippet[SIM_SNIPPET * 2];
    enum req_result result = REQ_FAILED;
    bool sent;

    /* --migrate: enroll's check-ins go unsigned to /migration, without a Content-Type (curl's
     * form type is dropped), with Basic nanomdm:KEY, as nano2nano PUTs them. */
    bool migrate = opt->migrate_key != NULL && w->run->phase == SIM_PHASE_ENROLL;

    if (migrate)
        snprintf(ct_line, sizeof(ct_line), "Content-Type:");
    else
        snprintf(ct_line, sizeof(ct_line), "Content-Type: %s", content_type);
    headers[nheaders++] = ct_line;
    headers[nheaders++] = "Expect:"; /* no 100-continue round trip */
    if (migrate) {
        headers[nheaders++] = opt->migrate_auth;
    } else if (!opt->no_signature) {
        const char *signed_bytes = body;
        size_t sig_size;

        if (opt->bad_signature) {
            tampered = malloc(len + 1);
            if (tampered == NULL) {
                w->stats.local_errors++;
                device_fail(c, what, "out of memory");
                goto out;
            }
            memcpy(tampered, body, len);
            tampered[len] = '\n'; /* sign one byte more than is sent */
            signed_bytes = tampered;
        }
        if (!sim_pki_sign_detached(c->id, signed_bytes, len + (opt->bad_signature ? 1 : 0), &sig,
                                   err, sizeof(err))) {
            w->stats.local_errors++;
            device_fail(c, what, "signing: %s", err);
            goto out;
        }
        sig_size = strlen(sig) + sizeof("Mdm-Signature: ");
        sig_line = malloc(sig_size);
        if (sig_line == NULL) {
            w->stats.local_errors++;
            device_fail(c, what, "out of memory");
            goto out;
        }
        snprintf(sig_line, sig_size, "Mdm-Signature: %s", sig);
        headers[nheaders++] = sig_line;
    }
    if (c->cert_header_line != NULL && !migrate)
        headers[nheaders++] = c->cert_header_line;

    w->stats.requests++;
    atomic_fetch_add(&w->run->requests, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sent = sim_http_put(w->http, url, headers, nheaders, body, len, resp, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long us = (long long)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    sim_stats_add_latency(&w->stats, us);
    if (!sent) {
        w->stats.transport_errors++;
        device_fail(c, what, "PUT %s: %s", url, err);
        goto out;
    }
    w->stats.new_connections +=
        (unsigned long)(resp->new_connections > 0 ? resp->new_connections : 0);
    if (resp->status >= 100 && resp->status < 600)
        w->stats.status[resp->status]++;

    if (opt->expect_status != 0 && resp->status == opt->expect_status) {
        if (resp->status >= 200 && resp->status < 300) {
            result = REQ_OK;
        } else {
            w->stats.expected_hits++;
            c->saw_expected = true;
            c->stop = true;
            result = REQ_STOPPED;
        }
        goto out;
    }
    if (resp->status >= 200 && resp->status < 300 &&
        (opt->expect_status == 0 || opt->expect_status >= 300)) {
        result = REQ_OK;
        goto out;
    }
    w->stats.http_errors++;
    body_snippet(snippet, sizeof(snippet), resp->body, resp->body_len);
    if (opt->expect_status != 0)
        device_fail(c, what, "HTTP %ld (expected %ld) from PUT %s: %s", resp->status,
                    opt->expect_status, url, snippet[0] != '\0' ? snippet : "(empty body)");
    else
        device_fail(c, what, "HTTP %ld from PUT %s: %s", resp->status, url,
                    snippet[0] != '\0' ? snippet : "(empty body)");
out:
    free(tampered);
    free(sig);
    free(sig_line);
    return result;
}

/* How device i of the run behaves with the ACME server: the last --acme-reuse-client-id devices
 * reuse an identifier, the --acme-wrong-csr-key before them finalize with another key. */
static enum sim_acme_behaviour acme_behaviour(const struct sim_run *run, size_t i)
{
    const struct sim_options *opt = run->opt;
    size_t reuse = opt->acme_reuse_client_id;
    size_t wrong = opt->acme_wrong_csr_key;

    if (i + reuse >= run->ndevices)
        return SIM_ACME_REUSE_CLIENT_ID;
    if (i + reuse + wrong >= run->ndevices)
        return SIM_ACME_WRONG_CSR_KEY;
    return SIM_ACME_HONEST;
}

/* --identity acme: device i gets its identity from vouchd's ACME server (c->id); false when it
 * has none (failed, or refused as its misbehaviour must be). A model that cannot attest cannot
 * get an attested identity: it keeps DIR's, as a deployment would give it a SCEP profile. */
static bool device_acme_identity(struct sim_conn *c, size_t i)
{
    struct sim_worker *w = c->worker;
    struct sim_run *run = w->run;
    const struct sim_options *opt = run->opt;
    struct sim_acme_device d;
    struct sim_acme_result r;
    char err[512];

    memset(&d, 0, sizeof(d));
    d.behaviour = acme_behaviour(run, i);
    if (d.behaviour == SIM_ACME_HONEST && !sim_device_supports_attestation(c->dev)) {
        sim_acme_pool_report(run->acme_pool, NULL);
        c->id = sim_pki_identity_load(w->loader, c->dev->identity_pem, c->dev->identity_pem_len,
                                      err, sizeof(err));
        if (c->id == NULL) {
            w->stats.local_errors++;
            device_fail(c, "identity", "device %lu's identity in %s: %s", c->dev->index, opt->dir,
                        err);
            return false;
        }
        w->stats.acme.local_identities++;
        return true;
    }
    d.http = w->http;
    d.base_url = opt->url;
    d.enroll_token = opt->enroll_token;
    d.apple = w->apple;
    d.dev = c->dev;
    d.pool = run->acme_pool;
    d.now = opt->now_set ? opt->now : time(NULL);
    d.stats = &w->stats.acme;
    switch (sim_acme_enroll(&d, &r)) {
    case SIM_ACME_ISSUED:
        c->id =
            sim_pki_identity_load(w->loader, r.identity_pem, r.identity_pem_len, err, sizeof(err));
        if (c->id == NULL) {
            w->stats.local_errors++;
            device_fail(c, "ACME identity", "%s", err);
            sim_acme_result_clear(&r);
            return false;
        }
        w->stats.acme.certificates++;
        run->acme_pems[i] = r.identity_pem;
        run->acme_pem_lens[i] = r.identity_pem_len;
        return true;
    case SIM_ACME_REFUSED:
        if (d.behaviour == SIM_ACME_REUSE_CLIENT_ID)
            w->stats.acme.refused_reused_id++;
        else
            w->stats.acme.refused_csr_key++;
        c->acme_refused = true;
        c->stop = true;
        if (!opt->quiet)
            fprintf(stderr, "vouch-sim: device %lu %s: refused as it should be (%s, %s %s): %s\n",
                    c->dev->index, c->dev->udid,
                    d.behaviour == SIM_ACME_REUSE_CLIENT_ID ? "reused ClientIdentifier"
                                                            : "CSR for another key",
                    r.step, r.problem, r.detail);
        return false;
    case SIM_ACME_FAILED:
        break;
    }
    switch (r.failure) {
    case SIM_ACME_FAIL_LOCAL:
        w->stats.local_errors++;
        break;
    case SIM_ACME_FAIL_TRANSPORT:
        w->stats.transport_errors++;
        break;
    case SIM_ACME_FAIL_HTTP:
        w->stats.http_errors++;
        break;
    case SIM_ACME_FAIL_PROTOCOL:
        w->stats.protocol_errors++;
        break;
    case SIM_ACME_FAIL_NOT_REFUSED:
        w->stats.protocol_errors++;
        w->stats.acme.not_refused++;
        break;
    }
    device_fail(c, "ACME", "%s%s%s (ClientIdentifier %s): %s", r.step,
                r.problem[0] != '\0' ? " " : "", r.problem,
                r.client_id[0] != '\0' ? r.client_id : "-", r.detail);
    return false;
}

static void device_enroll(struct sim_conn *c)
{
    const struct sim_options *opt = c->worker->run->opt;
    struct sim_push_token tok;
    struct sim_http_response resp;
    enum req_result r;
    size_t len = 0;
    char *body = sim_device_authenticate(c->dev, opt->topic, &len);

    if (body == NULL) {
        c->worker->stats.local_errors++;
        device_fail(c, "Authenticate", "cannot build the message");
        return;
    }
    const char *url = opt->migrate_key != NULL ? opt->migrate_url : opt->checkin_url;

    r = device_put(c, "Authenticate", url, SIM_CT_CHECKIN, body, len, &resp);
    free(body);
    if (r != REQ_OK)
        return;
    body = sim_device_push_token_new(&tok) ? sim_device_token_update(c->dev, opt->topic, &tok, &len)
                                           : NULL;
    if (body == NULL) {
        c->worker->stats.local_errors++;
        device_fail(c, "TokenUpdate", "cannot build the message");
        return;
    }
    r = device_put(c, "TokenUpdate", url, SIM_CT_CHECKIN, body, len, &resp);
    free(body);
    if (r == REQ_OK) {
        c->worker->stats.enrolled++;
        if (c->worker->run->tokens != NULL)
            c->worker->run->tokens[c->dev->index] = tok;
    }
}

static void device_checkout(struct sim_conn *c)
{
    const struct sim_options *opt = c->worker->run->opt;
    struct sim_http_response resp;
    size_t len = 0;
    char *body = sim_device_checkout(c->dev, opt->topic, &len);

    if (body == NULL) {
        c->worker->stats.local_errors++;
        device_fail(c, "CheckOut", "cannot build the message");
        return;
    }
    if (device_put(c, "CheckOut", opt->checkin_url, SIM_CT_CHECKIN, body, len, &resp) == REQ_OK)
        c->worker->stats.checked_out++;
    free(body);
}

/* The CommandUUIDs answered NotNow in the current session. */
struct notnow_list {
    char (*uuids)[SIM_COMMAND_UUID_MAX];
    size_t count;
    size_t cap;
};

static bool notnow_contains(const struct notnow_list *l, const char *uuid)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->uuids[i], uuid) == 0)
            return true;
    }
    return false;
}

static bool notnow_add(struct notnow_list *l, const char *uuid)
{
    if (l->count == l->cap) {
        size_t cap = l->cap == 0 ? 8 : l->cap * 2;
        char(*grown)[SIM_COMMAND_UUID_MAX] = realloc(l->uuids, cap * sizeof(*grown));
        if (grown == NULL)
            return false;
        l->uuids = grown;
        l->cap = cap;
    }
    snprintf(l->uuids[l->count++], SIM_COMMAND_UUID_MAX, "%s", uuid);
    return true;
}

bool sim_session_attestation(const char *dir, const struct sim_attest_options *aopt,
                             const struct fake_apple *apple, const struct fake_apple *other,
                             const struct sim_device *dev, const struct sim_command *cmd,
                             enum sim_answer *answer, struct fake_chain *chain, bool *attached,
                             unsigned long counts[SIM_STATS_ATTEST_N], char *err, size_t errlen)
{
    unsigned char nonce[SIM_NONCE_MAX];
    size_t nonce_len = 0;
    struct sim_attest_cache cache;
    enum sim_attest_source source = SIM_ATTEST_GENERATED;
    enum sim_attest_ask ask;
    bool honest = aopt->tamper == SIM_TAMPER_NONE && aopt->as_device == NULL;
    bool changed = false;
    bool ok;

    *attached = false;
    memset(chain, 0, sizeof(*chain));
    memset(&cache, 0, sizeof(cache));
    if (*answer != SIM_ANSWER_ACK)
        return true;
    ask = sim_device_attest_request(cmd, nonce, &nonce_len);
    if (ask == SIM_ATTEST_NOT_ASKED)
        return true;
    if (!sim_device_supports_attestation(dev)) {
        counts[SIM_STATS_ATTEST_UNSUPPORTED]++;
        return true;
    }
    if (ask == SIM_ATTEST_BAD_NONCE) {
        counts[SIM_STATS_ATTEST_BAD_NONCE]++;
        *answer = SIM_ANSWER_FORMAT_ERROR;
        return true;
    }
    if (honest && !sim_store_attest_load(dir, dev->udid, &cache, err, errlen))
        return false;
    ok = sim_attest_answer(apple, other, aopt, dev, nonce, nonce_len, &cache, &changed, chain,
                           &source, err, errlen);
    if (ok && changed && !sim_store_attest_save(dir, dev->udid, &cache, err, errlen)) {
        fake_chain_free(chain);
        ok = false;
    }
    sim_attest_cache_free(&cache);
    if (!ok)
        return false;
    counts[source == SIM_ATTEST_GENERATED ? SIM_STATS_ATTEST_GENERATED
           : source == SIM_ATTEST_CACHED  ? SIM_STATS_ATTEST_CACHED
                                          : SIM_STATS_ATTEST_TAMPERED]++;
    *attached = true;
    return true;
}

void sim_session_attest_items(struct sim_attest_items *items, const struct fake_chain *chain)
{
    memset(items, 0, sizeof(*items));
    for (size_t i = 0; i < chain->count && i < SIM_ATTEST_ITEMS_MAX; i++) {
        items->der[i] = chain->der[i];
        items->len[i] = chain->len[i];
        items->count++;
    }
}

/* One Idle session: report Idle, answer each command handed back, until an empty body. */
static void device_session(struct sim_conn *c)
{
    struct sim_worker *w = c->worker;
    const struct sim_options *opt = w->run->opt;
    struct notnow_list notnow = {NULL, 0, 0};
    char what[SIM_REQUEST_TYPE_MAX + SIM_COMMAND_UUID_MAX + 32] = "Idle";
    unsigned long handed = 0;
    size_t len = 0;
    char *body = sim_device_idle(c->dev, &len);

    w->stats.sessions++;
    if (body == NULL) {
        w->stats.local_errors++;
        device_fail(c, what, "cannot build the message");
        return;
    }
    for (;;) {
        struct sim_http_response resp;
        struct sim_command cmd;
        struct fake_chain chain;
        struct sim_attest_items items;
        enum sim_answer answer;
        bool attached = false;
        char err[512];
        char snippet[SIM_SNIPPET * 2];
        enum req_result r = device_put(c, what, opt->server_url, SIM_CT_REPORT, body, len, &resp);

        free(body);
        body = NULL;
        if (r != REQ_OK || resp.body_len == 0)
            break;
        if (++handed > opt->max_commands) {
            w->stats.protocol_errors++;
            device_fail(c, what, "the server handed out more than %lu commands in one session",
                        opt->max_commands);
            break;
        }
        if (!sim_device_parse_command(resp.body, resp.body_len, &cmd, err, sizeof(err))) {
            w->stats.protocol_errors++;
            body_snippet(snippet, sizeof(snippet), resp.body, resp.body_len);
            device_fail(c, what, "%s (Content-Type %s): %s", err,
                        resp.content_type[0] != '\0' ? resp.content_type : "none", snippet);
            break;
        }
        if (notnow_contains(&notnow, cmd.uuid)) {
            w->stats.protocol_errors++;
            device_fail(c, what,
                        "the server handed back command %s (%s) in the session where"
                        " the device answered it NotNow",
                        cmd.uuid, cmd.request_type);
            sim_device_command_free(&cmd);
            break;
        }
        sim_stats_count_type(&w->stats, cmd.request_type, 1);
        answer = opt->answer;
        if (!sim_session_attestation(opt->dir, &w->run->attest, w->apple, w->apple_other, c->dev,
                                     &cmd, &answer, &chain, &attached, w->stats.attest, err,
                                     sizeof(err))) {
            w->stats.local_errors++;
            device_fail(c, "attestation", "%s %s: %s", cmd.request_type, cmd.uuid, err);
            sim_device_command_free(&cmd);
            break;
        }
        sim_session_attest_items(&items, &chain);
        w->stats.answers[answer]++;
        body = sim_device_report(c->dev, &cmd, answer, attached ? &items : NULL, &len);
        fake_chain_free(&chain);
        snprintf(what, sizeof(what), "%s %s %s", sim_device_answer_status(answer), cmd.request_type,
                 cmd.uuid);
        if (body == NULL || (answer == SIM_ANSWER_NOTNOW && !notnow_add(&notnow, cmd.uuid))) {
            w->stats.local_errors++;
            device_fail(c, what, "cannot build the report");
            sim_device_command_free(&cmd);
            break;
        }
        sim_device_command_free(&cmd);
    }
    free(body);
    free(notnow.uuids);
}

static void device_connect(struct sim_conn *c)
{
    for (unsigned long round = 0; round < c->worker->run->opt->rounds && !c->stop; round++)
        device_session(c);
}

void sim_session_device(struct sim_worker *w, size_t i)
{
    struct sim_run *run = w->run;
    const struct sim_options *opt = run->opt;
    const struct sim_device *signer;
    struct sim_conn c;
    char err[512];

    memset(&c, 0, sizeof(c));
    c.worker = w;
    c.dev = &run->fleet->devices[i];
    /* In run mode, devices whose enrollment failed or ended as expected do not connect. */
    if (!run->serving && (run->state[i] & (SIM_DEV_FAILED | SIM_DEV_STOPPED)))
        return;
    if (run->phase == SIM_PHASE_ENROLL && opt->identity == SIM_IDENTITY_ACME) {
        if (!device_acme_identity(&c, i))
            goto done;
    } else {
        signer = &run->fleet->devices[opt->swap_identities ? (i + 1) % run->ndevices : i];
        /* An identity from the ACME server in this invocation (run's connect phase). */
        bool fresh = run->acme_pems != NULL && run->acme_pems[signer->index] != NULL;
        c.id = sim_pki_identity_load(
            w->loader, fresh ? run->acme_pems[signer->index] : signer->identity_pem,
            fresh ? run->acme_pem_lens[signer->index] : signer->identity_pem_len, err, sizeof(err));
        if (c.id == NULL) {
            w->stats.local_errors++;
            device_fail(&c, "identity", "device %lu's identity in %s: %s", signer->index, opt->dir,
                        err);
            goto done;
        }
    }
    if (opt->cert_header != NULL) {
        char *value = NULL;
        size_t n;

        if (!sim_pki_cert_header_value(c.id, &value, err, sizeof(err))) {
            w->stats.local_errors++;
            device_fail(&c, "identity", "%s", err);
            goto done;
        }
        n = strlen(opt->cert_header) + strlen(value) + 3;
        c.cert_header_line = malloc(n);
        if (c.cert_header_line == NULL) {
            free(value);
            w->stats.local_errors++;
            device_fail(&c, "identity", "out of memory");
            goto done;
        }
        snprintf(c.cert_header_line, n, "%s: %s", opt->cert_header, value);
        free(value);
    }
    switch (run->phase) {
    case SIM_PHASE_ENROLL:
        device_enroll(&c);
        break;
    case SIM_PHASE_CONNECT:
        device_connect(&c);
        break;
    case SIM_PHASE_CHECKOUT:
        device_checkout(&c);
        break;
    }
done:
    if (!c.failed && run->last_phase && opt->expect_status >= 300 && !c.saw_expected)
        device_fail(&c, "expect-status", "expected HTTP %ld, but every request succeeded",
                    opt->expect_status);
    if (c.failed) {
        w->stats.failed_devices++;
        run->state[i] |= SIM_DEV_FAILED;
    }
    if (c.saw_expected || c.acme_refused)
        run->state[i] |= SIM_DEV_STOPPED;
    free(c.cert_header_line);
    sim_pki_identity_free(c.id);
}
