/* SPDX-License-Identifier: MIT
 *
 * lsc-batch.h: `longscope --batch job.json`, the headless runner.
 * Returns the process exit status: 0 done, 1 runtime failure, 2 invalid job
 * or arguments, 3 model or file could not be loaded, 130 interrupted.
 *
 * Figures: the engine has no Cairo, so a job's "figures" are drawn by a
 * renderer the caller passes in (the app passes ui/figures). The engine
 * fills an LscFigureSpec per figure with the data and its labels.
 */
#pragma once

#include <glib.h>

#include "lsc-session.h"

G_BEGIN_DECLS

typedef enum {
  LSC_FIGURE_SPEC_HEATMAP,     /* data (rows, cols) */
  LSC_FIGURE_SPEC_BARS,        /* labels, values (n) */
  LSC_FIGURE_SPEC_LINE,        /* one series: x, y (n) */
} LscFigureSpecKind;

typedef struct {
  LscFigureSpecKind kind;
  const char *path;            /* the file; its extension picks PNG, SVG or PDF */
  double dpi;                  /* PNG resolution */
  const char *title;
  const char *x_label, *y_label;
  const char *value_label;     /* heatmap colour bar */
  const char *colormap;        /* "viridis", "magma", "rdbu_r" */
  const char *scale;           /* "linear", "log", "quantile" */
  /* heatmaps */
  const float *data;           /* (rows, cols); NaN = masked */
  int rows, cols;
  gint64 row_offset, col_offset;
  const char *const *row_labels, *const *col_labels;   /* (rows), (cols) or NULL */
  /* bars and lines */
  const char *const *labels;   /* (n) bars */
  const double *x;             /* (n) line */
  const double *y;             /* (n_series, n) lines; (n) the bar values */
  int n;
  int n_series;                /* lines: 0 or 1 = one unnamed series */
  const char *const *series_names;   /* (n_series) legend, or NULL */
  int max_bars;                /* 0: all */
} LscFigureSpec;

typedef gboolean (*LscFigureFunc) (const LscFigureSpec *spec, gpointer user_data, GError **error);

/* `backend`, when not NULL, replaces the job's "backend" (`longscope
 * --backend`). `figure` may be NULL: a job asking for figures then fails
 * naming them. */
int lsc_batch_run_file (const char *job_path, const char *output_dir, const LscBackend *backend,
                        LscFigureFunc figure, gpointer figure_data);

G_END_DECLS
