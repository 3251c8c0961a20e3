/* LLM-QAT's building blocks in w4a8.h (fake quantization with its
   straight-through mask, the KV-cache quantizers) and, on the shared
   checkpoints, the quantized KV cache of the engine, the backward pass and
   the training loop of examples/llama/train.h. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../examples/llama/llama.h"
#include "../examples/llama/train.h"
#include "test.h"

static float *fill(size_t n, uint64_t seed, float amp) {
    float *x = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) x[i] = amp * test_normal(&seed);
    return x;
}

/* Fake weights equal dequantize(quantize_rtn) bit for bit on every grid; the
   mask is 1 exactly where the value was rounded, not clamped. */
static void test_fake_weights(void) {
    static const size_t groups[3] = { 32, 48, W4A8_PER_CHANNEL };
    size_t N = 7, K = 100, gi, i;
    float *W = fill(N * K, 11, 0.3f), *Wq = (float *)malloc(N * K * sizeof(float));
    float *ref = (float *)malloc(N * K * sizeof(float)), *scales = (float *)malloc(N * K * sizeof(float));
    uint8_t *codes = (uint8_t *)malloc(N * K), *zeros = (uint8_t *)malloc(N * K), *mask = (uint8_t *)malloc(N * K);
    int asym;
    W[3] = 2.5f, W[5] = -2.0f; /* for the clipped STE */
    for (gi = 0; gi < 3; gi++)
        for (asym = 0; asym < 2; asym++) {
            size_t G = groups[gi] < K ? groups[gi] : K, ng = (K + G - 1) / G;
            CHECK_ST(w4a8_quantize_rtn(W, N, K, groups[gi], asym, codes, scales, zeros), W4A8_OK);
            CHECK_ST(w4a8_dequantize(codes, scales, zeros, N, K, groups[gi], ref), W4A8_OK);
            CHECK_ST(w4a8_fake_quantize_weights(W, N, K, groups[gi], asym, W4A8_STE_PLAIN, Wq, mask), W4A8_OK);
            CHECK(memcmp(Wq, ref, N * K * sizeof(float)) == 0);
            for (i = 0; i < N * K; i++) {
                float s = fabsf(scales[i / K * ng + i % K / G]), err = fabsf(W[i] - Wq[i]);
                /* rounded: within half a step; clamped: at least half a step away */
                if (mask[i]) CHECK(err <= 0.5f * s * (1.0f + 1e-6f));
                else CHECK(err >= 0.5f * s * (1.0f - 1e-6f));
            }
            CHECK_ST(w4a8_fake_quantize_weights(W, N, K, groups[gi], asym, W4A8_STE_CLIP2, Wq, codes), W4A8_OK);
            for (i = 0; i < N * K; i++) CHECK(codes[i] == (mask[i] && fabsf(W[i]) < 2.0f));
        }
    { /* crafted: extremes 7.5 and -7.5 give step 1 (7.5 / 7.5), the tie puts
         7.5 on code 0 (8 steps: 8); -7.5 is 7.5 steps the other way, a tie
         rounded to 8 -> code 16, clamped to 15 (-7) */
        float w[4] = { 7.5f, -7.5f, 7.0f, 6.6f }, q[4];
        uint8_t mk[4];
        CHECK_ST(w4a8_fake_quantize_weights(w, 1, 4, W4A8_PER_CHANNEL, 0, W4A8_STE_PLAIN, q, mk), W4A8_OK);
        CHECK(q[0] == 8.0f && q[1] == -7.0f && q[2] == 7.0f && q[3] == 7.0f);
        CHECK(mk[0] == 1 && mk[1] == 0 && mk[2] == 1 && mk[3] == 1);
        CHECK_ST(w4a8_fake_quantize_weights(w, 1, 4, W4A8_PER_CHANNEL, 0, W4A8_STE_CLIP2, q, mk), W4A8_OK);
        CHECK(mk[0] == 0 && mk[1] == 0 && mk[2] == 0 && mk[3] == 0);
        w[0] = NAN;
        CHECK_ST(w4a8_fake_quantize_weights(w, 1, 4, 32, 0, W4A8_STE_PLAIN, q, NULL), W4A8_ERR_NONFINITE);
        CHECK_ST(w4a8_fake_quantize_weights(w, 0, 4, 32, 0, W4A8_STE_PLAIN, q, NULL), W4A8_ERR_SHAPE);
        CHECK_ST(w4a8_fake_quantize_weights(w, 1, 4, 0, 0, W4A8_STE_PLAIN, q, NULL), W4A8_ERR_GROUP_SIZE);
        CHECK_ST(w4a8_fake_quantize_weights(w, 1, 4, 32, 0, (w4a8_ste)7, q, NULL), W4A8_ERR_CONFIG);
        CHECK_ST(w4a8_fake_quantize_weights(NULL, 1, 4, 32, 0, W4A8_STE_PLAIN, q, NULL), W4A8_ERR_NULL_ARG);
    }
    free(W), free(Wq), free(ref), free(scales), free(codes), free(zeros), free(mask);
}

/* Fake activations equal the codes times the scales of
   w4a8_quantize_activations; per tensor the mask marks the clamped ones. */
static void test_fake_activations(void) {
    size_t M = 5, K = 70, i;
    float *X = fill(M * K, 12, 1.5f), *Xq = (float *)malloc(M * K * sizeof(float)), scales[5];
    int8_t *codes = (int8_t *)malloc(M * K);
    int32_t sums[5];
    uint8_t *mask = (uint8_t *)malloc(M * K);
    int mode;
    memset(X + 2 * K, 0, K * sizeof(float)); /* an all-zero token */
    for (mode = 0; mode < 2; mode++) {
        float st = 0.01f; /* per tensor: |x| > 1.27 is clamped */
        size_t clamped = 0;
        CHECK_ST(w4a8_quantize_activations(X, M, K, W4A8_PER_CHANNEL, NULL, (w4a8_act_mode)mode, st, codes, scales,
                                           sums), W4A8_OK);
        CHECK_ST(w4a8_fake_quantize_activations(X, M, K, (w4a8_act_mode)mode, st, W4A8_STE_PLAIN, Xq, mask), W4A8_OK);
        for (i = 0; i < M * K; i++) {
            float ref = (float)codes[i] * scales[i / K];
            CHECK(memcmp(&ref, &Xq[i], sizeof ref) == 0);
            CHECK(mask[i] == (mode == W4A8_ACT_PER_TOKEN || fabsf(X[i]) / st < 127.5f));
            clamped += !mask[i];
        }
        if (mode == W4A8_ACT_PER_TENSOR) CHECK(clamped > 0);
        CHECK_ST(w4a8_fake_quantize_activations(X, M, K, (w4a8_act_mode)mode, st, W4A8_STE_CLIP2, Xq, (uint8_t *)codes),
                 W4A8_OK);
        for (i = 0; i < M * K; i++) CHECK((uint8_t)codes[i] == (mask[i] && fabsf(X[i]) < 2.0f));
    }
    CHECK_ST(w4a8_fake_quantize_activations(X, M, K, W4A8_ACT_PER_TENSOR, 0.0f, W4A8_STE_PLAIN, Xq, NULL), W4A8_ERR_RANGE);
    CHECK_ST(w4a8_fake_quantize_activations(X, M, K, (w4a8_act_mode)3, 1.0f, W4A8_STE_PLAIN, Xq, NULL), W4A8_ERR_CONFIG);
    X[4] = INFINITY;
    CHECK_ST(w4a8_fake_quantize_activations(X, M, K, W4A8_ACT_PER_TOKEN, 0.0f, W4A8_STE_PLAIN, Xq, NULL),
             W4A8_ERR_NONFINITE);
    free(X), free(Xq), free(codes), free(mask);
}

/* KV rows: round trip within half a step, fake == dequantize(quantize). */
static void test_kv_round_trip(void) {
    static const size_t groups[3] = { 8, 24, 1000 };
    size_t T = 6, D = 24, gi, i;
    float *X = fill(T * D, 13, 2.0f), *Y = (float *)malloc(T * D * sizeof(float));
    float *F = (float *)malloc(T * D * sizeof(float)), scales[6 * 3];
    uint8_t codes[6 * 24], zeros[6 * 3], mask[6 * 24];
    int bits, asym;
    for (i = 0; i < D; i++) X[3 * D + i] = fabsf(X[3 * D + i]) + 0.5f; /* a token not containing 0 */
    memset(X + 4 * D, 0, D * sizeof(float));                            /* an all-zero token */
    for (bits = 4; bits <= 8; bits += 4)
        for (asym = 0; asym < 2; asym++)
            for (gi = 0; gi < 3; gi++) {
                size_t G = groups[gi] < D ? groups[gi] : D, ng = D / G;
                CHECK_ST(w4a8_kv_quantize(X, T, D, groups[gi], bits, asym, codes, scales, zeros), W4A8_OK);
                CHECK_ST(w4a8_kv_dequantize(codes, scales, zeros, T, D, groups[gi], bits, Y), W4A8_OK);
                CHECK_ST(w4a8_fake_quantize_kv(X, T, D, groups[gi], bits, asym, W4A8_STE_PLAIN, F, mask), W4A8_OK);
                CHECK(memcmp(F, Y, T * D * sizeof(float)) == 0);
                for (i = 0; i < T * D; i++) {
                    float s = scales[i / D * ng + i % D / G];
                    CHECK(fabsf(X[i] - Y[i]) <= 0.5f * s * (1.0f + 1e-5f));
                    if (i / D == 4) CHECK(Y[i] == 0.0f && s == 0.0f);
                    if (!asym) CHECK(mask[i] == 1);
                }
            }
    X[7] = NAN;
    CHECK_ST(w4a8_kv_quantize(X, T, D, 8, 8, 0, codes, scales, zeros), W4A8_ERR_NONFINITE);
    CHECK_ST(w4a8_fake_quantize_kv(X, T, D, 8, 8, 0, W4A8_STE_PLAIN, F, NULL), W4A8_ERR_NONFINITE);
    CHECK_ST(w4a8_kv_quantize(X, T, D, 8, 5, 0, codes, scales, zeros), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_kv_quantize(X, T, D, 0, 8, 0, codes, scales, zeros), W4A8_ERR_GROUP_SIZE);
    CHECK_ST(w4a8_kv_quantize(X, 0, D, 8, 8, 0, codes, scales, zeros), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_kv_dequantize(codes, scales, NULL, T, D, 8, 8, Y), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_kv_quantize(X, (size_t)-1 / 2, D, 8, 8, 0, codes, scales, zeros), W4A8_ERR_OVERFLOW);
    CHECK_ST(w4a8_kv_row_bytes(5, 4, &i), W4A8_OK);
    CHECK(i == 3);
    CHECK_ST(w4a8_kv_row_bytes(5, 8, &i), W4A8_OK);
    CHECK(i == 5);
    CHECK_ST(w4a8_kv_row_bytes(5, 2, &i), W4A8_ERR_CONFIG);
    free(X), free(Y), free(F);
}

/* Exact codes on crafted rows. */
static void test_kv_codes(void) {
    /* symmetric 8 bits: max 127 -> scale 1, zero 128; 2.5 ties to 2 */
    float x[5] = { 127.0f, -127.0f, 2.5f, -3.5f, 0.0f }, s[2];
    /* asymmetric 4 bits over [-5, 10]: scale 1, zero 5; 4 bits symmetric: max 7 -> scale 1, zero 8 */
    float a[4] = { -5.0f, 10.0f, 0.4f, 3.6f }, b[3] = { 7.0f, -7.0f, 1.5f };
    uint8_t c[5], z[2];
    CHECK_ST(w4a8_kv_quantize(x, 1, 5, 5, 8, 0, c, s, z), W4A8_OK);
    CHECK(s[0] == 1.0f && z[0] == 128);
    CHECK(c[0] == 255 && c[1] == 1 && c[2] == 130 && c[3] == 124 && c[4] == 128);
    CHECK_ST(w4a8_kv_quantize(a, 1, 4, 4, 4, 1, c, s, z), W4A8_OK);
    CHECK(s[0] == 1.0f && z[0] == 5);
    CHECK(c[0] == (0 | 15 << 4) && c[1] == (5 | 9 << 4)); /* codes 0, 15, 5, 9: two per byte, low first */
    CHECK_ST(w4a8_kv_quantize(b, 1, 3, 2, 4, 0, c, s, z), W4A8_OK); /* groups {7, -7} and {1.5} */
    CHECK(s[0] == 1.0f && z[0] == 8 && s[1] == 1.5f / 7.0f && z[1] == 8);
    CHECK(c[0] == (15 | 1 << 4) && c[1] == 15);
}

/* >>training -------------------------------------------------------------- */

/* A random model of the given shape, through the loader (shared < 0: an
   unshared classifier). */
static int random_model(int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int seq, uint64_t seed,
                        llama_model *out) {
    int32_t h[7];
    size_t sz[13], n, i;
    llama_config c;
    unsigned char *buf;
    int ok;
    c.dim = dim, c.hidden_dim = hidden, c.n_layers = layers, c.n_heads = heads, c.n_kv_heads = kv_heads;
    c.vocab_size = vocab < 0 ? -vocab : vocab, c.seq_len = seq;
    n = llama__tensor_sizes(&c, vocab > 0, sz);
    h[0] = dim, h[1] = hidden, h[2] = layers, h[3] = heads, h[4] = kv_heads, h[5] = vocab, h[6] = seq;
    buf = (unsigned char *)malloc(28 + 4 * n);
    memcpy(buf, h, 28); /* the test machines are little-endian, as the format */
    for (i = 0; i < n; i++) {
        float v = 0.4f * test_normal(&seed);
        memcpy(buf + 28 + 4 * i, &v, 4);
    }
    ok = llama_load_mem(buf, 28 + 4 * n, out) == LLAMA_OK;
    free(buf);
    for (i = 0; ok && i < (size_t)layers * (size_t)dim; i++) out->rms_att[i] += 1.0f, out->rms_ffn[i] += 1.0f;
    for (i = 0; ok && i < (size_t)dim; i++) out->rms_final[i] += 1.0f;
    return ok;
}

static int n_workspaces(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Loss and gradient of a batch with fresh buffers. */
static double grad_of(const llama_model *m, const llama_model *teacher, const llama_qat_quant *qc, const int *seqs,
                      size_t n_seqs, size_t T, float *grad) {
    llama_fq_model f;
    llama_train_ws *ws[64];
    int nw = n_workspaces(), i;
    float *sg = (float *)malloc(n_seqs * m->n_floats * sizeof(float));
    double loss = -1.0;
    memset(&f, 0, sizeof f);
    for (i = 0; i < nw; i++) CHECK(llama_train_ws_create(m, T, &ws[i]) == LLAMA_OK);
    CHECK(llama_fq_update(m, qc, &f) == LLAMA_OK);
    CHECK(llama_train_grad(m, teacher, qc, &f, ws, seqs, n_seqs, T, sg, grad, &loss) == LLAMA_OK);
    for (i = 0; i < nw; i++) llama_train_ws_free(ws[i]);
    llama_fq_free(&f);
    free(sg);
    return loss;
}

/* The loss at base + h * dir. */
static double loss_at(llama_model *m, const float *base, const float *dir, double h, const llama_model *teacher,
                      const int *seqs, size_t B, size_t T, float *scratch) {
    llama_qat_quant none;
    size_t j;
    double L;
    memset(&none, 0, sizeof none);
    for (j = 0; j < m->n_floats; j++) m->data[j] = (float)(base[j] + h * dir[j]);
    L = grad_of(m, teacher, &none, seqs, B, T, scratch);
    memcpy(m->data, base, m->n_floats * sizeof(float));
    return L;
}

/* Central differences along a random unit direction of every parameter
   tensor, against the backward pass (no quantization: the function is
   smooth). With steps h and h/2, the truncation error of the h/2 quotient
   (h^2/24 L''' + ...) is below |fd(h) - fd(h/2)| (which is 3/4 of
   h^2/6 L''' ... for smooth L); the rounding error of each quotient is at
   most 2 eps_L |L| / step, eps_L the relative rounding of the float loss
   (3e-7: a few float eps 6e-8 accumulated; the loss sums in double). */
static void check_fd(int vocab) {
    enum { T = 7, B = 3 };
    llama_model m, teacher;
    llama_qat_quant qc;
    float *grad, *g2, *dir, *base;
    int seqs[B * T], i, k;
    uint64_t seed = 99;
    double h = 2e-2, eps_L = 6e-8;
    const char *names[12] = { "emb", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3", "rms_final", "wcls" };
    if (!random_model(16, 24, 2, 4, 2, vocab, 8, 5, &m) || !random_model(16, 24, 2, 4, 2, vocab, 8, 6, &teacher)) {
        CHECK(0);
        return;
    }
    for (i = 0; i < B * T; i++) seqs[i] = (int)(test_rand(&seed) % (uint64_t)m.c.vocab_size);
    memset(&qc, 0, sizeof qc);
    grad = (float *)malloc(m.n_floats * sizeof(float)), g2 = (float *)malloc(m.n_floats * sizeof(float));
    dir = (float *)calloc(m.n_floats, sizeof(float)), base = (float *)malloc(m.n_floats * sizeof(float));
    memcpy(base, m.data, m.n_floats * sizeof(float));
    {
        double L = grad_of(&m, &teacher, &qc, seqs, B, T, grad);
        float *t[12];
        size_t sz[13];
        CHECK(L > 0.1);
        llama__tensor_sizes(&m.c, m.shared, sz);
        t[0] = m.emb, t[1] = m.rms_att, t[2] = m.wq, t[3] = m.wk, t[4] = m.wv, t[5] = m.wo, t[6] = m.rms_ffn;
        t[7] = m.w1, t[8] = m.w2, t[9] = m.w3, t[10] = m.rms_final, t[11] = m.shared ? NULL : m.wcls;
        for (k = 0; k < 12; k++) {
            size_t j, n = k < 11 ? sz[k] : sz[12], start;
            double norm = 0.0, an = 0.0, fd1, fd2, bound;
            if (!t[k]) continue;
            start = (size_t)(t[k] - m.data);
            for (j = 0; j < n; j++) dir[start + j] = test_normal(&seed), norm += (double)dir[start + j] * dir[start + j];
            for (j = 0; j < n; j++) dir[start + j] = (float)(dir[start + j] / sqrt(norm)), an += (double)grad[start + j] * dir[start + j];
            fd1 = (loss_at(&m, base, dir, h, &teacher, seqs, B, T, g2) - loss_at(&m, base, dir, -h, &teacher, seqs, B, T, g2)) / (2.0 * h);
            fd2 = (loss_at(&m, base, dir, h / 2, &teacher, seqs, B, T, g2) - loss_at(&m, base, dir, -h / 2, &teacher, seqs, B, T, g2)) / h;
            bound = fabs(fd1 - fd2) + 2.0 * eps_L * L * (1.0 / h + 2.0 / h) + 4.0 * eps_L * L / h;
            if (getenv("QAT_FD_VERBOSE") || !(fabs(fd2 - an) <= bound) || fabs(an) < 1e-3)
                printf("    %s: analytic %.7g, central differences %.7g (h) %.7g (h/2), error %.2g, bound %.2g\n",
                       names[k], an, fd1, fd2, fabs(fd2 - an), bound);
            CHECK(fabs(an) >= 1e-3); /* a real signal to compare */
            CHECK(fabs(fd2 - an) <= bound);
            memset(dir + start, 0, n * sizeof(float));
        }
    }
    free(grad), free(g2), free(dir), free(base);
    llama_free(&m), llama_free(&teacher);
}

static void test_train_fd_unshared(void) { check_fd(-20); }
static void test_train_fd_shared(void) { check_fd(20); }

/* With weights fake-quantized, the student's gradient is the FP gradient at
   the quantized weights, through the mask; the sum over sequences is the same
   bits for 1 and 2 threads. */
static void test_train_ste_and_threads(void) {
    enum { T = 8, B = 5 };
    llama_model m, teacher, mq;
    llama_qat_quant qc, none;
    llama_fq_model f;
    float *g1, *g2, *g3;
    int seqs[B * T], i;
    uint64_t seed = 7;
    size_t j, masked = 0;
    if (!random_model(32, 48, 2, 4, 2, -24, 8, 8, &m) || !random_model(32, 48, 2, 4, 2, -24, 8, 9, &teacher)) {
        CHECK(0);
        return;
    }
    for (i = 0; i < B * T; i++) seqs[i] = (int)(test_rand(&seed) % 24);
    memset(&qc, 0, sizeof qc), memset(&none, 0, sizeof none), memset(&f, 0, sizeof f);
    qc.weights = 1, qc.group = 16;
    g1 = (float *)malloc(m.n_floats * sizeof(float)), g2 = (float *)malloc(m.n_floats * sizeof(float));
    g3 = (float *)malloc(m.n_floats * sizeof(float));
    CHECK(llama_fq_update(&m, &qc, &f) == LLAMA_OK);
    CHECK(llama_copy(&f.w, &mq) == LLAMA_OK);
    grad_of(&m, &teacher, &qc, seqs, B, T, g1);
    grad_of(&mq, &teacher, &none, seqs, B, T, g2);
    for (j = 0; j < m.n_floats; j++) {
        float want = f.mask[j] ? g2[j] : 0.0f;
        CHECK(memcmp(&want, &g1[j], sizeof want) == 0);
        masked += !f.mask[j];
    }
    CHECK(masked > 0);
#ifdef _OPENMP
    {
        int before = omp_get_max_threads();
        qc.acts = 1, qc.kv_bits = 4;
        omp_set_num_threads(1);
        grad_of(&m, &teacher, &qc, seqs, B, T, g1);
        omp_set_num_threads(2);
        grad_of(&m, &teacher, &qc, seqs, B, T, g3);
        omp_set_num_threads(before);
        CHECK(memcmp(g1, g3, m.n_floats * sizeof(float)) == 0);
    }
#endif
    free(g1), free(g2), free(g3);
    llama_fq_free(&f);
    llama_free(&m), llama_free(&teacher), llama_free(&mq);
}

/* On stories260K: the engine's forward with a float, int8 or int4 KV cache,
   symmetric or asymmetric, gives the bits of the student's forward with keys
   and values (after RoPE) rounded by w4a8_fake_quantize_kv, and nothing else
   quantized; the int8 cache is close to float, int4 further. Batch and
   token-by-token engine forwards agree with a quantized cache too, and the
   evaluation's entries (llama_entry.kv_bits, kv_asym) score those logits. */
static llama_model qat_model;
static const int *qat_tokens;

static void test_kv_engine(void) {
    enum { T = 40, NC = 5 };
    static const int cfg[NC][2] = { { 0, 0 }, { 8, 0 }, { 4, 0 }, { 8, 1 }, { 4, 1 } };
    const llama_model *m = &qat_model;
    const int *tokens = qat_tokens;
    size_t V = (size_t)m->c.vocab_size, t;
    float *eng = (float *)malloc(T * V * sizeof(float)), *step = (float *)malloc(T * V * sizeof(float));
    float *fp = (float *)malloc(T * V * sizeof(float));
    double *lp = (double *)malloc(V * sizeof(double));
    llama_train_ws *w = NULL;
    llama_state *s = NULL, *s1 = NULL;
    llama_fq_model f;
    llama_qat_quant qc;
    llama_entry e[NC];
    llama_metrics mt[NC];
    double dev[NC] = { 0, 0, 0, 0, 0 }, nll[NC] = { 0, 0, 0, 0, 0 };
    int bi;
    memset(&qc, 0, sizeof qc), memset(&f, 0, sizeof f), memset(e, 0, sizeof e);
    CHECK(llama_train_ws_create(m, T, &w) == LLAMA_OK);
    CHECK(llama_state_create(m, T, T, &s) == LLAMA_OK);
    CHECK(llama_state_create(m, 1, T, &s1) == LLAMA_OK);
    CHECK(llama_fq_update(m, &qc, &f) == LLAMA_OK);
    if (!w || !s || !s1 || !f.w.data || !lp) return;
    for (bi = 0; bi < NC; bi++) {
        int bits = cfg[bi][0], asym = cfg[bi][1];
        qc.kv_bits = bits, qc.kv_asym = asym;
        e[bi].m = m, e[bi].kv_bits = bits, e[bi].kv_asym = asym;
        CHECK(llama_state_set_kv(s, m, bits, m->head_size, asym) == LLAMA_OK);
        CHECK(llama_state_set_kv(s1, m, bits, m->head_size, asym) == LLAMA_OK);
        CHECK(llama_forward(m, NULL, s, tokens, T, 0, eng, NULL, NULL) == LLAMA_OK);
        for (t = 0; t < T; t++) CHECK(llama_forward(m, NULL, s1, tokens + t, 1, t, step + t * V, NULL, NULL) == LLAMA_OK);
        CHECK(llama_train_forward(m, &f, &qc, w, tokens, T) == LLAMA_OK);
        CHECK(memcmp(eng, w->logits, T * V * sizeof(float)) == 0);
        CHECK(memcmp(eng, step, T * V * sizeof(float)) == 0);
        if (bits == 0) memcpy(fp, eng, T * V * sizeof(float));
        for (t = 0; t < T * V; t++) dev[bi] = fmax(dev[bi], fabs((double)eng[t] - fp[t]));
        for (t = 0; t < T - 1; t++) llama__log_softmax(eng + t * V, V, lp), nll[bi] -= lp[tokens[t + 1]];
    }
    CHECK(dev[1] > 0.0 && dev[1] < dev[2]);
    CHECK(dev[3] > 0.0 && dev[3] < dev[4] && dev[3] != dev[1]);
    /* one chunk of T tokens: T - 1 fed, all scored, in the order above */
    CHECK(llama_evaluate_chunks(e, NC, tokens, 1, T, 0, mt, NULL, NULL) == LLAMA_OK);
    for (bi = 0; bi < NC; bi++) CHECK(mt[bi].tokens == T - 1 && mt[bi].nll == nll[bi]);
    CHECK(llama_state_set_kv(s, m, 3, m->head_size, 0) == LLAMA_ERR_ARG);
    CHECK(llama_state_set_kv(s, m, 8, 0, 0) == LLAMA_ERR_ARG);
    llama_fq_free(&f);
    llama_train_ws_free(w);
    llama_state_free(s), llama_state_free(s1);
    free(eng), free(step), free(fp), free(lp);
}

/* A few AdamW steps on data the model wrote lower the student's KL (W4A8
   g32, int8 KV); the checkpoint and the optimizer come back bit for bit. */
static void test_train_short_run(void) {
    enum { T = 32, B = 4, STEPS = 6 };
    const llama_model *m = &qat_model;
    llama_model student, back;
    llama_qat_quant qc;
    llama_fq_model f;
    llama_adam adam, adam2;
    llama_train_ws *ws[64];
    int seqs[B * T], nw = n_workspaces(), i;
    float *grad = (float *)malloc(m->n_floats * sizeof(float)), *sg = (float *)malloc(B * m->n_floats * sizeof(float));
    double first = 0.0, last = 0.0, loss = 0.0;
    const char *path = "build/test_qat_ckpt.bin", *apath = "build/test_qat_ckpt.bin.adam";
    FILE *fp;
    memset(&qc, 0, sizeof qc), memset(&f, 0, sizeof f);
    qc.weights = 1, qc.group = 32, qc.acts = 1, qc.kv_bits = 8;
    CHECK(llama_qat_generate(m, B, T, 3, seqs) == LLAMA_OK);
    for (i = 0; i < B; i++) CHECK(seqs[i * T] == LLAMA_BOS && seqs[i * T + 1] == i);
    CHECK(llama_copy(m, &student) == LLAMA_OK);
    CHECK(llama_adam_create(m->n_floats, &adam) == LLAMA_OK);
    for (i = 0; i < nw; i++) CHECK(llama_train_ws_create(m, T, &ws[i]) == LLAMA_OK);
    for (i = 0; i <= STEPS; i++) {
        CHECK(llama_fq_update(&student, &qc, &f) == LLAMA_OK);
        CHECK(llama_train_grad(&student, m, &qc, &f, ws, seqs, B, T, sg, grad, &loss) == LLAMA_OK);
        if (i == 0) first = loss;
        last = loss;
        if (i < STEPS) llama_adam_step(&adam, student.data, grad, llama_cosine_lr(3e-4, (size_t)i, STEPS));
    }
    CHECK(first > 0.01 && last < 0.5 * first); /* measured: 0.170 -> 0.042 */
    if (!(last < 0.5 * first)) printf("    KL %.5f -> %.5f\n", first, last);
    /* a device is never written to: both files go through llama__write_file */
    CHECK(llama_save(&student, "/dev/null") == LLAMA_ERR_IO && llama_adam_save(&adam, "/dev/null") == LLAMA_ERR_IO);
    CHECK(llama_save(&student, path) == LLAMA_OK);
    CHECK(llama_load(path, &back) == LLAMA_OK);
    CHECK(back.n_floats == student.n_floats && back.shared == student.shared &&
          memcmp(back.data, student.data, student.n_floats * sizeof(float)) == 0);
    CHECK(llama_adam_save(&adam, apath) == LLAMA_OK);
    CHECK(llama_adam_create(m->n_floats, &adam2) == LLAMA_OK);
    CHECK(llama_adam_load(apath, &adam2) == LLAMA_OK);
    CHECK(adam2.step == STEPS && memcmp(adam2.m1, adam.m1, m->n_floats * sizeof(float)) == 0 &&
          memcmp(adam2.m2, adam.m2, m->n_floats * sizeof(float)) == 0);
    if ((fp = fopen(apath, "r+b")) != NULL) { /* truncate: a short file is refused */
        fclose(fp);
        fp = fopen(apath, "wb");
        if (fp) fwrite("QAT1", 1, 4, fp), fclose(fp);
        CHECK(llama_adam_load(apath, &adam2) == LLAMA_ERR_TRUNCATED);
    }
    llama_adam_free(&adam2);
    CHECK(llama_adam_create(m->n_floats - 1, &adam2) == LLAMA_OK);
    CHECK(llama_adam_save(&adam, apath) == LLAMA_OK);
    CHECK(llama_adam_load(apath, &adam2) == LLAMA_ERR_FORMAT); /* another model's size */
    remove(path), remove(apath);
    for (i = 0; i < nw; i++) llama_train_ws_free(ws[i]);
    llama_adam_free(&adam), llama_adam_free(&adam2);
    llama_fq_free(&f);
    llama_free(&student), llama_free(&back);
    free(grad), free(sg);
}

void tests_qat(void) {
    RUN(test_fake_weights);
    RUN(test_fake_activations);
    RUN(test_kv_round_trip);
    RUN(test_kv_codes);
    RUN(test_train_fd_unshared);
    RUN(test_train_fd_shared);
    RUN(test_train_ste_and_threads);
    {
        const char *env = getenv("W4A8_DATA");
        char path[1200], tpath[1200], *text = NULL;
        llama_model *m = &qat_model;
        llama_tokenizer tok;
        int *stream = NULL;
        size_t bytes, n = 0;
        snprintf(path, sizeof path, "%s/stories260K.bin", env && *env ? env : "../shared/data");
        snprintf(tpath, sizeof tpath, "%s/tinystories_valid_first1000.txt", env && *env ? env : "../shared/data");
        if (llama_load(path, m) != LLAMA_OK) {
            printf("qat: skipped: no stories260K.bin at %s (set W4A8_DATA)\n", path);
            return;
        }
        snprintf(path, sizeof path, "%s/tok512.bin", env && *env ? env : "../shared/data");
        if (llama_tokenizer_load(path, 512, &tok) != LLAMA_OK || llama__read_file(tpath, (size_t)64 << 20, &text, &bytes) != LLAMA_OK ||
            llama_encode_stories(&tok, text, bytes, &stream, &n) != LLAMA_OK || n < 4096) {
            printf("qat: cannot read the tokenizer or %s\n", tpath);
            test_failed++;
        } else {
            qat_tokens = stream + 1000;
            RUN(test_kv_engine);
            RUN(test_train_short_run);
        }
        free(text), free(stream);
        llama_tokenizer_free(&tok);
        llama_free(m);
    }
}
