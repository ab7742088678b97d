/* SPDX-License-Identifier: MIT
 *
 * Saved results read back as a finished LscRun (see lsc-run-open.h). Every
 * field is checked before it is used; the schema is README "Batch jobs".
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-batch.h"
#include "lsc-json.h"
#include "lsc-run-open.h"
#include "lsc-run-private.h"
#include "lsc-tensor-reader.h"

static gboolean
invalid (GError **error, const char *file, const char *path, const char *expected,
         json_object *found)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: %s: expected %s, found %s", file,
               path, expected,
               found == NULL ? "nothing"
                             : json_object_to_json_string_ext (found, JSON_C_TO_STRING_PLAIN
                                                               | JSON_C_TO_STRING_NOSLASHESCAPE));
  return FALSE;
}

/* results.json of a folder, or the file itself. */
static char *
results_file (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    return g_build_filename (path, "results.json", NULL);
  return g_strdup (path);
}

static json_object *
read_json (const char *file, GError **error)
{
  g_autofree char *text = NULL;
  gsize len;
  if (!g_file_get_contents (file, &text, &len, error))
    return NULL;
  json_object *root = lsc_json_parse (file, text, len, LSC_JOB_ERROR, LSC_JOB_ERROR_SYNTAX, error);
  if (root == NULL)
    return NULL;
  json_object *v = json_object_object_get (root, "schema_version");
  if (!json_object_is_type (root, json_type_object) || v == NULL
      || !json_object_is_type (v, json_type_int) || json_object_get_int (v) != 1)
    {
      invalid (error, file, "$.schema_version", "1 (Longscope results)",
               json_object_is_type (root, json_type_object) ? v : root);
      json_object_put (root);
      return NULL;
    }
  return root;
}

static const char *
get_string (json_object *obj, const char *key)
{
  json_object *v = json_object_object_get (obj, key);
  return json_object_is_type (v, json_type_string) ? json_object_get_string (v) : NULL;
}

static gboolean
info_from_json (json_object *root, const char *file, LscResultsInfo *info, GError **error)
{
  memset (info, 0, sizeof *info);
  info->results_path = g_strdup (file);
  info->dir = g_path_get_dirname (file);
  json_object *prov = json_object_object_get (root, "provenance");
  json_object *job = json_object_object_get (root, "job");
  const char *model = get_string (prov, "model_path");
  if (model == NULL)
    model = get_string (job, "model");
  info->model_path = g_strdup (model);
  info->is_run = json_object_object_get (root, "prompt_tokens") != NULL
                 && json_object_object_get (root, "tokens") != NULL;
  info->is_retrieval = json_object_object_get (root, "retrieval") != NULL;
  json_object *att = json_object_object_get (root, "attention");
  info->has_store = json_object_get_boolean (json_object_object_get (att, "store"));
  info->status = g_strdup (get_string (root, "status"));
  if (!info->is_run && !info->is_retrieval)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: holds neither a run ($.prompt_tokens and $.tokens) nor a retrieval-head "
                   "detection ($.retrieval)", file);
      return FALSE;
    }
  if (info->model_path == NULL)
    {
      invalid (error, file, "$.provenance.model_path", "the model's path",
               json_object_object_get (prov, "model_path"));
      return FALSE;
    }
  return TRUE;
}

gboolean
lsc_results_info_read (const char *path, LscResultsInfo *info, GError **error)
{
  g_return_val_if_fail (path != NULL && info != NULL, FALSE);
  memset (info, 0, sizeof *info);
  g_autofree char *file = results_file (path);
  g_autoptr(json_object) root = read_json (file, error);
  if (root == NULL)
    return FALSE;
  if (!info_from_json (root, file, info, error))
    {
      lsc_results_info_clear (info);
      return FALSE;
    }
  return TRUE;
}

void
lsc_results_info_clear (LscResultsInfo *info)
{
  g_free (info->results_path);
  g_free (info->dir);
  g_free (info->model_path);
  g_free (info->status);
  memset (info, 0, sizeof *info);
}

/* ---- the run ---- */

/* The results were made by a model of this shape. */
static gboolean
check_model (json_object *root, const char *file, const LscModelConfig *c, GError **error)
{
  json_object *m = json_object_object_get (root, "model");
  if (!json_object_is_type (m, json_type_object))
    return invalid (error, file, "$.model", "an object", m);
  const struct { const char *key; int have; } fields[] = {
    { "vocab_size", c->vocab_size }, { "dim", c->dim }, { "n_layers", c->n_layers },
    { "n_heads", c->n_heads }, { "n_kv_heads", c->n_kv_heads }, { "head_dim", c->head_dim },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      json_object *v = json_object_object_get (m, fields[i].key);
      g_autofree char *path = g_strconcat ("$.model.", fields[i].key, NULL);
      if (!json_object_is_type (v, json_type_int))
        return invalid (error, file, path, "an integer", v);
      if (json_object_get_int (v) != fields[i].have)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "%s: %s: the results are of a model with %s %d, the open model has %d "
                       "(open the results' own model)", file, path, fields[i].key,
                       json_object_get_int (v), fields[i].have);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
read_tokens (json_object *root, const char *file, const char *key, int vocab, GArray *out,
             GError **error)
{
  json_object *a = json_object_object_get (root, key);
  g_autofree char *path = g_strconcat ("$.", key, NULL);
  if (!json_object_is_type (a, json_type_array))
    return invalid (error, file, path, "an array of token ids", a);
  for (size_t i = 0; i < json_object_array_length (a); i++)
    {
      json_object *v = json_object_array_get_idx (a, i);
      if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0
          || json_object_get_int64 (v) >= vocab)
        {
          g_autofree char *p = g_strdup_printf ("$.%s[%zu]", key, i);
          g_autofree char *want = g_strdup_printf ("a token id in [0, %d)", vocab);
          return invalid (error, file, p, want, v);
        }
      gint32 t = json_object_get_int (v);
      g_array_append_val (out, t);
    }
  return TRUE;
}

/* A number, or null for NaN (results never hold bare NaN). */
static gboolean
read_number (json_object *v, double *out)
{
  if (json_object_is_type (v, json_type_null))
    *out = NAN;
  else if (json_object_is_type (v, json_type_double) || json_object_is_type (v, json_type_int))
    *out = json_object_get_double (v);
  else
    return FALSE;
  return TRUE;
}

static gboolean
read_logprobs (json_object *root, const char *file, int n_generated, GArray **out, GError **error)
{
  json_object *a = json_object_object_get (root, "logprobs");
  if (a == NULL)
    return TRUE;
  if (!json_object_is_type (a, json_type_array) || (int) json_object_array_length (a) != n_generated)
    {
      g_autofree char *want = g_strdup_printf ("an array of %d log-probabilities (one per "
                                               "generated token)", n_generated);
      return invalid (error, file, "$.logprobs", want, a);
    }
  *out = g_array_sized_new (FALSE, FALSE, sizeof (double), n_generated);
  for (int i = 0; i < n_generated; i++)
    {
      double x;
      if (!read_number (json_object_array_get_idx (a, i), &x))
        {
          g_autofree char *p = g_strdup_printf ("$.logprobs[%d]", i);
          return invalid (error, file, p, "a number or null", json_object_array_get_idx (a, i));
        }
      g_array_append_val (*out, x);
    }
  return TRUE;
}

/* The job's settings, as the window's run parameters. */
static gboolean
read_params (json_object *job, const char *file, LscRunParams *p, char **prompt, GError **error)
{
  lsc_run_params_init (p);
  p->max_tokens = 256;   /* a job's defaults (README "Batch jobs") */
  p->capture = FALSE;
  if (!json_object_is_type (job, json_type_object))
    return invalid (error, file, "$.job", "the job as an object", job);
  json_object *v;
  if ((v = json_object_object_get (job, "prompt")) != NULL)
    {
      if (!json_object_is_type (v, json_type_string))
        return invalid (error, file, "$.job.prompt", "a string", v);
      *prompt = g_strdup (json_object_get_string (v));
    }
  if ((v = json_object_object_get (job, "max_tokens")) != NULL)
    {
      if (!json_object_is_type (v, json_type_int))
        return invalid (error, file, "$.job.max_tokens", "an integer", v);
      p->max_tokens = json_object_get_int (v);
    }
  if ((v = json_object_object_get (job, "temperature")) != NULL)
    {
      double t;
      if (!read_number (v, &t) || !(t >= 0))
        return invalid (error, file, "$.job.temperature", "a number >= 0", v);
      p->temperature = (float) t;
    }
  if ((v = json_object_object_get (job, "seed")) != NULL)
    {
      if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0)
        return invalid (error, file, "$.job.seed", "an integer >= 0", v);
      p->seed = (guint64) json_object_get_int64 (v);
    }
  if ((v = json_object_object_get (job, "threads")) != NULL)
    {
      if (!json_object_is_type (v, json_type_int) || json_object_get_int (v) < 0)
        return invalid (error, file, "$.job.threads", "an integer >= 0", v);
      p->n_threads = json_object_get_int (v);
    }
  if ((v = json_object_object_get (job, "backend")) != NULL
      && (!json_object_is_type (v, json_type_string)
          || !lsc_backend_from_string (json_object_get_string (v), &p->backend)))
    return invalid (error, file, "$.job.backend", "\"cpu\", \"cuda\" or \"auto\"", v);
  p->capture = json_object_object_get (job, "capture") != NULL;
  return TRUE;
}

static gboolean
read_timings (json_object *root, const char *file, LscRun *run, GError **error)
{
  json_object *t = json_object_object_get (root, "timings");
  const char *keys[3] = { "prefill_s", "decode_s", "total_s" };
  double *out[3] = { &run->prefill_s, &run->decode_s, &run->total_s };
  for (int i = 0; i < 3; i++)
    {
      json_object *v = json_object_object_get (t, keys[i]);
      *out[i] = NAN;
      if (v != NULL && !read_number (v, out[i]))
        {
          g_autofree char *p = g_strconcat ("$.timings.", keys[i], NULL);
          return invalid (error, file, p, "a number or null", v);
        }
    }
  return TRUE;
}

/* attn.stats.* as per-head statistics; NaN for heads not captured. */
static gboolean
read_stats (LscTensorReader *r, const LscModelConfig *c, LscRun *run, GError **error)
{
  static const char *const names[4] = { "attn.stats.entropy", "attn.stats.sink_mass",
                                        "attn.stats.max_prob", "attn.stats.mean_distance" };
  if (!lsc_tensor_reader_lookup (r, names[0], NULL, NULL))
    return TRUE;
  const float *v[4];
  for (int i = 0; i < 4; i++)
    {
      gint64 shape[2] = { c->n_layers, c->n_heads };
      if ((v[i] = lsc_tensor_reader_get_f32 (r, names[i], 2, shape, error)) == NULL)
        return FALSE;
    }
  gsize n = (gsize) c->n_layers * c->n_heads;
  run->stats = g_new (LscHeadStats, n);
  for (gsize k = 0; k < n; k++)
    run->stats[k] = (LscHeadStats) { v[0][k], v[1][k], v[2][k], v[3][k] };
  run->n_layers = c->n_layers;
  run->n_heads = c->n_heads;
  return TRUE;
}

/* A Mamba run's "ssm" section and its ssm.dt.L tensors as a Δ store. */
static gboolean
read_ssm (json_object *root, const char *file, LscTensorReader *r, LscModel *model, LscRun *run,
          GError **error)
{
  json_object *ssm = json_object_object_get (root, "ssm");
  if (ssm == NULL)
    return TRUE;
  json_object *layers = json_object_object_get (ssm, "layers");
  json_object *a = json_object_array_get_idx (layers, 0), *b = json_object_array_get_idx (layers, 1);
  const LscModelConfig *c = lsc_model_get_config (model);
  if (!json_object_is_type (layers, json_type_array) || json_object_array_length (layers) != 2
      || !json_object_is_type (a, json_type_int) || !json_object_is_type (b, json_type_int)
      || json_object_get_int (a) < 0 || json_object_get_int (a) > json_object_get_int (b)
      || json_object_get_int (b) >= c->n_layers)
    {
      g_autofree char *want = g_strdup_printf ("[first, last] within the model's %d layers",
                                               c->n_layers);
      return invalid (error, file, "$.ssm.layers", want, layers);
    }
  int first = json_object_get_int (a), last = json_object_get_int (b);
  g_autofree const float **dt = g_new (const float *, last - first + 1);
  gint64 n_rows = -1;
  for (int l = first; l <= last; l++)
    {
      g_autofree char *name = g_strdup_printf ("ssm.dt.%d", l);
      gint64 shape[2] = { n_rows, lsc_ssm_n_channels (c) };
      if ((dt[l - first] = lsc_tensor_reader_get_f32 (r, name, 2, shape, error)) == NULL)
        return FALSE;
      n_rows = shape[0];
    }
  run->ssm_store = lsc_ssm_store_new_from_data (model, first, last, (int) n_rows, dt, error);
  return run->ssm_store != NULL;
}

/* results' "kv.policy": {"kind": name, the policy's parameters}. */
static gboolean
read_kv_policy (json_object *o, const char *file, const char *at, LscKvPolicy *policy,
                GError **error)
{
  g_autofree char *path = g_strconcat (at, ".policy", NULL);
  g_autoptr(GError) local = NULL;
  if (lsc_batch_kv_policy_from_json (o, "kind", file, path, policy, &local))
    return TRUE;
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, local->message);
  return FALSE;
}

/* results' "kv".compare: {"kl": [...], "agree": [...], ...} as the run's
 * comparison. */
static gboolean
read_kv_compare (json_object *o, const char *file, const char *at, LscRun *run, GError **error)
{
  g_autofree char *path = g_strconcat (at, ".compare", NULL);
  g_autofree char *kl_path = g_strconcat (path, ".kl", NULL);
  g_autofree char *agree_path = g_strconcat (path, ".agree", NULL);
  if (!json_object_is_type (o, json_type_object))
    return invalid (error, file, path, "an object", o);
  json_object *kl = json_object_object_get (o, "kl"), *agree = json_object_object_get (o, "agree");
  if (!json_object_is_type (kl, json_type_array))
    return invalid (error, file, kl_path, "an array of numbers", kl);
  int n = (int) json_object_array_length (kl);
  if (!json_object_is_type (agree, json_type_array) || (int) json_object_array_length (agree) != n)
    {
      g_autofree char *want = g_strdup_printf ("an array of %d booleans (one per KL value)", n);
      return invalid (error, file, agree_path, want, agree);
    }
  run->kv_kl = g_array_sized_new (FALSE, FALSE, sizeof (double), n);
  run->kv_agree = g_array_sized_new (FALSE, FALSE, sizeof (gboolean), n);
  for (int i = 0; i < n; i++)
    {
      double x;
      json_object *a = json_object_array_get_idx (agree, i);
      if (!read_number (json_object_array_get_idx (kl, i), &x))
        {
          g_autofree char *p = g_strdup_printf ("%s[%d]", kl_path, i);
          return invalid (error, file, p, "a number or null", json_object_array_get_idx (kl, i));
        }
      if (!json_object_is_type (a, json_type_boolean))
        {
          g_autofree char *p = g_strdup_printf ("%s[%d]", agree_path, i);
          return invalid (error, file, p, "true or false", a);
        }
      gboolean same = json_object_get_boolean (a);
      g_array_append_val (run->kv_kl, x);
      g_array_append_val (run->kv_agree, same);
    }
  return TRUE;
}

/* A run under a KV policy: results' "kv" section (the first run of a list
 * of policies, whose tokens the results' are) and its kv.evicted_at and
 * kv.score tensors (kv.0.* for a list) as the run's log and comparison. */
static gboolean
read_kv (json_object *root, const char *file, LscTensorReader *r, const LscModelConfig *c,
         LscRun *run, GError **error)
{
  json_object *kv = json_object_object_get (root, "kv");
  if (kv == NULL)
    return TRUE;
  const char *at = "$.kv", *prefix = "kv.";
  if (json_object_is_type (kv, json_type_array))
    {
      if (json_object_array_length (kv) == 0)
        return invalid (error, file, at, "a KV policy's results, or an array of them", kv);
      kv = json_object_array_get_idx (kv, 0);
      at = "$.kv[0]";
      prefix = "kv.0.";
    }
  if (!json_object_is_type (kv, json_type_object))
    return invalid (error, file, at, "an object", kv);

  LscKvPolicy policy;
  if (!read_kv_policy (json_object_object_get (kv, "policy"), file, at, &policy, error))
    return FALSE;
  json_object *v = json_object_object_get (kv, "chunk");
  int chunk = 0;
  if (v != NULL)
    {
      if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0
          || json_object_get_int64 (v) > G_MAXINT)
        {
          g_autofree char *p = g_strconcat (at, ".chunk", NULL);
          return invalid (error, file, p, "a number of tokens >= 0", v);
        }
      chunk = json_object_get_int (v);
    }
  v = json_object_object_get (kv, "positions");
  if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0
      || json_object_get_int64 (v) > G_MAXINT)
    {
      g_autofree char *p = g_strconcat (at, ".positions", NULL);
      return invalid (error, file, p, "a number of positions >= 0", v);
    }
  int n_positions = json_object_get_int (v);

  /* the stream's length after each evaluation: ascending, the last one
   * every position */
  json_object *js = json_object_object_get (kv, "steps");
  g_autofree char *steps_path = g_strconcat (at, ".steps", NULL);
  if (!json_object_is_type (js, json_type_array)
      || (n_positions > 0 && json_object_array_length (js) == 0))
    return invalid (error, file, steps_path, "an array of stream lengths", js);
  int n_steps = (int) json_object_array_length (js);
  g_autofree int *steps = g_new (int, MAX (n_steps, 1));
  for (int i = 0; i < n_steps; i++)
    {
      v = json_object_array_get_idx (js, i);
      gint64 prev = i > 0 ? steps[i - 1] : 0;
      gint64 len = json_object_is_type (v, json_type_int) ? json_object_get_int64 (v) : -1;
      if (len <= prev || len > n_positions || (i == n_steps - 1 && len != n_positions))
        {
          g_autofree char *p = g_strdup_printf ("%s[%d]", steps_path, i);
          g_autofree char *want = g_strdup_printf (
              "a stream length above %" G_GINT64_FORMAT " and at most %d, the last one %d", prev,
              n_positions, n_positions);
          return invalid (error, file, p, want, v);
        }
      steps[i] = (int) len;
    }

  if (r == NULL)
    {
      g_autofree char *want = g_strdup_printf ("the tensor file holding %sevicted_at", prefix);
      return invalid (error, file, "$.tensors_file", want, NULL);
    }
  int L = c->n_layers, H = c->n_kv_heads;
  gint64 shape[3] = { L, H, n_positions };
  g_autofree char *evicted_name = g_strconcat (prefix, "evicted_at", NULL);
  g_autofree char *score_name = g_strconcat (prefix, "score", NULL);
  const gint32 *evicted = lsc_tensor_reader_get_i32 (r, evicted_name, 3, shape, error);
  if (evicted == NULL)
    return FALSE;
  const float *score = lsc_tensor_reader_get_f32 (r, score_name, 3, shape, error);
  if (score == NULL)
    return FALSE;
  /* -1 while cached, else a stream length past the position */
  for (gsize i = 0; i < (gsize) L * H * n_positions; i++)
    {
      int pos = (int) (i % n_positions);
      if (evicted[i] != -1 && (evicted[i] <= pos || evicted[i] > n_positions))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "%s: %s[%d][%d][%d]: expected -1 or a stream length in (%d, %d], "
                       "found %d", lsc_tensor_reader_get_path (r), evicted_name,
                       (int) (i / n_positions / H), (int) (i / n_positions % H), pos, pos,
                       n_positions, evicted[i]);
          return FALSE;
        }
    }
  /* ThinK's pruned key channels: 0 or 1 per (layer, KV head, channel) */
  const gint32 *pruned = NULL;
  if (policy.kind == LSC_KV_THINK)
    {
      gint64 pshape[3] = { L, H, c->head_dim };
      g_autofree char *pruned_name = g_strconcat (prefix, "pruned", NULL);
      pruned = lsc_tensor_reader_get_i32 (r, pruned_name, 3, pshape, error);
      if (pruned == NULL)
        return FALSE;
    }
  json_object *compare = json_object_object_get (kv, "compare");
  if (compare != NULL && !read_kv_compare (compare, file, at, run, error))
    return FALSE;
  run->kv_log = lsc_kv_log_new_from_data (&policy, L, H, c->head_dim, n_positions, evicted, score,
                                          steps, n_steps, pruned);
  run->params.kv_policy = policy;
  run->params.kv_chunk = chunk;
  run->params.kv_compare = compare != NULL;
  return TRUE;
}

static gboolean
read_tensors (json_object *root, const char *file, const char *dir, LscModel *model,
              int n_tokens, LscRun *run, GError **error)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  json_object *v = json_object_object_get (root, "tensors_file");
  if (v == NULL)
    return read_kv (root, file, NULL, c, run, error);
  const char *name = json_object_is_type (v, json_type_string) ? json_object_get_string (v) : NULL;
  if (name == NULL || *name == '\0' || strchr (name, '/') != NULL)
    return invalid (error, file, "$.tensors_file", "a file name beside results.json", v);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(LscTensorReader) r = lsc_tensor_reader_open (path, error);
  if (r == NULL || !read_stats (r, c, run, error) || !read_ssm (root, file, r, model, run, error)
      || !read_kv (root, file, r, c, run, error))
    return FALSE;
  if (!lsc_tensor_reader_lookup (r, "attn.store.geometry", NULL, NULL))
    return TRUE;
  g_autoptr(LscAttentionStore) store = lsc_attention_load_reader (g_steal_pointer (&r), error);
  if (store == NULL)
    return FALSE;
  int nl, nh, nkv, hd;
  lsc_attention_get_shape (store, &nl, &nh, &nkv, &hd);
  int rows_end = lsc_attention_get_row_start (store) + lsc_attention_get_n_rows (store);
  if (nl != c->n_layers || nh != c->n_heads || nkv != c->n_kv_heads || hd != c->head_dim
      || rows_end > n_tokens)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: the attention store (%d layers, %d heads, %d KV heads of %d, rows up to "
                   "%d) does not fit the results' model (%d, %d, %d of %d) and %d tokens", path,
                   nl, nh, nkv, hd, rows_end, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                   n_tokens);
      return FALSE;
    }
  run->store = g_steal_pointer (&store);
  return TRUE;
}

LscRun *
lsc_run_open (LscLoadedModel *model, const char *path, GError **error)
{
  g_return_val_if_fail (LSC_IS_LOADED_MODEL (model), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_autofree char *file = results_file (path);
  g_autoptr(json_object) root = read_json (file, error);
  if (root == NULL)
    return NULL;
  LscResultsInfo info;
  if (!info_from_json (root, file, &info, error))
    {
      lsc_results_info_clear (&info);
      return NULL;
    }
  g_autofree char *dir = g_strdup (info.dir);
  gboolean is_run = info.is_run;
  lsc_results_info_clear (&info);
  if (!is_run)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: a retrieval-head detection, not a run: it opens in the Retrieval Heads "
                   "view", file);
      return NULL;
    }
  const LscModelConfig *c = lsc_model_get_config (lsc_loaded_model_get_model (model));
  if (!check_model (root, file, c, error))
    return NULL;

  LscRunParams params;
  g_autofree char *prompt = NULL;
  json_object *job = json_object_object_get (root, "job");
  if (!read_params (job, file, &params, &prompt, error))
    return NULL;
  g_autoptr(GArray) tokens = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autoptr(GArray) logprobs = NULL;
  if (!read_tokens (root, file, "prompt_tokens", c->vocab_size, tokens, error))
    return NULL;
  int n_prompt = (int) tokens->len;
  if (!read_tokens (root, file, "tokens", c->vocab_size, tokens, error)
      || !read_logprobs (root, file, (int) tokens->len - n_prompt, &logprobs, error))
    return NULL;
  json_object *text = json_object_object_get (root, "text");
  if (text != NULL && !json_object_is_type (text, json_type_string))
    {
      invalid (error, file, "$.text", "a string", text);
      return NULL;
    }
  if (prompt == NULL)   /* a prompt_file job: the prompt is its tokens */
    prompt = lsc_tokenizer_decode (lsc_loaded_model_get_tokenizer (model),
                                   (const gint32 *) tokens->data, n_prompt);
  params.prompt = prompt;

  g_autoptr(LscRun) run = lsc_run_new (model, &params);
  run->started = TRUE;
  run->n_prompt = n_prompt;
  run->output = g_strdup (text != NULL ? json_object_get_string (text) : "");
  if (!read_timings (root, file, run, error)
      || !read_tensors (root, file, dir, lsc_loaded_model_get_model (model), (int) tokens->len, run,
                        error))
    return NULL;
  run->tokens = g_steal_pointer (&tokens);
  run->logprobs = g_steal_pointer (&logprobs);
  run->source = g_steal_pointer (&dir);
  run->job_json = g_strdup (json_object_to_json_string_ext (job, JSON_C_TO_STRING_PRETTY
                                                            | JSON_C_TO_STRING_SPACED
                                                            | JSON_C_TO_STRING_NOSLASHESCAPE));
  return g_steal_pointer (&run);
}

const char *
lsc_run_get_source (LscRun *run)
{
  g_return_val_if_fail (LSC_IS_RUN (run), NULL);
  return run->source;
}

const char *
lsc_run_get_saved_job (LscRun *run)
{
  g_return_val_if_fail (LSC_IS_RUN (run), NULL);
  return run->job_json;
}
