/* SPDX-License-Identifier: MIT
 *
 * lsc-batch.h: `longscope --batch job.json`, the headless runner.
 * Returns the process exit status: 0 done, 1 runtime failure, 2 invalid job
 * or arguments, 3 model or file could not be loaded, 130 interrupted.
 *
 * Figures: the engine has no Cairo, so a job's "figures" are drawn by a
 * renderer the caller passes in (the app passes ui/figures). The engine
 * fills an LscFigureSpec (lsc-figure-spec.h) per figure with the data and
 * its labels.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "lsc-figure-spec.h"
#include "lsc-session.h"
#include "lsc-tokenizer.h"

G_BEGIN_DECLS

/* `backend`, when not NULL, replaces the job's "backend" (`longscope
 * --backend`). `figure` may be NULL: a job asking for figures then fails
 * naming them. */
int lsc_batch_run_file (const char *job_path, const char *output_dir, const LscBackend *backend,
                        LscFigureFunc figure, gpointer figure_data);

/* A run made outside the batch runner (the application's), described by
 * the job that reproduces it and what it produced. */
typedef struct {
  const char *job_json;        /* the job (JSON text): model, prompt, settings, capture */
  const char *job_name;        /* names the job in messages; NULL: "<run>" */
  const LscModel *model;       /* what the run used */
  const LscTokenizer *tokenizer;
  const LscSession *session;   /* the session after the run: backend, threads, capture store */
  const gint32 *prompt;        /* (n_prompt) the encoded prompt, BOS included */
  int n_prompt;
  const gint32 *generated;     /* (n_generated) the new tokens */
  int n_generated;
  const double *logprobs;      /* (n_generated) their log-probabilities, or NULL */
  const LscHeadStats *head_stats;  /* (n_layers * n_heads) per-head statistics already computed
                                      with the job's capture.sink_tokens, or NULL: computed
                                      from the capture store */
  double prefill_s, decode_s, total_s;   /* wall time; NaN: not measured (written as null) */
  /* a run under a KV policy (the job's "kv"): its comparison with the full
   * cache (lsc_generate_kv ()), n_compared entries, or NULL without one;
   * the session holds the policy's log */
  const double *kv_kl;
  const gboolean *kv_agree;
  int kv_n_compared;
} LscBatchRecord;

/* Writes output_dir/results.json (and output_dir/tensors.safetensors when
 * the job's capture makes arrays: statistics, pyramids, tiles) for a
 * recorded run, with the code and in the format of `longscope --batch`:
 * "job" is the job as given, "status" is "done". The folder is created when missing; files are
 * written atomically. Errors name the folder or file (G_FILE_ERROR), or the
 * job (LSC_JOB_ERROR) when it does not describe such a run.
 *
 * Example:
 *
 *   LscBatchRecord r = {
 *     .job_json = "{\"model\": \"demo:induction\", \"prompt\": \"ab ab\", \"max_tokens\": 4}",
 *     .model = model, .tokenizer = tok, .session = session,
 *     .prompt = prompt, .n_prompt = n_prompt, .generated = out, .n_generated = n_out,
 *     .prefill_s = NAN, .decode_s = NAN, .total_s = NAN,
 *   };
 *   if (!lsc_batch_write_record (&r, "run-results", &error))
 *     g_printerr ("%s\n", error->message);
 */
gboolean lsc_batch_write_record (const LscBatchRecord *record, const char *output_dir,
                                 GError **error);

/* A KV policy as JSON: {name_key: "h2o", and the parameters the policy
 * takes ("heavy": 4, "recent": 512, ...)}. A job's "kv" section names the
 * policy with "policy", results' "kv.policy" with "kind". */
json_object *lsc_batch_kv_policy_to_json (const LscKvPolicy *policy, const char *name_key);
/* Reads one back: the policy named by name_key and its parameters (the
 * defaults of lsc_kv_policy_init () for those left out). A parameter of
 * another policy, a value of the wrong type or one lsc_kv_policy_check ()
 * refuses fails with LSC_JOB_ERROR_INVALID naming `file` and the JSON path
 * (`at`, e.g. "$.kv.policy"). Other keys are the caller's to check. */
gboolean lsc_batch_kv_policy_from_json (json_object *obj, const char *name_key, const char *file,
                                        const char *at, LscKvPolicy *policy, GError **error);

G_END_DECLS
