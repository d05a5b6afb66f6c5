/* door.c - see door.h. */
#include "door.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "log.h"

/* Host names are at most 253 bytes; with brackets, a port and slack. */
#define DOOR_HOST_MAX 300
/* A key file is a handful of lines; anything this large is a mistake. */
#define DOOR_KEY_FILE_MAX (1 << 20)

typedef struct str_list {
    char **v;
    size_t n;
} str_list;

struct door {
    str_list keys;
    str_list hosts;   /* lowercase, without a trailing dot */
    str_list origins; /* without a trailing slash */
    bool any_origin;  /* "*" listed */
};

/* ---------------------------------------------------------- lists */

static void list_free(str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int list_push(str_list *l, const char *s, size_t len)
{
    char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
    if (!nv)
        return -1;
    l->v = nv;
    nv[l->n] = strndup(s, len);
    if (!nv[l->n])
        return -1;
    l->n++;
    return 0;
}

/* Split "a, b c" (commas and white space) into l. */
static int list_split(str_list *l, const char *s)
{
    while (s && *s) {
        s += strspn(s, ", \t\r\n");
        size_t n = strcspn(s, ", \t\r\n");
        if (n && list_push(l, s, n) < 0)
            return -1;
        s += n;
    }
    return 0;
}

/* One key a line; blank lines and lines starting with '#' skipped. */
static int read_key_file(str_list *keys, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "api_key_file: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0) {
        if (st.st_size > DOOR_KEY_FILE_MAX) {
            fclose(f);
            snprintf(err, errlen, "api_key_file: %s is larger than %d bytes", path,
                     DOOR_KEY_FILE_MAX);
            return -1;
        }
        if (st.st_mode & S_IROTH)
            log_warn("door", "api_key_file %s can be read by any user (chmod o-r)", path);
    }
    char line[4096];
    size_t before = keys->n;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        const char *p = line + strspn(line, " \t");
        size_t n = strcspn(p, "\r\n");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0 || *p == '#')
            continue;
        if (list_push(keys, p, n) < 0) {
            snprintf(err, errlen, "api_key_file: out of memory");
            rc = -1;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "api_key_file: cannot read %s: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    if (rc == 0 && keys->n == before) {
        snprintf(err, errlen, "api_key_file: %s holds no key", path);
        rc = -1;
    }
    return rc;
}

/* ---------------------------------------------------------- host names */

static bool v4_is_loopback(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

static bool v6_is_loopback(const char *s)
{
    struct in6_addr a;
    if (inet_pton(AF_INET6, s, &a) != 1)
        return false;
    return IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
}

bool door_addr_is_loopback(const char *addr)
{
    return strcmp(addr, "localhost") == 0 || v4_is_loopback(addr) || v6_is_loopback(addr);
}

bool door_auto_on(int setting, const char *host)
{
    return setting >= 0 ? setting != 0 : door_addr_is_loopback(host);
}

static bool port_ok(const char *p)
{
    size_t n = strspn(p, "0123456789");
    return n >= 1 && n <= 5 && p[n] == '\0';
}

/* The name of a Host header value: the port cut off, lowercase, without
 * a trailing dot; an IPv6 literal keeps its brackets. -1 when the value is
 * not a host[:port] at all. */
static int host_name(const char *host, char *out, size_t cap)
{
    size_t len = strlen(host);
    if (len == 0 || len >= cap)
        return -1;
    size_t n;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (!close)
            return -1;
        n = (size_t)(close - host) + 1;
        if (host[n] != '\0' && (host[n] != ':' || !port_ok(host + n + 1)))
            return -1;
    } else {
        n = strcspn(host, ":");
        if (host[n] == ':' && !port_ok(host + n + 1))
            return -1; /* a second colon (unbracketed IPv6) lands here too */
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)host[i];
            if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_')
                return -1;
        }
    }
    if (n && host[n - 1] == '.')
        n--;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)host[i]);
    out[n] = '\0';
    return 0;
}

static bool name_is_loopback(const char *name)
{
    size_t n = strlen(name);
    if (strcmp(name, "localhost") == 0 ||
        (n > 10 && strcmp(name + n - 10, ".localhost") == 0))
        return true;
    if (name[0] == '[') {
        char inner[DOOR_HOST_MAX];
        snprintf(inner, sizeof inner, "%.*s", (int)(n - 2), name + 1);
        return v6_is_loopback(inner);
    }
    return v4_is_loopback(name);
}

bool door_host_allowed(const door *d, const char *host)
{
    if (!host)
        return true;
    char name[DOOR_HOST_MAX];
    if (host_name(host, name, sizeof name) < 0)
        return false;
    if (name_is_loopback(name))
        return true;
    for (size_t i = 0; i < d->hosts.n; i++)
        if (strcmp(name, d->hosts.v[i]) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------- keys */

/* Compare without an early exit, so the time taken does not tell how much
 * of a guessed key was right. The loop runs over the configured key's
 * length whatever was presented. */
static unsigned key_equal(const char *presented, const char *key)
{
    size_t lp = strlen(presented), lk = strlen(key);
    unsigned char diff = (unsigned char)(lp != lk);
    for (size_t i = 0; i < lk; i++)
        diff |= (unsigned char)(presented[i < lp ? i : 0] ^ key[i]);
    return diff == 0;
}

bool door_key_ok(const door *d, const char *key)
{
    unsigned ok = 0;
    for (size_t i = 0; i < d->keys.n; i++) /* every key, match or not */
        ok |= key_equal(key, d->keys.v[i]);
    return ok != 0;
}

bool door_needs_key(const door *d) { return d->keys.n > 0; }
size_t door_n_keys(const door *d) { return d->keys.n; }

/* ---------------------------------------------------------- CORS */

bool door_cors_on(const door *d) { return d->any_origin || d->origins.n > 0; }

bool door_origin_allowed(const door *d, const char *origin)
{
    if (!origin || !*origin)
        return false;
    for (size_t i = 0; i < d->origins.n; i++)
        if (strcasecmp(origin, d->origins.v[i]) == 0)
            return true;
    return d->any_origin && strcmp(origin, "null") != 0;
}

/* ---------------------------------------------------------- building */

static int add_hosts(door *d, const char *list, char *err, size_t errlen)
{
    str_list raw = {0};
    int rc = list_split(&raw, list);
    for (size_t i = 0; rc == 0 && i < raw.n; i++) {
        char name[DOOR_HOST_MAX];
        const char *h = raw.v[i];
        bool has_port = h[0] == '[' ? h[strlen(h) - 1] != ']' : strchr(h, ':') != NULL;
        if (host_name(h, name, sizeof name) < 0 || has_port) {
            snprintf(err, errlen, "allowed_hosts: '%.200s' is not a host name (no port)",
                     raw.v[i]);
            rc = -1;
        } else if (list_push(&d->hosts, name, strlen(name)) < 0) {
            snprintf(err, errlen, "allowed_hosts: out of memory");
            rc = -1;
        }
    }
    list_free(&raw);
    return rc;
}

static int add_origins(door *d, const char *list, char *err, size_t errlen)
{
    str_list raw = {0};
    int rc = list_split(&raw, list);
    for (size_t i = 0; rc == 0 && i < raw.n; i++) {
        const char *o = raw.v[i];
        size_t n = strlen(o);
        if (strcmp(o, "*") == 0) {
            d->any_origin = true;
            continue;
        }
        if (n && o[n - 1] == '/')
            n--;
        if (strcmp(o, "null") != 0 && !strstr(o, "://")) {
            snprintf(err, errlen,
                     "cors_origins: '%.200s' is not an origin (scheme://host[:port], "
                     "null or *)", o);
            rc = -1;
        } else if (list_push(&d->origins, o, n) < 0) {
            snprintf(err, errlen, "cors_origins: out of memory");
            rc = -1;
        }
    }
    list_free(&raw);
    return rc;
}

int door_new(door **out, const hearth_config *c, char *err, size_t errlen)
{
    *out = NULL;
    door *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (list_split(&d->keys, c->api_key) < 0) {
        snprintf(err, errlen, "api_key: out of memory");
        goto fail;
    }
    if (c->api_key_file && read_key_file(&d->keys, c->api_key_file, err, errlen) < 0)
        goto fail;
    if (add_hosts(d, c->allowed_hosts, err, errlen) < 0 ||
        add_origins(d, c->cors_origins, err, errlen) < 0)
        goto fail;
    *out = d;
    return 0;
fail:
    door_free(d);
    return -1;
}

void door_free(door *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->keys.n; i++) /* wipe the keys before free */
        explicit_bzero(d->keys.v[i], strlen(d->keys.v[i]));
    list_free(&d->keys);
    list_free(&d->hosts);
    list_free(&d->origins);
    free(d);
}

int door_check_listen(const door *d, const hearth_config *c, char *err, size_t errlen)
{
    if (!c->tcp && !c->socket_path) {
        snprintf(err, errlen, "nothing to listen on: tcp = no and no socket is set");
        return -1;
    }
    if (c->tcp && !door_addr_is_loopback(c->host) && !door_needs_key(d)) {
        snprintf(err, errlen,
                 "refusing to listen on %s without an API key: anyone who can reach "
                 "this address could use the server; set [server] api_key or "
                 "api_key_file, or listen on 127.0.0.1",
                 c->host);
        return -1;
    }
    return 0;
}
