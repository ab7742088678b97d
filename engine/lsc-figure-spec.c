/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-figure-spec.h"
#include "lsc-ssm.h"

#define TITLE_SIZE 64

void
lsc_figure_spec_init (LscFigureSpec *spec)
{
  g_return_if_fail (spec != NULL);
  memset (spec, 0, sizeof *spec);
  spec->dpi = 150;
  spec->colormap = "viridis";
  spec->scale = "linear";
}

void
lsc_figure_spec_retrieval_scores (LscFigureSpec *spec, const double *scores, int n_layers,
                                  int n_heads, float *cells)
{
  g_return_if_fail (spec != NULL);
  g_return_if_fail (scores != NULL && cells != NULL);
  g_return_if_fail (n_layers > 0 && n_heads > 0);
  for (gsize i = 0; i < (gsize) n_layers * n_heads; i++)
    cells[i] = (float) scores[i];
  spec->kind = LSC_FIGURE_SPEC_HEATMAP;
  spec->title = "Retrieval score per head";
  spec->data = cells;
  spec->rows = n_layers;
  spec->cols = n_heads;
  spec->x_label = "Head";
  spec->y_label = "Layer";
  spec->value_label = "Retrieval score";
}

/* The fields every SSM heatmap sets. */
static void
set_heatmap (LscFigureSpec *spec, const char *title, const float *cells, int rows, int cols,
             const char *x_label, const char *y_label, const char *value_label)
{
  spec->kind = LSC_FIGURE_SPEC_HEATMAP;
  spec->title = title;
  spec->data = cells;
  spec->rows = rows;
  spec->cols = cols;
  spec->x_label = x_label;
  spec->y_label = y_label;
  spec->value_label = value_label;
}

void
lsc_figure_spec_ssm_decay (LscFigureSpec *spec, const double *log_decay, int n_layers,
                           int n_channels, int n_tokens, float *cells, char *title)
{
  g_return_if_fail (spec != NULL && log_decay != NULL && cells != NULL && title != NULL);
  for (gsize i = 0; i < (gsize) n_layers * n_channels; i++)
    cells[i] = (float) (log_decay[i] / G_LN10);
  g_snprintf (title, TITLE_SIZE, "Channel memory over %d tokens", n_tokens);
  set_heatmap (spec, title, cells, n_layers, n_channels, "Channel", "Layer", "log10 decay");
}

void
lsc_figure_spec_ssm_receptive_field (LscFigureSpec *spec, const float *dt, int n_rows,
                                     int n_channels, const float *a, int n_states, int layer,
                                     float *cells, char *title)
{
  g_return_if_fail (spec != NULL && dt != NULL && a != NULL && cells != NULL && title != NULL);
  g_return_if_fail (n_rows > 0 && n_channels > 0);
  g_autofree double *curve = g_new (double, n_rows);
  int t = n_rows - 1;
  for (int c = 0; c < n_channels; c++)
    {
      lsc_ssm_decay_curve (dt, n_channels, a, n_states, c, t, curve);
      for (int d = 0; d < n_rows; d++)
        cells[(gsize) c * n_rows + d] = (float) (curve[t - d] / G_LN10);
    }
  g_snprintf (title, TITLE_SIZE, "Layer %d: decay from token %d", layer, t);
  set_heatmap (spec, title, cells, n_channels, n_rows, "Distance (tokens)", "Channel",
               "log10 decay");
}

void
lsc_figure_spec_ssm_dt (LscFigureSpec *spec, const float *dt, const guint8 *kept, int n_rows,
                        int n_channels, int layer, float *cells, char *title)
{
  g_return_if_fail (spec != NULL && dt != NULL && cells != NULL && title != NULL);
  for (int c = 0; c < n_channels; c++)
    for (int t = 0; t < n_rows; t++)
      {
        gsize i = (gsize) t * n_channels + c;
        cells[(gsize) c * n_rows + t] = kept != NULL && !kept[i] ? NAN : dt[i];
      }
  g_snprintf (title, TITLE_SIZE, "Layer %d: time step Δ", layer);
  set_heatmap (spec, title, cells, n_channels, n_rows, "Token", "Channel", "Δ");
}
