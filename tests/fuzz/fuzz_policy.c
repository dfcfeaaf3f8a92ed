/* libFuzzer target for server/trust/policy.c. The input is lines of `key = value`, as
 * server/config.c hands them over (no file is read: trust_policies_load_lists() is not called).
 * It checks what policy.h promises: on success a default policy, at most TRUST_MAX_POLICIES
 * policies of valid, distinct names, minimum versions that are versions; on failure a message
 * naming a line and nothing to free. Every policy then judges facts taken from the input: the
 * reasons come in enum order without repeats, allow exactly when there is none, and a deny has
 * no valid_until. Versions from the input must compare as a total order would. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define MAX_ITEMS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Trims s[0..*len) in place; returns the new start. */
static char *trim(char *s, size_t *len)
{
    while (*len > 0 && is_blank(*s)) {
        s++;
        (*len)--;
    }
    while (*len > 0 && is_blank(s[*len - 1]))
        (*len)--;
    s[*len] = '\0';
    return s;
}

static void check_versions(const char *a, const char *b)
{
    int ab = trust_version_compare(a, b), ba = trust_version_compare(b, a);
    if (ab != -ba || ab < -1 || ab > 1 || trust_version_compare(a, a) != 0)
        abort();
}

static void check_decision(const struct trust_policy *policy, const struct trust_facts *facts)
{
    struct trust_decision d;
    trust_evaluate(policy, facts, &d);
    if (d.reason_count > TRUST_REASON_COUNT || d.allow != (d.reason_count == 0))
        abort();
    for (size_t i = 0; i < d.reason_count; i++) {
        if ((unsigned)d.reasons[i] >= TRUST_REASON_COUNT ||
            (i > 0 && d.reasons[i] <= d.reasons[i - 1]))
            abort();
        if (strcmp(trust_reason_name(d.reasons[i]), "unknown") == 0)
            abort();
    }
    if (!d.allow && d.valid_until != 0)
        abort();
    if (d.allow && d.valid_until != 0 && d.valid_until <= facts->now)
        abort();
}

static void check_policies(const struct trust_policies *ps, const struct trust_facts *facts)
{
    if (ps->count < 1 || ps->count > TRUST_MAX_POLICIES ||
        trust_policy_find(ps, "default", strlen("default")) == NULL)
        abort();
    for (size_t i = 0; i < ps->count; i++) {
        const struct trust_policy *p = &ps->items[i];
        size_t len = strlen(p->name);
        if (len == 0 || len > TRUST_POLICY_NAME_MAX || trust_policy_find(ps, p->name, len) != p ||
            strspn(p->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
                len)
            abort();
        if (p->require != TRUST_REQUIRE_ENROLLED && p->require != TRUST_REQUIRE_VERIFIED &&
            p->require != TRUST_REQUIRE_FRESH)
            abort();
        for (int k = 0; k < TRUST_PLATFORM_COUNT; k++) {
            const char *v = p->min_os_version[k];
            if (v[0] != '\0' && trust_version_compare(v, "0") < 0)
                abort();
        }
        if (p->deny_serials != NULL || p->allow_serials != NULL || p->deny_count != 0 ||
            p->allow_count != 0)
            abort();
        check_decision(p, facts);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct trust_policy_item items[MAX_ITEMS];
    size_t count = 0;
    unsigned line = 0;
    char *pos = text, *end = text + size;
    while (pos < end && count < MAX_ITEMS) {
        line++;
        char *nl = memchr(pos, '\n', (size_t)(end - pos));
        size_t len = nl != NULL ? (size_t)(nl - pos) : (size_t)(end - pos);
        char *next = pos + len + 1;
        char *eq = memchr(pos, '=', len);
        if (eq != NULL) {
            size_t key_len = (size_t)(eq - pos), value_len = len - key_len - 1;
            char *key = trim(pos, &key_len);
            char *value = trim(eq + 1, &value_len);
            items[count++] = (struct trust_policy_item){key, value, line};
        }
        pos = next;
    }

    /* Facts from the values, so the decision meets what the policies were built from. */
    static const char *const statuses[] = {"verified",    "failed", "expired",
                                           "unsupported", "none",   NULL};
    const char *v0 = count > 0 ? items[0].value : NULL, *v1 = count > 1 ? items[1].value : NULL;
    int64_t now = 1800000000;
    struct trust_facts facts = {
        .device_found = (size & 1) == 0 || size % 7 == 1,
        .by_certificate = (size & 2) != 0,
        .cert_current = (size & 4) == 0,
        .enrolled = (size & 8) == 0,
        .serial_number = v1,
        .product_name = count > 2 ? items[2].value : "iPhone16,1",
        .os_version = v0,
        .hardware_bound = (size & 16) == 0,
        .identity_revoked = size % 11 == 3,
        .identity_not_after = (size & 32) ? now + (int64_t)(size % 1000) - 500 : 0,
        .attestation_status = statuses[size % 6],
        .freshness = (size & 64) ? "cached" : "fresh",
        .expires_at = (size & 128) ? now + (int64_t)(size % 977) - 400 : 0,
        .generated_at = (size & 256) ? now - (int64_t)(size % 90001) : 0,
        .now = now,
    };

    struct trust_policies ps = {NULL, 0};
    char err[256] = "";
    if (trust_policies_parse(items, count, &ps, err, sizeof(err))) {
        check_policies(&ps, &facts);
        trust_policies_clear(&ps);
    } else if (strncmp(err, "line ", 5) != 0 || ps.items != NULL || ps.count != 0) {
        abort();
    }
    if (ps.items != NULL || ps.count != 0)
        abort();

    for (size_t i = 0; i + 1 < count && i < 16; i++)
        check_versions(items[i].value, items[i + 1].value);
    free(text);
    return 0;
}
