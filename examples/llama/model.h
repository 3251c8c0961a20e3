/* model.h - the LLaMA-family model of the examples: status codes, the
   llama2.c checkpoint loader, the FP32 and W4A8 forward with its KV cache and
   activation hooks, and the outlier variant. Part of examples/llama/ (see
   llama.h for the whole small API); needs w4a8.h declarations only. */
#ifndef LLAMA_MODEL_H
#define LLAMA_MODEL_H
#include "../../w4a8.h"

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
#define LLAMA_API static __attribute__((unused))
#else
#define LLAMA_API static
#endif

/* >>status ----------------------------------------------------------------- */

#define LLAMA_STATUS_LIST(X)                                                              \
    X(LLAMA_OK, "success")                                                                \
    X(LLAMA_ERR_ARG, "invalid argument")                                                  \
    X(LLAMA_ERR_NOMEM, "out of memory")                                                   \
    X(LLAMA_ERR_IO, "cannot open or read the file")                                       \
    X(LLAMA_ERR_TRUNCATED, "the file is shorter than its header says")                    \
    X(LLAMA_ERR_HEADER, "a header value is zero, negative, inconsistent or absurdly large") \
    X(LLAMA_ERR_FORMAT, "not a legacy llama2.c checkpoint (longer than its header says, or a versioned export)") \
    X(LLAMA_ERR_NONFINITE, "NaN or Inf in the weights")                                  \
    X(LLAMA_ERR_TOKENIZER, "not a llama2.c tokenizer: truncated or a field out of range") \
    X(LLAMA_ERR_VOCAB, "the tokenizer's vocabulary size differs from the model's")        \
    X(LLAMA_ERR_TOKEN, "a token id is out of range, or the sequence is longer than the context") \
    X(LLAMA_ERR_FOLD, "linears sharing an input got different equalizations: cannot fold them") \
    X(LLAMA_ERR_W4A8, "a w4a8 call failed")                                               \
    X(LLAMA_ERR_HOOK, "the activation hook stopped the forward")                          \
    X(LLAMA_ERR_SMALL_VOCAB, "the vocabulary is too small for the special ids (<unk> 0, BOS 1, EOS 2)") \
    X(LLAMA_ERR_GGUF, "malformed GGUF: bad magic, an empty, duplicate or non-UTF-8 key, a bad tensor name or BOOL, arrays nested too deep") \
    X(LLAMA_ERR_GGUF_VERSION, "GGUF version other than 2 or 3")                            \
    X(LLAMA_ERR_GGUF_TYPE, "a GGUF value or tensor type is unknown or not the one expected, or a shape its type cannot hold") \
    X(LLAMA_ERR_GGUF_LAYOUT, "GGUF alignment not a power of two, or tensor data misaligned, overlapping or past the end") \
    X(LLAMA_ERR_GGUF_KEY, "a GGUF metadata key is missing")                                \
    X(LLAMA_ERR_GGUF_MODEL, "the GGUF model is not LLaMA-family, or a tensor or hyperparameter is missing or inconsistent") \
    X(LLAMA_ERR_VOCAB_MODEL, "unknown tokenizer model or pre-tokenizer (gpt2 with smollm, llama-bpe or gpt-2; or llama)") \
    X(LLAMA_ERR_VOCAB_TOKEN, "a vocabulary token is empty, too long, holds a NUL byte or is repeated, or its score or type is bad") \
    X(LLAMA_ERR_VOCAB_MERGE, "a BPE merge is not \"a b\" of two tokens whose concatenation is a token") \
    X(LLAMA_ERR_VOCAB_SPECIAL, "a special token id or an add_bos/add_eos flag is out of range") \
    X(LLAMA_ERR_TEXT, "the text decodes to a code point above U+10FFFF, which llama.cpp cannot tokenize") \
    X(LLAMA_ERR_EXPORT_GROUP, "export: a layer's weight group is not 32 (llama.cpp's Q4_0 and Q4_1 blocks)") \
    X(LLAMA_ERR_EXPORT_ASYM, "export: a layer has zero points, which Q4_0 cannot hold (allow Q4_1)") \
    X(LLAMA_ERR_EXPORT_RUNTIME, "export: a layer divides by an equalization or rotates its input at run time, which llama.cpp cannot") \
    X(LLAMA_ERR_EXPORT_MODEL, "export: a quantized classifier, a bias, or an embedding or shape not the source GGUF's") \
    X(LLAMA_ERR_EXPORT_RANGE, "export: a scale is past fp16's range")

#define LLAMA__ENUM(name, msg) name,
typedef enum llama_status { LLAMA_STATUS_LIST(LLAMA__ENUM) LLAMA_STATUS_COUNT } llama_status;
#undef LLAMA__ENUM

LLAMA_API const char *llama_status_str(llama_status st) {
#define LLAMA__MSG(name, msg) msg,
    static const char *const msgs[] = { LLAMA_STATUS_LIST(LLAMA__MSG) };
#undef LLAMA__MSG
    return (int)st >= 0 && st < LLAMA_STATUS_COUNT ? msgs[st] : "unknown status";
}

/* >>model ------------------------------------------------------------------ */

/* Sanity bound on every header value: far above any llama2.c model, far
   below what would overflow the size arithmetic. */
#define LLAMA_MAX_HEADER_VALUE (1 << 24)
#define LLAMA_BOS 1
#define LLAMA_EOS 2 /* the highest special id: every vocabulary has more */

typedef struct llama_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} llama_config;

/* The linears of one layer, in the order llama_qmodel stores them. */
enum { LLAMA_WQ, LLAMA_WK, LLAMA_WV, LLAMA_WO, LLAMA_W1, LLAMA_W2, LLAMA_W3, LLAMA_LINEARS };

/* The inputs linears share: q/k/v one, w1/w3 one. */
typedef enum llama_input { LLAMA_IN_QKV, LLAMA_IN_WO, LLAMA_IN_W13, LLAMA_IN_W2, LLAMA_IN_CLS } llama_input;
#define LLAMA_INPUTS_PER_LAYER 4

typedef struct llama_model {
    llama_config c;        /* vocab_size > 0 (the file's sign is in `shared`) */
    int shared;             /* 1: the classifier is the token embedding */
    int online_w2;          /* 1: w2 reads its input times the Hadamard matrix of order
                               hidden_dim, seed 0 (llama_rotate) */
    size_t head_size, kv_dim;
    double rope_base, norm_eps; /* llama2.c: 10000 and 1e-5; GGUF: its metadata */
    size_t rope_dim;            /* dimensions RoPE rotates in each head (head_size in llama2.c) */
    float *data;            /* owns every tensor below */
    size_t n_floats;
    float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
} llama_model;

LLAMA_API int llama__mul(size_t a, size_t b, size_t *out) {
    if (b != 0 && a > (size_t)-1 / b) return 0;
    *out = a * b;
    return 1;
}

LLAMA_API int llama__add(size_t a, size_t b, size_t *out) {
    if (a > (size_t)-1 - b) return 0;
    *out = a + b;
    return 1;
}

LLAMA_API int32_t llama__i32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

LLAMA_API float llama__f32(const unsigned char *p) {
    int32_t i = llama__i32(p);
    float f;
    memcpy(&f, &i, 4);
    return f;
}

/* GGUF read and write (uses the helpers above). */
#include "gguf.h"

/* Tensor sizes in file order (in floats); 0 when the count overflows. */
LLAMA_API size_t llama__tensor_sizes(const llama_config *c, int shared, size_t sz[13]) {
    size_t D = (size_t)c->dim, H = (size_t)c->hidden_dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size;
    size_t hs = D / (size_t)c->n_heads, kv = hs * (size_t)c->n_kv_heads, LD = 0, total = 0, i;
    int ok;
    memset(sz, 0, 13 * sizeof *sz);
    ok = llama__mul(L, D, &LD) && llama__mul(V, D, &sz[0]) && llama__mul(LD, D, &sz[2]) &&
         llama__mul(LD, kv, &sz[3]) && llama__mul(LD, H, &sz[7]) && llama__mul((size_t)c->seq_len, hs, &sz[11]);
    sz[1] = sz[6] = LD;          /* rms_att, rms_ffn */
    sz[4] = sz[3];               /* wv like wk */
    sz[5] = sz[2];               /* wo like wq */
    sz[8] = sz[9] = sz[7];       /* w2, w3 like w1 */
    sz[10] = D;                  /* rms_final; sz[11]: freq_cis real + imag, unused */
    sz[12] = shared ? 0 : sz[0]; /* wcls */
    for (i = 0; ok && i < 13; i++) ok = llama__add(total, sz[i], &total);
    return ok ? total : 0;
}

/* Point the tensors into m->data. */
LLAMA_API void llama__map(llama_model *m) {
    size_t sz[13], off = 0;
    float **t[13];
    int i;
    llama__tensor_sizes(&m->c, m->shared, sz);
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
LLAMA_API llama_status llama__header(const unsigned char *h, size_t avail, size_t file_bytes, llama_model *m) {
    int32_t v[7];
    size_t sz[13], total, bytes;
    int i;
    if (avail >= 4 && llama__i32(h) == 0x616b3432) return LLAMA_ERR_FORMAT; /* "ak42": llama2.c v1/v2 export */
    if (avail < 28) return LLAMA_ERR_TRUNCATED;
    for (i = 0; i < 7; i++) v[i] = llama__i32(h + 4 * i);
    memset(m, 0, sizeof *m);
    m->shared = v[5] > 0;
    if (v[5] < 0 && v[5] != INT32_MIN) v[5] = -v[5];
    for (i = 0; i < 7; i++)
        if (v[i] <= 0 || v[i] > LLAMA_MAX_HEADER_VALUE) return LLAMA_ERR_HEADER;
    m->c.dim = v[0], m->c.hidden_dim = v[1], m->c.n_layers = v[2], m->c.n_heads = v[3];
    m->c.n_kv_heads = v[4], m->c.vocab_size = v[5], m->c.seq_len = v[6];
    /* RoPE needs an even head size; GQA needs kv heads to divide the heads. */
    if (v[0] % v[3] != 0 || (v[0] / v[3]) % 2 != 0 || v[4] > v[3] || v[3] % v[4] != 0) return LLAMA_ERR_HEADER;
    m->head_size = (size_t)(v[0] / v[3]);
    m->kv_dim = m->head_size * (size_t)v[4];
    m->rope_base = 10000.0, m->norm_eps = 1e-5, m->rope_dim = m->head_size;
    total = llama__tensor_sizes(&m->c, m->shared, sz);
    if (total == 0 || !llama__mul(total, 4, &bytes) || !llama__add(bytes, 28, &bytes)) return LLAMA_ERR_HEADER;
    if (file_bytes < bytes) return LLAMA_ERR_TRUNCATED;
    if (file_bytes > bytes) return LLAMA_ERR_FORMAT;
    if (v[5] <= LLAMA_EOS) return LLAMA_ERR_SMALL_VOCAB;
    m->n_floats = total;
    return LLAMA_OK;
}

/* Decode the little-endian payload in place and check it is finite. */
LLAMA_API llama_status llama__finish_load(llama_model *m, llama_model *out) {
    size_t i;
    for (i = 0; i < m->n_floats; i++) {
        unsigned char b[4];
        memcpy(b, &m->data[i], 4);
        m->data[i] = llama__f32(b);
        if (!(fabsf(m->data[i]) <= FLT_MAX)) {
            free(m->data);
            return LLAMA_ERR_NONFINITE;
        }
    }
    llama__map(m);
    *out = *m;
    return LLAMA_OK;
}

/* >>gguf-model ------------------------------------------------------------- */

LLAMA_API const float *llama__weight(const llama_model *m, int l, int which, size_t *N, size_t *K);

/* A LLaMA-family GGUF (general.architecture "llama") into the same layout:
   token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
   ffn_norm, ffn_gate (w1), ffn_down (w2), ffn_up (w3)}, output_norm, and
   output or, when absent, the embedding as the classifier. Every tensor is
   dequantized to float; the configuration comes from llama.* metadata. The
   q/k weights are used as stored: llama.cpp's converter permutes them for
   its adjacent-pair ("normal") RoPE, which is llama2.c's pairing. */
LLAMA_API llama_status llama__gguf_hparam(const llama_gguf *g, const char *key, int required, uint64_t dflt,
                                            int *out) {
    uint64_t v;
    llama_status st = llama_gguf_get_u64(g, key, &v);
    if (st == LLAMA_ERR_GGUF_KEY && !required) v = dflt;
    else if (st != LLAMA_OK) return st == LLAMA_ERR_GGUF_KEY ? LLAMA_ERR_GGUF_MODEL : st;
    if (v == 0 || v > LLAMA_MAX_HEADER_VALUE) return LLAMA_ERR_HEADER;
    *out = (int)v;
    return LLAMA_OK;
}

/* Dequantize tensor `name` of shape {ne0, ne1} into dst. */
LLAMA_API llama_status llama__gguf_take_tensor(const llama_gguf *g, const char *name, size_t ne0, size_t ne1,
                                                 float *dst) {
    const llama_gguf_tensor *t = llama_gguf_tensor_find(g, name);
    if (!t || t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) return LLAMA_ERR_GGUF_MODEL;
    return llama_gguf_dequantize(t, dst, ne0 * ne1);
}

LLAMA_API llama_status llama_load_gguf(const llama_gguf *g, llama_model *out) {
    static const char *const names[7] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up" };
    const llama_gguf_tensor *emb, *cls;
    const char *arch;
    llama_model m;
    llama_status st;
    size_t sz[13], i, l, D;
    double f;
    int rope_dim;
    char name[LLAMA_GGUF_MAX_NAME];
    if (!g || !out) return LLAMA_ERR_ARG;
    memset(&m, 0, sizeof m);
    if ((st = llama_gguf_get_str(g, "general.architecture", &arch, NULL)) != LLAMA_OK || strcmp(arch, "llama") != 0)
        return st == LLAMA_ERR_GGUF_TYPE ? st : LLAMA_ERR_GGUF_MODEL;
    if ((st = llama__gguf_hparam(g, "llama.embedding_length", 1, 0, &m.c.dim)) != LLAMA_OK ||
        (st = llama__gguf_hparam(g, "llama.feed_forward_length", 1, 0, &m.c.hidden_dim)) != LLAMA_OK ||
        (st = llama__gguf_hparam(g, "llama.block_count", 1, 0, &m.c.n_layers)) != LLAMA_OK ||
        (st = llama__gguf_hparam(g, "llama.attention.head_count", 1, 0, &m.c.n_heads)) != LLAMA_OK ||
        (st = llama__gguf_hparam(g, "llama.attention.head_count_kv", 0, (uint64_t)m.c.n_heads, &m.c.n_kv_heads)) !=
            LLAMA_OK ||
        (st = llama__gguf_hparam(g, "llama.context_length", 1, 0, &m.c.seq_len)) != LLAMA_OK)
        return st;
    if (m.c.dim % m.c.n_heads != 0 || (m.c.dim / m.c.n_heads) % 2 != 0 || m.c.n_kv_heads > m.c.n_heads ||
        m.c.n_heads % m.c.n_kv_heads != 0)
        return LLAMA_ERR_HEADER;
    m.head_size = (size_t)(m.c.dim / m.c.n_heads);
    m.kv_dim = m.head_size * (size_t)m.c.n_kv_heads;
    if ((st = llama__gguf_hparam(g, "llama.rope.dimension_count", 0, m.head_size, &rope_dim)) != LLAMA_OK) return st;
    if ((size_t)rope_dim > m.head_size || rope_dim % 2 != 0) return LLAMA_ERR_HEADER;
    m.rope_dim = (size_t)rope_dim;
    m.rope_base = 10000.0;
    if ((st = llama_gguf_get_f64(g, "llama.rope.freq_base", &f)) == LLAMA_OK) m.rope_base = f;
    else if (st != LLAMA_ERR_GGUF_KEY) return st;
    if ((st = llama_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &m.norm_eps)) != LLAMA_OK)
        return st == LLAMA_ERR_GGUF_KEY ? LLAMA_ERR_GGUF_MODEL : st;
    if (!(m.rope_base > 1.0 && m.rope_base < 1e30) || !(m.norm_eps > 0.0 && m.norm_eps < 1.0)) return LLAMA_ERR_HEADER;
    D = (size_t)m.c.dim;
    if (!(emb = llama_gguf_tensor_find(g, "token_embd.weight")) || emb->n_dims != 2 || emb->ne[0] != D)
        return LLAMA_ERR_GGUF_MODEL;
    if (emb->ne[1] == 0 || emb->ne[1] > LLAMA_MAX_HEADER_VALUE) return LLAMA_ERR_HEADER;
    m.c.vocab_size = (int)emb->ne[1];
    cls = llama_gguf_tensor_find(g, "output.weight");
    m.shared = cls == NULL;
    if (!(m.n_floats = llama__tensor_sizes(&m.c, m.shared, sz)) || m.n_floats > (size_t)-1 / sizeof(float))
        return LLAMA_ERR_HEADER;
    if (!(m.data = (float *)calloc(m.n_floats, sizeof(float)))) return LLAMA_ERR_NOMEM;
    llama__map(&m);
    st = llama__gguf_take_tensor(g, "token_embd.weight", D, (size_t)m.c.vocab_size, m.emb);
    for (l = 0; st == LLAMA_OK && l < (size_t)m.c.n_layers; l++) {
        int which;
        snprintf(name, sizeof name, "blk.%u.attn_norm.weight", (unsigned)l);
        st = llama__gguf_take_tensor(g, name, D, 1, m.rms_att + l * D);
        snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", (unsigned)l);
        if (st == LLAMA_OK) st = llama__gguf_take_tensor(g, name, D, 1, m.rms_ffn + l * D);
        for (which = 0; st == LLAMA_OK && which < LLAMA_LINEARS; which++) {
            size_t N, K;
            float *W = (float *)llama__weight(&m, (int)l, which, &N, &K);
            snprintf(name, sizeof name, "blk.%u.%s.weight", (unsigned)l, names[which]);
            st = llama__gguf_take_tensor(g, name, K, N, W);
        }
    }
    if (st == LLAMA_OK) st = llama__gguf_take_tensor(g, "output_norm.weight", D, 1, m.rms_final);
    if (st == LLAMA_OK && cls) st = llama__gguf_take_tensor(g, "output.weight", D, (size_t)m.c.vocab_size, m.wcls);
    for (i = 0; st == LLAMA_OK && i < m.n_floats; i++)
        if (!(fabsf(m.data[i]) <= FLT_MAX)) st = LLAMA_ERR_NONFINITE;
    if (st != LLAMA_OK) {
        free(m.data);
        return st;
    }
    *out = m;
    return LLAMA_OK;
}

/* A GGUF image or file: the magic decides. */
LLAMA_API int llama__is_gguf(const unsigned char *b, size_t n) {
    return n >= 4 && (uint32_t)llama__i32(b) == LLAMA_GGUF_MAGIC;
}

/* 1 when the file at path starts with GGUF's magic. */
LLAMA_API int llama_is_gguf_file(const char *path) {
    unsigned char h[4];
    FILE *f = path ? fopen(path, "rb") : NULL;
    size_t got = f ? fread(h, 1, 4, f) : 0;
    if (f) fclose(f);
    return llama__is_gguf(h, got);
}

/* From a path (buffer NULL) or an image. */
LLAMA_API llama_status llama__load_gguf_from(const char *path, const void *buffer, size_t bytes, llama_model *out) {
    llama_gguf *g;
    llama_status st = path ? llama_gguf_open(path, &g) : llama_gguf_open_mem(buffer, bytes, &g);
    if (st != LLAMA_OK) return st;
    st = llama_load_gguf(g, out);
    llama_gguf_close(g);
    return st;
}

LLAMA_API llama_status llama_load_mem(const void *buffer, size_t bytes, llama_model *out) {
    const unsigned char *b = (const unsigned char *)buffer;
    llama_model m;
    llama_status st;
    if (!buffer || !out) return LLAMA_ERR_ARG;
    if (llama__is_gguf(b, bytes)) return llama__load_gguf_from(NULL, b, bytes, out);
    if ((st = llama__header(b, bytes, bytes, &m)) != LLAMA_OK) return st;
    m.data = (float *)malloc(m.n_floats * sizeof(float));
    if (!m.data) return LLAMA_ERR_NOMEM;
    memcpy(m.data, b + 28, m.n_floats * sizeof(float));
    return llama__finish_load(&m, out);
}

LLAMA_API llama_status llama_load(const char *path, llama_model *out) {
    unsigned char h[28];
    size_t got;
    long len;
    llama_model m;
    llama_status st;
    FILE *f;
    if (!path || !out) return LLAMA_ERR_ARG;
    if (!(f = fopen(path, "rb"))) return LLAMA_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return LLAMA_ERR_IO;
    }
    got = fread(h, 1, sizeof h, f);
    if (llama__is_gguf(h, got)) {
        fclose(f);
        return llama__load_gguf_from(path, NULL, 0, out);
    }
    /* The header is checked against the file size before anything is
       allocated; a read error (a directory) is not a short file. */
    if (ferror(f)) st = LLAMA_ERR_IO;
    else st = llama__header(h, got, (size_t)len, &m);
    if (st != LLAMA_OK) {
        fclose(f);
        return st;
    }
    m.data = (float *)malloc(m.n_floats * sizeof(float));
    if (!m.data) st = LLAMA_ERR_NOMEM;
    else if (fread(m.data, sizeof(float), m.n_floats, f) != m.n_floats) st = LLAMA_ERR_IO;
    fclose(f);
    if (st != LLAMA_OK) {
        free(m.data);
        return st;
    }
    return llama__finish_load(&m, out);
}

LLAMA_API void llama_free(llama_model *m) {
    if (m) {
        free(m->data);
        memset(m, 0, sizeof *m);
    }
}

/* A deep copy (for the outlier variant). */
LLAMA_API llama_status llama_copy(const llama_model *m, llama_model *out) {
    llama_model c = *m;
    if (!(c.data = (float *)malloc(m->n_floats * sizeof(float)))) return LLAMA_ERR_NOMEM;
    memcpy(c.data, m->data, m->n_floats * sizeof(float));
    llama__map(&c);
    *out = c;
    return LLAMA_OK;
}

/* Layer l's linear `which`: W[N][K]. */
LLAMA_API const float *llama__weight(const llama_model *m, int l, int which, size_t *N, size_t *K) {
    size_t D = (size_t)m->c.dim, H = (size_t)m->c.hidden_dim, kv = m->kv_dim, L = (size_t)l;
    switch (which) {
    case LLAMA_WQ: *N = D, *K = D; return m->wq + L * D * D;
    case LLAMA_WK: *N = kv, *K = D; return m->wk + L * kv * D;
    case LLAMA_WV: *N = kv, *K = D; return m->wv + L * kv * D;
    case LLAMA_WO: *N = D, *K = D; return m->wo + L * D * D;
    case LLAMA_W1: *N = H, *K = D; return m->w1 + L * H * D;
    case LLAMA_W2: *N = D, *K = H; return m->w2 + L * D * H;
    default: *N = H, *K = D; return m->w3 + L * H * D;
    }
}

/* >>forward ---------------------------------------------------------------- */

/* A model quantized by one method: every linear a w4a8_layer. */
typedef struct llama_qmodel {
    int n_layers;
    float *rms_att, *rms_ffn, *rms_final; /* gammas with the equalizations folded in */
    w4a8_layer **lin;                     /* [n_layers][LLAMA_LINEARS] */
    w4a8_layer *cls;                      /* NULL: the classifier stays FP32 */
    w4a8_report *rep;                     /* [n_layers][LLAMA_INPUTS_PER_LAYER], then the classifier's */
    double seconds;                       /* wall time to quantize */
} llama_qmodel;

typedef int (*llama_hook)(void *user, const char *name, int layer, llama_input which, const float *X, size_t T,
                           size_t K);

/* Queries per block of attention scores (the engine's scratch is a block per head). */
#define LLAMA_ATT_ROWS 64

/* Scratch for up to max_T tokens per call and a KV cache of max_pos positions. */
typedef struct llama_state {
    size_t max_T, max_pos;
    float *x, *xb, *xb2, *q, *k, *v, *hb, *hb2;
    float *att;             /* [n_heads][att_rows][max_pos]: a block of attention scores per head */
    size_t att_rows;        /* min(max_T, LLAMA_ATT_ROWS) */
    float *kcache, *vcache; /* [n_layers][max_pos][kv_dim] */
    float *rope;            /* [max_pos][head_size / 2][cos, sin] */
    void *ws;               /* w4a8 workspace, grown on demand */
    size_t ws_bytes;
    /* The quantized KV cache (llama_state_set_kv): kv_bits 0 uses the float
       cache above; 8 or 4 stores codes from w4a8_kv_quantize instead. */
    int kv_bits, kv_asym;
    size_t kv_group, kv_row, kv_groups;
    uint8_t *kcodes, *vcodes;  /* [n_layers][max_pos][kv_row] */
    float *kscales, *vscales;  /* [n_layers][max_pos][kv_groups] */
    uint8_t *kzeros, *vzeros;  /* [n_layers][max_pos][kv_groups] */
    float *kdq, *vdq;          /* [max_pos][kv_dim]: one layer dequantized for the attention */
} llama_state;

LLAMA_API void llama_state_free(llama_state *s) {
    if (!s) return;
    free(s->x), free(s->xb), free(s->xb2), free(s->q), free(s->k), free(s->v);
    free(s->hb), free(s->hb2), free(s->att), free(s->kcache), free(s->vcache), free(s->rope), free(s->ws);
    free(s->kcodes), free(s->vcodes), free(s->kscales), free(s->vscales), free(s->kzeros), free(s->vzeros);
    free(s->kdq), free(s->vdq);
    free(s);
}

LLAMA_API float *llama__floats(size_t a, size_t b) {
    size_t n;
    return llama__mul(a, b, &n) && n <= (size_t)-1 / sizeof(float) ? (float *)malloc((n ? n : 1) * sizeof(float))
                                                                      : NULL;
}

LLAMA_API llama_status llama_state_create(const llama_model *m, size_t max_T, size_t max_pos, llama_state **out) {
    size_t D, H, kv, hs, p, i, Lp;
    llama_state *s;
    if (!m || !out || max_T == 0 || max_T > max_pos || max_pos > (size_t)m->c.seq_len) return LLAMA_ERR_ARG;
    D = (size_t)m->c.dim, H = (size_t)m->c.hidden_dim, kv = m->kv_dim, hs = m->head_size;
    if (!(s = (llama_state *)calloc(1, sizeof *s))) return LLAMA_ERR_NOMEM;
    s->max_T = max_T, s->max_pos = max_pos;
    s->x = llama__floats(max_T, D), s->xb = llama__floats(max_T, D), s->xb2 = llama__floats(max_T, D);
    s->q = llama__floats(max_T, D), s->k = llama__floats(max_T, kv), s->v = llama__floats(max_T, kv);
    s->hb = llama__floats(max_T, H), s->hb2 = llama__floats(max_T, H);
    s->att_rows = max_T < LLAMA_ATT_ROWS ? max_T : LLAMA_ATT_ROWS;
    s->att = llama__floats(max_pos, (size_t)m->c.n_heads * s->att_rows);
    s->rope = llama__floats(max_pos, hs);
    if (llama__mul((size_t)m->c.n_layers, max_pos, &Lp)) {
        s->kcache = llama__floats(Lp, kv);
        s->vcache = llama__floats(Lp, kv);
    }
    if (!s->x || !s->xb || !s->xb2 || !s->q || !s->k || !s->v || !s->hb || !s->hb2 || !s->att || !s->rope ||
        !s->kcache || !s->vcache) {
        llama_state_free(s);
        return LLAMA_ERR_NOMEM;
    }
    for (p = 0; p < max_pos; p++)
        for (i = 0; i < hs / 2; i++) {
            /* Pairs past rope_dim stay as they are (cos 1, sin 0). */
            double angle = 2 * i < m->rope_dim ? (double)p * pow(m->rope_base, -(double)(2 * i) / (double)m->rope_dim)
                                               : 0.0;
            s->rope[p * hs + 2 * i] = (float)cos(angle);
            s->rope[p * hs + 2 * i + 1] = (float)sin(angle);
        }
    *out = s;
    return LLAMA_OK;
}

/* The KV cache's format from now on (what it holds is forgotten): bits 0
   (float), 8 or 4; group channels per scale (head_size: per head per token,
   kv_dim: one scale per token); symmetric or asymmetric (w4a8_kv_quantize).
   Keys are quantized after RoPE, as they are stored; the attention reads
   them dequantized. The buffers are allocated on the first switch and kept. */
LLAMA_API llama_status llama_state_set_kv(llama_state *s, const llama_model *m, int bits, size_t group, int asymmetric) {
    size_t kv, Lp, groups, n;
    if (!s || !m || (bits != 0 && bits != 8 && bits != 4) || group == 0) return LLAMA_ERR_ARG;
    s->kv_bits = 0;
    if (bits == 0) return LLAMA_OK;
    kv = m->kv_dim;
    group = group < kv ? group : kv;
    groups = (kv + group - 1) / group;
    if (!llama__mul((size_t)m->c.n_layers, s->max_pos, &Lp) || !llama__mul(Lp, kv, &n)) return LLAMA_ERR_NOMEM;
    if (!s->kcodes) { /* 8-bit rows, of which 4 bits use half */
        s->kcodes = (uint8_t *)malloc(n), s->vcodes = (uint8_t *)malloc(n);
        s->kdq = llama__floats(s->max_pos, kv), s->vdq = llama__floats(s->max_pos, kv);
    }
    if (s->kv_groups != groups) {
        free(s->kscales), free(s->vscales), free(s->kzeros), free(s->vzeros);
        s->kscales = llama__floats(Lp, groups), s->vscales = llama__floats(Lp, groups);
        s->kzeros = (uint8_t *)malloc(Lp * groups), s->vzeros = (uint8_t *)malloc(Lp * groups); /* <= Lp * kv */
        s->kv_groups = groups;
    }
    if (!s->kcodes || !s->vcodes || !s->kdq || !s->vdq || !s->kscales || !s->vscales || !s->kzeros || !s->vzeros) {
        s->kv_groups = 0; /* reallocated next time */
        return LLAMA_ERR_NOMEM;
    }
    w4a8_kv_row_bytes(kv, bits, &s->kv_row);
    s->kv_bits = bits, s->kv_asym = asymmetric != 0, s->kv_group = group;
    return LLAMA_OK;
}

/* A dot product in a fixed order (8 running sums), the same bits on any thread. */
LLAMA_API float llama__dot(const float *a, const float *b, size_t n) {
    float s[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    size_t k, j;
    for (k = 0; k + 8 <= n; k += 8)
        for (j = 0; j < 8; j++) s[j] += a[k + j] * b[k + j];
    for (j = 0; k < n; k++, j++) s[j] += a[k] * b[k];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Y[T][N] = X[T][K] W^T in FP32: w4a8's float GEMM, whose sums run in one
   order whatever T and the thread count, so a batch of tokens and the same
   tokens one at a time give the same bits. The shapes are the model's,
   checked when it was loaded: what can fail is the GEMM's packing space. */
LLAMA_API llama_status llama__matmul(float *Y, const float *X, const float *W, size_t T, size_t N, size_t K) {
    return w4a8_gemm_f32(W4A8_KERNEL_AUTO, T, N, K, 1.0f, X, K, 0, W, K, 1, 0.0f, Y, N) == W4A8_OK ? LLAMA_OK
                                                                                                  : LLAMA_ERR_NOMEM;
}

LLAMA_API void llama__rmsnorm(float *out, const float *x, const float *gamma, size_t T, size_t D, double eps) {
    size_t t, k;
    for (t = 0; t < T; t++) {
        double ss = 0.0;
        float r;
        for (k = 0; k < D; k++) ss += (double)x[t * D + k] * x[t * D + k];
        r = (float)(1.0 / sqrt(ss / (double)D + eps));
        for (k = 0; k < D; k++) out[t * D + k] = gamma[k] * (r * x[t * D + k]);
    }
}

/* Rotate adjacent pairs (i, i+1) of every head of T rows of `width`. */
LLAMA_API void llama__rope(float *x, size_t T, size_t width, size_t hs, const float *rope, size_t pos0) {
    size_t t, i;
    for (t = 0; t < T; t++)
        for (i = 0; i < width; i += 2) {
            const float *cs = rope + (pos0 + t) * hs + (i % hs);
            float a = x[t * width + i], b = x[t * width + i + 1];
            x[t * width + i] = a * cs[0] - b * cs[1];
            x[t * width + i + 1] = a * cs[1] + b * cs[0];
        }
}

LLAMA_API w4a8_status llama__qforward(const w4a8_layer *L, const float *X, size_t T, float *Y, llama_state *s) {
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
LLAMA_API llama_status llama_linear(const llama_model *m, const llama_qmodel *q, llama_state *s, int l, int which,
                                       const float *X, size_t T, float *Y) {
    size_t N, K;
    const float *W = llama__weight(m, l, which, &N, &K);
    if (q) return llama__qforward(q->lin[l * LLAMA_LINEARS + which], X, T, Y, s) == W4A8_OK ? LLAMA_OK
                                                                                             : LLAMA_ERR_W4A8;
    return llama__matmul(Y, X, W, T, N, K);
}

LLAMA_API int llama__call_hook(llama_hook hook, void *user, int layer, llama_input which, const float *X, size_t T,
                                 size_t K) {
    static const char *const names[] = { "qkv", "wo", "w13", "w2" };
    char name[32];
    if (!hook) return 0;
    if (which == LLAMA_IN_CLS) snprintf(name, sizeof name, "cls");
    else snprintf(name, sizeof name, "L%d.%s", layer, names[which]);
    return hook(user, name, layer, which, X, T, K);
}

/* The new keys and values s->k, s->v [T][kv_dim] into layer l's cache at pos0.. */
LLAMA_API llama_status llama__kv_store(const llama_model *m, llama_state *s, int l, size_t T, size_t pos0) {
    size_t kv = m->kv_dim, at = (size_t)l * s->max_pos + pos0, ng = s->kv_groups;
    if (!s->kv_bits) {
        memcpy(s->kcache + at * kv, s->k, T * kv * sizeof(float));
        memcpy(s->vcache + at * kv, s->v, T * kv * sizeof(float));
        return LLAMA_OK;
    }
    return w4a8_kv_quantize(s->k, T, kv, s->kv_group, s->kv_bits, s->kv_asym, s->kcodes + at * s->kv_row,
                            s->kscales + at * ng, s->kzeros + at * ng) == W4A8_OK &&
                   w4a8_kv_quantize(s->v, T, kv, s->kv_group, s->kv_bits, s->kv_asym, s->vcodes + at * s->kv_row,
                                    s->vscales + at * ng, s->vzeros + at * ng) == W4A8_OK
               ? LLAMA_OK
               : LLAMA_ERR_W4A8;
}

/* Layer l's keys and values at positions 0..n-1 as floats: the cache itself,
   or dequantized into kdq/vdq. */
LLAMA_API void llama__kv_load(const llama_model *m, llama_state *s, int l, size_t n, const float **kc, const float **vc) {
    size_t kv = m->kv_dim, at = (size_t)l * s->max_pos, ng = s->kv_groups;
    if (!s->kv_bits) {
        *kc = s->kcache + at * kv, *vc = s->vcache + at * kv;
        return;
    }
    /* the arguments were checked when the rows were stored */
    w4a8_kv_dequantize(s->kcodes + at * s->kv_row, s->kscales + at * ng, s->kzeros + at * ng, n, kv, s->kv_group,
                       s->kv_bits, s->kdq);
    w4a8_kv_dequantize(s->vcodes + at * s->kv_row, s->vscales + at * ng, s->vzeros + at * ng, n, kv, s->kv_group,
                       s->kv_bits, s->vdq);
    *kc = s->kdq, *vc = s->vdq;
}

/* Causal attention of T queries at positions pos0.. (q: rows of stride dim)
   over the keys and values kc, vc of positions 0 .. pos0 + T - 1 (rows of
   kv_dim), into out (rows of stride dim). Per head and block of up to
   `rows` queries, the scores are one float GEMM, each row's softmax runs up
   to its position and zeros the rest, and the probabilities times V are a
   second GEMM. Zeros add nothing to a float sum and the GEMM sums in one
   order whatever its shape, so a token gets the same bits alone or in a
   batch. Query t's probabilities of head h stay in P at
   (h * rows + t % rows) * ld, ld >= pos0 + T (the trainer keeps them all:
   rows = T). Heads run in parallel, each on its own block. */
LLAMA_API llama_status llama__attend(const llama_model *m, const float *q, const float *kc, const float *vc,
                                     size_t T, size_t pos0, float *out, float *P, size_t rows, size_t ld) {
    size_t hs = m->head_size, kv = m->kv_dim, D = (size_t)m->c.dim, nh = (size_t)m->c.n_heads;
    size_t group = nh / (size_t)m->c.n_kv_heads;
    float inv = (float)(1.0 / sqrt((double)hs));
    llama_status st = LLAMA_OK;
    ptrdiff_t hh;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (hh = 0; hh < (ptrdiff_t)nh; hh++) {
        size_t h = (size_t)hh, off = h / group * hs, t0, i, p;
        float *S = P + h * rows * ld;
        w4a8_status ws = W4A8_OK;
        for (t0 = 0; t0 < T && ws == W4A8_OK; t0 += rows) {
            size_t r = T - t0 < rows ? T - t0 : rows, n = pos0 + t0 + r; /* keys the block sees */
            ws = w4a8_gemm_f32(W4A8_KERNEL_AUTO, r, n, hs, inv, q + t0 * D + h * hs, D, 0, kc + off, kv, 1, 0.0f, S, ld);
            for (i = 0; i < r && ws == W4A8_OK; i++) {
                float *row = S + i * ld, mx = -FLT_MAX, sum = 0.0f;
                size_t last = pos0 + t0 + i;
                for (p = 0; p <= last; p++) mx = row[p] > mx ? row[p] : mx;
                for (p = 0; p <= last; p++) sum += row[p] = expf(row[p] - mx);
                for (p = 0; p <= last; p++) row[p] /= sum;
                for (; p < n; p++) row[p] = 0.0f;
            }
            if (ws == W4A8_OK)
                ws = w4a8_gemm_f32(W4A8_KERNEL_AUTO, r, hs, n, 1.0f, S, ld, 0, vc + off, kv, 0, 0.0f,
                                   out + t0 * D + h * hs, D);
        }
        if (ws != W4A8_OK) {
#ifdef _OPENMP
#pragma omp critical
#endif
            st = LLAMA_ERR_NOMEM; /* the shapes are the model's: only the GEMM's packing space can fail */
        }
    }
    return st;
}

/* Layer l's attention of the state's T queries at pos0.. over its cache. */
LLAMA_API llama_status llama__attention(const llama_model *m, llama_state *s, int l, size_t T, size_t pos0) {
    const float *kc, *vc;
    llama__kv_load(m, s, l, pos0 + T, &kc, &vc);
    return llama__attend(m, s->q, kc, vc, T, pos0, s->xb, s->att, s->att_rows, s->max_pos);
}

/* tokens[0..T) at positions pos0..pos0+T-1; logits[T][vocab] or NULL. With
   q, the W4A8 model (its folded gammas, its layers); else FP32. */
LLAMA_API llama_status llama_forward(const llama_model *m, const llama_qmodel *q, llama_state *s, const int *tokens,
                                        size_t T, size_t pos0, float *logits, llama_hook hook, void *user) {
    size_t D, H, kv, t, i;
    const float *g_att, *g_ffn, *g_final;
    llama_status st = LLAMA_OK;
    int l;
    if (!m || !s || !tokens) return LLAMA_ERR_ARG;
    if (T == 0 || T > s->max_T || pos0 > s->max_pos - T) return LLAMA_ERR_TOKEN;
    D = (size_t)m->c.dim, H = (size_t)m->c.hidden_dim, kv = m->kv_dim;
    g_att = q ? q->rms_att : m->rms_att, g_ffn = q ? q->rms_ffn : m->rms_ffn, g_final = q ? q->rms_final : m->rms_final;
    for (t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= m->c.vocab_size) return LLAMA_ERR_TOKEN;
        memcpy(s->x + t * D, m->emb + (size_t)tokens[t] * D, D * sizeof(float));
    }
    for (l = 0; l < m->c.n_layers && st == LLAMA_OK; l++) {
        llama__rmsnorm(s->xb, s->x, g_att + (size_t)l * D, T, D, m->norm_eps);
        if (llama__call_hook(hook, user, l, LLAMA_IN_QKV, s->xb, T, D)) return LLAMA_ERR_HOOK;
        if ((st = llama_linear(m, q, s, l, LLAMA_WQ, s->xb, T, s->q)) != LLAMA_OK ||
            (st = llama_linear(m, q, s, l, LLAMA_WK, s->xb, T, s->k)) != LLAMA_OK ||
            (st = llama_linear(m, q, s, l, LLAMA_WV, s->xb, T, s->v)) != LLAMA_OK)
            break;
        llama__rope(s->q, T, D, m->head_size, s->rope, pos0);
        llama__rope(s->k, T, kv, m->head_size, s->rope, pos0);
        if ((st = llama__kv_store(m, s, l, T, pos0)) != LLAMA_OK) break;
        if ((st = llama__attention(m, s, l, T, pos0)) != LLAMA_OK) break;
        if (llama__call_hook(hook, user, l, LLAMA_IN_WO, s->xb, T, D)) return LLAMA_ERR_HOOK;
        if ((st = llama_linear(m, q, s, l, LLAMA_WO, s->xb, T, s->xb2)) != LLAMA_OK) break;
        for (i = 0; i < T * D; i++) s->x[i] += s->xb2[i];
        llama__rmsnorm(s->xb, s->x, g_ffn + (size_t)l * D, T, D, m->norm_eps);
        if (llama__call_hook(hook, user, l, LLAMA_IN_W13, s->xb, T, D)) return LLAMA_ERR_HOOK;
        if ((st = llama_linear(m, q, s, l, LLAMA_W1, s->xb, T, s->hb)) != LLAMA_OK ||
            (st = llama_linear(m, q, s, l, LLAMA_W3, s->xb, T, s->hb2)) != LLAMA_OK)
            break;
        for (i = 0; i < T * H; i++) s->hb[i] = s->hb[i] / (1.0f + expf(-s->hb[i])) * s->hb2[i];
        /* A w4a8 layer that rotates its input does it itself. */
        if (m->online_w2 && !(q && q->lin[l * LLAMA_LINEARS + LLAMA_W2]->rotate) &&
            w4a8_hadamard(s->hb, T, H, 0, 0, s->hb) != W4A8_OK)
            return LLAMA_ERR_W4A8;
        if (llama__call_hook(hook, user, l, LLAMA_IN_W2, s->hb, T, H)) return LLAMA_ERR_HOOK;
        if ((st = llama_linear(m, q, s, l, LLAMA_W2, s->hb, T, s->xb)) != LLAMA_OK) break;
        for (i = 0; i < T * D; i++) s->x[i] += s->xb[i];
    }
    if (st != LLAMA_OK) return st;
    llama__rmsnorm(s->xb, s->x, g_final, T, D, m->norm_eps);
    if (llama__call_hook(hook, user, -1, LLAMA_IN_CLS, s->xb, T, D)) return LLAMA_ERR_HOOK;
    if (!logits) return LLAMA_OK;
    if (q && q->cls) return llama__qforward(q->cls, s->xb, T, logits, s) == W4A8_OK ? LLAMA_OK : LLAMA_ERR_W4A8;
    return llama__matmul(logits, s->xb, m->wcls, T, (size_t)m->c.vocab_size, D);
}

/* >>outliers --------------------------------------------------------------- */

/* The outlier variant: gamma[c] *= f and the matching input columns /= f
   for 3 channels of every rms_att (q/k/v columns) and rms_ffn (w1/w3). */
LLAMA_API llama_status llama_inject_outliers(const llama_model *m, llama_model *out) {
    static const float factors[3] = { 50.0f, 100.0f, 200.0f };
    size_t D = (size_t)m->c.dim, L = (size_t)m->c.n_layers, l, i, n, N, K;
    llama_model v;
    llama_status st;
    if (D < 3) return LLAMA_ERR_ARG;
    if ((st = llama_copy(m, &v)) != LLAMA_OK) return st;
    for (l = 0; l < L; l++)
        for (i = 0; i < 3; i++) {
            size_t c = (5 + 13 * l + i * (D / 3)) % D;
            float f = factors[i];
            int which;
            v.rms_att[l * D + c] *= f;
            v.rms_ffn[l * D + c] *= f;
            for (which = LLAMA_WQ; which <= LLAMA_W3; which++) {
                float *W;
                if (which == LLAMA_WO || which == LLAMA_W2) continue;
                W = (float *)llama__weight(&v, (int)l, which, &N, &K);
                for (n = 0; n < N; n++) W[n * K + c] /= f;
            }
        }
    *out = v;
    return LLAMA_OK;
}

#endif /* LLAMA_MODEL_H */
