/* libFuzzer target for the stand-in's parsers of untrusted input: the push payload
 * (standin_parse_payload), the request checks with the input as path and body, and script text
 * (standin_script_add). Build as tests/fuzz/meson.build says, with -Dfuzz=true. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "standin_check.h"
#include "standin_script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct standin_verdict verdict;
    char magic[STANDIN_MAX_PAYLOAD + 1];
    char path[600];
    char err[256];
    size_t magic_len = 0;

    if (standin_parse_payload((const char *)data, size, magic, sizeof(magic), &magic_len) &&
        (magic_len >= sizeof(magic) || strlen(magic) != magic_len))
        abort();

    size_t n = size < sizeof(path) - 11 ? size : sizeof(path) - 11;
    memcpy(path, "/3/device/", 10);
    memcpy(path + 10, data, n);
    path[10 + n] = '\0';
    struct standin_request req = {
        .method = "POST",
        .path = path,
        .headers = {"t", "mdm", "1999999999", "10", NULL, NULL},
        .body = (const char *)data,
        .body_len = size < STANDIN_MAX_PAYLOAD ? size : STANDIN_MAX_PAYLOAD,
        .body_total = size,
        .now = 1700000000,
        .topic = "t",
    };
    standin_check_request(&req, &verdict);
    if (verdict.status != 200 && verdict.reason == NULL)
        abort();
    if (strlen(verdict.token) > STANDIN_TOKEN_MAX)
        abort();

    struct standin_script *script = standin_script_new();
    if (standin_script_add(script, (const char *)data, size, err, sizeof(err))) {
        struct standin_answer a;
        standin_script_take(script, "ab", &a);
        standin_script_take(script, verdict.token, &a);
    }
    standin_script_free(script);
    return 0;
}
