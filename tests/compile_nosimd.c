/* The header built with W4A8_NO_SIMD as a private copy: only the scalar
   kernel exists, AUTO picks it, and naming any other is refused. */
#define W4A8_STATIC
#define W4A8_NO_SIMD
#define W4A8_IMPLEMENTATION
#include "../w4a8.h"
#include "smoke.h"

int nosimd_smoke(void) {
    w4a8_kernel k = W4A8_KERNEL_COUNT;
    int i;
    if (w4a8_kernel_resolve(W4A8_KERNEL_AUTO, &k) != W4A8_OK || k != W4A8_KERNEL_SCALAR) return 1;
    for (i = W4A8_KERNEL_AVX2; i < W4A8_KERNEL_COUNT; i++)
        if (w4a8_kernel_resolve((w4a8_kernel)i, &k) != W4A8_ERR_UNSUPPORTED) return 2;
    return smoke() ? 3 : 0;
}
