/* SPDX-License-Identifier: MIT
 *
 * lsc-session.h: running a Llama-family model (Llama, Mistral, Qwen2) on the
 * CPU: a KV cache, prompt prefill, incremental decode and all-position
 * logits for teacher-forced scoring.
 *
 * Compute is float32 whatever the weights' dtype (f32, f16, bf16, q8_0).
 * Two paths compute the same function: the reference path
 * (LscSessionParams.reference = TRUE) runs llama2.c's one-token-at-a-time
 * forward with the plain kernels of kernels/cpu/lsc-cpu-ref.c; the default
 * fast path batches the prompt through OpenBLAS GEMMs and blocked attention
 * with OpenMP. Tests hold the two together.
 *
 * Example:
 *
 *   LscSessionParams p;
 *   lsc_session_params_init (&p);
 *   p.n_ctx = 4096;
 *   g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
 *   float *logits = g_new (float, vocab);
 *   lsc_session_eval (s, prompt, n_prompt, logits, FALSE, NULL, NULL, &error);
 *   // logits of the next token after the prompt
 */
#pragma once

#include <glib.h>

#include "lsc-attention.h"
#include "lsc-kv.h"
#include "lsc-model.h"
#include "lsc-ssm.h"

G_BEGIN_DECLS

typedef struct _LscSession LscSession;

/* Returns TRUE to stop: checked per layer and per block of rows. */
typedef gboolean (*LscCancelFunc) (gpointer user_data);

/* Where a session computes. AUTO picks CUDA when the build has it, a device
 * is present and the backend supports the model and settings, else the CPU. */
typedef enum {
  LSC_BACKEND_CPU = 0,
  LSC_BACKEND_CUDA,
  LSC_BACKEND_AUTO,
} LscBackend;

const char *lsc_backend_name (LscBackend backend);          /* "cpu", "cuda", "auto" */
/* Parses "cpu", "cuda" or "auto"; FALSE for anything else. */
gboolean lsc_backend_from_string (const char *name, LscBackend *backend);
/* NULL when CUDA sessions can run here, else why not ("no CUDA device is
 * present", "this Longscope was built without CUDA"). The first call probes
 * the driver: applications call it early on their main thread. */
const char *lsc_backend_cuda_unavailable (void);

typedef struct {
  int n_ctx;             /* KV cache length in tokens; 0 = 4096 (the model's own context
                            length is advisory and never caps it) */
  int n_threads;         /* 0 = all cores */
  gboolean reference;    /* TRUE: the plain reference path, one token at a time (CPU) */
  LscBackend backend;    /* CPU by default; CUDA fails without a device, and falls back to
                            the CPU (with a note) for what the GPU backend does not run */
  LscCapturePlan capture;      /* attention capture (lsc-attention.h); off by default */
  LscAttentionHooks hooks;     /* logit scale and mask hooks; none by default */
  LscSsmCapturePlan ssm_capture;   /* Mamba: record Δ (lsc-ssm.h); off by default */
  LscSsmFilter ssm_filter;         /* Mamba: LongMamba's token filter; off by default */
  LscKvPolicy kv_policy;           /* KV-cache eviction (lsc-kv.h); LSC_KV_FULL by default.
                                      n_ctx is then the cache's slots, not the stream's length */
} LscSessionParams;

void lsc_session_params_init (LscSessionParams *params);

/* The model must outlive the session. */
LscSession *lsc_session_new (LscModel *model, const LscSessionParams *params, GError **error);
void lsc_session_free (LscSession *session);

const LscSessionParams *lsc_session_get_params (const LscSession *session);
/* Rows of the logits (the model's vocabulary, padding included). */
int lsc_session_get_n_vocab (const LscSession *session);
/* The backend the session runs on (CPU or CUDA, never AUTO). */
LscBackend lsc_session_get_backend (const LscSession *session);
/* Why the session runs on the CPU although CUDA or AUTO was asked for
 * ("no CUDA device", "q8_0 weights (blk.0.attn_q.weight)", ...), or NULL. */
const char *lsc_session_get_backend_note (const LscSession *session);
/* The most device memory the session has held at once (weights, KV cache,
 * buffers), in bytes; FALSE on the CPU. */
gboolean lsc_session_get_device_memory (const LscSession *session, guint64 *peak_bytes);
/* Host memory the session holds, in bytes (the model's weights not counted). */
typedef struct {
  guint64 kv_bytes;        /* the KV cache: 2 * n_layers * n_ctx * n_kv_heads * head_dim floats */
  guint64 capture_bytes;   /* the capture store (lsc_attention_get_bytes ()), or an SSM's Δ
                              store (lsc_ssm_store_get_bytes ()); 0 without either */
  guint64 scratch_bytes;   /* every other buffer: widened norms and biases, RoPE tables, one
                              token's activations, the fast path's block buffers (allocated by
                              its first evaluation, grown for a longer one), the GPU path's
                              host buffers; not the session's few small structs */
} LscSessionMemory;

/* memory <- what the session holds now. lsc_estimate_run () (lsc-estimate.h)
 * predicts the same numbers before a session exists.
 *
 * Example:
 *
 *   LscSessionMemory m;
 *   lsc_session_get_memory (session, &m);
 *   g_print ("KV cache %.1f MiB\n", m.kv_bytes / 1048576.0);
 */
void lsc_session_get_memory (const LscSession *session, LscSessionMemory *memory);
/* Tokens the session has evaluated (without a KV policy, the tokens in its
 * cache). */
int lsc_session_get_pos (const LscSession *session);
/* The attention capture store, or NULL when the session captures nothing. */
const LscAttentionStore *lsc_session_get_attention (const LscSession *session);
/* The Δ store of a Mamba session recording Δ, or NULL. */
const LscSsmStore *lsc_session_get_ssm (const LscSession *session);
/* The KV policy's log, or NULL without a policy (LSC_KV_FULL). */
const LscKvLog *lsc_session_get_kv (const LscSession *session);
/* Drops the cache back to `pos` tokens (0 = empty). An SSM's recurrent
 * state can only be emptied, and so can a cache a KV policy manages: pos must
 * be 0 or the current position. */
void lsc_session_rewind (LscSession *session, int pos);

/* Runs tokens (n) at positions pos .. pos + n - 1, appending them to the
 * cache. logits receives (n, vocab) when all_logits, else (vocab) for the
 * last token; it may be NULL. Fails with LSC_RUN_ERROR (CONTEXT_FULL,
 * INVALID_TOKEN, CANCELLED, and on a GPU DEVICE or OUT_OF_MEMORY); a call
 * that fails, cancelled or not, leaves the cache (an SSM's recurrent state
 * too) at its old position. */
gboolean lsc_session_eval (LscSession *session, const gint32 *tokens, int n, float *logits,
                           gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data,
                           GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscSession, lsc_session_free)

G_END_DECLS
