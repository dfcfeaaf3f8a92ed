/* libFuzzer target: the P-384 signature check by precomputed tables (attest.c's
 * attest_p384_verify, which verifies an attestation leaf under a cached Apple Sub CA) held to
 * OpenSSL's own EVP_PKEY_verify for one fixed key. Any input on which the two answers differ
 * aborts: the tables must accept exactly what OpenSSL accepts.
 *
 * Input: a mode byte, a 48-byte digest (shorter inputs are ignored), then
 *   mode bit 0 clear: the rest is the signature, DER as received, checked as is;
 *   mode bit 0 set:   48 bytes of k, then edits. The digest is signed with the fixed key and
 *                     that k (r = x(kG) mod n, s = k^-1 (e + r d) mod n: deterministic, so a
 *                     failing input reproduces; OpenSSL 3.0 has no deterministic ECDSA), then
 *     bit 1: s is replaced by n - s (still valid),
 *     bit 2: r is replaced by r + n (out of range, never valid),
 *     and the edits, pairs of bytes (position, xor), change the DER; an edit whose position is
 *     0xff truncates the signature to the next byte's length instead.
 *   An unedited signature of mode 1 or 3 must also be valid for both: otherwise the signing
 *   here is wrong and the comparison proves nothing. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "attest_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define DIGEST_LEN 48
#define SIG_MAX 256

static struct attest_verifier *verifier;
static EVP_PKEY *key;
static EC_GROUP *key_table;
static EC_GROUP *curve;
static BIGNUM *d; /* the fixed private key */
static BN_CTX *bn;

static void need(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_p384: %s\n", what);
        ERR_print_errors_fp(stderr);
        abort();
    }
}

/* The fixed key: d = 0x0102...30 (any scalar below n will do), Q = dG. */
static EVP_PKEY *fixed_key(void)
{
    uint8_t scalar[DIGEST_LEN], point[1 + 2 * DIGEST_LEN];
    for (unsigned i = 0; i < sizeof(scalar); i++)
        scalar[i] = (uint8_t)(i + 1);
    d = BN_bin2bn(scalar, sizeof(scalar), NULL);
    EC_POINT *q = EC_POINT_new(curve);
    need(d != NULL && q != NULL && EC_POINT_mul(curve, q, d, NULL, NULL, bn) == 1 &&
             EC_POINT_point2oct(curve, q, POINT_CONVERSION_UNCOMPRESSED, point, sizeof(point),
                                bn) == sizeof(point),
         "the fixed public key");
    EC_POINT_free(q);

    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    need(b != NULL && ctx != NULL &&
             OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0) == 1 &&
             OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) ==
                 1 &&
             (params = OSSL_PARAM_BLD_to_param(b)) != NULL && EVP_PKEY_fromdata_init(ctx) == 1 &&
             EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1,
         "the fixed EVP_PKEY");
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    bn = BN_CTX_new();
    curve = EC_GROUP_new_by_curve_name(NID_secp384r1);
    need(bn != NULL && curve != NULL, "the curve");
    verifier =
        attest_verifier_new(attest_apple_root_pem, strlen(attest_apple_root_pem), err, sizeof(err));
    need(verifier != NULL, err);
    key = fixed_key();
    key_table = attest_p384_key_table(verifier, key);
    need(key_table != NULL, "attest_p384_key_table");
    return 0;
}

static bool openssl_verify(const uint8_t *digest, const uint8_t *sig, size_t sig_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    need(ctx != NULL && EVP_PKEY_verify_init(ctx) == 1, "EVP_PKEY_verify_init");
    bool ok = EVP_PKEY_verify(ctx, sig, sig_len, digest, DIGEST_LEN) == 1;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* The DER of the signature of digest by d with the nonce k_bytes, as mode asks; 0 when k is 0
 * mod n or r or s comes out 0 (no signature with that k). */
static size_t sign(const uint8_t *digest, const uint8_t *k_bytes, unsigned mode, uint8_t *out)
{
    BN_CTX_start(bn);
    BIGNUM *k = BN_CTX_get(bn), *e = BN_CTX_get(bn), *kinv = BN_CTX_get(bn);
    BIGNUM *r = BN_new(), *s = BN_new();
    const BIGNUM *n = EC_GROUP_get0_order(curve);
    EC_POINT *kg = EC_POINT_new(curve);
    ECDSA_SIG *sig = NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    need(kinv != NULL && r != NULL && s != NULL && kg != NULL, "allocation");
    need(BN_bin2bn(k_bytes, DIGEST_LEN, k) != NULL && BN_nnmod(k, k, n, bn) == 1 &&
             BN_bin2bn(digest, DIGEST_LEN, e) != NULL,
         "k and e");
    if (BN_is_zero(k))
        goto out;
    need(EC_POINT_mul(curve, kg, k, NULL, NULL, bn) == 1 &&
             EC_POINT_get_affine_coordinates(curve, kg, r, NULL, bn) == 1 &&
             BN_nnmod(r, r, n, bn) == 1,
         "r");
    /* s = k^-1 (e + r d) mod n */
    need(BN_mod_inverse(kinv, k, n, bn) != NULL && BN_mod_mul(s, r, d, n, bn) == 1 &&
             BN_mod_add(s, s, e, n, bn) == 1 && BN_mod_mul(s, s, kinv, n, bn) == 1,
         "s");
    if (BN_is_zero(r) || BN_is_zero(s))
        goto out;
    if (mode & 2)
        need(BN_sub(s, n, s) == 1, "n - s");
    if (mode & 4)
        need(BN_add(r, r, n) == 1, "r + n");
    sig = ECDSA_SIG_new();
    need(sig != NULL && ECDSA_SIG_set0(sig, r, s) == 1, "ECDSA_SIG_set0");
    r = s = NULL; /* sig owns them */
    int der_len = i2d_ECDSA_SIG(sig, &der);
    need(der_len > 0 && der_len <= SIG_MAX, "i2d_ECDSA_SIG");
    memcpy(out, der, (size_t)der_len);
    len = (size_t)der_len;
out:
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    EC_POINT_free(kg);
    BN_free(r);
    BN_free(s);
    BN_CTX_end(bn);
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 + DIGEST_LEN)
        return 0;
    unsigned mode = data[0];
    const uint8_t *digest = data + 1;
    const uint8_t *rest = data + 1 + DIGEST_LEN;
    size_t rest_len = size - 1 - DIGEST_LEN;
    uint8_t sig[SIG_MAX];
    size_t sig_len;

    if (!(mode & 1)) {
        if (rest_len > SIG_MAX)
            return 0;
        memcpy(sig, rest, rest_len);
        sig_len = rest_len;
    } else {
        if (rest_len < DIGEST_LEN)
            return 0;
        sig_len = sign(digest, rest, mode, sig);
        if (sig_len == 0)
            return 0;
        const uint8_t *edits = rest + DIGEST_LEN;
        size_t edits_len = rest_len - DIGEST_LEN;
        if (edits_len < 2 && !(mode & 4) &&
            (!attest_p384_verify(verifier, key_table, digest, sig, sig_len) ||
             !openssl_verify(digest, sig, sig_len))) {
            fprintf(stderr, "fuzz_p384: an unedited signature is refused\n");
            abort();
        }
        for (size_t i = 0; i + 1 < edits_len; i += 2) {
            if (edits[i] == 0xff) {
                if (edits[i + 1] < sig_len)
                    sig_len = edits[i + 1];
            } else if (edits[i] < sig_len) {
                sig[edits[i]] ^= edits[i + 1];
            }
        }
    }

    bool tables = attest_p384_verify(verifier, key_table, digest, sig, sig_len);
    bool openssl = openssl_verify(digest, sig, sig_len);
    if (tables != openssl) {
        fprintf(stderr, "fuzz_p384: the tables say %d, OpenSSL says %d\n", tables, openssl);
        abort();
    }
    return 0;
}
