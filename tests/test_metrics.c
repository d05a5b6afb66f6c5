/* test_metrics.c - the /metrics text (daemon/metrics.h): the writer's
 * histograms, escaping and numbers, the registry's counting, and a strict
 * parser of the Prometheus text format 0.0.4 that every rendering here
 * must pass (and that is shown to refuse what breaks the rules). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/metrics.h"

/* ---------------------------------------------------------- the parser */

#define P_MAX_SAMPLES 2048
#define P_MAX_FAMILIES 128

typedef struct p_sample {
    char name[128];
    char labels[512]; /* unescaped, "a=x,b=y" in the order written */
    char le[32];      /* the le label's value, "" when none */
    char rest[480];   /* labels without le: a histogram series' key */
    double value;
    int family;
} p_sample;

typedef struct p_family {
    char name[128];
    char type[16];
    bool help, typed;
} p_family;

typedef struct parsed {
    p_sample s[P_MAX_SAMPLES];
    int n;
    p_family f[P_MAX_FAMILIES];
    int nf;
    char err[256];
} parsed;

static bool name_ok(const char *s, size_t n, bool metric)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                     (metric && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static int p_fail(parsed *p, int line, const char *why)
{
    snprintf(p->err, sizeof p->err, "line %d: %s", line, why);
    return -1;
}

static int find_family(const parsed *p, const char *name)
{
    for (int i = 0; i < p->nf; i++)
        if (strcmp(p->f[i].name, name) == 0)
            return i;
    return -1;
}

/* The family a sample name belongs to: itself, or a histogram's base for
 * _bucket, _sum and _count. */
static int family_of(const parsed *p, const char *name)
{
    int f = find_family(p, name);
    if (f >= 0)
        return strcmp(p->f[f].type, "histogram") == 0 ? -1 : f;
    static const char *const suffix[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(name), k = strlen(suffix[i]);
        if (n > k && strcmp(name + n - k, suffix[i]) == 0) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(n - k), name);
            f = find_family(p, base);
            if (f >= 0 && strcmp(p->f[f].type, "histogram") == 0)
                return f;
        }
    }
    return -1;
}

/* An escaped string up to the closing quote (label value, quote=true) or
 * the end of the line (HELP). */
static int unescape(const char **sp, char *out, size_t cap, bool quote)
{
    const char *s = *sp;
    size_t o = 0;
    for (;;) {
        char c = *s;
        if (c == '\0' || c == '\n') {
            if (quote)
                return -1;
            break;
        }
        if (quote && c == '"')
            break;
        if (c == '\\') {
            char e = s[1];
            if (e == '\\')
                c = '\\';
            else if (e == 'n')
                c = '\n';
            else if (e == '"' && quote)
                c = '"';
            else
                return -1;
            s++;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
        s++;
    }
    out[o] = '\0';
    *sp = s;
    return 0;
}

static int parse_value(const char *s, double *v)
{
    if (strcmp(s, "+Inf") == 0 || strcmp(s, "-Inf") == 0) {
        *v = s[0] == '+' ? INFINITY : -INFINITY;
        return 0;
    }
    if (strcmp(s, "NaN") == 0) {
        *v = NAN;
        return 0;
    }
    char *end;
    *v = strtod(s, &end);
    /* strtod also reads "inf", "nan" and hex: the format's writers do not */
    if (end == s || *end || strpbrk(s, "xXiInN"))
        return -1;
    return 0;
}

static int parse_sample(parsed *p, int line, const char *s, int cur)
{
    if (p->n == P_MAX_SAMPLES)
        return p_fail(p, line, "too many samples");
    p_sample *q = &p->s[p->n];
    memset(q, 0, sizeof *q);
    size_t n = strcspn(s, "{ ");
    if (!name_ok(s, n, true) || n >= sizeof q->name)
        return p_fail(p, line, "bad metric name");
    memcpy(q->name, s, n);
    s += n;
    size_t ll = 0, rl = 0;
    if (*s == '{') {
        s++;
        char seen[16][64];
        int n_seen = 0;
        while (*s != '}') {
            size_t k = strcspn(s, "=");
            if (!name_ok(s, k, false) || k >= 64 || s[k] != '=' || s[k + 1] != '"')
                return p_fail(p, line, "bad label name");
            char lname[64], lval[256];
            snprintf(lname, sizeof lname, "%.*s", (int)k, s);
            if (strncmp(lname, "__", 2) == 0)
                return p_fail(p, line, "reserved label name");
            for (int i = 0; i < n_seen; i++)
                if (strcmp(seen[i], lname) == 0)
                    return p_fail(p, line, "label repeated");
            if (n_seen < 16)
                snprintf(seen[n_seen++], 64, "%s", lname);
            s += k + 2;
            if (unescape(&s, lval, sizeof lval, true) < 0)
                return p_fail(p, line, "bad label value");
            s++; /* the quote */
            int w = snprintf(q->labels + ll, sizeof q->labels - ll, "%s%s=%s", ll ? "," : "",
                             lname, lval);
            if (w < 0 || ll + (size_t)w >= sizeof q->labels)
                return p_fail(p, line, "labels too long");
            ll += (size_t)w;
            if (strcmp(lname, "le") == 0) {
                if (strlen(lval) >= sizeof q->le)
                    return p_fail(p, line, "le too long");
                memcpy(q->le, lval, strlen(lval) + 1);
            } else {
                w = snprintf(q->rest + rl, sizeof q->rest - rl, "%s%s=%s", rl ? "," : "",
                             lname, lval);
                if (w < 0 || rl + (size_t)w >= sizeof q->rest)
                    return p_fail(p, line, "labels too long");
                rl += (size_t)w;
            }
            if (*s == ',')
                s++;
            else if (*s != '}')
                return p_fail(p, line, "expected , or } after a label");
        }
        s++;
    }
    if (*s != ' ')
        return p_fail(p, line, "expected a space before the value");
    s++;
    if (strchr(s, ' '))
        return p_fail(p, line, "a timestamp or trailing text");
    if (parse_value(s, &q->value) < 0)
        return p_fail(p, line, "bad value");
    q->family = family_of(p, q->name);
    if (q->family < 0)
        return p_fail(p, line, "sample before its family's TYPE");
    if (q->family != cur)
        return p_fail(p, line, "sample away from its family's block");
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->s[i].name, q->name) == 0 && strcmp(p->s[i].labels, q->labels) == 0)
            return p_fail(p, line, "series repeated");
    p->n++;
    return 0;
}

/* Each histogram series: le ascending, counts cumulative, +Inf last and
 * equal to _count, a _sum. */
static int check_histograms(parsed *p)
{
    for (int i = 0; i < p->n; i++) {
        const p_sample *b = &p->s[i];
        const p_family *f = &p->f[b->family];
        if (strcmp(f->type, "histogram") != 0 || !b->le[0])
            continue;
        if (i > 0 && strcmp(p->s[i - 1].name, b->name) == 0 &&
            strcmp(p->s[i - 1].rest, b->rest) == 0)
            continue; /* not the first bucket of its series */
        double prev_le = -INFINITY, prev = 0;
        int j = i;
        bool inf = false;
        for (; j < p->n && strcmp(p->s[j].name, b->name) == 0 &&
               strcmp(p->s[j].rest, b->rest) == 0; j++) {
            double le;
            if (inf || parse_value(p->s[j].le, &le) < 0 || !(le > prev_le))
                return p_fail(p, 0, "histogram le not ascending or after +Inf");
            if (p->s[j].value < prev || p->s[j].value != floor(p->s[j].value))
                return p_fail(p, 0, "histogram buckets not cumulative counts");
            prev_le = le;
            prev = p->s[j].value;
            inf = isinf(le);
        }
        if (!inf)
            return p_fail(p, 0, "histogram without a +Inf bucket");
        char cname[160], sname[160];
        snprintf(cname, sizeof cname, "%s_count", f->name);
        snprintf(sname, sizeof sname, "%s_sum", f->name);
        bool has_count = false, has_sum = false;
        for (int k = 0; k < p->n; k++) {
            if (strcmp(p->s[k].rest, b->rest) != 0 || strcmp(p->s[k].labels, b->rest) != 0)
                continue;
            if (strcmp(p->s[k].name, cname) == 0) {
                has_count = true;
                if (p->s[k].value != prev)
                    return p_fail(p, 0, "histogram _count differs from its +Inf bucket");
            }
            has_sum |= strcmp(p->s[k].name, sname) == 0;
        }
        if (!has_count || !has_sum)
            return p_fail(p, 0, "histogram without _count or _sum");
    }
    return 0;
}

/* 0, or -1 with p->err. Strict: no blank lines, no other comments, a
 * newline after the last line. */
static int parse(parsed *p, const char *text)
{
    memset(p, 0, sizeof *p);
    int cur = -1, line = 0;
    const char *s = text;
    if (!*s)
        return 0;
    while (*s) {
        line++;
        const char *nl = strchr(s, '\n');
        if (!nl)
            return p_fail(p, line, "no newline at the end");
        char buf[2048];
        size_t n = (size_t)(nl - s);
        if (n == 0 || n >= sizeof buf)
            return p_fail(p, line, "empty or overlong line");
        memcpy(buf, s, n);
        buf[n] = '\0';
        s = nl + 1;
        bool help = strncmp(buf, "# HELP ", 7) == 0, type = strncmp(buf, "# TYPE ", 7) == 0;
        if (buf[0] == '#' && !help && !type)
            return p_fail(p, line, "a comment that is neither HELP nor TYPE");
        if (!help && !type) {
            if (parse_sample(p, line, buf, cur) < 0)
                return -1;
            continue;
        }
        const char *a = buf + 7;
        size_t k = strcspn(a, " ");
        if (!name_ok(a, k, true) || a[k] != ' ' || k >= 128)
            return p_fail(p, line, "bad name in HELP or TYPE");
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)k, a);
        int f = find_family(p, name);
        if (f < 0) {
            if (p->nf == P_MAX_FAMILIES)
                return p_fail(p, line, "too many families");
            f = p->nf++;
            snprintf(p->f[f].name, sizeof p->f[f].name, "%s", name);
        } else if (f != cur) {
            return p_fail(p, line, "family declared again after others");
        }
        for (int i = 0; i < p->n; i++)
            if (p->s[i].family == f)
                return p_fail(p, line, "HELP or TYPE after the family's samples");
        cur = f;
        const char *rest = a + k + 1;
        if (help) {
            char h[1024];
            if (p->f[f].help || unescape(&rest, h, sizeof h, false) < 0)
                return p_fail(p, line, "HELP repeated or badly escaped");
            p->f[f].help = true;
        } else {
            if (p->f[f].typed)
                return p_fail(p, line, "TYPE repeated");
            if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
                strcmp(rest, "summary") && strcmp(rest, "untyped"))
                return p_fail(p, line, "unknown TYPE");
            p->f[f].typed = true;
            snprintf(p->f[f].type, sizeof p->f[f].type, "%s", rest);
        }
    }
    for (int i = 0; i < p->nf; i++)
        if (!p->f[i].help || !p->f[i].typed)
            return p_fail(p, 0, "a family without HELP or TYPE");
    return check_histograms(p);
}

/* The value of a series (labels as parse writes them), NAN when absent. */
static double value_of(const parsed *p, const char *name, const char *labels)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->s[i].name, name) == 0 && strcmp(p->s[i].labels, labels) == 0)
            return p->s[i].value;
    return NAN;
}

static const char *type_of(const parsed *p, const char *name)
{
    int f = find_family(p, name);
    return f >= 0 ? p->f[f].type : "";
}

static parsed P; /* large: static */

/* Series and the values they must have (in P, parsed last). */
typedef struct expected {
    const char *name, *labels;
    double value;
} expected;

static void expect(const expected *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = value_of(&P, w[i].name, w[i].labels);
        ck_assert_msg(fabs(v - w[i].value) <= 1e-9 * fabs(w[i].value),
                      "%s{%s} is %.17g, not %.17g", w[i].name, w[i].labels, v, w[i].value);
    }
}
#define EXPECT(...)                                                                        \
    do {                                                                                   \
        const expected w_[] = {__VA_ARGS__};                                                   \
        expect(w_, sizeof w_ / sizeof w_[0]);                                              \
    } while (0)

static void parse_ok(const char *text)
{
    ck_assert_msg(parse(&P, text) == 0, "%s in:\n%s", P.err, text);
}

/* ---------------------------------------------------------- the writer */

START_TEST(text_histogram_cumulative)
{
    static const double le[] = {1, 2, 5};
    metrics_hist h;
    metrics_hist_init(&h, le, 3);
    const double obs[] = {0.5, 1 /* on a bound: counts in it */, 1.5, 5, 7, NAN};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        metrics_hist_observe(&h, obs[i]);
    metrics_text t = {0};
    metrics_text_family(&t, "x_seconds", "histogram", "a histogram");
    metrics_label l[] = {{"kind", "a"}};
    metrics_text_histogram(&t, "x_seconds", l, 1, &h);
    ck_assert(!t.failed);
    ck_assert_msg(strstr(t.buf, "x_seconds_bucket{kind=\"a\",le=\"1\"} 2\n") != NULL, "%s",
                  t.buf);
    parse_ok(t.buf);
    EXPECT({"x_seconds_bucket", "kind=a,le=1", 2}, {"x_seconds_bucket", "kind=a,le=2", 3},
           {"x_seconds_bucket", "kind=a,le=5", 4}, {"x_seconds_bucket", "kind=a,le=+Inf", 5},
           {"x_seconds_count", "kind=a", 5}, {"x_seconds_sum", "kind=a", 15});
    metrics_text_free(&t);
}
END_TEST

START_TEST(text_escaping)
{
    const char *raw = "a\\b\"c\nd \xc3\xa9";
    metrics_text t = {0};
    metrics_text_family(&t, "x_total", "counter", "help with \\ and\nnewline and \"quotes\"");
    metrics_label l[] = {{"v", raw}, {"empty", ""}};
    metrics_text_count(&t, "x_total", l, 2, 3);
    ck_assert_str_eq(t.buf, "# HELP x_total help with \\\\ and\\nnewline and \"quotes\"\n"
                            "# TYPE x_total counter\n"
                            "x_total{v=\"a\\\\b\\\"c\\nd \xc3\xa9\",empty=\"\"} 3\n");
    parse_ok(t.buf);
    char want[128];
    snprintf(want, sizeof want, "v=%s,empty=", raw);
    ck_assert_double_eq(value_of(&P, "x_total", want), 3);
    metrics_text_free(&t);
}
END_TEST

/* Numbers read back exactly; integers have no fraction; the format's
 * own spellings of the infinities and NaN. */
START_TEST(text_values)
{
    const double v[] = {0, -0.0, 42, -7, 1e20, 0.1, 1.0 / 3, 2.5e-7, INFINITY, -INFINITY};
    const char *want[] = {"0", "0", "42", "-7", NULL, "0.1", NULL, "2.5e-07", "+Inf", "-Inf"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        metrics_text t = {0};
        metrics_text_sample(&t, "g", NULL, 0, v[i]);
        const char *val = t.buf + 2;
        char copy[64];
        snprintf(copy, sizeof copy, "%.*s", (int)strcspn(val, "\n"), val);
        if (want[i])
            ck_assert_str_eq(copy, want[i]);
        double back;
        ck_assert_int_eq(parse_value(copy, &back), 0);
        ck_assert_msg(back == v[i], "%s does not read back as %.17g", copy, v[i]);
        metrics_text_free(&t);
    }
    metrics_text t = {0};
    metrics_text_sample(&t, "g", NULL, 0, NAN);
    ck_assert_str_eq(t.buf, "g NaN\n");
    metrics_text_free(&t);
    metrics_text_count(&t, "c", NULL, 0, UINT64_MAX);
    ck_assert_str_eq(t.buf, "c 18446744073709551615\n");
    metrics_text_free(&t);
}
END_TEST

/* The parser refuses each broken rule (so that its passes mean something). */
START_TEST(parser_refuses_broken_text)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"a 1\n", "sample before its family's TYPE"},
        {"# HELP a x\n# TYPE a gauge\na 1", "no newline"},
        {"# HELP a x\n# TYPE a gauge\n\na 1\n", "empty"},
        {"# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n", "TYPE repeated"},
        {"# HELP a x\n# TYPE a gauge\na 1\na 2\n", "series repeated"},
        {"# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\na 1\n", "away from"},
        {"# HELP a x\n# TYPE a gauge\na{l=\"x\\t\"} 1\n", "bad label value"},
        {"# HELP a x\n# TYPE a gauge\na{l=\"x} 1\n", "bad label value"},
        {"# HELP a x\n# TYPE a gauge\na{1l=\"x\"} 1\n", "bad label name"},
        {"# HELP a x\n# TYPE a gauge\na{l=\"x\",l=\"y\"} 1\n", "label repeated"},
        {"# HELP a x\n# TYPE a gauge\na inf\n", "bad value"},
        {"# HELP a x\n# TYPE a gauge\na 1 1700000000\n", "timestamp"},
        {"# HELP a x\n# TYPE a frob\n", "unknown TYPE"},
        {"# HELP a x\n", "without HELP or TYPE"},
        {"# a comment\n", "neither HELP nor TYPE"},
        {"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
         "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n", "not cumulative"},
        {"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
         "+Inf"},
        {"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
         "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n", "not ascending"},
        {"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
         "_count differs"},
        {"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n", "without _count"},
        {"# HELP h x\n# TYPE h histogram\nh 1\n", "TYPE"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(parse(&P, bad[i].text) < 0, "accepted:\n%s", bad[i].text);
        ck_assert_msg(strstr(P.err, bad[i].why) != NULL, "'%s' refused for: %s (wanted %s)",
                      bad[i].text, P.err, bad[i].why);
    }
}
END_TEST

/* ---------------------------------------------------------- the registry */

static char *render(const metrics *m, const metrics_now *now)
{
    size_t len = 0;
    char *text = metrics_render(m, now, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(len, strlen(text));
    parse_ok(text);
    return text;
}

START_TEST(registry_requests_by_endpoint_and_status)
{
    metrics *m = metrics_new();
    for (int i = 0; i < 3; i++)
        metrics_request(m, "POST", "/v1/chat/completions", 200);
    metrics_request(m, "POST", "/v1/chat/completions", 400);
    metrics_request(m, "HEAD", "/health", 200);
    metrics_request(m, "BREW", "/health", 405); /* not a known method */
    metrics_request(m, "GET", NULL, 404);         /* no route matched */
    metrics_request(m, "POST", "/v1/chat/completions", 0); /* unanswered */
    metrics_now now = {.in_flight = 2};
    char *text = render(m, &now);
    const char *n = "hearth_http_requests_total";
    ck_assert_str_eq(type_of(&P, n), "counter");
    EXPECT({n, "method=POST,endpoint=/v1/chat/completions,status=200", 3},
           {n, "method=POST,endpoint=/v1/chat/completions,status=400", 1},
           {n, "method=POST,endpoint=/v1/chat/completions,status=none", 1},
           {n, "method=HEAD,endpoint=/health,status=200", 1},
           {n, "method=other,endpoint=/health,status=405", 1},
           {n, "method=GET,endpoint=other,status=404", 1},
           {"hearth_http_requests_in_flight", "", 2});
    free(text);
    /* the series are bounded: past the table's size, one "other" series */
    for (unsigned st = 100; st < 700; st++)
        metrics_request(m, "GET", "/health", st);
    text = render(m, &now);
    int series = 0;
    for (int i = 0; i < P.n; i++)
        series += strcmp(P.s[i].name, n) == 0;
    ck_assert_int_eq(series, 257);
    double other = value_of(&P, n, "method=other,endpoint=other,status=other");
    ck_assert_double_eq(other, 600 + 6 - 256);
    free(text);
    metrics_free(m);
}
END_TEST

static sched_job *job(int n_choices, int n_prompt, int cached)
{
    sched_job *j = sched_job_new(n_choices);
    ck_assert_ptr_nonnull(j);
    j->n_prompt = n_prompt;
    j->cached_tokens = cached;
    return j;
}

#define MS 1000000ull

/* A one-choice job that ended: submitted, first token (0: none) and end
 * in milliseconds, its tokens and how it finished. */
static sched_job *ended(int n_prompt, int cached, uint64_t submit, uint64_t first,
                        uint64_t end, int n_gen, sched_finish f)
{
    sched_job *j = job(1, n_prompt, cached);
    j->t_submit_ns = submit * MS;
    j->t_first_ns = first * MS;
    j->t_done_ns = end * MS;
    j->done = true;
    j->choices[0].n_gen = n_gen;
    j->choices[0].finish = f;
    return j;
}

/* TTFT from arrival to the first token; the mean gap between tokens from
 * the first to the end over (tokens - 1) of the longest choice; tokens as
 * the usage says. */
START_TEST(registry_job_end_tokens_and_times)
{
    metrics *m = metrics_new();
    /* 5 tokens: 4 gaps of 25 ms; arrived 100 ms before its submission */
    sched_job *a = ended(40, 8, 1000, 1300, 1400, 5, SCHED_FINISH_STOP);
    metrics_job_end(m, a, 900 * MS);

    sched_job *b = job(2, 10, 0); /* two choices: 3 and 7 tokens */
    b->t_submit_ns = 2000 * MS;
    b->t_first_ns = 2004 * MS;
    b->t_done_ns = 2010 * MS;
    b->done = true;
    b->choices[0].n_gen = 3;
    b->choices[1].n_gen = 7;
    b->choices[0].finish = SCHED_FINISH_STOP;
    b->choices[1].finish = SCHED_FINISH_LENGTH;
    metrics_job_end(m, b, 0); /* no arrival time: from the submission */

    /* cancelled after 3 tokens: no gap figure */
    sched_job *c = ended(20, 0, 3000, 3020, 3090, 3, SCHED_FINISH_CANCELLED);
    metrics_job_end(m, c, 2990 * MS);
    /* cancelled in the queue: nothing ran */
    sched_job *d = ended(30, 0, 4000, 0, 4001, 0, SCHED_FINISH_CANCELLED);
    metrics_job_end(m, d, 3999 * MS);
    /* one token only: a first token, no gap */
    sched_job *e = ended(12, 0, 5000, 5002, 5002, 1, SCHED_FINISH_STOP);
    metrics_job_end(m, e, 5000 * MS);
    metrics_job_end(NULL, e, 0); /* no registry: nothing happens */

    metrics_now now = {0};
    char *text = render(m, &now);
    const char *t = "hearth_time_to_first_token_seconds";
    ck_assert_str_eq(type_of(&P, t), "histogram");
    const char *tb = "hearth_time_to_first_token_seconds_bucket";
    const char *ib = "hearth_inter_token_latency_seconds_bucket";
    EXPECT({"hearth_prompt_tokens_total", "", 40 + 10 + 20 + 12},
           {"hearth_prompt_tokens_cached_total", "", 8},
           {"hearth_completion_tokens_total", "", 5 + 10 + 3 + 1},
           {"hearth_time_to_first_token_seconds_count", "", 4},
           {"hearth_time_to_first_token_seconds_sum", "", 0.4 + 0.004 + 0.03 + 0.002},
           /* 0.002, 0.004 <= 0.01; 0.03 <= 0.05; 0.4 <= 0.5 */
           {tb, "le=0.01", 2}, {tb, "le=0.025", 2}, {tb, "le=0.05", 3}, {tb, "le=0.25", 3},
           {tb, "le=0.5", 4},
           /* a: 100 ms / 4 = 25 ms; b: 6 ms / 6 = 1 ms */
           {"hearth_inter_token_latency_seconds_count", "", 2},
           {"hearth_inter_token_latency_seconds_sum", "", 0.025 + 0.001},
           {ib, "le=0.001", 1}, {ib, "le=0.01", 1}, {ib, "le=0.025", 2});
    free(text);
    sched_job *all[] = {a, b, c, d, e};
    for (int i = 0; i < 5; i++)
        sched_job_unref(all[i]);
    metrics_free(m);
}
END_TEST

/* A failed job: its tokens count, its gap figure does not. */
START_TEST(registry_job_failed)
{
    metrics *m = metrics_new();
    sched_job *f = ended(16, 0, 10, 20, 90, 4, SCHED_FINISH_ERROR);
    snprintf(f->error, sizeof f->error, "out of memory");
    metrics_job_end(m, f, 10 * MS);
    metrics_now now = {0};
    char *text = render(m, &now);
    EXPECT({"hearth_completion_tokens_total", "", 4},
           {"hearth_time_to_first_token_seconds_count", "", 1},
           {"hearth_inter_token_latency_seconds_count", "", 0});
    free(text);
    sched_job_unref(f);
    metrics_free(m);
}
END_TEST

/* Everything else a scrape shows: the scheduler's gauges and counters,
 * models, memory, the router's decisions by reason (bounded) and the
 * upstreams' results. */
START_TEST(registry_scrape_state)
{
    metrics *m = metrics_new();
    metrics_model_loaded(m, "tiny", 9);
    metrics_model_loaded(m, "tiny", 0.25); /* loaded again: the new figure */
    metrics_model_loaded(m, "we\"ird\\id", 1.5);
    metrics_model_loaded(m, "gone", 2);
    metrics_model_unloaded(m, "gone");
    metrics_model_unloaded(m, "never loaded");

    routing rt = {0};
    routing_count(&rt, ROUTE_TO_LOCAL, "score=0.12");
    routing_count(&rt, ROUTE_TO_CLOUD, "score=0.81");
    routing_count(&rt, ROUTE_TO_CLOUD, "score=0.93");
    routing_count(&rt, ROUTE_TO_REFUSE, "privacy:email");
    routing_count(&rt, ROUTE_TO_LOCAL, "no-upstream");
    char reason[32];
    for (int i = 0; i < ROUTING_MAX_REASONS + 10; i++) { /* more reasons than the table */
        snprintf(reason, sizeof reason, "r%d", i);
        routing_count(&rt, ROUTE_TO_LOCAL, reason);
    }
    ck_assert_uint_eq(rt.n_local, 2 + ROUTING_MAX_REASONS + 10);
    ck_assert_uint_eq(rt.n_cloud, 2);
    ck_assert_uint_eq(rt.n_refused, 1);
    rt.n_fallback = 3;
    upstream_conf uc = {.name = "big"};
    upstream up = {.conf = &uc, .n_ok = 7, .n_failed = 2};
    rt.ups = &up;
    rt.n_ups = 1;

    sched_counters sc = {.running = 2, .queued = 5, .slots_busy = 3, .steps = 11,
                         .tokens = 300, .decode_ns = 1500 * MS};
    metrics_now now = {.sched = &sc, .n_slots = 4, .in_flight = 1, .rt = &rt};
    char *text = render(m, &now);
    EXPECT({"hearth_queue_depth", "", 5}, {"hearth_requests_running", "", 2},
           {"hearth_slots", "", 4}, {"hearth_slots_busy", "", 3},
           {"hearth_forward_passes_total", "", 11}, {"hearth_forward_tokens_total", "", 300},
           {"hearth_forward_seconds_total", "", 1.5}, {"hearth_models_loaded", "", 2},
           {"hearth_model_load_seconds", "model=tiny", 0.25},
           {"hearth_model_load_seconds", "model=we\"ird\\id", 1.5});
    ck_assert(isnan(value_of(&P, "hearth_model_load_seconds", "model=gone")));
    ck_assert(strstr(text, "model=\"we\\\"ird\\\\id\"") != NULL);
    ck_assert_double_gt(value_of(&P, "hearth_resident_memory_bytes", ""), 1 << 20);
    const char *d = "hearth_route_decisions_total";
    /* 4 entries used first: ROUTING_MAX_REASONS - 4 of the r%d, the rest other */
    EXPECT({d, "route=local,reason=score", 1}, {d, "route=cloud,reason=score", 2},
           {d, "route=refused,reason=privacy:email", 1}, {d, "route=local,reason=no-upstream", 1},
           {d, "route=local,reason=r0", 1}, {d, "route=local,reason=r43", 1},
           {d, "route=local,reason=other", 14}, {"hearth_route_fallbacks_total", "", 3},
           {"hearth_cloud_requests_total", "upstream=big,result=ok", 7},
           {"hearth_cloud_requests_total", "upstream=big,result=error", 2});
    ck_assert(isnan(value_of(&P, d, "route=local,reason=r44")));
    free(text);
    /* without a model, upstreams or router: zeros, and no cloud family */
    metrics_now bare = {0};
    text = render(m, &bare);
    EXPECT({"hearth_slots", "", 0}, {"hearth_queue_depth", "", 0});
    ck_assert_int_lt(find_family(&P, "hearth_cloud_requests_total"), 0);
    ck_assert_int_lt(find_family(&P, "hearth_route_decisions_total"), 0);
    free(text);
    metrics_free(m);
}
END_TEST

/* Every family of a fresh registry: its HELP, TYPE, the hearth_ prefix,
 * and counters named _total (and only they). */
START_TEST(registry_names)
{
    metrics *m = metrics_new();
    routing rt = {0};
    upstream_conf uc = {.name = "u"};
    upstream up = {.conf = &uc};
    rt.ups = &up;
    rt.n_ups = 1;
    sched_counters sc = {0};
    metrics_now now = {.sched = &sc, .n_slots = 1, .rt = &rt};
    char *text = render(m, &now);
    ck_assert_int_ge(P.nf, 20);
    for (int i = 0; i < P.nf; i++) {
        const char *n = P.f[i].name;
        size_t len = strlen(n);
        ck_assert_msg(strncmp(n, "hearth_", 7) == 0, "%s", n);
        bool total = len > 6 && strcmp(n + len - 6, "_total") == 0;
        ck_assert_msg(total == (strcmp(P.f[i].type, "counter") == 0), "%s is a %s", n,
                      P.f[i].type);
    }
    free(text);
    metrics_free(m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *t = tcase_create("text");
    tcase_add_test(t, text_histogram_cumulative);
    tcase_add_test(t, text_escaping);
    tcase_add_test(t, text_values);
    tcase_add_test(t, parser_refuses_broken_text);
    suite_add_tcase(s, t);
    TCase *r = tcase_create("registry");
    tcase_add_test(r, registry_requests_by_endpoint_and_status);
    tcase_add_test(r, registry_job_end_tokens_and_times);
    tcase_add_test(r, registry_job_failed);
    tcase_add_test(r, registry_scrape_state);
    tcase_add_test(r, registry_names);
    suite_add_tcase(s, r);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
