/* LLM-QAT's building blocks in w4a8.h (fake quantization with its
   straight-through mask, the KV-cache quantizers) and, on the shared
   checkpoints, the quantized KV cache of the engine, the backward pass and
   the training loop of examples/llama/train.h. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../examples/llama/llama.h"
/* train.h: later */
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
            size_t G = groups[gi] < K ? groups[gi] : K, ng = (K + G - 1) / G, clamped = 0;
            CHECK_ST(w4a8_quantize_rtn(W, N, K, groups[gi], asym, codes, scales, zeros), W4A8_OK);
            CHECK_ST(w4a8_dequantize(codes, scales, zeros, N, K, groups[gi], ref), W4A8_OK);
            CHECK_ST(w4a8_fake_quantize_weights(W, N, K, groups[gi], asym, W4A8_STE_PLAIN, Wq, mask), W4A8_OK);
            CHECK(memcmp(Wq, ref, N * K * sizeof(float)) == 0);
            for (i = 0; i < N * K; i++) {
                float s = scales[i / K * ng + i % K / G], err = fabsf(W[i] - Wq[i]);
                /* rounded: within half a step; clamped: at least half a step away */
                if (mask[i]) CHECK(err <= 0.5f * s * (1.0f + 1e-6f));
                else {
                    CHECK(err >= 0.5f * s * (1.0f - 1e-6f));
                    clamped++;
                }
            }
            if (!asym) CHECK(clamped > 0); /* the symmetric grid clamps a group max that is positive */
            CHECK_ST(w4a8_fake_quantize_weights(W, N, K, groups[gi], asym, W4A8_STE_CLIP2, Wq, codes), W4A8_OK);
            for (i = 0; i < N * K; i++) CHECK(codes[i] == (mask[i] && fabsf(W[i]) < 2.0f));
        }
    { /* crafted: max 7.5 gives scale 1; 7.5 is a tie rounded to 8 -> code 16, clamped */
        float w[4] = { 7.5f, -7.5f, 7.0f, 6.6f }, q[4];
        uint8_t mk[4];
        CHECK_ST(w4a8_fake_quantize_weights(w, 1, 4, W4A8_PER_CHANNEL, 0, W4A8_STE_PLAIN, q, mk), W4A8_OK);
        CHECK(q[0] == 7.0f && q[1] == -8.0f && q[2] == 7.0f && q[3] == 7.0f);
        CHECK(mk[0] == 0 && mk[1] == 1 && mk[2] == 1 && mk[3] == 1);
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

void tests_qat(void) {
    RUN(test_fake_weights);
    RUN(test_fake_activations);
    RUN(test_kv_round_trip);
    RUN(test_kv_codes);
}
