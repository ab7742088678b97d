/* SPDX-License-Identifier: MIT
 *
 * lsc-figure.h: publication figures (heatmaps, line charts, bar charts) drawn
 * with Cairo and Pango, without GTK, so that batch jobs render them on
 * machines without a display and the GUI exports the very same output.
 *
 * Three pieces:
 *  - colour maps (LscColormap): viridis and magma for magnitudes, RdBu_r for
 *    signed differences; 256 8-bit entries each, matplotlib's published data.
 *  - scales (LscScale): data value -> t in [0, 1] for a colour map: linear,
 *    log (values at or below a floor map to the floor) or quantile (the rank
 *    of the value among the data's finite values). A diverging scale puts 0
 *    at t = 0.5 and is symmetric around it.
 *  - figures (LscFigure): built once from copied data and parameters, then
 *    drawn any number of times to a cairo_t (the GUI's widget), to memory or
 *    to a file: PNG at any DPI, SVG, PDF. SVG and PDF output is reproducible
 *    byte for byte (fixed dates, renumbered ids).
 *
 * Sizes are in points (1/72 inch); the PNG pixel size is points * dpi / 72.
 * Text uses Pango with the generic "Sans" family at 72 points per inch of the
 * cairo user space, with unhinted metrics, so a figure has the same layout
 * at every DPI and in every format.
 *
 * Example: an attention tile of 64 query rows from position q0 and 64 key
 * columns from position k0, NaN where the causal mask hides a key.
 *
 *   LscHeatmapParams hp;
 *   lsc_heatmap_params_init (&hp);
 *   hp.title = "Layer 3, head 5";
 *   hp.row_offset = q0;
 *   hp.col_offset = k0;
 *   hp.scale.kind = LSC_SCALE_LOG;
 *   g_autoptr(LscFigure) fig = lsc_figure_new_heatmap (probs, 64, 64, &hp, &error);
 *
 *   LscFigureOutput out;
 *   lsc_figure_output_init (&out);   // 6 x 5 in, 150 dpi, format from the extension
 *   if (fig == NULL || !lsc_figure_save (fig, "head-3-5.pdf", &out, &error))
 *     g_printerr ("%s\n", error->message);
 */
#pragma once

#include <cairo.h>
#include <glib.h>

#include "lsc-figure-spec.h"

G_BEGIN_DECLS

/* ---------------------------------------------------------------- errors */

#define LSC_FIGURE_ERROR (lsc_figure_error_quark ())
GQuark lsc_figure_error_quark (void);

typedef enum {
  LSC_FIGURE_ERROR_INVALID_ARGUMENT,  /* zero size, NULL data, bad size/dpi, too many cells */
  LSC_FIGURE_ERROR_UNKNOWN_FORMAT,    /* a file extension other than .png, .svg, .pdf */
  LSC_FIGURE_ERROR_NO_DATA,           /* a scale or chart without a single finite value */
  LSC_FIGURE_ERROR_RENDER,            /* Cairo failed (out of memory, surface error) */
  LSC_FIGURE_ERROR_IO,                /* the file could not be written */
} LscFigureError;

/* ----------------------------------------------------------- colour maps */

typedef enum {
  LSC_COLORMAP_VIRIDIS,   /* sequential, perceptually uniform: the default */
  LSC_COLORMAP_MAGMA,     /* sequential, black -> yellow */
  LSC_COLORMAP_RDBU_R,    /* diverging: blue (negative) - white (0) - red (positive) */
} LscColormap;

/* The neutral grey of masked (NaN) cells, 8 bits per channel. */
#define LSC_FIGURE_MASKED_R 0xbf
#define LSC_FIGURE_MASKED_G 0xbf
#define LSC_FIGURE_MASKED_B 0xbf

/* The colour of t in [0, 1] (clamped): entry min (floor (t * 256), 255), as
 * matplotlib's cmap(t) picks it. NaN gives the masked grey. */
void lsc_colormap_rgb (LscColormap map, double t, guint8 *r, guint8 *g, guint8 *b);
/* "viridis", "magma", "RdBu_r". */
const char *lsc_colormap_get_name (LscColormap map);
/* Case-insensitive name -> map; FALSE for an unknown name. */
gboolean lsc_colormap_from_name (const char *name, LscColormap *map);
gboolean lsc_colormap_is_diverging (LscColormap map);

/* ---------------------------------------------------------------- scales */

typedef enum {
  LSC_SCALE_LINEAR,
  LSC_SCALE_LOG,        /* log10; values <= log_floor (0 and negatives too) map to the floor */
  LSC_SCALE_QUANTILE,   /* rank among the finite data values; vmin/vmax are unused */
} LscScaleKind;

typedef struct {
  LscScaleKind kind;   /* LINEAR */
  double vmin;         /* NaN (default): the smallest finite data value (log: the smallest > floor) */
  double vmax;         /* NaN (default): the largest finite data value */
  double log_floor;    /* 1e-6: LOG maps every value <= log_floor to it, i.e. to t = 0 */
  gboolean diverging;  /* FALSE: TRUE maps 0 to t = 0.5, with a range symmetric around 0
                        * (LINEAR, LOG: ±max(|vmin|, |vmax|), LOG on |v| from the floor;
                        * QUANTILE: ranks of |v| on each side) */
} LscScaleParams;

void lsc_scale_params_init (LscScaleParams *params);

typedef struct _LscScale LscScale;

/* A scale for `values` (n finite-or-not floats; NULL with n = 0 when vmin
 * and vmax are both given and kind is not QUANTILE). Fails with
 * LSC_FIGURE_ERROR_NO_DATA when the range needs data that has no finite
 * value, INVALID_ARGUMENT for a floor <= 0 or vmin > vmax. */
LscScale *lsc_scale_new (const LscScaleParams *params, const float *values, gsize n_values,
                         GError **error);
/* Scales are immutable and reference-counted (atomically: a render thread
 * may hold one while the UI replaces it). */
LscScale *lsc_scale_ref (LscScale *scale);
void lsc_scale_unref (LscScale *scale);

/* Data value -> t in [0, 1], clamped; NaN -> NaN (masked). A range of zero
 * width maps everything to 0 (0.5 when diverging). */
double lsc_scale_map (const LscScale *scale, double value);
/* t -> data value (the colour bar's tick positions); quantile scales
 * interpolate between the sorted values. */
double lsc_scale_unmap (const LscScale *scale, double t);
/* The effective range after defaults and the diverging symmetry. */
double lsc_scale_get_vmin (const LscScale *scale);
double lsc_scale_get_vmax (const LscScale *scale);
LscScaleKind lsc_scale_get_kind (const LscScale *scale);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscScale, lsc_scale_unref)

/* --------------------------------------------------------------- figures */

typedef struct _LscFigure LscFigure;

typedef struct {
  const char *title;            /* NULL: none */
  const char *x_label;          /* "Key position" */
  const char *y_label;          /* "Query position" */
  const char *colorbar_label;   /* "Attention probability" */
  LscColormap colormap;         /* VIRIDIS */
  LscScaleParams scale;         /* lsc_scale_params_init () */
  gint64 row_offset;            /* 0: the position of row 0 (q0 of a tile) */
  gint64 col_offset;            /* 0: the position of column 0 (k0) */
  /* Optional token text per row / column (rows / cols entries, copied),
   * escaped as lsc_figure_escape_token () does and drawn, instead of the
   * position tick labels, when the cells are tall / wide enough for a line. */
  const char *const *row_labels;
  const char *const *col_labels;
} LscHeatmapParams;

void lsc_heatmap_params_init (LscHeatmapParams *params);

/* A heatmap of a row-major rows x cols matrix (copied); NaN cells are masked
 * and drawn in LSC_FIGURE_MASKED_* grey. The cells are one image drawn with
 * nearest-neighbour filtering: no seams, no blur, at every size. */
LscFigure *lsc_figure_new_heatmap (const float *data, gsize rows, gsize cols,
                                   const LscHeatmapParams *params, GError **error);

typedef struct {
  const char *title;     /* NULL */
  const char *x_label;   /* NULL */
  const char *y_label;   /* NULL */
  gboolean legend;       /* TRUE: a legend of the named series, top right */
} LscChartParams;

void lsc_chart_params_init (LscChartParams *params);

/* An empty line chart; add one or more series before rendering. */
LscFigure *lsc_figure_new_line_chart (const LscChartParams *params, GError **error);
/* Adds n points (copied); points with a non-finite x or y break the line.
 * Only for line charts. */
gboolean lsc_figure_add_series (LscFigure *fig, const char *name, const double *x,
                                const double *y, gsize n, GError **error);

/* Horizontal bars, one per (label, value), ranked from the largest value
 * down, the top `max_bars` of them (0: all), labels left, values at the bars'
 * ends. Non-finite values are dropped. */
LscFigure *lsc_figure_new_bar_chart (const char *const *labels, const double *values, gsize n,
                                     guint max_bars, const LscChartParams *params,
                                     GError **error);

void lsc_figure_free (LscFigure *fig);

/* Where the last lsc_figure_render () of a heatmap put its cells, in that
 * render's user space (points for files): cell (i, j) spans
 * [x + j w / cols, x + (j + 1) w / cols) x [y + i h / rows, ...). For hover
 * read-outs and tests; FALSE before the first render or for charts. */
gboolean lsc_figure_get_cell_area (const LscFigure *fig, cairo_rectangle_t *area);

/* Draws the figure into the rectangle (0, 0, width, height) of `cr`'s user
 * space (in points), white background included; the cairo_t's state is
 * restored afterwards. */
gboolean lsc_figure_render (LscFigure *fig, cairo_t *cr, double width, double height,
                            GError **error);

/* The token escaping of heatmap labels: "\n" -> "↵", "\r" -> "␍", " " -> "·",
 * "\t" -> "→", other control characters -> "\xNN", invalid UTF-8 repaired.
 * Returns a new string. */
char *lsc_figure_escape_token (const char *text);

/* ---------------------------------------------------------------- output */

typedef enum {
  LSC_FIGURE_FORMAT_AUTO,   /* from the file extension (lsc_figure_save only) */
  LSC_FIGURE_FORMAT_PNG,
  LSC_FIGURE_FORMAT_SVG,
  LSC_FIGURE_FORMAT_PDF,
} LscFigureFormat;

typedef struct {
  LscFigureFormat format;   /* AUTO */
  double width_pt;          /* 432 (6 in) */
  double height_pt;         /* 360 (5 in) */
  double dpi;               /* 150: PNG only */
} LscFigureOutput;

void lsc_figure_output_init (LscFigureOutput *out);

/* ".png", ".svg", ".pdf" (any case) -> format; UNKNOWN_FORMAT otherwise. */
gboolean lsc_figure_format_from_path (const char *path, LscFigureFormat *format, GError **error);

/* The encoded file in memory; `out->format` must not be AUTO. */
GBytes *lsc_figure_save_to_bytes (LscFigure *fig, const LscFigureOutput *out, GError **error);
/* Writes the file atomically (temporary file + rename); the format is
 * out->format, or the extension's when AUTO. */
gboolean lsc_figure_save (LscFigure *fig, const char *path, const LscFigureOutput *out,
                          GError **error);

/* ----------------------------------------------------------------- specs */

/* Draws and saves the figure an LscFigureSpec (engine/lsc-figure-spec.h)
 * describes to spec->path: the LscFigureFunc batch jobs draw their figures
 * with, and what the application exports a batch figure with, so that both
 * write the same bytes (SVG, PDF). user_data is unused. */
gboolean lsc_figure_save_spec (const LscFigureSpec *spec, gpointer user_data, GError **error);
/* The figure an LscFigureSpec describes (spec->path and spec->dpi unused),
 * as lsc_figure_save_spec () saves it: for drawing the same figure into a
 * widget with lsc_figure_render (). NULL with an error as the lsc_figure_new_*
 * functions give (LSC_FIGURE_ERROR_INVALID_ARGUMENT for an unknown colour
 * map). */
LscFigure *lsc_figure_new_from_spec (const LscFigureSpec *spec, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscFigure, lsc_figure_free)

G_END_DECLS
