/* SPDX-License-Identifier: MIT
 *
 * lsc-head-grid.h: the layers x heads overview of per-head statistics, one
 * coloured cell per head; clicking a cell emits "head-activated". The SSM
 * view shows layers x channels in it the same way (lsc_head_grid_set_channels).
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-attention.h"

G_BEGIN_DECLS

typedef enum {
  LSC_HEAD_STAT_ENTROPY,
  LSC_HEAD_STAT_SINK_MASS,
  LSC_HEAD_STAT_MAX_PROB,
  LSC_HEAD_STAT_MEAN_DISTANCE,
} LscHeadStat;

#define LSC_TYPE_HEAD_GRID (lsc_head_grid_get_type ())
G_DECLARE_FINAL_TYPE (LscHeadGrid, lsc_head_grid, LSC, HEAD_GRID, GtkWidget)

GtkWidget *lsc_head_grid_new (void);
/* stats (n_layers * n_heads, copied; NULL clears). */
void lsc_head_grid_set_stats (LscHeadGrid *self, const LscHeadStats *stats, int n_layers, int n_heads);
void lsc_head_grid_set_stat (LscHeadGrid *self, LscHeadStat stat);
/* Arbitrary per-head values instead of statistics: values (n_layers *
 * n_heads, layer-major, copied; NaN cells are grey; NULL clears), coloured
 * from their minimum to their maximum, or from 0 when none is negative;
 * `name` labels them in the tooltip ("Retrieval score 0.923").
 * Example: lsc_head_grid_set_values (grid, scores, 2, 4, _("Retrieval score")). */
void lsc_head_grid_set_values (LscHeadGrid *self, const double *values, int n_layers, int n_heads,
                               const char *name);
/* The cell outlined; head -1 outlines the whole layer's row, layer -1 none. */
void lsc_head_grid_set_selected (LscHeadGrid *self, int layer, int head);
/* The values of lsc_head_grid_set_values () (NULL, 0 x 0 when none: also
 * while statistics are shown). */
const double *lsc_head_grid_get_values (LscHeadGrid *self, int *n_layers, int *n_heads);
/* Cell size in pixels, 26 x 26 by default; below 4 pixels cells have no
 * gap between them, and column numbers thin out to stay readable. */
void lsc_head_grid_set_cell_size (LscHeadGrid *self, double width, double height);
/* TRUE: the columns are SSM channels, not heads (the tooltips say so). */
void lsc_head_grid_set_channels (LscHeadGrid *self, gboolean channels);

G_END_DECLS
