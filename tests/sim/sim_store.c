/*
 * sim_store: the state directory (CA files and the fleet file); see sim_store.h.
 */
#include "sim_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "tu_file.h"
#include "hex.h"

#define STORE_CA_CERT "ca.pem"
#define STORE_CA_KEY "ca.key"
#define STORE_FLEET "devices.pem"
#define STORE_LOCK ".lock"
#define STORE_MAGIC "# vouch-sim device fleet v1\n"
#define STORE_PREFIX_LINE "# prefix="
#define STORE_KEY_END "-----END PRIVATE KEY-----"
#define STORE_CERT_BEGIN "-----BEGIN CERTIFICATE-----"
/* CA files are small; the fleet file of 100,000 RSA identities is about 350 MB. */
#define STORE_CA_FILE_MAX ((size_t)1024 * 1024)
#define STORE_FLEET_FILE_MAX ((size_t)8 * 1024 * 1024 * 1024)
#define STORE_FIELDS 11
#define STORE_ATTEST_DIR "attestations"
#define STORE_ATTEST_MAGIC "# vouch-sim attestation cache v1\n"
#define STORE_ATTEST_GENERATED "# generated_at="
#define STORE_ATTEST_NONCE "# nonce="
#define STORE_ATTEST_FILE_MAX ((size_t)64 * 1024)

bool sim_store_prepare_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "creating %s: %s", dir, strerror(errno));
        return false;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", dir);
        return false;
    }
    return true;
}

int sim_store_lock(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    int fd;

    if (!tu_path_join(path, sizeof(path), dir, STORE_LOCK)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return -1;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "locking %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

void sim_store_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the only descriptor releases the flock */
}

struct sim_ca *sim_store_ca_load(const char *dir, bool *absent, char *err, size_t errlen)
{
    char cert_path[4096];
    char key_path[4096];
    char *cert = NULL;
    char *key = NULL;
    size_t cert_len;
    size_t key_len;
    enum tu_read rc_cert;
    enum tu_read rc_key;
    struct sim_ca *ca = NULL;

    *absent = false;
    if (!tu_path_join(cert_path, sizeof(cert_path), dir, STORE_CA_CERT) ||
        !tu_path_join(key_path, sizeof(key_path), dir, STORE_CA_KEY)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return NULL;
    }
    rc_cert = tu_file_read(cert_path, STORE_CA_FILE_MAX, &cert, &cert_len, err, errlen);
    if (rc_cert == TU_READ_ERROR)
        return NULL;
    rc_key = tu_file_read(key_path, STORE_CA_FILE_MAX, &key, &key_len, err, errlen);
    if (rc_key == TU_READ_ERROR)
        goto out;
    if (rc_cert == TU_READ_ABSENT && rc_key == TU_READ_ABSENT) {
        *absent = true;
        snprintf(err, errlen, "%s holds no CA (run vouch-sim init-ca --dir %s)", dir, dir);
        goto out;
    }
    if (rc_cert == TU_READ_ABSENT || rc_key == TU_READ_ABSENT) {
        snprintf(err, errlen, "%s is missing; remove %s too or restore it",
                 rc_cert == TU_READ_ABSENT ? cert_path : key_path,
                 rc_cert == TU_READ_ABSENT ? key_path : cert_path);
        goto out;
    }
    ca = sim_pki_ca_load(cert, cert_len, key, key_len, err, errlen);
out:
    free(cert);
    free(key);
    return ca;
}

bool sim_store_ca_init(const char *dir, enum sim_key_type key_type, bool *created, char *err,
                       size_t errlen)
{
    char cert_path[4096];
    char key_path[4096];
    char *cert = NULL;
    char *key = NULL;
    bool absent = false;
    struct sim_ca *ca;
    bool ok;

    *created = false;
    ca = sim_store_ca_load(dir, &absent, err, errlen);
    if (ca != NULL) {
        sim_pki_ca_free(ca);
        return true;
    }
    if (!absent)
        return false;
    if (!tu_path_join(cert_path, sizeof(cert_path), dir, STORE_CA_CERT) ||
        !tu_path_join(key_path, sizeof(key_path), dir, STORE_CA_KEY)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return false;
    }
    if (!sim_pki_ca_create(key_type, &cert, &key, err, errlen))
        return false;
    /* The key first: a crash between the two leaves a key without a certificate, which
     * sim_store_ca_load() reports instead of silently making a second CA. */
    ok = tu_file_write_atomic(key_path, key, strlen(key), 0600, err, errlen) &&
         tu_file_write_atomic(cert_path, cert, strlen(cert), 0644, err, errlen);
    free(cert);
    free(key);
    *created = ok;
    return ok;
}

/* Copies field into out (size outlen); false when it does not fit or is empty. */
static bool store_copy_field(char *out, size_t outlen, const char *field, size_t len)
{
    if (len == 0 || len >= outlen)
        return false;
    memcpy(out, field, len);
    out[len] = '\0';
    return true;
}

/* Splits the len bytes at line at tabs into at most max fields; the last one takes the rest,
 * tabs included. Returns the number of fields. */
static size_t store_split_fields(const char *line, size_t len, const char **fields, size_t *lens,
                                 size_t max)
{
    const char *p = line;
    const char *end = line + len;
    size_t nfields = 0;

    while (nfields < max) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *stop = tab != NULL ? tab : end;
        fields[nfields] = p;
        lens[nfields] = (size_t)(stop - p);
        nfields++;
        if (tab == NULL)
            break;
        p = tab + 1;
    }
    return nfields;
}

/* A device index field: decimal digits only. */
static bool store_parse_index(const char *field, size_t len, unsigned long *index)
{
    char number[24];
    char *num_end = NULL;

    if (!store_copy_field(number, sizeof(number), field, len) || number[0] < '0' || number[0] > '9')
        return false;
    errno = 0;
    *index = strtoul(number, &num_end, 10);
    return errno == 0 && *num_end == '\0';
}

/* Parses one "device\t..." line (without its newline) into dev. */
static bool store_parse_device_line(const char *line, size_t len, struct sim_device *dev,
                                    unsigned long expect_index)
{
    const char *fields[STORE_FIELDS];
    size_t lens[STORE_FIELDS];
    size_t nfields = store_split_fields(line, len, fields, lens, STORE_FIELDS);
    unsigned long index;

    /* The last field (DeviceName) may not contain a tab, so anything left over is an error. */
    if (nfields != STORE_FIELDS || fields[STORE_FIELDS - 1] + lens[STORE_FIELDS - 1] != line + len)
        return false;
    if (lens[0] != 6 || memcmp(fields[0], "device", 6) != 0)
        return false;
    if (!store_parse_index(fields[1], lens[1], &index) || index != expect_index)
        return false;
    memset(dev, 0, sizeof(*dev));
    dev->index = index;
    if (!store_copy_field(dev->udid, sizeof(dev->udid), fields[2], lens[2]) ||
        !store_copy_field(dev->serial, sizeof(dev->serial), fields[3], lens[3]) ||
        !store_copy_field(dev->product_name, sizeof(dev->product_name), fields[4], lens[4]) ||
        !store_copy_field(dev->model, sizeof(dev->model), fields[5], lens[5]) ||
        !store_copy_field(dev->model_name, sizeof(dev->model_name), fields[6], lens[6]) ||
        !store_copy_field(dev->os_version, sizeof(dev->os_version), fields[7], lens[7]) ||
        !store_copy_field(dev->build_version, sizeof(dev->build_version), fields[8], lens[8]) ||
        !store_copy_field(dev->imei, sizeof(dev->imei), fields[9], lens[9]) ||
        !store_copy_field(dev->device_name, sizeof(dev->device_name), fields[10], lens[10]))
        return false;
    if (strcmp(dev->imei, "-") == 0)
        dev->imei[0] = '\0';
    return true;
}

static bool store_fleet_parse(struct sim_fleet *fleet, const char *path, char *err, size_t errlen)
{
    const char *p = fleet->file;
    const char *end = fleet->file + fleet->file_len;
    size_t cap = 0;
    unsigned long line_no = 1;

    if (fleet->file_len < strlen(STORE_MAGIC) || memcmp(p, STORE_MAGIC, strlen(STORE_MAGIC)) != 0) {
        snprintf(err, errlen, "%s: not a vouch-sim fleet file (first line)", path);
        return false;
    }
    p += strlen(STORE_MAGIC);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len;
        struct sim_device *dev;
        const char *key_end;

        line_no++;
        if (nl == NULL) {
            snprintf(err, errlen, "%s:%lu: truncated line", path, line_no);
            return false;
        }
        len = (size_t)(nl - p);
        if (len == 0 || p[0] == '#') {
            size_t plen = strlen(STORE_PREFIX_LINE);
            if (len > plen && memcmp(p, STORE_PREFIX_LINE, plen) == 0) {
                if (!store_copy_field(fleet->prefix, sizeof(fleet->prefix), p + plen, len - plen) ||
                    !sim_device_prefix_ok(fleet->prefix)) {
                    snprintf(err, errlen, "%s:%lu: bad prefix", path, line_no);
                    return false;
                }
            }
            p = nl + 1;
            continue;
        }
        if (fleet->count == cap) {
            size_t ncap = cap == 0 ? 1024 : cap * 2;
            struct sim_device *n = realloc(fleet->devices, ncap * sizeof(*n));
            if (n == NULL) {
                snprintf(err, errlen, "out of memory loading %s", path);
                return false;
            }
            fleet->devices = n;
            cap = ncap;
        }
        dev = &fleet->devices[fleet->count];
        if (!store_parse_device_line(p, len, dev, (unsigned long)fleet->count)) {
            snprintf(err, errlen, "%s:%lu: bad device record (expected device %zu)", path, line_no,
                     fleet->count);
            return false;
        }
        p = nl + 1;
        key_end = memmem(p, (size_t)(end - p), STORE_KEY_END, strlen(STORE_KEY_END));
        if ((size_t)(end - p) < strlen(STORE_CERT_BEGIN) ||
            memcmp(p, STORE_CERT_BEGIN, strlen(STORE_CERT_BEGIN)) != 0 || key_end == NULL) {
            snprintf(err, errlen, "%s: device %zu has no certificate and key PEM", path,
                     fleet->count);
            return false;
        }
        nl = memchr(key_end, '\n', (size_t)(end - key_end));
        if (nl == NULL) {
            snprintf(err, errlen, "%s: device %zu: truncated key PEM", path, fleet->count);
            return false;
        }
        dev->identity_pem = p;
        dev->identity_pem_len = (size_t)(nl + 1 - p);
        for (const char *q = p; q <= nl; q++)
            line_no += *q == '\n';
        p = nl + 1;
        fleet->count++;
    }
    if (fleet->count > 0 && fleet->prefix[0] == '\0') {
        snprintf(err, errlen, "%s: no \"%s\" line", path, STORE_PREFIX_LINE);
        return false;
    }
    return true;
}

bool sim_store_fleet_load(const char *dir, struct sim_fleet *fleet, char *err, size_t errlen)
{
    char path[4096];
    enum tu_read rc;

    memset(fleet, 0, sizeof(*fleet));
    if (!tu_path_join(path, sizeof(path), dir, STORE_FLEET)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return false;
    }
    rc = tu_file_read(path, STORE_FLEET_FILE_MAX, &fleet->file, &fleet->file_len, err, errlen);
    if (rc == TU_READ_ABSENT)
        return true;
    if (rc == TU_READ_ERROR)
        return false;
    if (!store_fleet_parse(fleet, path, err, errlen)) {
        sim_store_fleet_free(fleet);
        return false;
    }
    return true;
}

void sim_store_fleet_free(struct sim_fleet *fleet)
{
    free(fleet->devices);
    free(fleet->file);
    memset(fleet, 0, sizeof(*fleet));
}

static bool store_field_ok(const char *s)
{
    return s[0] != '\0' && strpbrk(s, "\t\n") == NULL;
}

/* The first lines of a fleet file. */
static bool store_write_header(FILE *f, const char *prefix)
{
    return fprintf(f,
                   "%s%s%s\n"
                   "# One record per device: a \"device\" line of tab-separated facts (index,"
                   " UDID, serial number,\n"
                   "# ProductName, Model, ModelName, OSVersion, BuildVersion, IMEI or -,"
                   " DeviceName), then the\n"
                   "# identity certificate PEM and its unencrypted PKCS#8 key PEM.\n",
                   STORE_MAGIC, STORE_PREFIX_LINE, prefix) >= 0;
}

/* One device record; false (err set) for one that could not be read back, or a write error. */
static bool store_write_record(FILE *f, const struct sim_device *d, const char *pem, size_t pem_len,
                               char *err, size_t errlen)
{
    if (!store_field_ok(d->udid) || !store_field_ok(d->device_name) || pem_len == 0 ||
        pem[pem_len - 1] != '\n') {
        snprintf(err, errlen, "device %lu: record cannot be stored", d->index);
        return false;
    }
    if (fprintf(f, "device\t%lu\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d->index, d->udid,
                d->serial, d->product_name, d->model, d->model_name, d->os_version,
                d->build_version, d->imei[0] != '\0' ? d->imei : "-", d->device_name) < 0 ||
        fwrite(pem, 1, pem_len, f) != pem_len) {
        snprintf(err, errlen, "writing device %lu: %s", d->index, strerror(errno));
        return false;
    }
    return true;
}

bool sim_store_fleet_append(const char *dir, const struct sim_fleet *fleet, const char *prefix,
                            const struct sim_device *devices, char *const *pems,
                            const size_t *pem_lens, size_t n, char *err, size_t errlen)
{
    char path[4096];
    char tmp[4096];
    FILE *f;

    if (!tu_path_join(path, sizeof(path), dir, STORE_FLEET)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return false;
    }
    f = tu_file_create_tmp(path, 0600, tmp, sizeof(tmp), err, errlen);
    if (f == NULL)
        return false;
    if (fleet->count > 0 || fleet->file_len > 0) {
        if (fwrite(fleet->file, 1, fleet->file_len, f) != fleet->file_len) {
            snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
            goto fail;
        }
    } else if (!store_write_header(f, prefix)) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (devices[i].index != fleet->count + i) {
            snprintf(err, errlen, "device %lu: record cannot be stored", devices[i].index);
            goto fail;
        }
        if (!store_write_record(f, &devices[i], pems[i], pem_lens[i], err, errlen))
            goto fail;
    }
    return tu_file_commit_tmp(f, tmp, path, err, errlen);

fail:
    fclose(f);
    unlink(tmp);
    return false;
}

bool sim_store_identities_update(const char *dir, const struct sim_fleet *fleet, char *const *pems,
                                 const size_t *pem_lens, size_t n, size_t *replaced, char *err,
                                 size_t errlen)
{
    struct sim_fleet cur;
    char path[4096];
    char tmp[4096];
    FILE *f;
    bool ok = false;

    *replaced = 0;
    if (!tu_path_join(path, sizeof(path), dir, STORE_FLEET)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return false;
    }
    /* The file as it is now: another run may have added devices since fleet was read. */
    if (!sim_store_fleet_load(dir, &cur, err, errlen))
        return false;
    f = tu_file_create_tmp(path, 0600, tmp, sizeof(tmp), err, errlen);
    if (f == NULL)
        goto out;
    if (!store_write_header(f, cur.prefix)) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < cur.count; i++) {
        const struct sim_device *d = &cur.devices[i];
        bool mine = i < n && i < fleet->count && pems[i] != NULL &&
                    strcmp(fleet->devices[i].udid, d->udid) == 0;

        if (!store_write_record(f, d, mine ? pems[i] : d->identity_pem,
                                mine ? pem_lens[i] : d->identity_pem_len, err, errlen))
            goto fail;
        *replaced += mine;
    }
    ok = tu_file_commit_tmp(f, tmp, path, err, errlen);
    goto out;
fail:
    fclose(f);
    unlink(tmp);
out:
    sim_store_fleet_free(&cur);
    return ok;
}

/* ---- attestation caches --------------------------------------------------------------------- */

/* DIR/attestations/UDID.pem; false when the UDID is no safe file name or the path too long. */
static bool store_attest_path(char *out, size_t outlen, const char *dir, const char *udid)
{
    int n;

    if (udid[0] == '\0' || udid[0] == '.')
        return false;
    for (const char *p = udid; *p != '\0'; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    }
    n = snprintf(out, outlen, "%s/%s/%s.pem", dir, STORE_ATTEST_DIR, udid);
    return n > 0 && (size_t)n < outlen;
}

/* Parses a cache file's text (NUL-terminated, len bytes) into cache. */
static bool store_attest_parse(const char *text, size_t len, struct sim_attest_cache *cache)
{
    const char *p = text + strlen(STORE_ATTEST_MAGIC);
    const char *end = text + len;
    bool have_time = false;
    bool have_nonce = false;
    BIO *bio;

    if (len < strlen(STORE_ATTEST_MAGIC) ||
        memcmp(text, STORE_ATTEST_MAGIC, strlen(STORE_ATTEST_MAGIC)) != 0)
        return false;
    while (p < end && *p == '#') {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t glen = strlen(STORE_ATTEST_GENERATED);
        size_t nlen = strlen(STORE_ATTEST_NONCE);

        if (nl == NULL)
            return false;
        if ((size_t)(nl - p) > glen && memcmp(p, STORE_ATTEST_GENERATED, glen) == 0) {
            char *num_end = NULL;
            long long t;
            errno = 0;
            t = strtoll(p + glen, &num_end, 10);
            if (errno != 0 || num_end != nl)
                return false;
            cache->generated_at = (time_t)t;
            have_time = true;
        } else if ((size_t)(nl - p) >= nlen && memcmp(p, STORE_ATTEST_NONCE, nlen) == 0) {
            if (!hex_decode(p + nlen, (size_t)(nl - p) - nlen, cache->nonce, sizeof(cache->nonce),
                            &cache->nonce_len))
                return false;
            have_nonce = true;
        }
        p = nl + 1;
    }
    if (!have_time || !have_nonce || p >= end || (size_t)(end - p) > INT32_MAX)
        return false;
    bio = BIO_new_mem_buf(p, (int)(end - p));
    if (bio == NULL)
        return false;
    for (;;) {
        char *name = NULL;
        char *header = NULL;
        unsigned char *data = NULL;
        long n = 0;
        bool ok;

        if (PEM_read_bio(bio, &name, &header, &data, &n) != 1)
            break;
        ok = strcmp(name, "CERTIFICATE") == 0 && n > 0 && cache->chain.count < FAKE_CHAIN_MAX;
        if (ok) {
            unsigned char *copy = malloc((size_t)n);
            ok = copy != NULL;
            if (ok) {
                memcpy(copy, data, (size_t)n);
                cache->chain.der[cache->chain.count] = copy;
                cache->chain.len[cache->chain.count] = (size_t)n;
                cache->chain.count++;
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        if (!ok) {
            BIO_free(bio);
            return false;
        }
    }
    BIO_free(bio);
    ERR_clear_error(); /* the end of the PEM data leaves a "no start line" behind */
    cache->present = cache->chain.count > 0;
    return cache->present;
}

bool sim_store_attest_load(const char *dir, const char *udid, struct sim_attest_cache *cache,
                           char *err, size_t errlen)
{
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    enum tu_read rc;

    memset(cache, 0, sizeof(*cache));
    if (!store_attest_path(path, sizeof(path), dir, udid)) {
        snprintf(err, errlen, "no cache file name for UDID %s", udid);
        return false;
    }
    rc = tu_file_read(path, STORE_ATTEST_FILE_MAX, &text, &len, err, errlen);
    if (rc == TU_READ_ABSENT)
        return true;
    if (rc == TU_READ_ERROR)
        return false;
    if (!store_attest_parse(text, len, cache)) {
        sim_attest_cache_free(cache);
        snprintf(err, errlen, "%s is not an attestation cache (remove it to start over)", path);
        free(text);
        return false;
    }
    free(text);
    return true;
}

bool sim_store_attest_save(const char *dir, const char *udid, const struct sim_attest_cache *cache,
                           char *err, size_t errlen)
{
    char path[4096];
    char sub[4096];
    char tmp[4096];
    FILE *f;
    BIO *bio = NULL;
    char *pem = NULL;
    long pem_len;

    if (!store_attest_path(path, sizeof(path), dir, udid) ||
        !tu_path_join(sub, sizeof(sub), dir, STORE_ATTEST_DIR)) {
        snprintf(err, errlen, "no cache file name for UDID %s", udid);
        return false;
    }
    if (mkdir(sub, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "creating %s: %s", sub, strerror(errno));
        return false;
    }
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (size_t i = 0; i < cache->chain.count && i < FAKE_CHAIN_MAX; i++) {
        const struct fake_chain *c = &cache->chain;
        if (c->len[i] > INT32_MAX ||
            PEM_write_bio(bio, "CERTIFICATE", "", c->der[i], (long)c->len[i]) <= 0) {
            snprintf(err, errlen, "encoding the attestation cache of %s", udid);
            BIO_free(bio);
            return false;
        }
    }
    pem_len = BIO_get_mem_data(bio, &pem);
    f = tu_file_create_tmp(path, 0600, tmp, sizeof(tmp), err, errlen);
    if (f == NULL) {
        BIO_free(bio);
        return false;
    }
    fprintf(f, "%s%s%lld\n%s", STORE_ATTEST_MAGIC, STORE_ATTEST_GENERATED,
            (long long)cache->generated_at, STORE_ATTEST_NONCE);
    for (size_t i = 0; i < cache->nonce_len && i < sizeof(cache->nonce); i++)
        fprintf(f, "%02x", cache->nonce[i]);
    fputc('\n', f);
    if (pem_len > 0)
        fwrite(pem, 1, (size_t)pem_len, f);
    BIO_free(bio);
    /* No fsync: the cache is replaced once per fresh attestation, and an fsync each (with its
     * journal commit) cost a serve campaign more than the attestation itself. A cache lost to a
     * machine crash is only a fresh attestation the next time. */
    return tu_file_commit_tmp_unsynced(f, tmp, path, err, errlen);
}

/* ---- push tokens ---------------------------------------------------------------------------- */

#define STORE_TOKENS_MAGIC "# vouch-sim push tokens v1\n"
#define STORE_TOKENS_FIELDS 4
/* 100,000 devices take about 13 MB. */
#define STORE_TOKENS_FILE_MAX ((size_t)1024 * 1024 * 1024)

void sim_store_token_hex(const unsigned char token[SIM_TOKEN_LEN], char *out)
{
    hex_encode(token, SIM_TOKEN_LEN, out);
}

bool sim_store_token_parse(const char *hex, size_t len, unsigned char token[SIM_TOKEN_LEN])
{
    size_t n = 0;

    return len == 2 * SIM_TOKEN_LEN && hex_decode(hex, len, token, SIM_TOKEN_LEN, &n);
}

/* A PushMagic that fits one whitespace-free field. */
static bool store_magic_ok(const char *magic, size_t len)
{
    if (len == 0 || len >= SIM_PUSH_MAGIC_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)magic[i];
        if (ch <= 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

static void store_stamp_of(const struct stat *st, struct sim_store_stamp *stamp)
{
    memset(stamp, 0, sizeof(*stamp));
    stamp->exists = true;
    stamp->dev = (unsigned long long)st->st_dev;
    stamp->ino = (unsigned long long)st->st_ino;
    stamp->size = (long long)st->st_size;
    stamp->mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

bool sim_store_tokens_changed(const char *dir, const struct sim_store_stamp *stamp)
{
    char path[4096];
    struct stat st;
    struct sim_store_stamp now;

    if (!tu_path_join(path, sizeof(path), dir, SIM_STORE_TOKENS_FILE))
        return false;
    if (stat(path, &st) != 0)
        return stamp->exists;
    store_stamp_of(&st, &now);
    return !stamp->exists || now.dev != stamp->dev || now.ino != stamp->ino ||
           now.size != stamp->size || now.mtime_ns != stamp->mtime_ns;
}

/* Parses one record line (without its newline) into *index and tok. */
static bool store_parse_token_line(const char *line, size_t len, unsigned long *index, char *udid,
                                   size_t udidlen, struct sim_push_token *tok)
{
    const char *fields[STORE_TOKENS_FIELDS];
    size_t lens[STORE_TOKENS_FIELDS];
    size_t nfields = store_split_fields(line, len, fields, lens, STORE_TOKENS_FIELDS);

    if (nfields != STORE_TOKENS_FIELDS) /* later fields, if any, are for later versions */
        return false;
    if (!store_parse_index(fields[0], lens[0], index))
        return false;
    if (!store_copy_field(udid, udidlen, fields[1], lens[1]))
        return false;
    memset(tok, 0, sizeof(*tok));
    if (!sim_store_token_parse(fields[2], lens[2], tok->token) ||
        !store_magic_ok(fields[3], lens[3]))
        return false;
    memcpy(tok->push_magic, fields[3], lens[3]);
    tok->push_magic[lens[3]] = '\0';
    tok->present = true;
    return true;
}

bool sim_store_tokens_load(const char *dir, const struct sim_fleet *fleet,
                           struct sim_push_token *tokens, size_t n, size_t *skipped,
                           struct sim_store_stamp *stamp, char *err, size_t errlen)
{
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    const char *p;
    const char *end;
    unsigned long line_no = 0;
    enum tu_read rc;
    struct stat st;
    int fd;

    *skipped = 0;
    for (size_t i = 0; i < n; i++)
        tokens[i].present = false;
    if (stamp != NULL)
        memset(stamp, 0, sizeof(*stamp));
    if (n > fleet->count) {
        snprintf(err, errlen, "asked for the tokens of %zu devices of %zu", n, fleet->count);
        return false;
    }
    if (!tu_path_join(path, sizeof(path), dir, SIM_STORE_TOKENS_FILE)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return false;
    }
    /* The stamp first: a writer replacing the file after it makes the next check see a change. */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (stamp != NULL && fstat(fd, &st) == 0)
            store_stamp_of(&st, stamp);
        close(fd);
    }
    rc = tu_file_read(path, STORE_TOKENS_FILE_MAX, &text, &len, err, errlen);
    if (rc == TU_READ_ABSENT)
        return true;
    if (rc == TU_READ_ERROR)
        return false;
    if (len < strlen(STORE_TOKENS_MAGIC) ||
        memcmp(text, STORE_TOKENS_MAGIC, strlen(STORE_TOKENS_MAGIC)) != 0) {
        snprintf(err, errlen, "%s: not a vouch-sim token file (first line)", path);
        free(text);
        return false;
    }
    p = text;
    end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t llen;
        unsigned long index;
        char udid[sizeof(fleet->devices[0].udid)];
        struct sim_push_token tok;

        line_no++;
        if (nl == NULL) {
            snprintf(err, errlen, "%s:%lu: truncated line", path, line_no);
            free(text);
            return false;
        }
        llen = (size_t)(nl - p);
        if (llen == 0 || p[0] == '#') {
            p = nl + 1;
            continue;
        }
        if (!store_parse_token_line(p, llen, &index, udid, sizeof(udid), &tok)) {
            snprintf(err, errlen, "%s:%lu: bad token record", path, line_no);
            free(text);
            return false;
        }
        p = nl + 1;
        if (index >= fleet->count || strcmp(fleet->devices[index].udid, udid) != 0) {
            (*skipped)++;
            continue;
        }
        if (index < n)
            tokens[index] = tok;
    }
    free(text);
    return true;
}

bool sim_store_tokens_update(const char *dir, const struct sim_fleet *fleet,
                             const struct sim_push_token *updates, size_t n, char *err,
                             size_t errlen)
{
    char path[4096];
    char tmp[4096];
    char hex[2 * SIM_TOKEN_LEN + 1];
    struct sim_push_token *all;
    size_t skipped = 0;
    FILE *f;

    if (n > fleet->count) {
        snprintf(err, errlen, "tokens for %zu devices of %zu", n, fleet->count);
        return false;
    }
    if (!tu_path_join(path, sizeof(path), dir, SIM_STORE_TOKENS_FILE)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return false;
    }
    all = calloc(fleet->count > 0 ? fleet->count : 1, sizeof(*all));
    if (all == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    if (!sim_store_tokens_load(dir, fleet, all, fleet->count, &skipped, NULL, err, errlen)) {
        free(all);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!updates[i].present)
            continue;
        if (!store_magic_ok(updates[i].push_magic, strlen(updates[i].push_magic))) {
            snprintf(err, errlen, "device %zu: PushMagic cannot be stored", i);
            free(all);
            return false;
        }
        all[i] = updates[i];
    }
    f = tu_file_create_tmp(path, 0600, tmp, sizeof(tmp), err, errlen);
    if (f == NULL) {
        free(all);
        return false;
    }
    if (fprintf(f,
                "%s# index<TAB>UDID<TAB>Token (hex)<TAB>PushMagic, as sent in the device's last"
                " accepted TokenUpdate\n",
                STORE_TOKENS_MAGIC) < 0)
        goto write_error;
    for (size_t i = 0; i < fleet->count; i++) {
        if (!all[i].present)
            continue;
        sim_store_token_hex(all[i].token, hex);
        if (fprintf(f, "%zu\t%s\t%s\t%s\n", i, fleet->devices[i].udid, hex, all[i].push_magic) < 0)
            goto write_error;
    }
    free(all);
    return tu_file_commit_tmp(f, tmp, path, err, errlen);

write_error:
    snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
    free(all);
    fclose(f);
    unlink(tmp);
    return false;
}
