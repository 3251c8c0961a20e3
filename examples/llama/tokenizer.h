/* tokenizer.h - llama2.c tokenizers (SentencePiece-style, with byte fallback
   where the vocabulary has it) and the protocol's story stream. */
#ifndef LLAMA_TOKENIZER_H
#define LLAMA_TOKENIZER_H
#include "model.h"
/* >>tokenizer -------------------------------------------------------------- */

typedef struct llama_piece {
    const char *str;
    int len, id;
} llama_piece;

typedef struct llama_tokenizer {
    int vocab_size, max_token_length;
    int byte_fallback;      /* ids 3..258 are <0x00>..<0xFF> */
    char *text;             /* every piece, NUL-terminated, back to back */
    llama_piece *pieces;   /* by id */
    llama_piece *sorted;   /* by (bytes, id), for lookup */
    float *scores;
} llama_tokenizer;

LLAMA_API int llama__piece_cmp(const void *a, const void *b) {
    const llama_piece *x = (const llama_piece *)a, *y = (const llama_piece *)b;
    int n = x->len < y->len ? x->len : y->len, c = memcmp(x->str, y->str, (size_t)n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The id of a piece, the lowest if repeated, or -1. */
LLAMA_API int llama__lookup(const llama_tokenizer *t, const char *s, int len) {
    llama_piece key;
    size_t lo = 0, hi = (size_t)t->vocab_size;
    key.str = s, key.len = len, key.id = -1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (llama__piece_cmp(&t->sorted[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < (size_t)t->vocab_size && t->sorted[lo].len == len && memcmp(t->sorted[lo].str, s, (size_t)len) == 0)
        return t->sorted[lo].id;
    return -1;
}

LLAMA_API void llama_tokenizer_free(llama_tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->pieces);
    free(t->sorted);
    free(t->scores);
    memset(t, 0, sizeof *t);
}

/* A tokenizer.bin image: int32 max_token_length, then per piece f32 score,
   int32 length, bytes. The file does not store the count, so the whole file
   is parsed and its count compared with the model's vocab_size. */
LLAMA_API llama_status llama_tokenizer_load_mem(const void *buffer, size_t bytes, int vocab_size,
                                                   llama_tokenizer *out) {
    const unsigned char *b = (const unsigned char *)buffer;
    size_t p = 4, count = 0, text_bytes = 0;
    llama_tokenizer t;
    int i;
    if (!buffer || !out || vocab_size <= 0) return LLAMA_ERR_ARG;
    if (bytes < 4) return LLAMA_ERR_TOKENIZER;
    memset(&t, 0, sizeof t);
    t.max_token_length = llama__i32(b);
    if (t.max_token_length < 1 || t.max_token_length > 65536) return LLAMA_ERR_TOKENIZER;
    while (p < bytes) { /* pass 1: validate and count */
        int32_t len;
        if (bytes - p < 8) return LLAMA_ERR_TOKENIZER;
        len = llama__i32(b + p + 4);
        if (!(fabsf(llama__f32(b + p)) <= FLT_MAX) || len < 1 || len > t.max_token_length ||
            bytes - p - 8 < (size_t)len || memchr(b + p + 8, 0, (size_t)len))
            return LLAMA_ERR_TOKENIZER;
        p += 8 + (size_t)len;
        text_bytes += (size_t)len + 1;
        count++;
    }
    if (count != (size_t)vocab_size) return LLAMA_ERR_VOCAB;
    if (vocab_size <= LLAMA_EOS) return LLAMA_ERR_SMALL_VOCAB; /* encode emits <unk> and BOS */
    t.vocab_size = vocab_size;
    t.text = (char *)malloc(text_bytes);
    t.pieces = (llama_piece *)malloc(count * sizeof *t.pieces);
    t.sorted = (llama_piece *)malloc(count * sizeof *t.sorted);
    t.scores = (float *)malloc(count * sizeof *t.scores);
    if (!t.text || !t.pieces || !t.sorted || !t.scores) {
        llama_tokenizer_free(&t);
        return LLAMA_ERR_NOMEM;
    }
    for (i = 0, p = 4, text_bytes = 0; i < vocab_size; i++) { /* pass 2: copy */
        int len = llama__i32(b + p + 4);
        t.scores[i] = llama__f32(b + p);
        memcpy(t.text + text_bytes, b + p + 8, (size_t)len);
        t.text[text_bytes + (size_t)len] = '\0';
        t.pieces[i].str = t.text + text_bytes;
        t.pieces[i].len = len;
        t.pieces[i].id = i;
        p += 8 + (size_t)len;
        text_bytes += (size_t)len + 1;
    }
    memcpy(t.sorted, t.pieces, count * sizeof *t.sorted);
    qsort(t.sorted, count, sizeof *t.sorted, llama__piece_cmp);
    t.byte_fallback = vocab_size >= 259 && strcmp(t.pieces[3].str, "<0x00>") == 0 &&
                      strcmp(t.pieces[258].str, "<0xFF>") == 0;
    *out = t;
    return LLAMA_OK;
}

/* Reads the whole file into memory, then parses it (tokenizers are small:
   anything above 64 MiB is not one). */
LLAMA_API llama_status llama__read_file(const char *path, size_t limit, char **data, size_t *bytes) {
    FILE *f;
    long len;
    char *buf;
    if (!(f = fopen(path, "rb"))) return LLAMA_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (unsigned long)len > limit) {
        fclose(f);
        return LLAMA_ERR_IO;
    }
    buf = (char *)malloc((size_t)len + 1);
    if (!buf) {
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

LLAMA_API llama_status llama_tokenizer_load(const char *path, int vocab_size, llama_tokenizer *out) {
    char *buf;
    size_t bytes;
    llama_status st;
    if (!path || !out) return LLAMA_ERR_ARG;
    if ((st = llama__read_file(path, (size_t)64 << 20, &buf, &bytes)) != LLAMA_OK) return st;
    st = llama_tokenizer_load_mem(buf, bytes, vocab_size, out);
    free(buf);
    return st;
}

/* A candidate merge of the adjacent pieces at nodes left and right; stale
   once either node has changed (its version moved on). */
typedef struct llama__merge {
    float score;
    int left, right, id;
    unsigned vl, vr;
} llama__merge;

/* Heap order: highest score first, then leftmost, which is the pair
   llama2.c's linear scan picks. */
LLAMA_API int llama__before(const llama__merge *a, const llama__merge *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

LLAMA_API void llama__heap_push(llama__merge *h, size_t *n, llama__merge e) {
    size_t i = (*n)++;
    while (i > 0 && llama__before(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

LLAMA_API llama__merge llama__heap_pop(llama__merge *h, size_t *n) {
    llama__merge top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && llama__before(&h[c + 1], &h[c])) c++;
        if (!llama__before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Push the merge of nodes a and b if their concatenation is a piece. */
LLAMA_API void llama__try_merge(const llama_tokenizer *t, const int *tok, const unsigned *ver, char *buf, int a,
                                  int b, llama__merge *heap, size_t *n) {
    const llama_piece *x, *y;
    llama__merge e;
    if (a < 0 || b < 0) return;
    x = &t->pieces[tok[a]], y = &t->pieces[tok[b]];
    memcpy(buf, x->str, (size_t)x->len);
    memcpy(buf + x->len, y->str, (size_t)y->len);
    if ((e.id = llama__lookup(t, buf, x->len + y->len)) < 0) return;
    e.score = t->scores[e.id], e.left = a, e.right = b, e.vl = ver[a], e.vr = ver[b];
    llama__heap_push(heap, n, e);
}

/* llama2.c's encode: a dummy-prefix " ", one piece per UTF-8 code point
   (byte fallback, or <unk> without it), then repeatedly the best-scoring
   merge. A heap of candidate merges makes it O(n log n) instead of O(n^2);
   the result is the same. No BOS or EOS. *ids comes from malloc. */
LLAMA_API llama_status llama_encode(const llama_tokenizer *t, const char *text, size_t len, int **ids, size_t *n_ids) {
    int *tok, *prev, *next, *out;
    unsigned *ver;
    llama__merge *heap;
    char *buf;
    size_t n = 0, nh = 0, i, cap;
    if (!t || (!text && len) || !ids || !n_ids) return LLAMA_ERR_ARG;
    if (len > (size_t)INT_MAX / 4 - 2) return LLAMA_ERR_ARG;
    cap = len + 1;
    tok = (int *)malloc(cap * sizeof(int));
    prev = (int *)malloc(cap * sizeof(int));
    next = (int *)malloc(cap * sizeof(int));
    ver = (unsigned *)calloc(cap, sizeof(unsigned));
    heap = (llama__merge *)malloc(3 * cap * sizeof *heap); /* n - 1 at first, then 2 per merge */
    buf = (char *)malloc(2 * (size_t)t->max_token_length + 8);
    if (!tok || !prev || !next || !ver || !heap || !buf) {
        free(tok), free(prev), free(next), free(ver), free(heap), free(buf);
        return LLAMA_ERR_NOMEM;
    }
    if (len > 0) {
        int sp = llama__lookup(t, " ", 1);
        tok[n++] = sp >= 0 ? sp : (t->byte_fallback ? ' ' + 3 : 0);
    }
    for (i = 0; i < len;) {
        size_t j = i + 1;
        int id;
        /* A code point: a lead byte and up to 3 continuation bytes. */
        while (j < len && j - i < 4 && ((unsigned char)text[j] & 0xC0) == 0x80) j++;
        id = llama__lookup(t, text + i, (int)(j - i));
        if (id >= 0) tok[n++] = id;
        else if (!t->byte_fallback) tok[n++] = 0;
        else
            for (; i < j; i++) tok[n++] = (unsigned char)text[i] + 3;
        i = j;
    }
    for (i = 0; i < n; i++) {
        prev[i] = (int)i - 1;
        next[i] = i + 1 < n ? (int)i + 1 : -1;
    }
    for (i = 0; i + 1 < n; i++) llama__try_merge(t, tok, ver, buf, (int)i, (int)i + 1, heap, &nh);
    while (nh > 0) {
        llama__merge e = llama__heap_pop(heap, &nh);
        int l = e.left, r = e.right;
        if (ver[l] != e.vl || ver[r] != e.vr) continue;
        tok[l] = e.id;
        ver[l]++, ver[r]++; /* every merge queued with either is now stale */
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        llama__try_merge(t, tok, ver, buf, prev[l], l, heap, &nh);
        llama__try_merge(t, tok, ver, buf, l, next[l], heap, &nh);
    }
    out = (int *)malloc((n ? n : 1) * sizeof(int));
    if (out) {
        size_t m = 0;
        int k;
        for (k = n ? 0 : -1; k >= 0; k = next[k]) out[m++] = tok[k];
        *n_ids = m;
        *ids = out;
    }
    free(tok), free(prev), free(next), free(ver), free(heap), free(buf);
    return out ? LLAMA_OK : LLAMA_ERR_NOMEM;
}

/* The text of `token` after `prev`, as llama2.c's decode: no leading space
   after BOS, <0xXX> pieces as their byte. buf holds at least 2 bytes. */
LLAMA_API const char *llama_decode(const llama_tokenizer *t, int prev, int token, char *buf) {
    const char *s = t->pieces[token].str;
    unsigned byte;
    if (prev == LLAMA_BOS && s[0] == ' ') s++;
    if (t->byte_fallback && token >= 3 && token < 259) {
        byte = (unsigned)(token - 3);
        buf[0] = (char)byte, buf[1] = '\0';
        return buf;
    }
    return s;
}

LLAMA_API int llama__space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Appends BOS + encode(text[a..b) stripped of surrounding whitespace) to
   the growing stream all[n] (capacity cap); nothing for blank text. */
LLAMA_API llama_status llama__append_piece(const llama_tokenizer *t, const char *text, size_t a, size_t b,
                                              int **all, size_t *n, size_t *cap) {
    int *ids;
    size_t n1;
    llama_status st;
    while (a < b && llama__space(text[a])) a++;
    while (b > a && llama__space(text[b - 1])) b--;
    if (b == a) return LLAMA_OK;
    if ((st = llama_encode(t, text + a, b - a, &ids, &n1)) != LLAMA_OK) return st;
    if (*n + n1 + 1 > *cap) {
        size_t grown_cap = 2 * (*n + n1 + 1);
        int *grown = (int *)realloc(*all, grown_cap * sizeof(int));
        if (!grown) {
            free(ids);
            return LLAMA_ERR_NOMEM;
        }
        *all = grown, *cap = grown_cap;
    }
    (*all)[(*n)++] = LLAMA_BOS;
    memcpy(*all + *n, ids, n1 * sizeof(int));
    *n += n1;
    free(ids);
    return LLAMA_OK;
}

/* The evaluation stream: every story (split on the line "<|endoftext|>",
   stripped, empty ones skipped) as BOS + encode(story). */
LLAMA_API llama_status llama_encode_stories(const llama_tokenizer *t, const char *text, size_t len, int **ids,
                                               size_t *n_ids) {
    static const char sep[] = "<|endoftext|>";
    size_t seplen = sizeof sep - 1, pos = 0, n = 0, cap = 0;
    int *all = NULL;
    llama_status st = LLAMA_OK;
    while (pos <= len && st == LLAMA_OK) {
        size_t end = pos, next = len + 1;
        /* the next separator alone on its line */
        for (; end + seplen <= len; end++)
            if (memcmp(text + end, sep, seplen) == 0 && (end == 0 || text[end - 1] == '\n') &&
                (end + seplen == len || text[end + seplen] == '\n' || text[end + seplen] == '\r')) {
                next = end + seplen;
                break;
            }
        if (next == len + 1) end = len;
        st = llama__append_piece(t, text, pos, end, &all, &n, &cap);
        pos = next;
    }
    if (st != LLAMA_OK) {
        free(all);
        return st;
    }
    *ids = all;
    *n_ids = n;
    return LLAMA_OK;
}

#endif /* LLAMA_TOKENIZER_H */
