/*
 * sim_device: what a simulated Apple device is and what it says.
 *
 * Device facts (UDID, serial number, hardware model, OS) are derived from a fleet prefix and the
 * device's index, so the same prefix always yields the same fleet; the mix is mostly iPhones, then
 * iPads and Apple TVs, with a few older models and OS versions, some too old to attest (every
 * tenth device, index 6, 16, ..., is one of those). The message builders produce the
 * XML plist bodies a device sends (check-in messages and command reports), and the command parser
 * reads what the server hands back. Pure: no I/O, no global state, safe from several threads.
 *
 * Message builders return a malloc()ed NUL-terminated XML body (caller frees) or NULL when memory
 * or the random generator fails.
 */
#ifndef VOUCH_SIM_DEVICE_H
#define VOUCH_SIM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include <plist/plist.h>

#define SIM_PREFIX_MAX 32
#define SIM_COMMAND_UUID_MAX 128
#define SIM_REQUEST_TYPE_MAX 64
#define SIM_NONCE_MAX 32 /* DeviceAttestationNonce: Apple allows up to 32 bytes */
#define SIM_ATTEST_ITEMS_MAX 4
#define SIM_TOKEN_LEN 32       /* an APNs device token */
#define SIM_PUSH_MAGIC_MAX 128 /* PushMagic: the device makes a 36-character UUID */

/* Callers keep these in one big array (100,000 devices), so the struct is public. */
struct sim_device {
    unsigned long index;
    char udid[40];          /* "3F2A9C1B-77D0-4E5A-8A61-000000000042": the index ends it */
    char serial[16];        /* 12 characters, Apple's older serial-number shape */
    char product_name[24];  /* hardware identifier: "iPhone15,2" */
    char model[24];         /* part number: "MQ0T3LL/A" */
    char model_name[16];    /* "iPhone", "iPad", "Apple TV" */
    char os_version[16];    /* "17.4.1" */
    char build_version[16]; /* "21E236" */
    char imei[24];          /* 15 digits; empty when the device has no cellular modem */
    char device_name[64];   /* "iPhone 14 Pro sim-42" */
    /* The identity (certificate PEM then key PEM), borrowed from the fleet file in memory. */
    const char *identity_pem;
    size_t identity_pem_len;
};

/* What a device told the server in its last TokenUpdate: the server pushes token with
 * {"mdm": push_magic}, and a device ignores a push whose magic is not its own. */
struct sim_push_token {
    bool present;
    unsigned char token[SIM_TOKEN_LEN];
    char push_magic[SIM_PUSH_MAGIC_MAX]; /* no whitespace or control characters */
};

enum sim_answer {
    SIM_ANSWER_ACK,
    SIM_ANSWER_NOTNOW,
    SIM_ANSWER_ERROR,
    SIM_ANSWER_FORMAT_ERROR,
    SIM_ANSWER_COUNT
};

/* What a DeviceInformation command asks about attestation (see sim_device_attest_request()). */
enum sim_attest_ask {
    SIM_ATTEST_NOT_ASKED, /* no DevicePropertiesAttestation query (the nonce is then ignored) */
    SIM_ATTEST_ASKED,     /* asked, with a usable nonce or none */
    SIM_ATTEST_BAD_NONCE  /* asked with an empty, too long or non-<data> DeviceAttestationNonce */
};

/* The DevicePropertiesAttestation answer: <data> items (certificates, or not), borrowed. */
struct sim_attest_items {
    size_t count; /* 0: an empty array */
    const unsigned char *der[SIM_ATTEST_ITEMS_MAX];
    size_t len[SIM_ATTEST_ITEMS_MAX];
};

/* A command the server handed to the device. */
struct sim_command {
    char uuid[SIM_COMMAND_UUID_MAX];
    char request_type[SIM_REQUEST_TYPE_MAX];
    plist_t plist; /* the whole envelope, owned; free with sim_device_command_free() */
};

/* A prefix is 1..SIM_PREFIX_MAX-1 characters of [A-Za-z0-9._-]. */
bool sim_device_prefix_ok(const char *prefix);

/* Fills dev's facts (not the identity) for device number index of fleet prefix. */
bool sim_device_derive(struct sim_device *dev, const char *prefix, unsigned long index)
    __attribute__((warn_unused_result));

/* The status string a report carries for answer: "Acknowledged", "NotNow", ... */
const char *sim_device_answer_status(enum sim_answer answer);

/* Whether dev's model can attest (iPhone and iPad A11 or later, Apple TV A12 or later). Models
 * that cannot ignore DevicePropertiesAttestation and DeviceAttestationNonce altogether. */
bool sim_device_supports_attestation(const struct sim_device *dev);

/* The model's SoftwareUpdateDeviceID (board id, "D73AP"); NULL for an unknown model. */
const char *sim_device_software_update_id(const struct sim_device *dev);

/* Reads cmd's attestation request. For SIM_ATTEST_ASKED, nonce[0..*nonce_len) holds the
 * DeviceAttestationNonce (*nonce_len 0: none was sent). Does not look at the device's model. */
enum sim_attest_ask sim_device_attest_request(const struct sim_command *cmd,
                                              unsigned char nonce[SIM_NONCE_MAX],
                                              size_t *nonce_len);

/* A fresh random 32-byte token and PushMagic (a random UUID), as after an APNs token change. */
bool sim_device_push_token_new(struct sim_push_token *tok) __attribute__((warn_unused_result));

/* Check-in messages (PUT to the CheckInURL). TokenUpdate carries tok's Token and PushMagic. */
char *sim_device_authenticate(const struct sim_device *dev, const char *topic, size_t *len);
char *sim_device_token_update(const struct sim_device *dev, const char *topic,
                              const struct sim_push_token *tok, size_t *len);
char *sim_device_checkout(const struct sim_device *dev, const char *topic, size_t *len);

/* Command reports (PUT to the ServerURL). */
char *sim_device_idle(const struct sim_device *dev, size_t *len);
/* The report answering cmd: Acknowledged with result keys (QueryResponses for
 * DeviceInformation), NotNow, Error with an ErrorChain, or CommandFormatError. attestation, when
 * not NULL, becomes QueryResponses.DevicePropertiesAttestation of an acknowledged
 * DeviceInformation (an array of <data>), beside the other queried values. */
char *sim_device_report(const struct sim_device *dev, const struct sim_command *cmd,
                        enum sim_answer answer, const struct sim_attest_items *attestation,
                        size_t *len);

/* Parses a command envelope (XML or binary plist: dict with CommandUUID and Command.RequestType).
 * False with a reason in err when the body is not one. */
bool sim_device_parse_command(const char *body, size_t len, struct sim_command *cmd, char *err,
                              size_t errlen) __attribute__((warn_unused_result));
void sim_device_command_free(struct sim_command *cmd);

#endif
