/* gguf.h - GGUF (v2, v3) read and write for the LLaMA-family engine.

   Reading is strict: every count, string, type, shape, offset and size is
   checked against the bytes that are there before anything is allocated or
   read, and a malformed file gives a llama_status, never a crash.

   llama_gguf_open_mem(buf, bytes, &g)      parse a file image; g borrows buf
   llama_gguf_open(path, &g)                read a regular file (at most
                                            LLAMA_GGUF_MAX_FILE bytes) and parse it
   llama_gguf_close(g)

   Metadata (g->kv[0..g->n_kv), in file order; every string NUL-terminated too):
   llama_gguf_find(g, key)                         the value or NULL
   llama_gguf_get_u64 / _i64 (g, key, &v)          any integer type, range-checked
   llama_gguf_get_f64(g, key, &v)                  FLOAT32 or FLOAT64
   llama_gguf_get_bool(g, key, &v)
   llama_gguf_get_str(g, key, &s, &len)
   llama_gguf_get_strs(g, key, &strs, &lens, &n)   an array of strings
   llama_gguf_get_array(g, key, &elem, &data, &n)  an array of numbers, decoded
                                                   to native uint8_t..double
                                                   (BOOL as uint8_t 0/1)
     Getters return LLAMA_ERR_GGUF_KEY when the key is absent and
     LLAMA_ERR_GGUF_TYPE when its value has another type.

   Tensors (g->tensors[0..g->n_tensors), ne[0] the innermost dimension, so a
   GGUF matrix of ne = {K, N} is W[N][K] row-major):
   llama_gguf_tensor_find(g, name)                 the tensor or NULL
   llama_gguf_dequantize(t, out, n)                n == t->n_elements floats,
                                                   bit-exact with ggml's
                                                   dequantize_row_* for F32, F16,
                                                   BF16, Q8_0, Q4_0, Q4_1, Q5_0,
                                                   Q5_1, Q4_K, Q5_K, Q6_K
   llama_gguf_dtype_size(type, &block_elems, &block_bytes)

   Writing (all or nothing: a temporary file in the target's directory,
   renamed over the target at the end, removed on failure):
   llama_gguf_writer_create(&w) / llama_gguf_writer_free(w)
   llama_gguf_writer_set(w, key, &value)           any value (deep copy)
   llama_gguf_writer_set_u32 / _i32 / _f32 / _bool / _str / _strs / _array
   llama_gguf_writer_add_raw(w, name, type, n_dims, ne, blocks, bytes)
                                                   ready blocks of any type above
   llama_gguf_writer_add_f32(w, name, type, n_dims, ne, x)
                                                   x converted to F32, F16, or
                                                   quantized like ggml's
                                                   quantize_row_q8_0_ref /
                                                   quantize_row_q4_0_ref
   llama_gguf_writer_write(w, path)                the file
   llama_gguf_writer_write_mem(w, &buf, &bytes)    the same bytes in malloc'd memory
   `general.alignment` (UINT32, a power of two) sets the alignment; 32 otherwise.

   What is rejected, and how (every reason a llama_status):
   bad magic, a string or count past the end, an empty or duplicate key or
   tensor name, a key that is not UTF-8, a tensor name of 64 bytes or more,
   arrays nested deeper than LLAMA_GGUF_MAX_DEPTH, a BOOL other than 0/1:
   LLAMA_ERR_GGUF; a version other than 2 or 3: LLAMA_ERR_GGUF_VERSION; an
   unknown value or tensor type, more than 4 dimensions, a row length that is
   not a whole number of blocks: LLAMA_ERR_GGUF_TYPE; element or byte counts
   that overflow: LLAMA_ERR_HEADER; an alignment that is not a power of two,
   tensor data misaligned, overlapping or past the end: LLAMA_ERR_GGUF_LAYOUT;
   the file ending inside the header: LLAMA_ERR_TRUNCATED. */

/* model.h has the status codes and includes this file after them. */
#include "model.h"
#ifndef LLAMA_GGUF_H
#define LLAMA_GGUF_H
#include <stddef.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#endif
/* >>gguf ------------------------------------------------------------------- */

#define LLAMA_GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define LLAMA_GGUF_DEFAULT_ALIGNMENT 32
#define LLAMA_GGUF_MAX_DIMS 4
#define LLAMA_GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME: names are shorter */
#define LLAMA_GGUF_MAX_DEPTH 8 /* arrays of arrays */
#define LLAMA_GGUF_MAX_FILE ((size_t)1 << 36 < (size_t)-1 ? (size_t)1 << 36 : (size_t)-1 / 2)

/* Metadata value types, numbered as in the file. */
typedef enum llama_gguf_type {
    LLAMA_GGUF_UINT8, LLAMA_GGUF_INT8, LLAMA_GGUF_UINT16, LLAMA_GGUF_INT16, LLAMA_GGUF_UINT32,
    LLAMA_GGUF_INT32, LLAMA_GGUF_FLOAT32, LLAMA_GGUF_BOOL, LLAMA_GGUF_STRING, LLAMA_GGUF_ARRAY,
    LLAMA_GGUF_UINT64, LLAMA_GGUF_INT64, LLAMA_GGUF_FLOAT64, LLAMA_GGUF_TYPE_COUNT
} llama_gguf_type;

/* Tensor types (ggml's numbering); the ones this file reads. */
enum {
    LLAMA_GGUF_F32 = 0, LLAMA_GGUF_F16 = 1, LLAMA_GGUF_Q4_0 = 2, LLAMA_GGUF_Q4_1 = 3, LLAMA_GGUF_Q5_0 = 6,
    LLAMA_GGUF_Q5_1 = 7, LLAMA_GGUF_Q8_0 = 8, LLAMA_GGUF_Q4_K = 12, LLAMA_GGUF_Q5_K = 13, LLAMA_GGUF_Q6_K = 14,
    LLAMA_GGUF_BF16 = 30
};

/* One metadata value. Scalars: u (unsigned integers, BOOL 0/1), i (signed
   integers), f (FLOAT32/FLOAT64). STRING: str[len] (NUL-terminated after
   len bytes). ARRAY of n elements of type elem: data (numbers, native C
   types), strs/lens (strings) or items (arrays). */
typedef struct llama_gguf_value {
    llama_gguf_type type;
    uint64_t u;
    int64_t i;
    double f;
    const char *str;
    size_t len;
    llama_gguf_type elem;
    size_t n;
    const void *data;
    const char *const *strs;
    const size_t *lens;
    const struct llama_gguf_value *items;
} llama_gguf_value;

typedef struct llama_gguf_kv {
    const char *key; /* NUL-terminated */
    size_t key_len;
    llama_gguf_value v;
} llama_gguf_kv;

typedef struct llama_gguf_tensor {
    const char *name; /* NUL-terminated */
    uint32_t type, n_dims;
    uint64_t ne[LLAMA_GGUF_MAX_DIMS]; /* unused dimensions are 1 */
    uint64_t offset;                  /* from the start of the data section */
    size_t n_elements, n_bytes;
    const unsigned char *data;        /* n_bytes, little-endian blocks */
} llama_gguf_tensor;

typedef struct llama__gguf_chunk llama__gguf_chunk;

typedef struct llama_gguf {
    uint32_t version;
    size_t alignment, data_offset, bytes; /* data_offset: where the data section starts */
    size_t n_kv, n_tensors;
    llama_gguf_kv *kv;
    llama_gguf_tensor *tensors;
    unsigned char *owned;                 /* the file image when opened from a path */
    llama__gguf_chunk *arena;
} llama_gguf;

/* >>gguf-types ------------------------------------------------------------- */

/* Bytes of one scalar value in the file; 0 for STRING, ARRAY and unknown. */
LLAMA_API size_t llama__gguf_scalar_size(uint32_t t) {
    static const unsigned char sz[LLAMA_GGUF_TYPE_COUNT] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
    return t < LLAMA_GGUF_TYPE_COUNT ? sz[t] : 0;
}

/* Elements and bytes of one block of a tensor type. */
LLAMA_API llama_status llama_gguf_dtype_size(uint32_t type, size_t *block_elems, size_t *block_bytes) {
    size_t e, b;
    switch (type) {
    case LLAMA_GGUF_F32: e = 1, b = 4; break;
    case LLAMA_GGUF_F16: case LLAMA_GGUF_BF16: e = 1, b = 2; break;
    case LLAMA_GGUF_Q4_0: e = 32, b = 18; break;
    case LLAMA_GGUF_Q4_1: e = 32, b = 20; break;
    case LLAMA_GGUF_Q5_0: e = 32, b = 22; break;
    case LLAMA_GGUF_Q5_1: e = 32, b = 24; break;
    case LLAMA_GGUF_Q8_0: e = 32, b = 34; break;
    case LLAMA_GGUF_Q4_K: e = 256, b = 144; break;
    case LLAMA_GGUF_Q5_K: e = 256, b = 176; break;
    case LLAMA_GGUF_Q6_K: e = 256, b = 210; break;
    default: return LLAMA_ERR_GGUF_TYPE;
    }
    if (block_elems) *block_elems = e;
    if (block_bytes) *block_bytes = b;
    return LLAMA_OK;
}

/* Elements and bytes of a tensor; LLAMA_ERR_HEADER when they overflow. */
LLAMA_API llama_status llama__gguf_tensor_size(uint32_t type, uint32_t n_dims, const uint64_t *ne, size_t *elems,
                                                 size_t *bytes) {
    size_t be, bb, n = 1, d;
    llama_status st;
    if ((st = llama_gguf_dtype_size(type, &be, &bb)) != LLAMA_OK) return st;
    if (n_dims > LLAMA_GGUF_MAX_DIMS) return LLAMA_ERR_GGUF_TYPE;
    for (d = 0; d < n_dims; d++)
        if (ne[d] > (uint64_t)INT64_MAX || ne[d] > (size_t)-1 || !llama__mul(n, (size_t)ne[d], &n))
            return LLAMA_ERR_HEADER;
    if (n > (size_t)INT64_MAX) return LLAMA_ERR_HEADER;
    if (n_dims > 0 && ne[0] % be != 0) return LLAMA_ERR_GGUF_TYPE;
    if (n_dims == 0 && be != 1) return LLAMA_ERR_GGUF_TYPE;
    if (!llama__mul(n / be, bb, bytes)) return LLAMA_ERR_HEADER;
    *elems = n;
    return LLAMA_OK;
}

/* IEEE half to float, exactly (ggml's GGML_FP16_TO_FP32). */
LLAMA_API float llama__gguf_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu, bits;
    float f;
    if (e == 0x1f) bits = sign | 0x7f800000u | m << 13;
    else if (e != 0) bits = sign | (e + 112) << 23 | m << 13;
    else if (m == 0) bits = sign;
    else { /* subnormal: m * 2^-24 is exact in float */
        f = (float)m * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    memcpy(&f, &bits, 4);
    return f;
}

/* Float to IEEE half, rounding to nearest even (F16C's and ggml's rule). */
LLAMA_API uint16_t llama__gguf_to_f16(float f) {
    uint32_t x, sign, e, m;
    memcpy(&x, &f, 4);
    sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xff, m = x & 0x7fffffu;
    if (e == 0xff) return (uint16_t)(sign | 0x7c00u | (m ? 0x200u | m >> 13 : 0));
    if (e >= 143) return (uint16_t)(sign | 0x7c00u); /* >= 2^16: overflow */
    if (e >= 113) {                                   /* normal half */
        uint32_t h = (e - 112) << 10 | m >> 13, rest = m & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++; /* may carry into Inf: correct */
        return (uint16_t)(sign | h);
    }
    if (e < 102) return (uint16_t)sign; /* below half the smallest subnormal */
    {                                    /* subnormal half: round (1.m * 2^(e-127)) / 2^-24 */
        uint32_t full = m | 0x800000u, shift = 126 - e, h = full >> shift, rest = full & ((1u << shift) - 1),
                 half = 1u << (shift - 1);
        if (rest > half || (rest == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
}

LLAMA_API uint16_t llama__gguf_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

LLAMA_API uint64_t llama__gguf_u64(const unsigned char *p) {
    return (uint64_t)(uint32_t)llama__i32(p) | (uint64_t)(uint32_t)llama__i32(p + 4) << 32;
}

/* >>gguf-dequantize -------------------------------------------------------- */

/* ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j of a K block. */
LLAMA_API void llama__gguf_scale_min(int j, const unsigned char *q, int *d, int *m) {
    if (j < 4) *d = q[j] & 63, *m = q[j + 4] & 63;
    else *d = (q[j + 4] & 0xF) | (q[j - 4] >> 6) << 4, *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
}

/* One block at b into y, the formulas of ggml's dequantize_row_* in their
   operation order (float products and sums, no fused multiply-add). */
LLAMA_API void llama__gguf_block(uint32_t type, const unsigned char *b, float *y) {
    int j, l;
    switch (type) {
    case LLAMA_GGUF_F32: y[0] = llama__f32(b); break;
    case LLAMA_GGUF_F16: y[0] = llama__gguf_f16(llama__gguf_u16(b)); break;
    case LLAMA_GGUF_BF16: {
        uint32_t bits = (uint32_t)llama__gguf_u16(b) << 16;
        memcpy(y, &bits, 4);
        break;
    }
    case LLAMA_GGUF_Q4_0: {
        float d = llama__gguf_f16(llama__gguf_u16(b));
        for (j = 0; j < 16; j++) y[j] = (float)((b[2 + j] & 0xF) - 8) * d, y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        break;
    }
    case LLAMA_GGUF_Q4_1: {
        float d = llama__gguf_f16(llama__gguf_u16(b)), m = llama__gguf_f16(llama__gguf_u16(b + 2));
        for (j = 0; j < 16; j++) y[j] = (float)(b[4 + j] & 0xF) * d + m, y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
        break;
    }
    case LLAMA_GGUF_Q5_0: case LLAMA_GGUF_Q5_1: {
        int one = type == LLAMA_GGUF_Q5_1, o = one ? 4 : 2;
        float d = llama__gguf_f16(llama__gguf_u16(b)), m = one ? llama__gguf_f16(llama__gguf_u16(b + 2)) : 0.0f;
        uint32_t qh = (uint32_t)llama__i32(b + o);
        const unsigned char *qs = b + o + 4;
        for (j = 0; j < 16; j++) {
            int x0 = (qs[j] & 0xF) | (int)((qh >> j) << 4 & 0x10), x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            if (one) y[j] = (float)x0 * d + m, y[j + 16] = (float)x1 * d + m;
            else y[j] = (float)(x0 - 16) * d, y[j + 16] = (float)(x1 - 16) * d;
        }
        break;
    }
    case LLAMA_GGUF_Q8_0: {
        float d = llama__gguf_f16(llama__gguf_u16(b));
        for (j = 0; j < 32; j++) y[j] = (float)(signed char)b[2 + j] * d;
        break;
    }
    case LLAMA_GGUF_Q4_K: case LLAMA_GGUF_Q5_K: {
        int five = type == LLAMA_GGUF_Q5_K, sc, mn;
        float d = llama__gguf_f16(llama__gguf_u16(b)), dmin = llama__gguf_f16(llama__gguf_u16(b + 2));
        const unsigned char *scales = b + 4, *qh = b + 16, *q = b + (five ? 48 : 16);
        unsigned u1 = 1, u2 = 2;
        for (j = 0; j < 256; j += 64, q += 32, u1 <<= 2, u2 <<= 2) {
            float d1, m1, d2, m2;
            llama__gguf_scale_min(j / 32, scales, &sc, &mn);
            d1 = d * (float)sc, m1 = dmin * (float)mn;
            llama__gguf_scale_min(j / 32 + 1, scales, &sc, &mn);
            d2 = d * (float)sc, m2 = dmin * (float)mn;
            for (l = 0; l < 32; l++) {
                int h1 = five && (qh[l] & u1) ? 16 : 0, h2 = five && (qh[l] & u2) ? 16 : 0;
                y[j + l] = d1 * (float)((q[l] & 0xF) + h1) - m1;
                y[j + 32 + l] = d2 * (float)((q[l] >> 4) + h2) - m2;
            }
        }
        break;
    }
    case LLAMA_GGUF_Q6_K: {
        const unsigned char *ql = b, *qh = b + 128;
        const signed char *sc = (const signed char *)(b + 192);
        float d = llama__gguf_f16(llama__gguf_u16(b + 208));
        int n;
        for (n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8)
            for (l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[n + l] = d * (float)sc[is] * (float)q1;
                y[n + l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[n + l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[n + l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        break;
    }
    default: break;
    }
}

/* n elements of type `type` from src[src_bytes] into out[n]. */
LLAMA_API llama_status llama_gguf_dequantize_raw(uint32_t type, const void *src, size_t src_bytes, size_t n,
                                                   float *out) {
    size_t be, bb, i, need;
    llama_status st;
    if (!src || !out) return LLAMA_ERR_ARG;
    if ((st = llama_gguf_dtype_size(type, &be, &bb)) != LLAMA_OK) return st;
    if (n % be != 0) return LLAMA_ERR_GGUF_TYPE;
    if (!llama__mul(n / be, bb, &need) || need != src_bytes) return LLAMA_ERR_ARG;
    for (i = 0; i < n / be; i++) llama__gguf_block(type, (const unsigned char *)src + i * bb, out + i * be);
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_dequantize(const llama_gguf_tensor *t, float *out, size_t n) {
    if (!t || !out || n != t->n_elements) return LLAMA_ERR_ARG;
    return llama_gguf_dequantize_raw(t->type, t->data ? (const void *)t->data : (const void *)out, t->n_bytes, n,
                                     out);
}

/* >>gguf-read -------------------------------------------------------------- */

/* A bump allocator: everything a parse allocates is freed at once. */
struct llama__gguf_chunk {
    llama__gguf_chunk *next;
    size_t used, cap;
    double align_[1]; /* data starts here, aligned for any scalar */
};

LLAMA_API void *llama__gguf_alloc(llama__gguf_chunk **arena, size_t bytes) {
    llama__gguf_chunk *c = *arena;
    size_t need = (bytes + 15) & ~(size_t)15, cap;
    void *p;
    if (bytes > (size_t)-1 / 2) return NULL;
    if (!c || c->cap - c->used < need) {
        cap = need > ((size_t)1 << 20) ? need : ((size_t)1 << 20);
        if (!(c = (llama__gguf_chunk *)malloc(offsetof(llama__gguf_chunk, align_) + cap))) return NULL;
        c->next = *arena, c->used = 0, c->cap = cap;
        *arena = c;
    }
    p = (unsigned char *)c->align_ + c->used;
    c->used += need;
    return p;
}

LLAMA_API void llama__gguf_arena_free(llama__gguf_chunk *c) {
    while (c) {
        llama__gguf_chunk *n = c->next;
        free(c);
        c = n;
    }
}

typedef struct llama__gguf_in {
    const unsigned char *b;
    size_t pos, end;
    llama__gguf_chunk **arena;
} llama__gguf_in;

LLAMA_API llama_status llama__gguf_take(llama__gguf_in *in, size_t n, const unsigned char **p) {
    if (in->end - in->pos < n) return LLAMA_ERR_TRUNCATED;
    *p = in->b + in->pos;
    in->pos += n;
    return LLAMA_OK;
}

LLAMA_API llama_status llama__gguf_read_u32(llama__gguf_in *in, uint32_t *v) {
    const unsigned char *p;
    llama_status st = llama__gguf_take(in, 4, &p);
    if (st == LLAMA_OK) *v = (uint32_t)llama__i32(p);
    return st;
}

LLAMA_API llama_status llama__gguf_read_u64(llama__gguf_in *in, uint64_t *v) {
    const unsigned char *p;
    llama_status st = llama__gguf_take(in, 8, &p);
    if (st == LLAMA_OK) *v = llama__gguf_u64(p);
    return st;
}

/* A string: u64 length, bytes; copied NUL-terminated into the arena. */
LLAMA_API llama_status llama__gguf_read_str(llama__gguf_in *in, const char **s, size_t *len) {
    uint64_t n;
    const unsigned char *p;
    char *c;
    llama_status st;
    if ((st = llama__gguf_read_u64(in, &n)) != LLAMA_OK) return st;
    if (n > in->end - in->pos) return LLAMA_ERR_TRUNCATED;
    if ((st = llama__gguf_take(in, (size_t)n, &p)) != LLAMA_OK) return st;
    if (!(c = (char *)llama__gguf_alloc(in->arena, (size_t)n + 1))) return LLAMA_ERR_NOMEM;
    memcpy(c, p, (size_t)n);
    c[n] = '\0';
    *s = c, *len = (size_t)n;
    return LLAMA_OK;
}

LLAMA_API int llama__gguf_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], k, cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) k = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) k = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, cp = c & 0x07;
        else return 0;
        if (n - i <= k) return 0;
        for (i++; k > 0; k--, i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i] & 0x3F);
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF || (cp < 0x800 && c >= 0xE0) || (cp < 0x10000 && c >= 0xF0))
            return 0;
    }
    return 1;
}

/* A scalar of type t at p into v. */
LLAMA_API llama_status llama__gguf_scalar(uint32_t t, const unsigned char *p, llama_gguf_value *v) {
    uint32_t u32 = llama__gguf_scalar_size(t) == 4 ? (uint32_t)llama__i32(p) : 0;
    float f;
    memset(v, 0, sizeof *v);
    v->type = (llama_gguf_type)t;
    switch (t) {
    case LLAMA_GGUF_UINT8: v->u = p[0]; break;
    case LLAMA_GGUF_INT8: v->i = (signed char)p[0]; break;
    case LLAMA_GGUF_UINT16: v->u = llama__gguf_u16(p); break;
    case LLAMA_GGUF_INT16: v->i = (int16_t)llama__gguf_u16(p); break;
    case LLAMA_GGUF_UINT32: v->u = u32; break;
    case LLAMA_GGUF_INT32: v->i = llama__i32(p); break;
    case LLAMA_GGUF_FLOAT32: memcpy(&f, &u32, 4), v->f = f; break;
    case LLAMA_GGUF_BOOL:
        if (p[0] > 1) return LLAMA_ERR_GGUF;
        v->u = p[0];
        break;
    case LLAMA_GGUF_UINT64: v->u = llama__gguf_u64(p); break;
    case LLAMA_GGUF_INT64: {
        uint64_t u = llama__gguf_u64(p);
        memcpy(&v->i, &u, 8);
        break;
    }
    case LLAMA_GGUF_FLOAT64: {
        uint64_t u = llama__gguf_u64(p);
        memcpy(&v->f, &u, 8);
        break;
    }
    default: return LLAMA_ERR_GGUF_TYPE;
    }
    return LLAMA_OK;
}

/* Native bytes of one array element of a numeric type. */
LLAMA_API size_t llama__gguf_native_size(uint32_t t) {
    switch (t) {
    case LLAMA_GGUF_FLOAT32: return sizeof(float);
    case LLAMA_GGUF_FLOAT64: return sizeof(double);
    default: return llama__gguf_scalar_size(t);
    }
}

/* Store a decoded scalar as the array's native element i. */
LLAMA_API void llama__gguf_store(void *data, size_t i, const llama_gguf_value *s) {
    switch (s->type) {
    case LLAMA_GGUF_UINT8: case LLAMA_GGUF_BOOL: ((uint8_t *)data)[i] = (uint8_t)s->u; break;
    case LLAMA_GGUF_INT8: ((int8_t *)data)[i] = (int8_t)s->i; break;
    case LLAMA_GGUF_UINT16: ((uint16_t *)data)[i] = (uint16_t)s->u; break;
    case LLAMA_GGUF_INT16: ((int16_t *)data)[i] = (int16_t)s->i; break;
    case LLAMA_GGUF_UINT32: ((uint32_t *)data)[i] = (uint32_t)s->u; break;
    case LLAMA_GGUF_INT32: ((int32_t *)data)[i] = (int32_t)s->i; break;
    case LLAMA_GGUF_FLOAT32: ((float *)data)[i] = (float)s->f; break;
    case LLAMA_GGUF_UINT64: ((uint64_t *)data)[i] = s->u; break;
    case LLAMA_GGUF_INT64: ((int64_t *)data)[i] = s->i; break;
    default: ((double *)data)[i] = s->f; break;
    }
}

/* A value of type t (already read), arrays recursively up to depth. */
LLAMA_API llama_status llama__gguf_value(llama__gguf_in *in, uint32_t t, int depth, llama_gguf_value *v) {
    llama_status st;
    const unsigned char *p;
    uint32_t elem;
    uint64_t n64;
    size_t n, i, min_bytes;
    if (t == LLAMA_GGUF_STRING) {
        memset(v, 0, sizeof *v);
        v->type = LLAMA_GGUF_STRING;
        return llama__gguf_read_str(in, &v->str, &v->len);
    }
    if (t != LLAMA_GGUF_ARRAY) {
        if (t >= LLAMA_GGUF_TYPE_COUNT) return LLAMA_ERR_GGUF_TYPE;
        if ((st = llama__gguf_take(in, llama__gguf_scalar_size(t), &p)) != LLAMA_OK) return st;
        return llama__gguf_scalar(t, p, v);
    }
    if (depth >= LLAMA_GGUF_MAX_DEPTH) return LLAMA_ERR_GGUF;
    if ((st = llama__gguf_read_u32(in, &elem)) != LLAMA_OK || (st = llama__gguf_read_u64(in, &n64)) != LLAMA_OK)
        return st;
    if (elem >= LLAMA_GGUF_TYPE_COUNT) return LLAMA_ERR_GGUF_TYPE;
    /* Every element takes at least min_bytes of the file: a count the
       remaining bytes cannot hold is rejected before any allocation. */
    min_bytes = elem == LLAMA_GGUF_STRING ? 8 : elem == LLAMA_GGUF_ARRAY ? 12 : llama__gguf_scalar_size(elem);
    if (n64 > (in->end - in->pos) / min_bytes) return LLAMA_ERR_TRUNCATED;
    n = (size_t)n64;
    memset(v, 0, sizeof *v);
    v->type = LLAMA_GGUF_ARRAY, v->elem = (llama_gguf_type)elem, v->n = n;
    if (elem == LLAMA_GGUF_STRING) {
        const char **strs = (const char **)llama__gguf_alloc(in->arena, (n ? n : 1) * sizeof *strs);
        size_t *lens = (size_t *)llama__gguf_alloc(in->arena, (n ? n : 1) * sizeof *lens);
        if (!strs || !lens) return LLAMA_ERR_NOMEM;
        for (i = 0; i < n; i++)
            if ((st = llama__gguf_read_str(in, &strs[i], &lens[i])) != LLAMA_OK) return st;
        v->strs = strs, v->lens = lens;
    } else if (elem == LLAMA_GGUF_ARRAY) {
        llama_gguf_value *items = (llama_gguf_value *)llama__gguf_alloc(in->arena, (n ? n : 1) * sizeof *items);
        if (!items) return LLAMA_ERR_NOMEM;
        for (i = 0; i < n; i++)
            if ((st = llama__gguf_value(in, LLAMA_GGUF_ARRAY, depth + 1, &items[i])) != LLAMA_OK) return st;
        v->items = items;
    } else {
        size_t es = llama__gguf_scalar_size(elem);
        void *data = llama__gguf_alloc(in->arena, (n ? n : 1) * llama__gguf_native_size(elem));
        if (!data) return LLAMA_ERR_NOMEM;
        for (i = 0; i < n; i++) {
            llama_gguf_value s;
            if ((st = llama__gguf_take(in, es, &p)) != LLAMA_OK || (st = llama__gguf_scalar(elem, p, &s)) != LLAMA_OK)
                return st;
            llama__gguf_store(data, i, &s);
        }
        v->data = data;
    }
    return LLAMA_OK;
}

LLAMA_API int llama__gguf_name_cmp(const void *a, const void *b) {
    const char *x = **(const char *const *const *)a, *y = **(const char *const *const *)b;
    return strcmp(x, y);
}

LLAMA_API int llama__gguf_offset_cmp(const void *a, const void *b) {
    const llama_gguf_tensor *x = *(const llama_gguf_tensor *const *)a, *y = *(const llama_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* 1 when two of the n names (each reached through a pointer at
   base + i * stride) are equal. Sorting keeps it O(n log n) on any file. */
LLAMA_API int llama__gguf_has_duplicate(const void *base, size_t stride, size_t n, llama__gguf_chunk **arena,
                                          int *nomem) {
    const char **p = (const char **)llama__gguf_alloc(arena, (n ? n : 1) * sizeof *p);
    const char ***pp = (const char ***)llama__gguf_alloc(arena, (n ? n : 1) * sizeof *pp);
    size_t i;
    if (!p || !pp) return *nomem = 1;
    for (i = 0; i < n; i++) {
        memcpy(&p[i], (const unsigned char *)base + i * stride, sizeof p[i]);
        pp[i] = &p[i];
    }
    qsort(pp, n, sizeof *pp, llama__gguf_name_cmp);
    for (i = 1; i < n; i++)
        if (strcmp(*pp[i - 1], *pp[i]) == 0) return 1;
    return 0;
}

LLAMA_API void llama_gguf_close(llama_gguf *g) {
    if (!g) return;
    llama__gguf_arena_free(g->arena);
    free(g->owned);
    free(g);
}

LLAMA_API const llama_gguf_value *llama_gguf_find(const llama_gguf *g, const char *key) {
    size_t i;
    if (!g || !key) return NULL;
    for (i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i].v;
    return NULL;
}

/* The layout: alignment, data section, tensors aligned, inside the file, disjoint. */
LLAMA_API llama_status llama__gguf_layout(llama_gguf *g, size_t header_end) {
    const llama_gguf_value *a = llama_gguf_find(g, "general.alignment");
    const llama_gguf_tensor **by_off;
    size_t i, data_bytes;
    g->alignment = LLAMA_GGUF_DEFAULT_ALIGNMENT;
    if (a) {
        if (a->type != LLAMA_GGUF_UINT32) return LLAMA_ERR_GGUF_TYPE;
        if (a->u == 0 || (a->u & (a->u - 1)) != 0) return LLAMA_ERR_GGUF_LAYOUT;
        g->alignment = (size_t)a->u;
    }
    g->data_offset = header_end;
    if (g->n_tensors > 0) {
        size_t pad = (g->alignment - header_end % g->alignment) % g->alignment;
        if (g->bytes - header_end < pad) return LLAMA_ERR_TRUNCATED;
        g->data_offset = header_end + pad;
    }
    data_bytes = g->bytes - g->data_offset;
    by_off = (const llama_gguf_tensor **)llama__gguf_alloc(&g->arena, (g->n_tensors ? g->n_tensors : 1) * sizeof *by_off);
    if (!by_off) return LLAMA_ERR_NOMEM;
    for (i = 0; i < g->n_tensors; i++) {
        llama_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0 || t->offset > data_bytes || t->n_bytes > data_bytes - (size_t)t->offset)
            return LLAMA_ERR_GGUF_LAYOUT;
        by_off[i] = t;
    }
    qsort((void *)by_off, g->n_tensors, sizeof *by_off, llama__gguf_offset_cmp);
    for (i = 1; i < g->n_tensors; i++)
        if (by_off[i - 1]->n_bytes > 0 && by_off[i - 1]->offset + by_off[i - 1]->n_bytes > by_off[i]->offset)
            return LLAMA_ERR_GGUF_LAYOUT;
    return LLAMA_OK;
}

LLAMA_API llama_status llama__gguf_parse(const unsigned char *b, size_t bytes, llama_gguf *g) {
    llama__gguf_in in;
    uint32_t magic;
    uint64_t n_tensors, n_kv;
    size_t i, d;
    llama_status st;
    int nomem = 0;
    in.b = b, in.pos = 0, in.end = bytes, in.arena = &g->arena;
    g->bytes = bytes;
    if (bytes >= 4 && (uint32_t)llama__i32(b) != LLAMA_GGUF_MAGIC) return LLAMA_ERR_GGUF;
    if ((st = llama__gguf_read_u32(&in, &magic)) != LLAMA_OK || (st = llama__gguf_read_u32(&in, &g->version)) != LLAMA_OK)
        return st;
    if (g->version != 2 && g->version != 3) return LLAMA_ERR_GGUF_VERSION;
    if ((st = llama__gguf_read_u64(&in, &n_tensors)) != LLAMA_OK || (st = llama__gguf_read_u64(&in, &n_kv)) != LLAMA_OK)
        return st;
    /* A key-value pair takes at least 14 bytes, a tensor info 25. */
    if (n_kv > (bytes - in.pos) / 14 || n_tensors > (bytes - in.pos) / 25) return LLAMA_ERR_TRUNCATED;
    g->n_kv = (size_t)n_kv, g->n_tensors = (size_t)n_tensors;
    g->kv = (llama_gguf_kv *)llama__gguf_alloc(&g->arena, (g->n_kv ? g->n_kv : 1) * sizeof *g->kv);
    g->tensors = (llama_gguf_tensor *)llama__gguf_alloc(&g->arena, (g->n_tensors ? g->n_tensors : 1) * sizeof *g->tensors);
    if (!g->kv || !g->tensors) return LLAMA_ERR_NOMEM;
    for (i = 0; i < g->n_kv; i++) {
        llama_gguf_kv *kv = &g->kv[i];
        uint32_t t;
        if ((st = llama__gguf_read_str(&in, &kv->key, &kv->key_len)) != LLAMA_OK) return st;
        if (kv->key_len == 0 || memchr(kv->key, 0, kv->key_len) ||
            !llama__gguf_utf8((const unsigned char *)kv->key, kv->key_len))
            return LLAMA_ERR_GGUF;
        if ((st = llama__gguf_read_u32(&in, &t)) != LLAMA_OK) return st;
        if ((st = llama__gguf_value(&in, t, 0, &kv->v)) != LLAMA_OK) return st;
    }
    for (i = 0; i < g->n_tensors; i++) {
        llama_gguf_tensor *t = &g->tensors[i];
        size_t len;
        if ((st = llama__gguf_read_str(&in, &t->name, &len)) != LLAMA_OK) return st;
        if (len == 0 || len >= LLAMA_GGUF_MAX_NAME || memchr(t->name, 0, len)) return LLAMA_ERR_GGUF;
        if ((st = llama__gguf_read_u32(&in, &t->n_dims)) != LLAMA_OK) return st;
        if (t->n_dims > LLAMA_GGUF_MAX_DIMS) return LLAMA_ERR_GGUF_TYPE;
        for (d = 0; d < LLAMA_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (d = 0; d < t->n_dims; d++)
            if ((st = llama__gguf_read_u64(&in, &t->ne[d])) != LLAMA_OK) return st;
        if ((st = llama__gguf_read_u32(&in, &t->type)) != LLAMA_OK ||
            (st = llama__gguf_read_u64(&in, &t->offset)) != LLAMA_OK)
            return st;
        if ((st = llama__gguf_tensor_size(t->type, t->n_dims, t->ne, &t->n_elements, &t->n_bytes)) != LLAMA_OK)
            return st;
    }
    if (llama__gguf_has_duplicate(&g->kv[0].key, sizeof *g->kv, g->n_kv, &g->arena, &nomem) ||
        llama__gguf_has_duplicate(&g->tensors[0].name, sizeof *g->tensors, g->n_tensors, &g->arena, &nomem))
        return nomem ? LLAMA_ERR_NOMEM : LLAMA_ERR_GGUF;
    if ((st = llama__gguf_layout(g, in.pos)) != LLAMA_OK) return st;
    for (i = 0; i < g->n_tensors; i++) g->tensors[i].data = b + g->data_offset + (size_t)g->tensors[i].offset;
    return LLAMA_OK;
}

LLAMA_API llama_status llama__gguf_open(const unsigned char *b, size_t bytes, unsigned char *owned, llama_gguf **out) {
    llama_gguf *g = (llama_gguf *)calloc(1, sizeof *g);
    llama_status st;
    if (!g) {
        free(owned);
        return LLAMA_ERR_NOMEM;
    }
    g->owned = owned;
    if ((st = llama__gguf_parse(b, bytes, g)) != LLAMA_OK) {
        llama_gguf_close(g);
        return st;
    }
    *out = g;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_open_mem(const void *buffer, size_t bytes, llama_gguf **out) {
    if (!buffer || !out) return LLAMA_ERR_ARG;
    return llama__gguf_open((const unsigned char *)buffer, bytes, NULL, out);
}

/* 1 when path names something that is not a regular file. */
LLAMA_API int llama__gguf_not_regular(const char *path) {
#if defined(__unix__) || defined(__APPLE__)
    struct stat sb;
    return stat(path, &sb) == 0 && !S_ISREG(sb.st_mode);
#else
    (void)path;
    return 0;
#endif
}

/* The whole regular file at path, at most limit bytes, into malloc'd
   memory with a NUL after it (for the tokenizer files as well). */
LLAMA_API llama_status llama__read_file(const char *path, size_t limit, char **data, size_t *bytes) {
    FILE *f;
    long len;
    char *buf;
    if (llama__gguf_not_regular(path)) return LLAMA_ERR_IO;
    if (!(f = fopen(path, "rb"))) return LLAMA_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (unsigned long)len > limit || (unsigned long)len >= (size_t)-1) {
        fclose(f);
        return LLAMA_ERR_IO;
    }
    if (!(buf = (char *)malloc((size_t)len + 1))) {
        fclose(f);
        return LLAMA_ERR_NOMEM;
    }
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return LLAMA_ERR_IO;
    }
    fclose(f);
    buf[len] = '\0';
    *data = buf;
    *bytes = (size_t)len;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_open(const char *path, llama_gguf **out) {
    char *buf;
    size_t len;
    llama_status st;
    if (!path || !out) return LLAMA_ERR_ARG;
    if ((st = llama__read_file(path, LLAMA_GGUF_MAX_FILE, &buf, &len)) != LLAMA_OK) return st;
    return llama__gguf_open((unsigned char *)buf, len, (unsigned char *)buf, out);
}

/* >>gguf-lookup ------------------------------------------------------------ */

LLAMA_API llama_status llama__gguf_get(const llama_gguf *g, const char *key, const llama_gguf_value **v) {
    if (!g || !key) return LLAMA_ERR_ARG;
    return (*v = llama_gguf_find(g, key)) ? LLAMA_OK : LLAMA_ERR_GGUF_KEY;
}

LLAMA_API int llama__gguf_is_signed(llama_gguf_type t) {
    return t == LLAMA_GGUF_INT8 || t == LLAMA_GGUF_INT16 || t == LLAMA_GGUF_INT32 || t == LLAMA_GGUF_INT64;
}

LLAMA_API int llama__gguf_is_unsigned(llama_gguf_type t) {
    return t == LLAMA_GGUF_UINT8 || t == LLAMA_GGUF_UINT16 || t == LLAMA_GGUF_UINT32 || t == LLAMA_GGUF_UINT64;
}

LLAMA_API llama_status llama_gguf_get_u64(const llama_gguf *g, const char *key, uint64_t *out) {
    const llama_gguf_value *v;
    llama_status st = llama__gguf_get(g, key, &v);
    if (st != LLAMA_OK || !out) return st != LLAMA_OK ? st : LLAMA_ERR_ARG;
    if (llama__gguf_is_unsigned(v->type)) *out = v->u;
    else if (llama__gguf_is_signed(v->type) && v->i >= 0) *out = (uint64_t)v->i;
    else return LLAMA_ERR_GGUF_TYPE;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_get_i64(const llama_gguf *g, const char *key, int64_t *out) {
    const llama_gguf_value *v;
    llama_status st = llama__gguf_get(g, key, &v);
    if (st != LLAMA_OK || !out) return st != LLAMA_OK ? st : LLAMA_ERR_ARG;
    if (llama__gguf_is_signed(v->type)) *out = v->i;
    else if (llama__gguf_is_unsigned(v->type) && v->u <= (uint64_t)INT64_MAX) *out = (int64_t)v->u;
    else return LLAMA_ERR_GGUF_TYPE;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_get_f64(const llama_gguf *g, const char *key, double *out) {
    const llama_gguf_value *v;
    llama_status st = llama__gguf_get(g, key, &v);
    if (st != LLAMA_OK || !out) return st != LLAMA_OK ? st : LLAMA_ERR_ARG;
    if (v->type != LLAMA_GGUF_FLOAT32 && v->type != LLAMA_GGUF_FLOAT64) return LLAMA_ERR_GGUF_TYPE;
    *out = v->f;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_get_bool(const llama_gguf *g, const char *key, int *out) {
    const llama_gguf_value *v;
    llama_status st = llama__gguf_get(g, key, &v);
    if (st != LLAMA_OK || !out) return st != LLAMA_OK ? st : LLAMA_ERR_ARG;
    if (v->type != LLAMA_GGUF_BOOL) return LLAMA_ERR_GGUF_TYPE;
    *out = (int)v->u;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_get_str(const llama_gguf *g, const char *key, const char **s, size_t *len) {
    const llama_gguf_value *v;
    llama_status st = llama__gguf_get(g, key, &v);
    if (st != LLAMA_OK || !s) return st != LLAMA_OK ? st : LLAMA_ERR_ARG;
    if (v->type != LLAMA_GGUF_STRING) return LLAMA_ERR_GGUF_TYPE;
    *s = v->str;
    if (len) *len = v->len;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_get_strs(const llama_gguf *g, const char *key, const char *const **strs,
                                             const size_t **lens, size_t *n) {
    const llama_gguf_value *v;
    llama_status st = llama__gguf_get(g, key, &v);
    if (st != LLAMA_OK || !strs || !lens || !n) return st != LLAMA_OK ? st : LLAMA_ERR_ARG;
    if (v->type != LLAMA_GGUF_ARRAY || v->elem != LLAMA_GGUF_STRING) return LLAMA_ERR_GGUF_TYPE;
    *strs = v->strs, *lens = v->lens, *n = v->n;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_get_array(const llama_gguf *g, const char *key, llama_gguf_type *elem,
                                              const void **data, size_t *n) {
    const llama_gguf_value *v;
    llama_status st = llama__gguf_get(g, key, &v);
    if (st != LLAMA_OK || !elem || !data || !n) return st != LLAMA_OK ? st : LLAMA_ERR_ARG;
    if (v->type != LLAMA_GGUF_ARRAY || !v->data) return LLAMA_ERR_GGUF_TYPE;
    *elem = v->elem, *data = v->data, *n = v->n;
    return LLAMA_OK;
}

LLAMA_API const llama_gguf_tensor *llama_gguf_tensor_find(const llama_gguf *g, const char *name) {
    size_t i;
    if (!g || !name) return NULL;
    for (i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}


/* >>gguf-write ------------------------------------------------------------- */

typedef struct llama__gguf_wtensor {
    const char *name;
    uint32_t type, n_dims;
    uint64_t ne[LLAMA_GGUF_MAX_DIMS];
    const unsigned char *data;
    size_t n_bytes;
} llama__gguf_wtensor;

typedef struct llama_gguf_writer {
    size_t n_kv, cap_kv, n_tensors, cap_tensors;
    llama_gguf_kv *kv;
    llama__gguf_wtensor *tensors;
    llama__gguf_chunk *arena; /* every copy the writer keeps */
} llama_gguf_writer;

LLAMA_API llama_status llama_gguf_writer_create(llama_gguf_writer **out) {
    if (!out) return LLAMA_ERR_ARG;
    return (*out = (llama_gguf_writer *)calloc(1, sizeof **out)) ? LLAMA_OK : LLAMA_ERR_NOMEM;
}

LLAMA_API void llama_gguf_writer_free(llama_gguf_writer *w) {
    if (!w) return;
    free(w->kv);
    free(w->tensors);
    llama__gguf_arena_free(w->arena);
    free(w);
}

LLAMA_API char *llama__gguf_strdup(llama__gguf_chunk **arena, const char *s, size_t len) {
    char *c = (char *)llama__gguf_alloc(arena, len + 1);
    if (c) {
        if (len) memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

/* A scalar fits its type (the writer refuses what the reader would not give back). */
LLAMA_API int llama__gguf_fits(const llama_gguf_value *v) {
    switch (v->type) {
    case LLAMA_GGUF_UINT8: return v->u <= 0xFF;
    case LLAMA_GGUF_UINT16: return v->u <= 0xFFFF;
    case LLAMA_GGUF_UINT32: return v->u <= 0xFFFFFFFFu;
    case LLAMA_GGUF_BOOL: return v->u <= 1;
    case LLAMA_GGUF_INT8: return v->i >= -128 && v->i <= 127;
    case LLAMA_GGUF_INT16: return v->i >= -32768 && v->i <= 32767;
    case LLAMA_GGUF_INT32: return v->i >= INT32_MIN && v->i <= INT32_MAX;
    default: return v->type < LLAMA_GGUF_TYPE_COUNT;
    }
}

/* A deep copy of v into the writer's arena, checked like the reader checks. */
LLAMA_API llama_status llama__gguf_copy_value(llama__gguf_chunk **arena, const llama_gguf_value *v, int depth,
                                                llama_gguf_value *out) {
    size_t i, n = v->n, bytes;
    *out = *v;
    if (v->type == LLAMA_GGUF_STRING) {
        if (!v->str && v->len) return LLAMA_ERR_ARG;
        return (out->str = llama__gguf_strdup(arena, v->str, v->len)) ? LLAMA_OK : LLAMA_ERR_NOMEM;
    }
    if (v->type != LLAMA_GGUF_ARRAY) return llama__gguf_fits(v) ? LLAMA_OK : LLAMA_ERR_ARG;
    if (depth >= LLAMA_GGUF_MAX_DEPTH || v->elem >= LLAMA_GGUF_TYPE_COUNT) return LLAMA_ERR_ARG;
    out->data = NULL, out->strs = NULL, out->lens = NULL, out->items = NULL;
    if (v->elem == LLAMA_GGUF_STRING) {
        const char **strs;
        size_t *lens;
        if (n && (!v->strs || !v->lens)) return LLAMA_ERR_ARG;
        if (!llama__mul(n ? n : 1, sizeof *strs, &bytes)) return LLAMA_ERR_NOMEM;
        strs = (const char **)llama__gguf_alloc(arena, bytes);
        lens = (size_t *)llama__gguf_alloc(arena, (n ? n : 1) * sizeof *lens);
        if (!strs || !lens) return LLAMA_ERR_NOMEM;
        for (i = 0; i < n; i++) {
            if (!v->strs[i] && v->lens[i]) return LLAMA_ERR_ARG;
            if (!(strs[i] = llama__gguf_strdup(arena, v->strs[i], v->lens[i]))) return LLAMA_ERR_NOMEM;
            lens[i] = v->lens[i];
        }
        out->strs = strs, out->lens = lens;
    } else if (v->elem == LLAMA_GGUF_ARRAY) {
        llama_gguf_value *items;
        llama_status st;
        if (n && !v->items) return LLAMA_ERR_ARG;
        if (!llama__mul(n ? n : 1, sizeof *items, &bytes)) return LLAMA_ERR_NOMEM;
        if (!(items = (llama_gguf_value *)llama__gguf_alloc(arena, bytes))) return LLAMA_ERR_NOMEM;
        for (i = 0; i < n; i++) {
            if (v->items[i].type != LLAMA_GGUF_ARRAY) return LLAMA_ERR_ARG;
            if ((st = llama__gguf_copy_value(arena, &v->items[i], depth + 1, &items[i])) != LLAMA_OK) return st;
        }
        out->items = items;
    } else {
        void *data;
        if (n && !v->data) return LLAMA_ERR_ARG;
        if (!llama__mul(n ? n : 1, llama__gguf_native_size(v->elem), &bytes)) return LLAMA_ERR_NOMEM;
        if (!(data = llama__gguf_alloc(arena, bytes))) return LLAMA_ERR_NOMEM;
        if (n) memcpy(data, v->data, n * llama__gguf_native_size(v->elem));
        if (v->elem == LLAMA_GGUF_BOOL)
            for (i = 0; i < n; i++)
                if (((const uint8_t *)data)[i] > 1) return LLAMA_ERR_ARG;
        out->data = data;
    }
    return LLAMA_OK;
}

/* Grow an array of elements of `size` bytes to hold one more. */
LLAMA_API int llama__gguf_grow(void **p, size_t *cap, size_t n, size_t size) {
    void *q;
    size_t c = *cap ? *cap * 2 : 16;
    if (n < *cap) return 1;
    if (c > (size_t)-1 / size || !(q = realloc(*p, c * size))) return 0;
    *p = q, *cap = c;
    return 1;
}

LLAMA_API llama_status llama_gguf_writer_set(llama_gguf_writer *w, const char *key, const llama_gguf_value *v) {
    llama_gguf_kv kv;
    size_t i, len;
    llama_status st;
    if (!w || !key || !v || !(len = strlen(key)) || !llama__gguf_utf8((const unsigned char *)key, len))
        return LLAMA_ERR_ARG;
    for (i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) return LLAMA_ERR_ARG;
    if (!llama__gguf_grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) return LLAMA_ERR_NOMEM;
    if (!(kv.key = llama__gguf_strdup(&w->arena, key, len))) return LLAMA_ERR_NOMEM;
    kv.key_len = len;
    if ((st = llama__gguf_copy_value(&w->arena, v, 0, &kv.v)) != LLAMA_OK) return st;
    w->kv[w->n_kv++] = kv;
    return LLAMA_OK;
}

LLAMA_API llama_status llama__gguf_set_scalar(llama_gguf_writer *w, const char *key, llama_gguf_type t, uint64_t u,
                                                int64_t i, double f) {
    llama_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = t, v.u = u, v.i = i, v.f = f;
    return llama_gguf_writer_set(w, key, &v);
}

LLAMA_API llama_status llama_gguf_writer_set_u32(llama_gguf_writer *w, const char *key, uint32_t x) {
    return llama__gguf_set_scalar(w, key, LLAMA_GGUF_UINT32, x, 0, 0.0);
}

LLAMA_API llama_status llama_gguf_writer_set_i32(llama_gguf_writer *w, const char *key, int32_t x) {
    return llama__gguf_set_scalar(w, key, LLAMA_GGUF_INT32, 0, x, 0.0);
}

LLAMA_API llama_status llama_gguf_writer_set_f32(llama_gguf_writer *w, const char *key, float x) {
    return llama__gguf_set_scalar(w, key, LLAMA_GGUF_FLOAT32, 0, 0, x);
}

LLAMA_API llama_status llama_gguf_writer_set_bool(llama_gguf_writer *w, const char *key, int x) {
    return llama__gguf_set_scalar(w, key, LLAMA_GGUF_BOOL, x != 0, 0, 0.0);
}

LLAMA_API llama_status llama_gguf_writer_set_str(llama_gguf_writer *w, const char *key, const char *s) {
    llama_gguf_value v;
    if (!s) return LLAMA_ERR_ARG;
    memset(&v, 0, sizeof v);
    v.type = LLAMA_GGUF_STRING, v.str = s, v.len = strlen(s);
    return llama_gguf_writer_set(w, key, &v);
}

/* lens NULL: every string NUL-terminated. */
LLAMA_API llama_status llama_gguf_writer_set_strs(llama_gguf_writer *w, const char *key, const char *const *strs,
                                                    const size_t *lens, size_t n) {
    llama_gguf_value v;
    size_t *own = NULL, i;
    llama_status st;
    if (!strs && n) return LLAMA_ERR_ARG;
    if (!lens && n) {
        if (!(own = (size_t *)malloc(n * sizeof *own))) return LLAMA_ERR_NOMEM;
        for (i = 0; i < n; i++) own[i] = strs[i] ? strlen(strs[i]) : 0;
    }
    memset(&v, 0, sizeof v);
    v.type = LLAMA_GGUF_ARRAY, v.elem = LLAMA_GGUF_STRING, v.n = n, v.strs = strs, v.lens = lens ? lens : own;
    st = llama_gguf_writer_set(w, key, &v);
    free(own);
    return st;
}

/* data: n native values of type elem (uint8_t for BOOL). */
LLAMA_API llama_status llama_gguf_writer_set_array(llama_gguf_writer *w, const char *key, llama_gguf_type elem,
                                                     const void *data, size_t n) {
    llama_gguf_value v;
    if (elem == LLAMA_GGUF_STRING || elem == LLAMA_GGUF_ARRAY) return LLAMA_ERR_ARG;
    memset(&v, 0, sizeof v);
    v.type = LLAMA_GGUF_ARRAY, v.elem = elem, v.n = n, v.data = data;
    return llama_gguf_writer_set(w, key, &v);
}

/* A tensor slot: name, shape and room for its bytes in the arena. */
LLAMA_API llama_status llama__gguf_new_tensor(llama_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                                const uint64_t *ne, llama__gguf_wtensor **out, size_t *n_elements) {
    llama__gguf_wtensor t;
    size_t i, len;
    llama_status st;
    if (!w || !name || (!ne && n_dims)) return LLAMA_ERR_ARG;
    len = strlen(name);
    if (len == 0 || len >= LLAMA_GGUF_MAX_NAME) return LLAMA_ERR_ARG;
    for (i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return LLAMA_ERR_ARG;
    if (n_dims > LLAMA_GGUF_MAX_DIMS) return LLAMA_ERR_GGUF_TYPE;
    memset(&t, 0, sizeof t);
    t.type = type, t.n_dims = n_dims;
    for (i = 0; i < LLAMA_GGUF_MAX_DIMS; i++) t.ne[i] = i < n_dims ? ne[i] : 1;
    if ((st = llama__gguf_tensor_size(type, n_dims, t.ne, n_elements, &t.n_bytes)) != LLAMA_OK) return st;
    if (!llama__gguf_grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors))
        return LLAMA_ERR_NOMEM;
    if (!(t.name = llama__gguf_strdup(&w->arena, name, len)) ||
        !(t.data = (const unsigned char *)llama__gguf_alloc(&w->arena, t.n_bytes ? t.n_bytes : 1)))
        return LLAMA_ERR_NOMEM;
    w->tensors[w->n_tensors] = t;
    *out = &w->tensors[w->n_tensors];
    return LLAMA_OK;
}

/* Ready little-endian blocks of `type` (bytes must be the shape's size). */
LLAMA_API llama_status llama_gguf_writer_add_raw(llama_gguf_writer *w, const char *name, uint32_t type,
                                                   uint32_t n_dims, const uint64_t *ne, const void *blocks,
                                                   size_t bytes) {
    llama__gguf_wtensor *t;
    size_t n;
    llama_status st;
    if (!blocks && bytes) return LLAMA_ERR_ARG;
    if ((st = llama__gguf_new_tensor(w, name, type, n_dims, ne, &t, &n)) != LLAMA_OK) return st;
    if (t->n_bytes != bytes) return LLAMA_ERR_ARG;
    if (bytes) memcpy((void *)t->data, blocks, bytes);
    w->n_tensors++;
    return LLAMA_OK;
}

/* ggml's quantize_row_q8_0_ref on one block of 32. */
LLAMA_API void llama__gguf_q8_0(const float *x, unsigned char *b) {
    float amax = 0.0f, d, id;
    uint16_t h;
    int j;
    for (j = 0; j < 32; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
    d = amax / 127.0f;
    id = d != 0.0f ? 1.0f / d : 0.0f;
    h = llama__gguf_to_f16(d);
    b[0] = (unsigned char)(h & 0xFF), b[1] = (unsigned char)(h >> 8);
    for (j = 0; j < 32; j++) b[2 + j] = (unsigned char)(signed char)roundf(x[j] * id);
}

/* ggml's quantize_row_q4_0_ref on one block of 32: the signed value of
   largest magnitude maps to -8, codes truncate x / d + 8.5, capped at 15. */
LLAMA_API void llama__gguf_q4_0(const float *x, unsigned char *b) {
    float amax = 0.0f, max = 0.0f, d, id;
    uint16_t h;
    int j;
    for (j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
    d = max / -8.0f;
    id = d != 0.0f ? 1.0f / d : 0.0f;
    h = llama__gguf_to_f16(d);
    b[0] = (unsigned char)(h & 0xFF), b[1] = (unsigned char)(h >> 8);
    for (j = 0; j < 16; j++) {
        int x0 = (int)(x[j] * id + 8.5f), x1 = (int)(x[16 + j] * id + 8.5f);
        b[2 + j] = (unsigned char)((x0 < 15 ? x0 : 15) | (x1 < 15 ? x1 : 15) << 4);
    }
}

/* x[n_elements] converted to F32, F16, Q8_0 or Q4_0 (finite values only). */
LLAMA_API llama_status llama_gguf_writer_add_f32(llama_gguf_writer *w, const char *name, uint32_t type,
                                                   uint32_t n_dims, const uint64_t *ne, const float *x) {
    llama__gguf_wtensor *t;
    unsigned char *b;
    size_t n, i;
    llama_status st;
    if (type != LLAMA_GGUF_F32 && type != LLAMA_GGUF_F16 && type != LLAMA_GGUF_Q8_0 && type != LLAMA_GGUF_Q4_0)
        return LLAMA_ERR_GGUF_TYPE;
    if ((st = llama__gguf_new_tensor(w, name, type, n_dims, ne, &t, &n)) != LLAMA_OK) return st;
    if (!x && n) return LLAMA_ERR_ARG;
    for (i = 0; i < n; i++)
        if (!(fabsf(x[i]) <= FLT_MAX)) return LLAMA_ERR_NONFINITE;
    b = (unsigned char *)t->data;
    for (i = 0; type == LLAMA_GGUF_F32 && i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        b[4 * i] = (unsigned char)u, b[4 * i + 1] = (unsigned char)(u >> 8);
        b[4 * i + 2] = (unsigned char)(u >> 16), b[4 * i + 3] = (unsigned char)(u >> 24);
    }
    for (i = 0; type == LLAMA_GGUF_F16 && i < n; i++) {
        uint16_t h = llama__gguf_to_f16(x[i]);
        b[2 * i] = (unsigned char)(h & 0xFF), b[2 * i + 1] = (unsigned char)(h >> 8);
    }
    for (i = 0; type == LLAMA_GGUF_Q8_0 && i < n / 32; i++) llama__gguf_q8_0(x + 32 * i, b + 34 * i);
    for (i = 0; type == LLAMA_GGUF_Q4_0 && i < n / 32; i++) llama__gguf_q4_0(x + 32 * i, b + 18 * i);
    w->n_tensors++;
    return LLAMA_OK;
}

/* The serialized file, grown in memory up to the data section. */
typedef struct llama__gguf_out {
    unsigned char *b;
    size_t n, cap;
    int nomem;
} llama__gguf_out;

LLAMA_API void llama__gguf_put(llama__gguf_out *o, const void *p, size_t n) {
    if (o->nomem) return;
    if (o->cap - o->n < n) {
        size_t c = o->cap ? o->cap : 4096;
        unsigned char *q;
        while (c - o->n < n && c <= (size_t)-1 / 2) c *= 2;
        if (c - o->n < n || !(q = (unsigned char *)realloc(o->b, c))) {
            o->nomem = 1;
            return;
        }
        o->b = q, o->cap = c;
    }
    if (n) memcpy(o->b + o->n, p, n);
    o->n += n;
}

LLAMA_API void llama__gguf_put_uint(llama__gguf_out *o, uint64_t v, size_t bytes) {
    unsigned char b[8];
    size_t i;
    for (i = 0; i < bytes; i++) b[i] = (unsigned char)(v >> (8 * i));
    llama__gguf_put(o, b, bytes);
}

LLAMA_API void llama__gguf_put_str(llama__gguf_out *o, const char *s, size_t len) {
    llama__gguf_put_uint(o, len, 8);
    llama__gguf_put(o, s, len);
}

/* Native element i of a numeric array as a scalar value (llama__gguf_store's inverse). */
LLAMA_API void llama__gguf_load(const void *data, size_t i, llama_gguf_type t, llama_gguf_value *s) {
    memset(s, 0, sizeof *s);
    s->type = t;
    switch (t) {
    case LLAMA_GGUF_UINT8: case LLAMA_GGUF_BOOL: s->u = ((const uint8_t *)data)[i]; break;
    case LLAMA_GGUF_INT8: s->i = ((const int8_t *)data)[i]; break;
    case LLAMA_GGUF_UINT16: s->u = ((const uint16_t *)data)[i]; break;
    case LLAMA_GGUF_INT16: s->i = ((const int16_t *)data)[i]; break;
    case LLAMA_GGUF_UINT32: s->u = ((const uint32_t *)data)[i]; break;
    case LLAMA_GGUF_INT32: s->i = ((const int32_t *)data)[i]; break;
    case LLAMA_GGUF_FLOAT32: s->f = ((const float *)data)[i]; break;
    case LLAMA_GGUF_UINT64: s->u = ((const uint64_t *)data)[i]; break;
    case LLAMA_GGUF_INT64: s->i = ((const int64_t *)data)[i]; break;
    default: s->f = ((const double *)data)[i]; break;
    }
}

/* A scalar in its file bytes. */
LLAMA_API void llama__gguf_put_scalar(llama__gguf_out *o, const llama_gguf_value *v) {
    uint64_t bits;
    if (v->type == LLAMA_GGUF_FLOAT32) {
        float f = (float)v->f;
        uint32_t u;
        memcpy(&u, &f, 4);
        bits = u;
    } else if (v->type == LLAMA_GGUF_FLOAT64) {
        memcpy(&bits, &v->f, 8);
    } else {
        bits = llama__gguf_is_signed(v->type) ? (uint64_t)v->i : v->u;
    }
    llama__gguf_put_uint(o, bits, llama__gguf_scalar_size(v->type));
}

LLAMA_API void llama__gguf_put_value(llama__gguf_out *o, const llama_gguf_value *v) {
    size_t i;
    if (v->type == LLAMA_GGUF_STRING) {
        llama__gguf_put_str(o, v->str, v->len);
        return;
    }
    if (v->type != LLAMA_GGUF_ARRAY) {
        llama__gguf_put_scalar(o, v);
        return;
    }
    llama__gguf_put_uint(o, (uint64_t)v->elem, 4);
    llama__gguf_put_uint(o, v->n, 8);
    for (i = 0; i < v->n; i++) {
        if (v->elem == LLAMA_GGUF_STRING) llama__gguf_put_str(o, v->strs[i], v->lens[i]);
        else if (v->elem == LLAMA_GGUF_ARRAY) llama__gguf_put_value(o, &v->items[i]);
        else {
            llama_gguf_value s;
            llama__gguf_load(v->data, i, v->elem, &s);
            llama__gguf_put_scalar(o, &s);
        }
    }
}

/* The header, tensor infos and padding up to the data section; the
   alignment and total file size. */
LLAMA_API llama_status llama__gguf_header(const llama_gguf_writer *w, llama__gguf_out *o, size_t *align,
                                            size_t *total) {
    static const unsigned char zeros[LLAMA_GGUF_DEFAULT_ALIGNMENT] = { 0 };
    size_t i, d, off = 0, a = LLAMA_GGUF_DEFAULT_ALIGNMENT;
    for (i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, "general.alignment") == 0) {
            const llama_gguf_value *v = &w->kv[i].v;
            if (v->type != LLAMA_GGUF_UINT32 || v->u == 0 || (v->u & (v->u - 1)) != 0) return LLAMA_ERR_GGUF_LAYOUT;
            a = (size_t)v->u;
        }
    llama__gguf_put_uint(o, LLAMA_GGUF_MAGIC, 4);
    llama__gguf_put_uint(o, 3, 4);
    llama__gguf_put_uint(o, w->n_tensors, 8);
    llama__gguf_put_uint(o, w->n_kv, 8);
    for (i = 0; i < w->n_kv; i++) {
        llama__gguf_put_str(o, w->kv[i].key, w->kv[i].key_len);
        llama__gguf_put_uint(o, (uint64_t)w->kv[i].v.type, 4);
        llama__gguf_put_value(o, &w->kv[i].v);
    }
    for (i = 0; i < w->n_tensors; i++) {
        const llama__gguf_wtensor *t = &w->tensors[i];
        llama__gguf_put_str(o, t->name, strlen(t->name));
        llama__gguf_put_uint(o, t->n_dims, 4);
        for (d = 0; d < t->n_dims; d++) llama__gguf_put_uint(o, t->ne[d], 8);
        llama__gguf_put_uint(o, t->type, 4);
        llama__gguf_put_uint(o, off, 8);
        if (t->n_bytes > (size_t)-1 - a - off) return LLAMA_ERR_NOMEM;
        off += (t->n_bytes + a - 1) / a * a;
    }
    while (w->n_tensors > 0 && o->n % a != 0) {
        size_t pad = a - o->n % a;
        llama__gguf_put(o, zeros, pad < sizeof zeros ? pad : sizeof zeros);
    }
    if (o->nomem || off > (size_t)-1 - o->n) return LLAMA_ERR_NOMEM;
    *align = a, *total = o->n + off;
    return LLAMA_OK;
}

/* The whole file into dst (mem) or f. */
LLAMA_API llama_status llama__gguf_emit(const llama_gguf_writer *w, unsigned char **mem, size_t *bytes, FILE *f) {
    static const unsigned char zeros[256] = { 0 };
    llama__gguf_out o;
    size_t a, total, i, pos;
    unsigned char *dst = NULL;
    llama_status st;
    memset(&o, 0, sizeof o);
    if ((st = llama__gguf_header(w, &o, &a, &total)) != LLAMA_OK) {
        free(o.b);
        return st;
    }
    if (mem && !(dst = (unsigned char *)malloc(total ? total : 1))) st = LLAMA_ERR_NOMEM;
    pos = o.n;
    if (st == LLAMA_OK) {
        if (dst) memcpy(dst, o.b, o.n);
        else if (fwrite(o.b, 1, o.n, f) != o.n) st = LLAMA_ERR_IO;
    }
    for (i = 0; i < w->n_tensors && st == LLAMA_OK; i++) {
        const llama__gguf_wtensor *t = &w->tensors[i];
        size_t pad = (a - t->n_bytes % a) % a;
        if (dst) {
            memcpy(dst + pos, t->data, t->n_bytes);
            memset(dst + pos + t->n_bytes, 0, pad);
        } else {
            if (fwrite(t->data, 1, t->n_bytes, f) != t->n_bytes) st = LLAMA_ERR_IO;
            while (st == LLAMA_OK && pad > 0) {
                size_t k = pad < sizeof zeros ? pad : sizeof zeros;
                if (fwrite(zeros, 1, k, f) != k) st = LLAMA_ERR_IO;
                pad -= k;
            }
        }
        pos += t->n_bytes + (a - t->n_bytes % a) % a;
    }
    free(o.b);
    if (st != LLAMA_OK) {
        free(dst);
        return st;
    }
    if (mem) *mem = dst, *bytes = total;
    return LLAMA_OK;
}

LLAMA_API llama_status llama_gguf_writer_write_mem(const llama_gguf_writer *w, void **buffer, size_t *bytes) {
    unsigned char *b;
    size_t n;
    llama_status st;
    if (!w || !buffer || !bytes) return LLAMA_ERR_ARG;
    if ((st = llama__gguf_emit(w, &b, &n, NULL)) != LLAMA_OK) return st;
    *buffer = b, *bytes = n;
    return LLAMA_OK;
}

/* What llama__write_file writes into the open temporary file. */
typedef llama_status (*llama__emit)(void *user, FILE *f);

/* Every file of the engine is written to "<path>.tmpN" beside the target
   (opened exclusively), then renamed over it: a reader of path sees the old
   file or the whole new one. A target that exists and is not a regular file
   is refused. */
LLAMA_API llama_status llama__write_file(const char *path, llama__emit emit, void *user) {
    char *tmp;
    size_t len;
    FILE *f = NULL;
    llama_status st;
    int k;
    if (!path || !*path) return LLAMA_ERR_ARG;
    if (llama__gguf_not_regular(path)) return LLAMA_ERR_IO;
    len = strlen(path);
    if (!(tmp = (char *)malloc(len + 16))) return LLAMA_ERR_NOMEM;
    for (k = 0; k < 100 && !f; k++) {
        snprintf(tmp, len + 16, "%s.tmp%d", path, k);
        f = fopen(tmp, "wbx");
    }
    if (!f) {
        free(tmp);
        return LLAMA_ERR_IO;
    }
    st = emit(user, f);
    if (fclose(f) != 0 && st == LLAMA_OK) st = LLAMA_ERR_IO;
    if (st == LLAMA_OK && rename(tmp, path) != 0) st = LLAMA_ERR_IO;
    if (st != LLAMA_OK) remove(tmp);
    free(tmp);
    return st;
}

LLAMA_API llama_status llama__gguf_emit_file(void *w, FILE *f) {
    return llama__gguf_emit((const llama_gguf_writer *)w, NULL, NULL, f);
}

LLAMA_API llama_status llama_gguf_writer_write(const llama_gguf_writer *w, const char *path) {
    if (!w) return LLAMA_ERR_ARG;
    return llama__write_file(path, llama__gguf_emit_file, (void *)w);
}

#endif /* LLAMA_GGUF_H */
