/* policy.h - where a request is answered: the local model, a cloud
 * upstream, or nowhere (refused), and why.
 *
 * A pure function of what the daemon knows about the request; it does no
 * I/O and keeps no state, so every rule can be tested on its own. The
 * rules, first match wins:
 *
 *  1. route local (model name, header or default): local ("model",
 *     "header", "default"); the daemon answers with its usual errors when
 *     the local model cannot serve. No upstream configured: local
 *     ("no-upstream"). Nothing leaves the machine, so privacy is moot.
 *  2. privacy: a detector fired. action "reject": refused (400,
 *     "privacy:KIND"). action "local": local only ("privacy:KIND"); if
 *     the local model cannot serve, refused (the request must not leave).
 *     action "redact": goes on below, and a cloud answer is redacted.
 *  3. over budget (a cap reached): local ("budget:CAP"), or refused (429)
 *     when the local model cannot serve.
 *  4. no upstream available: local ("no-upstream" / "cooldown"), or, when
 *     route cloud was asked explicitly and fallback is off, refused (503).
 *  5. route cloud: cloud ("model", "header", "default").
 *  6. route auto: cloud when the local model cannot serve ("no-local-model",
 *     "context", "unsupported"), when the local queue wait is over the
 *     bound ("queue"); else the score decides ("score=0.81").
 */
#ifndef HEARTH_ROUTER_POLICY_H
#define HEARTH_ROUTER_POLICY_H

#include <stdbool.h>

typedef enum route_mode { ROUTE_AUTO, ROUTE_LOCAL, ROUTE_CLOUD } route_mode;
typedef enum privacy_action { PRIVACY_KEEP_LOCAL, PRIVACY_REJECT, PRIVACY_REDACT } privacy_action;
typedef enum route_to { ROUTE_TO_LOCAL, ROUTE_TO_CLOUD, ROUTE_TO_REFUSE } route_to;
typedef enum local_state {
    LOCAL_OK,           /* the local model can answer */
    LOCAL_NONE,         /* no model loaded */
    LOCAL_CONTEXT,      /* the prompt does not fit its context */
    LOCAL_UNSUPPORTED   /* the request asks for something it cannot do */
} local_state;

/* "auto", "local", "cloud"; -1 for anything else. */
int route_mode_parse(const char *s);
int privacy_action_parse(const char *s); /* "local", "reject", "redact" */

typedef struct policy_in {
    route_mode mode;
    const char *mode_source;  /* "model", "header" or "default" */
    local_state local;
    bool queue_over;          /* estimated local wait over the bound */
    bool cloud_configured;    /* any upstream at all */
    bool cloud_available;     /* one that is not cooling down */
    bool fallback;            /* cloud failures may be answered locally */
    const char *budget_cap;   /* NULL, or the cap that is reached */
    const char *privacy_kind; /* NULL, or the first detector that fired */
    privacy_action action;
    bool scored;              /* score is set */
    double score, threshold;
} policy_in;

typedef struct policy_out {
    route_to to;
    bool redact;              /* cloud: send placeholders, restore the answer */
    bool needs_score;         /* auto with nothing else deciding: score it */
    unsigned status;          /* refused: HTTP status */
    char reason[64];          /* for X-Hearth-Route-Reason and the log */
} policy_out;

/* Decide. With in->scored false and the score the only thing left to
 * decide by, out->needs_score is set (and `to` is local, provisionally). */
void policy_decide(const policy_in *in, policy_out *out);

#endif
