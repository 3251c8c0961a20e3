/* tools/w4a8_heatmap, compiled in: its command line runs in-process, the PNGs
   it writes are decoded with stb_image and read pixel by pixel. */
#define W4A8_HEATMAP_NO_MAIN
#include "../tools/w4a8_heatmap.c"
#include <stb/stb_image.h>
#include "test.h"

#define HM_DIR "build/"

/* What the last tool run printed. */
static char run_out[4096], run_err[4096];

static void slurp(FILE *f, char *buf, size_t cap) {
    size_t n;
    rewind(f);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* argv without argv[0], NULL-terminated; the exit status. */
static int run_tool(const char *const *args) {
    const char *argv[32];
    int argc = 1, rc;
    FILE *out = tmpfile(), *err = tmpfile();
    argv[0] = "w4a8_heatmap";
    while (args[argc - 1] && argc < 31) {
        argv[argc] = args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    CHECK(out && err);
    if (!out || !err) return -1;
    rc = hm_main(argc, argv, out, err);
    slurp(out, run_out, sizeof run_out);
    slurp(err, run_err, sizeof run_err);
    return rc;
}

static int write_f32(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(x, sizeof(float), n, f) == n;
    if (f) ok &= fclose(f) == 0;
    return ok;
}

static int exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Uniform in [-1, 1) everywhere. */
static float *uniform_matrix(size_t rows, size_t cols, uint64_t seed) {
    float *x = (float *)malloc(rows * cols * sizeof(float));
    size_t i;
    for (i = 0; i < rows * cols; i++) x[i] = test_uniform(&seed);
    return x;
}

static unsigned char *load_png(const char *path, int *w, int *h) {
    int comp = 0;
    unsigned char *p = stbi_load(path, w, h, &comp, 3);
    CHECK(p != NULL);
    return p;
}

static const unsigned char *pixel(const unsigned char *img, int w, int x, int y) {
    return img + ((size_t)y * w + x) * 3;
}

static double luma(const unsigned char *p) { return 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2]; }

/* The colour map inverted: the level whose colour is nearest to p. */
#define LEVELS 2048
typedef struct level_lut { unsigned char c[LEVELS + 1][3]; } level_lut;

static void lut_init(level_lut *L) {
    int i;
    for (i = 0; i <= LEVELS; i++) hm_colour((double)i / LEVELS, L->c[i]);
}

static double level_of(const level_lut *L, const unsigned char *p) {
    int i, best = 0, bd = 1 << 30;
    for (i = 0; i <= LEVELS; i++) {
        int d0 = L->c[i][0] - p[0], d1 = L->c[i][1] - p[1], d2 = L->c[i][2] - p[2], d = d0 * d0 + d1 * d1 + d2 * d2;
        if (d < bd) {
            bd = d;
            best = i;
        }
    }
    return (double)best / LEVELS;
}

static int same_rgb(const unsigned char *a, const unsigned char *b) { return memcmp(a, b, 3) == 0; }

/* ---------------------------------------------------------------------------
   The pieces: font, colour map, log scale */

static void test_heatmap_font(void) {
    static const char need[] = " 0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;=|-+()[]/_<>%^~!?'\"#&*\\";
    size_t n = strlen(hm_font), lines = n / HM_GLYPH_LINE, i, j;
    int r, c;
    CHECK(n % HM_GLYPH_LINE == 0);
    for (i = 0; i < lines; i++) {
        const char *g = hm_font + i * HM_GLYPH_LINE;
        int lit = 0;
        CHECK(g[1] == ' ' && g[HM_GLYPH_LINE - 1] == '\n');
        for (r = 0; r < 7; r++) {
            if (r < 6) CHECK(g[2 + r * 6 + 5] == ' ');
            for (c = 0; c < 5; c++) {
                CHECK(g[2 + r * 6 + c] == '#' || g[2 + r * 6 + c] == '.');
                lit += hm_glyph_on(g, c, r);
            }
        }
        CHECK((lit == 0) == (g[0] == ' ')); /* only the space is blank */
        for (j = 0; j < i; j++) {
            const char *h = hm_font + j * HM_GLYPH_LINE;
            CHECK(h[0] != g[0]);                                /* one glyph per character */
            CHECK(memcmp(h + 2, g + 2, HM_GLYPH_LINE - 3) != 0); /* and no two look alike */
        }
    }
    for (i = 0; need[i]; i++) CHECK(hm_glyph_find(need[i]) != NULL);
    CHECK(hm_glyph('q') == hm_glyph_find('Q'));
    CHECK(hm_glyph('@') == hm_glyph_find('?') && hm_glyph(200) == hm_glyph_find('?'));
}

static void test_heatmap_colour_scale(void) {
    unsigned char c[3], prev[3];
    hm_scale s;
    int i, rising = 1;
    hm_colour(0.0, c);
    CHECK(c[0] == 68 && c[1] == 1 && c[2] == 84);
    hm_colour(1.0, c);
    CHECK(c[0] == 253 && c[1] == 231 && c[2] == 37);
    hm_colour(NAN, c); /* NaN: the bottom colour, never garbage */
    CHECK(c[0] == 68 && c[1] == 1 && c[2] == 84);
    /* Brighter always means larger: luminance rises along the map, by more
       than byte rounding can blur at steps of 1/64. */
    hm_colour(0.0, prev);
    for (i = 1; i <= 64; i++) {
        hm_colour(i / 64.0, c);
        rising &= luma(c) > luma(prev) + 1.0;
        memcpy(prev, c, 3);
    }
    CHECK(rising);
    s.hi = 1000.0;
    s.lo = 0.1;
    CHECK(hm_level(&s, 1000.0) == 1.0 && hm_level(&s, 5000.0) == 1.0);
    CHECK(hm_level(&s, 0.1) == 0.0 && hm_level(&s, 0.0) == 0.0);
    CHECK(fabs(hm_level(&s, 10.0) - 0.5) < 1e-12);
    s.hi = s.lo = 0.0; /* all-zero input */
    CHECK(hm_level(&s, 0.0) == 0.0);
}

static void test_heatmap_grid(void) {
    hm_opts o;
    hm_grid g;
    hm_opts_init(&o);
    hm_grid_make(16, 64, &o, &g); /* small: zoomed, capped at 8 */
    CHECK(g.px == 1 && g.cx == 64 && g.zx == 8 && g.py == 1 && g.cy == 16 && g.zy == 8);
    hm_grid_make(512, 4096, &o, &g); /* 4096 channels into 512 columns of 8 */
    CHECK(g.px == 8 && g.cx == 512 && g.zx == 1 && g.py == 1 && g.cy == 512 && g.zy == 1);
    hm_grid_make(513, 4097, &o, &g); /* one past: the last block is short */
    CHECK(g.px == 9 && g.cx == 456 && g.zx == 1 && g.py == 2 && g.cy == 257 && g.zy == 1);
    hm_grid_make(1, 1, &o, &g);
    CHECK(g.cx == 1 && g.cy == 1 && g.zx == 8 && g.zy == 8);
}

/* ---------------------------------------------------------------------------
   Pictures */

/* One outlier channel: the PNG has the expected size, that channel's column
   is the brightest and its bar the tallest. */
static void test_heatmap_outlier_channel(void) {
    enum { T = 16, K = 64, OUT_K = 37 };
    const char *args[] = { "--raw", HM_DIR "hm_one.f32", "--shape", "16,64", "-o", HM_DIR "hm_one.png",
                           "--name", "L0.qkv", NULL };
    float *X = uniform_matrix(T, K, 11);
    hm_opts o;
    hm_layout L;
    unsigned char *img;
    int w = 0, h = 0, x, y, k, best = -1, bar[K];
    double col[K];
    size_t t;
    for (t = 0; t < T; t++) X[t * K + OUT_K] *= 50.0f;
    CHECK(write_f32(args[1], X, T * K));
    CHECK(run_tool(args) == 0);
    CHECK(strstr(run_out, "L0.qkv, 16 x 64") != NULL);
    hm_opts_init(&o);
    hm_layout_make(T, K, 1, 2, 0, &o, &L);
    CHECK(L.hw == 512 && L.hh == 128); /* 64 x 16 values, 8 x 8 pixels each */
    img = load_png(args[5], &w, &h);
    if (img) {
        CHECK(w == L.w && h == L.h);
        for (k = 0; k < K; k++) {
            col[k] = 0.0;
            for (y = 0; y < L.hh; y++)
                for (x = 0; x < 8; x++) col[k] += luma(pixel(img, w, L.panel_x[0] + k * 8 + x, L.heat_y + y));
            if (best < 0 || col[k] > col[best]) best = k;
            /* The bar: dark pixels in the strip above the column. */
            bar[k] = 0;
            for (y = 0; y < HM_STRIP; y++)
                bar[k] += same_rgb(pixel(img, w, L.panel_x[0] + k * 8 + 4, L.strip_y + y), hm_dark);
        }
        CHECK(best == OUT_K);
        CHECK(bar[OUT_K] == HM_STRIP);
        for (k = 0; k < K; k++)
            if (k != OUT_K) CHECK(bar[k] <= HM_STRIP / 50 + 1); /* |x| <= 1 against 50 */
        /* The colour bar runs from the top colour down to the bottom one. */
        {
            unsigned char top[3], bottom[3];
            hm_colour(1.0, top);
            hm_colour(0.0, bottom);
            CHECK(same_rgb(pixel(img, w, L.cbar_x + 2, L.heat_y), top));
            CHECK(same_rgb(pixel(img, w, L.cbar_x + 2, L.heat_y + L.cbar_h - 1), bottom));
        }
        /* The title is written: dark pixels in its band. */
        for (x = 0, y = 0; x < w; x++) y += same_rgb(pixel(img, w, x, HM_MARGIN + 6), hm_black);
        CHECK(y > 10);
        stbi_image_free(img);
    }
    free(X);
    remove(args[1]);
    remove(args[5]);
}

/* Heavy downsampling keeps a single outlier value: it owns one pixel, in the
   top colour, where skipping rows and columns would have lost it. */
static void test_heatmap_maxpool(void) {
    enum { T = 400, K = 1000, OT = 203, OK_ = 517 };
    const char *args[] = { "--raw", HM_DIR "hm_pool.f32", "--shape", "400,1000", "-o", HM_DIR "hm_pool.png",
                           "--size", "100,50", NULL };
    float *X = uniform_matrix(T, K, 12);
    hm_opts o;
    hm_layout L;
    unsigned char *img, top[3];
    int w = 0, h = 0, x, y, lit = 0;
    X[OT * K + OK_] = -1000.0f;
    CHECK(OK_ % 10 != 0 && OT % 8 != 0); /* every 10th channel, every 8th token would miss it */
    CHECK(write_f32(args[1], X, (size_t)T * K));
    CHECK(run_tool(args) == 0);
    hm_opts_init(&o);
    o.max_w = 100;
    o.max_h = 50;
    hm_layout_make(T, K, 1, 2, 0, &o, &L);
    CHECK(L.g.px == 10 && L.g.py == 8 && L.hw == 100 && L.hh == 50);
    hm_colour(1.0, top);
    img = load_png(args[5], &w, &h);
    if (img) {
        CHECK(w >= L.w && h == L.h); /* the notes are wider than this small picture */
        CHECK(same_rgb(pixel(img, w, L.panel_x[0] + OK_ / 10, L.heat_y + OT / 8), top));
        for (y = 0; y < L.hh; y++)
            for (x = 0; x < L.hw; x++) lit += same_rgb(pixel(img, w, L.panel_x[0] + x, L.heat_y + y), top);
        CHECK(lit == 1);
        /* Its bar is the one that reaches the top of the strip. */
        for (x = 0, lit = 0; x < L.hw; x++) lit += same_rgb(pixel(img, w, L.panel_x[0] + x, L.strip_y), hm_dark);
        CHECK(lit == 1 && same_rgb(pixel(img, w, L.panel_x[0] + OK_ / 10, L.strip_y), hm_dark));
        stbi_image_free(img);
    }
    free(X);
    remove(args[1]);
    remove(args[5]);
}

/* Levels per channel column (mean over tokens) of one panel, and the highest level. */
static double panel_levels(const level_lut *lut, const unsigned char *img, int w, const hm_layout *L, int panel,
                           size_t K, double *col) {
    size_t k, i;
    double top = 0.0;
    for (k = 0; k < K; k++) {
        col[k] = 0.0;
        for (i = 0; i < L->g.cy; i++) {
            double v = level_of(lut, pixel(img, w, L->panel_x[panel] + (int)(k * L->g.zx + L->g.zx / 2),
                                           L->heat_y + (int)(i * L->g.zy + L->g.zy / 2)));
            col[k] += v / (double)L->g.cy;
            if (v > top) top = v;
        }
    }
    return top;
}

/* How far channel j stands out: its level minus the median of the others. */
static double dominance(const double *col, size_t K, size_t j) {
    double other[64], t;
    size_t i, n = 0, a, b;
    for (i = 0; i < K; i++)
        if (i != j) other[n++] = col[i];
    for (a = 1; a < n; a++)
        for (b = a; b > 0 && other[b - 1] > other[b]; b--) {
            t = other[b];
            other[b] = other[b - 1];
            other[b - 1] = t;
        }
    return col[j] - other[n / 2];
}

enum { MT = 32, MK = 48, MN = 16, MOUT = 7 };

/* Channel 7 in [20, 60], the others in [-1, 1]. */
static float *method_acts(void) {
    float *X = uniform_matrix(MT, MK, 21);
    uint64_t seed = 22;
    size_t t;
    for (t = 0; t < MT; t++) X[t * MK + MOUT] = 40.0f + 20.0f * test_uniform(&seed);
    return X;
}

/* Runs the tool with a method and checks the after panel against the math:
   on the shared scale the outlier column stands out at most `keep` times as
   much as before, the after maximum sits at the level its value predicts,
   and the bars of the other channels grow relative to the tallest. */
static void check_method_picture(const char *const *args, const char *png, const float *X, double after_max,
                                 double keep) {
    hm_opts o;
    hm_layout L;
    level_lut *lut = (level_lut *)malloc(sizeof *lut);
    unsigned char *img;
    int w = 0, h = 0;
    double before[MK], after[MK], top_b, top_a, db, da, xmax = 0.0, want;
    size_t i;
    int bars[2] = { 0, 0 }, p, k;
    CHECK(run_tool(args) == 0);
    for (i = 0; i < (size_t)MT * MK; i++)
        if (fabs(X[i]) > xmax) xmax = fabs(X[i]);
    hm_opts_init(&o);
    hm_layout_make(MT, MK, 2, 3, 0, &o, &L);
    img = load_png(png, &w, &h);
    if (!img || !lut) {
        free(lut);
        return;
    }
    lut_init(lut);
    CHECK(w == L.w && h == L.h);
    top_b = panel_levels(lut, img, w, &L, 0, MK, before);
    top_a = panel_levels(lut, img, w, &L, 1, MK, after);
    db = dominance(before, MK, MOUT);
    da = dominance(after, MK, MOUT);
    CHECK(db > 0.3);         /* the outlier channel dominates before */
    CHECK(da < keep * db);   /* and much less after */
    CHECK(top_b >= 1.0 - 2.0 / LEVELS); /* the shared scale tops out at the input's max... */
    want = 1.0 + log10(after_max / xmax) / o.decades;
    CHECK(fabs(top_a - want) < 0.01); /* ...and the after panel sits where its max belongs */
    if (!(fabs(top_a - want) < 0.01)) printf("    after max level %.4f, want %.4f\n", top_a, want);
    /* Bars: the other channels' mean height, in pixels, before and after. */
    for (p = 0; p < 2; p++)
        for (k = 0; k < MK; k++) {
            int y;
            if (k == MOUT) continue;
            for (y = 0; y < HM_STRIP; y++)
                bars[p] += same_rgb(pixel(img, w, L.panel_x[p] + k * (int)L.g.zx + 1, L.strip_y + y), hm_dark);
        }
    CHECK(bars[1] > 4 * bars[0] + MK);
    stbi_image_free(img);
    free(lut);
}

static void test_heatmap_fptq(void) {
    const char *args[] = { "--raw", HM_DIR "hm_m.f32", "--shape", "32,48", "-o", HM_DIR "hm_fptq.png", "--method",
                           "fptq", NULL };
    const char *args2[] = { "--raw", HM_DIR "hm_m.f32", "--shape", "32,48", "-o", HM_DIR "hm_fptq.png", "--method",
                            "fptq", "--fptq-low", "1", "--fptq-high", "2", NULL };
    float *X = method_acts(), amax[MK];
    double after_max = 0.0;
    size_t t, k;
    CHECK(write_f32(args[1], X, (size_t)MT * MK));
    /* LAE: x_j / s_j peaks at max|x_j| / s_j = log2(2 + max|x_j|). */
    memset(amax, 0, sizeof amax);
    for (t = 0; t < MT; t++)
        for (k = 0; k < MK; k++)
            if (fabsf(X[t * MK + k]) > amax[k]) amax[k] = fabsf(X[t * MK + k]);
    for (k = 0; k < MK; k++)
        if (log2(2.0 + amax[k]) > after_max) after_max = log2(2.0 + amax[k]);
    check_method_picture(args, args[5], X, after_max, 0.5);
    CHECK(strstr(run_out, "FPTQ strategy") && strstr(run_out, ": LAE, then per-tensor static\n"));
    CHECK(run_tool(args2) == 0);
    CHECK(strstr(run_out, "bounds 1, 2): per-token dynamic\n") != NULL);
    free(X);
    remove(args[1]);
    remove(args[5]);
}

static void test_heatmap_fptq_strategy(void) {
    hm_opts o;
    hm_opts_init(&o);
    CHECK(strcmp(hm_fptq_strategy(0.0f, &o), "per-tensor static") == 0);
    CHECK(strcmp(hm_fptq_strategy(14.999f, &o), "per-tensor static") == 0);
    CHECK(strcmp(hm_fptq_strategy(15.0f, &o), "LAE, then per-tensor static") == 0);
    CHECK(strcmp(hm_fptq_strategy(149.99f, &o), "LAE, then per-tensor static") == 0);
    CHECK(strcmp(hm_fptq_strategy(150.0f, &o), "per-token dynamic") == 0);
    o.fptq_low = 2.0f;
    o.fptq_high = 3.0f;
    CHECK(strcmp(hm_fptq_strategy(1.0f, &o), "per-tensor static") == 0);
    CHECK(strcmp(hm_fptq_strategy(2.5f, &o), "LAE, then per-tensor static") == 0);
    CHECK(strcmp(hm_fptq_strategy(15.0f, &o), "per-token dynamic") == 0);
}

static void test_heatmap_smoothquant(void) {
    const char *args[] = { "--raw", HM_DIR "hm_m.f32", "--shape", "32,48", "-o", HM_DIR "hm_sq.png", "--method",
                           "smoothquant", "--weights", HM_DIR "hm_mw.f32", "--wshape", "16,48", "--alpha", "0.75",
                           NULL };
    float *X = method_acts(), *W = uniform_matrix(MN, MK, 23), amax[MK], wmax[MK];
    double after_max = 0.0;
    size_t i, k;
    CHECK(write_f32(args[1], X, (size_t)MT * MK));
    CHECK(write_f32(args[9], W, (size_t)MN * MK));
    /* SmoothQuant: max|x_j| / s_j = max|x_j|^(1-alpha) max|w_j|^alpha. */
    memset(amax, 0, sizeof amax);
    memset(wmax, 0, sizeof wmax);
    for (i = 0; i < (size_t)MT * MK; i++)
        if (fabsf(X[i]) > amax[i % MK]) amax[i % MK] = fabsf(X[i]);
    for (i = 0; i < (size_t)MN * MK; i++)
        if (fabsf(W[i]) > wmax[i % MK]) wmax[i % MK] = fabsf(W[i]);
    for (k = 0; k < MK; k++) {
        double v = pow(amax[k], 0.25) * pow(wmax[k], 0.75);
        if (v > after_max) after_max = v;
    }
    check_method_picture(args, args[5], X, after_max, 0.5);
    CHECK(strstr(run_out, "SmoothQuant, alpha 0.75") != NULL);
    free(X);
    free(W);
    remove(args[1]);
    remove(args[9]);
    remove(args[5]);
}

/* ---------------------------------------------------------------------------
   Bad input: a message, an exit status, and no file */

#define XOK HM_DIR "hm_ok.f32"
#define WOK HM_DIR "hm_wok.f32"
#define OUTP HM_DIR "hm_bad.png"

typedef struct bad_case {
    const char *args[20];
    int rc;
    const char *msg;
} bad_case;

#define BASE "--raw", XOK, "--shape", "16,64", "-o", OUTP

static const bad_case bad_cases[] = {
    { { BASE, "--bogus", "1" }, 2, "unknown option '--bogus'" },
    { { BASE, "--bogus" }, 2, "unknown option '--bogus'" },
    { { BASE, "--shape" }, 2, "option --shape needs a value" },
    { { BASE, "stray" }, 2, "unexpected argument 'stray'" },
    { { "--raw", XOK, "--shape", "16,64" }, 2, "--raw, --shape and -o are required" },
    { { "--raw", XOK, "--shape", "16x64", "-o", OUTP }, 2, "--shape wants T,K" },
    { { "--raw", XOK, "--shape", "0,64", "-o", OUTP }, 2, "--shape wants T,K" },
    { { "--raw", XOK, "--shape", "16,", "-o", OUTP }, 2, "--shape wants T,K" },
    { { "--raw", XOK, "--shape", ",64", "-o", OUTP }, 2, "--shape wants T,K" },
    { { "--raw", XOK, "--shape", "-16,64", "-o", OUTP }, 2, "--shape wants T,K" },
    { { "--raw", XOK, "--shape", "16, 64", "-o", OUTP }, 2, "--shape wants T,K" },
    { { "--raw", XOK, "--shape", "16,64,1", "-o", OUTP }, 2, "--shape wants T,K" },
    { { "--raw", XOK, "--shape", "99999999999999999999,1", "-o", OUTP }, 2, "--shape wants T,K" },
    { { "--raw", XOK, "--shape", "4611686018427387904,2", "-o", OUTP }, 2, "--shape wants T,K" },
    { { "--raw", XOK, "--shape", "16,65", "-o", OUTP }, 1,
      "is 4096 bytes, but --shape 16,65 needs 4160 (float32): file too short" },
    { { "--raw", XOK, "--shape", "17,64", "-o", OUTP }, 1, "file too short" },
    { { "--raw", XOK, "--shape", "16,63", "-o", OUTP }, 1, "needs 4032 (float32): file too long" },
    { { "--raw", HM_DIR "hm_none.f32", "--shape", "16,64", "-o", OUTP }, 1, "cannot read build/hm_none.f32: " },
    { { "--raw", HM_DIR "hm_nan.f32", "--shape", "16,64", "-o", OUTP }, 1, "hm_nan.f32: NaN at token 3, channel 5" },
    { { "--raw", HM_DIR "hm_inf.f32", "--shape", "16,64", "-o", OUTP }, 1, "hm_inf.f32: Inf at token 15, channel 63" },
    { { "--raw", XOK, "--shape", "16,64", "-o", HM_DIR "no/such/dir/x.png" }, 1,
      "cannot write build/no/such/dir/x.png: " },
    { { "--raw", XOK, "--shape", "16,64", "-o", "build" }, 1, "cannot write build: Is a directory" },
    { { BASE, "--method", "awq" }, 2, "unknown method 'awq' (fptq, smoothquant)" },
    { { BASE, "--method", "smoothquant" }, 2, "--method smoothquant needs the layer's weights" },
    { { BASE, "--weights", WOK }, 2, "--weights and --wshape go together" },
    { { BASE, "--method", "smoothquant", "--weights", WOK, "--wshape", "8,63" }, 2,
      "--wshape wants N,K with K = 64 (the activations' channels), not '8,63'" },
    { { BASE, "--method", "smoothquant", "--weights", WOK, "--wshape", "9,64" }, 1, "file too short" },
    { { BASE, "--method", "smoothquant", "--weights", HM_DIR "hm_wnan.f32", "--wshape", "8,64" }, 1,
      "weights: Inf at row 2, column 9" },
    { { BASE, "--alpha", "1.5" }, 2, "--alpha wants a number in [0, 1], not '1.5'" },
    { { BASE, "--alpha", "nan" }, 2, "--alpha wants a number" },
    { { BASE, "--alpha", "0.5x" }, 2, "--alpha wants a number" },
    { { BASE, "--fptq-low", "200" }, 2, "--fptq-low (200) must be below --fptq-high (150)" },
    { { BASE, "--fptq-high", "-1" }, 2, "--fptq-high wants a positive number, not '-1'" },
    { { BASE, "--size", "0,10" }, 2, "--size wants W,H in 1..8192" },
    { { BASE, "--size", "9000,10" }, 2, "--size wants W,H in 1..8192" },
    { { BASE, "--decades", "0" }, 2, "--decades wants a whole number in 1..12" },
    { { BASE, "--decades", "2.5" }, 2, "--decades wants a whole number in 1..12" },
};

static void test_heatmap_bad_inputs(void) {
    float *X = uniform_matrix(16, 64, 31), *W = uniform_matrix(8, 64, 32);
    size_t i;
    FILE *f;
    char keep[8];
    CHECK(write_f32(XOK, X, 16 * 64));
    CHECK(write_f32(WOK, W, 8 * 64));
    X[3 * 64 + 5] = NAN;
    CHECK(write_f32(HM_DIR "hm_nan.f32", X, 16 * 64));
    X[3 * 64 + 5] = 0.0f;
    X[15 * 64 + 63] = -INFINITY;
    CHECK(write_f32(HM_DIR "hm_inf.f32", X, 16 * 64));
    W[2 * 64 + 9] = INFINITY;
    CHECK(write_f32(HM_DIR "hm_wnan.f32", W, 8 * 64));
    remove(HM_DIR "hm_none.f32");
    for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        const char *out = NULL;
        char tmp[256];
        int rc, j;
        for (j = 0; c->args[j]; j++)
            if (strcmp(c->args[j], "-o") == 0 && c->args[j + 1]) out = c->args[j + 1];
        remove(OUTP);
        rc = run_tool(c->args);
        if (rc != c->rc || !strstr(run_err, c->msg)) {
            printf("    case %zu: exit %d (want %d), said: %s", i, rc, c->rc, run_err);
            test_check_failed++;
        }
        CHECK(strncmp(run_err, "w4a8_heatmap: ", 14) == 0 && strchr(run_err, '\n') == run_err + strlen(run_err) - 1);
        CHECK(!exists(OUTP));
        if (out) {
            snprintf(tmp, sizeof tmp, "%s.tmp", out);
            CHECK(!exists(tmp));
        }
    }
    {
        const char *help[] = { "--raw", XOK, "--help", NULL };
        CHECK(run_tool(help) == 0 && strstr(run_out, "usage: w4a8_heatmap") &&
              strstr(run_out, ": fptq, smoothquant\n"));
    }
    /* A failed run leaves an existing picture as it was; a good one replaces it. */
    f = fopen(OUTP, "wb");
    CHECK(f && fputs("keep", f) >= 0 && fclose(f) == 0);
    {
        const char *nan_args[] = { "--raw", HM_DIR "hm_nan.f32", "--shape", "16,64", "-o", OUTP, NULL };
        CHECK(run_tool(nan_args) == 1);
    }
    f = fopen(OUTP, "rb");
    CHECK(f && fread(keep, 1, sizeof keep, f) == 4 && memcmp(keep, "keep", 4) == 0);
    if (f) fclose(f);
    {
        const char *good[] = { BASE, NULL };
        int w = 0, h = 0;
        unsigned char *img;
        CHECK(run_tool(good) == 0);
        img = load_png(OUTP, &w, &h);
        CHECK(w > 0 && h > 0);
        stbi_image_free(img);
        CHECK(!exists(OUTP ".tmp"));
    }
    /* The per-matrix entry point checks what a model hook would hand it. */
    {
        hm_opts o;
        hm_input in;
        hm_opts_init(&o);
        memset(&in, 0, sizeof in);
        in.name = "L0.wo";
        in.X = X;
        in.T = 16;
        in.K = 64;
        o.method = hm_method_find("smoothquant");
        CHECK(o.method != NULL);
        f = tmpfile();
        CHECK(f != NULL);
        if (f) {
            CHECK(hm_layer(&in, &o, OUTP ".2", f, f) == HM_EXIT_USAGE);
            slurp(f, run_err, sizeof run_err);
            CHECK(strstr(run_err, "L0.wo: --method smoothquant needs the layer's weights") != NULL);
        }
        in.T = (size_t)-1 / 32; /* T * K overflows */
        f = tmpfile();
        if (f) {
            CHECK(hm_layer(&in, &o, OUTP ".2", f, f) == HM_EXIT_DATA);
            slurp(f, run_err, sizeof run_err);
            CHECK(strstr(run_err, "L0.wo: bad shape") != NULL);
        }
        CHECK(!exists(OUTP ".2"));
    }
    remove(OUTP);
    remove(XOK);
    remove(WOK);
    remove(HM_DIR "hm_nan.f32");
    remove(HM_DIR "hm_inf.f32");
    remove(HM_DIR "hm_wnan.f32");
    free(X);
    free(W);
}

void tests_heatmap(void) {
    RUN(test_heatmap_font);
    RUN(test_heatmap_colour_scale);
    RUN(test_heatmap_grid);
    RUN(test_heatmap_outlier_channel);
    RUN(test_heatmap_maxpool);
    RUN(test_heatmap_fptq);
    RUN(test_heatmap_fptq_strategy);
    RUN(test_heatmap_smoothquant);
    RUN(test_heatmap_bad_inputs);
}
