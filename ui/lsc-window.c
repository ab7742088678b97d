/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>

#include "lsc-demo.h"
#include "lsc-estimate.h"
#include "lsc-plugin-controls.h"
#include "lsc-run-export.h"
#include "lsc-run-open.h"
#include "lsc-window.h"

#define MAX_RECENT 8

struct _LscWindow
{
  GtkApplicationWindow parent_instance;

  /* template children */
  GtkInfoBar *error_bar;
  GtkLabel *error_label;
  GtkLabel *model_label;
  GtkMenuButton *recent_button;
  GtkLabel *summary_label;
  GtkTextView *prompt_view;
  GtkLabel *token_count_label;
  GtkSpinButton *max_tokens_spin;
  GtkSpinButton *temperature_spin;
  GtkSpinButton *seed_spin;
  GtkCheckButton *capture_check;
  GtkSpinButton *threads_spin;
  GtkDropDown *backend_drop;
  LscKvControls *kv_controls;
  LscPluginControls *plugin_controls;
  GtkLabel *plugins_note_label;
  GtkProgressBar *progress_bar;
  GtkLabel *estimate_label;
  GtkLabel *output_label;
  GtkStack *view_stack;
  LscAttentionView *attention_view;
  LscRetrievalView *retrieval_view;
  LscSsmView *ssm_view;
  LscKvView *kv_view;
  LscExperimentsView *experiments_view;

  /* owned */
  GSettings *settings;            /* (nullable) */
  GCancellable *cancellable;      /* the window's: cancelled on close */
  GCancellable *run_cancellable;  /* (nullable) the running run's, child of the above */
  LscLoadedModel *model;          /* (nullable) */
  LscRun *running;                /* (nullable) in flight */
  LscRun *run;                    /* (nullable) last finished */
  LscRun *previous_run;           /* (nullable) the finished run before it */
  GtkFileChooserNative *chooser;  /* (nullable) open, export, save-job or export-run dialog */
  char *export_format;            /* for the export chooser */
  char *pending_results;          /* (nullable) results to open once their model has loaded */

  /* state */
  gboolean loading;
  int n_prompt;                   /* tokens of the prompt, BOS included; -1: cannot tokenise */
  char *error_text;               /* (nullable) shown in the info bar */
};

G_DEFINE_FINAL_TYPE (LscWindow, lsc_window, GTK_TYPE_APPLICATION_WINDOW)

enum { PROP_0, PROP_BUSY, N_PROPS };
static GParamSpec *properties[N_PROPS];

/* ------------------------------------------------------------ helpers */

static void
show_error (LscWindow *self, const char *primary, const GError *error)
{
  g_free (self->error_text);
  self->error_text = error != NULL ? g_strdup_printf ("%s: %s", primary, error->message)
                                   : g_strdup (primary);
  gtk_label_set_text (self->error_label, self->error_text);
  gtk_info_bar_set_revealed (self->error_bar, TRUE);
}

static void
clear_error (LscWindow *self)
{
  g_clear_pointer (&self->error_text, g_free);
  gtk_info_bar_set_revealed (self->error_bar, FALSE);
}

static void
on_error_bar_response (LscWindow *self, int response)
{
  clear_error (self);
}

static void
update_actions (LscWindow *self)
{
  gboolean busy = self->loading || self->running != NULL;
  GAction *a;
  a = g_action_map_lookup_action (G_ACTION_MAP (self), "run");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a), self->model != NULL && !busy);
  a = g_action_map_lookup_action (G_ACTION_MAP (self), "cancel");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a), self->running != NULL);
  /* the visible view, when it has something to export */
  a = g_action_map_lookup_action (G_ACTION_MAP (self), "export");
  const char *view = gtk_stack_get_visible_child_name (self->view_stack);
  LscHeatmap *hm = lsc_attention_view_get_heatmap (self->attention_view);
  gboolean can_export =
      g_strcmp0 (view, "attention") == 0 ? lsc_heatmap_get_source (hm) != NULL
      : g_strcmp0 (view, "retrieval") == 0 ? lsc_retrieval_view_can_export (self->retrieval_view)
      : g_strcmp0 (view, "ssm") == 0 ? lsc_ssm_view_can_export (self->ssm_view)
      : g_strcmp0 (view, "kv") == 0 ? lsc_kv_view_can_export (self->kv_view)
      : g_strcmp0 (view, "experiments") == 0
        && lsc_experiments_view_can_export (self->experiments_view);
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a), can_export);
  /* the last finished run, also while the next one runs */
  a = g_action_map_lookup_action (G_ACTION_MAP (self), "save-job");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a), self->run != NULL);
  a = g_action_map_lookup_action (G_ACTION_MAP (self), "export-run");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a),
                               self->run != NULL && lsc_run_get_source (self->run) == NULL);
  a = g_action_map_lookup_action (G_ACTION_MAP (self), "open-model");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a), !busy);
  a = g_action_map_lookup_action (G_ACTION_MAP (self), "open-demo");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a), !busy);
  a = g_action_map_lookup_action (G_ACTION_MAP (self), "open-recent");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a), !busy);
  a = g_action_map_lookup_action (G_ACTION_MAP (self), "open-results");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a), !busy);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUSY]);
}

static char *
get_prompt (LscWindow *self)
{
  GtkTextBuffer *buf = gtk_text_view_get_buffer (self->prompt_view);
  GtkTextIter a, b;
  gtk_text_buffer_get_bounds (buf, &a, &b);
  return gtk_text_buffer_get_text (buf, &a, &b, FALSE);
}

/* Whether the open model is a Mamba model: no attention, Δ instead. */
static gboolean
model_is_ssm (LscWindow *self)
{
  return self->model != NULL
         && lsc_arch_is_ssm (lsc_model_get_config (lsc_loaded_model_get_model (self->model))->arch);
}

/* The backend drop-down's items, in order; GSettings nicks are the same names. */
static const LscBackend backend_of_item[] = { LSC_BACKEND_AUTO, LSC_BACKEND_CPU, LSC_BACKEND_CUDA };

/* The run the sidebar describes (prompt and plugins left NULL). */
static void
get_run_params (LscWindow *self, LscRunParams *p)
{
  lsc_run_params_init (p);
  p->max_tokens = gtk_spin_button_get_value_as_int (self->max_tokens_spin);
  p->temperature = (float) gtk_spin_button_get_value (self->temperature_spin);
  p->seed = (guint64) gtk_spin_button_get_value (self->seed_spin);
  p->capture = gtk_check_button_get_active (self->capture_check);
  p->n_threads = gtk_spin_button_get_value_as_int (self->threads_spin);
  p->backend = backend_of_item[MIN (gtk_drop_down_get_selected (self->backend_drop), 2u)];
  /* a Mamba model has no KV cache: its runs keep no policy (the sidebar
   * says so and makes the group insensitive) */
  if (!model_is_ssm (self))
    {
      lsc_kv_controls_get_policy (self->kv_controls, &p->kv_policy);
      p->kv_chunk = lsc_kv_controls_get_chunk (self->kv_controls);
      p->kv_compare = lsc_kv_controls_get_compare (self->kv_controls);
    }
}

/* What is wrong with the sidebar's KV policy (the engine's words), or NULL;
 * never for a Mamba model, whose runs leave the policy out. */
static char *
dup_kv_problem (LscWindow *self)
{
  return model_is_ssm (self) ? NULL : lsc_kv_controls_dup_problem (self->kv_controls);
}

/* This machine's GEMM rate and memory bandwidth, measured once (~0.1 s) on a
 * worker thread when the first window opens. */
static double cpu_gflops, cpu_gbps;

static char *
format_duration (double s)
{
  if (s < 1.0)
    return g_strdup (_("under a second"));
  if (s < 90.0)
    return g_strdup_printf (_("about %.0f s"), s);
  if (s < 5400.0)
    return g_strdup_printf (_("about %.0f min"), s / 60.0);
  return g_strdup_printf (_("about %.1f h"), s / 3600.0);
}

/* "Estimate: about 3 s, 1.2 GB": lsc_estimate_run () for the run the
 * sidebar describes, on the CPU rates measured here. */
static void
update_estimate (LscWindow *self)
{
  if (self->model == NULL || self->n_prompt <= 0)
    {
      gtk_label_set_text (self->estimate_label, "");
      return;
    }
  /* a policy the engine refuses cannot run at any rate */
  g_autofree char *kv_problem = dup_kv_problem (self);
  if (kv_problem != NULL)
    {
      g_autofree char *text = g_strdup_printf (_("Cannot run: %s"), kv_problem);
      gtk_label_set_text (self->estimate_label, text);
      return;
    }
  if (cpu_gflops <= 0)
    {
      gtk_label_set_text (self->estimate_label, _("Estimating…"));
      return;
    }
  LscRunParams rp;
  get_run_params (self, &rp);
  LscModel *model = lsc_loaded_model_get_model (self->model);
  const LscModelConfig *config = lsc_model_get_config (model);
  gboolean ssm = lsc_arch_is_ssm (config->arch);
  /* under a KV policy the run captures nothing */
  gboolean kv = rp.kv_policy.kind != LSC_KV_FULL;
  gboolean capturing = rp.capture && !kv;
  LscEstimateParams ep;
  lsc_estimate_params_init (&ep);
  ep.n_prompt = self->n_prompt;
  ep.max_tokens = rp.max_tokens;
  lsc_run_params_get_session (&rp, config, self->n_prompt, &ep.session);
  ep.kv_chunk = rp.kv_chunk;
  ep.kv_compare = kv && rp.kv_compare;
  ep.stats = capturing && !ssm;
  g_autoptr(GError) error = NULL;
  if (!ssm)
    {
      /* the plugins' instances, as the run will make them: values that do
       * not fit the model show here, before Run; a logit-scale hook stores
       * a scale per captured row. A Mamba model's run leaves them out. */
      g_autoptr(LscPluginStack) plugins = lsc_plugin_controls_dup_stack (self->plugin_controls);
      if (!lsc_plugin_stack_instantiate (plugins, config, &error))
        {
          g_autofree char *text = g_strdup_printf (_("Cannot run: %s"), error->message);
          gtk_label_set_text (self->estimate_label, text);
          return;
        }
      lsc_plugin_stack_get_hooks (plugins, &ep.session.hooks);
    }
  ep.prefill_gflops = ep.attention_gflops = cpu_gflops;
  ep.decode_gbps = cpu_gbps;
  /* on a GPU only the memory is estimated: its rates are not measured here.
   * A Mamba run is estimated on the backend it will take, which also names
   * a GPU that is asked for and absent */
  gboolean gpu = !kv && (rp.backend == LSC_BACKEND_CUDA
                         || (rp.backend == LSC_BACKEND_AUTO
                             && lsc_backend_cuda_unavailable () == NULL));
  if (!ssm)
    ep.session.backend = LSC_BACKEND_CPU;
  LscEstimate e;
  if (!lsc_estimate_run (model, &ep, &e, &error))
    {
      g_autofree char *text = g_strdup_printf (_("Cannot run: %s"), error->message);
      gtk_label_set_text (self->estimate_label, text);
      return;
    }
  if (ssm)
    gpu = e.backend == LSC_BACKEND_CUDA;
  g_autofree char *mem = g_format_size (e.total_bytes);
  g_autofree char *time = gpu ? g_strdup (_("time on the GPU not estimated"))
                              : format_duration (e.total_s);
  g_autofree char *capture = g_format_size (e.capture_bytes + e.pyramid_bytes);
  g_autofree char *text = ssm && capturing
      /* Translators: before Run on a Mamba model: the run's estimated time,
       * memory, and what of it recording the time steps Δ takes */
      ? g_strdup_printf (_("Estimate: %s, %s of memory (%s to record Δ)"), time, mem, capture)
      : capturing
      /* Translators: before Run: the run's estimated time, memory, and what of
       * it attention capture takes */
      ? g_strdup_printf (_("Estimate: %s, %s of memory (%s for attention capture)"), time, mem,
                         capture)
      /* Translators: before Run: the run's estimated time and memory */
      : g_strdup_printf (_("Estimate: %s, %s of memory"), time, mem);
  gtk_label_set_text (self->estimate_label, text);
}

static void
measure_in_thread (GTask *task, gpointer object, gpointer data, GCancellable *cancellable)
{
  double gflops, gbps;
  lsc_estimate_measure_cpu_rates (0, &gflops, &gbps);
  cpu_gbps = gbps;
  cpu_gflops = gflops;
  g_task_return_boolean (task, TRUE);
}

static void
on_rates_measured (GObject *object, GAsyncResult *result, gpointer data)
{
  if (g_task_propagate_boolean (G_TASK (result), NULL))   /* FALSE: the window closed */
    update_estimate (LSC_WINDOW (object));
}

static void
update_token_count (LscWindow *self)
{
  self->n_prompt = -1;
  if (self->model == NULL)
    {
      gtk_label_set_text (self->token_count_label, "");
      update_estimate (self);
      return;
    }
  g_autofree char *text = get_prompt (self);
  LscTokenizer *tok = lsc_loaded_model_get_tokenizer (self->model);
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, text, -1, lsc_tokenizer_get_bos (tok) >= 0, &error);
  if (ids == NULL)
    {
      gtk_label_set_text (self->token_count_label, _("The prompt cannot be tokenised"));
      update_estimate (self);
      return;
    }
  g_autofree char *label = g_strdup_printf (ngettext ("%u token", "%u tokens", ids->len), ids->len);
  gtk_label_set_text (self->token_count_label, label);
  self->n_prompt = (int) ids->len;
  update_estimate (self);
}

static void
update_recent_menu (LscWindow *self)
{
  g_autoptr(GMenu) menu = g_menu_new ();
  g_auto(GStrv) recent = self->settings != NULL ? g_settings_get_strv (self->settings, "recent-models") : NULL;
  for (guint i = 0; recent != NULL && recent[i] != NULL; i++)
    {
      g_autoptr(GMenuItem) item = g_menu_item_new (NULL, NULL);
      g_autofree char *base = g_path_get_basename (recent[i]);
      g_menu_item_set_label (item, lsc_demo_match_path (recent[i]) ? recent[i] : base);
      g_menu_item_set_action_and_target_value (item, "win.open-recent", g_variant_new_string (recent[i]));
      g_menu_append_item (menu, item);
    }
  gtk_menu_button_set_menu_model (self->recent_button, G_MENU_MODEL (menu));
  gtk_widget_set_sensitive (GTK_WIDGET (self->recent_button), recent != NULL && recent[0] != NULL);
}

static void
remember_model (LscWindow *self, const char *path)
{
  if (self->settings == NULL)
    return;
  g_auto(GStrv) old = g_settings_get_strv (self->settings, "recent-models");
  g_autoptr(GStrvBuilder) b = g_strv_builder_new ();
  g_strv_builder_add (b, path);
  guint n = 1;
  for (guint i = 0; old[i] != NULL && n < MAX_RECENT; i++)
    if (g_strcmp0 (old[i], path) != 0)
      {
        g_strv_builder_add (b, old[i]);
        n++;
      }
  g_auto(GStrv) list = g_strv_builder_end (b);
  g_settings_set_strv (self->settings, "recent-models", (const char *const *) list);
}

static char *
model_summary (LscLoadedModel *m)
{
  const LscModelConfig *c = lsc_model_get_config (lsc_loaded_model_get_model (m));
  LscModelFormat format = lsc_model_get_format (lsc_loaded_model_get_model (m));
  if (lsc_arch_is_ssm (c->arch))
    {
      /* a "channel" is what carries its own Δ: a head of Mamba-2, an inner
       * channel of Mamba-1 (lsc-ssm.h) */
      int n_channels = lsc_ssm_n_channels (c);
      /* Translators: the sidebar's summary of a Mamba model */
      return g_strdup_printf (_("%s (%s)\n%d layers, %d channels, state size %d\n"
                                "hidden size %d, vocabulary %d"),
                              lsc_arch_name (c->arch), lsc_model_format_name (format),
                              c->n_layers, n_channels, c->ssm_d_state, c->dim, c->vocab_size);
    }
  return g_strdup_printf (_("%s (%s)\n%d layers, %d heads (%d KV heads) of %d\n"
                            "hidden size %d, vocabulary %d\ntrained context %d tokens"),
                          lsc_arch_name (c->arch), lsc_model_format_name (format),
                          c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                          c->dim, c->vocab_size, c->max_position);
}

/* A run under a KV policy captures no attention (the session refuses
 * capture while a policy manages its cache): the check says so. */
static void
update_capture_check (LscWindow *self)
{
  LscKvPolicy policy;
  lsc_kv_controls_get_policy (self->kv_controls, &policy);
  gboolean kv = policy.kind != LSC_KV_FULL && !model_is_ssm (self);
  gtk_widget_set_sensitive (GTK_WIDGET (self->capture_check), !kv);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->capture_check),
                               kv ? _("A run under a KV policy captures no attention: choose "
                                      "“Full cache” to capture it")
                                  : NULL);
}

static void
on_kv_changed (LscWindow *self)
{
  update_capture_check (self);
  update_estimate (self);
}

/* The sidebar for the open model: a Mamba model records Δ where a
 * transformer captures attention, and takes neither plugins nor a KV
 * policy. */
static void
update_model_controls (LscWindow *self)
{
  gboolean ssm = model_is_ssm (self);
  gtk_check_button_set_label (self->capture_check,
                              ssm ? _("Record _Δ (all layers and channels)")
                                  : _("Capture _attention (all layers and heads)"));
  gtk_widget_set_sensitive (GTK_WIDGET (self->plugin_controls), !ssm);
  gtk_widget_set_visible (GTK_WIDGET (self->plugins_note_label), ssm);
  gtk_widget_set_sensitive (GTK_WIDGET (self->kv_controls), !ssm);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->kv_controls),
                               ssm ? _("A Mamba model keeps a recurrent state, not a KV cache: "
                                       "its runs keep no policy")
                                   : NULL);
  update_capture_check (self);
}

/* ------------------------------------------------------- model loading */

static void
on_model_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(LscWindow) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(LscLoadedModel) model = lsc_loaded_model_load_finish (result, &error);
  self->loading = FALSE;
  if (model == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_error (self, _("Could not open the model"), error);
      g_clear_pointer (&self->pending_results, g_free);
      gtk_label_set_text (self->model_label,
                          self->model ? lsc_loaded_model_get_path (self->model) : _("No model"));
      update_actions (self);
      return;
    }
  g_set_object (&self->model, model);
  lsc_retrieval_view_set_model (self->retrieval_view, model);
  const char *path = lsc_loaded_model_get_path (model);
  gtk_label_set_text (self->model_label, path);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->model_label), path);
  g_autofree char *summary = model_summary (model);
  gtk_label_set_text (self->summary_label, summary);
  update_model_controls (self);
  remember_model (self, path);
  update_token_count (self);
  update_actions (self);
  g_autofree char *results = g_steal_pointer (&self->pending_results);
  if (results != NULL)
    lsc_window_open_results (self, results);
}

void
lsc_window_open_model (LscWindow *self, const char *path)
{
  g_return_if_fail (LSC_IS_WINDOW (self));
  g_return_if_fail (path != NULL);
  if (self->loading || self->running != NULL)
    return;
  clear_error (self);
  self->loading = TRUE;
  g_autofree char *label = g_strdup_printf (_("Opening %s…"), path);
  gtk_label_set_text (self->model_label, label);
  update_actions (self);
  lsc_loaded_model_load_async (path, self->cancellable, on_model_loaded, g_object_ref (self));
}

static void
on_open_response (GtkNativeDialog *dialog, int response, LscWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = file ? g_file_get_path (file) : NULL;
      if (path != NULL)
        lsc_window_open_model (self, path);
    }
  g_clear_object (&self->chooser);
}

static void
open_model_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  LscWindow *self = data;
  g_clear_object (&self->chooser);
  self->chooser = gtk_file_chooser_native_new (_("Open Model"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_OPEN, _("_Open"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_autoptr(GtkFileFilter) models = gtk_file_filter_new ();
  gtk_file_filter_set_name (models, _("Models (GGUF, llama2.c, safetensors)"));
  gtk_file_filter_add_suffix (models, "gguf");
  gtk_file_filter_add_suffix (models, "bin");
  gtk_file_filter_add_suffix (models, "safetensors");
  gtk_file_filter_add_suffix (models, "json");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), models);
  g_signal_connect (self->chooser, "response", G_CALLBACK (on_open_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
open_demo_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  lsc_window_open_model (data, LSC_DEMO_INDUCTION);
}

static void
open_recent_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  lsc_window_open_model (data, g_variant_get_string (param, NULL));
}

/* ----------------------------------------------------------------- runs */

static const char *
phase_text (const char *phase)
{
  if (g_strcmp0 (phase, "tokenize") == 0)
    return _("Tokenising the prompt…");
  if (g_strcmp0 (phase, "prefill") == 0)
    return _("Running the model…");
  if (g_strcmp0 (phase, "analyze") == 0)
    return _("Computing per-head statistics…");
  if (g_strcmp0 (phase, "done") == 0)
    return _("Done");
  return "";
}

static void
on_run_progress (LscRun *run, GParamSpec *pspec, LscWindow *self)
{
  g_autofree char *phase = lsc_run_dup_phase (run);
  gtk_progress_bar_set_fraction (self->progress_bar, lsc_run_get_fraction (run));
  gtk_progress_bar_set_text (self->progress_bar, phase_text (phase));
}

/* A finished run, made here or opened from saved results, becomes the one
 * the views show; the one before becomes A of the Experiments view. */
static void
show_run (LscWindow *self, LscRun *run)
{
  g_set_object (&self->previous_run, self->run);
  g_set_object (&self->run, run);
  lsc_experiments_view_set_runs (self->experiments_view, self->previous_run, run);
  gtk_label_set_text (self->output_label, lsc_run_get_output (run));
  gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
  lsc_attention_view_set_run (self->attention_view, run);
  lsc_ssm_view_set_run (self->ssm_view, run);
  lsc_kv_view_set_run (self->kv_view, run);
  /* a Mamba run's channels show in the SSM view (the Attention view has
   * nothing for it); a run under a KV policy (which captures nothing), in
   * the KV Cache view; a transformer's attention, in the Attention view */
  const char *view = gtk_stack_get_visible_child_name (self->view_stack);
  LscModel *model = lsc_loaded_model_get_model (lsc_run_get_model (run));
  if (lsc_arch_is_ssm (lsc_model_get_config (model)->arch))
    gtk_stack_set_visible_child_name (self->view_stack, "ssm");
  else if (lsc_run_get_kv (run) != NULL)
    gtk_stack_set_visible_child_name (self->view_stack, "kv");
  else if ((g_strcmp0 (view, "ssm") == 0 || g_strcmp0 (view, "kv") == 0)
           && lsc_run_get_attention (run) != NULL)
    gtk_stack_set_visible_child_name (self->view_stack, "attention");
  update_actions (self);
}

static void
on_run_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(LscWindow) self = user_data;
  LscRun *run = LSC_RUN (source);
  g_autoptr(GError) error = NULL;
  gboolean ok = lsc_run_execute_finish (run, result, &error);
  g_signal_handlers_disconnect_by_data (run, self);
  g_clear_object (&self->running);
  g_clear_object (&self->run_cancellable);
  if (!ok)
    {
      gtk_progress_bar_set_fraction (self->progress_bar, 0);
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        gtk_progress_bar_set_text (self->progress_bar, _("Cancelled"));
      else
        {
          gtk_progress_bar_set_text (self->progress_bar, _("Failed"));
          show_error (self, _("The run failed"), error);
        }
      update_actions (self);
      return;
    }
  show_run (self, run);
  gtk_progress_bar_set_text (self->progress_bar, _("Done"));
}

static void
run_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  LscWindow *self = data;
  if (self->model == NULL || self->running != NULL || self->loading)
    return;
  clear_error (self);
  g_autofree char *kv_problem = dup_kv_problem (self);
  if (kv_problem != NULL)
    {
      g_autoptr(GError) error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                                                     kv_problem);
      show_error (self, _("The KV policy cannot run"), error);
      return;
    }
  g_autofree char *prompt = get_prompt (self);
  /* plugins hook attention: a Mamba model's run leaves them out (the
   * sidebar says so and makes them insensitive) */
  g_autoptr(LscPluginStack) plugins = model_is_ssm (self)
      ? NULL : lsc_plugin_controls_dup_stack (self->plugin_controls);
  LscRunParams p;
  get_run_params (self, &p);
  p.prompt = prompt;
  p.plugins = plugins;

  self->running = lsc_run_new (self->model, &p);
  self->run_cancellable = g_cancellable_new ();
  /* closing the window cancels the run too */
  g_cancellable_connect (self->cancellable, G_CALLBACK (g_cancellable_cancel),
                         g_object_ref (self->run_cancellable), g_object_unref);
  g_signal_connect (self->running, "notify::fraction", G_CALLBACK (on_run_progress), self);
  g_signal_connect (self->running, "notify::phase", G_CALLBACK (on_run_progress), self);
  gtk_progress_bar_set_fraction (self->progress_bar, 0);
  gtk_progress_bar_set_text (self->progress_bar, _("Starting…"));
  lsc_run_execute_async (self->running, self->run_cancellable, on_run_done, g_object_ref (self));
  update_actions (self);
}

static void
cancel_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  LscWindow *self = data;
  if (self->run_cancellable != NULL)
    g_cancellable_cancel (self->run_cancellable);
  gtk_progress_bar_set_text (self->progress_bar, _("Cancelling…"));
}

/* ------------------------------------------------------- saved results */

/* Whether the results' model (as their provenance names it) is `model`. */
static gboolean
is_model (LscLoadedModel *model, const char *path)
{
  const char *have = lsc_loaded_model_get_path (model);
  if (lsc_demo_match_path (path) != NULL || lsc_demo_match_path (have) != NULL)
    return g_strcmp0 (have, path) == 0;
  g_autofree char *a = g_canonicalize_filename (have, NULL);
  g_autofree char *b = g_canonicalize_filename (path, NULL);
  return g_strcmp0 (a, b) == 0;
}

static void
open_run_results (LscWindow *self, LscLoadedModel *model, const LscResultsInfo *info,
                  gboolean other_model)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscRun) run = lsc_run_open (model, info->results_path, &error);
  if (run == NULL)
    {
      if (other_model)
        g_prefix_error (&error, _("The results’ model %s is not on this computer, and the open "
                                 "model is not of their shape: "), info->model_path);
      show_error (self, _("Could not open the results"), error);
      return;
    }
  show_run (self, run);
  g_autofree char *text = other_model
      /* Translators: %s is a folder */
      ? g_strdup_printf (_("Opened %s (with the open model: theirs is not on this computer)"),
                         info->dir)
      : g_strdup_printf (_("Opened %s"), info->dir);
  gtk_progress_bar_set_text (self->progress_bar, text);
  /* show_run () picked the SSM view for a Mamba model's results, and the KV
   * Cache view for a run under a KV policy */
  if (!lsc_arch_is_ssm (lsc_model_get_config (lsc_loaded_model_get_model (model))->arch)
      && lsc_run_get_kv (run) == NULL)
    gtk_stack_set_visible_child_name (self->view_stack, "attention");
}

void
lsc_window_open_results (LscWindow *self, const char *path)
{
  g_return_if_fail (LSC_IS_WINDOW (self));
  g_return_if_fail (path != NULL);
  if (self->loading || self->running != NULL)
    return;
  clear_error (self);
  g_autoptr(GError) error = NULL;
  LscResultsInfo info;
  if (!lsc_results_info_read (path, &info, &error))
    {
      show_error (self, _("Could not open the results"), error);
      return;
    }
  if (info.is_retrieval && !info.is_run)
    {
      LscRetrievalDetection *d = lsc_retrieval_detection_load (info.results_path, &error);
      if (d == NULL)
        show_error (self, _("Could not open the results"), error);
      else
        {
          lsc_retrieval_view_show_detection (self->retrieval_view, d, info.results_path);
          gtk_stack_set_visible_child_name (self->view_stack, "retrieval");
        }
    }
  else if (self->model != NULL && is_model (self->model, info.model_path))
    open_run_results (self, self->model, &info, FALSE);
  else if (lsc_demo_match_path (info.model_path) != NULL
           || g_file_test (info.model_path, G_FILE_TEST_EXISTS))
    {
      /* their own model first, then the results (on_model_loaded) */
      self->pending_results = g_strdup (info.results_path);
      lsc_window_open_model (self, info.model_path);
    }
  else if (self->model != NULL)
    open_run_results (self, self->model, &info, TRUE);
  else
    {
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("%s: their model %s is not on this computer: open a model of the same "
                     "shape first"), info.results_path, info.model_path);
      show_error (self, _("Could not open the results"), error);
    }
  lsc_results_info_clear (&info);
}

static void
on_open_results_response (GtkNativeDialog *dialog, int response, LscWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = file ? g_file_get_path (file) : NULL;
      if (path != NULL)
        lsc_window_open_results (self, path);
    }
  g_clear_object (&self->chooser);
}

static void
open_results_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  LscWindow *self = data;
  g_clear_object (&self->chooser);
  self->chooser = gtk_file_chooser_native_new (_("Open Results"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER, _("_Open"),
                                               _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_signal_connect (self->chooser, "response", G_CALLBACK (on_open_results_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

void
lsc_window_open_path (LscWindow *self, const char *path)
{
  g_return_if_fail (LSC_IS_WINDOW (self));
  g_return_if_fail (path != NULL);
  g_autofree char *results = g_build_filename (path, "results.json", NULL);
  if (g_str_has_suffix (path, "results.json") || g_file_test (results, G_FILE_TEST_EXISTS))
    lsc_window_open_results (self, path);
  else
    lsc_window_open_model (self, path);
}

static gboolean
on_drop (GtkDropTarget *target, const GValue *value, double x, double y, LscWindow *self)
{
  GFile *file = g_value_get_object (value);
  g_autofree char *path = file != NULL ? g_file_get_path (file) : NULL;
  if (path == NULL || self->loading || self->running != NULL)
    return FALSE;
  lsc_window_open_path (self, path);
  return TRUE;
}

/* --------------------------------------------------------------- export */

gboolean
lsc_window_export_view (LscWindow *self, const char *path, GError **error)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), FALSE);
  const char *view = gtk_stack_get_visible_child_name (self->view_stack);
  if (g_strcmp0 (view, "attention") == 0)
    return lsc_heatmap_export (lsc_attention_view_get_heatmap (self->attention_view), path, error);
  if (g_strcmp0 (view, "retrieval") == 0)
    return lsc_retrieval_view_export (self->retrieval_view, path, error);
  if (g_strcmp0 (view, "ssm") == 0)
    return lsc_ssm_view_export (self->ssm_view, path, error);
  if (g_strcmp0 (view, "kv") == 0)
    return lsc_kv_view_export (self->kv_view, path, error);
  if (g_strcmp0 (view, "experiments") == 0)
    return lsc_experiments_view_export (self->experiments_view, path, error);
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       _("This view has nothing to export yet"));
  return FALSE;
}

static void
on_export_response (GtkNativeDialog *dialog, int response, LscWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = file ? g_file_get_path (file) : NULL;
      g_autoptr(GError) error = NULL;
      if (path != NULL && !g_str_has_suffix (path, self->export_format))
        {
          char *with_ext = g_strconcat (path, ".", self->export_format, NULL);
          g_free (path);
          path = with_ext;
        }
      if (path != NULL && !lsc_window_export_view (self, path, &error))
        show_error (self, _("Could not export the view"), error);
    }
  g_clear_object (&self->chooser);
}

char *
lsc_window_dup_export_name (LscWindow *self, const char *format)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  const char *view = lsc_window_get_view (self);
  if (g_strcmp0 (view, "retrieval") == 0)
    return g_strdup_printf ("retrieval-scores.%s", format);
  if (g_strcmp0 (view, "ssm") == 0)
    return lsc_ssm_view_dup_export_name (self->ssm_view, format);
  if (g_strcmp0 (view, "kv") == 0)
    return lsc_kv_view_dup_export_name (self->kv_view, format);
  if (g_strcmp0 (view, "experiments") == 0)
    {
      const LscRunCompare *c = lsc_experiments_view_get_compare (self->experiments_view);
      return c == NULL ? g_strdup_printf ("difference.%s", format)
                       : g_strdup_printf ("difference-layer%d-head%d.%s", c->layer, c->head, format);
    }
  LscAttentionSource *src = lsc_heatmap_get_source (lsc_attention_view_get_heatmap (self->attention_view));
  return src == NULL ? g_strdup_printf ("attention.%s", format)
                     : g_strdup_printf ("attention-layer%d-head%d.%s",
                                        lsc_attention_source_get_layer (src),
                                        lsc_attention_source_get_head (src), format);
}

static void
export_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  LscWindow *self = data;
  const char *format = g_variant_get_string (param, NULL);
  g_free (self->export_format);
  self->export_format = g_strdup (format);
  g_clear_object (&self->chooser);
  self->chooser = gtk_file_chooser_native_new (_("Export View"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_SAVE, _("_Export"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_autofree char *name = lsc_window_dup_export_name (self, format);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (self->chooser), name);
  g_signal_connect (self->chooser, "response", G_CALLBACK (on_export_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

/* ------------------------------------------------ the run as job and data */

static gboolean
check_run (LscWindow *self, GError **error)
{
  if (self->run != NULL)
    return TRUE;
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED,
                       _("There is no finished run yet"));
  return FALSE;
}

gboolean
lsc_window_save_job (LscWindow *self, const char *path, GError **error)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  return check_run (self, error) && lsc_run_save_job (self->run, path, error);
}

gboolean
lsc_window_export_run (LscWindow *self, const char *dir, GError **error)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), FALSE);
  g_return_val_if_fail (dir != NULL, FALSE);
  return check_run (self, error) && lsc_run_export (self->run, dir, error);
}

static void
on_save_job_response (GtkNativeDialog *dialog, int response, LscWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = file ? g_file_get_path (file) : NULL;
      g_autoptr(GError) error = NULL;
      if (path != NULL && !g_str_has_suffix (path, ".json"))
        {
          char *with_ext = g_strconcat (path, ".json", NULL);
          g_free (path);
          path = with_ext;
        }
      if (path != NULL && !lsc_window_save_job (self, path, &error))
        show_error (self, _("Could not save the job"), error);
    }
  g_clear_object (&self->chooser);
}

static void
save_job_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  LscWindow *self = data;
  if (self->run == NULL)
    return;
  g_clear_object (&self->chooser);
  self->chooser = gtk_file_chooser_native_new (_("Save Job"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_SAVE, _("_Save"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_autoptr(GtkFileFilter) jobs = gtk_file_filter_new ();
  gtk_file_filter_set_name (jobs, _("Batch jobs (JSON)"));
  gtk_file_filter_add_suffix (jobs, "json");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), jobs);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (self->chooser), "longscope-job.json");
  g_signal_connect (self->chooser, "response", G_CALLBACK (on_save_job_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
on_export_run_response (GtkNativeDialog *dialog, int response, LscWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *dir = file ? g_file_get_path (file) : NULL;
      g_autoptr(GError) error = NULL;
      if (dir != NULL && !lsc_window_export_run (self, dir, &error))
        show_error (self, _("Could not export the run"), error);
    }
  g_clear_object (&self->chooser);
}

/* results.json and tensors.safetensors go into the chosen folder */
static void
export_run_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  LscWindow *self = data;
  if (self->run == NULL)
    return;
  g_clear_object (&self->chooser);
  self->chooser = gtk_file_chooser_native_new (_("Export Run to a Folder"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER, _("_Export"),
                                               _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_signal_connect (self->chooser, "response", G_CALLBACK (on_export_run_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
show_view_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  lsc_window_show_view (data, g_variant_get_string (param, NULL));
}

/* A head clicked in the Retrieval Heads view: opened in the Attention view
 * when the last run captured attention; otherwise (FALSE) that view reports
 * the head itself. */
static gboolean
on_retrieval_head_activated (LscWindow *self, int layer, int head, gpointer view)
{
  if (self->run == NULL || lsc_run_get_attention (self->run) == NULL)
    return FALSE;
  lsc_window_show_view (self, "attention");
  lsc_attention_view_show_head (self->attention_view, layer, head);
  return TRUE;
}

/* ------------------------------------------------------------- settings */

static void
on_threads_changed (LscWindow *self)
{
  if (self->settings != NULL)
    g_settings_set_int (self->settings, "threads", gtk_spin_button_get_value_as_int (self->threads_spin));
}

static void
on_backend_selected (LscWindow *self)
{
  guint i = gtk_drop_down_get_selected (self->backend_drop);
  if (self->settings != NULL && i < G_N_ELEMENTS (backend_of_item))
    g_settings_set_string (self->settings, "backend", lsc_backend_name (backend_of_item[i]));
  update_estimate (self);
}

static void
on_settings_changed (GSettings *settings, const char *key, LscWindow *self)
{
  if (g_str_equal (key, "recent-models"))
    update_recent_menu (self);
}

/* ---------------------------------------------------------------- class */

static const GActionEntry win_actions[] = {
  { "open-model", open_model_action },
  { "open-demo", open_demo_action },
  { "open-recent", open_recent_action, "s" },
  { "open-results", open_results_action },
  { "run", run_action },
  { "cancel", cancel_action },
  { "export", export_action, "s" },
  { "save-job", save_job_action },
  { "export-run", export_run_action },
  { "show-view", show_view_action, "s" },
};

static gboolean
lsc_window_close_request (GtkWindow *window)
{
  LscWindow *self = LSC_WINDOW (window);
  g_cancellable_cancel (self->cancellable);
  return GTK_WINDOW_CLASS (lsc_window_parent_class)->close_request (window);
}

static void
lsc_window_dispose (GObject *object)
{
  LscWindow *self = LSC_WINDOW (object);
  g_cancellable_cancel (self->cancellable);
  if (self->settings != NULL)
    g_signal_handlers_disconnect_by_data (self->settings, self);
  if (self->running != NULL)
    g_signal_handlers_disconnect_by_data (self->running, self);
  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  gtk_widget_dispose_template (GTK_WIDGET (self), LSC_TYPE_WINDOW);
  g_clear_object (&self->settings);
  g_clear_object (&self->running);
  g_clear_object (&self->run);
  g_clear_object (&self->previous_run);
  g_clear_object (&self->model);
  g_clear_object (&self->run_cancellable);
  G_OBJECT_CLASS (lsc_window_parent_class)->dispose (object);
}

static void
lsc_window_finalize (GObject *object)
{
  LscWindow *self = LSC_WINDOW (object);
  g_clear_object (&self->cancellable);
  g_free (self->export_format);
  g_free (self->pending_results);
  g_free (self->error_text);
  G_OBJECT_CLASS (lsc_window_parent_class)->finalize (object);
}

static void
lsc_window_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  switch (prop_id)
    {
    case PROP_BUSY:
      g_value_set_boolean (value, lsc_window_get_busy (LSC_WINDOW (object)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
lsc_window_class_init (LscWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->dispose = lsc_window_dispose;
  object_class->finalize = lsc_window_finalize;
  object_class->get_property = lsc_window_get_property;
  window_class->close_request = lsc_window_close_request;

  properties[PROP_BUSY] = g_param_spec_boolean ("busy", NULL, NULL, FALSE,
                                                G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  g_type_ensure (LSC_TYPE_ATTENTION_VIEW);
  g_type_ensure (LSC_TYPE_RETRIEVAL_VIEW);
  g_type_ensure (LSC_TYPE_SSM_VIEW);
  g_type_ensure (LSC_TYPE_KV_VIEW);
  g_type_ensure (LSC_TYPE_KV_CONTROLS);
  g_type_ensure (LSC_TYPE_EXPERIMENTS_VIEW);
  g_type_ensure (LSC_TYPE_PLUGIN_CONTROLS);
  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/longscope/Longscope/lsc-window.ui");
  gtk_widget_class_bind_template_child (widget_class, LscWindow, error_bar);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, error_label);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, model_label);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, recent_button);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, summary_label);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, prompt_view);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, token_count_label);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, max_tokens_spin);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, temperature_spin);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, seed_spin);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, capture_check);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, threads_spin);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, backend_drop);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, kv_controls);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, plugin_controls);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, plugins_note_label);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, estimate_label);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, output_label);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, view_stack);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, attention_view);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, retrieval_view);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, ssm_view);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, kv_view);
  gtk_widget_class_bind_template_child (widget_class, LscWindow, experiments_view);
  gtk_widget_class_bind_template_callback (widget_class, on_error_bar_response);
  gtk_widget_class_bind_template_callback (widget_class, on_threads_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_backend_selected);
  gtk_widget_class_bind_template_callback (widget_class, on_kv_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_retrieval_head_activated);
}

/* A prompt the demo model continues: a random-looking sequence, repeated. */
#define DEFAULT_PROMPT "The quick brown fox jumps over the lazy dog. The quick brown fox"

static void
lsc_window_init (LscWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->cancellable = g_cancellable_new ();
  g_action_map_add_action_entries (G_ACTION_MAP (self), win_actions, G_N_ELEMENTS (win_actions), self);
  GtkTextBuffer *buf = gtk_text_view_get_buffer (self->prompt_view);
  gtk_text_buffer_set_text (buf, DEFAULT_PROMPT, -1);
  g_signal_connect_swapped (buf, "changed", G_CALLBACK (update_token_count), self);
  g_signal_connect_swapped (self->max_tokens_spin, "value-changed", G_CALLBACK (update_estimate), self);
  g_signal_connect_swapped (self->threads_spin, "value-changed", G_CALLBACK (update_estimate), self);
  g_signal_connect_swapped (self->capture_check, "toggled", G_CALLBACK (update_estimate), self);
  g_signal_connect_swapped (self->plugin_controls, "changed", G_CALLBACK (update_estimate), self);
  /* File > Export follows the visible view and what it shows (the attention
   * map arrives from a worker: its geometry changes then) */
  g_signal_connect_object (self->view_stack, "notify::visible-child-name",
                           G_CALLBACK (update_actions), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->retrieval_view, "notify::can-export",
                           G_CALLBACK (update_actions), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->ssm_view, "notify::can-export",
                           G_CALLBACK (update_actions), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->kv_view, "notify::can-export",
                           G_CALLBACK (update_actions), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->experiments_view, "notify::can-export",
                           G_CALLBACK (update_actions), self, G_CONNECT_SWAPPED);
  LscHeatmap *heatmap = lsc_attention_view_get_heatmap (self->attention_view);
  g_signal_connect_object (lsc_heatmap_get_model (heatmap), "changed",
                           G_CALLBACK (update_actions), self, G_CONNECT_SWAPPED);
  GtkDropTarget *drop = gtk_drop_target_new (G_TYPE_FILE, GDK_ACTION_COPY);
  g_signal_connect (drop, "drop", G_CALLBACK (on_drop), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));
  update_actions (self);

  g_autoptr(GTask) task = g_task_new (self, self->cancellable, on_rates_measured, NULL);
  g_task_run_in_thread (task, measure_in_thread);
}

LscWindow *
lsc_window_new (GtkApplication *app, GSettings *settings)
{
  LscWindow *self = g_object_new (LSC_TYPE_WINDOW, "application", app, NULL);
  if (settings != NULL)
    {
      self->settings = g_object_ref (settings);
      gtk_spin_button_set_value (self->threads_spin, g_settings_get_int (settings, "threads"));
      g_autofree char *backend = g_settings_get_string (settings, "backend");
      LscBackend b = LSC_BACKEND_AUTO;
      lsc_backend_from_string (backend, &b);
      for (guint i = 0; i < G_N_ELEMENTS (backend_of_item); i++)
        if (backend_of_item[i] == b)
          gtk_drop_down_set_selected (self->backend_drop, i);
      g_signal_connect (settings, "changed::recent-models", G_CALLBACK (on_settings_changed), self);
    }
  lsc_attention_view_set_settings (self->attention_view, settings);
  update_recent_menu (self);
  return self;
}

const char *
lsc_window_get_estimate (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return gtk_label_get_text (self->estimate_label);
}

LscLoadedModel *
lsc_window_get_model (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->model;
}

void
lsc_window_set_prompt (LscWindow *self, const char *text)
{
  g_return_if_fail (LSC_IS_WINDOW (self));
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->prompt_view), text, -1);
}

void
lsc_window_set_max_tokens (LscWindow *self, int max_tokens)
{
  g_return_if_fail (LSC_IS_WINDOW (self));
  gtk_spin_button_set_value (self->max_tokens_spin, max_tokens);
}

void
lsc_window_set_backend (LscWindow *self, LscBackend backend)
{
  g_return_if_fail (LSC_IS_WINDOW (self));
  for (guint i = 0; i < G_N_ELEMENTS (backend_of_item); i++)
    if (backend_of_item[i] == backend)
      gtk_drop_down_set_selected (self->backend_drop, i);
}

gboolean
lsc_window_get_busy (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), FALSE);
  return self->loading || self->running != NULL;
}

LscRun *
lsc_window_get_run (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->run;
}

const char *
lsc_window_get_error (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->error_text;
}

void
lsc_window_show_view (LscWindow *self, const char *name)
{
  g_return_if_fail (LSC_IS_WINDOW (self));
  if (gtk_stack_get_child_by_name (self->view_stack, name) != NULL)
    gtk_stack_set_visible_child_name (self->view_stack, name);
}

const char *
lsc_window_get_view (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return gtk_stack_get_visible_child_name (self->view_stack);
}

LscAttentionView *
lsc_window_get_attention_view (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->attention_view;
}

LscRun *
lsc_window_get_previous_run (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->previous_run;
}

LscExperimentsView *
lsc_window_get_experiments_view (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->experiments_view;
}

LscPluginControls *
lsc_window_get_plugin_controls (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->plugin_controls;
}

LscRetrievalView *
lsc_window_get_retrieval_view (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->retrieval_view;
}

LscSsmView *
lsc_window_get_ssm_view (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->ssm_view;
}

LscKvView *
lsc_window_get_kv_view (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->kv_view;
}

LscKvControls *
lsc_window_get_kv_controls (LscWindow *self)
{
  g_return_val_if_fail (LSC_IS_WINDOW (self), NULL);
  return self->kv_controls;
}
