/* w4a8_cuda_bench: the W4A8 forward (activation quantization included, half
   in, half out) beside cuBLAS FP16 GEMM and cuBLASLt int8 GEMM (W8A8, int32
   out, no quantization), at the shapes of a 7B model's linears.

       make cuda && ./build/w4a8_cuda_bench [table.md]

   table.md, when given, must be absent or a regular file; a lost write there
   or on standard output makes the exit status 1.

   Timing: CUDA events around batches of launches after warm-up; the median
   of 21 batches. Each library cycles through copies of its weights that
   together exceed 3x the L2 cache, so weights come from DRAM as in a model.
   TB/s counts weight bytes only (W4A8: codes, scales, zeros if asymmetric;
   FP16: 2 bytes; INT8: 1 byte a weight); TFLOP/s is 2MNK / time. */
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "../w4a8_cuda.h"
#include "output.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CK(call)                                                                                     \
    do {                                                                                             \
        cudaError_t e_ = (call);                                                                     \
        if (e_ != cudaSuccess) {                                                                     \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));   \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)
#define CB(call)                                                                                     \
    do {                                                                                             \
        cublasStatus_t s_ = (call);                                                                  \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                           \
            fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call, (int)s_);    \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)
#define CW(call)                                                                                     \
    do {                                                                                             \
        w4a8_status w_ = (call);                                                                     \
        if (w_ != W4A8_OK) {                                                                         \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #call, w4a8_status_str(w_), \
                    w4a8_cuda_error_str());                                                          \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

enum { SAMPLES = 21, WARMUP = 5, G = 128 };
static const size_t shapes[][2] = { { 4096, 4096 }, { 11008, 4096 }, { 4096, 11008 } };
static const size_t Ms[] = { 1, 16, 128, 512, 2048 };

static uint64_t seed = 1;
static uint32_t rnd(void) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(seed >> 33);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median microseconds of one call, run(copy) cycling through the copies. */
template <typename F> static double time_us(F run, int copies, cudaStream_t s) {
    cudaEvent_t a, b;
    double t[SAMPLES];
    float ms;
    int i, r, reps = 1;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (i = 0; i < WARMUP; i++) run(i % copies);
    CK(cudaEventRecord(a, s));
    run(0);
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    CK(cudaEventElapsedTime(&ms, a, b));
    while (reps < 1000 && reps * ms < 0.2f) reps *= 2; /* batches of at least 0.2 ms */
    for (i = 0; i < SAMPLES; i++) {
        CK(cudaEventRecord(a, s));
        for (r = 0; r < reps; r++) run((i * reps + r) % copies);
        CK(cudaEventRecord(b, s));
        CK(cudaEventSynchronize(b));
        CK(cudaEventElapsedTime(&ms, a, b));
        t[i] = 1000.0 * ms / reps;
    }
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    qsort(t, SAMPLES, sizeof t[0], cmp_double);
    return t[SAMPLES / 2];
}

static int copies_for(size_t bytes, int l2) {
    size_t c = (3 * (size_t)l2 + bytes - 1) / bytes;
    return c < 1 ? 1 : c > 16 ? 16 : (int)c;
}

/* Random bytes on the device. */
static void *dev_random(size_t bytes, int kind) {
    unsigned char *h = (unsigned char *)malloc(bytes);
    void *d;
    size_t i;
    for (i = 0; i < bytes; i++) h[i] = (unsigned char)rnd();
    if (kind == 1) /* halves in [-1, 1] */
        for (i = 0; i + 1 < bytes; i += 2) {
            __half x = __float2half_rn((float)(rnd() % 2001) / 1000.0f - 1.0f);
            memcpy(h + i, &x, 2);
        }
    CK(cudaMalloc(&d, bytes));
    CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

static w4a8_layer *bench_layer(size_t N, size_t K) {
    w4a8_layer_desc d;
    w4a8_layer *L = NULL;
    size_t groups = (K + G - 1) / G, i;
    uint8_t *codes = (uint8_t *)malloc(N * K), *zeros = (uint8_t *)malloc(N * groups);
    float *scales = (float *)malloc(N * groups * 4);
    for (i = 0; i < N * K; i++) codes[i] = (uint8_t)(rnd() & 15);
    for (i = 0; i < N * groups; i++) {
        zeros[i] = 8;
        scales[i] = 0.001f + (float)(rnd() % 1000) * 1e-5f;
    }
    memset(&d, 0, sizeof d);
    d.N = N;
    d.K = K;
    d.group_size = G;
    d.codes = codes;
    d.scales = scales;
    d.zeros = zeros;
    CW(w4a8_layer_create(&d, &L));
    free(codes);
    free(zeros);
    free(scales);
    return L;
}

static int run(int argc, char **argv) {
    cudaDeviceProp prop;
    cudaStream_t s;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *lt_ws;
    const size_t lt_ws_bytes = (size_t)32 << 20;
    char line[512], date[64];
    const char *why = argc > 1 ? output_target(argv[1]) : NULL;
    FILE *out = argc > 1 && !why ? fopen(argv[1], "w") : NULL;
    time_t now = time(NULL);
    int dev, l2, rt = 0, drv = 0;
    size_t si, mi;
    if (argc > 1 && !out) {
        fprintf(stderr, "w4a8_cuda_bench: cannot write %s: %s\n", argv[1], why ? why : strerror(errno));
        return 1;
    }
    CK(cudaGetDevice(&dev));
    CK(cudaGetDeviceProperties(&prop, dev));
    CK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    CK(cudaRuntimeGetVersion(&rt));
    CK(cudaDriverGetVersion(&drv));
    CK(cudaStreamCreate(&s));
    CB(cublasCreate(&blas));
    CB(cublasSetStream(blas, s));
    CB(cublasLtCreate(&lt));
    CK(cudaMalloc(&lt_ws, lt_ws_bytes));
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));

#define EMIT(...)                                                                                    \
    do {                                                                                             \
        snprintf(line, sizeof line, __VA_ARGS__);                                                    \
        fputs(line, stdout);                                                                         \
        fflush(stdout);                                                                              \
        if (out) fputs(line, out), fflush(out);                                                      \
    } while (0)
    EMIT("## w4a8 CUDA benchmark\n\n%s, sm_%d%d, %d SMs, L2 %d MiB; CUDA runtime %d, driver %d; %s.\n\n", prop.name,
         prop.major, prop.minor, prop.multiProcessorCount, l2 >> 20, rt, drv, date);
    EMIT("W4A8: group %d, symmetric, per-token activations, half in and out, activation quantization included.\n"
         "FP16: cublasGemmEx, fp32 accumulation. INT8: cublasLtMatmul int8 x int8 -> int32 (W8A8 GEMM alone).\n"
         "Median of %d batches; weights rotated through copies exceeding 3x L2. TB/s: weight bytes / time.\n\n",
         G, SAMPLES);
    EMIT("| N | K | M | W4A8 us | TFLOP/s | TB/s | FP16 us | TFLOP/s | TB/s | INT8 us | TFLOP/s | W4A8 vs FP16 | W4A8 vs INT8 "
         "| target |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");

    double choice[3][5][2];
    for (si = 0; si < 3; si++) {
        const size_t N = shapes[si][0], K = shapes[si][1];
        w4a8_layer *L = bench_layer(N, K);
        const size_t wb4 = N * K / 2 + N * ((K + G - 1) / G) * 4, wb16 = N * K * 2, wb8 = N * K;
        const int c4 = copies_for(wb4, l2), c16 = copies_for(wb16, l2), c8 = copies_for(wb8, l2);
        w4a8_cuda_layer *D[16];
        void *W16[16], *W8[16];
        int c;
        for (c = 0; c < c4; c++) CW(w4a8_cuda_upload(L, &D[c]));
        for (c = 0; c < c16; c++) W16[c] = dev_random(wb16, 1);
        for (c = 0; c < c8; c++) W8[c] = dev_random(wb8, 0);
        for (mi = 0; mi < 5; mi++) {
            const size_t M = Ms[mi];
            const double flop = 2.0 * (double)M * (double)N * (double)K;
            void *X16 = dev_random(M * K * 2, 1), *X8 = dev_random(M * K, 0), *Y16, *Y32, *ws;
            size_t ws_bytes;
            double t4, t16, t8 = -1.0;
            CK(cudaMalloc(&Y16, M * N * 2));
            CK(cudaMalloc(&Y32, M * N * 4));
            CW(w4a8_cuda_workspace_size(D[0], M, &ws_bytes));
            CK(cudaMalloc(&ws, ws_bytes));

            t4 = time_us(
                [&](int i) {
                    CW(w4a8_cuda_forward(D[i], X16, W4A8_CUDA_F16, M, Y16, W4A8_CUDA_F16, ws, ws_bytes, s));
                },
                c4, s);
            CW(w4a8_cuda_forward_status(D[0], ws, M, s));
            choice[si][mi][0] = choice[si][mi][1] = -1.0;
            if (M >= 128) { /* the two mma tilings, for the AUTO heuristic */
                int k;
                for (k = 0; k < 2; k++)
                    if (w4a8_cuda_forward_kernel(D[0], X16, W4A8_CUDA_F16, M, Y16, W4A8_CUDA_F16, ws, ws_bytes, s,
                                                 k ? W4A8_CUDA_KERNEL_BIG : W4A8_CUDA_KERNEL_MID) == W4A8_OK)
                        choice[si][mi][k] = time_us(
                        [&](int i) {
                            CW(w4a8_cuda_forward_kernel(D[i], X16, W4A8_CUDA_F16, M, Y16, W4A8_CUDA_F16, ws, ws_bytes, s,
                                                        k ? W4A8_CUDA_KERNEL_BIG : W4A8_CUDA_KERNEL_MID));
                        },
                        c4, s);
            }
            const float one = 1.0f, zero = 0.0f;
            t16 = time_us(
                [&](int i) {
                    CB(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, W16[i], CUDA_R_16F,
                                    (int)K, X16, CUDA_R_16F, (int)K, &zero, Y16, CUDA_R_16F, (int)N, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
                },
                c16, s);

            /* INT8: Y^T (N x M) = W (K x N, transposed) * X^T (K x M), column major. */
            cublasLtMatmulDesc_t op;
            cublasLtMatrixLayout_t la, lb, lc;
            cublasLtMatmulPreference_t pref;
            cublasLtMatmulHeuristicResult_t res;
            const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
            int found = 0;
            CB(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32I, CUDA_R_32I));
            CB(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
            CB(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
            CB(cublasLtMatrixLayoutCreate(&la, CUDA_R_8I, K, N, (int64_t)K));
            CB(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8I, K, M, (int64_t)K));
            CB(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32I, N, M, (int64_t)N));
            CB(cublasLtMatmulPreferenceCreate(&pref));
            CB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt_ws_bytes,
                                                    sizeof lt_ws_bytes));
            if (cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &found) == CUBLAS_STATUS_SUCCESS &&
                found > 0) {
                const int32_t ia = 1, ib = 0;
                t8 = time_us(
                    [&](int i) {
                        CB(cublasLtMatmul(lt, op, &ia, W8[i], la, X8, lb, &ib, Y32, lc, Y32, lc, &res.algo, lt_ws,
                                          lt_ws_bytes, s));
                    },
                    c8, s);
            }
            CB(cublasLtMatmulPreferenceDestroy(pref));
            CB(cublasLtMatrixLayoutDestroy(la));
            CB(cublasLtMatrixLayoutDestroy(lb));
            CB(cublasLtMatrixLayoutDestroy(lc));
            CB(cublasLtMatmulDescDestroy(op));

            char i8[64] = "n/a | n/a", vs8[32] = "n/a", target[64] = "-";
            if (t8 > 0) {
                snprintf(i8, sizeof i8, "%.1f | %.1f", t8, flop / t8 * 1e-6);
                snprintf(vs8, sizeof vs8, "%.2fx", t8 / t4);
            }
            if (M <= 16) snprintf(target, sizeof target, ">= 3x FP16: %s", t16 / t4 >= 3.0 ? "met" : "MISSED");
            if (M >= 512)
                snprintf(target, sizeof target, ">= INT8: %s", t8 <= 0 ? "n/a" : t8 / t4 >= 1.0 ? "met" : "MISSED");
            EMIT("| %zu | %zu | %zu | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %s | %.2fx | %s | %s |\n", N, K, M, t4,
                 flop / t4 * 1e-6, wb4 / t4 * 1e-6, t16, flop / t16 * 1e-6, wb16 / t16 * 1e-6, i8, t16 / t4, vs8,
                 target);
            CK(cudaFree(X16));
            CK(cudaFree(X8));
            CK(cudaFree(Y16));
            CK(cudaFree(Y32));
            CK(cudaFree(ws));
        }
        for (c = 0; c < c4; c++) w4a8_cuda_free(D[c]);
        for (c = 0; c < c16; c++) CK(cudaFree(W16[c]));
        for (c = 0; c < c8; c++) CK(cudaFree(W8[c]));
        w4a8_layer_free(L);
    }
    EMIT("\nW4A8 mma tilings (us; AUTO takes 128x128 when its tiles cover every SM, else 64x64):\n\n"
         "| N | K | M | 64x64 | 128x128 |\n|---|---|---|---|---|\n");
    for (si = 0; si < 3; si++)
        for (mi = 2; mi < 5; mi++)
            EMIT("| %zu | %zu | %zu | %.1f | %.1f |\n", shapes[si][0], shapes[si][1], Ms[mi], choice[si][mi][0],
                 choice[si][mi][1]);
    CK(cudaFree(lt_ws));
    CB(cublasLtDestroy(lt));
    CB(cublasDestroy(blas));
    CK(cudaStreamDestroy(s));
    if (out) {
        int lost = ferror(out);
        if (fclose(out) != 0 || lost) {
            fprintf(stderr, "w4a8_cuda_bench: cannot write %s\n", argv[1]);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv) { return output_finish("w4a8_cuda_bench", stdout, stderr, run(argc, argv)); }
