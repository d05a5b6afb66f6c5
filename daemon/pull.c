/* pull.c - the download: the transfer with resume, the checks, the rename
 * into the store (see pull.h; the hub's file list is pull_hub.c, the curl
 * handles pull_curl.c).
 *
 * What it trusts: nothing the server says about sizes and hashes is used
 * before it is checked for shape (64 hex digits, a number); the file is
 * checked against the tree's LFS oid and size when the hub gave them,
 * else against X-Linked-ETag / X-Linked-Size of the first response, and
 * only a file whose hash, size and GGUF header all pass is renamed into
 * place. A body longer than announced is cut off. */
#include "daemon/pull_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/gguf.h"

/* ------------------------------------------------------------ the transfer */

typedef struct dl {
    const pull_opts *o;
    int fd;
    EVP_MD_CTX *md;
    uint64_t offset;      /* bytes in the file before this transfer */
    uint64_t got;         /* bytes written by this transfer */
    uint64_t expect_size; /* what the file must be; 0 unknown yet */
    bool body_started;
    bool restarted;       /* a 200 answered our range: started from zero */
    bool fatal;           /* the content is wrong: drop the partial file */
    char err[512];
    /* the current response's headers */
    char etag[256];
    bool has_range;
    uint64_t range_start, range_total;
    bool has_length;
    uint64_t length;
    /* the first response's X-Linked-* (the hub's resolve/ answer) */
    int n_responses;
    char linked_sha[65];
    uint64_t linked_size;
    pull_xfer x;
} dl;

static size_t on_dl_header(char *line, size_t size, size_t nmemb, void *ud)
{
    dl *d = ud;
    size_t len = size * nmemb;
    size_t n = len;
    while (n && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        n--;
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        d->n_responses++;
        d->etag[0] = '\0';
        d->has_range = d->has_length = false;
        return len;
    }
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return len;
    size_t kn = (size_t)(colon - line);
    const char *v = colon + 1;
    while (v < line + n && (*v == ' ' || *v == '\t'))
        v++;
    size_t vn = (size_t)(line + n - v);
#define IS(k) (kn == strlen(k) && strncasecmp(line, k, kn) == 0)
    if (IS("etag")) {
        if (vn < sizeof d->etag) {
            memcpy(d->etag, v, vn);
            d->etag[vn] = '\0';
        }
    } else if (IS("x-linked-etag") && d->n_responses == 1) {
        if (!pull_sha256_parse(v, vn, d->linked_sha))
            d->linked_sha[0] = '\0';
    } else if (IS("x-linked-size") && d->n_responses == 1) {
        if (!pull_u64_parse(v, vn, &d->linked_size))
            d->linked_size = 0;
    } else if (IS("content-length")) {
        d->has_length = pull_u64_parse(v, vn, &d->length);
    } else if (IS("content-range")) {
        /* bytes START-END/TOTAL */
        char buf[128];
        if (vn < sizeof buf) {
            memcpy(buf, v, vn);
            buf[vn] = '\0';
            unsigned long long a, b, t;
            d->has_range = sscanf(buf, "bytes %llu-%llu/%llu", &a, &b, &t) == 3;
            d->range_start = a;
            d->range_total = t;
        }
    }
#undef IS
    return len;
}

static int dl_fail(dl *d, bool fatal, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int dl_fail(dl *d, bool fatal, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    d->fatal = fatal;
    return -1;
}

/* The first body byte: the status decides whether we append (206 at our
 * offset) or start over (200). */
static int dl_begin(dl *d, CURL *c)
{
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code == 206) {
        if (!d->has_range || d->range_start != d->offset)
            return dl_fail(d, true, "the server answered with another range than asked for");
        if (!d->expect_size)
            d->expect_size = d->range_total;
    } else {
        if (d->offset > 0) {
            if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) != 0)
                return dl_fail(d, false, "cannot truncate the partial file: %s",
                               strerror(errno));
            EVP_DigestInit_ex(d->md, EVP_sha256(), NULL);
            d->offset = 0;
            d->x.base = 0;
            d->restarted = true;
        }
        if (!d->expect_size && d->has_length)
            d->expect_size = d->length;
    }
    if (!d->expect_size && d->linked_size)
        d->expect_size = d->linked_size;
    d->x.total = d->expect_size;
    d->body_started = true;
    return 0;
}

static size_t on_dl_body(char *data, size_t size, size_t nmemb, void *ud)
{
    dl *d = ud;
    size_t len = size * nmemb;
    if (d->expect_size && d->offset + d->got + len > d->expect_size) {
        dl_fail(d, true, "the server sent more than the %llu bytes announced",
                (unsigned long long)d->expect_size);
        return 0;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(d->fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            dl_fail(d, false, "cannot write the partial file: %s", strerror(errno));
            return 0;
        }
        off += (size_t)w;
    }
    EVP_DigestUpdate(d->md, data, len);
    d->got += len;
    return len;
}

/* Curl gives the write callback no handle; this wrapper carries it. */
typedef struct dl_ctx {
    dl *d;
    CURL *c;
} dl_ctx;

static size_t on_dl_write(char *data, size_t size, size_t nmemb, void *ud)
{
    dl_ctx *cx = ud;
    if (!cx->d->body_started && dl_begin(cx->d, cx->c) < 0)
        return 0;
    return on_dl_body(data, size, nmemb, cx->d);
}

/* Hash what the partial file holds before resuming. */
static int hash_existing(dl *d, char *err, size_t errlen)
{
    char buf[1 << 16];
    uint64_t left = d->offset;
    if (lseek(d->fd, 0, SEEK_SET) != 0)
        goto io;
    while (left) {
        if (pull_stopped(d->o)) {
            snprintf(err, errlen, "interrupted; the partial file is kept: the same pull resumes");
            return 1;
        }
        ssize_t r = read(d->fd, buf, left < sizeof buf ? left : sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto io;
        EVP_DigestUpdate(d->md, buf, (size_t)r);
        left -= (uint64_t)r;
    }
    return 0;
io:
    snprintf(err, errlen, "cannot read the partial file: %s", strerror(errno));
    return -1;
}

/* ------------------------------------------------------------ the partial file */

typedef struct partial {
    char path[4096];    /* DIR/.partial/NAME.gguf */
    char sidecar[4096]; /* DIR/.partial/NAME.json */
    int fd;
} partial;

/* What the sidecar says; false when absent or unreadable. */
static bool sidecar_read(const partial *p, char *url, size_t ulen, char *sha, uint64_t *size,
                         char *etag, size_t elen)
{
    json_t *o = json_load_file(p->sidecar, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return false;
    }
    const char *u = json_string_value(json_object_get(o, "url"));
    const char *s = json_string_value(json_object_get(o, "sha256"));
    const char *e = json_string_value(json_object_get(o, "etag"));
    json_t *z = json_object_get(o, "size");
    snprintf(url, ulen, "%s", u ? u : "");
    if (!s || !pull_sha256_parse(s, strlen(s), sha))
        sha[0] = '\0';
    snprintf(etag, elen, "%s", e ? e : "");
    *size = json_is_integer(z) && json_integer_value(z) > 0 ? (uint64_t)json_integer_value(z) : 0;
    json_decref(o);
    return u != NULL;
}

static void sidecar_write(const partial *p, const char *url, const char *sha, uint64_t size,
                          const char *etag)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", p->sidecar);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "url", url, "sha256", sha, "size",
                          (json_int_t)size, "etag", etag);
    if (o && json_dump_file(o, tmp, JSON_INDENT(2)) == 0)
        rename(tmp, p->sidecar);
    else
        unlink(tmp);
    json_decref(o);
}

static void partial_drop(partial *p)
{
    unlink(p->path);
    unlink(p->sidecar);
}
/* ------------------------------------------------------------ pull */

/* The transfer into p, resuming when the sidecar matches. On PULL_OK the
 * file is complete and d->md holds its hash. */
static pull_status transfer(const pull_opts *o, const char *hub_host, pull_target *t, partial *p,
                            dl *d, char *err, size_t errlen)
{
    char s_url[4096], s_sha[65], s_etag[256];
    uint64_t s_size;
    struct stat st;
    d->offset = 0;
    s_etag[0] = '\0';
    if (fstat(p->fd, &st) == 0 && st.st_size > 0 &&
        sidecar_read(p, s_url, sizeof s_url, s_sha, &s_size, s_etag, sizeof s_etag) &&
        strcmp(s_url, t->url) == 0 && (!*t->sha256 || !*s_sha || strcmp(t->sha256, s_sha) == 0) &&
        (!t->size || !s_size || t->size == s_size) &&
        (!t->size || (uint64_t)st.st_size <= t->size)) {
        d->offset = (uint64_t)st.st_size;
        /* what the first attempt learnt from X-Linked-* holds for the rest */
        if (!*t->sha256)
            memcpy(t->sha256, s_sha, sizeof t->sha256);
        if (!t->size)
            t->size = s_size;
        if (t->size && d->offset > t->size)
            d->offset = 0;
    }
    if (d->offset == 0) {
        s_etag[0] = '\0';
        if (ftruncate(p->fd, 0) != 0) {
            snprintf(err, errlen, "cannot truncate %s: %s", p->path, strerror(errno));
            return PULL_FAILED;
        }
    }
    sidecar_write(p, t->url, t->sha256, t->size, s_etag);
    int hr = hash_existing(d, err, errlen);
    if (hr != 0)
        return hr > 0 ? PULL_INTERRUPTED : PULL_FAILED;
    if (lseek(p->fd, (off_t)d->offset, SEEK_SET) < 0) {
        snprintf(err, errlen, "cannot seek in %s: %s", p->path, strerror(errno));
        return PULL_FAILED;
    }
    d->expect_size = t->size;
    if (t->size && d->offset == t->size) {
        pull_note(o, "%s: already downloaded, checking it", t->file);
        return PULL_OK;
    }
    if (d->offset && t->size)
        pull_note(o, "resuming %s at %llu of %llu bytes", t->file, (unsigned long long)d->offset,
                  (unsigned long long)t->size);
    else if (d->offset)
        pull_note(o, "resuming %s at %llu bytes", t->file, (unsigned long long)d->offset);

    d->x = (pull_xfer){.o = o, .base = d->offset, .total = t->size, .report = true,
                       .t0 = pull_now()};
    struct curl_slist *hdrs;
    CURL *c = pull_curl_new(o, t->url, hub_host, &hdrs, &d->x);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return PULL_FAILED;
    }
    dl_ctx cx = {.d = d, .c = c};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_dl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &cx);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_dl_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
    char range[64], ifrange[300];
    if (d->offset) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)d->offset);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
        /* a strong validator only (RFC 9110: If-Range with a weak one is
         * ignored) */
        if (s_etag[0] == '"') {
            snprintf(ifrange, sizeof ifrange, "If-Range: %s", s_etag);
            hdrs = curl_slist_append(hdrs, ifrange);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        }
    }
    CURLcode rc = curl_easy_perform(c);
    if (d->body_started)
        pull_progress_report(&d->x, d->got, true);
    if (d->restarted)
        pull_note(o, "the server sent the whole file again: started over");
    /* the ETag for the next resume; the expected values as now known */
    if (!*t->sha256 && *d->linked_sha)
        memcpy(t->sha256, d->linked_sha, sizeof t->sha256);
    if (!t->size && d->expect_size)
        t->size = d->expect_size;
    sidecar_write(p, t->url, t->sha256, t->size, d->etag);

    pull_status ret = PULL_OK;
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    uint64_t have = d->offset + d->got;
    if (rc == CURLE_ABORTED_BY_CALLBACK && pull_stopped(o)) {
        snprintf(err, errlen, "interrupted; %llu bytes kept: the same pull resumes",
                 (unsigned long long)have);
        ret = PULL_INTERRUPTED;
    } else if (rc == CURLE_WRITE_ERROR && d->err[0]) {
        snprintf(err, errlen, "%s: %s%s", t->file, d->err,
                 d->fatal ? " (the partial download was deleted)" : "");
        ret = PULL_FAILED;
        if (d->fatal)
            partial_drop(p);
    } else if (rc == CURLE_HTTP_RETURNED_ERROR && code == 416) {
        snprintf(err, errlen, "%s: the server refused to resume at byte %llu; the partial "
                 "download was deleted, pull again to start over", t->file,
                 (unsigned long long)d->offset);
        partial_drop(p);
        ret = PULL_FAILED;
    } else if (rc != CURLE_OK) {
        char why[1024];
        pull_curl_err(why, sizeof why, c, rc, t->url, o);
        if (have > 0)
            snprintf(err, errlen, "%s; %llu bytes kept: the same pull resumes", why,
                     (unsigned long long)have);
        else
            snprintf(err, errlen, "%s", why);
        if (have == 0)
            partial_drop(p);
        ret = PULL_FAILED;
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    return ret;
}

/* Size, hash, GGUF header; on failure the partial file is deleted. */
static pull_status verify(const pull_opts *o, pull_target *t, partial *p, dl *d, char *sha_out,
                          char *err, size_t errlen)
{
    unsigned char dg[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    EVP_DigestFinal_ex(d->md, dg, &dn);
    store_hex(dg, dn, sha_out);
    struct stat st;
    uint64_t have = fstat(p->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    if (t->size && have != t->size) {
        snprintf(err, errlen, "%s: got %llu bytes, expected %llu (the partial download was "
                 "deleted)", t->file, (unsigned long long)have, (unsigned long long)t->size);
        partial_drop(p);
        return PULL_FAILED;
    }
    if (*t->sha256 && strcmp(t->sha256, sha_out) != 0) {
        snprintf(err, errlen, "%s: checksum mismatch: expected sha256 %s, got %s (the partial "
                 "download was deleted)", t->file, t->sha256, sha_out);
        partial_drop(p);
        return PULL_FAILED;
    }
    if (!*t->sha256)
        pull_note(o, "%s: no published SHA-256 to check against; recorded %s", t->file, sha_out);
    if (fsync(p->fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", p->path, strerror(errno));
        return PULL_FAILED;
    }
    gguf_file *g = NULL;
    char why[512];
    if (gguf_open(p->path, &g, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s is not a GGUF file the engine can read: %s (the download was "
                 "deleted)", t->file, why);
        partial_drop(p);
        return PULL_FAILED;
    }
    gguf_close(g);
    return PULL_OK;
}

/* Manifest, then the model (so that a listed model has its manifest). */
static pull_status install(const pull_opts *o, const pull_target *t, partial *p, const char *name,
                           const char *sha, char *err, size_t errlen)
{
    char final_path[4096];
    char why[512];
    struct stat st;
    uint64_t size = fstat(p->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    store_manifest m = {.source = t->source, .url = t->url, .sha256 = sha, .size = size,
                        .pulled = (int64_t)time(NULL)};
    if (store_path(final_path, sizeof final_path, o->store_dir, name, ".gguf") < 0 ||
        store_manifest_write(o->store_dir, name, &m, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s", why);
        return PULL_FAILED;
    }
    if (rename(p->path, final_path) != 0) {
        snprintf(err, errlen, "cannot move the download to %s: %s", final_path,
                 strerror(errno));
        return PULL_FAILED;
    }
    unlink(p->sidecar);
    int dfd = open(o->store_dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return PULL_OK;
}

static pull_status target_of(const pull_opts *o, const char *hub, const char *hub_host,
                             const char *ref, pull_target *t, char *err, size_t errlen)
{
    pull_ref r;
    if (pull_ref_parse(ref, &r, err, errlen) < 0)
        return PULL_BAD_REF;
    pull_status st = PULL_OK;
    if (r.url) {
        snprintf(t->url, sizeof t->url, "%s", r.url);
        snprintf(t->source, sizeof t->source, "%s", r.url);
        const char *path = strstr(r.url, "://") + 3;
        path += strcspn(path, "/");
        snprintf(t->file, sizeof t->file, "%.*s", (int)strcspn(path, "?#"), path);
        const char *b = strrchr(t->file, '/');
        memmove(t->file, b ? b + 1 : t->file, strlen(b ? b + 1 : t->file) + 1);
        if (!o->name && !pull_name_from_file(t->file, t->name, sizeof t->name)) {
            snprintf(err, errlen, "the URL's file name '%s' does not make a model name: give "
                     "one with --name", t->file);
            st = PULL_BAD_REF;
        } else if (pull_is_split(t->file)) {
            snprintf(err, errlen, "%s is part of a multi-part GGUF, which is not supported",
                     t->file);
            st = PULL_FAILED;
        }
    } else {
        st = pull_hub_resolve(o, hub, hub_host, &r, t, err, errlen);
    }
    pull_ref_free(&r);
    if (st == PULL_OK && o->name)
        snprintf(t->name, sizeof t->name, "%s", o->name);
    return st;
}

static pull_status pull_into_store(const pull_opts *o, const char *hub_host, pull_target *t,
                                   store_entry *out, char *err, size_t errlen)
{
    /* already there with the published hash: nothing to do */
    store_entry have;
    char why[512];
    if (*t->sha256 && store_find(o->store_dir, t->name, &have, why, sizeof why) == 0) {
        bool same = strcmp(have.sha256, t->sha256) == 0 && (!t->size || have.size == t->size);
        store_entry_clear(&have);
        if (same) {
            pull_note(o, "%s is up to date", t->name);
            return store_find(o->store_dir, t->name, out, err, errlen) == 0 ? PULL_OK
                                                                            : PULL_FAILED;
        }
    }
    char pdir[4096];
    partial p = {.fd = -1};
    if (snprintf(pdir, sizeof pdir, "%s/.partial", o->store_dir) >= (int)sizeof pdir ||
        store_path(p.path, sizeof p.path, pdir, t->name, ".gguf") < 0 ||
        store_path(p.sidecar, sizeof p.sidecar, pdir, t->name, ".json") < 0) {
        snprintf(err, errlen, "the store's path is too long");
        return PULL_FAILED;
    }
    if (store_mkdirs(pdir, err, errlen) < 0)
        return PULL_FAILED;
    p.fd = open(p.path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p.fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", p.path, strerror(errno));
        return PULL_FAILED;
    }
    if (flock(p.fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "another pull of %s is running", t->name);
        close(p.fd);
        return PULL_FAILED;
    }
    dl d = {.o = o, .fd = p.fd, .md = EVP_MD_CTX_new()};
    pull_status st = PULL_FAILED;
    char sha[65];
    if (!d.md || !EVP_DigestInit_ex(d.md, EVP_sha256(), NULL)) {
        snprintf(err, errlen, "SHA-256 is not available (OpenSSL)");
    } else {
        st = transfer(o, hub_host, t, &p, &d, err, errlen);
        if (st == PULL_OK)
            st = verify(o, t, &p, &d, sha, err, errlen);
        if (st == PULL_OK)
            st = install(o, t, &p, t->name, sha, err, errlen);
    }
    EVP_MD_CTX_free(d.md);
    close(p.fd);
    if (st == PULL_OK && out && store_find(o->store_dir, t->name, out, err, errlen) != 0)
        st = PULL_FAILED;
    return st;
}

pull_status pull_model(const pull_opts *o, const char *ref, store_entry *out, char *err,
                       size_t errlen)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (o->name && !store_name_valid(o->name)) {
        snprintf(err, errlen, "'%s' is not a valid model name (letters, digits and ._:+-, "
                 "at most %d, not starting with '.')", o->name, STORE_NAME_MAX);
        return PULL_BAD_REF;
    }
    char hub[1024];
    snprintf(hub, sizeof hub, "%s", o->hub_url && *o->hub_url ? o->hub_url : PULL_DEFAULT_HUB);
    for (size_t n = strlen(hub); n > 0 && hub[n - 1] == '/'; n--)
        hub[n - 1] = '\0';
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return PULL_FAILED;
    }
    char hub_host[256];
    pull_url_host(hub, hub_host, sizeof hub_host);
    pull_target *t = calloc(1, sizeof *t);
    pull_status st = PULL_FAILED;
    if (!t)
        snprintf(err, errlen, "out of memory");
    else if (!*hub_host)
        snprintf(err, errlen, "hub_url '%s' is not a URL", hub);
    else if ((st = target_of(o, hub, hub_host, ref, t, err, errlen)) == PULL_OK)
        st = pull_into_store(o, hub_host, t, out, err, errlen);
    free(t);
    curl_global_cleanup();
    return st;
}
