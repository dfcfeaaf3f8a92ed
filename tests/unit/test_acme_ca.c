/* Unit tests of server/acme/acme_ca.c: making and loading Vouch's issuing CA, checking finalize
 * CSRs against the attested key, and every property of the identity certificate it issues, all
 * read back with OpenSSL rather than trusted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "acme_ca.h"
#include "hex.h"
#include "tu_file.h"

#define UDID "00008030-001A2D3E0C38802E"
#define SERIAL "C02XL0GHJGH5"
#define ORG "Example Corp"
#define LIFETIME (14u * 86400u)

/* Every function of acme_ca leaves OpenSSL's error queue empty: checked after each call. */
#define assert_no_openssl_error() assert_int_equal(ERR_peek_error(), 0)

/* One CA and one device key for the whole file: P-384 keys take a while to make. */
static struct {
    char dir[64];
    char cert_path[128], key_path[128];
    struct acme_ca *ca;
    X509 *ca_cert;    /* read back from the file, independently of acme_ca */
    EVP_PKEY *device; /* the attested key */
    uint8_t *spki;
    size_t spki_len;
} g;

static void path_in_dir(char *out, size_t len, const char *name)
{
    assert_true(tu_path_join(out, len, g.dir, name));
}

static void write_pem_files(const char *cert_path, X509 *cert, const char *key_path, EVP_PKEY *key)
{
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, cert), 1);
    assert_int_equal(fclose(f), 0);
    f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *spki_of(EVP_PKEY *key, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    assert_true(n > 0);
    *len = (size_t)n;
    return der;
}

static time_t asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return timegm(&tm);
}

/* A self-signed certificate made here, not by acme_ca: CAs acme_ca_load must refuse or take. */
static X509 *make_self_signed(EVP_PKEY *key, const char *bc, const char *ku)
{
    X509 *x = X509_new();
    X509V3_CTX ctx;
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                                                (const unsigned char *)"test", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    const char *values[] = {bc, ku};
    const int nids[] = {NID_basic_constraints, NID_key_usage};
    for (size_t i = 0; i < 2; i++) {
        if (values[i] == NULL)
            continue;
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nids[i], values[i]);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

/* A CSR (DER) for key, signed by signer (normally the same key). */
static uint8_t *make_csr(EVP_PKEY *key, EVP_PKEY *signer, size_t *len)
{
    X509_REQ *req = X509_REQ_new();
    assert_non_null(req);
    assert_int_equal(X509_REQ_set_version(req, X509_REQ_VERSION_1), 1);
    assert_int_equal(X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_commonName,
                                                MBSTRING_ASC, (const unsigned char *)"device", -1,
                                                -1, 0),
                     1);
    assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
    assert_true(X509_REQ_sign(req, signer, EVP_sha384()) > 0);
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    assert_true(n > 0);
    X509_REQ_free(req);
    *len = (size_t)n;
    return der;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int group_setup(void **state)
{
    char err[256] = "";
    snprintf(g.dir, sizeof(g.dir), "/tmp/vouch-test-acme-ca-XXXXXX");
    if (mkdtemp(g.dir) == NULL)
        return -1;
    if (!tu_path_join(g.cert_path, sizeof(g.cert_path), g.dir, "ca.pem") ||
        !tu_path_join(g.key_path, sizeof(g.key_path), g.dir, "ca.key"))
        return -1;
    if (!acme_ca_create(g.cert_path, g.key_path, "Vouch Test CA", 30, err, sizeof(err))) {
        fprintf(stderr, "acme_ca_create: %s\n", err);
        return -1;
    }
    g.ca = acme_ca_load(g.cert_path, g.key_path, err, sizeof(err));
    if (g.ca == NULL) {
        fprintf(stderr, "acme_ca_load: %s\n", err);
        return -1;
    }
    FILE *f = fopen(g.cert_path, "r");
    g.ca_cert = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f != NULL)
        fclose(f);
    g.device = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (g.ca_cert == NULL || g.device == NULL)
        return -1;
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(g.device, &der);
    if (n <= 0)
        return -1;
    g.spki = der;
    g.spki_len = (size_t)n;
    return ERR_peek_error() == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    acme_ca_free(g.ca);
    X509_free(g.ca_cert);
    EVP_PKEY_free(g.device);
    OPENSSL_free(g.spki);
    return nftw(g.dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static struct acme_issue_request request_now(void)
{
    /* An hour into the CA's life: far enough that back-dating is not cut short by it. */
    struct acme_issue_request req = {
        .spki = g.spki,
        .spki_len = g.spki_len,
        .udid = UDID,
        .serial_number = SERIAL,
        .organization = ORG,
        .not_before = asn1_time(X509_get0_notBefore(g.ca_cert)) + 3600,
        .lifetime_s = LIFETIME,
    };
    return req;
}

/* -- acme_ca_create ------------------------------------------------------------------------ */

static void test_create_makes_a_ca(void **state)
{
    X509 *ca = g.ca_cert;
    int crit = -1;

    assert_int_equal(X509_get_version(ca), X509_VERSION_3);
    /* Self-signed, with ECDSA-SHA384 by a P-384 key. */
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(ca), X509_get_issuer_name(ca)), 0);
    EVP_PKEY *key = X509_get0_pubkey(ca);
    assert_non_null(key);
    assert_int_equal(X509_verify(ca, key), 1);
    assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA384);
    char group[32];
    assert_int_equal(EVP_PKEY_get_group_name(key, group, sizeof(group), NULL), 1);
    assert_string_equal(group, "secp384r1");
    char cn[64];
    assert_int_equal(
        X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, cn, sizeof(cn)), 13);
    assert_string_equal(cn, "Vouch Test CA");

    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(crit, 1);
    assert_true(bc->ca);
    assert_non_null(bc->pathlen);
    assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
    BASIC_CONSTRAINTS_free(bc);
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(ca, NID_key_usage, &crit, NULL);
    assert_non_null(ku);
    assert_int_equal(crit, 1);
    ASN1_BIT_STRING_free(ku);
    assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_non_null(X509_get0_subject_key_id(ca));
    assert_true(X509_get_extension_flags(ca) & EXFLAG_CA);
    assert_int_equal(X509_check_ca(ca), 1);

    /* Valid for the days asked, from (a little before) now. */
    time_t nb = asn1_time(X509_get0_notBefore(ca)), na = asn1_time(X509_get0_notAfter(ca));
    time_t now = time(NULL);
    assert_true(nb <= now && nb >= now - 3600);
    assert_true(na - nb >= 30 * 86400 && na - nb <= 30 * 86400 + 3600);

    /* The key file: the key of the certificate, readable by its owner alone. */
    struct stat st;
    assert_int_equal(stat(g.key_path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(g.cert_path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    FILE *f = fopen(g.key_path, "r");
    assert_non_null(f);
    EVP_PKEY *priv = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(priv);
    assert_int_equal(X509_check_private_key(ca, priv), 1);
    EVP_PKEY_free(priv);

    /* acme_ca_pem() is the same certificate. */
    BIO *bio = BIO_new_mem_buf(acme_ca_pem(g.ca), -1);
    X509 *again = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(again);
    assert_int_equal(X509_cmp(again, ca), 0);
    X509_free(again);
}

static void test_create_refuses_to_overwrite(void **state)
{
    char err[256] = "", other[128], *before = NULL, *after = NULL;
    size_t before_len, after_len;
    struct stat st;

    assert_int_equal(tu_file_read(g.key_path, 1 << 16, &before, &before_len, err, sizeof(err)),
                     TU_READ_OK);
    assert_false(acme_ca_create(g.cert_path, g.key_path, "Another", 30, err, sizeof(err)));
    assert_no_openssl_error();
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(tu_file_read(g.key_path, 1 << 16, &after, &after_len, err, sizeof(err)),
                     TU_READ_OK);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);

    /* The certificate exists, the key not: nothing written, no key left behind. */
    path_in_dir(other, sizeof(other), "new.key");
    err[0] = '\0';
    assert_false(acme_ca_create(g.cert_path, other, "Another", 30, err, sizeof(err)));
    assert_non_null(strstr(err, g.cert_path));
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(stat(other, &st), -1);
    assert_int_equal(errno, ENOENT);

    /* A dangling symbolic link is not followed. */
    char link_path[128], target[128], key2[128];
    path_in_dir(link_path, sizeof(link_path), "link.pem");
    path_in_dir(target, sizeof(target), "target.pem");
    path_in_dir(key2, sizeof(key2), "key2.key");
    assert_int_equal(symlink(target, link_path), 0);
    assert_false(acme_ca_create(link_path, key2, "Another", 30, err, sizeof(err)));
    assert_int_equal(stat(target, &st), -1);
    assert_int_equal(stat(key2, &st), -1);
    assert_int_equal(unlink(link_path), 0);
}

static void test_create_refuses_bad_arguments(void **state)
{
    char err[256], cert[128], key[128], dir_path[128];
    struct stat st;
    char long_cn[70];

    path_in_dir(cert, sizeof(cert), "bad.pem");
    path_in_dir(key, sizeof(key), "bad.key");
    memset(long_cn, 'a', sizeof(long_cn) - 1);
    long_cn[sizeof(long_cn) - 1] = '\0';

    assert_false(acme_ca_create(cert, cert, "CA", 30, err, sizeof(err)));
    assert_false(acme_ca_create(cert, key, "", 30, err, sizeof(err)));
    assert_false(acme_ca_create(cert, key, long_cn, 30, err, sizeof(err)));
    assert_false(acme_ca_create(cert, key, "CA", 0, err, sizeof(err)));
    assert_false(acme_ca_create(cert, key, "CA", 40000, err, sizeof(err)));
    assert_false(acme_ca_create(cert, key, "\xff\xfe", 30, err, sizeof(err)));
    assert_no_openssl_error();
    /* A directory that does not exist: the key file made first is removed again. */
    path_in_dir(dir_path, sizeof(dir_path), "no-such-dir/ca.pem");
    assert_false(acme_ca_create(dir_path, key, "CA", 30, err, sizeof(err)));
    assert_non_null(strstr(err, "no-such-dir"));
    assert_no_openssl_error();
    assert_int_equal(stat(cert, &st), -1);
    assert_int_equal(stat(key, &st), -1);
}

/* -- acme_ca_load -------------------------------------------------------------------------- */

static void test_load_refuses(void **state)
{
    char err[256], cert[128], key[128], missing[128];
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    path_in_dir(cert, sizeof(cert), "load.pem");
    path_in_dir(key, sizeof(key), "load.key");
    path_in_dir(missing, sizeof(missing), "missing.pem");

    /* Not a CA. */
    X509 *leaf = make_self_signed(k, "critical,CA:FALSE", "critical,digitalSignature");
    write_pem_files(cert, leaf, key, k);
    assert_null(acme_ca_load(cert, key, err, sizeof(err)));
    assert_no_openssl_error();
    assert_non_null(strstr(err, "not a CA"));
    X509_free(leaf);

    /* No basicConstraints at all (a v3 certificate with only keyCertSign). */
    X509 *no_bc = make_self_signed(k, NULL, "critical,keyCertSign");
    write_pem_files(cert, no_bc, key, k);
    assert_null(acme_ca_load(cert, key, err, sizeof(err)));
    assert_non_null(strstr(err, "not a CA"));
    X509_free(no_bc);

    /* A CA that may not sign certificates, or says nothing about it. */
    X509 *crl_only = make_self_signed(k, "critical,CA:TRUE", "critical,cRLSign");
    write_pem_files(cert, crl_only, key, k);
    assert_null(acme_ca_load(cert, key, err, sizeof(err)));
    assert_non_null(strstr(err, "keyCertSign"));
    X509_free(crl_only);
    X509 *no_ku = make_self_signed(k, "critical,CA:TRUE", NULL);
    write_pem_files(cert, no_ku, key, k);
    assert_null(acme_ca_load(cert, key, err, sizeof(err)));
    assert_non_null(strstr(err, "keyCertSign"));
    X509_free(no_ku);

    /* The key of another certificate. */
    assert_null(acme_ca_load(g.cert_path, key, err, sizeof(err)));
    assert_no_openssl_error();
    assert_non_null(strstr(err, "is not the key"));

    /* Missing files, swapped files, a key that is not PEM. */
    assert_null(acme_ca_load(missing, g.key_path, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));
    assert_non_null(strstr(err, missing));
    assert_null(acme_ca_load(g.cert_path, missing, err, sizeof(err)));
    assert_non_null(strstr(err, missing));
    assert_null(acme_ca_load(g.key_path, g.cert_path, err, sizeof(err)));
    assert_non_null(strstr(err, "no PEM certificate"));
    assert_null(acme_ca_load(g.cert_path, g.cert_path, err, sizeof(err)));
    assert_non_null(strstr(err, "no PEM private key"));
    assert_no_openssl_error();

    /* An encrypted key is refused, without asking for a passphrase on the terminal. */
    X509 *ca = make_self_signed(k, "critical,CA:TRUE", "critical,keyCertSign");
    write_pem_files(cert, ca, key, k);
    FILE *f = fopen(key, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PKCS8PrivateKey(f, k, EVP_aes_256_cbc(), "secret", 6, NULL, NULL),
                     1);
    fclose(f);
    assert_null(acme_ca_load(cert, key, err, sizeof(err)));
    assert_non_null(strstr(err, "encrypted"));
    assert_no_openssl_error();
    X509_free(ca);
    EVP_PKEY_free(k);
}

/* A P-256 CA made elsewhere loads, and signs with SHA-256; an Ed25519 one is refused. */
static void test_load_other_ca_keys(void **state)
{
    char err[256], cert[128], key[128];
    struct acme_issued out;
    path_in_dir(cert, sizeof(cert), "p256.pem");
    path_in_dir(key, sizeof(key), "p256.key");

    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    X509 *x = make_self_signed(k, "critical,CA:TRUE", "critical,keyCertSign,cRLSign");
    write_pem_files(cert, x, key, k);
    struct acme_ca *ca = acme_ca_load(cert, key, err, sizeof(err));
    assert_non_null(ca);
    struct acme_issue_request req = request_now();
    req.not_before = time(NULL);
    assert_true(acme_ca_issue(ca, &req, &out, err, sizeof(err)));
    assert_no_openssl_error();
    const unsigned char *p = out.der;
    X509 *leaf = d2i_X509(NULL, &p, (long)out.der_len);
    assert_non_null(leaf);
    assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
    assert_int_equal(X509_verify(leaf, k), 1);
    /* This CA has no subject key identifier: the authority key identifier is computed. */
    const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(leaf);
    assert_non_null(akid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len;
    assert_int_equal(X509_pubkey_digest(x, EVP_sha1(), md, &md_len), 1);
    assert_int_equal(ASN1_STRING_length(akid), (int)md_len);
    assert_memory_equal(ASN1_STRING_get0_data(akid), md, md_len);
    X509_free(leaf);
    free(out.der);
    acme_ca_free(ca);
    X509_free(x);
    EVP_PKEY_free(k);

    k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    x = X509_new();
    /* make_self_signed signs with SHA-256, which Ed25519 refuses: sign it here. */
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 9), 1);
    assert_int_equal(X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName,
                                                MBSTRING_ASC, (const unsigned char *)"ed", -1, -1,
                                                0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    assert_int_equal(X509_set_pubkey(x, k), 1);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "CA:TRUE");
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "keyCertSign");
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, k, NULL) > 0);
    write_pem_files(cert, x, key, k);
    assert_null(acme_ca_load(cert, key, err, sizeof(err)));
    assert_non_null(strstr(err, "unsupported CA key"));
    assert_no_openssl_error();
    X509_free(x);
    EVP_PKEY_free(k);
}

/* -- acme_csr_check ------------------------------------------------------------------------ */

static void test_csr_ok(void **state)
{
    size_t len;
    uint8_t *csr = make_csr(g.device, g.device, &len);
    assert_int_equal(acme_csr_check(csr, len, g.spki, g.spki_len), ACME_CSR_OK);
    assert_no_openssl_error();
    assert_null(acme_csr_error_name(ACME_CSR_OK));
    OPENSSL_free(csr);
}

static void test_csr_key_mismatch(void **state)
{
    size_t len, other_spki_len;
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(other);
    uint8_t *csr = make_csr(other, other, &len);
    assert_int_equal(acme_csr_check(csr, len, g.spki, g.spki_len), ACME_CSR_KEY_MISMATCH);
    assert_no_openssl_error();
    assert_string_equal(acme_csr_error_name(ACME_CSR_KEY_MISMATCH), "key_mismatch");

    /* The same key, but the attested SPKI one byte shorter or with one bit changed. */
    OPENSSL_free(csr);
    csr = make_csr(g.device, g.device, &len);
    assert_int_equal(acme_csr_check(csr, len, g.spki, g.spki_len - 1), ACME_CSR_KEY_MISMATCH);
    uint8_t *flipped = malloc(g.spki_len);
    assert_non_null(flipped);
    memcpy(flipped, g.spki, g.spki_len);
    flipped[g.spki_len - 1] ^= 1;
    assert_int_equal(acme_csr_check(csr, len, flipped, g.spki_len), ACME_CSR_KEY_MISMATCH);
    assert_int_equal(acme_csr_check(csr, len, NULL, 0), ACME_CSR_KEY_MISMATCH);
    /* A P-256 key's CSR against a P-384 attestation. */
    uint8_t *other_spki = spki_of(other, &other_spki_len);
    assert_int_equal(acme_csr_check(csr, len, other_spki, other_spki_len), ACME_CSR_KEY_MISMATCH);
    assert_no_openssl_error();
    OPENSSL_free(other_spki);
    free(flipped);
    OPENSSL_free(csr);
    EVP_PKEY_free(other);
}

static void test_csr_bad_signature(void **state)
{
    size_t len;
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(other);

    /* The last byte is the last byte of the signature's s. */
    uint8_t *csr = make_csr(g.device, g.device, &len);
    csr[len - 1] ^= 0x01;
    assert_int_equal(acme_csr_check(csr, len, g.spki, g.spki_len), ACME_CSR_BAD_SIGNATURE);
    assert_no_openssl_error();
    assert_string_equal(acme_csr_error_name(ACME_CSR_BAD_SIGNATURE), "bad_signature");
    OPENSSL_free(csr);

    /* The attested key, signed by another: no proof of possession. */
    csr = make_csr(g.device, other, &len);
    assert_int_equal(acme_csr_check(csr, len, g.spki, g.spki_len), ACME_CSR_BAD_SIGNATURE);
    assert_no_openssl_error();
    OPENSSL_free(csr);
    EVP_PKEY_free(other);
}

static void test_csr_malformed(void **state)
{
    size_t len;
    uint8_t *csr = make_csr(g.device, g.device, &len);
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, csr, len);
    longer[len] = 0;

    assert_int_equal(acme_csr_check(csr, len - 1, g.spki, g.spki_len), ACME_CSR_MALFORMED);
    assert_int_equal(acme_csr_check(csr, len / 2, g.spki, g.spki_len), ACME_CSR_MALFORMED);
    assert_int_equal(acme_csr_check(longer, len + 1, g.spki, g.spki_len), ACME_CSR_MALFORMED);
    assert_int_equal(acme_csr_check(csr, 0, g.spki, g.spki_len), ACME_CSR_MALFORMED);
    assert_int_equal(acme_csr_check(NULL, 0, g.spki, g.spki_len), ACME_CSR_MALFORMED);
    assert_int_equal(acme_csr_check(g.spki, g.spki_len, g.spki, g.spki_len), ACME_CSR_MALFORMED);
    assert_int_equal(acme_csr_check((const uint8_t *)"\x30\x03\x02\x01\x00", 5, g.spki, g.spki_len),
                     ACME_CSR_MALFORMED);
    assert_int_equal(acme_csr_check(csr, ACME_CA_MAX_CSR + 1, g.spki, g.spki_len),
                     ACME_CSR_MALFORMED);
    assert_no_openssl_error();
    assert_string_equal(acme_csr_error_name(ACME_CSR_MALFORMED), "malformed");
    free(longer);
    OPENSSL_free(csr);
}

/* -- acme_ca_issue ------------------------------------------------------------------------- */

static X509 *issue(const struct acme_issue_request *req, struct acme_issued *out)
{
    char err[256] = "";
    bool ok = acme_ca_issue(g.ca, req, out, err, sizeof(err));
    if (!ok)
        fail_msg("acme_ca_issue: %s", err);
    assert_no_openssl_error();
    const unsigned char *p = out->der;
    X509 *x = d2i_X509(NULL, &p, (long)out->der_len);
    assert_non_null(x);
    assert_ptr_equal(p, out->der + out->der_len);
    return x;
}

static void assert_critical(X509 *x, int nid, int critical)
{
    int i = X509_get_ext_by_NID(x, nid, -1);
    assert_true(i >= 0);
    assert_int_equal(X509_get_ext_by_NID(x, nid, i), -1); /* only once */
    assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, i)), critical);
}

static void assert_name_entry(X509_NAME *name, int nid, const char *expected)
{
    int i = X509_NAME_get_index_by_NID(name, nid, -1);
    if (expected == NULL) {
        assert_int_equal(i, -1);
        return;
    }
    assert_true(i >= 0);
    assert_int_equal(X509_NAME_get_index_by_NID(name, nid, i), -1);
    const ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    assert_int_equal(ASN1_STRING_length(v), (int)strlen(expected));
    assert_memory_equal(ASN1_STRING_get0_data(v), expected, strlen(expected));
}

/* Verifies x against the CA alone, as a TLS client certificate, at time t. */
static int verify_client_cert(X509 *x, time_t t, int *error)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_non_null(store);
    assert_non_null(ctx);
    assert_int_equal(X509_STORE_add_cert(store, g.ca_cert), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, x, NULL), 1);
    assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT), 1);
    X509_STORE_CTX_set_time(ctx, 0, t);
    int rc = X509_verify_cert(ctx);
    *error = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return rc;
}

static void test_issue_properties(void **state)
{
    struct acme_issue_request req = request_now();
    struct acme_issued out;
    int crit = -1, verr = 0;
    X509 *x = issue(&req, &out);

    /* It chains to the CA as a TLS client certificate, within its validity only. */
    assert_int_equal(verify_client_cert(x, req.not_before, &verr), 1);
    assert_int_equal(verr, X509_V_OK);
    assert_int_equal(verify_client_cert(x, req.not_before + LIFETIME + 10, &verr), 0);
    assert_int_equal(verr, X509_V_ERR_CERT_HAS_EXPIRED);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(g.ca_cert)), 1);
    assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(g.ca_cert)), 0);

    /* Subject: O, CN = UDID, serialNumber, and nothing else. */
    X509_NAME *subject = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_entry_count(subject), 3);
    assert_name_entry(subject, NID_commonName, UDID);
    assert_name_entry(subject, NID_serialNumber, SERIAL);
    assert_name_entry(subject, NID_organizationName, ORG);

    /* The key is the attested SubjectPublicKeyInfo, byte for byte. */
    unsigned char *spki = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
    assert_int_equal(n, (int)g.spki_len);
    assert_memory_equal(spki, g.spki, g.spki_len);
    OPENSSL_free(spki);

    /* Exactly six extensions. */
    assert_int_equal(X509_get_ext_count(x), 6);

    /* SAN: one otherName, permanent-identifier { identifierValue UTF8String UDID }. */
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    assert_non_null(names);
    assert_int_equal(crit, 0);
    assert_int_equal(sk_GENERAL_NAME_num(names), 1);
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, 0);
    assert_int_equal(gn->type, GEN_OTHERNAME);
    char oid[64];
    assert_true(OBJ_obj2txt(oid, sizeof(oid), gn->d.otherName->type_id, 1) > 0);
    assert_string_equal(oid, "1.3.6.1.5.5.7.8.3");
    ASN1_TYPE *value = gn->d.otherName->value;
    assert_int_equal(value->type, V_ASN1_SEQUENCE);
    uint8_t expected[2 + 2 + sizeof(UDID) - 1] = {0x30, 2 + sizeof(UDID) - 1, 0x0c,
                                                  sizeof(UDID) - 1};
    memcpy(expected + 4, UDID, sizeof(UDID) - 1);
    assert_int_equal(ASN1_STRING_length(value->value.sequence), (int)sizeof(expected));
    assert_memory_equal(ASN1_STRING_get0_data(value->value.sequence), expected, sizeof(expected));
    GENERAL_NAMES_free(names);

    /* EKU clientAuth only; keyUsage digitalSignature only, critical; CA:FALSE, critical. */
    assert_true(X509_get_extension_flags(x) & EXFLAG_XKUSAGE);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL);
    assert_non_null(eku);
    assert_int_equal(crit, 0);
    assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
    assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
    EXTENDED_KEY_USAGE_free(eku);
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
    assert_critical(x, NID_key_usage, 1);
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(crit, 1);
    assert_false(bc->ca);
    assert_null(bc->pathlen);
    BASIC_CONSTRAINTS_free(bc);
    assert_false(X509_get_extension_flags(x) & EXFLAG_CA);
    assert_int_equal(X509_check_ca(x), 0);

    /* Key identifiers: the leaf's own, and the CA's. */
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(x);
    assert_non_null(skid);
    assert_critical(x, NID_subject_key_identifier, 0);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len;
    assert_int_equal(X509_pubkey_digest(x, EVP_sha1(), md, &md_len), 1);
    assert_int_equal(ASN1_STRING_length(skid), (int)md_len);
    assert_memory_equal(ASN1_STRING_get0_data(skid), md, md_len);
    const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);
    assert_non_null(akid);
    assert_critical(x, NID_authority_key_identifier, 0);
    assert_int_equal(ASN1_OCTET_STRING_cmp(akid, X509_get0_subject_key_id(g.ca_cert)), 0);

    /* Validity: 5 minutes back, lifetime forward; as reported. */
    assert_int_equal(asn1_time(X509_get0_notBefore(x)), req.not_before - 300);
    assert_int_equal(asn1_time(X509_get0_notAfter(x)), req.not_before + LIFETIME);
    assert_int_equal(out.not_before, req.not_before - 300);
    assert_int_equal(out.not_after, req.not_before + LIFETIME);

    /* Serial: 16 bytes in DER, positive; its hex as reported. */
    const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
    assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER);
    assert_int_equal(ASN1_STRING_length(serial), 16);
    const unsigned char *sd = ASN1_STRING_get0_data(serial);
    assert_true(sd[0] != 0 && (sd[0] & 0x80) == 0);
    char hex[33];
    hex_encode(sd, 16, hex);
    assert_string_equal(out.serial_hex, hex);
    assert_int_equal(strlen(out.serial_hex), 32);

    /* The SHA-256 is of the DER. */
    uint8_t digest[32];
    assert_int_equal(EVP_Digest(out.der, out.der_len, digest, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(out.sha256, digest, 32);

    X509_free(x);
    free(out.der);
}

static void test_issue_without_organization(void **state)
{
    struct acme_issue_request req = request_now();
    struct acme_issued out;
    req.organization = NULL;
    X509 *x = issue(&req, &out);
    X509_NAME *subject = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_entry_count(subject), 2);
    assert_name_entry(subject, NID_organizationName, NULL);
    assert_name_entry(subject, NID_commonName, UDID);
    X509_free(x);
    free(out.der);

    req.organization = "";
    x = issue(&req, &out);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 2);
    X509_free(x);
    free(out.der);
}

static void test_issue_serials_differ(void **state)
{
    struct acme_issue_request req = request_now();
    struct acme_issued a, b;
    X509 *xa = issue(&req, &a), *xb = issue(&req, &b);
    assert_string_not_equal(a.serial_hex, b.serial_hex);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(xa), X509_get0_serialNumber(xb)),
                         0);
    assert_memory_not_equal(a.sha256, b.sha256, 32);
    X509_free(xa);
    X509_free(xb);
    free(a.der);
    free(b.der);
}

/* The validity stays inside the CA's. */
static void test_issue_clamped_to_ca(void **state)
{
    struct acme_issue_request req = request_now();
    struct acme_issued out;
    time_t ca_nb = asn1_time(X509_get0_notBefore(g.ca_cert));
    time_t ca_na = asn1_time(X509_get0_notAfter(g.ca_cert));
    int verr;

    req.not_before = ca_nb + 10;
    req.lifetime_s = 365u * 86400u; /* the CA has 30 days */
    X509 *x = issue(&req, &out);
    assert_int_equal(out.not_before, ca_nb);
    assert_int_equal(out.not_after, ca_na);
    assert_int_equal(asn1_time(X509_get0_notBefore(x)), ca_nb);
    assert_int_equal(asn1_time(X509_get0_notAfter(x)), ca_na);
    assert_int_equal(verify_client_cert(x, ca_na - 1, &verr), 1);
    X509_free(x);
    free(out.der);
}

static void test_issue_refuses(void **state)
{
    struct acme_issue_request req;
    struct acme_issued out;
    char err[256];
    char long_name[66];
    memset(long_name, '1', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    uint8_t *trailing = malloc(g.spki_len + 1);
    assert_non_null(trailing);
    memcpy(trailing, g.spki, g.spki_len);
    trailing[g.spki_len] = 0;

    static const char *const cases[] = {
        "no key",         "short key",  "trailing bytes",    "no udid",
        "empty serial",   "long udid",  "long organization", "serial not printable",
        "udid not UTF-8", "lifetime 0", "before the CA",     "after the CA",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req = request_now();
        switch (i) {
        case 0:
            req.spki = NULL;
            break;
        case 1:
            req.spki_len--;
            break;
        case 2:
            req.spki = trailing;
            req.spki_len++;
            break;
        case 3:
            req.udid = NULL;
            break;
        case 4:
            req.serial_number = "";
            break;
        case 5:
            req.udid = long_name;
            break;
        case 6:
            req.organization = long_name;
            break;
        case 7:
            req.serial_number = "C02_XL0";
            break;
        case 8:
            req.udid = "\xc3\x28";
            break;
        case 9:
            req.lifetime_s = 0;
            break;
        case 10:
            req.not_before = asn1_time(X509_get0_notBefore(g.ca_cert)) - 1;
            break;
        case 11:
            req.not_before = asn1_time(X509_get0_notAfter(g.ca_cert));
            break;
        }
        err[0] = '\0';
        out.der = (uint8_t *)"not touched";
        if (acme_ca_issue(g.ca, &req, &out, err, sizeof(err)))
            fail_msg("issued despite %s", cases[i]);
        assert_no_openssl_error();
        assert_null(out.der);
        assert_true(err[0] != '\0');
    }
    free(trailing);
}

/* -- acme_ca_chain_pem --------------------------------------------------------------------- */

static void test_chain_pem(void **state)
{
    struct acme_issue_request req = request_now();
    struct acme_issued out;
    size_t len = 0;
    X509 *leaf = issue(&req, &out);

    char *chain = acme_ca_chain_pem(g.ca, out.der, out.der_len, &len);
    assert_non_null(chain);
    assert_no_openssl_error();
    assert_int_equal(strlen(chain), len);
    BIO *bio = BIO_new_mem_buf(chain, (int)len);
    X509 *first = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    X509 *second = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    X509 *third = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error(); /* reading past the last block */
    assert_non_null(first);
    assert_non_null(second);
    assert_null(third);
    assert_int_equal(X509_cmp(first, leaf), 0);
    assert_int_equal(X509_cmp(second, g.ca_cert), 0);
    /* The CA's part is acme_ca_pem(), as is. */
    assert_non_null(strstr(chain, acme_ca_pem(g.ca)));
    assert_string_equal(chain + len - strlen(acme_ca_pem(g.ca)), acme_ca_pem(g.ca));
    X509_free(first);
    X509_free(second);
    free(chain);

    /* Not one certificate: no chain. */
    assert_null(acme_ca_chain_pem(g.ca, out.der, out.der_len - 1, &len));
    assert_null(acme_ca_chain_pem(g.ca, g.spki, g.spki_len, &len));
    assert_null(acme_ca_chain_pem(g.ca, out.der, 0, &len));
    assert_no_openssl_error();

    X509_free(leaf);
    free(out.der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_makes_a_ca),
        cmocka_unit_test(test_create_refuses_to_overwrite),
        cmocka_unit_test(test_create_refuses_bad_arguments),
        cmocka_unit_test(test_load_refuses),
        cmocka_unit_test(test_load_other_ca_keys),
        cmocka_unit_test(test_csr_ok),
        cmocka_unit_test(test_csr_key_mismatch),
        cmocka_unit_test(test_csr_bad_signature),
        cmocka_unit_test(test_csr_malformed),
        cmocka_unit_test(test_issue_properties),
        cmocka_unit_test(test_issue_without_organization),
        cmocka_unit_test(test_issue_serials_differ),
        cmocka_unit_test(test_issue_clamped_to_ca),
        cmocka_unit_test(test_issue_refuses),
        cmocka_unit_test(test_chain_pem),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
