/* fuzz_layer - the layer file (w4a8_layer_load_mem).

   Input: one mode byte, then a file image. Mode bit 0 rewrites the image's
   CRC before loading, so that mutations reach the fields behind it.
   Whatever loads must (1) save back to the same bytes (a version-1 file:
   to the same bytes with version 2 and its CRC), (2) load again, and
   (3) run a forward with the same status and the same bits on every kernel
   this CPU and the layer's shape allow, from the same portable codes. */
#define W4A8_IMPLEMENTATION
#include "../../w4a8.h"
#include "fuzz.h"

/* CRC-32 (IEEE), bitwise: not the header's code. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

/* Rewrites the last four bytes with the CRC of the rest. */
static void put_crc(uint8_t *file, size_t bytes) {
    uint32_t c = crc32_bitwise(file, bytes - 4);
    int b;
    for (b = 0; b < 4; b++) file[bytes - 4 + (size_t)b] = (uint8_t)(c >> (8 * b));
}

static uint8_t *save(const w4a8_layer *L, size_t *bytes) {
    uint8_t *buf;
    FUZZ_CHECK(w4a8_layer_save_size(L, bytes) == W4A8_OK);
    buf = (uint8_t *)malloc(*bytes);
    FUZZ_CHECK(buf && w4a8_layer_save_mem(L, buf, *bytes) == W4A8_OK);
    return buf;
}

/* M tokens for a layer of K inputs: ordinary values, one outlier channel,
   and (from the seed) now and then a huge or tiny one. */
static float *tokens(size_t M, size_t K, uint64_t seed) {
    float *X = (float *)malloc(M * K * sizeof(float));
    size_t i;
    FUZZ_CHECK(X != NULL);
    for (i = 0; i < M * K; i++) X[i] = fuzz_uniform(&seed) * 4.0f;
    X[(size_t)(seed % (M * K))] *= 100.0f;
    if (seed & 1) X[(size_t)(seed >> 8) % (M * K)] = (seed & 2) ? 3e38f : 1e-40f;
    return X;
}

static void check_layer(const uint8_t *file, size_t bytes, const w4a8_layer *ref) {
    enum { M = 3 };
    const size_t N = ref->N, K = ref->K;
    uint64_t seed = crc32_bitwise(file, bytes < 64 ? bytes : 64);
    float *X, *want, *got;
    uint8_t *codes, *codes_k, *again;
    w4a8_status st_want;
    size_t again_bytes;
    w4a8_layer *L2 = NULL;
    int k;
    /* (1), (2): one layer, one byte string; saving upgrades version 1 to 2 */
    again = save(ref, &again_bytes);
    FUZZ_CHECK(again_bytes == bytes);
    if (file[4] == 1) {
        uint8_t *upgraded = (uint8_t *)malloc(bytes);
        FUZZ_CHECK(upgraded != NULL && W4A8_FORMAT_VERSION == 2);
        memcpy(upgraded, file, bytes);
        upgraded[4] = 2;
        put_crc(upgraded, bytes);
        FUZZ_CHECK(memcmp(again, upgraded, bytes) == 0);
        free(upgraded);
    } else
        FUZZ_CHECK(memcmp(again, file, bytes) == 0);
    FUZZ_CHECK(w4a8_layer_load_mem(again, again_bytes, W4A8_KERNEL_SCALAR, &L2) == W4A8_OK);
    w4a8_layer_free(L2);
    free(again);
    /* (3): every kernel, the scalar one's bits */
    if (N * K > ((size_t)1 << 22)) return;
    X = tokens(M, K, seed);
    want = (float *)malloc(M * N * sizeof(float));
    got = (float *)malloc(M * N * sizeof(float));
    codes = (uint8_t *)malloc(N * K);
    codes_k = (uint8_t *)malloc(N * K);
    FUZZ_CHECK(want && got && codes && codes_k);
    FUZZ_CHECK(w4a8_layer_codes(ref, codes) == W4A8_OK);
    st_want = w4a8_layer_forward(ref, X, M, want, NULL, 0);
    FUZZ_CHECK(st_want == W4A8_OK || st_want == W4A8_ERR_NONFINITE);
    for (k = W4A8_KERNEL_SCALAR + 1; k < W4A8_KERNEL_COUNT; k++) {
        w4a8_kernel have;
        w4a8_layer *L = NULL;
        w4a8_status st;
        if (w4a8_kernel_resolve((w4a8_kernel)k, &have) != W4A8_OK) continue;
        st = w4a8_layer_load_mem(file, bytes, (w4a8_kernel)k, &L);
        if (st == W4A8_ERR_UNSUPPORTED) continue; /* groups not a multiple of 8 */
        FUZZ_CHECK(st == W4A8_OK && L->kernel == (w4a8_kernel)k);
        FUZZ_CHECK(w4a8_layer_codes(L, codes_k) == W4A8_OK && memcmp(codes, codes_k, N * K) == 0);
        memset(got, 0, M * N * sizeof(float));
        FUZZ_CHECK(w4a8_layer_forward(L, X, M, got, NULL, 0) == st_want);
        FUZZ_CHECK(st_want != W4A8_OK || memcmp(want, got, M * N * sizeof(float)) == 0);
        w4a8_layer_free(L);
    }
    free(X), free(want), free(got), free(codes), free(codes_k);
}

/* Layers of every kind the format holds, saved by the library. */
static void fuzz_seeds(const char *dir) {
    static const struct {
        size_t N, K, G;
        int asym, mode, smooth, folded, bias;
    } kinds[] = { { 4, 32, 32, 0, W4A8_ACT_PER_TOKEN, 0, 0, 0 }, { 3, 40, 16, 1, W4A8_ACT_PER_TENSOR, 1, 0, 1 },
                  { 5, 17, 8, 1, W4A8_ACT_PER_TOKEN, 1, 1, 1 },  { 2, 24, 5, 0, W4A8_ACT_PER_TENSOR, 0, 0, 1 },
                  { 1, 1, 1, 0, W4A8_ACT_PER_TOKEN, 0, 0, 0 },   { 6, 64, 64, 1, W4A8_ACT_PER_TOKEN, 1, 0, 0 } };
    size_t i, j;
    uint64_t seed = 1;
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t N = kinds[i].N, K = kinds[i].K, G = kinds[i].G, groups = (K + G - 1) / G, bytes;
        uint8_t *codes = (uint8_t *)malloc(N * K), *zeros = (uint8_t *)malloc(N * groups), *buf, *seedfile;
        float *scales = (float *)malloc(N * groups * 4), *bias = (float *)malloc(N * 4), *s = (float *)malloc(K * 4);
        w4a8_layer_desc d;
        w4a8_layer *L = NULL;
        char name[32];
        for (j = 0; j < N * K; j++) codes[j] = (uint8_t)(fuzz_rand(&seed) & 15);
        for (j = 0; j < N * groups; j++) {
            zeros[j] = kinds[i].asym ? (uint8_t)(fuzz_rand(&seed) & 15) : 8;
            scales[j] = (fuzz_uniform(&seed) + 1.0f) * 0.01f;
        }
        for (j = 0; j < N; j++) bias[j] = fuzz_uniform(&seed);
        for (j = 0; j < K; j++) s[j] = 0.5f + fuzz_uniform(&seed) + 1.0f;
        memset(&d, 0, sizeof d);
        d.N = N, d.K = K, d.group_size = G, d.asymmetric = kinds[i].asym;
        d.codes = codes, d.scales = scales, d.zeros = zeros;
        d.bias = kinds[i].bias ? bias : NULL;
        d.smooth = kinds[i].smooth ? s : NULL;
        d.smooth_folded = kinds[i].folded;
        d.act_mode = (w4a8_act_mode)kinds[i].mode;
        d.act_scale = 0.03f;
        d.method = (w4a8_method)(i % W4A8_METHOD_COUNT);
        FUZZ_CHECK(w4a8_layer_create(&d, &L) == W4A8_OK);
        buf = save(L, &bytes);
        seedfile = (uint8_t *)malloc(bytes + 1);
        FUZZ_CHECK(seedfile != NULL);
        for (j = 0; j < 2; j++) { /* with and without the CRC rewrite */
            seedfile[0] = (uint8_t)(j == 0);
            memcpy(seedfile + 1, buf, bytes);
            snprintf(name, sizeof name, "layer%zu_%zu", i, j);
            fuzz_seed_file(dir, name, seedfile, bytes + 1);
        }
        free(seedfile), free(buf), free(codes), free(zeros), free(scales), free(bias), free(s);
        w4a8_layer_free(L);
    }
}

FUZZ_MAIN(fuzz_seeds) {
    uint8_t *file;
    size_t bytes;
    w4a8_layer *L = NULL;
    w4a8_status st;
    if (size < 1) return 0;
    bytes = size - 1;
    file = (uint8_t *)malloc(bytes ? bytes : 1);
    FUZZ_CHECK(file != NULL);
    memcpy(file, data + 1, bytes);
    if ((data[0] & 1) && bytes >= 4) put_crc(file, bytes);
    st = w4a8_layer_load_mem(file, bytes, W4A8_KERNEL_SCALAR, &L);
    FUZZ_CHECK((st == W4A8_OK) == (L != NULL));
    FUZZ_CHECK(st == W4A8_OK || st == W4A8_ERR_NOMEM || (st >= W4A8_ERR_FILE_IO && st <= W4A8_ERR_FILE_CHECKSUM));
    if (L) check_layer(file, bytes, L);
    w4a8_layer_free(L);
    free(file);
    return 0;
}
