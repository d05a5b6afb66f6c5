/* resident_load.h - loading one resident model (daemon/resident.h). */
#ifndef HEARTH_RESIDENT_LOAD_H
#define HEARTH_RESIDENT_LOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/resident.h"

/* Weights, tokenizer, chat template (the configured one, else the
 * model's, else ChatML) and, with want_nll, the reference NLL, into lm
 * (lm->path set). Any thread. -1 with err (without the path). */
int resident_load_files(resident_model *lm, const char *configured, bool want_nll,
                        char *err, size_t errlen);
/* Its scheduler, and the memory estimate (loop thread). */
int resident_load_sched(resident_model *lm, const resident_params *p, char *err,
                        size_t errlen);
/* Free whatever lm holds, and lm. */
void resident_load_free(resident_model *lm);

#endif
