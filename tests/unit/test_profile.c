/* profiles/profile.c: the enrollment profile as Apple requires it (docs/protocol.md, Enrollment
 * profile), read back with libplist, and its CMS signature verified with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define TOPIC "com.apple.mgmt.External.7a1c2b3d-0000-4000-8000-123456789abc"

static const struct profile_options scep = {
    .public_url = "https://mdm.example.com",
    .topic = TOPIC,
    .organization = "Example",
    .identity = PROFILE_SCEP,
    .scep_url = "https://scep.example.com/scep",
    .scep_challenge = "secret",
};

static const struct profile_options acme = {
    .public_url = "https://mdm.example.com",
    .topic = TOPIC,
    .identity = PROFILE_ACME,
    .acme_directory_url = "https://acme.example.com/directory",
    .acme_client_identifier = "0123456789abcdef",
};

static plist_t build(const struct profile_options *o, char **xml_out)
{
    char err[256] = "", *xml = NULL;
    size_t len = 0;
    bool ok = profile_build(o, &xml, &len, err, sizeof(err));
    if (!ok)
        print_error("profile_build: %s\n", err);
    assert_true(ok);
    assert_int_equal(strlen(xml), len);
    plist_t root = NULL;
    plist_from_xml(xml, (uint32_t)len, &root);
    assert_non_null(root);
    if (xml_out != NULL)
        *xml_out = xml;
    else
        free(xml);
    return root;
}

static const char *str(plist_t dict, const char *key)
{
    plist_t v = plist_dict_get_item(dict, key);
    assert_non_null(v);
    assert_int_equal(plist_get_node_type(v), PLIST_STRING);
    return plist_get_string_ptr(v, NULL);
}

static uint64_t uint_val(plist_t dict, const char *key)
{
    uint64_t u = 0;
    plist_t v = plist_dict_get_item(dict, key);
    assert_non_null(v);
    assert_int_equal(plist_get_node_type(v), PLIST_UINT);
    plist_get_uint_val(v, &u);
    return u;
}

static bool bool_val(plist_t dict, const char *key)
{
    uint8_t b = 0;
    plist_t v = plist_dict_get_item(dict, key);
    assert_non_null(v);
    assert_int_equal(plist_get_node_type(v), PLIST_BOOLEAN);
    plist_get_bool_val(v, &b);
    return b != 0;
}

static plist_t payload_of(plist_t root, const char *type)
{
    plist_t content = plist_dict_get_item(root, "PayloadContent");
    for (uint32_t i = 0; i < plist_array_get_size(content); i++) {
        plist_t p = plist_array_get_item(content, i);
        if (strcmp(str(p, "PayloadType"), type) == 0)
            return p;
    }
    return NULL;
}

static void test_scep_profile(void **state)
{
    plist_t root = build(&scep, NULL);
    assert_string_equal(str(root, "PayloadType"), "Configuration");
    assert_string_equal(str(root, "PayloadIdentifier"), PROFILE_IDENTIFIER);
    assert_string_equal(str(root, "PayloadOrganization"), "Example");
    plist_t mdm = payload_of(root, "com.apple.mdm");
    plist_t id = payload_of(root, "com.apple.security.scep");
    assert_non_null(mdm);
    assert_non_null(id);
    assert_null(payload_of(root, "com.apple.security.root"));
    assert_string_equal(str(mdm, "ServerURL"), "https://mdm.example.com/mdm/connect");
    assert_string_equal(str(mdm, "CheckInURL"), "https://mdm.example.com/mdm/checkin");
    assert_string_equal(str(mdm, "Topic"), TOPIC);
    assert_string_equal(str(mdm, "IdentityCertificateUUID"), str(id, "PayloadUUID"));
    assert_true(bool_val(mdm, "SignMessage"));
    assert_true(bool_val(mdm, "CheckOutWhenRemoved"));
    assert_int_equal(uint_val(mdm, "AccessRights"), 8191);
    assert_int_equal(plist_get_node_type(plist_dict_get_item(mdm, "ServerCapabilities")),
                     PLIST_ARRAY);
    plist_t c = plist_dict_get_item(id, "PayloadContent");
    assert_string_equal(str(c, "URL"), "https://scep.example.com/scep");
    assert_string_equal(str(c, "Challenge"), "secret");
    assert_int_equal(uint_val(c, "Keysize"), 2048);
    plist_free(root);
}

static void test_acme_profile_asks_for_an_attested_hardware_key(void **state)
{
    plist_t root = build(&acme, NULL);
    plist_t id = payload_of(root, "com.apple.security.acme");
    assert_non_null(id);
    assert_null(payload_of(root, "com.apple.security.scep"));
    assert_string_equal(str(id, "DirectoryURL"), "https://acme.example.com/directory");
    assert_string_equal(str(id, "ClientIdentifier"), "0123456789abcdef");
    assert_string_equal(str(id, "KeyType"), "ECSECPrimeRandom");
    assert_int_equal(uint_val(id, "KeySize"), 384);
    assert_true(bool_val(id, "HardwareBound"));
    assert_true(bool_val(id, "Attest"));
    assert_string_equal(str(payload_of(root, "com.apple.mdm"), "IdentityCertificateUUID"),
                        str(id, "PayloadUUID"));
    plist_free(root);
}

static void test_identifiers_stable_uuids_fresh(void **state)
{
    plist_t a = build(&scep, NULL), b = build(&scep, NULL);
    const char *types[] = {"com.apple.mdm", "com.apple.security.scep"};
    assert_string_not_equal(str(a, "PayloadUUID"), str(b, "PayloadUUID"));
    for (size_t i = 0; i < 2; i++) {
        plist_t pa = payload_of(a, types[i]), pb = payload_of(b, types[i]);
        assert_string_equal(str(pa, "PayloadIdentifier"), str(pb, "PayloadIdentifier"));
        assert_string_not_equal(str(pa, "PayloadUUID"), str(pb, "PayloadUUID"));
        assert_int_equal(strlen(str(pa, "PayloadUUID")), 36);
        assert_int_equal(uint_val(pa, "PayloadVersion"), 1);
    }
    plist_free(a);
    plist_free(b);
}

static void test_refuses_what_cannot_enroll(void **state)
{
    char err[256], *xml = (char *)1;
    size_t len = 7;
    struct profile_options o = scep;
    o.topic = NULL;
    assert_false(profile_build(&o, &xml, &len, err, sizeof(err)));
    assert_null(xml);
    assert_non_null(strstr(err, "topic"));
    o = scep;
    o.public_url = "http://mdm.example.com";
    assert_false(profile_build(&o, &xml, &len, err, sizeof(err)));
    assert_non_null(strstr(err, "https"));
    o = scep;
    o.scep_url = NULL;
    assert_false(profile_build(&o, &xml, &len, err, sizeof(err)));
    o = acme;
    o.acme_directory_url = NULL;
    assert_false(profile_build(&o, &xml, &len, err, sizeof(err)));
    o = scep;
    o.ca_pem = "not a certificate";
    o.ca_pem_len = strlen(o.ca_pem);
    assert_false(profile_build(&o, &xml, &len, err, sizeof(err)));
    assert_non_null(strstr(err, "CA certificate"));
}

/* profile_check on profiles someone broke. */
static void test_check_refuses_broken_profiles(void **state)
{
    char err[256], *xml;
    plist_t root = build(&acme, &xml);
    assert_true(profile_check(xml, strlen(xml), err, sizeof(err)));
    free(xml);
    static const struct {
        const char *type, *key;
    } breaks[] = {
        {"com.apple.mdm", "IdentityCertificateUUID"},
        {"com.apple.mdm", "Topic"},
        {"com.apple.mdm", "SignMessage"},
        {"com.apple.mdm", "ServerURL"},
        {"com.apple.security.acme", "Attest"},
        {"com.apple.security.acme", "KeyType"},
        {"com.apple.security.acme", "PayloadUUID"},
        {"com.apple.security.acme", "HardwareBound"},
    };
    for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
        plist_t copy = plist_copy(root);
        plist_dict_remove_item(payload_of(copy, breaks[i].type), breaks[i].key);
        char *text = NULL;
        uint32_t len = 0;
        plist_to_xml(copy, &text, &len);
        if (profile_check(text, len, err, sizeof(err)))
            print_error("accepted without %s.%s\n", breaks[i].type, breaks[i].key);
        assert_false(profile_check(text, len, err, sizeof(err)));
        plist_to_xml_free(text);
        plist_free(copy);
    }
    assert_false(profile_check("<plist>", 7, err, sizeof(err)));
    plist_free(root);
}

/* A throwaway P-256 signer (self-signed). */
static void make_signer(X509 **cert, EVP_PKEY **key)
{
    *key = EVP_EC_gen("P-256");
    assert_non_null(*key);
    *cert = X509_new();
    X509_set_version(*cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(*cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(*cert), 86400);
    X509_NAME *name = X509_get_subject_name(*cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"profiles", -1, -1,
                               0);
    X509_set_issuer_name(*cert, name);
    X509_set_pubkey(*cert, *key);
    assert_true(X509_sign(*cert, *key, EVP_sha256()) > 0);
}

static void test_signed_profile_verifies(void **state)
{
    X509 *cert;
    EVP_PKEY *key;
    make_signer(&cert, &key);
    char err[256], *xml;
    plist_t root = build(&scep, &xml);
    plist_free(root);
    unsigned char *der = NULL;
    size_t der_len = 0;
    assert_true(profile_sign(xml, strlen(xml), cert, key, NULL, &der, &der_len, err, sizeof(err)));
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_len);
    assert_non_null(cms);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, cert);
    BIO *out = BIO_new(BIO_s_mem());
    assert_int_equal(CMS_verify(cms, NULL, store, NULL, out, CMS_BINARY), 1);
    char *content;
    long n = BIO_get_mem_data(out, &content);
    assert_int_equal((size_t)n, strlen(xml));
    assert_memory_equal(content, xml, strlen(xml));
    BIO_free(out);
    X509_STORE_free(store);
    CMS_ContentInfo_free(cms);
    OPENSSL_free(der);
    free(xml);
    X509_free(cert);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scep_profile),
        cmocka_unit_test(test_acme_profile_asks_for_an_attested_hardware_key),
        cmocka_unit_test(test_identifiers_stable_uuids_fresh),
        cmocka_unit_test(test_refuses_what_cannot_enroll),
        cmocka_unit_test(test_check_refuses_broken_profiles),
        cmocka_unit_test(test_signed_profile_verifies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
