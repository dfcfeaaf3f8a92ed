/* admin_reply: what the admin endpoint files share to answer (admin.h). */
#include "admin.h"

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "queries.h"

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
