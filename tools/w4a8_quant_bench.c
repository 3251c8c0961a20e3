/* w4a8_quant_bench: quantization time of one layer, step by step, at given
   thread counts; tools/torch_ref.py runs it beside its PyTorch transcription
   of the authors' GPTQ and AWQ and prints the ratios (make bench-quant).

       ./build/w4a8_quant_bench [--n N] [--k K] [--tokens T] [--group G]
                                [--runs R] [--threads A,B] [--steps a,b,..]
       ./build/w4a8_quant_bench --codes DIR   codes of GPTQ and AWQ for the
                                layer in DIR (W.f32, X.f32, shape.txt), written
                                there for torch_ref.py --check

   Defaults: N = K = 4096, T = 512 tokens, group 128, 3 runs, threads 1,2.
   Steps: calib (w4a8_calib_add with the Hessian), gptq (after it),
   awq_search (w4a8_smooth_awq), awq_clip (w4a8_clip_awq on W s, X / s),
   awq (search + clip + weights, w4a8_quantize_linears), awq_gptq, auto.
   One line per step and thread count: "step threads min median max" in
   seconds. Data: W ~ 0.05 x normal, X correlated tokens with 4 outlier
   channels (x60), seeded. */
#define _POSIX_C_SOURCE 200809L
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"

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

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float normal(uint64_t *s) {
    double u = 0;
    int i;
    for (i = 0; i < 4; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        u += (double)(*s >> 11) / 9007199254740992.0 - 0.5;
    }
    return (float)(u * 1.7320508);
}

typedef struct bench {
    size_t N, K, T, G;
    float *W, *X;
    w4a8_calib *calib;
    float *s, *Ws, *Xs;     /* AWQ's scales and the clip's operands */
} bench;

static w4a8_status quantize(bench *b, w4a8_method m, int gptq, w4a8_layer **out) {
    w4a8_config cfg;
    w4a8_linear lin;
    w4a8_config_init(&cfg);
    cfg.method = m;
    cfg.gptq_weights = gptq;
    cfg.group_size = b->G;
    lin.W = b->W, lin.N = b->N, lin.bias = NULL, lin.skip_clip = 0;
    return w4a8_quantize_linears(&lin, 1, b->K, b->calib, &cfg, out, NULL);
}

static w4a8_status step(bench *b, const char *name) {
    w4a8_layer *L = NULL;
    w4a8_status st = W4A8_OK;
    size_t t, k;
    if (strcmp(name, "calib") == 0) {
        w4a8_calib *c = NULL;
        st = w4a8_calib_create(b->K, 1, b->T, &c);
        if (st == W4A8_OK) st = w4a8_calib_add(c, b->X, b->T);
        w4a8_calib_free(c);
    } else if (strcmp(name, "gptq") == 0) {
        st = quantize(b, W4A8_METHOD_GPTQ, 0, &L);
    } else if (strcmp(name, "awq_search") == 0) {
        w4a8_linear lin;
        lin.W = b->W, lin.N = b->N, lin.bias = NULL, lin.skip_clip = 0;
        st = w4a8_smooth_awq(&lin, 1, b->K, b->calib, b->G, 20, b->s, NULL, NULL);
    } else if (strcmp(name, "awq_clip") == 0) {
        for (t = 0; t < b->N * b->K; t++) b->Ws[t] = b->W[t] * b->s[t % b->K];
        for (t = 0; t < b->T; t++)
            for (k = 0; k < b->K; k++) b->Xs[t * b->K + k] = b->X[t * b->K + k] * (1.0f / b->s[k]);
        st = w4a8_clip_awq(b->Ws, b->N, b->K, b->G, b->Xs, b->T, b->Ws);
    } else if (strcmp(name, "awq") == 0) {
        st = quantize(b, W4A8_METHOD_AWQ, 0, &L);
    } else if (strcmp(name, "awq_gptq") == 0) {
        st = quantize(b, W4A8_METHOD_AWQ, 1, &L);
    } else if (strcmp(name, "auto") == 0) {
        st = quantize(b, W4A8_METHOD_AUTO, 0, &L);
    } else {
        fprintf(stderr, "unknown step %s\n", name);
        return W4A8_ERR_CONFIG;
    }
    w4a8_layer_free(L);
    return st;
}

static float *read_floats(const char *dir, const char *name, size_t n) {
    char path[1024];
    float *x = (float *)malloc(n * sizeof(float));
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f || !x || fread(x, sizeof(float), n, f) != n) {
        fprintf(stderr, "cannot read %s\n", path);
        free(x);
        x = NULL;
    }
    if (f) fclose(f);
    return x;
}

static int write_bytes(const char *dir, const char *name, const void *p, size_t n) {
    char path[1024];
    FILE *f;
    int ok;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    ok = f && fwrite(p, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "cannot write %s\n", path);
    return ok;
}

/* --codes DIR: GPTQ's codes from the Hessian (group G, symmetric, one
   thread-independent run) and AWQ's scales s and codes, for the PyTorch check. */
static int codes(const char *dir) {
    char path[1024];
    size_t N = 0, K = 0, T = 0, G = 0, groups;
    FILE *f;
    float *W, *X, *s, *Ws, *sc;
    uint8_t *q, *z;
    double *H, damp, loss;
    w4a8_calib *calib = NULL;
    w4a8_config cfg;
    w4a8_linear lin;
    w4a8_status st;
    snprintf(path, sizeof path, "%s/shape.txt", dir);
    f = fopen(path, "r");
    if (!f || fscanf(f, "%zu %zu %zu %zu", &N, &K, &T, &G) != 4) {
        fprintf(stderr, "cannot read %s\n", path);
        if (f) fclose(f);
        return 1;
    }
    fclose(f);
    groups = (K + G - 1) / G;
    W = read_floats(dir, "W.f32", N * K);
    X = read_floats(dir, "X.f32", T * K);
    s = (float *)malloc(K * sizeof(float));
    Ws = (float *)malloc(N * K * sizeof(float));
    sc = (float *)malloc(N * groups * sizeof(float));
    q = (uint8_t *)malloc(N * K);
    z = (uint8_t *)malloc(N * groups);
    H = (double *)malloc(K * K * sizeof(double));
    if (!W || !X || !s || !Ws || !sc || !q || !z || !H) return 1;
    w4a8_config_init(&cfg);
    cfg.group_size = G;
    st = w4a8_calib_create(K, 1, T, &calib);
    if (st == W4A8_OK) st = w4a8_calib_add(calib, X, T);
    if (st == W4A8_OK) st = w4a8_calib_hessian(calib, H);
    if (st == W4A8_OK) st = w4a8_quantize_gptq(W, N, K, H, &cfg, q, sc, z, &damp, &loss);
    if (st == W4A8_OK && !(write_bytes(dir, "gptq_codes.u8", q, N * K) &&
                           write_bytes(dir, "gptq_scales.f32", sc, N * groups * sizeof(float))))
        return 1;
    lin.W = W, lin.N = N, lin.bias = NULL, lin.skip_clip = 0;
    if (st == W4A8_OK) st = w4a8_smooth_awq(&lin, 1, K, calib, G, 20, s, NULL, NULL);
    if (st == W4A8_OK) {
        size_t i, k;
        for (i = 0; i < N * K; i++) Ws[i] = W[i] * s[i % K];
        for (i = 0; i < T; i++)
            for (k = 0; k < K; k++) X[i * K + k] *= 1.0f / s[k];
        st = w4a8_clip_awq(Ws, N, K, G, X, T, Ws);
    }
    if (st == W4A8_OK) st = w4a8_quantize_rtn_awq(Ws, N, K, G, q, sc, z);
    if (st == W4A8_OK && !(write_bytes(dir, "awq_s.f32", s, K * sizeof(float)) &&
                           write_bytes(dir, "awq_codes.u8", q, N * K) &&
                           write_bytes(dir, "awq_scales.f32", sc, N * groups * sizeof(float))))
        return 1;
    if (st != W4A8_OK) fprintf(stderr, "w4a8: %s\n", w4a8_status_str(st));
    w4a8_calib_free(calib);
    free(W), free(X), free(s), free(Ws), free(sc), free(q), free(z), free(H);
    return st != W4A8_OK;
}

int main(int argc, char **argv) {
    static const char *all_steps = "calib,gptq,awq_search,awq_clip,awq,awq_gptq,auto";
    const char *steps = all_steps, *threads = "1,2";
    bench b;
    int runs = 3, i;
    uint64_t seed = 777;
    size_t k, t;
    w4a8_status st;
    memset(&b, 0, sizeof b);
    b.N = b.K = 4096, b.T = 512, b.G = 128;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) break;
        if (strcmp(a, "--codes") == 0) return codes(v);
        if (strcmp(a, "--n") == 0) b.N = (size_t)atol(v);
        else if (strcmp(a, "--k") == 0) b.K = (size_t)atol(v);
        else if (strcmp(a, "--tokens") == 0) b.T = (size_t)atol(v);
        else if (strcmp(a, "--group") == 0) b.G = (size_t)atol(v);
        else if (strcmp(a, "--runs") == 0) runs = atoi(v);
        else if (strcmp(a, "--threads") == 0) threads = v;
        else if (strcmp(a, "--steps") == 0) steps = v;
        else break;
        i++;
    }
    if (i < argc || runs < 1 || runs > 100 || !b.N || !b.K || !b.T || !b.G) {
        fprintf(stderr, "usage: %s [--n N] [--k K] [--tokens T] [--group G] [--runs R] [--threads 1,2] "
                        "[--steps %s] | --codes DIR\n", argv[0], all_steps);
        return 2;
    }
    b.W = (float *)malloc(b.N * b.K * sizeof(float));
    b.X = (float *)malloc(b.T * b.K * sizeof(float));
    b.Ws = (float *)malloc(b.N * b.K * sizeof(float));
    b.Xs = (float *)malloc(b.T * b.K * sizeof(float));
    b.s = (float *)malloc(b.K * sizeof(float));
    if (!b.W || !b.X || !b.Ws || !b.Xs || !b.s) return 1;
    for (k = 0; k < b.N * b.K; k++) b.W[k] = 0.05f * normal(&seed);
    /* tokens share a few directions (a low-rank part) as real activations do */
    for (t = 0; t < b.T; t++) {
        float c = normal(&seed);
        for (k = 0; k < b.K; k++)
            b.X[t * b.K + k] = (0.8f * normal(&seed) + 0.6f * c * (float)((int)((k * 2654435761u >> 7) % 3) - 1)) *
                               (k < 4 ? 60.0f : 1.0f);
    }
    st = w4a8_calib_create(b.K, 1, b.T, &b.calib);
    if (st == W4A8_OK) st = w4a8_calib_add(b.calib, b.X, b.T);
    if (st != W4A8_OK) return 1;
    {
        w4a8_linear lin;
        lin.W = b.W, lin.N = b.N, lin.bias = NULL, lin.skip_clip = 0;
        if (w4a8_smooth_awq(&lin, 1, b.K, b.calib, b.G, 20, b.s, NULL, NULL) != W4A8_OK) return 1;
    }
    printf("# w4a8 %s: %zux%zu layer, %zu tokens, group %zu, %d runs\n", w4a8_version(), b.N, b.K, b.T, b.G, runs);
    {
        const char *tp = threads;
        while (*tp) {
            int nt = atoi(tp);
            const char *sp = steps;
            omp_set_num_threads(nt > 0 ? nt : 1);
            while (*sp) {
                char name[32];
                size_t len = strcspn(sp, ",");
                double tm[100];
                int r;
                snprintf(name, sizeof name, "%.*s", (int)(len < 31 ? len : 31), sp);
                for (r = 0; r < runs; r++) {
                    double t0 = now();
                    if ((st = step(&b, name)) != W4A8_OK) {
                        fprintf(stderr, "%s: %s\n", name, w4a8_status_str(st));
                        return 1;
                    }
                    tm[r] = now() - t0;
                }
                qsort(tm, (size_t)runs, sizeof tm[0], cmp_double);
                printf("%-11s %d %8.3f %8.3f %8.3f\n", name, nt, tm[0], tm[runs / 2], tm[runs - 1]);
                fflush(stdout);
                sp += len + (sp[len] == ',');
            }
            tp += strcspn(tp, ",");
            tp += *tp == ',';
        }
    }
    w4a8_calib_free(b.calib);
    free(b.W), free(b.X), free(b.Ws), free(b.Xs), free(b.s);
    return 0;
}
