#!/bin/sh
# The race of issue 12: w4a8's engine (build/llama_race: every linear and the
# classifier W4A8, RTN group 32) against llama.cpp's llama-bench on the Q4_0
# file of the same weights (w4a8's RTN export, from tools/export_judge.sh;
# else llama.cpp's own Q4_0), prompt processing 512 tokens and generation
# 128, 1 and 2 threads, with the CPU, its SIMD and the load around each run.
# Usage: tools/race.sh   (REPS=3; Q4_0=FILE to bench another file)
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/w4a8
MODEL=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
Q4_0=${Q4_0:-$CACHE/export/SmolLM2-135M-Instruct.w4a8-rtn.gguf}
[ -f "$Q4_0" ] || Q4_0=$CACHE/SmolLM2-135M-Instruct.Q4_0.gguf
REPS=${REPS:-3}
BIN=$(sh "$ROOT/tools/llama_cpp.sh")
make -C "$ROOT" -s build/llama_race >&2
cpuinfo() { sed -n "s/^$1[[:space:]]*: //p" /proc/cpuinfo | head -1; }
echo "cpu: $(cpuinfo 'model name'), $(nproc) cpus;" \
    "$(cpuinfo flags | tr ' ' '\n' | grep -x 'avx2\|avx512f\|avx512bw\|avx512_vnni\|avx_vnni' | tr '\n' ' ')"
load() { cut -d' ' -f1 /proc/loadavg; }
for t in 1 2; do
    l0=$(load)
    r=$("$ROOT/build/llama_race" --model "$MODEL" --threads $t --reps "$REPS")
    echo "$r (load $l0 to $(load))"
done
# llama.cpp 0.3.36 crashes (SIGSEGV) on CPUs with AMX when it repacks Q4_0
# weights (tools/export_judge.sh): there, it runs them unrepacked.
REPACK=
grep -qw amx_int8 /proc/cpuinfo 2>/dev/null && REPACK="--repack 0"
l0=$(load)
"$BIN/llama-bench" -m "$Q4_0" -p 512 -n 128 -t 1,2 -r "$REPS" $REPACK -o md 2>/dev/null
echo "llama-bench on $(basename "$Q4_0"), $REPS repetitions${REPACK:+, $REPACK (AMX CPU)} (load $l0 to $(load))"
