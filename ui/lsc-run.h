/* SPDX-License-Identifier: MIT
 *
 * lsc-run.h: one run of a model on a prompt, on a worker thread: prefill
 * with attention capture, generation, per-head statistics. GTK-free.
 *
 * On a Mamba model (lsc_arch_is_ssm ()) "capture" records Δ of every layer
 * instead (lsc-ssm.h; lsc_run_get_ssm ()): there is no attention to
 * capture, no per-head statistics, and no plugin applies (plugins hook
 * attention; a run of a Mamba model with plugins fails, saying so).
 *
 * With a KV policy (kv_policy, lsc-kv.h) the run is a batch job's "kv"
 * section: lsc_generate_kv () feeds the prompt kv_chunk tokens at a time
 * into a cache the policy manages, then generates; with kv_compare an
 * empty full-cache session of the same model runs alongside, giving the
 * KL divergence and top-1 agreement per step (lsc_run_get_kv_comparison ()).
 * The policy's log stays with the run (lsc_run_get_kv ()). Such a run
 * captures no attention (the session refuses capture under a policy), and
 * runs on the CPU.
 *
 * Progress (fraction, phase) is written by the worker into a mutex-guarded
 * struct and published on the main context by one pending idle, which
 * notifies "fraction" and "phase". Cancellation goes through the
 * GCancellable, which the engine polls per layer and per block of rows.
 *
 * Example:
 *
 *   LscRunParams p;
 *   lsc_run_params_init (&p);
 *   p.prompt = "abc abc";
 *   LscRun *run = lsc_run_new (loaded_model, &p);
 *   lsc_run_execute_async (run, cancellable, done_cb, self);
 *   // done_cb: lsc_run_execute_finish (run, result, &error), then the getters
 */
#pragma once

#include <gio/gio.h>

#include "lsc-attention.h"
#include "lsc-loaded-model.h"
#include "lsc-plugin.h"
#include "lsc-session.h"
#include "lsc-ssm.h"

G_BEGIN_DECLS

typedef struct {
  const char *prompt;     /* copied */
  int max_tokens;         /* 32: new tokens (0: prefill only) */
  float temperature;      /* 0: greedy */
  guint64 seed;           /* 0 */
  gboolean capture;       /* TRUE: capture attention, compute per-head statistics;
                             on a Mamba model: record Δ of every layer */
  int n_threads;          /* 0: all cores */
  LscBackend backend;     /* AUTO: the GPU when there is one */
  const LscPluginStack *plugins;   /* copied (values only); NULL: none */
  LscKvPolicy kv_policy;  /* LSC_KV_FULL: the full cache; else capture is off */
  int kv_chunk;           /* 0: the prompt in one evaluation under a policy */
  gboolean kv_compare;    /* TRUE: under a policy, also run the full cache */
} LscRunParams;

void lsc_run_params_init (LscRunParams *params);
/* The session a run of params on a prompt of n_prompt tokens (BOS
 * included) opens on a model of `config` (NULL: a transformer): for
 * lsc_estimate_run () before Run. With params->capture, a transformer's
 * session captures attention, a Mamba model's records Δ of every layer
 * (ssm_capture {TRUE, 0, -1}). Under a KV policy the session has the
 * policy, n_ctx = lsc_kv_policy_slots () and no capture. Plugins' hooks are
 * not set here. */
void lsc_run_params_get_session (const LscRunParams *params, const LscModelConfig *config,
                                 int n_prompt, LscSessionParams *session);

/* How a worker thread publishes progress on the main context: attaches an
 * idle of default-idle priority that calls func with `object` (a GObject,
 * referenced until the source is destroyed), named `name` (a static
 * string), to context; returns its id. */
guint lsc_progress_idle_attach (GMainContext *context, GSourceFunc func, gpointer object,
                                const char *name);

/* The keys at the start of the context whose attention counts as sink mass
 * in the per-head statistics (a batch job's capture.sink_tokens). */
#define LSC_RUN_SINK_TOKENS 1

#define LSC_TYPE_RUN (lsc_run_get_type ())
G_DECLARE_FINAL_TYPE (LscRun, lsc_run, LSC, RUN, GObject)

LscRun *lsc_run_new (LscLoadedModel *model, const LscRunParams *params);
/* The parameters as given (the prompt and the plugins are the run's copies;
 * plugins is never NULL). */
const LscRunParams *lsc_run_get_params (LscRun *self);

/* Once per run. */
void lsc_run_execute_async (LscRun *self, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data);
gboolean lsc_run_execute_finish (LscRun *self, GAsyncResult *result, GError **error);

/* Progress, main thread. */
double lsc_run_get_fraction (LscRun *self);
char *lsc_run_dup_phase (LscRun *self);

/* Results, after a successful finish. */
LscLoadedModel *lsc_run_get_model (LscRun *self);
/* Tokens of the session: prompt (BOS included) then generated. */
const gint32 *lsc_run_get_tokens (LscRun *self, int *n_tokens, int *n_prompt);
const char *lsc_run_get_output (LscRun *self);   /* generated text */
/* NULL when nothing was captured. */
const LscAttentionStore *lsc_run_get_attention (LscRun *self);
/* The Δ store of a Mamba run that recorded Δ (capture on), or NULL (a
 * transformer, capture off, a run opened from saved results, or before
 * the run finished). Valid while the run lives. */
const LscSsmStore *lsc_run_get_ssm (LscRun *self);
/* The KV policy's log of a run under a policy (its session's, or read
 * back from saved results), NULL for a full-cache run. Valid while the run
 * lives. */
const LscKvLog *lsc_run_get_kv (LscRun *self);
/* The comparison of a run under a KV policy with the full cache: kl (n)
 * KL(full || policy) in nats and agree (n) top-1 agreement, per step (the
 * prompt, then every new token but the last). FALSE (NULL, 0) when the run
 * was not compared. Any of the pointers may be NULL. */
gboolean lsc_run_get_kv_comparison (LscRun *self, const double **kl, const gboolean **agree,
                                    int *n);
/* ThinK: how many key channels (layer, KV head) dropped from its older
 * keys, of *head_dim; -1 (head_dim 0) for a run under another policy or
 * none. */
int lsc_run_count_kv_pruned (LscRun *self, int layer, int head, int *head_dim);
/* Per-head statistics (layer * n_heads + head), NULL without capture. */
const LscHeadStats *lsc_run_get_head_stats (LscRun *self, int *n_layers, int *n_heads);
/* The session after the run (backend, threads, KV cache, capture store), NULL before. */
const LscSession *lsc_run_get_session (LscRun *self);
/* Log-probabilities of the generated tokens under the model (temperature 1). */
const double *lsc_run_get_logprobs (LscRun *self, int *n);
/* Wall time in seconds: the prompt (all but its last token with max_tokens
 * > 0, as a batch job times it), generation, and the whole run. */
void lsc_run_get_timings (LscRun *self, double *prefill_s, double *decode_s, double *total_s);

G_END_DECLS
