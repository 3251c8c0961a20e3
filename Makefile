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

# Every tests/test_*.c is part of the one runner (tests/test_main.c calls each suite).
TEST_SRC = $(sort $(wildcard tests/test_*.c)) tests/compile_c.c tests/compile_nosimd.c
LLAMA_HDR = $(wildcard examples/llama/*.h)
TEST_HDR = w4a8.h w4a8_cuda_layout.h tests/test.h tests/smoke.h tests/cuda_layers.h tools/w4a8_heatmap.c \
           tools/output.h $(LLAMA_HDR)

# CUDA (optional): nvcc from PATH, else /usr/local/cuda. sm_80 and sm_90
# code, plus sm_90 PTX for newer GPUs. -fmad=false is a second guard: the
# kernels already spell every float operation with __fmul_rn/__fadd_rn.
NVCC    ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
NVARCH   = -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
           -gencode arch=compute_90,code=compute_90
NVFLAGS ?= -O3
NVFLAGS += -std=c++17 $(NVARCH) -fmad=false --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror,-fopenmp
CUDA_HDR = w4a8.h w4a8_cuda.h w4a8_cuda_layout.h

.PHONY: all deps test check test-compilers demo bench bench-quant compare crosscheck export-judge test-neon clean cuda test-cuda bench-cuda fuzz fuzz-build
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

build/quickstart: examples/quickstart.c w4a8.h tools/output.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

build/w4a8_heatmap: tools/w4a8_heatmap.c $(LLAMA_HDR) w4a8.h tools/output.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS) $(STB_LIBS)

# Tokenizer timing on SmolLM2's vocabulary (tools/bpe_bench.c).
build/bpe_bench: tools/bpe_bench.c $(LLAMA_HDR) w4a8.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

build/llama_w4a8: examples/llama_w4a8.c $(LLAMA_HDR) w4a8.h tools/args.h tools/output.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

build/llama_qat: examples/llama_qat.c $(LLAMA_HDR) w4a8.h tools/args.h tools/output.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

# End-to-end speed of the engine, beside llama-bench (tools/race.sh).
build/llama_race: tools/llama_race.c $(LLAMA_HDR) w4a8.h tools/output.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

# Everything: both compilers warning-free, the suite plain and under sanitizers;
# where nvcc is, the CUDA build and its device tests (which say "no GPU" without one).
# The CUDA part and the programs' own checks (tests/programs.sh) come first,
# so that the suite's own "N passed, N failed, N skipped" (under the
# sanitizers) is the last line. (.ci/run adds a short `make fuzz`.)
test: deps
	$(MAKE) --no-print-directory test-compilers build/test_main build/w4a8_heatmap build/llama_w4a8 \
	  build/quickstart build/w4a8_bench build/llama_qat
ifneq ($(NVCC),)
	$(MAKE) --no-print-directory test-cuda
endif
	sh tests/programs.sh build
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

build/w4a8_cuda_bench: tools/w4a8_cuda_bench.cu build/w4a8_cuda.o $(CUDA_HDR) tools/output.h | build
	$(NVCC) $(NVFLAGS) $< build/w4a8_cuda.o -o $@ -lcublasLt -lcublas -lgomp

# The CUDA companion, its device tests and its benchmark.
cuda: | build
	@test -n "$(NVCC)" || { echo "make cuda: nvcc not found (PATH or /usr/local/cuda/bin)"; exit 1; }
	$(MAKE) --no-print-directory build/w4a8_cuda.o build/test_cuda build/w4a8_cuda_bench

test-cuda: cuda
	./build/test_cuda

bench-cuda: cuda
	./build/w4a8_cuda_bench

# The demo: W4A8 methods on SmolLM2-135M-Instruct (fetched into ~/.cache/w4a8
# by tools/fetch_model.sh, 93 MB, once per machine), scored like llama.cpp's
# perplexity on the first DEMO_CHUNKS chunks of 512 tokens of WikiText-2
# (DATA's copy, else the excerpt in examples/data/). MODEL= runs a llama2.c
# checkpoint (with TOKENIZER= and TEXT=) or another GGUF instead.
DATA      ?= ../shared/data
MODEL     ?=
TOKENIZER ?= $(DATA)/tok512.bin
TEXT      ?= $(DATA)/tinystories_valid_first1000.txt
WINDOWS   ?= 8
DEMO_CHUNKS ?= 2
DEMO_FLAGS  ?= --methods rtn:token,smoothquant:tensor,fptq --calib-seqs 4 --sample 24
demo: build/llama_w4a8
	@if [ -n "$(MODEL)" ] && ! head -c 4 "$(MODEL)" | grep -q GGUF; then \
	  echo "demo: W4A8 methods on the llama2.c checkpoint $(MODEL), first $(WINDOWS) windows"; \
	  ./build/llama_w4a8 --model "$(MODEL)" --tokenizer "$(TOKENIZER)" --text "$(TEXT)" --windows $(WINDOWS); \
	else \
	  model="$(MODEL)"; [ -n "$$model" ] || model=$$(sh tools/fetch_model.sh) || exit 1; \
	  text="$(DATA)/wikitext2_test_raw.txt"; [ -f "$$text" ] || text=examples/data/wikitext2_excerpt.txt; \
	  echo "demo: W4A8 methods on $$model, first $(DEMO_CHUNKS) chunks of 512 tokens of $$text"; \
	  ./build/llama_w4a8 --model "$$model" --text "$$text" --windows $(DEMO_CHUNKS) $(DEMO_FLAGS); \
	fi

# GEMM throughput of every kernel beside the scalar reference and FP32
# (a few minutes; ./build/w4a8_bench --quick takes seconds).
# FP32 beside it is OpenBLAS (Debian libopenblas-dev, installed for the bench only).
build/w4a8_bench: tools/w4a8_bench.c w4a8.h tools/output.h | build
	@sh tools/install_deps.sh bench
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS) -lopenblas

bench: build/w4a8_bench
	./build/w4a8_bench

# Quantization time (calibration, GPTQ, AWQ search/clip/whole, AWQ+GPTQ, AUTO)
# of one 4096x4096 layer, 512 tokens, group 128, 1 and 2 threads, beside the
# PyTorch transcription of the authors' loops when Debian's python3-torch is
# there (PyTorch's elementwise AWQ clip dominates: about 40 minutes on 2 idle
# cores with RUNS=1, over 1.5 hours with RUNS=3).
RUNS ?= 1
build/w4a8_quant_bench: tools/w4a8_quant_bench.c w4a8.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

bench-quant: build/w4a8_quant_bench
	@if /usr/bin/python3 -c 'import torch' 2>/dev/null; then \
	  /usr/bin/python3 tools/torch_ref.py --check build/w4a8_quant_bench && \
	  /usr/bin/python3 tools/torch_ref.py --bench build/w4a8_quant_bench --runs $(RUNS); \
	else echo "bench-quant: no torch for /usr/bin/python3 (Debian python3-torch): w4a8 alone"; \
	  ./build/w4a8_quant_bench --runs $(RUNS); fi

# The comparison against the machine's peaks, OpenBLAS and ggml (AVX2 and
# native builds), 5 runs each, as the README's speed table (about 10 minutes
# on 2 quiet cores, the first time longer: it builds ggml twice).
compare: build/w4a8_bench
	sh tools/compare.sh

# What llama.cpp itself says about SmolLM2-135M (its tools built from the
# llama-cpp-python sdist): writes tests/vectors/smollm2_llamacpp.txt and
# prints a table. Not part of `make test`: about half an hour on 2 cores.
crosscheck:
	sh tools/crosscheck.sh

# llama.cpp's perplexity as the judge of w4a8's Q4_0 exports of SmolLM2
# (needs `make crosscheck`'s files). Not part of `make test`.
export-judge:
	sh tools/export_judge.sh

# The cost of the online Hadamard transform in a block's forward (seconds).
build/rotate_bench: tools/rotate_bench.c w4a8.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

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

# Fuzzing: every tests/fuzz/fuzz_*.c is one libFuzzer target (clang, ASan +
# UBSan). Each writes its own seeds (`-seed DIR`), then runs FUZZ_SECONDS
# from them, keeping what it finds in build/fuzz/NAME.corpus; a crash or a
# broken invariant stops make (the input is saved as build/fuzz/NAME-crash-*).
# FUZZ_RUNS=N runs N inputs from a fixed seed instead: the same inputs on
# every machine, so that CI's verdict does not depend on luck or speed.
FUZZ_SECONDS ?= 60
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS) -seed=1,-max_total_time=$(FUZZ_SECONDS))
FUZZ_SRC   = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN   = $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_FLAGS = -std=c99 -O1 -g -ffp-contract=off $(WARN) -fsanitize=fuzzer,address,undefined \
             -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_HDR   = w4a8.h $(LLAMA_HDR) tools/w4a8_heatmap.c tools/output.h $(wildcard tests/fuzz/*.h)

build/fuzz/%: tests/fuzz/%.c $(FUZZ_HDR) | build
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) $< -o $@ $(LDLIBS) $(STB_LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@for f in $(FUZZ_BIN); do \
	  rm -rf $$f.seed && mkdir -p $$f.seed $$f.corpus && $$f -seed $$f.seed || exit 1; \
	  echo "$$f: $(FUZZ_LIMIT)"; \
	  $$f $(FUZZ_LIMIT) -print_final_stats=1 -artifact_prefix=$$f- $$f.corpus $$f.seed \
	    2>$$f.log || { tail -40 $$f.log; exit 1; }; \
	  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" $$f.log; done

clean:
	rm -rf build
