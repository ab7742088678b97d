/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "lsc-head-maps.h"

#define THUMB 72.0      /* thumbnail side, pixels */
#define GAP 8.0
#define LABEL 14.0      /* head number under each */

struct _LscHeadMaps
{
  GtkWidget parent_instance;

  /* what is shown */
  const LscAttentionStore *store;   /* (nullable) kept alive by owner */
  GObject *owner;                   /* (nullable) */
  int layer, n_heads;
  LscColormap colormap;
  int selected;

  /* per head, filled as the worker builds them */
  LscAttentionSource **sources;     /* (n_heads) (nullable) */
  float **values;                   /* (n_heads) (nullable) thumbnail grid, (side * side) */
  int *sides;                       /* (n_heads) values per side */
  GdkTexture **textures;            /* (n_heads) (nullable) coloured with colormap */
  int next;                         /* the head being built, n_heads when done */
  GCancellable *pending;            /* (nullable) */
};

G_DEFINE_FINAL_TYPE (LscHeadMaps, lsc_head_maps, GTK_TYPE_WIDGET)

enum { HEAD_ACTIVATED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
clear_heads (LscHeadMaps *self)
{
  if (self->pending != NULL)
    g_cancellable_cancel (self->pending);
  g_clear_object (&self->pending);
  for (int h = 0; h < self->n_heads; h++)
    {
      g_clear_pointer (&self->sources[h], lsc_attention_source_unref);
      g_clear_pointer (&self->values[h], g_free);
      g_clear_object (&self->textures[h]);
    }
  g_clear_pointer (&self->sources, g_free);
  g_clear_pointer (&self->values, g_free);
  g_clear_pointer (&self->sides, g_free);
  g_clear_pointer (&self->textures, g_free);
  g_clear_object (&self->owner);
  self->store = NULL;
  self->n_heads = 0;
  self->next = 0;
}

/* The head's whole map as a texture: values 0 .. its maximum, NaN
 * (masked) transparent. */
static GdkTexture *
colour_thumbnail (const float *values, int side, LscColormap colormap)
{
  float vmax = 0;
  for (int i = 0; i < side * side; i++)
    if (!isnan (values[i]))
      vmax = MAX (vmax, values[i]);
  gsize stride = (gsize) side * 4;
  guint8 *pixels = g_malloc0 (stride * side);
  for (int i = 0; i < side * side; i++)
    {
      if (isnan (values[i]))
        continue;
      guint8 *p = pixels + 4 * (gsize) i;
      lsc_colormap_rgb (colormap, vmax > 0 ? values[i] / vmax : 0, &p[2], &p[1], &p[0]);
      p[3] = 255;
    }
  g_autoptr(GBytes) bytes = g_bytes_new_take (pixels, stride * side);
  return gdk_memory_texture_new (side, side, GDK_MEMORY_DEFAULT, bytes, stride);
}

static void build_next (LscHeadMaps *self);

static void
on_source_ready (GObject *object, GAsyncResult *result, gpointer data)
{
  g_autoptr(LscHeadMaps) self = data;
  g_autoptr(GError) error = NULL;
  LscAttentionSource *src = lsc_attention_source_new_finish (result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  int h = self->next;
  if (src == NULL)
    g_warning ("head maps: %s", error->message);
  else
    {
      /* a square grid of at most THUMB x THUMB values over the whole map */
      int rows = lsc_attention_source_get_rows (src), cols = lsc_attention_source_get_cols (src);
      g_autoptr(LscAttentionGrid) g =
          lsc_attention_source_fetch (src, 0, rows, 0, cols, (gsize) (THUMB * THUMB), &error);
      if (g == NULL)
        g_warning ("head maps: %s", error->message);
      else
        {
          int side = (int) THUMB;
          float *v = g_new (float, side * side);
          for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
              v[y * side + x] = lsc_attention_grid_value (g, (int) ((y + 0.5) * rows / side),
                                                          (int) ((x + 0.5) * cols / side));
          self->values[h] = v;
          self->sides[h] = side;
          self->textures[h] = colour_thumbnail (v, side, self->colormap);
        }
      self->sources[h] = src;
      gtk_widget_queue_draw (GTK_WIDGET (self));
    }
  self->next++;
  build_next (self);
}

static void
build_next (LscHeadMaps *self)
{
  if (self->next >= self->n_heads)
    {
      g_clear_object (&self->pending);
      return;
    }
  lsc_attention_source_new_async (self->store, self->owner, self->layer, self->next,
                                  self->pending, on_source_ready, g_object_ref (self));
}

static gboolean
head_at (LscHeadMaps *self, double x, double y, int *head)
{
  int h = (int) floor (x / (THUMB + GAP));
  if (h < 0 || h >= self->n_heads || x - h * (THUMB + GAP) > THUMB || y < 0 || y > THUMB + LABEL)
    return FALSE;
  *head = h;
  return TRUE;
}

static void
on_pressed (GtkGestureClick *click, int n_press, double x, double y, LscHeadMaps *self)
{
  int head;
  if (head_at (self, x, y, &head))
    g_signal_emit (self, signals[HEAD_ACTIVATED], 0, self->layer, head);
}

static void
lsc_head_maps_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                       int *minimum, int *natural, int *min_baseline, int *nat_baseline)
{
  LscHeadMaps *self = LSC_HEAD_MAPS (widget);
  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    *minimum = *natural = (int) (self->n_heads * (THUMB + GAP));
  else
    *minimum = *natural = self->n_heads > 0 ? (int) (THUMB + LABEL + 2) : 0;
}

static void
lsc_head_maps_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  LscHeadMaps *self = LSC_HEAD_MAPS (widget);
  if (self->n_heads == 0)
    return;
  GdkRGBA fg;
  gtk_style_context_get_color (gtk_widget_get_style_context (widget), &fg);  /* gtk_widget_get_color is 4.10 */
  for (int h = 0; h < self->n_heads; h++)
    if (self->textures[h] != NULL)
      gtk_snapshot_append_texture (snapshot, self->textures[h],
                                   &GRAPHENE_RECT_INIT (h * (THUMB + GAP), 0, THUMB, THUMB));

  cairo_t *cr = gtk_snapshot_append_cairo (snapshot,
      &GRAPHENE_RECT_INIT (0, 0, gtk_widget_get_width (widget), gtk_widget_get_height (widget)));
  g_autoptr(PangoLayout) layout = gtk_widget_create_pango_layout (widget, NULL);
  PangoFontDescription *fd = pango_font_description_from_string ("Sans 7");
  pango_layout_set_font_description (layout, fd);
  pango_font_description_free (fd);
  for (int h = 0; h < self->n_heads; h++)
    {
      double x = h * (THUMB + GAP);
      gdk_cairo_set_source_rgba (cr, &fg);
      cairo_set_line_width (cr, h == self->selected ? 2.0 : 0.5);
      cairo_rectangle (cr, x + 0.5, 0.5, THUMB - 1, THUMB - 1);
      cairo_stroke (cr);
      g_autofree char *label = self->textures[h] != NULL ? g_strdup_printf ("%d", h)
                               : g_strdup_printf ("%d …", h);
      pango_layout_set_text (layout, label, -1);
      int lw, lh;
      pango_layout_get_pixel_size (layout, &lw, &lh);
      cairo_move_to (cr, x + (THUMB - lw) / 2, THUMB + 1);
      pango_cairo_show_layout (cr, layout);
    }
  cairo_destroy (cr);
}

static gboolean
on_query_tooltip (GtkWidget *widget, int x, int y, gboolean keyboard, GtkTooltip *tooltip,
                  LscHeadMaps *self)
{
  int head;
  if (!head_at (self, x, y, &head))
    return FALSE;
  /* Translators: tooltip of a small attention map in the row of all heads */
  g_autofree char *text = g_strdup_printf (_("Layer %d, head %d: click to open"), self->layer, head);
  gtk_tooltip_set_text (tooltip, text);
  return TRUE;
}

static void
lsc_head_maps_dispose (GObject *object)
{
  clear_heads (LSC_HEAD_MAPS (object));
  G_OBJECT_CLASS (lsc_head_maps_parent_class)->dispose (object);
}

static void
lsc_head_maps_class_init (LscHeadMapsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = lsc_head_maps_dispose;
  widget_class->measure = lsc_head_maps_measure;
  widget_class->snapshot = lsc_head_maps_snapshot;
  signals[HEAD_ACTIVATED] = g_signal_new ("head-activated", G_TYPE_FROM_CLASS (klass),
                                          G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                          G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_INT);
  gtk_widget_class_set_css_name (widget_class, "headmaps");
}

static void
lsc_head_maps_init (LscHeadMaps *self)
{
  self->colormap = LSC_COLORMAP_VIRIDIS;
  self->selected = -1;
  GtkGesture *click = gtk_gesture_click_new ();
  g_signal_connect (click, "pressed", G_CALLBACK (on_pressed), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (click));
  gtk_widget_set_has_tooltip (GTK_WIDGET (self), TRUE);
  g_signal_connect (self, "query-tooltip", G_CALLBACK (on_query_tooltip), self);
}

GtkWidget *
lsc_head_maps_new (void)
{
  return g_object_new (LSC_TYPE_HEAD_MAPS, NULL);
}

void
lsc_head_maps_set_layer (LscHeadMaps *self, const LscAttentionStore *store, GObject *owner,
                         int layer, int n_heads)
{
  g_return_if_fail (LSC_IS_HEAD_MAPS (self));
  if (store != NULL && store == self->store && layer == self->layer && n_heads == self->n_heads)
    return;
  clear_heads (self);
  if (store != NULL && n_heads > 0)
    {
      self->store = store;
      self->owner = owner != NULL ? g_object_ref (owner) : NULL;
      self->layer = layer;
      self->n_heads = n_heads;
      self->sources = g_new0 (LscAttentionSource *, n_heads);
      self->values = g_new0 (float *, n_heads);
      self->sides = g_new0 (int, n_heads);
      self->textures = g_new0 (GdkTexture *, n_heads);
      self->pending = g_cancellable_new ();
      build_next (self);
    }
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

void
lsc_head_maps_set_colormap (LscHeadMaps *self, LscColormap colormap)
{
  g_return_if_fail (LSC_IS_HEAD_MAPS (self));
  self->colormap = colormap;
  for (int h = 0; h < self->n_heads; h++)
    if (self->values[h] != NULL)
      {
        g_clear_object (&self->textures[h]);
        self->textures[h] = colour_thumbnail (self->values[h], self->sides[h], colormap);
      }
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
lsc_head_maps_set_selected (LscHeadMaps *self, int head)
{
  g_return_if_fail (LSC_IS_HEAD_MAPS (self));
  self->selected = head;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

LscAttentionSource *
lsc_head_maps_get_source (LscHeadMaps *self, int layer, int head)
{
  g_return_val_if_fail (LSC_IS_HEAD_MAPS (self), NULL);
  if (layer != self->layer || head < 0 || head >= self->n_heads)
    return NULL;
  return self->sources[head];
}

int
lsc_head_maps_get_n_ready (LscHeadMaps *self)
{
  g_return_val_if_fail (LSC_IS_HEAD_MAPS (self), 0);
  int n = 0;
  for (int h = 0; h < self->n_heads; h++)
    n += self->sources[h] != NULL;
  return n;
}
