/*
 * sim_fleet: see sim_fleet.h.
 */
#include "sim_fleet.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_device.h"
#include "sim_pki.h"
#include "sim_workers.h"

struct gen_job {
    const struct sim_options *opt;
    struct sim_device *devices;
    char **pems;
    size_t *pem_lens;
    size_t n;
    atomic_size_t next;
    atomic_size_t done;
    atomic_bool failed;
    atomic_uint workers_left;
    pthread_mutex_t lock;
    char err[512];
};

static void gen_fail(struct gen_job *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void gen_fail(struct gen_job *job, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&job->lock);
    if (!atomic_load(&job->failed)) {
        va_start(ap, fmt);
        vsnprintf(job->err, sizeof(job->err), fmt, ap);
        va_end(ap);
        atomic_store(&job->failed, true);
    }
    pthread_mutex_unlock(&job->lock);
}

static void *gen_main(void *arg)
{
    struct gen_job *job = arg;
    char err[512];
    bool absent = false;
    /* Each thread its own copy of the CA: nothing OpenSSL-side is shared between threads. */
    struct sim_ca *ca = sim_store_ca_load(job->opt->dir, &absent, err, sizeof(err));
    size_t i;

    if (ca == NULL)
        gen_fail(job, "loading the CA: %s", err);
    while (ca != NULL && !atomic_load(&job->failed) &&
           (i = atomic_fetch_add(&job->next, 1)) < job->n) {
        if (!sim_pki_identity_issue(ca, job->devices[i].udid, job->opt->key_type, &job->pems[i],
                                    &job->pem_lens[i], err, sizeof(err)))
            gen_fail(job, "device %lu: %s", job->devices[i].index, err);
        atomic_fetch_add(&job->done, 1);
    }
    sim_pki_ca_free(ca);
    atomic_fetch_sub(&job->workers_left, 1);
    return NULL;
}

/* Derives n devices from first on and issues their identities with K threads. */
static bool identities_create(const struct sim_options *opt, const char *prefix, size_t first,
                              size_t n, struct sim_device **devices_out, char ***pems_out,
                              size_t **lens_out)
{
    struct gen_job job;
    unsigned nthreads = opt->concurrency < n ? opt->concurrency : (unsigned)n;
    pthread_t *threads = calloc(nthreads, sizeof(*threads));
    unsigned started = 0;
    bool ok = false;

    memset(&job, 0, sizeof(job));
    job.opt = opt;
    job.n = n;
    job.devices = calloc(n, sizeof(*job.devices));
    job.pems = calloc(n, sizeof(*job.pems));
    job.pem_lens = calloc(n, sizeof(*job.pem_lens));
    if (threads == NULL || job.devices == NULL || job.pems == NULL || job.pem_lens == NULL) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sim_device_derive(&job.devices[i], prefix, (unsigned long)(first + i))) {
            fprintf(stderr, "vouch-sim: cannot derive device %zu\n", first + i);
            goto out;
        }
    }
    if (pthread_mutex_init(&job.lock, NULL) != 0) {
        fprintf(stderr, "vouch-sim: pthread_mutex_init failed\n");
        goto out;
    }
    if (!opt->quiet)
        fprintf(stderr, "vouch-sim: issuing %zu %s device identities\n", n,
                opt->key_type == SIM_KEY_RSA ? "RSA 2048" : "P-256");
    atomic_store(&job.workers_left, nthreads);
    for (; started < nthreads; started++) {
        int rc = pthread_create(&threads[started], NULL, gen_main, &job);
        if (rc != 0) {
            fprintf(stderr, "vouch-sim: starting thread: %s\n", strerror(rc));
            atomic_fetch_sub(&job.workers_left, nthreads - started);
            break;
        }
    }
    if (started > 0)
        sim_workers_wait("identities", &job.workers_left, &job.done, n, NULL, NULL, opt->quiet);
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&job.lock);
    if (started == 0)
        goto out;
    if (atomic_load(&job.failed)) {
        fprintf(stderr, "vouch-sim: issuing identities: %s\n", job.err);
        goto out;
    }
    ok = true;
out:
    free(threads);
    if (!ok) {
        for (size_t i = 0; job.pems != NULL && i < n; i++)
            free(job.pems[i]);
        free(job.pems);
        free(job.pem_lens);
        free(job.devices);
        return false;
    }
    *devices_out = job.devices;
    *pems_out = job.pems;
    *lens_out = job.pem_lens;
    return true;
}

int sim_fleet_lock(const struct sim_options *opt)
{
    char err[512];
    int lock;

    if (!sim_store_prepare_dir(opt->dir, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return -1;
    }
    lock = sim_store_lock(opt->dir, err, sizeof(err));
    if (lock < 0)
        fprintf(stderr, "vouch-sim: %s\n", err);
    return lock;
}

bool sim_fleet_prepare(const struct sim_options *opt, struct sim_fleet *fleet,
                       unsigned long *created)
{
    char err[512];
    bool ca_created = false;
    int lock;
    bool ok = false;
    const char *prefix;

    *created = 0;
    memset(fleet, 0, sizeof(*fleet));
    lock = sim_fleet_lock(opt);
    if (lock < 0)
        return false;
    if (!sim_store_ca_init(opt->dir, SIM_KEY_EC, &ca_created, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        goto out;
    }
    if (ca_created)
        fprintf(stderr,
                "vouch-sim: created the device-identity CA %s/ca.pem; vouchd's identity_ca must "
                "name it\n",
                opt->dir);
    if (!sim_store_fleet_load(opt->dir, fleet, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        goto out;
    }
    if (fleet->count > 0 && opt->prefix_set && strcmp(opt->prefix, fleet->prefix) != 0) {
        fprintf(stderr, "vouch-sim: %s holds the fleet '%s'; use another --dir for prefix '%s'\n",
                opt->dir, fleet->prefix, opt->prefix);
        goto out;
    }
    prefix = fleet->count > 0 ? fleet->prefix : opt->prefix;
    if (fleet->count < opt->devices) {
        size_t n = opt->devices - fleet->count;
        struct sim_device *devices = NULL;
        char **pems = NULL;
        size_t *lens = NULL;
        bool saved;

        if (!identities_create(opt, prefix, fleet->count, n, &devices, &pems, &lens))
            goto out;
        saved = sim_store_fleet_append(opt->dir, fleet, prefix, devices, pems, lens, n, err,
                                       sizeof(err));
        for (size_t i = 0; i < n; i++)
            free(pems[i]);
        free(pems);
        free(lens);
        free(devices);
        if (!saved) {
            fprintf(stderr, "vouch-sim: %s\n", err);
            goto out;
        }
        *created = (unsigned long)n;
        sim_store_fleet_free(fleet);
        if (!sim_store_fleet_load(opt->dir, fleet, err, sizeof(err))) {
            fprintf(stderr, "vouch-sim: %s\n", err);
            goto out;
        }
    }
    ok = true;
out:
    sim_store_unlock(lock);
    if (!ok)
        sim_store_fleet_free(fleet);
    return ok;
}

bool sim_fleet_open(const struct sim_options *opt, struct sim_fleet *fleet)
{
    char err[512];

    if (!sim_store_fleet_load(opt->dir, fleet, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return false;
    }
    if (fleet->count == 0) {
        fprintf(stderr, "vouch-sim: %s holds no devices (run vouch-sim enroll first)\n", opt->dir);
        sim_store_fleet_free(fleet);
        return false;
    }
    if (opt->devices_set && opt->devices > fleet->count) {
        fprintf(stderr, "vouch-sim: %s holds only %zu devices, not %lu\n", opt->dir, fleet->count,
                opt->devices);
        sim_store_fleet_free(fleet);
        return false;
    }
    return true;
}

struct fake_apple *sim_fleet_apple(const struct sim_options *opt, bool *created)
{
    char err[512];
    struct fake_apple *apple;
    int lock;

    *created = false;
    lock = sim_fleet_lock(opt);
    if (lock < 0)
        return NULL;
    apple = fake_apple_open(opt->dir, created, err, sizeof(err));
    sim_store_unlock(lock);
    if (apple == NULL)
        fprintf(stderr, "vouch-sim: stand-in Apple hierarchy in %s: %s\n", opt->dir, err);
    else if (*created && opt->mode != SIM_MODE_INIT_CA)
        fprintf(stderr,
                "vouch-sim: created the stand-in Apple attestation hierarchy %s/%s; vouchd's "
                "attestation_roots must name it\n",
                opt->dir, FAKE_APPLE_ROOT_CERT_FILE);
    return apple;
}

bool sim_fleet_attest_options(const struct sim_options *opt, const struct sim_fleet *fleet,
                              struct sim_attest_options *aopt)
{
    memset(aopt, 0, sizeof(*aopt));
    aopt->tamper = opt->attest_tamper;
    aopt->legacy_leaf = opt->attest_legacy_leaf;
    aopt->now = opt->now;
    if (opt->attest_as_device_set) {
        if (opt->attest_as_device >= fleet->count) {
            fprintf(stderr, "vouch-sim: --attest-as-device %lu: %s holds only %zu devices\n",
                    opt->attest_as_device, opt->dir, fleet->count);
            return false;
        }
        aopt->as_device = &fleet->devices[opt->attest_as_device];
    }
    return true;
}

bool sim_fleet_sessions_prepare(const struct sim_options *opt, const struct sim_fleet *fleet,
                                struct sim_attest_options *aopt, struct fake_apple **apple,
                                struct fake_apple **apple_other)
{
    char err[512];
    bool created = false;

    if (!sim_fleet_attest_options(opt, fleet, aopt))
        return false;
    *apple = sim_fleet_apple(opt, &created);
    if (*apple == NULL)
        return false;
    if (opt->attest_tamper == SIM_TAMPER_OTHER_ROOT) {
        *apple_other = fake_apple_new(err, sizeof(err));
        if (*apple_other == NULL) {
            fprintf(stderr, "vouch-sim: the second stand-in Apple hierarchy: %s\n", err);
            return false;
        }
    }
    return true;
}

bool sim_fleet_tokens_save(const struct sim_options *opt, const struct sim_fleet *fleet,
                           const struct sim_push_token *tokens, size_t n)
{
    char err[512];
    size_t count = 0;
    int lock;
    bool ok;

    for (size_t i = 0; i < n; i++)
        count += tokens[i].present;
    if (count == 0)
        return true;
    lock = sim_store_lock(opt->dir, err, sizeof(err));
    if (lock < 0) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return false;
    }
    ok = sim_store_tokens_update(opt->dir, fleet, tokens, n, err, sizeof(err));
    sim_store_unlock(lock);
    if (!ok)
        fprintf(stderr, "vouch-sim: saving the push tokens: %s\n", err);
    else if (!opt->quiet)
        fprintf(stderr, "vouch-sim: saved %zu push tokens in %s/%s\n", count, opt->dir,
                SIM_STORE_TOKENS_FILE);
    return ok;
}

bool sim_fleet_identities_save(const struct sim_options *opt, const struct sim_fleet *fleet,
                               char *const *pems, const size_t *pem_lens, size_t n)
{
    char err[512];
    size_t count = 0;
    size_t replaced = 0;
    int lock;
    bool ok;

    for (size_t i = 0; i < n; i++)
        count += pems[i] != NULL;
    if (count == 0)
        return true;
    lock = sim_store_lock(opt->dir, err, sizeof(err));
    if (lock < 0) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        return false;
    }
    ok = sim_store_identities_update(opt->dir, fleet, pems, pem_lens, n, &replaced, err,
                                     sizeof(err));
    sim_store_unlock(lock);
    if (!ok)
        fprintf(stderr, "vouch-sim: saving the ACME identities: %s\n", err);
    else if (replaced != count)
        fprintf(stderr, "vouch-sim: saved %zu of %zu ACME identities (%s/devices.pem changed)\n",
                replaced, count, opt->dir);
    else if (!opt->quiet)
        fprintf(stderr, "vouch-sim: saved %zu ACME identities in %s/devices.pem\n", count,
                opt->dir);
    return ok && replaced == count;
}

struct sim_push_token *sim_fleet_tokens_load(const struct sim_options *opt,
                                             const struct sim_fleet *fleet, size_t n,
                                             struct sim_store_stamp *stamp)
{
    struct sim_push_token *tokens = calloc(n > 0 ? n : 1, sizeof(*tokens));
    size_t skipped = 0;
    char err[512];

    if (tokens == NULL) {
        fprintf(stderr, "vouch-sim: out of memory\n");
        return NULL;
    }
    if (!sim_store_tokens_load(opt->dir, fleet, tokens, n, &skipped, stamp, err, sizeof(err))) {
        fprintf(stderr, "vouch-sim: %s\n", err);
        free(tokens);
        return NULL;
    }
    if (skipped > 0)
        fprintf(stderr, "vouch-sim: %s/%s: %zu records name no device of %s/devices.pem\n",
                opt->dir, SIM_STORE_TOKENS_FILE, skipped, opt->dir);
    return tokens;
}
