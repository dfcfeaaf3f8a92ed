/*
 * attest_fixture: see attest_fixture.h.
 */
#include "attest_fixture.h"

#include <openssl/bio.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hex.h"

const char dev_udid[] = "00008030-001A2B3C4D5E802E";
const char dev_serial[] = "F4GXK2ZQ0D";
const char dev_os[] = "17.5";
const char dev_sudid[] = "D83AP";

const struct json_limits json_limits = {1 << 20, 32, 100000};

struct attest_fixture g;

uint8_t *cert_der(X509 *cert, size_t *len)
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

X509 *pem_cert(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    assert_non_null(bio);
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(cert);
    return cert;
}

void sha256_hex(const uint8_t *data, size_t len, char out[65])
{
    uint8_t md[32];
    assert_int_equal(EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL), 1);
    hex_encode(md, 32, out);
}

time_t asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return timegm(&tm);
}

struct attest_verifier *new_verifier(const char *pem)
{
    char err[256] = "";
    struct attest_verifier *v = attest_verifier_new(pem, strlen(pem), err, sizeof(err));
    if (v == NULL)
        fail_msg("attest_verifier_new: %s", err);
    return v;
}

const char *name_or_none(const char *name)
{
    return name != NULL ? name : "(none)";
}

void items_push(struct items *it, const uint8_t *der, size_t len)
{
    assert_true(it->count < 8);
    it->der[it->count] = der;
    it->len[it->count] = len;
    it->count++;
}

struct items items_of(const struct fake_chain *chain)
{
    struct items it = {0};
    for (size_t i = 0; i < chain->count; i++)
        items_push(&it, chain->der[i], chain->len[i]);
    return it;
}

struct request default_request(void)
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

void run(struct attest_verifier *v, const struct items *it, const struct request *r,
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

void assert_verdict(const struct attest_verdict *v, const char *path, enum attest_status status,
                    enum attest_freshness freshness, enum attest_reason reason)
{
    if (v->status != status || v->freshness != freshness || v->reason != reason)
        fail_msg("%s: got %s/%s/%s, expected %s/%s/%s", path, attest_status_name(v->status),
                 name_or_none(attest_freshness_name(v->freshness)),
                 name_or_none(attest_reason_name(v->reason)), attest_status_name(status),
                 name_or_none(attest_freshness_name(freshness)),
                 name_or_none(attest_reason_name(reason)));
}

bool same_properties(const struct attest_properties *a, const struct attest_properties *b)
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

bool same_verdict(const struct attest_verdict *a, const struct attest_verdict *b, const char *what)
{
    if (a->status != b->status || a->freshness != b->freshness || a->reason != b->reason ||
        a->leaf_parsed != b->leaf_parsed) {
        print_error(
            "%s: %s/%s/%s (leaf_parsed %d) vs %s/%s/%s (leaf_parsed %d)\n", what,
            attest_status_name(a->status), name_or_none(attest_freshness_name(a->freshness)),
            name_or_none(attest_reason_name(a->reason)), a->leaf_parsed,
            attest_status_name(b->status), name_or_none(attest_freshness_name(b->freshness)),
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

void assert_same_verdict(const struct attest_verdict *a, const struct attest_verdict *b,
                         const char *what)
{
    if (!same_verdict(a, b, what))
        fail_msg("%s: the verdicts differ", what);
}

void expect(const struct items *it, const struct request *r, enum attest_status status,
            enum attest_freshness freshness, enum attest_reason reason, struct attest_verdict *out)
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

void expect_chain(const struct fake_chain *chain, const struct request *r,
                  enum attest_status status, enum attest_freshness freshness,
                  enum attest_reason reason, struct attest_verdict *out)
{
    struct items it = items_of(chain);
    expect(&it, r, status, freshness, reason, out);
}

void expect_default(const struct fake_chain *chain, enum attest_status status,
                    enum attest_freshness freshness, enum attest_reason reason)
{
    struct request r = default_request();
    struct attest_verdict v;
    expect_chain(chain, &r, status, freshness, reason, &v);
}

void device_spec(struct fake_leaf_spec *spec, const uint8_t *nonce, size_t nonce_len)
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

void issue(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
           struct fake_chain *chain)
{
    char err[256] = "";
    if (!fake_apple_leaf(pki, spec, chain, err, sizeof(err)))
        fail_msg("fake_apple_leaf: %s", err);
}

void issue_device(struct fake_chain *chain, const uint8_t *nonce, size_t nonce_len)
{
    struct fake_leaf_spec spec;
    device_spec(&spec, nonce, nonce_len);
    issue(g.pki, &spec, chain);
}

/* ---- crafting what fake_leaf_spec cannot describe ---- */

void add_conf_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

void add_raw_ext(X509 *cert, const char *oid, int critical, const void *value, size_t len)
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

void add_pad_ext(X509 *cert, size_t pad)
{
    if (pad == 0)
        return;
    uint8_t *buf = malloc(pad);
    assert_non_null(buf);
    memset(buf, 'x', pad);
    add_raw_ext(cert, PRIVATE_OID, 0, buf, pad);
    free(buf);
}

void set_name(X509_NAME *name, const char *cn)
{
    assert_int_equal(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
        1);
}

uint8_t *craft_leaf(enum leaf_twist twist, size_t pad, time_t not_before, time_t not_after,
                    size_t *len)
{
    X509 *c = X509_new();
    EVP_PKEY *key = g.leaf_key, *rsa = NULL;
    assert_non_null(c);
    assert_int_equal(X509_set_version(c, X509_VERSION_3), 1);
    assert_int_equal(
        ASN1_INTEGER_set_uint64(X509_get_serialNumber(c), (uint64_t)not_before * 1000u + 7), 1);
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

uint8_t *craft_sub(time_t not_before, time_t not_after, size_t pad, size_t *len)
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

uint8_t *craft_exact(bool is_leaf, size_t target)
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

int attest_fixture_setup(void **state)
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
    struct fake_apple_device dev = {.serial_number = dev_serial,
                                    .udid = dev_udid,
                                    .os_version = dev_os,
                                    .nonce = g.nonce,
                                    .nonce_len = sizeof(g.nonce)};
    struct fake_chain chain;
    if (!fake_leaf_spec_device(&spec, &dev, MINTED) ||
        !fake_apple_leaf(g.pki, &spec, &chain, err, sizeof(err)))
        return -1;
    const uint8_t *der[2] = {chain.der[0], chain.der[1]};
    struct attest_input in = {.certs = der,
                              .cert_lens = chain.len,
                              .cert_count = 2,
                              .request_nonce = g.nonce,
                              .request_nonce_len = sizeof(g.nonce),
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

int attest_fixture_teardown(void **state)
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
