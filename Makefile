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
SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

TEST_SRC = tests/test_main.c tests/test_core.c tests/compile_c.c tests/test_kernels.c tests/compile_nosimd.c
TEST_HDR = w4a8.h tests/test.h tests/smoke.h

.PHONY: all test check test-compilers demo bench test-neon clean
all: build/test_main build/quickstart

build:
	@mkdir -p build

build/test_main: $(TEST_SRC) tests/compile_cpp.cpp $(TEST_HDR) | build
	$(CXX) $(CXXFLAGS) -c tests/compile_cpp.cpp -o build/compile_cpp.o
	$(CC) $(CFLAGS) $(TEST_SRC) build/compile_cpp.o -o $@ $(LDLIBS) -lstdc++

build/test_san: $(TEST_SRC) tests/compile_cpp.cpp $(TEST_HDR) | build
	$(CXX) $(CXXFLAGS) $(SAN) -c tests/compile_cpp.cpp -o build/compile_cpp_san.o
	$(CC) $(CFLAGS) $(SAN) $(TEST_SRC) build/compile_cpp_san.o -o $@ $(LDLIBS) -lstdc++

build/quickstart: examples/quickstart.c w4a8.h | build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

# Everything: both compilers warning-free, the suite plain and under sanitizers.
test: test-compilers build/test_main
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
	@for opt in W4A8_NO_SIMD W4A8_NO_AVX2 W4A8_NO_AVX512; do \
	  echo "gcc, clang, g++, clang++ -D$$opt"; \
	  for cc in gcc clang; do $$cc -std=c99 -D$$opt -ffp-contract=off $(WARN) -fsyntax-only tests/compile_c.c || exit 1; done; \
	  for cxx in g++ clang++; do $$cxx -std=c++11 -D$$opt -ffp-contract=off $(WARN) -fsyntax-only tests/compile_cpp.cpp || exit 1; done; done

demo: build/quickstart
	./build/quickstart

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
	$(A64)gcc $(CFLAGS) -march=armv8.2-a+dotprod $(TEST_SRC) build/compile_cpp_a64.o -o build/test_a64 $(LDLIBS) -lstdc++
	@if command -v qemu-aarch64 >/dev/null; then qemu-aarch64 -L /usr/aarch64-linux-gnu build/test_a64; \
	else echo "qemu-aarch64 not found: built build/test_a64, not run"; fi

clean:
	rm -rf build
