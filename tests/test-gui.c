/* SPDX-License-Identifier: MIT
 *
 * The application under a real display (tests/test-gui.sh starts Xvfb):
 * starts it on demo:induction, runs, switches views, zooms, exports PNG,
 * SVG and PDF, saves the run's job and exports the run (results.json +
 * tensors.safetensors), cancels a long run, detects retrieval heads on the
 * demo (the copy head first; clicked, it reports itself before a run and
 * opens in the Attention view after one), exports the Retrieval Heads
 * view (SVG and PDF byte for byte the batch job's retrieval_scores figure,
 * detected there or opened from the job's results.json) and the
 * Experiments view's B - A map, reopens exported and batch
 * results in the views, shows a Mamba run's channels in the SSM Channels
 * view (and exports its figures), runs a tiny Llama under KV-cache
 * policies (the sidebar's KV controls, the KV Cache view, its figures byte
 * for byte the batch job's, the saved job's batch log the run's), shows a
 * load error in the window, and saves screenshots (gui-screenshot.png,
 * gui-kv-screenshot.png in the build folder) that must not be blank.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <math.h>
#include <gtk/gtk.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsc-application.h"
#include "lsc-batch.h"
#include "lsc-test-util.h"
#include "lsc-demo.h"
#include "lsc-figure.h"
#include "lsc-json.h"
#include "lsc-run-export.h"
#include "lsc-run-open.h"
#include "lsc-window.h"

typedef struct {
  LscApplication *app;
  LscWindow *win;
  char *tmpdir;
} Fixture;

typedef gboolean (*CondFunc) (Fixture *f);

/* Spins the main loop until cond holds or timeout_ms passes. */
static gboolean
wait_for (Fixture *f, CondFunc cond, int timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  while (!cond (f))
    {
      if (g_get_monotonic_time () > end)
        return FALSE;
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  return TRUE;
}

static void
spin (int ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;
  while (g_get_monotonic_time () < end)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

static LscHeatmap *
heatmap_of (Fixture *f)
{
  return lsc_attention_view_get_heatmap (lsc_window_get_attention_view (f->win));
}

/* a map is set and the frame on screen is the current view's */
static gboolean
map_shown (Fixture *f)
{
  LscHeatmap *heatmap = heatmap_of (f);
  return lsc_heatmap_get_source (heatmap) != NULL && lsc_heatmap_is_current (heatmap);
}

static gboolean
copy_head_shown (Fixture *f)
{
  LscAttentionSource *src = lsc_heatmap_get_source (heatmap_of (f));
  return map_shown (f) && lsc_attention_source_get_layer (src) == LSC_DEMO_INDUCTION_COPY_LAYER
         && lsc_attention_source_get_head (src) == LSC_DEMO_INDUCTION_COPY_HEAD;
}

static gboolean
layer1_head0_shown (Fixture *f)
{
  LscAttentionSource *src = lsc_heatmap_get_source (heatmap_of (f));
  return map_shown (f) && lsc_attention_source_get_layer (src) == 1
         && lsc_attention_source_get_head (src) == 0;
}

static gboolean
estimated (Fixture *f)
{
  return g_str_has_prefix (lsc_window_get_estimate (f->win), "Estimate: ");
}

static gboolean
cannot_run (Fixture *f)
{
  return g_str_has_prefix (lsc_window_get_estimate (f->win), "Cannot run: ");
}

static gboolean
head_maps_ready (Fixture *f)
{
  LscHeadMaps *maps = lsc_attention_view_get_head_maps (lsc_window_get_attention_view (f->win));
  return lsc_head_maps_get_n_ready (maps) == lsc_model_get_config (
      lsc_loaded_model_get_model (lsc_window_get_model (f->win)))->n_heads;
}

static gboolean
selection_summed (Fixture *f)
{
  double mass;
  return lsc_heatmap_get_selection_mass (heatmap_of (f), &mass);
}

static gboolean
idle_model (Fixture *f)
{
  return !lsc_window_get_busy (f->win)
         && (lsc_window_get_model (f->win) != NULL || lsc_window_get_error (f->win) != NULL);
}

static gboolean
not_busy (Fixture *f)
{
  return !lsc_window_get_busy (f->win);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  f->tmpdir = g_dir_make_tmp ("lsc-gui-XXXXXX", &error);
  g_assert_no_error (error);
  f->app = lsc_application_new (data);
  g_assert_true (g_application_register (G_APPLICATION (f->app), NULL, &error));
  g_assert_no_error (error);
  g_application_activate (G_APPLICATION (f->app));
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (f->app));
  g_assert_nonnull (windows);
  f->win = LSC_WINDOW (windows->data);
  g_assert_true (wait_for (f, idle_model, 20000));
}

/* Removes path and, when it is a folder (not a link to one), everything
 * in it. */
static void
remove_tree (const char *path)
{
  GStatBuf st;
  if (g_lstat (path, &st) == 0 && S_ISDIR (st.st_mode))
    {
      g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
      const char *name;
      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          remove_tree (child);
        }
      g_rmdir (path);
    }
  else
    g_remove (path);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  gtk_window_destroy (GTK_WINDOW (f->win));
  spin (50);
  g_clear_object (&f->app);
  remove_tree (f->tmpdir);
  g_free (f->tmpdir);
}

static void
check_file_starts (const char *path, const char *magic, gsize min_size)
{
  g_autofree char *contents = NULL;
  gsize len;
  g_autoptr(GError) error = NULL;
  g_assert_true (g_file_get_contents (path, &contents, &len, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (len, >=, min_size);
  g_assert_true (memcmp (contents, magic, strlen (magic)) == 0);
}

static GdkTexture *
screenshot (GtkWidget *widget)
{
  int w = gtk_widget_get_width (widget), h = gtk_widget_get_height (widget);
  g_assert_cmpint (w, >, 0);
  g_autoptr(GdkPaintable) paintable = gtk_widget_paintable_new (widget);
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, snapshot, w, h);
  g_autoptr(GskRenderNode) node = gtk_snapshot_free_to_node (snapshot);
  g_assert_nonnull (node);
  GskRenderer *renderer = gtk_native_get_renderer (gtk_widget_get_native (widget));
  return gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, w, h));
}

/* Distinct colours (8 bits per channel) in the texture, counted up to 10000. */
static guint
count_colours (GdkTexture *texture)
{
  int w = gdk_texture_get_width (texture), h = gdk_texture_get_height (texture);
  gsize stride = (gsize) w * 4;
  g_autofree guint8 *pixels = g_malloc (stride * h);
  gdk_texture_download (texture, pixels, stride);
  g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        guint32 v;
        memcpy (&v, pixels + stride * y + 4 * x, 4);
        g_hash_table_add (seen, GUINT_TO_POINTER (v));
        if (g_hash_table_size (seen) >= 10000)
          return 10000;
      }
  return g_hash_table_size (seen);
}

static void
test_demo_session (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_null (lsc_window_get_error (f->win));
  g_assert_cmpstr (lsc_loaded_model_get_path (lsc_window_get_model (f->win)), ==, LSC_DEMO_INDUCTION);

  /* the estimate before Run follows the settings */
  lsc_window_set_prompt (f->win, "Longscope shows attention: Longscope shows");
  lsc_window_set_max_tokens (f->win, 12);
  g_assert_true (wait_for (f, estimated, 5000));
  g_test_message ("%s", lsc_window_get_estimate (f->win));
  g_assert_nonnull (strstr (lsc_window_get_estimate (f->win), "for attention capture"));

  /* run */
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (lsc_window_get_busy (f->win));
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  LscRun *run = lsc_window_get_run (f->win);
  g_assert_nonnull (run);
  g_test_message ("output: %s", lsc_run_get_output (run));
  g_assert_cmpuint (strlen (lsc_run_get_output (run)), >, 0);

  /* head 0 of layer 0 comes first; its pyramid is built on a worker thread */
  g_assert_true (wait_for (f, map_shown, 5000));
  LscAttentionView *view = lsc_window_get_attention_view (f->win);
  LscHeatmap *heatmap = lsc_attention_view_get_heatmap (view);
  g_assert_nonnull (lsc_heatmap_get_source (heatmap));

  /* every view */
  const char *views[] = { "retrieval", "ssm", "kv", "experiments", "attention" };
  for (guint i = 0; i < G_N_ELEMENTS (views); i++)
    {
      g_autofree char *target = g_strdup (views[i]);
      g_action_group_activate_action (G_ACTION_GROUP (f->win), "show-view", g_variant_new_string (target));
      spin (30);
      g_assert_cmpstr (lsc_window_get_view (f->win), ==, views[i]);
    }

  /* the copy head, through the overview's path */
  lsc_attention_view_show_head (view, LSC_DEMO_INDUCTION_COPY_LAYER, LSC_DEMO_INDUCTION_COPY_HEAD);
  g_assert_true (wait_for (f, copy_head_shown, 5000));
  LscAttentionSource *src = lsc_heatmap_get_source (heatmap);
  g_assert_cmpint (lsc_attention_source_get_layer (src), ==, LSC_DEMO_INDUCTION_COPY_LAYER);
  g_assert_cmpint (lsc_attention_source_get_head (src), ==, LSC_DEMO_INDUCTION_COPY_HEAD);
  /* the small maps of the layer's heads fill in; a head with one opens at once */
  g_assert_true (wait_for (f, head_maps_ready, 5000));
  lsc_attention_view_show_head (view, LSC_DEMO_INDUCTION_COPY_LAYER, 0);
  g_assert_cmpint (lsc_attention_source_get_head (lsc_heatmap_get_source (heatmap)), ==, 0);
  lsc_attention_view_show_head (view, LSC_DEMO_INDUCTION_COPY_LAYER, LSC_DEMO_INDUCTION_COPY_HEAD);
  src = lsc_heatmap_get_source (heatmap);
  g_assert_cmpint (lsc_attention_source_get_head (src), ==, LSC_DEMO_INDUCTION_COPY_HEAD);
  spin (100);

  /* zoom through the widget actions */
  LscHeatmapModel *model = lsc_heatmap_get_model (heatmap);
  g_assert_cmpfloat (lsc_heatmap_model_get_zoom (model), ==, 1.0);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (heatmap), "zoom.in", NULL));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (heatmap), "zoom.in", NULL));
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_zoom (model), 2.0, 1e-9);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (heatmap), "zoom.out", NULL));
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_zoom (model), G_SQRT2, 1e-9);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (heatmap), "zoom.reset", NULL));
  g_assert_cmpfloat (lsc_heatmap_model_get_zoom (model), ==, 1.0);
  spin (100);

  /* a rubber band over the lower half of the map: its mass, summed on a worker */
  double mass, want;
  g_assert_false (lsc_heatmap_get_selection_mass (heatmap, &mass));
  int rows = lsc_attention_source_get_rows (src), cols = lsc_attention_source_get_cols (src);
  double s = lsc_heatmap_model_get_cell_size (model), x0, y0;
  lsc_heatmap_model_cell_to_pixel (model, rows / 2, 0, &x0, &y0);
  g_assert_true (lsc_heatmap_select (heatmap, x0 + 0.5 * s, y0 + 0.5 * s, x0 + (cols - 0.5) * s,
                                     y0 + (rows - rows / 2 - 0.5) * s));
  g_assert_true (wait_for (f, selection_summed, 5000));
  g_assert_true (lsc_heatmap_get_selection_mass (heatmap, &mass));
  g_assert_true (lsc_attention_source_get_mass (src, rows / 2, rows, 0, cols, &want, &error));
  g_assert_cmpfloat_with_epsilon (mass, want, 1e-9);
  g_assert_cmpfloat_with_epsilon (mass, rows - rows / 2, 1e-4 * rows);   /* whole rows: 1 each */

  /* export the view in the three formats */
  const struct { const char *ext, *magic; } formats[] = {
    { "png", "\x89PNG\r\n\x1a\n" }, { "svg", "<?xml" }, { "pdf", "%PDF-" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
    {
      g_autofree char *name = g_strdup_printf ("view.%s", formats[i].ext);
      g_autofree char *path = g_build_filename (f->tmpdir, name, NULL);
      g_assert_true (lsc_window_export_view (f->win, path, &error));
      g_assert_no_error (error);
      check_file_starts (path, formats[i].magic, 1000);
    }
  /* the run as a batch job and as batch results, what win.save-job and
   * win.export-run write to the chosen file and folder */
  GActionGroup *actions = G_ACTION_GROUP (f->win);
  g_assert_true (g_action_group_get_action_enabled (actions, "save-job"));
  g_assert_true (g_action_group_get_action_enabled (actions, "export-run"));
  g_autofree char *job_path = g_build_filename (f->tmpdir, "job.json", NULL);
  g_assert_true (lsc_window_save_job (f->win, job_path, &error));
  g_assert_no_error (error);
  check_file_starts (job_path, "{\n  \"schema_version\": 1,\n  \"model\": \"demo:induction\"", 100);
  g_autofree char *run_dir = g_build_filename (f->tmpdir, "run", NULL);
  g_assert_true (lsc_window_export_run (f->win, run_dir, &error));
  g_assert_no_error (error);
  g_autofree char *results = g_build_filename (run_dir, "results.json", NULL);
  g_autofree char *tensors = g_build_filename (run_dir, "tensors.safetensors", NULL);
  check_file_starts (results, "{\n  \"schema_version\": 1,\n  \"status\": \"done\"", 1000);
  check_file_starts (tensors, "", 100);
  /* a folder that is a file: the error names it */
  g_assert_false (lsc_window_export_run (f->win, job_path, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOTDIR);
  g_assert_nonnull (strstr (error->message, job_path));
  g_clear_error (&error);
  g_remove (results);
  g_remove (tensors);
  g_rmdir (run_dir);

  /* a view with nothing to show has nothing to export, and says so: the
   * demo run kept the full cache */
  lsc_window_show_view (f->win, "kv");
  g_autofree char *none = g_build_filename (f->tmpdir, "none.png", NULL);
  g_assert_false (lsc_window_export_view (f->win, none, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA,
                         "There is no KV-cache figure to export", NULL);
  g_clear_error (&error);
  lsc_window_show_view (f->win, "attention");

  /* zoomed in, then a screenshot of the whole window */
  gtk_widget_activate_action (GTK_WIDGET (heatmap), "zoom.in", NULL);
  spin (300);
  g_assert_true (wait_for (f, map_shown, 5000));
  g_autoptr(GdkTexture) shot = screenshot (GTK_WIDGET (f->win));
  g_assert_nonnull (shot);
  const char *dir = g_getenv ("G_TEST_BUILDDIR");
  g_autofree char *shot_path = g_build_filename (dir ? dir : ".", "gui-screenshot.png", NULL);
  g_assert_true (gdk_texture_save_to_png (shot, shot_path));
  g_test_message ("screenshot: %s", shot_path);
  guint colours = count_colours (shot);
  g_test_message ("%u distinct colours", colours);
  g_assert_cmpuint (colours, >=, 64);   /* widgets, text and a heatmap, not a blank window */

  /* and of the heatmap alone: the map must be there */
  g_autoptr(GdkTexture) map_shot = screenshot (GTK_WIDGET (heatmap));
  g_assert_cmpuint (count_colours (map_shot), >=, 16);
}

static gboolean
cancelled (Fixture *f)
{
  return !lsc_window_get_busy (f->win);
}

static void
test_cancel (Fixture *f, gconstpointer data)
{
  lsc_window_set_prompt (f->win, "abcdefghij abcdefghij");
  lsc_window_set_max_tokens (f->win, 6000);
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (lsc_window_get_busy (f->win));
  spin (300);
  g_assert_true (lsc_window_get_busy (f->win));   /* still generating */
  gint64 t0 = g_get_monotonic_time ();
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "cancel", NULL);
  g_assert_true (wait_for (f, cancelled, 1000));
  g_test_message ("cancel returned after %.0f ms", (g_get_monotonic_time () - t0) / 1000.0);
  g_assert_null (lsc_window_get_error (f->win));  /* cancelling is not an error */
  g_assert_null (lsc_window_get_run (f->win));
  /* no finished run: nothing to save or export */
  g_assert_false (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "save-job"));
  g_assert_false (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "export-run"));
  g_autoptr(GError) error = NULL;
  g_autofree char *job_path = g_build_filename (f->tmpdir, "job.json", NULL);
  g_assert_false (lsc_window_save_job (f->win, job_path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED);
  g_assert_false (g_file_test (job_path, G_FILE_TEST_EXISTS));
}

/* The sidebar's backend reaches the run and the saved job; an explicit CUDA
 * without a GPU fails in the window, naming the reason. */
static void
test_backend (Fixture *f, gconstpointer data)
{
  lsc_window_set_prompt (f->win, "abc abc");
  lsc_window_set_max_tokens (f->win, 2);
  lsc_window_set_backend (f->win, LSC_BACKEND_CPU);
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  LscRun *run = lsc_window_get_run (f->win);
  g_assert_cmpint (lsc_session_get_backend (lsc_run_get_session (run)), ==, LSC_BACKEND_CPU);
  g_autoptr(GError) error = NULL;
  g_autofree char *job_path = g_build_filename (f->tmpdir, "job.json", NULL);
  g_assert_true (lsc_window_save_job (f->win, job_path, &error));
  g_autofree char *job = NULL;
  g_assert_true (g_file_get_contents (job_path, &job, NULL, NULL));
  g_assert_nonnull (strstr (job, "\"backend\": \"cpu\""));

  if (lsc_backend_cuda_unavailable () != NULL)   /* else a GPU is here: CUDA would run */
    {
      lsc_window_set_backend (f->win, LSC_BACKEND_CUDA);
      g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
      g_assert_true (wait_for (f, not_busy, 60000));
      g_test_message ("CUDA without a GPU: %s", lsc_window_get_error (f->win));
      g_assert_nonnull (lsc_window_get_error (f->win));
      g_assert_nonnull (strstr (lsc_window_get_error (f->win), "CUDA"));
    }
  /* the choice is kept in GSettings, which the later tests share */
  lsc_window_set_backend (f->win, LSC_BACKEND_AUTO);
}

static gboolean
detection_done (Fixture *f)
{
  return !lsc_retrieval_view_get_busy (lsc_window_get_retrieval_view (f->win));
}

static void
test_retrieval (Fixture *f, gconstpointer data)
{
  LscRetrievalView *view = lsc_window_get_retrieval_view (f->win);
  lsc_window_show_view (f->win, "retrieval");
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "retrieval");
  /* before Detect the view says what to do, and has no head */
  g_assert_true (g_str_has_prefix (lsc_retrieval_view_get_status (view), "Press Detect"));
  g_assert_false (lsc_retrieval_view_get_top_head (view, NULL, NULL, NULL));
  g_assert_null (lsc_retrieval_view_get_row_text (view, 0));

  /* Detect with the demo's defaults: 2 lengths x 3 depths */
  lsc_retrieval_view_detect (view);
  g_assert_true (lsc_retrieval_view_get_busy (view));
  g_assert_true (wait_for (f, detection_done, 60000));
  g_test_message ("%s", lsc_retrieval_view_get_status (view));
  const LscRetrievalDetection *d = lsc_retrieval_view_get_detection (view);
  g_assert_nonnull (d);
  g_assert_cmpint (d->n_samples, ==, 6);
  g_assert_cmpint (d->n_passed, ==, 6);
  int layer = -1, head = -1;
  double score = 0;
  g_assert_true (lsc_retrieval_view_get_top_head (view, &layer, &head, &score));
  g_assert_cmpint (layer, ==, LSC_DEMO_INDUCTION_COPY_LAYER);
  g_assert_cmpint (head, ==, LSC_DEMO_INDUCTION_COPY_HEAD);
  g_assert_cmpfloat_with_epsilon (score, 12.0 / 13, 1e-9);
  g_assert_cmpstr (lsc_retrieval_view_get_row_text (view, 0), ==, "layer 1, head 2: 0.923");
  g_assert_true (g_str_has_prefix (lsc_retrieval_view_get_status (view),
                                   "6 of 6 samples passed the recall filter (mean recall 1.00). "
                                   "1 head scores above 0.10."));
  spin (100);

  /* File > Export: the scores as a figure, a PNG of 6 x 5 in at 150 dpi */
  g_autoptr(GError) error = NULL;
  g_assert_true (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "export"));
  g_autofree char *png = g_build_filename (f->tmpdir, "retrieval.png", NULL);
  g_assert_true (lsc_window_export_view (f->win, png, &error));
  g_assert_no_error (error);
  check_file_starts (png, "\x89PNG\r\n\x1a\n", 1000);
  g_autoptr(GdkTexture) figure = gdk_texture_new_from_filename (png, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gdk_texture_get_width (figure), ==, 900);
  g_assert_cmpint (gdk_texture_get_height (figure), ==, 750);
  g_assert_cmpuint (count_colours (figure), >=, 16);

  /* no run yet: a click reports the head and stays */
  lsc_retrieval_view_activate_head (view, layer, head);
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "retrieval");
  g_assert_true (g_str_has_prefix (lsc_retrieval_view_get_status (view),
                                   "Layer 1, head 2: retrieval score 0.923."));

  /* after a run with capture, it opens in the Attention view */
  lsc_window_set_prompt (f->win, "Longscope shows attention: Longscope shows");
  lsc_window_set_max_tokens (f->win, 8);
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_nonnull (lsc_window_get_run (f->win));
  lsc_retrieval_view_activate_head (view, layer, head);
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "attention");
  g_assert_true (wait_for (f, copy_head_shown, 5000));

  /* Detect again and cancel: not an error, the results are cleared */
  lsc_window_show_view (f->win, "retrieval");
  lsc_retrieval_view_detect (view);
  g_assert_true (lsc_retrieval_view_get_busy (view));
  lsc_retrieval_view_cancel (view);
  g_assert_true (wait_for (f, detection_done, 5000));
  g_assert_cmpstr (lsc_retrieval_view_get_status (view), ==, "Cancelled");
  g_assert_null (lsc_retrieval_view_get_detection (view));
}

/* A retrieval job of the grid p: {"kind": "retrieval_scores"} drawn with
 * the job's defaults, as SVG and PDF. */
static char *
retrieval_job (const LscRetrievalRunParams *p)
{
  g_autoptr(GString) lengths = g_string_new (NULL);
  for (int i = 0; i < p->n_lengths; i++)
    g_string_append_printf (lengths, i > 0 ? ", %d" : "%d", p->context_lengths[i]);
  json_object *needle = json_object_new_object ();
  json_object_object_add (needle, "needle", json_object_new_string (p->needle));
  json_object_object_add (needle, "question", json_object_new_string (p->question));
  json_object_object_add (needle, "answer", json_object_new_string (p->answer));
  g_autoptr(json_object) needles = json_object_new_array ();
  json_object_array_add (needles, needle);
  g_autoptr(json_object) haystack = json_object_new_string (p->haystack_file);
  return g_strdup_printf (
      "{\"model\": \"demo:induction\", \"retrieval\": {\"haystack_file\": %s, \"needles\": %s, "
      "\"context_lengths\": [%s], \"depths\": {\"min\": 0, \"max\": 100, \"n\": %d}, "
      "\"buffer_tokens\": %d, \"cue_tokens\": %d, \"max_tokens\": %d}, \"figures\": ["
      "{\"kind\": \"retrieval_scores\", \"file\": \"s.svg\"}, "
      "{\"kind\": \"retrieval_scores\", \"file\": \"s.pdf\"}]}",
      json_object_to_json_string (haystack), json_object_to_json_string (needles), lengths->str,
      p->n_depths, p->buffer_tokens, p->cue_tokens, p->max_tokens);
}

static void
assert_same_file (const char *a, const char *b)
{
  g_autofree char *dx = NULL, *dy = NULL;
  gsize nx, ny;
  g_assert_true (g_file_get_contents (a, &dx, &nx, NULL));
  g_assert_true (g_file_get_contents (b, &dy, &ny, NULL));
  g_test_message ("%s: %" G_GSIZE_FORMAT " bytes, %s: %" G_GSIZE_FORMAT, a, nx, b, ny);
  g_assert_cmpuint (nx, >, 1000);
  g_assert_cmpmem (dx, nx, dy, ny);
}

/* The Retrieval Heads view exports the retrieval_scores figure of a batch
 * job byte for byte, detected here or opened from the job's results. */
static void
test_retrieval_figure (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  LscRetrievalView *view = lsc_window_get_retrieval_view (f->win);
  GActionGroup *actions = G_ACTION_GROUP (f->win);
  lsc_window_show_view (f->win, "retrieval");
  /* nothing detected: nothing to export */
  g_assert_false (g_action_group_get_action_enabled (actions, "export"));
  g_autofree char *none = g_build_filename (f->tmpdir, "none.svg", NULL);
  g_assert_false (lsc_window_export_view (f->win, none, &error));
  g_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA);
  g_assert_cmpstr (error->message, ==, "There are no retrieval scores to export: press Detect first");
  g_clear_error (&error);
  g_assert_false (g_file_test (none, G_FILE_TEST_EXISTS));

  /* the batch job of the view's grid writes s.svg and s.pdf */
  LscRetrievalRunParams p;
  lsc_retrieval_run_params_init (&p, lsc_window_get_model (f->win));
  g_autofree char *job = retrieval_job (&p);
  g_autofree char *job_path = g_build_filename (f->tmpdir, "job.json", NULL);
  g_assert_true (g_file_set_contents (job_path, job, -1, NULL));
  g_assert_cmpint (lsc_batch_run_file (job_path, f->tmpdir, NULL, lsc_figure_save_spec, NULL), ==, 0);
  g_autofree char *job_svg = g_build_filename (f->tmpdir, "s.svg", NULL);
  g_autofree char *job_pdf = g_build_filename (f->tmpdir, "s.pdf", NULL);

  /* detected here */
  lsc_retrieval_view_detect (view);
  g_assert_true (wait_for (f, detection_done, 60000));
  g_assert_true (g_action_group_get_action_enabled (actions, "export"));
  g_autofree char *svg = g_build_filename (f->tmpdir, "view.svg", NULL);
  g_autofree char *pdf = g_build_filename (f->tmpdir, "view.pdf", NULL);
  g_assert_true (lsc_window_export_view (f->win, svg, &error));
  g_assert_no_error (error);
  g_assert_true (lsc_window_export_view (f->win, pdf, &error));
  g_assert_no_error (error);
  assert_same_file (svg, job_svg);
  assert_same_file (pdf, job_pdf);

  /* the job's results.json, shown as if detected here */
  g_autofree char *results = g_build_filename (f->tmpdir, "results.json", NULL);
  LscRetrievalDetection *saved = lsc_retrieval_detection_load (results, &error);
  g_assert_no_error (error);
  lsc_retrieval_view_show_detection (view, saved, results);
  g_autofree char *status = g_strdup_printf (
      "Saved detection on demo:induction, from %s.\n6 of 6 samples passed the recall filter "
      "(mean recall 1.00). 1 head scores above 0.10.", results);
  g_test_message ("%s", lsc_retrieval_view_get_status (view));
  g_assert_true (g_str_has_prefix (lsc_retrieval_view_get_status (view), status));
  g_assert_cmpstr (lsc_retrieval_view_get_row_text (view, 0), ==, "layer 1, head 2: 0.923");
  g_assert_true (g_action_group_get_action_enabled (actions, "export"));
  g_autofree char *saved_svg = g_build_filename (f->tmpdir, "saved.svg", NULL);
  g_autofree char *saved_pdf = g_build_filename (f->tmpdir, "saved.pdf", NULL);
  g_assert_true (lsc_window_export_view (f->win, saved_svg, &error));
  g_assert_no_error (error);
  g_assert_true (lsc_window_export_view (f->win, saved_pdf, &error));
  g_assert_no_error (error);
  assert_same_file (saved_svg, job_svg);
  assert_same_file (saved_pdf, job_pdf);

  /* the action follows the visible view */
  lsc_window_show_view (f->win, "kv");
  g_assert_false (g_action_group_get_action_enabled (actions, "export"));
  lsc_window_show_view (f->win, "retrieval");
  g_assert_true (g_action_group_get_action_enabled (actions, "export"));

  /* a detection of another model: its heads are reported, not opened */
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (results, &text, NULL, NULL));
  g_auto(GStrv) parts = g_strsplit (text, "\"model_path\": \"demo:induction\"", -1);
  g_assert_cmpuint (g_strv_length (parts), ==, 2);
  g_autofree char *other = g_strjoinv ("\"model_path\": \"/elsewhere/model.gguf\"", parts);
  g_autofree char *other_path = g_build_filename (f->tmpdir, "other.json", NULL);
  g_assert_true (g_file_set_contents (other_path, other, -1, NULL));
  saved = lsc_retrieval_detection_load (other_path, &error);
  g_assert_no_error (error);
  lsc_retrieval_view_show_detection (view, saved, other_path);
  lsc_retrieval_view_activate_head (view, 1, 2);
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "retrieval");
  g_assert_cmpstr (lsc_retrieval_view_get_status (view), ==,
                   "Layer 1, head 2: retrieval score 0.923, detected on /elsewhere/model.gguf, "
                   "not on the open model.");
}

static void
test_load_error (Fixture *f, gconstpointer data)
{
  g_assert_null (lsc_window_get_model (f->win));
  const char *error = lsc_window_get_error (f->win);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error, "/nonexistent/model.gguf"));
  g_assert_false (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "run"));
  g_assert_false (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "save-job"));
  g_assert_false (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "export-run"));
  /* the retrieval view says to open a model */
  LscRetrievalView *view = lsc_window_get_retrieval_view (f->win);
  lsc_retrieval_view_detect (view);
  g_assert_false (lsc_retrieval_view_get_busy (view));
  g_assert_null (lsc_retrieval_view_get_detection (view));
}

static void
test_experiments (Fixture *f, gconstpointer data)
{
  LscExperimentsView *view = lsc_window_get_experiments_view (f->win);
  lsc_window_set_max_tokens (f->win, 4);
  lsc_window_set_prompt (f->win, "abcdefgh abcdefgh");
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  LscRun *a = lsc_window_get_run (f->win);
  g_assert_nonnull (a);
  g_assert_null (lsc_window_get_previous_run (f->win));
  /* one run: nothing to compare, the view says to run twice */
  lsc_window_show_view (f->win, "experiments");
  spin (30);
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "experiments");
  g_test_message ("%s", lsc_experiments_view_get_summary (view));
  g_assert_null (lsc_experiments_view_get_compare (view));
  g_assert_nonnull (strstr (lsc_experiments_view_get_summary (view), "run twice"));
  /* nothing to export either, and the error says why */
  g_autoptr(GError) error = NULL;
  g_assert_false (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "export"));
  g_autofree char *diff_svg = g_build_filename (f->tmpdir, "diff.svg", NULL);
  g_assert_false (lsc_window_export_view (f->win, diff_svg, &error));
  g_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA);
  g_assert_cmpstr (error->message, ==,
                   "There is no difference map to export. Nothing to compare yet: run twice "
                   "(change the prompt or the settings between the runs) to compare the last two "
                   "runs.");
  g_clear_error (&error);
  g_assert_false (g_file_test (diff_svg, G_FILE_TEST_EXISTS));

  /* a second run of equal token length: A the first, B the second */
  lsc_window_set_prompt (f->win, "abcdefgh hgfedcba");
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  g_assert_true (lsc_window_get_previous_run (f->win) == a);
  g_assert_true (lsc_window_get_run (f->win) != a);
  lsc_experiments_view_set_head (view, LSC_DEMO_INDUCTION_COPY_LAYER, LSC_DEMO_INDUCTION_COPY_HEAD);
  spin (30);
  g_test_message ("%s", lsc_experiments_view_get_summary (view));
  const LscRunCompare *c = lsc_experiments_view_get_compare (view);
  g_assert_nonnull (c);
  g_assert_cmpint (c->layer, ==, 1);
  g_assert_cmpint (c->head, ==, 2);
  g_assert_cmpfloat (c->max_abs, >, 0.0);
  /* as tests/test-run-compare.c: the copy head at a generated position
   * (several cells differ by 1 - O(1e-7) and the last bits pick one: the
   * first generated position on the CPU, another on a GPU) */
  g_assert_cmpfloat_with_epsilon (c->max_abs, 1.0, 1e-5);
  g_assert_cmpint (c->max_row, >=, 18);
  g_assert_true (g_str_has_prefix (lsc_experiments_view_get_summary (view),
                                   "Layer 1, head 2, "));
  g_autofree char *where = g_strdup_printf ("max |Δp| 1 at query %d, key %d", c->max_row,
                                            c->max_key);
  g_assert_nonnull (strstr (lsc_experiments_view_get_summary (view), where));

  /* the B - A map exports */
  g_assert_true (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "export"));
  g_assert_true (lsc_window_export_view (f->win, diff_svg, &error));
  g_assert_no_error (error);
  check_file_starts (diff_svg, "<?xml", 1000);
  g_autofree char *diff_png = g_build_filename (f->tmpdir, "diff.png", NULL);
  g_assert_true (lsc_window_export_view (f->win, diff_png, &error));
  g_assert_no_error (error);
  g_autoptr(GdkTexture) figure = gdk_texture_new_from_filename (diff_png, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (count_colours (figure), >=, 16);
}

/* widget and its descendants of `type`, in order */
static void
collect (GtkWidget *widget, GType type, GPtrArray *out)
{
  if (G_TYPE_CHECK_INSTANCE_TYPE (widget, type))
    g_ptr_array_add (out, widget);
  for (GtkWidget *c = gtk_widget_get_first_child (widget); c != NULL; c = gtk_widget_get_next_sibling (c))
    collect (c, type, out);
}

/* The sidebar's plugins: controls built from the declared parameters; a
 * plugin enabled and set there runs with the next run, and the Experiments
 * view compares it with the run before. */
static void
test_plugins (Fixture *f, gconstpointer data)
{
  LscPluginControls *controls = lsc_window_get_plugin_controls (f->win);
  g_autoptr(GPtrArray) checks = g_ptr_array_new ();
  g_autoptr(GPtrArray) spins = g_ptr_array_new ();
  g_autoptr(GPtrArray) drops = g_ptr_array_new ();
  g_autoptr(GPtrArray) grids = g_ptr_array_new ();
  collect (GTK_WIDGET (controls), GTK_TYPE_CHECK_BUTTON, checks);
  collect (GTK_WIDGET (controls), GTK_TYPE_SPIN_BUTTON, spins);
  collect (GTK_WIDGET (controls), GTK_TYPE_DROP_DOWN, drops);
  collect (GTK_WIDGET (controls), GTK_TYPE_GRID, grids);
  /* selective-attention: alpha, train_length, first_layer, last_layer; form */
  g_assert_cmpuint (checks->len, ==, 1);
  g_assert_cmpuint (spins->len, ==, 4);
  g_assert_cmpuint (drops->len, ==, 1);
  g_assert_cmpstr (gtk_check_button_get_label (checks->pdata[0]), ==, "Selective Attention");
  g_assert_cmpfloat (gtk_spin_button_get_value (spins->pdata[0]), ==, 0.1);
  g_assert_cmpfloat (gtk_spin_button_get_value (spins->pdata[3]), ==, -1);
  g_assert_false (gtk_widget_get_sensitive (grids->pdata[0]));

  lsc_window_set_max_tokens (f->win, 4);
  lsc_window_set_prompt (f->win, "abcdefgh abcdefgh");
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  g_assert_cmpint (lsc_plugin_stack_get_size (lsc_run_get_params (lsc_window_get_run (f->win))->plugins),
                   ==, 0);

  /* enabled and set through its widgets; the estimate counts the per-row
   * logit scales the store then keeps (4 bytes per captured row and head) */
  g_assert_true (wait_for (f, estimated, 5000));
  g_autofree char *before = g_strdup (lsc_window_get_estimate (f->win));
  gtk_check_button_set_active (checks->pdata[0], TRUE);
  g_assert_true (gtk_widget_get_sensitive (grids->pdata[0]));
  g_assert_true (wait_for (f, estimated, 5000));
  g_assert_cmpstr (lsc_window_get_estimate (f->win), !=, before);
  /* a layer the model lacks: said before Run */
  gtk_spin_button_set_value (spins->pdata[2], 7);
  g_assert_cmpstr (lsc_window_get_estimate (f->win), ==,
                   "Cannot run: plugin selective-attention: first_layer 7 .. last_layer -1: the "
                   "model has layers 0 .. 1");
  gtk_spin_button_set_value (spins->pdata[2], 0);
  gtk_spin_button_set_value (spins->pdata[0], 2.0);
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  LscRun *b = lsc_window_get_run (f->win);
  const LscPluginStack *used = lsc_run_get_params (b)->plugins;
  g_assert_cmpint (lsc_plugin_stack_get_size (used), ==, 1);
  const double *values;
  g_assert_cmpstr (lsc_plugin_stack_get (used, 0, &values)->id, ==, "selective-attention");
  g_assert_cmpfloat (values[0], ==, 2.0);
  g_autoptr(GError) error = NULL;
  g_autofree char *job = lsc_run_dup_job (b, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (job, "\"alpha\": 2,"));

  /* the temperature sharpened every head */
  int nl, nh;
  const LscHeadStats *sa = lsc_run_get_head_stats (lsc_window_get_previous_run (f->win), &nl, &nh);
  const LscHeadStats *sb = lsc_run_get_head_stats (b, &nl, &nh);
  for (int i = 0; i < nl * nh; i++)
    g_assert_cmpfloat (sb[i].entropy, <=, sa[i].entropy + 1e-9);
  lsc_window_show_view (f->win, "experiments");
  LscExperimentsView *view = lsc_window_get_experiments_view (f->win);
  lsc_experiments_view_set_head (view, 0, 0);
  spin (30);
  g_test_message ("%s", lsc_experiments_view_get_summary (view));
  g_assert_cmpfloat (lsc_experiments_view_get_compare (view)->max_abs, >, 0.01);
  /* the export dialog suggests a name for what the view shows */
  g_autofree char *name = lsc_window_dup_export_name (f->win, "pdf");
  g_assert_cmpstr (name, ==, "difference-layer0-head0.pdf");
  lsc_window_show_view (f->win, "retrieval");
  g_free (name);
  name = lsc_window_dup_export_name (f->win, "svg");
  g_assert_cmpstr (name, ==, "retrieval-scores.svg");
  lsc_window_show_view (f->win, "attention");
  g_free (name);
  name = lsc_window_dup_export_name (f->win, "png");
  g_assert_true (g_str_has_prefix (name, "attention-layer") && g_str_has_suffix (name, ".png"));

  /* and set back from a stack: disabled again */
  g_autoptr(LscPluginStack) none = lsc_plugin_stack_new ();
  lsc_plugin_controls_set_stack (controls, none);
  g_assert_false (gtk_check_button_get_active (checks->pdata[0]));
  g_assert_false (gtk_widget_get_sensitive (grids->pdata[0]));
  g_autoptr(LscPluginStack) now = lsc_plugin_controls_dup_stack (controls);
  g_assert_cmpint (lsc_plugin_stack_get_size (now), ==, 0);
}

/* Saved results open in the views: an exported run as the shown run (its
 * maps recomputed from the saved store, equal to the live run's), with the
 * open model when theirs is not here, and a batch job's retrieval-head
 * detection in the Retrieval Heads view. */
static void
test_open_results (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  lsc_window_set_max_tokens (f->win, 4);
  lsc_window_set_prompt (f->win, "abcdefgh abcdefgh");
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  LscRun *live = lsc_window_get_run (f->win);
  g_autofree char *dir = g_build_filename (f->tmpdir, "run", NULL);
  g_assert_true (lsc_window_export_run (f->win, dir, &error));
  g_assert_no_error (error);

  lsc_window_open_results (f->win, dir);
  g_assert_true (wait_for (f, not_busy, 20000));
  g_assert_null (lsc_window_get_error (f->win));
  LscRun *opened = lsc_window_get_run (f->win);
  g_assert_true (opened != live);
  g_assert_cmpstr (lsc_run_get_source (opened), ==, dir);
  g_assert_true (lsc_window_get_previous_run (f->win) == live);
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "attention");
  g_assert_true (wait_for (f, map_shown, 5000));
  g_assert_false (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "export-run"));
  /* A (live) and B (reopened) are the same run */
  LscExperimentsView *view = lsc_window_get_experiments_view (f->win);
  lsc_experiments_view_set_head (view, LSC_DEMO_INDUCTION_COPY_LAYER, LSC_DEMO_INDUCTION_COPY_HEAD);
  spin (30);
  const LscRunCompare *c = lsc_experiments_view_get_compare (view);
  g_assert_nonnull (c);
  g_assert_cmpfloat (c->max_abs, ==, 0.0);

  /* results whose model is not on this computer: shown with the open one */
  g_autofree char *file = g_build_filename (dir, "results.json", NULL);
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (file, &text, NULL, NULL));
  char **parts = g_strsplit (text, "\"demo:induction\"", -1);
  g_free (text);
  text = g_strjoinv ("\"/elsewhere/demo.gguf\"", parts);
  g_strfreev (parts);
  g_autofree char *far = g_build_filename (f->tmpdir, "far", NULL);
  g_assert_cmpint (g_mkdir (far, 0755), ==, 0);
  g_autofree char *far_file = g_build_filename (far, "results.json", NULL);
  g_assert_true (g_file_set_contents (far_file, text, -1, NULL));
  g_autofree char *tensors = g_build_filename (dir, "tensors.safetensors", NULL);
  g_autofree char *far_tensors = g_build_filename (far, "tensors.safetensors", NULL);
  g_assert_cmpint (symlink (tensors, far_tensors), ==, 0);
  lsc_window_open_results (f->win, far_file);
  g_assert_true (wait_for (f, not_busy, 20000));
  g_assert_null (lsc_window_get_error (f->win));
  g_assert_cmpstr (lsc_run_get_source (lsc_window_get_run (f->win)), ==, far);

  /* a batch job's partial capture, as dropped on the window: the first
   * captured head opens (layer 1; layer 0 was not captured) */
  g_autofree char *partial_job = g_build_filename (f->tmpdir, "partial.json", NULL);
  const char *partial = "{\"model\": \"demo:induction\", \"prompt\": \"abcdefgh abcdefgh\", "
                        "\"max_tokens\": 2, \"capture\": {\"layers\": [1], \"store\": true}}";
  g_assert_true (g_file_set_contents (partial_job, partial, -1, NULL));
  g_autofree char *partial_dir = g_build_filename (f->tmpdir, "partial", NULL);
  g_assert_cmpint (lsc_test_run_batch (partial_job, partial_dir), ==, 0);
  lsc_window_open_path (f->win, partial_dir);
  g_assert_true (wait_for (f, not_busy, 20000));
  g_assert_null (lsc_window_get_error (f->win));
  g_assert_cmpstr (lsc_run_get_source (lsc_window_get_run (f->win)), ==, partial_dir);
  g_assert_true (wait_for (f, layer1_head0_shown, 5000));
  /* a model path dropped opens the model */
  lsc_window_open_path (f->win, LSC_DEMO_INDUCTION);
  g_assert_true (wait_for (f, idle_model, 20000));
  g_assert_null (lsc_window_get_error (f->win));

  /* a folder without results: the error names the file */
  lsc_window_open_results (f->win, f->tmpdir);
  g_assert_nonnull (lsc_window_get_error (f->win));
  g_test_message ("%s", lsc_window_get_error (f->win));
  g_assert_nonnull (strstr (lsc_window_get_error (f->win), "results.json"));

  /* the demo batch job's detection, in the Retrieval Heads view */
  g_autofree char *demo_job = g_test_build_filename (G_TEST_DIST, "..", "data", "demo-job.json",
                                                     NULL);
  g_autofree char *haystack = g_test_build_filename (G_TEST_DIST, "..", "data",
                                                     "demo-haystack.txt", NULL);
  json_object *root = json_object_from_file (demo_job);
  g_assert_nonnull (root);
  json_object *retrieval = json_object_object_get (root, "retrieval");
  json_object_object_del (root, "figures");      /* drawn by the app's renderer, not needed */
  json_object_object_del (retrieval, "ablation");
  json_object_object_add (retrieval, "haystack_file", json_object_new_string (haystack));
  g_autofree char *job = g_build_filename (f->tmpdir, "demo-job.json", NULL);
  g_assert_cmpint (json_object_to_file (job, root), ==, 0);
  json_object_put (root);
  g_autofree char *det = g_build_filename (f->tmpdir, "demo", NULL);
  g_assert_cmpint (lsc_test_run_batch (job, det), ==, 0);
  lsc_window_open_results (f->win, det);
  g_assert_true (wait_for (f, not_busy, 20000));
  g_assert_null (lsc_window_get_error (f->win));
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "retrieval");
  int layer, head;
  double score;
  g_assert_true (lsc_retrieval_view_get_top_head (lsc_window_get_retrieval_view (f->win), &layer,
                                                  &head, &score));
  g_assert_cmpint (layer, ==, LSC_DEMO_INDUCTION_COPY_LAYER);
  g_assert_cmpint (head, ==, LSC_DEMO_INDUCTION_COPY_HEAD);
  g_assert_cmpfloat_with_epsilon (score, 12.0 / 13.0, 1e-12);
}

/* The channels (log decay over the run) of a layer of the shown run's Δ
 * store, and how many of them are above ln c. */
static int
count_global (const LscSsmStore *store, int layer, double c, double *log_decay)
{
  int n_rows = lsc_ssm_store_get_n_rows (store);
  g_assert_true (lsc_ssm_store_log_decay (store, layer, 0, n_rows, log_decay));
  int g = 0;
  for (int i = 0; i < lsc_ssm_store_get_n_channels (store); i++)
    g += log_decay[i] > log (c);
  return g;
}

/* "Layer L: G of C channels global (decay over N tokens above c = X)" */
static void
parse_threshold_text (const char *text, int *layer, int *n_global, int *n_channels, int *n_tokens,
                      double *c)
{
  g_test_message ("%s", text);
  g_assert_cmpint (sscanf (text, "Layer %d: %d of %d channels global (decay over %d tokens above "
                                 "c = %lf)", layer, n_global, n_channels, n_tokens, c), ==, 5);
}

/* A Mamba model (../shared's tiny-mamba: Mamba-1, 3 layers of 128
 * channels): the sidebar records Δ and leaves plugins out, Run shows the
 * SSM Channels view (overview of every layer x channel, LongMamba's split
 * at c, the picked layer's receptive field and Δ raster), which exports as
 * PNG, SVG and PDF; a transformer's run afterwards goes back to Attention. */
static void
test_ssm (Fixture *f, gconstpointer data)
{
  g_autofree char *path = lsc_test_shared_path ("models/random/tiny-mamba");
  if (path == NULL)
    return;   /* skipped, naming the missing folder */
  g_autoptr(GError) error = NULL;
  LscSsmView *view = lsc_window_get_ssm_view (f->win);
  g_assert_true (g_str_has_prefix (lsc_ssm_view_get_status (view), "Run a Mamba model"));
  g_assert_false (lsc_ssm_view_can_export (view));

  lsc_window_open_model (f->win, path);
  g_assert_true (wait_for (f, idle_model, 20000));
  g_assert_null (lsc_window_get_error (f->win));
  const LscModelConfig *config = lsc_model_get_config (
      lsc_loaded_model_get_model (lsc_window_get_model (f->win)));
  g_assert_cmpint (config->arch, ==, LSC_ARCH_MAMBA);

  /* plugins hook attention: insensitive for a Mamba model, and a plugin
   * left enabled there is left out of its runs (and of the estimate) */
  LscPluginControls *controls = lsc_window_get_plugin_controls (f->win);
  g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (controls)));
  g_autoptr(GPtrArray) checks = g_ptr_array_new ();
  collect (GTK_WIDGET (controls), GTK_TYPE_CHECK_BUTTON, checks);
  g_assert_cmpuint (checks->len, >=, 1);
  gtk_check_button_set_active (checks->pdata[0], TRUE);

  lsc_window_set_prompt (f->win, "Once upon a time, there was a little girl named Lily.");
  lsc_window_set_max_tokens (f->win, 6);
  g_assert_true (wait_for (f, estimated, 5000));
  g_test_message ("%s", lsc_window_get_estimate (f->win));
  g_assert_nonnull (strstr (lsc_window_get_estimate (f->win), "to record Δ"));

  /* the backend the run will take: CUDA by name is refused before Run
   * without a GPU, and with one the GPU's time is not estimated */
  lsc_window_set_backend (f->win, LSC_BACKEND_CUDA);
  if (lsc_backend_cuda_unavailable () != NULL)
    {
      g_assert_true (wait_for (f, cannot_run, 5000));
      g_assert_nonnull (strstr (lsc_window_get_estimate (f->win),
                                "session.backend: the CUDA backend was asked for, but "));
    }
  else
    {
      g_assert_true (wait_for (f, estimated, 5000));
      g_assert_nonnull (strstr (lsc_window_get_estimate (f->win), "time on the GPU not estimated"));
    }
  lsc_window_set_backend (f->win, LSC_BACKEND_AUTO);
  g_assert_true (wait_for (f, estimated, 5000));
  g_assert_null (strstr (lsc_window_get_estimate (f->win), "GPU"));

  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  LscRun *run = lsc_window_get_run (f->win);
  g_assert_nonnull (run);
  g_test_message ("output: %s", lsc_run_get_output (run));
  g_assert_cmpint (lsc_plugin_stack_get_size (lsc_run_get_params (run)->plugins), ==, 0);
  g_assert_null (lsc_run_get_attention (run));
  g_assert_null (lsc_run_get_head_stats (run, NULL, NULL));
  const LscSsmStore *store = lsc_run_get_ssm (run);
  g_assert_nonnull (store);
  int n_rows = lsc_ssm_store_get_n_rows (store), n_tokens;
  lsc_run_get_tokens (run, &n_tokens, NULL);
  g_assert_cmpint (n_rows, ==, n_tokens - 1);   /* the last new token is never evaluated */
  int C = lsc_ssm_store_get_n_channels (store);
  g_assert_cmpint (C, ==, 128);

  /* the saved job records Δ with its "ssm" section: the batch runner's
   * channel memory over the prompt is the run's, number for number */
  g_autoptr(GError) job_error = NULL;
  g_autofree char *job_path = g_build_filename (f->tmpdir, "mamba-job.json", NULL);
  g_assert_true (lsc_window_save_job (f->win, job_path, &job_error));
  g_assert_no_error (job_error);
  g_autofree char *job_dir = g_build_filename (f->tmpdir, "mamba-job", NULL);
  g_assert_cmpint (lsc_test_run_batch (job_path, job_dir), ==, 0);
  g_autofree char *results_path = g_build_filename (job_dir, "results.json", NULL);
  json_object *results = json_object_from_file (results_path);
  g_assert_null (json_object_object_get (json_object_object_get (results, "job"), "capture"));
  json_object *ssm = json_object_object_get (results, "ssm");
  int window = json_object_get_int (json_object_object_get (ssm, "window"));
  int n_prompt;
  lsc_run_get_tokens (run, NULL, &n_prompt);
  g_assert_cmpint (window, ==, n_prompt);
  json_object *per_layer = json_object_object_get (ssm, "per_layer");
  g_assert_cmpuint (json_object_array_length (per_layer), ==, 3);
  for (int l = 0; l < 3; l++)
    {
      double want[128];
      json_object *ld = json_object_object_get (json_object_array_get_idx (per_layer, l),
                                                "log_decay");
      g_assert_true (lsc_ssm_store_log_decay (store, l, 0, window, want));
      for (int c = 0; c < C; c++)
        g_assert_cmpfloat (json_object_get_double (json_object_array_get_idx (ld, c)), ==, want[c]);
    }
  json_object_put (results);

  /* the batch results and the window's exported run open with their Δ:
   * the same rows as the live run's, bit for bit */
  g_autofree char *export_dir = g_build_filename (f->tmpdir, "mamba-run", NULL);
  g_assert_true (lsc_window_export_run (f->win, export_dir, &job_error));
  g_assert_no_error (job_error);
  const char *saved[] = { job_dir, export_dir };
  for (guint i = 0; i < G_N_ELEMENTS (saved); i++)
    {
      g_autoptr(LscRun) opened = lsc_run_open (lsc_window_get_model (f->win), saved[i], &job_error);
      g_assert_no_error (job_error);
      const LscSsmStore *back = lsc_run_get_ssm (opened);
      g_assert_nonnull (back);
      g_assert_cmpint (lsc_ssm_store_get_n_rows (back), ==, n_rows);
      for (int l = 0; l < 3; l++)
        {
          g_assert_cmpmem (lsc_ssm_store_get_dt (back, l), (gsize) n_rows * C * sizeof (float),
                           lsc_ssm_store_get_dt (store, l), (gsize) n_rows * C * sizeof (float));
          g_assert_cmpmem (lsc_ssm_store_get_a (back, l), (gsize) C * 16 * sizeof (float),
                           lsc_ssm_store_get_a (store, l), (gsize) C * 16 * sizeof (float));
        }
    }

  /* the SSM page comes up; the Attention view has nothing, and nothing to export */
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "ssm");
  g_assert_null (lsc_ssm_view_get_status (view));
  lsc_window_show_view (f->win, "attention");
  g_assert_null (lsc_heatmap_get_source (heatmap_of (f)));
  g_assert_false (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "export"));
  lsc_window_show_view (f->win, "ssm");
  g_assert_true (g_action_group_get_action_enabled (G_ACTION_GROUP (f->win), "export"));

  /* the overview: every layer x channel, log10 of the decay over the run */
  int nl = 0, nc = 0;
  const double *values = lsc_head_grid_get_values (lsc_ssm_view_get_head_grid (view), &nl, &nc);
  g_assert_nonnull (values);
  g_assert_cmpint (nl, ==, config->n_layers);
  g_assert_cmpint (nc, ==, 128);
  g_autofree double *ld = g_new (double, C);
  for (int l = 0; l < nl; l++)
    {
      count_global (store, l, 0.05, ld);
      for (int c = 0; c < C; c++)
        {
          g_assert_true (isfinite (values[l * C + c]));
          g_assert_cmpfloat_with_epsilon (values[l * C + c], ld[c] / G_LN10, 1e-12);
        }
    }

  /* LongMamba's split of the first layer at the default c = 0.05 */
  g_assert_cmpint (lsc_ssm_view_get_layer (view), ==, 0);
  g_assert_cmpfloat (lsc_ssm_view_get_threshold (view), ==, 0.05);
  int layer, n_global, n_channels, n;
  double c;
  parse_threshold_text (lsc_ssm_view_get_threshold_text (view), &layer, &n_global, &n_channels,
                        &n, &c);
  g_assert_cmpint (layer, ==, 0);
  g_assert_cmpint (n_channels, ==, 128);
  g_assert_cmpint (n, ==, n_rows);
  g_assert_cmpfloat (c, ==, 0.05);
  g_assert_cmpint (n_global, ==, count_global (store, 0, 0.05, ld));
  g_assert_cmpint (n_global, ==, lsc_ssm_view_get_n_global (view));
  /* a smaller c counts more channels global, never fewer */
  lsc_ssm_view_set_threshold (view, 1e-6);
  g_assert_cmpint (lsc_ssm_view_get_n_global (view), ==, count_global (store, 0, 1e-6, ld));
  g_assert_cmpint (lsc_ssm_view_get_n_global (view), >=, n_global);
  lsc_ssm_view_set_threshold (view, 0.05);

  /* a click on the overview picks its layer; the picker does too */
  g_signal_emit_by_name (lsc_ssm_view_get_head_grid (view), "head-activated", 1, 7);
  g_assert_cmpint (lsc_ssm_view_get_layer (view), ==, 1);
  lsc_ssm_view_set_layer (view, 2);
  g_assert_cmpint (lsc_ssm_view_get_layer (view), ==, 2);
  parse_threshold_text (lsc_ssm_view_get_threshold_text (view), &layer, &n_global, &n_channels,
                        &n, &c);
  g_assert_cmpint (layer, ==, 2);
  g_assert_cmpint (n_global, ==, count_global (store, 2, 0.05, ld));
  lsc_ssm_view_set_layer (view, 99);   /* clamped to the recorded layers */
  g_assert_cmpint (lsc_ssm_view_get_layer (view), ==, 2);
  spin (100);
  g_autoptr(GdkTexture) shot = screenshot (GTK_WIDGET (view));
  g_assert_cmpuint (count_colours (shot), >=, 16);   /* the overview and the figure are drawn */
  g_autoptr(GdkTexture) window_shot = screenshot (GTK_WIDGET (f->win));
  const char *dir = g_getenv ("G_TEST_BUILDDIR");
  g_autofree char *shot_path = g_build_filename (dir ? dir : ".", "gui-ssm-screenshot.png", NULL);
  g_assert_true (gdk_texture_save_to_png (window_shot, shot_path));
  g_test_message ("screenshot: %s", shot_path);

  /* export: the receptive field of layer 2, then its Δ raster */
  const struct { const char *ext, *magic; } formats[] = {
    { "png", "\x89PNG\r\n\x1a\n" }, { "svg", "<?xml" }, { "pdf", "%PDF-" },
  };
  g_autofree char *name = lsc_window_dup_export_name (f->win, "png");
  g_assert_cmpstr (name, ==, "ssm-receptive-field-layer2.png");
  for (int fig = 0; fig < 2; fig++)
    {
      lsc_ssm_view_set_figure (view, fig == 0 ? LSC_SSM_FIGURE_RECEPTIVE_FIELD : LSC_SSM_FIGURE_DT);
      g_assert_true (lsc_ssm_view_can_export (view));
      for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
        {
          g_autofree char *file = lsc_window_dup_export_name (f->win, formats[i].ext);
          g_autofree char *fpath = g_build_filename (f->tmpdir, file, NULL);
          g_assert_true (lsc_window_export_view (f->win, fpath, &error));
          g_assert_no_error (error);
          check_file_starts (fpath, formats[i].magic, 1000);
        }
    }
  g_free (name);
  name = lsc_window_dup_export_name (f->win, "svg");
  g_assert_cmpstr (name, ==, "ssm-dt-layer2.svg");
  g_autofree char *png = g_build_filename (f->tmpdir, "ssm-dt-layer2.png", NULL);
  g_autoptr(GdkTexture) figure = gdk_texture_new_from_filename (png, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gdk_texture_get_width (figure), ==, 900);   /* 6 x 5 in at 150 dpi */
  g_assert_cmpint (gdk_texture_get_height (figure), ==, 750);
  g_assert_cmpuint (count_colours (figure), >=, 16);
  /* the view's SVG is the batch figure of the same store, byte for byte */
  g_autofree float *cells = g_new (float, (gsize) C * n_rows);
  char title[64];
  LscFigureSpec spec;
  lsc_figure_spec_init (&spec);
  lsc_figure_spec_ssm_dt (&spec, lsc_ssm_store_get_dt (store, 2), lsc_ssm_store_get_kept (store, 2),
                          n_rows, C, 2, cells, title);
  g_autofree char *want = g_build_filename (f->tmpdir, "want.svg", NULL);
  spec.path = want;
  g_assert_true (lsc_figure_save_spec (&spec, NULL, &error));
  g_assert_no_error (error);
  g_autofree char *got = g_build_filename (f->tmpdir, "ssm-dt-layer2.svg", NULL);
  g_autoptr(GBytes) want_bytes = lsc_test_read_file (want);
  g_autoptr(GBytes) got_bytes = lsc_test_read_file (got);
  g_assert_true (g_bytes_equal (want_bytes, got_bytes));

  /* the saved job asks for no attention capture of a model without attention */
  g_autofree char *job = lsc_run_dup_job (run, &error);
  g_assert_no_error (error);
  g_assert_null (strstr (job, "\"capture\""));

  /* a run longer than the figure's 2048 columns: blocks of k tokens, the
   * receptive field exact at every k-th distance */
  GString *story = g_string_new (NULL);
  while (story->len < 3000)
    g_string_append (story, "Once upon a time, there was a little girl named Lily. ");
  lsc_window_set_prompt (f->win, story->str);
  g_string_free (story, TRUE);
  lsc_window_set_max_tokens (f->win, 0);
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  store = lsc_run_get_ssm (lsc_window_get_run (f->win));
  n_rows = lsc_ssm_store_get_n_rows (store);
  g_test_message ("long run: %d tokens", n_rows);
  g_assert_cmpint (n_rows, >, 2048);
  int k = (n_rows + 2047) / 2048;
  lsc_ssm_view_set_layer (view, 1);
  lsc_ssm_view_set_figure (view, LSC_SSM_FIGURE_RECEPTIVE_FIELD);
  const LscFigureSpec *shown = lsc_ssm_view_get_spec (view);
  g_assert_nonnull (shown);
  g_assert_cmpint (shown->rows, ==, C);
  g_assert_cmpint (shown->cols, ==, (n_rows + k - 1) / k);
  g_assert_cmpint (shown->cols, <=, 2048);
  g_autofree double *curve = g_new (double, n_rows);
  for (int ch = 0; ch < C; ch += 17)
    {
      lsc_ssm_decay_curve (lsc_ssm_store_get_dt (store, 1), C, lsc_ssm_store_get_a (store, 1),
                           lsc_ssm_store_get_n_states (store), ch, n_rows - 1, curve);
      for (int d = 0; d < shown->cols; d++)
        g_assert_cmpfloat_with_epsilon (shown->data[(gsize) ch * shown->cols + d],
                                        curve[n_rows - 1 - d * k] / G_LN10,
                                        1e-4 * (1 + fabs (curve[n_rows - 1 - d * k])));
    }
  lsc_ssm_view_set_figure (view, LSC_SSM_FIGURE_DT);
  shown = lsc_ssm_view_get_spec (view);
  g_assert_cmpint (shown->cols, ==, (n_rows + k - 1) / k);
  g_autofree char *long_png = g_build_filename (f->tmpdir, "long.png", NULL);
  g_assert_true (lsc_window_export_view (f->win, long_png, &error));
  g_assert_no_error (error);
  check_file_starts (long_png, "\x89PNG\r\n\x1a\n", 1000);

  /* the exported short run opened in the window: its channels show again */
  lsc_window_open_results (f->win, export_dir);
  g_assert_true (wait_for (f, not_busy, 20000));
  g_assert_null (lsc_window_get_error (f->win));
  g_assert_cmpstr (lsc_run_get_source (lsc_window_get_run (f->win)), ==, export_dir);
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "ssm");
  g_assert_null (lsc_ssm_view_get_status (view));
  g_assert_true (lsc_ssm_view_can_export (view));

  /* a transformer again: plugins back, its run shows in the Attention view,
   * and the SSM view says why it has nothing */
  gtk_check_button_set_active (checks->pdata[0], FALSE);
  lsc_window_open_model (f->win, LSC_DEMO_INDUCTION);
  g_assert_true (wait_for (f, idle_model, 20000));
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (controls)));
  lsc_window_set_prompt (f->win, "abc abc");
  lsc_window_set_max_tokens (f->win, 2);
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "attention");
  g_test_message ("%s", lsc_ssm_view_get_status (view));
  g_assert_true (g_str_has_prefix (lsc_ssm_view_get_status (view),
                                   "This run’s model (llama) has no SSM channels"));
  g_assert_false (lsc_ssm_view_can_export (view));
}

/* The KV fixture (tests/fixtures/kv/tiny-mha: a random Llama of 4 layers
 * and 4 heads, 4 KV heads, vocabulary 128, without a tokenizer) in
 * tmpdir/tiny-mha: its files linked, and a character-level tokenizer.json
 * (BPE without merges: <unk>, <s>, </s>, "▁" and a .. z; BOS from the
 * post-processor) so that the window can run it on a prompt. */
static char *
make_kv_model (Fixture *f)
{
  g_autofree char *fixture = g_test_build_filename (G_TEST_DIST, "fixtures", "kv", "tiny-mha",
                                                    NULL);
  g_autofree char *src = g_canonicalize_filename (fixture, NULL);
  char *dir = g_build_filename (f->tmpdir, "tiny-mha", NULL);
  g_assert_cmpint (g_mkdir (dir, 0755), ==, 0);
  const char *files[] = { "config.json", "model.safetensors" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *target = g_build_filename (src, files[i], NULL);
      g_autofree char *link = g_build_filename (dir, files[i], NULL);
      g_assert_cmpint (symlink (target, link), ==, 0);
    }

  const char *specials[] = { "<unk>", "<s>", "</s>" };
  json_object *vocab = json_object_new_object ();
  json_object *added = json_object_new_array ();
  for (int i = 0; i < (int) G_N_ELEMENTS (specials); i++)
    {
      json_object_object_add (vocab, specials[i], json_object_new_int (i));
      json_object *token = json_object_new_object ();
      json_object_object_add (token, "id", json_object_new_int (i));
      json_object_object_add (token, "content", json_object_new_string (specials[i]));
      json_object_object_add (token, "special", json_object_new_boolean (TRUE));
      json_object_array_add (added, token);
    }
  json_object_object_add (vocab, "\xe2\x96\x81", json_object_new_int (3));   /* "▁", a space */
  for (char c = 'a'; c <= 'z'; c++)
    {
      char piece[2] = { c, 0 };
      json_object_object_add (vocab, piece, json_object_new_int (4 + c - 'a'));
    }
  json_object *model = json_object_new_object ();
  json_object_object_add (model, "type", json_object_new_string ("BPE"));
  json_object_object_add (model, "vocab", vocab);
  json_object_object_add (model, "merges", json_object_new_array ());
  json_object_object_add (model, "unk_token", json_object_new_string ("<unk>"));
  json_object *bos = json_object_new_object ();
  json_object_object_add (bos, "id", json_object_new_string ("<s>"));
  json_object *first = json_object_new_object ();
  json_object_object_add (first, "SpecialToken", bos);
  json_object *single = json_object_new_array ();
  json_object_array_add (single, first);
  json_object *sequence = json_object_new_object ();
  json_object_object_add (sequence, "id", json_object_new_string ("A"));
  json_object *second = json_object_new_object ();
  json_object_object_add (second, "Sequence", sequence);
  json_object_array_add (single, second);
  json_object *post = json_object_new_object ();
  json_object_object_add (post, "type", json_object_new_string ("TemplateProcessing"));
  json_object_object_add (post, "single", single);
  g_autoptr(json_object) root = json_object_new_object ();
  json_object_object_add (root, "added_tokens", added);
  json_object_object_add (root, "post_processor", post);
  json_object_object_add (root, "model", model);
  g_autofree char *tokenizer = g_build_filename (dir, "tokenizer.json", NULL);
  g_assert_cmpint (json_object_to_file (tokenizer, root), ==, 0);
  return dir;
}

/* The KV controls' grid: the label of each row, and its control in the
 * next column. */
static GtkWidget *
kv_control (GtkGrid *grid, const char *label)
{
  for (GtkWidget *c = gtk_widget_get_first_child (GTK_WIDGET (grid)); c != NULL;
       c = gtk_widget_get_next_sibling (c))
    if (GTK_IS_LABEL (c) && g_strcmp0 (gtk_label_get_text (GTK_LABEL (c)), label) == 0)
      {
        int column, row;
        gtk_grid_query_child (grid, c, &column, &row, NULL, NULL);
        g_assert_cmpint (column, ==, 0);
        GtkWidget *control = gtk_grid_get_child_at (grid, 1, row);
        g_assert_nonnull (control);
        return control;
      }
  g_error ("no row \"%s\" in the KV controls", label);
}

/* "Policy, Heavy hitters, Recent tokens, Prompt chunk": the labels of the
 * rows that show, each with its control (and only with it). */
static char *
kv_rows_shown (GtkGrid *grid)
{
  GString *rows = g_string_new (NULL);
  for (GtkWidget *c = gtk_widget_get_first_child (GTK_WIDGET (grid)); c != NULL;
       c = gtk_widget_get_next_sibling (c))
    {
      int column, row;
      gtk_grid_query_child (grid, c, &column, &row, NULL, NULL);
      if (column != 0)
        continue;
      g_assert_true (GTK_IS_LABEL (c));
      GtkWidget *control = gtk_grid_get_child_at (grid, 1, row);
      g_assert_nonnull (control);
      g_assert_cmpint (gtk_widget_get_visible (c), ==, gtk_widget_get_visible (control));
      if (gtk_widget_get_visible (c))
        g_string_append_printf (rows, "%s%s", rows->len > 0 ? ", " : "",
                                gtk_label_get_text (GTK_LABEL (c)));
    }
  return g_string_free (rows, FALSE);
}

/* A KV figure of log as the batch job's kv_timeline (layer, head) or
 * kv_layers (head, -1: the mean) figure draws it, saved to path. */
static void
save_kv_figure (const LscKvLog *log, LscKvFigure figure, int layer, int head, const char *path)
{
  int rows, cols, block;
  lsc_figure_spec_kv_size (log, &rows, &cols, &block);
  g_autofree float *cells = g_new (float, (gsize) MAX (MAX (rows, 1), lsc_kv_log_get_n_layers (log))
                                              * cols);
  char title[64];
  LscFigureSpec spec;
  lsc_figure_spec_init (&spec);
  if (figure == LSC_KV_FIGURE_TIMELINE)
    lsc_figure_spec_kv_timeline (&spec, log, layer, head, cells, title);
  else
    lsc_figure_spec_kv_layers (&spec, log, head, cells, title);
  spec.path = path;
  g_autoptr(GError) error = NULL;
  g_assert_true (lsc_figure_save_spec (&spec, NULL, &error));
  g_assert_no_error (error);
}

/* The window's export of the KV view, named as the dialog suggests, is the
 * batch figure of the same log, byte for byte. */
static void
assert_kv_export (Fixture *f, const LscKvLog *log, const char *name, LscKvFigure figure,
                  int layer, int head)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *suggested = lsc_window_dup_export_name (f->win, "svg");
  g_assert_cmpstr (suggested, ==, name);
  g_autofree char *got = g_build_filename (f->tmpdir, name, NULL);
  g_assert_true (lsc_window_export_view (f->win, got, &error));
  g_assert_no_error (error);
  g_autofree char *want_name = g_strconcat ("want-", name, NULL);
  g_autofree char *want = g_build_filename (f->tmpdir, want_name, NULL);
  save_kv_figure (log, figure, layer, head, want);
  assert_same_file (got, want);
}

/* The sidebar's KV cache group and the KV Cache view on a tiny random Llama
 * (tests/fixtures/kv/tiny-mha): every policy shows only its own parameters
 * and turns attention capture off; a policy the engine refuses says why
 * and runs nothing; an H2O run shows in the view (its policy, its budget,
 * what each layer and KV head still caches), exports its figures as the
 * batch job's, byte for byte, saves a job whose batch results hold the same
 * log, and reopens exported; a full-cache run has nothing to show. */
static void
test_kv (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *model_dir = make_kv_model (f);
  lsc_window_open_model (f->win, model_dir);
  g_assert_true (wait_for (f, idle_model, 20000));
  g_assert_null (lsc_window_get_error (f->win));
  const LscModelConfig *config = lsc_model_get_config (
      lsc_loaded_model_get_model (lsc_window_get_model (f->win)));
  g_assert_cmpint (config->n_layers, ==, 4);
  g_assert_cmpint (config->n_kv_heads, ==, 4);
  const char *prompt = "the cache keeps the heavy hitters and the recent tokens";
  lsc_window_set_prompt (f->win, prompt);
  lsc_window_set_max_tokens (f->win, 5);
  g_assert_true (wait_for (f, estimated, 5000));

  /* the controls: a drop-down of the policies, a row per parameter */
  LscKvControls *controls = lsc_window_get_kv_controls (f->win);
  LscKvView *view = lsc_window_get_kv_view (f->win);
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (controls)));
  g_autoptr(GPtrArray) drops = g_ptr_array_new ();
  g_autoptr(GPtrArray) grids = g_ptr_array_new ();
  g_autoptr(GPtrArray) checks = g_ptr_array_new ();
  g_autoptr(GPtrArray) window_checks = g_ptr_array_new ();
  collect (GTK_WIDGET (controls), GTK_TYPE_DROP_DOWN, drops);
  collect (GTK_WIDGET (controls), GTK_TYPE_GRID, grids);
  collect (GTK_WIDGET (controls), GTK_TYPE_CHECK_BUTTON, checks);
  collect (GTK_WIDGET (f->win), GTK_TYPE_CHECK_BUTTON, window_checks);
  g_assert_cmpuint (drops->len, ==, 2);   /* the policy, SnapKV's and PyramidKV's pooling */
  g_assert_cmpuint (grids->len, ==, 1);
  g_assert_cmpuint (checks->len, ==, 1);
  GtkDropDown *policy_drop = drops->pdata[0];
  GtkGrid *grid = grids->pdata[0];
  GtkWidget *compare = checks->pdata[0];
  g_assert_cmpstr (gtk_check_button_get_label (GTK_CHECK_BUTTON (compare)), ==,
                   "Compare with the _full cache");
  GtkWidget *capture = NULL;
  for (guint i = 0; i < window_checks->len; i++)
    if (g_str_has_prefix (gtk_check_button_get_label (window_checks->pdata[i]), "Capture _attention"))
      capture = window_checks->pdata[i];
  g_assert_nonnull (capture);
  g_assert_true (gtk_check_button_get_active (GTK_CHECK_BUTTON (capture)));

  static const struct {
    LscKvPolicyKind kind;
    const char *item, *rows;
  } policies[] = {
    { LSC_KV_FULL, "Full cache", "Policy" },
    { LSC_KV_STREAMING_LLM, "StreamingLLM", "Policy, Sink tokens, Recent tokens, Prompt chunk" },
    { LSC_KV_H2O, "H2O", "Policy, Heavy hitters, Recent tokens, Prompt chunk" },
    { LSC_KV_SNAPKV, "SnapKV", "Policy, Capacity, Window, Kernel, Pooling, Prompt chunk" },
    { LSC_KV_PYRAMIDKV, "PyramidKV",
      "Policy, Capacity, Window, Kernel, Pooling, Beta, Prompt chunk" },
    { LSC_KV_LACACHE, "LaCache", "Policy, Sink tokens, Capacity, Span, Overlap, Prompt chunk" },
    { LSC_KV_LM_INFINITE, "LM-Infinite", "Policy, Global tokens, Local window, Prompt chunk" },
    { LSC_KV_THINK, "ThinK", "Policy, Recent tokens, Pruning ratio, Prompt chunk" },
  };
  GListModel *items = gtk_drop_down_get_model (policy_drop);
  g_assert_cmpuint (g_list_model_get_n_items (items), ==, G_N_ELEMENTS (policies));
  g_assert_cmpuint (gtk_drop_down_get_selected (policy_drop), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (policies); i++)
    {
      guint item = (i + 1) % G_N_ELEMENTS (policies);   /* the full cache last */
      gtk_drop_down_set_selected (policy_drop, item);
      g_assert_cmpstr (gtk_string_list_get_string (GTK_STRING_LIST (items), item), ==,
                       policies[item].item);
      g_autofree char *rows = kv_rows_shown (grid);
      g_test_message ("%s: %s", policies[item].item, rows);
      g_assert_cmpstr (rows, ==, policies[item].rows);
      gboolean kv = policies[item].kind != LSC_KV_FULL;
      g_assert_cmpint (gtk_widget_get_visible (compare), ==, kv);
      /* the policy's reference defaults, which run */
      LscKvPolicy shown, defaults;
      lsc_kv_controls_get_policy (controls, &shown);
      lsc_kv_policy_init (&defaults, policies[item].kind);
      g_assert_cmpint (shown.kind, ==, policies[item].kind);
      g_assert_cmpint (shown.n_sink, ==, defaults.n_sink);
      g_assert_cmpint (shown.n_recent, ==, defaults.n_recent);
      g_assert_cmpint (shown.n_heavy, ==, defaults.n_heavy);
      g_assert_cmpint (shown.capacity, ==, defaults.capacity);
      g_assert_cmpint (shown.kernel, ==, defaults.kernel);
      g_assert_cmpint (shown.n_local, ==, defaults.n_local);
      g_assert_cmpfloat (shown.ratio, ==, defaults.ratio);
      g_autofree char *problem = lsc_kv_controls_dup_problem (controls);
      g_assert_null (problem);
      /* a run under a policy captures no attention */
      g_assert_cmpint (gtk_widget_get_sensitive (capture), ==, !kv);
    }

  /* an even SnapKV kernel: the engine's words before Run and on Run, which
   * starts nothing */
  gtk_drop_down_set_selected (policy_drop, 3);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (kv_control (grid, "Kernel")), 4);
  LscKvPolicy snapkv;
  lsc_kv_policy_init (&snapkv, LSC_KV_SNAPKV);
  snapkv.kernel = 4;
  g_autofree char *problem = lsc_kv_policy_check (&snapkv);
  g_assert_nonnull (problem);
  g_test_message ("%s", problem);
  g_assert_nonnull (strstr (problem, "kernel"));
  g_autofree char *shown_problem = lsc_kv_controls_dup_problem (controls);
  g_assert_cmpstr (shown_problem, ==, problem);
  g_autofree char *cannot = g_strdup_printf ("Cannot run: %s", problem);
  g_assert_cmpstr (lsc_window_get_estimate (f->win), ==, cannot);
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_false (lsc_window_get_busy (f->win));
  g_assert_null (lsc_window_get_run (f->win));
  g_autofree char *refused = g_strdup_printf ("The KV policy cannot run: %s", problem);
  g_assert_cmpstr (lsc_window_get_error (f->win), ==, refused);

  /* H2O with 3 heavy hitters and the 3 latest tokens, compared with the
   * full cache: the run shows in the KV Cache view */
  gtk_drop_down_set_selected (policy_drop, 2);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (kv_control (grid, "Heavy hitters")), 3);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (kv_control (grid, "Recent tokens")), 3);
  g_assert_true (lsc_kv_controls_get_compare (controls));
  g_assert_cmpint (lsc_kv_controls_get_chunk (controls), ==, 0);
  g_assert_true (wait_for (f, estimated, 5000));
  g_test_message ("%s", lsc_window_get_estimate (f->win));
  g_action_group_activate_action (G_ACTION_GROUP (f->win), "run", NULL);
  g_assert_true (lsc_window_get_busy (f->win));
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  LscRun *run = lsc_window_get_run (f->win);
  g_assert_nonnull (run);
  g_test_message ("output: %s", lsc_run_get_output (run));
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "kv");
  g_assert_null (lsc_kv_view_get_status (view));
  g_assert_null (lsc_run_get_attention (run));
  const LscKvLog *log = lsc_run_get_kv (run);
  g_assert_nonnull (log);
  const LscKvPolicy *policy = lsc_kv_log_get_policy (log);
  g_assert_cmpint (policy->kind, ==, LSC_KV_H2O);
  g_assert_cmpint (policy->n_heavy, ==, 3);
  g_assert_cmpint (policy->n_recent, ==, 3);
  int n_tokens, n_prompt;
  lsc_run_get_tokens (run, &n_tokens, &n_prompt);
  g_assert_cmpint (n_prompt, ==, (int) strlen (prompt) + 1);   /* a token a character, and BOS */
  int L = lsc_kv_log_get_n_layers (log), H = lsc_kv_log_get_n_heads (log);
  int N = lsc_kv_log_get_n_positions (log);
  g_assert_cmpint (L, ==, 4);
  g_assert_cmpint (H, ==, 4);
  g_assert_cmpint (N, >, n_prompt);

  /* the summary: the policy, its slots per layer, the picked layer and head */
  g_assert_cmpstr (lsc_kv_view_get_policy_text (view), ==,
                   "H2O (heavy 3, recent 3), the prompt at once");
  g_autoptr(GString) budget = g_string_new (NULL);
  g_string_printf (budget, "Slots per layer after the prompt of %d tokens: ", n_prompt);
  for (int l = 0; l < L; l++)
    g_string_append_printf (budget, "%s%d", l > 0 ? ", " : "",
                            lsc_kv_policy_budget (policy, L, l, n_prompt));
  g_assert_cmpstr (lsc_kv_view_get_budget_text (view), ==, budget->str);
  g_assert_cmpint (lsc_kv_policy_budget (policy, L, 0, n_prompt), ==, 6);
  g_assert_cmpint (lsc_kv_view_get_layer (view), ==, 0);
  g_assert_cmpint (lsc_kv_view_get_head (view), ==, 0);
  const int picks[][2] = { { 0, 0 }, { 2, 1 }, { 3, 3 } };
  for (guint i = 0; i < G_N_ELEMENTS (picks); i++)
    {
      lsc_kv_view_set_layer (view, picks[i][0]);
      lsc_kv_view_set_head (view, picks[i][1]);
      g_assert_cmpint (lsc_kv_view_get_layer (view), ==, picks[i][0]);
      g_assert_cmpint (lsc_kv_view_get_head (view), ==, picks[i][1]);
      int alive = lsc_kv_log_count_alive (log, picks[i][0], picks[i][1]);
      g_assert_cmpint (alive, ==, 3 + 3);
      g_autofree char *cached = g_strdup_printf ("Layer %d, KV head %d: %d of %d positions cached",
                                                 picks[i][0], picks[i][1], alive, N);
      g_assert_cmpstr (lsc_kv_view_get_cached_text (view), ==, cached);
    }
  lsc_kv_view_set_layer (view, 99);   /* clamped to the model's */
  lsc_kv_view_set_head (view, -5);
  g_assert_cmpint (lsc_kv_view_get_layer (view), ==, 3);
  g_assert_cmpint (lsc_kv_view_get_head (view), ==, 0);
  lsc_kv_view_set_head (view, 3);
  const double *kl;
  int n_compared;
  g_assert_true (lsc_run_get_kv_comparison (run, &kl, NULL, &n_compared));
  g_assert_cmpint (n_compared, ==, 5);   /* the prompt, then every new token but the last */
  g_test_message ("%s", lsc_kv_view_get_compare_text (view));
  g_assert_true (g_str_has_prefix (lsc_kv_view_get_compare_text (view),
                                   "Against the full cache: mean KL divergence "));

  /* the timeline of layer 3, KV head 3 in the three formats; its SVG and the
   * Layers figure's (the mean over the KV heads, and of one head) are the
   * batch job's */
  GActionGroup *actions = G_ACTION_GROUP (f->win);
  g_assert_true (g_action_group_get_action_enabled (actions, "export"));
  g_assert_cmpint (lsc_kv_view_get_figure (view), ==, LSC_KV_FIGURE_TIMELINE);
  const struct { const char *ext, *magic; } formats[] = {
    { "png", "\x89PNG\r\n\x1a\n" }, { "svg", "<?xml" }, { "pdf", "%PDF-" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
    {
      g_autofree char *name = lsc_window_dup_export_name (f->win, formats[i].ext);
      g_autofree char *expected = g_strdup_printf ("kv-timeline-layer3-head3.%s", formats[i].ext);
      g_assert_cmpstr (name, ==, expected);
      g_autofree char *path = g_build_filename (f->tmpdir, name, NULL);
      g_assert_true (lsc_window_export_view (f->win, path, &error));
      g_assert_no_error (error);
      check_file_starts (path, formats[i].magic, 1000);
    }
  g_autofree char *png = g_build_filename (f->tmpdir, "kv-timeline-layer3-head3.png", NULL);
  g_autoptr(GdkTexture) figure = gdk_texture_new_from_filename (png, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (count_colours (figure), >=, 16);
  assert_kv_export (f, log, "kv-timeline-layer3-head3.svg", LSC_KV_FIGURE_TIMELINE, 3, 3);
  lsc_kv_view_set_figure (view, LSC_KV_FIGURE_LAYERS);
  g_assert_cmpint (lsc_kv_view_get_figure (view), ==, LSC_KV_FIGURE_LAYERS);
  assert_kv_export (f, log, "kv-layers.svg", LSC_KV_FIGURE_LAYERS, -1, -1);
  lsc_kv_view_set_all_heads (view, FALSE);
  assert_kv_export (f, log, "kv-layers-head3.svg", LSC_KV_FIGURE_LAYERS, -1, 3);
  lsc_kv_view_set_all_heads (view, TRUE);

  /* the KL divergence per new token: a point a compared step */
  lsc_kv_view_set_figure (view, LSC_KV_FIGURE_KL);
  g_assert_cmpint (lsc_kv_view_get_figure (view), ==, LSC_KV_FIGURE_KL);
  const LscFigureSpec *shown = lsc_kv_view_get_spec (view);
  g_assert_nonnull (shown);
  g_assert_cmpint (shown->kind, ==, LSC_FIGURE_SPEC_LINE);
  g_assert_cmpint (shown->n, ==, n_compared);
  for (int i = 0; i < n_compared; i++)
    g_assert_cmpfloat (shown->y[i], ==, kl[i]);
  g_autofree char *kl_name = lsc_window_dup_export_name (f->win, "pdf");
  g_assert_cmpstr (kl_name, ==, "kv-kl.pdf");
  g_autofree char *kl_pdf = g_build_filename (f->tmpdir, kl_name, NULL);
  g_assert_true (lsc_window_export_view (f->win, kl_pdf, &error));
  g_assert_no_error (error);
  check_file_starts (kl_pdf, "%PDF-", 1000);
  lsc_kv_view_set_figure (view, LSC_KV_FIGURE_TIMELINE);

  /* the saved job runs the same policy: the batch results hold the run's
   * log, position for position */
  g_autofree char *job_path = g_build_filename (f->tmpdir, "kv-job.json", NULL);
  g_assert_true (lsc_window_save_job (f->win, job_path, &error));
  g_assert_no_error (error);
  g_autofree char *job_dir = g_build_filename (f->tmpdir, "kv-job", NULL);
  g_assert_cmpint (lsc_test_run_batch (job_path, job_dir), ==, 0);
  g_autofree char *results_path = g_build_filename (job_dir, "results.json", NULL);
  json_object *results = json_object_from_file (results_path);
  g_assert_nonnull (results);
  g_assert_null (json_object_object_get (json_object_object_get (results, "job"), "capture"));
  json_object *kv = json_object_object_get (results, "kv");
  g_assert_nonnull (kv);
  g_assert_cmpstr (json_object_get_string (json_object_object_get (
                       json_object_object_get (kv, "policy"), "kind")), ==, "h2o");
  g_assert_cmpint (json_object_get_int (json_object_object_get (kv, "positions")), ==, N);
  json_object *alive = json_object_object_get (kv, "alive");
  json_object *slots = json_object_object_get (kv, "budget");
  g_assert_cmpuint (json_object_array_length (alive), ==, L);
  g_assert_cmpuint (json_object_array_length (slots), ==, L);
  for (int l = 0; l < L; l++)
    {
      json_object *row = json_object_array_get_idx (alive, l);
      g_assert_cmpuint (json_object_array_length (row), ==, H);
      g_assert_cmpint (json_object_get_int (json_object_array_get_idx (slots, l)), ==,
                       lsc_kv_policy_budget (policy, L, l, n_prompt));
      for (int h = 0; h < H; h++)
        g_assert_cmpint (json_object_get_int (json_object_array_get_idx (row, h)), ==,
                         lsc_kv_log_count_alive (log, l, h));
    }
  json_object *kl_saved = json_object_object_get (json_object_object_get (kv, "compare"), "kl");
  g_assert_cmpuint (json_object_array_length (kl_saved), ==, n_compared);
  for (int i = 0; i < n_compared; i++)
    g_assert_cmpfloat_with_epsilon (json_object_get_double (json_object_array_get_idx (kl_saved, i)),
                                    kl[i], 1e-9 * (1 + fabs (kl[i])));
  json_object_put (results);

  /* the batch results and the window's exported run read back with the
   * same tokens and log (kv.evicted_at, kv.score) */
  g_autofree char *export_dir = g_build_filename (f->tmpdir, "kv-run", NULL);
  g_assert_true (lsc_window_export_run (f->win, export_dir, &error));
  g_assert_no_error (error);
  const gint32 *tokens = lsc_run_get_tokens (run, NULL, NULL);
  const char *saved[] = { job_dir, export_dir };
  for (guint i = 0; i < G_N_ELEMENTS (saved); i++)
    {
      g_autoptr(LscRun) opened = lsc_run_open (lsc_window_get_model (f->win), saved[i], &error);
      g_assert_no_error (error);
      int n_back;
      const gint32 *back_tokens = lsc_run_get_tokens (opened, &n_back, NULL);
      g_assert_cmpmem (back_tokens, (gsize) n_back * sizeof (gint32), tokens,
                       (gsize) n_tokens * sizeof (gint32));
      const LscKvLog *back = lsc_run_get_kv (opened);
      g_assert_nonnull (back);
      g_assert_cmpint (lsc_kv_log_get_n_positions (back), ==, N);
      for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
          {
            g_assert_cmpint (lsc_kv_log_count_alive (back, l, h), ==, 6);
            for (int p = 0; p < N; p++)
              {
                g_assert_cmpint (lsc_kv_log_evicted_at (back, l, h, p), ==,
                                 lsc_kv_log_evicted_at (log, l, h, p));
                float a = lsc_kv_log_score (back, l, h, p), b = lsc_kv_log_score (log, l, h, p);
                if (isnan (b))
                  g_assert_true (isnan (a));
                else
                  g_assert_cmpfloat_with_epsilon (a, b, 1e-5 * (1 + fabs (b)));
              }
          }
    }

  /* the exported run, opened in the window, shows in the view again */
  lsc_window_show_view (f->win, "attention");
  lsc_window_open_results (f->win, export_dir);
  g_assert_true (wait_for (f, not_busy, 20000));
  g_assert_null (lsc_window_get_error (f->win));
  LscRun *reopened = lsc_window_get_run (f->win);
  g_assert_true (reopened != run);
  g_assert_cmpstr (lsc_run_get_source (reopened), ==, export_dir);
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "kv");
  g_assert_null (lsc_kv_view_get_status (view));
  g_assert_true (lsc_kv_view_can_export (view));
  g_assert_cmpstr (lsc_kv_view_get_policy_text (view), ==,
                   "H2O (heavy 3, recent 3), the prompt at once");
  g_assert_cmpstr (lsc_kv_view_get_budget_text (view), ==, budget->str);
  g_autofree char *cached = g_strdup_printf ("Layer 3, KV head 3: 6 of %d positions cached", N);
  g_assert_cmpstr (lsc_kv_view_get_cached_text (view), ==, cached);
  lsc_kv_view_set_figure (view, LSC_KV_FIGURE_KL);
  g_assert_cmpint (lsc_kv_view_get_figure (view), ==, LSC_KV_FIGURE_KL);
  g_assert_cmpint (lsc_kv_view_get_spec (view)->n, ==, n_compared);
  lsc_kv_view_set_figure (view, LSC_KV_FIGURE_TIMELINE);
  assert_kv_export (f, lsc_run_get_kv (reopened), "kv-timeline-layer3-head3.svg",
                    LSC_KV_FIGURE_TIMELINE, 3, 3);

  /* a screenshot of the window on the KV Cache view */
  spin (100);
  g_autoptr(GdkTexture) view_shot = screenshot (GTK_WIDGET (view));
  g_assert_cmpuint (count_colours (view_shot), >=, 16);   /* the summary and the figure */
  g_autoptr(GdkTexture) shot = screenshot (GTK_WIDGET (f->win));
  const char *dir = g_getenv ("G_TEST_BUILDDIR");
  g_autofree char *shot_path = g_build_filename (dir ? dir : ".", "gui-kv-screenshot.png", NULL);
  g_assert_true (gdk_texture_save_to_png (shot, shot_path));
  g_test_message ("screenshot: %s", shot_path);
  guint colours = count_colours (shot);
  g_test_message ("%u distinct colours", colours);
  g_assert_cmpuint (colours, >=, 64);   /* widgets, text and a figure, not a blank window */

  /* the full cache again: capture back on, and the view says there is
   * nothing to show, nor to export */
  gtk_drop_down_set_selected (policy_drop, 0);
  g_assert_true (gtk_widget_get_sensitive (capture));
  g_action_group_activate_action (actions, "run", NULL);
  g_assert_true (wait_for (f, not_busy, 60000));
  g_assert_null (lsc_window_get_error (f->win));
  run = lsc_window_get_run (f->win);
  g_assert_null (lsc_run_get_kv (run));
  g_assert_nonnull (lsc_run_get_attention (run));
  g_assert_cmpstr (lsc_window_get_view (f->win), ==, "attention");
  /* the Experiments view compares this run with the last one under the
   * policy: no attention there, but their generations */
  const char *summary = lsc_experiments_view_get_summary (lsc_window_get_experiments_view (f->win));
  g_test_message ("%s", summary);
  g_assert_true (g_str_has_prefix (summary, "A run under a KV policy captures no attention"));
  g_assert_nonnull (strstr (summary, "Δ mean log-probability (B − A) "));
  g_test_message ("%s", lsc_kv_view_get_status (view));
  g_assert_nonnull (lsc_kv_view_get_status (view));
  g_assert_true (g_str_has_prefix (lsc_kv_view_get_status (view), "This run kept the full cache."));
  g_assert_cmpstr (lsc_kv_view_get_policy_text (view), ==, "");
  g_assert_false (lsc_kv_view_can_export (view));
  lsc_window_show_view (f->win, "kv");
  g_assert_false (g_action_group_get_action_enabled (actions, "export"));
  g_autofree char *none = g_build_filename (f->tmpdir, "none.svg", NULL);
  g_assert_false (lsc_window_export_view (f->win, none, &error));
  lsc_test_assert_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA,
                         "There is no KV-cache figure to export", NULL);
  g_clear_error (&error);
  g_assert_false (g_file_test (none, G_FILE_TEST_EXISTS));
}

int
main (int argc, char **argv)
{
  gtk_test_init (&argc, &argv, NULL);
  g_test_add ("/gui/Window/demo-session", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_demo_session, fixture_teardown);
  g_test_add ("/gui/Window/cancel", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_cancel, fixture_teardown);
  g_test_add ("/gui/Window/backend", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_backend, fixture_teardown);
  g_test_add ("/gui/Window/plugins", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_plugins, fixture_teardown);
  g_test_add ("/gui/Window/retrieval", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_retrieval, fixture_teardown);
  g_test_add ("/gui/Window/retrieval-figure", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_retrieval_figure, fixture_teardown);
  g_test_add ("/gui/Window/experiments", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_experiments, fixture_teardown);
  g_test_add ("/gui/Window/open-results", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_open_results, fixture_teardown);
  g_test_add ("/gui/Window/ssm", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_ssm, fixture_teardown);
  g_test_add ("/gui/Window/kv", Fixture, LSC_DEMO_INDUCTION, fixture_setup,
              test_kv, fixture_teardown);
  g_test_add ("/gui/Window/load-error", Fixture, "/nonexistent/model.gguf", fixture_setup,
              test_load_error, fixture_teardown);
  return g_test_run ();
}
