/* w4a8.h - v0.1.0 - W4A8 quantization of LLM linear layers - MIT or public domain (see end of file)

   4-bit weights, 8-bit activations, for the linear layers of large language
   models. One header: declarations always, the implementation where you write

       #define W4A8_IMPLEMENTATION
       #include "w4a8.h"

   in exactly one C or C++ file.

QUICK START
   ```c
   w4a8_config cfg;
   w4a8_calib *calib = NULL;
   w4a8_layer *layer = NULL;
   w4a8_config_init(&cfg);                     // RTN, group 128, per-token A8
   cfg.method = W4A8_METHOD_AWQ;               // or SMOOTHQUANT, GPTQ, FPTQ, AUTO
   cfg.group_size = 64;
   w4a8_calib_create(K, 1, 512, &calib);       // K inputs, Hessian (GPTQ), keep 512 tokens
   w4a8_calib_add(calib, X_calib, T);          // stream as many batches as you like
   w4a8_layer_quantize(W, N, K, bias, calib, &cfg, &layer);   // W[N][K], bias may be NULL
   w4a8_layer_forward(layer, X, M, Y, NULL, 0);              // X[M][K] -> Y[M][N]
   w4a8_layer_save(layer, "layer.w4a8");
   w4a8_layer_free(layer);
   w4a8_calib_free(calib);
   ```
   Every function returns a w4a8_status; w4a8_status_str() says what it means.
   Check it: the example above leaves that out for brevity only.

BUILD OPTIONS (define before including the implementation)
   W4A8_IMPLEMENTATION     compile the implementation into this file
   W4A8_STATIC             make every function static (several private copies)
   W4A8_MALLOC(sz) / W4A8_FREE(p)
                           allocator, both or neither (default malloc/free)
   W4A8_ASSERT(x)          internal invariants only, never input checks (default assert)
   W4A8_NO_SIMD            compile out every SIMD kernel (scalar reference only)
   W4A8_NO_AVX2            compile out the AVX2 and AVX-VNNI kernels
   W4A8_NO_AVX512          compile out the AVX-512 VNNI kernel
   W4A8_NO_NEON            compile out the NEON kernel
   W4A8_NO_STDIO           drop w4a8_layer_save/w4a8_layer_load (the memory versions stay)
   W4A8_SGEMM(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
                           a row-major BLAS sgemm for the float GEMM of calibration,
                           GPTQ and AWQ under W4A8_KERNEL_AUTO, e.g. cblas_sgemm(
                           CblasRowMajor, ta ? CblasTrans : CblasNoTrans, ...) (default:
                           the header's own; results then are the BLAS's, bits included)
   No option changes a numeric result except by choosing which kernel runs,
   and every kernel is bit-identical to the scalar reference.
   Build with OpenMP (-fopenmp) for threads; the pragmas vanish without it.

DATA FLOW
      float W[N][K]  +  calibration activations X[T][K]
            |
        1 calibrate   w4a8_calib: per-channel max|x| and mean|x|, token count,
            |         optional Hessian H = 2/T X^T X, a reservoir of sample tokens
        2 choose      a method turns statistics into decisions: equalization
            |         scales s[K], the activation mode and its static scale
        3 quantize    W -> 4-bit codes + group scales + zero points
        4 pack        codes -> nibbles (w4a8_pack_int4)
            |
        w4a8_layer    everything inference needs, owned by one struct
            |
        5 multiply    w4a8_layer_forward: X -> int8 (after 1/s), int8 x int4
                      summed in int32 per group, scaled to float once per group

CONVENTIONS
   Shapes: W[N][K] row-major (N outputs, K inputs, PyTorch's Linear.weight),
   X[M][K] (M tokens), Y = X W^T + bias, Y[M][N]. Groups run along K: group g
   of a row holds k in [g*G, min(K, (g+1)*G)); the last group is shorter when
   G does not divide K. W4A8_PER_CHANNEL as group size means one group per row.

   Rounding: round half to even everywhere (nearbyintf in the default rounding
   mode, the SIMD conversions, PyTorch's round). Do not change the FPU
   rounding mode around calls.

   Weights: unsigned codes u in 0..15 and a zero point z per group, so that
   w = scale * (u - z). Symmetric mode fixes z = 8 and puts the group's
   extreme of larger magnitude a on code 0, scale = -a / 8 (ggml's Q4_0
   grid: the step is signed), unless the other side b would pass 7.5 steps,
   then |scale| = |b| / 7.5. Asymmetric mode uses scale = max/15 - min/15 over
   a range stretched to contain 0, z = round(-min / scale) (GPTQ's asymmetric
   grid). Either way every weight lies within half a step of its code. An
   all-zero group gets scale 0 and codes equal to z.

   Activations: symmetric int8 codes in [-127, 127] (never -128, so SIMD
   sign tricks stay exact). Per token: scale = max|x'| / 127, code =
   round(x' * (127 / max|x'|)), where x' = x / s is the equalized input
   (computed as x * (1 / s)). Per tensor: one static scale from calibration,
   code = clamp(round(x' * (1 / scale)), -127, 127): larger values saturate.

   LAYOUT (portable): codes packed two per byte along K, row by row; byte
   [n][k/2] holds code k in its low nibble and k+1 in its high nibble. Rows
   take (K+1)/2 bytes; when K is odd the last high nibble is 0. Scales are
   float [N][groups], zeros uint8 [N][groups].

   ARITHMETIC (what every kernel computes, bit for bit):
       acc_g = sum_{k in g} x_k * u_k  -  z_g * sum_{k in g} x_k     (int32, exact)
       y = 0; for g in order: t = (float)acc_g * scale_g; y = y + t;
       y = y * x_scale;  if bias: y = y + bias_n
   Each line is a separate rounding: no fused multiply-add, whatever the
   compiler flags (the header puts an optimization barrier between product
   and sum). A group may be at most 2^20 long so int32 cannot overflow.

KERNELS
   W4A8_KERNEL_SCALAR is the reference. With GCC >= 11 or Clang >= 13 on
   x86-64 the header also compiles W4A8_KERNEL_AVX2 (maddubs + madd),
   W4A8_KERNEL_AVX_VNNI (256-bit vpdpbusd) and W4A8_KERNEL_AVX512_VNNI
   (512-bit vpdpbusd, needs AVX-512 F, BW and VNNI), each through per-function
   target attributes, so one binary runs on any x86-64 CPU. On AArch64 built
   with the dot-product extension (e.g. -march=armv8.2-a+dotprod) it compiles
   W4A8_KERNEL_NEON (sdot). Other compilers (MSVC) get the scalar kernel only.
   A layer picks its kernel when it is built: AUTO takes the fastest one this
   CPU runs (__builtin_cpu_supports, cpuid for AVX-VNNI); naming one the CPU or
   the build lacks gives W4A8_ERR_UNSUPPORTED. The SIMD kernels need every
   group but the last to be a multiple of 8 long (G % 8 == 0, or one group per
   row): AUTO takes the scalar kernel otherwise, and naming a SIMD kernel gives
   W4A8_ERR_UNSUPPORTED. The layer's activation quantization uses its
   kernel's instruction set too. Every kernel gives the scalar kernel's bits:
   integer sums are exact in any order, and the float steps above run lane by
   lane in the same order. Threads take whole tiles of outputs x tokens.

   LAYOUT (blocked, what every SIMD kernel reads): rows in blocks of 16, the
   last block padded with zero rows. Each block is one contiguous stream of
   64-byte pieces, in K order:
       for each group g:
           f32 scale[16]         the 16 rows' scales of group g
           i32 zero[16]          asymmetric layers only (native byte order)
           for each 8 codes k..k+7 of g, the last 8 zero-padded:
               u8 q[16][4]       q[r][j] = u[r][k+j] | u[r][k+4+j] << 4
   One 64-byte load holds 16 rows x 8 codes: masking the low nibbles gives
   codes k..k+3 of each row in one 32-bit lane, shifting gives k+4..k+7, and
   vpdpbusd multiplies each lane by 4 broadcast activation codes (AVX2 and
   NEON split the piece into 2 or 4 registers). A block takes
   64 * (groups * (1 + asymmetric) + ceil(K / 8)) bytes, 64-byte aligned.
   The layer keeps its scales and zeros in the portable [N][groups] form too;
   w4a8_layer_codes turns any layout back into portable codes.

ERRORS
   Every public function returns w4a8_status and writes results only through
   out-parameters, which it leaves untouched on failure. NaN or Inf in
   weights, activations or calibration data is rejected (W4A8_ERR_NONFINITE).
   Finite inputs can still overflow float in the forward's arithmetic (see
   ARITHMETIC): a product, a sum of groups, x_scale or the bias taking y
   past FLT_MAX gives +-Inf in Y, and overflows of both signs meeting in one
   sum give NaN; the forward returns W4A8_OK, as float arithmetic would.
   Check Y where activations or scales may approach FLT_MAX. (The equalized
   input x * (1/s) is different: per token, its overflow is W4A8_ERR_NONFINITE;
   s >= W4A8_SMOOTH_MIN keeps that for |x| beyond 3e33.)
   No global error state, no abort, no exit.

MEMORY
   Objects (w4a8_layer, w4a8_calib) come from W4A8_MALLOC and each has its
   _free. w4a8_layer_forward does not allocate when given a workspace of
   w4a8_layer_workspace_size() bytes; with NULL it allocates one per call.

THREADS
   No mutable globals. A layer is immutable once built: concurrent forwards
   on one layer are safe with separate workspaces. OpenMP splits output
   columns and tokens, never the reduction over K, so results are identical
   for every thread count.

FILE FORMAT (w4a8_layer_save; version W4A8_FORMAT_VERSION; little-endian)
   offset 0   "W4A8"            magic
          4   u32 version       W4A8_FORMAT_VERSION
          8   u64 N, u64 K, u64 G (group length, K for per-channel)
         32   u32 flags         bit 0 asymmetric, 1 bias, 2 smooth, 3 smooth folded,
                                4 rotate (version 2)
         36   u32 act_mode, f32 act_scale, u32 method
         48   u8  codes[N][(K+1)/2]       portable layout
              f32 scales[N][groups]
              u8  zeros[N][groups]        only when asymmetric
              f32 smooth[K]               only with flag 2
              f32 bias[N]                 only with flag 1
              u64 rotate_seed             only with flag 4
              u32 CRC-32 (IEEE) of every byte before it
   Version 1 files (the same without flag 4) still load.
   The loader checks magic, version, shapes, exact length, checksum and every
   value's range, and returns a W4A8_ERR_FILE_* status otherwise. A file
   loads only when save would write it byte for byte (a per-token file has
   act_scale bits 0; flag 3 needs flag 2; smooth >= W4A8_SMOOTH_MIN). The
   kernel argument is checked before the file (W4A8_ERR_CONFIG or
   W4A8_ERR_UNSUPPORTED); w4a8_layer_load on a directory is W4A8_ERR_FILE_IO.
*/
#ifndef W4A8_H
#define W4A8_H

#include <stddef.h>
#include <stdint.h>

#define W4A8_VERSION_MAJOR 0
#define W4A8_VERSION_MINOR 1
#define W4A8_VERSION_PATCH 0
#define W4A8_VERSION_STRING "0.1.0"
#define W4A8_FORMAT_VERSION 2

#ifndef W4A8_API
#if defined(W4A8_STATIC) && (defined(__GNUC__) || defined(__clang__))
#define W4A8_API static __attribute__((unused)) /* no warning for what a file leaves unused */
#elif defined(W4A8_STATIC)
#define W4A8_API static
#else
#define W4A8_API extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* >>types ------------------------------------------------------------------ */

/* One list gives both the codes and their messages. */
#define W4A8_STATUS_LIST(X)                                                          \
    X(W4A8_OK, "success")                                                            \
    X(W4A8_ERR_NULL_ARG, "a required pointer argument is NULL")                      \
    X(W4A8_ERR_SHAPE, "a size is zero or two sizes do not match")                    \
    X(W4A8_ERR_GROUP_SIZE, "group size must be at least 1 and a group at most 2^20 long") \
    X(W4A8_ERR_NONFINITE, "NaN or Inf in the input")                                 \
    X(W4A8_ERR_RANGE, "a value is outside its allowed range")                        \
    X(W4A8_ERR_OVERFLOW, "a size product overflows size_t")                          \
    X(W4A8_ERR_NOMEM, "out of memory")                                               \
    X(W4A8_ERR_CONFIG, "a config field is out of range")                             \
    X(W4A8_ERR_NEED_CALIB, "this method or activation mode needs calibration data")  \
    X(W4A8_ERR_SINGULAR_HESSIAN, "the Hessian stays singular after maximal damping") \
    X(W4A8_ERR_UNSUPPORTED, "not supported by this CPU or this build")               \
    X(W4A8_ERR_WORKSPACE, "the workspace is smaller than w4a8_layer_workspace_size") \
    X(W4A8_ERR_FILE_IO, "the file could not be opened, read or written")             \
    X(W4A8_ERR_FILE_TRUNCATED, "the file is shorter than its header says")           \
    X(W4A8_ERR_FILE_FORMAT, "not a w4a8 layer file, or a field is invalid")          \
    X(W4A8_ERR_FILE_VERSION, "the file has a format version this build cannot read") \
    X(W4A8_ERR_FILE_CHECKSUM, "the file's checksum does not match: it is corrupted") \
    X(W4A8_ERR_DEVICE, "a CUDA call failed (w4a8_cuda_error_str names the error)") \
    X(W4A8_ERR_ZERO_CALIB, "every calibration input is zero: GPTQ would zero every weight")

#define W4A8__STATUS_ENUM(name, msg) name,
typedef enum w4a8_status { W4A8_STATUS_LIST(W4A8__STATUS_ENUM) W4A8_STATUS_COUNT } w4a8_status;
#undef W4A8__STATUS_ENUM

/* Never NULL; unknown codes give "unknown status". */
W4A8_API const char *w4a8_status_str(w4a8_status status);
W4A8_API const char *w4a8_version(void);

/* One group spanning all of K. */
#define W4A8_PER_CHANNEL ((size_t)-1)
/* Longest group the int32 accumulators allow (127 * 15 * 2^20 < 2^31). */
#define W4A8_MAX_GROUP ((size_t)1 << 20)
/* Smallest equalization value s a layer takes (the floor the methods use):
   x * (1/s) stays finite for |x| < 3e33. */
#define W4A8_SMOOTH_MIN 1e-5f

typedef enum w4a8_act_mode {
    W4A8_ACT_PER_TOKEN = 0,  /* dynamic: one scale per token, computed on the fly */
    W4A8_ACT_PER_TENSOR = 1  /* static: one calibrated scale for every token */
} w4a8_act_mode;

typedef enum w4a8_method {
    W4A8_METHOD_RTN = 0,
    W4A8_METHOD_SMOOTHQUANT,
    W4A8_METHOD_AWQ,
    W4A8_METHOD_GPTQ,
    W4A8_METHOD_FPTQ,
    W4A8_METHOD_AUTO,
    W4A8_METHOD_COUNT
} w4a8_method;

typedef enum w4a8_kernel {
    W4A8_KERNEL_AUTO = 0,       /* the fastest this CPU runs */
    W4A8_KERNEL_SCALAR,         /* the reference; always available */
    W4A8_KERNEL_AVX2,           /* x86-64 AVX2: maddubs + madd */
    W4A8_KERNEL_AVX_VNNI,       /* x86-64 AVX2 + AVX-VNNI: 256-bit vpdpbusd */
    W4A8_KERNEL_AVX512_VNNI,    /* x86-64 AVX-512 F/BW/VNNI: 512-bit vpdpbusd */
    W4A8_KERNEL_NEON,           /* AArch64 with the dot-product extension: sdot */
    W4A8_KERNEL_COUNT
} w4a8_kernel;

/* "scalar", "avx2", ...; never NULL, "unknown kernel" for bad values. */
W4A8_API const char *w4a8_kernel_name(w4a8_kernel kernel);
/* AUTO becomes the fastest kernel this CPU and build run; a named kernel
   comes back as it is when it runs here, else W4A8_ERR_UNSUPPORTED
   (W4A8_ERR_CONFIG for values outside the enum). */
W4A8_API w4a8_status w4a8_kernel_resolve(w4a8_kernel want, w4a8_kernel *out);

/* Every knob, with its default from w4a8_config_init. */
typedef struct w4a8_config {
    w4a8_method method;     /* W4A8_METHOD_RTN */
    size_t group_size;      /* 128; W4A8_PER_CHANNEL for one group per row */
    int asymmetric;         /* 0: symmetric weights, zero point 8 (AWQ has zero points unless awq_symmetric) */
    w4a8_act_mode act_mode; /* W4A8_ACT_PER_TOKEN */
    float act_scale;        /* 0: per-tensor scale from calibration max|x'| / 127 */
    int fold_smooth;        /* 0: forward divides X by s; 1: the caller folds 1/s upstream */
    int gptq_weights;       /* 0; 1: the weight step of any method is GPTQ (FPTQ+GPTQ, AWQ+GPTQ) */
    /* Method knobs. Defaults are the papers' / reference code's. Every knob is
       checked whatever the method (W4A8_ERR_CONFIG). */
    float sq_alpha;         /* 0.5: SmoothQuant's migration strength in [0, 1]
                               (the reference picks 0.85 for Llama-2) */
    int awq_grid;           /* 20: AWQ tries ratios r = i / awq_grid, i = 0 .. awq_grid - 1 */
    int awq_clip;           /* 1: AWQ's clipping search (skipped for linears with skip_clip) */
    int awq_symmetric;      /* 0; 1: AWQ's weights symmetric too (zero point 8, the grid of RTN
                               and GPTQ), as llama.cpp's Q4_0 needs; its search and clipping
                               still measure on its own grid */
    float gptq_damp;        /* 0.01: lambda in (0, 1], H += lambda * mean(diag H) * I; doubled
                               (up to 1) while the Cholesky factorization fails */
    size_t gptq_block;      /* 128: columns per lazy batch update */
    int gptq_act_order;     /* 0; 1: columns in order of decreasing H_jj. With groups shorter
                               than K it needs gptq_static_groups = 1, so that groups stay
                               contiguous and inference needs no column index */
    int gptq_static_groups; /* 0: each group's scale is fitted when GPTQ reaches it, from the
                               error-compensated weights; 1: from the original weights, first */
    int scale_search;       /* 0: a group's step from its min and max; 1: the best of 19 steps
                               around it for the squared rounding error weighted by the input's
                               H_jj (equal weights when the calibration has no Hessian), each
                               refitted by least squares, as llama.cpp's importance matrix does
                               for Q4_0: in the RTN and GPTQ weight steps of every method (AWQ's
                               asymmetric grid keeps its own); in no paper's method */
    float fptq_low;         /* 15: FPTQ keeps a layer with max|x| below this per-tensor static */
    float fptq_high;        /* 150: ... from here on per-token dynamic; in between LAE + static */
    w4a8_kernel kernel;     /* W4A8_KERNEL_AUTO; also picks the float GEMM of GPTQ and AWQ */
    /* NULL: silent. Else w4a8_quantize_linears (and w4a8_layer_quantize,
       w4a8_quantize_gptq) call progress(progress_user, done, total) from the
       calling thread as work completes: done grows, the last call has done ==
       total. Units are steps of this call (an AWQ ratio, a GPTQ block of
       columns, a linear's weights, an AUTO candidate's scoring). */
    void (*progress)(void *user, size_t done, size_t total);
    void *progress_user;    /* NULL */
} w4a8_config;

W4A8_API w4a8_status w4a8_config_init(w4a8_config *cfg);

/* A quantized linear layer. Read its fields; build it only through the
   functions below, which keep them consistent. */
typedef struct w4a8_layer {
    size_t N, K;            /* outputs, inputs */
    size_t G, groups;       /* group length along K (K if per-channel), ceil(K / G) */
    int asymmetric;         /* 0: every zero point is 8 */
    uint8_t *packed;        /* int4 codes in the layout of `kernel` */
    float *scales;          /* [N][groups] */
    uint8_t *zeros;         /* [N][groups] */
    float *bias;            /* [N] or NULL */
    float *smooth;          /* [K] equalization s (X is divided by it), or NULL */
    float *smooth_inv;      /* [K] 1 / s, what the forward multiplies by, or NULL */
    int smooth_folded;      /* 1: the caller has divided X by s already */
    w4a8_act_mode act_mode;
    float act_scale;        /* per-tensor static scale; 0 when per token */
    w4a8_method method;     /* what produced it */
    w4a8_kernel kernel;     /* the GEMM it runs, resolved (never AUTO) */
    int rotate;             /* 1: the forward multiplies X by Q first (>>rotate) */
    uint64_t rotate_seed;
    void *rotate_plan;      /* private: the transform's tables */
} w4a8_layer;

/* >>fgemm ------------------------------------------------------------------ */

/* The float GEMM that calibration, GPTQ and AWQ run on (and you may too):
   C[M][N] = alpha op(A) op(B) + beta C, row-major. op(A) is A[M][K] (lda >= K),
   or with trans_a the transpose of A[K][M] (lda >= M); op(B) is B[K][N]
   (ldb >= N), or with trans_b the transpose of B[N][K] (ldb >= K); ldc >= N.
   beta = 0 never reads C. Every output is summed in one order whatever the
   kernel and the thread count: k ascending in blocks of 256, each block a
   chain of fused multiply-adds from 0, then C = (beta C) + alpha * block_sum
   block after block; so every kernel gives the same bits (the scalar one
   through fmaf). kernel as in w4a8_config: SCALAR is the reference, AVX2 and
   AVX_VNNI run AVX2 + FMA, AVX512_VNNI AVX-512F, NEON NEON; AUTO the fastest
   (or W4A8_SGEMM, see BUILD OPTIONS). NaN or Inf in A or B propagate to C. */
W4A8_API w4a8_status w4a8_gemm_f32(w4a8_kernel kernel, size_t M, size_t N, size_t K, float alpha,
                                   const float *A, size_t lda, int trans_a, const float *B, size_t ldb,
                                   int trans_b, float beta, float *C, size_t ldc);

/* >>calibrate -------------------------------------------------------------- */

/* Statistics of one layer input, streamed batch by batch. */
typedef struct w4a8_calib {
    size_t K;               /* channels */
    size_t tokens;          /* tokens seen */
    float *absmax;          /* [K] max |x| */
    double *abssum;         /* [K] sum |x|; mean |x| = abssum / tokens */
    double *xtx;            /* [K][K] upper triangle of sum x x^T over the tokens not pending, or NULL */
    float *pending;         /* [256][K] the last tokens seen, not yet in xtx (with xtx) */
    size_t pending_rows;    /* xtx takes tokens 256 at a time, whatever the batches */
    float *sample;          /* [sample_cap][K] reservoir of tokens, or NULL */
    size_t sample_cap, sample_rows;
    uint64_t rng;           /* fixed seed: the reservoir is deterministic */
} w4a8_calib;

/* with_hessian: also accumulate X^T X (K*K doubles, summed in float over
   each run of 256 tokens of the stream, then in double). sample_cap: keep up to
   that many tokens, drawn uniformly by reservoir sampling, for methods that
   measure output error (AWQ, AUTO); 0 keeps none. */
W4A8_API w4a8_status w4a8_calib_create(size_t K, int with_hessian, size_t sample_cap, w4a8_calib **out);
/* X[T][K]. A batch with NaN or Inf is rejected whole and leaves the stats as they were. */
W4A8_API w4a8_status w4a8_calib_add(w4a8_calib *calib, const float *X, size_t T);
/* H[K][K] = 2/T X^T X, symmetric. Needs with_hessian and at least one token. */
W4A8_API w4a8_status w4a8_calib_hessian(const w4a8_calib *calib, double *H);
W4A8_API void w4a8_calib_free(w4a8_calib *calib);

/* >>methods ---------------------------------------------------------------- */

/* A method turns calibration statistics into decisions for the linears that
   share one input: an equalization s[K] (X is divided by s, W's columns
   multiplied by it: exact in float up to rounding), the activation mode and
   its static scale, and the 4-bit weights. Notation: Y = X W^T, W[N][K].

   RTN          no equalization; round-to-nearest on GPTQ's grid (>>quantize).
   SMOOTHQUANT  s_j = max|X_j|^a / max|W_j|^(1-a), a = cfg.sq_alpha, the weight
                max over every linear that shares the input; then RTN.
   AWQ          s_j = max(mean|X_j|^r, 1e-4) / sqrt(max(s) min(s)), r from a
                grid search minimizing the output error of Q(W s)/s (weights
                only, activations in float) on the calibration sample; then a
                clipping search per row and group (not for skip_clip linears);
                then RTN on AWQ's own grid (w4a8_quantize_rtn_awq) which, unlike
                GPTQ's, does not stretch a group's [min, max] to contain 0. AWQ
                has zero points (its reference supports nothing else;
                its scaling makes groups lopsided, which symmetric grids waste
                half their levels on): cfg.asymmetric does not apply to it;
                cfg.awq_symmetric = 1 makes it symmetric (for llama.cpp's Q4_0).
   GPTQ         no equalization; GPTQ's error-compensating weights from the
                Hessian 2/T X^T X (the calibration needs with_hessian).
   FPTQ         from v = max|X|: v < fptq_low per-tensor static; fptq_low <= v
                < fptq_high LAE then per-tensor static; v >= fptq_high per-token
                dynamic, no equalization. cfg.act_mode does not apply to it.
                Then group-wise RTN.
   AUTO         every method above, and SmoothQuant, AWQ and FPTQ with GPTQ
                weights, on the calibration sample; keeps the lowest output
                error (report.loss). With cfg.gptq_weights only the GPTQ ones.
   cfg.gptq_weights = 1 makes the weight step GPTQ for any method (on W s,
   with the Hessian of X / s); AWQ keeps its clipping and uses GPTQ's
   asymmetric grid. The per-tensor static
   scale is max_j max|X_j| / s_j / 127, or cfg.act_scale when that is > 0. */

/* One of the linears that share an input (q/k/v, or gate/up): they share one
   calibration, one equalization and one activation scale. */
typedef struct w4a8_linear {
    const float *W;         /* [N][K] */
    size_t N;
    const float *bias;      /* [N] or NULL */
    int skip_clip;          /* 1: no AWQ clipping search (AWQ skips q and k) */
} w4a8_linear;

/* FPTQ's layer-wise activation strategy. */
typedef enum w4a8_fptq_strategy {
    W4A8_FPTQ_NONE = 0,     /* FPTQ did not run */
    W4A8_FPTQ_STATIC,       /* v < fptq_low: per-tensor static int8 */
    W4A8_FPTQ_LAE_STATIC,   /* fptq_low <= v < fptq_high: LAE, then per-tensor static */
    W4A8_FPTQ_PER_TOKEN     /* v >= fptq_high: per-token dynamic, no equalization */
} w4a8_fptq_strategy;

/* What a method decided, for the user to see. */
typedef struct w4a8_report {
    w4a8_method method;     /* what ran; for AUTO, the winner (RTN with gptq_weights is GPTQ) */
    int gptq_weights;       /* 1: GPTQ did the weight step */
    w4a8_act_mode act_mode; /* the activation mode the layers got */
    int equalized;          /* 1: the layers carry an equalization vector */
    double loss;            /* mean squared output error, W4A8 vs FP32, over the
                               calibration sample of every linear; -1 without one */
    float act_scale;        /* the layers' per-tensor scale; 0 per token */
    float act_absmax;       /* v = max|x| over the calibration data; 0 without it */
    w4a8_fptq_strategy fptq_strategy; /* FPTQ's choice; W4A8_FPTQ_NONE for other methods */
    float awq_ratio;        /* AWQ's chosen r; -1 when AWQ did not run */
    double awq_loss;        /* AWQ's search loss at that r (weights only); -1 without AWQ */
    double gptq_damp;       /* the lambda GPTQ ended with; 0 without GPTQ */
    double gptq_loss;       /* GPTQ's reconstruction loss: mean over every calibration token
                               and output of (x.w - x.q)^2, activations in float; -1 without */
    double auto_loss[W4A8_METHOD_COUNT][2]; /* AUTO: loss of [method][gptq_weights]; -1 when
                               not tried (GPTQ is [W4A8_METHOD_GPTQ][1]) */
} w4a8_report;

/* Equalization building blocks. Each writes s[K] (X is divided by s, the
   weight columns multiplied by it), every s_j finite and >= 1e-5. */

/* wmax[K] = max |W[n][k]| over every row of every linear. */
W4A8_API w4a8_status w4a8_weight_absmax(const w4a8_linear *linears, size_t count, size_t K, float *wmax);
/* SmoothQuant: s_j = max(amax_j, 1e-5)^alpha / max(wmax_j, 1e-5)^(1 - alpha). */
W4A8_API w4a8_status w4a8_smooth_smoothquant(const float *act_absmax, const float *w_absmax, size_t K,
                                             float alpha, float *s);
/* FPTQ's logarithmic activation equalization: s_j = amax_j / log2(2 + amax_j),
   from activations only. */
W4A8_API w4a8_status w4a8_smooth_lae(const float *act_absmax, size_t K, float *s);
/* AWQ's search: for r = i / n_grid, i = 0 .. n_grid - 1 (r = 0 is s = 1, plain
   RTN), s_j = max(m_j^r, 1e-4) / sqrt(max(s) min(s)) with m_j = mean|x_j| over
   the calibration; keeps the r whose weights Q(W s)/s (AWQ's grid, groups of
   group_size) give the least mean squared output error on calib's sample,
   activations in float. Writes s[K], and *ratio and *loss (that error) unless
   NULL. Needs a calibration sample (W4A8_ERR_NEED_CALIB). */
W4A8_API w4a8_status w4a8_smooth_awq(const w4a8_linear *linears, size_t count, size_t K,
                                     const w4a8_calib *calib, size_t group_size, int n_grid, float *s,
                                     float *ratio, double *loss);
/* FPTQ's layer-wise choice from v = max_j act_absmax_j; 0 <= low <= high. */
W4A8_API w4a8_status w4a8_fptq_choose(const float *act_absmax, size_t K, float low, float high,
                                      w4a8_fptq_strategy *strategy);

/* Weight building blocks (layouts as w4a8_quantize_rtn: codes[N][K] one per
   byte, scales and zeros [N][groups]). */

/* RTN on AWQ's grid: per group scale = max(max - min, 1e-5) / 15, zero =
   clamp(round(-min / scale), 0, 15), code = clamp(round(w / scale) + zero, 0, 15).
   GPTQ's grid stretches [min, max] to contain 0; AWQ's does not, so a group
   of one sign saturates at code 0 or 15. Always asymmetric. */
W4A8_API w4a8_status w4a8_quantize_rtn_awq(const float *W, size_t N, size_t K, size_t group_size,
                                           uint8_t *codes, float *scales, uint8_t *zeros);
/* AWQ's clipping search on W[N][K] (already multiplied by s) for its inputs
   X[T][K] (already divided by s; up to 512 evenly spaced tokens are used):
   per row and group, the max-abs clip c = max|w| (1 - i/20), i = 0..9, whose
   weights clamp(w, -c, c) on AWQ's grid give the least squared error of the
   group's partial outputs sum_k x_k w_k. Writes the clamped weights to Wc
   (which may be W). */
W4A8_API w4a8_status w4a8_clip_awq(const float *W, size_t N, size_t K, size_t group_size, const float *X,
                                   size_t T, float *Wc);
/* GPTQ on W[N][K] for inputs whose Hessian is H[K][K] (2/T X^T X, symmetric:
   only the upper triangle is read). cfg gives group_size, asymmetric and the
   gptq_* knobs. Dead inputs (H_jj = 0) get H_jj = 1 and a zero weight column;
   when every input is dead (H = 0) it returns W4A8_ERR_ZERO_CALIB instead.
   H += lambda mean(diag H) I; lambda starts at cfg.gptq_damp and doubles up
   to 1 while the Cholesky factorization fails (W4A8_ERR_SINGULAR_HESSIAN when
   even 1 fails). Writes codes, scales, zeros (groups contiguous along K, in
   the original column order, whatever act_order), *damp = the final lambda
   and *loss = mean over rows of (w - q) H (w - q)^T / 2, i.e. the mean squared
   output error per token and output when H = 2/T X^T X. Float32 like the
   reference (IST-DASLab/gptq), on the float GEMM: blocked Cholesky and
   triangular inverse (diagonal blocks in double), the lazy batch update as
   one GEMM per block; H is scaled by a power of two first, so any finite H
   fits float. The same bits for any thread count and float kernel;
   cfg.progress hears of every block. */
W4A8_API w4a8_status w4a8_quantize_gptq(const float *W, size_t N, size_t K, const double *H,
                                        const w4a8_config *cfg, uint8_t *codes, float *scales,
                                        uint8_t *zeros, double *damp, double *loss);

/* Quantize `count` linears sharing an input of K channels with cfg's method;
   layers[i] receives linears[i]'s layer. calib describes the shared input
   (NULL allowed for RTN with per-token activations; SmoothQuant, AWQ and FPTQ
   need its statistics, AWQ and AUTO its sample, GPTQ its Hessian: else
   W4A8_ERR_NEED_CALIB). With cfg.fold_smooth = 1 the layers record s with
   smooth_folded = 1: the caller divides X by s (e.g. in the RMSNorm weight)
   and the forward does not. report may be NULL. */
W4A8_API w4a8_status w4a8_quantize_linears(const w4a8_linear *linears, size_t count, size_t K,
                                           const w4a8_calib *calib, const w4a8_config *cfg,
                                           w4a8_layer **layers, w4a8_report *report);

/* >>quantize --------------------------------------------------------------- */

/* Round-to-nearest: codes[N][K] (one code per byte, 0..15), scales and
   zeros [N][ceil(K/G)]. */
W4A8_API w4a8_status w4a8_quantize_rtn(const float *W, size_t N, size_t K, size_t group_size,
                                       int asymmetric, uint8_t *codes, float *scales, uint8_t *zeros);
/* RTN with each group's step searched (cfg.scale_search) for the squared
   error weighted by h[K] (finite, >= 0: each input's importance, e.g. H_jj;
   NULL for equal weights). Columns of weight 0 do not count. */
W4A8_API w4a8_status w4a8_quantize_rtn_search(const float *W, size_t N, size_t K, size_t group_size,
                                              int asymmetric, const float *h, uint8_t *codes, float *scales,
                                              uint8_t *zeros);
/* W[n][k] = scale * (code - zero). */
W4A8_API w4a8_status w4a8_dequantize(const uint8_t *codes, const float *scales, const uint8_t *zeros,
                                     size_t N, size_t K, size_t group_size, float *W);

/* >>pack ------------------------------------------------------------------- */

/* codes[N][K] (0..15, one per byte) <-> packed[N][(K+1)/2], portable layout. */
W4A8_API w4a8_status w4a8_pack_int4(const uint8_t *codes, size_t N, size_t K, uint8_t *packed);
W4A8_API w4a8_status w4a8_unpack_int4(const uint8_t *packed, size_t N, size_t K, uint8_t *codes);

/* >>activations ------------------------------------------------------------ */

/* X[M][K] -> codes[M][K] in [-127, 127], scales[M], group_sums[M][ceil(K/G)]
   (the sum of each group's codes, which the zero points need). inv_smooth[K]
   (1/s) multiplies X first, or NULL. Per tensor, static_scale > 0 is used for
   every token; per token it is ignored. */
W4A8_API w4a8_status w4a8_quantize_activations(const float *X, size_t M, size_t K, size_t group_size,
                                               const float *inv_smooth, w4a8_act_mode mode,
                                               float static_scale, int8_t *codes, float *scales,
                                               int32_t *group_sums);

/* >>rotate ----------------------------------------------------------------- */

/* Orthogonal rotations (QuaRot): X W^T = (X Q)(W Q)^T for Q Q^T = I, so a
   rotation of a layer's input spreads an outlier channel over every channel
   without changing the function. Q = D H / sqrt(n), H = H_m (x) H_p, the
   Kronecker product of a Hadamard matrix of order m carried by the header
   and the Sylvester (Walsh) matrix of order p = 2^a; index i = i_m * p + i_p.
   Supported n = 2^a * m with m in {1, 12, 20, 28, 36, 44, 52, 60, 108, 140,
   156, 172} (40 = 20 * 2 and the like come out of the power of two), every
   other n gives W4A8_ERR_UNSUPPORTED. H_m: Paley I (q = m - 1 prime: 12, 20,
   44, 60, 108, 140), Paley II (q = m / 2 - 1 prime: 28, 36), Williamson
   (52, 156, 172, first rows of the four circulants as data). D = diag(d):
   seed 0 gives D = I (QuaRot's online transform); any other seed gives
   d_i = -1 when the top bit of splitmix64's i-th output (state seed +
   i * 0x9E3779B97F4A7C15, then the usual finalizer) is set, else +1: a
   counter-based draw, the same on every platform. Transforms are sums and
   differences in a fixed order and one multiply by (float)(1 / sqrt(n)):
   the same bits on every kernel, compiler and thread count. */

/* m for n (1 for a power of two), or W4A8_ERR_UNSUPPORTED. */
W4A8_API w4a8_status w4a8_hadamard_order(size_t n, size_t *m);
/* The unnormalized matrix D H, H[n][n] with entries +1 / -1. */
W4A8_API w4a8_status w4a8_hadamard_matrix(size_t n, uint64_t seed, int8_t *H);
/* Y[M][n] = X[M][n] Q, or X Q^T with inverse = 1 (Y may be X): O(n log p + n m)
   per row. NaN or Inf in X gives W4A8_ERR_NONFINITE, Y untouched. */
W4A8_API w4a8_status w4a8_hadamard(const float *X, size_t M, size_t n, uint64_t seed, int inverse, float *Y);
/* A weight W[N][K] for rotated inputs: W <- W Q (input side, Q of order K),
   so that (X Q) W'^T = X W^T. */
W4A8_API w4a8_status w4a8_rotate_input(float *W, size_t N, size_t K, uint64_t seed);
/* A weight whose outputs feed a rotated stream: W <- Q^T W (output side, Q of
   order N), so that X W'^T = (X W^T) Q. */
W4A8_API w4a8_status w4a8_rotate_output(float *W, size_t N, size_t K, uint64_t seed);
/* A copy of layer that takes X instead of X Q: its forward rotates first.
   For a layer quantized (by any method) from W Q and calibrated on X Q. */
W4A8_API w4a8_status w4a8_layer_rotated(const w4a8_layer *layer, uint64_t seed, w4a8_layer **out);

/* >>fake quantization and KV cache ---------------------------------------- */

/* Fake quantization returns the floats a quantized layer computes with
   (quantize, then dequantize, on exactly the grid of the functions above)
   and, optionally, the straight-through gradient mask of each element:
   d(out)/d(in) is taken as mask (1 or 0), the scales as constants. */
typedef enum w4a8_ste {
    W4A8_STE_PLAIN = 0,     /* 1 where the clamp to the code range did nothing */
    W4A8_STE_CLIP2 = 1      /* also 0 where |in| >= 2: the LLM-QAT reference code's quirk */
} w4a8_ste;

/* Wq[N][K] = w4a8_dequantize(w4a8_quantize_rtn(W)) bit for bit; mask[N][K]
   (or NULL): 1 where round(w / scale) + zero lay in [0, 15] before the clamp
   (on the symmetric grid, weights 7.5 steps from 0 on the side of the
   smaller extreme are clamped: mask 0). */
W4A8_API w4a8_status w4a8_fake_quantize_weights(const float *W, size_t N, size_t K, size_t group_size,
                                                int asymmetric, w4a8_ste ste, float *Wq, uint8_t *mask);
/* Xq[M][K] = code * scale with the codes and scales of
   w4a8_quantize_activations (no equalization), bit for bit; mask (or NULL):
   1 where the rounded code lay in [-127, 127] before the clamp (per token:
   always, up to the STE option). */
W4A8_API w4a8_status w4a8_fake_quantize_activations(const float *X, size_t M, size_t K, w4a8_act_mode mode,
                                                    float static_scale, w4a8_ste ste, float *Xq,
                                                    uint8_t *mask);

/* KV cache rows: X[T][D] (T tokens, D = heads * head size) in groups of
   `group` channels along D (head size: per head; D or more: across heads;
   a shorter last group when group does not divide D), one scale and zero
   point per token and group. bits 8 or 4. Symmetric: scale = max|x| / qmax
   (qmax 127 or 7), codes zero + [-qmax, qmax] with zero 128 or 8.
   Asymmetric: the range [min(0, min x), max(0, max x)] in 255 or 15 steps,
   zero = round(-lo / scale) in [0, 255 or 15]. x = scale * (code - zero);
   every x comes back within half a step. Codes are stored one per byte (8
   bits) or two per byte (4 bits: element 2i in the low nibble), row bytes
   from w4a8_kv_row_bytes; scales and zeros [T][ceil(D / group)]. A group of
   zeros has scale 0 and codes = zero. Rounding: to nearest, ties to even. */
W4A8_API w4a8_status w4a8_kv_row_bytes(size_t D, int bits, size_t *bytes);
W4A8_API w4a8_status w4a8_kv_quantize(const float *X, size_t T, size_t D, size_t group, int bits,
                                      int asymmetric, uint8_t *codes, float *scales, uint8_t *zeros);
W4A8_API w4a8_status w4a8_kv_dequantize(const uint8_t *codes, const float *scales, const uint8_t *zeros,
                                        size_t T, size_t D, size_t group, int bits, float *X);
/* Xq = w4a8_kv_dequantize(w4a8_kv_quantize(X)) bit for bit, with the STE
   mask (or NULL): 1 where the code was not clamped. */
W4A8_API w4a8_status w4a8_fake_quantize_kv(const float *X, size_t T, size_t D, size_t group, int bits,
                                           int asymmetric, w4a8_ste ste, float *Xq, uint8_t *mask);

/* >>layer ------------------------------------------------------------------ */

/* Everything to build a layer from codes a method (yours or ours) produced. */
typedef struct w4a8_layer_desc {
    size_t N, K, group_size;
    int asymmetric;         /* 0: every zero must be 8 */
    const uint8_t *codes;   /* [N][K], 0..15, one per byte */
    const float *scales;    /* [N][groups], finite (symmetric: signed, see "Weights") */
    const uint8_t *zeros;   /* [N][groups], 0..15 */
    const float *bias;      /* [N] or NULL */
    const float *smooth;    /* [K], finite, >= W4A8_SMOOTH_MIN, or NULL */
    int smooth_folded;
    w4a8_act_mode act_mode;
    float act_scale;        /* > 0 when per tensor */
    w4a8_method method;
    w4a8_kernel kernel;
    int rotate;             /* 1: the forward multiplies X by Q (>>rotate, order K) before
                               anything else; codes are those of W Q */
    uint64_t rotate_seed;   /* Q's seed (0: D = I) */
} w4a8_layer_desc;

W4A8_API w4a8_status w4a8_layer_create(const w4a8_layer_desc *desc, w4a8_layer **out);
/* One linear: w4a8_quantize_linears with count 1. */
W4A8_API w4a8_status w4a8_layer_quantize(const float *W, size_t N, size_t K, const float *bias,
                                         const w4a8_calib *calib, const w4a8_config *cfg,
                                         w4a8_layer **out);
/* Bytes of workspace a forward over M tokens needs. */
W4A8_API w4a8_status w4a8_layer_workspace_size(const w4a8_layer *layer, size_t M, size_t *bytes);
/* Y[M][N] = X[M][K] W^T (+ bias). workspace may be NULL (then one is allocated). */
W4A8_API w4a8_status w4a8_layer_forward(const w4a8_layer *layer, const float *X, size_t M, float *Y,
                                        void *workspace, size_t workspace_bytes);
/* The first half of the forward: X[M][K] -> codes[M][K], scales[M],
   group_sums[M][groups] with the layer's group size, equalization and
   activation mode, on its kernel's instruction set. Layers sharing an input
   and those settings can share one quantized copy of it. */
W4A8_API w4a8_status w4a8_layer_quantize_activations(const w4a8_layer *layer, const float *X, size_t M,
                                                     int8_t *codes, float *scales, int32_t *group_sums);
/* The int8 half of the forward: codes/scales/group_sums as
   w4a8_quantize_activations writes them (rows of K codes). */
W4A8_API w4a8_status w4a8_layer_gemm(const w4a8_layer *layer, const int8_t *codes, const float *scales,
                                     const int32_t *group_sums, size_t M, float *Y);
/* The layer's codes in the portable form (codes[N][K], one per byte). */
W4A8_API w4a8_status w4a8_layer_codes(const w4a8_layer *layer, uint8_t *codes);
W4A8_API w4a8_status w4a8_layer_save_size(const w4a8_layer *layer, size_t *bytes);
W4A8_API w4a8_status w4a8_layer_save_mem(const w4a8_layer *layer, void *buffer, size_t bytes);
W4A8_API w4a8_status w4a8_layer_load_mem(const void *buffer, size_t bytes, w4a8_kernel kernel,
                                         w4a8_layer **out);
#ifndef W4A8_NO_STDIO
W4A8_API w4a8_status w4a8_layer_save(const w4a8_layer *layer, const char *path);
W4A8_API w4a8_status w4a8_layer_load(const char *path, w4a8_kernel kernel, w4a8_layer **out);
#endif
W4A8_API void w4a8_layer_free(w4a8_layer *layer);

#ifdef __cplusplus
}
#endif
#endif /* W4A8_H */

/* ========================================================================== */
/*                              IMPLEMENTATION                                */
/* ========================================================================== */
#if defined(W4A8_IMPLEMENTATION) && !defined(W4A8_IMPLEMENTATION_DONE)
#define W4A8_IMPLEMENTATION_DONE

#include <math.h>
#include <stdlib.h> /* qsort */
#include <string.h>
#ifndef W4A8_NO_STDIO
#include <stdio.h>
#endif

#if defined(W4A8_MALLOC) != defined(W4A8_FREE)
#error "w4a8.h: define both W4A8_MALLOC and W4A8_FREE, or neither"
#endif
#ifndef W4A8_MALLOC
#include <stdlib.h>
#define W4A8_MALLOC(sz) malloc(sz)
#define W4A8_FREE(p) free(p)
#endif
#ifndef W4A8_ASSERT
#include <assert.h>
#define W4A8_ASSERT(x) assert(x)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define W4A8_PRIVATE static __attribute__((unused))
#else
#define W4A8_PRIVATE static
#endif
#define W4A8_IMPL

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* An empty asm that claims to change v: the compiler cannot fuse the
   multiply before it with the add after it, whatever -ffp-contract says.
   "v" is any vector register (xmm/ymm/zmm 0-31), so it holds __m512 too. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define W4A8__NO_FUSE(v) __asm__("" : "+v"(v))
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
#define W4A8__NO_FUSE(v) __asm__("" : "+w"(v))
#else
#define W4A8__NO_FUSE(v) ((void)0)
#endif

#ifdef _OPENMP
#include <omp.h>
#define W4A8__OMP_FOR _Pragma("omp parallel for schedule(static)")
/* The same, threaded only when cond holds (a lone token skips a fork and a barrier). */
#define W4A8__PRAGMA(x) _Pragma(#x)
#define W4A8__OMP_FOR_IF(cond) W4A8__PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define W4A8__OMP_FOR
#define W4A8__OMP_FOR_IF(cond)
#endif
/* A loop of independent lanes, vectorized whatever the cost model says. */
#ifdef _OPENMP
#define W4A8__OMP_SIMD _Pragma("omp simd")
#else
#define W4A8__OMP_SIMD
#endif

/* Which SIMD kernels this build compiles. x86-64: GCC >= 11 or Clang >= 13
   (target attributes for AVX-VNNI); AArch64: NEON when the build targets the
   dot-product extension. Everything else, and host code compiled by nvcc
   (whose front end rejects these pragmas), gets the scalar kernel only. */
#if !defined(W4A8_NO_SIMD) && !defined(__CUDACC__) && defined(__x86_64__) &&                                                  \
    ((defined(__clang__) && __clang_major__ >= 13) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#include <cpuid.h>
#include <immintrin.h>
#ifndef W4A8_NO_AVX2
#define W4A8__AVX2 1
#endif
#ifndef W4A8_NO_AVX512
#define W4A8__AVX512 1
#endif
#endif
#if !defined(W4A8_NO_SIMD) && !defined(W4A8_NO_NEON) && !defined(__CUDACC__) && defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD) && \
    (defined(__GNUC__) || defined(__clang__))
#include <arm_neon.h>
#define W4A8__NEON 1
#endif
#if defined(W4A8__AVX2) || defined(W4A8__AVX512) || defined(W4A8__NEON)
#define W4A8__SIMD 1
/* SIMD bodies are written once and inlined into each kernel's entry point,
   their small loops over tokens and registers unrolled so that arrays of
   vectors live in registers, even at -O2. */
#define W4A8__INLINE static inline __attribute__((always_inline))
#ifdef __clang__
#define W4A8__UNROLL _Pragma("unroll")
#else
#define W4A8__UNROLL _Pragma("GCC unroll 8")
#endif
/* Ask for the weight stream 2 KiB ahead: a single token (decoding) reads
   its weights from DRAM, and the hardware prefetcher alone leaves some 10%
   of the bandwidth unused. A hint: it never faults, even past the end. */
#define W4A8__PREFETCH(p) __builtin_prefetch((const void *)((uintptr_t)(p) + 2048))
/* for (i = 0; i < n; i++), unrolled to the fixed bound max: the indices are
   constants whether the compiler unrolls before or after inlining n. */
#define W4A8__FOR(i, n, max) W4A8__UNROLL for (i = 0; i < (max); i++) if (i < (n))
#endif
/* GCC 12's AVX-512 headers trip -Wuninitialized in C++ (GCC bug 105593):
   hush it around the SIMD code only. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define W4A8__SIMD_BEGIN                                                                                     \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")                      \
        _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define W4A8__SIMD_END _Pragma("GCC diagnostic pop")
#else
#define W4A8__SIMD_BEGIN
#define W4A8__SIMD_END
#endif
#define W4A8__TARGET_AVX2 __attribute__((target("avx2")))
#define W4A8__TARGET_AVX_VNNI __attribute__((target("avx2,avxvnni")))
#define W4A8__TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* >>helpers ---------------------------------------------------------------- */

/* Bit test, so it still works under -ffast-math. */
W4A8_PRIVATE int w4a8__finite(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (u & 0x7f800000u) != 0x7f800000u;
}

/* A divisor we can invert: positive, finite, and so is its inverse. */
W4A8_PRIVATE int w4a8__valid_scale(float s) {
    return s > 0.0f && w4a8__finite(s) && w4a8__finite(1.0f / s);
}

W4A8_PRIVATE int w4a8__all_finite(const float *x, size_t n) {
    size_t i;
    uint32_t bad = 0;
    for (i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return !bad;
}

/* *out = a * b, or W4A8_ERR_OVERFLOW. */
W4A8_PRIVATE w4a8_status w4a8__mul(size_t a, size_t b, size_t *out) {
    if (b != 0 && a > (size_t)-1 / b) return W4A8_ERR_OVERFLOW;
    *out = a * b;
    return W4A8_OK;
}

W4A8_PRIVATE size_t w4a8__group_len(size_t K, size_t group_size) {
    return group_size < K ? group_size : K;
}

/* Shapes every weight function shares: N, K >= 1, a valid group, N*K fits. */
W4A8_PRIVATE w4a8_status w4a8__check_shape(size_t N, size_t K, size_t group_size) {
    size_t nk;
    if (N == 0 || K == 0) return W4A8_ERR_SHAPE;
    if (group_size == 0 || w4a8__group_len(K, group_size) > W4A8_MAX_GROUP) return W4A8_ERR_GROUP_SIZE;
    return w4a8__mul(N, K, &nk);
}

W4A8_PRIVATE void *w4a8__alloc(size_t count, size_t size) {
    size_t bytes;
    if (w4a8__mul(count, size, &bytes) != W4A8_OK) return NULL;
    return W4A8_MALLOC(bytes ? bytes : 1);
}

W4A8_PRIVATE size_t w4a8__min(size_t a, size_t b) { return a < b ? a : b; }

W4A8_PRIVATE float w4a8__clampf(float x, float lo, float hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* 64-byte aligned memory for the kernels' streams. The byte before the block
   says how far it lies from what W4A8_MALLOC returned. */
W4A8_PRIVATE void *w4a8__alloc_aligned(size_t bytes) {
    unsigned char *raw, *p;
    if (bytes > (size_t)-1 - 64) return NULL;
    raw = (unsigned char *)W4A8_MALLOC(bytes + 64);
    if (!raw) return NULL;
    p = raw + (64 - (uintptr_t)raw % 64);
    p[-1] = (unsigned char)(p - raw);
    return p;
}

W4A8_PRIVATE void w4a8__free_aligned(void *p) {
    if (p) W4A8_FREE((unsigned char *)p - ((unsigned char *)p)[-1]);
}

/* Whether this CPU and build run a kernel (AUTO excluded). */
W4A8_PRIVATE int w4a8__cpu_runs(w4a8_kernel k) {
#if defined(W4A8__AVX2) || defined(W4A8__AVX512)
    __builtin_cpu_init(); /* harmless when done; needed if we run before constructors */
#endif
    switch (k) {
    case W4A8_KERNEL_SCALAR: return 1;
#ifdef W4A8__AVX2
    case W4A8_KERNEL_AVX2: return __builtin_cpu_supports("avx2") != 0;
    case W4A8_KERNEL_AVX_VNNI: { /* cpuid leaf 7.1 EAX bit 4: Clang 14's cpu_supports lacks "avxvnni" */
        unsigned a = 0, b = 0, c = 0, d = 0;
        return __builtin_cpu_supports("avx2") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1);
    }
#endif
#ifdef W4A8__AVX512
    case W4A8_KERNEL_AVX512_VNNI:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
#endif
#ifdef W4A8__NEON
    case W4A8_KERNEL_NEON: return 1;
#endif
    default: return 0;
    }
}

W4A8_IMPL w4a8_status w4a8_kernel_resolve(w4a8_kernel want, w4a8_kernel *out) {
    /* AUTO's preference, fastest first. */
    static const w4a8_kernel order[] = { W4A8_KERNEL_AVX512_VNNI, W4A8_KERNEL_AVX_VNNI, W4A8_KERNEL_AVX2,
                                         W4A8_KERNEL_NEON, W4A8_KERNEL_SCALAR };
    size_t i;
    if (!out) return W4A8_ERR_NULL_ARG;
    if ((int)want < 0 || want >= W4A8_KERNEL_COUNT) return W4A8_ERR_CONFIG;
    for (i = 0; want == W4A8_KERNEL_AUTO && !w4a8__cpu_runs(order[i]); i++) {}
    if (want == W4A8_KERNEL_AUTO) want = order[i];
    if (!w4a8__cpu_runs(want)) return W4A8_ERR_UNSUPPORTED;
    *out = want;
    return W4A8_OK;
}

W4A8_IMPL const char *w4a8_kernel_name(w4a8_kernel kernel) {
    static const char *const names[] = { "auto", "scalar", "avx2", "avx-vnni", "avx512-vnni", "neon" };
    if ((int)kernel < 0 || kernel >= W4A8_KERNEL_COUNT) return "unknown kernel";
    return names[kernel];
}

W4A8_IMPL const char *w4a8_status_str(w4a8_status status) {
#define W4A8__STATUS_MSG(name, msg) msg,
    static const char *const messages[] = { W4A8_STATUS_LIST(W4A8__STATUS_MSG) };
#undef W4A8__STATUS_MSG
    if ((int)status < 0 || status >= W4A8_STATUS_COUNT) return "unknown status";
    return messages[status];
}

W4A8_IMPL const char *w4a8_version(void) { return W4A8_VERSION_STRING; }

W4A8_IMPL w4a8_status w4a8_config_init(w4a8_config *cfg) {
    if (!cfg) return W4A8_ERR_NULL_ARG;
    memset(cfg, 0, sizeof *cfg);
    cfg->method = W4A8_METHOD_RTN;
    cfg->group_size = 128;
    cfg->asymmetric = 0;
    cfg->act_mode = W4A8_ACT_PER_TOKEN;
    cfg->act_scale = 0.0f;
    cfg->fold_smooth = 0;
    cfg->sq_alpha = 0.5f;
    cfg->awq_grid = 20;
    cfg->awq_clip = 1;
    cfg->awq_symmetric = 0;
    cfg->gptq_damp = 0.01f;
    cfg->gptq_block = 128;
    cfg->gptq_act_order = 0;
    cfg->gptq_static_groups = 0;
    cfg->scale_search = 0;
    cfg->fptq_low = 15.0f;
    cfg->fptq_high = 150.0f;
    cfg->kernel = W4A8_KERNEL_AUTO;
    cfg->progress = NULL;
    cfg->progress_user = NULL;
    return W4A8_OK;
}

/* >>fgemm ------------------------------------------------------------------ */

/* BLIS's loops: op(B) in blocks of KC x NC (L2) packed once and shared by
   the threads, op(A) in blocks of MC x KC, micro-tiles of MR x NR: an A
   panel (MR x KC, L1) meets every B panel of the block in turn. Threads
   split the micro-tiles of C, never k, so the thread count cannot change a
   sum. */
#define W4A8__KC 256
#define W4A8__MC 240
#define W4A8__NC 512
#define W4A8__MR_MAX 12
#define W4A8__NR_MAX 32

/* acc[MR][NR] = the fused multiply-add chain over kc of a panel of MR rows
   (a[k * MR + i]) by a panel of NR columns (b[k * NR + j]), from 0. */
typedef void (*w4a8__fkern)(size_t kc, const float *a, const float *b, float *acc);

/* C rows [0, M), M <= W4A8__GEMV_M, by columns [n0, n1) of op(A) op(B)
   (w4a8__fgemm's arguments): the small-M products, B never packed. */
typedef void (*w4a8__fgemv)(size_t M, size_t n0, size_t n1, size_t K, float alpha, const float *A, size_t lda,
                            int trans_a, const float *B, size_t ldb, int trans_b, float beta, float *C, size_t ldc);
#define W4A8__GEMV_M 4

typedef struct w4a8__fisa {
    w4a8__fkern kern;
    w4a8__fgemv gemv;       /* or NULL: the GEMM takes every M */
    size_t mr, nr;
    int blas;               /* 1: W4A8_SGEMM does the work */
} w4a8__fisa;

W4A8_PRIVATE void w4a8__fkern_scalar(size_t kc, const float *a, const float *b, float *acc) {
    size_t k, i, j;
    for (i = 0; i < 4 * 8; i++) acc[i] = 0.0f;
    for (k = 0; k < kc; k++)
        for (i = 0; i < 4; i++)
            for (j = 0; j < 8; j++) acc[i * 8 + j] = fmaf(a[k * 4 + i], b[k * 8 + j], acc[i * 8 + j]);
}

/* The one place a block's sum reaches C: separate roundings, every kernel. */
W4A8_PRIVATE void w4a8__fgemm_store(float *C, size_t ldc, size_t rows, size_t cols, const float *acc, size_t nr,
                                    float alpha, float beta, int first) {
    size_t i, j;
    for (i = 0; i < rows; i++) {
        float *c = C + i * ldc;
        const float *a = acc + i * nr;
        if (first && beta == 0.0f) {
            W4A8__OMP_SIMD
            for (j = 0; j < cols; j++) c[j] = 0.0f + alpha * a[j];
        } else if (first) {
            W4A8__OMP_SIMD
            for (j = 0; j < cols; j++) c[j] = beta * c[j] + alpha * a[j];
        } else {
            W4A8__OMP_SIMD
            for (j = 0; j < cols; j++) c[j] = c[j] + alpha * a[j];
        }
    }
}

W4A8__SIMD_BEGIN
/* Fully unrolled, so that the accumulator arrays live in registers. */
#ifdef __clang__
#define W4A8__FUNROLL _Pragma("unroll")
#else
#define W4A8__FUNROLL _Pragma("GCC unroll 16")
#endif
#ifdef W4A8__AVX2
/* 6 x 16: twelve accumulators, two B vectors and a broadcast in 16 registers. */
W4A8_PRIVATE __attribute__((target("avx2,fma"))) void w4a8__fkern_avx2(size_t kc, const float *a, const float *b,
                                                                       float *acc) {
    __m256 c[6][2];
    size_t k;
    int i;
    W4A8__FUNROLL for (i = 0; i < 6; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
    for (k = 0; k < kc; k++, a += 6, b += 16) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        W4A8__FUNROLL for (i = 0; i < 6; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            c[i][0] = _mm256_fmadd_ps(ai, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(ai, b1, c[i][1]);
        }
    }
    W4A8__FUNROLL for (i = 0; i < 6; i++) {
        _mm256_storeu_ps(acc + i * 16, c[i][0]);
        _mm256_storeu_ps(acc + i * 16 + 8, c[i][1]);
    }
}
/* The small-M product (w4a8__fgemv): outputs in lanes, 8 at a time, each
   lane the micro-kernels' fused chain over k from 0 in blocks of KC and
   the same store, so the bits are the GEMM's; no packing pass over B and no
   MR rows of zeros (M = 1 had run at a sixth of the kernel). op(B)'s rows
   are loaded as they lie (trans_b 0) or B's 8 x 8 blocks transposed. */
W4A8_PRIVATE __attribute__((target("avx2,fma"))) void w4a8__fgemv_avx2(size_t M, size_t n0, size_t n1, size_t K,
                                                                      float alpha, const float *A, size_t lda,
                                                                      int trans_a, const float *B, size_t ldb,
                                                                      int trans_b, float beta, float *C, size_t ldc) {
    static const int ramp[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
    float acc[W4A8__GEMV_M * 8];
    size_t n, pc, k;
    int m, j;
    for (n = n0; n < n1; n += 8) {
        size_t cols = w4a8__min(8, n1 - n);
        __m256i live = _mm256_loadu_si256((const __m256i *)(const void *)(ramp + 8 - cols));
        for (pc = 0; pc < K; pc += W4A8__KC) {
            size_t k1 = pc + w4a8__min(W4A8__KC, K - pc);
            __m256 c[W4A8__GEMV_M];
            W4A8__FUNROLL for (m = 0; m < W4A8__GEMV_M; m++) c[m] = _mm256_setzero_ps();
            for (k = pc; k < k1; k += 8) {
                size_t kn = w4a8__min(8, k1 - k);
                __m256 b[8];
                if (trans_b) { /* B's rows n.., columns k..: an 8 x 8 block, transposed */
                    __m256i kl = _mm256_loadu_si256((const __m256i *)(const void *)(ramp + 8 - kn));
                    __m256 t[8];
                    W4A8__FUNROLL for (j = 0; j < 8; j++) {
                        b[j] = (size_t)j < cols ? _mm256_maskload_ps(B + (n + (size_t)j) * ldb + k, kl) : _mm256_setzero_ps();
                        if (n + 16 + (size_t)j < n1) _mm_prefetch((const char *)(B + (n + 16 + (size_t)j) * ldb + k), _MM_HINT_T0);
                    }
                    W4A8__FUNROLL for (j = 0; j < 8; j += 2) {
                        t[j] = _mm256_unpacklo_ps(b[j], b[j + 1]);
                        t[j + 1] = _mm256_unpackhi_ps(b[j], b[j + 1]);
                    }
                    W4A8__FUNROLL for (j = 0; j < 8; j += 4) {
                        b[j] = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);
                        b[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xEE);
                        b[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
                        b[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
                    }
                    W4A8__FUNROLL for (j = 0; j < 4; j++) {
                        t[j] = _mm256_permute2f128_ps(b[j], b[j + 4], 0x20);
                        t[j + 4] = _mm256_permute2f128_ps(b[j], b[j + 4], 0x31);
                    }
                    W4A8__FUNROLL for (j = 0; j < 8; j++) b[j] = t[j];
                } else {
                    W4A8__FUNROLL for (j = 0; j < 8; j++)
                        b[j] = (size_t)j < kn ? _mm256_maskload_ps(B + (k + (size_t)j) * ldb + n, live) : _mm256_setzero_ps();
                }
                W4A8__FUNROLL for (j = 0; j < 8; j++) {
                    if ((size_t)j >= kn) break;
                    W4A8__FUNROLL for (m = 0; m < W4A8__GEMV_M; m++) {
                        size_t i = (size_t)m, kk = k + (size_t)j;
                        if (i >= M) break;
                        c[m] = _mm256_fmadd_ps(_mm256_set1_ps(trans_a ? A[kk * lda + i] : A[i * lda + kk]), b[j], c[m]);
                    }
                }
            }
            W4A8__FUNROLL for (m = 0; m < W4A8__GEMV_M; m++) _mm256_storeu_ps(acc + m * 8, c[m]);
            w4a8__fgemm_store(C + n, ldc, M, cols, acc, 8, alpha, beta, pc == 0);
        }
    }
}
#endif
#ifdef W4A8__AVX512
W4A8_PRIVATE __mmask16 w4a8__mask16(size_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/* 12 x 32: 24 accumulators of the 32 registers. */
W4A8_PRIVATE __attribute__((target("avx512f"))) void w4a8__fkern_avx512(size_t kc, const float *a, const float *b,
                                                                        float *acc) {
    __m512 c[12][2];
    size_t k;
    int i;
    W4A8__FUNROLL for (i = 0; i < 12; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (k = 0; k < kc; k++, a += 12, b += 32) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        W4A8__FUNROLL for (i = 0; i < 12; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c[i][0] = _mm512_fmadd_ps(ai, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(ai, b1, c[i][1]);
        }
    }
    W4A8__FUNROLL for (i = 0; i < 12; i++) {
        _mm512_storeu_ps(acc + i * 32, c[i][0]);
        _mm512_storeu_ps(acc + i * 32 + 16, c[i][1]);
    }
}
/* w4a8__fgemv_avx2 in 16 lanes (16 x 16 blocks). */
W4A8_PRIVATE __attribute__((target("avx512f"))) void w4a8__fgemv_avx512(size_t M, size_t n0, size_t n1, size_t K,
                                                                        float alpha, const float *A, size_t lda,
                                                                        int trans_a, const float *B, size_t ldb,
                                                                        int trans_b, float beta, float *C,
                                                                        size_t ldc) {
    float acc[W4A8__GEMV_M * 16];
    size_t n, pc, k;
    int m, j;
    for (n = n0; n < n1; n += 16) {
        size_t cols = w4a8__min(16, n1 - n);
        __mmask16 live = w4a8__mask16(cols);
        for (pc = 0; pc < K; pc += W4A8__KC) {
            size_t k1 = pc + w4a8__min(W4A8__KC, K - pc);
            __m512 c[W4A8__GEMV_M];
            W4A8__FUNROLL for (m = 0; m < W4A8__GEMV_M; m++) c[m] = _mm512_setzero_ps();
            for (k = pc; k < k1; k += 16) {
                size_t kn = w4a8__min(16, k1 - k);
                __m512 b[16];
                if (trans_b) { /* B's rows n.., columns k..: a 16 x 16 block, transposed; the rows
                                  two blocks on prefetched (short row runs defeat the prefetcher) */
                    __mmask16 kl = w4a8__mask16(kn);
                    __m512 t[16];
                    W4A8__FUNROLL for (j = 0; j < 16; j++) {
                        b[j] = (size_t)j < cols ? _mm512_maskz_loadu_ps(kl, B + (n + (size_t)j) * ldb + k) : _mm512_setzero_ps();
                        if (n + 32 + (size_t)j < n1) _mm_prefetch((const char *)(B + (n + 32 + (size_t)j) * ldb + k), _MM_HINT_T0);
                    }
                    W4A8__FUNROLL for (j = 0; j < 16; j += 2) {
                        t[j] = _mm512_unpacklo_ps(b[j], b[j + 1]);
                        t[j + 1] = _mm512_unpackhi_ps(b[j], b[j + 1]);
                    }
                    /* b[4g + c]: column 4L + c of rows 4g.. in 128-bit lane L */
                    W4A8__FUNROLL for (j = 0; j < 16; j += 4) {
                        b[j] = _mm512_shuffle_ps(t[j], t[j + 2], 0x44);
                        b[j + 1] = _mm512_shuffle_ps(t[j], t[j + 2], 0xEE);
                        b[j + 2] = _mm512_shuffle_ps(t[j + 1], t[j + 3], 0x44);
                        b[j + 3] = _mm512_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
                    }
                    W4A8__FUNROLL for (j = 0; j < 4; j++) {
                        t[j] = _mm512_shuffle_f32x4(b[j], b[j + 4], 0x88);      /* columns j, 8 + j: rows 0-7 */
                        t[j + 4] = _mm512_shuffle_f32x4(b[j], b[j + 4], 0xDD);  /* 4 + j, 12 + j */
                        t[j + 8] = _mm512_shuffle_f32x4(b[j + 8], b[j + 12], 0x88);  /* rows 8-15 */
                        t[j + 12] = _mm512_shuffle_f32x4(b[j + 8], b[j + 12], 0xDD);
                    }
                    W4A8__FUNROLL for (j = 0; j < 4; j++) {
                        b[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
                        b[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
                        b[j + 4] = _mm512_shuffle_f32x4(t[j + 4], t[j + 12], 0x88);
                        b[j + 12] = _mm512_shuffle_f32x4(t[j + 4], t[j + 12], 0xDD);
                    }
                } else {
                    W4A8__FUNROLL for (j = 0; j < 16; j++)
                        b[j] = (size_t)j < kn ? _mm512_maskz_loadu_ps(live, B + (k + (size_t)j) * ldb + n) : _mm512_setzero_ps();
                }
                W4A8__FUNROLL for (j = 0; j < 16; j++) {
                    if ((size_t)j >= kn) break;
                    W4A8__FUNROLL for (m = 0; m < W4A8__GEMV_M; m++) {
                        size_t i = (size_t)m, kk = k + (size_t)j;
                        if (i >= M) break;
                        c[m] = _mm512_fmadd_ps(_mm512_set1_ps(trans_a ? A[kk * lda + i] : A[i * lda + kk]), b[j], c[m]);
                    }
                }
            }
            W4A8__FUNROLL for (m = 0; m < W4A8__GEMV_M; m++) _mm512_storeu_ps(acc + m * 16, c[m]);
            w4a8__fgemm_store(C + n, ldc, M, cols, acc, 16, alpha, beta, pc == 0);
        }
    }
}
#endif
#ifdef W4A8__NEON
/* 6 x 16: 24 accumulators of the 32 registers. vfmaq_f32 is fused. */
W4A8_PRIVATE void w4a8__fkern_neon(size_t kc, const float *a, const float *b, float *acc) {
    float32x4_t c[6][4];
    size_t k;
    int i, j;
    W4A8__FUNROLL for (i = 0; i < 6; i++) W4A8__FUNROLL for (j = 0; j < 4; j++) c[i][j] = vdupq_n_f32(0.0f);
    for (k = 0; k < kc; k++, a += 6, b += 16) {
        float32x4_t bv[4];
        W4A8__FUNROLL for (j = 0; j < 4; j++) bv[j] = vld1q_f32(b + 4 * j);
        W4A8__FUNROLL for (i = 0; i < 6; i++) {
            float32x4_t ai = vdupq_n_f32(a[i]);
            W4A8__FUNROLL for (j = 0; j < 4; j++) c[i][j] = vfmaq_f32(c[i][j], ai, bv[j]);
        }
    }
    W4A8__FUNROLL for (i = 0; i < 6; i++) W4A8__FUNROLL for (j = 0; j < 4; j++) vst1q_f32(acc + i * 16 + 4 * j, c[i][j]);
}
#endif
W4A8__SIMD_END

/* The float kernel for a w4a8_kernel choice. */
W4A8_PRIVATE w4a8_status w4a8__fisa_of(w4a8_kernel want, w4a8__fisa *isa) {
    w4a8_kernel k;
    w4a8_status st = w4a8_kernel_resolve(want, &k);
    if (st != W4A8_OK) return st;
    isa->kern = w4a8__fkern_scalar;
    isa->gemv = NULL;
    isa->mr = 4;
    isa->nr = 8;
    isa->blas = 0;
#ifdef W4A8_SGEMM
    isa->blas = want == W4A8_KERNEL_AUTO;
#endif
#ifdef W4A8__AVX512
    if (k == W4A8_KERNEL_AVX512_VNNI) {
        isa->kern = w4a8__fkern_avx512;
        isa->gemv = w4a8__fgemv_avx512;
        isa->mr = 12;
        isa->nr = 32;
        return W4A8_OK;
    }
#endif
#ifdef W4A8__AVX2
    if (k == W4A8_KERNEL_AVX2 || k == W4A8_KERNEL_AVX_VNNI) {
        if (!__builtin_cpu_supports("fma")) return want == W4A8_KERNEL_AUTO ? W4A8_OK : W4A8_ERR_UNSUPPORTED;
        isa->kern = w4a8__fkern_avx2;
        isa->gemv = w4a8__fgemv_avx2;
        isa->mr = 6;
        isa->nr = 16;
        return W4A8_OK;
    }
#endif
#ifdef W4A8__NEON
    if (k == W4A8_KERNEL_NEON) {
        isa->kern = w4a8__fkern_neon;
        isa->mr = 6;
        isa->nr = 16;
        return W4A8_OK;
    }
#endif
    return W4A8_OK;
}

/* Panels of op(A) rows [i0, i0 + mc) by k [k0, k0 + kc), rows past M zero.
   Written in order, read from mr rows at once (a strided write is slower). */
W4A8_PRIVATE void w4a8__pack_a(const float *A, size_t lda, int trans, size_t M, size_t i0, size_t mc, size_t k0,
                               size_t kc, size_t mr, size_t p, float *dst) {
    size_t i, k, rows = w4a8__min(mr, mc - p * mr), row0 = i0 + p * mr;
    rows = row0 >= M ? 0 : w4a8__min(rows, M - row0);
    dst += p * mr * kc;
    if (rows == 0) {
        memset(dst, 0, mr * kc * sizeof(float));
    } else if (trans) {
        for (k = 0; k < kc; k++, dst += mr) {
            const float *a = A + (k0 + k) * lda + row0;
            for (i = 0; i < rows; i++) dst[i] = a[i];
            for (; i < mr; i++) dst[i] = 0.0f;
        }
    } else {
        const float *a = A + row0 * lda + k0;
        for (k = 0; k < kc; k++, dst += mr) {
            for (i = 0; i < rows; i++) dst[i] = a[i * lda + k];
            for (; i < mr; i++) dst[i] = 0.0f;
        }
    }
}

/* Panels of op(B) k [k0, k0 + kc) by columns [j0, j0 + nc), columns past N zero. */
W4A8_PRIVATE void w4a8__pack_b(const float *B, size_t ldb, int trans, size_t j0, size_t nc, size_t k0, size_t kc,
                               size_t nr, size_t q, float *dst) {
    size_t j, k, cols = w4a8__min(nr, nc - q * nr);
    const float *b = trans ? B + (j0 + q * nr) * ldb + k0 : B + k0 * ldb + j0 + q * nr;
    dst += q * nr * kc;
    for (k = 0; k < kc; k++, dst += nr) {
        if (trans)
            for (j = 0; j < cols; j++) dst[j] = b[j * ldb + k];
        else
            for (j = 0; j < cols; j++) dst[j] = b[k * ldb + j];
        for (; j < nr; j++) dst[j] = 0.0f;
    }
}

/* Packing space of one thread: an A block and a B block. */
#define W4A8__FGEMM_WS ((W4A8__MC + W4A8__MR_MAX) * W4A8__KC + (W4A8__NC + W4A8__NR_MAX) * W4A8__KC)
/* Floats before the first thread's space: the number of threads it has room for. */
#define W4A8__FGEMM_HEAD 16

/* Packing space for the threads a parallel region would have now, for
   w4a8__fgemm calls one after the other (free with w4a8__free_aligned). */
W4A8_PRIVATE float *w4a8__fgemm_ws(void) {
    int slots = 1;
    float *ws;
#ifdef _OPENMP
    slots = omp_get_max_threads();
    slots = slots < 1 ? 1 : slots > 256 ? 256 : slots;
#endif
    ws = (float *)w4a8__alloc_aligned(((size_t)slots * W4A8__FGEMM_WS + W4A8__FGEMM_HEAD) * sizeof(float));
    if (ws) memcpy(ws, &slots, sizeof slots);
    return ws;
}

/* One thread's part: C rows [i0, i1) by columns [j0, j1), serially. */
W4A8_PRIVATE void w4a8__fgemm_part(const w4a8__fisa *isa, float *ws, size_t M, size_t i0, size_t i1, size_t j0,
                                   size_t j1, size_t K, float alpha, const float *A, size_t lda, int trans_a,
                                   const float *B, size_t ldb, int trans_b, float beta, float *C, size_t ldc) {
    size_t mr = isa->mr, nr = isa->nr, jc, pc, ic, p, q;
    float acc[W4A8__MR_MAX * W4A8__NR_MAX], *pa = ws, *pb = ws + (W4A8__MC + W4A8__MR_MAX) * W4A8__KC;
    for (jc = j0; jc < j1; jc += W4A8__NC) {
        size_t nc = w4a8__min(W4A8__NC, j1 - jc), np = (nc + nr - 1) / nr;
        for (pc = 0; pc < K; pc += W4A8__KC) {
            size_t kc = w4a8__min(W4A8__KC, K - pc);
            for (q = 0; q < np; q++) w4a8__pack_b(B, ldb, trans_b, jc, nc, pc, kc, nr, q, pb);
            for (ic = i0; ic < i1; ic += W4A8__MC) {
                size_t mc = w4a8__min(W4A8__MC, i1 - ic), mp = (mc + mr - 1) / mr;
                for (p = 0; p < mp; p++) w4a8__pack_a(A, lda, trans_a, M, ic, mc, pc, kc, mr, p, pa);
                /* an A panel (L1) meets every B panel of the block (L2) */
                for (p = 0; p < mp; p++)
                    for (q = 0; q < np; q++) {
                        isa->kern(kc, pa + p * mr * kc, pb + q * nr * kc, acc);
                        w4a8__fgemm_store(C + (ic + p * mr) * ldc + jc + q * nr, ldc, w4a8__min(mr, mc - p * mr),
                                          w4a8__min(nr, nc - q * nr), acc, nr, alpha, beta, pc == 0);
                    }
            }
        }
    }
}

/* w4a8_gemm_f32 without the checks; ws from w4a8__fgemm_ws. Each thread
   takes a contiguous range of row panels or column panels of C (whichever
   dimension is larger), packs its own operands and never waits for
   another: no barrier inside, so a crowded machine costs no more than
   its share. */
W4A8_PRIVATE void w4a8__fgemm(const w4a8__fisa *isa, float *ws, size_t M, size_t N, size_t K, float alpha,
                              const float *A, size_t lda, int trans_a, const float *B, size_t ldb, int trans_b,
                              float beta, float *C, size_t ldc) {
    int slots;
    memcpy(&slots, ws, sizeof slots);
    ws += W4A8__FGEMM_HEAD;
#ifdef W4A8_SGEMM
    if (isa->blas) {
        W4A8_SGEMM(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    /* a fork costs microseconds: small products stay on one thread */
    if ((double)M * (double)N * (double)K < 1e6) slots = 1;
    if (isa->gemv && M <= W4A8__GEMV_M) {
        size_t per = ((N + 63) / 64 + (size_t)slots - 1) / (size_t)slots * 64; /* columns a thread, by 64 */
        ptrdiff_t t;
        W4A8__OMP_FOR_IF(slots > 1)
        for (t = 0; t < slots; t++) {
            size_t lo = w4a8__min(per * (size_t)t, N);
            if (lo < w4a8__min(lo + per, N))
                isa->gemv(M, lo, w4a8__min(lo + per, N), K, alpha, A, lda, trans_a, B, ldb, trans_b, beta, C, ldc);
        }
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(slots) if (slots > 1)
#endif
    {
        int t = 0, n = 1;
        size_t unit, panels, per, lo, hi;
        int rows;
#ifdef _OPENMP
        t = omp_get_thread_num();
        n = omp_get_num_threads();
#endif
        rows = M >= N;
        unit = rows ? isa->mr : isa->nr;
        panels = ((rows ? M : N) + unit - 1) / unit;
        per = (panels + (size_t)n - 1) / (size_t)n;
        lo = w4a8__min(per * (size_t)t * unit, rows ? M : N);
        hi = w4a8__min(lo + per * unit, rows ? M : N);
        if (lo < hi) {
            if (rows)
                w4a8__fgemm_part(isa, ws + (size_t)t * W4A8__FGEMM_WS, M, lo, hi, 0, N, K, alpha, A, lda, trans_a, B,
                                 ldb, trans_b, beta, C, ldc);
            else
                w4a8__fgemm_part(isa, ws + (size_t)t * W4A8__FGEMM_WS, M, 0, M, lo, hi, K, alpha, A, lda, trans_a, B,
                                 ldb, trans_b, beta, C, ldc);
        }
    }
}

/* Rows of a row-major operand: (rows - 1) * ld + cols elements must fit. */
W4A8_PRIVATE w4a8_status w4a8__check_operand(size_t rows, size_t cols, size_t ld) {
    size_t n;
    if (ld < cols) return W4A8_ERR_SHAPE;
    if (w4a8__mul(rows - 1, ld, &n) || n > (size_t)-1 - cols || w4a8__mul(n + cols, sizeof(float), &n))
        return W4A8_ERR_OVERFLOW;
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_gemm_f32(w4a8_kernel kernel, size_t M, size_t N, size_t K, float alpha,
                                    const float *A, size_t lda, int trans_a, const float *B, size_t ldb,
                                    int trans_b, float beta, float *C, size_t ldc) {
    w4a8__fisa isa;
    float *ws;
    w4a8_status st;
    if (!A || !B || !C) return W4A8_ERR_NULL_ARG;
    if (M == 0 || N == 0 || K == 0) return W4A8_ERR_SHAPE;
    if ((st = w4a8__check_operand(trans_a ? K : M, trans_a ? M : K, lda)) != W4A8_OK ||
        (st = w4a8__check_operand(trans_b ? N : K, trans_b ? K : N, ldb)) != W4A8_OK ||
        (st = w4a8__check_operand(M, N, ldc)) != W4A8_OK)
        return st;
    if (!w4a8__finite(alpha) || !w4a8__finite(beta)) return W4A8_ERR_NONFINITE;
    if ((st = w4a8__fisa_of(kernel, &isa)) != W4A8_OK) return st;
    if (!(ws = w4a8__fgemm_ws())) return W4A8_ERR_NOMEM;
    w4a8__fgemm(&isa, ws, M, N, K, alpha, A, lda, trans_a, B, ldb, trans_b, beta, C, ldc);
    w4a8__free_aligned(ws);
    return W4A8_OK;
}

/* >>calibrate -------------------------------------------------------------- */

/* Hessian panels: rows of the upper triangle per GEMM, tokens per float sum. */
#define W4A8__XTX_ROWS 240
#define W4A8__XTX_TOKENS 256

/* dst[K][K] (upper triangle, double) += X^T X for X[T][K], T <= 256. The
   products run in the float GEMM, W4A8__XTX_ROWS rows of the triangle at a
   time (P: that many rows of K floats), and each float sum is added to the
   double dst. The calibration feeds it the stream 256 tokens at a time, so
   the float rounding is that of a 256-token sum, at most 256 eps
   sum_t |x_ti x_tj| per element, however many tokens it sees and however
   they are batched (PyTorch's GPTQ keeps its whole running sum in float). */
W4A8_PRIVATE void w4a8__xtx_add(const float *X, size_t T, size_t K, double *dst, float *P, float *ws) {
    size_t i0, i;
    float amax = 0.0f;
    int e = 0;
    w4a8__fisa isa;
    w4a8__fisa_of(W4A8_KERNEL_AUTO, &isa); /* AUTO always resolves */
    /* Inputs whose squares would overflow float (or lose their bits to
       subnormals) are scaled by a power of two, exactly, and the sums back
       in double: the float products see |x| near 1 whatever the data. */
    for (i = 0; i < T * K; i++) amax = fabsf(X[i]) > amax ? fabsf(X[i]) : amax;
    if (amax > 1e12f || (amax > 0.0f && amax < 1e-12f)) {
        float *Xs = P + w4a8__min(W4A8__XTX_ROWS, K) * K;
        frexpf(amax, &e);
        for (i = 0; i < T * K; i++) Xs[i] = ldexpf(X[i], -e);
        X = Xs;
    }
    for (i0 = 0; i0 < K; i0 += W4A8__XTX_ROWS) {
        size_t rows = w4a8__min(W4A8__XTX_ROWS, K - i0), cols = K - i0;
        ptrdiff_t r;
        w4a8__fgemm(&isa, ws, rows, cols, T, 1.0f, X + i0, K, 1, X + i0, K, 0, 0.0f, P, cols);
        W4A8__OMP_FOR
        for (r = 0; r < (ptrdiff_t)rows; r++) {
            double *h = dst + (i0 + (size_t)r) * K;
            const float *p = P + (size_t)r * cols;
            size_t j;
            if (e == 0) {
                W4A8__OMP_SIMD
                for (j = (size_t)r; j < cols; j++) h[i0 + j] += (double)p[j];
            } else {
                for (j = (size_t)r; j < cols; j++) h[i0 + j] += ldexp((double)p[j], 2 * e);
            }
        }
    }
}

/* Scratch of w4a8__xtx_add: P, then room for 256 scaled tokens. */
W4A8_PRIVATE w4a8_status w4a8__xtx_scratch(size_t K, float **P, float **ws) {
    *P = (float *)w4a8__alloc((w4a8__min(W4A8__XTX_ROWS, K) + W4A8__XTX_TOKENS) * K, sizeof(float));
    *ws = w4a8__fgemm_ws();
    if (*P && *ws) return W4A8_OK;
    W4A8_FREE(*P);
    w4a8__free_aligned(*ws);
    return W4A8_ERR_NOMEM;
}


W4A8_IMPL w4a8_status w4a8_calib_create(size_t K, int with_hessian, size_t sample_cap, w4a8_calib **out) {
    w4a8_calib *c;
    size_t kk, sk;
    if (!out) return W4A8_ERR_NULL_ARG;
    if (K == 0) return W4A8_ERR_SHAPE;
    if (w4a8__mul(K, K, &kk) || w4a8__mul(kk, sizeof(double), &kk) ||
        w4a8__mul(sample_cap, K, &sk) || w4a8__mul(sk, sizeof(float), &sk))
        return W4A8_ERR_OVERFLOW;
    c = (w4a8_calib *)W4A8_MALLOC(sizeof *c);
    if (!c) return W4A8_ERR_NOMEM;
    memset(c, 0, sizeof *c);
    c->K = K;
    c->sample_cap = sample_cap;
    c->rng = 0x9E3779B97F4A7C15ull;
    c->absmax = (float *)w4a8__alloc(K, sizeof(float));
    c->abssum = (double *)w4a8__alloc(K, sizeof(double));
    if (with_hessian) {
        c->xtx = (double *)W4A8_MALLOC(kk);
        c->pending = (float *)w4a8__alloc(W4A8__XTX_TOKENS * K, sizeof(float));
    }
    if (sample_cap) c->sample = (float *)W4A8_MALLOC(sk);
    if (!c->absmax || !c->abssum || (with_hessian && (!c->xtx || !c->pending)) || (sample_cap && !c->sample)) {
        w4a8_calib_free(c);
        return W4A8_ERR_NOMEM;
    }
    memset(c->absmax, 0, K * sizeof(float));
    memset(c->abssum, 0, K * sizeof(double));
    if (c->xtx) memset(c->xtx, 0, kk);
    *out = c;
    return W4A8_OK;
}

/* splitmix64: small, fast, and the same on every platform. */
W4A8_PRIVATE uint64_t w4a8__rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

W4A8_IMPL w4a8_status w4a8_calib_add(w4a8_calib *c, const float *X, size_t T) {
    size_t K, t, k, tk;
    float *P = NULL, *ws = NULL;
    if (!c || !X) return W4A8_ERR_NULL_ARG;
    if (T == 0) return W4A8_ERR_SHAPE;
    K = c->K;
    if (w4a8__mul(T, K, &tk)) return W4A8_ERR_OVERFLOW;
    if (!w4a8__all_finite(X, tk)) return W4A8_ERR_NONFINITE;
    /* allocated before anything changes: a failure leaves the stats as they were */
    if (c->xtx && w4a8__xtx_scratch(K, &P, &ws) != W4A8_OK) return W4A8_ERR_NOMEM;
    for (t = 0; t < T; t++) {
        const float *x = X + t * K;
        for (k = 0; k < K; k++) {
            float a = fabsf(x[k]);
            if (a > c->absmax[k]) c->absmax[k] = a;
            c->abssum[k] += a;
        }
    }
    for (t = 0; c->xtx && t < T;) {
        size_t take = w4a8__min(W4A8__XTX_TOKENS - c->pending_rows, T - t);
        memcpy(c->pending + c->pending_rows * K, X + t * K, take * K * sizeof(float));
        c->pending_rows += take;
        t += take;
        if (c->pending_rows == W4A8__XTX_TOKENS) {
            w4a8__xtx_add(c->pending, W4A8__XTX_TOKENS, K, c->xtx, P, ws);
            c->pending_rows = 0;
        }
    }
    for (t = 0; t < T && c->sample; t++) {
        size_t seen = c->tokens + t, slot = c->sample_rows;
        if (slot == c->sample_cap) {
            slot = (size_t)(w4a8__rand(&c->rng) % (uint64_t)(seen + 1));
            if (slot >= c->sample_cap) continue;
        } else {
            c->sample_rows++;
        }
        memcpy(c->sample + slot * K, X + t * K, K * sizeof(float));
    }
    c->tokens += T;
    W4A8_FREE(P);
    w4a8__free_aligned(ws);
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_calib_hessian(const w4a8_calib *c, double *H) {
    size_t K, i, j;
    float *P, *ws;
    double f;
    if (!c || !H) return W4A8_ERR_NULL_ARG;
    if (!c->xtx) return W4A8_ERR_CONFIG;
    if (c->tokens == 0) return W4A8_ERR_NEED_CALIB;
    K = c->K;
    if (c->pending_rows && w4a8__xtx_scratch(K, &P, &ws) != W4A8_OK) return W4A8_ERR_NOMEM;
    memcpy(H, c->xtx, K * K * sizeof(double));
    /* the pending tokens as the next flush would add them */
    if (c->pending_rows) {
        w4a8__xtx_add(c->pending, c->pending_rows, K, H, P, ws);
        W4A8_FREE(P);
        w4a8__free_aligned(ws);
    }
    f = 2.0 / (double)c->tokens;
    for (i = 0; i < K; i++)
        for (j = i; j < K; j++) H[i * K + j] = H[j * K + i] = f * H[i * K + j];
    return W4A8_OK;
}

W4A8_IMPL void w4a8_calib_free(w4a8_calib *c) {
    if (!c) return;
    W4A8_FREE(c->absmax);
    W4A8_FREE(c->abssum);
    W4A8_FREE(c->xtx);
    W4A8_FREE(c->pending);
    W4A8_FREE(c->sample);
    W4A8_FREE(c);
}

/* >>quantize --------------------------------------------------------------- */

/* Scale and zero point of one group on GPTQ's grid (the range contains 0). */
W4A8_PRIVATE void w4a8__fit_group(const float *w, size_t n, int asymmetric, float *scale, uint8_t *zero) {
    float lo = 0.0f, hi = 0.0f;
    size_t i;
    for (i = 0; i < n; i++) {
        if (w[i] < lo) lo = w[i];
        if (w[i] > hi) hi = w[i];
    }
    if (!asymmetric) {
        /* The larger extreme a lands on code 0 exactly (-8 steps: a step of
           a/8, as ggml's Q4_0), the other side b within 7.5 steps, so every
           weight stays within half a step; the step's sign says which side
           a is on. Steps 6-7% finer than GPTQ's max/7.5. */
        int up = hi >= -lo;
        float a = up ? hi : -lo, b = up ? -lo : hi, step = a / 8.0f > b / 7.5f ? a / 8.0f : b / 7.5f;
        *scale = step == 0.0f ? 0.0f : up ? -step : step;
        *zero = 8;
        return;
    }
    *scale = hi / 15.0f - lo / 15.0f; /* not (hi - lo) / 15, which can overflow */
    *zero = (uint8_t)(*scale > 0.0f ? w4a8__clampf(nearbyintf(-lo / *scale), 0.0f, 15.0f) : 8.0f);
}

/* The code of w before the clamp to 0..15 (the STE mask needs it). */
W4A8_PRIVATE float w4a8__code_unclamped(float w, float scale, uint8_t zero) {
    return (scale != 0.0f ? w4a8__clampf(nearbyintf(w / scale), -16.0f, 16.0f) : 0.0f) + (float)zero;
}

W4A8_PRIVATE uint8_t w4a8__code(float w, float scale, uint8_t zero) {
    return (uint8_t)w4a8__clampf(w4a8__code_unclamped(w, scale, zero), 0.0f, 15.0f);
}

/* w4a8__fit_group for the error sum h_i (w_i - q_i)^2 (h NULL: all 1),
   entries with h_i = 0 left out (of the range too): each step t / (1 + j / 80), j = -9 .. 9, of
   the range fit's t rounds the group, the least-squares step of those codes
   scores it, the best wins (llama.cpp's make_qx_quants with an importance
   matrix). j = 0 refitted is no worse than the range fit, and the codes
   rounded again at the winner no worse than those it was fitted to. */
W4A8_PRIVATE void w4a8__fit_group_weighted(const float *w, const float *h, size_t n, int asymmetric,
                                           float *scale, uint8_t *zero) {
    float range[2] = { 0.0f, 0.0f }, base;
    double best = 0.0;
    size_t i;
    int j;
    for (i = 0; i < n; i++) {
        if (h && !(h[i] > 0.0f)) continue;
        range[0] = w[i] < range[0] ? w[i] : range[0];
        range[1] = w[i] > range[1] ? w[i] : range[1];
    }
    w4a8__fit_group(range, 2, asymmetric, scale, zero);
    if ((base = *scale) == 0.0f) return;
    for (j = -9; j <= 9; j++) {
        float t = base / (1.0f + (float)j / 80.0f);
        double swl = 0.0, sll = 0.0;
        for (i = 0; i < n; i++) {
            double l = (double)((int)w4a8__code(w[i], t, *zero) - (int)*zero);
            double hi = h ? (double)h[i] : 1.0;
            swl += hi * (double)w[i] * l;
            sll += hi * l * l;
        }
        if (swl != 0.0 && swl * swl / sll > best) {
            best = swl * swl / sll;
            *scale = (float)(swl / sll);
        }
    }
}

/* RTN, each group fitted by its range or (search) by the h-weighted search. */
W4A8_PRIVATE w4a8_status w4a8__rtn(const float *W, size_t N, size_t K, size_t group_size, int asymmetric,
                                   int search, const float *h, uint8_t *codes, float *scales, uint8_t *zeros) {
    size_t G, groups, k;
    ptrdiff_t n;
    w4a8_status st;
    if (!W || !codes || !scales || !zeros) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(N, K, group_size)) != W4A8_OK) return st;
    if (!w4a8__all_finite(W, N * K) || (h && !w4a8__all_finite(h, K))) return W4A8_ERR_NONFINITE;
    for (k = 0; h && k < K; k++)
        if (h[k] < 0.0f) return W4A8_ERR_CONFIG;
    G = w4a8__group_len(K, group_size);
    groups = (K + G - 1) / G;
    W4A8__OMP_FOR
    for (n = 0; n < (ptrdiff_t)N; n++) {
        const float *w = W + (size_t)n * K;
        size_t g, j;
        for (g = 0; g < groups; g++) {
            size_t k0 = g * G, k1 = k0 + G < K ? k0 + G : K, gi = (size_t)n * groups + g;
            if (search)
                w4a8__fit_group_weighted(w + k0, h ? h + k0 : NULL, k1 - k0, asymmetric, &scales[gi], &zeros[gi]);
            else
                w4a8__fit_group(w + k0, k1 - k0, asymmetric, &scales[gi], &zeros[gi]);
            for (j = k0; j < k1; j++) codes[(size_t)n * K + j] = w4a8__code(w[j], scales[gi], zeros[gi]);
        }
    }
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_quantize_rtn(const float *W, size_t N, size_t K, size_t group_size,
                                        int asymmetric, uint8_t *codes, float *scales, uint8_t *zeros) {
    return w4a8__rtn(W, N, K, group_size, asymmetric, 0, NULL, codes, scales, zeros);
}

W4A8_IMPL w4a8_status w4a8_quantize_rtn_search(const float *W, size_t N, size_t K, size_t group_size,
                                               int asymmetric, const float *h, uint8_t *codes, float *scales,
                                               uint8_t *zeros) {
    return w4a8__rtn(W, N, K, group_size, asymmetric, 1, h, codes, scales, zeros);
}

W4A8_IMPL w4a8_status w4a8_dequantize(const uint8_t *codes, const float *scales, const uint8_t *zeros,
                                      size_t N, size_t K, size_t group_size, float *W) {
    size_t G, groups, n, k;
    w4a8_status st;
    if (!codes || !scales || !zeros || !W) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(N, K, group_size)) != W4A8_OK) return st;
    G = w4a8__group_len(K, group_size);
    groups = (K + G - 1) / G;
    for (n = 0; n < N; n++)
        for (k = 0; k < K; k++) {
            size_t gi = n * groups + k / G;
            W[n * K + k] = scales[gi] * (float)((int)codes[n * K + k] - (int)zeros[gi]);
        }
    return W4A8_OK;
}

/* >>pack ------------------------------------------------------------------- */

W4A8_IMPL w4a8_status w4a8_pack_int4(const uint8_t *codes, size_t N, size_t K, uint8_t *packed) {
    size_t n, k, row;
    w4a8_status st;
    if (!codes || !packed) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(N, K, 1)) != W4A8_OK) return st;
    for (k = 0; k < N * K; k++)
        if (codes[k] > 15) return W4A8_ERR_RANGE;
    row = (K + 1) / 2;
    for (n = 0; n < N; n++) {
        const uint8_t *c = codes + n * K;
        uint8_t *p = packed + n * row;
        for (k = 0; k + 1 < K; k += 2) p[k / 2] = (uint8_t)(c[k] | (c[k + 1] << 4));
        if (K & 1) p[K / 2] = c[K - 1];
    }
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_unpack_int4(const uint8_t *packed, size_t N, size_t K, uint8_t *codes) {
    size_t n, k, row;
    w4a8_status st;
    if (!codes || !packed) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(N, K, 1)) != W4A8_OK) return st;
    row = (K + 1) / 2;
    for (n = 0; n < N; n++)
        for (k = 0; k < K; k++) codes[n * K + k] = (uint8_t)((packed[n * row + k / 2] >> (4 * (k & 1))) & 15);
    return W4A8_OK;
}

/* The blocked layout of the SIMD kernels (KERNELS at the top): rows in
   blocks of 16, each block one stream of 64-byte pieces. */
#define W4A8__ROWS 16

/* Whether the blocked layout serves this group length: every group but the
   last must hold whole 8-code pieces. */
W4A8_PRIVATE int w4a8__blocked_fits(size_t K, size_t G) { return G % 8 == 0 || G >= K; }

/* Bytes of one block's stream, and of all of them. */
W4A8_PRIVATE w4a8_status w4a8__blocked_bytes(size_t N, size_t K, size_t groups, int asymmetric, size_t *block,
                                             size_t *total) {
    size_t pieces;
    if (w4a8__mul(groups, asymmetric ? 2 : 1, &pieces) || pieces > (size_t)-1 - (K / 8 + 1) ||
        w4a8__mul(pieces + (K + 7) / 8, 64, block) || w4a8__mul((N + W4A8__ROWS - 1) / W4A8__ROWS, *block, total))
        return W4A8_ERR_OVERFLOW;
    return W4A8_OK;
}

/* Portable codes[N][K] to the blocked layout (with the scales and zeros) or,
   with to_blocked 0, back: the same walk both ways. */
W4A8_PRIVATE void w4a8__blocked_convert(uint8_t *codes, const float *scales, const uint8_t *zeros, size_t N,
                                        size_t K, size_t G, size_t groups, int asymmetric, uint8_t *blocked,
                                        int to_blocked) {
    size_t bb, total;
    ptrdiff_t b;
    w4a8__blocked_bytes(N, K, groups, asymmetric, &bb, &total);
    if (to_blocked) memset(blocked, 0, total);
    W4A8__OMP_FOR
    for (b = 0; b < (ptrdiff_t)((N + W4A8__ROWS - 1) / W4A8__ROWS); b++) {
        uint8_t *p = blocked + (size_t)b * bb;
        size_t g, k, r, j;
        for (g = 0; g < groups; g++) {
            size_t k1 = (g + 1) * G < K ? (g + 1) * G : K;
            for (r = 0; r < W4A8__ROWS && to_blocked; r++) {
                size_t n = (size_t)b * W4A8__ROWS + r;
                float scale = n < N ? scales[n * groups + g] : 0.0f;
                int32_t zero = n < N ? zeros[n * groups + g] : 0;
                memcpy(p + 4 * r, &scale, 4);
                if (asymmetric) memcpy(p + 64 + 4 * r, &zero, 4);
            }
            p += asymmetric ? 128 : 64;
            for (k = g * G; k < k1; k += 8, p += 64)
                for (r = 0; r < W4A8__ROWS && (size_t)b * W4A8__ROWS + r < N; r++) {
                    uint8_t *c = codes + ((size_t)b * W4A8__ROWS + r) * K;
                    for (j = 0; j < 8 && k + j < k1; j++) {
                        uint8_t *q = p + 4 * r + j % 4;
                        int shift = j < 4 ? 0 : 4;
                        if (to_blocked) *q = (uint8_t)(*q | c[k + j] << shift);
                        else c[k + j] = (uint8_t)(*q >> shift & 15);
                    }
                }
        }
    }
}

/* >>activations ------------------------------------------------------------ */

/* One activation before rounding: x, or x * (1/s) with equalization. */
W4A8_PRIVATE float w4a8__act_value(const float *x, const float *inv_smooth, size_t k) {
    return inv_smooth ? x[k] * inv_smooth[k] : x[k];
}

W4A8_PRIVATE int8_t w4a8__act_code(float v, float inv) {
    return (int8_t)w4a8__clampf(nearbyintf(w4a8__clampf(v * inv, -128.0f, 128.0f)), -127.0f, 127.0f);
}

/* SIMD pieces of one token's quantization. Each handles a prefix of the
   token with the scalar code's operations, lane by lane, and returns its
   length; the scalar code does the rest. NULL: all scalar. */
typedef struct w4a8__act_isa {
    /* max |x'| into *amax, and *bad = 1 if some x is NaN or Inf */
    size_t (*scan)(const float *x, const float *inv_smooth, size_t K, float *amax, int *bad);
    /* q = w4a8__act_code(x', inv) */
    size_t (*codes)(const float *x, const float *inv_smooth, size_t K, float inv, int8_t *q);
    /* *sum += q[0] + q[1] + ... */
    size_t (*sum)(const int8_t *q, size_t n, int32_t *sum);
} w4a8__act_isa;

W4A8__SIMD_BEGIN
#ifdef W4A8__AVX512
/* Lanes [0, n) of 16, or all of them. */
W4A8_PRIVATE W4A8__TARGET_AVX512 size_t w4a8__scan_avx512(const float *x, const float *inv_smooth, size_t K,
                                                          float *amax, int *bad) {
    const __m512i exp = _mm512_set1_epi32(0x7f800000);
    __m512 hi = _mm512_setzero_ps();
    __m256 h8;
    __m128 h4;
    __mmask16 nonfinite = 0;
    size_t k;
    for (k = 0; k < K; k += 16) {
        __mmask16 live = w4a8__mask16(K - k);
        __m512 v = _mm512_maskz_loadu_ps(live, x + k);
        nonfinite |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(v), exp), exp);
        if (inv_smooth) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(live, inv_smooth + k));
        hi = _mm512_max_ps(hi, _mm512_abs_ps(v));
    }
    h8 = _mm256_max_ps(_mm512_castps512_ps256(hi), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(hi), 1)));
    h4 = _mm_max_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    h4 = _mm_max_ps(h4, _mm_movehl_ps(h4, h4));
    h4 = _mm_max_ss(h4, _mm_movehdup_ps(h4));
    *amax = _mm_cvtss_f32(h4);
    *bad |= nonfinite != 0;
    return K;
}

W4A8_PRIVATE W4A8__TARGET_AVX512 size_t w4a8__codes_avx512(const float *x, const float *inv_smooth, size_t K,
                                                           float inv, int8_t *q) {
    const __m512 s = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(128.0f);
    size_t k;
    for (k = 0; k < K; k += 16) {
        __mmask16 live = w4a8__mask16(K - k);
        __m512 v = _mm512_maskz_loadu_ps(live, x + k);
        __m512i c;
        if (inv_smooth) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(live, inv_smooth + k));
        v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, s), lo), hi);
        c = _mm512_cvtps_epi32(v); /* the current rounding mode: to nearest even, as nearbyintf */
        c = _mm512_max_epi32(_mm512_min_epi32(c, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
        _mm512_mask_cvtepi32_storeu_epi8(q + k, live, c);
    }
    return K;
}

/* Bytes biased to unsigned (x ^ 0x80 = x + 128) and summed by vpsadbw; the
   zeroed lanes past the end also read as 128, so every lane gives back 128. */
W4A8_PRIVATE W4A8__TARGET_AVX512 size_t w4a8__sum_avx512(const int8_t *q, size_t n, int32_t *sum) {
    const __m512i bias = _mm512_set1_epi8(-128);
    __m512i acc = _mm512_setzero_si512();
    __m256i a4;
    __m128i a2;
    size_t k;
    int64_t lanes = 0;
    for (k = 0; k < n; k += 64, lanes += 64) {
        __mmask64 live = n - k >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n - k)) - 1);
        __m512i v = _mm512_xor_si512(_mm512_maskz_loadu_epi8(live, q + k), bias);
        acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, _mm512_setzero_si512()));
    }
    a4 = _mm256_add_epi64(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
    a2 = _mm_add_epi64(_mm256_castsi256_si128(a4), _mm256_extracti128_si256(a4, 1));
    *sum += (int32_t)(_mm_cvtsi128_si64(a2) + _mm_extract_epi64(a2, 1) - 128 * lanes);
    return n;
}
#endif

#ifdef W4A8__AVX2
W4A8_PRIVATE W4A8__TARGET_AVX2 size_t w4a8__scan_avx2(const float *x, const float *inv_smooth, size_t K,
                                                      float *amax, int *bad) {
    const __m256i exp = _mm256_set1_epi32(0x7f800000);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 hi = _mm256_setzero_ps();
    __m256i nonfinite = _mm256_setzero_si256();
    __m128 h4;
    size_t k;
    for (k = 0; k + 8 <= K; k += 8) {
        __m256 v = _mm256_loadu_ps(x + k);
        nonfinite = _mm256_or_si256(nonfinite, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), exp), exp));
        if (inv_smooth) v = _mm256_mul_ps(v, _mm256_loadu_ps(inv_smooth + k));
        hi = _mm256_max_ps(hi, _mm256_andnot_ps(sign, v));
    }
    h4 = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps(hi, 1));
    h4 = _mm_max_ps(h4, _mm_movehl_ps(h4, h4));
    h4 = _mm_max_ss(h4, _mm_movehdup_ps(h4));
    *amax = _mm_cvtss_f32(h4);
    *bad |= !_mm256_testz_si256(nonfinite, nonfinite);
    return k;
}

W4A8_PRIVATE W4A8__TARGET_AVX2 size_t w4a8__codes_avx2(const float *x, const float *inv_smooth, size_t K,
                                                       float inv, int8_t *q) {
    const __m256 s = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(128.0f);
    const __m256i cmax = _mm256_set1_epi32(127), cmin = _mm256_set1_epi32(-127);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* undo the packs' lane interleave */
    size_t k;
    int i;
    for (k = 0; k + 32 <= K; k += 32) {
        __m256i c[4];
        for (i = 0; i < 4; i++) {
            __m256 v = _mm256_loadu_ps(x + k + 8 * i);
            if (inv_smooth) v = _mm256_mul_ps(v, _mm256_loadu_ps(inv_smooth + k + 8 * i));
            v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, s), lo), hi);
            c[i] = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(v), cmax), cmin);
        }
        c[0] = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
        _mm256_storeu_si256((__m256i *)(q + k), _mm256_permutevar8x32_epi32(c[0], order));
    }
    return k;
}

W4A8_PRIVATE W4A8__TARGET_AVX2 size_t w4a8__sum_avx2(const int8_t *q, size_t n, int32_t *sum) {
    const __m256i bias = _mm256_set1_epi8(-128);
    __m256i acc = _mm256_setzero_si256();
    __m128i a2;
    size_t k;
    for (k = 0; k + 32 <= n; k += 32) {
        __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + k)), bias);
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(v, _mm256_setzero_si256()));
    }
    a2 = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    *sum += (int32_t)(_mm_cvtsi128_si64(a2) + _mm_extract_epi64(a2, 1) - 128 * (int64_t)k);
    return k;
}
#endif

#ifdef W4A8__NEON
W4A8_PRIVATE size_t w4a8__scan_neon(const float *x, const float *inv_smooth, size_t K, float *amax, int *bad) {
    const uint32x4_t exp = vdupq_n_u32(0x7f800000u);
    float32x4_t hi = vdupq_n_f32(0.0f);
    uint32x4_t nonfinite = vdupq_n_u32(0);
    size_t k;
    for (k = 0; k + 4 <= K; k += 4) {
        float32x4_t v = vld1q_f32(x + k);
        nonfinite = vorrq_u32(nonfinite, vceqq_u32(vandq_u32(vreinterpretq_u32_f32(v), exp), exp));
        if (inv_smooth) v = vmulq_f32(v, vld1q_f32(inv_smooth + k));
        hi = vmaxq_f32(hi, vabsq_f32(v));
    }
    *amax = vmaxvq_f32(hi);
    *bad |= vmaxvq_u32(nonfinite) != 0;
    return k;
}

W4A8_PRIVATE size_t w4a8__codes_neon(const float *x, const float *inv_smooth, size_t K, float inv, int8_t *q) {
    const float32x4_t s = vdupq_n_f32(inv), lo = vdupq_n_f32(-128.0f), hi = vdupq_n_f32(128.0f);
    size_t k;
    int i;
    for (k = 0; k + 8 <= K; k += 8) {
        int32x4_t c[2];
        for (i = 0; i < 2; i++) {
            float32x4_t v = vld1q_f32(x + k + 4 * i);
            if (inv_smooth) v = vmulq_f32(v, vld1q_f32(inv_smooth + k + 4 * i));
            v = vminq_f32(vmaxq_f32(vmulq_f32(v, s), lo), hi);
            c[i] = vcvtnq_s32_f32(v); /* to nearest even, as nearbyintf in the default mode */
            c[i] = vmaxq_s32(vminq_s32(c[i], vdupq_n_s32(127)), vdupq_n_s32(-127));
        }
        vst1_s8(q + k, vmovn_s16(vcombine_s16(vmovn_s32(c[0]), vmovn_s32(c[1]))));
    }
    return k;
}

W4A8_PRIVATE size_t w4a8__sum_neon(const int8_t *q, size_t n, int32_t *sum) {
    int32x4_t acc = vdupq_n_s32(0);
    size_t k;
    for (k = 0; k + 16 <= n; k += 16) acc = vpadalq_s16(acc, vpaddlq_s8(vld1q_s8(q + k)));
    *sum += vaddvq_s32(acc);
    return k;
}
#endif
W4A8__SIMD_END

/* The activation pieces a kernel's instruction set provides. */
W4A8_PRIVATE w4a8__act_isa w4a8__act_isa_of(w4a8_kernel kernel) {
    w4a8__act_isa isa;
    memset(&isa, 0, sizeof isa);
#ifdef W4A8__AVX512
    if (kernel == W4A8_KERNEL_AVX512_VNNI) {
        isa.scan = w4a8__scan_avx512;
        isa.codes = w4a8__codes_avx512;
        isa.sum = w4a8__sum_avx512;
    }
#endif
#ifdef W4A8__AVX2
    if (kernel == W4A8_KERNEL_AVX2 || kernel == W4A8_KERNEL_AVX_VNNI) {
        isa.scan = w4a8__scan_avx2;
        isa.codes = w4a8__codes_avx2;
        isa.sum = w4a8__sum_avx2;
    }
#endif
#ifdef W4A8__NEON
    if (kernel == W4A8_KERNEL_NEON) {
        isa.scan = w4a8__scan_neon;
        isa.codes = w4a8__codes_neon;
        isa.sum = w4a8__sum_neon;
    }
#endif
    (void)kernel;
    return isa;
}

/* max |x'| of one token; 0 if x holds NaN or Inf, or, per token, if x' overflows
   to Inf (per tensor that saturates like any large value). */
W4A8_PRIVATE int w4a8__scan_token(const w4a8__act_isa *isa, const float *x, size_t K, const float *inv_smooth,
                                  w4a8_act_mode mode, float *amax) {
    float hi = 0.0f;
    int bad = 0;
    size_t k = isa->scan ? isa->scan(x, inv_smooth, K, &hi, &bad) : 0;
    for (; k < K; k++) {
        float a = fabsf(w4a8__act_value(x, inv_smooth, k));
        bad |= !w4a8__finite(x[k]);
        if (a > hi) hi = a;
    }
    *amax = hi;
    return !bad && (mode != W4A8_ACT_PER_TOKEN || w4a8__finite(hi));
}

/* One token: codes, scale and group sums. 0 if the token is invalid. */
W4A8_PRIVATE int w4a8__quantize_token(const w4a8__act_isa *isa, const float *x, size_t K, size_t G,
                                      const float *inv_smooth, w4a8_act_mode mode, float static_scale,
                                      int8_t *q, float *scale, int32_t *group_sums) {
    float amax, inv;
    size_t k;
    if (!w4a8__scan_token(isa, x, K, inv_smooth, mode, &amax)) return 0;
    if (mode == W4A8_ACT_PER_TOKEN) {
        *scale = amax / 127.0f;
        inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    } else {
        *scale = static_scale;
        inv = 1.0f / static_scale;
    }
    k = isa->codes ? isa->codes(x, inv_smooth, K, inv, q) : 0;
    for (; k < K; k++) q[k] = w4a8__act_code(w4a8__act_value(x, inv_smooth, k), inv);
    for (k = 0; k < K; k += G) {
        size_t n = k + G < K ? G : K - k, i;
        int32_t s = 0;
        for (i = isa->sum ? isa->sum(q + k, n, &s) : 0; i < n; i++) s += q[k + i];
        group_sums[k / G] = s;
    }
    return 1;
}

/* Every token; validate first to leave the outputs untouched on failure
   (the forward's workspace needs no such care). */
W4A8_PRIVATE w4a8_status w4a8__quantize_acts(w4a8_kernel kernel, int validate, const float *X, size_t M,
                                             size_t K, size_t G, const float *inv_smooth, w4a8_act_mode mode,
                                             float static_scale, int8_t *codes, float *scales,
                                             int32_t *group_sums) {
    const w4a8__act_isa isa = w4a8__act_isa_of(kernel);
    size_t groups = (K + G - 1) / G;
    ptrdiff_t m;
    int bad = 0;
    W4A8__OMP_FOR_IF(M > 1)
    for (m = 0; m < (ptrdiff_t)M; m++) {
        size_t i = (size_t)m;
        float amax;
        if (validate ? !w4a8__scan_token(&isa, X + i * K, K, inv_smooth, mode, &amax)
                     : !w4a8__quantize_token(&isa, X + i * K, K, G, inv_smooth, mode, static_scale,
                                             codes + i * K, scales + i, group_sums + i * groups)) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            bad = 1;
        }
    }
    if (bad) return W4A8_ERR_NONFINITE;
    if (validate) return w4a8__quantize_acts(kernel, 0, X, M, K, G, inv_smooth, mode, static_scale, codes, scales, group_sums);
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_quantize_activations(const float *X, size_t M, size_t K, size_t group_size,
                                                const float *inv_smooth, w4a8_act_mode mode,
                                                float static_scale, int8_t *codes, float *scales,
                                                int32_t *group_sums) {
    w4a8_kernel kernel = W4A8_KERNEL_SCALAR;
    w4a8_status st;
    if (!X || !codes || !scales || !group_sums) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(M, K, group_size)) != W4A8_OK) return st;
    if (mode != W4A8_ACT_PER_TOKEN && mode != W4A8_ACT_PER_TENSOR) return W4A8_ERR_CONFIG;
    if (mode == W4A8_ACT_PER_TENSOR && !w4a8__valid_scale(static_scale)) return W4A8_ERR_RANGE;
    if (inv_smooth && !w4a8__all_finite(inv_smooth, K)) return W4A8_ERR_NONFINITE;
    w4a8_kernel_resolve(W4A8_KERNEL_AUTO, &kernel);
    return w4a8__quantize_acts(kernel, 1, X, M, K, w4a8__group_len(K, group_size), inv_smooth, mode, static_scale,
                               codes, scales, group_sums);
}

/* >>rotate ----------------------------------------------------------------- */

/* The orders carried, by the odd part of m (every m is 4 * odd). */
static const size_t w4a8__had_orders[] = { 12, 20, 28, 36, 44, 52, 60, 108, 140, 156, 172 };

/* Williamson matrices: first rows of the symmetric circulants A, B, C, D
   (A^2 + B^2 + C^2 + D^2 = m I), as in Sloane's library of Hadamard
   matrices (had.52.will from a search here, had.156.will and had.172.will
   as QuaRot ships them); H = [A B C D; -B A -D C; -C D A -B; -D -C B A]. */
static const char *const w4a8__williamson[3][4] = {
    { "++----------+", "++-++----++-+", "--++-+--+-++-", "+-+-++--++-+-" },
    { "+++--+-+-----+--++----++--+-----+-+--++", "++++---+--++----+-+--+-+----++--+---+++",
      "+++--++-+---+-+--+----+--+-+---+-++--++", "+---++-+-+-----+++-++-+++-----+-+-++---" },
    { "+---++--++++-+-+++-++--++-+++-+-++++--++---", "++-++++++----+-+--++-++-++--+-+----++++++-+",
      "+++-+-++--+-+-++++-+----+-++++-+-+--++-+-++", "++---++++-+--+--++--------++--+--+-++++---+" }
};

/* Quadratic character of a modulo the prime q (q < 256). */
W4A8_PRIVATE int w4a8__chi(size_t a, size_t q) {
    size_t x;
    a %= q;
    if (a == 0) return 0;
    for (x = 1; x < q; x++)
        if (x * x % q == a) return 1;
    return -1;
}

/* The order-m matrix of the list above into H[m][m]. */
W4A8_PRIVATE void w4a8__had_fill(size_t m, int8_t *H) {
    size_t i, j, q;
    if (m == 52 || m == 156 || m == 172) {
        const char *const *w = w4a8__williamson[m == 52 ? 0 : m == 156 ? 1 : 2];
        /* block (r, c) is sign[r][c] * circulant idx[r][c] */
        static const int idx[4][4] = { { 0, 1, 2, 3 }, { 1, 0, 3, 2 }, { 2, 3, 0, 1 }, { 3, 2, 1, 0 } };
        static const int sgn[4][4] = { { 1, 1, 1, 1 }, { -1, 1, -1, 1 }, { -1, 1, 1, -1 }, { -1, -1, 1, 1 } };
        size_t b = m / 4;
        for (i = 0; i < m; i++)
            for (j = 0; j < m; j++) {
                size_t r = i / b, c = j / b, shift = (j % b + b - i % b) % b;
                H[i * m + j] = (int8_t)(sgn[r][c] * (w[idx[r][c]][shift] == '+' ? 1 : -1));
            }
    } else if (m == 28 || m == 36) {
        /* Paley II: C = [0 1; 1 Q] (Q_ij = chi(j - i), symmetric for q = 1 mod 4),
           H = C (x) [1 1; 1 -1] + I (x) [1 -1; -1 -1]. */
        q = m / 2 - 1;
        for (i = 0; i < m; i++)
            for (j = 0; j < m; j++) {
                size_t a = i / 2, b = j / 2;
                int c = a == b ? 0 : (a == 0 || b == 0) ? 1 : w4a8__chi(b + q - a, q);
                int e = (i & 1) && (j & 1) ? -1 : 1;
                H[i * m + j] = (int8_t)(a == b ? ((i & 1) || (j & 1) ? -1 : 1) : c * e);
            }
    } else {
        /* Paley I: H = I + [0 1; -1 Q], Q_ij = chi(j - i), skew for q = 3 mod 4. */
        q = m - 1;
        for (i = 0; i < m; i++)
            for (j = 0; j < m; j++)
                H[i * m + j] = (int8_t)(i == j ? 1 : i == 0 ? 1 : j == 0 ? -1 : w4a8__chi(j + q - i, q));
    }
}

W4A8_IMPL w4a8_status w4a8_hadamard_order(size_t n, size_t *m) {
    size_t i, o;
    if (!m) return W4A8_ERR_NULL_ARG;
    if (n == 0) return W4A8_ERR_SHAPE;
    for (o = n; o % 2 == 0; o /= 2) {}
    if (o == 1) {
        *m = 1;
        return W4A8_OK;
    }
    for (i = 0; i < sizeof w4a8__had_orders / sizeof *w4a8__had_orders; i++)
        if (w4a8__had_orders[i] / 4 == o && n % w4a8__had_orders[i] == 0) {
            *m = w4a8__had_orders[i];
            return W4A8_OK;
        }
    return W4A8_ERR_UNSUPPORTED;
}

/* d_i = -1 when this is 1. */
W4A8_PRIVATE int w4a8__had_negate(uint64_t seed, size_t i) {
    uint64_t state = seed + 0x9E3779B97F4A7C15ull * (uint64_t)i;
    return seed != 0 && (w4a8__rand(&state) >> 63) != 0;
}

/* A transform of order n, in one allocation: this struct, H_m (or H_m^T
   for x Q^T) as floats [m][m], the signs [n]; the layer keeps it as rotate_plan. */
typedef struct w4a8__had {
    size_t n, m, p;
    int inverse;
    int avx512;             /* 1: the AVX-512 body (the same additions, 16 lanes) */
    const float *Hm;        /* NULL when m == 1 */
    const unsigned char *neg; /* 1 where d_i = -1 */
    const uint16_t *neg16;  /* the same, 16 to a mask (lane i of mask i / 16), when avx512 */
    float scale;            /* (float)(1 / sqrt(n)) */
} w4a8__had;

W4A8_PRIVATE w4a8_status w4a8__had_plan(size_t n, uint64_t seed, int inverse, w4a8_kernel kernel,
                                        w4a8__had **out) {
    size_t m, i, j, mm, bytes;
    unsigned char *b;
    float *Hf;
    uint16_t *neg16;
    w4a8__had *h;
    w4a8_status st = w4a8_hadamard_order(n, &m);
    if (st != W4A8_OK) return st;
    mm = m > 1 ? m * m : 0;
    bytes = sizeof(w4a8__had) + mm * sizeof(float);
    if (n > ((size_t)-1 - bytes) / 2) return W4A8_ERR_OVERFLOW;
    if (!(b = (unsigned char *)W4A8_MALLOC(bytes + 2 * n))) return W4A8_ERR_NOMEM;
    h = (w4a8__had *)b;
    Hf = (float *)(b + sizeof(w4a8__had)); /* the struct's size keeps floats aligned */
    if (m > 1) {
        int8_t *H = (int8_t *)W4A8_MALLOC(mm);
        if (!H) {
            W4A8_FREE(b);
            return W4A8_ERR_NOMEM;
        }
        w4a8__had_fill(m, H);
        for (i = 0; i < m; i++)
            for (j = 0; j < m; j++) Hf[i * m + j] = (float)(inverse ? H[j * m + i] : H[i * m + j]);
        W4A8_FREE(H);
    }
    h->n = n, h->m = m, h->p = n / m, h->inverse = inverse;
    h->avx512 = kernel == W4A8_KERNEL_AVX512_VNNI && h->p >= 16;
    h->Hm = m > 1 ? Hf : NULL;
    h->neg = b + bytes;
    neg16 = (uint16_t *)(b + bytes + n + (n & 1)); /* n / 8 bytes at an even offset */
    h->neg16 = neg16;
    for (i = 0; i < n; i++) b[bytes + i] = (unsigned char)w4a8__had_negate(seed, i);
    for (i = 0; h->avx512 && i < n; i += 16)
        for (neg16[i / 16] = 0, j = 0; j < 16; j++) neg16[i / 16] |= (uint16_t)(h->neg[i + j] << j);
    h->scale = (float)(1.0 / sqrt((double)n));
    *out = h;
    return W4A8_OK;
}

/* y[0..m) = x[0..m) H (H[m][m] of +-1): each y_j sums x_i H_ij over i in
   increasing order; eight columns at a time in registers. The products are
   exact, so a fused multiply-add gives the same bits. */
W4A8_PRIVATE void w4a8__had_dense(const float *H, size_t m, const float *x, float *y) {
    size_t i, j, k;
    for (j = 0; j + 8 <= m; j += 8) {
        float a[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
        for (i = 0; i < m; i++) {
            const float *h = H + i * m + j, s = x[i];
            for (k = 0; k < 8; k++) a[k] += s * h[k];
        }
        for (k = 0; k < 8; k++) y[j + k] = a[k];
    }
    for (; j < m; j++) {
        float a = 0.0f;
        for (i = 0; i < m; i++) a += x[i] * H[i * m + j];
        y[j] = a;
    }
}

/* y[jm][.] = sum over im of H[im][jm] t[im][.], im increasing, for t and y
   [m][p] with p a multiple of 8: eight columns at a time in registers. */
W4A8_PRIVATE void w4a8__had_blocks(const float *H, size_t m, size_t p, const float *t, float *y) {
    size_t im, jm, j, k;
    for (jm = 0; jm < m; jm++)
        for (j = 0; j < p; j += 8) {
            float a[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
            for (im = 0; im < m; im++) {
                const float *r = t + im * p + j, s = H[im * m + jm];
                for (k = 0; k < 8; k++) a[k] += s * r[k];
            }
            for (k = 0; k < 8; k++) y[jm * p + j + k] = a[k];
        }
}

/* The butterflies of lengths 1, 2, 4 ... below len_end on the m blocks of t [m][p]. */
W4A8_PRIVATE void w4a8__had_butterflies(float *t, size_t n, size_t p, size_t len_end) {
    size_t b, len, i, j, k;
    for (b = 0; b < n; b += p)
        for (len = 1; len < len_end && len < p; len <<= 1)
            for (i = b; i < b + p; i += 2 * len)
                if (len >= 8)
                    for (j = i; j < i + len; j += 8) {
                        float u[8], v[8];
                        for (k = 0; k < 8; k++) u[k] = t[j + k], v[k] = t[j + len + k];
                        for (k = 0; k < 8; k++) t[j + k] = u[k] + v[k], t[j + len + k] = u[k] - v[k];
                    }
                else
                    for (j = i; j < i + len; j++) {
                        float u = t[j], v = t[j + len];
                        t[j] = u + v;
                        t[j + len] = u - v;
                    }
}

W4A8__SIMD_BEGIN
#ifdef W4A8__AVX512
/* The blocks of length >= 16 of w4a8__had_row, 16 lanes at a time: each lane
   does the scalar code's additions in its order (u + v, u - v; acc + r or
   acc - r for H = +1 / -1, which is acc + H r exactly). */
/* One butterfly level of length len < 16 inside a vector: the partner
   lane's value (swap), then u + v in the lower lanes and u - v in the upper
   ones, as (partner - self) there is exactly u - v. */
#define W4A8__HAD_LEVEL(a, swapped, upper)                                                                   \
    do {                                                                                                     \
        __m512 s_ = (swapped);                                                                               \
        a = _mm512_mask_blend_ps((__mmask16)(upper), _mm512_add_ps(a, s_), _mm512_sub_ps(s_, a));          \
    } while (0)
/* One butterfly between two vectors: u + v, u - v. */
#define W4A8__HAD_PAIR(u, v)                                                                                 \
    do {                                                                                                     \
        __m512 u_ = (u), v_ = (v);                                                                           \
        (u) = _mm512_add_ps(u_, v_);                                                                         \
        (v) = _mm512_sub_ps(u_, v_);                                                                         \
    } while (0)

/* Floats x[i..i+16): the signs (-x flips the sign bit, lane l negated where
   mask bit l is set), then lengths 1, 2, 4, 8 inside the vector. */
W4A8_PRIVATE W4A8__TARGET_AVX512 __m512 w4a8__had_vec_avx512(const w4a8__had *h, const float *x, size_t i) {
    __m512 a = _mm512_loadu_ps(x + i);
    if (!h->inverse)
        a = _mm512_castsi512_ps(_mm512_mask_xor_epi32(_mm512_castps_si512(a), (__mmask16)h->neg16[i / 16],
                                                      _mm512_castps_si512(a), _mm512_set1_epi32((int)0x80000000u)));
    W4A8__HAD_LEVEL(a, _mm512_permute_ps(a, 0xB1), 0xAAAA);
    W4A8__HAD_LEVEL(a, _mm512_permute_ps(a, 0x4E), 0xCCCC);
    W4A8__HAD_LEVEL(a, _mm512_shuffle_f32x4(a, a, 0xB1), 0xF0F0);
    W4A8__HAD_LEVEL(a, _mm512_shuffle_f32x4(a, a, 0x4E), 0xFF00);
    return a;
}

W4A8_PRIVATE W4A8__TARGET_AVX512 void w4a8__had_row_avx512(const w4a8__had *h, const float *x, float *t,
                                                            float *y) {
    size_t n = h->n, m = h->m, p = h->p, len, i, j, b, jm, im;
    const __m512 scale = _mm512_set1_ps(h->scale);
    size_t chunk = p >= 128 ? 128 : 16; /* floats the first pass keeps in registers */
    if (chunk == 16)
        for (i = 0; i < n; i += 16) _mm512_storeu_ps(t + i, w4a8__had_vec_avx512(h, x, i));
    for (i = 0; chunk == 128 && i < n; i += 128) {
        __m512 a[8];
        int v;
        W4A8__FUNROLL for (v = 0; v < 8; v++) a[v] = w4a8__had_vec_avx512(h, x, i + 16 * (size_t)v);
        /* lengths 16, 32, 64 between the 8 vectors of the chunk */
        W4A8__FUNROLL for (v = 0; v < 8; v++) if ((v & 1) == 0) W4A8__HAD_PAIR(a[v], a[v + 1]);
        W4A8__FUNROLL for (v = 0; v < 8; v++) if ((v & 2) == 0) W4A8__HAD_PAIR(a[v], a[v + 2]);
        W4A8__FUNROLL for (v = 0; v < 4; v++) W4A8__HAD_PAIR(a[v], a[v + 4]);
        W4A8__FUNROLL for (v = 0; v < 8; v++) _mm512_storeu_ps(t + i + 16 * (size_t)v, a[v]);
    }
    for (b = 0; b < n; b += p) /* the longer lengths in memory */
        for (len = chunk; len < p; len <<= 1)
            for (i = b; i < b + p; i += 2 * len)
                for (j = i; j < i + len; j += 16) {
                    __m512 u = _mm512_loadu_ps(t + j), v = _mm512_loadu_ps(t + j + len);
                    _mm512_storeu_ps(t + j, _mm512_add_ps(u, v));
                    _mm512_storeu_ps(t + j + len, _mm512_sub_ps(u, v));
                }
    if (m == 1) {
        if (!h->inverse)
            for (i = 0; i < n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(t + i), scale));
        return;
    }
    /* y[jm] = sum over im of H[im][jm] t[im], im increasing: 16 outputs in
       registers meet each input vector once (H r is exact: acc + r or acc - r) */
    for (j = 0; j < p; j += 16)
        for (jm = 0; jm < m; jm += 16) {
            size_t nb = m - jm < 16 ? m - jm : 16, k;
            __m512 acc[16];
            W4A8__FUNROLL for (k = 0; k < 16; k++) acc[k] = _mm512_setzero_ps();
            for (im = 0; im < m; im++) {
                __m512 r = _mm512_loadu_ps(t + im * p + j);
                const float *hr = h->Hm + im * m + jm;
                W4A8__FUNROLL for (k = 0; k < 16; k++) if (k < nb) acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(hr[k]), r, acc[k]);
            }
            W4A8__FUNROLL for (k = 0; k < 16; k++) if (k < nb)
                _mm512_storeu_ps(y + (jm + k) * p + j, h->inverse ? acc[k] : _mm512_mul_ps(acc[k], scale));
        }
}
#undef W4A8__HAD_LEVEL
#undef W4A8__HAD_PAIR
#endif
W4A8__SIMD_END

/* One row: y = x Q (or x Q^T for an inverse plan); tmp[n] scratch (unused
   when m == 1); y may be x. Every path adds in the same order for a given n,
   so the layout and instruction-set choices below change speed, never bits. */
W4A8_PRIVATE void w4a8__had_row(const w4a8__had *h, const float *x, float *y, float *tmp) {
    size_t n = h->n, m = h->m, p = h->p, i, j;
    float *t = m > 1 ? tmp : y;
    int scaled = 0;
#ifdef W4A8__AVX512
    if (h->avx512) {
        w4a8__had_row_avx512(h, x, t, y);
        scaled = !h->inverse;
    } else
#endif
    {
        for (i = 0; i < n; i++) t[i] = !h->inverse && h->neg[i] ? -x[i] : x[i];
        w4a8__had_butterflies(t, n, p, p);
        if (m > 1 && p >= 8) w4a8__had_blocks(h->Hm, m, p, t, y);
        else if (m > 1) {
            /* short blocks: to [p][m] in y, each row times H_m into tmp, back to [m][p] */
            for (i = 0; i < m; i++)
                for (j = 0; j < p; j++) y[j * m + i] = t[i * p + j];
            for (j = 0; j < p; j++) w4a8__had_dense(h->Hm, m, y + j * m, tmp + j * m);
            for (i = 0; i < m; i++)
                for (j = 0; j < p; j++) y[i * p + j] = tmp[j * m + i];
        }
    }
    if (!scaled)
        for (i = 0; i < n; i++) y[i] = h->inverse && h->neg[i] ? -(y[i] * h->scale) : y[i] * h->scale;
}

/* Every row of X[M][n] into Y (Y may be X); tmp[M][n] when m > 1. Threads take rows. */
W4A8_PRIVATE void w4a8__had_rows(const w4a8__had *h, const float *X, size_t M, float *Y, float *tmp) {
    ptrdiff_t r;
    W4A8__OMP_FOR_IF(M > 1)
    for (r = 0; r < (ptrdiff_t)M; r++)
        w4a8__had_row(h, X + (size_t)r * h->n, Y + (size_t)r * h->n, tmp ? tmp + (size_t)r * h->n : NULL);
}

W4A8_IMPL w4a8_status w4a8_hadamard_matrix(size_t n, uint64_t seed, int8_t *H) {
    size_t m, p, i, j, nn;
    int8_t *Hm;
    w4a8_status st;
    if (!H) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8_hadamard_order(n, &m)) != W4A8_OK) return st;
    if (w4a8__mul(n, n, &nn)) return W4A8_ERR_OVERFLOW;
    if (!(Hm = (int8_t *)W4A8_MALLOC(m * m))) return W4A8_ERR_NOMEM;
    if (m > 1) w4a8__had_fill(m, Hm);
    else Hm[0] = 1;
    p = n / m;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) {
            int s = Hm[i / p * m + j / p];
            size_t bits = i % p & j % p;
            while (bits) { /* Sylvester: (-1)^popcount(i_p & j_p) */
                s = -s;
                bits &= bits - 1;
            }
            H[i * n + j] = (int8_t)(w4a8__had_negate(seed, i) ? -s : s);
        }
    W4A8_FREE(Hm);
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_hadamard(const float *X, size_t M, size_t n, uint64_t seed, int inverse, float *Y) {
    w4a8__had *h = NULL;
    w4a8_kernel kernel = W4A8_KERNEL_SCALAR;
    float *tmp = NULL;
    size_t mn;
    w4a8_status st;
    if (!X || !Y) return W4A8_ERR_NULL_ARG;
    if (M == 0 || n == 0) return W4A8_ERR_SHAPE;
    if (w4a8__mul(M, n, &mn)) return W4A8_ERR_OVERFLOW;
    if (!w4a8__all_finite(X, mn)) return W4A8_ERR_NONFINITE;
    w4a8_kernel_resolve(W4A8_KERNEL_AUTO, &kernel);
    if ((st = w4a8__had_plan(n, seed, inverse != 0, kernel, &h)) != W4A8_OK) return st;
    if (h->m > 1 && !(tmp = (float *)w4a8__alloc(mn, sizeof(float)))) st = W4A8_ERR_NOMEM;
    else w4a8__had_rows(h, X, M, Y, tmp);
    W4A8_FREE(tmp);
    W4A8_FREE(h);
    return st;
}

W4A8_IMPL w4a8_status w4a8_rotate_input(float *W, size_t N, size_t K, uint64_t seed) {
    return w4a8_hadamard(W, N, K, seed, 0, W);
}

W4A8_IMPL w4a8_status w4a8_rotate_output(float *W, size_t N, size_t K, uint64_t seed) {
    float *T;
    size_t n, k, nk;
    w4a8_status st;
    if (!W) return W4A8_ERR_NULL_ARG;
    if (N == 0 || K == 0) return W4A8_ERR_SHAPE;
    if (w4a8__mul(N, K, &nk)) return W4A8_ERR_OVERFLOW;
    if (!(T = (float *)w4a8__alloc(nk, sizeof(float)))) return W4A8_ERR_NOMEM;
    /* Q^T W = (W^T Q)^T: rotate the columns as rows. */
    for (n = 0; n < N; n++)
        for (k = 0; k < K; k++) T[k * N + n] = W[n * K + k];
    st = w4a8_hadamard(T, K, N, seed, 0, T);
    for (n = 0; st == W4A8_OK && n < N; n++)
        for (k = 0; k < K; k++) W[n * K + k] = T[k * N + n];
    W4A8_FREE(T);
    return st;
}

/* >>fake quantization and KV cache ---------------------------------------- */

W4A8_PRIVATE uint8_t w4a8__ste(w4a8_ste ste, int in_range, float x) {
    return (uint8_t)(in_range && (ste == W4A8_STE_PLAIN || fabsf(x) < 2.0f));
}

W4A8_IMPL w4a8_status w4a8_fake_quantize_weights(const float *W, size_t N, size_t K, size_t group_size,
                                                 int asymmetric, w4a8_ste ste, float *Wq, uint8_t *mask) {
    size_t G, groups;
    ptrdiff_t n;
    w4a8_status st;
    if (!W || !Wq) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(N, K, group_size)) != W4A8_OK) return st;
    if (ste != W4A8_STE_PLAIN && ste != W4A8_STE_CLIP2) return W4A8_ERR_CONFIG;
    if (!w4a8__all_finite(W, N * K)) return W4A8_ERR_NONFINITE;
    G = w4a8__group_len(K, group_size);
    groups = (K + G - 1) / G;
    W4A8__OMP_FOR
    for (n = 0; n < (ptrdiff_t)N; n++) {
        size_t g, k;
        for (g = 0; g < groups; g++) {
            size_t k0 = g * G, k1 = k0 + G < K ? k0 + G : K;
            const float *w = W + (size_t)n * K;
            float scale;
            uint8_t zero;
            w4a8__fit_group(w + k0, k1 - k0, asymmetric, &scale, &zero);
            for (k = k0; k < k1; k++) {
                float q = w4a8__code_unclamped(w[k], scale, zero);
                uint8_t code = (uint8_t)w4a8__clampf(q, 0.0f, 15.0f);
                Wq[(size_t)n * K + k] = scale * (float)((int)code - (int)zero);
                if (mask) mask[(size_t)n * K + k] = w4a8__ste(ste, q >= 0.0f && q <= 15.0f, w[k]);
            }
        }
    }
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_fake_quantize_activations(const float *X, size_t M, size_t K, w4a8_act_mode mode,
                                                     float static_scale, w4a8_ste ste, float *Xq,
                                                     uint8_t *mask) {
    ptrdiff_t m;
    w4a8_status st;
    if (!X || !Xq) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(M, K, K)) != W4A8_OK) return st;
    if (mode != W4A8_ACT_PER_TOKEN && mode != W4A8_ACT_PER_TENSOR) return W4A8_ERR_CONFIG;
    if (ste != W4A8_STE_PLAIN && ste != W4A8_STE_CLIP2) return W4A8_ERR_CONFIG;
    if (mode == W4A8_ACT_PER_TENSOR && !w4a8__valid_scale(static_scale)) return W4A8_ERR_RANGE;
    if (!w4a8__all_finite(X, M * K)) return W4A8_ERR_NONFINITE;
    W4A8__OMP_FOR_IF(M > 1)
    for (m = 0; m < (ptrdiff_t)M; m++) {
        const float *x = X + (size_t)m * K;
        float scale = static_scale, inv, amax = 0.0f;
        size_t k;
        if (mode == W4A8_ACT_PER_TOKEN) { /* w4a8__quantize_token's scale */
            for (k = 0; k < K; k++)
                if (fabsf(x[k]) > amax) amax = fabsf(x[k]);
            scale = amax / 127.0f;
            inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        } else {
            inv = 1.0f / static_scale;
        }
        for (k = 0; k < K; k++) {
            float r = nearbyintf(w4a8__clampf(x[k] * inv, -128.0f, 128.0f));
            Xq[(size_t)m * K + k] = (float)(int8_t)w4a8__clampf(r, -127.0f, 127.0f) * scale;
            if (mask) mask[(size_t)m * K + k] = w4a8__ste(ste, r >= -127.0f && r <= 127.0f, x[k]);
        }
    }
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_kv_row_bytes(size_t D, int bits, size_t *bytes) {
    if (!bytes) return W4A8_ERR_NULL_ARG;
    if (D == 0) return W4A8_ERR_SHAPE;
    if (bits != 8 && bits != 4) return W4A8_ERR_CONFIG;
    *bytes = bits == 8 ? D : D / 2 + D % 2;
    return W4A8_OK;
}

/* The checks every KV function shares. */
W4A8_PRIVATE w4a8_status w4a8__kv_check(size_t T, size_t D, size_t group, int bits) {
    size_t n;
    if (T == 0 || D == 0) return W4A8_ERR_SHAPE;
    if (group == 0) return W4A8_ERR_GROUP_SIZE;
    if (bits != 8 && bits != 4) return W4A8_ERR_CONFIG;
    return w4a8__mul(T, D, &n);
}

/* One group's scale and zero point (see the declaration). */
W4A8_PRIVATE void w4a8__kv_fit(const float *x, size_t n, float levels, int asymmetric, float *scale, uint8_t *zero) {
    float lo = 0.0f, hi = 0.0f;
    size_t i;
    for (i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (!asymmetric) {
        float qmax = (levels - 1.0f) / 2.0f; /* 127 or 7 */
        *scale = (hi > -lo ? hi : -lo) / qmax;
        *zero = (uint8_t)(qmax + 1.0f);
        return;
    }
    *scale = hi / levels - lo / levels;
    *zero = (uint8_t)(*scale > 0.0f ? w4a8__clampf(nearbyintf(-lo / *scale), 0.0f, levels) : 0.0f);
}

/* The code before the clamp to [lo, hi] (symmetric: zero -+ qmax; asymmetric: 0, levels). */
W4A8_PRIVATE float w4a8__kv_raw(float x, float scale, uint8_t zero) {
    return scale > 0.0f ? nearbyintf(w4a8__clampf(x / scale, -512.0f, 512.0f)) + (float)zero : (float)zero;
}

/* Row t's groups: fit, and codes (or fake values with the mask) into one row. */
W4A8_PRIVATE void w4a8__kv_row(const float *x, size_t D, size_t G, int bits, int asymmetric, w4a8_ste ste,
                               uint8_t *codes, float *scales, uint8_t *zeros, float *xq, uint8_t *mask) {
    float levels = bits == 8 ? 255.0f : 15.0f;
    size_t g, k;
    for (g = 0; g * G < D; g++) {
        size_t k0 = g * G, k1 = k0 + G < D ? k0 + G : D;
        float scale, lo, hi;
        uint8_t zero;
        w4a8__kv_fit(x + k0, k1 - k0, levels, asymmetric, &scale, &zero);
        lo = asymmetric ? 0.0f : 1.0f, hi = levels;
        if (scales) scales[g] = scale, zeros[g] = zero;
        for (k = k0; k < k1; k++) {
            float raw = w4a8__kv_raw(x[k], scale, zero);
            uint8_t c = (uint8_t)w4a8__clampf(raw, lo, hi);
            if (xq) {
                xq[k] = scale * (float)((int)c - (int)zero);
                if (mask) mask[k] = w4a8__ste(ste, raw >= lo && raw <= hi, x[k]);
            } else if (bits == 8) {
                codes[k] = c;
            } else if (k % 2 == 0) {
                codes[k / 2] = c;
            } else {
                codes[k / 2] = (uint8_t)(codes[k / 2] | c << 4);
            }
        }
    }
}

W4A8_IMPL w4a8_status w4a8_kv_quantize(const float *X, size_t T, size_t D, size_t group, int bits,
                                       int asymmetric, uint8_t *codes, float *scales, uint8_t *zeros) {
    size_t G, groups, row, t;
    w4a8_status st;
    if (!X || !codes || !scales || !zeros) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__kv_check(T, D, group, bits)) != W4A8_OK) return st;
    if (!w4a8__all_finite(X, T * D)) return W4A8_ERR_NONFINITE;
    G = group < D ? group : D;
    groups = (D + G - 1) / G;
    w4a8_kv_row_bytes(D, bits, &row);
    for (t = 0; t < T; t++)
        w4a8__kv_row(X + t * D, D, G, bits, asymmetric, W4A8_STE_PLAIN, codes + t * row, scales + t * groups,
                     zeros + t * groups, NULL, NULL);
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_kv_dequantize(const uint8_t *codes, const float *scales, const uint8_t *zeros,
                                         size_t T, size_t D, size_t group, int bits, float *X) {
    size_t G, groups, row, t, k;
    w4a8_status st;
    if (!codes || !scales || !zeros || !X) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__kv_check(T, D, group, bits)) != W4A8_OK) return st;
    G = group < D ? group : D;
    groups = (D + G - 1) / G;
    w4a8_kv_row_bytes(D, bits, &row);
    for (t = 0; t < T; t++) {
        const uint8_t *c = codes + t * row;
        for (k = 0; k < D; k++) {
            size_t gi = t * groups + k / G;
            int code = bits == 8 ? c[k] : (c[k / 2] >> (4 * (k & 1))) & 15;
            X[t * D + k] = scales[gi] * (float)(code - (int)zeros[gi]);
        }
    }
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_fake_quantize_kv(const float *X, size_t T, size_t D, size_t group, int bits,
                                            int asymmetric, w4a8_ste ste, float *Xq, uint8_t *mask) {
    size_t t;
    w4a8_status st;
    if (!X || !Xq) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__kv_check(T, D, group, bits)) != W4A8_OK) return st;
    if (ste != W4A8_STE_PLAIN && ste != W4A8_STE_CLIP2) return W4A8_ERR_CONFIG;
    if (!w4a8__all_finite(X, T * D)) return W4A8_ERR_NONFINITE;
    for (t = 0; t < T; t++)
        w4a8__kv_row(X + t * D, D, group < D ? group : D, bits, asymmetric, ste, NULL, NULL, NULL, Xq + t * D,
                     mask ? mask + t * D : NULL);
    return W4A8_OK;
}

/* >>gemm ------------------------------------------------------------------- */

/* The float epilogue every kernel shares: one group's int32 sum into y. */
W4A8_PRIVATE float w4a8__add_group(float y, int32_t acc, float scale) {
    float t = (float)acc * scale;
    W4A8__NO_FUSE(t);
    return y + t;
}

/* The last step every kernel shares: token scale, then bias. */
W4A8_PRIVATE float w4a8__finish(float y, float x_scale, const float *bias, size_t n) {
    y = y * x_scale;
    W4A8__NO_FUSE(y);
    return bias ? y + bias[n] : y;
}

/* The reference: portable layout, one output at a time, nothing clever. */
W4A8_PRIVATE void w4a8__gemm_scalar(const w4a8_layer *L, const int8_t *codes, const float *x_scales,
                                    const int32_t *group_sums, size_t M, float *Y) {
    size_t row = (L->K + 1) / 2;
    ptrdiff_t n;
    W4A8__OMP_FOR
    for (n = 0; n < (ptrdiff_t)L->N; n++) {
        const uint8_t *w = L->packed + (size_t)n * row;
        size_t m, g, k;
        for (m = 0; m < M; m++) {
            const int8_t *x = codes + m * L->K;
            float y = 0.0f;
            for (g = 0; g < L->groups; g++) {
                size_t k0 = g * L->G, k1 = k0 + L->G < L->K ? k0 + L->G : L->K;
                size_t gi = (size_t)n * L->groups + g;
                int32_t acc = 0;
                for (k = k0; k < k1; k++) acc += (int32_t)x[k] * (int32_t)((w[k / 2] >> (4 * (k & 1))) & 15);
                acc -= (int32_t)L->zeros[gi] * group_sums[m * L->groups + g];
                y = w4a8__add_group(y, acc, L->scales[gi]);
            }
            Y[m * L->N + (size_t)n] = w4a8__finish(y, x_scales[m], L->bias, (size_t)n);
        }
    }
}

/* The SIMD kernels run tiles: up to 8 tokens (4 for AVX2 and NEON) x the
   rows of one or two blocks, over all of K, keeping the tile's sums in
   registers. The blocked stream is read once per tile, in order. */
#define W4A8__TILE_TOKENS 8

typedef struct w4a8__gemm_args {
    const w4a8_layer *L;
    const int8_t *codes;        /* [M][K] */
    const float *x_scales;      /* [M] */
    const int32_t *group_sums;  /* [M][groups] */
    float *Y;                   /* [M][N] */
    size_t block_bytes;
} w4a8__gemm_args;

W4A8__SIMD_BEGIN
#ifdef W4A8__SIMD
/* Each token's codes at k: in place for a whole piece of 8, or, for a
   group's last piece when shorter, zero-padded copies so nothing past the
   group (and K) is read. */
W4A8__INLINE void w4a8__piece_codes(const int8_t *const *x, int MB, size_t k, size_t k1, int8_t (*pad)[8],
                                    const int8_t **out) {
    int m;
    W4A8__FOR(m, MB, W4A8__TILE_TOKENS) {
        if (k + 8 <= k1) {
            out[m] = x[m] + k;
        } else {
            memset(pad[m], 0, 8);
            memcpy(pad[m], x[m] + k, k1 - k);
            out[m] = pad[m];
        }
    }
}

W4A8_PRIVATE int32_t w4a8__load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
#endif

#ifdef W4A8__AVX512
/* One 8-code piece of NB blocks against MB tokens' codes xk. */
W4A8__INLINE W4A8__TARGET_AVX512 void w4a8__piece_avx512(__m512i (*acc)[2], const uint8_t **w, const int8_t **xk,
                                                          int MB, int NB) {
    const __m512i low = _mm512_set1_epi8(15);
    __m512i lo[2], hi[2];
    int m, j;
    W4A8__FOR(j, NB, 2) {
        __m512i q = _mm512_load_si512(w[j]);
        W4A8__PREFETCH(w[j]);
        lo[j] = _mm512_and_si512(q, low);                       /* codes k..k+3 of each row */
        hi[j] = _mm512_and_si512(_mm512_srli_epi16(q, 4), low); /* codes k+4..k+7 */
        w[j] += 64;
    }
    W4A8__FOR(m, MB, W4A8__TILE_TOKENS) {
        __m512i x0 = _mm512_set1_epi32(w4a8__load_i32(xk[m])), x1 = _mm512_set1_epi32(w4a8__load_i32(xk[m] + 4));
        W4A8__FOR(j, NB, 2)
            acc[m][j] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[m][j], lo[j], x0), hi[j], x1);
    }
}

/* NB blocks x MB tokens; one zmm is 16 rows. */
W4A8__INLINE W4A8__TARGET_AVX512 void w4a8__tile_avx512_body(const w4a8__gemm_args *a, size_t n0, size_t m0, int MB,
                                                              int NB) {
    const w4a8_layer *L = a->L;
    const uint8_t *w[2];
    const int8_t *x[W4A8__TILE_TOKENS], *xk[W4A8__TILE_TOKENS];
    int8_t pad[W4A8__TILE_TOKENS][8];
    __m512 y[W4A8__TILE_TOKENS][2];
    size_t g, k;
    int m, j;
    W4A8__FOR(j, NB, 2) w[j] = L->packed + (n0 / W4A8__ROWS + (size_t)j) * a->block_bytes;
    W4A8__FOR(m, MB, W4A8__TILE_TOKENS) {
        x[m] = a->codes + (m0 + (size_t)m) * L->K;
        W4A8__FOR(j, NB, 2)
            y[m][j] = _mm512_setzero_ps();
    }
    for (g = 0; g < L->groups; g++) {
        size_t k1 = (g + 1) * L->G < L->K ? (g + 1) * L->G : L->K;
        __m512 scale[2];
        __m512i zero[2], acc[W4A8__TILE_TOKENS][2];
        W4A8__FOR(j, NB, 2) {
            scale[j] = _mm512_load_ps(w[j]);
            zero[j] = L->asymmetric ? _mm512_load_si512(w[j] + 64) : _mm512_setzero_si512();
            w[j] += L->asymmetric ? 128 : 64;
            W4A8__FOR(m, MB, W4A8__TILE_TOKENS) acc[m][j] = _mm512_setzero_si512();
        }
        for (k = g * L->G; k + 8 <= k1; k += 8) {
            W4A8__FOR(m, MB, W4A8__TILE_TOKENS) xk[m] = x[m] + k;
            w4a8__piece_avx512(acc, w, xk, MB, NB);
        }
        if (k < k1) {
            w4a8__piece_codes(x, MB, k, k1, pad, xk);
            w4a8__piece_avx512(acc, w, xk, MB, NB);
        }
        W4A8__FOR(m, MB, W4A8__TILE_TOKENS) {
            __m512i gs = _mm512_set1_epi32(a->group_sums[(m0 + (size_t)m) * L->groups + g]);
            W4A8__FOR(j, NB, 2) {
                __m512i zs = L->asymmetric ? _mm512_mullo_epi32(zero[j], gs) : _mm512_slli_epi32(gs, 3);
                __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[m][j], zs)), scale[j]);
                W4A8__NO_FUSE(t);
                y[m][j] = _mm512_add_ps(y[m][j], t);
            }
        }
    }
    W4A8__FOR(m, MB, W4A8__TILE_TOKENS) {
        __m512 xs = _mm512_set1_ps(a->x_scales[m0 + (size_t)m]);
        W4A8__FOR(j, NB, 2) {
            size_t n = n0 + (size_t)j * W4A8__ROWS;
            __mmask16 live = w4a8__mask16(L->N - n);
            __m512 v = _mm512_mul_ps(y[m][j], xs);
            W4A8__NO_FUSE(v);
            if (L->bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(live, L->bias + n));
            _mm512_mask_storeu_ps(a->Y + (m0 + (size_t)m) * L->N + n, live, v);
        }
    }
}

/* Up to 8 tokens as 8, 4, 2 and 1: four bodies (each for one or two
   blocks) serve any count. */
W4A8_PRIVATE W4A8__TARGET_AVX512 void w4a8__tile_avx512(const w4a8__gemm_args *a, size_t n0, size_t m0, size_t mb) {
    int two = a->L->N - n0 > W4A8__ROWS;
    if (mb & 8) two ? w4a8__tile_avx512_body(a, n0, m0, 8, 2) : w4a8__tile_avx512_body(a, n0, m0, 8, 1);
    m0 += mb & 8;
    if (mb & 4) two ? w4a8__tile_avx512_body(a, n0, m0, 4, 2) : w4a8__tile_avx512_body(a, n0, m0, 4, 1);
    m0 += mb & 4;
    if (mb & 2) two ? w4a8__tile_avx512_body(a, n0, m0, 2, 2) : w4a8__tile_avx512_body(a, n0, m0, 2, 1);
    m0 += mb & 2;
    if (mb & 1) two ? w4a8__tile_avx512_body(a, n0, m0, 1, 2) : w4a8__tile_avx512_body(a, n0, m0, 1, 1);
}
#endif

#ifdef W4A8__AVX2
/* AVX2 and AVX-VNNI: a tile is up to 4 tokens x one block (16 rows, two ymm
   of 8 rows each). The hot loop holds, of the 16 ymm registers, 8 partial
   sums p[token][half], the 4 unpacked weight registers (low and high
   nibbles of both halves), the nibble mask, one broadcast activation word
   and one product: 15; the 1s of vpmaddwd are a memory operand. Partial sums run over a
   chunk of at most 4 pieces (32 codes), then widen to int32 and join the
   group's sums; those and the float outputs wait in L1 between chunks (one
   load and one store per 8 multiplies), and a group of at most 32 codes
   (g32) goes from the chunk to the float step without touching memory.

   Why the int16 stage is exact (AVX2): vpmaddubsw multiplies unsigned codes
   u in 0..15 by signed activation codes x in -128..127 and adds adjacent
   pairs with signed saturation; a pair is at most 2 * 15 * 128 = 3840 in
   magnitude, so it never saturates. A chunk adds 8 such pairs in each int16
   lane (2 per piece, 4 pieces) with the wrapping vpaddw: at most
   8 * 3840 = 30720 < 32767, so nothing wraps. vpmaddwd by 1 then adds the
   two int16 lanes of each row into an exact int32. */
#define W4A8__AVX2_TOKENS 4
#define W4A8__AVX2_CHUNK 32

/* p += u . x per row: int16 pairs (AVX2), int32 (AVX-VNNI). */
W4A8__INLINE W4A8__TARGET_AVX2 __m256i w4a8__dot_avx2(__m256i p, __m256i u, __m256i x) {
    return _mm256_add_epi16(p, _mm256_maddubs_epi16(u, x));
}

/* Not always_inline: the AVX2 kernel holds a call to it it never makes. */
static inline W4A8__TARGET_AVX_VNNI __m256i w4a8__dot_avx_vnni(__m256i p, __m256i u, __m256i x) {
    return _mm256_dpbusd_avx_epi32(p, u, x);
}

/* One 8-code piece of a block against MB tokens' codes xk; vnni picks the
   dot step. Each weight byte is loaded once, each activation word once. */
W4A8__INLINE W4A8__TARGET_AVX2 void w4a8__piece_avx2(__m256i (*p)[2], const uint8_t *w, const int8_t **xk, int MB,
                                                      int vnni) {
    const __m256i low = _mm256_set1_epi8(15);
    __m256i lo[2], hi[2];
    int m, j;
    W4A8__PREFETCH(w);
    W4A8__UNROLL for (j = 0; j < 2; j++) {
        __m256i q = _mm256_load_si256((const __m256i *)w + j);
        W4A8__NO_FUSE(q); /* one load: GCC would read w again as the and's memory operand */
        lo[j] = _mm256_and_si256(q, low);                       /* codes k..k+3 of each row */
        hi[j] = _mm256_and_si256(_mm256_srli_epi16(q, 4), low); /* codes k+4..k+7 */
    }
    /* One activation word and one product live at a time. The barrier
       keeps GCC from reassociating p + a + b into p + (a + b), which needs
       two more registers than there are. */
    W4A8__FOR(m, MB, W4A8__AVX2_TOKENS) {
        __m256i x0 = _mm256_set1_epi32(w4a8__load_i32(xk[m]));
        W4A8__UNROLL for (j = 0; j < 2; j++) {
            p[m][j] = vnni ? w4a8__dot_avx_vnni(p[m][j], lo[j], x0) : w4a8__dot_avx2(p[m][j], lo[j], x0);
            W4A8__NO_FUSE(p[m][j]);
        }
        x0 = _mm256_set1_epi32(w4a8__load_i32(xk[m] + 4));
        W4A8__UNROLL for (j = 0; j < 2; j++)
            p[m][j] = vnni ? w4a8__dot_avx_vnni(p[m][j], hi[j], x0) : w4a8__dot_avx2(p[m][j], hi[j], x0);
    }
}

/* Codes [k, kc) of one group, at most one chunk, into the int32 sums s; w
   is the chunk's first piece, the return value the next one. */
W4A8__INLINE W4A8__TARGET_AVX2 const uint8_t *w4a8__chunk_avx2(__m256i (*s)[2], const uint8_t *w,
                                                                const int8_t *const *x, size_t k, size_t kc, int MB,
                                                                int vnni) {
    const int8_t *xk[W4A8__TILE_TOKENS];
    int8_t pad[W4A8__TILE_TOKENS][8];
    __m256i p[W4A8__AVX2_TOKENS][2];
    int m, j;
    W4A8__FOR(m, MB, W4A8__AVX2_TOKENS) p[m][0] = p[m][1] = _mm256_setzero_si256();
    for (; k + 8 <= kc; k += 8, w += 64) {
        W4A8__FOR(m, MB, W4A8__AVX2_TOKENS) xk[m] = x[m] + k;
        w4a8__piece_avx2(p, w, xk, MB, vnni);
    }
    if (k < kc) {
        w4a8__piece_codes(x, MB, k, kc, pad, xk);
        w4a8__piece_avx2(p, w, xk, MB, vnni);
        w += 64;
    }
    W4A8__FOR(m, MB, W4A8__AVX2_TOKENS) W4A8__UNROLL for (j = 0; j < 2; j++)
        s[m][j] = vnni ? p[m][j] : _mm256_madd_epi16(p[m][j], _mm256_set1_epi16(1));
    return w;
}

/* One block x MB tokens over all of K. */
W4A8__INLINE W4A8__TARGET_AVX2 void w4a8__tile_avx2_body(const w4a8__gemm_args *a, size_t n0, size_t m0, int MB,
                                                          int vnni) {
    const w4a8_layer *L = a->L;
    const uint8_t *w = L->packed + n0 / W4A8__ROWS * a->block_bytes;
    const int8_t *x[W4A8__TILE_TOKENS];
    __m256 y[W4A8__AVX2_TOKENS][2];
    float out[W4A8__ROWS];
    size_t g, k, live = L->N - n0 < W4A8__ROWS ? L->N - n0 : W4A8__ROWS;
    int m, j;
    W4A8__FOR(m, MB, W4A8__AVX2_TOKENS) {
        x[m] = a->codes + (m0 + (size_t)m) * L->K;
        y[m][0] = y[m][1] = _mm256_setzero_ps();
    }
    for (g = 0; g < L->groups; g++) {
        size_t k0 = g * L->G, k1 = k0 + L->G < L->K ? k0 + L->G : L->K;
        const uint8_t *head = w;
        __m256i s[W4A8__AVX2_TOKENS][2];
        w = w4a8__chunk_avx2(s, w + (L->asymmetric ? 128 : 64), x, k0,
                             k1 - k0 < W4A8__AVX2_CHUNK ? k1 : k0 + W4A8__AVX2_CHUNK, MB, vnni);
        for (k = k0 + W4A8__AVX2_CHUNK; k < k1; k += W4A8__AVX2_CHUNK) {
            __m256i t[W4A8__AVX2_TOKENS][2];
            w = w4a8__chunk_avx2(t, w, x, k, k1 - k < W4A8__AVX2_CHUNK ? k1 : k + W4A8__AVX2_CHUNK, MB, vnni);
            W4A8__FOR(m, MB, W4A8__AVX2_TOKENS) W4A8__UNROLL for (j = 0; j < 2; j++)
                s[m][j] = _mm256_add_epi32(s[m][j], t[m][j]);
        }
        W4A8__FOR(m, MB, W4A8__AVX2_TOKENS) {
            __m256i gs = _mm256_set1_epi32(a->group_sums[(m0 + (size_t)m) * L->groups + g]);
            __m256i z8 = _mm256_slli_epi32(gs, 3); /* symmetric: every zero point is 8 */
            W4A8__UNROLL for (j = 0; j < 2; j++) {
                __m256i zs = L->asymmetric ? _mm256_mullo_epi32(_mm256_load_si256((const __m256i *)(head + 64) + j), gs)
                                           : z8;
                __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(s[m][j], zs)),
                                         _mm256_load_ps((const float *)head + 8 * j));
                W4A8__NO_FUSE(t);
                y[m][j] = _mm256_add_ps(y[m][j], t);
            }
        }
    }
    W4A8__FOR(m, MB, W4A8__AVX2_TOKENS) {
        __m256 xs = _mm256_set1_ps(a->x_scales[m0 + (size_t)m]);
        float *dst = a->Y + (m0 + (size_t)m) * L->N + n0;
        W4A8__UNROLL for (j = 0; j < 2; j++) {
            __m256 v = _mm256_mul_ps(y[m][j], xs);
            W4A8__NO_FUSE(v);
            _mm256_storeu_ps(out + 8 * j, v);
        }
        for (k = 0; k < live; k++) dst[k] = L->bias ? out[k] + L->bias[n0 + k] : out[k]; /* scalar: no read past N */
    }
}

W4A8_PRIVATE W4A8__TARGET_AVX2 void w4a8__tile_avx2(const w4a8__gemm_args *a, size_t n0, size_t m0, size_t mb) {
    switch (mb) {
    case 1: w4a8__tile_avx2_body(a, n0, m0, 1, 0); break;
    case 2: w4a8__tile_avx2_body(a, n0, m0, 2, 0); break;
    case 3: w4a8__tile_avx2_body(a, n0, m0, 3, 0); break;
    default: w4a8__tile_avx2_body(a, n0, m0, 4, 0); break;
    }
}

W4A8_PRIVATE W4A8__TARGET_AVX_VNNI void w4a8__tile_avx_vnni(const w4a8__gemm_args *a, size_t n0, size_t m0,
                                                           size_t mb) {
    switch (mb) {
    case 1: w4a8__tile_avx2_body(a, n0, m0, 1, 1); break;
    case 2: w4a8__tile_avx2_body(a, n0, m0, 2, 1); break;
    case 3: w4a8__tile_avx2_body(a, n0, m0, 3, 1); break;
    default: w4a8__tile_avx2_body(a, n0, m0, 4, 1); break;
    }
}
#endif

#ifdef W4A8__NEON
/* One 8-code piece of a block (four q-registers of 4 rows) against MB
   tokens' codes xk. sdot takes the codes 0..15 as the signed bytes they
   also are. */
W4A8__INLINE void w4a8__piece_neon(int32x4_t (*acc)[4], const uint8_t *w, const int8_t **xk, int MB) {
    const uint8x16_t low = vdupq_n_u8(15);
    int8x16_t lo[4], hi[4];
    int m, j;
    W4A8__PREFETCH(w);
    W4A8__UNROLL for (j = 0; j < 4; j++) {
        uint8x16_t q = vld1q_u8(w + 16 * j);
        lo[j] = vreinterpretq_s8_u8(vandq_u8(q, low));
        hi[j] = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
    }
    W4A8__FOR(m, MB, W4A8__TILE_TOKENS) {
        int8x16_t x0 = vreinterpretq_s8_s32(vdupq_n_s32(w4a8__load_i32(xk[m])));
        int8x16_t x1 = vreinterpretq_s8_s32(vdupq_n_s32(w4a8__load_i32(xk[m] + 4)));
        W4A8__UNROLL for (j = 0; j < 4; j++) acc[m][j] = vdotq_s32(vdotq_s32(acc[m][j], lo[j], x0), hi[j], x1);
    }
}

/* One block x MB tokens, the float outputs in memory as for AVX2. */
W4A8__INLINE void w4a8__tile_neon_body(const w4a8__gemm_args *a, size_t n0, size_t m0, int MB) {
    const w4a8_layer *L = a->L;
    const uint8_t *w = L->packed + n0 / W4A8__ROWS * a->block_bytes;
    const int8_t *x[W4A8__TILE_TOKENS], *xk[W4A8__TILE_TOKENS];
    int8_t pad[W4A8__TILE_TOKENS][8];
    float y[W4A8__TILE_TOKENS][W4A8__ROWS];
    size_t g, k, live = L->N - n0 < W4A8__ROWS ? L->N - n0 : W4A8__ROWS;
    int m, j;
    memset(y, 0, sizeof y);
    W4A8__FOR(m, MB, W4A8__TILE_TOKENS) x[m] = a->codes + (m0 + (size_t)m) * L->K;
    for (g = 0; g < L->groups; g++) {
        size_t k1 = (g + 1) * L->G < L->K ? (g + 1) * L->G : L->K;
        const uint8_t *head = w;
        int32x4_t acc[W4A8__TILE_TOKENS][4];
        W4A8__FOR(m, MB, W4A8__TILE_TOKENS) W4A8__UNROLL for (j = 0; j < 4; j++) acc[m][j] = vdupq_n_s32(0);
        w += L->asymmetric ? 128 : 64;
        for (k = g * L->G; k + 8 <= k1; k += 8, w += 64) {
            W4A8__FOR(m, MB, W4A8__TILE_TOKENS) xk[m] = x[m] + k;
            w4a8__piece_neon(acc, w, xk, MB);
        }
        if (k < k1) {
            w4a8__piece_codes(x, MB, k, k1, pad, xk);
            w4a8__piece_neon(acc, w, xk, MB);
            w += 64;
        }
        W4A8__FOR(m, MB, W4A8__TILE_TOKENS) {
            int32x4_t gs = vdupq_n_s32(a->group_sums[(m0 + (size_t)m) * L->groups + g]);
            W4A8__UNROLL for (j = 0; j < 4; j++) {
                int32x4_t zs = L->asymmetric ? vmulq_s32(vld1q_s32((const int32_t *)(head + 64) + 4 * j), gs)
                                             : vshlq_n_s32(gs, 3);
                float32x4_t t = vmulq_f32(vcvtq_f32_s32(vsubq_s32(acc[m][j], zs)), vld1q_f32((const float *)head + 4 * j));
                W4A8__NO_FUSE(t);
                vst1q_f32(y[m] + 4 * j, vaddq_f32(vld1q_f32(y[m] + 4 * j), t));
            }
        }
    }
    W4A8__FOR(m, MB, W4A8__TILE_TOKENS) {
        float32x4_t xs = vdupq_n_f32(a->x_scales[m0 + (size_t)m]);
        float *out = a->Y + (m0 + (size_t)m) * L->N + n0;
        W4A8__UNROLL for (j = 0; j < 4; j++) {
            float32x4_t v = vmulq_f32(vld1q_f32(y[m] + 4 * j), xs);
            W4A8__NO_FUSE(v);
            vst1q_f32(y[m] + 4 * j, v);
        }
        for (k = 0; k < live; k++) out[k] = L->bias ? y[m][k] + L->bias[n0 + k] : y[m][k];
    }
}

W4A8_PRIVATE void w4a8__tile_neon(const w4a8__gemm_args *a, size_t n0, size_t m0, size_t mb) {
    switch (mb) {
    case 1: w4a8__tile_neon_body(a, n0, m0, 1); break;
    case 2: w4a8__tile_neon_body(a, n0, m0, 2); break;
    case 3: w4a8__tile_neon_body(a, n0, m0, 3); break;
    default: w4a8__tile_neon_body(a, n0, m0, 4); break;
    }
}
#endif
W4A8__SIMD_END

/* The blocked kernels: OpenMP over tiles; a tile's outputs are one thread's,
   whatever the count. Tokens go in panels of about 256 KiB of activation
   codes, which stay in L2 while every block of rows passes over them; within
   a panel rows come first, so with one panel (few tokens) each thread reads
   its own blocks. Without panels, 512 tokens of K = 4096 (2 MiB) came from
   L3 for every block, some 20% slower than 16 tokens. */
#define W4A8__PANEL_BYTES (256u << 10)
W4A8_PRIVATE void w4a8__gemm_tiles(const w4a8__gemm_args *a, size_t M, size_t rows, size_t tokens,
                                   void (*tile)(const w4a8__gemm_args *, size_t, size_t, size_t)) {
    size_t row_tiles = (a->L->N + rows - 1) / rows, token_tiles = (M + tokens - 1) / tokens;
    size_t panel = W4A8__PANEL_BYTES / a->L->K / tokens; /* token tiles per panel */
    ptrdiff_t t;
    if (panel < 1) panel = 1;
    if (panel > token_tiles) panel = token_tiles;
    W4A8__OMP_FOR
    for (t = 0; t < (ptrdiff_t)(row_tiles * token_tiles); t++) {
        size_t p0 = (size_t)t / (row_tiles * panel) * panel; /* the panel's first token tile */
        size_t width = token_tiles - p0 < panel ? token_tiles - p0 : panel, r = (size_t)t - p0 * row_tiles;
        size_t m0 = (p0 + r % width) * tokens;
        tile(a, r / width * rows, m0, M - m0 < tokens ? M - m0 : tokens);
    }
}

W4A8_PRIVATE void w4a8__gemm(const w4a8_layer *L, const int8_t *codes, const float *x_scales,
                             const int32_t *group_sums, size_t M, float *Y) {
    w4a8__gemm_args a;
    size_t total;
    a.L = L;
    a.codes = codes;
    a.x_scales = x_scales;
    a.group_sums = group_sums;
    a.Y = Y;
    w4a8__blocked_bytes(L->N, L->K, L->groups, L->asymmetric, &a.block_bytes, &total);
    switch (L->kernel) {
#ifdef W4A8__AVX512
    case W4A8_KERNEL_AVX512_VNNI: w4a8__gemm_tiles(&a, M, 2 * W4A8__ROWS, 8, w4a8__tile_avx512); return;
#endif
#ifdef W4A8__AVX2
    case W4A8_KERNEL_AVX2: w4a8__gemm_tiles(&a, M, W4A8__ROWS, 4, w4a8__tile_avx2); return;
    case W4A8_KERNEL_AVX_VNNI: w4a8__gemm_tiles(&a, M, W4A8__ROWS, 4, w4a8__tile_avx_vnni); return;
#endif
#ifdef W4A8__NEON
    case W4A8_KERNEL_NEON: w4a8__gemm_tiles(&a, M, W4A8__ROWS, 4, w4a8__tile_neon); return;
#endif
    default: w4a8__gemm_scalar(L, codes, x_scales, group_sums, M, Y); return;
    }
}

/* >>layer ------------------------------------------------------------------ */

W4A8_IMPL void w4a8_layer_free(w4a8_layer *L) {
    if (!L) return;
    w4a8__free_aligned(L->packed);
    W4A8_FREE(L->scales);
    W4A8_FREE(L->zeros);
    W4A8_FREE(L->bias);
    W4A8_FREE(L->smooth);
    W4A8_FREE(L->smooth_inv);
    W4A8_FREE(L->rotate_plan);
    W4A8_FREE(L);
}

/* The kernel a layer of this shape runs: AUTO's choice falls back to the
   scalar kernel where the blocked layout does not fit; a named kernel does not. */
W4A8_PRIVATE w4a8_status w4a8__layer_kernel(w4a8_kernel want, size_t K, size_t G, w4a8_kernel *out) {
    w4a8_kernel k;
    w4a8_status st = w4a8_kernel_resolve(want, &k);
    if (st != W4A8_OK) return st;
    if (k != W4A8_KERNEL_SCALAR && !w4a8__blocked_fits(K, G)) {
        if (want != W4A8_KERNEL_AUTO) return W4A8_ERR_UNSUPPORTED;
        k = W4A8_KERNEL_SCALAR;
    }
    *out = k;
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_layer_create(const w4a8_layer_desc *d, w4a8_layer **out) {
    w4a8_layer *L;
    w4a8_kernel kernel;
    size_t G, groups, ng, i, block, packed_bytes;
    w4a8_status st;
    if (!d || !out || !d->codes || !d->scales || !d->zeros) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(d->N, d->K, d->group_size)) != W4A8_OK) return st;
    if ((st = w4a8__layer_kernel(d->kernel, d->K, w4a8__group_len(d->K, d->group_size), &kernel)) != W4A8_OK)
        return st;
    if ((int)d->method < 0 || d->method >= W4A8_METHOD_COUNT) return W4A8_ERR_CONFIG;
    if (d->act_mode != W4A8_ACT_PER_TOKEN && d->act_mode != W4A8_ACT_PER_TENSOR) return W4A8_ERR_CONFIG;
    if (d->act_mode == W4A8_ACT_PER_TENSOR && !w4a8__valid_scale(d->act_scale)) return W4A8_ERR_RANGE;
    G = w4a8__group_len(d->K, d->group_size);
    groups = (d->K + G - 1) / G;
    ng = d->N * groups;
    if (kernel == W4A8_KERNEL_SCALAR) packed_bytes = d->N * ((d->K + 1) / 2);
    else if ((st = w4a8__blocked_bytes(d->N, d->K, groups, d->asymmetric, &block, &packed_bytes)) != W4A8_OK)
        return st;
    if (!w4a8__all_finite(d->scales, ng) || (d->bias && !w4a8__all_finite(d->bias, d->N)) ||
        (d->smooth && !w4a8__all_finite(d->smooth, d->K)))
        return W4A8_ERR_NONFINITE;
    for (i = 0; i < ng; i++)
        if (d->zeros[i] > 15 || (!d->asymmetric && d->zeros[i] != 8)) return W4A8_ERR_RANGE;
    for (i = 0; d->smooth && i < d->K; i++)
        if (!(d->smooth[i] >= W4A8_SMOOTH_MIN)) return W4A8_ERR_RANGE;
    for (i = 0; i < d->N * d->K; i++)
        if (d->codes[i] > 15) return W4A8_ERR_RANGE;
    if (d->rotate && (st = w4a8_hadamard_order(d->K, &i)) != W4A8_OK) return st;

    L = (w4a8_layer *)W4A8_MALLOC(sizeof *L);
    if (!L) return W4A8_ERR_NOMEM;
    memset(L, 0, sizeof *L);
    L->N = d->N;
    L->K = d->K;
    L->G = G;
    L->groups = groups;
    L->asymmetric = d->asymmetric ? 1 : 0;
    L->act_mode = d->act_mode;
    L->act_scale = d->act_mode == W4A8_ACT_PER_TENSOR ? d->act_scale : 0.0f;
    L->method = d->method;
    L->kernel = kernel;
    L->smooth_folded = d->smooth && d->smooth_folded ? 1 : 0;
    L->packed = (uint8_t *)w4a8__alloc_aligned(packed_bytes);
    L->scales = (float *)w4a8__alloc(ng, sizeof(float));
    L->zeros = (uint8_t *)w4a8__alloc(ng, 1);
    if (d->bias) L->bias = (float *)w4a8__alloc(d->N, sizeof(float));
    if (d->smooth) {
        L->smooth = (float *)w4a8__alloc(d->K, sizeof(float));
        L->smooth_inv = (float *)w4a8__alloc(d->K, sizeof(float));
    }
    if (d->rotate) {
        w4a8__had *h = NULL;
        L->rotate = 1;
        L->rotate_seed = d->rotate_seed;
        st = w4a8__had_plan(d->K, d->rotate_seed, 0, kernel, &h);
        L->rotate_plan = h;
    }
    if (!L->packed || !L->scales || !L->zeros || (d->bias && !L->bias) ||
        (d->smooth && (!L->smooth || !L->smooth_inv)) || st != W4A8_OK) {
        w4a8_layer_free(L);
        return W4A8_ERR_NOMEM;
    }
    /* The weights are stored once, in the layout of the kernel. */
    if (kernel == W4A8_KERNEL_SCALAR) w4a8_pack_int4(d->codes, d->N, d->K, L->packed);
    else w4a8__blocked_convert((uint8_t *)d->codes, d->scales, d->zeros, d->N, d->K, G, groups, L->asymmetric,
                               L->packed, 1);
    memcpy(L->scales, d->scales, ng * sizeof(float));
    memcpy(L->zeros, d->zeros, ng);
    if (d->bias) memcpy(L->bias, d->bias, d->N * sizeof(float));
    for (i = 0; d->smooth && i < d->K; i++) {
        L->smooth[i] = d->smooth[i];
        L->smooth_inv[i] = 1.0f / d->smooth[i];
    }
    *out = L;
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_layer_codes(const w4a8_layer *L, uint8_t *codes) {
    if (!L || !codes) return W4A8_ERR_NULL_ARG;
    if (L->kernel == W4A8_KERNEL_SCALAR) return w4a8_unpack_int4(L->packed, L->N, L->K, codes);
    w4a8__blocked_convert(codes, NULL, NULL, L->N, L->K, L->G, L->groups, L->asymmetric, L->packed, 0);
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_layer_rotated(const w4a8_layer *L, uint64_t seed, w4a8_layer **out) {
    w4a8_layer_desc d;
    uint8_t *codes;
    w4a8_status st;
    if (!L || !out) return W4A8_ERR_NULL_ARG;
    if (L->rotate) return W4A8_ERR_CONFIG; /* one rotation per layer */
    if (!(codes = (uint8_t *)w4a8__alloc(L->N, L->K))) return W4A8_ERR_NOMEM;
    w4a8_layer_codes(L, codes);
    memset(&d, 0, sizeof d);
    d.N = L->N, d.K = L->K, d.group_size = L->G, d.asymmetric = L->asymmetric;
    d.codes = codes, d.scales = L->scales, d.zeros = L->zeros, d.bias = L->bias, d.smooth = L->smooth;
    d.smooth_folded = L->smooth_folded, d.act_mode = L->act_mode, d.act_scale = L->act_scale;
    d.method = L->method, d.kernel = L->kernel, d.rotate = 1, d.rotate_seed = seed;
    st = w4a8_layer_create(&d, out);
    W4A8_FREE(codes);
    return st;
}

/* >>methods ---------------------------------------------------------------- */

/* cfg.progress and where a call stands. Steps are counted, and told, only
   from serial code between parallel loops, so threads never see it. */
typedef struct w4a8__progress {
    void (*fn)(void *user, size_t done, size_t total);
    void *user;
    size_t done, total;
} w4a8__progress;

W4A8_PRIVATE void w4a8__progress_step(w4a8__progress *p, size_t steps) {
    if (!p || !p->fn) return;
    p->done = steps > p->total - p->done ? p->total : p->done + steps;
    p->fn(p->user, p->done, p->total);
}

/* AWQ's clipping search: at most this many tokens, shrink 1 - i/20 for i < 10. */
#define W4A8__CLIP_TOKENS 512
#define W4A8__CLIP_STEPS 10
#define W4A8__CLIP_ROWS 256

W4A8_PRIVATE void w4a8__minmax(const float *w, size_t n, float *lo, float *hi) {
    size_t i;
    *lo = *hi = w[0];
    for (i = 1; i < n; i++) {
        if (w[i] < *lo) *lo = w[i];
        if (w[i] > *hi) *hi = w[i];
    }
}

/* Every linear: weights present, N >= 1, N*K fits, weights and bias finite. */
W4A8_PRIVATE w4a8_status w4a8__check_linears(const w4a8_linear *lin, size_t count, size_t K, size_t group_size) {
    size_t i;
    w4a8_status st;
    if (!lin) return W4A8_ERR_NULL_ARG;
    if (count == 0) return W4A8_ERR_SHAPE;
    for (i = 0; i < count; i++) {
        if (!lin[i].W) return W4A8_ERR_NULL_ARG;
        if ((st = w4a8__check_shape(lin[i].N, K, group_size)) != W4A8_OK) return st;
        if (!w4a8__all_finite(lin[i].W, lin[i].N * K) || (lin[i].bias && !w4a8__all_finite(lin[i].bias, lin[i].N)))
            return W4A8_ERR_NONFINITE;
    }
    return W4A8_OK;
}

/* Every knob in range, whatever the method. */
W4A8_PRIVATE w4a8_status w4a8__check_config(const w4a8_config *cfg, size_t K) {
    if ((int)cfg->method < 0 || cfg->method >= W4A8_METHOD_COUNT) return W4A8_ERR_CONFIG;
    if (cfg->act_mode != W4A8_ACT_PER_TOKEN && cfg->act_mode != W4A8_ACT_PER_TENSOR) return W4A8_ERR_CONFIG;
    if (!(cfg->act_scale >= 0.0f) || !w4a8__finite(cfg->act_scale)) return W4A8_ERR_CONFIG;
    if (!(cfg->sq_alpha >= 0.0f && cfg->sq_alpha <= 1.0f)) return W4A8_ERR_CONFIG;
    if (cfg->awq_symmetric != 0 && cfg->awq_symmetric != 1) return W4A8_ERR_CONFIG;
    if (cfg->awq_grid < 1 || !(cfg->gptq_damp > 0.0f && cfg->gptq_damp <= 1.0f) || cfg->gptq_block == 0)
        return W4A8_ERR_CONFIG;
    if (cfg->scale_search != 0 && cfg->scale_search != 1) return W4A8_ERR_CONFIG;
    if (!(cfg->fptq_low >= 0.0f && cfg->fptq_low <= cfg->fptq_high) || !w4a8__finite(cfg->fptq_high))
        return W4A8_ERR_CONFIG;
    /* act_order without static groups needs a column index (GPTQ's g_idx). */
    if (cfg->gptq_act_order && !cfg->gptq_static_groups && w4a8__group_len(K, cfg->group_size) < K)
        return W4A8_ERR_CONFIG;
    return W4A8_OK;
}

/* Statistics a caller may have touched: every one finite. */
W4A8_PRIVATE int w4a8__calib_finite(const w4a8_calib *c) {
    size_t k;
    if (!w4a8__all_finite(c->absmax, c->K) || !w4a8__all_finite(c->sample, c->sample_rows * c->K) ||
        !w4a8__all_finite(c->pending, c->pending_rows * c->K))
        return 0;
    for (k = 0; k < c->K; k++)
        if (!(c->abssum[k] - c->abssum[k] == 0.0)) return 0;
    return 1;
}

/* Max |x / s| over the calibration data, as a per-tensor scale. */
W4A8_PRIVATE w4a8_status w4a8__static_scale(const w4a8_calib *calib, const float *smooth, float *scale) {
    float amax = 0.0f;
    size_t k;
    if (!calib || calib->tokens == 0) return W4A8_ERR_NEED_CALIB;
    for (k = 0; k < calib->K; k++) {
        float a = smooth ? calib->absmax[k] * (1.0f / smooth[k]) : calib->absmax[k];
        if (a > amax) amax = a;
    }
    /* An input that was always zero still needs a valid scale. */
    *scale = amax > 0.0f ? amax / 127.0f : 1.0f;
    return W4A8_OK;
}

/* --- equalization ---------------------------------------------------------- */

W4A8_IMPL w4a8_status w4a8_weight_absmax(const w4a8_linear *lin, size_t count, size_t K, float *wmax) {
    size_t i, n, k;
    w4a8_status st;
    if (!wmax) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_linears(lin, count, K, 1)) != W4A8_OK) return st;
    memset(wmax, 0, K * sizeof(float));
    for (i = 0; i < count; i++)
        for (n = 0; n < lin[i].N; n++)
            for (k = 0; k < K; k++) {
                float a = fabsf(lin[i].W[n * K + k]);
                if (a > wmax[k]) wmax[k] = a;
            }
    return W4A8_OK;
}

/* Both papers' formulas need a floor so that s is a valid divisor: the one
   layers take (W4A8_SMOOTH_MIN). */
W4A8_PRIVATE float w4a8__smooth_clamp(double s) {
    return s < W4A8_SMOOTH_MIN ? W4A8_SMOOTH_MIN : (s > 1e30 ? 1e30f : (float)s);
}

W4A8_IMPL w4a8_status w4a8_smooth_smoothquant(const float *amax, const float *wmax, size_t K, float alpha,
                                              float *s) {
    size_t k;
    if (!amax || !wmax || !s) return W4A8_ERR_NULL_ARG;
    if (K == 0) return W4A8_ERR_SHAPE;
    if (!(alpha >= 0.0f && alpha <= 1.0f)) return W4A8_ERR_CONFIG;
    if (!w4a8__all_finite(amax, K) || !w4a8__all_finite(wmax, K)) return W4A8_ERR_NONFINITE;
    for (k = 0; k < K; k++) {
        double a = amax[k] > W4A8_SMOOTH_MIN ? fabs(amax[k]) : W4A8_SMOOTH_MIN;
        double w = wmax[k] > W4A8_SMOOTH_MIN ? fabs(wmax[k]) : W4A8_SMOOTH_MIN;
        s[k] = w4a8__smooth_clamp(pow(a, alpha) / pow(w, 1.0 - alpha));
    }
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_smooth_lae(const float *amax, size_t K, float *s) {
    size_t k;
    if (!amax || !s) return W4A8_ERR_NULL_ARG;
    if (K == 0) return W4A8_ERR_SHAPE;
    if (!w4a8__all_finite(amax, K)) return W4A8_ERR_NONFINITE;
    for (k = 0; k < K; k++) {
        double a = fabs(amax[k]);
        s[k] = w4a8__smooth_clamp(a / (log(2.0 + a) / log(2.0)));
    }
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_fptq_choose(const float *amax, size_t K, float low, float high,
                                       w4a8_fptq_strategy *strategy) {
    float v = 0.0f;
    size_t k;
    if (!amax || !strategy) return W4A8_ERR_NULL_ARG;
    if (K == 0) return W4A8_ERR_SHAPE;
    if (!(low >= 0.0f && low <= high) || !w4a8__finite(high)) return W4A8_ERR_CONFIG;
    if (!w4a8__all_finite(amax, K)) return W4A8_ERR_NONFINITE;
    for (k = 0; k < K; k++)
        if (fabsf(amax[k]) > v) v = fabsf(amax[k]);
    *strategy = v < low ? W4A8_FPTQ_STATIC : v < high ? W4A8_FPTQ_LAE_STATIC : W4A8_FPTQ_PER_TOKEN;
    return W4A8_OK;
}

/* --- AWQ --------------------------------------------------------------------- */

/* AWQ's grid from a group's min and max, taken as they are: unlike GPTQ's
   grid (w4a8__fit_group) the range is not stretched to contain 0, and the
   zero point is clamped to 0..15 instead. */
W4A8_PRIVATE void w4a8__fit_awq(float lo, float hi, float *scale, uint8_t *zero) {
    double range = (double)hi - (double)lo;
    *scale = (float)((range > 1e-5 ? range : 1e-5) / 15.0);
    *zero = (uint8_t)w4a8__clampf(nearbyintf(-lo / *scale), 0.0f, 15.0f);
}

/* One row on AWQ's grid. */
W4A8_PRIVATE void w4a8__rtn_awq_row(const float *w, size_t K, size_t G, uint8_t *codes, float *scales,
                                    uint8_t *zeros) {
    size_t k0, k;
    for (k0 = 0; k0 < K; k0 += G) {
        size_t k1 = w4a8__min(k0 + G, K), g = k0 / G;
        float lo, hi;
        w4a8__minmax(w + k0, k1 - k0, &lo, &hi);
        w4a8__fit_awq(lo, hi, &scales[g], &zeros[g]);
        for (k = k0; k < k1; k++) codes[k] = w4a8__code(w[k], scales[g], zeros[g]);
    }
}

W4A8_IMPL w4a8_status w4a8_quantize_rtn_awq(const float *W, size_t N, size_t K, size_t group_size,
                                            uint8_t *codes, float *scales, uint8_t *zeros) {
    size_t G, groups;
    ptrdiff_t n;
    w4a8_status st;
    if (!W || !codes || !scales || !zeros) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(N, K, group_size)) != W4A8_OK) return st;
    if (!w4a8__all_finite(W, N * K)) return W4A8_ERR_NONFINITE;
    G = w4a8__group_len(K, group_size);
    groups = (K + G - 1) / G;
    W4A8__OMP_FOR
    for (n = 0; n < (ptrdiff_t)N; n++)
        w4a8__rtn_awq_row(W + (size_t)n * K, K, G, codes + (size_t)n * K, scales + (size_t)n * groups,
                          zeros + (size_t)n * groups);
    return W4A8_OK;
}

/* s_j = max(m_j^r, 1e-4) / sqrt(max(s) min(s)), as AWQ's search builds it. */
W4A8_PRIVATE void w4a8__awq_scales(const double *mean_abs, size_t K, double r, float *s) {
    double lo = HUGE_VAL, hi = 0.0, norm;
    size_t k;
    for (k = 0; k < K; k++) {
        double v = pow(mean_abs[k], r);
        v = v > 1e-4 ? v : 1e-4;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    norm = sqrt(hi * lo);
    for (k = 0; k < K; k++) {
        double v = pow(mean_abs[k], r);
        s[k] = w4a8__smooth_clamp((v > 1e-4 ? v : 1e-4) / norm);
    }
}

/* Rows of W per GEMM of AWQ's search and clip: bounds their scratch. */
#define W4A8__AWQ_ROWS 512

/* What AWQ's loss needs besides its operands: the float GEMM and scratch
   for W4A8__AWQ_ROWS rows (error weights D, their codes, the products E). */
typedef struct w4a8__awq_ws {
    w4a8__fisa isa;
    float *gemm, *D, *E, *sc;
    uint8_t *q, *z;
} w4a8__awq_ws;

W4A8_PRIVATE void w4a8__awq_ws_free(w4a8__awq_ws *w) {
    w4a8__free_aligned(w->gemm);
    W4A8_FREE(w->D);
    W4A8_FREE(w->E);
    W4A8_FREE(w->sc);
    W4A8_FREE(w->q);
    W4A8_FREE(w->z);
}

/* Scratch for d x len error rows against T tokens. */
W4A8_PRIVATE w4a8_status w4a8__awq_ws_make(w4a8_kernel kernel, size_t d, size_t len, size_t groups, size_t T,
                                           w4a8__awq_ws *w) {
    w4a8_status st;
    memset(w, 0, sizeof *w);
    if ((st = w4a8__fisa_of(kernel, &w->isa)) != W4A8_OK) return st;
    w->gemm = w4a8__fgemm_ws();
    w->D = (float *)w4a8__alloc(d, len * sizeof(float));
    w->E = (float *)w4a8__alloc(d, T * sizeof(float));
    w->sc = (float *)w4a8__alloc(d, groups * sizeof(float));
    w->q = (uint8_t *)w4a8__alloc(d, len);
    w->z = (uint8_t *)w4a8__alloc(d, groups);
    if (!w->gemm || !w->D || !w->E || !w->sc || !w->q || !w->z) {
        w4a8__awq_ws_free(w);
        return W4A8_ERR_NOMEM;
    }
    return W4A8_OK;
}

/* sum over rows r < rows and t < T of E[r][t]^2 in double, rows summed in
   order: the same bits for any thread count. */
W4A8_PRIVATE double w4a8__sum_squares(const float *E, size_t rows, size_t T, double *row_sum) {
    double total = 0.0;
    ptrdiff_t r;
    W4A8__OMP_FOR
    for (r = 0; r < (ptrdiff_t)rows; r++) {
        const float *e = E + (size_t)r * T;
        double acc = 0.0;
        size_t t;
        for (t = 0; t < T; t++) acc += (double)e[t] * (double)e[t];
        row_sum[r] = acc;
    }
    for (r = 0; r < (ptrdiff_t)rows; r++) total += row_sum[r];
    return total;
}

/* AWQ's loss for scales s: mean over the tokens X[T][K] and every output of
   (x.w - x.Q(w s)/s)^2, Q on AWQ's grid, activations in float. The error
   weights D = W - Q(W s)/s, a chunk of rows at a time, meet X in the float
   GEMM (E = D X^T); the squares add up in double. HUGE_VAL when W s or the
   loss is not finite: such scales are never chosen. */
W4A8_PRIVATE w4a8_status w4a8__awq_loss(w4a8__awq_ws *w, const w4a8_linear *lin, size_t count, size_t K, size_t G,
                                        const float *X, size_t T, const float *s, double *loss) {
    size_t groups = (K + G - 1) / G, i, rows = 0, n0;
    double total = 0.0, *row_sum = (double *)w4a8__alloc(W4A8__AWQ_ROWS, sizeof(double));
    int bad = 0;
    if (!row_sum) return W4A8_ERR_NOMEM;
    for (i = 0; !bad && i < count; i++) {
        size_t N = lin[i].N;
        for (n0 = 0; !bad && n0 < N; n0 += W4A8__AWQ_ROWS) {
            size_t nr = w4a8__min(W4A8__AWQ_ROWS, N - n0);
            ptrdiff_t r;
            W4A8__OMP_FOR
            for (r = 0; r < (ptrdiff_t)nr; r++) {
                const float *wr = lin[i].W + (n0 + (size_t)r) * K;
                float *d = w->D + (size_t)r * K, *sc = w->sc + (size_t)r * groups;
                uint8_t *q = w->q + (size_t)r * K, *z = w->z + (size_t)r * groups;
                size_t k;
                for (k = 0; k < K; k++) d[k] = wr[k] * s[k];
                if (!w4a8__all_finite(d, K)) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                    bad = 1;
                    continue;
                }
                w4a8__rtn_awq_row(d, K, G, q, sc, z);
                for (k = 0; k < K; k++) d[k] = wr[k] - sc[k / G] * (float)((int)q[k] - (int)z[k / G]) / s[k];
            }
            if (bad) break;
            w4a8__fgemm(&w->isa, w->gemm, nr, T, K, 1.0f, w->D, K, 0, X, K, 1, 0.0f, w->E, T);
            total += w4a8__sum_squares(w->E, nr, T, row_sum);
        }
        rows += N;
    }
    W4A8_FREE(row_sum);
    total /= (double)rows * (double)T;
    *loss = bad || !(total < HUGE_VAL) ? HUGE_VAL : total;
    return W4A8_OK;
}

/* w4a8_smooth_awq with a float kernel and progress (a step per ratio). */
W4A8_PRIVATE w4a8_status w4a8__smooth_awq(const w4a8_linear *lin, size_t count, size_t K, const w4a8_calib *calib,
                                          size_t group_size, int n_grid, w4a8_kernel kernel, w4a8__progress *progress,
                                          float *s, float *ratio, double *loss) {
    double *mean_abs, best_loss = HUGE_VAL, l;
    float *cur, *best, best_r = 0.0f;
    size_t k, G, maxN = 0;
    int i;
    w4a8__awq_ws w;
    w4a8_status st;
    if (!s) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_linears(lin, count, K, group_size)) != W4A8_OK) return st;
    if (n_grid < 1) return W4A8_ERR_CONFIG;
    if (!calib || calib->tokens == 0 || calib->sample_rows == 0) return W4A8_ERR_NEED_CALIB;
    if (calib->K != K) return W4A8_ERR_SHAPE;
    if (!w4a8__calib_finite(calib)) return W4A8_ERR_NONFINITE;
    G = w4a8__group_len(K, group_size);
    for (k = 0; k < count; k++) maxN = lin[k].N > maxN ? lin[k].N : maxN;
    st = w4a8__awq_ws_make(kernel, w4a8__min(maxN, W4A8__AWQ_ROWS), K, (K + G - 1) / G, calib->sample_rows, &w);
    if (st != W4A8_OK) return st;
    mean_abs = (double *)w4a8__alloc(K, sizeof(double));
    cur = (float *)w4a8__alloc(2 * K, sizeof(float));
    st = mean_abs && cur ? W4A8_OK : W4A8_ERR_NOMEM;
    best = st == W4A8_OK ? cur + K : NULL;
    for (k = 0; st == W4A8_OK && k < K; k++) mean_abs[k] = calib->abssum[k] / (double)calib->tokens;
    for (i = 0; st == W4A8_OK && i < n_grid; i++) {
        w4a8__awq_scales(mean_abs, K, (double)i / n_grid, cur);
        st = w4a8__awq_loss(&w, lin, count, K, G, calib->sample, calib->sample_rows, cur, &l);
        if (st == W4A8_OK && l < best_loss) { /* the first of equal losses; never a non-finite one */
            best_loss = l;
            best_r = (float)i / (float)n_grid;
            memcpy(best, cur, K * sizeof(float));
        }
        w4a8__progress_step(progress, 1);
    }
    /* every ratio overflowed float: the weights and inputs are too large for AWQ */
    if (st == W4A8_OK && !(best_loss < HUGE_VAL)) st = W4A8_ERR_RANGE;
    if (st == W4A8_OK) {
        memcpy(s, best, K * sizeof(float));
        if (ratio) *ratio = best_r;
        if (loss) *loss = best_loss;
    }
    w4a8__awq_ws_free(&w);
    W4A8_FREE(mean_abs);
    W4A8_FREE(cur);
    return st;
}

W4A8_IMPL w4a8_status w4a8_smooth_awq(const w4a8_linear *lin, size_t count, size_t K, const w4a8_calib *calib,
                                      size_t group_size, int n_grid, float *s, float *ratio, double *loss) {
    return w4a8__smooth_awq(lin, count, K, calib, group_size, n_grid, W4A8_KERNEL_AUTO, NULL, s, ratio, loss);
}

/* AWQ's clip for rows [n0, n0 + nr) of W and group [k0, k0 + len): writes the
   chosen max-abs c per row to clip[r * groups]. Every candidate's error
   weights clamp(w, -c_i, c_i) quantized minus w, W4A8__CLIP_STEPS rows per
   row of W, meet the group's tokens (X rows `stride` apart) in one GEMM. */
W4A8_PRIVATE void w4a8__clip_rows(w4a8__awq_ws *w, const float *W, size_t K, size_t n0, size_t nr, size_t k0,
                                  size_t len, const float *X, size_t T, size_t stride, float *clip, size_t groups,
                                  double *row_sum) {
    ptrdiff_t r;
    W4A8__OMP_FOR
    for (r = 0; r < (ptrdiff_t)nr; r++) {
        const float *wr = W + (n0 + (size_t)r) * K + k0;
        float amax = 0.0f;
        size_t i, k;
        for (k = 0; k < len; k++)
            if (fabsf(wr[k]) > amax) amax = fabsf(wr[k]);
        for (i = 0; i < W4A8__CLIP_STEPS; i++) {
            float *d = w->D + ((size_t)r * W4A8__CLIP_STEPS + i) * len, c = amax * (float)(1.0 - (double)i / 20.0);
            float lo, hi, scale;
            uint8_t zero;
            for (k = 0; k < len; k++) d[k] = w4a8__clampf(wr[k], -c, c);
            w4a8__minmax(d, len, &lo, &hi);
            w4a8__fit_awq(lo, hi, &scale, &zero);
            for (k = 0; k < len; k++) d[k] = scale * (float)((int)w4a8__code(d[k], scale, zero) - (int)zero) - wr[k];
        }
    }
    w4a8__fgemm(&w->isa, w->gemm, nr * W4A8__CLIP_STEPS, T, len, 1.0f, w->D, len, 0, X + k0, stride, 1, 0.0f, w->E,
                T);
    w4a8__sum_squares(w->E, nr * W4A8__CLIP_STEPS, T, row_sum);
    for (r = 0; r < (ptrdiff_t)nr; r++) {
        const double *err = row_sum + (size_t)r * W4A8__CLIP_STEPS;
        const float *wr = W + (n0 + (size_t)r) * K + k0;
        float amax = 0.0f;
        size_t i, k, best = 0;
        for (i = 1; i < W4A8__CLIP_STEPS; i++)
            if (err[i] < err[best]) best = i;
        for (k = 0; k < len; k++)
            if (fabsf(wr[k]) > amax) amax = fabsf(wr[k]);
        clip[(size_t)r * groups] = amax * (float)(1.0 - (double)best / 20.0);
    }
}

/* AWQ's clipping search: clip[N][groups] = the max-abs each group keeps. */
W4A8_PRIVATE w4a8_status w4a8__clip_search(const float *W, size_t N, size_t K, size_t G, const float *X, size_t T,
                                           w4a8_kernel kernel, float *clip) {
    size_t step = (T + W4A8__CLIP_TOKENS - 1) / W4A8__CLIP_TOKENS, used = (T + step - 1) / step; /* tokens 0, step, ... */
    size_t groups = (K + G - 1) / G, rows = w4a8__min(N, W4A8__CLIP_ROWS), n0, k0;
    double *row_sum = (double *)w4a8__alloc(rows * W4A8__CLIP_STEPS, sizeof(double));
    w4a8__awq_ws w;
    w4a8_status st = row_sum ? w4a8__awq_ws_make(kernel, rows * W4A8__CLIP_STEPS, G, 1, used, &w) : W4A8_ERR_NOMEM;
    for (n0 = 0; st == W4A8_OK && n0 < N; n0 += rows)
        for (k0 = 0; k0 < K; k0 += G)
            w4a8__clip_rows(&w, W, K, n0, w4a8__min(rows, N - n0), k0, w4a8__min(G, K - k0), X, used, step * K,
                            clip + n0 * groups + k0 / G, groups, row_sum);
    if (st == W4A8_OK) w4a8__awq_ws_free(&w);
    W4A8_FREE(row_sum);
    return st;
}

/* Wc = clamp(W, -clip, clip) group by group. */
W4A8_PRIVATE void w4a8__clip_apply(const float *W, size_t N, size_t K, size_t G, const float *clip, float *Wc) {
    size_t groups = (K + G - 1) / G;
    ptrdiff_t n;
    W4A8__OMP_FOR
    for (n = 0; n < (ptrdiff_t)N; n++) {
        size_t k;
        for (k = 0; k < K; k++) {
            float c = clip[(size_t)n * groups + k / G];
            Wc[(size_t)n * K + k] = w4a8__clampf(W[(size_t)n * K + k], -c, c);
        }
    }
}

W4A8_IMPL w4a8_status w4a8_clip_awq(const float *W, size_t N, size_t K, size_t group_size, const float *X,
                                    size_t T, float *Wc) {
    size_t G, tk;
    float *clip;
    w4a8_status st;
    if (!W || !X || !Wc) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(N, K, group_size)) != W4A8_OK) return st;
    if (T == 0) return W4A8_ERR_SHAPE;
    if (w4a8__mul(T, K, &tk)) return W4A8_ERR_OVERFLOW;
    if (!w4a8__all_finite(W, N * K) || !w4a8__all_finite(X, tk)) return W4A8_ERR_NONFINITE;
    G = w4a8__group_len(K, group_size);
    if (!(clip = (float *)w4a8__alloc(N, ((K + G - 1) / G) * sizeof(float)))) return W4A8_ERR_NOMEM;
    st = w4a8__clip_search(W, N, K, G, X, T, W4A8_KERNEL_AUTO, clip);
    if (st == W4A8_OK) w4a8__clip_apply(W, N, K, G, clip, Wc);
    W4A8_FREE(clip);
    return st;
}

/* --- GPTQ -------------------------------------------------------------------- */

/* Float like the reference (IST-DASLab/gptq runs in float32 throughout), on
   the float GEMM. Blocks of W4A8__CHOL_BLOCK columns: each diagonal block is
   factored and inverted in double, the rest is GEMM work in float. */
#define W4A8__CHOL_BLOCK 128

/* The lower Cholesky factor of the nb x nb block L (double, row-major) in
   place; 0 when a pivot falls below min_pivot. */
W4A8_PRIVATE int w4a8__chol_small(double *L, size_t nb, double min_pivot) {
    size_t i, j, k;
    for (j = 0; j < nb; j++) {
        double dj = L[j * nb + j];
        for (k = 0; k < j; k++) dj -= L[j * nb + k] * L[j * nb + k];
        if (!(dj >= min_pivot && dj < HUGE_VAL)) return 0;
        L[j * nb + j] = sqrt(dj);
        for (i = j + 1; i < nb; i++) {
            double v = L[i * nb + j];
            for (k = 0; k < j; k++) v -= L[i * nb + k] * L[j * nb + k];
            L[i * nb + j] = v / L[j * nb + j];
        }
    }
    return 1;
}

/* Li = L^-1 for the lower triangular nb x nb L, by substitution. */
W4A8_PRIVATE void w4a8__inv_small(const double *L, double *Li, size_t nb) {
    size_t i, j, k;
    memset(Li, 0, nb * nb * sizeof(double));
    for (j = 0; j < nb; j++) {
        Li[j * nb + j] = 1.0 / L[j * nb + j];
        for (i = j + 1; i < nb; i++) {
            double v = 0.0;
            for (k = j; k < i; k++) v += L[i * nb + k] * Li[k * nb + j];
            Li[i * nb + j] = -v / L[i * nb + i];
        }
    }
}

/* Block [j0, j0 + nb) of the diagonal of A (lower part) into L in double. */
W4A8_PRIVATE void w4a8__diag_get(const float *A, size_t K, size_t j0, size_t nb, double *L) {
    size_t r, c;
    for (r = 0; r < nb; r++)
        for (c = 0; c < nb; c++) L[r * nb + c] = c <= r ? (double)A[(j0 + r) * K + j0 + c] : 0.0;
}

/* ... and back, with zeros above the diagonal. */
W4A8_PRIVATE void w4a8__diag_put(float *A, size_t K, size_t j0, size_t nb, const double *L) {
    size_t r, c;
    for (r = 0; r < nb; r++)
        for (c = 0; c < nb; c++) A[(j0 + r) * K + j0 + c] = c <= r ? (float)L[r * nb + c] : 0.0f;
}

/* Scratch of the blocked factorizations: K x B floats, B x B floats, 2 B^2 doubles. */
typedef struct w4a8__chol_ws {
    float *S, *F, *gemm;
    double *D;
} w4a8__chol_ws;

/* Lower Cholesky factor of A[K][K] in place (lower triangle read; the strict
   upper triangle ends zero). Right-looking: factor a diagonal block, the
   panel below it times the block's inverse, the trailing lower triangle
   minus panel panel^T by the GEMM. 0 when a pivot falls below min_pivot. */
W4A8_PRIVATE int w4a8__cholesky(const w4a8__fisa *isa, w4a8__chol_ws *w, float *A, size_t K, double min_pivot) {
    const size_t B = W4A8__CHOL_BLOCK;
    size_t j0, r, c, r0;
    for (j0 = 0; j0 < K; j0 += B) {
        size_t j1 = w4a8__min(j0 + B, K), nb = j1 - j0, rows = K - j1;
        double *L = w->D, *Li = w->D + B * B;
        w4a8__diag_get(A, K, j0, nb, L);
        if (!w4a8__chol_small(L, nb, min_pivot)) return 0;
        w4a8__diag_put(A, K, j0, nb, L);
        if (rows == 0) break;
        w4a8__inv_small(L, Li, nb);
        for (r = 0; r < nb; r++)
            for (c = 0; c < nb; c++) w->F[r * nb + c] = (float)Li[r * nb + c];
        for (r = 0; r < rows; r++) memcpy(w->S + r * nb, A + (j1 + r) * K + j0, nb * sizeof(float));
        /* A21 = S L11^-T */
        w4a8__fgemm(isa, w->gemm, rows, nb, nb, 1.0f, w->S, nb, 0, w->F, nb, 1, 0.0f, A + j1 * K + j0, K);
        /* A22 -= A21 A21^T, block row by block row down to the diagonal */
        for (r0 = j1; r0 < K; r0 += B) {
            size_t r1 = w4a8__min(r0 + B, K);
            w4a8__fgemm(isa, w->gemm, r1 - r0, r1 - j1, nb, -1.0f, A + r0 * K + j0, K, 0, A + j1 * K + j0, K, 1,
                        1.0f, A + r0 * K + j1, K);
        }
    }
    for (r = 0; r < K; r++) memset(A + r * K + r + 1, 0, (K - 1 - r) * sizeof(float));
    return 1;
}

/* M^-1 in place of the lower triangular M in A (zero above the diagonal),
   by block columns from the last: X11 = M11^-1, X21 = -X22 (M21 X11). */
W4A8_PRIVATE void w4a8__tri_inverse(const w4a8__fisa *isa, w4a8__chol_ws *w, float *A, size_t K) {
    const size_t B = W4A8__CHOL_BLOCK;
    size_t blocks = (K + B - 1) / B, b, r, c, r0;
    for (b = blocks; b-- > 0;) {
        size_t j0 = b * B, j1 = w4a8__min(j0 + B, K), nb = j1 - j0, rows = K - j1;
        double *L = w->D, *Li = w->D + B * B;
        w4a8__diag_get(A, K, j0, nb, L);
        w4a8__inv_small(L, Li, nb);
        if (rows) {
            for (r = 0; r < nb; r++)
                for (c = 0; c < nb; c++) w->F[r * nb + c] = (float)Li[r * nb + c];
            /* S = M21 X11, then X21 = -X22 S: X22 is lower, so row block r0 needs S up to r1 */
            w4a8__fgemm(isa, w->gemm, rows, nb, nb, 1.0f, A + j1 * K + j0, K, 0, w->F, nb, 0, 0.0f, w->S, nb);
            for (r0 = j1; r0 < K; r0 += B) {
                size_t r1 = w4a8__min(r0 + B, K);
                w4a8__fgemm(isa, w->gemm, r1 - r0, nb, r1 - j1, -1.0f, A + r0 * K + j1, K, 0, w->S, nb, 0, 0.0f,
                            A + r0 * K + j0, K);
            }
        }
        w4a8__diag_put(A, K, j0, nb, Li);
    }
}

/* GPTQ's preparation, shared by every linear that sees the same input. */
typedef struct w4a8__gptq_plan {
    size_t K;
    size_t *perm;           /* [K] column quantized at step i (act_order), or NULL */
    unsigned char *dead;    /* [K] 1 where H_jj = 0 */
    float *U;               /* [K][K] upper Cholesky factor of the damped H^-1, in step order */
    float *hdiag;           /* [K] H_jj in U's units, 0 where dead, for scale_search; or NULL */
    double lambda, delta;   /* damping: delta = lambda * mean(diag H), in U's units */
    int hexp;               /* U is of H 2^-hexp (mean diag H near 1, so float holds it; GPTQ's
                               codes do not depend on H's scale, its loss does) */
    w4a8__fisa isa;         /* the float GEMM */
} w4a8__gptq_plan;

W4A8_PRIVATE void w4a8__gptq_plan_free(w4a8__gptq_plan *p) {
    W4A8_FREE(p->perm);
    W4A8_FREE(p->dead);
    W4A8_FREE(p->U);
    W4A8_FREE(p->hdiag);
    memset(p, 0, sizeof *p);
}

typedef struct w4a8__sort_key {
    double h;
    size_t j;
} w4a8__sort_key;

/* Decreasing H_jj, ties by index: one order on every platform. */
W4A8_PRIVATE int w4a8__by_decreasing_h(const void *a, const void *b) {
    const w4a8__sort_key *x = (const w4a8__sort_key *)a, *y = (const w4a8__sort_key *)b;
    if (x->h != y->h) return x->h > y->h ? -1 : 1;
    return x->j < y->j ? -1 : (x->j > y->j);
}

/* H_ij of the equalized input X / s: hscale H_ij / (s_i s_j), from the upper triangle. */
W4A8_PRIVATE double w4a8__h(const double *H, size_t K, double hscale, const float *s, size_t i, size_t j) {
    double h = hscale * (i <= j ? H[i * K + j] : H[j * K + i]);
    return s ? h / ((double)s[i] * (double)s[j]) : h;
}

/* The plan for Hessian hscale * H (upper triangle) of inputs divided by s
   (or NULL). For a positive semi-definite H every pivot of H + delta I is at
   least delta, so a pivot below delta / 2 means H is not (or is numerically
   singular): lambda doubles, up to 1. Genuine Hessians never need that. */
W4A8_PRIVATE w4a8_status w4a8__gptq_plan_make(const double *H, double hscale, size_t K, const float *s,
                                              const w4a8_config *cfg, w4a8__gptq_plan *p) {
    const size_t B = W4A8__CHOL_BLOCK;
    double mean = 0.0;
    float *A;
    w4a8__sort_key *keys = NULL;
    w4a8__chol_ws w;
    size_t i, j, kk;
    w4a8_status st;
    memset(p, 0, sizeof *p);
    memset(&w, 0, sizeof w);
    if (w4a8__mul(K, K, &kk) || w4a8__mul(kk, sizeof(double), &j)) return W4A8_ERR_OVERFLOW;
    for (i = 0; i < K; i++)
        for (j = i; j < K; j++)
            if (!(H[i * K + j] - H[i * K + j] == 0.0)) return W4A8_ERR_NONFINITE;
    if ((st = w4a8__fisa_of(cfg->kernel, &p->isa)) != W4A8_OK) return st;
    p->K = K;
    p->dead = (unsigned char *)w4a8__alloc(K, 1);
    p->U = A = (float *)w4a8__alloc(kk, sizeof(float));
    w.S = (float *)w4a8__alloc(K * B + B * B, sizeof(float));
    w.F = w.S ? w.S + K * B : NULL;
    w.D = (double *)w4a8__alloc(2 * B * B, sizeof(double));
    w.gemm = w4a8__fgemm_ws();
    if (cfg->gptq_act_order) {
        p->perm = (size_t *)w4a8__alloc(K, sizeof(size_t));
        keys = (w4a8__sort_key *)w4a8__alloc(K, sizeof *keys);
    }
    if (cfg->scale_search) p->hdiag = (float *)w4a8__alloc(K, sizeof(float));
    if (!p->dead || !A || !w.S || !w.D || !w.gemm || (cfg->gptq_act_order && (!p->perm || !keys)) ||
        (cfg->scale_search && !p->hdiag))
        st = W4A8_ERR_NOMEM;
    for (j = 0; st == W4A8_OK && j < K; j++) {
        double h = w4a8__h(H, K, hscale, s, j, j);
        p->dead[j] = h == 0.0;
        mean += p->dead[j] ? 1.0 : h;
        if (keys) {
            keys[j].h = p->dead[j] ? 1.0 : h;
            keys[j].j = j;
        }
    }
    /* Every input dead: the calibration saw only zeros (or none were added). */
    for (j = 0; st == W4A8_OK && j < K && p->dead[j]; j++) {}
    if (st == W4A8_OK && j == K) st = W4A8_ERR_ZERO_CALIB;
    mean /= (double)K;
    if (st == W4A8_OK && !(mean > 0.0 && mean < HUGE_VAL)) st = W4A8_ERR_SINGULAR_HESSIAN;
    if (st == W4A8_OK) {
        frexp(mean, &p->hexp);
        hscale = ldexp(hscale, -p->hexp);
        mean = ldexp(mean, -p->hexp);
        for (j = 0; p->hdiag && j < K; j++) p->hdiag[j] = p->dead[j] ? 0.0f : (float)w4a8__h(H, K, hscale, s, j, j);
    }
    if (st == W4A8_OK && keys) {
        qsort(keys, K, sizeof *keys, w4a8__by_decreasing_h);
        for (j = 0; j < K; j++) p->perm[j] = keys[j].j;
    }
    for (p->lambda = cfg->gptq_damp; st == W4A8_OK; p->lambda = p->lambda * 2.0 < 1.0 ? p->lambda * 2.0 : 1.0) {
        ptrdiff_t a;
        p->delta = p->lambda * mean;
        /* A = J P^T H P J + damping, J reversing the order: the lower Cholesky
           factor M of A gives U = J M^-1 J, the upper factor of H^-1 */
        W4A8__OMP_FOR
        for (a = 0; a < (ptrdiff_t)K; a++) {
            size_t i = p->perm ? p->perm[a] : (size_t)a, b;
            float *row = A + (K - 1 - (size_t)a) * K;
            for (b = (size_t)a; b < K; b++) {
                size_t c = p->perm ? p->perm[b] : b;
                row[K - 1 - b] = (float)(c == i ? (p->dead[i] ? ldexp(1.0, -p->hexp) : w4a8__h(H, K, hscale, s, i, i)) + p->delta
                                                : w4a8__h(H, K, hscale, s, i, c));
            }
        }
        if (w4a8__cholesky(&p->isa, &w, A, K, p->delta / 2.0)) break;
        if (p->lambda >= 1.0) st = W4A8_ERR_SINGULAR_HESSIAN;
    }
    if (st == W4A8_OK) {
        w4a8__tri_inverse(&p->isa, &w, A, K);
        for (i = 0; i < kk / 2; i++) { /* U = J M^-1 J: the whole array reversed */
            float t = A[i];
            A[i] = A[kk - 1 - i];
            A[kk - 1 - i] = t;
        }
    }
    W4A8_FREE(w.S);
    W4A8_FREE(w.D);
    w4a8__free_aligned(w.gemm);
    W4A8_FREE(keys);
    if (st != W4A8_OK) w4a8__gptq_plan_free(p);
    return st;
}

/* Where the block starting at column i1 ends: blk columns, and with groups
   fitted on the way, never past the start of the next group (a group
   starts on current weights). */
W4A8_PRIVATE size_t w4a8__gptq_next(size_t i1, size_t K, size_t blk, size_t G, int fit_first) {
    size_t i2 = w4a8__min(i1 + blk, K);
    return fit_first ? i2 : w4a8__min(i2, (i1 / G + 1) * G);
}

/* How many blocks w4a8__gptq_rows runs (its progress steps). */
W4A8_PRIVATE size_t w4a8__gptq_blocks(size_t K, const w4a8_config *cfg) {
    size_t G = w4a8__group_len(K, cfg->group_size), blk = w4a8__min(cfg->gptq_block, K), i1, n = 0;
    for (i1 = 0; i1 < K; n++) i1 = w4a8__gptq_next(i1, K, blk, G, cfg->gptq_static_groups || G == K);
    return n;
}

/* GPTQ on W[N][K] (already multiplied by s) with a plan: codes, scales and
   zeros in the original column order, and the sum over rows of the
   reconstruction loss (w - q) H (w - q)^T / 2. Rows are independent; blocks
   of columns go in order, each ending where a group the loop fits starts.
   Inside a block each row updates its own columns (float, as the reference);
   the columns after it take the block's errors by one GEMM (the lazy batch
   update). progress, when not NULL, is told of each block. */
W4A8_PRIVATE w4a8_status w4a8__gptq_rows(const w4a8__gptq_plan *p, const float *W, size_t N,
                                         const w4a8_config *cfg, int asym, uint8_t *codes, float *scales,
                                         uint8_t *zeros, double *loss_sum, w4a8__progress *progress) {
    size_t K = p->K, G = w4a8__group_len(K, cfg->group_size), groups = (K + G - 1) / G;
    size_t blk = w4a8__min(cfg->gptq_block, K), i1, i2;
    int fit_first = cfg->gptq_static_groups || G == K;
    float *Wf = (float *)w4a8__alloc(N * K, sizeof(float)), *E = (float *)w4a8__alloc(N * blk, sizeof(float));
    float *ws = w4a8__fgemm_ws();
    double *loss = (double *)w4a8__alloc(N, sizeof(double));
    ptrdiff_t r;
    w4a8_status st = Wf && E && ws && loss ? W4A8_OK : W4A8_ERR_NOMEM;
    if (st == W4A8_OK) {
        /* rows in step order, dead columns zeroed; static parameters from them */
        W4A8__OMP_FOR
        for (r = 0; r < (ptrdiff_t)N; r++) {
            const float *w = W + (size_t)r * K;
            float *wf = Wf + (size_t)r * K;
            size_t i, k0;
            for (i = 0; i < K; i++) {
                size_t k = p->perm ? p->perm[i] : i;
                wf[i] = p->dead[k] ? 0.0f : w[k];
            }
            loss[r] = 0.0;
            for (k0 = 0; fit_first && k0 < K; k0 += G) {
                size_t k1 = w4a8__min(k0 + G, K), k, gi = (size_t)r * groups + k0 / G;
                float range[2] = { 0.0f, 0.0f }; /* GPTQ's grid depends on min and max only */
                if (p->hdiag) {
                    w4a8__fit_group_weighted(w + k0, p->hdiag + k0, k1 - k0, asym, &scales[gi], &zeros[gi]);
                    continue;
                }
                for (k = k0; k < k1; k++) {
                    float v = p->dead[k] ? 0.0f : w[k];
                    range[0] = v < range[0] ? v : range[0];
                    range[1] = v > range[1] ? v : range[1];
                }
                w4a8__fit_group(range, 2, asym, &scales[gi], &zeros[gi]);
            }
        }
    }
    for (i1 = 0; st == W4A8_OK && i1 < K; i1 = i2) {
        size_t nb;
        i2 = w4a8__gptq_next(i1, K, blk, G, fit_first);
        nb = i2 - i1;
        W4A8__OMP_FOR
        for (r = 0; r < (ptrdiff_t)N; r++) {
            size_t n = (size_t)r, i, j;
            float *w = Wf + n * K, *e = E + n * nb;
            for (i = i1; i < i2; i++) {
                size_t k = p->perm ? p->perm[i] : i, gi = n * groups + k / G;
                const float *u = p->U + i * K;
                float q, err;
                uint8_t c;
                if (!fit_first && i % G == 0 && p->hdiag) /* no act order here: step order is k's */
                    w4a8__fit_group_weighted(w + i, p->hdiag + i, w4a8__min(i + G, K) - i, asym, &scales[gi],
                                             &zeros[gi]);
                else if (!fit_first && i % G == 0) {
                    float range[2] = { 0.0f, 0.0f };
                    for (j = i; j < w4a8__min(i + G, K); j++) {
                        range[0] = w[j] < range[0] ? w[j] : range[0];
                        range[1] = w[j] > range[1] ? w[j] : range[1];
                    }
                    w4a8__fit_group(range, 2, asym, &scales[gi], &zeros[gi]);
                }
                c = w4a8__code(w[i], scales[gi], zeros[gi]);
                codes[n * K + k] = c;
                q = scales[gi] * (float)((int)c - (int)zeros[gi]);
                err = (w[i] - q) / u[i];
                loss[n] += (double)err * (double)err;
                W4A8__OMP_SIMD
                for (j = i + 1; j < i2; j++) {
                    float t = err * u[j];
                    w[j] = w[j] - t;
                }
                e[i - i1] = err;
            }
        }
        /* the lazy update of the columns after the block: W[:, i2:] -= E U[i1:i2, i2:] */
        if (i2 < K)
            w4a8__fgemm(&p->isa, ws, N, K - i2, nb, -1.0f, E, nb, 0, p->U + i1 * K + i2, K, 0, 1.0f, Wf + i2, K);
        w4a8__progress_step(progress, 1);
    }
    if (st == W4A8_OK) {
        /* sum of err^2 / 2 is the loss under the damped H: take the damping's share out */
        W4A8__OMP_FOR
        for (r = 0; r < (ptrdiff_t)N; r++) {
            size_t k, row = (size_t)r;
            double d2 = 0.0;
            for (k = 0; k < K; k++) {
                size_t gi = row * groups + k / G;
                double q = (double)scales[gi] * (double)((int)codes[row * K + k] - (int)zeros[gi]);
                double d = (p->dead[k] ? 0.0 : (double)W[row * K + k]) - q;
                d2 += d * d;
            }
            loss[row] = ldexp((loss[row] - p->delta * d2) / 2.0, p->hexp);
            if (loss[row] < 0.0) loss[row] = 0.0;
        }
        *loss_sum = 0.0;
        for (r = 0; r < (ptrdiff_t)N; r++) *loss_sum += loss[r]; /* in order: the same sum every run */
    }
    W4A8_FREE(Wf);
    W4A8_FREE(E);
    w4a8__free_aligned(ws);
    W4A8_FREE(loss);
    return st;
}

W4A8_IMPL w4a8_status w4a8_quantize_gptq(const float *W, size_t N, size_t K, const double *H,
                                         const w4a8_config *cfg, uint8_t *codes, float *scales, uint8_t *zeros,
                                         double *damp, double *loss) {
    w4a8__gptq_plan plan;
    w4a8__progress prog;
    double sum = 0.0;
    w4a8_status st;
    if (!W || !H || !cfg || !codes || !scales || !zeros || !damp || !loss) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_shape(N, K, cfg->group_size)) != W4A8_OK) return st;
    if ((st = w4a8__check_config(cfg, K)) != W4A8_OK) return st;
    if (!w4a8__all_finite(W, N * K)) return W4A8_ERR_NONFINITE;
    if ((st = w4a8__gptq_plan_make(H, 1.0, K, NULL, cfg, &plan)) != W4A8_OK) return st;
    memset(&prog, 0, sizeof prog);
    prog.fn = cfg->progress;
    prog.user = cfg->progress_user;
    prog.total = w4a8__gptq_blocks(K, cfg);
    st = w4a8__gptq_rows(&plan, W, N, cfg, cfg->asymmetric, codes, scales, zeros, &sum, &prog);
    if (st == W4A8_OK) {
        *damp = plan.lambda;
        *loss = sum / (double)N;
    }
    w4a8__gptq_plan_free(&plan);
    return st;
}

/* --- the entry point ----------------------------------------------------------- */

/* What one call shares between the candidates it tries. */
typedef struct w4a8__job {
    const w4a8_linear *lin;
    size_t count, K;
    const w4a8_calib *calib;
    const w4a8_config *cfg;
    int want_loss;          /* 0: nobody reads the loss (no report, not AUTO, not AWQ): skip it */
    double *ref;            /* FP reference outputs on the sample, per linear [T][N]; made once */
    float *awq_s;           /* AWQ's search result; made once */
    float awq_ratio;
    double awq_loss;
    float **clip;           /* [count]: AWQ's clip per row and group, or NULL; each made once */
    double *xtx;            /* calib's xtx with its pending tokens added, when it has some; made once */
    w4a8__progress prog;
} w4a8__job;

/* AUTO's candidates, in the order they run (the first of equal losses wins). */
static const int w4a8__auto_tries[][2] = { { W4A8_METHOD_RTN, 0 },         { W4A8_METHOD_SMOOTHQUANT, 0 },
                                           { W4A8_METHOD_AWQ, 0 },         { W4A8_METHOD_FPTQ, 0 },
                                           { W4A8_METHOD_GPTQ, 1 },        { W4A8_METHOD_SMOOTHQUANT, 1 },
                                           { W4A8_METHOD_AWQ, 1 },         { W4A8_METHOD_FPTQ, 1 } };
#define W4A8__AUTO_TRIES (sizeof w4a8__auto_tries / sizeof w4a8__auto_tries[0])

/* Whether AUTO tries candidate c. */
W4A8_PRIVATE int w4a8__auto_runs(const w4a8__job *job, size_t c) {
    return !((job->cfg->gptq_weights && !w4a8__auto_tries[c][1]) || (w4a8__auto_tries[c][1] && !job->calib->xtx));
}

/* Progress steps of candidate (m, gptq), AWQ's search aside: a GPTQ block
   or one weight step per linear, and the scoring. */
W4A8_PRIVATE size_t w4a8__candidate_steps(const w4a8__job *job, w4a8_method m, int gptq) {
    size_t i, n = job->want_loss ? 1 : 0;
    gptq = gptq || m == W4A8_METHOD_GPTQ;
    for (i = 0; i < job->count; i++) n += gptq ? w4a8__gptq_blocks(job->K, job->cfg) : 1;
    return n;
}

/* Every step of the call, so that progress ends at total. */
W4A8_PRIVATE size_t w4a8__job_steps(const w4a8__job *job) {
    const w4a8_config *cfg = job->cfg;
    size_t c, n = 0;
    int awq = cfg->method == W4A8_METHOD_AWQ;
    if (cfg->method != W4A8_METHOD_AUTO) return w4a8__candidate_steps(job, cfg->method, cfg->gptq_weights) +
                                                 (awq ? (size_t)cfg->awq_grid : 0);
    if (!job->calib) return 1;
    for (c = 0; c < W4A8__AUTO_TRIES; c++)
        if (w4a8__auto_runs(job, c)) {
            n += w4a8__candidate_steps(job, (w4a8_method)w4a8__auto_tries[c][0], w4a8__auto_tries[c][1]);
            awq |= w4a8__auto_tries[c][0] == W4A8_METHOD_AWQ;
        }
    return n + (awq ? (size_t)cfg->awq_grid : 0);
}

/* job->ref: every linear's FP32 outputs on the sample (the float GEMM, then
   the bias in double). */
W4A8_PRIVATE w4a8_status w4a8__reference(w4a8__job *job) {
    const float *X = job->calib->sample;
    size_t T = job->calib->sample_rows, K = job->K, i, rows = 0, all, maxN = 0;
    float *Y, *ws;
    w4a8__fisa isa;
    w4a8_status st;
    for (i = 0; i < job->count; i++) {
        if (job->lin[i].N > (size_t)-1 - rows) return W4A8_ERR_OVERFLOW;
        rows += job->lin[i].N;
        maxN = job->lin[i].N > maxN ? job->lin[i].N : maxN;
    }
    if (w4a8__mul(T, rows, &all) || w4a8__mul(T, maxN, &maxN)) return W4A8_ERR_OVERFLOW;
    if ((st = w4a8__fisa_of(job->cfg->kernel, &isa)) != W4A8_OK) return st;
    job->ref = (double *)w4a8__alloc(all, sizeof(double));
    Y = (float *)w4a8__alloc(maxN, sizeof(float));
    ws = w4a8__fgemm_ws();
    st = job->ref && Y && ws ? W4A8_OK : W4A8_ERR_NOMEM;
    for (i = 0, rows = 0; st == W4A8_OK && i < job->count; i++) {
        const w4a8_linear *l = &job->lin[i];
        double *R = job->ref + rows * T;
        ptrdiff_t t;
        w4a8__fgemm(&isa, ws, T, l->N, K, 1.0f, X, K, 0, l->W, K, 1, 0.0f, Y, l->N);
        W4A8__OMP_FOR
        for (t = 0; t < (ptrdiff_t)T; t++) {
            size_t n;
            for (n = 0; n < l->N; n++)
                R[(size_t)t * l->N + n] = (l->bias ? l->bias[n] : 0.0) + (double)Y[(size_t)t * l->N + n];
        }
        rows += l->N;
    }
    W4A8_FREE(Y);
    w4a8__free_aligned(ws);
    return st;
}

/* Mean squared error of the layers' outputs against FP32 on the calibration
   sample; -1 when there is no sample. */
W4A8_PRIVATE w4a8_status w4a8__output_mse(w4a8__job *job, w4a8_layer *const *layers, double *mse) {
    const w4a8_calib *calib = job->calib;
    size_t T = calib ? calib->sample_rows : 0, K = job->K, i, total = 0, off = 0;
    double sum = 0.0;
    w4a8_status st;
    *mse = -1.0;
    if (T == 0) return W4A8_OK;
    if (!job->ref && (st = w4a8__reference(job)) != W4A8_OK) return st;
    for (i = 0; i < job->count; i++) {
        size_t N = job->lin[i].N, t;
        float *Y = (float *)w4a8__alloc(T * N, sizeof(float)), *X = NULL;
        const float *in = calib->sample;
        st = Y ? W4A8_OK : W4A8_ERR_NOMEM;
        /* A folded layer expects X / s: give it that. */
        if (st == W4A8_OK && layers[i]->smooth_folded) {
            X = (float *)w4a8__alloc(T * K, sizeof(float));
            if (!X) st = W4A8_ERR_NOMEM;
            for (t = 0; X && t < T * K; t++) X[t] = calib->sample[t] * layers[i]->smooth_inv[t % K];
            in = X;
        }
        if (st == W4A8_OK) st = w4a8_layer_forward(layers[i], in, T, Y, NULL, 0);
        for (t = 0; st == W4A8_OK && t < T * N; t++) {
            double e = (double)Y[t] - job->ref[off * T + t];
            sum += e * e;
        }
        W4A8_FREE(Y);
        W4A8_FREE(X);
        if (st != W4A8_OK) return st;
        off += N;
        total += T * N;
    }
    *mse = sum / (double)total;
    return W4A8_OK;
}

/* The equalization and activation mode of method m. *s gets K floats, or
   stays NULL when the method does not equalize. */
W4A8_PRIVATE w4a8_status w4a8__decide(w4a8__job *job, w4a8_method m, float **s, w4a8_act_mode *mode,
                                      w4a8_report *rep) {
    const w4a8_calib *calib = job->calib;
    const w4a8_config *cfg = job->cfg;
    size_t K = job->K;
    w4a8_status st = W4A8_OK;
    *mode = cfg->act_mode;
    if (m == W4A8_METHOD_RTN || m == W4A8_METHOD_GPTQ) return W4A8_OK;
    if (!calib || calib->tokens == 0) return W4A8_ERR_NEED_CALIB;
    if (m == W4A8_METHOD_FPTQ) {
        st = w4a8_fptq_choose(calib->absmax, K, cfg->fptq_low, cfg->fptq_high, &rep->fptq_strategy);
        if (st != W4A8_OK || rep->fptq_strategy == W4A8_FPTQ_PER_TOKEN) {
            *mode = W4A8_ACT_PER_TOKEN;
            return st;
        }
        *mode = W4A8_ACT_PER_TENSOR;
        if (rep->fptq_strategy == W4A8_FPTQ_STATIC) return W4A8_OK;
    }
    if (m == W4A8_METHOD_AWQ && !job->awq_s) {
        job->awq_s = (float *)w4a8__alloc(K, sizeof(float));
        if (!job->awq_s) return W4A8_ERR_NOMEM;
        st = w4a8__smooth_awq(job->lin, job->count, K, calib, cfg->group_size, cfg->awq_grid, cfg->kernel,
                              &job->prog, job->awq_s, &job->awq_ratio, &job->awq_loss);
        if (st != W4A8_OK) {
            W4A8_FREE(job->awq_s);
            job->awq_s = NULL;
            return st;
        }
    }
    *s = (float *)w4a8__alloc(K, sizeof(float));
    if (!*s) return W4A8_ERR_NOMEM;
    if (m == W4A8_METHOD_SMOOTHQUANT) {
        st = w4a8_weight_absmax(job->lin, job->count, K, *s);
        if (st == W4A8_OK) st = w4a8_smooth_smoothquant(calib->absmax, *s, K, cfg->sq_alpha, *s);
    } else if (m == W4A8_METHOD_AWQ) {
        memcpy(*s, job->awq_s, K * sizeof(float));
        rep->awq_ratio = job->awq_ratio;
        rep->awq_loss = job->awq_loss;
    } else {
        st = w4a8_smooth_lae(calib->absmax, K, *s);
    }
    return st;
}

/* The weights of one linear, W s (clipped, for AWQ), as codes, scales, zeros.
   AWQ has zero points (its own grid, or GPTQ's asymmetric one) unless
   cfg.awq_symmetric. */
W4A8_PRIVATE w4a8_status w4a8__weights(w4a8__job *job, size_t li, w4a8_method m, const float *s,
                                       const w4a8__gptq_plan *plan, uint8_t *codes, float *scales,
                                       uint8_t *zeros, double *gptq_loss) {
    const w4a8_config *cfg = job->cfg;
    const w4a8_calib *calib = job->calib;
    const w4a8_linear *lin = &job->lin[li];
    size_t K = job->K, N = lin->N, G = w4a8__group_len(K, cfg->group_size), k, n;
    float *Ws = NULL, *Xs = NULL, *h = NULL;
    const float *Wq = lin->W;
    int awq_zeros = m == W4A8_METHOD_AWQ && !cfg->awq_symmetric;
    w4a8_status st = W4A8_OK;
    if (s) {
        Wq = Ws = (float *)w4a8__alloc(N * K, sizeof(float));
        if (!Ws) return W4A8_ERR_NOMEM;
        for (n = 0; n < N; n++)
            for (k = 0; k < K; k++) Ws[n * K + k] = lin->W[n * K + k] * s[k];
    }
    if (m == W4A8_METHOD_AWQ && cfg->awq_clip && !lin->skip_clip) {
        /* AWQ's s is the job's, so its clip is too: searched once, for AWQ and AWQ + GPTQ */
        if (!job->clip) {
            if (!(job->clip = (float **)w4a8__alloc(job->count, sizeof(float *)))) st = W4A8_ERR_NOMEM;
            for (k = 0; job->clip && k < job->count; k++) job->clip[k] = NULL;
        }
        if (st == W4A8_OK && !job->clip[li]) {
            /* the clip search sees the inputs the layer will: X * (1/s) */
            size_t T = calib->sample_rows, t;
            float *c = (float *)w4a8__alloc(N, ((K + G - 1) / G) * sizeof(float));
            Xs = (float *)w4a8__alloc(T * K, sizeof(float));
            st = Xs && c ? W4A8_OK : W4A8_ERR_NOMEM;
            for (t = 0; st == W4A8_OK && t < T; t++)
                for (k = 0; k < K; k++) Xs[t * K + k] = calib->sample[t * K + k] * (1.0f / s[k]);
            if (st == W4A8_OK) st = w4a8__clip_search(Ws, N, K, G, Xs, T, cfg->kernel, c);
            if (st == W4A8_OK) job->clip[li] = c;
            else W4A8_FREE(c);
        }
        if (st == W4A8_OK) w4a8__clip_apply(Ws, N, K, G, job->clip[li], Ws);
    }
    if (st == W4A8_OK && !plan && !awq_zeros && cfg->scale_search && calib && calib->xtx) {
        /* the inputs' importance: H_jj of X / s, over its largest (floats hold it) */
        double *d = (double *)w4a8__alloc(K, sizeof(double)), top = 0.0;
        size_t t;
        if (!(h = (float *)w4a8__alloc(K, sizeof(float))) || !d) st = W4A8_ERR_NOMEM;
        for (k = 0; st == W4A8_OK && k < K; k++) {
            d[k] = calib->xtx[k * K + k];
            for (t = 0; t < calib->pending_rows; t++) d[k] += (double)calib->pending[t * K + k] * calib->pending[t * K + k];
            if (s) d[k] /= (double)s[k] * (double)s[k];
            top = d[k] > top ? d[k] : top;
        }
        for (k = 0; st == W4A8_OK && k < K; k++) h[k] = top > 0.0 ? (float)(d[k] / top) : 1.0f;
        W4A8_FREE(d);
    }
    if (st == W4A8_OK) {
        if (plan) st = w4a8__gptq_rows(plan, Wq, N, cfg, awq_zeros || cfg->asymmetric, codes, scales, zeros,
                                       gptq_loss, &job->prog);
        else if (awq_zeros) st = w4a8_quantize_rtn_awq(Wq, N, K, cfg->group_size, codes, scales, zeros);
        else st = w4a8__rtn(Wq, N, K, cfg->group_size, cfg->asymmetric, cfg->scale_search, h, codes, scales, zeros);
        if (!plan) w4a8__progress_step(&job->prog, 1);
    }
    W4A8_FREE(Ws);
    W4A8_FREE(Xs);
    W4A8_FREE(h);
    return st;
}

/* The Hessian sum of every token: xtx and, added once for the whole job,
   the tokens still pending (as w4a8_calib_hessian does). */
W4A8_PRIVATE w4a8_status w4a8__job_xtx(w4a8__job *job, const double **H) {
    const w4a8_calib *c = job->calib;
    size_t K = c->K;
    float *P, *ws;
    if (!job->xtx) {
        if (w4a8__xtx_scratch(K, &P, &ws) != W4A8_OK) return W4A8_ERR_NOMEM;
        if ((job->xtx = (double *)w4a8__alloc(K * K, sizeof(double))) != NULL) {
            memcpy(job->xtx, c->xtx, K * K * sizeof(double));
            w4a8__xtx_add(c->pending, c->pending_rows, K, job->xtx, P, ws);
        }
        W4A8_FREE(P);
        w4a8__free_aligned(ws);
        if (!job->xtx) return W4A8_ERR_NOMEM;
    }
    *H = job->xtx;
    return W4A8_OK;
}

/* One candidate: method m, with GPTQ weights or not. made[] receives the layers. */
W4A8_PRIVATE w4a8_status w4a8__candidate(w4a8__job *job, w4a8_method m, int gptq, w4a8_layer **made,
                                         w4a8_report *rep) {
    const w4a8_config *cfg = job->cfg;
    const w4a8_calib *calib = job->calib;
    size_t K = job->K, G = w4a8__group_len(K, cfg->group_size), groups = (K + G - 1) / G, i, maxN = 0, rows = 0;
    float *s = NULL, *scales = NULL;
    uint8_t *codes = NULL, *zeros = NULL;
    w4a8__gptq_plan plan;
    w4a8_act_mode mode;
    double gsum = 0.0;
    w4a8_status st;
    if (m == W4A8_METHOD_GPTQ || (m == W4A8_METHOD_RTN && gptq)) {
        m = W4A8_METHOD_GPTQ;
        gptq = 1;
    }
    memset(rep, 0, sizeof *rep);
    memset(&plan, 0, sizeof plan);
    rep->method = m;
    rep->gptq_weights = gptq;
    rep->loss = rep->awq_loss = rep->gptq_loss = -1.0;
    rep->awq_ratio = -1.0f;
    for (i = 0; i < W4A8_METHOD_COUNT; i++) rep->auto_loss[i][0] = rep->auto_loss[i][1] = -1.0;
    for (i = 0; calib && i < K; i++)
        if (calib->absmax[i] > rep->act_absmax) rep->act_absmax = calib->absmax[i];
    for (i = 0; i < job->count; i++) maxN = job->lin[i].N > maxN ? job->lin[i].N : maxN;
    st = w4a8__decide(job, m, &s, &mode, rep);
    if (st == W4A8_OK && mode == W4A8_ACT_PER_TENSOR) {
        if (cfg->act_scale > 0.0f) rep->act_scale = cfg->act_scale;
        else st = w4a8__static_scale(calib, s, &rep->act_scale);
    }
    if (st == W4A8_OK && gptq) {
        const double *H = calib ? calib->xtx : NULL;
        if (!calib || !calib->xtx || calib->tokens == 0) st = W4A8_ERR_NEED_CALIB;
        else if (calib->pending_rows) st = w4a8__job_xtx(job, &H);
        if (st == W4A8_OK) st = w4a8__gptq_plan_make(H, 2.0 / (double)calib->tokens, K, s, cfg, &plan);
        rep->gptq_damp = plan.lambda;
    }
    if (st == W4A8_OK) {
        codes = (uint8_t *)w4a8__alloc(maxN, K);
        scales = (float *)w4a8__alloc(maxN * groups, sizeof(float));
        zeros = (uint8_t *)w4a8__alloc(maxN, groups);
        if (!codes || !scales || !zeros) st = W4A8_ERR_NOMEM;
    }
    for (i = 0; st == W4A8_OK && i < job->count; i++) {
        w4a8_layer_desc d;
        double l = 0.0;
        st = w4a8__weights(job, i, m, s, gptq ? &plan : NULL, codes, scales, zeros, &l);
        gsum += l;
        rows += job->lin[i].N;
        memset(&d, 0, sizeof d);
        d.N = job->lin[i].N;
        d.K = K;
        d.group_size = cfg->group_size;
        d.asymmetric = (m == W4A8_METHOD_AWQ && !cfg->awq_symmetric) || cfg->asymmetric;
        d.codes = codes;
        d.scales = scales;
        d.zeros = zeros;
        d.bias = job->lin[i].bias;
        d.smooth = s;
        d.smooth_folded = cfg->fold_smooth;
        d.act_mode = mode;
        d.act_scale = rep->act_scale;
        d.method = m;
        d.kernel = cfg->kernel;
        if (st == W4A8_OK) st = w4a8_layer_create(&d, &made[i]);
    }
    rep->act_mode = mode;
    rep->equalized = s != NULL;
    if (gptq) rep->gptq_loss = gsum / (double)rows;
    if (st == W4A8_OK && job->want_loss) {
        st = w4a8__output_mse(job, made, &rep->loss);
        w4a8__progress_step(&job->prog, 1);
        /* AWQ's scales can push finite weights and inputs past float: never an OK with such layers */
        if (st == W4A8_OK && m == W4A8_METHOD_AWQ && !(rep->loss < HUGE_VAL)) st = W4A8_ERR_RANGE;
    }
    if (st != W4A8_OK)
        for (i = 0; i < job->count; i++) {
            w4a8_layer_free(made[i]);
            made[i] = NULL;
        }
    w4a8__gptq_plan_free(&plan);
    W4A8_FREE(s);
    W4A8_FREE(codes);
    W4A8_FREE(scales);
    W4A8_FREE(zeros);
    return st;
}

/* Every method and composition; the lowest loss wins, the first on ties. */
W4A8_PRIVATE w4a8_status w4a8__auto(w4a8__job *job, w4a8_layer **best, w4a8_report *rep) {
    double table[W4A8_METHOD_COUNT][2];
    w4a8_layer **made;
    w4a8_report r;
    size_t c, i, count = job->count;
    int have = 0, range = 0;
    w4a8_status st = W4A8_OK;
    if (!job->calib || job->calib->tokens == 0 || job->calib->sample_rows == 0) return W4A8_ERR_NEED_CALIB;
    made = (w4a8_layer **)w4a8__alloc(count, sizeof *made);
    if (!made) return W4A8_ERR_NOMEM;
    memset(made, 0, count * sizeof *made);
    for (c = 0; c < W4A8_METHOD_COUNT; c++) table[c][0] = table[c][1] = -1.0;
    for (c = 0; st == W4A8_OK && c < W4A8__AUTO_TRIES; c++) {
        const int *t = w4a8__auto_tries[c];
        if (!w4a8__auto_runs(job, c)) continue;
        st = w4a8__candidate(job, (w4a8_method)t[0], t[1], made, &r);
        /* a candidate that overflows float (AWQ's scales on huge inputs) drops out; a
           non-finite loss never wins */
        if (st == W4A8_ERR_RANGE) {
            range = 1;
            st = W4A8_OK;
            continue;
        }
        if (st != W4A8_OK) break;
        table[t[0]][t[1]] = r.loss;
        if (!(r.loss < HUGE_VAL)) range = 1;
        if (r.loss < HUGE_VAL && (!have || r.loss < rep->loss)) {
            for (i = 0; i < count; i++) {
                w4a8_layer_free(best[i]);
                best[i] = made[i];
            }
            *rep = r;
            have = 1;
        } else {
            for (i = 0; i < count; i++) w4a8_layer_free(made[i]);
        }
        memset(made, 0, count * sizeof *made);
    }
    if (st == W4A8_OK && !have) st = range ? W4A8_ERR_RANGE : W4A8_ERR_NEED_CALIB; /* or GPTQ only, no Hessian */
    memcpy(rep->auto_loss, table, sizeof table);
    W4A8_FREE(made);
    return st;
}

W4A8_IMPL w4a8_status w4a8_quantize_linears(const w4a8_linear *lin, size_t count, size_t K,
                                            const w4a8_calib *calib, const w4a8_config *cfg,
                                            w4a8_layer **layers, w4a8_report *report) {
    w4a8__job job;
    w4a8_layer **made;
    w4a8_report rep;
    size_t i;
    w4a8_status st;
    if (!lin || !cfg || !layers) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__check_linears(lin, count, K, cfg->group_size)) != W4A8_OK) return st;
    if ((st = w4a8__check_config(cfg, K)) != W4A8_OK) return st;
    if (calib && calib->K != K) return W4A8_ERR_SHAPE;
    if (calib && !w4a8__calib_finite(calib)) return W4A8_ERR_NONFINITE;
    memset(&job, 0, sizeof job);
    job.lin = lin;
    job.count = count;
    job.K = K;
    job.calib = calib;
    job.cfg = cfg;
    job.want_loss = report || cfg->method == W4A8_METHOD_AUTO || cfg->method == W4A8_METHOD_AWQ;
    job.prog.fn = cfg->progress;
    job.prog.user = cfg->progress_user;
    job.prog.total = w4a8__job_steps(&job);
    made = (w4a8_layer **)w4a8__alloc(count, sizeof *made);
    if (!made) return W4A8_ERR_NOMEM;
    memset(made, 0, count * sizeof *made);
    memset(&rep, 0, sizeof rep);
    if (cfg->method == W4A8_METHOD_AUTO) st = w4a8__auto(&job, made, &rep);
    else st = w4a8__candidate(&job, cfg->method, cfg->gptq_weights, made, &rep);
    for (i = 0; i < count; i++) {
        if (st == W4A8_OK) layers[i] = made[i];
        else w4a8_layer_free(made[i]);
    }
    W4A8_FREE(made);
    W4A8_FREE(job.ref);
    W4A8_FREE(job.awq_s);
    for (i = 0; job.clip && i < count; i++) W4A8_FREE(job.clip[i]);
    W4A8_FREE(job.clip);
    W4A8_FREE(job.xtx);
    if (st == W4A8_OK && job.prog.done < job.prog.total) w4a8__progress_step(&job.prog, job.prog.total);
    if (st == W4A8_OK && report) *report = rep;
    return st;
}

W4A8_IMPL w4a8_status w4a8_layer_quantize(const float *W, size_t N, size_t K, const float *bias,
                                          const w4a8_calib *calib, const w4a8_config *cfg,
                                          w4a8_layer **out) {
    w4a8_linear lin;
    lin.W = W;
    lin.N = N;
    lin.bias = bias;
    lin.skip_clip = 0;
    if (!out) return W4A8_ERR_NULL_ARG;
    return w4a8_quantize_linears(&lin, 1, K, calib, cfg, out, NULL);
}

/* >>layer (forward) ---------------------------------------------------------- */

/* Workspace: codes [M][K], then scales [M], then group sums [M][groups],
   then for a rotating layer X Q and the transform's scratch [2][M][K] floats,
   each part starting on a 64-byte boundary. */
W4A8_PRIVATE w4a8_status w4a8__workspace_parts(const w4a8_layer *L, size_t M, size_t part[4]) {
    size_t bytes[4], i;
    memset(part, 0, 4 * sizeof *part); /* set on every path: g++ -O3 (nvcc's host) cannot tell otherwise */
    if (w4a8__mul(M, L->K, &bytes[0]) || w4a8__mul(M, sizeof(float), &bytes[1]) ||
        w4a8__mul(M, L->groups, &bytes[2]) || w4a8__mul(bytes[2], sizeof(int32_t), &bytes[2]) ||
        w4a8__mul(bytes[0], L->rotate ? 2 * sizeof(float) : 0, &bytes[3]))
        return W4A8_ERR_OVERFLOW;
    for (i = 0; i < 4; i++) {
        if (bytes[i] > (size_t)-1 - 63) return W4A8_ERR_OVERFLOW;
        part[i] = (bytes[i] + 63) & ~(size_t)63;
    }
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_layer_workspace_size(const w4a8_layer *L, size_t M, size_t *bytes) {
    size_t part[4];
    w4a8_status st;
    if (!L || !bytes) return W4A8_ERR_NULL_ARG;
    if (M == 0) return W4A8_ERR_SHAPE;
    if ((st = w4a8__workspace_parts(L, M, part)) != W4A8_OK) return st;
    if (part[1] + part[2] > (size_t)-1 - part[3] - 64 || part[0] > (size_t)-1 - part[1] - part[2] - part[3] - 64)
        return W4A8_ERR_OVERFLOW;
    *bytes = part[0] + part[1] + part[2] + part[3] + 64; /* + 64: room to align the start */
    return W4A8_OK;
}

/* A rotating layer's input: X Q into R[M][K] (tmp[M][K] scratch), with the
   shared float code, so every kernel quantizes the same floats. */
W4A8_PRIVATE const float *w4a8__layer_input(const w4a8_layer *L, const float *X, size_t M, float *R, float *tmp) {
    if (!L->rotate) return X;
    w4a8__had_rows((const w4a8__had *)L->rotate_plan, X, M, R, tmp);
    return R;
}

W4A8_IMPL w4a8_status w4a8_layer_quantize_activations(const w4a8_layer *L, const float *X, size_t M,
                                                      int8_t *codes, float *scales, int32_t *group_sums) {
    size_t mk;
    float *R = NULL;
    w4a8_status st;
    if (!L || !X || !codes || !scales || !group_sums) return W4A8_ERR_NULL_ARG;
    if (M == 0) return W4A8_ERR_SHAPE;
    if (w4a8__mul(M, L->K, &mk)) return W4A8_ERR_OVERFLOW;
    if (L->rotate && !(R = (float *)w4a8__alloc(mk, 2 * sizeof(float)))) return W4A8_ERR_NOMEM;
    st = w4a8__quantize_acts(L->kernel, 1, w4a8__layer_input(L, X, M, R, R + (R ? mk : 0)), M, L->K, L->G,
                             L->smooth_folded ? NULL : L->smooth_inv, L->act_mode, L->act_scale, codes, scales,
                             group_sums);
    W4A8_FREE(R);
    return st;
}

W4A8_IMPL w4a8_status w4a8_layer_gemm(const w4a8_layer *L, const int8_t *codes, const float *scales,
                                      const int32_t *group_sums, size_t M, float *Y) {
    size_t mn;
    if (!L || !codes || !scales || !group_sums || !Y) return W4A8_ERR_NULL_ARG;
    if (M == 0) return W4A8_ERR_SHAPE;
    if (w4a8__mul(M, L->N, &mn) || w4a8__mul(M, L->K, &mn)) return W4A8_ERR_OVERFLOW;
    w4a8__gemm(L, codes, scales, group_sums, M, Y);
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_layer_forward(const w4a8_layer *L, const float *X, size_t M, float *Y,
                                         void *workspace, size_t workspace_bytes) {
    size_t need, part[4];
    unsigned char *ws, *owned = NULL;
    float *R;
    w4a8_status st;
    if (!L || !X || !Y) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8_layer_workspace_size(L, M, &need)) != W4A8_OK) return st;
    if (workspace && workspace_bytes < need) return W4A8_ERR_WORKSPACE;
    w4a8__workspace_parts(L, M, part); /* cannot fail once the size did not */
    if (!workspace) {
        workspace = owned = (unsigned char *)W4A8_MALLOC(need);
        if (!owned) return W4A8_ERR_NOMEM;
    }
    ws = (unsigned char *)workspace + ((64 - (uintptr_t)workspace % 64) % 64);
    /* The workspace is scratch: one pass, no validation pass before it. */
    R = (float *)(ws + part[0] + part[1] + part[2]);
    X = w4a8__layer_input(L, X, M, R, R + M * L->K);
    st = w4a8__quantize_acts(L->kernel, 0, X, M, L->K, L->G, L->smooth_folded ? NULL : L->smooth_inv, L->act_mode,
                             L->act_scale, (int8_t *)ws, (float *)(ws + part[0]), (int32_t *)(ws + part[0] + part[1]));
    if (st == W4A8_OK)
        w4a8__gemm(L, (const int8_t *)ws, (const float *)(ws + part[0]), (const int32_t *)(ws + part[0] + part[1]),
                   M, Y);
    W4A8_FREE(owned);
    return st;
}

/* >>file ------------------------------------------------------------------- */

#define W4A8__HEADER_BYTES 48u
#define W4A8__FLAG_ASYMMETRIC 1u
#define W4A8__FLAG_BIAS 2u
#define W4A8__FLAG_SMOOTH 4u
#define W4A8__FLAG_SMOOTH_FOLDED 8u
#define W4A8__FLAG_ROTATE 16u

/* CRC-32 (IEEE 802.3, reflected), four bits at a time: small and table-light. */
W4A8_PRIVATE uint32_t w4a8__crc32(const unsigned char *p, size_t n) {
    static const uint32_t t[16] = { 0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu,
                                    0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
                                    0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
                                    0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu };
    uint32_t c = 0xffffffffu;
    size_t i;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        c = (c >> 4) ^ t[c & 15];
        c = (c >> 4) ^ t[c & 15];
    }
    return ~c;
}

W4A8_PRIVATE void w4a8__put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

W4A8_PRIVATE uint32_t w4a8__get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

W4A8_PRIVATE void w4a8__put_u64(unsigned char *p, uint64_t v) {
    w4a8__put_u32(p, (uint32_t)v);
    w4a8__put_u32(p + 4, (uint32_t)(v >> 32));
}

W4A8_PRIVATE uint64_t w4a8__get_u64(const unsigned char *p) {
    return (uint64_t)w4a8__get_u32(p) | (uint64_t)w4a8__get_u32(p + 4) << 32;
}

W4A8_PRIVATE void w4a8__put_floats(unsigned char *p, const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        w4a8__put_u32(p + 4 * i, u);
    }
}

W4A8_PRIVATE void w4a8__get_floats(const unsigned char *p, float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u = w4a8__get_u32(p + 4 * i);
        memcpy(&x[i], &u, 4);
    }
}

/* Bytes of each payload section, in file order; 0 for an absent one. */
W4A8_PRIVATE w4a8_status w4a8__file_sections(size_t N, size_t K, size_t groups, uint32_t flags, size_t s[6],
                                             size_t *total) {
    size_t i, sum = W4A8__HEADER_BYTES + 4;
    s[5] = flags & W4A8__FLAG_ROTATE ? 8 : 0;
    if (w4a8__mul(N, (K + 1) / 2, &s[0]) || w4a8__mul(N, groups, &s[2]) || w4a8__mul(s[2], 4, &s[1]) ||
        w4a8__mul(K, 4, &s[3]) || w4a8__mul(N, 4, &s[4]))
        return W4A8_ERR_OVERFLOW;
    if (!(flags & W4A8__FLAG_ASYMMETRIC)) s[2] = 0;
    if (!(flags & W4A8__FLAG_SMOOTH)) s[3] = 0;
    if (!(flags & W4A8__FLAG_BIAS)) s[4] = 0;
    for (i = 0; i < 6; i++) {
        if (s[i] > (size_t)-1 - sum) return W4A8_ERR_OVERFLOW;
        sum += s[i];
    }
    *total = sum;
    return W4A8_OK;
}

W4A8_PRIVATE uint32_t w4a8__layer_flags(const w4a8_layer *L) {
    return (L->asymmetric ? W4A8__FLAG_ASYMMETRIC : 0u) | (L->bias ? W4A8__FLAG_BIAS : 0u) |
           (L->smooth ? W4A8__FLAG_SMOOTH : 0u) | (L->smooth_folded ? W4A8__FLAG_SMOOTH_FOLDED : 0u) |
           (L->rotate ? W4A8__FLAG_ROTATE : 0u);
}

W4A8_IMPL w4a8_status w4a8_layer_save_size(const w4a8_layer *L, size_t *bytes) {
    size_t s[6];
    if (!L || !bytes) return W4A8_ERR_NULL_ARG;
    return w4a8__file_sections(L->N, L->K, L->groups, w4a8__layer_flags(L), s, bytes);
}

W4A8_IMPL w4a8_status w4a8_layer_save_mem(const w4a8_layer *L, void *buffer, size_t bytes) {
    size_t s[6], total, ng;
    uint32_t flags;
    uint8_t *codes;
    unsigned char *p = (unsigned char *)buffer;
    w4a8_status st;
    if (!L || !buffer) return W4A8_ERR_NULL_ARG;
    flags = w4a8__layer_flags(L);
    if ((st = w4a8__file_sections(L->N, L->K, L->groups, flags, s, &total)) != W4A8_OK) return st;
    if (bytes < total) return W4A8_ERR_SHAPE;
    codes = (uint8_t *)w4a8__alloc(L->N, L->K);
    if (!codes) return W4A8_ERR_NOMEM;
    ng = L->N * L->groups;
    memcpy(p, "W4A8", 4);
    w4a8__put_u32(p + 4, W4A8_FORMAT_VERSION);
    w4a8__put_u64(p + 8, L->N);
    w4a8__put_u64(p + 16, L->K);
    w4a8__put_u64(p + 24, L->G);
    w4a8__put_u32(p + 32, flags);
    w4a8__put_u32(p + 36, (uint32_t)L->act_mode);
    w4a8__put_floats(p + 40, &L->act_scale, 1);
    w4a8__put_u32(p + 44, (uint32_t)L->method);
    p += W4A8__HEADER_BYTES;
    /* The file always holds the portable layout, whatever the kernel's. */
    w4a8_layer_codes(L, codes);
    w4a8_pack_int4(codes, L->N, L->K, p);
    W4A8_FREE(codes);
    p += s[0];
    w4a8__put_floats(p, L->scales, ng);
    p += s[1];
    if (s[2]) memcpy(p, L->zeros, ng);
    p += s[2];
    if (s[3]) w4a8__put_floats(p, L->smooth, L->K);
    p += s[3];
    if (s[4]) w4a8__put_floats(p, L->bias, L->N);
    p += s[4];
    if (s[5]) w4a8__put_u64(p, L->rotate_seed);
    p += s[5];
    w4a8__put_u32(p, w4a8__crc32((const unsigned char *)buffer, total - 4));
    return W4A8_OK;
}

W4A8_IMPL w4a8_status w4a8_layer_load_mem(const void *buffer, size_t bytes, w4a8_kernel kernel,
                                          w4a8_layer **out) {
    const unsigned char *b = (const unsigned char *)buffer, *p;
    uint64_t N64, K64, G64;
    uint32_t flags, version, mode, method;
    size_t N, K, G, groups, ng, s[6], total;
    w4a8_layer_desc d;
    uint8_t *codes = NULL, *zeros = NULL;
    float *scales = NULL, *smooth = NULL, *bias = NULL;
    w4a8_kernel resolved;
    w4a8_status st;
    if (!buffer || !out) return W4A8_ERR_NULL_ARG;
    /* A bad argument is not a bad file: the kernel is checked first. */
    if ((st = w4a8_kernel_resolve(kernel, &resolved)) != W4A8_OK) return st;
    if (bytes < 4) return W4A8_ERR_FILE_TRUNCATED;
    if (memcmp(b, "W4A8", 4) != 0) return W4A8_ERR_FILE_FORMAT;
    if (bytes < 8) return W4A8_ERR_FILE_TRUNCATED;
    version = w4a8__get_u32(b + 4);
    if (version != 1 && version != W4A8_FORMAT_VERSION) return W4A8_ERR_FILE_VERSION;
    if (bytes < W4A8__HEADER_BYTES + 4) return W4A8_ERR_FILE_TRUNCATED;
    N64 = w4a8__get_u64(b + 8);
    K64 = w4a8__get_u64(b + 16);
    G64 = w4a8__get_u64(b + 24);
    flags = w4a8__get_u32(b + 32);
    mode = w4a8__get_u32(b + 36);
    method = w4a8__get_u32(b + 44);
    /* One layer, one byte string: what save would not write is rejected
       (folded without smooth, a per-token file with an act_scale). */
    if (N64 == 0 || K64 == 0 || G64 == 0 || G64 > K64 || G64 > W4A8_MAX_GROUP || N64 > (size_t)-1 ||
        K64 > (size_t)-1 || (flags & ~(version == 1 ? 15u : 31u)) || mode > 1 || method >= W4A8_METHOD_COUNT ||
        ((flags & W4A8__FLAG_SMOOTH_FOLDED) && !(flags & W4A8__FLAG_SMOOTH)) ||
        (mode == W4A8_ACT_PER_TOKEN && w4a8__get_u32(b + 40) != 0))
        return W4A8_ERR_FILE_FORMAT;
    N = (size_t)N64;
    K = (size_t)K64;
    G = (size_t)G64;
    groups = (K + G - 1) / G;
    if (w4a8__file_sections(N, K, groups, flags, s, &total) != W4A8_OK) return W4A8_ERR_FILE_FORMAT;
    if (bytes < total) return W4A8_ERR_FILE_TRUNCATED;
    if (bytes > total) return W4A8_ERR_FILE_FORMAT;
    if (w4a8__crc32(b, total - 4) != w4a8__get_u32(b + total - 4)) return W4A8_ERR_FILE_CHECKSUM;

    ng = N * groups;
    memset(&d, 0, sizeof d);
    d.N = N;
    d.K = K;
    d.group_size = G;
    d.asymmetric = (flags & W4A8__FLAG_ASYMMETRIC) != 0;
    d.smooth_folded = (flags & W4A8__FLAG_SMOOTH_FOLDED) != 0;
    d.act_mode = (w4a8_act_mode)mode;
    w4a8__get_floats(b + 40, &d.act_scale, 1);
    d.method = (w4a8_method)method;
    d.kernel = kernel;
    codes = (uint8_t *)w4a8__alloc(N, K);
    scales = (float *)w4a8__alloc(ng, sizeof(float));
    zeros = (uint8_t *)w4a8__alloc(ng, 1);
    if (s[3]) smooth = (float *)w4a8__alloc(K, sizeof(float));
    if (s[4]) bias = (float *)w4a8__alloc(N, sizeof(float));
    st = (!codes || !scales || !zeros || (s[3] && !smooth) || (s[4] && !bias)) ? W4A8_ERR_NOMEM : W4A8_OK;
    if (st == W4A8_OK) {
        size_t n;
        p = b + W4A8__HEADER_BYTES;
        /* The pad nibble of odd rows must be 0: one file, one byte string. */
        for (n = 0; (K & 1) && n < N; n++)
            if (p[n * ((K + 1) / 2) + K / 2] >> 4) st = W4A8_ERR_FILE_FORMAT;
        w4a8_unpack_int4(p, N, K, codes);
        p += s[0];
        w4a8__get_floats(p, scales, ng);
        p += s[1];
        if (s[2]) memcpy(zeros, p, ng);
        else memset(zeros, 8, ng);
        p += s[2];
        if (s[3]) w4a8__get_floats(p, smooth, K);
        p += s[3];
        if (s[4]) w4a8__get_floats(p, bias, N);
        p += s[4];
        d.rotate = s[5] != 0;
        if (s[5]) d.rotate_seed = w4a8__get_u64(p);
        if (d.rotate && w4a8_hadamard_order(K, &n) != W4A8_OK) st = W4A8_ERR_FILE_FORMAT;
    }
    d.codes = codes;
    d.scales = scales;
    d.zeros = zeros;
    d.smooth = smooth;
    d.bias = bias;
    if (st == W4A8_OK) {
        st = w4a8_layer_create(&d, out);
        /* A well-formed file holds only valid values; anything else is a bad file. */
        if (st == W4A8_ERR_RANGE || st == W4A8_ERR_NONFINITE || st == W4A8_ERR_CONFIG) st = W4A8_ERR_FILE_FORMAT;
    }
    W4A8_FREE(codes);
    W4A8_FREE(scales);
    W4A8_FREE(zeros);
    W4A8_FREE(smooth);
    W4A8_FREE(bias);
    return st;
}

#ifndef W4A8_NO_STDIO
W4A8_IMPL w4a8_status w4a8_layer_save(const w4a8_layer *L, const char *path) {
    size_t bytes;
    void *buf;
    FILE *f;
    w4a8_status st;
    if (!L || !path) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8_layer_save_size(L, &bytes)) != W4A8_OK) return st;
    buf = W4A8_MALLOC(bytes);
    if (!buf) return W4A8_ERR_NOMEM;
    st = w4a8_layer_save_mem(L, buf, bytes);
    if (st == W4A8_OK) {
        f = fopen(path, "wb");
        if (!f) st = W4A8_ERR_FILE_IO;
        else {
            if (fwrite(buf, 1, bytes, f) != bytes) st = W4A8_ERR_FILE_IO;
            if (fclose(f) != 0) st = W4A8_ERR_FILE_IO;
        }
    }
    W4A8_FREE(buf);
    return st;
}

W4A8_IMPL w4a8_status w4a8_layer_load(const char *path, w4a8_kernel kernel, w4a8_layer **out) {
    FILE *f;
    long len;
    unsigned char *buf;
    w4a8_status st = W4A8_OK;
    w4a8_kernel resolved;
    if (!path || !out) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8_kernel_resolve(kernel, &resolved)) != W4A8_OK) return st;
    f = fopen(path, "rb");
    if (!f) return W4A8_ERR_FILE_IO;
    /* A directory opens, and its "length" may be LONG_MAX: one byte must
       read before the length is believed. */
    if (fgetc(f) == EOF && ferror(f)) len = -1;
    else if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) len = -1;
    if (len < 0) {
        fclose(f);
        return W4A8_ERR_FILE_IO;
    }
    buf = (unsigned char *)W4A8_MALLOC(len ? (size_t)len : 1);
    if (!buf) st = W4A8_ERR_NOMEM;
    else if (fread(buf, 1, (size_t)len, f) != (size_t)len) st = W4A8_ERR_FILE_IO;
    fclose(f);
    if (st == W4A8_OK) st = w4a8_layer_load_mem(buf, (size_t)len, kernel, out);
    W4A8_FREE(buf);
    return st;
}
#endif /* W4A8_NO_STDIO */

#endif /* W4A8_IMPLEMENTATION */

/*
REVISION HISTORY
   unreleased          Hadamard rotations (>>rotate: w4a8_hadamard, weight
                       helpers, w4a8_layer_rotated), layers that rotate their
                       input online; file format version 2 (reads version 1).
   0.1.0 (2026-11-28)  first release: calibration; RTN, SmoothQuant, AWQ,
                       GPTQ, FPTQ, AUTO and their GPTQ compositions; packing;
                       the scalar reference GEMM and bit-identical AVX2,
                       AVX-VNNI, AVX-512 VNNI and NEON kernels; layer
                       lifecycle and file format version 1.

------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the w4a8 authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication for the benefit of the public at large and to
the detriment of our heirs and successors. We intend this dedication to be an
overt act of relinquishment in perpetuity of all present and future rights to
this software under copyright law.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
