/* score.c - see score.h. */
#include "score.h"

#include "nll.h"
#include "prompt.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const feature_names[SF_COUNT] = {
    "prompt_ctx", "length_log", "turns", "code", "math", "multi_step",
    "output_len", "non_latin", "tools", "nll", "battery_low", "thermal", "queue_wait",
};

const char *score_feature_name(score_feature f)
{
    return (unsigned)f < SF_COUNT ? feature_names[f] : NULL;
}

const char *const score_reference_texts[] = {
    "The weather was mild for the time of year, so we walked to the market instead of "
    "taking the bus. On the way we stopped at the bakery on the corner and bought two "
    "loaves of bread and a small cake for the evening.",
    "Could you tell me what time the library opens on Saturday? I would like to return "
    "a few books and borrow something new to read over the weekend.",
    "Thank you for your message. I am happy to help with your question, and I will send "
    "you the details about the meeting tomorrow morning.",
};
const size_t score_n_reference_texts =
    sizeof score_reference_texts / sizeof score_reference_texts[0];

double score_reference_nll(const model *m, model_ctx *c, const chat_template *t,
                           const tok_vocab *v)
{
    double sum = 0;
    int n = 0;
    char err[256];
    for (size_t i = 0; i < score_n_reference_texts; i++) {
        int32_t *ids = NULL;
        chat_msg msg = {.role = "user", .content = score_reference_texts[i]};
        int k = prompt_chat_ids(t, v, &msg, 1, true, NULL, &ids, NULL, err, sizeof err);
        double mean = 0;
        int ns = 0;
        if (k > 1 && nll_prompt(m, c, ids, k, NLL_MAX_SAMPLES, &mean, &ns, err, sizeof err) == 0 &&
            ns > 0) {
            sum += mean;
            n++;
        }
        free(ids);
    }
    return n ? sum / n : 0;
}

/* ---------------------------------------------------------- weights */

/* conf/router-weights.txt, as the build wrote it into router-weights.c */
extern const char score_builtin_weights[];

int score_weights_parse(const char *text, size_t len, score_weights *out, char *err,
                        size_t errlen)
{
    score_weights w = {0};
    bool seen[SF_COUNT + 2] = {0}; /* features, bias, threshold */
    size_t pos = 0;
    int line = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        line++;
        char buf[256];
        size_t n = end - pos;
        if (n >= sizeof buf) {
            snprintf(err, errlen, "line %d: too long", line);
            return -1;
        }
        memcpy(buf, text + pos, n);
        buf[n] = '\0';
        pos = end + 1;
        char *hash = strchr(buf, '#');
        if (hash)
            *hash = '\0';
        char name[64], extra[8];
        double v;
        int k = sscanf(buf, "%63s %lf %7s", name, &v, extra);
        if (k <= 0)
            continue; /* blank */
        if (k != 2 || !isfinite(v)) {
            snprintf(err, errlen, "line %d: expected 'name number'", line);
            return -1;
        }
        int idx = -1;
        for (int f = 0; f < SF_COUNT; f++)
            if (strcmp(name, feature_names[f]) == 0)
                idx = f;
        if (strcmp(name, "bias") == 0)
            idx = SF_COUNT;
        else if (strcmp(name, "threshold") == 0)
            idx = SF_COUNT + 1;
        if (idx < 0) {
            snprintf(err, errlen, "line %d: unknown name '%.60s'", line, name);
            return -1;
        }
        if (seen[idx]) {
            snprintf(err, errlen, "line %d: '%s' given twice", line, name);
            return -1;
        }
        seen[idx] = true;
        if (idx == SF_COUNT)
            w.bias = v;
        else if (idx == SF_COUNT + 1) {
            if (v < 0 || v > 1) {
                snprintf(err, errlen, "line %d: threshold must be in 0..1", line);
                return -1;
            }
            w.threshold = v;
        } else
            w.w[idx] = v;
    }
    for (int i = 0; i < SF_COUNT + 2; i++)
        if (!seen[i]) {
            snprintf(err, errlen, "'%s' is missing",
                     i < SF_COUNT ? feature_names[i] : i == SF_COUNT ? "bias" : "threshold");
            return -1;
        }
    *out = w;
    return 0;
}

void score_weights_builtin(score_weights *out)
{
    char err[128];
    if (score_weights_parse(score_builtin_weights, strlen(score_builtin_weights), out, err,
                            sizeof err) != 0) {
        /* unreachable: test_score parses the built-in file */
        memset(out, 0, sizeof *out);
        out->threshold = 0.5;
    }
}

int score_weights_load(const char *path, score_weights *out, char *err, size_t errlen)
{
    if (!path || !*path) {
        score_weights_builtin(out);
        return 0;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65537, f) : 0;
    fclose(f);
    if (!buf || n > 65536) {
        free(buf);
        snprintf(err, errlen, "%s: %s", path, buf ? "larger than 64 KiB" : "out of memory");
        return -1;
    }
    char why[160];
    int rc = score_weights_parse(buf, n, out, why, sizeof why);
    free(buf);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, why);
    return rc;
}

/* ---------------------------------------------------------- text features */

/* At most this much of the prompt is read for the word features (they
 * saturate long before): the last user message first, then the others. */
#define SCAN_MAX (48 * 1024)

typedef struct word {
    const char *w;
    float hits;
} word;

static const word code_words[] = {
    {"```", 2}, {"def ", 1}, {"function", 1}, {"#include", 2}, {"class ", 0.5f},
    {"import ", 1}, {"return ", 1}, {"console.log", 2}, {"printf", 1.5f},
    {"public static", 2}, {"=>", 0.5f}, {"->", 0.5f}, {"::", 0.5f},
    {"int main", 2}, {"println", 1.5f}, {"async ", 1}, {"await ", 1},
    {"lambda", 1}, {"struct ", 1}, {"typedef", 2}, {"segfault", 2},
    {"stack trace", 2}, {"traceback", 2}, {"exception", 1}, {"compile", 1},
    {"refactor", 2}, {"debug", 1.5f}, {"bug", 1}, {"regex", 1.5f},
    {"algorithm", 1.5f}, {"complexity", 0.5f}, {"python", 1}, {"javascript", 1},
    {"typescript", 1}, {"rust", 0.5f}, {"golang", 1}, {"c++", 1}, {"java", 0.5f},
    {"sql", 1}, {"kotlin", 1}, {"haskell", 1}, {"dockerfile", 1},
    {"kubernetes", 1}, {"endpoint", 0.5f}, {"unit test", 1.5f},
    {"write a function", 2}, {"write a program", 2}, {"write a script", 1.5f},
    {"implement", 1.5f}, {"code", 1}, {"null pointer", 2}, {"race condition", 2},
    {"deadlock", 2}, {"memory leak", 2}, {"git ", 0.5f}, {"api", 0.5f},
    {"database", 0.5f}, {"query", 0.5f}, {"parse", 0.5f}, {"recursion", 1},
};

static const word math_words[] = {
    {"prove", 2}, {"proof", 2}, {"theorem", 2}, {"lemma", 2}, {"integral", 2},
    {"derivative", 2}, {"differentiat", 2}, {"integrate", 1.5f}, {"eigen", 2},
    {"matri", 1}, {"determinant", 2}, {"probability", 1.5f},
    {"expected value", 1.5f}, {"variance", 1}, {"equation", 1},
    {"polynomial", 1.5f}, {"limit of", 1.5f}, {"converge", 1.5f}, {"modulo", 1.5f},
    {"mod ", 0.5f}, {"prime", 1}, {"infinitely many", 2}, {"combinator", 1.5f},
    {"permutation", 1}, {"bayes", 1}, {"logarithm", 1}, {"inequalit", 1.5f},
    {"\\frac", 2}, {"\\int", 2}, {"\\sum", 2}, {"\\sqrt", 2}, {"$$", 1},
    {"\xe2\x88\xab", 2} /* integral */, {"\xe2\x88\x91", 2} /* n-ary sum */,
    {"\xe2\x88\x9a", 1} /* square root */, {"\xe2\x89\xa4", 1} /* le */,
    {"\xe2\x89\xa5", 1} /* ge */, {"\xe2\x89\xa1", 1.5f} /* equiv */,
    {"\xe2\x88\x80", 1.5f} /* forall */, {"\xe2\x88\x83", 1.5f} /* exists */,
    {"^2", 0.5f}, {"^n", 1}, {"f(x)", 1}, {"dy/dx", 2}, {"vector space", 2},
    {"topolog", 2}, {"manifold", 2}, {"group theory", 2}, {"fourier", 1.5f},
    {"laplace", 1.5f}, {"optimiz", 1}, {"lagrang", 2}, {"series", 0.5f},
    {"induction", 1.5f}, {"recurrence", 1.5f}, {"solve for", 1}, {"calculus", 1.5f},
    {"statistic", 1}, {"geometry", 1}, {"triangle", 0.5f}, {"how many ways", 1.5f},
};

static const word step_words[] = {
    {"step by step", 2}, {"step-by-step", 2}, {"first,", 1}, {"then ", 0.5f},
    {"finally", 1}, {"afterwards", 0.5f}, {"compare", 1.5f}, {"contrast", 1},
    {"analy", 1.5f}, {"evaluate", 1}, {"design", 1}, {"plan ", 0.5f},
    {"strategy", 1}, {"architecture", 1.5f}, {"trade-off", 1.5f},
    {"tradeoff", 1.5f}, {"pros and cons", 1.5f}, {"explain why", 1.5f},
    {"reason", 0.5f}, {"justify", 1}, {"derive", 1}, {"walk me through", 1.5f},
    {"break down", 1}, {"what would happen if", 1}, {"assume", 0.5f},
    {"suppose", 1}, {"given that", 1}, {"for each", 1}, {"each of", 0.5f},
    {"optimal", 1}, {"scenario", 0.5f}, {"implications", 1}, {"critique", 1.5f},
};

static const word length_words[] = {
    {"essay", 2}, {"article", 1}, {"report", 1}, {"detailed", 1.5f},
    {"in detail", 1.5f}, {"comprehensive", 2}, {"thorough", 1.5f},
    {"in depth", 1.5f}, {"in-depth", 1.5f}, {"chapter", 1.5f},
    {"blog post", 1.5f}, {"documentation", 1}, {"tutorial", 1.5f},
    {"guide", 1}, {"whitepaper", 2}, {"proposal", 1}, {"pages", 1},
    {"paragraphs", 1}, {"long ", 0.5f}, {"complete", 0.5f}, {"full ", 0.5f},
    {"curriculum", 1.5f}, {"business plan", 2}, {"lesson plan", 1.5f},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static bool is_word_byte(unsigned char c) { return isalnum(c) || c == '_'; }

/* The word lists, indexed by their first byte once (pthread_once), so the
 * text is read in one pass: at each byte only the words that start with
 * it are compared. */
enum { L_CODE, L_MATH, L_STEP, L_LEN, L_COUNT };
#define MAX_ENTRIES 256
typedef struct entry {
    const word *w;
    unsigned char list;
    unsigned char len;
    bool lead; /* starts with a letter: must start a word of the text */
} entry;
static entry entries[MAX_ENTRIES];
static unsigned short first[257]; /* entries of byte b: [first[b], first[b+1]) */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void build_index(void)
{
    static const struct {
        const word *ws;
        size_t n;
    } lists[L_COUNT] = {{code_words, N_OF(code_words)}, {math_words, N_OF(math_words)},
                        {step_words, N_OF(step_words)}, {length_words, N_OF(length_words)}};
    size_t k = 0;
    for (unsigned b = 0; b < 256; b++) {
        first[b] = (unsigned short)k;
        for (unsigned l = 0; l < L_COUNT; l++)
            for (size_t j = 0; j < lists[l].n; j++) {
                const word *w = &lists[l].ws[j];
                if ((unsigned char)w->w[0] != b || k == MAX_ENTRIES)
                    continue;
                entries[k++] = (entry){.w = w, .list = (unsigned char)l,
                                       .len = (unsigned char)strlen(w->w),
                                       .lead = isalpha((unsigned char)w->w[0]) != 0};
            }
    }
    first[256] = (unsigned short)k;
}

/* Weighted occurrences of each list's words in the lowercased text. */
static void count_words(const char *t, size_t n, double hits[L_COUNT])
{
    pthread_once(&index_once, build_index);
    memset(hits, 0, L_COUNT * sizeof *hits);
    const unsigned char *u = (const unsigned char *)t;
    for (size_t i = 0; i < n; i++) {
        unsigned b = u[i];
        unsigned lo = first[b], hi = first[b + 1];
        if (lo == hi)
            continue;
        bool boundary = i == 0 || !is_word_byte(u[i - 1]);
        for (unsigned e = lo; e < hi; e++) {
            const entry *en = &entries[e];
            if ((en->lead && !boundary) || i + en->len > n ||
                memcmp(t + i, en->w->w, en->len) != 0)
                continue;
            hits[en->list] += en->w->hits;
        }
    }
}

static double saturate(double hits, double scale) { return 1.0 - exp(-hits / scale); }

/* Lines that look like code, numbered or bulleted asks, questions. */
typedef struct shape {
    double code_lines, list_lines, questions;
    size_t latin, other; /* letters by script */
    size_t words;
    long asked_words;    /* largest "N words" asked for */
} shape;

static void count_shape(const char *t, size_t n, shape *s)
{
    size_t i = 0;
    while (i < n) {
        size_t b = i, e = i;
        while (e < n && t[e] != '\n')
            e++;
        size_t lead = 0;
        while (b + lead < e && (t[b + lead] == ' ' || t[b + lead] == '\t'))
            lead++;
        size_t last = e;
        while (last > b + lead && (t[last - 1] == ' ' || t[last - 1] == '\r'))
            last--;
        if (last > b + lead) {
            char c = t[last - 1];
            if (c == ';' || c == '{' || c == '}' || (lead >= 4 && c == ':'))
                s->code_lines += 1;
            else if (lead >= 4 || t[b] == '\t')
                s->code_lines += 0.5;
            const char *l = t + b + lead;
            size_t ll = last - b - lead;
            if (ll >= 2 && ((isdigit((unsigned char)l[0]) && (l[1] == '.' || l[1] == ')')) ||
                            ((l[0] == '-' || l[0] == '*') && l[1] == ' ')))
                s->list_lines += 1;
        }
        i = e + 1;
    }
    for (size_t k = 0; k < n; k++)
        if (t[k] == '?')
            s->questions += 1;
    /* "N words" */
    for (size_t k = 0; k + 6 <= n; k++)
        if (memcmp(t + k, " words", 6) == 0) {
            size_t d = k;
            while (d > 0 && isdigit((unsigned char)t[d - 1]))
                d--;
            if (d < k && k - d <= 6) {
                long v = strtol(t + d, NULL, 10);
                if (v > s->asked_words)
                    s->asked_words = v;
            }
        }
}

/* Letters by script: ASCII and Latin-1/Extended-A/B count as Latin;
 * code points from U+0370 on count as other, apart from punctuation,
 * symbols, CJK punctuation, fullwidth forms and emoji. */
static void count_scripts(const char *t, size_t n, shape *s)
{
    const unsigned char *u = (const unsigned char *)t;
    size_t i = 0;
    bool in_word = false;
    while (i < n) {
        unsigned c = u[i];
        if (c < 0x80) {
            if (isalpha(c))
                s->latin++;
            bool space = isspace(c) != 0;
            if (!space && !in_word)
                s->words++;
            in_word = !space;
            i++;
            continue;
        }
        int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (len == 1 || i + (size_t)len > n) {
            i++;
            continue;
        }
        uint32_t cp = c & (0x7Fu >> len);
        for (int k = 1; k < len; k++)
            cp = (cp << 6) | (u[i + (size_t)k] & 0x3Fu);
        i += (size_t)len;
        bool cjk = (cp >= 0x3040 && cp < 0xA000) || (cp >= 0xAC00 && cp < 0xD7B0) ||
                   (cp >= 0x20000 && cp < 0x2FA20);
        if (cjk) { /* ideographs, kana, hangul: a character is a word */
            s->words++;
            in_word = false;
        } else if (!in_word) {
            s->words++;
            in_word = true;
        }
        if (cp < 0x250)
            s->latin += (cp >= 0xC0 && cp != 0xD7 && cp != 0xF7);
        else if (cp >= 0x370 && !(cp >= 0x2000 && cp < 0x2C00) &&
                 !(cp >= 0x3000 && cp < 0x3040) && !(cp >= 0xFF00 && cp < 0xFFF0) &&
                 !(cp >= 0x1E00 && cp < 0x1F00) && cp < 0x1F000)
            s->other++;
        else if (cp >= 0x1E00 && cp < 0x1F00)
            s->latin++; /* Latin Extended Additional (Vietnamese...) */
    }
}

/* The text the word features read: lowercased ASCII (other bytes as
 * they are), the last user message first, then the others, SCAN_MAX in
 * all. Returns the length; *user_turns counts user messages. */
static size_t gather(const api_request *q, char *buf, int *user_turns)
{
    size_t n = 0;
    *user_turns = 0;
    if (q->kind == API_COMPLETION || !q->messages) {
        size_t l = q->prompt ? q->prompt_len : 0;
        if (l > SCAN_MAX)
            l = SCAN_MAX;
        memcpy(buf, q->prompt ? q->prompt : "", l);
        n = l;
    } else {
        size_t last = q->n_messages;
        for (size_t i = 0; i < q->n_messages; i++)
            if (q->messages[i].role == API_ROLE_USER) {
                (*user_turns)++;
                last = i;
            }
        for (size_t pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < q->n_messages && n < SCAN_MAX; i++) {
                if ((pass == 0) != (i == last))
                    continue;
                const api_message *m = &q->messages[i];
                size_t l = m->content_len;
                if (l > SCAN_MAX - n - 1)
                    l = SCAN_MAX - n - 1;
                memcpy(buf + n, m->content, l);
                n += l;
                buf[n++] = '\n';
            }
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)tolower((unsigned char)buf[i]);
    return n;
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

void score_features(const score_input *in, double x[SF_COUNT])
{
    memset(x, 0, SF_COUNT * sizeof *x);
    const api_request *q = in->req;
    int turns = 0;
    char *buf = malloc(SCAN_MAX + 1);
    size_t n = q && buf ? gather(q, buf, &turns) : 0;
    shape s = {0};
    count_shape(buf, n, &s);
    count_scripts(buf, n, &s);

    double np = in->n_prompt > 0 ? in->n_prompt : 0;
    x[SF_PROMPT_CTX] = in->n_ctx > 0 ? clampd(np / in->n_ctx, 0, 2) : 0;
    x[SF_LENGTH_LOG] = clampd(log2(1 + (double)s.words) / 12, 0, 1.5);
    x[SF_TURNS] = turns > 1 ? clampd(log2((double)turns) / 4, 0, 1) : 0;
    double hits[L_COUNT];
    count_words(buf, n, hits);
    x[SF_CODE] = saturate(hits[L_CODE] + s.code_lines / 2, 3);
    x[SF_MATH] = saturate(hits[L_MATH], 2.5);
    double steps = hits[L_STEP] + s.list_lines / 2 +
                   (s.questions > 1 ? (s.questions - 1) / 2 : 0);
    x[SF_MULTI_STEP] = saturate(steps, 4);
    double len = hits[L_LEN];
    if (s.asked_words >= 300)
        len += 2 + (s.asked_words >= 1000 ? 2 : 0);
    double ol = saturate(len, 2);
    if (q && q->max_tokens > 0) {
        double mt = clampd(log2((double)q->max_tokens) / 12, 0, 1) * 0.5;
        if (mt > ol)
            ol = mt;
    }
    x[SF_OUTPUT_LEN] = ol;
    size_t letters = s.latin + s.other;
    free(buf);
    x[SF_NON_LATIN] = letters ? (double)s.other / (double)letters : 0;
    x[SF_TOOLS] = in->tools ? 1 : 0;
    score_set_state(in, x);
}

void score_set_state(const score_input *in, double x[SF_COUNT])
{
    x[SF_NLL] = in->has_nll && isfinite(in->nll_ratio) ? clampd(in->nll_ratio - 1, -1, 3) : 0;
    x[SF_BATTERY_LOW] = in->battery_low ? 1 : 0;
    x[SF_THERMAL] = isfinite(in->thermal) ? clampd(in->thermal, 0, 1) : 0;
    x[SF_QUEUE_WAIT] = in->queue_wait_max > 0 && isfinite(in->queue_wait_s)
                           ? clampd(in->queue_wait_s / in->queue_wait_max, 0, 2)
                           : 0;
}

double score_combine(const score_weights *w, const double x[SF_COUNT], double contrib[SF_COUNT])
{
    double z = w->bias;
    for (int f = 0; f < SF_COUNT; f++) {
        double c = w->w[f] * x[f];
        if (contrib)
            contrib[f] = c;
        z += c;
    }
    return 1.0 / (1.0 + exp(-z));
}

int score_top_feature(const double contrib[SF_COUNT])
{
    int best = -1;
    double bv = 0;
    for (int f = 0; f < SF_COUNT; f++)
        if (contrib[f] > bv) {
            bv = contrib[f];
            best = f;
        }
    return best;
}
