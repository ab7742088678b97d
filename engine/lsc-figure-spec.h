/* SPDX-License-Identifier: MIT
 *
 * lsc-figure-spec.h: what a figure shows, described without drawing it.
 * The engine has no Cairo: batch jobs (lsc-batch.h) and the application fill
 * an LscFigureSpec with the data, the title and the labels, and hand it to
 * a renderer, an LscFigureFunc (ui/figures: lsc_figure_save_spec). Figures
 * both of them draw are filled by one function here, so that the
 * application exports byte for byte the figure a batch job writes.
 *
 * Example: the "retrieval_scores" figure of a detection, as a job draws it.
 *
 *   g_autofree float *cells = g_new (float, n_layers * n_heads);
 *   LscFigureSpec spec;
 *   lsc_figure_spec_init (&spec);      // a job figure's defaults: 150 dpi, viridis, linear
 *   lsc_figure_spec_retrieval_scores (&spec, scores, n_layers, n_heads, cells);
 *   spec.path = "scores.svg";
 *   if (!lsc_figure_save_spec (&spec, NULL, &error))
 *     g_printerr ("%s\n", error->message);
 */
#pragma once

#include <glib.h>

#include "lsc-kv.h"

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

/* Zeroes spec and sets the defaults of a job figure's common keys: dpi 150,
 * colormap "viridis", scale "linear". */
void lsc_figure_spec_init (LscFigureSpec *spec);

/* The "retrieval_scores" figure: a heatmap of the retrieval score per head,
 * layers as rows and heads as columns, titled "Retrieval score per head"
 * with the axes "Head" and "Layer" and the colour bar "Retrieval score" (in
 * English, as every batch figure). scores (n_layers * n_heads, layer-major;
 * NaN cells are masked) are converted into `cells`, the caller's storage of
 * n_layers * n_heads floats, which spec->data points to. Sets kind, title,
 * the labels, data, rows and cols; leaves path, dpi, colormap and scale. */
void lsc_figure_spec_retrieval_scores (LscFigureSpec *spec, const double *scores, int n_layers,
                                       int n_heads, float *cells);

/* The "ssm_decay" figure: how much of its state each channel keeps over a
 * span of tokens, layers as rows and channels as columns, value log10 of
 * LongMamba's tA_prod (log_decay is its natural log, (n_layers, n_channels);
 * NaN for a layer not recorded). Titled "Channel memory over N tokens",
 * axes "Channel" and "Layer", colour bar "log10 decay". Channels above
 * log10 c are LongMamba's global channels. cells: n_layers * n_channels
 * floats of the caller's; title: the caller's storage (64 bytes). */
void lsc_figure_spec_ssm_decay (LscFigureSpec *spec, const double *log_decay, int n_layers,
                                int n_channels, int n_tokens, float *cells, char *title);

/* The "ssm_receptive_field" figure of one layer: channels as rows, distance
 * d = 0 .. n_rows - 1 back from the last recorded token t as columns, value
 * log10 r_c(t - d, t) (lsc_ssm_decay_curve ()). dt (n_rows, n_channels), a
 * (n_channels, n_states) as the store gives them. Titled "Layer L: decay
 * from token T", axes "Distance (tokens)" and "Channel", colour bar "log10
 * decay". cells: n_channels * n_rows floats; title: 64 bytes. */
void lsc_figure_spec_ssm_receptive_field (LscFigureSpec *spec, const float *dt, int n_rows,
                                          int n_channels, const float *a, int n_states,
                                          int layer, float *cells, char *title);

/* The "ssm_dt" figure of one layer: channels as rows, tokens as columns,
 * value Δ; tokens the LongMamba filter dropped (kept (n_rows, n_channels)
 * 0, or NULL) are masked. Titled "Layer L: time step Δ", axes "Token" and
 * "Channel", colour bar "Δ". cells: n_channels * n_rows floats; title: 64
 * bytes. */
void lsc_figure_spec_ssm_dt (LscFigureSpec *spec, const float *dt, const guint8 *kept, int n_rows,
                             int n_channels, int layer, float *cells, char *title);

/* KV figures draw positions in at most LSC_FIGURE_KV_MAX_COLS columns
 * (blocks of `block` positions, the fraction of each block cached) and at
 * most LSC_FIGURE_KV_MAX_STEPS evaluations. lsc_figure_spec_kv_size ()
 * gives the rows (steps) and columns of a log's figures. */
#define LSC_FIGURE_KV_MAX_COLS 4096
#define LSC_FIGURE_KV_MAX_STEPS 512
void lsc_figure_spec_kv_size (const LscKvLog *log, int *steps, int *columns, int *block);
/* The "kv_timeline" figure of one layer and KV head: evaluations as rows
 * (evenly spaced, the last included), positions as columns, value the
 * fraction cached once the policy had run (NaN: not yet in the stream).
 * Titled "Layer L, KV head H: cached tokens (policy)", axes "Position" and
 * "Step", colour bar "Cached". cells: steps x columns floats; title: 64
 * bytes. */
void lsc_figure_spec_kv_timeline (LscFigureSpec *spec, const LscKvLog *log, int layer, int head,
                                  float *cells, char *title);
/* The "kv_layers" figure: layers as rows, positions as columns, value the
 * fraction cached at the end of the stream, of one KV head or (head -1) the
 * mean over heads. Titled "Cached tokens after N (policy, ...)", axes
 * "Position" and "Layer". cells: n_layers x columns floats. */
void lsc_figure_spec_kv_layers (LscFigureSpec *spec, const LscKvLog *log, int head, float *cells,
                                char *title);
/* The "kv_kl" figure: a line of KL(full || policy) (n) against the new
 * token's index (steps, n). Titled "policy against the full cache". */
void lsc_figure_spec_kv_kl (LscFigureSpec *spec, const double *steps, const double *kl, int n,
                            LscKvPolicyKind policy, char *title);

G_END_DECLS
