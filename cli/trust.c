/*
 * `vouchctl trust POLICY SUBJECT`: asks the trust API (POST /v1/trust/{policy}) whether a device
 * may in under a policy, as a web application or a VPN would, and shows the decision with its
 * reasons and the facts it rests on. The exit status is the decision (0 allow, CTL_EXIT_DENIED
 * deny), so that scripts can gate on it.
 */
#include "vouchctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "api.h"
#include "hex.h"
#include "json.h"
#include "output.h"

/* What the server accepts: policy names of 1 to 32 of these, UDIDs and serial numbers of 1 to
 * 128 printable ASCII characters, a certificate's SHA-256 as 64 hex digits. */
#define TRUST_POLICY_NAME_MAX 32
#define TRUST_POLICY_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#define TRUST_IDENTIFIER_MAX 128
#define TRUST_SHA256_HEX 64
/* The largest --cert file read; only its first certificate is sent. */
#define TRUST_CERT_FILE_MAX ((size_t)64 * 1024)
/* The request body: a certificate re-encoded as PEM fits well within the server's 64 KiB. */
#define TRUST_BODY_MAX ((size_t)64 * 1024)

/* What names the device in the question: the JSON key and its value. */
struct trust_subject {
    const char *key;
    char *value; /* owned */
};

static bool policy_name_ok(const char *name)
{
    size_t len = strlen(name);
    return len > 0 && len <= TRUST_POLICY_NAME_MAX && strspn(name, TRUST_POLICY_NAME_CHARS) == len;
}

static bool identifier_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > TRUST_IDENTIFIER_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x21 || *p > 0x7e)
            return false;
    }
    return true;
}

/* HEX as 64 lowercase hex digits into out (at least 65 bytes), without the colons openssl puts
 * between bytes (`openssl x509 -fingerprint -sha256`); false when it is not a SHA-256. */
static bool sha256_normalize(const char *hex, char *out)
{
    size_t n = 0;

    for (const char *p = hex; *p != '\0'; p++) {
        if (*p == ':')
            continue;
        int value = hex_digit((unsigned char)*p);
        if (value < 0 || n >= TRUST_SHA256_HEX)
            return false;
        out[n++] = "0123456789abcdef"[value];
    }
    out[n] = '\0';
    return n == TRUST_SHA256_HEX;
}

/*
 * The first certificate of FILE (PEM, any text around it and other blocks skipped; or DER), as
 * PEM in memory the caller frees. The server hashes the certificate's DER, which re-encoding
 * keeps byte for byte. Returns an exit status: CTL_EXIT_USAGE for a file that cannot be read or
 * holds no certificate.
 */
static int cert_file_pem(const char *file, char **pem)
{
    char *data = NULL;
    size_t len = 0;
    BIO *in = NULL, *out = NULL;
    X509 *cert = NULL;
    int rc = CTL_EXIT_USAGE;

    *pem = NULL;
    if (!ctl_read_file(file, TRUST_CERT_FILE_MAX, &data, &len))
        return ctl_usage_error("trust", "--cert needs a readable file of at most %zu bytes",
                               TRUST_CERT_FILE_MAX);
    ERR_clear_error();
    if (len == 0) {
        ctl_usage_error("trust", "--cert: %s is empty", file);
        goto out;
    }
    if ((in = BIO_new_mem_buf(data, (int)len)) == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    if (strstr(data, "-----BEGIN ") != NULL && memchr(data, '\0', len) == NULL) {
        cert = PEM_read_bio_X509(in, NULL, NULL, NULL);
    } else {
        const unsigned char *p = (const unsigned char *)data;
        cert = d2i_X509(NULL, &p, (long)len);
        if (cert != NULL && p != (const unsigned char *)data + len) {
            X509_free(cert);
            cert = NULL;
        }
    }
    if (cert == NULL) {
        ctl_usage_error("trust", "--cert: %s holds no certificate (PEM or DER)", file);
        goto out;
    }
    char *mem = NULL;
    long mem_len;
    if ((out = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(out, cert) != 1 ||
        (mem_len = BIO_get_mem_data(out, &mem)) <= 0 ||
        (*pem = malloc((size_t)mem_len + 1)) == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    memcpy(*pem, mem, (size_t)mem_len);
    (*pem)[mem_len] = '\0';
    rc = CTL_EXIT_OK;
out:
    X509_free(cert);
    BIO_free(in);
    BIO_free(out);
    free(data);
    ERR_clear_error();
    return rc;
}

/* The one subject the command line names, checked as the server would. An exit status. */
static int trust_subject_from_args(struct ctl *ctl, struct trust_subject *subject)
{
    const char *udid = ctl->nargs > 1 ? ctl->args[1] : NULL;
    int given = (udid != NULL) + (ctl->serial != NULL) + (ctl->ca_cert != NULL) +
                (ctl->cert_sha256 != NULL);

    subject->key = NULL;
    subject->value = NULL;
    if (given == 0)
        return ctl_usage_error(
            "trust", "name the device: UDID, --serial S, --cert FILE or --cert-sha256 HEX");
    if (given > 1)
        return ctl_usage_error("trust", "name the device once: a UDID, --serial, --cert or "
                                        "--cert-sha256, not several");
    if (udid != NULL || ctl->serial != NULL) {
        const char *value = udid != NULL ? udid : ctl->serial;
        if (!identifier_ok(value))
            return ctl_usage_error("trust", "'%s' is not a %s (1 to %d printable characters)",
                                   value, udid != NULL ? "UDID" : "serial number",
                                   TRUST_IDENTIFIER_MAX);
        subject->key = udid != NULL ? "udid" : "serial_number";
        subject->value = strdup(value);
        return subject->value != NULL ? CTL_EXIT_OK : api_fail_nomem();
    }
    if (ctl->cert_sha256 != NULL) {
        char hex[TRUST_SHA256_HEX + 1];
        if (!sha256_normalize(ctl->cert_sha256, hex))
            return ctl_usage_error("trust",
                                   "--cert-sha256: '%s' is not a SHA-256 (64 hex digits, colons "
                                   "allowed)",
                                   ctl->cert_sha256);
        subject->key = "certificate_sha256";
        subject->value = strdup(hex);
        return subject->value != NULL ? CTL_EXIT_OK : api_fail_nomem();
    }
    subject->key = "certificate";
    return cert_file_pem(ctl->ca_cert, &subject->value);
}

/* Prints text from the server, made safe for the terminal; "-" for NULL. */
static void put_safe(const char *text)
{
    char *safe = output_sanitize(text != NULL ? text : "-");
    fputs(safe != NULL ? safe : "?", stdout);
    free(safe);
}

static void put_key(const char *key)
{
    printf("  %-14s", key);
}

static bool member_true(const struct json_value *obj, const char *key)
{
    bool b = false;
    const struct json_value *v = json_object_find(obj, key);
    return v != NULL && json_get_bool(v, &b) && b;
}

/* "UDID serial S, PRODUCT (PLATFORM OS), enrolled" */
static void print_device_line(const struct json_value *dev)
{
    const char *serial = json_object_get_string(dev, "serial_number");
    const char *product = json_object_get_string(dev, "product_name");
    const char *platform = json_object_get_string(dev, "platform");
    const char *os = json_object_get_string(dev, "os_version");

    if (product == NULL)
        product = json_object_get_string(dev, "model");
    put_key("device:");
    put_safe(json_object_get_string(dev, "udid"));
    if (serial != NULL) {
        fputs(" serial ", stdout);
        put_safe(serial);
    }
    fputs(", ", stdout);
    put_safe(product != NULL ? product : "unknown model");
    if (platform != NULL || os != NULL) {
        fputs(" (", stdout);
        if (platform != NULL)
            put_safe(platform);
        if (platform != NULL && os != NULL)
            fputs(" ", stdout);
        if (os != NULL)
            put_safe(os);
        fputs(")", stdout);
    }
    fputs(member_true(dev, "enrolled") ? ", enrolled\n" : ", not enrolled\n", stdout);
}

/* "STATUS (FRESHNESS), verified T, expires T" */
static void print_attestation_line(const struct json_value *att)
{
    const char *status = json_object_get_string(att, "status");
    const char *freshness = json_object_get_string(att, "freshness");
    const char *verified = json_object_get_string(att, "verified_at");
    const char *expires = json_object_get_string(att, "expires_at");

    put_key("attestation:");
    put_safe(status != NULL ? status : "none");
    if (freshness != NULL) {
        fputs(" (", stdout);
        put_safe(freshness);
        fputs(")", stdout);
    }
    if (verified != NULL) {
        fputs(", verified ", stdout);
        put_safe(verified);
    }
    if (expires != NULL) {
        fputs(", expires ", stdout);
        put_safe(expires);
    }
    fputs("\n", stdout);
}

/* "KIND (hardware-bound), current|superseded[, revoked], until T" */
static void print_identity_line(const struct json_value *identity)
{
    const char *not_after = json_object_get_string(identity, "not_after");

    put_key("identity:");
    put_safe(json_object_get_string(identity, "kind"));
    if (member_true(identity, "hardware_bound"))
        fputs(" (hardware-bound)", stdout);
    fputs(member_true(identity, "current") ? ", current" : ", not current", stdout);
    if (member_true(identity, "revoked"))
        fputs(", revoked", stdout);
    if (not_after != NULL) {
        fputs(", until ", stdout);
        put_safe(not_after);
    }
    fputs("\n", stdout);
}

static void print_decision(const struct json_value *answer, const char *decision)
{
    const struct json_value *reasons = json_object_find(answer, "reasons");
    const struct json_value *subject = json_object_find(answer, "subject");
    const struct json_value *dev = json_object_find(answer, "device");

    put_safe(decision);
    fputs(" (policy ", stdout);
    put_safe(json_object_get_string(answer, "policy"));
    fputs(")\n", stdout);

    if (json_array_length(reasons) > 0) {
        put_key("reasons:");
        for (size_t i = 0; i < json_array_length(reasons); i++) {
            if (i > 0)
                fputs(", ", stdout);
            put_safe(output_scalar(json_array_at(reasons, i)));
        }
        fputs("\n", stdout);
    }
    if (json_object_count(subject) == 1) {
        const char *key = NULL;
        const struct json_value *value = NULL;
        if (json_object_member(subject, 0, &key, NULL, &value)) {
            put_key("subject:");
            put_safe(key);
            fputs(" ", stdout);
            put_safe(output_scalar(value));
            fputs("\n", stdout);
        }
    }
    if (dev == NULL || json_value_kind(dev) != JSON_KIND_OBJECT) {
        put_key("device:");
        fputs("none known\n", stdout);
    } else {
        print_device_line(dev);
        print_attestation_line(json_object_find(dev, "attestation"));
        print_identity_line(json_object_find(dev, "identity"));
    }
    put_key("evaluated at:");
    put_safe(output_scalar(json_object_find(answer, "evaluated_at")));
    fputs(", valid until: ", stdout);
    put_safe(output_scalar(json_object_find(answer, "valid_until")));
    fputs("\n", stdout);
}

/* POST /v1/trust/{policy} {"udid" | "serial_number" | "certificate" | "certificate_sha256"} */
int cmd_trust(struct ctl *ctl)
{
    const char *policy = ctl->args[0]; /* vouchctl.c checked that there is one */
    struct trust_subject subject = {0};
    struct json_writer *w = NULL;
    struct json_doc *doc = NULL;
    char *path = NULL;
    const char *body;
    size_t body_len;
    long status = 0;
    int rc;

    if (!policy_name_ok(policy))
        return ctl_usage_error("trust",
                               "'%s' is not a policy name (1 to %d letters, digits, '-' or '_')",
                               policy, TRUST_POLICY_NAME_MAX);
    rc = trust_subject_from_args(ctl, &subject);
    if (rc != CTL_EXIT_OK)
        goto out;
    if ((w = json_writer_new(TRUST_BODY_MAX, 0)) == NULL ||
        (path = api_str_join("/v1/trust/", policy, (const char *)NULL)) == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    if (!json_write_begin_object(w) || !json_write_key(w, subject.key) ||
        !json_write_string(w, subject.value) || !json_write_end_object(w) ||
        !json_writer_finish(w, &body, &body_len)) {
        rc = api_fail_nomem();
        goto out;
    }
    /* A 404 is the unknown policy, said here more plainly than the server's "no such policy". */
    rc = api_call(ctl, "POST", path, body, body_len, "application/json", 404, &doc, &status);
    if (rc != CTL_EXIT_OK)
        goto out;
    if (status == 404) {
        fprintf(stderr,
                "vouchctl: the server has no trust policy '%s' (HTTP 404): policies are the\n"
                "policy.NAME.* lines of vouchd's configuration; 'default' always exists\n",
                policy);
        rc = CTL_EXIT_FAILURE;
        goto out;
    }
    const struct json_value *answer = json_doc_root(doc);
    const char *decision = json_object_get_string(answer, "decision");
    bool allow = decision != NULL && strcmp(decision, "allow") == 0;
    if (json_value_kind(answer) != JSON_KIND_OBJECT ||
        (!allow && (decision == NULL || strcmp(decision, "deny") != 0))) {
        rc = api_unexpected_shape(ctl, path, "a trust decision (allow or deny)");
        goto out;
    }
    if (ctl->json) {
        rc = api_print_json(answer);
        if (rc != CTL_EXIT_OK)
            goto out;
    } else {
        print_decision(answer, decision);
    }
    rc = allow ? CTL_EXIT_OK : CTL_EXIT_DENIED;
out:
    json_doc_free(doc);
    json_writer_free(w);
    free(path);
    free(subject.value);
    return rc;
}
