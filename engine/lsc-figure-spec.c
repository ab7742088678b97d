/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>

#include "lsc-figure-spec.h"

void
lsc_figure_spec_init (LscFigureSpec *spec)
{
  g_return_if_fail (spec != NULL);
  memset (spec, 0, sizeof *spec);
  spec->dpi = 150;
  spec->colormap = "viridis";
  spec->scale = "linear";
}

void
lsc_figure_spec_retrieval_scores (LscFigureSpec *spec, const double *scores, int n_layers,
                                  int n_heads, float *cells)
{
  g_return_if_fail (spec != NULL);
  g_return_if_fail (scores != NULL && cells != NULL);
  g_return_if_fail (n_layers > 0 && n_heads > 0);
  for (gsize i = 0; i < (gsize) n_layers * n_heads; i++)
    cells[i] = (float) scores[i];
  spec->kind = LSC_FIGURE_SPEC_HEATMAP;
  spec->title = "Retrieval score per head";
  spec->data = cells;
  spec->rows = n_layers;
  spec->cols = n_heads;
  spec->x_label = "Head";
  spec->y_label = "Layer";
  spec->value_label = "Retrieval score";
}
