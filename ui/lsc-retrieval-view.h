/* SPDX-License-Identifier: MIT
 *
 * lsc-retrieval-view.h: the Retrieval Heads view: a small form (needle,
 * question, answer, context lengths, number of depths; defaults from
 * lsc_retrieval_run_params_init for the model), Detect / Cancel, which runs
 * lsc_retrieval_detect_async on a worker thread with progress text, then the
 * layers x heads grid of retrieval scores (LscHeadGrid) and the ten best
 * heads ("layer L, head H: 0.923"). Without a model, or before Detect, it
 * says what to do.
 *
 * A detection saved by a batch job shows with
 * lsc_retrieval_view_show_detection (); the scores export as the job's
 * "retrieval_scores" figure (lsc_retrieval_view_export).
 *
 * Signal "head-activated" (int layer, int head) -> gboolean: a click on a
 * head in the grid or the list. A handler returns TRUE when it opened the
 * head elsewhere (the window: in the Attention view, when its last run
 * captured attention); when none does, the view reports the head itself.
 *
 * Example:
 *
 *   LscRetrievalView *view = ...;            // from a template
 *   lsc_retrieval_view_set_model (view, loaded);
 *   lsc_retrieval_view_detect (view);        // as the Detect button
 *   // later: lsc_retrieval_view_get_top_head (view, &layer, &head, &score)
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-loaded-model.h"
#include "lsc-retrieval-run.h"

G_BEGIN_DECLS

#define LSC_TYPE_RETRIEVAL_VIEW (lsc_retrieval_view_get_type ())
G_DECLARE_FINAL_TYPE (LscRetrievalView, lsc_retrieval_view, LSC, RETRIEVAL_VIEW, GtkWidget)

/* The model detection runs on (NULL: none). Cancels a running detection,
 * clears the results and resets the form to the model's defaults. */
void lsc_retrieval_view_set_model (LscRetrievalView *self, LscLoadedModel *model);
/* Starts detection with the form's settings, as the Detect button; does
 * nothing without a model or while one runs. Errors show in the view. */
void lsc_retrieval_view_detect (LscRetrievalView *self);
void lsc_retrieval_view_cancel (LscRetrievalView *self);
/* TRUE while detection runs ("busy" is notified). */
gboolean lsc_retrieval_view_get_busy (LscRetrievalView *self);
/* The last finished detection, or NULL. */
const LscRetrievalDetection *lsc_retrieval_view_get_detection (LscRetrievalView *self);
/* The best head of the last detection; FALSE when there is none (no
 * detection, or no sample passed). layer, head, score may be NULL. */
gboolean lsc_retrieval_view_get_top_head (LscRetrievalView *self, int *layer, int *head,
                                          double *score);
/* The text of the n-th row of the ranked list (0 = best), or NULL. */
const char *lsc_retrieval_view_get_row_text (LscRetrievalView *self, int n);
/* The status line under Detect: what to do, progress, a summary, an error
 * or the head clicked. */
const char *lsc_retrieval_view_get_status (LscRetrievalView *self);
/* As a click on a head: emits "head-activated" when the detection is of
 * the open model (a saved one may be of another: then the view reports the
 * head's score). */
void lsc_retrieval_view_activate_head (LscRetrievalView *self, int layer, int head);
/* Shows a saved detection (e.g. from lsc_retrieval_detection_load ()) as if
 * it had been run here: the grid, the ranked list, and the status line
 * naming the model it was detected on and `source_label` (where it came
 * from, e.g. the results.json path) before the summary. Cancels a running
 * detection. Takes ownership of `detection`. */
void lsc_retrieval_view_show_detection (LscRetrievalView *self,
                                        LscRetrievalDetection *detection,
                                        const char *source_label);
/* TRUE when there are scores to export: a detection where some sample
 * passed the recall filter ("can-export" is notified). */
gboolean lsc_retrieval_view_can_export (LscRetrievalView *self);
/* Writes the scores as the figure a batch job draws for {"kind":
 * "retrieval_scores"} with its defaults (viridis, linear, 150 dpi; title
 * and labels in English): for the same detection, SVG and PDF are the
 * job's file byte for byte. The extension of `path` picks PNG, SVG or PDF.
 * Fails with LSC_FIGURE_ERROR_NO_DATA without scores, else as
 * lsc_figure_save (). */
gboolean lsc_retrieval_view_export (LscRetrievalView *self, const char *path, GError **error);

G_END_DECLS
