/* Device tests of w4a8_cuda.cu: every kernel, both input and output types,
   against w4a8_layer_forward, bit for bit (half outputs: the CPU's float
   rounded to nearest). Without a GPU (CI) it checks the paths that need none
   and counts the device tests as skipped. `make test-cuda`. */
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "../w4a8_cuda.h"
#include "cuda_layers.h"
#include "test.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int test_passed, test_failed, test_check_failed, test_skipped;

#define CUDA_OK(call) CHECK((call) == cudaSuccess)

/* Guard elements after Y: a kernel that writes past M x N changes them. */
enum { GUARD = 64 };

static uint16_t half_bits(float f) {
    __half h = __float2half_rn(f);
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

/* Run a forward with every kernel that takes M and each type pair, and
   compare with the CPU. X has M rows (float; half inputs get X rounded to
   half, and the CPU reference sees those values). */
static void check_layer(const w4a8_layer *L, const float *X, size_t M, int all_types) {
    const size_t N = L->N, K = L->K;
    float *Xr = (float *)malloc(M * K * 4), *want = (float *)malloc(M * N * 4);
    float *got = (float *)malloc((M * N + GUARD) * 4);
    __half *xh = (__half *)malloc(M * K * 2);
    w4a8_cuda_layer *D = NULL;
    void *dX = NULL, *dY = NULL, *ws = NULL;
    size_t ws_bytes = 0, i;
    int xt, yt, k;
    CHECK_ST(w4a8_cuda_upload(L, &D), W4A8_OK);
    CHECK_ST(w4a8_cuda_workspace_size(D, M, &ws_bytes), W4A8_OK);
    CUDA_OK(cudaMalloc(&dX, M * K * 4));
    CUDA_OK(cudaMalloc(&dY, (M * N + GUARD) * 4));
    CUDA_OK(cudaMalloc(&ws, ws_bytes));
    for (xt = 0; D && xt < 2; xt++) {
        if (xt == W4A8_CUDA_F16) {
            for (i = 0; i < M * K; i++) {
                xh[i] = __float2half_rn(X[i]);
                Xr[i] = __half2float(xh[i]);
            }
            CUDA_OK(cudaMemcpy(dX, xh, M * K * 2, cudaMemcpyHostToDevice));
        } else {
            memcpy(Xr, X, M * K * 4);
            CUDA_OK(cudaMemcpy(dX, X, M * K * 4, cudaMemcpyHostToDevice));
        }
        CHECK_ST(w4a8_layer_forward(L, Xr, M, want, NULL, 0), W4A8_OK);
        for (yt = 0; yt < 2; yt++) {
            if (!all_types && xt != yt) continue;
            for (k = W4A8_CUDA_KERNEL_AUTO; k < W4A8_CUDA_KERNEL_COUNT; k++) {
                const size_t ysz = yt == W4A8_CUDA_F16 ? 2 : 4;
                size_t bad = 0;
                if (k == W4A8_CUDA_KERNEL_SMALL && M > 16) continue;
                CUDA_OK(cudaMemset(dY, 0x7f, (M * N + GUARD) * 4));
                CHECK_ST(w4a8_cuda_forward_kernel(D, dX, (w4a8_cuda_dtype)xt, M, dY, (w4a8_cuda_dtype)yt, ws, ws_bytes, NULL,
                                                  (w4a8_cuda_kernel)k),
                         W4A8_OK);
                CHECK_ST(w4a8_cuda_forward_status(D, ws, M, NULL), W4A8_OK);
                CUDA_OK(cudaMemcpy(got, dY, (M * N + GUARD) * 4, cudaMemcpyDeviceToHost));
                if (yt == W4A8_CUDA_F32) {
                    for (i = 0; i < M * N; i++) bad += memcmp(&got[i], &want[i], 4) != 0;
                } else {
                    const uint16_t *gh = (const uint16_t *)got;
                    for (i = 0; i < M * N; i++) bad += gh[i] != half_bits(want[i]);
                }
                for (i = M * N * ysz; i < (M * N + GUARD) * 4; i++) bad += ((unsigned char *)got)[i] != 0x7f;
                if (bad)
                    printf("    N %zu K %zu G %zu M %zu kernel %d x %d y %d: %zu outputs differ\n", N, K, L->G, M, k, xt, yt,
                           bad);
                CHECK(bad == 0);
            }
        }
    }
    cudaFree(dX);
    cudaFree(dY);
    cudaFree(ws);
    w4a8_cuda_free(D);
    free(Xr);
    free(want);
    free(got);
    free(xh);
}

/* `test_cuda quick`: a few small cases, for compute-sanitizer. */
static int quick;

/* Odd shapes, every group layout, both activation modes, 1/s applied or
   folded, with and without bias, M on both sides of every kernel edge. */
static void test_cuda_matches_cpu(void) {
    static const struct {
        size_t N, K, G;
        int asym, mode, smooth, folded, bias;
    } cases[] = {
        { 200, 300, 64, 0, W4A8_ACT_PER_TOKEN, 0, 0, 1 },  { 37, 100, 100, 1, W4A8_ACT_PER_TENSOR, 1, 0, 0 },
        { 64, 1000, 32, 1, W4A8_ACT_PER_TOKEN, 1, 1, 1 },  { 5, 33, 1, 1, W4A8_ACT_PER_TOKEN, 0, 0, 1 },
        { 40, 130, 48, 0, W4A8_ACT_PER_TENSOR, 0, 0, 1 },  { 1, 1, 1, 0, W4A8_ACT_PER_TOKEN, 0, 0, 0 },
        { 129, 2100, 2100, 1, W4A8_ACT_PER_TOKEN, 1, 0, 1 }, { 300, 4096, 128, 0, W4A8_ACT_PER_TOKEN, 1, 0, 1 },
    };
    static const size_t Ms[] = { 1, 2, 7, 8, 9, 16, 17, 64, 65, 130, 300 };
    size_t c, m;
    for (c = 0; c < (quick ? 2 : sizeof cases / sizeof cases[0]); c++) {
        w4a8_layer *L = random_layer(cases[c].N, cases[c].K, cases[c].G, cases[c].asym, (w4a8_act_mode)cases[c].mode,
                                     cases[c].smooth, cases[c].folded, cases[c].bias, 100 + c);
        for (m = 0; L && m < sizeof Ms / sizeof Ms[0]; m += quick ? 4 : 1) {
            float *X = tokens(Ms[m], L->K, 300 + m);
            check_layer(L, X, Ms[m], m % 3 == 0);
            free(X);
        }
        w4a8_layer_free(L);
    }
}

/* The benchmark's shapes, at decode and prefill sizes. */
static void test_cuda_llm_shapes(void) {
    static const size_t shapes[][2] = { { 4096, 4096 }, { 11008, 4096 }, { 4096, 11008 } };
    static const size_t Ms[] = { 1, 16, 200 };
    size_t s, m;
    for (s = 0; s < 3; s++) {
        w4a8_layer *L = random_layer(shapes[s][0], shapes[s][1], 128, s == 1, W4A8_ACT_PER_TOKEN, s == 2, 0, 1, 7 + s);
        for (m = 0; L && m < 3; m++) {
            float *X = tokens(Ms[m], L->K, 40 + m);
            check_layer(L, X, Ms[m], 0);
            free(X);
        }
        w4a8_layer_free(L);
    }
}

/* int32 sums at the edge of the exponent trick (groups of 2048, every
   product +-127 * 15) and past it. */
static void test_cuda_extreme_sums(void) {
    static const size_t Gs[] = { 2048, 2100 };
    size_t t, i, N = 16, K = 2100, M = 3;
    for (t = 0; t < 2; t++) {
        w4a8_layer_desc d;
        w4a8_layer *L = NULL;
        size_t groups = (K + Gs[t] - 1) / Gs[t];
        uint8_t *codes = (uint8_t *)malloc(N * K), *zeros = (uint8_t *)malloc(N * groups);
        float *scales = (float *)malloc(N * groups * 4), *X = (float *)malloc(M * K * 4);
        for (i = 0; i < N * K; i++) codes[i] = (i / K) % 2 ? 15 : 0;
        for (i = 0; i < N * groups; i++) {
            zeros[i] = (i / groups) % 2 ? 0 : 15;
            scales[i] = 1.0f + (float)i / 64.0f;
        }
        for (i = 0; i < M * K; i++) X[i] = i / K == 1 ? -3.0f : 3.0f;
        memset(&d, 0, sizeof d);
        d.N = N;
        d.K = K;
        d.group_size = Gs[t];
        d.asymmetric = 1;
        d.codes = codes;
        d.scales = scales;
        d.zeros = zeros;
        CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
        if (L) check_layer(L, X, M, 1);
        free(codes);
        free(zeros);
        free(scales);
        free(X);
        w4a8_layer_free(L);
    }
}

/* Bad arguments come back as statuses; NaN or Inf leaves Y untouched and
   shows in w4a8_cuda_forward_status. */
static void test_cuda_errors(void) {
    w4a8_layer *L = random_layer(40, 64, 32, 0, W4A8_ACT_PER_TOKEN, 1, 0, 1, 3);
    w4a8_cuda_layer *D = NULL;
    float *X = tokens(5, 64, 4), got[5 * 40];
    void *dX = NULL, *dY = NULL, *ws = NULL;
    size_t ws_bytes = 0, big = 0, i, e;
    int same;
    if (!L) return;
    CHECK_ST(w4a8_cuda_upload(NULL, &D), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_cuda_upload(L, NULL), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_cuda_upload(L, &D), W4A8_OK);
    CHECK_ST(w4a8_cuda_workspace_size(D, 0, &ws_bytes), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_cuda_workspace_size(D, (size_t)-1, &ws_bytes), W4A8_ERR_OVERFLOW);
    CHECK_ST(w4a8_cuda_workspace_size(D, 17, &big), W4A8_OK);
    CHECK_ST(w4a8_cuda_workspace_size(D, 5, &ws_bytes), W4A8_OK);
    CUDA_OK(cudaMalloc(&dX, 5 * 64 * 4 + 4));
    CUDA_OK(cudaMalloc(&dY, 5 * 40 * 4));
    CUDA_OK(cudaMalloc(&ws, big));
    CUDA_OK(cudaMemcpy(dX, X, 5 * 64 * 4, cudaMemcpyHostToDevice));
    CHECK_ST(w4a8_cuda_forward(NULL, dX, W4A8_CUDA_F32, 5, dY, W4A8_CUDA_F32, ws, ws_bytes, NULL), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_cuda_forward(D, NULL, W4A8_CUDA_F32, 5, dY, W4A8_CUDA_F32, ws, ws_bytes, NULL), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_cuda_forward(D, dX, W4A8_CUDA_F32, 5, dY, W4A8_CUDA_F32, NULL, ws_bytes, NULL), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_cuda_forward(D, dX, W4A8_CUDA_F32, 0, dY, W4A8_CUDA_F32, ws, ws_bytes, NULL), W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_cuda_forward(D, dX, (w4a8_cuda_dtype)2, 5, dY, W4A8_CUDA_F32, ws, ws_bytes, NULL), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_cuda_forward(D, dX, W4A8_CUDA_F32, 5, dY, (w4a8_cuda_dtype)-1, ws, ws_bytes, NULL), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_cuda_forward(D, dX, W4A8_CUDA_F32, 5, dY, W4A8_CUDA_F32, ws, ws_bytes - 1, NULL), W4A8_ERR_WORKSPACE);
    CHECK_ST(w4a8_cuda_forward(D, (char *)dX + 2, W4A8_CUDA_F32, 5, dY, W4A8_CUDA_F32, ws, ws_bytes, NULL), W4A8_ERR_RANGE);
    CHECK_ST(w4a8_cuda_forward_kernel(D, dX, W4A8_CUDA_F32, 17, dY, W4A8_CUDA_F32, ws, big, NULL, W4A8_CUDA_KERNEL_SMALL),
             W4A8_ERR_SHAPE);
    CHECK_ST(w4a8_cuda_forward_kernel(D, dX, W4A8_CUDA_F32, 5, dY, W4A8_CUDA_F32, ws, ws_bytes, NULL,
                                      W4A8_CUDA_KERNEL_COUNT),
             W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_cuda_forward_status(D, NULL, 5, NULL), W4A8_ERR_NULL_ARG);
    /* A misaligned workspace is aligned inside: its size already allows for it. */
    CHECK_ST(w4a8_cuda_forward(D, dX, W4A8_CUDA_F32, 5, dY, W4A8_CUDA_F32, (char *)ws + 1, big - 1, NULL), W4A8_OK);
    CHECK_ST(w4a8_cuda_forward_status(D, (char *)ws + 1, 5, NULL), W4A8_OK);

    /* Inf in token 3, through 1/s: nothing is written, every kernel. */
    X[3 * 64 + 9] = INFINITY;
    CUDA_OK(cudaMemcpy(dX, X, 5 * 64 * 4, cudaMemcpyHostToDevice));
    for (i = W4A8_CUDA_KERNEL_AUTO; i < W4A8_CUDA_KERNEL_COUNT; i++) {
        CUDA_OK(cudaMemset(dY, 0x7f, 5 * 40 * 4));
        CHECK_ST(w4a8_cuda_forward_kernel(D, dX, W4A8_CUDA_F32, 5, dY, W4A8_CUDA_F32, ws, ws_bytes, NULL, (w4a8_cuda_kernel)i),
                 W4A8_OK);
        CHECK_ST(w4a8_cuda_forward_status(D, ws, 5, NULL), W4A8_ERR_NONFINITE);
        CUDA_OK(cudaMemcpy(got, dY, sizeof got, cudaMemcpyDeviceToHost));
        same = 1;
        for (e = 0; e < sizeof got; e++) same &= ((unsigned char *)got)[e] == 0x7f;
        CHECK(same);
    }
    CHECK(strlen(w4a8_cuda_error_str()) > 0);
    cudaFree(dX);
    cudaFree(dY);
    cudaFree(ws);
    w4a8_cuda_free(D);
    w4a8_cuda_free(NULL);
    free(X);
    w4a8_layer_free(L);
}

/* What runs without a GPU: argument checks, and a clear status from upload. */
static void test_cuda_no_device(void) {
    w4a8_layer *L = random_layer(8, 32, 32, 0, W4A8_ACT_PER_TOKEN, 0, 0, 0, 1);
    w4a8_cuda_layer *D = NULL;
    size_t bytes;
    CHECK_ST(w4a8_cuda_workspace_size(NULL, 4, &bytes), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_cuda_forward(NULL, NULL, W4A8_CUDA_F32, 4, NULL, W4A8_CUDA_F32, NULL, 0, NULL), W4A8_ERR_NULL_ARG);
    CHECK_ST(w4a8_cuda_upload(L, &D), W4A8_ERR_UNSUPPORTED);
    CHECK(D == NULL);
    CHECK(strcmp(w4a8_cuda_error_str(), "no error") != 0);
    w4a8_layer_free(L);
}

int main(int argc, char **argv) {
    int n = 0, major = 0, minor = 0;
    char name[256] = "", why[400] = "";
    cudaDeviceProp prop;
    const char *skip = NULL, *skip_long;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        skip = "no GPU";
        RUN(test_cuda_no_device);
    } else {
        if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
            major = prop.major;
            minor = prop.minor;
            snprintf(name, sizeof name, "%s", prop.name);
        }
        snprintf(why, sizeof why, "no GPU with sm_80 or newer (device 0: %s, sm_%d%d)", name, major, minor);
        if (major < 8) skip = why;
    }
    quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    skip_long = skip ? skip : quick ? "quick run" : NULL;
    if (skip) printf("%s: device tests skipped\n", skip);
    else printf("w4a8 CUDA tests on %s (sm_%d%d)%s\n", name, major, minor, quick ? ", quick" : "");
    RUN_UNLESS(skip, test_cuda_errors);
    RUN_UNLESS(skip, test_cuda_matches_cpu);
    RUN_UNLESS(skip_long, test_cuda_extreme_sums);
    RUN_UNLESS(skip_long, test_cuda_llm_shapes);
    return test_summary();
}
