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
 * DIR/tokens.tsv           each enrolled device's push token and PushMagic, as sent in its last
 *                          accepted TokenUpdate, so that a later process (vouch-sim serve) maps
 *                          a pushed token back to its device:
 *
 *     # vouch-sim push tokens v1
 *     index<TAB>UDID<TAB>token (64 lowercase hex digits)<TAB>PushMagic
 *
 *                          (one line per device that has a token, in index order; readers
 *                          ignore '#' lines and fields after the fourth). Kept apart from
 *                          devices.pem so that a re-enrollment, which changes every token,
 *                          does not rewrite the identities; fleets made before it existed just
 *                          have no tokens until their next enroll.
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
 * (write a temporary file, fsync, rename) while holding DIR/.lock; an attestation cache, written
 * once per fresh attestation by the worker that holds the device, is renamed without the fsync.
 */
#ifndef VOUCH_SIM_STORE_H
#define VOUCH_SIM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

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

/* Rewrites DIR/devices.pem with the identities pems[i] (pem_lens[i] long; NULL: unchanged) of
 * fleet's devices i < n, e.g. those vouchd's ACME server issued; the records of the file as it
 * is now are kept otherwise (a record whose UDID is not fleet's at that index is left alone).
 * *replaced counts the identities written. The caller holds DIR/.lock. */
bool sim_store_identities_update(const char *dir, const struct sim_fleet *fleet, char *const *pems,
                                 const size_t *pem_lens, size_t n, size_t *replaced, char *err,
                                 size_t errlen) __attribute__((warn_unused_result));

/* Reads the attestation cache of the device udid; a missing file gives cache->present false.
 * A file that does not parse is an error (remove it to start over). */
bool sim_store_attest_load(const char *dir, const char *udid, struct sim_attest_cache *cache,
                           char *err, size_t errlen) __attribute__((warn_unused_result));
/* Replaces it atomically (creating DIR/attestations when needed). */
bool sim_store_attest_save(const char *dir, const char *udid, const struct sim_attest_cache *cache,
                           char *err, size_t errlen) __attribute__((warn_unused_result));

/* ---- push tokens (DIR/tokens.tsv) ---- */

#define SIM_STORE_TOKENS_FILE "tokens.tsv"

/* Identifies one version of a file (writers replace it, so the inode changes with every write). */
struct sim_store_stamp {
    bool exists;
    unsigned long long dev;
    unsigned long long ino;
    long long size;
    long long mtime_ns;
};

/* Reads DIR/tokens.tsv into tokens[0..n), tokens[i] being device i of fleet (n <= fleet->count);
 * entries without a record are left with present false. Records for devices at or past n are
 * ignored; records whose UDID is not the fleet's at that index (or whose index is past the
 * fleet) are skipped and counted in *skipped. A missing file gives no tokens. stamp (may be
 * NULL) receives the version read, for sim_store_tokens_changed(). */
bool sim_store_tokens_load(const char *dir, const struct sim_fleet *fleet,
                           struct sim_push_token *tokens, size_t n, size_t *skipped,
                           struct sim_store_stamp *stamp, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Merges updates[0..n) (the entries marked present; n <= fleet->count) over the records in
 * DIR/tokens.tsv and replaces the file atomically. The caller holds DIR/.lock. */
bool sim_store_tokens_update(const char *dir, const struct sim_fleet *fleet,
                             const struct sim_push_token *updates, size_t n, char *err,
                             size_t errlen) __attribute__((warn_unused_result));

/* Whether DIR/tokens.tsv is another version than stamp says. */
bool sim_store_tokens_changed(const char *dir, const struct sim_store_stamp *stamp);

/* Lowercase hex of a token into out (at least 2 * SIM_TOKEN_LEN + 1 bytes). */
void sim_store_token_hex(const unsigned char token[SIM_TOKEN_LEN], char *out);

/* Parses 64 hex digits (either case) of len characters; false for anything else. */
bool sim_store_token_parse(const char *hex, size_t len, unsigned char token[SIM_TOKEN_LEN]);

#endif
