/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "lsc-view-figure.h"

void
lsc_view_figure_clear (LscViewFigure *f)
{
  g_clear_pointer (&f->fig, lsc_figure_free);
  g_clear_pointer (&f->cells, g_free);
  g_clear_pointer (&f->x, g_free);
  lsc_figure_spec_init (&f->spec);
}

gboolean
lsc_view_figure_build (LscViewFigure *f, GError **error)
{
  g_clear_pointer (&f->fig, lsc_figure_free);
  f->fig = lsc_figure_new_from_spec (&f->spec, error);
  return f->fig != NULL;
}

void
lsc_view_figure_draw (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  LscViewFigure *f = data;
  if (f->fig == NULL || width <= 0 || height <= 0)
    return;
  g_autoptr(GError) error = NULL;
  if (!lsc_figure_render (f->fig, cr, width, height, &error))
    g_warning ("figure: %s", error->message);
}

const LscFigureSpec *
lsc_view_figure_get_spec (const LscViewFigure *f)
{
  return f->fig != NULL ? &f->spec : NULL;
}

gboolean
lsc_view_figure_export (const LscViewFigure *f, const char *path, const char *none,
                        GError **error)
{
  if (f->fig == NULL)
    {
      g_set_error_literal (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA, none);
      return FALSE;
    }
  LscFigureSpec spec = f->spec;
  spec.path = path;
  return lsc_figure_save_spec (&spec, NULL, error);
}
