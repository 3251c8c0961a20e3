/* w4a8_cuda_layout.h - the index algebra of w4a8_cuda.cu, in plain C99.

   Internal to w4a8_cuda.cu, not an API. Everything that decides where a
   byte goes, which thread loads it, and which float operation comes next
   lives here, so that the CUDA kernels (which compile these functions as
   __host__ __device__) and tests/test_cuda_layout.c (which replays the
   kernels' per-thread loads on the CPU, multiplies the fragments by the
   ownership tables of the PTX ISA and requires the CPU reference's bits)
   run the same code. Host builds need -ffp-contract=off, as the Makefile's.

   THE MMA
   mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 (sm_80 and newer). Lane l
   has g = l / 4 and t = l % 4; byte i of a register is element i (PTX ISA,
   "Matrix fragments for mma.m16n8k32", integer types):
     A 16x32: reg 0 row g, k 4t..4t+3; reg 1 row g+8, same k;
              reg 2 row g, k 16+4t..16+4t+3; reg 3 row g+8, same k.
     B 32x8:  reg 0 column g, k 4t..4t+3; reg 1 column g, k 16+4t..16+4t+3.
     C 16x8:  c0, c1 row g, columns 2t, 2t+1; c2, c3 row g+8, same columns.

   PADDED K
   Every group starts on a 32-k step: group gi owns the padded positions
   [gi*spg*32, gi*spg*32 + len) with spg = ceil(G/32), and zeros after. Zero
   weight codes meet zero activation codes there, so every mma step belongs
   to one group and the int32 sums are the CPU's. Rows end with zero steps
   up to a whole pipeline stage (4 steps, 128 bytes).

   WEIGHTS (uploaded once)
   uint32 words[npad/32][steps_pad][32 lanes][4]. Word j of lane l in step s
   of block b holds row n = 32b + 8j + g; its byte i holds the code of padded
   position 32s + 4t + i in the low nibble and of 32s + 16 + 4t + i in the
   high nibble. So w & 0x0F0F0F0F and (w >> 4) & 0x0F0F0F0F are the lane's
   two B registers of n8 tile j (codes 0..15 are valid s8 values), one
   16-byte load brings four tiles, and words 2i, 2i+1 are the lane's A
   registers of rows 16i..16i+15 when the weights are the A operand (the
   small-M kernel). Scales float and zeros uint8 are stored [groups][npad].

   ACTIVATIONS (per forward, in the workspace)
   codes int8 [M][kpad] at padded positions; x scales float [mpad]; group
   sums int32 [groups][mpad]; non-finite flags uint8 [mpad]; mpad = M
   rounded up to 16, rows past M zero.

   FLOAT ORDER (w4a8.h's ARITHMETIC, one rounding per operation)
       per group: t = (float)(acc - z*gsum) * scale;  y = y + t
       then y = y * x_scale;  if bias: y = y + bias
   Groups up to W4A8__CU_MAGIC_GROUP long start their accumulators at the
   bits of 1.5 * 2^23: then (acc - z*gsum) read as a float, minus 1.5 * 2^23,
   is (float)(true sum) exactly, with two full-rate instructions instead of
   an int-to-float conversion, which issues at a fraction of their rate. */
#ifndef W4A8_CUDA_LAYOUT_H
#define W4A8_CUDA_LAYOUT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "w4a8.h"

#if defined(__CUDACC__)
#define W4A8__CU_HD static __host__ __device__ __forceinline__
#else
#define W4A8__CU_HD static inline
#endif

#if defined(__clang__) && !defined(__CUDACC__)
#pragma STDC FP_CONTRACT OFF
#endif

#define W4A8__CU_SPS 4             /* mma steps (of 32 k) per pipeline stage */
#define W4A8__CU_NPAD 128          /* N padded to the widest tile */
#define W4A8__CU_SMALL_M 16        /* the small-M kernel takes M <= this */
#define W4A8__CU_MAGIC_GROUP 2048  /* 127 * 15 * 2048 < 2^22 */
#define W4A8__CU_MAGIC 0x4B400000u /* bits of 1.5 * 2^23 */
#define W4A8__CU_MAGIC_F 12582912.0f

/* The mma kernel's tiles: blocks of BM x BN outputs, warps of WM x 32. */
#define W4A8__CU_BIG_BM 128
#define W4A8__CU_BIG_BN 128
#define W4A8__CU_BIG_WM 64
#define W4A8__CU_MID_BM 64
#define W4A8__CU_MID_BN 64
#define W4A8__CU_MID_WM 32
#define W4A8__CU_STAGES 4

/* A stage of the mma kernel in shared memory: the A tile (BM rows of 128
   swizzled bytes), the B tile (BN/32 blocks x 4 steps x 32 lanes x 16
   bytes), then per step slot the scales [4][BN], zeros [4][BN] and group
   sums [4][BM] of a group that ends at that step. */
#define W4A8__CU_ST_B(BM, BN) ((BM) * 128)
#define W4A8__CU_ST_SC(BM, BN) (W4A8__CU_ST_B(BM, BN) + (BN) * 64)
#define W4A8__CU_ST_Z(BM, BN) (W4A8__CU_ST_SC(BM, BN) + 16 * (BN))
#define W4A8__CU_ST_GS(BM, BN) (W4A8__CU_ST_Z(BM, BN) + 4 * (BN))
#define W4A8__CU_ST_BYTES(BM, BN) (W4A8__CU_ST_GS(BM, BN) + 16 * (BM))

/* The small-M kernel: 8 warps per block of 32 rows, each warp U steps of a
   chunk of CH steps; partial int32 sums go through shared memory slots
   [CH][MT][32 rows][8 tokens], then meta slots like the mma kernel's, two
   buffers of CH x (32 scales, 32 zeros, 16 group sums). */
#define W4A8__CU_SMALL_WARPS 8
#define W4A8__CU_SMALL_U 4
#define W4A8__CU_SMALL_CH (W4A8__CU_SMALL_WARPS * W4A8__CU_SMALL_U)
#define W4A8__CU_SMALL_META (W4A8__CU_SMALL_CH * (32 * 4 + 32 + 16 * 4))
#define W4A8__CU_SMALL_BYTES(MT) (W4A8__CU_SMALL_CH * (MT) * 256 * 4 + 2 * W4A8__CU_SMALL_META)

/* >>geometry ---------------------------------------------------------------- */

typedef struct w4a8__cu_geom {
    size_t N, K, G, groups;
    size_t spg;       /* steps per group, ceil(G / 32) */
    size_t steps;     /* groups * spg: steps that hold codes */
    size_t steps_pad; /* rounded up to a whole stage */
    size_t kpad;      /* bytes of an activation row, steps_pad * 32 */
    size_t npad;      /* N rounded up to W4A8__CU_NPAD */
} w4a8__cu_geom;

/* G is the layer's group length (at most K). 0 when a padded size would not
   fit the kernels' 32-bit indices (everything below 2^30). */
static inline int w4a8__cu_geom_init(size_t N, size_t K, size_t G, w4a8__cu_geom *g) {
    const size_t lim = (size_t)1 << 30;
    memset(g, 0, sizeof *g);
    if (N == 0 || K == 0 || G == 0 || G > K || N >= lim || K >= lim) return 0;
    g->N = N;
    g->K = K;
    g->G = G;
    g->groups = (K + G - 1) / G;
    g->spg = (G + 31) / 32;
    if (g->groups > lim / 32 / g->spg) return 0;
    g->steps = g->groups * g->spg;
    g->steps_pad = (g->steps + W4A8__CU_SPS - 1) / W4A8__CU_SPS * W4A8__CU_SPS;
    g->kpad = g->steps_pad * 32;
    g->npad = (N + W4A8__CU_NPAD - 1) / W4A8__CU_NPAD * W4A8__CU_NPAD;
    return g->kpad < lim;
}

/* Input index k of padded position p, or -1 for padding. */
W4A8__CU_HD int w4a8__cu_klogical(int p, int G, int spg, int K) {
    int span = spg * 32, o = p % span, k = (p / span) * G + o;
    return o < G && k < K ? k : -1;
}

/* The group whose last step is j, or -1. */
W4A8__CU_HD int w4a8__cu_group_end(int j, int spg, int steps) {
    return j < steps && (j + 1) % spg == 0 ? (j + 1) / spg - 1 : -1;
}

W4A8__CU_HD int w4a8__cu_use_magic(int G) { return G <= W4A8__CU_MAGIC_GROUP; }

/* >>weights ----------------------------------------------------------------- */

W4A8__CU_HD size_t w4a8__cu_word_at(int nb, int step, int lane, int j, int steps_pad) {
    return (((size_t)nb * (size_t)steps_pad + (size_t)step) * 32 + (size_t)lane) * 4 + (size_t)j;
}

/* codes[N][K] (one per byte) -> words; kmap[kpad] from w4a8__cu_klogical. */
static inline void w4a8__cu_repack(const uint8_t *codes, const w4a8__cu_geom *g, const int *kmap, uint32_t *words) {
    size_t nb, s;
    int lane, j, i;
    for (nb = 0; nb < g->npad / 32; nb++)
        for (s = 0; s < g->steps_pad; s++)
            for (lane = 0; lane < 32; lane++)
                for (j = 0; j < 4; j++) {
                    size_t n = nb * 32 + (size_t)(8 * j + lane / 4);
                    const int *km = kmap + s * 32 + (size_t)(4 * (lane & 3));
                    uint32_t w = 0;
                    for (i = 0; n < g->N && i < 4; i++) {
                        if (km[i] >= 0) w |= (uint32_t)codes[n * g->K + (size_t)km[i]] << (8 * i);
                        if (km[i + 16] >= 0) w |= (uint32_t)codes[n * g->K + (size_t)km[i + 16]] << (8 * i + 4);
                    }
                    words[w4a8__cu_word_at((int)nb, (int)s, lane, j, (int)g->steps_pad)] = w;
                }
}

/* The layer in the GPU layout, in host memory (malloc): words, scales and
   zeros [groups][npad], bias [npad] or NULL; inv_smooth points into the
   layer (NULL when it has none or the caller folds it). */
typedef struct w4a8__cu_host {
    uint32_t *words;
    float *scales;
    uint8_t *zeros;
    float *bias;
    const float *inv_smooth;
    size_t nwords, nmeta;
} w4a8__cu_host;

static inline void w4a8__cu_host_free(w4a8__cu_host *h) {
    free(h->words);
    free(h->scales);
    free(h->zeros);
    free(h->bias);
    memset(h, 0, sizeof *h);
}

static inline w4a8_status w4a8__cu_host_build(const w4a8_layer *L, const w4a8__cu_geom *g, w4a8__cu_host *h) {
    uint8_t *codes = (uint8_t *)malloc(g->N * g->K);
    int *kmap = (int *)malloc(g->kpad * sizeof(int));
    size_t i, n;
    w4a8_status st;
    memset(h, 0, sizeof *h);
    h->nwords = g->npad / 32 * g->steps_pad * 128;
    h->nmeta = g->groups * g->npad;
    h->words = (uint32_t *)malloc(h->nwords * 4);
    h->scales = (float *)calloc(h->nmeta, sizeof(float));
    h->zeros = (uint8_t *)calloc(h->nmeta, 1);
    if (L->bias) h->bias = (float *)calloc(g->npad, sizeof(float));
    st = codes && kmap && h->words && h->scales && h->zeros && (!L->bias || h->bias) ? W4A8_OK : W4A8_ERR_NOMEM;
    if (st == W4A8_OK) st = w4a8_layer_codes(L, codes);
    if (st == W4A8_OK) {
        for (i = 0; i < g->kpad; i++) kmap[i] = w4a8__cu_klogical((int)i, (int)g->G, (int)g->spg, (int)g->K);
        w4a8__cu_repack(codes, g, kmap, h->words);
        for (n = 0; n < g->N; n++)
            for (i = 0; i < g->groups; i++) {
                h->scales[i * g->npad + n] = L->scales[n * g->groups + i];
                h->zeros[i * g->npad + n] = L->zeros[n * g->groups + i];
            }
        if (L->bias) memcpy(h->bias, L->bias, g->N * sizeof(float));
        h->inv_smooth = L->smooth_folded ? NULL : L->smooth_inv;
    }
    free(codes);
    free(kmap);
    if (st != W4A8_OK) w4a8__cu_host_free(h);
    return st;
}

/* The per-tensor multiplier, divided as the CPU divides it; 0 per token. */
static inline float w4a8__cu_static_inv(const w4a8_layer *L) {
    return L->act_mode == W4A8_ACT_PER_TENSOR ? 1.0f / L->act_scale : 0.0f;
}

/* Rows of the workspace's per-token arrays. */
static inline size_t w4a8__cu_mpad(size_t M) { return (M + 15) / 16 * 16; }

/* A lane's two B registers of one weight word. */
W4A8__CU_HD uint32_t w4a8__cu_lo(uint32_t w) { return w & 0x0F0F0F0Fu; }
W4A8__CU_HD uint32_t w4a8__cu_hi(uint32_t w) { return (w >> 4) & 0x0F0F0F0Fu; }

/* >>mma-kernel -------------------------------------------------------------- */

/* Byte offset of 16-byte chunk c (0..7) of row r in a stage's A tile. The
   chunk is XOR-swizzled by the row, so the 8 rows one ldmatrix phase reads
   hit 8 different bank groups. */
W4A8__CU_HD int w4a8__cu_a_off(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

/* The row lane l hands ldmatrix.x4 for the m16 tile at row r0, step u of
   the stage. Lanes 8q..8q+7 address matrix q, which becomes register q:
   q odd takes rows +8, q >= 2 takes k +16 (the A fragment's order). */
W4A8__CU_HD int w4a8__cu_ldsm_off(int r0, int u, int lane) {
    int q = lane >> 3;
    return w4a8__cu_a_off(r0 + ((q & 1) << 3) + (lane & 7), 2 * u + (q >> 1));
}

/* 16-byte chunk of the stage's B tile holding lane l's four words of block
   nb (within the tile) at step u; the tile is the blocks' runs of 4 steps,
   so chunk nb*128 + r comes from global chunk w4a8__cu_b_src(). */
W4A8__CU_HD int w4a8__cu_b_chunk(int nb, int u, int lane) { return (nb * 4 + u) * 32 + lane; }
W4A8__CU_HD size_t w4a8__cu_b_src(int nb_global, int stage, int r, int steps_pad) {
    return ((size_t)nb_global * (size_t)steps_pad + (size_t)stage * W4A8__CU_SPS) * 32 + (size_t)r;
}

/* Row and column of accumulator element e (0..3) of a lane, within its
   16 x 8 tile. */
W4A8__CU_HD int w4a8__cu_c_row(int lane, int e) { return (lane >> 2) + ((e >> 1) << 3); }
W4A8__CU_HD int w4a8__cu_c_col(int lane, int e) { return ((lane & 3) << 1) + (e & 1); }

/* >>small-kernel ------------------------------------------------------------ */

/* The weights as A operand: rows 16i..16i+15 of a block from its four words. */
W4A8__CU_HD void w4a8__cu_small_a(const uint32_t w[4], int i, uint32_t a[4]) {
    a[0] = w4a8__cu_lo(w[2 * i]);
    a[1] = w4a8__cu_lo(w[2 * i + 1]);
    a[2] = w4a8__cu_hi(w[2 * i]);
    a[3] = w4a8__cu_hi(w[2 * i + 1]);
}

/* Tokens as B operand: lane l's register r in token block tb, step j, is the
   int32 at this byte offset of the codes (token tb*8 + l/4). */
W4A8__CU_HD size_t w4a8__cu_small_b_off(int tb, int j, int lane, int r, size_t kpad) {
    return (size_t)(tb * 8 + (lane >> 2)) * kpad + (size_t)j * 32 + (size_t)((lane & 3) * 4 + r * 16);
}

/* Slot s (step j = chunk start + s) holds a warp's partial sums when the
   step ends a group or the warp's U steps (the last step ends a group). */
W4A8__CU_HD int w4a8__cu_small_slot(int s, int j, int spg) {
    return s % W4A8__CU_SMALL_U == W4A8__CU_SMALL_U - 1 || (j + 1) % spg == 0;
}

W4A8__CU_HD int w4a8__cu_part_at(int s, int tb, int n, int m8, int mt) { return ((s * mt + tb) * 32 + n) * 8 + m8; }

/* >>float ------------------------------------------------------------------- */

W4A8__CU_HD float w4a8__cu_mul(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

W4A8__CU_HD float w4a8__cu_add(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

W4A8__CU_HD float w4a8__cu_div(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

W4A8__CU_HD float w4a8__cu_as_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

W4A8__CU_HD int w4a8__cu_finite(float x) {
#ifdef __CUDA_ARCH__
    uint32_t u = __float_as_uint(x);
#else
    uint32_t u;
    memcpy(&u, &x, 4);
#endif
    return (u & 0x7f800000u) != 0x7f800000u;
}

/* (float)(acc - zgs) of a group, acc started at the magic bits or at 0.
   Unsigned arithmetic: the sums are in range, wrap-around is only notional. */
W4A8__CU_HD float w4a8__cu_group_value(int32_t acc, int32_t zgs, int magic) {
    uint32_t d = (uint32_t)acc - (uint32_t)zgs;
    if (magic) return w4a8__cu_add(w4a8__cu_as_float(d), -W4A8__CU_MAGIC_F);
#ifdef __CUDA_ARCH__
    return __int2float_rn((int32_t)d);
#else
    return (float)(int32_t)d;
#endif
}

/* One group into y: the CPU's w4a8__add_group. */
W4A8__CU_HD float w4a8__cu_add_group(float y, int32_t acc, int32_t z, int32_t gsum, float scale, int magic) {
    return w4a8__cu_add(y, w4a8__cu_mul(w4a8__cu_group_value(acc, z * gsum, magic), scale));
}

/* Token scale, then bias: the CPU's w4a8__finish. */
W4A8__CU_HD float w4a8__cu_finish(float y, float x_scale, const float *bias, int n) {
    y = w4a8__cu_mul(y, x_scale);
    return bias ? w4a8__cu_add(y, bias[n]) : y;
}

/* >>activations ------------------------------------------------------------- */

W4A8__CU_HD float w4a8__cu_act_value(float x, const float *inv_smooth, int k) {
    return inv_smooth ? w4a8__cu_mul(x, inv_smooth[k]) : x;
}

/* Per token: scale = amax / 127 and the multiplier 127 / amax (0 for 0). */
W4A8__CU_HD float w4a8__cu_token_inv(float amax, float *scale) {
    *scale = w4a8__cu_div(amax, 127.0f);
    return amax > 0.0f ? w4a8__cu_div(127.0f, amax) : 0.0f;
}

/* round(clamp(v * inv, -128, 128)) half to even, clamped to [-127, 127]. */
W4A8__CU_HD int w4a8__cu_act_code(float v, float inv) {
    float r = w4a8__cu_mul(v, inv);
    int q;
    r = r < -128.0f ? -128.0f : (r > 128.0f ? 128.0f : r);
#ifdef __CUDA_ARCH__
    q = __float2int_rn(r);
#else
    q = r == r ? (int)nearbyintf(r) : 0;
#endif
    return q < -127 ? -127 : (q > 127 ? 127 : q);
}

#endif /* W4A8_CUDA_LAYOUT_H */
