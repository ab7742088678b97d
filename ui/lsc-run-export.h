/* SPDX-License-Identifier: MIT
 *
 * lsc-run-export.h: a finished run as files, in the formats of batch jobs
 * (README, "Batch jobs"). GTK-free.
 *
 * lsc_run_save_job writes the job that reproduces the run: the model's
 * absolute path (or demo:induction), the prompt, "bos", "max_tokens",
 * "temperature", "seed", "threads", "n_ctx", "backend" (the run's choice:
 * "auto", "cpu" or "cuda"), and, when the run captured attention,
 * "capture": {"rows": "all", "stats": true, "sink_tokens":
 * LSC_RUN_SINK_TOKENS}; for a run under a KV policy (which captures
 * nothing), "kv": {"policy": name, the policy's parameters, "chunk",
 * "compare"} instead. `longscope --batch job.json` then generates the same
 * tokens (greedy, or sampled with the same seed): the run computes as a
 * batch job does.
 *
 * lsc_run_export writes DIR/results.json (with that job in "job") and,
 * with capture, DIR/tensors.safetensors (attn.stats.* [n_layers, n_heads]
 * F32; under a KV policy "kv" in results.json and kv.evicted_at, kv.score
 * in the tensors), as `longscope --batch job.json --output DIR` writes them
 * and with the same engine code (lsc_batch_write_record).
 *
 * JSON files are written atomically (a temporary file, then rename).
 * Errors name the file or folder.
 *
 * Example:
 *
 *   g_autoptr(GError) error = NULL;
 *   if (!lsc_run_save_job (run, "/home/me/copy-head.json", &error)
 *       || !lsc_run_export (run, "/home/me/copy-head-results", &error))
 *     g_printerr ("%s\n", error->message);
 */
#pragma once

#include "lsc-run.h"

G_BEGIN_DECLS

/* The job as JSON text (pretty, without a final newline), or NULL with
 * G_IO_ERROR_NOT_INITIALIZED before the run has finished. */
char *lsc_run_dup_job (LscRun *run, GError **error);

/* Writes the job to path (a file, replaced if it exists). */
gboolean lsc_run_save_job (LscRun *run, const char *path, GError **error);

/* Writes results.json and tensors.safetensors into dir, created when
 * missing; other files in it are left alone. */
gboolean lsc_run_export (LscRun *run, const char *dir, GError **error);

G_END_DECLS
