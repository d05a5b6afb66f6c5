/* pull_curl.c - what the pull's requests share (pull_internal.h): the
 * curl handle's options, the token's one host, the progress and stop
 * callback, errors in plain words, and the parsing of what servers say. */
#include "daemon/pull_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ------------------------------------------------------------ small helpers */

double pull_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void pull_note(const pull_opts *o, const char *fmt, ...)
{
    if (!o->note)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->note(o->ud, line);
}

bool pull_stopped(const pull_opts *o)
{
    return o->stop && *o->stop;
}

/* "abc..." (64 hex, any case, maybe quoted, maybe W/ or sha256: before)
 * into out[65] lower-case; false when it is not a SHA-256 */
bool pull_sha256_parse(const char *s, size_t n, char *out)
{
    if (n >= 2 && strncmp(s, "W/", 2) == 0)
        s += 2, n -= 2;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
        s++, n -= 2;
    if (n >= 7 && strncasecmp(s, "sha256:", 7) == 0)
        s += 7, n -= 7;
    if (n != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        out[i] = c;
    }
    out[64] = '\0';
    return true;
}

bool pull_u64_parse(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* The host of a URL into buf ("" when it has none). */
void pull_url_host(const char *url, char *buf, size_t len)
{
    buf[0] = '\0';
    CURLU *u = curl_url();
    char *h = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK)
        snprintf(buf, len, "%s", h);
    curl_free(h);
    curl_url_cleanup(u);
}

/* ------------------------------------------------------------ curl handles */

void pull_progress_report(pull_xfer *x, uint64_t now_bytes, bool final)
{
    if (!x->o->progress)
        return;
    double t = pull_now();
    if (!final && t - x->last < 0.1)
        return;
    x->last = t;
    pull_progress p = {.done = x->base + now_bytes,
                       .total = x->total,
                       .rate = t > x->t0 ? (double)now_bytes / (t - x->t0) : 0,
                       .final = final};
    x->o->progress(x->o->ud, &p);
}

static int on_xferinfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    pull_xfer *x = ud;
    if (pull_stopped(x->o))
        return 1; /* CURLE_ABORTED_BY_CALLBACK */
    if (x->report)
        pull_progress_report(x, (uint64_t)dlnow, false);
    return 0;
}

/* An easy handle with what every request shares: redirects, timeouts,
 * http(s) only, the stop flag, and the token when url is on the hub's
 * host (curl itself never sends it on to a redirect's other host). */
CURL *pull_curl_new(const pull_opts *o, const char *url, const char *hub_host,
                      struct curl_slist **hdrs, pull_xfer *x)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "hearth/" PACKAGE_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)(o->connect_timeout > 0 ? o->connect_timeout : 30));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(o->stall_timeout > 0 ? o->stall_timeout : 30));
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    *hdrs = NULL;
    char host[256];
    pull_url_host(url, host, sizeof host);
    if (o->token && *o->token && *host && strcasecmp(host, hub_host) == 0) {
        size_t n = strlen(o->token) + 32;
        char *h = malloc(n);
        if (h) {
            snprintf(h, n, "Authorization: Bearer %s", o->token);
            *hdrs = curl_slist_append(NULL, h);
            free(h);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    }
    return c;
}

/* One line for a failed transfer, without curl's own wording where a
 * plainer one exists. */
void pull_curl_err(char *err, size_t errlen, CURL *c, CURLcode rc, const char *url,
                     const pull_opts *o)
{
    long code = 0;
    double connect = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(c, CURLINFO_CONNECT_TIME, &connect);
    switch (rc) {
    case CURLE_HTTP_RETURNED_ERROR:
        if (code == 401 || code == 403)
            snprintf(err, errlen, "HTTP %ld: %s needs access (set HF_TOKEN to a token that "
                     "may read it)", code, url);
        else if (code == 404)
            snprintf(err, errlen, "HTTP 404: %s not found", url);
        else
            snprintf(err, errlen, "HTTP %ld from %s", code, url);
        return;
    case CURLE_OPERATION_TIMEDOUT:
        if (connect <= 0)
            snprintf(err, errlen, "no connection to %s within %d s", url,
                     o->connect_timeout > 0 ? o->connect_timeout : 30);
        else
            snprintf(err, errlen, "the download stalled: nothing received for %d s from %s",
                     o->stall_timeout > 0 ? o->stall_timeout : 30, url);
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(err, errlen, "cannot resolve the host of %s", url);
        return;
    case CURLE_COULDNT_CONNECT:
        snprintf(err, errlen, "cannot connect to %s", url);
        return;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        snprintf(err, errlen, "the connection to %s was cut", url);
        return;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(err, errlen, "too many redirects from %s", url);
        return;
    default:
        snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(rc));
        return;
    }
}
