#include "apns_cert_store.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

/* With a key file: both files prepared (any failure leaves both untouched), then the key
 * renamed first. */
static bool store_pair(const struct apns_cert *cert, const char *cert_path, const char *key_path,
                       char *err, size_t err_size)
{
    struct atomic_file key_file, cert_file;
    if (!atomic_file_prepare(&key_file, key_path, cert->key_pem, cert->key_pem_len, 0600, err,
                             err_size))
        return false;
    if (!atomic_file_prepare(&cert_file, cert_path, cert->cert_pem, cert->cert_pem_len, 0644, err,
                             err_size)) {
        atomic_file_abort(&key_file);
        return false;
    }
    if (!atomic_file_commit(&key_file, err, err_size)) {
        atomic_file_abort(&cert_file);
        return false;
    }
    return atomic_file_commit(&cert_file, err, err_size);
}

bool apns_cert_store(const struct apns_cert *cert, const char *cert_path, const char *key_path,
                     char *err, size_t err_size)
{
    if (key_path != NULL)
        return store_pair(cert, cert_path, key_path, err, err_size);
    size_t len = cert->cert_pem_len + cert->key_pem_len;
    char *both = malloc(len);
    if (both == NULL) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    memcpy(both, cert->cert_pem, cert->cert_pem_len);
    memcpy(both + cert->cert_pem_len, cert->key_pem, cert->key_pem_len);
    struct atomic_file file;
    bool ok = atomic_file_prepare(&file, cert_path, both, len, 0600, err, err_size) &&
              atomic_file_commit(&file, err, err_size);
    OPENSSL_cleanse(both, len);
    free(both);
    return ok;
}
