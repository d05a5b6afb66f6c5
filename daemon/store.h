/* store.h - the model store: a directory of GGUF files known by name.
 *
 * Layout (docs/hearth.md, "The model store"):
 *   DIR/NAME.gguf      the model; NAME is what requests and `hearth` call it
 *   DIR/NAME.json      its manifest, written by `hearth pull`: source, url,
 *                      sha256, size, pulled time. Absent for a file put
 *                      there by hand; ignored when its size disagrees with
 *                      the file's (the file was replaced by hand)
 *   DIR/.partial/      downloads in progress (daemon/pull.h); never listed
 * A file becomes visible under its final name only by rename(2), after
 * every check, so a reader never sees half a model.
 *
 * No network code here: hearthd links this too (loading by name). */
#ifndef HEARTH_STORE_H
#define HEARTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store_entry {
    char *name;      /* what requests and `hearth` call it: the file name without .gguf */
    char *path;      /* full path of the .gguf */
    char *source;    /* the ref or URL it was pulled from; NULL when the file was put there by hand */
    char sha256[65]; /* lower-case hex, "" when unknown */
    uint64_t size;   /* bytes */
    int64_t mtime;   /* seconds since the epoch */
} store_entry;

#define STORE_NAME_MAX 128

/* The default store directory into buf: $STATE_DIRECTORY/models when systemd set
 * STATE_DIRECTORY (first entry of the colon list), else $XDG_DATA_HOME/hearth/models,
 * else $HOME/.local/share/hearth/models. NULL when none can be formed. */
const char *store_default_dir(char *buf, size_t len);
bool store_name_valid(const char *name); /* [A-Za-z0-9._:+-], 1..128, not starting with '.' */
/* Every *.gguf directly in dir, sorted by name; a missing dir is an empty list (0). */
int store_list(const char *dir, store_entry **out, size_t *n, char *err, size_t errlen);
void store_entries_free(store_entry *e, size_t n);
void store_entry_clear(store_entry *e);
/* 0 found (out filled), 1 no such model, -1 error (err). An invalid name
 * is "no such model" (1): no file can have it. */
int store_find(const char *dir, const char *name, store_entry *out, char *err, size_t errlen);
int store_remove(const char *dir, const char *name, char *err, size_t errlen); /* 0, 1 absent, -1 */

/* ---- for writers (daemon/pull.c) */

/* mkdir -p with mode 0755 for each missing component. */
int store_mkdirs(const char *dir, char *err, size_t errlen);

/* "DIR/NAME.EXT" into buf; -1 when it does not fit. */
int store_path(char *buf, size_t len, const char *dir, const char *name, const char *ext);

/* What pull records about a model, written to DIR/NAME.json (through a
 * temporary file and rename). url may be NULL. */
typedef struct store_manifest {
    const char *source;  /* the ref as given: "hf:owner/repo:Q4_K_M" or a URL */
    const char *url;     /* the URL downloaded */
    const char *sha256;  /* 64 lower-case hex digits */
    uint64_t size;
    int64_t pulled;      /* seconds since the epoch */
} store_manifest;
int store_manifest_write(const char *dir, const char *name, const store_manifest *m,
                         char *err, size_t errlen);

/* Lower-case hex of a 32-byte digest into out[65]. */
void store_hex(const unsigned char *digest, size_t n, char *out);

#endif
