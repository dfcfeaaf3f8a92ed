/*
 * command: checks a command plist an operator queues and puts it into the form devices get.
 *
 * Pure: the input is a plist (XML, or binary as NanoMDM takes it) from the admin API; the output
 * is the XML plist stored once and handed to every targeted device: an XML command as it was
 * sent, byte for byte. The command must be a dict whose `Command` dict has a string
 * `RequestType`; a missing `CommandUUID` is added (a random UUID: the command is then
 * re-serialized). The caller
 * owns the struct prepared_command and frees it with command_clear().
 */
#ifndef VOUCH_COMMAND_H
#define VOUCH_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COMMAND_MAX_REQUEST_TYPE 128
#define COMMAND_MAX_UUID 128

struct prepared_command {
    char uuid[COMMAND_MAX_UUID + 1];
    char request_type[COMMAND_MAX_REQUEST_TYPE + 1];
    char *xml; /* the command as devices receive it, NUL-terminated */
    size_t xml_len;
    bool uuid_generated; /* the body had no CommandUUID */
};

/* On failure returns false and a human-readable reason in err. */
bool command_prepare(const char *body, size_t len, struct prepared_command *out, char *err,
                     size_t err_size) __attribute__((warn_unused_result));
void command_clear(struct prepared_command *cmd);

#define COMMAND_NONCE_BYTES 32

/* A new attestation request: a fresh CommandUUID (upper case, written to uuid) and a fresh nonce
 * (32 bytes from OpenSSL's CSPRNG, written to nonce). Nothing more is needed to ask: its body is
 * never stored, nor sent to the database; command_attestation_body builds it when the device
 * fetches it. */
bool command_new_attestation(char uuid[37], uint8_t nonce[COMMAND_NONCE_BYTES])
    __attribute__((warn_unused_result));

/* The DeviceInformation command that asks for DevicePropertiesAttestation with the given
 * CommandUUID and nonce (1..COMMAND_NONCE_BYTES bytes): the body a device fetches, built again
 * from them every time, byte for byte the same. */
bool command_attestation_body(const char *uuid, const uint8_t *nonce, size_t nonce_len,
                              struct prepared_command *out) __attribute__((warn_unused_result));

/* The shape of an answer to an attestation request, when the attestation row can give the
 * whole answer back (docs/attestation.md, "Storage"): a dict of exactly UDID, CommandUUID,
 * Status (equal to udid, command_uuid and status) and QueryResponses, in any order, whose
 * QueryResponses holds strings and, with with_chain, DevicePropertiesAttestation (the chain the
 * row keeps). Strings are printable (no control characters), so that the database can write
 * them back as an XML plist. The shape is items[0], the root's order as a string of U, C, S and
 * Q, then each QueryResponses key and its string value in order (DevicePropertiesAttestation's
 * value ""). True only when the answer rebuilt from the shape is byte for byte the same binary
 * plist as report (its DevicePropertiesAttestation emptied); the caller frees the items with
 * command_answer_shape_free(). report is a plist_t. */
bool command_answer_shape(const void *report, const char *udid, const char *command_uuid,
                          const char *status, bool with_chain, char ***items, size_t *count)
    __attribute__((warn_unused_result));
void command_answer_shape_free(char **items, size_t count);

/* The shape as the database keeps it (attestations.answer; vouch_answer_xml reads it): its
 * items joined by COMMAND_SHAPE_SEPARATOR, each key the attestation request asks for written as
 * one character, its position in the request's Queries plus one (1: DevicePropertiesAttestation,
 * 2: UDID, ...), and a value equal to udid as COMMAND_SHAPE_UDID. None of these control
 * characters can be in a shape's strings. A fresh string (NULL: out of memory). */
#define COMMAND_SHAPE_SEPARATOR '\x1f'
#define COMMAND_SHAPE_UDID '\x1e'
char *command_answer_shape_pack(char *const *items, size_t count, const char *udid)
    __attribute__((warn_unused_result));

/* Writes a random (version 4) UUID in upper case, as Apple's tools do, into out[37]. */
bool command_new_uuid(char out[37]) __attribute__((warn_unused_result));

#endif
