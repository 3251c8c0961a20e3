/* w4a8_cuda.cu - W4A8 layers on NVIDIA GPUs: int4 weights unpacked to int8
   in registers, int8 tensor cores (mma.sync m16n8k32, sm_80 and newer),
   activation quantization fused into one pass. API in w4a8_cuda.h; the
   index algebra, shared with the CPU tests, in w4a8_cuda_layout.h.

   A forward is two kernels:
   1 quantize   one block per token: max |x * (1/s)|, then int8 codes at the
                padded positions, the token's scale and its group sums, all
                with the float operations of w4a8_quantize_activations.
   2 gemm       - small M (decode, M <= 16): the weights are the A operand
                  (16 rows), the tokens the B operand (8 columns). A block
                  owns 32 rows; its 8 warps split K in int32 (exact in any
                  order) and stream 16-byte weight loads; partial sums meet
                  in shared memory and one thread per output walks the
                  groups in order for the float chain.
                - otherwise: tiles of 128x128 (64x64 when they would leave
                  SMs idle), a 4-stage cp.async pipeline, ldmatrix for the
                  activations, one 16-byte shared load for four weight
                  fragments. Each group ends with the float step of every
                  accumulator; its scales, zeros and group sums arrive in
                  the stage that ends it.
   Neither splits the float sum over groups: the bits are the CPU's. On
   sm_90 the GEMM is launched as a programmatic dependent of the
   quantization, so it starts fetching weights before the codes are ready. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

#include "w4a8_cuda.h"
#include "w4a8_cuda_layout.h"

/* >>errors ------------------------------------------------------------------ */

static thread_local cudaError_t w4a8__cu_err = cudaSuccess;

static w4a8_status w4a8__cu_fail(cudaError_t e) {
    w4a8__cu_err = e;
    (void)cudaGetLastError(); /* clear it, so that the caller's next check is its own */
    if (e == cudaErrorMemoryAllocation) return W4A8_ERR_NOMEM;
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorNoKernelImageForDevice)
        return W4A8_ERR_UNSUPPORTED;
    return W4A8_ERR_DEVICE;
}

#define W4A8__CU_TRY(call)                                                                          \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess) return w4a8__cu_fail(e_);                                            \
    } while (0)

extern "C" const char *w4a8_cuda_error_str(void) { return cudaGetErrorString(w4a8__cu_err); }

/* >>device-helpers ---------------------------------------------------------- */

/* 16 bytes global -> shared, asynchronously; zero-filled when !valid. */
__device__ __forceinline__ void w4a8__cu_cp16(uint32_t dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void w4a8__cu_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void w4a8__cu_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void w4a8__cu_ldsm4(uint32_t a[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                 : "r"(addr));
}

/* d += a * b on the int8 tensor cores; d is int32, exact. */
__device__ __forceinline__ void w4a8__cu_mma(int32_t d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float w4a8__cu_load(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float w4a8__cu_load(const __half *p, size_t i) { return __half2float(p[i]); }

__device__ __forceinline__ void w4a8__cu_store(float *Y, size_t i, float v) { Y[i] = v; }
__device__ __forceinline__ void w4a8__cu_store(__half *Y, size_t i, float v) { Y[i] = __float2half_rn(v); }
__device__ __forceinline__ void w4a8__cu_store2(float *Y, size_t i, float v0, float v1) {
    *(float2 *)(Y + i) = make_float2(v0, v1);
}
__device__ __forceinline__ void w4a8__cu_store2(__half *Y, size_t i, float v0, float v1) {
    *(__half2 *)(Y + i) = __floats2half2_rn(v0, v1);
}

/* Programmatic dependent launch (sm_90 and newer): the quantization lets the
   GEMM start at once; the GEMM fetches weights, which do not depend on it,
   then waits for the quantization to finish and its writes to be visible.
   No-ops on sm_80 and when launched without the attribute. */
__device__ __forceinline__ void w4a8__cu_pdl_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void w4a8__cu_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/* 1 in every thread of the block when any token had NaN or Inf: then the
   block writes nothing, so Y stays as it was. The flags are mpad bytes
   (a multiple of 16, zero past M), read 16 at a time. */
__device__ __forceinline__ int w4a8__cu_any_bad(const uint8_t *bad, int mpad) {
    uint32_t b = 0;
    for (int i = threadIdx.x; i < mpad / 16; i += blockDim.x) {
        const uint4 v = ((const uint4 *)bad)[i];
        b |= v.x | v.y | v.z | v.w;
    }
    return __syncthreads_or(b != 0);
}

/* >>quantize ---------------------------------------------------------------- */

#define W4A8__CU_QT 256    /* threads per token */
#define W4A8__CU_QGW 1024  /* group sums per pass through shared memory */

struct w4a8__cu_qargs {
    const void *X;
    const float *inv_smooth; /* NULL: none */
    int8_t *codes;
    float *xs;
    int32_t *gs;
    uint8_t *bad;
    int M, K, G, spg, groups, steps, kpad, mpad, per_token;
    float static_scale, static_inv;
};

/* One block per row of the workspace; rows M..mpad-1 only get zeros. */
template <typename TI> __global__ void __launch_bounds__(W4A8__CU_QT) w4a8__cu_quantize(w4a8__cu_qargs a) {
    __shared__ int32_t gsum[W4A8__CU_QGW];
    __shared__ float wmax[W4A8__CU_QT / 32];
    __shared__ int wbad[W4A8__CU_QT / 32];
    const int m = blockIdx.x, tid = threadIdx.x;
    w4a8__cu_pdl_launch();
    if (m >= a.M) {
        for (int g = tid; g < a.groups; g += W4A8__CU_QT) a.gs[(size_t)g * a.mpad + m] = 0;
        if (tid == 0) {
            a.xs[m] = 0.0f;
            a.bad[m] = 0;
        }
        return;
    }
    const TI *x = (const TI *)a.X + (size_t)m * a.K;
    float amax = 0.0f, scale = a.static_scale, inv = a.static_inv;
    int bad = 0;
    for (int k = tid; k < a.K; k += W4A8__CU_QT) {
        float v = w4a8__cu_load(x, k);
        bad |= !w4a8__cu_finite(v);
        amax = fmaxf(amax, fabsf(w4a8__cu_act_value(v, a.inv_smooth, k)));
    }
    for (int o = 16; o > 0; o >>= 1) { /* max is exact in any order */
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        bad |= __shfl_xor_sync(0xffffffffu, bad, o);
    }
    if ((tid & 31) == 0) {
        wmax[tid >> 5] = amax;
        wbad[tid >> 5] = bad;
    }
    __syncthreads();
    for (int w = 0; w < W4A8__CU_QT / 32; w++) {
        amax = fmaxf(amax, wmax[w]);
        bad |= wbad[w];
    }
    if (a.per_token) {
        inv = w4a8__cu_token_inv(amax, &scale);
        bad |= !w4a8__cu_finite(amax); /* x * (1/s) can overflow */
    }
    /* Codes four at a time; a group's span is a multiple of 32 bytes, so the
       four share a group. Integer sums are exact in any order. */
    uint32_t *out = (uint32_t *)(a.codes + (size_t)m * a.kpad);
    const int span = a.spg * 8; /* words per group */
    for (int g0 = 0; g0 < a.groups; g0 += W4A8__CU_QGW) {
        const int g1 = min(a.groups, g0 + W4A8__CU_QGW);
        for (int i = tid; i < g1 - g0; i += W4A8__CU_QT) gsum[i] = 0;
        __syncthreads();
        for (int w = g0 * span + tid; w < g1 * span; w += W4A8__CU_QT) {
            uint32_t word = 0;
            int sum = 0;
            for (int i = 0; i < 4; i++) {
                int k = w4a8__cu_klogical(4 * w + i, a.G, a.spg, a.K);
                int q = k < 0 ? 0 : w4a8__cu_act_code(w4a8__cu_act_value(w4a8__cu_load(x, k), a.inv_smooth, k), inv);
                word |= (uint32_t)(q & 0xff) << (8 * i);
                sum += q;
            }
            out[w] = word;
            if (sum) atomicAdd(&gsum[w / span - g0], sum);
        }
        __syncthreads();
        for (int i = tid; i < g1 - g0; i += W4A8__CU_QT) a.gs[(size_t)(g0 + i) * a.mpad + m] = gsum[i];
        __syncthreads();
    }
    for (int w = a.steps * 8 + tid; w < a.kpad / 4; w += W4A8__CU_QT) out[w] = 0;
    if (tid == 0) {
        a.xs[m] = scale;
        a.bad[m] = (uint8_t)(bad != 0);
    }
}

/* >>gemm -------------------------------------------------------------------- */

struct w4a8__cu_gargs {
    const uint32_t *words;
    const float *scales;  /* [groups][npad] */
    const uint8_t *zeros; /* [groups][npad] */
    const float *bias;    /* [npad] or NULL */
    const int8_t *codes;  /* [M][kpad] */
    const float *xs;      /* [mpad] */
    const int32_t *gs;    /* [groups][mpad] */
    const uint8_t *bad;   /* [mpad] */
    void *Y;
    int M, N, mpad, npad, kpad, steps, steps_pad, spg, magic, vec2;
};

extern __shared__ uint4 w4a8__cu_smem[];

/* Small M: block = 32 weight rows, 8 warps over K. MT token blocks of 8. */
template <int MT, typename TO> __global__ void __launch_bounds__(256) w4a8__cu_small(w4a8__cu_gargs a) {
    constexpr int CH = W4A8__CU_SMALL_CH, U = W4A8__CU_SMALL_U, META = W4A8__CU_SMALL_META;
    int32_t *part = (int32_t *)w4a8__cu_smem;
    unsigned char *meta = (unsigned char *)w4a8__cu_smem + CH * MT * 256 * 4;
    const uint32_t meta_s = (uint32_t)__cvta_generic_to_shared(meta);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nb = blockIdx.x;
    const int nch = (a.steps + CH - 1) / CH;

    /* Scales, zeros and group sums of the groups ending in chunk c, by slot:
       buffer c & 1 holds scales [CH][32], zeros [CH][32], sums [CH][16]. */
    auto load_meta = [&](int c) {
        const uint32_t mb = meta_s + (c & 1) * META;
        for (int q = tid; q < CH * 14; q += 256) {
            const int s = q / 14, r = q % 14, g = w4a8__cu_group_end(c * CH + s, a.spg, a.steps);
            if (g < 0) continue;
            if (r < 8)
                w4a8__cu_cp16(mb + (s * 32 + r * 4) * 4, a.scales + (size_t)g * a.npad + nb * 32 + r * 4, true);
            else if (r < 10)
                w4a8__cu_cp16(mb + CH * 128 + s * 32 + (r - 8) * 16, a.zeros + (size_t)g * a.npad + nb * 32 + (r - 8) * 16, true);
            else
                w4a8__cu_cp16(mb + CH * 160 + (s * 16 + (r - 10) * 4) * 4, a.gs + (size_t)g * a.mpad + (r - 10) * 4, true);
        }
    };
    /* A warp's U steps of chunk c: weight words, then token codes. */
    uint4 wv[U];
    uint32_t bv[U][MT][2];
    auto load_w = [&](int c) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int j = c * CH + warp * U + u;
            if (j < a.steps) wv[u] = __ldg((const uint4 *)(a.words + w4a8__cu_word_at(nb, j, lane, 0, a.steps_pad)));
        }
    };
    auto load_x = [&](int c) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int j = c * CH + warp * U + u;
            if (j >= a.steps) continue;
#pragma unroll
            for (int tb = 0; tb < MT; tb++)
#pragma unroll
                for (int r = 0; r < 2; r++)
                    bv[u][tb][r] = tb * 8 + (lane >> 2) < a.M
                                       ? __ldg((const uint32_t *)(a.codes + w4a8__cu_small_b_off(tb, j, lane, r, a.kpad)))
                                       : 0u;
        }
    };

    float y[MT];
    int32_t racc[MT];
#pragma unroll
    for (int q = 0; q < MT; q++) {
        y[q] = 0.0f;
        racc[q] = 0;
    }
    load_w(0);
    w4a8__cu_pdl_wait();
    if (w4a8__cu_any_bad(a.bad, a.mpad)) return;
    load_meta(0);
    w4a8__cu_commit();
    load_x(0);
    for (int c = 0; c < nch; c++) {
        int32_t acc[2][MT][4];
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int tb = 0; tb < MT; tb++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc[i][tb][e] = 0;
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int s = warp * U + u, j = c * CH + s;
            if (j >= a.steps) continue; /* the same in the whole warp */
            const uint32_t w[4] = { wv[u].x, wv[u].y, wv[u].z, wv[u].w };
#pragma unroll
            for (int i = 0; i < 2; i++) {
                uint32_t af[4];
                w4a8__cu_small_a(w, i, af);
#pragma unroll
                for (int tb = 0; tb < MT; tb++) w4a8__cu_mma(acc[i][tb], af, bv[u][tb][0], bv[u][tb][1]);
            }
            if (w4a8__cu_small_slot(s, j, a.spg)) {
#pragma unroll
                for (int i = 0; i < 2; i++)
#pragma unroll
                    for (int tb = 0; tb < MT; tb++)
#pragma unroll
                        for (int h = 0; h < 2; h++) {
                            const int n = 16 * i + w4a8__cu_c_row(lane, 2 * h), m8 = w4a8__cu_c_col(lane, 2 * h);
                            *(int2 *)(part + w4a8__cu_part_at(s, tb, n, m8, MT)) =
                                make_int2(acc[i][tb][2 * h], acc[i][tb][2 * h + 1]);
                            acc[i][tb][2 * h] = acc[i][tb][2 * h + 1] = 0;
                        }
            }
        }
        if (c + 1 < nch) { /* in flight while the chunk is reduced */
            load_meta(c + 1);
            load_w(c + 1);
            load_x(c + 1);
        }
        w4a8__cu_commit();
        w4a8__cu_wait<1>();
        __syncthreads();
        const unsigned char *mb = meta + (c & 1) * META;
#pragma unroll
        for (int q = 0; q < MT; q++) {
            const int p = tid + 256 * q, tb = p >> 8, n = (p >> 3) & 31, m8 = p & 7;
            if (tb * 8 + m8 >= a.M) continue;
            for (int s = 0; s < CH; s++) {
                const int j = c * CH + s;
                if (j >= a.steps) break;
                if (!w4a8__cu_small_slot(s, j, a.spg)) continue;
                racc[q] += part[w4a8__cu_part_at(s, tb, n, m8, MT)];
                if (w4a8__cu_group_end(j, a.spg, a.steps) >= 0) {
                    y[q] = w4a8__cu_add_group(y[q], racc[q], mb[CH * 128 + s * 32 + n],
                                              ((const int32_t *)(mb + CH * 160))[s * 16 + tb * 8 + m8],
                                              ((const float *)mb)[s * 32 + n], 0);
                    racc[q] = 0;
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int q = 0; q < MT; q++) {
        const int p = tid + 256 * q, m = (p >> 8) * 8 + (p & 7), n = nb * 32 + ((p >> 3) & 31);
        if (m < a.M && n < a.N)
            w4a8__cu_store((TO *)a.Y, (size_t)m * a.N + n, w4a8__cu_finish(y[q], a.xs[m], a.bias, n));
    }
}

/* Large M: block tile BM x BN, warps of WM x 32, 4-stage cp.async pipeline. */
template <int BM, int BN, int WM, typename TO>
__global__ void __launch_bounds__((BM / WM) * (BN / 32) * 32, 1) w4a8__cu_mma_gemm(w4a8__cu_gargs a) {
    constexpr int WN = BN / 32, T = (BM / WM) * WN * 32, MT = WM / 16, ST = W4A8__CU_STAGES;
    constexpr int OB = W4A8__CU_ST_B(BM, BN), OSC = W4A8__CU_ST_SC(BM, BN), OZ = W4A8__CU_ST_Z(BM, BN);
    constexpr int OGS = W4A8__CU_ST_GS(BM, BN), SB = W4A8__CU_ST_BYTES(BM, BN);
    const unsigned char *smem = (const unsigned char *)w4a8__cu_smem;
    const uint32_t sbase = (uint32_t)__cvta_generic_to_shared(w4a8__cu_smem);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp / WN, wn = warp % WN;
    const int n0 = blockIdx.x * BN, m0 = blockIdx.y * BM;
    const int nst = a.steps_pad / W4A8__CU_SPS;

    /* Stage st, weight side: the B tile, and scales and zeros of each group
       that ends in the stage. */
    auto load_w = [&](int st) {
        const uint32_t sa = sbase + (st % ST) * SB;
        for (int q = tid; q < WN * 128; q += T) /* WN runs of 2 KB */
            w4a8__cu_cp16(sa + OB + q * 16, a.words + 4 * w4a8__cu_b_src(n0 / 32 + (q >> 7), st, q & 127, a.steps_pad),
                          true);
        for (int u = 0; u < W4A8__CU_SPS; u++) {
            const int g = w4a8__cu_group_end(st * W4A8__CU_SPS + u, a.spg, a.steps);
            if (g < 0) continue;
            for (int q = tid; q < BN / 4 + BN / 16; q += T) {
                if (q < BN / 4) {
                    w4a8__cu_cp16(sa + OSC + (u * BN + q * 4) * 4, a.scales + (size_t)g * a.npad + n0 + q * 4, true);
                } else {
                    const int r = q - BN / 4;
                    w4a8__cu_cp16(sa + OZ + u * BN + r * 16, a.zeros + (size_t)g * a.npad + n0 + r * 16, true);
                }
            }
        }
    };
    /* Stage st, activation side: the A tile (rows past M read as zeros) and
       the group sums of the groups ending in it. */
    auto load_x = [&](int st) {
        const uint32_t sa = sbase + (st % ST) * SB;
        for (int q = tid; q < BM * 8; q += T) {
            const int r = q >> 3, c = q & 7, m = m0 + r;
            w4a8__cu_cp16(sa + w4a8__cu_a_off(r, c), a.codes + (size_t)(m < a.M ? m : 0) * a.kpad + st * 128 + c * 16,
                          m < a.M);
        }
        for (int u = 0; u < W4A8__CU_SPS; u++) {
            const int g = w4a8__cu_group_end(st * W4A8__CU_SPS + u, a.spg, a.steps);
            if (g < 0) continue;
            for (int r = tid; r < BM / 4; r += T) {
                const int row = m0 + 4 * r;
                w4a8__cu_cp16(sa + OGS + (u * BM + 4 * r) * 4, a.gs + (size_t)g * a.mpad + (row < a.mpad ? row : 0),
                              row < a.mpad);
            }
        }
    };

    /* The first stages' weights fly before the quantization is done; they
       join the first commit group, so group st still completes stage st. */
    for (int st = 0; st < ST - 1 && st < nst; st++) load_w(st);
    w4a8__cu_pdl_wait();
    if (w4a8__cu_any_bad(a.bad, a.mpad)) {
        w4a8__cu_wait<0>();
        return;
    }
    for (int st = 0; st < ST - 1; st++) {
        if (st < nst) load_x(st);
        w4a8__cu_commit();
    }
    const int32_t init = a.magic ? (int32_t)W4A8__CU_MAGIC : 0;
    int32_t acc[MT][4][4];
    float y[MT][4][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int jn = 0; jn < 4; jn++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                acc[i][jn][e] = init;
                y[i][jn][e] = 0.0f;
            }

    for (int st = 0; st < nst; st++) {
        w4a8__cu_wait<ST - 2>(); /* stage st has landed (for this thread) */
        __syncthreads();         /* ... for all, and all are done with stage st - 1 */
        if (st + ST - 1 < nst) {
            load_w(st + ST - 1);
            load_x(st + ST - 1);
        }
        w4a8__cu_commit();
        const unsigned char *sb = smem + (st % ST) * SB;
        const uint32_t sa = sbase + (st % ST) * SB;
#pragma unroll
        for (int u = 0; u < W4A8__CU_SPS; u++) {
            const int j = st * W4A8__CU_SPS + u;
            if (j >= a.steps) break;
            uint32_t af[MT][4];
#pragma unroll
            for (int i = 0; i < MT; i++) w4a8__cu_ldsm4(af[i], sa + w4a8__cu_ldsm_off(wm * WM + 16 * i, u, lane));
            const uint4 bw = *(const uint4 *)(sb + OB + 16 * w4a8__cu_b_chunk(wn, u, lane));
            const uint32_t bws[4] = { bw.x, bw.y, bw.z, bw.w };
#pragma unroll
            for (int jn = 0; jn < 4; jn++) {
                const uint32_t b0 = w4a8__cu_lo(bws[jn]), b1 = w4a8__cu_hi(bws[jn]);
#pragma unroll
                for (int i = 0; i < MT; i++) w4a8__cu_mma(acc[i][jn], af[i], b0, b1);
            }
            if (w4a8__cu_group_end(j, a.spg, a.steps) >= 0) {
                const float *sc = (const float *)(sb + OSC) + u * BN;
                const uint8_t *zz = sb + OZ + u * BN;
                const int32_t *gg = (const int32_t *)(sb + OGS) + u * BM;
#pragma unroll
                for (int i = 0; i < MT; i++)
#pragma unroll
                    for (int jn = 0; jn < 4; jn++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int row = wm * WM + 16 * i + w4a8__cu_c_row(lane, e);
                            const int col = wn * 32 + 8 * jn + w4a8__cu_c_col(lane, e);
                            y[i][jn][e] = w4a8__cu_add_group(y[i][jn][e], acc[i][jn][e], zz[col], gg[row], sc[col], a.magic);
                            acc[i][jn][e] = init;
                        }
            }
        }
    }
    w4a8__cu_wait<0>();

    TO *Y = (TO *)a.Y;
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int jn = 0; jn < 4; jn++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int m = m0 + wm * WM + 16 * i + w4a8__cu_c_row(lane, 2 * h);
                const int n = n0 + wn * 32 + 8 * jn + w4a8__cu_c_col(lane, 2 * h); /* even */
                if (m >= a.M || n >= a.N) continue;
                const float xs = a.xs[m];
                const float v0 = w4a8__cu_finish(y[i][jn][2 * h], xs, a.bias, n);
                const size_t at = (size_t)m * a.N + n;
                if (n + 1 >= a.N) {
                    w4a8__cu_store(Y, at, v0);
                } else if (a.vec2) {
                    w4a8__cu_store2(Y, at, v0, w4a8__cu_finish(y[i][jn][2 * h + 1], xs, a.bias, n + 1));
                } else {
                    w4a8__cu_store(Y, at, v0);
                    w4a8__cu_store(Y, at + 1, w4a8__cu_finish(y[i][jn][2 * h + 1], xs, a.bias, n + 1));
                }
            }
}

/* >>host -------------------------------------------------------------------- */

struct w4a8_cuda_layer {
    w4a8__cu_geom geo;
    int device, sms, has_big, pdl, per_token;
    float act_scale, act_inv;
    uint32_t *words;
    float *scales;
    uint8_t *zeros;
    float *bias;       /* NULL: none */
    float *inv_smooth; /* NULL: none, or folded by the caller */
};

/* Dynamic shared memory of each kernel. */
static const int w4a8__cu_big_smem = W4A8__CU_STAGES * W4A8__CU_ST_BYTES(W4A8__CU_BIG_BM, W4A8__CU_BIG_BN);
static const int w4a8__cu_mid_smem = W4A8__CU_STAGES * W4A8__CU_ST_BYTES(W4A8__CU_MID_BM, W4A8__CU_MID_BN);

template <typename TO> static cudaError_t w4a8__cu_set_smem(int has_big) {
    cudaError_t e;
    if (has_big &&
        (e = cudaFuncSetAttribute(w4a8__cu_mma_gemm<W4A8__CU_BIG_BM, W4A8__CU_BIG_BN, W4A8__CU_BIG_WM, TO>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, w4a8__cu_big_smem)) != cudaSuccess)
        return e;
    if ((e = cudaFuncSetAttribute(w4a8__cu_mma_gemm<W4A8__CU_MID_BM, W4A8__CU_MID_BN, W4A8__CU_MID_WM, TO>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, w4a8__cu_mid_smem)) != cudaSuccess)
        return e;
    if ((e = cudaFuncSetAttribute(w4a8__cu_small<1, TO>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  W4A8__CU_SMALL_BYTES(1))) != cudaSuccess)
        return e;
    return cudaFuncSetAttribute(w4a8__cu_small<2, TO>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                W4A8__CU_SMALL_BYTES(2));
}

extern "C" void w4a8_cuda_free(w4a8_cuda_layer *L) {
    if (!L) return;
    /* Errors here could only be about a context that is gone already. */
    (void)cudaFree(L->words);
    (void)cudaFree(L->scales);
    (void)cudaFree(L->zeros);
    (void)cudaFree(L->bias);
    (void)cudaFree(L->inv_smooth);
    free(L);
}

/* *dst = a device copy of src. */
static cudaError_t w4a8__cu_put(void *dst, const void *src, size_t bytes) {
    cudaError_t e = cudaMalloc((void **)dst, bytes);
    return e == cudaSuccess ? cudaMemcpy(*(void **)dst, src, bytes, cudaMemcpyHostToDevice) : e;
}

/* The layer in the GPU layout (see w4a8_cuda_layout.h), copied to D. */
static w4a8_status w4a8__cu_fill(const w4a8_layer *L, w4a8_cuda_layer *D) {
    w4a8__cu_host h;
    w4a8_status st = w4a8__cu_host_build(L, &D->geo, &h);
    if (st != W4A8_OK) return st;
    cudaError_t e = w4a8__cu_put(&D->words, h.words, h.nwords * 4);
    if (e == cudaSuccess) e = w4a8__cu_put(&D->scales, h.scales, h.nmeta * sizeof(float));
    if (e == cudaSuccess) e = w4a8__cu_put(&D->zeros, h.zeros, h.nmeta);
    if (e == cudaSuccess && h.bias) e = w4a8__cu_put(&D->bias, h.bias, D->geo.npad * sizeof(float));
    if (e == cudaSuccess && h.inv_smooth) e = w4a8__cu_put(&D->inv_smooth, h.inv_smooth, D->geo.K * sizeof(float));
    w4a8__cu_host_free(&h);
    return e == cudaSuccess ? W4A8_OK : w4a8__cu_fail(e);
}

extern "C" w4a8_status w4a8_cuda_upload(const w4a8_layer *L, w4a8_cuda_layer **out) {
    w4a8_cuda_layer *D;
    int major = 0, optin = 0;
    w4a8_status st;
    if (!L || !out) return W4A8_ERR_NULL_ARG;
    D = (w4a8_cuda_layer *)calloc(1, sizeof *D);
    if (!D) return W4A8_ERR_NOMEM;
    if (!w4a8__cu_geom_init(L->N, L->K, L->G, &D->geo)) {
        free(D);
        return W4A8_ERR_OVERFLOW;
    }
    cudaError_t e = cudaGetDevice(&D->device);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, D->device);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&D->sms, cudaDevAttrMultiProcessorCount, D->device);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, D->device);
    if (e == cudaSuccess && major < 8) e = cudaErrorNoKernelImageForDevice; /* mma.sync s8 m16n8k32 needs sm_80 */
    D->has_big = optin >= w4a8__cu_big_smem;
    D->pdl = major >= 9;
    if (e == cudaSuccess && (e = w4a8__cu_set_smem<float>(D->has_big)) == cudaSuccess)
        e = w4a8__cu_set_smem<__half>(D->has_big);
    if (e != cudaSuccess) {
        free(D);
        return w4a8__cu_fail(e);
    }
    D->per_token = L->act_mode == W4A8_ACT_PER_TOKEN;
    D->act_scale = L->act_scale;
    D->act_inv = w4a8__cu_static_inv(L);
    if ((st = w4a8__cu_fill(L, D)) != W4A8_OK) {
        w4a8_cuda_free(D);
        return st;
    }
    *out = D;
    return W4A8_OK;
}

/* Workspace parts, each on a 256-byte boundary: codes [M][kpad], x scales
   [mpad], group sums [groups][mpad], flags [mpad]. */
static w4a8_status w4a8__cu_parts(const w4a8_cuda_layer *L, size_t M, size_t off[5]) {
    const size_t lim = (size_t)1 << 30;
    size_t mpad = w4a8__cu_mpad(M), bytes[4], i;
    if (M == 0) return W4A8_ERR_SHAPE;
    if (M > (size_t)65535 * W4A8__CU_MID_BM || L->geo.groups > lim / mpad) return W4A8_ERR_OVERFLOW;
    if (M > ((size_t)-1 - 4096) / L->geo.kpad) return W4A8_ERR_OVERFLOW;
    bytes[0] = M * L->geo.kpad;
    bytes[1] = mpad * 4;
    bytes[2] = L->geo.groups * mpad * 4;
    bytes[3] = mpad;
    off[0] = 0;
    for (i = 0; i < 4; i++) {
        if (bytes[i] > (size_t)-1 / 2 - off[i]) return W4A8_ERR_OVERFLOW;
        off[i + 1] = off[i] + (bytes[i] + 255) / 256 * 256;
    }
    return W4A8_OK;
}

extern "C" w4a8_status w4a8_cuda_workspace_size(const w4a8_cuda_layer *L, size_t M, size_t *bytes) {
    size_t off[5];
    w4a8_status st;
    if (!L || !bytes) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__cu_parts(L, M, off)) != W4A8_OK) return st;
    *bytes = off[4] + 256; /* + room to align the start */
    return W4A8_OK;
}

static unsigned char *w4a8__cu_align(const void *ws) {
    uintptr_t p = (uintptr_t)ws;
    return (unsigned char *)((p + 255) / 256 * 256);
}

/* One GEMM launch; with pdl, allowed to start before the quantization ends. */
static cudaError_t w4a8__cu_go(void (*kernel)(w4a8__cu_gargs), dim3 grid, int threads, int smem, int pdl,
                               const w4a8__cu_gargs &g, cudaStream_t s) {
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at = {};
    cfg.gridDim = grid;
    cfg.blockDim = dim3((unsigned)threads);
    cfg.dynamicSmemBytes = (size_t)smem;
    cfg.stream = s;
    at.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = &at;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, g);
}

template <typename TO>
static cudaError_t w4a8__cu_launch(w4a8_cuda_kernel k, int pdl, const w4a8__cu_gargs &g, cudaStream_t s) {
    const unsigned nb = (unsigned)g.npad;
    if (k == W4A8_CUDA_KERNEL_SMALL)
        return g.M <= 8 ? w4a8__cu_go(w4a8__cu_small<1, TO>, dim3(nb / 32), 256, W4A8__CU_SMALL_BYTES(1), pdl, g, s)
                        : w4a8__cu_go(w4a8__cu_small<2, TO>, dim3(nb / 32), 256, W4A8__CU_SMALL_BYTES(2), pdl, g, s);
    if (k == W4A8_CUDA_KERNEL_BIG)
        return w4a8__cu_go(w4a8__cu_mma_gemm<W4A8__CU_BIG_BM, W4A8__CU_BIG_BN, W4A8__CU_BIG_WM, TO>,
                           dim3(nb / W4A8__CU_BIG_BN, (unsigned)((g.M + W4A8__CU_BIG_BM - 1) / W4A8__CU_BIG_BM)), 256,
                           w4a8__cu_big_smem, pdl, g, s);
    return w4a8__cu_go(w4a8__cu_mma_gemm<W4A8__CU_MID_BM, W4A8__CU_MID_BN, W4A8__CU_MID_WM, TO>,
                       dim3(nb / W4A8__CU_MID_BN, (unsigned)((g.M + W4A8__CU_MID_BM - 1) / W4A8__CU_MID_BM)), 128,
                       w4a8__cu_mid_smem, pdl, g, s);
}

extern "C" w4a8_status w4a8_cuda_forward_kernel(const w4a8_cuda_layer *L, const void *X, w4a8_cuda_dtype xt,
                                                size_t M, void *Y, w4a8_cuda_dtype yt, void *workspace,
                                                size_t workspace_bytes, void *stream, w4a8_cuda_kernel k) {
    const size_t xsz = xt == W4A8_CUDA_F16 ? 2 : 4, ysz = yt == W4A8_CUDA_F16 ? 2 : 4;
    const cudaStream_t s = (cudaStream_t)stream;
    size_t off[5], need;
    int dev;
    w4a8_status st;
    if (!L || !X || !Y || !workspace) return W4A8_ERR_NULL_ARG;
    if ((unsigned)xt > W4A8_CUDA_F16 || (unsigned)yt > W4A8_CUDA_F16 || (unsigned)k >= W4A8_CUDA_KERNEL_COUNT)
        return W4A8_ERR_CONFIG;
    if ((st = w4a8_cuda_workspace_size(L, M, &need)) != W4A8_OK) return st;
    if (workspace_bytes < need) return W4A8_ERR_WORKSPACE;
    if ((uintptr_t)X % xsz || (uintptr_t)Y % ysz) return W4A8_ERR_RANGE;
    if (k == W4A8_CUDA_KERNEL_SMALL && M > W4A8__CU_SMALL_M) return W4A8_ERR_SHAPE;
    if (k == W4A8_CUDA_KERNEL_BIG && !L->has_big) return W4A8_ERR_UNSUPPORTED;
    W4A8__CU_TRY(cudaGetDevice(&dev));
    if (dev != L->device) return w4a8__cu_fail(cudaErrorInvalidDevice);
    if (k == W4A8_CUDA_KERNEL_AUTO) {
        const size_t big_tiles = (M + W4A8__CU_BIG_BM - 1) / W4A8__CU_BIG_BM * (L->geo.npad / W4A8__CU_BIG_BN);
        k = M <= W4A8__CU_SMALL_M ? W4A8_CUDA_KERNEL_SMALL
            : L->has_big && big_tiles >= (size_t)L->sms ? W4A8_CUDA_KERNEL_BIG
                                                         : W4A8_CUDA_KERNEL_MID;
    }
    w4a8__cu_parts(L, M, off);
    unsigned char *ws = w4a8__cu_align(workspace);
    const w4a8__cu_geom *g = &L->geo;
    w4a8__cu_qargs q;
    q.X = X;
    q.inv_smooth = L->inv_smooth;
    q.codes = (int8_t *)ws;
    q.xs = (float *)(ws + off[1]);
    q.gs = (int32_t *)(ws + off[2]);
    q.bad = ws + off[3];
    q.M = (int)M;
    q.K = (int)g->K;
    q.G = (int)g->G;
    q.spg = (int)g->spg;
    q.groups = (int)g->groups;
    q.steps = (int)g->steps;
    q.kpad = (int)g->kpad;
    q.mpad = (int)w4a8__cu_mpad(M);
    q.per_token = L->per_token;
    q.static_scale = L->act_scale;
    q.static_inv = L->act_inv;
    if (xt == W4A8_CUDA_F16) w4a8__cu_quantize<__half><<<q.mpad, W4A8__CU_QT, 0, s>>>(q);
    else w4a8__cu_quantize<float><<<q.mpad, W4A8__CU_QT, 0, s>>>(q);
    W4A8__CU_TRY(cudaGetLastError());

    w4a8__cu_gargs a;
    a.words = L->words;
    a.scales = L->scales;
    a.zeros = L->zeros;
    a.bias = L->bias;
    a.codes = q.codes;
    a.xs = q.xs;
    a.gs = q.gs;
    a.bad = q.bad;
    a.Y = Y;
    a.M = q.M;
    a.N = (int)g->N;
    a.mpad = q.mpad;
    a.npad = (int)g->npad;
    a.kpad = q.kpad;
    a.steps = q.steps;
    a.steps_pad = (int)g->steps_pad;
    a.spg = q.spg;
    a.magic = w4a8__cu_use_magic(q.G);
    a.vec2 = g->N % 2 == 0 && (uintptr_t)Y % (2 * ysz) == 0;
    W4A8__CU_TRY(yt == W4A8_CUDA_F16 ? w4a8__cu_launch<__half>(k, L->pdl, a, s) : w4a8__cu_launch<float>(k, L->pdl, a, s));
    return W4A8_OK;
}

extern "C" w4a8_status w4a8_cuda_forward(const w4a8_cuda_layer *L, const void *X, w4a8_cuda_dtype xt, size_t M,
                                         void *Y, w4a8_cuda_dtype yt, void *workspace, size_t workspace_bytes,
                                         void *stream) {
    return w4a8_cuda_forward_kernel(L, X, xt, M, Y, yt, workspace, workspace_bytes, stream, W4A8_CUDA_KERNEL_AUTO);
}

extern "C" w4a8_status w4a8_cuda_forward_status(const w4a8_cuda_layer *L, const void *workspace, size_t M,
                                                void *stream) {
    size_t off[5], i;
    unsigned char *flags;
    w4a8_status st;
    int bad = 0;
    if (!L || !workspace) return W4A8_ERR_NULL_ARG;
    if ((st = w4a8__cu_parts(L, M, off)) != W4A8_OK) return st;
    if (!(flags = (unsigned char *)malloc(M))) return W4A8_ERR_NOMEM;
    cudaError_t e = cudaStreamSynchronize((cudaStream_t)stream);
    if (e == cudaSuccess) e = cudaMemcpy(flags, w4a8__cu_align(workspace) + off[3], M, cudaMemcpyDeviceToHost);
    for (i = 0; e == cudaSuccess && i < M; i++) bad |= flags[i];
    free(flags);
    if (e != cudaSuccess) return w4a8__cu_fail(e);
    return bad ? W4A8_ERR_NONFINITE : W4A8_OK;
}
