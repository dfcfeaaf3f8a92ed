/*
 * command_answers: the admin API's view of what devices answered to commands, and cancelling
 * commands still queued (docs/api.md, "Command answers"), behind admin.c's authentication and
 * scopes (a GET reads, a DELETE acts):
 *   GET    /v1/devices/{udid}/commands/{uuid}   one device's answer (or that it is queued)
 *   GET    /v1/commands/{uuid}                  every device's, at most 1000
 *   DELETE /v1/devices/{udid}/commands/{uuid}   takes it off the device's queue (409: answered)
 *   DELETE /v1/commands/{uuid}                  takes it off every queue
 * The database gives the rows and the reports as the device sent them (XML plists); the reports
 * become JSON here (plist_json.h). A request owns its state until the database answers.
 */
#ifndef VOUCH_COMMAND_ANSWERS_H
#define VOUCH_COMMAND_ANSWERS_H

#include <stdbool.h>

struct evhttp_request;
struct vouchd;

/* Handles path if it is one of the above (and replies); false when it is not. actor is the
 * caller's token name, for the command.canceled event. */
bool command_answers_handle(struct vouchd *srv, struct evhttp_request *req, const char *path,
                            const char *actor);

#endif
