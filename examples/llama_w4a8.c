/* llama_w4a8.c - W4A8 inference of LLaMA-family checkpoints, and the per-method accuracy table

   Loads a llama2.c checkpoint (legacy format) and its tokenizer, or a
   LLaMA-family GGUF model with the tokenizer in its metadata, quantizes
   every linear layer (wq wk wv wo w1 w2 w3, the classifier with a flag) with
   each w4a8 method, and measures each quantized model against FP32 on a text:
   perplexity, mean KL divergence from FP32's next-token distribution, and
   top-1 agreement with FP32.

       cc -std=c99 -O2 -fopenmp examples/llama_w4a8.c -lm -o llama_w4a8
       ./llama_w4a8 --model stories260K.bin --tokenizer tok512.bin \
                     --text tinystories_valid_first1000.txt --windows 50

       ./llama_w4a8 --model SmolLM2-135M-Instruct.Q4_1.gguf --text wikitext2_test_raw.txt --windows 4

   --help lists every option. The exit status is 0 only when everything asked
   for ran and every line of output was written (standard output and
   --table; a --table that exists and is not a regular file is refused).

THE PROTOCOL FOR GGUF MODELS
   llama.cpp's `perplexity` (tools/perplexity/perplexity.cpp): the whole text
   is tokenized once (no BOS), cut into chunks of --ctx tokens (512; the tail
   is dropped); where the metadata's add_bos_token asks for it, the first
   token of each chunk is replaced by BOS. Each chunk runs with a fresh KV
   cache and the predictions of its second half (positions ctx/2 .. ctx-2
   predicting the next token) are scored, so every PPL compares one to one
   with llama.cpp's. Calibration and the outlier variant are as below.

THE PROTOCOL FOR LLAMA2.C CHECKPOINTS
   The text is split into stories on the line "<|endoftext|>"; each story is
   stripped of surrounding whitespace, encoded like llama2.c's encode (dummy
   prefix space, no BOS/EOS) and given a BOS (id 1). The stories form one
   token stream, cut into consecutive windows of 257 tokens (the tail is
   dropped). In each window tokens 0..255 are fed with a fresh KV cache and
   the predictions of tokens 1..256 are scored. PPL = exp(mean NLL). KL is
   mean over scored tokens of sum_v p_fp32(v) log(p_fp32(v) / p_w4a8(v)).
   A window runs as one batch of 256 tokens through every linear with causal
   attention: the same arithmetic, token by token, as feeding the tokens one
   at a time with a KV cache (a test checks the bits), but the W4A8 GEMM runs
   with M = 256.

   Calibration never sees evaluation text. Default: 128 sequences of 256
   tokens sampled (temperature 1, fixed seed) from the FP32 model, each
   starting at BOS. Or a text file (WikiText-2 raw, or any text): paragraphs
   (split on blank lines) get a BOS each, and 128 windows of 256 tokens are
   taken evenly spread over the stream.

   Character-level tokenizers without byte fallback (tok105.bin): a code point
   that is not in the vocabulary becomes <unk> (id 0), one per code point;
   "\n" is such a character, so paragraph breaks are <unk> <unk>, and those
   predictions are scored like any other. (This reproduces the reference
   PPL 2.0883 of babyllama on 50 windows.) Byte fallback (<0xXX> at ids
   3..258) is used only when the vocabulary has those pieces.

EQUALIZATION, FOLDED
   q/k/v share one input and one equalization s, as do w1/w3. A method that
   equalizes divides X by s; this program folds 1/s into the RMSNorm gamma in
   front (rms_att for q/k/v, rms_ffn for w1/w3, rms_final for the classifier),
   and w2's 1/s into the rows of w3, since w2(silu(w1 x) * (w3 x) / s) is
   exact. That is why w2 is quantized before w1/w3. Nothing can absorb wo's
   s (softmax(q k) v sits in front), so wo divides at run time.

THE KV CACHE
   --kv 8,4 adds columns "PPL +KV8" and "PPL +KV4": every row (and FP32)
   scored again with an int8 or int4 KV cache (w4a8_kv_quantize, one scale
   per token and head, symmetric; "8a"/"4a" for asymmetric ones, with a
   zero point). Keys are quantized after RoPE, as an engine stores them;
   the attention reads them back dequantized.

LLM-QAT
   --qat FILE adds rows llm-qat: the weights llama_qat (examples/llama_qat.c)
   trained from this model, quantized like every method (RTN on each --group,
   per-token activations) and scored against this model's FP32, so KL and
   top-1 compare with the other rows; FILE:GROUP gives only the row of the
   group it was trained at. A comma list adds rows per file, named after it.

THE OUTLIER VARIANT
   Large LLMs have a few RMSNorm output channels 100x the rest; these tiny
   models do not. The variant multiplies 3 gamma entries of every rms_att and
   rms_ffn by 50, 100 and 200 and divides the matching input columns of
   wq/wk/wv (or w1/w3) by the same factor. In exact arithmetic it is the same
   function (the program checks its FP32 PPL against the original's), but
   per-tensor activation scales now have outliers to cope with.

   The model code lives in examples/llama/ (llama.h lists it); this file is
   the command line.
*/
#define _POSIX_C_SOURCE 200809L /* lstat: ../tools/output.h */
#define W4A8_IMPLEMENTATION
#include "llama/llama.h"
#include "../tools/args.h"
#include "../tools/output.h"
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define LLAMA_CLI_TTY() isatty(2)
#else
#define LLAMA_CLI_TTY() 0
#endif


/* Two halves: C99 promises string literals of 4095 characters, no more. */
static const char *const usage[2] = {
    "usage: llama_w4a8 --model FILE [--tokenizer FILE] --text FILE [options]\n"
    "\n"
    "Quantizes every linear layer of a llama2.c checkpoint or a LLaMA-family GGUF model\n"
    "with each w4a8 method and prints PPL, KL from FP32 and top-1 agreement with FP32\n"
    "on the text, per method.\n"
    "\n"
    "  --model FILE        llama2.c checkpoint, legacy format (stories260K.bin, ...),\n"
    "                      or a GGUF model (architecture llama; tokenizer from its metadata)\n"
    "  --tokenizer FILE    llama2.c tokenizer.bin matching the model's vocabulary\n"
    "                      (llama2.c checkpoints only)\n"
    "  --text FILE         evaluation text: for llama2.c, stories separated by lines\n"
    "                      <|endoftext|>; for GGUF, any text (WikiText-2 raw, ...)\n"
    "  --windows N         evaluate the first N windows of 257 tokens, or for GGUF the\n"
    "                      first N chunks (default: all)\n"
    "  --ctx N             GGUF: chunk length, llama.cpp's -c (default 512)\n"
    "  --methods LIST      none (the FP32 row alone), or a comma list of rtn,\n"
    "                      smoothquant, awq, gptq, fptq, auto, and\n"
    "                      X+gptq (GPTQ as X's weight step), each optionally with\n"
    "                      :token or :tensor for its activation mode (not fptq)\n"
    "                      (default: rtn,smoothquant,awq,gptq,fptq,auto,awq+gptq,fptq+gptq;\n"
    "                      any of them after rot: (QuaRot's rotation of the model first:\n"
    "                      gammas folded, residual stream times a random Hadamard Q) or\n"
    "                      rot+w2: (also w2's input, by an online Hadamard in its layer),\n"
    "                      with the default, methods this build lacks are skipped)\n"
    "  --group LIST        weight group sizes, comma list, 'channel' for per-channel\n"
    "                      (default 32; GGUF: 32,128,channel)\n"
    "  --act MODE          token, tensor or both: activation modes for methods\n"
    "                      without a suffix (default both); fptq chooses each\n"
    "                      layer's mode itself and gets one row\n"
    "  --fptq-bounds L,H   FPTQ's layer-wise bounds on max|x| (default 15,150):\n"
    "                      below L per-tensor static, then LAE + static, from H per token\n"
    "  --gptq-order O      act (default): GPTQ quantizes columns by decreasing H_jj, groups\n"
    "                      fit from the weights first (act order, static groups);\n"
    "                      natural: column order, groups fit as reached (the paper's loop)\n"
    "  --scales S          gptq (default): GPTQ's group steps searched, the best of 19 for\n"
    "                      the H_jj-weighted rounding error (llama.cpp's importance matrix);\n"
    "                      all: every method's RTN weight step too; minmax: from each\n"
    "                      group's range alone (the papers')\n"
    "  --calib SRC         generated (default): sequences sampled from the FP32 model\n"
    "                      from BOS; or a text FILE (e.g. wikitext2_test_raw.txt)\n"
    "  --calib-seqs N      calibration sequences of 256 tokens (default 128; GGUF 16)\n"
    "  --seed N            seed of the generated calibration (default 1)\n"
    "  --rot-seed N        seed of Q's random signs for rot: rows (default 1)\n"
    "  --variants LIST     original, outliers or both (default original,outliers;\n"
    "                      GGUF: original, its outliers are real)\n"
    "  --quantize-classifier  make the classifier a w4a8 layer too\n"
    "  --sample N          tokens of greedy text from FP32 and from the W4A8 model with\n"
    "                      the lowest KL (default 48; 0: none)\n"
    ,
    "  --kv LIST           KV-cache columns: comma list of 8, 4 (int8 / int4 keys after\n"
    "                      RoPE and values, per token and head, symmetric), 8a, 4a\n"
    "                      (asymmetric) (default: none)\n"
    "  --qat LIST          checkpoints trained by llama_qat from this llama2.c model: rows\n"
    "                      llm-qat (RTN on each --group, per token; original variant only);\n"
    "                      FILE:GROUP (32, channel, ...) for its training group's row only\n"
    "  --table OUT.md      also write the tables as Markdown\n"
    "  --dump-logits FILE  write the FP32 model's logits at the scored positions of\n"
    "                      every chunk, float32 [positions][vocab] in chunk order\n"
    "                      (for tools/crosscheck_compare.py against llama.cpp's)\n"
    "  --threads N         OpenMP threads (default: all)\n"
    "  --export OUT.gguf   GGUF models: quantize with the method of --methods (group 32,\n"
    "                      per token by default) and write a GGUF llama.cpp runs (every\n"
    "                      linear Q4_0, scales rounded to fp16; AWQ symmetric; wo without\n"
    "                      equalization); no evaluation, --text not needed. Several\n"
    "                      methods: OUT has one %s, which becomes each method's name\n"
    "  --export-q4_1       with --export: layers with zero points become Q4_1 (else refused)\n"
    "  --export-rechoose   with --export: codes re-chosen for the fp16 scales (RTN's rule)\n"
    "  --help              this text\n" };

static const char *const method_names[W4A8_METHOD_COUNT] = { "rtn", "smoothquant", "awq", "gptq", "fptq", "auto" };

/* A row to make: a spec, and the rotation the model gets first (llama_rotate):
   0 none, 1 the residual stream ("rot:"), 2 also w2's input online ("rot+w2:"). */
typedef struct job {
    llama_spec spec;
    int rot;
} job;

static const char *const rot_prefix[3] = { "", "rot:", "rot+w2:" };

typedef struct options {
    const char *model, *tokenizer, *text, *calib, *table, *methods, *groups, *variants, *kv, *qat, *dump_logits;
    const char *export_path;
    int kv_bits[8], kv_asym[8], n_kv; /* the KV columns, from --kv */
    int export_q4_1, export_rechoose, act_given;
    size_t windows, calib_seqs, sample, ctx;
    size_t stride, first; /* the protocol: chunks of stride tokens, predictions from first scored */
    float fptq_low, fptq_high;
    int gptq_act_order;
    int scales; /* 0 minmax, 1 gptq, 2 all */
    uint64_t seed, rot_seed;
    int act_token, act_tensor, quantize_cls, threads, methods_given, groups_given, variants_given, calib_given;
    int gguf;
} options;

/* A group size, or "channel": W4A8_MAX_GROUP (one group per row). */
static int parse_group(const char *s, size_t *out) {
    if (s && !strcmp(s, "channel")) {
        *out = W4A8_MAX_GROUP;
        return 1;
    }
    return args_size(s, 1, W4A8_MAX_GROUP, out);
}

/* "LOW,HIGH" with 0 <= LOW <= HIGH, both finite. */
static int parse_bounds(const char *s, float *low, float *high) {
    char *end;
    double a, b;
    if (!s) return 0;
    a = strtod(s, &end);
    if (*end != ',') return 0;
    b = strtod(end + 1, &end);
    if (*end || !(a >= 0 && a <= b && b <= 3e38)) return 0;
    *low = (float)a, *high = (float)b;
    return 1;
}

/* Options that take a value. */
static const char *const value_options[] = { "--model",   "--tokenizer", "--text",    "--calib",       "--table",
                                             "--methods", "--group",     "--variants", "--windows",    "--calib-seqs",
                                             "--sample",  "--seed",      "--threads", "--fptq-bounds", "--act",
                                             "--kv",      "--qat",       "--ctx",     "--rot-seed", "--dump-logits",
                                             "--export",  "--gptq-order", "--scales" };

static int takes_value(const char *a) {
    size_t i;
    for (i = 0; i < sizeof value_options / sizeof value_options[0]; i++)
        if (!strcmp(a, value_options[i])) return 1;
    return 0;
}

static int parse_args(int argc, char **argv, options *o) {
    int i;
    const char *why;
    memset(o, 0, sizeof *o);
    o->calib = "generated";
    o->methods = "rtn,smoothquant,awq,gptq,fptq,auto,awq+gptq,fptq+gptq";
    o->groups = "32";
    o->variants = "original,outliers";
    o->calib_seqs = 128, o->sample = 48, o->seed = 1, o->ctx = 512, o->rot_seed = 1;
    o->fptq_low = 15.0f, o->fptq_high = 150.0f;
    o->gptq_act_order = 1;
    o->scales = 1;
    o->act_token = o->act_tensor = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 2;
        if (!strcmp(a, "--quantize-classifier")) {
            o->quantize_cls = 1;
            continue;
        }
        if (!strcmp(a, "--export-q4_1") || !strcmp(a, "--export-rechoose")) {
            *(a[8] == 'q' ? &o->export_q4_1 : &o->export_rechoose) = 1;
            continue;
        }
        if (!takes_value(a)) {
            fprintf(stderr, "llama_w4a8: unknown option '%s' (see --help)\n", a);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "llama_w4a8: %s needs a value (see --help)\n", a);
            return 0;
        }
        i++;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
        else if (!strcmp(a, "--text")) o->text = v;
        else if (!strcmp(a, "--calib")) o->calib = v;
        else if (!strcmp(a, "--table")) o->table = v;
        else if (!strcmp(a, "--dump-logits")) o->dump_logits = v;
        else if (!strcmp(a, "--export")) o->export_path = v;
        else if (!strcmp(a, "--methods")) o->methods = v, o->methods_given = 1;
        else if (!strcmp(a, "--group")) o->groups = v, o->groups_given = 1;
        else if (!strcmp(a, "--variants")) o->variants = v, o->variants_given = 1;
        else if (!strcmp(a, "--kv")) o->kv = v;
        else if (!strcmp(a, "--qat")) o->qat = v;
        else if (!strcmp(a, "--windows") && args_size(v, 1, (size_t)-1, &o->windows)) {}
        else if (!strcmp(a, "--ctx") && args_size(v, 4, 1 << 20, &o->ctx)) {}
        else if (!strcmp(a, "--calib-seqs") && args_size(v, 1, 1 << 20, &o->calib_seqs)) o->calib_given = 1;
        else if (!strcmp(a, "--sample") && args_size(v, 0, 1 << 20, &o->sample)) {}
        else if (!strcmp(a, "--seed") && args_size(v, 0, (size_t)-1, &n)) o->seed = (uint64_t)n;
        else if (!strcmp(a, "--rot-seed") && args_size(v, 1, (size_t)-1, &n)) o->rot_seed = (uint64_t)n;
        else if (!strcmp(a, "--threads") && args_size(v, 1, 4096, &n)) o->threads = (int)n;
        else if (!strcmp(a, "--fptq-bounds") && parse_bounds(v, &o->fptq_low, &o->fptq_high)) {}
        else if (!strcmp(a, "--gptq-order") && (!strcmp(v, "act") || !strcmp(v, "natural")))
            o->gptq_act_order = !strcmp(v, "act");
        else if (!strcmp(a, "--scales") && (!strcmp(v, "minmax") || !strcmp(v, "gptq") || !strcmp(v, "all")))
            o->scales = !strcmp(v, "minmax") ? 0 : !strcmp(v, "gptq") ? 1 : 2;
        else if (!strcmp(a, "--act") && (!strcmp(v, "token") || !strcmp(v, "tensor") || !strcmp(v, "both"))) {
            o->act_token = strcmp(v, "tensor") != 0;
            o->act_tensor = strcmp(v, "token") != 0;
            o->act_given = 1;
        } else {
            fprintf(stderr, "llama_w4a8: bad option or value: %s %s (see --help)\n", a, v);
            return 0;
        }
    }
    if (!o->model || (!o->text && !o->export_path)) {
        fprintf(stderr, "llama_w4a8: --model and --text are required (see --help)\n");
        return 0;
    }
    if (o->export_path && !o->act_given) o->act_tensor = 0; /* llama.cpp quantizes activations its own way */
    if (o->table && (why = output_target(o->table)) != NULL) {
        fprintf(stderr, "llama_w4a8: --table %s: will not write it: %s\n", o->table, why);
        return 0;
    }
    if (o->dump_logits && (why = output_target(o->dump_logits)) != NULL) {
        fprintf(stderr, "llama_w4a8: --dump-logits %s: will not write it: %s\n", o->dump_logits, why);
        return 0;
    }
    return 1;
}

/* Next comma-separated item of *list into buf: 1; 0 after the last one
   (*list becomes NULL); -1 for an empty item or one that does not fit. */
static int next_item(const char **list, char *buf, size_t cap) {
    const char *s = *list, *e;
    size_t n;
    if (!s) return 0;
    e = strchr(s, ',');
    n = e ? (size_t)(e - s) : strlen(s);
    *list = e ? e + 1 : NULL;
    if (n == 0 || n >= cap) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 1;
}

/* The message for a list next_item gave up on. */
static int bad_list(const char *option, const char *list, size_t cap) {
    fprintf(stderr, "llama_w4a8: %s '%s': an empty item, or one longer than %zu characters\n", option, list, cap - 1);
    return 2;
}

/* "awq+gptq:tensor" -> spec(s); returns how many (1 or 2), 0 if bad. */
static int parse_method(const char *item, const options *o, size_t group, llama_spec out[2]) {
    char name[64];
    const char *colon = strchr(item, ':'), *plus;
    size_t n = colon ? (size_t)(colon - item) : strlen(item), len;
    int m, count = 0;
    llama_spec s;
    if (n >= sizeof name) return 0;
    memcpy(name, item, n);
    name[n] = '\0';
    memset(&s, 0, sizeof s);
    s.group = group;
    s.fptq_low = o->fptq_low, s.fptq_high = o->fptq_high;
    s.gptq_act_order = o->gptq_act_order;
    plus = strchr(name, '+');
    if (plus) {
        if (strcmp(plus, "+gptq") != 0) return 0;
        s.gptq_weights = 1;
    }
    len = plus ? (size_t)(plus - name) : strlen(name);
    for (m = 0; m < W4A8_METHOD_COUNT; m++)
        if (strlen(method_names[m]) == len && !strncmp(name, method_names[m], len)) break;
    if (m == W4A8_METHOD_COUNT || (s.gptq_weights && m == W4A8_METHOD_GPTQ)) return 0;
    s.method = (w4a8_method)m;
    s.scale_search = o->scales == 2 || (o->scales == 1 && (s.gptq_weights || m == W4A8_METHOD_GPTQ || m == W4A8_METHOD_AUTO));
    if (colon && strcmp(colon, ":token") && strcmp(colon, ":tensor")) return 0;
    /* FPTQ picks each layer's activation mode itself: one row, not two equal
       ones, and no suffix. */
    if (s.method == W4A8_METHOD_FPTQ) {
        if (colon) return 0;
        s.act_mode = W4A8_ACT_PER_TOKEN;
        out[0] = s;
        return 1;
    }
    if (colon ? !strcmp(colon, ":token") : o->act_token) {
        s.act_mode = W4A8_ACT_PER_TOKEN;
        out[count++] = s;
    }
    if (colon ? !strcmp(colon, ":tensor") : o->act_tensor) {
        s.act_mode = W4A8_ACT_PER_TENSOR;
        out[count++] = s;
    }
    return count;
}

/* "rot+w2:awq+gptq:tensor" -> jobs; how many (1 or 2), 0 if bad. */
static int parse_job(const char *item, const options *o, size_t group, job out[2]) {
    llama_spec s[2];
    int rot = !strncmp(item, rot_prefix[2], strlen(rot_prefix[2])) ? 2 : !strncmp(item, rot_prefix[1], 4) ? 1 : 0;
    int k = parse_method(item + strlen(rot_prefix[rot]), o, group, s), i;
    for (i = 0; i < k; i++) out[i].spec = s[i], out[i].rot = rot;
    return k;
}

/* "+gptq" when GPTQ did the weight step of another method. */
static const char *gptq_suffix(w4a8_method m, int gptq_weights) {
    return gptq_weights && m != W4A8_METHOD_GPTQ ? "+gptq" : "";
}

/* "32", or "channel" for one group per row. */
static const char *group_name(size_t group, char *buf, size_t cap) {
    if (group >= W4A8_MAX_GROUP) return "channel";
    snprintf(buf, cap, "%zu", group);
    return buf;
}

static void spec_name(const llama_spec *s, int rot, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s%s", rot_prefix[rot], method_names[s->method], gptq_suffix(s->method, s->gptq_weights));
}

static const char *spec_act(const llama_spec *s) {
    if (s->method == W4A8_METHOD_FPTQ) return "layer-wise";
    return s->act_mode == W4A8_ACT_PER_TOKEN ? "token" : "tensor";
}

/* "token", "tensor", or "mixed (k/L tensor)" over the layers of one class. */
static void act_summary(const llama_qmodel *q, int cls, char *buf, size_t cap) {
    int l, tensor = 0;
    for (l = 0; l < q->n_layers; l++) tensor += q->rep[l * LLAMA_INPUTS_PER_LAYER + cls].act_mode == W4A8_ACT_PER_TENSOR;
    if (tensor == 0) snprintf(buf, cap, "token");
    else if (tensor == q->n_layers) snprintf(buf, cap, "tensor");
    else snprintf(buf, cap, "mixed %d/%d tensor", tensor, q->n_layers);
}

/* Each row is printed and, when md is open, written to it. */
static void emit(FILE *md, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (md) {
        va_start(ap, fmt);
        vfprintf(md, fmt, ap);
        va_end(ap);
    }
}

/* Greedy text from BOS, n tokens at most, stopping at BOS (and EOS of a
   GGUF vocabulary). */
static llama_status print_greedy(FILE *md, const char *label, const llama_model *m, const llama_qmodel *q,
                                  const llama_tokenizer *tok, size_t n) {
    llama_state *s = NULL;
    float *logits = llama__floats((size_t)m->c.vocab_size, 1);
    size_t len = n + 1 < (size_t)m->c.seq_len ? n + 1 : (size_t)m->c.seq_len, p;
    int llama2c = tok->kind == LLAMA_VOCAB_LLAMA2C, bos = llama2c || tok->bos < 0 ? LLAMA_BOS : tok->bos;
    int cur = bos, next;
    llama_status st = logits ? llama_state_create(m, 1, len, &s) : LLAMA_ERR_NOMEM;
    emit(md, "\n%s: \"", label);
    for (p = 0; p + 1 < len && st == LLAMA_OK; p++) {
        char buf[2];
        const char *piece, *c;
        size_t plen;
        if ((st = llama_forward(m, q, s, &cur, 1, p, logits, NULL, NULL)) != LLAMA_OK) break;
        next = llama__argmax(logits, (size_t)m->c.vocab_size);
        if (next == bos || (!llama2c && next == tok->eos)) break;
        if (llama2c) piece = llama_decode(tok, cur, next, buf), plen = strlen(piece);
        else if ((st = llama_token_piece(tok, next, 0, &piece, &plen)) != LLAMA_OK) break;
        for (c = piece; c < piece + plen; c++) /* newlines shown as spaces: one line per sample */
            emit(md, "%c", *c == '\n' || *c == '\r' ? ' ' : ((unsigned char)*c < 32 ? '?' : *c));
        cur = next;
    }
    emit(md, "\"\n");
    llama_state_free(s);
    free(logits);
    return st;
}

/* Evaluation progress on a terminal; nothing when stderr is not one. */
static void progress_line(void *user, size_t done, size_t total) {
    if (!LLAMA_CLI_TTY()) return;
    fprintf(stderr, "\r[%s] evaluated %zu/%zu chunks%s", (const char *)user, done, total, done == total ? "\n" : "");
    fflush(stderr);
}

typedef struct row {
    llama_spec spec;
    int rot;
    const llama_model *m; /* the weights it was quantized from */
    const char *qat;      /* llm-qat rows: the name of the trained checkpoint, else NULL */
    llama_qmodel *q;
    w4a8_status st;
} row;

/* Models trained by llama_qat from the original (--qat): one row per file and group. */
typedef struct qat_set {
    const llama_model *m;
    const char *const *names;
    const size_t *trained; /* the group each was trained at (its only row), or 0: every group */
    size_t n;
    const size_t *groups;
    size_t n_groups;
} qat_set;

static void row_name(const row *r, char *buf, size_t cap) {
    if (r->qat) snprintf(buf, cap, "llm-qat%s%s", *r->qat ? ":" : "", r->qat);
    else spec_name(&r->spec, r->rot, buf, cap);
}

/* Quantize r's weights with r's spec: 1 done, 0 failed (said why), -1 not
   supported by this build (the caller may skip it). */
static int quantize_row(const options *o, const char *tag, const llama_calibs *cs, row *r) {
    char name[48], gb[24];
    const char *act = spec_act(&r->spec);
    llama_status st = llama_quantize(r->m, cs, &r->spec, o->quantize_cls, NULL, &r->q, &r->st);
    row_name(r, name, sizeof name);
    if (st == LLAMA_ERR_W4A8 && r->st == W4A8_ERR_UNSUPPORTED && !o->methods_given) return -1;
    if (st != LLAMA_OK) {
        fprintf(stderr, "llama_w4a8: [%s] %s g%s %s: %s%s%s\n", tag, name, group_name(r->spec.group, gb, sizeof gb), act,
                llama_status_str(st), r->st ? ": " : "", r->st ? w4a8_status_str(r->st) : "");
        return 0;
    }
    printf("[%s] quantized %s g%s %s in %.2f s\n", tag, name, group_name(r->spec.group, gb, sizeof gb), act,
           r->q->seconds);
    fflush(stdout);
    return 1;
}

/* The llm-qat rows: each trained model calibrated on the same tokens, RTN
   with per-token activations on each group. */
static int add_qat_rows(const options *o, const char *tag, const qat_set *qs, const int *calib, size_t n_calib,
                        row *rows, size_t *n_rows) {
    size_t f, g;
    int failed = 0;
    for (f = 0; f < qs->n; f++) {
        llama_calibs cs;
        w4a8_status wst;
        llama_status st = llama_calibrate(&qs->m[f], calib, n_calib, LLAMA_WINDOW - 1, &cs, &wst);
        if (st != LLAMA_OK) {
            fprintf(stderr, "llama_w4a8: [%s] calibration of %s: %s\n", tag, qs->names[f], llama_status_str(st));
            failed = 1;
            continue;
        }
        for (g = 0; g < (qs->trained[f] ? 1 : qs->n_groups); g++) {
            row *r = &rows[*n_rows];
            memset(r, 0, sizeof *r);
            r->spec.method = W4A8_METHOD_RTN, r->spec.act_mode = W4A8_ACT_PER_TOKEN;
            r->spec.group = qs->trained[f] ? qs->trained[f] : qs->groups[g];
            r->m = &qs->m[f], r->qat = qs->n > 1 ? qs->names[f] : "";
            if (quantize_row(o, tag, &cs, r) == 1) (*n_rows)++;
            else failed = 1;
        }
        llama_calibs_free(&cs);
    }
    return failed;
}

/* " 3.7612 (+0.10%) |": a KV column's cell. */
static void emit_kv_cell(FILE *md, const llama_metrics *x, double fp32_ppl) {
    double p = llama_ppl(x);
    emit(md, " %.4f (%+.2f%%) |", p, 100.0 * (p / fp32_ppl - 1.0));
}

/* Calibrate, quantize with every spec (and the llm-qat rows of qs, or NULL),
   evaluate, print one table. */
static int run_variant(const options *o, const char *tag, const char *title, const llama_model *orig,
                       const llama_model *m, const llama_tokenizer *tok, const int *stream, size_t n_windows,
                       const int *calib, size_t n_calib, const char *calib_desc, const job *specs,
                       size_t n_specs, const qat_set *qs, FILE *md) {
    llama_calibs cs;
    size_t cap_rows = n_specs + (qs ? qs->n * qs->n_groups : 0) + 1, cap_e = (cap_rows + 4) * (1 + (size_t)o->n_kv);
    llama_entry *e = (llama_entry *)calloc(cap_e, sizeof *e);
    llama_metrics *mt = (llama_metrics *)calloc(cap_e, sizeof *mt);
    row *rows = (row *)calloc(cap_rows, sizeof *rows);
    llama_model rotated[3];
    const llama_model *mod[3] = { m, NULL, NULL };
    size_t i, n_rows = 0, n_e = 0, best = 0, n_skipped = 0, rot_entry[3] = { 0, 0, 0 }, n_base, kv;
    int failed = 0, has_orig = orig != m, k;
    double t0 = llama__now(), fp32_ppl;
    char skipped[512] = "";
    w4a8_status wst;
    llama_status st;
    if (!e || !mt || !rows) {
        free(e), free(mt), free(rows);
        fprintf(stderr, "llama_w4a8: out of memory\n");
        return 1;
    }
    /* One calibration per model: as given, and each rotation some row asks for. */
    for (k = 0; k < 3; k++) {
        int used = 0;
        for (i = 0; i < n_specs; i++) used |= specs[i].rot == k;
        if (!used) continue;
        if (k && (st = llama_rotate(m, o->rot_seed, k == 2, &rotated[k])) != LLAMA_OK) {
            fprintf(stderr, "llama_w4a8: [%s] %s rotation: %s\n", tag, rot_prefix[k], llama_status_str(st));
            failed = 1;
            continue;
        }
        if (k) mod[k] = &rotated[k];
        printf("\n[%s] calibrating%s%s on %s ...\n", tag, k ? " the model after " : "", rot_prefix[k], calib_desc);
        fflush(stdout);
        t0 = llama__now();
        if ((st = llama_calibrate(mod[k], calib, n_calib, LLAMA_WINDOW - 1, &cs, &wst)) != LLAMA_OK) {
            fprintf(stderr, "llama_w4a8: calibration: %s%s%s\n", llama_status_str(st), wst ? ": " : "",
                    wst ? w4a8_status_str(wst) : "");
            failed = 1;
            continue;
        }
        printf("[%s] calibrated in %.1f s\n", tag, llama__now() - t0);
        for (i = 0; i < n_specs; i++) {
            row *r = &rows[n_rows];
            int made;
            if (specs[i].rot != k) continue;
            memset(r, 0, sizeof *r);
            r->spec = specs[i].spec, r->rot = k, r->m = mod[k];
            if ((made = quantize_row(o, tag, &cs, r)) < 0) {
                char name[48];
                size_t len = strlen(skipped);
                row_name(r, name, sizeof name);
                if (len + strlen(name) + 32 < sizeof skipped && !strstr(skipped, name))
                    snprintf(skipped + len, sizeof skipped - len, "%s%s", n_skipped ? ", " : "", name);
                n_skipped++;
            }
            if (made > 0) n_rows++;
            if (!made) failed = 1;
        }
        llama_calibs_free(&cs);
    }
    if (n_skipped) printf("[%s] skipped, not supported by this build of w4a8.h: %s\n", tag, skipped);
    if (qs) failed |= add_qat_rows(o, tag, qs, calib, n_calib, rows, &n_rows);
    e[n_e].m = m, n_e++;
    if (has_orig) e[n_e].m = orig, n_e++;
    for (k = 1; k < 3; k++)
        if (mod[k]) rot_entry[k] = n_e, e[n_e].m = mod[k], n_e++;
    for (i = 0; i < n_rows; i++) e[n_e].m = rows[i].m, e[n_e].q = rows[i].q, n_e++;
    n_base = n_e; /* then, per KV format, FP32 and every row again */
    for (kv = 0; kv < (size_t)o->n_kv; kv++) {
        e[n_e].m = m, e[n_e].kv_bits = o->kv_bits[kv], e[n_e].kv_asym = o->kv_asym[kv], n_e++;
        for (i = 0; i < n_rows; i++)
            e[n_e] = e[n_base - n_rows + i], e[n_e].kv_bits = o->kv_bits[kv], e[n_e].kv_asym = o->kv_asym[kv], n_e++;
    }
    printf("[%s] evaluating %zu models on %zu windows ...\n", tag, n_e, n_windows);
    fflush(stdout);
    t0 = llama__now();
    if ((st = llama_evaluate_chunks(e, n_e, stream, n_windows, o->stride, o->first, mt, progress_line, (void *)tag)) !=
        LLAMA_OK) {
        fprintf(stderr, "llama_w4a8: evaluation: %s\n", llama_status_str(st));
        failed = 1;
    } else {
        size_t first = (has_orig ? 2 : 1) + (mod[1] != NULL) + (mod[2] != NULL);
        printf("[%s] evaluated in %.1f s\n\n", tag, llama__now() - t0);
        fp32_ppl = llama_ppl(&mt[0]);
        emit(md, "### %s\n\n", title);
        if (o->gguf)
            emit(md, "%zu chunks of %zu tokens, the second half of each scored as llama.cpp's perplexity does; the "
                     "FP32 model is the GGUF's weights dequantized (they were quantized already, so re-quantizing "
                     "them at group 32 is nearly lossless by construction: see groups 128 and channel).\n",
                 n_windows, o->stride);
        emit(md, "%zu %s, %zu scored tokens; calibration: %s; classifier %s; activation modes per layer "
                 "class as the method chose (FPTQ bounds %g/%g); GPTQ in %s order; group steps %s.\n\n",
             n_windows, o->gguf ? "chunks" : "windows", mt[0].tokens, calib_desc,
             o->quantize_cls ? "W4A8 too" : "FP32", o->fptq_low, o->fptq_high,
             o->gptq_act_order ? "act (static groups)" : "natural",
             o->scales == 0 ? "from min and max" : o->scales == 1 ? "searched for the H_jj-weighted error in GPTQ and AUTO"
                                                                 : "searched for the H_jj-weighted error in every method");
        if (has_orig) {
            double rel = fabs(fp32_ppl - llama_ppl(&mt[1])) / llama_ppl(&mt[1]);
            emit(md, "FP32 check: variant PPL %.6f, original %.6f, relative difference %.1e (%s), KL %.1e.\n\n",
                 fp32_ppl, llama_ppl(&mt[1]), rel, rel <= 1e-4 ? "same function" : "MISMATCH",
                 mt[1].kl / (double)mt[1].tokens);
            if (rel > 1e-4) failed = 1;
        }
        for (k = 1; k < 3; k++) {
            double rel = mod[k] ? fabs(llama_ppl(&mt[rot_entry[k]]) / fp32_ppl - 1.0) : 0.0;
            if (!mod[k]) continue;
            emit(md, "FP32 check: after %s (seed %llu) PPL %.6f, relative difference %.1e (%s), KL %.1e.\n\n",
                 rot_prefix[k], (unsigned long long)o->rot_seed, llama_ppl(&mt[rot_entry[k]]), rel,
                 rel <= 1e-4 ? "same function" : "MISMATCH", mt[rot_entry[k]].kl / (double)mt[rot_entry[k]].tokens);
            if (rel > 1e-4) failed = 1;
        }
        for (i = 0; qs && i < qs->n; i++)
            emit(md, "llm-qat%s%s: the weights of %s (trained by llama_qat from this model), RTN, per-token "
                     "activations.\n\n", qs->n > 1 ? ":" : "", qs->n > 1 ? qs->names[i] : "", qs->names[i]);
        emit(md, "| method | group | act qkv | act wo | act w13 | act w2 | PPL | ΔPPL | KL | top-1 %% | quant s |");
        for (kv = 0; kv < (size_t)o->n_kv; kv++) emit(md, " PPL +KV%d%s |", o->kv_bits[kv], o->kv_asym[kv] ? " asym" : "");
        emit(md, "\n| --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
        for (kv = 0; kv < (size_t)o->n_kv; kv++) emit(md, " ---: |");
        emit(md, "\n| fp32 | - | - | - | - | - | %.4f | - | - | - | - |", fp32_ppl);
        for (kv = 0; kv < (size_t)o->n_kv; kv++) emit_kv_cell(md, &mt[n_base + kv * (1 + n_rows)], fp32_ppl);
        emit(md, "\n");
        for (i = 0; i < n_rows; i++) {
            const llama_metrics *x = &mt[first + i];
            char name[48], act[4][48], gb[24];
            int c;
            double ppl = llama_ppl(x);
            row_name(&rows[i], name, sizeof name);
            for (c = 0; c < 4; c++) act_summary(rows[i].q, c, act[c], sizeof act[c]);
            emit(md, "| %s | %s | %s | %s | %s | %s | %.4f | %+.4f (%+.1f%%) | %.5f | %.2f | %.2f |", name,
                 group_name(rows[i].spec.group, gb, sizeof gb), act[0], act[1], act[2], act[3], ppl, ppl - fp32_ppl,
                 100.0 * (ppl / fp32_ppl - 1.0), x->kl / (double)x->tokens, 100.0 * (double)x->top1 / (double)x->tokens,
                 rows[i].q->seconds);
            for (kv = 0; kv < (size_t)o->n_kv; kv++) emit_kv_cell(md, &mt[n_base + kv * (1 + n_rows) + 1 + i], fp32_ppl);
            emit(md, "\n");
            if (x->kl < mt[first + best].kl) best = i;
        }
        for (i = 0; i < n_rows; i++) {
            const llama_qmodel *q = rows[i].q;
            int l, c;
            char gb[24];
            if (rows[i].spec.method != W4A8_METHOD_AUTO) continue;
            emit(md, "\n%sauto (g%s, %s) chose, per layer qkv/wo/w13/w2:", rot_prefix[rows[i].rot],
                 group_name(rows[i].spec.group, gb, sizeof gb), spec_act(&rows[i].spec));
            for (l = 0; l < q->n_layers; l++)
                for (c = 0; c < 4; c++) {
                    const w4a8_report *rp = &q->rep[l * LLAMA_INPUTS_PER_LAYER + c];
                    emit(md, "%s%s%s", c ? "/" : (l ? "; " : " "), method_names[rp->method],
                         gptq_suffix(rp->method, rp->gptq_weights));
                }
            emit(md, "\n");
        }
        if (o->sample) {
            char label[128];
            if (print_greedy(md, "greedy FP32", m, NULL, tok, o->sample) != LLAMA_OK) failed = 1;
            if (n_rows) {
                char name[48], gb[24];
                row_name(&rows[best], name, sizeof name);
                snprintf(label, sizeof label, "greedy W4A8 %s g%s %s (lowest KL)", name,
                         group_name(rows[best].spec.group, gb, sizeof gb),
                         spec_act(&rows[best].spec));
                if (print_greedy(md, label, rows[best].m, rows[best].q, tok, o->sample) != LLAMA_OK) failed = 1;
            }
        }
        emit(md, "\n");
    }
    for (i = 0; i < n_rows; i++) llama_qmodel_free(rows[i].q);
    for (k = 1; k < 3; k++)
        if (mod[k]) llama_free(&rotated[k]);
    free(e), free(mt), free(rows);
    return failed;
}

/* The model, and its tokenizer: from the GGUF's metadata, or the llama2.c file. */
/* *culprit: the file a failure is about. */
static llama_status load_model(const options *o, llama_model *m, llama_tokenizer *tok, const char **culprit) {
    llama_gguf *g;
    llama_status st;
    *culprit = o->model;
    if (!o->gguf) {
        if ((st = llama_load(o->model, m)) != LLAMA_OK) return st;
        *culprit = o->tokenizer;
        if ((st = llama_tokenizer_load(o->tokenizer, m->c.vocab_size, tok)) != LLAMA_OK) llama_free(m);
    } else {
        if ((st = llama_gguf_open(o->model, &g)) != LLAMA_OK) return st;
        if ((st = llama_load_gguf(g, m)) == LLAMA_OK && (st = llama_tokenizer_from_gguf(g, tok)) != LLAMA_OK)
            llama_free(m);
        else if (st == LLAMA_OK && tok->vocab_size != m->c.vocab_size) {
            llama_free(m), llama_tokenizer_free(tok);
            st = LLAMA_ERR_VOCAB;
        }
        llama_gguf_close(g);
    }
    if (st == LLAMA_OK)
        printf("model %s: dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d (%s classifier), seq_len %d\n",
               o->model, m->c.dim, m->c.hidden_dim, m->c.n_layers, m->c.n_heads, m->c.n_kv_heads, m->c.vocab_size,
               m->shared ? "shared" : "unshared", m->c.seq_len);
    return st;
}

/* llama.cpp's perplexity stream: the whole text tokenized once, no BOS; the
   first token of every chunk becomes BOS where the vocabulary adds one. */
static llama_status gguf_stream(const llama_tokenizer *tok, size_t chunk, const char *text, size_t bytes, int **ids,
                                size_t *n) {
    size_t i;
    llama_status st = llama_encode(tok, text, bytes, ids, n);
    for (i = 0; st == LLAMA_OK && tok->add_bos && i + chunk <= *n; i += chunk) (*ids)[i] = tok->bos;
    return st;
}

/* Calibration tokens from a text: paragraphs (blank-line separated) get a
   BOS each; n windows of len tokens spread evenly over the stream. */
static llama_status calib_from_text(const llama_tokenizer *tok, const char *text, size_t bytes, size_t n,
                                     size_t len, int *out, size_t *got) {
    int *all = NULL;
    size_t total = 0, cap = 0, pos = 0, i, stride;
    llama_status st = LLAMA_OK;
    while (pos < bytes && st == LLAMA_OK) {
        const char *end = strstr(text + pos, "\n\n");
        size_t stop = end ? (size_t)(end - text) : bytes;
        st = llama__append_piece(tok, text, pos, stop, &all, &total, &cap);
        pos = end ? stop + 2 : bytes;
    }
    if (st == LLAMA_OK) {
        if (total / len < n) n = total / len;
        stride = n ? total / n : 0;
        for (i = 0; i < n; i++) memcpy(out + i * len, all + i * stride, len * sizeof(int));
        *got = n;
    }
    free(all);
    return st;
}

/* --dump-logits: the FP32 logits that llama_evaluate_chunks scores, chunk
   after chunk, written all-or-nothing (llama__write_file). */
typedef struct dump {
    const options *o;
    const llama_model *m;
    const int *stream;
    size_t n_chunks;
} dump;

static llama_status dump_emit(void *user, FILE *f) {
    const dump *d = (const dump *)user;
    size_t V = (size_t)d->m->c.vocab_size, T = d->o->stride - 1, S = T - d->o->first, c;
    float *logits = llama__floats(T, V);
    llama_state *s = NULL;
    llama_status st = logits ? llama_state_create(d->m, T, T, &s) : LLAMA_ERR_NOMEM;
    for (c = 0; c < d->n_chunks && st == LLAMA_OK; c++) {
        st = llama_forward(d->m, NULL, s, d->stream + c * d->o->stride, T, 0, logits, NULL, NULL);
        if (st == LLAMA_OK && fwrite(logits + d->o->first * V, sizeof(float) * V, S, f) != S) st = LLAMA_ERR_IO;
        if (LLAMA_CLI_TTY()) fprintf(stderr, "\r[dump-logits] chunk %zu/%zu", c + 1, d->n_chunks);
    }
    if (LLAMA_CLI_TTY()) fputc('\n', stderr);
    llama_state_free(s);
    free(logits);
    return st;
}

static llama_status dump_logits(const options *o, const llama_model *m, const int *stream, size_t n_chunks) {
    dump d;
    llama_status st;
    d.o = o, d.m = m, d.stream = stream, d.n_chunks = n_chunks;
    if ((st = llama__write_file(o->dump_logits, dump_emit, &d)) == LLAMA_OK)
        printf("dump-logits %s: %zu chunks x %zu positions x %d logits (float32)\n", o->dump_logits, n_chunks,
               o->stride - 1 - o->first, m->c.vocab_size);
    else
        fprintf(stderr, "llama_w4a8: --dump-logits %s: %s\n", o->dump_logits, llama_status_str(st));
    return st;
}

/* The calibration tokens --calib names: *calib (malloc'd; the caller frees
   it, also on failure), *n_calib sequences of LLAMA_WINDOW - 1 tokens, and
   their description. 0 on success, else 1 with the reason printed. */
static int make_calib(const options *o, const llama_model *m, const llama_tokenizer *tok, int **calib,
                      size_t *n_calib, char *desc, size_t cap) {
    char *ctext = NULL;
    size_t bytes = 0;
    llama_status st;
    *n_calib = 0;
    if (!(*calib = (int *)malloc((o->calib_seqs ? o->calib_seqs : 1) * (LLAMA_WINDOW - 1) * sizeof(int)))) {
        fprintf(stderr, "llama_w4a8: out of memory\n");
        return 1;
    }
    if (!o->calib_seqs) {
        snprintf(desc, cap, "none");
        return 0;
    }
    if (!strcmp(o->calib, "generated")) {
        double t0 = llama__now();
        if ((st = llama_generate_calib(m, o->calib_seqs, LLAMA_WINDOW - 1, o->seed, *calib)) != LLAMA_OK) {
            fprintf(stderr, "llama_w4a8: calibration data: %s\n", llama_status_str(st));
            return 1;
        }
        *n_calib = o->calib_seqs;
        snprintf(desc, cap, "%zu sequences x %d tokens sampled from the FP32 model from BOS (seed %llu)", *n_calib,
                 LLAMA_WINDOW - 1, (unsigned long long)o->seed);
        printf("generated calibration tokens in %.1f s\n", llama__now() - t0);
        return 0;
    }
    st = llama__read_file(o->calib, (size_t)1 << 30, &ctext, &bytes);
    if (st == LLAMA_OK) st = calib_from_text(tok, ctext, bytes, o->calib_seqs, LLAMA_WINDOW - 1, *calib, n_calib);
    free(ctext);
    if (st != LLAMA_OK) {
        fprintf(stderr, "llama_w4a8: --calib %s: %s\n", o->calib, llama_status_str(st));
        return 1;
    }
    if (*n_calib == 0) {
        fprintf(stderr, "llama_w4a8: %s: fewer than %d tokens\n", o->calib, LLAMA_WINDOW - 1);
        return 1;
    }
    snprintf(desc, cap, "%zu windows x %d tokens of %s", *n_calib, LLAMA_WINDOW - 1, o->calib);
    return 0;
}

/* One --export file: spec quantized for llama.cpp (llama_export_quantizer)
   from cs, written to path, with what the fp16 scales cost. */
static int export_one(const options *o, const llama_model *m, const llama_gguf *g, const llama_calibs *cs,
                      const llama_spec *spec, const char *path) {
    llama_qmodel *q = NULL;
    llama_export_opts eo;
    llama_export_report r;
    char name[48];
    w4a8_status wst = W4A8_OK;
    llama_status st;
    spec_name(spec, 0, name, sizeof name);
    st = llama_quantize(m, cs, spec, o->quantize_cls, llama_export_quantizer, &q, &wst);
    if (st == LLAMA_OK) {
        printf("quantized %s for export in %.2f s\n", name, q->seconds);
        memset(&eo, 0, sizeof eo);
        eo.q4_1 = o->export_q4_1, eo.rechoose = o->export_rechoose;
        st = llama_export_gguf(g, m, q, &eo, path, &r);
    }
    llama_qmodel_free(q);
    if (st != LLAMA_OK) {
        fprintf(stderr, "llama_w4a8: --export %s (%s): %s%s%s\n", path, name, llama_status_str(st), wst ? ": " : "",
                wst ? w4a8_status_str(wst) : "");
        return 1;
    }
    printf("exported %s to %s: %zu linears Q4_0, %zu Q4_1%s; %zu with a per-tensor activation scale llama.cpp "
           "does not use (it quantizes activations to Q8_0 per block of 32)\n",
           name, path, r.q4_0, r.q4_1, o->export_rechoose ? ", codes re-chosen for the fp16 scales" : "",
           r.static_act);
    printf("fp16 scales: largest relative rounding %.2e; weight error |W - Q|^2 / |W|^2: w4a8 %.6e, fp16 scales "
           "%.6e (%+.4f%%), codes re-chosen %.6e (%+.4f%%); %.3f%% of codes differ from RTN's for the fp16 scale\n",
           r.scale_rel_max, r.err_w4a8 / r.ref, r.err_fp16 / r.ref, 100.0 * (r.err_fp16 / r.err_w4a8 - 1.0),
           r.err_rechosen / r.ref, 100.0 * (r.err_rechosen / r.err_w4a8 - 1.0),
           100.0 * (double)r.rechosen / (double)r.weights);
    fflush(stdout);
    return 0;
}

/* --export: one calibration, then a file per spec (OUT's %s is its name). */
static int run_export(const options *o, const llama_model *m, const llama_tokenizer *tok, const job *specs,
                      size_t n_specs) {
    const char *pct = strstr(o->export_path, "%s");
    llama_gguf *g = NULL;
    llama_calibs cs;
    int *calib = NULL, failed = 0;
    size_t n_calib = 0, i;
    char desc[512], path[4096];
    w4a8_status wst = W4A8_OK;
    llama_status st;
    double t0;
    for (i = 0; i < n_specs; i++) failed |= specs[i].rot != 0;
    if (failed || (n_specs > 1 && (!pct || strstr(pct + 2, "%s") || strchr(o->export_path, '%') != pct)) ||
        strlen(o->export_path) + 48 > sizeof path) {
        fprintf(stderr, "llama_w4a8: --export: no rotation (llama.cpp has none); several methods need one %%s "
                        "in the path and no other %%\n");
        return 1;
    }
    if ((st = llama_gguf_open(o->model, &g)) != LLAMA_OK) {
        fprintf(stderr, "llama_w4a8: %s: %s\n", o->model, llama_status_str(st));
        return 1;
    }
    if (make_calib(o, m, tok, &calib, &n_calib, desc, sizeof desc)) {
        free(calib);
        llama_gguf_close(g);
        return 1;
    }
    printf("calibrating on %s ...\n", desc);
    fflush(stdout);
    t0 = llama__now();
    st = llama_calibrate(m, calib, n_calib, LLAMA_WINDOW - 1, &cs, &wst);
    free(calib);
    if (st != LLAMA_OK) {
        fprintf(stderr, "llama_w4a8: calibration: %s%s%s\n", llama_status_str(st), wst ? ": " : "",
                wst ? w4a8_status_str(wst) : "");
        llama_gguf_close(g);
        return 1;
    }
    printf("calibrated in %.1f s\n", llama__now() - t0);
    for (i = 0; i < n_specs; i++) {
        char name[48];
        spec_name(&specs[i].spec, 0, name, sizeof name);
        if (pct) snprintf(path, sizeof path, "%.*s%s%s", (int)(pct - o->export_path), o->export_path, name, pct + 2);
        else snprintf(path, sizeof path, "%s", o->export_path);
        failed |= export_one(o, m, g, &cs, &specs[i].spec, path);
    }
    llama_calibs_free(&cs);
    llama_gguf_close(g);
    return failed;
}

/* The whole program but the check of standard output. */
/* --kv's columns into o. */
static int parse_kv(options *o) {
    const char *list = o->kv;
    char item[8];
    int k;
    o->n_kv = 0;
    if (!list || !strcmp(list, "none")) return 1;
    while ((k = next_item(&list, item, sizeof item)) > 0) {
        int bits = item[0] == '8' ? 8 : item[0] == '4' ? 4 : 0;
        if (!bits || (item[1] && strcmp(item + 1, "a")) || o->n_kv == 8) break;
        o->kv_bits[o->n_kv] = bits, o->kv_asym[o->n_kv] = item[1] == 'a', o->n_kv++;
    }
    if (k == 0) return 1;
    fprintf(stderr, "llama_w4a8: bad --kv '%s' (a comma list of 8, 4, 8a, 4a; at most 8)\n", o->kv);
    return 0;
}

/* --qat's checkpoints "FILE" or "FILE:GROUP" (trained at GROUP), each of
   the model's shape. names[i] is the file's name without directory and
   extension (in buf), trained[i] its GROUP or 0. */
static int load_qat(const options *o, const llama_model *model, llama_model *qat, const char **names,
                    size_t *trained, size_t *n, char *buf, size_t cap) {
    const char *list = o->qat;
    char path[1024];
    int k;
    llama_status st;
    *n = 0;
    if (o->gguf) {
        fprintf(stderr, "llama_w4a8: --qat needs a llama2.c --model (llama_qat trains those)\n");
        return 0;
    }
    while ((k = next_item(&list, path, sizeof path)) > 0) {
        char *colon = strrchr(path, ':');
        const char *base;
        size_t len;
        trained[*n] = 0;
        if (colon && parse_group(colon + 1, &trained[*n])) *colon = '\0';
        base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        len = strcspn(base, ".");
        if (*n == 8 || len + 1 > cap) {
            fprintf(stderr, "llama_w4a8: --qat: at most 8 files, with shorter names\n");
            return 0;
        }
        if ((st = llama_load(path, &qat[*n])) != LLAMA_OK) {
            fprintf(stderr, "llama_w4a8: --qat %s: %s\n", path, llama_status_str(st));
            return 0;
        }
        if (memcmp(&qat[*n].c, &model->c, sizeof model->c) != 0 || qat[*n].shared != model->shared) {
            fprintf(stderr, "llama_w4a8: --qat %s: not the shape of %s\n", path, o->model);
            llama_free(&qat[*n]);
            return 0;
        }
        memcpy(buf, base, len), buf[len] = '\0';
        names[(*n)++] = buf;
        buf += len + 1, cap -= len + 1;
    }
    if (k < 0) {
        bad_list("--qat", o->qat, sizeof path);
        return 0;
    }
    return 1;
}

static int run(int argc, char **argv) {
    options o;
    llama_model model, outl, qat[8];
    qat_set qs;
    const char *qat_names[8];
    size_t qat_groups[8];
    char qat_buf[512];
    llama_tokenizer tok;
    job *specs = NULL;
    char *text = NULL, item[64], calib_desc[512], title_orig[256], title_outl[320];
    const char *list, *culprit;
    int *stream = NULL, *calib = NULL, want_orig = 0, want_outl = 0, failed = 0, k;
    size_t n_stream, n_windows, n_specs = 0, cap_specs, text_bytes, n_calib = 0, g;
    size_t groups[16], n_groups = 0;
    FILE *md = NULL;
    llama_status st;
    int pa = parse_args(argc, argv, &o);
    if (pa == 2) {
        fputs(usage[0], stdout), fputs(usage[1], stdout);
        return 0;
    }
    if (!pa || !parse_kv(&o)) return 2;
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads(o.threads);
    omp_set_max_active_levels(1); /* windows in parallel; the layers inside run on one thread */
#endif
    o.gguf = llama_is_gguf_file(o.model);
    if (o.gguf) { /* real outliers, weights already 4-bit: the defaults that make sense */
        if (!o.variants_given) o.variants = "original";
        if (!o.groups_given) o.groups = o.export_path ? "32" : "32,128,channel";
        if (!o.calib_given) o.calib_seqs = 16;
        o.stride = o.ctx, o.first = o.ctx / 2;
    } else {
        if (o.export_path) {
            fprintf(stderr, "llama_w4a8: --export needs a GGUF model (its tokenizer and embedding go into the file)\n");
            return 2;
        }
        if (!o.tokenizer) {
            fprintf(stderr, "llama_w4a8: a llama2.c checkpoint needs --tokenizer (see --help)\n");
            return 2;
        }
        o.stride = LLAMA_WINDOW, o.first = 0;
    }
    for (list = o.variants; (k = next_item(&list, item, sizeof item)) > 0;) {
        if (!strcmp(item, "original")) want_orig = 1;
        else if (!strcmp(item, "outliers")) want_outl = 1;
        else {
            fprintf(stderr, "llama_w4a8: unknown variant '%s' (original, outliers)\n", item);
            return 2;
        }
    }
    if (k < 0) return bad_list("--variants", o.variants, sizeof item);
    for (list = o.groups; (k = next_item(&list, item, sizeof item)) > 0;)
        if (n_groups == 16 || !parse_group(item, &groups[n_groups++])) {
            fprintf(stderr, "llama_w4a8: bad --group '%s'\n", o.groups);
            return 2;
        }
    if (k < 0) return bad_list("--group", o.groups, sizeof item);
    cap_specs = 2 * 64 * (n_groups ? n_groups : 1);
    specs = (job *)malloc(cap_specs * sizeof *specs);
    for (g = 0; specs && g < n_groups; g++) {
        for (list = o.methods; (k = next_item(&list, item, sizeof item)) > 0;) {
            if (!strcmp(item, "none")) continue;
            k = n_specs + 2 <= cap_specs ? parse_job(item, &o, groups[g], specs + n_specs) : 0;
            if (!k) {
                fprintf(stderr, "llama_w4a8: bad method '%s' (see --help)\n", item);
                free(specs);
                return 2;
            }
            n_specs += (size_t)k;
        }
        if (k < 0) {
            free(specs);
            return bad_list("--methods", o.methods, sizeof item);
        }
    }
    if (!specs || !n_groups || (!n_specs && strcmp(o.methods, "none")) || (!want_orig && !want_outl)) {
        fprintf(stderr, "llama_w4a8: nothing to do (check --group, --methods, --variants)\n");
        free(specs);
        return 2;
    }

    memset(&tok, 0, sizeof tok), memset(&qs, 0, sizeof qs);
    if ((st = load_model(&o, &model, &tok, &culprit)) != LLAMA_OK) {
        fprintf(stderr, "llama_w4a8: %s: %s\n", culprit, llama_status_str(st));
        free(specs);
        return 1;
    }
    if (o.gguf)
        printf("rope base %g over %zu dimensions per head, rms eps %g; tokenizer from the GGUF: %d tokens, bos %d, "
               "add_bos %d\n", model.rope_base, model.rope_dim, model.norm_eps, tok.vocab_size, (int)tok.bos,
               tok.add_bos);
    else
        printf("tokenizer %s: %d pieces, %s\n", o.tokenizer, tok.vocab_size,
               tok.byte_fallback ? "byte fallback" : "no byte fallback (unknown characters -> <unk>)");
    if (o.export_path) {
        failed = run_export(&o, &model, &tok, specs, n_specs);
        goto done;
    }
    st = llama__read_file(o.text, (size_t)1 << 30, &text, &text_bytes);
    if (st == LLAMA_OK) st = o.gguf ? gguf_stream(&tok, o.stride, text, text_bytes, &stream, &n_stream)
                                    : llama_encode_stories(&tok, text, text_bytes, &stream, &n_stream);
    free(text);
    if (st != LLAMA_OK) {
        fprintf(stderr, "llama_w4a8: %s: %s\n", o.text, llama_status_str(st));
        failed = 1;
        goto done;
    }
    n_windows = n_stream / o.stride;
    if (o.windows && o.windows < n_windows) n_windows = o.windows;
    printf("text %s: %zu tokens, %zu %s of %zu used\n", o.text, n_stream, n_windows, o.gguf ? "chunks" : "windows",
           o.stride);
    if (n_windows == 0 || (size_t)model.c.seq_len < o.stride - 1 || (size_t)model.c.seq_len < LLAMA_WINDOW - 1) {
        fprintf(stderr, "llama_w4a8: need at least one window of %zu tokens and a context of %zu\n", o.stride,
                o.stride - 1 > LLAMA_WINDOW - 1 ? o.stride - 1 : LLAMA_WINDOW - 1);
        failed = 1;
        goto done;
    }

    if (o.dump_logits && dump_logits(&o, &model, stream, n_windows) != LLAMA_OK) {
        failed = 1;
        goto done;
    }
    if (!n_specs && !o.qat) o.calib_seqs = 0; /* the FP32 row needs no calibration */
    if (make_calib(&o, &model, &tok, &calib, &n_calib, calib_desc, sizeof calib_desc)) {
        failed = 1;
        goto done;
    }
    if (o.table && !(md = fopen(o.table, "w"))) {
        fprintf(stderr, "llama_w4a8: cannot write %s\n", o.table);
        failed = 1;
        goto done;
    }
    {
        const char *base = strrchr(o.model, '/') ? strrchr(o.model, '/') + 1 : o.model;
        snprintf(title_orig, sizeof title_orig, "%s, as trained", base);
        snprintf(title_outl, sizeof title_outl,
                 "%s, outlier variant (3 channels of every rms_att and rms_ffn x50, x100, x200)", base);
    }
    if (md) {
        int i;
        fprintf(md, "<!-- produced by:");
        for (i = 0; i < argc; i++) fprintf(md, " %s", argv[i]);
        fprintf(md, " -->\n\n");
    }
    if (o.qat) {
        if (!load_qat(&o, &model, qat, qat_names, qat_groups, &qs.n, qat_buf, sizeof qat_buf)) {
            failed = 1;
            goto done;
        }
        qs.m = qat, qs.names = qat_names, qs.trained = qat_groups, qs.groups = groups, qs.n_groups = n_groups;
    }
    if (want_orig)
        failed |= run_variant(&o, "original", title_orig, &model, &model, &tok, stream, n_windows, calib, n_calib, calib_desc,
                              specs, n_specs, o.qat ? &qs : NULL, md);
    if (want_outl) {
        if ((st = llama_inject_outliers(&model, &outl)) != LLAMA_OK) {
            fprintf(stderr, "llama_w4a8: outlier variant: %s\n", llama_status_str(st));
            failed = 1;
        } else {
            failed |= run_variant(&o, "outliers", title_outl, &model,
                                  &outl, &tok, stream, n_windows, calib, n_calib, calib_desc, specs, n_specs, NULL, md);
            llama_free(&outl);
        }
    }
    if (md) {
        int lost = ferror(md);
        if (fclose(md) != 0 || lost) {
            fprintf(stderr, "llama_w4a8: cannot write %s\n", o.table);
            failed = 1;
        }
    }
done:
    for (g = 0; g < qs.n; g++) llama_free(&qat[g]);
    free(stream), free(calib), free(specs);
    llama_tokenizer_free(&tok);
    llama_free(&model);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) { return output_finish("llama_w4a8", stdout, stderr, run(argc, argv)); }
