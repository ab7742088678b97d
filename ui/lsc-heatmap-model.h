/* SPDX-License-Identifier: MIT
 *
 * lsc-heatmap-model.h: the view state of a heatmap (zoom, pan, viewport),
 * GTK-free so that its arithmetic is unit-tested headless
 * (tests/test-heatmap-model.c). LscHeatmap observes it.
 *
 * Geometry: a matrix of rows x cols square cells is shown in a viewport of
 * width x height pixels. At zoom 1 the whole matrix fits (cell size
 * fit = min (width / cols, height / rows), centred); zoom z shows cells of
 * fit * z pixels. The origin is the (fractional) cell coordinate, column
 * and row, at the viewport's top-left corner; it is clamped so that the
 * matrix never leaves the viewport where it is larger than it, and centred
 * where it is smaller.
 *
 * Zoom steps are sqrt (2); zoom is clamped to [1, max], max being the zoom
 * at which a cell is LSC_HEATMAP_MAX_CELL_PX pixels (never below 1).
 *
 * Example:
 *
 *   g_autoptr(LscHeatmapModel) m = lsc_heatmap_model_new ();
 *   lsc_heatmap_model_set_data_size (m, 512, 512);
 *   lsc_heatmap_model_set_viewport (m, 800, 600);
 *   lsc_heatmap_model_zoom_at (m, G_SQRT2, 400, 300);   // around the pointer
 *   int row, col;
 *   if (lsc_heatmap_model_pixel_to_cell (m, 10, 20, &row, &col)) ...
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

#define LSC_HEATMAP_MAX_CELL_PX 64.0

#define LSC_TYPE_HEATMAP_MODEL (lsc_heatmap_model_get_type ())
G_DECLARE_FINAL_TYPE (LscHeatmapModel, lsc_heatmap_model, LSC, HEATMAP_MODEL, GObject)

LscHeatmapModel *lsc_heatmap_model_new (void);

/* Resets zoom and pan when the size changes. */
void lsc_heatmap_model_set_data_size (LscHeatmapModel *self, int rows, int cols);
int lsc_heatmap_model_get_rows (LscHeatmapModel *self);
int lsc_heatmap_model_get_cols (LscHeatmapModel *self);
/* Keeps the cell at the viewport's centre where it is. */
void lsc_heatmap_model_set_viewport (LscHeatmapModel *self, double width, double height);

double lsc_heatmap_model_get_zoom (LscHeatmapModel *self);
double lsc_heatmap_model_get_max_zoom (LscHeatmapModel *self);
gboolean lsc_heatmap_model_can_zoom_in (LscHeatmapModel *self);
gboolean lsc_heatmap_model_can_zoom_out (LscHeatmapModel *self);
/* Pixels per cell. */
double lsc_heatmap_model_get_cell_size (LscHeatmapModel *self);
/* Cell coordinate (column, row) at the viewport's top-left corner. */
void lsc_heatmap_model_get_origin (LscHeatmapModel *self, double *col, double *row);

/* Multiplies the zoom by factor (clamped) keeping the cell under the
 * viewport point (x, y) in place. */
void lsc_heatmap_model_zoom_at (LscHeatmapModel *self, double factor, double x, double y);
/* sqrt (2) steps around the viewport's centre; reset returns to zoom 1. */
void lsc_heatmap_model_zoom_in (LscHeatmapModel *self);
void lsc_heatmap_model_zoom_out (LscHeatmapModel *self);
void lsc_heatmap_model_zoom_reset (LscHeatmapModel *self);
/* Moves the content by (dx, dy) pixels (a drag to the right moves it right). */
void lsc_heatmap_model_pan (LscHeatmapModel *self, double dx, double dy);

/* Viewport pixel -> cell; FALSE outside the matrix. */
gboolean lsc_heatmap_model_pixel_to_cell (LscHeatmapModel *self, double x, double y,
                                          int *row, int *col);
/* Cell corner (row, col) -> viewport pixel (its top-left). */
void lsc_heatmap_model_cell_to_pixel (LscHeatmapModel *self, int row, int col,
                                      double *x, double *y);
/* The cells at least partly visible: rows [*r0, *r1), columns [*c0, *c1);
 * FALSE when there are none (no data or empty viewport). */
gboolean lsc_heatmap_model_get_visible (LscHeatmapModel *self, int *r0, int *r1,
                                        int *c0, int *c1);

/* Rubber-band selection: the cells at least partly inside the rectangle
 * between two viewport points (any corner order), clamped to the matrix;
 * FALSE (and no selection) when that is empty. A new data size clears it;
 * zoom and pan keep it (it is in cells). Emits "changed" when it changes. */
gboolean lsc_heatmap_model_select (LscHeatmapModel *self, double x0, double y0, double x1,
                                   double y1);
void lsc_heatmap_model_clear_selection (LscHeatmapModel *self);
/* Rows [*r0, *r1), columns [*c0, *c1); FALSE when nothing is selected. */
gboolean lsc_heatmap_model_get_selection (LscHeatmapModel *self, int *r0, int *r1, int *c0,
                                          int *c1);

G_END_DECLS
