/* fuzz_llama_tokenizer - the llama2.c tokenizer loader
   (llama_tokenizer_load_mem), then encode and decode through what it loaded.

   Input: u16 n (little-endian), n bytes of text, then a tokenizer.bin image.
   The file does not store its piece count: the harness walks the image's
   lengths to guess it (the loader must refuse any other count by itself).
   Every id that encode and the story stream give must be in the vocabulary;
   every id must decode. */
#define W4A8_IMPLEMENTATION
#include "../../examples/llama/llama.h"
#include "fuzz.h"

/* How many pieces the image would hold, or 1 when the walk goes astray. */
static int guess_count(const uint8_t *b, size_t bytes) {
    size_t p = 4;
    int n = 0;
    while (p + 8 <= bytes && n < (1 << 20)) {
        int32_t len;
        memcpy(&len, b + p + 4, 4);
        if (len < 0 || (size_t)len > bytes - p - 8) return 1;
        p += 8 + (size_t)len;
        n++;
    }
    return n ? n : 1;
}

static void check_ids(const llama_tokenizer *t, const int *ids, size_t n) {
    char buf[2];
    size_t i;
    for (i = 0; i < n; i++) {
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < t->vocab_size);
        FUZZ_CHECK(llama_decode(t, i ? ids[i - 1] : LLAMA_BOS, ids[i], buf) != NULL);
    }
}

/* A tokenizer with <unk>, <s>, </s>, byte fallback, the letters and a few
   merges, as llama2.c's tokenizer.bin lays it out; and a character-level one. */
static void fuzz_seeds(const char *dir) {
    static const char *const merges[] = { " ", "e", "h", "t", " t", "th", "he", "the", " the", "a", "n", " a", "an" };
    static const char text[] = "the cat\n<|endoftext|>\nan \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 the";
    unsigned char *b = (unsigned char *)malloc(1 << 16), *p;
    int32_t max_len = 8;
    int i, big;
    for (big = 0; big < 2; big++) {
        uint16_t n = (uint16_t)(sizeof text - 1);
        int count = 0;
        llama_tokenizer t;
        p = b;
        memcpy(p, &n, 2);
        memcpy(p + 2, text, n);
        p += 2 + n;
        memcpy(p, &max_len, 4);
        p += 4;
#define PIECE(str, score)                                                                  \
    do {                                                                                   \
        float sc_ = (score);                                                               \
        int32_t len_ = (int32_t)strlen(str);                                               \
        memcpy(p, &sc_, 4), memcpy(p + 4, &len_, 4), memcpy(p + 8, (str), (size_t)len_); \
        p += 8 + len_, count++;                                                            \
    } while (0)
        PIECE("<unk>", 0.0f);
        PIECE("\n<s>\n", 0.0f);
        PIECE("\n</s>\n", 0.0f);
        if (big)
            for (i = 0; i < 256; i++) {
                char s[8];
                snprintf(s, sizeof s, "<0x%02X>", i);
                PIECE(s, 0.0f);
            }
        for (i = 0; i < (int)(sizeof merges / sizeof merges[0]); i++) PIECE(merges[i], (float)-i);
#undef PIECE
        FUZZ_CHECK(llama_tokenizer_load_mem(b + 2 + n, (size_t)(p - b) - 2 - n, count, &t) == LLAMA_OK);
        FUZZ_CHECK(t.byte_fallback == big);
        llama_tokenizer_free(&t);
        fuzz_seed_file(dir, big ? "bytes" : "chars", b, (size_t)(p - b));
    }
    free(b);
}

FUZZ_MAIN(fuzz_seeds) {
    const uint8_t *img;
    const char *text;
    size_t n, bytes, n_ids = 0;
    llama_tokenizer t;
    llama_status st;
    int *ids = NULL;
    if (size < 2) return 0;
    n = (size_t)data[0] | (size_t)data[1] << 8;
    if (n > size - 2) n = size - 2;
    text = (const char *)data + 2;
    img = data + 2 + n;
    bytes = size - 2 - n;
    st = llama_tokenizer_load_mem(img, bytes, guess_count(img, bytes), &t);
    FUZZ_CHECK(st >= LLAMA_OK && st < LLAMA_STATUS_COUNT);
    if (st != LLAMA_OK) return 0;
    FUZZ_CHECK(t.vocab_size > LLAMA_EOS);
    FUZZ_CHECK(llama_encode(&t, text, n, &ids, &n_ids) == LLAMA_OK);
    FUZZ_CHECK(n_ids <= n + 1 + 3 * n);
    check_ids(&t, ids, n_ids);
    free(ids);
    ids = NULL;
    FUZZ_CHECK(llama_encode_stories(&t, text, n, &ids, &n_ids) == LLAMA_OK);
    check_ids(&t, ids, n_ids);
    free(ids);
    llama_tokenizer_free(&t);
    return 0;
}
