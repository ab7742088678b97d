/* SPDX-License-Identifier: MIT
 *
 * The "ssm" section of a batch job (Mamba-1 / Mamba-2): record Δ of a range
 * of layers, measure each channel's memory (LongMamba's tA_prod) over a
 * window of the prompt, and optionally run LongMamba's token filter.
 *
 *   "ssm": {
 *     "layers": [first, last],   default every layer
 *     "c": 0.05,                 global when tA_prod > c
 *     "window": 0,               tokens from the prompt's start tA_prod is measured
 *                                over; 0 = the whole prompt
 *     "tensors": true,           Δ of the recorded layers into tensors.safetensors
 *     "filter": {                LongMamba's filter (methods.md 2.3)
 *       "threshold": [[Δ per channel] per layer],
 *       "global": [[true | false per channel] per layer],   which channels filter
 *                                (LongMamba: tA_prod > c over a calibration window)
 *       "b": 1.0, "min_tokens": 3000       filter prefills of at least min_tokens
 *     },
 *     "calibrate": {             LongMamba's offline calibration (methods.md 2.2,
 *                                lsc_ssm_calibrate ()) of the recorded window
 *       "ratio": 0.15,           in (0, 1]: Δ above the top floor(T * ratio) are clipped
 *       "targets": [1000, ...],  target lengths (tokens, ints >= 1); default the
 *                                reference's 1k .. 192k (25 lengths)
 *       "samples": 1,            the window is split into this many consecutive
 *                                windows of floor(window / samples) rows (the
 *                                remainder dropped), each a sample. They come from
 *                                ONE prefill: the state carries over between them,
 *                                unlike the reference's separate prefills.
 *       "aggregate": "max"       "max" or "mean" over the samples (the reference's
 *                                "-max" / "-avg"); mean averages tA_prod, so
 *                                log_tA_prod is ln(mean(exp(.)))
 *     }
 *   }
 *
 * results.json gets "ssm": {"layers", "n_channels", "n_states", "channel",
 * "c", "window", "per_layer": [{"layer", "mean_dt", "log_decay", "global",
 * "kept_fraction"?}]}: log_decay is ln tA_prod per channel, global the
 * indices of the channels above c. With "calibrate", "ssm" also gets
 * "calibration": {"ratio", "targets", "aggregate", "samples", "sample_rows",
 * "per_layer": [{"layer", "log_tA_prod": [C], "dt_sum": [C], "alpha":
 * [[C] per target], "threshold": [[C] per target], "global": [C booleans:
 * log_tA_prod > ln c]}]}. A later job's "filter" for a prompt of about
 * targets[j] tokens is {"threshold": [per_layer[l].threshold[j] per layer],
 * "global": [per_layer[l].global per layer]} (calibrate every layer: the
 * filter wants them all).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-batch-private.h"
#include "lsc-json.h"

void
_lsc_job_ssm_clear (LscJobSsm *ssm)
{
  json_object_put (ssm->threshold);
  json_object_put (ssm->global);
  g_free (ssm->threshold_values);
  g_free (ssm->global_values);
  g_free (ssm->cal_targets);
  memset (ssm, 0, sizeof *ssm);
}

static gboolean
bad (GError **error, const char *job, const char *key, const char *expected, json_object *found)
{
  g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, "%s: $.ssm%s%s: expected %s, found %s",
               job, key[0] ? "." : "", key, expected,
               found == NULL ? "nothing" : json_object_to_json_string (found));
  return FALSE;
}

static gboolean
is_number (json_object *v)
{
  return json_object_is_type (v, json_type_int) || json_object_is_type (v, json_type_double);
}

/* The reference's target lengths (load_align_target.py's selected_len). */
static const int default_targets[] = {
  1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000, 12000, 14000, 16000, 20000,
  24000, 30000, 36000, 44000, 54000, 64000, 80000, 96000, 120000, 144000, 168000, 192000,
};

static gboolean
parse_calibrate (LscJobSsm *ssm, const char *job, json_object *obj, GError **error)
{
  static const char *const known[] = { "ratio", "targets", "samples", "aggregate", NULL };
  json_object *v;

  ssm->calibrate = TRUE;
  ssm->cal_ratio = 0.15;
  ssm->cal_samples = 1;
  ssm->cal_aggregate = LSC_SSM_AGGREGATE_MAX;
  if (!json_object_is_type (obj, json_type_object))
    return bad (error, job, "calibrate", "an object", obj);
  if (!lsc_json_check_keys (obj, known, job, "$.ssm.calibrate", error))
    return FALSE;
  if ((v = json_object_object_get (obj, "ratio")) != NULL)
    {
      if (!is_number (v) || !(json_object_get_double (v) > 0 && json_object_get_double (v) <= 1))
        return bad (error, job, "calibrate.ratio", "a number in (0, 1]", v);
      ssm->cal_ratio = json_object_get_double (v);
    }
  if ((v = json_object_object_get (obj, "samples")) != NULL)
    {
      if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 1
          || json_object_get_int64 (v) > 1 << 20)
        return bad (error, job, "calibrate.samples", "a number of windows >= 1", v);
      ssm->cal_samples = json_object_get_int (v);
    }
  if ((v = json_object_object_get (obj, "aggregate")) != NULL)
    {
      const char *s = json_object_is_type (v, json_type_string) ? json_object_get_string (v) : "";
      if (g_strcmp0 (s, "max") == 0)
        ssm->cal_aggregate = LSC_SSM_AGGREGATE_MAX;
      else if (g_strcmp0 (s, "mean") == 0)
        ssm->cal_aggregate = LSC_SSM_AGGREGATE_MEAN;
      else
        return bad (error, job, "calibrate.aggregate", "\"max\" or \"mean\"", v);
    }
  if ((v = json_object_object_get (obj, "targets")) == NULL)
    {
      ssm->cal_n_targets = G_N_ELEMENTS (default_targets);
      ssm->cal_targets = g_memdup2 (default_targets, sizeof default_targets);
      return TRUE;
    }
  if (!json_object_is_type (v, json_type_array) || json_object_array_length (v) == 0)
    return bad (error, job, "calibrate.targets", "a non-empty array of lengths (tokens)", v);
  int n = (int) json_object_array_length (v);
  ssm->cal_targets = g_new (int, n);
  ssm->cal_n_targets = n;
  for (int j = 0; j < n; j++)
    {
      json_object *x = json_object_array_get_idx (v, j);
      if (!json_object_is_type (x, json_type_int) || json_object_get_int64 (x) < 1
          || json_object_get_int64 (x) > 1 << 28)
        {
          g_autofree char *at = g_strdup_printf ("calibrate.targets[%d]", j);
          return bad (error, job, at, "a length in tokens >= 1", x);
        }
      ssm->cal_targets[j] = json_object_get_int (x);
    }
  return TRUE;
}

gboolean
_lsc_job_ssm_parse (LscJobSsm *ssm, const char *job, json_object *obj, GError **error)
{
  static const char *const known[] = { "layers", "c", "window", "tensors", "filter", "calibrate",
                                       NULL };
  static const char *const filter_known[] = { "threshold", "global", "b", "min_tokens", NULL };
  json_object *v;

  memset (ssm, 0, sizeof *ssm);
  ssm->enabled = TRUE;
  ssm->last_layer = -1;
  ssm->c = 0.05;
  ssm->tensors = TRUE;
  ssm->b = 1.0;
  ssm->min_tokens = 3000;
  if (!json_object_is_type (obj, json_type_object))
    return bad (error, job, "", "an object", obj);
  if (!lsc_json_check_keys (obj, known, job, "$.ssm", error))
    return FALSE;
  if ((v = json_object_object_get (obj, "layers")) != NULL)
    {
      json_object *a = json_object_array_get_idx (v, 0), *b = json_object_array_get_idx (v, 1);
      if (!json_object_is_type (v, json_type_array) || json_object_array_length (v) != 2
          || !json_object_is_type (a, json_type_int) || !json_object_is_type (b, json_type_int)
          || json_object_get_int64 (a) < 0 || json_object_get_int64 (b) < json_object_get_int64 (a)
          || json_object_get_int64 (b) > 1 << 16)
        return bad (error, job, "layers", "[first, last] with 0 <= first <= last", v);
      ssm->first_layer = json_object_get_int (a);
      ssm->last_layer = json_object_get_int (b);
    }
  if ((v = json_object_object_get (obj, "c")) != NULL)
    {
      if (!is_number (v) || !(json_object_get_double (v) > 0 && json_object_get_double (v) < 1))
        return bad (error, job, "c", "a number in (0, 1)", v);
      ssm->c = json_object_get_double (v);
    }
  if ((v = json_object_object_get (obj, "window")) != NULL)
    {
      if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0
          || json_object_get_int64 (v) > G_MAXINT)
        return bad (error, job, "window", "a number of tokens >= 0", v);
      ssm->window = json_object_get_int (v);
    }
  if ((v = json_object_object_get (obj, "tensors")) != NULL)
    {
      if (!json_object_is_type (v, json_type_boolean))
        return bad (error, job, "tensors", "true or false", v);
      ssm->tensors = json_object_get_boolean (v);
    }
  if ((v = json_object_object_get (obj, "calibrate")) != NULL
      && !parse_calibrate (ssm, job, v, error))
    return FALSE;
  json_object *f = json_object_object_get (obj, "filter");
  if (f == NULL)
    return TRUE;
  if (!json_object_is_type (f, json_type_object))
    return bad (error, job, "filter", "an object", f);
  if (!lsc_json_check_keys (f, filter_known, job, "$.ssm.filter", error))
    return FALSE;
  ssm->filter = TRUE;
  if ((v = json_object_object_get (f, "b")) != NULL)
    {
      if (!is_number (v) || !(json_object_get_double (v) > 0))
        return bad (error, job, "filter.b", "a number > 0", v);
      ssm->b = json_object_get_double (v);
    }
  if ((v = json_object_object_get (f, "min_tokens")) != NULL)
    {
      if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 1
          || json_object_get_int64 (v) > G_MAXINT)
        return bad (error, job, "filter.min_tokens", "a number of tokens >= 1", v);
      ssm->min_tokens = json_object_get_int (v);
    }
  /* their shapes depend on the model: checked by _lsc_job_ssm_plan () */
  ssm->threshold = json_object_get (json_object_object_get (f, "threshold"));
  ssm->global = json_object_get (json_object_object_get (f, "global"));
  if (ssm->threshold == NULL)
    return bad (error, job, "filter.threshold", "[[Δ per channel] per layer]", NULL);
  if (ssm->global == NULL)
    return bad (error, job, "filter.global", "[[true or false per channel] per layer]", NULL);
  return TRUE;
}

/* rows x cols values of a nested array into out (floats or 0/1 bytes). */
static gboolean
read_matrix (json_object *v, int rows, int cols, gboolean booleans, float *f_out, guint8 *b_out,
             const char *job, const char *key, GError **error)
{
  g_autofree char *want = g_strdup_printf ("%d arrays (one per layer) of %d %s (one per channel)",
                                           rows, cols, booleans ? "booleans" : "numbers");
  if (!json_object_is_type (v, json_type_array) || (int) json_object_array_length (v) != rows)
    return bad (error, job, key, want, v);
  for (int r = 0; r < rows; r++)
    {
      json_object *row = json_object_array_get_idx (v, r);
      g_autofree char *at = g_strdup_printf ("%s[%d]", key, r);
      if (!json_object_is_type (row, json_type_array)
          || (int) json_object_array_length (row) != cols)
        return bad (error, job, at, want, row);
      for (int c = 0; c < cols; c++)
        {
          json_object *x = json_object_array_get_idx (row, c);
          g_autofree char *cell = g_strdup_printf ("%s[%d][%d]", key, r, c);
          if (booleans)
            {
              if (!json_object_is_type (x, json_type_boolean))
                return bad (error, job, cell, "true or false", x);
              b_out[(gsize) r * cols + c] = json_object_get_boolean (x);
            }
          else
            {
              if (!is_number (x) || !isfinite (json_object_get_double (x)))
                return bad (error, job, cell, "a number", x);
              f_out[(gsize) r * cols + c] = (float) json_object_get_double (x);
            }
        }
    }
  return TRUE;
}

gboolean
_lsc_job_ssm_plan (LscJobSsm *ssm, const char *job, const LscModelConfig *config,
                   LscSessionParams *params, GError **error)
{
  if (!lsc_arch_is_ssm (config->arch))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.ssm: the model is %s, which has no SSM layers (Mamba-1 and Mamba-2 "
                   "have)", job, lsc_arch_name (config->arch));
      return FALSE;
    }
  int last = ssm->last_layer < 0 ? config->n_layers - 1 : ssm->last_layer;
  if (last >= config->n_layers)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.ssm.layers: [%d, %d]: the model has layers 0 .. %d", job,
                   ssm->first_layer, last, config->n_layers - 1);
      return FALSE;
    }
  params->ssm_capture = (LscSsmCapturePlan) { TRUE, ssm->first_layer, last };
  if (!ssm->filter)
    return TRUE;
  int L = config->n_layers, C = lsc_ssm_n_channels (config);
  g_free (ssm->threshold_values);
  g_free (ssm->global_values);
  ssm->threshold_values = g_new (float, (gsize) L * C);
  ssm->global_values = g_new (guint8, (gsize) L * C);
  if (!read_matrix (ssm->threshold, L, C, FALSE, ssm->threshold_values, NULL, job,
                    "filter.threshold", error)
      || !read_matrix (ssm->global, L, C, TRUE, NULL, ssm->global_values, job, "filter.global",
                       error))
    return FALSE;
  params->ssm_filter = (LscSsmFilter) { TRUE, ssm->threshold_values, ssm->global_values, ssm->b,
                                        ssm->min_tokens };
  return TRUE;
}

/* "calibration": lsc_ssm_calibrate () of each sample window of each
 * recorded layer, aggregated over the samples. */
static gboolean
write_calibration (const LscJobSsm *ssm, const LscSsmStore *st, int window, json_object *o,
                   GError **error)
{
  int C = lsc_ssm_store_get_n_channels (st), S = lsc_ssm_store_get_n_states (st);
  int first = lsc_ssm_store_get_first_layer (st), last = lsc_ssm_store_get_last_layer (st);
  int N = ssm->cal_samples, J = ssm->cal_n_targets, rows = window / N;
  if (rows < 1)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "$.ssm.calibrate.samples: %d windows need at least %d tokens, the window "
                   "has %d", N, N, window);
      return FALSE;
    }
  /* one sample: log_tA_prod (C), then dt_sum (C), alpha (J, C), threshold (J, C) */
  gsize per = (gsize) (2 + 2 * J) * C, rest = per - C;
  g_autofree double *ltp = g_new (double, (gsize) N * C);
  g_autofree double *others = g_new (double, (gsize) N * rest);
  g_autofree double *out = g_new (double, per);
  double log_c = log (ssm->c);

  json_object *cal = json_object_new_object ();
  json_object_object_add (o, "calibration", cal);
  json_object_object_add (cal, "ratio", lsc_json_double (ssm->cal_ratio));
  json_object *targets = json_object_new_array ();
  for (int j = 0; j < J; j++)
    json_object_array_add (targets, json_object_new_int (ssm->cal_targets[j]));
  json_object_object_add (cal, "targets", targets);
  json_object_object_add (cal, "aggregate", json_object_new_string (
    ssm->cal_aggregate == LSC_SSM_AGGREGATE_MAX ? "max" : "mean"));
  json_object_object_add (cal, "samples", json_object_new_int (N));
  json_object_object_add (cal, "sample_rows", json_object_new_int (rows));
  json_object *per_layer = json_object_new_array ();
  json_object_object_add (cal, "per_layer", per_layer);

  for (int l = first; l <= last; l++)
    {
      const float *dt = lsc_ssm_store_get_dt (st, l);
      for (int k = 0; k < N; k++)
        {
          double *r = others + (gsize) k * rest;
          lsc_ssm_calibrate (dt + (gsize) k * rows * C, rows, C, lsc_ssm_store_get_a (st, l), S,
                             ssm->cal_ratio, ssm->cal_targets, J, ltp + (gsize) k * C, r,
                             r + C, r + (gsize) (1 + J) * C);
        }
      lsc_ssm_aggregate (ssm->cal_aggregate, ltp, N, C, TRUE, out);
      lsc_ssm_aggregate (ssm->cal_aggregate, others, N, rest, FALSE, out + C);

      json_object *e = json_object_new_object ();
      json_object_object_add (e, "layer", json_object_new_int (l));
      json_object_object_add (e, "log_tA_prod", lsc_json_doubles (out, C));
      json_object_object_add (e, "dt_sum", lsc_json_doubles (out + C, C));
      json_object *alpha = json_object_new_array (), *thr = json_object_new_array ();
      for (int j = 0; j < J; j++)
        {
          json_object_array_add (alpha, lsc_json_doubles (out + (gsize) (2 + j) * C, C));
          json_object_array_add (thr, lsc_json_doubles (out + (gsize) (2 + J + j) * C, C));
        }
      json_object_object_add (e, "alpha", alpha);
      json_object_object_add (e, "threshold", thr);
      json_object *global = json_object_new_array ();
      for (int c = 0; c < C; c++)
        json_object_array_add (global, json_object_new_boolean (out[c] > log_c));
      json_object_object_add (e, "global", global);
      json_object_array_add (per_layer, e);
    }
  return TRUE;
}

gboolean
_lsc_job_ssm_write (const LscJobSsm *ssm, const LscSession *session, int n_prompt,
                    json_object *results, LscTensorWriter *writer, GError **error)
{
  const LscSsmStore *st = lsc_session_get_ssm (session);
  int C = lsc_ssm_store_get_n_channels (st), S = lsc_ssm_store_get_n_states (st);
  int n_rows = lsc_ssm_store_get_n_rows (st);
  int first = lsc_ssm_store_get_first_layer (st), last = lsc_ssm_store_get_last_layer (st);
  int window = MIN (ssm->window > 0 ? ssm->window : n_prompt, n_rows);
  g_autofree double *log_decay = g_new (double, C);
  g_autofree double *mean = g_new (double, C);
  double log_c = log (ssm->c);

  json_object *o = json_object_new_object ();
  json_object_object_add (results, "ssm", o);
  json_object *layers = json_object_new_array ();
  json_object_array_add (layers, json_object_new_int (first));
  json_object_array_add (layers, json_object_new_int (last));
  json_object_object_add (o, "layers", layers);
  json_object_object_add (o, "n_channels", json_object_new_int (C));
  json_object_object_add (o, "n_states", json_object_new_int (S));
  json_object_object_add (o, "channel", json_object_new_string (S == 1 ? "head" : "inner channel"));
  json_object_object_add (o, "c", lsc_json_double (ssm->c));
  json_object_object_add (o, "window", json_object_new_int (window));
  json_object_object_add (o, "n_rows", json_object_new_int (n_rows));
  json_object *per_layer = json_object_new_array ();
  json_object_object_add (o, "per_layer", per_layer);

  for (int l = first; l <= last; l++)
    {
      const float *dt = lsc_ssm_store_get_dt (st, l);
      const guint8 *kept = lsc_ssm_store_get_kept (st, l);
      lsc_ssm_store_log_decay (st, l, 0, window, log_decay);
      for (int c = 0; c < C; c++)
        {
          double sum = 0;
          for (int t = 0; t < n_rows; t++)
            sum += dt[(gsize) t * C + c];
          mean[c] = n_rows > 0 ? sum / n_rows : NAN;
        }
      json_object *e = json_object_new_object ();
      json_object_object_add (e, "layer", json_object_new_int (l));
      json_object_object_add (e, "mean_dt", lsc_json_doubles (mean, C));
      json_object_object_add (e, "log_decay", lsc_json_doubles (log_decay, C));
      json_object *global = json_object_new_array ();
      for (int c = 0; c < C; c++)
        if (log_decay[c] > log_c)
          json_object_array_add (global, json_object_new_int (c));
      json_object_object_add (e, "global", global);
      if (kept != NULL)
        {
          for (int c = 0; c < C; c++)
            {
              int n_kept = 0;
              for (int t = 0; t < n_rows; t++)
                n_kept += kept[(gsize) t * C + c];
              mean[c] = n_rows > 0 ? (double) n_kept / n_rows : NAN;
            }
          json_object_object_add (e, "kept_fraction", lsc_json_doubles (mean, C));
        }
      json_object_array_add (per_layer, e);

      if (!ssm->tensors)
        continue;
      g_autofree char *name = g_strdup_printf ("ssm.dt.%d", l);
      gint64 shape[2] = { n_rows, C };
      lsc_tensor_writer_add_f32 (writer, name, 2, shape, dt);
    }
  return !ssm->calibrate || write_calibration (ssm, st, window, o, error);
}
