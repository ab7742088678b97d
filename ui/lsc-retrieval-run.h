/* SPDX-License-Identifier: MIT
 *
 * lsc-retrieval-run.h: retrieval-head detection for the window's Retrieval
 * Heads view: a needle-in-a-haystack grid (needle x context lengths x
 * depths) run with lsc_retrieval_run () and summarised with
 * lsc_retrieval_summarize (), as the "retrieval" section of a batch job
 * does (engine/lsc-batch-retrieval.c), without files. GTK-free.
 *
 * The grid is one needle, context lengths L_0..L_{n-1} and n_depths depths
 * round(linspace (0, 100, n_depths)) % (a batch job's {"min": 0, "max": 100,
 * "n": n_depths}), in that order: n_lengths * n_depths samples, each one
 * greedy generation with capture of the decode rows. Samples whose answer is
 * not recalled (ROUGE-1 recall <= recall_threshold) do not count; a head's
 * score is its mean over the passing samples.
 *
 * Defaults (lsc_retrieval_run_params_init) follow the model: for
 * demo:induction the demo batch job's grid (data/demo-job.json: the needle
 * "\n#7KZ9 X4W8 M2P6%\n", data/demo-haystack.txt, lengths 200 and 400, 3
 * depths, buffer 64, cue 3, 24 new tokens), where the copy head (layer 1,
 * head 2) scores 12/13 in every sample; for other models the reference's
 * San Francisco needle in data/haystack.txt, lengths 1000 and 2000, 5
 * depths, buffer 200, no cue, 50 new tokens.
 *
 * Example:
 *
 *   LscRetrievalRunParams p;
 *   lsc_retrieval_run_params_init (&p, loaded);
 *   p.n_depths = 2;
 *   g_autoptr(LscRetrievalDetection) d = lsc_retrieval_detect (loaded, &p, NULL, NULL,
 *                                                              cancellable, &error);
 *   // d->ranking[0] / d->n_heads is the best head's layer, d->scores[d->ranking[0]] its score
 *
 * A batch job's saved detection reads back into the same struct:
 *
 *   g_autoptr(LscRetrievalDetection) saved =
 *     lsc_retrieval_detection_load ("demo-results/results.json", &error);
 */
#pragma once

#include <gio/gio.h>

#include "lsc-loaded-model.h"

G_BEGIN_DECLS

#define LSC_RETRIEVAL_RUN_MAX_LENGTHS 16

typedef struct {
  const char *needle;         /* the sentence inserted into the haystack */
  const char *question;
  const char *answer;         /* what a correct response recalls */
  const char *haystack_file;  /* UTF-8 text */
  int context_lengths[LSC_RETRIEVAL_RUN_MAX_LENGTHS];   /* tokens, >= 1 */
  int n_lengths;              /* 1 .. LSC_RETRIEVAL_RUN_MAX_LENGTHS */
  int n_depths;               /* >= 1: depths round(linspace (0, 100, n_depths)) */
  int buffer_tokens;
  int cue_tokens;
  int max_tokens;             /* new tokens per sample */
  double recall_threshold;    /* 0.5: a sample passes when its recall is above it */
  double score_threshold;     /* 0.1: a head above it is a retrieval head */
  int n_threads;              /* 0: all cores */
} LscRetrievalRunParams;

/* The defaults above for `model` (NULL: those of a non-demo model). The
 * strings are static, haystack_file is owned by the library (kept for the
 * process). */
void lsc_retrieval_run_params_init (LscRetrievalRunParams *params, LscLoadedModel *model);

/* The depth of grid column i of n (percent). */
double lsc_retrieval_run_depth (int i, int n_depths);

typedef struct {
  int n_layers, n_heads;
  int n_samples;              /* samples run: n_lengths * n_depths */
  int n_passed;               /* samples that passed the recall filter */
  double mean_recall;         /* over all samples */
  double *scores;             /* (n_layers * n_heads) layer-major mean score; NAN when none passed */
  int *ranking;               /* (n_layers * n_heads) head indices (layer * n_heads + head), best first */
  int n_above;                /* heads scored above score_threshold */
  double score_threshold;
  char *warning;              /* (nullable) about the prompt, e.g. no chat template found */
  char *model_path;           /* (nullable) the model detected on, as lsc_model_get_path () and a
                               * batch job's provenance.model_path name it */
} LscRetrievalDetection;

void lsc_retrieval_detection_free (LscRetrievalDetection *detection);

/* The detection a retrieval batch job wrote to results.json (its
 * "retrieval" section, with "model" and "provenance"), as
 * lsc_retrieval_detect () returns it for the same grid: n_layers and
 * n_heads from $.model; n_samples, n_passed, mean_recall (null: NaN),
 * score_threshold and scores ([n_layers][n_heads], null: NaN; null as a
 * whole when no sample passed: all NaN) from $.retrieval; the ranking
 * recomputed from the scores with lsc_retrieval_rank () and n_above counted
 * from them (the file's "ranking" and "n_heads_above_threshold" are not
 * read); warning: $.retrieval.warnings joined by newlines, NULL when empty;
 * model_path: $.provenance.model_path, NULL when absent.
 *
 * Errors: G_IO_ERROR_NOT_FOUND ("FILE: no such file") or the code of
 * another read failure; G_IO_ERROR_INVALID_DATA, naming the file and the
 * JSON path, for text that is not JSON, a file without a "retrieval"
 * section ("FILE: $.retrieval: missing (not a retrieval result)"), a field
 * of the wrong type or range ("FILE: $.retrieval.scores[1][2]: expected a
 * number or null, found \"a\"") and scores whose shape is not
 * model.n_layers x model.n_heads. */
LscRetrievalDetection *lsc_retrieval_detection_load (const char *results_json_path,
                                                     GError **error);

/* Called before each sample (done of total) on the thread that runs the
 * detection. */
typedef void (*LscRetrievalProgressFunc) (int done, int total, gpointer user_data);

/* Runs the grid on the calling thread. Errors: the haystack cannot be read
 * or is not UTF-8, a context length leaves no room for the haystack
 * (LSC_RUN_ERROR_UNSUPPORTED), G_IO_ERROR_INVALID_ARGUMENT for empty texts
 * or grids, G_IO_ERROR_CANCELLED when cancellable is cancelled (checked per
 * layer and decode step). */
LscRetrievalDetection *lsc_retrieval_detect (LscLoadedModel *model,
                                             const LscRetrievalRunParams *params,
                                             LscRetrievalProgressFunc progress,
                                             gpointer progress_data, GCancellable *cancellable,
                                             GError **error);

/* The same on a worker thread (params deep-copied). progress, when not NULL,
 * is called on the caller's thread-default main context (coalesced; never
 * after _finish nor once cancellable is cancelled). */
void lsc_retrieval_detect_async (LscLoadedModel *model, const LscRetrievalRunParams *params,
                                 LscRetrievalProgressFunc progress, gpointer progress_data,
                                 GCancellable *cancellable, GAsyncReadyCallback callback,
                                 gpointer user_data);
LscRetrievalDetection *lsc_retrieval_detect_finish (GAsyncResult *result, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscRetrievalDetection, lsc_retrieval_detection_free)

G_END_DECLS
