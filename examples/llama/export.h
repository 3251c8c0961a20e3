/* export.h - a w4a8-quantized model as a GGUF file that llama.cpp runs.

   llama.cpp's Q4_0 is a W4A8 format: blocks of 32 weights with one fp16
   scale d, w = d (q - 8), multiplied with activations that llama.cpp
   quantizes itself to Q8_0 (blocks of 32, one scale each) at run time. A
   symmetric group-32 w4a8 layer has that shape: its codes go in as they
   are and its scale is rounded to fp16.

   llama_export_quantizer        the llama_quantizer to quantize with for export
                                 (pass it to llama_quantize): AWQ symmetric
                                 (cfg.awq_symmetric), and wo, whose equalization
                                 nothing could absorb, quantized without one
                                 (GPTQ for GPTQ, AUTO and X+gptq, else RTN)
   llama_export_writer(src, m, q, opts, &w, &rep)
                                 the file as a llama_gguf_writer
   llama_export_gguf(src, m, q, opts, path, &rep)
                                 the file, all or nothing

   src is the GGUF m was loaded from (llama_load_gguf); q is m quantized by
   llama_quantize. The file is src with:
     - every metadata key (tokenizer included) but general.file_type, which
       becomes Q4_0's 2 (Q4_1's 3 when most linears are Q4_1);
     - every linear of every block a Q4_0 tensor (Q4_1 where the layer has
       zero points and opts allow it: d = fp16(scale), m = fp16(-scale zero));
     - attn_norm, ffn_norm and output_norm F32 from q's gammas, which carry
       the folded equalizations (1/s of q/k/v, w1/w3; w2's s is in w3's rows);
     - every other tensor (token_embd, SmolLM2: Q8_0 and the tied
       classifier; output when there is one) copied as it is, once checked
       to dequantize to m's weights.
   Activations: llama.cpp quantizes them its own way (Q8_0 per 32-block,
   dynamic), so a layer's activation mode and static scale do not travel:
   the weights are the export, rep.static_act counts the layers whose
   per-tensor scale was dropped.

   Refused, nothing written (every reason a llama_status):
     a group other than 32 or K not a multiple of 32 ......... LLAMA_ERR_EXPORT_GROUP
     zero points (asymmetric) without opts.q4_1 .............. LLAMA_ERR_EXPORT_ASYM
     an equalization divided at run time (wo quantized with
     one: use llama_export_quantizer), an online rotation .... LLAMA_ERR_EXPORT_RUNTIME
     a quantized classifier, a bias, an embedding or a shape
     that is not src's (a rotated model) ..................... LLAMA_ERR_EXPORT_MODEL
     a scale past fp16's range (65504) ....................... LLAMA_ERR_EXPORT_RANGE

   What the fp16 scale costs, measured on every weight (rep): the squared
   distance from the folded float weights W (W s, and w3's rows / s2) of
   w4a8's dequantized weights (float scales), of the exported ones (fp16
   scales, same codes) and of codes re-chosen for the fp16 scale as RTN
   would (nearest code to W). opts.rechoose writes the re-chosen codes;
   for GPTQ that undoes its error compensation, so it is off by default.
   Re-choosing the code nearest to w4a8's own dequantized weight instead
   never changes one: |d16/d - 1| <= 2^-11 moves a code by at most
   8 * 2^-11 < 1/2. */
#ifndef LLAMA_EXPORT_H
#define LLAMA_EXPORT_H
#include "quantize.h"
/* >>export ----------------------------------------------------------------- */

typedef struct llama_export_opts {
    int q4_1;     /* 1: layers with zero points become Q4_1; 0: refused */
    int rechoose; /* 1: codes re-chosen for the fp16 scale (nearest to the float weights) */
} llama_export_opts;

typedef struct llama_export_report {
    size_t q4_0, q4_1;      /* linears written as each type */
    size_t static_act;      /* linears whose per-tensor static activation scale llama.cpp does not use */
    size_t weights, rechosen; /* weights exported; codes other than RTN's nearest for the fp16 scale */
    double ref;             /* sum of W^2 over the exported linears (W folded, float) */
    double err_w4a8;        /* sum of (W - w4a8's dequantized weight)^2, float scales */
    double err_fp16;        /* the same with the scales rounded to fp16, codes as they are */
    double err_rechosen;    /* the same with the codes re-chosen for the fp16 scales */
    double scale_rel_max;   /* max |fp16(d) - d| / d over the nonzero scales */
} llama_export_report;

LLAMA_API w4a8_status llama_export_quantizer(const w4a8_linear *linears, size_t count, size_t K,
                                             const w4a8_calib *calib, const w4a8_config *cfg, w4a8_layer **layers,
                                             w4a8_report *report) {
    w4a8_config c;
    if (!cfg) return W4A8_ERR_NULL_ARG;
    c = *cfg;
    c.awq_symmetric = 1;
    if (!cfg->fold_smooth && cfg->method != W4A8_METHOD_RTN && cfg->method != W4A8_METHOD_GPTQ) {
        c.method = cfg->method == W4A8_METHOD_AUTO || cfg->gptq_weights ? W4A8_METHOD_GPTQ : W4A8_METHOD_RTN;
        c.gptq_weights = 0;
    }
    return w4a8_quantize_linears(linears, count, K, calib, &c, layers, report);
}

/* Block b of row n of layer L in Q4_0 (18 bytes) or Q4_1 (20), from its
   codes, with the float weights W[n][g*32..] for the report and rechoose. */
LLAMA_API llama_status llama__export_block(const w4a8_layer *L, const uint8_t *codes, const float *W, size_t n,
                                            size_t g, const llama_export_opts *o, unsigned char *b,
                                            llama_export_report *rep) {
    float s = L->scales[n * L->groups + g], d, mn = 0.0f;
    int z = L->zeros[n * L->groups + g], j;
    uint16_t hd = llama__gguf_to_f16(s), hm = 0;
    unsigned char q[32];
    d = llama__gguf_f16(hd);
    if (!(fabsf(d) <= 65504.0f)) return LLAMA_ERR_EXPORT_RANGE;
    if (L->asymmetric) {
        hm = llama__gguf_to_f16(-s * (float)z);
        mn = llama__gguf_f16(hm);
        if (!(fabsf(mn) <= 65504.0f)) return LLAMA_ERR_EXPORT_RANGE;
    }
    if (s != 0.0f && fabs((double)d - s) / fabsf(s) > rep->scale_rel_max) rep->scale_rel_max = fabs((double)d - s) / fabsf(s);
    for (j = 0; j < 32; j++) {
        int c = codes[j], r = c;
        float w = W[j], exact = s * (float)(c - z), e16, er;
        if (d != 0.0f) { /* RTN's code for the fp16 scale */
            float x = L->asymmetric ? (w - mn) / d : w / d + 8.0f;
            r = x <= 0.0f ? 0 : x >= 15.0f ? 15 : (int)floorf(x + 0.5f);
        }
        e16 = L->asymmetric ? (float)c * d + mn : (float)(c - 8) * d;
        er = L->asymmetric ? (float)r * d + mn : (float)(r - 8) * d;
        rep->ref += (double)w * w;
        rep->err_w4a8 += ((double)w - exact) * ((double)w - exact);
        rep->err_fp16 += ((double)w - e16) * ((double)w - e16);
        rep->err_rechosen += ((double)w - er) * ((double)w - er);
        rep->rechosen += r != c;
        q[j] = (unsigned char)(o->rechoose ? r : c);
    }
    rep->weights += 32;
    b[0] = (unsigned char)(hd & 0xFF), b[1] = (unsigned char)(hd >> 8);
    if (L->asymmetric) b[2] = (unsigned char)(hm & 0xFF), b[3] = (unsigned char)(hm >> 8), b += 2;
    for (j = 0; j < 16; j++) b[2 + j] = (unsigned char)(q[j] | q[16 + j] << 4);
    return LLAMA_OK;
}

/* Whether layer L can be written, and as which type. */
LLAMA_API llama_status llama__export_type(const w4a8_layer *L, const llama_export_opts *o, uint32_t *type) {
    if (L->G != 32 || L->K % 32 != 0) return LLAMA_ERR_EXPORT_GROUP;
    if ((L->smooth && !L->smooth_folded) || L->rotate) return LLAMA_ERR_EXPORT_RUNTIME;
    if (L->bias) return LLAMA_ERR_EXPORT_MODEL;
    if (L->asymmetric && !o->q4_1) return LLAMA_ERR_EXPORT_ASYM;
    *type = L->asymmetric ? LLAMA_GGUF_Q4_1 : LLAMA_GGUF_Q4_0;
    return LLAMA_OK;
}

/* Layer l's linear `which` as a tensor: W is the model's float weight, in
   the folded form the layer quantized (columns times its s, w3's rows over w2's s). */
LLAMA_API llama_status llama__export_linear(llama_gguf_writer *w, const llama_gguf_tensor *t, const llama_model *m,
                                             const llama_qmodel *q, int l, int which, const llama_export_opts *o,
                                             llama_export_report *rep) {
    const w4a8_layer *L = q->lin[(size_t)l * LLAMA_LINEARS + which];
    const w4a8_layer *w2 = q->lin[(size_t)l * LLAMA_LINEARS + LLAMA_W2];
    const float *s2 = which == LLAMA_W3 && w2->smooth_folded ? w2->smooth : NULL;
    size_t N, K, n, g, k, bb;
    const float *W = llama__weight(m, l, which, &N, &K);
    uint8_t *codes = NULL;
    unsigned char *blocks = NULL;
    float row[32];
    uint64_t ne[2];
    uint32_t type;
    llama_status st = llama__export_type(L, o, &type);
    if (st != LLAMA_OK) return st;
    if (L->N != N || L->K != K || t->n_dims != 2 || t->ne[0] != K || t->ne[1] != N) return LLAMA_ERR_EXPORT_MODEL;
    bb = type == LLAMA_GGUF_Q4_0 ? 18 : 20;
    codes = (uint8_t *)malloc(N * K);
    blocks = (unsigned char *)malloc(N * (K / 32) * bb);
    if (!codes || !blocks || w4a8_layer_codes(L, codes) != W4A8_OK) st = LLAMA_ERR_NOMEM;
    for (n = 0; st == LLAMA_OK && n < N; n++)
        for (g = 0; st == LLAMA_OK && g < K / 32; g++) {
            for (k = 0; k < 32; k++) {
                size_t c = g * 32 + k;
                row[k] = W[n * K + c] * (L->smooth ? L->smooth[c] : 1.0f);
                if (s2) row[k] /= s2[n];
            }
            st = llama__export_block(L, codes + n * K + g * 32, row, n, g, o, blocks + (n * (K / 32) + g) * bb, rep);
        }
    ne[0] = K, ne[1] = N;
    if (st == LLAMA_OK) st = llama_gguf_writer_add_raw(w, t->name, type, 2, ne, blocks, N * (K / 32) * bb);
    if (st == LLAMA_OK) {
        if (type == LLAMA_GGUF_Q4_0) rep->q4_0++;
        else rep->q4_1++;
        rep->static_act += L->act_mode == W4A8_ACT_PER_TENSOR;
    }
    free(codes), free(blocks);
    return st;
}

/* Which of the model's tensors `name` is: 0 linears, 1-3 the norms
   (attn, ffn, output), -1 another; *l and *which say where. */
LLAMA_API int llama__export_role(const char *name, const llama_model *m, int *l, int *which) {
    static const char *const lin[7] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up" };
    char buf[LLAMA_GGUF_MAX_NAME];
    int i;
    if (!strcmp(name, "output_norm.weight")) return 3;
    for (*l = 0; *l < m->c.n_layers; (*l)++) {
        for (i = 0; i < 7; i++) {
            snprintf(buf, sizeof buf, "blk.%d.%s.weight", *l, lin[i]);
            if (!strcmp(name, buf)) {
                *which = i;
                return 0;
            }
        }
        snprintf(buf, sizeof buf, "blk.%d.attn_norm.weight", *l);
        if (!strcmp(name, buf)) return 1;
        snprintf(buf, sizeof buf, "blk.%d.ffn_norm.weight", *l);
        if (!strcmp(name, buf)) return 2;
    }
    return -1;
}

/* A tensor copied from src: it must dequantize to m's (the embedding, an own classifier). */
LLAMA_API llama_status llama__export_copy(llama_gguf_writer *w, const llama_gguf_tensor *t, const llama_model *m) {
    const float *mine = !strcmp(t->name, "token_embd.weight") ? m->emb
                        : !strcmp(t->name, "output.weight") && !m->shared ? m->wcls : NULL;
    size_t D = (size_t)m->c.dim, V = (size_t)m->c.vocab_size;
    llama_status st = LLAMA_OK;
    if (mine) {
        float *x = t->n_elements == D * V ? llama__floats(D, V) : NULL;
        if (t->n_elements != D * V) return LLAMA_ERR_EXPORT_MODEL;
        if (!x) return LLAMA_ERR_NOMEM;
        st = llama_gguf_dequantize(t, x, D * V);
        if (st == LLAMA_OK && memcmp(x, mine, D * V * sizeof(float)) != 0) st = LLAMA_ERR_EXPORT_MODEL;
        free(x);
    }
    return st == LLAMA_OK ? llama_gguf_writer_add_raw(w, t->name, t->type, t->n_dims, t->ne, t->data, t->n_bytes)
                          : st;
}

LLAMA_API llama_status llama_export_writer(const llama_gguf *src, const llama_model *m, const llama_qmodel *q,
                                            const llama_export_opts *opts, llama_gguf_writer **out,
                                            llama_export_report *report) {
    llama_export_opts o;
    llama_export_report rep;
    llama_gguf_writer *w = NULL;
    size_t i, D, done = 0, want;
    llama_status st;
    if (!src || !m || !q || !out) return LLAMA_ERR_ARG;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    memset(&rep, 0, sizeof rep);
    if (q->cls || m->online_w2 || q->n_layers != m->c.n_layers) return LLAMA_ERR_EXPORT_MODEL;
    D = (size_t)m->c.dim;
    want = (size_t)m->c.n_layers * (LLAMA_LINEARS + 2) + 1;
    if ((st = llama_gguf_writer_create(&w)) != LLAMA_OK) return st;
    for (i = 0; st == LLAMA_OK && i < src->n_kv; i++)
        if (strcmp(src->kv[i].key, "general.file_type") != 0) st = llama_gguf_writer_set(w, src->kv[i].key, &src->kv[i].v);
    for (i = 0; st == LLAMA_OK && i < src->n_tensors; i++) {
        const llama_gguf_tensor *t = &src->tensors[i];
        int l = 0, which = 0, role = llama__export_role(t->name, m, &l, &which);
        uint64_t ne[1];
        ne[0] = D;
        if (role == 0) st = llama__export_linear(w, t, m, q, l, which, &o, &rep);
        else if (role > 0 && (t->n_elements != D || t->n_dims != 1)) st = LLAMA_ERR_EXPORT_MODEL;
        else if (role > 0)
            st = llama_gguf_writer_add_f32(w, t->name, LLAMA_GGUF_F32, 1, ne,
                                           role == 1 ? q->rms_att + (size_t)l * D
                                                     : role == 2 ? q->rms_ffn + (size_t)l * D : q->rms_final);
        else st = llama__export_copy(w, t, m);
        done += role >= 0;
    }
    if (st == LLAMA_OK && done != want) st = LLAMA_ERR_EXPORT_MODEL;
    if (st == LLAMA_OK) st = llama_gguf_writer_set_u32(w, "general.file_type", rep.q4_1 > rep.q4_0 ? 3u : 2u);
    if (st != LLAMA_OK) {
        llama_gguf_writer_free(w);
        return st;
    }
    *out = w;
    if (report) *report = rep;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_export_gguf(const llama_gguf *src, const llama_model *m, const llama_qmodel *q,
                                          const llama_export_opts *opts, const char *path,
                                          llama_export_report *report) {
    llama_gguf_writer *w;
    llama_export_report rep;
    llama_status st;
    if (!path) return LLAMA_ERR_ARG;
    if ((st = llama_export_writer(src, m, q, opts, &w, &rep)) != LLAMA_OK) return st;
    st = llama_gguf_writer_write(w, path);
    llama_gguf_writer_free(w);
    if (st == LLAMA_OK && report) *report = rep;
    return st;
}

#endif /* LLAMA_EXPORT_H */
