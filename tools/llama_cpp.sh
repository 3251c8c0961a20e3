#!/bin/sh
# Builds llama.cpp's own tools (llama-tokenize, llama-perplexity, llama-quantize,
# llama-imatrix, llama-bench) from the llama-cpp-python sdist on PyPI, for
# checking and racing w4a8 against them; never part of the library. Built once
# per machine into a cache shared by every clone. Prints the bin directory.
# Usage: tools/llama_cpp.sh   (LLAMA_CPP_DIR= to move the cache)
set -e
VERSION=0.3.36
DIR=${LLAMA_CPP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/w4a8/llama.cpp-$VERSION}
SRC=$DIR/llama_cpp_python-$VERSION/vendor/llama.cpp
BIN=$DIR/build/bin
TOOLS="llama-tokenize llama-perplexity llama-quantize llama-imatrix llama-bench"
mkdir -p "$DIR"
if [ ! -d "$SRC" ]; then
    pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$DIR" >&2
    tar -xzf "$DIR/llama_cpp_python-$VERSION.tar.gz" -C "$DIR"
    touch "$SRC/ggml/ggml.pc.in" # the PyPI sources lack it; only pkg-config needs it
fi
missing=
for t in $TOOLS; do [ -x "$BIN/$t" ] || missing=1; done
if [ -n "$missing" ]; then
    echo "building llama.cpp's tools in $DIR (10-20 minutes on 2 cores; log in $DIR/build.log)" >&2
    { cmake -S "$SRC" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
          -DGGML_NATIVE=ON -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
          -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON &&
      for t in $TOOLS; do cmake --build "$DIR/build" -j "$(nproc)" --target "$t" || exit 1; done; } \
        >"$DIR/build.log" 2>&1 || { tail -20 "$DIR/build.log" >&2; exit 1; }
fi
echo "$BIN"
