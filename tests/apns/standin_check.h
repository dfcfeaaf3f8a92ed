/*
 * standin_check: the request checks of the stand-in APNs server (apns-standin).
 *
 * Given what a client sent on one HTTP/2 stream, decides the answer api.push.apple.com gives an
 * MDM push: 200, or an error status with Apple's reason string. Pure: no I/O, no allocation; the
 * caller owns every buffer, and the verdict holds copies, never pointers into the request.
 *
 * The stand-in is stricter than Apple where a lax answer would hide a Vouch bug: apns-expiration
 * must be a future UNIX time in seconds (Apple accepts 0, which makes an offline device miss the
 * push, and a past time, which means the same), apns-priority must be present (Apple defaults it),
 * and the push magic must not be empty.
 */
#ifndef VOUCH_STANDIN_CHECK_H
#define VOUCH_STANDIN_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#define STANDIN_MAX_PAYLOAD 4096
#define STANDIN_TOKEN_MIN 64
#define STANDIN_TOKEN_MAX 200
/* Apple's topics are ~60 bytes; the limit stays below the stand-in's header buffers
 * (STANDIN_H2_HEADER_MAX, standin_h2_internal.h) so a value cut to fit one can never equal a
 * topic. */
#define STANDIN_TOPIC_MAX 200
#define STANDIN_PATH_PREFIX "/3/device/"
#define STANDIN_UUID_LEN 36

/* The apns-* request headers the checks read; other headers are ignored, as Apple does. */
enum standin_header {
    STANDIN_HDR_TOPIC,
    STANDIN_HDR_PUSH_TYPE,
    STANDIN_HDR_EXPIRATION,
    STANDIN_HDR_PRIORITY,
    STANDIN_HDR_ID,
    STANDIN_HDR_COLLAPSE_ID,
    STANDIN_HDR_COUNT
};

/* Maps a lowercase header name to its index; false for a header the checks do not read. */
bool standin_header_lookup(const char *name, size_t len, enum standin_header *out);

struct standin_request {
    const char *method;                     /* :method, NULL when absent */
    const char *path;                       /* :path, NULL when absent */
    const char *headers[STANDIN_HDR_COUNT]; /* NUL-terminated values, NULL when absent */
    unsigned duplicated;                    /* bit (1u << header) set when sent more than once */
    const char *body;                       /* the first body_len bytes of the body */
    size_t body_len;
    size_t body_total; /* bytes received; more than body_len when the body was too large */
    long long now;     /* UNIX time in seconds, for apns-expiration */
    const char *topic; /* the topic the client certificate allows; NULL: none */
    bool any_topic;    /* any apns-topic is allowed (no client certificate to check) */
};

struct standin_verdict {
    int status;         /* 200, or the HTTP status of the error */
    const char *reason; /* Apple's reason (a static string); NULL on 200 */
    /* The token from the path, lowercased when it is valid hex, else as sent (cut to fit). */
    char token[STANDIN_TOKEN_MAX + 1];
    bool has_token;
    /* The "mdm" value, unescaped; set whenever the body parsed, even if another check failed. */
    char push_magic[STANDIN_MAX_PAYLOAD + 1];
    bool has_push_magic;
    long long expiration; /* parsed apns-expiration, -1 when absent or not an integer */
    int priority;         /* parsed apns-priority, -1 when absent or not an integer */
};

/* Runs every check in the order below and stops at the first failure:
 *   :method POST (405 MethodNotAllowed), :path /3/device/<token> (404 BadPath), token present
 *   (400 MissingDeviceToken), 64..200 hex digits in pairs (400 BadDeviceToken), no apns-* header
 *   twice (400 DuplicateHeaders), apns-topic present (400 MissingTopic), unless any_topic: a
 *   client certificate with a topic (403 BadCertificate) equal to apns-topic (400 TopicDisallowed),
 *   apns-push-type mdm (400 InvalidPushType), apns-expiration a future UNIX time in seconds
 *   (400 BadExpirationDate), apns-priority 10 or 5 (400 BadPriority), apns-id a UUID when given
 *   (400 BadMessageId), apns-collapse-id at most 64 bytes (400 BadCollapseId), body at most
 *   4096 bytes (413 PayloadTooLarge), not empty (400 PayloadEmpty), exactly {"mdm":"<non-empty
 *   string>"} as JSON (400 BadPayload). */
void standin_check_request(const struct standin_request *req, struct standin_verdict *out);

/* True when s is a canonical UUID: 8-4-4-4-12 hex digits, either case. */
bool standin_check_uuid(const char *s);

/* Parses a JSON object with the single key "mdm" whose value is a string, with JSON whitespace
 * anywhere JSON allows it. Writes the unescaped UTF-8 value (NUL-terminated) to magic. False when
 * the body is not such an object, is not valid UTF-8, holds a \u0000 or the value does not fit. */
bool standin_parse_payload(const char *body, size_t len, char *magic, size_t magic_size,
                           size_t *magic_len) __attribute__((warn_unused_result));

#endif
