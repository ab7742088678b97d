/* SPDX-License-Identifier: MIT
 *
 * lsc_test_execute_run (lsc-test-util.h), in a file of its own so that
 * tests which do not use it do not link the application's run code.
 */
#include "config.h"

#include "lsc-run.h"
#include "lsc-test-util.h"

typedef struct {
  GMainLoop *loop;
  gboolean ok;
  GError *error;
} RunWait;

static void
run_done (GObject *source, GAsyncResult *result, gpointer data)
{
  RunWait *w = data;
  w->ok = lsc_run_execute_finish (LSC_RUN (source), result, &w->error);
  g_main_loop_quit (w->loop);
}

gboolean
lsc_test_execute_run (LscRun *run, gboolean cancel, GError **error)
{
  g_autoptr(GCancellable) c = g_cancellable_new ();
  RunWait w = { g_main_loop_new (NULL, FALSE), FALSE, NULL };
  lsc_run_execute_async (run, c, run_done, &w);
  if (cancel)
    g_cancellable_cancel (c);
  g_main_loop_run (w.loop);
  g_main_loop_unref (w.loop);
  if (w.error != NULL)
    g_propagate_error (error, w.error);
  return w.ok;
}
