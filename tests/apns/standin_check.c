/*
 * standin_check: see standin_check.h. The order of the checks is the stand-in's choice (Apple
 * does not document its own); what matters is that each bad request gets Apple's status and reason.
 */
#include "standin_check.h"

#include <stdint.h>
#include <string.h>

#include "hex.h"

static const char *const header_names[STANDIN_HDR_COUNT] = {
    [STANDIN_HDR_TOPIC] = "apns-topic",
    [STANDIN_HDR_PUSH_TYPE] = "apns-push-type",
    [STANDIN_HDR_EXPIRATION] = "apns-expiration",
    [STANDIN_HDR_PRIORITY] = "apns-priority",
    [STANDIN_HDR_ID] = "apns-id",
    [STANDIN_HDR_COLLAPSE_ID] = "apns-collapse-id",
};

#define COLLAPSE_ID_MAX 64
/* Ten digits of seconds reach the year 2286; more means milliseconds or nonsense. */
#define EXPIRATION_DIGITS_MAX 10

bool standin_header_lookup(const char *name, size_t len, enum standin_header *out)
{
    for (int i = 0; i < STANDIN_HDR_COUNT; i++) {
        if (strlen(header_names[i]) == len && memcmp(header_names[i], name, len) == 0) {
            *out = (enum standin_header)i;
            return true;
        }
    }
    return false;
}

bool standin_check_uuid(const char *s)
{
    if (s == NULL || strlen(s) != STANDIN_UUID_LEN)
        return false;
    for (size_t i = 0; i < STANDIN_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : hex_digit((unsigned char)s[i]) < 0)
            return false;
    }
    return true;
}

/* Parses a decimal integer made of digits only, at most max_digits of them. */
static bool parse_digits(const char *s, size_t max_digits, long long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > max_digits)
        return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* --- the payload: {"mdm":"<string>"} ------------------------------------------------------- */

struct json_cursor {
    const unsigned char *p;
    const unsigned char *end;
};

static void skip_ws(struct json_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool expect_char(struct json_cursor *c, unsigned char ch)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch)
        return false;
    c->p++;
    return true;
}

/* Appends code point cp as UTF-8; false when it does not fit (room for the NUL is kept). */
static bool put_utf8(char *out, size_t size, size_t *len, uint32_t cp)
{
    unsigned char buf[4];
    size_t n;
    if (cp < 0x80) {
        buf[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        buf[0] = (unsigned char)(0xC0 | (cp >> 6));
        buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        buf[0] = (unsigned char)(0xE0 | (cp >> 12));
        buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        buf[0] = (unsigned char)(0xF0 | (cp >> 18));
        buf[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        buf[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        buf[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (*len + n >= size)
        return false;
    memcpy(out + *len, buf, n);
    *len += n;
    return true;
}

/* Decodes one raw UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF). */
static bool take_utf8(struct json_cursor *c, uint32_t *cp)
{
    const unsigned char *p = c->p;
    size_t avail = (size_t)(c->end - p);
    uint32_t v;
    size_t n;
    uint32_t min;
    if (p[0] < 0x80) {
        *cp = p[0];
        c->p++;
        return true;
    } else if ((p[0] & 0xE0) == 0xC0) {
        v = p[0] & 0x1F;
        n = 2;
        min = 0x80;
    } else if ((p[0] & 0xF0) == 0xE0) {
        v = p[0] & 0x0F;
        n = 3;
        min = 0x800;
    } else if ((p[0] & 0xF8) == 0xF0) {
        v = p[0] & 0x07;
        n = 4;
        min = 0x10000;
    } else {
        return false;
    }
    if (avail < n)
        return false;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return false;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return false;
    *cp = v;
    c->p += n;
    return true;
}

static bool take_hex4(struct json_cursor *c, uint32_t *out)
{
    if (c->end - c->p < 4)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_digit(c->p[i]);
        if (h < 0)
            return false;
        v = (v << 4) | (uint32_t)h;
    }
    c->p += 4;
    *out = v;
    return true;
}

/* Parses a JSON string at the cursor (after whitespace) into out; NUL is refused. */
static bool take_string(struct json_cursor *c, char *out, size_t size, size_t *out_len)
{
    size_t len = 0;
    if (size == 0 || !expect_char(c, '"'))
        return false;
    for (;;) {
        if (c->p >= c->end)
            return false;
        unsigned char ch = *c->p;
        uint32_t cp;
        if (ch == '"') {
            c->p++;
            break;
        }
        if (ch < 0x20)
            return false;
        if (ch != '\\') {
            if (!take_utf8(c, &cp) || !put_utf8(out, size, &len, cp))
                return false;
            continue;
        }
        c->p++;
        if (c->p >= c->end)
            return false;
        ch = *c->p++;
        switch (ch) {
        case '"':
        case '\\':
        case '/':
            cp = ch;
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            if (!take_hex4(c, &cp))
                return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t low;
                if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
                    return false;
                c->p += 2;
                if (!take_hex4(c, &low) || low < 0xDC00 || low > 0xDFFF)
                    return false;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (cp == 0)
                return false;
            break;
        default:
            return false;
        }
        if (!put_utf8(out, size, &len, cp))
            return false;
    }
    out[len] = '\0';
    if (out_len != NULL)
        *out_len = len;
    return true;
}

bool standin_parse_payload(const char *body, size_t len, char *magic, size_t magic_size,
                           size_t *magic_len)
{
    struct json_cursor c = {(const unsigned char *)body, (const unsigned char *)body + len};
    char key[8];
    if (!expect_char(&c, '{'))
        return false;
    if (!take_string(&c, key, sizeof(key), NULL) || strcmp(key, "mdm") != 0)
        return false;
    if (!expect_char(&c, ':'))
        return false;
    if (!take_string(&c, magic, magic_size, magic_len))
        return false;
    if (!expect_char(&c, '}'))
        return false;
    skip_ws(&c);
    return c.p == c.end;
}

/* --- the checks ------------------------------------------------------------------------------ */

/* Copies the token from the path; true when it is 64..200 hex digits in pairs (lowercased). */
static bool take_token(const char *tok, struct standin_verdict *out)
{
    size_t n = strlen(tok);
    size_t keep = n < STANDIN_TOKEN_MAX ? n : STANDIN_TOKEN_MAX;
    bool hex = true;
    for (size_t i = 0; i < keep; i++) {
        unsigned char ch = (unsigned char)tok[i];
        if (hex_digit(ch) < 0)
            hex = false;
        out->token[i] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
    }
    out->token[keep] = '\0';
    out->has_token = true;
    for (size_t i = keep; i < n && hex; i++)
        hex = hex_digit((unsigned char)tok[i]) >= 0;
    return hex && n >= STANDIN_TOKEN_MIN && n <= STANDIN_TOKEN_MAX && n % 2 == 0;
}

static int refuse(const char **reason, int status, const char *why)
{
    *reason = why;
    return status;
}

/* Returns the status of the first failed check (setting *reason), or 200. */
static int first_failure(const struct standin_request *req, struct standin_verdict *out,
                         const char **reason)
{
    const char *const *h = req->headers;
    long long v;

    /* Parsed up front so the record of a refused push still shows what was sent. */
    if (h[STANDIN_HDR_EXPIRATION] != NULL && parse_digits(h[STANDIN_HDR_EXPIRATION], 18, &v))
        out->expiration = v;
    if (h[STANDIN_HDR_PRIORITY] != NULL && parse_digits(h[STANDIN_HDR_PRIORITY], 3, &v))
        out->priority = (int)v;
    if (req->body_total <= STANDIN_MAX_PAYLOAD && req->body_len == req->body_total)
        out->has_push_magic = standin_parse_payload(req->body, req->body_len, out->push_magic,
                                                    sizeof(out->push_magic), NULL);
    bool has_prefix = req->path != NULL &&
                      strncmp(req->path, STANDIN_PATH_PREFIX, strlen(STANDIN_PATH_PREFIX)) == 0;
    bool token_ok = has_prefix && take_token(req->path + strlen(STANDIN_PATH_PREFIX), out);

    if (req->method == NULL || strcmp(req->method, "POST") != 0)
        return refuse(reason, 405, "MethodNotAllowed");
    if (!has_prefix)
        return refuse(reason, 404, "BadPath");
    if (out->token[0] == '\0')
        return refuse(reason, 400, "MissingDeviceToken");
    if (!token_ok)
        return refuse(reason, 400, "BadDeviceToken");
    if (req->duplicated != 0)
        return refuse(reason, 400, "DuplicateHeaders");
    if (h[STANDIN_HDR_TOPIC] == NULL || h[STANDIN_HDR_TOPIC][0] == '\0')
        return refuse(reason, 400, "MissingTopic");
    if (!req->any_topic && req->topic == NULL)
        return refuse(reason, 403, "BadCertificate");
    if (!req->any_topic && strcmp(h[STANDIN_HDR_TOPIC], req->topic) != 0)
        return refuse(reason, 400, "TopicDisallowed");
    if (h[STANDIN_HDR_PUSH_TYPE] == NULL || strcmp(h[STANDIN_HDR_PUSH_TYPE], "mdm") != 0)
        return refuse(reason, 400, "InvalidPushType");
    if (h[STANDIN_HDR_EXPIRATION] == NULL ||
        !parse_digits(h[STANDIN_HDR_EXPIRATION], EXPIRATION_DIGITS_MAX, &v) || v <= req->now)
        return refuse(reason, 400, "BadExpirationDate");
    if (h[STANDIN_HDR_PRIORITY] == NULL ||
        (strcmp(h[STANDIN_HDR_PRIORITY], "10") != 0 && strcmp(h[STANDIN_HDR_PRIORITY], "5") != 0))
        return refuse(reason, 400, "BadPriority");
    if (h[STANDIN_HDR_ID] != NULL && !standin_check_uuid(h[STANDIN_HDR_ID]))
        return refuse(reason, 400, "BadMessageId");
    if (h[STANDIN_HDR_COLLAPSE_ID] != NULL && strlen(h[STANDIN_HDR_COLLAPSE_ID]) > COLLAPSE_ID_MAX)
        return refuse(reason, 400, "BadCollapseId");
    if (req->body_total > STANDIN_MAX_PAYLOAD)
        return refuse(reason, 413, "PayloadTooLarge");
    if (req->body_total == 0)
        return refuse(reason, 400, "PayloadEmpty");
    if (!out->has_push_magic || out->push_magic[0] == '\0')
        return refuse(reason, 400, "BadPayload");
    return 200;
}

void standin_check_request(const struct standin_request *req, struct standin_verdict *out)
{
    const char *reason = NULL;

    /* Not a memset: the verdict holds 4 KiB of push magic, and this runs for every request. */
    out->token[0] = '\0';
    out->has_token = false;
    out->push_magic[0] = '\0';
    out->has_push_magic = false;
    out->expiration = -1;
    out->priority = -1;
    out->status = first_failure(req, out, &reason);
    out->reason = reason;
}
