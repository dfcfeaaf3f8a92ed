#include "apns_cert_store.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

bool apns_cert_store(const struct apns_cert *cert, const char *cert_path, const char *key_path,
                     char *err, size_t err_size)
{
    if (key_path != NULL)
        return atomic_file_write(key_path, cert->key_pem, cert->key_pem_len, 0600, err, err_size) &&
               atomic_file_write(cert_path, cert->cert_pem, cert->cert_pem_len, 0644, err,
                                 err_size);
    size_t len = cert->cert_pem_len + cert->key_pem_len;
    char *both = malloc(len);
    if (both == NULL) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    memcpy(both, cert->cert_pem, cert->cert_pem_len);
    memcpy(both + cert->cert_pem_len, cert->key_pem, cert->key_pem_len);
    bool ok = atomic_file_write(cert_path, both, len, 0600, err, err_size);
    OPENSSL_cleanse(both, len);
    free(both);
    return ok;
}
