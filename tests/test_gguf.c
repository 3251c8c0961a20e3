/* GGUF: half-float conversion, dequantization of every block type against a
   per-element transcription of ggml's formulas, the writer's round trip of
   every value and tensor type, corrupt files (every truncation, every byte
   flipped, counts, types, offsets), the typed getters, the writer's refusals,
   and a LLaMA model stored as GGUF giving the llama2.c path's logits bit for
   bit. With SmolLM2-135M in the cache ($W4A8_CACHE, else
   ${XDG_CACHE_HOME:-~/.cache}/w4a8, where tools/fetch_model.sh puts it):
   its configuration, its dequantization against llama.cpp's, greedy
   continuation and perplexity against llama.cpp's numbers (tests/vectors/,
   from `make crosscheck`). The export (>>export): quantized models written
   as Q4_0 read back exactly, Q4_1 for zero points, every refusal, and
   llama.cpp (where built) running an exported file. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../examples/llama/llama.h"
#include "test.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* >>half ------------------------------------------------------------------- */

/* Every half survives half -> float -> half; float decoding is exact (m *
   2^(e-25) computed in double); values between two halves round to the
   nearer, ties to the even code. */
static void test_gguf_f16(void) {
    uint32_t h;
    for (h = 0; h < 0x10000; h++) {
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        float f = llama__gguf_f16((uint16_t)h);
        double want = e == 0 ? ldexp((double)m, -24) : ldexp((double)(m | 1024), (int)e - 25);
        if (h & 0x8000) want = -want;
        if (e == 31) {
            CHECK(m ? f != f : fabsf(f) > FLT_MAX);
            if (!m) CHECK(llama__gguf_to_f16(f) == h);
            continue;
        }
        CHECK((double)f == want);
        CHECK(llama__gguf_to_f16(f) == h);
        if ((h & 0x7fff) < 0x7bff) { /* the midpoint to the next half up in magnitude */
            float next = llama__gguf_f16((uint16_t)(h + 1));
            float mid = (float)(((double)f + (double)next) / 2.0);
            uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            CHECK((double)mid == ((double)f + (double)next) / 2.0); /* exact in float */
            CHECK(llama__gguf_to_f16(mid) == even);
            CHECK(llama__gguf_to_f16(nextafterf(mid, 0.0f)) == h);
            CHECK(llama__gguf_to_f16(nextafterf(mid, (h & 0x8000) ? -INFINITY : INFINITY)) == h + 1);
        }
    }
    CHECK(llama__gguf_to_f16(65520.0f) == 0x7c00);       /* rounds up to Inf */
    CHECK(llama__gguf_to_f16(65519.996f) == 0x7bff);
    CHECK(llama__gguf_to_f16(1e-8f) == 0);                /* below half the smallest subnormal */
    CHECK(llama__gguf_to_f16(-3e-8f) == 0x8001);
}

/* >>dequantize ------------------------------------------------------------- */

static float h2f(const unsigned char *p) { return llama__gguf_f16((uint16_t)(p[0] | p[1] << 8)); }

/* Element e of one block, written per element from ggml-quants.c's
   dequantize_row_* (same float operations, so bit-exact). */
static float ref_element(uint32_t type, const unsigned char *b, int e) {
    int lo = e % 16, hi = e >= 16;
    switch (type) {
    case LLAMA_GGUF_Q4_0: return (float)(((b[2 + lo] >> (4 * hi)) & 15) - 8) * h2f(b);
    case LLAMA_GGUF_Q4_1: return (float)((b[4 + lo] >> (4 * hi)) & 15) * h2f(b) + h2f(b + 2);
    case LLAMA_GGUF_Q5_0: {
        uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
        int q = ((b[6 + lo] >> (4 * hi)) & 15) | (int)((qh >> e) & 1) << 4;
        return (float)(q - 16) * h2f(b);
    }
    case LLAMA_GGUF_Q5_1: {
        uint32_t qh = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
        int q = ((b[8 + lo] >> (4 * hi)) & 15) | (int)((qh >> e) & 1) << 4;
        return (float)q * h2f(b) + h2f(b + 2);
    }
    case LLAMA_GGUF_Q8_0: return (float)(signed char)b[2 + e] * h2f(b);
    case LLAMA_GGUF_Q4_K: case LLAMA_GGUF_Q5_K: {
        const unsigned char *sc = b + 4;
        int c = e / 64, w = e % 64, sub = 2 * c + w / 32, s, m, q;
        const unsigned char *qs = b + (type == LLAMA_GGUF_Q5_K ? 48 : 16);
        if (sub < 4) s = sc[sub] & 63, m = sc[sub + 4] & 63;
        else s = (sc[sub + 4] & 15) | (sc[sub - 4] >> 6) << 4, m = (sc[sub + 4] >> 4) | (sc[sub] >> 6) << 4;
        q = (qs[32 * c + w % 32] >> (w < 32 ? 0 : 4)) & 15;
        if (type == LLAMA_GGUF_Q5_K) q += ((b[16 + w % 32] >> sub) & 1) * 16;
        return h2f(b) * (float)s * (float)q - h2f(b + 2) * (float)m;
    }
    case LLAMA_GGUF_Q6_K: {
        int n = e / 128, w = e % 128, quarter = w / 32, l = w % 32;
        int low = (b[64 * n + l + (quarter & 1) * 32] >> (quarter & 2 ? 4 : 0)) & 15;
        int high = (b[128 + 32 * n + l] >> (2 * quarter)) & 3;
        return h2f(b + 208) * (float)(signed char)b[192 + 8 * n + l / 16 + 2 * quarter] * (float)((low | high << 4) - 32);
    }
    default: return NAN;
    }
}

/* Random blocks with finite scales (half exponents kept small). */
static void random_blocks(uint32_t type, unsigned char *b, size_t bytes, uint64_t *seed) {
    size_t i, be, bb;
    llama_gguf_dtype_size(type, &be, &bb);
    for (i = 0; i < bytes; i++) b[i] = (unsigned char)test_rand(seed);
    for (i = 0; be > 1 && i < bytes / bb; i++) {
        unsigned char *k = b + i * bb;
        size_t at[2] = { 0, 2 }, j, n = type == LLAMA_GGUF_Q4_0 || type == LLAMA_GGUF_Q5_0 || type == LLAMA_GGUF_Q8_0 ? 1 : 2;
        if (type == LLAMA_GGUF_Q6_K) at[0] = 208, n = 1;
        for (j = 0; j < n; j++) k[at[j] + 1] = (unsigned char)((k[at[j] + 1] & 0x83) | 0x30); /* |x| in [2^-3, 2^1) */
    }
}

static void test_gguf_dequantize(void) {
    static const uint32_t types[] = { LLAMA_GGUF_Q4_0, LLAMA_GGUF_Q4_1, LLAMA_GGUF_Q5_0, LLAMA_GGUF_Q5_1,
                                      LLAMA_GGUF_Q8_0, LLAMA_GGUF_Q4_K, LLAMA_GGUF_Q5_K, LLAMA_GGUF_Q6_K };
    unsigned char b[8 * 210];
    float y[8 * 256];
    uint64_t seed = 11;
    size_t t, i, be, bb;
    for (t = 0; t < sizeof types / sizeof types[0]; t++) {
        llama_gguf_dtype_size(types[t], &be, &bb);
        random_blocks(types[t], b, 8 * bb, &seed);
        CHECK_LL(llama_gguf_dequantize_raw(types[t], b, 8 * bb, 8 * be, y), LLAMA_OK);
        for (i = 0; i < 8 * be; i++) CHECK(bits_of(y[i]) == bits_of(ref_element(types[t], b + i / be * bb, (int)(i % be))));
        CHECK_LL(llama_gguf_dequantize_raw(types[t], b, 8 * bb - 1, 8 * be, y), LLAMA_ERR_ARG);
        CHECK_LL(llama_gguf_dequantize_raw(types[t], b, 8 * bb, 8 * be - 1, y), LLAMA_ERR_GGUF_TYPE);
    }
    /* Values worked by hand. Q8_0: d = 0.5 (0x3800), q = -3 -> -1.5. */
    memset(b, 0, 34), b[1] = 0x38, b[2] = (unsigned char)-3;
    llama_gguf_dequantize_raw(LLAMA_GGUF_Q8_0, b, 34, 32, y);
    CHECK(y[0] == -1.5f && y[1] == 0.0f);
    /* Q4_K: d = 1, dmin = 2, sub-block 0 scale 3 min 1, sub-block 5 scale
       (b[13] & 15) | (b[5] >> 6) << 4 = 2 | 1 << 4 = 18, min b[13] >> 4 | (b[9] >> 6) << 4 = 4. */
    memset(b, 0, 144);
    b[1] = 0x3c, b[3] = 0x40, b[4] = 3, b[8] = 1, b[13] = 0x42, b[5] = 0x40;
    b[16] = 0x57;             /* element 0: code 7; element 32: code 5 (sub-block 1: scale 0x40 & 63 = 0, min 0) */
    b[16 + 64] = 0x90;        /* elements 128 (code 0, sub-block 4) and 160 (code 9, sub-block 5) */
    llama_gguf_dequantize_raw(LLAMA_GGUF_Q4_K, b, 144, 256, y);
    CHECK(y[0] == 3.0f * 7.0f - 2.0f);
    CHECK(y[32] == 0.0f);
    CHECK(y[160] == 18.0f * 9.0f - 2.0f * 4.0f);
    /* F16, BF16, F32 elements. */
    b[0] = 0x00, b[1] = 0x3c, b[2] = 0x01, b[3] = 0x00, b[4] = 0x00, b[5] = 0xfc;
    llama_gguf_dequantize_raw(LLAMA_GGUF_F16, b, 6, 3, y);
    CHECK(y[0] == 1.0f && y[1] == ldexpf(1.0f, -24) && y[2] == -INFINITY);
    b[0] = 0x80, b[1] = 0x3f, b[2] = 0x49, b[3] = 0xc0;
    llama_gguf_dequantize_raw(LLAMA_GGUF_BF16, b, 4, 2, y);
    CHECK(y[0] == 1.0f && bits_of(y[1]) == 0xc0490000u);
    CHECK_LL(llama_gguf_dequantize_raw(LLAMA_GGUF_Q4_K + 100, b, 4, 2, y), LLAMA_ERR_GGUF_TYPE);
}

/* The writer's quantizers: ggml's reference rules, checked by what they imply. */
static void test_gguf_quantize(void) {
    float x[64], y[64];
    unsigned char raw[128];
    uint64_t seed = 5, ne[2] = { 32, 2 };
    llama_gguf_writer *w;
    llama_gguf *g;
    void *buf = NULL;
    size_t bytes = 0, i;
    for (i = 0; i < 64; i++) x[i] = test_normal(&seed);
    x[7] = -3.0f;  /* block 0: the largest magnitude is negative */
    x[40] = 2.5f;  /* block 1: positive */
    for (i = 0; i < 64; i++)
        if (i != 7 && i != 40 && fabsf(x[i]) >= (i < 32 ? 3.0f : 2.5f)) x[i] = 0.0f;
    CHECK_LL(llama_gguf_writer_create(&w), LLAMA_OK);
    CHECK_LL(llama_gguf_writer_add_f32(w, "q8", LLAMA_GGUF_Q8_0, 2, ne, x), LLAMA_OK);
    CHECK_LL(llama_gguf_writer_add_f32(w, "q4", LLAMA_GGUF_Q4_0, 2, ne, x), LLAMA_OK);
    CHECK_LL(llama_gguf_writer_add_f32(w, "f16", LLAMA_GGUF_F16, 2, ne, x), LLAMA_OK);
    CHECK_LL(llama_gguf_writer_write_mem(w, &buf, &bytes), LLAMA_OK);
    CHECK_LL(llama_gguf_open_mem(buf, bytes, &g), LLAMA_OK);
    if (g) {
        const llama_gguf_tensor *q8 = llama_gguf_tensor_find(g, "q8"), *q4 = llama_gguf_tensor_find(g, "q4"),
                                *f16 = llama_gguf_tensor_find(g, "f16");
        size_t blk;
        CHECK(q8 && q4 && f16);
        for (blk = 0; q8 && q4 && blk < 2; blk++) {
            float d8 = h2f(q8->data + 34 * blk), d4 = h2f(q4->data + 18 * blk), amax = blk ? 2.5f : 3.0f;
            CHECK(d8 == llama__gguf_f16(llama__gguf_to_f16(amax / 127.0f)));
            CHECK(d4 == llama__gguf_f16(llama__gguf_to_f16((blk ? 2.5f : -3.0f) / -8.0f)));
            memcpy(raw, q8->data + 34 * blk, 34);
            llama_gguf_dequantize_raw(LLAMA_GGUF_Q8_0, raw, 34, 32, y);
            for (i = 0; i < 32; i++) {
                float xi = x[32 * blk + i], qf = roundf(xi * (1.0f / (amax / 127.0f)));
                CHECK((float)(signed char)q8->data[34 * blk + 2 + i] == qf); /* round half away from zero */
                CHECK(fabsf(y[i] - xi) <= 0.5f * d8 + 1e-3f * amax);         /* + the half-rounding of d */
            }
            for (i = 0; i < 16; i++) {
                float id = 1.0f / ((blk ? 2.5f : -3.0f) / -8.0f);
                int c0 = (int)(x[32 * blk + i] * id + 8.5f), c1 = (int)(x[32 * blk + 16 + i] * id + 8.5f);
                CHECK((q4->data[18 * blk + 2 + i] & 15) == (c0 < 15 ? c0 : 15));
                CHECK((q4->data[18 * blk + 2 + i] >> 4) == (c1 < 15 ? c1 : 15));
            }
        }
        /* The extreme value maps to code 0, i.e. -8 * d = max. */
        CHECK(q4 && (q4->data[2 + 7] & 15) == 0);
        for (i = 0; f16 && i < 64; i++) CHECK(h2f(f16->data + 2 * i) == llama__gguf_f16(llama__gguf_to_f16(x[i])));
        llama_gguf_close(g);
    }
    free(buf);
    x[3] = NAN;
    CHECK_LL(llama_gguf_writer_add_f32(w, "nan", LLAMA_GGUF_Q8_0, 2, ne, x), LLAMA_ERR_NONFINITE);
    CHECK_LL(llama_gguf_writer_add_f32(w, "q5", LLAMA_GGUF_Q5_0, 2, ne, x), LLAMA_ERR_GGUF_TYPE);
    llama_gguf_writer_free(w);
}

/* >>round-trip -------------------------------------------------------------- */

/* Two values equal in type and content (floats by their bits). */
static int same_value(const llama_gguf_value *a, const llama_gguf_value *b) {
    size_t i;
    if (a->type != b->type) return 0;
    switch (a->type) {
    case LLAMA_GGUF_STRING: return a->len == b->len && memcmp(a->str, b->str, a->len) == 0 && b->str[b->len] == 0;
    case LLAMA_GGUF_FLOAT32: case LLAMA_GGUF_FLOAT64: return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    case LLAMA_GGUF_ARRAY:
        if (a->elem != b->elem || a->n != b->n) return 0;
        for (i = 0; i < a->n; i++) {
            if (a->elem == LLAMA_GGUF_STRING) {
                if (a->lens[i] != b->lens[i] || memcmp(a->strs[i], b->strs[i], a->lens[i]) != 0) return 0;
            } else if (a->elem == LLAMA_GGUF_ARRAY) {
                if (!same_value(&a->items[i], &b->items[i])) return 0;
            }
        }
        return a->elem == LLAMA_GGUF_STRING || a->elem == LLAMA_GGUF_ARRAY ||
               a->n == 0 || memcmp(a->data, b->data, a->n * llama__gguf_native_size(a->elem)) == 0;
    default: return a->u == b->u && a->i == b->i;
    }
}

static llama_gguf_value scalar(llama_gguf_type t, uint64_t u, int64_t i, double f) {
    llama_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = t, v.u = u, v.i = i, v.f = f;
    return v;
}

static void test_gguf_roundtrip(void) {
    static const uint32_t raw_types[] = { LLAMA_GGUF_F32, LLAMA_GGUF_F16, LLAMA_GGUF_BF16, LLAMA_GGUF_Q8_0,
                                          LLAMA_GGUF_Q4_0, LLAMA_GGUF_Q4_1, LLAMA_GGUF_Q5_0, LLAMA_GGUF_Q5_1,
                                          LLAMA_GGUF_Q4_K, LLAMA_GGUF_Q5_K, LLAMA_GGUF_Q6_K };
    static const char *const strs[] = { "", "a", "Ġthe", "\xe4\xb8\xad" };
    static const uint8_t u8s[] = { 0, 255 };
    static const int16_t i16s[] = { -32768, 32767, 0 };
    static const float f32s[] = { -0.0f, 1.5f, 3.4e38f };
    static const double f64s[] = { 1e-300, -2.0 };
    static const uint8_t bools[] = { 1, 0, 1 };
    uint64_t seed = 3, ne4[4] = { 256, 2, 1, 3 }, ne1[1] = { 512 }, ne0[2] = { 256, 0 };
    unsigned char blocks[1536 * 4];
    float x[1536];
    llama_gguf_value vals[16], nested[2], inner[2];
    llama_gguf_writer *w;
    size_t i, nv = 0, align;
    for (i = 0; i < 1536; i++) x[i] = test_normal(&seed);
    for (align = 0; align < 2; align++) {
        void *buf = NULL, *buf2 = NULL;
        size_t bytes = 0, bytes2 = 0;
        llama_gguf *g = NULL;
        char path[64];
        nv = 0;
        vals[nv++] = scalar(LLAMA_GGUF_UINT8, 200, 0, 0);
        vals[nv++] = scalar(LLAMA_GGUF_INT8, 0, -128, 0);
        vals[nv++] = scalar(LLAMA_GGUF_UINT16, 65535, 0, 0);
        vals[nv++] = scalar(LLAMA_GGUF_INT16, 0, -7, 0);
        vals[nv++] = scalar(LLAMA_GGUF_INT32, 0, INT32_MIN, 0);
        vals[nv++] = scalar(LLAMA_GGUF_FLOAT32, 0, 0, 0.1f);
        vals[nv++] = scalar(LLAMA_GGUF_BOOL, 1, 0, 0);
        vals[nv++] = scalar(LLAMA_GGUF_UINT64, UINT64_MAX, 0, 0);
        vals[nv++] = scalar(LLAMA_GGUF_INT64, 0, INT64_MIN, 0);
        vals[nv++] = scalar(LLAMA_GGUF_FLOAT64, 0, 0, -1e300);
        vals[nv] = scalar(LLAMA_GGUF_STRING, 0, 0, 0), vals[nv].str = "", vals[nv++].len = 0;
        /* [[u8 0 255], [i16 ...]], and an empty array of arrays */
        memset(inner, 0, sizeof inner);
        inner[0].type = inner[1].type = LLAMA_GGUF_ARRAY;
        inner[0].elem = LLAMA_GGUF_UINT8, inner[0].n = 2, inner[0].data = u8s;
        inner[1].elem = LLAMA_GGUF_INT16, inner[1].n = 3, inner[1].data = i16s;
        memset(nested, 0, sizeof nested);
        nested[0].type = LLAMA_GGUF_ARRAY, nested[0].elem = LLAMA_GGUF_ARRAY, nested[0].n = 2, nested[0].items = inner;
        vals[nv++] = nested[0];
        nested[1].type = LLAMA_GGUF_ARRAY, nested[1].elem = LLAMA_GGUF_ARRAY;
        vals[nv++] = nested[1];
        CHECK_LL(llama_gguf_writer_create(&w), LLAMA_OK);
        if (!w) return;
        for (i = 0; i < nv; i++) {
            char key[32];
            snprintf(key, sizeof key, "test.v%u", (unsigned)i);
            CHECK_LL(llama_gguf_writer_set(w, key, &vals[i]), LLAMA_OK);
        }
        if (align) CHECK_LL(llama_gguf_writer_set_u32(w, "general.alignment", 64), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_set_i32(w, "test.i32", -5), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_set_f32(w, "test.f32", 100000.0f), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_set_bool(w, "test.bool", 0), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_set_str(w, "test.str", "llama"), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_set_strs(w, "test.strs", strs, NULL, 4), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_set_array(w, "test.f32s", LLAMA_GGUF_FLOAT32, f32s, 3), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_set_array(w, "test.f64s", LLAMA_GGUF_FLOAT64, f64s, 2), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_set_array(w, "test.bools", LLAMA_GGUF_BOOL, bools, 3), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_set_array(w, "test.empty", LLAMA_GGUF_INT32, NULL, 0), LLAMA_OK);
        /* Every type as raw blocks, shaped 4-D where the type allows; 1-D and empty shapes. */
        for (i = 0; i < sizeof raw_types / sizeof raw_types[0]; i++) {
            size_t be, bb;
            char name[32];
            llama_gguf_dtype_size(raw_types[i], &be, &bb);
            random_blocks(raw_types[i], blocks, 6 * bb * 256 / be, &seed);
            snprintf(name, sizeof name, "raw.%u", (unsigned)raw_types[i]);
            CHECK_LL(llama_gguf_writer_add_raw(w, name, raw_types[i], 4, ne4, blocks, 6 * bb * 256 / be), LLAMA_OK);
        }
        CHECK_LL(llama_gguf_writer_add_f32(w, "f32.1d", LLAMA_GGUF_F32, 1, ne1, x), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_add_f32(w, "q4.empty", LLAMA_GGUF_Q4_0, 2, ne0, x), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_add_f32(w, "q8.3d", LLAMA_GGUF_Q8_0, 3, ne4, x), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_write_mem(w, &buf, &bytes), LLAMA_OK);
        CHECK_LL(llama_gguf_open_mem(buf, bytes, &g), LLAMA_OK);
        if (g) {
            const llama_gguf_value *v;
            const char *const *ss = NULL;
            const size_t *ls = NULL;
            size_t n = 0;
            CHECK(g->version == 3 && g->alignment == (align ? 64u : 32u) && g->data_offset % g->alignment == 0);
            CHECK(g->n_kv == nv + 9 + align && g->n_tensors == 14);
            for (i = 0; i < nv; i++) {
                char key[32];
                snprintf(key, sizeof key, "test.v%u", (unsigned)i);
                CHECK((v = llama_gguf_find(g, key)) != NULL && same_value(v, &vals[i]));
            }
            CHECK(llama_gguf_get_strs(g, "test.strs", &ss, &ls, &n) == LLAMA_OK && n == 4);
            for (i = 0; i < 4 && n == 4; i++) CHECK(ls[i] == strlen(strs[i]) && strcmp(ss[i], strs[i]) == 0);
            for (i = 0; i < g->n_tensors; i++) {
                const llama_gguf_tensor *t = &g->tensors[i];
                CHECK(t->offset % g->alignment == 0 && t->data == (const unsigned char *)buf + g->data_offset + t->offset);
            }
            for (i = 0; i < sizeof raw_types / sizeof raw_types[0]; i++) {
                size_t be, bb;
                char name[32];
                const llama_gguf_tensor *t;
                llama_gguf_dtype_size(raw_types[i], &be, &bb);
                snprintf(name, sizeof name, "raw.%u", (unsigned)raw_types[i]);
                t = llama_gguf_tensor_find(g, name);
                CHECK(t && t->n_dims == 4 && t->ne[3] == 3 && t->n_elements == 1536 && t->n_bytes == 6 * bb * 256 / be);
            }
            {
                const llama_gguf_tensor *t = llama_gguf_tensor_find(g, "f32.1d"), *e = llama_gguf_tensor_find(g, "q4.empty");
                float y[512];
                CHECK(t && t->n_dims == 1 && llama_gguf_dequantize(t, y, 512) == LLAMA_OK);
                for (i = 0; t && i < 512; i++) CHECK(bits_of(y[i]) == bits_of(x[i]));
                CHECK(e && e->n_elements == 0 && e->n_bytes == 0);
            }
            /* The file through a path: the same bytes. */
            snprintf(path, sizeof path, "build/test_gguf_%u.gguf", (unsigned)align);
            CHECK_LL(llama_gguf_writer_write(w, path), LLAMA_OK);
            {
                char *fb = NULL;
                size_t fbytes = 0;
                llama_gguf *g2 = NULL;
                CHECK_LL(llama__read_file(path, (size_t)1 << 24, &fb, &fbytes), LLAMA_OK);
                CHECK(fb && fbytes == bytes && memcmp(fb, buf, bytes) == 0);
                CHECK_LL(llama_gguf_open(path, &g2), LLAMA_OK);
                CHECK(g2 && g2->n_tensors == g->n_tensors);
                llama_gguf_close(g2);
                free(fb);
            }
            /* Write what was read: bit for bit the same file. */
            {
                llama_gguf_writer *w2;
                CHECK_LL(llama_gguf_writer_create(&w2), LLAMA_OK);
                for (i = 0; w2 && i < g->n_kv; i++) CHECK_LL(llama_gguf_writer_set(w2, g->kv[i].key, &g->kv[i].v), LLAMA_OK);
                for (i = 0; w2 && i < g->n_tensors; i++) {
                    const llama_gguf_tensor *t = &g->tensors[i];
                    CHECK_LL(llama_gguf_writer_add_raw(w2, t->name, t->type, t->n_dims, t->ne, t->data, t->n_bytes), LLAMA_OK);
                }
                CHECK_LL(llama_gguf_writer_write_mem(w2, &buf2, &bytes2), LLAMA_OK);
                CHECK(buf2 && bytes2 == bytes && memcmp(buf2, buf, bytes) == 0);
                llama_gguf_writer_free(w2);
            }
            remove(path);
            llama_gguf_close(g);
        }
        free(buf);
        free(buf2);
        llama_gguf_writer_free(w);
    }
}

/* >>getters ----------------------------------------------------------------- */

static void test_gguf_getters(void) {
    static const int32_t ids[] = { 3, -1 };
    llama_gguf_writer *w;
    llama_gguf *g = NULL;
    void *buf = NULL;
    size_t bytes = 0, n;
    uint64_t u;
    int64_t i;
    double f;
    int b;
    const char *s;
    const void *data;
    llama_gguf_type elem;
    const char *const *ss;
    const size_t *ls;
    CHECK_LL(llama_gguf_writer_create(&w), LLAMA_OK);
    if (!w) return;
    llama_gguf_writer_set_u32(w, "u", 7);
    llama_gguf_writer_set_i32(w, "neg", -2);
    llama_gguf_writer_set_f32(w, "f", 0.25f);
    llama_gguf_writer_set_bool(w, "b", 1);
    llama_gguf_writer_set_str(w, "s", "gpt2");
    llama_gguf_writer_set_array(w, "a", LLAMA_GGUF_INT32, ids, 2);
    CHECK_LL(llama_gguf_writer_write_mem(w, &buf, &bytes), LLAMA_OK);
    CHECK_LL(llama_gguf_open_mem(buf, bytes, &g), LLAMA_OK);
    if (g) {
        CHECK(llama_gguf_get_u64(g, "u", &u) == LLAMA_OK && u == 7);
        CHECK(llama_gguf_get_i64(g, "u", &i) == LLAMA_OK && i == 7);
        CHECK(llama_gguf_get_i64(g, "neg", &i) == LLAMA_OK && i == -2);
        CHECK_LL(llama_gguf_get_u64(g, "neg", &u), LLAMA_ERR_GGUF_TYPE);
        CHECK_LL(llama_gguf_get_u64(g, "f", &u), LLAMA_ERR_GGUF_TYPE);
        CHECK(llama_gguf_get_f64(g, "f", &f) == LLAMA_OK && f == 0.25);
        CHECK_LL(llama_gguf_get_f64(g, "u", &f), LLAMA_ERR_GGUF_TYPE);
        CHECK(llama_gguf_get_bool(g, "b", &b) == LLAMA_OK && b == 1);
        CHECK(llama_gguf_get_str(g, "s", &s, &n) == LLAMA_OK && n == 4 && strcmp(s, "gpt2") == 0);
        CHECK_LL(llama_gguf_get_str(g, "u", &s, &n), LLAMA_ERR_GGUF_TYPE);
        CHECK(llama_gguf_get_array(g, "a", &elem, &data, &n) == LLAMA_OK && elem == LLAMA_GGUF_INT32 && n == 2 &&
              ((const int32_t *)data)[1] == -1);
        CHECK_LL(llama_gguf_get_strs(g, "a", &ss, &ls, &n), LLAMA_ERR_GGUF_TYPE);
        CHECK_LL(llama_gguf_get_u64(g, "missing", &u), LLAMA_ERR_GGUF_KEY);
        CHECK_LL(llama_gguf_get_u64(NULL, "u", &u), LLAMA_ERR_ARG);
        CHECK(llama_gguf_find(g, "missing") == NULL && llama_gguf_tensor_find(g, "x") == NULL);
        llama_gguf_close(g);
    }
    free(buf);
    llama_gguf_writer_free(w);
}

/* >>corrupt ----------------------------------------------------------------- */

/* A file built by hand, so that any field can be made wrong. */
typedef struct tb {
    unsigned char b[1024];
    size_t n;
} tb;

static size_t tb_u32(tb *t, uint32_t v) {
    size_t at = t->n, i;
    for (i = 0; i < 4; i++) t->b[t->n++] = (unsigned char)(v >> (8 * i));
    return at;
}

static size_t tb_u64(tb *t, uint64_t v) {
    size_t at = t->n, i;
    for (i = 0; i < 8; i++) t->b[t->n++] = (unsigned char)(v >> (8 * i));
    return at;
}

static size_t tb_str(tb *t, const char *s) {
    size_t at = tb_u64(t, strlen(s));
    memcpy(t->b + t->n, s, strlen(s));
    t->n += strlen(s);
    return at;
}

static void patch_u32(unsigned char *b, size_t at, uint32_t v) {
    size_t i;
    for (i = 0; i < 4; i++) b[at + i] = (unsigned char)(v >> (8 * i));
}

static void patch_u64(unsigned char *b, size_t at, uint64_t v) {
    size_t i;
    for (i = 0; i < 8; i++) b[at + i] = (unsigned char)(v >> (8 * i));
}

/* Where the fields of the hand-built file are. */
static struct {
    size_t version, n_tensors, n_kv, align_type, align_val, key1, str_len, arr_type, arr_n, bool_val, nest_type;
    size_t t0_name, t0_ndims, t0_ne0, t0_ne1, t0_type, t1_type, t1_off, data, end;
} at;

static void build_small(tb *t) {
    size_t i;
    t->n = 0;
    tb_u32(t, LLAMA_GGUF_MAGIC);
    at.version = tb_u32(t, 3);
    at.n_tensors = tb_u64(t, 2);
    at.n_kv = tb_u64(t, 6);
    tb_str(t, "general.alignment");
    at.align_type = tb_u32(t, LLAMA_GGUF_UINT32);
    at.align_val = tb_u32(t, 32);
    at.key1 = tb_str(t, "a.str") + 8;
    tb_u32(t, LLAMA_GGUF_STRING);
    at.str_len = tb_str(t, "hi");
    tb_str(t, "a.arr");
    tb_u32(t, LLAMA_GGUF_ARRAY);
    at.arr_type = tb_u32(t, LLAMA_GGUF_UINT8);
    at.arr_n = tb_u64(t, 3);
    t->b[t->n++] = 1, t->b[t->n++] = 2, t->b[t->n++] = 3;
    tb_str(t, "a.bool");
    tb_u32(t, LLAMA_GGUF_BOOL);
    at.bool_val = t->n;
    t->b[t->n++] = 1;
    tb_str(t, "a.nest"); /* [[7]] */
    tb_u32(t, LLAMA_GGUF_ARRAY);
    at.nest_type = tb_u32(t, LLAMA_GGUF_ARRAY);
    tb_u64(t, 1);
    tb_u32(t, LLAMA_GGUF_INT8);
    tb_u64(t, 1);
    t->b[t->n++] = 7;
    tb_str(t, "a.f64");
    tb_u32(t, LLAMA_GGUF_FLOAT64);
    tb_u64(t, 0x3ff0000000000000ull);
    at.t0_name = tb_str(t, "t0") + 8;
    at.t0_ndims = tb_u32(t, 2);
    at.t0_ne0 = tb_u64(t, 32);
    at.t0_ne1 = tb_u64(t, 2);
    at.t0_type = tb_u32(t, LLAMA_GGUF_Q8_0);
    tb_u64(t, 0); /* 68 bytes */
    tb_str(t, "t1");
    tb_u32(t, 1);
    tb_u64(t, 4);
    at.t1_type = tb_u32(t, LLAMA_GGUF_F32);
    at.t1_off = tb_u64(t, 96);
    while (t->n % 32) t->b[t->n++] = 0;
    at.data = t->n;
    for (i = 0; i < 112; i++) t->b[t->n++] = (unsigned char)(i == 1 ? 0x3c : i < 68 ? i : 0);
    at.end = t->n;
}

/* open_mem on an exact-size copy, so that a read past the end is caught by
   the sanitizers. Also dequantizes every tensor of a file that opens. */
static llama_status open_copy(const unsigned char *b, size_t n) {
    unsigned char *c = (unsigned char *)malloc(n ? n : 1);
    llama_gguf *g = NULL;
    llama_status st;
    size_t i;
    memcpy(c, b, n);
    st = llama_gguf_open_mem(c, n, &g);
    for (i = 0; st == LLAMA_OK && i < g->n_tensors; i++) {
        float *y = (float *)malloc((g->tensors[i].n_elements ? g->tensors[i].n_elements : 1) * sizeof(float));
        CHECK(y && llama_gguf_dequantize(&g->tensors[i], y, g->tensors[i].n_elements) == LLAMA_OK);
        free(y);
    }
    llama_gguf_close(g);
    free(c);
    return st;
}

static void test_gguf_corrupt(void) {
    tb t, v;
    size_t n, i;
    build_small(&t);
    CHECK_LL(open_copy(t.b, t.n), LLAMA_OK);
    /* Every truncation: the header part says truncated, the data part layout. */
    for (n = 0; n < t.n; n++) {
        llama_status st = open_copy(t.b, n);
        CHECK(st == (n < at.data ? LLAMA_ERR_TRUNCATED : LLAMA_ERR_GGUF_LAYOUT));
    }
    /* Every byte flipped: whatever it gives, no crash and no read outside. */
    for (i = 0; i < t.n; i++) {
        v = t;
        v.b[i] ^= 0xFF;
        (void)open_copy(v.b, v.n);
        v.b[i] ^= 0x7F; /* also a single-bit change */
        (void)open_copy(v.b, v.n);
    }
#define VARIANT(patch, want)       \
    do {                           \
        v = t;                     \
        patch;                     \
        CHECK_LL(open_copy(v.b, v.n), want); \
    } while (0)
    VARIANT(v.b[0] = 'X', LLAMA_ERR_GGUF);
    VARIANT(patch_u32(v.b, at.version, 1), LLAMA_ERR_GGUF_VERSION);
    VARIANT(patch_u32(v.b, at.version, 4), LLAMA_ERR_GGUF_VERSION);
    VARIANT(patch_u32(v.b, at.version, 2), LLAMA_OK);
    VARIANT(patch_u64(v.b, at.n_kv, 5), LLAMA_ERR_GGUF_TYPE);       /* "a.f64" read as a tensor of 12 dimensions */
    VARIANT(patch_u64(v.b, at.n_kv, UINT64_MAX), LLAMA_ERR_TRUNCATED);
    VARIANT(patch_u64(v.b, at.n_tensors, 1u << 30), LLAMA_ERR_TRUNCATED);
    VARIANT(patch_u64(v.b, at.n_tensors, 3), LLAMA_ERR_GGUF);          /* a third name read from the zero padding: empty */
    VARIANT(patch_u64(v.b, at.str_len, UINT64_MAX), LLAMA_ERR_TRUNCATED);
    VARIANT(patch_u64(v.b, at.str_len, 1u << 20), LLAMA_ERR_TRUNCATED);
    VARIANT(patch_u32(v.b, at.align_type, 13), LLAMA_ERR_GGUF_TYPE);
    VARIANT(patch_u32(v.b, at.align_type, LLAMA_GGUF_INT32), LLAMA_ERR_GGUF_TYPE);
    VARIANT(patch_u32(v.b, at.align_val, 48), LLAMA_ERR_GGUF_LAYOUT);
    VARIANT(patch_u32(v.b, at.align_val, 0), LLAMA_ERR_GGUF_LAYOUT);
    VARIANT(patch_u32(v.b, at.align_val, 64), LLAMA_ERR_GGUF_LAYOUT); /* t1 at 96 is no longer aligned */
    VARIANT(patch_u32(v.b, at.arr_type, 99), LLAMA_ERR_GGUF_TYPE);
    VARIANT(patch_u64(v.b, at.arr_n, UINT64_MAX / 2), LLAMA_ERR_TRUNCATED);
    VARIANT(patch_u32(v.b, at.arr_type, LLAMA_GGUF_ARRAY), LLAMA_ERR_GGUF_TYPE); /* [1,2,3...] read as a nested header */
    VARIANT(v.b[at.bool_val] = 2, LLAMA_ERR_GGUF);
    VARIANT(memcpy(v.b + at.key1, "\xff\xfe", 2), LLAMA_ERR_GGUF);      /* not UTF-8 */
    VARIANT(memcpy(v.b + at.key1, "a.arr", 5), LLAMA_ERR_GGUF);         /* a duplicate key */
    VARIANT(memcpy(v.b + at.t0_name, "t1", 2), LLAMA_ERR_GGUF);         /* a duplicate tensor name */
    VARIANT(patch_u32(v.b, at.t0_type, 10), LLAMA_ERR_GGUF_TYPE);       /* Q2_K: not read */
    VARIANT(patch_u32(v.b, at.t0_type, 1000), LLAMA_ERR_GGUF_TYPE);
    VARIANT(patch_u32(v.b, at.t0_ndims, 5), LLAMA_ERR_GGUF_TYPE);
    VARIANT(patch_u64(v.b, at.t0_ne0, 16), LLAMA_ERR_GGUF_TYPE);        /* half a Q8_0 block */
    VARIANT(patch_u64(v.b, at.t0_ne0, 32), LLAMA_OK);
    VARIANT((patch_u64(v.b, at.t0_ne0, (uint64_t)1 << 62), patch_u64(v.b, at.t0_ne1, (uint64_t)1 << 62)),
            LLAMA_ERR_HEADER);
    VARIANT(patch_u64(v.b, at.t0_ne1, UINT64_MAX), LLAMA_ERR_HEADER);
    VARIANT(patch_u64(v.b, at.t0_ne1, 3), LLAMA_ERR_GGUF_LAYOUT);      /* 102 bytes: runs into t1 */
    VARIANT(patch_u64(v.b, at.t1_off, 64), LLAMA_ERR_GGUF_LAYOUT);     /* overlaps t0 */
    VARIANT(patch_u64(v.b, at.t1_off, 100), LLAMA_ERR_GGUF_LAYOUT);    /* misaligned */
    VARIANT(patch_u64(v.b, at.t1_off, 128), LLAMA_ERR_GGUF_LAYOUT);    /* past the end */
    VARIANT(patch_u64(v.b, at.t1_off, UINT64_MAX - 31), LLAMA_ERR_GGUF_LAYOUT);
    VARIANT(patch_u32(v.b, at.t1_type, LLAMA_GGUF_F16), LLAMA_OK);    /* smaller: still inside */
    /* Arrays nested deeper than the limit. */
    {
        tb d;
        size_t k;
        d.n = 0;
        tb_u32(&d, LLAMA_GGUF_MAGIC), tb_u32(&d, 3), tb_u64(&d, 0), tb_u64(&d, 1), tb_str(&d, "deep");
        tb_u32(&d, LLAMA_GGUF_ARRAY);
        for (k = 0; k < LLAMA_GGUF_MAX_DEPTH; k++) tb_u32(&d, LLAMA_GGUF_ARRAY), tb_u64(&d, 1);
        tb_u32(&d, LLAMA_GGUF_UINT8), tb_u64(&d, 0);
        CHECK_LL(open_copy(d.b, d.n), LLAMA_ERR_GGUF);
        d.n = 0; /* one level less opens */
        tb_u32(&d, LLAMA_GGUF_MAGIC), tb_u32(&d, 3), tb_u64(&d, 0), tb_u64(&d, 1), tb_str(&d, "deep");
        tb_u32(&d, LLAMA_GGUF_ARRAY);
        for (k = 0; k + 1 < LLAMA_GGUF_MAX_DEPTH; k++) tb_u32(&d, LLAMA_GGUF_ARRAY), tb_u64(&d, 1);
        tb_u32(&d, LLAMA_GGUF_UINT8), tb_u64(&d, 0);
        CHECK_LL(open_copy(d.b, d.n), LLAMA_OK);
    }
#undef VARIANT
    CHECK_LL(llama_gguf_open_mem(NULL, 4, NULL), LLAMA_ERR_ARG);
    CHECK_LL(llama_gguf_open("build/no-such-file.gguf", NULL), LLAMA_ERR_ARG);
    {
        llama_gguf *g = NULL;
        CHECK_LL(llama_gguf_open("build/no-such-file.gguf", &g), LLAMA_ERR_IO);
        CHECK_LL(llama_gguf_open("build", &g), LLAMA_ERR_IO); /* a directory */
    }
}

/* >>writer-errors ----------------------------------------------------------- */

static void test_gguf_writer_errors(void) {
    llama_gguf_writer *w;
    llama_gguf_value v;
    uint64_t ne[2] = { 32, 1 }, bad[2] = { 31, 1 };
    float x[32] = { 0 };
    unsigned char blk[34] = { 0 };
    FILE *f;
    CHECK_LL(llama_gguf_writer_create(&w), LLAMA_OK);
    if (!w) return;
    CHECK_LL(llama_gguf_writer_set_u32(w, "k", 1), LLAMA_OK);
    CHECK_LL(llama_gguf_writer_set_u32(w, "k", 2), LLAMA_ERR_ARG);   /* duplicate */
    CHECK_LL(llama_gguf_writer_set_u32(w, "", 2), LLAMA_ERR_ARG);
    CHECK_LL(llama_gguf_writer_set_u32(w, "\xc0\x80", 2), LLAMA_ERR_ARG); /* overlong UTF-8 */
    v = scalar(LLAMA_GGUF_UINT8, 256, 0, 0);
    CHECK_LL(llama_gguf_writer_set(w, "u8", &v), LLAMA_ERR_ARG);
    v = scalar(LLAMA_GGUF_BOOL, 2, 0, 0);
    CHECK_LL(llama_gguf_writer_set(w, "b", &v), LLAMA_ERR_ARG);
    v = scalar((llama_gguf_type)13, 0, 0, 0);
    CHECK_LL(llama_gguf_writer_set(w, "t", &v), LLAMA_ERR_ARG);
    CHECK_LL(llama_gguf_writer_add_f32(w, "x", LLAMA_GGUF_F32, 2, ne, x), LLAMA_OK);
    CHECK_LL(llama_gguf_writer_add_f32(w, "x", LLAMA_GGUF_F32, 2, ne, x), LLAMA_ERR_ARG);
    CHECK_LL(llama_gguf_writer_add_f32(w, "0123456789012345678901234567890123456789012345678901234567890123",
                                       LLAMA_GGUF_F32, 2, ne, x), LLAMA_ERR_ARG);
    CHECK_LL(llama_gguf_writer_add_f32(w, "y", LLAMA_GGUF_Q8_0, 2, bad, x), LLAMA_ERR_GGUF_TYPE);
    CHECK_LL(llama_gguf_writer_add_raw(w, "z", LLAMA_GGUF_Q8_0, 2, ne, blk, 33), LLAMA_ERR_ARG);
    CHECK_LL(llama_gguf_writer_add_raw(w, "z", LLAMA_GGUF_Q8_0, 2, ne, blk, 34), LLAMA_OK);
    CHECK_LL(llama_gguf_writer_write(w, "build"), LLAMA_ERR_IO); /* a directory: refused, nothing left */
    CHECK((f = fopen("build.tmp0", "rb")) == NULL);
    if (f) fclose(f);
    /* An existing regular file is replaced whole. */
    if ((f = fopen("build/test_gguf_old.gguf", "wb")) != NULL) {
        fputs("old", f);
        fclose(f);
    }
    CHECK_LL(llama_gguf_writer_write(w, "build/test_gguf_old.gguf"), LLAMA_OK);
    {
        llama_gguf *g = NULL;
        CHECK_LL(llama_gguf_open("build/test_gguf_old.gguf", &g), LLAMA_OK);
        CHECK(g && g->n_tensors == 2);
        llama_gguf_close(g);
    }
    CHECK((f = fopen("build/test_gguf_old.gguf.tmp0", "rb")) == NULL);
    if (f) fclose(f);
    remove("build/test_gguf_old.gguf");
    CHECK_LL(llama_gguf_writer_write(w, "build/no-such-dir/x.gguf"), LLAMA_ERR_IO);
    CHECK_LL(llama_gguf_writer_set_u32(w, "general.alignment", 24), LLAMA_OK);
    {
        void *buf = NULL;
        size_t bytes;
        CHECK_LL(llama_gguf_writer_write_mem(w, &buf, &bytes), LLAMA_ERR_GGUF_LAYOUT);
        free(buf);
    }
    llama_gguf_writer_free(w);
}

/* >>model -------------------------------------------------------------------- */

/* A random llama2.c model image (header + floats). */
static unsigned char *tiny_llama2c(const int32_t cfg[7], uint64_t seed, size_t *bytes) {
    llama_config c;
    size_t sz[13], n, i;
    unsigned char *b;
    c.dim = cfg[0], c.hidden_dim = cfg[1], c.n_layers = cfg[2], c.n_heads = cfg[3], c.n_kv_heads = cfg[4];
    c.vocab_size = cfg[5] < 0 ? -cfg[5] : cfg[5], c.seq_len = cfg[6];
    n = llama__tensor_sizes(&c, cfg[5] > 0, sz);
    *bytes = 28 + 4 * n;
    b = (unsigned char *)malloc(*bytes);
    for (i = 0; i < 7; i++) patch_u32(b, 4 * i, (uint32_t)cfg[i]);
    for (i = 0; i < n; i++) {
        float f = 0.3f * test_normal(&seed);
        patch_u32(b, 28 + 4 * i, bits_of(f));
    }
    return b;
}

/* The model as a GGUF of F32 tensors, under llama.cpp's names. */
static llama_status to_gguf(const llama_model *m, llama_gguf_writer *w, int drop) {
    static const char *const names[7] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up" };
    size_t D = (size_t)m->c.dim, l, N, K;
    uint64_t ne[2];
    char name[64];
    int which;
    llama_status st = LLAMA_OK;
    llama_gguf_writer_set_str(w, "general.architecture", "llama");
    llama_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)m->c.dim);
    llama_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)m->c.hidden_dim);
    llama_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)m->c.n_layers);
    llama_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)m->c.n_heads);
    llama_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)m->c.n_kv_heads);
    llama_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)m->c.seq_len);
    llama_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    {
        llama_gguf_value v = scalar(LLAMA_GGUF_FLOAT64, 0, 0, 1e-5); /* exactly llama2.c's */
        llama_gguf_writer_set(w, "llama.attention.layer_norm_rms_epsilon", &v);
    }
    ne[0] = D, ne[1] = (uint64_t)m->c.vocab_size;
    st = llama_gguf_writer_add_f32(w, "token_embd.weight", LLAMA_GGUF_F32, 2, ne, m->emb);
    if (!m->shared && st == LLAMA_OK) st = llama_gguf_writer_add_f32(w, "output.weight", LLAMA_GGUF_F32, 2, ne, m->wcls);
    ne[1] = 1;
    if (st == LLAMA_OK && drop != 1) st = llama_gguf_writer_add_f32(w, "output_norm.weight", LLAMA_GGUF_F32, 1, ne, m->rms_final);
    for (l = 0; st == LLAMA_OK && l < (size_t)m->c.n_layers; l++) {
        snprintf(name, sizeof name, "blk.%u.attn_norm.weight", (unsigned)l);
        st = llama_gguf_writer_add_f32(w, name, LLAMA_GGUF_F32, 1, ne, m->rms_att + l * D);
        snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", (unsigned)l);
        if (st == LLAMA_OK) st = llama_gguf_writer_add_f32(w, name, LLAMA_GGUF_F32, 1, ne, m->rms_ffn + l * D);
        for (which = 0; st == LLAMA_OK && which < LLAMA_LINEARS; which++) {
            uint64_t s[2];
            const float *W = llama__weight(m, (int)l, which, &N, &K);
            s[0] = K, s[1] = N;
            if (drop == 2 && which == LLAMA_WK) s[0] = K / 2; /* a wrong shape */
            snprintf(name, sizeof name, "blk.%u.%s.weight", (unsigned)l, names[which]);
            st = llama_gguf_writer_add_f32(w, name, LLAMA_GGUF_F32, 2, s, W);
        }
    }
    return st;
}

/* Same logits, bit for bit, from the llama2.c image and its GGUF, for a
   GQA model with a shared classifier and an MHA one with its own. */
static void test_gguf_model_equals_llama2c(void) {
    static const int32_t cfgs[2][7] = { { 64, 96, 2, 8, 2, 40, 32 }, { 32, 64, 1, 4, 4, -24, 16 } };
    static const int tokens[6] = { 1, 5, 9, 2, 17, 3 };
    size_t c;
    for (c = 0; c < 2; c++) {
        size_t bytes, gbytes = 0, i, V;
        unsigned char *img = tiny_llama2c(cfgs[c], 7 + c, &bytes);
        void *gimg = NULL;
        llama_model a, b;
        llama_gguf_writer *w;
        llama_state *sa = NULL, *sb = NULL;
        float *la, *lb;
        int drop;
        CHECK_LL(llama_load_mem(img, bytes, &a), LLAMA_OK);
        V = (size_t)a.c.vocab_size;
        for (drop = 0; drop < 3; drop++) { /* drop 1: no output_norm; drop 2: a wrong shape */
            CHECK_LL(llama_gguf_writer_create(&w), LLAMA_OK);
            CHECK_LL(to_gguf(&a, w, drop), LLAMA_OK);
            CHECK_LL(llama_gguf_writer_write_mem(w, &gimg, &gbytes), LLAMA_OK);
            llama_gguf_writer_free(w);
            if (drop) CHECK_LL(llama_load_mem(gimg, gbytes, &b), LLAMA_ERR_GGUF_MODEL);
            free(gimg);
        }
        /* The whole model again, to run. */
        CHECK_LL(llama_gguf_writer_create(&w), LLAMA_OK);
        CHECK_LL(to_gguf(&a, w, 0), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_write_mem(w, &gimg, &gbytes), LLAMA_OK);
        llama_gguf_writer_free(w);
        CHECK_LL(llama_load_mem(gimg, gbytes, &b), LLAMA_OK);
        CHECK(b.shared == a.shared && b.c.vocab_size == a.c.vocab_size && b.c.n_kv_heads == a.c.n_kv_heads &&
              b.rope_base == a.rope_base && b.norm_eps == a.norm_eps && b.rope_dim == a.rope_dim &&
              b.n_floats == a.n_floats);
        la = (float *)malloc(6 * V * sizeof(float)), lb = (float *)malloc(6 * V * sizeof(float));
        CHECK_LL(llama_state_create(&a, 6, 6, &sa), LLAMA_OK);
        CHECK_LL(llama_state_create(&b, 6, 6, &sb), LLAMA_OK);
        CHECK_LL(llama_forward(&a, NULL, sa, tokens, 6, 0, la, NULL, NULL), LLAMA_OK);
        CHECK_LL(llama_forward(&b, NULL, sb, tokens, 6, 0, lb, NULL, NULL), LLAMA_OK);
        for (i = 0; i < 6 * V; i++) CHECK(bits_of(la[i]) == bits_of(lb[i]));
        llama_state_free(sa), llama_state_free(sb);
        free(la), free(lb), free(img), free(gimg);
        llama_free(&a), llama_free(&b);
    }
}

/* RoPE's pairs past rope.dimension_count stay unrotated, and other metadata
   is checked. */
static void test_gguf_model_metadata(void) {
    static const int32_t cfg[7] = { 32, 64, 1, 2, 1, 20, 8 };
    size_t bytes, gbytes = 0, k;
    unsigned char *img = tiny_llama2c(cfg, 9, &bytes);
    llama_model a, b;
    llama_state *s = NULL;
    llama_gguf_writer *w;
    void *gimg = NULL;
    CHECK_LL(llama_load_mem(img, bytes, &a), LLAMA_OK);
    for (k = 0; k < 4; k++) {
        CHECK_LL(llama_gguf_writer_create(&w), LLAMA_OK);
        if (k == 0) llama_gguf_writer_set_u32(w, "llama.rope.dimension_count", 8);
        if (k == 1) llama_gguf_writer_set_u32(w, "llama.rope.dimension_count", 18); /* beyond the head size 16 */
        if (k == 2) llama_gguf_writer_set_str(w, "llama.attention.head_count_kv", "3");
        if (k == 3) llama_gguf_writer_set_u32(w, "llama.attention.head_count_kv", 0);
        CHECK_LL(to_gguf(&a, w, 0), LLAMA_OK);
        CHECK_LL(llama_gguf_writer_write_mem(w, &gimg, &gbytes), LLAMA_OK);
        llama_gguf_writer_free(w);
        if (k == 0) {
            CHECK_LL(llama_load_mem(gimg, gbytes, &b), LLAMA_OK);
            CHECK(b.rope_dim == 8);
            CHECK_LL(llama_state_create(&b, 1, 4, &s), LLAMA_OK);
            if (s) {
                size_t p, i;
                for (p = 0; p < 4; p++)
                    for (i = 0; i < 8; i++) {
                        double angle = 2 * i < 8 ? (double)p * pow(10000.0, -(double)(2 * i) / 8.0) : 0.0;
                        CHECK(s->rope[p * 16 + 2 * i] == (float)cos(angle) && s->rope[p * 16 + 2 * i + 1] == (float)sin(angle));
                    }
            }
            llama_state_free(s);
            llama_free(&b);
        } else {
            CHECK_LL(llama_load_mem(gimg, gbytes, &b), k == 2 ? LLAMA_ERR_GGUF_TYPE : LLAMA_ERR_HEADER);
        }
        free(gimg);
    }
    free(img);
    llama_free(&a);
}

/* >>smollm2 ------------------------------------------------------------------ */

static char cache_dir[1024];

/* The value of `key` in tests/vectors/smollm2_llamacpp.txt (recorded from
   llama.cpp by `make crosscheck`), or NULL. */
static char *vector_value(const char *key, char *buf, size_t cap) {
    FILE *f = fopen("tests/vectors/smollm2_llamacpp.txt", "r");
    size_t k = strlen(key);
    char *found = NULL;
    if (!f) return NULL;
    while (!found && fgets(buf, (int)cap, f))
        if (strncmp(buf, key, k) == 0 && buf[k] == ' ') {
            buf[strcspn(buf, "\n")] = '\0';
            found = buf + k + 1;
        }
    fclose(f);
    return found;
}

static size_t parse_ids(const char *s, int *ids, size_t cap) {
    size_t n = 0;
    char *end;
    while (s && n < cap) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        ids[n++] = (int)v;
        s = end;
    }
    return n;
}

/* Greedy ids after the prompt, through the KV cache one token at a time. */
static void greedy_ids(const llama_model *m, const int *prompt, size_t n_prompt, size_t n, int *out) {
    llama_state *s = NULL;
    size_t V = (size_t)m->c.vocab_size, i;
    float *logits = (float *)malloc(n_prompt * V * sizeof(float));
    int cur;
    CHECK_LL(llama_state_create(m, n_prompt, n_prompt + n, &s), LLAMA_OK);
    if (!s || !logits) {
        llama_state_free(s), free(logits);
        return;
    }
    CHECK_LL(llama_forward(m, NULL, s, prompt, n_prompt, 0, logits, NULL, NULL), LLAMA_OK);
    cur = llama__argmax(logits + (n_prompt - 1) * V, V);
    for (i = 0; i < n; i++) {
        out[i] = cur;
        if (i + 1 < n) {
            CHECK_LL(llama_forward(m, NULL, s, &cur, 1, n_prompt + i, logits, NULL, NULL), LLAMA_OK);
            cur = llama__argmax(logits, V);
        }
    }
    llama_state_free(s);
    free(logits);
}

/* SmolLM2 as shipped (Q4_1, Q8_0 embedding): the configuration from its
   metadata; its dequantization equal bit for bit to llama.cpp's own F32
   export; the greedy continuation and FP32 perplexity of llama.cpp. */
static void test_gguf_smollm2(void) {
    static const int paris[5] = { 504, 3575, 282, 4649, 314 }; /* "The capital of France is" (llama-tokenize) */
    char path[1200], line[4096];
    llama_model m, f32;
    int out[64], prompt[64], want[64];
    size_t n_prompt, n_want, i;

    snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache_dir);
    memset(&m, 0, sizeof m);
    CHECK_LL(llama_load(path, &m), LLAMA_OK);
    if (!m.data) return;
    CHECK(m.c.dim == 576 && m.c.hidden_dim == 1536 && m.c.n_layers == 30 && m.c.n_heads == 9 && m.c.n_kv_heads == 3);
    CHECK(m.c.vocab_size == 49152 && m.c.seq_len == 8192 && m.shared == 1 && m.rope_dim == 64);
    CHECK(m.rope_base == 100000.0 && m.norm_eps == (double)1e-5f);
    greedy_ids(&m, paris, 5, 1, out);
    CHECK(out[0] == 7042); /* " Paris" */
    snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.F32.gguf", cache_dir);
    if (llama_load(path, &f32) == LLAMA_OK) {
        CHECK(f32.n_floats == m.n_floats && memcmp(f32.data, m.data, m.n_floats * sizeof(float)) == 0);
        llama_free(&f32);
    } else {
        printf("gguf smollm2: dequantization against llama.cpp's F32 file skipped: no %s (make crosscheck)\n", path);
    }
    n_prompt = parse_ids(vector_value("greedy_prompt_ids", line, sizeof line), prompt, 64);
    n_want = parse_ids(vector_value("greedy_ids", line, sizeof line), want, 64);
    CHECK(n_prompt && n_want); /* the vector file is in the repository */
    greedy_ids(&m, prompt, n_prompt, n_want, out);
    for (i = 0; i < n_want; i++) CHECK(out[i] == want[i]);
    llama_free(&m);
}

/* FP32 perplexity of the first 4 chunks against llama.cpp's all-F32 value. */
static void test_gguf_smollm2_ppl(void) {
    char path[1200], line[4096], tpath[1200], *text = NULL;
    const char *v = vector_value("f32_kvf32_ppl_4chunks", line, sizeof line), *data = getenv("W4A8_DATA");
    size_t bytes = 0, n = 0;
    int *ids = NULL;
    llama_gguf *g = NULL;
    llama_tokenizer tok;
    llama_model m;
    memset(&tok, 0, sizeof tok);
    memset(&m, 0, sizeof m);
    snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache_dir);
    snprintf(tpath, sizeof tpath, "%s/wikitext2_test_raw.txt", data && *data ? data : "../shared/data");
    CHECK(v != NULL); /* the vector file is in the repository */
    CHECK_LL(llama__read_file(tpath, (size_t)1 << 24, &text, &bytes), LLAMA_OK);
    CHECK_LL(llama_gguf_open(path, &g), LLAMA_OK);
    if (v && text && g && llama_load_gguf(g, &m) == LLAMA_OK && llama_tokenizer_from_gguf(g, &tok) == LLAMA_OK &&
        llama_encode(&tok, text, bytes, &ids, &n) == LLAMA_OK) {
        /* llama.cpp's perplexity: chunks of 512, no BOS (add_bos_token is false), second halves scored */
        double ref = atof(v);
        llama_entry e = { NULL, NULL, 0, 0 };
        llama_metrics mt;
        memset(&mt, 0, sizeof mt);
        CHECK(!tok.add_bos && n >= 4 * 512);
        e.m = &m;
        CHECK_LL(llama_evaluate_chunks(&e, 1, ids, 4, 512, 256, &mt, NULL, NULL), LLAMA_OK);
        CHECK(mt.tokens == 4 * 255);
        CHECK(fabs(llama_ppl(&mt) - ref) <= 1e-4 * ref);
        printf("    smollm2 FP32 PPL, 4 chunks: %.4f (llama.cpp all-F32: %.4f)\n", llama_ppl(&mt), ref);
    } else {
        CHECK(0); /* the model, its tokenizer and the text load */
    }
    free(ids), free(text);
    llama_tokenizer_free(&tok);
    if (m.data) llama_free(&m);
    llama_gguf_close(g);
}

/* >>export ------------------------------------------------------------------ */

/* A random model (dims multiples of 32, GQA), its F32 GGUF as the source
   (with extra metadata from `extra`, e.g. a tokenizer), the model loaded
   from it, and its calibration on random tokens. */
typedef struct export_fixture {
    void *img;
    size_t bytes;
    llama_gguf *g;
    llama_model m;
    llama_calibs cs;
} export_fixture;

static int export_setup(export_fixture *x, int vocab, uint64_t seed, const llama_gguf *extra) {
    const int32_t cfg[7] = { 64, 128, 2, 4, 2, vocab, 32 };
    size_t bytes, i;
    unsigned char *img = tiny_llama2c(cfg, seed, &bytes);
    llama_model a;
    llama_gguf_writer *w = NULL;
    int seqs[4 * 16];
    w4a8_status wst;
    memset(x, 0, sizeof *x);
    CHECK_LL(llama_load_mem(img, bytes, &a), LLAMA_OK);
    free(img);
    CHECK_LL(llama_gguf_writer_create(&w), LLAMA_OK);
    for (i = 0; extra && i < extra->n_kv; i++)
        if (!strncmp(extra->kv[i].key, "tokenizer.", 10)) CHECK_LL(llama_gguf_writer_set(w, extra->kv[i].key, &extra->kv[i].v), LLAMA_OK);
    /* llama.cpp reads the epsilon as FLOAT32 only (to_gguf's FLOAT64 then stays out) */
    if (extra) CHECK_LL(llama_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f), LLAMA_OK);
    CHECK_LL(to_gguf(&a, w, 0), LLAMA_OK);
    CHECK_LL(llama_gguf_writer_write_mem(w, &x->img, &x->bytes), LLAMA_OK);
    llama_gguf_writer_free(w);
    llama_free(&a);
    CHECK_LL(llama_gguf_open_mem(x->img, x->bytes, &x->g), LLAMA_OK);
    if (!x->g || llama_load_gguf(x->g, &x->m) != LLAMA_OK) return 0;
    for (i = 0; i < 4 * 16; i++) seqs[i] = (int)(test_rand(&seed) % (uint64_t)vocab);
    CHECK_LL(llama_calibrate(&x->m, seqs, 4, 16, &x->cs, &wst), LLAMA_OK);
    return x->cs.c != NULL;
}

static void export_teardown(export_fixture *x) {
    llama_calibs_free(&x->cs);
    llama_free(&x->m);
    llama_gguf_close(x->g);
    free(x->img);
}

static llama_spec export_spec(w4a8_method method, int gptq_weights, size_t group) {
    llama_spec s;
    memset(&s, 0, sizeof s);
    s.method = method, s.gptq_weights = gptq_weights, s.act_mode = W4A8_ACT_PER_TOKEN, s.group = group;
    s.fptq_low = 15.0f, s.fptq_high = 150.0f;
    return s;
}

/* The exported image of q, or NULL with the status in *st. */
static void *export_mem(const export_fixture *x, const llama_qmodel *q, const llama_export_opts *o, size_t *bytes,
                        llama_status *st, llama_export_report *rep) {
    llama_gguf_writer *w = NULL;
    void *img = NULL;
    *st = llama_export_writer(x->g, &x->m, q, o, &w, rep);
    if (*st == LLAMA_OK) *st = llama_gguf_writer_write_mem(w, &img, bytes);
    llama_gguf_writer_free(w);
    return img;
}

/* Every linear of the exported file dequantizes to exactly w4a8's codes
   times the fp16-rounded scales (minus the fp16 scale times the zero, Q4_1),
   within 8 * 2^-11 scale of w4a8's own dequantized weights (the fp16
   rounding); the norms are q's folded gammas bit for bit, token_embd and
   the metadata the source's; our engine loads the file to those weights. */
static void export_check(const export_fixture *x, const llama_qmodel *q, const void *img, size_t bytes,
                         uint32_t want_type) {
    static const char *const names[7] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up" };
    llama_gguf *e = NULL;
    llama_model y;
    size_t D = (size_t)x->m.c.dim, i, l, N, K, n, k;
    uint64_t ft = 0;
    char name[64];
    int which;
    CHECK_LL(llama_gguf_open_mem(img, bytes, &e), LLAMA_OK);
    CHECK_LL(llama_load_mem(img, bytes, &y), LLAMA_OK);
    if (!e || !y.data) {
        llama_gguf_close(e);
        return;
    }
    for (i = 0; i < x->g->n_kv; i++) {
        const llama_gguf_value *v = llama_gguf_find(e, x->g->kv[i].key);
        CHECK(v && same_value(v, &x->g->kv[i].v));
    }
    CHECK(llama_gguf_get_u64(e, "general.file_type", &ft) == LLAMA_OK && ft == (want_type == LLAMA_GGUF_Q4_0 ? 2 : 3));
    CHECK(e->n_tensors == x->g->n_tensors);
    {
        const llama_gguf_tensor *a = llama_gguf_tensor_find(x->g, "token_embd.weight");
        const llama_gguf_tensor *b = llama_gguf_tensor_find(e, "token_embd.weight");
        CHECK(a && b && a->type == b->type && a->n_bytes == b->n_bytes && !memcmp(a->data, b->data, a->n_bytes));
    }
    CHECK(!memcmp(y.rms_att, q->rms_att, x->m.c.n_layers * D * sizeof(float)));
    CHECK(!memcmp(y.rms_ffn, q->rms_ffn, x->m.c.n_layers * D * sizeof(float)));
    CHECK(!memcmp(y.rms_final, q->rms_final, D * sizeof(float)));
    CHECK(!memcmp(y.emb, x->m.emb, D * (size_t)x->m.c.vocab_size * sizeof(float)));
    for (l = 0; l < (size_t)x->m.c.n_layers; l++)
        for (which = 0; which < LLAMA_LINEARS; which++) {
            const w4a8_layer *L = q->lin[l * LLAMA_LINEARS + which];
            const llama_gguf_tensor *t;
            const float *W = llama__weight(&y, (int)l, which, &N, &K);
            uint8_t *codes = (uint8_t *)malloc(N * K);
            float *dq = llama__floats(N, K);
            int bad = 0, far = 0;
            snprintf(name, sizeof name, "blk.%u.%s.weight", (unsigned)l, names[which]);
            t = llama_gguf_tensor_find(e, name);
            CHECK(t && t->type == want_type);
            CHECK(!L->smooth || L->smooth_folded); /* wo too: exported without a run-time 1/s */
            CHECK_ST(w4a8_layer_codes(L, codes), W4A8_OK);
            CHECK_ST(w4a8_dequantize(codes, L->scales, L->zeros, N, K, L->G, dq), W4A8_OK);
            for (n = 0; n < N; n++)
                for (k = 0; k < K; k++) {
                    float s = L->scales[n * L->groups + k / 32], d = llama__gguf_f16(llama__gguf_to_f16(s));
                    int c = codes[n * K + k], z = L->zeros[n * L->groups + k / 32];
                    float want = L->asymmetric ? (float)c * d + llama__gguf_f16(llama__gguf_to_f16(-s * (float)z))
                                               : (float)(c - 8) * d;
                    bad += bits_of(W[n * K + k]) != bits_of(want);
                    far += !(fabsf(W[n * K + k] - dq[n * K + k]) <= 8.0f * fabsf(s) * (1.0f / 2048.0f) * (1.0f + (float)(L->asymmetric != 0)) + 1e-7f);
                }
            CHECK(bad == 0 && far == 0);
            free(codes), free(dq);
        }
    llama_free(&y);
    llama_gguf_close(e);
}

/* RTN, GPTQ, AWQ (symmetric), AWQ+GPTQ and AUTO through llama_export_quantizer:
   every linear Q4_0, exact; AWQ's equalizations folded (some layer has one). */
static void test_export_q4_0(void) {
    static const int methods[5][2] = { { W4A8_METHOD_RTN, 0 }, { W4A8_METHOD_GPTQ, 0 }, { W4A8_METHOD_AWQ, 0 },
                                       { W4A8_METHOD_AWQ, 1 }, { W4A8_METHOD_AUTO, 0 } };
    export_fixture x;
    size_t i, j;
    if (!export_setup(&x, 40, 21, NULL)) {
        export_teardown(&x);
        return;
    }
    for (i = 0; i < 5; i++) {
        llama_spec spec = export_spec((w4a8_method)methods[i][0], methods[i][1], 32);
        llama_qmodel *q = NULL;
        llama_export_report rep;
        llama_status st;
        w4a8_status wst;
        size_t bytes = 0;
        void *img;
        int equalized = 0;
        CHECK_LL(llama_quantize(&x.m, &x.cs, &spec, 0, llama_export_quantizer, &q, &wst), LLAMA_OK);
        if (!q) continue;
        for (j = 0; j < (size_t)q->n_layers * LLAMA_LINEARS; j++) {
            equalized += q->lin[j]->smooth != NULL;
            CHECK(!q->lin[j]->asymmetric);
        }
        if (methods[i][0] == W4A8_METHOD_AWQ) CHECK(equalized > 0);
        img = export_mem(&x, q, NULL, &bytes, &st, &rep);
        CHECK_LL(st, LLAMA_OK);
        CHECK(rep.q4_0 == (size_t)q->n_layers * LLAMA_LINEARS && rep.q4_1 == 0 && rep.static_act == 0);
        /* the fp16 rounding: at most 2^-11 relative for normal halves; it costs far less than 4-bit rounding */
        CHECK(rep.scale_rel_max <= 1.0 / 2048.0 && rep.err_w4a8 > 0.0 && rep.err_w4a8 < rep.ref);
        CHECK(fabs(rep.err_fp16 - rep.err_w4a8) <= 0.01 * rep.err_w4a8);
        if (methods[i][0] == W4A8_METHOD_RTN) CHECK(rep.err_rechosen <= rep.err_fp16);
        if (img) export_check(&x, q, img, bytes, LLAMA_GGUF_Q4_0);
        free(img);
        llama_qmodel_free(q);
    }
    export_teardown(&x);
}

/* AWQ with its zero points, wo without equalization: Q4_1 when allowed, exact;
   refused otherwise. */
static w4a8_status export_awq_zero_points(const w4a8_linear *lin, size_t count, size_t K, const w4a8_calib *calib,
                                          const w4a8_config *cfg, w4a8_layer **layers, w4a8_report *rep) {
    w4a8_config c = *cfg;
    if (!c.fold_smooth) c.method = W4A8_METHOD_RTN;
    return w4a8_quantize_linears(lin, count, K, calib, &c, layers, rep);
}

static void test_export_q4_1(void) {
    export_fixture x;
    llama_spec spec = export_spec(W4A8_METHOD_AWQ, 0, 32);
    llama_qmodel *q = NULL;
    llama_export_opts o;
    llama_export_report rep;
    llama_status st;
    w4a8_status wst;
    size_t bytes = 0;
    void *img;
    if (!export_setup(&x, 40, 22, NULL)) {
        export_teardown(&x);
        return;
    }
    memset(&o, 0, sizeof o);
    CHECK_LL(llama_quantize(&x.m, &x.cs, &spec, 0, export_awq_zero_points, &q, &wst), LLAMA_OK);
    if (q) {
        img = export_mem(&x, q, &o, &bytes, &st, &rep);
        CHECK_LL(st, LLAMA_ERR_EXPORT_ASYM);
        CHECK(img == NULL);
        o.q4_1 = 1;
        img = export_mem(&x, q, &o, &bytes, &st, &rep);
        CHECK_LL(st, LLAMA_OK);
        /* wo RTN symmetric, the rest AWQ's zero points */
        CHECK(rep.q4_0 == (size_t)q->n_layers && rep.q4_1 == 6 * (size_t)q->n_layers);
        if (img) {
            llama_gguf *e = NULL;
            const llama_gguf_tensor *t;
            CHECK_LL(llama_gguf_open_mem(img, bytes, &e), LLAMA_OK);
            t = llama_gguf_tensor_find(e, "blk.0.attn_q.weight");
            CHECK(t && t->type == LLAMA_GGUF_Q4_1);
            llama_gguf_close(e);
        }
        free(img);
    }
    llama_qmodel_free(q);
    export_teardown(&x);
}

/* What cannot be written is refused with its status, and no file appears. */
static void test_export_refusals(void) {
    static const char *path = "build/test_export_refused.gguf";
    export_fixture x;
    llama_qmodel *q = NULL;
    llama_model r;
    llama_spec spec;
    llama_export_report rep;
    llama_status st;
    w4a8_status wst;
    w4a8_config cfg;
    size_t bytes = 0, i;
    FILE *f;
    if (!export_setup(&x, 40, 23, NULL)) {
        export_teardown(&x);
        return;
    }
    remove(path);
    /* group 64: not Q4_0's */
    spec = export_spec(W4A8_METHOD_RTN, 0, 64);
    CHECK_LL(llama_quantize(&x.m, &x.cs, &spec, 0, llama_export_quantizer, &q, &wst), LLAMA_OK);
    CHECK_LL(llama_export_gguf(x.g, &x.m, q, NULL, path, &rep), LLAMA_ERR_EXPORT_GROUP);
    llama_qmodel_free(q), q = NULL;
    /* SmoothQuant's wo divides by s at run time (the plain quantizer) */
    spec = export_spec(W4A8_METHOD_SMOOTHQUANT, 0, 32);
    CHECK_LL(llama_quantize(&x.m, &x.cs, &spec, 0, NULL, &q, &wst), LLAMA_OK);
    CHECK_LL(llama_export_gguf(x.g, &x.m, q, NULL, path, &rep), LLAMA_ERR_EXPORT_RUNTIME);
    llama_qmodel_free(q), q = NULL;
    /* a quantized classifier */
    spec = export_spec(W4A8_METHOD_RTN, 0, 32);
    CHECK_LL(llama_quantize(&x.m, &x.cs, &spec, 1, llama_export_quantizer, &q, &wst), LLAMA_OK);
    CHECK_LL(llama_export_gguf(x.g, &x.m, q, NULL, path, &rep), LLAMA_ERR_EXPORT_MODEL);
    llama_qmodel_free(q), q = NULL;
    /* a rotated model: its embedding is not the source's; with w2's online rotation */
    for (i = 0; i < 2; i++) {
        CHECK_LL(llama_rotate(&x.m, 3, (int)i, &r), LLAMA_OK);
        CHECK_LL(llama_quantize(&r, &x.cs, &spec, 0, llama_export_quantizer, &q, &wst), LLAMA_OK);
        CHECK_LL(llama_export_gguf(x.g, &r, q, NULL, path, &rep), LLAMA_ERR_EXPORT_MODEL);
        llama_qmodel_free(q), q = NULL;
        llama_free(&r);
    }
    /* a scale past fp16's range */
    for (i = 0; i < 64 * 64; i++) x.m.wq[i] *= 1e6f;
    CHECK_LL(llama_quantize(&x.m, &x.cs, &spec, 0, llama_export_quantizer, &q, &wst), LLAMA_OK);
    CHECK_LL(llama_export_gguf(x.g, &x.m, q, NULL, path, &rep), LLAMA_ERR_EXPORT_RANGE);
    CHECK(export_mem(&x, q, NULL, &bytes, &st, &rep) == NULL && st == LLAMA_ERR_EXPORT_RANGE);
    llama_qmodel_free(q), q = NULL;
    CHECK_LL(llama_export_gguf(NULL, &x.m, NULL, NULL, path, &rep), LLAMA_ERR_ARG);
    CHECK((f = fopen(path, "rb")) == NULL);
    if (f) fclose(f);
    /* w4a8: awq_symmetric is 0 or 1 */
    w4a8_config_init(&cfg);
    cfg.method = W4A8_METHOD_AWQ, cfg.group_size = 32, cfg.awq_symmetric = 2;
    {
        w4a8_linear lin;
        w4a8_layer *L = NULL;
        memset(&lin, 0, sizeof lin);
        lin.W = x.m.w1, lin.N = 128;
        CHECK_ST(w4a8_quantize_linears(&lin, 1, 64, x.cs.c[LLAMA_IN_W13], &cfg, &L, NULL), W4A8_ERR_CONFIG);
        cfg.awq_symmetric = 1;
        CHECK_ST(w4a8_quantize_linears(&lin, 1, 64, x.cs.c[LLAMA_IN_W13], &cfg, &L, NULL), W4A8_OK);
        if (L) {
            CHECK(!L->asymmetric && L->smooth != NULL);
            for (i = 0; i < L->N * L->groups; i++) CHECK(L->zeros[i] == 8);
        }
        w4a8_layer_free(L);
    }
    export_teardown(&x);
}

/* llama.cpp loads an exported file and generates from it: a random model
   with SmolLM2's vocabulary and tokenizer, GPTQ Q4_0, through
   tools/llama_greedy (built by make crosscheck beside llama.cpp's tools). */
static char export_bin[1200], export_smol[1200];

/* Why the llama.cpp test cannot run, or NULL. */
static const char *export_llamacpp_missing(void) {
    static char why[1400];
    FILE *f;
    snprintf(export_bin, sizeof export_bin, "%s/llama.cpp-0.3.36/build/bin/llama_greedy", cache_dir);
    snprintf(export_smol, sizeof export_smol, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache_dir);
    if ((f = fopen(export_bin, "rb")) == NULL) snprintf(why, sizeof why, "llama.cpp not built (no %s; make crosscheck)", export_bin);
    else if (fclose(f), (f = fopen(export_smol, "rb")) == NULL) snprintf(why, sizeof why, "no %s (tools/fetch_model.sh)", export_smol);
    else {
        fclose(f);
        return NULL;
    }
    printf("export llama.cpp: skipped: %s\n", why);
    return why;
}

static void test_export_llamacpp(void) {
    static const char *path = "build/test_export_tiny.gguf", *out = "build/test_export_tiny.txt";
    char cmd[4096], line[4096];
    export_fixture x;
    llama_gguf *smol = NULL;
    llama_qmodel *q = NULL;
    llama_spec spec = export_spec(W4A8_METHOD_GPTQ, 0, 32);
    llama_export_report rep;
    llama_model y;
    w4a8_status wst;
    FILE *f;
    int prompt[64], got[16], ours[16];
    size_t n_prompt = 0, n_got = 0, i, same = 0;
    memset(&x, 0, sizeof x);
    CHECK_LL(llama_gguf_open(export_smol, &smol), LLAMA_OK);
    if (smol && export_setup(&x, 49152, 24, smol)) {
        CHECK_LL(llama_quantize(&x.m, &x.cs, &spec, 0, llama_export_quantizer, &q, &wst), LLAMA_OK);
        CHECK_LL(llama_export_gguf(x.g, &x.m, q, NULL, path, &rep), LLAMA_OK);
        snprintf(cmd, sizeof cmd, "'%s' '%s' 8 1 f32 'The capital of France is' >'%s' 2>&1", export_bin, path, out);
        CHECK(system(cmd) == 0);
        if ((f = fopen(out, "r")) != NULL) {
            while (fgets(line, (int)sizeof line, f)) {
                if (!strncmp(line, "prompt_ids ", 11)) n_prompt = parse_ids(line + 11, prompt, 64);
                if (!strncmp(line, "greedy_ids ", 11)) n_got = parse_ids(line + 11, got, 16);
            }
            fclose(f);
        }
        CHECK(n_prompt > 0 && n_got == 8);
        if (n_got != 8) printf("    llama_greedy said (in %s): %s", out, line);
        for (i = 0; i < n_got; i++) CHECK(got[i] >= 0 && got[i] < 49152);
        if (n_prompt && n_got == 8 && llama_load(path, &y) == LLAMA_OK) {
            greedy_ids(&y, prompt, n_prompt, 8, ours);
            for (i = 0; i < 8 && ours[i] == got[i]; i++) same++;
            printf("    llama.cpp ran the exported file: its first %zu of 8 greedy tokens are our engine's (FP32 "
                   "activations; llama.cpp's are Q8_0)\n", same);
            llama_free(&y);
        }
        if (n_got == 8) remove(path), remove(out);
    }
    llama_qmodel_free(q);
    export_teardown(&x);
    llama_gguf_close(smol);
}

void tests_gguf(void) {
    const char *env = getenv("W4A8_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (env && *env) snprintf(cache_dir, sizeof cache_dir, "%s", env);
    else if (xdg && *xdg) snprintf(cache_dir, sizeof cache_dir, "%s/w4a8", xdg);
    else snprintf(cache_dir, sizeof cache_dir, "%s/.cache/w4a8", home ? home : ".");
    RUN(test_gguf_f16);
    RUN(test_gguf_dequantize);
    RUN(test_gguf_quantize);
    RUN(test_gguf_roundtrip);
    RUN(test_gguf_getters);
    RUN(test_gguf_corrupt);
    RUN(test_gguf_writer_errors);
    RUN(test_gguf_model_equals_llama2c);
    RUN(test_gguf_model_metadata);
    {
        /* Reasons to skip, checked here so that a skip is counted as one. */
        static char no_model[1300];
        const char *data = getenv("W4A8_DATA"), *why = NULL, *why_ppl;
        char path[1200];
        FILE *f;
        snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache_dir);
        if (!(f = fopen(path, "rb"))) {
            snprintf(no_model, sizeof no_model, "no model at %s (tools/fetch_model.sh fetches it)", path);
            why = no_model;
        } else
            fclose(f);
        why_ppl = why;
        snprintf(path, sizeof path, "%s/wikitext2_test_raw.txt", data && *data ? data : "../shared/data");
        if (!why_ppl && !(f = fopen(path, "rb"))) why_ppl = "no ../shared/data/wikitext2_test_raw.txt (W4A8_DATA)";
        else if (!why_ppl) fclose(f);
#if defined(__SANITIZE_ADDRESS__)
        if (!why_ppl) why_ppl = "minutes under the sanitizers; the plain run checks it";
#endif
        if (why) printf("gguf smollm2: skipped: %s\n", why);
        else if (why_ppl) printf("gguf smollm2: PPL on 4 chunks skipped: %s\n", why_ppl);
        RUN_UNLESS(why, test_gguf_smollm2);
        RUN_UNLESS(why_ppl, test_gguf_smollm2_ppl);
    }
    RUN(test_export_q4_0);
    RUN(test_export_q4_1);
    RUN(test_export_refusals);
    RUN_UNLESS(export_llamacpp_missing(), test_export_llamacpp);
}
