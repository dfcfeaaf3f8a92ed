/*
 * fake-apple: a command line for the stand-in Apple attestation PKI (fake_apple.h), for vouchctl
 * verify tests, bench seeds and poking at a verifier by hand. Not installed.
 *
 *   fake-apple init --dir D          D/apple-root.pem (attestation_roots), .key, apple-sub.*
 *   fake-apple leaf --dir D --udid U --serial S --os 17.5 --nonce HEX --out-chain PREFIX
 *                                    PREFIX-0.der (leaf), PREFIX-1.der (sub CA)
 *   fake-apple leaf --dir D --udid U --serial S --freshness-of-token TOKEN --attobj-out F
 *                   --key-out K      F: the attObj of an ACME device-attest-01 answer,
 *                                    K: the leaf's private key (for the finalize CSR)
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <cbor.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fake_apple.h"
#include "hex.h"
#include "tu_file.h"
#include "tu_text.h"

#define EXIT_USAGE 2
#define MAX_EDITS 64
#define ATTOBJ_MAX (32 * 1024) /* DEVICE_ATTEST_MAX_ATTOBJ: what vouchd reads */

static const char usage_text[] =
    "usage: fake-apple init --dir D\n"
    "         Creates the stand-in Apple attestation hierarchy in D unless present:\n"
    "         apple-root.pem (vouchd's attestation_roots), apple-root.key, apple-sub.pem,\n"
    "         apple-sub.key.\n"
    "       fake-apple leaf --dir D {--out-chain PREFIX | --attobj-out FILE} [options]\n"
    "         Issues a leaf shaped like Apple's from D's sub CA and writes PREFIX-0.der (leaf)\n"
    "         and PREFIX-1.der (sub CA): the chain as a device sends it; or FILE, the chain as\n"
    "         an ACME device-attest-01 attObj: base64url (unpadded, no newline) of the CBOR\n"
    "         {\"fmt\": \"apple\", \"attStmt\": {\"x5c\": [leaf, sub CA]}}.\n"
    "\n"
    "leaf options (properties are left out unless given):\n"
    "  --udid U --serial S --os V    .9.2, .9.1, .10.1 (and .10.2, .10.3 = V unless below)\n"
    "  --sepos V --llb V             .10.2, .10.3\n"
    "  --sudid ID                    .9.4 SoftwareUpdateDeviceID, e.g. D73AP\n"
    "  --macos                       .13.1 SIP 0, .13.2 Full Security, .13.3 kexts 0\n"
    "  --nonce HEX                   .11.1 freshness code (1..256 bytes; none without it)\n"
    "  --freshness-of-token TOKEN    .11.1 = SHA-256 of the ACME challenge token's ASCII\n"
    "  --key-curve P-256|P-384       the curve of the leaf's key (default P-384)\n"
    "  --key-out FILE                write the leaf's private key (PKCS#8 PEM, mode 0600)\n"
    "  --not-before UNIXTIME         default: now\n"
    "  --not-after UNIXTIME          default: not-before + 91 days\n"
    "  --serial-number N             certificate serial (default: not-before in ms)\n"
    "  --set PROP=ASCII              set a property to ASCII bytes\n"
    "  --set-hex PROP=HEX            set a property to raw bytes\n"
    "  --omit PROP  --blank PROP  --duplicate PROP  --critical PROP\n"
    "  --extra OID=HEX  --extra-critical OID=HEX   add a raw extension\n"
    "  --sign-with-root              the root signs the leaf (no sub CA in between)\n"
    "  --signer-dir D2               D2's hierarchy signs the leaf; the chain still carries D's\n"
    "                                sub CA (same names, other keys)\n"
    "PROP: a dotted OID, its suffix after 1.2.840.113635.100.8 (9.1) or a name: serial, udid,\n"
    "sudid, os, sepos, llb, freshness, sip, secure-boot, kexts. Edits apply in command order.\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

enum edit_kind {
    EDIT_SET,
    EDIT_SET_HEX,
    EDIT_OMIT,
    EDIT_BLANK,
    EDIT_DUPLICATE,
    EDIT_CRITICAL,
    EDIT_EXTRA,
    EDIT_EXTRA_CRITICAL
};

struct edit {
    enum edit_kind kind;
    const char *arg;
};

struct cli {
    const char *dir;
    const char *out_chain;
    const char *attobj_out;
    const char *key_out;
    const char *key_curve; /* NULL: fake_apple's own P-384 key */
    const char *signer_dir;
    struct fake_apple_device dev;
    unsigned char nonce[FAKE_APPLE_VALUE_MAX];
    time_t not_before;
    time_t not_after;
    unsigned long long serial;
    bool sign_with_root;
    struct edit edits[MAX_EDITS];
    size_t nedits;
};

enum opt_id {
    OPT_DIR = 256,
    OPT_OUT_CHAIN,
    OPT_UDID,
    OPT_SERIAL,
    OPT_OS,
    OPT_SEPOS,
    OPT_LLB,
    OPT_SUDID,
    OPT_MACOS,
    OPT_NONCE,
    OPT_NOT_BEFORE,
    OPT_NOT_AFTER,
    OPT_SERIAL_NUMBER,
    OPT_SET,
    OPT_SET_HEX,
    OPT_OMIT,
    OPT_BLANK,
    OPT_DUPLICATE,
    OPT_CRITICAL,
    OPT_EXTRA,
    OPT_EXTRA_CRITICAL,
    OPT_SIGN_WITH_ROOT,
    OPT_SIGNER_DIR,
    OPT_FRESHNESS_OF_TOKEN,
    OPT_ATTOBJ_OUT,
    OPT_KEY_OUT,
    OPT_KEY_CURVE,
    OPT_HELP = 'h'
};

static const struct option longopts[] = {
    {"dir", required_argument, NULL, OPT_DIR},
    {"out-chain", required_argument, NULL, OPT_OUT_CHAIN},
    {"udid", required_argument, NULL, OPT_UDID},
    {"serial", required_argument, NULL, OPT_SERIAL},
    {"os", required_argument, NULL, OPT_OS},
    {"sepos", required_argument, NULL, OPT_SEPOS},
    {"llb", required_argument, NULL, OPT_LLB},
    {"sudid", required_argument, NULL, OPT_SUDID},
    {"macos", no_argument, NULL, OPT_MACOS},
    {"nonce", required_argument, NULL, OPT_NONCE},
    {"not-before", required_argument, NULL, OPT_NOT_BEFORE},
    {"not-after", required_argument, NULL, OPT_NOT_AFTER},
    {"serial-number", required_argument, NULL, OPT_SERIAL_NUMBER},
    {"set", required_argument, NULL, OPT_SET},
    {"set-hex", required_argument, NULL, OPT_SET_HEX},
    {"omit", required_argument, NULL, OPT_OMIT},
    {"blank", required_argument, NULL, OPT_BLANK},
    {"duplicate", required_argument, NULL, OPT_DUPLICATE},
    {"critical", required_argument, NULL, OPT_CRITICAL},
    {"extra", required_argument, NULL, OPT_EXTRA},
    {"extra-critical", required_argument, NULL, OPT_EXTRA_CRITICAL},
    {"sign-with-root", no_argument, NULL, OPT_SIGN_WITH_ROOT},
    {"signer-dir", required_argument, NULL, OPT_SIGNER_DIR},
    {"freshness-of-token", required_argument, NULL, OPT_FRESHNESS_OF_TOKEN},
    {"attobj-out", required_argument, NULL, OPT_ATTOBJ_OUT},
    {"key-out", required_argument, NULL, OPT_KEY_OUT},
    {"key-curve", required_argument, NULL, OPT_KEY_CURVE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "fake-apple: %s%s%s\n(see fake-apple --help)\n", what, arg != NULL ? ": " : "",
            arg != NULL ? arg : "");
    return EXIT_USAGE;
}

/* Splits "KEY=VALUE" into a copy of KEY and a pointer to VALUE. */
static bool split_assignment(const char *arg, char *key, size_t keylen, const char **value)
{
    const char *eq = strchr(arg, '=');

    if (eq == NULL || eq == arg || (size_t)(eq - arg) >= keylen)
        return false;
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = '\0';
    *value = eq + 1;
    return true;
}

static int apply_edit(struct fake_leaf_spec *spec, const struct edit *e)
{
    char key[FAKE_APPLE_OID_MAX];
    const char *value = NULL;
    unsigned char bytes[FAKE_APPLE_VALUE_MAX];
    size_t len = 0;
    enum fake_apple_prop prop;

    switch (e->kind) {
    case EDIT_SET:
    case EDIT_SET_HEX:
        if (!split_assignment(e->arg, key, sizeof(key), &value) ||
            !fake_apple_prop_parse(key, &prop))
            return usage_error("--set/--set-hex wants PROP=VALUE with a known PROP", e->arg);
        if (e->kind == EDIT_SET_HEX) {
            if (!hex_decode(value, strlen(value), bytes, sizeof(bytes), &len))
                return usage_error("bad hex value", e->arg);
            if (!fake_leaf_spec_set(spec, prop, bytes, len))
                return usage_error("value too long", e->arg);
        } else if (!fake_leaf_spec_set_string(spec, prop, value)) {
            return usage_error("value too long", e->arg);
        }
        return 0;
    case EDIT_EXTRA:
    case EDIT_EXTRA_CRITICAL:
        if (!split_assignment(e->arg, key, sizeof(key), &value) ||
            !hex_decode(value, strlen(value), bytes, sizeof(bytes), &len))
            return usage_error("--extra wants OID=HEX", e->arg);
        if (!fake_leaf_spec_add_extra(spec, key, e->kind == EDIT_EXTRA_CRITICAL, bytes, len))
            return usage_error("too many extra extensions", e->arg);
        return 0;
    default:
        break;
    }
    if (!fake_apple_prop_parse(e->arg, &prop))
        return usage_error("unknown property", e->arg);
    switch (e->kind) {
    case EDIT_OMIT:
        fake_leaf_spec_omit(spec, prop);
        break;
    case EDIT_BLANK:
        fake_leaf_spec_blank(spec, prop);
        break;
    case EDIT_DUPLICATE:
        spec->props[prop].duplicate = true;
        break;
    case EDIT_CRITICAL:
        spec->props[prop].critical = true;
        break;
    default:
        break;
    }
    return 0;
}

static bool write_file(const char *path, const unsigned char *data, size_t len)
{
    FILE *f = fopen(path, "wbe");
    bool ok;

    if (f == NULL) {
        fprintf(stderr, "fake-apple: creating %s: %s\n", path, strerror(errno));
        return false;
    }
    ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "fake-apple: writing %s: %s\n", path, strerror(errno));
    return ok;
}

/* ---- ACME device-attest-01 ---- */

static char *b64url_encode(const unsigned char *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len / 3 * 4 + 4);
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = alphabet[(acc >> bits) & 0x3f];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0)
        out[n++] = alphabet[(acc << (6 - bits)) & 0x3f];
    out[n] = '\0';
    return out;
}

static bool map_put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    cbor_item_t *k = cbor_build_string(key);
    bool ok = k != NULL && value != NULL &&
              cbor_map_add(map, (struct cbor_pair){.key = k, .value = value});

    if (k != NULL)
        cbor_decref(&k);
    if (value != NULL)
        cbor_decref(&value);
    return ok;
}

/* The attObj text of chain (malloc()ed), NULL when out of memory. */
static char *attobj_text(const struct fake_chain *chain)
{
    cbor_item_t *obj = cbor_new_definite_map(2);
    cbor_item_t *stmt = cbor_new_definite_map(1);
    cbor_item_t *x5c = cbor_new_definite_array(chain->count);
    unsigned char *bytes = NULL;
    size_t size = 0, len = 0;
    char *text = NULL;
    bool ok = obj != NULL && stmt != NULL && x5c != NULL;

    for (size_t i = 0; ok && i < chain->count; i++) {
        cbor_item_t *item = cbor_build_bytestring(chain->der[i], chain->len[i]);
        ok = item != NULL && cbor_array_push(x5c, item);
        if (item != NULL)
            cbor_decref(&item);
    }
    /* map_put() takes a reference each; the ones dropped here are the builders'. */
    if (ok && x5c != NULL && cbor_incref(x5c) != NULL)
        ok = map_put(stmt, "x5c", x5c);
    if (ok && stmt != NULL && cbor_incref(stmt) != NULL)
        ok = map_put(obj, "fmt", cbor_build_string("apple")) && map_put(obj, "attStmt", stmt);
    if (ok)
        len = cbor_serialize_alloc(obj, &bytes, &size);
    if (len > 0)
        text = b64url_encode(bytes, len);
    free(bytes);
    if (x5c != NULL)
        cbor_decref(&x5c);
    if (stmt != NULL)
        cbor_decref(&stmt);
    if (obj != NULL)
        cbor_decref(&obj);
    return text;
}

static bool write_key(const char *path, EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    size_t len = 0;
    char err[512];
    bool ok = false;

    if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1)
        pem = fake_bio_string(bio, &len);
    if (pem == NULL)
        fake_openssl_error(err, sizeof(err), "encoding the leaf key");
    else
        ok = tu_file_write_atomic(path, pem, len, 0600, err, sizeof(err));
    if (!ok)
        fprintf(stderr, "fake-apple: %s\n", err);
    if (pem != NULL)
        OPENSSL_cleanse(pem, len);
    free(pem);
    BIO_free(bio);
    return ok;
}

static int cmd_init(const struct cli *c)
{
    char err[512];
    bool created = false;
    struct fake_apple *pki;

    if (mkdir(c->dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "fake-apple: creating %s: %s\n", c->dir, strerror(errno));
        return EXIT_FAILURE;
    }
    pki = fake_apple_open(c->dir, &created, err, sizeof(err));
    if (pki == NULL) {
        fprintf(stderr, "fake-apple: %s\n", err);
        return EXIT_FAILURE;
    }
    fake_apple_free(pki);
    printf("%s/%s\n", c->dir, FAKE_APPLE_ROOT_CERT_FILE);
    fprintf(stderr, "fake-apple: %s the stand-in hierarchy in %s\n", created ? "created" : "kept",
            c->dir);
    return EXIT_SUCCESS;
}

static int cmd_leaf(const struct cli *c)
{
    char err[512];
    struct fake_apple *pki = NULL;
    struct fake_apple *signer = NULL;
    struct fake_leaf_spec spec;
    struct fake_chain chain = {0, {NULL}, {0}};
    EVP_PKEY *key = NULL;
    char *attobj = NULL;
    int rc = EXIT_FAILURE;

    if (!fake_leaf_spec_device(&spec, &c->dev, c->not_before))
        return usage_error("a property value is too long", NULL);
    spec.not_after = c->not_after;
    spec.serial = c->serial;
    spec.issuer = c->sign_with_root ? FAKE_ISSUER_ROOT : FAKE_ISSUER_SUB;
    for (size_t i = 0; i < c->nedits; i++) {
        int erc = apply_edit(&spec, &c->edits[i]);
        if (erc != 0)
            return erc;
    }
    pki = fake_apple_load(c->dir, NULL, err, sizeof(err));
    if (pki == NULL) {
        fprintf(stderr, "fake-apple: %s (run fake-apple init --dir %s)\n", err, c->dir);
        goto out;
    }
    if (c->signer_dir != NULL) {
        signer = fake_apple_load(c->signer_dir, NULL, err, sizeof(err));
        if (signer == NULL) {
            fprintf(stderr, "fake-apple: --signer-dir: %s\n", err);
            goto out;
        }
        spec.signer = signer;
    }
    if (c->key_curve != NULL) {
        /* Made here, as a Secure Enclave makes it, so that it can be written out. */
        key = EVP_EC_gen(c->key_curve);
        if (key == NULL) {
            fake_openssl_error(err, sizeof(err), "generating the leaf key");
            fprintf(stderr, "fake-apple: %s\n", err);
            goto out;
        }
        spec.key = key;
    }
    if (!fake_apple_leaf(pki, &spec, &chain, err, sizeof(err))) {
        fprintf(stderr, "fake-apple: %s\n", err);
        goto out;
    }
    for (size_t i = 0; c->out_chain != NULL && i < chain.count; i++) {
        char path[4096];
        int n = snprintf(path, sizeof(path), "%s-%zu.der", c->out_chain, i);
        if (n <= 0 || (size_t)n >= sizeof(path) || !write_file(path, chain.der[i], chain.len[i]))
            goto out;
        printf("%s\n", path);
    }
    if (c->attobj_out != NULL) {
        attobj = attobj_text(&chain);
        if (attobj == NULL) {
            fprintf(stderr, "fake-apple: out of memory encoding the attObj\n");
            goto out;
        }
        if (strlen(attobj) > ATTOBJ_MAX)
            fprintf(stderr, "fake-apple: warning: the attObj is longer than vouchd reads\n");
        if (!tu_file_write_atomic(c->attobj_out, attobj, strlen(attobj), 0644, err, sizeof(err))) {
            fprintf(stderr, "fake-apple: %s\n", err);
            goto out;
        }
        printf("%s\n", c->attobj_out);
    }
    if (c->key_out != NULL) {
        if (!write_key(c->key_out, key))
            goto out;
        printf("%s\n", c->key_out);
    }
    rc = EXIT_SUCCESS;
out:
    free(attobj);
    EVP_PKEY_free(key);
    fake_chain_free(&chain);
    fake_apple_free(signer);
    fake_apple_free(pki);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli c;
    const char *sub;
    int opt;
    size_t nonce_len = 0;
    bool token_given = false;

    if (argc < 2)
        return usage_error("a subcommand is required (init or leaf)", NULL);
    sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(usage_text, stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(sub, "init") != 0 && strcmp(sub, "leaf") != 0)
        return usage_error("unknown subcommand", sub);
    memset(&c, 0, sizeof(c));
    c.not_before = time(NULL);
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc - 1, argv + 1, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(usage_text, stdout);
            return EXIT_SUCCESS;
        case OPT_DIR:
            c.dir = optarg;
            break;
        case OPT_OUT_CHAIN:
            c.out_chain = optarg;
            break;
        case OPT_UDID:
            c.dev.udid = optarg;
            break;
        case OPT_SERIAL:
            c.dev.serial_number = optarg;
            break;
        case OPT_OS:
            c.dev.os_version = optarg;
            break;
        case OPT_SEPOS:
            c.dev.sepos_version = optarg;
            break;
        case OPT_LLB:
            c.dev.llb_version = optarg;
            break;
        case OPT_SUDID:
            c.dev.software_update_device_id = optarg;
            break;
        case OPT_MACOS:
            c.dev.macos = true;
            break;
        case OPT_NONCE:
            if (!hex_decode(optarg, strlen(optarg), c.nonce, sizeof(c.nonce), &nonce_len) ||
                nonce_len == 0)
                return usage_error("--nonce wants 1..256 bytes of hex", optarg);
            c.dev.nonce = c.nonce;
            c.dev.nonce_len = nonce_len;
            break;
        case OPT_FRESHNESS_OF_TOKEN: {
            unsigned int n = 0;
            if (optarg[0] == '\0' ||
                EVP_Digest(optarg, strlen(optarg), c.nonce, &n, EVP_sha256(), NULL) != 1)
                return usage_error("--freshness-of-token wants a token", optarg);
            token_given = true;
            c.dev.nonce = c.nonce;
            c.dev.nonce_len = n;
            break;
        }
        case OPT_ATTOBJ_OUT:
            c.attobj_out = optarg;
            break;
        case OPT_KEY_OUT:
            c.key_out = optarg;
            break;
        case OPT_KEY_CURVE:
            if (strcmp(optarg, "P-256") != 0 && strcmp(optarg, "P-384") != 0)
                return usage_error("--key-curve wants P-256 or P-384", optarg);
            c.key_curve = optarg;
            break;
        case OPT_NOT_BEFORE:
            if (!tu_parse_unix_time(optarg, &c.not_before))
                return usage_error("--not-before wants a Unix time", optarg);
            break;
        case OPT_NOT_AFTER:
            if (!tu_parse_unix_time(optarg, &c.not_after))
                return usage_error("--not-after wants a Unix time", optarg);
            break;
        case OPT_SERIAL_NUMBER: {
            char *end = NULL;
            errno = 0;
            c.serial = strtoull(optarg, &end, 10);
            if (optarg[0] < '1' || optarg[0] > '9' || errno != 0 || *end != '\0')
                return usage_error("--serial-number wants a positive integer", optarg);
            break;
        }
        case OPT_SET:
        case OPT_SET_HEX:
        case OPT_OMIT:
        case OPT_BLANK:
        case OPT_DUPLICATE:
        case OPT_CRITICAL:
        case OPT_EXTRA:
        case OPT_EXTRA_CRITICAL:
            if (c.nedits == MAX_EDITS)
                return usage_error("too many edits", NULL);
            /* OPT_SET .. OPT_EXTRA_CRITICAL follow the order of enum edit_kind. */
            c.edits[c.nedits].kind = (enum edit_kind)(opt - OPT_SET);
            c.edits[c.nedits].arg = optarg;
            c.nedits++;
            break;
        case OPT_SIGN_WITH_ROOT:
            c.sign_with_root = true;
            break;
        case OPT_SIGNER_DIR:
            c.signer_dir = optarg;
            break;
        case ':':
            return usage_error("option needs a value", argv[optind]);
        default:
            return usage_error("unknown option", argv[optind]);
        }
    }
    if (optind + 1 < argc)
        return usage_error("unexpected argument", argv[optind + 1]);
    if (c.dir == NULL || c.dir[0] == '\0')
        return usage_error("--dir is required", NULL);
    if (strcmp(sub, "init") == 0)
        return cmd_init(&c);
    if (token_given && nonce_len > 0)
        return usage_error("--nonce and --freshness-of-token both set the freshness code", NULL);
    if ((c.out_chain == NULL || c.out_chain[0] == '\0') &&
        (c.attobj_out == NULL || c.attobj_out[0] == '\0'))
        return usage_error("--out-chain or --attobj-out is required", NULL);
    if (c.out_chain != NULL && c.out_chain[0] == '\0')
        c.out_chain = NULL;
    if (c.attobj_out != NULL && c.attobj_out[0] == '\0')
        c.attobj_out = NULL;
    if (c.key_out != NULL && c.key_curve == NULL)
        c.key_curve = "P-384";
    return cmd_leaf(&c);
}
