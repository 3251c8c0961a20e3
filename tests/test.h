/* A tiny test framework: CHECK records a failure and goes on; RUN runs one
   test and counts it passed when none of its checks failed; RUN_UNLESS
   counts it skipped instead when there is a reason not to run it (no data,
   no GPU). A skip is never a pass: the runner's last line counts both. */
#ifndef W4A8_TEST_H
#define W4A8_TEST_H

#include <stdint.h>
#include <stdio.h>

extern int test_passed, test_failed, test_check_failed, test_skipped;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            test_check_failed++;                                                 \
            printf("    FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                        \
    } while (0)

/* A status check that prints what came back. */
#define CHECK_ST(expr, want)                                                     \
    do {                                                                         \
        w4a8_status got_ = (expr);                                               \
        if (got_ != (want)) {                                                    \
            test_check_failed++;                                                 \
            printf("    FAIL %s:%d: %s gave \"%s\", want \"%s\"\n", __FILE__, __LINE__, #expr, \
                   w4a8_status_str(got_), w4a8_status_str(want));                \
        }                                                                        \
    } while (0)

/* A status check for examples/llama/ (llama_status) that prints what came back. */
#define CHECK_LL(expr, want)                                                                       \
    do {                                                                                           \
        llama_status got_ = (expr);                                                                \
        if (got_ != (want)) {                                                                      \
            test_check_failed++;                                                                   \
            printf("    FAIL %s:%d: %s gave \"%s\", want \"%s\"\n", __FILE__, __LINE__, #expr,      \
                   llama_status_str(got_), llama_status_str(want));                                \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                  \
    do {                                                                         \
        int before_ = test_check_failed;                                         \
        fn();                                                                    \
        if (test_check_failed == before_) test_passed++;                         \
        else { test_failed++; printf("FAILED %s\n", #fn); }                      \
    } while (0)

/* why: NULL to run fn, else the reason it is skipped (the suite prints it once). */
#define RUN_UNLESS(why, fn)                                                      \
    do {                                                                         \
        if (why) test_skipped++;                                                 \
        else RUN(fn);                                                            \
    } while (0)

/* The runner's last line, and its exit status. */
static inline int test_summary(void) {
    printf("%d passed, %d failed, %d skipped\n", test_passed, test_failed, test_skipped);
    return test_failed ? 1 : 0;
}

/* Deterministic test data. */
static inline uint64_t test_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [-1, 1). */
static inline float test_uniform(uint64_t *s) {
    return (float)((double)(test_rand(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
/* Approximately normal (sum of four uniforms). */
static inline float test_normal(uint64_t *s) {
    return (test_uniform(s) + test_uniform(s) + test_uniform(s) + test_uniform(s)) * 0.866f;
}

void tests_core(void);
void tests_heatmap(void);
void tests_cuda_layout(void);
void tests_llama2(void);
void tests_gguf(void);
void tests_bpe(void);
void tests_methods(void);
void tests_kernels(void);
void tests_harden(void);
void tests_gemm(void);
void tests_rotate(void);
void tests_qat(void);
int compile_c_smoke(void);
int compile_cpp_smoke(void);
int nosimd_smoke(void);

#endif
