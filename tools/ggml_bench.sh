#!/bin/sh
# ggml's Q4_0 matrix product on this machine, for the README's side-by-side
# with `make bench`: fetches llama.cpp's ggml as vendored by llama-cpp-python
# (sources from PyPI), builds it for this CPU (GGML_NATIVE, OpenMP), builds
# tools/ggml_bench.c against it and runs it. Needs cmake, g++ and pip; not
# part of `make test`. Usage: tools/ggml_bench.sh [threads] [N K]
set -e
VERSION=0.3.36
WORK=${GGML_WORK:-build/ggml}
SRC=$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp/ggml
mkdir -p "$WORK"
if [ ! -d "$SRC" ]; then
    pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK"
    tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
    touch "$SRC/ggml.pc.in" # the PyPI sources lack it; only pkg-config needs it
fi
if [ ! -f "$WORK/build/src/libggml-cpu.a" ]; then
    echo "building ggml in $WORK (a few minutes; log in $WORK/build.log)"
    { cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
          -DGGML_NATIVE=ON -DGGML_OPENMP=ON -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF &&
      cmake --build "$WORK/build" -j "$(nproc)"; } >"$WORK/build.log" 2>&1 ||
        { tail -20 "$WORK/build.log"; exit 1; }
fi
L=$WORK/build/src
cc -O2 -std=c11 -Wall -Wextra -I"$SRC/include" tools/ggml_bench.c \
    "$L/libggml.a" "$L/libggml-cpu.a" "$L/libggml-base.a" -o "$WORK/ggml_bench" -lstdc++ -lm -fopenmp -lpthread
"$WORK/ggml_bench" "$@"
