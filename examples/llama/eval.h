/* eval.h - the evaluation protocol: windows of a token stream, perplexity,
   KL from FP32 and top-1 agreement. */
#ifndef LLAMA_EVAL_H
#define LLAMA_EVAL_H
#include "model.h"
/* >>evaluate --------------------------------------------------------------- */

/* One model to score: FP32 (q NULL) or W4A8, with a float KV cache
   (kv_bits 0) or an int8/int4 one (per token and head; kv_asym 0
   symmetric, else asymmetric). */
typedef struct llama_entry {
    const llama_model *m;
    const llama_qmodel *q;
    int kv_bits, kv_asym;
} llama_entry;

typedef struct llama_metrics {
    double nll, kl;         /* sums over scored tokens */
    size_t top1, tokens;    /* agreements with entry 0, tokens scored */
} llama_metrics;

#define LLAMA_WINDOW 257

/* log_softmax of x[n] into out, in double. */
LLAMA_API void llama__log_softmax(const float *x, size_t n, double *out) {
    double mx = x[llama__argmax(x, n)], sum = 0.0, lse;
    size_t i;
    for (i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    lse = mx + log(sum);
    for (i = 0; i < n; i++) out[i] = (double)x[i] - lse;
}

/* Reports chunks done of total (evaluation's progress), or NULL. */
typedef void (*llama_progress)(void *user, size_t done, size_t total);

/* Score every entry on n_chunks chunks of `stride` tokens of the stream:
   tokens 0..stride-2 of a chunk are fed with a fresh KV cache and the
   predictions of tokens first+1..stride-1 are scored. KL and top-1 are
   measured against entry 0. Chunks run in parallel, each on one thread;
   per-chunk sums are added in chunk order, so the result is the same for
   every thread count. */
LLAMA_API llama_status llama_evaluate_chunks(const llama_entry *e, size_t n_entries, const int *stream,
                                                size_t n_chunks, size_t stride, size_t first, llama_metrics *out,
                                                llama_progress progress, void *user) {
    const llama_model *m = e[0].m;
    size_t V = (size_t)m->c.vocab_size, T = stride - 1, S = T - first, r, w, done = 0;
    llama_metrics *per;
    llama_status st = LLAMA_OK;
    ptrdiff_t wi;
    if (stride < 2 || first >= stride - 1 || (size_t)m->c.seq_len < T) return LLAMA_ERR_TOKEN;
    if (!(per = (llama_metrics *)calloc(n_chunks * n_entries + 1, sizeof *per))) return LLAMA_ERR_NOMEM;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        llama_state *s = NULL;
        float *ref = llama__floats(T, V), *lg = llama__floats(T, V);
        double *lp0 = (double *)malloc(S * V * sizeof(double)), *lp = (double *)malloc(V * sizeof(double));
        llama_status my = ref && lg && lp0 && lp ? llama_state_create(m, T, T, &s) : LLAMA_ERR_NOMEM;
#ifdef _OPENMP
#pragma omp for schedule(dynamic)
#endif
        for (wi = 0; wi < (ptrdiff_t)n_chunks; wi++) {
            const int *tok = stream + (size_t)wi * stride;
            size_t rr, t;
            for (rr = 0; rr < n_entries && my == LLAMA_OK; rr++) {
                llama_metrics *mt = &per[(size_t)wi * n_entries + rr];
                if ((my = llama_state_set_kv(s, e[rr].m, e[rr].kv_bits, e[rr].m->head_size, e[rr].kv_asym)) != LLAMA_OK ||
                    (my = llama_forward(e[rr].m, e[rr].q, s, tok, T, 0, rr ? lg : ref, NULL, NULL)) != LLAMA_OK)
                    break;
                for (t = first; t < T; t++) {
                    const float *row = (rr ? lg : ref) + t * V;
                    double *l0 = lp0 + (t - first) * V, kl = 0.0;
                    size_t v;
                    if (rr == 0) llama__log_softmax(row, V, l0);
                    llama__log_softmax(row, V, lp);
                    for (v = 0; rr && v < V; v++) kl += exp(l0[v]) * (l0[v] - lp[v]);
                    mt->nll -= lp[tok[t + 1]];
                    mt->kl += kl;
                    mt->top1 += llama__argmax(row, V) == llama__argmax(ref + t * V, V);
                    mt->tokens++;
                }
            }
            if (progress) {
#ifdef _OPENMP
#pragma omp critical
#endif
                progress(user, ++done, n_chunks);
            }
        }
        if (my != LLAMA_OK) {
#ifdef _OPENMP
#pragma omp critical
#endif
            st = my;
        }
        llama_state_free(s);
        free(ref), free(lg), free(lp0), free(lp);
    }
    for (r = 0; r < n_entries && st == LLAMA_OK; r++) {
        memset(&out[r], 0, sizeof out[r]);
        for (w = 0; w < n_chunks; w++) {
            const llama_metrics *mt = &per[w * n_entries + r];
            out[r].nll += mt->nll, out[r].kl += mt->kl, out[r].top1 += mt->top1, out[r].tokens += mt->tokens;
        }
    }
    free(per);
    return st;
}

/* The llama2.c protocol: windows of LLAMA_WINDOW tokens, every prediction scored. */
LLAMA_API llama_status llama_evaluate(const llama_entry *e, size_t n_entries, const int *stream, size_t n_windows,
                                         llama_metrics *out) {
    return llama_evaluate_chunks(e, n_entries, stream, n_windows, LLAMA_WINDOW, 0, out, NULL, NULL);
}

LLAMA_API double llama_ppl(const llama_metrics *mt) {
    return exp(mt->nll / (double)mt->tokens);
}

#endif /* LLAMA_EVAL_H */
