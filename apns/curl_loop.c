#include "curl_loop.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>

#include "log.h"

struct curl_loop {
    struct event_base *base;
    CURLM *multi;
    struct event timer;
    int running;
    curl_loop_done_fn *done;
    curl_loop_after_fn *after;
    void *arg;
};

struct socket_watch {
    struct event ev;
    short kind; /* what ev watches now */
};

static void check_multi_info(struct curl_loop *l)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(l->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE)
            l->done(l->arg, msg->easy_handle, msg->data.result);
    }
    if (l->after != NULL)
        l->after(l->arg);
}

static void socket_event_cb(evutil_socket_t fd, short kind, void *arg)
{
    struct curl_loop *l = arg;
    int action =
        ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(l->multi, fd, action, &l->running);
    check_multi_info(l);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct curl_loop *l = userp;
    struct socket_watch *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            event_del(&w->ev);
            free(w);
            curl_multi_assign(l->multi, s, NULL);
        }
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (w == NULL) {
        w = calloc(1, sizeof(*w));
        if (w == NULL)
            log_fatal("out of memory");
        curl_multi_assign(l->multi, s, w);
    } else if (w->kind == kind) {
        return 0; /* curl repeats itself once per transfer on a shared connection */
    } else {
        event_del(&w->ev);
    }
    w->kind = kind;
    event_assign(&w->ev, l->base, s, kind, socket_event_cb, l);
    event_add(&w->ev, NULL);
    return 0;
}

static void timer_event_cb(evutil_socket_t fd, short kind, void *arg)
{
    struct curl_loop *l = arg;
    curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &l->running);
    check_multi_info(l);
}

/* curl asks for a timeout; it may not be acted on from inside this callback. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct curl_loop *l = userp;
    if (timeout_ms < 0) {
        evtimer_del(&l->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(&l->timer, &tv);
    return 0;
}

struct curl_loop *curl_loop_new(struct event_base *base, curl_loop_done_fn *done,
                                curl_loop_after_fn *after, void *arg)
{
    struct curl_loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->base = base;
    l->done = done;
    l->after = after;
    l->arg = arg;
    l->multi = curl_multi_init();
    if (l->multi == NULL) {
        free(l);
        return NULL;
    }
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
    evtimer_assign(&l->timer, base, timer_event_cb, l);
    return l;
}

void curl_loop_free(struct curl_loop *l)
{
    if (l == NULL)
        return;
    curl_multi_cleanup(l->multi);
    evtimer_del(&l->timer);
    free(l);
}

CURLM *curl_loop_multi(struct curl_loop *l)
{
    return l->multi;
}

CURLMcode curl_loop_add(struct curl_loop *l, CURL *easy)
{
    return curl_multi_add_handle(l->multi, easy);
}

void curl_loop_remove(struct curl_loop *l, CURL *easy)
{
    curl_multi_remove_handle(l->multi, easy);
}
