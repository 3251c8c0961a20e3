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

.PHONY: all test check test-compilers demo clean
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

demo: build/quickstart
	./build/quickstart

clean:
	rm -rf build
