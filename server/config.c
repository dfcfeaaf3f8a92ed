#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "identity.h"
#include "log.h"

extern char **environ;

/* vouchd's keys, read by lib/conf.c into struct config. */
#define STR_KEY(field)                                                                             \
    {                                                                                              \
#field, CONF_STRING, offsetof(struct config, field), 0, 0                                  \
    }

static const struct conf_key keys[] = {
    STR_KEY(listen),
    STR_KEY(database_url),
    STR_KEY(public_url),
    STR_KEY(identity_ca),
    STR_KEY(cert_header),
    STR_KEY(trusted_proxies),
    STR_KEY(reenroll),
    STR_KEY(migration),
    STR_KEY(ui),
    STR_KEY(attestation_roots),
    STR_KEY(apns_cert),
    STR_KEY(apns_key),
    STR_KEY(apns_url),
    STR_KEY(apns_ca),
    STR_KEY(apns_cert_password),
    STR_KEY(webhook_url),
    STR_KEY(webhook_secret),
    STR_KEY(webhook_topics),
    {"webhook_allow_http", CONF_BOOL, offsetof(struct config, webhook_allow_http), 0, 0},
    STR_KEY(mdm_path),
    STR_KEY(checkin_path),
    {"test_clock", CONF_BOOL, offsetof(struct config, test_clock), 0, 0},
    STR_KEY(enroll_identity),
    STR_KEY(scep_url),
    STR_KEY(scep_challenge),
    STR_KEY(acme_directory_url),
    STR_KEY(acme_ca_cert),
    STR_KEY(acme_ca_key),
    {"acme_cert_lifetime", CONF_DURATION, offsetof(struct config, acme_cert_lifetime), 3600,
     3650ull * 86400},
    {"acme_identifier_lifetime", CONF_DURATION, offsetof(struct config, acme_identifier_lifetime),
     60, 30ull * 86400},
    STR_KEY(enroll_token),
    STR_KEY(profile_ca),
    STR_KEY(profile_signing_cert),
    STR_KEY(profile_signing_key),
    STR_KEY(organization),
    STR_KEY(admin_token),
    {"log_level", CONF_LOG_LEVEL, offsetof(struct config, log_level), 0, 0},
    STR_KEY(log_format),
    {"max_body_bytes", CONF_SIZE, offsetof(struct config, max_body_bytes), 1024, 64u << 20},
    {"db_pool_size", CONF_UINT, offsetof(struct config, db_pool_size), 1, 64},
    {"identity_cache_size", CONF_UINT, offsetof(struct config, identity_cache_size), 1,
     IDENTITY_CACHE_MAX},
    {"http_timeout", CONF_UINT, offsetof(struct config, http_timeout), 1, 3600},
    {"request_timeout", CONF_UINT, offsetof(struct config, request_timeout), 1, 3600},
    {"max_connections", CONF_UINT, offsetof(struct config, max_connections), 1, 1000000},
    {"admin_login_limit", CONF_UINT, offsetof(struct config, admin_login_limit), 0, 1000000},
    {"result_retention", CONF_DURATION, offsetof(struct config, result_retention), 3600,
     3650ull * 86400},
    {"attestation_retention", CONF_DURATION, offsetof(struct config, attestation_retention),
     30ull * 86400, 3650ull * 86400},
    {"apns_expiration", CONF_DURATION, offsetof(struct config, apns_expiration), 60, 30ull * 86400},
    {"apns_connections", CONF_UINT, offsetof(struct config, apns_connections), 1, 16},
    {"attestation_max_age", CONF_DURATION, offsetof(struct config, attestation_max_age), 3600,
     3650ull * 86400},
    {"attestation_min_interval", CONF_DURATION, offsetof(struct config, attestation_min_interval),
     60, 365ull * 86400},
    {"attestation_mean_interval", CONF_DURATION, offsetof(struct config, attestation_mean_interval),
     120, 3650ull * 86400},
    {"attestation_rate_limit", CONF_UINT, offsetof(struct config, attestation_rate_limit), 1,
     1000000},
    {"attestation_retry_limit", CONF_UINT, offsetof(struct config, attestation_retry_limit), 0, 20},
    {"attestation_retry_delay", CONF_DURATION, offsetof(struct config, attestation_retry_delay), 1,
     30ull * 86400},
    {"info_interval", CONF_DURATION, offsetof(struct config, info_interval), 60, 365ull * 86400},
    {"scheduler_batch", CONF_UINT, offsetof(struct config, scheduler_batch), 0, 10000},
    {"webhook_timeout", CONF_DURATION, offsetof(struct config, webhook_timeout), 1, 300},
    {"webhook_max_age", CONF_DURATION, offsetof(struct config, webhook_max_age), 60,
     365ull * 86400},
};

const char *const config_webhook_topics[] = {
    "mdm.Authenticate",      "mdm.TokenUpdate",
    "mdm.CheckOut",          "mdm.Connect",
    "mdm.UserAuthenticate",  "mdm.SetBootstrapToken",
    "mdm.GetBootstrapToken", "mdm.DeclarativeManagement",
    "mdm.GetToken",          "attestation.verified",
    "attestation.failed",    "attestation.expired",
    "device.os_changed",     "device.reenrolled",
    "identity.issued",       "identity.refused",
    "identity.revoked",      "identity.unproven",
    "trust.denied",          "command.canceled",
    NULL,
};

/* The first 9 of config_webhook_topics: NanoMDM's own topics (service/webhook). */
static const char *const nanomdm_topics[] = {
    "mdm.Authenticate",      "mdm.TokenUpdate",
    "mdm.CheckOut",          "mdm.Connect",
    "mdm.UserAuthenticate",  "mdm.SetBootstrapToken",
    "mdm.GetBootstrapToken", "mdm.DeclarativeManagement",
    "mdm.GetToken",          NULL,
};

const char *const *config_topic_group(const char *name)
{
    return strcmp(name, "nanomdm") == 0 ? nanomdm_topics : NULL;
}

size_t config_split_list(const char *text, char out[][CONFIG_MAX_ITEM + 1], size_t max)
{
    size_t n = 0;
    while (text != NULL && *text != '\0') {
        size_t skip = strspn(text, ", \t");
        text += skip;
        size_t len = strcspn(text, ", \t");
        if (len == 0)
            break;
        if (n == max || len > CONFIG_MAX_ITEM)
            return max + 1;
        memcpy(out[n], text, len);
        out[n][len] = '\0';
        n++;
        text += len;
    }
    return n;
}

/* Adds a topic or a group's topics to r (once each); false for an unknown name. */
static bool add_topics(struct config_receiver *r, const char *name)
{
    const char *const *group = config_topic_group(name);
    const char *one[2] = {NULL, NULL};
    if (group == NULL) {
        for (const char *const *k = config_webhook_topics; *k != NULL && one[0] == NULL; k++) {
            if (strcmp(*k, name) == 0)
                one[0] = *k;
        }
        if (one[0] == NULL)
            return false;
        group = one;
    }
    for (; *group != NULL; group++) {
        bool have = false;
        for (size_t i = 0; i < r->topic_count; i++)
            have = have || r->topics[i] == *group;
        if (!have && r->topic_count < CONFIG_MAX_TOPICS)
            r->topics[r->topic_count++] = *group;
    }
    return true;
}

static bool takes_token_update(const struct config_receiver *r)
{
    for (size_t i = 0; i < r->topic_count; i++) {
        if (strcmp(r->topics[i], "mdm.TokenUpdate") == 0)
            return true;
    }
    return r->every_topic;
}

/* One item of webhook_url: URL or URL#TOPIC+TOPIC..., its topics resolved against the
 * deployment's webhook_topics (defaults). */
static bool parse_receiver(const char *item, const struct config_receiver *defaults,
                           struct config_receiver *r, char *err, size_t err_size)
{
    memset(r, 0, sizeof(*r));
    const char *hash = strchr(item, '#');
    size_t url_len = hash ? (size_t)(hash - item) : strlen(item);
    memcpy(r->url, item, url_len);
    r->url[url_len] = '\0';
    if (strncmp(r->url, "https://", 8) != 0 && strncmp(r->url, "http://", 7) != 0) {
        snprintf(err, err_size, "webhook_url: '%s' is not an http:// or https:// URL", r->url);
        return false;
    }
    if (hash == NULL) {
        memcpy(r->topics, defaults->topics, sizeof(r->topics));
        r->topic_count = defaults->topic_count;
        r->every_topic = defaults->every_topic;
        return true;
    }
    const char *p = hash + 1;
    if (*p == '\0') {
        snprintf(err, err_size, "webhook_url: %.60s ends in '#' without topics", r->url);
        return false;
    }
    while (*p != '\0') {
        size_t len = strcspn(p, "+");
        char name[64];
        if (len == 0 || len >= sizeof(name)) {
            snprintf(err, err_size, "webhook_url: %.60s: an empty or overlong topic after '#'",
                     r->url);
            return false;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (!add_topics(r, name)) {
            snprintf(err, err_size, "webhook_url: %.60s: unknown topic or group '%s'", r->url,
                     name);
            return false;
        }
        p += len + (p[len] == '+');
    }
    return true;
}

/* webhook_url: up to CONFIG_MAX_RECEIVERS http(s) URLs, each with its own topics or
 * webhook_topics; then a secret; known topics; plain http only without mdm.TokenUpdate or with
 * webhook_allow_http. Fills cfg->receivers. */
static bool check_webhooks(struct config *cfg, char *err, size_t err_size)
{
    char items[CONFIG_MAX_RECEIVERS + 1][CONFIG_MAX_ITEM + 1];
    size_t n = config_split_list(cfg->webhook_url, items, CONFIG_MAX_RECEIVERS);
    if (n > CONFIG_MAX_RECEIVERS) {
        snprintf(err, err_size, "webhook_url: at most %d URLs of at most %d characters",
                 CONFIG_MAX_RECEIVERS, CONFIG_MAX_ITEM);
        return false;
    }
    if (n > 0 && (cfg->webhook_secret == NULL || cfg->webhook_secret[0] == '\0')) {
        snprintf(err, err_size,
                 "webhook_url is set but webhook_secret is not: receivers could "
                 "not tell Vouch's events from forged ones");
        return false;
    }
    char topics[CONFIG_MAX_TOPICS + 1][CONFIG_MAX_ITEM + 1];
    size_t count = config_split_list(cfg->webhook_topics, topics, CONFIG_MAX_TOPICS);
    if (count > CONFIG_MAX_TOPICS) {
        snprintf(err, err_size, "webhook_topics: too many names");
        return false;
    }
    struct config_receiver defaults = {.every_topic = count == 0}; /* no webhook_topics */
    for (size_t i = 0; i < count; i++) {
        if (!add_topics(&defaults, topics[i])) {
            snprintf(err, err_size, "webhook_topics: unknown topic '%s'", topics[i]);
            return false;
        }
    }
    if (n > 0 && (cfg->receivers = calloc(n, sizeof(*cfg->receivers))) == NULL) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        struct config_receiver *r = &cfg->receivers[i];
        if (!parse_receiver(items[i], &defaults, r, err, err_size))
            return false;
        cfg->receiver_count = i + 1;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->receivers[j].url, r->url) == 0) {
                snprintf(err, err_size, "webhook_url: %.60s is listed twice", r->url);
                return false;
            }
        }
        /* mdm.TokenUpdate events carry the raw check-in: the device's UnlockToken (which clears
         * its passcode) and PushMagic. Over plain http anyone on the path reads them. */
        if (strncmp(r->url, "http://", 7) == 0 && takes_token_update(r) &&
            !cfg->webhook_allow_http) {
            snprintf(err, err_size,
                     "webhook_url: %.60s is plain http: it may take mdm.TokenUpdate (the device's "
                     "UnlockToken) only with webhook_allow_http = true; or use https, or leave "
                     "mdm.TokenUpdate out of its topics",
                     r->url);
            return false;
        }
    }
    return true;
}

/* ---- mdm_path, checkin_path ------------------------------------------------------------- */

static const char *const device_paths[] = {"/mdm", "/mdm/connect", "/mdm/checkin", "/checkin",
                                           NULL};

bool config_is_device_path(const char *path)
{
    for (const char *const *p = device_paths; *p != NULL; p++) {
        if (strcmp(*p, path) == 0)
            return true;
    }
    return false;
}

/* What else vouchd serves: a device path may be none of these, nor under them. */
static const char *const reserved_paths[] = {
    "/v1", "/ui", "/acme", "/migration", "/mdm/enroll", "/healthz", "/metrics", "/version", NULL};

/* An absolute path of unreserved characters, without a query, a fragment, empty or dot
 * segments or a trailing '/', that is no other route's. */
static bool check_device_path(const char *key, const char *path, char *err, size_t err_size)
{
    if (path == NULL || config_is_device_path(path))
        return true;
    size_t len = strlen(path);
    if (len < 2 || len > CONFIG_MAX_PATH || path[0] != '/' || path[len - 1] == '/') {
        snprintf(err, err_size,
                 "%s: '%.*s' is not an absolute path of at most %d characters, without a "
                 "trailing '/'",
                 key, CONFIG_MAX_PATH, path, CONFIG_MAX_PATH);
        return false;
    }
    for (const char *p = path; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || strchr("/-._~", *p) != NULL;
        if (!ok) {
            snprintf(err, err_size,
                     "%s: '%s' has '%c': a path of letters, digits and / - . _ ~ only (no query, "
                     "no fragment, no escapes)",
                     key, path, *p);
            return false;
        }
        if (*p == '/' &&
            (p[1] == '/' || (p[1] == '.' && (p[2] == '/' || p[2] == '\0' ||
                                             (p[2] == '.' && (p[3] == '/' || p[3] == '\0')))))) {
            snprintf(err, err_size, "%s: '%s' has an empty or dot segment", key, path);
            return false;
        }
    }
    for (const char *const *r = reserved_paths; *r != NULL; r++) {
        size_t rl = strlen(*r);
        if (strncmp(path, *r, rl) == 0 && (path[rl] == '\0' || path[rl] == '/')) {
            snprintf(err, err_size, "%s: '%s' is %s's: choose another path", key, path, *r);
            return false;
        }
    }
    return true;
}

static bool check_device_paths(const struct config *cfg, char *err, size_t err_size)
{
    if (!check_device_path("mdm_path", cfg->mdm_path, err, err_size) ||
        !check_device_path("checkin_path", cfg->checkin_path, err, err_size))
        return false;
    if (cfg->mdm_path != NULL && cfg->checkin_path != NULL &&
        strcmp(cfg->mdm_path, cfg->checkin_path) == 0 && !config_is_device_path(cfg->mdm_path)) {
        snprintf(err, err_size,
                 "mdm_path and checkin_path are both '%s': one URL for both is mdm_path alone",
                 cfg->mdm_path);
        return false;
    }
    return true;
}

/* ---- trusted_proxies -------------------------------------------------------------------- */

bool config_is_trusted_proxy(const struct config *cfg, const struct net_addr *a)
{
    for (size_t i = 0; i < cfg->proxy_count; i++) {
        if (net_prefix_contains(&cfg->proxies[i], a))
            return true;
    }
    return false;
}

/* trusted_proxies: addresses and networks, separated by commas or blanks. */
static bool parse_proxies(struct config *cfg, char *err, size_t err_size)
{
    const char *text = cfg->trusted_proxies;
    cfg->proxy_count = 0;
    while (text != NULL && *text != '\0') {
        text += strspn(text, ", \t");
        size_t len = strcspn(text, ", \t");
        if (len == 0)
            break;
        char item[INET6_ADDRSTRLEN + 8], why[200];
        if (cfg->proxy_count == CONFIG_MAX_TRUSTED_PROXIES) {
            snprintf(err, err_size, "trusted_proxies: at most %d addresses or networks",
                     CONFIG_MAX_TRUSTED_PROXIES);
            return false;
        }
        if (len >= sizeof(item)) {
            char shown[40];
            snprintf(err, err_size, "trusted_proxies: '%s...' is not an address or network",
                     log_sanitize(text, sizeof(shown) - 1, shown, sizeof(shown)));
            return false;
        }
        memcpy(item, text, len);
        item[len] = '\0';
        if (!net_prefix_parse(item, &cfg->proxies[cfg->proxy_count], why, sizeof(why))) {
            snprintf(err, err_size, "trusted_proxies: %s", why);
            return false;
        }
        cfg->proxy_count++;
        text += len;
    }
    return true;
}

/* Is c a blank of an X-Forwarded-For list (HTTP's OWS)? */
bool config_forwarded_client(const struct config *cfg, const struct net_addr *peer,
                             const char *const *lines, size_t n, struct net_addr *client)
{
    return net_forwarded_client(cfg->proxies, cfg->proxy_count, peer, lines, n, client);
}

/* vouchd's own ACME server: acme_ca_cert and acme_ca_key go together, and with them the profile
 * enrolls with ACME against /acme/directory unless told otherwise. */
static bool apply_acme_defaults(struct config *cfg, char *err, size_t err_size)
{
    if ((cfg->acme_ca_cert == NULL) != (cfg->acme_ca_key == NULL)) {
        snprintf(err, err_size, "acme_ca_cert and acme_ca_key go together");
        return false;
    }
    if (cfg->acme_ca_cert == NULL)
        return true;
    if (cfg->enroll_identity == NULL && (cfg->enroll_identity = strdup("acme")) == NULL) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    if (cfg->acme_directory_url == NULL && cfg->public_url != NULL) {
        size_t len = strlen(cfg->public_url);
        while (len > 0 && cfg->public_url[len - 1] == '/')
            len--;
        static const char path[] = "/acme/directory";
        cfg->acme_directory_url = malloc(len + sizeof(path));
        if (cfg->acme_directory_url == NULL) {
            snprintf(err, err_size, "out of memory");
            return false;
        }
        memcpy(cfg->acme_directory_url, cfg->public_url, len);
        memcpy(cfg->acme_directory_url + len, path, sizeof(path));
    }
    return true;
}

static bool set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = strdup(CONFIG_DEFAULT_LISTEN);
    cfg->apns_url = strdup(CONFIG_DEFAULT_APNS_URL);
    cfg->log_level = strdup("info");
    cfg->max_body_bytes = 1024 * 1024;
    cfg->db_pool_size = 4;
    cfg->identity_cache_size = IDENTITY_CACHE_DEFAULT;
    cfg->http_timeout = 30;
    cfg->request_timeout = 30;
    cfg->max_connections = 10000;
    cfg->admin_login_limit = 10;
    cfg->result_retention = 30 * 86400;
    cfg->attestation_retention = 365 * 86400;
    cfg->apns_expiration = 7 * 86400;
    cfg->apns_connections = 2;
    cfg->attestation_max_age = 30 * 86400;
    cfg->attestation_min_interval = 7 * 86400;
    cfg->attestation_mean_interval = 14 * 86400;
    cfg->attestation_rate_limit = 1000;
    cfg->attestation_retry_limit = 3;
    cfg->attestation_retry_delay = 3600;
    cfg->info_interval = 86400;
    cfg->scheduler_batch = 200;
    cfg->webhook_timeout = 10;
    cfg->webhook_max_age = 72 * 3600;
    cfg->acme_cert_lifetime = 365 * 86400;
    cfg->acme_identifier_lifetime = 24 * 3600;
    return cfg->listen != NULL && cfg->apns_url != NULL && cfg->log_level != NULL;
}

/* lib/conf.c hands over every policy.* line: kept for server/trust/, which judges them. */
static bool keep_policy_item(void *target, const char *key, const char *value, unsigned line,
                             char *err, size_t err_size)
{
    struct config *cfg = target;
    if (cfg->policy_item_count == CONFIG_MAX_POLICY_ITEMS) {
        snprintf(err, err_size, "line %u: more than %d policy lines", line,
                 CONFIG_MAX_POLICY_ITEMS);
        return false;
    }
    if (cfg->policy_item_count % 16 == 0) {
        struct config_item *more = realloc(
            cfg->policy_items, (cfg->policy_item_count + 16) * sizeof(*cfg->policy_items));
        if (more == NULL) {
            snprintf(err, err_size, "out of memory");
            return false;
        }
        cfg->policy_items = more;
    }
    struct config_item *item = &cfg->policy_items[cfg->policy_item_count];
    item->key = strdup(key);
    item->value = strdup(value);
    item->line = line;
    if (item->key == NULL || item->value == NULL) {
        free(item->key);
        free(item->value);
        snprintf(err, err_size, "out of memory");
        return false;
    }
    cfg->policy_item_count++;
    return true;
}

bool config_parse(struct config *cfg, const char *text, size_t text_len, char *const *envp,
                  char *err, size_t err_size)
{
    if (!set_defaults(cfg)) {
        snprintf(err, err_size, "out of memory");
        config_clear(cfg);
        return false;
    }
    /* VOUCH_URL and VOUCH_BUILD_DIR belong to vouchctl and the tests. */
    static const char *const env_ignored[] = {"url", "build_dir", NULL};
    static const struct conf_schema schema = {keys,     sizeof(keys) / sizeof(keys[0]),
                                              "VOUCH_", env_ignored,
                                              "policy.", keep_policy_item};
    if ((text != NULL && !conf_parse_text(cfg, &schema, text, text_len, err, err_size)) ||
        !conf_parse_env(cfg, &schema, envp, err, err_size)) {
        config_clear(cfg);
        return false;
    }
    if (cfg->attestation_mean_interval <= cfg->attestation_min_interval ||
        cfg->attestation_max_age < cfg->attestation_min_interval) {
        snprintf(err, err_size,
                 "attestation_mean_interval must be longer than attestation_min_interval, and "
                 "attestation_max_age at least as long");
        config_clear(cfg);
        return false;
    }
    if (cfg->reenroll != NULL && strcmp(cfg->reenroll, "allow") != 0 &&
        strcmp(cfg->reenroll, "refuse") != 0) {
        snprintf(err, err_size, "reenroll: expected allow or refuse, not '%s'", cfg->reenroll);
        config_clear(cfg);
        return false;
    }
    cfg->reenroll_refuse = cfg->reenroll != NULL && strcmp(cfg->reenroll, "refuse") == 0;
    if (cfg->migration != NULL && strcmp(cfg->migration, "on") != 0 &&
        strcmp(cfg->migration, "off") != 0) {
        snprintf(err, err_size, "migration: expected on or off, not '%s'", cfg->migration);
        config_clear(cfg);
        return false;
    }
    cfg->migration_on = cfg->migration != NULL && strcmp(cfg->migration, "on") == 0;
    if (cfg->ui != NULL && strcmp(cfg->ui, "on") != 0 && strcmp(cfg->ui, "off") != 0) {
        snprintf(err, err_size, "ui: expected on or off, not '%s'", cfg->ui);
        config_clear(cfg);
        return false;
    }
    cfg->ui_off = cfg->ui != NULL && strcmp(cfg->ui, "off") == 0;
    enum log_format format;
    if (cfg->log_format != NULL && !log_parse_format(cfg->log_format, &format)) {
        snprintf(err, err_size, "log_format: expected text or json, not '%s'", cfg->log_format);
        config_clear(cfg);
        return false;
    }
    if (!apply_acme_defaults(cfg, err, err_size)) {
        config_clear(cfg);
        return false;
    }
    const char *identity = cfg->enroll_identity;
    if (identity != NULL && strcmp(identity, "scep") != 0 && strcmp(identity, "acme") != 0) {
        snprintf(err, err_size, "enroll_identity: expected scep or acme, not '%s'", identity);
        config_clear(cfg);
        return false;
    }
    if (identity != NULL && strcmp(identity, "acme") == 0 && cfg->acme_directory_url == NULL) {
        snprintf(err, err_size, "enroll_identity = acme needs acme_directory_url");
        config_clear(cfg);
        return false;
    }
    if ((identity == NULL || strcmp(identity, "scep") == 0) && cfg->scep_challenge != NULL &&
        cfg->scep_url == NULL) {
        snprintf(err, err_size, "scep_challenge is set but scep_url is not");
        config_clear(cfg);
        return false;
    }
    if ((cfg->profile_signing_cert == NULL) != (cfg->profile_signing_key == NULL)) {
        snprintf(err, err_size, "profile_signing_cert and profile_signing_key go together");
        config_clear(cfg);
        return false;
    }
    if (!check_webhooks(cfg, err, err_size) || !check_device_paths(cfg, err, err_size)) {
        config_clear(cfg);
        return false;
    }
    /* An empty admin_token would make the admin API open to anyone: treat it as "no admin API". */
    if (cfg->admin_token != NULL && cfg->admin_token[0] == '\0') {
        free(cfg->admin_token);
        cfg->admin_token = NULL;
    }
    /* The token is the whole of the admin API's protection, guessed over the network. */
    if (cfg->admin_token != NULL && strlen(cfg->admin_token) < CONFIG_MIN_ADMIN_TOKEN) {
        snprintf(err, err_size,
                 "admin_token is %zu characters long; at least %d are required (make one with "
                 "`openssl rand -hex 32`)",
                 strlen(cfg->admin_token), CONFIG_MIN_ADMIN_TOKEN);
        config_clear(cfg);
        return false;
    }
    /* An empty cert_header names no header; mdm.c would never find one: the same as unset. */
    if (cfg->cert_header != NULL && cfg->cert_header[0] == '\0') {
        free(cfg->cert_header);
        cfg->cert_header = NULL;
    }
    if (!parse_proxies(cfg, err, err_size)) {
        config_clear(cfg);
        return false;
    }
    /* http.c refuses the header from every peer not in trusted_proxies: with none, devices
     * behind the proxy could never be identified by it. */
    if (cfg->cert_header != NULL && cfg->proxy_count == 0) {
        snprintf(err, err_size,
                 "cert_header is set but trusted_proxies is empty: list the address of the TLS "
                 "terminator that sets %.64s in trusted_proxies (vouchd believes the header "
                 "from those peers only)",
                 cfg->cert_header);
        config_clear(cfg);
        return false;
    }
    return true;
}

bool config_load(struct config *cfg, const char *path, char *err, size_t err_size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return false;
    }
    char *text = malloc(CONFIG_MAX_FILE_BYTES + 1);
    if (text == NULL) {
        fclose(f);
        snprintf(err, err_size, "out of memory");
        return false;
    }
    size_t len = fread(text, 1, CONFIG_MAX_FILE_BYTES + 1, f);
    bool read_error = ferror(f);
    fclose(f);
    bool ok = false;
    if (read_error)
        snprintf(err, err_size, "cannot read %s", path);
    else if (len > CONFIG_MAX_FILE_BYTES)
        snprintf(err, err_size, "%s is larger than %d bytes", path, CONFIG_MAX_FILE_BYTES);
    else
        ok = config_parse(cfg, text, len, environ, err, err_size);
    free(text);
    return ok;
}

static bool check_file(const char *key, const char *path, char *err, size_t err_size)
{
    if (path == NULL)
        return true;
    if (access(path, R_OK) != 0) {
        snprintf(err, err_size, "%s: cannot read %s: %s", key, path, strerror(errno));
        return false;
    }
    return true;
}

bool config_check_runtime(const struct config *cfg, char *err, size_t err_size)
{
    if (cfg->database_url == NULL) {
        snprintf(err, err_size, "database_url is required");
        return false;
    }
    if (cfg->identity_ca == NULL && cfg->acme_ca_cert == NULL) {
        snprintf(err, err_size,
                 "identity_ca (or acme_ca_cert) is required: devices cannot be "
                 "identified without it");
        return false;
    }
    if (!check_file("identity_ca", cfg->identity_ca, err, err_size) ||
        !check_file("acme_ca_cert", cfg->acme_ca_cert, err, err_size) ||
        !check_file("acme_ca_key", cfg->acme_ca_key, err, err_size) ||
        !check_file("attestation_roots", cfg->attestation_roots, err, err_size) ||
        !check_file("apns_cert", cfg->apns_cert, err, err_size) ||
        !check_file("apns_key", cfg->apns_key, err, err_size) ||
        !check_file("apns_ca", cfg->apns_ca, err, err_size) ||
        !check_file("profile_ca", cfg->profile_ca, err, err_size) ||
        !check_file("profile_signing_cert", cfg->profile_signing_cert, err, err_size) ||
        !check_file("profile_signing_key", cfg->profile_signing_key, err, err_size))
        return false;
    if (cfg->apns_key != NULL && cfg->apns_cert == NULL) {
        snprintf(err, err_size, "apns_key is set but apns_cert is not");
        return false;
    }
    return true;
}

void config_clear(struct config *cfg)
{
    cfg->proxy_count = 0;
    free(cfg->receivers);
    cfg->receivers = NULL;
    cfg->receiver_count = 0;
    for (size_t i = 0; i < cfg->policy_item_count; i++) {
        free(cfg->policy_items[i].key);
        free(cfg->policy_items[i].value);
    }
    free(cfg->policy_items);
    cfg->policy_items = NULL;
    cfg->policy_item_count = 0;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].kind == CONF_STRING || keys[i].kind == CONF_LOG_LEVEL) {
            char **field = (char **)((char *)cfg + keys[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}
