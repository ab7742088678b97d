/* SPDX-License-Identifier: MIT
 *
 * A finished run as a batch job and as batch results. The job is built here
 * (the keys of README "Batch jobs", schema version 1); results.json and
 * tensors.safetensors are written by the engine's batch code
 * (lsc_batch_write_record), so they are what `longscope --batch` writes.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-batch.h"
#include "lsc-demo.h"
#include "lsc-json.h"
#include "lsc-run-export.h"
#include "lsc-run-open.h"

/* The largest integer a job holds exactly (2^53 - 1, as lsc-batch.c checks). */
#define MAX_JOB_INT 9007199254740991.0

/* The job's "kv" section of a run under a KV policy:
 * {"policy": name, its parameters, "chunk", "compare"}. */
static json_object *
kv_to_job (const LscRunParams *p)
{
  json_object *kv = lsc_batch_kv_policy_to_json (&p->kv_policy, "policy");
  json_object_object_add (kv, "chunk", json_object_new_int (p->kv_chunk));
  json_object_object_add (kv, "compare", json_object_new_boolean (p->kv_compare));
  return kv;
}

static json_object *
run_to_job (LscRun *run, GError **error)
{
  g_return_val_if_fail (LSC_IS_RUN (run), NULL);
  if (lsc_run_get_saved_job (run) != NULL)   /* opened from results: the job that made them */
    return json_tokener_parse (lsc_run_get_saved_job (run));
  const LscSession *session = lsc_run_get_session (run);
  if (session == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED,
                           "the run has not finished");
      return NULL;
    }
  const LscRunParams *p = lsc_run_get_params (run);
  LscLoadedModel *model = lsc_run_get_model (run);
  if ((double) p->seed > MAX_JOB_INT)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "seed %" G_GUINT64_FORMAT " is larger than a job can hold (2^53 - 1)", p->seed);
      return NULL;
    }
  /* built-in demo models are names; files are named absolutely, so that the
   * job runs from any folder */
  const char *path = lsc_loaded_model_get_path (model);
  g_autofree char *model_path = lsc_demo_match_path (path) != NULL
                                    ? g_strdup (path) : g_canonicalize_filename (path, NULL);
  LscTokenizer *tok = lsc_loaded_model_get_tokenizer (model);

  json_object *job = json_object_new_object ();
  json_object_object_add (job, "schema_version", json_object_new_int (1));
  json_object_object_add (job, "model", json_object_new_string (model_path));
  json_object_object_add (job, "backend",
                          json_object_new_string (lsc_backend_name (p->backend)));
  json_object_object_add (job, "threads", json_object_new_int (p->n_threads));
  json_object_object_add (job, "n_ctx", json_object_new_int (lsc_session_get_params (session)->n_ctx));
  json_object_object_add (job, "prompt", json_object_new_string (p->prompt));
  json_object_object_add (job, "bos", json_object_new_boolean (lsc_tokenizer_get_bos (tok) >= 0));
  json_object_object_add (job, "max_tokens", json_object_new_int (p->max_tokens));
  json_object_object_add (job, "temperature", lsc_json_float_short (p->temperature));
  json_object_object_add (job, "seed", json_object_new_int64 ((gint64) p->seed));
  /* a Mamba model's run recorded Δ of every layer: the job's "ssm" section
   * with its defaults does the same */
  if (lsc_run_get_ssm (run) != NULL)
    json_object_object_add (job, "ssm", json_object_new_object ());
  else if (lsc_run_get_kv (run) != NULL)
    /* under a KV policy the run captured nothing: the job's "kv" section
     * runs the same policy on the same cache */
    json_object_object_add (job, "kv", kv_to_job (p));
  else if (p->capture)
    {
      /* what the run captured and computed: every row, statistics with its
       * sink, and the store itself, so that the results reopen in the views */
      json_object *capture = json_object_new_object ();
      json_object_object_add (capture, "rows", json_object_new_string ("all"));
      json_object_object_add (capture, "stats", json_object_new_boolean (TRUE));
      json_object_object_add (capture, "sink_tokens", json_object_new_int (LSC_RUN_SINK_TOKENS));
      json_object_object_add (capture, "store", json_object_new_boolean (TRUE));
      json_object_object_add (job, "capture", capture);
    }
  if (lsc_plugin_stack_get_size (p->plugins) > 0)
    json_object_object_add (job, "plugins", lsc_plugin_stack_to_json (p->plugins));
  return job;
}

static const char *
job_text (json_object *job)
{
  return json_object_to_json_string_ext (job, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
                                                  | JSON_C_TO_STRING_NOSLASHESCAPE);
}

char *
lsc_run_dup_job (LscRun *run, GError **error)
{
  g_autoptr(json_object) job = run_to_job (run, error);
  return job != NULL ? g_strdup (job_text (job)) : NULL;
}

gboolean
lsc_run_save_job (LscRun *run, const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_autoptr(json_object) job = run_to_job (run, error);
  if (job == NULL)
    return FALSE;
  /* the writer of batch results: a temporary file beside path, then rename */
  return lsc_json_write_file (job, path, error);
}

gboolean
lsc_run_export (LscRun *run, const char *dir, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  if (lsc_run_get_source (run) != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "the run was opened from %s, where its results are", lsc_run_get_source (run));
      return FALSE;
    }
  g_autoptr(json_object) job = run_to_job (run, error);
  if (job == NULL)
    return FALSE;

  int n_tokens, n_prompt, n_logprobs;
  const gint32 *tokens = lsc_run_get_tokens (run, &n_tokens, &n_prompt);
  const double *logprobs = lsc_run_get_logprobs (run, &n_logprobs);
  LscLoadedModel *model = lsc_run_get_model (run);
  LscBatchRecord r = {
    .job_json = job_text (job),
    .job_name = "the run's job",
    .model = lsc_loaded_model_get_model (model),
    .tokenizer = lsc_loaded_model_get_tokenizer (model),
    .session = lsc_run_get_session (run),
    .prompt = tokens,
    .n_prompt = n_prompt,
    .generated = tokens + n_prompt,
    .n_generated = n_tokens - n_prompt,
    .logprobs = n_logprobs == n_tokens - n_prompt ? logprobs : NULL,
    /* computed with LSC_RUN_SINK_TOKENS over every captured row, as the job says */
    .head_stats = lsc_run_get_head_stats (run, NULL, NULL),
  };
  /* the policy's log is the session's; its comparison, the run's */
  lsc_run_get_kv_comparison (run, &r.kv_kl, &r.kv_agree, &r.kv_n_compared);
  lsc_run_get_timings (run, &r.prefill_s, &r.decode_s, &r.total_s);
  return lsc_batch_write_record (&r, dir, error);
}
