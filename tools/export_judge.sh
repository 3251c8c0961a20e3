#!/bin/sh
# llama.cpp as the judge of w4a8's quantizers (issue 12): w4a8 exports
# SmolLM2-135M-Instruct as Q4_0 GGUF files (RTN, GPTQ, AWQ, AWQ+GPTQ, AUTO;
# RTN again with its codes re-chosen for the fp16 scales, and with its steps
# searched for the H_jj-weighted error, as llama.cpp's imatrix), and llama.cpp's own
# `llama-perplexity` scores each on WikiText-2 test (-c 512, the first 24
# chunks, KL divergence and top-1 against the all-F32 base that
# tools/crosscheck.sh saved), beside llama.cpp's own Q4_0 files of the same
# model as recorded in tests/vectors/smollm2_llamacpp.txt. Not part of `make test`.
# Calibration: CALIB_SEQS windows of 256 tokens of TinyStories (32: 8,192
# tokens, the text and amount of llama.cpp's importance matrix there; never
# the evaluation text).
# Usage: tools/export_judge.sh   (METHODS=gptq,rtn,... CALIB_SEQS=32 THREADS=2
#   NICE=10 RESUME=1 keeps the files and logs of an interrupted run; CALIB=FILE|generated)
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/w4a8
MODEL=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
DATA=${W4A8_DATA:-$ROOT/../shared/data}
WIKI=$DATA/wikitext2_test_raw.txt
CALIB=${CALIB:-$DATA/tinystories_valid_first1000.txt}
BASE=$CACHE/crosscheck/f32_base_24chunks.kld
VEC=$ROOT/tests/vectors/smollm2_llamacpp.txt
WORK=$CACHE/export
METHODS=${METHODS:-gptq,rtn,awq,awq+gptq,auto}
CALIB_SEQS=${CALIB_SEQS:-32}
THREADS=${THREADS:-2}
for f in "$MODEL" "$WIKI" "$BASE" "$VEC"; do
    [ -f "$f" ] || { echo "export_judge: $f is missing (tools/fetch_model.sh, make crosscheck)" >&2; exit 1; }
done
[ "$CALIB" = generated ] || [ -f "$CALIB" ] || { echo "export_judge: $CALIB is missing" >&2; exit 1; }
BIN=$(sh "$ROOT/tools/llama_cpp.sh")
renice -n "${NICE:-10}" -p $$ >/dev/null 2>&1 || true
mkdir -p "$WORK"
# llama.cpp 0.3.36 crashes (SIGSEGV) at load on CPUs with AMX (Intel Xeon)
# when it repacks Q4_0 weights, its own files too: there, score unrepacked.
NO_REPACK=
grep -qw amx_int8 /proc/cpuinfo 2>/dev/null && NO_REPACK=--no-repack
say() { echo "[export_judge $(date -u +%H:%M:%S)] $*" >&2; }
make -C "$ROOT" -s build/llama_w4a8 >&2
OUT=$WORK/SmolLM2-135M-Instruct.w4a8-%s.gguf
file() { echo "$OUT" | sed "s/%s/$1/"; }

# 1. the exports: one calibration, a file per method; RTN re-chosen apart (it needs no calibration)
if [ -z "$RESUME" ] || [ ! -f "$WORK/export.log" ]; then
    say "quantizing and exporting $METHODS ..."
    "$ROOT/build/llama_w4a8" --model "$MODEL" --calib "$CALIB" --calib-seqs "$CALIB_SEQS" --methods "$METHODS" \
        --threads "$THREADS" --export "$OUT" >"$WORK/export.log.part" 2>&1 ||
        { tail -5 "$WORK/export.log.part" >&2; exit 1; }
    "$ROOT/build/llama_w4a8" --model "$MODEL" --calib "$CALIB" --calib-seqs 1 --methods rtn --threads "$THREADS" \
        --export-rechoose --export "$(file rtn-rechosen)" >>"$WORK/export.log.part" 2>&1 ||
        { tail -5 "$WORK/export.log.part" >&2; exit 1; }
    "$ROOT/build/llama_w4a8" --model "$MODEL" --calib "$CALIB" --calib-seqs "$CALIB_SEQS" --methods rtn \
        --threads "$THREADS" --scales all --export "$(file rtn-searched)" >>"$WORK/export.log.part" 2>&1 ||
        { tail -5 "$WORK/export.log.part" >&2; exit 1; }
    mv "$WORK/export.log.part" "$WORK/export.log"
fi

# 2. llama.cpp's perplexity on each, against the F32 base's 24 chunks
kld() { sed -n "s/^$2 *: *\([0-9.]*\).*/\1/p" "$WORK/kld_$1.log"; }
for m in $(echo "$METHODS" | tr , ' ') rtn-rechosen rtn-searched; do
    if [ -z "$RESUME" ] || [ ! -f "$WORK/kld_$m.log" ]; then
        say "llama-perplexity on $(basename "$(file "$m")") ..."
        OMP_WAIT_POLICY=PASSIVE "$BIN/llama-perplexity" -m "$(file "$m")" -f "$WIKI" -c 512 -t "$THREADS" \
            $NO_REPACK --kl-divergence-base "$BASE" --kl-divergence >"$WORK/kld_$m.log.part" 2>&1 ||
            { tail -5 "$WORK/kld_$m.log.part" >&2; exit 1; }
        mv "$WORK/kld_$m.log.part" "$WORK/kld_$m.log"
    fi
done

# 3. one table
val() { sed -n "s/^$1 //p" "$VEC"; }
f32=$(val kld_f32_ppl)
row() { awk -v n="$1" -v p="$2" -v k="$3" -v t="$4" -v f="$f32" \
    'BEGIN { printf "| %s | %.3f (%+.1f%%) | %.4f | %.2f%% |\n", n, p, 100 * (p / f - 1), k, t }'; }
echo "llama-perplexity -c 512, WikiText-2 test, first 24 chunks; KL and top-1 vs the all-F32 model (F32 PPL $f32)"
echo "calibration of the w4a8 rows: $(sed -n 's/^calibrating on \(.*\) \.\.\.$/\1/p' "$WORK/export.log" | head -1)"
echo
echo "| file | PPL | KL vs F32 | same top-1 |"
echo "| --- | ---: | ---: | ---: |"
row "llama.cpp Q4_0" "$(val kld_q4_0_ppl)" "$(val kld_q4_0_mean)" "$(val kld_q4_0_same_top1_pct)"
row "llama.cpp Q4_0 + imatrix (TinyStories)" "$(val kld_q4_0_imatrix_ppl)" "$(val kld_q4_0_imatrix_mean)" \
    "$(val kld_q4_0_imatrix_same_top1_pct)"
row "llama.cpp Q4_0 + imatrix, --pure" "$(val kld_q4_0_imatrix_pure_ppl)" "$(val kld_q4_0_imatrix_pure_mean)" \
    "$(val kld_q4_0_imatrix_pure_same_top1_pct)"
for m in $(echo "$METHODS" | tr , ' ') rtn-rechosen rtn-searched; do
    row "w4a8 $m Q4_0" "$(kld "$m" 'Mean PPL(Q)')" "$(kld "$m" 'Mean *KLD')" "$(kld "$m" 'Same top p')"
done
echo
grep '^exported\|^fp16 scales\|^quantized' "$WORK/export.log"
