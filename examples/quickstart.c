/* quickstart: quantize one synthetic linear layer whose activations have a
   few outlier channels (50-100x the rest, as in LLMs), run it, and print the
   relative error of the W4A8 output against FP32 for every group size and
   activation mode; then the same for every method (group 128).

   cc -std=c99 -O2 examples/quickstart.c -lm && ./a.out
   Exit status 1 when a call fails or standard output is lost. */
#define _POSIX_C_SOURCE 200809L /* ../tools/output.h */
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "../tools/output.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* T calibration tokens (GPTQ wants T well above K), S of them kept as the sample */
enum { N = 512, K = 1024, T = 4096, S = 256, M = 64 };

static uint64_t seed = 42;
static float uniform(void) { /* [-1, 1) */
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((seed >> 40) / 8388608.0 - 1.0);
}
static float normal(void) { return (uniform() + uniform() + uniform() + uniform()) * 0.866f; }

/* Tokens with outlier channels: channel 7 about 50x, channel 300 about 100x. */
static void make_tokens(float *X, size_t rows) {
    size_t i;
    for (i = 0; i < rows * K; i++) X[i] = normal();
    for (i = 0; i < rows; i++) {
        X[i * K + 7] *= 50.0f;
        X[i * K + 300] *= 100.0f;
    }
}

static int fail(const char *what, w4a8_status st) {
    fprintf(stderr, "quickstart: %s: %s\n", what, w4a8_status_str(st));
    return 1;
}

/* ||Y - Yref|| / ||Yref|| of a layer on X. */
static w4a8_status rel_error(const w4a8_layer *layer, const float *X, const float *Yref, float *Y, double *err) {
    double num = 0, den = 0;
    size_t i;
    w4a8_status st = w4a8_layer_forward(layer, X, M, Y, NULL, 0);
    for (i = 0; st == W4A8_OK && i < (size_t)M * N; i++) {
        num += ((double)Y[i] - Yref[i]) * ((double)Y[i] - Yref[i]);
        den += (double)Yref[i] * Yref[i];
    }
    *err = sqrt(num / den);
    return st;
}

static int run(void) {
    static float W[N * K], Xcal[T * K], X[M * K], Yref[M * N], Y[M * N];
    static const size_t groups[] = { 32, 64, 128, W4A8_PER_CHANNEL };
    static const char *group_names[] = { "32", "64", "128", "channel" };
    static const struct { w4a8_method method; int gptq; const char *name; } methods[] = {
        { W4A8_METHOD_RTN, 0, "RTN" },           { W4A8_METHOD_SMOOTHQUANT, 0, "SmoothQuant" },
        { W4A8_METHOD_AWQ, 0, "AWQ" },           { W4A8_METHOD_GPTQ, 0, "GPTQ" },
        { W4A8_METHOD_FPTQ, 0, "FPTQ" },         { W4A8_METHOD_SMOOTHQUANT, 1, "SmoothQuant+GPTQ" },
        { W4A8_METHOD_AWQ, 1, "AWQ+GPTQ" },      { W4A8_METHOD_FPTQ, 1, "FPTQ+GPTQ" },
        { W4A8_METHOD_AUTO, 0, "AUTO" }
    };
    static const char *method_names[] = { "RTN", "SmoothQuant", "AWQ", "GPTQ", "FPTQ", "AUTO" };
    w4a8_report rep;
    w4a8_calib *calib = NULL;
    w4a8_status st;
    size_t i, m, n, k, g;
    int mode;
    double err;

    for (i = 0; i < N * K; i++) W[i] = normal() * 0.05f;
    make_tokens(Xcal, T); /* calibration and evaluation tokens differ */
    make_tokens(X, M);
    for (m = 0; m < M; m++)
        for (n = 0; n < N; n++) {
            double y = 0;
            for (k = 0; k < K; k++) y += (double)X[m * K + k] * W[n * K + k];
            Yref[m * N + n] = (float)y;
        }

    /* with the Hessian (GPTQ) and a sample (AWQ, AUTO, the report's loss) */
    if ((st = w4a8_calib_create(K, 1, S, &calib)) != W4A8_OK) return fail("calib_create", st);
    if ((st = w4a8_calib_add(calib, Xcal, T)) != W4A8_OK) return fail("calib_add", st);

    printf("W4A8 RTN on a %dx%d layer, outlier channels 50x and 100x\n", N, K);
    printf("relative error ||Y - Yfp32|| / ||Yfp32||\n\n");
    printf("%-10s %12s %12s\n", "group", "per-token", "per-tensor");
    for (g = 0; g < 4; g++) {
        printf("%-10s", group_names[g]);
        for (mode = 0; mode < 2; mode++) {
            w4a8_config cfg;
            w4a8_layer *layer = NULL;
            w4a8_config_init(&cfg);
            cfg.group_size = groups[g];
            cfg.act_mode = (w4a8_act_mode)mode;
            if ((st = w4a8_layer_quantize(W, N, K, NULL, calib, &cfg, &layer)) != W4A8_OK)
                return fail("layer_quantize", st);
            st = rel_error(layer, X, Yref, Y, &err);
            w4a8_layer_free(layer);
            if (st != W4A8_OK) return fail("layer_forward", st);
            printf(" %12.5f", err);
        }
        printf("\n");
    }
    printf("\nPer-tensor static scales spend their 255 levels on the outliers;\n"
           "per-token scales adapt to each token. The methods attack the rest.\n\n");

    printf("Each method, group 128, same layer and tokens\n\n");
    printf("%-18s %12s %12s\n", "method", "per-token", "per-tensor");
    for (m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        printf("%-18s", methods[m].name);
        for (mode = 0; mode < 2; mode++) {
            w4a8_config cfg;
            w4a8_linear lin;
            w4a8_layer *layer = NULL;
            w4a8_config_init(&cfg);
            cfg.method = methods[m].method;
            cfg.gptq_weights = methods[m].gptq;
            cfg.act_mode = (w4a8_act_mode)mode;
            lin.W = W;
            lin.N = N;
            lin.bias = NULL;
            lin.skip_clip = 0;
            if ((st = w4a8_quantize_linears(&lin, 1, K, calib, &cfg, &layer, &rep)) != W4A8_OK)
                return fail(methods[m].name, st);
            st = rel_error(layer, X, Yref, Y, &err);
            w4a8_layer_free(layer);
            if (st != W4A8_OK) return fail("layer_forward", st);
            printf(" %12.5f", err);
        }
        if (methods[m].method == W4A8_METHOD_FPTQ)
            printf("   max|x| = %.0f: %s", rep.act_absmax,
                   rep.fptq_strategy == W4A8_FPTQ_PER_TOKEN ? "per token, either way"
                   : rep.fptq_strategy == W4A8_FPTQ_STATIC  ? "per tensor, either way"
                                                            : "LAE + per tensor, either way");
        if (methods[m].method == W4A8_METHOD_AWQ && !methods[m].gptq) printf("   ratio %.2f", rep.awq_ratio);
        if (methods[m].method == W4A8_METHOD_AUTO)
            printf("   picks %s%s", method_names[rep.method], rep.gptq_weights && rep.method != W4A8_METHOD_GPTQ ? "+GPTQ" : "");
        printf("\n");
    }
    printf("\nAWQ's ratio is the per-tensor run's; AUTO's pick too. AUTO keeps the least\n"
           "output error on the calibration tokens; these errors are on other tokens.\n"
           "GPTQ has little to work with here: the inputs are uncorrelated but for two\n"
           "loud channels, which is AWQ's case (see tests/test_methods.c for GPTQ's).\n");
    w4a8_calib_free(calib);
    return 0;
}

int main(void) { return output_finish("quickstart", stdout, stderr, run()); }
