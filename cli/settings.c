/* settings: see settings.h. */
#include "settings.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "ctl_config.h"
#include "usage.h"
#include "vouchctl.h"

/* Larger than any configuration an operator writes, or any token vouchd issues. */
#define SETTINGS_MAX_CONFIG ((size_t)256 * 1024)
#define SETTINGS_MAX_TOKEN ((size_t)4096)

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The default file: $XDG_CONFIG_HOME/vouch/vouchctl.conf, else ~/.config/vouch/vouchctl.conf. */
static char *default_config_path(void)
{
    const char *xdg = env_nonempty("XDG_CONFIG_HOME");
    const char *home = env_nonempty("HOME");
    if (xdg != NULL && xdg[0] == '/')
        return api_str_join(xdg, "/vouch/vouchctl.conf", (const char *)NULL);
    if (home != NULL)
        return api_str_join(home, "/.config/vouch/vouchctl.conf", (const char *)NULL);
    return NULL;
}

/* A path from the file: "~/x" is in $HOME, a relative one beside the file itself. */
static char *config_relative(const char *config_path, const char *value)
{
    const char *home = env_nonempty("HOME");
    if (value[0] == '~' && value[1] == '/' && home != NULL)
        return api_str_join(home, value + 1, (const char *)NULL);
    if (value[0] == '/')
        return api_str_join(value, (const char *)NULL);
    const char *slash = strrchr(config_path, '/');
    if (slash == NULL)
        return api_str_join(value, (const char *)NULL);
    char *dir = strndup(config_path, (size_t)(slash - config_path) + 1);
    char *path = dir != NULL ? api_str_join(dir, value, (const char *)NULL) : NULL;
    free(dir);
    return path;
}

/* Reads the token in path (its first line, blanks trimmed) into *token. A token file that group
 * or others may read, or that is not a regular file, is refused, as ssh refuses such a key. */
static int read_token_file(const char *path, char **token)
{
    struct stat st;
    char *data = NULL;
    size_t len = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "vouchctl: cannot read the token file %s: %s\n", path, strerror(errno));
        return CTL_EXIT_FAILURE;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "vouchctl: the token file %s is not a regular file\n", path);
        return CTL_EXIT_FAILURE;
    }
    if ((st.st_mode & 077) != 0) {
        fprintf(stderr,
                "vouchctl: the token file %s is open to %s (mode %04o): refused, as the token "
                "would be readable by other users; run: chmod 600 %s\n",
                path, (st.st_mode & 007) != 0 ? "others" : "its group",
                (unsigned)(st.st_mode & 07777), path);
        return CTL_EXIT_FAILURE;
    }
    if (!ctl_read_file(path, SETTINGS_MAX_TOKEN, &data, &len))
        return CTL_EXIT_FAILURE;
    size_t n = strcspn(data, "\r\n");
    while (n > 0 && (data[n - 1] == ' ' || data[n - 1] == '\t'))
        n--;
    data[n] = '\0';
    if (n == 0) {
        fprintf(stderr, "vouchctl: the token file %s is empty\n", path);
        explicit_bzero(data, len);
        free(data);
        return CTL_EXIT_FAILURE;
    }
    /* The token alone moves on; the rest of the buffer is wiped. */
    *token = strdup(data);
    explicit_bzero(data, len);
    free(data);
    return *token != NULL ? CTL_EXIT_OK : api_fail_nomem();
}

/* Reads and parses the configuration file, if there is one, into *server. An absent default file
 * is no error; an absent --config file is. */
static int read_config(const struct settings_request *req, struct settings *out,
                       struct ctl_config_server *server)
{
    char *text = NULL;
    size_t len = 0;
    char err[512];
    struct stat st;

    out->config_path = req->config != NULL ? strdup(req->config) : default_config_path();
    if (out->config_path == NULL) {
        if (req->server != NULL) {
            fprintf(stderr, "vouchctl: --server %s: no configuration file (HOME is not set)\n",
                    req->server);
            return CTL_EXIT_USAGE;
        }
        return CTL_EXIT_OK;
    }
    if (req->config == NULL && stat(out->config_path, &st) != 0 && errno == ENOENT) {
        if (req->server != NULL) {
            fprintf(stderr,
                    "vouchctl: --server %s: there is no configuration file %s (see 'vouchctl "
                    "config --help')\n",
                    req->server, out->config_path);
            return CTL_EXIT_USAGE;
        }
        free(out->config_path);
        out->config_path = NULL;
        return CTL_EXIT_OK;
    }
    if (!ctl_read_file(out->config_path, SETTINGS_MAX_CONFIG, &text, &len))
        return CTL_EXIT_FAILURE;
    enum ctl_config_result r = ctl_config_parse(text, len, req->server, server, err, sizeof(err));
    free(text);
    switch (r) {
    case CTL_CONFIG_FOUND:
        out->server = strdup(server->name);
        out->server_how = strdup(req->server != NULL ? "--server" : "default = in the file");
        return out->server != NULL && out->server_how != NULL ? CTL_EXIT_OK : api_fail_nomem();
    case CTL_CONFIG_NO_SERVER:
        return CTL_EXIT_OK;
    case CTL_CONFIG_UNKNOWN:
        fprintf(stderr, "vouchctl: %s: %s\n", out->config_path, err);
        return req->server != NULL ? CTL_EXIT_USAGE : CTL_EXIT_FAILURE;
    case CTL_CONFIG_BAD_FILE:
        break;
    }
    fprintf(stderr, "vouchctl: %s: %s\n", out->config_path, err);
    return CTL_EXIT_FAILURE;
}

static int set2(char **a, const char *va, char **b, const char *vb)
{
    *a = strdup(va);
    *b = strdup(vb);
    return *a != NULL && *b != NULL ? CTL_EXIT_OK : api_fail_nomem();
}

static int resolve_url(const struct settings_request *req, const struct ctl_config_server *server,
                       struct settings *out)
{
    const char *env = env_nonempty("VOUCH_URL");
    char *from_server = NULL;

    if (req->url != NULL)
        return set2(&out->url, req->url, &out->url_source, "--url");
    if (server->url != NULL && (req->server != NULL || env == NULL)) {
        from_server = api_str_join("server ", server->name, (const char *)NULL);
        if (from_server == NULL)
            return api_fail_nomem();
        int rc = set2(&out->url, server->url, &out->url_source, from_server);
        free(from_server);
        return rc;
    }
    if (env != NULL)
        return set2(&out->url, env, &out->url_source, "VOUCH_URL");
    return set2(&out->url, DEFAULT_URL, &out->url_source, "built-in default");
}

static int resolve_token(const struct settings_request *req, const struct ctl_config_server *server,
                         struct settings *out)
{
    const char *env = env_nonempty("VOUCH_ADMIN_TOKEN");

    if (req->token != NULL) {
        out->token = strdup(req->token);
        out->token_source = strdup("--token");
    } else if (req->token_file != NULL) {
        int rc = read_token_file(req->token_file, &out->token);
        if (rc != CTL_EXIT_OK)
            return rc;
        out->token_source = api_str_join("--token-file ", req->token_file, (const char *)NULL);
    } else if (server->token_file != NULL && (req->server != NULL || env == NULL)) {
        char *path = config_relative(out->config_path, server->token_file);
        if (path == NULL)
            return api_fail_nomem();
        int rc = read_token_file(path, &out->token);
        if (rc == CTL_EXIT_OK)
            out->token_source = api_str_join("token_file ", path, " (server ", server->name, ")",
                                             (const char *)NULL);
        free(path);
        if (rc != CTL_EXIT_OK)
            return rc;
    } else if (env != NULL) {
        out->token = strdup(env);
        out->token_source = strdup("VOUCH_ADMIN_TOKEN");
    } else {
        out->token_source = strdup("none");
        return out->token_source != NULL ? CTL_EXIT_OK : api_fail_nomem();
    }
    return out->token != NULL && out->token_source != NULL ? CTL_EXIT_OK : api_fail_nomem();
}

int settings_resolve(const struct settings_request *req, struct settings *out)
{
    struct ctl_config_server server = {0};

    memset(out, 0, sizeof(*out));
    int rc = read_config(req, out, &server);
    if (rc == CTL_EXIT_OK)
        rc = resolve_url(req, &server, out);
    if (rc == CTL_EXIT_OK)
        rc = resolve_token(req, &server, out);
    if (rc == CTL_EXIT_OK && server.ca_file != NULL) {
        out->ca_file = config_relative(out->config_path, server.ca_file);
        if (out->ca_file == NULL)
            rc = api_fail_nomem();
    }
    ctl_config_server_clear(&server);
    if (rc != CTL_EXIT_OK)
        settings_clear(out);
    return rc;
}

void settings_clear(struct settings *s)
{
    if (s->token != NULL)
        explicit_bzero(s->token, strlen(s->token));
    free(s->token);
    free(s->config_path);
    free(s->server);
    free(s->server_how);
    free(s->url);
    free(s->url_source);
    free(s->token_source);
    free(s->ca_file);
    memset(s, 0, sizeof(*s));
}

static void print_server_name(void *arg, const char *name)
{
    (void)arg;
    printf("%s\n", name);
}

int cmd_config(struct ctl *ctl)
{
    const struct settings *s = ctl->settings;
    const char *action = ctl->nargs > 0 ? ctl->args[0] : "show";

    if (strcmp(action, "servers") == 0) {
        char *text = NULL;
        size_t len = 0;
        if (s->config_path == NULL)
            return CTL_EXIT_OK;
        if (!ctl_read_file(s->config_path, SETTINGS_MAX_CONFIG, &text, &len))
            return CTL_EXIT_FAILURE;
        bool ok = ctl_config_list_servers(text, len, print_server_name, NULL);
        free(text);
        return ok ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
    }
    if (strcmp(action, "show") != 0)
        return ctl_usage_error("config", "unknown action '%s' (show, servers)", action);
    /* The token is a secret: only where it came from is shown. */
    printf("config file: %s\n", s->config_path != NULL ? s->config_path : "(none)");
    if (s->server != NULL)
        printf("server:      %s (%s)\n", s->server, s->server_how);
    else
        printf("server:      (none)\n");
    printf("url:         %s (%s)\n", s->url, s->url_source);
    printf("token:       %s\n", s->token_source);
    if (s->ca_file != NULL)
        printf("ca file:     %s\n", s->ca_file);
    return CTL_EXIT_OK;
}
