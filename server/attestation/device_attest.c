#include "device_attest.h"

#include <cbor.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "attest_internal.h"
#include "b64url.h"

static const char *const reason_names[] = {
    [DEVICE_ATTEST_OK] = NULL,
    [DEVICE_ATTEST_MALFORMED] = "malformed",
    [DEVICE_ATTEST_UNSUPPORTED_FORMAT] = "unsupported_format",
    [DEVICE_ATTEST_NO_ATTESTATION] = "no_attestation",
    [DEVICE_ATTEST_UNTRUSTED_CHAIN] = "untrusted_chain",
    [DEVICE_ATTEST_FRESHNESS_MISSING] = "freshness_missing",
    [DEVICE_ATTEST_FRESHNESS_MISMATCH] = "freshness_mismatch",
    [DEVICE_ATTEST_IDENTITY_MISSING] = "identity_missing",
    [DEVICE_ATTEST_BAD_EXTENSION] = "bad_extension",
    [DEVICE_ATTEST_UNSUPPORTED_KEY] = "unsupported_key",
};

const char *device_attest_reason_name(enum device_attest_reason reason)
{
    if ((size_t)reason >= sizeof(reason_names) / sizeof(reason_names[0]))
        return NULL;
    return reason_names[reason];
}

void device_attest_clear(struct device_attest_result *result)
{
    for (size_t i = 0; i < result->chain_count && i < ATTEST_MAX_CERTS; i++) {
        free(result->chain[i]);
        result->chain[i] = NULL;
        result->chain_len[i] = 0;
    }
    result->chain_count = 0;
}

/* ---- CBOR ---- */

/*
 * Checks that data[0..len) is exactly one well-formed CBOR data item within
 * DEVICE_ATTEST_MAX_ITEMS and DEVICE_ATTEST_MAX_DEPTH before libcbor builds it: libcbor 0.8
 * allocates the slots a header declares (9 bytes can ask for an array of 2^32 items) and frees
 * nested items recursively. Indefinite lengths are refused
 * everywhere: a device encodes its attObj with definite lengths (as WebAuthn's canonical CBOR
 * does), and one encoding per object keeps the decoder and its tests small. Reserved additional
 * information (28..30) is refused too. Simple values, floats and tags are let through here;
 * where a member's type matters, the reader below refuses them.
 */
static bool cbor_within_bounds(const uint8_t *data, size_t len)
{
    uint64_t pending[DEVICE_ATTEST_MAX_DEPTH + 1]; /* items still due at each open level */
    size_t depth = 0, items = 0, pos = 0;

    pending[0] = 1; /* the top level holds exactly one item */
    for (;;) {
        while (depth > 0 && pending[depth] == 0)
            depth--;
        if (depth == 0 && pending[0] == 0)
            break;
        if (pos >= len || ++items > DEVICE_ATTEST_MAX_ITEMS)
            return false;
        pending[depth]--;
        unsigned major = data[pos] >> 5, info = data[pos] & 0x1f;
        pos++;
        uint64_t arg = info;
        if (info >= 24) {
            if (info > 27)
                return false;
            size_t width = (size_t)1 << (info - 24);
            if (len - pos < width)
                return false;
            arg = 0;
            for (size_t i = 0; i < width; i++)
                arg = (arg << 8) | data[pos + i];
            pos += width;
        }
        uint64_t children = 0;
        switch (major) {
        case 2: /* byte string */
        case 3: /* text string */
            if (arg > len - pos)
                return false;
            pos += (size_t)arg;
            break;
        case 4: /* array */
        case 5: /* map: a key and a value per entry */
            if (arg > DEVICE_ATTEST_MAX_ITEMS)
                return false;
            children = major == 5 ? arg * 2 : arg;
            break;
        case 6: /* tag: one item follows */
            children = 1;
            break;
        default: /* integers, simple values, floats: the header is all */
            break;
        }
        if (children > 0) {
            if (depth == DEVICE_ATTEST_MAX_DEPTH)
                return false;
            pending[++depth] = children;
        }
    }
    return pos == len;
}

static bool text_equals(const cbor_item_t *item, const char *s)
{
    size_t n = strlen(s);
    return cbor_isa_string(item) && cbor_string_is_definite(item) &&
           cbor_string_length(item) == n && memcmp(cbor_string_handle(item), s, n) == 0;
}

static bool same_text(const cbor_item_t *a, const cbor_item_t *b)
{
    size_t n = cbor_string_length(a);
    return n == cbor_string_length(b) &&
           (n == 0 || memcmp(cbor_string_handle(a), cbor_string_handle(b), n) == 0);
}

/* A definite map whose keys are all definite text strings, none twice (a member stated twice
 * could be read two ways: fail closed). */
static bool is_text_keyed_map(const cbor_item_t *item)
{
    if (!cbor_isa_map(item) || !cbor_map_is_definite(item))
        return false;
    const struct cbor_pair *pairs = cbor_map_handle(item);
    size_t count = cbor_map_size(item);
    for (size_t i = 0; i < count; i++) {
        if (!cbor_isa_string(pairs[i].key) || !cbor_string_is_definite(pairs[i].key))
            return false;
        for (size_t k = 0; k < i; k++) {
            if (same_text(pairs[i].key, pairs[k].key))
                return false;
        }
    }
    return true;
}

/* The value of member key in a map is_text_keyed_map() accepted; NULL when absent. */
static const cbor_item_t *map_get(const cbor_item_t *map, const char *key)
{
    const struct cbor_pair *pairs = cbor_map_handle(map);
    size_t count = cbor_map_size(map);
    for (size_t i = 0; i < count; i++) {
        if (text_equals(pairs[i].key, key))
            return pairs[i].value;
    }
    return NULL;
}

/* Reads {fmt: "apple", attStmt: {x5c: [bytes...]}} and copies the x5c items into out->chain. */
static enum device_attest_reason read_attobj(const cbor_item_t *root,
                                             struct device_attest_result *out)
{
    if (!is_text_keyed_map(root))
        return DEVICE_ATTEST_MALFORMED;
    const cbor_item_t *fmt = map_get(root, "fmt");
    if (fmt == NULL || !cbor_isa_string(fmt) || !cbor_string_is_definite(fmt))
        return DEVICE_ATTEST_MALFORMED;
    if (!text_equals(fmt, "apple"))
        return DEVICE_ATTEST_UNSUPPORTED_FORMAT;
    /* authData and any other member are ignored ([DA §5]: authData SHOULD be omitted). A
     * missing attStmt is an object without an attestation, like an attStmt without x5c. */
    const cbor_item_t *stmt = map_get(root, "attStmt");
    if (stmt == NULL)
        return DEVICE_ATTEST_NO_ATTESTATION;
    if (!is_text_keyed_map(stmt))
        return DEVICE_ATTEST_MALFORMED;
    const cbor_item_t *x5c = map_get(stmt, "x5c");
    if (x5c == NULL)
        return DEVICE_ATTEST_NO_ATTESTATION;
    if (!cbor_isa_array(x5c) || !cbor_array_is_definite(x5c))
        return DEVICE_ATTEST_MALFORMED;
    size_t count = cbor_array_size(x5c);
    if (count == 0)
        return DEVICE_ATTEST_NO_ATTESTATION;
    if (count > ATTEST_MAX_CERTS)
        return DEVICE_ATTEST_MALFORMED;
    cbor_item_t **certs = cbor_array_handle(x5c);
    for (size_t i = 0; i < count; i++) {
        const cbor_item_t *c = certs[i];
        if (!cbor_isa_bytestring(c) || !cbor_bytestring_is_definite(c) ||
            cbor_bytestring_length(c) == 0 || cbor_bytestring_length(c) > ATTEST_MAX_CERT_BYTES)
            return DEVICE_ATTEST_MALFORMED;
    }
    for (size_t i = 0; i < count; i++) {
        size_t n = cbor_bytestring_length(certs[i]);
        out->chain[i] = malloc(n);
        if (out->chain[i] == NULL)
            return DEVICE_ATTEST_MALFORMED; /* out of memory: refused, never trusted */
        memcpy(out->chain[i], cbor_bytestring_handle(certs[i]), n);
        out->chain_len[i] = n;
        out->chain_count = i + 1;
    }
    return DEVICE_ATTEST_OK;
}

/* base64url text -> CBOR -> out->chain. */
static enum device_attest_reason decode_attobj(const char *text, size_t len,
                                               struct device_attest_result *out)
{
    if (text == NULL || len == 0 || len > DEVICE_ATTEST_MAX_ATTOBJ)
        return DEVICE_ATTEST_MALFORMED;
    uint8_t *bytes = malloc(len * 3 / 4);
    size_t n = 0;
    if (bytes == NULL)
        return DEVICE_ATTEST_MALFORMED;
    enum device_attest_reason reason = DEVICE_ATTEST_MALFORMED;
    cbor_item_t *root = NULL;
    if (!b64url_decode(text, len, bytes, &n) || !cbor_within_bounds(bytes, n))
        goto out;
    struct cbor_load_result loaded;
    root = cbor_load(bytes, n, &loaded);
    if (root == NULL || loaded.error.code != CBOR_ERR_NONE || loaded.read != n)
        goto out;
    reason = read_attobj(root, out);
out:
    if (root != NULL)
        cbor_decref(&root);
    free(bytes);
    return reason;
}

/* ---- the leaf ---- */

static bool freshness_is_token_hash(const struct attest_verifier *v,
                                    const struct attest_properties *p, const char *token)
{
    uint8_t digest[32];
    unsigned int n = 0;
    if (token == NULL || p->freshness_len != sizeof(digest) ||
        EVP_Digest(token, strlen(token), digest, &n, attest_verifier_get0_sha256(v), NULL) != 1 ||
        n != sizeof(digest))
        return false;
    return CRYPTO_memcmp(p->freshness, digest, sizeof(digest)) == 0;
}

/* The leaf's key as DER SubjectPublicKeyInfo, when it is EC on P-256 or P-384 (named curve):
 * the keys a Secure Enclave makes. */
static enum device_attest_reason read_key(const struct device_attest_result *out, uint8_t *spki,
                                          size_t *spki_len)
{
    X509 *leaf = attest_parse_der(out->chain[0], out->chain_len[0]);
    enum device_attest_reason reason = DEVICE_ATTEST_UNSUPPORTED_KEY;
    EVP_PKEY *key = leaf != NULL ? X509_get0_pubkey(leaf) : NULL;
    char group[64];
    size_t group_len = 0;
    if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) != 1)
        goto out;
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1)
        goto out;
    int n = i2d_PUBKEY(key, NULL);
    if (n <= 0 || (size_t)n > DEVICE_ATTEST_MAX_SPKI)
        goto out;
    unsigned char *p = spki;
    if (i2d_PUBKEY(key, &p) != n)
        goto out;
    *spki_len = (size_t)n;
    reason = DEVICE_ATTEST_OK;
out:
    X509_free(leaf);
    return reason;
}

static enum device_attest_reason verify(struct attest_verifier *v, const char *att_obj, size_t len,
                                        const char *token, time_t verify_time,
                                        struct device_attest_result *out)
{
    enum device_attest_reason reason = decode_attobj(att_obj, len, out);
    if (reason != DEVICE_ATTEST_OK)
        return reason;

    struct attest_leaf leaf;
    enum attest_chain_status chain =
        attest_chain_verify(v, (const uint8_t *const *)out->chain, out->chain_len, out->chain_count,
                            verify_time, &leaf);
    out->leaf_parsed = leaf.parsed;
    out->properties = leaf.properties;
    out->not_before = leaf.not_before;
    out->not_after = leaf.not_after;
    memcpy(out->leaf_sha256, leaf.sha256, sizeof(out->leaf_sha256));
    switch (chain) {
    case ATTEST_CHAIN_VERIFIED:
        break;
    case ATTEST_CHAIN_BAD_EXTENSION:
        return DEVICE_ATTEST_BAD_EXTENSION;
    case ATTEST_CHAIN_UNTRUSTED:
        return DEVICE_ATTEST_UNTRUSTED_CHAIN;
    default:
        return DEVICE_ATTEST_MALFORMED;
    }

    const struct attest_properties *p = &out->properties;
    /* Missing is refused, never skipped ([DA §5] step 2): an attestation without a freshness
     * code could be replayed to any challenge. */
    if (!p->has_freshness)
        return DEVICE_ATTEST_FRESHNESS_MISSING;
    if (!freshness_is_token_hash(v, p, token))
        return DEVICE_ATTEST_FRESHNESS_MISMATCH;
    if (!p->has_serial_number || !p->has_udid)
        return DEVICE_ATTEST_IDENTITY_MISSING;
    return read_key(out, out->spki, &out->spki_len);
}

bool device_attest_verify(struct attest_verifier *v, const char *att_obj, size_t len,
                          const char *token, time_t verify_time, struct device_attest_result *out)
{
    memset(out, 0, sizeof(*out));
    out->properties.sip_enabled = -1;
    out->properties.third_party_kexts_allowed = -1;
    ERR_clear_error();
    out->reason = verify(v, att_obj, len, token, verify_time, out);
    if (out->reason != DEVICE_ATTEST_OK)
        out->spki_len = 0;
    ERR_clear_error();
    return out->reason == DEVICE_ATTEST_OK;
}
