/*
 * bench_attest: attestation verifications per second on one core, beside the physical limit
 * measured in the same run: OpenSSL's own ECDSA P-384 verification of the same leaves' signatures
 * (X509_verify with the Sub CA's key). Once the Sub CA is known to chain to the root, a verdict
 * needs exactly that one signature check, plus parsing and the property and nonce checks.
 *
 * Prints a table and one JSON line. Usage: bench_attest [--seconds S] [--leaves N] [--nonces K]
 */
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "attest.h"
#include "bench_clock.h"
#include "fake_apple.h"

struct sample {
    struct fake_chain chain;
    unsigned char nonce[32];
    char udid[64], serial[32];
    X509 *leaf;
};

int main(int argc, char **argv)
{
    double seconds = 2.0;
    int leaves = 64, older = 10;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--leaves") == 0 && i + 1 < argc)
            leaves = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--nonces") == 0 && i + 1 < argc)
            older = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_attest [--seconds S] [--leaves N] [--nonces K]\n");
            return 2;
        }
    }
    if (seconds <= 0 || leaves < 1 || leaves > 4096 || older < 0 || older > 250) {
        fprintf(stderr, "bench_attest: bad arguments\n");
        return 2;
    }

    char err[256];
    struct fake_apple *pki = fake_apple_new(err, sizeof(err));
    char *root_pem = pki ? fake_apple_root_pem(pki) : NULL;
    struct attest_verifier *verifier =
        root_pem ? attest_verifier_new(root_pem, strlen(root_pem), err, sizeof(err)) : NULL;
    if (verifier == NULL) {
        fprintf(stderr, "bench_attest: %s\n", err);
        return 1;
    }
    X509 *sub = NULL;
    struct sample *samples = calloc((size_t)leaves, sizeof(*samples));
    uint8_t (*older_nonces)[32] = calloc((size_t)older + 1, 32);
    const uint8_t **older_ptrs = calloc((size_t)older + 1, sizeof(*older_ptrs));
    size_t *older_lens = calloc((size_t)older + 1, sizeof(*older_lens));
    for (int k = 0; k < older; k++) {
        for (int b = 0; b < 32; b++)
            older_nonces[k][b] = (uint8_t)rand();
        older_ptrs[k] = older_nonces[k];
        older_lens[k] = 32;
    }
    time_t t0 = time(NULL) - 3600;
    for (int i = 0; i < leaves; i++) {
        struct sample *s = &samples[i];
        for (int b = 0; b < 32; b++)
            s->nonce[b] = (unsigned char)rand();
        snprintf(s->udid, sizeof(s->udid), "00008110-%016X", i);
        snprintf(s->serial, sizeof(s->serial), "BENCH%05d", i);
        const struct fake_apple_device dev = {.serial_number = s->serial, .udid = s->udid,
                                              .os_version = "17.5", .software_update_device_id =
                                                                        "D74AP",
                                              .nonce = s->nonce, .nonce_len = 32};
        struct fake_leaf_spec spec;
        snprintf(err, sizeof(err), "leaf spec");
        if (!fake_leaf_spec_device(&spec, &dev, t0) ||
            !fake_apple_leaf(pki, &spec, &s->chain, err, sizeof(err))) {
            fprintf(stderr, "bench_attest: %s\n", err);
            return 1;
        }
        const unsigned char *p = s->chain.der[0];
        s->leaf = d2i_X509(NULL, &p, (long)s->chain.len[0]);
        if (sub == NULL) {
            p = s->chain.der[1];
            sub = d2i_X509(NULL, &p, (long)s->chain.len[1]);
        }
    }
    EVP_PKEY *sub_key = X509_get0_pubkey(sub);

    /* Reference and subject alternate in short rounds, so drift on a shared machine hits both. */
    unsigned long ref_ops = 0, att_ops = 0, failures = 0;
    double ref_time = 0, att_time = 0, att_cpu = 0;
    unsigned i_ref = 0, i_att = 0;
    double round = seconds / 10;
    while (ref_time + att_time < 2 * seconds) {
        double start = now_s(), end = start + round;
        do {
            for (int k = 0; k < 16; k++, i_ref++) {
                if (X509_verify(samples[i_ref % (unsigned)leaves].leaf, sub_key) != 1)
                    failures++;
                ref_ops++;
            }
        } while (now_s() < end);
        ref_time += now_s() - start;

        start = now_s();
        double cpu_start = cpu_s();
        end = start + round;
        do {
            for (int k = 0; k < 16; k++, i_att++) {
                struct sample *s = &samples[i_att % (unsigned)leaves];
                const uint8_t *certs[2] = {s->chain.der[0], s->chain.der[1]};
                const size_t lens[2] = {s->chain.len[0], s->chain.len[1]};
                const struct attest_input in = {
                    .certs = certs, .cert_lens = lens, .cert_count = 2,
                    .request_nonce = s->nonce, .request_nonce_len = 32,
                    .older_nonces = older_ptrs, .older_nonce_lens = older_lens,
                    .older_nonce_count = (size_t)older, .expected_udid = s->udid,
                    .expected_serial = s->serial, .reported_os_version = "17.5",
                    .verify_time = time(NULL)};
                struct attest_verdict v;
                attest_verify(verifier, &in, &v);
                if (v.status != ATTEST_VERIFIED)
                    failures++;
                att_ops++;
            }
        } while (now_s() < end);
        att_time += now_s() - start;
        att_cpu += cpu_s() - cpu_start;
    }
    double ref_rate = (double)ref_ops / ref_time, att_rate = (double)att_ops / att_time;
    double ratio = att_rate / ref_rate;
    printf("%-44s %12s %12s %7s %7s\n", "figure", "value", "reference", "ratio", "target");
    printf("%-44s %10.0f/s %10.0f/s %7.2f %7s\n", "attestation verifications (1 core)", att_rate,
           ref_rate, ratio, ">=0.80");
    printf("reference: OpenSSL X509_verify of the same P-384 leaves with the Sub CA key; "
           "%d leaves, %d older nonces each; cpu/wall %.2f; failures %lu\n",
           leaves, older, att_cpu / att_time, failures);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    printf("{\"bench\":\"attest_verify\",\"figure\":\"attestation verifications (1 core)\","
           "\"value\":%.1f,\"unit\":\"/s\",\"reference\":%.1f,\"ratio\":%.3f,"
           "\"target\":\">=0.80\",\"failures\":%lu,\"peak_rss_mb\":%.1f}\n",
           att_rate, ref_rate, ratio, failures, (double)usage.ru_maxrss / 1024.0);

    for (int i = 0; i < leaves; i++) {
        fake_chain_free(&samples[i].chain);
        X509_free(samples[i].leaf);
    }
    X509_free(sub);
    free(samples);
    free(older_nonces);
    free(older_ptrs);
    free(older_lens);
    free(root_pem);
    attest_verifier_free(verifier);
    fake_apple_free(pki);
    return failures == 0 ? 0 : 1;
}
