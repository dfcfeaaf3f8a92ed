/* libFuzzer target: the attObj of ACME device-attest-01 answers through device_attest.c (strict
 * base64url, the bounded CBOR pre-scan, libcbor, the x5c items) and on through attest.c's chain
 * verification and Apple extension reader, then freshness, identity and the attested key.
 *
 * Input: when the first byte is 0x00, the rest is raw CBOR, base64url-encoded here, so that the
 * fuzzer mutates the CBOR and the certificates in it directly; otherwise the whole input is the
 * attObj text as the JSON member carries it (where base64url itself is fuzzed). Seeds of both
 * kinds are in corpus/attobj.
 *
 * Trust: Apple's root and the stand-in root below, fixed (not created in LLVMFuzzerInitialize) so
 * that the seeds, issued from it with
 *   fake-apple leaf --dir D --udid ... --serial ... --not-before 1768435140 \
 *       --freshness-of-token FUZZ_TOKEN --attobj-out SEED
 * verify and the fuzzer starts past path validation; its keys were thrown away. Verification is
 * at FUZZ_TIME with FUZZ_TOKEN, on one verifier whose cache of intermediates fills as it goes.
 *
 * Checks beyond memory safety: the result is coherent (true exactly when the reason is OK, with a
 * name for every other reason; a key only when verified, then an EC key that d2i_PUBKEY reads
 * back; a serial, a UDID and a 32-byte freshness code when verified; the chain owned by the
 * result within ATTEST_MAX_CERTS), and OpenSSL's error queue is left empty.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "attest.h"
#include "device_attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_TIME ((time_t)1768435200) /* 2026-01-15T00:00:00Z */
#define FUZZ_TOKEN "Jm1bTwgIzYxZs0y3yG8cXQ4lRPk0x8nQ5EoIvA2uVdE"
#define FUZZ_MAX_RAW (DEVICE_ATTEST_MAX_ATTOBJ / 4 * 3 + 3) /* raw bytes: one past the bound */

/* `fake-apple init` output; the seeds' chains end here. */
static const char stand_in_root_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICNTCCAbugAwIBAgIUeROjiemnVfPIehXNL60pYmcSVCgwCgYIKoZIzj0EAwMw\n"
    "WjE2MDQGA1UEAwwtU3RhbmQtaW4gQXBwbGUgRW50ZXJwcmlzZSBBdHRlc3RhdGlv\n"
    "biBSb290IENBMRMwEQYDVQQKDApBcHBsZSBJbmMuMQswCQYDVQQGEwJVUzAeFw0y\n"
    "MDAxMDEwMDAwMDBaFw00OTEyMzEyMzU5NTlaMFoxNjA0BgNVBAMMLVN0YW5kLWlu\n"
    "IEFwcGxlIEVudGVycHJpc2UgQXR0ZXN0YXRpb24gUm9vdCBDQTETMBEGA1UECgwK\n"
    "QXBwbGUgSW5jLjELMAkGA1UEBhMCVVMwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAASZ\n"
    "3igvq/oon+c+ohvglmdZ52NezLvSw5nw6H4WV9H9vw0TbFeJOuQ8cr++XpPPLVkO\n"
    "dkEu/VZzr4gWt7N0ZOp0XPmIsTp7TUkFgSefPHqSFlCcUmWgogBuU3yz4mRBDPKj\n"
    "QjBAMA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0OBBYEFKAH8FmnyKsUYoJAetUlQdLF\n"
    "Hd7mMA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAwNoADBlAjEAkTTX1+H1GbhC\n"
    "qdl6uSak6BcfghZpFCXGamgzYmaHw6+NmDgoueOKa5W/j59EysXBAjACaVqd501/\n"
    "wDxIddTOdpDt5wyXJb3EBGgWNBlXl75AwPoDyVTC/cFIIeFaTbC/ZtY=\n"
    "-----END CERTIFICATE-----\n";

static struct attest_verifier *verifier;
static char text[DEVICE_ATTEST_MAX_ATTOBJ + 8];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    size_t a = strlen(stand_in_root_pem), b = strlen(attest_apple_root_pem);
    char *roots = malloc(a + b + 1);
    if (roots == NULL)
        abort();
    memcpy(roots, stand_in_root_pem, a);
    memcpy(roots + a, attest_apple_root_pem, b + 1);
    char err[256];
    verifier = attest_verifier_new(roots, a + b, err, sizeof(err));
    free(roots);
    if (verifier == NULL) {
        fprintf(stderr, "fuzz_attobj: %s\n", err);
        abort();
    }
    return 0;
}

/* Unpadded base64url of data[0..len) into text; its length. */
static size_t b64url(const uint8_t *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8 | data[i]) & 0xffff;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            text[n++] = alphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0)
        text[n++] = alphabet[(acc << (6 - bits)) & 0x3f];
    return n;
}

static void check(const struct device_attest_result *r, bool ok)
{
    if (ok != (r->reason == DEVICE_ATTEST_OK) ||
        (device_attest_reason_name(r->reason) == NULL) != ok || ERR_peek_error() != 0 ||
        r->chain_count > ATTEST_MAX_CERTS || r->spki_len > DEVICE_ATTEST_MAX_SPKI)
        abort();
    for (size_t i = 0; i < r->chain_count; i++) {
        if (r->chain[i] == NULL || r->chain_len[i] == 0 || r->chain_len[i] > ATTEST_MAX_CERT_BYTES)
            abort();
    }
    if (!ok) {
        if (r->spki_len != 0)
            abort();
        return;
    }
    const struct attest_properties *p = &r->properties;
    if (!r->leaf_parsed || r->chain_count == 0 || !p->has_serial_number || !p->has_udid ||
        !p->has_freshness || p->freshness_len != 32)
        abort();
    const unsigned char *q = r->spki;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &q, (long)r->spki_len);
    if (key == NULL || q != r->spki + r->spki_len || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
        abort();
    EVP_PKEY_free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *att_obj = (const char *)data;
    size_t len = size;
    if (size > 0 && data[0] == 0x00) {
        if (size - 1 > FUZZ_MAX_RAW)
            return 0;
        len = b64url(data + 1, size - 1);
        att_obj = text;
    }
    struct device_attest_result r;
    bool ok = device_attest_verify(verifier, att_obj, len, FUZZ_TOKEN, FUZZ_TIME, &r);
    check(&r, ok);
    device_attest_clear(&r);
    return 0;
}
