/* llama2_w4a8.c - W4A8 inference of llama2.c checkpoints, and the per-method accuracy table

   Loads a llama2.c checkpoint (legacy format) and its tokenizer, quantizes
   every linear layer (wq wk wv wo w1 w2 w3, the classifier with a flag) with
   each w4a8 method, and measures each quantized model against FP32 on a text:
   perplexity, mean KL divergence from FP32's next-token distribution, and
   top-1 agreement with FP32. One file: copy it into your project and point
   its #include at w4a8.h.

       cc -std=c99 -O2 -fopenmp examples/llama2_w4a8.c -lm -o llama2_w4a8
       ./llama2_w4a8 --model stories260K.bin --tokenizer tok512.bin \
                     --text tinystories_valid_first1000.txt --windows 50

   --help lists every option. The exit status is 0 only when everything asked
   for ran.

THE PROTOCOL
   The text is split into stories on the line "<|endoftext|>"; each story is
   stripped of surrounding whitespace, encoded like llama2.c's encode (dummy
   prefix space, no BOS/EOS) and given a BOS (id 1). The stories form one
   token stream, cut into consecutive windows of 257 tokens (the tail is
   dropped). In each window tokens 0..255 are fed with a fresh KV cache and
   the predictions of tokens 1..256 are scored. PPL = exp(mean NLL). KL is
   mean over scored tokens of sum_v p_fp32(v) log(p_fp32(v) / p_w4a8(v)).
   A window runs as one batch of 256 tokens through every linear with causal
   attention: the same arithmetic, token by token, as feeding the tokens one
   at a time with a KV cache (a test checks the bits), but the W4A8 GEMM runs
   with M = 256.

   Calibration never sees evaluation text. Default: 128 sequences of 256
   tokens sampled (temperature 1, fixed seed) from the FP32 model, each
   starting at BOS. Or a text file (WikiText-2 raw, or any text): paragraphs
   (split on blank lines) get a BOS each, and 128 windows of 256 tokens are
   taken evenly spread over the stream.

   Character-level tokenizers without byte fallback (tok105.bin): a code point
   that is not in the vocabulary becomes <unk> (id 0), one per code point;
   "\n" is such a character, so paragraph breaks are <unk> <unk>, and those
   predictions are scored like any other. (This reproduces the reference
   PPL 2.0883 of babyllama on 50 windows.) Byte fallback (<0xXX> at ids
   3..258) is used only when the vocabulary has those pieces.

EQUALIZATION, FOLDED
   q/k/v share one input and one equalization s, as do w1/w3. A method that
   equalizes divides X by s; this program folds 1/s into the RMSNorm gamma in
   front (rms_att for q/k/v, rms_ffn for w1/w3, rms_final for the classifier),
   and w2's 1/s into the rows of w3, since w2(silu(w1 x) * (w3 x) / s) is
   exact. That is why w2 is quantized before w1/w3. Nothing can absorb wo's
   s (softmax(q k) v sits in front), so wo divides at run time.

THE OUTLIER VARIANT
   Large LLMs have a few RMSNorm output channels 100x the rest; these tiny
   models do not. The variant multiplies 3 gamma entries of every rms_att and
   rms_ffn by 50, 100 and 200 and divides the matching input columns of
   wq/wk/wv (or w1/w3) by the same factor. In exact arithmetic it is the same
   function (the program checks its FP32 PPL against the original's), but
   per-tensor activation scales now have outliers to cope with.

THE SMALL API (for tools and tests)
   #define LLAMA2_W4A8_NO_MAIN, then #include "llama2_w4a8.c": no main, and no
   W4A8_IMPLEMENTATION (define that in one file of yours). Every function
   returns llama2_status (llama2_status_str says what it means) and writes
   results only through out-parameters.

   llama2_load(path, &model) / llama2_load_mem(buf, bytes, &model) / llama2_free(&model)
   llama2_tokenizer_load(path, vocab_size, &tok) / _load_mem / llama2_tokenizer_free(&tok)
       vocab_size is the model's: a tokenizer with another count is rejected.
   llama2_encode(&tok, text, len, &ids, &n)        ids from malloc, caller frees
   llama2_state_create(&model, max_T, max_pos, &state) / llama2_state_free(state)
       scratch for up to max_T tokens per call and a KV cache of max_pos positions
   llama2_forward(&model, NULL, state, tokens, T, pos0, logits, hook, user)
       the FP32 forward of tokens[0..T) at positions pos0.. (the KV cache holds
       positions < pos0 from earlier calls); logits[T][vocab] or NULL. hook,
       when not NULL, sees the input of every linear before it runs:
           int hook(void *user, const char *name, int layer, llama2_input which,
                    const float *X, size_t T, size_t K);
       name is "L0.qkv", "L0.wo", "L0.w13", "L0.w2", ... and "cls" (layer -1),
       X[T][K] row-major. A non-zero return stops the forward (LLAMA2_ERR_HOOK).
       The second argument, a llama2_qmodel, runs the W4A8 model instead.

   The pipeline main() runs, one function per step:
   llama2_encode_stories(&tok, text, len, &ids, &n)    the protocol's token stream
   llama2_generate_calib(&model, n, len, seed, seqs)   calibration sampled from BOS
   llama2_calibrate(&model, seqs, n, len, &calibs, &wst)
   llama2_quantize(&model, &calibs, &spec, quantize_cls, quantizer, &qmodel, &wst)
   llama2_evaluate(entries, n_entries, stream, n_windows, metrics)
   llama2_inject_outliers(&model, &variant)
*/
#ifndef LLAMA2_W4A8_NO_MAIN
#define W4A8_IMPLEMENTATION
#endif
#include "../w4a8.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Everything is static, so a tool that includes this file and uses part of
   it compiles without unused-function warnings. */
#if defined(__GNUC__) || defined(__clang__)
#define LLAMA2_API static __attribute__((unused))
#else
#define LLAMA2_API static
#endif

/* >>status ----------------------------------------------------------------- */

#define LLAMA2_STATUS_LIST(X)                                                              \
    X(LLAMA2_OK, "success")                                                                \
    X(LLAMA2_ERR_ARG, "invalid argument")                                                  \
    X(LLAMA2_ERR_NOMEM, "out of memory")                                                   \
    X(LLAMA2_ERR_IO, "cannot open or read the file")                                       \
    X(LLAMA2_ERR_TRUNCATED, "the file is shorter than its header says")                    \
    X(LLAMA2_ERR_HEADER, "a header value is zero, negative, inconsistent or absurdly large") \
    X(LLAMA2_ERR_FORMAT, "not a legacy llama2.c checkpoint (longer than its header says, or a versioned export)") \
    X(LLAMA2_ERR_NONFINITE, "NaN or Inf in the weights")                                  \
    X(LLAMA2_ERR_TOKENIZER, "not a llama2.c tokenizer: truncated or a field out of range") \
    X(LLAMA2_ERR_VOCAB, "the tokenizer's vocabulary size differs from the model's")        \
    X(LLAMA2_ERR_TOKEN, "a token id is out of range, or the sequence is longer than the context") \
    X(LLAMA2_ERR_FOLD, "linears sharing an input got different equalizations: cannot fold them") \
    X(LLAMA2_ERR_W4A8, "a w4a8 call failed")                                               \
    X(LLAMA2_ERR_HOOK, "the activation hook stopped the forward")

#define LLAMA2__ENUM(name, msg) name,
typedef enum llama2_status { LLAMA2_STATUS_LIST(LLAMA2__ENUM) LLAMA2_STATUS_COUNT } llama2_status;
#undef LLAMA2__ENUM

LLAMA2_API const char *llama2_status_str(llama2_status st) {
#define LLAMA2__MSG(name, msg) msg,
    static const char *const msgs[] = { LLAMA2_STATUS_LIST(LLAMA2__MSG) };
#undef LLAMA2__MSG
    return (int)st >= 0 && st < LLAMA2_STATUS_COUNT ? msgs[st] : "unknown status";
}

/* >>model ------------------------------------------------------------------ */

/* Sanity bound on every header value: far above any llama2.c model, far
   below what would overflow the size arithmetic. */
#define LLAMA2_MAX_HEADER_VALUE (1 << 24)
#define LLAMA2_BOS 1

typedef struct llama2_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} llama2_config;

/* The linears of one layer, in the order llama2_qmodel stores them. */
enum { LLAMA2_WQ, LLAMA2_WK, LLAMA2_WV, LLAMA2_WO, LLAMA2_W1, LLAMA2_W2, LLAMA2_W3, LLAMA2_LINEARS };

/* The inputs linears share: q/k/v one, w1/w3 one. */
typedef enum llama2_input { LLAMA2_IN_QKV, LLAMA2_IN_WO, LLAMA2_IN_W13, LLAMA2_IN_W2, LLAMA2_IN_CLS } llama2_input;
#define LLAMA2_INPUTS_PER_LAYER 4

typedef struct llama2_model {
    llama2_config c;        /* vocab_size > 0 (the file's sign is in `shared`) */
    int shared;             /* 1: the classifier is the token embedding */
    size_t head_size, kv_dim;
    float *data;            /* owns every tensor below */
    size_t n_floats;
    float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
} llama2_model;

LLAMA2_API int llama2__mul(size_t a, size_t b, size_t *out) {
    if (b != 0 && a > (size_t)-1 / b) return 0;
    *out = a * b;
    return 1;
}

LLAMA2_API int llama2__add(size_t a, size_t b, size_t *out) {
    if (a > (size_t)-1 - b) return 0;
    *out = a + b;
    return 1;
}

LLAMA2_API int32_t llama2__i32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

LLAMA2_API float llama2__f32(const unsigned char *p) {
    int32_t i = llama2__i32(p);
    float f;
    memcpy(&f, &i, 4);
    return f;
}

/* Tensor sizes in file order (in floats); 0 when the count overflows. */
LLAMA2_API size_t llama2__tensor_sizes(const llama2_config *c, int shared, size_t sz[13]) {
    size_t D = (size_t)c->dim, H = (size_t)c->hidden_dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size;
    size_t hs = D / (size_t)c->n_heads, kv = hs * (size_t)c->n_kv_heads, LD = 0, total = 0, i;
    int ok;
    memset(sz, 0, 13 * sizeof *sz);
    ok = llama2__mul(L, D, &LD) && llama2__mul(V, D, &sz[0]) && llama2__mul(LD, D, &sz[2]) &&
         llama2__mul(LD, kv, &sz[3]) && llama2__mul(LD, H, &sz[7]) && llama2__mul((size_t)c->seq_len, hs, &sz[11]);
    sz[1] = sz[6] = LD;          /* rms_att, rms_ffn */
    sz[4] = sz[3];               /* wv like wk */
    sz[5] = sz[2];               /* wo like wq */
    sz[8] = sz[9] = sz[7];       /* w2, w3 like w1 */
    sz[10] = D;                  /* rms_final; sz[11]: freq_cis real + imag, unused */
    sz[12] = shared ? 0 : sz[0]; /* wcls */
    for (i = 0; ok && i < 13; i++) ok = llama2__add(total, sz[i], &total);
    return ok ? total : 0;
}

/* Point the tensors into m->data. */
LLAMA2_API void llama2__map(llama2_model *m) {
    size_t sz[13], off = 0;
    float **t[13];
    int i;
    llama2__tensor_sizes(&m->c, m->shared, sz);
    t[0] = &m->emb, t[1] = &m->rms_att, t[2] = &m->wq, t[3] = &m->wk, t[4] = &m->wv, t[5] = &m->wo;
    t[6] = &m->rms_ffn, t[7] = &m->w1, t[8] = &m->w2, t[9] = &m->w3, t[10] = &m->rms_final;
    t[11] = NULL, t[12] = &m->wcls;
    for (i = 0; i < 13; i++) {
        if (t[i]) *t[i] = m->data + off;
        off += sz[i];
    }
    if (m->shared) m->wcls = m->emb;
}

/* Validate the 28-byte header against the file length; fill m's shape. */
LLAMA2_API llama2_status llama2__header(const unsigned char *h, size_t avail, size_t file_bytes, llama2_model *m) {
    int32_t v[7];
    size_t sz[13], total, bytes;
    int i;
    if (avail >= 4 && llama2__i32(h) == 0x616b3432) return LLAMA2_ERR_FORMAT; /* "ak42": llama2.c v1/v2 export */
    if (avail < 28) return LLAMA2_ERR_TRUNCATED;
    for (i = 0; i < 7; i++) v[i] = llama2__i32(h + 4 * i);
    memset(m, 0, sizeof *m);
    m->shared = v[5] > 0;
    if (v[5] < 0 && v[5] != INT32_MIN) v[5] = -v[5];
    for (i = 0; i < 7; i++)
        if (v[i] <= 0 || v[i] > LLAMA2_MAX_HEADER_VALUE) return LLAMA2_ERR_HEADER;
    m->c.dim = v[0], m->c.hidden_dim = v[1], m->c.n_layers = v[2], m->c.n_heads = v[3];
    m->c.n_kv_heads = v[4], m->c.vocab_size = v[5], m->c.seq_len = v[6];
    /* RoPE needs an even head size; GQA needs kv heads to divide the heads. */
    if (v[0] % v[3] != 0 || (v[0] / v[3]) % 2 != 0 || v[4] > v[3] || v[3] % v[4] != 0) return LLAMA2_ERR_HEADER;
    m->head_size = (size_t)(v[0] / v[3]);
    m->kv_dim = m->head_size * (size_t)v[4];
    total = llama2__tensor_sizes(&m->c, m->shared, sz);
    if (total == 0 || !llama2__mul(total, 4, &bytes) || !llama2__add(bytes, 28, &bytes)) return LLAMA2_ERR_HEADER;
    if (file_bytes < bytes) return LLAMA2_ERR_TRUNCATED;
    if (file_bytes > bytes) return LLAMA2_ERR_FORMAT;
    m->n_floats = total;
    return LLAMA2_OK;
}

/* Decode the little-endian payload in place and check it is finite. */
LLAMA2_API llama2_status llama2__finish_load(llama2_model *m, llama2_model *out) {
    size_t i;
    for (i = 0; i < m->n_floats; i++) {
        unsigned char b[4];
        memcpy(b, &m->data[i], 4);
        m->data[i] = llama2__f32(b);
        if (!(fabsf(m->data[i]) <= FLT_MAX)) {
            free(m->data);
            return LLAMA2_ERR_NONFINITE;
        }
    }
    llama2__map(m);
    *out = *m;
    return LLAMA2_OK;
}

LLAMA2_API llama2_status llama2_load_mem(const void *buffer, size_t bytes, llama2_model *out) {
    const unsigned char *b = (const unsigned char *)buffer;
    llama2_model m;
    llama2_status st;
    if (!buffer || !out) return LLAMA2_ERR_ARG;
    if ((st = llama2__header(b, bytes, bytes, &m)) != LLAMA2_OK) return st;
    m.data = (float *)malloc(m.n_floats * sizeof(float));
    if (!m.data) return LLAMA2_ERR_NOMEM;
    memcpy(m.data, b + 28, m.n_floats * sizeof(float));
    return llama2__finish_load(&m, out);
}

LLAMA2_API llama2_status llama2_load(const char *path, llama2_model *out) {
    unsigned char h[28];
    size_t got;
    long len;
    llama2_model m;
    llama2_status st;
    FILE *f;
    if (!path || !out) return LLAMA2_ERR_ARG;
    if (!(f = fopen(path, "rb"))) return LLAMA2_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return LLAMA2_ERR_IO;
    }
    got = fread(h, 1, sizeof h, f);
    /* The header is checked against the file size before anything is allocated. */
    if ((st = llama2__header(h, got, (size_t)len, &m)) != LLAMA2_OK) {
        fclose(f);
        return st;
    }
    m.data = (float *)malloc(m.n_floats * sizeof(float));
    if (!m.data) st = LLAMA2_ERR_NOMEM;
    else if (fread(m.data, sizeof(float), m.n_floats, f) != m.n_floats) st = LLAMA2_ERR_IO;
    fclose(f);
    if (st != LLAMA2_OK) {
        free(m.data);
        return st;
    }
    return llama2__finish_load(&m, out);
}

LLAMA2_API void llama2_free(llama2_model *m) {
    if (m) {
        free(m->data);
        memset(m, 0, sizeof *m);
    }
}

/* A deep copy (for the outlier variant). */
LLAMA2_API llama2_status llama2_copy(const llama2_model *m, llama2_model *out) {
    llama2_model c = *m;
    if (!(c.data = (float *)malloc(m->n_floats * sizeof(float)))) return LLAMA2_ERR_NOMEM;
    memcpy(c.data, m->data, m->n_floats * sizeof(float));
    llama2__map(&c);
    *out = c;
    return LLAMA2_OK;
}

/* Layer l's linear `which`: W[N][K]. */
LLAMA2_API const float *llama2__weight(const llama2_model *m, int l, int which, size_t *N, size_t *K) {
    size_t D = (size_t)m->c.dim, H = (size_t)m->c.hidden_dim, kv = m->kv_dim, L = (size_t)l;
    switch (which) {
    case LLAMA2_WQ: *N = D, *K = D; return m->wq + L * D * D;
    case LLAMA2_WK: *N = kv, *K = D; return m->wk + L * kv * D;
    case LLAMA2_WV: *N = kv, *K = D; return m->wv + L * kv * D;
    case LLAMA2_WO: *N = D, *K = D; return m->wo + L * D * D;
    case LLAMA2_W1: *N = H, *K = D; return m->w1 + L * H * D;
    case LLAMA2_W2: *N = D, *K = H; return m->w2 + L * D * H;
    default: *N = H, *K = D; return m->w3 + L * H * D;
    }
}

/* >>tokenizer -------------------------------------------------------------- */

typedef struct llama2_piece {
    const char *str;
    int len, id;
} llama2_piece;

typedef struct llama2_tokenizer {
    int vocab_size, max_token_length;
    int byte_fallback;      /* ids 3..258 are <0x00>..<0xFF> */
    char *text;             /* every piece, NUL-terminated, back to back */
    llama2_piece *pieces;   /* by id */
    llama2_piece *sorted;   /* by (bytes, id), for lookup */
    float *scores;
} llama2_tokenizer;

LLAMA2_API int llama2__piece_cmp(const void *a, const void *b) {
    const llama2_piece *x = (const llama2_piece *)a, *y = (const llama2_piece *)b;
    int n = x->len < y->len ? x->len : y->len, c = memcmp(x->str, y->str, (size_t)n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The id of a piece, the lowest if repeated, or -1. */
LLAMA2_API int llama2__lookup(const llama2_tokenizer *t, const char *s, int len) {
    llama2_piece key;
    size_t lo = 0, hi = (size_t)t->vocab_size;
    key.str = s, key.len = len, key.id = -1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (llama2__piece_cmp(&t->sorted[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < (size_t)t->vocab_size && t->sorted[lo].len == len && memcmp(t->sorted[lo].str, s, (size_t)len) == 0)
        return t->sorted[lo].id;
    return -1;
}

LLAMA2_API void llama2_tokenizer_free(llama2_tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->pieces);
    free(t->sorted);
    free(t->scores);
    memset(t, 0, sizeof *t);
}

/* A tokenizer.bin image: int32 max_token_length, then per piece f32 score,
   int32 length, bytes. The file does not store the count, so the whole file
   is parsed and its count compared with the model's vocab_size. */
LLAMA2_API llama2_status llama2_tokenizer_load_mem(const void *buffer, size_t bytes, int vocab_size,
                                                   llama2_tokenizer *out) {
    const unsigned char *b = (const unsigned char *)buffer;
    size_t p = 4, count = 0, text_bytes = 0;
    llama2_tokenizer t;
    int i;
    if (!buffer || !out || vocab_size <= 0) return LLAMA2_ERR_ARG;
    if (bytes < 4) return LLAMA2_ERR_TOKENIZER;
    memset(&t, 0, sizeof t);
    t.max_token_length = llama2__i32(b);
    if (t.max_token_length < 1 || t.max_token_length > 65536) return LLAMA2_ERR_TOKENIZER;
    while (p < bytes) { /* pass 1: validate and count */
        int32_t len;
        if (bytes - p < 8) return LLAMA2_ERR_TOKENIZER;
        len = llama2__i32(b + p + 4);
        if (!(fabsf(llama2__f32(b + p)) <= FLT_MAX) || len < 1 || len > t.max_token_length ||
            bytes - p - 8 < (size_t)len || memchr(b + p + 8, 0, (size_t)len))
            return LLAMA2_ERR_TOKENIZER;
        p += 8 + (size_t)len;
        text_bytes += (size_t)len + 1;
        count++;
    }
    if (count != (size_t)vocab_size) return LLAMA2_ERR_VOCAB;
    t.vocab_size = vocab_size;
    t.text = (char *)malloc(text_bytes);
    t.pieces = (llama2_piece *)malloc(count * sizeof *t.pieces);
    t.sorted = (llama2_piece *)malloc(count * sizeof *t.sorted);
    t.scores = (float *)malloc(count * sizeof *t.scores);
    if (!t.text || !t.pieces || !t.sorted || !t.scores) {
        llama2_tokenizer_free(&t);
        return LLAMA2_ERR_NOMEM;
    }
    for (i = 0, p = 4, text_bytes = 0; i < vocab_size; i++) { /* pass 2: copy */
        int len = llama2__i32(b + p + 4);
        t.scores[i] = llama2__f32(b + p);
        memcpy(t.text + text_bytes, b + p + 8, (size_t)len);
        t.text[text_bytes + (size_t)len] = '\0';
        t.pieces[i].str = t.text + text_bytes;
        t.pieces[i].len = len;
        t.pieces[i].id = i;
        p += 8 + (size_t)len;
        text_bytes += (size_t)len + 1;
    }
    memcpy(t.sorted, t.pieces, count * sizeof *t.sorted);
    qsort(t.sorted, count, sizeof *t.sorted, llama2__piece_cmp);
    t.byte_fallback = vocab_size >= 259 && strcmp(t.pieces[3].str, "<0x00>") == 0 &&
                      strcmp(t.pieces[258].str, "<0xFF>") == 0;
    *out = t;
    return LLAMA2_OK;
}

/* Reads the whole file into memory, then parses it (tokenizers are small:
   anything above 64 MiB is not one). */
LLAMA2_API llama2_status llama2__read_file(const char *path, size_t limit, char **data, size_t *bytes) {
    FILE *f;
    long len;
    char *buf;
    if (!(f = fopen(path, "rb"))) return LLAMA2_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (unsigned long)len > limit) {
        fclose(f);
        return LLAMA2_ERR_IO;
    }
    buf = (char *)malloc((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return LLAMA2_ERR_NOMEM;
    }
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return LLAMA2_ERR_IO;
    }
    fclose(f);
    buf[len] = '\0';
    *data = buf;
    *bytes = (size_t)len;
    return LLAMA2_OK;
}

LLAMA2_API llama2_status llama2_tokenizer_load(const char *path, int vocab_size, llama2_tokenizer *out) {
    char *buf;
    size_t bytes;
    llama2_status st;
    if (!path || !out) return LLAMA2_ERR_ARG;
    if ((st = llama2__read_file(path, (size_t)64 << 20, &buf, &bytes)) != LLAMA2_OK) return st;
    st = llama2_tokenizer_load_mem(buf, bytes, vocab_size, out);
    free(buf);
    return st;
}

/* A candidate merge of the adjacent pieces at nodes left and right; stale
   once either node has changed (its version moved on). */
typedef struct llama2__merge {
    float score;
    int left, right, id;
    unsigned vl, vr;
} llama2__merge;

/* Heap order: highest score first, then leftmost, which is the pair
   llama2.c's linear scan picks. */
LLAMA2_API int llama2__before(const llama2__merge *a, const llama2__merge *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

LLAMA2_API void llama2__heap_push(llama2__merge *h, size_t *n, llama2__merge e) {
    size_t i = (*n)++;
    while (i > 0 && llama2__before(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

LLAMA2_API llama2__merge llama2__heap_pop(llama2__merge *h, size_t *n) {
    llama2__merge top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && llama2__before(&h[c + 1], &h[c])) c++;
        if (!llama2__before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Push the merge of nodes a and b if their concatenation is a piece. */
LLAMA2_API void llama2__try_merge(const llama2_tokenizer *t, const int *tok, const unsigned *ver, char *buf, int a,
                                  int b, llama2__merge *heap, size_t *n) {
    const llama2_piece *x, *y;
    llama2__merge e;
    if (a < 0 || b < 0) return;
    x = &t->pieces[tok[a]], y = &t->pieces[tok[b]];
    memcpy(buf, x->str, (size_t)x->len);
    memcpy(buf + x->len, y->str, (size_t)y->len);
    if ((e.id = llama2__lookup(t, buf, x->len + y->len)) < 0) return;
    e.score = t->scores[e.id], e.left = a, e.right = b, e.vl = ver[a], e.vr = ver[b];
    llama2__heap_push(heap, n, e);
}

/* llama2.c's encode: a dummy-prefix " ", one piece per UTF-8 code point
   (byte fallback, or <unk> without it), then repeatedly the best-scoring
   merge. A heap of candidate merges makes it O(n log n) instead of O(n^2);
   the result is the same. No BOS or EOS. *ids comes from malloc. */
LLAMA2_API llama2_status llama2_encode(const llama2_tokenizer *t, const char *text, size_t len, int **ids, size_t *n_ids) {
    int *tok, *prev, *next, *out;
    unsigned *ver;
    llama2__merge *heap;
    char *buf;
    size_t n = 0, nh = 0, i, cap;
    if (!t || (!text && len) || !ids || !n_ids) return LLAMA2_ERR_ARG;
    if (len > (size_t)INT_MAX / 4 - 2) return LLAMA2_ERR_ARG;
    cap = len + 1;
    tok = (int *)malloc(cap * sizeof(int));
    prev = (int *)malloc(cap * sizeof(int));
    next = (int *)malloc(cap * sizeof(int));
    ver = (unsigned *)calloc(cap, sizeof(unsigned));
    heap = (llama2__merge *)malloc(3 * cap * sizeof *heap); /* n - 1 at first, then 2 per merge */
    buf = (char *)malloc(2 * (size_t)t->max_token_length + 8);
    if (!tok || !prev || !next || !ver || !heap || !buf) {
        free(tok), free(prev), free(next), free(ver), free(heap), free(buf);
        return LLAMA2_ERR_NOMEM;
    }
    if (len > 0) {
        int sp = llama2__lookup(t, " ", 1);
        tok[n++] = sp >= 0 ? sp : (t->byte_fallback ? ' ' + 3 : 0);
    }
    for (i = 0; i < len;) {
        size_t j = i + 1;
        int id;
        /* A code point: a lead byte and up to 3 continuation bytes. */
        while (j < len && j - i < 4 && ((unsigned char)text[j] & 0xC0) == 0x80) j++;
        id = llama2__lookup(t, text + i, (int)(j - i));
        if (id >= 0) tok[n++] = id;
        else if (!t->byte_fallback) tok[n++] = 0;
        else
            for (; i < j; i++) tok[n++] = (unsigned char)text[i] + 3;
        i = j;
    }
    for (i = 0; i < n; i++) {
        prev[i] = (int)i - 1;
        next[i] = i + 1 < n ? (int)i + 1 : -1;
    }
    for (i = 0; i + 1 < n; i++) llama2__try_merge(t, tok, ver, buf, (int)i, (int)i + 1, heap, &nh);
    while (nh > 0) {
        llama2__merge e = llama2__heap_pop(heap, &nh);
        int l = e.left, r = e.right;
        if (ver[l] != e.vl || ver[r] != e.vr) continue;
        tok[l] = e.id;
        ver[l]++, ver[r]++; /* every merge queued with either is now stale */
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        llama2__try_merge(t, tok, ver, buf, prev[l], l, heap, &nh);
        llama2__try_merge(t, tok, ver, buf, l, next[l], heap, &nh);
    }
    out = (int *)malloc((n ? n : 1) * sizeof(int));
    if (out) {
        size_t m = 0;
        int k;
        for (k = n ? 0 : -1; k >= 0; k = next[k]) out[m++] = tok[k];
        *n_ids = m;
        *ids = out;
    }
    free(tok), free(prev), free(next), free(ver), free(heap), free(buf);
    return out ? LLAMA2_OK : LLAMA2_ERR_NOMEM;
}

/* The text of `token` after `prev`, as llama2.c's decode: no leading space
   after BOS, <0xXX> pieces as their byte. buf holds at least 2 bytes. */
LLAMA2_API const char *llama2_decode(const llama2_tokenizer *t, int prev, int token, char *buf) {
    const char *s = t->pieces[token].str;
    unsigned byte;
    if (prev == LLAMA2_BOS && s[0] == ' ') s++;
    if (t->byte_fallback && token >= 3 && token < 259) {
        byte = (unsigned)(token - 3);
        buf[0] = (char)byte, buf[1] = '\0';
        return buf;
    }
    return s;
}

LLAMA2_API int llama2__space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Appends BOS + encode(text[a..b) stripped of surrounding whitespace) to
   the growing stream all[n] (capacity cap); nothing for blank text. */
LLAMA2_API llama2_status llama2__append_piece(const llama2_tokenizer *t, const char *text, size_t a, size_t b,
                                              int **all, size_t *n, size_t *cap) {
    int *ids;
    size_t n1;
    llama2_status st;
    while (a < b && llama2__space(text[a])) a++;
    while (b > a && llama2__space(text[b - 1])) b--;
    if (b == a) return LLAMA2_OK;
    if ((st = llama2_encode(t, text + a, b - a, &ids, &n1)) != LLAMA2_OK) return st;
    if (*n + n1 + 1 > *cap) {
        size_t grown_cap = 2 * (*n + n1 + 1);
        int *grown = (int *)realloc(*all, grown_cap * sizeof(int));
        if (!grown) {
            free(ids);
            return LLAMA2_ERR_NOMEM;
        }
        *all = grown, *cap = grown_cap;
    }
    (*all)[(*n)++] = LLAMA2_BOS;
    memcpy(*all + *n, ids, n1 * sizeof(int));
    *n += n1;
    free(ids);
    return LLAMA2_OK;
}

/* The evaluation stream: every story (split on the line "<|endoftext|>",
   stripped, empty ones skipped) as BOS + encode(story). */
LLAMA2_API llama2_status llama2_encode_stories(const llama2_tokenizer *t, const char *text, size_t len, int **ids,
                                               size_t *n_ids) {
    static const char sep[] = "<|endoftext|>";
    size_t seplen = sizeof sep - 1, pos = 0, n = 0, cap = 0;
    int *all = NULL;
    llama2_status st = LLAMA2_OK;
    while (pos <= len && st == LLAMA2_OK) {
        size_t end = pos, next = len + 1;
        /* the next separator alone on its line */
        for (; end + seplen <= len; end++)
            if (memcmp(text + end, sep, seplen) == 0 && (end == 0 || text[end - 1] == '\n') &&
                (end + seplen == len || text[end + seplen] == '\n' || text[end + seplen] == '\r')) {
                next = end + seplen;
                break;
            }
        if (next == len + 1) end = len;
        st = llama2__append_piece(t, text, pos, end, &all, &n, &cap);
        pos = next;
    }
    if (st != LLAMA2_OK) {
        free(all);
        return st;
    }
    *ids = all;
    *n_ids = n;
    return LLAMA2_OK;
}

/* >>forward ---------------------------------------------------------------- */

/* A model quantized by one method: every linear a w4a8_layer. */
typedef struct llama2_qmodel {
    int n_layers;
    float *rms_att, *rms_ffn, *rms_final; /* gammas with the equalizations folded in */
    w4a8_layer **lin;                     /* [n_layers][LLAMA2_LINEARS] */
    w4a8_layer *cls;                      /* NULL: the classifier stays FP32 */
    w4a8_report *rep;                     /* [n_layers][LLAMA2_INPUTS_PER_LAYER], then the classifier's */
    double seconds;                       /* wall time to quantize */
} llama2_qmodel;

typedef int (*llama2_hook)(void *user, const char *name, int layer, llama2_input which, const float *X, size_t T,
                           size_t K);

/* Scratch for up to max_T tokens per call and a KV cache of max_pos positions. */
typedef struct llama2_state {
    size_t max_T, max_pos;
    float *x, *xb, *xb2, *q, *k, *v, *hb, *hb2, *att;
    float *kcache, *vcache; /* [n_layers][max_pos][kv_dim] */
    float *rope;            /* [max_pos][head_size / 2][cos, sin] */
    void *ws;               /* w4a8 workspace, grown on demand */
    size_t ws_bytes;
} llama2_state;

LLAMA2_API void llama2_state_free(llama2_state *s) {
    if (!s) return;
    free(s->x), free(s->xb), free(s->xb2), free(s->q), free(s->k), free(s->v);
    free(s->hb), free(s->hb2), free(s->att), free(s->kcache), free(s->vcache), free(s->rope), free(s->ws);
    free(s);
}

LLAMA2_API float *llama2__floats(size_t a, size_t b) {
    size_t n;
    return llama2__mul(a, b, &n) && n <= (size_t)-1 / sizeof(float) ? (float *)malloc((n ? n : 1) * sizeof(float))
                                                                      : NULL;
}

LLAMA2_API llama2_status llama2_state_create(const llama2_model *m, size_t max_T, size_t max_pos, llama2_state **out) {
    size_t D, H, kv, hs, p, i, Lp;
    llama2_state *s;
    if (!m || !out || max_T == 0 || max_T > max_pos || max_pos > (size_t)m->c.seq_len) return LLAMA2_ERR_ARG;
    D = (size_t)m->c.dim, H = (size_t)m->c.hidden_dim, kv = m->kv_dim, hs = m->head_size;
    if (!(s = (llama2_state *)calloc(1, sizeof *s))) return LLAMA2_ERR_NOMEM;
    s->max_T = max_T, s->max_pos = max_pos;
    s->x = llama2__floats(max_T, D), s->xb = llama2__floats(max_T, D), s->xb2 = llama2__floats(max_T, D);
    s->q = llama2__floats(max_T, D), s->k = llama2__floats(max_T, kv), s->v = llama2__floats(max_T, kv);
    s->hb = llama2__floats(max_T, H), s->hb2 = llama2__floats(max_T, H), s->att = llama2__floats(max_pos, 1);
    s->rope = llama2__floats(max_pos, hs);
    if (llama2__mul((size_t)m->c.n_layers, max_pos, &Lp)) {
        s->kcache = llama2__floats(Lp, kv);
        s->vcache = llama2__floats(Lp, kv);
    }
    if (!s->x || !s->xb || !s->xb2 || !s->q || !s->k || !s->v || !s->hb || !s->hb2 || !s->att || !s->rope ||
        !s->kcache || !s->vcache) {
        llama2_state_free(s);
        return LLAMA2_ERR_NOMEM;
    }
    for (p = 0; p < max_pos; p++)
        for (i = 0; i < hs / 2; i++) {
            double angle = (double)p * pow(10000.0, -(double)(2 * i) / (double)hs);
            s->rope[p * hs + 2 * i] = (float)cos(angle);
            s->rope[p * hs + 2 * i + 1] = (float)sin(angle);
        }
    *out = s;
    return LLAMA2_OK;
}

/* A dot product in a fixed order (8 running sums): the same bits for a
   token whether it comes alone or in a batch, on any thread. */
LLAMA2_API float llama2__dot(const float *a, const float *b, size_t n) {
    float s[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    size_t k, j;
    for (k = 0; k + 8 <= n; k += 8)
        for (j = 0; j < 8; j++) s[j] += a[k + j] * b[k + j];
    for (j = 0; k < n; k++, j++) s[j] += a[k] * b[k];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Y[T][N] = X[T][K] W^T in FP32. */
LLAMA2_API void llama2__matmul(float *Y, const float *X, const float *W, size_t T, size_t N, size_t K) {
    ptrdiff_t i;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (T * N * K > 100000)
#endif
    for (i = 0; i < (ptrdiff_t)(T * N); i++) Y[i] = llama2__dot(X + (size_t)i / N * K, W + (size_t)i % N * K, K);
}

LLAMA2_API void llama2__rmsnorm(float *out, const float *x, const float *gamma, size_t T, size_t D) {
    size_t t, k;
    for (t = 0; t < T; t++) {
        double ss = 0.0;
        float r;
        for (k = 0; k < D; k++) ss += (double)x[t * D + k] * x[t * D + k];
        r = (float)(1.0 / sqrt(ss / (double)D + 1e-5));
        for (k = 0; k < D; k++) out[t * D + k] = gamma[k] * (r * x[t * D + k]);
    }
}

/* Rotate adjacent pairs (i, i+1) of every head of T rows of `width`. */
LLAMA2_API void llama2__rope(float *x, size_t T, size_t width, size_t hs, const float *rope, size_t pos0) {
    size_t t, i;
    for (t = 0; t < T; t++)
        for (i = 0; i < width; i += 2) {
            const float *cs = rope + (pos0 + t) * hs + (i % hs);
            float a = x[t * width + i], b = x[t * width + i + 1];
            x[t * width + i] = a * cs[0] - b * cs[1];
            x[t * width + i + 1] = a * cs[1] + b * cs[0];
        }
}

LLAMA2_API w4a8_status llama2__qforward(const w4a8_layer *L, const float *X, size_t T, float *Y, llama2_state *s) {
    size_t need;
    w4a8_status st = w4a8_layer_workspace_size(L, T, &need);
    if (st != W4A8_OK) return st;
    if (need > s->ws_bytes) {
        free(s->ws);
        s->ws_bytes = 0;
        if (!(s->ws = malloc(need))) return W4A8_ERR_NOMEM;
        s->ws_bytes = need;
    }
    return w4a8_layer_forward(L, X, T, Y, s->ws, s->ws_bytes);
}

/* Layer l's linear `which` on X[T][K]: FP32, or its w4a8_layer. */
LLAMA2_API llama2_status llama2_linear(const llama2_model *m, const llama2_qmodel *q, llama2_state *s, int l, int which,
                                       const float *X, size_t T, float *Y) {
    size_t N, K;
    const float *W = llama2__weight(m, l, which, &N, &K);
    if (q) return llama2__qforward(q->lin[l * LLAMA2_LINEARS + which], X, T, Y, s) == W4A8_OK ? LLAMA2_OK
                                                                                             : LLAMA2_ERR_W4A8;
    llama2__matmul(Y, X, W, T, N, K);
    return LLAMA2_OK;
}

LLAMA2_API int llama2__call_hook(llama2_hook hook, void *user, int layer, llama2_input which, const float *X, size_t T,
                                 size_t K) {
    static const char *const names[] = { "qkv", "wo", "w13", "w2" };
    char name[32];
    if (!hook) return 0;
    if (which == LLAMA2_IN_CLS) snprintf(name, sizeof name, "cls");
    else snprintf(name, sizeof name, "L%d.%s", layer, names[which]);
    return hook(user, name, layer, which, X, T, K);
}

/* Causal attention of T queries at positions pos0.. over the cached keys. */
LLAMA2_API void llama2__attention(const llama2_model *m, llama2_state *s, int l, size_t T, size_t pos0) {
    size_t hs = m->head_size, kv = m->kv_dim, D = (size_t)m->c.dim, nh = (size_t)m->c.n_heads;
    size_t group = nh / (size_t)m->c.n_kv_heads, t, h, p, i;
    const float *kc = s->kcache + (size_t)l * s->max_pos * kv, *vc = s->vcache + (size_t)l * s->max_pos * kv;
    float inv = (float)(1.0 / sqrt((double)hs));
    for (t = 0; t < T; t++)
        for (h = 0; h < nh; h++) {
            const float *q = s->q + t * D + h * hs;
            float *out = s->xb + t * D + h * hs, mx = -FLT_MAX, sum = 0.0f;
            size_t off = h / group * hs, last = pos0 + t;
            for (p = 0; p <= last; p++) {
                s->att[p] = llama2__dot(q, kc + p * kv + off, hs) * inv;
                if (s->att[p] > mx) mx = s->att[p];
            }
            for (p = 0; p <= last; p++) sum += s->att[p] = expf(s->att[p] - mx);
            for (i = 0; i < hs; i++) out[i] = 0.0f;
            for (p = 0; p <= last; p++) {
                float a = s->att[p] / sum;
                for (i = 0; i < hs; i++) out[i] += a * vc[p * kv + off + i];
            }
        }
}

/* tokens[0..T) at positions pos0..pos0+T-1; logits[T][vocab] or NULL. With
   q, the W4A8 model (its folded gammas, its layers); else FP32. */
LLAMA2_API llama2_status llama2_forward(const llama2_model *m, const llama2_qmodel *q, llama2_state *s, const int *tokens,
                                        size_t T, size_t pos0, float *logits, llama2_hook hook, void *user) {
    size_t D, H, kv, t, i;
    const float *g_att, *g_ffn, *g_final;
    llama2_status st = LLAMA2_OK;
    int l;
    if (!m || !s || !tokens) return LLAMA2_ERR_ARG;
    if (T == 0 || T > s->max_T || pos0 > s->max_pos - T) return LLAMA2_ERR_TOKEN;
    D = (size_t)m->c.dim, H = (size_t)m->c.hidden_dim, kv = m->kv_dim;
    g_att = q ? q->rms_att : m->rms_att, g_ffn = q ? q->rms_ffn : m->rms_ffn, g_final = q ? q->rms_final : m->rms_final;
    for (t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= m->c.vocab_size) return LLAMA2_ERR_TOKEN;
        memcpy(s->x + t * D, m->emb + (size_t)tokens[t] * D, D * sizeof(float));
    }
    for (l = 0; l < m->c.n_layers && st == LLAMA2_OK; l++) {
        float *kc = s->kcache + ((size_t)l * s->max_pos + pos0) * kv, *vc = s->vcache + ((size_t)l * s->max_pos + pos0) * kv;
        llama2__rmsnorm(s->xb, s->x, g_att + (size_t)l * D, T, D);
        if (llama2__call_hook(hook, user, l, LLAMA2_IN_QKV, s->xb, T, D)) return LLAMA2_ERR_HOOK;
        if ((st = llama2_linear(m, q, s, l, LLAMA2_WQ, s->xb, T, s->q)) != LLAMA2_OK ||
            (st = llama2_linear(m, q, s, l, LLAMA2_WK, s->xb, T, s->k)) != LLAMA2_OK ||
            (st = llama2_linear(m, q, s, l, LLAMA2_WV, s->xb, T, s->v)) != LLAMA2_OK)
            break;
        llama2__rope(s->q, T, D, m->head_size, s->rope, pos0);
        llama2__rope(s->k, T, kv, m->head_size, s->rope, pos0);
        memcpy(kc, s->k, T * kv * sizeof(float));
        memcpy(vc, s->v, T * kv * sizeof(float));
        llama2__attention(m, s, l, T, pos0);
        if (llama2__call_hook(hook, user, l, LLAMA2_IN_WO, s->xb, T, D)) return LLAMA2_ERR_HOOK;
        if ((st = llama2_linear(m, q, s, l, LLAMA2_WO, s->xb, T, s->xb2)) != LLAMA2_OK) break;
        for (i = 0; i < T * D; i++) s->x[i] += s->xb2[i];
        llama2__rmsnorm(s->xb, s->x, g_ffn + (size_t)l * D, T, D);
        if (llama2__call_hook(hook, user, l, LLAMA2_IN_W13, s->xb, T, D)) return LLAMA2_ERR_HOOK;
        if ((st = llama2_linear(m, q, s, l, LLAMA2_W1, s->xb, T, s->hb)) != LLAMA2_OK ||
            (st = llama2_linear(m, q, s, l, LLAMA2_W3, s->xb, T, s->hb2)) != LLAMA2_OK)
            break;
        for (i = 0; i < T * H; i++) s->hb[i] = s->hb[i] / (1.0f + expf(-s->hb[i])) * s->hb2[i];
        if (llama2__call_hook(hook, user, l, LLAMA2_IN_W2, s->hb, T, H)) return LLAMA2_ERR_HOOK;
        if ((st = llama2_linear(m, q, s, l, LLAMA2_W2, s->hb, T, s->xb)) != LLAMA2_OK) break;
        for (i = 0; i < T * D; i++) s->x[i] += s->xb[i];
    }
    if (st != LLAMA2_OK) return st;
    llama2__rmsnorm(s->xb, s->x, g_final, T, D);
    if (llama2__call_hook(hook, user, -1, LLAMA2_IN_CLS, s->xb, T, D)) return LLAMA2_ERR_HOOK;
    if (!logits) return LLAMA2_OK;
    if (q && q->cls) return llama2__qforward(q->cls, s->xb, T, logits, s) == W4A8_OK ? LLAMA2_OK : LLAMA2_ERR_W4A8;
    llama2__matmul(logits, s->xb, m->wcls, T, (size_t)m->c.vocab_size, D);
    return LLAMA2_OK;
}

/* >>calibrate -------------------------------------------------------------- */

/* The calibration of every linear input: [n_layers][4] then the classifier's. */
typedef struct llama2_calibs {
    w4a8_calib **c;
    size_t count;
    w4a8_status st; /* the first w4a8_calib_add failure */
} llama2_calibs;

#define LLAMA2_CALIB_SAMPLE 512

LLAMA2_API void llama2_calibs_free(llama2_calibs *cs) {
    size_t i;
    for (i = 0; cs->c && i < cs->count; i++) w4a8_calib_free(cs->c[i]);
    free(cs->c);
    memset(cs, 0, sizeof *cs);
}

LLAMA2_API int llama2__calib_hook(void *user, const char *name, int layer, llama2_input which, const float *X, size_t T,
                                  size_t K) {
    llama2_calibs *cs = (llama2_calibs *)user;
    size_t i = which == LLAMA2_IN_CLS ? cs->count - 1 : (size_t)layer * LLAMA2_INPUTS_PER_LAYER + which;
    (void)name, (void)K;
    cs->st = w4a8_calib_add(cs->c[i], X, T);
    return cs->st != W4A8_OK;
}

/* Statistics (with Hessians and a 512-token sample, so that every method
   has what it needs) of every linear's input over n_seqs sequences of len
   tokens, from the FP32 model. */
LLAMA2_API llama2_status llama2_calibrate(const llama2_model *m, const int *seqs, size_t n_seqs, size_t len,
                                          llama2_calibs *out, w4a8_status *wst) {
    llama2_calibs cs;
    llama2_state *s = NULL;
    llama2_status st;
    size_t i;
    memset(&cs, 0, sizeof cs);
    *wst = W4A8_OK;
    cs.count = (size_t)m->c.n_layers * LLAMA2_INPUTS_PER_LAYER + 1;
    if (!(cs.c = (w4a8_calib **)calloc(cs.count, sizeof *cs.c))) return LLAMA2_ERR_NOMEM;
    for (i = 0; i < cs.count && cs.st == W4A8_OK; i++) {
        size_t K = i % LLAMA2_INPUTS_PER_LAYER == LLAMA2_IN_W2 && i + 1 < cs.count ? (size_t)m->c.hidden_dim
                                                                                   : (size_t)m->c.dim;
        cs.st = w4a8_calib_create(K, 1, LLAMA2_CALIB_SAMPLE, &cs.c[i]);
    }
    st = cs.st != W4A8_OK ? LLAMA2_ERR_W4A8 : llama2_state_create(m, len, len, &s);
    for (i = 0; i < n_seqs && st == LLAMA2_OK; i++)
        st = llama2_forward(m, NULL, s, seqs + i * len, len, 0, NULL, llama2__calib_hook, &cs);
    llama2_state_free(s);
    if (st != LLAMA2_OK) {
        *wst = cs.st;
        if (st == LLAMA2_ERR_HOOK) st = LLAMA2_ERR_W4A8;
        llama2_calibs_free(&cs);
        return st;
    }
    *out = cs;
    return LLAMA2_OK;
}

/* splitmix64 */
LLAMA2_API uint64_t llama2__rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Index of the largest logit (the first, on ties). */
LLAMA2_API int llama2__argmax(const float *x, size_t n) {
    size_t i, best = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int)best;
}

/* Sample from softmax(logits) with u uniform in [0, 1). */
LLAMA2_API int llama2__sample(const float *logits, size_t n, double u) {
    double mx = logits[llama2__argmax(logits, n)], sum = 0.0, acc = 0.0;
    size_t i;
    for (i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    u *= sum;
    for (i = 0; i < n; i++) {
        acc += exp((double)logits[i] - mx);
        if (u < acc) return (int)i;
    }
    return (int)n - 1;
}

/* n_seqs sequences of len tokens sampled at temperature 1 from BOS.
   Sequence i draws from its own generator seeded with (seed, i), so the
   result does not depend on the thread count. */
LLAMA2_API llama2_status llama2_generate_calib(const llama2_model *m, size_t n_seqs, size_t len, uint64_t seed, int *out) {
    llama2_status st = LLAMA2_OK;
    ptrdiff_t i;
    if (len == 0 || len > (size_t)m->c.seq_len) return LLAMA2_ERR_TOKEN;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        llama2_state *s = NULL;
        float *logits = llama2__floats((size_t)m->c.vocab_size, 1);
        llama2_status my = logits ? llama2_state_create(m, 1, len, &s) : LLAMA2_ERR_NOMEM;
#ifdef _OPENMP
#pragma omp for schedule(dynamic)
#endif
        for (i = 0; i < (ptrdiff_t)n_seqs; i++) {
            int *seq = out + (size_t)i * len;
            uint64_t rng = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1));
            size_t p;
            seq[0] = LLAMA2_BOS;
            for (p = 0; p + 1 < len && my == LLAMA2_OK; p++) {
                if ((my = llama2_forward(m, NULL, s, seq + p, 1, p, logits, NULL, NULL)) != LLAMA2_OK) break;
                seq[p + 1] = llama2__sample(logits, (size_t)m->c.vocab_size,
                                            (double)(llama2__rand(&rng) >> 11) / 9007199254740992.0);
            }
        }
        if (my != LLAMA2_OK) {
#ifdef _OPENMP
#pragma omp critical
#endif
            st = my;
        }
        llama2_state_free(s);
        free(logits);
    }
    return st;
}

/* >>quantize --------------------------------------------------------------- */

/* One row of the table: a method, its weight step, an activation mode, a group. */
typedef struct llama2_spec {
    w4a8_method method;
    int gptq_weights;
    w4a8_act_mode act_mode;
    size_t group;
    float fptq_low, fptq_high; /* FPTQ's layer-wise bounds */
} llama2_spec;

LLAMA2_API void llama2_qmodel_free(llama2_qmodel *q) {
    size_t i;
    if (!q) return;
    for (i = 0; q->lin && i < (size_t)q->n_layers * LLAMA2_LINEARS; i++) w4a8_layer_free(q->lin[i]);
    w4a8_layer_free(q->cls);
    free(q->lin), free(q->rep), free(q->rms_att), free(q->rms_ffn), free(q->rms_final);
    free(q);
}

/* The layers sharing an input carry one s (and expect X / s): divide gamma by
   it, or scale rows[r][*] by 1/s[r] when the input is a product with those rows. */
LLAMA2_API llama2_status llama2__fold(w4a8_layer *const *layers, size_t count, float *gamma, size_t K) {
    const float *s = layers[0]->smooth_folded ? layers[0]->smooth : NULL;
    size_t i, k;
    for (i = 1; i < count; i++) {
        const float *si = layers[i]->smooth_folded ? layers[i]->smooth : NULL;
        if ((s == NULL) != (si == NULL) || (s && memcmp(s, si, K * sizeof(float)) != 0)) return LLAMA2_ERR_FOLD;
    }
    for (k = 0; s && k < K; k++) gamma[k] /= s[k];
    return LLAMA2_OK;
}

LLAMA2_API double llama2__now(void) {
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* What quantizes the linears sharing one input: w4a8_quantize_linears, or
   a method of your own with the same contract. */
typedef w4a8_status (*llama2_quantizer)(const w4a8_linear *linears, size_t count, size_t K, const w4a8_calib *calib,
                                        const w4a8_config *cfg, w4a8_layer **layers, w4a8_report *report);

/* Quantize every linear of m with spec, from the calibration cs, through
   quantize (NULL: w4a8_quantize_linears). On failure *wst says what w4a8
   returned. */
LLAMA2_API llama2_status llama2_quantize(const llama2_model *m, const llama2_calibs *cs, const llama2_spec *spec,
                                         int quantize_cls, llama2_quantizer quantize, llama2_qmodel **out,
                                         w4a8_status *wst) {
    size_t D = (size_t)m->c.dim, H = (size_t)m->c.hidden_dim, L = (size_t)m->c.n_layers, l, j, N, K;
    double t0 = llama2__now();
    float *w3 = llama2__floats(H, D);
    llama2_qmodel *q = (llama2_qmodel *)calloc(1, sizeof *q);
    llama2_status st = LLAMA2_OK;
    w4a8_config cfg;
    *wst = W4A8_OK;
    if (!quantize) quantize = w4a8_quantize_linears;
    if (!q || !w3 || !(q->rms_att = llama2__floats(L, D)) || !(q->rms_ffn = llama2__floats(L, D)) ||
        !(q->rms_final = llama2__floats(D, 1)) ||
        !(q->lin = (w4a8_layer **)calloc(L * LLAMA2_LINEARS, sizeof *q->lin)) ||
        !(q->rep = (w4a8_report *)calloc(L * LLAMA2_INPUTS_PER_LAYER + 1, sizeof *q->rep))) {
        free(w3);
        llama2_qmodel_free(q);
        return LLAMA2_ERR_NOMEM;
    }
    q->n_layers = (int)L;
    memcpy(q->rms_att, m->rms_att, L * D * sizeof(float));
    memcpy(q->rms_ffn, m->rms_ffn, L * D * sizeof(float));
    memcpy(q->rms_final, m->rms_final, D * sizeof(float));
    w4a8_config_init(&cfg);
    cfg.method = spec->method;
    cfg.gptq_weights = spec->gptq_weights;
    cfg.act_mode = spec->act_mode;
    cfg.group_size = spec->group;
    cfg.fptq_low = spec->fptq_low;
    cfg.fptq_high = spec->fptq_high;
    for (l = 0; l < L && st == LLAMA2_OK; l++) {
        w4a8_layer **lin = q->lin + l * LLAMA2_LINEARS;
        w4a8_calib *const *c = cs->c + l * LLAMA2_INPUTS_PER_LAYER;
        w4a8_report *rep = q->rep + l * LLAMA2_INPUTS_PER_LAYER;
        w4a8_linear qkv[3], o, w2, w13[2];
        const float *s2;
        memset(qkv, 0, sizeof qkv), memset(&o, 0, sizeof o), memset(&w2, 0, sizeof w2), memset(w13, 0, sizeof w13);
        for (j = 0; j < 3; j++) qkv[j].W = llama2__weight(m, (int)l, LLAMA2_WQ + (int)j, &qkv[j].N, &K);
        qkv[0].skip_clip = qkv[1].skip_clip = 1; /* AWQ does not clip q and k */
        o.W = llama2__weight(m, (int)l, LLAMA2_WO, &o.N, &K);
        w2.W = llama2__weight(m, (int)l, LLAMA2_W2, &w2.N, &K);
        w13[0].W = llama2__weight(m, (int)l, LLAMA2_W1, &w13[0].N, &K);
        memcpy(w3, llama2__weight(m, (int)l, LLAMA2_W3, &N, &K), H * D * sizeof(float));
        w13[1].W = w3, w13[1].N = H;

        cfg.fold_smooth = 1;
        if ((*wst = quantize(qkv, 3, D, c[LLAMA2_IN_QKV], &cfg, lin + LLAMA2_WQ, &rep[LLAMA2_IN_QKV])))
            break;
        if ((st = llama2__fold(lin + LLAMA2_WQ, 3, q->rms_att + l * D, D)) != LLAMA2_OK) break;
        /* w2 before w3: its s goes into w3's rows. */
        if ((*wst = quantize(&w2, 1, H, c[LLAMA2_IN_W2], &cfg, lin + LLAMA2_W2, &rep[LLAMA2_IN_W2])))
            break;
        s2 = lin[LLAMA2_W2]->smooth_folded ? lin[LLAMA2_W2]->smooth : NULL;
        for (j = 0; s2 && j < H * D; j++) w3[j] /= s2[j / D];
        {
            w4a8_layer *pair[2] = { NULL, NULL };
            if ((*wst = quantize(w13, 2, D, c[LLAMA2_IN_W13], &cfg, pair, &rep[LLAMA2_IN_W13]))) break;
            lin[LLAMA2_W1] = pair[0], lin[LLAMA2_W3] = pair[1];
            if ((st = llama2__fold(pair, 2, q->rms_ffn + l * D, D)) != LLAMA2_OK) break;
        }
        cfg.fold_smooth = 0; /* nothing in front of wo can absorb 1/s */
        if ((*wst = quantize(&o, 1, D, c[LLAMA2_IN_WO], &cfg, lin + LLAMA2_WO, &rep[LLAMA2_IN_WO])))
            break;
    }
    if (st == LLAMA2_OK && *wst == W4A8_OK && quantize_cls) {
        w4a8_linear cls;
        memset(&cls, 0, sizeof cls);
        cls.W = m->wcls, cls.N = (size_t)m->c.vocab_size;
        cfg.fold_smooth = 1;
        if (!(*wst = quantize(&cls, 1, D, cs->c[cs->count - 1], &cfg, &q->cls, &q->rep[L * LLAMA2_INPUTS_PER_LAYER])))
            st = llama2__fold(&q->cls, 1, q->rms_final, D);
    }
    free(w3);
    if (st == LLAMA2_OK && *wst != W4A8_OK) st = LLAMA2_ERR_W4A8;
    if (st != LLAMA2_OK) {
        llama2_qmodel_free(q);
        return st;
    }
    q->seconds = llama2__now() - t0;
    *out = q;
    return LLAMA2_OK;
}

/* >>evaluate --------------------------------------------------------------- */

/* One model to score: FP32 (q NULL) or W4A8. */
typedef struct llama2_entry {
    const llama2_model *m;
    const llama2_qmodel *q;
} llama2_entry;

typedef struct llama2_metrics {
    double nll, kl;         /* sums over scored tokens */
    size_t top1, tokens;    /* agreements with entry 0, tokens scored */
} llama2_metrics;

#define LLAMA2_WINDOW 257

/* log_softmax of x[n] into out, in double. */
LLAMA2_API void llama2__log_softmax(const float *x, size_t n, double *out) {
    double mx = x[llama2__argmax(x, n)], sum = 0.0, lse;
    size_t i;
    for (i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    lse = mx + log(sum);
    for (i = 0; i < n; i++) out[i] = (double)x[i] - lse;
}

/* Score every entry on n_windows windows of the stream; KL and top-1 are
   measured against entry 0. Windows run in parallel, each on one thread;
   per-window sums are added in window order, so the result is the same for
   every thread count. */
LLAMA2_API llama2_status llama2_evaluate(const llama2_entry *e, size_t n_entries, const int *stream, size_t n_windows,
                                         llama2_metrics *out) {
    const llama2_model *m = e[0].m;
    size_t V = (size_t)m->c.vocab_size, T = LLAMA2_WINDOW - 1, r, w;
    llama2_metrics *per = (llama2_metrics *)calloc(n_windows * n_entries + 1, sizeof *per);
    llama2_status st = LLAMA2_OK;
    ptrdiff_t wi;
    if (!per) return LLAMA2_ERR_NOMEM;
    if ((size_t)m->c.seq_len < T) {
        free(per);
        return LLAMA2_ERR_TOKEN;
    }
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        llama2_state *s = NULL;
        float *ref = llama2__floats(T, V), *lg = llama2__floats(T, V);
        double *lp0 = (double *)malloc(T * V * sizeof(double)), *lp = (double *)malloc(V * sizeof(double));
        llama2_status my = ref && lg && lp0 && lp ? llama2_state_create(m, T, T, &s) : LLAMA2_ERR_NOMEM;
#ifdef _OPENMP
#pragma omp for schedule(dynamic)
#endif
        for (wi = 0; wi < (ptrdiff_t)n_windows; wi++) {
            const int *tok = stream + (size_t)wi * LLAMA2_WINDOW;
            size_t rr, t;
            for (rr = 0; rr < n_entries && my == LLAMA2_OK; rr++) {
                llama2_metrics *mt = &per[(size_t)wi * n_entries + rr];
                if ((my = llama2_forward(e[rr].m, e[rr].q, s, tok, T, 0, rr ? lg : ref, NULL, NULL)) != LLAMA2_OK)
                    break;
                for (t = 0; t < T; t++) {
                    const float *row = (rr ? lg : ref) + t * V;
                    double *l0 = lp0 + t * V, kl = 0.0;
                    size_t v;
                    if (rr == 0) llama2__log_softmax(row, V, l0);
                    llama2__log_softmax(row, V, lp);
                    for (v = 0; rr && v < V; v++) kl += exp(l0[v]) * (l0[v] - lp[v]);
                    mt->nll -= lp[tok[t + 1]];
                    mt->kl += kl;
                    mt->top1 += llama2__argmax(row, V) == llama2__argmax(ref + t * V, V);
                    mt->tokens++;
                }
            }
        }
        if (my != LLAMA2_OK) {
#ifdef _OPENMP
#pragma omp critical
#endif
            st = my;
        }
        llama2_state_free(s);
        free(ref), free(lg), free(lp0), free(lp);
    }
    for (r = 0; r < n_entries && st == LLAMA2_OK; r++) {
        memset(&out[r], 0, sizeof out[r]);
        for (w = 0; w < n_windows; w++) {
            const llama2_metrics *mt = &per[w * n_entries + r];
            out[r].nll += mt->nll, out[r].kl += mt->kl, out[r].top1 += mt->top1, out[r].tokens += mt->tokens;
        }
    }
    free(per);
    return st;
}

LLAMA2_API double llama2_ppl(const llama2_metrics *mt) {
    return exp(mt->nll / (double)mt->tokens);
}

/* >>outliers --------------------------------------------------------------- */

/* The outlier variant: gamma[c] *= f and the matching input columns /= f
   for 3 channels of every rms_att (q/k/v columns) and rms_ffn (w1/w3). */
LLAMA2_API llama2_status llama2_inject_outliers(const llama2_model *m, llama2_model *out) {
    static const float factors[3] = { 50.0f, 100.0f, 200.0f };
    size_t D = (size_t)m->c.dim, L = (size_t)m->c.n_layers, l, i, n, N, K;
    llama2_model v;
    llama2_status st;
    if (D < 3) return LLAMA2_ERR_ARG;
    if ((st = llama2_copy(m, &v)) != LLAMA2_OK) return st;
    for (l = 0; l < L; l++)
        for (i = 0; i < 3; i++) {
            size_t c = (5 + 13 * l + i * (D / 3)) % D;
            float f = factors[i];
            int which;
            v.rms_att[l * D + c] *= f;
            v.rms_ffn[l * D + c] *= f;
            for (which = LLAMA2_WQ; which <= LLAMA2_W3; which++) {
                float *W;
                if (which == LLAMA2_WO || which == LLAMA2_W2) continue;
                W = (float *)llama2__weight(&v, (int)l, which, &N, &K);
                for (n = 0; n < N; n++) W[n * K + c] /= f;
            }
        }
    *out = v;
    return LLAMA2_OK;
}

#ifndef LLAMA2_W4A8_NO_MAIN
/* >>main ------------------------------------------------------------------- */

static const char usage[] =
    "usage: llama2_w4a8 --model FILE --tokenizer FILE --text FILE [options]\n"
    "\n"
    "Quantizes every linear layer of a llama2.c checkpoint with each w4a8 method and\n"
    "prints PPL, KL from FP32 and top-1 agreement with FP32 on the text, per method.\n"
    "\n"
    "  --model FILE        llama2.c checkpoint, legacy format (stories260K.bin, ...)\n"
    "  --tokenizer FILE    llama2.c tokenizer.bin matching the model's vocabulary\n"
    "  --text FILE         evaluation text, stories separated by lines <|endoftext|>\n"
    "  --windows N         evaluate the first N windows of 257 tokens (default: all)\n"
    "  --methods LIST      comma list of rtn, smoothquant, awq, gptq, fptq, auto, and\n"
    "                      X+gptq (GPTQ as X's weight step), each optionally with\n"
    "                      :token or :tensor for its activation mode (not fptq)\n"
    "                      (default: rtn,smoothquant,awq,gptq,fptq,auto,awq+gptq,fptq+gptq;\n"
    "                      with the default, methods this build lacks are skipped)\n"
    "  --group LIST        weight group sizes, comma list (default 32)\n"
    "  --act MODE          token, tensor or both: activation modes for methods\n"
    "                      without a suffix (default both); fptq chooses each\n"
    "                      layer's mode itself and gets one row\n"
    "  --fptq-bounds L,H   FPTQ's layer-wise bounds on max|x| (default 15,150):\n"
    "                      below L per-tensor static, then LAE + static, from H per token\n"
    "  --calib SRC         generated (default): sequences sampled from the FP32 model\n"
    "                      from BOS; or a text FILE (e.g. wikitext2_test_raw.txt)\n"
    "  --calib-seqs N      calibration sequences of 256 tokens (default 128)\n"
    "  --seed N            seed of the generated calibration (default 1)\n"
    "  --variants LIST     original, outliers or both (default original,outliers)\n"
    "  --quantize-classifier  make the classifier a w4a8 layer too\n"
    "  --sample N          tokens of greedy text from FP32 and from the W4A8 model with\n"
    "                      the lowest KL (default 48; 0: none)\n"
    "  --table OUT.md      also write the tables as Markdown\n"
    "  --threads N         OpenMP threads (default: all)\n"
    "  --help              this text\n";

static const char *const method_names[W4A8_METHOD_COUNT] = { "rtn", "smoothquant", "awq", "gptq", "fptq", "auto" };

typedef struct options {
    const char *model, *tokenizer, *text, *calib, *table, *methods, *groups, *variants;
    size_t windows, calib_seqs, sample;
    float fptq_low, fptq_high;
    uint64_t seed;
    int act_token, act_tensor, quantize_cls, threads, methods_given;
} options;

static int parse_size(const char *s, size_t lo, size_t hi, size_t *out) {
    char *end;
    unsigned long long v;
    if (!s || *s < '0' || *s > '9') return 0;
    v = strtoull(s, &end, 10);
    if (*end || v < lo || v > hi) return 0;
    *out = (size_t)v;
    return 1;
}

/* "LOW,HIGH" with 0 <= LOW <= HIGH, both finite. */
static int parse_bounds(const char *s, float *low, float *high) {
    char *end;
    double a, b;
    if (!s) return 0;
    a = strtod(s, &end);
    if (*end != ',') return 0;
    b = strtod(end + 1, &end);
    if (*end || !(a >= 0 && a <= b && b <= 3e38)) return 0;
    *low = (float)a, *high = (float)b;
    return 1;
}

static int parse_args(int argc, char **argv, options *o) {
    int i;
    memset(o, 0, sizeof *o);
    o->calib = "generated";
    o->methods = "rtn,smoothquant,awq,gptq,fptq,auto,awq+gptq,fptq+gptq";
    o->groups = "32";
    o->variants = "original,outliers";
    o->calib_seqs = 128, o->sample = 48, o->seed = 1;
    o->fptq_low = 15.0f, o->fptq_high = 150.0f;
    o->act_token = o->act_tensor = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 2;
        if (!strcmp(a, "--quantize-classifier")) {
            o->quantize_cls = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "llama2_w4a8: %s needs a value (see --help)\n", a);
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
        else if (!strcmp(a, "--text")) o->text = v;
        else if (!strcmp(a, "--calib")) o->calib = v;
        else if (!strcmp(a, "--table")) o->table = v;
        else if (!strcmp(a, "--methods")) o->methods = v, o->methods_given = 1;
        else if (!strcmp(a, "--group")) o->groups = v;
        else if (!strcmp(a, "--variants")) o->variants = v;
        else if (!strcmp(a, "--windows") && parse_size(v, 1, (size_t)-1, &o->windows)) {}
        else if (!strcmp(a, "--calib-seqs") && parse_size(v, 1, 1 << 20, &o->calib_seqs)) {}
        else if (!strcmp(a, "--sample") && parse_size(v, 0, 1 << 20, &o->sample)) {}
        else if (!strcmp(a, "--seed") && parse_size(v, 0, (size_t)-1, &n)) o->seed = (uint64_t)n;
        else if (!strcmp(a, "--threads") && parse_size(v, 1, 4096, &n)) o->threads = (int)n;
        else if (!strcmp(a, "--fptq-bounds") && parse_bounds(v, &o->fptq_low, &o->fptq_high)) {}
        else if (!strcmp(a, "--act") && (!strcmp(v, "token") || !strcmp(v, "tensor") || !strcmp(v, "both"))) {
            o->act_token = strcmp(v, "tensor") != 0;
            o->act_tensor = strcmp(v, "token") != 0;
        } else {
            fprintf(stderr, "llama2_w4a8: bad option or value: %s %s (see --help)\n", a, v);
            return 0;
        }
    }
    if (!o->model || !o->tokenizer || !o->text) {
        fprintf(stderr, "llama2_w4a8: --model, --tokenizer and --text are required (see --help)\n");
        return 0;
    }
    return 1;
}

/* Next comma-separated item of *list into buf; 0 at the end. */
static int next_item(const char **list, char *buf, size_t cap) {
    const char *s = *list, *e;
    size_t n;
    if (!*s) return 0;
    e = strchr(s, ',');
    n = e ? (size_t)(e - s) : strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *list = e ? e + 1 : s + strlen(s);
    return 1;
}

/* "awq+gptq:tensor" -> spec(s); returns how many (1 or 2), 0 if bad. */
static int parse_method(const char *item, const options *o, size_t group, llama2_spec out[2]) {
    char name[64];
    const char *colon = strchr(item, ':'), *plus;
    size_t n = colon ? (size_t)(colon - item) : strlen(item), len;
    int m, count = 0;
    llama2_spec s;
    if (n >= sizeof name) return 0;
    memcpy(name, item, n);
    name[n] = '\0';
    memset(&s, 0, sizeof s);
    s.group = group;
    s.fptq_low = o->fptq_low, s.fptq_high = o->fptq_high;
    plus = strchr(name, '+');
    if (plus) {
        if (strcmp(plus, "+gptq") != 0) return 0;
        s.gptq_weights = 1;
    }
    len = plus ? (size_t)(plus - name) : strlen(name);
    for (m = 0; m < W4A8_METHOD_COUNT; m++)
        if (strlen(method_names[m]) == len && !strncmp(name, method_names[m], len)) break;
    if (m == W4A8_METHOD_COUNT || (s.gptq_weights && m == W4A8_METHOD_GPTQ)) return 0;
    s.method = (w4a8_method)m;
    if (colon && strcmp(colon, ":token") && strcmp(colon, ":tensor")) return 0;
    /* FPTQ picks each layer's activation mode itself: one row, not two equal ones. */
    if (s.method == W4A8_METHOD_FPTQ) {
        s.act_mode = W4A8_ACT_PER_TOKEN;
        out[0] = s;
        return 1;
    }
    if (colon ? !strcmp(colon, ":token") : o->act_token) {
        s.act_mode = W4A8_ACT_PER_TOKEN;
        out[count++] = s;
    }
    if (colon ? !strcmp(colon, ":tensor") : o->act_tensor) {
        s.act_mode = W4A8_ACT_PER_TENSOR;
        out[count++] = s;
    }
    return count;
}

/* "+gptq" when GPTQ did the weight step of another method. */
static const char *gptq_suffix(w4a8_method m, int gptq_weights) {
    return gptq_weights && m != W4A8_METHOD_GPTQ ? "+gptq" : "";
}

static void spec_name(const llama2_spec *s, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s", method_names[s->method], gptq_suffix(s->method, s->gptq_weights));
}

static const char *spec_act(const llama2_spec *s) {
    if (s->method == W4A8_METHOD_FPTQ) return "layer-wise";
    return s->act_mode == W4A8_ACT_PER_TOKEN ? "token" : "tensor";
}

/* "token", "tensor", or "mixed (k/L tensor)" over the layers of one class. */
static void act_summary(const llama2_qmodel *q, int cls, char *buf, size_t cap) {
    int l, tensor = 0;
    for (l = 0; l < q->n_layers; l++) tensor += q->rep[l * LLAMA2_INPUTS_PER_LAYER + cls].act_mode == W4A8_ACT_PER_TENSOR;
    if (tensor == 0) snprintf(buf, cap, "token");
    else if (tensor == q->n_layers) snprintf(buf, cap, "tensor");
    else snprintf(buf, cap, "mixed %d/%d tensor", tensor, q->n_layers);
}

/* Each row is printed and, when md is open, written to it. */
static void emit(FILE *md, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (md) {
        va_start(ap, fmt);
        vfprintf(md, fmt, ap);
        va_end(ap);
    }
}

/* Greedy text from BOS, n tokens at most, stopping at BOS. */
static llama2_status print_greedy(FILE *md, const char *label, const llama2_model *m, const llama2_qmodel *q,
                                  const llama2_tokenizer *tok, size_t n) {
    llama2_state *s = NULL;
    float *logits = llama2__floats((size_t)m->c.vocab_size, 1);
    size_t len = n + 1 < (size_t)m->c.seq_len ? n + 1 : (size_t)m->c.seq_len, p;
    int cur = LLAMA2_BOS, next;
    llama2_status st = logits ? llama2_state_create(m, 1, len, &s) : LLAMA2_ERR_NOMEM;
    emit(md, "\n%s: \"", label);
    for (p = 0; p + 1 < len && st == LLAMA2_OK; p++) {
        char buf[2];
        const char *piece, *c;
        if ((st = llama2_forward(m, q, s, &cur, 1, p, logits, NULL, NULL)) != LLAMA2_OK) break;
        next = llama2__argmax(logits, (size_t)m->c.vocab_size);
        if (next == LLAMA2_BOS) break;
        piece = llama2_decode(tok, cur, next, buf);
        for (c = piece; *c; c++) /* newlines shown as spaces: one line per sample */
            emit(md, "%c", *c == '\n' || *c == '\r' ? ' ' : ((unsigned char)*c < 32 ? '?' : *c));
        cur = next;
    }
    emit(md, "\"\n");
    llama2_state_free(s);
    free(logits);
    return st;
}

typedef struct row {
    llama2_spec spec;
    llama2_qmodel *q;
    w4a8_status st;
} row;

/* Calibrate, quantize with every spec, evaluate, print one table. */
static int run_variant(const options *o, const char *tag, const char *title, const llama2_model *orig,
                       const llama2_model *m, const llama2_tokenizer *tok, const int *stream, size_t n_windows,
                       const int *calib, size_t n_calib, const char *calib_desc, const llama2_spec *specs,
                       size_t n_specs, FILE *md) {
    llama2_calibs cs;
    llama2_entry *e = (llama2_entry *)calloc(n_specs + 2, sizeof *e);
    llama2_metrics *mt = (llama2_metrics *)calloc(n_specs + 2, sizeof *mt);
    row *rows = (row *)calloc(n_specs + 1, sizeof *rows);
    size_t i, n_rows = 0, n_e = 0, best = 0, n_skipped = 0;
    int failed = 0, has_orig = orig != m;
    double t0 = llama2__now(), fp32_ppl;
    char skipped[512] = "";
    w4a8_status wst;
    llama2_status st;
    if (!e || !mt || !rows) {
        free(e), free(mt), free(rows);
        fprintf(stderr, "llama2_w4a8: out of memory\n");
        return 1;
    }
    printf("\n[%s] calibrating on %s ...\n", tag, calib_desc);
    fflush(stdout);
    if ((st = llama2_calibrate(m, calib, n_calib, LLAMA2_WINDOW - 1, &cs, &wst)) != LLAMA2_OK) {
        fprintf(stderr, "llama2_w4a8: calibration: %s%s%s\n", llama2_status_str(st), wst ? ": " : "",
                wst ? w4a8_status_str(wst) : "");
        free(e), free(mt), free(rows);
        return 1;
    }
    printf("[%s] calibrated in %.1f s\n", tag, llama2__now() - t0);
    for (i = 0; i < n_specs; i++) {
        char name[32];
        const char *act = spec_act(&specs[i]);
        row *r = &rows[n_rows];
        r->spec = specs[i];
        spec_name(&specs[i], name, sizeof name);
        st = llama2_quantize(m, &cs, &specs[i], o->quantize_cls, NULL, &r->q, &r->st);
        if (st == LLAMA2_ERR_W4A8 && r->st == W4A8_ERR_UNSUPPORTED && !o->methods_given) {
            size_t len = strlen(skipped);
            if (len + strlen(name) + 32 < sizeof skipped && !strstr(skipped, name))
                snprintf(skipped + len, sizeof skipped - len, "%s%s", n_skipped ? ", " : "", name);
            n_skipped++;
            continue;
        }
        if (st != LLAMA2_OK) {
            fprintf(stderr, "llama2_w4a8: [%s] %s g%zu %s: %s%s%s\n", tag, name, specs[i].group, act,
                    llama2_status_str(st), r->st ? ": " : "", r->st ? w4a8_status_str(r->st) : "");
            failed = 1;
            continue;
        }
        printf("[%s] quantized %s g%zu %s in %.2f s\n", tag, name, specs[i].group, act, r->q->seconds);
        n_rows++;
    }
    if (n_skipped) printf("[%s] skipped, not supported by this build of w4a8.h: %s\n", tag, skipped);
    llama2_calibs_free(&cs);
    e[n_e].m = m, n_e++;
    if (has_orig) e[n_e].m = orig, n_e++;
    for (i = 0; i < n_rows; i++) e[n_e].m = m, e[n_e].q = rows[i].q, n_e++;
    printf("[%s] evaluating %zu models on %zu windows ...\n", tag, n_e, n_windows);
    fflush(stdout);
    t0 = llama2__now();
    if ((st = llama2_evaluate(e, n_e, stream, n_windows, mt)) != LLAMA2_OK) {
        fprintf(stderr, "llama2_w4a8: evaluation: %s\n", llama2_status_str(st));
        failed = 1;
    } else {
        size_t first = has_orig ? 2 : 1;
        printf("[%s] evaluated in %.1f s\n\n", tag, llama2__now() - t0);
        fp32_ppl = llama2_ppl(&mt[0]);
        emit(md, "### %s\n\n", title);
        emit(md, "%zu windows, %zu scored tokens; calibration: %s; classifier %s; activation modes per layer "
                 "class as the method chose (FPTQ bounds %g/%g).\n\n",
             n_windows, mt[0].tokens, calib_desc, o->quantize_cls ? "W4A8 too" : "FP32", o->fptq_low,
             o->fptq_high);
        if (has_orig) {
            double rel = fabs(fp32_ppl - llama2_ppl(&mt[1])) / llama2_ppl(&mt[1]);
            emit(md, "FP32 check: variant PPL %.6f, original %.6f, relative difference %.1e (%s), KL %.1e.\n\n",
                 fp32_ppl, llama2_ppl(&mt[1]), rel, rel <= 1e-4 ? "same function" : "MISMATCH",
                 mt[1].kl / (double)mt[1].tokens);
            if (rel > 1e-4) failed = 1;
        }
        emit(md, "| method | group | act qkv | act wo | act w13 | act w2 | PPL | ΔPPL | KL | top-1 %% | quant s |\n");
        emit(md, "| --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
        emit(md, "| fp32 | - | - | - | - | - | %.4f | - | - | - | - |\n", fp32_ppl);
        for (i = 0; i < n_rows; i++) {
            const llama2_metrics *x = &mt[first + i];
            char name[32], act[4][48];
            int c;
            double ppl = llama2_ppl(x);
            spec_name(&rows[i].spec, name, sizeof name);
            for (c = 0; c < 4; c++) act_summary(rows[i].q, c, act[c], sizeof act[c]);
            emit(md, "| %s | %zu | %s | %s | %s | %s | %.4f | %+.4f (%+.1f%%) | %.5f | %.2f | %.2f |\n", name,
                 rows[i].spec.group, act[0], act[1], act[2], act[3], ppl, ppl - fp32_ppl,
                 100.0 * (ppl / fp32_ppl - 1.0), x->kl / (double)x->tokens, 100.0 * (double)x->top1 / (double)x->tokens,
                 rows[i].q->seconds);
            if (x->kl < mt[first + best].kl) best = i;
        }
        for (i = 0; i < n_rows; i++) {
            const llama2_qmodel *q = rows[i].q;
            int l, c;
            if (rows[i].spec.method != W4A8_METHOD_AUTO) continue;
            emit(md, "\nauto (g%zu, %s) chose, per layer qkv/wo/w13/w2:", rows[i].spec.group,
                 spec_act(&rows[i].spec));
            for (l = 0; l < q->n_layers; l++)
                for (c = 0; c < 4; c++) {
                    const w4a8_report *rp = &q->rep[l * LLAMA2_INPUTS_PER_LAYER + c];
                    emit(md, "%s%s%s", c ? "/" : (l ? "; " : " "), method_names[rp->method],
                         gptq_suffix(rp->method, rp->gptq_weights));
                }
            emit(md, "\n");
        }
        if (o->sample) {
            char label[128];
            if (print_greedy(md, "greedy FP32", m, NULL, tok, o->sample) != LLAMA2_OK) failed = 1;
            if (n_rows) {
                char name[32];
                spec_name(&rows[best].spec, name, sizeof name);
                snprintf(label, sizeof label, "greedy W4A8 %s g%zu %s (lowest KL)", name, rows[best].spec.group,
                         spec_act(&rows[best].spec));
                if (print_greedy(md, label, m, rows[best].q, tok, o->sample) != LLAMA2_OK) failed = 1;
            }
        }
        emit(md, "\n");
    }
    for (i = 0; i < n_rows; i++) llama2_qmodel_free(rows[i].q);
    free(e), free(mt), free(rows);
    return failed;
}

/* Calibration tokens from a text: paragraphs (blank-line separated) get a
   BOS each; n windows of len tokens spread evenly over the stream. */
static llama2_status calib_from_text(const llama2_tokenizer *tok, const char *text, size_t bytes, size_t n,
                                     size_t len, int *out, size_t *got) {
    int *all = NULL;
    size_t total = 0, cap = 0, pos = 0, i, stride;
    llama2_status st = LLAMA2_OK;
    while (pos < bytes && st == LLAMA2_OK) {
        const char *end = strstr(text + pos, "\n\n");
        size_t stop = end ? (size_t)(end - text) : bytes;
        st = llama2__append_piece(tok, text, pos, stop, &all, &total, &cap);
        pos = end ? stop + 2 : bytes;
    }
    if (st == LLAMA2_OK) {
        if (total / len < n) n = total / len;
        stride = n ? total / n : 0;
        for (i = 0; i < n; i++) memcpy(out + i * len, all + i * stride, len * sizeof(int));
        *got = n;
    }
    free(all);
    return st;
}

int main(int argc, char **argv) {
    options o;
    llama2_model model, outl;
    llama2_tokenizer tok;
    llama2_spec *specs = NULL;
    char *text = NULL, *ctext = NULL, item[64], calib_desc[512], title_orig[256], title_outl[320];
    const char *list;
    int *stream = NULL, *calib = NULL, want_orig = 0, want_outl = 0, failed = 0;
    size_t n_stream, n_windows, n_specs = 0, cap_specs, text_bytes, n_calib = 0, g;
    size_t groups[16], n_groups = 0;
    FILE *md = NULL;
    llama2_status st;
    int pa = parse_args(argc, argv, &o);
    if (pa == 2) {
        fputs(usage, stdout);
        return 0;
    }
    if (!pa) return 2;
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads(o.threads);
    omp_set_max_active_levels(1); /* windows in parallel; the layers inside run on one thread */
#endif
    for (list = o.variants; next_item(&list, item, sizeof item);) {
        if (!strcmp(item, "original")) want_orig = 1;
        else if (!strcmp(item, "outliers")) want_outl = 1;
        else {
            fprintf(stderr, "llama2_w4a8: unknown variant '%s' (original, outliers)\n", item);
            return 2;
        }
    }
    for (list = o.groups; next_item(&list, item, sizeof item);)
        if (n_groups == 16 || !parse_size(item, 1, W4A8_MAX_GROUP, &groups[n_groups++])) {
            fprintf(stderr, "llama2_w4a8: bad --group '%s'\n", o.groups);
            return 2;
        }
    cap_specs = 2 * 64 * (n_groups ? n_groups : 1);
    specs = (llama2_spec *)malloc(cap_specs * sizeof *specs);
    for (g = 0; specs && g < n_groups; g++)
        for (list = o.methods; next_item(&list, item, sizeof item);) {
            int k = n_specs + 2 <= cap_specs ? parse_method(item, &o, groups[g], specs + n_specs) : 0;
            if (!k) {
                fprintf(stderr, "llama2_w4a8: bad method '%s' (see --help)\n", item);
                free(specs);
                return 2;
            }
            n_specs += (size_t)k;
        }
    if (!specs || !n_groups || (!want_orig && !want_outl)) {
        fprintf(stderr, "llama2_w4a8: nothing to do (check --group, --methods, --variants)\n");
        free(specs);
        return 2;
    }

    if ((st = llama2_load(o.model, &model)) != LLAMA2_OK) {
        fprintf(stderr, "llama2_w4a8: %s: %s\n", o.model, llama2_status_str(st));
        free(specs);
        return 1;
    }
    printf("model %s: dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d (%s classifier), seq_len %d\n",
           o.model, model.c.dim, model.c.hidden_dim, model.c.n_layers, model.c.n_heads, model.c.n_kv_heads,
           model.c.vocab_size, model.shared ? "shared" : "unshared", model.c.seq_len);
    if ((st = llama2_tokenizer_load(o.tokenizer, model.c.vocab_size, &tok)) != LLAMA2_OK) {
        fprintf(stderr, "llama2_w4a8: %s: %s\n", o.tokenizer, llama2_status_str(st));
        llama2_free(&model);
        free(specs);
        return 1;
    }
    printf("tokenizer %s: %d pieces, %s\n", o.tokenizer, tok.vocab_size,
           tok.byte_fallback ? "byte fallback" : "no byte fallback (unknown characters -> <unk>)");
    st = llama2__read_file(o.text, (size_t)1 << 30, &text, &text_bytes);
    if (st == LLAMA2_OK) st = llama2_encode_stories(&tok, text, text_bytes, &stream, &n_stream);
    free(text);
    if (st != LLAMA2_OK) {
        fprintf(stderr, "llama2_w4a8: %s: %s\n", o.text, llama2_status_str(st));
        failed = 1;
        goto done;
    }
    n_windows = n_stream / LLAMA2_WINDOW;
    if (o.windows && o.windows < n_windows) n_windows = o.windows;
    printf("text %s: %zu tokens, %zu windows of %d used\n", o.text, n_stream, n_windows, LLAMA2_WINDOW);
    if (n_windows == 0 || (size_t)model.c.seq_len < LLAMA2_WINDOW - 1) {
        fprintf(stderr, "llama2_w4a8: need at least one window of %d tokens and a context of %d\n", LLAMA2_WINDOW,
                LLAMA2_WINDOW - 1);
        failed = 1;
        goto done;
    }

    calib = (int *)malloc(o.calib_seqs * (LLAMA2_WINDOW - 1) * sizeof(int));
    if (!calib) {
        fprintf(stderr, "llama2_w4a8: out of memory\n");
        failed = 1;
        goto done;
    }
    if (!strcmp(o.calib, "generated")) {
        double t0 = llama2__now();
        st = llama2_generate_calib(&model, o.calib_seqs, LLAMA2_WINDOW - 1, o.seed, calib);
        n_calib = o.calib_seqs;
        snprintf(calib_desc, sizeof calib_desc, "%zu sequences x %d tokens sampled from the FP32 model from BOS (seed %llu)",
                 n_calib, LLAMA2_WINDOW - 1, (unsigned long long)o.seed);
        printf("generated calibration tokens in %.1f s\n", llama2__now() - t0);
    } else {
        st = llama2__read_file(o.calib, (size_t)1 << 30, &ctext, &text_bytes);
        if (st == LLAMA2_OK)
            st = calib_from_text(&tok, ctext, text_bytes, o.calib_seqs, LLAMA2_WINDOW - 1, calib, &n_calib);
        free(ctext);
        if (st == LLAMA2_OK && n_calib == 0) {
            fprintf(stderr, "llama2_w4a8: %s: fewer than %d tokens\n", o.calib, LLAMA2_WINDOW - 1);
            failed = 1;
            goto done;
        }
        snprintf(calib_desc, sizeof calib_desc, "%zu windows x %d tokens of %s", n_calib, LLAMA2_WINDOW - 1, o.calib);
    }
    if (st != LLAMA2_OK) {
        fprintf(stderr, "llama2_w4a8: calibration data: %s\n", llama2_status_str(st));
        failed = 1;
        goto done;
    }
    if (o.table && !(md = fopen(o.table, "w"))) {
        fprintf(stderr, "llama2_w4a8: cannot write %s\n", o.table);
        failed = 1;
        goto done;
    }
    {
        const char *base = strrchr(o.model, '/') ? strrchr(o.model, '/') + 1 : o.model;
        snprintf(title_orig, sizeof title_orig, "%s, as trained", base);
        snprintf(title_outl, sizeof title_outl,
                 "%s, outlier variant (3 channels of every rms_att and rms_ffn x50, x100, x200)", base);
    }
    if (md) {
        int i;
        fprintf(md, "<!-- produced by:");
        for (i = 0; i < argc; i++) fprintf(md, " %s", argv[i]);
        fprintf(md, " -->\n\n");
    }
    if (want_orig)
        failed |= run_variant(&o, "original", title_orig, &model, &model, &tok, stream, n_windows, calib, n_calib, calib_desc,
                              specs, n_specs, md);
    if (want_outl) {
        if ((st = llama2_inject_outliers(&model, &outl)) != LLAMA2_OK) {
            fprintf(stderr, "llama2_w4a8: outlier variant: %s\n", llama2_status_str(st));
            failed = 1;
        } else {
            failed |= run_variant(&o, "outliers", title_outl, &model,
                                  &outl, &tok, stream, n_windows, calib, n_calib, calib_desc, specs, n_specs, md);
            llama2_free(&outl);
        }
    }
    if (md && fclose(md) != 0) {
        fprintf(stderr, "llama2_w4a8: cannot write %s\n", o.table);
        failed = 1;
    }
done:
    free(stream), free(calib), free(specs);
    llama2_tokenizer_free(&tok);
    llama2_free(&model);
    return failed ? 1 : 0;
}
#endif /* LLAMA2_W4A8_NO_MAIN */
