/*
 * sim_store: the state directory of vouch-sim, so that later runs reuse the same fleet.
 *
 * DIR/ca.pem, DIR/ca.key   the device-identity CA (vouchd's identity_ca is DIR/ca.pem)
 * DIR/apple-root.pem, apple-root.key, apple-sub.pem, apple-sub.key
 *                          the stand-in Apple attestation hierarchy, written by fake_apple.h
 *                          (vouchd's attestation_roots is DIR/apple-root.pem)
 * DIR/attestations/UDID.pem
 *                          a device's attestation cache (sim_attest.h): "# generated_at=UNIXTIME"
 *                          and "# nonce=HEX" lines, then the leaf and sub CA PEM it answered
 * DIR/devices.pem          every device, one record each, in index order:
 *
 *     # vouch-sim device fleet v1
 *     # prefix=sim
 *     device<TAB>index<TAB>UDID<TAB>serial<TAB>ProductName<TAB>Model<TAB>ModelName<TAB>
 *         OSVersion<TAB>BuildVersion<TAB>IMEI or -<TAB>DeviceName      (one line)
 *     -----BEGIN CERTIFICATE----- ... the identity certificate
 *     -----BEGIN PRIVATE KEY----- ... its unencrypted PKCS#8 key
 *
 * The file is read in one go and records point into that buffer, so 100,000 devices load in a
 * fraction of a second; keys are only parsed when a worker uses the device. Because the PEM blocks
 * are ordinary PEM, `openssl x509 -in DIR/devices.pem` shows the first certificate and
 * `grep ^device DIR/devices.pem | cut -f3` lists the UDIDs. Writers replace files atomically
 * (write a temporary file, fsync, rename) while holding DIR/.lock.
 */
#ifndef VOUCH_SIM_STORE_H
#define VOUCH_SIM_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "sim_attest.h"
#include "sim_device.h"
#include "sim_pki.h"

struct sim_fleet {
    char prefix[SIM_PREFIX_MAX]; /* empty while the fleet has no device */
    struct sim_device *devices;  /* count records, devices[i].index == i */
    size_t count;
    char *file; /* the whole devices.pem; the devices' identity_pem point into it */
    size_t file_len;
};

/* Creates DIR (mode 0700) if it does not exist yet. */
bool sim_store_prepare_dir(const char *dir, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Takes the exclusive lock DIR/.lock (blocking) so that two enroll runs do not both add devices.
 * Returns the lock's file descriptor, -1 on failure; sim_store_unlock() releases it. */
int sim_store_lock(const char *dir, char *err, size_t errlen) __attribute__((warn_unused_result));
void sim_store_unlock(int fd);

/* Creates DIR/ca.pem and DIR/ca.key unless both exist; *created says whether it did. */
bool sim_store_ca_init(const char *dir, enum sim_key_type key_type, bool *created, char *err,
                       size_t errlen) __attribute__((warn_unused_result));

/* Loads DIR's CA; NULL on failure (*absent tells a missing CA apart from a broken one). */
struct sim_ca *sim_store_ca_load(const char *dir, bool *absent, char *err, size_t errlen);

/* Loads DIR/devices.pem into fleet; a missing file gives an empty fleet. */
bool sim_store_fleet_load(const char *dir, struct sim_fleet *fleet, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void sim_store_fleet_free(struct sim_fleet *fleet);

/* Rewrites DIR/devices.pem as fleet's records followed by n new devices (their indexes must
 * continue fleet->count) with identities pems[i] of lengths pem_lens[i]. prefix names the fleet
 * when it was empty. fleet itself is left unchanged: load it again to see the new devices. */
bool sim_store_fleet_append(const char *dir, const struct sim_fleet *fleet, const char *prefix,
                            const struct sim_device *devices, char *const *pems,
                            const size_t *pem_lens, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Reads the attestation cache of the device udid; a missing file gives cache->present false.
 * A file that does not parse is an error (remove it to start over). */
bool sim_store_attest_load(const char *dir, const char *udid, struct sim_attest_cache *cache,
                           char *err, size_t errlen) __attribute__((warn_unused_result));
/* Replaces it atomically (creating DIR/attestations when needed). */
bool sim_store_attest_save(const char *dir, const char *udid, const struct sim_attest_cache *cache,
                           char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
