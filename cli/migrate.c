/*
 * migrate: `vouchctl migrate FILE...|DIR` and `vouchctl migrate status [--watch]`.
 *
 * migrate FILE...|DIR moves a fleet from NanoMDM or MicroMDM: it sends captured Authenticate and
 * TokenUpdate check-in plists (XML, as devices send them) to vouchd's /migration as NanoMDM's
 * nano2nano does (PUT, the raw plist as the body, no Content-Type, HTTP Basic "nanomdm:TOKEN"). A
 * DIR is walked (symbolic links not followed); every regular file named *.plist in it counts but
 * NanoMDM's command queues (folders Queue, QueueDone, QueueNotNow, QueueInactive) and command
 * results (*.result.plist), so NanoMDM's file storage (one folder per enrollment, holding
 * Authenticate.plist and TokenUpdate.plist) is read as it is, and so is any flat folder of
 * captured plists. Each file is read (at most MIGRATE_MAX_BYTES) and parsed with libplist's XML
 * reader for its MessageType and UDID (or EnrollmentID); a binary plist is refused unparsed
 * (libplist 2.2's binary reader copies a shared object at each reference: a 1 KiB file can
 * become a gigabyte; vouchd refuses them too). Every Authenticate is sent before any
 * TokenUpdate. Within a phase up to --parallel transfers (default MIGRATE_PARALLEL) run at once
 * (curl multi). Skipped, not sent and no error: other message types, a plist without a
 * MessageType, and a user channel's check-in (one with a UserID, EnrollmentUserID,
 * UserShortName or UserLongName: Vouch has no user channel, vouchd refuses them). A file that
 * cannot be read or parsed, is binary or too large, is refused without being sent. /migration is
 * idempotent, so running again is harmless.
 *
 * migrate status prints GET /v1/migration; --watch redraws attested/migrated until every migrated
 * device is attested or refused, or Ctrl-C.
 *
 * Ownership: the file list (struct mig_list) owns its paths, ids and reasons; a body is read just
 * before its transfer and freed when it ends, so memory stays bounded by --parallel bodies.
 */
#include "vouchctl.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <plist/plist.h>

#include "api.h"
#include "client.h"
#include "json.h"
#include "output.h"
#include "progress.h"
#include "settings.h"
#include "vouch_version.h"

/* vouchd's default max_body_bytes: a check-in plist is a few KiB, so a larger file is no
 * check-in, and is refused here rather than sent. */
#define MIGRATE_MAX_BYTES ((size_t)1024 * 1024)
/* Transfers at once by default, and at most (--parallel): bench/bench_migration.py measures
 * what they gain. */
#define MIGRATE_PARALLEL 4
#define MIGRATE_PARALLEL_MAX 16
/* The part of a refusal's text/plain body that is kept as its reason. */
#define MIGRATE_MAX_REASON 512
#define MIGRATE_TIMEOUT_S 60L
#define MIGRATE_CONNECT_TIMEOUT_S 10L
#define MIGRATE_WATCH_INTERVAL_S 2

enum mig_phase {
    MIG_AUTHENTICATE = 0,
    MIG_TOKEN_UPDATE = 1, /* a device channel's TokenUpdate */
    MIG_OTHER = 2,        /* not sent */
};

enum mig_outcome { MIG_PENDING, MIG_ACCEPTED, MIG_REFUSED, MIG_SKIPPED };

struct mig_file {
    char *path;
    char *message_type; /* NULL when unreadable */
    char *id;           /* UDID or EnrollmentID, NULL when absent */
    enum mig_phase phase;
    enum mig_outcome outcome;
    long status;  /* HTTP status, 0 when not sent */
    char *reason; /* why refused or skipped */
    size_t order; /* position when found, for a stable sort */
};

struct mig_list {
    struct mig_file *files;
    size_t n, cap;
    bool no_memory;
};

/* nftw() passes no user pointer. */
static struct mig_list *walk_list;

static const char *phase_name(enum mig_phase p)
{
    static const char *const names[] = {"Authenticate", "TokenUpdate", "other"};
    return names[p];
}

static bool mig_add(struct mig_list *l, const char *path)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 256;
        struct mig_file *nf = realloc(l->files, ncap * sizeof(*nf));
        if (nf == NULL)
            return false;
        l->files = nf;
        l->cap = ncap;
    }
    struct mig_file *f = &l->files[l->n];
    memset(f, 0, sizeof(*f));
    f->path = strdup(path);
    if (f->path == NULL)
        return false;
    f->order = l->n++;
    return true;
}

static void mig_list_free(struct mig_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->files[i].path);
        free(l->files[i].message_type);
        free(l->files[i].id);
        free(l->files[i].reason);
    }
    free(l->files);
}

static bool has_suffix(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* NanoMDM's file storage keeps an enrollment's commands as DIR/ID/QUEUE/UUID.plist and their
 * results as UUID.result.plist beside them (its storage/file/queue.go): no check-ins. */
static bool in_command_queue(const char *path, size_t base)
{
    static const char *const queues[] = {"Queue", "QueueDone", "QueueNotNow", "QueueInactive"};
    if (base < 2)
        return false;
    size_t end = base - 1; /* the '/' before the name */
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]); i++) {
        if (end - start == strlen(queues[i]) && memcmp(path + start, queues[i], end - start) == 0)
            return true;
    }
    return false;
}

static int walk_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    const char *base = path + ftw->base;
    size_t n = strlen(base);
    if (type == FTW_F && base[0] != '.' && has_suffix(base, n, ".plist") &&
        !has_suffix(base, n, ".result.plist") && !in_command_queue(path, (size_t)ftw->base) &&
        !mig_add(walk_list, path)) {
        walk_list->no_memory = true;
        return 1;
    }
    return 0;
}

/* Adds the files that arg names (a file, or the *.plist files under a folder). */
static bool collect(struct mig_list *l, const char *arg)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        fprintf(stderr, "vouchctl: cannot open %s: %s\n", arg, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (!mig_add(l, arg)) {
            api_fail_nomem();
            return false;
        }
        return true;
    }
    walk_list = l;
    if (nftw(arg, walk_visit, 32, FTW_PHYS) != 0) {
        if (l->no_memory)
            api_fail_nomem();
        else
            fprintf(stderr, "vouchctl: cannot walk %s: %s\n", arg, strerror(errno));
        return false;
    }
    return true;
}

static void set_reason(struct mig_file *f, enum mig_outcome outcome, const char *reason)
{
    f->outcome = outcome;
    free(f->reason);
    f->reason = strdup(reason);
}

static char *plist_string(plist_t dict, const char *key)
{
    plist_t node = plist_dict_get_item(dict, key);
    char *s = NULL;
    if (node != NULL && plist_get_node_type(node) == PLIST_STRING)
        plist_get_string_val(node, &s);
    return s;
}

/* Reads f's file, whole, into *data (freed by the caller); refuses f when it cannot. */
static bool read_body(struct mig_file *f, char **data, size_t *len)
{
    struct stat st;
    if (stat(f->path, &st) != 0) {
        set_reason(f, MIG_REFUSED, strerror(errno));
        return false;
    }
    if ((size_t)st.st_size > MIGRATE_MAX_BYTES) {
        set_reason(f, MIG_REFUSED, "larger than 1048576 bytes (vouchd's max_body_bytes)");
        return false;
    }
    /* ctl_read_file() says why on stderr; the summary says it again beside the file. */
    if (!ctl_read_file(f->path, MIGRATE_MAX_BYTES, data, len)) {
        set_reason(f, MIG_REFUSED, "cannot be read");
        return false;
    }
    return true;
}

/* The first key of a user channel's check-in in dict, or NULL (vouchd's /migration refuses
 * them: 400 user_channel). */
static const char *user_channel_key(plist_t dict)
{
    static const char *const keys[] = {"UserID", "EnrollmentUserID", "UserShortName",
                                       "UserLongName"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (plist_dict_get_item(dict, keys[i]) != NULL)
            return keys[i];
    }
    return NULL;
}

/* Reads and parses f: its message type, UDID and phase; refuses or skips it when it is no
 * device's Authenticate or TokenUpdate. */
static void identify(struct mig_file *f)
{
    static const char bplist_magic[] = "bplist";
    char *data = NULL;
    size_t len = 0;
    plist_t root = NULL;
    const char *user_key = NULL;

    if (!read_body(f, &data, &len))
        return;
    if (len >= sizeof(bplist_magic) - 1 &&
        memcmp(data, bplist_magic, sizeof(bplist_magic) - 1) == 0) {
        free(data);
        set_reason(f, MIG_REFUSED, "binary plist: convert it with plutil -convert xml1");
        return;
    }
    if (len > 0)
        plist_from_xml(data, (uint32_t)len, &root);
    free(data);
    if (root == NULL || plist_get_node_type(root) != PLIST_DICT) {
        set_reason(f, MIG_REFUSED, "not a plist dictionary (malformed)");
        goto out;
    }
    f->message_type = plist_string(root, "MessageType");
    f->id = plist_string(root, "UDID");
    if (f->id == NULL)
        f->id = plist_string(root, "EnrollmentID");
    if (f->message_type == NULL) {
        set_reason(f, MIG_SKIPPED, "no MessageType: no check-in, not migrated");
    } else if (strcmp(f->message_type, "Authenticate") != 0 &&
               strcmp(f->message_type, "TokenUpdate") != 0) {
        f->phase = MIG_OTHER;
        set_reason(f, MIG_SKIPPED, "not an Authenticate or TokenUpdate: not migrated");
    } else if ((user_key = user_channel_key(root)) != NULL) {
        char why[128];
        snprintf(why, sizeof(why), "a user channel's %s (%s): Vouch has no user channel",
                 f->message_type, user_key);
        set_reason(f, MIG_SKIPPED, why);
    } else if (strcmp(f->message_type, "Authenticate") == 0) {
        f->phase = MIG_AUTHENTICATE;
    } else {
        f->phase = MIG_TOKEN_UPDATE;
    }
out:
    if (root != NULL)
        plist_free(root);
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(((const struct mig_file *)a)->path, ((const struct mig_file *)b)->path);
}

static int compare_files(const void *a, const void *b)
{
    const struct mig_file *x = a, *y = b;
    if (x->phase != y->phase)
        return x->phase < y->phase ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* One transfer in flight. */
struct transfer {
    CURL *curl;
    struct curl_slist *headers;
    struct mig_file *file;
    char *body;
    char reply[MIGRATE_MAX_REASON + 1];
    size_t reply_len;
    char error[CURL_ERROR_SIZE];
};

static size_t on_reply(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct transfer *t = userdata;
    size_t n = size * nmemb;
    size_t room = MIGRATE_MAX_REASON - t->reply_len;
    size_t take = n < room ? n : room; /* the rest is read and dropped */
    memcpy(t->reply + t->reply_len, ptr, take);
    t->reply_len += take;
    t->reply[t->reply_len] = '\0';
    return n;
}

struct sender {
    struct ctl *ctl;
    CURLM *multi;
    char *url;
    struct transfer slots[MIGRATE_PARALLEL_MAX];
    size_t nslots; /* --parallel */
    size_t done;
    struct progress *progress;
};

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (curl_easy_setopt(t->curl, opt, val) != CURLE_OK)                                       \
            goto fail;                                                                             \
    } while (0)

/* Starts f's PUT in the free slot t; refuses f (and leaves t free) when it cannot. */
static void start_transfer(struct sender *s, struct transfer *t, struct mig_file *f)
{
    size_t len = 0;
    const struct settings *st = s->ctl->settings;

    memset(t, 0, sizeof(*t));
    t->file = f;
    if (!read_body(f, &t->body, &len)) {
        t->file = NULL;
        s->done++;
        return;
    }
    t->curl = curl_easy_init();
    if (t->curl == NULL)
        goto fail;
    /* As Go's http.NewRequest sends it: no Content-Type (curl would add a form's), no Expect. */
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type:");
    if (h == NULL)
        goto fail;
    t->headers = h;
    h = curl_slist_append(t->headers, "Expect:");
    if (h == NULL)
        goto fail;
    t->headers = h;
    SETOPT(CURLOPT_ERRORBUFFER, t->error);
    SETOPT(CURLOPT_URL, s->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_CONNECTTIMEOUT, MIGRATE_CONNECT_TIMEOUT_S);
    SETOPT(CURLOPT_TIMEOUT, MIGRATE_TIMEOUT_S);
    SETOPT(CURLOPT_USERAGENT, "vouchctl/" VOUCH_VERSION);
    SETOPT(CURLOPT_CUSTOMREQUEST, "PUT");
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    SETOPT(CURLOPT_POSTFIELDS, t->body);
    SETOPT(CURLOPT_HTTPHEADER, t->headers);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_WRITEFUNCTION, on_reply);
    SETOPT(CURLOPT_WRITEDATA, t);
    if (st->token != NULL && st->token[0] != '\0') {
        SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SETOPT(CURLOPT_USERNAME, "nanomdm");
        SETOPT(CURLOPT_PASSWORD, st->token);
    }
    if (st->ca_file != NULL)
        SETOPT(CURLOPT_CAINFO, st->ca_file);
    if (curl_multi_add_handle(s->multi, t->curl) != CURLM_OK)
        goto fail;
    return;
fail:
    set_reason(f, MIG_REFUSED, "cannot start the request (out of memory?)");
    s->done++;
    curl_slist_free_all(t->headers);
    if (t->curl != NULL)
        curl_easy_cleanup(t->curl);
    free(t->body);
    memset(t, 0, sizeof(*t));
}

/* The first line of a refusal's body, sanitized, or the transport's error. */
static void finish_transfer(struct sender *s, struct transfer *t, CURLcode rc)
{
    struct mig_file *f = t->file;
    if (rc != CURLE_OK) {
        char msg[CURL_ERROR_SIZE + 64];
        snprintf(msg, sizeof(msg), "not sent: %s",
                 t->error[0] != '\0' ? t->error : curl_easy_strerror(rc));
        set_reason(f, MIG_REFUSED, msg);
    } else {
        long status = 0;
        if (curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
            status = 0;
        f->status = status;
        if (status == 200) {
            f->outcome = MIG_ACCEPTED;
        } else {
            t->reply[strcspn(t->reply, "\r\n")] = '\0';
            char *safe = output_sanitize(t->reply);
            set_reason(f, MIG_REFUSED,
                       safe != NULL && safe[0] != '\0' ? safe : "(no reason given)");
            free(safe);
        }
    }
    curl_multi_remove_handle(s->multi, t->curl);
    curl_easy_cleanup(t->curl);
    curl_slist_free_all(t->headers);
    free(t->body);
    memset(t, 0, sizeof(*t));
    s->done++;
}

/* Sends files[0..n) (one phase), s->nslots at a time; false when curl fails as a whole. */
static bool send_phase(struct sender *s, struct mig_file *files, size_t n, size_t base)
{
    size_t next = 0, running = 0;

    for (;;) {
        for (size_t i = 0; i < s->nslots && next < n; i++) {
            if (s->slots[i].file != NULL)
                continue;
            start_transfer(s, &s->slots[i], &files[next++]);
            if (s->slots[i].file != NULL)
                running++;
        }
        progress_update(s->progress, base + s->done);
        if (running == 0 && next == n)
            return true;
        int still = 0;
        if (curl_multi_perform(s->multi, &still) != CURLM_OK)
            return false;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            for (size_t i = 0; i < s->nslots; i++) {
                if (s->slots[i].curl == msg->easy_handle) {
                    finish_transfer(s, &s->slots[i], msg->data.result);
                    running--;
                    break;
                }
            }
        }
        if (running > 0 && curl_multi_poll(s->multi, NULL, 0, 1000, NULL) != CURLM_OK)
            return false;
    }
}

static bool print_summary_json(const struct mig_list *l, size_t accepted, size_t refused,
                               size_t skipped)
{
    struct json_writer *w = json_writer_new(CLIENT_MAX_RESPONSE, 0);
    const char *data;
    size_t len;
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "accepted") &&
              json_write_uint64(w, accepted) && json_write_key(w, "refused") &&
              json_write_uint64(w, refused) && json_write_key(w, "skipped") &&
              json_write_uint64(w, skipped) && json_write_key(w, "files") &&
              json_write_begin_array(w);
    static const char *const outcomes[] = {"pending", "accepted", "refused", "skipped"};
    for (size_t i = 0; ok && i < l->n; i++) {
        const struct mig_file *f = &l->files[i];
        ok = json_write_begin_object(w) && json_write_key(w, "file") &&
             json_write_string(w, f->path) && json_write_key(w, "message_type") &&
             json_write_string_or_null(w, f->message_type) && json_write_key(w, "udid") &&
             json_write_string_or_null(w, f->id) && json_write_key(w, "result") &&
             json_write_string(w, outcomes[f->outcome]) && json_write_key(w, "status") &&
             (f->status != 0 ? json_write_int64(w, f->status) : json_write_null(w)) &&
             json_write_key(w, "reason") && json_write_string_or_null(w, f->reason) &&
             json_write_end_object(w);
    }
    ok = ok && json_write_end_array(w) && json_write_end_object(w) &&
         json_writer_finish(w, &data, &len);
    if (ok)
        ok = fwrite(data, 1, len, stdout) == len && fputc('\n', stdout) != EOF;
    json_writer_free(w);
    return ok;
}

static int migrate_files(struct ctl *ctl)
{
    struct mig_list l = {0};
    int rc = CTL_EXIT_OK;
    size_t nslots = MIGRATE_PARALLEL;

    if (ctl->parallel != NULL) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(ctl->parallel, &end, 10);
        if (errno != 0 || end == ctl->parallel || *end != '\0' || v < 1 || v > MIGRATE_PARALLEL_MAX)
            return ctl_usage_error("migrate", "--parallel wants 1 to %d, not '%s'",
                                   MIGRATE_PARALLEL_MAX, ctl->parallel);
        nslots = v;
    }

    for (size_t i = 0; i < ctl->nargs; i++) {
        if (!collect(&l, ctl->args[i])) {
            mig_list_free(&l);
            return CTL_EXIT_FAILURE;
        }
    }
    if (l.n == 0) {
        fprintf(stderr, "vouchctl: no *.plist file found\n");
        mig_list_free(&l);
        return CTL_EXIT_FAILURE;
    }
    /* In the order of their paths (a folder's listing is in no order), then by phase. */
    qsort(l.files, l.n, sizeof(*l.files), compare_paths);
    for (size_t i = 0; i < l.n; i++) {
        l.files[i].order = i;
        identify(&l.files[i]);
        if (l.files[i].outcome != MIG_PENDING)
            l.files[i].phase = MIG_OTHER; /* not sent: listed last */
    }
    qsort(l.files, l.n, sizeof(*l.files), compare_files);

    size_t to_send = 0;
    for (size_t i = 0; i < l.n; i++)
        to_send += l.files[i].outcome == MIG_PENDING;

    if (ctl->dry_run) {
        for (size_t i = 0; i < l.n; i++) {
            const struct mig_file *f = &l.files[i];
            char *p = output_sanitize(f->path), *id = output_sanitize(f->id ? f->id : "-");
            if (f->outcome == MIG_PENDING)
                printf("would send %s  %s  %s\n", phase_name(f->phase), id ? id : "?", p ? p : "?");
            else
                printf("would not send %s: %s\n", p ? p : "?", f->reason ? f->reason : "?");
            free(p);
            free(id);
        }
        printf("%zu to send\n", to_send);
        size_t refused = 0;
        for (size_t i = 0; i < l.n; i++)
            refused += l.files[i].outcome == MIG_REFUSED;
        mig_list_free(&l);
        /* As a real run would end: these files would be refused without being sent. */
        return refused > 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
    }

    struct sender s = {.ctl = ctl, .nslots = nslots};
    s.url = api_str_join(client_base_url(ctl->client), "/migration", (const char *)NULL);
    s.multi = curl_multi_init();
    if (s.url == NULL || s.multi == NULL) {
        rc = api_fail_nomem();
        goto out;
    }
    curl_multi_setopt(s.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)s.nslots);
    s.progress = progress_begin("migrate", to_send, ctl->json);

    /* One phase after the other: a TokenUpdate never overtakes its Authenticate. */
    size_t start = 0;
    size_t sent_before = 0;
    while (start < l.n) {
        size_t end = start;
        while (end < l.n && l.files[end].phase == l.files[start].phase)
            end++;
        /* Files refused when read, and the skipped ones (MIG_OTHER, last), are not sent. */
        struct mig_file *batch = l.files + start;
        size_t n = end - start;
        if (l.files[start].phase != MIG_OTHER) {
            /* The pending ones to the front, in their order: they are sent, the rest not. */
            size_t m = 0;
            for (size_t i = 0; i < n; i++) {
                if (batch[i].outcome == MIG_PENDING) {
                    struct mig_file tmp = batch[m];
                    batch[m++] = batch[i];
                    batch[i] = tmp;
                }
            }
            s.done = 0;
            if (!send_phase(&s, batch, m, sent_before)) {
                fprintf(stderr, "vouchctl: the HTTP transfers failed\n");
                rc = CTL_EXIT_FAILURE;
                goto out;
            }
            sent_before += m;
        }
        start = end;
    }
    progress_end(s.progress);
    s.progress = NULL;

    size_t accepted = 0, refused = 0, skipped = 0, unauthorized = 0;
    for (size_t i = 0; i < l.n; i++) {
        const struct mig_file *f = &l.files[i];
        accepted += f->outcome == MIG_ACCEPTED;
        refused += f->outcome == MIG_REFUSED;
        skipped += f->outcome == MIG_SKIPPED;
        unauthorized += f->status == 401;
    }
    if (ctl->json) {
        if (!print_summary_json(&l, accepted, refused, skipped))
            rc = CTL_EXIT_FAILURE;
    } else {
        for (size_t i = 0; i < l.n; i++) {
            const struct mig_file *f = &l.files[i];
            if (f->outcome != MIG_REFUSED && f->outcome != MIG_SKIPPED)
                continue;
            char *p = output_sanitize(f->path);
            const char *what = f->outcome == MIG_REFUSED ? "refused" : "skipped";
            if (f->status != 0)
                printf("%s %s: HTTP %ld %s\n", what, p ? p : "?", f->status,
                       f->reason ? f->reason : "");
            else
                printf("%s %s: %s\n", what, p ? p : "?", f->reason ? f->reason : "");
            free(p);
        }
        printf("%zu accepted, %zu refused", accepted, refused);
        if (skipped > 0)
            printf(", %zu skipped", skipped);
        putchar('\n');
    }
    if (unauthorized > 0)
        fprintf(stderr, ctl->have_token ? "vouchctl: the server refused the admin token\n"
                                        : "vouchctl: no admin token: pass --token or set "
                                          "VOUCH_ADMIN_TOKEN\n");
    if (refused > 0)
        rc = CTL_EXIT_FAILURE;
out:
    progress_end(s.progress);
    for (size_t i = 0; i < MIGRATE_PARALLEL_MAX; i++) {
        /* Left by a failed phase. */
        if (s.slots[i].curl != NULL) {
            curl_multi_remove_handle(s.multi, s.slots[i].curl);
            curl_easy_cleanup(s.slots[i].curl);
            curl_slist_free_all(s.slots[i].headers);
            free(s.slots[i].body);
        }
    }
    if (s.multi != NULL)
        curl_multi_cleanup(s.multi);
    free(s.url);
    mig_list_free(&l);
    return rc;
}

/* The figures of GET /v1/migration. */
struct mig_status {
    const char *migration;
    int64_t counts[6];
    const struct json_value *topics;
};

static const char *const count_names[] = {"migrated", "waiting",  "provisional",
                                          "bound",    "attested", "refused"};

static bool parse_status(const struct json_value *root, struct mig_status *st)
{
    const struct json_value *devices = json_object_find(root, "devices");
    st->migration = json_object_get_string(root, "migration");
    st->topics = json_object_find(root, "topics_without_certificate");
    if (st->migration == NULL || json_value_kind(devices) != JSON_KIND_OBJECT ||
        json_value_kind(st->topics) != JSON_KIND_ARRAY)
        return false;
    for (size_t i = 0; i < 6; i++) {
        if (!json_get_int64(json_object_find(devices, count_names[i]), &st->counts[i]) ||
            st->counts[i] < 0)
            return false;
    }
    return true;
}

static void print_status(const struct mig_status *st)
{
    printf("%-28s %s\n", "migration", st->migration);
    for (size_t i = 0; i < 6; i++)
        printf("%-28s %lld\n", count_names[i], (long long)st->counts[i]);
    size_t n = json_array_length(st->topics);
    printf("%-28s %zu\n", "topics without a certificate", n);
    for (size_t i = 0; i < n; i++) {
        const struct json_value *t = json_array_at(st->topics, i);
        const char *topic = json_object_get_string(t, "topic");
        int64_t devices = 0;
        char *safe = output_sanitize(topic != NULL ? topic : "?");
        if (!json_get_int64(json_object_find(t, "devices"), &devices))
            devices = -1;
        printf("  %s  %lld devices\n", safe != NULL ? safe : "?", (long long)devices);
        free(safe);
    }
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int migrate_status(struct ctl *ctl)
{
    static const char path[] = "/v1/migration";
    struct progress *bar = NULL;
    size_t bar_total = 0;
    int rc;

    if (ctl->watch) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: the sleep ends at once */
    }
    for (;;) {
        struct json_doc *doc = NULL;
        struct mig_status st;
        rc = api_call(ctl, "GET", path, NULL, 0, NULL, 0, &doc, NULL);
        if (rc != CTL_EXIT_OK)
            break;
        if (!parse_status(json_doc_root(doc), &st)) {
            rc = api_unexpected_shape(ctl, path, "the migration's figures");
            json_doc_free(doc);
            break;
        }
        int64_t migrated = st.counts[0], attested = st.counts[4], refused = st.counts[5];
        bool complete = attested + refused >= migrated;
        if (!ctl->watch || complete || interrupted) {
            progress_end(bar);
            bar = NULL;
            rc = ctl->json ? api_print_json(json_doc_root(doc)) : CTL_EXIT_OK;
            if (!ctl->json)
                print_status(&st);
            json_doc_free(doc);
            if (ctl->watch && !complete)
                rc = CTL_EXIT_FAILURE; /* interrupted before the end */
            break;
        }
        if (progress_wanted(ctl->json)) {
            if (bar == NULL || bar_total != (size_t)migrated) {
                progress_end(bar);
                bar_total = (size_t)migrated;
                bar = progress_begin("attested", bar_total, ctl->json);
            }
            progress_update(bar, (size_t)attested);
        } else if (!ctl->json) {
            /* Not a terminal: one line per change of figures would be as good; one per look. */
            printf("attested %lld/%lld, provisional %lld, waiting %lld, refused %lld\n",
                   (long long)attested, (long long)migrated, (long long)st.counts[2],
                   (long long)st.counts[1], (long long)refused);
            fflush(stdout);
        }
        json_doc_free(doc);
        struct timespec ts = {MIGRATE_WATCH_INTERVAL_S, 0};
        nanosleep(&ts, NULL);
    }
    progress_end(bar);
    return rc;
}

int cmd_migrate(struct ctl *ctl)
{
    if (ctl->nargs == 1 && strcmp(ctl->args[0], "status") == 0) {
        if (ctl->dry_run)
            return ctl_usage_error("migrate", "--dry-run is for sending files, not status");
        return migrate_status(ctl);
    }
    if (ctl->watch)
        return ctl_usage_error("migrate", "--watch goes with 'migrate status'");
    return migrate_files(ctl);
}
