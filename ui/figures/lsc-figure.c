/* SPDX-License-Identifier: MIT
 *
 * LscFigure: construction (data and parameters copied and checked), the
 * render entry point, and output to PNG / SVG / PDF.
 *
 * Reproducible vector output: PDF gets fixed creation and modification
 * dates; Cairo 1.16 numbers SVG image and surface ids from a process-wide
 * counter, so the SVG's ids are renumbered in order of first appearance.
 * SVG images also get image-rendering hints, which Cairo 1.16 does not
 * write for CAIRO_FILTER_NEAREST (PDF gets /Interpolate false from Cairo).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cairo-pdf.h>
#include <cairo-svg.h>

#include "lsc-figure-private.h"

G_DEFINE_QUARK (lsc-figure-error-quark, lsc_figure_error)

/* Cairo image surfaces hold at most 32767 pixels a side. */
#define MAX_CELLS_SIDE 32767
#define MAX_PNG_SIDE 32767
#define FIXED_DATE "2000-01-01T00:00:00Z"

void
lsc_heatmap_params_init (LscHeatmapParams *params)
{
  g_return_if_fail (params != NULL);
  *params = (LscHeatmapParams) {
    .title = NULL,
    .x_label = "Key position",
    .y_label = "Query position",
    .colorbar_label = "Attention probability",
    .colormap = LSC_COLORMAP_VIRIDIS,
  };
  lsc_scale_params_init (&params->scale);
}

void
lsc_chart_params_init (LscChartParams *params)
{
  g_return_if_fail (params != NULL);
  *params = (LscChartParams) { .legend = TRUE };
}

void
lsc_figure_output_init (LscFigureOutput *out)
{
  g_return_if_fail (out != NULL);
  *out = (LscFigureOutput) {
    .format = LSC_FIGURE_FORMAT_AUTO,
    .width_pt = 432.0,
    .height_pt = 360.0,
    .dpi = 150.0,
  };
}

static void
series_free (gpointer p)
{
  LscSeries *s = p;
  g_free (s->name);
  g_free (s->x);
  g_free (s->y);
  g_free (s);
}

static LscFigure *
figure_new (LscFigureKind kind, const char *title, const char *x_label, const char *y_label)
{
  LscFigure *fig = g_new0 (LscFigure, 1);
  fig->kind = kind;
  fig->title = g_strdup (title);
  fig->x_label = g_strdup (x_label);
  fig->y_label = g_strdup (y_label);
  return fig;
}

void
lsc_figure_free (LscFigure *fig)
{
  if (fig == NULL)
    return;
  g_free (fig->title);
  g_free (fig->x_label);
  g_free (fig->y_label);
  g_free (fig->data);
  g_free (fig->colorbar_label);
  lsc_scale_unref (fig->scale);
  g_strfreev (fig->row_labels);
  g_strfreev (fig->col_labels);
  if (fig->series)
    g_ptr_array_unref (fig->series);
  g_strfreev (fig->bar_labels);
  g_free (fig->bar_values);
  g_free (fig);
}

static char **
escape_labels (const char *const *labels, gsize n)
{
  if (labels == NULL)
    return NULL;
  char **out = g_new0 (char *, n + 1);
  for (gsize i = 0; i < n; i++)
    out[i] = lsc_figure_escape_token (labels[i] ? labels[i] : "");
  return out;
}

LscFigure *
lsc_figure_new_heatmap (const float *data, gsize rows, gsize cols, const LscHeatmapParams *params,
                        GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (data == NULL)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "heatmap: data is NULL (%" G_GSIZE_FORMAT " x %" G_GSIZE_FORMAT " cells)",
                   rows, cols);
      return NULL;
    }
  if (rows == 0 || cols == 0)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "heatmap: %" G_GSIZE_FORMAT " x %" G_GSIZE_FORMAT
                   " cells: rows and cols must be at least 1", rows, cols);
      return NULL;
    }
  if (rows > MAX_CELLS_SIDE || cols > MAX_CELLS_SIDE)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "heatmap: %" G_GSIZE_FORMAT " x %" G_GSIZE_FORMAT
                   " cells: at most %d a side (pool a larger map first)", rows, cols,
                   MAX_CELLS_SIDE);
      return NULL;
    }
  LscHeatmapParams defaults;
  if (params == NULL)
    {
      lsc_heatmap_params_init (&defaults);
      params = &defaults;
    }
  if ((guint) params->colormap > LSC_COLORMAP_RDBU_R)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "heatmap: unknown colour map %d", (int) params->colormap);
      return NULL;
    }

  g_autoptr(LscScale) scale = lsc_scale_new (&params->scale, data, rows * cols, error);
  if (scale == NULL)
    {
      g_prefix_error (error, "heatmap: ");
      return NULL;
    }

  LscFigure *fig = figure_new (_LSC_FIGURE_HEATMAP, params->title, params->x_label,
                               params->y_label);
  fig->rows = rows;
  fig->cols = cols;
  fig->data = g_memdup2 (data, rows * cols * sizeof (float));
  for (gsize i = 0; i < rows * cols; i++)
    if (isnan (data[i]))
      {
        fig->has_masked = TRUE;
        break;
      }
  fig->colorbar_label = g_strdup (params->colorbar_label);
  fig->colormap = params->colormap;
  fig->scale = g_steal_pointer (&scale);
  fig->row_offset = params->row_offset;
  fig->col_offset = params->col_offset;
  fig->row_labels = escape_labels (params->row_labels, rows);
  fig->col_labels = escape_labels (params->col_labels, cols);
  return fig;
}

LscFigure *
lsc_figure_new_line_chart (const LscChartParams *params, GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  LscChartParams defaults;
  if (params == NULL)
    {
      lsc_chart_params_init (&defaults);
      params = &defaults;
    }
  LscFigure *fig = figure_new (_LSC_FIGURE_LINE, params->title, params->x_label, params->y_label);
  fig->series = g_ptr_array_new_with_free_func (series_free);
  fig->legend = params->legend;
  return fig;
}

gboolean
lsc_figure_add_series (LscFigure *fig, const char *name, const double *x, const double *y,
                       gsize n, GError **error)
{
  g_return_val_if_fail (fig != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (fig->kind != _LSC_FIGURE_LINE)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "series '%s': the figure is not a line chart", name ? name : "");
      return FALSE;
    }
  if (n == 0 || x == NULL || y == NULL)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "series '%s': %s", name ? name : "",
                   n == 0 ? "no points (n = 0)" : x == NULL ? "x is NULL" : "y is NULL");
      return FALSE;
    }
  LscSeries *s = g_new0 (LscSeries, 1);
  s->name = g_strdup (name);
  s->x = g_memdup2 (x, n * sizeof (double));
  s->y = g_memdup2 (y, n * sizeof (double));
  s->n = n;
  g_ptr_array_add (fig->series, s);
  return TRUE;
}

typedef struct {
  double value;
  gsize index;
} Ranked;

static int
compare_ranked (const void *a, const void *b)
{
  const Ranked *x = a, *y = b;
  if (x->value != y->value)
    return x->value > y->value ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);   /* stable */
}

LscFigure *
lsc_figure_new_bar_chart (const char *const *labels, const double *values, gsize n,
                          guint max_bars, const LscChartParams *params, GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (labels == NULL || values == NULL || n == 0)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "bar chart: %s", n == 0 ? "no bars (n = 0)"
                                   : labels == NULL ? "labels is NULL" : "values is NULL");
      return NULL;
    }
  g_autofree Ranked *ranked = g_new (Ranked, n);
  gsize m = 0;
  for (gsize i = 0; i < n; i++)
    if (isfinite (values[i]))
      ranked[m++] = (Ranked) { values[i], i };
  if (m == 0)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA,
                   "bar chart: none of the %" G_GSIZE_FORMAT " values is finite", n);
      return NULL;
    }
  qsort (ranked, m, sizeof (Ranked), compare_ranked);
  if (max_bars > 0 && m > max_bars)
    m = max_bars;

  LscChartParams defaults;
  if (params == NULL)
    {
      lsc_chart_params_init (&defaults);
      params = &defaults;
    }
  LscFigure *fig = figure_new (_LSC_FIGURE_BAR, params->title, params->x_label, params->y_label);
  fig->n_bars = m;
  fig->bar_labels = g_new0 (char *, m + 1);
  fig->bar_values = g_new (double, m);
  for (gsize i = 0; i < m; i++)
    {
      const char *l = labels[ranked[i].index];
      fig->bar_labels[i] = g_utf8_make_valid (l ? l : "", -1);
      fig->bar_values[i] = ranked[i].value;
    }
  return fig;
}

gboolean
lsc_figure_get_cell_area (const LscFigure *fig, cairo_rectangle_t *area)
{
  g_return_val_if_fail (fig != NULL && area != NULL, FALSE);
  if (fig->kind != _LSC_FIGURE_HEATMAP || !fig->has_cell_area)
    return FALSE;
  *area = fig->cell_area;
  return TRUE;
}

gboolean
lsc_figure_render (LscFigure *fig, cairo_t *cr, double width, double height, GError **error)
{
  g_return_val_if_fail (fig != NULL, FALSE);
  g_return_val_if_fail (cr != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!(width > 0.0 && height > 0.0 && isfinite (width) && isfinite (height)))
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "render: size %g x %g is not positive", width, height);
      return FALSE;
    }
  if (cairo_status (cr) != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_RENDER,
                   "render: the cairo context is in error: %s",
                   cairo_status_to_string (cairo_status (cr)));
      return FALSE;
    }

  cairo_save (cr);
  cairo_rectangle (cr, 0, 0, width, height);
  cairo_clip (cr);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  cairo_set_source_rgb (cr, 0, 0, 0);

  LscDraw d;
  _lsc_draw_begin (&d, cr);
  switch (fig->kind)
    {
    case _LSC_FIGURE_HEATMAP:
      _lsc_heatmap_render (fig, &d, width, height);
      break;
    case _LSC_FIGURE_LINE:
      _lsc_line_chart_render (fig, &d, width, height);
      break;
    case _LSC_FIGURE_BAR:
      _lsc_bar_chart_render (fig, &d, width, height);
      break;
    }
  _lsc_draw_end (&d);
  cairo_restore (cr);

  if (cairo_status (cr) != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_RENDER, "render: %s",
                   cairo_status_to_string (cairo_status (cr)));
      return FALSE;
    }
  return TRUE;
}

gboolean
lsc_figure_format_from_path (const char *path, LscFigureFormat *format, GError **error)
{
  g_return_val_if_fail (path != NULL && format != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_autofree char *base = g_path_get_basename (path);
  const char *dot = strrchr (base, '.');
  if (dot != NULL)
    {
      if (g_ascii_strcasecmp (dot, ".png") == 0)
        *format = LSC_FIGURE_FORMAT_PNG;
      else if (g_ascii_strcasecmp (dot, ".svg") == 0)
        *format = LSC_FIGURE_FORMAT_SVG;
      else if (g_ascii_strcasecmp (dot, ".pdf") == 0)
        *format = LSC_FIGURE_FORMAT_PDF;
      else
        dot = NULL;
      if (dot != NULL)
        return TRUE;
    }
  dot = strrchr (base, '.');
  g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_UNKNOWN_FORMAT,
               "%s: unknown figure format '%s' (expected .png, .svg or .pdf)", path,
               dot ? dot : "no extension");
  return FALSE;
}

static cairo_status_t
append_bytes (void *closure, const unsigned char *data, unsigned int length)
{
  g_byte_array_append (closure, data, length);
  return CAIRO_STATUS_SUCCESS;
}

/* Cairo 1.16 names SVG images and surfaces by process-wide unique ids
 * ("image12", "surface7"): renumber each prefix from 1 in order of first
 * appearance so that two renders of a figure are byte-identical. */
static gboolean
renumber_svg_id (const GMatchInfo *info, GString *out, gpointer user_data)
{
  GHashTable *ids = user_data;
  g_autofree char *prefix = g_match_info_fetch (info, 1);
  g_autofree char *number = g_match_info_fetch (info, 2);
  g_autofree char *key = g_strconcat (prefix, number, NULL);
  gpointer n = g_hash_table_lookup (ids, key);
  if (n == NULL)
    {
      g_autofree char *count_key = g_strconcat ("#", prefix, NULL);
      guint next = GPOINTER_TO_UINT (g_hash_table_lookup (ids, count_key)) + 1;
      g_hash_table_insert (ids, g_steal_pointer (&count_key), GUINT_TO_POINTER (next));
      n = GUINT_TO_POINTER (next);
      g_hash_table_insert (ids, g_steal_pointer (&key), n);
    }
  g_string_append_printf (out, "%s%u", prefix, GPOINTER_TO_UINT (n));
  return FALSE;
}

static GByteArray *
svg_renumber_ids (GByteArray *svg)
{
  g_autoptr(GRegex) re = g_regex_new ("\\b(image|surface|source|pattern|mask|clip|glyph)"
                                      "([0-9]+)\\b", G_REGEX_OPTIMIZE, 0, NULL);
  g_assert (re != NULL);
  g_autoptr(GHashTable) ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree char *renumbered = g_regex_replace_eval (re, (const char *) svg->data, svg->len, 0,
                                                     0, renumber_svg_id, ids, NULL);
  g_byte_array_unref (svg);
  /* Cairo 1.16 drops CAIRO_FILTER_NEAREST from SVG; every image of a figure
   * (cells, colour bar) is meant to be drawn without smoothing */
  g_auto(GStrv) parts = g_strsplit (renumbered, "<image ", -1);
  char *text = g_strjoinv ("<image image-rendering=\"optimizeSpeed\" "
                           "style=\"image-rendering:pixelated\" ", parts);
  gsize len = strlen (text);
  return g_byte_array_new_take ((guint8 *) text, len);
}

GBytes *
lsc_figure_save_to_bytes (LscFigure *fig, const LscFigureOutput *out, GError **error)
{
  g_return_val_if_fail (fig != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  LscFigureOutput defaults;
  if (out == NULL)
    {
      lsc_figure_output_init (&defaults);
      defaults.format = LSC_FIGURE_FORMAT_PNG;
      out = &defaults;
    }
  if (!(out->width_pt > 0.0 && out->height_pt > 0.0 && isfinite (out->width_pt)
        && isfinite (out->height_pt)))
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "figure size %g x %g pt is not positive", out->width_pt, out->height_pt);
      return NULL;
    }

  g_autoptr(GByteArray) buf = g_byte_array_new ();
  cairo_surface_t *surface = NULL;
  double scale = 1.0;
  switch (out->format)
    {
    case LSC_FIGURE_FORMAT_PNG:
      {
        if (!(out->dpi > 0.0 && isfinite (out->dpi)))
          {
            g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                         "PNG resolution %g dpi is not positive", out->dpi);
            return NULL;
          }
        scale = out->dpi / 72.0;
        double w = ceil (out->width_pt * scale - 1e-6), h = ceil (out->height_pt * scale - 1e-6);
        if (w > MAX_PNG_SIDE || h > MAX_PNG_SIDE)
          {
            g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                         "PNG of %.0f x %.0f pixels (%g x %g pt at %g dpi): at most %d a side",
                         w, h, out->width_pt, out->height_pt, out->dpi, MAX_PNG_SIDE);
            return NULL;
          }
        surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, (int) w, (int) h);
      }
      break;
    case LSC_FIGURE_FORMAT_SVG:
      surface = cairo_svg_surface_create_for_stream (append_bytes, buf, out->width_pt,
                                                     out->height_pt);
      cairo_svg_surface_restrict_to_version (surface, CAIRO_SVG_VERSION_1_1);
      cairo_svg_surface_set_document_unit (surface, CAIRO_SVG_UNIT_PT);
      break;
    case LSC_FIGURE_FORMAT_PDF:
      surface = cairo_pdf_surface_create_for_stream (append_bytes, buf, out->width_pt,
                                                     out->height_pt);
      cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_CREATE_DATE, FIXED_DATE);
      cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_MOD_DATE, FIXED_DATE);
      cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_CREATOR,
                                      "Longscope " PACKAGE_VERSION);
      if (fig->title)
        cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_TITLE, fig->title);
      break;
    default:
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_UNKNOWN_FORMAT,
                   "figure format %d: expected PNG, SVG or PDF (AUTO needs a file name)",
                   (int) out->format);
      return NULL;
    }

  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_RENDER, "cannot create the surface: %s",
                   cairo_status_to_string (cairo_surface_status (surface)));
      cairo_surface_destroy (surface);
      return NULL;
    }

  cairo_t *cr = cairo_create (surface);
  cairo_scale (cr, scale, scale);
  gboolean ok = lsc_figure_render (fig, cr, out->width_pt, out->height_pt, error);
  cairo_destroy (cr);
  if (ok && out->format == LSC_FIGURE_FORMAT_PNG)
    {
      cairo_status_t st = cairo_surface_write_to_png_stream (surface, append_bytes, buf);
      if (st != CAIRO_STATUS_SUCCESS)
        {
          g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_RENDER, "PNG encoding: %s",
                       cairo_status_to_string (st));
          ok = FALSE;
        }
    }
  cairo_surface_finish (surface);
  if (ok && cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_RENDER, "finishing the figure: %s",
                   cairo_status_to_string (cairo_surface_status (surface)));
      ok = FALSE;
    }
  cairo_surface_destroy (surface);
  if (!ok)
    return NULL;

  if (out->format == LSC_FIGURE_FORMAT_SVG)
    buf = svg_renumber_ids (g_steal_pointer (&buf));
  return g_byte_array_free_to_bytes (g_steal_pointer (&buf));
}

gboolean
lsc_figure_save (LscFigure *fig, const char *path, const LscFigureOutput *out, GError **error)
{
  g_return_val_if_fail (fig != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  LscFigureOutput o;
  if (out)
    o = *out;
  else
    lsc_figure_output_init (&o);
  if (o.format == LSC_FIGURE_FORMAT_AUTO && !lsc_figure_format_from_path (path, &o.format, error))
    return FALSE;

  g_autoptr(GBytes) bytes = lsc_figure_save_to_bytes (fig, &o, error);
  if (bytes == NULL)
    {
      g_prefix_error (error, "%s: ", path);
      return FALSE;
    }
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);
  g_autoptr(GError) local = NULL;
  if (!g_file_set_contents (path, data, len, &local))
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_IO, "%s", local->message);
      return FALSE;
    }
  return TRUE;
}
