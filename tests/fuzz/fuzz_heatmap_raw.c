/* fuzz_heatmap_raw - the heatmap tool's raw input path, end to end through
   its command line (hm_main): --raw X.f32 --shape T,K [--method M --weights
   W.f32 --wshape N,K] -o OUT.png.

   Input: byte 0 picks T (1..8), byte 1 the method (none, fptq, smoothquant,
   awq) and N (1..4), byte 2 a shape off by one now and then and the colour
   range; the rest is float32: X[T][K], then W[N][K] when the method reads
   weights. The exit status must be 0, 1 or 2, with a picture exactly when
   it is 0, and never a picture or a .tmp left after a failure. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#define W4A8_IMPLEMENTATION
#define W4A8_HEATMAP_NO_MAIN
#include "../../tools/w4a8_heatmap.c"
#include "fuzz.h"
#include <stdlib.h>
#include <unistd.h>


static char dir[64], xpath[128], wpath[128], opath[128], tpath[128];
static FILE *sink;

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Activations with an outlier channel, weights to go with them. */
static void fuzz_seeds(const char *d) {
    enum { T = 4, K = 24, N = 3 };
    unsigned char b[3 + 4 * (T + N) * K];
    uint64_t s = 5;
    size_t i, m;
    for (m = 0; m < 4; m++) {
        char name[16];
        b[0] = T - 1;
        b[1] = (unsigned char)(m | (N - 1) << 2);
        b[2] = 0;
        for (i = 0; i < (T + N) * K; i++) {
            float v = fuzz_uniform(&s) * (i < T * K && i % K == 5 ? 80.0f : 1.0f);
            memcpy(b + 3 + 4 * i, &v, 4);
        }
        snprintf(name, sizeof name, "raw%zu", m);
        fuzz_seed_file(d, name, b, m >= 2 ? sizeof b : 3 + 4 * T * K);
    }
}

static void setup(void) {
    if (sink) return;
    snprintf(dir, sizeof dir, "/tmp/fuzz_heatmap_XXXXXX");
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(xpath, sizeof xpath, "%s/x.f32", dir);
    snprintf(wpath, sizeof wpath, "%s/w.f32", dir);
    snprintf(opath, sizeof opath, "%s/out.png", dir);
    snprintf(tpath, sizeof tpath, "%s/out.png.tmp", dir);
    sink = fopen("/dev/null", "w");
    FUZZ_CHECK(sink != NULL);
}

FUZZ_MAIN(fuzz_seeds) {
    static const char *const methods[] = { NULL, "fptq", "smoothquant", "awq" };
    char shape[64], wshape[64], decades[8];
    const char *argv[20];
    size_t T, N, K, floats, need;
    int argc = 0, rc, method, weights, off;
    if (size < 3) return 0;
    setup();
    T = (size_t)data[0] % 8 + 1;
    method = data[1] % 4;
    N = (size_t)(data[1] >> 2) % 4 + 1;
    off = (data[2] & 7) == 7; /* a shape that does not match the file */
    weights = method >= 2;
    floats = (size - 3) / 4;
    K = floats / (T + (weights ? N : 0));
    if (K == 0) return 0;
    need = T * K;
    write_file(xpath, data + 3, 4 * need);
    if (weights) write_file(wpath, data + 3 + 4 * need, 4 * N * K);
    snprintf(shape, sizeof shape, "%zu,%zu", T, K + (size_t)off);
    snprintf(wshape, sizeof wshape, "%zu,%zu", N, K);
    snprintf(decades, sizeof decades, "%d", (data[2] >> 3) % 12 + 1);
    remove(opath);
    argv[argc++] = "w4a8_heatmap";
    argv[argc++] = "--raw", argv[argc++] = xpath, argv[argc++] = "--shape", argv[argc++] = shape;
    argv[argc++] = "-o", argv[argc++] = opath, argv[argc++] = "--size", argv[argc++] = "48,32";
    argv[argc++] = "--decades", argv[argc++] = decades;
    if (method) argv[argc++] = "--method", argv[argc++] = methods[method];
    if (weights) argv[argc++] = "--weights", argv[argc++] = wpath, argv[argc++] = "--wshape", argv[argc++] = wshape;
    if (method == 3) argv[argc++] = "--group", argv[argc++] = "8";
    argv[argc] = NULL;
    rc = hm_main(argc, argv, sink, sink);
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == 2);
    FUZZ_CHECK((rc == 0) == exists(opath));
    FUZZ_CHECK(!exists(tpath));
    /* A shape the file does not match is a data error; with weights, the
       --wshape that no longer matches --shape is caught first, as usage. */
    FUZZ_CHECK(!off || rc == (weights ? 2 : 1));
    return 0;
}
