/* SPDX-License-Identifier: MIT
 *
 * lsc-head-maps.h: small maps of every head of one layer, side by side, so
 * that heads with a structure (diagonals, sinks, copy stripes) stand out at
 * a glance; clicking one emits "head-activated" (layer, head).
 *
 * Each head's pyramid is built on a worker thread, one head after the
 * other, and its whole map drawn from the pyramid level that fits the
 * thumbnail (block maxima, scaled 0 .. the head's largest value). The
 * sources are kept: the attention view opens a clicked head without
 * building its pyramid again (lsc_head_maps_get_source ()).
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-attention-source.h"
#include "lsc-figure.h"

G_BEGIN_DECLS

#define LSC_TYPE_HEAD_MAPS (lsc_head_maps_get_type ())
G_DECLARE_FINAL_TYPE (LscHeadMaps, lsc_head_maps, LSC, HEAD_MAPS, GtkWidget)

GtkWidget *lsc_head_maps_new (void);

/* Shows heads [0, n_heads) of `layer` of the store (NULL clears); owner
 * keeps the store alive (see lsc_attention_source_new ()). */
void lsc_head_maps_set_layer (LscHeadMaps *self, const LscAttentionStore *store, GObject *owner,
                              int layer, int n_heads);
void lsc_head_maps_set_colormap (LscHeadMaps *self, LscColormap colormap);
void lsc_head_maps_set_selected (LscHeadMaps *self, int head);
/* The source of a head once its thumbnail is built, else NULL (transfer none). */
LscAttentionSource *lsc_head_maps_get_source (LscHeadMaps *self, int layer, int head);
/* Heads whose thumbnails are ready. */
int lsc_head_maps_get_n_ready (LscHeadMaps *self);

G_END_DECLS
