/* `vouchctl pushcert`: the MDM push certificate from scratch (deploy/RUNBOOK.md walks the path).
 *   csr      the customer's RSA 2048 key (0600) and certificate request
 *   sign     the MDM vendor's step: the request Apple's Push Certificates Portal accepts, the
 *            base64 of an XML plist {PushCertRequestCSR: base64 of the CSR's DER,
 *            PushCertCertificateChain: PEM of the vendor certificate, Apple's WWDR intermediate
 *            and Apple's root, PushCertSignature: base64 of the vendor key's SHA-256 RSA
 *            signature over the CSR's DER}
 *   install  checks the certificate Apple issued with its key (apns_cert.h, the checks vouchd's
 *            PUT /v1/pushcert makes) and writes the pair where vouchd reads it, or uploads it.
 * Offline but for install --server. */
#include "vouchctl.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <plist/plist.h>

#include "api.h"
#include "apns_cert.h"
#include "apns_cert_store.h"
#include "client.h"
#include "config.h"
#include "json.h"

#define PUSHCERT_DEFAULT_KEY "push.key"
#define PUSHCERT_DEFAULT_CSR "push.csr"
#define PUSHCERT_DEFAULT_CN "Vouch MDM push certificate"
#define PUSHCERT_FILE_MAX (1024 * 1024)
#define PUSHCERT_CHAIN_MAX 8

/* Says "vouchctl: <message>" on stderr; returns CTL_EXIT_FAILURE. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs("vouchctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    ERR_clear_error();
    return CTL_EXIT_FAILURE;
}

static const char *openssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    return r != NULL ? r : "not in the expected format";
}

/* Writes text to path, created new (an existing file is never replaced: it may be a key a
 * certificate was issued for) with mode. */
static bool write_new_file(const char *path, const char *text, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "vouchctl: cannot create %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (vouchctl does not replace it: move it away first)" : "");
        return false;
    }
    bool ok = fchmod(fd, mode) == 0;
    for (size_t done = 0; ok && done < len;) {
        ssize_t n = write(fd, text + done, len - done);
        ok = n > 0 || (n < 0 && errno == EINTR);
        done += n > 0 ? (size_t)n : 0;
    }
    ok = fsync(fd) == 0 && ok;
    if (close(fd) != 0 || !ok) {
        fprintf(stderr, "vouchctl: cannot write %s: %s\n", path, strerror(errno));
        unlink(path);
        return false;
    }
    return true;
}

/* The PEM text a BIO holds, or NULL. */
static char *bio_text(BIO *bio, size_t *len)
{
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *out = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (out != NULL) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
        *len = (size_t)n;
    }
    return out;
}

/* ---- csr -------------------------------------------------------------------------------- */

static int pushcert_csr(struct ctl *ctl)
{
    const char *key_path = ctl->ca_key != NULL ? ctl->ca_key : PUSHCERT_DEFAULT_KEY;
    const char *csr_path = ctl->out != NULL ? ctl->out : PUSHCERT_DEFAULT_CSR;
    const char *cn = ctl->ca_cn != NULL ? ctl->ca_cn : PUSHCERT_DEFAULT_CN;
    if (cn[0] == '\0' || strlen(cn) > 64)
        return ctl_usage_error("pushcert", "--cn must have 1 to 64 bytes");
    if (strcmp(key_path, csr_path) == 0)
        return ctl_usage_error("pushcert", "--key and --out must be two different files");

    int rc = CTL_EXIT_FAILURE;
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    BIO *key_bio = BIO_new(BIO_s_mem()), *csr_bio = BIO_new(BIO_s_mem());
    char *key_pem = NULL, *csr_pem = NULL;
    size_t key_len = 0, csr_len = 0;
    if (key == NULL || req == NULL || name == NULL || key_bio == NULL || csr_bio == NULL ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_subject_name(req, name) ||
        !X509_REQ_set_pubkey(req, key) || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
        !PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509_REQ(csr_bio, req) || (key_pem = bio_text(key_bio, &key_len)) == NULL ||
        (csr_pem = bio_text(csr_bio, &csr_len)) == NULL) {
        fail("cannot make the key and request: %s", openssl_reason());
        goto out;
    }
    if (!write_new_file(key_path, key_pem, key_len, 0600))
        goto out;
    if (!write_new_file(csr_path, csr_pem, csr_len, 0644)) {
        unlink(key_path);
        goto out;
    }
    printf("Wrote the push certificate's private key (RSA 2048) to %s, mode 0600: keep it; the\n"
           "certificate Apple issues for this request works only with it.\n"
           "Wrote the certificate request (CN=%s) to %s.\n"
           "\n"
           "Next: an MDM vendor signs the request (vouchctl pushcert sign, with a vendor\n"
           "certificate), you upload the signed request at https://identity.apple.com, then\n"
           "vouchctl pushcert install --cert CERT.pem --key %s ... (deploy/RUNBOOK.md).\n",
           key_path, cn, csr_path, key_path);
    rc = CTL_EXIT_OK;
out:
    if (key_pem != NULL)
        OPENSSL_cleanse(key_pem, key_len);
    free(key_pem);
    free(csr_pem);
    BIO_free(key_bio);
    BIO_free(csr_bio);
    X509_NAME_free(name);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rc;
}

/* ---- sign ------------------------------------------------------------------------------- */

/* Appends the certificates of path (PEM, one or more; or one DER, as Apple's .cer files are) to
 * chain. */
static bool read_certs(const char *path, STACK_OF(X509) * chain)
{
    char *data;
    size_t len;
    if (!ctl_read_file(path, PUSHCERT_FILE_MAX, &data, &len))
        return false;
    int before = sk_X509_num(chain);
    if (memmem(data, len, "-----BEGIN", 10) != NULL) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        X509 *cert;
        while (bio != NULL && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
            if (!sk_X509_push(chain, cert))
                X509_free(cert);
        BIO_free(bio);
    } else {
        const unsigned char *p = (const unsigned char *)data;
        X509 *cert = d2i_X509(NULL, &p, (long)len);
        if (cert != NULL && !sk_X509_push(chain, cert))
            X509_free(cert);
    }
    free(data);
    ERR_clear_error();
    if (sk_X509_num(chain) == before) {
        fprintf(stderr, "vouchctl: %s holds no certificate (PEM or DER)\n", path);
        return false;
    }
    return true;
}

static X509_REQ *read_csr(const char *path)
{
    char *data;
    size_t len;
    if (!ctl_read_file(path, PUSHCERT_FILE_MAX, &data, &len))
        return NULL;
    X509_REQ *req = NULL;
    if (memmem(data, len, "-----BEGIN", 10) != NULL) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        req = bio != NULL ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
    } else {
        const unsigned char *p = (const unsigned char *)data;
        req = d2i_X509_REQ(NULL, &p, (long)len);
    }
    free(data);
    EVP_PKEY *pub = req != NULL ? X509_REQ_get0_pubkey(req) : NULL;
    if (req == NULL) {
        fail("%s is not a certificate request (PEM or DER): %s", path, openssl_reason());
    } else if (pub == NULL || X509_REQ_verify(req, pub) != 1) {
        fail("%s: the request's own signature does not verify", path);
        X509_REQ_free(req);
        req = NULL;
    } else if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA) {
        fail("%s: the request's key is not RSA (Apple issues push certificates for RSA keys)",
             path);
        X509_REQ_free(req);
        req = NULL;
    }
    ERR_clear_error();
    return req;
}

static EVP_PKEY *read_key(const char *path)
{
    char *data;
    size_t len;
    if (!ctl_read_file(path, PUSHCERT_FILE_MAX, &data, &len))
        return NULL;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    /* An encrypted key asks for its passphrase on the terminal (OpenSSL's default prompt). */
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(data, len);
    free(data);
    if (key == NULL)
        fail("%s is not a PEM private key (or its passphrase is wrong): %s", path,
             openssl_reason());
    ERR_clear_error();
    return key;
}

/* Does chain run from the vendor certificate up to a self-signed root, each issued by the
 * next? Says what is wrong otherwise. */
static bool chain_complete(STACK_OF(X509) * chain)
{
    int n = sk_X509_num(chain);
    for (int i = 0; i + 1 < n; i++) {
        if (X509_check_issued(sk_X509_value(chain, i + 1), sk_X509_value(chain, i)) != X509_V_OK) {
            char issuer[256], next[256];
            X509_NAME_oneline(X509_get_issuer_name(sk_X509_value(chain, i)), issuer,
                              sizeof(issuer));
            X509_NAME_oneline(X509_get_subject_name(sk_X509_value(chain, i + 1)), next,
                              sizeof(next));
            fprintf(stderr,
                    "vouchctl: certificate %d of the chain was issued by %s, not by the next one "
                    "(%s): give the WWDR intermediate that issued the vendor certificate "
                    "(--wwdr) and Apple's root (--apple-root)\n",
                    i + 1, issuer, next);
            return false;
        }
    }
    X509 *root = sk_X509_value(chain, n - 1);
    if (n < 3 || X509_check_issued(root, root) != X509_V_OK) {
        fprintf(stderr, "vouchctl: the chain (vendor certificate, Apple's WWDR intermediate, "
                        "Apple Root CA) is not complete: give --wwdr and --apple-root\n");
        return false;
    }
    return true;
}

/* base64 (one line, no breaks) of data, or NULL. */
static char *base64(const unsigned char *data, size_t len)
{
    if (len > (size_t)INT32_MAX / 2)
        return NULL;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static bool sign_der(EVP_PKEY *key, const unsigned char *der, size_t der_len, unsigned char **sig,
                     size_t *sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestSign(md, NULL, sig_len, der, der_len) == 1 &&
              (*sig = malloc(*sig_len)) != NULL &&
              EVP_DigestSign(md, *sig, sig_len, der, der_len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* The base64 of the XML plist Apple's portal takes, or NULL. */
static char *push_request(const unsigned char *csr_der, size_t csr_len, STACK_OF(X509) * chain,
                          const unsigned char *sig, size_t sig_len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    for (int i = 0; bio != NULL && i < sk_X509_num(chain); i++) {
        if (!PEM_write_bio_X509(bio, sk_X509_value(chain, i))) {
            BIO_free(bio);
            bio = NULL;
        }
    }
    size_t chain_len = 0;
    char *chain_pem = bio != NULL ? bio_text(bio, &chain_len) : NULL;
    char *csr_b64 = base64(csr_der, csr_len), *sig_b64 = base64(sig, sig_len);
    char *xml = NULL, *out = NULL;
    uint32_t xml_len = 0;
    if (chain_pem != NULL && csr_b64 != NULL && sig_b64 != NULL) {
        plist_t dict = plist_new_dict();
        plist_dict_set_item(dict, "PushCertRequestCSR", plist_new_string(csr_b64));
        plist_dict_set_item(dict, "PushCertCertificateChain", plist_new_string(chain_pem));
        plist_dict_set_item(dict, "PushCertSignature", plist_new_string(sig_b64));
        plist_to_xml(dict, &xml, &xml_len);
        plist_free(dict);
    }
    if (xml != NULL)
        out = base64((const unsigned char *)xml, xml_len);
    plist_to_xml_free(xml);
    free(chain_pem);
    free(csr_b64);
    free(sig_b64);
    BIO_free(bio);
    return out;
}

static int pushcert_sign(struct ctl *ctl)
{
    if (ctl->vendor_cert == NULL)
        return ctl_usage_error("pushcert", "missing --vendor-cert FILE");
    if (ctl->vendor_key == NULL)
        return ctl_usage_error("pushcert", "missing --vendor-key FILE");
    if (ctl->csr == NULL)
        return ctl_usage_error("pushcert", "missing --csr FILE");

    int rc = CTL_EXIT_FAILURE;
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509_REQ *req = NULL;
    EVP_PKEY *key = NULL;
    unsigned char *csr_der = NULL, *sig = NULL;
    size_t sig_len = 0;
    char *request = NULL;
    if (chain == NULL || !read_certs(ctl->vendor_cert, chain) ||
        (ctl->wwdr != NULL && !read_certs(ctl->wwdr, chain)) ||
        (ctl->apple_root != NULL && !read_certs(ctl->apple_root, chain)) ||
        (sk_X509_num(chain) > PUSHCERT_CHAIN_MAX &&
         fail("more than %d certificates in the chain", PUSHCERT_CHAIN_MAX)) ||
        !chain_complete(chain) || (key = read_key(ctl->vendor_key)) == NULL ||
        (req = read_csr(ctl->csr)) == NULL)
        goto out;
    if (X509_check_private_key(sk_X509_value(chain, 0), key) != 1) {
        fail("%s is not the key of the vendor certificate %s", ctl->vendor_key, ctl->vendor_cert);
        goto out;
    }
    int der_len = i2d_X509_REQ(req, &csr_der);
    if (der_len <= 0 || !sign_der(key, csr_der, (size_t)der_len, &sig, &sig_len) ||
        (request = push_request(csr_der, (size_t)der_len, chain, sig, sig_len)) == NULL) {
        fail("cannot sign the request: %s", openssl_reason());
        goto out;
    }
    if (ctl->out == NULL) {
        printf("%s\n", request);
    } else if (!write_new_file(ctl->out, request, strlen(request), 0644)) {
        goto out;
    } else {
        fprintf(stderr,
                "Wrote the signed push certificate request to %s: upload it at\n"
                "https://identity.apple.com (Create a Certificate, or Renew for the same topic).\n",
                ctl->out);
    }
    rc = CTL_EXIT_OK;
out:
    OPENSSL_free(csr_der);
    free(sig);
    free(request);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    ERR_clear_error();
    return rc;
}

/* ---- install ---------------------------------------------------------------------------- */

/* The certificate of path as PEM (Apple's portal offers PEM; a DER .cer is converted). */
static char *read_cert_pem(const char *path, size_t *len)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    char *pem = NULL;
    if (certs != NULL && read_certs(path, certs)) {
        BIO *bio = BIO_new(BIO_s_mem());
        if (bio != NULL && PEM_write_bio_X509(bio, sk_X509_value(certs, 0)))
            pem = bio_text(bio, len);
        BIO_free(bio);
    }
    sk_X509_pop_free(certs, X509_free);
    return pem;
}

static int upload(struct ctl *ctl, const struct apns_cert *cert)
{
    size_t len = cert->cert_pem_len + cert->key_pem_len;
    char *body = malloc(len);
    if (body == NULL)
        return api_fail_nomem();
    memcpy(body, cert->cert_pem, cert->cert_pem_len);
    memcpy(body + cert->cert_pem_len, cert->key_pem, cert->key_pem_len);
    struct json_doc *doc = NULL;
    int rc =
        api_call(ctl, "PUT", "/v1/pushcert", body, len, "application/x-pem-file", 0, &doc, NULL);
    OPENSSL_cleanse(body, len);
    free(body);
    if (rc != CTL_EXIT_OK)
        return rc;
    const struct json_value *root = json_doc_root(doc);
    const char *topic = json_object_get_string(root, "topic");
    const char *not_after = json_object_get_string(root, "not_after");
    if (ctl->json)
        rc = api_print_json(root);
    else if (topic == NULL || not_after == NULL)
        rc = api_unexpected_shape(ctl, "/v1/pushcert", "an object with topic and not_after");
    else
        printf("vouchd at %s pushes with it now: topic %s, valid until %s\n",
               client_base_url(ctl->client), topic, not_after);
    json_doc_free(doc);
    return rc;
}

static int install_files(const struct apns_cert *cert, const char *cert_path, const char *key_path)
{
    char err[512];
    if (!apns_cert_store(cert, cert_path, key_path, err, sizeof(err))) {
        fprintf(stderr, "vouchctl: %s\n", err);
        return CTL_EXIT_FAILURE;
    }
    if (key_path != NULL)
        printf("Wrote the certificate to %s and its key to %s (mode 0600).\n", cert_path, key_path);
    else
        printf("Wrote the certificate and its key to %s (mode 0600).\n", cert_path);
    printf("vouchd takes it on `systemctl reload vouchd` (SIGHUP), on every instance.\n");
    return CTL_EXIT_OK;
}

static int pushcert_install(struct ctl *ctl)
{
    if (ctl->ca_cert == NULL)
        return ctl_usage_error("pushcert", "missing --cert FILE");
    if (ctl->ca_key == NULL)
        return ctl_usage_error("pushcert", "missing --key FILE");
    if ((ctl->to != NULL) + (ctl->vouchd_config != NULL) + ctl->server > 1)
        return ctl_usage_error("pushcert", "give one of --to, --vouchd-config and --server");

    char *cert_pem, *key_pem;
    size_t cert_len = 0, key_len = 0;
    if ((cert_pem = read_cert_pem(ctl->ca_cert, &cert_len)) == NULL)
        return CTL_EXIT_FAILURE;
    if (!ctl_read_file(ctl->ca_key, PUSHCERT_FILE_MAX, &key_pem, &key_len)) {
        free(cert_pem);
        return CTL_EXIT_FAILURE;
    }
    struct apns_cert cert;
    char err[512];
    bool ok = apns_cert_from_pem(&cert, cert_pem, cert_len, key_pem, key_len, err, sizeof(err)) &&
              apns_cert_check_installable(&cert, time(NULL), err, sizeof(err));
    OPENSSL_cleanse(key_pem, key_len);
    free(key_pem);
    free(cert_pem);
    if (!ok) {
        apns_cert_clear(&cert);
        fprintf(stderr, "vouchctl: %s: %s\n", ctl->ca_cert, err);
        return CTL_EXIT_FAILURE;
    }
    char until[32];
    apns_cert_not_after_text(&cert, until, sizeof(until));
    long days = apns_cert_days_left(&cert, time(NULL));
    printf("%s: an MDM push certificate for topic %s, valid until %s (%ld days), with its key\n",
           ctl->ca_cert, cert.topic, until, days);
    if (days < APNS_CERT_WARN_DAYS)
        fprintf(stderr,
                "vouchctl: warning: it expires in %ld day(s): renew it at "
                "https://identity.apple.com with the same Apple ID\n",
                days);

    int rc = CTL_EXIT_OK;
    if (ctl->server) {
        rc = upload(ctl, &cert);
    } else if (ctl->vouchd_config != NULL) {
        /* vouchd's own reading of its configuration (VOUCH_APNS_CERT and the like win). */
        struct config cfg;
        if (!config_load(&cfg, ctl->vouchd_config, err, sizeof(err))) {
            fprintf(stderr, "vouchctl: %s: %s\n", ctl->vouchd_config, err);
            rc = CTL_EXIT_FAILURE;
        } else {
            if (cfg.apns_cert == NULL) {
                fprintf(stderr, "vouchctl: %s sets no apns_cert: set apns_cert and apns_key\n",
                        ctl->vouchd_config);
                rc = CTL_EXIT_FAILURE;
            } else {
                rc = install_files(&cert, cfg.apns_cert, cfg.apns_key);
            }
            config_clear(&cfg);
        }
    } else if (ctl->to != NULL) {
        char *cert_path = api_str_join(ctl->to, "/push.pem", NULL);
        char *key_path = api_str_join(ctl->to, "/push.key", NULL);
        rc = cert_path != NULL && key_path != NULL ? install_files(&cert, cert_path, key_path)
                                                   : api_fail_nomem();
        if (rc == CTL_EXIT_OK) {
            /* vouchd may run from another directory: absolute paths for its configuration. */
            char *cert_abs = realpath(cert_path, NULL), *key_abs = realpath(key_path, NULL);
            printf("Configure vouchd with:\n  apns_cert = %s\n  apns_key = %s\n",
                   cert_abs != NULL ? cert_abs : cert_path, key_abs != NULL ? key_abs : key_path);
            free(cert_abs);
            free(key_abs);
        }
        free(cert_path);
        free(key_path);
    } else {
        printf("Checked only: give --to DIR, --vouchd-config FILE or --server to install it.\n");
    }
    apns_cert_clear(&cert);
    return rc;
}

int cmd_pushcert(struct ctl *ctl)
{
    const char *action = ctl->args[0];
    if (strcmp(action, "csr") == 0)
        return pushcert_csr(ctl);
    if (strcmp(action, "sign") == 0)
        return pushcert_sign(ctl);
    if (strcmp(action, "install") == 0)
        return pushcert_install(ctl);
    return ctl_usage_error("pushcert", "unknown action '%s' (there are: csr, sign, install)",
                           action);
}
