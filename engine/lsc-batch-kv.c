/* SPDX-License-Identifier: MIT
 *
 * The "kv" section of a batch job: generation under a KV-cache eviction
 * policy (lsc-kv.h), compared step by step with the full cache.
 *
 *   "kv": {
 *     "policy": "h2o",          streaming-llm, h2o, snapkv, pyramidkv, lacache, lm-infinite
 *                               or think
 *     "sink": 4, "recent": 512,                       streaming-llm
 *     "heavy": 4, "recent": 512,                      h2o
 *     "capacity": 2048, "window": 32, "kernel": 5,    snapkv, pyramidkv (+ "beta": 20)
 *     "pooling": "avg" | "max",
 *     "capacity": 256, "sink": 4, "span": 16, "overlap": 0   lacache
 *     "global": 10, "local": 4096                      lm-infinite
 *     "ratio": 0.4, "recent": 32                       think
 *                               (defaults: lsc_kv_policy_init ())
 *     "chunk": 0,               the prompt is fed this many tokens at a time (0: at once)
 *     "compare": true           also run the full cache: KL and top-1 agreement per step
 *   }
 *
 * or an array of such objects: each policy runs on its own (from an empty
 * cache, with its own full-cache comparison) to compare them.
 *
 * A key that does not belong to the policy is an error. The session's
 * n_ctx is the job's, or lsc_kv_policy_slots (). results.json gets "kv":
 * {"policy": {...}, "chunk", "n_ctx", "positions", "steps": [stream length
 * after each evaluation], "budget": [slots per layer after the prompt],
 * "alive": [[cached positions per KV head] per layer], "gqa": how grouped
 * heads score, "compare": {"kl": [...], "agree": [...], "mean_kl",
 * "agreement"}}; tensors.safetensors gets "kv.evicted_at" (I32: -1 while
 * cached, else the stream length when evicted) and "kv.score" (F32, NaN:
 * none), both (n_layers, n_kv_heads, positions). For an array, "kv" is an
 * array of those objects, each also with the run's "text", "tokens" and
 * "logprobs" (the top-level ones are the first run's), and the tensors are
 * "kv.I.evicted_at" and "kv.I.score" for run I.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-batch-private.h"
#include "lsc-json.h"

void
_lsc_job_kv_clear (LscJobKv *kv)
{
  g_free (kv->runs);
  memset (kv, 0, sizeof *kv);
}

/* at: "$.kv" or "$.kv[I]" */
static gboolean
bad (GError **error, const char *job, const char *at, const char *key, const char *expected,
     json_object *found)
{
  g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, "%s: %s%s%s: expected %s, found %s",
               job, at, key[0] ? "." : "", key, expected,
               found == NULL ? "nothing" : json_object_to_json_string (found));
  return FALSE;
}

/* The integer parameters, and which policies take each. */
static const struct {
  const char *key;
  gsize offset;
  guint policies;          /* bits of LscKvPolicyKind */
} int_keys[] = {
  { "sink", G_STRUCT_OFFSET (LscKvPolicy, n_sink), 1 << LSC_KV_STREAMING_LLM | 1 << LSC_KV_LACACHE },
  { "heavy", G_STRUCT_OFFSET (LscKvPolicy, n_heavy), 1 << LSC_KV_H2O },
  { "recent", G_STRUCT_OFFSET (LscKvPolicy, n_recent),
    1 << LSC_KV_STREAMING_LLM | 1 << LSC_KV_H2O | 1 << LSC_KV_THINK },
  { "capacity", G_STRUCT_OFFSET (LscKvPolicy, capacity),
    1 << LSC_KV_SNAPKV | 1 << LSC_KV_PYRAMIDKV | 1 << LSC_KV_LACACHE },
  { "window", G_STRUCT_OFFSET (LscKvPolicy, window), 1 << LSC_KV_SNAPKV | 1 << LSC_KV_PYRAMIDKV },
  { "kernel", G_STRUCT_OFFSET (LscKvPolicy, kernel), 1 << LSC_KV_SNAPKV | 1 << LSC_KV_PYRAMIDKV },
  { "beta", G_STRUCT_OFFSET (LscKvPolicy, beta), 1 << LSC_KV_PYRAMIDKV },
  { "span", G_STRUCT_OFFSET (LscKvPolicy, span), 1 << LSC_KV_LACACHE },
  { "overlap", G_STRUCT_OFFSET (LscKvPolicy, overlap), 1 << LSC_KV_LACACHE },
  { "global", G_STRUCT_OFFSET (LscKvPolicy, n_global), 1 << LSC_KV_LM_INFINITE },
  { "local", G_STRUCT_OFFSET (LscKvPolicy, n_local), 1 << LSC_KV_LM_INFINITE },
};

json_object *
lsc_batch_kv_policy_to_json (const LscKvPolicy *p, const char *name_key)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, name_key, json_object_new_string (lsc_kv_policy_name (p->kind)));
  for (guint i = 0; i < G_N_ELEMENTS (int_keys); i++)
    if (int_keys[i].policies & (1u << p->kind))
      json_object_object_add (o, int_keys[i].key,
                              json_object_new_int (G_STRUCT_MEMBER (int, p, int_keys[i].offset)));
  if (p->kind == LSC_KV_SNAPKV || p->kind == LSC_KV_PYRAMIDKV)
    json_object_object_add (o, "pooling",
                            json_object_new_string (p->pooling == LSC_KV_POOL_MAX ? "max" : "avg"));
  if (p->kind == LSC_KV_THINK)
    json_object_object_add (o, "ratio", lsc_json_double_short (p->ratio));
  return o;
}

gboolean
lsc_batch_kv_policy_from_json (json_object *obj, const char *name_key, const char *file,
                               const char *at, LscKvPolicy *policy, GError **error)
{
  json_object *v;
  if (!json_object_is_type (obj, json_type_object))
    return bad (error, file, at, "", "an object", obj);
  v = json_object_object_get (obj, name_key);
  LscKvPolicyKind kind;
  if (v == NULL || !json_object_is_type (v, json_type_string)
      || !lsc_kv_policy_from_string (json_object_get_string (v), &kind) || kind == LSC_KV_FULL)
    return bad (error, file, at, name_key,
                "\"streaming-llm\", \"h2o\", \"snapkv\", \"pyramidkv\", \"lacache\", "
                "\"lm-infinite\" or \"think\"", v);
  lsc_kv_policy_init (policy, kind);
  const char *name = lsc_kv_policy_name (kind);

  for (guint i = 0; i < G_N_ELEMENTS (int_keys); i++)
    {
      if ((v = json_object_object_get (obj, int_keys[i].key)) == NULL)
        continue;
      if (!(int_keys[i].policies & (1u << kind)))
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: %s.%s: the %s policy has no %s", file, at, int_keys[i].key, name,
                       int_keys[i].key);
          return FALSE;
        }
      if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0
          || json_object_get_int64 (v) > 1 << 28)
        return bad (error, file, at, int_keys[i].key, "a whole number >= 0", v);
      G_STRUCT_MEMBER (int, policy, int_keys[i].offset) = json_object_get_int (v);
    }
  if ((v = json_object_object_get (obj, "pooling")) != NULL)
    {
      if (kind != LSC_KV_SNAPKV && kind != LSC_KV_PYRAMIDKV)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: %s.pooling: the %s policy has no pooling", file, at, name);
          return FALSE;
        }
      const char *str = json_object_is_type (v, json_type_string) ? json_object_get_string (v) : "";
      if (strcmp (str, "avg") == 0)
        policy->pooling = LSC_KV_POOL_AVG;
      else if (strcmp (str, "max") == 0)
        policy->pooling = LSC_KV_POOL_MAX;
      else
        return bad (error, file, at, "pooling", "\"avg\" or \"max\"", v);
    }
  if ((v = json_object_object_get (obj, "ratio")) != NULL)
    {
      if (kind != LSC_KV_THINK)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: %s.ratio: the %s policy has no ratio", file, at, name);
          return FALSE;
        }
      if (!(json_object_is_type (v, json_type_int) || json_object_is_type (v, json_type_double)))
        return bad (error, file, at, "ratio", "a number in [0, 1)", v);
      policy->ratio = json_object_get_double (v);
    }
  g_autofree char *wrong = lsc_kv_policy_check (policy);
  if (wrong != NULL)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, "%s: %s: %s", file, at, wrong);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_run (LscJobKvRun *run, const char *job, const char *at, json_object *obj, GError **error)
{
  static const char *const known[] = { "policy", "sink", "recent", "heavy", "capacity", "window",
                                       "kernel", "pooling", "beta", "span", "overlap", "global",
                                       "local", "ratio", "chunk", "compare", NULL };
  json_object *v;

  run->compare = TRUE;
  if (!json_object_is_type (obj, json_type_object))
    return bad (error, job, at, "", "an object", obj);
  if (!lsc_json_check_keys (obj, known, job, at, error)
      || !lsc_batch_kv_policy_from_json (obj, "policy", job, at, &run->policy, error))
    return FALSE;
  if ((v = json_object_object_get (obj, "chunk")) != NULL)
    {
      if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0
          || json_object_get_int64 (v) > G_MAXINT)
        return bad (error, job, at, "chunk", "a number of tokens >= 0", v);
      run->chunk = json_object_get_int (v);
    }
  if ((v = json_object_object_get (obj, "compare")) != NULL)
    {
      if (!json_object_is_type (v, json_type_boolean))
        return bad (error, job, at, "compare", "true or false", v);
      run->compare = json_object_get_boolean (v);
    }
  return TRUE;
}

gboolean
_lsc_job_kv_parse (LscJobKv *kv, const char *job, json_object *obj, GError **error)
{
  memset (kv, 0, sizeof *kv);
  kv->enabled = TRUE;
  kv->list = json_object_is_type (obj, json_type_array);
  if (!kv->list)
    {
      kv->n_runs = 1;
      kv->runs = g_new0 (LscJobKvRun, 1);
      return parse_run (&kv->runs[0], job, "$.kv", obj, error);
    }
  kv->n_runs = (int) json_object_array_length (obj);
  if (kv->n_runs == 0 || kv->n_runs > 64)
    return bad (error, job, "$.kv", "", "a policy or an array of 1 to 64 policies", obj);
  kv->runs = g_new0 (LscJobKvRun, kv->n_runs);
  for (int i = 0; i < kv->n_runs; i++)
    {
      g_autofree char *at = g_strdup_printf ("$.kv[%d]", i);
      if (!parse_run (&kv->runs[i], job, at, json_object_array_get_idx (obj, i), error))
        return FALSE;
    }
  return TRUE;
}

gboolean
_lsc_job_kv_write (const LscJobKv *kv, int run, const LscSession *session, int n_prompt,
                   const double *kl, const gboolean *agree, int n_compared, json_object *o,
                   LscTensorWriter *writer, GError **error)
{
  const LscKvLog *log = lsc_session_get_kv (session);
  g_return_val_if_fail (log != NULL, FALSE);
  int L = lsc_kv_log_get_n_layers (log), H = lsc_kv_log_get_n_heads (log);
  int N = lsc_kv_log_get_n_positions (log), n_steps;
  const int *steps = lsc_kv_log_get_steps (log, &n_steps);
  const LscKvPolicy *policy = lsc_kv_log_get_policy (log);

  json_object_object_add (o, "policy", lsc_batch_kv_policy_to_json (policy, "kind"));
  json_object_object_add (o, "chunk", json_object_new_int (kv->runs[run].chunk));
  json_object_object_add (o, "n_ctx", json_object_new_int (lsc_session_get_params (session)->n_ctx));
  json_object_object_add (o, "positions", json_object_new_int (N));
  json_object_object_add (o, "gqa", json_object_new_string (
                                      "per KV head: scores summed over its query heads"));
  json_object *js = json_object_new_array ();
  for (int i = 0; i < n_steps; i++)
    json_object_array_add (js, json_object_new_int (steps[i]));
  json_object_object_add (o, "steps", js);
  json_object *budget = json_object_new_array (), *alive = json_object_new_array ();
  for (int l = 0; l < L; l++)
    {
      json_object_array_add (budget,
                             json_object_new_int (lsc_kv_policy_budget (policy, L, l, n_prompt)));
      json_object *row = json_object_new_array ();
      for (int h = 0; h < H; h++)
        json_object_array_add (row, json_object_new_int (lsc_kv_log_count_alive (log, l, h)));
      json_object_array_add (alive, row);
    }
  json_object_object_add (o, "budget", budget);
  json_object_object_add (o, "alive", alive);
  if (kl != NULL)
    {
      json_object *c = json_object_new_object ();
      json_object *ja = json_object_new_array ();
      double sum = 0;
      int same = 0;
      for (int i = 0; i < n_compared; i++)
        {
          sum += kl[i];
          same += agree[i] != 0;
          json_object_array_add (ja, json_object_new_boolean (agree[i]));
        }
      json_object_object_add (c, "kl", lsc_json_doubles (kl, n_compared));
      json_object_object_add (c, "agree", ja);
      json_object_object_add (c, "mean_kl", lsc_json_double (n_compared > 0 ? sum / n_compared
                                                                            : NAN));
      json_object_object_add (c, "agreement", lsc_json_double (n_compared > 0
                                                                 ? (double) same / n_compared
                                                                 : NAN));
      json_object_object_add (o, "compare", c);
    }

  gint64 shape[3] = { L, H, N };
  gsize n = (gsize) L * H * N;
  g_autofree gint32 *evicted = g_new (gint32, MAX (n, 1));
  g_autofree float *score = g_new (float, MAX (n, 1));
  for (int l = 0; l < L; l++)
    for (int h = 0; h < H; h++)
      for (int p = 0; p < N; p++)
        {
          gsize i = ((gsize) l * H + h) * N + p;
          evicted[i] = lsc_kv_log_evicted_at (log, l, h, p);
          score[i] = lsc_kv_log_score (log, l, h, p);
        }
  g_autofree char *prefix = kv->list ? g_strdup_printf ("kv.%d.", run) : g_strdup ("kv.");
  g_autofree char *evicted_name = g_strconcat (prefix, "evicted_at", NULL);
  g_autofree char *score_name = g_strconcat (prefix, "score", NULL);
  g_autofree char *pruned_name = g_strconcat (prefix, "pruned", NULL);
  g_autofree gint32 *pruned = NULL;
  gint64 pshape[3] = { L, H, lsc_kv_log_get_head_dim (log) };
  if (policy->kind == LSC_KV_THINK)
    {
      pruned = g_new (gint32, (gsize) L * H * pshape[2]);
      for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
          for (int ch = 0; ch < pshape[2]; ch++)
            pruned[((gsize) l * H + h) * pshape[2] + ch] = lsc_kv_log_channel_pruned (log, l, h, ch);
    }
  if (!lsc_tensor_writer_add_i32 (writer, evicted_name, 3, shape, evicted)
      || !lsc_tensor_writer_add_f32 (writer, score_name, 3, shape, score)
      || (pruned != NULL && !lsc_tensor_writer_add_i32 (writer, pruned_name, 3, pshape, pruned)))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, "%s written twice", evicted_name);
      return FALSE;
    }
  return TRUE;
}
