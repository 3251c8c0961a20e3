#!/bin/sh
# What llama.cpp itself says about SmolLM2-135M-Instruct, recorded for w4a8's
# engine to be tested and judged against (issues 11 and 12): token ids, a
# greedy continuation, WikiText-2 perplexity of the F32 model (all chunks, 4,
# 24), the F32 log-probabilities of the first 24 chunks (a file for
# tools/crosscheck_compare.py), llama.cpp's own quantizations judged by its
# own perplexity and KL divergence, and llama-bench. Writes
# tests/vectors/smollm2_llamacpp.txt (key value lines, see tests/vectors/README.md)
# and prints a table. Everything large stays in the cache, next to the model.
# Usage: tools/crosscheck.sh [--table]   (--table: only print the table of OUT)
#   THREADS=2 BENCH_ROUNDS=3 NICE=10 ALL_CHUNKS= (all) OUT=file to write elsewhere;
#   RESUME=1 keeps the steps an interrupted run finished (their logs, times, files)
set -e
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

val() { sed -n "s/^$1 //p" "$OUT"; }
table() {
    echo "llama.cpp $(val llamacpp_version) ($(val llamacpp_commit | cut -c1-7)), $(val cpu), $(val threads) threads"
    echo "F32 WikiText-2 PPL, c=$(val n_ctx): all $(val f32_ppl_all_chunks) chunks $(val f32_ppl_all) +/- $(val f32_ppl_all_err)," \
         "4 chunks $(val f32_ppl_4chunks) (all-F32: $(val f32_kvf32_ppl_4chunks))," \
         "24 chunks $(val f32_ppl_24chunks) (all-F32: $(val f32_kvf32_ppl_24chunks))"
    printf '%-18s %10s %10s %10s\n' "first $KL_CHUNKS chunks" PPL "KL vs F32" "same top1"
    for key in f32 q4_1 q8_0 q4_0_imatrix q4_0_imatrix_pure q4_0; do
        printf '%-18s %10s %10s %9s%%\n' "$key" "$(val kld_${key}_ppl)" "$(val kld_${key}_mean)" "$(val kld_${key}_same_top1_pct)"
    done
    echo "w4a8's engine, FP32, first $KL_CHUNKS chunks: PPL $(val w4a8_f32_24_ppl) (llama.cpp all-F32 $(val f32_kvf32_ppl_24chunks))," \
         "KL $(val w4a8_f32_24_mean_kl), same top-1 $(val w4a8_f32_24_same_top1_pct)%," \
         "max |dlogprob| $(val w4a8_f32_24_max_dlogprob) (crosscheck_compare.py vs the F32 base)"
    echo "crosscheck_compare.py on Q8_0's coded log-probs: mean KL $(val compare_q8_0_mean_kl)," \
         "same top-1 $(val compare_q8_0_same_top1_pct)% (llama-perplexity: the q8_0 row)"
    echo "llama-bench tokens/s, median (min-max) of $(val bench_rounds) rounds; load $(val bench_load)"
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
    printf '%s\n' "greedy ($(val greedy_n) tokens of \"$(val greedy_prompt)\"): $(val greedy_text | cut -c1-100)..."
}
if [ "$1" = --table ]; then [ -f "$OUT" ] && table; exit; fi

for f in "$MODEL" "$WIKI" "$CALIB"; do
    [ -f "$f" ] || { echo "crosscheck: $f is missing" >&2; exit 1; }
done
BIN=$(sh "$ROOT/tools/llama_cpp.sh")
LDIR=$(dirname "$(dirname "$BIN")")
SRC=$(echo "$LDIR"/llama_cpp_python-*/vendor/llama.cpp)
mkdir -p "$WORK" "$(dirname "$OUT")"
REC=$WORK/record.txt.tmp

renice -n "${NICE:-10}" -p $$ >/dev/null 2>&1 || true # long runs on a shared machine
: >"$REC"
rec() { printf "%s\n" "$*" >>"$REC"; }
say() { echo "[crosscheck $(date -u +%H:%M:%S)] $*" >&2; }
# step NAME CMD...: runs CMD with its output in $WORK/NAME.log and its wall
# seconds in NAME.time, both written once it has succeeded.
step() {
    name=$1; shift
    if [ -n "$RESUME" ] && [ -f "$WORK/$name.time" ]; then
        say "$name: kept from an earlier run"
    else
        say "$name ..."
        rm -f "$WORK/$name.time"
        t0=$(date +%s)
        "$@" >"$WORK/$name.log.part" 2>&1 || { tail -20 "$WORK/$name.log.part" >&2; exit 1; }
        mv "$WORK/$name.log.part" "$WORK/$name.log"
        echo $(($(date +%s) - t0)) >"$WORK/$name.time"
    fi
    rec "time_$name $(cat "$WORK/$name.time")"
}
# quantize TYPE OUTFILE [ARGS]: llama-quantize of the shipped model, all-or-nothing.
quantize() {
    type=$1; out=$2; shift 2
    step "quantize_$(basename "$out" .gguf | sed 's/.*\.//')" \
        "$BIN/llama-quantize" --allow-requantize "$@" "$MODEL" "$out.tmp" "$type" "$THREADS"
    [ ! -f "$out.tmp" ] || mv "$out.tmp" "$out"
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
# bench_round: one llama-bench run of every model, with the load around it
bench_round() {
    echo "load_before $(cut -d' ' -f1-3 /proc/loadavg)"
    "$BIN/llama-bench" -m "$models" -p 512 -n 128 -t 1,2 -r 3 -o csv
    echo "load_after $(cut -d' ' -f1-3 /proc/loadavg)"
}
# Threads that wait sleep instead of spinning (OpenMP's passive policy): on a
# shared machine spinning burnt ten times the CPU the work needs. No effect on
# the numbers; llama-bench keeps llama.cpp's default.
ppl() { OMP_WAIT_POLICY=PASSIVE "$BIN/llama-perplexity" -f "$WIKI" -c $CTX -t "$THREADS" "$@"; }
# final PPL and its +/- from a perplexity log; running value after N chunks
ppl_final() { sed -n 's/.*Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 \2/p' "$WORK/$1.log"; }
ppl_after() { grep -ao "\[$2\][0-9.]*" "$WORK/$1.log" | head -1 | sed 's/.*\]//'; }

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
rec "greedy_n $GREEDY_N"
grep '^prompt_ids \|^greedy_' "$WORK/greedy_f32.log" | sed 's/^prompt_ids/greedy_prompt_ids/' >>"$REC"
g32=$(grep '^greedy_ids ' "$WORK/greedy_f32.log"); g16=$(grep '^greedy_ids ' "$WORK/greedy_f16.log")
rec "greedy_f16kv_same $([ "$g32" = "$g16" ] && echo 1 || echo 0)"

# a. F32 perplexity, first 24 chunks, saving the log-probabilities (base for KL);
#    the base all-F32, the same 24 chunks with llama.cpp's defaults (f16 KV cache)
step ppl_f32_24_kvf32 ppl -m "$F32" --chunks $KL_CHUNKS -ctk f32 -ctv f32 -fa off --kl-divergence-base "$BASE.tmp"
[ ! -f "$BASE.tmp" ] || mv "$BASE.tmp" "$BASE"
rec "f32_kvf32_ppl_4chunks $(ppl_after ppl_f32_24_kvf32 4)"
rec "f32_kvf32_ppl_24chunks $(ppl_final ppl_f32_24_kvf32 | cut -d' ' -f1)"
step ppl_f32_24 ppl -m "$F32" --chunks $KL_CHUNKS
rec "f32_ppl_4chunks $(ppl_after ppl_f32_24 4)"
rec "f32_ppl_24chunks $(ppl_final ppl_f32_24 | cut -d' ' -f1)"

# b. llama.cpp's own quantizations of the same model, judged on the same 24 chunks
quantize Q8_0 "$CACHE/SmolLM2-135M-Instruct.Q8_0.gguf"
quantize Q4_0 "$CACHE/SmolLM2-135M-Instruct.Q4_0.gguf"
step imatrix env OMP_WAIT_POLICY=PASSIVE "$BIN/llama-imatrix" -m "$F32" -f "$CALIB" --chunks 16 -c $CTX -t "$THREADS" \
    -o "$WORK/imatrix_tinystories16.gguf"
quantize Q4_0 "$CACHE/SmolLM2-135M-Instruct.Q4_0-imatrix.gguf" --imatrix "$WORK/imatrix_tinystories16.gguf"
# with an imatrix llama.cpp keeps the first n_layer/8 ffn_down in Q4_1 (llama-quant.cpp);
# --pure: every linear Q4_0 like w4a8's exports, token_embd kept at Q8_0 as in the others
quantize Q4_0 "$CACHE/SmolLM2-135M-Instruct.Q4_0-imatrix-pure.gguf" --imatrix "$WORK/imatrix_tinystories16.gguf" \
    --pure --token-embedding-type q8_0
for q in F32 Q4_1 Q8_0 Q4_0 Q4_0-imatrix Q4_0-imatrix-pure; do
    key=$(echo "$q" | tr 'A-Z-' 'a-z_')
    step "kld_$key" ppl -m "$CACHE/SmolLM2-135M-Instruct.$q.gguf" --kl-divergence-base "$BASE" --kl-divergence
    log=$WORK/kld_$key.log
    rec "kld_${key}_ppl $(sed -n 's/^Mean PPL(Q) *: *\([0-9.]*\).*/\1/p' "$log")"
    rec "kld_${key}_mean $(sed -n 's/^Mean *KLD: *\([0-9.]*\).*/\1/p' "$log")"
    rec "kld_${key}_same_top1_pct $(sed -n 's/^Same top p: *\([0-9.]*\).*/\1/p' "$log")"
done

# w4a8's engine on the same 24 chunks: its FP32 logits (llama_w4a8
# --dump-logits) against llama.cpp's all-F32 log-probabilities
ours=$WORK/w4a8_f32_24chunks.f32
make -C "$ROOT" --no-print-directory build/llama_w4a8 >&2
step w4a8_f32_24 sh -c "'$ROOT/build/llama_w4a8' --model '$MODEL' --text '$WIKI' --windows $KL_CHUNKS --methods none \
    --sample 0 --threads '$THREADS' --dump-logits '$ours' && /usr/bin/python3 '$ROOT/tools/crosscheck_compare.py' '$BASE' '$ours'"
rm -f "$ours"
rec "w4a8_f32_24_ppl $(sed -n 's/^| fp32 .* | \([0-9.]*\) | - | - | - | - |$/\1/p' "$WORK/w4a8_f32_24.log")"
rec "w4a8_f32_24_mean_kl $(sed -n 's/^mean KL *//p' "$WORK/w4a8_f32_24.log")"
rec "w4a8_f32_24_same_top1_pct $(sed -n 's/^same top-1 *\([0-9.]*\)%.*/\1/p' "$WORK/w4a8_f32_24.log")"
rec "w4a8_f32_24_max_dlogprob $(sed -n 's/^max |dlogprob| *\([0-9.]*\) .*/\1/p' "$WORK/w4a8_f32_24.log")"

# tools/crosscheck_compare.py checked on llama.cpp's own files: Q8_0's coded
# log-probs, turned into a logits file, against the F32 base: it should find
# about what llama-perplexity --kl-divergence found from Q8_0's real logits
q8=$WORK/q8_0_24chunks
step ppl_q8_0_24 ppl -m "$CACHE/SmolLM2-135M-Instruct.Q8_0.gguf" --chunks $KL_CHUNKS --kl-divergence-base "$q8.kld"
step compare_q8_0 sh -c "/usr/bin/python3 '$ROOT/tools/crosscheck_compare.py' --to-logits '$q8.kld' '$q8.f32' &&
    /usr/bin/python3 '$ROOT/tools/crosscheck_compare.py' '$BASE' '$q8.f32'"
rm -f "$q8.kld" "$q8.f32"
rec "compare_q8_0_mean_kl $(sed -n 's/^mean KL *//p' "$WORK/compare_q8_0.log")"
rec "compare_q8_0_same_top1_pct $(sed -n 's/^same top-1 *\([0-9.]*\)%.*/\1/p' "$WORK/compare_q8_0.log")"

# a. F32 perplexity on all chunks (ALL_CHUNKS=N: the first N only; the count is recorded)
step ppl_f32_all ppl -m "$F32" ${ALL_CHUNKS:+--chunks "$ALL_CHUNKS"}
rec "f32_ppl_all $(ppl_final ppl_f32_all | cut -d' ' -f1)"
rec "f32_ppl_all_err $(ppl_final ppl_f32_all | cut -d' ' -f2)"
rec "f32_ppl_all_chunks $(sed -n 's/.*calculating perplexity over \([0-9]*\) chunks.*/\1/p' "$WORK/ppl_f32_all.log")"
rec "f32_ppl_all_4chunks $(ppl_after ppl_f32_all 4)"

# c. llama-bench, BENCH_ROUNDS rounds (the machine is shared: the spread says how much)
models=
for q in F32 Q4_0 Q4_1 Q8_0; do models=$models${models:+,}$CACHE/SmolLM2-135M-Instruct.$q.gguf; done
: >"$WORK/bench.csv"
loads=
r=1
while [ $r -le "$BENCH_ROUNDS" ]; do
    step "bench_$r" bench_round
    grep '^"' "$WORK/bench_$r.log" >>"$WORK/bench.csv"
    loads="$loads${loads:+, }$(sed -n 's/^load_before //p' "$WORK/bench_$r.log" | cut -d' ' -f1) to"
    loads="$loads $(sed -n 's/^load_after //p' "$WORK/bench_$r.log" | cut -d' ' -f1)"
    r=$((r + 1))
done
rec "bench_rounds $BENCH_ROUNDS"
rec "bench_load ${loads:-none}" # BENCH_ROUNDS=0: no benchmark
# per model, threads and test: the median, min and max over rounds of llama-bench's mean tokens/s
[ "$BENCH_ROUNDS" = 0 ] || bench_summary "$(grep '^build_commit' "$WORK/bench_1.log")" "$WORK/bench.csv" >>"$REC"

# a key without a value means a tool's output no longer reads as expected
empty=$(grep -v '^[^ ]* .' "$REC" | tr '\n' ' ')
[ -z "$empty" ] || { echo "crosscheck: no value for: $empty(see the logs in $WORK)" >&2; exit 1; }
{ echo "# What llama.cpp says about SmolLM2-135M-Instruct: written by tools/crosscheck.sh"
  echo "# on $(date -u '+%Y-%m-%d %H:%M UTC'); see tests/vectors/README.md for each key."
  cat "$REC"; } >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
rm -f "$REC"

echo >&2
table
echo "recorded in $OUT"
