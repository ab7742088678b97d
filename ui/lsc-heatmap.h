/* SPDX-License-Identifier: MIT
 *
 * lsc-heatmap.h: the attention heatmap widget. It shows one head's map of
 * any size: the visible region is fetched from an LscAttentionSource at no
 * more values than the screen has pixels (pyramid blocks when zoomed out,
 * exact tiles when zoomed in), rendered 1:1 into a GdkMemoryTexture (GTK 4.8
 * has no scaled-texture nodes), with token labels when cells are tall
 * enough, a hover read-out, and a colour bar.
 *
 * View state lives in an LscHeatmapModel (GTK-free). Actions: zoom.in,
 * zoom.out, zoom.reset (Ctrl + plus / minus / 0); wheel and pinch zoom
 * around the pointer, drag pans, Shift + drag selects a rectangle of cells
 * and shows its summed probability (a click clears it).
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-attention-source.h"
#include "lsc-figure.h"
#include "lsc-heatmap-model.h"

G_BEGIN_DECLS

#define LSC_TYPE_HEATMAP (lsc_heatmap_get_type ())
G_DECLARE_FINAL_TYPE (LscHeatmap, lsc_heatmap, LSC, HEATMAP, GtkWidget)

GtkWidget *lsc_heatmap_new (void);

LscHeatmapModel *lsc_heatmap_get_model (LscHeatmap *self);

/* Takes the source (may be NULL: nothing shown). labels (n_labels, copied,
 * may be NULL) are the token texts by position, for both axes. */
void lsc_heatmap_set_source (LscHeatmap *self, LscAttentionSource *source,
                             const char *const *labels, int n_labels, const char *title);
LscAttentionSource *lsc_heatmap_get_source (LscHeatmap *self);

void lsc_heatmap_set_colormap (LscHeatmap *self, LscColormap colormap);
void lsc_heatmap_set_scale_kind (LscHeatmap *self, LscScaleKind kind);

/* Whether the frame on screen was rendered for the current view (else the
 * previous one is shown moved and scaled while a worker renders it). */
gboolean lsc_heatmap_is_current (LscHeatmap *self);

/* Selects the cells between two points of the plot area (pixels from its
 * top-left corner), as Shift + drag does, and starts summing their
 * probability on a worker thread; FALSE when no cell is inside. */
gboolean lsc_heatmap_select (LscHeatmap *self, double x0, double y0, double x1, double y1);
/* The selection's summed probability, once computed. */
gboolean lsc_heatmap_get_selection_mass (LscHeatmap *self, double *mass);

/* Writes the visible region as a figure (ui/figures, the batch renderer);
 * the format comes from the extension (.png, .svg, .pdf). */
gboolean lsc_heatmap_export (LscHeatmap *self, const char *path, GError **error);

G_END_DECLS
