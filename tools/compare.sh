#!/bin/sh
# The README's speed comparison in one go: the machine's peaks, w4a8 against
# them and OpenBLAS FP32 (build/w4a8_bench --compare, 5 runs each), and ggml
# Q4_0 (tools/ggml_bench.sh, 3 runs each): the AVX2 kernel with OpenBLAS's
# Haswell (AVX2) core and ggml built for AVX2 only; the AVX-512 VNNI kernel,
# where the CPU has it, with OpenBLAS's and ggml's native code. Prints the
# load before and after and, last, w4a8 g32 over ggml per M. Output also in
# build/compare.txt. CPU_TIME=1: every clock is CPU time per thread
# (w4a8_bench --cpu-time, GGML_BENCH_CPU_TIME=1, passive OpenMP waits), an
# estimate of a quiet machine on a shared one.
# Usage: make compare   (or sh tools/compare.sh after make build/w4a8_bench)
set -e
BENCH_ARGS=
if [ "${CPU_TIME:-0}" = 1 ]; then
    BENCH_ARGS=--cpu-time
    export OMP_WAIT_POLICY=passive GGML_BENCH_CPU_TIME=1
fi
OUT=build/compare.txt
mkdir -p build
{
echo "== $(date -u) $(uptime)"
for isa in avx2 native; do
    if [ $isa = native ] && ! grep -q avx512_vnni /proc/cpuinfo; then continue; fi
    for r in 1 2 3; do GGML_ISA=$isa sh tools/ggml_bench.sh 2 | sed "s/^/ggml-$isa /"; done
done
OPENBLAS_CORETYPE=Haswell ./build/w4a8_bench --compare --kernel avx2 $BENCH_ARGS
if grep -q avx512_vnni /proc/cpuinfo; then ./build/w4a8_bench --compare --kernel avx512-vnni $BENCH_ARGS; fi
echo "== $(date -u) $(uptime)"
} 2>&1 | tee "$OUT.tmp"
# w4a8 g32 median over ggml Q4_0 (median of its runs; M = 1: both cold)
awk '
$1 ~ /^ggml-/ && $2 ~ /^[0-9]+$/ { isa = substr($1, 6); v = ($2 == 1) ? $4 : $3; g[isa, $2] = g[isa, $2] " " v }
$1 == "cmp" && $3 == 32 && $2 != "openblas-fp32" { m = ($4 == "1c") ? 1 : $4; if ($4 != "1") w[$2, m] = $5 }
function med(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((n + 1) / 2)] }
END {
    print "\nw4a8 g32 / ggml Q4_0 (2 threads, N = K = 4096; M = 1 cold):"
    split("avx2:avx2 avx512-vnni:native", pairs, " ")
    for (p in pairs) { split(pairs[p], kv, ":"); k = kv[1]; isa = kv[2]
        for (mi = 1; mi <= 4; mi++) { m = (mi == 1) ? 1 : (mi == 2) ? 16 : (mi == 3) ? 128 : 512
            if ((k, m) in w && (isa, m) in g) printf "  %-12s vs ggml %-6s M=%-4s %7.1f / %7.1f = %.2fx\n", k, isa, m, w[k, m], med(g[isa, m]), w[k, m] / med(g[isa, m]) } }
}' "$OUT.tmp" | tee -a "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
