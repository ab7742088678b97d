/* SPDX-License-Identifier: MIT
 *
 * The CUDA path of the Mamba-1/2 forward: lsc-mamba.c's function on one GPU,
 * with the kernels of kernels/cuda/ (lsc-cuda.h).
 *
 *   - the projections are uploaded once per session in their stored dtype
 *     (f32, f16 or bf16), the layer's vectors (norms, convolution, Δ bias,
 *     A, D) as the host widened them;
 *   - the recurrent state (the last K - 1 convolution inputs and the scan
 *     state of every layer, in the host's layout) lives on the device, with
 *     a copy taken before every evaluation (one that is cancelled or meets
 *     a device error part way through the layers goes back to it);
 *   - the prompt runs in blocks of up to LSC_CUDA_BLOCK_TOKENS tokens: per
 *     layer a norm, the GEMMs, the convolution, Δ, the scan (and Mamba-2's
 *     gated norm);
 *   - Δ, when recorded or filtered (LongMamba), is copied to the host after
 *     each layer and goes through the CPU's own hook, then back.
 *
 * Until the `cuda` suite has run these kernels on a device, `auto` leaves
 * Mamba on the CPU (the note says why) and only an explicit `cuda` runs them.
 */
#include "config.h"

#include <string.h>

#include "lsc-error.h"
#include "lsc-llama-private.h"

/* Set once tests/test-cuda.c's Mamba tests have passed on a GPU. */
#define SSM_CUDA_CHECKED FALSE

/* The layer matrices of Mamba-1 and Mamba-2 (x_proj and dt_proj are Mamba-1's). */
static const LscTensorRole ssm_matrices[] = { LSC_TENSOR_SSM_IN, LSC_TENSOR_SSM_X,
                                              LSC_TENSOR_SSM_DT, LSC_TENSOR_SSM_OUT };

char *
_lsc_ssm_cuda_unsupported_reason (const LscModel *model, const LscSessionParams *params)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  if (params->backend == LSC_BACKEND_AUTO && !SSM_CUDA_CHECKED)
    return g_strdup_printf ("the CUDA kernels for %s have not been checked on a device yet "
                            "(the cuda backend, asked for by name, runs them)",
                            lsc_arch_name (c->arch));
  if (c->ssm_d_state > 256)
    return g_strdup_printf ("d_state %d (the CUDA scan takes up to 256 states)", c->ssm_d_state);
  return _lsc_cuda_weights_reason (model, ssm_matrices, G_N_ELEMENTS (ssm_matrices));
}

#if LSC_HAVE_CUDA

#include "lsc-cuda-private.h"

#define TRY LSC_GPU_TRY

/* Device copies of an LscSsmLayer. */
typedef struct {
  float *norm, *conv_w, *conv_b, *dt_bias, *A, *D, *gated_norm;
  LscMatrix in_proj, x_proj, dt_proj, out_proj;
} SsmCudaLayer;

struct _LscSsmCuda {
  LscSsmShape sh;
  SsmCudaLayer *layers;   /* host array (n_layers) */
  gsize state_floats;
  float *state;           /* (n_layers, K - 1, n_conv) conv inputs, then (n_layers, E, N) */
  float *backup;          /* (state_floats) the state before the evaluation */
  float *proj;            /* (cap, n_in) */
  float *u;               /* (cap, n_conv) after the convolution */
  float *xdb;             /* (cap, R + 2N) Mamba-1's δ | B | C; NULL for Mamba-2 */
  float *dt;              /* (cap, H) */
  float *y;               /* (cap, E) */
  float *out;             /* (cap, dim) */
  float *host_dt;         /* pinned host (cap, H) when Δ is recorded or filtered, else NULL */
  guint8 *kept;           /* host (cap, H) the filter's scratch, with host_dt */
};

static gboolean
hooked (const LscSessionParams *params)
{
  return params->ssm_capture.enabled || params->ssm_filter.enabled;
}

static gboolean
upload_matrix (LscCudaState *g, LscMatrix *dst, const LscMatrix *src, GError **error)
{
  const LscMatrix *parts[] = { src };
  return _lsc_cuda_upload_matrix (g, dst, parts, 1, error);
}

static gboolean
upload_layer (LscSession *s, LscCudaState *g, int l, GError **error)
{
  const LscSsmShape *sh = &g->ssm->sh;
  const LscSsmLayer *L = _lsc_ssm_get_layer (s, l);
  SsmCudaLayer *G = &g->ssm->layers[l];
  if (!upload_matrix (g, &G->in_proj, &L->in_proj, error)
      || !upload_matrix (g, &G->out_proj, &L->out_proj, error)
      || !_lsc_cuda_upload_floats (g, &G->norm, L->norm, s->c.dim, error)
      || !_lsc_cuda_upload_floats (g, &G->conv_w, L->conv_w, (size_t) sh->n_conv * sh->K, error)
      || (L->conv_b != NULL
          && !_lsc_cuda_upload_floats (g, &G->conv_b, L->conv_b, sh->n_conv, error))
      || !_lsc_cuda_upload_floats (g, &G->dt_bias, L->dt_bias, sh->H, error)
      || !_lsc_cuda_upload_floats (g, &G->A, L->A, sh->m2 ? (size_t) sh->H : (size_t) sh->E * sh->N,
                                   error)
      || !_lsc_cuda_upload_floats (g, &G->D, L->D, sh->H, error))
    return FALSE;
  if (sh->m2)
    return _lsc_cuda_upload_floats (g, &G->gated_norm, L->gated_norm, sh->E, error);
  return upload_matrix (g, &G->x_proj, &L->x_proj, error)
         && upload_matrix (g, &G->dt_proj, &L->dt_proj, error);
}

gboolean
_lsc_ssm_cuda_upload (LscSession *s, LscCudaState *g, GError **error)
{
  const LscModelConfig *c = &s->c;
  LscSsmCuda *m = g->ssm = g_new0 (LscSsmCuda, 1);
  const LscSsmShape *sh = &m->sh;
  _lsc_ssm_shape (c, &m->sh);

  if (!_lsc_cuda_upload_head (s, g, error))
    return FALSE;
  m->layers = g_new0 (SsmCudaLayer, c->n_layers);
  for (int l = 0; l < c->n_layers; l++)
    if (!upload_layer (s, g, l, error))
      return FALSE;

  m->state_floats = _lsc_ssm_state_bytes (c) / sizeof (float);
  if (!_lsc_cuda_upload_floats (g, &m->state, NULL, m->state_floats, error)
      || !_lsc_cuda_upload_floats (g, &m->backup, NULL, m->state_floats, error))
    return FALSE;
  TRY (lsc_cuda_zero (g->ctx, m->state, m->state_floats * sizeof (float)),
       "clearing the state");

  /* the block buffers */
  int cap = g->cap = MIN (s->params.n_ctx, LSC_CUDA_BLOCK_TOKENS);
  TRY (lsc_cuda_alloc (g->ctx, (void **) &g->tokens, cap * sizeof (int32_t)),
       "allocating device buffers");
  TRY (lsc_cuda_alloc (g->ctx, &g->x_half, lsc_cuda_gemm_scratch_bytes (cap, sh->widest)),
       "allocating device buffers");
  if (!_lsc_cuda_upload_floats (g, &g->x, NULL, (size_t) cap * c->dim, error)
      || !_lsc_cuda_upload_floats (g, &g->xb, NULL, (size_t) cap * c->dim, error)
      || !_lsc_cuda_upload_floats (g, &g->logits, NULL,
                                   (size_t) MIN (cap, LSC_CUDA_LOGIT_ROWS) * s->output.rows, error)
      || !_lsc_cuda_upload_floats (g, &m->proj, NULL, (size_t) cap * sh->n_in, error)
      || !_lsc_cuda_upload_floats (g, &m->u, NULL, (size_t) cap * sh->n_conv, error)
      || (!sh->m2
          && !_lsc_cuda_upload_floats (g, &m->xdb, NULL, (size_t) cap * (sh->R + 2 * sh->N),
                                       error))
      || !_lsc_cuda_upload_floats (g, &m->dt, NULL, (size_t) cap * sh->H, error)
      || !_lsc_cuda_upload_floats (g, &m->y, NULL, (size_t) cap * sh->E, error)
      || !_lsc_cuda_upload_floats (g, &m->out, NULL, (size_t) cap * c->dim, error))
    return FALSE;
  if (hooked (&s->params))
    {
      size_t bytes = (size_t) cap * sh->H * sizeof (float);
      TRY (lsc_cuda_host_alloc (g->ctx, (void **) &m->host_dt, bytes),
           "allocating pinned host memory");
      m->kept = LSC_COUNTED_NEW (&g->host_bytes, guint8, (size_t) cap * sh->H);
      g->host_bytes += bytes;
    }
  return TRUE;
}

/* Keep in step with _lsc_ssm_cuda_upload (): every lsc_cuda_alloc () counts
 * toward the context's peak. */
void
_lsc_ssm_cuda_memory (const LscModel *model, const LscSessionParams *params,
                      guint64 *device_bytes, guint64 *host_bytes)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  LscSsmShape sh;
  _lsc_ssm_shape (c, &sh);

  guint64 dev = _lsc_cuda_head_bytes (model);
  guint64 floats = 0;
  for (int l = 0; l < c->n_layers; l++)
    {
      for (guint i = 0; i < G_N_ELEMENTS (ssm_matrices); i++)
        {
          const LscTensor *t = lsc_model_get_weight (model, ssm_matrices[i], l);
          dev += t != NULL ? t->n_bytes : 0;   /* x_proj, dt_proj: Mamba-1's */
        }
      gboolean bias = lsc_model_get_weight (model, LSC_TENSOR_SSM_CONV1D_BIAS, l) != NULL;
      floats += c->dim + (guint64) sh.n_conv * sh.K + (bias ? sh.n_conv : 0) + sh.H
                + (sh.m2 ? (guint64) sh.H : (guint64) sh.E * sh.N) + sh.H + (sh.m2 ? sh.E : 0);
    }
  floats += 2 * (_lsc_ssm_state_bytes (c) / sizeof (float));   /* the state and its copy */

  guint64 cap = MIN (params->n_ctx, LSC_CUDA_BLOCK_TOKENS);
  const LscTensor *out = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1);
  if (out == NULL)
    out = lsc_model_get_weight (model, LSC_TENSOR_TOKEN_EMBD, -1);
  guint64 vocab = out != NULL ? out->shape[0] : 0;
  dev += cap * sizeof (int32_t) + lsc_cuda_gemm_scratch_bytes ((int) cap, sh.widest);
  floats += cap * c->dim * 2 + MIN (cap, LSC_CUDA_LOGIT_ROWS) * vocab + cap * sh.n_in
            + cap * sh.n_conv + (sh.m2 ? 0 : cap * (sh.R + 2 * sh.N)) + cap * sh.H + cap * sh.E
            + cap * c->dim;
  *device_bytes = dev + floats * sizeof (float);
  *host_bytes = hooked (params) ? cap * sh.H * (sizeof (float) + 1) : 0;
}

void
_lsc_ssm_cuda_free (LscCudaState *g)
{
  lsc_cuda_host_free (g->ctx, g->ssm->host_dt);
  g_free (g->ssm->kept);
  g_free (g->ssm->layers);
  g_clear_pointer (&g->ssm, g_free);
}

gboolean
_lsc_ssm_cuda_state (LscSession *s, LscSsmStateOp op, GError **error)
{
  LscCudaState *g = s->cuda;
  LscSsmCuda *m = g->ssm;
  size_t bytes = m->state_floats * sizeof (float);
  switch (op)
    {
    case LSC_SSM_STATE_SAVE:
      TRY (lsc_cuda_copy (g->ctx, m->backup, m->state, bytes), "saving the state");
      break;
    case LSC_SSM_STATE_RESTORE:
      TRY (lsc_cuda_copy (g->ctx, m->state, m->backup, bytes), "restoring the state");
      break;
    case LSC_SSM_STATE_ZERO:
      TRY (lsc_cuda_zero (g->ctx, m->state, bytes), "clearing the state");
      break;
    }
  return TRUE;
}

/* Δ (T, H) of layer l through the host's hook: recorded, and when filtered,
 * copied back. */
static gboolean
hook_dt (LscSession *s, int l, int start, int T, GError **error)
{
  LscCudaState *g = s->cuda;
  LscSsmCuda *m = g->ssm;
  size_t bytes = (size_t) T * m->sh.H * sizeof (float);
  TRY (lsc_cuda_download (g->ctx, m->host_dt, m->dt, bytes), "copying Δ");
  if (_lsc_ssm_dt_hook (s, l, start, T, m->host_dt, m->kept))
    TRY (lsc_cuda_upload (g->ctx, m->dt, m->host_dt, bytes), "copying Δ back");
  return TRUE;
}

/* The mixer of layer l on g->xb (T, dim) -> m->y (T, E), before out_proj. */
static gboolean
mixer (LscSession *s, int l, int start, int T, GError **error)
{
  LscCudaState *g = s->cuda;
  LscCudaContext *ctx = g->ctx;
  LscSsmCuda *m = g->ssm;
  const LscSsmShape *sh = &m->sh;
  const SsmCudaLayer *G = &m->layers[l];
  int E = sh->E, N = sh->N, R = sh->R, C = sh->n_conv, n_in = sh->n_in, n_xdb = R + 2 * N;
  float *conv_state = m->state + (size_t) l * (sh->K - 1) * C;
  float *scan_state = m->state + (size_t) s->c.n_layers * (sh->K - 1) * C + (size_t) l * E * N;

  TRY (lsc_cuda_gemm_xwt (ctx, m->proj, n_in, g->xb, s->c.dim, T, G->in_proj.data,
                          G->in_proj.dtype, n_in, s->c.dim, g->x_half), "projecting in");
  /* in_proj columns: Mamba-1 x | z; Mamba-2 z | xBC | dt */
  TRY (lsc_cuda_ssm_conv (ctx, m->u, conv_state, m->proj + (sh->m2 ? E : 0), n_in, T, C, sh->K,
                          G->conv_w, G->conv_b), "convolving");
  if (sh->m2)
    TRY (lsc_cuda_ssm_dt (ctx, m->dt, m->proj + E + C, n_in, T, sh->H, G->dt_bias), "Δ");
  else
    {
      TRY (lsc_cuda_gemm_xwt (ctx, m->xdb, n_xdb, m->u, E, T, G->x_proj.data, G->x_proj.dtype,
                              n_xdb, E, g->x_half), "projecting x");
      TRY (lsc_cuda_gemm_xwt (ctx, m->dt, E, m->xdb, n_xdb, T, G->dt_proj.data, G->dt_proj.dtype,
                              E, R, g->x_half), "projecting Δ");
      TRY (lsc_cuda_ssm_dt (ctx, m->dt, m->dt, E, T, E, G->dt_bias), "Δ");
    }
  if (_lsc_ssm_dt_hooked (s) && !hook_dt (s, l, start, T, error))
    return FALSE;

  LscCudaScan scan = {
    .T = T, .E = E, .N = N, .P = sh->P, .G = sh->G,
    .x = m->u, .ldx = C, .dt = m->dt, .A = G->A,
    .a_head = sh->m2 ? 1 : N, .a_state = sh->m2 ? 0 : 1,
    .B = sh->m2 ? m->u + E : m->xdb + R,
    .C = sh->m2 ? m->u + E + sh->G * N : m->xdb + R + N,
    .ldbc = sh->m2 ? C : n_xdb,
    .D = G->D, .z = sh->m2 ? NULL : m->proj + E, .ldz = n_in,
    .y = m->y, .ldy = E, .state = scan_state,
  };
  TRY (lsc_cuda_ssm_scan (ctx, &scan), "scanning");
  if (sh->m2)
    TRY (lsc_cuda_ssm_gated_norm (ctx, m->y, m->proj, n_in, G->gated_norm, T, E, sh->G,
                                  s->c.norm_eps), "normalising");
  return TRUE;
}

gboolean
_lsc_ssm_forward_cuda (LscSession *s, const gint32 *tokens, int start, int T, float *logits,
                       gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data,
                       GError **error)
{
  LscCudaState *g = s->cuda;
  LscSsmCuda *m = g->ssm;
  int dim = s->c.dim;

  if (!_lsc_cuda_embed_block (s, tokens, T, error))
    return FALSE;
  const float *pending = NULL;   /* (T, dim) the last layer's output, not yet added to x */
  for (int l = 0; l < s->c.n_layers; l++)
    {
      const SsmCudaLayer *G = &m->layers[l];
      if (cancel != NULL && cancel (cancel_data))
        {
          g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED, "cancelled");
          return FALSE;
        }
      TRY (lsc_cuda_rmsnorm (g->ctx, g->xb, g->x, pending, G->norm, T, dim,
                             (float) s->c.norm_eps), "normalising");
      if (!mixer (s, l, start, T, error))
        return FALSE;
      TRY (lsc_cuda_gemm_xwt (g->ctx, m->out, dim, m->y, m->sh.E, T, G->out_proj.data,
                              G->out_proj.dtype, dim, m->sh.E, g->x_half), "projecting out");
      pending = m->out;
    }
  return _lsc_cuda_block_logits (s, pending, T, logits, all_logits, error);
}

#else /* !LSC_HAVE_CUDA: no session has a GPU state */

gboolean
_lsc_ssm_forward_cuda (G_GNUC_UNUSED LscSession *s, G_GNUC_UNUSED const gint32 *tokens,
                       G_GNUC_UNUSED int start, G_GNUC_UNUSED int T, G_GNUC_UNUSED float *logits,
                       G_GNUC_UNUSED gboolean all_logits, G_GNUC_UNUSED LscCancelFunc cancel,
                       G_GNUC_UNUSED gpointer cancel_data, G_GNUC_UNUSED GError **error)
{
  g_assert_not_reached ();
  return FALSE;
}

gboolean
_lsc_ssm_cuda_state (G_GNUC_UNUSED LscSession *s, G_GNUC_UNUSED LscSsmStateOp op,
                     G_GNUC_UNUSED GError **error)
{
  g_assert_not_reached ();
  return FALSE;
}

#endif /* LSC_HAVE_CUDA */
