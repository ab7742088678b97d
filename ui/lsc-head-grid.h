/* SPDX-License-Identifier: MIT
 *
 * lsc-head-grid.h: the layers x heads overview of per-head statistics, one
 * coloured cell per head; clicking a cell emits "head-activated".
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
void lsc_head_grid_set_selected (LscHeadGrid *self, int layer, int head);

G_END_DECLS
