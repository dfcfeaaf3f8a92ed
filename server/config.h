/*
 * config: vouchd's configuration, parsed from a file of `key = value` lines and from the
 * environment (`VOUCH_<KEY>`, which wins over the file).
 *
 * config_parse() is pure: it takes the file's text and an environment array, so it can be tested
 * and fuzzed without touching the disk. The key = value reading is lib/conf.c's; this module
 * holds vouchd's keys, their defaults and bounds, and the rules between keys. The struct config
 * owns every string in it (heap copies); config_clear() frees them. Unknown keys and bad values
 * are errors that name the key.
 *
 * It also holds trusted_proxies, parsed with lib/netaddr.c: which peers' forwarding headers are
 * believed, and which address is the client's (config_forwarded_client());
 * server/front/http.c applies it to every request.
 */
#ifndef VOUCH_CONFIG_H
#define VOUCH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netaddr.h"

#define CONFIG_DEFAULT_LISTEN "127.0.0.1:8080"
#define CONFIG_DEFAULT_APNS_URL "https://api.push.apple.com"
#define CONFIG_MAX_FILE_BYTES (256 * 1024)
/* An admin_token shorter than this is refused: `openssl rand -hex 32` makes 64 characters. */
#define CONFIG_MIN_ADMIN_TOKEN 32
#define CONFIG_MAX_TRUSTED_PROXIES 64

/* A `policy.NAME.KEY = value` line, for server/trust/ (which checks it). */
struct config_item {
    char *key, *value;
    unsigned line;
};

#define CONFIG_MAX_POLICY_ITEMS 1024

struct config {
    char *listen;            /* host:port of the HTTP listener */
    char *database_url;      /* libpq connection string or URI */
    char *public_url;        /* https base URL devices use */
    char *identity_ca;       /* PEM file of the CAs issuing device identity certificates */
    char *cert_header;       /* optional: header carrying the client cert from a TLS proxy */
    char *trusted_proxies;   /* the text of the key; parsed into proxies[] */
    char *reenroll;          /* allow (default) | refuse: a new certificate for an enrolled UDID */
    bool reenroll_refuse;    /* reenroll = refuse */
    char *migration;         /* on | off (default): NanoMDM's /migration route */
    bool migration_on;       /* migration = on */
    char *ui;                /* on (default) | off: the dashboard, GET /ui/ */
    bool ui_off;             /* ui = off */
    char *attestation_roots; /* PEM file of trusted attestation roots */
    char *apns_cert;
    char *apns_key;
    char *apns_url;
    char *apns_ca;
    char *apns_cert_password; /* for a PKCS#12 apns_cert */
    char *webhook_url;
    char *webhook_secret;
    char *webhook_topics;     /* NULL: every topic */
    bool webhook_allow_http;  /* may an http:// receiver take mdm.TokenUpdate? */
    /* Extra paths of the device protocol (NanoMDM's layout): NULL or one of Vouch's own device
     * paths (/mdm, /mdm/connect, /mdm/checkin, /checkin): nothing extra. */
    char *mdm_path;           /* check-ins and reports on one URL, as /mdm */
    char *checkin_path;       /* check-ins only, as /mdm/checkin */
    bool test_clock;          /* live by vouch_clock (tests only; the database must allow it) */
    /* The enrollment profile (GET /mdm/enroll) */
    char *enroll_identity;      /* acme (the default with acme_ca_cert) | scep */
    char *scep_url;             /* the SCEP server devices get their identity from */
    char *scep_challenge;
    char *acme_directory_url;   /* the ACME server (default with acme_ca_cert: vouchd's own) */
    /* vouchd's own ACME server (device-attest-01): on when acme_ca_cert is set. */
    char *acme_ca_cert;         /* PEM: the CA that issues hardware-bound identities */
    char *acme_ca_key;
    unsigned acme_cert_lifetime;       /* seconds an issued identity certificate is valid */
    unsigned acme_identifier_lifetime; /* seconds a ClientIdentifier may be used */
    char *enroll_token;         /* NULL: anyone may fetch the profile */
    char *profile_ca;           /* PEM CA to put in the profile (the server's TLS chain) */
    char *profile_signing_cert; /* PEM: sign the profile (with its chain) */
    char *profile_signing_key;
    char *organization;         /* PayloadOrganization */
    char *admin_token;    /* NULL: no admin API */
    char *log_level;      /* debug | info | warn | error */
    char *log_format;     /* text (NULL too) | json */
    size_t max_body_bytes;     /* largest request body accepted (413 beyond) */
    unsigned db_pool_size;     /* PostgreSQL connections */
    unsigned identity_cache_size; /* chain-verified device certificates kept (identity.h) */
    unsigned http_timeout;     /* seconds of inactivity before a connection is dropped */
    unsigned request_timeout;  /* seconds from a request's first byte to its last */
    unsigned max_connections;  /* open at once; beyond it, accepting pauses */
    unsigned admin_login_limit; /* failed admin logins per address and minute; 0: no limit */
    unsigned result_retention; /* seconds a finished command result is kept */
    unsigned attestation_retention; /* seconds attestation history is kept (newest: always) */
    unsigned apns_expiration;  /* seconds: apns-expiration = now + this */
    unsigned apns_connections; /* HTTP/2 connections to APNs at most */
    /* The attestation scheduler's policy (seconds, except the counts): see scheduler.h. */
    unsigned attestation_max_age;       /* a verified attestation older than this is renewed */
    unsigned attestation_min_interval;  /* Apple's limit: no new one sooner after the last */
    unsigned attestation_mean_interval; /* mean interval of random re-attestation */
    unsigned attestation_rate_limit;    /* scheduled requests per minute, fleet-wide */
    unsigned attestation_retry_limit;   /* retries after a failed answer */
    unsigned attestation_retry_delay;   /* first retry delay, doubling */
    unsigned info_interval;             /* light DeviceInformation query (OS version) */
    unsigned scheduler_batch;           /* requests built per tick; 0: no scheduler here */
    unsigned webhook_timeout;           /* seconds a receiver has to answer */
    unsigned webhook_max_age;           /* seconds an event is retried before it is dead */
    /* The trust policies' lines (policy.NAME.KEY), in file order. */
    struct config_item *policy_items;
    size_t policy_item_count;
    /* The peers whose cert_header and X-Forwarded-For are believed (trusted_proxies). */
    struct net_prefix proxies[CONFIG_MAX_TRUSTED_PROXIES];
    size_t proxy_count;
    /* The web-hook receivers of webhook_url, each with the topics it takes (its own after '#',
     * else webhook_topics), groups expanded. */
    struct config_receiver *receivers;
    size_t receiver_count;
};

#define CONFIG_MAX_RECEIVERS 8
#define CONFIG_MAX_TOPICS 24 /* names in webhook_topics (config_webhook_topics has 20) */
#define CONFIG_MAX_ITEM 512
#define CONFIG_MAX_PATH 128 /* mdm_path, checkin_path */

/* One web-hook receiver: `URL` or `URL#TOPIC+TOPIC...` in webhook_url. The fragment is never
 * sent (an HTTP client does not send one), so it names the receiver's own topics: names of
 * config_webhook_topics or groups (config_topic_group()). */
struct config_receiver {
    char url[CONFIG_MAX_ITEM + 1]; /* without the fragment: the receiver's name in the outbox */
    const char *topics[CONFIG_MAX_TOPICS]; /* static names (config_webhook_topics) */
    size_t topic_count;
    bool every_topic; /* no topics of its own and no webhook_topics */
};

/* Every web-hook topic, NULL-terminated. */
extern const char *const config_webhook_topics[];

/* The topics of a group name ("nanomdm": the mdm.* topics NanoMDM sends, for a NanoCMD-style
 * receiver), NULL-terminated; NULL when name is no group. */
const char *const *config_topic_group(const char *name);

/* Is path one of the device paths vouchd always serves (/mdm, /mdm/connect, /mdm/checkin,
 * /checkin)? */
bool config_is_device_path(const char *path);

/* Splits a list separated by commas or blanks into out[0..max); returns the count, or max + 1
 * when there are more items or one is longer than CONFIG_MAX_ITEM. */
size_t config_split_list(const char *text, char out[][CONFIG_MAX_ITEM + 1], size_t max);

/* Fills cfg with the defaults, then applies `text` (may be NULL) and then `envp` (NULL-terminated
 * "NAME=value" strings, may be NULL). On error returns false with a message naming the key (and
 * the line) in err; cfg is then cleared. */
bool config_parse(struct config *cfg, const char *text, size_t text_len, char *const *envp,
                  char *err, size_t err_size) __attribute__((warn_unused_result));

/* Reads path (bounded by CONFIG_MAX_FILE_BYTES) and calls config_parse() with environ. */
bool config_load(struct config *cfg, const char *path, char *err, size_t err_size)
    __attribute__((warn_unused_result));

/* Checks what needs the file system: the files named exist and are readable, and that the keys
 * vouchd needs to serve are present. */
bool config_check_runtime(const struct config *cfg, char *err, size_t err_size)
    __attribute__((warn_unused_result));

void config_clear(struct config *cfg);

/* Is a one of trusted_proxies? */
bool config_is_trusted_proxy(const struct config *cfg, const struct net_addr *a);
/* The client behind a trusted proxy: peer is the socket's address; lines are the request's
 * X-Forwarded-For field lines in the order received (n may be 0). When peer is not a trusted
 * proxy the client is peer. Otherwise the elements (comma-separated across all lines, each an
 * address, "[IPv6]" or either with ":port") are walked from the right: the first that is not a
 * trusted proxy is the client; when all are trusted, the left-most (or peer, without any). Returns
 * false when an element that must be read is not an address. */
bool config_forwarded_client(const struct config *cfg, const struct net_addr *peer,
                             const char *const *lines, size_t n, struct net_addr *client)
    __attribute__((warn_unused_result));


#endif
