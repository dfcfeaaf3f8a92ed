#include "identity.h"

#include <event2/http.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct identity_verifier {
    X509_STORE *store;
};

static const char *const error_names[] = {
    [IDENTITY_OK] = "ok",
    [IDENTITY_MISSING] = "identity_missing",
    [IDENTITY_BAD_ENCODING] = "identity_bad_encoding",
    [IDENTITY_BAD_CMS] = "identity_bad_cms",
    [IDENTITY_BAD_SIGNATURE] = "identity_bad_signature",
    [IDENTITY_UNTRUSTED] = "identity_untrusted",
};

const char *identity_error_name(enum identity_error err)
{
    return error_names[err];
}

struct identity_verifier *identity_verifier_new(const char *pem, size_t pem_len, char *err,
                                                size_t err_size)
{
    struct identity_verifier *v = calloc(1, sizeof(*v));
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (v == NULL || bio == NULL || (v->store = X509_STORE_new()) == NULL) {
        snprintf(err, err_size, "out of memory");
        goto fail;
    }
    int count = 0;
    X509 *cert;
    while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(v->store, cert);
        X509_free(cert);
        if (!ok) {
            snprintf(err, err_size, "cannot add certificate %d to the trust store", count + 1);
            goto fail;
        }
        count++;
    }
    ERR_clear_error(); /* the end of the PEM stream reads as an error */
    if (count == 0) {
        snprintf(err, err_size, "no PEM certificate found");
        goto fail;
    }
    /* Device identities come from SCEP or ACME with client-auth usages, not S/MIME ones: the
     * chain is what matters, so accept any purpose (as `openssl cms -verify -purpose any`). */
    X509_STORE_set_purpose(v->store, X509_PURPOSE_ANY);
    BIO_free(bio);
    return v;

fail:
    BIO_free(bio);
    identity_verifier_free(v);
    ERR_clear_error();
    return NULL;
}

void identity_verifier_free(struct identity_verifier *v)
{
    if (v == NULL)
        return;
    X509_STORE_free(v->store);
    free(v);
}

static bool describe_cert(X509 *cert, struct device_identity *out)
{
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    if (der_len <= 0)
        return false;
    bool ok = EVP_Digest(der, (size_t)der_len, out->sha256, NULL, EVP_sha256(), NULL) == 1;
    OPENSSL_free(der);
    if (!ok)
        return false;

    out->subject[0] = '\0';
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem != NULL) {
        X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
        int n = BIO_read(mem, out->subject, (int)sizeof(out->subject) - 1);
        out->subject[n > 0 ? n : 0] = '\0';
        BIO_free(mem);
    }
    out->not_after[0] = '\0';
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
        strftime(out->not_after, sizeof(out->not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return true;
}

/* Decodes base64 (whitespace allowed) into a fresh buffer. */
static unsigned char *base64_decode(const char *in, size_t in_len, size_t *out_len)
{
    if (in_len == 0 || in_len > IDENTITY_MAX_HEADER_LEN)
        return NULL;
    unsigned char *out = malloc(in_len / 4 * 3 + 3);
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    int n = 0, tail = 0;
    bool ok = out != NULL && ctx != NULL;
    if (ok) {
        EVP_DecodeInit(ctx);
        ok = EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)in, (int)in_len) >= 0 &&
             EVP_DecodeFinal(ctx, out + n, &tail) == 1 && n + tail > 0;
    }
    EVP_ENCODE_CTX_free(ctx);
    if (!ok) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)(n + tail);
    return out;
}

static bool only_base64(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || c == '=' || c == ' ' || c == '\r' || c == '\n' ||
                  c == '\t';
        if (!ok)
            return false;
    }
    return true;
}

static enum identity_error verify_signature(const struct identity_verifier *v, CMS_ContentInfo *cms,
                                            const void *body, size_t body_len,
                                            struct device_identity *out)
{
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed || !CMS_is_detached(cms))
        return IDENTITY_BAD_CMS;
    STACK_OF(CMS_SignerInfo) *signer_infos = CMS_get0_SignerInfos(cms);
    if (signer_infos == NULL || sk_CMS_SignerInfo_num(signer_infos) != 1)
        return IDENTITY_BAD_CMS;

    BIO *content = BIO_new_mem_buf(body, (int)body_len);
    if (content == NULL)
        return IDENTITY_BAD_CMS;
    int ok = CMS_verify(cms, NULL, v->store, content, NULL, CMS_BINARY);
    BIO_free(content);
    if (ok != 1) {
        unsigned long e = ERR_peek_error();
        bool chain =
            ERR_GET_LIB(e) == ERR_LIB_CMS && ERR_GET_REASON(e) == CMS_R_CERTIFICATE_VERIFY_ERROR;
        return chain ? IDENTITY_UNTRUSTED : IDENTITY_BAD_SIGNATURE;
    }
    STACK_OF(X509) *signers = CMS_get0_signers(cms);
    enum identity_error result = IDENTITY_BAD_CMS;
    if (signers != NULL && sk_X509_num(signers) == 1 &&
        describe_cert(sk_X509_value(signers, 0), out))
        result = IDENTITY_OK;
    sk_X509_free(signers);
    return result;
}

enum identity_error identity_from_signature(const struct identity_verifier *v, const char *header,
                                            size_t header_len, const void *body, size_t body_len,
                                            struct device_identity *out)
{
    ERR_clear_error(); /* what follows reads the queue to tell failures apart */
    if (header == NULL || header_len == 0)
        return IDENTITY_MISSING;
    if (body_len > INT32_MAX || !only_base64(header, header_len))
        return IDENTITY_BAD_ENCODING;
    size_t der_len;
    unsigned char *der = base64_decode(header, header_len, &der_len);
    if (der == NULL)
        return IDENTITY_BAD_ENCODING;
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_len);
    enum identity_error result;
    if (cms == NULL || p != der + der_len)
        result = IDENTITY_BAD_ENCODING;
    else
        result = verify_signature(v, cms, body, body_len, out);
    CMS_ContentInfo_free(cms);
    free(der);
    ERR_clear_error();
    return result;
}

static X509 *cert_from_header(const char *header, size_t len)
{
    if (len >= 2 && header[0] == ':' && header[len - 1] == ':') {
        /* RFC 9440: the DER as a structured-field byte sequence. */
        if (!only_base64(header + 1, len - 2))
            return NULL;
        size_t der_len;
        unsigned char *der = base64_decode(header + 1, len - 2, &der_len);
        if (der == NULL)
            return NULL;
        const unsigned char *p = der;
        X509 *cert = d2i_X509(NULL, &p, (long)der_len);
        if (cert != NULL && p != der + der_len) {
            X509_free(cert);
            cert = NULL;
        }
        free(der);
        return cert;
    }
    /* nginx's $ssl_client_escaped_cert: URL-escaped PEM. */
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, header, len);
    copy[len] = '\0';
    size_t pem_len = 0;
    char *pem = evhttp_uridecode(copy, 0, &pem_len);
    free(copy);
    if (pem == NULL)
        return NULL;
    X509 *cert = NULL;
    if (strncmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0) {
        BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
        if (bio != NULL)
            cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    free(pem);
    return cert;
}

enum identity_error identity_from_cert_header(const struct identity_verifier *v, const char *header,
                                              size_t header_len, struct device_identity *out)
{
    if (header == NULL || header_len == 0)
        return IDENTITY_MISSING;
    if (header_len > IDENTITY_MAX_HEADER_LEN || memchr(header, '\0', header_len) != NULL)
        return IDENTITY_BAD_ENCODING;
    X509 *cert = cert_from_header(header, header_len);
    if (cert == NULL) {
        ERR_clear_error();
        return IDENTITY_BAD_ENCODING;
    }
    enum identity_error result = IDENTITY_UNTRUSTED;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (ctx != NULL && X509_STORE_CTX_init(ctx, v->store, cert, NULL) == 1 &&
        X509_verify_cert(ctx) == 1)
        result = describe_cert(cert, out) ? IDENTITY_OK : IDENTITY_BAD_ENCODING;
    X509_STORE_CTX_free(ctx);
    X509_free(cert);
    ERR_clear_error();
    return result;
}

enum identity_error identity_cert_sha256(const char *text, size_t len, uint8_t sha256[32])
{
    if (text == NULL || len == 0)
        return IDENTITY_MISSING;
    if (len > IDENTITY_MAX_HEADER_LEN || memchr(text, '\0', len) != NULL)
        return IDENTITY_BAD_ENCODING;
    X509 *cert = cert_from_header(text, len);
    unsigned char *der = NULL;
    int der_len = cert ? i2d_X509(cert, &der) : 0;
    bool ok =
        der_len > 0 && EVP_Digest(der, (size_t)der_len, sha256, NULL, EVP_sha256(), NULL) == 1;
    OPENSSL_free(der);
    X509_free(cert);
    ERR_clear_error();
    return ok ? IDENTITY_OK : IDENTITY_BAD_ENCODING;
}
