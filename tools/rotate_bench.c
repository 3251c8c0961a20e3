/* rotate_bench: what QuaRot's online Hadamard in front of w2 costs in the
   forward (issue: at most 5% at M = 1 and M = 512).

       make build/rotate_bench && ./build/rotate_bench [--reps N]

   For the linears of one transformer block of each model (wq, wk, wv, wo,
   w1, w3, w2; random weights, group 32, symmetric, per-token activations,
   the fastest kernel), the time of w4a8_layer_forward over M tokens, and
   that of the same w2 with the online transform (w4a8_layer_rotated). The
   share is (w2 rotated - w2 plain) / (sum of the seven plain forwards): the
   block's attention, norms and the classifier are left out of the
   denominator, so the share of a whole forward is smaller still. Each time
   is the median of --reps calls (default 21) after a warm-up, on one thread,
   in CPU time of that thread (CLOCK_THREAD_CPUTIME_ID), so that a shared,
   loaded machine's preemptions do not count; w4a8_hadamard alone on the
   M x hidden input (its tables built per call) is shown beside it. */
#define _POSIX_C_SOURCE 200809L
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng = 42;
static float uniform(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *randoms(size_t n) {
    float *x = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; x && i < n; i++) x[i] = uniform();
    return x;
}

/* Median seconds of one forward of L over X[M][K]. */
static double time_forward(const w4a8_layer *L, const float *X, size_t M, float *Y, void *ws, size_t ws_bytes,
                           int reps) {
    double t[101];
    int r;
    w4a8_layer_forward(L, X, M, Y, ws, ws_bytes);
    for (r = 0; r < reps; r++) {
        double t0 = now();
        w4a8_layer_forward(L, X, M, Y, ws, ws_bytes);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return t[reps / 2];
}

static double time_hadamard(const float *X, size_t M, size_t K, float *Y, int reps) {
    double t[101];
    int r;
    w4a8_hadamard(X, M, K, 0, 0, Y);
    for (r = 0; r < reps; r++) {
        double t0 = now();
        w4a8_hadamard(X, M, K, 0, 0, Y);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return t[reps / 2];
}

int main(int argc, char **argv) {
    static const struct { const char *name; size_t D, H, kv; } models[] = {
        { "stories260K", 64, 172, 32 }, { "babyllama", 128, 352, 64 }, { "SmolLM2-135M", 576, 1536, 192 }
    };
    static const size_t Ms[] = { 1, 512 };
    int reps = 21, i, mi, j;
    for (i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    if (reps < 1 || reps > 101) {
        fprintf(stderr, "rotate_bench: --reps 1..101\n");
        return 2;
    }
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    printf("| model | M | block linears (ms) | w2 plain (ms) | w2 + online Hadamard (ms) | w4a8_hadamard alone (ms) | share |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (mi = 0; mi < 3; mi++) {
        size_t D = models[mi].D, H = models[mi].H, kv = models[mi].kv;
        /* N, K of wq wk wv wo w1 w3 w2 */
        size_t shape[7][2] = { { D, D }, { kv, D }, { kv, D }, { D, D }, { H, D }, { H, D }, { D, H } };
        w4a8_layer *lin[7], *rot = NULL;
        w4a8_config cfg;
        w4a8_status st = W4A8_OK;
        w4a8_config_init(&cfg);
        cfg.group_size = 32;
        for (j = 0; j < 7; j++) {
            float *W = randoms(shape[j][0] * shape[j][1]);
            lin[j] = NULL;
            if (st == W4A8_OK) st = w4a8_layer_quantize(W, shape[j][0], shape[j][1], NULL, NULL, &cfg, &lin[j]);
            free(W);
        }
        if (st == W4A8_OK) st = w4a8_layer_rotated(lin[6], 0, &rot);
        if (st != W4A8_OK) {
            fprintf(stderr, "rotate_bench: %s: %s\n", models[mi].name, w4a8_status_str(st));
            return 1;
        }
        for (i = 0; i < 2; i++) {
            size_t M = Ms[i], ws_bytes = 0, b;
            float *X = randoms(M * H), *Y = (float *)malloc(M * H * sizeof(float));
            void *ws;
            double block = 0.0, plain, online, had;
            for (j = 0; j < 7; j++) {
                w4a8_layer_workspace_size(lin[j], M, &b);
                if (b > ws_bytes) ws_bytes = b;
            }
            w4a8_layer_workspace_size(rot, M, &b);
            if (b > ws_bytes) ws_bytes = b;
            ws = malloc(ws_bytes);
            for (j = 0; j < 7; j++) block += time_forward(lin[j], X, M, Y, ws, ws_bytes, reps);
            plain = time_forward(lin[6], X, M, Y, ws, ws_bytes, reps);
            online = time_forward(rot, X, M, Y, ws, ws_bytes, reps);
            had = time_hadamard(X, M, H, Y, reps);
            printf("| %s (%s, kernel %s) | %zu | %.4f | %.4f | %.4f | %.4f | %.1f%% |\n", models[mi].name,
                   M == 1 ? "decode" : "prefill", w4a8_kernel_name(lin[0]->kernel), M, 1e3 * block, 1e3 * plain,
                   1e3 * online, 1e3 * had, 100.0 * (online - plain) / block);
            free(X), free(Y), free(ws);
        }
        for (j = 0; j < 7; j++) w4a8_layer_free(lin[j]);
        w4a8_layer_free(rot);
    }
    printf("\n1 thread, CPU time, median of %d calls\n", reps);
    return 0;
}
