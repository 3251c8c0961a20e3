/* The tokenizers of GGUF vocabularies (examples/llama/tokenizer.h):
   byte-level BPE on hand-built vocabularies (merge order, GPT-2's byte
   mapping, every pre-tokenizer rule, special tokens, validation), a
   SentencePiece-style vocabulary, and SmolLM2's vocabulary (read from its
   GGUF through gguf.h) against the ids llama.cpp's llama-tokenize gave
   (tests/vectors/, see its README). The SmolLM2 part needs the model in the
   cache and WikiText-2 in ../shared/data (or $W4A8_DATA); it says when it
   skipped. */
#include <stdlib.h>
#include <string.h>
#include "../examples/llama/llama.h"
#include "test.h"

/* >>tiny: hand-built vocabularies ------------------------------------------ */

/* s written in GPT-2's byte characters (how byte-level vocabularies store
   tokens), into a static ring of buffers. */
static const char *gpt2(const char *s) {
    static char ring[8][64];
    static int k;
    char *o = ring[k++ & 7];
    size_t n = 0;
    for (; *s; s++) n += llama__utf8_put(llama__gpt2_cpt((unsigned char)*s), (unsigned char *)o + n);
    o[n] = '\0';
    return o;
}

/* A byte-level vocabulary: the 256 byte characters (ids 0..255, in byte
   order), then extra[] (GPT-2 characters already), merges "a b" likewise. */
typedef struct tiny {
    const char *tok[300];
    size_t len[300], mlen[16];
    int32_t type[300];
    char store[300][64];
    llama_vocab_desc d;
} tiny;

static void tiny_init(tiny *v, const char *pre, const char *const *extra, size_t n_extra, const char *const *merges,
                      size_t n_merges) {
    size_t i;
    memset(v, 0, sizeof *v);
    for (i = 0; i < 256 + n_extra; i++) {
        if (i < 256) {
            char b[2];
            b[0] = (char)i, b[1] = 0;
            strcpy(v->store[i], i ? gpt2(b) : "\xC4\x80"); /* byte 0: U+0100 */
        } else {
            strcpy(v->store[i], extra[i - 256]);
        }
        v->tok[i] = v->store[i];
        v->len[i] = strlen(v->store[i]);
        v->type[i] = LLAMA_TOKEN_NORMAL;
    }
    for (i = 0; i < n_merges; i++) v->mlen[i] = strlen(merges[i]);
    v->d.model = "gpt2", v->d.pre = pre;
    v->d.n_tokens = 256 + n_extra;
    v->d.tokens = v->tok, v->d.token_lens = v->len, v->d.token_types = v->type;
    v->d.n_merges = n_merges, v->d.merges = merges, v->d.merge_lens = v->mlen;
    v->d.bos = v->d.eos = v->d.unk = v->d.pad = -1;
    v->d.add_bos = v->d.add_eos = 0;
}

/* Tokenizes text and compares with want[n] (-1 ends it). */
static int ids_are(const llama_tokenizer *t, const char *text, int add_special, int parse_special, const int *want) {
    int *ids = NULL, ok;
    size_t n = 0, m = 0;
    if (llama_tokenize(t, text, strlen(text), add_special, parse_special, &ids, &n) != LLAMA_OK) return 0;
    while (want[m] >= 0) m++;
    ok = n == m && memcmp(ids, want, n * sizeof(int)) == 0;
    if (!ok) {
        size_t i;
        printf("    got");
        for (i = 0; i < n; i++) printf(" %d", ids[i]);
        printf("\n");
    }
    free(ids);
    return ok;
}

static void test_bpe_byte_mapping(void) {
    uint32_t seen[0x200];
    unsigned b;
    memset(seen, 0, sizeof seen);
    for (b = 0; b < 256; b++) {
        uint32_t c = llama__gpt2_cpt(b);
        CHECK(c >= 0x21 && c <= 0x143 && !seen[c]);
        seen[c] = 1;
        CHECK(llama__gpt2_byte(c) == (int)b);
        CHECK((c == b) == (llama__gpt2_printable(b) != 0));
    }
    CHECK(llama__gpt2_cpt(' ') == 0x120 && llama__gpt2_cpt('\n') == 0x10A); /* Ġ, Ċ */
    CHECK(llama__gpt2_cpt(0) == 0x100 && llama__gpt2_cpt(0xAD) == 0x143);
    CHECK(llama__gpt2_byte(0x20) == -1 && llama__gpt2_byte(0x144) == -1);
}

/* Every byte of valid UTF-8 becomes its byte character's token, and back. */
static void test_bpe_byte_roundtrip(void) {
    static tiny v;
    llama_tokenizer t;
    char text[400], *back = NULL;
    int *ids = NULL;
    size_t n = 0, i, len = 0, blen = 0;
    tiny_init(&v, "gpt-2", NULL, 0, NULL, 0);
    CHECK_LL(llama_tokenizer_from_vocab(&v.d, &t), LLAMA_OK);
    for (i = 1; i < 128; i++) text[len++] = (char)i;
    memcpy(text + len, "\0caf\xC3\xA9 \xE4\xB8\xAD\xF0\x9F\x98\x80\xED\xA0\x80", 18); /* NUL, é, 中, 😀, a surrogate */
    len += 18;
    CHECK_LL(llama_tokenize(&t, text, len, 1, 1, &ids, &n), LLAMA_OK);
    CHECK(n == len);
    for (i = 0; i < n && i < len; i++) CHECK(ids[i] == (unsigned char)text[i] && t.byte_id[(unsigned char)text[i]] == ids[i]);
    CHECK_LL(llama_detokenize(&t, ids, n, 1, &back, &blen), LLAMA_OK);
    CHECK(back && blen == len && memcmp(back, text, len) == 0);
    free(ids), free(back);
    /* invalid UTF-8: llama.cpp's U+FFFD per byte, which is what comes back */
    CHECK_LL(llama_tokenize(&t, "a\xFF" "b\xC3", 4, 0, 0, &ids, &n), LLAMA_OK);
    CHECK_LL(llama_detokenize(&t, ids, n, 0, &back, &blen), LLAMA_OK);
    CHECK(back && blen == 8 && memcmp(back, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD", 8) == 0);
    free(ids), free(back);
    /* above U+10FFFF llama.cpp throws; here a status */
    CHECK_LL(llama_tokenize(&t, "\xF5\x80\x80\x80", 4, 0, 0, &ids, &n), LLAMA_ERR_TEXT);
    llama_tokenizer_free(&t);
}

/* Merges apply lowest rank first, leftmost first among equal ranks. */
static void test_bpe_merge_order(void) {
    static tiny v;
    static const char *extra[] = { "ab", "bc", "abc", "aa", "aaaa" };
    static const char *m_bc_first[] = { "b c", "a b", "a bc" }, *m_ab_first[] = { "a b", "b c" };
    static const char *m_aa[] = { "a a", "aa aa" };
    static const int want_a_bc[] = { 'a', 257, -1 }, want_abc[] = { 258, -1 }, want_ab_c[] = { 256, 'c', -1 };
    static const int want_aa[] = { 259, 'a', -1 }, want_aaaa[] = { 260, 259, -1 };
    llama_tokenizer t;
    tiny_init(&v, "gpt-2", extra, 5, m_bc_first, 2);
    CHECK_LL(llama_tokenizer_from_vocab(&v.d, &t), LLAMA_OK);
    CHECK(ids_are(&t, "abc", 0, 0, want_a_bc)); /* "b c" outranks "a b"; "a bc" is no merge */
    llama_tokenizer_free(&t);
    tiny_init(&v, "gpt-2", extra, 5, m_bc_first, 3);
    CHECK_LL(llama_tokenizer_from_vocab(&v.d, &t), LLAMA_OK);
    CHECK(ids_are(&t, "abc", 0, 0, want_abc));
    llama_tokenizer_free(&t);
    tiny_init(&v, "gpt-2", extra, 5, m_ab_first, 2);
    CHECK_LL(llama_tokenizer_from_vocab(&v.d, &t), LLAMA_OK);
    CHECK(ids_are(&t, "abc", 0, 0, want_ab_c));
    llama_tokenizer_free(&t);
    tiny_init(&v, "gpt-2", extra, 5, m_aa, 2);
    CHECK_LL(llama_tokenizer_from_vocab(&v.d, &t), LLAMA_OK);
    CHECK(ids_are(&t, "aaa", 0, 0, want_aa));      /* leftmost pair first */
    CHECK(ids_are(&t, "aaaaaa", 0, 0, want_aaaa)); /* aa aa aa -> aaaa aa */
    llama_tokenizer_free(&t);
}

/* Long words merge in O(n log n): a 200,000-byte word of one letter. */
static void test_bpe_long_word(void) {
    static tiny v;
    static const char *extra[] = { "aa", "aaaa" }, *merges[] = { "a a", "aa aa" };
    llama_tokenizer t;
    char *text = (char *)malloc(200001);
    int *ids = NULL;
    size_t n = 0, i;
    tiny_init(&v, "gpt-2", extra, 2, merges, 2);
    CHECK_LL(llama_tokenizer_from_vocab(&v.d, &t), LLAMA_OK);
    memset(text, 'a', 200001);
    CHECK_LL(llama_tokenize(&t, text, 200001, 0, 0, &ids, &n), LLAMA_OK);
    CHECK(n == 50001 && ids[50000] == 'a');
    for (i = 0; i < 50000 && i < n; i++) CHECK(ids[i] == 257);
    free(ids), free(text);
    llama_tokenizer_free(&t);
}

/* The words a pre-tokenizer cuts text into, joined by '|'. */
static const char *words(int pre, const char *text) {
    static char out[512];
    uint32_t c[128];
    unsigned char f[128], u[4];
    size_t ends[128], n = 0, i, len = strlen(text), nw, a = 0, o = 0, k;
    for (i = 0; i < len && n < 128; n++) {
        c[n] = llama__utf8_next((const unsigned char *)text, len, &i);
        f[n] = (unsigned char)llama__cpt_class(c[n]);
    }
    nw = llama__pretokenize(pre, c, f, n, ends);
    for (i = 0; i < nw; a = ends[i++]) {
        if (i) out[o++] = '|';
        for (k = a; k < ends[i]; k++) {
            size_t m = llama__utf8_put(c[k], u);
            memcpy(out + o, u, m);
            o += m;
        }
    }
    out[o] = '\0';
    return out;
}

static void test_bpe_pretokenizers(void) {
    /* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "Hello world"), "Hello| world"));
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "it's we're they've I'll he'd don't I'm"),
                  "it|'s| we|'re| they|'ve| I|'ll| he|'d| don|'t| I|'m"));
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "IT'S"), "IT|'|S")); /* case-sensitive */
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, " 123 abc!! $100"), " 123| abc|!!| $|100"));
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "a  b"), "a| | b"));    /* \s+(?!\S) leaves one space */
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "a  "), "a|  "));       /* at the end, all of it */
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "x\n\ny"), "x|\n|\n|y"));
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "x\t\ty"), "x|\t|\t|y")); /* only a space joins the next word */
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "caf\xC3\xA9 \xC3\xB1u"), "caf\xC3\xA9| \xC3\xB1u")); /* é ñ are \p{L} */
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "x\xE3\x80\x80y"), "x|\xE3\x80\x80|y"));            /* U+3000 is \s */
    CHECK(!strcmp(words(LLAMA_PRE_GPT2, "'x"), "'|x"));
    /* smollm: \p{N} alone first, then GPT-2 within the pieces */
    CHECK(!strcmp(words(LLAMA_PRE_SMOLLM, "abc123"), "abc|1|2|3"));
    CHECK(!strcmp(words(LLAMA_PRE_SMOLLM, "a 12 b"), "a| |1|2| b"));
    CHECK(!strcmp(words(LLAMA_PRE_SMOLLM, "x\xD9\xA3y\xC2\xB2"), "x|\xD9\xA3|y|\xC2\xB2")); /* ٣ and ² are \p{N} */
    CHECK(!strcmp(words(LLAMA_PRE_SMOLLM, "it's  ok"), "it|'s| | ok"));
    /* Llama-3: (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    CHECK(!strcmp(words(LLAMA_PRE_LLAMA3, "abc1234567"), "abc|123|456|7"));
    CHECK(!strcmp(words(LLAMA_PRE_LLAMA3, "IT'S we'RE"), "IT|'S| we|'RE"));
    CHECK(!strcmp(words(LLAMA_PRE_LLAMA3, ":abc $x"), ":abc| $|x"));
    CHECK(!strcmp(words(LLAMA_PRE_LLAMA3, "hi!!\n\nok"), "hi|!!\n\n|ok"));
    CHECK(!strcmp(words(LLAMA_PRE_LLAMA3, "x\n\ny"), "x|\n\n|y"));
    CHECK(!strcmp(words(LLAMA_PRE_LLAMA3, "a \n b"), "a| \n| b"));
    CHECK(!strcmp(words(LLAMA_PRE_LLAMA3, "a  b"), "a| | b"));
    CHECK(!strcmp(words(LLAMA_PRE_LLAMA3, "a \t"), "a| \t"));
}

/* The class tables: the ASCII shortcut agrees with them, and a few code
   points of each class. */
static void test_bpe_unicode_classes(void) {
    uint32_t c;
    for (c = 0; c < 128; c++) {
        unsigned f = (llama__in_ranges(llama__unicode_letter, sizeof llama__unicode_letter / sizeof llama__unicode_letter[0], c) ? LLAMA__CL : 0) |
                     (llama__in_ranges(llama__unicode_number, sizeof llama__unicode_number / sizeof llama__unicode_number[0], c) ? LLAMA__CN : 0);
        size_t i;
        for (i = 0; i < sizeof llama__unicode_space / sizeof llama__unicode_space[0]; i++)
            if (llama__unicode_space[i] == c) f |= LLAMA__CS;
        CHECK(llama__cpt_class(c) == f);
    }
    CHECK(llama__cpt_class(0xE9) == LLAMA__CL && llama__cpt_class(0x4E2D) == LLAMA__CL);
    CHECK(llama__cpt_class(0x663) == LLAMA__CN && llama__cpt_class(0xB2) == LLAMA__CN && llama__cpt_class(0x216B) == LLAMA__CN);
    CHECK(llama__cpt_class(0x3000) == LLAMA__CS && llama__cpt_class(0xA0) == LLAMA__CS && llama__cpt_class(0x85) == LLAMA__CS);
    CHECK(llama__cpt_class(0x1F600) == 0 && llama__cpt_class(0x10FFFF) == 0 && llama__cpt_class(0x2C) == 0);
    CHECK(llama__cpt_class(0x11F04) == LLAMA__CL); /* Kawi, new in Unicode 15.0: llama.cpp has it */
    CHECK(strcmp(LLAMA_UNICODE_VERSION, "15.1.0") == 0);
}

/* Control tokens only with parse_special, user-defined ones always, the
   longest first; BOS/EOS as the vocabulary asks. */
static void test_bpe_special(void) {
    static tiny v;
    static const char *extra[] = { "<s>", "<u>", "<s>x" };
    static const int with[] = { 'a', 256, 'b', 257, 'c', 258, -1 };
    static const int without[] = { 'a', '<', 's', '>', 'b', 257, 'c', '<', 's', '>', 'x', -1 };
    static const int bos_eos[] = { 256, 'a', 258, -1 }, plain[] = { 'a', -1 };
    llama_tokenizer t;
    const char *s = NULL;
    size_t len = 99;
    tiny_init(&v, "gpt-2", extra, 3, NULL, 0);
    v.type[256] = v.type[258] = LLAMA_TOKEN_CONTROL, v.type[257] = LLAMA_TOKEN_USER_DEFINED;
    v.d.bos = 256, v.d.eos = 258, v.d.add_bos = 1, v.d.add_eos = 1;
    CHECK_LL(llama_tokenizer_from_vocab(&v.d, &t), LLAMA_OK);
    CHECK(ids_are(&t, "a<s>b<u>c<s>x", 0, 1, with));
    CHECK(ids_are(&t, "a<s>b<u>c<s>x", 0, 0, without));
    CHECK(ids_are(&t, "a", 1, 0, bos_eos));
    CHECK(ids_are(&t, "a", 0, 0, plain));
    CHECK_LL(llama_token_piece(&t, 256, 1, &s, &len), LLAMA_OK);
    CHECK(len == 3 && memcmp(s, "<s>", 3) == 0);
    CHECK_LL(llama_token_piece(&t, 256, 0, &s, &len), LLAMA_OK);
    CHECK(len == 0);
    CHECK_LL(llama_token_piece(&t, 257, 0, &s, &len), LLAMA_OK);
    CHECK(len == 3);
    CHECK_LL(llama_token_piece(&t, 259, 0, &s, &len), LLAMA_ERR_TOKEN);
    CHECK_LL(llama_token_piece(&t, -1, 0, &s, &len), LLAMA_ERR_TOKEN);
    llama_tokenizer_free(&t);
    /* llama-bpe adds BOS by default; a word that is a token skips the merges */
    tiny_init(&v, "llama-bpe", extra, 3, NULL, 0);
    v.d.bos = 256, v.d.add_bos = -1;
    CHECK_LL(llama_tokenizer_from_vocab(&v.d, &t), LLAMA_OK);
    CHECK(t.add_bos == 1 && t.ignore_merges == 1);
    llama_tokenizer_free(&t);
}

static void test_bpe_validation(void) {
    static tiny v;
    static const char *extra[] = { "ab" }, *bad_missing[] = { "a x\xC4\x80" }, *bad_space[] = { "ab" };
    static const char *bad_result[] = { "b a" }, *ok_merge[] = { "a b", "a b" };
    llama_tokenizer t;
    memset(&t, 0, sizeof t);
#define TINY_EXPECT(want)                                                                          \
    do {                                                                                           \
        llama_tokenizer t_;                                                                        \
        t_.vocab_size = 12345;                                                                     \
        CHECK_LL(llama_tokenizer_from_vocab(&v.d, &t_), want);                                   \
        if ((want) == LLAMA_OK) llama_tokenizer_free(&t_);                                          \
        else CHECK(t_.vocab_size == 12345); /* untouched */                                        \
    } while (0)
    tiny_init(&v, "gpt-2", extra, 1, ok_merge, 2);
    TINY_EXPECT(LLAMA_OK); /* a repeated merge keeps its first rank */
    v.d.model = "bert";
    TINY_EXPECT(LLAMA_ERR_VOCAB_MODEL);
    v.d.model = "gpt2", v.d.pre = "qwen2";
    TINY_EXPECT(LLAMA_ERR_VOCAB_MODEL);
    v.d.pre = NULL;
    TINY_EXPECT(LLAMA_ERR_VOCAB_MODEL);
    tiny_init(&v, "gpt-2", extra, 1, bad_missing, 1);
    TINY_EXPECT(LLAMA_ERR_VOCAB_MERGE);
    tiny_init(&v, "gpt-2", extra, 1, bad_space, 1);
    TINY_EXPECT(LLAMA_ERR_VOCAB_MERGE);
    tiny_init(&v, "gpt-2", extra, 1, bad_result, 1);
    TINY_EXPECT(LLAMA_ERR_VOCAB_MERGE);
    tiny_init(&v, "gpt-2", extra, 1, NULL, 0);
    v.d.n_merges = 1; /* merges NULL */
    TINY_EXPECT(LLAMA_ERR_VOCAB_MERGE);
    tiny_init(&v, "gpt-2", extra, 1, NULL, 0);
    v.len[256] = 3; /* "ab\0" */
    TINY_EXPECT(LLAMA_ERR_VOCAB_TOKEN);
    v.len[256] = 0;
    TINY_EXPECT(LLAMA_ERR_VOCAB_TOKEN);
    v.len[256] = 1; /* "a" again: repeated */
    TINY_EXPECT(LLAMA_ERR_VOCAB_TOKEN);
    v.len[256] = 2, v.type[3] = 7;
    TINY_EXPECT(LLAMA_ERR_VOCAB_TOKEN);
    v.type[3] = LLAMA_TOKEN_NORMAL, v.d.bos = 257;
    TINY_EXPECT(LLAMA_ERR_VOCAB_SPECIAL);
    v.d.bos = -2;
    TINY_EXPECT(LLAMA_ERR_VOCAB_SPECIAL);
    v.d.bos = -1, v.d.add_bos = 2;
    TINY_EXPECT(LLAMA_ERR_VOCAB_SPECIAL);
    v.d.add_bos = 1, v.d.n_tokens = 11; /* BOS asked for, none given, the default 11 absent */
    TINY_EXPECT(LLAMA_ERR_VOCAB_SPECIAL);
    v.d.n_tokens = 0;
    TINY_EXPECT(LLAMA_ERR_VOCAB_TOKEN);
    CHECK_LL(llama_tokenizer_from_vocab(NULL, &t), LLAMA_ERR_ARG);
    CHECK_LL(llama_tokenizer_from_vocab(&v.d, NULL), LLAMA_ERR_ARG);
    {
        int *ids;
        size_t n;
        CHECK_LL(llama_tokenize(&t, "a", 1, 0, 0, &ids, &n), LLAMA_ERR_ARG); /* an empty tokenizer */
        CHECK_LL(llama_tokenize(NULL, "a", 1, 0, 0, &ids, &n), LLAMA_ERR_ARG);
    }
#undef TINY_EXPECT
}

/* >>spm: a SentencePiece-style ("llama") vocabulary ------------------------ */

static void test_bpe_spm(void) {
    static char store[300][16];
    static const char *words_[] = { "\xE2\x96\x81", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "or", "ld", "llo",
                                    "hello", "\xE2\x96\x81hello", "\xE2\x96\x81w", "\xE2\x96\x81wor", "\xE2\x96\x81world" };
    static const float word_scores[] = { 0, 0, 0, 0, 0, 0, 0, 0, 10, 10, 10, 10, 9, 8, 7, 5, 4, 3 };
    const char *tok[300];
    size_t len[300], i, n_tok = 3 + 256 + 18, blen;
    float scores[300];
    int32_t type[300];
    llama_vocab_desc d;
    llama_tokenizer t;
    char *back;
    int *ids;
    size_t n;
    static const int want[] = { 1, 3 + 256 + 14, 3 + 256 + 17, -1 };
    static const int want_bytes[] = { 3 + 256 + 0, 3 + 256 + 1, 3 + 0xC3, 3 + 0xA9, -1 };
    static const int want_special[] = { 3 + 256 + 14, 2, 3 + 256 + 14, -1 };
    strcpy(store[0], "<unk>"), strcpy(store[1], "<s>"), strcpy(store[2], "</s>");
    for (i = 0; i < n_tok; i++) {
        if (i >= 3 && i < 259) sprintf(store[i], "<0x%02X>", (unsigned)(i - 3));
        if (i >= 259) strcpy(store[i], words_[i - 259]);
        tok[i] = store[i], len[i] = strlen(store[i]);
        scores[i] = i >= 259 ? word_scores[i - 259] : 0;
        type[i] = i == 0 ? LLAMA_TOKEN_UNKNOWN : i < 3 ? LLAMA_TOKEN_CONTROL : i < 259 ? LLAMA_TOKEN_BYTE : LLAMA_TOKEN_NORMAL;
    }
    memset(&d, 0, sizeof d);
    d.model = "llama", d.n_tokens = n_tok, d.tokens = tok, d.token_lens = len, d.scores = scores, d.token_types = type;
    d.bos = d.eos = d.unk = d.pad = -1, d.add_bos = d.add_eos = -1; /* llama.cpp's defaults: BOS 1, EOS 2 */
    CHECK_LL(llama_tokenizer_from_vocab(&d, &t), LLAMA_OK);
    CHECK(t.kind == LLAMA_VOCAB_SPM && t.bos == 1 && t.eos == 2 && t.add_bos == 1 && t.add_eos == 0);
    CHECK(ids_are(&t, "hello world", 1, 1, want));
    CHECK_LL(llama_tokenize(&t, "hello world", 11, 0, 0, &ids, &n), LLAMA_OK);
    CHECK_LL(llama_detokenize(&t, ids, n, 0, &back, &blen), LLAMA_OK);
    CHECK(blen == 12 && memcmp(back, " hello world", 12) == 0); /* the dummy prefix shows */
    free(ids), free(back);
    CHECK(ids_are(&t, "h\xC3\xA9", 0, 0, want_bytes)); /* é is not a piece: its bytes */
    CHECK_LL(llama_tokenize(&t, "h\xC3\xA9", 3, 0, 0, &ids, &n), LLAMA_OK);
    CHECK_LL(llama_detokenize(&t, ids, n, 0, &back, &blen), LLAMA_OK);
    CHECK(blen == 4 && memcmp(back, " h\xC3\xA9", 4) == 0);
    free(ids), free(back);
    /* a special token in the text; the piece after it gets the prefix again */
    CHECK(ids_are(&t, "hello</s>hello", 0, 1, want_special));
    llama_tokenizer_free(&t);
}

/* >>smollm2: against llama.cpp's own ids ----------------------------------- */

/* The ints of a file like "[1, 2, 3]", from malloc, or NULL. */
static int *read_ids(const char *path, size_t *n) {
    char *buf, *p;
    size_t bytes, cap = 1024;
    int *v;
    if (llama__read_file(path, (size_t)64 << 20, &buf, &bytes) != LLAMA_OK) return NULL;
    v = (int *)malloc(cap * sizeof(int));
    for (*n = 0, p = buf; v && *p;) {
        if (*p < '0' || *p > '9') {
            p++;
            continue;
        }
        if (*n == cap) v = (int *)realloc(v, (cap *= 2) * sizeof(int));
        if (v) v[(*n)++] = (int)strtol(p, &p, 10);
    }
    free(buf);
    return v;
}

/* tokenize(path text) == the ids in vectors file want_path, and for valid
   UTF-8 detokenize gives the text back. */
static void check_vector(const llama_tokenizer *t, const char *text_path, const char *want_path, int parse_special,
                         int roundtrip) {
    char *text, *back = NULL;
    size_t bytes, n = 0, m = 0, blen;
    int *ids = NULL, *want = read_ids(want_path, &m);
    CHECK(want != NULL);
    CHECK(llama__read_file(text_path, (size_t)1 << 20, &text, &bytes) == LLAMA_OK);
    if (!want || !text) return;
    CHECK_LL(llama_tokenize(t, text, bytes, 1, parse_special, &ids, &n), LLAMA_OK);
    CHECK(n == m && memcmp(ids, want, n * sizeof(int)) == 0);
    if (roundtrip) {
        CHECK_LL(llama_detokenize(t, ids, n, 1, &back, &blen), LLAMA_OK);
        CHECK(back && blen == bytes && memcmp(back, text, bytes) == 0);
    }
    free(text), free(ids), free(want), free(back);
}

/* The whole WikiText-2 test text: count, FNV-1a 64 of the ids (as
   little-endian int32), first and last 200, as the summary file says. */
static void check_wikitext(const llama_tokenizer *t, const char *wiki, size_t bytes, const char *summary_path) {
    char *sum, *p, *back = NULL;
    size_t sbytes, n = 0, count, i, blen;
    unsigned long long want_hash, h = 0xcbf29ce484222325ull;
    int *ids = NULL;
    CHECK(llama__read_file(summary_path, (size_t)1 << 20, &sum, &sbytes) == LLAMA_OK);
    if (!sum) return;
    CHECK(sscanf(sum, "count %zu\nfnv1a64 %llx", &count, &want_hash) == 2);
    CHECK_LL(llama_tokenize(t, wiki, bytes, 1, 1, &ids, &n), LLAMA_OK);
    for (i = 0; i < n; i++) {
        uint32_t u = (uint32_t)ids[i];
        int k;
        for (k = 0; k < 4; k++) h = (h ^ ((u >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
    }
    CHECK(n == count && h == want_hash);
    p = strstr(sum, "first200 ");
    for (i = 0, p = p ? p + 9 : NULL; p && i < 200 && i < n; i++) CHECK(ids[i] == (int)strtol(p, &p, 10));
    p = strstr(sum, "last200 ");
    for (i = 0, p = p ? p + 8 : NULL; p && i < 200 && n >= 200; i++) CHECK(ids[n - 200 + i] == (int)strtol(p, &p, 10));
    CHECK_LL(llama_detokenize(t, ids, n, 1, &back, &blen), LLAMA_OK);
    CHECK(back && blen == bytes && memcmp(back, wiki, bytes) == 0);
    free(sum), free(ids), free(back);
}

static void test_bpe_smollm2(void) {
    const char *env = getenv("W4A8_SMOLLM2"), *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    const char *data = getenv("W4A8_DATA");
    static const char *pres[] = { "smollm", "llama-bpe", "gpt-2" };
    char path[1200], wpath[1200], vec[256], vec2[256];
    char *wiki = NULL;
    size_t wbytes = 0, p;
    llama_gguf *g = NULL;
    llama_vocab_desc d;
    FILE *probe;
    if (env && *env) snprintf(path, sizeof path, "%s", env);
    else if (cache && *cache) snprintf(path, sizeof path, "%s/w4a8/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else snprintf(path, sizeof path, "%s/.cache/w4a8/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
    if (!(probe = fopen("tests/vectors/smollm2_special.txt", "rb"))) {
        printf("bpe smollm2: skipped: no tests/vectors (run from the repository root)\n");
        return;
    }
    fclose(probe);
    if (llama_gguf_open(path, &g) != LLAMA_OK) {
        printf("bpe smollm2: skipped: no model at %s (tools/fetch_model.sh fetches it)\n", path);
        return;
    }
    snprintf(wpath, sizeof wpath, "%s/wikitext2_test_raw.txt", data && *data ? data : "../shared/data");
    if (llama__read_file(wpath, (size_t)64 << 20, &wiki, &wbytes) != LLAMA_OK)
        printf("bpe smollm2: WikiText-2 part skipped: no %s (set W4A8_DATA)\n", wpath);
    CHECK_LL(llama_vocab_desc_from_gguf(g, &d), LLAMA_OK);
    CHECK(d.n_tokens == 49152 && d.n_merges == 48900 && d.pre && strcmp(d.pre, "smollm") == 0);
    for (p = 0; p < 3; p++) {
        llama_tokenizer t;
        d.pre = pres[p]; /* the vectors of the other two came from copies with tokenizer.ggml.pre rewritten */
        CHECK_LL(llama_tokenizer_from_vocab(&d, &t), LLAMA_OK);
        if (!t.pieces) continue;
        CHECK(t.add_bos == 0 && t.n_special == 17 && t.type[0] == LLAMA_TOKEN_CONTROL);
        snprintf(vec, sizeof vec, "tests/vectors/smollm2_special.%s.ids", pres[p]);
        check_vector(&t, "tests/vectors/smollm2_special.txt", vec, 1, 1);
        snprintf(vec, sizeof vec, "tests/vectors/smollm2_special.%s.noparse.ids", pres[p]);
        check_vector(&t, "tests/vectors/smollm2_special.txt", vec, 0, 1);
        snprintf(vec, sizeof vec, "tests/vectors/smollm2_invalid_utf8.%s.ids", pres[p]);
        check_vector(&t, "tests/vectors/smollm2_invalid_utf8.txt", vec, 1, 0);
        snprintf(vec2, sizeof vec2, "tests/vectors/smollm2_wikitext2_test.%s.summary", pres[p]);
        if (wiki) check_wikitext(&t, wiki, wbytes, vec2);
        llama_tokenizer_free(&t);
    }
    {   /* the one-call path gives the same tokenizer */
        llama_tokenizer t;
        static const int want[] = { 19556, 905, 1, 357, 506, -1 }; /* llama-tokenize -p "Hello world<|im_start|> it's" */
        CHECK_LL(llama_tokenizer_from_gguf(g, &t), LLAMA_OK);
        CHECK(t.pre == LLAMA_PRE_SMOLLM && t.bos == 1 && t.eos == 2);
        CHECK(ids_are(&t, "Hello world<|im_start|> it's", 1, 1, want));
        llama_tokenizer_free(&t);
    }
    free(wiki);
    llama_gguf_close(g);
}

void tests_bpe(void) {
    RUN(test_bpe_byte_mapping);
    RUN(test_bpe_byte_roundtrip);
    RUN(test_bpe_merge_order);
    RUN(test_bpe_long_word);
    RUN(test_bpe_pretokenizers);
    RUN(test_bpe_unicode_classes);
    RUN(test_bpe_special);
    RUN(test_bpe_validation);
    RUN(test_bpe_spm);
    RUN(test_bpe_smollm2);
}
