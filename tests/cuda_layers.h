/* Layers and tokens for the CUDA tests (tests/test_cuda_layout.c on the CPU,
   tests/test_cuda.cu on the GPU): random codes, scales and zero points,
   built through w4a8_layer_create; C and C++. */
#ifndef W4A8_TEST_CUDA_LAYERS_H
#define W4A8_TEST_CUDA_LAYERS_H

#include <stdlib.h>
#include <string.h>
#include "../w4a8.h"
#include "test.h"

static w4a8_layer *random_layer(size_t N, size_t K, size_t G, int asym, w4a8_act_mode mode, int smooth, int folded,
                                int bias, uint64_t seed) {
    w4a8_layer_desc d;
    w4a8_layer *L = NULL;
    size_t groups = (K + (G < K ? G : K) - 1) / (G < K ? G : K), i;
    uint8_t *codes = (uint8_t *)malloc(N * K), *zeros = (uint8_t *)malloc(N * groups);
    float *scales = (float *)malloc(N * groups * 4), *b = (float *)malloc(N * 4), *s = (float *)malloc(K * 4);
    for (i = 0; i < N * K; i++) codes[i] = (uint8_t)(test_rand(&seed) & 15);
    for (i = 0; i < N * groups; i++) {
        zeros[i] = asym ? (uint8_t)(test_rand(&seed) & 15) : 8;
        scales[i] = (test_uniform(&seed) + 1.0f) * 0.01f; /* some exactly 0 is fine too */
    }
    for (i = 0; i < N; i++) b[i] = test_normal(&seed);
    for (i = 0; i < K; i++) s[i] = 0.25f + test_uniform(&seed) + 1.0f;
    memset(&d, 0, sizeof d);
    d.N = N;
    d.K = K;
    d.group_size = G;
    d.asymmetric = asym;
    d.codes = codes;
    d.scales = scales;
    d.zeros = zeros;
    d.bias = bias ? b : NULL;
    d.smooth = smooth ? s : NULL;
    d.smooth_folded = folded;
    d.act_mode = mode;
    d.act_scale = 0.02f;
    d.method = W4A8_METHOD_RTN;
    d.kernel = W4A8_KERNEL_AUTO;
    CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
    free(codes);
    free(zeros);
    free(scales);
    free(b);
    free(s);
    return L;
}

/* Tokens with outlier channels; rows up to the workspace's mpad. */
static float *tokens(size_t M, size_t K, uint64_t seed) {
    size_t rows = (M + 15) / 16 * 16, i; /* the workspace's mpad */
    float *X = (float *)malloc(rows * K * 4);
    for (i = 0; i < rows * K; i++) X[i] = test_normal(&seed);
    for (i = 0; i < M; i++) X[i * K + (7 % K)] *= 40.0f;
    return X;
}

#endif
