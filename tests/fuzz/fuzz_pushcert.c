/* libFuzzer target: the body of PUT /v1/pushcert (a PEM certificate and a PEM private key)
 * through apns_cert.c, as server/operator/pushcert.c reads it: parsed, matched, checked. */
#include <stdint.h>
#include <stdlib.h>

#include "apns_cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct apns_cert cert;
    char err[512];
    if (size > 64 * 1024) /* PUSHCERT_BODY_MAX: larger bodies are refused before parsing */
        return 0;
    if (apns_cert_from_pem(&cert, (const char *)data, size, NULL, 0, err, sizeof(err))) {
        char when[32];
        (void)apns_cert_check_installable(&cert, 1800000000, err, sizeof(err));
        apns_cert_not_after_text(&cert, when, sizeof(when));
        apns_cert_clear(&cert);
    }
    return 0;
}
