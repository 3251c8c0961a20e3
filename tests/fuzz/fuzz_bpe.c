/* fuzz_bpe - the byte-level BPE tokenizer (examples/llama/tokenizer.h). `make fuzz`.

   The input is read as: byte 0 picks the pre-tokenizer and parse_special,
   byte 1 the number of merges, then two bytes per merge (the token ids it
   joins, modulo the vocabulary so far), then an optional special token
   (byte: its type and length, then that many bytes mapped to printable
   ASCII), then the text. The vocabulary is the 256 GPT-2 byte characters
   plus one token per merge, so it is always valid. Checked: every id in
   range; detokenize(tokenize(text)) == the text as llama.cpp reads it (each
   invalid UTF-8 byte as U+FFFD); a code point above U+10FFFF is a
   LLAMA_ERR_TEXT and nothing else. Then the raw input, as a vocabulary of
   NUL-separated tokens and merges, must give a status, never a crash. */
#define W4A8_IMPLEMENTATION
#include "../../w4a8.h"
#include "../../examples/llama/llama.h"
#include "fuzz.h"

#define FUZZ_MAX_TOKENS (256 + 64 + 1)

/* The text as llama.cpp decodes it; 0 if it has a code point above U+10FFFF. */
static int fuzz_normalize(const unsigned char *s, size_t n, unsigned char *o, size_t *on) {
    size_t i = 0;
    *on = 0;
    while (i < n) {
        uint32_t c = llama__utf8_next(s, n, &i);
        if (c > 0x10FFFF) return 0;
        *on += llama__utf8_put(c, o + *on);
    }
    return 1;
}

static void fuzz_structured(const uint8_t *data, size_t size) {
    static char store[FUZZ_MAX_TOKENS][100], mstore[64][100];
    static const char *pres[] = { "smollm", "llama-bpe", "gpt-2" };
    const char *tok[FUZZ_MAX_TOKENS], *merges[64];
    size_t len[FUZZ_MAX_TOKENS], mlen[64], V = 256, n_merges = 0, p = 2, i, n_ids = 0, back_len, norm_len;
    int32_t type[FUZZ_MAX_TOKENS];
    llama_vocab_desc d;
    llama_tokenizer t;
    llama_status st;
    int *ids = NULL, parse_special;
    char *back = NULL;
    unsigned char *norm;
    if (size < 2) return;
    for (i = 0; i < 256; i++) {
        size_t n = llama__utf8_put(llama__gpt2_cpt((unsigned)i), (unsigned char *)store[i]);
        tok[i] = store[i], len[i] = n, type[i] = LLAMA_TOKEN_NORMAL;
    }
    for (i = 0; i < (size_t)(data[1] % 64) && p + 2 <= size; i++, p += 2) {
        size_t a = data[p] % V, b = data[p + 1] % V, k;
        int dup = 0;
        if (len[a] + len[b] > 48) continue;
        memcpy(store[V], tok[a], len[a]);
        memcpy(store[V] + len[a], tok[b], len[b]);
        for (k = 0; k < V; k++) dup |= len[k] == len[a] + len[b] && memcmp(tok[k], store[V], len[k]) == 0;
        /* the merge is valid even when its result exists already */
        memcpy(mstore[n_merges], tok[a], len[a]);
        mstore[n_merges][len[a]] = ' ';
        memcpy(mstore[n_merges] + len[a] + 1, tok[b], len[b]);
        merges[n_merges] = mstore[n_merges], mlen[n_merges] = len[a] + len[b] + 1, n_merges++;
        if (!dup) tok[V] = store[V], len[V] = len[a] + len[b], type[V] = LLAMA_TOKEN_NORMAL, V++;
    }
    if (p < size && (data[p++] & 0x80)) { /* a special token of printable ASCII, 2..9 bytes */
        size_t n = 2 + (data[p - 1] & 7), k;
        int dup = 0;
        if (p + n <= size) {
            for (k = 0; k < n; k++) store[V][k] = (char)(0x21 + data[p + k] % 94);
            for (k = 0; k < V; k++) dup |= len[k] == n && memcmp(tok[k], store[V], n) == 0;
            if (!dup) {
                tok[V] = store[V], len[V] = n;
                type[V] = data[p - 1] & 0x40 ? LLAMA_TOKEN_CONTROL : LLAMA_TOKEN_USER_DEFINED;
                V++;
            }
            p += n;
        }
    }
    memset(&d, 0, sizeof d);
    d.model = "gpt2", d.pre = pres[data[0] % 3];
    d.n_tokens = V, d.tokens = tok, d.token_lens = len, d.token_types = type;
    d.n_merges = n_merges, d.merges = merges, d.merge_lens = mlen;
    d.bos = d.eos = d.unk = d.pad = -1, d.add_bos = d.add_eos = 0;
    FUZZ_CHECK(llama_tokenizer_from_vocab(&d, &t) == LLAMA_OK);
    parse_special = (data[0] >> 2) & 1;
    norm = (unsigned char *)malloc(3 * (size - p) + 1);
    st = llama_tokenize(&t, (const char *)data + p, size - p, 1, parse_special, &ids, &n_ids);
    if (!fuzz_normalize(data + p, size - p, norm, &norm_len)) {
        FUZZ_CHECK(st == LLAMA_ERR_TEXT);
    } else {
        FUZZ_CHECK(st == LLAMA_OK);
        for (i = 0; i < n_ids; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < (int)V);
        FUZZ_CHECK(llama_detokenize(&t, ids, n_ids, 1, &back, &back_len) == LLAMA_OK);
        FUZZ_CHECK(back_len == norm_len && memcmp(back, norm, norm_len) == 0);
        free(ids), free(back);
    }
    free(norm);
    llama_tokenizer_free(&t);
}

/* The input as a vocabulary: NUL-separated strings, the first half tokens,
   the rest merges; types and flags from the first bytes. Any status. */
static void fuzz_raw(const uint8_t *data, size_t size) {
    static const char *models[] = { "gpt2", "llama", "bert" }, *pres[] = { "smollm", "llama-bpe", "gpt-2", NULL };
    const char *str[512];
    size_t lens[512], n = 0, i = 4, start;
    int32_t types[512];
    float scores[512];
    llama_vocab_desc d;
    llama_tokenizer t;
    if (size < 4) return;
    for (start = i; i <= size && n < 512; i++)
        if (i == size || data[i] == 0) {
            str[n] = (const char *)data + start, lens[n] = i - start;
            types[n] = (int32_t)(data[start < size ? start : 0] % 8);
            scores[n] = (float)(int)(lens[n] % 5) - 2.0f;
            n++, start = i + 1;
        }
    memset(&d, 0, sizeof d);
    d.model = models[data[0] % 3], d.pre = pres[data[1] % 4];
    d.n_tokens = (n + 1) / 2, d.tokens = str, d.token_lens = lens;
    d.token_types = data[2] & 1 ? types : NULL, d.scores = data[2] & 2 ? scores : NULL;
    d.n_merges = n - d.n_tokens, d.merges = str + d.n_tokens, d.merge_lens = lens + d.n_tokens;
    d.bos = (int32_t)(data[3] % 8) - 2, d.eos = -1, d.unk = -1, d.pad = -1;
    d.add_bos = (data[3] >> 3) % 3 - 1, d.add_eos = -1;
    if (llama_tokenizer_from_vocab(&d, &t) == LLAMA_OK) {
        int *ids;
        size_t n_ids, k;
        if (llama_tokenize(&t, (const char *)data, size, 1, 1, &ids, &n_ids) == LLAMA_OK) {
            for (k = 0; k < n_ids; k++) FUZZ_CHECK(ids[k] >= 0 && ids[k] < t.vocab_size);
            free(ids);
        }
        llama_tokenizer_free(&t);
    }
}

/* One input in the format above: merges as (id, id) pairs, an optional
   special token (printable ASCII), the text. */
static size_t fuzz_bpe__input(uint8_t *o, int flags, const char *const *merges, size_t n_merges,
                              const char *special, int control, const char *text) {
    size_t n = 0, i, k;
    o[n++] = (uint8_t)flags, o[n++] = (uint8_t)n_merges;
    for (i = 0; i < n_merges; i++) o[n++] = (uint8_t)merges[i][0], o[n++] = (uint8_t)merges[i][1];
    if (special) {
        k = strlen(special);
        o[n++] = (uint8_t)(0x80 | (control ? 0x40 : 0) | (k - 2));
        for (i = 0; i < k; i++) o[n++] = (uint8_t)(special[i] - 0x21);
    } else {
        o[n++] = 0;
    }
    memcpy(o + n, text, strlen(text));
    return n + strlen(text);
}

/* Each pre-tokenizer, with merges of bytes (ids 0..255 are the bytes, in
   order), with and without a special token and parse_special; texts with
   digits, contractions, spaces, multi-byte and invalid UTF-8. */
static void fuzz_seeds(const char *dir) {
    static const char *const merges[] = { "he", "ll", "o ", " w", "or", "ld", "12" };
    static const struct {
        int flags;
        size_t n_merges;
        const char *special;
        int control;
        const char *text;
    } in[] = {
        { 0, 7, NULL, 0, "hello world 1234, it's" },
        { 1 | 4, 7, "<|end|>", 1, "hello<|end|> world\n\n  x" },
        { 2 | 4, 4, "[TOK]", 0, "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80!" },
        { 0, 0, "<|end|>", 0, "no parse <|end|> \xff\xc3 bad" },
    };
    uint8_t buf[256];
    char name[16];
    size_t i;
    for (i = 0; i < sizeof in / sizeof in[0]; i++) {
        size_t n = fuzz_bpe__input(buf, in[i].flags, merges, in[i].n_merges, in[i].special, in[i].control, in[i].text);
        snprintf(name, sizeof name, "bpe%zu", i);
        fuzz_seed_file(dir, name, buf, n);
    }
}

FUZZ_MAIN(fuzz_seeds) {
    fuzz_structured(data, size);
    fuzz_raw(data, size);
    return 0;
}
