/* hearth.h - what the `hearth` command's files share: the helpers of
 * hearth.c (one-line errors, flags, sizes) and the description `hearth
 * info` prints, which `hearth show` prints too (hearth_store.c). */
#ifndef HEARTH_TOOLS_HEARTH_H
#define HEARTH_TOOLS_HEARTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/quant.h"

#define EXIT_USAGE 2

/* One line on stderr "hearth CMD: ... (see 'hearth CMD --help')"; main()
 * then exits 2. */
void die_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line on stderr "hearth CMD: ..."; returns EXIT_FAILURE. */
int fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fmt_bytes(char *buf, size_t cap, uint64_t n); /* "1.17 MiB" */
/* "--flag value" or "--flag=value" (is_flag splits the second form);
 * flag_value reports a missing value as a usage error and returns NULL. */
bool is_flag(const char *arg, const char *lng, const char *shrt, const char **inline_val);
const char *flag_value(const char *cmd, int argc, char **argv, int *i, const char *inline_val);
bool wants_help(int argc, char **argv);

/* Parameters and bytes per tensor type of a GGUF file. */
typedef struct hearth_tensor_stats {
    uint64_t n_params, data_bytes;
    uint64_t count[QT_TYPE_MAX + 1]; /* [QT_TYPE_MAX]: types the engine does not know */
    uint64_t bytes[QT_TYPE_MAX + 1];
    uint32_t main_type;              /* the type with the most bytes; QT_TYPE_MAX: none */
} hearth_tensor_stats;
void hearth_tensor_stats_of(const gguf_file *f, hearth_tensor_stats *s);

/* A model argument: a file when arg names one (or has a '/'), else the
 * store's model of that name (its path into buf), else arg as given. */
const char *hearth_model_file(const char *arg, char *buf, size_t len);

/* `hearth info`'s description of an open file, on stdout. */
void hearth_info_print(const char *path, const gguf_file *f);

#endif
