/* SPDX-License-Identifier: MIT
 *
 * lsc-attention-view.h: the Attention view: layer/head pickers, colour map
 * and scale, the heatmap, the layers x heads statistics overview and small
 * maps of every head of the shown layer.
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-head-maps.h"
#include "lsc-heatmap.h"
#include "lsc-run.h"

G_BEGIN_DECLS

#define LSC_TYPE_ATTENTION_VIEW (lsc_attention_view_get_type ())
G_DECLARE_FINAL_TYPE (LscAttentionView, lsc_attention_view, LSC, ATTENTION_VIEW, GtkWidget)

/* settings: (nullable) keys "colormap" and "scale" are followed and kept. */
void lsc_attention_view_set_settings (LscAttentionView *self, GSettings *settings);
/* A finished run (NULL clears); shows layer 0, head 0. */
void lsc_attention_view_set_run (LscAttentionView *self, LscRun *run);
void lsc_attention_view_show_head (LscAttentionView *self, int layer, int head);
LscHeatmap *lsc_attention_view_get_heatmap (LscAttentionView *self);
LscHeadMaps *lsc_attention_view_get_head_maps (LscAttentionView *self);

G_END_DECLS
