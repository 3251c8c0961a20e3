/* rotate.h - QuaRot's offline rotation of a model: the same function in
   float, with a residual stream that has no outlier channels left.

   With Q orthogonal (w4a8_hadamard, order dim, random signs from seed) and
   row vectors (y = x W^T):
     1. fold every RMSNorm gamma into the linears that read it: W <- W diag(gamma)
        for wq, wk, wv (rms_att), w1, w3 (rms_ffn) and the classifier
        (rms_final); then gamma = 1. RMSNorm(x) Q = RMSNorm(x Q) when gamma is
        1, since Q keeps the norm.
     2. rotate the residual stream x -> x Q: the embedding E <- E Q; the
        readers of the stream on their input side (wq, wk, wv, w1, w3, the
        classifier: W <- W Q); its writers on their output side (wo, w2:
        W <- Q^T W).
     3. optionally (online_w2, QuaRot's online Hadamard) w2's input side
        too, with the plain Hadamard of order hidden_dim (seed 0): W2 <- W2 H,
        and the forward multiplies w2's input by H first (w4a8 layers do it
        inside their activation quantization: w4a8_layer_rotated).
   The classifier of a tied model gets its own copy (E Q is not
   diag(gamma) E Q), so the result is always untied. A dimension with no
   Hadamard matrix in w4a8.h gives LLAMA_ERR_W4A8; a model rotated with
   online_w2 is not rotated again (LLAMA_ERR_ARG). */
#ifndef LLAMA_ROTATE_H
#define LLAMA_ROTATE_H
#include "model.h"

/* W[N][K] <- W diag(gamma). */
LLAMA_API void llama__scale_columns(float *W, size_t N, size_t K, const float *gamma) {
    size_t n, k;
    for (n = 0; n < N; n++)
        for (k = 0; k < K; k++) W[n * K + k] *= gamma[k];
}

LLAMA_API llama_status llama_rotate(const llama_model *m, uint64_t seed, int online_w2, llama_model *out) {
    size_t D = (size_t)m->c.dim, H = (size_t)m->c.hidden_dim, kv = m->kv_dim, V = (size_t)m->c.vocab_size;
    size_t L = (size_t)m->c.n_layers, sz[13], l, order;
    llama_model r = *m;
    w4a8_status st = W4A8_OK;
    if (m->online_w2) return LLAMA_ERR_ARG; /* its w2 already reads a rotated input */
    if (w4a8_hadamard_order(D, &order) != W4A8_OK || (online_w2 && w4a8_hadamard_order(H, &order) != W4A8_OK))
        return LLAMA_ERR_W4A8;
    r.shared = 0;
    r.n_floats = llama__tensor_sizes(&r.c, 0, sz);
    if (!(r.data = llama__floats(r.n_floats, 1))) return LLAMA_ERR_NOMEM;
    memset(r.data, 0, r.n_floats * sizeof(float));
    llama__map(&r);
    memcpy(r.emb, m->emb, sz[0] * sizeof(float));
    memcpy(r.wq, m->wq, sz[2] * sizeof(float));
    memcpy(r.wk, m->wk, sz[3] * sizeof(float));
    memcpy(r.wv, m->wv, sz[4] * sizeof(float));
    memcpy(r.wo, m->wo, sz[5] * sizeof(float));
    memcpy(r.w1, m->w1, sz[7] * sizeof(float));
    memcpy(r.w2, m->w2, sz[8] * sizeof(float));
    memcpy(r.w3, m->w3, sz[9] * sizeof(float));
    memcpy(r.wcls, m->wcls, V * D * sizeof(float));
    for (l = 0; l < L; l++) {
        const float *ga = m->rms_att + l * D, *gf = m->rms_ffn + l * D;
        llama__scale_columns(r.wq + l * D * D, D, D, ga);
        llama__scale_columns(r.wk + l * kv * D, kv, D, ga);
        llama__scale_columns(r.wv + l * kv * D, kv, D, ga);
        llama__scale_columns(r.w1 + l * H * D, H, D, gf);
        llama__scale_columns(r.w3 + l * H * D, H, D, gf);
    }
    llama__scale_columns(r.wcls, V, D, m->rms_final);
    for (l = 0; l < L * D; l++) r.rms_att[l] = r.rms_ffn[l] = 1.0f;
    for (l = 0; l < D; l++) r.rms_final[l] = 1.0f;
    st = w4a8_rotate_input(r.emb, V, D, seed);
    for (l = 0; l < L && !st; l++) {
        if (!st) st = w4a8_rotate_input(r.wq + l * D * D, D, D, seed);
        if (!st) st = w4a8_rotate_input(r.wk + l * kv * D, kv, D, seed);
        if (!st) st = w4a8_rotate_input(r.wv + l * kv * D, kv, D, seed);
        if (!st) st = w4a8_rotate_input(r.w1 + l * H * D, H, D, seed);
        if (!st) st = w4a8_rotate_input(r.w3 + l * H * D, H, D, seed);
        if (!st) st = w4a8_rotate_output(r.wo + l * D * D, D, D, seed);
        if (!st) st = w4a8_rotate_output(r.w2 + l * D * H, D, H, seed);
        if (!st && online_w2) st = w4a8_rotate_input(r.w2 + l * D * H, D, H, 0);
    }
    if (!st) st = w4a8_rotate_input(r.wcls, V, D, seed);
    if (st != W4A8_OK) {
        free(r.data);
        return st == W4A8_ERR_NOMEM ? LLAMA_ERR_NOMEM : LLAMA_ERR_W4A8;
    }
    r.online_w2 = online_w2 ? 1 : 0;
    *out = r;
    return LLAMA_OK;
}

#endif /* LLAMA_ROTATE_H */
