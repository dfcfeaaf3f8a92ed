/* `vouchctl profile`: the enrollment profile as vouchd serves it to devices. */
#include "vouchctl.h"

#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "client.h"

/* GET /mdm/enroll[?token=]: the profile as the server sends it (XML, or signed DER). */
int cmd_profile(struct ctl *ctl)
{
    char *path = NULL;
    if (ctl->enroll_token != NULL) {
        char *esc = client_escape(ctl->client, ctl->enroll_token);
        path = esc ? api_str_join("/mdm/enroll?token=", esc, (const char *)NULL) : NULL;
        free(esc);
    } else {
        path = api_str_join("/mdm/enroll", (const char *)NULL);
    }
    if (path == NULL)
        return api_fail_nomem();
    struct client_response resp;
    int rc = CTL_EXIT_OK;
    if (!client_request(ctl->client, "GET", path, NULL, 0, NULL, &resp)) {
        fprintf(stderr, "vouchctl: %s\n", client_error(ctl->client));
        free(path);
        return CTL_EXIT_FAILURE;
    }
    if (resp.status != 200) {
        api_report_http_error(ctl, "GET", path, &resp);
        rc = CTL_EXIT_FAILURE;
    } else {
        FILE *out = ctl->out ? fopen(ctl->out, "wb") : stdout;
        if (out == NULL || fwrite(resp.body, 1, resp.len, out) != resp.len ||
            (out != stdout && fclose(out) != 0)) {
            fprintf(stderr, "vouchctl: cannot write %s\n", ctl->out ? ctl->out : "the profile");
            rc = CTL_EXIT_FAILURE;
        } else if (ctl->out != NULL) {
            fprintf(stderr, "wrote %s (%zu bytes)\n", ctl->out, resp.len);
        }
    }
    client_response_free(&resp);
    free(path);
    return rc;
}
