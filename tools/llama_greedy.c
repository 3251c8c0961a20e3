/* Greedy continuation by llama.cpp itself, printed as token ids, for the
 * reference vectors of tests/vectors/smollm2_llamacpp.txt. None of llama.cpp's
 * built tools prints the ids it generates (llama-simple prints text only), so
 * this drives libllama directly: the prompt in one batch, then one token at a
 * time, each the argmax of the raw logits (lowest id on a tie; no sampler, no
 * stop at end-of-generation, so the length is always n). Also prints, per
 * step, the gap between the best and second-best logit: a step with a small
 * gap is one where a float-level difference may flip the choice.
 * Built and run by tools/crosscheck.sh; never part of the library.
 * Usage: llama_greedy MODEL.gguf N THREADS KV_TYPE(f16|f32) PROMPT */
#include "llama.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int argmax2(const float *x, int n, float *gap)
{
    int best = 0, second = -1, i;
    for (i = 1; i < n; i++) {
        if (x[i] > x[best]) { second = best; best = i; }
        else if (second < 0 || x[i] > x[second]) second = i;
    }
    *gap = second < 0 ? 0.0f : x[best] - x[second];
    return best;
}

/* The piece as a C string literal's body, so that the text fits on one line. */
static void print_escaped(const char *s, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
    }
}

int main(int argc, char **argv)
{
    struct llama_model_params mp;
    struct llama_context_params cp;
    struct llama_model *model;
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    llama_token *ids, tok;
    float *gaps, gap;
    int n, n_threads, n_prompt, n_vocab, i;
    const char *prompt;

    if (argc != 6 || (n = atoi(argv[2])) <= 0 || (n_threads = atoi(argv[3])) <= 0 ||
        (strcmp(argv[4], "f16") != 0 && strcmp(argv[4], "f32") != 0)) {
        fprintf(stderr, "usage: %s MODEL.gguf N THREADS f16|f32 PROMPT\n", argv[0]);
        return 2;
    }
    prompt = argv[5];
    llama_backend_init();
    mp = llama_model_default_params();
    model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    vocab = llama_model_get_vocab(model);
    n_vocab = llama_vocab_n_tokens(vocab);

    /* add_special: BOS only where the model's metadata asks for it */
    n_prompt = -llama_tokenize(vocab, prompt, (int)strlen(prompt), NULL, 0, 1, 0);
    ids = (llama_token *)malloc(sizeof *ids * (size_t)(n_prompt + n));
    gaps = (float *)malloc(sizeof *gaps * (size_t)n);
    if (!ids || !gaps || n_prompt <= 0 ||
        llama_tokenize(vocab, prompt, (int)strlen(prompt), ids, n_prompt, 1, 0) != n_prompt) {
        fprintf(stderr, "cannot tokenize the prompt\n");
        return 1;
    }

    cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n_prompt + n);
    cp.n_batch = cp.n_ctx;
    cp.n_threads = cp.n_threads_batch = n_threads;
    if (strcmp(argv[4], "f32") == 0) { /* everything in float: no F16 cache, no flash attention */
        cp.type_k = cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create the context\n"); return 1; }

    if (llama_decode(ctx, llama_batch_get_one(ids, n_prompt)) != 0) {
        fprintf(stderr, "decode failed\n");
        return 1;
    }
    for (i = 0; i < n; i++) {
        tok = argmax2(llama_get_logits_ith(ctx, -1), n_vocab, &gap);
        ids[n_prompt + i] = tok;
        gaps[i] = gap;
        if (i + 1 < n && llama_decode(ctx, llama_batch_get_one(&ids[n_prompt + i], 1)) != 0) {
            fprintf(stderr, "decode failed at step %d\n", i);
            return 1;
        }
    }

    printf("prompt_ids");
    for (i = 0; i < n_prompt; i++) printf(" %d", ids[i]);
    printf("\ngreedy_ids");
    for (i = 0; i < n; i++) printf(" %d", ids[n_prompt + i]);
    printf("\ngreedy_top1_gap");
    for (i = 0; i < n; i++) printf(" %.4f", gaps[i]);
    printf("\ngreedy_text ");
    for (i = 0; i < n; i++) {
        char buf[256];
        int len = llama_token_to_piece(vocab, ids[n_prompt + i], buf, (int)sizeof buf, 0, 1);
        if (len > 0) print_escaped(buf, len);
    }
    printf("\n");
    free(gaps);
    free(ids);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
