#include "dashboard.h"

#include <event2/http.h>
#include <string.h>

#include "dashboard_assets.h"
#include "http.h"
#include "vouchd.h"

static const char content_security_policy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static const struct {
    const char *extension;
    const char *content_type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *content_type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(content_types) / sizeof(content_types[0]); i++) {
        if (strcmp(dot, content_types[i].extension) == 0)
            return content_types[i].content_type;
    }
    return "application/octet-stream";
}

static const struct dashboard_asset *asset_find(const char *name)
{
    for (size_t i = 0; i < dashboard_asset_count; i++) {
        if (strcmp(dashboard_assets[i].name, name) == 0)
            return &dashboard_assets[i];
    }
    return NULL;
}

/* The headers of every answer under /ui: the page runs only its own files, in no frame. */
static void add_security_headers(struct evhttp_request *req)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Security-Policy", content_security_policy);
    evhttp_add_header(headers, "X-Frame-Options", "DENY");
    evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(headers, "Referrer-Policy", "no-referrer");
    evhttp_add_header(headers, "Cache-Control", "no-cache");
}

static void handle_ui(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    add_security_headers(req);
    if (srv->cfg->ui_off) {
        http_reply_json_error(req, EP_OTHER, 404, "not found (the dashboard is off: ui = off)");
        return;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        http_reply_json_error(req, EP_OTHER, 405, "use GET");
        return;
    }
    if (strcmp(path, "/ui") == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/ui/");
        http_reply(req, EP_OTHER, 308, NULL, NULL, 0);
        return;
    }
    const char *name = path + strlen("/ui/");
    const struct dashboard_asset *asset = asset_find(*name == '\0' ? "index.html" : name);
    if (asset == NULL) {
        http_reply_json_error(req, EP_OTHER, 404, "not found");
        return;
    }
    http_reply(req, EP_OTHER, 200, content_type_of(asset->name), asset->data, asset->size);
}

void dashboard_register_routes(void)
{
    http_route("/ui", handle_ui);
    http_route("/ui/", handle_ui);
}
