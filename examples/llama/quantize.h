/* quantize.h - calibration of every linear input of a model, and its
   quantization with a w4a8 method, equalizations folded where the model
   allows it. */
#ifndef LLAMA_QUANTIZE_H
#define LLAMA_QUANTIZE_H
#include "model.h"
/* >>calibrate -------------------------------------------------------------- */

/* The calibration of every linear input: [n_layers][4] then the classifier's. */
typedef struct llama_calibs {
    w4a8_calib **c;
    size_t count;
    w4a8_status st; /* the first w4a8_calib_add failure */
} llama_calibs;

#define LLAMA_CALIB_SAMPLE 512

LLAMA_API void llama_calibs_free(llama_calibs *cs) {
    size_t i;
    for (i = 0; cs->c && i < cs->count; i++) w4a8_calib_free(cs->c[i]);
    free(cs->c);
    memset(cs, 0, sizeof *cs);
}

LLAMA_API int llama__calib_hook(void *user, const char *name, int layer, llama_input which, const float *X, size_t T,
                                  size_t K) {
    llama_calibs *cs = (llama_calibs *)user;
    size_t i = which == LLAMA_IN_CLS ? cs->count - 1 : (size_t)layer * LLAMA_INPUTS_PER_LAYER + which;
    (void)name, (void)K;
    cs->st = w4a8_calib_add(cs->c[i], X, T);
    return cs->st != W4A8_OK;
}

/* Statistics (with Hessians and a 512-token sample, so that every method
   has what it needs) of every linear's input over n_seqs sequences of len
   tokens, from the FP32 model. */
LLAMA_API llama_status llama_calibrate(const llama_model *m, const int *seqs, size_t n_seqs, size_t len,
                                          llama_calibs *out, w4a8_status *wst) {
    llama_calibs cs;
    llama_state *s = NULL;
    llama_status st;
    size_t i;
    memset(&cs, 0, sizeof cs);
    *wst = W4A8_OK;
    cs.count = (size_t)m->c.n_layers * LLAMA_INPUTS_PER_LAYER + 1;
    if (!(cs.c = (w4a8_calib **)calloc(cs.count, sizeof *cs.c))) return LLAMA_ERR_NOMEM;
    for (i = 0; i < cs.count && cs.st == W4A8_OK; i++) {
        size_t K = i % LLAMA_INPUTS_PER_LAYER == LLAMA_IN_W2 && i + 1 < cs.count ? (size_t)m->c.hidden_dim
                                                                                   : (size_t)m->c.dim;
        cs.st = w4a8_calib_create(K, 1, LLAMA_CALIB_SAMPLE, &cs.c[i]);
    }
    st = cs.st != W4A8_OK ? LLAMA_ERR_W4A8 : llama_state_create(m, len, len, &s);
    for (i = 0; i < n_seqs && st == LLAMA_OK; i++)
        st = llama_forward(m, NULL, s, seqs + i * len, len, 0, NULL, llama__calib_hook, &cs);
    llama_state_free(s);
    if (st != LLAMA_OK) {
        *wst = cs.st;
        if (st == LLAMA_ERR_HOOK) st = LLAMA_ERR_W4A8;
        llama_calibs_free(&cs);
        return st;
    }
    *out = cs;
    return LLAMA_OK;
}

/* splitmix64 */
LLAMA_API uint64_t llama__rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Index of the largest logit (the first, on ties). */
LLAMA_API int llama__argmax(const float *x, size_t n) {
    size_t i, best = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int)best;
}

/* Sample from softmax(logits) with u uniform in [0, 1). */
LLAMA_API int llama__sample(const float *logits, size_t n, double u) {
    double mx = logits[llama__argmax(logits, n)], sum = 0.0, acc = 0.0;
    size_t i;
    for (i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    u *= sum;
    for (i = 0; i < n; i++) {
        acc += exp((double)logits[i] - mx);
        if (u < acc) return (int)i;
    }
    return (int)n - 1;
}

/* n_seqs sequences of len tokens from BOS, sampled at temperature 1.
   With qat_start, sequence i is LLM-QAT's instead: BOS, the start token
   i mod vocab, 2 to 4 greedy tokens (drawn per sequence), then sampled.
   Sequence i draws from its own generator seeded with (seed, i), so the
   result does not depend on the thread count. */
LLAMA_API llama_status llama__generate(const llama_model *m, size_t n_seqs, size_t len, uint64_t seed, int qat_start,
                                        int *out) {
    llama_status st = LLAMA_OK;
    ptrdiff_t i;
    if (len < 1 + (size_t)(qat_start != 0) || len > (size_t)m->c.seq_len) return LLAMA_ERR_TOKEN;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        llama_state *s = NULL;
        float *logits = llama__floats((size_t)m->c.vocab_size, 1);
        llama_status my = logits ? llama_state_create(m, 1, len, &s) : LLAMA_ERR_NOMEM;
#ifdef _OPENMP
#pragma omp for schedule(dynamic)
#endif
        for (i = 0; i < (ptrdiff_t)n_seqs; i++) {
            int *seq = out + (size_t)i * len;
            uint64_t rng = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1));
            size_t p, greedy = qat_start ? 2 + (size_t)(llama__rand(&rng) % 3) : 0;
            seq[0] = LLAMA_BOS;
            if (qat_start) seq[1] = (int)((size_t)i % (size_t)m->c.vocab_size);
            for (p = 0; p + 1 < len && my == LLAMA_OK; p++) {
                if ((my = llama_forward(m, NULL, s, seq + p, 1, p, logits, NULL, NULL)) != LLAMA_OK) break;
                if (qat_start && p == 0) continue; /* the start token is given */
                seq[p + 1] = p <= greedy && qat_start
                                 ? llama__argmax(logits, (size_t)m->c.vocab_size)
                                 : llama__sample(logits, (size_t)m->c.vocab_size,
                                                 (double)(llama__rand(&rng) >> 11) / 9007199254740992.0);
            }
        }
        if (my != LLAMA_OK) {
#ifdef _OPENMP
#pragma omp critical
#endif
            st = my;
        }
        llama_state_free(s);
        free(logits);
    }
    return st;
}

LLAMA_API llama_status llama_generate_calib(const llama_model *m, size_t n_seqs, size_t len, uint64_t seed, int *out) {
    return llama__generate(m, n_seqs, len, seed, 0, out);
}

/* >>quantize --------------------------------------------------------------- */

/* One row of the table: a method, its weight step, an activation mode, a group. */
typedef struct llama_spec {
    w4a8_method method;
    int gptq_weights;
    w4a8_act_mode act_mode;
    size_t group;
    float fptq_low, fptq_high; /* FPTQ's layer-wise bounds */
    int gptq_act_order;        /* 1: GPTQ in order of decreasing H_jj, groups fit first (static) */
    int scale_search;          /* 1: group steps searched for the H_jj-weighted error (cfg.scale_search) */
} llama_spec;

LLAMA_API void llama_qmodel_free(llama_qmodel *q) {
    size_t i;
    if (!q) return;
    for (i = 0; q->lin && i < (size_t)q->n_layers * LLAMA_LINEARS; i++) w4a8_layer_free(q->lin[i]);
    w4a8_layer_free(q->cls);
    free(q->lin), free(q->rep), free(q->rms_att), free(q->rms_ffn), free(q->rms_final);
    free(q);
}

/* The layers sharing an input carry one s (and expect X / s): divide gamma by
   it, or scale rows[r][*] by 1/s[r] when the input is a product with those rows. */
LLAMA_API llama_status llama__fold(w4a8_layer *const *layers, size_t count, float *gamma, size_t K) {
    const float *s = layers[0]->smooth_folded ? layers[0]->smooth : NULL;
    size_t i, k;
    for (i = 1; i < count; i++) {
        const float *si = layers[i]->smooth_folded ? layers[i]->smooth : NULL;
        if ((s == NULL) != (si == NULL) || (s && memcmp(s, si, K * sizeof(float)) != 0)) return LLAMA_ERR_FOLD;
    }
    for (k = 0; s && k < K; k++) gamma[k] /= s[k];
    return LLAMA_OK;
}

LLAMA_API double llama__now(void) {
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* What quantizes the linears sharing one input: w4a8_quantize_linears, or
   a method of your own with the same contract. */
typedef w4a8_status (*llama_quantizer)(const w4a8_linear *linears, size_t count, size_t K, const w4a8_calib *calib,
                                        const w4a8_config *cfg, w4a8_layer **layers, w4a8_report *report);

/* Quantize every linear of m with spec, from the calibration cs, through
   quantize (NULL: w4a8_quantize_linears). On failure *wst says what w4a8
   returned. */
LLAMA_API llama_status llama_quantize(const llama_model *m, const llama_calibs *cs, const llama_spec *spec,
                                         int quantize_cls, llama_quantizer quantize, llama_qmodel **out,
                                         w4a8_status *wst) {
    size_t D = (size_t)m->c.dim, H = (size_t)m->c.hidden_dim, L = (size_t)m->c.n_layers, l, j, N, K;
    double t0 = llama__now();
    float *w3 = llama__floats(H, D);
    llama_qmodel *q = (llama_qmodel *)calloc(1, sizeof *q);
    llama_status st = LLAMA_OK;
    w4a8_config cfg;
    *wst = W4A8_OK;
    if (!quantize) quantize = w4a8_quantize_linears;
    if (!q || !w3 || !(q->rms_att = llama__floats(L, D)) || !(q->rms_ffn = llama__floats(L, D)) ||
        !(q->rms_final = llama__floats(D, 1)) ||
        !(q->lin = (w4a8_layer **)calloc(L * LLAMA_LINEARS, sizeof *q->lin)) ||
        !(q->rep = (w4a8_report *)calloc(L * LLAMA_INPUTS_PER_LAYER + 1, sizeof *q->rep))) {
        free(w3);
        llama_qmodel_free(q);
        return LLAMA_ERR_NOMEM;
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
    cfg.gptq_act_order = cfg.gptq_static_groups = spec->gptq_act_order;
    cfg.scale_search = spec->scale_search;
    for (l = 0; l < L && st == LLAMA_OK; l++) {
        w4a8_layer **lin = q->lin + l * LLAMA_LINEARS;
        w4a8_calib *const *c = cs->c + l * LLAMA_INPUTS_PER_LAYER;
        w4a8_report *rep = q->rep + l * LLAMA_INPUTS_PER_LAYER;
        w4a8_linear qkv[3], o, w2, w13[2];
        const float *s2;
        memset(qkv, 0, sizeof qkv), memset(&o, 0, sizeof o), memset(&w2, 0, sizeof w2), memset(w13, 0, sizeof w13);
        for (j = 0; j < 3; j++) qkv[j].W = llama__weight(m, (int)l, LLAMA_WQ + (int)j, &qkv[j].N, &K);
        qkv[0].skip_clip = qkv[1].skip_clip = 1; /* AWQ does not clip q and k */
        o.W = llama__weight(m, (int)l, LLAMA_WO, &o.N, &K);
        w2.W = llama__weight(m, (int)l, LLAMA_W2, &w2.N, &K);
        w13[0].W = llama__weight(m, (int)l, LLAMA_W1, &w13[0].N, &K);
        memcpy(w3, llama__weight(m, (int)l, LLAMA_W3, &N, &K), H * D * sizeof(float));
        w13[1].W = w3, w13[1].N = H;

        cfg.fold_smooth = 1;
        if ((*wst = quantize(qkv, 3, D, c[LLAMA_IN_QKV], &cfg, lin + LLAMA_WQ, &rep[LLAMA_IN_QKV])))
            break;
        if ((st = llama__fold(lin + LLAMA_WQ, 3, q->rms_att + l * D, D)) != LLAMA_OK) break;
        /* w2 before w3: its s goes into w3's rows, unless w2 rotates its input
           online (then 1/s comes after the rotation, at run time). */
        cfg.fold_smooth = !m->online_w2;
        if ((*wst = quantize(&w2, 1, H, c[LLAMA_IN_W2], &cfg, lin + LLAMA_W2, &rep[LLAMA_IN_W2])))
            break;
        if (m->online_w2) {
            w4a8_layer *rot = NULL;
            if ((*wst = w4a8_layer_rotated(lin[LLAMA_W2], 0, &rot))) break;
            w4a8_layer_free(lin[LLAMA_W2]);
            lin[LLAMA_W2] = rot;
        }
        cfg.fold_smooth = 1;
        s2 = lin[LLAMA_W2]->smooth_folded ? lin[LLAMA_W2]->smooth : NULL;
        for (j = 0; s2 && j < H * D; j++) w3[j] /= s2[j / D];
        {
            w4a8_layer *pair[2] = { NULL, NULL };
            if ((*wst = quantize(w13, 2, D, c[LLAMA_IN_W13], &cfg, pair, &rep[LLAMA_IN_W13]))) break;
            lin[LLAMA_W1] = pair[0], lin[LLAMA_W3] = pair[1];
            if ((st = llama__fold(pair, 2, q->rms_ffn + l * D, D)) != LLAMA_OK) break;
        }
        cfg.fold_smooth = 0; /* nothing in front of wo can absorb 1/s */
        if ((*wst = quantize(&o, 1, D, c[LLAMA_IN_WO], &cfg, lin + LLAMA_WO, &rep[LLAMA_IN_WO])))
            break;
    }
    if (st == LLAMA_OK && *wst == W4A8_OK && quantize_cls) {
        w4a8_linear cls;
        memset(&cls, 0, sizeof cls);
        cls.W = m->wcls, cls.N = (size_t)m->c.vocab_size;
        cfg.fold_smooth = 1;
        if (!(*wst = quantize(&cls, 1, D, cs->c[cs->count - 1], &cfg, &q->cls, &q->rep[L * LLAMA_INPUTS_PER_LAYER])))
            st = llama__fold(&q->cls, 1, q->rms_final, D);
    }
    free(w3);
    if (st == LLAMA_OK && *wst != W4A8_OK) st = LLAMA_ERR_W4A8;
    if (st != LLAMA_OK) {
        llama_qmodel_free(q);
        return st;
    }
    q->seconds = llama__now() - t0;
    *out = q;
    return LLAMA_OK;
}

#endif /* LLAMA_QUANTIZE_H */
