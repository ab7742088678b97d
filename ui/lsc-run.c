/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "lsc-error.h"
#include "lsc-generate.h"
#include "lsc-run-private.h"
#include "lsc-session.h"

G_DEFINE_FINAL_TYPE (LscRun, lsc_run, G_TYPE_OBJECT)

enum { PROP_0, PROP_FRACTION, PROP_PHASE, N_PROPS };
static GParamSpec *properties[N_PROPS];

void
lsc_run_params_init (LscRunParams *params)
{
  *params = (LscRunParams) {
    .prompt = "",
    .max_tokens = 32,
    .temperature = 0.0f,
    .seed = 0,
    .capture = TRUE,
    .n_threads = 0,
    .backend = LSC_BACKEND_AUTO,
    .kv_chunk = 0,
    .kv_compare = TRUE,
  };
  lsc_kv_policy_init (&params->kv_policy, LSC_KV_FULL);
}

static void
lsc_run_finalize (GObject *object)
{
  LscRun *self = LSC_RUN (object);
  g_clear_pointer (&self->session, lsc_session_free);
  g_clear_pointer (&self->store, lsc_attention_free);
  g_clear_pointer (&self->ssm_store, lsc_ssm_store_free);
  g_clear_pointer (&self->kv_log, lsc_kv_log_free);
  g_clear_pointer (&self->kv_kl, g_array_unref);
  g_clear_pointer (&self->kv_agree, g_array_unref);
  /* after the session: its hooks point into the plugins' instances */
  lsc_plugin_stack_free ((LscPluginStack *) self->params.plugins);
  g_free (self->source);
  g_free (self->job_json);
  g_clear_pointer (&self->tokens, g_array_unref);
  g_clear_pointer (&self->logprobs, g_array_unref);
  g_free (self->output);
  g_free (self->stats);
  g_free (self->phase);
  g_free (self->shown_phase);
  g_free ((char *) self->params.prompt);
  g_clear_object (&self->model);
  g_main_context_unref (self->context);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (lsc_run_parent_class)->finalize (object);
}

static void
lsc_run_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  LscRun *self = LSC_RUN (object);
  switch (prop_id)
    {
    case PROP_FRACTION:
      g_value_set_double (value, self->shown_fraction);
      break;
    case PROP_PHASE:
      g_value_set_string (value, self->shown_phase);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
lsc_run_class_init (LscRunClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->finalize = lsc_run_finalize;
  object_class->get_property = lsc_run_get_property;
  properties[PROP_FRACTION] = g_param_spec_double ("fraction", NULL, NULL, 0, 1, 0,
                                                   G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_PHASE] = g_param_spec_string ("phase", NULL, NULL, NULL,
                                                G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
lsc_run_init (LscRun *self)
{
  g_mutex_init (&self->lock);
}

LscRun *
lsc_run_new (LscLoadedModel *model, const LscRunParams *params)
{
  g_return_val_if_fail (LSC_IS_LOADED_MODEL (model), NULL);
  g_return_val_if_fail (params != NULL, NULL);
  LscRun *self = g_object_new (LSC_TYPE_RUN, NULL);
  self->model = g_object_ref (model);
  self->params = *params;
  self->params.prompt = g_strdup (params->prompt != NULL ? params->prompt : "");
  self->params.plugins = params->plugins != NULL ? lsc_plugin_stack_copy (params->plugins)
                                                 : lsc_plugin_stack_new ();
  self->context = g_main_context_ref_thread_default ();
  return self;
}

/* ------------------------------------------------------------ progress */

static gboolean
publish_progress (gpointer data)
{
  LscRun *self = data;
  g_mutex_lock (&self->lock);
  self->progress_idle = 0;
  double fraction = self->fraction;
  char *phase = g_strdup (self->phase);
  g_mutex_unlock (&self->lock);

  if (fraction != self->shown_fraction)
    {
      self->shown_fraction = fraction;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FRACTION]);
    }
  if (g_strcmp0 (phase, self->shown_phase) != 0)
    {
      g_free (self->shown_phase);
      self->shown_phase = g_steal_pointer (&phase);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PHASE]);
    }
  g_free (phase);
  return G_SOURCE_REMOVE;
}

/* Worker thread. phase NULL keeps the current one. */
static void
set_progress (LscRun *self, double fraction, const char *phase)
{
  g_mutex_lock (&self->lock);
  self->fraction = CLAMP (fraction, 0.0, 1.0);
  if (phase != NULL && g_strcmp0 (phase, self->phase) != 0)
    {
      g_free (self->phase);
      self->phase = g_strdup (phase);
    }
  if (self->progress_idle == 0)
    self->progress_idle = lsc_progress_idle_attach (self->context, publish_progress, self,
                                                    "[longscope] run progress");
  g_mutex_unlock (&self->lock);
}

guint
lsc_progress_idle_attach (GMainContext *context, GSourceFunc func, gpointer object,
                          const char *name)
{
  GSource *source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT_IDLE);
  g_source_set_callback (source, func, g_object_ref (object), g_object_unref);
  g_source_set_static_name (source, name);
  guint id = g_source_attach (source, context);
  g_source_unref (source);
  return id;
}

double
lsc_run_get_fraction (LscRun *self)
{
  g_return_val_if_fail (LSC_IS_RUN (self), 0);
  return self->shown_fraction;
}

char *
lsc_run_dup_phase (LscRun *self)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  return g_strdup (self->shown_phase);
}

/* -------------------------------------------------------------- worker */

static gboolean
is_cancelled (gpointer data)
{
  return g_cancellable_is_cancelled (data);
}

typedef struct {
  LscRun *run;
  GCancellable *cancellable;
  gint64 first_us;      /* when the first new token came, 0 before */
} TokenData;

static gboolean
on_token (int token, int index, gpointer user_data)
{
  TokenData *td = user_data;
  if (td->first_us == 0)
    td->first_us = g_get_monotonic_time ();
  int max = MAX (td->run->params.max_tokens, 1);
  set_progress (td->run, 0.1 + 0.8 * (index + 1) / max, NULL);
  return !g_cancellable_is_cancelled (td->cancellable);
}

void
lsc_run_params_get_session (const LscRunParams *params, const LscModelConfig *config,
                            int n_prompt, LscSessionParams *session)
{
  lsc_session_params_init (session);
  session->n_ctx = MAX (n_prompt + MAX (params->max_tokens, 0) + 1, 16);
  session->n_threads = params->n_threads;
  session->backend = params->backend;
  if (params->kv_policy.kind != LSC_KV_FULL)
    {
      /* the cache's slots, as a batch job's "kv" section sizes them; a
       * session under a policy captures nothing */
      session->kv_policy = params->kv_policy;
      session->n_ctx = lsc_kv_policy_slots (&params->kv_policy, n_prompt, params->kv_chunk,
                                            MAX (params->max_tokens, 0));
      return;
    }
  /* a Mamba model has no attention: its capture is Δ of every layer */
  if (config != NULL && lsc_arch_is_ssm (config->arch))
    session->ssm_capture = (LscSsmCapturePlan) { params->capture, 0, -1 };
  else
    session->capture.enabled = params->capture;
}

/* Worker thread: the run under a KV policy, as a batch job's "kv" section
 * runs it (lsc-batch.c): the whole prompt under the policy (in chunks),
 * then generation, the full cache alongside when compared. */
static gboolean
execute_kv (LscRun *self, LscModel *model, LscSession *session, GArray *prompt,
            const LscGenerateParams *gp, GArray *generated, GArray *logprobs,
            GCancellable *cancellable, GError **error)
{
  g_autoptr(LscSession) full = NULL;
  if (self->params.kv_compare)
    {
      full = lsc_generate_kv_full_new (model, session,
                                       (int) prompt->len + MAX (self->params.max_tokens, 0), error);
      if (full == NULL)
        return FALSE;
    }
  g_autoptr(GArray) kl = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) agree = g_array_new (FALSE, FALSE, sizeof (gboolean));
  TokenData td = { self, cancellable, 0 };
  gint64 t0 = g_get_monotonic_time ();
  if (!lsc_generate_kv (session, full, (const gint32 *) prompt->data, (int) prompt->len,
                        self->params.kv_chunk, gp, generated, logprobs, kl, agree, on_token, &td,
                        is_cancelled, cancellable, error))
    return FALSE;
  /* the prompt until the first new token, as a batch job times it */
  gint64 end = g_get_monotonic_time ();
  gint64 first = td.first_us != 0 ? td.first_us : end;
  self->prefill_s = (first - t0) / 1e6;
  self->decode_s = (end - first) / 1e6;
  if (full != NULL)
    {
      self->kv_kl = g_steal_pointer (&kl);
      self->kv_agree = g_steal_pointer (&agree);
    }
  return TRUE;
}

/* Phase names are translated on the main thread by the window; the worker
 * passes stable keys. */
static gboolean
execute (LscRun *self, GCancellable *cancellable, GError **error)
{
  LscModel *model = lsc_loaded_model_get_model (self->model);
  LscTokenizer *tok = lsc_loaded_model_get_tokenizer (self->model);
  const LscModelConfig *config = lsc_model_get_config (model);
  gint64 t0 = g_get_monotonic_time ();

  set_progress (self, 0.0, "tokenize");
  int bos = lsc_tokenizer_get_bos (tok);
  g_autoptr(GArray) prompt = lsc_tokenizer_encode (tok, self->params.prompt, -1, bos >= 0, error);
  if (prompt == NULL)
    return FALSE;
  if (prompt->len == 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "the prompt is empty");
      return FALSE;
    }

  LscSessionParams sp;
  lsc_run_params_get_session (&self->params, config, (int) prompt->len, &sp);
  /* the worker owns the run's stack until it finishes */
  LscPluginStack *plugins = (LscPluginStack *) self->params.plugins;
  if (lsc_arch_is_ssm (config->arch))
    {
      /* plugins hook attention (the window leaves them out for a Mamba
       * model); the session would refuse their hooks in its own words */
      if (lsc_plugin_stack_get_size (plugins) > 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       "plugins hook attention, and %s (%s) has none: disable the plugins to "
                       "run it", lsc_model_get_path (model), lsc_arch_name (config->arch));
          return FALSE;
        }
    }
  else
    {
      if (!lsc_plugin_stack_instantiate (plugins, config, error))
        return FALSE;
      lsc_plugin_stack_get_hooks (plugins, &sp.hooks);
    }
  g_autoptr(LscSession) session = lsc_session_new (model, &sp, error);
  if (session == NULL)
    return FALSE;

  set_progress (self, 0.05, "prefill");
  g_autoptr(GArray) generated = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autoptr(GArray) logprobs = g_array_new (FALSE, FALSE, sizeof (double));
  LscGenerateParams gp;
  lsc_generate_params_init (&gp);
  gp.max_tokens = MAX (self->params.max_tokens, 0);
  gp.sampler.temperature = self->params.temperature;
  gp.sampler.seed = self->params.seed;
  gp.eos_id = lsc_tokenizer_get_eos (tok);
  /* llama2.c checkpoints end a story with BOS */
  if (lsc_model_get_format (model) == LSC_FORMAT_LLAMA2C)
    gp.bos_id = lsc_tokenizer_get_bos (tok);
  gint64 tp = g_get_monotonic_time ();
  if (sp.kv_policy.kind != LSC_KV_FULL)
    {
      if (!execute_kv (self, model, session, prompt, &gp, generated, logprobs, cancellable,
                       error))
        return FALSE;
    }
  else if (self->params.max_tokens > 0)
    {
      /* as `longscope --batch` runs a job (lsc-batch.c), so that the job
       * lsc_run_save_job writes reproduces this run exactly: the prompt but
       * its last token, then generation from the last token, stopping where
       * a batch job stops */
      TokenData td = { self, cancellable, 0 };
      if (!lsc_session_eval (session, (const gint32 *) prompt->data, (int) prompt->len - 1, NULL,
                             FALSE, is_cancelled, cancellable, error))
        return FALSE;
      self->prefill_s = (g_get_monotonic_time () - tp) / 1e6;
      gint64 td0 = g_get_monotonic_time ();
      if (!lsc_generate (session, (const gint32 *) prompt->data + prompt->len - 1, 1, &gp,
                         generated, logprobs, on_token, &td, is_cancelled, cancellable, error))
        return FALSE;
      self->decode_s = (g_get_monotonic_time () - td0) / 1e6;
    }
  else
    {
      if (!lsc_session_eval (session, (const gint32 *) prompt->data, prompt->len, NULL, FALSE,
                             is_cancelled, cancellable, error))
        return FALSE;
      self->prefill_s = (g_get_monotonic_time () - tp) / 1e6;
    }
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  /* per-head statistics of the captured attention (none on a Mamba model,
   * whose session records Δ instead: lsc_run_get_ssm ()) */
  const LscAttentionStore *store = lsc_session_get_attention (session);
  if (store != NULL && config->n_heads > 0)
    {
      set_progress (self, 0.9, "analyze");
      int nl = config->n_layers, nh = config->n_heads;
      g_autofree LscHeadStats *stats = g_new0 (LscHeadStats, (gsize) nl * nh);
      for (int l = 0; l < nl; l++)
        for (int h = 0; h < nh; h++)
          {
            if (g_cancellable_set_error_if_cancelled (cancellable, error))
              return FALSE;
            if (!lsc_attention_has_head (store, l, h))
              continue;
            if (!lsc_attention_analyze (store, l, h, LSC_RUN_SINK_TOKENS, NULL, &stats[l * nh + h],
                                        error))
              return FALSE;
            set_progress (self, 0.9 + 0.1 * (l * nh + h + 1) / (nl * nh), NULL);
          }
      self->stats = g_steal_pointer (&stats);
      self->n_layers = nl;
      self->n_heads = nh;
    }

  self->n_prompt = prompt->len;
  self->output = lsc_tokenizer_decode (tok, (const gint32 *) generated->data, generated->len);
  g_array_append_vals (prompt, generated->data, generated->len);
  self->tokens = g_steal_pointer (&prompt);
  self->logprobs = g_steal_pointer (&logprobs);
  self->session = g_steal_pointer (&session);
  self->total_s = (g_get_monotonic_time () - t0) / 1e6;
  set_progress (self, 1.0, "done");
  return TRUE;
}

static void
execute_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  LscRun *self = source;
  GError *error = NULL;
  if (execute (self, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    {
      /* one notion of "cancelled" for the UI */
      if (g_error_matches (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED))
        {
          g_clear_error (&error);
          g_set_error_literal (&error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled");
        }
      g_task_return_error (task, error);
    }
}

void
lsc_run_execute_async (LscRun *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                       gpointer user_data)
{
  g_return_if_fail (LSC_IS_RUN (self));
  g_return_if_fail (!self->started);
  self->started = TRUE;
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, lsc_run_execute_async);
  g_task_set_return_on_cancel (task, FALSE);
  g_task_run_in_thread (task, execute_thread);
}

/* Publishes pending progress now: the worker is done, and its last update
 * must not arrive after the result. */
static void
flush_progress (LscRun *self)
{
  g_mutex_lock (&self->lock);
  GSource *pending = self->progress_idle != 0
      ? g_main_context_find_source_by_id (self->context, self->progress_idle) : NULL;
  if (pending != NULL)
    g_source_destroy (pending);
  g_mutex_unlock (&self->lock);
  publish_progress (self);
}

gboolean
lsc_run_execute_finish (LscRun *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == lsc_run_execute_async, FALSE);
  flush_progress (self);
  return g_task_propagate_boolean (G_TASK (result), error);
}

LscLoadedModel *
lsc_run_get_model (LscRun *self)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  return self->model;
}

const gint32 *
lsc_run_get_tokens (LscRun *self, int *n_tokens, int *n_prompt)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  if (n_tokens != NULL)
    *n_tokens = self->tokens != NULL ? (int) self->tokens->len : 0;
  if (n_prompt != NULL)
    *n_prompt = self->n_prompt;
  return self->tokens != NULL ? (const gint32 *) self->tokens->data : NULL;
}

const char *
lsc_run_get_output (LscRun *self)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  return self->output;
}

const LscAttentionStore *
lsc_run_get_attention (LscRun *self)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  if (self->store != NULL)
    return self->store;
  return self->session != NULL ? lsc_session_get_attention (self->session) : NULL;
}

const LscSsmStore *
lsc_run_get_ssm (LscRun *self)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  return self->session != NULL ? lsc_session_get_ssm (self->session) : self->ssm_store;
}

const LscKvLog *
lsc_run_get_kv (LscRun *self)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  return self->session != NULL ? lsc_session_get_kv (self->session) : self->kv_log;
}

gboolean
lsc_run_get_kv_comparison (LscRun *self, const double **kl, const gboolean **agree, int *n)
{
  g_return_val_if_fail (LSC_IS_RUN (self), FALSE);
  gboolean compared = self->kv_kl != NULL && self->kv_agree != NULL;
  if (kl != NULL)
    *kl = compared ? (const double *) self->kv_kl->data : NULL;
  if (agree != NULL)
    *agree = compared ? (const gboolean *) self->kv_agree->data : NULL;
  if (n != NULL)
    *n = compared ? (int) self->kv_kl->len : 0;
  return compared;
}

int
lsc_run_count_kv_pruned (LscRun *self, int layer, int head, int *head_dim)
{
  g_return_val_if_fail (LSC_IS_RUN (self), -1);
  const LscKvLog *log = lsc_run_get_kv (self);
  if (head_dim != NULL)
    *head_dim = 0;
  if (log == NULL || lsc_kv_log_get_policy (log)->kind != LSC_KV_THINK)
    return -1;
  g_return_val_if_fail (layer >= 0 && layer < lsc_kv_log_get_n_layers (log) && head >= 0
                          && head < lsc_kv_log_get_n_heads (log), -1);
  int D = lsc_kv_log_get_head_dim (log), n = 0;
  for (int c = 0; c < D; c++)
    n += lsc_kv_log_channel_pruned (log, layer, head, c);
  if (head_dim != NULL)
    *head_dim = D;
  return n;
}

const LscHeadStats *
lsc_run_get_head_stats (LscRun *self, int *n_layers, int *n_heads)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  if (n_layers != NULL)
    *n_layers = self->n_layers;
  if (n_heads != NULL)
    *n_heads = self->n_heads;
  return self->stats;
}

const LscRunParams *
lsc_run_get_params (LscRun *self)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  return &self->params;
}

const LscSession *
lsc_run_get_session (LscRun *self)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  return self->session;
}

const double *
lsc_run_get_logprobs (LscRun *self, int *n)
{
  g_return_val_if_fail (LSC_IS_RUN (self), NULL);
  if (n != NULL)
    *n = self->logprobs != NULL ? (int) self->logprobs->len : 0;
  return self->logprobs != NULL ? (const double *) self->logprobs->data : NULL;
}

void
lsc_run_get_timings (LscRun *self, double *prefill_s, double *decode_s, double *total_s)
{
  g_return_if_fail (LSC_IS_RUN (self));
  if (prefill_s != NULL)
    *prefill_s = self->prefill_s;
  if (decode_s != NULL)
    *decode_s = self->decode_s;
  if (total_s != NULL)
    *total_s = self->total_s;
}
