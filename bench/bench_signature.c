/*
 * bench_signature: Mdm-Signature checks per second on one core, beside the physical limit
 * measured in the same run: OpenSSL's own CMS_verify of the same signatures against the same
 * identity CA (parse the DER, verify the signer's chain, check the signed attributes and the
 * signature over the body), with nothing of Vouch around it.
 *
 * Two figures: a device's every request after its first (its certificate chain-verified before,
 * kept in vouchd's cache: what a device costs in steady state), and each certificate's first
 * sight (a fresh verifier each pass: parse and chain verification as well).
 *
 * The signatures are what devices send (tests/sim/sim_pki.c: detached SignedData, SHA-256, signed
 * attributes, P-256 identity certificate included) over TokenUpdate-sized bodies; vouchd's check
 * is identity_from_signature() on the base64 header value, as the check-in path calls it.
 * The enrollment benchmark (bench_fleet.py) divides its devices per second by the reference.
 *
 * Prints a table and one JSON line. Usage: bench_signature [--seconds S] [--devices N]
 */
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_clock.h"
#include "identity.h"
#include "tests/sim/sim_pki.h"

struct sample {
    char *body;
    size_t body_len;
    char *header; /* base64 DER, as sent in Mdm-Signature */
    unsigned char *der;
    int der_len;
};

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_signature: %s: %s\n", what, err);
    exit(1);
}

/* A TokenUpdate body of the usual size (about 900 bytes), different per device. */
static char *token_update_body(int i, size_t *len)
{
    char *body = NULL;
    int n = asprintf(&body,
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                     "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                     "<plist version=\"1.0\">\n<dict>\n"
                     "\t<key>AwaitingConfiguration</key>\n\t<false/>\n"
                     "\t<key>MessageType</key>\n\t<string>TokenUpdate</string>\n"
                     "\t<key>PushMagic</key>\n\t<string>6E8A21C4-%08X-4E0B-9C53-2B8D1F0A7E61"
                     "</string>\n"
                     "\t<key>Token</key>\n\t<data>\n\tq2VsbG8gd29ybGQgdGhpcyBpcyBhIHRva2VuIG"
                     "9mIDMyIGJ5dGVz%08X\n\t</data>\n"
                     "\t<key>Topic</key>\n\t<string>com.apple.mgmt.External.bench</string>\n"
                     "\t<key>UDID</key>\n\t<string>00008110-%016X</string>\n"
                     "</dict>\n</plist>\n",
                     (unsigned)i, (unsigned)i, (unsigned)i);
    if (n < 0)
        die("body", "out of memory");
    *len = (size_t)n;
    return body;
}

static void make_samples(struct sample *s, int count, char **ca_pem)
{
    char *ca_key = NULL, err[256];
    if (!sim_pki_ca_create(SIM_KEY_EC, ca_pem, &ca_key, err, sizeof(err)))
        die("CA", err);
    struct sim_ca *ca =
        sim_pki_ca_load(*ca_pem, strlen(*ca_pem), ca_key, strlen(ca_key), err, sizeof(err));
    struct sim_pki_loader *loader = sim_pki_loader_new(err, sizeof(err));
    if (ca == NULL || loader == NULL)
        die("CA", err);
    for (int i = 0; i < count; i++) {
        char udid[64], *pem = NULL;
        size_t pem_len;
        snprintf(udid, sizeof(udid), "00008110-%016X", (unsigned)i);
        if (!sim_pki_identity_issue(ca, udid, SIM_KEY_EC, &pem, &pem_len, err, sizeof(err)))
            die("identity", err);
        struct sim_identity *id = sim_pki_identity_load(loader, pem, pem_len, err, sizeof(err));
        if (id == NULL)
            die("identity", err);
        s[i].body = token_update_body(i, &s[i].body_len);
        if (!sim_pki_sign_detached(id, s[i].body, s[i].body_len, &s[i].header, err, sizeof(err)))
            die("signing", err);
        s[i].der = malloc(strlen(s[i].header));
        s[i].der_len =
            EVP_DecodeBlock(s[i].der, (const unsigned char *)s[i].header, (int)strlen(s[i].header));
        if (s[i].der == NULL || s[i].der_len <= 0)
            die("base64", "cannot decode the signature");
        /* EVP_DecodeBlock counts the padding as bytes: drop them. */
        size_t hl = strlen(s[i].header);
        s[i].der_len -=
            (hl > 0 && s[i].header[hl - 1] == '=') + (hl > 1 && s[i].header[hl - 2] == '=');
        sim_pki_identity_free(id);
        free(pem);
    }
    sim_pki_loader_free(loader);
    sim_pki_ca_free(ca);
    free(ca_key);
}

static X509_STORE *store_from_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    X509_STORE *store = X509_STORE_new();
    if (cert == NULL || store == NULL || X509_STORE_add_cert(store, cert) != 1)
        die("store", "cannot load the CA");
    X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
    X509_free(cert);
    BIO_free(bio);
    return store;
}

/* OpenSSL alone: parse and CMS_verify, as any CMS user would. */
static int openssl_verify(X509_STORE *store, const struct sample *s)
{
    const unsigned char *p = s->der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, s->der_len);
    BIO *content = BIO_new_mem_buf(s->body, (int)s->body_len);
    int ok = cms != NULL && content != NULL &&
             CMS_verify(cms, NULL, store, content, NULL, CMS_BINARY) == 1;
    BIO_free(content);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return ok;
}

static int vouch_verify(struct identity_verifier *v, const struct sample *s)
{
    struct device_identity id;
    return identity_from_signature(v, s->header, strlen(s->header), s->body, s->body_len, &id) ==
           IDENTITY_OK;
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    int count = 256;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--devices") == 0 && i + 1 < argc)
            count = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_signature [--seconds S] [--devices N]\n");
            return 2;
        }
    }
    if (seconds <= 0 || count < 1 || count > 100000) {
        fprintf(stderr, "bench_signature: bad arguments\n");
        return 2;
    }

    struct sample *samples = calloc((size_t)count, sizeof(*samples));
    char *ca_pem = NULL, err[256];
    if (samples == NULL)
        die("samples", "out of memory");
    make_samples(samples, count, &ca_pem);
    X509_STORE *store = store_from_pem(ca_pem);
    struct identity_verifier *verifier =
        identity_verifier_new(ca_pem, strlen(ca_pem), IDENTITY_CACHE_DEFAULT, err, sizeof(err));
    if (verifier == NULL)
        die("verifier", err);

    /* Alternate the three in slices so all see the same machine state. */
    double t_ref = 0, t_vouch = 0, t_cold = 0, cpu0 = cpu_s(), wall0 = now_s();
    long n_ref = 0, n_vouch = 0, n_cold = 0, failures = 0;
    while (t_ref + t_vouch + t_cold < 3 * seconds) {
        double t = now_s();
        for (int i = 0; i < count; i++)
            failures += !openssl_verify(store, &samples[i]);
        n_ref += count;
        t_ref += now_s() - t;
        t = now_s();
        for (int i = 0; i < count; i++)
            failures += !vouch_verify(verifier, &samples[i]);
        n_vouch += count;
        t_vouch += now_s() - t;
        struct identity_verifier *cold =
            identity_verifier_new(ca_pem, strlen(ca_pem), IDENTITY_CACHE_DEFAULT, err, sizeof(err));
        if (cold == NULL)
            die("verifier", err);
        t = now_s();
        for (int i = 0; i < count; i++)
            failures += !vouch_verify(cold, &samples[i]);
        n_cold += count;
        t_cold += now_s() - t;
        identity_verifier_free(cold);
    }
    double cpu_ratio = (cpu_s() - cpu0) / (now_s() - wall0);
    double ref = (double)n_ref / t_ref, vouch = (double)n_vouch / t_vouch;
    double first = (double)n_cold / t_cold;

    printf("%-44s %12s %12s %7s %7s\n", "figure", "value", "reference", "ratio", "target");
    printf("%-44s %10.0f/s %10.0f/s %7.2f %7s\n", "Mdm-Signature checks, first sight (1 core)",
           first, ref, first / ref, ">=0.80");
    printf("%-44s %10.0f/s %10.0f/s %7.2f %7s\n", "Mdm-Signature checks (1 core)", vouch, ref,
           vouch / ref, ">=0.80");
    printf("reference: OpenSSL d2i_CMS_ContentInfo + CMS_verify (CMS_BINARY, chain to the identity "
           "CA) of the same %d signatures; cpu/wall %.2f; failures %ld\n",
           count, cpu_ratio, failures);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    /* The figure other benchmarks read (its reference) stays the last line. */
    printf(
        "{\"bench\":\"signature_verify\",\"figure\":\"Mdm-Signature checks, first sight (1 core)\","
        "\"value\":%.1f,\"unit\":\"/s\",\"reference\":%.1f,\"ratio\":%.3f,\"target\":\">=0.80\"}\n",
        first, ref, first / ref);
    printf("{\"bench\":\"signature_verify\",\"figure\":\"Mdm-Signature checks (1 core)\","
           "\"value\":%.1f,\"unit\":\"/s\",\"reference\":%.1f,\"ratio\":%.3f,\"target\":\">=0.80\","
           "\"failures\":%ld,\"peak_rss_mb\":%.1f}\n",
           vouch, ref, vouch / ref, failures, (double)usage.ru_maxrss / 1024.0);

    for (int i = 0; i < count; i++) {
        free(samples[i].body);
        free(samples[i].header);
        free(samples[i].der);
    }
    free(samples);
    free(ca_pem);
    X509_STORE_free(store);
    identity_verifier_free(verifier);
    return failures == 0 ? 0 : 1;
}
