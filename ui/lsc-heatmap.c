/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "lsc-heatmap.h"

/* Margins around the plot area, in pixels. */
#define MARGIN_LEFT 64.0
#define MARGIN_TOP 8.0
#define MARGIN_RIGHT 84.0
#define MARGIN_BOTTOM 52.0
#define COLORBAR_GAP 12.0
#define COLORBAR_WIDTH 14.0
/* Token labels are drawn when a cell is at least this tall. */
#define LABEL_MIN_CELL 13.0
/* Export at exact resolution up to this many cells per side. */
#define EXPORT_MAX_SIDE 1024

struct _LscHeatmap
{
  GtkWidget parent_instance;

  /* owned data */
  LscHeatmapModel *model;
  LscAttentionSource *source;     /* (nullable) */
  LscScale *scale;                /* (nullable) built from the source's overview */
  GPtrArray *labels;              /* (nullable) (element-type utf8) escaped token texts by position */
  char *title;

  /* settings */
  LscColormap colormap;
  LscScaleKind scale_kind;

  /* render cache: invalidated by model changes, data and settings */
  LscAttentionGrid *grid;         /* (nullable) last fetched region */
  GdkTexture *texture;            /* (nullable) the plot area, one texel per device pixel */

  /* interaction */
  double pointer_x, pointer_y;    /* widget coordinates */
  int hover_row, hover_col;       /* -1: none */
  double drag_last_x, drag_last_y;
};

G_DEFINE_FINAL_TYPE (LscHeatmap, lsc_heatmap, GTK_TYPE_WIDGET)

static void
plot_size (LscHeatmap *self, double *w, double *h)
{
  *w = MAX (0.0, gtk_widget_get_width (GTK_WIDGET (self)) - MARGIN_LEFT - MARGIN_RIGHT);
  *h = MAX (0.0, gtk_widget_get_height (GTK_WIDGET (self)) - MARGIN_TOP - MARGIN_BOTTOM);
}

static void
invalidate (LscHeatmap *self)
{
  g_clear_object (&self->texture);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
update_actions (LscHeatmap *self)
{
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "zoom.in",
                                 lsc_heatmap_model_can_zoom_in (self->model));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "zoom.out",
                                 lsc_heatmap_model_can_zoom_out (self->model));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "zoom.reset",
                                 lsc_heatmap_model_can_zoom_out (self->model));
}

static void
on_model_changed (LscHeatmap *self)
{
  update_actions (self);
  invalidate (self);
}

static void
rebuild_scale (LscHeatmap *self)
{
  g_clear_pointer (&self->scale, lsc_scale_free);
  if (self->source == NULL)
    return;
  gsize n;
  const float *values = lsc_attention_source_get_overview (self->source, &n);
  LscScaleParams sp;
  lsc_scale_params_init (&sp);
  sp.kind = self->scale_kind;
  sp.diverging = lsc_colormap_is_diverging (self->colormap);
  if (sp.kind == LSC_SCALE_LINEAR && !sp.diverging)
    sp.vmin = 0.0;   /* probabilities: 0 is black, whatever the data's minimum */
  g_autoptr(GError) error = NULL;
  self->scale = lsc_scale_new (&sp, values, n, &error);
  if (self->scale == NULL)
    g_debug ("heatmap scale: %s", error->message);
}

/* --------------------------------------------------------- rendering */

static gboolean
ensure_grid (LscHeatmap *self, int r0, int r1, int c0, int c1, gsize max_values)
{
  if (self->grid != NULL && lsc_attention_grid_covers (self->grid, r0, r1, c0, c1))
    {
      /* reuse when it is not coarser than needed and not much larger */
      gsize want = (gsize) (r1 - r0) * (c1 - c0);
      gsize have = (gsize) self->grid->rows * self->grid->cols * self->grid->block * self->grid->block;
      gboolean fine_enough = self->grid->block == 1 || want > max_values;
      if (fine_enough && have <= 4 * want + 4096)
        return TRUE;
    }
  g_clear_pointer (&self->grid, lsc_attention_grid_free);
  g_autoptr(GError) error = NULL;
  self->grid = lsc_attention_source_fetch (self->source, r0, r1, c0, c1, max_values, &error);
  if (self->grid == NULL)
    {
      g_warning ("heatmap: %s", error->message);
      return FALSE;
    }
  return TRUE;
}

static GdkTexture *
render_texture (LscHeatmap *self, double pw, double ph)
{
  int r0, r1, c0, c1;
  if (self->source == NULL || self->scale == NULL
      || !lsc_heatmap_model_get_visible (self->model, &r0, &r1, &c0, &c1))
    return NULL;
  int sf = gtk_widget_get_scale_factor (GTK_WIDGET (self));
  int tw = (int) ceil (pw * sf), th = (int) ceil (ph * sf);
  if (tw <= 0 || th <= 0)
    return NULL;
  if (!ensure_grid (self, r0, r1, c0, c1, (gsize) tw * th))
    return NULL;
  const LscAttentionGrid *g = self->grid;

  /* colour of each grid value, once */
  g_autofree guint8 *colors = g_new (guint8, (gsize) g->rows * g->cols * 3);  /* (rows, cols, rgb) */
  for (gsize i = 0; i < (gsize) g->rows * g->cols; i++)
    {
      double t = lsc_scale_map (self->scale, g->values[i]);
      lsc_colormap_rgb (self->colormap, t, &colors[3 * i], &colors[3 * i + 1], &colors[3 * i + 2]);
    }

  /* device pixel -> grid index, per column and per row; -1 outside */
  double s = lsc_heatmap_model_get_cell_size (self->model) * sf;
  double oc, orow;
  lsc_heatmap_model_get_origin (self->model, &oc, &orow);
  g_autofree int *gx = g_new (int, tw);   /* (tw) */
  g_autofree int *gy = g_new (int, th);   /* (th) */
  int n_rows = lsc_heatmap_model_get_rows (self->model);
  int n_cols = lsc_heatmap_model_get_cols (self->model);
  for (int x = 0; x < tw; x++)
    {
      double c = floor (oc + (x + 0.5) / s);
      int j = c < 0 || c >= n_cols ? -1 : ((int) c - g->c0) / g->block;
      gx[x] = j >= 0 && j < g->cols ? j : -1;
    }
  for (int y = 0; y < th; y++)
    {
      double r = floor (orow + (y + 0.5) / s);
      int i = r < 0 || r >= n_rows ? -1 : ((int) r - g->r0) / g->block;
      gy[y] = i >= 0 && i < g->rows ? i : -1;
    }

  gsize stride = (gsize) tw * 4;
  guint8 *pixels = g_malloc0 (stride * th);   /* (th, tw, rgba) premultiplied; 0 = transparent */
  for (int y = 0; y < th; y++)
    {
      if (gy[y] < 0)
        continue;
      guint8 *row = pixels + stride * y;
      const guint8 *crow = colors + (gsize) gy[y] * g->cols * 3;
      for (int x = 0; x < tw; x++)
        {
          if (gx[x] < 0)
            continue;
          const guint8 *c = crow + 3 * gx[x];
          row[4 * x] = c[0];
          row[4 * x + 1] = c[1];
          row[4 * x + 2] = c[2];
          row[4 * x + 3] = 255;
        }
    }
  g_autoptr(GBytes) bytes = g_bytes_new_take (pixels, stride * th);
  return gdk_memory_texture_new (tw, th, GDK_MEMORY_R8G8B8A8_PREMULTIPLIED, bytes, stride);
}

static PangoLayout *
make_layout (LscHeatmap *self, const char *text)
{
  PangoLayout *layout = gtk_widget_create_pango_layout (GTK_WIDGET (self), text);
  PangoFontDescription *fd = pango_font_description_from_string ("Sans 8");
  pango_layout_set_font_description (layout, fd);
  pango_font_description_free (fd);
  return layout;
}

static const char *
label_at (LscHeatmap *self, int pos)
{
  if (self->labels == NULL || pos < 0 || (guint) pos >= self->labels->len)
    return NULL;
  return g_ptr_array_index (self->labels, pos);
}

/* Draws text with its right edge at x, vertically centred on y; clipped to width. */
static void
draw_text_right (LscHeatmap *self, cairo_t *cr, const char *text, double x, double y, double width)
{
  g_autoptr(PangoLayout) layout = make_layout (self, text);
  pango_layout_set_width (layout, (int) (width * PANGO_SCALE));
  pango_layout_set_ellipsize (layout, PANGO_ELLIPSIZE_END);
  int lw, lh;
  pango_layout_get_pixel_size (layout, &lw, &lh);
  cairo_move_to (cr, x - lw, y - lh / 2.0);
  pango_cairo_show_layout (cr, layout);
}

static double
nice_step (double min_step)
{
  double p = pow (10, floor (log10 (MAX (min_step, 1.0))));
  for (int k = 0; k < 3; k++)
    {
      static const double m[] = { 1, 2, 5 };
      if (m[k] * p >= min_step)
        return m[k] * p;
    }
  return 10 * p;
}

static void
draw_axes (LscHeatmap *self, cairo_t *cr, double pw, double ph, GdkRGBA *fg)
{
  int r0, r1, c0, c1;
  if (!lsc_heatmap_model_get_visible (self->model, &r0, &r1, &c0, &c1))
    return;
  double s = lsc_heatmap_model_get_cell_size (self->model);
  int row_start = lsc_attention_source_get_row_start (self->source);
  gdk_cairo_set_source_rgba (cr, fg);

  if (s >= LABEL_MIN_CELL && self->labels != NULL)
    {
      for (int r = r0; r < r1; r++)
        {
          double x, y;
          lsc_heatmap_model_cell_to_pixel (self->model, r, 0, &x, &y);
          const char *t = label_at (self, row_start + r);
          if (t != NULL && y + s / 2 >= 0 && y + s / 2 <= ph)
            draw_text_right (self, cr, t, MARGIN_LEFT - 4, MARGIN_TOP + y + s / 2, MARGIN_LEFT - 8);
        }
      for (int c = c0; c < c1; c++)
        {
          double x, y;
          lsc_heatmap_model_cell_to_pixel (self->model, 0, c, &x, &y);
          const char *t = label_at (self, c);
          if (t == NULL || x + s / 2 < 0 || x + s / 2 > pw)
            continue;
          cairo_save (cr);
          cairo_translate (cr, MARGIN_LEFT + x + s / 2, MARGIN_TOP + ph + 4);
          cairo_rotate (cr, -G_PI / 2);
          draw_text_right (self, cr, t, 0, 0, MARGIN_BOTTOM - 8);
          cairo_restore (cr);
        }
      return;
    }

  /* position ticks every `step` cells, at least ~48 pixels apart */
  double step = nice_step (48.0 / s);
  cairo_set_line_width (cr, 1.0);
  for (double r = ceil ((row_start + r0) / step) * step; r < row_start + r1; r += step)
    {
      double x, y;
      lsc_heatmap_model_cell_to_pixel (self->model, (int) r - row_start, 0, &x, &y);
      if (y < 0 || y > ph)
        continue;
      g_autofree char *t = g_strdup_printf ("%.0f", r);
      cairo_move_to (cr, MARGIN_LEFT - 3, MARGIN_TOP + y + 0.5);
      cairo_line_to (cr, MARGIN_LEFT, MARGIN_TOP + y + 0.5);
      cairo_stroke (cr);
      draw_text_right (self, cr, t, MARGIN_LEFT - 5, MARGIN_TOP + y, MARGIN_LEFT - 8);
    }
  for (double c = ceil (c0 / step) * step; c < c1; c += step)
    {
      double x, y;
      lsc_heatmap_model_cell_to_pixel (self->model, 0, (int) c, &x, &y);
      if (x < 0 || x > pw)
        continue;
      g_autofree char *t = g_strdup_printf ("%.0f", c);
      g_autoptr(PangoLayout) layout = make_layout (self, t);
      int lw, lh;
      pango_layout_get_pixel_size (layout, &lw, &lh);
      cairo_move_to (cr, MARGIN_LEFT + x + 0.5, MARGIN_TOP + ph);
      cairo_line_to (cr, MARGIN_LEFT + x + 0.5, MARGIN_TOP + ph + 3);
      cairo_stroke (cr);
      cairo_move_to (cr, MARGIN_LEFT + x - lw / 2.0, MARGIN_TOP + ph + 4);
      pango_cairo_show_layout (cr, layout);
    }
  /* axis names */
  g_autoptr(PangoLayout) kl = make_layout (self, _("Key position"));
  int lw, lh;
  pango_layout_get_pixel_size (kl, &lw, &lh);
  cairo_move_to (cr, MARGIN_LEFT + pw / 2 - lw / 2.0, MARGIN_TOP + ph + MARGIN_BOTTOM - lh - 2);
  pango_cairo_show_layout (cr, kl);
  g_autoptr(PangoLayout) ql = make_layout (self, _("Query position"));
  pango_layout_get_pixel_size (ql, &lw, &lh);
  cairo_save (cr);
  cairo_translate (cr, 2, MARGIN_TOP + ph / 2 + lw / 2.0);
  cairo_rotate (cr, -G_PI / 2);
  cairo_move_to (cr, 0, 0);
  pango_cairo_show_layout (cr, ql);
  cairo_restore (cr);
}

static void
draw_colorbar (LscHeatmap *self, cairo_t *cr, double pw, double ph, GdkRGBA *fg)
{
  double x = MARGIN_LEFT + pw + COLORBAR_GAP;
  int n = MAX (1, (int) ph);
  for (int i = 0; i < n; i++)
    {
      guint8 r, g, b;
      lsc_colormap_rgb (self->colormap, 1.0 - (i + 0.5) / n, &r, &g, &b);
      cairo_set_source_rgb (cr, r / 255.0, g / 255.0, b / 255.0);
      cairo_rectangle (cr, x, MARGIN_TOP + i * ph / n, COLORBAR_WIDTH, ph / n + 0.5);
      cairo_fill (cr);
    }
  gdk_cairo_set_source_rgba (cr, fg);
  static const double ts[] = { 1.0, 0.5, 0.0 };
  for (guint k = 0; k < G_N_ELEMENTS (ts); k++)
    {
      g_autofree char *t = g_strdup_printf ("%.3g", lsc_scale_unmap (self->scale, ts[k]));
      g_autoptr(PangoLayout) layout = make_layout (self, t);
      int lw, lh;
      pango_layout_get_pixel_size (layout, &lw, &lh);
      double y = MARGIN_TOP + (1.0 - ts[k]) * ph - lh / 2.0;
      y = CLAMP (y, 0, MARGIN_TOP + ph - lh);
      cairo_move_to (cr, x + COLORBAR_WIDTH + 4, y);
      pango_cairo_show_layout (cr, layout);
    }
}

static void
lsc_heatmap_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  LscHeatmap *self = LSC_HEATMAP (widget);
  double pw, ph;
  plot_size (self, &pw, &ph);
  if (self->source == NULL || pw <= 0 || ph <= 0)
    return;

  if (self->texture == NULL)
    self->texture = render_texture (self, pw, ph);
  if (self->texture != NULL)
    gtk_snapshot_append_texture (snapshot, self->texture,
                                 &GRAPHENE_RECT_INIT (MARGIN_LEFT, MARGIN_TOP, pw, ph));

  GdkRGBA fg;
  gtk_style_context_get_color (gtk_widget_get_style_context (widget), &fg);  /* gtk_widget_get_color is 4.10 */
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot,
      &GRAPHENE_RECT_INIT (0, 0, gtk_widget_get_width (widget), gtk_widget_get_height (widget)));
  draw_axes (self, cr, pw, ph, &fg);
  if (self->scale != NULL)
    draw_colorbar (self, cr, pw, ph, &fg);

  /* the hovered cell, uncached */
  if (self->hover_row >= 0)
    {
      double x, y, s = lsc_heatmap_model_get_cell_size (self->model);
      lsc_heatmap_model_cell_to_pixel (self->model, self->hover_row, self->hover_col, &x, &y);
      cairo_rectangle (cr, MARGIN_LEFT, MARGIN_TOP, pw, ph);
      cairo_clip (cr);
      cairo_set_line_width (cr, 1.5);
      cairo_set_source_rgb (cr, 1, 1, 1);
      if (s >= 3)
        cairo_rectangle (cr, MARGIN_LEFT + x, MARGIN_TOP + y, s, s);
      else
        {
          /* crosshair for sub-pixel cells */
          cairo_move_to (cr, MARGIN_LEFT + x, MARGIN_TOP);
          cairo_line_to (cr, MARGIN_LEFT + x, MARGIN_TOP + ph);
          cairo_move_to (cr, MARGIN_LEFT, MARGIN_TOP + y);
          cairo_line_to (cr, MARGIN_LEFT + pw, MARGIN_TOP + y);
        }
      cairo_stroke (cr);
    }
  cairo_destroy (cr);
}

static void
lsc_heatmap_size_allocate (GtkWidget *widget, int width, int height, int baseline)
{
  LscHeatmap *self = LSC_HEATMAP (widget);
  double pw = MAX (0.0, width - MARGIN_LEFT - MARGIN_RIGHT);
  double ph = MAX (0.0, height - MARGIN_TOP - MARGIN_BOTTOM);
  lsc_heatmap_model_set_viewport (self->model, pw, ph);
  invalidate (self);
}

static void
lsc_heatmap_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                     int *minimum, int *natural, int *minimum_baseline, int *natural_baseline)
{
  *minimum = 200;
  *natural = 480;
}

/* -------------------------------------------------------- interaction */

static void
set_hover (LscHeatmap *self, double x, double y)
{
  int row = -1, col = -1;
  self->pointer_x = x;
  self->pointer_y = y;
  if (self->source == NULL
      || !lsc_heatmap_model_pixel_to_cell (self->model, x - MARGIN_LEFT, y - MARGIN_TOP, &row, &col))
    row = col = -1;
  if (row != self->hover_row || col != self->hover_col)
    {
      self->hover_row = row;
      self->hover_col = col;
      gtk_widget_queue_draw (GTK_WIDGET (self));
    }
}

static void
on_motion (GtkEventControllerMotion *motion, double x, double y, LscHeatmap *self)
{
  set_hover (self, x, y);
}

static void
on_leave (GtkEventControllerMotion *motion, LscHeatmap *self)
{
  set_hover (self, -1, -1);
}

static gboolean
on_scroll (GtkEventControllerScroll *scroll, double dx, double dy, LscHeatmap *self)
{
  if (self->source == NULL || dy == 0)
    return FALSE;
  double factor = pow (G_SQRT2, -dy);
  lsc_heatmap_model_zoom_at (self->model, factor, self->pointer_x - MARGIN_LEFT,
                             self->pointer_y - MARGIN_TOP);
  set_hover (self, self->pointer_x, self->pointer_y);
  return TRUE;
}

static void
on_drag_begin (GtkGestureDrag *drag, double x, double y, LscHeatmap *self)
{
  self->drag_last_x = 0;
  self->drag_last_y = 0;
  gtk_widget_grab_focus (GTK_WIDGET (self));
}

static void
on_drag_update (GtkGestureDrag *drag, double ox, double oy, LscHeatmap *self)
{
  lsc_heatmap_model_pan (self->model, ox - self->drag_last_x, oy - self->drag_last_y);
  self->drag_last_x = ox;
  self->drag_last_y = oy;
}

static gboolean
on_query_tooltip (GtkWidget *widget, int x, int y, gboolean keyboard, GtkTooltip *tooltip,
                  LscHeatmap *self)
{
  int row, col;
  if (self->source == NULL
      || !lsc_heatmap_model_pixel_to_cell (self->model, x - MARGIN_LEFT, y - MARGIN_TOP, &row, &col))
    return FALSE;
  float p;
  g_autoptr(GError) error = NULL;
  if (!lsc_attention_source_get_prob (self->source, row, col, &p, &error))
    return FALSE;
  int qpos = lsc_attention_source_get_row_start (self->source) + row;
  const char *qt = label_at (self, qpos), *kt = label_at (self, col);
  g_autofree char *prob = isnan (p) ? g_strdup (_("masked")) : g_strdup_printf ("%.4g", p);
  /* Translators: hover read-out of the attention heatmap */
  g_autofree char *text = g_strdup_printf (_("Query %d “%s”\nKey %d “%s”\nProbability %s"),
                                           qpos, qt ? qt : "", col, kt ? kt : "", prob);
  gtk_tooltip_set_text (tooltip, text);
  return TRUE;
}

static void
zoom_action (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  LscHeatmap *self = LSC_HEATMAP (widget);
  if (g_str_equal (action_name, "zoom.in"))
    lsc_heatmap_model_zoom_in (self->model);
  else if (g_str_equal (action_name, "zoom.out"))
    lsc_heatmap_model_zoom_out (self->model);
  else
    lsc_heatmap_model_zoom_reset (self->model);
}

/* --------------------------------------------------------------- class */

static void
lsc_heatmap_dispose (GObject *object)
{
  LscHeatmap *self = LSC_HEATMAP (object);
  if (self->model != NULL)
    g_signal_handlers_disconnect_by_data (self->model, self);
  g_clear_object (&self->model);
  g_clear_object (&self->texture);
  g_clear_pointer (&self->grid, lsc_attention_grid_free);
  g_clear_pointer (&self->scale, lsc_scale_free);
  g_clear_pointer (&self->source, lsc_attention_source_free);
  g_clear_pointer (&self->labels, g_ptr_array_unref);
  g_clear_pointer (&self->title, g_free);
  G_OBJECT_CLASS (lsc_heatmap_parent_class)->dispose (object);
}

static void
lsc_heatmap_class_init (LscHeatmapClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = lsc_heatmap_dispose;
  widget_class->snapshot = lsc_heatmap_snapshot;
  widget_class->size_allocate = lsc_heatmap_size_allocate;
  widget_class->measure = lsc_heatmap_measure;

  gtk_widget_class_install_action (widget_class, "zoom.in", NULL, zoom_action);
  gtk_widget_class_install_action (widget_class, "zoom.out", NULL, zoom_action);
  gtk_widget_class_install_action (widget_class, "zoom.reset", NULL, zoom_action);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_plus, GDK_CONTROL_MASK, "zoom.in", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_equal, GDK_CONTROL_MASK, "zoom.in", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Add, GDK_CONTROL_MASK, "zoom.in", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_minus, GDK_CONTROL_MASK, "zoom.out", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Subtract, GDK_CONTROL_MASK, "zoom.out", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_0, GDK_CONTROL_MASK, "zoom.reset", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_0, GDK_CONTROL_MASK, "zoom.reset", NULL);

  gtk_widget_class_set_css_name (widget_class, "heatmap");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
lsc_heatmap_init (LscHeatmap *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  self->model = lsc_heatmap_model_new ();
  self->colormap = LSC_COLORMAP_VIRIDIS;
  self->scale_kind = LSC_SCALE_LINEAR;
  self->hover_row = self->hover_col = -1;
  self->pointer_x = self->pointer_y = -1;
  g_signal_connect_swapped (self->model, "changed", G_CALLBACK (on_model_changed), self);

  gtk_widget_set_focusable (widget, TRUE);
  gtk_widget_set_has_tooltip (widget, TRUE);
  g_signal_connect (widget, "query-tooltip", G_CALLBACK (on_query_tooltip), self);

  GtkEventController *motion = gtk_event_controller_motion_new ();
  g_signal_connect (motion, "motion", G_CALLBACK (on_motion), self);
  g_signal_connect (motion, "leave", G_CALLBACK (on_leave), self);
  gtk_widget_add_controller (widget, motion);

  GtkEventController *scroll = gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_VERTICAL);
  g_signal_connect (scroll, "scroll", G_CALLBACK (on_scroll), self);
  gtk_widget_add_controller (widget, scroll);

  GtkGesture *drag = gtk_gesture_drag_new ();
  g_signal_connect (drag, "drag-begin", G_CALLBACK (on_drag_begin), self);
  g_signal_connect (drag, "drag-update", G_CALLBACK (on_drag_update), self);
  gtk_widget_add_controller (widget, GTK_EVENT_CONTROLLER (drag));

  update_actions (self);
}

GtkWidget *
lsc_heatmap_new (void)
{
  return g_object_new (LSC_TYPE_HEATMAP, NULL);
}

LscHeatmapModel *
lsc_heatmap_get_model (LscHeatmap *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP (self), NULL);
  return self->model;
}

LscAttentionSource *
lsc_heatmap_get_source (LscHeatmap *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP (self), NULL);
  return self->source;
}

void
lsc_heatmap_set_source (LscHeatmap *self, LscAttentionSource *source, const char *const *labels,
                        int n_labels, const char *title)
{
  g_return_if_fail (LSC_IS_HEATMAP (self));
  g_clear_pointer (&self->grid, lsc_attention_grid_free);
  g_clear_pointer (&self->source, lsc_attention_source_free);
  g_clear_pointer (&self->labels, g_ptr_array_unref);
  g_free (self->title);
  self->title = g_strdup (title);
  self->source = source;
  if (labels != NULL)
    {
      self->labels = g_ptr_array_new_full (n_labels, g_free);
      for (int i = 0; i < n_labels; i++)
        g_ptr_array_add (self->labels, lsc_figure_escape_token (labels[i] ? labels[i] : ""));
    }
  rebuild_scale (self);
  if (source != NULL)
    {
      int rows = lsc_attention_source_get_rows (source), cols = lsc_attention_source_get_cols (source);
      if (rows == lsc_heatmap_model_get_rows (self->model)
          && cols == lsc_heatmap_model_get_cols (self->model))
        lsc_heatmap_model_zoom_reset (self->model);  /* same size: still start from the whole map */
      lsc_heatmap_model_set_data_size (self->model, rows, cols);
    }
  else
    lsc_heatmap_model_set_data_size (self->model, 0, 0);
  self->hover_row = self->hover_col = -1;
  invalidate (self);
}

void
lsc_heatmap_set_colormap (LscHeatmap *self, LscColormap colormap)
{
  g_return_if_fail (LSC_IS_HEATMAP (self));
  if (self->colormap == colormap)
    return;
  self->colormap = colormap;
  rebuild_scale (self);
  invalidate (self);
}

void
lsc_heatmap_set_scale_kind (LscHeatmap *self, LscScaleKind kind)
{
  g_return_if_fail (LSC_IS_HEATMAP (self));
  if (self->scale_kind == kind)
    return;
  self->scale_kind = kind;
  rebuild_scale (self);
  invalidate (self);
}

gboolean
lsc_heatmap_export (LscHeatmap *self, const char *path, GError **error)
{
  g_return_val_if_fail (LSC_IS_HEATMAP (self), FALSE);
  int r0, r1, c0, c1;
  if (self->source == NULL || !lsc_heatmap_model_get_visible (self->model, &r0, &r1, &c0, &c1))
    {
      g_set_error_literal (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA,
                           _("There is no attention map to export"));
      return FALSE;
    }
  g_autoptr(LscAttentionGrid) g =
      lsc_attention_source_fetch (self->source, r0, r1, c0, c1,
                                  (gsize) EXPORT_MAX_SIDE * EXPORT_MAX_SIDE, error);
  if (g == NULL)
    return FALSE;
  int row_start = lsc_attention_source_get_row_start (self->source);

  LscHeatmapParams hp;
  lsc_heatmap_params_init (&hp);
  g_autofree char *title = g->block == 1 ? g_strdup (self->title)
      /* Translators: a figure title; %s is "Layer 1, head 2", %d the pooling block */
      : g_strdup_printf (_("%s (block max over %d × %d)"), self->title ? self->title : "",
                         g->block, g->block);
  hp.title = title;
  hp.x_label = _("Key position");
  hp.y_label = _("Query position");
  hp.colorbar_label = _("Attention probability");
  hp.colormap = self->colormap;
  hp.scale.kind = self->scale_kind;
  hp.scale.diverging = lsc_colormap_is_diverging (self->colormap);
  hp.row_offset = g->block == 1 ? row_start + g->r0 : 0;
  hp.col_offset = g->block == 1 ? g->c0 : 0;
  g_autofree const char **rl = NULL, **cl = NULL;
  if (g->block == 1 && self->labels != NULL)
    {
      rl = g_new0 (const char *, g->rows);
      cl = g_new0 (const char *, g->cols);
      for (int i = 0; i < g->rows; i++)
        rl[i] = label_at (self, row_start + g->r0 + i) ? label_at (self, row_start + g->r0 + i) : "";
      for (int j = 0; j < g->cols; j++)
        cl[j] = label_at (self, g->c0 + j) ? label_at (self, g->c0 + j) : "";
      hp.row_labels = rl;
      hp.col_labels = cl;
    }
  g_autoptr(LscFigure) fig = lsc_figure_new_heatmap (g->values, g->rows, g->cols, &hp, error);
  if (fig == NULL)
    return FALSE;
  LscFigureOutput out;
  lsc_figure_output_init (&out);
  return lsc_figure_save (fig, path, &out, error);
}
