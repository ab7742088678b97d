/* SPDX-License-Identifier: MIT
 *
 * bench-heatmap: how smoothly the heatmap widget pans and zooms a long map.
 *
 *   bench-heatmap [--tokens N] [--width W --height H] [--threads N]
 *
 * It captures one head of a one-layer model of the Llama-3.2-1B shape
 * (random weights; dim 2048, 32 heads of 64) over N tokens (default 16384),
 * shows that head in an LscHeatmap filling a W x H window (1280 x 800), and
 * drives a scripted session from the frame clock, one input per frame:
 * zoom in towards the diagonal, pan, zoom in until token labels show, pan,
 * wait, zoom out, wait. It reports
 *   - the interval between painted frames while input arrives, by the wall
 *     clock and by the frame clock's frame times, which step by whole
 *     refreshes (target: 95th percentile <= 16.7 ms, the last frame being
 *     moved and scaled while a worker renders the new one), and how many
 *     frames missed their refresh,
 *   - how long after the last input the frame on screen is the exact one
 *     for the view (target: <= 250 ms),
 * and the main thread's time per frame (before-paint to after-paint).
 * Runs under a display (tests/test-gui.sh starts a private Xvfb); registered
 * as a meson benchmark, never as a test.
 */
#include "config.h"

#include <gtk/gtk.h>
#include <math.h>

#include "lsc-heatmap.h"
#include "lsc-session.h"

static int opt_tokens = 16384;
static int opt_width = 1280;
static int opt_height = 800;
static int opt_threads;

static const GOptionEntry entries[] = {
  { "tokens", 0, 0, G_OPTION_ARG_INT, &opt_tokens, "Tokens of the map (16384)", "N" },
  { "width", 0, 0, G_OPTION_ARG_INT, &opt_width, "Window width (1280)", "W" },
  { "height", 0, 0, G_OPTION_ARG_INT, &opt_height, "Window height (800)", "H" },
  { "threads", 0, 0, G_OPTION_ARG_INT, &opt_threads, "Threads of the forward pass (all)", "N" },
  { NULL }
};

typedef enum { ZOOM, PAN, SETTLE } StepKind;

typedef struct {
  const char *what;
  StepKind kind;
  int frames;          /* input frames; SETTLE: until the view is current */
  double a, b;         /* ZOOM: factor per frame, (unused); PAN: dx, dy per frame */
} Step;

static const Step script[] = {
  { "zoom in to exact tiles", ZOOM, 90, 1.06, 0 },
  { "pan over exact tiles", PAN, 120, -10, -6 },
  { "zoom in to token labels", ZOOM, 30, 1.06, 0 },
  { "pan with token labels", PAN, 60, -4, -4 },
  { "settle after labels", SETTLE, 0, 0, 0 },
  { "zoom out to the whole map", ZOOM, 130, 1 / 1.06, 0 },
  { "settle on the whole map", SETTLE, 0, 0, 0 },
};

typedef struct {
  LscHeatmap *heatmap;
  GMainLoop *loop;
  guint step, frame;
  gint64 last_input_us;
  gint64 last_paint_us;
  GArray *intervals_ms;        /* (double) between paints while input arrives */
  GArray *work_ms;             /* (double) before-paint to after-paint: the main thread's part */
  GArray *clock_ms;            /* (double) between the frame clock's frame times */
  gint64 last_frame_time;
  gint64 before_paint_us;
  double settle_ms[G_N_ELEMENTS (script)];
} Bench;

static gboolean
on_tick (GtkWidget *widget, GdkFrameClock *clock, gpointer data)
{
  Bench *b = data;
  if (b->step >= G_N_ELEMENTS (script))
    {
      g_main_loop_quit (b->loop);
      return G_SOURCE_REMOVE;
    }
  const Step *st = &script[b->step];
  if (st->kind == SETTLE)
    return G_SOURCE_CONTINUE;   /* after-paint moves on */

  LscHeatmapModel *m = lsc_heatmap_get_model (b->heatmap);
  /* the plot's centre, and a point on the diagonal two thirds down */
  double x = 0.62 * gtk_widget_get_width (widget), y = 0.62 * gtk_widget_get_height (widget);
  if (st->kind == ZOOM)
    lsc_heatmap_model_zoom_at (m, st->a, x, y);
  else
    lsc_heatmap_model_pan (m, st->a, st->b);
  b->last_input_us = g_get_monotonic_time ();
  if (++b->frame >= (guint) st->frames)
    {
      b->step++;
      b->frame = 0;
    }
  return G_SOURCE_CONTINUE;
}

static void
on_before_paint (GdkFrameClock *clock, gpointer data)
{
  Bench *b = data;
  b->before_paint_us = g_get_monotonic_time ();
}

static void
on_after_paint (GdkFrameClock *clock, gpointer data)
{
  Bench *b = data;
  gint64 now = g_get_monotonic_time ();
  if (b->before_paint_us > 0)
    {
      double ms = (now - b->before_paint_us) / 1000.0;
      g_array_append_val (b->work_ms, ms);
    }
  gboolean current = lsc_heatmap_is_current (b->heatmap);
  if (b->step < G_N_ELEMENTS (script) && script[b->step].kind == SETTLE)
    {
      if (current)
        {
          b->settle_ms[b->step] = (now - b->last_input_us) / 1000.0;
          b->step++;
        }
      b->last_paint_us = 0;   /* no interval across a pause */
      b->last_frame_time = 0;
      return;
    }
  gint64 frame_time = gdk_frame_clock_get_frame_time (clock);
  if (b->last_paint_us > 0)
    {
      double ms = (now - b->last_paint_us) / 1000.0;
      g_array_append_val (b->intervals_ms, ms);
      ms = (frame_time - b->last_frame_time) / 1000.0;
      g_array_append_val (b->clock_ms, ms);
    }
  b->last_paint_us = now;
  b->last_frame_time = frame_time;
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
percentile (GArray *sorted, double q)
{
  if (sorted->len == 0)
    return NAN;
  guint i = (guint) MIN (sorted->len - 1, floor (q * sorted->len));
  return g_array_index (sorted, double, i);
}

static gboolean
wait_current (gpointer data)
{
  Bench *b = data;
  if (!lsc_heatmap_is_current (b->heatmap))
    return G_SOURCE_CONTINUE;
  g_main_loop_quit (b->loop);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- heatmap frame times on a long map");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("bench-heatmap: %s\n", error->message);
      return 2;
    }
  if (!gtk_init_check ())
    {
      g_print ("bench-heatmap: no display; run it under tests/test-gui.sh\n");
      return 0;
    }

  /* one captured head over N tokens */
  LscModelConfig c;
  lsc_model_config_init_shape (&c, "llama-1b");
  c.n_layers = 1;
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr(LscModel) model = lsc_model_new_synthetic (&c, LSC_DTYPE_BF16, 1, &error);
  if (model == NULL)
    {
      g_printerr ("bench-heatmap: %s\n", error->message);
      return 3;
    }
  int n = opt_tokens;
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = (int) ((i * 2654435761u + 1) % (guint) c.vocab_size);
  static const int layer0[] = { 0 }, head0[] = { 0 };
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.n_threads = opt_threads;
  p.n_ctx = n;
  p.capture.enabled = TRUE;
  p.capture.layers = layer0;
  p.capture.n_layers = 1;
  p.capture.heads = head0;
  p.capture.n_heads = 1;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  if (s == NULL || !lsc_session_eval (s, tokens, n, NULL, FALSE, NULL, NULL, &error))
    {
      g_printerr ("bench-heatmap: %s\n", error->message);
      return 1;
    }
  double t_capture = (g_get_monotonic_time () - t0) / 1e6;
  t0 = g_get_monotonic_time ();
  LscAttentionSource *source = lsc_attention_source_new (lsc_session_get_attention (s), NULL, 0, 0,
                                                         &error);
  if (source == NULL)
    {
      g_printerr ("bench-heatmap: %s\n", error->message);
      return 1;
    }
  double t_pyramid = (g_get_monotonic_time () - t0) / 1e6;
  g_auto (GStrv) labels = g_new0 (char *, n + 1);
  for (int i = 0; i < n; i++)
    labels[i] = g_strdup_printf ("t%d", i);

  GtkWidget *window = gtk_window_new ();
  gtk_window_set_default_size (GTK_WINDOW (window), opt_width, opt_height);
  GtkWidget *heatmap = lsc_heatmap_new ();
  gtk_window_set_child (GTK_WINDOW (window), heatmap);
  lsc_heatmap_set_source (LSC_HEATMAP (heatmap), source, (const char *const *) labels, n,
                          "bench");
  gtk_window_present (GTK_WINDOW (window));

  Bench b = { .heatmap = LSC_HEATMAP (heatmap), .loop = g_main_loop_new (NULL, FALSE) };
  b.intervals_ms = g_array_new (FALSE, FALSE, sizeof (double));
  b.work_ms = g_array_new (FALSE, FALSE, sizeof (double));
  b.clock_ms = g_array_new (FALSE, FALSE, sizeof (double));
  /* the first frame */
  g_timeout_add (5, wait_current, &b);
  g_main_loop_run (b.loop);

  GdkFrameClock *clock = gtk_widget_get_frame_clock (heatmap);
  g_signal_connect (clock, "before-paint", G_CALLBACK (on_before_paint), &b);
  g_signal_connect (clock, "after-paint", G_CALLBACK (on_after_paint), &b);
  gtk_widget_add_tick_callback (heatmap, on_tick, &b, NULL);
  g_main_loop_run (b.loop);
  g_signal_handlers_disconnect_by_data (clock, &b);

  g_array_sort (b.intervals_ms, cmp_double);
  g_array_sort (b.work_ms, cmp_double);
  g_array_sort (b.clock_ms, cmp_double);
  guint late = 0;   /* frames the clock had to skip a refresh for */
  for (guint i = 0; i < b.clock_ms->len; i++)
    late += g_array_index (b.clock_ms, double, i) > 1.5 * g_array_index (b.clock_ms, double, 0);
  g_print ("bench-heatmap: %d tokens, llama-1b shape (head_dim %d), window %d x %d (heatmap widget %d x %d), "
           "capture %.1f s, pyramid %.2f s, GSK renderer %s\n", n, c.head_dim, opt_width,
           opt_height, gtk_widget_get_width (heatmap), gtk_widget_get_height (heatmap), t_capture,
           t_pyramid, g_getenv ("GSK_RENDERER") ? g_getenv ("GSK_RENDERER") : "default");
  g_print ("| %-44s | %10s | %-10s |\n", "measure", "value", "target");
  g_print ("|----------------------------------------------|------------|------------|\n");
  g_print ("| %-44s | %7.1f ms | %-10s |\n", "frame interval (wall clock), median",
           percentile (b.intervals_ms, 0.5), "");
  g_print ("| %-44s | %7.1f ms | %-10s |\n", "frame interval (wall clock), 95th percentile",
           percentile (b.intervals_ms, 0.95), "");
  g_print ("| %-44s | %7.1f ms | %-10s |\n", "frame interval (wall clock), max",
           percentile (b.intervals_ms, 1.0), "");
  g_print ("| %-44s | %7.1f ms | %-10s |\n", "frame clock interval, 95th percentile",
           percentile (b.clock_ms, 0.95), "<= 16.7 ms");
  g_autofree char *late_s = g_strdup_printf ("%u/%u", late, b.clock_ms->len);
  g_print ("| %-44s | %10s | %-10s |\n", "frames that missed their refresh", late_s, "");
  g_print ("| %-44s | %7.1f ms | %-10s |\n", "main thread per frame, 95th percentile",
           percentile (b.work_ms, 0.95), "");
  for (guint i = 0; i < G_N_ELEMENTS (script); i++)
    if (script[i].kind == SETTLE)
      {
        g_autofree char *what = g_strdup_printf ("exact after input stops (%s)", script[i].what + 7);
        g_print ("| %-44s | %7.0f ms | %-10s |\n", what, b.settle_ms[i], "<= 250 ms");
      }

  g_array_unref (b.intervals_ms);
  g_array_unref (b.work_ms);
  g_array_unref (b.clock_ms);
  g_main_loop_unref (b.loop);
  gtk_window_destroy (GTK_WINDOW (window));
  return 0;
}
