/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <gio/gio.h>
#include <math.h>
#include <string.h>

#include "lsc-run-compare.h"

double
lsc_run_compare_mean_logprob (const double *logprobs, int n)
{
  if (logprobs == NULL || n <= 0)
    return NAN;
  double s = 0;
  for (int i = 0; i < n; i++)
    s += logprobs[i];
  return s / n;
}

void
lsc_run_compare_clear (LscRunCompare *out)
{
  g_return_if_fail (out != NULL);
  g_free (out->delta);
  memset (out, 0, sizeof *out);
}

gboolean
lsc_run_compare (LscRun *a, LscRun *b, int layer, int head, LscRunCompare *out, GError **error)
{
  g_return_val_if_fail (LSC_IS_RUN (a) && LSC_IS_RUN (b), FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  memset (out, 0, sizeof *out);

  LscLoadedModel *ma = lsc_run_get_model (a), *mb = lsc_run_get_model (b);
  const char *pa = ma != NULL ? lsc_loaded_model_get_path (ma) : NULL;
  const char *pb = mb != NULL ? lsc_loaded_model_get_path (mb) : NULL;
  if (g_strcmp0 (pa, pb) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "the runs are of different models (%s, %s)", pa ? pa : "?", pb ? pb : "?");
      return FALSE;
    }
  const LscAttentionStore *sa = lsc_run_get_attention (a);
  const LscAttentionStore *sb = lsc_run_get_attention (b);
  if (sa == NULL || sb == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "run %s captured no attention",
                   sa == NULL ? "A" : "B");
      return FALSE;
    }
  int s0 = MAX (lsc_attention_get_row_start (sa), lsc_attention_get_row_start (sb));
  int s1 = MIN (lsc_attention_get_row_start (sa) + lsc_attention_get_n_rows (sa),
                lsc_attention_get_row_start (sb) + lsc_attention_get_n_rows (sb));
  if (s1 <= s0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "the runs captured no row in common");
      return FALSE;
    }
  int n = s1 - s0;
  float *ta = g_new (float, (gsize) n * n);
  float *tb = g_new (float, (gsize) n * n);
  if (!lsc_attention_tile (sa, layer, head, s0, s1, s0, s1, 0.0f, ta, error)
      || !lsc_attention_tile (sb, layer, head, s0, s1, s0, s1, 0.0f, tb, error))
    {
      g_free (ta);
      g_free (tb);
      return FALSE;
    }
  out->layer = layer;
  out->head = head;
  out->row0 = s0;
  out->n = n;
  out->max_row = s0;
  out->max_key = s0;
  double sum = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      {
        gsize k = (gsize) i * n + j;
        tb[k] = tb[k] - ta[k];
        double d = fabs (tb[k]);
        sum += d;
        if (d > out->max_abs)
          {
            out->max_abs = d;
            out->max_row = s0 + i;
            out->max_key = s0 + j;
          }
      }
  g_free (ta);
  out->delta = tb;
  out->mean_abs = sum / ((double) n * n);

  const double *la = lsc_run_get_logprobs (a, &out->n_logprobs_a);
  const double *lb = lsc_run_get_logprobs (b, &out->n_logprobs_b);
  out->mean_logprob_a = lsc_run_compare_mean_logprob (la, out->n_logprobs_a);
  out->mean_logprob_b = lsc_run_compare_mean_logprob (lb, out->n_logprobs_b);
  out->delta_logprob = out->mean_logprob_b - out->mean_logprob_a;
  return TRUE;
}
