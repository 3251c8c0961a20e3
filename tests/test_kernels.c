/* Kernels: every SIMD kernel this machine runs gives the scalar reference's
   bits, for the GEMM, the activation quantization and the layout round trip. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
#include "../w4a8.h"
#include "test.h"

static const w4a8_kernel simd_kernels[] = { W4A8_KERNEL_AVX2, W4A8_KERNEL_AVX_VNNI, W4A8_KERNEL_AVX512_VNNI,
                                            W4A8_KERNEL_NEON };
#define SIMD_COUNT (sizeof simd_kernels / sizeof simd_kernels[0])

/* What this machine and compiler should run, probed here, apart from the
   library. The gate is the header's: GCC >= 11 or Clang >= 13 on x86-64. */
static int machine_runs(w4a8_kernel k) {
#if defined(W4A8_NO_SIMD)
    (void)k;
    return 0;
#elif defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 13) || \
                              (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
    unsigned a = 0, b = 0, c = 0, d = 0;
    __builtin_cpu_init();
    if (k == W4A8_KERNEL_AVX2) return __builtin_cpu_supports("avx2") != 0;
    if (k == W4A8_KERNEL_AVX_VNNI)
        return __builtin_cpu_supports("avx2") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1);
    if (k == W4A8_KERNEL_AVX512_VNNI)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
    return 0;
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
    return k == W4A8_KERNEL_NEON;
#else
    (void)k;
    return 0;
#endif
}

/* Random operands of one layer, with the extremes: rows of all-0 and all-15
   codes, zero points 0 and 15, a zero scale. */
typedef struct layer_data {
    uint8_t *codes, *zeros;
    float *scales, *bias, *smooth;
} layer_data;

static void data_make(layer_data *D, size_t N, size_t K, size_t groups, int asym, uint64_t seed) {
    size_t i;
    D->codes = (uint8_t *)malloc(N * K);
    D->zeros = (uint8_t *)malloc(N * groups);
    D->scales = (float *)malloc(N * groups * sizeof(float));
    D->bias = (float *)malloc(N * sizeof(float));
    D->smooth = (float *)malloc(K * sizeof(float));
    for (i = 0; i < N * K; i++) D->codes[i] = (uint8_t)(test_rand(&seed) % 16);
    if (N > 2) {
        memset(D->codes, 0, K);          /* row 0: every code 0 */
        memset(D->codes + K, 15, K);     /* row 1: every code 15 */
    }
    for (i = 0; i < N * groups; i++) {
        D->zeros[i] = asym ? (uint8_t)(test_rand(&seed) % 16) : 8;
        D->scales[i] = 0.01f + 0.05f * fabsf(test_uniform(&seed));
    }
    if (asym) {
        D->zeros[0] = 15;
        D->zeros[N * groups - 1] = 0;
    }
    D->scales[N * groups / 2] = 0.0f;
    for (i = 0; i < N; i++) D->bias[i] = test_normal(&seed);
    for (i = 0; i < K; i++) D->smooth[i] = 0.25f + 4.0f * fabsf(test_uniform(&seed));
}

static void data_free(layer_data *D) {
    free(D->codes);
    free(D->zeros);
    free(D->scales);
    free(D->bias);
    free(D->smooth);
}

/* extras: bit 0 bias, bit 1 equalization, bit 2 equalization folded. */
static w4a8_layer *data_layer(const layer_data *D, size_t N, size_t K, size_t G, int asym, int mode, int extras,
                              w4a8_kernel kernel) {
    w4a8_layer_desc d;
    w4a8_layer *L = NULL;
    memset(&d, 0, sizeof d);
    d.N = N;
    d.K = K;
    d.group_size = G;
    d.asymmetric = asym;
    d.codes = D->codes;
    d.scales = D->scales;
    d.zeros = D->zeros;
    d.bias = extras & 1 ? D->bias : NULL;
    d.smooth = extras & 2 ? D->smooth : NULL;
    d.smooth_folded = (extras & 4) != 0;
    d.act_mode = (w4a8_act_mode)mode;
    d.act_scale = 0.02f; /* per tensor: the outliers saturate */
    d.kernel = kernel;
    CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
    if (L) CHECK(L->kernel == (kernel == W4A8_KERNEL_AUTO ? L->kernel : kernel));
    return L;
}

/* Tokens: normal with outlier channels, one all zero, one of +-1 only (every
   per-token code +-127), one of huge values (per tensor: +-127 saturated). */
static float *tokens_make(size_t M, size_t K, uint64_t seed) {
    float *X = (float *)malloc(M * K * sizeof(float));
    size_t m, k;
    for (k = 0; k < M * K; k++) X[k] = test_normal(&seed);
    for (m = 0; m < M; m++) {
        X[m * K + (m * 7) % K] *= 50.0f;
        if (m % 4 == 1)
            for (k = 0; k < K; k++) X[m * K + k] = (k * 5 + m) % 3 == 0 ? -1.0f : 1.0f;
        if (m % 4 == 2) memset(X + m * K, 0, K * sizeof(float));
        if (m % 4 == 3)
            for (k = 0; k < K; k++) X[m * K + k] = (k % 2 ? 1e6f : -1e6f);
    }
    return X;
}

/* The activation quantization and forward of `L` equal the reference's. */
static void check_same(const w4a8_layer *R, const w4a8_layer *L, const float *X, size_t M) {
    size_t N = R->N, K = R->K, ng = M * R->groups;
    int8_t *q0 = (int8_t *)malloc(M * K), *q1 = (int8_t *)malloc(M * K);
    float *s0 = (float *)malloc(M * sizeof(float)), *s1 = (float *)malloc(M * sizeof(float));
    int32_t *g0 = (int32_t *)malloc(ng * sizeof(int32_t)), *g1 = (int32_t *)malloc(ng * sizeof(int32_t));
    float *Y0 = (float *)malloc(M * N * sizeof(float)), *Y1 = (float *)malloc(M * N * sizeof(float));
    uint8_t *c0 = (uint8_t *)malloc(N * K), *c1 = (uint8_t *)malloc(N * K);
    CHECK_ST(w4a8_layer_quantize_activations(R, X, M, q0, s0, g0), W4A8_OK);
    CHECK_ST(w4a8_layer_quantize_activations(L, X, M, q1, s1, g1), W4A8_OK);
    CHECK(memcmp(q0, q1, M * K) == 0);
    CHECK(memcmp(s0, s1, M * sizeof(float)) == 0);
    CHECK(memcmp(g0, g1, ng * sizeof(int32_t)) == 0);
    CHECK_ST(w4a8_layer_forward(R, X, M, Y0, NULL, 0), W4A8_OK);
    CHECK_ST(w4a8_layer_forward(L, X, M, Y1, NULL, 0), W4A8_OK);
    CHECK(memcmp(Y0, Y1, M * N * sizeof(float)) == 0);
    /* The int8 half alone, on the reference's activations */
    memset(Y1, 0xff, M * N * sizeof(float));
    CHECK_ST(w4a8_layer_gemm(L, q0, s0, g0, M, Y1), W4A8_OK);
    CHECK(memcmp(Y0, Y1, M * N * sizeof(float)) == 0);
    CHECK_ST(w4a8_layer_codes(R, c0), W4A8_OK);
    CHECK_ST(w4a8_layer_codes(L, c1), W4A8_OK);
    CHECK(memcmp(c0, c1, N * K) == 0);
    free(q0);
    free(q1);
    free(s0);
    free(s1);
    free(g0);
    free(g1);
    free(Y0);
    free(Y1);
    free(c0);
    free(c1);
}

static const size_t shapes[][3] = {
    /* M, N, K: odd and prime sizes, K = 172 (last group 12), partial blocks
       of 16 rows, 9 tokens (a tile of 8 and one of 1) */
    { 1, 1, 1 }, { 3, 17, 172 }, { 7, 37, 173 }, { 9, 33, 131 }, { 2, 16, 64 }, { 5, 67, 520 }, { 4, 3, 7 },
};
static const size_t groups_sizes[] = { 32, 64, 128, W4A8_PER_CHANNEL, 8 };

static void test_kernels_match_reference(void) {
    size_t s, gi, kk;
    int asym, mode, extras;
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *X = tokens_make(M, K, 100 + s);
        for (gi = 0; gi < sizeof groups_sizes / sizeof groups_sizes[0]; gi++) {
            size_t G = groups_sizes[gi] < K ? groups_sizes[gi] : K, groups = (K + G - 1) / G;
            for (asym = 0; asym < 2; asym++) {
                layer_data D;
                data_make(&D, N, K, groups, asym, 1000 * s + 10 * gi + (size_t)asym);
                for (mode = 0; mode < 2; mode++)
                    for (extras = 0; extras < 8; extras++) {
                        w4a8_layer *R;
                        if ((extras & 4) && !(extras & 2)) continue; /* folding needs an equalization */
                        R = data_layer(&D, N, K, G, asym, mode, extras, W4A8_KERNEL_SCALAR);
                        for (kk = 0; R && kk < SIMD_COUNT; kk++) {
                            w4a8_layer *L;
                            if (!machine_runs(simd_kernels[kk])) continue;
                            L = data_layer(&D, N, K, G, asym, mode, extras, simd_kernels[kk]);
                            if (L) check_same(R, L, X, M);
                            w4a8_layer_free(L);
                        }
                        w4a8_layer_free(R);
                    }
                data_free(&D);
            }
        }
        free(X);
    }
    for (kk = 0; kk < SIMD_COUNT; kk++)
        if (machine_runs(simd_kernels[kk])) printf("    kernel %s: checked\n", w4a8_kernel_name(simd_kernels[kk]));
}

/* The edges of the SIMD tiles: every token count 1..17 (AVX2 tiles of 4,
   AVX-512 of 8, and what is left), 35 rows (two blocks and 3 rows), group
   lengths that are and are not whole 32-code chunks of the AVX2 int16 stage,
   a last group with a partial piece, and the largest int16 partial sums:
   rows of all-15 codes in both halves of a block against tokens whose codes
   are all +127 or all -127 (16 products of 15 * 127 in one int16 lane). */
static void test_kernel_tile_edges(void) {
    static const size_t Gs[] = { 32, 40, 48, 64, 128, 256, W4A8_PER_CHANNEL };
    static const size_t Ks[] = { 300, 264 };
    enum { M = 17, N = 35 };
    size_t gi, ki, kk, m, k;
    int asym;
    for (ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
        size_t K = Ks[ki];
        float *X = tokens_make(M, K, 900 + ki);
        for (k = 0; k < K; k++) X[5 * K + k] = 1.0f, X[6 * K + k] = -1.0f, X[12 * K + k] = 2.0f;
        for (gi = 0; gi < sizeof Gs / sizeof Gs[0]; gi++) {
            size_t G = Gs[gi] < K ? Gs[gi] : K, groups = (K + G - 1) / G;
            for (asym = 0; asym < 2; asym++) {
                layer_data D;
                w4a8_layer *R;
                data_make(&D, N, K, groups, asym, 77 + 10 * gi + ki + (size_t)asym);
                memset(D.codes + 9 * K, 15, K);
                memset(D.codes + (N - 1) * K, 15, K);
                R = data_layer(&D, N, K, G, asym, W4A8_ACT_PER_TOKEN, 1, W4A8_KERNEL_SCALAR);
                for (kk = 0; R && kk < SIMD_COUNT; kk++) {
                    w4a8_layer *L;
                    if (!machine_runs(simd_kernels[kk])) continue;
                    L = data_layer(&D, N, K, G, asym, W4A8_ACT_PER_TOKEN, 1, simd_kernels[kk]);
                    for (m = 1; L && m <= M; m++) check_same(R, L, X, m);
                    w4a8_layer_free(L);
                }
                w4a8_layer_free(R);
                data_free(&D);
            }
        }
        free(X);
    }
}

/* The zero point kept out of the inner loop: sum x*u - z*sum x, as every
   kernel computes it, gives the bits of sum x*(u - z) computed here
   directly, through the documented float steps. Codes at the extremes (0, 15
   with zero points 15, 0; activations +-127) and one long group. */
static void test_zero_point_identity(void) {
    static const size_t Ks[] = { 172, 1000 };
    size_t t, kk, m, n, k, g;
    for (t = 0; t < 2; t++) {
        size_t M = 6, N = 21, K = Ks[t], G = t ? K : 32, groups = (K + G - 1) / G;
        layer_data D;
        float *X = tokens_make(M, K, 7 + t), *Y = (float *)malloc(M * N * sizeof(float));
        int8_t *q = (int8_t *)malloc(M * K);
        float *xs = (float *)malloc(M * sizeof(float));
        int32_t *gs = (int32_t *)malloc(M * groups * sizeof(int32_t));
        data_make(&D, N, K, groups, 1, 70 + t);
        for (g = 0; g < groups; g++) { /* row 1 (codes 15) against zero 0, row 0 (codes 0) against 15 */
            D.zeros[g] = 15;
            D.zeros[groups + g] = 0;
        }
        for (kk = 0; kk <= SIMD_COUNT; kk++) {
            w4a8_kernel kernel = kk == SIMD_COUNT ? W4A8_KERNEL_SCALAR : simd_kernels[kk];
            w4a8_layer *L;
            if (kernel != W4A8_KERNEL_SCALAR && !machine_runs(kernel)) continue;
            L = data_layer(&D, N, K, G, 1, W4A8_ACT_PER_TOKEN, 1, kernel);
            if (!L) continue;
            CHECK_ST(w4a8_layer_quantize_activations(L, X, M, q, xs, gs), W4A8_OK);
            CHECK_ST(w4a8_layer_forward(L, X, M, Y, NULL, 0), W4A8_OK);
            for (m = 0; m < M; m++)
                for (n = 0; n < N; n++) {
                    volatile float y = 0.0f, tt; /* volatile: each step rounded on its own */
                    for (g = 0; g < groups; g++) {
                        int32_t acc = 0;
                        for (k = g * G; k < K && k < (g + 1) * G; k++)
                            acc += q[m * K + k] * ((int32_t)D.codes[n * K + k] - (int32_t)D.zeros[n * groups + g]);
                        tt = (float)acc * D.scales[n * groups + g];
                        y = y + tt;
                    }
                    y = y * xs[m];
                    y = y + D.bias[n];
                    CHECK(memcmp((const void *)&y, &Y[m * N + n], sizeof(float)) == 0);
                }
            /* the extremes were reached: +-127 codes and a full 15 * 127 product row */
            CHECK(q[1 * K] == 127 || q[1 * K] == -127);
            w4a8_layer_free(L);
        }
        data_free(&D);
        free(X);
        free(Y);
        free(q);
        free(xs);
        free(gs);
    }
}

/* Same bits for 1, 2, 3 and 7 threads, on every kernel. */
static void test_kernels_threads(void) {
#ifdef _OPENMP
    static const int threads[] = { 1, 2, 3, 7 };
    size_t M = 19, N = 101, K = 172, kk, i;
    layer_data D;
    float *X = tokens_make(M, K, 5), *Y0 = (float *)malloc(M * N * sizeof(float)),
          *Y = (float *)malloc(M * N * sizeof(float));
    int saved = omp_get_max_threads();
    data_make(&D, N, K, 6, 1, 55);
    for (kk = 0; kk <= SIMD_COUNT; kk++) { /* the scalar kernel first: the reference */
        w4a8_kernel kernel = kk ? simd_kernels[kk - 1] : W4A8_KERNEL_SCALAR;
        w4a8_layer *L;
        if (kk && !machine_runs(kernel)) continue;
        L = data_layer(&D, N, K, 32, 1, W4A8_ACT_PER_TOKEN, 3, kernel);
        for (i = 0; L && i < 4; i++) {
            omp_set_num_threads(threads[i]);
            CHECK_ST(w4a8_layer_forward(L, X, M, kk || i ? Y : Y0, NULL, 0), W4A8_OK);
            if (kk || i) CHECK(memcmp(Y, Y0, M * N * sizeof(float)) == 0);
        }
        w4a8_layer_free(L);
    }
    omp_set_num_threads(saved);
    data_free(&D);
    free(X);
    free(Y0);
    free(Y);
#endif
}

/* Activation quantization at its edges, on every kernel: ties to even,
   values that round to +-128, -0, subnormals, saturation per tensor, NaN and
   Inf anywhere (vector body or scalar tail) rejected with the outputs
   untouched, and x/s overflowing to Inf (an error per token only). */
static void test_activation_edges(void) {
    enum { K = 77 };
    float X[2 * K], s0[2];
    int8_t q0[2 * K];
    int32_t g0[6];
    size_t kk, k;
    int mode;
    layer_data D;
    memset(q0, 0, sizeof q0);
    memset(s0, 0, sizeof s0);
    memset(g0, 0, sizeof g0);
    data_make(&D, 3, K, 3, 0, 9);
    for (k = 0; k < K; k++) D.smooth[k] = 1.0f;
    for (k = 0; k < 2 * K; k++) X[k] = (float)((int)(k % 61) - 30) + 0.5f; /* ties */
    X[0] = 127.0f;                                                          /* amax: 127 / amax = 1 */
    X[1] = -0.0f;
    X[2] = 1e-40f;
    X[3] = -126.5f;
    X[K + 5] = 63.75f;  /* per tensor (scale 0.5): 127.5 rounds to 128, clamps to 127 */
    X[K + 6] = -1e30f;
    X[K + 7] = 3e38f;
    for (mode = 0; mode < 2; mode++)
        for (kk = 0; kk <= SIMD_COUNT; kk++) { /* the scalar kernel first: the reference */
            w4a8_kernel kernel = kk ? simd_kernels[kk - 1] : W4A8_KERNEL_SCALAR;
            w4a8_layer_desc d;
            w4a8_layer *L = NULL;
            int8_t q[2 * K];
            float s[2];
            int32_t g[6];
            size_t bad;
            if (kk && !machine_runs(kernel)) continue;
            memset(&d, 0, sizeof d);
            d.N = 3;
            d.K = K;
            d.group_size = 32;
            d.codes = D.codes;
            d.scales = D.scales;
            d.zeros = D.zeros;
            d.smooth = D.smooth;
            d.act_mode = (w4a8_act_mode)mode;
            d.act_scale = 0.5f;
            d.kernel = kernel;
            CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
            if (!L) continue;
            CHECK_ST(w4a8_layer_quantize_activations(L, X, 2, q, s, g), W4A8_OK);
            if (kernel == W4A8_KERNEL_SCALAR) {
                memcpy(q0, q, sizeof q);
                memcpy(s0, s, sizeof s);
                memcpy(g0, g, sizeof g);
                /* the expected values, by hand */
                if (mode == W4A8_ACT_PER_TOKEN) {
                    CHECK(q[0] == 127 && q[1] == 0 && q[2] == 0 && q[3] == -126);
                    CHECK(q[4] == -26 && q[5] == -24); /* -25.5 -> -26, -24.5 -> -24 */
                } else {
                    CHECK(q[K + 5] == 127 && q[K + 6] == -127 && q[K + 7] == 127);
                }
            } else {
                CHECK(memcmp(q, q0, sizeof q) == 0);
                CHECK(memcmp(s, s0, sizeof s) == 0);
                CHECK(memcmp(g, g0, sizeof g) == 0);
            }
            /* NaN or Inf, in the first 16 (vector body) or the last 5 (a tail) */
            for (bad = 0; bad < 4; bad++) {
                size_t at = K + (bad < 2 ? 3 : K - 2);
                float keep = X[at];
                X[at] = bad % 2 ? NAN : -INFINITY;
                memset(q, 0x55, sizeof q);
                CHECK_ST(w4a8_layer_quantize_activations(L, X, 2, q, s, g), W4A8_ERR_NONFINITE);
                CHECK(q[0] == 0x55 && q[2 * K - 1] == 0x55);
                X[at] = keep;
            }
            w4a8_layer_free(L);
            L = NULL;
            /* x / s overflows: 3e38 / 1e-3 */
            D.smooth[K - 1] = 1e-3f;
            X[K - 1] = 3e38f;
            CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
            if (L)
                CHECK_ST(w4a8_layer_quantize_activations(L, X, 2, q, s, g),
                         mode == W4A8_ACT_PER_TOKEN ? W4A8_ERR_NONFINITE : W4A8_OK);
            if (L && mode == W4A8_ACT_PER_TENSOR) CHECK(q[K - 1] == 127);
            D.smooth[K - 1] = 1.0f;
            X[K - 1] = (float)((int)((K - 1) % 61) - 30) + 0.5f;
            w4a8_layer_free(L);
        }
    data_free(&D);
}

/* The file holds the portable layout whichever kernel built the layer: save
   from each kernel, load into each, same bytes and same outputs. */
static void test_save_load_across_kernels(void) {
    size_t M = 5, N = 35, K = 172, i, j, bytes, bytes2;
    layer_data D;
    float *X = tokens_make(M, K, 3), *Y0 = (float *)malloc(M * N * sizeof(float)),
          *Y = (float *)malloc(M * N * sizeof(float));
    unsigned char *ref = NULL;
    w4a8_kernel all[SIMD_COUNT + 1];
    data_make(&D, N, K, 6, 1, 31);
    all[0] = W4A8_KERNEL_SCALAR;
    for (i = 0; i < SIMD_COUNT; i++) all[i + 1] = simd_kernels[i];
    for (i = 0; i <= SIMD_COUNT; i++) {
        w4a8_layer *L;
        unsigned char *buf;
        if (i && !machine_runs(all[i])) continue;
        L = data_layer(&D, N, K, 32, 1, W4A8_ACT_PER_TOKEN, 3, all[i]);
        if (!L) continue;
        CHECK_ST(w4a8_layer_save_size(L, &bytes), W4A8_OK);
        buf = (unsigned char *)malloc(bytes);
        CHECK_ST(w4a8_layer_save_mem(L, buf, bytes), W4A8_OK);
        if (!ref) {
            ref = buf;
            CHECK_ST(w4a8_layer_forward(L, X, M, Y0, NULL, 0), W4A8_OK);
        } else {
            CHECK(memcmp(ref, buf, bytes) == 0);
            free(buf);
        }
        for (j = 0; j <= SIMD_COUNT; j++) {
            w4a8_layer *B = NULL;
            unsigned char *again;
            if (j && !machine_runs(all[j])) {
                CHECK_ST(w4a8_layer_load_mem(ref, bytes, all[j], &B), W4A8_ERR_UNSUPPORTED);
                continue;
            }
            CHECK_ST(w4a8_layer_load_mem(ref, bytes, all[j], &B), W4A8_OK);
            if (!B) continue;
            CHECK(B->kernel == all[j]);
            CHECK_ST(w4a8_layer_forward(B, X, M, Y, NULL, 0), W4A8_OK);
            CHECK(memcmp(Y, Y0, M * N * sizeof(float)) == 0);
            CHECK_ST(w4a8_layer_save_size(B, &bytes2), W4A8_OK);
            again = (unsigned char *)malloc(bytes2);
            CHECK_ST(w4a8_layer_save_mem(B, again, bytes2), W4A8_OK);
            CHECK(bytes2 == bytes && memcmp(again, ref, bytes) == 0);
            free(again);
            w4a8_layer_free(B);
        }
        w4a8_layer_free(L);
    }
    free(ref);
    data_free(&D);
    free(X);
    free(Y0);
    free(Y);
}

/* Kernel choice: AUTO takes the best the machine runs; a kernel it lacks,
   or a group length the blocked layout cannot serve, is refused when named. */
static void test_kernel_choice(void) {
    static const w4a8_kernel best_first[] = { W4A8_KERNEL_AVX512_VNNI, W4A8_KERNEL_AVX_VNNI, W4A8_KERNEL_AVX2,
                                              W4A8_KERNEL_NEON };
    w4a8_kernel k = W4A8_KERNEL_COUNT, want = W4A8_KERNEL_SCALAR;
    size_t i, j;
    layer_data D;
    for (i = 0; i < 4 && want == W4A8_KERNEL_SCALAR; i++)
        if (machine_runs(best_first[i])) want = best_first[i];
    CHECK_ST(w4a8_kernel_resolve(W4A8_KERNEL_AUTO, &k), W4A8_OK);
    CHECK(k == want);
    CHECK_ST(w4a8_kernel_resolve(W4A8_KERNEL_SCALAR, &k), W4A8_OK);
    CHECK(k == W4A8_KERNEL_SCALAR);
    for (i = 0; i < SIMD_COUNT; i++) {
        k = W4A8_KERNEL_COUNT;
        CHECK_ST(w4a8_kernel_resolve(simd_kernels[i], &k),
                 machine_runs(simd_kernels[i]) ? W4A8_OK : W4A8_ERR_UNSUPPORTED);
        CHECK(k == (machine_runs(simd_kernels[i]) ? simd_kernels[i] : W4A8_KERNEL_COUNT));
    }
    CHECK_ST(w4a8_kernel_resolve((w4a8_kernel)99, &k), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_kernel_resolve((w4a8_kernel)-1, &k), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_kernel_resolve(W4A8_KERNEL_AUTO, NULL), W4A8_ERR_NULL_ARG);
    for (i = 0; i < W4A8_KERNEL_COUNT; i++)
        for (j = 0; j < i; j++) CHECK(strcmp(w4a8_kernel_name((w4a8_kernel)i), w4a8_kernel_name((w4a8_kernel)j)) != 0);
    CHECK(strcmp(w4a8_kernel_name((w4a8_kernel)99), "unknown kernel") == 0);

    /* G = 12: the SIMD layout needs groups of whole 8-code pieces */
    data_make(&D, 5, 40, 4, 0, 4);
    {
        w4a8_layer *L = data_layer(&D, 5, 40, 12, 0, 0, 0, W4A8_KERNEL_AUTO), *B = NULL;
        w4a8_layer_desc d;
        if (L) CHECK(L->kernel == W4A8_KERNEL_SCALAR);
        w4a8_layer_free(L);
        memset(&d, 0, sizeof d);
        d.N = 5;
        d.K = 40;
        d.group_size = 12;
        d.codes = D.codes;
        d.scales = D.scales;
        d.zeros = D.zeros;
        for (i = 0; i < SIMD_COUNT; i++) {
            d.kernel = simd_kernels[i];
            CHECK_ST(w4a8_layer_create(&d, &B), W4A8_ERR_UNSUPPORTED);
            CHECK(B == NULL);
        }
        /* one group per row of any length is fine: K = 40 < G */
        d.group_size = 44;
        d.kernel = want;
        CHECK_ST(w4a8_layer_create(&d, &B), W4A8_OK);
        if (B) CHECK(B->kernel == want);
        w4a8_layer_free(B);
    }
    data_free(&D);
}

/* A copy of the header built with W4A8_NO_SIMD (compile_nosimd.c). */
static void test_no_simd_build(void) { CHECK(nosimd_smoke() == 0); }

void tests_kernels(void) {
    RUN(test_kernel_choice);
    RUN(test_kernels_match_reference);
    RUN(test_kernel_tile_edges);
    RUN(test_zero_point_identity);
    RUN(test_kernels_threads);
    RUN(test_activation_edges);
    RUN(test_save_load_across_kernels);
    RUN(test_no_simd_build);
}
