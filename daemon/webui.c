/* webui.c - see webui.h. */
#include "webui.h"

#include <microhttpd.h>
#include <string.h>
#include <strings.h>

/* Nothing but the page's own files: no inline script or style, no eval,
 * no frames, no forms posting anywhere, fetch to this origin only. The
 * same policy goes with every file (a script or a style sheet opened on
 * its own is then just as shut in). */
#define WEBUI_CSP                                                                       \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "     \
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* The file a path names: "/" is index.html, "/NAME" the file NAME. */
static const webui_file *find(const char *url)
{
    size_t plen = strcspn(url, "?");
    const char *name = plen == 1 ? "index.html" : url + 1;
    size_t nlen = plen == 1 ? strlen(name) : plen - 1;
    for (size_t i = 0; i < webui_n_files; i++)
        if (strlen(webui_files[i].name) == nlen &&
            strncmp(webui_files[i].name, name, nlen) == 0)
            return &webui_files[i];
    return NULL;
}

/* If-None-Match: "*", or a comma-separated list of entity tags, weak
 * (W/"...") or strong; GET compares them weakly (RFC 9110, 13.1.2). */
static bool etag_matches(const char *header, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = header;
    while (*p) {
        p += strspn(p, " \t,");
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t n = strcspn(p, ",");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == elen && strncmp(p, etag, n) == 0)
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

int webui_serve(http_req *r, bool enabled)
{
    const webui_file *f = enabled ? find(r->url) : NULL;
    if (!f)
        return http_respond_not_found(r);
    const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool fresh = inm && etag_matches(inm, f->etag);
    /* PERSISTENT: MHD reads the static bytes and never frees them. */
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        fresh ? 0 : f->len, fresh ? NULL : (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return -1;
    if (!fresh)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(f->name));
    /* Revalidate every time (a new hearthd may serve a new page); the ETag
     * makes that a 304 without a body. */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, f->etag);
    MHD_add_response_header(resp, "Content-Security-Policy", WEBUI_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    r->bytes = fresh ? 0 : f->len;
    return http_respond_custom(r, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp);
}
