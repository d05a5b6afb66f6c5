/* hconfig_lists.c - see hconfig_lists.h. */
#include "hconfig_lists.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int config_parse_bool(const char *s)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

static int push_str(char ***list, size_t *n, const char *v)
{
    char **nl = realloc(*list, (*n + 1) * sizeof *nl);
    if (!nl)
        return -1;
    *list = nl;
    nl[*n] = strdup(v);
    if (!nl[*n])
        return -1;
    (*n)++;
    return 0;
}

static void free_strs(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static bool name_ok(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

static upstream_conf *upstream_get(hearth_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_upstreams; i++)
        if (strcmp(c->upstreams[i].name, name) == 0)
            return &c->upstreams[i];
    upstream_conf *nu = realloc(c->upstreams, (c->n_upstreams + 1) * sizeof *nu);
    if (!nu)
        return NULL;
    c->upstreams = nu;
    upstream_conf *u = &nu[c->n_upstreams];
    *u = (upstream_conf){.name = strdup(name), .connect_timeout = 10, .timeout = 300};
    if (!u->name)
        return NULL;
    c->n_upstreams++;
    return u;
}

static int set_str(char **field, const char *v)
{
    char *d = *v ? strdup(v) : NULL;
    if (*v && !d)
        return -1;
    free(*field);
    *field = d;
    return 0;
}

static int set_secs(int *field, const char *name, const char *v, int min, char *err,
                    size_t errlen)
{
    char *end;
    errno = 0;
    long s = strtol(v, &end, 10);
    if (end == v || *end || errno || s < min || s > 86400) {
        snprintf(err, errlen, "%s: '%s' is not a number of seconds in %d..86400", name, v, min);
        return -1;
    }
    *field = (int)s;
    return 0;
}

static int upstream_kv(hearth_config *c, const char *uname, const char *name, const char *v,
                       char *err, size_t errlen)
{
    if (!name_ok(uname)) {
        snprintf(err, errlen, "upstream name '%.64s' must be 1-64 of [A-Za-z0-9_.-]", uname);
        return -1;
    }
    upstream_conf *u = upstream_get(c, uname);
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    if (strcmp(name, "url") == 0) {
        if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0) {
            snprintf(err, errlen, "url: must start with https:// or http://");
            return -1;
        }
        rc = set_str(&u->url, v);
    } else if (strcmp(name, "model") == 0)
        rc = set_str(&u->model, v);
    else if (strcmp(name, "api_key_env") == 0)
        rc = set_str(&u->api_key_env, v);
    else if (strcmp(name, "api_key_file") == 0)
        rc = set_str(&u->api_key_file, v);
    else if (strcmp(name, "ca_file") == 0)
        rc = set_str(&u->ca_file, v);
    else if (strcmp(name, "connect_timeout") == 0)
        return set_secs(&u->connect_timeout, name, v, 1, err, errlen) < 0 ? -1 : 1;
    else if (strcmp(name, "timeout") == 0)
        return set_secs(&u->timeout, name, v, 0, err, errlen) < 0 ? -1 : 1;
    else if (strcmp(name, "header") == 0) {
        const char *colon = strchr(v, ':');
        if (!colon || colon == v || strpbrk(v, "\r\n")) {
            snprintf(err, errlen, "header: expected 'Name: value'");
            return -1;
        }
        rc = push_str(&u->headers, &u->n_headers, v);
    } else if (strcmp(name, "api_key") == 0) {
        snprintf(err, errlen, "api_key: keys are not written in this file; use api_key_env "
                              "or api_key_file");
        return -1;
    } else {
        snprintf(err, errlen, "unknown key '%s' in section [upstream.%s] (url, model, "
                 "api_key_env, api_key_file, connect_timeout, timeout, header, ca_file)",
                 name, uname);
        return -1;
    }
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    return rc < 0 ? -1 : 1;
}

int config_router_list_kv(hearth_config *c, const char *section, const char *name,
                          const char *value, char *err, size_t errlen)
{
    if (strncmp(section, "upstream.", 9) == 0)
        return upstream_kv(c, section + 9, name, value, err, errlen);
    if (strcmp(section, "upstream") == 0) {
        snprintf(err, errlen, "name the upstream: [upstream.NAME]");
        return -1;
    }
    if (strcmp(section, "privacy") == 0 && strcmp(name, "pattern") == 0) {
        if (!*value) {
            snprintf(err, errlen, "pattern: empty");
            return -1;
        }
        if (push_str(&c->privacy_patterns, &c->n_privacy_patterns, value) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 1;
    }
    return 0;
}

int config_router_lists_check(const hearth_config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const upstream_conf *u = &c->upstreams[i];
        if (!u->url || !u->model) {
            snprintf(err, errlen, "[upstream.%s] needs %s", u->name, !u->url ? "url" : "model");
            return -1;
        }
    }
    return 0;
}

static void upstream_free(upstream_conf *u)
{
    free(u->name);
    free(u->url);
    free(u->model);
    free(u->api_key_env);
    free(u->api_key_file);
    free(u->ca_file);
    free_strs(u->headers, u->n_headers);
}

void config_free_router_lists(hearth_config *c)
{
    for (size_t i = 0; i < c->n_upstreams; i++)
        upstream_free(&c->upstreams[i]);
    free(c->upstreams);
    c->upstreams = NULL;
    c->n_upstreams = 0;
    free_strs(c->privacy_patterns, c->n_privacy_patterns);
    c->privacy_patterns = NULL;
    c->n_privacy_patterns = 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL) == (b == NULL) && (!a || strcmp(a, b) == 0);
}

static bool strs_eq(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool upstream_eq(const upstream_conf *a, const upstream_conf *b)
{
    return str_eq(a->name, b->name) && str_eq(a->url, b->url) && str_eq(a->model, b->model) &&
           str_eq(a->api_key_env, b->api_key_env) && str_eq(a->api_key_file, b->api_key_file) &&
           str_eq(a->ca_file, b->ca_file) && a->connect_timeout == b->connect_timeout &&
           a->timeout == b->timeout && strs_eq(a->headers, a->n_headers, b->headers, b->n_headers);
}

static void note(char *rk, size_t rk_len, size_t *used, const char *what)
{
    if (!rk_len)
        return;
    int n = snprintf(rk + *used, rk_len - *used, "%s%s", *used ? ", " : "", what);
    if (n > 0 && (size_t)n < rk_len - *used)
        *used += (size_t)n;
}

void config_router_lists_reload(hearth_config *c, const hearth_config *fresh,
                                char *restart_keys, size_t rk_len, size_t *used)
{
    bool same = c->n_upstreams == fresh->n_upstreams;
    for (size_t i = 0; same && i < c->n_upstreams; i++)
        same = upstream_eq(&c->upstreams[i], &fresh->upstreams[i]);
    if (!same)
        note(restart_keys, rk_len, used, "[upstream.*]");
    if (!strs_eq(c->privacy_patterns, c->n_privacy_patterns, fresh->privacy_patterns,
                 fresh->n_privacy_patterns))
        note(restart_keys, rk_len, used, "privacy.pattern");
}
