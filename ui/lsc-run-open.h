/* SPDX-License-Identifier: MIT
 *
 * lsc-run-open.h: saved results back into the views, GTK-free. A results
 * folder (or its results.json) written by a batch job, by the window's
 * Export Run or by a sweep's merge is read as:
 *
 *   - a run (results.json with "prompt_tokens" and "tokens"): an LscRun, as
 *     if it had just finished in the window: tokens, text, log-probabilities,
 *     timings, the job's settings, the per-head statistics (attn.stats.*)
 *     and, when it was saved with its store ("capture": {"store": true},
 *     always with Export Run), the attention store itself, so the Attention
 *     and Experiments views recompute exact tiles as for a live run; a run
 *     under a KV policy ("kv", the first policy of a list) with the
 *     policy's log (kv.evicted_at, kv.score and "steps") and its comparison
 *     with the full cache, for the KV Cache view (lsc_run_get_kv ());
 *   - a retrieval-head detection ("retrieval"): for the Retrieval Heads view
 *     (lsc_retrieval_detection_load ()).
 *
 * The run needs its model for token labels: lsc_results_info_read () says
 * which model made the results, and lsc_run_open () checks that the given
 * model has the same shape ($.model: vocab_size, dim, n_layers, n_heads,
 * n_kv_heads, head_dim). Errors name the file and the JSON path or tensor:
 * "/r/results.json: $.tokens[3]: expected a token id in [0, 100), found 512".
 *
 * Example:
 *
 *   LscResultsInfo info;
 *   if (lsc_results_info_read ("copy-head-results", &info, &error) && info.is_run)
 *     {
 *       // load info.model_path as the window does, then:
 *       LscRun *run = lsc_run_open (loaded, info.results_path, &error);
 *     }
 *   lsc_results_info_clear (&info);
 */
#pragma once

#include "lsc-run.h"

G_BEGIN_DECLS

typedef struct {
  char *results_path;    /* .../results.json */
  char *dir;             /* the folder holding it */
  char *model_path;      /* the model that made them: $.provenance.model_path (or $.job.model) */
  gboolean is_run;       /* a prompt run: "prompt_tokens" and "tokens" */
  gboolean is_retrieval; /* a retrieval-head detection: "retrieval" */
  gboolean has_store;    /* the attention store was saved with it */
  char *status;          /* $.status: "done", "interrupted" or "failed" */
} LscResultsInfo;

/* path: a results folder or a results.json file. Fails (G_IO_ERROR, or
 * LSC_JOB_ERROR for malformed JSON) naming the file when there is no
 * results.json, it is not a Longscope result (no $.schema_version 1), or it
 * holds neither a run nor a detection. */
gboolean lsc_results_info_read (const char *path, LscResultsInfo *info, GError **error);
void lsc_results_info_clear (LscResultsInfo *info);

/* The run saved at path, for `model` (which must have the results' shape). */
LscRun *lsc_run_open (LscLoadedModel *model, const char *path, GError **error);

/* The results folder of a run opened with lsc_run_open (), NULL for a run
 * made in this session. */
const char *lsc_run_get_source (LscRun *run);

/* The job of an opened run, as saved in its results ($.job), pretty JSON. */
const char *lsc_run_get_saved_job (LscRun *run);

G_END_DECLS
