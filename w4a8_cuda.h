/* w4a8_cuda.h - the CUDA companion of w4a8.h: W4A8 layers on NVIDIA GPUs
   with int8 tensor cores (sm_80 and newer).

   Compile w4a8_cuda.cu with nvcc (see `make cuda`) and link it with the file
   that defines W4A8_IMPLEMENTATION. The functions are C, callable from C or
   C++; this header needs no CUDA header (streams are passed as void *).

       w4a8_cuda_layer *dl = NULL;
       size_t ws_bytes;
       void *ws;
       w4a8_cuda_upload(layer, &dl);                  // once: weights repacked for the GPU
       w4a8_cuda_workspace_size(dl, M, &ws_bytes);
       cudaMalloc(&ws, ws_bytes);
       w4a8_cuda_forward(dl, dX, W4A8_CUDA_F16, M, dY, W4A8_CUDA_F32, ws, ws_bytes, stream);
       w4a8_cuda_forward_status(dl, ws, M, stream);   // when you want to know about NaN/Inf
       w4a8_cuda_free(dl);

   A forward computes exactly what w4a8_layer_forward computes: same int8
   codes, same int32 group sums, same float operations in the same order, so
   float32 outputs are bit-identical to the CPU's and half outputs are the
   CPU's float rounded to nearest. Half inputs are widened to float first.

   Forwards are asynchronous on the given stream. A token with NaN or Inf
   makes the forward write nothing to Y (as on the CPU); the launch itself
   cannot know, so w4a8_cuda_forward_status synchronizes the stream and
   returns W4A8_ERR_NONFINITE for it. A failing CUDA call returns
   W4A8_ERR_DEVICE (W4A8_ERR_NOMEM for out of memory, W4A8_ERR_UNSUPPORTED
   for no or too old a GPU) and w4a8_cuda_error_str() names the CUDA error.
   Use a layer on the device that was current when it was uploaded; one
   workspace per concurrent forward. */
#ifndef W4A8_CUDA_H
#define W4A8_CUDA_H

#include "w4a8.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum w4a8_cuda_dtype {
    W4A8_CUDA_F32 = 0, /* float */
    W4A8_CUDA_F16 = 1  /* IEEE half (__half) */
} w4a8_cuda_dtype;

/* Which GEMM kernel runs; AUTO picks by M and the GPU. */
typedef enum w4a8_cuda_kernel {
    W4A8_CUDA_KERNEL_AUTO = 0,
    W4A8_CUDA_KERNEL_SMALL, /* M <= 16: streams the weights, split along K in int32 */
    W4A8_CUDA_KERNEL_MID,   /* mma tiles of 64 x 64 */
    W4A8_CUDA_KERNEL_BIG,   /* mma tiles of 128 x 128 */
    W4A8_CUDA_KERNEL_COUNT
} w4a8_cuda_kernel;

typedef struct w4a8_cuda_layer w4a8_cuda_layer;

/* Copy a layer to the current device. Needs sm_80 or newer. */
w4a8_status w4a8_cuda_upload(const w4a8_layer *layer, w4a8_cuda_layer **out);
/* Device bytes of workspace a forward over M tokens needs. */
w4a8_status w4a8_cuda_workspace_size(const w4a8_cuda_layer *layer, size_t M, size_t *bytes);
/* Y[M][N] = X[M][K] W^T (+ bias) on device pointers, on `stream` (a
   cudaStream_t; NULL is the default stream). */
w4a8_status w4a8_cuda_forward(const w4a8_cuda_layer *layer, const void *X, w4a8_cuda_dtype x_type, size_t M,
                              void *Y, w4a8_cuda_dtype y_type, void *workspace, size_t workspace_bytes,
                              void *stream);
/* The same with a chosen kernel (tests, tuning). SMALL needs M <= 16. */
w4a8_status w4a8_cuda_forward_kernel(const w4a8_cuda_layer *layer, const void *X, w4a8_cuda_dtype x_type,
                                     size_t M, void *Y, w4a8_cuda_dtype y_type, void *workspace,
                                     size_t workspace_bytes, void *stream, w4a8_cuda_kernel kernel);
/* Waits for `stream`; W4A8_ERR_NONFINITE if the last forward with this
   workspace and M saw NaN or Inf (and so left Y untouched). */
w4a8_status w4a8_cuda_forward_status(const w4a8_cuda_layer *layer, const void *workspace, size_t M, void *stream);
void w4a8_cuda_free(w4a8_cuda_layer *layer);
/* The CUDA error behind this thread's last W4A8_ERR_DEVICE/NOMEM/UNSUPPORTED
   from a w4a8_cuda_ function ("no error" if none). Never NULL. */
const char *w4a8_cuda_error_str(void);

#ifdef __cplusplus
}
#endif
#endif /* W4A8_CUDA_H */
