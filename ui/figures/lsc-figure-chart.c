/* SPDX-License-Identifier: MIT
 *
 * Statistics charts: line charts (series over x, nice ticks, grid, legend)
 * and ranked horizontal bar charts (labels left, values at the bars' ends).
 */
#include "config.h"

#include <math.h>

#include "lsc-figure-private.h"

#define PAD 8.0
#define TICK 3.0
#define GAP 2.5
#define TITLE_GAP 6.0
#define LINE_W 0.6

/* matplotlib's "tab10" qualitative palette */
static const guint8 palette[10][3] = {
  { 31, 119, 180 }, { 255, 127, 14 }, { 44, 160, 44 }, { 214, 39, 40 }, { 148, 103, 189 },
  { 140, 86, 75 }, { 227, 119, 194 }, { 127, 127, 127 }, { 188, 189, 34 }, { 23, 190, 207 },
};

static void
set_palette (cairo_t *cr, guint i)
{
  const guint8 *c = palette[i % G_N_ELEMENTS (palette)];
  cairo_set_source_rgb (cr, c[0] / 255.0, c[1] / 255.0, c[2] / 255.0);
}

/* An axis: data range widened to whole steps. */
typedef struct {
  double lo, hi, step;
} Axis;

static void
axis_init (Axis *a, double lo, double hi, int max_ticks)
{
  if (!isfinite (lo) || !isfinite (hi))
    lo = 0.0, hi = 1.0;
  if (hi <= lo)
    {
      double d = lo == 0.0 ? 0.5 : fabs (lo) * 0.05;
      lo -= d;
      hi += d;
    }
  a->step = _lsc_nice_step (hi - lo, MAX (max_ticks, 2));
  a->lo = floor (lo / a->step + 1e-9) * a->step;
  a->hi = ceil (hi / a->step - 1e-9) * a->step;
}

#define AXIS_FOREACH(a, v) \
  for (double v = (a)->lo; v <= (a)->hi + (a)->step * 1e-6; v += (a)->step)

static double
axis_max_label_width (LscDraw *d, const Axis *a)
{
  double w = 0.0;
  AXIS_FOREACH (a, v)
    {
      g_autofree char *t = _lsc_format_tick (v, a->step);
      w = MAX (w, _lsc_text_width (d, t, LSC_FIG_TICK_PT, FALSE));
    }
  return w;
}

static void
draw_title (LscFigure *fig, LscDraw *d, double cx, double width)
{
  if (!fig->title)
    return;
  PangoLayout *layout = _lsc_draw_layout (d, fig->title, LSC_FIG_TITLE_PT, TRUE, FALSE);
  pango_layout_set_width (layout, (int) ((width - 2 * PAD) * PANGO_SCALE));
  pango_layout_set_ellipsize (layout, PANGO_ELLIPSIZE_END);
  double tw;
  _lsc_layout_size (layout, &tw, NULL);
  cairo_set_source_rgb (d->cr, 0, 0, 0);
  _lsc_draw_layout_at (d, layout, CLAMP (cx, PAD + tw / 2, width - PAD - tw / 2), PAD, 0.5, 0.0,
                       FALSE);
  g_object_unref (layout);
}

static void
draw_frame (cairo_t *cr, double x, double y, double w, double h)
{
  cairo_set_source_rgb (cr, 0.15, 0.15, 0.15);
  cairo_set_line_width (cr, LINE_W);
  cairo_rectangle (cr, x, y, w, h);
  cairo_stroke (cr);
}

void
_lsc_line_chart_render (LscFigure *fig, LscDraw *d, double width, double height)
{
  cairo_t *cr = d->cr;
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (guint s = 0; s < fig->series->len; s++)
    {
      LscSeries *ser = g_ptr_array_index (fig->series, s);
      for (gsize i = 0; i < ser->n; i++)
        if (isfinite (ser->x[i]) && isfinite (ser->y[i]))
          {
            xlo = MIN (xlo, ser->x[i]);
            xhi = MAX (xhi, ser->x[i]);
            ylo = MIN (ylo, ser->y[i]);
            yhi = MAX (yhi, ser->y[i]);
          }
    }

  double title_h = fig->title ? _lsc_text_height (d, LSC_FIG_TITLE_PT) : 0.0;
  double label_h = _lsc_text_height (d, LSC_FIG_LABEL_PT);
  double tick_h = _lsc_text_height (d, LSC_FIG_TICK_PT);
  double top = PAD + (fig->title ? title_h + TITLE_GAP : 0.0);
  double bottom = TICK + GAP + tick_h + (fig->x_label ? TITLE_GAP + label_h : 0.0) + PAD;

  Axis ax, ay;
  axis_init (&ay, ylo, yhi, (int) ((height - top - bottom) / 36.0));
  double ytick_w = axis_max_label_width (d, &ay);
  double left = PAD + (fig->y_label ? label_h + TITLE_GAP : 0.0) + ytick_w + GAP + TICK;
  axis_init (&ax, xlo, xhi, (int) ((width - left - PAD) / 60.0));
  g_autofree char *last = _lsc_format_tick (ax.hi, ax.step);
  double right = PAD + _lsc_text_width (d, last, LSC_FIG_TICK_PT, FALSE) / 2.0;

  double px = left, py = top, pw = MAX (width - left - right, 1.0);
  double ph = MAX (height - top - bottom, 1.0);
#define X(v) (px + ((v) - ax.lo) / (ax.hi - ax.lo) * pw)
#define Y(v) (py + ph - ((v) - ay.lo) / (ay.hi - ay.lo) * ph)

  /* grid, ticks, tick labels */
  cairo_set_line_width (cr, 0.4);
  AXIS_FOREACH (&ay, v)
    {
      cairo_set_source_rgb (cr, 0.88, 0.88, 0.88);
      cairo_move_to (cr, px, Y (v));
      cairo_line_to (cr, px + pw, Y (v));
      cairo_stroke (cr);
      cairo_set_source_rgb (cr, 0, 0, 0);
      cairo_move_to (cr, px - TICK, Y (v));
      cairo_line_to (cr, px, Y (v));
      cairo_stroke (cr);
      g_autofree char *t = _lsc_format_tick (v, ay.step);
      _lsc_draw_text (d, t, LSC_FIG_TICK_PT, FALSE, px - TICK - GAP, Y (v), 1.0, 0.5, FALSE);
    }
  AXIS_FOREACH (&ax, v)
    {
      cairo_set_source_rgb (cr, 0.88, 0.88, 0.88);
      cairo_move_to (cr, X (v), py);
      cairo_line_to (cr, X (v), py + ph);
      cairo_stroke (cr);
      cairo_set_source_rgb (cr, 0, 0, 0);
      cairo_move_to (cr, X (v), py + ph);
      cairo_line_to (cr, X (v), py + ph + TICK);
      cairo_stroke (cr);
      g_autofree char *t = _lsc_format_tick (v, ax.step);
      _lsc_draw_text (d, t, LSC_FIG_TICK_PT, FALSE, X (v), py + ph + TICK + GAP, 0.5, 0.0, FALSE);
    }

  /* series, clipped to the plot */
  cairo_save (cr);
  cairo_rectangle (cr, px, py, pw, ph);
  cairo_clip (cr);
  cairo_set_line_width (cr, 1.5);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
  for (guint s = 0; s < fig->series->len; s++)
    {
      LscSeries *ser = g_ptr_array_index (fig->series, s);
      gboolean pen = FALSE;
      for (gsize i = 0; i < ser->n; i++)
        {
          if (!isfinite (ser->x[i]) || !isfinite (ser->y[i]))
            {
              pen = FALSE;
              continue;
            }
          if (pen)
            cairo_line_to (cr, X (ser->x[i]), Y (ser->y[i]));
          else
            cairo_move_to (cr, X (ser->x[i]), Y (ser->y[i]));
          pen = TRUE;
        }
      set_palette (cr, s);
      cairo_stroke (cr);
      /* a point with no neighbour to join (a one-point series): a dot */
      for (gsize i = 0; i < ser->n; i++)
        {
          gboolean alone = isfinite (ser->x[i]) && isfinite (ser->y[i])
                           && (i == 0 || !isfinite (ser->x[i - 1]) || !isfinite (ser->y[i - 1]))
                           && (i + 1 == ser->n || !isfinite (ser->x[i + 1])
                               || !isfinite (ser->y[i + 1]));
          if (alone)
            {
              cairo_new_sub_path (cr);
              cairo_arc (cr, X (ser->x[i]), Y (ser->y[i]), 3.0, 0.0, 2 * G_PI);
              cairo_fill (cr);
            }
        }
    }
  cairo_restore (cr);
  draw_frame (cr, px, py, pw, ph);

  /* legend, top right inside the plot */
  guint n_named = 0;
  double name_w = 0.0;
  for (guint s = 0; s < fig->series->len; s++)
    {
      LscSeries *ser = g_ptr_array_index (fig->series, s);
      if (ser->name)
        {
          n_named++;
          name_w = MAX (name_w, _lsc_text_width (d, ser->name, LSC_FIG_TICK_PT, FALSE));
        }
    }
  if (fig->legend && n_named > 0)
    {
      double row_h = tick_h * 1.2, sample = 16.0;
      double lw = 4 + sample + 4 + name_w + 4, lh = 4 + n_named * row_h;
      double lx = px + pw - lw - 6, ly = py + 6;
      cairo_set_source_rgba (cr, 1, 1, 1, 0.85);
      cairo_rectangle (cr, lx, ly, lw, lh);
      cairo_fill_preserve (cr);
      cairo_set_source_rgb (cr, 0.7, 0.7, 0.7);
      cairo_set_line_width (cr, 0.5);
      cairo_stroke (cr);
      guint row = 0;
      for (guint s = 0; s < fig->series->len; s++)
        {
          LscSeries *ser = g_ptr_array_index (fig->series, s);
          if (!ser->name)
            continue;
          double cy = ly + 2 + (row++ + 0.5) * row_h;
          set_palette (cr, s);
          cairo_set_line_width (cr, 1.5);
          cairo_move_to (cr, lx + 4, cy);
          cairo_line_to (cr, lx + 4 + sample, cy);
          cairo_stroke (cr);
          cairo_set_source_rgb (cr, 0, 0, 0);
          _lsc_draw_text (d, ser->name, LSC_FIG_TICK_PT, FALSE, lx + 8 + sample, cy, 0.0, 0.5,
                          FALSE);
        }
    }

  cairo_set_source_rgb (cr, 0, 0, 0);
  if (fig->x_label)
    _lsc_draw_text (d, fig->x_label, LSC_FIG_LABEL_PT, FALSE, px + pw / 2,
                    py + ph + TICK + GAP + tick_h + TITLE_GAP, 0.5, 0.0, FALSE);
  if (fig->y_label)
    _lsc_draw_text (d, fig->y_label, LSC_FIG_LABEL_PT, FALSE, px - TICK - GAP - ytick_w - TITLE_GAP,
                    py + ph / 2, 0.5, 1.0, TRUE);
  draw_title (fig, d, px + pw / 2, width);
#undef X
#undef Y
}

void
_lsc_bar_chart_render (LscFigure *fig, LscDraw *d, double width, double height)
{
  cairo_t *cr = d->cr;
  double title_h = fig->title ? _lsc_text_height (d, LSC_FIG_TITLE_PT) : 0.0;
  double label_h = _lsc_text_height (d, LSC_FIG_LABEL_PT);
  double tick_h = _lsc_text_height (d, LSC_FIG_TICK_PT);

  double lo = 0.0, hi = 0.0, label_w = 0.0, value_w = 0.0;
  for (gsize i = 0; i < fig->n_bars; i++)
    {
      lo = MIN (lo, fig->bar_values[i]);
      hi = MAX (hi, fig->bar_values[i]);
      label_w = MAX (label_w, _lsc_text_width (d, fig->bar_labels[i], LSC_FIG_TICK_PT, FALSE));
      g_autofree char *v = _lsc_format_value (fig->bar_values[i]);
      value_w = MAX (value_w, _lsc_text_width (d, v, LSC_FIG_TICK_PT, FALSE));
    }
  double top = PAD + (fig->title ? title_h + TITLE_GAP : 0.0);
  double bottom = TICK + GAP + tick_h + (fig->x_label ? TITLE_GAP + label_h : 0.0) + PAD;
  double left = PAD + (fig->y_label ? label_h + TITLE_GAP : 0.0) + label_w + GAP + TICK;
  double right = PAD + value_w + GAP;
  double px = left, py = top, pw = MAX (width - left - right, 1.0);
  double ph = MAX (height - top - bottom, 1.0);

  Axis ax;
  axis_init (&ax, lo, hi, (int) (pw / 60.0));
#define X(v) (px + ((v) - ax.lo) / (ax.hi - ax.lo) * pw)

  cairo_set_line_width (cr, 0.4);
  AXIS_FOREACH (&ax, v)
    {
      cairo_set_source_rgb (cr, 0.88, 0.88, 0.88);
      cairo_move_to (cr, X (v), py);
      cairo_line_to (cr, X (v), py + ph);
      cairo_stroke (cr);
      cairo_set_source_rgb (cr, 0, 0, 0);
      cairo_move_to (cr, X (v), py + ph);
      cairo_line_to (cr, X (v), py + ph + TICK);
      cairo_stroke (cr);
      g_autofree char *t = _lsc_format_tick (v, ax.step);
      _lsc_draw_text (d, t, LSC_FIG_TICK_PT, FALSE, X (v), py + ph + TICK + GAP, 0.5, 0.0, FALSE);
    }

  double slot = ph / MAX (fig->n_bars, 1);
  /* label every k-th bar when the bars are thinner than a line of text */
  gsize every = slot >= 0.9 * tick_h ? 1 : (gsize) ceil (0.9 * tick_h / slot);
  for (gsize i = 0; i < fig->n_bars; i++)
    {
      double cy = py + (i + 0.5) * slot, v = fig->bar_values[i];
      double x0 = X (MIN (0.0, v)), x1 = X (MAX (0.0, v));
      set_palette (cr, 0);
      cairo_rectangle (cr, x0, cy - 0.35 * slot, x1 - x0, 0.7 * slot);
      cairo_fill (cr);
      if (i % every != 0)
        continue;
      cairo_set_source_rgb (cr, 0, 0, 0);
      _lsc_draw_text (d, fig->bar_labels[i], LSC_FIG_TICK_PT, FALSE, px - TICK - GAP, cy, 1.0,
                      0.5, FALSE);
      g_autofree char *t = _lsc_format_value (v);
      if (v >= 0)
        _lsc_draw_text (d, t, LSC_FIG_TICK_PT, FALSE, x1 + GAP, cy, 0.0, 0.5, FALSE);
      else
        _lsc_draw_text (d, t, LSC_FIG_TICK_PT, FALSE, x0 - GAP, cy, 1.0, 0.5, FALSE);
    }
  if (ax.lo < 0.0 && ax.hi > 0.0)
    {
      cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
      cairo_set_line_width (cr, LINE_W);
      cairo_move_to (cr, X (0.0), py);
      cairo_line_to (cr, X (0.0), py + ph);
      cairo_stroke (cr);
    }
  draw_frame (cr, px, py, pw, ph);

  cairo_set_source_rgb (cr, 0, 0, 0);
  if (fig->x_label)
    _lsc_draw_text (d, fig->x_label, LSC_FIG_LABEL_PT, FALSE, px + pw / 2,
                    py + ph + TICK + GAP + tick_h + TITLE_GAP, 0.5, 0.0, FALSE);
  if (fig->y_label)
    _lsc_draw_text (d, fig->y_label, LSC_FIG_LABEL_PT, FALSE, px - TICK - GAP - label_w - TITLE_GAP,
                    py + ph / 2, 0.5, 1.0, TRUE);
  draw_title (fig, d, px + pw / 2, width);
#undef X
}
