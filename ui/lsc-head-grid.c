/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "lsc-figure.h"
#include "lsc-head-grid.h"

#define CELL 26.0
#define HEADER 22.0

struct _LscHeadGrid
{
  GtkWidget parent_instance;

  /* owned data */
  LscHeadStats *stats;   /* (n_layers * n_heads) or NULL */
  double *values;        /* (n_layers * n_heads) or NULL: shown instead of stats */
  char *value_name;
  int n_layers, n_heads;

  /* settings and selection */
  LscHeadStat stat;
  int sel_layer, sel_head;
  double cell_w, cell_h;  /* pixels */
  gboolean channels;      /* the columns are SSM channels */
};

G_DEFINE_FINAL_TYPE (LscHeadGrid, lsc_head_grid, GTK_TYPE_WIDGET)

enum { HEAD_ACTIVATED, N_SIGNALS };
static guint signals[N_SIGNALS];

static double
stat_value (const LscHeadStats *s, LscHeadStat stat)
{
  switch (stat)
    {
    case LSC_HEAD_STAT_ENTROPY: return s->entropy;
    case LSC_HEAD_STAT_SINK_MASS: return s->sink_mass;
    case LSC_HEAD_STAT_MAX_PROB: return s->max_prob;
    case LSC_HEAD_STAT_MEAN_DISTANCE: return s->mean_distance;
    default: return NAN;
    }
}

static gboolean
has_data (LscHeadGrid *self)
{
  return self->stats != NULL || self->values != NULL;
}

static double
cell_value (LscHeadGrid *self, int i)
{
  return self->values != NULL ? self->values[i] : stat_value (&self->stats[i], self->stat);
}

static void
lsc_head_grid_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                       int *minimum, int *natural, int *min_baseline, int *nat_baseline)
{
  LscHeadGrid *self = LSC_HEAD_GRID (widget);
  gboolean h = orientation == GTK_ORIENTATION_HORIZONTAL;
  int n = h ? self->n_heads : self->n_layers;
  *minimum = *natural = (int) ceil (HEADER + (h ? self->cell_w : self->cell_h) * n + 2);
}

static void
lsc_head_grid_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  LscHeadGrid *self = LSC_HEAD_GRID (widget);
  if (!has_data (self))
    return;
  int n = self->n_layers * self->n_heads;
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++)
    {
      double v = cell_value (self, i);
      if (isfinite (v))
        {
          lo = MIN (lo, v);
          hi = MAX (hi, v);
        }
    }
  if (self->values != NULL && lo >= 0)
    lo = 0;   /* scores: from zero */
  GdkRGBA fg;
  gtk_style_context_get_color (gtk_widget_get_style_context (widget), &fg);  /* gtk_widget_get_color is 4.10 */
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot,
      &GRAPHENE_RECT_INIT (0, 0, gtk_widget_get_width (widget), gtk_widget_get_height (widget)));
  PangoLayout *layout = gtk_widget_create_pango_layout (widget, NULL);
  PangoFontDescription *fd = pango_font_description_from_string ("Sans 7");
  pango_layout_set_font_description (layout, fd);
  pango_font_description_free (fd);

  double cw = self->cell_w, ch = self->cell_h;
  /* a one-pixel gap between cells while they are wide enough to spare it */
  double gw = cw >= 4 ? 1 : 0, gh = ch >= 4 ? 1 : 0;
  for (int l = 0; l < self->n_layers; l++)
    for (int h = 0; h < self->n_heads; h++)
      {
        double v = cell_value (self, l * self->n_heads + h);
        double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
        guint8 r, g, b;
        lsc_colormap_rgb (LSC_COLORMAP_VIRIDIS, isfinite (v) ? t : NAN, &r, &g, &b);
        cairo_set_source_rgb (cr, r / 255.0, g / 255.0, b / 255.0);
        double x = HEADER + h * cw, y = HEADER + l * ch;
        cairo_rectangle (cr, x, y, cw - gw, ch - gh);
        cairo_fill (cr);
        if (l == self->sel_layer && h == self->sel_head)
          {
            gdk_cairo_set_source_rgba (cr, &fg);
            cairo_set_line_width (cr, 2);
            cairo_rectangle (cr, x + 1, y + 1, cw - 3, ch - 3);
            cairo_stroke (cr);
          }
      }
  gdk_cairo_set_source_rgba (cr, &fg);
  if (self->sel_layer >= 0 && self->sel_layer < self->n_layers && self->sel_head < 0)
    {
      /* a whole layer selected: its row outlined */
      cairo_set_line_width (cr, 2);
      cairo_rectangle (cr, HEADER - 1, HEADER + self->sel_layer * ch - 1,
                       self->n_heads * cw - gw + 2, ch - gh + 2);
      cairo_stroke (cr);
    }
  /* column numbers every `every` columns, so that narrow cells keep them
   * apart: 1, 2, 5, 10, 20, 50, ... */
  int every = 1;
  {
    g_autofree char *widest = g_strdup_printf ("%d", MAX (self->n_heads - 1, 0));
    int lw, lh;
    pango_layout_set_text (layout, widest, -1);
    pango_layout_get_pixel_size (layout, &lw, &lh);
    static const int steps[] = { 1, 2, 5 };
    for (int k = 0, m = 1; every * cw < lw + 4 && k < 30; k++)
      {
        every = steps[k % 3] * m;
        if (k % 3 == 2)
          m *= 10;
      }
  }
  for (int h = 0; h < self->n_heads; h += every)
    {
      g_autofree char *t = g_strdup_printf ("%d", h);
      int lw, lh;
      pango_layout_set_text (layout, t, -1);
      pango_layout_get_pixel_size (layout, &lw, &lh);
      double x = HEADER + h * cw + (cw - lw) / 2;
      cairo_move_to (cr, every > 1 ? MAX (x, HEADER + h * cw - lw / 2.0) : x, (HEADER - lh) / 2);
      pango_cairo_show_layout (cr, layout);
    }
  for (int l = 0; l < self->n_layers; l++)
    {
      g_autofree char *t = g_strdup_printf ("%d", l);
      int lw, lh;
      pango_layout_set_text (layout, t, -1);
      pango_layout_get_pixel_size (layout, &lw, &lh);
      if (lh > ch + 2 && l % 2 == 1)
        continue;   /* short rows: every other number */
      cairo_move_to (cr, (HEADER - lw) / 2, HEADER + l * ch + (ch - lh) / 2);
      pango_cairo_show_layout (cr, layout);
    }
  g_object_unref (layout);
  cairo_destroy (cr);
}

static gboolean
cell_at (LscHeadGrid *self, double x, double y, int *layer, int *head)
{
  if (x < HEADER || y < HEADER)
    return FALSE;
  int h = (int) ((x - HEADER) / self->cell_w), l = (int) ((y - HEADER) / self->cell_h);
  if (l >= self->n_layers || h >= self->n_heads)
    return FALSE;
  *layer = l;
  *head = h;
  return TRUE;
}

static void
on_pressed (GtkGestureClick *click, int n_press, double x, double y, LscHeadGrid *self)
{
  int l, h;
  if (has_data (self) && cell_at (self, x, y, &l, &h))
    {
      lsc_head_grid_set_selected (self, l, h);
      g_signal_emit (self, signals[HEAD_ACTIVATED], 0, l, h);
    }
}

static gboolean
on_query_tooltip (GtkWidget *widget, int x, int y, gboolean keyboard, GtkTooltip *tooltip,
                  LscHeadGrid *self)
{
  int l, h;
  if (!has_data (self) || !cell_at (self, x, y, &l, &h))
    return FALSE;
  if (self->values != NULL)
    {
      double v = self->values[l * self->n_heads + h];
      g_autofree char *text = self->channels
          /* Translators: a cell of the layers x channels grid of a Mamba
           * model: the channel and one value of it */
          ? g_strdup_printf (_("Layer %d, channel %d\n%s %.3f"), l, h, self->value_name, v)
          /* Translators: a cell of the layers x heads grid: the head and one value of it */
          : g_strdup_printf (_("Layer %d, head %d\n%s %.3f"), l, h, self->value_name, v);
      gtk_tooltip_set_text (tooltip, text);
      return TRUE;
    }
  const LscHeadStats *s = &self->stats[l * self->n_heads + h];
  g_autofree char *text = g_strdup_printf (
      _("Layer %d, head %d\nEntropy %.3f nats\nSink mass %.3f\nMax probability %.3f\nMean distance %.1f tokens"),
      l, h, s->entropy, s->sink_mass, s->max_prob, s->mean_distance);
  gtk_tooltip_set_text (tooltip, text);
  return TRUE;
}

static void
lsc_head_grid_finalize (GObject *object)
{
  LscHeadGrid *self = LSC_HEAD_GRID (object);
  g_free (self->stats);
  g_free (self->values);
  g_free (self->value_name);
  G_OBJECT_CLASS (lsc_head_grid_parent_class)->finalize (object);
}

static void
lsc_head_grid_class_init (LscHeadGridClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->finalize = lsc_head_grid_finalize;
  widget_class->measure = lsc_head_grid_measure;
  widget_class->snapshot = lsc_head_grid_snapshot;
  /* (layer, head) */
  signals[HEAD_ACTIVATED] = g_signal_new ("head-activated", G_TYPE_FROM_CLASS (klass),
                                          G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                          G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_INT);
  gtk_widget_class_set_css_name (widget_class, "headgrid");
}

static void
lsc_head_grid_init (LscHeadGrid *self)
{
  self->sel_layer = self->sel_head = -1;
  self->cell_w = self->cell_h = CELL;
  GtkGesture *click = gtk_gesture_click_new ();
  g_signal_connect (click, "pressed", G_CALLBACK (on_pressed), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (click));
  gtk_widget_set_has_tooltip (GTK_WIDGET (self), TRUE);
  g_signal_connect (self, "query-tooltip", G_CALLBACK (on_query_tooltip), self);
}

GtkWidget *
lsc_head_grid_new (void)
{
  return g_object_new (LSC_TYPE_HEAD_GRID, NULL);
}

void
lsc_head_grid_set_stats (LscHeadGrid *self, const LscHeadStats *stats, int n_layers, int n_heads)
{
  g_return_if_fail (LSC_IS_HEAD_GRID (self));
  g_clear_pointer (&self->stats, g_free);
  g_clear_pointer (&self->values, g_free);
  self->n_layers = self->n_heads = 0;
  if (stats != NULL && n_layers > 0 && n_heads > 0)
    {
      self->stats = g_memdup2 (stats, sizeof *stats * n_layers * n_heads);
      self->n_layers = n_layers;
      self->n_heads = n_heads;
    }
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

void
lsc_head_grid_set_values (LscHeadGrid *self, const double *values, int n_layers, int n_heads,
                          const char *name)
{
  g_return_if_fail (LSC_IS_HEAD_GRID (self));
  g_clear_pointer (&self->stats, g_free);
  g_clear_pointer (&self->values, g_free);
  g_free (self->value_name);
  self->value_name = g_strdup (name != NULL ? name : "");
  self->n_layers = self->n_heads = 0;
  if (values != NULL && n_layers > 0 && n_heads > 0)
    {
      self->values = g_memdup2 (values, sizeof *values * n_layers * n_heads);
      self->n_layers = n_layers;
      self->n_heads = n_heads;
    }
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

void
lsc_head_grid_set_stat (LscHeadGrid *self, LscHeadStat stat)
{
  g_return_if_fail (LSC_IS_HEAD_GRID (self));
  self->stat = stat;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lsc_head_grid_set_selected (LscHeadGrid *self, int layer, int head)
{
  g_return_if_fail (LSC_IS_HEAD_GRID (self));
  self->sel_layer = layer;
  self->sel_head = head;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

const double *
lsc_head_grid_get_values (LscHeadGrid *self, int *n_layers, int *n_heads)
{
  g_return_val_if_fail (LSC_IS_HEAD_GRID (self), NULL);
  if (n_layers != NULL)
    *n_layers = self->values != NULL ? self->n_layers : 0;
  if (n_heads != NULL)
    *n_heads = self->values != NULL ? self->n_heads : 0;
  return self->values;
}

void
lsc_head_grid_set_cell_size (LscHeadGrid *self, double width, double height)
{
  g_return_if_fail (LSC_IS_HEAD_GRID (self));
  g_return_if_fail (width >= 1 && height >= 1);
  self->cell_w = width;
  self->cell_h = height;
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

void
lsc_head_grid_set_channels (LscHeadGrid *self, gboolean channels)
{
  g_return_if_fail (LSC_IS_HEAD_GRID (self));
  self->channels = channels;
}
