/* Hardening (issue 18): what fuzzing and hostile use found, one test per
   defect; each failed before its fix. The programs' own output checks are
   in tests/programs.sh, the heatmap tool's in tests/test_heatmap.c. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../examples/llama/llama.h"
#include "cuda_layers.h"
#include "test.h"

/* A layer's file image (malloc'd) and its length. */
static unsigned char *saved(const w4a8_layer *L, size_t *bytes) {
    unsigned char *buf = NULL;
    *bytes = 0;
    CHECK_ST(w4a8_layer_save_size(L, bytes), W4A8_OK);
    buf = (unsigned char *)malloc(*bytes);
    CHECK_ST(w4a8_layer_save_mem(L, buf, *bytes), W4A8_OK);
    return buf;
}

/* The CRC-32 w4a8.h writes, recomputed after an edit (bitwise, on purpose
   not the header's table). */
static void fix_crc(unsigned char *b, size_t bytes) {
    uint32_t c = 0xffffffffu;
    size_t i;
    int k;
    for (i = 0; i + 4 < bytes; i++) {
        c ^= b[i];
        for (k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    c = ~c;
    for (k = 0; k < 4; k++) b[bytes - 4 + (size_t)k] = (unsigned char)(c >> (8 * k));
}

/* Defect 3: a directory is a path error, not a 2^63-byte allocation. */
static void test_harden_load_directory(void) {
    w4a8_layer *L = NULL;
    CHECK_ST(w4a8_layer_load("build", W4A8_KERNEL_AUTO, &L), W4A8_ERR_FILE_IO);
    CHECK_ST(w4a8_layer_load(".", W4A8_KERNEL_SCALAR, &L), W4A8_ERR_FILE_IO);
    CHECK(L == NULL);
}

/* Defect 5: every file that loads saves back byte for byte; the two
   non-canonical headers that did not are rejected. */
static void test_harden_canonical_file(void) {
    static const struct {
        size_t N, K, G;
        int asym, mode, smooth, folded, bias;
    } cases[] = { { 5, 40, 32, 0, W4A8_ACT_PER_TOKEN, 0, 0, 0 }, { 3, 33, 8, 1, W4A8_ACT_PER_TENSOR, 1, 0, 1 },
                  { 7, 64, 64, 1, W4A8_ACT_PER_TOKEN, 1, 1, 1 } };
    size_t c, bytes, bytes2;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        w4a8_layer *L = random_layer(cases[c].N, cases[c].K, cases[c].G, cases[c].asym, (w4a8_act_mode)cases[c].mode,
                                     cases[c].smooth, cases[c].folded, cases[c].bias, 40 + c);
        w4a8_layer *back = NULL;
        unsigned char *a, *b;
        if (!L) continue;
        a = saved(L, &bytes);
        CHECK_ST(w4a8_layer_load_mem(a, bytes, W4A8_KERNEL_AUTO, &back), W4A8_OK);
        if (back) { /* the same bytes, and the same function */
            float *X = tokens(3, L->K, 7), *y1 = (float *)malloc(3 * L->N * 4), *y2 = (float *)malloc(3 * L->N * 4);
            CHECK_ST(w4a8_layer_forward(L, X, 3, y1, NULL, 0), W4A8_OK);
            CHECK_ST(w4a8_layer_forward(back, X, 3, y2, NULL, 0), W4A8_OK);
            CHECK(memcmp(y1, y2, 3 * L->N * 4) == 0);
            free(X), free(y1), free(y2);
            b = saved(back, &bytes2);
            CHECK(bytes2 == bytes && memcmp(a, b, bytes) == 0);
            free(b);
            w4a8_layer_free(back);
            back = NULL;
        }
        if (cases[c].mode == W4A8_ACT_PER_TOKEN) { /* an act_scale a per-token layer does not have */
            static const float junk[] = { 1.0f, -0.0f };
            size_t j;
            for (j = 0; j < 2; j++) {
                memcpy(a + 40, &junk[j], 4);
                fix_crc(a, bytes);
                CHECK_ST(w4a8_layer_load_mem(a, bytes, W4A8_KERNEL_AUTO, &back), W4A8_ERR_FILE_FORMAT);
            }
        }
        free(a);
        w4a8_layer_free(L);
    }
    { /* "smooth folded" without "smooth" */
        w4a8_layer *L = random_layer(4, 16, 16, 0, W4A8_ACT_PER_TOKEN, 0, 0, 0, 9), *back = NULL;
        unsigned char *a = L ? saved(L, &bytes) : NULL;
        if (a) {
            a[32] |= 8;
            fix_crc(a, bytes);
            CHECK_ST(w4a8_layer_load_mem(a, bytes, W4A8_KERNEL_AUTO, &back), W4A8_ERR_FILE_FORMAT);
            a[32] &= (unsigned char)~8u; /* the edit and the CRC helper are what changed */
            fix_crc(a, bytes);
            CHECK_ST(w4a8_layer_load_mem(a, bytes, W4A8_KERNEL_AUTO, &back), W4A8_OK);
            w4a8_layer_free(back);
        }
        free(a);
        w4a8_layer_free(L);
    }
}

/* Defect 7: an equalization below W4A8_SMOOTH_MIN (1.8e-38 made every
   ordinary forward fail) is refused where a layer is made or loaded; at the
   floor, ordinary inputs run. */
static void test_harden_smooth_floor(void) {
    enum { N = 4, K = 16 };
    uint8_t codes[N * K], zeros[N];
    float scales[N], s[K], X[2 * K], Y[2 * N];
    w4a8_layer_desc d;
    w4a8_layer *L = NULL, *back = NULL;
    size_t i, bytes;
    unsigned char *a;
    for (i = 0; i < N * K; i++) codes[i] = (uint8_t)(i % 16);
    for (i = 0; i < N; i++) zeros[i] = 8, scales[i] = 0.1f;
    for (i = 0; i < K; i++) s[i] = 1.0f;
    for (i = 0; i < 2 * K; i++) X[i] = (float)i - 10.0f;
    memset(&d, 0, sizeof d);
    d.N = N, d.K = K, d.group_size = K, d.codes = codes, d.scales = scales, d.zeros = zeros, d.smooth = s;
    s[3] = 1.8e-38f;
    CHECK_ST(w4a8_layer_create(&d, &L), W4A8_ERR_RANGE);
    s[3] = W4A8_SMOOTH_MIN * 0.99f;
    CHECK_ST(w4a8_layer_create(&d, &L), W4A8_ERR_RANGE);
    s[3] = W4A8_SMOOTH_MIN;
    CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
    if (!L) return;
    CHECK_ST(w4a8_layer_forward(L, X, 2, Y, NULL, 0), W4A8_OK);
    X[3] = 1e30f; /* 1e30 / 1e-5 is still a float */
    CHECK_ST(w4a8_layer_forward(L, X, 2, Y, NULL, 0), W4A8_OK);
    a = saved(L, &bytes);
    {
        float tiny = 1.8e-38f;
        size_t at = bytes - 4 - 4 * K + 4 * 3; /* smooth[3], the last section before the CRC */
        memcpy(a + at, &tiny, 4);
        fix_crc(a, bytes);
        CHECK_ST(w4a8_layer_load_mem(a, bytes, W4A8_KERNEL_AUTO, &back), W4A8_ERR_FILE_FORMAT);
        CHECK(back == NULL);
    }
    free(a);
    w4a8_layer_free(L);
}

/* Defect 8: a bad kernel argument is W4A8_ERR_CONFIG, whatever the file. */
static void test_harden_load_bad_kernel(void) {
    w4a8_layer *L = random_layer(3, 8, 8, 0, W4A8_ACT_PER_TOKEN, 0, 0, 0, 5), *back = NULL;
    size_t bytes;
    unsigned char *a = L ? saved(L, &bytes) : NULL;
    if (!a) return;
    CHECK_ST(w4a8_layer_load_mem(a, bytes, (w4a8_kernel)77, &back), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_layer_load_mem(a, bytes, (w4a8_kernel)-1, &back), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_layer_load_mem("nonsense", 8, (w4a8_kernel)77, &back), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_layer_load("build/no such layer", (w4a8_kernel)77, &back), W4A8_ERR_CONFIG);
    CHECK_ST(w4a8_layer_load_mem(a, bytes, W4A8_KERNEL_SCALAR, &back), W4A8_OK);
    CHECK(back == NULL || back->kernel == W4A8_KERNEL_SCALAR);
    w4a8_layer_free(back);
    free(a);
    w4a8_layer_free(L);
}

/* Sharp edge 1: GPTQ, and every method with GPTQ weights, on a calibration
   that saw only zeros says so instead of zeroing every weight. */
static void test_harden_gptq_zero_calib(void) {
    enum { N = 6, K = 32, T = 64 };
    static float W[N * K], X[T * K];
    static const w4a8_method methods[] = { W4A8_METHOD_GPTQ, W4A8_METHOD_SMOOTHQUANT, W4A8_METHOD_FPTQ };
    w4a8_calib *calib = NULL;
    w4a8_config cfg;
    w4a8_layer *L = NULL;
    uint64_t seed = 3;
    size_t i;
    for (i = 0; i < N * K; i++) W[i] = test_normal(&seed);
    CHECK_ST(w4a8_calib_create(K, 1, 16, &calib), W4A8_OK);
    if (!calib) return;
    CHECK_ST(w4a8_calib_add(calib, X, T), W4A8_OK); /* all zero */
    for (i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        w4a8_config_init(&cfg);
        cfg.group_size = 32;
        cfg.method = methods[i];
        cfg.gptq_weights = methods[i] != W4A8_METHOD_GPTQ;
        CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, calib, &cfg, &L), W4A8_ERR_ZERO_CALIB);
        CHECK(L == NULL);
    }
    /* One live input is enough. */
    for (i = 0; i < T; i++) X[i * K + 5] = (float)(i % 3) - 1.0f;
    w4a8_calib_free(calib);
    calib = NULL;
    CHECK_ST(w4a8_calib_create(K, 1, 16, &calib), W4A8_OK);
    if (!calib) return;
    CHECK_ST(w4a8_calib_add(calib, X, T), W4A8_OK);
    w4a8_config_init(&cfg);
    cfg.group_size = 32;
    cfg.method = W4A8_METHOD_GPTQ;
    CHECK_ST(w4a8_layer_quantize(W, N, K, NULL, calib, &cfg, &L), W4A8_OK);
    w4a8_layer_free(L);
    w4a8_calib_free(calib);
}

/* Sharp edge 2, as w4a8.h's ERRORS says: finite inputs whose float
   arithmetic overflows give Inf (or NaN where overflows of both signs meet)
   with W4A8_OK, the same bits on every kernel. */
static void test_harden_forward_overflow(void) {
    enum { N = 3, K = 16, G = 8 };
    uint8_t codes[N * K], zeros[N * 2];
    float scales[N * 2], X[K], Y[N], want[N];
    w4a8_layer_desc d;
    int k;
    size_t i;
    for (i = 0; i < N * K; i++) codes[i] = 15;
    for (i = 0; i < K; i++) codes[2 * K + i] = i < G ? 15 : 0; /* row 2: +max in group 0, -max in group 1 */
    for (i = 0; i < N * 2; i++) zeros[i] = 0, scales[i] = 1.0f;
    zeros[5] = 15;
    scales[0] = scales[1] = 3e38f; /* row 0: each group's product overflows */
    scales[2] = scales[3] = 1e30f; /* row 1: finite groups, x_scale takes it past FLT_MAX */
    scales[4] = scales[5] = 3e38f; /* row 2: +Inf + -Inf */
    for (i = 0; i < K; i++) X[i] = 1e30f;
    memset(&d, 0, sizeof d);
    d.N = N, d.K = K, d.group_size = G, d.asymmetric = 1, d.codes = codes, d.scales = scales, d.zeros = zeros;
    for (k = W4A8_KERNEL_SCALAR; k < W4A8_KERNEL_COUNT; k++) {
        w4a8_layer *L = NULL;
        w4a8_kernel got;
        if (w4a8_kernel_resolve((w4a8_kernel)k, &got) != W4A8_OK) continue;
        d.kernel = (w4a8_kernel)k;
        CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
        if (!L) continue;
        CHECK_ST(w4a8_layer_forward(L, X, 1, Y, NULL, 0), W4A8_OK);
        CHECK(isinf(Y[0]) && Y[0] > 0 && isinf(Y[1]) && Y[1] > 0 && isnan(Y[2]));
        if (k == W4A8_KERNEL_SCALAR) memcpy(want, Y, sizeof want);
        else CHECK(memcmp(want, Y, sizeof want) == 0);
        w4a8_layer_free(L);
    }
}

/* A llama2.c tokenizer image of `count` pieces "a", "b", ... */
static unsigned char *tiny_tokenizer(int count, size_t *bytes) {
    unsigned char *b = (unsigned char *)malloc(4 + 9 * (size_t)count), *p = b;
    int32_t one = 1;
    int i;
    memcpy(p, &one, 4);
    p += 4;
    for (i = 0; i < count; i++) {
        float score = (float)-i;
        memcpy(p, &score, 4);
        memcpy(p + 4, &one, 4);
        p[8] = (unsigned char)('a' + i);
        p += 9;
    }
    *bytes = (size_t)(p - b);
    return b;
}

/* Defect 6: vocabularies without room for <unk>, BOS and EOS are refused
   at load, so encode never emits an id the vocabulary lacks. */
static void test_harden_small_vocab(void) {
    int count;
    for (count = 1; count <= 4; count++) {
        size_t bytes, n = 0, i;
        unsigned char *img = tiny_tokenizer(count, &bytes);
        llama_tokenizer t;
        int *ids = NULL;
        llama_status st = llama_tokenizer_load_mem(img, bytes, count, &t);
        CHECK(st == (count <= LLAMA_EOS ? LLAMA_ERR_SMALL_VOCAB : LLAMA_OK));
        if (st == LLAMA_OK) {
            CHECK(llama_encode_stories(&t, "ab zz\n<|endoftext|>\nc", 21, &ids, &n) == LLAMA_OK);
            CHECK(n > 2 && ids[0] == LLAMA_BOS);
            for (i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < count);
            free(ids);
            llama_tokenizer_free(&t);
        }
        free(img);
    }
}

/* Defect 9 (the engine's part): a directory as the model is a read error,
   not a short file. */
static void test_harden_model_directory(void) {
    llama_model m;
    CHECK(llama_load("build", &m) == LLAMA_ERR_IO);
    CHECK(llama_load(".", &m) == LLAMA_ERR_IO);
}

void tests_harden(void) {
    RUN(test_harden_load_directory);
    RUN(test_harden_canonical_file);
    RUN(test_harden_smooth_floor);
    RUN(test_harden_load_bad_kernel);
    RUN(test_harden_gptq_zero_calib);
    RUN(test_harden_forward_overflow);
    RUN(test_harden_small_vocab);
    RUN(test_harden_model_directory);
}
