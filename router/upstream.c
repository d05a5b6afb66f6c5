/* upstream.c - see upstream.h. */
#include "upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void wipe_free(char *s)
{
    if (!s)
        return;
    volatile char *v = s;
    while (*v)
        *v++ = '\0';
    free(s);
}

/* The key: the variable's value or the file's first line, trimmed. */
static char *read_key(const upstream_conf *c, char *err, size_t errlen)
{
    char buf[4096];
    if (c->api_key_env) {
        const char *v = getenv(c->api_key_env);
        if (!v || !*v) {
            snprintf(err, errlen, "[upstream.%s] api_key_env: %s is not set", c->name,
                     c->api_key_env);
            return NULL;
        }
        snprintf(buf, sizeof buf, "%s", v);
    } else {
        FILE *f = fopen(c->api_key_file, "r");
        if (!f) {
            snprintf(err, errlen, "[upstream.%s] api_key_file: %s: %s", c->name,
                     c->api_key_file, strerror(errno));
            return NULL;
        }
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
    }
    char *s = buf;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    s[n] = '\0';
    char *key = NULL;
    if (!*s)
        snprintf(err, errlen, "[upstream.%s]: the API key is empty", c->name);
    else if (strpbrk(s, "\r\n"))
        snprintf(err, errlen, "[upstream.%s]: the API key holds a line break", c->name);
    else if (!(key = strdup(s)))
        snprintf(err, errlen, "out of memory");
    memset(buf, 0, sizeof buf);
    return key;
}

static int add_header(upstream *u, char *line)
{
    if (!line)
        return -1;
    char **nh = realloc(u->headers, (u->n_headers + 1) * sizeof *nh);
    if (!nh) {
        wipe_free(line);
        return -1;
    }
    u->headers = nh;
    nh[u->n_headers++] = line;
    return 0;
}

int upstream_init(upstream *u, const upstream_conf *conf, char *err, size_t errlen)
{
    *u = (upstream){.conf = conf};
    if (add_header(u, strdup("Content-Type: application/json")) < 0)
        goto oom;
    if (conf->api_key_env || conf->api_key_file) {
        char *key = read_key(conf, err, errlen);
        if (!key) {
            upstream_fini(u);
            return -1;
        }
        size_t n = strlen(key) + 32;
        char *line = malloc(n);
        if (line)
            snprintf(line, n, "Authorization: Bearer %s", key);
        wipe_free(key);
        if (add_header(u, line) < 0)
            goto oom;
        u->keyed = true;
    }
    for (size_t i = 0; i < conf->n_headers; i++)
        if (add_header(u, strdup(conf->headers[i])) < 0)
            goto oom;
    return 0;
oom:
    upstream_fini(u);
    snprintf(err, errlen, "out of memory");
    return -1;
}

void upstream_fini(upstream *u)
{
    for (size_t i = 0; i < u->n_headers; i++)
        wipe_free(u->headers[i]);
    free(u->headers);
    u->headers = NULL;
    u->n_headers = 0;
}

char *upstream_url(const upstream *u, const char *endpoint)
{
    const char *base = u->conf->url;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    size_t n = bl + strlen(endpoint) + 2;
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "%.*s/%s", (int)bl, base, endpoint);
    return url;
}

bool upstream_available(const upstream *u, uint64_t now_ms)
{
    return u->cool_until_ms == 0 || (now_ms >= u->cool_until_ms && !u->trial);
}

bool upstream_begin(upstream *u, uint64_t now_ms)
{
    if (u->cool_until_ms == 0 || now_ms < u->cool_until_ms)
        return false;
    u->trial = true;
    return true;
}

void upstream_abandon(upstream *u)
{
    u->trial = false;
}

void upstream_record(upstream *u, bool ok, uint64_t now_ms, int cooldown_s, int max_failures)
{
    u->trial = false;
    if (ok) {
        u->n_ok++;
        u->failures = 0;
        u->cool_until_ms = 0;
        return;
    }
    u->n_failed++;
    u->failures++;
    if (max_failures > 0 && u->failures >= max_failures && cooldown_s > 0) {
        /* the count stays: after the cool-down one trial request goes
         * through, and if it fails too the upstream cools down again */
        u->cool_until_ms = now_ms + (uint64_t)cooldown_s * 1000u;
    }
}
