#include "fleet_api.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "admin.h"
#include "apns.h"
#include "apns_cert.h"
#include "http.h"
#include "log.h"
#include "mdm_message.h"
#include "push.h"
#include "queries_dashboard.h"
#include "vouchd.h"

#define FLEET_OS_TOP 12 /* OS versions named before "other" */
#define FLEET_PAGE_DEFAULT 50
#define FLEET_PAGE_MAX 200
#define FLEET_OFFSET_MAX 10000000 /* ten million: past any fleet, inside an integer */
#define FLEET_QUERY_MAX_CHARS 64

/* GET /v1/fleet. The push service's state is vouchd's own: off without apns_cert, degraded when
 * APNs refused the certificate or it has expired (as /healthz says), else ok. */
static void fleet_summary(struct vouchd *srv, struct evhttp_request *req)
{
    const char *apns = "off";
    time_t not_after = 0;
    if (srv->push != NULL) {
        const struct apns_cert *cert = apns_client_get0_cert(push_service_get0_apns(srv->push));
        bool expired = cert != NULL && apns_cert_days_left(cert, time(NULL)) < 0;
        apns = push_service_certificate_refused(srv->push) || expired ? "degraded" : "ok";
        not_after = cert != NULL ? cert->not_after : 0;
    }
    db_fleet_summary(srv->db, apns, not_after, FLEET_OS_TOP, admin_read_done,
                     admin_read_new(srv, req, "fleet", 500, "internal error"));
}

/* A whole number from min to max, or false. */
static bool parse_bounded(const char *text, long min, long max, unsigned *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < min || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

static bool one_of(const char *value, const char *const *allowed, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(value, allowed[i]) == 0)
            return true;
    }
    return false;
}

/* The search text: valid UTF-8 of at most FLEET_QUERY_MAX_CHARS characters, no control ones. */
static bool search_ok(const char *q)
{
    size_t len = strlen(q), chars = 0;
    if (!mdm_utf8_valid(q, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)q[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        chars += (c & 0xc0) != 0x80;
    }
    return chars <= FLEET_QUERY_MAX_CHARS;
}

static const char *const attestation_values[] = {
    "verified_fresh", "verified_cached", "verified",       "failed", "expired",
    "unsupported",    "never_asked",     "awaiting_first", "none",   "pending",
};
static const char *const sort_keys[] = {"udid",    "serial",    "model",     "os_version",
                                        "verdict", "last_seen", "next_check"};
static const char *const known_parameters[] = {"q",     "attestation", "sort",
                                               "order", "offset",      "limit"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Reads the query string into page (its strings borrowed from query); NULL, or what is wrong,
 * naming the parameter. */
static const char *parse_page(struct evkeyvalq *query, struct db_fleet_page *page)
{
    *page = (struct db_fleet_page){.sort = "udid", .limit = FLEET_PAGE_DEFAULT};
    struct evkeyval *param;
    TAILQ_FOREACH(param, query, next)
    {
        if (!one_of(param->key, known_parameters, COUNT(known_parameters)))
            return "unknown query parameter (the fleet's device list takes q, attestation, sort, "
                   "order, offset and limit)";
    }
    const char *q = evhttp_find_header(query, "q");
    const char *attestation = evhttp_find_header(query, "attestation");
    const char *sort = evhttp_find_header(query, "sort");
    const char *order = evhttp_find_header(query, "order");
    const char *offset = evhttp_find_header(query, "offset");
    const char *limit = evhttp_find_header(query, "limit");
    if (q != NULL && !search_ok(q))
        return "q must be text of at most 64 characters";
    if (attestation != NULL && !one_of(attestation, attestation_values, COUNT(attestation_values)))
        return "attestation must be one of verified_fresh, verified_cached, verified, failed, "
               "expired, unsupported, never_asked, awaiting_first, none, pending";
    if (sort != NULL && !one_of(sort, sort_keys, COUNT(sort_keys)))
        return "sort must be one of udid, serial, model, os_version, verdict, last_seen, "
               "next_check";
    if (order != NULL && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)
        return "order must be asc or desc";
    if (offset != NULL && !parse_bounded(offset, 0, FLEET_OFFSET_MAX, &page->offset))
        return "offset must be a whole number from 0 to 10000000";
    if (limit != NULL && !parse_bounded(limit, 1, FLEET_PAGE_MAX, &page->limit))
        return "limit must be a whole number from 1 to 200";
    page->q = q != NULL && q[0] != '\0' ? q : NULL;
    page->attestation = attestation;
    page->sort = sort != NULL ? sort : "udid";
    page->descending = order != NULL && strcmp(order, "desc") == 0;
    return NULL;
}

/* GET /v1/fleet/devices */
static void fleet_devices(struct vouchd *srv, struct evhttp_request *req)
{
    struct evkeyvalq query;
    if (!http_parse_query(req, EP_OTHER, &query))
        return;
    struct db_fleet_page page;
    const char *problem = parse_page(&query, &page);
    if (problem != NULL) {
        metrics_count_rejection("bad_request");
        http_reply_json_error(req, EP_OTHER, 400, problem);
    } else {
        db_fleet_devices(srv->db, &page, admin_read_done,
                         admin_read_new(srv, req, "fleet", 500, "internal error"));
    }
    evhttp_clear_headers(&query);
}

bool fleet_api_handle(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    bool summary = strcmp(path, "/v1/fleet") == 0;
    if (!summary && strcmp(path, "/v1/fleet/devices") != 0)
        return false;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET)
        http_reply_json_error(req, EP_OTHER, 405, "use GET");
    else if (summary)
        fleet_summary(srv, req);
    else
        fleet_devices(srv, req);
    return true;
}
