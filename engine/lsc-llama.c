/* SPDX-License-Identifier: MIT
 *
 * The Llama-family forward pass (Llama, Mistral, Qwen2) on the CPU.
 *
 * lsc_session_eval () runs either the reference path, forward_token () below,
 * which is llama2.c's forward() generalised (GQA, biases, RoPE layouts and
 * scaling, sliding windows, any weight dtype), or the fast batched path of
 * lsc-llama-fast.c. Both read the weights through the same LscLayer table and
 * write the same KV cache.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-llama-private.h"
#include "lsc-rope.h"

void
lsc_session_params_init (LscSessionParams *params)
{
  memset (params, 0, sizeof *params);
}

static const char *const backend_names[] = { "cpu", "cuda", "auto" };

const char *
lsc_backend_name (LscBackend backend)
{
  return (guint) backend < G_N_ELEMENTS (backend_names) ? backend_names[backend] : "unknown";
}

gboolean
lsc_backend_from_string (const char *name, LscBackend *backend)
{
  for (guint i = 0; name != NULL && i < G_N_ELEMENTS (backend_names); i++)
    if (strcmp (name, backend_names[i]) == 0)
      {
        *backend = (LscBackend) i;
        return TRUE;
      }
  return FALSE;
}

float *
_lsc_widen (const LscTensor *t, guint64 *counter)
{
  if (t == NULL)
    return NULL;
  float *out = LSC_COUNTED_NEW (counter, float, lsc_tensor_n_elements (t));
  lsc_to_f32 (out, t->data, t->dtype, (size_t) lsc_tensor_n_elements (t));
  return out;
}

LscMatrix
_lsc_matrix (const LscTensor *t)
{
  LscMatrix m = { NULL, LSC_DTYPE_F32, 0, 0 };
  if (t != NULL)
    {
      m.data = t->data;
      m.dtype = t->dtype;
      m.rows = (int) t->shape[0];
      m.cols = (int) t->shape[1];
    }
  return m;
}

/* The rest of lsc_session_new () for Mamba-1/2: no KV cache, no attention. */
static gboolean
ssm_session_init (LscSession *s, GError **error)
{
  const char *arch = lsc_arch_name (s->c.arch);
  if (s->params.capture.enabled)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "%s: %s has no attention to capture", lsc_model_get_path (s->model), arch);
      return FALSE;
    }
  if (s->params.hooks.scale != NULL || s->params.hooks.mask_row != NULL)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "%s: attention hooks (plugins) do not apply to %s, which has no attention",
                   lsc_model_get_path (s->model), arch);
      return FALSE;
    }
  return _lsc_ssm_init (s, error)
         && (s->params.backend == LSC_BACKEND_CPU || _lsc_session_init_cuda (s, error));
}

LscSession *
lsc_session_new (LscModel *model, const LscSessionParams *params, GError **error)
{
  const LscModelConfig *c = lsc_model_get_config (model);

  g_return_val_if_fail (model != NULL && params != NULL, NULL);

  LscSession *s = g_new0 (LscSession, 1);
  s->model = model;
  s->c = *c;
  s->params = *params;
  if (s->params.n_ctx <= 0)
    s->params.n_ctx = 4096;   /* a model's context length is advisory: never a cap */
  if (s->params.n_threads <= 0)
    s->params.n_threads = (int) g_get_num_processors ();

  int n_ctx = s->params.n_ctx;
  int q_dim = c->n_heads * c->head_dim;
  int kv_dim = c->n_kv_heads * c->head_dim;
  guint64 *counted = &s->scratch_bytes;   /* lsc_session_get_memory () */

  s->embd = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_TOKEN_EMBD, -1));
  s->output = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1) != NULL
                ? _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1))
                : s->embd;
  s->output_norm = _lsc_widen (lsc_model_get_weight (model, LSC_TENSOR_OUTPUT_NORM, -1), counted);
  if (lsc_arch_is_ssm (c->arch) && params->kv_policy.kind != LSC_KV_FULL)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "%s: %s has no KV cache for the %s policy to evict from",
                   lsc_model_get_path (model), lsc_arch_name (c->arch),
                   lsc_kv_policy_name (params->kv_policy.kind));
      lsc_session_free (s);
      return NULL;
    }
  if (lsc_arch_is_ssm (c->arch))
    return ssm_session_init (s, error) ? s : (lsc_session_free (s), NULL);
  if (params->ssm_capture.enabled || params->ssm_filter.enabled)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "%s: %s has no SSM: Δ capture and LongMamba's filter need Mamba",
                   lsc_model_get_path (model), lsc_arch_name (c->arch));
      lsc_session_free (s);
      return NULL;
    }

  s->layers = g_new0 (LscLayer, c->n_layers);
  for (int l = 0; l < c->n_layers; l++)
    {
      LscLayer *L = &s->layers[l];
      L->attn_norm = _lsc_widen (lsc_model_get_weight (model, LSC_TENSOR_ATTN_NORM, l), counted);
      L->ffn_norm = _lsc_widen (lsc_model_get_weight (model, LSC_TENSOR_FFN_NORM, l), counted);
      L->bq = _lsc_widen (lsc_model_get_weight (model, LSC_TENSOR_ATTN_Q_BIAS, l), counted);
      L->bk = _lsc_widen (lsc_model_get_weight (model, LSC_TENSOR_ATTN_K_BIAS, l), counted);
      L->bv = _lsc_widen (lsc_model_get_weight (model, LSC_TENSOR_ATTN_V_BIAS, l), counted);
      L->wq = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_ATTN_Q, l));
      L->wk = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_ATTN_K, l));
      L->wv = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_ATTN_V, l));
      L->wo = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_ATTN_O, l));
      L->w_gate = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_FFN_GATE, l));
      L->w_up = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_FFN_UP, l));
      L->w_down = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_FFN_DOWN, l));
      L->window = _lsc_layer_window (c, l);
    }

  gsize cache = (gsize) c->n_layers * n_ctx * kv_dim;
  s->key_cache = g_try_new (float, cache);
  s->value_cache = g_try_new (float, cache);
  if (s->key_cache == NULL || s->value_cache == NULL)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_OUT_OF_MEMORY,
                   "the KV cache of %d tokens needs %.1f MiB, which could not be allocated",
                   n_ctx, 2.0 * cache * sizeof (float) / 1048576.0);
      lsc_session_free (s);
      return NULL;
    }

  s->x = LSC_COUNTED_NEW (counted, float, c->dim);
  s->xb = LSC_COUNTED_NEW (counted, float, MAX (c->dim, q_dim));
  s->xb2 = LSC_COUNTED_NEW (counted, float, c->dim);
  s->hb = LSC_COUNTED_NEW (counted, float, c->hidden_dim);
  s->hb2 = LSC_COUNTED_NEW (counted, float, c->hidden_dim);
  s->q = LSC_COUNTED_NEW (counted, float, q_dim);
  s->k = LSC_COUNTED_NEW (counted, float, kv_dim);
  s->v = LSC_COUNTED_NEW (counted, float, kv_dim);
  s->att = LSC_COUNTED_NEW (counted, float, n_ctx);
  s->inv_freq = LSC_COUNTED_NEW (counted, double, c->head_dim / 2);
  s->rope_cos = LSC_COUNTED_NEW (counted, float, c->head_dim / 2);
  s->rope_sin = LSC_COUNTED_NEW (counted, float, c->head_dim / 2);
  s->rope_seq_len = -1;
  s->hidden = LSC_COUNTED_NEW (counted, guint8, n_ctx);
  if (params->capture.enabled)
    {
      s->attention = _lsc_attention_store_new (s, &params->capture, error);
      if (s->attention == NULL)
        {
          lsc_session_free (s);
          return NULL;
        }
    }
  if (!_lsc_kv_init (s, error))
    {
      lsc_session_free (s);
      return NULL;
    }
  if (s->params.backend != LSC_BACKEND_CPU && !_lsc_session_init_cuda (s, error))
    {
      lsc_session_free (s);
      return NULL;
    }
  return s;
}

/* Keep in step with lsc_session_new () above. */
guint64
_lsc_session_base_bytes (const LscModel *model, const LscSessionParams *params)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  guint64 q_dim = (guint64) c->n_heads * c->head_dim;
  guint64 kv_dim = (guint64) c->n_kv_heads * c->head_dim;
  guint64 floats = 0;

  /* norms and biases, widened */
  static const LscTensorRole vectors[] = { LSC_TENSOR_ATTN_NORM, LSC_TENSOR_FFN_NORM,
                                           LSC_TENSOR_ATTN_Q_BIAS, LSC_TENSOR_ATTN_K_BIAS,
                                           LSC_TENSOR_ATTN_V_BIAS };
  const LscTensor *t = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT_NORM, -1);
  floats += t != NULL ? (guint64) lsc_tensor_n_elements (t) : 0;
  for (int l = 0; l < c->n_layers; l++)
    for (guint i = 0; i < G_N_ELEMENTS (vectors); i++)
      if ((t = lsc_model_get_weight (model, vectors[i], l)) != NULL)
        floats += (guint64) lsc_tensor_n_elements (t);

  /* the reference path's activations of one token and its RoPE tables */
  floats += (guint64) c->dim + MAX ((guint64) c->dim, q_dim) + c->dim + 2 * (guint64) c->hidden_dim
            + q_dim + 2 * kv_dim + (guint64) params->n_ctx + 2 * (guint64) (c->head_dim / 2);
  return floats * sizeof (float) + (guint64) (c->head_dim / 2) * sizeof (double)
         + (guint64) params->n_ctx;   /* hidden */
}

void
lsc_session_get_memory (const LscSession *s, LscSessionMemory *memory)
{
  guint64 kv_dim = (guint64) s->c.n_kv_heads * s->c.head_dim;
  memory->kv_bytes = s->ssm != NULL
                       ? _lsc_ssm_state_bytes (&s->c)
                       : 2 * (guint64) s->c.n_layers * s->params.n_ctx * kv_dim * sizeof (float);
  memory->capture_bytes = s->attention != NULL   ? lsc_attention_get_bytes (s->attention)
                          : s->ssm_store != NULL ? lsc_ssm_store_get_bytes (s->ssm_store)
                                                 : 0;
  memory->scratch_bytes = s->scratch_bytes + _lsc_session_fast_bytes (s)
                          + _lsc_session_cuda_host_bytes (s) + _lsc_ssm_buffer_bytes (s)
                          + _lsc_session_kv_bytes (s);
}

void
lsc_session_free (LscSession *s)
{
  if (s == NULL)
    return;
  for (int l = 0; s->layers != NULL && l < s->c.n_layers; l++)
    {
      LscLayer *L = &s->layers[l];
      g_free (L->attn_norm);
      g_free (L->ffn_norm);
      g_free (L->bq);
      g_free (L->bk);
      g_free (L->bv);
    }
  g_free (s->layers);
  g_free (s->output_norm);
  g_free (s->key_cache);
  g_free (s->value_cache);
  g_free (s->x);
  g_free (s->xb);
  g_free (s->xb2);
  g_free (s->hb);
  g_free (s->hb2);
  g_free (s->q);
  g_free (s->k);
  g_free (s->v);
  g_free (s->att);
  g_free (s->inv_freq);
  g_free (s->rope_cos);
  g_free (s->rope_sin);
  _lsc_session_free_fast (s);
  _lsc_session_free_cuda (s);
  g_free (s->backend_note);
  _lsc_attention_store_free (s->attention);
  g_free (s->hidden);
  _lsc_ssm_free (s);
  _lsc_kv_free (s);
  g_free (s);
}

const LscSessionParams *
lsc_session_get_params (const LscSession *s)
{
  return &s->params;
}

const LscSsmStore *
lsc_session_get_ssm (const LscSession *s)
{
  return s->ssm_store;
}

const LscAttentionStore *
lsc_session_get_attention (const LscSession *s)
{
  return s->attention;
}

int
lsc_session_get_n_vocab (const LscSession *s)
{
  return s->output.rows;
}

LscBackend
lsc_session_get_backend (const LscSession *s)
{
  return s->cuda != NULL ? LSC_BACKEND_CUDA : LSC_BACKEND_CPU;
}

const char *
lsc_session_get_backend_note (const LscSession *s)
{
  return s->backend_note;
}

int
lsc_session_get_pos (const LscSession *s)
{
  return s->pos;
}

void
lsc_session_rewind (LscSession *s, int pos)
{
  g_return_if_fail (pos >= 0);
  if (s->ssm != NULL && pos < s->pos)
    {
      /* a recurrent state cannot be rewound, only emptied */
      g_return_if_fail (pos == 0);
      _lsc_ssm_reset (s);
    }
  if (s->kv != NULL && pos < s->pos)
    {
      /* evicted tokens cannot come back: a managed cache can only be emptied */
      g_return_if_fail (pos == 0);
      _lsc_kv_reset (s);
    }
  s->pos = MIN (s->pos, pos);
}

int
_lsc_layer_window (const LscModelConfig *c, int layer)
{
  if (c->sliding_window <= 0)
    return 0;
  /* Qwen2: only layers from max_window_layers on slide (HF layer_types) */
  return layer >= c->max_window_layers ? c->sliding_window : 0;
}

float *
_lsc_block_logits (const LscSession *s, float *logits, gboolean all_logits, int done, int T, int n)
{
  if (logits != NULL && all_logits)
    return logits + (size_t) done * s->output.rows;
  return done + T == n ? logits : NULL;
}

void
_lsc_session_prepare_rope (LscSession *s, int seq_len)
{
  /* Only dynamic NTK depends on the length; recompute when it changes. */
  if (s->rope_seq_len >= 0
      && (s->c.rope_scaling.type != LSC_ROPE_SCALING_DYNAMIC || s->rope_seq_len == seq_len))
    return;
  s->rope_factor = lsc_rope_inv_freq (&s->c, seq_len, s->inv_freq);
  s->rope_seq_len = seq_len;
}

void
_lsc_embed (const LscSession *s, int token, float *out)
{
  const LscMatrix *e = &s->embd;
  size_t row_bytes = lsc_dtype_row_bytes (e->dtype, e->cols);
  lsc_to_f32 (out, (const guint8 *) e->data + (size_t) token * row_bytes, e->dtype, e->cols);
}

static void
add_bias (float *x, const float *b, int n)
{
  if (b != NULL)
    for (int i = 0; i < n; i++)
      x[i] += b[i];
}

void
_lsc_attend_row (LscSession *s, int l, int h, int pos, const float *q, float *out, float *att,
                 guint8 *hidden)
{
  const LscModelConfig *c = &s->c;
  int hd = c->head_dim, n_ctx = s->params.n_ctx;
  int kv_dim = c->n_kv_heads * hd;
  int kvh = h / (c->n_heads / c->n_kv_heads);
  int window = s->layers[l].window;
  /* the row's slot: its position, unless a KV policy has evicted tokens */
  int slot = pos - s->pos + _lsc_kv_slot0 (s, l);
  int first = window > 0 ? MAX (0, slot - window + 1) : 0;
  const float *key_cache = _lsc_kv_keys (s, l);                             /* (n_ctx, kv_dim) */
  const float *value_cache = s->value_cache + (size_t) l * n_ctx * kv_dim; /* (n_ctx, kv_dim) */

  /* the logit scale, times a plugin's temperature */
  float row_scale = 1.0f / sqrtf ((float) hd);
  if (s->params.hooks.scale != NULL)
    row_scale *= s->params.hooks.scale (s->params.hooks.data, l, h, pos);
  for (int t = first; t <= slot; t++)
    {
      /* accumulated in double: the normaliser then matches a float64 softmax
       * of the same q and k, which captured tiles are held to */
      const float *k = key_cache + (size_t) t * kv_dim + kvh * hd;
      double score = 0.0;
      for (int i = 0; i < hd; i++)
        score += (double) q[i] * k[i];
      att[t - first] = (float) (score * row_scale);
    }
  /* LM-Infinite's Λ mask and distance cap (windows never come with a KV policy: first is 0) */
  _lsc_kv_fix_row (s, l, h, pos, slot, q, att, row_scale, omp_get_thread_num ());
  /* keys a plugin or KV policy hides */
  if (s->params.hooks.mask_row != NULL)
    {
      memset (hidden, 0, (size_t) pos + 1);
      s->params.hooks.mask_row (s->params.hooks.data, l, h, pos, hidden);
      for (int t = first; t <= pos; t++)
        if (hidden[t])
          att[t - first] = -INFINITY;
    }
  float lse = lsc_softmax_lse (att, slot - first + 1);
  if (_lsc_attention_wants (s->attention, l, pos))
    _lsc_attention_put (s->attention, l, h, pos, q, lse, row_scale);
  _lsc_kv_row_query (s, h, pos, q, omp_get_thread_num ());
  float *sums = _lsc_kv_row_sums (s, h, pos, omp_get_thread_num ());
  if (sums != NULL)
    for (int t = first; t <= slot; t++)
      sums[t] += att[t - first];

  memset (out, 0, hd * sizeof (float));
  for (int t = first; t <= slot; t++)
    {
      const float *v = value_cache + (size_t) t * kv_dim + kvh * hd;
      float a = att[t - first];
      for (int i = 0; i < hd; i++)
        out[i] += a * v[i];
    }
}

/* The reference forward of one token at position pos (the nth of its
 * evaluation, from 0); logits (vocab) may be NULL. */
static gboolean
forward_token (LscSession *s, int token, int pos, int nth, float *logits, LscCancelFunc cancel,
               gpointer cancel_data)
{
  const LscModelConfig *c = &s->c;
  int dim = c->dim, hd = c->head_dim, n_ctx = s->params.n_ctx;
  int kv_dim = c->n_kv_heads * hd;
  gboolean pos_shift = _lsc_kv_pos_shift (s);
  float *x = s->x;

  /* the token's embedding row; RoPE at its position, or at its slot under
   * a position shift (every layer then has as many slots in use) */
  _lsc_embed (s, token, x);
  lsc_rope_cos_sin (s->inv_freq, hd / 2, s->rope_factor, pos_shift ? _lsc_kv_slot0 (s, 0) + nth : pos,
                    s->rope_cos, s->rope_sin);

  for (int l = 0; l < c->n_layers; l++)
    {
      const LscLayer *L = &s->layers[l];
      float *key_cache = s->key_cache + (size_t) l * n_ctx * kv_dim;     /* (n_ctx, kv_dim) */
      float *value_cache = s->value_cache + (size_t) l * n_ctx * kv_dim; /* (n_ctx, kv_dim) */

      if (cancel != NULL && cancel (cancel_data))
        return FALSE;

      /* attention rmsnorm */
      lsc_rmsnorm (s->xb, x, L->attn_norm, dim, (float) c->norm_eps);

      /* q, k, v projections (+ Qwen2 biases), then RoPE at this position */
      lsc_matvec (s->q, s->xb, L->wq.data, L->wq.dtype, dim, L->wq.rows);
      lsc_matvec (s->k, s->xb, L->wk.data, L->wk.dtype, dim, kv_dim);
      lsc_matvec (s->v, s->xb, L->wv.data, L->wv.dtype, dim, kv_dim);
      add_bias (s->q, L->bq, L->wq.rows);
      add_bias (s->k, L->bk, kv_dim);
      add_bias (s->v, L->bv, kv_dim);
      lsc_rope (s->q, c->n_heads, hd, s->rope_cos, s->rope_sin, c->rope_layout);
      if (!pos_shift)
        lsc_rope (s->k, c->n_kv_heads, hd, s->rope_cos, s->rope_sin, c->rope_layout);

      /* keys and values into the cache at the token's slot (its position
       * without a KV policy) */
      int slot = _lsc_kv_slot0 (s, l) + nth;
      memcpy (key_cache + (size_t) slot * kv_dim, s->k, kv_dim * sizeof (float));
      memcpy (value_cache + (size_t) slot * kv_dim, s->v, kv_dim * sizeof (float));
      _lsc_kv_prepare_keys (s, l, slot + 1);

      /* multi-head attention over positions [first, pos]; query head h reads KV head h / group */
      for (int h = 0; h < c->n_heads; h++)
        _lsc_attend_row (s, l, h, pos, s->q + h * hd, s->xb + h * hd, s->att, s->hidden);
      _lsc_kv_fold_sums (s, l, slot + 1);

      /* output projection and residual */
      lsc_matvec (s->xb2, s->xb, L->wo.data, L->wo.dtype, L->wo.cols, dim);
      for (int i = 0; i < dim; i++)
        x[i] += s->xb2[i];

      /* ffn rmsnorm, SwiGLU MLP: down(silu(gate(x)) * up(x)), residual */
      lsc_rmsnorm (s->xb, x, L->ffn_norm, dim, (float) c->norm_eps);
      lsc_matvec (s->hb, s->xb, L->w_gate.data, L->w_gate.dtype, dim, c->hidden_dim);
      lsc_matvec (s->hb2, s->xb, L->w_up.data, L->w_up.dtype, dim, c->hidden_dim);
      lsc_swiglu (s->hb, s->hb, s->hb2, c->hidden_dim);
      lsc_matvec (s->xb2, s->hb, L->w_down.data, L->w_down.dtype, c->hidden_dim, dim);
      for (int i = 0; i < dim; i++)
        x[i] += s->xb2[i];
    }

  /* final rmsnorm and the classifier (tied to the embedding when there is no output matrix) */
  if (logits != NULL)
    {
      lsc_rmsnorm (s->xb, x, s->output_norm, dim, (float) c->norm_eps);
      lsc_matvec (logits, s->xb, s->output.data, s->output.dtype, dim, s->output.rows);
    }
  return TRUE;
}

gboolean
lsc_session_eval (LscSession *s, const gint32 *tokens, int n, float *logits, gboolean all_logits,
                  LscCancelFunc cancel, gpointer cancel_data, GError **error)
{
  int vocab = s->output.rows;
  int start = s->pos;

  g_return_val_if_fail (n >= 0, FALSE);
  if (n == 0)
    return TRUE;
  if (s->kv != NULL && n > s->params.n_ctx - _lsc_kv_max_len (s))
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CONTEXT_FULL,
                   "%d tokens do not fit: the KV cache holds %d of its %d slots", n,
                   _lsc_kv_max_len (s), s->params.n_ctx);
      return FALSE;
    }
  if (s->kv == NULL && n > s->params.n_ctx - s->pos)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CONTEXT_FULL,
                   "%d tokens do not fit: the session holds %d of %d", n, s->pos, s->params.n_ctx);
      return FALSE;
    }
  for (int i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= s->embd.rows)
      {
        g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_TOKEN,
                     "token %d (at index %d) is outside the model's vocabulary of %d", tokens[i], i,
                     s->embd.rows);
        return FALSE;
      }

  if (s->ssm == NULL)
    _lsc_session_prepare_rope (s, (_lsc_kv_pos_shift (s) ? _lsc_kv_slot0 (s, 0) : s->pos) + n);
  _lsc_kv_begin_eval (s, n);

  gboolean ok;
  if (s->ssm != NULL)
    {
      if (!_lsc_ssm_eval (s, tokens, n, logits, all_logits, cancel, cancel_data, error))
        {
          s->pos = start;
          return FALSE;
        }
      ok = TRUE;
    }
  else if (s->params.reference)
    {
      ok = TRUE;
      for (int i = 0; ok && i < n; i++)
        {
          float *out = NULL;
          if (logits != NULL && (all_logits || i == n - 1))
            out = logits + (all_logits ? (size_t) i * vocab : 0);
          ok = forward_token (s, tokens[i], start + i, i, out, cancel, cancel_data);
        }
    }
  else if (s->cuda != NULL)
    {
      if (!_lsc_session_eval_cuda (s, tokens, n, logits, all_logits, cancel, cancel_data, error))
        {
          s->pos = start;
          return FALSE;
        }
      ok = TRUE;
    }
  else
    ok = _lsc_session_eval_fast (s, tokens, n, logits, all_logits, cancel, cancel_data);

  if (!ok)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED, "cancelled");
      s->pos = start;
      _lsc_kv_cancel_eval (s);
      return FALSE;
    }
  s->pos = start + n;
  _lsc_kv_end_eval (s, n);
  return TRUE;
}
