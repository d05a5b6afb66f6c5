/* pull_hub.c - hf: references through the hub's file list (pull.h):
 * GET HUB/api/models/OWNER/REPO/tree/main?recursive=true, page after
 * page through the Link header, each entry checked for shape; the file
 * chosen (pull_ref.c) and its resolve/ URL, LFS sha256 and size. */
#include "daemon/pull_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/buf.h"

#define TREE_MAX_BYTES (32u << 20) /* one page of the file list */
#define TREE_MAX_PAGES 1000

typedef struct hub_file {
    char *path;
    uint64_t size;    /* 0 unknown */
    char sha256[65];  /* the LFS oid, "" unknown */
} hub_file;

typedef struct membuf {
    char *p;
    size_t n, cap;
    bool too_big;
} membuf;

static size_t on_mem(char *data, size_t size, size_t nmemb, void *ud)
{
    membuf *m = ud;
    size_t len = size * nmemb;
    if (m->n + len > TREE_MAX_BYTES) {
        m->too_big = true;
        return 0;
    }
    return buf_append(&m->p, &m->n, &m->cap, data, len, 16384) == 0 ? len : 0;
}

/* Link: <URL>; rel="next" of the last response, resolved against the
 * request's URL. */
typedef struct link_hdr {
    char next[2048];
} link_hdr;

static size_t on_link_header(char *line, size_t size, size_t nmemb, void *ud)
{
    link_hdr *l = ud;
    size_t len = size * nmemb;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0)
        l->next[0] = '\0';
    if (len < 5 || strncasecmp(line, "link:", 5) != 0)
        return len;
    /* <a>; rel="x", <b>; rel="next" */
    char buf[4096];
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    memcpy(buf, line + 5, n - 5);
    buf[n - 5] = '\0';
    char *save = NULL;
    for (char *part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        char *lt = strchr(part, '<'), *gt = lt ? strchr(lt, '>') : NULL;
        if (!gt || !strstr(gt, "rel=\"next\""))
            continue;
        *gt = '\0';
        snprintf(l->next, sizeof l->next, "%s", lt + 1);
    }
    return len;
}

static void hub_files_free(hub_file *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++)
        free(f[i].path);
    free(f);
}

/* Appends a page's entries; -1 when the page is not the API's shape. */
static int tree_page(const char *body, hub_file **files, size_t *n)
{
    json_t *a = json_loads(body, 0, NULL);
    if (!json_is_array(a)) {
        json_decref(a);
        return -1;
    }
    size_t i;
    json_t *e;
    int rc = 0;
    json_array_foreach(a, i, e) {
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *path = json_string_value(json_object_get(e, "path"));
        if (!path) {
            rc = -1;
            break;
        }
        if (type && strcmp(type, "file") != 0)
            continue;
        hub_file *nf = realloc(*files, (*n + 1) * sizeof *nf);
        if (!nf) {
            rc = -1;
            break;
        }
        *files = nf;
        hub_file *f = &nf[*n];
        memset(f, 0, sizeof *f);
        f->path = strdup(path);
        if (!f->path) {
            rc = -1;
            break;
        }
        (*n)++;
        json_t *lfs = json_object_get(e, "lfs");
        json_t *size = json_object_get(json_is_object(lfs) ? lfs : e, "size");
        if (json_is_integer(size) && json_integer_value(size) > 0)
            f->size = (uint64_t)json_integer_value(size);
        const char *oid = json_string_value(json_object_get(lfs, "oid"));
        if (!oid || !pull_sha256_parse(oid, strlen(oid), f->sha256))
            f->sha256[0] = '\0';
    }
    json_decref(a);
    return rc;
}

static pull_status hub_tree(const pull_opts *o, const char *hub, const char *hub_host,
                            const pull_ref *r, hub_file **files, size_t *n, char *err,
                            size_t errlen)
{
    *files = NULL;
    *n = 0;
    char url[2048];
    snprintf(url, sizeof url, "%s/api/models/%s/%s/tree/main?recursive=true", hub, r->owner,
             r->repo);
    char first[2048];
    snprintf(first, sizeof first, "%s", url);
    for (int page = 0; page < TREE_MAX_PAGES; page++) {
        membuf m = {0};
        link_hdr l = {{0}};
        pull_xfer x = {.o = o, .t0 = pull_now()};
        struct curl_slist *hdrs;
        CURL *c = pull_curl_new(o, url, hub_host, &hdrs, &x);
        if (!c) {
            snprintf(err, errlen, "out of memory");
            return PULL_FAILED;
        }
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_mem);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_link_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &l);
        CURLcode rc = curl_easy_perform(c);
        pull_status st = PULL_OK;
        if (rc == CURLE_ABORTED_BY_CALLBACK && pull_stopped(o)) {
            snprintf(err, errlen, "interrupted");
            st = PULL_INTERRUPTED;
        } else if (rc == CURLE_HTTP_RETURNED_ERROR) {
            long code = 0;
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            if (code == 404)
                snprintf(err, errlen, "no repo %s/%s on %s (HTTP 404)", r->owner, r->repo, hub);
            else
                pull_curl_err(err, errlen, c, rc, first, o);
            st = PULL_FAILED;
        } else if (rc != CURLE_OK) {
            if (m.too_big)
                snprintf(err, errlen, "%s: the file list is larger than %u MiB", first,
                         TREE_MAX_BYTES >> 20);
            else
                pull_curl_err(err, errlen, c, rc, first, o);
            st = PULL_FAILED;
        } else if (tree_page(m.p ? m.p : "", files, n) < 0) {
            snprintf(err, errlen, "%s did not answer with the hub's file list", first);
            st = PULL_FAILED;
        }
        if (st == PULL_OK && l.next[0]) {
            /* resolve a relative next link against this page */
            CURLU *u = curl_url();
            char *abs = NULL;
            if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                curl_url_set(u, CURLUPART_URL, l.next, 0) == CURLUE_OK &&
                curl_url_get(u, CURLUPART_URL, &abs, 0) == CURLUE_OK)
                snprintf(url, sizeof url, "%s", abs);
            else
                l.next[0] = '\0';
            curl_free(abs);
            curl_url_cleanup(u);
        }
        curl_easy_cleanup(c);
        curl_slist_free_all(hdrs);
        free(m.p);
        if (st != PULL_OK) {
            hub_files_free(*files, *n);
            *files = NULL;
            *n = 0;
            return st;
        }
        if (!l.next[0])
            return PULL_OK;
    }
    snprintf(err, errlen, "%s: more than %d pages of files", first, TREE_MAX_PAGES);
    hub_files_free(*files, *n);
    *files = NULL;
    *n = 0;
    return PULL_FAILED;
}
/* Resolve an hf: reference through the file list. */
pull_status pull_hub_resolve(const pull_opts *o, const char *hub, const char *hub_host,
                              const pull_ref *r, pull_target *t, char *err, size_t errlen)
{
    hub_file *files;
    size_t n;
    pull_status st = hub_tree(o, hub, hub_host, r, &files, &n, err, errlen);
    if (st != PULL_OK)
        return st;
    const char **paths = calloc(n ? n : 1, sizeof *paths);
    if (!paths) {
        hub_files_free(files, n);
        snprintf(err, errlen, "out of memory");
        return PULL_FAILED;
    }
    for (size_t i = 0; i < n; i++)
        paths[i] = files[i].path;
    const char *how;
    char why[1024];
    long k = pull_pick(paths, n, r->sel, &how, why, sizeof why);
    free(paths);
    if (k < 0) {
        snprintf(err, errlen, "%s/%s: %s", r->owner, r->repo, why);
        hub_files_free(files, n);
        return PULL_FAILED;
    }
    const hub_file *f = &files[k];
    if (how)
        pull_note(o, "picked %s (%s)", f->path, how);
    else if (r->sel && strcmp(r->sel, f->path) != 0)
        pull_note(o, "picked %s", f->path);
    /* each path segment escaped; the slashes between them kept */
    int w = snprintf(t->url, sizeof t->url, "%s/%s/%s/resolve/main", hub, r->owner, r->repo);
    char *pathdup = strdup(f->path);
    char *save = NULL;
    for (char *seg = pathdup ? strtok_r(pathdup, "/", &save) : NULL; seg && w > 0;
         seg = strtok_r(NULL, "/", &save)) {
        char *esc = curl_easy_escape(NULL, seg, 0);
        size_t used = strlen(t->url);
        w = esc ? snprintf(t->url + used, sizeof t->url - used, "/%s", esc) : -1;
        if (w > 0 && (size_t)w >= sizeof t->url - used)
            w = -1;
        curl_free(esc);
    }
    free(pathdup);
    snprintf(t->source, sizeof t->source, "hf:%s/%s:%s", r->owner, r->repo, f->path);
    snprintf(t->file, sizeof t->file, "%s", f->path);
    memcpy(t->sha256, f->sha256, sizeof t->sha256);
    t->size = f->size;
    bool named = o->name || pull_name_from_file(f->path, t->name, sizeof t->name);
    hub_files_free(files, n);
    if (w <= 0) {
        snprintf(err, errlen, "the file's URL is too long");
        return PULL_FAILED;
    }
    if (!named) {
        snprintf(err, errlen, "%s does not make a model name: give one with --name", t->file);
        return PULL_BAD_REF;
    }
    return PULL_OK;
}
