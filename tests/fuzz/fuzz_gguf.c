/* fuzz_gguf - the GGUF reader and writer (examples/llama/gguf.h). `make fuzz`.

   Every input is opened from memory; where it parses, every metadata value
   is walked, every tensor dequantized, and the file written back with the
   writer and read again: the second parse must hold the same values and
   tensor bytes (FUZZ_CHECK). */
#include "../../examples/llama/gguf.h"
#include "fuzz.h"

/* The walk's sum goes here, so that it is not optimized away. */
static volatile size_t fuzz_gguf__sink;

/* Touch every byte a value points to, so that the sanitizers see a bad pointer. */
static size_t fuzz_gguf__walk(const llama_gguf_value *v) {
    size_t h = (size_t)v->type + v->n, i;
    if (v->type == LLAMA_GGUF_STRING) {
        for (i = 0; i <= v->len; i++) h += (unsigned char)v->str[i];
    } else if (v->type == LLAMA_GGUF_ARRAY) {
        for (i = 0; i < v->n; i++) {
            if (v->elem == LLAMA_GGUF_STRING) h += v->lens[i] + (unsigned char)v->strs[i][v->lens[i]];
            else if (v->elem == LLAMA_GGUF_ARRAY) h += fuzz_gguf__walk(&v->items[i]);
            else h += ((const unsigned char *)v->data)[(i + 1) * llama__gguf_native_size(v->elem) - 1];
        }
    }
    return h;
}

static int fuzz_gguf__same(const llama_gguf_value *a, const llama_gguf_value *b) {
    size_t i;
    if (a->type != b->type) return 0;
    if (a->type == LLAMA_GGUF_STRING) return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    if (a->type == LLAMA_GGUF_FLOAT32 || a->type == LLAMA_GGUF_FLOAT64) return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    if (a->type != LLAMA_GGUF_ARRAY) return a->u == b->u && a->i == b->i;
    if (a->elem != b->elem || a->n != b->n) return 0;
    for (i = 0; i < a->n; i++) {
        if (a->elem == LLAMA_GGUF_STRING) {
            if (a->lens[i] != b->lens[i] || memcmp(a->strs[i], b->strs[i], a->lens[i]) != 0) return 0;
        } else if (a->elem == LLAMA_GGUF_ARRAY) {
            if (!fuzz_gguf__same(&a->items[i], &b->items[i])) return 0;
        }
    }
    return a->elem == LLAMA_GGUF_STRING || a->elem == LLAMA_GGUF_ARRAY || a->n == 0 ||
           memcmp(a->data, b->data, a->n * llama__gguf_native_size(a->elem)) == 0;
}

/* Files the library's writer makes: metadata of every type (string and
   number arrays, one array of arrays), and tensors F32, F16, Q8_0, Q4_0
   quantized by the writer plus raw K-quant blocks; one with an alignment. */
static void fuzz_seeds(const char *dir) {
    static const char *const strs[] = { "a", "", "\xc3\xa9t\xc3\xa9", "<|im_start|>" };
    static const float fs[] = { 0.5f, -2.0f, 1e-3f };
    static const size_t lens[] = { 1, 0 };
    static const int32_t is[] = { -1, 0, 7 };
    static const uint32_t types[] = { LLAMA_GGUF_F32, LLAMA_GGUF_F16, LLAMA_GGUF_Q8_0, LLAMA_GGUF_Q4_0 };
    static const uint32_t kquants[] = { LLAMA_GGUF_Q4_K, LLAMA_GGUF_Q6_K };
    uint64_t seed = 7;
    int f;
    for (f = 0; f < 3; f++) {
        llama_gguf_writer *w = NULL;
        llama_gguf_value v, items[2];
        void *buf = NULL;
        size_t bytes = 0, i;
        char name[32];
        FUZZ_CHECK(llama_gguf_writer_create(&w) == LLAMA_OK);
        FUZZ_CHECK(llama_gguf_writer_set_str(w, "general.architecture", "llama") == LLAMA_OK);
        if (f == 0) { /* metadata only, every type */
            memset(&v, 0, sizeof v);
            for (i = 0; i < LLAMA_GGUF_TYPE_COUNT; i++) {
                if (i == LLAMA_GGUF_STRING || i == LLAMA_GGUF_ARRAY) continue;
                v.type = (llama_gguf_type)i, v.u = i == LLAMA_GGUF_BOOL ? 1 : 100 + i;
                v.i = (int64_t)v.u, v.f = 1.5 * (double)i;
                snprintf(name, sizeof name, "seed.scalar%zu", i);
                FUZZ_CHECK(llama_gguf_writer_set(w, name, &v) == LLAMA_OK);
            }
            FUZZ_CHECK(llama_gguf_writer_set_strs(w, "tokenizer.ggml.tokens", strs, NULL, 4) == LLAMA_OK);
            FUZZ_CHECK(llama_gguf_writer_set_array(w, "tokenizer.ggml.scores", LLAMA_GGUF_FLOAT32, fs, 3) == LLAMA_OK);
            FUZZ_CHECK(llama_gguf_writer_set_array(w, "seed.ints", LLAMA_GGUF_INT32, is, 3) == LLAMA_OK);
            memset(items, 0, sizeof items);
            items[0].type = items[1].type = LLAMA_GGUF_ARRAY;
            items[0].elem = LLAMA_GGUF_INT32, items[0].n = 3, items[0].data = is;
            items[1].elem = LLAMA_GGUF_STRING, items[1].n = 2, items[1].strs = strs;
            items[1].lens = lens;
            memset(&v, 0, sizeof v);
            v.type = LLAMA_GGUF_ARRAY, v.elem = LLAMA_GGUF_ARRAY, v.n = 2, v.items = items;
            FUZZ_CHECK(llama_gguf_writer_set(w, "seed.nested", &v) == LLAMA_OK);
        } else { /* tensors: quantized by the writer, then raw K-quant blocks */
            if (f == 2) FUZZ_CHECK(llama_gguf_writer_set_u32(w, "general.alignment", 64) == LLAMA_OK);
            for (i = 0; i < 4; i++) {
                uint64_t ne[2] = { 32, 1 + i % 2 + (size_t)f };
                float x[32 * 4];
                size_t j;
                for (j = 0; j < ne[0] * ne[1]; j++) x[j] = fuzz_uniform(&seed) * 3.0f;
                snprintf(name, sizeof name, "blk.%zu.weight", i);
                FUZZ_CHECK(llama_gguf_writer_add_f32(w, name, types[i], 2, ne, x) == LLAMA_OK);
            }
            {
                size_t be, bb, j;
                uint64_t ne[1];
                unsigned char *blk;
                FUZZ_CHECK(llama_gguf_dtype_size(kquants[f - 1], &be, &bb) == LLAMA_OK);
                blk = (unsigned char *)malloc(bb);
                FUZZ_CHECK(blk != NULL);
                for (j = 0; j < bb; j++) blk[j] = (unsigned char)fuzz_rand(&seed);
                /* the block's f16 scales: small and finite */
                if (kquants[f - 1] == LLAMA_GGUF_Q4_K) blk[1] = blk[3] = 0x2c;
                else blk[bb - 1] = 0x2c;
                ne[0] = be;
                FUZZ_CHECK(llama_gguf_writer_add_raw(w, "output.weight", kquants[f - 1], 1, ne, blk, bb) == LLAMA_OK);
                free(blk);
            }
        }
        FUZZ_CHECK(llama_gguf_writer_write_mem(w, &buf, &bytes) == LLAMA_OK);
        snprintf(name, sizeof name, "gguf%d", f);
        fuzz_seed_file(dir, name, buf, bytes);
        free(buf);
        llama_gguf_writer_free(w);
    }
}

FUZZ_MAIN(fuzz_seeds) {
    llama_gguf *g = NULL, *g2 = NULL;
    llama_gguf_writer *w = NULL;
    void *buf = NULL;
    size_t bytes = 0, i, h = 0;
    if (llama_gguf_open_mem(data, size, &g) != LLAMA_OK) return 0;
    for (i = 0; i < g->n_kv; i++) h += fuzz_gguf__walk(&g->kv[i].v) + g->kv[i].key[g->kv[i].key_len];
    for (i = 0; i < g->n_tensors; i++) {
        const llama_gguf_tensor *t = &g->tensors[i];
        float *y;
        FUZZ_CHECK(t->data >= data && t->n_bytes <= size && (size_t)(t->data - data) <= size - t->n_bytes);
        if (t->n_elements > ((size_t)1 << 24)) continue; /* keep each run short: big tensors are checked above */
        y = (float *)malloc((t->n_elements ? t->n_elements : 1) * sizeof(float));
        FUZZ_CHECK(y && llama_gguf_dequantize(t, y, t->n_elements) == LLAMA_OK);
        free(y);
    }
    /* Write what was read, read it back: the same metadata and tensors. */
    FUZZ_CHECK(llama_gguf_writer_create(&w) == LLAMA_OK);
    for (i = 0; i < g->n_kv; i++) FUZZ_CHECK(llama_gguf_writer_set(w, g->kv[i].key, &g->kv[i].v) == LLAMA_OK);
    for (i = 0; i < g->n_tensors; i++) {
        const llama_gguf_tensor *t = &g->tensors[i];
        FUZZ_CHECK(llama_gguf_writer_add_raw(w, t->name, t->type, t->n_dims, t->ne, t->data, t->n_bytes) ==
                           LLAMA_OK);
    }
    FUZZ_CHECK(llama_gguf_writer_write_mem(w, &buf, &bytes) == LLAMA_OK);
    FUZZ_CHECK(llama_gguf_open_mem(buf, bytes, &g2) == LLAMA_OK);
    FUZZ_CHECK(g2->n_kv == g->n_kv && g2->n_tensors == g->n_tensors && g2->alignment == g->alignment);
    for (i = 0; i < g->n_kv; i++)
        FUZZ_CHECK(strcmp(g->kv[i].key, g2->kv[i].key) == 0 && fuzz_gguf__same(&g->kv[i].v, &g2->kv[i].v));
    for (i = 0; i < g->n_tensors; i++) {
        const llama_gguf_tensor *a = &g->tensors[i], *b = &g2->tensors[i];
        FUZZ_CHECK(strcmp(a->name, b->name) == 0 && a->type == b->type && a->n_dims == b->n_dims &&
                           memcmp(a->ne, b->ne, sizeof a->ne) == 0 && a->n_bytes == b->n_bytes &&
                           (a->n_bytes == 0 || memcmp(a->data, b->data, a->n_bytes) == 0));
    }
    llama_gguf_close(g2);
    free(buf);
    llama_gguf_writer_free(w);
    llama_gguf_close(g);
    fuzz_gguf__sink = h;
    return 0;
}
