#include "profile.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID_LEN 36

/* A random (version 4) UUID in upper case, as Apple's tools write them. */
static bool new_uuid(char out[UUID_LEN + 1])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return false;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, UUID_LEN + 1,
             "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return true;
}

/* The keys every payload carries. */
static plist_t new_payload(const char *type, const char *identifier, const char *name,
                           const char *uuid)
{
    plist_t p = plist_new_dict();
    plist_dict_set_item(p, "PayloadType", plist_new_string(type));
    plist_dict_set_item(p, "PayloadIdentifier", plist_new_string(identifier));
    plist_dict_set_item(p, "PayloadUUID", plist_new_string(uuid));
    plist_dict_set_item(p, "PayloadVersion", plist_new_uint(1));
    plist_dict_set_item(p, "PayloadDisplayName", plist_new_string(name));
    return p;
}

/* Subject: [[["CN", "Vouch device"]]] (an array of RDNs, each an array of pairs). */
static plist_t subject(void)
{
    plist_t pair = plist_new_array();
    plist_array_append_item(pair, plist_new_string("CN"));
    plist_array_append_item(pair, plist_new_string("Vouch device"));
    plist_t rdn = plist_new_array();
    plist_array_append_item(rdn, pair);
    plist_t name = plist_new_array();
    plist_array_append_item(name, rdn);
    return name;
}

static plist_t scep_payload(const struct profile_options *o, const char *uuid)
{
    plist_t p = new_payload("com.apple.security.scep", PROFILE_IDENTIFIER ".identity",
                            "Device identity (SCEP)", uuid);
    plist_t c = plist_new_dict();
    plist_dict_set_item(c, "URL", plist_new_string(o->scep_url));
    if (o->scep_challenge != NULL)
        plist_dict_set_item(c, "Challenge", plist_new_string(o->scep_challenge));
    plist_dict_set_item(c, "Keysize", plist_new_uint(2048));
    plist_dict_set_item(c, "Key Type", plist_new_string("RSA"));
    plist_dict_set_item(c, "Key Usage", plist_new_uint(5)); /* signing and encryption */
    plist_dict_set_item(c, "Subject", subject());
    plist_dict_set_item(p, "PayloadContent", c);
    return p;
}

/* A hardware-bound P-384 key that Apple attests (device-attest-01): the identity itself is
 * proof of the device. */
static plist_t acme_payload(const struct profile_options *o, const char *uuid)
{
    plist_t p = new_payload("com.apple.security.acme", PROFILE_IDENTIFIER ".identity",
                            "Device identity (ACME, attested)", uuid);
    plist_dict_set_item(p, "DirectoryURL", plist_new_string(o->acme_directory_url));
    plist_dict_set_item(p, "ClientIdentifier", plist_new_string(o->acme_client_identifier));
    plist_dict_set_item(p, "KeyType", plist_new_string("ECSECPrimeRandom"));
    plist_dict_set_item(p, "KeySize", plist_new_uint(384));
    plist_dict_set_item(p, "HardwareBound", plist_new_bool(1));
    plist_dict_set_item(p, "Attest", plist_new_bool(1));
    plist_dict_set_item(p, "Subject", subject());
    plist_dict_set_item(p, "UsageFlags", plist_new_uint(1)); /* digital signature */
    plist_t eku = plist_new_array();
    plist_array_append_item(eku, plist_new_string("1.3.6.1.5.5.7.3.2")); /* TLS client */
    plist_dict_set_item(p, "ExtendedKeyUsage", eku);
    return p;
}

static plist_t mdm_payload(const struct profile_options *o, const char *uuid,
                           const char *identity_uuid)
{
    char url[1024];
    plist_t p = new_payload("com.apple.mdm", PROFILE_IDENTIFIER ".mdm", "Device management", uuid);
    plist_dict_set_item(p, "IdentityCertificateUUID", plist_new_string(identity_uuid));
    plist_dict_set_item(p, "Topic", plist_new_string(o->topic));
    snprintf(url, sizeof(url), "%s/mdm/connect", o->public_url);
    plist_dict_set_item(p, "ServerURL", plist_new_string(url));
    snprintf(url, sizeof(url), "%s/mdm/checkin", o->public_url);
    plist_dict_set_item(p, "CheckInURL", plist_new_string(url));
    plist_dict_set_item(p, "SignMessage", plist_new_bool(1));
    plist_dict_set_item(p, "AccessRights", plist_new_uint(PROFILE_ACCESS_RIGHTS));
    plist_dict_set_item(p, "CheckOutWhenRemoved", plist_new_bool(1));
    /* No optional capability is claimed: vouchd serves the device channel only. */
    plist_dict_set_item(p, "ServerCapabilities", plist_new_array());
    return p;
}

/* The CA certificate payload: PEM in, DER in the profile. */
static plist_t ca_payload(const struct profile_options *o, const char *uuid, char *err,
                          size_t err_size)
{
    BIO *bio = BIO_new_mem_buf(o->ca_pem, (int)o->ca_pem_len);
    X509 *ca = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    unsigned char *der = NULL;
    int len = ca ? i2d_X509(ca, &der) : -1;
    X509_free(ca);
    if (len <= 0) {
        snprintf(err, err_size, "the CA certificate is not a PEM certificate");
        return NULL;
    }
    plist_t p = new_payload("com.apple.security.root", PROFILE_IDENTIFIER ".ca",
                            "Server certificate authority", uuid);
    plist_dict_set_item(p, "PayloadContent", plist_new_data((const char *)der, (uint64_t)len));
    OPENSSL_free(der);
    return p;
}

static bool options_usable(const struct profile_options *o, char *err, size_t err_size)
{
    const char *missing = NULL;
    if (o->public_url == NULL || strncmp(o->public_url, "https://", 8) != 0)
        missing = "public_url (an https:// URL)";
    else if (strlen(o->public_url) > 900)
        missing = "a shorter public_url";
    else if (o->topic == NULL || o->topic[0] == '\0')
        missing = "the push certificate's topic";
    else if (o->identity == PROFILE_SCEP && o->scep_url == NULL)
        missing = "the SCEP URL";
    else if (o->identity == PROFILE_ACME &&
             (o->acme_directory_url == NULL || o->acme_client_identifier == NULL))
        missing = "the ACME directory URL and client identifier";
    if (missing != NULL)
        snprintf(err, err_size, "an enrollment profile needs %s", missing);
    return missing == NULL;
}

bool profile_build(const struct profile_options *o, char **xml, size_t *xml_len, char *err,
                   size_t err_size)
{
    char top[UUID_LEN + 1], mdm[UUID_LEN + 1], identity[UUID_LEN + 1], ca[UUID_LEN + 1];
    *xml = NULL;
    *xml_len = 0;
    if (!options_usable(o, err, err_size))
        return false;
    if (!new_uuid(top) || !new_uuid(mdm) || !new_uuid(identity) || !new_uuid(ca)) {
        snprintf(err, err_size, "no random bytes for UUIDs");
        return false;
    }
    plist_t content = plist_new_array();
    if (o->ca_pem != NULL) {
        plist_t c = ca_payload(o, ca, err, err_size);
        if (c == NULL) {
            plist_free(content);
            return false;
        }
        plist_array_append_item(content, c);
    }
    plist_array_append_item(content, o->identity == PROFILE_ACME ? acme_payload(o, identity)
                                                                 : scep_payload(o, identity));
    plist_array_append_item(content, mdm_payload(o, mdm, identity));

    plist_t root = new_payload("Configuration", PROFILE_IDENTIFIER, "Vouch enrollment", top);
    if (o->organization != NULL)
        plist_dict_set_item(root, "PayloadOrganization", plist_new_string(o->organization));
    plist_dict_set_item(root, "PayloadDescription",
                        plist_new_string("Enrolls this device in Vouch, which asks it to prove "
                                         "who it is with Managed Device Attestation."));
    plist_dict_set_item(root, "PayloadScope", plist_new_string("System"));
    plist_dict_set_item(root, "PayloadContent", content);

    char *text = NULL;
    uint32_t len = 0;
    plist_to_xml(root, &text, &len);
    plist_free(root);
    bool ok = text != NULL && (*xml = malloc((size_t)len + 1)) != NULL;
    if (ok) {
        memcpy(*xml, text, len);
        (*xml)[len] = '\0';
        *xml_len = len;
    } else {
        snprintf(err, err_size, "cannot write the profile");
    }
    plist_to_xml_free(text);
    /* What was built must read back as a complete profile. */
    if (ok && !profile_check(*xml, *xml_len, err, err_size)) {
        free(*xml);
        *xml = NULL;
        *xml_len = 0;
        ok = false;
    }
    return ok;
}

/* ---- checking ---- */

static const char *string_of(plist_t dict, const char *key)
{
    plist_t v = plist_dict_get_item(dict, key);
    return v != NULL && plist_get_node_type(v) == PLIST_STRING ? plist_get_string_ptr(v, NULL)
                                                               : NULL;
}

static bool bool_of(plist_t dict, const char *key, bool *out)
{
    plist_t v = plist_dict_get_item(dict, key);
    if (v == NULL || plist_get_node_type(v) != PLIST_BOOLEAN)
        return false;
    uint8_t b = 0;
    plist_get_bool_val(v, &b);
    *out = b != 0;
    return true;
}

static bool uint_of(plist_t dict, const char *key, uint64_t *out)
{
    plist_t v = plist_dict_get_item(dict, key);
    if (v == NULL || plist_get_node_type(v) != PLIST_UINT)
        return false;
    plist_get_uint_val(v, out);
    return true;
}

static bool fail(char *err, size_t err_size, const char *what, const char *key)
{
    snprintf(err, err_size, "%s: %s", what, key);
    return false;
}

static bool check_common(plist_t p, char *err, size_t err_size)
{
    static const char *const keys[] = {"PayloadType", "PayloadIdentifier", "PayloadUUID",
                                       "PayloadDisplayName"};
    uint64_t version;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (string_of(p, keys[i]) == NULL)
            return fail(err, err_size, "a payload without the string", keys[i]);
    }
    if (strlen(string_of(p, "PayloadUUID")) != UUID_LEN)
        return fail(err, err_size, "a payload's UUID is not a UUID", string_of(p, "PayloadUUID"));
    if (!uint_of(p, "PayloadVersion", &version) || version != 1)
        return fail(err, err_size, "a payload without", "PayloadVersion 1");
    return true;
}

static bool check_mdm(plist_t p, char *err, size_t err_size)
{
    static const char *const strings[] = {"IdentityCertificateUUID", "Topic", "ServerURL",
                                          "CheckInURL"};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (string_of(p, strings[i]) == NULL)
            return fail(err, err_size, "the MDM payload lacks", strings[i]);
    }
    bool sign = false, checkout = false;
    uint64_t rights = 0;
    if (!bool_of(p, "SignMessage", &sign) || !sign)
        return fail(err, err_size, "the MDM payload lacks", "SignMessage = true");
    if (!bool_of(p, "CheckOutWhenRemoved", &checkout))
        return fail(err, err_size, "the MDM payload lacks", "CheckOutWhenRemoved");
    if (!uint_of(p, "AccessRights", &rights) || rights == 0 || rights > 8191)
        return fail(err, err_size, "the MDM payload lacks", "AccessRights (1 to 8191)");
    plist_t caps = plist_dict_get_item(p, "ServerCapabilities");
    if (caps == NULL || plist_get_node_type(caps) != PLIST_ARRAY)
        return fail(err, err_size, "the MDM payload lacks", "ServerCapabilities");
    return true;
}

static bool check_identity(plist_t p, const char *type, char *err, size_t err_size)
{
    if (strcmp(type, "com.apple.security.scep") == 0) {
        plist_t c = plist_dict_get_item(p, "PayloadContent");
        if (c == NULL || plist_get_node_type(c) != PLIST_DICT || string_of(c, "URL") == NULL)
            return fail(err, err_size, "the SCEP payload lacks", "PayloadContent.URL");
        return true;
    }
    if (strcmp(type, "com.apple.security.acme") == 0) {
        bool bound = false, attest = false;
        uint64_t size = 0;
        const char *key_type = string_of(p, "KeyType");
        if (string_of(p, "DirectoryURL") == NULL || string_of(p, "ClientIdentifier") == NULL)
            return fail(err, err_size, "the ACME payload lacks",
                        "DirectoryURL and ClientIdentifier");
        if (!bool_of(p, "HardwareBound", &bound) || !bound || !bool_of(p, "Attest", &attest) ||
            !attest)
            return fail(err, err_size, "the ACME payload lacks", "HardwareBound and Attest");
        /* Apple: hardware-bound keys are ECSECPrimeRandom, 256 or 384 bits. */
        if (key_type == NULL || strcmp(key_type, "ECSECPrimeRandom") != 0 ||
            !uint_of(p, "KeySize", &size) || (size != 256 && size != 384))
            return fail(err, err_size, "the ACME payload lacks",
                        "KeyType ECSECPrimeRandom with KeySize 256 or 384");
        return true;
    }
    return fail(err, err_size, "the MDM payload's identity is not SCEP or ACME but", type);
}

bool profile_check(const char *xml, size_t xml_len, char *err, size_t err_size)
{
    plist_t root = NULL;
    if (xml_len > UINT32_MAX)
        return fail(err, err_size, "too large", "profile");
    plist_from_xml(xml, (uint32_t)xml_len, &root);
    if (root == NULL || plist_get_node_type(root) != PLIST_DICT) {
        plist_free(root);
        return fail(err, err_size, "not a plist dictionary", "profile");
    }
    bool ok = check_common(root, err, err_size);
    const char *type = string_of(root, "PayloadType");
    plist_t content = plist_dict_get_item(root, "PayloadContent");
    if (ok && strcmp(type, "Configuration") != 0)
        ok = fail(err, err_size, "the profile's PayloadType is not Configuration but", type);
    if (ok && (content == NULL || plist_get_node_type(content) != PLIST_ARRAY))
        ok = fail(err, err_size, "the profile lacks", "PayloadContent");
    plist_t mdm = NULL;
    uint32_t n = ok ? plist_array_get_size(content) : 0;
    for (uint32_t i = 0; ok && i < n; i++) {
        plist_t p = plist_array_get_item(content, i);
        ok = plist_get_node_type(p) == PLIST_DICT ? check_common(p, err, err_size)
                                                  : fail(err, err_size, "a payload", "not a dict");
        for (uint32_t j = 0; ok && j < i; j++) {
            if (strcmp(string_of(plist_array_get_item(content, j), "PayloadUUID"),
                       string_of(p, "PayloadUUID")) == 0)
                ok =
                    fail(err, err_size, "two payloads share the UUID", string_of(p, "PayloadUUID"));
        }
        if (ok && strcmp(string_of(p, "PayloadType"), "com.apple.mdm") == 0) {
            ok = mdm == NULL ? check_mdm(p, err, err_size)
                             : fail(err, err_size, "more than one", "MDM payload");
            mdm = p;
        }
    }
    if (ok && mdm == NULL)
        ok = fail(err, err_size, "the profile lacks", "the MDM payload");
    /* IdentityCertificateUUID must name a payload of this profile, and an identity one. */
    const char *identity = ok ? string_of(mdm, "IdentityCertificateUUID") : NULL;
    plist_t found = NULL;
    for (uint32_t i = 0; ok && i < n; i++) {
        plist_t p = plist_array_get_item(content, i);
        if (strcmp(string_of(p, "PayloadUUID"), identity) == 0)
            found = p;
    }
    if (ok && found == NULL)
        ok = fail(err, err_size, "IdentityCertificateUUID names no payload of the profile",
                  identity);
    if (ok)
        ok = check_identity(found, string_of(found, "PayloadType"), err, err_size);
    plist_free(root);
    return ok;
}

bool profile_sign(const char *data, size_t len, X509 *signer, EVP_PKEY *key, STACK_OF(X509) * chain,
                  unsigned char **der, size_t *der_len, char *err, size_t err_size)
{
    *der = NULL;
    *der_len = 0;
    BIO *in = BIO_new_mem_buf(data, (int)len);
    CMS_ContentInfo *cms = in ? CMS_sign(signer, key, chain, in, CMS_BINARY) : NULL;
    int n = cms ? i2d_CMS_ContentInfo(cms, der) : -1;
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    if (n <= 0) {
        unsigned long e = ERR_get_error();
        snprintf(err, err_size, "cannot sign the profile: %s",
                 e ? ERR_reason_error_string(e) : "CMS_sign failed");
        ERR_clear_error();
        return false;
    }
    *der_len = (size_t)n;
    return true;
}
