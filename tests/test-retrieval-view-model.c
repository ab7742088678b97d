/* SPDX-License-Identifier: MIT
 *
 * The Retrieval Heads view's detection, headless (ui/lsc-retrieval-run.h):
 * the demo model's defaults, the grid on demo:induction (its copy head
 * ranks first with the batch job's score 12/13), progress, bad parameters,
 * and cancellation, synchronous and on a worker thread.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-demo.h"
#include "lsc-retrieval-run.h"

static LscLoadedModel *
load_demo (void)
{
  g_autoptr(GError) error = NULL;
  LscLoadedModel *m = lsc_loaded_model_load (LSC_DEMO_INDUCTION, NULL, &error);
  g_assert_no_error (error);
  return m;
}

static void
test_defaults (void)
{
  g_autoptr(LscLoadedModel) m = load_demo ();
  LscRetrievalRunParams p;
  lsc_retrieval_run_params_init (&p, m);
  /* the demo batch job's grid (data/demo-job.json) */
  g_assert_cmpstr (p.answer, ==, "KZ9 X4W8 M2P6");
  g_assert_true (g_str_has_suffix (p.haystack_file, "demo-haystack.txt"));
  g_assert_cmpint (p.n_lengths, ==, 2);
  g_assert_cmpint (p.context_lengths[0], ==, 200);
  g_assert_cmpint (p.context_lengths[1], ==, 400);
  g_assert_cmpint (p.n_depths, ==, 3);
  g_assert_cmpint (p.buffer_tokens, ==, 64);
  g_assert_cmpint (p.cue_tokens, ==, 3);
  g_assert_cmpint (p.max_tokens, ==, 24);
  g_assert_cmpfloat (lsc_retrieval_run_depth (1, 3), ==, 50.0);
  g_assert_cmpfloat (lsc_retrieval_run_depth (2, 3), ==, 100.0);
  g_assert_cmpfloat (lsc_retrieval_run_depth (1, 4), ==, 33.0);
  g_assert_cmpfloat (lsc_retrieval_run_depth (0, 1), ==, 0.0);
  /* any other model: the reference's needle in data/haystack.txt */
  lsc_retrieval_run_params_init (&p, NULL);
  g_assert_cmpstr (p.answer, ==, "eat a sandwich and sit in Dolores Park on a sunny day");
  g_assert_true (g_str_has_suffix (p.haystack_file, G_DIR_SEPARATOR_S "haystack.txt"));
  g_assert_cmpint (p.buffer_tokens, ==, 200);
  g_assert_cmpint (p.max_tokens, ==, 50);
}

static void
count_progress (int done, int total, gpointer data)
{
  int *calls = data;
  g_assert_cmpint (done, ==, calls[0]);
  g_assert_cmpint (total, ==, 6);
  calls[0]++;
}

static void
test_demo (void)
{
  g_autoptr(LscLoadedModel) m = load_demo ();
  g_autoptr(GError) error = NULL;
  LscRetrievalRunParams p;
  lsc_retrieval_run_params_init (&p, m);
  p.n_threads = 1;
  int calls[1] = { 0 };
  g_autoptr(LscRetrievalDetection) d = lsc_retrieval_detect (m, &p, count_progress, calls, NULL,
                                                             &error);
  g_assert_no_error (error);
  g_assert_nonnull (d);
  g_assert_cmpint (calls[0], ==, 7);   /* before each of the 6 samples, and at the end */
  g_assert_cmpint (d->n_layers, ==, 2);
  g_assert_cmpint (d->n_heads, ==, 4);
  g_assert_cmpint (d->n_samples, ==, 6);
  g_assert_cmpint (d->n_passed, ==, 6);
  g_assert_cmpfloat (d->mean_recall, ==, 1.0);
  int copy = LSC_DEMO_INDUCTION_COPY_LAYER * d->n_heads + LSC_DEMO_INDUCTION_COPY_HEAD;
  g_assert_cmpint (d->ranking[0], ==, copy);
  /* 12 of the 13 answer tokens in every sample, as tests/test-retrieval.c's
   * demo-batch (the answer span found is one token early) */
  g_assert_cmpfloat_with_epsilon (d->scores[copy], 12.0 / 13, 1e-9);
  for (int i = 0; i < d->n_layers * d->n_heads; i++)
    if (i != copy)
      g_assert_cmpfloat (d->scores[i], <, 0.1);
  g_assert_cmpint (d->n_above, ==, 1);
  g_assert_cmpfloat (d->score_threshold, ==, 0.1);
  g_assert_nonnull (d->warning);   /* no chat template: the raw prompt */
}

static void
test_invalid (void)
{
  g_autoptr(LscLoadedModel) m = load_demo ();
  g_autoptr(GError) error = NULL;
  LscRetrievalRunParams p;
  lsc_retrieval_run_params_init (&p, m);
  p.answer = "";
  g_assert_null (lsc_retrieval_detect (m, &p, NULL, NULL, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  lsc_retrieval_run_params_init (&p, m);
  p.n_lengths = 0;
  g_assert_null (lsc_retrieval_detect (m, &p, NULL, NULL, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  lsc_retrieval_run_params_init (&p, m);
  p.haystack_file = "/nonexistent/haystack.txt";
  g_assert_null (lsc_retrieval_detect (m, &p, NULL, NULL, NULL, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_clear_error (&error);
  /* a context shorter than the buffer and the needle leaves no room */
  lsc_retrieval_run_params_init (&p, m);
  p.context_lengths[0] = 50;
  g_assert_null (lsc_retrieval_detect (m, &p, NULL, NULL, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "context length 50"));
}

/* cancels from the progress callback, while the second sample starts */
static void
cancel_at_second (int done, int total, gpointer data)
{
  if (done == 1)
    g_cancellable_cancel (data);
}

static void
test_cancel_sync (void)
{
  g_autoptr(LscLoadedModel) m = load_demo ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GCancellable) c = g_cancellable_new ();
  LscRetrievalRunParams p;
  lsc_retrieval_run_params_init (&p, m);
  p.n_threads = 1;
  g_assert_null (lsc_retrieval_detect (m, &p, cancel_at_second, c, c, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

typedef struct {
  GMainLoop *loop;
  GCancellable *cancellable;
  LscRetrievalDetection *d;
  GError *error;
  gint64 cancel_at, done_at;
  int progress_calls;
} AsyncData;

static void
on_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AsyncData *a = user_data;
  a->d = lsc_retrieval_detect_finish (result, &a->error);
  a->done_at = g_get_monotonic_time ();
  g_main_loop_quit (a->loop);
}

static void
on_progress (int done, int total, gpointer user_data)
{
  AsyncData *a = user_data;
  a->progress_calls++;
}

static gboolean
cancel_now (gpointer user_data)
{
  AsyncData *a = user_data;
  a->cancel_at = g_get_monotonic_time ();
  g_cancellable_cancel (a->cancellable);
  return G_SOURCE_REMOVE;
}

/* on a worker thread: a long grid (16 lengths x 21 depths up to 4000 tokens)
 * cancelled after 200 ms returns G_IO_ERROR_CANCELLED within a second */
static void
test_cancel_async (void)
{
  g_autoptr(LscLoadedModel) m = load_demo ();
  g_autoptr(GCancellable) c = g_cancellable_new ();
  LscRetrievalRunParams p;
  lsc_retrieval_run_params_init (&p, m);
  p.n_lengths = LSC_RETRIEVAL_RUN_MAX_LENGTHS;
  for (int i = 0; i < p.n_lengths; i++)
    p.context_lengths[i] = 4000 - 100 * i;
  p.n_depths = 21;
  AsyncData a = { g_main_loop_new (NULL, FALSE), c, NULL, NULL, 0, 0, 0 };
  lsc_retrieval_detect_async (m, &p, on_progress, &a, c, on_done, &a);
  g_timeout_add (200, cancel_now, &a);
  g_main_loop_run (a.loop);
  g_assert_cmpint (a.cancel_at, >, 0);   /* still running after 200 ms */
  g_test_message ("cancelled after %d progress updates, returned %.1f ms after cancel",
                  a.progress_calls, (a.done_at - a.cancel_at) / 1000.0);
  g_assert_cmpint (a.done_at - a.cancel_at, <, G_USEC_PER_SEC);
  g_assert_cmpint (a.progress_calls, >=, 1);
  g_assert_null (a.d);
  g_assert_error (a.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&a.error);
  g_main_loop_unref (a.loop);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ui/RetrievalRun/defaults", test_defaults);
  g_test_add_func ("/ui/RetrievalRun/demo-induction", test_demo);
  g_test_add_func ("/ui/RetrievalRun/invalid", test_invalid);
  g_test_add_func ("/ui/RetrievalRun/cancel", test_cancel_sync);
  g_test_add_func ("/ui/RetrievalRun/cancel-async", test_cancel_async);
  return g_test_run ();
}
