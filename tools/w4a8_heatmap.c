/* w4a8_heatmap - see the outliers: activation magnitudes as PNG heatmaps.

       w4a8_heatmap --raw X.f32 --shape T,K -o out.png [options]
       w4a8_heatmap --model M.bin --tokenizer TOK.bin --text T.txt -o DIR/ [options]
       w4a8_heatmap --model M.gguf --text T.txt -o DIR/ [options]

   X.f32 holds T tokens x K channels of float32 in native byte order, row by
   row (numpy's x.astype(np.float32).tofile). The picture shows |x| with
   tokens down and channels across on a log colour scale (viridis), a colour
   bar with its range, the per-channel max|x| as bars above (what every
   equalization method reads), and the layer name and max|x| as text.
   Inputs larger than --size are max-pooled, never subsampled, so a single
   outlier always stays visible.

   With a llama2.c checkpoint instead, the tool runs the FP32 model (the
   loader and forward of examples/llama/) over the first --tokens
   tokens of the text and draws the input of every linear layer ("L0.qkv",
   "L0.wo", "L0.w13", "L0.w2", ..., "cls"), or of those --layers selects,
   one PNG each: into DIR/ as L0_qkv.png ..., or to a name with %s in it.
   --outliers draws the example's outlier variant of the model instead.

   --method fptq|smoothquant|awq draws the input before and after that
   method's equalization (x / s, s from w4a8.h) side by side on one colour
   scale; the activations drawn are its calibration. --method rotate draws
   it after QuaRot's rotation instead: x Q, Q the library's random Hadamard
   (w4a8_hadamard, seed 1), which spreads an outlier over every channel. FPTQ needs only the
   activations; it equalizes only where its layer-wise strategy
   (w4a8_fptq_choose) says LAE, and the tool prints that strategy.
   SmoothQuant and AWQ also need the weights of the linears reading the
   input: from the model, or --weights W.f32 --wshape N,K with --raw.

   Exit status: 0 done, 1 bad input data or a file that cannot be read or
   written, 2 a bad command line. On failure no output file is created and
   existing ones are left as they were: each PNG goes to OUT.tmp and they
   are renamed only when all are done, and the lines saying so are printed
   after that. An OUT (or OUT.tmp) that exists and is not a regular file (a
   directory, a device, a symbolic link) is refused, never replaced. Lost
   standard output is an error too (exit 1; the pictures are in place).

   Build: make (links Debian's libstb: apt-get install libstb-dev).
   Define W4A8_HEATMAP_NO_MAIN before including this file to get its
   functions without main() and without the w4a8 implementation (the tests
   do that). Every matrix goes through hm_layer(), whatever its source. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* lstat, fstat, fileno: tools/output.h */
#endif
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef W4A8_HEATMAP_NO_MAIN
#define W4A8_IMPLEMENTATION
#endif
#include "../w4a8.h"
#include "../examples/llama/llama.h"
#include <stb/stb_image_write.h>
#include "output.h"

/* ---------------------------------------------------------------------------
   Options, exit codes, messages */

enum { HM_EXIT_DATA = 1, HM_EXIT_USAGE = 2 };

/* Layout in pixels. */
#define HM_MARGIN 10
#define HM_GAP 16       /* between panels, and before the colour bar */
#define HM_STRIP 40     /* height of the per-channel bar strip */
#define HM_CBAR_W 14    /* colour bar width */
#define HM_CBAR_MIN 96  /* colour bar height when the heatmap is shorter */
#define HM_ZOOM_MAX 8   /* small inputs: each value at most 8x8 pixels */
#define HM_SIZE_MAX 8192
#define HM_NAME_MAX 80  /* longer layer names are cut */

typedef struct hm_method hm_method;

typedef struct hm_opts {
    const hm_method *method; /* NULL: one panel, no equalization */
    w4a8_config cfg;         /* the methods' knobs: sq_alpha, fptq_low, fptq_high, group_size */
    int decades;             /* colour range: max|x| down to max|x| / 10^decades: 4 */
    size_t max_w, max_h;     /* heatmap panel size beyond which we max-pool: 512 x 512 */
} hm_opts;

static void hm_opts_init(hm_opts *o) {
    memset(o, 0, sizeof *o);
    w4a8_config_init(&o->cfg);
    o->decades = 4;
    o->max_w = 512;
    o->max_h = 512;
}

/* Print "w4a8_heatmap: <message>" and return the exit code. */
static int hm_fail(FILE *err, int code, const char *fmt, ...) {
    va_list ap;
    fputs("w4a8_heatmap: ", err);
    va_start(ap, fmt);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputc('\n', err);
    return code;
}

/* ---------------------------------------------------------------------------
   Colour map: viridis sampled at 9 points (matplotlib's, CC0), interpolated
   linearly. Its luminance rises monotonically, so brighter means larger. */

static void hm_colour(double t, unsigned char rgb[3]) {
    static const unsigned char stops[9][3] = {
        { 68, 1, 84 },   { 71, 45, 123 },  { 59, 82, 139 },  { 44, 114, 142 }, { 33, 145, 140 },
        { 40, 174, 128 }, { 94, 201, 98 }, { 173, 220, 48 }, { 253, 231, 37 }
    };
    double u;
    int i, c;
    if (!(t > 0.0)) t = 0.0; /* NaN too */
    if (t > 1.0) t = 1.0;
    u = t * 8.0;
    i = u >= 8.0 ? 7 : (int)u;
    u -= i;
    for (c = 0; c < 3; c++) rgb[c] = (unsigned char)floor(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * u + 0.5);
}

/* Where |x| = v sits on the log scale [lo, hi], in [0, 1]. */
typedef struct hm_scale { double lo, hi; } hm_scale;

static double hm_level(const hm_scale *s, double v) {
    if (!(s->hi > s->lo) || v <= s->lo) return 0.0;
    if (v >= s->hi) return 1.0;
    return log(v / s->lo) / log(s->hi / s->lo);
}

/* ---------------------------------------------------------------------------
   A 5x7 bitmap font, ours: one glyph per line, the character, then 7 rows of
   5 pixels ('#' on). Lower case prints as upper case, anything else as '?'. */

#define HM_GLYPH_LINE 44 /* "c " + 7 * "xxxxx " (the last space is the '\n') */
static const char hm_font[] =
    "  ..... ..... ..... ..... ..... ..... .....\n"
    "! ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..\n"
    "\" .#.#. .#.#. ..... ..... ..... ..... .....\n"
    "# .#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.\n"
    "% ##... ##..# ...#. ..#.. .#... #..## ...##\n"
    "& .##.. #..#. #.#.. .#... #.#.# #..#. .##.#\n"
    "' ..#.. ..#.. ..... ..... ..... ..... .....\n"
    "( ...#. ..#.. .#... .#... .#... ..#.. ...#.\n"
    ") .#... ..#.. ...#. ...#. ...#. ..#.. .#...\n"
    "* ..... ..#.. #.#.# .###. #.#.# ..#.. .....\n"
    "+ ..... ..#.. ..#.. ##### ..#.. ..#.. .....\n"
    ", ..... ..... ..... ..... .##.. ..#.. .#...\n"
    "- ..... ..... ..... ##### ..... ..... .....\n"
    ". ..... ..... ..... ..... ..... .##.. .##..\n"
    "/ ....# ...#. ...#. ..#.. .#... .#... #....\n"
    "0 .###. #...# #..## #.#.# ##..# #...# .###.\n"
    "1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.\n"
    "2 .###. #...# ....# ...#. ..#.. .#... #####\n"
    "3 ##### ...#. ..#.. ...#. ....# #...# .###.\n"
    "4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.\n"
    "5 ##### #.... ####. ....# ....# #...# .###.\n"
    "6 ..##. .#... #.... ####. #...# #...# .###.\n"
    "7 ##### ....# ...#. ..#.. .#... .#... .#...\n"
    "8 .###. #...# #...# .###. #...# #...# .###.\n"
    "9 .###. #...# #...# .#### ....# ...#. .##..\n"
    ": ..... .##.. .##.. ..... .##.. .##.. .....\n"
    "; ..... .##.. .##.. ..... .##.. ..#.. .#...\n"
    "< ...#. ..#.. .#... #.... .#... ..#.. ...#.\n"
    "= ..... ..... ##### ..... ##### ..... .....\n"
    "> .#... ..#.. ...#. ....# ...#. ..#.. .#...\n"
    "? .###. #...# ....# ...#. ..#.. ..... ..#..\n"
    "A .###. #...# #...# ##### #...# #...# #...#\n"
    "B ####. #...# #...# ####. #...# #...# ####.\n"
    "C .###. #...# #.... #.... #.... #...# .###.\n"
    "D ####. #...# #...# #...# #...# #...# ####.\n"
    "E ##### #.... #.... ####. #.... #.... #####\n"
    "F ##### #.... #.... ####. #.... #.... #....\n"
    "G .###. #...# #.... #.### #...# #...# .####\n"
    "H #...# #...# #...# ##### #...# #...# #...#\n"
    "I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.\n"
    "J ..### ...#. ...#. ...#. ...#. #..#. .##..\n"
    "K #...# #..#. #.#.. ##... #.#.. #..#. #...#\n"
    "L #.... #.... #.... #.... #.... #.... #####\n"
    "M #...# ##.## #.#.# #.#.# #...# #...# #...#\n"
    "N #...# #...# ##..# #.#.# #..## #...# #...#\n"
    "O .###. #...# #...# #...# #...# #...# .###.\n"
    "P ####. #...# #...# ####. #.... #.... #....\n"
    "Q .###. #...# #...# #...# #.#.# #..#. .##.#\n"
    "R ####. #...# #...# ####. #.#.. #..#. #...#\n"
    "S .#### #.... #.... .###. ....# ....# ####.\n"
    "T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..\n"
    "U #...# #...# #...# #...# #...# #...# .###.\n"
    "V #...# #...# #...# #...# #...# .#.#. ..#..\n"
    "W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.\n"
    "X #...# #...# .#.#. ..#.. .#.#. #...# #...#\n"
    "Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..\n"
    "Z ##### ....# ...#. ..#.. .#... #.... #####\n"
    "[ .###. .#... .#... .#... .#... .#... .###.\n"
    "\\ #.... .#... .#... ..#.. ...#. ...#. ....#\n"
    "] .###. ...#. ...#. ...#. ...#. ...#. .###.\n"
    "^ ..#.. .#.#. #...# ..... ..... ..... .....\n"
    "_ ..... ..... ..... ..... ..... ..... #####\n"
    "| ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..\n"
    "~ ..... ..... .#... #.#.# ...#. ..... .....\n";

/* The glyph line of c, or NULL when the font lacks it. */
static const char *hm_glyph_find(int c) {
    const char *p;
    for (p = hm_font; *p; p += HM_GLYPH_LINE)
        if (*p == c) return p;
    return NULL;
}

static const char *hm_glyph(int c) {
    const char *g;
    if (c >= 'a' && c <= 'z') c -= 'a' - 'A';
    g = hm_glyph_find(c);
    return g ? g : hm_glyph_find('?');
}

/* Pixel (col, row) of a glyph line. */
static int hm_glyph_on(const char *g, int col, int row) { return g[2 + row * 6 + col] == '#'; }

/* ---------------------------------------------------------------------------
   Canvas: RGB, 3 bytes a pixel, row by row. */

typedef struct hm_image {
    int w, h;
    unsigned char *rgb;
} hm_image;

static const unsigned char hm_white[3] = { 255, 255, 255 }, hm_black[3] = { 0, 0, 0 },
                           hm_grey[3] = { 225, 225, 225 }, hm_dark[3] = { 70, 70, 70 };

static void hm_rect(hm_image *im, int x, int y, int w, int h, const unsigned char c[3]) {
    int i, j;
    for (j = y < 0 ? 0 : y; j < y + h && j < im->h; j++)
        for (i = x < 0 ? 0 : x; i < x + w && i < im->w; i++) memcpy(im->rgb + ((size_t)j * im->w + i) * 3, c, 3);
}

static int hm_text_width(const char *s, int scale) {
    size_t n = strlen(s);
    return n ? (int)(n * 6 - 1) * scale : 0;
}

static void hm_text(hm_image *im, int x, int y, int scale, const char *s, const unsigned char c[3]) {
    for (; *s; s++, x += 6 * scale) {
        const char *g = hm_glyph((unsigned char)*s);
        int row, col;
        for (row = 0; row < 7; row++)
            for (col = 0; col < 5; col++)
                if (hm_glyph_on(g, col, row)) hm_rect(im, x + col * scale, y + row * scale, scale, scale, c);
    }
}

/* ---------------------------------------------------------------------------
   Max-pooling and layout */

/* px x py blocks of values become one cell of cx x cy; a cell is drawn as
   zx x zy pixels. */
typedef struct hm_grid {
    size_t px, py, cx, cy, zx, zy;
} hm_grid;

static void hm_grid_axis(size_t n, size_t limit, size_t *pool, size_t *cells, size_t *zoom) {
    *pool = (n + limit - 1) / limit;
    *cells = (n + *pool - 1) / *pool;
    *zoom = limit / *cells;
    if (*zoom > HM_ZOOM_MAX) *zoom = HM_ZOOM_MAX;
}

static void hm_grid_make(size_t T, size_t K, const hm_opts *o, hm_grid *g) {
    hm_grid_axis(K, o->max_w, &g->px, &g->cx, &g->zx);
    hm_grid_axis(T, o->max_h, &g->py, &g->cy, &g->zy);
}

/* P[cy][cx] = max |X| over each block: one outlier decides its whole cell. */
static void hm_pool(const float *X, size_t T, size_t K, const hm_grid *g, float *P) {
    size_t t, k;
    memset(P, 0, g->cx * g->cy * sizeof *P);
    for (t = 0; t < T; t++) {
        float *row = P + (t / g->py) * g->cx;
        for (k = 0; k < K; k++) {
            float a = fabsf(X[t * K + k]);
            if (a > row[k / g->px]) row[k / g->px] = a;
        }
    }
}

#define HM_PANELS_MAX 2
#define HM_NOTES_MAX 4

/* What a picture shows: a title, lines of notes, one or two panels of the
   same shape. */
typedef struct hm_figure {
    char title[HM_NAME_MAX + 32];
    char notes[HM_NOTES_MAX][160];
    size_t nnotes;
    char labels[HM_PANELS_MAX][96]; /* cut to HM_LABEL_W when drawn */
    const float *X[HM_PANELS_MAX]; /* [T][K] each */
    size_t npanels, T, K;
} hm_figure;

/* Where everything goes. The geometry depends on the shape and the number
   of panels and note lines only; text widens the image at most. */
typedef struct hm_layout {
    hm_grid g;
    int w, h;                       /* the image */
    int hw, hh;                     /* one heatmap */
    int slot;                       /* width of a panel: heatmap or label room */
    int panel_x[HM_PANELS_MAX];     /* left edge of each panel */
    int label_y, strip_y, heat_y;   /* panel label, bar strip, heatmap tops */
    int cbar_x, cbar_h, cbar_label_x;
} hm_layout;

#define HM_TITLE_SCALE 2
#define HM_LABEL_W (40 * 6)     /* room for a 40-character panel label */
#define HM_CBAR_LABEL_W (9 * 6) /* "-1.23e+04" */

static void hm_layout_make(size_t T, size_t K, size_t npanels, size_t nnotes, int text_w, const hm_opts *o,
                           hm_layout *L) {
    size_t i;
    int right;
    memset(L, 0, sizeof *L);
    hm_grid_make(T, K, o, &L->g);
    L->hw = (int)(L->g.cx * L->g.zx);
    L->hh = (int)(L->g.cy * L->g.zy);
    L->label_y = HM_MARGIN + 7 * HM_TITLE_SCALE + 6 + (int)nnotes * 11 + 4;
    L->strip_y = L->label_y + 7 + 4;
    L->heat_y = L->strip_y + HM_STRIP + 3;
    L->slot = L->hw > HM_LABEL_W ? L->hw : HM_LABEL_W;
    for (i = 0; i < npanels; i++) L->panel_x[i] = HM_MARGIN + (int)i * (L->slot + HM_GAP);
    L->cbar_x = HM_MARGIN + (int)npanels * (L->slot + HM_GAP);
    L->cbar_h = L->hh > HM_CBAR_MIN ? L->hh : HM_CBAR_MIN;
    L->cbar_label_x = L->cbar_x + HM_CBAR_W + 6;
    right = L->cbar_label_x + HM_CBAR_LABEL_W;
    if (HM_MARGIN + text_w > right) right = HM_MARGIN + text_w;
    L->w = right + HM_MARGIN;
    L->h = L->heat_y + L->cbar_h + HM_MARGIN;
}

/* ---------------------------------------------------------------------------
   Drawing */

static void hm_number(char *buf, size_t n, double v) { snprintf(buf, n, "%.3g", v); }

/* The colour bar: top = hi, bottom = lo, a tick at every power of ten in
   between, and its label where it does not crowd another. */
static void hm_draw_cbar(hm_image *im, const hm_layout *L, const hm_scale *s) {
    int r, x = L->cbar_x, y0 = L->heat_y, h = L->cbar_h, d, last = y0;
    char buf[32];
    for (r = 0; r < h; r++) {
        unsigned char c[3];
        hm_colour(h > 1 ? 1.0 - (double)r / (h - 1) : 1.0, c);
        hm_rect(im, x, y0 + r, HM_CBAR_W, 1, c);
    }
    hm_number(buf, sizeof buf, s->hi);
    hm_text(im, L->cbar_label_x, y0, 1, buf, hm_black);
    hm_number(buf, sizeof buf, s->lo);
    hm_text(im, L->cbar_label_x, y0 + h - 7, 1, buf, hm_black);
    if (!(s->hi > s->lo)) return;
    for (d = (int)floor(log10(s->hi)); d >= (int)ceil(log10(s->lo)); d--) {
        double v = pow(10.0, d);
        int ty = y0 + (int)floor((1.0 - hm_level(s, v)) * (h - 1) + 0.5);
        if (v >= s->hi || v <= s->lo) continue;
        hm_rect(im, x + HM_CBAR_W, ty, 4, 1, hm_black);
        if (ty - last < 12 || y0 + h - ty < 14) continue;
        snprintf(buf, sizeof buf, "1e%+d", d);
        hm_text(im, L->cbar_label_x, ty - 3, 1, buf, hm_black);
        last = ty;
    }
}

/* One panel: its label, the bar strip, the heatmap. P is the pooled matrix.
   The bars give max|x| per cell column, linear from 0 to this panel's max,
   so the strip shows how flat the channels are; the colours, on the shared
   scale, compare panels. */
static void hm_draw_panel(hm_image *im, const hm_layout *L, int x0, const char *label, const float *P,
                          const hm_scale *s) {
    const hm_grid *g = &L->g;
    size_t i, j, cells = g->cx * g->cy;
    float pmax = 0.0f;
    char cut[HM_LABEL_W / 6 + 1];
    snprintf(cut, sizeof cut, "%s", label);
    hm_text(im, x0, L->label_y, 1, cut, hm_black);
    hm_rect(im, x0, L->strip_y, L->hw, HM_STRIP, hm_grey);
    for (i = 0; i < cells; i++)
        if (P[i] > pmax) pmax = P[i];
    for (j = 0; j < g->cx && pmax > 0.0f; j++) {
        float m = 0.0f;
        int bar;
        for (i = 0; i < g->cy; i++)
            if (P[i * g->cx + j] > m) m = P[i * g->cx + j];
        bar = (int)floor(HM_STRIP * (double)(m / pmax) + 0.5);
        hm_rect(im, x0 + (int)(j * g->zx), L->strip_y + HM_STRIP - bar, (int)g->zx, bar, hm_dark);
    }
    for (i = 0; i < g->cy; i++)
        for (j = 0; j < g->cx; j++) {
            unsigned char c[3];
            hm_colour(hm_level(s, P[i * g->cx + j]), c);
            hm_rect(im, x0 + (int)(j * g->zx), L->heat_y + (int)(i * g->zy), (int)g->zx, (int)g->zy, c);
        }
}

/* The whole picture into im (allocated here; free im->rgb). */
static int hm_render(const hm_figure *f, const hm_opts *o, hm_image *im, FILE *err) {
    hm_layout L;
    hm_scale s;
    float *P[HM_PANELS_MAX] = { NULL, NULL };
    size_t i, cells, j;
    int rc = 0, y;
    int text_w = hm_text_width(f->title, HM_TITLE_SCALE);
    for (i = 0; i < f->nnotes; i++)
        if (hm_text_width(f->notes[i], 1) > text_w) text_w = hm_text_width(f->notes[i], 1);
    hm_layout_make(f->T, f->K, f->npanels, f->nnotes, text_w, o, &L);
    cells = L.g.cx * L.g.cy;
    im->w = L.w;
    im->h = L.h;
    im->rgb = (unsigned char *)malloc((size_t)L.w * (size_t)L.h * 3);
    for (i = 0; i < f->npanels; i++) P[i] = (float *)malloc(cells * sizeof(float));
    if (!im->rgb || !P[0] || (f->npanels > 1 && !P[1])) {
        rc = hm_fail(err, HM_EXIT_DATA, "out of memory for a %d x %d image", L.w, L.h);
        free(im->rgb);
        im->rgb = NULL;
    }
    if (rc == 0) {
        /* One scale for every panel: max|x| over all of them, down `decades` powers of ten. */
        s.hi = 0.0;
        for (i = 0; i < f->npanels; i++) {
            hm_pool(f->X[i], f->T, f->K, &L.g, P[i]);
            for (j = 0; j < cells; j++)
                if (P[i][j] > s.hi) s.hi = P[i][j];
        }
        s.lo = s.hi * pow(10.0, -o->decades);
        hm_rect(im, 0, 0, im->w, im->h, hm_white);
        hm_text(im, HM_MARGIN, HM_MARGIN, HM_TITLE_SCALE, f->title, hm_black);
        y = HM_MARGIN + 7 * HM_TITLE_SCALE + 6;
        for (i = 0; i < f->nnotes; i++, y += 11) hm_text(im, HM_MARGIN, y, 1, f->notes[i], hm_black);
        for (i = 0; i < f->npanels; i++) hm_draw_panel(im, &L, L.panel_x[i], f->labels[i], P[i], &s);
        hm_draw_cbar(im, &L, &s);
    }
    for (i = 0; i < f->npanels; i++) free(P[i]);
    return rc;
}

/* ---------------------------------------------------------------------------
   PNG output. A run's pictures are written as PATH.tmp and renamed to PATH
   only when every one is done, so a failure anywhere leaves no file behind
   and existing pictures as they were. */

typedef struct hm_sink {
    FILE *f;
    int ok;
} hm_sink;

static void hm_sink_write(void *ctx, void *data, int size) {
    hm_sink *s = (hm_sink *)ctx;
    if (size > 0 && fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->ok = 0;
}

/* One picture of a run: its path, then (in the same allocation) PATH.tmp. */
typedef struct hm_pending {
    char *path, *tmp;
} hm_pending;

typedef struct hm_batch {
    hm_pending *p;
    size_t n, cap;
} hm_batch;

/* Encodes im into PATH.tmp and records it; removes PATH.tmp on failure. */
static int hm_batch_png(hm_batch *b, const hm_image *im, const char *path, FILE *err) {
    size_t n = strlen(path);
    hm_pending e;
    hm_sink sink;
    int saved = 0;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 8;
        hm_pending *grown = (hm_pending *)realloc(b->p, cap * sizeof *grown);
        if (!grown) return hm_fail(err, HM_EXIT_DATA, "out of memory");
        b->p = grown;
        b->cap = cap;
    }
    if (!(e.path = (char *)malloc(2 * n + 6))) return hm_fail(err, HM_EXIT_DATA, "out of memory");
    e.tmp = e.path + n + 1;
    memcpy(e.path, path, n + 1);
    memcpy(e.tmp, path, n);
    memcpy(e.tmp + n, ".tmp", 5);
    if (output_target(path) || output_target(e.tmp)) {
        const char *why = output_target(path) ? output_target(path) : output_target(e.tmp);
        int rc = hm_fail(err, HM_EXIT_DATA, "cannot write %s: %s", path, why);
        free(e.path);
        return rc;
    }
    errno = 0;
    sink.f = fopen(e.tmp, "wb");
    sink.ok = sink.f != NULL;
    if (sink.ok) {
        if (!stbi_write_png_to_func(hm_sink_write, &sink, im->w, im->h, 3, im->rgb, im->w * 3)) sink.ok = 0;
        saved = errno;
        if (fclose(sink.f) != 0) sink.ok = 0;
        if (!saved) saved = errno;
        if (!sink.ok) remove(e.tmp);
    } else {
        saved = errno;
    }
    if (!sink.ok) {
        int rc = hm_fail(err, HM_EXIT_DATA, "cannot write %s: %s", path, saved ? strerror(saved) : "write failed");
        free(e.path);
        return rc;
    }
    b->p[b->n++] = e;
    return 0;
}

/* rc == 0: every PATH.tmp becomes PATH; otherwise, or when a rename fails,
   the files still pending are removed. Returns rc, or the rename failure. */
static int hm_batch_finish(hm_batch *b, int rc, FILE *err) {
    size_t i;
    for (i = 0; i < b->n; i++) {
        errno = 0;
        if (rc == 0 && rename(b->p[i].tmp, b->p[i].path) != 0)
            rc = hm_fail(err, HM_EXIT_DATA, "cannot write %s: %s", b->p[i].path,
                         errno ? strerror(errno) : "rename failed");
        if (rc != 0) remove(b->p[i].tmp);
        free(b->p[i].path);
    }
    free(b->p);
    memset(b, 0, sizeof *b);
    return rc;
}

/* The lines about a run's pictures wait in a temporary file, and go to out
   only once every picture is in place: nothing claims a picture that a later
   failure removed. */
static int hm_log_open(FILE **log, FILE *err) {
    if (!(*log = tmpfile())) return hm_fail(err, HM_EXIT_DATA, "cannot create a temporary file: %s", strerror(errno));
    return 0;
}

static void hm_log_close(FILE *log, int rc, FILE *out) {
    int c;
    if (!log) return;
    rewind(log);
    while (rc == 0 && (c = fgetc(log)) != EOF) fputc(c, out);
    fclose(log);
}

/* ---------------------------------------------------------------------------
   Methods: each turns the layer's activations (and weights) into the
   equalization s[K] (x is divided by s), with w4a8.h's functions and knobs,
   and says in a line what it decided; or, for a rotation, transforms X
   itself. Adding one is a function and a row in hm_methods. */

/* One layer's input and, when known, the linears that read it. */
typedef struct hm_input {
    const char *name;
    const char *source;      /* a line on the picture saying where X comes from, or NULL */
    const float *X;          /* [T][K] */
    size_t T, K;
    const w4a8_linear *lin;  /* [nlin], W[N][K] each; NULL when unknown */
    size_t nlin;
} hm_input;

struct hm_method {
    const char *name;   /* on the command line */
    const char *label;  /* on the picture */
    int needs_weights;
    w4a8_status (*smooth)(const hm_input *in, const w4a8_calib *calib, const hm_opts *o, float *s, char *note,
                          size_t n);
    /* instead of smooth: Xs[T][K] from X */
    w4a8_status (*transform)(const hm_input *in, float *Xs, char *note, size_t n);
};

/* Tokens the calibration keeps as its sample (AWQ measures output error on
   them), as the llama2 example does. */
#define HM_SAMPLE 512

static w4a8_status hm_smooth_smoothquant(const hm_input *in, const w4a8_calib *calib, const hm_opts *o, float *s,
                                         char *note, size_t n) {
    w4a8_status st = w4a8_weight_absmax(in->lin, in->nlin, in->K, s); /* s holds max|w_j| first */
    if (st == W4A8_OK) st = w4a8_smooth_smoothquant(calib->absmax, s, in->K, o->cfg.sq_alpha, s);
    snprintf(note, n, "SmoothQuant, alpha %.3g: s_j = max|x_j|^alpha / max|w_j|^(1-alpha)", o->cfg.sq_alpha);
    return st;
}

static w4a8_status hm_smooth_awq(const hm_input *in, const w4a8_calib *calib, const hm_opts *o, float *s,
                                 char *note, size_t n) {
    float r = 0.0f;
    double loss = 0.0;
    size_t G = o->cfg.group_size < in->K ? o->cfg.group_size : in->K;
    w4a8_status st =
        w4a8_smooth_awq(in->lin, in->nlin, in->K, calib, o->cfg.group_size, o->cfg.awq_grid, s, &r, &loss);
    snprintf(note, n, "AWQ ratio %.3g: s_j = mean|x_j|^r normalized, r searched on %zu tokens, groups of %zu, loss %.3g",
             r, calib->sample_rows, G, loss);
    return st;
}

/* FPTQ's layer-wise strategies, indexed by w4a8_fptq_strategy. */
static const char *const hm_fptq_names[] = { "none", "per-tensor static", "LAE, then per-tensor static",
                                             "per-token dynamic" };

/* The library's choice: LAE only in the middle band; elsewhere FPTQ leaves
   the activations as they are (s = 1). */
static w4a8_status hm_smooth_fptq(const hm_input *in, const w4a8_calib *calib, const hm_opts *o, float *s,
                                  char *note, size_t n) {
    w4a8_fptq_strategy strategy = W4A8_FPTQ_NONE;
    float v = 0.0f;
    size_t k;
    w4a8_status st = w4a8_fptq_choose(calib->absmax, in->K, o->cfg.fptq_low, o->cfg.fptq_high, &strategy);
    if (st == W4A8_OK && strategy == W4A8_FPTQ_LAE_STATIC) st = w4a8_smooth_lae(calib->absmax, in->K, s);
    for (k = 0; k < in->K; k++) {
        if (strategy != W4A8_FPTQ_LAE_STATIC) s[k] = 1.0f;
        if (calib->absmax[k] > v) v = calib->absmax[k];
    }
    snprintf(note, n, "FPTQ strategy (max|x| %.4g; bounds %.4g, %.4g): %s", v, o->cfg.fptq_low, o->cfg.fptq_high,
             hm_fptq_names[strategy]);
    return st;
}

/* QuaRot's rotation of the input, as the engine's rot: rows do it. */
static w4a8_status hm_rotate(const hm_input *in, float *Xs, char *note, size_t n) {
    size_t m = 0;
    w4a8_status st = w4a8_hadamard_order(in->K, &m);
    if (st == W4A8_OK) st = w4a8_hadamard(in->X, in->T, in->K, 1, 0, Xs);
    snprintf(note, n, "rotation: x Q, Q a random Hadamard of order %zu = %zu x 2^k (seed 1)", in->K, m);
    return st;
}

static const hm_method hm_methods[] = {
    { "fptq", "after FPTQ", 0, hm_smooth_fptq, NULL },
    { "smoothquant", "after SmoothQuant", 1, hm_smooth_smoothquant, NULL },
    { "awq", "after AWQ", 1, hm_smooth_awq, NULL },
    { "rotate", "after rotation", 0, NULL, hm_rotate },
};
#define HM_METHOD_COUNT (sizeof hm_methods / sizeof hm_methods[0])

static const hm_method *hm_method_find(const char *name) {
    size_t i;
    for (i = 0; i < HM_METHOD_COUNT; i++)
        if (strcmp(hm_methods[i].name, name) == 0) return &hm_methods[i];
    return NULL;
}

/* ---------------------------------------------------------------------------
   One activation matrix -> one PNG. Whatever the source (raw file, model
   hook), every matrix goes through here. Prints a line per picture (and the
   method's decision) to out. */

/* Index of the first NaN or Inf, or n. */
static size_t hm_first_nonfinite(const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (!(x[i] - x[i] == 0.0f)) return i;
    return n;
}

/* Rejects a matrix with NaN or Inf, saying where. */
static int hm_check_finite(const char *what, const char *row, const char *col, const float *x, size_t rows,
                           size_t cols, FILE *err) {
    size_t bad = hm_first_nonfinite(x, rows * cols);
    if (bad == rows * cols) return 0;
    return hm_fail(err, HM_EXIT_DATA, "%s: %s at %s %zu, %s %zu", what, x[bad] != x[bad] ? "NaN" : "Inf", row,
                   bad / cols, col, bad % cols);
}

/* max |x| over n values, and the index of its first occurrence. */
static float hm_absmax(const float *x, size_t n, size_t *at) {
    float m = 0.0f;
    size_t i;
    *at = 0;
    for (i = 0; i < n; i++)
        if (fabsf(x[i]) > m) {
            m = fabsf(x[i]);
            *at = i;
        }
    return m;
}

/* Xs = X * (1/s) with the method's s, as the layer's forward computes it
   (or the method's transform of X); the method's decision goes to note,
   *unchanged says whether s = 1. */
static int hm_equalize(const hm_input *in, const hm_opts *o, float *Xs, char *note, size_t n, int *unchanged,
                       FILE *err) {
    w4a8_calib *calib = NULL;
    float *s;
    size_t i, TK = in->T * in->K;
    w4a8_status st;
    int rc = 0;
    *unchanged = 0;
    if (o->method->transform) {
        if ((st = o->method->transform(in, Xs, note, n)) != W4A8_OK)
            return hm_fail(err, HM_EXIT_DATA, "%s: %s: %s", in->name, o->method->name, w4a8_status_str(st));
        return 0;
    }
    s = (float *)malloc(in->K * sizeof(float));
    st = s ? w4a8_calib_create(in->K, 0, in->T < HM_SAMPLE ? in->T : HM_SAMPLE, &calib) : W4A8_ERR_NOMEM;
    if (st == W4A8_OK) st = w4a8_calib_add(calib, in->X, in->T);
    if (st == W4A8_OK) st = o->method->smooth(in, calib, o, s, note, n);
    if (st != W4A8_OK) {
        rc = hm_fail(err, HM_EXIT_DATA, "%s: %s: %s", in->name, o->method->name, w4a8_status_str(st));
    } else {
        for (i = 0, *unchanged = 1; i < in->K; i++) {
            *unchanged &= s[i] == 1.0f;
            s[i] = 1.0f / s[i];
        }
        for (i = 0; i < TK; i++) Xs[i] = in->X[i] * s[i % in->K];
        if (hm_first_nonfinite(Xs, TK) < TK)
            rc = hm_fail(err, HM_EXIT_DATA, "%s: %s: equalized values overflow float", in->name, o->method->name);
    }
    w4a8_calib_free(calib);
    free(s);
    return rc;
}

/* The picture of one input, into the batch as path. */
static int hm_layer(const hm_input *in, const hm_opts *o, const char *path, hm_batch *batch, FILE *out, FILE *err) {
    hm_figure *f;
    hm_image im;
    hm_grid g;
    float *Xs = NULL, xmax;
    size_t TK = in->T * in->K, at, i, method_note = 0;
    int rc, unchanged = 0;
    if (in->T == 0 || in->K == 0 || TK / in->K != in->T || TK > (size_t)-1 / sizeof(float))
        return hm_fail(err, HM_EXIT_DATA, "%s: bad shape %zu x %zu", in->name, in->T, in->K);
    if (o->method && o->method->needs_weights && !in->lin)
        return hm_fail(err, HM_EXIT_USAGE, "%s: --method %s needs the layer's weights (--weights FILE --wshape N,K)",
                       in->name, o->method->name);
    for (i = 0; in->lin && i < in->nlin; i++)
        if (!in->lin[i].W || in->lin[i].N == 0 || in->lin[i].N > (size_t)-1 / sizeof(float) / in->K)
            return hm_fail(err, HM_EXIT_DATA, "%s: bad weight shape %zu x %zu", in->name, in->lin[i].N, in->K);
    if ((rc = hm_check_finite(in->name, "token", "channel", in->X, in->T, in->K, err)) != 0) return rc;
    for (i = 0; in->lin && i < in->nlin; i++)
        if ((rc = hm_check_finite("weights", "row", "column", in->lin[i].W, in->lin[i].N, in->K, err)) != 0)
            return rc;
    f = (hm_figure *)malloc(sizeof *f);
    if (o->method) Xs = (float *)malloc(TK * sizeof(float));
    if (!f || (o->method && !Xs)) {
        free(f);
        free(Xs);
        return hm_fail(err, HM_EXIT_DATA, "out of memory");
    }
    memset(f, 0, sizeof *f);
    memset(&im, 0, sizeof im);
    hm_grid_make(in->T, in->K, o, &g);
    xmax = hm_absmax(in->X, TK, &at);
    snprintf(f->title, sizeof f->title, "%.*s%s  max|x| %.4g", HM_NAME_MAX, in->name,
             strlen(in->name) > HM_NAME_MAX ? "..." : "", xmax);
    snprintf(f->notes[f->nnotes++], sizeof f->notes[0],
             "T=%zu tokens down, K=%zu channels across, max-pooled %zu x %zu (tokens x channels)", in->T, in->K, g.py,
             g.px);
    snprintf(f->notes[f->nnotes++], sizeof f->notes[0],
             "colour: |x|, log scale; bars: max|x| per channel, linear, 0 to the panel's max");
    if (in->source) snprintf(f->notes[f->nnotes++], sizeof f->notes[0], "%s", in->source);
    f->T = in->T;
    f->K = in->K;
    f->X[0] = in->X;
    f->npanels = 1;
    snprintf(f->labels[0], sizeof f->labels[0], "%s: max %.4g (channel %zu)", o->method ? "before" : "|x|", xmax,
             at % in->K);
    if (o->method) {
        method_note = f->nnotes++;
        rc = hm_equalize(in, o, Xs, f->notes[method_note], sizeof f->notes[0], &unchanged, err);
    }
    if (o->method && rc == 0) {
        float smax = hm_absmax(Xs, TK, &at);
        f->X[1] = Xs;
        f->npanels = 2;
        snprintf(f->labels[1], sizeof f->labels[1], "%s%s: max %.4g (ch %zu)", o->method->label,
                 unchanged ? ", unchanged" : "", smax, at % in->K);
    }
    if (rc == 0) rc = hm_render(f, o, &im, err);
    if (rc == 0) rc = hm_batch_png(batch, &im, path, err);
    if (rc == 0) {
        fprintf(out, "%s: %s, %zu x %zu, max|x| %.4g -> %d x %d\n", path, in->name, in->T, in->K, xmax, im.w, im.h);
        if (o->method) fprintf(out, "%s: %s\n", in->name, f->notes[method_note]);
    }
    free(im.rgb);
    free(Xs);
    free(f);
    return rc;
}

/* ---------------------------------------------------------------------------
   Raw input */

/* A positive whole number. */
static int hm_parse_size(const char *s, size_t *out) {
    size_t x = 0;
    if (*s < '0' || *s > '9') return 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (x > ((size_t)-1 - 9) / 10) return 0;
        x = x * 10 + (size_t)(*s - '0');
    }
    if (x == 0 || *s) return 0;
    *out = x;
    return 1;
}

/* "A,B" with 1 <= A, B and A * B * 4 bytes addressable. */
static int hm_parse_pair(const char *s, size_t *a, size_t *b) {
    const char *comma = strchr(s, ',');
    char first[32];
    size_t v0, v1;
    if (!comma || (size_t)(comma - s) >= sizeof first) return 0;
    memcpy(first, s, (size_t)(comma - s));
    first[comma - s] = '\0';
    if (!hm_parse_size(first, &v0) || !hm_parse_size(comma + 1, &v1)) return 0;
    if (v0 > (size_t)-1 / sizeof(float) / v1) return 0;
    *a = v0;
    *b = v1;
    return 1;
}

static int hm_parse_float(const char *s, float *out) {
    char *end;
    double d;
    errno = 0;
    d = strtod(s, &end);
    if (end == s || *end || errno || !(d - d == 0.0)) return 0;
    *out = (float)d;
    return 1;
}

/* rows x cols float32 from path into *out (malloc'd), or an exit code. */
static int hm_read_raw(const char *path, const char *what, size_t rows, size_t cols, float **out, FILE *err) {
    size_t want = rows * cols * sizeof(float), got;
    long size;
    float *x;
    struct stat st;
    const char *why;
    FILE *f = fopen(path, "rb");
    if (!f) return hm_fail(err, HM_EXIT_DATA, "cannot read %s: %s", path, strerror(errno));
    /* A directory opens, and its size would read as LONG_MAX. */
    why = fstat(fileno(f), &st) != 0 ? strerror(errno)
          : S_ISDIR(st.st_mode)      ? strerror(EISDIR)
          : !S_ISREG(st.st_mode)     ? "not a regular file"
                                     : NULL;
    if (why) {
        fclose(f);
        return hm_fail(err, HM_EXIT_DATA, "cannot read %s: %s", path, why);
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return hm_fail(err, HM_EXIT_DATA, "cannot read %s: cannot tell its size", path);
    }
    if ((size_t)size != want) {
        fclose(f);
        return hm_fail(err, HM_EXIT_DATA, "%s is %ld bytes, but %s %zu,%zu needs %zu (float32): %s", path, size, what,
                       rows, cols, want, (size_t)size < want ? "file too short" : "file too long");
    }
    x = (float *)malloc(want);
    if (!x) {
        fclose(f);
        return hm_fail(err, HM_EXIT_DATA, "out of memory for %zu bytes", want);
    }
    got = fread(x, 1, want, f);
    fclose(f);
    if (got != want) {
        free(x);
        return hm_fail(err, HM_EXIT_DATA, "cannot read %s: short read", path);
    }
    *out = x;
    return 0;
}

/* ---------------------------------------------------------------------------
   Model input: the FP32 forward of a llama2.c checkpoint, with a hook that
   draws the inputs --layers selects. */

/* The example's names, "L0.qkv" ... "cls", are at most this long. */
#define HM_LAYER_NAME 32

/* Does s match the glob p ('*' any run of characters, '?' any one)? */
static int hm_glob(const char *p, const char *s) {
    if (*p == '*') {
        for (;; s++) {
            if (hm_glob(p + 1, s)) return 1;
            if (!*s) return 0;
        }
    }
    if (!*s) return !*p;
    return (*p == '?' || *p == *s) && hm_glob(p + 1, s + 1);
}

/* A --layers pattern selects a name it globs, or the names of the layer it
   names: "L3" selects L3.qkv, L3.wo, L3.w13 and L3.w2. */
static int hm_pattern_selects(const char *p, const char *name) {
    size_t n = strlen(p);
    return hm_glob(p, name) || (strncmp(p, name, n) == 0 && name[n] == '.');
}

typedef struct hm_model_run {
    const llama_model *m;
    const hm_opts *o;
    char *patterns;          /* --layers, its commas made '\0' */
    size_t npatterns;        /* 0: every input */
    const char *outp;        /* -o: DIR/, a name with %s, or one file */
    char source[160];        /* the note saying which model and text */
    char (*names)[HM_LAYER_NAME]; /* the model's inputs in forward order */
    size_t nnames, names_cap, selected;
    hm_batch batch;
    FILE *log, *err;
    int rc;
} hm_model_run;

static int hm_selected(const hm_model_run *r, const char *name) {
    const char *p = r->patterns;
    size_t i;
    if (r->npatterns == 0) return 1;
    for (i = 0; i < r->npatterns; i++, p += strlen(p) + 1)
        if (hm_pattern_selects(p, name)) return 1;
    return 0;
}

/* The linears reading input `which` of layer l, from the model: q/k/v,
   wo, w1/w3, w2, or the classifier. Returns their count. */
static size_t hm_model_linears(const llama_model *m, int l, llama_input which, w4a8_linear lin[3]) {
    static const int first[] = { LLAMA_WQ, LLAMA_WO, LLAMA_W1, LLAMA_W2 }, count[] = { 3, 1, 2, 1 };
    size_t K, i;
    memset(lin, 0, 3 * sizeof *lin);
    if (which == LLAMA_IN_CLS) {
        lin[0].W = m->wcls;
        lin[0].N = (size_t)m->c.vocab_size;
        return 1;
    }
    for (i = 0; i < (size_t)count[which]; i++)
        lin[i].W = llama__weight(m, l, which == LLAMA_IN_W13 && i == 1 ? LLAMA_W3 : first[which] + (int)i,
                                  &lin[i].N, &K);
    return (size_t)count[which];
}

/* "L0.qkv" -> "L0_qkv": the name as it appears in file names. */
static void hm_file_name(const char *name, char *buf) {
    size_t i;
    for (i = 0; name[i] && i + 1 < HM_LAYER_NAME; i++) buf[i] = name[i] == '.' ? '_' : name[i];
    buf[i] = '\0';
}

static int hm_out_is_dir(const char *outp) { return *outp && outp[strlen(outp) - 1] == '/'; }

/* Where the picture of `name` goes: DIR/NAME.png, the -o name with %s
   replaced by NAME, or -o itself. malloc'd, or NULL. */
static char *hm_out_path(const char *outp, const char *name) {
    char file[HM_LAYER_NAME], *path;
    const char *at = strstr(outp, "%s");
    size_t n = strlen(outp);
    hm_file_name(name, file);
    if (!(path = (char *)malloc(n + strlen(file) + 8))) return NULL;
    if (hm_out_is_dir(outp)) sprintf(path, "%s%s.png", outp, file);
    else if (at) sprintf(path, "%.*s%s%s", (int)(at - outp), outp, file, at + 2);
    else memcpy(path, outp, n + 1);
    return path;
}

static int hm_model_hook(void *user, const char *name, int layer, llama_input which, const float *X, size_t T,
                         size_t K) {
    hm_model_run *r = (hm_model_run *)user;
    w4a8_linear lin[3];
    hm_input in;
    char *path;
    if (!hm_selected(r, name)) return 0;
    memset(&in, 0, sizeof in);
    in.name = name;
    in.source = r->source;
    in.X = X;
    in.T = T;
    in.K = K;
    in.lin = lin;
    in.nlin = hm_model_linears(r->m, layer, which, lin);
    if (!(path = hm_out_path(r->outp, name))) r->rc = hm_fail(r->err, HM_EXIT_DATA, "out of memory");
    else r->rc = hm_layer(&in, r->o, path, &r->batch, r->log, r->err);
    free(path);
    return r->rc != 0;
}

/* The dry run: records every input's name. */
static int hm_names_hook(void *user, const char *name, int layer, llama_input which, const float *X, size_t T,
                         size_t K) {
    hm_model_run *r = (hm_model_run *)user;
    (void)layer, (void)which, (void)X, (void)T, (void)K;
    if (r->nnames == r->names_cap) return 1;
    snprintf(r->names[r->nnames++], HM_LAYER_NAME, "%s", name);
    return 0;
}

/* The names of the model's inputs (a forward over one token), and how many
   --layers selects; each pattern must select one at least. */
static int hm_model_select(hm_model_run *r, int token, const char *layers) {
    size_t i;
    llama_state *s = NULL;
    llama_status st;
    const char *p = r->patterns;
    r->names_cap = (size_t)r->m->c.n_layers * LLAMA_INPUTS_PER_LAYER + 1;
    if (!(r->names = (char(*)[HM_LAYER_NAME])malloc(r->names_cap * HM_LAYER_NAME)))
        return hm_fail(r->err, HM_EXIT_DATA, "out of memory");
    st = llama_state_create(r->m, 1, 1, &s);
    if (st == LLAMA_OK) st = llama_forward(r->m, NULL, s, &token, 1, 0, NULL, hm_names_hook, r);
    llama_state_free(s);
    if (st != LLAMA_OK) return hm_fail(r->err, HM_EXIT_DATA, "the model's forward: %s", llama_status_str(st));
    for (i = 0; i < r->npatterns; i++, p += strlen(p) + 1) {
        size_t j, hits = 0;
        for (j = 0; j < r->nnames; j++) hits += hm_pattern_selects(p, r->names[j]);
        if (!hits)
            return hm_fail(r->err, HM_EXIT_USAGE, "--layers %s: '%s' selects nothing (this model has %s .. %s)", layers,
                           p, r->names[0], r->names[r->nnames - 1]);
    }
    for (i = 0; i < r->nnames; i++) r->selected += hm_selected(r, r->names[i]);
    return 0;
}

/* BOS + the text, story by story (the llama2 example's stream), or for a
   GGUF vocabulary the text tokenized as llama.cpp does (BOS where it adds
   one), and its first `want` tokens in *T. */
static int hm_model_tokens(const llama_tokenizer *tok, const char *path, size_t want, int **ids, size_t *T,
                           FILE *err) {
    char *text = NULL;
    size_t bytes = 0, n = 0;
    llama_status st = llama__read_file(path, (size_t)64 << 20, &text, &bytes);
    if (st != LLAMA_OK)
        return hm_fail(err, HM_EXIT_DATA, "cannot read the text %s: %s (at most 64 MiB)", path, llama_status_str(st));
    st = tok->kind == LLAMA_VOCAB_LLAMA2C ? llama_encode_stories(tok, text, bytes, ids, &n)
                                          : llama_tokenize(tok, text, bytes, 1, 0, ids, &n);
    free(text);
    if (st != LLAMA_OK) return hm_fail(err, HM_EXIT_DATA, "cannot encode %s: %s", path, llama_status_str(st));
    if (n == 0) {
        free(*ids);
        *ids = NULL;
        return hm_fail(err, HM_EXIT_DATA, "%s has no text to run the model on", path);
    }
    *T = n < want ? n : want;
    return 0;
}

typedef struct hm_model_args {
    const char *model, *tokenizer, *text, *layers, *outp;
    size_t tokens; /* 0: the default */
    int outliers;
} hm_model_args;

#define HM_TOKENS 128

static const char *hm_base(const char *path) { return strrchr(path, '/') ? strrchr(path, '/') + 1 : path; }

/* Draws the model's inputs. */
static int hm_model_main(const hm_model_args *a, const hm_opts *o, FILE *out, FILE *err) {
    llama_model m, variant;
    llama_tokenizer tok;
    llama_state *s = NULL;
    hm_model_run r;
    int *ids = NULL, rc = 0, c;
    size_t T = 0, want = a->tokens ? a->tokens : HM_TOKENS, i;
    llama_status st;
    memset(&m, 0, sizeof m);
    memset(&variant, 0, sizeof variant);
    memset(&tok, 0, sizeof tok);
    memset(&r, 0, sizeof r);
    r.o = o;
    r.outp = a->outp;
    r.err = err;
    if ((st = llama_load(a->model, &m)) != LLAMA_OK)
        return hm_fail(err, HM_EXIT_DATA, "cannot load the model %s: %s", a->model, llama_status_str(st));
    r.m = &m;
    if (a->outliers && (st = llama_inject_outliers(&m, &variant)) == LLAMA_OK) r.m = &variant;
    if (st != LLAMA_OK) rc = hm_fail(err, HM_EXIT_DATA, "the outlier variant: %s", llama_status_str(st));
    if (rc == 0 && a->tokens > (size_t)m.c.seq_len)
        rc = hm_fail(err, HM_EXIT_USAGE, "--tokens %zu: the model's context is %d tokens", a->tokens, m.c.seq_len);
    if (rc == 0 && !a->tokens && want > (size_t)m.c.seq_len) want = (size_t)m.c.seq_len;
    if (rc == 0 && !a->tokenizer) { /* a GGUF: the tokenizer is in its metadata */
        llama_gguf *g = NULL;
        if ((st = llama_gguf_open(a->model, &g)) == LLAMA_OK) st = llama_tokenizer_from_gguf(g, &tok);
        llama_gguf_close(g);
        if (st == LLAMA_OK && tok.vocab_size != m.c.vocab_size) st = LLAMA_ERR_VOCAB;
        if (st != LLAMA_OK)
            rc = hm_fail(err, HM_EXIT_DATA, "cannot load the tokenizer of %s: %s", a->model, llama_status_str(st));
    } else if (rc == 0 && (st = llama_tokenizer_load(a->tokenizer, m.c.vocab_size, &tok)) != LLAMA_OK)
        rc = hm_fail(err, HM_EXIT_DATA, "cannot load the tokenizer %s: %s", a->tokenizer, llama_status_str(st));
    if (rc == 0) rc = hm_model_tokens(&tok, a->text, want, &ids, &T, err);
    if (rc == 0 && a->layers) {
        size_t n = strlen(a->layers);
        if (!(r.patterns = (char *)malloc(n + 1))) rc = hm_fail(err, HM_EXIT_DATA, "out of memory");
        for (i = 0; rc == 0 && i <= n; i++) {
            c = a->layers[i] == ',' ? '\0' : a->layers[i];
            r.patterns[i] = (char)c;
            if (c == '\0' && (i == 0 || r.patterns[i - 1] == '\0'))
                rc = hm_fail(err, HM_EXIT_USAGE, "--layers wants names or patterns separated by commas, not '%s'",
                             a->layers);
            r.npatterns += c == '\0';
        }
    }
    if (rc == 0) rc = hm_model_select(&r, ids[0], a->layers);
    if (rc == 0 && r.selected > 1 && !strstr(a->outp, "%s") && !hm_out_is_dir(a->outp))
        rc = hm_fail(err, HM_EXIT_USAGE, "-o %s is one file, but %zu inputs are selected: give a directory (DIR/) "
                     "or a name with %%s", a->outp, r.selected);
    if (rc == 0) {
        snprintf(r.source, sizeof r.source, "%s%s, first %zu tokens of %s", hm_base(a->model),
                 a->outliers ? " outlier variant" : "", T, hm_base(a->text));
        rc = hm_log_open(&r.log, err);
    }
    if (rc == 0 && (st = llama_state_create(r.m, T, T, &s)) != LLAMA_OK)
        rc = hm_fail(err, HM_EXIT_DATA, "the model's state: %s", llama_status_str(st));
    if (rc == 0 && (st = llama_forward(r.m, NULL, s, ids, T, 0, NULL, hm_model_hook, &r)) != LLAMA_OK)
        rc = r.rc ? r.rc : hm_fail(err, HM_EXIT_DATA, "the model's forward: %s", llama_status_str(st));
    rc = hm_batch_finish(&r.batch, rc, err);
    hm_log_close(r.log, rc, out);
    llama_state_free(s);
    free(ids);
    free(r.patterns);
    free(r.names);
    llama_tokenizer_free(&tok);
    llama_free(&variant);
    llama_free(&m);
    return rc;
}

/* ---------------------------------------------------------------------------
   The command line */

/* The usage text, in two halves around the list of methods. */
static const char hm_usage[] =
    "usage: w4a8_heatmap --raw FILE --shape T,K -o OUT.png [options]\n"
    "       w4a8_heatmap --model FILE --tokenizer FILE --text FILE -o OUT [options]\n"
    "  --raw FILE         float32 activations, T tokens x K channels, row-major\n"
    "  --shape T,K        the shape of FILE\n"
    "  --name NAME        layer name on the picture (default: FILE's base name)\n"
    "  --weights FILE     float32 weights W[N][K] of the layer (smoothquant, awq)\n"
    "  --wshape N,K       the shape of the weights\n"
    "  --model FILE       a llama2.c checkpoint or a LLaMA-family GGUF: draw the input of its linear layers\n"
    "                     from an FP32 forward over the text\n"
    "  --tokenizer FILE   its llama2.c tokenizer (a GGUF model brings its own)\n"
    "  --text FILE        the text (stories separated by lines <|endoftext|>, or any)\n"
    "  --tokens N         its first N tokens (128, at most the model's context)\n"
    "  --layers LIST      comma list of names (L0.qkv, L0.wo, L0.w13, L0.w2, ..., cls),\n"
    "                     layers (L3) or globs (*.w2, L?.qkv); default: every input\n"
    "  --outliers         the llama2 example's outlier variant of the model\n"
    "  -o, --out OUT      the picture; with a model, a directory DIR/ (DIR/L0_qkv.png,\n"
    "                     ...) or a name with %s for the layer name (L0_qkv)\n"
    "  --method M         also draw the input after equalization or rotation: ",
                  hm_usage_tail[] =
    "  --alpha A          SmoothQuant migration strength in [0, 1] (0.5)\n"
    "  --group G          AWQ's weight group size (128)\n"
    "  --fptq-low V       FPTQ: max|x| below V stays per-tensor static (15)\n"
    "  --fptq-high V      FPTQ: max|x| from V on goes per-token dynamic (150)\n"
    "  --decades D        colour range: max|x| down to max|x| / 10^D, 1..12 (4)\n"
    "  --size W,H         heatmap size beyond which inputs are max-pooled (512,512)\n"
    "exit status: 0 done, 1 bad data or file, 2 bad command line\n";

/* Options that take a value (all but --help and --outliers). */
static const char *const hm_options[] = { "--raw",     "--shape",     "-o",        "--out",       "--name",
                                          "--method",  "--weights",   "--wshape",  "--alpha",     "--fptq-low",
                                          "--fptq-high", "--decades", "--size",    "--model",     "--tokenizer",
                                          "--text",    "--tokens",    "--layers",  "--group" };

static int hm_known_option(const char *a) {
    size_t i;
    for (i = 0; i < sizeof hm_options / sizeof hm_options[0]; i++)
        if (strcmp(a, hm_options[i]) == 0) return 1;
    return 0;
}

/* "fptq, smoothquant, awq": the names in hm_methods. */
static const char *hm_method_names(char *buf, size_t n) {
    size_t i, used = 0;
    buf[0] = '\0';
    for (i = 0; i < HM_METHOD_COUNT && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", hm_methods[i].name);
    return buf;
}

/* The raw file's picture. */
static int hm_raw_main(const char *raw, const char *shape, const char *name, const char *wpath, const char *wshape,
                       const char *outp, const hm_opts *o, FILE *out, FILE *err) {
    size_t T = 0, K = 0, N = 0, WK = 0;
    float *X = NULL, *W = NULL;
    w4a8_linear lin;
    hm_input in;
    hm_batch batch;
    FILE *log = NULL;
    int rc;
    if (!shape || !outp) return hm_fail(err, HM_EXIT_USAGE, "--raw, --shape and -o are required (see --help)");
    if (!hm_parse_pair(shape, &T, &K))
        return hm_fail(err, HM_EXIT_USAGE, "--shape wants T,K (two positive whole numbers), not '%s'", shape);
    if (!wpath != !wshape) return hm_fail(err, HM_EXIT_USAGE, "--weights and --wshape go together");
    if (wshape && (!hm_parse_pair(wshape, &N, &WK) || WK != K))
        return hm_fail(err, HM_EXIT_USAGE, "--wshape wants N,K with K = %zu (the activations' channels), not '%s'", K,
                       wshape);
    if (o->method && o->method->needs_weights && !wpath)
        return hm_fail(err, HM_EXIT_USAGE, "--method %s needs the layer's weights (--weights FILE --wshape N,K)",
                       o->method->name);
    memset(&batch, 0, sizeof batch);
    rc = hm_read_raw(raw, "--shape", T, K, &X, err);
    if (rc == 0 && wpath) rc = hm_read_raw(wpath, "--wshape", N, K, &W, err);
    if (rc == 0) rc = hm_log_open(&log, err);
    if (rc == 0) {
        memset(&in, 0, sizeof in);
        memset(&lin, 0, sizeof lin);
        in.name = name ? name : hm_base(raw);
        in.X = X;
        in.T = T;
        in.K = K;
        lin.W = W;
        lin.N = N;
        in.lin = W ? &lin : NULL;
        in.nlin = W ? 1 : 0;
        rc = hm_layer(&in, o, outp, &batch, log, err);
    }
    free(X);
    free(W);
    rc = hm_batch_finish(&batch, rc, err);
    hm_log_close(log, rc, out);
    return rc;
}

/* The whole command line, before out is checked. */
static int hm_run(int argc, const char *const *argv, FILE *out, FILE *err) {
    const char *raw = NULL, *shape = NULL, *outp = NULL, *name = NULL, *wpath = NULL, *wshape = NULL;
    hm_model_args ma;
    hm_opts o;
    char names[128];
    int i;
    hm_opts_init(&o);
    memset(&ma, 0, sizeof ma);
    hm_method_names(names, sizeof names);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fprintf(out, "%s%s\n%s", hm_usage, names, hm_usage_tail);
            return 0;
        }
        if (a[0] != '-') return hm_fail(err, HM_EXIT_USAGE, "unexpected argument '%s' (see --help)", a);
        if (strcmp(a, "--outliers") == 0) {
            ma.outliers = 1;
            continue;
        }
        if (!hm_known_option(a))
            return hm_fail(err, HM_EXIT_USAGE, "unknown option '%s' (see --help)", a);
        if (!v) return hm_fail(err, HM_EXIT_USAGE, "option %s needs a value (see --help)", a);
        i++;
        if (strcmp(a, "--raw") == 0) raw = v;
        else if (strcmp(a, "--shape") == 0) shape = v;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) outp = v;
        else if (strcmp(a, "--name") == 0) name = v;
        else if (strcmp(a, "--weights") == 0) wpath = v;
        else if (strcmp(a, "--wshape") == 0) wshape = v;
        else if (strcmp(a, "--model") == 0) ma.model = v;
        else if (strcmp(a, "--tokenizer") == 0) ma.tokenizer = v;
        else if (strcmp(a, "--text") == 0) ma.text = v;
        else if (strcmp(a, "--layers") == 0) ma.layers = v;
        else if (strcmp(a, "--tokens") == 0) {
            if (!hm_parse_size(v, &ma.tokens))
                return hm_fail(err, HM_EXIT_USAGE, "--tokens wants a positive whole number, not '%s'", v);
        } else if (strcmp(a, "--method") == 0) {
            if (!(o.method = hm_method_find(v)))
                return hm_fail(err, HM_EXIT_USAGE, "unknown method '%s' (%s)", v, names);
        } else if (strcmp(a, "--alpha") == 0) {
            if (!hm_parse_float(v, &o.cfg.sq_alpha) || o.cfg.sq_alpha < 0.0f || o.cfg.sq_alpha > 1.0f)
                return hm_fail(err, HM_EXIT_USAGE, "--alpha wants a number in [0, 1], not '%s'", v);
        } else if (strcmp(a, "--group") == 0) {
            if (!hm_parse_size(v, &o.cfg.group_size) || o.cfg.group_size > W4A8_MAX_GROUP)
                return hm_fail(err, HM_EXIT_USAGE, "--group wants a whole number in 1..%zu, not '%s'",
                               (size_t)W4A8_MAX_GROUP, v);
        } else if (strcmp(a, "--fptq-low") == 0 || strcmp(a, "--fptq-high") == 0) {
            float *dst = strcmp(a, "--fptq-low") == 0 ? &o.cfg.fptq_low : &o.cfg.fptq_high;
            if (!hm_parse_float(v, dst) || !(*dst >= 0.0f))
                return hm_fail(err, HM_EXIT_USAGE, "%s wants a number >= 0, not '%s'", a, v);
        } else if (strcmp(a, "--decades") == 0) {
            float d;
            if (!hm_parse_float(v, &d) || d != floorf(d) || d < 1.0f || d > 12.0f)
                return hm_fail(err, HM_EXIT_USAGE, "--decades wants a whole number in 1..12, not '%s'", v);
            o.decades = (int)d;
        } else if (strcmp(a, "--size") == 0) {
            if (!hm_parse_pair(v, &o.max_w, &o.max_h) || o.max_w > HM_SIZE_MAX || o.max_h > HM_SIZE_MAX)
                return hm_fail(err, HM_EXIT_USAGE, "--size wants W,H in 1..%d, not '%s'", HM_SIZE_MAX, v);
        }
    }
    if (!(o.cfg.fptq_low <= o.cfg.fptq_high))
        return hm_fail(err, HM_EXIT_USAGE, "--fptq-low (%g) must not exceed --fptq-high (%g)", o.cfg.fptq_low,
                       o.cfg.fptq_high);
    if (raw && ma.model) return hm_fail(err, HM_EXIT_USAGE, "--raw or --model, not both");
    if (raw) {
        if (ma.tokenizer || ma.text || ma.tokens || ma.layers || ma.outliers)
            return hm_fail(err, HM_EXIT_USAGE, "--tokenizer, --text, --tokens, --layers and --outliers go with --model");
        return hm_raw_main(raw, shape, name, wpath, wshape, outp, &o, out, err);
    }
    if (!ma.model)
        return hm_fail(err, HM_EXIT_USAGE, "--raw FILE --shape T,K or --model FILE --tokenizer FILE --text FILE, "
                       "and -o, are required (see --help)");
    if (shape || name || wpath || wshape)
        return hm_fail(err, HM_EXIT_USAGE, "--shape, --name, --weights and --wshape go with --raw");
    if ((!ma.tokenizer && !llama_is_gguf_file(ma.model)) || !ma.text || !outp || !*outp)
        return hm_fail(err, HM_EXIT_USAGE, "--model needs --tokenizer, --text and -o (see --help)");
    ma.outp = outp;
    return hm_model_main(&ma, &o, out, err);
}

/* The whole command line; returns the exit status. */
static int hm_main(int argc, const char *const *argv, FILE *out, FILE *err) {
    return output_finish("w4a8_heatmap", out, err, hm_run(argc, argv, out, err));
}

#ifndef W4A8_HEATMAP_NO_MAIN
int main(int argc, char **argv) { return hm_main(argc, (const char *const *)argv, stdout, stderr); }
#endif
