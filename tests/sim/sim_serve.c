/*
 * sim_serve: see sim_serve.h.
 */
#include "sim_serve.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_fleet.h"
#include "sim_session.h"
#include "sim_stats.h"
#include "sim_store.h"
#include "sim_tail.h"
#include "sim_workers.h"

#define SIM_TAIL_POLL_MS 20

/* A device's place in serve's pool; only read or written under the pool's lock. */
enum serve_dev_state {
    SERVE_IDLE,
    SERVE_QUEUED,       /* waiting for a worker */
    SERVE_RUNNING,      /* in a session */
    SERVE_RUNNING_AGAIN /* in a session, and pushed since it began: one more after it */
};

struct sim_serve_pool {
    struct sim_run *run;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    size_t *queue; /* a ring of run->ndevices: a device is queued at most once */
    size_t head;
    size_t queued;
    unsigned running;
    bool stopping;
    unsigned char *dstate; /* enum serve_dev_state, by device index */
    unsigned long dropped;
};

/* Caller holds the lock. */
static void serve_enqueue(struct sim_serve_pool *pool, size_t i)
{
    size_t n = pool->run->ndevices;

    pool->queue[(pool->head + pool->queued) % n] = i;
    pool->queued++;
    pool->dstate[i] = SERVE_QUEUED;
    pthread_cond_signal(&pool->wake);
}

static void *serve_worker_main(void *arg)
{
    struct sim_worker *w = arg;
    struct sim_serve_pool *pool = w->pool;
    struct sim_run *run = w->run;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        size_t i;

        while (pool->queued == 0 && !pool->stopping)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->queued == 0)
            break;
        i = pool->queue[pool->head];
        pool->head = (pool->head + 1) % run->ndevices;
        pool->queued--;
        pool->dstate[i] = SERVE_RUNNING;
        pool->running++;
        pthread_mutex_unlock(&pool->lock);

        sim_session_device(w, i);
        atomic_fetch_add(&run->done, 1);

        pthread_mutex_lock(&pool->lock);
        pool->running--;
        if (pool->dstate[i] == SERVE_RUNNING_AGAIN && !pool->stopping) {
            serve_enqueue(pool, i); /* at the tail: the other pushed devices go first */
        } else {
            if (pool->dstate[i] == SERVE_RUNNING_AGAIN)
                pool->dropped++;
            pool->dstate[i] = SERVE_IDLE;
        }
    }
    pthread_mutex_unlock(&pool->lock);
    atomic_fetch_sub(&run->workers_left, 1);
    return NULL;
}

/* Token -> device index, open addressing over a power-of-two table. */
struct token_index {
    size_t *slots; /* device index + 1; 0: empty */
    size_t mask;
};

static size_t token_hash(const unsigned char token[SIM_TOKEN_LEN])
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: test tokens need not be random */

    for (size_t i = 0; i < SIM_TOKEN_LEN; i++) {
        h ^= token[i];
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

/* Rebuilds idx over tokens[0..n); returns the number of devices with a token, or (size_t)-1
 * when memory runs out. */
static size_t token_index_build(struct token_index *idx, const struct sim_push_token *tokens,
                                size_t n)
{
    size_t cap = 16;
    size_t count = 0;

    while (cap < 2 * n)
        cap *= 2;
    free(idx->slots);
    idx->slots = calloc(cap, sizeof(*idx->slots));
    idx->mask = cap - 1;
    if (idx->slots == NULL)
        return (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t h;

        if (!tokens[i].present)
            continue;
        count++;
        for (h = token_hash(tokens[i].token) & idx->mask; idx->slots[h] != 0;
             h = (h + 1) & idx->mask) {
            if (memcmp(tokens[idx->slots[h] - 1].token, tokens[i].token, SIM_TOKEN_LEN) == 0)
                break; /* two devices with one token: the first keeps it */
        }
        if (idx->slots[h] == 0)
            idx->slots[h] = i + 1;
    }
    return count;
}

/* The device holding token, or (size_t)-1. */
static size_t token_index_find(const struct token_index *idx, const struct sim_push_token *tokens,
                               const unsigned char token[SIM_TOKEN_LEN])
{
    for (size_t h = token_hash(token) & idx->mask; idx->slots[h] != 0; h = (h + 1) & idx->mask) {
        if (memcmp(tokens[idx->slots[h] - 1].token, token, SIM_TOKEN_LEN) == 0)
            return idx->slots[h] - 1;
    }
    return (size_t)-1;
}

static volatile sig_atomic_t serve_signal;

static void serve_on_signal(int sig)
{
    serve_signal = sig;
}

/* The main thread's view of a serve run. */
struct serve_ctx {
    const struct sim_options *opt;
    struct sim_run *run;
    struct sim_serve_pool *pool;
    struct sim_push_token *tokens;
    struct sim_store_stamp stamp;
    struct token_index index;
    unsigned char *bad_magic; /* devices pushed with a wrong PushMagic */
    struct sim_stats_serve counts;
    struct sim_stats stats; /* the main thread's own: protocol and local errors */
    double last_push;
    bool failed; /* a local failure that ends the run */
};

static void serve_fail(struct serve_ctx *sc, const struct sim_device *dev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One diagnostic line (counted against SIM_SESSION_SHOWN_FAILURES like a device's). */
static void serve_fail(struct serve_ctx *sc, const struct sim_device *dev, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    atomic_fetch_add(&sc->run->failures, 1);
    if (!sim_session_failure_shown())
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (dev != NULL)
        fprintf(stderr, "vouch-sim: device %lu %s: push: %s\n", dev->index, dev->udid, msg);
    else
        fprintf(stderr, "vouch-sim: push: %s\n", msg);
}

/* Reloads DIR/tokens.tsv when it changed (a re-enrollment gave devices new tokens). Runs
 * before each chunk of the push log is handled: pushes were appended after it was read, so a
 * token a re-enrollment retired before the push is never taken for its old device. */
static void serve_reload_tokens(void *arg)
{
    struct serve_ctx *sc = arg;
    struct sim_store_stamp stamp;
    size_t skipped = 0;
    size_t count;
    char err[512];

    if (!sim_store_tokens_changed(sc->opt->dir, &sc->stamp))
        return;
    if (!sim_store_tokens_load(sc->opt->dir, sc->run->fleet, sc->tokens, sc->run->ndevices,
                               &skipped, &stamp, err, sizeof(err))) {
        /* A half-written file cannot be seen (writers rename), so this one is broken. */
        fprintf(stderr, "vouch-sim: reloading the push tokens: %s\n", err);
        sc->stats.local_errors++;
        sc->failed = true;
        return;
    }
    sc->stamp = stamp;
    count = token_index_build(&sc->index, sc->tokens, sc->run->ndevices);
    if (count == (size_t)-1) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        sc->stats.local_errors++;
        sc->failed = true;
        return;
    }
    sc->counts.devices_with_tokens = count;
    if (!sc->opt->quiet)
        fprintf(stderr, "vouch-sim: serve: reloaded %s/%s: %zu devices with push tokens\n",
                sc->opt->dir, SIM_STORE_TOKENS_FILE, count);
}

/* One line of the push log: "<token hex> <push magic>". */
static void serve_line(void *arg, char *line, size_t len, bool overlong)
{
    struct serve_ctx *sc = arg;
    const struct sim_options *opt = sc->opt;
    struct sim_serve_pool *pool = sc->pool;
    unsigned char token[SIM_TOKEN_LEN];
    const char *magic;
    char *space;
    size_t i;

    if (sc->failed || (opt->expect_pushes_set && sc->counts.pushes_handled >= opt->expect_pushes))
        return; /* past the point where serve stops */
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    if (len == 0 && !overlong)
        return;
    sc->counts.pushes_seen++;
    sc->last_push = sim_workers_clock();
    space = memchr(line, ' ', len);
    if (overlong || space == NULL || space == line) {
        sc->counts.pushes_malformed++;
        if (sc->counts.pushes_malformed <= 5)
            fprintf(stderr, "vouch-sim: %s: not \"<token> <magic>\": %.80s%s\n", opt->pushes, line,
                    overlong || len > 80 ? "..." : "");
        return;
    }
    *space = '\0';
    magic = space + 1;
    if (!sim_store_token_parse(line, (size_t)(space - line), token)) {
        sc->counts.pushes_unknown++;
        return;
    }
    i = token_index_find(&sc->index, sc->tokens, token);
    if (i == (size_t)-1) {
        sc->counts.pushes_unknown++;
        return;
    }
    sc->counts.pushes_handled++;
    if (strcmp(magic, sc->tokens[i].push_magic) != 0) {
        /* A real device drops it silently; for a test that is a server bug. */
        sc->counts.pushes_bad_magic++;
        sc->stats.protocol_errors++;
        sc->bad_magic[i] = 1;
        serve_fail(sc, &sc->run->fleet->devices[i],
                   "pushed with PushMagic '%.60s', but its TokenUpdate sent '%s'", magic,
                   sc->tokens[i].push_magic);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    switch ((enum serve_dev_state)pool->dstate[i]) {
    case SERVE_IDLE:
        serve_enqueue(pool, i);
        break;
    case SERVE_RUNNING:
        pool->dstate[i] = SERVE_RUNNING_AGAIN;
        break;
    case SERVE_QUEUED:
    case SERVE_RUNNING_AGAIN:
        sc->counts.pushes_coalesced++;
        break;
    }
    pthread_mutex_unlock(&pool->lock);
}

/* Follows the push log until a stop condition; returns what stopped it. */
static const char *serve_loop(struct serve_ctx *sc, struct sim_tail *tail, double t0)
{
    const struct sim_options *opt = sc->opt;
    struct sim_serve_pool *pool = sc->pool;
    double last_progress = t0;
    unsigned long shown_seen = 0;
    unsigned long shown_requests = 0;
    const struct sim_tail_handler handler = {serve_reload_tokens, serve_line, sc};

    sc->last_push = t0;
    for (;;) {
        long got;
        bool idle;
        double now;

        if (serve_signal != 0)
            return serve_signal == SIGINT ? "SIGINT" : "SIGTERM";
        got = sim_tail_poll(tail, &handler, sim_workers_clock());
        if (got < 0 || sc->failed) {
            sc->stats.local_errors += got < 0;
            sc->failed = true;
            return "error";
        }
        now = sim_workers_clock();
        pthread_mutex_lock(&pool->lock);
        idle = pool->queued == 0 && pool->running == 0;
        pthread_mutex_unlock(&pool->lock);
        if (opt->expect_pushes_set && sc->counts.pushes_handled >= opt->expect_pushes && idle)
            return "expect-pushes";
        if (opt->max_seconds > 0 && now - t0 >= (double)opt->max_seconds)
            return "max-seconds";
        if (opt->idle_exit > 0 && idle && now - sc->last_push >= (double)opt->idle_exit)
            return "idle-exit";
        if (!opt->quiet && now - last_progress >= SIM_PROGRESS_INTERVAL &&
            (sc->counts.pushes_seen != shown_seen ||
             atomic_load(&sc->run->requests) != shown_requests)) {
            last_progress = now;
            shown_seen = sc->counts.pushes_seen;
            shown_requests = atomic_load(&sc->run->requests);
            fprintf(stderr,
                    "vouch-sim: serve: %lu pushes (%lu ours, %lu unknown), %zu sessions ended, "
                    "%lu requests, %lu failures\n",
                    shown_seen, sc->counts.pushes_handled, sc->counts.pushes_unknown,
                    atomic_load(&sc->run->done), shown_requests, atomic_load(&sc->run->failures));
        }
        if (got == 0)
            sim_workers_sleep_ms(SIM_TAIL_POLL_MS);
    }
}

int sim_serve_command(const struct sim_options *opt)
{
    struct sim_fleet fleet;
    struct sim_run run;
    struct sim_serve_pool pool;
    struct serve_ctx sc;
    struct sim_tail tail;
    struct sim_worker *workers = NULL;
    struct sim_stats total;
    struct fake_apple *apple = NULL;
    struct fake_apple *apple_other = NULL;
    struct sigaction sa;
    sigset_t block;
    sigset_t old_mask;
    unsigned nworkers = 0;
    unsigned started = 0;
    double t0 = sim_workers_clock();
    int rc = SIM_EXIT_FAIL;
    bool http_ready = false;
    bool pool_ready = false;
    bool tail_ready = false;
    size_t count;

    memset(&run, 0, sizeof(run));
    memset(&pool, 0, sizeof(pool));
    memset(&sc, 0, sizeof(sc));
    memset(&total, 0, sizeof(total));
    if (!sim_fleet_open(opt, &fleet))
        return SIM_EXIT_FAIL;
    run.opt = opt;
    run.fleet = &fleet;
    run.phase = SIM_PHASE_CONNECT;
    run.last_phase = true;
    run.serving = true;
    if (!sim_fleet_sessions_prepare(opt, &fleet, &run.attest, &apple, &apple_other))
        goto out;
    if (!sim_workers_devices(&run))
        goto out;
    sc.opt = opt;
    sc.run = &run;
    sc.pool = &pool;
    sc.tokens = sim_fleet_tokens_load(opt, &fleet, run.ndevices, &sc.stamp);
    if (sc.tokens == NULL)
        goto out;
    run.state = calloc(run.ndevices, 1);
    sc.bad_magic = calloc(run.ndevices, 1);
    pool.run = &run;
    pool.queue = calloc(run.ndevices, sizeof(*pool.queue));
    pool.dstate = calloc(run.ndevices, 1);
    count = token_index_build(&sc.index, sc.tokens, run.ndevices);
    if (run.state == NULL || sc.bad_magic == NULL || pool.queue == NULL || pool.dstate == NULL ||
        count == (size_t)-1) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        goto out;
    }
    sc.counts.devices_with_tokens = count;
    if (count == 0)
        fprintf(stderr,
                "vouch-sim: no device in %s has a push token yet (vouch-sim enroll sends "
                "them); every push counts as unknown until %s/%s has them\n",
                opt->dir, opt->dir, SIM_STORE_TOKENS_FILE);
    if (pthread_mutex_init(&pool.lock, NULL) != 0 || pthread_cond_init(&pool.wake, NULL) != 0) {
        fprintf(stderr, "vouch-sim: cannot create the pool's lock\n");
        goto out;
    }
    pool_ready = true;
    workers = sim_workers_new(&run, apple, apple_other, &nworkers, &http_ready);
    if (workers == NULL)
        goto out;
    if (!sim_tail_start(&tail, opt->pushes, opt->from_start))
        goto out;
    tail_ready = true;

    /* SIGINT and SIGTERM stop serve cleanly; only the main thread takes them. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = serve_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);
    atomic_store(&run.workers_left, nworkers);
    for (; started < nworkers; started++) {
        int prc;

        workers[started].pool = &pool;
        prc = pthread_create(&workers[started].thread, NULL, serve_worker_main, &workers[started]);
        if (prc != 0) {
            fprintf(stderr, "vouch-sim: starting worker %u: %s\n", started, strerror(prc));
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (started == 0)
        goto out;

    fprintf(stderr,
            "vouch-sim: serve: ready, following %s from byte %lld%s (%zu devices, %zu with push "
            "tokens, %u workers)\n",
            opt->pushes, (long long)tail.offset, tail.fd < 0 ? " once it exists" : "", run.ndevices,
            count, started);
    double t_ready = sim_workers_clock();
    double cpu_ready = sim_stats_cpu_seconds();
    sc.counts.stopped_by = serve_loop(&sc, &tail, t0);

    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    while (pool.queued > 0) { /* only after max-seconds, a signal or an error */
        pool.dstate[pool.queue[pool.head]] = SERVE_IDLE;
        pool.head = (pool.head + 1) % run.ndevices;
        pool.queued--;
        pool.dropped++;
    }
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    sc.counts.sessions_dropped = pool.dropped;
    if (pool.dropped > 0)
        fprintf(stderr, "vouch-sim: serve: stopped (%s) with %lu pushed sessions not run\n",
                sc.counts.stopped_by, pool.dropped);

    for (unsigned i = 0; i < nworkers; i++)
        sim_stats_merge(&total, &workers[i].stats);
    sim_stats_merge(&total, &sc.stats);
    total.failed_devices = 0;
    for (size_t i = 0; i < run.ndevices; i++)
        total.failed_devices += (run.state[i] & SIM_DEV_FAILED) != 0 || sc.bad_magic[i] != 0;
    if (opt->expect_pushes_set && sc.counts.pushes_handled < opt->expect_pushes)
        fprintf(stderr, "vouch-sim: serve: expected %lu pushes to %s's devices, got %lu (%s)\n",
                opt->expect_pushes, opt->dir, sc.counts.pushes_handled, sc.counts.stopped_by);
    sim_stats_print_summary(opt, run.ndevices, 0, &total, &sc.counts, t_ready - t0,
                            sim_workers_clock() - t0, cpu_ready);
    rc = total.failed_devices == 0 && total.local_errors == 0 && !sc.failed &&
                 (!opt->expect_pushes_set || sc.counts.pushes_handled >= opt->expect_pushes)
             ? SIM_EXIT_OK
             : SIM_EXIT_FAIL;
out:
    if (tail_ready)
        sim_tail_stop(&tail);
    sim_workers_free(workers, nworkers);
    if (pool_ready) {
        pthread_mutex_destroy(&pool.lock);
        pthread_cond_destroy(&pool.wake);
    }
    fake_apple_free(apple);
    fake_apple_free(apple_other);
    free(pool.queue);
    free(pool.dstate);
    free(sc.index.slots);
    free(sc.bad_magic);
    free(sc.tokens);
    free(run.state);
    if (http_ready)
        sim_http_global_cleanup();
    sim_store_fleet_free(&fleet);
    return rc;
}
