/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-figure-spec.h"
#include "lsc-kv.h"
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

void
lsc_figure_spec_kv_size (const LscKvLog *log, int *steps, int *columns, int *block)
{
  int n_steps, n = lsc_kv_log_get_n_positions (log);
  lsc_kv_log_get_steps (log, &n_steps);
  int k = MAX (1, (n + LSC_FIGURE_KV_MAX_COLS - 1) / LSC_FIGURE_KV_MAX_COLS);
  if (steps != NULL)
    *steps = MIN (n_steps, LSC_FIGURE_KV_MAX_STEPS);
  if (columns != NULL)
    *columns = (n + k - 1) / k;
  if (block != NULL)
    *block = k;
}

/* The fraction of positions [p0, p1) of (layer, head) cached once the
 * stream held `length` tokens; NaN when it held none of them yet. */
static float
cached_fraction (const LscKvLog *log, int layer, int head, int p0, int p1, int length)
{
  int seen = 0, alive = 0;
  for (int pos = p0; pos < MIN (p1, length); pos++)
    {
      seen++;
      alive += lsc_kv_log_alive (log, layer, head, pos, length);
    }
  return seen > 0 ? (float) alive / seen : NAN;
}

void
lsc_figure_spec_kv_timeline (LscFigureSpec *spec, const LscKvLog *log, int layer, int head,
                             float *cells, char *title)
{
  g_return_if_fail (spec != NULL && log != NULL && cells != NULL && title != NULL);
  int rows, cols, k, n_steps, n = lsc_kv_log_get_n_positions (log);
  const int *steps = lsc_kv_log_get_steps (log, &n_steps);
  lsc_figure_spec_kv_size (log, &rows, &cols, &k);
  for (int r = 0; r < rows; r++)
    {
      /* evenly spaced evaluations, the last one included */
      int length = steps[(int) (((gint64) r + 1) * n_steps / rows) - 1];
      for (int b = 0; b < cols; b++)
        cells[(gsize) r * cols + b] = cached_fraction (log, layer, head, b * k, MIN (n, (b + 1) * k),
                                                       length);
    }
  g_snprintf (title, TITLE_SIZE, "Layer %d, KV head %d: cached tokens (%s)", layer, head,
              lsc_kv_policy_name (lsc_kv_log_get_policy (log)->kind));
  set_heatmap (spec, title, cells, rows, cols, k > 1 ? "Position (blocks)" : "Position", "Step",
               "Cached");
}

void
lsc_figure_spec_kv_layers (LscFigureSpec *spec, const LscKvLog *log, int head, float *cells,
                           char *title)
{
  g_return_if_fail (spec != NULL && log != NULL && cells != NULL && title != NULL);
  int cols, k, n = lsc_kv_log_get_n_positions (log);
  int n_layers = lsc_kv_log_get_n_layers (log), n_heads = lsc_kv_log_get_n_heads (log);
  lsc_figure_spec_kv_size (log, NULL, &cols, &k);
  for (int l = 0; l < n_layers; l++)
    for (int b = 0; b < cols; b++)
      {
        double sum = 0;
        int h0 = head < 0 ? 0 : head, h1 = head < 0 ? n_heads : head + 1;
        for (int h = h0; h < h1; h++)
          sum += cached_fraction (log, l, h, b * k, MIN (n, (b + 1) * k), n);
        cells[(gsize) l * cols + b] = (float) (sum / (h1 - h0));
      }
  if (head < 0)
    g_snprintf (title, TITLE_SIZE, "Cached tokens after %d (%s, all KV heads)", n,
                lsc_kv_policy_name (lsc_kv_log_get_policy (log)->kind));
  else
    g_snprintf (title, TITLE_SIZE, "Cached tokens after %d (%s, KV head %d)", n,
                lsc_kv_policy_name (lsc_kv_log_get_policy (log)->kind), head);
  set_heatmap (spec, title, cells, n_layers, cols, k > 1 ? "Position (blocks)" : "Position",
               "Layer", "Cached");
}

void
lsc_figure_spec_kv_kl (LscFigureSpec *spec, const double *steps, const double *kl, int n,
                       LscKvPolicyKind policy, char *title)
{
  g_return_if_fail (spec != NULL && steps != NULL && kl != NULL && title != NULL);
  spec->kind = LSC_FIGURE_SPEC_LINE;
  g_snprintf (title, TITLE_SIZE, "%s against the full cache", lsc_kv_policy_name (policy));
  spec->title = title;
  spec->x = steps;
  spec->y = kl;
  spec->n = n;
  spec->x_label = "New token";
  spec->y_label = "KL divergence (nats)";
}
