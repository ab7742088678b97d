/* SPDX-License-Identifier: MIT
 *
 * lsc-kv-view.h: the KV Cache view of a run under an eviction policy
 * (lsc-kv.h, methods.md section 3): which tokens the policy kept and
 * dropped, and what that cost against the full cache.
 *
 *  - a summary: the policy and its parameters, the slots each layer keeps
 *    after the prompt (lsc_kv_policy_budget ()), the positions the picked
 *    layer and KV head hold at the end (lsc_kv_log_count_alive (); under
 *    ThinK, which evicts nothing, also the key channels it dropped), and,
 *    when the run was compared with the full cache, the mean KL divergence
 *    and the top-1 agreement;
 *  - one figure, drawn with the figure renderer from the batch job's spec:
 *    the picked layer and KV head's timeline (evaluations x positions,
 *    lsc_figure_spec_kv_timeline ()), every layer at the end (layers x
 *    positions, lsc_figure_spec_kv_layers (), of the picked KV head or the
 *    mean over them), or the KL divergence per new token
 *    (lsc_figure_spec_kv_kl ()). Exported, the shown figure is the batch
 *    job's "kv_timeline" / "kv_layers" / "kv_kl" figure, byte for byte.
 *
 * Without a run, or for a run that kept the full cache, it says what to do.
 *
 * Example:
 *
 *   lsc_kv_view_set_run (view, run);        // a finished run under a KV policy
 *   lsc_kv_view_set_layer (view, 2);
 *   lsc_kv_view_set_head (view, 1);
 *   lsc_kv_view_export (view, "timeline.svg", &error);
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-figure-spec.h"
#include "lsc-run.h"

G_BEGIN_DECLS

typedef enum {
  LSC_KV_FIGURE_TIMELINE,   /* one layer and KV head: evaluations x positions */
  LSC_KV_FIGURE_LAYERS,     /* layers x positions at the end of the stream */
  LSC_KV_FIGURE_KL,         /* KL(full || policy) per new token */
} LscKvFigure;

#define LSC_TYPE_KV_VIEW (lsc_kv_view_get_type ())
G_DECLARE_FINAL_TYPE (LscKvView, lsc_kv_view, LSC, KV_VIEW, GtkWidget)

/* A finished run (NULL clears). A run under a policy shows layer 0, KV
 * head 0 and its timeline; one without says why there is nothing to show.
 * "can-export" is notified when it changes. */
void lsc_kv_view_set_run (LscKvView *self, LscRun *run);
/* The text shown instead of the cache when there is none to show, or NULL
 * while it shows. */
const char *lsc_kv_view_get_status (LscKvView *self);
/* The picked layer and KV head, clamped to the model's; -1 without a log. */
void lsc_kv_view_set_layer (LscKvView *self, int layer);
int lsc_kv_view_get_layer (LscKvView *self);
void lsc_kv_view_set_head (LscKvView *self, int head);
int lsc_kv_view_get_head (LscKvView *self);
/* Whether the Layers figure is the mean over every KV head (TRUE, the
 * default) or of the picked head only. */
void lsc_kv_view_set_all_heads (LscKvView *self, gboolean all_heads);
/* The KL figure needs a comparison: asked for without one, the timeline
 * shows. */
void lsc_kv_view_set_figure (LscKvView *self, LscKvFigure figure);
LscKvFigure lsc_kv_view_get_figure (LscKvView *self);
/* The summary's lines ("" without a log): the policy ("H2O (heavy 4,
 * recent 512), the prompt at once"), the slots per layer after the prompt,
 * the picked layer and head ("Layer 1, KV head 0: 6 of 40 positions
 * cached"), and the comparison. */
const char *lsc_kv_view_get_policy_text (LscKvView *self);
const char *lsc_kv_view_get_budget_text (LscKvView *self);
const char *lsc_kv_view_get_cached_text (LscKvView *self);
const char *lsc_kv_view_get_compare_text (LscKvView *self);
/* The spec of the shown figure (its data the view's), NULL when none. */
const LscFigureSpec *lsc_kv_view_get_spec (LscKvView *self);

/* TRUE when a figure shows ("can-export" is notified). */
gboolean lsc_kv_view_can_export (LscKvView *self);
/* The file name the export dialog suggests: "kv-timeline-layer1-head0.png",
 * "kv-layers.svg" (the mean over heads), "kv-layers-head2.svg", "kv-kl.pdf"
 * ("kv.png" without a figure). */
char *lsc_kv_view_dup_export_name (LscKvView *self, const char *format);
/* Writes the shown figure (the extension of `path` picks PNG, SVG or PDF)
 * from the spec it is drawn from, as lsc_figure_save_spec () draws a batch
 * job's figure. Fails with LSC_FIGURE_ERROR_NO_DATA when nothing shows. */
gboolean lsc_kv_view_export (LscKvView *self, const char *path, GError **error);

G_END_DECLS
