/* w4a8_bench: throughput of w4a8_layer_forward for every kernel this CPU
   runs, beside the scalar reference and a plain FP32 GEMM of the same shape.

       make bench                      the full table (a few minutes on 2 cores)
       ./build/w4a8_bench --quick      N = K = 4096 and group 128 only (seconds)

   Shapes (N, K) in {(4096, 4096), (11008, 4096), (4096, 11008)}, M in {1, 16,
   128, 512} tokens, 1 and 2 threads, groups 32, 128 and per channel,
   symmetric weights, per-token activations. Each number is the median of
   repeated calls after a warm-up; GFLOP/s counts 2 M N K, including the
   activation quantization the forward does. For M = 1, GB/s counts the
   weight bytes (N K / 2 codes + 4 bytes of scale per group and row, FP32:
   4 N K) and "cold" rotates through copies of the layer larger in total than
   the last-level cache, so each call reads its weights from DRAM.

   Then the quantization time of every method for one 4096 x 4096 layer
   with 512 calibration tokens (full runs only; a minute or two).

   Options: --quick, --llc-mib X (the LLC size, else read from sysfs),
   --cold-mib X (bytes of copies to rotate through, default 1.5 x LLC,
   at least 256 MiB). */
#define _POSIX_C_SOURCE 200809L
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "output.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#else
static void omp_set_num_threads(int n) { (void)n; }
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BENCH_AVX512 1
#endif

/* The targets, 2 threads, N = K = 4096 (M = 1 cold). */
static double target_for(size_t M) { return M == 1 ? 180.0 : M == 16 ? 650.0 : 800.0; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One timed call; `i` counts calls so cold runs can rotate copies. */
typedef void (*call_fn)(void *ctx, size_t i);

/* Median seconds per call: one warm-up call (or two), then as many calls
   as fit the budget, between min_reps and 21. */
static double time_median(call_fn f, void *ctx, double budget, int min_reps) {
    double t[21], t0;
    int reps, i;
    f(ctx, 0);
    t0 = now();
    f(ctx, 1);
    t0 = now() - t0;
    reps = t0 > 0 ? (int)(budget / t0) : 21;
    if (reps < min_reps) reps = min_reps;
    if (reps > 21) reps = 21;
    for (i = 0; i < reps; i++) {
        double s = now();
        f(ctx, (size_t)i + 2);
        t[i] = now() - s;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

/* ---- w4a8 ---------------------------------------------------------------- */

typedef struct w4a8_ctx {
    w4a8_layer **layers; /* copies; call i uses layers[i % count] */
    size_t count, M;
    const float *X;
    float *Y;
    void *work;
    size_t work_bytes;
} w4a8_ctx;

static void w4a8_call(void *p, size_t i) {
    w4a8_ctx *c = (w4a8_ctx *)p;
    w4a8_status st = w4a8_layer_forward(c->layers[i % c->count], c->X, c->M, c->Y, c->work, c->work_bytes);
    if (st != W4A8_OK) {
        fprintf(stderr, "w4a8_bench: forward: %s\n", w4a8_status_str(st));
        exit(1);
    }
}

/* ---- FP32 baseline --------------------------------------------------------- */

/* W packed in panels of 16 rows, P[N/16][K][16] (the last zero-padded);
   Y = X W^T with a 4-token x 32-row register tile: AVX-512 FMA when the CPU
   has it, plain C otherwise. */
static size_t fp32_bytes(size_t N, size_t K) { return (N + 15) / 16 * K * 16 * sizeof(float); }

static float *fp32_alloc(size_t N, size_t K) {
    void *p = NULL;
    if (posix_memalign(&p, 64, fp32_bytes(N, K)) != 0) {
        fprintf(stderr, "w4a8_bench: out of memory\n");
        exit(1);
    }
    return (float *)p;
}

static float *fp32_pack(const float *W, size_t N, size_t K) {
    size_t panels = (N + 15) / 16, p, k, r;
    float *P = fp32_alloc(N, K);
    memset(P, 0, fp32_bytes(N, K));
    for (p = 0; p < panels; p++)
        for (k = 0; k < K; k++)
            for (r = 0; r < 16 && p * 16 + r < N; r++) P[(p * K + k) * 16 + r] = W[(p * 16 + r) * K + k];
    return P;
}

#ifdef BENCH_AVX512
__attribute__((target("avx512f,fma"))) static void fp32_tile_avx512(const float *P, size_t N, size_t K,
                                                                    const float *X, size_t m0, size_t mb,
                                                                    size_t p0, int two, float *Y) {
    __m512 acc[4][2];
    const float *a = P + p0 * K * 16, *b = a + K * 16;
    size_t k, m, j;
    _Pragma("GCC unroll 4") for (m = 0; m < 4; m++) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
    for (k = 0; k < K; k++) {
        __m512 w0 = _mm512_load_ps(a + k * 16), w1 = two ? _mm512_load_ps(b + k * 16) : w0;
        _Pragma("GCC unroll 4") for (m = 0; m < 4; m++) if (m < mb) {
            __m512 x = _mm512_set1_ps(X[(m0 + m) * K + k]);
            acc[m][0] = _mm512_fmadd_ps(w0, x, acc[m][0]);
            acc[m][1] = _mm512_fmadd_ps(w1, x, acc[m][1]);
        }
    }
    for (m = 0; m < mb; m++)
        for (j = 0; j < (size_t)(two ? 2 : 1); j++) {
            float out[16];
            size_t r, n = (p0 + j) * 16;
            _mm512_storeu_ps(out, acc[m][j]);
            for (r = 0; r < 16 && n + r < N; r++) Y[(m0 + m) * N + n + r] = out[r];
        }
}
#endif

static void fp32_tile_c(const float *P, size_t N, size_t K, const float *X, size_t m0, size_t mb, size_t p0,
                        int two, float *Y) {
    size_t m, j, k, r;
    for (m = 0; m < mb; m++)
        for (j = 0; j < (size_t)(two ? 2 : 1); j++) {
            float acc[16];
            const float *a = P + (p0 + j) * K * 16, *x = X + (m0 + m) * K;
            memset(acc, 0, sizeof acc);
            for (k = 0; k < K; k++)
                for (r = 0; r < 16; r++) acc[r] += x[k] * a[k * 16 + r];
            for (r = 0; r < 16 && (p0 + j) * 16 + r < N; r++) Y[(m0 + m) * N + (p0 + j) * 16 + r] = acc[r];
        }
}

static void fp32_gemm(const float *P, size_t N, size_t K, const float *X, size_t M, float *Y, int avx512) {
    size_t panels = (N + 15) / 16, pairs = (panels + 1) / 2, mt = (M + 3) / 4;
    ptrdiff_t t;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (t = 0; t < (ptrdiff_t)(pairs * mt); t++) {
        size_t p0 = (size_t)t / mt * 2, m0 = (size_t)t % mt * 4, mb = M - m0 < 4 ? M - m0 : 4;
        int two = p0 + 1 < panels;
#ifdef BENCH_AVX512
        if (avx512) {
            fp32_tile_avx512(P, N, K, X, m0, mb, p0, two, Y);
            continue;
        }
#endif
        (void)avx512;
        fp32_tile_c(P, N, K, X, m0, mb, p0, two, Y);
    }
}

typedef struct fp32_ctx {
    float **panels;
    size_t count, N, K, M;
    const float *X;
    float *Y;
    int avx512;
} fp32_ctx;

static void fp32_call(void *p, size_t i) {
    fp32_ctx *c = (fp32_ctx *)p;
    fp32_gemm(c->panels[i % c->count], c->N, c->K, c->X, c->M, c->Y, c->avx512);
}

/* ---- the run ---------------------------------------------------------------- */

#define KERNELS 5 /* fp32 (slot 0), then w4a8_kernel SCALAR..AVX512_VNNI */
static const char *slot_name(int s) { return s == 0 ? "fp32" : w4a8_kernel_name((w4a8_kernel)s); }

typedef struct result {
    double hot, cold; /* GFLOP/s; cold 0 when not timed */
} result;

static size_t llc_from_sysfs(void) {
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    unsigned long v = 0;
    char unit = 0;
    if (!f) return 0;
    if (fscanf(f, "%lu%c", &v, &unit) < 1) v = 0;
    fclose(f);
    return (size_t)v * (unit == 'M' ? 1024 * 1024 : unit == 'K' ? 1024 : 1);
}

static void cpu_name(char *out, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    snprintf(out, n, "unknown CPU");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            snprintf(out, n, "%s", strchr(line, ':') + 2);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
}

/* DRAM read bandwidth in GB/s: threads read every cache line of a buffer
   larger than the LLC, best of 3 passes. The roof for M = 1 cold. */
static double dram_read_gbs(const uint64_t *buf, size_t words, int threads) {
    double best = 1e30;
    int r;
    omp_set_num_threads(threads);
    for (r = 0; r < 3; r++) {
        double t = now();
        uint64_t sum = 0;
        ptrdiff_t i;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : sum)
#endif
        for (i = 0; i < (ptrdiff_t)(words / 8); i++) sum += buf[8 * i]; /* one word per line: DRAM-bound */
        t = now() - t;
        if (t < best) best = t;
        if (sum == 42) printf(" "); /* keep the sum */
    }
    return (double)(words * sizeof(uint64_t)) / best * 1e-9;
}

/* How many copies of `bytes` make `cold` bytes, at least 2. */
static size_t copies_for(size_t bytes, size_t cold) { return cold / bytes + 2; }

/* Seconds each method takes to quantize one 4096 x 4096 layer from 512
   calibration tokens (group 128, 2 threads, no report: no output loss). */
static void bench_methods(void) {
    static const struct { const char *name; w4a8_method method; int gptq; } rows[] = {
        { "rtn", W4A8_METHOD_RTN, 0 },          { "smoothquant", W4A8_METHOD_SMOOTHQUANT, 0 },
        { "awq", W4A8_METHOD_AWQ, 0 },          { "gptq", W4A8_METHOD_GPTQ, 0 },
        { "fptq", W4A8_METHOD_FPTQ, 0 },        { "smoothquant+gptq", W4A8_METHOD_SMOOTHQUANT, 1 },
        { "awq+gptq", W4A8_METHOD_AWQ, 1 },     { "fptq+gptq", W4A8_METHOD_FPTQ, 1 },
        { "auto", W4A8_METHOD_AUTO, 0 },
    };
    enum { N = 4096, K = 4096, T = 512 };
    float *W = (float *)malloc((size_t)N * K * sizeof(float)), *X = (float *)malloc((size_t)T * K * sizeof(float));
    uint64_t seed = 777;
    w4a8_calib *calib = NULL;
    w4a8_linear lin;
    w4a8_status st;
    size_t k, r;
    double t0;
    if (!W || !X) return;
    for (k = 0; k < (size_t)N * K; k++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        W[k] = (float)((double)(seed >> 40) / 8388608.0 - 1.0) * 0.05f;
    }
    for (k = 0; k < (size_t)T * K; k++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        X[k] = (float)((double)(seed >> 40) / 8388608.0 - 1.0) * (k % K < 4 ? 60.0f : 1.0f); /* 4 outlier channels */
    }
    omp_set_num_threads(2);
    printf("\nQuantization time, one %dx%d layer, %d calibration tokens, group 128, 2 threads:\n", N, K, T);
    t0 = now();
    st = w4a8_calib_create(K, 1, T, &calib);
    if (st == W4A8_OK) st = w4a8_calib_add(calib, X, T);
    printf("%-18s %8.2f s\n", "calibration", now() - t0);
    lin.W = W, lin.N = N, lin.bias = NULL, lin.skip_clip = 0;
    for (r = 0; st == W4A8_OK && r < sizeof rows / sizeof rows[0]; r++) {
        w4a8_config cfg;
        w4a8_layer *layer = NULL;
        w4a8_config_init(&cfg);
        cfg.method = rows[r].method;
        cfg.gptq_weights = rows[r].gptq;
        t0 = now();
        st = w4a8_quantize_linears(&lin, 1, K, calib, &cfg, &layer, NULL);
        printf("%-18s %8.2f s\n", rows[r].name, now() - t0);
        w4a8_layer_free(layer);
        fprintf(stderr, ".");
    }
    if (st != W4A8_OK) printf("quantization failed: %s\n", w4a8_status_str(st));
    w4a8_calib_free(calib);
    free(W);
    free(X);
}

static int run(int argc, char **argv) {
    static const size_t all_shapes[3][2] = { { 4096, 4096 }, { 11008, 4096 }, { 4096, 11008 } };
    static const size_t all_Ms[4] = { 1, 16, 128, 512 };
    static const size_t all_groups[3] = { 32, 128, W4A8_PER_CHANNEL };
    static const int all_threads[2] = { 1, 2 };
    enum { SCALAR_ROWS = 64 };
    int quick = 0, i, avx512 = 0;
    size_t llc = 0, cold = 0, nshapes = 3, ngroups = 3, s, gi, mi, ti;
    double budget, dram[2];
    result res[3][3][KERNELS][2][4]; /* shape, group, slot, threads, M (fp32: group 0) */
    char cpu[128];
    w4a8_kernel best = W4A8_KERNEL_SCALAR;
    double t_start = now();

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--llc-mib") == 0 && i + 1 < argc) llc = (size_t)atol(argv[++i]) << 20;
        else if (strcmp(argv[i], "--cold-mib") == 0 && i + 1 < argc) cold = (size_t)atol(argv[++i]) << 20;
        else {
            fprintf(stderr, "usage: %s [--quick] [--llc-mib X] [--cold-mib X]\n", argv[0]);
            return 2;
        }
    }
    if (!llc) llc = llc_from_sysfs();
    if (!llc) llc = 32u << 20;
    if (!cold) cold = llc + llc / 2 > (256u << 20) ? llc + llc / 2 : 256u << 20;
    if (quick) {
        nshapes = 1;
        ngroups = 1;
        cold = 256u << 20; /* seconds, not minutes: may be warmer than a full run's cold */
    }
    budget = quick ? 0.05 : 0.25;
#ifdef BENCH_AVX512
    __builtin_cpu_init();
    avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
    w4a8_kernel_resolve(W4A8_KERNEL_AUTO, &best);
    memset(res, 0, sizeof res);
    cpu_name(cpu, sizeof cpu);
    printf("w4a8_bench %s: %s, LLC %zu MiB, AUTO kernel %s, FP32 baseline %s\n", w4a8_version(), cpu, llc >> 20,
           w4a8_kernel_name(best), avx512 ? "AVX-512 FMA" : "plain C");
    printf("median of repeated w4a8_layer_forward calls after warm-up; M = 1 cold rotates %zu MiB of copies%s\n",
           cold >> 20, quick ? " (--quick: less than a full run)" : "");
    printf("scalar reference: timed on its first %d rows only (throughput per row is the same), fewer calls\n",
           SCALAR_ROWS);
    {
        size_t words = cold / sizeof(uint64_t), k;
        uint64_t *buf = (uint64_t *)malloc(words * sizeof(uint64_t));
        if (!buf) return 1;
        for (k = 0; k < words; k++) buf[k] = k;
        for (ti = 0; ti < 2; ti++) dram[ti] = dram_read_gbs(buf, words, all_threads[ti]);
        free(buf);
        printf("DRAM read: %.1f GB/s (1 thread), %.1f GB/s (2 threads); at 4.25 bits per weight (group 128)\n"
               "the M = 1 cold roof is %.0f GFLOP/s with 2 threads\n\n",
               dram[0], dram[1], dram[1] * 2.0 / (4.25 / 8.0));
    }

    for (s = 0; s < nshapes; s++) {
        size_t N = all_shapes[s][0], K = all_shapes[s][1], Mmax = 512, k;
        float *W = (float *)malloc(N * K * sizeof(float)), *X = (float *)malloc(Mmax * K * sizeof(float));
        float *Y = (float *)malloc(Mmax * N * sizeof(float));
        uint64_t seed = 12345 + s;
        size_t work_bytes = 0;
        void *work;
        for (k = 0; k < N * K; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            W[k] = (float)((double)(seed >> 40) / 8388608.0 - 1.0) * 0.05f;
        }
        for (k = 0; k < Mmax * K; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            X[k] = (float)((double)(seed >> 40) / 8388608.0 - 1.0);
        }
        /* FP32 */
        {
            fp32_ctx c;
            size_t cp, bytes = N * K * sizeof(float);
            c.count = copies_for(bytes, cold);
            c.panels = (float **)calloc(c.count, sizeof(float *));
            c.panels[0] = fp32_pack(W, N, K);
            c.N = N;
            c.K = K;
            c.X = X;
            c.Y = Y;
            c.avx512 = avx512;
            for (ti = 0; ti < 2; ti++) {
                omp_set_num_threads(all_threads[ti]);
                for (mi = 0; mi < 4; mi++) {
                    c.M = all_Ms[mi];
                    c.count = 1;
                    res[s][0][0][ti][mi].hot = 2e-9 * (double)(c.M * N * K) / time_median(fp32_call, &c, budget, 3);
                }
            }
            c.count = copies_for(bytes, cold);
            for (cp = 1; cp < c.count; cp++) {
                c.panels[cp] = fp32_alloc(N, K);
                memcpy(c.panels[cp], c.panels[0], fp32_bytes(N, K));
            }
            c.M = 1;
            for (ti = 0; ti < 2; ti++) {
                omp_set_num_threads(all_threads[ti]);
                res[s][0][0][ti][0].cold = 2e-9 * (double)(N * K) / time_median(fp32_call, &c, budget, 5);
            }
            for (cp = 0; cp < c.count; cp++) free(c.panels[cp]);
            free(c.panels);
            fprintf(stderr, ".");
        }
        for (gi = 0; gi < ngroups; gi++) {
            size_t G = quick ? 128 : all_groups[gi], Gl = G < K ? G : K, groups = (K + Gl - 1) / Gl;
            uint8_t *codes = (uint8_t *)malloc(N * K), *zeros = (uint8_t *)malloc(N * groups);
            float *scales = (float *)malloc(N * groups * sizeof(float));
            w4a8_layer_desc d;
            int slot;
            if (w4a8_quantize_rtn(W, N, K, G, 0, codes, scales, zeros) != W4A8_OK) return 1;
            memset(&d, 0, sizeof d);
            d.K = K;
            d.group_size = G;
            d.codes = codes;
            d.scales = scales;
            d.zeros = zeros;
            for (slot = W4A8_KERNEL_SCALAR; slot <= W4A8_KERNEL_AVX512_VNNI; slot++) {
                w4a8_kernel kernel = (w4a8_kernel)slot, got;
                w4a8_ctx c;
                size_t cp, bytes = N * ((K + 1) / 2) + N * groups * sizeof(float);
                int scalar = kernel == W4A8_KERNEL_SCALAR;
                if (w4a8_kernel_resolve(kernel, &got) != W4A8_OK) continue;
                d.N = scalar ? SCALAR_ROWS : N;
                d.kernel = kernel;
                c.count = scalar ? 1 : copies_for(bytes, cold);
                c.layers = (w4a8_layer **)calloc(c.count, sizeof *c.layers);
                if (w4a8_layer_create(&d, &c.layers[0]) != W4A8_OK) return 1;
                w4a8_layer_workspace_size(c.layers[0], Mmax, &work_bytes);
                work = malloc(work_bytes);
                c.X = X;
                c.Y = Y;
                c.work = work;
                c.work_bytes = work_bytes;
                for (ti = 0; ti < 2; ti++) {
                    omp_set_num_threads(all_threads[ti]);
                    for (mi = 0; mi < 4; mi++) {
                        size_t count = c.count;
                        c.M = all_Ms[mi];
                        c.count = 1;
                        res[s][gi][slot][ti][mi].hot = 2e-9 * (double)(c.M * d.N * K) /
                                                       time_median(w4a8_call, &c, scalar ? 0.0 : budget, 3);
                        c.count = count;
                    }
                }
                if (!scalar) {
                    for (cp = 1; cp < c.count; cp++)
                        if (w4a8_layer_create(&d, &c.layers[cp]) != W4A8_OK) return 1;
                    c.M = 1;
                    for (ti = 0; ti < 2; ti++) {
                        omp_set_num_threads(all_threads[ti]);
                        res[s][gi][slot][ti][0].cold = 2e-9 * (double)(N * K) / time_median(w4a8_call, &c, budget, 5);
                    }
                }
                for (cp = 0; cp < c.count; cp++) w4a8_layer_free(c.layers[cp]);
                free(c.layers);
                free(work);
                fprintf(stderr, ".");
            }
            free(codes);
            free(zeros);
            free(scales);
        }
        free(W);
        free(X);
        free(Y);
    }
    fprintf(stderr, "\n");

    printf("%6s %6s %4s %3s %6s %-12s %9s %8s %7s %8s %10s %8s %7s\n", "N", "K", "M", "thr", "group", "kernel",
           "GFLOP/s", "x scalar", "x fp32", "GB/s", "cold GF/s", "cold GB/s", "target");
    for (s = 0; s < nshapes; s++)
        for (mi = 0; mi < 4; mi++)
            for (ti = 0; ti < 2; ti++) {
                size_t N = all_shapes[s][0], K = all_shapes[s][1], M = all_Ms[mi];
                int slot, targeted = s == 0 && all_threads[ti] == 2;
                for (gi = 0; gi < ngroups; gi++) {
                    size_t G = quick ? 128 : all_groups[gi], Gl = G < K ? G : K, groups = (K + Gl - 1) / Gl;
                    double wbytes = (double)N * (double)((K + 1) / 2) + 4.0 * (double)(N * groups);
                    char gname[16];
                    snprintf(gname, sizeof gname, G == W4A8_PER_CHANNEL ? "chan" : "%zu", G);
                    for (slot = gi ? 1 : 0; slot < KERNELS; slot++) {
                        const result *r = &res[s][slot ? gi : 0][slot][ti][mi];
                        double sc = res[s][gi][W4A8_KERNEL_SCALAR][ti][mi].hot, fp = res[s][0][0][ti][mi].hot;
                        double b = slot ? wbytes : 4.0 * (double)(N * K), flop = 2.0 * (double)(N * K);
                        if (r->hot == 0) continue;
                        printf("%6zu %6zu %4zu %3d %6s %-12s %9.1f", N, K, M, all_threads[ti], slot ? gname : "-",
                               slot_name(slot), r->hot);
                        if (slot && sc > 0) printf(" %8.1f", r->hot / sc);
                        else printf(" %8s", "-");
                        printf(" %7.2f", r->hot / fp);
                        if (M == 1) printf(" %8.1f", r->hot / flop * b);
                        else printf(" %8s", "-");
                        if (r->cold > 0) printf(" %10.1f %8.1f", r->cold, r->cold / flop * b);
                        else printf(" %10s %8s", "-", "-");
                        if (targeted && slot > 1 && (quick || G == 128)) printf(" %7.0f", target_for(M));
                        printf("\n");
                    }
                }
            }
    if (!quick) bench_methods();
    {
        /* The last lines: the best SIMD kernel per M, N = K = 4096, 2 threads, group 128 (M = 1 cold). */
        double bestv[4], roof = dram[1] * 2.0 / (4.25 / 8.0);
        int arg[4];
        size_t g128 = quick ? 0 : 1;
        for (mi = 0; mi < 4; mi++) {
            int slot;
            bestv[mi] = 0;
            arg[mi] = W4A8_KERNEL_SCALAR;
            for (slot = W4A8_KERNEL_SCALAR; slot < KERNELS; slot++) {
                const result *r = &res[0][g128][slot][1][mi];
                double v = mi == 0 && slot != W4A8_KERNEL_SCALAR ? r->cold : r->hot;
                if (v > bestv[mi]) {
                    bestv[mi] = v;
                    arg[mi] = slot;
                }
            }
        }
        printf("\nTargets (issue 5, set on AMD Zen 5 with about 60 GB/s of DRAM): N = K = 4096, 2 threads,\n"
               "group 128; M = 1 cold >= 180, M = 16 >= 650, M >= 128 >= 800 GFLOP/s. Here M = 1 cold reaches\n"
               "%.0f%% of this machine's DRAM roof (%.0f GFLOP/s). Best kernel per M:\n",
               100.0 * bestv[0] / roof, roof);
        for (mi = 0; mi < 4; mi++)
            printf("M=%zu best_gflops=%.1f kernel=%s target=%.0f\n", all_Ms[mi], bestv[mi], slot_name(arg[mi]),
                   target_for(all_Ms[mi]));
    }
    fprintf(stderr, "w4a8_bench: %.0f s\n", now() - t_start);
    return 0;
}

int main(int argc, char **argv) { return output_finish("w4a8_bench", stdout, stderr, run(argc, argv)); }
