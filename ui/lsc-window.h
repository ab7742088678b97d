/* SPDX-License-Identifier: MIT
 *
 * lsc-window.h: the main window: the sidebar (model, prompt, generation and
 * capture settings, KV-cache policy, plugins, Run / Cancel with progress)
 * and the view stack.
 * Errors show in an in-window info bar. Runs execute on a worker thread;
 * the window owns a GCancellable that closing it cancels.
 *
 * Actions (win.): open-model, open-demo, open-recent(s), run, cancel,
 * export(s: "png" | "svg" | "pdf"), save-job, export-run (enabled while
 * there is a finished run), show-view(s).
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-attention-view.h"
#include "lsc-experiments-view.h"
#include "lsc-kv-controls.h"
#include "lsc-kv-view.h"
#include "lsc-loaded-model.h"
#include "lsc-plugin-controls.h"
#include "lsc-retrieval-view.h"
#include "lsc-run.h"
#include "lsc-ssm-view.h"

G_BEGIN_DECLS

#define LSC_TYPE_WINDOW (lsc_window_get_type ())
G_DECLARE_FINAL_TYPE (LscWindow, lsc_window, LSC, WINDOW, GtkApplicationWindow)

/* settings may be NULL (no schema installed): preferences are not kept. */
LscWindow *lsc_window_new (GtkApplication *app, GSettings *settings);

/* Loads the model off the main thread; errors go to the info bar. */
void lsc_window_open_model (LscWindow *self, const char *path);
/* Opens saved results (a folder or its results.json; lsc-run-open.h): a
 * run becomes the shown run (Attention and Experiments views), loading its
 * own model first when that is not the open one and it exists here (else
 * the open model is used when it has the results' shape); a retrieval-head
 * detection shows in the Retrieval Heads view. Errors go to the info bar. */
void lsc_window_open_results (LscWindow *self, const char *path);
/* What a file or folder dropped on the window opens: results (a folder
 * holding results.json, or that file) or else a model. */
void lsc_window_open_path (LscWindow *self, const char *path);
LscLoadedModel *lsc_window_get_model (LscWindow *self);
void lsc_window_set_prompt (LscWindow *self, const char *text);
void lsc_window_set_max_tokens (LscWindow *self, int max_tokens);
/* The sidebar's backend (kept in GSettings "backend"). */
void lsc_window_set_backend (LscWindow *self, LscBackend backend);
/* TRUE while a model loads or a run runs ("busy" is notified). */
gboolean lsc_window_get_busy (LscWindow *self);
/* The estimate of the next run's time and memory shown above Run. */
const char *lsc_window_get_estimate (LscWindow *self);
/* The last successful run, or NULL. */
LscRun *lsc_window_get_run (LscWindow *self);
/* The successful run before it ("A" of the Experiments view's comparison,
 * lsc_window_get_run being "B"), or NULL. */
LscRun *lsc_window_get_previous_run (LscWindow *self);
/* The text of the error shown in the window, or NULL. */
const char *lsc_window_get_error (LscWindow *self);
void lsc_window_show_view (LscWindow *self, const char *name);
const char *lsc_window_get_view (LscWindow *self);
LscAttentionView *lsc_window_get_attention_view (LscWindow *self);
/* The Retrieval Heads view; a head clicked there opens in the Attention view
 * when the last run captured attention. */
LscRetrievalView *lsc_window_get_retrieval_view (LscWindow *self);
/* The SSM Channels view: a Mamba run's channels (a finished run of a Mamba
 * model with capture on shows there, and the window switches to it). */
LscSsmView *lsc_window_get_ssm_view (LscWindow *self);
/* The KV Cache view: a run under a KV policy (a finished one shows there,
 * and the window switches to it). */
LscKvView *lsc_window_get_kv_view (LscWindow *self);
/* The sidebar's KV cache group: the next run's policy. Choosing a policy
 * makes attention capture insensitive (a run under a policy captures
 * nothing); a policy the engine refuses shows its reason before Run (the
 * estimate) and in the info bar on Run. A Mamba model has no KV cache: the
 * group is insensitive and its runs keep no policy. */
LscKvControls *lsc_window_get_kv_controls (LscWindow *self);
/* The Experiments view: the A/B comparison of the last two runs. */
LscExperimentsView *lsc_window_get_experiments_view (LscWindow *self);
/* The sidebar's plugins: the next run takes those enabled there. */
LscPluginControls *lsc_window_get_plugin_controls (LscWindow *self);
/* The file name the export dialog suggests for the current view and what
 * it shows ("attention-layer1-head2.png", "retrieval-scores.svg",
 * "ssm-receptive-field-layer2.png", "kv-timeline-layer1-head0.svg",
 * "difference-layer1-head2.pdf"). */
char *lsc_window_dup_export_name (LscWindow *self, const char *format);
/* Exports the current view (format from the extension). */
gboolean lsc_window_export_view (LscWindow *self, const char *path, GError **error);
/* The last finished run as a batch job (lsc_run_save_job), and as batch
 * results in a folder (lsc_run_export); what win.save-job and
 * win.export-run do with the chosen file or folder. G_IO_ERROR_NOT_INITIALIZED
 * without a finished run. */
gboolean lsc_window_save_job (LscWindow *self, const char *path, GError **error);
gboolean lsc_window_export_run (LscWindow *self, const char *dir, GError **error);

G_END_DECLS
