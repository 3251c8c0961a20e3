/* w4a8_bench: throughput of w4a8_layer_forward for every kernel this CPU
   runs, measured against the machine itself and beside OpenBLAS FP32.

       make bench                      peaks, the comparison, the full table
       ./build/w4a8_bench --compare    peaks and the comparison only (minutes)
       ./build/w4a8_bench --quick      N = K = 4096 and group 128 only (seconds)
       make compare                    the comparison with ggml beside it

   First the machine: the int8 multiply-add peak of each kernel's own
   instruction chain (AVX2: 8 vpmaddubsw + vpaddw per vpmaddwd + vpaddd, as
   the kernel issues them; VNNI: vpdpbusd) in a loop with no loads on all
   threads, the FP32 FMA peak the same way, and the DRAM read roof. Every
   result is printed as a fraction of the roof that bounds it.

   The comparison (N = K = 4096, 2 threads, groups 32 and 128, M in {1 cold,
   1, 16, 128, 512}): each of --runs runs (default 5) allocates the layers
   afresh and times the median of repeated calls; the table gives min,
   median and max over the runs and max/min. --alloc malloc|2m|huge places
   every large allocation (layer streams, activations) as malloc does, on a
   2 MiB boundary, or on a 2 MiB boundary with transparent huge pages
   (madvise), plus --offset bytes: the knobs of the run-to-run variance study.

   The full table: shapes (N, K) in {(4096, 4096), (11008, 4096), (4096,
   11008)}, M in {1, 16, 128, 512}, 1 and 2 threads, groups 32, 128 and per
   channel, symmetric weights, per-token activations, the scalar reference and
   OpenBLAS sgemm (the BLAS a user would otherwise call; its core and thread
   count are printed). GFLOP/s counts 2 M N K, including the activation
   quantization the forward does. For M = 1, GB/s counts the weight bytes
   (N K / 2 codes + 4 bytes of scale per group and row, FP32: 4 N K) and
   "cold" rotates through copies of the layer larger in total than the
   last-level cache, so each call reads its weights from DRAM. Then the
   quantization time of every method for one 4096 x 4096 layer with 512
   calibration tokens.

   Options: --quick, --compare, --kernel NAME (compare that kernel only,
   e.g. avx2; FP32's roof is then the AVX2 FMA peak), --runs R, --cpu-time
   (CPU time per thread instead of wall time: see clock_s), --alloc MODE, --offset BYTES,
   --llc-mib X (the LLC size, else read from sysfs), --cold-mib X (bytes of
   copies to rotate through, default 1.5 x LLC, at least 256 MiB). */
#define _GNU_SOURCE /* madvise(MADV_HUGEPAGE) */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* ---- allocation ------------------------------------------------------------ */

/* Every allocation of at least 1 MiB: as malloc places it (align 0), or on
   an `align` boundary plus `offset` bytes, with huge pages when asked. The
   base pointer sits just before the block for the free. */
static size_t bench_align, bench_offset;
static int bench_huge;

static void *bench_malloc(size_t n) {
    int big = n >= (1u << 20) && bench_align;
    size_t a = big ? bench_align : 16, off = big ? bench_offset : 0;
    void *base = NULL;
    unsigned char *p;
    if (posix_memalign(&base, a, n + a + off) != 0) return NULL;
    if (big && bench_huge) madvise(base, n + a + off, MADV_HUGEPAGE);
    p = (unsigned char *)base + a + off;
    memcpy(p - sizeof base, &base, sizeof base);
    return p;
}

static void bench_free(void *p) {
    void *base;
    if (!p) return;
    memcpy(&base, (unsigned char *)p - sizeof base, sizeof base);
    free(base);
}

#define W4A8_MALLOC(sz) bench_malloc(sz)
#define W4A8_FREE(p) bench_free(p)
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "output.h"

#ifdef _OPENMP
#include <omp.h>
#else
static void omp_set_num_threads(int n) { (void)n; }
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BENCH_X86 1
#endif

/* The targets, 2 threads, N = K = 4096 (M = 1 cold). */
static double target_for(size_t M) { return M == 1 ? 180.0 : M == 16 ? 650.0 : 800.0; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* --cpu-time: the clock of every measurement is the process's CPU time over
   the thread count, the time each thread would take with a core to itself:
   on a shared machine the estimate of a quiet one (use OMP_WAIT_POLICY=passive
   so that waiting threads do not count; memory stays shared). */
static int bench_cpu_time, bench_threads = 1;

static double clock_s(void) {
    struct timespec t;
    if (!bench_cpu_time) return now();
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return ((double)t.tv_sec + (double)t.tv_nsec * 1e-9) / bench_threads;
}

/* The thread count of w4a8 (OpenMP), OpenBLAS and the clock. */
static void set_threads(int n) {
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    bench_threads = n;
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
    t0 = clock_s();
    f(ctx, 1);
    t0 = clock_s() - t0;
    reps = t0 > 0 ? (int)(budget / t0) : 21;
    if (reps < min_reps) reps = min_reps;
    if (reps > 21) reps = 21;
    for (i = 0; i < reps; i++) {
        double s = clock_s();
        f(ctx, (size_t)i + 2);
        t[i] = clock_s() - s;
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

/* ---- FP32 baseline: OpenBLAS ---------------------------------------------- */

/* Y[M][N] = X[M][K] W[N][K]^T with sgemm; call i uses Ws[i % count]. */
typedef struct fp32_ctx {
    float **Ws;
    size_t count, N, K, M;
    const float *X;
    float *Y;
} fp32_ctx;

static void fp32_call(void *p, size_t i) {
    fp32_ctx *c = (fp32_ctx *)p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->M, (int)c->N, (int)c->K, 1.0f, c->X, (int)c->K,
                c->Ws[i % c->count], (int)c->K, 0.0f, c->Y, (int)c->N);
}

static float *fp32_copy(const float *W, size_t n) {
    float *p = (float *)bench_malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "w4a8_bench: out of memory\n");
        exit(1);
    }
    memcpy(p, W, n * sizeof(float));
    return p;
}

/* ---- the machine's peaks ----------------------------------------------------- */

/* Each loop runs `reps` times a body of independent operations on registers
   only, and returns the operations it did (2 per multiply-add). The bodies
   are inline assembly: compilers move, merge and copy intrinsics of this
   kind (GCC 12 spilled the AVX2 chain and copied every vpdpbusd accumulator
   through a second register), which would measure the compiler, not the core. */
#ifdef BENCH_X86
#define OPAQUE(v) __asm__ volatile("" : "+v"(v))

/* The AVX2 kernel's chain (w4a8__chunk_avx2) for 3 tokens x 16 rows: per
   token and piece 4 vpmaddubsw, each added into an int16 sum with vpaddw;
   every 4 pieces each sum goes through vpmaddwd and vpaddd. */
#define PIECE_AVX2(P0, P1, X0, X1)                                                                                   \
    __asm__ volatile("vpmaddubsw %[x0], %[w0], %[t]\n\tvpaddw %[t], %[p0], %[p0]\n\t"                                 \
                     "vpmaddubsw %[x0], %[w1], %[t]\n\tvpaddw %[t], %[p1], %[p1]\n\t"                                 \
                     "vpmaddubsw %[x1], %[w2], %[t]\n\tvpaddw %[t], %[p0], %[p0]\n\t"                                 \
                     "vpmaddubsw %[x1], %[w3], %[t]\n\tvpaddw %[t], %[p1], %[p1]"                                      \
                     : [p0] "+x"(P0), [p1] "+x"(P1), [t] "=&x"(t)                                                    \
                     : [w0] "x"(w0), [w1] "x"(w1), [w2] "x"(w2), [w3] "x"(w3), [x0] "x"(X0), [x1] "x"(X1))
#define WIDEN_AVX2(P)                                                                                                \
    __asm__ volatile("vpmaddwd %[one], %[p], %[t]\n\tvpaddd %[t], %[acc], %[acc]"                                     \
                     : [acc] "+x"(acc), [t] "=&x"(t)                                                                 \
                     : [p] "x"(P), [one] "x"(one))

__attribute__((target("avx2"))) static double chain_avx2(long reps) {
    __m256i w0 = _mm256_set1_epi8(3), w1 = _mm256_set1_epi8(5), w2 = _mm256_set1_epi8(7), w3 = _mm256_set1_epi8(9);
    __m256i x0 = _mm256_set1_epi8(-2), x1 = _mm256_set1_epi8(1), one = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256(), t;
    long r;
    int c;
    for (r = 0; r < reps; r++) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0;
        _Pragma("GCC unroll 4") for (c = 0; c < 4; c++) {
            PIECE_AVX2(a0, a1, x0, x1);
            PIECE_AVX2(b0, b1, x1, x0);
            PIECE_AVX2(c0, c1, x0, x1);
        }
        WIDEN_AVX2(a0);
        WIDEN_AVX2(a1);
        WIDEN_AVX2(b0);
        WIDEN_AVX2(b1);
        WIDEN_AVX2(c0);
        WIDEN_AVX2(c1);
    }
    OPAQUE(acc);
    return (double)reps * 48 * 32 * 2;
}

/* 12 independent accumulators c[0..11] of one instruction `op` (assembly):
   c[i] = op(c[i], a, b). */
#define TWELVE(op, c, a, b)                                                                                          \
    __asm__ volatile(op " %13, %12, %0\n\t" op " %13, %12, %1\n\t" op " %13, %12, %2\n\t" op " %13, %12, %3\n\t"     \
                     op " %13, %12, %4\n\t" op " %13, %12, %5\n\t" op " %13, %12, %6\n\t" op " %13, %12, %7\n\t"     \
                     op " %13, %12, %8\n\t" op " %13, %12, %9\n\t" op " %13, %12, %10\n\t" op " %13, %12, %11\n\t"   \
                     : "+v"(c[0]), "+v"(c[1]), "+v"(c[2]), "+v"(c[3]), "+v"(c[4]), "+v"(c[5]), "+v"(c[6]),         \
                       "+v"(c[7]), "+v"(c[8]), "+v"(c[9]), "+v"(c[10]), "+v"(c[11])                                \
                     : "v"(a), "v"(b))

/* A loop of TWELVE on registers of `type`, a and b broadcast from `av`,
   `bv`; `macs` multiply-adds per instruction. */
#define TWELVE_LOOP(name, isa, type, set1, av, bv, op, macs)                                                         \
    __attribute__((target(isa))) static double name(long reps) {                                                     \
        type a = set1(av), b = set1(bv), acc[12];                                                                    \
        long r;                                                                                                      \
        int i;                                                                                                       \
        for (i = 0; i < 12; i++) acc[i] = set1(0);                                                                   \
        for (r = 0; r < reps; r++) TWELVE(op, acc, a, b);                                                            \
        return (double)reps * 12 * (macs) * 2;                                                                       \
    }

/* vpdpbusd on ymm (AVX-VNNI, the VEX form) and zmm (AVX-512 VNNI); FP32 FMA
   acc += a * b, small enough to stay normal for 10^9 steps. */
TWELVE_LOOP(chain_avx_vnni, "avx2,avxvnni", __m256i, _mm256_set1_epi8, 3, -2, "%{vex%} vpdpbusd", 32)
TWELVE_LOOP(chain_avx512, "avx512f,avx512bw,avx512vnni", __m512i, _mm512_set1_epi8, 3, -2, "vpdpbusd", 64)
TWELVE_LOOP(fma_avx2, "avx2,fma", __m256, _mm256_set1_ps, 1e-3f, 1e-3f, "vfmadd231ps", 8)
TWELVE_LOOP(fma_avx512, "avx512f", __m512, _mm512_set1_ps, 1e-3f, 1e-3f, "vfmadd231ps", 16)
#endif

/* G(FL)OP/s of `loop` on `threads` threads, best of 5 passes of ~0.1 s. */
static double peak(double (*loop)(long), int threads) {
    long reps = 1000;
    double best = 0, t, ops = 0;
    int pass, saved = bench_threads;
    bench_threads = 1;
    for (;;) { /* calibrate on one thread */
        t = clock_s();
        loop(reps);
        t = clock_s() - t;
        if (t > 0.02) break;
        reps *= 4;
    }
    reps = (long)((double)reps * 0.1 / t) + 1;
    bench_threads = threads;
    for (pass = 0; pass < 5; pass++) {
        int i;
        t = clock_s();
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) reduction(+ : ops)
#endif
        for (i = 0; i < threads; i++) ops += loop(reps);
        t = clock_s() - t;
        if (ops / t * 1e-9 > best) best = ops / t * 1e-9;
        ops = 0;
    }
    bench_threads = saved;
    return best;
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
    set_threads(threads);
    for (r = 0; r < 3; r++) {
        double t = clock_s();
        uint64_t sum = 0;
        ptrdiff_t i;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : sum)
#endif
        for (i = 0; i < (ptrdiff_t)(words / 8); i++) sum += buf[8 * i]; /* one word per line: DRAM-bound */
        t = clock_s() - t;
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

/* ---- the machine, and the comparison against it ------------------------------ */

/* --kernel: the one SIMD kernel the comparison times (AUTO: every one this
   CPU runs); AVX2 and AVX-VNNI also take the AVX2 FMA peak as FP32's roof. */
static w4a8_kernel bench_only = W4A8_KERNEL_AUTO;

typedef struct machine {
    double chain[KERNELS][2]; /* GOPS of each kernel's chain (w4a8_kernel slot), 1 and 2 threads; 0: not run */
    double fma[2];            /* FP32 FMA GFLOP/s, 1 and 2 threads */
    const char *fma_isa;
    double dram[2];           /* read GB/s, 1 and 2 threads */
} machine;

static void machine_measure(machine *mc) {
    int t;
    memset(mc, 0, sizeof *mc);
    mc->fma_isa = "none";
#ifdef BENCH_X86
    __builtin_cpu_init();
    for (t = 0; t < 2; t++) {
        w4a8_kernel got;
        if (w4a8_kernel_resolve(W4A8_KERNEL_AVX2, &got) == W4A8_OK) mc->chain[W4A8_KERNEL_AVX2][t] = peak(chain_avx2, t + 1);
        if (w4a8_kernel_resolve(W4A8_KERNEL_AVX_VNNI, &got) == W4A8_OK)
            mc->chain[W4A8_KERNEL_AVX_VNNI][t] = peak(chain_avx_vnni, t + 1);
        if (w4a8_kernel_resolve(W4A8_KERNEL_AVX512_VNNI, &got) == W4A8_OK)
            mc->chain[W4A8_KERNEL_AVX512_VNNI][t] = peak(chain_avx512, t + 1);
        if (__builtin_cpu_supports("avx512f") && bench_only != W4A8_KERNEL_AVX2 && bench_only != W4A8_KERNEL_AVX_VNNI) {
            mc->fma[t] = peak(fma_avx512, t + 1);
            mc->fma_isa = "AVX-512";
        } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            mc->fma[t] = peak(fma_avx2, t + 1);
            mc->fma_isa = "AVX2";
        }
    }
#else
    (void)t;
#endif
}

static void machine_print(const machine *mc) {
    int k;
    printf("\nThis machine (loops with no loads on 1 and 2 threads, best of 5; DRAM: one read per line):\n");
    for (k = W4A8_KERNEL_AVX2; k < KERNELS; k++)
        if (mc->chain[k][0] > 0)
            printf("  int8 chain of %-12s %7.0f GOPS (1 thread) %7.0f GOPS (2 threads)\n", w4a8_kernel_name((w4a8_kernel)k),
                   mc->chain[k][0], mc->chain[k][1]);
    printf("  FP32 FMA (%s)          %7.0f GFLOP/s   %7.0f GFLOP/s\n", mc->fma_isa, mc->fma[0], mc->fma[1]);
    printf("  DRAM read               %7.1f GB/s      %7.1f GB/s\n", mc->dram[0], mc->dram[1]);
}

#define MAX_RUNS 15
#define CMP_SLOTS 4 /* fp32, then the three x86 SIMD kernels */
static const w4a8_kernel cmp_kernels[CMP_SLOTS] = { W4A8_KERNEL_SCALAR, W4A8_KERNEL_AVX2, W4A8_KERNEL_AVX_VNNI,
                                                    W4A8_KERNEL_AVX512_VNNI };

/* Median, min and max of n runs; sorts v. */
static void spread_of(double *v, int n, double *med, double *lo, double *hi) {
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    *lo = v[0];
    *hi = v[n - 1];
}

static void fill_uniform(float *x, size_t n, uint64_t seed, float scale) {
    size_t k;
    for (k = 0; k < n; k++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[k] = (float)((double)(seed >> 40) / 8388608.0 - 1.0) * scale;
    }
}

/* The targeted cells: N = K = 4096, 2 threads, groups 32 and 128, M = 1 cold,
   1, 16, 128, 512; each run allocates everything it times afresh, the
   kernels and OpenBLAS taking turns within a run. */
static void compare(const machine *mc, int runs, size_t cold, double budget) {
    enum { N = 4096, K = 4096, MMAX = 512, CELLS = 5 };
    static const size_t Ms[CELLS] = { 1, 1, 16, 128, 512 }; /* the first is cold */
    static const size_t Gs[2] = { 32, 128 };
    static double v[CMP_SLOTS][2][CELLS][MAX_RUNS];
    float *W = (float *)bench_malloc((size_t)N * K * sizeof(float)), *X = (float *)bench_malloc(MMAX * K * sizeof(float));
    float *Y = (float *)bench_malloc(MMAX * N * sizeof(float)), *scales[2];
    uint8_t *codes[2], *zeros[2];
    int r, slot, gi, ci;
    if (!W || !X || !Y) exit(1);
    fill_uniform(W, (size_t)N * K, 12345, 0.05f);
    fill_uniform(X, MMAX * K, 777, 1.0f);
    for (gi = 0; gi < 2; gi++) {
        codes[gi] = (uint8_t *)malloc((size_t)N * K);
        zeros[gi] = (uint8_t *)malloc(N * (K / Gs[gi]));
        scales[gi] = (float *)malloc(N * (K / Gs[gi]) * sizeof(float));
        if (w4a8_quantize_rtn(W, N, K, Gs[gi], 0, codes[gi], scales[gi], zeros[gi]) != W4A8_OK) exit(1);
    }
    memset(v, 0, sizeof v);
    set_threads(2);
    fprintf(stderr, "comparison, %d runs: ", runs);
    for (r = 0; r < runs; r++) {
        for (slot = 1; slot < CMP_SLOTS; slot++)
            for (gi = 0; gi < 2; gi++) {
                w4a8_kernel got;
                w4a8_layer_desc d;
                w4a8_ctx c;
                size_t cp, work_bytes = 0;
                if (w4a8_kernel_resolve(cmp_kernels[slot], &got) != W4A8_OK) continue;
                if (bench_only != W4A8_KERNEL_AUTO && cmp_kernels[slot] != bench_only) continue;
                memset(&d, 0, sizeof d);
                d.N = N, d.K = K, d.group_size = Gs[gi], d.kernel = cmp_kernels[slot];
                d.codes = codes[gi], d.scales = scales[gi], d.zeros = zeros[gi];
                c.count = copies_for((size_t)N * K / 2 + N * (K / Gs[gi]) * 4, cold);
                c.layers = (w4a8_layer **)calloc(c.count, sizeof *c.layers);
                for (cp = 0; cp < c.count; cp++)
                    if (w4a8_layer_create(&d, &c.layers[cp]) != W4A8_OK) exit(1);
                w4a8_layer_workspace_size(c.layers[0], MMAX, &work_bytes);
                c.work = bench_malloc(work_bytes);
                c.work_bytes = work_bytes;
                c.X = X;
                c.Y = Y;
                for (ci = 0; ci < CELLS; ci++) {
                    size_t count = c.count;
                    c.M = Ms[ci];
                    if (ci) c.count = 1;
                    v[slot][gi][ci][r] = 2e-9 * (double)(c.M * N * K) / time_median(w4a8_call, &c, budget, ci ? 3 : 5);
                    c.count = count;
                }
                for (cp = 0; cp < c.count; cp++) w4a8_layer_free(c.layers[cp]);
                free(c.layers);
                bench_free(c.work);
            }
        {
            fp32_ctx c;
            size_t cp;
            c.count = copies_for((size_t)N * K * sizeof(float), cold);
            c.Ws = (float **)calloc(c.count, sizeof(float *));
            for (cp = 0; cp < c.count; cp++) c.Ws[cp] = fp32_copy(W, (size_t)N * K);
            c.N = N, c.K = K, c.X = X, c.Y = Y;
            for (ci = 0; ci < CELLS; ci++) {
                size_t count = c.count;
                c.M = Ms[ci];
                if (ci) c.count = 1;
                v[0][0][ci][r] = 2e-9 * (double)(c.M * N * K) / time_median(fp32_call, &c, budget, ci ? 3 : 5);
                c.count = count;
            }
            for (cp = 0; cp < c.count; cp++) bench_free(c.Ws[cp]);
            free(c.Ws);
        }
        fprintf(stderr, ".");
    }
    fprintf(stderr, "\n");
    printf("\nComparison: N = K = 4096, 2 threads, GFLOP/s over %d runs (each allocates afresh); roof: the\n"
           "kernel's int8 chain (fp32: FMA peak), M = 1 cold: DRAM read at 4 + 32/G bits per weight (fp32: 32)\n",
           runs);
    printf("cmp %-12s %5s %4s %9s %9s %9s %7s %7s %s\n", "kernel", "group", "M", "median", "min", "max", "max/min",
           "of roof", "roof");
    for (slot = 0; slot < CMP_SLOTS; slot++)
        for (gi = 0; gi < (slot ? 2 : 1); gi++)
            for (ci = 0; ci < CELLS; ci++) {
                double med, lo, hi, roof, bits = slot ? 4.0 + 32.0 / (double)Gs[gi] : 32.0;
                const char *roof_name = ci == 0 ? "DRAM" : slot ? "chain" : "FMA";
                char gname[8];
                if (v[slot][gi][ci][0] == 0) continue;
                spread_of(v[slot][gi][ci], runs, &med, &lo, &hi);
                roof = ci == 0 ? mc->dram[1] * 2.0 / (bits / 8.0) : slot ? mc->chain[cmp_kernels[slot]][1] : mc->fma[1];
                snprintf(gname, sizeof gname, slot ? "%zu" : "-", Gs[gi]);
                printf("cmp %-12s %5s %4s %9.1f %9.1f %9.1f %7.3f %6.0f%% %s\n",
                       slot ? w4a8_kernel_name(cmp_kernels[slot]) : "openblas-fp32", gname,
                       ci == 0 ? "1c" : ci == 1 ? "1" : Ms[ci] == 16 ? "16" : Ms[ci] == 128 ? "128" : "512", med, lo, hi,
                       hi / lo, roof > 0 ? 100.0 * med / roof : 0.0, roof_name);
            }
    for (gi = 0; gi < 2; gi++) {
        free(codes[gi]);
        free(zeros[gi]);
        free(scales[gi]);
    }
    bench_free(W);
    bench_free(X);
    bench_free(Y);
}

static int kernel_named(const char *name, w4a8_kernel *out) {
    int k;
    for (k = W4A8_KERNEL_AUTO; k <= W4A8_KERNEL_NEON; k++)
        if (strcmp(name, w4a8_kernel_name((w4a8_kernel)k)) == 0) {
            *out = (w4a8_kernel)k;
            return 1;
        }
    return 0;
}

static int run(int argc, char **argv) {
    static const size_t all_shapes[3][2] = { { 4096, 4096 }, { 11008, 4096 }, { 4096, 11008 } };
    static const size_t all_Ms[4] = { 1, 16, 128, 512 };
    static const size_t all_groups[3] = { 32, 128, W4A8_PER_CHANNEL };
    static const int all_threads[2] = { 1, 2 };
    enum { SCALAR_ROWS = 64 };
    int quick = 0, compare_only = 0, runs = 5, i;
    size_t llc = 0, cold = 0, nshapes = 3, ngroups = 3, s, gi, mi, ti;
    double budget, dram[2];
    machine mach;
    result res[3][3][KERNELS][2][4]; /* shape, group, slot, threads, M (fp32: group 0) */
    char cpu[128];
    w4a8_kernel best = W4A8_KERNEL_SCALAR;
    double t_start = now();

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--llc-mib") == 0 && i + 1 < argc) llc = (size_t)atol(argv[++i]) << 20;
        else if (strcmp(argv[i], "--cold-mib") == 0 && i + 1 < argc) cold = (size_t)atol(argv[++i]) << 20;
        else if (strcmp(argv[i], "--compare") == 0) compare_only = 1;
        else if (strcmp(argv[i], "--cpu-time") == 0) bench_cpu_time = 1;
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--kernel") == 0 && i + 1 < argc && kernel_named(argv[i + 1], &bench_only)) i++;
        else if (strcmp(argv[i], "--offset") == 0 && i + 1 < argc) bench_offset = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--alloc") == 0 && i + 1 < argc && strcmp(argv[i + 1], "malloc") == 0) i++;
        else if (strcmp(argv[i], "--alloc") == 0 && i + 1 < argc && strcmp(argv[i + 1], "2m") == 0)
            bench_align = 2u << 20, i++;
        else if (strcmp(argv[i], "--alloc") == 0 && i + 1 < argc && strcmp(argv[i + 1], "huge") == 0)
            bench_align = 2u << 20, bench_huge = 1, i++;
        else {
            fprintf(stderr,
                    "usage: %s [--quick] [--compare] [--kernel NAME] [--runs R] [--cpu-time] [--alloc malloc|2m|huge] [--offset BYTES]\n"
                    "       [--llc-mib X] [--cold-mib X]\n",
                    argv[0]);
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
    if (runs < 1 || runs > MAX_RUNS) runs = 5;
    w4a8_kernel_resolve(W4A8_KERNEL_AUTO, &best);
    memset(res, 0, sizeof res);
    cpu_name(cpu, sizeof cpu);
    printf("w4a8_bench %s: %s, LLC %zu MiB, AUTO kernel %s\nFP32: %s, core %s, %d threads at most\n",
           w4a8_version(), cpu, llc >> 20, w4a8_kernel_name(best), openblas_get_config(), openblas_get_corename(),
           openblas_get_num_threads());
    printf("clock: %s; large allocations: %s, offset %zu bytes\n",
           bench_cpu_time ? "process CPU time / threads (--cpu-time)" : "wall",
           !bench_align ? "as malloc places them" : bench_huge ? "2 MiB aligned, huge pages (madvise)" : "2 MiB aligned",
           bench_offset);
    {
        size_t words = cold / sizeof(uint64_t), k;
        uint64_t *buf = (uint64_t *)malloc(words * sizeof(uint64_t));
        if (!buf) return 1;
        for (k = 0; k < words; k++) buf[k] = k;
        for (ti = 0; ti < 2; ti++) dram[ti] = dram_read_gbs(buf, words, all_threads[ti]);
        free(buf);
    }
    machine_measure(&mach);
    mach.dram[0] = dram[0];
    mach.dram[1] = dram[1];
    machine_print(&mach);
    compare(&mach, runs, cold, quick ? 0.05 : 0.25);
    if (compare_only) return 0;
    printf("\nThe full table: median of repeated calls after warm-up, one run; M = 1 cold rotates %zu MiB of copies%s\n",
           cold >> 20, quick ? " (--quick: less than a full run)" : "");
    printf("scalar reference: timed on its first %d rows only (throughput per row is the same), fewer calls\n",
           SCALAR_ROWS);

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
            size_t cp;
            c.count = copies_for(N * K * sizeof(float), cold);
            c.Ws = (float **)calloc(c.count, sizeof(float *));
            for (cp = 0; cp < c.count; cp++) c.Ws[cp] = fp32_copy(W, N * K);
            c.N = N;
            c.K = K;
            c.X = X;
            c.Y = Y;
            for (ti = 0; ti < 2; ti++) {
                size_t count = c.count;
                set_threads(all_threads[ti]);
                for (mi = 0; mi < 4; mi++) {
                    c.M = all_Ms[mi];
                    c.count = 1;
                    res[s][0][0][ti][mi].hot = 2e-9 * (double)(c.M * N * K) / time_median(fp32_call, &c, budget, 3);
                }
                c.count = count;
                c.M = 1;
                res[s][0][0][ti][0].cold = 2e-9 * (double)(N * K) / time_median(fp32_call, &c, budget, 5);
            }
            for (cp = 0; cp < c.count; cp++) bench_free(c.Ws[cp]);
            free(c.Ws);
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
                    set_threads(all_threads[ti]);
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
                        set_threads(all_threads[ti]);
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
