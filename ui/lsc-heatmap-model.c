/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>

#include "lsc-heatmap-model.h"

struct _LscHeatmapModel
{
  GObject parent_instance;

  /* data and viewport, set by the view */
  int rows, cols;
  double width, height;

  /* view state */
  double zoom;        /* >= 1 */
  double origin_col;  /* cell coordinate at the viewport's top-left */
  double origin_row;

  /* selection: cells [sel_r0, sel_r1) x [sel_c0, sel_c1); empty when sel_r1 <= sel_r0 */
  int sel_r0, sel_r1, sel_c0, sel_c1;

  /* last notified, to emit notify only on change */
  gboolean could_zoom_in, could_zoom_out;
};

G_DEFINE_FINAL_TYPE (LscHeatmapModel, lsc_heatmap_model, G_TYPE_OBJECT)

enum { PROP_0, PROP_ZOOM, PROP_CAN_ZOOM_IN, PROP_CAN_ZOOM_OUT, N_PROPS };
enum { CHANGED, N_SIGNALS };
static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static double
fit_size (LscHeatmapModel *self)
{
  if (self->rows <= 0 || self->cols <= 0 || self->width <= 0 || self->height <= 0)
    return 1.0;
  return MIN (self->width / self->cols, self->height / self->rows);
}

double
lsc_heatmap_model_get_max_zoom (LscHeatmapModel *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), 1.0);
  return MAX (1.0, LSC_HEATMAP_MAX_CELL_PX / fit_size (self));
}

double
lsc_heatmap_model_get_cell_size (LscHeatmapModel *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), 1.0);
  return fit_size (self) * self->zoom;
}

/* One axis: content of n cells of size s in a viewport of v pixels. */
static double
clamp_origin (double origin, int n, double s, double v)
{
  double span = v / s;   /* cells that fit */
  if (span >= n)
    return -(span - n) / 2.0;    /* centred */
  return CLAMP (origin, 0.0, n - span);
}

static void
changed (LscHeatmapModel *self, gboolean zoom_changed)
{
  double s = lsc_heatmap_model_get_cell_size (self);
  self->origin_col = clamp_origin (self->origin_col, self->cols, s, self->width);
  self->origin_row = clamp_origin (self->origin_row, self->rows, s, self->height);

  if (zoom_changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
  gboolean in = lsc_heatmap_model_can_zoom_in (self);
  gboolean out = lsc_heatmap_model_can_zoom_out (self);
  if (in != self->could_zoom_in)
    {
      self->could_zoom_in = in;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_ZOOM_IN]);
    }
  if (out != self->could_zoom_out)
    {
      self->could_zoom_out = out;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_ZOOM_OUT]);
    }
  g_signal_emit (self, signals[CHANGED], 0);
}

static void
lsc_heatmap_model_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  LscHeatmapModel *self = LSC_HEATMAP_MODEL (object);
  switch (prop_id)
    {
    case PROP_ZOOM:
      g_value_set_double (value, self->zoom);
      break;
    case PROP_CAN_ZOOM_IN:
      g_value_set_boolean (value, lsc_heatmap_model_can_zoom_in (self));
      break;
    case PROP_CAN_ZOOM_OUT:
      g_value_set_boolean (value, lsc_heatmap_model_can_zoom_out (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
lsc_heatmap_model_class_init (LscHeatmapModelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->get_property = lsc_heatmap_model_get_property;

  properties[PROP_ZOOM] = g_param_spec_double ("zoom", NULL, NULL, 1.0, G_MAXDOUBLE, 1.0,
                                               G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_CAN_ZOOM_IN] = g_param_spec_boolean ("can-zoom-in", NULL, NULL, FALSE,
                                                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_CAN_ZOOM_OUT] = g_param_spec_boolean ("can-zoom-out", NULL, NULL, FALSE,
                                                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* Any change of geometry: zoom, pan, viewport or data size. */
  signals[CHANGED] = g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                   0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
lsc_heatmap_model_init (LscHeatmapModel *self)
{
  self->zoom = 1.0;
}

LscHeatmapModel *
lsc_heatmap_model_new (void)
{
  return g_object_new (LSC_TYPE_HEATMAP_MODEL, NULL);
}

void
lsc_heatmap_model_set_data_size (LscHeatmapModel *self, int rows, int cols)
{
  g_return_if_fail (LSC_IS_HEATMAP_MODEL (self));
  g_return_if_fail (rows >= 0 && cols >= 0);
  if (rows == self->rows && cols == self->cols)
    return;
  self->rows = rows;
  self->cols = cols;
  self->sel_r0 = self->sel_r1 = self->sel_c0 = self->sel_c1 = 0;
  self->zoom = 1.0;
  self->origin_col = self->origin_row = 0.0;
  changed (self, TRUE);
}

int
lsc_heatmap_model_get_rows (LscHeatmapModel *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), 0);
  return self->rows;
}

int
lsc_heatmap_model_get_cols (LscHeatmapModel *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), 0);
  return self->cols;
}

void
lsc_heatmap_model_set_viewport (LscHeatmapModel *self, double width, double height)
{
  g_return_if_fail (LSC_IS_HEATMAP_MODEL (self));
  if (width == self->width && height == self->height)
    return;
  /* keep the centre cell in place */
  double s = lsc_heatmap_model_get_cell_size (self);
  double cc = self->origin_col + self->width / 2.0 / s;
  double cr = self->origin_row + self->height / 2.0 / s;
  gboolean had_viewport = self->width > 0 && self->height > 0;
  self->width = MAX (width, 0.0);
  self->height = MAX (height, 0.0);
  self->zoom = MIN (self->zoom, lsc_heatmap_model_get_max_zoom (self));
  if (had_viewport)
    {
      s = lsc_heatmap_model_get_cell_size (self);
      self->origin_col = cc - self->width / 2.0 / s;
      self->origin_row = cr - self->height / 2.0 / s;
    }
  changed (self, FALSE);
}

double
lsc_heatmap_model_get_zoom (LscHeatmapModel *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), 1.0);
  return self->zoom;
}

/* A little slack so that sqrt (2) steps that land on a limit up to rounding
 * count as being at it. */
#define ZOOM_EPS 1e-9

gboolean
lsc_heatmap_model_can_zoom_in (LscHeatmapModel *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), FALSE);
  return self->rows > 0 && self->zoom < lsc_heatmap_model_get_max_zoom (self) * (1 - ZOOM_EPS);
}

gboolean
lsc_heatmap_model_can_zoom_out (LscHeatmapModel *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), FALSE);
  return self->zoom > 1.0 + ZOOM_EPS;
}

void
lsc_heatmap_model_get_origin (LscHeatmapModel *self, double *col, double *row)
{
  g_return_if_fail (LSC_IS_HEATMAP_MODEL (self));
  if (col != NULL)
    *col = self->origin_col;
  if (row != NULL)
    *row = self->origin_row;
}

void
lsc_heatmap_model_zoom_at (LscHeatmapModel *self, double factor, double x, double y)
{
  g_return_if_fail (LSC_IS_HEATMAP_MODEL (self));
  g_return_if_fail (factor > 0 && isfinite (factor));
  double s = lsc_heatmap_model_get_cell_size (self);
  double col = self->origin_col + x / s;   /* the cell under (x, y) */
  double row = self->origin_row + y / s;
  double zoom = CLAMP (self->zoom * factor, 1.0, lsc_heatmap_model_get_max_zoom (self));
  if (fabs (zoom - self->zoom) < ZOOM_EPS * zoom)
    return;
  self->zoom = zoom;
  s = lsc_heatmap_model_get_cell_size (self);
  self->origin_col = col - x / s;
  self->origin_row = row - y / s;
  changed (self, TRUE);
}

void
lsc_heatmap_model_zoom_in (LscHeatmapModel *self)
{
  lsc_heatmap_model_zoom_at (self, G_SQRT2, self->width / 2.0, self->height / 2.0);
}

void
lsc_heatmap_model_zoom_out (LscHeatmapModel *self)
{
  lsc_heatmap_model_zoom_at (self, 1.0 / G_SQRT2, self->width / 2.0, self->height / 2.0);
}

void
lsc_heatmap_model_zoom_reset (LscHeatmapModel *self)
{
  g_return_if_fail (LSC_IS_HEATMAP_MODEL (self));
  gboolean zoom_changed = self->zoom != 1.0;
  self->zoom = 1.0;
  self->origin_col = self->origin_row = 0.0;
  changed (self, zoom_changed);
}

void
lsc_heatmap_model_pan (LscHeatmapModel *self, double dx, double dy)
{
  g_return_if_fail (LSC_IS_HEATMAP_MODEL (self));
  double s = lsc_heatmap_model_get_cell_size (self);
  self->origin_col -= dx / s;
  self->origin_row -= dy / s;
  changed (self, FALSE);
}

gboolean
lsc_heatmap_model_pixel_to_cell (LscHeatmapModel *self, double x, double y, int *row, int *col)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), FALSE);
  if (x < 0 || y < 0 || x >= self->width || y >= self->height)
    return FALSE;
  double s = lsc_heatmap_model_get_cell_size (self);
  double c = floor (self->origin_col + x / s);
  double r = floor (self->origin_row + y / s);
  if (c < 0 || r < 0 || c >= self->cols || r >= self->rows)
    return FALSE;
  if (row != NULL)
    *row = (int) r;
  if (col != NULL)
    *col = (int) c;
  return TRUE;
}

void
lsc_heatmap_model_cell_to_pixel (LscHeatmapModel *self, int row, int col, double *x, double *y)
{
  g_return_if_fail (LSC_IS_HEATMAP_MODEL (self));
  double s = lsc_heatmap_model_get_cell_size (self);
  if (x != NULL)
    *x = (col - self->origin_col) * s;
  if (y != NULL)
    *y = (row - self->origin_row) * s;
}

gboolean
lsc_heatmap_model_get_visible (LscHeatmapModel *self, int *r0, int *r1, int *c0, int *c1)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), FALSE);
  if (self->rows <= 0 || self->cols <= 0 || self->width <= 0 || self->height <= 0)
    return FALSE;
  double s = lsc_heatmap_model_get_cell_size (self);
  int a = (int) MAX (0.0, floor (self->origin_row));
  int b = (int) MIN ((double) self->rows, ceil (self->origin_row + self->height / s));
  int c = (int) MAX (0.0, floor (self->origin_col));
  int d = (int) MIN ((double) self->cols, ceil (self->origin_col + self->width / s));
  if (a >= b || c >= d)
    return FALSE;
  *r0 = a; *r1 = b; *c0 = c; *c1 = d;
  return TRUE;
}

/* One axis: the cells [*a, *b) between two pixel coordinates, clamped. */
static void
span_of (double p0, double p1, double origin, double s, int n, int *a, int *b)
{
  double lo = MIN (p0, p1), hi = MAX (p0, p1);
  *a = (int) CLAMP (floor (origin + lo / s), 0, n);
  *b = (int) CLAMP (floor (origin + hi / s) + 1, 0, n);
}

gboolean
lsc_heatmap_model_select (LscHeatmapModel *self, double x0, double y0, double x1, double y1)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), FALSE);
  double s = lsc_heatmap_model_get_cell_size (self);
  int r0, r1, c0, c1;
  span_of (y0, y1, self->origin_row, s, self->rows, &r0, &r1);
  span_of (x0, x1, self->origin_col, s, self->cols, &c0, &c1);
  if (r1 <= r0 || c1 <= c0)
    r0 = r1 = c0 = c1 = 0;
  if (r0 != self->sel_r0 || r1 != self->sel_r1 || c0 != self->sel_c0 || c1 != self->sel_c1)
    {
      self->sel_r0 = r0, self->sel_r1 = r1, self->sel_c0 = c0, self->sel_c1 = c1;
      g_signal_emit (self, signals[CHANGED], 0);
    }
  return r1 > r0;
}

void
lsc_heatmap_model_clear_selection (LscHeatmapModel *self)
{
  g_return_if_fail (LSC_IS_HEATMAP_MODEL (self));
  if (self->sel_r1 <= self->sel_r0)
    return;
  self->sel_r0 = self->sel_r1 = self->sel_c0 = self->sel_c1 = 0;
  g_signal_emit (self, signals[CHANGED], 0);
}

gboolean
lsc_heatmap_model_get_selection (LscHeatmapModel *self, int *r0, int *r1, int *c0, int *c1)
{
  g_return_val_if_fail (LSC_IS_HEATMAP_MODEL (self), FALSE);
  *r0 = self->sel_r0;
  *r1 = self->sel_r1;
  *c0 = self->sel_c0;
  *c1 = self->sel_c1;
  return self->sel_r1 > self->sel_r0;
}
