/* tok_bpe.c - byte-level BPE ("gpt2" tokenizer model).
 *
 * Encoding a text fragment takes three steps:
 *
 *  1. Pre-tokenize: the regexes named by tokenizer.ggml.pre split the text
 *     into pieces. They run in sequence; each one splits every piece of the
 *     previous step, and the stretches it does not match stay pieces of
 *     their own (llama.cpp's convention, which the test vectors follow). A
 *     regex sees one piece at a time, so a lookahead stops at its end.
 *  2. Every byte of a piece becomes a printable code point (the GPT-2
 *     byte-to-unicode map), which is the alphabet the vocabulary and the
 *     merges are written in.
 *  3. Starting from single characters, the adjacent pair with the lowest
 *     merge rank is merged until no pair has a rank (ties: leftmost first).
 *     Each final symbol is looked up as a token.
 *
 * The regexes are PCRE2 patterns compiled with UTF and UCP, so \p{L}, \s
 * and friends use PCRE2's Unicode tables; JIT is used when available. Text
 * that is not well-formed UTF-8 has each bad byte replaced by U+FFFD before
 * the split, as llama.cpp does.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "utf8.h"

/* ------------------------------------------------------ byte <-> unicode */

/* GPT-2 maps the 188 printable bytes (! .. ~, ¡ .. ¬, ® .. ÿ) to
 * themselves and the 68 others, in byte order, to U+0100 .. U+0143. */
static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

uint32_t tok_bpe_byte_cp(unsigned b)
{
    if (byte_is_printable(b))
        return b;
    if (b <= 0x20)
        return 0x100 + b;              /* 33 control bytes and space */
    if (b >= 0x7F && b <= 0xA0)
        return 0x100 + 33 + (b - 0x7F); /* DEL, C1 controls, NBSP */
    return 0x100 + 67;                  /* 0xAD, soft hyphen */
}

/* Inverse map: the byte a code point stands for, or -1. */
static int cp_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp <= 0x100 + 32)
        return (int)(cp - 0x100);
    if (cp <= 0x100 + 66)
        return (int)(cp - 0x100 - 33 + 0x7F);
    if (cp == 0x100 + 67)
        return 0xAD;
    return -1;
}

static uint32_t get_cp(const unsigned char *p, size_t n)
{
    switch (n) {
    case 1: return p[0];
    case 2: return ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3: return ((uint32_t)(p[0] & 0x0F) << 12) |
                   ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    default: return ((uint32_t)(p[0] & 0x07) << 18) |
                    ((uint32_t)(p[1] & 0x3F) << 12) |
                    ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    }
}

size_t tok_bpe_decode_text(const char *s, size_t n, char *buf, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, w = 0;
    while (i < n) {
        size_t l = tok_utf8_len(p + i, n - i);
        int b = -1;
        if (l > 0)
            b = cp_byte(get_cp(p + i, l));
        else
            l = 1;
        if (b >= 0) {
            if (w < cap)
                buf[w] = (char)b;
            w++;
        } else {
            /* Not a mapped character (an added token's raw text, say):
             * pass its bytes through unchanged. */
            for (size_t k = 0; k < l; k++, w++)
                if (w < cap)
                    buf[w] = (char)p[i + k];
        }
        i += l;
    }
    return w;
}

/* ------------------------------------------------------ pre-tokenizers */

/* The regexes are transcribed from the tokenizer definitions the names
 * refer to (as listed in llama.cpp's llama-vocab.cpp; where llama.cpp
 * rewrote a pattern for std::regex, the original from the model's
 * tokenizer.json is used, since PCRE2 supports it). */

#define RE_GPT2                                                              \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"      \
    "|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                            \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"              \
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                             \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"                   \
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Qwen 3.5: combining marks stay with their letters. */
#define RE_QWEN35                                                            \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}"           \
    "| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* CJK ideographs, U+0800..U+4E00 and Hangul, as DeepSeek writes them. */
#define RE_DEEPSEEK_CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
/* DeepSeek LLM's letters: the cased-letter ranges of its tokenizer.json,
 * code point for code point. */
#define RE_DEEPSEEK_LLM_LETTERS                                              \
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}"       \
    "\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}"   \
    "\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"     \
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"            \
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}" \
    "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"              \
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}"              \
    "\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"              \
    "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"      \
    "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"     \
    "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"              \
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"              \
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}"      \
    "\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"      \
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}"     \
    "\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"      \
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"               \
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"              \
    "\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"              \
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}"              \
    "\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}"        \
    "\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"        \
    "\\x{1E900}-\\x{1E943}]+"
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"
#define RE_UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_CASED_WORDS(suffix)                                               \
    "[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER "*" RE_LOWER "+" suffix                \
    "|[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER "+" RE_LOWER "*" suffix
#define RE_I_CONTRACTIONS "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"

struct tok_pre {
    const char *const *names;
    const char *re[TOK_MAX_RE];
    bool ignore_merges; /* take a pre-token whole when it is a token */
    bool add_bos;       /* default for tokenizer.ggml.add_bos_token */
    bool no_bos;        /* no BOS unless tokenizer.ggml.bos_token_id says */
};

static const char *const n_default[] = {"default", NULL};
static const char *const n_llama3[] = {"llama3", "llama-v3", "llama-bpe",
    "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", NULL};
static const char *const n_llama3_re[] = {"dbrx", "smaug-bpe", NULL};
static const char *const n_chatglm4[] = {"glm4", "chatglm-bpe", NULL};
static const char *const n_deepseek_llm[] = {"deepseek-llm", NULL};
static const char *const n_deepseek_coder[] = {"deepseek-coder", NULL};
static const char *const n_deepseek3[] = {"deepseek-v3", "hunyuan-dense",
    "joyai-llm", NULL};
static const char *const n_falcon[] = {"falcon", NULL};
static const char *const n_starcoder[] = {"starcoder", "refact",
    "command-r", "smollm", "codeshell", "exaone", "minerva-7b", NULL};
static const char *const n_gpt2[] = {"gpt-2", "phi-2", "jina-es", "jina-de",
    "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
    "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt",
    "olmo", "jais", "trillion", "granite-docling", "exaone4", NULL};
static const char *const n_qwen2[] = {"qwen2", "deepseek-r1-qwen", "kormo",
    "megrez", "stablelm2", "hunyuan", "solar-open", "grok-2", NULL};
static const char *const n_qwen35[] = {"qwen35", NULL};
static const char *const n_poro[] = {"poro-chat", "bloom", "gpt3-finnish",
    NULL};
static const char *const n_viking[] = {"viking", NULL};
static const char *const n_tekken[] = {"tekken", NULL};
static const char *const n_chameleon[] = {"chameleon", NULL};
static const char *const n_gpt4o[] = {"gpt-4o", "llama4", "minimax-m2",
    NULL};
static const char *const n_seed_coder[] = {"seed-coder", NULL};
static const char *const n_bailing[] = {"bailingmoe", "bailingmoe2",
    "llada-moe", NULL};
static const char *const n_exaone_moe[] = {"exaone-moe", NULL};
static const char *const n_tiny_aya[] = {"tiny_aya", NULL};

static const struct tok_pre pre_table[] = {
    {n_default,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
     false, false, false},
    {n_llama3, {RE_LLAMA3}, true, true, false},
    {n_llama3_re, {RE_LLAMA3}, false, false, false},
    {n_chatglm4, {RE_LLAMA3}, false, false, true},
    {n_deepseek_llm,
     {"[\\r\\n]", RE_DEEPSEEK_LLM_LETTERS,
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}"
      "\\x{3000}-\\x{3002}]+",
      "\\s+$", RE_DEEPSEEK_CJK, "\\p{N}+"},
     false, false, false},
    {n_deepseek_coder,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_DEEPSEEK_CJK, "\\p{N}"},
     false, false, false},
    {n_deepseek3,
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
      "|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*"
      "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false, false, false},
    {n_falcon,
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"},
     false, false, false},
    {n_starcoder, {"\\p{N}", RE_GPT2}, false, false, false},
    {n_gpt2, {RE_GPT2}, false, false, false},
    {n_qwen2, {RE_QWEN2}, false, false, false},
    {n_qwen35, {RE_QWEN35}, false, false, false},
    {n_poro, {RE_PORO}, false, false, false},
    {n_viking, {RE_PORO, "\\p{N}"}, false, false, false},
    {n_tekken,
     {RE_CASED_WORDS("") "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
      "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     true, true, false},
    {n_chameleon,
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
      "([\\t\\n]|    |  )", "\\p{N}", "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2},
     false, true, false},
    {n_gpt4o,
     {RE_CASED_WORDS(RE_I_CONTRACTIONS)
      "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+"
      "|\\s+(?!\\S)|\\s+"},
     false, false, false},
    {n_seed_coder,
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}"
      "| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false, false, false},
    {n_bailing,
     {"'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}"
      "| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     false, false, false},
    {n_exaone_moe,
     {"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
      "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}"
      "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     false, false, false},
    {n_tiny_aya,
     {"\\d{1,3}(?=(?:\\d{3})*\\b)",
      RE_CASED_WORDS(RE_I_CONTRACTIONS)
      "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+"
      "|\\s+(?!\\S)|\\s+"},
     false, false, false},
};

static const struct tok_pre *pre_find(const char *name)
{
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++)
        for (const char *const *n = pre_table[i].names; *n; n++)
            if (strcmp(*n, name) == 0)
                return &pre_table[i];
    return NULL;
}

/* ------------------------------------------------------------ merges */

static uint64_t merge_hash(const char *l, size_t ln, const char *r, size_t rn)
{
    /* the left length goes into the hash so ("ab","c") and ("a","bc")
     * land apart */
    return tok_hash(r, rn, tok_hash(l, ln, TOK_HASH_SEED) ^ (ln * 0x9E37u));
}

static int32_t merge_rank(const tok_vocab *v, const char *l, size_t ln,
                          const char *r, size_t rn)
{
    uint64_t h = merge_hash(l, ln, r, rn);
    for (uint32_t i = (uint32_t)h & v->mtab_mask;; i = (i + 1) & v->mtab_mask) {
        uint32_t s = v->mtab[i];
        if (s == 0)
            return -1;
        uint32_t m = s - 1;
        const char *t = v->mpool + v->moff[m];
        size_t tn = v->moff[m + 1] - v->moff[m];
        if (v->mleft[m] == ln && tn == ln + 1 + rn &&
            memcmp(t, l, ln) == 0 && memcmp(t + ln + 1, r, rn) == 0)
            return (int32_t)m;
    }
}

static int load_merges(tok_vocab *v, const gguf_kv *kv, char *err,
                       size_t errlen)
{
    /* ranks are queued as floats: exact below 2^24 */
    if (kv->arr_len > (uint64_t)1 << 24) {
        snprintf(err, errlen, "tokenizer.ggml.merges: %llu merges is too many",
                 (unsigned long long)kv->arr_len);
        return -1;
    }
    int32_t n = (int32_t)kv->arr_len;
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++)
        total += kv->arr_strs[i].len;
    if (total >= UINT32_MAX) {
        snprintf(err, errlen, "tokenizer.ggml.merges: texts too large");
        return -1;
    }
    uint32_t cap = 1;
    while (cap < (uint32_t)n * 2u + 2u)
        cap <<= 1;
    v->mpool = malloc(total ? total : 1);
    v->moff = malloc(((size_t)n + 1) * sizeof *v->moff);
    v->mleft = malloc(((size_t)n + 1) * sizeof *v->mleft);
    v->mtab = calloc(cap, sizeof *v->mtab);
    if (!v->mpool || !v->moff || !v->mleft || !v->mtab) {
        snprintf(err, errlen, "out of memory loading %d merges", (int)n);
        return -1;
    }
    v->mtab_mask = cap - 1;
    uint32_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        gguf_str s = kv->arr_strs[i];
        /* "left right": the separator is the first space after the first
         * byte, so a left part may itself be a space */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp) {
            snprintf(err, errlen,
                     "tokenizer.ggml.merges[%d] has no space between its "
                     "two parts", (int)i);
            return -1;
        }
        size_t ln = (size_t)(sp - s.ptr), rn = s.len - ln - 1;
        v->moff[i] = pos;
        v->mleft[i] = (uint32_t)ln;
        memcpy(v->mpool + pos, s.ptr, s.len);
        pos += (uint32_t)s.len;
        v->moff[i + 1] = pos;
        v->n_merges = i + 1;
        /* a pair listed twice keeps its first (lowest) rank */
        if (merge_rank(v, s.ptr, ln, sp + 1, rn) >= 0)
            continue;
        uint64_t h = merge_hash(s.ptr, ln, sp + 1, rn);
        uint32_t j = (uint32_t)h & v->mtab_mask;
        while (v->mtab[j])
            j = (j + 1) & v->mtab_mask;
        v->mtab[j] = (uint32_t)i + 1;
    }
    return 0;
}

/* ------------------------------------------------------------ setup */

int tok_bpe_setup(tok_vocab *v, const char *pre, const gguf_kv *merges,
                  char *err, size_t errlen)
{
    const struct tok_pre *p = pre_find(pre);
    if (!p) {
        snprintf(err, errlen,
                 "unknown pre-tokenizer '%s' (tokenizer.ggml.pre): its "
                 "splitting rules are not implemented", pre);
        return -1;
    }
    v->pre = p;
    v->ignore_merges = p->ignore_merges;
    if (p->add_bos)
        v->add_bos = true;
    if (p->no_bos)
        v->bos = -1;
    for (int i = 0; i < TOK_MAX_RE && p->re[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile(
            (PCRE2_SPTR)p->re[i], PCRE2_ZERO_TERMINATED,
            PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            snprintf(err, errlen,
                     "pre-tokenizer '%s': regex %d does not compile at "
                     "offset %zu: %s", pre, i, (size_t)eo, (char *)msg);
            return -1;
        }
        /* JIT is an optimisation: without it (no JIT support on this
         * platform) the interpreter runs the same pattern. */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        v->re[v->n_re++] = re;
    }
    return load_merges(v, merges, err, errlen);
}

void tok_bpe_release(tok_vocab *v)
{
    for (int i = 0; i < v->n_re; i++)
        pcre2_code_free(v->re[i]);
    v->n_re = 0;
    free(v->mpool);
    free(v->moff);
    free(v->mleft);
    free(v->mtab);
}

/* ------------------------------------------------------------ encode */

typedef struct span {
    size_t off, len;
} span;

typedef struct spans {
    span *a;
    size_t n, cap;
} spans;

static int spans_push(spans *s, size_t off, size_t len)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        span *na = realloc(s->a, nc * sizeof *na);
        if (!na)
            return -1;
        s->a = na;
        s->cap = nc;
    }
    s->a[s->n].off = off;
    s->a[s->n].len = len;
    s->n++;
    return 0;
}

/* Split every piece of `in` with one regex into `out`: matches and the
 * unmatched stretches between them both become pieces. */
static int split_with(const pcre2_code *re, pcre2_match_data *md,
                      const char *s, const spans *in, spans *out)
{
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        const char *subj = s + in->a[k].off;
        size_t n = in->a[k].len, pos = 0, start = 0;
        while (start < n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)subj, n, start,
                                 PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                rc = pcre2_match(re, (PCRE2_SPTR)subj, n, start,
                                 PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
            if (rc < 0)
                break; /* no (further) match; on a matching-limit error
                        * the rest stays one piece, which is still a
                        * correct (if coarser) split */
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (ms < start || me < ms || me > n)
                break; /* cannot happen with these patterns (no \K) */
            if (me == ms) {
                /* an empty match splits nothing: step one character */
                size_t l = tok_utf8_len((const unsigned char *)subj + ms,
                                        n - ms);
                start = ms + (l ? l : 1);
                continue;
            }
            if (ms > pos && spans_push(out, in->a[k].off + pos, ms - pos))
                return -1;
            if (spans_push(out, in->a[k].off + ms, me - ms))
                return -1;
            pos = start = me;
        }
        if (pos < n && spans_push(out, in->a[k].off + pos, n - pos))
            return -1;
    }
    return 0;
}

typedef struct sym {
    uint32_t start, len; /* bytes in the mapped word */
    int32_t prev, next;
} sym;


typedef struct work {
    char *word;   /* the piece in the mapped alphabet */
    size_t word_cap;
    sym *syms;
    size_t syms_cap;
    tok_queue q;
} work;

static int try_pair(const tok_vocab *v, work *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    const sym *a = &w->syms[l], *b = &w->syms[r];
    int32_t rank = merge_rank(v, w->word + a->start, a->len,
                              w->word + b->start, b->len);
    if (rank < 0)
        return 0;
    tok_bigram bg = {l, r, -(float)rank, a->len, b->len}; /* ranks < 2^24: exact */
    return tok_queue_push(&w->q, bg);
}

static int emit_symbol(const tok_vocab *v, const char *p, size_t n,
                       tok_ids *out)
{
    int32_t id = tok_lookup_text(v, p, n);
    if (id >= 0)
        return tok_ids_push(out, id);
    /* Not a token (a vocabulary without some merge result): fall back to
     * one token per character, i.e. per original byte. A byte the
     * vocabulary has no character for (Falcon lacks some control bytes,
     * StarCoder 0xF1) becomes the unknown token, or is dropped, as
     * llama.cpp drops it, when that is a control token (their
     * <|endoftext|> is unknown, BOS and EOS at once): text never ends the
     * sequence. */
    int32_t unk = v->unk >= 0 && !tok_is_control(v, v->unk) ? v->unk : -1;
    size_t i = 0;
    while (i < n) {
        size_t l = tok_utf8_len((const unsigned char *)p + i, n - i);
        if (!l)
            l = 1;
        id = tok_lookup_text(v, p + i, l);
        if (id < 0)
            id = unk;
        if (id >= 0 && tok_ids_push(out, id))
            return -1;
        i += l;
    }
    return 0;
}

/* BPE on one pre-token (raw bytes p[0..n)). */
static int encode_word(const tok_vocab *v, work *w, const unsigned char *p,
                       size_t n, tok_ids *out)
{
    if (n == 0)
        return 0;
    if (n > UINT32_MAX / 2)
        return -1;
    if (w->word_cap < 2 * n) {
        char *nw = realloc(w->word, 2 * n);
        if (!nw)
            return -1;
        w->word = nw;
        w->word_cap = 2 * n;
    }
    if (w->syms_cap < n) {
        sym *ns = realloc(w->syms, n * sizeof *ns);
        if (!ns)
            return -1;
        w->syms = ns;
        w->syms_cap = n;
    }
    size_t wl = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = utf8_put(tok_bpe_byte_cp(p[i]), w->word + wl);
        w->syms[i].start = (uint32_t)wl;
        w->syms[i].len = (uint32_t)l;
        w->syms[i].prev = (int32_t)i - 1;
        w->syms[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        wl += l;
    }
    if (v->ignore_merges) {
        int32_t id = tok_lookup_text(v, w->word, wl);
        if (id >= 0)
            return tok_ids_push(out, id);
    }
    w->q.n = 0;
    for (size_t i = 1; i < n; i++)
        if (try_pair(v, w, (int32_t)i - 1, (int32_t)i))
            return -1;
    while (w->q.n > 0) {
        tok_bigram b = tok_queue_pop(&w->q);
        sym *l = &w->syms[b.left], *r = &w->syms[b.right];
        /* stale: one side was merged away or grew since it was queued */
        if (l->len != b.llen || r->len != b.rlen || l->next != b.right)
            continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->syms[r->next].prev = b.left;
        if (try_pair(v, w, l->prev, b.left) || try_pair(v, w, b.left, l->next))
            return -1;
    }
    for (int32_t i = 0; i >= 0; i = w->syms[i].next)
        if (emit_symbol(v, w->word + w->syms[i].start, w->syms[i].len, out))
            return -1;
    return 0;
}

/* Copy text, replacing each byte that is not part of a well-formed UTF-8
 * sequence by U+FFFD (PCRE2 in UTF mode requires valid input). */
static char *sanitize(const char *text, size_t len, size_t *out_len)
{
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *s = malloc(len * 3 + 1);
    if (!s)
        return NULL;
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0, w = 0;
    while (i < len) {
        size_t l = tok_utf8_len(p + i, len - i);
        if (l) {
            memcpy(s + w, p + i, l);
            w += l;
            i += l;
        } else {
            memcpy(s + w, "\xEF\xBF\xBD", 3);
            w += 3;
            i++;
        }
    }
    *out_len = w;
    return s;
}

int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len,
                   tok_ids *out)
{
    if (len == 0)
        return 0;
    int rc = -1;
    size_t n = 0;
    char *s = sanitize(text, len, &n);
    spans a = {0}, b = {0};
    work w = {0};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!s || !md || spans_push(&a, 0, n))
        goto done;
    for (int i = 0; i < v->n_re; i++) {
        if (split_with(v->re[i], md, s, &a, &b))
            goto done;
        spans t = a;
        a = b;
        b = t;
    }
    for (size_t k = 0; k < a.n; k++)
        if (encode_word(v, &w, (const unsigned char *)s + a.a[k].off,
                        a.a[k].len, out))
            goto done;
    rc = 0;
done:
    pcre2_match_data_free(md);
    free(s);
    free(a.a);
    free(b.a);
    free(w.word);
    free(w.syms);
    tok_queue_free(&w.q);
    return rc;
}
