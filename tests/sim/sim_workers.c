/*
 * sim_workers: see sim_workers.h.
 */
#include "sim_workers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_acme.h"
#include "sim_fleet.h"
#include "sim_session.h"

double sim_workers_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sim_workers_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void *worker_main(void *arg)
{
    struct sim_worker *w = arg;
    struct sim_run *run = w->run;
    size_t i;

    while ((i = atomic_fetch_add(&run->next, 1)) < run->ndevices) {
        sim_session_device(w, i);
        atomic_fetch_add(&run->done, 1);
    }
    atomic_fetch_sub(&run->workers_left, 1);
    return NULL;
}

void sim_workers_wait(const char *label, atomic_uint *workers_left, atomic_size_t *done,
                      size_t total, atomic_ulong *requests, atomic_ulong *failures, bool quiet)
{
    double start = sim_workers_clock();
    double last = start;

    while (atomic_load(workers_left) > 0) {
        double t;

        sim_workers_sleep_ms(100);
        t = sim_workers_clock();
        if (quiet || t - last < SIM_PROGRESS_INTERVAL)
            continue;
        last = t;
        if (requests != NULL)
            fprintf(stderr, "vouch-sim: %s %zu/%zu devices, %lu requests (%.0f/s), %lu failed\n",
                    label, atomic_load(done), total, atomic_load(requests),
                    (double)atomic_load(requests) / (t - start), atomic_load(failures));
        else
            fprintf(stderr, "vouch-sim: %s %zu/%zu\n", label, atomic_load(done), total);
    }
}

static const char *phase_name(enum sim_phase phase)
{
    switch (phase) {
    case SIM_PHASE_ENROLL:
        return "enroll";
    case SIM_PHASE_CONNECT:
        return "connect";
    case SIM_PHASE_CHECKOUT:
        return "checkout";
    }
    return "?";
}

bool sim_workers_run_phase(struct sim_run *run, struct sim_worker *workers, unsigned nworkers)
{
    unsigned started = 0;
    double t0 = sim_workers_clock();

    atomic_store(&run->next, 0);
    atomic_store(&run->done, 0);
    atomic_store(&run->requests, 0);
    atomic_store(&run->workers_left, nworkers);
    for (; started < nworkers; started++) {
        int rc = pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]);
        if (rc != 0) {
            fprintf(stderr, "vouch-sim: starting worker %u: %s\n", started, strerror(rc));
            atomic_fetch_sub(&run->workers_left, nworkers - started);
            break;
        }
    }
    if (started == 0)
        return false;
    sim_workers_wait(phase_name(run->phase), &run->workers_left, &run->done, run->ndevices,
                     &run->requests, &run->failures, run->opt->quiet);
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    if (!run->opt->quiet)
        fprintf(stderr, "vouch-sim: %s: %zu devices, %lu requests in %.2f s\n",
                phase_name(run->phase), run->ndevices, atomic_load(&run->requests),
                sim_workers_clock() - t0);
    return true;
}

void sim_workers_free(struct sim_worker *workers, unsigned n)
{
    for (unsigned i = 0; workers != NULL && i < n; i++) {
        sim_http_free(workers[i].http);
        sim_pki_loader_free(workers[i].loader);
        fake_apple_free(workers[i].apple);
        fake_apple_free(workers[i].apple_other);
    }
    free(workers);
}

bool sim_workers_devices(struct sim_run *run)
{
    const struct sim_options *opt = run->opt;

    run->ndevices = opt->devices_set ? opt->devices : run->fleet->count;
    if (opt->swap_identities && run->ndevices < 2) {
        fprintf(stderr, "vouch-sim: --swap-identities needs at least 2 devices\n");
        return false;
    }
    return true;
}

struct sim_worker *sim_workers_new(struct sim_run *run, const struct fake_apple *apple,
                                   const struct fake_apple *apple_other, unsigned *nworkers,
                                   bool *http_ready)
{
    const struct sim_options *opt = run->opt;
    struct sim_http_options http_opt;
    unsigned n = opt->concurrency < run->ndevices ? opt->concurrency : (unsigned)run->ndevices;
    struct sim_worker *workers;
    char err[512];

    *nworkers = 0;
    if (!sim_http_global_init(err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return NULL;
    }
    *http_ready = true;
    workers = calloc(n, sizeof(*workers));
    if (workers == NULL) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        return NULL;
    }
    memset(&http_opt, 0, sizeof(http_opt));
    http_opt.timeout_seconds = opt->timeout;
    http_opt.cacert = opt->cacert;
    http_opt.insecure = opt->insecure;
    http_opt.version = opt->http_version;
    http_opt.max_body = SIM_MAX_BODY;
    for (unsigned i = 0; i < n; i++) {
        workers[i].run = run;
        workers[i].http = sim_http_new(&http_opt, err, sizeof(err));
        workers[i].loader = workers[i].http != NULL ? sim_pki_loader_new(err, sizeof(err)) : NULL;
        if (workers[i].loader == NULL) {
            fprintf(stderr, "vouch-sim: %s\n", err);
            sim_workers_free(workers, n);
            return NULL;
        }
        /* Each worker its own copies: no OpenSSL object is shared between threads. */
        if ((apple != NULL &&
             (workers[i].apple = fake_apple_dup(apple, err, sizeof(err))) == NULL) ||
            (apple_other != NULL &&
             (workers[i].apple_other = fake_apple_dup(apple_other, err, sizeof(err))) == NULL) ||
            (run->opt->attest_reuse_key && workers[i].apple != NULL &&
             !fake_apple_reuse_leaf_key(workers[i].apple, err, sizeof(err)))) {
            fprintf(stderr, "vouch-sim: %s\n", err);
            sim_workers_free(workers, n);
            return NULL;
        }
    }
    *nworkers = n;
    return workers;
}

int sim_workers_command(const struct sim_options *opt)
{
    struct sim_fleet fleet;
    struct sim_run run;
    struct sim_worker *workers = NULL;
    struct sim_stats total;
    enum sim_phase phases[2];
    size_t nphases = 0;
    unsigned nworkers = 0;
    unsigned long created = 0;
    double t0 = sim_workers_clock();
    double t_ready = t0;
    double cpu_ready = 0;
    int rc = SIM_EXIT_FAIL;
    bool http_ready = false;
    struct fake_apple *apple = NULL;
    struct fake_apple *apple_other = NULL;
    bool save_failed = false;

    memset(&run, 0, sizeof(run));
    memset(&total, 0, sizeof(total));
    if (opt->mode == SIM_MODE_ENROLL || opt->mode == SIM_MODE_RUN) {
        if (!sim_fleet_prepare(opt, &fleet, &created))
            return SIM_EXIT_FAIL;
    } else if (!sim_fleet_open(opt, &fleet)) {
        return SIM_EXIT_FAIL;
    }
    run.opt = opt;
    run.fleet = &fleet;
    if ((SIM_MODES_REPORT & SIM_MODE_BIT(opt->mode)) &&
        !sim_fleet_sessions_prepare(opt, &fleet, &run.attest, &apple, &apple_other))
        goto out;
    if (!sim_workers_devices(&run))
        goto out;
    if (opt->identity == SIM_IDENTITY_ACME) {
        bool created_apple = false;

        /* Apple (the stand-in) attests each device's key for its ACME order. */
        if (apple == NULL && (apple = sim_fleet_apple(opt, &created_apple)) == NULL)
            goto out;
        run.acme_pems = calloc(run.ndevices, sizeof(*run.acme_pems));
        run.acme_pem_lens = calloc(run.ndevices, sizeof(*run.acme_pem_lens));
        run.acme_pool = sim_acme_pool_new(run.ndevices - opt->acme_reuse_client_id);
        if (run.acme_pems == NULL || run.acme_pem_lens == NULL || run.acme_pool == NULL) {
            fprintf(stderr, "vouch-sim: out of memory\n");
            goto out;
        }
    }
    run.state = calloc(run.ndevices, 1);
    if (SIM_MODES_CREATE & SIM_MODE_BIT(opt->mode))
        run.tokens = calloc(run.ndevices, sizeof(*run.tokens));
    if (run.state == NULL || ((SIM_MODES_CREATE & SIM_MODE_BIT(opt->mode)) && run.tokens == NULL)) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        goto out;
    }
    workers = sim_workers_new(&run, apple, apple_other, &nworkers, &http_ready);
    if (workers == NULL)
        goto out;

    switch (opt->mode) {
    case SIM_MODE_ENROLL:
        phases[nphases++] = SIM_PHASE_ENROLL;
        break;
    case SIM_MODE_CONNECT:
        phases[nphases++] = SIM_PHASE_CONNECT;
        break;
    case SIM_MODE_RUN:
        phases[nphases++] = SIM_PHASE_ENROLL;
        phases[nphases++] = SIM_PHASE_CONNECT;
        break;
    case SIM_MODE_CHECKOUT:
        phases[nphases++] = SIM_PHASE_CHECKOUT;
        break;
    default:
        goto out;
    }
    t_ready = sim_workers_clock();
    cpu_ready = sim_stats_cpu_seconds();
    for (size_t p = 0; p < nphases; p++) {
        run.phase = phases[p];
        run.last_phase = p + 1 == nphases;
        if (!sim_workers_run_phase(&run, workers, nworkers))
            goto out;
        /* Saved before connect: a concurrent serve may already be waiting for them. */
        if (run.phase == SIM_PHASE_ENROLL &&
            !sim_fleet_tokens_save(opt, &fleet, run.tokens, run.ndevices))
            save_failed = true;
        if (run.phase == SIM_PHASE_ENROLL && run.acme_pems != NULL &&
            !sim_fleet_identities_save(opt, &fleet, run.acme_pems, run.acme_pem_lens, run.ndevices))
            save_failed = true;
    }
    for (unsigned i = 0; i < nworkers; i++)
        sim_stats_merge(&total, &workers[i].stats);
    if (save_failed)
        total.local_errors++;
    sim_stats_print_summary(opt, run.ndevices, created, &total, NULL, t_ready - t0,
                            sim_workers_clock() - t0, cpu_ready);
    rc = total.failed_devices == 0 && !save_failed ? SIM_EXIT_OK : SIM_EXIT_FAIL;
out:
    sim_workers_free(workers, nworkers);
    fake_apple_free(apple);
    fake_apple_free(apple_other);
    free(run.state);
    free(run.tokens);
    for (size_t i = 0; run.acme_pems != NULL && i < run.ndevices; i++)
        free(run.acme_pems[i]);
    free(run.acme_pems);
    free(run.acme_pem_lens);
    sim_acme_pool_free(run.acme_pool);
    if (http_ready)
        sim_http_global_cleanup();
    sim_store_fleet_free(&fleet);
    return rc;
}
