/* policy: see policy.h. */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"

#define POLICY_PREFIX "policy."
/* A serial list is a text file an operator keeps: 100000 serials fit many times over. */
#define LIST_MAX_BYTES (8u * 1024 * 1024)
/* Apple's serial numbers are 10 to 12 characters; leave room for other vendors' habits. */
#define SERIAL_MAX 64
/* A component of a version is at most 9 digits, so it fits in 32 bits. */
#define VERSION_COMPONENT_MAX 9
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* ---- names --------------------------------------------------------------------------------- */

static const char *const reason_names[TRUST_REASON_COUNT] = {
    [TRUST_NOT_ENROLLED] = "not_enrolled",
    [TRUST_IDENTITY_UNKNOWN] = "identity_unknown",
    [TRUST_IDENTITY_SUPERSEDED] = "identity_superseded",
    [TRUST_IDENTITY_REVOKED] = "identity_revoked",
    [TRUST_IDENTITY_EXPIRED] = "identity_expired",
    [TRUST_IDENTITY_PROVISIONAL] = "identity_provisional",
    [TRUST_IDENTITY_UNPROVEN] = "identity_unproven",
    [TRUST_ATTESTATION_MISSING] = "attestation_missing",
    [TRUST_ATTESTATION_FAILED] = "attestation_failed",
    [TRUST_ATTESTATION_EXPIRED] = "attestation_expired",
    [TRUST_ATTESTATION_UNSUPPORTED] = "attestation_unsupported",
    [TRUST_ATTESTATION_NOT_FRESH] = "attestation_not_fresh",
    [TRUST_ATTESTATION_TOO_OLD] = "attestation_too_old",
    [TRUST_OS_TOO_OLD] = "os_too_old",
    [TRUST_OS_UNKNOWN] = "os_unknown",
    [TRUST_NOT_HARDWARE_BOUND] = "not_hardware_bound",
    [TRUST_SERIAL_DENIED] = "serial_denied",
    [TRUST_SERIAL_NOT_ALLOWED] = "serial_not_allowed",
};

const char *trust_reason_name(enum trust_reason reason)
{
    if ((unsigned)reason >= TRUST_REASON_COUNT)
        return "unknown";
    return reason_names[reason];
}

/* The key suffix (min_os_version.ios), the display name and the product name prefixes. */
static const struct {
    const char *key, *name;
    const char *products[2];
} platforms[TRUST_PLATFORM_COUNT] = {
    /* The iPod touch runs iOS too. */
    [TRUST_IOS] = {"ios", "iOS", {"iPhone", "iPod"}},
    [TRUST_IPADOS] = {"ipados", "iPadOS", {"iPad", NULL}},
    [TRUST_TVOS] = {"tvos", "tvOS", {"AppleTV", NULL}},
};

const char *trust_platform_name(enum trust_platform platform)
{
    if ((unsigned)platform >= TRUST_PLATFORM_COUNT)
        return "unknown";
    return platforms[platform].name;
}

bool trust_platform_of(const char *product_name, enum trust_platform *out)
{
    if (product_name == NULL)
        return false;
    for (size_t p = 0; p < TRUST_PLATFORM_COUNT; p++) {
        for (size_t i = 0; i < 2 && platforms[p].products[i] != NULL; i++) {
            const char *prefix = platforms[p].products[i];
            if (strncmp(product_name, prefix, strlen(prefix)) == 0) {
                *out = (enum trust_platform)p;
                return true;
            }
        }
    }
    return false;
}

/* ---- versions ------------------------------------------------------------------------------ */

/* Digits and dots, no empty component, none longer than VERSION_COMPONENT_MAX digits. */
static bool version_valid(const char *v)
{
    if (v == NULL || *v == '\0')
        return false;
    size_t digits = 0;
    for (const char *c = v;; c++) {
        if (*c >= '0' && *c <= '9') {
            if (++digits > VERSION_COMPONENT_MAX)
                return false;
        } else if (*c == '.' || *c == '\0') {
            if (digits == 0)
                return false;
            if (*c == '\0')
                return true;
            digits = 0;
        } else {
            return false;
        }
    }
}

/* The component at *v (0 past the end), and *v moved past it and its dot. */
static uint32_t version_next(const char **v)
{
    uint32_t n = 0;
    while (**v >= '0' && **v <= '9') {
        n = n * 10 + (uint32_t)(**v - '0');
        (*v)++;
    }
    if (**v == '.')
        (*v)++;
    return n;
}

int trust_version_compare(const char *a, const char *b)
{
    bool a_ok = version_valid(a), b_ok = version_valid(b);
    if (!a_ok || !b_ok)
        return a_ok == b_ok ? 0 : (a_ok ? 1 : -1);
    while (*a != '\0' || *b != '\0') {
        uint32_t x = version_next(&a), y = version_next(&b);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

/* ---- parsing the configuration ------------------------------------------------------------- */

static void policy_defaults(struct trust_policy *p, const char *name, size_t len)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->name, name, len);
    p->name[len] = '\0';
    p->require = TRUST_REQUIRE_VERIFIED;
}

static void policy_clear(struct trust_policy *p)
{
    free(p->deny_serials_path);
    free(p->allow_serials_path);
    /* Each list is one block: the pointers, then the strings they point to. */
    free(p->deny_serials);
    free(p->allow_serials);
    p->deny_serials_path = p->allow_serials_path = NULL;
    p->deny_serials = p->allow_serials = NULL;
    p->deny_count = p->allow_count = 0;
}

void trust_policies_clear(struct trust_policies *policies)
{
    for (size_t i = 0; i < policies->count; i++)
        policy_clear(&policies->items[i]);
    free(policies->items);
    policies->items = NULL;
    policies->count = 0;
}

const struct trust_policy *trust_policy_find(const struct trust_policies *policies,
                                             const char *name, size_t len)
{
    for (size_t i = 0; i < policies->count; i++) {
        const struct trust_policy *p = &policies->items[i];
        if (strlen(p->name) == len && memcmp(p->name, name, len) == 0)
            return p;
    }
    return NULL;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* "verified", "verified fresh" (or "verified, fresh"), "enrolled". */
static bool parse_requirement(const char *value, enum trust_requirement *out)
{
    const char *words[3];
    size_t lens[3], n = 0;
    for (const char *c = value; *c != '\0';) {
        if (*c == ' ' || *c == '\t' || *c == ',') {
            c++;
            continue;
        }
        const char *start = c;
        while (*c != '\0' && *c != ' ' && *c != '\t' && *c != ',')
            c++;
        if (n == 3)
            return false;
        words[n] = start;
        lens[n++] = (size_t)(c - start);
    }
#define WORD_IS(i, w) (lens[i] == strlen(w) && memcmp(words[i], w, lens[i]) == 0)
    if (n == 1 && WORD_IS(0, "enrolled"))
        *out = TRUST_REQUIRE_ENROLLED;
    else if (n == 1 && WORD_IS(0, "verified"))
        *out = TRUST_REQUIRE_VERIFIED;
    else if (n == 2 && WORD_IS(0, "verified") && WORD_IS(1, "fresh"))
        *out = TRUST_REQUIRE_FRESH;
    else
        return false;
#undef WORD_IS
    return true;
}

static bool parse_bool(const char *value, bool *out)
{
    if (strcmp(value, "true") == 0)
        *out = true;
    else if (strcmp(value, "false") == 0)
        *out = false;
    else
        return false;
    return true;
}

static bool set_path(char **field, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return false;
    free(*field);
    *field = copy;
    return true;
}

/* Sets one key of p (what follows "policy.NAME."); NULL, or why not. */
static const char *policy_set(struct trust_policy *p, const char *key, const char *value)
{
    static const char os_prefix[] = "min_os_version.";
    if (strcmp(key, "require") == 0) {
        if (!parse_requirement(value, &p->require))
            return "expected verified, verified fresh or enrolled";
    } else if (strcmp(key, "max_attestation_age") == 0) {
        uint64_t seconds;
        if (!conf_parse_duration(value, &seconds) || seconds > UINT_MAX)
            return "expected a duration such as 90s, 15m, 24h or 7d";
        p->max_attestation_age = (unsigned)seconds;
    } else if (strncmp(key, os_prefix, sizeof(os_prefix) - 1) == 0) {
        const char *platform = key + sizeof(os_prefix) - 1;
        size_t i = 0;
        while (i < TRUST_PLATFORM_COUNT && strcasecmp(platform, platforms[i].key) != 0)
            i++;
        if (i == TRUST_PLATFORM_COUNT)
            return "unknown platform (expected ios, ipados or tvos)";
        if (!version_valid(value) || strlen(value) > TRUST_VERSION_MAX)
            return "expected a version such as 17.4";
        memcpy(p->min_os_version[i], value, strlen(value) + 1);
    } else if (strcmp(key, "require_hardware_bound_identity") == 0) {
        if (!parse_bool(value, &p->require_hardware_bound_identity))
            return "expected true or false";
    } else if (strcmp(key, "allow_unsupported") == 0) {
        if (!parse_bool(value, &p->allow_unsupported))
            return "expected true or false";
    } else if (strcmp(key, "deny_serials") == 0 || strcmp(key, "allow_serials") == 0) {
        if (*value == '\0')
            return "expected a file name";
        if (!set_path(key[0] == 'd' ? &p->deny_serials_path : &p->allow_serials_path, value))
            return "out of memory";
    } else {
        return "unknown key";
    }
    return NULL;
}

/* The policy named name[0..len) of out, added with the defaults when new; NULL (why in *why)
 * when there is no room. The default policy is out->items[0], so every other one counts
 * against TRUST_MAX_POLICIES - 1 whatever the order of the lines. */
static struct trust_policy *policy_get(struct trust_policies *out, const char *name, size_t len,
                                       const char **why)
{
    struct trust_policy *found = (struct trust_policy *)trust_policy_find(out, name, len);
    if (found != NULL)
        return found;
    if (out->count == TRUST_MAX_POLICIES) {
        *why = "too many policies (at most " STRINGIFY(TRUST_MAX_POLICIES) ", default included)";
        return NULL;
    }
    struct trust_policy *p = &out->items[out->count++];
    policy_defaults(p, name, len);
    return p;
}

/* Applies one item to built; NULL, or why not. */
static const char *policy_item_apply(struct trust_policies *built,
                                     const struct trust_policy_item *item)
{
    size_t prefix_len = strlen(POLICY_PREFIX);
    if (item->key == NULL || strncmp(item->key, POLICY_PREFIX, prefix_len) != 0)
        return "not a policy key";
    const char *name = item->key + prefix_len;
    size_t name_len = 0;
    while (name_char(name[name_len]))
        name_len++;
    if (name[name_len] != '.' || name_len == 0 || name_len > TRUST_POLICY_NAME_MAX)
        return "expected policy.NAME.KEY, NAME of 1 to " STRINGIFY(
            TRUST_POLICY_NAME_MAX) " letters, digits, '-' or '_'";
    const char *why = NULL;
    struct trust_policy *p = policy_get(built, name, name_len, &why);
    if (p == NULL)
        return why;
    return policy_set(p, name + name_len + 1, item->value != NULL ? item->value : "");
}

bool trust_policies_parse(const struct trust_policy_item *items, size_t count,
                          struct trust_policies *out, char *err, size_t err_size)
{
    struct trust_policies built = {0};
    out->items = NULL;
    out->count = 0;
    built.items = calloc(TRUST_MAX_POLICIES, sizeof(*built.items));
    if (built.items == NULL) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    built.count = 1;
    policy_defaults(&built.items[0], "default", strlen("default"));

    for (size_t i = 0; i < count; i++) {
        const char *why = policy_item_apply(&built, &items[i]);
        if (why != NULL) {
            const char *key = items[i].key != NULL ? items[i].key : "";
            char shown[128];
            snprintf(err, err_size, "line %u: %s: %s", items[i].line,
                     log_sanitize(key, strlen(key), shown, sizeof(shown)), why);
            trust_policies_clear(&built);
            return false;
        }
    }
    *out = built;
    return true;
}

/* ---- serial lists -------------------------------------------------------------------------- */

/* The whole file at path (shown in messages), at most LIST_MAX_BYTES, NUL-terminated; NULL
 * after a message. */
static char *list_read(const char *path, const char *shown, size_t *len, char *err, size_t err_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_size, "%s: cannot read: %s", shown, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, err_size, "%s: cannot read: %s", shown, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s: cannot read: not a regular file", shown);
        goto out;
    }
    if (st.st_size > (off_t)LIST_MAX_BYTES) {
        snprintf(err, err_size, "%s: larger than %u bytes", shown, LIST_MAX_BYTES);
        goto out;
    }
    /* One byte more than the limit, so a file that grew since fstat() is noticed. */
    text = malloc(LIST_MAX_BYTES + 2);
    if (text == NULL) {
        snprintf(err, err_size, "%s: out of memory", shown);
        goto out;
    }
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, text + have, LIST_MAX_BYTES + 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, err_size, "%s: cannot read: %s", shown, strerror(errno));
            free(text);
            text = NULL;
            goto out;
        }
        if (n == 0)
            break;
        have += (size_t)n;
        if (have > LIST_MAX_BYTES) {
            snprintf(err, err_size, "%s: larger than %u bytes", shown, LIST_MAX_BYTES);
            free(text);
            text = NULL;
            goto out;
        }
    }
    text[have] = '\0';
    *len = have;
out:
    close(fd);
    return text;
}

static bool serial_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* A walk over the lines of a list file. */
struct list_walk {
    const char *text;
    size_t len, pos;
    unsigned line;
};

/* The next serial (start and length), false at the end or on a bad line (*bad set). */
static bool list_next(struct list_walk *w, const char **serial, size_t *serial_len,
                      const char **bad)
{
    *bad = NULL;
    while (w->pos < w->len) {
        w->line++;
        const char *line = w->text + w->pos;
        const char *nl = memchr(line, '\n', w->len - w->pos);
        size_t n = nl != NULL ? (size_t)(nl - line) : w->len - w->pos;
        w->pos += n + (nl != NULL ? 1 : 0);
        while (n > 0 && is_blank(*line)) {
            line++;
            n--;
        }
        while (n > 0 && is_blank(line[n - 1]))
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        if (n > SERIAL_MAX) {
            *bad = "serial number longer than 64 characters";
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            if (!serial_char(line[i])) {
                *bad = "not a serial number (letters, digits, '-', '_' or '.'; one a line)";
                return false;
            }
        }
        *serial = line;
        *serial_len = n;
        return true;
    }
    return false;
}

static int serial_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the list at path into *list (one block: the pointers, then the strings), sorted. */
static bool list_load(const char *path, char ***list, size_t *count, char *err, size_t err_size)
{
    char shown[256];
    log_sanitize(path, strlen(path), shown, sizeof(shown));
    size_t len;
    char *text = list_read(path, shown, &len, err, err_size);
    if (text == NULL)
        return false;

    /* First pass: check every line, count the serials and their bytes. */
    struct list_walk w = {text, len, 0, 0};
    const char *serial, *bad;
    size_t serial_len, n = 0, bytes = 0;
    while (list_next(&w, &serial, &serial_len, &bad)) {
        if (n == TRUST_MAX_SERIALS) {
            snprintf(err, err_size, "%s line %u: more than %d serial numbers", shown, w.line,
                     TRUST_MAX_SERIALS);
            free(text);
            return false;
        }
        n++;
        bytes += serial_len + 1;
    }
    if (bad != NULL) {
        snprintf(err, err_size, "%s line %u: %s", shown, w.line, bad);
        free(text);
        return false;
    }

    char **block = malloc(n * sizeof(char *) + bytes + 1);
    if (block == NULL) {
        snprintf(err, err_size, "%s: out of memory", shown);
        free(text);
        return false;
    }
    char *strings = (char *)(block + n);
    w = (struct list_walk){text, len, 0, 0};
    for (size_t i = 0; i < n && list_next(&w, &serial, &serial_len, &bad); i++) {
        block[i] = strings;
        for (size_t j = 0; j < serial_len; j++) {
            char c = serial[j];
            strings[j] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
        }
        strings[serial_len] = '\0';
        strings += serial_len + 1;
    }
    free(text);
    if (n > 1)
        qsort(block, n, sizeof(char *), serial_cmp);
    free(*list);
    *list = block;
    *count = n;
    return true;
}

bool trust_policies_load_lists(struct trust_policies *policies, char *err, size_t err_size)
{
    for (size_t i = 0; i < policies->count; i++) {
        struct trust_policy *p = &policies->items[i];
        if (p->deny_serials_path != NULL &&
            !list_load(p->deny_serials_path, &p->deny_serials, &p->deny_count, err, err_size))
            return false;
        if (p->allow_serials_path != NULL &&
            !list_load(p->allow_serials_path, &p->allow_serials, &p->allow_count, err, err_size))
            return false;
    }
    return true;
}

/* ---- the decision -------------------------------------------------------------------------- */

/* Whether serial (any case) is in the sorted, upper-case list. */
static bool list_contains(char *const *list, size_t count, const char *serial)
{
    if (serial == NULL || count == 0)
        return false;
    size_t len = strlen(serial);
    if (len == 0 || len > SERIAL_MAX)
        return false;
    char upper[SERIAL_MAX + 1];
    for (size_t i = 0; i <= len; i++) {
        char c = serial[i];
        upper[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    const char *key = upper;
    return bsearch(&key, list, count, sizeof(char *), serial_cmp) != NULL;
}

static void bound(int64_t *earliest, int64_t t)
{
    if (t != 0 && (*earliest == 0 || t < *earliest))
        *earliest = t;
}

/* The attestation part of the decision: the reasons in found, the verdict's time bounds in
 * *until. */
static void judge_attestation(const struct trust_policy *policy, const struct trust_facts *f,
                              bool *found, int64_t *until)
{
    const char *status = f->attestation_status != NULL ? f->attestation_status : "none";
    if (strcmp(status, "verified") == 0) {
        if (f->expires_at != 0 && f->expires_at <= f->now) {
            found[TRUST_ATTESTATION_EXPIRED] = true;
            return;
        }
        bound(until, f->expires_at);
        if (policy->require == TRUST_REQUIRE_FRESH &&
            (f->freshness == NULL || strcmp(f->freshness, "fresh") != 0))
            found[TRUST_ATTESTATION_NOT_FRESH] = true;
        if (policy->max_attestation_age != 0) {
            int64_t age = (int64_t)policy->max_attestation_age;
            /* A time the database cannot hold would overflow the sum: no limit then. */
            int64_t limit = f->generated_at > INT64_MAX - age ? INT64_MAX : f->generated_at + age;
            if (f->generated_at == 0 || limit <= f->now)
                found[TRUST_ATTESTATION_TOO_OLD] = true;
            else
                bound(until, limit);
        }
    } else if (strcmp(status, "expired") == 0) {
        found[TRUST_ATTESTATION_EXPIRED] = true;
    } else if (strcmp(status, "failed") == 0) {
        found[TRUST_ATTESTATION_FAILED] = true;
    } else if (strcmp(status, "unsupported") == 0) {
        if (!policy->allow_unsupported)
            found[TRUST_ATTESTATION_UNSUPPORTED] = true;
    } else {
        found[TRUST_ATTESTATION_MISSING] = true;
    }
}

static void judge_os(const struct trust_policy *policy, const struct trust_facts *f, bool *found)
{
    bool any_minimum = false;
    for (size_t i = 0; i < TRUST_PLATFORM_COUNT; i++)
        any_minimum = any_minimum || policy->min_os_version[i][0] != '\0';
    if (!any_minimum)
        return;
    enum trust_platform platform;
    if (!trust_platform_of(f->product_name, &platform)) {
        found[TRUST_OS_UNKNOWN] = true;
        return;
    }
    const char *minimum = policy->min_os_version[platform];
    if (minimum[0] == '\0')
        return;
    if (!version_valid(f->os_version))
        found[TRUST_OS_UNKNOWN] = true;
    else if (trust_version_compare(f->os_version, minimum) < 0)
        found[TRUST_OS_TOO_OLD] = true;
}

void trust_evaluate(const struct trust_policy *policy, const struct trust_facts *f,
                    struct trust_decision *out)
{
    bool found[TRUST_REASON_COUNT] = {false};
    int64_t until = 0;
    memset(out, 0, sizeof(*out));

    if (!f->device_found) {
        /* Nothing else to judge: no device, no posture. */
        found[f->by_certificate ? TRUST_IDENTITY_UNKNOWN : TRUST_NOT_ENROLLED] = true;
    } else {
        if (f->by_certificate && !f->cert_current)
            found[TRUST_IDENTITY_SUPERSEDED] = true;
        if (f->identity_revoked)
            found[TRUST_IDENTITY_REVOKED] = true;
        /* A migrated identity counts only once an attestation proved it, whatever the policy
         * requires (docs/trust.md). */
        if (f->identity_provisional)
            found[TRUST_IDENTITY_PROVISIONAL] = true;
        if (f->identity_unproven)
            found[TRUST_IDENTITY_UNPROVEN] = true;
        if (f->identity_not_after != 0 && f->identity_not_after <= f->now)
            found[TRUST_IDENTITY_EXPIRED] = true;
        bound(&until, f->identity_not_after);
        if (!f->enrolled)
            found[TRUST_NOT_ENROLLED] = true;
        if (policy->require != TRUST_REQUIRE_ENROLLED)
            judge_attestation(policy, f, found, &until);
        judge_os(policy, f, found);
        if (policy->require_hardware_bound_identity && !f->hardware_bound)
            found[TRUST_NOT_HARDWARE_BOUND] = true;
        if (list_contains(policy->deny_serials, policy->deny_count, f->serial_number))
            found[TRUST_SERIAL_DENIED] = true;
        if (policy->allow_serials_path != NULL &&
            !list_contains(policy->allow_serials, policy->allow_count, f->serial_number))
            found[TRUST_SERIAL_NOT_ALLOWED] = true;
    }

    for (size_t r = 0; r < TRUST_REASON_COUNT; r++) {
        if (found[r])
            out->reasons[out->reason_count++] = (enum trust_reason)r;
    }
    out->allow = out->reason_count == 0;
    out->valid_until = out->allow ? until : 0;
}
