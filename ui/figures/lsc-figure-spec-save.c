/* SPDX-License-Identifier: MIT
 *
 * The renderer of figure specs (engine/lsc-figure-spec.h): the figures of
 * batch jobs, and the application's exports of the same figures.
 */
#include "config.h"

#include "lsc-figure.h"

static LscScaleKind
scale_kind (const char *name)
{
  if (g_strcmp0 (name, "log") == 0)
    return LSC_SCALE_LOG;
  if (g_strcmp0 (name, "quantile") == 0)
    return LSC_SCALE_QUANTILE;
  return LSC_SCALE_LINEAR;
}

LscFigure *
lsc_figure_new_from_spec (const LscFigureSpec *spec, GError **error)
{
  g_autoptr(LscFigure) fig = NULL;
  LscChartParams chart;

  g_return_val_if_fail (spec != NULL, NULL);
  lsc_chart_params_init (&chart);
  chart.title = spec->title;
  chart.x_label = spec->x_label;
  chart.y_label = spec->y_label;
  switch (spec->kind)
    {
    case LSC_FIGURE_SPEC_HEATMAP:
      {
        LscHeatmapParams hp;
        lsc_heatmap_params_init (&hp);
        hp.title = spec->title;
        hp.x_label = spec->x_label;
        hp.y_label = spec->y_label;
        hp.colorbar_label = spec->value_label;
        if (spec->colormap != NULL && !lsc_colormap_from_name (spec->colormap, &hp.colormap))
          {
            g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_INVALID_ARGUMENT,
                         "unknown colour map '%s'", spec->colormap);
            return NULL;
          }
        hp.scale.kind = scale_kind (spec->scale);
        hp.scale.diverging = lsc_colormap_is_diverging (hp.colormap);
        hp.row_offset = spec->row_offset;
        hp.col_offset = spec->col_offset;
        hp.row_labels = spec->row_labels;
        hp.col_labels = spec->col_labels;
        fig = lsc_figure_new_heatmap (spec->data, spec->rows, spec->cols, &hp, error);
        break;
      }
    case LSC_FIGURE_SPEC_BARS:
      fig = lsc_figure_new_bar_chart (spec->labels, spec->y, spec->n, spec->max_bars, &chart, error);
      break;
    case LSC_FIGURE_SPEC_LINE:
      chart.legend = spec->series_names != NULL;
      fig = lsc_figure_new_line_chart (&chart, error);
      for (int i = 0; fig != NULL && i < MAX (spec->n_series, 1); i++)
        if (!lsc_figure_add_series (fig, spec->series_names ? spec->series_names[i] : NULL, spec->x,
                                    spec->y + (gsize) i * spec->n, spec->n, error))
          return NULL;
      break;
    }
  return g_steal_pointer (&fig);
}

gboolean
lsc_figure_save_spec (const LscFigureSpec *spec, gpointer user_data, GError **error)
{
  LscFigureOutput out;

  g_return_val_if_fail (spec != NULL && spec->path != NULL, FALSE);
  g_autoptr(LscFigure) fig = lsc_figure_new_from_spec (spec, error);
  if (fig == NULL)
    return FALSE;
  lsc_figure_output_init (&out);
  out.dpi = spec->dpi > 0 ? spec->dpi : out.dpi;
  return lsc_figure_save (fig, spec->path, &out, error);
}
