/*
 * apns_cert_store: writes a checked push certificate and its key where vouchd reads them
 * (apns_cert, apns_key), each file replaced atomically (atomic_file.h). Shared by vouchd's PUT
 * /v1/pushcert and `vouchctl pushcert install`; the caller owns the struct apns_cert.
 *
 * Blocking file I/O: a few kilobytes and a few fsync() calls.
 */
#ifndef VOUCH_APNS_CERT_STORE_H
#define VOUCH_APNS_CERT_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "apns_cert.h"

/* With key_path, the certificate (mode 0644) and the key (0600) each in its own file; with
 * key_path NULL, both in cert_path (0600), which vouchd reads as PEM whatever it held before (a
 * PKCS#12 file's password is then unused). Both files are written and synced before either
 * replaces its target, so a full disk or a read-only folder changes nothing; then the key is
 * renamed first: only a crash (or a failed rename) between the two renames leaves a pair that
 * does not match, which vouchd refuses at start and names, never a certificate used with a key
 * that is not its own. False with the reason in err. */
bool apns_cert_store(const struct apns_cert *cert, const char *cert_path, const char *key_path,
                     char *err, size_t err_size) __attribute__((warn_unused_result));

#endif
