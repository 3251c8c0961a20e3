/* The CUDA kernels' layouts, checked on the CPU. An emulator replays what
   each thread of w4a8_cuda.cu loads (cp.async chunks, ldmatrix rows,
   16-byte weight loads, partial sums in shared memory) with the functions
   of w4a8_cuda_layout.h that the kernels call, multiplies the fragments by
   the ownership tables of the PTX ISA (written out below, independently of
   the layout header), and must give w4a8_layer_forward's bits. A layout
   that does not match the hardware's fragments lands values on the wrong
   rows or columns and fails here, without a GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../w4a8.h"
#include "../w4a8_cuda_layout.h"
#include "test.h"
#include "cuda_layers.h"

/* >>ptx-spec ----------------------------------------------------------------
   mma.m16n8k32 with .s8 operands (PTX ISA, matrix fragments for
   mma.m16n8k32): element i of lane l, g = l >> 2, t = l % 4. */
static void spec_a(int lane, int i, int *row, int *col) {
    int g = lane >> 2, t = lane & 3;
    *row = (i < 4 || (i >= 8 && i < 12)) ? g : g + 8;
    *col = t * 4 + (i & 3) + (i >= 8 ? 16 : 0);
}
static void spec_b(int lane, int i, int *row, int *col) {
    int g = lane >> 2, t = lane & 3;
    *row = t * 4 + (i & 3) + (i >= 4 ? 16 : 0);
    *col = g;
}
static void spec_c(int lane, int i, int *row, int *col) {
    int g = lane >> 2, t = lane & 3;
    *row = g + (i >= 2 ? 8 : 0);
    *col = t * 2 + (i & 1);
}

/* Element i of a fragment: byte i % 4 of register i / 4, lowest byte first. */
static int8_t elem(const uint32_t *regs, int i) { return (int8_t)(uint8_t)(regs[i / 4] >> (8 * (i % 4))); }

/* c += a b, the warp's mma.sync.m16n8k32.row.col.s32.s8.s8.s32. */
static void emu_mma(uint32_t a[32][4], uint32_t b[32][2], int32_t c[32][4]) {
    int8_t A[16][32], B[32][8];
    int lane, i, k, r, col;
    for (lane = 0; lane < 32; lane++) {
        for (i = 0; i < 16; i++) {
            spec_a(lane, i, &r, &col);
            A[r][col] = elem(a[lane], i);
        }
        for (i = 0; i < 8; i++) {
            spec_b(lane, i, &r, &col);
            B[r][col] = elem(b[lane], i);
        }
    }
    for (lane = 0; lane < 32; lane++)
        for (i = 0; i < 4; i++) {
            int32_t s = 0;
            spec_c(lane, i, &r, &col);
            for (k = 0; k < 32; k++) s += A[r][k] * B[k][col];
            c[lane][i] = (int32_t)((uint32_t)c[lane][i] + (uint32_t)s);
        }
}

/* ldmatrix.sync.aligned.m8n8.x4.b16: lanes 8q..8q+7 give the rows of matrix
   q; lane l receives 32-bit word l % 4 of row l / 4 of each matrix. */
static void emu_ldsm4(const unsigned char *smem, const int addr[32], uint32_t out[32][4]) {
    int lane, q;
    for (lane = 0; lane < 32; lane++)
        for (q = 0; q < 4; q++) memcpy(&out[lane][q], smem + addr[8 * q + (lane >> 2)] + 4 * (lane & 3), 4);
}

/* >>emulated-device --------------------------------------------------------- */

typedef struct emu {
    w4a8__cu_geom g;
    w4a8__cu_host h;
    int per_token, magic, M, mpad;
    float act_scale, act_inv;
    int8_t *codes; /* the workspace */
    float *xs;
    int32_t *gs;
    uint8_t *bad;
} emu;

static int emu_init(emu *e, const w4a8_layer *L, int M) {
    memset(e, 0, sizeof *e);
    if (!w4a8__cu_geom_init(L->N, L->K, L->G, &e->g) || w4a8__cu_host_build(L, &e->g, &e->h) != W4A8_OK) return 0;
    e->per_token = L->act_mode == W4A8_ACT_PER_TOKEN;
    e->magic = w4a8__cu_use_magic((int)e->g.G);
    e->act_scale = L->act_scale;
    e->act_inv = w4a8__cu_static_inv(L);
    e->M = M;
    e->mpad = (int)w4a8__cu_mpad((size_t)M);
    /* Garbage, not zeros: whatever the kernels leave unwritten must not matter. */
    e->codes = (int8_t *)malloc((size_t)M * e->g.kpad);
    e->xs = (float *)malloc((size_t)e->mpad * 4);
    e->gs = (int32_t *)malloc(e->g.groups * (size_t)e->mpad * 4);
    e->bad = (uint8_t *)malloc((size_t)e->mpad);
    memset(e->codes, 0x5a, (size_t)M * e->g.kpad);
    memset(e->gs, 0x5a, e->g.groups * (size_t)e->mpad * 4);
    return 1;
}

static void emu_free(emu *e) {
    w4a8__cu_host_free(&e->h);
    free(e->codes);
    free(e->xs);
    free(e->gs);
    free(e->bad);
}

/* w4a8__cu_quantize, one block (row) at a time. Its threads split the row;
   max and integer sums are exact in any order, so one loop does. */
static void emu_quantize(emu *e, const float *X) {
    const w4a8__cu_geom *g = &e->g;
    int m, k, w, i;
    for (m = 0; m < e->mpad; m++) {
        const float *x = X + (size_t)m * g->K;
        float amax = 0.0f, scale = e->act_scale, inv = e->act_inv;
        int bad = 0;
        uint32_t *out;
        if (m >= e->M) {
            for (i = 0; i < (int)g->groups; i++) e->gs[(size_t)i * e->mpad + m] = 0;
            e->xs[m] = 0.0f;
            e->bad[m] = 0;
            continue;
        }
        for (k = 0; k < (int)g->K; k++) {
            bad |= !w4a8__cu_finite(x[k]);
            amax = fmaxf(amax, fabsf(w4a8__cu_act_value(x[k], e->h.inv_smooth, k)));
        }
        if (e->per_token) {
            inv = w4a8__cu_token_inv(amax, &scale);
            bad |= !w4a8__cu_finite(amax);
        }
        for (i = 0; i < (int)g->groups; i++) e->gs[(size_t)i * e->mpad + m] = 0;
        out = (uint32_t *)(void *)(e->codes + (size_t)m * g->kpad);
        for (w = 0; w < (int)g->steps * 8; w++) {
            uint32_t word = 0;
            int sum = 0;
            for (i = 0; i < 4; i++) {
                int kk = w4a8__cu_klogical(4 * w + i, (int)g->G, (int)g->spg, (int)g->K);
                int q = kk < 0 ? 0 : w4a8__cu_act_code(w4a8__cu_act_value(x[kk], e->h.inv_smooth, kk), inv);
                word |= (uint32_t)(q & 0xff) << (8 * i);
                sum += q;
            }
            out[w] = word;
            e->gs[(size_t)(w / (8 * (int)g->spg)) * e->mpad + m] += sum;
        }
        for (w = (int)g->steps * 8; w < (int)g->kpad / 4; w++) out[w] = 0;
        e->xs[m] = scale;
        e->bad[m] = (uint8_t)(bad != 0);
    }
}

/* w4a8__cu_any_bad: every flag up to mpad (zero past M). */
static int emu_any_bad(const emu *e) {
    int m, b = 0;
    for (m = 0; m < e->mpad; m++) b |= e->bad[m];
    return b;
}

/* w4a8__cu_mma_gemm<BM, BN, WM>: every block, stage by stage, every warp. */
static void emu_mma_gemm(const emu *e, int BM, int BN, int WM, float *Y) {
    const w4a8__cu_geom *g = &e->g;
    const int WN = BN / 32, warps = BM / WM * WN, MT = WM / 16;
    const int OB = W4A8__CU_ST_B(BM, BN), OSC = W4A8__CU_ST_SC(BM, BN), OZ = W4A8__CU_ST_Z(BM, BN);
    const int OGS = W4A8__CU_ST_GS(BM, BN), SB = W4A8__CU_ST_BYTES(BM, BN), N = (int)g->N;
    const int steps = (int)g->steps, spg = (int)g->spg, sp = (int)g->steps_pad;
    const int32_t init = e->magic ? (int32_t)W4A8__CU_MAGIC : 0;
    unsigned char *sb = (unsigned char *)malloc((size_t)SB);
    int32_t(*acc)[4][32][4] = (int32_t(*)[4][32][4])malloc(sizeof *acc * (size_t)(warps * MT));
    float(*y)[4][32][4] = (float(*)[4][32][4])malloc(sizeof *y * (size_t)(warps * MT));
    int bm, bn, st, warp, i, jn, lane, el, u, q;
    for (bm = 0; bm * BM < e->M; bm++)
        for (bn = 0; bn * BN < (int)g->npad; bn++) {
            const int m0 = bm * BM, n0 = bn * BN;
            for (i = 0; i < warps * MT; i++)
                for (jn = 0; jn < 4; jn++)
                    for (lane = 0; lane < 32; lane++)
                        for (el = 0; el < 4; el++) {
                            acc[i][jn][lane][el] = init;
                            y[i][jn][lane][el] = 0.0f;
                        }
            for (st = 0; st < sp / W4A8__CU_SPS; st++) {
                /* load_stage(st), the threads' cp.async chunks in turn */
                memset(sb, 0xcd, (size_t)SB);
                for (q = 0; q < BM * 8; q++) {
                    int r = q >> 3, c = q & 7, m = m0 + r;
                    if (m < e->M) memcpy(sb + w4a8__cu_a_off(r, c), e->codes + (size_t)m * g->kpad + st * 128 + c * 16, 16);
                    else memset(sb + w4a8__cu_a_off(r, c), 0, 16);
                }
                for (q = 0; q < WN * 128; q++)
                    memcpy(sb + OB + q * 16, e->h.words + 4 * w4a8__cu_b_src(n0 / 32 + (q >> 7), st, q & 127, sp), 16);
                for (u = 0; u < W4A8__CU_SPS; u++) {
                    int gi = w4a8__cu_group_end(st * W4A8__CU_SPS + u, spg, steps);
                    if (gi < 0) continue;
                    for (q = 0; q < BN / 4 + BN / 16 + BM / 4; q++) {
                        if (q < BN / 4) {
                            memcpy(sb + OSC + (u * BN + q * 4) * 4, e->h.scales + (size_t)gi * g->npad + n0 + q * 4, 16);
                        } else if (q < BN / 4 + BN / 16) {
                            int r = q - BN / 4;
                            memcpy(sb + OZ + u * BN + r * 16, e->h.zeros + (size_t)gi * g->npad + n0 + r * 16, 16);
                        } else {
                            int r = q - BN / 4 - BN / 16, row = m0 + 4 * r;
                            if (row < e->mpad) memcpy(sb + OGS + (u * BM + 4 * r) * 4, e->gs + (size_t)gi * e->mpad + row, 16);
                            else memset(sb + OGS + (u * BM + 4 * r) * 4, 0, 16);
                        }
                    }
                }
                /* compute: each warp's steps */
                for (warp = 0; warp < warps; warp++) {
                    const int wm = warp / WN, wn = warp % WN;
                    for (u = 0; u < W4A8__CU_SPS; u++) {
                        const int j = st * W4A8__CU_SPS + u;
                        uint32_t af[4][32][4], bw[32][4], b[32][2];
                        if (j >= steps) break;
                        for (i = 0; i < MT; i++) {
                            int addr[32];
                            for (lane = 0; lane < 32; lane++) addr[lane] = w4a8__cu_ldsm_off(wm * WM + 16 * i, u, lane);
                            emu_ldsm4(sb, addr, af[i]);
                        }
                        for (lane = 0; lane < 32; lane++) memcpy(bw[lane], sb + OB + 16 * w4a8__cu_b_chunk(wn, u, lane), 16);
                        for (jn = 0; jn < 4; jn++) {
                            for (lane = 0; lane < 32; lane++) {
                                b[lane][0] = w4a8__cu_lo(bw[lane][jn]);
                                b[lane][1] = w4a8__cu_hi(bw[lane][jn]);
                            }
                            for (i = 0; i < MT; i++) emu_mma(af[i], b, acc[warp * MT + i][jn]);
                        }
                        if (w4a8__cu_group_end(j, spg, steps) >= 0) {
                            const float *sc = (const float *)(void *)(sb + OSC) + u * BN;
                            const uint8_t *zz = sb + OZ + u * BN;
                            const int32_t *gg = (const int32_t *)(void *)(sb + OGS) + u * BM;
                            for (i = 0; i < MT; i++)
                                for (jn = 0; jn < 4; jn++)
                                    for (lane = 0; lane < 32; lane++)
                                        for (el = 0; el < 4; el++) {
                                            int row = wm * WM + 16 * i + w4a8__cu_c_row(lane, el);
                                            int col = wn * 32 + 8 * jn + w4a8__cu_c_col(lane, el);
                                            float *yy = &y[warp * MT + i][jn][lane][el];
                                            *yy = w4a8__cu_add_group(*yy, acc[warp * MT + i][jn][lane][el], zz[col], gg[row],
                                                                     sc[col], e->magic);
                                            acc[warp * MT + i][jn][lane][el] = init;
                                        }
                        }
                    }
                }
            }
            for (warp = 0; warp < warps; warp++)
                for (i = 0; i < MT; i++)
                    for (jn = 0; jn < 4; jn++)
                        for (lane = 0; lane < 32; lane++)
                            for (el = 0; el < 4; el++) {
                                int m = m0 + warp / WN * WM + 16 * i + w4a8__cu_c_row(lane, el);
                                int n = n0 + warp % WN * 32 + 8 * jn + w4a8__cu_c_col(lane, el);
                                if (m < e->M && n < N)
                                    Y[(size_t)m * N + n] = w4a8__cu_finish(y[warp * MT + i][jn][lane][el], e->xs[m], e->h.bias, n);
                            }
        }
    free(sb);
    free(acc);
    free(y);
}

/* w4a8__cu_small<MT>: every block of 32 rows, chunk by chunk. */
static void emu_small(const emu *e, float *Y) {
    enum { CH = W4A8__CU_SMALL_CH, U = W4A8__CU_SMALL_U, META = W4A8__CU_SMALL_META };
    const w4a8__cu_geom *g = &e->g;
    const int MT = e->M <= 8 ? 1 : 2, steps = (int)g->steps, spg = (int)g->spg, N = (int)g->N;
    const int nch = (steps + CH - 1) / CH;
    int32_t *part = (int32_t *)malloc((size_t)CH * MT * 256 * 4);
    unsigned char *meta = (unsigned char *)malloc(META);
    float y[512];
    int32_t racc[512], acc[2][2][32][4];
    int nb, c, warp, u, i, tb, lane, r, h, p, s;
    for (nb = 0; nb < (int)g->npad / 32; nb++) {
        for (p = 0; p < MT * 256; p++) {
            y[p] = 0.0f;
            racc[p] = 0;
        }
        for (c = 0; c < nch; c++) {
            /* load_meta(c) */
            memset(meta, 0xcd, META);
            for (p = 0; p < CH * 14; p++) {
                int sl = p / 14, rr = p % 14, gi = w4a8__cu_group_end(c * CH + sl, spg, steps);
                if (gi < 0) continue;
                if (rr < 8) memcpy(meta + (sl * 32 + rr * 4) * 4, e->h.scales + (size_t)gi * g->npad + nb * 32 + rr * 4, 16);
                else if (rr < 10)
                    memcpy(meta + CH * 128 + sl * 32 + (rr - 8) * 16, e->h.zeros + (size_t)gi * g->npad + nb * 32 + (rr - 8) * 16, 16);
                else memcpy(meta + CH * 160 + (sl * 16 + (rr - 10) * 4) * 4, e->gs + (size_t)gi * e->mpad + (rr - 10) * 4, 16);
            }
            memset(part, 0xcd, (size_t)CH * MT * 256 * 4);
            for (warp = 0; warp < W4A8__CU_SMALL_WARPS; warp++) {
                memset(acc, 0, sizeof acc);
                for (u = 0; u < U; u++) {
                    uint32_t wv[32][4], bv[2][32][2], af[32][4];
                    s = warp * U + u;
                    if (c * CH + s >= steps) continue;
                    for (lane = 0; lane < 32; lane++) {
                        memcpy(wv[lane], e->h.words + w4a8__cu_word_at(nb, c * CH + s, lane, 0, (int)g->steps_pad), 16);
                        for (tb = 0; tb < MT; tb++)
                            for (r = 0; r < 2; r++) {
                                bv[tb][lane][r] = 0;
                                if (tb * 8 + (lane >> 2) < e->M)
                                    memcpy(&bv[tb][lane][r], e->codes + w4a8__cu_small_b_off(tb, c * CH + s, lane, r, g->kpad), 4);
                            }
                    }
                    for (i = 0; i < 2; i++) {
                        for (lane = 0; lane < 32; lane++) w4a8__cu_small_a(wv[lane], i, af[lane]);
                        for (tb = 0; tb < MT; tb++) emu_mma(af, bv[tb], acc[i][tb]);
                    }
                    if (w4a8__cu_small_slot(s, c * CH + s, spg))
                        for (i = 0; i < 2; i++)
                            for (tb = 0; tb < MT; tb++)
                                for (lane = 0; lane < 32; lane++)
                                    for (h = 0; h < 2; h++) {
                                        int n = 16 * i + w4a8__cu_c_row(lane, 2 * h), m8 = w4a8__cu_c_col(lane, 2 * h);
                                        int at = w4a8__cu_part_at(s, tb, n, m8, MT);
                                        part[at] = acc[i][tb][lane][2 * h];
                                        part[at + 1] = acc[i][tb][lane][2 * h + 1];
                                        acc[i][tb][lane][2 * h] = acc[i][tb][lane][2 * h + 1] = 0;
                                    }
                }
            }
            /* the reduction: one thread per (token, row) */
            for (p = 0; p < MT * 256; p++) {
                int n = (p >> 3) & 31, m8 = p & 7;
                tb = p >> 8;
                if (tb * 8 + m8 >= e->M) continue;
                for (s = 0; s < CH; s++) {
                    int j = c * CH + s;
                    if (j >= steps) break;
                    if (!w4a8__cu_small_slot(s, j, spg)) continue;
                    racc[p] += part[w4a8__cu_part_at(s, tb, n, m8, MT)];
                    if (w4a8__cu_group_end(j, spg, steps) >= 0) {
                        int32_t gsv;
                        float scv;
                        memcpy(&gsv, meta + CH * 160 + (s * 16 + tb * 8 + m8) * 4, 4);
                        memcpy(&scv, meta + (s * 32 + n) * 4, 4);
                        y[p] = w4a8__cu_add_group(y[p], racc[p], meta[CH * 128 + s * 32 + n], gsv, scv, 0);
                        racc[p] = 0;
                    }
                }
            }
        }
        for (p = 0; p < MT * 256; p++) {
            int m = (p >> 8) * 8 + (p & 7), n = nb * 32 + ((p >> 3) & 31);
            if (m < e->M && n < N) Y[(size_t)m * N + n] = w4a8__cu_finish(y[p], e->xs[m], e->h.bias, n);
        }
    }
    free(part);
    free(meta);
}

enum { EMU_SMALL, EMU_MID, EMU_BIG };

/* A forward the way w4a8_cuda_forward_kernel runs it; 0 (Y untouched) when
   a token had NaN or Inf. X needs mpad rows (those past M are not read). */
static int emu_forward(const w4a8_layer *L, const float *X, int M, int kernel, float *Y) {
    emu e;
    int ok;
    if (!emu_init(&e, L, M)) return 0;
    emu_quantize(&e, X);
    ok = !emu_any_bad(&e);
    if (ok && kernel == EMU_SMALL) emu_small(&e, Y);
    if (ok && kernel == EMU_MID) emu_mma_gemm(&e, W4A8__CU_MID_BM, W4A8__CU_MID_BN, W4A8__CU_MID_WM, Y);
    if (ok && kernel == EMU_BIG) emu_mma_gemm(&e, W4A8__CU_BIG_BM, W4A8__CU_BIG_BN, W4A8__CU_BIG_WM, Y);
    emu_free(&e);
    return ok;
}

/* >>tests ------------------------------------------------------------------- */

/* The PTX tables own every element exactly once: the emulator's mma is a
   matrix product, not a guess. */
static void test_cuda_spec_bijective(void) {
    int seen_a[16][32], seen_b[32][8], seen_c[16][8], lane, i, r, c;
    memset(seen_a, 0, sizeof seen_a);
    memset(seen_b, 0, sizeof seen_b);
    memset(seen_c, 0, sizeof seen_c);
    for (lane = 0; lane < 32; lane++) {
        for (i = 0; i < 16; i++) {
            spec_a(lane, i, &r, &c);
            seen_a[r][c]++;
        }
        for (i = 0; i < 8; i++) {
            spec_b(lane, i, &r, &c);
            seen_b[r][c]++;
        }
        for (i = 0; i < 4; i++) {
            spec_c(lane, i, &r, &c);
            seen_c[r][c]++;
            /* The kernels' own C mapping is the table's. */
            CHECK(w4a8__cu_c_row(lane, i) == r && w4a8__cu_c_col(lane, i) == c);
        }
    }
    for (r = 0; r < 16; r++)
        for (c = 0; c < 32; c++) CHECK(seen_a[r][c] == 1);
    for (r = 0; r < 32; r++)
        for (c = 0; c < 8; c++) CHECK(seen_b[r][c] == 1);
    for (r = 0; r < 16; r++)
        for (c = 0; c < 8; c++) CHECK(seen_c[r][c] == 1);
}

/* Padded positions: every k has exactly one, groups start on 32-k steps,
   and the shapes stay within the kernels' limits. */
static void test_cuda_geometry(void) {
    static const size_t Ks[] = { 1, 31, 32, 33, 100, 300, 4096, 11008 };
    static const size_t Gs[] = { 1, 7, 32, 33, 64, 100, 128, 2048, (size_t)-1 };
    size_t a, b;
    w4a8__cu_geom g;
    for (a = 0; a < sizeof Ks / sizeof Ks[0]; a++)
        for (b = 0; b < sizeof Gs / sizeof Gs[0]; b++) {
            size_t K = Ks[a], G = Gs[b] < K ? Gs[b] : K, p, hits = 0;
            int last = -1;
            CHECK(w4a8__cu_geom_init(17, K, G, &g));
            CHECK(g.kpad % 128 == 0 && g.npad == 128 && g.steps == g.groups * g.spg && g.spg * 32 >= G);
            CHECK(g.steps_pad - g.steps < 4 && g.kpad >= K);
            for (p = 0; p < g.kpad; p++) {
                int k = w4a8__cu_klogical((int)p, (int)G, (int)g.spg, (int)K);
                if (k < 0) continue;
                CHECK(k == last + 1);
                CHECK(p / (g.spg * 32) == (size_t)k / G); /* in its group's span */
                last = k;
                hits++;
            }
            CHECK(hits == K);
            for (p = 0; p < g.steps; p++) {
                int gi = w4a8__cu_group_end((int)p, (int)g.spg, (int)g.steps);
                CHECK(gi == ((p + 1) % g.spg ? -1 : (int)((p + 1) / g.spg) - 1));
            }
            CHECK(w4a8__cu_group_end((int)g.steps, (int)g.spg, (int)g.steps) == -1);
        }
    CHECK(!w4a8__cu_geom_init(0, 8, 8, &g));
    CHECK(!w4a8__cu_geom_init(8, 8, 9, &g));
    CHECK(!w4a8__cu_geom_init((size_t)1 << 30, 8, 8, &g));
    CHECK(!w4a8__cu_geom_init(8, ((size_t)1 << 30) - 1, 1, &g)); /* G = 1 pads K 32-fold */
}

/* The repacked words, read back through the PTX B table, are the codes. */
static void test_cuda_repack_is_b_fragment(void) {
    static const size_t shapes[][3] = { { 37, 100, 32 }, { 130, 33, 7 }, { 8, 300, 300 } };
    size_t t;
    for (t = 0; t < 3; t++) {
        size_t N = shapes[t][0], K = shapes[t][1];
        w4a8_layer *L = random_layer(N, K, shapes[t][2], 1, W4A8_ACT_PER_TOKEN, 0, 0, 0, 11 + t);
        uint8_t *codes = (uint8_t *)malloc(N * K);
        w4a8__cu_geom g;
        w4a8__cu_host h;
        int nb, s, lane, j, i;
        if (!L) continue;
        w4a8_layer_codes(L, codes);
        CHECK(w4a8__cu_geom_init(N, K, L->G, &g));
        CHECK_ST(w4a8__cu_host_build(L, &g, &h), W4A8_OK);
        for (nb = 0; nb < (int)g.npad / 32; nb++)
            for (s = 0; s < (int)g.steps_pad; s++)
                for (lane = 0; lane < 32; lane++)
                    for (j = 0; j < 4; j++) {
                        uint32_t w = h.words[w4a8__cu_word_at(nb, s, lane, j, (int)g.steps_pad)];
                        uint32_t regs[2];
                        regs[0] = w4a8__cu_lo(w);
                        regs[1] = w4a8__cu_hi(w);
                        for (i = 0; i < 8; i++) {
                            int kk, col, k;
                            size_t n;
                            spec_b(lane, i, &kk, &col);
                            n = (size_t)(nb * 32 + 8 * j + col);
                            k = w4a8__cu_klogical(s * 32 + kk, (int)g.G, (int)g.spg, (int)K);
                            CHECK(elem(regs, i) == (n < N && k >= 0 ? codes[n * K + (size_t)k] : 0));
                        }
                    }
        for (j = 0; j < (int)g.groups; j++)
            for (i = 0; i < (int)g.npad; i++) {
                CHECK(h.scales[(size_t)j * g.npad + (size_t)i] == ((size_t)i < N ? L->scales[(size_t)i * g.groups + (size_t)j] : 0.0f));
                CHECK(h.zeros[(size_t)j * g.npad + (size_t)i] == ((size_t)i < N ? L->zeros[(size_t)i * g.groups + (size_t)j] : 0));
            }
        w4a8__cu_host_free(&h);
        free(codes);
        w4a8_layer_free(L);
    }
}

/* The quantization kernel's codes, scales and group sums are the CPU's. */
static void test_cuda_quantize_matches(void) {
    static const size_t shapes[][3] = { { 5, 100, 32 }, { 3, 33, 7 }, { 17, 300, 300 }, { 2, 1000, 128 } };
    size_t t;
    int mode, smooth;
    for (t = 0; t < 4; t++)
        for (mode = 0; mode < 2; mode++)
            for (smooth = 0; smooth < 2; smooth++) {
                size_t M = shapes[t][0], K = shapes[t][1], m, k;
                w4a8_layer *L = random_layer(4, K, shapes[t][2], 0, (w4a8_act_mode)mode, smooth, 0, 0, 5 + t);
                float *X = tokens(M, K, 77 + t), *xs;
                int8_t *codes;
                int32_t *gs;
                emu e;
                if (!L) continue;
                codes = (int8_t *)malloc(M * K);
                xs = (float *)malloc(M * 4);
                gs = (int32_t *)malloc(M * L->groups * 4);
                CHECK_ST(w4a8_quantize_activations(X, M, K, L->G, L->smooth_inv, L->act_mode, L->act_scale, codes, xs, gs),
                         W4A8_OK);
                CHECK(emu_init(&e, L, (int)M));
                emu_quantize(&e, X);
                for (m = 0; m < M; m++) {
                    size_t p;
                    CHECK(memcmp(&e.xs[m], &xs[m], 4) == 0);
                    CHECK(!e.bad[m]);
                    for (k = 0; k < L->groups; k++) CHECK(e.gs[k * (size_t)e.mpad + m] == gs[m * L->groups + k]);
                    for (p = 0; p < e.g.kpad; p++) {
                        int kk = w4a8__cu_klogical((int)p, (int)e.g.G, (int)e.g.spg, (int)K);
                        CHECK(e.codes[m * e.g.kpad + p] == (kk < 0 ? 0 : codes[m * K + (size_t)kk]));
                    }
                }
                for (m = M; m < (size_t)e.mpad; m++) CHECK(e.gs[m] == 0 && e.xs[m] == 0.0f && !e.bad[m]);
                emu_free(&e);
                free(X);
                free(codes);
                free(xs);
                free(gs);
                w4a8_layer_free(L);
            }
}

/* Every kernel, replayed, gives w4a8_layer_forward's bits. */
static void test_cuda_kernels_match(void) {
    static const struct {
        size_t N, K, G;
        int asym, mode, smooth, folded, bias;
    } cases[] = {
        { 200, 300, 64, 0, W4A8_ACT_PER_TOKEN, 0, 0, 1 },  /* groups of 2 steps, 5 groups */
        { 37, 100, 100, 1, W4A8_ACT_PER_TENSOR, 1, 0, 0 }, /* per channel, 1/s, static scale */
        { 64, 1000, 32, 1, W4A8_ACT_PER_TOKEN, 1, 1, 1 },  /* a group per step, s folded */
        { 5, 33, 1, 1, W4A8_ACT_PER_TOKEN, 0, 0, 1 },      /* G = 1: 32-fold padding */
        { 40, 130, 48, 0, W4A8_ACT_PER_TENSOR, 0, 0, 1 },  /* short last group */
    };
    static const int Ms[] = { 1, 7, 9, 16, 17, 70, 130 };
    size_t c, mi;
    int kernel;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        w4a8_layer *L = random_layer(cases[c].N, cases[c].K, cases[c].G, cases[c].asym, (w4a8_act_mode)cases[c].mode,
                                     cases[c].smooth, cases[c].folded, cases[c].bias, 100 + c);
        if (!L) continue;
        for (mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            int M = Ms[mi];
            float *X = tokens((size_t)M, L->K, 300 + mi), *want = (float *)malloc((size_t)M * L->N * 4);
            float *got = (float *)malloc((size_t)M * L->N * 4);
            CHECK_ST(w4a8_layer_forward(L, X, (size_t)M, want, NULL, 0), W4A8_OK);
            for (kernel = EMU_SMALL; kernel <= EMU_BIG; kernel++) {
                if (kernel == EMU_SMALL && M > W4A8__CU_SMALL_M) continue;
                if (kernel == EMU_BIG && M > 17 && c > 1) continue; /* keep the suite fast */
                memset(got, 0xff, (size_t)M * L->N * 4);
                CHECK(emu_forward(L, X, M, kernel, got));
                CHECK(memcmp(got, want, (size_t)M * L->N * 4) == 0);
            }
            free(X);
            free(want);
            free(got);
        }
        w4a8_layer_free(L);
    }
}

/* Sums at the edge of int32-to-float by the exponent trick: groups of 2048
   (the longest it takes) with every product at +-127 * 15, and a longer
   group that converts the ordinary way. */
static void test_cuda_extreme_sums(void) {
    static const size_t Gs[] = { 2048, 2100 };
    size_t t, i, N = 16, K = 2100, M = 3;
    for (t = 0; t < 2; t++) {
        w4a8_layer_desc d;
        w4a8_layer *L = NULL;
        size_t groups = (K + Gs[t] - 1) / Gs[t];
        uint8_t *codes = (uint8_t *)malloc(N * K), *zeros = (uint8_t *)malloc(N * groups);
        float *scales = (float *)malloc(N * groups * 4), *X = tokens(M, K, 9);
        float want[3 * 16], got[3 * 16];
        int kernel;
        for (i = 0; i < N * K; i++) codes[i] = (i / K) % 2 ? 15 : 0;
        for (i = 0; i < N * groups; i++) {
            zeros[i] = (i / groups) % 2 ? 0 : 15; /* u - z = +15 or -15 everywhere */
            scales[i] = 1.0f + (float)i / 64.0f;
        }
        for (i = 0; i < w4a8__cu_mpad(M) * K; i++) X[i] = i / K == 1 ? -3.0f : 3.0f; /* codes +-127 */
        memset(&d, 0, sizeof d);
        d.N = N;
        d.K = K;
        d.group_size = Gs[t];
        d.asymmetric = 1;
        d.codes = codes;
        d.scales = scales;
        d.zeros = zeros;
        d.method = W4A8_METHOD_RTN;
        CHECK_ST(w4a8_layer_create(&d, &L), W4A8_OK);
        CHECK(w4a8__cu_use_magic((int)L->G) == (t == 0));
        CHECK_ST(w4a8_layer_forward(L, X, M, want, NULL, 0), W4A8_OK);
        /* |acc| = 127 * 15 * 2048 in the first group, times x_scale = 3/127 and scale >= 1 */
        CHECK(fabsf(want[0]) > 15.0f * 2048.0f * 3.0f * 0.99f);
        for (kernel = EMU_SMALL; kernel <= EMU_BIG; kernel++) {
            memset(got, 0xff, sizeof got);
            CHECK(emu_forward(L, X, (int)M, kernel, got));
            CHECK(memcmp(got, want, sizeof want) == 0);
        }
        free(codes);
        free(zeros);
        free(scales);
        free(X);
        w4a8_layer_free(L);
    }
}

/* A token with NaN or Inf: no kernel writes Y, as the CPU writes nothing. */
static void test_cuda_nonfinite_untouched(void) {
    w4a8_layer *L = random_layer(40, 64, 32, 0, W4A8_ACT_PER_TOKEN, 1, 0, 1, 3);
    float *X = tokens(5, 64, 4), Y[5 * 40], Z[5 * 40];
    int kernel;
    if (!L) return;
    X[3 * 64 + 9] = INFINITY;
    memset(Y, 0x77, sizeof Y);
    CHECK_ST(w4a8_layer_forward(L, X, 5, Y, NULL, 0), W4A8_ERR_NONFINITE);
    for (kernel = EMU_SMALL; kernel <= EMU_BIG; kernel++) {
        memset(Z, 0x77, sizeof Z);
        CHECK(!emu_forward(L, X, 5, kernel, Z));
        CHECK(memcmp(Y, Z, sizeof Y) == 0);
    }
    free(X);
    w4a8_layer_free(L);
}

/* Shared-memory bank conflicts the layout promises to avoid: the 8 rows of
   each ldmatrix phase, each quarter warp's 16-byte weight loads and each
   half warp's 8-byte partial-sum stores hit distinct banks. */
static void test_cuda_banks(void) {
    int u, i, lane, q, s, tb;
    for (u = 0; u < 4; u++)
        for (i = 0; i < 8; i++)
            for (q = 0; q < 4; q++) {
                int seen = 0;
                for (lane = 8 * q; lane < 8 * q + 8; lane++) seen |= 1 << (w4a8__cu_ldsm_off(16 * i, u, lane) / 16 % 8);
                CHECK(seen == 0xff);
            }
    for (u = 0; u < 4; u++)
        for (q = 0; q < 4; q++) {
            int seen = 0;
            for (lane = 8 * q; lane < 8 * q + 8; lane++) seen |= 1 << (w4a8__cu_b_chunk(1, u, lane) % 8);
            CHECK(seen == 0xff);
        }
    for (s = 0; s < 3; s++)
        for (tb = 0; tb < 2; tb++)
            for (i = 0; i < 2; i++)
                for (q = 0; q < 2; q++) {
                    uint32_t seen = 0;
                    for (lane = 16 * q; lane < 16 * q + 16; lane++) {
                        int at = w4a8__cu_part_at(s, tb, 16 * i + w4a8__cu_c_row(lane, 0), w4a8__cu_c_col(lane, 0), 2);
                        CHECK(at % 2 == 0);
                        seen |= 3u << (at % 32);
                    }
                    CHECK(seen == 0xffffffffu);
                }
}

/* The A tile's chunks fill it exactly once, and stage regions do not meet. */
static void test_cuda_stage_layout(void) {
    static unsigned char hit[W4A8__CU_BIG_BM * 8];
    int r, c, ok = 1;
    memset(hit, 0, sizeof hit);
    for (r = 0; r < W4A8__CU_BIG_BM; r++)
        for (c = 0; c < 8; c++) hit[w4a8__cu_a_off(r, c) / 16]++;
    for (r = 0; r < W4A8__CU_BIG_BM * 8; r++) ok &= hit[r] == 1;
    CHECK(ok);
    CHECK(W4A8__CU_ST_SC(128, 128) - W4A8__CU_ST_B(128, 128) == 128 * 64);
    CHECK(W4A8__CU_ST_BYTES(128, 128) % 16 == 0 && W4A8__CU_ST_BYTES(64, 64) % 16 == 0);
    CHECK(W4A8__CU_STAGES * W4A8__CU_ST_BYTES(W4A8__CU_MID_BM, W4A8__CU_MID_BN) <= 99 * 1024); /* every sm_8x/9x */
    CHECK(W4A8__CU_SMALL_BYTES(2) <= 99 * 1024);
}

void tests_cuda_layout(void) {
    RUN(test_cuda_spec_bijective);
    RUN(test_cuda_geometry);
    RUN(test_cuda_stage_layout);
    RUN(test_cuda_banks);
    RUN(test_cuda_repack_is_b_fragment);
    RUN(test_cuda_quantize_matches);
    RUN(test_cuda_kernels_match);
    RUN(test_cuda_extreme_sums);
    RUN(test_cuda_nonfinite_untouched);
}
