#include "nanomdm.h"

#include <event2/buffer.h>
#include <stdbool.h>

#include "http.h"
#include "json.h"
#include "log.h"

/* NanoMDM writes its enqueue and push answers with Go's json.MarshalIndent(v, "", "\t"): this
 * re-indents the compact text json_writer makes the same way. */
static void json_tab_indent(const char *text, size_t len, struct evbuffer *out)
{
    unsigned depth = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            evbuffer_add(out, &c, 1);
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            evbuffer_add(out, &c, 1);
            break;
        case '{':
        case '[':
            evbuffer_add(out, &c, 1);
            if (i + 1 < len && (text[i + 1] == '}' || text[i + 1] == ']')) {
                evbuffer_add(out, &text[++i], 1);
                break;
            }
            depth++;
            evbuffer_add(out, "\n", 1);
            for (unsigned d = 0; d < depth; d++)
                evbuffer_add(out, "\t", 1);
            break;
        case '}':
        case ']':
            depth = depth > 0 ? depth - 1 : 0;
            evbuffer_add(out, "\n", 1);
            for (unsigned d = 0; d < depth; d++)
                evbuffer_add(out, "\t", 1);
            evbuffer_add(out, &c, 1);
            break;
        case ',':
            evbuffer_add(out, ",\n", 2);
            for (unsigned d = 0; d < depth; d++)
                evbuffer_add(out, "\t", 1);
            break;
        case ':':
            evbuffer_add(out, ": ", 2);
            break;
        case ' ':
        case '\n':
        case '\t':
            break;
        default:
            evbuffer_add(out, &c, 1);
        }
    }
}

void nanomdm_reply_json(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                        const char *text, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    if (out == NULL)
        log_fatal("out of memory");
    json_tab_indent(text, len, out);
    len = evbuffer_get_length(out);
    http_reply(req, ep, status, "application/json", evbuffer_pullup(out, -1), len);
    evbuffer_free(out);
}

void nanomdm_reply_error(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                         const char *key, const char *message)
{
    struct json_writer *w = json_writer_new(512, 0);
    const char *text;
    size_t len;
    if (w != NULL && json_write_begin_object(w) && json_write_key(w, key) &&
        json_write_string(w, message) && json_write_end_object(w) &&
        json_writer_finish(w, &text, &len))
        nanomdm_reply_json(req, ep, status, text, len);
    else
        http_reply_json_error(req, ep, 500, "internal error");
    json_writer_free(w);
}
