/* The one test runner: every suite, then "N passed, N failed, N skipped". */
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "test.h"

int test_passed, test_failed, test_check_failed, test_skipped;

static void test_compile_c_static(void) { CHECK(compile_c_smoke() == 0); }
static void test_compile_cpp_static(void) { CHECK(compile_cpp_smoke() == 0); }

int main(void) {
    printf("w4a8 %s tests\n", w4a8_version());
    tests_core();
    tests_kernels();
    tests_methods();
    tests_gemm();
    tests_rotate();
#ifndef W4A8_TEST_NO_STB /* the AArch64 cross build has no libstb */
    tests_heatmap();
#endif
    tests_cuda_layout();
    tests_llama2();
    tests_harden();
    tests_gguf();
    tests_bpe();
    tests_qat();
    RUN(test_compile_c_static);
    RUN(test_compile_cpp_static);
    return test_summary();
}
