/* llama.h - a small LLaMA-family engine for the w4a8 examples, tools and tests.

   One include for all of examples/llama/, each file found by its concern:
       gguf.h       GGUF read (metadata, tensors, dequantization) and write
       model.h      status codes, checkpoint loader, FP32/W4A8 forward, KV cache,
                    activation hooks, the outlier variant
       tokenizer.h  tokenizers and the protocol's token stream
       quantize.h   calibration of every linear input, quantization of a model
       rotate.h     QuaRot's offline rotation of a model (Hadamard, gammas folded)
       eval.h       windows, perplexity, KL from FP32, top-1 agreement
       export.h     a quantized model as a GGUF that llama.cpp runs (Q4_0)
   It declares w4a8.h only; define W4A8_IMPLEMENTATION in one file of yours
   before including it (examples/llama_w4a8.c does).

   Every function returns llama_status (llama_status_str says what it means) and writes
   results only through out-parameters.

   llama_load(path, &model) / llama_load_mem(buf, bytes, &model) / llama_free(&model)
       a llama2.c checkpoint or a LLaMA-family GGUF (the magic decides);
       llama_load_gguf(gguf, &model) from an open llama_gguf
   llama_tokenizer_load(path, vocab_size, &tok) / _load_mem / llama_tokenizer_free(&tok)
       vocab_size is the model's: a tokenizer with another count is rejected.
   llama_tokenizer_from_gguf(g, &tok) / llama_tokenizer_from_vocab(&desc, &tok)
       GGUF vocabularies (byte-level BPE, SentencePiece-style), as llama.cpp
   llama_tokenize(&tok, text, len, add_special, parse_special, &ids, &n)
   llama_encode(&tok, text, len, &ids, &n)        ids from malloc, caller frees
   llama_token_piece(&tok, id, special, &s, &len) / llama_detokenize(...)
   llama_state_create(&model, max_T, max_pos, &state) / llama_state_free(state)
       scratch for up to max_T tokens per call and a KV cache of max_pos positions
   llama_forward(&model, NULL, state, tokens, T, pos0, logits, hook, user)
       the FP32 forward of tokens[0..T) at positions pos0.. (the KV cache holds
       positions < pos0 from earlier calls); logits[T][vocab] or NULL. hook,
       when not NULL, sees the input of every linear before it runs:
           int hook(void *user, const char *name, int layer, llama_input which,
                    const float *X, size_t T, size_t K);
       name is "L0.qkv", "L0.wo", "L0.w13", "L0.w2", ... and "cls" (layer -1),
       X[T][K] row-major. A non-zero return stops the forward (LLAMA_ERR_HOOK).
       The second argument, a llama_qmodel, runs the W4A8 model instead.

   The pipeline main() runs, one function per step:
   llama_encode_stories(&tok, text, len, &ids, &n)    the protocol's token stream
   llama_generate_calib(&model, n, len, seed, seqs)   calibration sampled from BOS
   llama_calibrate(&model, seqs, n, len, &calibs, &wst)
   llama_quantize(&model, &calibs, &spec, quantize_cls, quantizer, &qmodel, &wst)
   llama_evaluate(entries, n_entries, stream, n_windows, metrics)
   llama_inject_outliers(&model, &variant)
   llama_rotate(&model, seed, online_w2, &rotated)    before calibrating, for rot: rows
   llama_export_gguf(src, &model, qmodel, &opts, path, &report)
       after llama_quantize(..., llama_export_quantizer, ...): Q4_0 for llama.cpp
*/
#ifndef LLAMA_H
#define LLAMA_H
#include "model.h"
#include "tokenizer.h"
#include "quantize.h"
#include "rotate.h"
#include "eval.h"
#include "export.h"
#endif /* LLAMA_H */
