/* Rotations: the Hadamard matrices are orthogonal, the fast transform is the
   dense product, the layer's online rotation is rotating X in float then the
   plain forward, bit for bit on every kernel, and the file keeps it. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../w4a8.h"
#include "test.h"

/* Every order the header carries, and sizes built on them. */
static const size_t orders[] = { 1, 12, 20, 28, 36, 44, 52, 60, 108, 140, 156, 172 };
#define N_ORDERS (sizeof orders / sizeof orders[0])
static const size_t sizes[] = { 1, 2, 64, 12, 24, 40, 28, 72, 44, 104, 60, 108, 280, 156, 172, 576, 1536 };
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static float *random_rows(size_t rows, size_t cols, uint64_t seed) {
    float *x = (float *)malloc(rows * cols * sizeof(float));
    size_t i;
    for (i = 0; i < rows * cols; i++) x[i] = test_normal(&seed);
    return x;
}

/* The longest chain of roundings an output of the fast transform goes
   through: log2(p) butterfly additions, m - 1 additions of the H_m product,
   the multiply by (float)(1 / sqrt(n)) and that constant's own rounding. */
static double chain(size_t n) {
    size_t m = 1, p, d = 0;
    w4a8_hadamard_order(n, &m);
    for (p = n / m; p > 1; p /= 2) d++;
    return (double)(d + m - 1 + 2);
}

/* H H^T = n I exactly, for every order and sizes built on them, with and
   without random signs (D H stays orthogonal: D D = I). */
static void test_hadamard_orthogonal(void) {
    size_t s, i, j, k;
    for (s = 0; s < N_ORDERS + N_SIZES; s++) {
        size_t n = s < N_ORDERS ? orders[s] : sizes[s - N_ORDERS], m = 0;
        int8_t *H = (int8_t *)malloc(n * n);
        uint64_t seed;
        CHECK_ST(w4a8_hadamard_order(n, &m), W4A8_OK);
        CHECK(m >= 1 && n % m == 0 && ((n / m) & (n / m - 1)) == 0);
        if (s < N_ORDERS) CHECK(m == n);
        for (seed = 0; seed < 2; seed++) {
            int bad = 0;
            CHECK_ST(w4a8_hadamard_matrix(n, seed * 12345, H), W4A8_OK);
            for (i = 0; i < n; i++)
                for (j = 0; j < n; j++) {
                    long dot = 0;
                    for (k = 0; k < n; k++) dot += H[i * n + k] * H[j * n + k];
                    bad |= dot != (i == j ? (long)n : 0);
                }
            for (i = 0; i < n * n; i++) bad |= H[i] != 1 && H[i] != -1;
            CHECK(!bad);
            if (bad) printf("    n = %zu, seed %d: H H^T != n I\n", n, (int)seed);
        }
        free(H);
    }
}

/* The fast transform equals X (D H) / sqrt(n) computed densely in double,
   within chain(n) * u * sum |x_i| / sqrt(n) (each output sums n terms +-x_i
   along at most chain(n) roundings); inverse = 1 is X (D H)^T / sqrt(n);
   and transforming back gives X within the two transforms' bounds. */
static void test_hadamard_fast_equals_dense(void) {
    const size_t M = 3;
    const double u = FLT_EPSILON / 2;
    size_t s, r, i, j;
    for (s = 0; s < N_SIZES; s++) {
        size_t n = sizes[s];
        int8_t *H = (int8_t *)malloc(n * n);
        float *X = random_rows(M, n, 100 + s), *Y = (float *)malloc(M * n * sizeof(float));
        float *Z = (float *)malloc(M * n * sizeof(float));
        int inv, bad = 0;
        CHECK_ST(w4a8_hadamard_matrix(n, 77, H), W4A8_OK);
        for (inv = 0; inv < 2; inv++) {
            CHECK_ST(w4a8_hadamard(X, M, n, 77, inv, Y), W4A8_OK);
            for (r = 0; r < M; r++) {
                double l1 = 0.0, l1y = 0.0;
                for (i = 0; i < n; i++) l1 += fabs(X[r * n + i]), l1y += fabs(Y[r * n + i]);
                for (j = 0; j < n; j++) {
                    double ref = 0.0;
                    for (i = 0; i < n; i++) ref += X[r * n + i] * (inv ? H[j * n + i] : H[i * n + j]);
                    ref /= sqrt((double)n);
                    bad |= fabs(Y[r * n + j] - ref) > chain(n) * u * l1 / sqrt((double)n) * 1.01;
                }
                /* back: error of this pass on Y plus the first pass's error, which an
                   orthogonal map carries over with at most a factor sqrt(n) in max norm */
                CHECK_ST(w4a8_hadamard(Y + r * n, 1, n, 77, !inv, Z + r * n), W4A8_OK);
                for (i = 0; i < n; i++)
                    bad |= fabs(Z[r * n + i] - X[r * n + i]) > chain(n) * u * (l1y / sqrt((double)n) + l1) * 1.01;
            }
        }
        /* in place gives the same bits */
        CHECK_ST(w4a8_hadamard(X, M, n, 77, 0, Y), W4A8_OK);
        CHECK_ST(w4a8_hadamard(X, M, n, 77, 0, X), W4A8_OK);
        CHECK(memcmp(X, Y, M * n * sizeof(float)) == 0);
        CHECK(!bad);
        if (bad) printf("    n = %zu: fast transform off the dense product\n", n);
        free(H), free(X), free(Y), free(Z);
    }
}

/* Unsupported sizes and bad inputs give a status and leave Y untouched. */
static void test_hadamard_bad_inputs(void) {
    static const size_t bad_sizes[] = { 3, 6, 7, 9, 18, 100, 174, 12 * 9 * 2 + 4 };
    float X[400], Y[400], Y0[400];
    int8_t H[16];
    size_t i, m = 0;
    for (i = 0; i < 400; i++) X[i] = (float)i, Y[i] = Y0[i] = -1.0f;
    for (i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
        CHECK_ST(w4a8_hadamard_order(bad_sizes[i], &m), W4A8_ERR_UNSUPPORTED);
        CHECK_ST(w4a8_hadamard(X, 1, bad_sizes[i], 0, 0, Y), W4A8_ERR_UNSUPPORTED);
        CHECK_ST(w4a8_rotate_input(X, 1, bad_sizes[i], 5), W4A8_ERR_UNSUPPORTED);
    }
    CHECK_ST(w4a8_hadamard_order(0, &m), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_hadamard_order(4, NULL), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_hadamard_matrix(3, 0, H), W4A8_ERR_UNSUPPORTED);
    CHECK_ST(w4a8_hadamard_matrix(4, 0, NULL), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_hadamard(NULL, 1, 4, 0, 0, Y), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_hadamard(X, 0, 4, 0, 0, Y), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_hadamard(X, 1, 0, 0, 0, Y), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_hadamard(X, (size_t)-1 / 2, 4, 0, 0, Y), W4A8_ERR_OVERFLOW);
    X[5] = NAN;
    CHECK_ST(w4a8_hadamard(X, 1, 12, 0, 0, Y), W4A8_ERR_NONFINITE);
    X[5] = INFINITY;
    CHECK_ST(w4a8_hadamard(X, 1, 12, 0, 0, Y), W4A8_ERR_NONFINITE);
    CHECK(memcmp(Y, Y0, sizeof Y) == 0);
    CHECK_ST(w4a8_rotate_output(NULL, 4, 4, 0), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_rotate_output(X, 0, 4, 0), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_rotate_output(Y, 9, 4, 0), W4A8_ERR_UNSUPPORTED);
    CHECK(memcmp(Y, Y0, sizeof Y) == 0);
}

/* The weight helpers keep the function: (X Q) (W Q)^T = X W^T on the input
   side, X (Q^T W)^T = (X W^T) Q on the output side, to float rounding. */
static void test_rotate_weights(void) {
    const size_t T = 4, N = 36, K = 40;
    float *X = random_rows(T, K, 1), *W = random_rows(N, K, 2), *Wi = (float *)malloc(N * K * sizeof(float));
    float *Wo = (float *)malloc(N * K * sizeof(float)), *XQ = (float *)malloc(T * K * sizeof(float));
    float *Y = (float *)malloc(T * N * sizeof(float));
    size_t t, n, k;
    double worst_in = 0.0, worst_out = 0.0;
    memcpy(Wi, W, N * K * sizeof(float));
    memcpy(Wo, W, N * K * sizeof(float));
    CHECK_ST(w4a8_rotate_input(Wi, N, K, 9), W4A8_OK);
    CHECK_ST(w4a8_rotate_output(Wo, N, K, 9), W4A8_OK);
    CHECK_ST(w4a8_hadamard(X, T, K, 9, 0, XQ), W4A8_OK);
    for (t = 0; t < T; t++)
        for (n = 0; n < N; n++) {
            double a = 0.0, b = 0.0;
            for (k = 0; k < K; k++) a += (double)X[t * K + k] * W[n * K + k], b += (double)XQ[t * K + k] * Wi[n * K + k];
            Y[t * N + n] = (float)a;
            if (fabs(a - b) > worst_in) worst_in = fabs(a - b);
        }
    CHECK_ST(w4a8_hadamard(Y, T, N, 9, 0, Y), W4A8_OK);
    for (t = 0; t < T; t++)
        for (n = 0; n < N; n++) {
            double c = 0.0;
            for (k = 0; k < K; k++) c += (double)X[t * K + k] * Wo[n * K + k];
            if (fabs(c - Y[t * N + n]) > worst_out) worst_out = fabs(c - Y[t * N + n]);
        }
    /* entries ~N(0,1): each output's exact value has magnitude ~sqrt(K); a few
       hundred ulps of that is far below any mistake (a wrong sign moves it by ~1) */
    CHECK(worst_in < 1e-4 && worst_out < 1e-4);
    free(X), free(W), free(Wi), free(Wo), free(XQ), free(Y);
}

/* Random codes, scales, zeros, bias and equalization for a layer of K inputs. */
static void make_desc(w4a8_layer_desc *d, size_t N, size_t K, size_t G, uint8_t *codes, float *scales,
                      uint8_t *zeros, float *bias, float *smooth, uint64_t seed) {
    size_t groups = (K + G - 1) / G, i;
    memset(d, 0, sizeof *d);
    for (i = 0; i < N * K; i++) codes[i] = (uint8_t)(test_rand(&seed) % 16);
    for (i = 0; i < N * groups; i++) {
        zeros[i] = (uint8_t)(test_rand(&seed) % 16);
        scales[i] = 0.01f + 0.05f * fabsf(test_uniform(&seed));
    }
    for (i = 0; i < N; i++) bias[i] = test_normal(&seed);
    for (i = 0; i < K; i++) smooth[i] = 0.5f + fabsf(test_uniform(&seed));
    d->N = N, d->K = K, d->group_size = G, d->asymmetric = 1;
    d->codes = codes, d->scales = scales, d->zeros = zeros, d->bias = bias, d->smooth = smooth;
    d->method = W4A8_METHOD_RTN;
}

/* The online rotation is X Q in float (w4a8_hadamard) then the plain
   forward, bit for bit, on every kernel this machine runs, for both
   activation modes, power-of-two and order-m sizes, with equalization;
   every kernel gives the scalar kernel's bits; w4a8_layer_rotated builds
   the same layer. */
static void test_layer_online_rotation(void) {
    static const struct { size_t K, G; } shapes[] = { { 64, 32 }, { 172, 172 }, { 576, 64 }, { 40, 8 } };
    const size_t N = 20, M = 5;
    size_t s;
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t K = shapes[s].K, G = shapes[s].G, groups = (K + G - 1) / G;
        uint8_t *codes = (uint8_t *)malloc(N * K), *zeros = (uint8_t *)malloc(N * groups);
        float *scales = (float *)malloc(N * groups * sizeof(float)), bias[20];
        float *smooth = (float *)malloc(K * sizeof(float)), *X = random_rows(M, K, 40 + s);
        float *XQ = (float *)malloc(M * K * sizeof(float)), *Y1 = (float *)malloc(M * N * sizeof(float));
        float *Y2 = (float *)malloc(M * N * sizeof(float)), *Yref = (float *)malloc(M * N * sizeof(float));
        int8_t *q1 = (int8_t *)malloc(M * K), *q2 = (int8_t *)malloc(M * K);
        float sc1[5], sc2[5];
        int32_t *gs1 = (int32_t *)malloc(M * groups * sizeof(int32_t)), *gs2 = (int32_t *)malloc(M * groups * sizeof(int32_t));
        int mode, kernel;
        w4a8_layer_desc d;
        X[3] = 40.0f; /* an outlier channel */
        make_desc(&d, N, K, G, codes, scales, zeros, bias, smooth, 50 + s);
        CHECK_ST(w4a8_hadamard(X, M, K, 31, 0, XQ), W4A8_OK);
        for (mode = 0; mode < 2; mode++) {
            int have_ref = 0;
            d.act_mode = (w4a8_act_mode)mode;
            d.act_scale = 0.05f;
            for (kernel = W4A8_KERNEL_SCALAR; kernel < W4A8_KERNEL_COUNT; kernel++) {
                w4a8_layer *plain = NULL, *rot = NULL, *rot2 = NULL;
                w4a8_kernel k;
                if (w4a8_kernel_resolve((w4a8_kernel)kernel, &k) != W4A8_OK) continue;
                d.kernel = (w4a8_kernel)kernel;
                d.rotate = 0;
                CHECK_ST(w4a8_layer_create(&d, &plain), W4A8_OK);
                d.rotate = 1, d.rotate_seed = 31;
                CHECK_ST(w4a8_layer_create(&d, &rot), W4A8_OK);
                d.rotate = 0;
                if (!plain || !rot) continue;
                CHECK(rot->rotate && rot->rotate_seed == 31 && !plain->rotate);
                CHECK_ST(w4a8_layer_forward(plain, XQ, M, Y1, NULL, 0), W4A8_OK);
                CHECK_ST(w4a8_layer_forward(rot, X, M, Y2, NULL, 0), W4A8_OK);
                CHECK(memcmp(Y1, Y2, M * N * sizeof(float)) == 0);
                CHECK_ST(w4a8_layer_quantize_activations(plain, XQ, M, q1, sc1, gs1), W4A8_OK);
                CHECK_ST(w4a8_layer_quantize_activations(rot, X, M, q2, sc2, gs2), W4A8_OK);
                CHECK(memcmp(q1, q2, M * K) == 0 && memcmp(sc1, sc2, M * sizeof(float)) == 0 &&
                      memcmp(gs1, gs2, M * groups * sizeof(int32_t)) == 0);
                if (!have_ref) memcpy(Yref, Y2, M * N * sizeof(float)), have_ref = 1;
                CHECK(memcmp(Yref, Y2, M * N * sizeof(float)) == 0);
                CHECK_ST(w4a8_layer_rotated(plain, 31, &rot2), W4A8_OK);
                if (rot2) {
                    CHECK_ST(w4a8_layer_forward(rot2, X, M, Y1, NULL, 0), W4A8_OK);
                    CHECK(memcmp(Y1, Y2, M * N * sizeof(float)) == 0);
                    CHECK_ST(w4a8_layer_rotated(rot2, 31, &rot), W4A8_ERR_CONFIG); /* rot untouched */
                    w4a8_layer_free(rot2);
                }
                {
                    float keep = X[7];
                    X[7] = NAN;
                    CHECK_ST(w4a8_layer_forward(rot, X, M, Y2, NULL, 0), W4A8_ERR_NONFINITE);
                    X[7] = keep;
                }
                w4a8_layer_free(plain);
                w4a8_layer_free(rot);
            }
        }
        d.rotate = 1;
        d.K = K + 2; /* 66, 174, ...: no Hadamard of that order */
        {
            w4a8_layer *L = NULL;
            uint8_t *c2 = (uint8_t *)calloc(N * (K + 2), 1);
            float *s2 = (float *)calloc(N * (K + 2), sizeof(float));
            uint8_t *z2 = (uint8_t *)malloc(N * (K + 2));
            memset(z2, 8, N * (K + 2));
            d.codes = c2, d.scales = s2, d.zeros = z2, d.smooth = NULL, d.group_size = K + 2;
            d.kernel = W4A8_KERNEL_SCALAR;
            CHECK_ST(w4a8_layer_create(&d, &L), W4A8_ERR_UNSUPPORTED);
            CHECK(L == NULL);
            free(c2), free(s2), free(z2);
        }
        free(codes), free(zeros), free(scales), free(smooth);
        free(X), free(XQ), free(Y1), free(Y2), free(Yref), free(q1), free(q2), free(gs1), free(gs2);
    }
}

/* A version-1 file (written by w4a8 0.1.0 before rotations: a 2 x 8 RTN
   layer, group 8, symmetric, with bias), byte for byte. */
static const unsigned char v1_file[76] = {
    0x57, 0x34, 0x41, 0x38, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4a, 0xf9, 0xe5, 0xc1, 0x9e, 0xc5, 0xa0, 0x2b, 0x89,
    0x88, 0x88, 0x3e, 0xab, 0xaa, 0x2a, 0x3e, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0xbe, 0xa4, 0x47, 0x3e, 0xd3
};

/* The layer the version-1 file holds: RTN of a 2 x 8 W, group 8, on the
   symmetric grid of w4a8 0.1.0 (step max|w| / 7.5, zero point 8). */
static w4a8_layer *v1_layer(const float *W, const float *bias) {
    uint8_t codes[16], zeros[2] = { 8, 8 };
    float scales[2];
    w4a8_layer_desc d;
    w4a8_layer *L = NULL;
    size_t n, k;
    for (n = 0; n < 2; n++) {
        float amax = 0.0f;
        for (k = 0; k < 8; k++) amax = fabsf(W[n * 8 + k]) > amax ? fabsf(W[n * 8 + k]) : amax;
        scales[n] = amax / 7.5f;
        for (k = 0; k < 8; k++) {
            float q = nearbyintf(W[n * 8 + k] / scales[n]) + 8.0f;
            codes[n * 8 + k] = (uint8_t)(q < 0.0f ? 0.0f : q > 15.0f ? 15.0f : q);
        }
    }
    memset(&d, 0, sizeof d);
    d.N = 2, d.K = 8, d.group_size = 8;
    d.codes = codes, d.scales = scales, d.zeros = zeros, d.bias = bias;
    d.act_mode = W4A8_ACT_PER_TOKEN, d.method = W4A8_METHOD_RTN, d.kernel = W4A8_KERNEL_SCALAR;
    CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
    return L;
}

/* Version 2 keeps the rotation and its seed; a version-1 file still loads
   (as the layer its codes and scales make) and cannot claim a rotation. */
static void test_rotation_file(void) {
    static const float W[16] = { 0.5f, -1, 0.25f, 2, -0.75f, 1.5f, -2, 1, 1, 0.125f, -0.5f, 0.75f, -1.25f, 0.25f, 0.5f, -1 };
    static const float bias[2] = { 0.5f, -0.25f };
    float X[16], Y1[4], Y2[4];
    unsigned char old[76], *buf;
    size_t bytes, i;
    w4a8_config cfg;
    w4a8_layer *L = NULL, *B = NULL, *R = NULL, *V = v1_layer(W, bias);
    for (i = 0; i < 16; i++) X[i] = (float)i * 0.3f - 2.0f;
    w4a8_config_init(&cfg);
    cfg.group_size = 8;
    cfg.kernel = W4A8_KERNEL_SCALAR;
    CHECK_ST(w4a8_layer_quantize(W, 2, 8, bias, NULL, &cfg, &L), W4A8_OK);
    CHECK_ST(w4a8_layer_load_mem(v1_file, sizeof v1_file, W4A8_KERNEL_SCALAR, &B), W4A8_OK);
    if (!L || !B || !V) return;
    CHECK(B->N == 2 && B->K == 8 && B->bias && !B->rotate);
    CHECK_ST(w4a8_layer_forward(V, X, 2, Y1, NULL, 0), W4A8_OK);
    CHECK_ST(w4a8_layer_forward(B, X, 2, Y2, NULL, 0), W4A8_OK);
    CHECK(memcmp(Y1, Y2, sizeof Y1) == 0);
    memcpy(old, v1_file, sizeof old);
    old[32] |= 16; /* a rotation flag in a version-1 file (flags come before the checksum) */
    w4a8_layer_free(B), B = NULL;
    CHECK_ST(w4a8_layer_load_mem(old, sizeof old, W4A8_KERNEL_AUTO, &B), W4A8_ERR_FILE_FORMAT);
    old[4] = 3; /* a version from the future */
    CHECK_ST(w4a8_layer_load_mem(old, sizeof old, W4A8_KERNEL_AUTO, &B), W4A8_ERR_FILE_VERSION);

    CHECK_ST(w4a8_layer_rotated(L, 0xfeedbeefcafe1234ull, &R), W4A8_OK);
    if (!R) return;
    CHECK_ST(w4a8_layer_save_size(R, &bytes), W4A8_OK);
    CHECK(bytes == sizeof v1_file + 8);
    buf = (unsigned char *)malloc(bytes);
    CHECK_ST(w4a8_layer_save_mem(R, buf, bytes), W4A8_OK);
    CHECK(buf[4] == 2 && buf[32] == (2 | 16));
    CHECK_ST(w4a8_layer_load_mem(buf, bytes, W4A8_KERNEL_AUTO, &B), W4A8_OK);
    if (B) {
        CHECK(B->rotate && B->rotate_seed == 0xfeedbeefcafe1234ull);
        CHECK_ST(w4a8_layer_forward(R, X, 2, Y1, NULL, 0), W4A8_OK);
        CHECK_ST(w4a8_layer_forward(B, X, 2, Y2, NULL, 0), W4A8_OK);
        CHECK(memcmp(Y1, Y2, sizeof Y1) == 0);
        w4a8_layer_free(B), B = NULL;
    }
    CHECK_ST(w4a8_layer_load_mem(buf, bytes - 8, W4A8_KERNEL_AUTO, &B), W4A8_ERR_FILE_TRUNCATED);
    buf[32] &= (unsigned char)~16u; /* the seed left over without its flag: 8 bytes too many */
    CHECK_ST(w4a8_layer_load_mem(buf, bytes, W4A8_KERNEL_AUTO, &B), W4A8_ERR_FILE_FORMAT);
    CHECK(B == NULL);
    free(buf);
    w4a8_layer_free(R);
    w4a8_layer_free(L);
    w4a8_layer_free(V);
}

void tests_rotate(void) {
    RUN(test_hadamard_orthogonal);
    RUN(test_hadamard_fast_equals_dense);
    RUN(test_hadamard_bad_inputs);
    RUN(test_rotate_weights);
    RUN(test_layer_online_rotation);
    RUN(test_rotation_file);
}
