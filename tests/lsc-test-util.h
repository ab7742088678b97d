/* SPDX-License-Identifier: MIT
 *
 * Helpers shared by the GLib tests: where the shared test data lies, and
 * scratch files that are removed when the test ends.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The absolute path of `rel` under the shared data folder ($LSC_SHARED_DIR,
 * by default the `shared/` folder beside the source tree), or NULL after
 * g_test_skip () with a message naming the missing file. */
char *lsc_test_shared_path (const char *rel);

typedef struct _LscModel LscModel;
/* The model at `rel` under the shared data folder, or NULL after
 * g_test_skip () when it is absent; a load error fails the test. */
LscModel *lsc_test_load_shared_model (const char *rel);

/* A fresh scratch directory for this test process, removed at exit. */
const char *lsc_test_tmpdir (void);
/* tmpdir/name, written with `len` bytes of data; returns the path. */
char *lsc_test_write_file (const char *name, const void *data, gsize len);
/* Reads a whole file or fails the test. */
GBytes *lsc_test_read_file (const char *path);

/* Asserts that `error` is set with the domain and code, and that its message
 * contains every NULL-terminated fragment; prints the message on failure. */
void lsc_test_assert_error (const GError *error, GQuark domain, int code, ...) G_GNUC_NULL_TERMINATED;

/* `longscope --batch job --output dir` in this process (no figures), its
 * text on stdout dropped (it would break TAP); returns the exit status. */
int lsc_test_run_batch (const char *job, const char *dir);

typedef struct _LscRun LscRun;
/* Executes run on a fresh main loop until it finishes, cancelling it at
 * once when `cancel` is set; returns lsc_run_execute_finish ()'s result. */
gboolean lsc_test_execute_run (LscRun *run, gboolean cancel, GError **error);

G_END_DECLS
