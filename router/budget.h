/* budget.h - caps on cloud requests and tokens per hour and per day that
 * survive a restart.
 *
 * Windows are fixed clock windows in UTC: the hour that starts at
 * floor(now / 3600) * 3600 and the day that starts at floor(now / 86400) *
 * 86400 (unix time has no leap seconds, so that is UTC midnight). When
 * `now` enters a later window, that window's counts start at zero. `now`
 * is always passed in (unix seconds) so that tests control the clock.
 *
 * A request is counted when it starts (budget_charge_request), so that
 * requests running at the same time cannot all slip under a cap; its
 * tokens are counted once known (budget_charge_tokens), so a token cap can
 * be overshot by the requests in flight when it is reached. A cap is
 * reached when the count is >= the cap: with requests_per_hour = 3 the
 * third request of the hour goes, the fourth stays local.
 *
 * Persistence: with a state path, every charge rewrites one small JSON
 * object there ({"version":1, "hour_start":..., "requests_hour":...,
 * "tokens_hour":..., "day_start":..., "requests_day":..., "tokens_day":...})
 * atomically: a temporary file in the same directory (mode 0600), fsync,
 * rename over the state file, fsync of the directory. A crash leaves the
 * old state or the new one, never a torn file. A write that fails (a
 * read-only directory, a full disk) keeps the count in memory and returns
 * BUDGET_EIO with the reason in budget_last_error; the next charge tries
 * again and, once it succeeds, the file holds every count again.
 *
 * What is loaded is checked, never trusted: a file that is not that
 * object (not JSON, empty, a value of the wrong type, a negative count, a
 * count above BUDGET_COUNT_MAX, a window start that is not on a window
 * boundary) is reported (BUDGET_ECORRUPT) and the budget starts empty. A
 * window start after `now` (the clock went back, or the file comes from a
 * machine whose clock was ahead) is taken as the current window: its
 * counts are kept - a clock step gives no fresh budget - and its start
 * moves back to the window of `now`, so it rolls over at the next
 * boundary as usual instead of waiting for the future date.
 *
 * Every function takes the budget's mutex, so any thread may call it. A
 * budget_check followed by budget_charge_request is exact on one thread
 * (the daemon's loop); two threads doing both at once may both pass.
 */
#ifndef HEARTH_ROUTER_BUDGET_H
#define HEARTH_ROUTER_BUDGET_H

#include <stddef.h>
#include <time.h>

/* Counts and caps above this are absurd (a state file holding one is
 * corrupt); sums saturate here instead of overflowing. */
#define BUDGET_COUNT_MAX 1000000000000000LL /* 10^15 */

typedef struct budget_limits {
    long long requests_per_hour, requests_per_day;
    long long tokens_per_hour, tokens_per_day;
} budget_limits; /* 0 (or negative) = no cap */

typedef struct budget budget;

typedef enum budget_status {
    BUDGET_OK = 0,
    BUDGET_ECORRUPT, /* budget_open: the state file is not budget state; the
                        budget starts empty and is usable (err says why) */
    BUDGET_EIO,      /* the state file or its directory cannot be read,
                        created or written; counts kept in memory, the
                        budget is usable (err / budget_last_error say why) */
    BUDGET_ENOMEM,   /* out of memory */
    BUDGET_EINVAL    /* a bad argument (negative tokens, NULL) */
} budget_status;

/* Open a budget. state_path: the state file (e.g.
 * STATE_DIR/router-budget.json), NULL to keep counts in memory only. A
 * missing file is an empty budget; a missing directory is created (0700,
 * with its missing parents). Returns BUDGET_OK, or BUDGET_ECORRUPT /
 * BUDGET_EIO with *out set all the same (log err as a warning and go on),
 * or BUDGET_ENOMEM / BUDGET_EINVAL with *out NULL. */
budget_status budget_open(const char *state_path, const budget_limits *lim,
                          budget **out, char *err, size_t errlen);
void budget_free(budget *b);

/* New caps (a configuration reload); the counts stay. */
void budget_set_limits(budget *b, const budget_limits *lim);

/* NULL when one more cloud request may go now, else the name of a cap
 * that is reached: "requests_per_day", "tokens_per_day",
 * "requests_per_hour" or "tokens_per_hour", checked in that order (the
 * day caps first: they hold the longest). A static string. */
const char *budget_check(budget *b, time_t now);

/* A cloud request starts: count it at once. Then persist. BUDGET_OK, or
 * BUDGET_EIO when the state could not be written (counted all the same). */
budget_status budget_charge_request(budget *b, time_t now);
/* The tokens a cloud request used, once known (the upstream's usage, or
 * an estimate); tokens >= 0. Then persist, as above. */
budget_status budget_charge_tokens(budget *b, time_t now, long long tokens);

/* The reason of the last failed write or read (one line naming the file),
 * copied into buf; "" when the last write succeeded. */
void budget_last_error(budget *b, char *buf, size_t cap);

/* A snapshot for /health: the counts of the windows `now` is in (zero for
 * a window nothing was counted in yet), the caps, and the windows' starts. */
typedef struct budget_usage {
    long long requests_hour, requests_day, tokens_hour, tokens_day;
    budget_limits limits;
    time_t hour_start, day_start;
} budget_usage;
void budget_usage_get(budget *b, time_t now, budget_usage *out);

#endif
