/*
 * mdm_message: turns the body of a device request (an XML plist) into a check-in message or a
 * command report, and refuses anything else with a precise reason.
 *
 * Pure: no I/O, no global state, so it is unit-tested on the captured plists of the peers and
 * fuzzed. Input is untrusted: its nesting depth is bounded before libplist sees it, every string
 * kept is bounded, valid UTF-8 and free of NUL bytes, and every field has the type Apple
 * documents. The struct mdm_message owns the parsed plist; its string and data pointers borrow
 * from it and live until mdm_message_clear().
 */
#ifndef VOUCH_MDM_MESSAGE_H
#define VOUCH_MDM_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MDM_MAX_DEPTH 48        /* nesting of dicts and arrays in a body */
#define MDM_MAX_ID_LEN 128      /* UDID, EnrollmentID, CommandUUID */
#define MDM_MAX_FIELD_LEN 1024  /* any other string kept */
#define MDM_MAX_TOKEN_LEN 1024  /* push token, unlock token */
#define MDM_MAX_ATTEST_CERTS 4       /* items of DevicePropertiesAttestation kept */
#define MDM_MAX_ATTEST_CERT_BYTES (16 * 1024)

enum mdm_kind {
    MDM_AUTHENTICATE,
    MDM_TOKEN_UPDATE,
    MDM_CHECKOUT,
    MDM_CHECKIN_UNSUPPORTED, /* a check-in type vouchd does not serve; message_type says which */
    MDM_REPORT,
};

enum mdm_status {
    MDM_STATUS_IDLE,
    MDM_STATUS_ACKNOWLEDGED,
    MDM_STATUS_ERROR,
    MDM_STATUS_COMMAND_FORMAT_ERROR,
    MDM_STATUS_NOT_NOW,
};

/* What an Acknowledged report says about DevicePropertiesAttestation. */
enum mdm_attestation {
    MDM_ATTESTATION_ABSENT,    /* no such key: the device does not support attestation */
    MDM_ATTESTATION_PRESENT,   /* an array of 1..MDM_MAX_ATTEST_CERTS data items */
    MDM_ATTESTATION_MALFORMED, /* anything else: not an array, empty, too many, not data */
};

enum mdm_parse_error {
    MDM_PARSE_OK = 0,
    MDM_PARSE_NOT_XML,       /* not an XML plist (binary plists and other bytes) */
    MDM_PARSE_TOO_DEEP,      /* nested deeper than MDM_MAX_DEPTH */
    MDM_PARSE_MALFORMED,     /* libplist could not parse it */
    MDM_PARSE_NOT_DICT,      /* the top level is not a dict */
    MDM_PARSE_MISSING_FIELD, /* a required key is absent */
    MDM_PARSE_BAD_FIELD,     /* a key has the wrong type, bad text, or is too long */
    MDM_PARSE_UNKNOWN_TYPE,  /* a MessageType or Status Apple does not define */
    MDM_PARSE_XML_MARKUP,    /* XML a plist does not need (comments, CDATA, PIs, DTD subsets) */
};

struct mdm_message {
    enum mdm_kind kind;
    const char *message_type; /* check-ins: the MessageType (a static string) */
    const char *udid;         /* the UDID, or the EnrollmentID under User Enrollment */
    bool user_enrollment;     /* the id came from EnrollmentID */
    const char *topic;

    /* Authenticate */
    const char *serial_number, *model, *model_name, *product_name, *os_version,
        *build_version, *device_name, *imei, *meid;

    /* TokenUpdate */
    const uint8_t *token;
    size_t token_len;
    const char *push_magic;
    const uint8_t *unlock_token;
    size_t unlock_token_len;
    int awaiting_configuration; /* -1 absent, 0 false, 1 true */

    /* Reports */
    enum mdm_status status;
    const char *status_text; /* a static string */
    const char *command_uuid; /* NULL for Idle */

    /* Acknowledged reports with QueryResponses (DeviceInformation answers) */
    const char *reported_os_version, *reported_build_version; /* may be NULL */
    enum mdm_attestation attestation;
    const uint8_t *attest_certs[MDM_MAX_ATTEST_CERTS];
    size_t attest_cert_lens[MDM_MAX_ATTEST_CERTS];
    size_t attest_cert_count;

    void *plist; /* plist_t, owned */
};

/* Which endpoint the body came to: a check-in or a command report; or, on a URL that takes
 * both (/mdm, mdm_path) without a Content-Type that says which, either: then a body with a
 * MessageType is a check-in and any other a report (NanoMDM's CheckinAndCommandHandler takes
 * everything that is not a check-in for a report). */
enum mdm_channel { MDM_CHANNEL_CHECKIN, MDM_CHANNEL_REPORT, MDM_CHANNEL_EITHER };

/* Parses body as channel expects. On error, *field names the key at fault (or is NULL) and msg
 * is cleared. */
enum mdm_parse_error mdm_message_parse(const char *body, size_t len, enum mdm_channel channel,
                                       struct mdm_message *msg, const char **field)
    __attribute__((warn_unused_result));
void mdm_message_clear(struct mdm_message *msg);

/* The report as stored beside its verdict: a DeviceInformation answer whose
 * DevicePropertiesAttestation was an array of certificates (MDM_ATTESTATION_PRESENT), written
 * again as a binary plist (a third of the XML's size) with that array left empty, in its
 * place. The certificates live in the attestation row the verdict makes; the admin API puts
 * them back (docs/attestation.md, "Storage"). On success *out is a fresh buffer of *len bytes
 * the caller frees with free(); false (and *out NULL) for any other message. */
bool mdm_message_report_without_attestation(const struct mdm_message *msg, uint8_t **out,
                                            size_t *len) __attribute__((warn_unused_result));

const char *mdm_parse_error_name(enum mdm_parse_error err);

/* NanoMDM's url_params: the query string of the URL a device used (its ServerURL or
 * CheckInURL may carry one), as a JSON object of each key's first value. Read as Go's
 * url.ParseQuery reads it: pairs split at '&', key and value at the first '=', '+' a space,
 * %XX escapes decoded; a pair with ';' or a bad escape is left out, and the request is served
 * (NanoMDM ignores them too). Bounded: a query longer than MDM_MAX_URL_QUERY is left out whole;
 * a pair whose decoded key or value is longer than MDM_MAX_URL_PARAM_KEY or _VALUE bytes, or
 * not UTF-8 without NUL, is left out; keys
 * after the first MDM_MAX_URL_PARAMS are left out. Returns a fresh string the caller frees, or
 * NULL when there is nothing to report (no query, no pair kept) or no memory. */
#define MDM_MAX_URL_QUERY 2048
#define MDM_MAX_URL_PARAMS 16
#define MDM_MAX_URL_PARAM_KEY 64
#define MDM_MAX_URL_PARAM_VALUE 256
char *mdm_url_params_json(const char *query);

enum mdm_xml_verdict { MDM_XML_OK, MDM_XML_TOO_DEEP, MDM_XML_MARKUP };

/* A linear scan run before libplist, so a hostile body cannot exhaust its stack: checks that
 * <dict> and <array> nest at most max_depth deep, and refuses the XML constructs (comments,
 * CDATA, processing instructions after the prolog, DTD internal subsets, attributes other than
 * on <plist>) inside which libplist and the scan could see different tags. */
enum mdm_xml_verdict mdm_xml_scan(const char *body, size_t len, unsigned max_depth);
/* mdm_xml_scan() == MDM_XML_OK */
bool mdm_xml_depth_ok(const char *body, size_t len, unsigned max_depth);

/* Whether s[0..len) is valid UTF-8 without NUL bytes or overlong forms. */
bool mdm_utf8_valid(const char *s, size_t len);

#endif
