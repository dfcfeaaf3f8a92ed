/* libFuzzer target: Mdm-Signature and proxy certificate headers through identity.c.
 * The trust store is the Apple attestation root vouchd builds in (VOUCH_FUZZ_CA, or the path from
 * the repository root): any PEM CA will do, the target exercises decoding and CMS parsing, which
 * run before any chain is trusted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct identity_verifier *verifier;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = getenv("VOUCH_FUZZ_CA");
    if (path == NULL)
        path = "server/attestation/certs/apple-enterprise-attestation-root-ca.pem";
    FILE *f = fopen(path, "rb");
    char pem[8192];
    size_t len = f ? fread(pem, 1, sizeof(pem), f) : 0;
    if (f)
        fclose(f);
    char err[256];
    verifier = identity_verifier_new(pem, len, err, sizeof(err));
    if (verifier == NULL) {
        fprintf(stderr, "fuzz_identity: %s: %s (set VOUCH_FUZZ_CA)\n", path, err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char body[] = "<plist></plist>";
    struct device_identity id;
    /* The first byte picks the header kind; the rest is the header value. */
    if (size < 1)
        return 0;
    const char *value = (const char *)data + 1;
    if (data[0] & 1)
        (void)identity_from_cert_header(verifier, value, size - 1, &id);
    else
        (void)identity_from_signature(verifier, value, size - 1, body, sizeof(body) - 1, &id);
    return 0;
}
