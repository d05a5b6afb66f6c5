/* pull.h - download a GGUF model into the store (daemon/store.h).
 *
 * References (docs/hearth.md, "hearth pull"):
 *   hf:OWNER/REPO             the repo's Q4_K_M file, else Q4_0, else Q8_0,
 *                             else its only .gguf
 *   hf:OWNER/REPO:QUANT       the file whose name carries the tag QUANT
 *                             (case-insensitive, between '-' or '.')
 *   hf:OWNER/REPO:FILE.gguf   that file
 *   https://... or http://... any URL of a .gguf
 * hf: references are resolved through the hub's file API
 * (GET HUB/api/models/OWNER/REPO/tree/main?recursive=true, pages followed
 * through the Link header) and downloaded from HUB/OWNER/REPO/resolve/main/FILE.
 *
 * The download goes to DIR/.partial/NAME.gguf with a sidecar
 * DIR/.partial/NAME.json (url, expected sha256 and size, the server's
 * ETag); a second pull of the same thing resumes it with a Range request
 * (If-Range with the ETag). Before the file is renamed to DIR/NAME.gguf:
 * the size, the SHA-256 (against the hub's LFS oid or X-Linked-ETag) and
 * the GGUF header are checked; a failed check deletes the partial file.
 * A network failure or an interruption keeps it for the next pull.
 *
 * Blocking (libcurl's easy interface): for the command line. */
#ifndef HEARTH_PULL_H
#define HEARTH_PULL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/store.h"

#define PULL_DEFAULT_HUB "https://huggingface.co"

typedef enum pull_status {
    PULL_OK = 0,
    PULL_FAILED = 1,      /* network, server, checks, disk: err says which */
    PULL_BAD_REF = 2,     /* the reference or the name is malformed (usage) */
    PULL_INTERRUPTED = 3, /* *stop was set: the partial file is kept */
} pull_status;

/* A parsed reference: either hf (owner, repo, sel) or url. */
typedef struct pull_ref {
    char *owner, *repo;
    char *sel;  /* hf: the QUANT or FILE.gguf after the second ':', or NULL */
    char *url;  /* http(s): the URL */
} pull_ref;

/* 0, or -1 with the reason in err (a usage error). */
int pull_ref_parse(const char *ref, pull_ref *out, char *err, size_t errlen);
void pull_ref_free(pull_ref *r);

/* Which of a repo's files a reference means. files are the repo's paths
 * (any kind; only *.gguf are candidates, mmproj files never are). sel is
 * pull_ref.sel. Returns the index, or -1 with the reason in why (no match,
 * ambiguous, or a multi-part GGUF), listing the .gguf files there. *how
 * (may be NULL) says why the default pick was made ("Q4_K_M", "the only
 * .gguf") or NULL when sel named it. */
long pull_pick(const char *const *files, size_t n, const char *sel, const char **how,
               char *why, size_t whylen);

/* true for "NAME-00001-of-00003.gguf" (case-insensitive) */
bool pull_is_split(const char *file);

/* A progress report: called at most ~10 times a second and once at the end. */
typedef struct pull_progress {
    uint64_t done;  /* bytes of the file we have, the resumed part included */
    uint64_t total; /* 0 when unknown */
    double rate;    /* bytes per second of this transfer */
    bool final;     /* the transfer ended (well or not) */
} pull_progress;

typedef struct pull_opts {
    const char *store_dir;
    const char *hub_url;        /* NULL: PULL_DEFAULT_HUB */
    const char *name;           /* NULL: the file name without .gguf */
    const char *token;          /* Bearer token (HF_TOKEN), sent only to the hub's host */
    int stall_timeout;          /* seconds without a byte; <= 0: 30 */
    int connect_timeout;        /* seconds; <= 0: 30 */
    volatile sig_atomic_t *stop; /* may be NULL; set (from a signal handler) to interrupt */
    void (*note)(void *ud, const char *line);  /* what was picked, resumed... */
    void (*progress)(void *ud, const pull_progress *p);
    void *ud;
} pull_opts;

/* Pull ref into the store; on PULL_OK *out (may be NULL) is the new entry.
 * err is one line without curl's own text. */
pull_status pull_model(const pull_opts *o, const char *ref, store_entry *out, char *err,
                       size_t errlen);

#endif
