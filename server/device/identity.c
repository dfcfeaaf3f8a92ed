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

/* The chain-verified certificates: a device signs every request with the same identity, so the
 * next request signed with a known certificate costs one signature check, not a certificate
 * parse (slow in OpenSSL 3) and a chain verification. Exact LRU over cache_size entries: a hash
 * index on the key and a recency list, both threaded through the entries by index. (It was
 * 4-way set-associative until issue 22: sized to the fleet, a fifth of the devices then found
 * their set full, and in a campaign most of them paid the full way again.) */
#define NO_ENTRY UINT32_MAX

/* How an entry's chain was verified: each source has its own settings, so neither vouches for
 * the other. */
enum cache_source {
    SOURCE_SIGNATURE, /* the signer of an Mdm-Signature, the CMS's certificates as intermediates */
    SOURCE_HEADER,    /* a proxy's certificate header, no intermediates */
};

struct cached_identity {
    X509 *cert;               /* NULL: a free entry */
    STACK_OF(X509) * signers; /* cert alone, as CMS_verify takes it */
    uint8_t key[32];          /* SHA-256 of the certificate bytes received (see cache_key) */
    enum cache_source source;
    uint32_t hash_next;              /* the next entry of the same bucket */
    uint32_t newer, older;           /* the recency list; a dropped entry: older, the free list */
    int64_t valid_from, valid_until; /* the whole chain's validity: from <= t < until */
    struct device_identity identity;
};

struct identity_verifier {
    X509_STORE *store;
    EVP_MD *sha256;    /* fetched once: an implicit fetch per digest takes locks */
    time_t fixed_time; /* 0: the current time */
    struct identity_cache_stats stats;
    struct cached_identity *cache; /* cache_size entries */
    uint32_t *buckets;             /* bucket_mask + 1 heads of hash chains */
    uint32_t bucket_mask;
    uint32_t newest, oldest; /* the ends of the recency list of entries in use */
    uint32_t free_entries;   /* the list of dropped entries */
    uint32_t never_used;     /* entries [never_used, capacity) were never handed out */
    uint32_t capacity;
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

/* ---- The cache of chain-verified certificates ---- */

static uint32_t *cache_bucket(struct identity_verifier *v, const uint8_t key[32])
{
    uint32_t hash = (uint32_t)key[0] | (uint32_t)key[1] << 8 | (uint32_t)key[2] << 16 |
                    (uint32_t)key[3] << 24; /* a SHA-256: any 32 bits of it are spread evenly */
    return &v->buckets[hash & v->bucket_mask];
}

static void recency_unlink(struct identity_verifier *v, uint32_t i)
{
    struct cached_identity *e = &v->cache[i];
    if (e->newer != NO_ENTRY)
        v->cache[e->newer].older = e->older;
    else
        v->newest = e->older;
    if (e->older != NO_ENTRY)
        v->cache[e->older].newer = e->newer;
    else
        v->oldest = e->newer;
}

static void recency_push_newest(struct identity_verifier *v, uint32_t i)
{
    struct cached_identity *e = &v->cache[i];
    e->newer = NO_ENTRY;
    e->older = v->newest;
    if (v->newest != NO_ENTRY)
        v->cache[v->newest].newer = i;
    else
        v->oldest = i;
    v->newest = i;
}

/* Takes entry i out of the index and the recency list, frees what it holds and puts it on the
 * free list. */
static void cache_drop(struct identity_verifier *v, uint32_t i)
{
    struct cached_identity *e = &v->cache[i];
    uint32_t *link = cache_bucket(v, e->key);
    while (*link != i)
        link = &v->cache[*link].hash_next;
    *link = e->hash_next;
    recency_unlink(v, i);
    sk_X509_pop_free(e->signers, X509_free);
    X509_free(e->cert);
    memset(e, 0, sizeof(*e));
    e->older = v->free_entries;
    v->free_entries = i;
}

static int64_t verify_time(const struct identity_verifier *v)
{
    return (int64_t)(v->fixed_time != 0 ? v->fixed_time : time(NULL));
}

/* The index of the entry for these certificate bytes verified this way, or NO_ENTRY. */
static uint32_t cache_lookup(struct identity_verifier *v, const uint8_t key[32],
                             enum cache_source source)
{
    uint32_t i = *cache_bucket(v, key);
    while (i != NO_ENTRY && (v->cache[i].source != source || memcmp(v->cache[i].key, key, 32) != 0))
        i = v->cache[i].hash_next;
    return i;
}

/* The entry for these certificate bytes, verified the same way and valid now, or NULL. An entry
 * out of its validity is dropped: its chain would not verify now. */
static struct cached_identity *cache_find(struct identity_verifier *v, const uint8_t key[32],
                                          enum cache_source source)
{
    uint32_t i = cache_lookup(v, key, source);
    if (i == NO_ENTRY)
        return NULL;
    int64_t now = verify_time(v);
    if (now < v->cache[i].valid_from || now >= v->cache[i].valid_until) {
        cache_drop(v, i);
        v->stats.expired++;
        return NULL;
    }
    recency_unlink(v, i);
    recency_push_newest(v, i);
    return &v->cache[i];
}

/* ASN1_TIME to seconds since the epoch; false if it cannot be read. */
static bool asn1_time_seconds(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return false;
    *out = (int64_t)timegm(&tm);
    return true;
}

/* Keeps cert, whose chain (as X509_verify_cert built it) was just verified, under key. Nothing is
 * kept if a validity in the chain cannot be read: the next request is verified in full. */
static void cache_add(struct identity_verifier *v, const uint8_t key[32], enum cache_source source,
                      X509 *cert, STACK_OF(X509) * chain, const struct device_identity *identity)
{
    int64_t from = INT64_MIN, until = INT64_MAX;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        int64_t nb, na;
        if (!asn1_time_seconds(X509_get0_notBefore(c), &nb) ||
            !asn1_time_seconds(X509_get0_notAfter(c), &na))
            return;
        from = nb > from ? nb : from;
        until = na < until ? na : until;
    }
    if (sk_X509_num(chain) < 1 || from >= until)
        return;
    STACK_OF(X509) *signers = sk_X509_new_reserve(NULL, 1);
    if (signers == NULL || X509_up_ref(cert) != 1) {
        sk_X509_free(signers);
        return;
    }
    sk_X509_push(signers, cert); /* reserved: cannot fail; the stack's reference */
    if (X509_up_ref(cert) != 1) {
        sk_X509_pop_free(signers, X509_free);
        return;
    }
    uint32_t i = cache_lookup(v, key, source);
    if (i != NO_ENTRY) {
        cache_drop(v, i); /* the same certificate verified again: its entry is renewed */
    } else if (v->free_entries == NO_ENTRY && v->never_used == v->capacity) {
        cache_drop(v, v->oldest);
        v->stats.evicted++;
    }
    if (v->free_entries != NO_ENTRY) {
        i = v->free_entries;
        v->free_entries = v->cache[i].older;
    } else {
        i = v->never_used++;
    }
    struct cached_identity *e = &v->cache[i];
    e->cert = cert; /* the entry's reference */
    e->signers = signers;
    memcpy(e->key, key, 32);
    e->source = source;
    e->valid_from = from;
    e->valid_until = until;
    e->identity = *identity;
    uint32_t *bucket = cache_bucket(v, key);
    e->hash_next = *bucket;
    *bucket = i;
    recency_push_newest(v, i);
}

/* Verifies cert's chain to the trust store as CMS_verify does for a signer ("smime_sign"
 * defaults, the store's purpose, untrusted the CMS's own certificates and CRLs) or as the header
 * path does (the store's settings alone). The chain is the caller's (sk_X509_pop_free). */
static bool verify_chain(const struct identity_verifier *v, X509 *cert, enum cache_source source,
                         CMS_ContentInfo *cms, STACK_OF(X509) * *chain)
{
    STACK_OF(X509) *untrusted = cms ? CMS_get1_certs(cms) : NULL;
    STACK_OF(X509_CRL) *crls = cms ? CMS_get1_crls(cms) : NULL;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = ctx != NULL && X509_STORE_CTX_init(ctx, v->store, cert, untrusted) == 1;
    if (ok && source == SOURCE_SIGNATURE) {
        X509_STORE_CTX_set_default(ctx, "smime_sign");
        if (crls != NULL)
            X509_STORE_CTX_set0_crls(ctx, crls);
    }
    ok = ok && X509_verify_cert(ctx) == 1 && (*chain = X509_STORE_CTX_get1_chain(ctx)) != NULL;
    X509_STORE_CTX_free(ctx);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    sk_X509_pop_free(untrusted, X509_free);
    return ok;
}

struct identity_verifier *identity_verifier_new(const char *pem, size_t pem_len, size_t cache_size,
                                                char *err, size_t err_size)
{
    if (cache_size < 1 || cache_size > IDENTITY_CACHE_MAX) {
        snprintf(err, err_size, "the identity cache size must be 1 to %u", IDENTITY_CACHE_MAX);
        return NULL;
    }
    struct identity_verifier *v = calloc(1, sizeof(*v));
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (v != NULL) {
        /* Pages never touched stay unmapped: an entry costs memory once used. */
        v->cache = calloc(cache_size, sizeof(*v->cache));
        size_t buckets = 1;
        while (buckets < cache_size)
            buckets <<= 1;
        v->buckets = malloc(buckets * sizeof(*v->buckets));
        v->bucket_mask = (uint32_t)(buckets - 1);
    }
    if (v != NULL && v->cache != NULL && v->buckets != NULL) {
        memset(v->buckets, 0xff, (v->bucket_mask + (size_t)1) * sizeof(*v->buckets));
        v->newest = v->oldest = v->free_entries = NO_ENTRY;
        v->capacity = (uint32_t)cache_size;
    }
    if (v == NULL || v->cache == NULL || v->buckets == NULL || bio == NULL ||
        (v->store = X509_STORE_new()) == NULL ||
        (v->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL)) == NULL) {
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
    while (v->cache != NULL && v->buckets != NULL && v->newest != NO_ENTRY)
        cache_drop(v, v->newest);
    free(v->cache);
    free(v->buckets);
    EVP_MD_free(v->sha256);
    X509_STORE_free(v->store);
    free(v);
}

void identity_verifier_set_time(struct identity_verifier *v, time_t when)
{
    v->fixed_time = when;
    X509_VERIFY_PARAM *param = X509_STORE_get0_param(v->store);
    if (when != 0)
        X509_VERIFY_PARAM_set_time(param, when);
    else
        X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_USE_CHECK_TIME);
}

void identity_verifier_cache_stats(const struct identity_verifier *v,
                                   struct identity_cache_stats *out)
{
    *out = v->stats;
}

static bool describe_cert(const struct identity_verifier *v, X509 *cert,
                          struct device_identity *out)
{
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    if (der_len <= 0)
        return false;
    bool ok = EVP_Digest(der, (size_t)der_len, out->sha256, NULL, v->sha256, NULL) == 1;
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

/* ---- Mdm-Signature ---- */

/* One DER TLV at p (avail bytes on): a one-byte tag and a definite length. */
static bool der_tlv(const uint8_t *p, size_t avail, size_t *header_len, size_t *content_len)
{
    if (avail < 2 || (p[0] & 0x1f) == 0x1f || p[1] == 0x80)
        return false;
    size_t len = p[1], header = 2;
    if (len > 0x80) {
        size_t bytes = len & 0x7f;
        if (bytes > 4 || avail < 2 + bytes)
            return false;
        len = 0;
        for (size_t i = 0; i < bytes; i++)
            len = len << 8 | p[2 + i];
        header += bytes;
    }
    if (len > avail - header)
        return false;
    *header_len = header;
    *content_len = len;
    return true;
}

static size_t der_header_len(size_t len)
{
    size_t n = 2;
    if (len >= 0x80)
        for (; len > 0; len >>= 8)
            n++; /* the long form: one more byte per byte of the length */
    return n;
}

static uint8_t *der_put_header(uint8_t *out, uint8_t tag, size_t len)
{
    size_t bytes = der_header_len(len) - 2;
    *out++ = tag;
    *out++ = (uint8_t)(bytes == 0 ? len : 0x80 | bytes);
    for (size_t i = bytes; i > 0; i--)
        *out++ = (uint8_t)(len >> (8 * (i - 1)));
    return out;
}

/* Where the certificates are in a ContentInfo of SignedData: what comes before them, their
 * content (the certificates' DER one after another) and what comes after. */
struct cms_layout {
    const uint8_t *content_type; /* the ContentInfo's OID, as a TLV */
    size_t content_type_len;
    const uint8_t *before, *certs, *after; /* within the SignedData SEQUENCE */
    size_t before_len, certs_len, after_len;
};

/* Finds the certificates of der, a CMS in definite-length encoding that der spans exactly and
 * whose [0] certificates field holds only certificates. Anything else (false) goes the full way,
 * through OpenSSL's parser alone. */
static bool cms_find_certs(const uint8_t *der, size_t der_len, struct cms_layout *l)
{
    size_t h, n, h2, n2;
    if (!der_tlv(der, der_len, &h, &n) || der[0] != 0x30 || h + n != der_len)
        return false;
    const uint8_t *p = der + h, *end = p + n;
    if (!der_tlv(p, (size_t)(end - p), &h2, &n2) || p[0] != 0x06)
        return false;
    l->content_type = p;
    l->content_type_len = h2 + n2;
    p += h2 + n2;
    /* [0] EXPLICIT SignedData, which ends the ContentInfo */
    if (!der_tlv(p, (size_t)(end - p), &h, &n) || p[0] != 0xa0 || p + h + n != end)
        return false;
    p += h;
    if (!der_tlv(p, (size_t)(end - p), &h, &n) || p[0] != 0x30 || p + h + n != end)
        return false;
    p += h;
    l->before = p;
    l->certs = NULL;
    while (p < end) {
        if (!der_tlv(p, (size_t)(end - p), &h, &n))
            return false;
        if (p[0] == 0xa0) {
            if (l->certs != NULL || n == 0)
                return false;
            l->before_len = (size_t)(p - l->before);
            l->certs = p + h;
            l->certs_len = n;
            l->after = p + h + n;
            l->after_len = (size_t)(end - l->after);
            for (const uint8_t *c = l->certs; c < l->after; c += h2 + n2)
                if (!der_tlv(c, (size_t)(l->after - c), &h2, &n2) || c[0] != 0x30)
                    return false;
        }
        p += h + n;
    }
    return l->certs != NULL;
}

/* The same ContentInfo without its certificates (malloc'd): all OpenSSL has left to parse when
 * the certificates are cached. */
static uint8_t *cms_without_certs(const struct cms_layout *l, size_t *out_len)
{
    size_t signed_data = l->before_len + l->after_len;
    size_t explicit_content = der_header_len(signed_data) + signed_data;
    size_t content_info = l->content_type_len + der_header_len(explicit_content) + explicit_content;
    size_t total = der_header_len(content_info) + content_info;
    uint8_t *out = malloc(total), *p = out;
    if (out == NULL)
        return NULL;
    p = der_put_header(p, 0x30, content_info);
    memcpy(p, l->content_type, l->content_type_len);
    p += l->content_type_len;
    p = der_put_header(p, 0xa0, explicit_content);
    p = der_put_header(p, 0x30, signed_data);
    memcpy(p, l->before, l->before_len);
    memcpy(p + l->before_len, l->after, l->after_len);
    *out_len = total;
    return out;
}

/* A detached SignedData with exactly one SignerInfo. */
static enum identity_error check_structure(CMS_ContentInfo *cms)
{
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed || !CMS_is_detached(cms))
        return IDENTITY_BAD_CMS;
    STACK_OF(CMS_SignerInfo) *signer_infos = CMS_get0_SignerInfos(cms);
    if (signer_infos == NULL || sk_CMS_SignerInfo_num(signer_infos) != 1)
        return IDENTITY_BAD_CMS;
    return IDENTITY_OK;
}

/* The signer's signature over the body, against the certificates given (NULL: the CMS's own);
 * no chain verification. */
static bool verify_body(const struct identity_verifier *v, CMS_ContentInfo *cms,
                        STACK_OF(X509) * signers, const void *body, size_t body_len)
{
    BIO *content = BIO_new_mem_buf(body, (int)body_len);
    bool ok = content != NULL && CMS_verify(cms, signers, v->store, content, NULL,
                                            CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) == 1;
    BIO_free(content);
    return ok;
}

/* The fast way, for a signer whose certificates are cached: OpenSSL parses the CMS without
 * them and checks the signature with the cached certificate. True only if that succeeded; any
 * failure is left to the full way, which gives it its usual error. */
static bool verify_cached(struct identity_verifier *v, const uint8_t key[32],
                          const struct cms_layout *l, const void *body, size_t body_len,
                          struct device_identity *out)
{
    struct cached_identity *e = cache_find(v, key, SOURCE_SIGNATURE);
    if (e == NULL)
        return false;
    size_t len = 0;
    uint8_t *der = cms_without_certs(l, &len);
    const unsigned char *p = der;
    CMS_ContentInfo *cms = der ? d2i_CMS_ContentInfo(NULL, &p, (long)len) : NULL;
    bool ok = cms != NULL && p == der + len && check_structure(cms) == IDENTITY_OK &&
              verify_body(v, cms, e->signers, body, body_len);
    if (ok) {
        STACK_OF(X509) *signers = CMS_get0_signers(cms);
        ok = signers != NULL && sk_X509_num(signers) == 1 && sk_X509_value(signers, 0) == e->cert;
        sk_X509_free(signers);
    }
    CMS_ContentInfo_free(cms);
    free(der);
    ERR_clear_error();
    if (ok) {
        *out = e->identity;
        v->stats.hits++;
    }
    return ok;
}

/* The full way, as CMS_verify does it and in its order (the signer's certificate, its chain,
 * then the signature), the chain verified here to keep it for the cache under key (if any). */
static enum identity_error verify_signature(struct identity_verifier *v, CMS_ContentInfo *cms,
                                            const void *body, size_t body_len, const uint8_t *key,
                                            struct device_identity *out)
{
    enum identity_error result = check_structure(cms);
    if (result != IDENTITY_OK)
        return result;
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    X509 *signer = NULL;
    if (CMS_set1_signers_certs(cms, NULL, 0) >= 0)
        CMS_SignerInfo_get0_algs(si, NULL, &signer, NULL, NULL);
    if (signer == NULL)
        return IDENTITY_BAD_SIGNATURE;
    STACK_OF(X509) *chain = NULL;
    if (!verify_chain(v, signer, SOURCE_SIGNATURE, cms, &chain))
        return IDENTITY_UNTRUSTED;
    result = IDENTITY_BAD_SIGNATURE;
    if (verify_body(v, cms, NULL, body, body_len)) {
        STACK_OF(X509) *signers = CMS_get0_signers(cms);
        result = IDENTITY_BAD_CMS;
        if (signers != NULL && sk_X509_num(signers) == 1 &&
            describe_cert(v, sk_X509_value(signers, 0), out)) {
            result = IDENTITY_OK;
            v->stats.misses++;
            if (key != NULL)
                cache_add(v, key, SOURCE_SIGNATURE, sk_X509_value(signers, 0), chain, out);
        }
        sk_X509_free(signers);
    }
    sk_X509_pop_free(chain, X509_free);
    return result;
}

enum identity_error identity_from_signature(struct identity_verifier *v, const char *header,
                                            size_t header_len, const void *body, size_t body_len,
                                            struct device_identity *out)
{
    ERR_clear_error(); /* whatever the caller left there, the queue is left empty */
    if (header == NULL || header_len == 0)
        return IDENTITY_MISSING;
    if (body_len > INT32_MAX || !only_base64(header, header_len))
        return IDENTITY_BAD_ENCODING;
    size_t der_len;
    unsigned char *der = base64_decode(header, header_len, &der_len);
    if (der == NULL)
        return IDENTITY_BAD_ENCODING;
    struct cms_layout layout;
    uint8_t key[32];
    bool keyed = cms_find_certs(der, der_len, &layout) &&
                 EVP_Digest(layout.certs, layout.certs_len, key, NULL, v->sha256, NULL) == 1;
    enum identity_error result = IDENTITY_OK;
    if (!keyed || !verify_cached(v, key, &layout, body, body_len, out)) {
        const unsigned char *p = der;
        CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_len);
        if (cms == NULL || p != der + der_len)
            result = IDENTITY_BAD_ENCODING;
        else
            result = verify_signature(v, cms, body, body_len, keyed ? key : NULL, out);
        CMS_ContentInfo_free(cms);
    }
    free(der);
    ERR_clear_error();
    return result;
}

/* ---- Certificate headers ---- */

/* The DER of a certificate given in either header form (malloc'd), not parsed; *exact: the DER
 * must span it exactly (RFC 9440), else it is the start of the first PEM certificate. */
static unsigned char *cert_bytes_from_header(const char *header, size_t len, size_t *der_len,
                                             bool *exact)
{
    if (len >= 2 && header[0] == ':' && header[len - 1] == ':') {
        /* RFC 9440: the DER as a structured-field byte sequence. */
        *exact = true;
        if (!only_base64(header + 1, len - 2))
            return NULL;
        return base64_decode(header + 1, len - 2, der_len);
    }
    /* nginx's $ssl_client_escaped_cert: URL-escaped PEM. */
    *exact = false;
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
    unsigned char *der = NULL, *data = NULL;
    long data_len = 0;
    if (strncmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0) {
        /* What PEM_read_bio_X509 reads before it parses. */
        BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
        if (bio != NULL &&
            PEM_bytes_read_bio(&data, &data_len, NULL, PEM_STRING_X509, bio, NULL, NULL) == 1 &&
            data_len > 0 && (der = malloc((size_t)data_len)) != NULL) {
            memcpy(der, data, (size_t)data_len);
            *der_len = (size_t)data_len;
        }
        BIO_free(bio);
    }
    OPENSSL_free(data);
    free(pem);
    return der;
}

static X509 *cert_parse(const unsigned char *der, size_t der_len, bool exact)
{
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)der_len);
    if (cert != NULL && exact && p != der + der_len) {
        X509_free(cert);
        cert = NULL;
    }
    return cert;
}

static X509 *cert_from_header(const char *header, size_t len)
{
    size_t der_len;
    bool exact;
    unsigned char *der = cert_bytes_from_header(header, len, &der_len, &exact);
    X509 *cert = der ? cert_parse(der, der_len, exact) : NULL;
    free(der);
    return cert;
}

enum identity_error identity_from_cert_header(struct identity_verifier *v, const char *header,
                                              size_t header_len, struct device_identity *out)
{
    if (header == NULL || header_len == 0)
        return IDENTITY_MISSING;
    if (header_len > IDENTITY_MAX_HEADER_LEN || memchr(header, '\0', header_len) != NULL)
        return IDENTITY_BAD_ENCODING;
    size_t der_len;
    bool exact;
    unsigned char *der = cert_bytes_from_header(header, header_len, &der_len, &exact);
    uint8_t key[32];
    bool keyed = der != NULL && EVP_Digest(der, der_len, key, NULL, v->sha256, NULL) == 1;
    struct cached_identity *e = keyed ? cache_find(v, key, SOURCE_HEADER) : NULL;
    if (e != NULL) {
        free(der);
        *out = e->identity;
        v->stats.hits++;
        return IDENTITY_OK;
    }
    X509 *cert = der ? cert_parse(der, der_len, exact) : NULL;
    free(der);
    if (cert == NULL) {
        ERR_clear_error();
        return IDENTITY_BAD_ENCODING;
    }
    enum identity_error result = IDENTITY_UNTRUSTED;
    STACK_OF(X509) *chain = NULL;
    if (verify_chain(v, cert, SOURCE_HEADER, NULL, &chain)) {
        result = describe_cert(v, cert, out) ? IDENTITY_OK : IDENTITY_BAD_ENCODING;
        if (result == IDENTITY_OK) {
            v->stats.misses++;
            if (keyed)
                cache_add(v, key, SOURCE_HEADER, cert, chain, out);
        }
    }
    sk_X509_pop_free(chain, X509_free);
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
