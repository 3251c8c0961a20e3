/* Core: quantize, pack, activations, the reference GEMM, layer, file, errors. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../w4a8.h"
#include "test.h"

static const size_t group_sizes[] = { 32, 64, 128, W4A8_PER_CHANNEL };

static float *random_matrix(size_t rows, size_t cols, uint64_t seed) {
    float *a = (float *)malloc(rows * cols * sizeof(float));
    size_t i;
    for (i = 0; i < rows * cols; i++) a[i] = test_normal(&seed);
    return a;
}

/* Activations with a few outlier channels, as LLMs have. */
static float *outlier_acts(size_t M, size_t K, uint64_t seed) {
    float *x = random_matrix(M, K, seed);
    size_t m;
    for (m = 0; m < M; m++) {
        x[m * K + 3 % K] *= 60.0f;
        x[m * K + (K / 2)] *= 90.0f;
    }
    return x;
}

static w4a8_layer *make_layer(const float *W, size_t N, size_t K, const float *bias, const w4a8_calib *calib,
                              size_t G, int asym, w4a8_act_mode mode) {
    w4a8_config cfg;
    w4a8_layer *L = NULL;
    w4a8_config_init(&cfg);
    cfg.group_size = G;
    cfg.asymmetric = asym;
    cfg.act_mode = mode;
    CHECK_ST(w4a8_layer_quantize(W, N, K, bias, calib, &cfg, &L), W4A8_OK);
    return L;
}

static void test_status_strings(void) {
    int i, j;
    for (i = 0; i < W4A8_STATUS_COUNT; i++) {
        const char *s = w4a8_status_str((w4a8_status)i);
        CHECK(s != NULL && strlen(s) > 3);
        for (j = 0; j < i; j++) CHECK(strcmp(s, w4a8_status_str((w4a8_status)j)) != 0);
    }
    CHECK(strcmp(w4a8_status_str((w4a8_status)-1), "unknown status") == 0);
    CHECK(strcmp(w4a8_status_str(W4A8_STATUS_COUNT), "unknown status") == 0);
    CHECK(strcmp(w4a8_version(), W4A8_VERSION_STRING) == 0);
}

static void test_pack_roundtrip(void) {
    static const size_t Ks[] = { 1, 2, 17, 100, 172 };
    size_t t, N = 7;
    uint64_t seed = 1;
    for (t = 0; t < sizeof Ks / sizeof Ks[0]; t++) {
        size_t K = Ks[t], i, pos;
        uint8_t *c = (uint8_t *)malloc(N * K), *back = (uint8_t *)malloc(N * K);
        uint8_t *p = (uint8_t *)malloc(N * ((K + 1) / 2));
        /* 0 and 15 at every position, among random codes. */
        for (pos = 0; pos < N * K; pos++) {
            int extreme;
            for (extreme = 0; extreme < 2; extreme++) {
                for (i = 0; i < N * K; i++) c[i] = (uint8_t)(test_rand(&seed) & 15);
                c[pos] = extreme ? 15 : 0;
                CHECK_ST(w4a8_pack_int4(c, N, K, p), W4A8_OK);
                CHECK_ST(w4a8_unpack_int4(p, N, K, back), W4A8_OK);
                CHECK(memcmp(c, back, N * K) == 0);
            }
        }
        /* The documented layout: low nibble first, odd rows padded with 0. */
        for (i = 0; i < N * K; i++) c[i] = (uint8_t)(i % 16);
        w4a8_pack_int4(c, N, K, p);
        for (i = 0; i < N; i++) {
            size_t k;
            for (k = 0; k < K; k++) CHECK(((p[i * ((K + 1) / 2) + k / 2] >> (4 * (k % 2))) & 15) == c[i * K + k]);
            if (K % 2) CHECK((p[i * ((K + 1) / 2) + K / 2] >> 4) == 0);
        }
        c[0] = 16;
        CHECK_ST(w4a8_pack_int4(c, N, K, p), W4A8_ERR_RANGE);
        free(c);
        free(back);
        free(p);
    }
}

/* Every weight within half a step of its dequantized value, for every group
   size, both modes, K not a multiple of the group. */
static void test_rtn_half_step(void) {
    static const size_t Ks[] = { 172, 100, 256, 17 };
    size_t t, gi, N = 9;
    int asym;
    for (t = 0; t < sizeof Ks / sizeof Ks[0]; t++)
        for (gi = 0; gi < 4; gi++)
            for (asym = 0; asym < 2; asym++) {
                size_t K = Ks[t], G = group_sizes[gi], Gl = G < K ? G : K, groups = (K + Gl - 1) / Gl, i;
                float *W = random_matrix(N, K, 7 + t), *D = (float *)malloc(N * K * sizeof(float));
                float *s = (float *)malloc(N * groups * sizeof(float));
                uint8_t *c = (uint8_t *)malloc(N * K), *z = (uint8_t *)malloc(N * groups);
                W[5] = 0.0f; /* an exact zero must stay exactly zero */
                for (i = 0; i < Gl && i < K; i++) W[K + i] = 0.0f; /* an all-zero group */
                CHECK_ST(w4a8_quantize_rtn(W, N, K, G, asym, c, s, z), W4A8_OK);
                CHECK_ST(w4a8_dequantize(c, s, z, N, K, G, D), W4A8_OK);
                for (i = 0; i < N * K; i++) {
                    float step = fabsf(s[(i / K) * groups + (i % K) / Gl]);
                    CHECK(c[i] <= 15);
                    /* Half a step, plus the rounding of the scale (<= 8 codes x eps/2)
                       and of scale * code (eps/2): 16 eps relative covers both. */
                    CHECK(fabsf(W[i] - D[i]) <= 0.5f * step * (1.0f + 16 * FLT_EPSILON));
                }
                for (i = 0; i < N * groups; i++) CHECK(asym || z[i] == 8);
                CHECK(D[5] == 0.0f);
                CHECK(s[groups] == 0.0f && D[K] == 0.0f);
                free(W);
                free(D);
                free(s);
                free(c);
                free(z);
            }
}

/* Ties round to even. The symmetric grid: the larger extreme (8) is code 0,
   exact, with step 8 / 8 = 1, signed (-1: it is the positive side). */
static void test_rtn_ties_to_even(void) {
    float W[8] = { 8.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f };
    float expect[8] = { 8, 0, 2, 2, 0, -2, -2, 4 };
    uint8_t c[8], z;
    float s;
    int i;
    CHECK_ST(w4a8_quantize_rtn(W, 1, 8, 8, 0, c, &s, &z), W4A8_OK);
    CHECK(s == -1.0f && z == 8 && c[0] == 0);
    for (i = 0; i < 8; i++) CHECK(s * (float)((int)c[i] - 8) == expect[i]);
}

/* The symmetric grid's two sides: the larger extreme takes the 8 levels
   (step a / 8) unless the other side b would need more than 7.5 steps
   (step b / 7.5); every weight stays within half a step. */
static void test_rtn_symmetric_grid(void) {
    float W[4] = { -8.0f, 7.5f, 1.0f, 0.0f }, V[4] = { 8.0f, -7.8f, 1.0f, 0.0f }, Z[4] = { 0 };
    uint8_t c[4], z;
    float s;
    int i;
    CHECK_ST(w4a8_quantize_rtn(W, 1, 4, 4, 0, c, &s, &z), W4A8_OK);
    CHECK(s == 1.0f && c[0] == 0 && c[1] == 15 && c[2] == 9); /* 7.5 ties to 8 steps, clamped to 7 */
    CHECK_ST(w4a8_quantize_rtn(V, 1, 4, 4, 0, c, &s, &z), W4A8_OK);
    CHECK(s == -7.8f / 7.5f);
    for (i = 0; i < 4; i++) CHECK(fabsf(s * (float)((int)c[i] - 8) - V[i]) <= 0.5f * fabsf(s) * (1.0f + 1e-6f));
    CHECK_ST(w4a8_quantize_rtn(Z, 1, 4, 4, 0, c, &s, &z), W4A8_OK);
    CHECK(s == 0.0f && !signbit(s) && c[0] == 8);
}

static void test_activation_quantization(void) {
    enum { M = 4, K = 70, G = 32 };
    float X[M * K], inv[K], scales[M];
    int8_t q[M * K];
    int32_t sums[M * 3];
    uint64_t seed = 3;
    size_t m, k;
    for (k = 0; k < M * K; k++) X[k] = test_normal(&seed);
    for (k = 0; k < K; k++) inv[k] = 1.0f / (1.0f + (float)(k % 5));
    X[1 * K + 9] = -40.0f; /* the row max, negative */
    CHECK_ST(w4a8_quantize_activations(X, M, K, G, inv, W4A8_ACT_PER_TOKEN, 0, q, scales, sums), W4A8_OK);
    for (m = 0; m < M; m++) {
        float amax = 0;
        int32_t total = 0, hit = 0;
        for (k = 0; k < K; k++) {
            float v = X[m * K + k] * inv[k];
            if (fabsf(v) > amax) amax = fabsf(v);
        }
        CHECK(scales[m] == amax / 127.0f);
        for (k = 0; k < K; k++) {
            float v = X[m * K + k] * inv[k];
            CHECK(q[m * K + k] >= -127 && q[m * K + k] <= 127);
            CHECK(q[m * K + k] == (int8_t)nearbyintf(v * (127.0f / amax)));
            hit |= fabsf(v) == amax && abs(q[m * K + k]) == 127;
            total += q[m * K + k];
        }
        CHECK(hit);
        CHECK(sums[m * 3] + sums[m * 3 + 1] + sums[m * 3 + 2] == total);
        for (k = 0, total = 0; k < 32; k++) total += q[m * K + k];
        CHECK(sums[m * 3] == total);
    }
    CHECK(q[1 * K + 9] == -127);

    /* Per tensor: a static scale, ties to even, saturation at +-127. */
    {
        float x[6] = { 2.5f, 3.5f, -2.5f, 500.0f, -500.0f, 0.0f }, s1;
        int8_t c[6];
        int32_t sum;
        CHECK_ST(w4a8_quantize_activations(x, 1, 6, 6, NULL, W4A8_ACT_PER_TENSOR, 1.0f, c, &s1, &sum), W4A8_OK);
        CHECK(c[0] == 2 && c[1] == 4 && c[2] == -2 && c[3] == 127 && c[4] == -127 && c[5] == 0);
        CHECK(s1 == 1.0f && sum == 2 + 4 - 2);
    }
    /* An all-zero token: scale 0, codes 0, no division by zero. */
    {
        float x[5] = { 0, 0, 0, 0, 0 }, s1 = -1;
        int8_t c[5];
        int32_t sum = -1;
        CHECK_ST(w4a8_quantize_activations(x, 1, 5, 5, NULL, W4A8_ACT_PER_TOKEN, 0, c, &s1, &sum), W4A8_OK);
        CHECK(s1 == 0.0f && sum == 0 && c[0] == 0 && c[4] == 0);
    }
}

/* The reference GEMM equals a float64 GEMM over the dequantized operands, to
   float rounding: |y - y64| <= 1e-6 * (sum of |terms|), the bound the float
   additions over groups give. */
static void check_against_f64(const w4a8_layer *L, const float *X, size_t M) {
    size_t N = L->N, K = L->K, m, n, k, ws;
    float *Y = (float *)malloc(M * N * sizeof(float)), *xs = (float *)malloc(M * sizeof(float));
    int8_t *xq = (int8_t *)malloc(M * K);
    int32_t *sums = (int32_t *)malloc(M * L->groups * sizeof(int32_t));
    uint8_t *codes = (uint8_t *)malloc(N * K);
    void *work;
    CHECK_ST(w4a8_layer_workspace_size(L, M, &ws), W4A8_OK);
    work = malloc(ws);
    CHECK_ST(w4a8_layer_forward(L, X, M, Y, work, ws), W4A8_OK);
    CHECK_ST(w4a8_quantize_activations(X, M, K, L->G, L->smooth_folded ? NULL : L->smooth_inv, L->act_mode,
                                       L->act_scale, xq, xs, sums),
             W4A8_OK);
    CHECK_ST(w4a8_layer_codes(L, codes), W4A8_OK);
    for (m = 0; m < M; m++)
        for (n = 0; n < N; n++) {
            double y = 0, mag = 0;
            for (k = 0; k < K; k++) {
                size_t g = n * L->groups + k / L->G;
                double w = (double)L->scales[g] * ((int)codes[n * K + k] - (int)L->zeros[g]);
                double t = (double)xq[m * K + k] * (double)xs[m] * w;
                y += t;
                mag += fabs(t);
            }
            if (L->bias) {
                y += L->bias[n];
                mag += fabs(L->bias[n]);
            }
            CHECK(fabs(Y[m * N + n] - y) <= 1e-6 * mag + 1e-30);
        }
    free(Y);
    free(xs);
    free(xq);
    free(sums);
    free(codes);
    free(work);
}

static void test_gemm_matches_f64(void) {
    static const size_t shapes[][3] = { { 3, 17, 172 }, { 1, 5, 100 }, { 4, 3, 17 }, { 2, 8, 256 } };
    size_t t, gi;
    int asym, mode, with_bias;
    for (t = 0; t < 4; t++) {
        size_t M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
        float *W = random_matrix(N, K, 11 + t), *X = outlier_acts(M, K, 21 + t), *bias = random_matrix(1, N, 5);
        w4a8_calib *calib = NULL;
        CHECK_ST(w4a8_calib_create(K, 0, 0, &calib), W4A8_OK);
        CHECK_ST(w4a8_calib_add(calib, X, M), W4A8_OK);
        for (gi = 0; gi < 4; gi++)
            for (asym = 0; asym < 2; asym++)
                for (mode = 0; mode < 2; mode++)
                    for (with_bias = 0; with_bias < 2; with_bias++) {
                        w4a8_layer *L = make_layer(W, N, K, with_bias ? bias : NULL, calib, group_sizes[gi], asym,
                                                   (w4a8_act_mode)mode);
                        if (L) check_against_f64(L, X, M);
                        w4a8_layer_free(L);
                    }
        w4a8_calib_free(calib);
        free(W);
        free(X);
        free(bias);
    }
}

/* A layer with equalization: forward divides X by s (unless folded). */
static void test_layer_smooth(void) {
    enum { N = 6, K = 50, M = 3 };
    float *W = random_matrix(N, K, 8), *X = outlier_acts(M, K, 9), smooth[K], Xs[M * K], Y1[M * N], Y2[M * N];
    uint8_t codes[N * K], zeros[N * 2];
    float scales[N * 2];
    w4a8_layer_desc d;
    w4a8_layer *a = NULL, *b = NULL;
    size_t k;
    for (k = 0; k < K; k++) smooth[k] = 0.25f + (float)(k % 7);
    CHECK_ST(w4a8_quantize_rtn(W, N, K, 32, 1, codes, scales, zeros), W4A8_OK);
    memset(&d, 0, sizeof d);
    d.N = N;
    d.K = K;
    d.group_size = 32;
    d.asymmetric = 1;
    d.codes = codes;
    d.scales = scales;
    d.zeros = zeros;
    d.smooth = smooth;
    d.act_mode = W4A8_ACT_PER_TOKEN;
    CHECK_ST(w4a8_layer_create(&d, &a), W4A8_OK);
    d.smooth_folded = 1;
    CHECK_ST(w4a8_layer_create(&d, &b), W4A8_OK);
    if (a && b) {
        CHECK(a->smooth_folded == 0 && b->smooth_folded == 1);
        for (k = 0; k < M * K; k++) Xs[k] = X[k] * (1.0f / smooth[k % K]);
        CHECK_ST(w4a8_layer_forward(a, X, M, Y1, NULL, 0), W4A8_OK);
        CHECK_ST(w4a8_layer_forward(b, Xs, M, Y2, NULL, 0), W4A8_OK);
        CHECK(memcmp(Y1, Y2, sizeof Y1) == 0);
        check_against_f64(a, X, M);
    }
    w4a8_layer_free(a);
    w4a8_layer_free(b);
    free(W);
    free(X);
}

static void test_threads_deterministic(void) {
#ifdef _OPENMP
    static const int threads[] = { 1, 2, 3, 7 };
    size_t M = 5, N = 37, K = 172, i;
    float *W = random_matrix(N, K, 12), *X = outlier_acts(M, K, 13);
    float *Y0 = (float *)malloc(M * N * sizeof(float)), *Y = (float *)malloc(M * N * sizeof(float));
    w4a8_layer *L = make_layer(W, N, K, NULL, NULL, 32, 1, W4A8_ACT_PER_TOKEN);
    int saved = omp_get_max_threads();
    for (i = 0; L && i < 4; i++) {
        omp_set_num_threads(threads[i]);
        CHECK_ST(w4a8_layer_forward(L, X, M, i ? Y : Y0, NULL, 0), W4A8_OK);
        if (i) CHECK(memcmp(Y, Y0, M * N * sizeof(float)) == 0);
    }
    omp_set_num_threads(saved);
    w4a8_layer_free(L);
    free(W);
    free(X);
    free(Y0);
    free(Y);
#endif
}

static void test_calibration(void) {
    enum { K = 12, T = 40 };
    float *X = random_matrix(T, K, 14);
    w4a8_calib *one = NULL, *two = NULL, *keep = NULL;
    double H[K * K];
    size_t i, j, t;
    X[5 * K + 3] = -9.0f;
    CHECK_ST(w4a8_calib_create(K, 1, T, &one), W4A8_OK);
    CHECK_ST(w4a8_calib_create(K, 1, 8, &two), W4A8_OK);
    CHECK_ST(w4a8_calib_add(one, X, T), W4A8_OK);
    CHECK_ST(w4a8_calib_add(two, X, 15), W4A8_OK);
    CHECK_ST(w4a8_calib_add(two, X + 15 * K, T - 15), W4A8_OK);
    CHECK(one->tokens == T && two->tokens == T);
    /* Batching changes nothing, bit for bit. */
    CHECK(memcmp(one->absmax, two->absmax, K * sizeof(float)) == 0);
    CHECK(memcmp(one->abssum, two->abssum, K * sizeof(double)) == 0);
    CHECK(memcmp(one->xtx, two->xtx, K * K * sizeof(double)) == 0);
    CHECK(one->absmax[3] == 9.0f);
    CHECK_ST(w4a8_calib_hessian(one, H), W4A8_OK);
    for (i = 0; i < K; i++) {
        double amax = 0, sum = 0;
        for (t = 0; t < T; t++) {
            amax = fmax(amax, fabs(X[t * K + i]));
            sum += fabs(X[t * K + i]);
        }
        CHECK(one->absmax[i] == (float)amax);
        CHECK(fabs(one->abssum[i] - sum) <= 1e-12 * sum);
        for (j = 0; j < K; j++) {
            double h = 0, habs = 0;
            for (t = 0; t < T; t++) {
                h += (double)X[t * K + i] * X[t * K + j];
                habs += fabs((double)X[t * K + i] * X[t * K + j]);
            }
            h *= 2.0 / T;
            /* float sums of at most 256 tokens, then double: the float GEMM's bound */
            CHECK(fabs(H[i * K + j] - h) <= (T < 256 ? T : 256) * FLT_EPSILON / 2 * habs * 2.0 / T + 1e-12 * fabs(h));
            CHECK(H[i * K + j] == H[j * K + i]);
        }
    }
    /* A reservoir as large as the stream keeps every token, in order; a small
       one keeps distinct tokens of the stream. */
    CHECK(one->sample_rows == T && memcmp(one->sample, X, T * K * sizeof(float)) == 0);
    CHECK(two->sample_rows == 8);
    for (i = 0; i < 8; i++) {
        int found = 0;
        for (t = 0; t < T; t++) found += memcmp(two->sample + i * K, X + t * K, K * sizeof(float)) == 0;
        CHECK(found == 1);
    }
    /* A bad batch is rejected whole. */
    CHECK_ST(w4a8_calib_create(K, 0, 4, &keep), W4A8_OK);
    CHECK_ST(w4a8_calib_add(keep, X, 3), W4A8_OK);
    X[2 * K + 1] = NAN;
    CHECK_ST(w4a8_calib_add(keep, X, 3), W4A8_ERR_NONFINITE);
    CHECK(keep->tokens == 3 && keep->sample_rows == 3);
    CHECK_ST(w4a8_calib_hessian(keep, H), W4A8_ERR_CONFIG);
    w4a8_calib_free(one);
    w4a8_calib_free(two);
    w4a8_calib_free(keep);
    free(X);
}

/* Per-tensor static scale comes from calibration max|x| / 127. */
static void test_static_scale_from_calib(void) {
    size_t N = 4, K = 64, M = 6;
    float *W = random_matrix(N, K, 15), *X = outlier_acts(M, K, 16);
    w4a8_calib *calib = NULL;
    w4a8_layer *L;
    w4a8_config cfg;
    float amax = 0;
    size_t i;
    for (i = 0; i < M * K; i++) amax = fmaxf(amax, fabsf(X[i]));
    w4a8_calib_create(K, 0, 0, &calib);
    w4a8_calib_add(calib, X, M);
    L = make_layer(W, N, K, NULL, calib, 32, 0, W4A8_ACT_PER_TENSOR);
    CHECK(L && L->act_mode == W4A8_ACT_PER_TENSOR && L->act_scale == amax / 127.0f);
    w4a8_layer_free(L);
    /* Without calibration or a given scale it cannot choose one. */
    w4a8_config_init(&cfg);
    cfg.act_mode = W4A8_ACT_PER_TENSOR;
    L = NULL;
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, &cfg, &L), W4A8_ERR_NEED_CALIB);
    CHECK(L == NULL);
    cfg.act_scale = 0.5f;
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, &cfg, &L), W4A8_OK);
    CHECK(L && L->act_scale == 0.5f);
    w4a8_layer_free(L);
    w4a8_calib_free(calib);
    free(W);
    free(X);
}

static unsigned char *save_to_mem(const w4a8_layer *L, size_t *bytes) {
    unsigned char *buf;
    CHECK_ST(w4a8_layer_save_size(L, bytes), W4A8_OK);
    buf = (unsigned char *)malloc(*bytes);
    CHECK_ST(w4a8_layer_save_mem(L, buf, *bytes), W4A8_OK);
    return buf;
}

/* Rewrites the CRC so a test reaches the field checks behind it. */
static void fix_crc(unsigned char *b, size_t n) {
    uint32_t c = 0xffffffffu;
    size_t i;
    int j;
    for (i = 0; i < n - 4; i++) {
        c ^= b[i];
        for (j = 0; j < 8; j++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    c = ~c;
    for (j = 0; j < 4; j++) b[n - 4 + j] = (unsigned char)(c >> (8 * j));
}

static void test_save_load(void) {
    size_t N = 9, K = 77, M = 4, bytes, bytes2, i;
    float *W = random_matrix(N, K, 17), *X = outlier_acts(M, K, 18), *bias = random_matrix(1, N, 19);
    float smooth[77], Y1[4 * 9], Y2[4 * 9];
    uint8_t *codes = (uint8_t *)malloc(N * K), zeros[9 * 3];
    float scales[9 * 3];
    w4a8_layer_desc d;
    w4a8_layer *L = NULL, *B = NULL;
    unsigned char *buf, *buf2;
    const char *path = "build/test_layer.w4a8";
    for (i = 0; i < K; i++) smooth[i] = 0.5f + (float)i / 10.0f;
    w4a8_quantize_rtn(W, N, K, 32, 1, codes, scales, zeros);
    memset(&d, 0, sizeof d);
    d.N = N;
    d.K = K;
    d.group_size = 32;
    d.asymmetric = 1;
    d.codes = codes;
    d.scales = scales;
    d.zeros = zeros;
    d.bias = bias;
    d.smooth = smooth;
    d.act_mode = W4A8_ACT_PER_TENSOR;
    d.act_scale = 0.37f;
    d.method = W4A8_METHOD_GPTQ;
    CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
    if (!L) return;
    buf = save_to_mem(L, &bytes);
    CHECK(memcmp(buf, "W4A8", 4) == 0 && buf[4] == W4A8_FORMAT_VERSION);
    CHECK_ST(w4a8_layer_load_mem(buf, bytes, W4A8_KERNEL_AUTO, &B), W4A8_OK);
    if (B) {
        CHECK(B->N == N && B->K == K && B->G == 32 && B->asymmetric && B->act_mode == W4A8_ACT_PER_TENSOR &&
              B->act_scale == 0.37f && B->method == W4A8_METHOD_GPTQ && B->bias && B->smooth);
        CHECK_ST(w4a8_layer_forward(L, X, M, Y1, NULL, 0), W4A8_OK);
        CHECK_ST(w4a8_layer_forward(B, X, M, Y2, NULL, 0), W4A8_OK);
        CHECK(memcmp(Y1, Y2, sizeof Y1) == 0);
        buf2 = save_to_mem(B, &bytes2);
        CHECK(bytes2 == bytes && memcmp(buf, buf2, bytes) == 0);
        free(buf2);
        w4a8_layer_free(B);
        B = NULL;
    }
#ifndef W4A8_NO_STDIO
    CHECK_ST(w4a8_layer_save(L, path), W4A8_OK);
    CHECK_ST(w4a8_layer_load(path, W4A8_KERNEL_SCALAR, &B), W4A8_OK);
    if (B) {
        CHECK_ST(w4a8_layer_forward(B, X, M, Y2, NULL, 0), W4A8_OK);
        CHECK(memcmp(Y1, Y2, sizeof Y1) == 0);
        w4a8_layer_free(B);
        B = NULL;
    }
    remove(path);
    CHECK_ST(w4a8_layer_load(path, W4A8_KERNEL_AUTO, &B), W4A8_ERR_FILE_IO);
    CHECK_ST(w4a8_layer_save(L, "build/no/such/dir/x.w4a8"), W4A8_ERR_FILE_IO);
#endif

    /* Every truncation and every single-byte corruption is caught. */
    for (i = 0; i < bytes; i++) {
        w4a8_status st = w4a8_layer_load_mem(buf, i, W4A8_KERNEL_AUTO, &B);
        CHECK(st == W4A8_ERR_FILE_TRUNCATED);
        CHECK(B == NULL);
    }
    for (i = 0; i < bytes; i++) {
        w4a8_status st;
        buf[i] ^= 0x20;
        st = w4a8_layer_load_mem(buf, bytes, W4A8_KERNEL_AUTO, &B);
        CHECK(st == W4A8_ERR_FILE_CHECKSUM || st == W4A8_ERR_FILE_FORMAT || st == W4A8_ERR_FILE_VERSION ||
              st == W4A8_ERR_FILE_TRUNCATED);
        CHECK(B == NULL);
        buf[i] ^= 0x20;
    }
    {
        unsigned char *longer = (unsigned char *)malloc(bytes + 1);
        memcpy(longer, buf, bytes);
        longer[bytes] = 0;
        CHECK_ST(w4a8_layer_load_mem(longer, bytes + 1, W4A8_KERNEL_AUTO, &B), W4A8_ERR_FILE_FORMAT);
        free(longer);
    }
    /* Fields that pass the checksum but not the checks. */
    {
        struct { size_t off; unsigned char val; w4a8_status want; } bad[] = {
            { 0, 'X', W4A8_ERR_FILE_FORMAT },    /* magic */
            { 4, 3, W4A8_ERR_FILE_VERSION },     /* version */
            { 8, 0, W4A8_ERR_FILE_FORMAT },      /* N = 0 */
            { 15, 0x80, W4A8_ERR_FILE_FORMAT },  /* N huge: sizes overflow */
            { 16, 0, W4A8_ERR_FILE_FORMAT },     /* K = 0 */
            { 24, 78, W4A8_ERR_FILE_FORMAT },    /* G > K */
            { 32, 0x3f, W4A8_ERR_FILE_FORMAT },  /* unknown flag */
            { 36, 2, W4A8_ERR_FILE_FORMAT },     /* activation mode */
            { 43, 0xff, W4A8_ERR_FILE_FORMAT },  /* act_scale NaN */
            { 43, 0xbe, W4A8_ERR_FILE_FORMAT },  /* act_scale negative */
            { 44, 9, W4A8_ERR_FILE_FORMAT },     /* method */
            { 48 + 38, 0xf0, W4A8_ERR_FILE_FORMAT }, /* the pad nibble of row 0 (K odd) */
        };
        size_t zoff = 48 + N * 39 + N * 3 * 4; /* first zero point */
        unsigned char *c = (unsigned char *)malloc(bytes);
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            memcpy(c, buf, bytes);
            c[bad[i].off] = bad[i].val;
            fix_crc(c, bytes);
            CHECK_ST(w4a8_layer_load_mem(c, bytes, W4A8_KERNEL_AUTO, &B), bad[i].want);
            CHECK(B == NULL);
        }
        memcpy(c, buf, bytes);
        c[zoff] = 16; /* a zero point above 15 */
        fix_crc(c, bytes);
        CHECK_ST(w4a8_layer_load_mem(c, bytes, W4A8_KERNEL_AUTO, &B), W4A8_ERR_FILE_FORMAT);
        memcpy(c, buf, bytes);
        memset(c + zoff + N * 3, 0xff, 4); /* smooth[0] NaN */
        fix_crc(c, bytes);
        CHECK_ST(w4a8_layer_load_mem(c, bytes, W4A8_KERNEL_AUTO, &B), W4A8_ERR_FILE_FORMAT);
        memcpy(c, buf, bytes);
        memset(c + 48 + N * 39, 0xff, 4); /* scale[0] NaN */
        fix_crc(c, bytes);
        CHECK_ST(w4a8_layer_load_mem(c, bytes, W4A8_KERNEL_AUTO, &B), W4A8_ERR_FILE_FORMAT);
        free(c);
    }
    free(buf);
    w4a8_layer_free(L);
    free(W);
    free(X);
    free(bias);
    free(codes);
}

static void test_bad_inputs(void) {
    size_t N = 4, K = 40, big = (size_t)-1 / 2;
    float *W = random_matrix(N, K, 20), *X = random_matrix(2, K, 21), Y[8], s[8];
    uint8_t c[160], z[8];
    int8_t q[80];
    int32_t sums[4];
    w4a8_config cfg;
    w4a8_layer *L = NULL;
    w4a8_calib *calib = NULL;
    size_t ws;
    w4a8_config_init(&cfg);
    cfg.group_size = 32;
    CHECK_ST(w4a8_config_init(NULL), W4A8_ERR_NULL_ARG);
    /* NULL pointers */
    CHECK_ST(w4a8_layer_quantize(NULL, N, K, NULL, NULL, &cfg, &L), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, NULL, &L), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, &cfg, NULL), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_quantize_rtn(W, N, K, 32, 0, NULL, s, z), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_pack_int4(NULL, N, K, c), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_layer_forward(NULL, X, 2, Y, NULL, 0), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_layer_create(NULL, &L), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_calib_create(K, 0, 0, NULL), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_calib_add(NULL, X, 2), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_layer_load_mem(NULL, 10, W4A8_KERNEL_AUTO, &L), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_layer_save_mem(NULL, c, 10), W4A8_ERR_NULL_ARG);
    /* Zero sizes */
    CHECK_ST(w4a8_layer_quantize(W, 0, K, NULL, NULL, &cfg, &L), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_layer_quantize(W, N, 0, NULL, NULL, &cfg, &L), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_quantize_activations(X, 0, K, 32, NULL, W4A8_ACT_PER_TOKEN, 0, q, s, sums), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_calib_create(0, 0, 0, &calib), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_calib_create(K, 0, 0, &calib), W4A8_OK);
    CHECK_ST(w4a8_calib_add(calib, X, 0), W4A8_ERR_SHAPE);
    w4a8_calib_free(calib);
    calib = NULL;
    /* Group sizes */
    cfg.group_size = 0;
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, &cfg, &L), W4A8_ERR_GROUP_SIZE);
    CHECK_ST(w4a8_quantize_rtn(W, N, K, 0, 0, c, s, z), W4A8_ERR_GROUP_SIZE);
    CHECK_ST(w4a8_quantize_activations(X, 2, K, 0, NULL, W4A8_ACT_PER_TOKEN, 0, q, s, sums), W4A8_ERR_GROUP_SIZE);
    CHECK_ST(w4a8_quantize_rtn(W, 1, W4A8_MAX_GROUP + 1, W4A8_PER_CHANNEL, 0, c, s, z), W4A8_ERR_GROUP_SIZE);
    cfg.group_size = 32;
    /* Size products that overflow size_t are caught before any access. */
    CHECK_ST(w4a8_quantize_rtn(W, big, 4, 2, 0, c, s, z), W4A8_ERR_OVERFLOW);
    CHECK_ST(w4a8_pack_int4(c, big, 3, c), W4A8_ERR_OVERFLOW);
    CHECK_ST(w4a8_calib_create(big, 0, 0, &calib), W4A8_ERR_OVERFLOW);
    CHECK_ST(w4a8_calib_create(8, 0, big, &calib), W4A8_ERR_OVERFLOW);
    /* NaN / Inf in weights, bias, activations */
    W[7] = NAN;
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, &cfg, &L), W4A8_ERR_NONFINITE);
    W[7] = INFINITY;
    CHECK_ST(w4a8_quantize_rtn(W, N, K, 32, 1, c, s, z), W4A8_ERR_NONFINITE);
    W[7] = 0.5f;
    s[0] = NAN;
    CHECK_ST(w4a8_layer_quantize(W, N, K, s, NULL, &cfg, &L), W4A8_ERR_NONFINITE);
    CHECK(L == NULL);
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, &cfg, &L), W4A8_OK);
    X[K + 3] = -INFINITY;
    CHECK_ST(w4a8_layer_forward(L, X, 2, Y, NULL, 0), W4A8_ERR_NONFINITE);
    CHECK_ST(w4a8_quantize_activations(X, 2, K, 32, NULL, W4A8_ACT_PER_TOKEN, 0, q, s, sums), W4A8_ERR_NONFINITE);
    X[K + 3] = NAN;
    CHECK_ST(w4a8_quantize_activations(X, 2, K, 32, NULL, W4A8_ACT_PER_TENSOR, 1.0f, q, s, sums),
             W4A8_ERR_NONFINITE);
    X[K + 3] = 1.0f;
    /* Static scales that cannot divide */
    CHECK_ST(w4a8_quantize_activations(X, 2, K, 32, NULL, W4A8_ACT_PER_TENSOR, 0.0f, q, s, sums), W4A8_ERR_RANGE);
    CHECK_ST(w4a8_quantize_activations(X, 2, K, 32, NULL, W4A8_ACT_PER_TENSOR, 1e-45f, q, s, sums), W4A8_ERR_RANGE);
    CHECK_ST(w4a8_quantize_activations(X, 2, K, 32, NULL, (w4a8_act_mode)5, 1.0f, q, s, sums), W4A8_ERR_CONFIG);
    cfg.act_mode = W4A8_ACT_PER_TENSOR;
    cfg.act_scale = -1.0f;
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, &cfg, &L), W4A8_ERR_CONFIG);
    cfg.act_scale = 0.0f;
    cfg.act_mode = W4A8_ACT_PER_TOKEN;
    /* Config fields out of range, kernels this build lacks */
    cfg.method = (w4a8_method)99;
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, &cfg, &L), W4A8_ERR_CONFIG);
    cfg.method = W4A8_METHOD_RTN;
    cfg.kernel = (w4a8_kernel)99;
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, NULL, &cfg, &L), W4A8_ERR_CONFIG);
    cfg.kernel = W4A8_KERNEL_AUTO;
    /* Mismatched calibration */
    CHECK_ST(w4a8_calib_create(K + 1, 0, 0, &calib), W4A8_OK);
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, calib, &cfg, &L), W4A8_ERR_SHAPE);
    w4a8_calib_free(calib);
    /* Workspace */
    CHECK_ST(w4a8_layer_workspace_size(L, 2, &ws), W4A8_OK);
    CHECK_ST(w4a8_layer_forward(L, X, 2, Y, c, ws - 1), W4A8_ERR_WORKSPACE);
    CHECK_ST(w4a8_layer_workspace_size(L, 0, &ws), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_layer_workspace_size(L, big, &ws), W4A8_ERR_OVERFLOW);
    /* Descriptors with values out of range */
    {
        w4a8_layer_desc d;
        w4a8_layer *B = NULL;
        float sm[40];
        size_t i;
        for (i = 0; i < 40; i++) sm[i] = 1.0f;
        w4a8_quantize_rtn(W, N, K, 32, 0, c, s, z);
        memset(&d, 0, sizeof d);
        d.N = N;
        d.K = K;
        d.group_size = 32;
        d.codes = c;
        d.scales = s;
        d.zeros = z;
        d.smooth = sm;
        CHECK_ST(w4a8_layer_create(&d, &B), W4A8_OK);
        w4a8_layer_free(B);
        B = NULL;
        z[0] = 7; /* symmetric layers need zero 8 */
        CHECK_ST(w4a8_layer_create(&d, &B), W4A8_ERR_RANGE);
        z[0] = 8;
        s[1] = -1.0f; /* the symmetric grid's steps are signed */
        CHECK_ST(w4a8_layer_create(&d, &B), W4A8_OK);
        w4a8_layer_free(B);
        B = NULL;
        s[1] = 0.1f;
        c[3] = 16;
        CHECK_ST(w4a8_layer_create(&d, &B), W4A8_ERR_RANGE);
        c[3] = 1;
        sm[2] = 0.0f;
        CHECK_ST(w4a8_layer_create(&d, &B), W4A8_ERR_RANGE);
        sm[2] = INFINITY;
        CHECK_ST(w4a8_layer_create(&d, &B), W4A8_ERR_NONFINITE);
        CHECK(B == NULL);
    }
    w4a8_layer_free(L);
    free(W);
    free(X);
}

/* Linears sharing an input share the static scale; the report's loss is the
   output MSE on the calibration sample. */
static void test_quantize_linears(void) {
    size_t K = 96, T = 32, i;
    float *Wa = random_matrix(5, K, 30), *Wb = random_matrix(3, K, 31), *X = outlier_acts(T, K, 32);
    w4a8_linear lin[2];
    w4a8_layer *layers[2] = { NULL, NULL };
    w4a8_calib *calib = NULL;
    w4a8_config cfg;
    w4a8_report rep;
    double sum = 0, bound = 0;
    size_t n;
    lin[0].W = Wa; lin[0].N = 5; lin[0].bias = NULL; lin[0].skip_clip = 0;
    lin[1].W = Wb; lin[1].N = 3; lin[1].bias = NULL; lin[1].skip_clip = 1;
    w4a8_config_init(&cfg);
    cfg.group_size = 32;
    cfg.act_mode = W4A8_ACT_PER_TENSOR;
    CHECK_ST(w4a8_calib_create(K, 0, T, &calib), W4A8_OK);
    CHECK_ST(w4a8_calib_add(calib, X, T), W4A8_OK);
    CHECK_ST(w4a8_quantize_linears(lin, 2, K, calib, &cfg, layers, &rep), W4A8_OK);
    if (layers[0] && layers[1]) {
        float Y0[32 * 5], Y1[32 * 3];
        CHECK(layers[0]->act_scale == layers[1]->act_scale && layers[0]->act_scale > 0);
        CHECK(rep.method == W4A8_METHOD_RTN && rep.act_mode == W4A8_ACT_PER_TENSOR && !rep.equalized);
        w4a8_layer_forward(layers[0], X, T, Y0, NULL, 0);
        w4a8_layer_forward(layers[1], X, T, Y1, NULL, 0);
        /* the report's FP32 reference is the float GEMM: each output within
           b = K eps sum_k |x_k w_k| of the double one, so the loss within
           mean(2 |e| b + b^2) */
        for (i = 0; i < T; i++) {
            for (n = 0; n < 8; n++) {
                const float *w = n < 5 ? Wa + n * K : Wb + (n - 5) * K;
                double y = 0, yabs = 0, e, b;
                size_t k;
                for (k = 0; k < K; k++) {
                    y += (double)X[i * K + k] * w[k];
                    yabs += fabs((double)X[i * K + k] * w[k]);
                }
                e = (n < 5 ? Y0[i * 5 + n] : Y1[i * 3 + n - 5]) - y;
                b = K * (FLT_EPSILON / 2) * yabs;
                sum += e * e;
                bound += 2 * fabs(e) * b + b * b;
            }
        }
        CHECK(fabs(rep.loss - sum / (T * 8)) <= bound / (T * 8));
    }
    w4a8_layer_free(layers[0]);
    w4a8_layer_free(layers[1]);
    /* A bad second linear leaves the outputs untouched. */
    layers[0] = layers[1] = NULL;
    Wb[4] = NAN;
    CHECK_ST(w4a8_quantize_linears(lin, 2, K, calib, &cfg, layers, &rep), W4A8_ERR_NONFINITE);
    CHECK(layers[0] == NULL && layers[1] == NULL);
    CHECK_ST(w4a8_quantize_linears(lin, 0, K, calib, &cfg, layers, &rep), W4A8_ERR_SHAPE);
    w4a8_calib_free(calib);
    free(Wa);
    free(Wb);
    free(X);
}

/* The equalization formulas, and their floor for dead channels. */
static void test_smooth_formulas(void) {
    float amax[4] = { 4.0f, 0.0f, 100.0f, 1.0f }, wmax[4] = { 0.25f, 2.0f, 0.0f, 1.0f }, s[4];
    w4a8_linear lin[2];
    float Wa[2 * 4] = { 1, -3, 0, 0.5f, 2, 0, 0, -1 }, Wb[4] = { -2, 1, 0, 0 }, wm[4];
    CHECK_ST(w4a8_smooth_smoothquant(amax, wmax, 4, 0.5f, s), W4A8_OK);
    CHECK(fabsf(s[0] - 4.0f) < 1e-6f);                       /* sqrt(4) / sqrt(0.25) */
    CHECK(fabsf(s[1] - (float)(sqrt(1e-5) / sqrt(2.0))) < 1e-9f);
    CHECK(fabsf(s[2] - (float)(10.0 / sqrt(1e-5))) < 1e-1f);
    CHECK(s[3] == 1.0f);
    CHECK_ST(w4a8_smooth_smoothquant(amax, wmax, 4, 1.5f, s), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_smooth_lae(amax, 4, s), W4A8_OK);
    CHECK(fabsf(s[0] - 4.0f / (float)(log(6.0) / log(2.0))) < 1e-6f);
    CHECK(s[1] == 1e-5f);                                     /* dead channel: the floor */
    CHECK(fabsf(s[2] - 100.0f / (float)(log(102.0) / log(2.0))) < 1e-5f);
    CHECK(fabsf(s[3] - 1.0f / (float)(log(3.0) / log(2.0))) < 1e-7f);
    amax[0] = NAN;
    CHECK_ST(w4a8_smooth_lae(amax, 4, s), W4A8_ERR_NONFINITE);
    lin[0].W = Wa; lin[0].N = 2; lin[0].bias = NULL; lin[0].skip_clip = 0;
    lin[1].W = Wb; lin[1].N = 1; lin[1].bias = NULL; lin[1].skip_clip = 0;
    CHECK_ST(w4a8_weight_absmax(lin, 2, 4, wm), W4A8_OK);
    CHECK(wm[0] == 2.0f && wm[1] == 3.0f && wm[2] == 0.0f && wm[3] == 1.0f);
}

void tests_core(void) {
    RUN(test_smooth_formulas);
    RUN(test_quantize_linears);
    RUN(test_status_strings);
    RUN(test_pack_roundtrip);
    RUN(test_rtn_half_step);
    RUN(test_rtn_ties_to_even);
    RUN(test_rtn_symmetric_grid);
    RUN(test_activation_quantization);
    RUN(test_gemm_matches_f64);
    RUN(test_layer_smooth);
    RUN(test_threads_deterministic);
    RUN(test_calibration);
    RUN(test_static_scale_from_calib);
    RUN(test_save_load);
    RUN(test_bad_inputs);
}
