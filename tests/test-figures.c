/* SPDX-License-Identifier: MIT
 *
 * The figure renderer (ui/figures): colour maps, scales, heatmaps as PNG
 * (exact cell colours), SVG (well-formed, one cell image), PDF (one page),
 * reproducible vector output, token escaping, charts and precise errors.
 * Nothing here depends on font metrics: cell centres come from
 * lsc_figure_get_cell_area ().
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <fontconfig/fontconfig.h>
#include <pango/pangocairo.h>

#include "lsc-figure.h"
#include "lsc-test-util.h"

#define ASSERT_T(got, want) g_assert_cmpfloat_with_epsilon ((got), (want), 1e-12)

/* ------------------------------------------------------------ colour maps */

static void
test_colormap_lookup (void)
{
  guint8 r, g, b, r2, g2, b2;

  /* matplotlib's viridis(0) = (0.267004, 0.004874, 0.329415), viridis(1) = (0.993248, 0.906157, 0.143936) */
  lsc_colormap_rgb (LSC_COLORMAP_VIRIDIS, 0.0, &r, &g, &b);
  g_assert_cmpuint (r, ==, 68); g_assert_cmpuint (g, ==, 1); g_assert_cmpuint (b, ==, 84);
  lsc_colormap_rgb (LSC_COLORMAP_VIRIDIS, 1.0, &r, &g, &b);
  g_assert_cmpuint (r, ==, 253); g_assert_cmpuint (g, ==, 231); g_assert_cmpuint (b, ==, 37);
  /* magma(0) = (0.001462, 0.000466, 0.013866) */
  lsc_colormap_rgb (LSC_COLORMAP_MAGMA, 0.0, &r, &g, &b);
  g_assert_cmpuint (r, ==, 0); g_assert_cmpuint (g, ==, 0); g_assert_cmpuint (b, ==, 4);
  /* RdBu_r: blue end, red end, near-white centre */
  lsc_colormap_rgb (LSC_COLORMAP_RDBU_R, 0.0, &r, &g, &b);
  g_assert_cmpuint (b, >, r);
  lsc_colormap_rgb (LSC_COLORMAP_RDBU_R, 1.0, &r, &g, &b);
  g_assert_cmpuint (r, >, b);
  lsc_colormap_rgb (LSC_COLORMAP_RDBU_R, 0.5, &r, &g, &b);
  g_assert_cmpuint (MIN (r, MIN (g, b)), >=, 240);

  /* clamping, and t -> entry floor (t * 256) */
  lsc_colormap_rgb (LSC_COLORMAP_MAGMA, -3.0, &r, &g, &b);
  lsc_colormap_rgb (LSC_COLORMAP_MAGMA, 0.0, &r2, &g2, &b2);
  g_assert_true (r == r2 && g == g2 && b == b2);
  lsc_colormap_rgb (LSC_COLORMAP_MAGMA, 7.0, &r, &g, &b);
  lsc_colormap_rgb (LSC_COLORMAP_MAGMA, 255.5 / 256, &r2, &g2, &b2);
  g_assert_true (r == r2 && g == g2 && b == b2);
  lsc_colormap_rgb (LSC_COLORMAP_VIRIDIS, 128.0 / 256, &r, &g, &b);
  lsc_colormap_rgb (LSC_COLORMAP_VIRIDIS, 128.9 / 256, &r2, &g2, &b2);
  g_assert_true (r == r2 && g == g2 && b == b2);
  lsc_colormap_rgb (LSC_COLORMAP_VIRIDIS, 127.9 / 256, &r2, &g2, &b2);
  g_assert_false (r == r2 && g == g2 && b == b2);

  /* NaN is the masked grey */
  lsc_colormap_rgb (LSC_COLORMAP_VIRIDIS, NAN, &r, &g, &b);
  g_assert_cmpuint (r, ==, LSC_FIGURE_MASKED_R);
  g_assert_cmpuint (g, ==, LSC_FIGURE_MASKED_G);
  g_assert_cmpuint (b, ==, LSC_FIGURE_MASKED_B);

  LscColormap map;
  g_assert_true (lsc_colormap_from_name ("rdbu_r", &map));
  g_assert_cmpint (map, ==, LSC_COLORMAP_RDBU_R);
  g_assert_cmpstr (lsc_colormap_get_name (LSC_COLORMAP_MAGMA), ==, "magma");
  g_assert_false (lsc_colormap_from_name ("jet", &map));
  g_assert_true (lsc_colormap_is_diverging (LSC_COLORMAP_RDBU_R));
  g_assert_false (lsc_colormap_is_diverging (LSC_COLORMAP_VIRIDIS));
}

/* ----------------------------------------------------------------- scales */

static LscScale *
make_scale (LscScaleKind kind, gboolean diverging, double floor_, const float *v, gsize n)
{
  g_autoptr(GError) error = NULL;
  LscScaleParams p;
  lsc_scale_params_init (&p);
  p.kind = kind;
  p.diverging = diverging;
  if (floor_ > 0)
    p.log_floor = floor_;
  LscScale *s = lsc_scale_new (&p, v, n, &error);
  g_assert_no_error (error);
  g_assert_nonnull (s);
  return s;
}

static void
test_scale_linear (void)
{
  const float v[] = { 1.0f, NAN, 3.0f, 5.0f, 2.0f };
  g_autoptr(LscScale) s = make_scale (LSC_SCALE_LINEAR, FALSE, 0, v, G_N_ELEMENTS (v));
  ASSERT_T (lsc_scale_get_vmin (s), 1.0);
  ASSERT_T (lsc_scale_get_vmax (s), 5.0);
  ASSERT_T (lsc_scale_map (s, 1.0), 0.0);
  ASSERT_T (lsc_scale_map (s, 2.0), 0.25);
  ASSERT_T (lsc_scale_map (s, 5.0), 1.0);
  ASSERT_T (lsc_scale_map (s, 9.0), 1.0);
  ASSERT_T (lsc_scale_map (s, -9.0), 0.0);
  g_assert_true (isnan (lsc_scale_map (s, NAN)));
  ASSERT_T (lsc_scale_unmap (s, 0.75), 4.0);

  /* explicit range, no data */
  g_autoptr(GError) error = NULL;
  LscScaleParams p;
  lsc_scale_params_init (&p);
  p.vmin = -1.0;
  p.vmax = 1.0;
  g_autoptr(LscScale) e = lsc_scale_new (&p, NULL, 0, &error);
  g_assert_no_error (error);
  ASSERT_T (lsc_scale_map (e, 0.0), 0.5);

  /* a range of zero width */
  const float c[] = { 2.0f, 2.0f };
  g_autoptr(LscScale) z = make_scale (LSC_SCALE_LINEAR, FALSE, 0, c, 2);
  ASSERT_T (lsc_scale_map (z, 2.0), 0.0);
}

static void
test_scale_log (void)
{
  /* 0 and the floor itself are at or below the floor: vmin is 1e-2 */
  const float v[] = { 0.0f, 1e-4f, 1e-2f, 1.0f, -1.0f };
  g_autoptr(LscScale) s = make_scale (LSC_SCALE_LOG, FALSE, 1e-4, v, G_N_ELEMENTS (v));
  g_assert_cmpfloat_with_epsilon (lsc_scale_get_vmin (s), 1e-2, 1e-9);
  ASSERT_T (lsc_scale_get_vmax (s), 1.0);
  g_assert_cmpfloat_with_epsilon (lsc_scale_map (s, 0.1), 0.5, 1e-6);   /* vmin is float 1e-2 */
  g_assert_cmpfloat_with_epsilon (lsc_scale_map (s, 1e-2), 0.0, 1e-7);
  ASSERT_T (lsc_scale_map (s, 0.0), 0.0);
  ASSERT_T (lsc_scale_map (s, -5.0), 0.0);
  ASSERT_T (lsc_scale_map (s, 1e-4), 0.0);
  ASSERT_T (lsc_scale_map (s, 1.0), 1.0);

  /* vmin below the floor: the floor is the bottom of the scale */
  g_autoptr(GError) error = NULL;
  LscScaleParams p;
  lsc_scale_params_init (&p);
  p.kind = LSC_SCALE_LOG;
  p.log_floor = 1e-4;
  p.vmin = 0.0;
  g_autoptr(LscScale) f = lsc_scale_new (&p, v, G_N_ELEMENTS (v), &error);
  g_assert_no_error (error);
  g_assert_cmpfloat_with_epsilon (lsc_scale_get_vmin (f), 1e-4, 1e-12);
  g_assert_cmpfloat_with_epsilon (lsc_scale_map (f, 1e-2), 0.5, 1e-6);
  ASSERT_T (lsc_scale_map (f, 0.0), 0.0);
  ASSERT_T (lsc_scale_map (f, -1.0), 0.0);
  g_assert_cmpfloat_with_epsilon (lsc_scale_unmap (f, 0.5), 1e-2, 1e-12);
}

static void
test_scale_quantile (void)
{
  const float v[] = { 50.0f, 1.0f, NAN, 3.0f, 2.0f, INFINITY, 4.0f };
  g_autoptr(LscScale) s = make_scale (LSC_SCALE_QUANTILE, FALSE, 0, v, G_N_ELEMENTS (v));
  ASSERT_T (lsc_scale_map (s, 1.0), 0.0);
  ASSERT_T (lsc_scale_map (s, 2.0), 0.25);
  ASSERT_T (lsc_scale_map (s, 3.0), 0.5);
  ASSERT_T (lsc_scale_map (s, 4.0), 0.75);
  ASSERT_T (lsc_scale_map (s, 50.0), 1.0);
  ASSERT_T (lsc_scale_map (s, 2.5), 0.375);     /* between ranks 1 and 2 */
  ASSERT_T (lsc_scale_map (s, 27.0), 0.875);    /* between ranks 3 and 4 */
  ASSERT_T (lsc_scale_map (s, 1000.0), 1.0);
  ASSERT_T (lsc_scale_map (s, 0.0), 0.0);
  ASSERT_T (lsc_scale_unmap (s, 0.5), 3.0);

  /* ties take their mean rank */
  const float t[] = { 1.0f, 1.0f, 2.0f };
  g_autoptr(LscScale) ts = make_scale (LSC_SCALE_QUANTILE, FALSE, 0, t, 3);
  ASSERT_T (lsc_scale_map (ts, 1.0), 0.25);
  ASSERT_T (lsc_scale_map (ts, 2.0), 1.0);
}

static void
test_scale_diverging (void)
{
  const float v[] = { -1.0f, 0.5f, 2.0f };
  g_autoptr(LscScale) lin = make_scale (LSC_SCALE_LINEAR, TRUE, 0, v, 3);
  ASSERT_T (lsc_scale_get_vmin (lin), -2.0);
  ASSERT_T (lsc_scale_get_vmax (lin), 2.0);
  ASSERT_T (lsc_scale_map (lin, 0.0), 0.5);
  ASSERT_T (lsc_scale_map (lin, -2.0), 0.0);
  ASSERT_T (lsc_scale_map (lin, 1.0), 0.75);
  ASSERT_T (lsc_scale_map (lin, -1.0), 0.25);

  const float w[] = { -1.0f, 0.1f, 1.0f };
  g_autoptr(LscScale) lg = make_scale (LSC_SCALE_LOG, TRUE, 1e-3, w, 3);
  ASSERT_T (lsc_scale_map (lg, 0.0), 0.5);
  ASSERT_T (lsc_scale_map (lg, 1e-5), 0.5);   /* below the floor: 0 */
  g_assert_cmpfloat_with_epsilon (lsc_scale_map (lg, 1.0), 1.0, 1e-9);
  g_assert_cmpfloat_with_epsilon (lsc_scale_map (lg, -1.0), 0.0, 1e-9);
  g_assert_cmpfloat_with_epsilon (lsc_scale_map (lg, 0.1), 0.5 + 0.5 * 2.0 / 3.0, 1e-6);
  g_assert_cmpfloat_with_epsilon (lsc_scale_map (lg, -0.1), 0.5 - 0.5 * 2.0 / 3.0, 1e-6);

  const float q[] = { -3.0f, -1.0f, 0.0f, 2.0f, 4.0f };
  g_autoptr(LscScale) qs = make_scale (LSC_SCALE_QUANTILE, TRUE, 0, q, 5);
  ASSERT_T (lsc_scale_map (qs, 0.0), 0.5);
  ASSERT_T (lsc_scale_map (qs, 4.0), 1.0);
  ASSERT_T (lsc_scale_map (qs, 2.0), 0.75);
  ASSERT_T (lsc_scale_map (qs, -3.0), 0.125);
  ASSERT_T (lsc_scale_map (qs, -1.0), 0.375);
}

/* ---------------------------------------------------------------- heatmaps */

/* the 4 x 3 test matrix: 0 .. 11 row-major, cell (2, 1) masked */
#define ROWS 4
#define COLS 3
static const float *
matrix_4x3 (void)
{
  static float m[ROWS * COLS];
  for (int i = 0; i < ROWS * COLS; i++)
    m[i] = (float) i;
  m[2 * COLS + 1] = NAN;
  return m;
}

static LscFigure *
heatmap_4x3 (LscColormap map)
{
  g_autoptr(GError) error = NULL;
  LscHeatmapParams p;
  lsc_heatmap_params_init (&p);
  p.title = "A 4 × 3 test map";
  p.colormap = map;
  p.row_offset = 100;
  p.col_offset = 7;
  LscFigure *fig = lsc_figure_new_heatmap (matrix_4x3 (), ROWS, COLS, &p, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fig);
  return fig;
}

typedef struct {
  const guint8 *data;
  gsize len, pos;
} ReadCursor;

static cairo_status_t
read_bytes (void *closure, unsigned char *data, unsigned int length)
{
  ReadCursor *c = closure;
  if (c->pos + length > c->len)
    return CAIRO_STATUS_READ_ERROR;
  memcpy (data, c->data + c->pos, length);
  c->pos += length;
  return CAIRO_STATUS_SUCCESS;
}

static void
pixel_at (cairo_surface_t *img, double x, double y, guint8 *r, guint8 *g, guint8 *b)
{
  int ix = (int) floor (x), iy = (int) floor (y);
  g_assert_cmpint (ix, >=, 0);
  g_assert_cmpint (iy, >=, 0);
  g_assert_cmpint (ix, <, cairo_image_surface_get_width (img));
  g_assert_cmpint (iy, <, cairo_image_surface_get_height (img));
  cairo_surface_flush (img);
  const guint8 *row = cairo_image_surface_get_data (img)
                      + (gsize) iy * cairo_image_surface_get_stride (img);
  guint32 px = ((const guint32 *) row)[ix];
  *r = (px >> 16) & 0xff;
  *g = (px >> 8) & 0xff;
  *b = px & 0xff;
}

/* every cell's centre (and a point near its corner) has the exact map colour */
static void
check_cells (LscFigure *fig, cairo_surface_t *img, double px_per_unit, LscColormap map)
{
  cairo_rectangle_t a;
  g_assert_true (lsc_figure_get_cell_area (fig, &a));
  const float *m = matrix_4x3 ();
  double cw = a.width / COLS, ch = a.height / ROWS;
  /* cells are whole pixels */
  g_assert_cmpfloat_with_epsilon (cw * px_per_unit, round (cw * px_per_unit), 1e-6);
  g_assert_cmpfloat_with_epsilon (ch * px_per_unit, round (ch * px_per_unit), 1e-6);
  for (int i = 0; i < ROWS; i++)
    for (int j = 0; j < COLS; j++)
      {
        guint8 want[3], got[3];
        double t = isnan (m[i * COLS + j]) ? NAN : m[i * COLS + j] / 11.0;
        lsc_colormap_rgb (map, t, &want[0], &want[1], &want[2]);
        double fx[] = { 0.5, 0.1, 0.9 }, fy[] = { 0.5, 0.9, 0.1 };
        for (int k = 0; k < 3; k++)
          {
            pixel_at (img, (a.x + (j + fx[k]) * cw) * px_per_unit,
                      (a.y + (i + fy[k]) * ch) * px_per_unit, &got[0], &got[1], &got[2]);
            if (memcmp (want, got, 3) != 0)
              g_error ("cell (%d, %d) at (%.1f, %.1f): got #%02x%02x%02x, want #%02x%02x%02x", i,
                       j, fx[k], fy[k], got[0], got[1], got[2], want[0], want[1], want[2]);
          }
      }
  /* the masked cell is the neutral grey */
  guint8 r, g, b;
  pixel_at (img, (a.x + 1.5 * cw) * px_per_unit, (a.y + 2.5 * ch) * px_per_unit, &r, &g, &b);
  g_assert_cmpuint (r, ==, LSC_FIGURE_MASKED_R);
  g_assert_cmpuint (g, ==, LSC_FIGURE_MASKED_G);
  g_assert_cmpuint (b, ==, LSC_FIGURE_MASKED_B);
}

static void
test_heatmap_png (void)
{
  const LscColormap maps[] = { LSC_COLORMAP_VIRIDIS, LSC_COLORMAP_MAGMA };
  const double dpis[] = { 72.0, 150.0, 300.0 };
  for (guint k = 0; k < G_N_ELEMENTS (maps); k++)
    for (guint di = 0; di < G_N_ELEMENTS (dpis); di++)
      {
        g_autoptr(GError) error = NULL;
        g_autoptr(LscFigure) fig = heatmap_4x3 (maps[k]);
        LscFigureOutput out;
        lsc_figure_output_init (&out);
        out.format = LSC_FIGURE_FORMAT_PNG;
        out.width_pt = 300;
        out.height_pt = 260;
        out.dpi = dpis[di];
        g_autoptr(GBytes) png = lsc_figure_save_to_bytes (fig, &out, &error);
        g_assert_no_error (error);
        g_assert_nonnull (png);
        gsize len;
        const guint8 *data = g_bytes_get_data (png, &len);
        g_assert_cmpmem (data, 8, "\x89PNG\r\n\x1a\n", 8);

        ReadCursor c = { data, len, 0 };
        cairo_surface_t *img = cairo_image_surface_create_from_png_stream (read_bytes, &c);
        g_assert_cmpint (cairo_surface_status (img), ==, CAIRO_STATUS_SUCCESS);
        g_assert_cmpint (cairo_image_surface_get_width (img), ==, (int) ceil (300 * dpis[di] / 72 - 1e-6));
        g_assert_cmpint (cairo_image_surface_get_height (img), ==, (int) ceil (260 * dpis[di] / 72 - 1e-6));
        check_cells (fig, img, dpis[di] / 72.0, maps[k]);
        cairo_surface_destroy (img);
      }
}

/* the GUI's path: any cairo_t, here with an offset and a scale */
static void
test_heatmap_cairo_t (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscFigure) fig = heatmap_4x3 (LSC_COLORMAP_VIRIDIS);
  cairo_surface_t *img = cairo_image_surface_create (CAIRO_FORMAT_RGB24, 700, 600);
  cairo_t *cr = cairo_create (img);
  cairo_translate (cr, 20, 10);
  cairo_scale (cr, 2.0, 2.0);
  g_assert_true (lsc_figure_render (fig, cr, 320, 280, &error));
  g_assert_no_error (error);
  cairo_destroy (cr);

  /* cell area is in the render's user space: shift it to device space */
  cairo_rectangle_t a;
  g_assert_true (lsc_figure_get_cell_area (fig, &a));
  const float *m = matrix_4x3 ();
  guint8 want[3], got[3];
  lsc_colormap_rgb (LSC_COLORMAP_VIRIDIS, m[3 * COLS + 2] / 11.0, &want[0], &want[1], &want[2]);
  pixel_at (img, 20 + 2 * (a.x + 2.5 * a.width / COLS), 10 + 2 * (a.y + 3.5 * a.height / ROWS),
            &got[0], &got[1], &got[2]);
  g_assert_cmpmem (want, 3, got, 3);
  cairo_surface_destroy (img);
}

typedef struct {
  guint n_elements;
  guint n_images;
  guint n_cell_images;   /* <image width="3" height="4"> */
  gboolean root_is_svg;
} SvgCount;

static void
svg_start (GMarkupParseContext *ctx, const char *name, const char **attr_names,
           const char **attr_values, gpointer user_data, GError **error)
{
  SvgCount *c = user_data;
  if (c->n_elements++ == 0)
    c->root_is_svg = g_str_equal (name, "svg");
  if (!g_str_equal (name, "image"))
    return;
  c->n_images++;
  const char *w = NULL, *h = NULL;
  for (int i = 0; attr_names[i]; i++)
    if (g_str_equal (attr_names[i], "width"))
      w = attr_values[i];
    else if (g_str_equal (attr_names[i], "height"))
      h = attr_values[i];
  const char *rendering = NULL;
  for (int i = 0; attr_names[i]; i++)
    if (g_str_equal (attr_names[i], "image-rendering"))
      rendering = attr_values[i];
  if (g_strcmp0 (w, "3") == 0 && g_strcmp0 (h, "4") == 0
      && g_strcmp0 (rendering, "optimizeSpeed") == 0)
    c->n_cell_images++;
}

static GBytes *
render_bytes (LscFigure *fig, LscFigureFormat format)
{
  g_autoptr(GError) error = NULL;
  LscFigureOutput out;
  lsc_figure_output_init (&out);
  out.format = format;
  GBytes *bytes = lsc_figure_save_to_bytes (fig, &out, &error);
  g_assert_no_error (error);
  g_assert_nonnull (bytes);
  return bytes;
}

static void
test_heatmap_svg (void)
{
  g_autoptr(LscFigure) fig = heatmap_4x3 (LSC_COLORMAP_VIRIDIS);
  g_autoptr(GBytes) svg = render_bytes (fig, LSC_FIGURE_FORMAT_SVG);
  gsize len;
  const char *text = g_bytes_get_data (svg, &len);

  GMarkupParser parser = { .start_element = svg_start };
  SvgCount c = { 0 };
  g_autoptr(GError) error = NULL;
  GMarkupParseContext *ctx = g_markup_parse_context_new (&parser, 0, &c, NULL);
  g_assert_true (g_markup_parse_context_parse (ctx, text, len, &error));
  g_assert_no_error (error);
  g_assert_true (g_markup_parse_context_end_parse (ctx, &error));
  g_assert_no_error (error);
  g_markup_parse_context_free (ctx);

  g_assert_true (c.root_is_svg);
  /* the cells are one 3 x 4 image, not smoothed; the colour bar is the other */
  g_assert_cmpuint (c.n_cell_images, ==, 1);
  g_assert_cmpuint (c.n_images, ==, 2);
  /* sizes in points, and no dates */
  g_assert_nonnull (g_strstr_len (text, len, "width=\"432pt\""));
}

static guint
count_occurrences (const char *hay, gsize len, const char *needle, char not_followed_by)
{
  guint n = 0;
  gsize nl = strlen (needle);
  for (gsize i = 0; i + nl <= len; i++)
    if (memcmp (hay + i, needle, nl) == 0 && (i + nl == len || hay[i + nl] != not_followed_by))
      n++;
  return n;
}

static void
test_heatmap_pdf (void)
{
  g_autoptr(LscFigure) fig = heatmap_4x3 (LSC_COLORMAP_MAGMA);
  g_autoptr(GBytes) pdf = render_bytes (fig, LSC_FIGURE_FORMAT_PDF);
  gsize len;
  const char *data = g_bytes_get_data (pdf, &len);
  g_assert_cmpuint (len, >, 100);
  g_assert_cmpmem (data, 5, "%PDF-", 5);
  /* ends with %%EOF and an optional end of line */
  gsize end = len;
  while (end > 0 && (data[end - 1] == '\n' || data[end - 1] == '\r'))
    end--;
  g_assert_cmpmem (data + end - 5, 5, "%%EOF", 5);
  g_assert_cmpuint (count_occurrences (data, len, "/Type /Page", 's'), ==, 1);
  g_assert_cmpuint (count_occurrences (data, len, "/Count 1", '0'), ==, 1);
  /* fixed dates (cairo 1.16 writes them without the "D:" prefix) */
  g_assert_cmpuint (count_occurrences (data, len, "/CreationDate (", 0), ==, 1);
  g_assert_cmpuint (count_occurrences (data, len, "20000101000000", 0), ==, 2);
}

static void
test_reproducible (void)
{
  const LscFigureFormat formats[] = { LSC_FIGURE_FORMAT_SVG, LSC_FIGURE_FORMAT_PDF,
                                      LSC_FIGURE_FORMAT_PNG };
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
    {
      /* the same figure twice, and a second figure built from the same data */
      g_autoptr(LscFigure) a = heatmap_4x3 (LSC_COLORMAP_VIRIDIS);
      g_autoptr(GBytes) a1 = render_bytes (a, formats[i]);
      g_autoptr(GBytes) a2 = render_bytes (a, formats[i]);
      g_autoptr(LscFigure) b = heatmap_4x3 (LSC_COLORMAP_VIRIDIS);
      g_autoptr(GBytes) b1 = render_bytes (b, formats[i]);
      g_assert_true (g_bytes_equal (a1, a2));
      g_assert_true (g_bytes_equal (a1, b1));
    }
}

static void
test_tokens (void)
{
  g_autofree char *e = lsc_figure_escape_token (" the\tcat\n\r\x01");
  g_assert_cmpstr (e, ==, "\u00b7the\u2192cat\u21b5\u240d\\x01");
  g_autofree char *bad = lsc_figure_escape_token ("a\xff" "b");
  g_assert_true (g_utf8_validate (bad, -1, NULL));
  g_autofree char *plain = lsc_figure_escape_token ("Hello");
  g_assert_cmpstr (plain, ==, "Hello");

  /* a tile with token labels on both axes renders (cells big enough for them) */
  const char *rows[] = { "<s>", " Once", "\n", " upon" };
  const char *cols[] = { "<s>", " Once", "\t" };
  g_autoptr(GError) error = NULL;
  LscHeatmapParams p;
  lsc_heatmap_params_init (&p);
  p.row_labels = rows;
  p.col_labels = cols;
  g_autoptr(LscFigure) fig = lsc_figure_new_heatmap (matrix_4x3 (), ROWS, COLS, &p, &error);
  g_assert_no_error (error);
  g_autoptr(GBytes) png = render_bytes (fig, LSC_FIGURE_FORMAT_PNG);
  g_assert_nonnull (png);
  g_autofree char *path = g_build_filename (lsc_test_tmpdir (), "tokens.svg", NULL);
  g_assert_true (lsc_figure_save (fig, path, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  if (g_getenv ("LSC_FIGURE_SAMPLE_DIR"))
    {
      g_autofree char *png_path = g_build_filename (g_getenv ("LSC_FIGURE_SAMPLE_DIR"),
                                                    "tokens.png", NULL);
      g_assert_true (lsc_figure_save (fig, png_path, NULL, &error));
    }
}

static void
test_errors (void)
{
  g_autoptr(GError) error = NULL;
  float one = 1.0f;

  g_assert_null (lsc_figure_new_heatmap (NULL, 4, 3, NULL, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                         "data is NULL", "4 x 3", NULL);
  g_clear_error (&error);

  g_assert_null (lsc_figure_new_heatmap (&one, 0, 3, NULL, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                         "0 x 3", "at least 1", NULL);
  g_clear_error (&error);

  g_assert_null (lsc_figure_new_heatmap (&one, 1, 40000, NULL, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                         "1 x 40000", "32767", NULL);
  g_clear_error (&error);

  const float nans[] = { NAN, NAN };
  g_assert_null (lsc_figure_new_heatmap (nans, 1, 2, NULL, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA, "heatmap",
                         "no finite value", NULL);
  g_clear_error (&error);

  LscScaleParams sp;
  lsc_scale_params_init (&sp);
  sp.kind = LSC_SCALE_LOG;
  sp.log_floor = 0.0;
  g_assert_null (lsc_scale_new (&sp, &one, 1, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT, "log_floor",
                         NULL);
  g_clear_error (&error);

  lsc_scale_params_init (&sp);
  sp.vmin = 2;
  sp.vmax = 1;
  g_assert_null (lsc_scale_new (&sp, &one, 1, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT, "vmin 2",
                         "vmax 1", NULL);
  g_clear_error (&error);

  g_autoptr(LscFigure) fig = heatmap_4x3 (LSC_COLORMAP_VIRIDIS);
  g_autofree char *jpg = g_build_filename (lsc_test_tmpdir (), "map.jpg", NULL);
  g_assert_false (lsc_figure_save (fig, jpg, NULL, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_UNKNOWN_FORMAT, "map.jpg",
                         "'.jpg'", ".png, .svg or .pdf", NULL);
  g_clear_error (&error);
  g_assert_false (g_file_test (jpg, G_FILE_TEST_EXISTS));

  g_autofree char *noext = g_build_filename (lsc_test_tmpdir (), "map", NULL);
  g_assert_false (lsc_figure_save (fig, noext, NULL, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_UNKNOWN_FORMAT,
                         "no extension", NULL);
  g_clear_error (&error);

  LscFigureOutput out;
  lsc_figure_output_init (&out);
  out.width_pt = 0;
  g_autofree char *png = g_build_filename (lsc_test_tmpdir (), "map.png", NULL);
  g_assert_false (lsc_figure_save (fig, png, &out, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT, "map.png",
                         "0 x 360 pt", NULL);
  g_clear_error (&error);

  lsc_figure_output_init (&out);
  out.dpi = 0;
  g_assert_false (lsc_figure_save (fig, png, &out, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT, "0 dpi",
                         NULL);
  g_clear_error (&error);

  g_assert_false (lsc_figure_save (fig, "/nonexistent-dir/map.pdf", NULL, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_IO, "/nonexistent-dir/map.pdf",
                         NULL);
  g_clear_error (&error);

  double x = 1.0;
  g_assert_false (lsc_figure_add_series (fig, "s", &x, &x, 1, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                         "not a line chart", NULL);
  g_clear_error (&error);

  const char *labels[] = { "a" };
  double nan = NAN;
  g_assert_null (lsc_figure_new_bar_chart (labels, &nan, 1, 0, NULL, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA, "finite", NULL);
  g_clear_error (&error);
  g_assert_null (lsc_figure_new_bar_chart (labels, &x, 0, 0, NULL, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT, "n = 0", NULL);
}

/* ------------------------------------------------------------------ charts */

static void
test_charts (void)
{
  g_autoptr(GError) error = NULL;
  LscChartParams p;
  lsc_chart_params_init (&p);
  p.title = "Needle recall";
  p.x_label = "Context length (tokens)";
  p.y_label = "Recall";
  g_autoptr(LscFigure) line = lsc_figure_new_line_chart (&p, &error);
  g_assert_no_error (error);
  double x[32], y1[32], y2[32];
  for (int i = 0; i < 32; i++)
    {
      x[i] = 1024.0 * (i + 1);
      y1[i] = 1.0 - 0.01 * i;
      y2[i] = i == 10 ? NAN : 0.9 * exp (-i / 20.0);
    }
  g_assert_true (lsc_figure_add_series (line, "full cache", x, y1, 32, &error));
  g_assert_true (lsc_figure_add_series (line, "StreamingLLM", x, y2, 32, &error));
  g_assert_no_error (error);
  for (LscFigureFormat f = LSC_FIGURE_FORMAT_PNG; f <= LSC_FIGURE_FORMAT_PDF; f++)
    {
      g_autoptr(GBytes) b = render_bytes (line, f);
      g_assert_cmpuint (g_bytes_get_size (b), >, 100);
    }
  g_assert_false (lsc_figure_get_cell_area (line, &(cairo_rectangle_t) { 0 }));

  const char *heads[] = { "L0 H1", "L3 H5", "L7 H2", "L12 H0", "L2 H2" };
  const double scores[] = { 0.1, 0.9, NAN, 0.45, -0.05 };
  p.title = "Retrieval heads";
  p.x_label = "Retrieval score";
  p.y_label = NULL;
  g_autoptr(LscFigure) bars = lsc_figure_new_bar_chart (heads, scores, 5, 3, &p, &error);
  g_assert_no_error (error);
  for (LscFigureFormat f = LSC_FIGURE_FORMAT_PNG; f <= LSC_FIGURE_FORMAT_PDF; f++)
    {
      g_autoptr(GBytes) b = render_bytes (bars, f);
      g_assert_cmpuint (g_bytes_get_size (b), >, 100);
    }
  const char *dir = g_getenv ("LSC_FIGURE_SAMPLE_DIR");
  if (dir)
    {
      g_autofree char *l = g_build_filename (dir, "line-chart.png", NULL);
      g_autofree char *b = g_build_filename (dir, "bar-chart.png", NULL);
      g_assert_true (lsc_figure_save (line, l, NULL, &error));
      g_assert_true (lsc_figure_save (bars, b, NULL, &error));
    }
}

/* ------------------------------------------------------------------ sample */

/* A causal attention-like 64 x 64 tile from position 1000: a sink on the
 * first key, a local band, and one retrieval stripe; keys after the query
 * are masked. */
static void
test_sample_causal (void)
{
  enum { N = 64 };
  const gint64 q0 = 1000;
  g_autofree float *p = g_new (float, N * N);   /* (N queries, N keys) */
  for (int i = 0; i < N; i++)
    {
      double sum = 0.0;
      for (int j = 0; j <= i; j++)
        {
          double w = exp (-(i - j) / 3.0) + (j == 0 ? 4.0 : 0.0)
                     + (i >= 40 && j == 17 ? 2.0 : 0.0) + 0.02;
          p[i * N + j] = (float) w;
          sum += w;
        }
      for (int j = 0; j < N; j++)
        p[i * N + j] = j <= i ? (float) (p[i * N + j] / sum) : NAN;
    }

  g_autoptr(GError) error = NULL;
  LscHeatmapParams hp;
  lsc_heatmap_params_init (&hp);
  hp.title = "Layer 3, head 5 (synthetic)";
  hp.row_offset = q0;
  hp.col_offset = q0;
  hp.scale.kind = LSC_SCALE_LOG;
  hp.scale.log_floor = 1e-4;
  g_autoptr(LscFigure) fig = lsc_figure_new_heatmap (p, N, N, &hp, &error);
  g_assert_no_error (error);

  const char *dir = g_getenv ("LSC_FIGURE_SAMPLE_DIR");
  if (dir == NULL)
    dir = lsc_test_tmpdir ();
  const char *names[] = { "causal-64.png", "causal-64.svg", "causal-64.pdf" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *path = g_build_filename (dir, names[i], NULL);
      g_assert_true (lsc_figure_save (fig, path, NULL, &error));
      g_assert_no_error (error);
      g_test_message ("wrote %s", path);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/figures/colormap/lookup", test_colormap_lookup);
  g_test_add_func ("/figures/scale/linear", test_scale_linear);
  g_test_add_func ("/figures/scale/log", test_scale_log);
  g_test_add_func ("/figures/scale/quantile", test_scale_quantile);
  g_test_add_func ("/figures/scale/diverging", test_scale_diverging);
  g_test_add_func ("/figures/heatmap/png-cells", test_heatmap_png);
  g_test_add_func ("/figures/heatmap/cairo-context", test_heatmap_cairo_t);
  g_test_add_func ("/figures/heatmap/svg", test_heatmap_svg);
  g_test_add_func ("/figures/heatmap/pdf", test_heatmap_pdf);
  g_test_add_func ("/figures/output/reproducible", test_reproducible);
  g_test_add_func ("/figures/heatmap/tokens", test_tokens);
  g_test_add_func ("/figures/errors", test_errors);
  g_test_add_func ("/figures/charts", test_charts);
  g_test_add_func ("/figures/sample/causal-64", test_sample_causal);
  int status = g_test_run ();

  /* release the font caches so that LeakSanitizer sees only our own leaks */
  pango_cairo_font_map_set_default (NULL);
  cairo_debug_reset_static_data ();
  FcFini ();
  return status;
}
