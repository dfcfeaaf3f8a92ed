/* libFuzzer target for server/acme/jws.c. The input is tried three ways: as a request body
 * (jws_parse(), then jws_verify() with the header's jwk), as JWK text (jws_key_from_jwk()), and
 * as a protected header's JSON wrapped in an envelope here, so the fuzzer reaches the header and
 * key code without having to find base64url. It checks what jws.h promises: a parsed header
 * holds exactly one of jwk and kid, a jwk matches alg, canonical text reads back to the same key
 * and thumbprint, decoding base64url is one to one, and OpenSSL's error queue ends empty. */
#include <openssl/err.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "jws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A canonical JWK must read back to itself: same text, thumbprint and key. */
static void check_canonical(EVP_PKEY *key, const char *canonical, const uint8_t *thumbprint)
{
    char again[JWS_MAX_JWK + 1];
    uint8_t again_thumbprint[JWS_THUMBPRINT_LEN];
    EVP_PKEY *back = jws_key_from_jwk(canonical, strlen(canonical), again, again_thumbprint);
    if (back == NULL || strcmp(again, canonical) != 0 ||
        memcmp(again_thumbprint, thumbprint, JWS_THUMBPRINT_LEN) != 0 ||
        EVP_PKEY_eq(back, key) != 1)
        abort();
    EVP_PKEY_free(back);
}

static void parse_and_verify(const char *body, size_t len)
{
    struct jws jws;
    char detail[128] = "";
    if (jws_parse(body, len, &jws, detail, sizeof(detail)) != JWS_OK) {
        if (detail[0] == '\0' || jws.jwk != NULL || jws.payload != NULL)
            abort();
        return;
    }
    if (jws.has_kid == (jws.jwk != NULL) || jws.payload[jws.payload_len] != '\0' ||
        strlen(jws.signing_input) != jws.signing_input_len || strlen(jws.url) == 0)
        abort();
    if (jws.jwk != NULL) {
        enum jws_error err = jws_verify(&jws, jws.jwk);
        if (err != JWS_OK && err != JWS_BAD_SIGNATURE)
            abort(); /* jws_parse() already matched the key to alg */
        check_canonical(jws.jwk, jws.jwk_canonical, jws.jwk_thumbprint);
    }
    jws_clear(&jws);
}

/* The input as a protected header, with a payload and a 64-byte signature. */
static void parse_as_header(const uint8_t *data, size_t size)
{
    static const char head[] = "{\"protected\":\"";
    static const char tail[] = "\",\"payload\":\"e30\",\"signature\":\""
                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                               "AAAAAAAAAAAAAAAAAAAAAA\"}";
    if (size > JWS_MAX_BODY)
        return;
    size_t b64_len = b64url_encoded_len(size);
    char *body = malloc(sizeof(head) - 1 + b64_len + sizeof(tail));
    if (body == NULL)
        return;
    memcpy(body, head, sizeof(head) - 1);
    b64url_encode(data, size, body + sizeof(head) - 1);
    memcpy(body + sizeof(head) - 1 + b64_len, tail, sizeof(tail));
    parse_and_verify(body, strlen(body));
    free(body);
}

/* Decoding accepts exactly the texts the encoder writes. */
static void check_b64url(const uint8_t *data, size_t size)
{
    uint8_t *bytes = malloc(size / 4 * 3 + 3);
    char *text = malloc(size + 1);
    size_t len;
    if (bytes != NULL && text != NULL && b64url_decode((const char *)data, size, bytes, &len)) {
        b64url_encode(bytes, len, text);
        if (strlen(text) != size || memcmp(text, data, size) != 0)
            abort();
    }
    free(bytes);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char canonical[JWS_MAX_JWK + 1];
    uint8_t thumbprint[JWS_THUMBPRINT_LEN];

    parse_and_verify((const char *)data, size);
    EVP_PKEY *key = jws_key_from_jwk((const char *)data, size, canonical, thumbprint);
    if (key != NULL)
        check_canonical(key, canonical, thumbprint);
    EVP_PKEY_free(key);
    parse_as_header(data, size);
    check_b64url(data, size);
    if (ERR_peek_error() != 0)
        abort();
    return 0;
}
