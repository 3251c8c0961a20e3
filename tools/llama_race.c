/* llama_race: end-to-end speed of w4a8's engine on a GGUF model, the way
   llama-bench measures llama.cpp (issue 12's race): prompt processing (one
   forward of --pp tokens from an empty cache) and generation (--tg tokens
   one at a time from an empty cache, logits every step), tokens per second,
   median of --reps runs. Every linear and the classifier are W4A8 layers
   (RTN, symmetric, group 32, per-token activations: the weights of the
   Q4_0 file llama_w4a8 --methods rtn --export writes); the attention and
   norms are the engine's FP32 code. Prompt processing computes no logits
   (llama-bench's computes one row). tools/race.sh runs it beside llama-bench.
       ./build/llama_race --model SmolLM2-135M-Instruct.Q4_1.gguf --threads 2 */
#define _POSIX_C_SOURCE 200809L /* lstat: output.h */
#define W4A8_IMPLEMENTATION
#include "../examples/llama/llama.h"
#include "output.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run(int argc, char **argv) {
    const char *path = NULL;
    size_t pp = 512, tg = 128, reps = 3, r, i;
    int threads = 1, *tokens;
    double tpp[16], ttg[16];
    llama_model m;
    llama_calibs cs;
    llama_spec spec;
    llama_qmodel *q = NULL;
    llama_state *s = NULL;
    llama_status st;
    w4a8_status wst = W4A8_OK;
    float *logits;
    for (i = 1; i + 1 < (size_t)argc; i += 2) {
        if (!strcmp(argv[i], "--model")) path = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pp")) pp = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--tg")) tg = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = (size_t)atol(argv[i + 1]);
        else break;
    }
    if (!path || i != (size_t)argc || threads < 1 || pp < 1 || tg < 1 || reps < 1 || reps > 16) {
        fprintf(stderr, "usage: llama_race --model FILE.gguf [--threads N] [--pp 512] [--tg 128] [--reps 3 (<= 16)]\n");
        return 2;
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    if ((st = llama_load(path, &m)) != LLAMA_OK) {
        fprintf(stderr, "llama_race: %s: %s\n", path, llama_status_str(st));
        return 1;
    }
    /* RTN needs no statistics: every input's calibration is NULL */
    memset(&cs, 0, sizeof cs);
    cs.count = (size_t)m.c.n_layers * LLAMA_INPUTS_PER_LAYER + 1;
    cs.c = (w4a8_calib **)calloc(cs.count, sizeof *cs.c);
    memset(&spec, 0, sizeof spec);
    spec.method = W4A8_METHOD_RTN, spec.act_mode = W4A8_ACT_PER_TOKEN, spec.group = 32;
    st = cs.c ? llama_quantize(&m, &cs, &spec, 1, NULL, &q, &wst) : LLAMA_ERR_NOMEM;
    free(cs.c);
    tokens = (int *)malloc((pp > tg ? pp : tg) * sizeof(int));
    logits = llama__floats((size_t)m.c.vocab_size, 1);
    if (st == LLAMA_OK && (!tokens || !logits)) st = LLAMA_ERR_NOMEM;
    if (st == LLAMA_OK) st = llama_state_create(&m, pp, pp > tg ? pp : tg, &s);
    for (i = 0; tokens && i < (pp > tg ? pp : tg); i++) tokens[i] = (int)((i * 7919 + 3) % (size_t)m.c.vocab_size);
    for (r = 0; st == LLAMA_OK && r < reps; r++) {
        double t0 = llama__now();
        st = llama_forward(&m, q, s, tokens, pp, 0, NULL, NULL, NULL);
        tpp[r] = (double)pp / (llama__now() - t0);
        t0 = llama__now();
        for (i = 0; st == LLAMA_OK && i < tg; i++) st = llama_forward(&m, q, s, tokens + i, 1, i, logits, NULL, NULL);
        ttg[r] = (double)tg / (llama__now() - t0);
    }
    if (st == LLAMA_OK) {
        qsort(tpp, reps, sizeof *tpp, cmp_double), qsort(ttg, reps, sizeof *ttg, cmp_double);
        printf("w4a8 %s kernel %s threads %d: pp%zu %.1f tokens/s (min %.1f max %.1f), tg%zu %.1f tokens/s "
               "(min %.1f max %.1f), median of %zu\n", path, w4a8_kernel_name(q->lin[0]->kernel), threads, pp,
               tpp[reps / 2], tpp[0], tpp[reps - 1], tg, ttg[reps / 2], ttg[0], ttg[reps - 1], reps);
    } else {
        fprintf(stderr, "llama_race: %s%s%s\n", llama_status_str(st), st == LLAMA_ERR_W4A8 ? ": " : "",
                st == LLAMA_ERR_W4A8 ? w4a8_status_str(wst) : "");
    }
    llama_state_free(s);
    llama_qmodel_free(q);
    free(tokens), free(logits);
    llama_free(&m);
    return st == LLAMA_OK ? 0 : 1;
}

int main(int argc, char **argv) { return output_finish("llama_race", stdout, stderr, run(argc, argv)); }
