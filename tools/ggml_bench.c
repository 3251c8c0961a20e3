/* ggml_bench.c - ggml's Q4_0 x F32 matrix product, timed the way
   tools/w4a8_bench.c times w4a8, for the side-by-side in the README.

   Built and run by tools/ggml_bench.sh against llama.cpp's ggml; not part of
   `make`. Weights go into the CPU backend's repack buffer when it has one
   (CPU_REPACK: Q4_0 interleaved 8x8 on AVX-512 / 8x4 on AVX2), which is
   what llama.cpp uses for CPU inference, else into a plain CPU buffer.
   ggml quantizes the F32 activations to Q8_0 inside the product, so the
   timing includes activation quantization, as w4a8's does.

   usage: ggml_bench [threads] [N K]  (default 2 threads, N = K = 4096);
   GGML_BENCH_CPU_TIME=1 in the environment: CPU time instead of wall time. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime; lstat in output.h */
#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "output.h"

#define COLD_BYTES (720u << 20) /* as tools/w4a8_bench.c: far beyond the last-level cache */
#define MAX_COPIES 512

/* GGML_BENCH_CPU_TIME=1: the process's CPU time over the thread count, as
   w4a8_bench --cpu-time (threads spinning in ggml's barriers count). */
static int cpu_threads;

static double now(void) {
    struct timespec ts;
    clock_gettime(cpu_threads ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / (cpu_threads ? cpu_threads : 1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ggml logs every repacked tensor at info level: keep warnings and errors. */
static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static ggml_backend_buffer_type_t repack_buft(ggml_backend_t backend) {
    ggml_backend_dev_t dev = ggml_backend_get_device(backend);
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    ggml_backend_dev_get_extra_bufts_t get =
        (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
    ggml_backend_buffer_type_t *b;
    for (b = get ? get(dev) : NULL; b && *b; b++)
        if (!strcmp(ggml_backend_buft_name(*b), "CPU_REPACK")) return *b;
    return NULL;
}

/* Median seconds of `reps` products, rotating through `copies` weight copies. */
static double time_products(ggml_backend_t backend, struct ggml_cgraph **graphs, int copies, int reps) {
    double t[64];
    int r, c = 0;
    if (reps > 64) reps = 64;
    for (r = 0; r < 3; r++) ggml_backend_graph_compute(backend, graphs[r % copies]); /* warm-up */
    for (r = 0; r < reps; r++) {
        double t0 = now();
        ggml_backend_graph_compute(backend, graphs[c]);
        t[r] = now() - t0;
        c = (c + 1) % copies;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

static int run(int argc, char **argv) {
    static const int Ms[] = { 1, 16, 128, 512 };
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int64_t N = argc > 3 ? atoll(argv[2]) : 4096, K = argc > 3 ? atoll(argv[3]) : 4096;
    ggml_backend_t backend;
    ggml_backend_buffer_type_t wbuft;
    size_t row_bytes, w_bytes;
    int copies, i, mi;
    float *W;
    void *q;
    if (getenv("GGML_BENCH_CPU_TIME") && atoi(getenv("GGML_BENCH_CPU_TIME"))) cpu_threads = threads;
    ggml_log_set(quiet_log, NULL);
    backend = ggml_backend_cpu_init();
    if (!backend || threads < 1 || N < 32 || K < 32 || K % 32) {
        fprintf(stderr, "usage: ggml_bench [threads] [N K], K a multiple of 32\n");
        return 2;
    }
    ggml_backend_cpu_set_n_threads(backend, threads);
    wbuft = repack_buft(backend);
    if (!wbuft) wbuft = ggml_backend_cpu_buffer_type();
    row_bytes = ggml_row_size(GGML_TYPE_Q4_0, K);
    w_bytes = row_bytes * (size_t)N;
    copies = (int)(COLD_BYTES / w_bytes) + 1;
    if (copies > MAX_COPIES) copies = MAX_COPIES;

    /* one set of Q4_0 weights from a fixed pseudo-random matrix, copied */
    W = (float *)malloc((size_t)N * (size_t)K * sizeof(float));
    q = malloc(w_bytes);
    if (!W || !q) return 1;
    {
        uint32_t s = 12345;
        for (i = 0; i < N * K; i++) {
            s = s * 1664525u + 1013904223u;
            W[i] = (float)((int32_t)(s >> 8) - (1 << 23)) / (float)(1 << 23);
        }
    }
    ggml_quantize_chunk(GGML_TYPE_Q4_0, W, q, 0, N, K, NULL);

    printf("ggml_bench: Q4_0 weights in %s, F32 activations, N=%lld K=%lld, %d threads, %d copies for cold, %s\n",
           ggml_backend_buft_name(wbuft), (long long)N, (long long)K, threads, copies,
           cpu_threads ? "CPU time / threads" : "wall time");
    printf("%5s %12s %12s\n", "M", "hot GF/s", "cold GF/s");
    for (mi = 0; mi < (int)(sizeof Ms / sizeof Ms[0]); mi++) {
        int64_t M = Ms[mi];
        int n_cold = M == 1 ? copies : 1;
        struct ggml_init_params wp = { ggml_tensor_overhead() * (size_t)n_cold, NULL, true };
        struct ggml_init_params ap = { ggml_tensor_overhead() * (size_t)(n_cold + 1), NULL, true };
        struct ggml_init_params gp = { (ggml_tensor_overhead() + ggml_graph_overhead()) * (size_t)n_cold, NULL, true };
        struct ggml_context *cw = ggml_init(wp), *ca = ggml_init(ap), *cg = ggml_init(gp);
        struct ggml_tensor *x, **w = (struct ggml_tensor **)calloc((size_t)n_cold, sizeof *w);
        struct ggml_cgraph **g = (struct ggml_cgraph **)calloc((size_t)n_cold, sizeof *g);
        ggml_backend_buffer_t bw, ba;
        double flops = 2.0 * (double)M * (double)N * (double)K, hot, cold;
        float *xs = (float *)malloc((size_t)M * (size_t)K * sizeof(float));
        if (!cw || !ca || !cg || !w || !g || !xs) return 1;
        for (i = 0; i < n_cold; i++) w[i] = ggml_new_tensor_2d(cw, GGML_TYPE_Q4_0, K, N);
        x = ggml_new_tensor_2d(ca, GGML_TYPE_F32, K, M);
        for (i = 0; i < n_cold; i++) {
            struct ggml_tensor *y = ggml_mul_mat(ca, w[i], x);
            g[i] = ggml_new_graph(cg);
            ggml_build_forward_expand(g[i], y);
        }
        bw = ggml_backend_alloc_ctx_tensors_from_buft(cw, wbuft);
        ba = ggml_backend_alloc_ctx_tensors(ca, backend);
        if (!bw || !ba) {
            fprintf(stderr, "ggml_bench: allocation failed\n");
            return 1;
        }
        for (i = 0; i < n_cold; i++) ggml_backend_tensor_set(w[i], q, 0, w_bytes); /* repacks */
        for (i = 0; i < M * K; i++) xs[i] = W[i];
        ggml_backend_tensor_set(x, xs, 0, (size_t)M * (size_t)K * sizeof(float));
        hot = time_products(backend, g, 1, M <= 16 ? 64 : 16);
        if (M == 1) {
            cold = time_products(backend, g, n_cold, 64);
            printf("%5lld %12.1f %12.1f\n", (long long)M, flops / hot * 1e-9, flops / cold * 1e-9);
        } else {
            printf("%5lld %12.1f %12s\n", (long long)M, flops / hot * 1e-9, "-");
        }
        fflush(stdout);
        ggml_backend_buffer_free(bw);
        ggml_backend_buffer_free(ba);
        ggml_free(cw), ggml_free(ca), ggml_free(cg);
        free(w), free(g), free(xs);
    }
    free(W), free(q);
    ggml_backend_free(backend);
    return 0;
}

int main(int argc, char **argv) { return output_finish("ggml_bench", stdout, stderr, run(argc, argv)); }
