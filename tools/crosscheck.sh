#!/bin/sh
# What llama.cpp itself says about SmolLM2-135M-Instruct, recorded for w4a8's
# engine to be tested and judged against (issues 11 and 12): token ids, a
# greedy continuation, WikiText-2 perplexity of the F32 model (all chunks, 4,
# 24), the F32 log-probabilities of the first 24 chunks (a file for
# tools/crosscheck_compare.py), llama.cpp's own quantizations judged by its
# own perplexity and KL divergence, and llama-bench. Writes
# tests/vectors/smollm2_llamacpp.txt (key value lines, see tests/vectors/README.md)
# and prints a table. Everything large stays in the cache, next to the model.
# Usage: tools/crosscheck.sh   (THREADS=2, BENCH_ROUNDS=3, OUT=file to write elsewhere)
set -e
renice -n 10 -p $$ >/dev/null 2>&1 || true # long runs on a shared machine
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/w4a8
MODEL=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
F32=$CACHE/SmolLM2-135M-Instruct.F32.gguf
DATA=${W4A8_DATA:-$ROOT/../shared/data}
WIKI=$DATA/wikitext2_test_raw.txt
CALIB=$DATA/tinystories_valid_first1000.txt
WORK=$CACHE/crosscheck
BASE=$WORK/f32_base_24chunks.kld
OUT=${OUT:-$ROOT/tests/vectors/smollm2_llamacpp.txt}
THREADS=${THREADS:-2}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
CTX=512
KL_CHUNKS=24
GREEDY_PROMPT="Water is made of"
GREEDY_N=64
TOKENIZE_TEXT="Hello, world! SmolLM2 reads 12,345 tokens in 0.5 s; it's \"fine\" (mostly)."

for f in "$MODEL" "$WIKI" "$CALIB"; do
    [ -f "$f" ] || { echo "crosscheck: $f is missing" >&2; exit 1; }
done
BIN=$(sh "$ROOT/tools/llama_cpp.sh")
LDIR=$(dirname "$(dirname "$BIN")")
SRC=$(echo "$LDIR"/llama_cpp_python-*/vendor/llama.cpp)
mkdir -p "$WORK" "$(dirname "$OUT")"
REC=$WORK/record.txt.tmp
: >"$REC"
rec() { echo "$*" >>"$REC"; }
say() { echo "[crosscheck $(date -u +%H:%M:%S)] $*" >&2; }
# step NAME CMD...: runs CMD with its output in $WORK/NAME.log, records its time.
step() {
    name=$1; shift
    say "$name ..."
    t0=$(date +%s)
    "$@" >"$WORK/$name.log" 2>&1 || { tail -20 "$WORK/$name.log" >&2; exit 1; }
    rec "time_$name $(($(date +%s) - t0))"
}
# quantize TYPE OUTFILE [ARGS]: llama-quantize of the shipped model, all-or-nothing.
quantize() {
    type=$1; out=$2; shift 2
    step "quantize_$(basename "$out" .gguf | sed 's/.*\.//')" \
        "$BIN/llama-quantize" --allow-requantize "$@" "$MODEL" "$out.tmp" "$type" "$THREADS"
    mv "$out.tmp" "$out"
}
# bench_summary HEADER CSV: "bench_TYPE_TEST_tTHREADS median min max" lines
bench_summary() {
    tr -d '"' <"$2" | awk -F, -v header="$1" '
        BEGIN { n = split(header, h, ","); for (i = 1; i <= n; i++) col[h[i]] = i }
        { m = $col["model_filename"]; sub(/.*SmolLM2-135M-Instruct\./, "", m); sub(/\.gguf$/, "", m)
          t = $col["n_prompt"] > 0 ? "pp" $col["n_prompt"] : "tg" $col["n_gen"]
          print tolower(m) "_" t "_t" $col["n_threads"], $col["avg_ts"] }' |
    sort -k1,1 -k2,2g | awk '{ v[$1] = v[$1] " " $2; n[$1]++ }
        END { for (k in v) { c = split(substr(v[k], 2), a, " ")
              med = (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
              printf "bench_%s %.1f %.1f %.1f\n", k, med, a[1], a[c] } }' | sort
}
ppl() { "$BIN/llama-perplexity" -f "$WIKI" -c $CTX -t "$THREADS" "$@"; }
# final PPL and its +/- from a perplexity log; running value after N chunks
ppl_final() { sed -n 's/.*Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 \2/p' "$WORK/$1.log"; }
ppl_after() { grep -o "\[$2\][0-9.]*" "$WORK/$1.log" | head -1 | sed 's/.*\]//'; }

commit=unknown
[ -e "$SRC/.git" ] && commit=$(git -C "$SRC" rev-parse HEAD)
rec "llamacpp_version $(basename "$(dirname "$(dirname "$SRC")")" | sed 's/.*-//')"
rec "llamacpp_commit $commit"
cpuinfo() { sed -n "s/^$1[[:space:]]*: //p" /proc/cpuinfo | head -1; }
rec "cpu $(cpuinfo 'model name') (family $(cpuinfo 'cpu family') model $(cpuinfo model)), $(nproc) cpus," \
    "$(cpuinfo flags | tr ' ' '\n' | grep -x 'avx2\|avx512f\|avx512_vnni' | tr '\n' ' ' | sed 's/ $//')"
rec "threads $THREADS"
rec "n_ctx $CTX"

# The F32 model: the shipped Q4_1 (and its Q8_0 embeddings) dequantized.
quantize F32 "$F32"

# e. token ids of a short fixed text (BOS only if the metadata asks: it does not)
step tokenize "$BIN/llama-tokenize" -m "$MODEL" -p "$TOKENIZE_TEXT" --ids --log-disable
rec "tokenize_text $TOKENIZE_TEXT"
rec "tokenize_ids $(grep '^\[' "$WORK/tokenize.log" | tr -d '[],')"

# d. greedy continuation, all-F32 (f32 KV cache, no flash attention) and llama.cpp's default f16 KV cache
say "building tools/llama_greedy.c against libllama"
cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -isystem "$SRC/include" -isystem "$SRC/ggml/include" \
    "$ROOT/tools/llama_greedy.c" -o "$WORK/llama_greedy" -L"$LDIR/build/src" -L"$LDIR/build/ggml/src" \
    -lllama -lggml -lggml-cpu -lggml-base -lstdc++ -fopenmp -lm -lpthread
for kv in f32 f16; do
    step "greedy_$kv" "$WORK/llama_greedy" "$F32" $GREEDY_N "$THREADS" $kv "$GREEDY_PROMPT"
done
rec "greedy_prompt $GREEDY_PROMPT"
grep '^prompt_ids \|^greedy_' "$WORK/greedy_f32.log" | sed 's/^prompt_ids/greedy_prompt_ids/' >>"$REC"
g32=$(grep '^greedy_ids ' "$WORK/greedy_f32.log"); g16=$(grep '^greedy_ids ' "$WORK/greedy_f16.log")
rec "greedy_f16kv_same $([ "$g32" = "$g16" ] && echo 1 || echo 0)"

# a. F32 perplexity, first 24 chunks, saving the log-probabilities (base for KL);
#    the base all-F32, the same 24 chunks with llama.cpp's defaults (f16 KV cache)
step ppl_f32_24_kvf32 ppl -m "$F32" --chunks $KL_CHUNKS -ctk f32 -ctv f32 -fa off --kl-divergence-base "$BASE.tmp"
mv "$BASE.tmp" "$BASE"
rec "f32_kvf32_ppl_4chunks $(ppl_after ppl_f32_24_kvf32 4)"
rec "f32_kvf32_ppl_24chunks $(ppl_final ppl_f32_24_kvf32 | cut -d' ' -f1)"
step ppl_f32_24 ppl -m "$F32" --chunks $KL_CHUNKS
rec "f32_ppl_4chunks $(ppl_after ppl_f32_24 4)"
rec "f32_ppl_24chunks $(ppl_final ppl_f32_24 | cut -d' ' -f1)"

# b. llama.cpp's own quantizations of the same model, judged on the same 24 chunks
quantize Q8_0 "$CACHE/SmolLM2-135M-Instruct.Q8_0.gguf"
quantize Q4_0 "$CACHE/SmolLM2-135M-Instruct.Q4_0.gguf"
step imatrix "$BIN/llama-imatrix" -m "$F32" -f "$CALIB" --chunks 16 -c $CTX -t "$THREADS" \
    -o "$WORK/imatrix_tinystories16.gguf"
quantize Q4_0 "$CACHE/SmolLM2-135M-Instruct.Q4_0-imatrix.gguf" --imatrix "$WORK/imatrix_tinystories16.gguf"
for q in F32 Q4_1 Q8_0 Q4_0 Q4_0-imatrix; do
    key=$(echo "$q" | tr 'A-Z-' 'a-z_')
    step "kld_$key" ppl -m "$CACHE/SmolLM2-135M-Instruct.$q.gguf" --kl-divergence-base "$BASE" --kl-divergence
    log=$WORK/kld_$key.log
    rec "kld_${key}_ppl $(sed -n 's/^Mean PPL(Q) *: *\([0-9.]*\).*/\1/p' "$log")"
    rec "kld_${key}_mean $(sed -n 's/^Mean *KLD: *\([0-9.]*\).*/\1/p' "$log")"
    rec "kld_${key}_same_top1_pct $(sed -n 's/^Same top p: *\([0-9.]*\).*/\1/p' "$log")"
done

# c. llama-bench, BENCH_ROUNDS rounds (the machine is shared: the spread says how much)
models=
for q in F32 Q4_0 Q4_1 Q8_0; do models=$models${models:+,}$CACHE/SmolLM2-135M-Instruct.$q.gguf; done
rec "bench_load_before $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$WORK/bench.csv"
r=1
while [ $r -le "$BENCH_ROUNDS" ]; do
    step "bench_$r" "$BIN/llama-bench" -m "$models" -p 512 -n 128 -t 1,2 -r 3 -o csv
    grep '^"' "$WORK/bench_$r.log" >>"$WORK/bench.csv"
    r=$((r + 1))
done
rec "bench_load_after $(cut -d' ' -f1-3 /proc/loadavg)"
# per model, threads and test: the median, min and max over rounds of llama-bench's mean tokens/s
bench_summary "$(grep '^build_commit' "$WORK/bench_1.log")" "$WORK/bench.csv" >>"$REC"

# a. F32 perplexity on all chunks (the longest step: last)
step ppl_f32_all ppl -m "$F32"
rec "f32_ppl_all $(ppl_final ppl_f32_all | cut -d' ' -f1)"
rec "f32_ppl_all_err $(ppl_final ppl_f32_all | cut -d' ' -f2)"
rec "f32_ppl_all_chunks $(sed -n 's/.*calculating perplexity over \([0-9]*\) chunks.*/\1/p' "$WORK/ppl_f32_all.log")"
rec "f32_ppl_all_4chunks $(ppl_after ppl_f32_all 4)"

{ echo "# What llama.cpp says about SmolLM2-135M-Instruct: written by tools/crosscheck.sh"
  echo "# on $(date -u '+%Y-%m-%d %H:%M UTC'); see tests/vectors/README.md for each key."
  cat "$REC"; } >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
rm -f "$REC"

val() { sed -n "s/^$1 //p" "$OUT"; }
echo
echo "llama.cpp $(val llamacpp_version) ($(val llamacpp_commit | cut -c1-7)), $(val cpu), $THREADS threads"
echo "F32 WikiText-2 PPL, c=$CTX: all $(val f32_ppl_all_chunks) chunks $(val f32_ppl_all) +/- $(val f32_ppl_all_err)," \
     "4 chunks $(val f32_ppl_4chunks) (all-F32: $(val f32_kvf32_ppl_4chunks))," \
     "24 chunks $(val f32_ppl_24chunks) (all-F32: $(val f32_kvf32_ppl_24chunks))"
printf '%-14s %10s %10s %10s\n' "first $KL_CHUNKS" PPL "KL vs F32" "same top1"
for key in f32 q4_1 q8_0 q4_0_imatrix q4_0; do
    printf '%-14s %10s %10s %9s%%\n' "$key" "$(val kld_${key}_ppl)" "$(val kld_${key}_mean)" "$(val kld_${key}_same_top1_pct)"
done
echo "llama-bench tokens/s, median (min-max) of $BENCH_ROUNDS rounds; load $(val bench_load_before) -> $(val bench_load_after)"
for key in f32 q4_0 q4_1 q8_0; do
    for t in 1 2; do
        printf '%-5s t%s' "$key" $t
        for test in pp512 tg128; do
            set -- $(val "bench_${key}_${test}_t$t")
            printf '   %s %7s (%s-%s)' $test "$1" "$2" "$3"
        done
        echo
    done
done
echo "greedy ($GREEDY_N tokens of \"$GREEDY_PROMPT\"): $(val greedy_text | cut -c1-100)..."
echo "recorded in $OUT"
