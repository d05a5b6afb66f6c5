/* pull_ref.c - model references and the choice of a repo's file (see
 * pull.h). No network here: pull.c asks the hub for the file list. */
#include "daemon/pull_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The quants picked when a reference names none, best first: the usual
 * balance of size and quality, then the engine's fastest simple types. */
static const char *const default_quants[] = {"Q4_K_M", "Q4_0", "Q8_0"};

/* ------------------------------------------------------------ parsing */

void pull_ref_free(pull_ref *r)
{
    free(r->owner);
    free(r->repo);
    free(r->sel);
    free(r->url);
    memset(r, 0, sizeof *r);
}

/* the hub's repo and user names: letters, digits, '-', '_', '.' */
static bool hub_part_valid(const char *s, size_t n)
{
    if (n == 0 || n > 96 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

/* printable, no spaces: what may follow "OWNER/REPO:" or make a URL */
static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static int ref_bad(char *err, size_t errlen, const char *ref, const char *why)
{
    snprintf(err, errlen, "'%s' is not a model reference: %s", ref, why);
    return -1;
}

int pull_ref_parse(const char *ref, pull_ref *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (strncasecmp(ref, "https://", 8) == 0 || strncasecmp(ref, "http://", 7) == 0) {
        const char *host = strstr(ref, "://") + 3;
        if (!printable(ref) || *host == '\0' || *host == '/')
            return ref_bad(err, errlen, ref, "a URL needs a host and no spaces");
        out->url = strdup(ref);
        return out->url ? 0 : ref_bad(err, errlen, ref, "out of memory");
    }
    if (strncmp(ref, "hf:", 3) != 0)
        return ref_bad(err, errlen, ref,
                       "use hf:OWNER/REPO[:QUANT or :FILE.gguf] or an https:// URL");
    const char *s = ref + 3;
    const char *slash = strchr(s, '/');
    if (!slash)
        return ref_bad(err, errlen, ref, "hf: needs OWNER/REPO");
    const char *r = slash + 1;
    size_t rn = strcspn(r, ":");
    if (!hub_part_valid(s, (size_t)(slash - s)) || !hub_part_valid(r, rn))
        return ref_bad(err, errlen, ref,
                       "OWNER and REPO are letters, digits, '-', '_' and '.'");
    const char *sel = r[rn] == ':' ? r + rn + 1 : NULL;
    if (sel && (*sel == '\0' || !printable(sel) || *sel == '/' || strstr(sel, "..")))
        return ref_bad(err, errlen, ref, "after REPO: comes a quant (Q4_K_M) or a FILE.gguf");
    out->owner = strndup(s, (size_t)(slash - s));
    out->repo = strndup(r, rn);
    out->sel = sel ? strdup(sel) : NULL;
    if (!out->owner || !out->repo || (sel && !out->sel)) {
        pull_ref_free(out);
        return ref_bad(err, errlen, ref, "out of memory");
    }
    return 0;
}

/* ------------------------------------------------------------ choosing a file */

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static bool ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

bool pull_is_split(const char *file)
{
    /* ...-DDDDD-of-DDDDD.gguf */
    size_t n = strlen(file);
    const char *tail = "-00000-of-00000.gguf";
    size_t m = strlen(tail);
    if (n < m)
        return false;
    const char *p = file + n - m;
    for (size_t i = 0; i < m; i++) {
        bool digit = tail[i] == '0';
        if (digit ? !isdigit((unsigned char)p[i])
                  : tolower((unsigned char)p[i]) != tail[i])
            return false;
    }
    return true;
}

static bool candidate(const char *path)
{
    return ends_with_ci(path, ".gguf") && strncasecmp(base_name(path), "mmproj", 6) != 0;
}

/* Does the file name carry the tag: preceded by the start, '-', '_' or
 * '.', followed by '-' or '.' (the extension's dot at least)? */
static bool has_tag(const char *path, const char *tag)
{
    const char *b = base_name(path);
    size_t tn = strlen(tag);
    if (tn == 0)
        return false;
    for (const char *p = b; *p; p++) {
        if (p != b && !strchr("-_.", p[-1]))
            continue;
        if (strncasecmp(p, tag, tn) == 0 && (p[tn] == '-' || p[tn] == '.'))
            return true;
    }
    return false;
}

/* "; .gguf files here: a, b, c" appended to why */
static void list_ggufs(const char *const *files, size_t n, char *why, size_t whylen)
{
    size_t used = strlen(why);
    bool any = false;
    for (size_t i = 0; i < n && used + 1 < whylen; i++) {
        if (!candidate(files[i]))
            continue;
        int w = snprintf(why + used, whylen - used, "%s%s", any ? ", " : "; .gguf files: ",
                         files[i]);
        if (w < 0 || (size_t)w >= whylen - used) {
            if (whylen > used + 4)
                strcpy(why + whylen - 4, "...");
            return;
        }
        used += (size_t)w;
        any = true;
    }
    if (!any && used + 1 < whylen)
        snprintf(why + used, whylen - used, "; there is no .gguf file");
}

static long split_error(const char *file, char *why, size_t whylen)
{
    snprintf(why, whylen, "%s is part of a multi-part GGUF, which is not supported "
             "(merge the parts into one file first)", file);
    return -1;
}

/* Index of the only candidate with the tag; -1 none; -2 several, -3 only
 * parts of a split file (*first set). */
static long match_tag(const char *const *files, size_t n, const char *tag, size_t *first)
{
    long found = -1;
    size_t whole = 0, parts = 0;
    for (size_t i = 0; i < n; i++) {
        if (!candidate(files[i]) || !has_tag(files[i], tag))
            continue;
        if (pull_is_split(files[i])) {
            if (parts++ == 0)
                *first = i;
            continue;
        }
        whole++;
        found = (long)i;
    }
    if (whole == 1)
        return found;
    if (whole > 1)
        return -2;
    return parts ? -3 : -1;
}

long pull_pick(const char *const *files, size_t n, const char *sel, const char **how,
               char *why, size_t whylen)
{
    if (how)
        *how = NULL;
    why[0] = '\0';
    size_t first = 0;
    if (sel && ends_with_ci(sel, ".gguf")) {
        long hit = -1;
        for (size_t i = 0; i < n && hit < 0; i++)
            if (strcmp(files[i], sel) == 0)
                hit = (long)i;
        for (size_t i = 0; i < n && hit < 0; i++) /* a name without its folder */
            if (strcmp(base_name(files[i]), sel) == 0)
                hit = (long)i;
        if (hit < 0) {
            snprintf(why, whylen, "no file %s", sel);
            list_ggufs(files, n, why, whylen);
            return -1;
        }
        if (pull_is_split(files[hit]))
            return split_error(files[hit], why, whylen);
        return hit;
    }
    if (sel) {
        long m = match_tag(files, n, sel, &first);
        if (m >= 0)
            return m;
        if (m == -3)
            return split_error(files[first], why, whylen);
        snprintf(why, whylen, m == -2 ? "several files match %s: name one as :FILE.gguf"
                                      : "no file matches %s", sel);
        list_ggufs(files, n, why, whylen);
        return -1;
    }
    for (size_t q = 0; q < sizeof default_quants / sizeof default_quants[0]; q++) {
        long m = match_tag(files, n, default_quants[q], &first);
        if (m >= 0) {
            if (how)
                *how = default_quants[q];
            return m;
        }
        if (m == -2) {
            snprintf(why, whylen, "several %s files: name one as :FILE.gguf",
                     default_quants[q]);
            list_ggufs(files, n, why, whylen);
            return -1;
        }
    }
    long only = -1;
    size_t whole = 0, parts = 0;
    for (size_t i = 0; i < n; i++) {
        if (!candidate(files[i]))
            continue;
        if (pull_is_split(files[i])) {
            if (parts++ == 0)
                first = i;
        } else {
            whole++;
            only = (long)i;
        }
    }
    if (whole == 1) {
        if (how)
            *how = "the only .gguf";
        return only;
    }
    if (whole == 0 && parts)
        return split_error(files[first], why, whylen);
    snprintf(why, whylen, "no Q4_K_M, Q4_0 or Q8_0 file: name a quant (:Q5_K_M) or a file");
    list_ggufs(files, n, why, whylen);
    return -1;
}

/* ------------------------------------------------------------ names */

/* The store name from a file name: without folders and .gguf. */
bool pull_name_from_file(const char *file, char *name, size_t len)
{
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    size_t n = strcspn(b, "?#");
    if (n >= 5 && strncasecmp(b + n - 5, ".gguf", 5) == 0)
        n -= 5;
    if (n == 0 || n >= len)
        return false;
    memcpy(name, b, n);
    name[n] = '\0';
    return store_name_valid(name);
}
