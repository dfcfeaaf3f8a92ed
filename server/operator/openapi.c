#include "openapi.h"

#include <event2/http.h>
#include <string.h>

#include "http.h"
#include "tokens.h"

/* docs/openapi.yaml, generated at build time by server/attestation/embed_text.py. */
extern const char openapi_yaml[];

bool openapi_handle(struct vouchd *srv, struct evhttp_request *req, const char *path,
                    const struct token_caller *caller)
{
    if (strcmp(path, "/v1/openapi.yaml") != 0)
        return false;
    tokens_audit(srv, req, caller); /* as admin.c does every request it lets through */
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        http_reply_json_error(req, EP_OTHER, 405, "use GET");
        return true;
    }
    http_reply(req, EP_OTHER, 200, "application/yaml", openapi_yaml, strlen(openapi_yaml));
    return true;
}
