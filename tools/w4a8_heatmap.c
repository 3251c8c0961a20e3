/* w4a8_heatmap - see the outliers: activation magnitudes as PNG heatmaps.

       w4a8_heatmap --raw X.f32 --shape T,K -o out.png [options]

   X.f32 holds T tokens x K channels of float32 in native byte order, row by
   row (numpy's x.astype(np.float32).tofile). The picture shows |x| with
   tokens down and channels across on a log colour scale (viridis), a colour
   bar with its range, the per-channel max|x| as bars above (what every
   equalization method reads), and the layer name and max|x| as text.
   Inputs larger than --size are max-pooled, never subsampled, so a single
   outlier always stays visible.

   --method fptq|smoothquant draws the input before and after that method's
   equalization (x / s) side by side on one colour scale. FPTQ's logarithmic
   equalization needs only the activations; SmoothQuant also needs the
   layer's weights W[N][K] (--weights W.f32 --wshape N,K). For FPTQ the tool
   also prints the layer-wise strategy the layer would get.

   Exit status: 0 done, 1 bad input data or a file that cannot be read or
   written, 2 a bad command line. On failure no output file is created and an
   existing one is left as it was: the PNG goes to OUT.tmp and is renamed.

   Build: make (links Debian's libstb: apt-get install libstb-dev).
   Define W4A8_HEATMAP_NO_MAIN before including this file to get its
   functions without main() and without the w4a8 implementation (the tests
   do that). Every matrix goes through hm_layer(), whatever its source. */
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
#include <stb/stb_image_write.h>

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
    float alpha;             /* SmoothQuant migration strength: 0.5 */
    float fptq_low;          /* FPTQ: below, per-tensor static: 15 */
    float fptq_high;         /* FPTQ: from here, per-token dynamic: 150 */
    int decades;             /* colour range: max|x| down to max|x| / 10^decades: 4 */
    size_t max_w, max_h;     /* heatmap panel size beyond which we max-pool: 512 x 512 */
} hm_opts;

static void hm_opts_init(hm_opts *o) {
    memset(o, 0, sizeof *o);
    o->alpha = 0.5f;
    o->fptq_low = 15.0f;
    o->fptq_high = 150.0f;
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
   PNG output: written beside the target as PATH.tmp, then renamed, so a
   failure never leaves a partial file or clobbers an existing one. */

typedef struct hm_sink {
    FILE *f;
    int ok;
} hm_sink;

static void hm_sink_write(void *ctx, void *data, int size) {
    hm_sink *s = (hm_sink *)ctx;
    if (size > 0 && fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->ok = 0;
}

static int hm_write_png(const hm_image *im, const char *path, FILE *err) {
    size_t n = strlen(path);
    char *tmp = (char *)malloc(n + 5);
    hm_sink sink;
    int saved = 0, encoded;
    if (!tmp) return hm_fail(err, HM_EXIT_DATA, "out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    errno = 0;
    sink.f = fopen(tmp, "wb");
    sink.ok = sink.f != NULL;
    if (sink.ok) {
        encoded = stbi_write_png_to_func(hm_sink_write, &sink, im->w, im->h, 3, im->rgb, im->w * 3);
        if (!encoded) sink.ok = 0;
        if (fclose(sink.f) != 0) sink.ok = 0;
        if (sink.ok) {
            errno = 0;
            sink.ok = rename(tmp, path) == 0;
        }
        saved = errno;
        if (!sink.ok) remove(tmp);
    } else {
        saved = errno;
    }
    free(tmp);
    if (!sink.ok)
        return hm_fail(err, HM_EXIT_DATA, "cannot write %s: %s", path, saved ? strerror(saved) : "write failed");
    return 0;
}

/* ---------------------------------------------------------------------------
   Methods: each turns the layer's activations (and weights) into the
   equalization s[K] (x is divided by s). Adding one is a function and a row
   in hm_methods. */

/* One layer's input and, when known, its weights. */
typedef struct hm_input {
    const char *name;
    const float *X; /* [T][K] */
    size_t T, K;
    const float *W; /* [N][K] or NULL */
    size_t N;
} hm_input;

struct hm_method {
    const char *name;   /* on the command line */
    const char *label;  /* on the picture */
    int needs_weights;
    w4a8_status (*smooth)(const hm_input *in, const w4a8_calib *calib, const hm_opts *o, float *s);
    /* A line about the method's decision for this layer (may be NULL). */
    void (*note)(float xmax, const hm_opts *o, char *buf, size_t n);
};

static w4a8_status hm_smooth_smoothquant(const hm_input *in, const w4a8_calib *calib, const hm_opts *o, float *s) {
    w4a8_linear lin;
    float *wmax = (float *)malloc(in->K * sizeof(float));
    w4a8_status st;
    if (!wmax) return W4A8_ERR_NOMEM;
    memset(&lin, 0, sizeof lin);
    lin.W = in->W;
    lin.N = in->N;
    st = w4a8_weight_absmax(&lin, 1, in->K, wmax);
    if (st == W4A8_OK) st = w4a8_smooth_smoothquant(calib->absmax, wmax, in->K, o->alpha, s);
    free(wmax);
    return st;
}

static void hm_note_smoothquant(float xmax, const hm_opts *o, char *buf, size_t n) {
    (void)xmax;
    snprintf(buf, n, "SmoothQuant, alpha %.3g: s_j = max|x_j|^alpha / max|w_j|^(1-alpha)", o->alpha);
}

static w4a8_status hm_smooth_fptq(const hm_input *in, const w4a8_calib *calib, const hm_opts *o, float *s) {
    (void)o;
    return w4a8_smooth_lae(calib->absmax, in->K, s);
}

/* FPTQ's layer-wise strategy from v = max|x|: small ranges go per-tensor
   static as they are, middling ones after logarithmic equalization (LAE),
   wide ones per-token dynamic. */
static const char *hm_fptq_strategy(float v, const hm_opts *o) {
    if (v < o->fptq_low) return "per-tensor static";
    if (v < o->fptq_high) return "LAE, then per-tensor static";
    return "per-token dynamic";
}

static void hm_note_fptq(float xmax, const hm_opts *o, char *buf, size_t n) {
    snprintf(buf, n, "FPTQ strategy (max|x| %.4g; bounds %.4g, %.4g): %s", xmax, o->fptq_low, o->fptq_high,
             hm_fptq_strategy(xmax, o));
}

static const hm_method hm_methods[] = {
    { "fptq", "after FPTQ LAE", 0, hm_smooth_fptq, hm_note_fptq },
    { "smoothquant", "after SmoothQuant", 1, hm_smooth_smoothquant, hm_note_smoothquant },
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
   method's note) to out. */

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

/* Xs = X * (1/s) with the method's s, as the layer's forward computes it. */
static int hm_equalize(const hm_input *in, const hm_opts *o, float *Xs, FILE *err) {
    w4a8_calib *calib = NULL;
    float *s = (float *)malloc(in->K * sizeof(float));
    size_t i, TK = in->T * in->K;
    w4a8_status st = s ? w4a8_calib_create(in->K, 0, 0, &calib) : W4A8_ERR_NOMEM;
    int rc = 0;
    if (st == W4A8_OK) st = w4a8_calib_add(calib, in->X, in->T);
    if (st == W4A8_OK) st = o->method->smooth(in, calib, o, s);
    if (st != W4A8_OK) {
        rc = hm_fail(err, HM_EXIT_DATA, "%s: %s: %s", in->name, o->method->name, w4a8_status_str(st));
    } else {
        for (i = 0; i < in->K; i++) s[i] = 1.0f / s[i];
        for (i = 0; i < TK; i++) Xs[i] = in->X[i] * s[i % in->K];
        if (hm_first_nonfinite(Xs, TK) < TK)
            rc = hm_fail(err, HM_EXIT_DATA, "%s: %s: equalized values overflow float", in->name, o->method->name);
    }
    w4a8_calib_free(calib);
    free(s);
    return rc;
}

static int hm_layer(const hm_input *in, const hm_opts *o, const char *path, FILE *out, FILE *err) {
    hm_figure *f;
    hm_image im;
    hm_grid g;
    float *Xs = NULL, xmax;
    size_t TK = in->T * in->K, at;
    int rc;
    if (in->T == 0 || in->K == 0 || TK / in->K != in->T || TK > (size_t)-1 / sizeof(float))
        return hm_fail(err, HM_EXIT_DATA, "%s: bad shape %zu x %zu", in->name, in->T, in->K);
    if (o->method && o->method->needs_weights && !in->W)
        return hm_fail(err, HM_EXIT_USAGE, "%s: --method %s needs the layer's weights (--weights FILE --wshape N,K)",
                       in->name, o->method->name);
    if (in->W && (in->N == 0 || in->N > (size_t)-1 / sizeof(float) / in->K))
        return hm_fail(err, HM_EXIT_DATA, "%s: bad weight shape %zu x %zu", in->name, in->N, in->K);
    if ((rc = hm_check_finite(in->name, "token", "channel", in->X, in->T, in->K, err)) != 0) return rc;
    if (in->W && (rc = hm_check_finite("weights", "row", "column", in->W, in->N, in->K, err)) != 0) return rc;
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
    f->T = in->T;
    f->K = in->K;
    f->X[0] = in->X;
    f->npanels = 1;
    snprintf(f->labels[0], sizeof f->labels[0], "%s: max %.4g (channel %zu)", o->method ? "before" : "|x|", xmax,
             at % in->K);
    if (o->method && (rc = hm_equalize(in, o, Xs, err)) == 0) {
        float smax = hm_absmax(Xs, TK, &at);
        f->X[1] = Xs;
        f->npanels = 2;
        snprintf(f->labels[1], sizeof f->labels[1], "%s: max %.4g (ch %zu)", o->method->label, smax, at % in->K);
        if (o->method->note) o->method->note(xmax, o, f->notes[f->nnotes++], sizeof f->notes[0]);
    }
    if (rc == 0) rc = hm_render(f, o, &im, err);
    if (rc == 0) rc = hm_write_png(&im, path, err);
    if (rc == 0) {
        size_t i;
        fprintf(out, "%s: %s, %zu x %zu, max|x| %.4g -> %d x %d\n", path, in->name, in->T, in->K, xmax, im.w, im.h);
        for (i = 2; i < f->nnotes; i++) fprintf(out, "%s: %s\n", in->name, f->notes[i]);
    }
    free(im.rgb);
    free(Xs);
    free(f);
    return rc;
}

/* ---------------------------------------------------------------------------
   Raw input and the command line */

/* "A,B" with 1 <= A, B and A * B * 4 bytes addressable. */
static int hm_parse_pair(const char *s, size_t *a, size_t *b) {
    size_t v[2];
    int i;
    for (i = 0; i < 2; i++) {
        size_t x = 0;
        if (*s < '0' || *s > '9') return 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (x > ((size_t)-1 - 9) / 10) return 0;
            x = x * 10 + (size_t)(*s - '0');
        }
        if (x == 0 || *s != (i == 0 ? ',' : '\0')) return 0;
        v[i] = x;
        s++;
    }
    if (v[0] > (size_t)-1 / sizeof(float) / v[1]) return 0;
    *a = v[0];
    *b = v[1];
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
    FILE *f = fopen(path, "rb");
    if (!f) return hm_fail(err, HM_EXIT_DATA, "cannot read %s: %s", path, strerror(errno));
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

/* The usage text, in two halves around the list of methods. */
static const char hm_usage[] =
    "usage: w4a8_heatmap --raw FILE --shape T,K -o OUT.png [options]\n"
    "  --raw FILE         float32 activations, T tokens x K channels, row-major\n"
    "  --shape T,K        the shape of FILE\n"
    "  -o, --out OUT.png  the picture\n"
    "  --name NAME        layer name on the picture (default: FILE's base name)\n"
    "  --method M         also draw the input after equalization: ",
                  hm_usage_tail[] =
    "  --weights FILE     float32 weights W[N][K] of the layer (smoothquant needs them)\n"
    "  --wshape N,K       the shape of the weights\n"
    "  --alpha A          SmoothQuant migration strength in [0, 1] (0.5)\n"
    "  --fptq-low V       FPTQ: max|x| below V stays per-tensor static (15)\n"
    "  --fptq-high V      FPTQ: max|x| from V on goes per-token dynamic (150)\n"
    "  --decades D        colour range: max|x| down to max|x| / 10^D, 1..12 (4)\n"
    "  --size W,H         heatmap size beyond which inputs are max-pooled (512,512)\n"
    "exit status: 0 done, 1 bad data or file, 2 bad command line\n";

/* Options that take a value: all of them but --help. */
static const char *const hm_options[] = { "--raw",     "--shape",    "-o",        "--out",   "--name",
                                          "--method",  "--weights",  "--wshape",  "--alpha", "--fptq-low",
                                          "--fptq-high", "--decades", "--size" };

static int hm_known_option(const char *a) {
    size_t i;
    for (i = 0; i < sizeof hm_options / sizeof hm_options[0]; i++)
        if (strcmp(a, hm_options[i]) == 0) return 1;
    return 0;
}

/* "fptq, smoothquant": the names in hm_methods. */
static const char *hm_method_names(char *buf, size_t n) {
    size_t i, used = 0;
    buf[0] = '\0';
    for (i = 0; i < HM_METHOD_COUNT && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", hm_methods[i].name);
    return buf;
}

/* The whole command line; returns the exit status. */
static int hm_main(int argc, const char *const *argv, FILE *out, FILE *err) {
    const char *raw = NULL, *shape = NULL, *outp = NULL, *name = NULL, *wpath = NULL, *wshape = NULL;
    size_t T = 0, K = 0, N = 0, WK = 0;
    float *X = NULL, *W = NULL;
    hm_opts o;
    hm_input in;
    char names[128];
    int i, rc;
    hm_opts_init(&o);
    hm_method_names(names, sizeof names);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fprintf(out, "%s%s\n%s", hm_usage, names, hm_usage_tail);
            return 0;
        }
        if (a[0] != '-') return hm_fail(err, HM_EXIT_USAGE, "unexpected argument '%s' (see --help)", a);
        if (!hm_known_option(a)) return hm_fail(err, HM_EXIT_USAGE, "unknown option '%s' (see --help)", a);
        if (!v) return hm_fail(err, HM_EXIT_USAGE, "option %s needs a value (see --help)", a);
        i++;
        if (strcmp(a, "--raw") == 0) raw = v;
        else if (strcmp(a, "--shape") == 0) shape = v;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) outp = v;
        else if (strcmp(a, "--name") == 0) name = v;
        else if (strcmp(a, "--weights") == 0) wpath = v;
        else if (strcmp(a, "--wshape") == 0) wshape = v;
        else if (strcmp(a, "--method") == 0) {
            if (!(o.method = hm_method_find(v)))
                return hm_fail(err, HM_EXIT_USAGE, "unknown method '%s' (%s)", v, names);
        } else if (strcmp(a, "--alpha") == 0) {
            if (!hm_parse_float(v, &o.alpha) || o.alpha < 0.0f || o.alpha > 1.0f)
                return hm_fail(err, HM_EXIT_USAGE, "--alpha wants a number in [0, 1], not '%s'", v);
        } else if (strcmp(a, "--fptq-low") == 0 || strcmp(a, "--fptq-high") == 0) {
            float *dst = strcmp(a, "--fptq-low") == 0 ? &o.fptq_low : &o.fptq_high;
            if (!hm_parse_float(v, dst) || !(*dst > 0.0f))
                return hm_fail(err, HM_EXIT_USAGE, "%s wants a positive number, not '%s'", a, v);
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
    if (!raw || !shape || !outp) return hm_fail(err, HM_EXIT_USAGE, "--raw, --shape and -o are required (see --help)");
    if (!hm_parse_pair(shape, &T, &K))
        return hm_fail(err, HM_EXIT_USAGE, "--shape wants T,K (two positive whole numbers), not '%s'", shape);
    if (!(o.fptq_low < o.fptq_high))
        return hm_fail(err, HM_EXIT_USAGE, "--fptq-low (%g) must be below --fptq-high (%g)", o.fptq_low, o.fptq_high);
    if (!wpath != !wshape) return hm_fail(err, HM_EXIT_USAGE, "--weights and --wshape go together");
    if (wshape && (!hm_parse_pair(wshape, &N, &WK) || WK != K))
        return hm_fail(err, HM_EXIT_USAGE, "--wshape wants N,K with K = %zu (the activations' channels), not '%s'", K,
                       wshape);
    if (o.method && o.method->needs_weights && !wpath)
        return hm_fail(err, HM_EXIT_USAGE, "--method %s needs the layer's weights (--weights FILE --wshape N,K)",
                       o.method->name);
    if (!name) name = strrchr(raw, '/') ? strrchr(raw, '/') + 1 : raw;
    rc = hm_read_raw(raw, "--shape", T, K, &X, err);
    if (rc == 0 && wpath) rc = hm_read_raw(wpath, "--wshape", N, K, &W, err);
    if (rc == 0) {
        in.name = name;
        in.X = X;
        in.T = T;
        in.K = K;
        in.W = W;
        in.N = N;
        rc = hm_layer(&in, &o, outp, out, err);
    }
    free(X);
    free(W);
    return rc;
}

#ifndef W4A8_HEATMAP_NO_MAIN
int main(int argc, char **argv) { return hm_main(argc, (const char *const *)argv, stdout, stderr); }
#endif
