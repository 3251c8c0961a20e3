/* libFuzzer target for the GGUF reader (examples/llama/gguf.h):
       clang -std=c99 -g -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_gguf.c -lm -o build/fuzz_gguf
   Every input is opened from memory; where it parses, every metadata value
   is walked, every tensor dequantized, and the file written back with the
   writer and read again: the second parse must hold the same values and
   tensor bytes (a failure aborts, which libFuzzer reports). */
#include <stdint.h>
#include <stdlib.h>
#include "../../examples/llama/gguf.h"

/* The walk's sum goes here, so that it is not optimized away. */
static volatile size_t fuzz_gguf__sink;

static void fuzz_gguf__require(int ok) {
    if (!ok) abort();
}

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llama_gguf *g = NULL, *g2 = NULL;
    llama_gguf_writer *w = NULL;
    void *buf = NULL;
    size_t bytes = 0, i, h = 0;
    if (llama_gguf_open_mem(data, size, &g) != LLAMA_OK) return 0;
    for (i = 0; i < g->n_kv; i++) h += fuzz_gguf__walk(&g->kv[i].v) + g->kv[i].key[g->kv[i].key_len];
    for (i = 0; i < g->n_tensors; i++) {
        const llama_gguf_tensor *t = &g->tensors[i];
        float *y;
        fuzz_gguf__require(t->data >= data && t->n_bytes <= size && (size_t)(t->data - data) <= size - t->n_bytes);
        if (t->n_elements > ((size_t)1 << 24)) continue; /* keep each run short: big tensors are checked above */
        y = (float *)malloc((t->n_elements ? t->n_elements : 1) * sizeof(float));
        fuzz_gguf__require(y && llama_gguf_dequantize(t, y, t->n_elements) == LLAMA_OK);
        free(y);
    }
    /* Write what was read, read it back: the same metadata and tensors. */
    fuzz_gguf__require(llama_gguf_writer_create(&w) == LLAMA_OK);
    for (i = 0; i < g->n_kv; i++) fuzz_gguf__require(llama_gguf_writer_set(w, g->kv[i].key, &g->kv[i].v) == LLAMA_OK);
    for (i = 0; i < g->n_tensors; i++) {
        const llama_gguf_tensor *t = &g->tensors[i];
        fuzz_gguf__require(llama_gguf_writer_add_raw(w, t->name, t->type, t->n_dims, t->ne, t->data, t->n_bytes) ==
                           LLAMA_OK);
    }
    fuzz_gguf__require(llama_gguf_writer_write_mem(w, &buf, &bytes) == LLAMA_OK);
    fuzz_gguf__require(llama_gguf_open_mem(buf, bytes, &g2) == LLAMA_OK);
    fuzz_gguf__require(g2->n_kv == g->n_kv && g2->n_tensors == g->n_tensors && g2->alignment == g->alignment);
    for (i = 0; i < g->n_kv; i++)
        fuzz_gguf__require(strcmp(g->kv[i].key, g2->kv[i].key) == 0 && fuzz_gguf__same(&g->kv[i].v, &g2->kv[i].v));
    for (i = 0; i < g->n_tensors; i++) {
        const llama_gguf_tensor *a = &g->tensors[i], *b = &g2->tensors[i];
        fuzz_gguf__require(strcmp(a->name, b->name) == 0 && a->type == b->type && a->n_dims == b->n_dims &&
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
