# w4a8 build. `make test` is what CI runs; `make demo` is the main demo.
CC      ?= cc
CXX     ?= c++
WARN     = -Wall -Wextra -Wpedantic -Werror
# -ffp-contract=off: no fused multiply-add anywhere we compute a reference.
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c99 -ffp-contract=off -fopenmp $(WARN)
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++11 -ffp-contract=off -fopenmp $(WARN)
LDLIBS   = -lm
# Debian's libstb-dev (PNG for the heatmap tool, decoding in its tests).
STB_LIBS = -lstb
SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

TEST_SRC = tests/test_main.c tests/test_core.c tests/test_kernels.c tests/test_methods.c tests/compile_c.c \
           tests/compile_nosimd.c tests/test_heatmap.c tests/test_cuda_layout.c tests/test_llama2.c tests/test_qat.c
LLAMA_HDR = $(wildcard examples/llama/*.h)
TEST_HDR = w4a8.h w4a8_cuda_layout.h tests/test.h tests/smoke.h tests/cuda_layers.h tools/w4a8_heatmap.c \
           $(LLAMA_HDR)

# CUDA (optional): nvcc from PATH, else /usr/local/cuda. sm_80 and sm_90
# code, plus sm_90 PTX for newer GPUs. -fmad=false is a second guard: the
# kernels already spell every float operation with __fmul_rn/__fadd_rn.
NVCC    ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
NVARCH   = -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
           -gencode arch=compute_90,code=compute_90
NVFLAGS ?= -O3
NVFLAGS += -std=c++17 $(NVARCH) -fmad=false --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror,-fopenmp
CUDA_HDR = w4a8.h w4a8_cuda.h w4a8_cuda_layout.h

.PHONY: all deps test check test-compilers demo bench test-neon clean cuda test-cuda bench-cuda
all: deps
	$(MAKE) --no-print-directory build/test_main build/quickstart build/w4a8_heatmap build/llama_w4a8 build/llama_qat

build:
	@mkdir -p build

# The Debian packages the tests need (clang, libomp-dev, libstb-dev), installed
# with apt-get when missing, so that `make test` is all a fresh machine needs.
deps:
	@sh tools/install_deps.sh

build/test_main: $(TEST_SRC) tests/compile_cpp.cpp $(TEST_HDR) | build
	$(CXX) $(CXXFLAGS) -c tests/compile_cpp.cpp -o build/compile_cpp.o
	$(CC) $(CFLAGS) $(TEST_SRC) build/compile_cpp.o -o $@ $(LDLIBS) $(STB_LIBS) -lstdc++

build/test_san: $(TEST_SRC) tests/compile_cpp.cpp $(TEST_HDR) | build
	$(CXX) $(CXXFLAGS) $(SAN) -c tests/compile_cpp.cpp -o build/compile_cpp_san.o
	$(CC) $(CFLAGS) $(SAN) $(TEST_SRC) build/compile_cpp_san.o -o $@ $(LDLIBS) $(STB_LIBS) -lstdc++

build/quickstart: examples/quickstart.c w4a8.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

build/w4a8_heatmap: tools/w4a8_heatmap.c $(LLAMA_HDR) w4a8.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS) $(STB_LIBS)

build/llama_w4a8: examples/llama_w4a8.c $(LLAMA_HDR) w4a8.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

build/llama_qat: examples/llama_qat.c $(LLAMA_HDR) w4a8.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

# Everything: both compilers warning-free, the suite plain and under sanitizers;
# where nvcc is, the CUDA build and its device tests (which say "no GPU" without one).
# The CUDA part runs first so that the suite's own "N passed, N failed"
# (under the sanitizers) is the last line.
test: deps
	$(MAKE) --no-print-directory test-compilers build/test_main build/w4a8_heatmap build/llama_w4a8 build/llama_qat
ifneq ($(NVCC),)
	$(MAKE) --no-print-directory test-cuda
endif
	./build/test_main
	$(MAKE) --no-print-directory check

# The suite under AddressSanitizer + UndefinedBehaviorSanitizer.
check: build/test_san
	ASAN_OPTIONS=detect_leaks=1 ./build/test_san

# The header as C99 and C++ with gcc and clang, -Werror.
test-compilers: | build
	@for cc in gcc clang; do for std in c99 c11; do \
	  echo "$$cc -std=$$std"; \
	  $$cc -std=$$std -ffp-contract=off $(WARN) -fsyntax-only tests/compile_c.c || exit 1; done; done
	@for cxx in g++ clang++; do for std in c++11 c++17; do \
	  echo "$$cxx -std=$$std"; \
	  $$cxx -std=$$std -ffp-contract=off $(WARN) -fsyntax-only tests/compile_cpp.cpp || exit 1; done; done
	@echo "clang -std=c99 tools/w4a8_heatmap.c"
	@clang -std=c99 -ffp-contract=off $(WARN) -fsyntax-only tools/w4a8_heatmap.c
	@for opt in W4A8_NO_SIMD W4A8_NO_AVX2 W4A8_NO_AVX512; do \
	  echo "gcc, clang, g++, clang++ -D$$opt"; \
	  for cc in gcc clang; do $$cc -std=c99 -D$$opt -ffp-contract=off $(WARN) -fsyntax-only tests/compile_c.c || exit 1; done; \
	  for cxx in g++ clang++; do $$cxx -std=c++11 -D$$opt -ffp-contract=off $(WARN) -fsyntax-only tests/compile_cpp.cpp || exit 1; done; done

build/w4a8_cuda.o: w4a8_cuda.cu $(CUDA_HDR) | build
	$(NVCC) $(NVFLAGS) -c $< -o $@

build/test_cuda: tests/test_cuda.cu build/w4a8_cuda.o $(CUDA_HDR) tests/test.h tests/cuda_layers.h | build
	$(NVCC) $(NVFLAGS) $< build/w4a8_cuda.o -o $@ -lgomp

build/w4a8_cuda_bench: tools/w4a8_cuda_bench.cu build/w4a8_cuda.o $(CUDA_HDR) | build
	$(NVCC) $(NVFLAGS) $< build/w4a8_cuda.o -o $@ -lcublasLt -lcublas -lgomp

# The CUDA companion, its device tests and its benchmark.
cuda: | build
	@test -n "$(NVCC)" || { echo "make cuda: nvcc not found (PATH or /usr/local/cuda/bin)"; exit 1; }
	$(MAKE) --no-print-directory build/w4a8_cuda.o build/test_cuda build/w4a8_cuda_bench

test-cuda: cuda
	./build/test_cuda

bench-cuda: cuda
	./build/w4a8_cuda_bench

# The demo: every method on a real llama2.c checkpoint over a few windows
# (MODEL=, or the shared stories260K when DATA has it), else the synthetic quickstart.
DATA      ?= ../shared/data
MODEL     ?=
TOKENIZER ?= $(DATA)/tok512.bin
TEXT      ?= $(DATA)/tinystories_valid_first1000.txt
WINDOWS   ?= 8
demo: build/quickstart build/llama_w4a8
	@model="$(MODEL)"; [ -n "$$model" ] || model="$(DATA)/stories260K.bin"; \
	if [ -n "$(MODEL)" ] || [ -f "$$model" ]; then \
	  echo "demo: W4A8 methods on the llama2.c checkpoint $$model, first $(WINDOWS) windows"; \
	  ./build/llama_w4a8 --model "$$model" --tokenizer "$(TOKENIZER)" --text "$(TEXT)" --windows $(WINDOWS); \
	else \
	  echo "demo: no checkpoint at $$model (set MODEL= or DATA=), so the synthetic quickstart"; \
	  ./build/quickstart; \
	fi

# GEMM throughput of every kernel beside the scalar reference and FP32
# (a few minutes; ./build/w4a8_bench --quick takes seconds).
build/w4a8_bench: tools/w4a8_bench.c w4a8.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

bench: build/w4a8_bench
	./build/w4a8_bench

# Optional: the NEON kernel, cross-built for AArch64 with the dot-product
# extension and run under qemu when it is there (Debian: gcc-aarch64-linux-gnu
# g++-aarch64-linux-gnu qemu-user).
A64 ?= aarch64-linux-gnu-
test-neon: | build
	$(A64)g++ $(CXXFLAGS) -march=armv8.2-a+dotprod -c tests/compile_cpp.cpp -o build/compile_cpp_a64.o
	$(A64)gcc $(CFLAGS) -march=armv8.2-a+dotprod -DW4A8_TEST_NO_STB $(filter-out tests/test_heatmap.c,$(TEST_SRC)) \
	  build/compile_cpp_a64.o -o build/test_a64 $(LDLIBS) -lstdc++
	@if command -v qemu-aarch64 >/dev/null; then qemu-aarch64 -L /usr/aarch64-linux-gnu build/test_a64; \
	else echo "qemu-aarch64 not found: built build/test_a64, not run"; fi

clean:
	rm -rf build
