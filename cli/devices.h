/*
 * devices: the device listing (internal to cli/), shared by `vouchctl devices` and `vouchctl
 * attest --all/--failed`: every page of GET /v1/devices, followed to its end, optionally
 * filtered by attestation status; and the expected devices (`devices expect`, expected.c).
 *
 * Ownership: the pages of a listing stay alive (devices_pages_free()) as long as the device
 * objects borrowed from them are used; a struct devices_list borrows its items and owns only its
 * array (free(list.items)).
 */
#ifndef VOUCH_CLI_DEVICES_H
#define VOUCH_CLI_DEVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "vouchctl.h"

struct json_doc;
struct json_value;

/* Every page of a device listing, kept alive for the values borrowed from them. */
struct devices_pages {
    struct json_doc **docs;
    size_t ndocs;
};

void devices_pages_free(struct devices_pages *pages);

/* Called for each device object of a listing; false when out of memory. */
typedef bool devices_visit_fn(void *arg, const struct json_value *dev);

/*
 * Follows GET /v1/devices?limit=1000&after=... (with &attestation=filter unless filter is NULL)
 * to the end and calls visit for each device object, ordered by UDID, in pages that stay alive
 * until devices_pages_free(). The filter is applied here too, in case a server ignores it: an
 * `attest --failed` must never reach devices that did not fail. udids_only (only without a
 * filter, which could then not be checked here) asks for &fields=udid: objects holding the udid
 * alone, far cheaper for the server to list. Returns an exit status.
 */
int devices_fetch(struct ctl *ctl, const char *filter, bool udids_only,
                  struct devices_pages *pages, devices_visit_fn *visit, void *arg);

/* A growable list of values borrowed from their documents. */
struct devices_list {
    const struct json_value **items;
    size_t n, cap;
};

/* A devices_visit_fn: appends dev to the struct devices_list at arg. */
bool devices_collect(void *arg, const struct json_value *dev);

/* `devices expect SERIAL...` and `devices expected` (expected.c): ctl->args[0] is the action.
 * Returns an exit status. */
int devices_expect_run(struct ctl *ctl);

#endif
