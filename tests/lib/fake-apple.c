/*
 * fake-apple: a command line for the stand-in Apple attestation PKI (fake_apple.h), for vouchctl
 * verify tests, bench seeds and poking at a verifier by hand. Not installed.
 *
 *   fake-apple init --dir D          D/apple-root.pem (attestation_roots), .key, apple-sub.*
 *   fake-apple leaf --dir D --udid U --serial S --os 17.5 --nonce HEX --out-chain PREFIX
 *                                    PREFIX-0.der (leaf), PREFIX-1.der (sub CA)
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fake_apple.h"
#include "hex.h"
#include "tu_text.h"

#define EXIT_USAGE 2
#define MAX_EDITS 64

static const char usage_text[] =
    "usage: fake-apple init --dir D\n"
    "         Creates the stand-in Apple attestation hierarchy in D unless present:\n"
    "         apple-root.pem (vouchd's attestation_roots), apple-root.key, apple-sub.pem,\n"
    "         apple-sub.key.\n"
    "       fake-apple leaf --dir D --out-chain PREFIX [options]\n"
    "         Issues a leaf shaped like Apple's from D's sub CA and writes PREFIX-0.der (leaf)\n"
    "         and PREFIX-1.der (sub CA): the chain as a device sends it.\n"
    "\n"
    "leaf options (properties are left out unless given):\n"
    "  --udid U --serial S --os V    .9.2, .9.1, .10.1 (and .10.2, .10.3 = V unless below)\n"
    "  --sepos V --llb V             .10.2, .10.3\n"
    "  --sudid ID                    .9.4 SoftwareUpdateDeviceID, e.g. D73AP\n"
    "  --macos                       .13.1 SIP 0, .13.2 Full Security, .13.3 kexts 0\n"
    "  --nonce HEX                   .11.1 freshness code (1..256 bytes; none without it)\n"
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
    if (!fake_apple_leaf(pki, &spec, &chain, err, sizeof(err))) {
        fprintf(stderr, "fake-apple: %s\n", err);
        goto out;
    }
    for (size_t i = 0; i < chain.count; i++) {
        char path[4096];
        int n = snprintf(path, sizeof(path), "%s-%zu.der", c->out_chain, i);
        if (n <= 0 || (size_t)n >= sizeof(path) || !write_file(path, chain.der[i], chain.len[i]))
            goto out;
        printf("%s\n", path);
    }
    rc = EXIT_SUCCESS;
out:
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
    if (c.out_chain == NULL || c.out_chain[0] == '\0')
        return usage_error("--out-chain is required", NULL);
    return cmd_leaf(&c);
}
