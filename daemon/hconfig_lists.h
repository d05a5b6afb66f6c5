/* hconfig_lists.h - the parts of the configuration that the key table in
 * hconfig.c cannot hold: [upstream.NAME] sections (any number, each a
 * group of keys) and repeatable keys ([privacy] pattern, an upstream's
 * header). Internal to hconfig*.c. */
#ifndef HEARTH_HCONFIG_LISTS_H
#define HEARTH_HCONFIG_LISTS_H

#include <stddef.h>

#include "hconfig.h"

/* yes/no, true/false, on/off, 1/0 (any case): 1 or 0; -1 otherwise. */
int config_parse_bool(const char *s);

/* An INI line: 1 when it was one of ours and is stored, 0 when it is not
 * ours (the key table's), -1 with err (no location) when it is ours and
 * bad. */
int config_router_list_kv(hearth_config *c, const char *section, const char *name,
                          const char *value, char *err, size_t errlen);

/* After a whole file: every upstream has what it needs. */
int config_router_lists_check(const hearth_config *c, char *err, size_t errlen);

void config_free_router_lists(hearth_config *c);

/* SIGHUP: lists that differ between c and fresh are named in restart_keys
 * (they apply at the next start). */
void config_router_lists_reload(hearth_config *c, const hearth_config *fresh,
                                char *restart_keys, size_t rk_len, size_t *used);

#endif
