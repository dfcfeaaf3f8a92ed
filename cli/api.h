/*
 * api: what vouchctl's admin API subcommands share (internal to cli/): one request with its JSON
 * answer and error reporting, device paths, the --json printer, and small helpers.
 *
 * Errors are said on stderr ("vouchctl: ...") by the function that meets them; functions that
 * return an int return the process exit status (enum ctl_exit). Responses are parsed with the
 * same limits as any other input. Ownership: strings and documents handed out are the caller's
 * (free(), json_doc_free()); a struct json_value borrowed from a document lives as long as it.
 */
#ifndef VOUCH_CLI_API_H
#define VOUCH_CLI_API_H

#include <stdbool.h>
#include <stddef.h>

#include "vouchctl.h"

struct client_response;
struct json_doc;
struct json_value;
struct table;

/* The concatenation of the NULL-terminated list of strings, or NULL when out of memory. */
char *api_str_join(const char *first, ...) __attribute__((sentinel));

/* Says "out of memory"; returns CTL_EXIT_FAILURE. */
int api_fail_nomem(void);

/* Explains an HTTP error status: the server's {"error": "..."} message when it sent one, else the
 * method, URL and status; after a 401, whether a token was given. */
void api_report_http_error(const struct ctl *ctl, const char *method, const char *path,
                           const struct client_response *resp);

/* Sends one request and parses the JSON answer into *doc. A 2xx status is success, and so is
 * also_ok when not 0 (enqueue's 404 carries per-device results); *status (if not NULL) tells
 * which. Anything else is reported on stderr and gives CTL_EXIT_FAILURE. */
int api_call(struct ctl *ctl, const char *method, const char *path, const char *body,
             size_t body_len, const char *content_type, long also_ok, struct json_doc **doc,
             long *status);

/* Says that the answer from path is not `expected`; returns CTL_EXIT_FAILURE. */
int api_unexpected_shape(struct ctl *ctl, const char *path, const char *expected);

/* Prints a parsed answer with --json. */
int api_print_json(const struct json_value *v);

/* Adds item's row to the table; false when out of memory. */
typedef bool api_row_fn(struct table *t, const struct json_value *item);

/* Prints list, a JSON array, on stdout as a table with ncols headers, one row per item as row()
 * makes it. Returns an exit status. */
int api_print_table(const char *const *headers, size_t ncols, const struct json_value *list,
                    api_row_fn *row);

/* The one answer to an unknown UDID, from every command: "vouchctl: unknown device 'UDID'" on
 * stderr; returns CTL_EXIT_FAILURE. */
int api_unknown_device(const char *udid);

/* Whether the server says it knows no device udid (GET /v1/devices/{udid} is 404); false when
 * it knows it, or cannot say. For push and enqueue, whose answers do not tell an unknown device
 * from one that is not enrolled. */
bool api_device_unknown(struct ctl *ctl, const char *udid) __attribute__((warn_unused_result));

/* METHOD /v1/devices/{udid}<suffix> (body NULL for none) as api_call() sends it, but a 404
 * "unknown device" is said by api_unknown_device(). */
int api_device_call(struct ctl *ctl, const char *method, const char *udid, const char *suffix,
                    const char *body, size_t body_len, struct json_doc **doc)
    __attribute__((warn_unused_result));

/* "/v1/devices/{udid}<suffix>" with the UDID escaped; NULL when out of memory. */
char *api_udid_path(struct ctl *ctl, const char *udid, const char *suffix);

/* GET /v1/devices/{args[0]}<suffix>, which answers a JSON array of `what`. With --json the array
 * is printed here; an empty one gets a note. *list is set only when there are rows for a table;
 * *doc holds it either way. */
int api_device_array_get(struct ctl *ctl, const char *suffix, const char *what,
                         struct json_doc **doc, const struct json_value **list);

#endif
