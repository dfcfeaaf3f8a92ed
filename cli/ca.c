/* `vouchctl ca init`: makes the CA with which vouchd's ACME server issues hardware-bound device
 * identities (server/acme/acme_ca.c does the work), offline, and says how to configure it. */
#include "vouchctl.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "acme_ca.h"
#include "hex.h"

#define CA_DEFAULT_CN "Vouch Device Identity CA"
#define CA_DEFAULT_DAYS 3650u
#define CA_MAX_DAYS 36500u

static bool parse_days(const char *text, unsigned *days)
{
    char *end;
    if (text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > CA_MAX_DAYS)
        return false;
    *days = (unsigned)v;
    return true;
}

/* Prints the new CA's fingerprint and expiry, read back from the PEM vouchd will serve. */
static void print_summary(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    struct tm tm;
    char until[32];

    if (cert != NULL && X509_digest(cert, EVP_sha256(), md, &md_len) == 1) {
        hex_encode(md, md_len, hex);
        printf("  SHA-256 fingerprint: %s\n", hex);
    }
    if (cert != NULL && ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1 &&
        strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        printf("  valid until:         %s\n", until);
    X509_free(cert);
    BIO_free(bio);
    ERR_clear_error();
}

/* The path vouchd should be given: absolute, since it may run from another directory. */
static char *config_path(const char *path)
{
    char *abs = realpath(path, NULL);
    return abs != NULL ? abs : strdup(path);
}

int cmd_ca(struct ctl *ctl)
{
    const char *action = ctl->args[0];
    const char *cn = ctl->ca_cn != NULL ? ctl->ca_cn : CA_DEFAULT_CN;
    unsigned days = CA_DEFAULT_DAYS;
    char err[512] = "";

    if (strcmp(action, "init") != 0)
        return ctl_usage_error("ca", "unknown action '%s' (there is: init)", action);
    if (ctl->ca_cert == NULL || ctl->ca_cert[0] == '\0')
        return ctl_usage_error("ca", "missing --cert PATH");
    if (ctl->ca_key == NULL || ctl->ca_key[0] == '\0')
        return ctl_usage_error("ca", "missing --key PATH");
    if (strcmp(ctl->ca_cert, ctl->ca_key) == 0)
        return ctl_usage_error("ca", "--cert and --key must be two different files");
    if (cn[0] == '\0' || strlen(cn) > 64)
        return ctl_usage_error("ca", "--cn must have 1 to 64 bytes");
    if (ctl->ca_days != NULL && !parse_days(ctl->ca_days, &days))
        return ctl_usage_error("ca", "invalid --days '%s': a number of days, 1 to %u", ctl->ca_days,
                               CA_MAX_DAYS);

    if (!acme_ca_create(ctl->ca_cert, ctl->ca_key, cn, days, err, sizeof(err))) {
        fprintf(stderr, "vouchctl: %s\n", err);
        return CTL_EXIT_FAILURE;
    }
    /* Read back as vouchd will: what was written is a CA it accepts. */
    struct acme_ca *ca = acme_ca_load(ctl->ca_cert, ctl->ca_key, err, sizeof(err));
    if (ca == NULL) {
        fprintf(stderr, "vouchctl: the new CA does not load: %s\n", err);
        return CTL_EXIT_FAILURE;
    }
    char *cert_abs = config_path(ctl->ca_cert), *key_abs = config_path(ctl->ca_key);
    if (cert_abs == NULL || key_abs == NULL) {
        free(cert_abs);
        free(key_abs);
        acme_ca_free(ca);
        fprintf(stderr, "vouchctl: out of memory\n");
        return CTL_EXIT_FAILURE;
    }
    printf("Wrote the CA certificate to %s\n", ctl->ca_cert);
    printf("  subject:             CN=%s\n", cn);
    print_summary(acme_ca_pem(ca));
    printf("Wrote its private key (P-384) to %s, mode 0600: keep it secret,\n"
           "readable only by the user vouchd runs as.\n"
           "\n"
           "Add to vouchd's configuration:\n"
           "  acme_ca_cert = %s\n"
           "  acme_ca_key = %s\n",
           ctl->ca_key, cert_abs, key_abs);
    free(cert_abs);
    free(key_abs);
    acme_ca_free(ca);
    return CTL_EXIT_OK;
}
