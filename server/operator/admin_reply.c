/* admin_reply: what the admin endpoint files share to answer (admin.h). */
#include "admin.h"

#include <stdlib.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "queries.h"
#include "vouchd.h"

const char *admin_db_text(struct evhttp_request *req, enum db_outcome outcome, const PGresult *res,
                          size_t *len, const char *who)
{
    const char *text = NULL;
    if (outcome == DB_UNAVAILABLE || outcome == DB_OVERLOADED) {
        metrics_count_rejection("database_unavailable");
        http_reply_json_error(req, EP_OTHER, 503, "the database is not available");
        return NULL;
    }
    if (outcome != DB_OK || !db_decode_text(res, &text, len)) {
        log_error("%s: %s", who, res ? PQresultErrorMessage(res) : "no answer");
        http_reply_json_error(req, EP_OTHER, 500, "internal error");
        return NULL;
    }
    if (text == NULL) {
        *len = 0;
        return "";
    }
    return text;
}

struct admin_read {
    struct vouchd *srv;
    struct evhttp_request *req;
    const char *who;  /* static strings, */
    int empty_status; /* chosen by the caller */
    const char *empty_message;
};

struct admin_read *admin_read_new(struct vouchd *srv, struct evhttp_request *req, const char *who,
                                  int empty_status, const char *empty_message)
{
    struct admin_read *read = calloc(1, sizeof(*read));
    if (read == NULL)
        log_fatal("out of memory");
    *read = (struct admin_read){srv, req, who, empty_status, empty_message};
    srv->inflight++;
    return read;
}

void admin_read_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct admin_read *read = arg;
    size_t len;
    const char *text = admin_db_text(read->req, outcome, res, &len, read->who);
    if (text != NULL && len == 0)
        http_reply_json_error(read->req, EP_OTHER, read->empty_status, read->empty_message);
    else if (text != NULL)
        http_reply(read->req, EP_OTHER, 200, "application/json", text, len);
    read->srv->inflight--;
    free(read);
}
