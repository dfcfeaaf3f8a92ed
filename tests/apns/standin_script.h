/*
 * standin_script: the scripted answers of the stand-in APNs server, per device token.
 *
 * A script is a list of rules, one a line, added through the control API (POST /script):
 *
 *   KEY ACTION [COUNT]
 *
 *   KEY     a device token (hex, either case) or "*" for every token without a rule of its own
 *   ACTION  200                      answer as the checks decide (a pass-through)
 *           STATUS [REASON] [ts=MS]  answer STATUS (400..599) with {"reason":REASON}; REASON
 *                                    defaults by status (400 BadDeviceToken, 403 BadCertificate,
 *                                    410 Unregistered, 429 TooManyRequests, 500
 *                                    InternalServerError, 503 ServiceUnavailable, ...); a 410
 *                                    carries "timestamp": MS, or the time of the answer
 *           goaway                   send GOAWAY on the connection and answer nothing
 *           delay MS                 answer as the checks decide, MS milliseconds later
 *   COUNT   how many requests the rule answers before it is spent; default: all of them
 *
 * Blank lines and lines starting with '#' are ignored. The rules of one key form a queue taken in
 * order ("T 500 2" then "T 410": two 500s, then 410 from then on). Only requests that pass the
 * checks consume rules. Pure: no I/O; the script owns its rules.
 */
#ifndef VOUCH_STANDIN_SCRIPT_H
#define VOUCH_STANDIN_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#define STANDIN_REASON_MAX 63
#define STANDIN_SCRIPT_MAX_RULES 1000000

enum standin_answer_kind {
    STANDIN_ANSWER_NORMAL, /* no rule, or a 200 rule */
    STANDIN_ANSWER_STATUS,
    STANDIN_ANSWER_GOAWAY,
    STANDIN_ANSWER_DELAY,
};

struct standin_answer {
    enum standin_answer_kind kind;
    int status;                          /* STATUS */
    char reason[STANDIN_REASON_MAX + 1]; /* STATUS */
    long long timestamp_ms;              /* STATUS 410; -1: the time of the answer */
    unsigned delay_ms;                   /* DELAY */
};

struct standin_script;

struct standin_script *standin_script_new(void);
void standin_script_free(struct standin_script *script);
void standin_script_clear(struct standin_script *script);
size_t standin_script_count(const struct standin_script *script);

/* Adds the rules in text (len bytes). All or nothing: on a bad line nothing is added and err gets
 * "line N: why". */
bool standin_script_add(struct standin_script *script, const char *text, size_t len, char *err,
                        size_t err_size) __attribute__((warn_unused_result));

/* Takes the answer for a request to token (lowercase hex), consuming one use of the rule. */
void standin_script_take(struct standin_script *script, const char *token,
                         struct standin_answer *out);

/* Calls emit once per remaining rule with its line ("KEY ACTION ... [COUNT]\n", NUL-terminated),
 * in order within each key. */
void standin_script_dump(const struct standin_script *script,
                         void (*emit)(const char *line, void *arg), void *arg);

#endif
