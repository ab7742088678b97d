/* SPDX-License-Identifier: MIT
 *
 * lsc-attention-source.h: what a heatmap shows of one captured attention
 * head, GTK-free: the pooled pyramid for overviews and exact tiles for the
 * visible region, at no more values than the screen has pixels.
 *
 * Cells are (row, col) with row = query position - row_start (captured rows
 * only) and col = key position. A fetch returns a grid of values, each the
 * exact probability of one cell (block 1) or the block max of block x block
 * cells from the pyramid, whichever is the finest that fits in max_values.
 *
 * Example:
 *
 *   LscAttentionSource *src = lsc_attention_source_new (store, owner, 1, 2, &error);
 *   LscAttentionGrid *g = lsc_attention_source_fetch (src, 0, 100, 0, 100, 800 * 600, &error);
 *   float p = lsc_attention_grid_value (g, 10, 3);
 *   lsc_attention_grid_free (g);
 *   lsc_attention_source_unref (src);
 */
#pragma once

#include <gio/gio.h>

#include "lsc-attention.h"

G_BEGIN_DECLS

typedef struct {
  int block;       /* cells per side of one value: 1 exact, else a pyramid block */
  int r0, c0;      /* the first cell covered (multiples of block) */
  int rows, cols;  /* values */
  float *values;   /* (rows, cols); NAN where no key is visible */
} LscAttentionGrid;

void lsc_attention_grid_free (LscAttentionGrid *grid);
/* The value covering cell (row, col), NAN outside the grid. */
float lsc_attention_grid_value (const LscAttentionGrid *grid, int row, int col);
/* Whether the grid covers cells [r0, r1) x [c0, c1) at this block size. */
gboolean lsc_attention_grid_covers (const LscAttentionGrid *grid, int r0, int r1, int c0, int c1);

typedef struct _LscAttentionSource LscAttentionSource;

/* Builds the head's pyramid (one streaming pass). The store must stay valid
 * while the source lives: owner (may be NULL) is referenced for that. */
LscAttentionSource *lsc_attention_source_new (const LscAttentionStore *store, GObject *owner,
                                              int layer, int head, GError **error);
/* The same on a worker thread (a 16k-token head takes about a second). */
void lsc_attention_source_new_async (const LscAttentionStore *store, GObject *owner, int layer,
                                     int head, GCancellable *cancellable,
                                     GAsyncReadyCallback callback, gpointer user_data);
LscAttentionSource *lsc_attention_source_new_finish (GAsyncResult *result, GError **error);
/* Sources are immutable and reference-counted (atomically): fetches may run
 * on worker threads while the UI lets go of the source. */
LscAttentionSource *lsc_attention_source_ref (LscAttentionSource *src);
void lsc_attention_source_unref (LscAttentionSource *src);

int lsc_attention_source_get_layer (const LscAttentionSource *src);
int lsc_attention_source_get_head (const LscAttentionSource *src);
int lsc_attention_source_get_rows (const LscAttentionSource *src);
int lsc_attention_source_get_cols (const LscAttentionSource *src);
int lsc_attention_source_get_row_start (const LscAttentionSource *src);
/* The finest pyramid level's block maxima, n values: a sample of the whole
 * map for building colour scales. */
const float *lsc_attention_source_get_overview (const LscAttentionSource *src, gsize *n);

/* Cells [r0, r1) x [c0, c1) at the finest resolution with at most
 * max_values values (exact when the region itself has no more cells). */
LscAttentionGrid *lsc_attention_source_fetch (const LscAttentionSource *src, int r0, int r1,
                                              int c0, int c1, gsize max_values, GError **error);
/* The exact probability of one cell. */
gboolean lsc_attention_source_get_prob (const LscAttentionSource *src, int row, int col,
                                        float *prob, GError **error);

/* The summed probability of cells [r0, r1) x [c0, c1): each row's share
 * of its attention on those keys, added over the rows (exact; a
 * 16k x 16k region takes about a second). */
gboolean lsc_attention_source_get_mass (const LscAttentionSource *src, int r0, int r1, int c0,
                                        int c1, double *mass, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscAttentionGrid, lsc_attention_grid_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscAttentionSource, lsc_attention_source_unref)

G_END_DECLS
