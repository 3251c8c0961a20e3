/* quickstart: quantize one synthetic linear layer whose activations have a
   few outlier channels (50-100x the rest, as in LLMs), run it, and print the
   relative error of the W4A8 output against FP32 for every group size and
   activation mode.

   cc -std=c99 -O2 examples/quickstart.c -lm && ./a.out */
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 512, K = 1024, T = 256, M = 64 };

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

int main(void) {
    static float W[N * K], Xcal[T * K], X[M * K], Yref[M * N], Y[M * N];
    static const size_t groups[] = { 32, 64, 128, W4A8_PER_CHANNEL };
    static const char *group_names[] = { "32", "64", "128", "channel" };
    w4a8_calib *calib = NULL;
    w4a8_status st;
    size_t i, m, n, k, g;
    int mode;

    for (i = 0; i < N * K; i++) W[i] = normal() * 0.05f;
    make_tokens(Xcal, T); /* calibration and evaluation tokens differ */
    make_tokens(X, M);
    for (m = 0; m < M; m++)
        for (n = 0; n < N; n++) {
            double y = 0;
            for (k = 0; k < K; k++) y += (double)X[m * K + k] * W[n * K + k];
            Yref[m * N + n] = (float)y;
        }

    if ((st = w4a8_calib_create(K, 0, 0, &calib)) != W4A8_OK) return fail("calib_create", st);
    if ((st = w4a8_calib_add(calib, Xcal, T)) != W4A8_OK) return fail("calib_add", st);

    printf("W4A8 RTN on a %dx%d layer, outlier channels 50x and 100x\n", N, K);
    printf("relative error ||Y - Yfp32|| / ||Yfp32||\n\n");
    printf("%-10s %12s %12s\n", "group", "per-token", "per-tensor");
    for (g = 0; g < 4; g++) {
        printf("%-10s", group_names[g]);
        for (mode = 0; mode < 2; mode++) {
            w4a8_config cfg;
            w4a8_layer *layer = NULL;
            double num = 0, den = 0;
            w4a8_config_init(&cfg);
            cfg.group_size = groups[g];
            cfg.act_mode = (w4a8_act_mode)mode;
            if ((st = w4a8_layer_quantize(W, N, K, NULL, calib, &cfg, &layer)) != W4A8_OK)
                return fail("layer_quantize", st);
            if ((st = w4a8_layer_forward(layer, X, M, Y, NULL, 0)) != W4A8_OK) return fail("layer_forward", st);
            for (i = 0; i < M * N; i++) {
                num += ((double)Y[i] - Yref[i]) * ((double)Y[i] - Yref[i]);
                den += (double)Yref[i] * Yref[i];
            }
            printf(" %12.5f", sqrt(num / den));
            w4a8_layer_free(layer);
        }
        printf("\n");
    }
    printf("\nPer-tensor static scales spend their 255 levels on the outliers;\n"
           "per-token scales adapt to each token. The methods (SmoothQuant, AWQ,\n"
           "GPTQ, FPTQ) attack the rest of the error.\n");
    w4a8_calib_free(calib);
    return 0;
}
