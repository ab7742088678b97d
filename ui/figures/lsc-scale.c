/* SPDX-License-Identifier: MIT
 *
 * Scales: data value -> t in [0, 1] for a colour map.
 *
 *   LINEAR    t = (v - vmin) / (vmax - vmin)
 *   LOG       t = (log10 max (v, lo) - log10 lo) / (log10 vmax - log10 lo),
 *             lo = max (vmin, floor): values <= floor (0, negatives) give t = 0
 *   QUANTILE  t = rank of v among the sorted finite data values s[0..n-1]:
 *             i / (n - 1) for v == s[i] (ties: their mean rank), linear
 *             between neighbours for values not in the data
 * Diverging (0 at t = 0.5, symmetric), with m = max |v|:
 *   LINEAR    t = 0.5 + 0.5 v / m
 *   LOG       t = 0.5 + 0.5 sign (v) u, u the LOG mapping of |v| on [floor, m]
 *   QUANTILE  t = 0.5 + 0.5 sign (v) u, u = (rank of |v| among the nonzero
 *             |values|, 1-based) / n, so the largest magnitude (without ties) reaches 0 or 1
 * Every t is clamped to [0, 1]; NaN stays NaN (masked).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "lsc-figure-private.h"

struct _LscScale {
  LscScaleParams params;
  double vmin, vmax;     /* effective range; LOG: vmin >= floor (diverging: -m, m) */
  double *sorted;        /* (n_sorted) QUANTILE: finite values (diverging: nonzero |v|) */
  gsize n_sorted;
};

void
lsc_scale_params_init (LscScaleParams *params)
{
  g_return_if_fail (params != NULL);
  *params = (LscScaleParams) {
    .kind = LSC_SCALE_LINEAR,
    .vmin = NAN,
    .vmax = NAN,
    .log_floor = 1e-6,
    .diverging = FALSE,
  };
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

LscScale *
lsc_scale_new (const LscScaleParams *params, const float *values, gsize n_values, GError **error)
{
  g_return_val_if_fail (params != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (values == NULL && n_values > 0)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "scale: values is NULL but n_values is %" G_GSIZE_FORMAT, n_values);
      return NULL;
    }
  if ((guint) params->kind > LSC_SCALE_QUANTILE)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "scale: unknown kind %d", (int) params->kind);
      return NULL;
    }
  if (params->kind == LSC_SCALE_LOG && !(params->log_floor > 0.0 && isfinite (params->log_floor)))
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "scale: log_floor must be a finite number > 0, not %g", params->log_floor);
      return NULL;
    }
  if (isinf (params->vmin) || isinf (params->vmax)
      || (!isnan (params->vmin) && !isnan (params->vmax) && params->vmin > params->vmax))
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                   "scale: vmin %g and vmax %g are not a finite range (vmin <= vmax)",
                   params->vmin, params->vmax);
      return NULL;
    }

  /* the data's finite extremes; LOG also the smallest value above the floor */
  double lo = INFINITY, hi = -INFINITY, lo_above_floor = INFINITY, max_abs = 0.0;
  gsize n_finite = 0;
  for (gsize i = 0; i < n_values; i++)
    {
      double v = values[i];
      if (!isfinite (v))
        continue;
      n_finite++;
      lo = MIN (lo, v);
      hi = MAX (hi, v);
      max_abs = MAX (max_abs, fabs (v));
      if (v > params->log_floor)
        lo_above_floor = MIN (lo_above_floor, v);
    }

  gboolean needs_data = params->kind == LSC_SCALE_QUANTILE || isnan (params->vmax)
                        || (isnan (params->vmin) && !params->diverging);
  if (needs_data && n_finite == 0)
    {
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA,
                   "scale: no finite value among %" G_GSIZE_FORMAT " to set the range from",
                   n_values);
      return NULL;
    }

  g_autoptr(LscScale) s = g_atomic_rc_box_new0 (LscScale);
  s->params = *params;

  if (params->kind == LSC_SCALE_QUANTILE)
    {
      s->sorted = g_new (double, n_finite);
      for (gsize i = 0; i < n_values; i++)
        {
          double v = values[i];
          if (!isfinite (v))
            continue;
          if (params->diverging)
            {
              if (v != 0.0)
                s->sorted[s->n_sorted++] = fabs (v);
            }
          else
            s->sorted[s->n_sorted++] = v;
        }
      qsort (s->sorted, s->n_sorted, sizeof (double), compare_double);
      if (params->diverging)
        {
          s->vmin = -max_abs;
          s->vmax = max_abs;
        }
      else
        {
          s->vmin = lo;
          s->vmax = hi;
        }
      return g_steal_pointer (&s);
    }

  if (params->diverging)
    {
      /* the larger magnitude of the given bounds; the data's when vmax is not given */
      double m = isnan (params->vmin) ? 0.0 : fabs (params->vmin);
      if (isnan (params->vmax))
        m = MAX (m, max_abs);
      else
        m = MAX (m, fabs (params->vmax));
      s->vmin = -m;
      s->vmax = m;
      return g_steal_pointer (&s);
    }

  s->vmin = isnan (params->vmin) ? lo : params->vmin;
  s->vmax = isnan (params->vmax) ? hi : params->vmax;
  if (params->kind == LSC_SCALE_LOG)
    {
      double floor_ = params->log_floor;
      if (isnan (params->vmin))
        s->vmin = isfinite (lo_above_floor) ? lo_above_floor : floor_;
      s->vmin = MAX (s->vmin, floor_);
      s->vmax = MAX (s->vmax, s->vmin);
    }
  return g_steal_pointer (&s);
}

static void
scale_clear (gpointer data)
{
  LscScale *scale = data;
  g_free (scale->sorted);
}

LscScale *
lsc_scale_ref (LscScale *scale)
{
  return g_atomic_rc_box_acquire (scale);
}

void
lsc_scale_unref (LscScale *scale)
{
  if (scale != NULL)
    g_atomic_rc_box_release_full (scale, scale_clear);
}

static double
clamp01 (double t)
{
  return t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
}

/* log mapping of a > 0 onto [lo, hi] */
static double
log_unit (double a, double lo, double hi)
{
  if (!(hi > lo))
    return 0.0;
  if (a <= lo)
    return 0.0;
  return clamp01 ((log10 (a) - log10 (lo)) / (log10 (hi) - log10 (lo)));
}

/* first index with s[i] >= v, and first with s[i] > v */
static void
bounds (const double *s, gsize n, double v, gsize *lower, gsize *upper)
{
  gsize a = 0, b = n;
  while (a < b)
    {
      gsize mid = a + (b - a) / 2;
      if (s[mid] < v)
        a = mid + 1;
      else
        b = mid;
    }
  *lower = a;
  b = n;
  while (a < b)
    {
      gsize mid = a + (b - a) / 2;
      if (s[mid] <= v)
        a = mid + 1;
      else
        b = mid;
    }
  *upper = a;
}

/* fractional 0-based rank of v in s (ties: mean rank; interpolated between) */
static double
fractional_rank (const double *s, gsize n, double v)
{
  gsize lower, upper;
  bounds (s, n, v, &lower, &upper);
  if (upper > lower)
    return (lower + upper - 1) / 2.0;
  if (lower == 0)
    return 0.0;
  if (lower == n)
    return n - 1.0;
  /* s[lower - 1] < v < s[lower] */
  return (lower - 1) + (v - s[lower - 1]) / (s[lower] - s[lower - 1]);
}

double
lsc_scale_map (const LscScale *s, double v)
{
  g_return_val_if_fail (s != NULL, NAN);

  if (isnan (v))
    return NAN;
  gboolean div = s->params.diverging;

  switch (s->params.kind)
    {
    case LSC_SCALE_LINEAR:
      if (!(s->vmax > s->vmin))
        return div ? 0.5 : 0.0;
      return clamp01 ((v - s->vmin) / (s->vmax - s->vmin));

    case LSC_SCALE_LOG:
      if (div)
        {
          if (v == 0.0)
            return 0.5;
          double u = log_unit (fabs (v), s->params.log_floor, s->vmax);
          return clamp01 (0.5 + (v < 0 ? -0.5 : 0.5) * u);
        }
      return log_unit (MAX (v, s->params.log_floor), s->vmin, s->vmax);

    case LSC_SCALE_QUANTILE:
      if (div)
        {
          if (v == 0.0 || s->n_sorted == 0)
            return 0.5;
          double a = fabs (v);
          double u;
          if (a < s->sorted[0])
            u = a / s->sorted[0] / s->n_sorted;   /* between 0 and the first rank */
          else
            u = (fractional_rank (s->sorted, s->n_sorted, a) + 1.0) / s->n_sorted;
          return clamp01 (0.5 + (v < 0 ? -0.5 : 0.5) * u);
        }
      if (s->n_sorted < 2)
        return 0.0;
      return clamp01 (fractional_rank (s->sorted, s->n_sorted, v) / (s->n_sorted - 1.0));
    }
  return NAN;
}

/* s interpolated at fractional index pos in [0, n - 1] */
static double
interpolate_sorted (const double *s, gsize n, double pos)
{
  if (pos <= 0.0)
    return s[0];
  if (pos >= n - 1.0)
    return s[n - 1];
  gsize i = (gsize) floor (pos);
  double f = pos - i;
  return s[i] + f * (s[i + 1] - s[i]);
}

double
lsc_scale_unmap (const LscScale *s, double t)
{
  g_return_val_if_fail (s != NULL, NAN);

  if (isnan (t))
    return NAN;
  t = clamp01 (t);
  gboolean div = s->params.diverging;
  double sign = t < 0.5 ? -1.0 : 1.0;
  double u = fabs (2.0 * t - 1.0);

  switch (s->params.kind)
    {
    case LSC_SCALE_LINEAR:
      return s->vmin + t * (s->vmax - s->vmin);

    case LSC_SCALE_LOG:
      {
        double lo = div ? s->params.log_floor : s->vmin;
        double w = div ? u : t;
        if (div && u == 0.0)
          return 0.0;
        if (!(s->vmax > lo))
          return div ? sign * lo : lo;
        double a = pow (10.0, log10 (lo) + w * (log10 (s->vmax) - log10 (lo)));
        return div ? sign * a : a;
      }

    case LSC_SCALE_QUANTILE:
      if (s->n_sorted == 0)
        return 0.0;
      if (div)
        {
          double pos = u * s->n_sorted - 1.0;
          double a = pos < 0.0 ? s->sorted[0] * (u * s->n_sorted)
                               : interpolate_sorted (s->sorted, s->n_sorted, pos);
          return sign * a;
        }
      return interpolate_sorted (s->sorted, s->n_sorted, t * (s->n_sorted - 1.0));
    }
  return NAN;
}

double
lsc_scale_get_vmin (const LscScale *s)
{
  g_return_val_if_fail (s != NULL, NAN);
  return s->vmin;
}

double
lsc_scale_get_vmax (const LscScale *s)
{
  g_return_val_if_fail (s != NULL, NAN);
  return s->vmax;
}

LscScaleKind
lsc_scale_get_kind (const LscScale *s)
{
  g_return_val_if_fail (s != NULL, LSC_SCALE_LINEAR);
  return s->params.kind;
}

gboolean
_lsc_scale_is_diverging (const LscScale *s)
{
  return s->params.diverging;
}
