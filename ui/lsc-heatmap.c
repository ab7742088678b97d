/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>
#include <omp.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

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

/* A view of the map: what one rendered frame shows. */
typedef struct {
  double cell;                    /* pixels per cell */
  double oc, orow;                /* cell coordinates (column, row) of the top-left corner */
  double pw, ph;                  /* plot area, pixels */
  int sf;                         /* device pixels per pixel */
} View;

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

  /* rendering (see "rendering" below) */
  guint generation;               /* bumped when the source, scale or colour map changes */
  LscAttentionGrid *grid;         /* (nullable) last fetched region; a job owns it meanwhile */
  gboolean rendering;             /* a job is running */
  gboolean render_again;          /* the view changed while it ran */
  GdkTexture *frame;              /* (nullable) the last rendered plot area, one texel per device pixel */
  GBytes *frame_pixels;           /* (nullable) its pixels, */
  cairo_surface_t *frame_surface; /* (nullable) and the same pixels for cairo */
  View frame_view;                /* what it shows */
  guint frame_generation;

  /* interaction */
  double pointer_x, pointer_y;    /* widget coordinates */
  int hover_row, hover_col;       /* -1: none */
  double drag_last_x, drag_last_y;
  gboolean selecting;             /* this drag draws a selection (Shift) */
  double drag_start_x, drag_start_y;
  double pinch_zoom;              /* zoom when the pinch began */

  /* the selection's summed probability, computed on a worker thread */
  GCancellable *mass_pending;     /* (nullable) */
  int mass_sel[4];                /* the selection it is for: r0, r1, c0, c1 */
  double mass;                    /* NAN until known */
};

G_DEFINE_FINAL_TYPE (LscHeatmap, lsc_heatmap, GTK_TYPE_WIDGET)

static void
plot_size (LscHeatmap *self, double *w, double *h)
{
  *w = MAX (0.0, gtk_widget_get_width (GTK_WIDGET (self)) - MARGIN_LEFT - MARGIN_RIGHT);
  *h = MAX (0.0, gtk_widget_get_height (GTK_WIDGET (self)) - MARGIN_TOP - MARGIN_BOTTOM);
}

static void request_render (LscHeatmap *self);

/* The view changed: draw the last frame moved and scaled to it now, and
 * render the new one on a worker thread. */
static void
invalidate (LscHeatmap *self)
{
  request_render (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

/* The content changed (source, scale, colour map): frames in flight are stale. */
static void
invalidate_content (LscHeatmap *self)
{
  self->generation++;
  g_clear_pointer (&self->grid, lsc_attention_grid_free);
  if (self->source == NULL)
    {
      g_clear_object (&self->frame);
      g_clear_pointer (&self->frame_surface, cairo_surface_destroy);
      g_clear_pointer (&self->frame_pixels, g_bytes_unref);
    }
  invalidate (self);
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
  g_clear_pointer (&self->scale, lsc_scale_unref);
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

/* --------------------------------------------------------- rendering
 *
 * Frames are rendered on a worker thread, one at a time: a job takes
 * references to the source and the scale, the current view and the grid
 * cache, fetches the visible region (pyramid blocks or exact tiles) and
 * colours one texel per device pixel. Until it is back, snapshot () draws
 * the previous frame moved and scaled to the current view, so panning and
 * zooming never wait for a fetch; views that change while a job runs are
 * coalesced into one more job. */

typedef struct {
  LscAttentionSource *source;
  LscScale *scale;
  LscColormap colormap;
  View view;
  int n_rows, n_cols;
  int r0, r1, c0, c1;             /* visible cells */
  guint generation;
  LscAttentionGrid *grid;         /* (nullable) in: the cache; out: the grid used */
  GBytes *pixels;                 /* (nullable) out: (th, tw) GDK_MEMORY_DEFAULT */
  int tw, th;
} RenderJob;

static void
render_job_free (gpointer data)
{
  RenderJob *job = data;
  lsc_attention_source_unref (job->source);
  lsc_scale_unref (job->scale);
  lsc_attention_grid_free (job->grid);
  g_clear_pointer (&job->pixels, g_bytes_unref);
  g_free (job);
}

static gboolean
view_equal (const View *a, const View *b)
{
  return a->cell == b->cell && a->oc == b->oc && a->orow == b->orow && a->pw == b->pw
         && a->ph == b->ph && a->sf == b->sf;
}

static View
current_view (LscHeatmap *self)
{
  View v;
  v.cell = lsc_heatmap_model_get_cell_size (self->model);
  lsc_heatmap_model_get_origin (self->model, &v.oc, &v.orow);
  plot_size (self, &v.pw, &v.ph);
  v.sf = gtk_widget_get_scale_factor (GTK_WIDGET (self));
  return v;
}

/* job->grid <- a grid covering the visible cells at no more than
 * max_values values, the cached one when it is fine enough and not much
 * larger. */
static gboolean
job_fetch (RenderJob *job, gsize max_values, GError **error)
{
  const LscAttentionGrid *g = job->grid;
  if (g != NULL && lsc_attention_grid_covers (g, job->r0, job->r1, job->c0, job->c1))
    {
      gsize want = (gsize) (job->r1 - job->r0) * (job->c1 - job->c0);
      gsize have = (gsize) g->rows * g->cols * g->block * g->block;
      gboolean fine_enough = g->block == 1 || want > max_values;
      if (fine_enough && have <= 4 * want + 4096)
        return TRUE;
    }
  g_clear_pointer (&job->grid, lsc_attention_grid_free);
  job->grid = lsc_attention_source_fetch (job->source, job->r0, job->r1, job->c0, job->c1,
                                          max_values, error);
  return job->grid != NULL;
}

static void
render_in_thread (GTask *task, gpointer object, gpointer data, GCancellable *cancellable)
{
  RenderJob *job = data;
  const View *v = &job->view;
  GError *error = NULL;
  /* exact tiles on all cores but one: the other draws the frames meanwhile */
  omp_set_num_threads (MAX (1, (int) g_get_num_processors () - 1));
  job->tw = (int) ceil (v->pw * v->sf);
  job->th = (int) ceil (v->ph * v->sf);
  if (!job_fetch (job, (gsize) job->tw * job->th, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  const LscAttentionGrid *g = job->grid;

  /* colour of each grid value, once */
  g_autofree guint8 *colors = g_new (guint8, (gsize) g->rows * g->cols * 3);  /* (rows, cols, rgb) */
  for (gsize i = 0; i < (gsize) g->rows * g->cols; i++)
    {
      double t = lsc_scale_map (job->scale, g->values[i]);
      lsc_colormap_rgb (job->colormap, t, &colors[3 * i], &colors[3 * i + 1], &colors[3 * i + 2]);
    }

  /* device pixel -> grid index, per column and per row; -1 outside */
  double s = v->cell * v->sf;
  g_autofree int *gx = g_new (int, job->tw);   /* (tw) */
  g_autofree int *gy = g_new (int, job->th);   /* (th) */
  for (int x = 0; x < job->tw; x++)
    {
      double c = floor (v->oc + (x + 0.5) / s);
      int j = c < 0 || c >= job->n_cols ? -1 : ((int) c - g->c0) / g->block;
      gx[x] = j >= 0 && j < g->cols ? j : -1;
    }
  for (int y = 0; y < job->th; y++)
    {
      double r = floor (v->orow + (y + 0.5) / s);
      int i = r < 0 || r >= job->n_rows ? -1 : ((int) r - g->r0) / g->block;
      gy[y] = i >= 0 && i < g->rows ? i : -1;
    }

  gsize stride = (gsize) job->tw * 4;
  guint8 *pixels = g_malloc0 (stride * job->th);   /* 0 = transparent */
  for (int y = 0; y < job->th; y++)
    {
      if (gy[y] < 0)
        continue;
      guint8 *row = pixels + stride * y;
      const guint8 *crow = colors + (gsize) gy[y] * g->cols * 3;
      for (int x = 0; x < job->tw; x++)
        {
          if (gx[x] < 0)
            continue;
          const guint8 *c = crow + 3 * gx[x];
          row[4 * x] = c[2];       /* GDK_MEMORY_DEFAULT: cairo's own ARGB32, no conversion */
          row[4 * x + 1] = c[1];
          row[4 * x + 2] = c[0];
          row[4 * x + 3] = 255;
        }
    }
  job->pixels = g_bytes_new_take (pixels, stride * job->th);
  g_task_return_boolean (task, TRUE);
}

static void
on_render_done (GObject *object, GAsyncResult *result, gpointer data)
{
  LscHeatmap *self = LSC_HEATMAP (object);
  RenderJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  gboolean ok = g_task_propagate_boolean (G_TASK (result), &error);
  self->rendering = FALSE;
  if (self->model == NULL)    /* disposed meanwhile */
    return;
  if (job->generation == self->generation)
    {
      g_clear_pointer (&self->grid, lsc_attention_grid_free);
      self->grid = g_steal_pointer (&job->grid);
      if (ok)
        {
          g_clear_object (&self->frame);
          self->frame = gdk_memory_texture_new (job->tw, job->th, GDK_MEMORY_DEFAULT, job->pixels,
                                                (gsize) job->tw * 4);
          g_clear_pointer (&self->frame_surface, cairo_surface_destroy);
          g_clear_pointer (&self->frame_pixels, g_bytes_unref);
          self->frame_pixels = g_bytes_ref (job->pixels);
          self->frame_surface = cairo_image_surface_create_for_data (
              (guchar *) g_bytes_get_data (job->pixels, NULL), CAIRO_FORMAT_ARGB32, job->tw,
              job->th, job->tw * 4);
          self->frame_view = job->view;
          self->frame_generation = job->generation;
          gtk_widget_queue_draw (GTK_WIDGET (self));
        }
      else
        g_warning ("heatmap: %s", error->message);
    }
  if (self->render_again)
    {
      self->render_again = FALSE;
      request_render (self);
    }
}

static void
render_pool_func (gpointer data, gpointer pool_data)
{
  static gsize lowered;
#ifdef __linux__
  /* Below the main loop (and the display server): on two cores a busy
   * renderer would otherwise stretch the frames it is meant to spare. */
  if (g_once_init_enter (&lowered))
    {
      setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), 10);
      g_once_init_leave (&lowered, 1);
    }
#endif
  g_autoptr(GTask) task = data;
  render_in_thread (task, g_task_get_source_object (task), g_task_get_task_data (task), NULL);
}

/* One thread, shared by every heatmap, that renders frames. */
static GThreadPool *
render_pool (void)
{
  static GThreadPool *pool;
  if (g_once_init_enter (&pool))
    g_once_init_leave (&pool, g_thread_pool_new (render_pool_func, NULL, 1, TRUE, NULL));
  return pool;
}

/* Starts a job for the current view unless one runs (then once more after
 * it) or the last frame already shows it. */
static void
request_render (LscHeatmap *self)
{
  if (self->rendering)
    {
      self->render_again = TRUE;
      return;
    }
  View v = current_view (self);
  int r0, r1, c0, c1;
  if (self->source == NULL || self->scale == NULL || v.pw <= 0 || v.ph <= 0
      || !lsc_heatmap_model_get_visible (self->model, &r0, &r1, &c0, &c1))
    return;
  if (self->frame != NULL && self->frame_generation == self->generation
      && view_equal (&self->frame_view, &v))
    return;

  RenderJob *job = g_new0 (RenderJob, 1);
  job->source = lsc_attention_source_ref (self->source);
  job->scale = lsc_scale_ref (self->scale);
  job->colormap = self->colormap;
  job->view = v;
  job->n_rows = lsc_heatmap_model_get_rows (self->model);
  job->n_cols = lsc_heatmap_model_get_cols (self->model);
  job->r0 = r0, job->r1 = r1, job->c0 = c0, job->c1 = c1;
  job->generation = self->generation;
  job->grid = g_steal_pointer (&self->grid);
  self->rendering = TRUE;
  GTask *task = g_task_new (self, NULL, on_render_done, NULL);
  g_task_set_source_tag (task, request_render);
  g_task_set_task_data (task, job, render_job_free);
  g_thread_pool_push (render_pool (), task, NULL);
}

gboolean
lsc_heatmap_is_current (LscHeatmap *self)
{
  g_return_val_if_fail (LSC_IS_HEATMAP (self), FALSE);
  if (self->source == NULL || self->scale == NULL)
    return TRUE;
  View v = current_view (self);
  return !self->rendering && self->frame != NULL && self->frame_generation == self->generation
         && view_equal (&self->frame_view, &v);
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

/* ---------------------------------------------------------- selection */

typedef struct {
  LscAttentionSource *source;
  int sel[4];
} MassJob;

static void
mass_job_free (gpointer data)
{
  MassJob *job = data;
  lsc_attention_source_unref (job->source);
  g_free (job);
}

static void
mass_in_thread (GTask *task, gpointer object, gpointer data, GCancellable *cancellable)
{
  MassJob *job = data;
  double *mass = g_new (double, 1);
  GError *error = NULL;
  omp_set_num_threads (MAX (1, (int) g_get_num_processors () - 1));
  if (lsc_attention_source_get_mass (job->source, job->sel[0], job->sel[1], job->sel[2],
                                     job->sel[3], mass, &error))
    g_task_return_pointer (task, mass, g_free);
  else
    {
      g_free (mass);
      g_task_return_error (task, error);
    }
}

static void
on_mass_done (GObject *object, GAsyncResult *result, gpointer data)
{
  g_autoptr(LscHeatmap) self = data;
  g_autoptr(GError) error = NULL;
  g_autofree double *mass = g_task_propagate_pointer (G_TASK (result), &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || self->model == NULL)
    return;
  g_clear_object (&self->mass_pending);
  if (mass == NULL)
    {
      g_warning ("heatmap selection: %s", error->message);
      return;
    }
  self->mass = *mass;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

gboolean
lsc_heatmap_select (LscHeatmap *self, double x0, double y0, double x1, double y1)
{
  g_return_val_if_fail (LSC_IS_HEATMAP (self), FALSE);
  if (self->mass_pending != NULL)
    g_cancellable_cancel (self->mass_pending);
  g_clear_object (&self->mass_pending);
  self->mass = NAN;
  int *sel = self->mass_sel;
  if (self->source == NULL
      || !lsc_heatmap_model_select (self->model, x0, y0, x1, y1)
      || !lsc_heatmap_model_get_selection (self->model, &sel[0], &sel[1], &sel[2], &sel[3]))
    return FALSE;
  MassJob *job = g_new0 (MassJob, 1);
  job->source = lsc_attention_source_ref (self->source);
  memcpy (job->sel, sel, sizeof job->sel);
  self->mass_pending = g_cancellable_new ();
  g_autoptr(GTask) task = g_task_new (NULL, self->mass_pending, on_mass_done, g_object_ref (self));
  g_task_set_task_data (task, job, mass_job_free);
  g_task_run_in_thread (task, mass_in_thread);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  return TRUE;
}

gboolean
lsc_heatmap_get_selection_mass (LscHeatmap *self, double *mass)
{
  g_return_val_if_fail (LSC_IS_HEATMAP (self), FALSE);
  int r0, r1, c0, c1;
  if (!lsc_heatmap_model_get_selection (self->model, &r0, &r1, &c0, &c1) || isnan (self->mass)
      || r0 != self->mass_sel[0] || r1 != self->mass_sel[1] || c0 != self->mass_sel[2]
      || c1 != self->mass_sel[3])
    return FALSE;
  *mass = self->mass;
  return TRUE;
}

/* The selection's outline and what it holds, over the plot. */
static void
draw_selection (LscHeatmap *self, cairo_t *cr, double pw, double ph)
{
  int r0, r1, c0, c1;
  if (!lsc_heatmap_model_get_selection (self->model, &r0, &r1, &c0, &c1))
    return;
  double x0, y0, x1, y1;
  lsc_heatmap_model_cell_to_pixel (self->model, r0, c0, &x0, &y0);
  lsc_heatmap_model_cell_to_pixel (self->model, r1, c1, &x1, &y1);
  cairo_save (cr);
  cairo_rectangle (cr, MARGIN_LEFT, MARGIN_TOP, pw, ph);
  cairo_clip (cr);
  cairo_rectangle (cr, MARGIN_LEFT + x0, MARGIN_TOP + y0, MAX (x1 - x0, 1), MAX (y1 - y0, 1));
  cairo_set_source_rgba (cr, 1, 1, 1, 0.12);
  cairo_fill_preserve (cr);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_set_line_width (cr, 1.5);
  static const double dash[] = { 4, 3 };
  cairo_set_dash (cr, dash, 2, 0);
  cairo_stroke (cr);

  double mass;
  int rows = r1 - r0;
  g_autofree char *text = lsc_heatmap_get_selection_mass (self, &mass)
      /* Translators: the summed attention probability in a rubber-band
       * selection of query rows and keys, and its mean per query row */
      ? g_strdup_printf (_("Σ p = %.4g: %d query rows × %d keys, %.3g per row"), mass, rows,
                         c1 - c0, mass / rows)
      : g_strdup_printf (_("Σ p = …: %d query rows × %d keys"), rows, c1 - c0);
  g_autoptr(PangoLayout) layout = make_layout (self, text);
  int lw, lh;
  pango_layout_get_pixel_size (layout, &lw, &lh);
  double tx = CLAMP (MARGIN_LEFT + x0, MARGIN_LEFT, MARGIN_LEFT + pw - lw - 8);
  double ty = CLAMP (MARGIN_TOP + y0 - lh - 6, MARGIN_TOP, MARGIN_TOP + ph - lh - 4);
  cairo_set_source_rgba (cr, 0, 0, 0, 0.7);
  cairo_rectangle (cr, tx, ty, lw + 8, lh + 4);
  cairo_fill (cr);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_move_to (cr, tx + 4, ty + 2);
  pango_cairo_show_layout (cr, layout);
  cairo_restore (cr);
}

static void
lsc_heatmap_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  LscHeatmap *self = LSC_HEATMAP (widget);
  double pw, ph;
  plot_size (self, &pw, &ph);
  if (self->source == NULL || pw <= 0 || ph <= 0)
    return;

  const View *f = &self->frame_view;
  View v = current_view (self);
  if (self->frame != NULL && view_equal (f, &v))
    gtk_snapshot_append_texture (snapshot, self->frame,
                                 &GRAPHENE_RECT_INIT (MARGIN_LEFT, MARGIN_TOP, pw, ph));
  else if (self->frame != NULL)
    {
      /* the last frame, moved and scaled to the current view; nearest
       * neighbour, which is quick and keeps cells square-edged */
      double k = v.cell / f->cell;
      cairo_t *fcr = gtk_snapshot_append_cairo (snapshot,
                                                &GRAPHENE_RECT_INIT (MARGIN_LEFT, MARGIN_TOP, pw, ph));
      cairo_rectangle (fcr, MARGIN_LEFT, MARGIN_TOP, pw, ph);
      cairo_clip (fcr);
      cairo_translate (fcr, MARGIN_LEFT + (f->oc - v.oc) * v.cell, MARGIN_TOP + (f->orow - v.orow) * v.cell);
      cairo_scale (fcr, k / f->sf, k / f->sf);
      cairo_set_source_surface (fcr, self->frame_surface, 0, 0);
      cairo_pattern_set_filter (cairo_get_source (fcr), CAIRO_FILTER_FAST);
      cairo_paint (fcr);
      cairo_destroy (fcr);
    }

  GdkRGBA fg;
  gtk_style_context_get_color (gtk_widget_get_style_context (widget), &fg);  /* gtk_widget_get_color is 4.10 */
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot,
      &GRAPHENE_RECT_INIT (0, 0, gtk_widget_get_width (widget), gtk_widget_get_height (widget)));
  draw_axes (self, cr, pw, ph, &fg);
  if (self->scale != NULL)
    draw_colorbar (self, cr, pw, ph, &fg);

  draw_selection (self, cr, pw, ph);

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
  GdkModifierType state =
      gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (drag));
  self->selecting = (state & GDK_SHIFT_MASK) != 0;
  self->drag_start_x = x - MARGIN_LEFT;
  self->drag_start_y = y - MARGIN_TOP;
  self->drag_last_x = 0;
  self->drag_last_y = 0;
  gtk_widget_grab_focus (GTK_WIDGET (self));
}

static void
on_drag_update (GtkGestureDrag *drag, double ox, double oy, LscHeatmap *self)
{
  if (self->selecting)
    lsc_heatmap_model_select (self->model, self->drag_start_x, self->drag_start_y,
                              self->drag_start_x + ox, self->drag_start_y + oy);
  else
    lsc_heatmap_model_pan (self->model, ox - self->drag_last_x, oy - self->drag_last_y);
  self->drag_last_x = ox;
  self->drag_last_y = oy;
}

static void
on_drag_end (GtkGestureDrag *drag, double ox, double oy, LscHeatmap *self)
{
  if (self->selecting)
    lsc_heatmap_select (self, self->drag_start_x, self->drag_start_y,
                        self->drag_start_x + ox, self->drag_start_y + oy);
  else if (fabs (ox) < 3 && fabs (oy) < 3)
    lsc_heatmap_model_clear_selection (self->model);   /* a click */
}

static void
on_pinch_begin (GtkGesture *gesture, GdkEventSequence *sequence, LscHeatmap *self)
{
  self->pinch_zoom = lsc_heatmap_model_get_zoom (self->model);
}

static void
on_pinch_scale (GtkGestureZoom *gesture, double scale, LscHeatmap *self)
{
  double x, y;
  if (!gtk_gesture_get_bounding_box_center (GTK_GESTURE (gesture), &x, &y))
    return;
  double factor = self->pinch_zoom * scale / lsc_heatmap_model_get_zoom (self->model);
  lsc_heatmap_model_zoom_at (self->model, factor, x - MARGIN_LEFT, y - MARGIN_TOP);
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
  if (self->mass_pending != NULL)
    g_cancellable_cancel (self->mass_pending);
  g_clear_object (&self->mass_pending);
  g_clear_object (&self->frame);
  g_clear_pointer (&self->frame_surface, cairo_surface_destroy);
  g_clear_pointer (&self->frame_pixels, g_bytes_unref);
  g_clear_pointer (&self->grid, lsc_attention_grid_free);
  g_clear_pointer (&self->scale, lsc_scale_unref);
  g_clear_pointer (&self->source, lsc_attention_source_unref);
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
  self->mass = NAN;
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
  g_signal_connect (drag, "drag-end", G_CALLBACK (on_drag_end), self);
  gtk_widget_add_controller (widget, GTK_EVENT_CONTROLLER (drag));

  GtkGesture *pinch = gtk_gesture_zoom_new ();
  g_signal_connect (pinch, "begin", G_CALLBACK (on_pinch_begin), self);
  g_signal_connect (pinch, "scale-changed", G_CALLBACK (on_pinch_scale), self);
  gtk_widget_add_controller (widget, GTK_EVENT_CONTROLLER (pinch));

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
  g_clear_pointer (&self->source, lsc_attention_source_unref);
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
  invalidate_content (self);
}

void
lsc_heatmap_set_colormap (LscHeatmap *self, LscColormap colormap)
{
  g_return_if_fail (LSC_IS_HEATMAP (self));
  if (self->colormap == colormap)
    return;
  self->colormap = colormap;
  rebuild_scale (self);
  invalidate_content (self);
}

void
lsc_heatmap_set_scale_kind (LscHeatmap *self, LscScaleKind kind)
{
  g_return_if_fail (LSC_IS_HEATMAP (self));
  if (self->scale_kind == kind)
    return;
  self->scale_kind = kind;
  rebuild_scale (self);
  invalidate_content (self);
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
