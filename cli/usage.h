/*
 * usage: vouchctl's help texts, one per command and the main one, printed by --help and on usage
 * errors (vouchctl.c). They are the user's documentation: docs/api.md names the same commands,
 * keep both in step, and keep every line under 80 columns.
 */
#ifndef VOUCH_CLI_USAGE_H
#define VOUCH_CLI_USAGE_H

/* The server vouchctl asks when neither --url nor $VOUCH_URL says. */
#define DEFAULT_URL "http://127.0.0.1:8080"

extern const char main_usage[];
extern const char devices_usage[];
extern const char device_usage[];
extern const char commands_usage[];
extern const char push_usage[];
extern const char enqueue_usage[];
extern const char attest_usage[];
extern const char attestations_usage[];
extern const char verify_usage[];
extern const char events_usage[];
extern const char profile_usage[];
extern const char certs_usage[];
extern const char tokens_usage[];
extern const char audit_usage[];
extern const char trust_usage[];
extern const char ca_usage[];
extern const char pushcert_usage[];
extern const char migrate_usage[];
extern const char config_usage[];
extern const char completion_usage[];
extern const char help_usage[];

#endif
