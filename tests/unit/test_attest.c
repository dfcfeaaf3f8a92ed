/* Unit tests of server/attest.c and server/attest_json.c: the Managed Device Attestation verifier.
 *
 * Apple's part is real: the root vouchd builds in (server/certs/) and a real leaf with its decoded
 * .expected.json (tests/testdata/apple/, provenance in tests/testdata/README.md). Everything that needs a chain Apple would sign comes from the stand-in PKI of
 * tests/lib/fake_apple.h; certificates its spec cannot describe (an expired sub CA with the real
 * sub CA's key, items of an exact size, leaves with extra standard extensions) are crafted here
 * with the stand-in's keys, read back through fake_apple_save().
 *
 * Most verdicts are taken twice: on a new verifier (nothing cached: full path validation) and on a
 * long-lived one whose cache already holds the stand-in sub CA (the cached-intermediate path).
 * Both must give the same verdict; a message says which path disagreed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attest.h"
#include "attest_json.h"
#include "fake_apple.h"
#include "json.h"
#include "tu_file.h"
#include "tu_text.h"

#define TESTDATA "tests/testdata/apple/" /* the tests run from the repository root */
#define REAL_LEAF_PEM TESTDATA "real-leaf-macos-TMWFWWWP67.pem"
#define REAL_LEAF_JSON TESTDATA "real-leaf-macos-TMWFWWWP67.expected.json"
#define APPLE_ROOT_PEM_FILE "server/certs/apple-enterprise-attestation-root-ca.pem"
#define APPLE_ROOT_SHA256 "ccf59ef8fcb3017d97f8b5fa6fa90e7a3f9283f76b55ac6cf6eda8b8b949f05b"
#define APPLE_ARC "1.2.840.113635.100.8."
#define TESTDATA_FILE_MAX ((size_t)1024 * 1024)

#define DAY ((time_t)86400)
#define REAL_LEAF_TIME ((time_t)1754006400) /* 2025-08-01T00:00:00Z, inside the real leaf's life */
#define NOW ((time_t)1768435200)            /* 2026-01-15T00:00:00Z: the verification time */
#define MINTED (NOW - DAY)                  /* stand-in leaves are minted the day before */
#define MINTED_RFC3339 "2026-01-14T00:00:00Z"
#define EXPIRES_RFC3339 "2026-04-15T00:00:00Z" /* MINTED + 91 days */
#define PRIVATE_OID "1.3.6.1.4.1.57264.99.1"   /* an extension nobody understands */

static const char dev_udid[] = "00008030-001A2B3C4D5E802E";
static const char dev_serial[] = "F4GXK2ZQ0D";
static const char dev_os[] = "17.5";
static const char dev_sudid[] = "D83AP";

static const struct json_limits json_limits = {1 << 20, 32, 100000};

static struct {
    struct fake_apple *pki;       /* the stand-in Apple */
    struct fake_apple *lookalike; /* same names, its own keys */
    char *root_pem, *lookalike_root_pem;
    struct attest_verifier *warm; /* long-lived: its cache holds pki's sub CA */
    X509 *root, *sub;             /* pki's, with their keys, for crafting */
    EVP_PKEY *root_key, *sub_key, *leaf_key;
    uint8_t *real_leaf;
    size_t real_leaf_len;
    uint8_t nonce[32];        /* the nonce of this request */
    uint8_t older_nonce[32];  /* one this server sent this device before */
    uint8_t other_nonce[32];  /* one this server sent another device */
    uint8_t random_nonce[32]; /* one nobody sent */
} g;

/* ---- helpers ---- */

/* A whole file of the test data, NUL-terminated; fails the test when it cannot be read. */
static uint8_t *read_file(const char *path, size_t *len)
{
    char *data = NULL;
    char err[512];

    if (tu_file_read(path, TESTDATA_FILE_MAX, &data, len, err, sizeof(err)) != TU_READ_OK)
        fail_msg("%s (the tests run from the project root)", err);
    return (uint8_t *)data;
}

static uint8_t *cert_der(X509 *cert, size_t *len)
{
    unsigned char *p = NULL;
    int n = i2d_X509(cert, &p);
    assert_true(n > 0);
    uint8_t *der = malloc((size_t)n);
    assert_non_null(der);
    memcpy(der, p, (size_t)n);
    OPENSSL_free(p);
    *len = (size_t)n;
    return der;
}

static X509 *pem_cert(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    assert_non_null(bio);
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(cert);
    return cert;
}

static size_t hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;

    assert_non_null(hex);
    assert_true(tu_hex_decode(hex, strlen(hex), out, cap, &n));
    return n;
}

static void sha256_hex(const uint8_t *data, size_t len, char out[65])
{
    uint8_t md[32];
    assert_int_equal(EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL), 1);
    tu_hex_encode(md, 32, out);
}

/* "2025-07-13T09:38:07Z" -> time_t, independent of attest_json_format_time(). */
static time_t parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    char z = 0;
    assert_int_equal(sscanf(s, "%d-%d-%dT%d:%d:%d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z),
                     7);
    assert_int_equal(z, 'Z');
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static time_t asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return timegm(&tm);
}

static struct attest_verifier *new_verifier(const char *pem)
{
    char err[256] = "";
    struct attest_verifier *v = attest_verifier_new(pem, strlen(pem), err, sizeof(err));
    if (v == NULL)
        fail_msg("attest_verifier_new: %s", err);
    return v;
}

static const char *name_or_none(const char *name)
{
    return name != NULL ? name : "(none)";
}

/* A list of items as a device sends them. */
struct items {
    const uint8_t *der[8];
    size_t len[8];
    size_t count;
};

static void items_push(struct items *it, const uint8_t *der, size_t len)
{
    assert_true(it->count < 8);
    it->der[it->count] = der;
    it->len[it->count] = len;
    it->count++;
}

static struct items items_of(const struct fake_chain *chain)
{
    struct items it = {0};
    for (size_t i = 0; i < chain->count; i++)
        items_push(&it, chain->der[i], chain->len[i]);
    return it;
}

/* What the server knows about the request. */
struct request {
    const uint8_t *nonce;
    size_t nonce_len;
    const uint8_t *older[4];
    size_t older_len[4];
    time_t older_at[4]; /* when each was asked, used when bounded */
    bool bounded;       /* pass older_at: cached answers held to their request and Apple's cache */
    bool require_fresh; /* a request asked when a new attestation is due */
    size_t older_count;
    const char *udid, *serial, *os;
    time_t at;
};

static struct request default_request(void)
{
    struct request r = {
        .nonce = g.nonce,
        .nonce_len = sizeof(g.nonce),
        .older = {g.older_nonce},
        .older_len = {sizeof(g.older_nonce)},
        .older_count = 1,
        .udid = dev_udid,
        .serial = dev_serial,
        .os = dev_os,
        .at = NOW,
    };
    return r;
}

static void run(struct attest_verifier *v, const struct items *it, const struct request *r,
                struct attest_verdict *out)
{
    struct attest_input in = {
        .certs = it->der,
        .cert_lens = it->len,
        .cert_count = it->count,
        .request_nonce = r->nonce,
        .request_nonce_len = r->nonce_len,
        .older_nonces = r->older,
        .older_nonce_lens = r->older_len,
        .older_requested_at = r->bounded ? r->older_at : NULL,
        .require_fresh = r->require_fresh,
        .older_nonce_count = r->older_count,
        .expected_udid = r->udid,
        .expected_serial = r->serial,
        .reported_os_version = r->os,
        .verify_time = r->at,
    };
    /* Garbage first: attest_verify must fill every field itself. */
    memset(out, 0xa5, sizeof(*out));
    attest_verify(v, &in, out);
}

static void assert_verdict(const struct attest_verdict *v, const char *path,
                           enum attest_status status, enum attest_freshness freshness,
                           enum attest_reason reason)
{
    if (v->status != status || v->freshness != freshness || v->reason != reason)
        fail_msg("%s: got %s/%s/%s, expected %s/%s/%s", path, attest_status_name(v->status),
                 name_or_none(attest_freshness_name(v->freshness)),
                 name_or_none(attest_reason_name(v->reason)), attest_status_name(status),
                 name_or_none(attest_freshness_name(freshness)),
                 name_or_none(attest_reason_name(reason)));
}

static bool same_properties(const struct attest_properties *a, const struct attest_properties *b)
{
#define SAME_STRING(f) (a->has_##f == b->has_##f && (!a->has_##f || strcmp(a->f, b->f) == 0))
    return SAME_STRING(serial_number) && SAME_STRING(udid) && SAME_STRING(os_version) &&
           SAME_STRING(sepos_version) && SAME_STRING(llb_version) &&
           SAME_STRING(software_update_device_id) && SAME_STRING(secure_boot) &&
           a->sip_enabled == b->sip_enabled &&
           a->third_party_kexts_allowed == b->third_party_kexts_allowed &&
           a->has_freshness == b->has_freshness && a->freshness_len == b->freshness_len &&
           memcmp(a->freshness, b->freshness, a->freshness_len) == 0;
#undef SAME_STRING
}

/* Prints the difference and returns false when the verdicts differ. */
static bool same_verdict(const struct attest_verdict *a, const struct attest_verdict *b,
                         const char *what)
{
    if (a->status != b->status || a->freshness != b->freshness || a->reason != b->reason ||
        a->leaf_parsed != b->leaf_parsed) {
        print_error("%s: %s/%s/%s (leaf_parsed %d) vs %s/%s/%s (leaf_parsed %d)\n", what,
                    attest_status_name(a->status),
                    name_or_none(attest_freshness_name(a->freshness)),
                    name_or_none(attest_reason_name(a->reason)), a->leaf_parsed,
                    attest_status_name(b->status),
                    name_or_none(attest_freshness_name(b->freshness)),
                    name_or_none(attest_reason_name(b->reason)), b->leaf_parsed);
        return false;
    }
    if (a->leaf_parsed &&
        (!same_properties(&a->properties, &b->properties) || a->not_before != b->not_before ||
         a->not_after != b->not_after || memcmp(a->leaf_sha256, b->leaf_sha256, 32) != 0)) {
        print_error("%s: same verdict, other properties, validity or leaf hash\n", what);
        return false;
    }
    return true;
}

static void assert_same_verdict(const struct attest_verdict *a, const struct attest_verdict *b,
                                const char *what)
{
    if (!same_verdict(a, b, what))
        fail_msg("%s: the verdicts differ", what);
}

/* Verifies on a new verifier (full path) and on g.warm (cached sub CA); both must give the
 * expected verdict, and the same one. out: the full path's. */
static void expect(const struct items *it, const struct request *r, enum attest_status status,
                   enum attest_freshness freshness, enum attest_reason reason,
                   struct attest_verdict *out)
{
    struct attest_verdict cached;
    struct attest_verifier *fresh = new_verifier(g.root_pem);
    run(fresh, it, r, out);
    attest_verifier_free(fresh);
    run(g.warm, it, r, &cached);
    assert_verdict(out, "new verifier (full path)", status, freshness, reason);
    assert_verdict(&cached, "verifier with the sub CA cached", status, freshness, reason);
    assert_same_verdict(out, &cached, "full path vs cached sub CA");
}

static void expect_chain(const struct fake_chain *chain, const struct request *r,
                         enum attest_status status, enum attest_freshness freshness,
                         enum attest_reason reason, struct attest_verdict *out)
{
    struct items it = items_of(chain);
    expect(&it, r, status, freshness, reason, out);
}

static void expect_default(const struct fake_chain *chain, enum attest_status status,
                           enum attest_freshness freshness, enum attest_reason reason)
{
    struct request r = default_request();
    struct attest_verdict v;
    expect_chain(chain, &r, status, freshness, reason, &v);
}

/* The enrolled device's leaf (iOS-like), with freshness nonce[0..nonce_len) (NULL: none). */
static void device_spec(struct fake_leaf_spec *spec, const uint8_t *nonce, size_t nonce_len)
{
    struct fake_apple_device dev = {
        .serial_number = dev_serial,
        .udid = dev_udid,
        .os_version = dev_os,
        .software_update_device_id = dev_sudid,
        .nonce = nonce,
        .nonce_len = nonce_len,
    };
    assert_true(fake_leaf_spec_device(spec, &dev, MINTED));
}

static void issue(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
                  struct fake_chain *chain)
{
    char err[256] = "";
    if (!fake_apple_leaf(pki, spec, chain, err, sizeof(err)))
        fail_msg("fake_apple_leaf: %s", err);
}

static void issue_device(struct fake_chain *chain, const uint8_t *nonce, size_t nonce_len)
{
    struct fake_leaf_spec spec;
    device_spec(&spec, nonce, nonce_len);
    issue(g.pki, &spec, chain);
}

/* ---- crafting what fake_leaf_spec cannot describe ---- */

static void add_conf_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static void add_raw_ext(X509 *cert, const char *oid, int critical, const void *value, size_t len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *data = ASN1_OCTET_STRING_new();
    assert_non_null(obj);
    assert_non_null(data);
    assert_int_equal(ASN1_OCTET_STRING_set(data, value, (int)len), 1);
    X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, critical, data);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(data);
    ASN1_OBJECT_free(obj);
}

static void add_pad_ext(X509 *cert, size_t pad)
{
    if (pad == 0)
        return;
    uint8_t *buf = malloc(pad);
    assert_non_null(buf);
    memset(buf, 'x', pad);
    add_raw_ext(cert, PRIVATE_OID, 0, buf, pad);
    free(buf);
}

static void set_name(X509_NAME *name, const char *cn)
{
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)cn, -1, -1, 0),
                     1);
}

enum leaf_twist {
    TWIST_NONE,
    TWIST_PAD,             /* a non-critical private extension of pad bytes */
    TWIST_AKID_OTHER,      /* an authorityKeyIdentifier naming another key */
    TWIST_DUP_KEY_USAGE,   /* a second (non-critical) keyUsage */
    TWIST_BAD_SAN,         /* a subjectAltName whose value is not DER */
    TWIST_SHA1,            /* signed with ECDSA-SHA1 */
    TWIST_RSA512,          /* an RSA-512 leaf key */
};

/* A leaf of the enrolled device issued by pki's sub CA, with one twist. */
static uint8_t *craft_leaf(enum leaf_twist twist, size_t pad, time_t not_before,
                           time_t not_after, size_t *len)
{
    X509 *c = X509_new();
    EVP_PKEY *key = g.leaf_key, *rsa = NULL;
    assert_non_null(c);
    assert_int_equal(X509_set_version(c, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set_uint64(X509_get_serialNumber(c),
                                             (uint64_t)not_before * 1000u + 7),
                     1);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(c), not_before));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(c), not_after));
    X509_NAME *name = X509_NAME_new();
    assert_non_null(name);
    set_name(name, "crafted leaf");
    assert_int_equal(X509_set_subject_name(c, name), 1);
    X509_NAME_free(name);
    assert_int_equal(X509_set_issuer_name(c, X509_get_subject_name(g.sub)), 1);
    if (twist == TWIST_RSA512) {
        rsa = EVP_RSA_gen(512);
        assert_non_null(rsa);
        key = rsa;
    }
    assert_int_equal(X509_set_pubkey(c, key), 1);
    add_conf_ext(c, g.sub, NID_basic_constraints, "critical,CA:FALSE");
    add_conf_ext(c, g.sub, NID_key_usage,
                 "critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment");
    add_raw_ext(c, APPLE_ARC "9.1", 0, dev_serial, strlen(dev_serial));
    add_raw_ext(c, APPLE_ARC "9.2", 0, dev_udid, strlen(dev_udid));
    add_raw_ext(c, APPLE_ARC "10.1", 0, dev_os, strlen(dev_os));
    add_raw_ext(c, APPLE_ARC "11.1", 0, g.nonce, sizeof(g.nonce));
    if (twist == TWIST_PAD)
        add_pad_ext(c, pad);
    if (twist == TWIST_AKID_OTHER) {
        static const uint8_t akid[] = {0x30, 0x16, 0x80, 0x14, 0x42, 0x42, 0x42, 0x42,
                                       0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                       0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};
        add_raw_ext(c, "2.5.29.35", 0, akid, sizeof(akid));
    }
    if (twist == TWIST_DUP_KEY_USAGE) {
        static const uint8_t ku[] = {0x03, 0x02, 0x07, 0x80}; /* digitalSignature */
        add_raw_ext(c, "2.5.29.15", 0, ku, sizeof(ku));
    }
    if (twist == TWIST_BAD_SAN) {
        static const uint8_t junk[] = {0x04, 0x7f, 0x00};
        add_raw_ext(c, "2.5.29.17", 0, junk, sizeof(junk));
    }
    assert_true(X509_sign(c, g.sub_key, twist == TWIST_SHA1 ? EVP_sha1() : EVP_sha384()) > 0);
    uint8_t *der = cert_der(c, len);
    X509_free(c);
    EVP_PKEY_free(rsa);
    return der;
}

/* pki's sub CA again (same name, same key, signed by pki's root) with another validity and an
 * optional private extension of pad bytes. */
static uint8_t *craft_sub(time_t not_before, time_t not_after, size_t pad, size_t *len)
{
    X509 *c = X509_new();
    assert_non_null(c);
    assert_int_equal(X509_set_version(c, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set_uint64(X509_get_serialNumber(c), 4242), 1);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(c), not_before));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(c), not_after));
    assert_int_equal(X509_set_subject_name(c, X509_get_subject_name(g.sub)), 1);
    assert_int_equal(X509_set_issuer_name(c, X509_get_subject_name(g.root)), 1);
    assert_int_equal(X509_set_pubkey(c, g.sub_key), 1);
    add_conf_ext(c, g.root, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_conf_ext(c, g.root, NID_subject_key_identifier, "hash");
    add_conf_ext(c, g.root, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_conf_ext(c, g.root, NID_authority_key_identifier, "keyid:always");
    add_pad_ext(c, pad);
    assert_true(X509_sign(c, g.root_key, EVP_sha384()) > 0);
    uint8_t *der = cert_der(c, len);
    X509_free(c);
    return der;
}

/* A crafted leaf (is_leaf) or sub CA of exactly target bytes. ECDSA signatures vary in length,
 * so this retries. */
static uint8_t *craft_exact(bool is_leaf, size_t target)
{
    size_t pad = target > 2000 ? target - 2000 : 1, len = 0;
    for (int attempt = 0; attempt < 200; attempt++) {
        uint8_t *der = is_leaf ? craft_leaf(TWIST_PAD, pad, MINTED, MINTED + 91 * DAY, &len)
                               : craft_sub(MINTED - 365 * DAY, MINTED + 365 * DAY, pad, &len);
        if (len == target)
            return der;
        free(der);
        if (len < target)
            pad += target - len > 4 ? target - len - 1 : 1;
        else
            pad -= len - target > 4 ? len - target - 1 : 1;
    }
    fail_msg("could not craft an item of %zu bytes", target);
    return NULL;
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    (void)state;
    char err[256] = "";
    g.pki = fake_apple_new(err, sizeof(err));
    g.lookalike = fake_apple_new(err, sizeof(err));
    if (g.pki == NULL || g.lookalike == NULL) {
        fprintf(stderr, "fake_apple_new: %s\n", err);
        return -1;
    }
    g.root_pem = fake_apple_root_pem(g.pki);
    g.lookalike_root_pem = fake_apple_root_pem(g.lookalike);
    if (g.root_pem == NULL || g.lookalike_root_pem == NULL)
        return -1;

    /* The stand-in's keys, for crafting. */
    char dir[] = "/tmp/test_attest.XXXXXX";
    if (mkdtemp(dir) == NULL || !fake_apple_save(g.pki, dir, err, sizeof(err))) {
        fprintf(stderr, "fake_apple_save: %s\n", err);
        return -1;
    }
    static const char *const files[] = {FAKE_APPLE_ROOT_CERT_FILE, FAKE_APPLE_ROOT_KEY_FILE,
                                        FAKE_APPLE_SUB_CERT_FILE, FAKE_APPLE_SUB_KEY_FILE};
    for (size_t i = 0; i < 4; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return -1;
        if (i == 0)
            g.root = PEM_read_X509(f, NULL, NULL, NULL);
        else if (i == 1)
            g.root_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        else if (i == 2)
            g.sub = PEM_read_X509(f, NULL, NULL, NULL);
        else
            g.sub_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        unlink(path);
    }
    rmdir(dir);
    g.leaf_key = EVP_EC_gen("P-384");
    if (g.root == NULL || g.root_key == NULL || g.sub == NULL || g.sub_key == NULL ||
        g.leaf_key == NULL)
        return -1;

    if (RAND_bytes(g.nonce, sizeof(g.nonce)) != 1 ||
        RAND_bytes(g.older_nonce, sizeof(g.older_nonce)) != 1 ||
        RAND_bytes(g.other_nonce, sizeof(g.other_nonce)) != 1 ||
        RAND_bytes(g.random_nonce, sizeof(g.random_nonce)) != 1)
        return -1;

    /* The real leaf, PEM to DER. */
    FILE *f = fopen(REAL_LEAF_PEM, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s (run from the project root)\n", REAL_LEAF_PEM);
        return -1;
    }
    X509 *real = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (real == NULL)
        return -1;
    unsigned char *p = NULL;
    int n = i2d_X509(real, &p);
    X509_free(real);
    if (n <= 0)
        return -1;
    g.real_leaf = malloc((size_t)n);
    if (g.real_leaf == NULL)
        return -1;
    memcpy(g.real_leaf, p, (size_t)n);
    g.real_leaf_len = (size_t)n;
    OPENSSL_free(p);

    /* A verifier that has seen one good answer: pki's sub CA is in its cache. */
    g.warm = attest_verifier_new(g.root_pem, strlen(g.root_pem), err, sizeof(err));
    if (g.warm == NULL)
        return -1;
    struct fake_leaf_spec spec;
    struct fake_apple_device dev = {.serial_number = dev_serial, .udid = dev_udid,
                                    .os_version = dev_os, .nonce = g.nonce,
                                    .nonce_len = sizeof(g.nonce)};
    struct fake_chain chain;
    if (!fake_leaf_spec_device(&spec, &dev, MINTED) ||
        !fake_apple_leaf(g.pki, &spec, &chain, err, sizeof(err)))
        return -1;
    const uint8_t *der[2] = {chain.der[0], chain.der[1]};
    struct attest_input in = {.certs = der, .cert_lens = chain.len, .cert_count = 2,
                              .request_nonce = g.nonce, .request_nonce_len = sizeof(g.nonce),
                              .verify_time = NOW};
    struct attest_verdict v;
    attest_verify(g.warm, &in, &v);
    fake_chain_free(&chain);
    if (v.status != ATTEST_VERIFIED) {
        fprintf(stderr, "priming the warm verifier: %s\n",
                name_or_none(attest_reason_name(v.reason)));
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    attest_verifier_free(g.warm);
    fake_apple_free(g.pki);
    fake_apple_free(g.lookalike);
    free(g.root_pem);
    free(g.lookalike_root_pem);
    X509_free(g.root);
    X509_free(g.sub);
    EVP_PKEY_free(g.root_key);
    EVP_PKEY_free(g.sub_key);
    EVP_PKEY_free(g.leaf_key);
    free(g.real_leaf);
    return 0;
}

/* ---- the real Apple leaf and root ---- */

struct ascii_prop {
    const char *suffix;
    size_t has_offset, value_offset;
};

#define ASCII_PROP(suffix, f)                                                                      \
    {suffix, offsetof(struct attest_properties, has_##f), offsetof(struct attest_properties, f)}

static const struct ascii_prop ascii_props[] = {
    ASCII_PROP("9.1", serial_number), ASCII_PROP("9.2", udid),
    ASCII_PROP("9.4", software_update_device_id), ASCII_PROP("10.1", os_version),
    ASCII_PROP("10.2", sepos_version), ASCII_PROP("10.3", llb_version),
    ASCII_PROP("13.2", secure_boot),
};

/* Every value of the .expected.json, read with json.h, against attest_read_leaf(). */
static void test_real_leaf_matches_expected_json(void **state)
{
    (void)state;
    size_t len;
    char *text = (char *)read_file(REAL_LEAF_JSON, &len);
    struct json_doc *doc = NULL;
    struct json_parse_error perr;
    assert_int_equal(json_parse(text, len, &json_limits, &doc, &perr), JSON_OK);
    const struct json_value *root = json_doc_root(doc);

    struct attest_properties p;
    time_t not_before, not_after;
    memset(&p, 0x5a, sizeof(p));
    assert_true(attest_read_leaf(g.real_leaf, g.real_leaf_len, &p, &not_before, &not_after));

    assert_int_equal(not_before, parse_rfc3339(json_object_get_string(root, "not_before")));
    assert_int_equal(not_after, parse_rfc3339(json_object_get_string(root, "not_after")));

    char hex[65];
    sha256_hex(g.real_leaf, g.real_leaf_len, hex);
    assert_string_equal(hex, json_object_get_string(root, "leaf_sha256_fingerprint"));

    const struct json_value *exts = json_object_get(root, "extensions_in_order");
    assert_int_equal(json_array_length(exts), 10);
    unsigned seen = 0;
    const char *base = (const char *)&p;
    for (size_t i = 0; i < json_array_length(exts); i++) {
        const struct json_value *e = json_array_get(exts, i);
        const char *oid = json_object_get_string(e, "oid");
        assert_non_null(oid);
        assert_int_equal(strncmp(oid, APPLE_ARC, strlen(APPLE_ARC)), 0);
        const char *suffix = oid + strlen(APPLE_ARC);
        int64_t value;
        if (strcmp(suffix, "13.1") == 0) {
            /* SIP status 0 = enabled */
            assert_true(json_get_int64(json_object_get(e, "value"), &value));
            assert_int_equal(p.sip_enabled, value == 0 ? 1 : 0);
            seen++;
            continue;
        }
        if (strcmp(suffix, "13.3") == 0) {
            /* third-party kexts 0 = not allowed */
            assert_true(json_get_int64(json_object_get(e, "value"), &value));
            assert_int_equal(p.third_party_kexts_allowed, value == 0 ? 0 : 1);
            seen++;
            continue;
        }
        if (strcmp(suffix, "11.1") == 0) {
            uint8_t nonce[64];
            size_t n = hex_decode(json_object_get_string(e, "hex"), nonce, sizeof(nonce));
            assert_true(p.has_freshness);
            assert_int_equal(p.freshness_len, n);
            assert_memory_equal(p.freshness, nonce, n);
            seen++;
            continue;
        }
        const char *ascii = json_object_get_string(e, "ascii");
        assert_non_null(ascii);
        const char *hexval = json_object_get_string(e, "hex");
        if (hexval != NULL) { /* the test data agrees with itself */
            uint8_t raw[ATTEST_MAX_VALUE];
            size_t n = hex_decode(hexval, raw, sizeof(raw));
            assert_int_equal(n, strlen(ascii));
            assert_memory_equal(raw, ascii, n);
        }
        bool found = false;
        for (size_t k = 0; k < sizeof(ascii_props) / sizeof(ascii_props[0]); k++) {
            if (strcmp(ascii_props[k].suffix, suffix) != 0)
                continue;
            found = true;
            if (!*(const bool *)(const void *)(base + ascii_props[k].has_offset))
                fail_msg("%s: not read", oid);
            assert_string_equal(base + ascii_props[k].value_offset, ascii);
        }
        if (!found)
            fail_msg("%s: not a property attest.h knows", oid);
        seen++;
    }
    assert_int_equal(seen, 10);
    json_doc_free(doc);
    free(text);
}

/* The same values, spelled out, so a misread .expected.json cannot hide a bug. */
static void test_real_leaf_values(void **state)
{
    (void)state;
    static const uint8_t freshness[32] = {
        0x9f, 0xf2, 0x19, 0xc2, 0x83, 0x13, 0x13, 0xc8, 0x19, 0x0b, 0x63, 0xe9, 0xdd, 0x8f, 0x80, 0xaa,
        0x0a, 0x4a, 0x97, 0x37, 0xa5, 0x8d, 0xaa, 0x93, 0x1d, 0xa8, 0xab, 0xde, 0x2f, 0x2d, 0x5d, 0x62};
    struct attest_properties p;
    time_t not_before, not_after;
    assert_true(attest_read_leaf(g.real_leaf, g.real_leaf_len, &p, &not_before, &not_after));
    assert_true(p.has_serial_number);
    assert_string_equal(p.serial_number, "TMWFWWWP67");
    assert_true(p.has_udid);
    assert_string_equal(p.udid, "00006030-000651690A84001C");
    assert_true(p.has_os_version);
    assert_string_equal(p.os_version, "15.5");
    assert_true(p.has_sepos_version);
    assert_string_equal(p.sepos_version, "15.5");
    assert_true(p.has_llb_version);
    assert_string_equal(p.llb_version, "15.5");
    assert_true(p.has_software_update_device_id);
    assert_string_equal(p.software_update_device_id, "J514sAP");
    assert_true(p.has_secure_boot);
    assert_string_equal(p.secure_boot, "Full Security");
    assert_int_equal(p.sip_enabled, 1);
    assert_int_equal(p.third_party_kexts_allowed, 0);
    assert_true(p.has_freshness);
    assert_int_equal(p.freshness_len, 32);
    assert_memory_equal(p.freshness, freshness, 32);
    assert_int_equal(not_before, (time_t)1752399487); /* 2025-07-13T09:38:07Z */
    assert_int_equal(not_after, (time_t)1760261887);  /* 2025-10-12T09:38:07Z */
    char t[21];
    attest_json_format_time(not_before, t);
    assert_string_equal(t, "2025-07-13T09:38:07Z");
    attest_json_format_time(not_after, t);
    assert_string_equal(t, "2025-10-12T09:38:07Z");
}

/* Its Sub CA is not public: with Apple's root alone the chain cannot verify, but the properties
 * are still read and reported. */
static void test_real_leaf_untrusted_with_apple_root(void **state)
{
    (void)state;
    struct attest_verifier *v = new_verifier(attest_apple_root_pem);
    struct items it = {0};
    items_push(&it, g.real_leaf, g.real_leaf_len);
    struct request r = {.at = REAL_LEAF_TIME};
    struct attest_verdict out, ref;
    run(v, &it, &r, &out);
    assert_verdict(&out, "real leaf alone", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    assert_true(out.leaf_parsed);
    time_t nb, na;
    assert_true(attest_read_leaf(g.real_leaf, g.real_leaf_len, &ref.properties, &nb, &na));
    assert_true(same_properties(&out.properties, &ref.properties));
    assert_string_equal(out.properties.serial_number, "TMWFWWWP67");
    assert_int_equal(out.not_before, nb);
    assert_int_equal(out.not_after, na);
    char hex[65];
    tu_hex_encode(out.leaf_sha256, 32, hex);
    assert_string_equal(hex, "6c25bfd9aa09f209892b8b4808ab44803045f5bc2e2c172f7e6c7832c38292c2");

    /* With every check the server would ask for, still the chain is what fails. */
    uint8_t freshness[32];
    memcpy(freshness, out.properties.freshness, sizeof(freshness));
    struct request full = {.nonce = freshness, .nonce_len = 32,
                           .udid = "00006030-000651690A84001C", .serial = "TMWFWWWP67",
                           .os = "15.5", .at = REAL_LEAF_TIME};
    run(v, &it, &full, &out);
    assert_verdict(&out, "real leaf, all checks", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    attest_verifier_free(v);
}

static void test_apple_root_builtin(void **state)
{
    (void)state;
    X509 *builtin = pem_cert(attest_apple_root_pem, strlen(attest_apple_root_pem));
    size_t len, file_pem_len, file_der_len;
    uint8_t *der = cert_der(builtin, &len);
    char hex[65];
    sha256_hex(der, len, hex);
    assert_string_equal(hex, APPLE_ROOT_SHA256);

    char *file_pem = (char *)read_file(APPLE_ROOT_PEM_FILE, &file_pem_len);
    X509 *file = pem_cert(file_pem, file_pem_len);
    uint8_t *file_der = cert_der(file, &file_der_len);
    assert_int_equal(len, file_der_len);
    assert_memory_equal(der, file_der, len);

    /* Exactly one certificate, valid 2022-02-16 to 2047-02-20. */
    BIO *bio = BIO_new_mem_buf(attest_apple_root_pem, (int)strlen(attest_apple_root_pem));
    X509 *first = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    X509 *second = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(first);
    assert_null(second);
    char t[21];
    attest_json_format_time(asn1_time(X509_get0_notBefore(first)), t);
    assert_memory_equal(t, "2022-02-16", 10);
    attest_json_format_time(asn1_time(X509_get0_notAfter(first)), t);
    assert_memory_equal(t, "2047-02-20", 10);
    BIO_free(bio);
    X509_free(first);
    X509_free(builtin);
    X509_free(file);
    free(der);
    free(file_der);
    free(file_pem);
}

/* ---- verdicts with the stand-in PKI ---- */

static void test_verified_fresh(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_apple_device dev = {.serial_number = dev_serial, .udid = dev_udid,
                                    .os_version = dev_os, .sepos_version = "21.5.1",
                                    .llb_version = "11881.120.1",
                                    .software_update_device_id = dev_sudid, .nonce = g.nonce,
                                    .nonce_len = sizeof(g.nonce), .macos = true};
    assert_true(fake_leaf_spec_device(&spec, &dev, MINTED));
    struct fake_chain chain;
    issue(g.pki, &spec, &chain);
    struct request r = default_request();
    struct attest_verdict v;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    assert_true(v.leaf_parsed);
    const struct attest_properties *p = &v.properties;
    assert_string_equal(p->serial_number, dev_serial);
    assert_string_equal(p->udid, dev_udid);
    assert_string_equal(p->os_version, dev_os);
    assert_string_equal(p->sepos_version, "21.5.1");
    assert_string_equal(p->llb_version, "11881.120.1");
    assert_string_equal(p->software_update_device_id, dev_sudid);
    assert_string_equal(p->secure_boot, "Full Security");
    assert_int_equal(p->sip_enabled, 1);
    assert_int_equal(p->third_party_kexts_allowed, 0);
    assert_int_equal(p->freshness_len, 32);
    assert_memory_equal(p->freshness, g.nonce, 32);
    assert_int_equal(v.not_before, MINTED);
    assert_int_equal(v.not_after, MINTED + 91 * DAY);
    uint8_t md[32];
    assert_int_equal(EVP_Digest(chain.der[0], chain.len[0], md, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(v.leaf_sha256, md, 32);

    /* Nothing to compare (offline verify): verified on the chain and the nonce alone. */
    struct request offline = {.nonce = g.nonce, .nonce_len = sizeof(g.nonce), .at = NOW};
    expect_chain(&chain, &offline, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE,
                 &v);
    fake_chain_free(&chain);
}

/* A cached answer carries a nonce asked before Apple made the leaf, and a device hands it back
 * only while it is younger than Apple's 7-day cache (with a few minutes of clock skew). */
static void test_cached_bounds(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.older_nonce, sizeof(g.older_nonce)); /* minted at MINTED */
    struct items it = items_of(&chain);
    struct request r = default_request();
    r.bounded = true;
    struct attest_verdict v;
    const struct {
        const char *what;
        time_t asked, at;
        enum attest_reason reason;
    } cases[] = {
        {"asked an hour before the leaf, a day later", MINTED - 3600, NOW, ATTEST_REASON_NONE},
        {"asked within the skew after the leaf", MINTED + 200, NOW, ATTEST_REASON_NONE},
        {"asked an hour after the leaf was made", MINTED + 3600, NOW,
         ATTEST_REASON_STALE_ATTESTATION},
        {"7 days old, within the skew", MINTED - 3600, MINTED + ATTEST_CACHE_MAX_AGE_S + 200,
         ATTEST_REASON_NONE},
        {"8 days old", MINTED - 3600, MINTED + 8 * DAY, ATTEST_REASON_STALE_ATTESTATION},
        {"88 days old", MINTED - 3600, MINTED + 88 * DAY, ATTEST_REASON_STALE_ATTESTATION},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r.older_at[0] = cases[i].asked;
        r.at = cases[i].at;
        run(g.warm, &it, &r, &v);
        bool ok = cases[i].reason == ATTEST_REASON_NONE;
        assert_verdict(&v, cases[i].what, ok ? ATTEST_VERIFIED : ATTEST_FAILED,
                       ATTEST_FRESHNESS_CACHED, cases[i].reason);
        assert_non_null(v.cached_nonce);
        assert_int_equal(v.cached_nonce_len, sizeof(g.older_nonce));
        assert_memory_equal(v.cached_nonce, g.older_nonce, sizeof(g.older_nonce));
    }

    /* The bound belongs to the nonce the leaf carries, not to the others listed. */
    r = default_request();
    r.bounded = true;
    r.older[0] = g.random_nonce;
    r.older_at[0] = MINTED + 3600; /* would be stale */
    r.older[1] = g.older_nonce;
    r.older_len[1] = sizeof(g.older_nonce);
    r.older_at[1] = MINTED - 3600;
    r.older_count = 2;
    run(g.warm, &it, &r, &v);
    assert_verdict(&v, "second of two older nonces", ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED,
                   ATTEST_REASON_NONE);

    /* Asked after an OS change, when Apple's rule lets the device make a new one: a cached
     * answer, however young, is stale; a fresh one passes. */
    r = default_request();
    r.bounded = true;
    r.older_at[0] = MINTED - 3600;
    r.require_fresh = true;
    run(g.warm, &it, &r, &v);
    assert_verdict(&v, "cached, fresh required", ATTEST_FAILED, ATTEST_FRESHNESS_CACHED,
                   ATTEST_REASON_STALE_ATTESTATION);

    /* Without the times (vouchctl verify), a cached answer is not bounded. */
    r = default_request();
    r.at = MINTED + 30 * DAY;
    run(g.warm, &it, &r, &v);
    assert_verdict(&v, "unbounded", ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE);

    /* A fresh answer carries no cached nonce. */
    fake_chain_free(&chain);
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    it = items_of(&chain);
    r = default_request();
    r.bounded = true;
    r.require_fresh = true;
    run(g.warm, &it, &r, &v);
    assert_verdict(&v, "fresh", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
    assert_null(v.cached_nonce);
    fake_chain_free(&chain);
}

static void test_verified_cached(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.older_nonce, sizeof(g.older_nonce));
    struct request r = default_request();
    struct attest_verdict v;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE, &v);
    assert_memory_equal(v.properties.freshness, g.older_nonce, 32);

    /* The older nonce among several. */
    r.older[0] = g.random_nonce;
    r.older[1] = g.other_nonce + 1; /* another length */
    r.older_len[1] = 31;
    r.older[2] = g.older_nonce;
    r.older_len[2] = 32;
    r.older_count = 3;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE, &v);

    /* No nonce sent with this request (answer from the device's cache). */
    r = default_request();
    r.nonce = NULL;
    r.nonce_len = 0;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE, &v);

    /* The nonce of this request counts as fresh even when also listed as older. */
    fake_chain_free(&chain);
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    r = default_request();
    r.older[1] = g.nonce;
    r.older_len[1] = 32;
    r.older_count = 2;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    fake_chain_free(&chain);
}

static void test_nonce_mismatch(void **state)
{
    (void)state;
    struct fake_chain chain;
    struct request r = default_request();
    struct attest_verdict v;

    issue_device(&chain, g.random_nonce, sizeof(g.random_nonce));
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN,
                 ATTEST_REASON_NONCE_MISMATCH, &v);
    assert_true(v.leaf_parsed);
    assert_string_equal(v.properties.udid, dev_udid);
    fake_chain_free(&chain);

    /* A nonce this server sent another device (it is in that device's list, not this one's). */
    issue_device(&chain, g.other_nonce, sizeof(g.other_nonce));
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH);
    fake_chain_free(&chain);

    /* Only a prefix of this request's nonce, and the nonce plus one byte. */
    issue_device(&chain, g.nonce, 16);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH);
    fake_chain_free(&chain);
    uint8_t longer[33];
    memcpy(longer, g.nonce, 32);
    longer[32] = 0;
    issue_device(&chain, longer, sizeof(longer));
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH);

    /* No nonce known at all. */
    r.nonce = NULL;
    r.nonce_len = 0;
    r.older_count = 0;
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN,
                 ATTEST_REASON_NONCE_MISMATCH, &v);
    fake_chain_free(&chain);

    /* Nonces differing only in the last bit. */
    uint8_t flipped[32];
    memcpy(flipped, g.nonce, 32);
    flipped[31] ^= 1;
    issue_device(&chain, flipped, sizeof(flipped));
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH);
    fake_chain_free(&chain);
}

static void test_nonce_missing(void **state)
{
    (void)state;
    struct fake_chain chain;
    struct attest_verdict v;
    struct request r = default_request();

    issue_device(&chain, NULL, 0); /* omitted */
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISSING,
                 &v);
    assert_false(v.properties.has_freshness);
    assert_true(v.leaf_parsed);
    fake_chain_free(&chain);

    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    fake_leaf_spec_blank(&spec, FAKE_PROP_FRESHNESS);
    issue(g.pki, &spec, &chain);
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISSING,
                 &v);
    assert_false(v.properties.has_freshness);
    /* Missing stays missing even when the server sent no nonce either. */
    r.nonce = NULL;
    r.nonce_len = 0;
    r.older_count = 0;
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISSING,
                 &v);
    fake_chain_free(&chain);
}

static void expect_udid(const char *udid, bool blank)
{
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    if (blank)
        fake_leaf_spec_blank(&spec, FAKE_PROP_UDID);
    else if (udid == NULL)
        fake_leaf_spec_omit(&spec, FAKE_PROP_UDID);
    else
        assert_true(fake_leaf_spec_set_string(&spec, FAKE_PROP_UDID, udid));
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_UDID_MISMATCH);
    fake_chain_free(&chain);
}

static void test_udid_mismatch(void **state)
{
    (void)state;
    expect_udid("00008030-001A2B3C4D5E8999", false); /* another device */
    expect_udid("00008030-001a2b3c4d5e802e", false); /* lower case */
    expect_udid("00008030-001A2B3C4D5E802", false);  /* a prefix */
    expect_udid("00008030-001A2B3C4D5E802E ", false);
    expect_udid(NULL, false); /* missing */
    expect_udid(NULL, true);  /* blank */
}

static void test_serial_mismatch(void **state)
{
    (void)state;
    static const char *const serials[] = {"C02XL0GYJGH5", "f4gxk2zq0d", NULL, ""};
    for (size_t i = 0; i < sizeof(serials) / sizeof(serials[0]); i++) {
        struct fake_leaf_spec spec;
        struct fake_chain chain;
        device_spec(&spec, g.nonce, sizeof(g.nonce));
        if (serials[i] == NULL)
            fake_leaf_spec_omit(&spec, FAKE_PROP_SERIAL_NUMBER);
        else
            assert_true(fake_leaf_spec_set_string(&spec, FAKE_PROP_SERIAL_NUMBER, serials[i]));
        issue(g.pki, &spec, &chain);
        expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH,
                       ATTEST_REASON_SERIAL_MISMATCH);
        fake_chain_free(&chain);
    }
}

static void test_os_version(void **state)
{
    (void)state;
    struct fake_chain chain;
    struct attest_verdict v;
    struct request r = default_request();
    r.os = "17.4";

    /* Fresh: the attested 17.5 contradicts the reported 17.4. */
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH,
                 ATTEST_REASON_OS_VERSION_MISMATCH, &v);
    assert_string_equal(v.properties.os_version, dev_os);
    r.os = "17.5.1";
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH,
                 ATTEST_REASON_OS_VERSION_MISMATCH, &v);
    /* Not reported: nothing to compare. */
    r.os = NULL;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    fake_chain_free(&chain);

    /* Cached: may predate an update, not a finding. */
    issue_device(&chain, g.older_nonce, sizeof(g.older_nonce));
    r.os = "17.4";
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE, &v);
    fake_chain_free(&chain);

    /* A leaf without the OS version (before iOS 17.2): undetermined, shown as null. */
    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    fake_leaf_spec_omit(&spec, FAKE_PROP_OS_VERSION);
    issue(g.pki, &spec, &chain);
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    assert_false(v.properties.has_os_version);
    fake_chain_free(&chain);
}

/* ---- untrusted chains ---- */

static void test_untrusted_lookalike_root(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    struct attest_verdict v;
    struct request r = default_request();
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    issue(g.lookalike, &spec, &chain); /* [lookalike leaf, lookalike sub CA] */
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN,
                 &v);
    /* Properties are still read for the record. */
    assert_true(v.leaf_parsed);
    assert_string_equal(v.properties.udid, dev_udid);
    assert_string_equal(v.properties.serial_number, dev_serial);
    fake_chain_free(&chain);

    /* With the look-alike's root appended as a third item. */
    issue(g.lookalike, &spec, &chain);
    uint8_t *root_der;
    size_t root_len;
    assert_true(fake_apple_root_der(g.lookalike, &root_der, &root_len));
    struct items it = items_of(&chain);
    items_push(&it, root_der, root_len);
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    free(root_der);
    fake_chain_free(&chain);
}

static void test_untrusted_leaf_validity(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = NOW - 100 * DAY; /* expired 9 days ago */
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = NOW + DAY; /* not yet valid */
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = NOW - 2 * DAY;
    spec.not_after = NOW - 1; /* expired a second ago */
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = NOW + 1; /* valid a second from now */
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);
}

static void test_untrusted_sub_ca_validity(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    size_t len;

    /* pki's sub CA re-issued with the same name and key but expired in 2021: only its validity
     * is wrong (the leaf's signature, the root and the leaf's validity are good). */
    uint8_t *expired = craft_sub((time_t)1577836800, (time_t)1609459200, 0, &len);
    struct items it = {0};
    struct request r = default_request();
    struct attest_verdict v;
    items_push(&it, chain.der[0], chain.len[0]);
    items_push(&it, expired, len);
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    free(expired);

    /* ... and not yet valid (from 2027). */
    uint8_t *future = craft_sub((time_t)1798761600, (time_t)1893456000, 0, &len);
    it.der[1] = future;
    it.len[1] = len;
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    free(future);

    /* ... and valid: the crafting itself is sound. */
    uint8_t *valid = craft_sub(NOW - 365 * DAY, NOW + 365 * DAY, 0, &len);
    it.der[1] = valid;
    it.len[1] = len;
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    free(valid);
    fake_chain_free(&chain);

    /* A whole hierarchy that expired in 2020 (root and sub CA), trusted by its own verifier. */
    char err[256] = "";
    struct fake_apple *old = fake_apple_new_valid((time_t)1420070400, (time_t)1577836800, err,
                                                  sizeof(err));
    if (old == NULL)
        fail_msg("fake_apple_new_valid: %s", err);
    char *old_pem = fake_apple_root_pem(old);
    struct attest_verifier *ov = new_verifier(old_pem);
    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    issue(old, &spec, &chain);
    it = items_of(&chain);
    run(ov, &it, &r, &v);
    assert_verdict(&v, "expired hierarchy", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    /* ... which does verify at a time inside its life. */
    r.at = (time_t)1500000000;
    spec.not_before = r.at - DAY;
    spec.not_after = NOW + 30 * DAY; /* outlives its hierarchy */
    fake_chain_free(&chain);
    issue(old, &spec, &chain);
    it = items_of(&chain);
    run(ov, &it, &r, &v);
    assert_verdict(&v, "expired hierarchy in its time", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH,
                   ATTEST_REASON_NONE);
    /* The cache remembers the sub CA with its window: later, it is refused again. */
    r.at = NOW;
    run(ov, &it, &r, &v);
    assert_verdict(&v, "expired hierarchy, sub CA cached", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    attest_verifier_free(ov);
    free(old_pem);
    fake_chain_free(&chain);
    fake_apple_free(old);
}

/* Apple's leaves are always issued by the Sub CA; one signed by the root directly is refused
 * (the brief's rule). */
static void test_untrusted_leaf_signed_by_root(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.issuer = FAKE_ISSUER_ROOT;
    issue(g.pki, &spec, &chain); /* [leaf by root, sub CA] */
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    struct items it = {0};
    struct request r = default_request();
    struct attest_verdict v;
    items_push(&it, chain.der[0], chain.len[0]); /* alone */
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    fake_chain_free(&chain);
}

static void test_untrusted_leaf_alone(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    struct items it = {0};
    struct request r = default_request();
    struct attest_verdict v;
    items_push(&it, chain.der[0], chain.len[0]);
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN, &v);
    assert_true(v.leaf_parsed);
    /* The sub CA sent twice is fine; sent first, it is not a leaf of this device. */
    items_push(&it, chain.der[1], chain.len[1]);
    items_push(&it, chain.der[1], chain.len[1]);
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    struct items reversed = {0};
    items_push(&reversed, chain.der[1], chain.len[1]);
    items_push(&reversed, chain.der[0], chain.len[0]);
    /* The sub CA as the "leaf" hangs straight under the root: not Apple's shape. */
    expect(&reversed, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN,
           &v);
    fake_chain_free(&chain);
}

static void test_untrusted_foreign_sub_ca(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    /* Our leaf (signed by pki's sub CA) with the look-alike's sub CA. */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.signer = g.pki;
    issue(g.lookalike, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    /* The look-alike's leaf with our (trusted, cached) sub CA. */
    spec.signer = g.lookalike;
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);
}

/* A verifier caches pki's sub CA on a good answer; leaves from the look-alike hierarchy must
 * still be refused afterwards, whatever intermediate they come with. */
static void test_cache_refuses_lookalike_leaf(void **state)
{
    (void)state;
    struct attest_verifier *v = new_verifier(g.root_pem);
    struct request r = default_request();
    struct attest_verdict out;
    struct fake_chain good, evil_ours, evil_theirs;
    struct fake_leaf_spec spec;
    issue_device(&good, g.nonce, sizeof(g.nonce));
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.signer = g.lookalike;
    issue(g.pki, &spec, &evil_ours);
    issue(g.lookalike, &spec, &evil_theirs);
    struct items it_good = items_of(&good), it_ours = items_of(&evil_ours),
                 it_theirs = items_of(&evil_theirs);
    for (int round = 0; round < 3; round++) {
        run(v, &it_good, &r, &out);
        assert_verdict(&out, "good", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
        run(v, &it_ours, &r, &out);
        assert_verdict(&out, "look-alike leaf, our cached sub CA", ATTEST_FAILED,
                       ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
        run(v, &it_theirs, &r, &out);
        assert_verdict(&out, "look-alike leaf and sub CA", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                       ATTEST_REASON_UNTRUSTED_CHAIN);
    }
    attest_verifier_free(v);
    fake_chain_free(&good);
    fake_chain_free(&evil_ours);
    fake_chain_free(&evil_theirs);
}

/* ---- malformed answers ---- */

/* leaf_bad: the leaf itself is what is malformed (then nothing may be read from it); otherwise
 * whether the leaf's properties are kept is the verifier's choice. */
static void expect_malformed(const struct items *it, bool leaf_bad)
{
    struct request r = default_request();
    struct attest_verdict v;
    expect(it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_MALFORMED, &v);
    if (leaf_bad) {
        assert_false(v.leaf_parsed);
        assert_int_equal(v.properties.sip_enabled, -1);
        assert_int_equal(v.properties.third_party_kexts_allowed, -1);
        assert_false(v.properties.has_udid);
    }
}

static void test_malformed_item_counts(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    struct items it = {0};
    expect_malformed(&it, true); /* 0 items */
    it = items_of(&chain);
    items_push(&it, chain.der[1], chain.len[1]);
    items_push(&it, chain.der[1], chain.len[1]);
    struct request r = default_request();
    struct attest_verdict v;
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v); /* 4 */
    items_push(&it, chain.der[1], chain.len[1]);
    expect_malformed(&it, false); /* 5 items */
    fake_chain_free(&chain);
}

static void test_malformed_items(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    static const uint8_t garbage[] = "this is not a certificate, but it is long enough to look";
    struct items it;

    /* An item of 0 bytes, as the leaf and as the intermediate. */
    it = items_of(&chain);
    it.len[0] = 0;
    expect_malformed(&it, true);
    it = items_of(&chain);
    it.len[1] = 0;
    expect_malformed(&it, false);

    /* Garbage, as the leaf and as the intermediate. */
    it = items_of(&chain);
    it.der[0] = garbage;
    it.len[0] = sizeof(garbage);
    expect_malformed(&it, true);
    it = items_of(&chain);
    it.der[1] = garbage;
    it.len[1] = sizeof(garbage);
    expect_malformed(&it, false);
    it = items_of(&chain);
    items_push(&it, garbage, sizeof(garbage));
    expect_malformed(&it, false);

    /* DER followed by trailing bytes. */
    for (size_t which = 0; which < 2; which++) {
        uint8_t *padded = malloc(chain.len[which] + 1);
        assert_non_null(padded);
        memcpy(padded, chain.der[which], chain.len[which]);
        padded[chain.len[which]] = 0;
        it = items_of(&chain);
        it.der[which] = padded;
        it.len[which] = chain.len[which] + 1;
        expect_malformed(&it, which == 0);
        /* Truncated by one byte. */
        it.len[which] = chain.len[which] - 1;
        expect_malformed(&it, which == 0);
        /* Two certificates in one item. */
        uint8_t *two = malloc(chain.len[0] + chain.len[1]);
        assert_non_null(two);
        memcpy(two, chain.der[which], chain.len[which]);
        memcpy(two + chain.len[which], chain.der[1 - which], chain.len[1 - which]);
        it = items_of(&chain);
        it.der[which] = two;
        it.len[which] = chain.len[0] + chain.len[1];
        expect_malformed(&it, which == 0);
        free(two);
        free(padded);
    }

    /* PEM is not DER. */
    BIO *bio = BIO_new(BIO_s_mem());
    const unsigned char *p = chain.der[0];
    X509 *leaf = d2i_X509(NULL, &p, (long)chain.len[0]);
    assert_non_null(leaf);
    assert_int_equal(PEM_write_bio_X509(bio, leaf), 1);
    char *pem;
    long pem_len = BIO_get_mem_data(bio, &pem);
    it = items_of(&chain);
    it.der[0] = (const uint8_t *)pem;
    it.len[0] = (size_t)pem_len;
    expect_malformed(&it, true);
    BIO_free(bio);
    X509_free(leaf);
    fake_chain_free(&chain);
}

/* ATTEST_MAX_CERT_BYTES (16 KiB) is allowed, one byte more is not, for both items. */
static void test_malformed_size_limit(void **state)
{
    (void)state;
    struct request r = default_request();
    struct attest_verdict v;
    struct items it;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));

    uint8_t *leaf = craft_exact(true, ATTEST_MAX_CERT_BYTES);
    it = items_of(&chain);
    it.der[0] = leaf;
    it.len[0] = ATTEST_MAX_CERT_BYTES;
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    free(leaf);
    leaf = craft_exact(true, ATTEST_MAX_CERT_BYTES + 1);
    it.der[0] = leaf;
    it.len[0] = ATTEST_MAX_CERT_BYTES + 1;
    expect_malformed(&it, true);
    struct attest_properties props;
    time_t nb, na;
    assert_false(attest_read_leaf(leaf, ATTEST_MAX_CERT_BYTES + 1, &props, &nb, &na));
    free(leaf);

    uint8_t *sub = craft_exact(false, ATTEST_MAX_CERT_BYTES);
    it = items_of(&chain);
    it.der[1] = sub;
    it.len[1] = ATTEST_MAX_CERT_BYTES;
    expect(&it, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    free(sub);
    sub = craft_exact(false, ATTEST_MAX_CERT_BYTES + 1);
    it.der[1] = sub;
    it.len[1] = ATTEST_MAX_CERT_BYTES + 1;
    expect_malformed(&it, false);
    free(sub);
    fake_chain_free(&chain);
}

/* A leaf built from spec must be refused as malformed, by attest_read_leaf too. */
static void expect_malformed_spec(const struct fake_leaf_spec *spec, const char *what)
{
    struct fake_chain chain;
    issue(g.pki, spec, &chain);
    struct items it = items_of(&chain);
    struct request r = default_request();
    struct attest_verdict v;
    struct attest_verifier *fresh = new_verifier(g.root_pem);
    run(fresh, &it, &r, &v);
    attest_verifier_free(fresh);
    if (v.status != ATTEST_FAILED || v.reason != ATTEST_REASON_MALFORMED)
        fail_msg("%s: got %s/%s, expected failed/malformed", what, attest_status_name(v.status),
                 name_or_none(attest_reason_name(v.reason)));
    assert_false(v.leaf_parsed);
    assert_int_equal(v.freshness, ATTEST_FRESHNESS_NONE);
    struct attest_verdict cached;
    run(g.warm, &it, &r, &cached);
    assert_same_verdict(&v, &cached, what);
    struct attest_properties props;
    time_t nb, na;
    if (attest_read_leaf(chain.der[0], chain.len[0], &props, &nb, &na))
        fail_msg("%s: attest_read_leaf accepted it", what);
    fake_chain_free(&chain);
}

/* A leaf built from spec must verify (fresh): the boundary next to a malformed case. */
static void expect_verified_spec(const struct fake_leaf_spec *spec, struct attest_verdict *v)
{
    struct fake_chain chain;
    issue(g.pki, spec, &chain);
    struct request r = default_request();
    r.udid = NULL;
    r.serial = NULL;
    r.os = NULL;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, v);
    fake_chain_free(&chain);
}

static void test_malformed_extensions(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct attest_verdict v;
    char what[128];

    /* Every Apple extension, duplicated (same value twice). */
    for (int prop = 0; prop < FAKE_PROP_COUNT; prop++) {
        struct fake_apple_device dev = {.serial_number = dev_serial, .udid = dev_udid,
                                        .os_version = dev_os, .software_update_device_id = dev_sudid,
                                        .nonce = g.nonce, .nonce_len = 32, .macos = true};
        assert_true(fake_leaf_spec_device(&spec, &dev, MINTED));
        spec.props[prop].duplicate = true;
        snprintf(what, sizeof(what), "duplicated %s", fake_apple_prop_name(prop));
        expect_malformed_spec(&spec, what);
    }

    /* .13.1 and .13.3 must be DER INTEGERs. */
    static const struct {
        const char *what;
        uint8_t bytes[8];
        size_t len;
    } bad_ints[] = {
        {"ASCII 0", {'0'}, 1},
        {"a bare 0x00", {0x00}, 1},
        {"a BOOLEAN", {0x01, 0x01, 0x00}, 3},
        {"an OCTET STRING", {0x04, 0x01, 0x00}, 3},
        {"an INTEGER with a trailing byte", {0x02, 0x01, 0x00, 0x00}, 4},
        {"a truncated INTEGER", {0x02, 0x02, 0x00}, 3},
        {"a negative INTEGER", {0x02, 0x01, 0xff}, 3},
        {"an INTEGER with padding", {0x02, 0x02, 0x00, 0x01}, 4},
        {"an INTEGER of length 0", {0x02, 0x00}, 2},
    };
    for (size_t i = 0; i < sizeof(bad_ints) / sizeof(bad_ints[0]); i++) {
        for (int prop = FAKE_PROP_SIP; prop <= FAKE_PROP_KEXTS; prop++) {
            device_spec(&spec, g.nonce, sizeof(g.nonce));
            assert_true(fake_leaf_spec_set(&spec, prop, bad_ints[i].bytes, bad_ints[i].len));
            snprintf(what, sizeof(what), "%s as %s", fake_apple_prop_name(prop), bad_ints[i].what);
            expect_malformed_spec(&spec, what);
        }
    }
    /* Good INTEGERs: 0 (safe state), 1, and one needing a leading zero. */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    fake_leaf_spec_set_int(&spec, FAKE_PROP_SIP, 1);
    fake_leaf_spec_set_int(&spec, FAKE_PROP_KEXTS, 1);
    expect_verified_spec(&spec, &v);
    assert_int_equal(v.properties.sip_enabled, 0);
    assert_int_equal(v.properties.third_party_kexts_allowed, 1);
    fake_leaf_spec_set_int(&spec, FAKE_PROP_SIP, 0x80);
    fake_leaf_spec_set_int(&spec, FAKE_PROP_KEXTS, 0);
    expect_verified_spec(&spec, &v);
    assert_int_equal(v.properties.sip_enabled, 0);
    assert_int_equal(v.properties.third_party_kexts_allowed, 0);

    /* ASCII properties: printable ASCII only. */
    static const enum fake_apple_prop ascii[] = {
        FAKE_PROP_SEPOS_VERSION, FAKE_PROP_LLB_VERSION, FAKE_PROP_OS_VERSION,
        FAKE_PROP_SOFTWARE_UPDATE_DEVICE_ID, FAKE_PROP_SECURE_BOOT, FAKE_PROP_SERIAL_NUMBER,
        FAKE_PROP_UDID};
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } bad_ascii[] = {
        {"UTF-8 e-acute", "17.5\xc3\xa9", 6},
        {"a Latin-1 byte", "17\xb5", 3},
        {"a NUL byte", "17\0" "5", 4},
        {"a newline", "17.5\n", 5},
        {"DEL", "17.5\x7f", 5},
    };
    for (size_t k = 0; k < sizeof(ascii) / sizeof(ascii[0]); k++) {
        for (size_t i = 0; i < sizeof(bad_ascii) / sizeof(bad_ascii[0]); i++) {
            device_spec(&spec, g.nonce, sizeof(g.nonce));
            assert_true(fake_leaf_spec_set(&spec, ascii[k], bad_ascii[i].bytes, bad_ascii[i].len));
            snprintf(what, sizeof(what), "%s with %s", fake_apple_prop_name(ascii[k]),
                     bad_ascii[i].what);
            expect_malformed_spec(&spec, what);
        }
        /* Longer than ATTEST_MAX_VALUE: refused, not truncated; exactly the maximum: kept. */
        char longest[ATTEST_MAX_VALUE + 2];
        memset(longest, 'A', sizeof(longest));
        device_spec(&spec, g.nonce, sizeof(g.nonce));
        assert_true(fake_leaf_spec_set(&spec, ascii[k], longest, ATTEST_MAX_VALUE + 1));
        snprintf(what, sizeof(what), "%s of %d bytes", fake_apple_prop_name(ascii[k]),
                 ATTEST_MAX_VALUE + 1);
        expect_malformed_spec(&spec, what);
        assert_true(fake_leaf_spec_set(&spec, ascii[k], longest, ATTEST_MAX_VALUE));
        expect_verified_spec(&spec, &v);
    }
    assert_int_equal(strlen(v.properties.udid), ATTEST_MAX_VALUE);

    /* Freshness longer than ATTEST_MAX_NONCE_BYTES. */
    uint8_t nonce65[ATTEST_MAX_NONCE_BYTES + 1];
    assert_int_equal(RAND_bytes(nonce65, sizeof(nonce65)), 1);
    device_spec(&spec, nonce65, sizeof(nonce65));
    expect_malformed_spec(&spec, "freshness of 65 bytes");
    /* Exactly 64 bytes: read and matched against a 64-byte request nonce. */
    device_spec(&spec, nonce65, ATTEST_MAX_NONCE_BYTES);
    struct fake_chain chain;
    issue(g.pki, &spec, &chain);
    struct request r = default_request();
    r.nonce = nonce65;
    r.nonce_len = ATTEST_MAX_NONCE_BYTES;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    assert_int_equal(v.properties.freshness_len, ATTEST_MAX_NONCE_BYTES);
    /* A request nonce longer than 64 bytes never matches. */
    r.nonce_len = ATTEST_MAX_NONCE_BYTES + 1;
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN,
                 ATTEST_REASON_NONCE_MISMATCH, &v);
    fake_chain_free(&chain);

    /* A one-byte freshness code that happens to look like DER is still raw bytes. */
    static const uint8_t der_like[] = {0x02, 0x01, 0x00};
    device_spec(&spec, der_like, sizeof(der_like));
    issue(g.pki, &spec, &chain);
    r = default_request();
    r.nonce = der_like;
    r.nonce_len = sizeof(der_like);
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    assert_int_equal(v.properties.freshness_len, 3);
    fake_chain_free(&chain);
}

/* ---- null properties ---- */

static void assert_all_null(const struct attest_properties *p)
{
    assert_false(p->has_serial_number);
    assert_false(p->has_udid);
    assert_false(p->has_os_version);
    assert_false(p->has_sepos_version);
    assert_false(p->has_llb_version);
    assert_false(p->has_software_update_device_id);
    assert_false(p->has_secure_boot);
    assert_int_equal(p->sip_enabled, -1);
    assert_int_equal(p->third_party_kexts_allowed, -1);
}

static void test_blank_and_omitted_properties(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    struct attest_properties p;
    time_t nb, na;

    for (int mode = 0; mode < 3; mode++) {
        /* 0: every property omitted; 1: every one blank; 2: the ASCII ones all spaces */
        fake_leaf_spec_init(&spec, MINTED);
        for (int prop = 0; prop < FAKE_PROP_COUNT; prop++) {
            if (prop == FAKE_PROP_FRESHNESS)
                continue;
            if (mode == 1 || (mode == 2 && (prop == FAKE_PROP_SIP || prop == FAKE_PROP_KEXTS)))
                fake_leaf_spec_blank(&spec, prop);
            else if (mode == 2)
                assert_true(fake_leaf_spec_set_string(&spec, prop, "   "));
        }
        assert_true(fake_leaf_spec_set(&spec, FAKE_PROP_FRESHNESS, g.nonce, sizeof(g.nonce)));
        issue(g.pki, &spec, &chain);
        memset(&p, 0x5a, sizeof(p));
        assert_true(attest_read_leaf(chain.der[0], chain.len[0], &p, &nb, &na));
        assert_all_null(&p);
        assert_true(p.has_freshness);

        /* Verified when nothing is compared, the properties null. */
        struct request r = {.nonce = g.nonce, .nonce_len = sizeof(g.nonce), .at = NOW};
        struct attest_verdict v;
        expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
        assert_all_null(&v.properties);
        /* Null is never "good": a UDID or serial to compare fails. */
        r.udid = dev_udid;
        expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH,
                     ATTEST_REASON_UDID_MISMATCH, &v);
        r.udid = NULL;
        r.serial = dev_serial;
        expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH,
                     ATTEST_REASON_SERIAL_MISMATCH, &v);
        fake_chain_free(&chain);
    }

    /* One at a time, the rest present. */
    for (int prop = 0; prop < FAKE_PROP_COUNT; prop++) {
        if (prop == FAKE_PROP_FRESHNESS)
            continue;
        struct fake_apple_device dev = {.serial_number = dev_serial, .udid = dev_udid,
                                        .os_version = dev_os, .software_update_device_id = dev_sudid,
                                        .nonce = g.nonce, .nonce_len = 32, .macos = true};
        assert_true(fake_leaf_spec_device(&spec, &dev, MINTED));
        fake_leaf_spec_blank(&spec, prop);
        issue(g.pki, &spec, &chain);
        assert_true(attest_read_leaf(chain.der[0], chain.len[0], &p, &nb, &na));
        const bool has[] = {
            [FAKE_PROP_SEPOS_VERSION] = p.has_sepos_version,
            [FAKE_PROP_LLB_VERSION] = p.has_llb_version,
            [FAKE_PROP_OS_VERSION] = p.has_os_version,
            [FAKE_PROP_SOFTWARE_UPDATE_DEVICE_ID] = p.has_software_update_device_id,
            [FAKE_PROP_SECURE_BOOT] = p.has_secure_boot,
            [FAKE_PROP_SIP] = p.sip_enabled >= 0,
            [FAKE_PROP_KEXTS] = p.third_party_kexts_allowed >= 0,
            [FAKE_PROP_SERIAL_NUMBER] = p.has_serial_number,
            [FAKE_PROP_UDID] = p.has_udid,
        };
        for (int other = 0; other < FAKE_PROP_FRESHNESS; other++) {
            if (has[other] != (other != prop))
                fail_msg("%s blank: %s has %d", fake_apple_prop_name(prop),
                         fake_apple_prop_name(other), has[other]);
        }
        fake_chain_free(&chain);
    }
}

/* ---- critical extensions and trust anchors ---- */

static void test_unknown_critical_extension(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    static const uint8_t value[] = {0x05, 0x00};

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    assert_true(fake_leaf_spec_add_extra(&spec, PRIVATE_OID, true, value, sizeof(value)));
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    /* An Apple extension marked critical (Apple's never are; nothing in path validation
     * understands it). */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.props[FAKE_PROP_OS_VERSION].critical = true;
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    /* An unknown Apple OID, critical. */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    assert_true(fake_leaf_spec_add_extra(&spec, APPLE_ARC "9.3", true, "x", 1));
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    /* The same, non-critical: ignored. */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    assert_true(fake_leaf_spec_add_extra(&spec, PRIVATE_OID, false, value, sizeof(value)));
    assert_true(fake_leaf_spec_add_extra(&spec, APPLE_ARC "9.3", false, "x", 1));
    assert_true(fake_leaf_spec_add_extra(&spec, APPLE_ARC "9.1.1", false, "x", 1));
    assert_true(fake_leaf_spec_add_extra(&spec, APPLE_ARC "200.1", false, "x", 1));
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
    fake_chain_free(&chain);
}

static void test_only_configured_roots(void **state)
{
    (void)state;
    struct fake_chain chain;
    struct request r = default_request();
    struct attest_verdict v;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    struct items it = items_of(&chain);

    /* The Apple verifier does not take the stand-in's chain. */
    struct attest_verifier *apple = new_verifier(attest_apple_root_pem);
    run(apple, &it, &r, &v);
    assert_verdict(&v, "stand-in chain, Apple root", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    /* Not even with the stand-in root sent along. */
    uint8_t *root_der;
    size_t root_len;
    assert_true(fake_apple_root_der(g.pki, &root_der, &root_len));
    struct items with_root = it;
    items_push(&with_root, root_der, root_len);
    run(apple, &with_root, &r, &v);
    assert_verdict(&v, "stand-in chain + its root, Apple root", ATTEST_FAILED,
                   ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);

    /* The stand-in verifier does not take Apple's leaf, with or without Apple's root. */
    struct items real = {0};
    items_push(&real, g.real_leaf, g.real_leaf_len);
    struct request rr = {.at = REAL_LEAF_TIME};
    struct attest_verifier *stand_in = new_verifier(g.root_pem);
    run(stand_in, &real, &rr, &v);
    assert_verdict(&v, "Apple leaf, stand-in root", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    X509 *apple_root = pem_cert(attest_apple_root_pem, strlen(attest_apple_root_pem));
    size_t apple_root_len;
    uint8_t *apple_root_der = cert_der(apple_root, &apple_root_len);
    items_push(&real, apple_root_der, apple_root_len);
    run(stand_in, &real, &rr, &v);
    assert_verdict(&v, "Apple leaf + Apple root, stand-in root", ATTEST_FAILED,
                   ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    /* Nor the stand-in's chain with Apple's root added. */
    with_root = it;
    items_push(&with_root, apple_root_der, apple_root_len);
    run(stand_in, &with_root, &r, &v);
    assert_verdict(&v, "stand-in chain + Apple root, stand-in root", ATTEST_VERIFIED,
                   ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);

    /* The look-alike's verifier does not take ours. */
    struct attest_verifier *lookalike = new_verifier(g.lookalike_root_pem);
    run(lookalike, &it, &r, &v);
    assert_verdict(&v, "stand-in chain, look-alike root", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);

    /* Both roots configured: both hierarchies' chains verify. */
    size_t both_len = strlen(g.lookalike_root_pem) + strlen(g.root_pem) + 1;
    char *both = malloc(both_len);
    assert_non_null(both);
    snprintf(both, both_len, "%s%s", g.lookalike_root_pem, g.root_pem);
    struct attest_verifier *two = new_verifier(both);
    struct fake_leaf_spec spec;
    struct fake_chain theirs;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    issue(g.lookalike, &spec, &theirs);
    struct items it_theirs = items_of(&theirs);
    for (int round = 0; round < 2; round++) {
        run(two, &it, &r, &v);
        assert_verdict(&v, "ours, two roots", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH,
                       ATTEST_REASON_NONE);
        run(two, &it_theirs, &r, &v);
        assert_verdict(&v, "theirs, two roots", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH,
                       ATTEST_REASON_NONE);
    }

    /* Bad configurations. */
    char err[256] = "";
    assert_null(attest_verifier_new("", 0, err, sizeof(err)));
    assert_true(err[0] != '\0');
    err[0] = '\0';
    assert_null(attest_verifier_new("not a PEM", 9, err, sizeof(err)));
    assert_true(err[0] != '\0');

    attest_verifier_free(apple);
    attest_verifier_free(stand_in);
    attest_verifier_free(lookalike);
    attest_verifier_free(two);
    attest_verifier_free(NULL);
    free(both);
    free(root_der);
    free(apple_root_der);
    X509_free(apple_root);
    fake_chain_free(&theirs);
    fake_chain_free(&chain);
}

/* ---- the intermediate cache ---- */

enum variant {
    V_GOOD, V_CACHED, V_LOOKALIKE_SIGNER, V_EXPIRED, V_UNKNOWN_CRITICAL, V_WRONG_NONCE,
    V_OTHER_UDID, V_LOOKALIKE_CHAIN, V_NOT_YET_VALID, V_LEAF_BY_ROOT, V_COUNT
};

static void variant_chain(enum variant variant, struct fake_chain *chain)
{
    struct fake_leaf_spec spec;
    static const uint8_t null_value[] = {0x05, 0x00};
    device_spec(&spec, variant == V_CACHED        ? g.older_nonce
                       : variant == V_WRONG_NONCE ? g.random_nonce
                                                  : g.nonce,
                32);
    const struct fake_apple *issuer = g.pki;
    switch (variant) {
    case V_LOOKALIKE_SIGNER:
        spec.signer = g.lookalike;
        break;
    case V_EXPIRED:
        spec.not_before = NOW - 92 * DAY;
        break;
    case V_UNKNOWN_CRITICAL:
        assert_true(fake_leaf_spec_add_extra(&spec, PRIVATE_OID, true, null_value, 2));
        break;
    case V_OTHER_UDID:
        assert_true(fake_leaf_spec_set_string(&spec, FAKE_PROP_UDID, "00008030-0000000000000000"));
        break;
    case V_LOOKALIKE_CHAIN:
        issuer = g.lookalike;
        break;
    case V_NOT_YET_VALID:
        spec.not_before = NOW + 3600;
        break;
    case V_LEAF_BY_ROOT:
        spec.issuer = FAKE_ISSUER_ROOT;
        break;
    default:
        break;
    }
    issue(issuer, &spec, chain);
}

/* 50 leaves of every kind, twice, through one verifier; each against a new verifier. */
static void test_cache_matches_full_path(void **state)
{
    (void)state;
    enum { N = 50 };
    struct fake_chain chains[N];
    struct attest_verdict full[N];
    struct request r = default_request();
    struct attest_verifier *shared = new_verifier(g.root_pem);
    for (size_t i = 0; i < N; i++) {
        variant_chain((enum variant)(i % V_COUNT), &chains[i]);
        struct items it = items_of(&chains[i]);
        struct attest_verifier *fresh = new_verifier(g.root_pem);
        run(fresh, &it, &r, &full[i]);
        attest_verifier_free(fresh);
    }
    unsigned verified = 0, differ = 0;
    char what[96];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < N; i++) {
            struct items it = items_of(&chains[i]);
            struct attest_verdict v;
            run(shared, &it, &r, &v);
            snprintf(what, sizeof(what), "leaf %zu (variant %zu), round %d: full vs shared", i,
                     i % V_COUNT, round);
            differ += !same_verdict(&full[i], &v, what);
            verified += v.status == ATTEST_VERIFIED;
        }
    }
    for (size_t i = 0; i < N; i++)
        fake_chain_free(&chains[i]);
    attest_verifier_free(shared);
    if (differ > 0)
        fail_msg("%u of %d verdicts differ between the full path and the cache", differ, 2 * N);
    assert_int_equal(verified, 2 * 10); /* V_GOOD and V_CACHED, 5 each, twice */
}

/* More distinct sub CAs than the cache holds (8), all with the same names: entries are evicted
 * and refilled, and a leaf of one hierarchy never passes under another's cached sub CA. */
static void test_cache_eviction(void **state)
{
    (void)state;
    enum { H = 11 };
    struct fake_apple *pkis[H];
    struct fake_chain chains[H], crossed[H];
    char *pems[H];
    size_t total = 1;
    char err[256] = "";
    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    for (size_t i = 0; i < H; i++) {
        pkis[i] = fake_apple_new(err, sizeof(err));
        if (pkis[i] == NULL)
            fail_msg("fake_apple_new: %s", err);
        pems[i] = fake_apple_root_pem(pkis[i]);
        assert_non_null(pems[i]);
        total += strlen(pems[i]);
        issue(pkis[i], &spec, &chains[i]);
    }
    for (size_t i = 0; i < H; i++) {
        /* hierarchy i+1's leaf with hierarchy i's sub CA */
        struct fake_leaf_spec s = spec;
        s.signer = pkis[(i + 1) % H];
        issue(pkis[i], &s, &crossed[i]);
    }
    char *all = malloc(total);
    assert_non_null(all);
    size_t used = 0;
    for (size_t i = 0; i < H; i++) {
        size_t n = strlen(pems[i]);
        memcpy(all + used, pems[i], n);
        used += n;
    }
    all[used] = '\0';
    struct attest_verifier *v = new_verifier(all);
    struct request r = default_request();
    struct attest_verdict out;
    char what[64];
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < H; i++) {
            size_t k = round % 2 ? H - 1 - i : i; /* forwards, then backwards */
            struct items it = items_of(&chains[k]);
            run(v, &it, &r, &out);
            snprintf(what, sizeof(what), "hierarchy %zu, round %d", k, round);
            assert_verdict(&out, what, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
            it = items_of(&crossed[k]);
            run(v, &it, &r, &out);
            snprintf(what, sizeof(what), "crossed %zu, round %d", k, round);
            assert_verdict(&out, what, ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                           ATTEST_REASON_UNTRUSTED_CHAIN);
        }
    }
    attest_verifier_free(v);
    free(all);
    for (size_t i = 0; i < H; i++) {
        fake_chain_free(&chains[i]);
        fake_chain_free(&crossed[i]);
        free(pems[i]);
        fake_apple_free(pkis[i]);
    }
}

static unsigned disagreements; /* of same_at(), for the test to fail on at its end */

/* Verifies items at time t with a new verifier and with one primed at prime_at; counts (and
 * prints) a disagreement. Returns the full path's status. */
static enum attest_status same_at(const struct items *it, time_t t, time_t prime_at,
                                  const char *what)
{
    struct request r = default_request();
    struct attest_verdict full, cached;
    struct attest_verifier *fresh = new_verifier(g.root_pem), *primed = new_verifier(g.root_pem);
    r.at = t;
    run(fresh, it, &r, &full);
    /* Prime with a good answer at prime_at, so the sub CA is cached. */
    struct fake_leaf_spec spec;
    struct fake_chain good;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = prime_at - DAY;
    issue(g.pki, &spec, &good);
    struct items git = items_of(&good);
    struct request pr = default_request();
    pr.at = prime_at;
    struct attest_verdict pv;
    run(primed, &git, &pr, &pv);
    assert_verdict(&pv, "priming", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
    run(primed, it, &r, &cached);
    char msg[160];
    snprintf(msg, sizeof(msg), "%s: full path vs cached sub CA", what);
    disagreements += !same_verdict(&full, &cached, msg);
    fake_chain_free(&good);
    attest_verifier_free(fresh);
    attest_verifier_free(primed);
    return full.status;
}

/* The edges of the leaf's and the sub CA's validity: the cache must draw them where path
 * validation does. */
static void test_cache_validity_edges(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    struct items it = items_of(&chain);
    time_t nb = MINTED, na = MINTED + 91 * DAY;
    disagreements = 0;
    assert_int_equal(same_at(&it, nb - 1, NOW, "leaf notBefore - 1"), ATTEST_FAILED);
    assert_int_equal(same_at(&it, nb, NOW, "leaf notBefore"), ATTEST_VERIFIED);
    assert_int_equal(same_at(&it, na - 1, NOW, "leaf notAfter - 1"), ATTEST_VERIFIED);
    (void)same_at(&it, na, NOW, "leaf notAfter");
    assert_int_equal(same_at(&it, na + 1, NOW, "leaf notAfter + 1"), ATTEST_FAILED);
    fake_chain_free(&chain);

    /* The sub CA's end, with a leaf that outlives it. */
    time_t sub_end = asn1_time(X509_get0_notAfter(g.sub));
    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.not_before = sub_end - 10 * DAY;
    issue(g.pki, &spec, &chain);
    it = items_of(&chain);
    assert_int_equal(same_at(&it, sub_end - 1, sub_end - 2 * DAY, "sub CA notAfter - 1"),
                     ATTEST_VERIFIED);
    (void)same_at(&it, sub_end, sub_end - 2 * DAY, "sub CA notAfter");
    assert_int_equal(same_at(&it, sub_end + 1, sub_end - 2 * DAY, "sub CA notAfter + 1"),
                     ATTEST_FAILED);
    fake_chain_free(&chain);
    if (disagreements > 0)
        fail_msg("the cache disagrees with path validation at %u validity edges", disagreements);
}

/* Leaves whose signature is good but which path validation refuses for another reason: the
 * cached-intermediate path must refuse them too. */
static void test_cache_leaf_checks(void **state)
{
    (void)state;
    static const struct {
        enum leaf_twist twist;
        const char *what;
    } twists[] = {
        {TWIST_NONE, "a plain crafted leaf"},
        {TWIST_AKID_OTHER, "an authorityKeyIdentifier naming another key"},
        {TWIST_DUP_KEY_USAGE, "keyUsage twice"},
        {TWIST_BAD_SAN, "a subjectAltName that is not DER"},
        {TWIST_SHA1, "an ECDSA-SHA1 signature"},
        {TWIST_RSA512, "an RSA-512 key"},
    };
    struct fake_chain chain;
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    disagreements = 0;
    for (size_t i = 0; i < sizeof(twists) / sizeof(twists[0]); i++) {
        size_t len;
        uint8_t *leaf = craft_leaf(twists[i].twist, 0, MINTED, MINTED + 91 * DAY, &len);
        struct items it = items_of(&chain);
        it.der[0] = leaf;
        it.len[0] = len;
        enum attest_status s = same_at(&it, NOW, NOW, twists[i].what);
        print_message("  %s: full path says %s\n", twists[i].what, attest_status_name(s));
        if (twists[i].twist == TWIST_NONE)
            assert_int_equal(s, ATTEST_VERIFIED);
        free(leaf);
    }
    fake_chain_free(&chain);
    if (disagreements > 0)
        fail_msg("the cache accepts %u leaves that path validation refuses", disagreements);
}

/* ---- JSON ---- */

static const struct json_value *parse_json(const char *text, size_t len, struct json_doc **doc)
{
    struct json_parse_error perr = {0};
    enum json_error e = json_parse(text, len, &json_limits, doc, &perr);
    if (e != JSON_OK)
        fail_msg("not JSON (%s at %zu): %s", json_strerror(e), perr.offset, text);
    return json_doc_root(*doc);
}

static char *write_verdict(const struct attest_verdict *v, const struct attest_json_extra *extra,
                           size_t *len)
{
    struct json_writer *w = json_writer_new(1 << 20, 0);
    assert_non_null(w);
    assert_true(attest_json_write_verdict(w, v, extra));
    const char *data;
    assert_true(json_writer_finish(w, &data, len));
    char *copy = strdup(data);
    json_writer_free(w);
    return copy;
}

static void assert_keys(const struct json_value *obj, const char *const *keys, size_t n)
{
    assert_int_equal(json_value_type(obj), JSON_OBJECT);
    if (json_object_size(obj) != n)
        fail_msg("%zu members, expected %zu", json_object_size(obj), n);
    for (size_t i = 0; i < n; i++) {
        const char *key;
        const struct json_value *value;
        assert_true(json_object_member(obj, i, &key, NULL, &value));
        assert_string_equal(key, keys[i]);
    }
}

static const char *const property_keys[] = {
    "serial_number", "udid", "os_version", "sepos_version", "llb_version",
    "software_update_device_id", "sip_enabled", "secure_boot", "third_party_kexts_allowed"};

static void assert_json_string(const struct json_value *obj, const char *key, const char *want)
{
    const struct json_value *v = json_object_get(obj, key);
    if (v == NULL)
        fail_msg("no %s", key);
    if (want == NULL) {
        if (!json_is_null(v))
            fail_msg("%s: not null", key);
        return;
    }
    const char *got = json_object_get_string(obj, key);
    if (got == NULL)
        fail_msg("%s: not a string", key);
    assert_string_equal(got, want);
}

static void assert_json_tristate(const struct json_value *obj, const char *key, int want)
{
    const struct json_value *v = json_object_get(obj, key);
    assert_non_null(v);
    if (want < 0) {
        assert_true(json_is_null(v));
        return;
    }
    bool b;
    assert_true(json_get_bool(v, &b));
    assert_int_equal(b, want == 1);
}

static void test_json_verified(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_apple_device dev = {.serial_number = dev_serial, .udid = dev_udid,
                                    .os_version = dev_os, .nonce = g.nonce,
                                    .nonce_len = sizeof(g.nonce), .macos = true};
    assert_true(fake_leaf_spec_device(&spec, &dev, MINTED));
    fake_leaf_spec_omit(&spec, FAKE_PROP_SEPOS_VERSION); /* absent */
    fake_leaf_spec_blank(&spec, FAKE_PROP_LLB_VERSION);  /* blank */
    fake_leaf_spec_set_int(&spec, FAKE_PROP_KEXTS, 1);   /* allowed */
    struct fake_chain chain;
    issue(g.pki, &spec, &chain);
    struct request r = default_request();
    struct attest_verdict v;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);

    const uint8_t *der[2] = {chain.der[0], chain.der[1]};
    struct attest_json_extra extra = {.certs = der, .cert_lens = chain.len, .cert_count = 2,
                                      .reported_os_version = "17.5",
                                      .reported_build_version = "21F79"};
    size_t len;
    char *text = write_verdict(&v, &extra, &len);
    struct json_doc *doc = NULL;
    const struct json_value *root = parse_json(text, len, &doc);
    static const char *const keys[] = {"status", "freshness", "reason", "generated_at",
                                       "expires_at", "leaf_sha256", "properties", "chain",
                                       "reported"};
    assert_keys(root, keys, 9);
    assert_json_string(root, "status", "verified");
    assert_json_string(root, "freshness", "fresh");
    assert_json_string(root, "reason", NULL);
    assert_json_string(root, "generated_at", MINTED_RFC3339);
    assert_json_string(root, "expires_at", EXPIRES_RFC3339);
    char hex[65];
    sha256_hex(chain.der[0], chain.len[0], hex);
    assert_json_string(root, "leaf_sha256", hex);

    const struct json_value *p = json_object_get(root, "properties");
    assert_keys(p, property_keys, 9);
    assert_json_string(p, "serial_number", dev_serial);
    assert_json_string(p, "udid", dev_udid);
    assert_json_string(p, "os_version", dev_os);
    assert_json_string(p, "sepos_version", NULL);
    assert_json_string(p, "llb_version", NULL);
    assert_json_string(p, "software_update_device_id", NULL);
    assert_json_tristate(p, "sip_enabled", 1);
    assert_json_string(p, "secure_boot", "Full Security");
    assert_json_tristate(p, "third_party_kexts_allowed", 1);

    /* The chain as received, base64. */
    const struct json_value *c = json_object_get(root, "chain");
    assert_int_equal(json_array_length(c), 2);
    for (size_t i = 0; i < 2; i++) {
        const char *b64;
        size_t b64_len;
        assert_true(json_get_string(json_array_get(c, i), &b64, &b64_len));
        uint8_t *raw = malloc(b64_len);
        assert_non_null(raw);
        int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)b64_len);
        assert_true(n >= (int)chain.len[i] && n <= (int)chain.len[i] + 2);
        assert_memory_equal(raw, chain.der[i], chain.len[i]);
        free(raw);
    }
    const struct json_value *rep = json_object_get(root, "reported");
    static const char *const rep_keys[] = {"os_version", "build_version"};
    assert_keys(rep, rep_keys, 2);
    assert_json_string(rep, "os_version", "17.5");
    assert_json_string(rep, "build_version", "21F79");
    json_doc_free(doc);
    free(text);

    /* Reported with only the OS version: the build is null. No chain without certs. */
    struct attest_json_extra partial = {.reported_os_version = "17.5"};
    text = write_verdict(&v, &partial, &len);
    root = parse_json(text, len, &doc);
    assert_null(json_object_get(root, "chain"));
    assert_json_string(json_object_get(root, "reported"), "build_version", NULL);
    json_doc_free(doc);
    free(text);
    fake_chain_free(&chain);
}

static void test_json_failed(void **state)
{
    (void)state;
    struct items it = {0};
    struct request r = default_request();
    struct attest_verdict v;
    size_t len;
    struct json_doc *doc = NULL;

    /* Malformed: nothing read, every leaf-derived member null, no extra members. */
    static const uint8_t garbage[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    items_push(&it, garbage, sizeof(garbage));
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_MALFORMED, &v);
    char *text = write_verdict(&v, NULL, &len);
    const struct json_value *root = parse_json(text, len, &doc);
    static const char *const keys[] = {"status", "freshness", "reason", "generated_at",
                                       "expires_at", "leaf_sha256", "properties"};
    assert_keys(root, keys, 7);
    assert_json_string(root, "status", "failed");
    assert_json_string(root, "freshness", NULL);
    assert_json_string(root, "reason", "malformed");
    assert_json_string(root, "generated_at", NULL);
    assert_json_string(root, "expires_at", NULL);
    assert_json_string(root, "leaf_sha256", NULL);
    assert_true(json_is_null(json_object_get(root, "properties")));
    json_doc_free(doc);
    free(text);

    /* Nonce missing, every property blank: freshness "unknown", properties all null. */
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    fake_leaf_spec_init(&spec, MINTED);
    for (int prop = 0; prop < FAKE_PROP_COUNT; prop++)
        fake_leaf_spec_blank(&spec, prop);
    issue(g.pki, &spec, &chain);
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISSING,
                 &v);
    text = write_verdict(&v, NULL, &len);
    root = parse_json(text, len, &doc);
    assert_json_string(root, "freshness", "unknown");
    assert_json_string(root, "reason", "nonce_missing");
    assert_json_string(root, "generated_at", MINTED_RFC3339);
    const struct json_value *p = json_object_get(root, "properties");
    assert_keys(p, property_keys, 9);
    for (size_t i = 0; i < 9; i++) {
        if (!json_is_null(json_object_get(p, property_keys[i])))
            fail_msg("%s: not null", property_keys[i]);
    }
    json_doc_free(doc);
    free(text);
    fake_chain_free(&chain);

    /* Each reason code by its docs/attestation.md name. */
    static const struct {
        enum attest_reason reason;
        const char *name;
    } reasons[] = {
        {ATTEST_REASON_MALFORMED, "malformed"},
        {ATTEST_REASON_UNTRUSTED_CHAIN, "untrusted_chain"},
        {ATTEST_REASON_NONCE_MISMATCH, "nonce_mismatch"},
        {ATTEST_REASON_NONCE_MISSING, "nonce_missing"},
        {ATTEST_REASON_UDID_MISMATCH, "udid_mismatch"},
        {ATTEST_REASON_SERIAL_MISMATCH, "serial_mismatch"},
        {ATTEST_REASON_OS_VERSION_MISMATCH, "os_version_mismatch"},
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        memset(&v, 0, sizeof(v));
        v.status = ATTEST_FAILED;
        v.reason = reasons[i].reason;
        v.freshness = ATTEST_FRESHNESS_CACHED;
        text = write_verdict(&v, NULL, &len);
        root = parse_json(text, len, &doc);
        assert_json_string(root, "reason", reasons[i].name);
        assert_json_string(root, "freshness", "cached");
        json_doc_free(doc);
        free(text);
    }
}

static void test_json_real_leaf(void **state)
{
    (void)state;
    struct attest_verifier *av = new_verifier(attest_apple_root_pem);
    struct items it = {0};
    items_push(&it, g.real_leaf, g.real_leaf_len);
    struct request r = {.at = REAL_LEAF_TIME};
    struct attest_verdict v;
    run(av, &it, &r, &v);
    attest_verifier_free(av);
    size_t len;
    char *text = write_verdict(&v, NULL, &len);
    struct json_doc *doc = NULL;
    const struct json_value *root = parse_json(text, len, &doc);
    assert_json_string(root, "status", "failed");
    assert_json_string(root, "freshness", NULL);
    assert_json_string(root, "reason", "untrusted_chain");
    assert_json_string(root, "generated_at", "2025-07-13T09:38:07Z");
    assert_json_string(root, "expires_at", "2025-10-12T09:38:07Z");
    assert_json_string(root, "leaf_sha256",
                       "6c25bfd9aa09f209892b8b4808ab44803045f5bc2e2c172f7e6c7832c38292c2");
    const struct json_value *p = json_object_get(root, "properties");
    assert_keys(p, property_keys, 9);
    assert_json_string(p, "serial_number", "TMWFWWWP67");
    assert_json_string(p, "udid", "00006030-000651690A84001C");
    assert_json_string(p, "os_version", "15.5");
    assert_json_string(p, "sepos_version", "15.5");
    assert_json_string(p, "llb_version", "15.5");
    assert_json_string(p, "software_update_device_id", "J514sAP");
    assert_json_tristate(p, "sip_enabled", 1);
    assert_json_string(p, "secure_boot", "Full Security");
    assert_json_tristate(p, "third_party_kexts_allowed", 0);
    json_doc_free(doc);
    free(text);

    /* Unsupported, with and without what the device reported. */
    struct json_writer *w = json_writer_new(4096, 0);
    assert_non_null(w);
    const char *data;
    assert_true(attest_json_write_unsupported(w, NULL));
    assert_true(json_writer_finish(w, &data, &len));
    assert_string_equal(data, "{\"status\":\"unsupported\"}");
    json_writer_reset(w);
    struct attest_json_extra extra = {.reported_os_version = "16.0",
                                      .reported_build_version = "20A362"};
    assert_true(attest_json_write_unsupported(w, &extra));
    assert_true(json_writer_finish(w, &data, &len));
    root = parse_json(data, len, &doc);
    assert_json_string(root, "status", "unsupported");
    assert_json_string(json_object_get(root, "reported"), "build_version", "20A362");
    json_doc_free(doc);
    json_writer_free(w);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(attest_status_name(ATTEST_VERIFIED), "verified");
    assert_string_equal(attest_status_name(ATTEST_FAILED), "failed");
    assert_null(attest_freshness_name(ATTEST_FRESHNESS_NONE));
    assert_string_equal(attest_freshness_name(ATTEST_FRESHNESS_FRESH), "fresh");
    assert_string_equal(attest_freshness_name(ATTEST_FRESHNESS_CACHED), "cached");
    assert_string_equal(attest_freshness_name(ATTEST_FRESHNESS_UNKNOWN), "unknown");
    assert_null(attest_reason_name(ATTEST_REASON_NONE));
    assert_string_equal(attest_reason_name(ATTEST_REASON_OS_VERSION_MISMATCH),
                        "os_version_mismatch");
    char t[21];
    attest_json_format_time(0, t);
    assert_string_equal(t, "1970-01-01T00:00:00Z");
    attest_json_format_time((time_t)2524607999, t);
    assert_string_equal(t, "2049-12-31T23:59:59Z");
}

static void test_read_leaf_rejects(void **state)
{
    (void)state;
    struct attest_properties p;
    time_t nb, na;
    static const uint8_t garbage[] = {0x30, 0x82, 0x01, 0x00, 0x01};
    assert_false(attest_read_leaf(garbage, 0, &p, &nb, &na));
    assert_false(attest_read_leaf(garbage, sizeof(garbage), &p, &nb, &na));
    uint8_t *padded = malloc(g.real_leaf_len + 1);
    assert_non_null(padded);
    memcpy(padded, g.real_leaf, g.real_leaf_len);
    padded[g.real_leaf_len] = 0;
    assert_false(attest_read_leaf(padded, g.real_leaf_len + 1, &p, &nb, &na));
    assert_false(attest_read_leaf(padded, g.real_leaf_len - 1, &p, &nb, &na));
    assert_true(attest_read_leaf(padded, g.real_leaf_len, &p, &nb, &na));
    free(padded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_leaf_matches_expected_json),
        cmocka_unit_test(test_real_leaf_values),
        cmocka_unit_test(test_real_leaf_untrusted_with_apple_root),
        cmocka_unit_test(test_apple_root_builtin),
        cmocka_unit_test(test_verified_fresh),
        cmocka_unit_test(test_verified_cached),
        cmocka_unit_test(test_cached_bounds),
        cmocka_unit_test(test_nonce_mismatch),
        cmocka_unit_test(test_nonce_missing),
        cmocka_unit_test(test_udid_mismatch),
        cmocka_unit_test(test_serial_mismatch),
        cmocka_unit_test(test_os_version),
        cmocka_unit_test(test_untrusted_lookalike_root),
        cmocka_unit_test(test_untrusted_leaf_validity),
        cmocka_unit_test(test_untrusted_sub_ca_validity),
        cmocka_unit_test(test_untrusted_leaf_signed_by_root),
        cmocka_unit_test(test_untrusted_leaf_alone),
        cmocka_unit_test(test_untrusted_foreign_sub_ca),
        cmocka_unit_test(test_cache_refuses_lookalike_leaf),
        cmocka_unit_test(test_malformed_item_counts),
        cmocka_unit_test(test_malformed_items),
        cmocka_unit_test(test_malformed_size_limit),
        cmocka_unit_test(test_malformed_extensions),
        cmocka_unit_test(test_blank_and_omitted_properties),
        cmocka_unit_test(test_unknown_critical_extension),
        cmocka_unit_test(test_only_configured_roots),
        cmocka_unit_test(test_cache_matches_full_path),
        cmocka_unit_test(test_cache_eviction),
        cmocka_unit_test(test_cache_validity_edges),
        cmocka_unit_test(test_cache_leaf_checks),
        cmocka_unit_test(test_json_verified),
        cmocka_unit_test(test_json_failed),
        cmocka_unit_test(test_json_real_leaf),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_read_leaf_rejects),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
