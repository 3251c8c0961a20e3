#!/bin/sh
# ggml's Q4_0 matrix product on this machine, for the README's side-by-side
# with `make bench`: fetches llama.cpp's ggml as vendored by llama-cpp-python
# (sources from PyPI, or the sdist tools/llama_cpp.sh already fetched), builds
# it (OpenMP) and builds tools/ggml_bench.c against it and runs it. Needs
# cmake, g++ and pip; not part of `make test`.
# Usage: [GGML_ISA=native|avx2] tools/ggml_bench.sh [threads] [N K]
#   native (default): GGML_NATIVE, what this CPU has (AVX-512 VNNI on Zen 4)
#   avx2: GGML_NATIVE off, AVX/AVX2/FMA/F16C only, the code an AVX2-only CPU
#         runs; a separate build directory, so both can sit side by side.
set -e
VERSION=0.3.36
ISA=${GGML_ISA:-native}
WORK=${GGML_WORK:-build/ggml}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/w4a8/llama.cpp-$VERSION
SRC=$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp/ggml
BUILD=$WORK/build-$ISA
case $ISA in
native) FLAGS="-DGGML_NATIVE=ON" ;;
avx2) FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF" ;;
*) echo "GGML_ISA must be native or avx2" >&2; exit 2 ;;
esac
mkdir -p "$WORK"
if [ ! -d "$SRC" ]; then
    if [ -f "$CACHE/llama_cpp_python-$VERSION.tar.gz" ]; then
        cp "$CACHE/llama_cpp_python-$VERSION.tar.gz" "$WORK/"
    else
        pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK"
    fi
    tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
    touch "$SRC/ggml.pc.in" # the PyPI sources lack it; only pkg-config needs it
fi
if [ ! -f "$BUILD/src/libggml-cpu.a" ]; then
    echo "building ggml ($ISA) in $BUILD (a few minutes; log in $BUILD.log)" >&2
    # shellcheck disable=SC2086
    { cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF $FLAGS \
          -DGGML_OPENMP=ON -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF &&
      cmake --build "$BUILD" -j "$(nproc)"; } >"$BUILD.log" 2>&1 ||
        { tail -20 "$BUILD.log"; exit 1; }
fi
L=$BUILD/src
cc -O2 -std=c11 -Wall -Wextra -I"$SRC/include" tools/ggml_bench.c \
    "$L/libggml.a" "$L/libggml-cpu.a" "$L/libggml-base.a" -o "$BUILD/ggml_bench" -lstdc++ -lm -fopenmp -lpthread
echo "ggml ($ISA build)"
"$BUILD/ggml_bench" "$@"
