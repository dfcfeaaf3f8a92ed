/*
 * device_attest_fixture: see device_attest_fixture.h.
 */
#include "device_attest_fixture.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Challenge tokens as vouchd mints them: 32 random bytes, base64url. */
const char token[] = "Jm1bTwgIzYxZs0y3yG8cXQ4lRPk0x8nQ5EoIvA2uVdE";
const char other_token[] = "q3Hq0yiM7b9pY4sZt6nW1eXcVbNmLkJhGfDsA0o9-_8";
const char dev_serial[] = "F4GXK2ZQ0D";
const char dev_udid[] = "00008030-001A2B3C4D5E802E";

struct device_attest_fixture g;

/* ---- set-up ---- */

struct attest_verifier *new_verifier(const char *pem)
{
    char err[256];
    struct attest_verifier *v = attest_verifier_new(pem, strlen(pem), err, sizeof(err));
    if (v == NULL)
        fail_msg("attest_verifier_new: %s", err);
    return v;
}

int device_attest_fixture_setup(void **state)
{
    (void)state;
    char err[256];
    g.pki = fake_apple_new(err, sizeof(err));
    g.other = g.pki != NULL ? fake_apple_new(err, sizeof(err)) : NULL;
    if (g.other == NULL) {
        fprintf(stderr, "fake_apple_new: %s\n", err);
        return -1;
    }
    g.root_pem = fake_apple_root_pem(g.pki);
    if (g.root_pem == NULL)
        return -1;
    g.warm = attest_verifier_new(g.root_pem, strlen(g.root_pem), err, sizeof(err));
    return g.warm != NULL ? 0 : -1;
}

int device_attest_fixture_teardown(void **state)
{
    (void)state;
    attest_verifier_free(g.warm);
    free(g.root_pem);
    fake_apple_free(g.other);
    fake_apple_free(g.pki);
    return 0;
}

/* ---- helpers ---- */

void sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(n, 32);
}

char *b64url(const uint8_t *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len * 4 / 3 + 4);
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    assert_non_null(out);
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = alphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0)
        out[n++] = alphabet[(acc << (6 - bits)) & 0x3f];
    out[n] = '\0';
    return out;
}

/* The enrolled device's leaf spec, its freshness code SHA-256(tok) (NULL: none). */
void device_spec(struct fake_leaf_spec *spec, const char *tok)
{
    uint8_t digest[32];
    struct fake_apple_device dev = {
        .serial_number = dev_serial,
        .udid = dev_udid,
        .os_version = "17.5",
        .software_update_device_id = "iPhone16,2",
    };
    if (tok != NULL) {
        sha256(tok, strlen(tok), digest);
        dev.nonce = digest;
        dev.nonce_len = sizeof(digest);
    }
    assert_true(fake_leaf_spec_device(spec, &dev, MINTED));
}

void issue(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
           struct fake_chain *chain)
{
    char err[256];
    if (!fake_apple_leaf(pki, spec, chain, err, sizeof(err)))
        fail_msg("fake_apple_leaf: %s", err);
}

/* [DER...] as a definite CBOR array of byte strings. */
cbor_item_t *x5c_of(uint8_t *const *der, const size_t *len, size_t count)
{
    cbor_item_t *array = cbor_new_definite_array(count);
    assert_non_null(array);
    for (size_t i = 0; i < count; i++)
        assert_true(cbor_array_push(array, cbor_move(cbor_build_bytestring(der[i], len[i]))));
    return array;
}

void map_put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    assert_true(cbor_map_add(map, (struct cbor_pair){.key = cbor_move(cbor_build_string(key)),
                                                     .value = cbor_move(value)}));
}

/* {x5c: x5c} (x5c NULL: {}). */
cbor_item_t *att_stmt(cbor_item_t *x5c)
{
    cbor_item_t *map = cbor_new_definite_map(x5c != NULL ? 1 : 0);
    assert_non_null(map);
    if (x5c != NULL)
        map_put(map, "x5c", x5c);
    return map;
}

/* {fmt: fmt, attStmt: stmt} (either NULL: left out). */
cbor_item_t *att_obj(const char *fmt, cbor_item_t *stmt)
{
    cbor_item_t *map = cbor_new_definite_map((fmt != NULL) + (stmt != NULL));
    assert_non_null(map);
    if (fmt != NULL)
        map_put(map, "fmt", cbor_build_string(fmt));
    if (stmt != NULL)
        map_put(map, "attStmt", stmt);
    return map;
}

/* item's encoding (malloc()ed); takes item. */
uint8_t *serialize(cbor_item_t *item, size_t *len)
{
    uint8_t *buf = NULL;
    size_t size = 0;
    *len = cbor_serialize_alloc(item, &buf, &size);
    assert_true(*len > 0);
    cbor_decref(&item);
    return buf;
}

/* item as attObj text (malloc()ed); takes item. */
char *encode(cbor_item_t *item)
{
    size_t len;
    uint8_t *bytes = serialize(item, &len);
    char *text = b64url(bytes, len);
    free(bytes);
    return text;
}

/* The attObj a device sends for chain: {fmt: "apple", attStmt: {x5c: chain}}. */
char *attobj_of(const struct fake_chain *chain)
{
    return encode(att_obj("apple", att_stmt(x5c_of(chain->der, chain->len, chain->count))));
}

bool same_properties(const struct attest_properties *a, const struct attest_properties *b)
{
    return a->has_serial_number == b->has_serial_number && a->has_udid == b->has_udid &&
           strcmp(a->serial_number, b->serial_number) == 0 && strcmp(a->udid, b->udid) == 0 &&
           a->has_freshness == b->has_freshness && a->freshness_len == b->freshness_len &&
           memcmp(a->freshness, b->freshness, sizeof(a->freshness)) == 0 &&
           strcmp(a->os_version, b->os_version) == 0 && a->sip_enabled == b->sip_enabled;
}

/* device_attest_verify() on v, checking what every call must hold: true exactly when OK, an
 * empty OpenSSL error queue, a name for every refusal, no key unless verified. */
enum device_attest_reason verify_on(struct attest_verifier *v, const char *text, size_t len,
                                    const char *tok, time_t t, struct device_attest_result *out)
{
    memset(out, 0x5a, sizeof(*out)); /* every field must be set by the verifier */
    bool ok = device_attest_verify(v, text, len, tok, t, out);
    assert_int_equal(ok, out->reason == DEVICE_ATTEST_OK);
    assert_int_equal(ERR_peek_error(), 0);
    assert_int_equal(device_attest_reason_name(out->reason) == NULL, ok);
    if (!ok)
        assert_int_equal(out->spki_len, 0);
    assert_true(out->chain_count <= ATTEST_MAX_CERTS);
    return out->reason;
}

/* The verdict on text on g.warm and on a new verifier: both must be want, and agree. out (the
 * cleared result is the caller's to device_attest_clear()) holds g.warm's. */
void verify_both(const char *text, size_t len, const char *tok, time_t t,
                 enum device_attest_reason want, struct device_attest_result *out)
{
    struct attest_verifier *cold = new_verifier(g.root_pem);
    struct device_attest_result full;
    enum device_attest_reason got_full = verify_on(cold, text, len, tok, t, &full);
    enum device_attest_reason got = verify_on(g.warm, text, len, tok, t, out);
    if (got != want || got_full != want)
        fail_msg("want %s, got %s (cached path) and %s (full path)",
                 device_attest_reason_name(want) ? device_attest_reason_name(want) : "ok",
                 device_attest_reason_name(got) ? device_attest_reason_name(got) : "ok",
                 device_attest_reason_name(got_full) ? device_attest_reason_name(got_full) : "ok");
    assert_int_equal(out->leaf_parsed, full.leaf_parsed);
    if (out->leaf_parsed) {
        assert_true(same_properties(&out->properties, &full.properties));
        assert_int_equal(out->not_before, full.not_before);
        assert_int_equal(out->not_after, full.not_after);
        assert_memory_equal(out->leaf_sha256, full.leaf_sha256, 32);
    }
    assert_int_equal(out->spki_len, full.spki_len);
    assert_memory_equal(out->spki, full.spki, out->spki_len);
    assert_int_equal(out->chain_count, full.chain_count);
    device_attest_clear(&full);
    attest_verifier_free(cold);
}

void expect_text(const char *text, enum device_attest_reason want)
{
    struct device_attest_result r;
    verify_both(text, strlen(text), token, NOW, want, &r);
    device_attest_clear(&r);
}

/* expect_text() of item's encoding; takes item. */
void expect_item(cbor_item_t *item, enum device_attest_reason want)
{
    char *text = encode(item);
    expect_text(text, want);
    free(text);
}

/* expect_text() of raw CBOR bytes. */
void expect_bytes(const uint8_t *bytes, size_t len, enum device_attest_reason want)
{
    char *text = b64url(bytes, len);
    expect_text(text, want);
    free(text);
}

/* Issues spec from pki and expects want for the attObj of the chain. */
void expect_spec(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
                 enum device_attest_reason want)
{
    struct fake_chain chain;
    issue(pki, spec, &chain);
    char *text = attobj_of(&chain);
    expect_text(text, want);
    free(text);
    fake_chain_free(&chain);
}
