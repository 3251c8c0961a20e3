/* The real-model example on the shared llama2.c checkpoints: loader errors,
   tokenizer, FP32 forward, the W4A8 forward against its math, folding of
   equalizations, the outlier variant, determinism. Reads ../shared/data or
   $W4A8_DATA; without it the suite says it skipped. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../examples/llama/llama.h"
#include "test.h"

static char data_dir[1024];
static llama_model model;
static llama_tokenizer tok;
static int *stream;
static size_t stream_len;

static void data_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", data_dir, name); }

static unsigned char *slurp(const char *name, size_t *bytes) {
    char path[1200];
    char *buf = NULL;
    data_path(path, sizeof path, name);
    if (llama__read_file(path, (size_t)64 << 20, &buf, bytes) != LLAMA_OK) return NULL;
    return (unsigned char *)buf;
}

static void put_i32(unsigned char *p, int32_t v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    p[0] = (unsigned char)u, p[1] = (unsigned char)(u >> 8), p[2] = (unsigned char)(u >> 16), p[3] = (unsigned char)(u >> 24);
}

/* The greedy text from BOS, token by token through the KV cache. */
static void greedy_text(const llama_qmodel *q, size_t n, char *out, size_t cap) {
    llama_state *s = NULL;
    float *logits = (float *)malloc((size_t)model.c.vocab_size * sizeof(float));
    int cur = LLAMA_BOS;
    size_t p, len = 0;
    CHECK(llama_state_create(&model, 1, n + 1, &s) == LLAMA_OK);
    out[0] = '\0';
    for (p = 0; s && p < n; p++) {
        char buf[2];
        const char *piece;
        int next;
        CHECK(llama_forward(&model, q, s, &cur, 1, p, logits, NULL, NULL) == LLAMA_OK);
        next = llama__argmax(logits, (size_t)model.c.vocab_size);
        piece = llama_decode(&tok, cur, next, buf);
        if (len + strlen(piece) + 1 > cap) break;
        memcpy(out + len, piece, strlen(piece) + 1);
        len += strlen(piece);
        cur = next;
    }
    llama_state_free(s);
    free(logits);
}

static void test_llama_greedy(void) {
    static const char want[] = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
    char text[1024];
    greedy_text(NULL, 40, text, sizeof text);
    CHECK(strncmp(text, want, strlen(want)) == 0);
    if (strncmp(text, want, strlen(want)) != 0) printf("    got: %s\n", text);
}

static void test_llama_tokenizer(void) {
    size_t bytes, i, n;
    char *text = (char *)slurp("tinystories_valid_first1000.txt", &bytes);
    llama_tokenizer t105;
    char path[1200];
    int *ids = NULL;
    CHECK(text != NULL);
    if (!text) return;
    /* The protocol's stream: llama2.c encode of 1000 stories, a BOS each.
       An O(n^2) Python transcription of llama2.c's encode gives the same count. */
    CHECK(stream_len == 390336);
    for (i = 0, n = 0; i < stream_len; i++) n += stream[i] == LLAMA_BOS;
    CHECK(n == 1000 && stream[0] == LLAMA_BOS);
    /* Decoding the first story gives it back. */
    {
        const char *end = strstr(text, "\n<|endoftext|>");
        size_t len = (size_t)(end - text), k = 0;
        char *back = (char *)malloc(len + 64);
        for (i = 1; i < stream_len && stream[i] != LLAMA_BOS; i++) {
            char buf[2];
            const char *piece = llama_decode(&tok, stream[i - 1], stream[i], buf);
            size_t pl = strlen(piece);
            if (k + pl > len + 32) break;
            memcpy(back + k, piece, pl);
            k += pl;
        }
        CHECK(k == len && memcmp(back, text, len) == 0);
        free(back);
    }
    /* Byte fallback for a character tok512 lacks; <unk> for one tok105 lacks. */
    CHECK(llama_encode(&tok, "\xc3\xbc", 2, &ids, &n) == LLAMA_OK);
    CHECK(n == 3 && ids[1] == 0xc3 + 3 && ids[2] == 0xbc + 3);
    free(ids);
    data_path(path, sizeof path, "tok105.bin");
    CHECK(llama_tokenizer_load(path, 105, &t105) == LLAMA_OK);
    CHECK(!t105.byte_fallback);
    CHECK(llama_encode(&t105, "a\nb\xc3\xbc", 5, &ids, &n) == LLAMA_OK);
    CHECK(n == 5 && ids[0] == llama__lookup(&t105, " ", 1) && ids[2] == 0 && ids[4] == 0);
    CHECK(ids[1] == llama__lookup(&t105, "a", 1) && ids[3] == llama__lookup(&t105, "b", 1));
    free(ids);
    /* The empty text encodes to nothing (no dummy prefix). */
    CHECK(llama_encode(&tok, "", 0, &ids, &n) == LLAMA_OK && n == 0);
    free(ids);
    llama_tokenizer_free(&t105);
    free(text);
}

static void test_llama_loader_errors(void) {
    size_t bytes, tbytes, i;
    unsigned char *buf = slurp("stories260K.bin", &bytes), *copy, *tb = slurp("tok512.bin", &tbytes);
    static const size_t cuts[] = { 0, 3, 4, 27, 28, 29, 1000, 100000 };
    llama_model m;
    llama_tokenizer t;
    char path[1200];
    float nan = (float)NAN;
    CHECK(buf != NULL && tb != NULL);
    if (!buf || !tb) return;
    copy = (unsigned char *)malloc(bytes + 4);
    CHECK(llama_load_mem(buf, bytes, &m) == LLAMA_OK);
    llama_free(&m);
    for (i = 0; i < sizeof cuts / sizeof cuts[0]; i++) CHECK(llama_load_mem(buf, cuts[i], &m) == LLAMA_ERR_TRUNCATED);
    CHECK(llama_load_mem(buf, bytes - 1, &m) == LLAMA_ERR_TRUNCATED);
    memcpy(copy, buf, bytes);
    CHECK(llama_load_mem(copy, bytes + 4, &m) == LLAMA_ERR_FORMAT); /* trailing bytes */
    /* Every header field negative, zero, huge; then inconsistent shapes. */
    for (i = 0; i < 7; i++) {
        static const int32_t bad[] = { -1, 0, INT32_MIN, INT32_MAX, 1 << 25 };
        size_t b;
        for (b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            llama_status st;
            memcpy(copy, buf, bytes);
            put_i32(copy + 4 * i, bad[b]);
            st = llama_load_mem(copy, bytes, &m);
            /* vocab -1 is an unshared 1-token vocabulary: the file is too long for it */
            CHECK(st == (i == 5 && bad[b] == -1 ? LLAMA_ERR_FORMAT : LLAMA_ERR_HEADER));
        }
    }
    {
        /* dim not a multiple of heads; odd head size; kv heads not dividing
           heads; more kv heads than heads; large but valid values that the
           file is far too short for. */
        static const int32_t edits[][2] = { { 3, 7 }, { 3, 64 }, { 4, 3 }, { 4, 16 }, { 0, 1 << 24 }, { 6, 1 << 24 }, { 2, 4096 } };
        static const llama_status want[] = { LLAMA_ERR_HEADER, LLAMA_ERR_HEADER, LLAMA_ERR_HEADER, LLAMA_ERR_HEADER,
                                              LLAMA_ERR_TRUNCATED, LLAMA_ERR_TRUNCATED, LLAMA_ERR_TRUNCATED };
        for (i = 0; i < sizeof want / sizeof want[0]; i++) {
            memcpy(copy, buf, bytes);
            put_i32(copy + 4 * edits[i][0], edits[i][1]);
            CHECK(llama_load_mem(copy, bytes, &m) == want[i]);
        }
    }
    memcpy(copy, buf, bytes);
    put_i32(copy + 20, -512); /* says unshared: the classifier is missing */
    CHECK(llama_load_mem(copy, bytes, &m) == LLAMA_ERR_TRUNCATED);
    memcpy(copy, buf, bytes);
    memcpy(copy + 28 + 4 * 70000, &nan, 4);
    CHECK(llama_load_mem(copy, bytes, &m) == LLAMA_ERR_NONFINITE);
    memcpy(copy, "\x32\x34\x6b\x61", 4); /* magic 0x616b3432: a llama2.c v1/v2 export */
    CHECK(llama_load_mem(copy, bytes, &m) == LLAMA_ERR_FORMAT);
    CHECK(llama_load("/nonexistent/stories260K.bin", &m) == LLAMA_ERR_IO);
    data_path(path, sizeof path, "tok512.bin"); /* a tokenizer is not a checkpoint */
    CHECK(llama_load(path, &m) == LLAMA_ERR_HEADER);

    /* Tokenizers: the wrong one for the model, truncated, bad fields. */
    data_path(path, sizeof path, "tok105.bin");
    CHECK(llama_tokenizer_load(path, 512, &t) == LLAMA_ERR_VOCAB);
    data_path(path, sizeof path, "tok512.bin");
    CHECK(llama_tokenizer_load(path, 105, &t) == LLAMA_ERR_VOCAB);
    data_path(path, sizeof path, "stories260K.bin");
    CHECK(llama_tokenizer_load(path, 512, &t) == LLAMA_ERR_TOKENIZER);
    for (i = 0; i < tbytes; i += i < 64 ? 1 : 97) {
        llama_status st = llama_tokenizer_load_mem(tb, i, 512, &t);
        CHECK(st == LLAMA_ERR_TOKENIZER || st == LLAMA_ERR_VOCAB);
    }
    memcpy(copy, tb, tbytes);
    put_i32(copy, 0);
    CHECK(llama_tokenizer_load_mem(copy, tbytes, 512, &t) == LLAMA_ERR_TOKENIZER);
    memcpy(copy, tb, tbytes);
    put_i32(copy + 8, -5); /* first piece's length */
    CHECK(llama_tokenizer_load_mem(copy, tbytes, 512, &t) == LLAMA_ERR_TOKENIZER);
    put_i32(copy + 8, 8); /* longer than max_token_length 7 */
    CHECK(llama_tokenizer_load_mem(copy, tbytes, 512, &t) == LLAMA_ERR_TOKENIZER);
    memcpy(copy, tb, tbytes);
    memcpy(copy + 4, &nan, 4); /* first score */
    CHECK(llama_tokenizer_load_mem(copy, tbytes, 512, &t) == LLAMA_ERR_TOKENIZER);
    CHECK(llama_tokenizer_load_mem(tb, tbytes, 0, &t) == LLAMA_ERR_ARG);
    free(copy), free(buf), free(tb);
}

static void test_llama_forward_args(void) {
    llama_state *s = NULL;
    int bad[2] = { 1, 512 }, neg = -1, ok[4] = { 1, 2, 3, 4 };
    CHECK(llama_state_create(&model, 4, 3, &s) == LLAMA_ERR_ARG);
    CHECK(llama_state_create(&model, 1, (size_t)model.c.seq_len + 1, &s) == LLAMA_ERR_ARG);
    CHECK(llama_state_create(&model, 2, 4, &s) == LLAMA_OK);
    if (!s) return;
    CHECK(llama_forward(&model, NULL, s, bad, 2, 0, NULL, NULL, NULL) == LLAMA_ERR_TOKEN);
    CHECK(llama_forward(&model, NULL, s, &neg, 1, 0, NULL, NULL, NULL) == LLAMA_ERR_TOKEN);
    CHECK(llama_forward(&model, NULL, s, ok, 3, 0, NULL, NULL, NULL) == LLAMA_ERR_TOKEN); /* T > max_T */
    CHECK(llama_forward(&model, NULL, s, ok, 2, 3, NULL, NULL, NULL) == LLAMA_ERR_TOKEN); /* past max_pos */
    CHECK(llama_forward(&model, NULL, s, ok, 2, 2, NULL, NULL, NULL) == LLAMA_OK);
    llama_state_free(s);
}

/* Calibration for the W4A8 tests: a few short sequences sampled from the model. */
static int make_calibs(const llama_model *m, size_t n, size_t len, llama_calibs *cs) {
    int *seqs = (int *)malloc(n * len * sizeof(int));
    w4a8_status wst;
    int ok = seqs && llama_generate_calib(m, n, len, 7, seqs) == LLAMA_OK &&
             llama_calibrate(m, seqs, n, len, cs, &wst) == LLAMA_OK;
    free(seqs);
    CHECK(ok);
    return ok;
}

static llama_qmodel *quantize(const llama_model *m, const llama_calibs *cs, w4a8_method method,
                               w4a8_act_mode mode, size_t group, llama_quantizer fn) {
    llama_spec spec;
    llama_qmodel *q = NULL;
    w4a8_status wst;
    memset(&spec, 0, sizeof spec);
    spec.method = method, spec.act_mode = mode, spec.group = group;
    CHECK(llama_quantize(m, cs, &spec, 0, fn, &q, &wst) == LLAMA_OK);
    return q;
}

/* A window as one batch equals the same tokens one at a time through the KV
   cache, bit for bit, in FP32 and W4A8 (per-token activations are per row). */
static void test_llama_batch_equals_incremental(void) {
    enum { T = 48 };
    size_t V = (size_t)model.c.vocab_size, t;
    float *batch = (float *)malloc(T * V * sizeof(float)), *step = (float *)malloc(T * V * sizeof(float));
    llama_calibs cs;
    llama_qmodel *q = NULL;
    int pass;
    if (!make_calibs(&model, 1, 32, &cs)) return;
    q = quantize(&model, &cs, W4A8_METHOD_RTN, W4A8_ACT_PER_TOKEN, 32, NULL);
    for (pass = 0; pass < 2 && q; pass++) {
        const llama_qmodel *qq = pass ? q : NULL;
        llama_state *s1 = NULL, *s2 = NULL;
        CHECK(llama_state_create(&model, T, T, &s1) == LLAMA_OK);
        CHECK(llama_state_create(&model, 1, T, &s2) == LLAMA_OK);
        CHECK(llama_forward(&model, qq, s1, stream, T, 0, batch, NULL, NULL) == LLAMA_OK);
        for (t = 0; t < T; t++) CHECK(llama_forward(&model, qq, s2, stream + t, 1, t, step + t * V, NULL, NULL) == LLAMA_OK);
        CHECK(memcmp(batch, step, T * V * sizeof(float)) == 0);
        llama_state_free(s1);
        llama_state_free(s2);
    }
    llama_qmodel_free(q);
    llama_calibs_free(&cs);
    free(batch), free(step);
}

/* The hook of test_llama_w4a8_math: every linear of the W4A8 forward, on
   the input that forward gave it, against its math in double. */
typedef struct math_ctx {
    const llama_qmodel *q;
    llama_state *s;
    size_t checked, bad;
    double worst; /* max |error| / bound */
} math_ctx;

static int math_hook(void *user, const char *name, int layer, llama_input which, const float *X, size_t T, size_t K) {
    static const int linears[4][3] = { { LLAMA_WQ, LLAMA_WK, LLAMA_WV }, { LLAMA_WO, -1, -1 },
                                       { LLAMA_W1, LLAMA_W3, -1 }, { LLAMA_W2, -1, -1 } };
    math_ctx *c = (math_ctx *)user;
    int j;
    (void)name;
    if (which == LLAMA_IN_CLS) return 0;
    for (j = 0; j < 3 && linears[which][j] >= 0; j++) {
        const w4a8_layer *L = c->q->lin[layer * LLAMA_LINEARS + linears[which][j]];
        size_t N = L->N, t, n, k;
        uint8_t *codes = (uint8_t *)malloc(N * K);
        float *W = (float *)malloc(N * K * sizeof(float)), *Y = (float *)malloc(T * N * sizeof(float));
        float *xs = (float *)malloc(T * sizeof(float));
        int8_t *xc = (int8_t *)malloc(T * K);
        int32_t *sums = (int32_t *)malloc(T * L->groups * sizeof(int32_t));
        CHECK_ST(w4a8_layer_codes(L, codes), W4A8_OK);
        CHECK_ST(w4a8_dequantize(codes, L->scales, L->zeros, N, K, L->G, W), W4A8_OK);
        CHECK_ST(w4a8_quantize_activations(X, T, K, L->G, NULL, W4A8_ACT_PER_TOKEN, 0.0f, xc, xs, sums), W4A8_OK);
        CHECK(llama_linear(&model, c->q, c->s, layer, linears[which][j], X, T, Y) == LLAMA_OK);
        for (t = 0; t < T; t++)
            for (n = 0; n < N; n++) {
                double y = 0.0, mag = 0.0, bound, err;
                for (k = 0; k < K; k++) {
                    y += (double)xc[t * K + k] * W[n * K + k];
                    mag += fabs((double)xc[t * K + k] * W[n * K + k]);
                }
                y *= xs[t], mag *= xs[t];
                /* Each group's float product, the float sum over the groups
                   and the token scale round once each (groups + 1 roundings of
                   at most 2^-24 of the magnitude); the dequantized weights
                   round once more. One extra for the second-order terms. */
                bound = (double)(L->groups + 3) * ldexp(1.0, -24) * mag + 1e-30;
                err = fabs((double)Y[t * N + n] - y);
                if (err / bound > c->worst) c->worst = err / bound;
                c->bad += err > bound;
                c->checked++;
            }
        free(codes), free(W), free(Y), free(xs), free(xc), free(sums);
    }
    return 0;
}

static void test_llama_w4a8_math(void) {
    enum { T = 64 };
    llama_calibs cs;
    llama_qmodel *q;
    llama_state *s = NULL;
    math_ctx c;
    float *logits = (float *)malloc(T * (size_t)model.c.vocab_size * sizeof(float));
    memset(&c, 0, sizeof c);
    if (!make_calibs(&model, 1, 32, &cs)) return;
    q = quantize(&model, &cs, W4A8_METHOD_RTN, W4A8_ACT_PER_TOKEN, 32, NULL);
    CHECK(llama_state_create(&model, T, T, &s) == LLAMA_OK);
    CHECK(llama_state_create(&model, T, T, &c.s) == LLAMA_OK);
    c.q = q;
    if (q && s && c.s) CHECK(llama_forward(&model, q, s, stream, T, 0, logits, math_hook, &c) == LLAMA_OK);
    /* 5 layers x (64 + 32 + 32 + 64 + 172 + 172 + 64) outputs x 64 tokens */
    CHECK(c.checked == (size_t)5 * 600 * T);
    CHECK(c.bad == 0);
    if (c.bad) printf("    %zu of %zu outputs beyond the bound, worst %.2f x\n", c.bad, c.checked, c.worst);
    /* w2's input (K = 172) has a short last group: 5 of 32 and one of 12. */
    CHECK(q && q->lin[LLAMA_W2]->groups == 6);
    llama_state_free(s);
    llama_state_free(c.s);
    llama_qmodel_free(q);
    llama_calibs_free(&cs);
    free(logits);
}

/* A stand-in method that equalizes like SmoothQuant (alpha 0.5) and rounds
   to nearest, to check the folding without the methods of the library. It
   records what it was given. */
static struct {
    float s2[4096];        /* the last w2 equalization */
    size_t H, calls_w2, w3_checked, w3_bad, order_bad;
    int seen_w2_in_layer;
    const llama_model *m;
    int layer;
} fake;

static w4a8_status fake_smooth(const w4a8_linear *lin, size_t count, size_t K, const w4a8_calib *calib,
                               const w4a8_config *cfg, w4a8_layer **layers, w4a8_report *rep) {
    float *wmax = (float *)malloc(K * sizeof(float)), *s = (float *)malloc(K * sizeof(float));
    size_t i, n, k;
    w4a8_status st = w4a8_weight_absmax(lin, count, K, wmax);
    if (st == W4A8_OK) st = w4a8_smooth_smoothquant(calib->absmax, wmax, K, 0.5f, s);
    if (K == fake.H) { /* w2: remember s for the w3 check that follows */
        memcpy(fake.s2, s, K * sizeof(float));
        fake.calls_w2++;
        fake.seen_w2_in_layer = 1;
    }
    if (count == 2) { /* w1/w3: w3 arrives with its rows divided by w2's s */
        size_t N3, K3;
        const float *w3 = llama__weight(fake.m, fake.layer, LLAMA_W3, &N3, &K3);
        if (!fake.seen_w2_in_layer) fake.order_bad++;
        for (n = 0; n < lin[1].N; n++)
            for (k = 0; k < K; k++, fake.w3_checked++) fake.w3_bad += lin[1].W[n * K + k] != w3[n * K + k] / fake.s2[n];
    }
    if (count == 1 && K != fake.H && !cfg->fold_smooth) fake.layer++, fake.seen_w2_in_layer = 0; /* wo ends a layer */
    for (i = 0; i < count && st == W4A8_OK; i++) {
        size_t N = lin[i].N, G = cfg->group_size < K ? cfg->group_size : K, groups = (K + G - 1) / G;
        float *Ws = (float *)malloc(N * K * sizeof(float)), *scales = (float *)malloc(N * groups * sizeof(float));
        uint8_t *codes = (uint8_t *)malloc(N * K), *zeros = (uint8_t *)malloc(N * groups);
        w4a8_layer_desc d;
        for (n = 0; n < N * K; n++) Ws[n] = lin[i].W[n] * s[n % K];
        st = w4a8_quantize_rtn(Ws, N, K, cfg->group_size, 0, codes, scales, zeros);
        memset(&d, 0, sizeof d);
        d.N = N, d.K = K, d.group_size = cfg->group_size, d.codes = codes, d.scales = scales, d.zeros = zeros;
        d.smooth = s, d.smooth_folded = cfg->fold_smooth, d.act_mode = cfg->act_mode;
        d.method = W4A8_METHOD_SMOOTHQUANT;
        if (st == W4A8_OK) st = w4a8_layer_create(&d, &layers[i]);
        free(Ws), free(scales), free(codes), free(zeros);
    }
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->method = W4A8_METHOD_SMOOTHQUANT, rep->act_mode = cfg->act_mode, rep->equalized = 1, rep->loss = -1.0;
    }
    free(wmax), free(s);
    return st;
}

/* The same layer, with the forward dividing X by s instead of the caller. */
static w4a8_layer *unfolded(const w4a8_layer *L) {
    w4a8_layer_desc d;
    w4a8_layer *out = NULL;
    uint8_t *codes = (uint8_t *)malloc(L->N * L->K);
    w4a8_layer_codes(L, codes);
    memset(&d, 0, sizeof d);
    d.N = L->N, d.K = L->K, d.group_size = L->G, d.codes = codes, d.scales = L->scales, d.zeros = L->zeros;
    d.smooth = L->smooth, d.smooth_folded = 0, d.act_mode = L->act_mode, d.act_scale = L->act_scale, d.method = L->method;
    CHECK_ST(w4a8_layer_create(&d, &out), W4A8_OK);
    free(codes);
    return out;
}

static void test_llama_folding(void) {
    size_t D = (size_t)model.c.dim, L = (size_t)model.c.n_layers, l, k, j, gamma_bad = 0;
    llama_calibs cs;
    llama_qmodel *q, ref;
    llama_entry e[3] = { { NULL, NULL, 0, 0 } };
    llama_metrics mt[3], mu[2];
    memset(e, 0, sizeof e);
    if (!make_calibs(&model, 2, 64, &cs)) return;
    memset(&fake, 0, sizeof fake);
    fake.H = (size_t)model.c.hidden_dim, fake.m = &model;
    q = quantize(&model, &cs, W4A8_METHOD_SMOOTHQUANT, W4A8_ACT_PER_TOKEN, 32, fake_smooth);
    if (!q) {
        llama_calibs_free(&cs);
        return;
    }
    CHECK(fake.calls_w2 == L && fake.order_bad == 0 && fake.w3_checked == L * D * (size_t)model.c.hidden_dim);
    CHECK(fake.w3_bad == 0);
    /* q/k/v and w1/w3 fold into the gammas; wo divides at run time. */
    for (l = 0; l < L; l++) {
        const w4a8_layer *const *lin = (const w4a8_layer *const *)q->lin + l * LLAMA_LINEARS;
        CHECK(lin[LLAMA_WQ]->smooth_folded && lin[LLAMA_W1]->smooth_folded && lin[LLAMA_W2]->smooth_folded);
        CHECK(!lin[LLAMA_WO]->smooth_folded && lin[LLAMA_WO]->smooth);
        for (k = 0; k < D; k++) {
            gamma_bad += q->rms_att[l * D + k] != model.rms_att[l * D + k] / lin[LLAMA_WQ]->smooth[k];
            gamma_bad += q->rms_ffn[l * D + k] != model.rms_ffn[l * D + k] / lin[LLAMA_W1]->smooth[k];
        }
    }
    CHECK(gamma_bad == 0);
    /* The same codes with the division left to the forward and the gammas
       untouched compute the same function: they differ only where float
       rounding moves an activation across a rounding boundary. */
    memset(&ref, 0, sizeof ref);
    ref.n_layers = (int)L;
    ref.rms_att = model.rms_att, ref.rms_ffn = model.rms_ffn, ref.rms_final = model.rms_final;
    ref.lin = (w4a8_layer **)calloc(L * LLAMA_LINEARS, sizeof *ref.lin);
    for (j = 0; j < L * LLAMA_LINEARS; j++) {
        int w = (int)(j % LLAMA_LINEARS);
        ref.lin[j] = w == LLAMA_WQ || w == LLAMA_WK || w == LLAMA_WV || w == LLAMA_W1 || w == LLAMA_W3
                         ? unfolded(q->lin[j]) : q->lin[j];
    }
    e[0].m = e[1].m = e[2].m = &model;
    e[0].q = NULL, e[1].q = &ref, e[2].q = q;
    CHECK(llama_evaluate(e, 3, stream, 1, mt) == LLAMA_OK);
    CHECK(llama_evaluate(e + 1, 2, stream, 1, mu) == LLAMA_OK);
    /* quantization error vs rounding-boundary noise: orders of magnitude apart */
    CHECK(mt[1].kl > 0.0 && mu[1].kl < 0.01 * mt[1].kl);
    CHECK(fabs(llama_ppl(&mt[1]) - llama_ppl(&mt[2])) < 0.01 * llama_ppl(&mt[1]));
    for (j = 0; j < L * LLAMA_LINEARS; j++)
        if (ref.lin[j] != q->lin[j]) w4a8_layer_free(ref.lin[j]);
    free(ref.lin);
    llama_qmodel_free(q);
    llama_calibs_free(&cs);
}

/* max|x| of channel c over the qkv input of layer 0 (the hook's view). */
typedef struct amax_ctx {
    float amax[64];
} amax_ctx;

static int amax_hook(void *user, const char *name, int layer, llama_input which, const float *X, size_t T, size_t K) {
    amax_ctx *a = (amax_ctx *)user;
    size_t t, k;
    (void)name;
    if (layer != 0 || which != LLAMA_IN_QKV || K > 64) return 0;
    CHECK(strcmp(name, "L0.qkv") == 0);
    for (t = 0; t < T; t++)
        for (k = 0; k < K; k++)
            if (fabsf(X[t * K + k]) > a->amax[k]) a->amax[k] = fabsf(X[t * K + k]);
    return 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_llama_outliers(void) {
    llama_model v;
    llama_entry e[2] = { { NULL, NULL, 0, 0 } };
    llama_metrics mt[2];
    llama_state *s = NULL;
    amax_ctx a, b;
    float sorted[64];
    double rel;
    memset(e, 0, sizeof e);
    if (llama_inject_outliers(&model, &v) != LLAMA_OK) {
        CHECK(0);
        return;
    }
    e[0].m = &v, e[0].q = NULL, e[1].m = &model, e[1].q = NULL;
    CHECK(llama_evaluate(e, 2, stream, 2, mt) == LLAMA_OK);
    rel = fabs(llama_ppl(&mt[0]) - llama_ppl(&mt[1])) / llama_ppl(&mt[1]);
    CHECK(rel <= 1e-4);
    CHECK(mt[1].top1 == mt[1].tokens);
    /* The variant's layer-0 qkv input has channels far above the median;
       the original's does not. */
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
    CHECK(llama_state_create(&model, 64, 64, &s) == LLAMA_OK);
    CHECK(llama_forward(&model, NULL, s, stream, 64, 0, NULL, amax_hook, &a) == LLAMA_OK);
    CHECK(llama_forward(&v, NULL, s, stream, 64, 0, NULL, amax_hook, &b) == LLAMA_OK);
    memcpy(sorted, a.amax, sizeof sorted);
    qsort(sorted, 64, sizeof(float), cmp_float);
    CHECK(sorted[63] < 20.0f * sorted[32]);
    memcpy(sorted, b.amax, sizeof sorted);
    qsort(sorted, 64, sizeof(float), cmp_float);
    CHECK(sorted[63] > 100.0f * sorted[32]);
    llama_state_free(s);
    llama_free(&v);
}

/* Per-tensor static activations with per-token weights: valid layers, and
   the metrics of a parallel evaluation do not depend on the thread count. */
static void test_llama_eval_deterministic(void) {
    llama_calibs cs;
    llama_qmodel *q1, *q2;
    llama_entry e[3] = { { NULL, NULL, 0, 0 } };
    llama_metrics a[3], b[3];
    int l;
#ifdef _OPENMP
    int threads = omp_get_max_threads();
#endif
    memset(e, 0, sizeof e);
    if (!make_calibs(&model, 2, 64, &cs)) return;
    q1 = quantize(&model, &cs, W4A8_METHOD_RTN, W4A8_ACT_PER_TOKEN, 128, NULL);
    q2 = quantize(&model, &cs, W4A8_METHOD_RTN, W4A8_ACT_PER_TENSOR, 32, NULL);
    if (q1 && q2) {
        for (l = 0; l < q2->n_layers; l++) {
            CHECK(q2->lin[l * LLAMA_LINEARS + LLAMA_W2]->act_mode == W4A8_ACT_PER_TENSOR);
            CHECK(q2->rep[l * LLAMA_INPUTS_PER_LAYER + LLAMA_IN_QKV].act_mode == W4A8_ACT_PER_TENSOR);
            CHECK(q1->lin[l * LLAMA_LINEARS + LLAMA_WQ]->G == (size_t)model.c.dim); /* group 128 > K */
        }
        e[0].m = e[1].m = e[2].m = &model;
        e[0].q = NULL, e[1].q = q1, e[2].q = q2;
#ifdef _OPENMP
        omp_set_num_threads(1);
#endif
        CHECK(llama_evaluate(e, 3, stream, 3, a) == LLAMA_OK);
#ifdef _OPENMP
        omp_set_num_threads(3);
#endif
        CHECK(llama_evaluate(e, 3, stream, 3, b) == LLAMA_OK);
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
        CHECK(memcmp(a, b, sizeof a) == 0);
        CHECK(a[0].kl == 0.0 && a[0].top1 == a[0].tokens && a[0].tokens == 3 * 256);
        /* W4A8 moves the distribution, but not beyond recognition. */
        CHECK(a[1].kl > 0.0 && a[1].kl / (double)a[1].tokens < 0.5 && a[1].top1 > a[1].tokens / 2);
    }
    llama_qmodel_free(q1);
    llama_qmodel_free(q2);
    llama_calibs_free(&cs);
}

/* QuaRot's rotation keeps the FP32 function. Both models compute one real
   function and differ by rounding only. A logit ends a chain of 4 L + 1 dot
   products (length <= max(dim, hidden)) and the Hadamard transforms of its
   inputs (chain(n) roundings: log2 p + m + 1); with rounding errors
   unbiased and independent, the standard probabilistic model (Higham and
   Mary 2019), its relative error is within sqrt(R) u, R = (4 L + 1)
   (max(dim, hidden) + chain(dim) + chain(hidden)); |NLL' - NLL| <= 2 max_v
   |z'_v - z_v|, so |PPL' / PPL - 1| <~ 2 sqrt(R) u max|z| (max|z| measured). */
static double chain_len(size_t n) {
    size_t m = 1, p, d = 0;
    w4a8_hadamard_order(n, &m);
    for (p = n / m; p > 1; p /= 2) d++;
    return (double)(d + m + 1);
}

static void test_llama_rotate_fp32(void) {
    size_t V = (size_t)model.c.vocab_size, D = (size_t)model.c.dim, H = (size_t)model.c.hidden_dim, i;
    size_t K = D > H ? D : H;
    double R = (4.0 * model.c.n_layers + 1) * ((double)K + chain_len(D) + chain_len(H)), zmax = 0.0, bound;
    float *logits = (float *)malloc(256 * V * sizeof(float));
    llama_state *s = NULL;
    llama_model r[2], bad;
    llama_entry e[3] = { { NULL, NULL, 0, 0 } };
    llama_metrics mt[3];
    int online;
    CHECK(llama_state_create(&model, 256, 256, &s) == LLAMA_OK);
    CHECK(s && llama_forward(&model, NULL, s, stream, 256, 0, logits, NULL, NULL) == LLAMA_OK);
    for (i = 0; s && i < 256 * V; i++) zmax = fabs(logits[i]) > zmax ? fabs(logits[i]) : zmax;
    bound = 2.0 * sqrt(R) * (FLT_EPSILON / 2) * zmax;
    for (online = 0; online < 2; online++) CHECK(llama_rotate(&model, 5, online, &r[online]) == LLAMA_OK);
    CHECK(model.shared && !r[0].shared && r[0].wcls != r[0].emb && r[1].online_w2 && !r[0].online_w2);
    CHECK(r[0].rms_att[3] == 1.0f && r[0].rms_ffn[D] == 1.0f && r[0].rms_final[D - 1] == 1.0f);
    e[0].m = &model, e[1].m = &r[0], e[2].m = &r[1];
    e[0].q = e[1].q = e[2].q = NULL;
    CHECK(llama_evaluate(e, 3, stream, 4, mt) == LLAMA_OK);
    for (i = 1; i < 3; i++) {
        double rel = fabs(llama_ppl(&mt[i]) / llama_ppl(&mt[0]) - 1.0);
        CHECK(rel <= bound);
        CHECK(mt[i].top1 == mt[i].tokens);
        if (rel > bound) printf("    rotated PPL off by %.3g (bound %.3g)\n", rel, bound);
    }
    CHECK(llama_rotate(&r[1], 5, 0, &bad) == LLAMA_ERR_ARG);
    bad = model;
    bad.c.hidden_dim = 170; /* 85 * 2: no Hadamard matrix of that order */
    CHECK(llama_rotate(&bad, 5, 1, &r[0]) == LLAMA_ERR_W4A8 && r[0].online_w2 == 0);
    llama_free(&r[0]);
    llama_free(&r[1]);
    llama_state_free(s);
    free(logits);
}

/* On the outlier variant, per-tensor static activations: rotation (gammas
   folded, the stream rotated, w2's input rotated online) spreads the outliers
   and beats the same quantization without it; its w2 layers rotate online. */
static void test_llama_rotate_outliers(void) {
    llama_model v, r;
    llama_calibs c0, c1;
    llama_qmodel *q0 = NULL, *q1 = NULL;
    llama_entry e[3] = { { NULL, NULL, 0, 0 } };
    llama_metrics mt[3];
    int l;
    if (llama_inject_outliers(&model, &v) != LLAMA_OK) {
        CHECK(0);
        return;
    }
    CHECK(llama_rotate(&v, 3, 1, &r) == LLAMA_OK);
    if (make_calibs(&v, 2, 64, &c0) && make_calibs(&r, 2, 64, &c1)) {
        q0 = quantize(&v, &c0, W4A8_METHOD_RTN, W4A8_ACT_PER_TENSOR, 32, NULL);
        q1 = quantize(&r, &c1, W4A8_METHOD_RTN, W4A8_ACT_PER_TENSOR, 32, NULL);
        for (l = 0; q1 && l < q1->n_layers; l++)
            CHECK(q1->lin[l * LLAMA_LINEARS + LLAMA_W2]->rotate && !q1->lin[l * LLAMA_LINEARS + LLAMA_W1]->rotate);
        e[0].m = &model, e[0].q = NULL, e[1].m = &v, e[1].q = q0, e[2].m = &r, e[2].q = q1;
        CHECK(q0 && q1 && llama_evaluate(e, 3, stream, 3, mt) == LLAMA_OK);
        CHECK(mt[2].kl < 0.5 * mt[1].kl);
        llama_calibs_free(&c0);
        llama_calibs_free(&c1);
    }
    llama_qmodel_free(q0);
    llama_qmodel_free(q1);
    llama_free(&r);
    llama_free(&v);
}

void tests_llama2(void) {
    const char *env = getenv("W4A8_DATA"), *skip = NULL;
    char path[1200], tpath[1200];
    size_t bytes;
    char *text = NULL;
    snprintf(data_dir, sizeof data_dir, "%s", env && *env ? env : "../shared/data");
    data_path(path, sizeof path, "stories260K.bin");
    data_path(tpath, sizeof tpath, "tok512.bin");
    if (llama_load(path, &model) != LLAMA_OK || llama_tokenizer_load(tpath, 512, &tok) != LLAMA_OK) {
        printf("llama2: skipped: no data at %s (set W4A8_DATA)\n", data_dir);
        skip = "no data";
    } else {
        data_path(path, sizeof path, "tinystories_valid_first1000.txt");
        if (llama__read_file(path, (size_t)64 << 20, &text, &bytes) != LLAMA_OK ||
            llama_encode_stories(&tok, text, bytes, &stream, &stream_len) != LLAMA_OK) {
            printf("llama2: cannot read %s\n", path);
            test_failed++;
            skip = "no text";
        }
    }
    RUN_UNLESS(skip, test_llama_greedy);
    RUN_UNLESS(skip, test_llama_tokenizer);
    RUN_UNLESS(skip, test_llama_loader_errors);
    RUN_UNLESS(skip, test_llama_forward_args);
    RUN_UNLESS(skip, test_llama_batch_equals_incremental);
    RUN_UNLESS(skip, test_llama_w4a8_math);
    RUN_UNLESS(skip, test_llama_folding);
    RUN_UNLESS(skip, test_llama_outliers);
    RUN_UNLESS(skip, test_llama_eval_deterministic);
    RUN_UNLESS(skip, test_llama_rotate_fp32);
    RUN_UNLESS(skip, test_llama_rotate_outliers);
    free(text);
    free(stream);
    llama_tokenizer_free(&tok);
    llama_free(&model);
}
