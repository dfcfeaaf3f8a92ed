/*
 * bench_acme: ACME issuances per second on one core, as far as vouchd's own CPU goes: the
 * cryptography and parsing of one device's enrollment (six ES256 JWS checks: newAccount,
 * newOrder, authz, challenge, finalize, download; the device-attest-01 attObj: CBOR, chain,
 * freshness; the CSR; the certificate issued), beside the physical limit measured in the same
 * run: OpenSSL's own ECDSA P-384 work that an issuance cannot avoid (the attestation leaf's
 * signature and the CSR's verified, the certificate signed; EVP_DigestVerify / EVP_DigestSign).
 * The database and HTTP are not in it (bench_roundtrip.py measures those for check-ins).
 *
 * Prints a table and one JSON line. Usage: bench_acme [--seconds S] [--devices N]
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cbor.h>

#include "b64url.h"
#include "acme_ca.h"
#include "attest.h"
#include "bench_clock.h"
#include "device_attest.h"
#include "fake_apple.h"
#include "jws.h"

#define SIGNED_REQUESTS 6 /* per enrollment, each one JWS checked with the account's key */

struct device {
    EVP_PKEY *account_key, *device_key;
    char token[64];
    char *att_obj;
    uint8_t *csr;
    size_t csr_len;
    char *jws[SIGNED_REQUESTS];
    size_t jws_len[SIGNED_REQUESTS];
    X509 *leaf;
};

static void die(const char *what)
{
    fprintf(stderr, "bench_acme: %s\n", what);
    exit(1);
}

static char *b64url(const uint8_t *data, size_t len)
{
    char *out = malloc(b64url_encoded_len(len) + 1);
    if (out == NULL)
        die("out of memory");
    b64url_encode(data, len, out);
    return out;
}

/* A flattened ES256 JWS of payload by key, the way a device's ACME client makes it. */
static char *sign_jws(EVP_PKEY *key, const char *protected_json, const char *payload, size_t *len)
{
    char *p64 = b64url((const uint8_t *)protected_json, strlen(protected_json));
    char *b64 = b64url((const uint8_t *)payload, strlen(payload));
    size_t input_len = strlen(p64) + 1 + strlen(b64);
    char *input = malloc(input_len + 1);
    if (input == NULL)
        die("out of memory");
    snprintf(input, input_len + 1, "%s.%s", p64, b64);
    unsigned char der[128];
    size_t der_len = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)input, input_len) != 1)
        die("cannot sign a JWS");
    EVP_MD_CTX_free(ctx);
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    uint8_t raw[64];
    if (sig == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) != 32)
        die("cannot convert a signature");
    ECDSA_SIG_free(sig);
    char *s64 = b64url(raw, sizeof(raw));
    size_t cap = strlen(p64) + strlen(b64) + strlen(s64) + 64;
    char *out = malloc(cap);
    if (out == NULL)
        die("out of memory");
    *len = (size_t)snprintf(
        out, cap, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", p64, b64, s64);
    free(p64);
    free(b64);
    free(s64);
    free(input);
    return out;
}

/* base64url of CBOR {"fmt": "apple", "attStmt": {"x5c": [leaf, sub]}}. */
static char *make_att_obj(const struct fake_chain *chain)
{
    cbor_item_t *x5c = cbor_new_definite_array(chain->count);
    for (size_t i = 0; i < chain->count; i++)
        if (!cbor_array_push(x5c, cbor_move(cbor_build_bytestring(chain->der[i], chain->len[i]))))
            die("cbor");
    cbor_item_t *stmt = cbor_new_definite_map(1);
    cbor_item_t *root = cbor_new_definite_map(2);
    if (!cbor_map_add(stmt,
                      (struct cbor_pair){cbor_move(cbor_build_string("x5c")), cbor_move(x5c)}) ||
        !cbor_map_add(root, (struct cbor_pair){cbor_move(cbor_build_string("fmt")),
                                               cbor_move(cbor_build_string("apple"))}) ||
        !cbor_map_add(root,
                      (struct cbor_pair){cbor_move(cbor_build_string("attStmt")), cbor_move(stmt)}))
        die("cbor");
    unsigned char *buf = NULL;
    size_t size = 0, len = cbor_serialize_alloc(root, &buf, &size);
    cbor_decref(&root);
    if (len == 0)
        die("cbor");
    char *text = b64url(buf, len);
    free(buf);
    return text;
}

static uint8_t *make_csr(EVP_PKEY *key, size_t *len)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    if (req == NULL || name == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"device", -1,
                                   -1, 0) != 1 ||
        X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
        X509_REQ_sign(req, key, EVP_sha256()) <= 0)
        die("cannot make a CSR");
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    if (n <= 0)
        die("cannot encode a CSR");
    X509_NAME_free(name);
    X509_REQ_free(req);
    *len = (size_t)n;
    return der;
}

/* The unavoidable P-384 work of one issuance, with OpenSSL alone. */
static int reference_issuance(struct device *d, EVP_PKEY *sub_key, EVP_PKEY *ca_key)
{
    int failures = 0;
    if (X509_verify(d->leaf, sub_key) != 1) /* the attestation leaf */
        failures++;
    const unsigned char *p = d->csr;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)d->csr_len);
    if (req == NULL || X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) != 1) /* the CSR */
        failures++;
    X509_REQ_free(req);
    unsigned char tbs[512], sig[128];
    memset(tbs, 0x5a, sizeof(tbs));
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new(); /* the certificate: one signature of its size */
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, ca_key) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, tbs, sizeof(tbs)) != 1)
        failures++;
    EVP_MD_CTX_free(ctx);
    return failures;
}

/* What vouchd's CPU does for one issuance. */
static int vouchd_issuance(struct device *d, struct attest_verifier *verifier,
                           const struct acme_ca *ca, time_t now)
{
    int failures = 0;
    for (int i = 0; i < SIGNED_REQUESTS; i++) {
        struct jws jws;
        if (jws_parse(d->jws[i], d->jws_len[i], &jws, NULL, 0) != JWS_OK ||
            jws_verify(&jws, d->account_key) != JWS_OK)
            failures++;
        jws_clear(&jws);
    }
    struct device_attest_result result;
    if (!device_attest_verify(verifier, d->att_obj, strlen(d->att_obj), d->token, now, &result))
        failures++;
    if (acme_csr_check(d->csr, d->csr_len, result.spki, result.spki_len) != ACME_CSR_OK)
        failures++;
    const struct acme_issue_request req = {
        .spki = result.spki,
        .spki_len = result.spki_len,
        .udid = result.properties.udid,
        .serial_number = result.properties.serial_number,
        .organization = "Bench",
        .not_before = now,
        .lifetime_s = 365 * 86400,
    };
    struct acme_issued issued;
    char err[256];
    if (!acme_ca_issue(ca, &req, &issued, err, sizeof(err)))
        failures++;
    else
        free(issued.der);
    device_attest_clear(&result);
    return failures;
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    int count = 32;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--devices") == 0 && i + 1 < argc)
            count = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_acme [--seconds S] [--devices N]\n");
            return 2;
        }
    }
    if (seconds <= 0 || count < 1 || count > 1024) {
        fprintf(stderr, "bench_acme: bad arguments\n");
        return 2;
    }
    char err[256], dir[] = "/tmp/bench-acme-XXXXXX", cert_path[64], key_path[64];
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    snprintf(cert_path, sizeof(cert_path), "%s/ca.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/ca.key", dir);
    struct acme_ca *ca = NULL;
    if (!acme_ca_create(cert_path, key_path, "Bench CA", 30, err, sizeof(err)) ||
        (ca = acme_ca_load(cert_path, key_path, err, sizeof(err))) == NULL)
        die(err);
    EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    struct fake_apple *pki = fake_apple_new(err, sizeof(err));
    char *root_pem = pki ? fake_apple_root_pem(pki) : NULL;
    struct attest_verifier *verifier =
        root_pem ? attest_verifier_new(root_pem, strlen(root_pem), err, sizeof(err)) : NULL;
    if (verifier == NULL || ca_key == NULL)
        die(err);

    time_t now = time(NULL);
    X509 *sub = NULL;
    struct device *devices = calloc((size_t)count, sizeof(*devices));
    if (devices == NULL)
        die("out of memory");
    for (int i = 0; i < count; i++) {
        struct device *d = &devices[i];
        d->account_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        d->device_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        if (d->account_key == NULL || d->device_key == NULL)
            die("keygen");
        snprintf(d->token, sizeof(d->token), "bench-token-%08d-abcdefghijklmnopqrstuvwxyz", i);
        unsigned char freshness[32];
        EVP_Digest(d->token, strlen(d->token), freshness, NULL, EVP_sha256(), NULL);
        char udid[64], serial[32];
        snprintf(udid, sizeof(udid), "00008110-%016X", i);
        snprintf(serial, sizeof(serial), "BENCH%05d", i);
        const struct fake_apple_device dev = {.serial_number = serial,
                                              .udid = udid,
                                              .os_version = "17.5",
                                              .nonce = freshness,
                                              .nonce_len = 32};
        struct fake_leaf_spec spec;
        struct fake_chain chain = {0};
        if (!fake_leaf_spec_device(&spec, &dev, now - 60))
            die("leaf spec");
        spec.key = d->device_key;
        if (!fake_apple_leaf(pki, &spec, &chain, err, sizeof(err)))
            die(err);
        d->att_obj = make_att_obj(&chain);
        const unsigned char *p = chain.der[0];
        d->leaf = d2i_X509(NULL, &p, (long)chain.len[0]);
        if (sub == NULL) {
            p = chain.der[1];
            sub = d2i_X509(NULL, &p, (long)chain.len[1]);
        }
        fake_chain_free(&chain);
        d->csr = make_csr(d->device_key, &d->csr_len);
        /* newAccount carries the jwk; the rest name the account (kid). */
        char jwk[JWS_MAX_JWK + 1], protected_json[JWS_MAX_JWK + 256];
        uint8_t pub[65];
        size_t pub_len = sizeof(pub);
        if (EVP_PKEY_get_octet_string_param(d->account_key, "pub", pub, sizeof(pub), &pub_len) !=
                1 ||
            pub_len != 65)
            die("account key");
        char *x = b64url(pub + 1, 32), *y = b64url(pub + 33, 32);
        snprintf(jwk, sizeof(jwk), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                 x, y);
        free(x);
        free(y);
        for (int r = 0; r < SIGNED_REQUESTS; r++) {
            /* A nonce as vouchd makes them: 16 bytes as base64url. */
            uint8_t nonce_bytes[16] = {(uint8_t)i, (uint8_t)(i >> 8), (uint8_t)r};
            char *nonce = b64url(nonce_bytes, sizeof(nonce_bytes));
            if (r == 0)
                snprintf(protected_json, sizeof(protected_json),
                         "{\"alg\":\"ES256\",\"jwk\":%s,\"nonce\":\"%s\",\"url\":"
                         "\"https://mdm.example.com/acme/new-account\"}",
                         jwk, nonce);
            else
                snprintf(protected_json, sizeof(protected_json),
                         "{\"alg\":\"ES256\",\"kid\":\"https://mdm.example.com/acme/account/A%d\","
                         "\"nonce\":\"%s\",\"url\":\"https://mdm.example.com/acme/order/O%d\"}",
                         i, nonce, i);
            free(nonce);
            /* newAccount, then the challenge's attObj and finalize's CSR; POST-as-GET else. */
            size_t payload_cap = strlen(d->att_obj) + 2 * d->csr_len + 64;
            char *payload = malloc(payload_cap), *csr64 = b64url(d->csr, d->csr_len);
            if (payload == NULL)
                die("out of memory");
            snprintf(payload, payload_cap, "%s%s%s",
                     r == 0   ? "{\"termsOfServiceAgreed\":true}"
                     : r == 3 ? "{\"attObj\":\""
                     : r == 4 ? "{\"csr\":\""
                              : "",
                     r == 3   ? d->att_obj
                     : r == 4 ? csr64
                              : "",
                     r == 3 || r == 4 ? "\"}" : "");
            d->jws[r] = sign_jws(d->account_key, protected_json, payload, &d->jws_len[r]);
            free(payload);
            free(csr64);
        }
    }
    EVP_PKEY *sub_key = X509_get0_pubkey(sub);

    /* Reference and subject alternate in short rounds, so drift on a shared machine hits both. */
    unsigned long ref_ops = 0, acme_ops = 0, failures = 0;
    double ref_time = 0, acme_time = 0, acme_cpu = 0, round = seconds / 10;
    unsigned i_ref = 0, i_acme = 0;
    while (ref_time + acme_time < 2 * seconds) {
        double start = now_s(), end = start + round;
        do {
            for (int k = 0; k < 4; k++, i_ref++, ref_ops++)
                failures += (unsigned long)reference_issuance(&devices[i_ref % (unsigned)count],
                                                              sub_key, ca_key);
        } while (now_s() < end);
        ref_time += now_s() - start;
        start = now_s();
        double cpu_start = cpu_s();
        end = start + round;
        do {
            for (int k = 0; k < 4; k++, i_acme++, acme_ops++)
                failures += (unsigned long)vouchd_issuance(&devices[i_acme % (unsigned)count],
                                                           verifier, ca, now);
        } while (now_s() < end);
        acme_time += now_s() - start;
        acme_cpu += cpu_s() - cpu_start;
    }
    double ref_rate = (double)ref_ops / ref_time, acme_rate = (double)acme_ops / acme_time;
    double ratio = acme_rate / ref_rate;
    printf("%-44s %12s %12s %7s %7s\n", "figure", "value", "reference", "ratio", "target");
    printf("%-44s %10.0f/s %10.0f/s %7.2f %7s\n", "ACME issuances, vouchd's CPU (1 core)",
           acme_rate, ref_rate, ratio, ">=0.50");
    printf("vouchd: %d ES256 JWS checks, attObj (CBOR, chain, freshness), CSR, certificate "
           "signed; reference: OpenSSL P-384 verify x2 + sign x1; %d devices; %.0f us per "
           "issuance; cpu/wall %.2f; failures %lu\n",
           SIGNED_REQUESTS, count, 1e6 / acme_rate, acme_cpu / acme_time, failures);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    printf("{\"bench\":\"acme_issue\",\"figure\":\"ACME issuances, vouchd's CPU (1 core)\","
           "\"value\":%.1f,\"unit\":\"/s\",\"reference\":%.1f,\"ratio\":%.3f,"
           "\"target\":\">=0.50\",\"failures\":%lu,\"peak_rss_mb\":%.1f}\n",
           acme_rate, ref_rate, ratio, failures, (double)usage.ru_maxrss / 1024.0);

    for (int i = 0; i < count; i++) {
        struct device *d = &devices[i];
        EVP_PKEY_free(d->account_key);
        EVP_PKEY_free(d->device_key);
        free(d->att_obj);
        OPENSSL_free(d->csr);
        for (int r = 0; r < SIGNED_REQUESTS; r++)
            free(d->jws[r]);
        X509_free(d->leaf);
    }
    free(devices);
    X509_free(sub);
    EVP_PKEY_free(ca_key);
    free(root_pem);
    attest_verifier_free(verifier);
    fake_apple_free(pki);
    acme_ca_free(ca);
    return failures == 0 ? 0 : 1;
}
