/*
 * openapi: GET /v1/openapi.yaml, the OpenAPI 3.1 description of the admin API
 * (docs/openapi.yaml), built into vouchd (server/meson.build embeds the file), so that the
 * document a client reads is the one of the vouchd it talks to.
 *
 * It is behind the admin API's authentication like every /v1/ path, but any valid token may read
 * it, whatever its scope: it describes what each scope may call. Nothing here is owned beyond a
 * request's reply.
 */
#ifndef VOUCH_OPENAPI_H
#define VOUCH_OPENAPI_H

#include <stdbool.h>

struct evhttp_request;
struct token_caller;
struct vouchd;

/* For an authorized caller (admin.c, before the scope check): answers path if it is
 * /v1/openapi.yaml (audited; 200 application/yaml to GET, 405 to any other method) and returns
 * true; false for any other path. */
bool openapi_handle(struct vouchd *srv, struct evhttp_request *req, const char *path,
                    const struct token_caller *caller);

#endif
