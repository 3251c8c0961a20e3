/* tokenizer.h - the tokenizers: llama2.c's tokenizer.bin (SentencePiece-style,
   with byte fallback where the vocabulary has it), and vocabularies from GGUF
   metadata as llama.cpp tokenizes them: byte-level BPE ("gpt2", with the
   pre-tokenizers smollm, llama-bpe and gpt-2) and SentencePiece-style
   ("llama"); special tokens; the protocol's story stream.

   llama_tokenizer_load(path, vocab_size, &t)      llama2.c tokenizer.bin
   llama_tokenizer_from_vocab(&desc, &t)           a vocabulary description
   llama_vocab_desc_from_gguf(g, &desc)            the description in GGUF metadata
   llama_tokenizer_from_gguf(g, &t)                both steps
   llama_tokenize(&t, text, len, add_special, parse_special, &ids, &n)
       llama.cpp's llama_tokenize: add_special adds BOS/EOS where the
       vocabulary asks for them; parse_special matches control tokens in the
       text (user-defined tokens are always matched, as in llama.cpp)
   llama_encode(&t, text, len, &ids, &n)           no BOS/EOS, no special parsing
   llama_token_piece(&t, id, special, &s, &len)    the bytes a token stands for
   llama_detokenize(&t, ids, n, special, &text, &len)  their concatenation

   Byte-level BPE follows llama.cpp 0.3.36 (src/llama-vocab.cpp,
   src/unicode.cpp) step for step: invalid UTF-8 becomes U+FFFD per byte, the
   text is split by the pre-tokenizer's rules (the hand-written matchers of
   unicode.cpp for the GPT-2 and Llama-3 regexes; smollm first isolates every
   \p{N} code point), each word is mapped to GPT-2's byte characters and
   merged by rank. Code point classes come from unicode_tables.h, Unicode 15.1
   as in llama.cpp's unicode-data.cpp (measured equal, see
   tools/gen_unicode_tables.py). Not reproduced: llama.cpp's promotion of
   tokens to CONTROL by their text (EOT/FIM names) and its per-model
   LSTRIP/RSTRIP attributes (phi-3, jina, modern-bert), and the
   clean_up_tokenization_spaces step of llama_detokenize. */
#ifndef LLAMA_TOKENIZER_H
#define LLAMA_TOKENIZER_H
#include "model.h"
#include "unicode_tables.h"
/* >>tokenizer -------------------------------------------------------------- */

/* Token types, llama.cpp's LLAMA_TOKEN_TYPE_* (GGUF tokenizer.ggml.token_type). */
enum {
    LLAMA_TOKEN_UNDEFINED, LLAMA_TOKEN_NORMAL, LLAMA_TOKEN_UNKNOWN, LLAMA_TOKEN_CONTROL,
    LLAMA_TOKEN_USER_DEFINED, LLAMA_TOKEN_UNUSED, LLAMA_TOKEN_BYTE, LLAMA_TOKEN_TYPES
};

/* What a llama_tokenizer holds: a llama2.c file, or a GGUF vocabulary. */
enum { LLAMA_VOCAB_LLAMA2C, LLAMA_VOCAB_SPM, LLAMA_VOCAB_BPE };

/* The pre-tokenizer regex sets of llama.cpp that are implemented. */
enum { LLAMA_PRE_NONE, LLAMA_PRE_GPT2, LLAMA_PRE_LLAMA3, LLAMA_PRE_SMOLLM };

typedef struct llama_piece {
    const char *str;
    int len, id;
} llama_piece;

typedef struct llama_tokenizer {
    int vocab_size, max_token_length;
    int byte_fallback;      /* llama2.c: ids 3..258 are <0x00>..<0xFF>; SPM: unknown characters go bytewise */
    char *text;             /* every piece, NUL-terminated, back to back */
    llama_piece *pieces;   /* by id */
    llama_piece *sorted;   /* by (bytes, id), for lookup */
    float *scores;
    /* Set by llama_tokenizer_from_vocab; zero for llama2.c files. */
    int kind, pre;
    int32_t bos, eos, unk, pad;           /* -1: none */
    int add_bos, add_eos, add_space_prefix, ignore_merges;
    unsigned char *type;                  /* per token, LLAMA_TOKEN_*; NULL for llama2.c */
    int32_t byte_id[256];                 /* the token of each byte (BPE: of its GPT-2 character), -1 */
    int32_t byte_alt[256][2];             /* BPE, byte_id -1: what llama.cpp emits instead, -1 */
    uint64_t *merge_key;                  /* BPE: hash table (left << 32 | right) -> rank, result */
    int32_t *merge_rank, *merge_id;
    size_t merge_cap;
    int32_t *special;                     /* control, user-defined, unknown: longest first */
    size_t n_special;
    char *piece_text;                     /* the piece of every token (special ones rendered) */
    size_t *piece_off;
    uint32_t *piece_len;
} llama_tokenizer;

LLAMA_API int llama__piece_cmp(const void *a, const void *b) {
    const llama_piece *x = (const llama_piece *)a, *y = (const llama_piece *)b;
    int n = x->len < y->len ? x->len : y->len, c = memcmp(x->str, y->str, (size_t)n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The id of a piece, the lowest if repeated, or -1. */
LLAMA_API int llama__lookup(const llama_tokenizer *t, const char *s, int len) {
    llama_piece key;
    size_t lo = 0, hi = (size_t)t->vocab_size;
    key.str = s, key.len = len, key.id = -1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (llama__piece_cmp(&t->sorted[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < (size_t)t->vocab_size && t->sorted[lo].len == len && memcmp(t->sorted[lo].str, s, (size_t)len) == 0)
        return t->sorted[lo].id;
    return -1;
}

LLAMA_API void llama_tokenizer_free(llama_tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->pieces);
    free(t->sorted);
    free(t->scores);
    free(t->type);
    free(t->merge_key), free(t->merge_rank), free(t->merge_id);
    free(t->special);
    free(t->piece_text), free(t->piece_off), free(t->piece_len);
    memset(t, 0, sizeof *t);
}

/* >>pieces: what each token stands for, computed once per vocabulary. */

/* llama.cpp's unicode_cpt_from_utf8: a code point from s[*i..n), or U+FFFD
   for a byte that does not start a complete sequence (which then counts as
   one byte). Overlong forms and surrogates decode like valid ones; lead
   bytes F4..F7 can give values above U+10FFFF. */
LLAMA_API uint32_t llama__utf8_next(const unsigned char *s, size_t n, size_t *i) {
    size_t p = *i, k, need;
    uint32_t c = s[p];
    *i = p + 1;
    if (c < 0x80) return c;
    if (c < 0xC0 || c >= 0xF8) return 0xFFFD;
    need = c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    c &= need == 1 ? 0x1Fu : need == 2 ? 0x0Fu : 0x07u;
    if (p + need >= n) return 0xFFFD;
    for (k = 1; k <= need; k++)
        if ((s[p + k] & 0xC0) != 0x80) return 0xFFFD;
    for (k = 1; k <= need; k++) c = c << 6 | (s[p + k] & 0x3Fu);
    *i = p + need + 1;
    return c;
}

/* UTF-8 of c <= 0x10FFFF (surrogates too, as llama.cpp writes them). */
LLAMA_API size_t llama__utf8_put(uint32_t c, unsigned char *o) {
    if (c < 0x80) { o[0] = (unsigned char)c; return 1; }
    if (c < 0x800) { o[0] = (unsigned char)(0xC0 | c >> 6), o[1] = (unsigned char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | c >> 12), o[1] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | c >> 18), o[1] = (unsigned char)(0x80 | (c >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (c >> 6 & 0x3F)), o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
   the other 68 bytes, in order, for U+0100.. */
LLAMA_API int llama__gpt2_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

LLAMA_API uint32_t llama__gpt2_cpt(unsigned b) {
    unsigned k, n = 0;
    if (llama__gpt2_printable(b)) return b;
    for (k = 0; k < b; k++) n += !llama__gpt2_printable(k);
    return 256 + n;
}

/* The byte a GPT-2 character stands for, or -1. */
LLAMA_API int llama__gpt2_byte(uint32_t c) {
    unsigned b, n = 0;
    if (c < 256) return llama__gpt2_printable(c) ? (int)c : -1;
    for (b = 0; b < 256; b++)
        if (!llama__gpt2_printable(b) && 256 + n++ == c) return (int)b;
    return -1;
}

/* "<0xXX>" -> XX, or -1. */
LLAMA_API int llama__hex_byte(const char *s, size_t len) {
    int v = 0, k;
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    for (k = 3; k < 5; k++) {
        char c = s[k];
        v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -999);
    }
    return v >= 0 ? v : -1;
}

/* The piece of token id whose vocabulary text is src[len], written to o
   (NULL: only measured), as llama.cpp's token_to_piece with special = true:
   control, unknown and user-defined tokens as their text; byte tokens as
   their byte; normal ones decoded (GPT-2 characters to bytes, or U+2581 to a
   space); undefined and unused ones empty. llama2.c: the text, <0xXX> as
   its byte. */
LLAMA_API size_t llama__piece_of(const llama_tokenizer *t, int id, const char *src, size_t len, char *o) {
    int type = t->type ? (int)t->type[id] : (int)LLAMA_TOKEN_NORMAL, b = -1;
    size_t n = 0, i = 0;
    if (t->kind == LLAMA_VOCAB_LLAMA2C) {
        if (t->byte_fallback && id >= 3 && id < 259) b = id - 3;
    } else if (type == LLAMA_TOKEN_BYTE) {
        b = llama__hex_byte(src, len);
    } else if (type == LLAMA_TOKEN_UNDEFINED || type == LLAMA_TOKEN_UNUSED) {
        return 0;
    } else if (type == LLAMA_TOKEN_NORMAL && t->kind == LLAMA_VOCAB_SPM) {
        while (i < len) {
            int sp = len - i >= 3 && memcmp(src + i, "\xE2\x96\x81", 3) == 0;
            if (o) o[n] = sp ? ' ' : src[i];
            n++, i += sp ? 3 : 1;
        }
        return n;
    } else if (type == LLAMA_TOKEN_NORMAL) {
        while (i < len) {
            size_t k;
            uint32_t c = llama__utf8_next((const unsigned char *)src, len, &i);
            int byte = llama__gpt2_byte(c);
            unsigned char u[4];
            size_t nu;
            if (byte >= 0) {
                if (o) o[n] = (char)byte;
                n++;
                continue;
            }
            /* llama.cpp's llama_decode_text writes this for a character
               outside GPT-2's byte map */
            if (o) memcpy(o + n, "[UNK_BYTE_0x", 12);
            n += 12;
            nu = llama__utf8_put(c > 0x10FFFF ? 0xFFFD : c, u);
            for (k = 0; k < nu; k++) {
                if (o) sprintf(o + n, "%02x", u[k]);
                n += 2;
            }
            if (o) memcpy(o + n, src, len), o[n + len] = ']';
            n += len + 1;
        }
        return n;
    }
    if (b >= 0) {
        if (o) o[0] = (char)b;
        return 1;
    }
    if (o) memcpy(o, src, len);
    return len;
}

/* Fills the piece cache from the vocabulary texts src[id] (len[id]). */
LLAMA_API llama_status llama__set_pieces(llama_tokenizer *t, const char *const *src, const size_t *len) {
    size_t total = 0, i, V = (size_t)t->vocab_size;
    t->piece_off = (size_t *)malloc(V * sizeof(size_t));
    t->piece_len = (uint32_t *)malloc(V * sizeof(uint32_t));
    if (!t->piece_off || !t->piece_len) return LLAMA_ERR_NOMEM;
    for (i = 0; i < V; i++) {
        size_t n = llama__piece_of(t, (int)i, src[i], len[i], NULL);
        t->piece_off[i] = total, t->piece_len[i] = (uint32_t)n;
        total += n;
    }
    if (!(t->piece_text = (char *)malloc(total + 1))) return LLAMA_ERR_NOMEM;
    for (i = 0; i < V; i++) llama__piece_of(t, (int)i, src[i], len[i], t->piece_text + t->piece_off[i]);
    return LLAMA_OK;
}

/* A tokenizer.bin image: int32 max_token_length, then per piece f32 score,
   int32 length, bytes. The file does not store the count, so the whole file
   is parsed and its count compared with the model's vocab_size. */
LLAMA_API llama_status llama_tokenizer_load_mem(const void *buffer, size_t bytes, int vocab_size,
                                                   llama_tokenizer *out) {
    const unsigned char *b = (const unsigned char *)buffer;
    size_t p = 4, count = 0, text_bytes = 0;
    llama_tokenizer t;
    const char **src = NULL;
    size_t *src_len = NULL;
    llama_status st;
    int i;
    if (!buffer || !out || vocab_size <= 0) return LLAMA_ERR_ARG;
    if (bytes < 4) return LLAMA_ERR_TOKENIZER;
    memset(&t, 0, sizeof t);
    t.max_token_length = llama__i32(b);
    if (t.max_token_length < 1 || t.max_token_length > 65536) return LLAMA_ERR_TOKENIZER;
    while (p < bytes) { /* pass 1: validate and count */
        int32_t len;
        if (bytes - p < 8) return LLAMA_ERR_TOKENIZER;
        len = llama__i32(b + p + 4);
        if (!(fabsf(llama__f32(b + p)) <= FLT_MAX) || len < 1 || len > t.max_token_length ||
            bytes - p - 8 < (size_t)len || memchr(b + p + 8, 0, (size_t)len))
            return LLAMA_ERR_TOKENIZER;
        p += 8 + (size_t)len;
        text_bytes += (size_t)len + 1;
        count++;
    }
    if (count != (size_t)vocab_size) return LLAMA_ERR_VOCAB;
    if (vocab_size <= LLAMA_EOS) return LLAMA_ERR_SMALL_VOCAB; /* encode emits <unk> and BOS */
    t.vocab_size = vocab_size;
    t.text = (char *)malloc(text_bytes);
    t.pieces = (llama_piece *)malloc(count * sizeof *t.pieces);
    t.sorted = (llama_piece *)malloc(count * sizeof *t.sorted);
    t.scores = (float *)malloc(count * sizeof *t.scores);
    if (!t.text || !t.pieces || !t.sorted || !t.scores) {
        llama_tokenizer_free(&t);
        return LLAMA_ERR_NOMEM;
    }
    for (i = 0, p = 4, text_bytes = 0; i < vocab_size; i++) { /* pass 2: copy */
        int len = llama__i32(b + p + 4);
        t.scores[i] = llama__f32(b + p);
        memcpy(t.text + text_bytes, b + p + 8, (size_t)len);
        t.text[text_bytes + (size_t)len] = '\0';
        t.pieces[i].str = t.text + text_bytes;
        t.pieces[i].len = len;
        t.pieces[i].id = i;
        p += 8 + (size_t)len;
        text_bytes += (size_t)len + 1;
    }
    memcpy(t.sorted, t.pieces, count * sizeof *t.sorted);
    qsort(t.sorted, count, sizeof *t.sorted, llama__piece_cmp);
    t.byte_fallback = vocab_size >= 259 && strcmp(t.pieces[3].str, "<0x00>") == 0 &&
                      strcmp(t.pieces[258].str, "<0xFF>") == 0;
    t.bos = vocab_size > LLAMA_BOS ? LLAMA_BOS : -1, t.eos = vocab_size > 2 ? 2 : -1, t.unk = 0, t.pad = -1;
    for (i = 0; i < 256; i++) t.byte_id[i] = t.byte_fallback ? i + 3 : -1, t.byte_alt[i][0] = t.byte_alt[i][1] = -1;
    if (!(src = (const char **)malloc(count * sizeof *src)) || !(src_len = (size_t *)malloc(count * sizeof *src_len))) {
        free((void *)src);
        llama_tokenizer_free(&t);
        return LLAMA_ERR_NOMEM;
    }
    for (i = 0; i < vocab_size; i++) src[i] = t.pieces[i].str, src_len[i] = (size_t)t.pieces[i].len;
    st = llama__set_pieces(&t, src, src_len);
    free((void *)src), free(src_len);
    if (st != LLAMA_OK) {
        llama_tokenizer_free(&t);
        return st;
    }
    *out = t;
    return LLAMA_OK;
}

/* Reads the whole file into memory (llama__read_file, gguf.h), then parses
   it (tokenizers are small: anything above 64 MiB is not one). */
LLAMA_API llama_status llama_tokenizer_load(const char *path, int vocab_size, llama_tokenizer *out) {
    char *buf;
    size_t bytes;
    llama_status st;
    if (!path || !out) return LLAMA_ERR_ARG;
    if ((st = llama__read_file(path, (size_t)64 << 20, &buf, &bytes)) != LLAMA_OK) return st;
    st = llama_tokenizer_load_mem(buf, bytes, vocab_size, out);
    free(buf);
    return st;
}

/* >>vocab: a tokenizer from a vocabulary description (GGUF metadata). */

/* The vocabulary as GGUF stores it (tokenizer.ggml.*). Strings are borrowed
   for the call only. bos/eos/unk/pad -1 and add_bos/add_eos -1 mean absent
   from the metadata: llama.cpp's defaults for the model then apply (gpt2:
   BOS = EOS = 11 where the vocabulary has it; llama: BOS 1, EOS 2, UNK 0;
   add_bos true for llama and llama-bpe, else false; add_eos false). */
typedef struct llama_vocab_desc {
    const char *model;              /* "gpt2" (byte-level BPE) or "llama" (SentencePiece-style) */
    const char *pre;                /* pre-tokenizer: "smollm", "llama-bpe", "gpt2", ... or NULL */
    size_t n_tokens;
    const char *const *tokens; const size_t *token_lens;
    const float *scores;            /* may be NULL */
    const int32_t *token_types;     /* may be NULL; llama.cpp's LLAMA_TOKEN_TYPE_* values */
    size_t n_merges;
    const char *const *merges; const size_t *merge_lens;   /* "a b" strings */
    int32_t bos, eos, unk, pad;     /* -1 if absent */
    int add_bos, add_eos;
} llama_vocab_desc;

/* Pre-tokenizer names (tokenizer.ggml.pre) whose regexes llama.cpp maps to
   one of the implemented sets, with what llama.cpp sets beside them. "gpt2"
   is accepted as another name of llama.cpp's "gpt-2". */
typedef struct llama__pre_name {
    const char *name;
    int pre, ignore_merges, add_bos;
} llama__pre_name;

LLAMA_API const llama__pre_name *llama__find_pre(const char *name) {
    static const llama__pre_name names[] = {
        {"smollm", LLAMA_PRE_SMOLLM, 0, 0},    {"starcoder", LLAMA_PRE_SMOLLM, 0, 0},
        {"refact", LLAMA_PRE_SMOLLM, 0, 0},    {"command-r", LLAMA_PRE_SMOLLM, 0, 0},
        {"codeshell", LLAMA_PRE_SMOLLM, 0, 0}, {"exaone", LLAMA_PRE_SMOLLM, 0, 0},
        {"minerva-7b", LLAMA_PRE_SMOLLM, 0, 0}, {"llama-bpe", LLAMA_PRE_LLAMA3, 1, 1},
        {"llama3", LLAMA_PRE_LLAMA3, 1, 1},    {"llama-v3", LLAMA_PRE_LLAMA3, 1, 1},
        {"gpt-2", LLAMA_PRE_GPT2, 0, 0},       {"gpt2", LLAMA_PRE_GPT2, 0, 0},
        {"phi-2", LLAMA_PRE_GPT2, 0, 0},       {"mpt", LLAMA_PRE_GPT2, 0, 0},
        {"olmo", LLAMA_PRE_GPT2, 0, 0},        {"jais", LLAMA_PRE_GPT2, 0, 0},
    };
    size_t i;
    for (i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].name, name) == 0) return &names[i];
    return NULL;
}

/* The BPE merge table: open addressing on (left << 32 | right). */
#define LLAMA__NO_MERGE (~(uint64_t)0)

LLAMA_API size_t llama__merge_slot(const llama_tokenizer *t, uint64_t key) {
    size_t mask = t->merge_cap - 1, i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & mask;
    while (t->merge_key[i] != key && t->merge_key[i] != LLAMA__NO_MERGE) i = (i + 1) & mask;
    return i;
}

/* Longest first, then by id: the order llama.cpp tries special tokens in
   (its std::sort by length leaves ties unspecified; they can only matter for
   equally long special tokens that overlap in the text). */
LLAMA_API int llama__special_cmp(const void *a, const void *b) {
    const llama_piece *x = (const llama_piece *)a, *y = (const llama_piece *)b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

LLAMA_API llama_status llama__vocab_build(const llama_vocab_desc *d, llama_tokenizer *t) {
    size_t V = d->n_tokens, i, text_bytes = 0, n_special = 0;
    const llama__pre_name *pre = NULL;
    llama_piece *sp;
    char *q;
    int bpe;
    if (!d->model || (strcmp(d->model, "gpt2") != 0 && strcmp(d->model, "llama") != 0)) return LLAMA_ERR_VOCAB_MODEL;
    bpe = strcmp(d->model, "gpt2") == 0;
    if (bpe && !(pre = llama__find_pre(d->pre))) return LLAMA_ERR_VOCAB_MODEL;
    if (V == 0 || V > LLAMA_MAX_HEADER_VALUE || !d->tokens || !d->token_lens) return LLAMA_ERR_VOCAB_TOKEN;
    if (d->n_merges > LLAMA_MAX_HEADER_VALUE || (d->n_merges && (!d->merges || !d->merge_lens)))
        return LLAMA_ERR_VOCAB_MERGE; /* ranks up to 2^24 are exact as float heap scores */
    for (i = 0; i < V; i++) {
        size_t len = d->token_lens[i];
        if (!d->tokens[i] || len == 0 || len > 65536 || memchr(d->tokens[i], 0, len)) return LLAMA_ERR_VOCAB_TOKEN;
        if (d->scores && !(fabsf(d->scores[i]) <= FLT_MAX)) return LLAMA_ERR_VOCAB_TOKEN;
        if (d->token_types && (d->token_types[i] < 0 || d->token_types[i] >= LLAMA_TOKEN_TYPES))
            return LLAMA_ERR_VOCAB_TOKEN;
        text_bytes += len + 1;
        if ((int)len > t->max_token_length) t->max_token_length = (int)len;
    }
    if (d->bos < -1 || d->eos < -1 || d->unk < -1 || d->pad < -1 || d->bos >= (int64_t)V ||
        d->eos >= (int64_t)V || d->unk >= (int64_t)V || d->pad >= (int64_t)V || d->add_bos < -1 ||
        d->add_bos > 1 || d->add_eos < -1 || d->add_eos > 1)
        return LLAMA_ERR_VOCAB_SPECIAL;
    t->kind = bpe ? LLAMA_VOCAB_BPE : LLAMA_VOCAB_SPM;
    t->pre = bpe ? pre->pre : LLAMA_PRE_NONE;
    t->ignore_merges = bpe && pre->ignore_merges;
    t->add_space_prefix = !bpe;
    t->byte_fallback = !bpe;
    t->vocab_size = (int)V;
    t->text = (char *)malloc(text_bytes);
    t->pieces = (llama_piece *)malloc(V * sizeof *t->pieces);
    t->sorted = (llama_piece *)malloc(V * sizeof *t->sorted);
    t->scores = (float *)calloc(V, sizeof *t->scores);
    t->type = (unsigned char *)malloc(V);
    if (!t->text || !t->pieces || !t->sorted || !t->scores || !t->type) return LLAMA_ERR_NOMEM;
    /* SentencePiece marks spaces with U+2581; the llama2.c path matches
       pieces with plain spaces, so they are stored that way. */
    for (i = 0, q = t->text; i < V; i++) {
        const char *s = d->tokens[i];
        size_t len = d->token_lens[i], k = 0;
        t->pieces[i].str = q;
        while (k < len) {
            int mark = !bpe && len - k >= 3 && memcmp(s + k, "\xE2\x96\x81", 3) == 0;
            *q++ = mark ? ' ' : s[k];
            k += mark ? 3 : 1;
        }
        *q++ = '\0';
        t->pieces[i].len = (int)(q - 1 - t->pieces[i].str);
        t->pieces[i].id = (int)i;
        if (d->scores) t->scores[i] = d->scores[i];
        t->type[i] = (unsigned char)(d->token_types ? d->token_types[i] : LLAMA_TOKEN_NORMAL);
        n_special += t->type[i] == LLAMA_TOKEN_CONTROL || t->type[i] == LLAMA_TOKEN_USER_DEFINED ||
                     t->type[i] == LLAMA_TOKEN_UNKNOWN;
    }
    memcpy(t->sorted, t->pieces, V * sizeof *t->sorted);
    qsort(t->sorted, V, sizeof *t->sorted, llama__piece_cmp);
    /* llama.cpp requires unique texts (byte-level BPE); a SentencePiece
       vocabulary may repeat one once U+2581 is a space: the lowest id wins. */
    for (i = 0; bpe && i + 1 < V; i++)
        if (t->sorted[i].len == t->sorted[i + 1].len && memcmp(t->sorted[i].str, t->sorted[i + 1].str, (size_t)t->sorted[i].len) == 0)
            return LLAMA_ERR_VOCAB_TOKEN;
    /* special ids, with llama.cpp's defaults where the metadata has none */
    t->bos = d->bos >= 0 ? d->bos : bpe ? (V > 11 ? 11 : -1) : (V > 1 ? 1 : -1);
    t->eos = d->eos >= 0 ? d->eos : bpe ? (V > 11 ? 11 : -1) : (V > 2 ? 2 : -1);
    t->unk = d->unk >= 0 ? d->unk : bpe ? -1 : 0;
    t->pad = d->pad;
    t->add_bos = d->add_bos >= 0 ? d->add_bos : bpe ? pre->add_bos : 1;
    t->add_eos = d->add_eos >= 0 ? d->add_eos : 0;
    if ((t->add_bos && t->bos < 0) || (t->add_eos && t->eos < 0)) return LLAMA_ERR_VOCAB_SPECIAL;
    /* the token of each byte */
    for (i = 0; i < 256; i++) {
        char s[8];
        unsigned char u[4];
        size_t k, n;
        t->byte_alt[i][0] = t->byte_alt[i][1] = -1;
        if (!bpe) {
            sprintf(s, "<0x%02X>", (unsigned)i);
            t->byte_id[i] = llama__lookup(t, s, 6);
            if (t->byte_id[i] < 0) s[0] = (char)i, t->byte_id[i] = llama__lookup(t, s, 1);
            continue;
        }
        n = llama__utf8_put(llama__gpt2_cpt((unsigned)i), u);
        t->byte_id[i] = llama__lookup(t, (const char *)u, (int)n);
        /* llama.cpp then looks each byte of the character up on its own */
        for (k = 0; t->byte_id[i] < 0 && k < n; k++) t->byte_alt[i][k] = llama__lookup(t, (const char *)u + k, 1);
    }
    /* merges, by rank; a repeated pair keeps its first rank, as in llama.cpp */
    if (bpe) {
        size_t cap = 16;
        while (cap < 2 * d->n_merges + 16) cap *= 2;
        t->merge_cap = cap;
        t->merge_key = (uint64_t *)malloc(cap * sizeof(uint64_t));
        t->merge_rank = (int32_t *)malloc(cap * sizeof(int32_t));
        t->merge_id = (int32_t *)malloc(cap * sizeof(int32_t));
        if (!t->merge_key || !t->merge_rank || !t->merge_id) return LLAMA_ERR_NOMEM;
        for (i = 0; i < cap; i++) t->merge_key[i] = LLAMA__NO_MERGE;
        q = (char *)malloc(2 * (size_t)t->max_token_length + 1);
        if (!q) return LLAMA_ERR_NOMEM;
        for (i = 0; i < d->n_merges; i++) {
            const char *m = d->merges[i], *space;
            size_t len = d->merge_lens[i], la, slot;
            int a, b, r;
            uint64_t key;
            /* llama.cpp splits at the first space after the first byte */
            space = m && len > 2 ? (const char *)memchr(m + 1, ' ', len - 1) : NULL;
            if (!space || memchr(m, 0, len) || (la = (size_t)(space - m)) + 1 >= len ||
                la + (len - la - 1) > 2 * (size_t)t->max_token_length ||
                (a = llama__lookup(t, m, (int)la)) < 0 || (b = llama__lookup(t, space + 1, (int)(len - la - 1))) < 0) {
                free(q);
                return LLAMA_ERR_VOCAB_MERGE;
            }
            memcpy(q, m, la);
            memcpy(q + la, space + 1, len - la - 1);
            if ((r = llama__lookup(t, q, (int)(len - 1))) < 0) {
                free(q);
                return LLAMA_ERR_VOCAB_MERGE;
            }
            key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
            slot = llama__merge_slot(t, key);
            if (t->merge_key[slot] == key) continue;
            t->merge_key[slot] = key, t->merge_rank[slot] = (int32_t)i, t->merge_id[slot] = r;
        }
        free(q);
    }
    /* special tokens, matched in the raw text before anything else */
    t->special = (int32_t *)malloc((n_special ? n_special : 1) * sizeof(int32_t));
    sp = (llama_piece *)malloc((n_special ? n_special : 1) * sizeof *sp);
    if (!t->special || !sp) {
        free(sp);
        return LLAMA_ERR_NOMEM;
    }
    for (i = 0; i < V; i++)
        if (t->type[i] == LLAMA_TOKEN_CONTROL || t->type[i] == LLAMA_TOKEN_USER_DEFINED || t->type[i] == LLAMA_TOKEN_UNKNOWN) {
            sp[t->n_special].str = d->tokens[i], sp[t->n_special].len = (int)d->token_lens[i];
            sp[t->n_special++].id = (int)i;
        }
    qsort(sp, n_special, sizeof *sp, llama__special_cmp);
    for (i = 0; i < n_special; i++) t->special[i] = sp[i].id;
    free(sp);
    return llama__set_pieces(t, d->tokens, d->token_lens);
}

/* Validates the description completely and builds the tokenizer; *out is
   untouched on failure. */
LLAMA_API llama_status llama_tokenizer_from_vocab(const llama_vocab_desc *d, llama_tokenizer *out) {
    llama_tokenizer t;
    llama_status st;
    if (!d || !out) return LLAMA_ERR_ARG;
    memset(&t, 0, sizeof t);
    if ((st = llama__vocab_build(d, &t)) != LLAMA_OK) {
        llama_tokenizer_free(&t);
        return st;
    }
    *out = t;
    return LLAMA_OK;
}

/* A 32-bit id from metadata: -1 when absent; out of range is kept out of
   range, for llama_tokenizer_from_vocab to reject. */
LLAMA_API llama_status llama__gguf_id(const llama_gguf *g, const char *key, int32_t *id) {
    uint64_t v;
    llama_status st = llama_gguf_get_u64(g, key, &v);
    if (st == LLAMA_ERR_GGUF_KEY) return *id = -1, LLAMA_OK;
    if (st != LLAMA_OK) return st;
    *id = v > (uint64_t)INT32_MAX ? INT32_MAX : (int32_t)v;
    return LLAMA_OK;
}

LLAMA_API llama_status llama__gguf_flag(const llama_gguf *g, const char *key, int *flag) {
    llama_status st = llama_gguf_get_bool(g, key, flag);
    if (st == LLAMA_ERR_GGUF_KEY) return *flag = -1, LLAMA_OK;
    return st;
}

/* The vocabulary description of GGUF metadata (tokenizer.ggml.*): model,
   pre, tokens, scores (FLOAT32), token_type (INT32), merges, the special
   ids, add_bos_token and add_eos_token. d borrows g's strings and arrays. */
LLAMA_API llama_status llama_vocab_desc_from_gguf(const llama_gguf *g, llama_vocab_desc *d) {
    const char *model, *pre = NULL;
    size_t len, n;
    const void *data;
    llama_gguf_type elem;
    llama_status st;
    if (!g || !d) return LLAMA_ERR_ARG;
    memset(d, 0, sizeof *d);
    if ((st = llama_gguf_get_str(g, "tokenizer.ggml.model", &model, &len)) != LLAMA_OK) return st;
    st = llama_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &len);
    if (st != LLAMA_OK && st != LLAMA_ERR_GGUF_KEY) return st;
    d->model = model, d->pre = st == LLAMA_OK ? pre : NULL;
    if ((st = llama_gguf_get_strs(g, "tokenizer.ggml.tokens", &d->tokens, &d->token_lens, &d->n_tokens)) != LLAMA_OK)
        return st;
    st = llama_gguf_get_array(g, "tokenizer.ggml.scores", &elem, &data, &n);
    if (st == LLAMA_OK && (elem != LLAMA_GGUF_FLOAT32 || n != d->n_tokens)) return LLAMA_ERR_VOCAB_TOKEN;
    if (st != LLAMA_OK && st != LLAMA_ERR_GGUF_KEY) return st;
    d->scores = st == LLAMA_OK ? (const float *)data : NULL;
    st = llama_gguf_get_array(g, "tokenizer.ggml.token_type", &elem, &data, &n);
    if (st == LLAMA_OK && (elem != LLAMA_GGUF_INT32 || n != d->n_tokens)) return LLAMA_ERR_VOCAB_TOKEN;
    if (st != LLAMA_OK && st != LLAMA_ERR_GGUF_KEY) return st;
    d->token_types = st == LLAMA_OK ? (const int32_t *)data : NULL;
    st = llama_gguf_get_strs(g, "tokenizer.ggml.merges", &d->merges, &d->merge_lens, &d->n_merges);
    if (st != LLAMA_OK && st != LLAMA_ERR_GGUF_KEY) return st;
    if ((st = llama__gguf_id(g, "tokenizer.ggml.bos_token_id", &d->bos)) != LLAMA_OK ||
        (st = llama__gguf_id(g, "tokenizer.ggml.eos_token_id", &d->eos)) != LLAMA_OK ||
        (st = llama__gguf_id(g, "tokenizer.ggml.unknown_token_id", &d->unk)) != LLAMA_OK ||
        (st = llama__gguf_id(g, "tokenizer.ggml.padding_token_id", &d->pad)) != LLAMA_OK ||
        (st = llama__gguf_flag(g, "tokenizer.ggml.add_bos_token", &d->add_bos)) != LLAMA_OK ||
        (st = llama__gguf_flag(g, "tokenizer.ggml.add_eos_token", &d->add_eos)) != LLAMA_OK)
        return st;
    return LLAMA_OK;
}

/* The tokenizer of a GGUF file; tokenizer.ggml.add_space_prefix, where
   present, sets the SentencePiece dummy prefix (llama.cpp reads it too).
   The tokenizer copies what it needs: g may be closed afterwards. */
LLAMA_API llama_status llama_tokenizer_from_gguf(const llama_gguf *g, llama_tokenizer *out) {
    llama_vocab_desc d;
    llama_tokenizer t;
    int prefix = -1;
    llama_status st;
    if (!g || !out) return LLAMA_ERR_ARG;
    if ((st = llama_vocab_desc_from_gguf(g, &d)) != LLAMA_OK ||
        (st = llama__gguf_flag(g, "tokenizer.ggml.add_space_prefix", &prefix)) != LLAMA_OK ||
        (st = llama_tokenizer_from_vocab(&d, &t)) != LLAMA_OK)
        return st;
    if (prefix >= 0 && t.kind == LLAMA_VOCAB_SPM) t.add_space_prefix = prefix;
    *out = t;
    return LLAMA_OK;
}

/* >>merge: both kinds merge adjacent symbols best pair first. */

/* A candidate merge of the adjacent pieces at nodes left and right; stale
   once either node has changed (its version moved on). */
typedef struct llama__merge {
    float score;
    int left, right, id;
    unsigned vl, vr;
} llama__merge;

/* Heap order: highest score first, then leftmost, which is the pair
   llama2.c's linear scan picks. BPE scores are -rank (lowest rank first,
   then leftmost, as llama.cpp's queue orders them). */
LLAMA_API int llama__before(const llama__merge *a, const llama__merge *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

LLAMA_API void llama__heap_push(llama__merge *h, size_t *n, llama__merge e) {
    size_t i = (*n)++;
    while (i > 0 && llama__before(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

LLAMA_API llama__merge llama__heap_pop(llama__merge *h, size_t *n) {
    llama__merge top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && llama__before(&h[c + 1], &h[c])) c++;
        if (!llama__before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* A growing list of ids. */
typedef struct llama__ids {
    int *v;
    size_t n, cap;
} llama__ids;

LLAMA_API int llama__ids_push(llama__ids *a, int id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        int *v = (int *)realloc(a->v, cap * sizeof(int));
        if (!v) return 0;
        a->v = v, a->cap = cap;
    }
    a->v[a->n++] = id;
    return 1;
}

/* Scratch of the merge loop, grown to the longest word: tok[i] is the id of
   node i (BPE: -1 - byte for a byte without a token), prev/next link the
   nodes still alive. */
typedef struct llama__work {
    int *tok, *prev, *next;
    unsigned *ver;
    llama__merge *heap;
    char *buf; /* two pieces side by side */
    size_t cap;
} llama__work;

LLAMA_API void llama__work_free(llama__work *w) {
    free(w->tok), free(w->prev), free(w->next), free(w->ver), free(w->heap), free(w->buf);
    memset(w, 0, sizeof *w);
}

LLAMA_API int llama__work_reserve(const llama_tokenizer *t, llama__work *w, size_t n) {
    size_t cap = w->cap ? w->cap : 64;
    if (n <= w->cap && w->buf) return 1;
    while (cap < n) cap *= 2;
    free(w->tok), free(w->prev), free(w->next), free(w->ver), free(w->heap);
    w->tok = (int *)malloc(cap * sizeof(int));
    w->prev = (int *)malloc(cap * sizeof(int));
    w->next = (int *)malloc(cap * sizeof(int));
    w->ver = (unsigned *)malloc(cap * sizeof(unsigned));
    w->heap = (llama__merge *)malloc(3 * cap * sizeof *w->heap); /* n - 1 at first, then 2 per merge */
    if (!w->buf) w->buf = (char *)malloc(2 * (size_t)t->max_token_length + 8);
    w->cap = cap;
    return w->tok && w->prev && w->next && w->ver && w->heap && w->buf;
}

/* Push the merge of nodes a and b if there is one: BPE by the merge table,
   otherwise if their concatenation is a piece. */
LLAMA_API void llama__try_merge(const llama_tokenizer *t, llama__work *w, int a, int b, size_t *n) {
    llama__merge e;
    if (a < 0 || b < 0) return;
    if (t->kind == LLAMA_VOCAB_BPE) {
        size_t slot;
        if (w->tok[a] < 0 || w->tok[b] < 0) return;
        slot = llama__merge_slot(t, (uint64_t)(uint32_t)w->tok[a] << 32 | (uint32_t)w->tok[b]);
        if (t->merge_key[slot] == LLAMA__NO_MERGE) return;
        e.id = t->merge_id[slot], e.score = -(float)t->merge_rank[slot];
    } else {
        const llama_piece *x = &t->pieces[w->tok[a]], *y = &t->pieces[w->tok[b]];
        memcpy(w->buf, x->str, (size_t)x->len);
        memcpy(w->buf + x->len, y->str, (size_t)y->len);
        if ((e.id = llama__lookup(t, w->buf, x->len + y->len)) < 0) return;
        e.score = t->scores[e.id];
    }
    e.left = a, e.right = b, e.vl = w->ver[a], e.vr = w->ver[b];
    llama__heap_push(w->heap, n, e);
}

/* Merges the nodes w->tok[0..n) and appends what is left to out. A heap of
   candidate merges makes it O(n log n) instead of O(n^2). */
LLAMA_API int llama__merge_run(const llama_tokenizer *t, llama__work *w, size_t n, llama__ids *out) {
    size_t i, nh = 0;
    int k;
    for (i = 0; i < n; i++) {
        w->prev[i] = (int)i - 1;
        w->next[i] = i + 1 < n ? (int)i + 1 : -1;
        w->ver[i] = 0;
    }
    for (i = 0; i + 1 < n; i++) llama__try_merge(t, w, (int)i, (int)i + 1, &nh);
    while (nh > 0) {
        llama__merge e = llama__heap_pop(w->heap, &nh);
        int l = e.left, r = e.right;
        if (w->ver[l] != e.vl || w->ver[r] != e.vr) continue;
        w->tok[l] = e.id;
        w->ver[l]++, w->ver[r]++; /* every merge queued with either is now stale */
        w->next[l] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = l;
        llama__try_merge(t, w, w->prev[l], l, &nh);
        llama__try_merge(t, w, l, w->next[l], &nh);
    }
    for (k = n ? 0 : -1; k >= 0; k = w->next[k]) {
        int id = w->tok[k], j;
        if (id >= 0) {
            if (!llama__ids_push(out, id)) return 0;
            continue;
        }
        for (j = 0; j < 2; j++) /* BPE: a byte whose character is not a token */
            if (t->byte_alt[-1 - id][j] >= 0 && !llama__ids_push(out, t->byte_alt[-1 - id][j])) return 0;
    }
    return 1;
}

/* >>spm: llama2.c's encode, which is llama.cpp's SentencePiece-style one. */

/* The token of a byte without a piece of its own: its byte token, else <unk>. */
LLAMA_API int llama__byte_token(const llama_tokenizer *t, unsigned char b) {
    return t->byte_id[b] >= 0 ? t->byte_id[b] : t->unk >= 0 ? t->unk : 0;
}

/* An optional " " prefix (SentencePiece's dummy prefix), one piece per UTF-8
   code point (bytewise with byte fallback, else <unk>), then repeatedly the
   best-scoring merge. */
LLAMA_API int llama__spm_encode(const llama_tokenizer *t, const char *text, size_t len, int prefix, llama__work *w,
                                 llama__ids *out) {
    size_t n = 0, i;
    if (!llama__work_reserve(t, w, len + 1)) return 0;
    if (prefix) {
        int sp = llama__lookup(t, " ", 1);
        w->tok[n++] = sp >= 0 ? sp : llama__byte_token(t, ' ');
    }
    for (i = 0; i < len;) {
        size_t j = i + 1;
        int id;
        /* A code point: a lead byte and up to 3 continuation bytes. */
        while (j < len && j - i < 4 && ((unsigned char)text[j] & 0xC0) == 0x80) j++;
        id = llama__lookup(t, text + i, (int)(j - i));
        if (id >= 0) w->tok[n++] = id;
        else if (!t->byte_fallback) w->tok[n++] = t->unk >= 0 ? t->unk : 0;
        else
            for (; i < j; i++) w->tok[n++] = llama__byte_token(t, (unsigned char)text[i]);
        i = j;
    }
    return llama__merge_run(t, w, n, out);
}

/* >>pretokenize: llama.cpp's splitters for the GPT-2 and Llama-3 regexes. */

#define LLAMA__CL 1u /* \p{L} */
#define LLAMA__CN 2u /* \p{N} */
#define LLAMA__CS 4u /* \s, llama.cpp's whitespace set */
#define LLAMA__CIN 8u /* inside the text being split (llama.cpp's flags are 0 outside) */
#define LLAMA__OUT 0xFFFFFFFFu

LLAMA_API int llama__in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid][1] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && r[lo][0] <= c;
}

LLAMA_API unsigned llama__cpt_class(uint32_t c) {
    size_t i;
    unsigned f = 0;
    if (c < 128) /* the tables' first ranges, without the search */
        return ((c | 32) >= 'a' && (c | 32) <= 'z' ? LLAMA__CL : 0) | (c >= '0' && c <= '9' ? LLAMA__CN : 0) |
               ((c >= 9 && c <= 13) || c == 32 ? LLAMA__CS : 0);
    if (llama__in_ranges(llama__unicode_letter, sizeof llama__unicode_letter / sizeof llama__unicode_letter[0], c))
        f |= LLAMA__CL;
    if (llama__in_ranges(llama__unicode_number, sizeof llama__unicode_number / sizeof llama__unicode_number[0], c))
        f |= LLAMA__CN;
    for (i = 0; i < sizeof llama__unicode_space / sizeof llama__unicode_space[0]; i++)
        if (llama__unicode_space[i] == c) f |= LLAMA__CS;
    return f;
}

/* One piece of text being split into words: code points c[ini..end) with
   classes f[], word ends appended to ends[n]. */
typedef struct llama__split {
    const uint32_t *c;
    const unsigned char *f;
    size_t ini, end, prev, *ends, n;
} llama__split;

LLAMA_API uint32_t llama__sc(const llama__split *s, size_t pos) { return pos < s->end ? s->c[pos] : LLAMA__OUT; }
LLAMA_API unsigned llama__sf(const llama__split *s, size_t pos) { return pos < s->end ? s->f[pos] | LLAMA__CIN : 0; }

/* A word ends at end (nothing if empty); its length. */
LLAMA_API size_t llama__word(llama__split *s, size_t end) {
    size_t len = end - s->prev;
    if (len > 0) s->ends[s->n++] = end;
    s->prev = end;
    return len;
}

LLAMA_API int llama__not_lns(unsigned f) { return !(f & (LLAMA__CS | LLAMA__CL | LLAMA__CN)) && (f & LLAMA__CIN); }

/* 's|'t|'re|'ve|'m|'ll|'d (lower-cased first with fold, for Llama-3): the
   length of the contraction at pos, or 0. */
LLAMA_API size_t llama__contraction(const llama__split *s, size_t pos, int fold) {
    uint32_t a, b;
    if (llama__sc(s, pos) != '\'' || pos + 1 >= s->end) return 0;
    a = llama__sc(s, pos + 1);
    if (fold && a >= 'A' && a <= 'Z') a += 32; /* only ASCII folds to these (gen_unicode_tables.py checks) */
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= s->end) return 0;
    b = llama__sc(s, pos + 2);
    if (fold && b >= 'A' && b <= 'Z') b += 32;
    return (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l') ? 3 : 0;
}

/* The last two alternatives of both regexes, \s+(?!\S)|\s+, for the k
   spaces at pos (all but the last when more follows); with none, the code
   point alone. Where the next word starts. */
LLAMA_API size_t llama__spaces(llama__split *s, size_t pos, size_t k) {
    if (k > 1 && llama__sc(s, pos + k) != LLAMA__OUT) pos += k - 1;
    else pos += k > 0 ? k : 1;
    llama__word(s, pos);
    return pos;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
   as unicode.cpp's unicode_regex_split_custom_gpt2 matches it. */
LLAMA_API void llama__split_gpt2(llama__split *s) {
    size_t pos = s->ini, k;
    s->prev = s->ini;
    while (pos < s->end) {
        uint32_t cpt = llama__sc(s, pos);
        unsigned f = llama__sf(s, pos), f2;
        if ((k = llama__contraction(s, pos, 0)) > 0) {
            pos += llama__word(s, pos + k);
            continue;
        }
        f2 = cpt == ' ' ? llama__sf(s, pos + 1) : f;
        if (f2 & (LLAMA__CL | LLAMA__CN)) { /* ?\p{L}+ and ?\p{N}+ */
            unsigned cls = f2 & LLAMA__CL ? LLAMA__CL : LLAMA__CN;
            pos += cpt == ' ';
            while (f2 & cls) f2 = llama__sf(s, ++pos);
            llama__word(s, pos);
            continue;
        }
        if (llama__not_lns(f2)) { /* ?[^\s\p{L}\p{N}]+ */
            pos += cpt == ' ';
            while (llama__not_lns(f2)) f2 = llama__sf(s, ++pos);
            llama__word(s, pos);
            continue;
        }
        for (k = 0; llama__sf(s, pos + k) & LLAMA__CS;) k++;
        pos = llama__spaces(s, pos, k);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
   as unicode.cpp's unicode_regex_split_custom_llama3 matches it. */
LLAMA_API void llama__split_llama3(llama__split *s) {
    size_t pos = s->ini, k;
    s->prev = s->ini;
    while (pos < s->end) {
        uint32_t cpt = llama__sc(s, pos);
        unsigned f = llama__sf(s, pos), f2;
        size_t last_rn = 0;
        if ((k = llama__contraction(s, pos, 1)) > 0) {
            pos += llama__word(s, pos + k);
            continue;
        }
        if (!(cpt == '\r' || cpt == '\n' || (f & LLAMA__CN)) &&
            ((f & LLAMA__CL) || (llama__sf(s, pos + 1) & LLAMA__CL))) { /* [^\r\n\p{L}\p{N}]?\p{L}+ */
            pos++;
            while (llama__sf(s, pos) & LLAMA__CL) pos++;
            llama__word(s, pos);
            continue;
        }
        if (f & LLAMA__CN) { /* \p{N}{1,3} */
            size_t ini = pos;
            while (llama__sf(s, pos) & LLAMA__CN)
                if (++pos - ini >= 3) {
                    llama__word(s, pos);
                    ini = pos;
                }
            llama__word(s, pos);
            continue;
        }
        f2 = cpt == ' ' ? llama__sf(s, pos + 1) : f;
        if (!(f2 & (LLAMA__CS | LLAMA__CL | LLAMA__CN)) && (f & LLAMA__CIN)) { /* ?[^\s\p{L}\p{N}]+[\r\n]* */
            uint32_t c2;
            pos += cpt == ' ';
            while (llama__not_lns(f2)) f2 = llama__sf(s, ++pos);
            for (c2 = llama__sc(s, pos); c2 == '\r' || c2 == '\n';) c2 = llama__sc(s, ++pos);
            llama__word(s, pos);
            continue;
        }
        for (k = 0; llama__sf(s, pos + k) & LLAMA__CS; k++) {
            uint32_t c2 = llama__sc(s, pos + k);
            if (c2 == '\r' || c2 == '\n') last_rn = pos + k + 1;
        }
        if (last_rn > 0) { /* \s*[\r\n]+ */
            pos = last_rn;
            llama__word(s, pos);
            continue;
        }
        pos = llama__spaces(s, pos, k);
    }
}

/* Word ends of c[0..n) under the tokenizer's pre-tokenizer. smollm is
   llama.cpp's pair of regexes \p{N} (through std::regex: every \p{N} code
   point alone, the runs between kept) then GPT-2's within each piece. */
LLAMA_API size_t llama__pretokenize(int pre, const uint32_t *c, const unsigned char *f, size_t n, size_t *ends) {
    llama__split s;
    s.c = c, s.f = f, s.ends = ends, s.n = 0;
    if (pre == LLAMA_PRE_SMOLLM) {
        size_t a = 0, b;
        while (a < n) {
            b = a + 1;
            if (!(f[a] & LLAMA__CN))
                while (b < n && !(f[b] & LLAMA__CN)) b++;
            s.ini = a, s.end = b;
            llama__split_gpt2(&s);
            a = b;
        }
    } else {
        s.ini = 0, s.end = n;
        if (pre == LLAMA_PRE_LLAMA3) llama__split_llama3(&s);
        else llama__split_gpt2(&s);
    }
    return s.n;
}

/* >>bpe: one piece of raw text (no special tokens in it) to ids. */
LLAMA_API llama_status llama__bpe_encode(const llama_tokenizer *t, const char *text, size_t len, llama__work *w,
                                           llama__ids *out) {
    uint32_t *c = (uint32_t *)malloc((len + 1) * sizeof(uint32_t));
    unsigned char *f = (unsigned char *)malloc(len + 1), *wb = (unsigned char *)malloc(4 * len + 1);
    unsigned char *eb = (unsigned char *)malloc(8 * len + 1);
    size_t *ends = (size_t *)malloc((len + 1) * sizeof(size_t));
    size_t n = 0, i, j, n_words, a = 0;
    llama_status st = LLAMA_OK;
    if (!c || !f || !wb || !eb || !ends) st = LLAMA_ERR_NOMEM;
    for (i = 0; st == LLAMA_OK && i < len; n++) {
        c[n] = llama__utf8_next((const unsigned char *)text, len, &i);
        if (c[n] > 0x10FFFF) st = LLAMA_ERR_TEXT;
        else f[n] = (unsigned char)llama__cpt_class(c[n]);
    }
    n_words = st == LLAMA_OK ? llama__pretokenize(t->pre, c, f, n, ends) : 0;
    for (i = 0; st == LLAMA_OK && i < n_words; a = ends[i++]) {
        size_t nb = 0, ne = 0;
        int id = -1;
        for (j = a; j < ends[i]; j++) nb += llama__utf8_put(c[j], wb + nb);
        if (t->ignore_merges) { /* llama.cpp: a word that is a token is that token */
            for (j = 0; j < nb; j++) ne += llama__utf8_put(llama__gpt2_cpt(wb[j]), eb + ne);
            id = llama__lookup(t, (const char *)eb, (int)ne);
        }
        if (id >= 0) {
            if (!llama__ids_push(out, id)) st = LLAMA_ERR_NOMEM;
            continue;
        }
        if (!llama__work_reserve(t, w, nb)) {
            st = LLAMA_ERR_NOMEM;
            break;
        }
        for (j = 0; j < nb; j++) w->tok[j] = t->byte_id[wb[j]] >= 0 ? t->byte_id[wb[j]] : -1 - (int)wb[j];
        if (!llama__merge_run(t, w, nb, out)) st = LLAMA_ERR_NOMEM;
    }
    free(c), free(f), free(wb), free(eb), free(ends);
    return st;
}

/* >>tokenize --------------------------------------------------------------- */

/* A piece of the text, or a special token found in it. */
typedef struct llama__frag {
    size_t off, len;
    int token; /* -1: text */
} llama__frag;

LLAMA_API int llama__frag_push(llama__frag **v, size_t *n, size_t *cap, size_t off, size_t len, int token) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        llama__frag *g = (llama__frag *)realloc(*v, c * sizeof *g);
        if (!g) return 0;
        *v = g, *cap = c;
    }
    (*v)[*n].off = off, (*v)[*n].len = len, (*v)[(*n)++].token = token;
    return 1;
}

/* llama.cpp's tokenizer_st_partition: every special token, longest first,
   cut out of the text pieces left by the ones before, leftmost first. Control
   and unknown tokens only with parse_special; user-defined ones always. */
LLAMA_API llama_status llama__partition(const llama_tokenizer *t, const char *text, size_t len, int parse_special,
                                          llama__frag **out, size_t *n_out) {
    llama__frag *cur = NULL, *nxt = NULL, *swap;
    size_t n = 0, cap = 0, nn, ncap = 0, s, i, tmp;
    if (!llama__frag_push(&cur, &n, &cap, 0, len, -1)) return LLAMA_ERR_NOMEM;
    for (s = 0; s < t->n_special; s++) {
        int id = t->special[s], typ = t->type[id];
        const char *tok = t->piece_text + t->piece_off[id];
        size_t tl = t->piece_len[id];
        if (!parse_special && (typ == LLAMA_TOKEN_CONTROL || typ == LLAMA_TOKEN_UNKNOWN)) continue;
        for (i = 0, nn = 0; i < n; i++) {
            size_t pos = cur[i].off, end = cur[i].off + cur[i].len;
            int ok = 1;
            if (cur[i].token >= 0) {
                ok = llama__frag_push(&nxt, &nn, &ncap, cur[i].off, cur[i].len, cur[i].token);
            } else {
                size_t p = pos;
                while (ok && p + tl <= end) {
                    const char *hit = (const char *)memchr(text + p, tok[0], end - tl + 1 - p);
                    if (!hit) break;
                    p = (size_t)(hit - text);
                    if (memcmp(hit, tok, tl) != 0) {
                        p++;
                        continue;
                    }
                    if (p > pos) ok = llama__frag_push(&nxt, &nn, &ncap, pos, p - pos, -1);
                    ok = ok && llama__frag_push(&nxt, &nn, &ncap, p, tl, id);
                    pos = p = p + tl;
                }
                if (ok && pos < end) ok = llama__frag_push(&nxt, &nn, &ncap, pos, end - pos, -1);
            }
            if (!ok) {
                free(cur), free(nxt);
                return LLAMA_ERR_NOMEM;
            }
        }
        swap = cur, cur = nxt, nxt = swap;
        tmp = cap, cap = ncap, ncap = tmp, n = nn;
    }
    free(nxt);
    *out = cur, *n_out = n;
    return LLAMA_OK;
}

/* llama.cpp's llama_tokenize: special tokens cut out first (above), BOS
   where the vocabulary adds it and add_special asks, each text piece
   tokenized on its own (SentencePiece-style: with a space prefix at the
   start and after a special token), EOS likewise. A llama2.c tokenizer
   has no special tokens: add_special adds its BOS (id 1). *ids from malloc. */
LLAMA_API llama_status llama_tokenize(const llama_tokenizer *t, const char *text, size_t len, int add_special,
                                        int parse_special, int **ids, size_t *n_ids) {
    llama__ids out;
    llama__work w;
    llama__frag *frag = NULL;
    size_t n_frag = 0, i;
    int prev_special = 1, ok = 1;
    llama_status st = LLAMA_OK;
    if (!t || !t->pieces || (!text && len) || !ids || !n_ids) return LLAMA_ERR_ARG;
    if (len > (size_t)INT_MAX / 8 - 2) return LLAMA_ERR_ARG;
    memset(&out, 0, sizeof out), memset(&w, 0, sizeof w);
    if (t->kind == LLAMA_VOCAB_LLAMA2C) {
        ok = (!add_special || llama__ids_push(&out, LLAMA_BOS)) && llama__spm_encode(t, text, len, len > 0, &w, &out);
    } else {
        if (len > 0) st = llama__partition(t, text, len, parse_special, &frag, &n_frag);
        if (st == LLAMA_OK && add_special && t->add_bos) ok = llama__ids_push(&out, t->bos);
        for (i = 0; st == LLAMA_OK && ok && i < n_frag; i++) {
            if (frag[i].token >= 0) {
                ok = llama__ids_push(&out, frag[i].token);
                prev_special = 1;
            } else if (t->kind == LLAMA_VOCAB_BPE) {
                st = llama__bpe_encode(t, text + frag[i].off, frag[i].len, &w, &out);
            } else {
                ok = llama__spm_encode(t, text + frag[i].off, frag[i].len, t->add_space_prefix && prev_special, &w, &out);
                prev_special = 0;
            }
        }
        if (st == LLAMA_OK && ok && add_special && t->add_eos) ok = llama__ids_push(&out, t->eos);
    }
    free(frag);
    llama__work_free(&w);
    if (st == LLAMA_OK && !ok) st = LLAMA_ERR_NOMEM;
    if (st == LLAMA_OK && !out.v && !(out.v = (int *)malloc(sizeof(int)))) st = LLAMA_ERR_NOMEM;
    if (st != LLAMA_OK) {
        free(out.v);
        return st;
    }
    *ids = out.v, *n_ids = out.n;
    return LLAMA_OK;
}

/* The text as ids, without BOS or EOS and without matching control tokens
   (user-defined tokens of a GGUF vocabulary are still matched, as llama.cpp
   does). llama2.c's encode for llama2.c files. *ids comes from malloc. */
LLAMA_API llama_status llama_encode(const llama_tokenizer *t, const char *text, size_t len, int **ids, size_t *n_ids) {
    return llama_tokenize(t, text, len, 0, 0, ids, n_ids);
}

/* >>detokenize ------------------------------------------------------------- */

/* The bytes token stands for (not NUL-terminated; they may be a partial
   UTF-8 sequence). Control and unknown tokens are empty unless special. */
LLAMA_API llama_status llama_token_piece(const llama_tokenizer *t, int token, int special, const char **s,
                                           size_t *len) {
    if (!t || !t->piece_off || !s || !len) return LLAMA_ERR_ARG;
    if (token < 0 || token >= t->vocab_size) return LLAMA_ERR_TOKEN;
    *s = t->piece_text + t->piece_off[token];
    *len = t->piece_len[token];
    if (!special && t->type && (t->type[token] == LLAMA_TOKEN_CONTROL || t->type[token] == LLAMA_TOKEN_UNKNOWN))
        *len = 0;
    return LLAMA_OK;
}

/* The pieces of ids[0..n) back to back, NUL-terminated, from malloc. */
LLAMA_API llama_status llama_detokenize(const llama_tokenizer *t, const int *ids, size_t n, int special, char **text,
                                          size_t *len) {
    size_t total = 0, i, k;
    const char *s;
    char *out;
    llama_status st;
    if (!t || (!ids && n) || !text || !len) return LLAMA_ERR_ARG;
    for (i = 0; i < n; i++) {
        if ((st = llama_token_piece(t, ids[i], special, &s, &k)) != LLAMA_OK) return st;
        total += k;
    }
    if (!(out = (char *)malloc(total + 1))) return LLAMA_ERR_NOMEM;
    for (i = 0, total = 0; i < n; i++) {
        llama_token_piece(t, ids[i], special, &s, &k);
        memcpy(out + total, s, k);
        total += k;
    }
    out[total] = '\0';
    *text = out, *len = total;
    return LLAMA_OK;
}

/* The text of `token` after `prev`, as llama2.c's decode: no leading space
   after BOS, <0xXX> pieces as their byte. buf holds at least 2 bytes. For
   llama2.c tokenizers; GGUF vocabularies print through llama_token_piece. */
LLAMA_API const char *llama_decode(const llama_tokenizer *t, int prev, int token, char *buf) {
    const char *s = t->pieces[token].str;
    unsigned byte;
    if (prev == LLAMA_BOS && s[0] == ' ') s++;
    if (t->kind == LLAMA_VOCAB_LLAMA2C && t->byte_fallback && token >= 3 && token < 259) {
        byte = (unsigned)(token - 3);
        buf[0] = (char)byte, buf[1] = '\0';
        return buf;
    }
    return s;
}

LLAMA_API int llama__space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Appends BOS + encode(text[a..b) stripped of surrounding whitespace) to
   the growing stream all[n] (capacity cap); nothing for blank text. */
LLAMA_API llama_status llama__append_piece(const llama_tokenizer *t, const char *text, size_t a, size_t b,
                                              int **all, size_t *n, size_t *cap) {
    int *ids;
    size_t n1;
    llama_status st;
    while (a < b && llama__space(text[a])) a++;
    while (b > a && llama__space(text[b - 1])) b--;
    if (b == a) return LLAMA_OK;
    if ((st = llama_encode(t, text + a, b - a, &ids, &n1)) != LLAMA_OK) return st;
    if (*n + n1 + 1 > *cap) {
        size_t grown_cap = 2 * (*n + n1 + 1);
        int *grown = (int *)realloc(*all, grown_cap * sizeof(int));
        if (!grown) {
            free(ids);
            return LLAMA_ERR_NOMEM;
        }
        *all = grown, *cap = grown_cap;
    }
    (*all)[(*n)++] = LLAMA_BOS;
    memcpy(*all + *n, ids, n1 * sizeof(int));
    *n += n1;
    free(ids);
    return LLAMA_OK;
}

/* The evaluation stream: every story (split on the line "<|endoftext|>",
   stripped, empty ones skipped) as BOS + encode(story). */
LLAMA_API llama_status llama_encode_stories(const llama_tokenizer *t, const char *text, size_t len, int **ids,
                                               size_t *n_ids) {
    static const char sep[] = "<|endoftext|>";
    size_t seplen = sizeof sep - 1, pos = 0, n = 0, cap = 0;
    int *all = NULL;
    llama_status st = LLAMA_OK;
    while (pos <= len && st == LLAMA_OK) {
        size_t end = pos, next = len + 1;
        /* the next separator alone on its line */
        for (; end + seplen <= len; end++)
            if (memcmp(text + end, sep, seplen) == 0 && (end == 0 || text[end - 1] == '\n') &&
                (end + seplen == len || text[end + seplen] == '\n' || text[end + seplen] == '\r')) {
                next = end + seplen;
                break;
            }
        if (next == len + 1) end = len;
        st = llama__append_piece(t, text, pos, end, &all, &n, &cap);
        pos = next;
    }
    if (st != LLAMA_OK) {
        free(all);
        return st;
    }
    *ids = all;
    *n_ids = n;
    return LLAMA_OK;
}

#endif /* LLAMA_TOKENIZER_H */
