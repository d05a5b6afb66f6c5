/* store.c - see store.h. Trusts nothing it reads: a manifest that does not
 * parse, names a different size or carries a malformed hash is ignored
 * (the model is listed as one put there by hand). */
#include "daemon/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_EXT ".gguf"

/* ------------------------------------------------------------ names and paths */

/* value of an environment variable when it is an absolute path (the XDG
 * rule: relative values are ignored), else NULL */
static const char *env_abs(const char *var)
{
    const char *v = getenv(var);
    return v && v[0] == '/' ? v : NULL;
}

const char *store_default_dir(char *buf, size_t len)
{
    const char *v;
    int n = -1;
    if ((v = env_abs("STATE_DIRECTORY")) != NULL) {
        size_t first = strcspn(v, ":");
        n = snprintf(buf, len, "%.*s/models", (int)first, v);
    } else if ((v = env_abs("XDG_DATA_HOME")) != NULL) {
        n = snprintf(buf, len, "%s/hearth/models", v);
    } else if ((v = env_abs("HOME")) != NULL) {
        n = snprintf(buf, len, "%s/.local/share/hearth/models", v);
    }
    return n > 0 && (size_t)n < len ? buf : NULL;
}

bool store_name_valid(const char *name)
{
    if (!name || !name[0] || name[0] == '.')
        return false;
    size_t i = 0;
    for (; name[i]; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '+' || c == '-';
        if (!ok || i >= STORE_NAME_MAX)
            return false;
    }
    return true;
}

int store_path(char *buf, size_t len, const char *dir, const char *name, const char *ext)
{
    int n = snprintf(buf, len, "%s/%s%s", dir, name, ext);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

int store_mkdirs(const char *dir, char *err, size_t errlen)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) {
        snprintf(err, errlen, "bad store directory '%s'", dir);
        return -1;
    }
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
            return -1;
        }
        p[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", dir);
        return -1;
    }
    return 0;
}

void store_hex(const unsigned char *digest, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool sha256_hex_valid(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == 64;
}

/* ------------------------------------------------------------ manifests */

int store_manifest_write(const char *dir, const char *name, const store_manifest *m,
                         char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    if (store_path(path, sizeof path, dir, name, ".json") < 0) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    json_t *o = json_pack("{s:s?, s:s?, s:s, s:I, s:I}", "source", m->source, "url", m->url,
                          "sha256", m->sha256, "size", (json_int_t)m->size, "pulled",
                          (json_int_t)m->pulled);
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = json_dump_file(o, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (rc != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Source and hash from DIR/NAME.json into e, when it is readable and its
 * size is the file's. */
static void manifest_apply(const char *dir, store_entry *e)
{
    char path[4096];
    if (store_path(path, sizeof path, dir, e->name, ".json") < 0)
        return;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
    if (!o)
        return;
    json_t *size = json_object_get(o, "size");
    const char *src = json_string_value(json_object_get(o, "source"));
    const char *sha = json_string_value(json_object_get(o, "sha256"));
    if (json_is_integer(size) && (uint64_t)json_integer_value(size) == e->size && src) {
        e->source = strdup(src);
        if (sha && sha256_hex_valid(sha))
            memcpy(e->sha256, sha, 65);
    }
    json_decref(o);
}

/* ------------------------------------------------------------ listing */

void store_entry_clear(store_entry *e)
{
    free(e->name);
    free(e->path);
    free(e->source);
    memset(e, 0, sizeof *e);
}

void store_entries_free(store_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        store_entry_clear(&e[i]);
    free(e);
}

/* Fills e for DIR/NAME.gguf: 0, 1 when there is no such regular file, -1
 * out of memory. */
static int entry_fill(const char *dir, const char *name, store_entry *e)
{
    memset(e, 0, sizeof *e);
    char path[4096];
    struct stat st;
    if (store_path(path, sizeof path, dir, name, GGUF_EXT) < 0 || stat(path, &st) != 0 ||
        !S_ISREG(st.st_mode))
        return 1;
    e->name = strdup(name);
    e->path = strdup(path);
    if (!e->name || !e->path) {
        store_entry_clear(e);
        return -1;
    }
    e->size = (uint64_t)st.st_size;
    e->mtime = (int64_t)st.st_mtime;
    manifest_apply(dir, e);
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const store_entry *)a)->name, ((const store_entry *)b)->name);
}

int store_list(const char *dir, store_entry **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read %s: %s", dir, strerror(errno));
        return -1;
    }
    store_entry *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name), el = strlen(GGUF_EXT);
        if (len <= el || strcmp(de->d_name + len - el, GGUF_EXT) != 0)
            continue;
        char name[STORE_NAME_MAX + 1];
        if (len - el > STORE_NAME_MAX)
            continue;
        memcpy(name, de->d_name, len - el);
        name[len - el] = '\0';
        if (!store_name_valid(name))
            continue;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            store_entry *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                rc = -1;
                break;
            }
            v = nv;
            cap = ncap;
        }
        int fr = entry_fill(dir, name, &v[cnt]);
        if (fr < 0) {
            rc = -1;
            break;
        }
        if (fr == 0)
            cnt++;
    }
    closedir(d);
    if (rc < 0) {
        store_entries_free(v, cnt);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cnt > 1)
        qsort(v, cnt, sizeof *v, entry_cmp);
    *out = v;
    *n = cnt;
    return 0;
}

int store_find(const char *dir, const char *name, store_entry *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!store_name_valid(name)) {
        snprintf(err, errlen, "'%s' is not a valid model name", name);
        return 1;
    }
    int rc = entry_fill(dir, name, out);
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    else if (rc > 0)
        snprintf(err, errlen, "no model named '%s' in %s", name, dir);
    return rc;
}

int store_remove(const char *dir, const char *name, char *err, size_t errlen)
{
    if (!store_name_valid(name)) {
        snprintf(err, errlen, "'%s' is not a valid model name", name);
        return 1;
    }
    char path[4096];
    if (store_path(path, sizeof path, dir, name, GGUF_EXT) < 0) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    bool absent = false;
    if (unlink(path) != 0) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
            return -1;
        }
        absent = true;
    }
    /* the manifest goes too (a stale one of a missing file as well) */
    if (store_path(path, sizeof path, dir, name, ".json") == 0 && unlink(path) != 0 &&
        errno != ENOENT && !absent) {
        snprintf(err, errlen, "removed the model but not %s: %s", path, strerror(errno));
        return -1;
    }
    if (absent)
        snprintf(err, errlen, "no model named '%s' in %s", name, dir);
    return absent ? 1 : 0;
}
