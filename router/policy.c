/* policy.c - see policy.h. */
#include "policy.h"

#include <stdio.h>
#include <string.h>

int route_mode_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "auto") == 0)
        return ROUTE_AUTO;
    if (strcmp(s, "local") == 0)
        return ROUTE_LOCAL;
    if (strcmp(s, "cloud") == 0)
        return ROUTE_CLOUD;
    return -1;
}

int privacy_action_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "local") == 0)
        return PRIVACY_KEEP_LOCAL;
    if (strcmp(s, "reject") == 0)
        return PRIVACY_REJECT;
    if (strcmp(s, "redact") == 0)
        return PRIVACY_REDACT;
    return -1;
}

static void set(policy_out *o, route_to to, unsigned status, const char *fmt, const char *a)
{
    o->to = to;
    o->status = status;
    snprintf(o->reason, sizeof o->reason, fmt, a ? a : "");
}

static const char *local_why(local_state s)
{
    return s == LOCAL_NONE ? "no-local-model" : s == LOCAL_CONTEXT ? "context" : "unsupported";
}

void policy_decide(const policy_in *in, policy_out *o)
{
    memset(o, 0, sizeof *o);
    bool local_ok = in->local == LOCAL_OK;
    if (in->mode == ROUTE_LOCAL || !in->cloud_configured) {
        set(o, ROUTE_TO_LOCAL, 0, "%s", in->mode == ROUTE_LOCAL ? in->mode_source : "no-upstream");
        return;
    }
    if (in->privacy_kind) {
        if (in->action == PRIVACY_REJECT) {
            set(o, ROUTE_TO_REFUSE, 400, "privacy:%s", in->privacy_kind);
            return;
        }
        if (in->action == PRIVACY_KEEP_LOCAL) {
            set(o, local_ok ? ROUTE_TO_LOCAL : ROUTE_TO_REFUSE, local_ok ? 0 : 400,
                "privacy:%s", in->privacy_kind);
            return;
        }
        o->redact = true;
    }
    if (in->budget_cap) {
        set(o, local_ok ? ROUTE_TO_LOCAL : ROUTE_TO_REFUSE, local_ok ? 0 : 429, "budget:%s",
            in->budget_cap);
        o->redact = false;
        return;
    }
    if (!in->cloud_available) {
        bool may_local = in->mode == ROUTE_AUTO || in->fallback;
        set(o, may_local ? ROUTE_TO_LOCAL : ROUTE_TO_REFUSE, may_local ? 0 : 503, "%s",
            "cooldown");
        o->redact = false;
        return;
    }
    if (in->mode == ROUTE_CLOUD) {
        set(o, ROUTE_TO_CLOUD, 0, "%s", in->mode_source);
        return;
    }
    if (!local_ok) {
        set(o, ROUTE_TO_CLOUD, 0, "%s", local_why(in->local));
        return;
    }
    if (in->queue_over) {
        set(o, ROUTE_TO_CLOUD, 0, "%s", "queue");
        return;
    }
    if (!in->scored) {
        o->needs_score = true;
        o->to = ROUTE_TO_LOCAL;
        return;
    }
    bool cloud = in->score >= in->threshold;
    o->to = cloud ? ROUTE_TO_CLOUD : ROUTE_TO_LOCAL;
    snprintf(o->reason, sizeof o->reason, "score=%.2f", in->score);
    if (!cloud)
        o->redact = false;
}
