/* SPDX-License-Identifier: MIT
 *
 * The CUDA path of the Llama-family forward: the same function as the CPU
 * paths (lsc-llama.c, lsc-llama-fast.c), computed on one GPU with the
 * kernels of kernels/cuda/ (lsc-cuda.h).
 *
 *   - weights are uploaded once per session, in their stored dtype (f32,
 *     f16 or bf16); q|k|v and gate|up are concatenated so that each is one
 *     cuBLAS GEMM;
 *   - the KV cache lives on the device; the prompt runs in blocks of up to
 *     BLOCK_TOKENS tokens, each layer a handful of GEMMs and small kernels
 *     plus one fused attention kernel;
 *   - RoPE cos/sin are computed on the host in double (lsc_rope_cos_sin ()),
 *     as on the CPU, and uploaded per block;
 *   - a scale hook (plugins' temperatures) is asked on the host for every
 *     layer, head and row of a block, and its multipliers uploaded once per
 *     block; the attention kernel scales each row's logits by them;
 *   - capture: the attention kernel also writes each row's normaliser,
 *     refined to double-precision logits, and the layer's queries, normalisers
 *     and keys (and with a scale hook each row's logit scale) are copied into
 *     the host capture store after each layer, so tiles, pyramids and
 *     statistics (lsc-attention.c) read it as they read the CPU's; with
 *     its maps' buffers (lsc-attention-cuda.c) the session computes them
 *     on the device from its own keys.
 *
 * What the GPU path does not run (q8_0 weights, attention mask hooks, KV
 * policies, head_dim > 128, the reference path) stays on the CPU:
 * _lsc_session_init_cuda () says why in the session's backend note.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-llama-private.h"
#include "lsc-rope.h"
#if LSC_HAVE_CUDA
#include "lsc-cuda.h"
#endif

/* Set once tests/test-cuda.c's scale-hook cases have passed on a GPU; until
 * then `auto` runs a session with a logit-scale hook on the CPU (as
 * lsc-mamba-cuda.c does for Mamba). */
#define SCALE_HOOK_CHECKED FALSE

/* The weight dtypes the GPU path computes with. */
static gboolean
cuda_dtype (LscDType dtype)
{
  return dtype == LSC_DTYPE_F32 || dtype == LSC_DTYPE_F16 || dtype == LSC_DTYPE_BF16;
}

char *
_lsc_cuda_weights_reason (const LscModel *model, const LscTensorRole *roles, int n_roles)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  const LscTensor *any[] = { lsc_model_get_weight (model, LSC_TENSOR_TOKEN_EMBD, -1),
                             lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1) };
  for (guint i = 0; i < G_N_ELEMENTS (any); i++)
    if (any[i] != NULL && !cuda_dtype (any[i]->dtype))
      return g_strdup_printf ("%s weights (the CUDA backend computes F32, F16 and BF16)",
                              lsc_dtype_name (any[i]->dtype));
  for (int l = 0; l < c->n_layers; l++)
    for (int i = 0; i < n_roles; i++)
      {
        const LscTensor *t = lsc_model_get_weight (model, roles[i], l);
        if (t != NULL && !cuda_dtype (t->dtype))
          return g_strdup_printf ("%s weights in layer %d (the CUDA backend computes F32, F16 "
                                  "and BF16)", lsc_dtype_name (t->dtype), l);
      }
  return NULL;
}

/* Why the GPU path cannot run `model` with `params`, or NULL when it can. */
char *
_lsc_cuda_unsupported_reason (const LscModel *model, const LscSessionParams *params)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  if (params->reference)
    return g_strdup ("the reference path runs on the CPU");
  if (lsc_arch_is_ssm (c->arch))
    return _lsc_ssm_cuda_unsupported_reason (model, params);
  if (params->hooks.mask_row != NULL)
    return g_strdup ("attention mask hooks run on the CPU");
  if (params->hooks.scale != NULL && params->backend == LSC_BACKEND_AUTO && !SCALE_HOOK_CHECKED)
    return g_strdup ("the CUDA attention kernel's logit scales (plugins) have not been checked on "
                     "a device yet (the cuda backend, asked for by name, runs them)");
  if (params->kv_policy.kind != LSC_KV_FULL)
    return g_strdup_printf ("the %s KV policy runs on the CPU",
                            lsc_kv_policy_name (params->kv_policy.kind));
  if (c->head_dim > 128 || c->head_dim % 2 != 0)
    return g_strdup_printf ("head_dim %d (the CUDA attention kernel takes even sizes up to 128)",
                            c->head_dim);
#if LSC_HAVE_CUDA
  /* a GPU whose blocks get too little shared memory for this head size's
   * attention tiles (a T4 at head_dim 128) */
  size_t allowed = 0, tiles = lsc_cuda_attention_shared_bytes (c->head_dim);
  if (lsc_cuda_device_shared_optin (0, &allowed) == LSC_STATUS_OK && tiles > allowed)
    return g_strdup_printf ("attention of head_dim %d needs %zu KiB of shared memory per block, "
                            "and the GPU allows %zu KiB", c->head_dim, tiles >> 10,
                            allowed >> 10);
#endif
  static const LscTensorRole roles[] = { LSC_TENSOR_ATTN_Q, LSC_TENSOR_ATTN_K, LSC_TENSOR_ATTN_V,
                                         LSC_TENSOR_ATTN_O, LSC_TENSOR_FFN_GATE, LSC_TENSOR_FFN_UP,
                                         LSC_TENSOR_FFN_DOWN };
  char *reason = _lsc_cuda_weights_reason (model, roles, G_N_ELEMENTS (roles));
  if (reason != NULL)
    return reason;
  for (int l = 0; l < c->n_layers; l++)
    {
      LscDType dt[G_N_ELEMENTS (roles)];
      for (guint i = 0; i < G_N_ELEMENTS (roles); i++)
        {
          const LscTensor *t = lsc_model_get_weight (model, roles[i], l);
          dt[i] = t != NULL ? t->dtype : LSC_DTYPE_F32;
        }
      if (dt[0] != dt[1] || dt[0] != dt[2] || dt[4] != dt[5])
        return g_strdup_printf ("mixed q/k/v or gate/up dtypes in layer %d", l);
    }
  return NULL;
}

#if LSC_HAVE_CUDA

#include "lsc-cuda-private.h"

#define BLOCK_TOKENS LSC_CUDA_BLOCK_TOKENS   /* tokens per block of the prefill (4096) */
gboolean
_lsc_cuda_fail (GError **error, LscStatus status, const char *what)
{
  if (status == LSC_STATUS_OUT_OF_MEMORY)
    g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_OUT_OF_MEMORY,
                 "CUDA: out of device memory while %s", what);
  else
    g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_DEVICE, "CUDA: %s while %s",
                 lsc_status_to_string (status), what);
  return FALSE;
}

#define TRY LSC_GPU_TRY

gboolean
_lsc_cuda_upload_matrix (LscCudaState *g, LscMatrix *dst, const LscMatrix *const *parts,
                         int n_parts, GError **error)
{
  size_t row_bytes = lsc_dtype_row_bytes (parts[0]->dtype, parts[0]->cols);
  int rows = 0;
  for (int i = 0; i < n_parts; i++)
    rows += parts[i]->rows;
  void *data;
  TRY (lsc_cuda_alloc (g->ctx, &data, row_bytes * rows), "uploading the weights");
  *dst = (LscMatrix) { data, parts[0]->dtype, rows, parts[0]->cols };
  size_t offset = 0;
  for (int i = 0; i < n_parts; i++)
    {
      TRY (lsc_cuda_upload (g->ctx, (guint8 *) data + offset, parts[i]->data,
                            row_bytes * parts[i]->rows), "uploading the weights");
      offset += row_bytes * parts[i]->rows;
    }
  return TRUE;
}

gboolean
_lsc_cuda_upload_floats (LscCudaState *g, float **dst, const float *src, size_t n, GError **error)
{
  TRY (lsc_cuda_alloc (g->ctx, (void **) dst, n * sizeof (float)),
       src != NULL ? "uploading the weights" : "allocating device buffers");
  if (src != NULL)
    TRY (lsc_cuda_upload (g->ctx, *dst, src, n * sizeof (float)), "uploading the weights");
  return TRUE;
}

static gboolean
alloc_floats (LscCudaState *g, float **dst, size_t n, GError **error)
{
  return _lsc_cuda_upload_floats (g, dst, NULL, n, error);
}

gboolean
_lsc_cuda_upload_head (LscSession *s, LscCudaState *g, GError **error)
{
  const LscMatrix *embd[] = { &s->embd };
  if (!_lsc_cuda_upload_matrix (g, &g->embd, embd, 1, error))
    return FALSE;
  g->output = g->embd;
  if (s->output.data != s->embd.data)
    {
      const LscMatrix *out[] = { &s->output };
      if (!_lsc_cuda_upload_matrix (g, &g->output, out, 1, error))
        return FALSE;
    }
  return _lsc_cuda_upload_floats (g, &g->output_norm, s->output_norm, s->c.dim, error);
}

guint64
_lsc_cuda_head_bytes (const LscModel *model)
{
  const LscTensor *embd = lsc_model_get_weight (model, LSC_TENSOR_TOKEN_EMBD, -1);
  const LscTensor *output = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1);
  return (embd != NULL ? embd->n_bytes : 0) + (output != NULL ? output->n_bytes : 0)
         + (guint64) lsc_model_get_config (model)->dim * sizeof (float);
}

static gboolean
upload_model (LscSession *s, LscCudaState *g, GError **error)
{
  const LscModelConfig *c = &s->c;
  int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;

  if (!_lsc_cuda_upload_head (s, g, error))
    return FALSE;
  g->layers = g_new0 (LscCudaLayer, c->n_layers);
  g_autofree float *bias = g_new (float, q_dim + 2 * kv_dim);
  for (int l = 0; l < c->n_layers; l++)
    {
      const LscLayer *L = &s->layers[l];
      LscCudaLayer *G = &g->layers[l];
      const LscMatrix *qkv[] = { &L->wq, &L->wk, &L->wv };
      const LscMatrix *gu[] = { &L->w_gate, &L->w_up };
      const LscMatrix *wo[] = { &L->wo };
      const LscMatrix *wdown[] = { &L->w_down };
      if (!_lsc_cuda_upload_matrix (g, &G->wqkv, qkv, 3, error)
          || !_lsc_cuda_upload_matrix (g, &G->wo, wo, 1, error)
          || !_lsc_cuda_upload_matrix (g, &G->wgu, gu, 2, error)
          || !_lsc_cuda_upload_matrix (g, &G->wdown, wdown, 1, error)
          || !_lsc_cuda_upload_floats (g, &G->attn_norm, L->attn_norm, c->dim, error)
          || !_lsc_cuda_upload_floats (g, &G->ffn_norm, L->ffn_norm, c->dim, error))
        return FALSE;
      if (L->bq != NULL || L->bk != NULL || L->bv != NULL)
        {
          memset (bias, 0, (q_dim + 2 * kv_dim) * sizeof (float));
          if (L->bq != NULL)
            memcpy (bias, L->bq, q_dim * sizeof (float));
          if (L->bk != NULL)
            memcpy (bias + q_dim, L->bk, kv_dim * sizeof (float));
          if (L->bv != NULL)
            memcpy (bias + q_dim + kv_dim, L->bv, kv_dim * sizeof (float));
          if (!_lsc_cuda_upload_floats (g, &G->bqkv, bias, q_dim + 2 * kv_dim, error))
            return FALSE;
        }
    }

  size_t cache = (size_t) c->n_layers * s->params.n_ctx * kv_dim;
  return alloc_floats (g, &g->key_cache, cache, error)
         && alloc_floats (g, &g->value_cache, cache, error);
}

static gboolean
alloc_blocks (LscSession *s, LscCudaState *g, int cap, GError **error)
{
  const LscModelConfig *c = &s->c;
  int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
  int widest = MAX (MAX (c->dim, q_dim), c->hidden_dim);

  g->cap = cap;
  TRY (lsc_cuda_alloc (g->ctx, (void **) &g->tokens, cap * sizeof (int32_t)),
       "allocating device buffers");
  TRY (lsc_cuda_alloc (g->ctx, &g->x_half, lsc_cuda_gemm_scratch_bytes (cap, widest)),
       "allocating device buffers");
  TRY (lsc_cuda_alloc (g->ctx, &g->attn_work,
                       lsc_cuda_attention_workspace (MIN (cap, 4), c->n_heads, c->head_dim,
                                                     s->params.n_ctx)),
       "allocating device buffers");
  g->host_cs = LSC_COUNTED_NEW (&g->host_bytes, float, (size_t) cap * c->head_dim);
  if (s->params.hooks.scale != NULL)
    {
      size_t n = (size_t) c->n_layers * c->n_heads * cap;
      g->host_scale = LSC_COUNTED_NEW (&g->host_bytes, float, n);
      if (!alloc_floats (g, &g->row_scale, n, error))
        return FALSE;
    }
  if (s->attention != NULL)
    {
      size_t bytes = (size_t) cap * MAX (q_dim, kv_dim) * sizeof (float);
      TRY (lsc_cuda_host_alloc (g->ctx, (void **) &g->staging, bytes),
           "allocating pinned host memory");
      g->host_bytes += bytes;
    }
  return alloc_floats (g, &g->cs, (size_t) cap * c->head_dim, error)
         && alloc_floats (g, &g->x, (size_t) cap * c->dim, error)
         && alloc_floats (g, &g->xb, (size_t) cap * MAX (c->dim, q_dim), error)
         && alloc_floats (g, &g->xb2, (size_t) cap * c->dim, error)
         && alloc_floats (g, &g->qkv, (size_t) cap * (q_dim + 2 * kv_dim), error)
         && alloc_floats (g, &g->gu, (size_t) cap * 2 * c->hidden_dim, error)
         && alloc_floats (g, &g->hb, (size_t) cap * c->hidden_dim, error)
         && alloc_floats (g, &g->lse, (size_t) c->n_heads * cap, error)
         && alloc_floats (g, &g->logits,
                          (size_t) MIN (cap, LSC_CUDA_LOGIT_ROWS) * s->output.rows, error)
         && _lsc_cuda_maps_alloc (s, g, error);
}

static void
cuda_state_free (LscCudaState *g)
{
  if (g == NULL)
    return;
  lsc_cuda_host_free (g->ctx, g->staging);
  _lsc_cuda_maps_free (g);
  if (g->ssm != NULL)
    _lsc_ssm_cuda_free (g);
  /* the context frees every device allocation it still holds */
  lsc_cuda_context_free (g->ctx);
  g_free (g->layers);
  g_free (g->host_cs);
  g_free (g->host_scale);
  g_free (g);
}

void
_lsc_session_free_cuda (LscSession *s)
{
  g_clear_pointer (&s->cuda, cuda_state_free);
}

gboolean
_lsc_session_init_cuda (LscSession *s, GError **error)
{
  /* no device: an error when CUDA was asked for by name; then what the GPU
   * path does not run: the CPU, with a note */
  int n_devices = 0;
  LscStatus st = lsc_cuda_device_count (&n_devices);
  LscCudaState *g = NULL;
  g_autofree char *reason = _lsc_cuda_unsupported_reason (s->model, &s->params);
  if (st == LSC_STATUS_OK && reason == NULL)
    {
      g = g_new0 (LscCudaState, 1);
      st = lsc_cuda_context_new (&g->ctx, 0, g->device);
      if (st != LSC_STATUS_OK)
        g_clear_pointer (&g, g_free);
    }
  if (st != LSC_STATUS_OK)
    {
      const char *why = st == LSC_STATUS_NO_DEVICE ? lsc_cuda_unavailable_reason ()
                                                   : lsc_status_to_string (st);
      if (s->params.backend == LSC_BACKEND_CUDA)
        {
          g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                       "the CUDA backend was asked for, but %s", why);
          return FALSE;
        }
      s->backend_note = g_strdup (why);
      return TRUE;
    }
  if (reason != NULL)
    {
      s->backend_note = g_steal_pointer (&reason);
      return TRUE;
    }
  s->cuda = g;
  /* a session the GPU cannot hold stops here, saying by how much, before
   * an upload runs out of memory part way (auto too: the CPU would run a
   * model this size far slower than the user chose a GPU for) */
  guint64 need = 0, host = 0;
  size_t free_bytes = 0;
  if (_lsc_cuda_memory (s->model, &s->params, &need, &host)
      && lsc_cuda_mem_info (g->ctx, &free_bytes, NULL, NULL) == LSC_STATUS_OK && need > free_bytes)
    {
      g_autofree char *need_s = g_format_size_full (need, G_FORMAT_SIZE_IEC_UNITS);
      g_autofree char *free_s = g_format_size_full (free_bytes, G_FORMAT_SIZE_IEC_UNITS);
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_OUT_OF_MEMORY,
                   "%s: the session needs %s of device memory for a context of %d tokens, and "
                   "%s is free: shorten the context or run on the CPU", g->device, need_s,
                   s->params.n_ctx, free_s);
      _lsc_session_free_cuda (s);
      return FALSE;
    }
  int cap = MIN (s->params.n_ctx, BLOCK_TOKENS);
  if (s->ssm != NULL ? !_lsc_ssm_cuda_upload (s, g, error)
                     : !upload_model (s, g, error) || !alloc_blocks (s, g, cap, error))
    {
      g_prefix_error (error, "%s: ", g->device);
      _lsc_session_free_cuda (s);
      return FALSE;
    }
  return TRUE;
}

/* Keep in step with upload_model (), alloc_blocks () and
 * _lsc_session_init_cuda () above: every lsc_cuda_alloc () counts toward the
 * context's peak (lsc_session_get_device_memory ()). */
gboolean
_lsc_cuda_memory (const LscModel *model, const LscSessionParams *params, guint64 *device_bytes,
                  guint64 *host_bytes)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  if (lsc_arch_is_ssm (c->arch))
    {
      _lsc_ssm_cuda_memory (model, params, device_bytes, host_bytes);
      return TRUE;
    }
  guint64 q_dim = (guint64) c->n_heads * c->head_dim;
  guint64 kv_dim = (guint64) c->n_kv_heads * c->head_dim;

  /* weights in their dtype (q|k|v and gate|up stacked: the same bytes), norms
   * in f32, and a layer's biases as one (q_dim + 2 kv_dim) f32 vector */
  const LscTensor *embd = lsc_model_get_weight (model, LSC_TENSOR_TOKEN_EMBD, -1);
  const LscTensor *output = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1);
  guint64 dev = _lsc_cuda_head_bytes (model);
  static const LscTensorRole matrices[] = { LSC_TENSOR_ATTN_Q, LSC_TENSOR_ATTN_K,
                                            LSC_TENSOR_ATTN_V, LSC_TENSOR_ATTN_O,
                                            LSC_TENSOR_FFN_GATE, LSC_TENSOR_FFN_UP,
                                            LSC_TENSOR_FFN_DOWN };
  for (int l = 0; l < c->n_layers; l++)
    {
      for (guint i = 0; i < G_N_ELEMENTS (matrices); i++)
        {
          const LscTensor *t = lsc_model_get_weight (model, matrices[i], l);
          dev += t != NULL ? t->n_bytes : 0;
        }
      dev += 2 * (guint64) c->dim * sizeof (float);
      if (lsc_model_get_weight (model, LSC_TENSOR_ATTN_Q_BIAS, l) != NULL
          || lsc_model_get_weight (model, LSC_TENSOR_ATTN_K_BIAS, l) != NULL
          || lsc_model_get_weight (model, LSC_TENSOR_ATTN_V_BIAS, l) != NULL)
        dev += (q_dim + 2 * kv_dim) * sizeof (float);
    }
  /* the KV cache */
  dev += 2 * (guint64) c->n_layers * params->n_ctx * kv_dim * sizeof (float);
  /* the block buffers */
  guint64 cap = MIN (params->n_ctx, BLOCK_TOKENS);
  guint64 widest = MAX (MAX ((guint64) c->dim, q_dim), (guint64) c->hidden_dim);
  guint64 vocab = output != NULL ? output->shape[0] : embd != NULL ? embd->shape[0] : 0;
  dev += cap * sizeof (int32_t) + lsc_cuda_gemm_scratch_bytes ((int) cap, (int) widest)
         + lsc_cuda_attention_workspace ((int) MIN (cap, 4), c->n_heads, c->head_dim,
                                         params->n_ctx);
  guint64 floats = cap * c->head_dim + cap * c->dim + cap * MAX ((guint64) c->dim, q_dim)
                   + cap * c->dim + cap * (q_dim + 2 * kv_dim) + cap * 2 * c->hidden_dim
                   + cap * c->hidden_dim + (guint64) c->n_heads * cap
                   + MIN (cap, LSC_CUDA_LOGIT_ROWS) * vocab;
  /* the scale hook's multipliers of a block, on both sides */
  guint64 scales = params->hooks.scale != NULL ? (guint64) c->n_layers * c->n_heads * cap : 0;
  *device_bytes = dev + (floats + scales) * sizeof (float) + _lsc_cuda_maps_bytes (model, params);
  *host_bytes = (cap * c->head_dim + scales) * sizeof (float)
                + (params->capture.enabled ? cap * MAX (q_dim, kv_dim) * sizeof (float) : 0);
  return TRUE;
}

guint64
_lsc_session_cuda_host_bytes (const LscSession *s)
{
  return s->cuda != NULL ? s->cuda->host_bytes : 0;
}

/* dst (rows, width floats, dst_stride apart) <- device src (src_stride
 * apart), through the pinned staging buffer: one DMA at the bus's speed,
 * then the threads copy into dst (fresh store pages fault in parallel). */
static gboolean
download_rows (LscSession *s, float *dst, gsize dst_stride, const float *src, gsize src_stride,
               int width, int rows, GError **error)
{
  LscCudaState *g = s->cuda;
  TRY (lsc_cuda_download_2d (g->ctx, g->staging, width * sizeof (float), src,
                             src_stride * sizeof (float), width * sizeof (float), rows),
       "copying captured rows");
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
  for (int r = 0; r < rows; r++)
    memcpy (dst + (gsize) r * dst_stride, g->staging + (gsize) r * width, width * sizeof (float));
  return TRUE;
}

/* Copies what the capture plan wants of layer l's block (rows start ..
 * start + T - 1) into the host store: queries and normalisers of the
 * captured heads (and their rows' logit scales with a scale hook: scale
 * times the hook's multiplier in float, as the CPU paths store them). */
static gboolean
capture_layer (LscSession *s, int l, int start, int T, float scale, GError **error)
{
  LscCudaState *g = s->cuda;
  const LscModelConfig *c = &s->c;
  int hd = c->head_dim, q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
  size_t qkv_dim = q_dim + 2 * kv_dim;

  for (int h = 0; h < c->n_heads; h++)
    {
      float *q, *lse, *row_scale;
      gsize q_stride;
      int row_start, row_cap;
      if (!_lsc_attention_slot (s->attention, l, h, &q, &q_stride, &lse, &row_scale, &row_start,
                                &row_cap))
        continue;
      int r0 = MAX (start, row_start), r1 = MIN (start + T, row_start + row_cap);
      if (r1 <= r0)
        return TRUE;   /* the same rows for every head */
      /* every head captured: the store's rows are the block's query rows,
       * one copy of whole rows for all heads; else this head's rows */
      gboolean all_heads = q_stride == (gsize) q_dim;
      if ((!all_heads || h == 0)
          && !download_rows (s, q + (gsize) (r0 - row_start) * q_stride, q_stride,
                             g->qkv + (size_t) (r0 - start) * qkv_dim + (size_t) h * hd, qkv_dim,
                             all_heads ? q_dim : hd, r1 - r0, error))
        return FALSE;
      /* every head's normalisers are row_cap apart in the store: one copy
       * (a decode step would otherwise wait on a copy per head) */
      if ((!all_heads || h == 0)
          && !download_rows (s, lse + (r0 - row_start), row_cap,
                             g->lse + (size_t) h * T + (r0 - start), T, r1 - r0,
                             all_heads ? c->n_heads : 1, error))
        return FALSE;
      if (row_scale != NULL)
        {
          const float *mult = g->host_scale + ((size_t) l * c->n_heads + h) * T;
          for (int r = r0; r < r1; r++)
            row_scale[r - row_start] = scale * mult[r - start];
        }
    }
  return TRUE;
}

/* Layer l's keys of the block into the host KV cache, which host tiles and
 * a saved store read: for every block of a stored layer, since captured
 * rows read the keys of rows that were not captured (a prompt's, when only
 * the generated rows are). */
static gboolean
copy_keys (LscSession *s, int l, int start, int T, GError **error)
{
  int kv_dim = s->c.n_kv_heads * s->c.head_dim;
  size_t at = ((size_t) l * s->params.n_ctx + start) * kv_dim;
  return download_rows (s, s->key_cache + at, kv_dim, s->cuda->key_cache + at, kv_dim, kv_dim, T,
                        error);
}

static gboolean
layer_captured (const LscSession *s, int l, int start, int T)
{
  const LscAttentionStore *a = s->attention;
  if (a == NULL)
    return FALSE;
  for (int pos = start; pos < start + T; pos++)
    if (_lsc_attention_wants (a, l, pos))
      return TRUE;
  return FALSE;
}

gboolean
_lsc_cuda_embed_block (LscSession *s, const gint32 *tokens, int T, GError **error)
{
  LscCudaState *g = s->cuda;
  TRY (lsc_cuda_upload (g->ctx, g->tokens, tokens, T * sizeof (int32_t)), "uploading tokens");
  TRY (lsc_cuda_embed (g->ctx, g->x, g->tokens, T, g->embd.data, g->embd.dtype, s->c.dim),
       "embedding");
  return TRUE;
}

gboolean
_lsc_cuda_block_logits (LscSession *s, const float *pending, int T, float *logits,
                        gboolean all_logits, GError **error)
{
  LscCudaState *g = s->cuda;
  LscCudaContext *ctx = g->ctx;
  int dim = s->c.dim;
  if (logits != NULL)
    {
      /* last residual, final norm and classifier: every row, or just the last */
      int first = all_logits ? 0 : T - 1, vocab = g->output.rows;
      TRY (lsc_cuda_rmsnorm (ctx, g->xb + (size_t) first * dim, g->x + (size_t) first * dim,
                             pending != NULL ? pending + (size_t) first * dim : NULL,
                             g->output_norm, T - first, dim, (float) s->c.norm_eps),
           "normalising");
      for (int r = first; r < T; r += LSC_CUDA_LOGIT_ROWS)
        {
          int rows = MIN (LSC_CUDA_LOGIT_ROWS, T - r);
          TRY (lsc_cuda_gemm_xwt (ctx, g->logits, vocab, g->xb + (size_t) r * dim, dim, rows,
                                  g->output.data, g->output.dtype, vocab, dim, g->x_half),
               "computing logits");
          TRY (lsc_cuda_download (ctx, logits + (size_t) (r - first) * vocab, g->logits,
                                  (size_t) rows * vocab * sizeof (float)), "copying logits");
        }
    }
  TRY (lsc_cuda_sync (ctx), "running the forward pass");
  return TRUE;
}

/* One block of T <= cap tokens at positions start .. start + T - 1. */
static gboolean
forward_block (LscSession *s, const gint32 *tokens, int start, int T, float *logits,
               gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data, GError **error)
{
  LscCudaState *g = s->cuda;
  LscCudaContext *ctx = g->ctx;
  const LscModelConfig *c = &s->c;
  int dim = c->dim, hd = c->head_dim, half = hd / 2, hidden = c->hidden_dim;
  int q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd, qkv_dim = q_dim + 2 * kv_dim;
  int n_ctx = s->params.n_ctx;
  float eps = (float) c->norm_eps, scale = 1.0f / sqrtf ((float) hd);

  /* cos (T, half) then sin (T, half), in one upload */
  float *hcos = g->host_cs, *hsin = g->host_cs + (size_t) T * half;
  for (int t = 0; t < T; t++)
    lsc_rope_cos_sin (s->inv_freq, half, s->rope_factor, start + t, hcos + (size_t) t * half,
                      hsin + (size_t) t * half);
  TRY (lsc_cuda_upload (ctx, g->cs, g->host_cs, (size_t) T * hd * sizeof (float)),
       "uploading RoPE");
  const float *rope_cos = g->cs, *rope_sin = g->cs + (size_t) T * half;
  /* the scale hook's multipliers: layer l's (n_heads, T) at l * n_heads * T */
  const LscAttentionHooks *hooks = &s->params.hooks;
  if (hooks->scale != NULL)
    {
      for (int l = 0; l < c->n_layers; l++)
        for (int h = 0; h < c->n_heads; h++)
          {
            float *dst = g->host_scale + ((size_t) l * c->n_heads + h) * T;
            for (int t = 0; t < T; t++)
              dst[t] = hooks->scale (hooks->data, l, h, start + t);
          }
      TRY (lsc_cuda_upload (ctx, g->row_scale, g->host_scale,
                            (size_t) c->n_layers * c->n_heads * T * sizeof (float)),
           "uploading attention scales");
    }
  if (!_lsc_cuda_embed_block (s, tokens, T, error))
    return FALSE;

  const float *pending = NULL;   /* (T, dim) the last FFN output, not yet added to x */
  for (int l = 0; l < c->n_layers; l++)
    {
      const LscCudaLayer *G = &g->layers[l];
      float *kc = g->key_cache + (size_t) l * n_ctx * kv_dim;
      float *vc = g->value_cache + (size_t) l * n_ctx * kv_dim;
      if (cancel != NULL && cancel (cancel_data))
        {
          g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED, "cancelled");
          return FALSE;
        }

      TRY (lsc_cuda_rmsnorm (ctx, g->xb, g->x, pending, G->attn_norm, T, dim, eps), "normalising");
      TRY (lsc_cuda_gemm_xwt (ctx, g->qkv, qkv_dim, g->xb, dim, T, G->wqkv.data, G->wqkv.dtype,
                              qkv_dim, dim, g->x_half), "projecting q, k and v");
      if (G->bqkv != NULL)
        TRY (lsc_cuda_add_bias (ctx, g->qkv, qkv_dim, G->bqkv, T, qkv_dim), "adding biases");
      TRY (lsc_cuda_rope (ctx, g->qkv, qkv_dim, T, c->n_heads, hd, rope_cos, rope_sin,
                          c->rope_layout), "rotating queries");
      TRY (lsc_cuda_rope (ctx, g->qkv + q_dim, qkv_dim, T, c->n_kv_heads, hd, rope_cos, rope_sin,
                          c->rope_layout), "rotating keys");
      TRY (lsc_cuda_copy_2d (ctx, kc + (size_t) start * kv_dim, kv_dim * sizeof (float),
                             g->qkv + q_dim, qkv_dim * sizeof (float), kv_dim * sizeof (float), T),
           "caching keys");
      TRY (lsc_cuda_copy_2d (ctx, vc + (size_t) start * kv_dim, kv_dim * sizeof (float),
                             g->qkv + q_dim + kv_dim, qkv_dim * sizeof (float),
                             kv_dim * sizeof (float), T), "caching values");

      gboolean captured = layer_captured (s, l, start, T);
      const float *row_scale = g->row_scale != NULL ? g->row_scale + (size_t) l * c->n_heads * T
                                                    : NULL;
      TRY (lsc_cuda_attention (ctx, g->xb, q_dim, captured ? g->lse : NULL, g->qkv, qkv_dim, kc, vc,
                               start, T, c->n_heads, c->n_kv_heads, hd, s->layers[l].window, scale,
                               row_scale, captured, g->attn_work), "attending");
      if (captured && !capture_layer (s, l, start, T, scale, error))
        return FALSE;
      if (_lsc_attention_has_layer (s->attention, l) && !copy_keys (s, l, start, T, error))
        return FALSE;

      TRY (lsc_cuda_gemm_xwt (ctx, g->xb2, dim, g->xb, q_dim, T, G->wo.data, G->wo.dtype, dim,
                              q_dim, g->x_half), "projecting the attention output");
      TRY (lsc_cuda_rmsnorm (ctx, g->xb, g->x, g->xb2, G->ffn_norm, T, dim, eps), "normalising");
      TRY (lsc_cuda_gemm_xwt (ctx, g->gu, 2 * hidden, g->xb, dim, T, G->wgu.data, G->wgu.dtype,
                              2 * hidden, dim, g->x_half), "projecting gate and up");
      TRY (lsc_cuda_swiglu (ctx, g->hb, hidden, g->gu, 2 * hidden, T, hidden), "SwiGLU");
      TRY (lsc_cuda_gemm_xwt (ctx, g->xb2, dim, g->hb, hidden, T, G->wdown.data, G->wdown.dtype,
                              dim, hidden, g->x_half), "projecting down");
      pending = g->xb2;
    }

  return _lsc_cuda_block_logits (s, pending, T, logits, all_logits, error);
}

const char *
lsc_backend_cuda_unavailable (void)
{
  return lsc_cuda_unavailable_reason ();
}

gboolean
lsc_session_get_device_memory (const LscSession *s, guint64 *peak_bytes)
{
  size_t peak = 0;
  if (s->cuda == NULL || lsc_cuda_mem_info (s->cuda->ctx, NULL, NULL, &peak) != LSC_STATUS_OK)
    return FALSE;
  *peak_bytes = peak;
  return TRUE;
}

gboolean
_lsc_session_eval_cuda (LscSession *s, const gint32 *tokens, int n, float *logits,
                        gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data,
                        GError **error)
{
  int cap = s->cuda->cap;
  for (int done = 0; done < n; done += cap)
    {
      int T = MIN (cap, n - done);
      if (!forward_block (s, tokens + done, s->pos + done, T,
                          _lsc_block_logits (s, logits, all_logits, done, T, n), all_logits,
                          cancel, cancel_data, error))
        return FALSE;
    }
  return TRUE;
}

#else /* !LSC_HAVE_CUDA */

gboolean
_lsc_session_init_cuda (LscSession *s, GError **error)
{
  if (s->params.backend == LSC_BACKEND_CUDA)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "the CUDA backend was asked for, but this Longscope was built without CUDA "
                   "(rebuild with nvcc installed, -Dcuda=enabled)");
      return FALSE;
    }
  s->backend_note = g_strdup (lsc_backend_cuda_unavailable ());
  return TRUE;
}

const char *
lsc_backend_cuda_unavailable (void)
{
  return "this Longscope was built without CUDA";
}

gboolean
_lsc_session_eval_cuda (G_GNUC_UNUSED LscSession *s, G_GNUC_UNUSED const gint32 *tokens,
                        G_GNUC_UNUSED int n, G_GNUC_UNUSED float *logits,
                        G_GNUC_UNUSED gboolean all_logits, G_GNUC_UNUSED LscCancelFunc cancel,
                        G_GNUC_UNUSED gpointer cancel_data, G_GNUC_UNUSED GError **error)
{
  g_assert_not_reached ();
  return FALSE;
}

void
_lsc_session_free_cuda (LscSession *s)
{
  g_assert (s->cuda == NULL);
}

gboolean
lsc_session_get_device_memory (G_GNUC_UNUSED const LscSession *s, G_GNUC_UNUSED guint64 *peak_bytes)
{
  return FALSE;
}

gboolean
_lsc_cuda_memory (G_GNUC_UNUSED const LscModel *model,
                  G_GNUC_UNUSED const LscSessionParams *params,
                  G_GNUC_UNUSED guint64 *device_bytes, G_GNUC_UNUSED guint64 *host_bytes)
{
  return FALSE;
}

guint64
_lsc_session_cuda_host_bytes (G_GNUC_UNUSED const LscSession *s)
{
  return 0;
}

#endif /* LSC_HAVE_CUDA */
