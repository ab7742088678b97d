/* SPDX-License-Identifier: MIT
 *
 * lsc-ssm-view.h: the SSM Channels view of a Mamba run (methods.md section
 * 2, LongMamba): how long each channel remembers, from the Δ the run
 * recorded (lsc_run_get_ssm ()).
 *
 *  - an overview of every layer x channel (LscHeadGrid), coloured by log10
 *    of the channel's decay over the whole run (lsc_ssm_store_log_decay
 *    over rows [0, n_rows): LongMamba's tA_prod); a click picks the layer;
 *  - LongMamba's threshold c on a log scale (10^-6 .. 1, 0.05 by default)
 *    and the split it makes in the picked layer: a channel is global when
 *    its decay over the run is above c (log decay > ln c), local otherwise;
 *  - the picked layer's figure, drawn with the figure renderer: its
 *    receptive field (channels x distance from the last token,
 *    lsc_figure_spec_ssm_receptive_field ()) or its Δ raster (channels x
 *    tokens, tokens LongMamba's filter dropped masked,
 *    lsc_figure_spec_ssm_dt ()). Exported, the shown figure is the batch
 *    job's "ssm_receptive_field" / "ssm_dt" figure of that layer.
 *
 * Without a run, or for a run that recorded no Δ (a transformer, capture
 * off, saved results), it says what to do.
 *
 * Example:
 *
 *   LscSsmView *view = ...;                 // from a template
 *   lsc_ssm_view_set_run (view, run);       // a finished run of a Mamba model
 *   lsc_ssm_view_set_layer (view, 2);
 *   lsc_ssm_view_set_figure (view, LSC_SSM_FIGURE_DT);
 *   lsc_ssm_view_export (view, "dt.pdf", &error);
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-head-grid.h"
#include "lsc-run.h"

G_BEGIN_DECLS

typedef enum {
  LSC_SSM_FIGURE_RECEPTIVE_FIELD,   /* channels x distance: log10 decay from the last token */
  LSC_SSM_FIGURE_DT,                /* channels x tokens: Δ */
} LscSsmFigure;

/* LongMamba's default c: a channel is global when its decay over the
 * training length stays above it. */
#define LSC_SSM_VIEW_DEFAULT_C 0.05

#define LSC_TYPE_SSM_VIEW (lsc_ssm_view_get_type ())
G_DECLARE_FINAL_TYPE (LscSsmView, lsc_ssm_view, LSC, SSM_VIEW, GtkWidget)

/* A finished run (NULL clears). A run with a Δ store shows its first
 * recorded layer; one without says why there is nothing to show.
 * "can-export" is notified when it changes. */
void lsc_ssm_view_set_run (LscSsmView *self, LscRun *run);
/* The text shown instead of the channels when there are none to show, or
 * NULL while they show. */
const char *lsc_ssm_view_get_status (LscSsmView *self);
/* The picked layer: clamped to the recorded layers; -1 without a store. */
void lsc_ssm_view_set_layer (LscSsmView *self, int layer);
int lsc_ssm_view_get_layer (LscSsmView *self);
/* LongMamba's c, in (0, 1]; the slider shows log10 c from -6 to 0. */
void lsc_ssm_view_set_threshold (LscSsmView *self, double c);
double lsc_ssm_view_get_threshold (LscSsmView *self);
/* The global channels of the picked layer under the current c, and the
 * line saying so ("Layer 1: 37 of 128 channels global (decay over 40
 * tokens above c = 0.05)"); -1 / "" without a store. */
int lsc_ssm_view_get_n_global (LscSsmView *self);
const char *lsc_ssm_view_get_threshold_text (LscSsmView *self);
void lsc_ssm_view_set_figure (LscSsmView *self, LscSsmFigure figure);
LscSsmFigure lsc_ssm_view_get_figure (LscSsmView *self);
/* The spec of the shown figure (its data the view's), NULL when none. A
 * run longer than 2048 tokens shows in at most 2048 columns: blocks of k
 * tokens (the receptive field at distances 0, k, 2k, ..., exact; the Δ
 * raster as each block's mean of the kept Δ), the x axis saying so. */
const LscFigureSpec *lsc_ssm_view_get_spec (LscSsmView *self);
/* The layers x channels overview (its values: log10 decay, layer-major,
 * NaN for a layer not recorded). */
LscHeadGrid *lsc_ssm_view_get_head_grid (LscSsmView *self);

/* TRUE when a figure shows ("can-export" is notified). */
gboolean lsc_ssm_view_can_export (LscSsmView *self);
/* The file name the export dialog suggests: "ssm-receptive-field-layer2.png",
 * "ssm-dt-layer2.svg" ("ssm.png" without a figure). */
char *lsc_ssm_view_dup_export_name (LscSsmView *self, const char *format);
/* Writes the shown figure (the extension of `path` picks PNG, SVG or PDF)
 * from the same LscFigureSpec as it is drawn, as lsc_figure_save_spec ()
 * draws a batch job's figure. Fails with LSC_FIGURE_ERROR_NO_DATA when
 * nothing shows, else as lsc_figure_save (). */
gboolean lsc_ssm_view_export (LscSsmView *self, const char *path, GError **error);

G_END_DECLS
