/* tools/w4a8_heatmap, compiled in: its command line runs in-process, the PNGs
   it writes are decoded with stb_image and read pixel by pixel. The model
   tests read ../shared/data (or $W4A8_DATA) and say they skipped without it. */
#define _POSIX_C_SOURCE 200809L /* mkdir, rmdir: a directory in the way of a picture */
#include <sys/stat.h>
#include <unistd.h>
#define W4A8_HEATMAP_NO_MAIN
#include "../tools/w4a8_heatmap.c"
#include <stb/stb_image.h>
#include "test.h"

#define HM_DIR "build/"

/* What the last tool run printed. */
static char run_out[16384], run_err[4096];

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

/* Whether the two heatmaps of a before/after picture of T x K are the same pixels. */
static int panels_equal(const char *png, size_t T, size_t K) {
    hm_opts o;
    hm_layout L;
    int w = 0, h = 0, x, y, same = 1;
    unsigned char *img = load_png(png, &w, &h);
    hm_opts_init(&o);
    hm_layout_make(T, K, 2, 3, 0, &o, &L);
    if (!img) return -1;
    for (y = 0; y < L.hh; y++)
        for (x = 0; x < L.hw; x++)
            same &= same_rgb(pixel(img, w, L.panel_x[0] + x, L.heat_y + y), pixel(img, w, L.panel_x[1] + x, L.heat_y + y));
    stbi_image_free(img);
    return same;
}

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
   and the bars of the other channels grow relative to the tallest, more
   than bar_gain times. */
static void check_method_picture(const char *const *args, const char *png, const float *X, double after_max,
                                 double keep, int bar_gain) {
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
    CHECK(bars[1] > bar_gain * bars[0] + MK);
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
    check_method_picture(args, args[5], X, after_max, 0.5, 4);
    CHECK(strstr(run_out, "FPTQ strategy") && strstr(run_out, ": LAE, then per-tensor static\n"));
    CHECK(run_tool(args2) == 0);
    CHECK(strstr(run_out, "bounds 1, 2): per-token dynamic\n") != NULL);
    CHECK(panels_equal(args[5], MT, MK));
    free(X);
    remove(args[1]);
    remove(args[5]);
}

/* The strategy is the library's (w4a8_fptq_choose with the --fptq-* knobs),
   at its bounds too; only the middle band is equalized. */
static void test_heatmap_fptq_strategy(void) {
    static const struct {
        float v;
        const char *low, *high;
    } cases[] = { { 14.999f, "15", "150" }, { 15.0f, "15", "150" }, { 149.99f, "15", "150" },
                  { 150.0f, "15", "150" },  { 2.5f, "2", "3" },     { 3.0f, "3", "3" } };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = { "--raw", HM_DIR "hm_fs.f32", "--shape", "32,48", "-o", HM_DIR "hm_fs.png", "--method",
                               "fptq", "--fptq-low", cases[i].low, "--fptq-high", cases[i].high, NULL };
        float *X = uniform_matrix(MT, MK, 40 + i), amax[MK];
        w4a8_fptq_strategy want;
        char line[160];
        size_t k;
        X[5 * MK + 9] = -cases[i].v; /* the largest |x| */
        memset(amax, 0, sizeof amax);
        for (k = 0; k < (size_t)MT * MK; k++)
            if (fabsf(X[k]) > amax[k % MK]) amax[k % MK] = fabsf(X[k]);
        CHECK_ST(w4a8_fptq_choose(amax, MK, strtof(cases[i].low, NULL), strtof(cases[i].high, NULL), &want), W4A8_OK);
        CHECK(write_f32(args[1], X, (size_t)MT * MK));
        CHECK(run_tool(args) == 0);
        snprintf(line, sizeof line, "FPTQ strategy (max|x| %.4g; bounds %s, %s): %s\n", cases[i].v, cases[i].low,
                 cases[i].high, hm_fptq_names[want]);
        CHECK(strstr(run_out, line) != NULL);
        if (!strstr(run_out, line)) printf("    want %s    got %s", line, run_out);
        CHECK(panels_equal(args[5], MT, MK) == (want != W4A8_FPTQ_LAE_STATIC));
        free(X);
        remove(args[1]);
        remove(args[5]);
    }
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
    check_method_picture(args, args[5], X, after_max, 0.5, 4);
    CHECK(strstr(run_out, "SmoothQuant, alpha 0.75") != NULL);
    free(X);
    free(W);
    remove(args[1]);
    remove(args[9]);
    remove(args[5]);
}

/* The rotation is the library's random Hadamard (seed 1): the after
   panel's maximum is that of w4a8_hadamard's X Q, and the outlier channel
   is spread over all 48 = 12 x 4; an order the library lacks is refused. */
static void test_heatmap_rotate(void) {
    const char *args[] = { "--raw", HM_DIR "hm_m.f32", "--shape", "32,48", "-o", HM_DIR "hm_rot.png", "--method",
                           "rotate", NULL };
    const char *bad[] = { "--raw", HM_DIR "hm_m.f32", "--shape", "256,6", "-o", HM_DIR "hm_rot.png", "--method",
                          "rotate", NULL };
    float *X = method_acts(), *XQ = (float *)malloc((size_t)MT * MK * sizeof(float));
    double after_max = 0.0;
    size_t i;
    CHECK(XQ != NULL);
    if (!XQ) return;
    CHECK(write_f32(args[1], X, (size_t)MT * MK));
    CHECK_ST(w4a8_hadamard(X, MT, MK, 1, 0, XQ), W4A8_OK);
    for (i = 0; i < (size_t)MT * MK; i++)
        if (fabs(XQ[i]) > after_max) after_max = fabs(XQ[i]);
    check_method_picture(args, args[5], X, after_max, 0.5, 4);
    CHECK(strstr(run_out, "rotation: x Q, Q a random Hadamard of order 48 = 12 x 2^k (seed 1)") != NULL);
    CHECK(run_tool(bad) == 1 && strstr(run_err, "hm_m.f32: rotate: ") != NULL);
    free(X);
    free(XQ);
    remove(args[1]);
    remove(args[5]);
}

/* AWQ's s from the library on the same calibration (the picture's tokens,
   all kept as the sample): the after panel and the printed ratio match it. */
static void test_heatmap_awq(void) {
    const char *args[] = { "--raw", HM_DIR "hm_m.f32", "--shape", "32,48", "-o", HM_DIR "hm_awq.png", "--method",
                           "awq", "--weights", HM_DIR "hm_mw.f32", "--wshape", "16,48", "--group", "16", NULL };
    float *X = method_acts(), *W = uniform_matrix(MN, MK, 23), s[MK], r = -1.0f;
    double after_max = 0.0;
    w4a8_calib *calib = NULL;
    w4a8_linear lin;
    char want[64];
    size_t i;
    memset(&lin, 0, sizeof lin);
    lin.W = W;
    lin.N = MN;
    CHECK(write_f32(args[1], X, (size_t)MT * MK));
    CHECK(write_f32(args[9], W, (size_t)MN * MK));
    CHECK_ST(w4a8_calib_create(MK, 0, MT, &calib), W4A8_OK);
    CHECK_ST(w4a8_calib_add(calib, X, MT), W4A8_OK);
    CHECK_ST(w4a8_smooth_awq(&lin, 1, MK, calib, 16, 20, s, &r, NULL), W4A8_OK);
    for (i = 0; i < (size_t)MT * MK; i++)
        if (fabs(X[i] * (1.0f / s[i % MK])) > after_max) after_max = fabs(X[i] * (1.0f / s[i % MK]));
    CHECK(r > 0.0f); /* the search found the outlier's weights worth protecting */
    /* s_j ~ mean|x_j|^r: the outlier's lead over the others, in log, shrinks
       about (1 - r) times; asserted: half of that. */
    check_method_picture(args, args[5], X, after_max, 1.0 - r / 2.0, 2);
    snprintf(want, sizeof want, "AWQ ratio %.3g: ", r);
    CHECK(strstr(run_out, want) != NULL && strstr(run_out, "on 32 tokens, groups of 16"));
    w4a8_calib_free(calib);
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
    { { BASE, "--method", "gptq" }, 2, "unknown method 'gptq' (fptq, smoothquant, awq, rotate)" },
    { { BASE, "--method", "awq" }, 2, "--method awq needs the layer's weights" },
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
    { { BASE, "--fptq-low", "200" }, 2, "--fptq-low (200) must not exceed --fptq-high (150)" },
    { { BASE, "--fptq-high", "-1" }, 2, "--fptq-high wants a number >= 0, not '-1'" },
    { { BASE, "--group", "0" }, 2, "--group wants a whole number in 1..1048576, not '0'" },
    { { BASE, "--tokens", "8" }, 2, "--tokenizer, --text, --tokens, --layers and --outliers go with --model" },
    { { BASE, "--outliers" }, 2, "--tokenizer, --text, --tokens, --layers and --outliers go with --model" },
    { { BASE, "--model", "m.bin" }, 2, "--raw or --model, not both" },
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
              strstr(run_out, ": fptq, smoothquant, awq, rotate\n"));
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
        hm_batch batch;
        w4a8_linear lin;
        hm_opts_init(&o);
        memset(&in, 0, sizeof in);
        memset(&batch, 0, sizeof batch);
        in.name = "L0.wo";
        in.X = X;
        in.T = 16;
        in.K = 64;
        o.method = hm_method_find("smoothquant");
        CHECK(o.method != NULL);
        f = tmpfile();
        CHECK(f != NULL);
        if (f) {
            CHECK(hm_layer(&in, &o, OUTP ".2", &batch, f, f) == HM_EXIT_USAGE);
            slurp(f, run_err, sizeof run_err);
            CHECK(strstr(run_err, "L0.wo: --method smoothquant needs the layer's weights") != NULL);
        }
        in.T = (size_t)-1 / 32; /* T * K overflows */
        f = tmpfile();
        if (f) {
            CHECK(hm_layer(&in, &o, OUTP ".2", &batch, f, f) == HM_EXIT_DATA);
            slurp(f, run_err, sizeof run_err);
            CHECK(strstr(run_err, "L0.wo: bad shape") != NULL);
        }
        in.T = 16; /* a linear without rows */
        memset(&lin, 0, sizeof lin);
        lin.W = W;
        in.lin = &lin;
        in.nlin = 1;
        f = tmpfile();
        if (f) {
            CHECK(hm_layer(&in, &o, OUTP ".2", &batch, f, f) == HM_EXIT_DATA);
            slurp(f, run_err, sizeof run_err);
            CHECK(strstr(run_err, "L0.wo: bad weight shape 0 x 64") != NULL);
        }
        CHECK(batch.n == 0 && hm_batch_finish(&batch, 0, stdout) == 0);
        CHECK(!exists(OUTP ".2") && !exists(OUTP ".2.tmp"));
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

/* ---------------------------------------------------------------------------
   Checkpoint input, on the shared llama2.c checkpoints. The tests find what
   the pictures must show with their own forward through the example's API. */

static char data_dir[1024], model_path[1100], tok_path[1100];
static llama_model model;
static llama_tokenizer tok;

#define TEXT HM_DIR "hm_text.txt"
static const char story[] = "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
                            "park. One day, she saw a big red ball under a tree.\n";
enum { TOK = 16 }; /* tokens the model tests run */
#define TOKS "16"

static void data_file(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", data_dir, name); }

/* The input of every linear over the first T tokens of the story. */
typedef struct act {
    char name[HM_LAYER_NAME];
    int layer;
    llama_input which;
    float *X;
    size_t T, K;
} act;

typedef struct acts {
    act a[64];
    size_t n;
} acts;

static int acts_hook(void *user, const char *name, int layer, llama_input which, const float *X, size_t T, size_t K) {
    acts *r = (acts *)user;
    act *a = &r->a[r->n];
    if (r->n == 64 || !(a->X = (float *)malloc(T * K * sizeof(float)))) return 1;
    snprintf(a->name, sizeof a->name, "%s", name);
    a->layer = layer;
    a->which = which;
    memcpy(a->X, X, T * K * sizeof(float));
    a->T = T;
    a->K = K;
    r->n++;
    return 0;
}

static void acts_run(const llama_model *m, const llama_tokenizer *t, size_t T, acts *r) {
    int *ids = NULL;
    size_t n = 0;
    llama_state *s = NULL;
    memset(r, 0, sizeof *r);
    CHECK(llama_encode_stories(t, story, strlen(story), &ids, &n) == LLAMA_OK && n >= T);
    CHECK(llama_state_create(m, T, T, &s) == LLAMA_OK);
    if (ids && s && n >= T) CHECK(llama_forward(m, NULL, s, ids, T, 0, NULL, acts_hook, r) == LLAMA_OK);
    CHECK(r->n == (size_t)m->c.n_layers * LLAMA_INPUTS_PER_LAYER + 1);
    llama_state_free(s);
    free(ids);
}

static const act *acts_find(const acts *r, const char *name) {
    size_t i;
    for (i = 0; i < r->n; i++)
        if (strcmp(r->a[i].name, name) == 0) return &r->a[i];
    CHECK(!"no such input");
    return NULL;
}

static void acts_free(acts *r) {
    size_t i;
    for (i = 0; i < r->n; i++) free(r->a[i].X);
}

/* Per-channel max|x| into amax[K]; the overall max and where it is. */
static float act_stats(const act *a, float *amax, size_t *t_at, size_t *k_at) {
    size_t i, at = 0;
    float m = 0.0f;
    for (i = 0; i < a->K; i++) amax[i] = 0.0f;
    for (i = 0; i < a->T * a->K; i++) {
        float v = fabsf(a->X[i]);
        if (v > amax[i % a->K]) amax[i % a->K] = v;
        if (v > m) m = v, at = i;
    }
    *t_at = at / a->K;
    *k_at = at % a->K;
    return m;
}

/* The model mode's arguments, then `extra` (NULL-terminated), into argv. */
static void model_args(const char **argv, const char *const *extra) {
    size_t i = 0;
    argv[i++] = "--model", argv[i++] = model_path, argv[i++] = "--tokenizer", argv[i++] = tok_path;
    argv[i++] = "--text", argv[i++] = TEXT, argv[i++] = "--tokens", argv[i++] = TOKS;
    while (*extra) argv[i++] = *extra++;
    argv[i] = NULL;
}

static void pattern_path(char *buf, size_t cap, const char *prefix, const char *name) {
    char file[HM_LAYER_NAME];
    hm_file_name(name, file);
    snprintf(buf, cap, "%s%s.png", prefix, file);
}

/* A filter picks the right inputs: one PNG each, of the right size, and
   nothing else; DIR/ puts them into a directory. */
static void test_heatmap_model_files(void) {
    static const char *const want[] = { "L0.qkv", "L2.qkv", "L2.wo", "L2.w13", "L2.w2", "cls" };
    const char *extra[] = { "--layers", "L0.qkv,cls,L2", "-o", HM_DIR "hm_mf_%s.png", NULL }, *argv[24];
    const char *dir[] = { "--layers", "cls", "-o", HM_DIR, NULL };
    acts r;
    size_t i, j, lines = 0;
    char path[256];
    acts_run(&model, &tok, TOK, &r);
    model_args(argv, extra);
    CHECK(run_tool(argv) == 0);
    for (i = 0; run_out[i]; i++) lines += run_out[i] == '\n';
    CHECK(lines == 6);
    for (i = 0; i < r.n; i++) {
        int selected = 0, w = 0, h = 0;
        for (j = 0; j < 6; j++) selected |= strcmp(r.a[i].name, want[j]) == 0;
        pattern_path(path, sizeof path, HM_DIR "hm_mf_", r.a[i].name);
        CHECK(exists(path) == selected);
        if (selected) {
            hm_opts o;
            hm_layout L;
            unsigned char *img = load_png(path, &w, &h);
            hm_opts_init(&o);
            hm_layout_make(TOK, r.a[i].K, 1, 3, 0, &o, &L);
            CHECK(h == L.h && (r.a[i].K == 64 ? w == L.w : w >= L.w)); /* the notes may widen a narrow one */
            CHECK(r.a[i].K == (r.a[i].which == LLAMA_IN_W2 ? 172u : 64u));
            stbi_image_free(img);
            remove(path);
        }
        snprintf(path + strlen(path), 8, ".tmp");
        CHECK(!exists(path));
    }
    model_args(argv, dir);
    CHECK(run_tool(argv) == 0 && exists(HM_DIR "cls.png"));
    CHECK(strncmp(run_out, HM_DIR "cls.png: cls, 16 x 64,", strlen(HM_DIR "cls.png: cls, 16 x 64,")) == 0);
    remove(HM_DIR "cls.png");
    acts_free(&r);
}

/* The channel with the largest |x| (from our own forward) has the tallest
   bar, and its value the brightest pixel; in the outlier variant too. */
static void check_largest(const act *a, const char *png) {
    hm_opts o;
    hm_layout L;
    float amax[256], m;
    size_t t_at, k_at, t, k;
    int w = 0, h = 0, y;
    unsigned char *img = load_png(png, &w, &h);
    double top = -1.0;
    if (!img || a->K > 256) return;
    m = act_stats(a, amax, &t_at, &k_at);
    hm_opts_init(&o);
    hm_layout_make(a->T, a->K, 1, 3, 0, &o, &L);
    CHECK(L.g.px == 1 && L.g.py == 1); /* one cell per value */
    for (k = 0; k < a->K; k++) {
        int bar = 0, x = L.panel_x[0] + (int)(k * L.g.zx);
        for (y = 0; y < HM_STRIP; y++) bar += same_rgb(pixel(img, w, x, L.strip_y + y), hm_dark);
        if (k == k_at) CHECK(bar == HM_STRIP);
        else if (amax[k] < m * (1.0f - 1.0f / HM_STRIP)) CHECK(bar < HM_STRIP);
    }
    for (t = 0; t < a->T; t++)
        for (k = 0; k < a->K; k++) {
            double l = luma(pixel(img, w, L.panel_x[0] + (int)(k * L.g.zx), L.heat_y + (int)(t * L.g.zy)));
            if (l > top) top = l;
        }
    CHECK(luma(pixel(img, w, L.panel_x[0] + (int)(k_at * L.g.zx), L.heat_y + (int)(t_at * L.g.zy))) == top);
    for (t = 0; t < a->T; t++) /* ties only where the colour map cannot tell 1% apart */
        for (k = 0; k < a->K; k++)
            if (luma(pixel(img, w, L.panel_x[0] + (int)(k * L.g.zx), L.heat_y + (int)(t * L.g.zy))) == top)
                CHECK(fabsf(a->X[t * a->K + k]) >= 0.99f * m);
    stbi_image_free(img);
}

static void test_heatmap_model_largest(void) {
    const char *extra[] = { "--layers", "L3.w2,cls", "-o", HM_DIR "hm_ml_%s.png", NULL }, *argv[24];
    const char *extra_v[] = { "--layers", "L0.qkv", "-o", HM_DIR "hm_mlv.png", "--outliers", NULL };
    llama_model variant;
    acts r;
    char path[128];
    size_t t, k;
    float amax[64];
    acts_run(&model, &tok, TOK, &r);
    model_args(argv, extra);
    CHECK(run_tool(argv) == 0);
    pattern_path(path, sizeof path, HM_DIR "hm_ml_", "L3.w2");
    check_largest(acts_find(&r, "L3.w2"), path);
    remove(path);
    pattern_path(path, sizeof path, HM_DIR "hm_ml_", "cls");
    check_largest(acts_find(&r, "cls"), path);
    remove(path);
    acts_free(&r);
    CHECK(llama_inject_outliers(&model, &variant) == LLAMA_OK);
    acts_run(&variant, &tok, TOK, &r);
    model_args(argv, extra_v);
    CHECK(run_tool(argv) == 0);
    check_largest(acts_find(&r, "L0.qkv"), HM_DIR "hm_mlv.png");
    /* The variant's largest channel is not the original's. */
    CHECK(act_stats(acts_find(&r, "L0.qkv"), amax, &t, &k) > 100.0f);
    remove(HM_DIR "hm_mlv.png");
    acts_free(&r);
    llama_free(&variant);
}

/* AWQ from the model's w1/w3: the library's s on the picture's tokens;
   both panels on one colour scale, each maximum at its level on it. */
static void test_heatmap_model_awq(void) {
    const char *extra[] = { "--layers", "L0.w13", "--method", "awq", "--group", "32", "-o", HM_DIR "hm_mawq.png",
                            NULL }, *argv[24];
    acts r;
    const act *a;
    w4a8_linear lin[2];
    w4a8_calib *calib = NULL;
    float s[64], r_awq = -1.0f, amax[64], bmax, amax_after = 0.0f;
    size_t t_b, k_b, t_a = 0, k_a = 0, i, N, K;
    double hi;
    char want[64];
    hm_opts o;
    hm_layout L;
    level_lut *lut = (level_lut *)malloc(sizeof *lut);
    unsigned char *img;
    int w = 0, h = 0;
    acts_run(&model, &tok, TOK, &r);
    a = acts_find(&r, "L0.w13");
    if (!a || !lut) {
        free(lut);
        acts_free(&r);
        return;
    }
    memset(lin, 0, sizeof lin);
    lin[0].W = llama__weight(&model, 0, LLAMA_W1, &lin[0].N, &K);
    lin[1].W = llama__weight(&model, 0, LLAMA_W3, &N, &K);
    lin[1].N = N;
    CHECK_ST(w4a8_calib_create(64, 0, TOK, &calib), W4A8_OK);
    CHECK_ST(w4a8_calib_add(calib, a->X, TOK), W4A8_OK);
    CHECK_ST(w4a8_smooth_awq(lin, 2, 64, calib, 32, 20, s, &r_awq, NULL), W4A8_OK);
    CHECK(r_awq > 0.0f); /* s is not 1: the panels differ */
    bmax = act_stats(a, amax, &t_b, &k_b);
    for (i = 0; i < TOK * 64; i++) {
        float v = fabsf(a->X[i] * (1.0f / s[i % 64]));
        if (v > amax_after) amax_after = v, t_a = i / 64, k_a = i % 64;
    }
    model_args(argv, extra);
    CHECK(run_tool(argv) == 0);
    snprintf(want, sizeof want, "L0.w13: AWQ ratio %.3g: ", r_awq);
    CHECK(strstr(run_out, want) != NULL);
    hi = bmax > amax_after ? bmax : amax_after;
    hm_opts_init(&o);
    hm_layout_make(TOK, 64, 2, 4, 0, &o, &L);
    lut_init(lut);
    img = load_png(HM_DIR "hm_mawq.png", &w, &h);
    if (img) {
        double lb = level_of(lut, pixel(img, w, L.panel_x[0] + (int)(k_b * L.g.zx) + 1, L.heat_y + (int)(t_b * L.g.zy) + 1));
        double la = level_of(lut, pixel(img, w, L.panel_x[1] + (int)(k_a * L.g.zx) + 1, L.heat_y + (int)(t_a * L.g.zy) + 1));
        CHECK(w == L.w && h == L.h);
        CHECK(fabs(lb - (1.0 + log10(bmax / hi) / o.decades)) < 0.01);
        CHECK(fabs(la - (1.0 + log10(amax_after / hi) / o.decades)) < 0.01);
        CHECK(fabs(lb - la) > 0.02); /* the maxima differ enough for the check above to tell */
        stbi_image_free(img);
    }
    remove(HM_DIR "hm_mawq.png");
    w4a8_calib_free(calib);
    free(lut);
    acts_free(&r);
}

/* FPTQ's strategy per input, as printed, is w4a8_fptq_choose's on the
   input's max|x| with the --fptq-* bounds. */
static void test_heatmap_model_fptq(void) {
    const char *extra[] = { "--method", "fptq", "--fptq-low", "3", "--fptq-high", "6", "--size", "64,16", "-o",
                            HM_DIR "hm_mfp_%s.png", NULL }, *argv[24];
    acts r;
    size_t i, t, k, kinds[4] = { 0, 0, 0, 0 };
    float amax[256];
    char line[192], path[128];
    acts_run(&model, &tok, TOK, &r);
    model_args(argv, extra);
    CHECK(run_tool(argv) == 0);
    for (i = 0; i < r.n; i++) {
        w4a8_fptq_strategy want = W4A8_FPTQ_NONE;
        float v = act_stats(&r.a[i], amax, &t, &k);
        CHECK_ST(w4a8_fptq_choose(amax, r.a[i].K, 3.0f, 6.0f, &want), W4A8_OK);
        kinds[want]++;
        snprintf(line, sizeof line, "\n%s: FPTQ strategy (max|x| %.4g; bounds 3, 6): %s\n", r.a[i].name, v,
                 hm_fptq_names[want]);
        CHECK(strstr(run_out, line) != NULL);
        if (!strstr(run_out, line)) printf("    want%s", line);
        pattern_path(path, sizeof path, HM_DIR "hm_mfp_", r.a[i].name);
        CHECK(exists(path));
        remove(path);
    }
    CHECK(kinds[W4A8_FPTQ_STATIC] && kinds[W4A8_FPTQ_LAE_STATIC] && kinds[W4A8_FPTQ_PER_TOKEN]);
    acts_free(&r);
}

/* The other shared checkpoint: character-level, dim 128. */
static void test_heatmap_model_babyllama(void) {
    char mpath[1100], tpath[1100], want[96];
    const char *argv[] = { "--model", mpath, "--tokenizer", tpath, "--text", TEXT, "--tokens", "8", "--layers",
                           "cls,L4.w2", "-o", HM_DIR "hm_bl_%s.png", NULL };
    llama_model m;
    llama_tokenizer t;
    acts r;
    float amax[512];
    size_t i, tt, k;
    data_file(mpath, sizeof mpath, "babyllama_tok105_model5000.bin");
    data_file(tpath, sizeof tpath, "tok105.bin");
    CHECK(llama_load(mpath, &m) == LLAMA_OK);
    CHECK(llama_tokenizer_load(tpath, m.c.vocab_size, &t) == LLAMA_OK);
    acts_run(&m, &t, 8, &r);
    CHECK(run_tool(argv) == 0);
    for (i = 0; i < r.n; i++) {
        int is_cls = strcmp(r.a[i].name, "cls") == 0;
        if (!is_cls && strcmp(r.a[i].name, "L4.w2") != 0) continue;
        snprintf(want, sizeof want, ": %s, 8 x %zu, max|x| %.4g -> ", r.a[i].name, r.a[i].K,
                 act_stats(&r.a[i], amax, &tt, &k));
        CHECK(r.a[i].K == (is_cls ? 128u : 352u) && strstr(run_out, want) != NULL);
    }
    CHECK(exists(HM_DIR "hm_bl_cls.png") && exists(HM_DIR "hm_bl_L4_w2.png") && !exists(HM_DIR "hm_bl_L4_qkv.png"));
    remove(HM_DIR "hm_bl_cls.png");
    remove(HM_DIR "hm_bl_L4_w2.png");
    acts_free(&r);
    llama_tokenizer_free(&t);
    llama_free(&m);
}

/* Unit pieces of the model mode: --layers patterns and output names. */
static void test_heatmap_model_names(void) {
    char *p;
    CHECK(hm_pattern_selects("L3", "L3.qkv") && hm_pattern_selects("L3", "L3.w2") && !hm_pattern_selects("L3", "L30.w2"));
    CHECK(hm_pattern_selects("*.w2", "L0.w2") && !hm_pattern_selects("*.w2", "L0.w13") && !hm_pattern_selects("*.w2", "cls"));
    CHECK(hm_pattern_selects("L?.qkv", "L7.qkv") && !hm_pattern_selects("L?.qkv", "L12.qkv"));
    CHECK(hm_pattern_selects("cls", "cls") && !hm_pattern_selects("cl", "cls") && hm_pattern_selects("*", "cls"));
    CHECK(hm_pattern_selects("L1*", "L12.wo") && hm_pattern_selects("**s", "cls") && !hm_pattern_selects("L0.qkv", "L0.qk"));
    p = hm_out_path("out/", "L0.qkv");
    CHECK(p && strcmp(p, "out/L0_qkv.png") == 0);
    free(p);
    p = hm_out_path("docs/heatmap_%s_fptq.png", "L0.qkv");
    CHECK(p && strcmp(p, "docs/heatmap_L0_qkv_fptq.png") == 0);
    free(p);
    p = hm_out_path("x.png", "cls");
    CHECK(p && strcmp(p, "x.png") == 0);
    free(p);
}

/* Bad model input: a message, an exit status, nothing on stdout, no file. */
typedef struct model_bad {
    const char *extra[12];
    int rc;
    const char *msg, *absent;
} model_bad;

static void test_heatmap_model_bad(void) {
    char tok105[1100], msg[1400];
    const char *argv[32];
    static const model_bad cases[] = {
        { { "--layers", "L5", "-o", HM_DIR "hm_mb/" }, 2, "--layers L5: 'L5' selects nothing (this model has L0.qkv .. cls)", NULL },
        { { "--layers", "L0,,cls", "-o", HM_DIR "hm_mb/" }, 2, "--layers wants names or patterns separated by commas", NULL },
        { { "--layers", "L0.qkv,L9.*", "-o", HM_DIR "hm_mb/" }, 2, "'L9.*' selects nothing", NULL },
        { { "--layers", "L0", "-o", HM_DIR "hm_mb_nodir/" }, 1, "cannot write build/hm_mb_nodir/L0_qkv.png: No such file or directory", NULL },
        { { "--layers", "L0", "-o", TEXT "/" }, 1, "cannot write build/hm_text.txt/L0_qkv.png: Not a directory", NULL },
        { { "--layers", "L0", "-o", HM_DIR "hm_mb_one.png" }, 2, "-o build/hm_mb_one.png is one file, but 4 inputs are selected", HM_DIR "hm_mb_one.png" },
        { { "--tokens", "513", "-o", HM_DIR "hm_mb_one.png", "--layers", "cls" }, 2, "--tokens 513: the model's context is 512 tokens", HM_DIR "hm_mb_one.png" },
        { { "--layers", "L0.qkv,L0.wo", "-o", HM_DIR "hm_mid_%s.png" }, 1, "cannot write build/hm_mid_L0_wo.png: Is a directory", HM_DIR "hm_mid_L0_qkv.png.tmp" },
        { { "--shape", "4,4", "-o", HM_DIR "hm_mb/" }, 2, "--shape, --name, --weights and --wshape go with --raw", NULL },
        { { "--layers", "cls", "--method", "awq", "--group", "x", "-o", HM_DIR "hm_mb/" }, 2, "--group wants a whole number", NULL },
    };
    size_t i;
    FILE *f;
    char keep[8];
    /* A directory where L0.wo's picture would go, and an old L0.qkv picture:
       the run fails at L0.wo and leaves L0.qkv's as it was. */
    CHECK(mkdir(HM_DIR "hm_mid_L0_wo.png.tmp", 0700) == 0 || errno == EEXIST);
    f = fopen(HM_DIR "hm_mid_L0_qkv.png", "wb");
    CHECK(f && fputs("keep", f) >= 0 && fclose(f) == 0);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model_args(argv, cases[i].extra);
        if (run_tool(argv) != cases[i].rc || !strstr(run_err, cases[i].msg)) {
            printf("    case %zu: exit %d (want %d), said: %s", i, run_tool(argv), cases[i].rc, run_err);
            test_check_failed++;
        }
        CHECK(strncmp(run_err, "w4a8_heatmap: ", 14) == 0 && strchr(run_err, '\n') == run_err + strlen(run_err) - 1);
        CHECK(run_out[0] == '\0'); /* no line claims a picture */
        if (cases[i].absent) CHECK(!exists(cases[i].absent));
    }
    f = fopen(HM_DIR "hm_mid_L0_qkv.png", "rb");
    CHECK(f && fread(keep, 1, sizeof keep, f) == 4 && memcmp(keep, "keep", 4) == 0);
    if (f) fclose(f);
    remove(HM_DIR "hm_mid_L0_qkv.png");
    CHECK(rmdir(HM_DIR "hm_mid_L0_wo.png.tmp") == 0);
    /* The files themselves. */
    data_file(tok105, sizeof tok105, "tok105.bin");
    {
        const char *a[] = { "--model", HM_DIR "hm_none.bin", "--tokenizer", tok_path, "--text", TEXT, "-o", HM_DIR, NULL };
        CHECK(run_tool(a) == 1 && strstr(run_err, "cannot load the model build/hm_none.bin: cannot open or read the file"));
    }
    {
        const char *a[] = { "--model", model_path, "--tokenizer", tok105, "--text", TEXT, "-o", HM_DIR, NULL };
        snprintf(msg, sizeof msg, "cannot load the tokenizer %s: the tokenizer's vocabulary size differs from the model's\n", tok105);
        CHECK(run_tool(a) == 1 && strstr(run_err, msg));
    }
    {
        const char *a[] = { "--model", tok_path, "--tokenizer", tok_path, "--text", TEXT, "-o", HM_DIR, NULL };
        CHECK(run_tool(a) == 1 && strstr(run_err, "cannot load the model") && strstr(run_err, "tok512.bin: "));
    }
    {
        const char *a[] = { "--model", model_path, "--tokenizer", tok_path, "--text", HM_DIR "hm_none.txt", "-o", HM_DIR, NULL };
        CHECK(run_tool(a) == 1 && strstr(run_err, "cannot read the text build/hm_none.txt: "));
    }
    f = fopen(HM_DIR "hm_blank.txt", "wb");
    CHECK(f && fputs(" \n\n<|endoftext|>\n \n", f) >= 0 && fclose(f) == 0);
    {
        const char *a[] = { "--model", model_path, "--tokenizer", tok_path, "--text", HM_DIR "hm_blank.txt", "-o", HM_DIR, NULL };
        CHECK(run_tool(a) == 1 && strstr(run_err, "build/hm_blank.txt has no text to run the model on"));
    }
    remove(HM_DIR "hm_blank.txt");
    {
        const char *a[] = { "--model", model_path, "--text", TEXT, "-o", HM_DIR, NULL };
        CHECK(run_tool(a) == 2 && strstr(run_err, "--model needs --tokenizer, --text and -o"));
    }
    CHECK(!exists(HM_DIR "L0_qkv.png") && !exists(HM_DIR "cls.png"));
}

/* Hostile targets (issue 18): a pipe, a link, a directory as -o or as
   its .tmp are refused and stay what they were; a directory as --raw is not
   a file of LONG_MAX bytes; lost standard output is exit 1. */
static void test_heatmap_hostile(void) {
    const char *raw = HM_DIR "hm_host.f32", *png = HM_DIR "hm_host.png", *link = HM_DIR "hm_host_link.png",
               *fifo = HM_DIR "hm_host.fifo";
    float *X = uniform_matrix(4, 8, 77);
    struct stat st;
    FILE *f;
    char keep[8];
    CHECK(write_f32(raw, X, 32));
    free(X);
    /* a pipe stands for any device: a regression run as root must not
       replace a real one (the bug turned /dev/full into a regular file) */
    remove(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    {
        const char *a[] = { "--raw", raw, "--shape", "4,8", "-o", fifo, NULL };
        CHECK(run_tool(a) == 1 && strstr(run_err, "cannot write build/hm_host.fifo: not a regular file"));
        CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
        CHECK(run_out[0] == '\0' && !exists(HM_DIR "hm_host.fifo.tmp"));
    }
    remove(fifo);
    /* a link to an old picture: neither is touched */
    f = fopen(png, "wb");
    CHECK(f && fputs("keep", f) >= 0 && fclose(f) == 0);
    remove(link);
    CHECK(symlink("hm_host.png", link) == 0);
    {
        const char *a[] = { "--raw", raw, "--shape", "4,8", "-o", link, NULL };
        CHECK(run_tool(a) == 1 && strstr(run_err, "cannot write build/hm_host_link.png: a symbolic link"));
        CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode) && run_out[0] == '\0');
    }
    /* the link as PATH.tmp: nothing is written through it */
    remove(link);
    CHECK(symlink("hm_host.png", HM_DIR "hm_host2.png.tmp") == 0);
    {
        const char *a[] = { "--raw", raw, "--shape", "4,8", "-o", HM_DIR "hm_host2.png", NULL };
        CHECK(run_tool(a) == 1 && strstr(run_err, "cannot write build/hm_host2.png: a symbolic link"));
        CHECK(!exists(HM_DIR "hm_host2.png"));
    }
    CHECK(lstat(HM_DIR "hm_host2.png.tmp", &st) == 0 && S_ISLNK(st.st_mode));
    remove(HM_DIR "hm_host2.png.tmp");
    f = fopen(png, "rb");
    CHECK(f && fread(keep, 1, sizeof keep, f) == 4 && memcmp(keep, "keep", 4) == 0);
    if (f) fclose(f);
    {
        const char *a[] = { "--raw", raw, "--shape", "4,8", "-o", "build", NULL };
        CHECK(run_tool(a) == 1 && strstr(run_err, "cannot write build: Is a directory"));
        CHECK(run_out[0] == '\0'); /* no success line before the failure */
    }
    {
        const char *a[] = { "--raw", "build", "--shape", "4,8", "-o", png, NULL };
        CHECK(run_tool(a) == 1 && strstr(run_err, "cannot read build: Is a directory") &&
              !strstr(run_err, "9223372036854775807"));
    }
    { /* standard output on a full disk: the picture is made, the exit status says the lines are lost */
        const char *argv[] = { "w4a8_heatmap", "--raw", raw, "--shape", "4,8", "-o", png, NULL };
        FILE *full = fopen("/dev/full", "w"), *err = tmpfile();
        CHECK(full && err);
        if (full && err) {
            CHECK(hm_main(7, argv, full, err) == 1);
            slurp(err, run_err, sizeof run_err);
            CHECK(strstr(run_err, "w4a8_heatmap: cannot write standard output: ") != NULL);
            fclose(full);
        }
        f = fopen(png, "rb");
        CHECK(f && fread(keep, 1, sizeof keep, f) == 8 && memcmp(keep, "\x89PNG", 4) == 0);
        if (f) fclose(f);
    }
    remove(png);
    remove(raw);
}

static void tests_heatmap_model(void) {
    const char *env = getenv("W4A8_DATA"), *skip = NULL;
    FILE *f;
    snprintf(data_dir, sizeof data_dir, "%s", env && *env ? env : "../shared/data");
    data_file(model_path, sizeof model_path, "stories260K.bin");
    data_file(tok_path, sizeof tok_path, "tok512.bin");
    if (llama_load(model_path, &model) != LLAMA_OK || llama_tokenizer_load(tok_path, 512, &tok) != LLAMA_OK) {
        printf("heatmap model: skipped: no data at %s (set W4A8_DATA)\n", data_dir);
        skip = "no data";
    } else {
        f = fopen(TEXT, "wb");
        CHECK(f && fputs(story, f) >= 0 && fclose(f) == 0);
    }
    RUN_UNLESS(skip, test_heatmap_model_names);
    RUN_UNLESS(skip, test_heatmap_model_files);
    RUN_UNLESS(skip, test_heatmap_model_largest);
    RUN_UNLESS(skip, test_heatmap_model_awq);
    RUN_UNLESS(skip, test_heatmap_model_fptq);
    RUN_UNLESS(skip, test_heatmap_model_babyllama);
    RUN_UNLESS(skip, test_heatmap_model_bad);
    if (!skip) remove(TEXT);
    llama_tokenizer_free(&tok);
    llama_free(&model);
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
    RUN(test_heatmap_awq);
    RUN(test_heatmap_rotate);
    RUN(test_heatmap_bad_inputs);
    RUN(test_heatmap_hostile);
    tests_heatmap_model();
}
