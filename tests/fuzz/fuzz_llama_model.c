/* fuzz_llama_model - the llama2.c checkpoint loader (llama_load_mem), and
   what runs on a model it accepts: the FP32 forward of a few tokens, the
   calibration of every linear input, RTN quantization and the W4A8 forward.
   A model that loads must run without a crash; the forward's statuses are
   the only results checked (fuzzed weights may overflow float). */
#define W4A8_IMPLEMENTATION
#include "../../examples/llama/llama.h"
#include "fuzz.h"

static void run_model(const llama_model *m) {
    size_t T = m->c.seq_len < 3 ? (size_t)m->c.seq_len : 3, V = (size_t)m->c.vocab_size, t;
    int tokens[3] = { LLAMA_BOS, 0, LLAMA_BOS + 1 };
    float *logits = (float *)malloc(T * V * sizeof(float));
    llama_state *s = NULL;
    llama_calibs cs;
    llama_spec spec;
    llama_qmodel *q = NULL;
    w4a8_status wst;
    FUZZ_CHECK(logits != NULL);
    FUZZ_CHECK(llama_state_create(m, T, T, &s) == LLAMA_OK);
    FUZZ_CHECK(llama_forward(m, NULL, s, tokens, T, 0, logits, NULL, NULL) == LLAMA_OK);
    for (t = 0; t < T; t++) FUZZ_CHECK(tokens[t] < m->c.vocab_size);
    if (llama_calibrate(m, tokens, 1, T, &cs, &wst) == LLAMA_OK) {
        memset(&spec, 0, sizeof spec);
        spec.method = W4A8_METHOD_RTN;
        spec.act_mode = W4A8_ACT_PER_TOKEN;
        spec.group = 8;
        if (llama_quantize(m, &cs, &spec, 1, NULL, &q, &wst) == LLAMA_OK) {
            llama_status st = llama_forward(m, q, s, tokens, T, 0, logits, NULL, NULL);
            FUZZ_CHECK(st == LLAMA_OK || st == LLAMA_ERR_W4A8);
            llama_qmodel_free(q);
        }
        llama_calibs_free(&cs);
    }
    llama_state_free(s);
    free(logits);
}

/* A checkpoint of the given shape with small random weights; vocab < 0 is
   llama2.c's unshared classifier. */
static void seed_model(const char *dir, const char *name, const int32_t h[7], uint64_t seed) {
    llama_config c;
    size_t sz[13], total, i;
    unsigned char *b;
    c.dim = h[0], c.hidden_dim = h[1], c.n_layers = h[2], c.n_heads = h[3], c.n_kv_heads = h[4];
    c.vocab_size = h[5] < 0 ? -h[5] : h[5], c.seq_len = h[6];
    total = llama__tensor_sizes(&c, h[5] > 0, sz);
    b = (unsigned char *)malloc(28 + 4 * total);
    FUZZ_CHECK(b != NULL && total > 0);
    for (i = 0; i < 7; i++) memcpy(b + 4 * i, &h[i], 4);
    for (i = 0; i < total; i++) {
        float w = fuzz_uniform(&seed) * 0.5f;
        memcpy(b + 28 + 4 * i, &w, 4);
    }
    /* the loader accepts it, or the seed is no seed */
    {
        llama_model m;
        FUZZ_CHECK(llama_load_mem(b, 28 + 4 * total, &m) == LLAMA_OK);
        llama_free(&m);
    }
    fuzz_seed_file(dir, name, b, 28 + 4 * total);
    free(b);
}

static void fuzz_seeds(const char *dir) {
    static const int32_t shared[7] = { 8, 16, 1, 2, 2, 5, 4 }, unshared_gqa[7] = { 8, 12, 2, 4, 2, -6, 3 };
    seed_model(dir, "shared", shared, 1);
    seed_model(dir, "unshared_gqa", unshared_gqa, 2);
}

FUZZ_MAIN(fuzz_seeds) {
    llama_model m;
    llama_status st = llama_load_mem(data, size, &m);
    FUZZ_CHECK(st >= LLAMA_OK && st < LLAMA_STATUS_COUNT);
    if (st != LLAMA_OK) return 0;
    FUZZ_CHECK(m.c.vocab_size > LLAMA_EOS && m.n_floats * 4 + 28 == size);
    run_model(&m);
    llama_free(&m);
    return 0;
}
