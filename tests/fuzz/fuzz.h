/* fuzz.h - what the libFuzzer targets in tests/fuzz/ share.

   Each target fuzz_NAME.c defines LLVMFuzzerTestOneInput and a seed writer
   `static void fuzz_seeds(const char *dir)` that puts a few small valid
   inputs, made by the code under test itself, into dir (fuzz_seed_file).
   FUZZ_MAIN(fuzz_seeds) then gives the target its `-seed DIR` mode:

       build/fuzz/fuzz_layer -seed DIR    write the seeds and exit
       build/fuzz/fuzz_layer CORPUS DIR   fuzz (any libFuzzer flag works)

   A broken invariant (not only a crash: a round trip that changes bytes,
   kernels that disagree) calls FUZZ_CHECK, which aborts with a message:
   libFuzzer saves the input and the run fails. `make fuzz`. */
#ifndef W4A8_FUZZ_H
#define W4A8_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Helpers a target may leave unused (clang and gcc only: libFuzzer is clang's). */
#define FUZZ_API static __attribute__((unused))

#define FUZZ_CHECK(cond)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* dir/name holds data[0..n). */
FUZZ_API void fuzz_seed_file(const char *dir, const char *name, const void *data, size_t n) {
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write the seed %s\n", path);
        exit(1);
    }
}

/* A deterministic stream of test values (splitmix64). */
FUZZ_API uint64_t fuzz_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
FUZZ_API float fuzz_uniform(uint64_t *s) { return (float)((double)(fuzz_rand(s) >> 11) / 4503599627370496.0 - 1.0); }

/* libFuzzer calls this before it reads its flags: `-seed DIR` is ours. */
#define FUZZ_MAIN(seeds)                                                               \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                                 \
    int LLVMFuzzerInitialize(int *argc, char ***argv) {                                \
        if (*argc == 3 && strcmp((*argv)[1], "-seed") == 0) {                          \
            seeds((*argv)[2]);                                                         \
            exit(0);                                                                   \
        }                                                                              \
        return 0;                                                                      \
    }                                                                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)

#endif /* W4A8_FUZZ_H */
