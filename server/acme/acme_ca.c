/* acme_ca: see acme_ca.h. */
#include "acme_ca.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hex.h"

#define ACME_CA_SERIAL_BYTES 16
#define ACME_CA_BACKDATE_S 300
/* X.520's upper bounds for commonName, serialNumber and organizationName. */
#define ACME_CA_MAX_NAME 64
/* A DER SubjectPublicKeyInfo larger than this is no key Vouch attests (RSA-16384 is ~2 KiB). */
#define ACME_CA_MAX_SPKI 4096
#define ACME_CA_MAX_DAYS 36500u

struct acme_ca {
    X509 *cert;
    EVP_PKEY *key;
    const EVP_MD *md; /* what leaves are signed with, chosen by the key */
    char *pem;        /* the certificate, re-encoded: no comments or other blocks of the file */
    time_t not_before, not_after;
};

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (err == NULL || err_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse it instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* A certificate's time as a time_t; false when it cannot be read. */
static bool asn1_time_to_time_t(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return false;
    *out = timegm(&tm);
    return true;
}

/* The digest to sign leaves with, or NULL for a key Vouch does not sign with. */
static const EVP_MD *digest_for_key(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "RSA"))
        return EVP_PKEY_get_bits(key) >= 2048 ? EVP_sha256() : NULL;
    if (!EVP_PKEY_is_a(key, "EC"))
        return NULL;
    char group[64];
    size_t group_len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) != 1)
        return NULL;
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    if (nid == NID_secp384r1)
        return EVP_sha384();
    if (nid == NID_X9_62_prime256v1)
        return EVP_sha256();
    return NULL;
}

/* A malloc()ed, NUL-terminated PEM of cert; NULL when out of memory. */
static char *cert_to_pem(X509 *cert, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0 && (pem = malloc((size_t)n + 1)) != NULL) {
            memcpy(pem, data, (size_t)n);
            pem[n] = '\0';
            if (len != NULL)
                *len = (size_t)n;
        }
    }
    BIO_free(bio);
    return pem;
}

static bool check_ca_cert(X509 *cert, const char *path, char *err, size_t err_size)
{
    uint32_t flags = X509_get_extension_flags(cert);
    if (flags & EXFLAG_INVALID) {
        set_err(err, err_size, "%s: the certificate's extensions are invalid", path);
        return false;
    }
    if (!(flags & EXFLAG_CA)) {
        set_err(err, err_size, "%s: not a CA certificate (no basicConstraints CA:TRUE)", path);
        return false;
    }
    if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
        set_err(err, err_size, "%s: the CA certificate's keyUsage lacks keyCertSign", path);
        return false;
    }
    return true;
}

struct acme_ca *acme_ca_load(const char *cert_path, const char *key_path, char *err,
                             size_t err_size)
{
    struct acme_ca *ca = calloc(1, sizeof(*ca));
    FILE *f = NULL;

    if (ca == NULL) {
        set_err(err, err_size, "out of memory");
        return NULL;
    }
    if ((f = fopen(cert_path, "r")) == NULL) {
        set_err(err, err_size, "cannot open %s: %s", cert_path, strerror(errno));
        goto fail;
    }
    ca->cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (ca->cert == NULL) {
        set_err(err, err_size, "%s: no PEM certificate", cert_path);
        goto fail;
    }
    if (!check_ca_cert(ca->cert, cert_path, err, err_size))
        goto fail;
    if (!asn1_time_to_time_t(X509_get0_notBefore(ca->cert), &ca->not_before) ||
        !asn1_time_to_time_t(X509_get0_notAfter(ca->cert), &ca->not_after)) {
        set_err(err, err_size, "%s: cannot read the certificate's validity", cert_path);
        goto fail;
    }

    if ((f = fopen(key_path, "r")) == NULL) {
        set_err(err, err_size, "cannot open %s: %s", key_path, strerror(errno));
        goto fail;
    }
    ca->key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (ca->key == NULL) {
        set_err(err, err_size, "%s: no PEM private key (an encrypted key is not accepted)",
                key_path);
        goto fail;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        set_err(err, err_size, "%s is not the key of the certificate %s", key_path, cert_path);
        goto fail;
    }
    if ((ca->md = digest_for_key(ca->key)) == NULL) {
        set_err(err, err_size, "%s: unsupported CA key (use EC P-384, EC P-256 or RSA >= 2048)",
                key_path);
        goto fail;
    }
    if ((ca->pem = cert_to_pem(ca->cert, NULL)) == NULL) {
        set_err(err, err_size, "out of memory");
        goto fail;
    }
    ERR_clear_error();
    return ca;

fail:
    acme_ca_free(ca);
    ERR_clear_error();
    return NULL;
}

void acme_ca_free(struct acme_ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca->pem);
    free(ca);
}

const char *acme_ca_pem(const struct acme_ca *ca)
{
    return ca->pem;
}

/* -- the finalize CSR ---------------------------------------------------------------------- */

static const char *const csr_error_names[] = {
    [ACME_CSR_OK] = NULL,
    [ACME_CSR_MALFORMED] = "malformed",
    [ACME_CSR_BAD_SIGNATURE] = "bad_signature",
    [ACME_CSR_KEY_MISMATCH] = "key_mismatch",
};

const char *acme_csr_error_name(enum acme_csr_error err)
{
    if ((size_t)err >= sizeof(csr_error_names) / sizeof(csr_error_names[0]))
        return NULL;
    return csr_error_names[err];
}

enum acme_csr_error acme_csr_check(const uint8_t *der, size_t len, const uint8_t *spki,
                                   size_t spki_len)
{
    enum acme_csr_error result = ACME_CSR_MALFORMED;
    X509_REQ *req = NULL;
    unsigned char *req_spki = NULL;

    if (der == NULL || len == 0 || len > ACME_CA_MAX_CSR)
        goto out;
    const unsigned char *p = der;
    req = d2i_X509_REQ(NULL, &p, (long)len);
    if (req == NULL || p != der + len)
        goto out;
    EVP_PKEY *key = X509_REQ_get0_pubkey(req);
    if (key == NULL)
        goto out; /* a key OpenSSL cannot read: nothing to verify the signature with */
    if (X509_REQ_verify(req, key) != 1) {
        result = ACME_CSR_BAD_SIGNATURE;
        goto out;
    }
    /* The SubjectPublicKeyInfo as the request carries it, not re-derived from the parsed key. */
    int n = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &req_spki);
    if (n <= 0)
        goto out;
    if (spki == NULL || (size_t)n != spki_len || memcmp(req_spki, spki, spki_len) != 0) {
        result = ACME_CSR_KEY_MISMATCH;
        goto out;
    }
    result = ACME_CSR_OK;

out:
    OPENSSL_free(req_spki);
    X509_REQ_free(req);
    ERR_clear_error();
    return result;
}

/* -- issuing ------------------------------------------------------------------------------- */

/* A random positive serial of exactly ACME_CA_SERIAL_BYTES bytes in DER: the top bit clear (so
 * no sign byte is needed) and the first byte not zero (so none is dropped). */
static bool random_serial(uint8_t serial[ACME_CA_SERIAL_BYTES])
{
    do {
        if (RAND_bytes(serial, ACME_CA_SERIAL_BYTES) != 1)
            return false;
        serial[0] &= 0x7f;
    } while (serial[0] == 0);
    return true;
}

static bool set_serial(X509 *x, const uint8_t serial[ACME_CA_SERIAL_BYTES])
{
    ASN1_INTEGER *ai = X509_get_serialNumber(x);
    return ASN1_STRING_set(ai, serial, ACME_CA_SERIAL_BYTES) == 1;
}

/* Adds an extension written in OpenSSL's configuration syntax ("critical,CA:FALSE"). */
static bool add_ext_conf(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    bool ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* subjectKeyIdentifier: SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2, method 1). */
static ASN1_OCTET_STRING *key_id_of(const X509 *cert)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    ASN1_OCTET_STRING *id = NULL;
    if (X509_pubkey_digest(cert, EVP_sha1(), md, &md_len) != 1)
        return NULL;
    if ((id = ASN1_OCTET_STRING_new()) == NULL || ASN1_OCTET_STRING_set(id, md, (int)md_len) != 1) {
        ASN1_OCTET_STRING_free(id);
        return NULL;
    }
    return id;
}

static bool add_subject_key_id(X509 *x)
{
    ASN1_OCTET_STRING *id = key_id_of(x);
    bool ok = id != NULL &&
              X509_add1_ext_i2d(x, NID_subject_key_identifier, id, 0, X509V3_ADD_DEFAULT) == 1;
    ASN1_OCTET_STRING_free(id);
    return ok;
}

/* authorityKeyIdentifier: the CA's own subjectKeyIdentifier, or computed as it would be. */
static bool add_authority_key_id(X509 *x, X509 *issuer)
{
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    const ASN1_OCTET_STRING *ca_id = X509_get0_subject_key_id(issuer);
    bool ok = false;
    if (akid == NULL)
        return false;
    akid->keyid = ca_id != NULL ? ASN1_OCTET_STRING_dup(ca_id) : key_id_of(issuer);
    if (akid->keyid != NULL)
        ok = X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1;
    AUTHORITY_KEYID_free(akid);
    return ok;
}

/* PermanentIdentifier ::= SEQUENCE { identifierValue UTF8String OPTIONAL, assigner OBJECT
 * IDENTIFIER OPTIONAL } (RFC 4043), with the value only: the DER of the whole SEQUENCE. */
static ASN1_STRING *permanent_identifier_der(const char *value)
{
    ASN1_UTF8STRING *utf8 = ASN1_UTF8STRING_new();
    ASN1_STRING *seq = NULL;
    unsigned char *buf = NULL;

    if (utf8 == NULL || ASN1_STRING_set(utf8, value, (int)strlen(value)) != 1)
        goto out;
    int inner = i2d_ASN1_UTF8STRING(utf8, NULL);
    if (inner <= 0)
        goto out;
    int total = ASN1_object_size(1, inner, V_ASN1_SEQUENCE);
    if (total <= 0 || (buf = OPENSSL_malloc((size_t)total)) == NULL)
        goto out;
    unsigned char *p = buf;
    ASN1_put_object(&p, 1, inner, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    if (i2d_ASN1_UTF8STRING(utf8, &p) != inner || p != buf + total)
        goto out;
    if ((seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE)) != NULL &&
        ASN1_STRING_set(seq, buf, total) != 1) {
        ASN1_STRING_free(seq);
        seq = NULL;
    }

out:
    OPENSSL_free(buf);
    ASN1_UTF8STRING_free(utf8);
    return seq;
}

/* subjectAltName: one otherName, permanent-identifier = udid (not critical: the subject is not
 * empty). */
static bool add_permanent_identifier_san(X509 *x, const char *udid)
{
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *name = GENERAL_NAME_new();
    ASN1_OBJECT *oid = OBJ_nid2obj(NID_id_on_permanentIdentifier);
    ASN1_TYPE *value = ASN1_TYPE_new();
    ASN1_STRING *seq = permanent_identifier_der(udid);
    bool ok = false;

    oid = oid != NULL ? OBJ_dup(oid) : NULL;
    if (names == NULL || name == NULL || oid == NULL || value == NULL || seq == NULL)
        goto out;
    ASN1_TYPE_set(value, V_ASN1_SEQUENCE, seq);
    seq = NULL;
    if (GENERAL_NAME_set0_othername(name, oid, value) != 1)
        goto out;
    oid = NULL;
    value = NULL;
    if (sk_GENERAL_NAME_push(names, name) <= 0)
        goto out;
    name = NULL;
    ok = X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;

out:
    ASN1_STRING_free(seq);
    ASN1_TYPE_free(value);
    ASN1_OBJECT_free(oid);
    GENERAL_NAME_free(name);
    GENERAL_NAMES_free(names);
    return ok;
}

static bool name_add(X509_NAME *name, int nid, const char *value)
{
    return X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, (const unsigned char *)value, -1,
                                      -1, 0) == 1;
}

static bool name_ok(const char *value, bool required)
{
    if (value == NULL || value[0] == '\0')
        return !required;
    return strlen(value) <= ACME_CA_MAX_NAME;
}

/* The issued certificate's DER into a malloc()ed buffer. */
static bool cert_to_der(X509 *x, uint8_t **der, size_t *len)
{
    int n = i2d_X509(x, NULL);
    if (n <= 0 || (*der = malloc((size_t)n)) == NULL)
        return false;
    unsigned char *p = *der;
    if (i2d_X509(x, &p) != n) {
        free(*der);
        *der = NULL;
        return false;
    }
    *len = (size_t)n;
    return true;
}

bool acme_ca_issue(const struct acme_ca *ca, const struct acme_issue_request *req,
                   struct acme_issued *out, char *err, size_t err_size)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    X509_NAME *subject = NULL;
    unsigned char *cert_spki = NULL;
    uint8_t serial[ACME_CA_SERIAL_BYTES];
    bool ok = false;

    memset(out, 0, sizeof(*out));
    if (req->spki == NULL || req->spki_len == 0 || req->spki_len > ACME_CA_MAX_SPKI) {
        set_err(err, err_size, "no attested key");
        goto out;
    }
    if (!name_ok(req->udid, true) || !name_ok(req->serial_number, true) ||
        !name_ok(req->organization, false)) {
        set_err(err, err_size,
                "the UDID and serial number are required, and every name is at most %d bytes",
                ACME_CA_MAX_NAME);
        goto out;
    }
    if (req->lifetime_s == 0 || req->not_before < ca->not_before ||
        req->not_before >= ca->not_after) {
        set_err(err, err_size, "%s",
                req->lifetime_s == 0 ? "a lifetime of 0 seconds"
                                     : "the CA certificate is not valid at that time");
        goto out;
    }
    /* Back-dated for clocks slightly behind, never before the CA; cut short at the CA's end. */
    time_t not_before = req->not_before - ACME_CA_BACKDATE_S;
    if (not_before < ca->not_before)
        not_before = ca->not_before;
    time_t not_after = req->not_before + (time_t)req->lifetime_s;
    if (not_after > ca->not_after)
        not_after = ca->not_after;

    const unsigned char *p = req->spki;
    key = d2i_PUBKEY(NULL, &p, (long)req->spki_len);
    if (key == NULL || p != req->spki + req->spki_len) {
        set_err(err, err_size, "the attested key is not one DER SubjectPublicKeyInfo");
        goto out;
    }

    if ((x = X509_new()) == NULL || (subject = X509_NAME_new()) == NULL) {
        set_err(err, err_size, "out of memory");
        goto out;
    }
    if (!random_serial(serial)) {
        set_err(err, err_size, "no random serial number (the random generator failed)");
        goto out;
    }
    if (X509_set_version(x, X509_VERSION_3) != 1 || !set_serial(x, serial) ||
        X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
        ASN1_TIME_set(X509_getm_notBefore(x), not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), not_after) == NULL || X509_set_pubkey(x, key) != 1) {
        set_err(err, err_size, "cannot build the certificate");
        goto out;
    }
    if ((req->organization != NULL && req->organization[0] != '\0' &&
         !name_add(subject, NID_organizationName, req->organization)) ||
        !name_add(subject, NID_commonName, req->udid) ||
        !name_add(subject, NID_serialNumber, req->serial_number) ||
        X509_set_subject_name(x, subject) != 1) {
        set_err(err, err_size,
                "cannot encode the subject (the serial number takes letters, digits, spaces "
                "and '()+,-./:=?'; the names valid UTF-8)");
        goto out;
    }
    /* The certificate must carry the attested key as attested, not a re-encoding of it. */
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &cert_spki);
    if (n <= 0 || (size_t)n != req->spki_len || memcmp(cert_spki, req->spki, req->spki_len) != 0) {
        set_err(err, err_size, "the attested key does not encode back to the same bytes");
        goto out;
    }

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
    if (!add_ext_conf(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext_conf(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
        !add_ext_conf(x, &ctx, NID_ext_key_usage, "clientAuth") || !add_subject_key_id(x) ||
        !add_authority_key_id(x, ca->cert) || !add_permanent_identifier_san(x, req->udid)) {
        set_err(err, err_size, "cannot add the certificate's extensions");
        goto out;
    }
    if (X509_sign(x, ca->key, ca->md) <= 0) {
        set_err(err, err_size, "cannot sign the certificate");
        goto out;
    }
    if (!cert_to_der(x, &out->der, &out->der_len)) {
        set_err(err, err_size, "out of memory");
        goto out;
    }
    if (EVP_Digest(out->der, out->der_len, out->sha256, NULL, EVP_sha256(), NULL) != 1) {
        set_err(err, err_size, "cannot hash the certificate");
        goto out;
    }
    hex_encode(serial, sizeof(serial), out->serial_hex);
    out->not_before = not_before;
    out->not_after = not_after;
    ok = true;

out:
    if (!ok) {
        free(out->der);
        memset(out, 0, sizeof(*out));
    }
    OPENSSL_free(cert_spki);
    X509_NAME_free(subject);
    X509_free(x);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

char *acme_ca_chain_pem(const struct acme_ca *ca, const uint8_t *der, size_t der_len, size_t *len)
{
    const unsigned char *p = der;
    X509 *x = NULL;
    char *leaf = NULL, *chain = NULL;
    size_t leaf_len = 0;

    if (der == NULL || der_len == 0 || der_len > LONG_MAX)
        goto out;
    x = d2i_X509(NULL, &p, (long)der_len);
    if (x == NULL || p != der + der_len || (leaf = cert_to_pem(x, &leaf_len)) == NULL)
        goto out;
    size_t ca_len = strlen(ca->pem);
    if ((chain = malloc(leaf_len + ca_len + 1)) == NULL)
        goto out;
    memcpy(chain, leaf, leaf_len);
    memcpy(chain + leaf_len, ca->pem, ca_len + 1);
    if (len != NULL)
        *len = leaf_len + ca_len;

out:
    free(leaf);
    X509_free(x);
    ERR_clear_error();
    return chain;
}

/* -- making a CA (vouchctl ca init) ------------------------------------------------------- */

static X509 *self_signed_ca(EVP_PKEY *key, const char *common_name, unsigned days)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    uint8_t serial[ACME_CA_SERIAL_BYTES];
    bool ok = false;
    X509V3_CTX ctx;

    if (x == NULL || name == NULL || !random_serial(serial))
        goto out;
    if (X509_set_version(x, X509_VERSION_3) != 1 || !set_serial(x, serial) ||
        !name_add(name, NID_commonName, common_name) || X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, name) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -ACME_CA_BACKDATE_S) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL ||
        X509_set_pubkey(x, key) != 1)
        goto out;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    if (!add_ext_conf(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !add_ext_conf(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_subject_key_id(x))
        goto out;
    ok = X509_sign(x, key, EVP_sha384()) > 0;

out:
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

/* The key as unencrypted PKCS#8 PEM into *pem (OPENSSL_malloc()ed: the caller cleanses it). */
static bool key_to_pem(EVP_PKEY *key, char **pem, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    bool ok = false;
    *pem = NULL;
    if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0 && (*pem = OPENSSL_malloc((size_t)n)) != NULL) {
            memcpy(*pem, data, (size_t)n);
            *len = (size_t)n;
            ok = true;
        }
    }
    BIO_free(bio); /* a memory BIO clears its buffer before freeing it */
    return ok;
}

/* Creates path, which must not exist (not even as a dangling link), with exactly mode. */
static int create_new(const char *path, mode_t mode, char *err, size_t err_size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            set_err(err, err_size, "%s already exists: not overwriting it", path);
        else
            set_err(err, err_size, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, mode) != 0) { /* the umask may have taken bits of the certificate's mode */
        set_err(err, err_size, "cannot set the mode of %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

static bool write_all(int fd, const char *data, size_t len, const char *path, char *err,
                      size_t err_size)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            set_err(err, err_size, "cannot write %s: %s", path, n < 0 ? strerror(errno) : "");
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        set_err(err, err_size, "cannot write %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

bool acme_ca_create(const char *cert_path, const char *key_path, const char *common_name,
                    unsigned days, char *err, size_t err_size)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char *cert_pem = NULL, *key_pem = NULL;
    size_t cert_len = 0, key_len = 0;
    int key_fd = -1, cert_fd = -1;
    bool key_created = false, cert_created = false, ok = false;

    if (cert_path == NULL || key_path == NULL || cert_path[0] == '\0' || key_path[0] == '\0' ||
        strcmp(cert_path, key_path) == 0) {
        set_err(err, err_size, "the certificate and the key need two different paths");
        return false;
    }
    if (!name_ok(common_name, true)) {
        set_err(err, err_size, "the common name must have 1 to %d bytes", ACME_CA_MAX_NAME);
        return false;
    }
    if (days == 0 || days > ACME_CA_MAX_DAYS) {
        set_err(err, err_size, "the validity must be 1 to %u days", ACME_CA_MAX_DAYS);
        return false;
    }

    if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")) == NULL) {
        set_err(err, err_size, "cannot generate a P-384 key");
        goto out;
    }
    if ((cert = self_signed_ca(key, common_name, days)) == NULL) {
        set_err(err, err_size, "cannot make the CA certificate (is the common name valid UTF-8?)");
        goto out;
    }
    if ((cert_pem = cert_to_pem(cert, &cert_len)) == NULL || !key_to_pem(key, &key_pem, &key_len)) {
        set_err(err, err_size, "out of memory");
        goto out;
    }

    /* Both files are claimed before either is written: an existing one stops everything. */
    if ((key_fd = create_new(key_path, 0600, err, err_size)) < 0)
        goto out;
    key_created = true;
    if ((cert_fd = create_new(cert_path, 0644, err, err_size)) < 0)
        goto out;
    cert_created = true;
    if (!write_all(key_fd, key_pem, key_len, key_path, err, err_size) ||
        !write_all(cert_fd, cert_pem, cert_len, cert_path, err, err_size))
        goto out;
    int key_rc = close(key_fd);
    key_fd = -1;
    if (key_rc != 0) {
        set_err(err, err_size, "cannot write %s: %s", key_path, strerror(errno));
        goto out;
    }
    int cert_rc = close(cert_fd);
    cert_fd = -1;
    if (cert_rc != 0) {
        set_err(err, err_size, "cannot write %s: %s", cert_path, strerror(errno));
        goto out;
    }
    ok = true;

out:
    if (key_fd >= 0)
        close(key_fd);
    if (cert_fd >= 0)
        close(cert_fd);
    /* No half-made CA is left behind; only files this call created are removed (create_new()
     * never opens an existing one). */
    if (!ok && key_created)
        unlink(key_path);
    if (!ok && cert_created)
        unlink(cert_path);
    if (key_pem != NULL)
        OPENSSL_clear_free(key_pem, key_len);
    free(cert_pem);
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}
