#include "fleet_metrics.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "queries_fleet.h"
#include "vouchd.h"

struct fleet_metrics {
    struct vouchd *srv;
    struct event timer;
    bool asking; /* a query is out: the next tick does not pile another on it */
    bool known;
    struct db_attestation_counts counts;
};

static void counts_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct fleet_metrics *fm = arg;
    struct db_attestation_counts counts;
    fm->asking = false;
    if (outcome != DB_OK)
        return;
    if (!db_decode_attestation_counts(res, &counts)) {
        log_warn("devices by attestation status: an answer of an unexpected shape");
        return;
    }
    fm->counts = counts;
    fm->known = true;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct fleet_metrics *fm = arg;
    (void)fd;
    (void)what;
    if (fm->asking || !db_pool_is_up(fm->srv->db))
        return;
    fm->asking = true;
    db_devices_by_attestation(fm->srv->db, counts_done, fm);
}

static void render(void *arg, struct evbuffer *out)
{
    const struct fleet_metrics *fm = arg;
    if (!fm->known)
        return;
    evbuffer_add_printf(out, "# HELP vouch_devices Devices by attestation status (the last "
                             "verdict; a verified one past its expiry is expired).\n"
                             "# TYPE vouch_devices gauge\n");
    for (size_t i = 0; i < DB_ATTESTATION_STATUSES; i++)
        evbuffer_add_printf(out, "vouch_devices{attestation=\"%s\"} %" PRId64 "\n",
                            db_attestation_statuses[i], fm->counts.by_status[i]);
    evbuffer_add_printf(out,
                        "# HELP vouch_devices_attestation_pending Devices with an attestation "
                        "request out, whatever their last verdict.\n"
                        "# TYPE vouch_devices_attestation_pending gauge\n"
                        "vouch_devices_attestation_pending %" PRId64 "\n",
                        fm->counts.pending);
}

struct fleet_metrics *fleet_metrics_new(struct vouchd *srv)
{
    struct fleet_metrics *fm = calloc(1, sizeof(*fm));
    if (fm == NULL)
        return NULL;
    fm->srv = srv;
    /* The first look a second after start (the pool is connecting until then). */
    static const struct timeval every = {FLEET_METRICS_INTERVAL_S, 0}, soon = {1, 0};
    event_assign(&fm->timer, srv->base, -1, EV_PERSIST, tick, fm);
    if (event_add(&fm->timer, &every) != 0 ||
        event_base_once(srv->base, -1, EV_TIMEOUT, tick, fm, &soon) != 0) {
        event_del(&fm->timer);
        free(fm);
        return NULL;
    }
    metrics_add_renderer(render, fm);
    return fm;
}

void fleet_metrics_free(struct fleet_metrics *fm)
{
    if (fm == NULL)
        return;
    metrics_remove_renderer(render, fm);
    event_del(&fm->timer);
    free(fm);
}
