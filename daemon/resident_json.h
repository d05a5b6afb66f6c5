/* resident_json.h - the models as GET /health and GET /v1/models show
 * them (docs/api/health.md, docs/api/models.md). Loop thread. */
#ifndef HEARTH_RESIDENT_JSON_H
#define HEARTH_RESIDENT_JSON_H

#include <jansson.h>

#include "daemon/resident.h"
#include "routing.h"
#include "scheduler.h"

/* The resident models, one object each. */
json_t *resident_json_list(resident *rs);
/* /v1/models' data: the resident models, the store's other models, then
 * auto and the upstreams when the router has any. */
json_t *resident_json_models(resident *rs, const routing *rt);

#endif
