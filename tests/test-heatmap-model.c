/* SPDX-License-Identifier: MIT
 *
 * The heatmap's view state and data fetching, headless: zoom, pan,
 * hit-testing and coordinate mapping of LscHeatmapModel, and the region
 * fetches of LscAttentionSource on a demo:induction run. No GTK.
 */
#include "config.h"

#include <math.h>

#include "lsc-attention-source.h"
#include "lsc-demo.h"
#include "lsc-heatmap-model.h"
#include "lsc-run.h"
#include "lsc-test-util.h"

#define EPS 1e-9

static void
test_fit (void)
{
  g_autoptr(LscHeatmapModel) m = lsc_heatmap_model_new ();
  int r0, r1, c0, c1;
  g_assert_false (lsc_heatmap_model_get_visible (m, &r0, &r1, &c0, &c1));
  lsc_heatmap_model_set_data_size (m, 100, 100);
  lsc_heatmap_model_set_viewport (m, 400, 200);
  /* fits the smaller side: 2 px per cell, centred horizontally */
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_cell_size (m), 2.0, EPS);
  double oc, orow;
  lsc_heatmap_model_get_origin (m, &oc, &orow);
  g_assert_cmpfloat_with_epsilon (oc, -50.0, EPS);
  g_assert_cmpfloat_with_epsilon (orow, 0.0, EPS);
  g_assert_true (lsc_heatmap_model_get_visible (m, &r0, &r1, &c0, &c1));
  g_assert_cmpint (r0, ==, 0);
  g_assert_cmpint (r1, ==, 100);
  g_assert_cmpint (c0, ==, 0);
  g_assert_cmpint (c1, ==, 100);
  g_assert_false (lsc_heatmap_model_can_zoom_out (m));
  g_assert_true (lsc_heatmap_model_can_zoom_in (m));
}

static void
test_hit (void)
{
  g_autoptr(LscHeatmapModel) m = lsc_heatmap_model_new ();
  lsc_heatmap_model_set_data_size (m, 10, 10);
  lsc_heatmap_model_set_viewport (m, 100, 100);   /* 10 px per cell */
  int row = -1, col = -1;
  g_assert_true (lsc_heatmap_model_pixel_to_cell (m, 0, 0, &row, &col));
  g_assert_cmpint (row, ==, 0);
  g_assert_cmpint (col, ==, 0);
  g_assert_true (lsc_heatmap_model_pixel_to_cell (m, 35, 99.9, &row, &col));
  g_assert_cmpint (row, ==, 9);
  g_assert_cmpint (col, ==, 3);
  g_assert_false (lsc_heatmap_model_pixel_to_cell (m, 100, 5, NULL, NULL));
  g_assert_false (lsc_heatmap_model_pixel_to_cell (m, -0.5, 5, NULL, NULL));
  double x, y;
  lsc_heatmap_model_cell_to_pixel (m, 9, 3, &x, &y);
  g_assert_cmpfloat_with_epsilon (x, 30, EPS);
  g_assert_cmpfloat_with_epsilon (y, 90, EPS);

  /* a wide viewport: cells outside the centred matrix miss */
  lsc_heatmap_model_set_viewport (m, 300, 100);
  g_assert_false (lsc_heatmap_model_pixel_to_cell (m, 50, 50, NULL, NULL));
  g_assert_true (lsc_heatmap_model_pixel_to_cell (m, 105, 50, &row, &col));
  g_assert_cmpint (col, ==, 0);
  g_assert_cmpint (row, ==, 5);
}

static void
test_zoom_steps (void)
{
  g_autoptr(LscHeatmapModel) m = lsc_heatmap_model_new ();
  lsc_heatmap_model_set_data_size (m, 1000, 1000);
  lsc_heatmap_model_set_viewport (m, 500, 500);   /* fit 0.5 px, max zoom 128 */
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_max_zoom (m), 128.0, EPS);
  lsc_heatmap_model_zoom_in (m);
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_zoom (m), G_SQRT2, 1e-12);
  lsc_heatmap_model_zoom_in (m);
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_zoom (m), 2.0, 1e-12);
  lsc_heatmap_model_zoom_out (m);
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_zoom (m), G_SQRT2, 1e-12);
  /* clamped at both ends, and the ends disable the steps */
  for (int i = 0; i < 40; i++)
    lsc_heatmap_model_zoom_in (m);
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_zoom (m), 128.0, 1e-9);
  g_assert_false (lsc_heatmap_model_can_zoom_in (m));
  g_assert_true (lsc_heatmap_model_can_zoom_out (m));
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_cell_size (m), LSC_HEATMAP_MAX_CELL_PX, 1e-9);
  for (int i = 0; i < 40; i++)
    lsc_heatmap_model_zoom_out (m);
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_zoom (m), 1.0, EPS);
  g_assert_false (lsc_heatmap_model_can_zoom_out (m));
  lsc_heatmap_model_zoom_in (m);
  lsc_heatmap_model_zoom_reset (m);
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_zoom (m), 1.0, EPS);
}

static void
count_notify (GObject *obj, GParamSpec *pspec, int *n)
{
  (*n)++;
}

static void
test_notify (void)
{
  g_autoptr(LscHeatmapModel) m = lsc_heatmap_model_new ();
  int n_in = 0, n_out = 0, n_zoom = 0;
  g_signal_connect (m, "notify::can-zoom-in", G_CALLBACK (count_notify), &n_in);
  g_signal_connect (m, "notify::can-zoom-out", G_CALLBACK (count_notify), &n_out);
  g_signal_connect (m, "notify::zoom", G_CALLBACK (count_notify), &n_zoom);
  lsc_heatmap_model_set_data_size (m, 10, 10);
  lsc_heatmap_model_set_viewport (m, 100, 100);
  g_assert_cmpint (n_in, ==, 1);     /* became possible */
  lsc_heatmap_model_zoom_in (m);
  g_assert_cmpint (n_out, ==, 1);
  g_assert_cmpint (n_zoom, >=, 1);
  lsc_heatmap_model_zoom_in (m);
  g_assert_cmpint (n_out, ==, 1);    /* unchanged: no second notify */
}

static void
test_zoom_at_pointer (void)
{
  g_autoptr(LscHeatmapModel) m = lsc_heatmap_model_new ();
  lsc_heatmap_model_set_data_size (m, 100, 100);
  lsc_heatmap_model_set_viewport (m, 200, 200);   /* 2 px per cell */
  int row0, col0, row1, col1;
  /* the cell under the pointer stays under it */
  g_assert_true (lsc_heatmap_model_pixel_to_cell (m, 51, 151, &row0, &col0));
  lsc_heatmap_model_zoom_at (m, 4.0, 51, 151);
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_cell_size (m), 8.0, EPS);
  g_assert_true (lsc_heatmap_model_pixel_to_cell (m, 51, 151, &row1, &col1));
  g_assert_cmpint (row0, ==, row1);
  g_assert_cmpint (col0, ==, col1);
  double oc, orow;
  lsc_heatmap_model_get_origin (m, &oc, &orow);
  g_assert_cmpfloat_with_epsilon (oc, 25.5 - 51.0 / 8, 1e-9);
  g_assert_cmpfloat_with_epsilon (orow, 75.5 - 151.0 / 8, 1e-9);
  int r0, r1, c0, c1;
  g_assert_true (lsc_heatmap_model_get_visible (m, &r0, &r1, &c0, &c1));
  g_assert_cmpint (r1 - r0, <=, 26);
  g_assert_cmpint (c1 - c0, <=, 26);
  /* zooming at a corner near the edge stays clamped inside the matrix */
  lsc_heatmap_model_zoom_reset (m);
  lsc_heatmap_model_zoom_at (m, 2.0, 0, 0);
  lsc_heatmap_model_get_origin (m, &oc, &orow);
  g_assert_cmpfloat_with_epsilon (oc, 0, EPS);
  g_assert_cmpfloat_with_epsilon (orow, 0, EPS);
}

static void
test_pan (void)
{
  g_autoptr(LscHeatmapModel) m = lsc_heatmap_model_new ();
  lsc_heatmap_model_set_data_size (m, 100, 100);
  lsc_heatmap_model_set_viewport (m, 100, 100);   /* 1 px per cell */
  double oc, orow;
  /* at zoom 1 the whole map is shown: panning does nothing */
  lsc_heatmap_model_pan (m, 30, 30);
  lsc_heatmap_model_get_origin (m, &oc, &orow);
  g_assert_cmpfloat_with_epsilon (oc, 0, EPS);
  lsc_heatmap_model_zoom_at (m, 4.0, 0, 0);       /* 4 px, 25 cells visible */
  lsc_heatmap_model_pan (m, -40, -20);            /* drag left/up: content moves left/up */
  lsc_heatmap_model_get_origin (m, &oc, &orow);
  g_assert_cmpfloat_with_epsilon (oc, 10, EPS);
  g_assert_cmpfloat_with_epsilon (orow, 5, EPS);
  /* clamped at the far edge */
  lsc_heatmap_model_pan (m, -10000, -10000);
  lsc_heatmap_model_get_origin (m, &oc, &orow);
  g_assert_cmpfloat_with_epsilon (oc, 75, EPS);
  g_assert_cmpfloat_with_epsilon (orow, 75, EPS);
  int r0, r1, c0, c1;
  g_assert_true (lsc_heatmap_model_get_visible (m, &r0, &r1, &c0, &c1));
  g_assert_cmpint (r0, ==, 75);
  g_assert_cmpint (r1, ==, 100);
  lsc_heatmap_model_pan (m, 10000, 10000);
  lsc_heatmap_model_get_origin (m, &oc, &orow);
  g_assert_cmpfloat_with_epsilon (oc, 0, EPS);
  g_assert_cmpfloat_with_epsilon (orow, 0, EPS);
}

static void
test_resize_keeps_centre (void)
{
  g_autoptr(LscHeatmapModel) m = lsc_heatmap_model_new ();
  lsc_heatmap_model_set_data_size (m, 1000, 1000);
  lsc_heatmap_model_set_viewport (m, 100, 100);
  lsc_heatmap_model_zoom_at (m, 8.0, 50, 50);     /* centre cell 500 */
  int row, col;
  g_assert_true (lsc_heatmap_model_pixel_to_cell (m, 50, 50, &row, &col));
  lsc_heatmap_model_set_viewport (m, 200, 200);
  int row2, col2;
  g_assert_true (lsc_heatmap_model_pixel_to_cell (m, 100, 100, &row2, &col2));
  g_assert_cmpint (abs (row2 - row), <=, 1);
  g_assert_cmpint (abs (col2 - col), <=, 1);
  /* a new data size resets the view */
  lsc_heatmap_model_set_data_size (m, 10, 10);
  g_assert_cmpfloat_with_epsilon (lsc_heatmap_model_get_zoom (m), 1.0, EPS);
}

/* ------------------------------------------------- attention source */

static LscRun *
demo_run (const char *prompt, int max_tokens, gboolean cancel)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscLoadedModel) model = lsc_loaded_model_load (LSC_DEMO_INDUCTION, NULL, &error);
  g_assert_no_error (error);
  LscRunParams p;
  lsc_run_params_init (&p);
  p.prompt = prompt;
  p.max_tokens = max_tokens;
  LscRun *run = lsc_run_new (model, &p);
  gboolean ok = lsc_test_execute_run (run, cancel, &error);
  if (cancel)
    {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      g_clear_error (&error);
      g_assert_false (ok);
    }
  else
    {
      g_assert_no_error (error);
      g_assert_true (ok);
    }
  return run;
}

static void
test_selection (void)
{
  g_autoptr(LscHeatmapModel) m = lsc_heatmap_model_new ();
  lsc_heatmap_model_set_data_size (m, 10, 20);
  lsc_heatmap_model_set_viewport (m, 200, 100);   /* 10 px per cell */
  int r0, r1, c0, c1;
  g_assert_false (lsc_heatmap_model_get_selection (m, &r0, &r1, &c0, &c1));
  /* corners in any order; partly covered cells count */
  g_assert_true (lsc_heatmap_model_select (m, 55, 38, 12, 5));
  g_assert_true (lsc_heatmap_model_get_selection (m, &r0, &r1, &c0, &c1));
  g_assert_cmpint (r0, ==, 0);
  g_assert_cmpint (r1, ==, 4);
  g_assert_cmpint (c0, ==, 1);
  g_assert_cmpint (c1, ==, 6);
  /* kept in cells across zoom and pan */
  lsc_heatmap_model_zoom_at (m, 2.0, 0, 0);
  g_assert_true (lsc_heatmap_model_get_selection (m, &r0, &r1, &c0, &c1));
  g_assert_cmpint (c1, ==, 6);
  lsc_heatmap_model_zoom_reset (m);
  /* clamped to the matrix; outside it entirely: nothing */
  g_assert_true (lsc_heatmap_model_select (m, 150, 80, 400, 300));
  g_assert_true (lsc_heatmap_model_get_selection (m, &r0, &r1, &c0, &c1));
  g_assert_cmpint (r0, ==, 8);
  g_assert_cmpint (r1, ==, 10);
  g_assert_cmpint (c0, ==, 15);
  g_assert_cmpint (c1, ==, 20);
  g_assert_false (lsc_heatmap_model_select (m, 250, 0, 300, 50));
  g_assert_false (lsc_heatmap_model_get_selection (m, &r0, &r1, &c0, &c1));
  /* a new data size clears it */
  g_assert_true (lsc_heatmap_model_select (m, 0, 0, 5, 5));
  lsc_heatmap_model_set_data_size (m, 30, 30);
  g_assert_false (lsc_heatmap_model_get_selection (m, &r0, &r1, &c0, &c1));
  g_assert_true (lsc_heatmap_model_select (m, 100, 0, 105, 5));   /* centred: column 15 */
  g_assert_true (lsc_heatmap_model_get_selection (m, &r0, &r1, &c0, &c1));
  g_assert_cmpint (c0, ==, 15);
  lsc_heatmap_model_clear_selection (m);
  g_assert_false (lsc_heatmap_model_get_selection (m, &r0, &r1, &c0, &c1));
}

static void
on_source (GObject *object, GAsyncResult *result, gpointer data)
{
  LscAttentionSource **out = data;
  g_autoptr(GError) error = NULL;
  *out = lsc_attention_source_new_finish (result, &error);
  g_assert_no_error (error);
}

static void
test_run_and_source (void)
{
  g_autoptr(LscRun) run = demo_run ("abcdefgh abcdefgh", 8, FALSE);
  int n_tokens, n_prompt;
  const gint32 *tokens = lsc_run_get_tokens (run, &n_tokens, &n_prompt);
  g_assert_nonnull (tokens);
  g_assert_cmpint (n_prompt, ==, 18);   /* BOS + 17 characters */
  g_assert_cmpint (n_tokens, ==, 26);
  g_assert_cmpstr (lsc_run_get_output (run), ==, " abcdefg");   /* the copy head continues */
  int nl, nh;
  const LscHeadStats *stats = lsc_run_get_head_stats (run, &nl, &nh);
  g_assert_nonnull (stats);
  g_assert_cmpint (nl, ==, 2);
  g_assert_cmpint (nh, ==, 4);
  g_assert_cmpfloat (lsc_run_get_fraction (run), ==, 1.0);

  const LscAttentionStore *store = lsc_run_get_attention (run);
  g_autoptr(GError) error = NULL;
  g_autoptr(LscAttentionSource) src =
      lsc_attention_source_new (store, G_OBJECT (run), LSC_DEMO_PREV_TOKEN_LAYER,
                                LSC_DEMO_PREV_TOKEN_HEAD, &error);
  g_assert_no_error (error);
  int rows = lsc_attention_source_get_rows (src), cols = lsc_attention_source_get_cols (src);
  g_assert_cmpint (rows, >=, n_tokens - 1);
  g_assert_cmpint (cols, ==, lsc_attention_source_get_row_start (src) + rows);

  /* exact: the previous-token head puts 0.65 on key i - 1 */
  g_autoptr(LscAttentionGrid) g = lsc_attention_source_fetch (src, 0, rows, 0, cols, 1 << 20, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g->block, ==, 1);
  int start = lsc_attention_source_get_row_start (src);
  for (int i = 2; i < rows; i++)
    {
      int pos = start + i;
      if (pos < 2)
        continue;
      g_assert_cmpfloat_with_epsilon (lsc_attention_grid_value (g, i, pos - 1), 0.65, 1e-3);
      g_assert_true (isnan (lsc_attention_grid_value (g, i, pos + 1)) || pos + 1 >= cols);
      float p;
      g_assert_true (lsc_attention_source_get_prob (src, i, pos - 1, &p, &error));
      g_assert_cmpfloat_with_epsilon (p, lsc_attention_grid_value (g, i, pos - 1), 1e-6);
    }
  g_assert_true (isnan (lsc_attention_grid_value (g, rows, 0)));

  /* too many cells for the budget: pooled block maxima that cover the region */
  g_autoptr(LscAttentionGrid) pooled = lsc_attention_source_fetch (src, 3, rows, 1, cols, 16, &error);
  g_assert_no_error (error);
  g_assert_cmpint (pooled->block, >, 1);
  g_assert_cmpint ((gsize) pooled->rows * pooled->cols, <=, 16);
  g_assert_true (lsc_attention_grid_covers (pooled, 3, rows, 1, cols));
  /* a block max is at least every exact value it covers */
  for (int i = 3; i < rows; i++)
    for (int j = 1; j < cols; j++)
      {
        float e = lsc_attention_grid_value (g, i, j);
        if (!isnan (e))
          g_assert_cmpfloat (lsc_attention_grid_value (pooled, i, j), >=, e - 1e-4f);
      }
  gsize n;
  g_assert_nonnull (lsc_attention_source_get_overview (src, &n));
  g_assert_cmpuint (n, >, 0);

  /* mass: each row's attention sums to 1; a region's is its cells' sum */
  double mass;
  g_assert_true (lsc_attention_source_get_mass (src, 2, rows, 0, cols, &mass, &error));
  g_assert_cmpfloat_with_epsilon (mass, rows - 2, 1e-5 * rows);
  g_assert_true (lsc_attention_source_get_mass (src, 4, 9, 2, 7, &mass, &error));
  double sum = 0;
  for (int i = 4; i < 9; i++)
    for (int j = 2; j < 7; j++)
      if (!isnan (lsc_attention_grid_value (g, i, j)))
        sum += lsc_attention_grid_value (g, i, j);
  g_assert_cmpfloat_with_epsilon (mass, sum, 1e-6);
  g_assert_cmpfloat (mass, >, 0.5);

  /* the same source built on a worker thread */
  LscAttentionSource *async = NULL;
  lsc_attention_source_new_async (store, G_OBJECT (run), LSC_DEMO_PREV_TOKEN_LAYER,
                                  LSC_DEMO_PREV_TOKEN_HEAD, NULL, on_source, &async);
  while (async == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (lsc_attention_source_get_rows (async), ==, rows);
  g_autoptr(LscAttentionGrid) g2 = lsc_attention_source_fetch (async, 0, rows, 0, cols, 1 << 20, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g2->values, sizeof (float) * rows * cols, g->values, sizeof (float) * rows * cols);
  lsc_attention_source_unref (async);
}

static void
test_run_cancel (void)
{
  g_autoptr(LscRun) run = demo_run ("abcdefgh abcdefgh", 4096, TRUE);
  g_assert_null (lsc_run_get_attention (run));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ui/HeatmapModel/fit", test_fit);
  g_test_add_func ("/ui/HeatmapModel/hit-testing", test_hit);
  g_test_add_func ("/ui/HeatmapModel/zoom-steps", test_zoom_steps);
  g_test_add_func ("/ui/HeatmapModel/notify", test_notify);
  g_test_add_func ("/ui/HeatmapModel/zoom-at-pointer", test_zoom_at_pointer);
  g_test_add_func ("/ui/HeatmapModel/pan", test_pan);
  g_test_add_func ("/ui/HeatmapModel/resize-keeps-centre", test_resize_keeps_centre);
  g_test_add_func ("/ui/HeatmapModel/selection", test_selection);
  g_test_add_func ("/ui/AttentionSource/demo-run", test_run_and_source);
  g_test_add_func ("/ui/Run/cancel", test_run_cancel);
  return g_test_run ();
}
