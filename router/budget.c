/* budget.c - see budget.h.
 *
 * The state is six numbers: the start of the current hour and day windows
 * and the requests and tokens counted in each. Every call first rolls the
 * windows to `now` (roll), then reads or counts, then (when it counted)
 * writes the whole state to the file (save). The file is small enough
 * that rewriting it whole is the simple way to keep it consistent. */
#include "router/budget.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOUR 3600
#define DAY 86400
#define STATE_VERSION 1
/* The file we write is under 200 bytes; anything much larger is not ours. */
#define STATE_MAX_BYTES 4096

struct budget {
    pthread_mutex_t mu;
    char *path;             /* the state file, NULL: memory only */
    char *dir;              /* its directory (fsync after the rename) */
    budget_limits lim;
    time_t hour_start, day_start;
    long long req_hour, tok_hour, req_day, tok_day;
    char last_err[256];
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ windows */

/* The start of the window of length `len` that holds t (floor, also for
 * t < 0). */
static time_t window_of(time_t t, time_t len)
{
    time_t r = t % len;
    if (r < 0)
        r += len;
    return t - r;
}

/* Move both windows to the ones `now` is in. A later window starts from
 * zero; an earlier one (the clock went back) keeps its counts - see
 * budget.h. */
static void roll(budget *b, time_t now)
{
    time_t h = window_of(now, HOUR), d = window_of(now, DAY);
    if (h > b->hour_start)
        b->req_hour = b->tok_hour = 0;
    b->hour_start = h;
    if (d > b->day_start)
        b->req_day = b->tok_day = 0;
    b->day_start = d;
}

static long long sat_add(long long a, long long n)
{
    return n > BUDGET_COUNT_MAX - a ? BUDGET_COUNT_MAX : a + n;
}

static long long cap_of(long long v)
{
    return v > 0 ? v : 0;
}

/* -------------------------------------------------------------- files */

/* mkdir -p with mode 0700 for what is missing. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char *p = strdup(dir);
    if (!p) {
        seterr(err, errlen, "budget: out of memory");
        return -1;
    }
    int r = 0;
    for (char *s = p + 1; r == 0; s++) {
        bool end = *s == '\0';
        if (!end && *s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            seterr(err, errlen, "budget: cannot create directory '%s': %s",
                   p, strerror(errno));
            r = -1;
        }
        if (end)
            break;
        *s = '/';
    }
    struct stat st;
    if (r == 0 && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        seterr(err, errlen, "budget: '%s' is not a directory", dir);
        r = -1;
    }
    free(p);
    return r;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Replace the state file: a temporary file beside it, fsync, rename,
 * fsync of the directory so that the rename itself is on disk. */
static int write_state(budget *b, const char *text)
{
    size_t cap = strlen(b->path) + 16;
    char *tmp = malloc(cap);
    if (!tmp) {
        seterr(b->last_err, sizeof b->last_err, "budget: out of memory");
        return -1;
    }
    snprintf(tmp, cap, "%s.tmp-XXXXXX", b->path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        seterr(b->last_err, sizeof b->last_err,
               "budget: cannot write '%s': %s", b->path, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *what = "write";
    int r = -1;
    if (fchmod(fd, 0600) == 0 && write_all(fd, text, strlen(text)) == 0) {
        what = "sync";
        r = fsync(fd);
    }
    int e = errno;
    if (close(fd) != 0 && r == 0) {
        e = errno;
        what = "write";
        r = -1;
    }
    if (r == 0 && rename(tmp, b->path) != 0) {
        e = errno;
        what = "rename";
        r = -1;
    }
    if (r != 0) {
        seterr(b->last_err, sizeof b->last_err,
               "budget: cannot %s '%s': %s", what, b->path, strerror(e));
        unlink(tmp);
    } else {
        int dfd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd); /* best effort: the data itself is synced */
            close(dfd);
        }
        b->last_err[0] = '\0';
    }
    free(tmp);
    return r;
}

/* Persist the state (the caller holds the mutex). */
static budget_status save(budget *b)
{
    if (!b->path)
        return BUDGET_OK;
    json_t *o = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I}",
                          "version", STATE_VERSION,
                          "hour_start", (json_int_t)b->hour_start,
                          "requests_hour", (json_int_t)b->req_hour,
                          "tokens_hour", (json_int_t)b->tok_hour,
                          "day_start", (json_int_t)b->day_start,
                          "requests_day", (json_int_t)b->req_day,
                          "tokens_day", (json_int_t)b->tok_day);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        seterr(b->last_err, sizeof b->last_err, "budget: out of memory");
        return BUDGET_ENOMEM;
    }
    int r = write_state(b, text);
    free(text);
    return r == 0 ? BUDGET_OK : BUDGET_EIO;
}

/* One integer member of the state object, in [0, max]; when `window` is
 * not 0 it must also be a multiple of it. */
static const char *get_num(json_t *o, const char *key, long long max,
                           long long window, long long *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return "a member is missing";
    if (!json_is_integer(v))
        return "a member is not an integer";
    long long n = json_integer_value(v);
    if (n < 0 || n > max)
        return "a value is negative or too large";
    if (window && n % window != 0)
        return "a window start is not on a window boundary";
    *out = n;
    return NULL;
}

/* Check a parsed state object and take it; NULL, or what is wrong. */
static const char *take_state(budget *b, json_t *o)
{
    if (!json_is_object(o))
        return "not a JSON object";
    json_t *ver = json_object_get(o, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != STATE_VERSION)
        return "no \"version\": 1";
    /* a window start up to year 9999 */
    const long long tmax = 253402300800LL;
    long long hs, rh, th, ds, rd, td;
    const char *why;
    if ((why = get_num(o, "hour_start", tmax, HOUR, &hs)) ||
        (why = get_num(o, "requests_hour", BUDGET_COUNT_MAX, 0, &rh)) ||
        (why = get_num(o, "tokens_hour", BUDGET_COUNT_MAX, 0, &th)) ||
        (why = get_num(o, "day_start", tmax, DAY, &ds)) ||
        (why = get_num(o, "requests_day", BUDGET_COUNT_MAX, 0, &rd)) ||
        (why = get_num(o, "tokens_day", BUDGET_COUNT_MAX, 0, &td)))
        return why;
    b->hour_start = (time_t)hs;
    b->req_hour = rh;
    b->tok_hour = th;
    b->day_start = (time_t)ds;
    b->req_day = rd;
    b->tok_day = td;
    return NULL;
}

/* Read the state file if there is one. */
static budget_status load(budget *b, char *err, size_t errlen)
{
    int fd = open(b->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        return BUDGET_OK;
    if (fd < 0) {
        seterr(err, errlen, "budget: cannot read '%s': %s", b->path,
               strerror(errno));
        return BUDGET_EIO;
    }
    char buf[STATE_MAX_BYTES + 1];
    size_t n = 0;
    const char *why = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        why = "not a regular file";
    while (!why && n < sizeof buf) {
        ssize_t k = read(fd, buf + n, sizeof buf - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            seterr(err, errlen, "budget: cannot read '%s': %s", b->path,
                   strerror(e));
            return BUDGET_EIO;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    json_t *o = NULL;
    if (!why && n == 0)
        why = "empty";
    else if (!why && n > STATE_MAX_BYTES)
        why = "too large";
    else if (!why && !(o = json_loadb(buf, n, JSON_REJECT_DUPLICATES, NULL)))
        why = "not JSON";
    if (!why)
        why = take_state(b, o);
    json_decref(o);
    if (!why)
        return BUDGET_OK;
    seterr(err, errlen, "budget: state file '%s' is corrupt (%s); counting "
           "from zero", b->path, why);
    return BUDGET_ECORRUPT;
}

/* ---------------------------------------------------------------- API */

budget_status budget_open(const char *state_path, const budget_limits *lim,
                          budget **out, char *err, size_t errlen)
{
    *out = NULL;
    seterr(err, errlen, "%s", "");
    if (!lim || (state_path && !*state_path)) {
        seterr(err, errlen, "budget: no limits or an empty state path");
        return BUDGET_EINVAL;
    }
    budget *b = calloc(1, sizeof *b);
    if (!b || pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        seterr(err, errlen, "budget: out of memory");
        return BUDGET_ENOMEM;
    }
    budget_set_limits(b, lim);
    if (!state_path) {
        *out = b;
        return BUDGET_OK;
    }
    b->path = strdup(state_path);
    b->dir = strdup(state_path);
    if (!b->path || !b->dir) {
        budget_free(b);
        seterr(err, errlen, "budget: out of memory");
        return BUDGET_ENOMEM;
    }
    char *slash = strrchr(b->dir, '/');
    if (!slash)
        strcpy(b->dir, ".");
    else if (slash == b->dir)
        slash[1] = '\0';            /* "/file": the root */
    else
        *slash = '\0';
    budget_status st = BUDGET_OK;
    if (make_dirs(b->dir, b->last_err, sizeof b->last_err) != 0)
        st = BUDGET_EIO;
    else
        st = load(b, b->last_err, sizeof b->last_err);
    seterr(err, errlen, "%s", b->last_err);
    *out = b;
    return st;
}

void budget_free(budget *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b->path);
    free(b->dir);
    free(b);
}

void budget_set_limits(budget *b, const budget_limits *lim)
{
    pthread_mutex_lock(&b->mu);
    b->lim.requests_per_hour = cap_of(lim->requests_per_hour);
    b->lim.requests_per_day = cap_of(lim->requests_per_day);
    b->lim.tokens_per_hour = cap_of(lim->tokens_per_hour);
    b->lim.tokens_per_day = cap_of(lim->tokens_per_day);
    pthread_mutex_unlock(&b->mu);
}

static bool reached(long long cap, long long used)
{
    return cap > 0 && used >= cap;
}

const char *budget_check(budget *b, time_t now)
{
    pthread_mutex_lock(&b->mu);
    roll(b, now);
    const char *cap = NULL;
    if (reached(b->lim.requests_per_day, b->req_day))
        cap = "requests_per_day";
    else if (reached(b->lim.tokens_per_day, b->tok_day))
        cap = "tokens_per_day";
    else if (reached(b->lim.requests_per_hour, b->req_hour))
        cap = "requests_per_hour";
    else if (reached(b->lim.tokens_per_hour, b->tok_hour))
        cap = "tokens_per_hour";
    pthread_mutex_unlock(&b->mu);
    return cap;
}

budget_status budget_charge_request(budget *b, time_t now)
{
    pthread_mutex_lock(&b->mu);
    roll(b, now);
    b->req_hour = sat_add(b->req_hour, 1);
    b->req_day = sat_add(b->req_day, 1);
    budget_status st = save(b);
    pthread_mutex_unlock(&b->mu);
    return st;
}

budget_status budget_charge_tokens(budget *b, time_t now, long long tokens)
{
    if (tokens < 0)
        return BUDGET_EINVAL;
    if (tokens == 0)
        return BUDGET_OK;
    pthread_mutex_lock(&b->mu);
    roll(b, now);
    b->tok_hour = sat_add(b->tok_hour, tokens);
    b->tok_day = sat_add(b->tok_day, tokens);
    budget_status st = save(b);
    pthread_mutex_unlock(&b->mu);
    return st;
}

void budget_last_error(budget *b, char *buf, size_t cap)
{
    pthread_mutex_lock(&b->mu);
    seterr(buf, cap, "%s", b->last_err);
    pthread_mutex_unlock(&b->mu);
}

void budget_usage_get(budget *b, time_t now, budget_usage *out)
{
    pthread_mutex_lock(&b->mu);
    roll(b, now);
    out->requests_hour = b->req_hour;
    out->tokens_hour = b->tok_hour;
    out->requests_day = b->req_day;
    out->tokens_day = b->tok_day;
    out->limits = b->lim;
    out->hour_start = b->hour_start;
    out->day_start = b->day_start;
    pthread_mutex_unlock(&b->mu);
}
