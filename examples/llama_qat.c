/* llama_qat.c - LLM-QAT (Liu et al. 2023) of a llama2.c checkpoint: data-free
   quantization-aware training against the model's own FP32 outputs.

       cc -std=c99 -O2 -fopenmp examples/llama_qat.c -lm -o llama_qat
       ./llama_qat --model stories260K.bin --out qat.bin
       ./llama_w4a8 --model stories260K.bin --qat qat.bin ...   (the tables)

   The model writes its own data (examples/llama/train.h, llama_qat_generate);
   the student (the same model, trained) sees int4 weights and int8 per-token
   activations (and optionally an int8/int4 KV cache) through fake
   quantization with straight-through gradients; the loss is KL(teacher ||
   student) at temperature 1 over every position, the teacher being the
   frozen FP32 model; AdamW without weight decay, cosine schedule, no
   warm-up. The trained weights are an ordinary checkpoint: quantize them
   with any w4a8 method (pass it to llama_w4a8 as --model).
   Every --ckpt-every steps the weights go to --out and the optimizer to
   --out.adam; --resume continues from there (the data are regenerated from
   the seed, the same tokens). */
#define _POSIX_C_SOURCE 200809L /* lstat: ../tools/output.h */
#define W4A8_IMPLEMENTATION
#include "llama/llama.h"
#include "llama/train.h"
#include "../tools/args.h"
#include "../tools/output.h"

static const char usage[] =
    "usage: llama_qat --model FILE --out FILE [options]\n"
    "\n"
    "  --model FILE       llama2.c checkpoint (the teacher, and the student's start)\n"
    "  --out FILE         the trained checkpoint (llama2.c format); FILE.adam the optimizer\n"
    "  --seqs N           training sequences (default: the vocabulary size, one per start token)\n"
    "  --len N            tokens per sequence (default 256, at most the model's seq_len)\n"
    "  --data SRC         generated (default): LLM-QAT's self-generated data; or a text FILE\n"
    "                     (stories separated by <|endoftext|>, needs --tokenizer), cut into\n"
    "                     sequences from token --skip on\n"
    "  --tokenizer FILE   for --data FILE\n"
    "  --skip N           tokens of the text not used (default 0): keep evaluation text out\n"
    "  --epochs N         passes over the data (default 1)\n"
    "  --batch N          sequences per step (default 8)\n"
    "  --lr X             peak learning rate (default 3e-4, the best of a search on stories260K)\n"
    "  --group G          weight groups: channel (default) or a size such as 32\n"
    "  --acts on|off      int8 per-token fake quantization of linear inputs (default on)\n"
    "  --kv BITS          0 (default), 8 or 4: fake-quantized KV cache while training (per\n"
    "                     token and head, symmetric; 8a, 4a: asymmetric)\n"
    "  --ste plain|clip2  straight-through gradient (default plain; clip2: also 0 where |x| >= 2)\n"
    "  --seed N           data and shuffling (default 1)\n"
    "  --ckpt-every N     steps between checkpoints (default 50)\n"
    "  --resume           continue from --out and --out.adam\n"
    "  --threads N        OpenMP threads (default: all)\n";

typedef struct options {
    const char *model, *out, *data, *tokenizer;
    size_t seqs, len, skip, epochs, batch, ckpt_every;
    double lr;
    llama_qat_quant qc;
    uint64_t seed;
    int resume, threads;
} options;

static int parse_args(int argc, char **argv, options *o) {
    int i;
    memset(o, 0, sizeof *o);
    o->data = "generated", o->len = 256, o->epochs = 1, o->batch = 8, o->ckpt_every = 50, o->lr = 3e-4, o->seed = 1;
    o->qc.weights = 1, o->qc.group = W4A8_PER_CHANNEL, o->qc.acts = 1, o->qc.ste = W4A8_STE_PLAIN;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t n;
        char *end;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 2;
        if (!strcmp(a, "--resume")) {
            o->resume = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "llama_qat: %s needs a value (see --help)\n", a);
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
        else if (!strcmp(a, "--seqs") && args_size(v, 1, 1 << 24, &o->seqs)) {}
        else if (!strcmp(a, "--len") && args_size(v, 2, 1 << 20, &o->len)) {}
        else if (!strcmp(a, "--skip") && args_size(v, 0, (size_t)-1, &o->skip)) {}
        else if (!strcmp(a, "--epochs") && args_size(v, 1, 1 << 20, &o->epochs)) {}
        else if (!strcmp(a, "--batch") && args_size(v, 1, 1 << 16, &o->batch)) {}
        else if (!strcmp(a, "--ckpt-every") && args_size(v, 1, (size_t)-1, &o->ckpt_every)) {}
        else if (!strcmp(a, "--seed") && args_size(v, 0, (size_t)-1, &n)) o->seed = (uint64_t)n;
        else if (!strcmp(a, "--threads") && args_size(v, 1, 4096, &n)) o->threads = (int)n;
        else if (!strcmp(a, "--kv") && (!strcmp(v, "0") || ((*v == '8' || *v == '4') && (!v[1] || !strcmp(v + 1, "a")))))
            o->qc.kv_bits = *v - '0', o->qc.kv_asym = v[1] == 'a';
        else if (!strcmp(a, "--group") && !strcmp(v, "channel")) o->qc.group = W4A8_PER_CHANNEL;
        else if (!strcmp(a, "--group") && args_size(v, 1, W4A8_MAX_GROUP, &o->qc.group)) {}
        else if (!strcmp(a, "--acts") && (!strcmp(v, "on") || !strcmp(v, "off"))) o->qc.acts = !strcmp(v, "on");
        else if (!strcmp(a, "--ste") && (!strcmp(v, "plain") || !strcmp(v, "clip2")))
            o->qc.ste = !strcmp(v, "plain") ? W4A8_STE_PLAIN : W4A8_STE_CLIP2;
        else if (!strcmp(a, "--lr") && (o->lr = strtod(v, &end), !*end && o->lr > 0.0 && o->lr < 1.0)) {}
        else {
            fprintf(stderr, "llama_qat: bad option or value: %s %s (see --help)\n", a, v);
            return 0;
        }
    }
    if (!o->model || !o->out) {
        fprintf(stderr, "llama_qat: --model and --out are required (see --help)\n");
        return 0;
    }
    if (strcmp(o->data, "generated") != 0 && !o->tokenizer) {
        fprintf(stderr, "llama_qat: --data FILE needs --tokenizer\n");
        return 0;
    }
    return 1;
}

/* n sequences of len tokens from the text, consecutive, from token skip on. */
static llama_status text_data(const options *o, const llama_model *m, size_t n, size_t len, int *out, size_t *got) {
    llama_tokenizer tok;
    char *text = NULL;
    int *stream = NULL;
    size_t bytes, total = 0, i;
    llama_status st = llama_tokenizer_load(o->tokenizer, m->c.vocab_size, &tok);
    if (st != LLAMA_OK) return st;
    st = llama__read_file(o->data, (size_t)1 << 30, &text, &bytes);
    if (st == LLAMA_OK) st = llama_encode_stories(&tok, text, bytes, &stream, &total);
    if (st == LLAMA_OK) {
        size_t avail = total > o->skip ? (total - o->skip) / len : 0;
        *got = avail < n ? avail : n;
        for (i = 0; i < *got; i++) memcpy(out + i * len, stream + o->skip + i * len, len * sizeof(int));
    }
    free(text), free(stream);
    llama_tokenizer_free(&tok);
    return st;
}

static int run(int argc, char **argv) {
    options o;
    llama_model teacher, student;
    llama_fq_model f;
    llama_adam adam;
    llama_train_ws **ws = NULL;
    int *data = NULL, *batch = NULL, failed = 1, nw = 1, i;
    size_t *order = NULL, n_seqs, len, steps_per_epoch, total, step, first_step, tokens = 0, j;
    float *grad = NULL, *seq_grads = NULL;
    char adam_path[1200], gname[32];
    double t0, t_start;
    llama_status st;
    int pa = parse_args(argc, argv, &o);
    if (pa == 2) {
        fputs(usage, stdout);
        return 0;
    }
    if (!pa) return 2;
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads(o.threads);
    omp_set_max_active_levels(1); /* sequences in parallel, each on one thread */
    nw = omp_get_max_threads();
#endif
    memset(&f, 0, sizeof f), memset(&adam, 0, sizeof adam), memset(&student, 0, sizeof student);
    if ((st = llama_load(o.model, &teacher)) != LLAMA_OK) {
        fprintf(stderr, "llama_qat: %s: %s\n", o.model, llama_status_str(st));
        return 1;
    }
    snprintf(adam_path, sizeof adam_path, "%s.adam", o.out);
    len = o.len < (size_t)teacher.c.seq_len ? o.len : (size_t)teacher.c.seq_len;
    n_seqs = o.seqs ? o.seqs : (size_t)teacher.c.vocab_size;
    data = (int *)malloc(n_seqs * len * sizeof(int));
    order = (size_t *)malloc(n_seqs * sizeof(size_t));
    batch = (int *)malloc(o.batch * len * sizeof(int));
    ws = (llama_train_ws **)calloc((size_t)nw, sizeof *ws);
    if (!data || !order || !batch || !ws) {
        fprintf(stderr, "llama_qat: out of memory\n");
        goto done;
    }
    t0 = llama__now();
    if (!strcmp(o.data, "generated")) {
        st = llama_qat_generate(&teacher, n_seqs, len, o.seed, data);
        printf("data: %zu sequences x %zu tokens generated by the model (BOS, start token i mod %d, 2-4 greedy, "
               "then sampled at T=1; seed %llu) in %.1f s\n",
               n_seqs, len, teacher.c.vocab_size, (unsigned long long)o.seed, llama__now() - t0);
    } else {
        size_t got = 0;
        st = text_data(&o, &teacher, n_seqs, len, data, &got);
        if (st == LLAMA_OK && got == 0) {
            fprintf(stderr, "llama_qat: %s: fewer than %zu tokens after --skip %zu\n", o.data, len, o.skip);
            goto done;
        }
        n_seqs = got;
        printf("data: %zu sequences x %zu tokens of %s from token %zu on\n", n_seqs, len, o.data, o.skip);
    }
    if (st != LLAMA_OK) {
        fprintf(stderr, "llama_qat: data: %s\n", llama_status_str(st));
        goto done;
    }
    if ((st = o.resume ? llama_load(o.out, &student) : llama_copy(&teacher, &student)) != LLAMA_OK ||
        (st = llama_adam_create(student.n_floats, &adam)) != LLAMA_OK ||
        (o.resume && (st = llama_adam_load(adam_path, &adam)) != LLAMA_OK)) {
        fprintf(stderr, "llama_qat: %s: %s\n", o.resume ? o.out : "student", llama_status_str(st));
        goto done;
    }
    if (student.n_floats != teacher.n_floats || memcmp(&student.c, &teacher.c, sizeof student.c) != 0) {
        fprintf(stderr, "llama_qat: %s is not the shape of %s\n", o.out, o.model);
        goto done;
    }
    grad = llama__floats(student.n_floats, 1);
    seq_grads = llama__floats(student.n_floats, o.batch);
    for (i = 0; i < nw && grad && seq_grads; i++)
        if ((st = llama_train_ws_create(&student, len, &ws[i])) != LLAMA_OK) break;
    if (!grad || !seq_grads || i < nw) {
        fprintf(stderr, "llama_qat: out of memory\n");
        goto done;
    }
    steps_per_epoch = (n_seqs + o.batch - 1) / o.batch;
    total = steps_per_epoch * o.epochs;
    if (o.qc.group == W4A8_PER_CHANNEL) snprintf(gname, sizeof gname, "per channel");
    else snprintf(gname, sizeof gname, "g%zu", o.qc.group);
    printf("training: %zu steps (%zu epochs x %zu), batch %zu, lr %g cosine, weights int4 %s, acts %s, KV %s%s, "
           "STE %s, %d threads%s\n",
           total, o.epochs, steps_per_epoch, o.batch, o.lr, gname, o.qc.acts ? "int8 per token" : "float",
           o.qc.kv_bits == 8 ? "int8" : o.qc.kv_bits == 4 ? "int4" : "float", o.qc.kv_asym ? " asym" : "",
           o.qc.ste == W4A8_STE_PLAIN ? "plain" : "clip2 (|x| < 2)", nw, o.resume ? ", resumed" : "");
    fflush(stdout);
    t_start = llama__now();
    first_step = adam.step;
    for (step = adam.step; step < total; step++) {
        size_t epoch = step / steps_per_epoch, first = step % steps_per_epoch * o.batch, nb;
        double loss, lr = llama_cosine_lr(o.lr, step, total), el;
        uint64_t rng = o.seed * 0x2545F4914F6CDD1Dull + epoch + 1;
        if (first == 0 || step == adam.step) { /* the epoch's permutation (Fisher-Yates) */
            for (j = 0; j < n_seqs; j++) order[j] = j;
            for (j = n_seqs; j > 1; j--) {
                size_t k = (size_t)(llama__rand(&rng) % j), t = order[j - 1];
                order[j - 1] = order[k], order[k] = t;
            }
        }
        nb = n_seqs - first < o.batch ? n_seqs - first : o.batch;
        for (j = 0; j < nb; j++) memcpy(batch + j * len, data + order[first + j] * len, len * sizeof(int));
        if ((st = llama_fq_update(&student, &o.qc, &f)) != LLAMA_OK ||
            (st = llama_train_grad(&student, &teacher, &o.qc, &f, ws, batch, nb, len, seq_grads, grad, &loss)) !=
                LLAMA_OK) {
            fprintf(stderr, "llama_qat: step %zu: %s\n", step, llama_status_str(st));
            goto done;
        }
        llama_adam_step(&adam, student.data, grad, lr);
        el = llama__now() - t_start;
        tokens += nb * len;
        printf("step %zu/%zu  loss %.5f  lr %.3g  %.0f tok/s  %.0f s elapsed, %.0f s left\n", step + 1, total, loss, lr,
               (double)tokens / el, el, el / (double)(step + 1 - first_step) * (double)(total - step - 1));
        if ((step + 1) % o.ckpt_every == 0 || step + 1 == total) {
            if ((st = llama_save(&student, o.out)) != LLAMA_OK || (st = llama_adam_save(&adam, adam_path)) != LLAMA_OK) {
                fprintf(stderr, "llama_qat: checkpoint %s: %s\n", o.out, llama_status_str(st));
                goto done;
            }
        }
        fflush(stdout);
    }
    printf("trained in %.1f s; weights in %s\n", llama__now() - t_start, o.out);
    failed = 0;
done:
    for (i = 0; ws && i < nw; i++) llama_train_ws_free(ws[i]);
    free(ws), free(data), free(order), free(batch), free(grad), free(seq_grads);
    llama_fq_free(&f);
    llama_adam_free(&adam);
    llama_free(&student), llama_free(&teacher);
    return failed;
}

/* A lost line of standard output (the progress, the summary) is an error too. */
int main(int argc, char **argv) { return output_finish("llama_qat", stdout, stderr, run(argc, argv)); }
