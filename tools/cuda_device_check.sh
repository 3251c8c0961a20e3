#!/usr/bin/env bash
# The one call to spend on a GPU machine (sm_80 or newer): build, device
# tests against the CPU reference, the benchmark beside cuBLAS, then
# compute-sanitizer (memcheck, racecheck) on a small subset. Everything goes
# to $OUT (default build/device_check): device.txt, test_cuda.txt, bench.md,
# sanitizer logs, summary.txt. About 2-4 minutes on an H100; each step has
# its own timeout, and a failing step does not stop the later ones.
#
#   tools/cuda_device_check.sh                 # or: OUT=/some/dir tools/cuda_device_check.sh
#
# It builds with the machine's nvcc (PATH or /usr/local/cuda/bin). Without
# one, carry build/ from a machine that ran `make cuda`: test_cuda links the
# CUDA runtime statically, the benchmark needs libcublas of the same CUDA,
# and both need a driver for that CUDA (13.0 here: r580 or newer).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/device_check}
mkdir -p "$OUT"
export PATH="$PATH:/usr/local/cuda/bin"
status=0
step() { # name timeout command...: run, log to $OUT/name.txt, remember failures
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*"
  if timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1; then echo "   ok"; else
    echo "   FAILED (exit $?)"; status=1; fi
  tail -n 5 "$OUT/$name.txt" | sed 's/^/   | /'
}
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || true
  nvcc --version 2>&1 | tail -n 2 || true
} | tee "$OUT/device.txt"

if command -v nvcc >/dev/null; then
  step build 300 make -j"$(nproc)" cuda
else # no toolkit here: binaries built elsewhere (carried build/) must do
  echo "== build: no nvcc; using build/ as carried" | tee "$OUT/build.txt"
fi
step test_cuda 240 ./build/test_cuda
step bench 300 ./build/w4a8_cuda_bench "$OUT/bench.md"
if command -v compute-sanitizer >/dev/null; then
  step memcheck 180 compute-sanitizer --tool memcheck --error-exitcode 9 ./build/test_cuda quick
  step racecheck 180 compute-sanitizer --tool racecheck --error-exitcode 9 ./build/test_cuda quick
  step synccheck 180 compute-sanitizer --tool synccheck --error-exitcode 9 ./build/test_cuda quick
else
  echo "compute-sanitizer not found: sanitizer steps skipped" | tee "$OUT/memcheck.txt"
fi

echo
[ -f "$OUT/bench.md" ] && cat "$OUT/bench.md"
{
  echo "device check: $([ $status = 0 ] && echo all steps passed || echo SOME STEPS FAILED)"
  grep -h "passed, .* failed" "$OUT"/test_cuda.txt 2>/dev/null || true
  grep -h "ERROR SUMMARY" "$OUT"/memcheck.txt "$OUT"/racecheck.txt "$OUT"/synccheck.txt 2>/dev/null || true
} | tee "$OUT/summary.txt"
exit $status
