/* SPDX-License-Identifier: MIT
 *
 * The Δ store of an SSM session and the receptive-field analyses
 * (lsc-ssm.h). The store grows with the session: a recorded layer holds
 * (rows, n_channels) floats, reallocated by doubling.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-llama-private.h"
#include "lsc-ssm.h"

struct _LscSsmStore {
  int n_layers, first, last;
  int n_channels, n_states;
  int n_rows, cap;          /* rows recorded, rows allocated */
  float **dt;               /* (n_layers): (cap, n_channels), NULL outside [first, last] */
  guint8 **kept;            /* (n_layers): (cap, n_channels), NULL until a filter runs */
  const float **a;          /* (n_layers): (n_channels, n_states), the session's or a_owned */
  float **a_owned;          /* (n_layers) a store read back owns its A; NULL for a session's */
};

LscSsmStore *
_lsc_ssm_store_new (const LscSsmCapturePlan *plan, int n_layers, int n_channels, int n_states,
                    const float *const *a, GError **error)
{
  int last = plan->last_layer < 0 ? n_layers - 1 : plan->last_layer;
  if (plan->first_layer < 0 || plan->first_layer > last || last >= n_layers)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                   "ssm_capture: layers %d .. %d: the model has layers 0 .. %d",
                   plan->first_layer, plan->last_layer, n_layers - 1);
      return NULL;
    }
  LscSsmStore *st = g_new0 (LscSsmStore, 1);
  st->n_layers = n_layers;
  st->first = plan->first_layer;
  st->last = last;
  st->n_channels = n_channels;
  st->n_states = n_states;
  st->dt = g_new0 (float *, n_layers);
  st->kept = g_new0 (guint8 *, n_layers);
  st->a = g_new (const float *, n_layers);
  memcpy (st->a, a, n_layers * sizeof *a);
  return st;
}

void
lsc_ssm_store_free (LscSsmStore *st)
{
  if (st == NULL)
    return;
  for (int l = 0; l < st->n_layers; l++)
    {
      g_free (st->dt[l]);
      g_free (st->kept[l]);
    }
  for (int l = 0; st->a_owned != NULL && l < st->n_layers; l++)
    g_free (st->a_owned[l]);
  g_free (st->a_owned);
  g_free (st->dt);
  g_free (st->kept);
  g_free (st->a);
  g_free (st);
}

LscSsmStore *
lsc_ssm_store_new_from_data (LscModel *model, int first_layer, int last_layer, int n_rows,
                             const float *const *dt, GError **error)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  int C = lsc_ssm_n_channels (c), S = c->arch == LSC_ARCH_MAMBA2 ? 1 : c->ssm_d_state;
  if (C == 0 || n_rows < 0)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                   "%s: %s has no SSM layers to hold Δ of", lsc_model_get_path (model),
                   lsc_arch_name (c->arch));
      return NULL;
    }
  /* A of every layer, as the session widens it */
  g_autofree float **a = g_new0 (float *, c->n_layers);
  guint64 a_bytes = 0;
  for (int l = 0; l < c->n_layers; l++)
    if ((a[l] = _lsc_ssm_widen_a (model, l, (gint64) C * S, &a_bytes)) == NULL)
      {
        g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                     "%s: layer %d has no A of %d x %d", lsc_model_get_path (model), l, C, S);
        for (int k = 0; k < l; k++)
          g_free (a[k]);
        return NULL;
      }
  LscSsmCapturePlan plan = { TRUE, first_layer, last_layer };
  LscSsmStore *st = _lsc_ssm_store_new (&plan, c->n_layers, C, S, (const float *const *) a, error);
  if (st == NULL)
    {
      for (int l = 0; l < c->n_layers; l++)
        g_free (a[l]);
      return NULL;
    }
  st->a_owned = g_steal_pointer (&a);
  for (int l = st->first; l <= st->last && n_rows > 0; l++)
    _lsc_ssm_store_put (st, l, 0, n_rows, dt[l - st->first], NULL);
  _lsc_ssm_store_set_rows (st, n_rows);
  return st;
}

int
lsc_ssm_n_channels (const LscModelConfig *c)
{
  return c->arch == LSC_ARCH_MAMBA2  ? c->ssm_n_heads
         : c->arch == LSC_ARCH_MAMBA ? c->ssm_d_inner
                                     : 0;
}

int
_lsc_ssm_store_grow (int cap, int rows)
{
  return rows <= cap ? cap : MAX (rows, MAX (64, 2 * cap));
}

guint64
_lsc_ssm_store_bytes (const LscModelConfig *c, const LscSsmCapturePlan *plan, int block,
                      int first_eval, int n_pos, gboolean filtered)
{
  int cap = 0;
  for (int r = MIN (first_eval, block); r > 0 && r <= first_eval;
       r = r == first_eval ? r + 1 : MIN (r + block, first_eval))
    cap = _lsc_ssm_store_grow (cap, r);
  for (int r = first_eval + 1; r <= n_pos; r++)
    cap = _lsc_ssm_store_grow (cap, r);
  int last = plan->last_layer < 0 ? c->n_layers - 1 : plan->last_layer;
  guint64 channels = lsc_ssm_n_channels (c);
  guint64 per_row = channels * (last - plan->first_layer + 1)
                    * (sizeof (float) + (filtered ? 1 : 0));
  return per_row * cap;
}

static void
grow (LscSsmStore *st, int rows)
{
  if (rows <= st->cap)
    return;
  int cap = _lsc_ssm_store_grow (st->cap, rows);
  for (int l = st->first; l <= st->last; l++)
    {
      st->dt[l] = g_renew (float, st->dt[l], (gsize) cap * st->n_channels);
      if (st->kept[l] != NULL)
        st->kept[l] = g_renew (guint8, st->kept[l], (gsize) cap * st->n_channels);
    }
  st->cap = cap;
}

void
_lsc_ssm_store_put (LscSsmStore *st, int layer, int row0, int T, const float *dt,
                    const guint8 *kept)
{
  if (layer < st->first || layer > st->last)
    return;
  grow (st, row0 + T);
  gsize w = st->n_channels;
  memcpy (st->dt[layer] + row0 * w, dt, (gsize) T * w * sizeof (float));
  if (kept != NULL && st->kept[layer] == NULL)
    {
      /* the rows before the first filtered block were all kept */
      st->kept[layer] = g_malloc ((gsize) st->cap * w);
      memset (st->kept[layer], 1, (gsize) row0 * w);
    }
  if (st->kept[layer] != NULL)
    {
      if (kept != NULL)
        memcpy (st->kept[layer] + row0 * w, kept, (gsize) T * w);
      else
        memset (st->kept[layer] + row0 * w, 1, (gsize) T * w);
    }
}

void
_lsc_ssm_store_set_rows (LscSsmStore *st, int rows)
{
  st->n_rows = rows;
  if (rows == 0)
    for (int l = 0; l < st->n_layers; l++)
      g_clear_pointer (&st->kept[l], g_free);
}

int lsc_ssm_store_get_n_layers (const LscSsmStore *st) { return st->n_layers; }
int lsc_ssm_store_get_first_layer (const LscSsmStore *st) { return st->first; }
int lsc_ssm_store_get_last_layer (const LscSsmStore *st) { return st->last; }
int lsc_ssm_store_get_n_channels (const LscSsmStore *st) { return st->n_channels; }
int lsc_ssm_store_get_n_states (const LscSsmStore *st) { return st->n_states; }
int lsc_ssm_store_get_n_rows (const LscSsmStore *st) { return st->n_rows; }

guint64
lsc_ssm_store_get_bytes (const LscSsmStore *st)
{
  guint64 row_bytes = 0;   /* of every layer's arrays */
  for (int l = 0; l < st->n_layers; l++)
    row_bytes += (st->dt[l] != NULL ? sizeof (float) : 0) + (st->kept[l] != NULL ? 1 : 0);
  return row_bytes * st->n_channels * st->cap;
}

const float *
lsc_ssm_store_get_dt (const LscSsmStore *st, int layer)
{
  g_return_val_if_fail (layer >= 0 && layer < st->n_layers, NULL);
  return st->dt[layer];
}

const float *
lsc_ssm_store_get_a (const LscSsmStore *st, int layer)
{
  g_return_val_if_fail (layer >= 0 && layer < st->n_layers, NULL);
  return st->a[layer];
}

const guint8 *
lsc_ssm_store_get_kept (const LscSsmStore *st, int layer)
{
  g_return_val_if_fail (layer >= 0 && layer < st->n_layers, NULL);
  return st->kept[layer];
}

/* The slowest state's A of channel c: the largest (closest to 0). */
static double
slowest_a (const float *a, int n_states, int c)
{
  double best = a[(gsize) c * n_states];
  for (int n = 1; n < n_states; n++)
    best = MAX (best, (double) a[(gsize) c * n_states + n]);
  return best;
}

void
lsc_ssm_log_decay (const float *dt, int n_channels, const float *a, int n_states, int row_a,
                   int row_b, double *out)
{
  for (int c = 0; c < n_channels; c++)
    {
      double sum = 0;
      for (int t = row_a; t < row_b; t++)
        sum += dt[(gsize) t * n_channels + c];
      out[c] = slowest_a (a, n_states, c) * sum;
    }
}

gboolean
lsc_ssm_store_log_decay (const LscSsmStore *st, int layer, int row_a, int row_b, double *out)
{
  if (layer < 0 || layer >= st->n_layers || st->dt[layer] == NULL || row_a < 0
      || row_a > row_b || row_b > st->n_rows)
    return FALSE;
  lsc_ssm_log_decay (st->dt[layer], st->n_channels, st->a[layer], st->n_states, row_a, row_b,
                     out);
  return TRUE;
}

void
lsc_ssm_decay_curve (const float *dt, int n_channels, const float *a, int n_states, int c, int t,
                     double *out)
{
  double a_c = slowest_a (a, n_states, c), sum = 0;
  out[t] = 0;
  for (int s = t - 1; s >= 0; s--)
    {
      sum += dt[(gsize) (s + 1) * n_channels + c];
      out[s] = a_c * sum;
    }
}

static int
cmp_desc (const void *pa, const void *pb)
{
  double a = *(const double *) pa, b = *(const double *) pb;
  return a < b ? 1 : a > b ? -1 : 0;
}

/* s2[i] of the stretched profile (lsc_ssm_calibrate): torch's linear
 * interpolation, align_corners=False, of s (T) to length lt. */
static inline double
stretched (const double *s, int T, int lt, int i)
{
  double src = ((double) T / lt) * (i + 0.5) - 0.5;
  if (src < 0)
    src = 0;
  int i0 = (int) src;
  int i1 = i0 + (i0 < T - 1 ? 1 : 0);
  double lambda = src - i0;
  return (1.0 - lambda) * s[i0] + lambda * s[i1];
}

void
lsc_ssm_calibrate (const float *dt, int n_rows, int n_channels, const float *a, int n_states,
                   double ratio, const int *targets, int n_targets, double *log_ta_prod,
                   double *dt_sum, double *alpha, double *threshold)
{
  g_return_if_fail (n_rows >= 1 && ratio > 0 && ratio <= 1);
  int T = n_rows;
  int k_top = MAX (1, (int) floor (T * ratio));
  k_top = MIN (k_top, T);
  g_autofree double *s = g_new (double, T);
  for (int c = 0; c < n_channels; c++)
    {
      for (int t = 0; t < T; t++)
        s[t] = dt[(gsize) t * n_channels + c];
      qsort (s, T, sizeof *s, cmp_desc);
      double v = s[k_top - 1], sum = 0;
      for (int t = 0; t < T; t++)
        {
          s[t] = MIN (s[t], v);   /* still descending */
          sum += s[t];
        }
      dt_sum[c] = sum;
      log_ta_prod[c] = slowest_a (a, n_states, c) * sum;
      for (int j = 0; j < n_targets; j++)
        {
          int lt = targets[j];
          gsize at = (gsize) j * n_channels + c;
          if (lt <= T)
            {
              alpha[at] = 1;
              threshold[at] = 0;
              continue;
            }
          double cum = 0;
          int first = 0;   /* torch.argmax of all-false */
          for (int i = 0; i < lt; i++)
            {
              cum += stretched (s, T, lt, i);
              if (cum > sum)
                {
                  first = i;
                  break;
                }
            }
          int k = first + 1;
          alpha[at] = MIN ((double) k / lt, 1.0);
          threshold[at] = stretched (s, T, lt, MIN (k, lt - 1));
        }
    }
}

void
lsc_ssm_aggregate (LscSsmAggregate how, const double *samples, int n_samples, gsize n,
                   gboolean log_domain, double *out)
{
  g_return_if_fail (n_samples >= 1);
  for (gsize i = 0; i < n; i++)
    {
      double m = samples[i];
      for (int k = 1; k < n_samples; k++)
        m = MAX (m, samples[(gsize) k * n + i]);
      if (how == LSC_SSM_AGGREGATE_MAX)
        {
          out[i] = m;
          continue;
        }
      double sum = 0;
      if (log_domain)
        {
          if (!isfinite (m))
            {
              out[i] = m;
              continue;
            }
          for (int k = 0; k < n_samples; k++)
            sum += exp (samples[(gsize) k * n + i] - m);
          out[i] = m + log (sum / n_samples);
        }
      else
        {
          for (int k = 0; k < n_samples; k++)
            sum += samples[(gsize) k * n + i];
          out[i] = sum / n_samples;
        }
    }
}
