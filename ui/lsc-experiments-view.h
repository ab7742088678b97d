/* SPDX-License-Identifier: MIT
 *
 * lsc-experiments-view.h: the Experiments view, an A/B comparison of the
 * two last finished runs of the same model (A the earlier, B the later):
 * layer and head pickers, a map of B - A attention probabilities of that
 * head over the rows both runs captured (RdBu_r: blue where B attends less,
 * red where more, white equal; symmetric around 0 at the largest |Δp|), a
 * summary (max |Δp| and where, mean |Δp|, Δ mean log-probability), and
 * both runs' generated tokens with their log-probabilities side by side.
 * The numbers come from lsc_run_compare (lsc-run-compare.h).
 *
 * With fewer than two runs, or runs without capture, or runs of different
 * models, the summary says so (and what to do) and the map is empty. The
 * map exports as a figure (lsc_experiments_view_export).
 *
 * Example:
 *
 *   LscExperimentsView *v = g_object_new (LSC_TYPE_EXPERIMENTS_VIEW, NULL);
 *   lsc_experiments_view_set_runs (v, run_a, run_b);
 *   lsc_experiments_view_set_head (v, 1, 2);
 *   const LscRunCompare *c = lsc_experiments_view_get_compare (v);   // c->max_abs ...
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-run-compare.h"
#include "lsc-run.h"

G_BEGIN_DECLS

#define LSC_TYPE_EXPERIMENTS_VIEW (lsc_experiments_view_get_type ())
G_DECLARE_FINAL_TYPE (LscExperimentsView, lsc_experiments_view, LSC, EXPERIMENTS_VIEW, GtkWidget)

/* The runs to compare (either may be NULL: fewer than two runs). Keeps the
 * shown (layer, head) where both runs have it, else shows (0, 0). */
void lsc_experiments_view_set_runs (LscExperimentsView *self, LscRun *a, LscRun *b);
/* Shows (layer, head), clamped to the model's. */
void lsc_experiments_view_set_head (LscExperimentsView *self, int layer, int head);
void lsc_experiments_view_get_head (LscExperimentsView *self, int *layer, int *head);
/* The comparison shown, or NULL (no two comparable runs). */
const LscRunCompare *lsc_experiments_view_get_compare (LscExperimentsView *self);
/* The summary line: the numbers, or why there are none and what to do. */
const char *lsc_experiments_view_get_summary (LscExperimentsView *self);
/* TRUE when there is a difference map to export ("can-export" is notified). */
gboolean lsc_experiments_view_can_export (LscExperimentsView *self);
/* Writes the B - A map shown as a figure (ui/figures' heatmap: RdBu_r,
 * symmetric around 0 at the largest |Δp| as in the view, positions on the
 * axes, titled with the layer and head); the extension of `path` picks
 * PNG, SVG or PDF. Fails with LSC_FIGURE_ERROR_NO_DATA, the summary saying
 * why, when there is no map (fewer than two runs, runs without capture or
 * of different models), else as lsc_figure_save (). */
gboolean lsc_experiments_view_export (LscExperimentsView *self, const char *path,
                                      GError **error);

G_END_DECLS
