/* bpe_bench - how long the GGUF tokenizer takes: building it from SmolLM2's
   metadata, and tokenizing a text (WikiText-2 test by default), best of N, in CPU
   seconds.

       make build/bpe_bench
       ./build/bpe_bench [model.gguf] [text] [runs] */
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "../examples/llama/llama.h"

/* CPU time of this (single-threaded) process: less disturbed by a loaded
   machine than wall time. */
static double bench_now(void) { return (double)clock() / CLOCKS_PER_SEC; }

int main(int argc, char **argv) {
    char mpath[1200];
    const char *home = getenv("HOME");
    const char *text_path = argc > 2 ? argv[2] : "../shared/data/wikitext2_test_raw.txt";
    int runs = argc > 3 ? atoi(argv[3]) : 5, r;
    llama_gguf *g;
    llama_tokenizer t;
    char *text;
    size_t bytes, n = 0;
    int *ids;
    double t0, build, best = 1e30;
    llama_status st;
    snprintf(mpath, sizeof mpath, "%s", argc > 1 ? argv[1] : "");
    if (argc < 2) snprintf(mpath, sizeof mpath, "%s/.cache/w4a8/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
    if ((st = llama_gguf_open(mpath, &g)) != LLAMA_OK) {
        fprintf(stderr, "bpe_bench: %s: %s\n", mpath, llama_status_str(st));
        return 1;
    }
    if ((st = llama__read_file(text_path, (size_t)1 << 30, &text, &bytes)) != LLAMA_OK) {
        fprintf(stderr, "bpe_bench: %s: %s\n", text_path, llama_status_str(st));
        return 1;
    }
    t0 = bench_now();
    if ((st = llama_tokenizer_from_gguf(g, &t)) != LLAMA_OK) {
        fprintf(stderr, "bpe_bench: tokenizer: %s\n", llama_status_str(st));
        return 1;
    }
    build = bench_now() - t0;
    for (r = 0; r < (runs > 0 ? runs : 1); r++) {
        t0 = bench_now();
        if ((st = llama_tokenize(&t, text, bytes, 1, 1, &ids, &n)) != LLAMA_OK) {
            fprintf(stderr, "bpe_bench: tokenize: %s\n", llama_status_str(st));
            return 1;
        }
        t0 = bench_now() - t0;
        if (t0 < best) best = t0;
        free(ids);
    }
    printf("tokenizer from GGUF metadata (%d tokens): %.3f s\n", t.vocab_size, build);
    printf("tokenize %zu bytes -> %zu ids: best of %d %.3f s (%.1f MB/s)\n", bytes, n, runs, best,
           (double)bytes / best / 1e6);
    llama_tokenizer_free(&t);
    llama_gguf_close(g);
    free(text);
    return 0;
}
