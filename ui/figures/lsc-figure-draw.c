/* SPDX-License-Identifier: MIT
 *
 * Drawing helpers shared by the figure kinds: Pango text at 72 units per
 * inch without hinting (the same layout at every DPI and in every format),
 * 1-2-5 tick steps and their labels, pixel snapping, token escaping.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-figure-private.h"

void
_lsc_draw_begin (LscDraw *d, cairo_t *cr)
{
  d->cr = cr;
  d->pango = pango_cairo_create_context (cr);
  pango_cairo_context_set_resolution (d->pango, 72.0);
  pango_context_set_round_glyph_positions (d->pango, FALSE);

  cairo_font_options_t *fo = cairo_font_options_create ();
  cairo_font_options_set_hint_metrics (fo, CAIRO_HINT_METRICS_OFF);
  cairo_font_options_set_hint_style (fo, CAIRO_HINT_STYLE_NONE);
  cairo_font_options_set_antialias (fo, CAIRO_ANTIALIAS_GRAY);
  pango_cairo_context_set_font_options (d->pango, fo);
  cairo_font_options_destroy (fo);
}

void
_lsc_draw_end (LscDraw *d)
{
  g_clear_object (&d->pango);
  d->cr = NULL;
}

PangoLayout *
_lsc_draw_layout (LscDraw *d, const char *text, double size_pt, gboolean bold, gboolean markup)
{
  PangoLayout *layout = pango_layout_new (d->pango);
  PangoFontDescription *fd = pango_font_description_from_string ("Sans");
  pango_font_description_set_absolute_size (fd, size_pt * PANGO_SCALE);
  if (bold)
    pango_font_description_set_weight (fd, PANGO_WEIGHT_BOLD);
  pango_layout_set_font_description (layout, fd);
  pango_font_description_free (fd);
  if (markup)
    pango_layout_set_markup (layout, text, -1);
  else
    pango_layout_set_text (layout, text, -1);
  return layout;
}

void
_lsc_layout_size (PangoLayout *layout, double *width, double *height)
{
  PangoRectangle logical;
  pango_layout_get_extents (layout, NULL, &logical);
  if (width)
    *width = (double) logical.width / PANGO_SCALE;
  if (height)
    *height = (double) logical.height / PANGO_SCALE;
}

void
_lsc_draw_layout_at (LscDraw *d, PangoLayout *layout, double x, double y, double xalign,
                     double yalign, gboolean vertical)
{
  PangoRectangle logical;
  pango_layout_get_extents (layout, NULL, &logical);
  double w = (double) logical.width / PANGO_SCALE, h = (double) logical.height / PANGO_SCALE;
  double lx = (double) logical.x / PANGO_SCALE, ly = (double) logical.y / PANGO_SCALE;

  cairo_save (d->cr);
  cairo_translate (d->cr, x, y);
  if (vertical)
    cairo_rotate (d->cr, -G_PI / 2);
  cairo_move_to (d->cr, -xalign * w - lx, -yalign * h - ly);
  pango_cairo_update_context (d->cr, d->pango);
  pango_layout_context_changed (layout);
  pango_cairo_show_layout (d->cr, layout);
  cairo_restore (d->cr);
}

double
_lsc_draw_text (LscDraw *d, const char *text, double size_pt, gboolean bold, double x, double y,
                double xalign, double yalign, gboolean vertical)
{
  if (text == NULL || *text == '\0')
    return 0.0;
  PangoLayout *layout = _lsc_draw_layout (d, text, size_pt, bold, FALSE);
  double w;
  _lsc_layout_size (layout, &w, NULL);
  _lsc_draw_layout_at (d, layout, x, y, xalign, yalign, vertical);
  g_object_unref (layout);
  return w;
}

double
_lsc_text_width (LscDraw *d, const char *text, double size_pt, gboolean markup)
{
  if (text == NULL || *text == '\0')
    return 0.0;
  PangoLayout *layout = _lsc_draw_layout (d, text, size_pt, FALSE, markup);
  double w;
  _lsc_layout_size (layout, &w, NULL);
  g_object_unref (layout);
  return w;
}

double
_lsc_text_height (LscDraw *d, double size_pt)
{
  PangoLayout *layout = _lsc_draw_layout (d, "0Ag", size_pt, FALSE, FALSE);
  double h;
  _lsc_layout_size (layout, NULL, &h);
  g_object_unref (layout);
  return h;
}

double
_lsc_nice_step (double range, int max_ticks)
{
  if (!(range > 0.0) || !isfinite (range))
    return 1.0;
  if (max_ticks < 1)
    max_ticks = 1;
  double raw = range / max_ticks;
  double mag = pow (10.0, floor (log10 (raw)));
  static const double steps[] = { 1.0, 2.0, 5.0, 10.0 };
  for (guint i = 0; i < G_N_ELEMENTS (steps); i++)
    if (steps[i] * mag >= raw * (1.0 - 1e-9))
      return steps[i] * mag;
  return 10.0 * mag;
}

/* replaces ASCII '-' by U+2212 MINUS SIGN */
static char *
typographic_minus (char *s)
{
  if (strchr (s, '-') == NULL)
    return s;
  GString *out = g_string_new (NULL);
  for (const char *p = s; *p; p++)
    if (*p == '-')
      g_string_append (out, "\u2212");
    else
      g_string_append_c (out, *p);
  g_free (s);
  return g_string_free (out, FALSE);
}

char *
_lsc_format_tick (double v, double step)
{
  if (fabs (v) < step * 1e-6)
    v = 0.0;
  double a = fabs (v);
  int decimals = (int) ceil (-log10 (step) - 1e-9);
  decimals = CLAMP (decimals, 0, 12);
  char *s;
  if (a != 0.0 && (a >= 1e6 || decimals > 4))
    s = g_strdup_printf ("%.3g", v);
  else
    s = g_strdup_printf ("%.*f", decimals, v);
  return typographic_minus (s);
}

char *
_lsc_format_value (double v)
{
  return typographic_minus (g_strdup_printf ("%.3g", v));
}

void
_lsc_snap_rect (cairo_t *cr, double *x, double *y, double *w, double *h, gsize cols, gsize rows)
{
  cairo_matrix_t m;
  cairo_get_matrix (cr, &m);
  if (m.xy != 0.0 || m.yx != 0.0 || m.xx <= 0.0 || m.yy <= 0.0)
    return;

  double x0 = *x, y0 = *y, x1 = *x + *w, y1 = *y + *h;
  cairo_user_to_device (cr, &x0, &y0);
  cairo_user_to_device (cr, &x1, &y1);
  x0 = round (x0);
  y0 = round (y0);
  double dw = round (x1) - x0, dh = round (y1) - y0;
  if (cols > 0 && dw >= (double) cols)
    dw = floor (dw / cols) * cols;
  if (rows > 0 && dh >= (double) rows)
    dh = floor (dh / rows) * rows;
  x1 = x0 + dw;
  y1 = y0 + dh;
  cairo_device_to_user (cr, &x0, &y0);
  cairo_device_to_user (cr, &x1, &y1);
  *x = x0;
  *y = y0;
  *w = x1 - x0;
  *h = y1 - y0;
}

char *
lsc_figure_escape_token (const char *text)
{
  g_return_val_if_fail (text != NULL, NULL);

  g_autofree char *valid = g_utf8_make_valid (text, -1);
  GString *out = g_string_new (NULL);
  for (const char *p = valid; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      switch (c)
        {
        case '\n':
          g_string_append (out, "\u21b5");   /* ↵ */
          break;
        case '\r':
          g_string_append (out, "\u240d");   /* ␍ */
          break;
        case ' ':
          g_string_append (out, "\u00b7");   /* · */
          break;
        case '\t':
          g_string_append (out, "\u2192");   /* → */
          break;
        default:
          if (c < 0x20 || c == 0x7f)
            g_string_append_printf (out, "\\x%02X", (guint) c);
          else
            g_string_append_unichar (out, c);
        }
    }
  return g_string_free (out, FALSE);
}
