/* SPDX-License-Identifier: MIT
 *
 * Heatmap rendering. Layout, left to right: y-axis title (vertical), y tick
 * labels (positions, or row tokens when a row is tall enough for a line),
 * the cell area, the colour bar with its ticks and title; top to bottom:
 * the title, the cell area, x tick labels (positions, or column tokens
 * drawn vertically), the x-axis title. Cells keep a square aspect where the
 * space allows. The cells are one image (one pixel per cell) drawn scaled
 * with CAIRO_FILTER_NEAREST into an area snapped to whole device pixels, so
 * that on a raster every cell is a whole number of pixels wide and high.
 */
#include "config.h"

#include <math.h>

#include "lsc-figure-private.h"

#define PAD 8.0            /* outer margin */
#define TICK 3.0           /* tick mark length */
#define GAP 2.5            /* tick mark -> tick label */
#define TITLE_GAP 6.0      /* title -> plot, tick labels -> axis title */
#define CBAR_GAP 12.0      /* cell area -> colour bar */
#define CBAR_W 12.0
#define LINE_W 0.6
#define MAX_TOKEN_CHARS 14

typedef struct {
  double t;          /* position on the colour bar, 0 bottom .. 1 top */
  char *markup;
} CbarTick;

static void
cbar_tick_clear (gpointer p)
{
  g_free (((CbarTick *) p)->markup);
}

static void
add_tick (GArray *ticks, double t, char *markup)
{
  CbarTick tick = { t, markup };
  g_array_append_val (ticks, tick);
}

/* "10⁻³" with Unicode superscripts (Pango 1.50's <sup> ignores absolute font sizes) */
static char *
power_of_ten_label (int k, gboolean negative)
{
  static const char *const digits[] = { "\u2070", "\u00b9", "\u00b2", "\u00b3", "\u2074",
                                        "\u2075", "\u2076", "\u2077", "\u2078", "\u2079" };
  const char *sign = negative ? "\u2212" : "";
  if (k == 0)
    return g_strdup_printf ("%s1", sign);
  if (k == 1)
    return g_strdup_printf ("%s10", sign);
  GString *out = g_string_new (sign);
  g_string_append (out, "10");
  if (k < 0)
    g_string_append (out, "\u207b");
  g_autofree char *num = g_strdup_printf ("%d", ABS (k));
  for (const char *c = num; *c; c++)
    g_string_append (out, digits[*c - '0']);
  return g_string_free (out, FALSE);
}

/* Ticks of the colour bar: round values on linear scales, powers of ten on
 * log scales, quartiles on quantile scales. */
static GArray *
colorbar_ticks (const LscScale *s, gboolean diverging, int max_ticks)
{
  GArray *ticks = g_array_new (FALSE, FALSE, sizeof (CbarTick));
  g_array_set_clear_func (ticks, cbar_tick_clear);
  double vmin = lsc_scale_get_vmin (s), vmax = lsc_scale_get_vmax (s);
  max_ticks = MAX (max_ticks, 2);

  switch (lsc_scale_get_kind (s))
    {
    case LSC_SCALE_LINEAR:
      if (!(vmax > vmin))
        {
          add_tick (ticks, lsc_scale_map (s, vmin), _lsc_format_value (vmin));
          break;
        }
      {
        double step = _lsc_nice_step (vmax - vmin, max_ticks);
        for (double v = ceil (vmin / step - 1e-9) * step; v <= vmax + step * 1e-9; v += step)
          add_tick (ticks, lsc_scale_map (s, v), _lsc_format_tick (v, step));
      }
      break;

    case LSC_SCALE_LOG:
      {
        /* decades inside the range; on a diverging scale also 0 and the negatives */
        double lo = diverging ? lsc_scale_unmap (s, 0.5 + 1e-12) : vmin;
        lo = diverging ? fabs (lo) : lo;
        double hi = vmax;
        int k0 = (int) ceil (log10 (lo) - 1e-9), k1 = (int) floor (log10 (hi) + 1e-9);
        int n = k1 - k0 + 1;
        int slots = diverging ? (max_ticks - 1) / 2 : max_ticks;
        int stride = n > slots && slots > 0 ? (n + slots - 1) / slots : 1;
        if (n < 2 && !diverging)
          {
            /* less than two decades: the ends */
            add_tick (ticks, 0.0, _lsc_format_value (vmin));
            add_tick (ticks, 1.0, _lsc_format_value (vmax));
            break;
          }
        if (diverging)
          add_tick (ticks, 0.5, g_strdup ("0"));
        for (int k = k1; k >= k0; k -= stride)
          {
            double v = pow (10.0, k);
            add_tick (ticks, lsc_scale_map (s, v), power_of_ten_label (k, FALSE));
            if (diverging)
              add_tick (ticks, lsc_scale_map (s, -v), power_of_ten_label (k, TRUE));
          }
      }
      break;

    case LSC_SCALE_QUANTILE:
      for (int i = 0; i <= 4; i++)
        {
          double t = i / 4.0;
          add_tick (ticks, t, _lsc_format_value (lsc_scale_unmap (s, t)));
        }
      break;
    }
  return ticks;
}

static char *
truncate_label (const char *label)
{
  if (g_utf8_strlen (label, -1) <= MAX_TOKEN_CHARS)
    return g_strdup (label);
  const char *end = g_utf8_offset_to_pointer (label, MAX_TOKEN_CHARS - 1);
  GString *out = g_string_new_len (label, end - label);
  g_string_append (out, "\u2026");
  return g_string_free (out, FALSE);
}

static double
max_label_width (LscDraw *d, char **labels, gsize n)
{
  double w = 0.0;
  for (gsize i = 0; i < n; i++)
    {
      g_autofree char *t = truncate_label (labels[i]);
      w = MAX (w, _lsc_text_width (d, t, LSC_FIG_TOKEN_PT, FALSE));
    }
  return w;
}

/* integer tick step for positions over n cells, at most max_ticks ticks */
static gint64
position_step (gsize n, int max_ticks)
{
  double step = _lsc_nice_step (MAX ((double) n - 1.0, 1.0), MAX (max_ticks, 2));
  return step < 1.0 ? 1 : (gint64) llround (step);
}

typedef struct {
  double ax, ay, aw, ah;         /* cell area */
  gboolean row_tokens, col_tokens;
  double ytick_w, xtick_h;       /* space taken by the tick labels */
} Layout;

static void
compute_layout (LscFigure *fig, LscDraw *d, double width, double height, double cbar_right,
                Layout *L)
{
  double title_h = fig->title ? _lsc_text_height (d, LSC_FIG_TITLE_PT) : 0.0;
  double label_h = _lsc_text_height (d, LSC_FIG_LABEL_PT);
  double tick_h = _lsc_text_height (d, LSC_FIG_TICK_PT);
  double token_h = _lsc_text_height (d, LSC_FIG_TOKEN_PT);

  /* the widest position label: the last position is the longest number */
  g_autofree char *widest = g_strdup_printf ("%" G_GINT64_FORMAT,
                                             fig->row_offset + (gint64) fig->rows - 1);
  double pos_w = _lsc_text_width (d, widest, LSC_FIG_TICK_PT, FALSE);
  double row_tok_w = fig->row_labels ? max_label_width (d, fig->row_labels, fig->rows) : 0.0;
  double col_tok_w = fig->col_labels ? max_label_width (d, fig->col_labels, fig->cols) : 0.0;

  /* optimistic first: tokens where given; drop those whose cells are too small */
  L->row_tokens = fig->row_labels != NULL;
  L->col_tokens = fig->col_labels != NULL;
  for (int pass = 0; pass < 3; pass++)
    {
      L->ytick_w = L->row_tokens ? row_tok_w : pos_w;
      L->xtick_h = L->col_tokens ? col_tok_w : tick_h;
      double top = PAD + (fig->title ? title_h + TITLE_GAP : 0.0);
      double bottom = TICK + GAP + L->xtick_h + (fig->x_label ? TITLE_GAP + label_h : 0.0) + PAD;
      double left = PAD + (fig->y_label ? label_h + TITLE_GAP : 0.0) + L->ytick_w + GAP + TICK;
      double right = CBAR_GAP + cbar_right + PAD;
      double avail_w = MAX (width - left - right, 1.0), avail_h = MAX (height - top - bottom, 1.0);

      /* square cells where that leaves at least half of the space */
      double r = (double) fig->cols / (double) fig->rows;
      L->aw = avail_w;
      L->ah = avail_h;
      if (avail_w / avail_h > r)
        L->aw = MAX (avail_h * r, 0.5 * avail_w);
      else
        L->ah = MAX (avail_w / r, 0.5 * avail_h);
      L->ax = left + (avail_w - L->aw) / 2.0;
      L->ay = top + (avail_h - L->ah) / 2.0;

      gboolean changed = FALSE;
      if (L->row_tokens && L->ah / fig->rows < 0.9 * token_h)
        L->row_tokens = FALSE, changed = TRUE;
      if (L->col_tokens && L->aw / fig->cols < 0.9 * token_h)
        L->col_tokens = FALSE, changed = TRUE;
      if (!changed)
        break;
    }
  _lsc_snap_rect (d->cr, &L->ax, &L->ay, &L->aw, &L->ah, fig->cols, fig->rows);
}

static cairo_surface_t *
cells_image (LscFigure *fig)
{
  cairo_surface_t *img = cairo_image_surface_create (CAIRO_FORMAT_RGB24, (int) fig->cols,
                                                     (int) fig->rows);
  if (cairo_surface_status (img) != CAIRO_STATUS_SUCCESS)
    return img;
  cairo_surface_flush (img);
  guint8 *pixels = cairo_image_surface_get_data (img);
  int stride = cairo_image_surface_get_stride (img);
  for (gsize i = 0; i < fig->rows; i++)
    {
      guint32 *row = (guint32 *) (pixels + (gsize) stride * i);   /* (cols) xRGB */
      for (gsize j = 0; j < fig->cols; j++)
        {
          guint8 r, g, b;
          lsc_colormap_rgb (fig->colormap, lsc_scale_map (fig->scale, fig->data[i * fig->cols + j]),
                            &r, &g, &b);
          row[j] = 0xff000000u | ((guint32) r << 16) | ((guint32) g << 8) | b;
        }
    }
  cairo_surface_mark_dirty (img);
  return img;
}

static cairo_surface_t *
colorbar_image (LscColormap map)
{
  cairo_surface_t *img = cairo_image_surface_create (CAIRO_FORMAT_RGB24, 1, 256);
  if (cairo_surface_status (img) != CAIRO_STATUS_SUCCESS)
    return img;
  cairo_surface_flush (img);
  guint8 *pixels = cairo_image_surface_get_data (img);
  int stride = cairo_image_surface_get_stride (img);
  for (int i = 0; i < 256; i++)
    {
      guint8 r, g, b;
      /* entry 255 on top; the centre of entry k is t = (k + 0.5) / 256 */
      lsc_colormap_rgb (map, (255 - i + 0.5) / 256.0, &r, &g, &b);
      *(guint32 *) (pixels + (gsize) stride * i) =
        0xff000000u | ((guint32) r << 16) | ((guint32) g << 8) | b;
    }
  cairo_surface_mark_dirty (img);
  return img;
}

/* paints a (w_px, h_px) image scaled onto (x, y, w, h) without smoothing */
static void
paint_nearest (cairo_t *cr, cairo_surface_t *img, double x, double y, double w, double h)
{
  int iw = cairo_image_surface_get_width (img), ih = cairo_image_surface_get_height (img);
  cairo_save (cr);
  cairo_translate (cr, x, y);
  cairo_scale (cr, w / iw, h / ih);
  cairo_set_source_surface (cr, img, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
  cairo_rectangle (cr, 0, 0, iw, ih);
  cairo_set_antialias (cr, CAIRO_ANTIALIAS_NONE);
  cairo_fill (cr);
  cairo_restore (cr);
}

static void
stroke_frame (cairo_t *cr, double x, double y, double w, double h)
{
  cairo_save (cr);
  cairo_set_source_rgb (cr, 0.15, 0.15, 0.15);
  cairo_set_line_width (cr, LINE_W);
  cairo_rectangle (cr, x, y, w, h);
  cairo_stroke (cr);
  cairo_restore (cr);
}

static void
tick_line (cairo_t *cr, double x0, double y0, double x1, double y1)
{
  cairo_move_to (cr, x0, y0);
  cairo_line_to (cr, x1, y1);
}

void
_lsc_heatmap_render (LscFigure *fig, LscDraw *d, double width, double height)
{
  cairo_t *cr = d->cr;
  double label_h = _lsc_text_height (d, LSC_FIG_LABEL_PT);

  /* the colour bar's width: bar, ticks, the widest tick label, its title */
  g_autoptr(GArray) ticks = colorbar_ticks (fig->scale, _lsc_scale_is_diverging (fig->scale),
                                            (int) MAX (height / 40.0, 2.0));
  double cbar_tick_w = 0.0;
  for (guint i = 0; i < ticks->len; i++)
    cbar_tick_w = MAX (cbar_tick_w, _lsc_text_width (d, g_array_index (ticks, CbarTick, i).markup,
                                                     LSC_FIG_TICK_PT, TRUE));
  double cbar_right = CBAR_W + TICK + GAP + cbar_tick_w
                      + (fig->colorbar_label ? TITLE_GAP + label_h : 0.0);

  Layout L;
  compute_layout (fig, d, width, height, cbar_right, &L);
  fig->cell_area = (cairo_rectangle_t) { L.ax, L.ay, L.aw, L.ah };
  fig->has_cell_area = TRUE;

  /* cells */
  cairo_surface_t *img = cells_image (fig);
  if (cairo_surface_status (img) == CAIRO_STATUS_SUCCESS)
    paint_nearest (cr, img, L.ax, L.ay, L.aw, L.ah);
  cairo_surface_destroy (img);
  stroke_frame (cr, L.ax, L.ay, L.aw, L.ah);

  double cw = L.aw / fig->cols, ch = L.ah / fig->rows;
  cairo_set_source_rgb (cr, 0.0, 0.0, 0.0);
  cairo_set_line_width (cr, LINE_W);

  /* x axis: positions or column tokens */
  double xt_y = L.ay + L.ah + TICK + GAP;
  if (L.col_tokens)
    for (gsize j = 0; j < fig->cols; j++)
      {
        double cx = L.ax + (j + 0.5) * cw;
        g_autofree char *t = truncate_label (fig->col_labels[j]);
        tick_line (cr, cx, L.ay + L.ah, cx, L.ay + L.ah + TICK);
        cairo_stroke (cr);
        _lsc_draw_text (d, t, LSC_FIG_TOKEN_PT, FALSE, cx, xt_y, 1.0, 0.5, TRUE);
      }
  else
    {
      gint64 step = position_step (fig->cols, (int) (L.aw / 45.0));
      gint64 first = fig->col_offset, last = fig->col_offset + (gint64) fig->cols - 1;
      for (gint64 p = ((first + step - 1) / step) * step; p <= last; p += step)
        {
          double cx = L.ax + (p - first + 0.5) * cw;
          g_autofree char *t = g_strdup_printf ("%" G_GINT64_FORMAT, p);
          tick_line (cr, cx, L.ay + L.ah, cx, L.ay + L.ah + TICK);
          cairo_stroke (cr);
          _lsc_draw_text (d, t, LSC_FIG_TICK_PT, FALSE, cx, xt_y, 0.5, 0.0, FALSE);
        }
    }

  /* y axis: positions or row tokens */
  double yt_x = L.ax - TICK - GAP;
  if (L.row_tokens)
    for (gsize i = 0; i < fig->rows; i++)
      {
        double cy = L.ay + (i + 0.5) * ch;
        g_autofree char *t = truncate_label (fig->row_labels[i]);
        tick_line (cr, L.ax - TICK, cy, L.ax, cy);
        cairo_stroke (cr);
        _lsc_draw_text (d, t, LSC_FIG_TOKEN_PT, FALSE, yt_x, cy, 1.0, 0.5, FALSE);
      }
  else
    {
      gint64 step = position_step (fig->rows, (int) (L.ah / 28.0));
      gint64 first = fig->row_offset, last = fig->row_offset + (gint64) fig->rows - 1;
      for (gint64 p = ((first + step - 1) / step) * step; p <= last; p += step)
        {
          double cy = L.ay + (p - first + 0.5) * ch;
          g_autofree char *t = g_strdup_printf ("%" G_GINT64_FORMAT, p);
          tick_line (cr, L.ax - TICK, cy, L.ax, cy);
          cairo_stroke (cr);
          _lsc_draw_text (d, t, LSC_FIG_TICK_PT, FALSE, yt_x, cy, 1.0, 0.5, FALSE);
        }
    }

  /* axis titles and the title */
  if (fig->x_label)
    _lsc_draw_text (d, fig->x_label, LSC_FIG_LABEL_PT, FALSE, L.ax + L.aw / 2.0,
                    xt_y + L.xtick_h + TITLE_GAP, 0.5, 0.0, FALSE);
  if (fig->y_label)
    _lsc_draw_text (d, fig->y_label, LSC_FIG_LABEL_PT, FALSE, yt_x - L.ytick_w - TITLE_GAP,
                    L.ay + L.ah / 2.0, 0.5, 1.0, TRUE);
  if (fig->title)
    {
      PangoLayout *layout = _lsc_draw_layout (d, fig->title, LSC_FIG_TITLE_PT, TRUE, FALSE);
      pango_layout_set_width (layout, (int) ((width - 2 * PAD) * PANGO_SCALE));
      pango_layout_set_ellipsize (layout, PANGO_ELLIPSIZE_END);
      double tw;
      _lsc_layout_size (layout, &tw, NULL);
      double tx = CLAMP (L.ax + L.aw / 2.0, PAD + tw / 2.0, width - PAD - tw / 2.0);
      _lsc_draw_layout_at (d, layout, tx, PAD, 0.5, 0.0, FALSE);
      g_object_unref (layout);
    }

  /* colour bar */
  double bx = L.ax + L.aw + CBAR_GAP, by = L.ay, bw = CBAR_W, bh = L.ah;
  _lsc_snap_rect (cr, &bx, &by, &bw, &bh, 0, 0);
  cairo_surface_t *bar = colorbar_image (fig->colormap);
  if (cairo_surface_status (bar) == CAIRO_STATUS_SUCCESS)
    paint_nearest (cr, bar, bx, by, bw, bh);
  cairo_surface_destroy (bar);
  stroke_frame (cr, bx, by, bw, bh);
  cairo_set_source_rgb (cr, 0.0, 0.0, 0.0);
  cairo_set_line_width (cr, LINE_W);
  for (guint i = 0; i < ticks->len; i++)
    {
      CbarTick *tk = &g_array_index (ticks, CbarTick, i);
      double ty = by + bh * (1.0 - tk->t);
      tick_line (cr, bx + bw, ty, bx + bw + TICK, ty);
      cairo_stroke (cr);
      PangoLayout *layout = _lsc_draw_layout (d, tk->markup, LSC_FIG_TICK_PT, FALSE, TRUE);
      _lsc_draw_layout_at (d, layout, bx + bw + TICK + GAP, ty, 0.0, 0.5, FALSE);
      g_object_unref (layout);
    }
  if (fig->colorbar_label)
    _lsc_draw_text (d, fig->colorbar_label, LSC_FIG_LABEL_PT, FALSE,
                    bx + bw + TICK + GAP + cbar_tick_w + TITLE_GAP, by + bh / 2.0, 0.5, 0.0, TRUE);

  /* the masked swatch, under the colour bar, when some cell is masked */
  if (fig->has_masked)
    {
      double sy = by + bh + TICK + GAP;
      cairo_set_source_rgb (cr, LSC_FIGURE_MASKED_R / 255.0, LSC_FIGURE_MASKED_G / 255.0,
                            LSC_FIGURE_MASKED_B / 255.0);
      cairo_rectangle (cr, bx, sy, bw, 8.0);
      cairo_fill (cr);
      stroke_frame (cr, bx, sy, bw, 8.0);
      cairo_set_source_rgb (cr, 0.0, 0.0, 0.0);
      _lsc_draw_text (d, "masked", LSC_FIG_TOKEN_PT, FALSE, bx + bw + TICK + GAP, sy + 4.0, 0.0,
                      0.5, FALSE);
    }
}
