/* SPDX-License-Identifier: MIT
 *
 * lsc-view-figure.h: the figure a view shows from an LscFigureSpec (the
 * SSM Channels and KV Cache views): the spec and the storage it points
 * into, the figure built from it, drawn into a GtkDrawingArea and exported
 * as a batch job saves the same spec.
 *
 * Example:
 *
 *   lsc_view_figure_clear (&self->shown);
 *   self->shown.cells = g_new (float, rows * cols);
 *   lsc_figure_spec_kv_layers (&self->shown.spec, log, -1, self->shown.cells,
 *                              self->shown.title);
 *   if (!lsc_view_figure_build (&self->shown, &error)) ...
 *   gtk_drawing_area_set_draw_func (area, lsc_view_figure_draw, &self->shown, NULL);
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-figure-spec.h"
#include "lsc-figure.h"

G_BEGIN_DECLS

/* lsc-figure-spec.h: the title storage the spec functions fill */
#define LSC_VIEW_FIGURE_TEXT 64

typedef struct {
  LscFigureSpec spec;         /* points into the storage below */
  float *cells;               /* (owned, nullable) a heatmap's data */
  double *x;                  /* (owned, nullable) a line's x */
  char title[LSC_VIEW_FIGURE_TEXT];
  char x_label[LSC_VIEW_FIGURE_TEXT];
  LscFigure *fig;             /* (owned, nullable) built from spec */
} LscViewFigure;

/* Frees the figure and the storage; the spec gets a job figure's defaults. */
void lsc_view_figure_clear (LscViewFigure *f);
/* fig <- the figure of spec; FALSE (error set) when it cannot be drawn. */
gboolean lsc_view_figure_build (LscViewFigure *f, GError **error);
/* A GtkDrawingAreaDrawFunc; data is the LscViewFigure. */
void lsc_view_figure_draw (GtkDrawingArea *area, cairo_t *cr, int width, int height,
                           gpointer data);
/* The spec shown, or NULL when there is no figure. */
const LscFigureSpec *lsc_view_figure_get_spec (const LscViewFigure *f);
/* Saves the spec at path as a batch job saves it; without a figure, fails
 * with LSC_FIGURE_ERROR_NO_DATA and the message `none`. */
gboolean lsc_view_figure_export (const LscViewFigure *f, const char *path, const char *none,
                                 GError **error);

G_END_DECLS
