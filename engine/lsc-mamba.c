/* SPDX-License-Identifier: MIT
 *
 * The Mamba-1 and Mamba-2 forward passes on the CPU (methods.md 7.1, 7.2).
 *
 * A session of an SSM keeps, per layer, the last K - 1 inputs of the causal
 * convolution and the recurrent state (Mamba-1: (E, N) per channel and state
 * index; Mamba-2: (H, P, N) per head), both float32. Tokens run a block at a
 * time: every projection of the block is one GEMM (cblas_sgemm on f32
 * weights; other dtypes are widened a tile of rows at a time), the
 * convolution and the selective scan run sequentially in time and in
 * parallel over channels (Mamba-1) or heads (Mamba-2). The scan is the plain
 * recurrence, exact and equal to the chunked SSD of the reference code:
 *
 *   Mamba-1  h[e][n] = exp(dt[e] A[e][n]) h[e][n] + dt[e] B[n] x[e]
 *            y[e]    = sum_n h[e][n] C[n] + D[e] x[e],  y *= silu(z[e])
 *   Mamba-2  S[h][p][n] = exp(dt[h] A[h]) S[h][p][n] + dt[h] x[h][p] B[g][n]
 *            y[h][p]    = sum_n S[h][p][n] C[g][n] + D[h] x[h][p]
 *            y = rmsnorm_per_group(y * silu(z)) * w       (mamba_ssm's order)
 *
 * with dt = softplus(dt_raw + dt_bias) and A = -exp(A_log). The reference
 * path (LscSessionParams.reference) runs one token at a time with
 * lsc_matvec () for every projection; the scan code is shared.
 *
 * Δ (dt) of every layer can be recorded (LscSsmCapture) and, for Mamba-2
 * prefills, filtered the way LongMamba does (lsc_ssm_filter): a global
 * head's token whose Δ is at most its threshold gets Δ = 0, which neither
 * decays nor writes the head's state.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-llama-private.h"

#define WIDEN_ROWS 64    /* weight rows widened at once for a non-f32 GEMM */

extern void openblas_set_num_threads (int num_threads);

struct _LscSsmState {
  LscSsmShape sh;
  LscSsmLayer *layers;    /* (n_layers) */

  /* the recurrent state, per layer */
  float *conv_state;      /* (n_layers, K - 1, n_conv): the last K - 1 inputs, oldest first */
  float *ssm_state;       /* (n_layers, E * N) */
  float *backup;          /* (state floats): restored when an evaluation is cancelled */
  gsize state_floats;

  gboolean filtering;      /* this evaluation runs LongMamba's filter */
  guint8 *kept;           /* (cap, H) the filter's decisions of the block */

  /* block buffers, grown on demand */
  int cap;
  float *x, *h, *proj, *u, *xdb, *dt, *y, *out, *slab;
  guint64 buffer_bytes;
};

static gboolean
bad_shape (LscSession *s, const LscTensor *t, gint64 want, GError **error)
{
  if (t != NULL && lsc_tensor_n_elements (t) == want)
    return FALSE;
  g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
               "%s: tensor '%s' has %" G_GINT64_FORMAT " elements; the %s config needs %"
               G_GINT64_FORMAT, lsc_model_get_path (s->model), t != NULL ? t->name : "?",
               t != NULL ? lsc_tensor_n_elements (t) : 0, lsc_arch_name (s->c.arch), want);
  return TRUE;
}

void
_lsc_ssm_shape (const LscModelConfig *c, LscSsmShape *sh)
{
  sh->m2 = c->arch == LSC_ARCH_MAMBA2;
  sh->E = c->ssm_d_inner;
  sh->N = c->ssm_d_state;
  sh->K = c->ssm_d_conv;
  sh->R = c->ssm_dt_rank;
  sh->H = sh->m2 ? c->ssm_n_heads : sh->E;
  sh->P = sh->m2 ? c->ssm_head_dim : 1;
  sh->G = sh->m2 ? c->ssm_n_groups : 1;
  sh->n_conv = sh->m2 ? sh->E + 2 * sh->G * sh->N : sh->E;
  sh->n_in = sh->m2 ? 2 * sh->E + 2 * sh->G * sh->N + sh->H : 2 * sh->E;
  sh->widest = MAX (MAX (c->dim, sh->E), sh->R);
}

float *
_lsc_ssm_widen_a (const LscModel *model, int layer, gint64 n, guint64 *counter)
{
  const LscTensor *a_log = lsc_model_get_weight (model, LSC_TENSOR_SSM_A_LOG, layer);
  const LscTensor *t = a_log != NULL ? a_log
                                     : lsc_model_get_weight (model, LSC_TENSOR_SSM_A, layer);
  if (t == NULL || lsc_tensor_n_elements (t) != n)
    return NULL;
  float *a = _lsc_widen (t, counter);
  for (gint64 i = 0; a_log != NULL && i < n; i++)
    a[i] = -expf (a[i]);
  return a;
}

gboolean
_lsc_ssm_init (LscSession *s, GError **error)
{
  const LscModelConfig *c = &s->c;
  LscSsmState *m = g_new0 (LscSsmState, 1);
  guint64 *counted = &s->scratch_bytes;
  s->ssm = m;

  _lsc_ssm_shape (c, &m->sh);
  const LscSsmShape *sh = &m->sh;

  if (c->ssm_proj_bias)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "%s: use_bias: biases on the in/out projections are not implemented",
                   lsc_model_get_path (s->model));
      return FALSE;
    }

  m->layers = g_new0 (LscSsmLayer, c->n_layers);
  for (int l = 0; l < c->n_layers; l++)
    {
      LscSsmLayer *L = &m->layers[l];
      LscModel *model = s->model;
      const LscTensor *in = lsc_model_get_weight (model, LSC_TENSOR_SSM_IN, l);
      const LscTensor *conv = lsc_model_get_weight (model, LSC_TENSOR_SSM_CONV1D, l);
      const LscTensor *conv_b = lsc_model_get_weight (model, LSC_TENSOR_SSM_CONV1D_BIAS, l);
      const LscTensor *a_log = lsc_model_get_weight (model, LSC_TENSOR_SSM_A_LOG, l);
      const LscTensor *a = a_log != NULL ? a_log
                                         : lsc_model_get_weight (model, LSC_TENSOR_SSM_A, l);
      const LscTensor *d = lsc_model_get_weight (model, LSC_TENSOR_SSM_D, l);
      const LscTensor *dt_b = lsc_model_get_weight (model, LSC_TENSOR_SSM_DT_BIAS, l);
      gint64 n_a = sh->m2 ? sh->H : (gint64) sh->E * sh->N;

      /* Mamba-2 checkpoints with an MLP split of in_proj (d_mlp > 0) are not read */
      if (bad_shape (s, in, (gint64) sh->n_in * c->dim, error)
          || bad_shape (s, conv, (gint64) sh->n_conv * sh->K, error)
          || (conv_b != NULL && bad_shape (s, conv_b, sh->n_conv, error))
          || bad_shape (s, a, n_a, error) || bad_shape (s, d, sh->H, error)
          || bad_shape (s, dt_b, sh->H, error))
        return FALSE;

      L->norm = _lsc_widen (lsc_model_get_weight (model, LSC_TENSOR_SSM_NORM, l), counted);
      L->in_proj = _lsc_matrix (in);
      L->conv_w = _lsc_widen (conv, counted);
      L->conv_b = _lsc_widen (conv_b, counted);
      L->x_proj = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_SSM_X, l));
      L->dt_proj = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_SSM_DT, l));
      L->dt_bias = _lsc_widen (dt_b, counted);
      L->A = _lsc_ssm_widen_a (model, l, n_a, counted);
      L->D = _lsc_widen (d, counted);
      L->gated_norm = _lsc_widen (lsc_model_get_weight (model, LSC_TENSOR_SSM_GATED_NORM, l),
                                    counted);
      L->out_proj = _lsc_matrix (lsc_model_get_weight (model, LSC_TENSOR_SSM_OUT, l));
    }

  gsize conv_floats = (gsize) c->n_layers * (sh->K - 1) * sh->n_conv;
  gsize ssm_floats = (gsize) c->n_layers * sh->E * sh->N;
  m->state_floats = conv_floats + ssm_floats;
  m->conv_state = g_try_new0 (float, m->state_floats);
  m->backup = g_try_new (float, m->state_floats);
  if (m->conv_state == NULL || m->backup == NULL)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_OUT_OF_MEMORY,
                   "the recurrent state needs %.1f MiB, which could not be allocated",
                   2.0 * m->state_floats * sizeof (float) / 1048576.0);
      return FALSE;
    }
  m->ssm_state = m->conv_state + conv_floats;
  *counted += m->state_floats * sizeof (float);   /* the backup; the state is kv_bytes */

  const LscSsmFilter *f = &s->params.ssm_filter;
  if (f->enabled && (f->threshold == NULL || f->global == NULL || !(f->b >= 0)
                     || f->min_tokens < 0))
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                   "ssm_filter: the filter needs thresholds and global channels of every "
                   "layer, b >= 0 and min_tokens >= 0");
      return FALSE;
    }
  if (s->params.ssm_capture.enabled)
    {
      g_autofree const float **a = g_new (const float *, c->n_layers);
      for (int l = 0; l < c->n_layers; l++)
        a[l] = m->layers[l].A;
      s->ssm_store = _lsc_ssm_store_new (&s->params.ssm_capture, c->n_layers, sh->H,
                                         sh->m2 ? 1 : sh->N, a, error);
      if (s->ssm_store == NULL)
        return FALSE;
    }
  return TRUE;
}

/* Floats of the block buffers for T tokens: ensure_buffers () allocates them. */
static gsize
buffer_floats (const LscModelConfig *c, const LscSsmShape *sh, int T, int n_threads)
{
  return (gsize) T * (3 * (gsize) c->dim + sh->n_in + sh->n_conv + (sh->m2 ? 1 : sh->R + 2 * sh->N)
                      + sh->H + sh->E)
         + (gsize) WIDEN_ROWS * sh->widest * n_threads
         + ((gsize) T * sh->H + sizeof (float) - 1) / sizeof (float);   /* kept, in floats */
}

guint64
_lsc_ssm_session_bytes (const LscModel *model, const LscSessionParams *params, int n)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  static const LscTensorRole vectors[] = { LSC_TENSOR_SSM_NORM, LSC_TENSOR_SSM_CONV1D,
                                           LSC_TENSOR_SSM_CONV1D_BIAS, LSC_TENSOR_SSM_DT_BIAS,
                                           LSC_TENSOR_SSM_A_LOG, LSC_TENSOR_SSM_A,
                                           LSC_TENSOR_SSM_D, LSC_TENSOR_SSM_GATED_NORM };
  const LscTensor *t = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT_NORM, -1);
  guint64 floats = t != NULL ? (guint64) lsc_tensor_n_elements (t) : 0;
  for (int l = 0; l < c->n_layers; l++)
    for (guint i = 0; i < G_N_ELEMENTS (vectors); i++)
      if ((t = lsc_model_get_weight (model, vectors[i], l)) != NULL)
        floats += (guint64) lsc_tensor_n_elements (t);
  guint64 bytes = floats * sizeof (float) + _lsc_ssm_state_bytes (c);   /* + the backup */
  LscSsmShape sh;
  _lsc_ssm_shape (c, &sh);
  if (n > 0)
    bytes += buffer_floats (c, &sh, params->reference ? 1 : MIN (n, LSC_FAST_BLOCK_TOKENS),
                            params->n_threads)
             * sizeof (float);
  return bytes;
}

guint64
_lsc_ssm_state_bytes (const LscModelConfig *c)
{
  gboolean m2 = c->arch == LSC_ARCH_MAMBA2;
  guint64 n_conv = c->ssm_d_inner + (m2 ? 2 * (guint64) c->ssm_n_groups * c->ssm_d_state : 0);
  guint64 per_layer = (guint64) (c->ssm_d_conv - 1) * n_conv
                      + (guint64) c->ssm_d_inner * c->ssm_d_state;
  return per_layer * c->n_layers * sizeof (float);
}

static void
free_buffers (LscSsmState *m)
{
  g_free (m->x);
  g_free (m->h);
  g_free (m->proj);
  g_free (m->u);
  g_free (m->xdb);
  g_free (m->dt);
  g_free (m->y);
  g_free (m->out);
  g_free (m->slab);
  g_free (m->kept);
  m->cap = 0;
  m->buffer_bytes = 0;
}

void
_lsc_ssm_free (LscSession *s)
{
  LscSsmState *m = s->ssm;
  if (m == NULL)
    return;
  for (int l = 0; m->layers != NULL && l < s->c.n_layers; l++)
    {
      LscSsmLayer *L = &m->layers[l];
      g_free (L->norm);
      g_free (L->conv_w);
      g_free (L->conv_b);
      g_free (L->dt_bias);
      g_free (L->A);
      g_free (L->D);
      g_free (L->gated_norm);
    }
  g_free (m->layers);
  g_free (m->conv_state);
  g_free (m->backup);
  free_buffers (m);
  g_clear_pointer (&s->ssm, g_free);
  g_clear_pointer (&s->ssm_store, lsc_ssm_store_free);
}

void
_lsc_ssm_reset (LscSession *s)
{
  memset (s->ssm->conv_state, 0, s->ssm->state_floats * sizeof (float));
  if (s->cuda != NULL)
    _lsc_ssm_cuda_state (s, LSC_SSM_STATE_ZERO, NULL);   /* a failure shows at the next sync */
  if (s->ssm_store != NULL)
    _lsc_ssm_store_set_rows (s->ssm_store, 0);
}

const LscSsmLayer *
_lsc_ssm_get_layer (const LscSession *s, int layer)
{
  return &s->ssm->layers[layer];
}

guint64
_lsc_ssm_buffer_bytes (const LscSession *s)
{
  return s->ssm != NULL ? s->ssm->buffer_bytes : 0;
}

/* The block buffers for T tokens. */
static void
ensure_buffers (LscSession *s, int T)
{
  LscSsmState *m = s->ssm;
  const LscSsmShape *sh = &m->sh;
  const LscModelConfig *c = &s->c;
  if (m->cap >= T)
    return;
  free_buffers (m);
  guint64 *counted = &m->buffer_bytes;
  m->cap = T;
  m->x = LSC_COUNTED_NEW (counted, float, (gsize) T * c->dim);
  m->h = LSC_COUNTED_NEW (counted, float, (gsize) T * c->dim);
  m->proj = LSC_COUNTED_NEW (counted, float, (gsize) T * sh->n_in);
  m->u = LSC_COUNTED_NEW (counted, float, (gsize) T * sh->n_conv);
  m->xdb = LSC_COUNTED_NEW (counted, float, (gsize) T * (sh->m2 ? 1 : sh->R + 2 * sh->N));
  m->dt = LSC_COUNTED_NEW (counted, float, (gsize) T * sh->H);
  m->y = LSC_COUNTED_NEW (counted, float, (gsize) T * sh->E);
  m->out = LSC_COUNTED_NEW (counted, float, (gsize) T * c->dim);
  m->slab = LSC_COUNTED_NEW (counted, float,
                             (gsize) WIDEN_ROWS * sh->widest * s->params.n_threads);
  m->kept = LSC_COUNTED_NEW (counted, guint8, (gsize) T * sh->H);
}

/* Y (T, ldy) <- X (T, W.cols, rows ldx apart) W^T. */
static void
xwt (LscSession *s, float *y, int ldy, const float *x, int ldx, int T, const LscMatrix *w)
{
  LscSsmState *m = s->ssm;
  int n = w->cols;
  if (s->params.reference)
    {
      for (int t = 0; t < T; t++)
        lsc_matvec (y + (size_t) t * ldy, x + (size_t) t * ldx, w->data, w->dtype, n, w->rows);
      return;
    }
  if (T <= LSC_FAST_MAX_T)
    {
      int n_blocks = (w->rows + 15) / 16;
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
      for (int b = 0; b < n_blocks; b++)
        lsc_fast_xwt_rows (y + b * 16, ldy, x, ldx, T, w->data, w->dtype, n, b * 16,
                           MIN (16, w->rows - b * 16));
      return;
    }
  /* the rows split across OpenMP threads, each a single-threaded sgemm (on
   * f32 weights directly, else on tiles of rows widened into its own slab):
   * OpenBLAS's own threads and OpenMP's spinning workers would take turns
   * on the same cores (see lsc-llama-fast.c) */
  size_t row_bytes = lsc_dtype_row_bytes (w->dtype, n);
#pragma omp parallel num_threads (s->params.n_threads)
  {
    int tid = omp_get_thread_num (), nth = omp_get_num_threads ();
    int lo = (int) ((gint64) w->rows * tid / nth), hi = (int) ((gint64) w->rows * (tid + 1) / nth);
    float *slab = m->slab + (gsize) tid * WIDEN_ROWS * m->sh.widest;
    if (w->dtype == LSC_DTYPE_F32 && hi > lo)
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, hi - lo, n, 1.0f, x, ldx,
                   (const float *) w->data + (size_t) lo * n, n, 0.0f, y + lo, ldy);
    else
      for (int r0 = lo; r0 < hi; r0 += WIDEN_ROWS)
        {
          int rows = MIN (WIDEN_ROWS, hi - r0);
          lsc_to_f32 (slab, (const guint8 *) w->data + (size_t) r0 * row_bytes, w->dtype,
                      (size_t) rows * n);
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, rows, n, 1.0f, x, ldx, slab,
                       n, 0.0f, y + r0, ldy);
        }
  }
}

static inline float
silu (float v)
{
  return v / (1.0f + expf (-v));
}

/* torch.nn.functional.softplus (threshold 20) */
static inline float
softplus (float v)
{
  return v > 20.0f ? v : log1pf (expf (v));
}

/* u (T, n_conv) <- silu(causal depthwise conv of the proj columns [col0,
 * col0 + n_conv) with the layer's state), and the state <- the last K - 1
 * inputs. */
static void
conv_block (LscSession *s, int l, int T, int col0)
{
  LscSsmState *m = s->ssm;
  const LscSsmLayer *L = &m->layers[l];
  int K = m->sh.K, C = m->sh.n_conv;
  float *state = m->conv_state + (gsize) l * (K - 1) * C;   /* (K - 1, C) */

#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
  for (int ch = 0; ch < C; ch++)
    {
      const float *w = L->conv_w + (gsize) ch * K;
      const float *in = m->proj + col0 + ch;   /* input i at in[i * n_in] */
      for (int t = 0; t < T; t++)
        {
          float acc = L->conv_b != NULL ? L->conv_b[ch] : 0.0f;
          for (int k = 0; k < K; k++)
            {
              int i = t - (K - 1) + k;   /* < 0: from the state */
              acc += w[k] * (i < 0 ? state[(gsize) (K - 1 + i) * C + ch]
                                   : in[(gsize) i * m->sh.n_in]);
            }
          m->u[(gsize) t * C + ch] = silu (acc);
        }
      /* the state <- the last K - 1 inputs of (state, block) */
      for (int k = 0; k < K - 1; k++)
        {
          int i = T - (K - 1) + k;
          state[(gsize) k * C + ch] = i < 0 ? state[(gsize) (K - 1 + i) * C + ch]
                                            : in[(gsize) i * m->sh.n_in];
        }
    }
}

gboolean
_lsc_ssm_dt_hooked (const LscSession *s)
{
  return s->ssm->filtering || s->ssm_store != NULL;
}

/* Δ (T, H) of layer l for tokens [start, start + T), after softplus: recorded
 * and filtered here. */
gboolean
_lsc_ssm_dt_hook (LscSession *s, int l, int start, int T, float *dt, guint8 *kept)
{
  LscSsmState *m = s->ssm;
  const LscSsmFilter *f = &s->params.ssm_filter;
  int H = m->sh.H;

  if (m->filtering)
    {
      const float *thr = f->threshold + (gsize) l * H;
      const guint8 *global = f->global + (gsize) l * H;
      double b = f->b > 0 ? f->b : 1.0;
      for (gsize i = 0; i < (gsize) T * H; i++)
        kept[i] = !global[i % H] || dt[i] > thr[i % H] * b;
    }
  if (s->ssm_store != NULL)
    _lsc_ssm_store_put (s->ssm_store, l, start, T, dt, m->filtering ? kept : NULL);
  for (gsize i = 0; m->filtering && i < (gsize) T * H; i++)
    if (!kept[i])
      dt[i] = 0.0f;   /* slow_factor 0: no decay, no write */
  return m->filtering;
}

/* Mamba-1 mixer of one layer on h (T, dim) -> y (T, E), before out_proj. */
static void
mixer1 (LscSession *s, int l, int start, int T)
{
  LscSsmState *m = s->ssm;
  const LscSsmLayer *L = &m->layers[l];
  int E = m->sh.E, N = m->sh.N, R = m->sh.R, n_xdb = R + 2 * N;
  float *S = m->ssm_state + (gsize) l * E * N;

  xwt (s, m->proj, m->sh.n_in, m->h, s->c.dim, T, &L->in_proj);   /* x | z */
  conv_block (s, l, T, 0);
  xwt (s, m->xdb, n_xdb, m->u, E, T, &L->x_proj);              /* δ | B | C */
  xwt (s, m->dt, E, m->xdb, n_xdb, T, &L->dt_proj);

#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
  for (int i = 0; i < T * E; i++)
    m->dt[i] = softplus (m->dt[i] + L->dt_bias[i % E]);
  if (_lsc_ssm_dt_hooked (s))
    _lsc_ssm_dt_hook (s, l, start, T, m->dt, m->kept);

  /* the scan of each channel: plain expf on the reference path, a
   * vectorized exp on the fast one */
  void (*scan) (float *, float *, const float *, int, const float *, const float *, int,
                const float *, const float *, int, int)
      = s->params.reference ? lsc_ssm_scan : lsc_fast_ssm_scan;
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
  for (int e = 0; e < E; e++)
    {
      scan (m->y + e, S + (gsize) e * N, L->A + (gsize) e * N, N, m->dt + e, m->u + e, E,
            m->xdb + R, m->xdb + R + N, n_xdb, T);
      for (int t = 0; t < T; t++)
        {
          gsize i = (gsize) t * E + e;
          float z = m->proj[(gsize) t * m->sh.n_in + E + e];
          m->y[i] = (m->y[i] + L->D[e] * m->u[i]) * silu (z);
        }
    }
}

/* Mamba-2 mixer of one layer on h (T, dim) -> y (T, E), before out_proj. */
static void
mixer2 (LscSession *s, int l, int start, int T)
{
  LscSsmState *m = s->ssm;
  const LscSsmLayer *L = &m->layers[l];
  int E = m->sh.E, N = m->sh.N, H = m->sh.H, P = m->sh.P, G = m->sh.G, C = m->sh.n_conv;
  int dt_col = E + C;   /* in_proj columns: z (E) | xBC (C) | dt (H) */
  float *S = m->ssm_state + (gsize) l * E * N;

  xwt (s, m->proj, m->sh.n_in, m->h, s->c.dim, T, &L->in_proj);
  conv_block (s, l, T, E);

  for (int i = 0; i < T * H; i++)
    m->dt[i] = softplus (m->proj[(gsize) (i / H) * m->sh.n_in + dt_col + i % H]
                         + L->dt_bias[i % H]);
  if (_lsc_ssm_dt_hooked (s))
    _lsc_ssm_dt_hook (s, l, start, T, m->dt, m->kept);

#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
  for (int hp = 0; hp < H * P; hp++)
    {
      int h = hp / P, g = h / (H / G);
      float *st = S + (gsize) hp * N;
      for (int t = 0; t < T; t++)
        {
          const float *u = m->u + (gsize) t * C;
          const float *B = u + E + g * N, *Cm = u + E + G * N + g * N;
          float dt = m->dt[(gsize) t * H + h], x = u[hp];
          float decay = expf (dt * L->A[h]);
          float acc = 0.0f;
          for (int n = 0; n < N; n++)
            {
              st[n] = decay * st[n] + dt * x * B[n];
              acc += st[n] * Cm[n];
            }
          m->y[(gsize) t * E + hp] = acc + L->D[h] * x;
        }
    }

  /* gated RMSNorm per group (mamba_ssm): w * rmsnorm(y * silu(z)) */
  int gs = E / G;
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
  for (int tg = 0; tg < T * G; tg++)
    {
      int t = tg / G, g = tg % G;
      float *y = m->y + (gsize) t * E + g * gs;
      const float *z = m->proj + (gsize) t * m->sh.n_in + g * gs;
      double ss = 0.0;
      for (int i = 0; i < gs; i++)
        {
          y[i] *= silu (z[i]);
          ss += (double) y[i] * y[i];
        }
      float r = (float) (1.0 / sqrt (ss / gs + s->c.norm_eps));
      for (int i = 0; i < gs; i++)
        y[i] = y[i] * r * L->gated_norm[g * gs + i];
    }
}

/* Tokens [start, start + T) through every layer; logits (T or 1 rows) may be NULL. */
static gboolean
forward_block (LscSession *s, const gint32 *tokens, int start, int T, float *logits,
               gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data)
{
  LscSsmState *m = s->ssm;
  const LscModelConfig *c = &s->c;
  int dim = c->dim;
  float eps = (float) c->norm_eps;

  ensure_buffers (s, T);
  for (int t = 0; t < T; t++)
    _lsc_embed (s, tokens[t], m->x + (gsize) t * dim);

  for (int l = 0; l < c->n_layers; l++)
    {
      const LscSsmLayer *L = &m->layers[l];
      if (cancel != NULL && cancel (cancel_data))
        return FALSE;
      for (int t = 0; t < T; t++)
        lsc_rmsnorm (m->h + (gsize) t * dim, m->x + (gsize) t * dim, L->norm, dim, eps);
      if (m->sh.m2)
        mixer2 (s, l, start, T);
      else
        mixer1 (s, l, start, T);
      xwt (s, m->out, dim, m->y, m->sh.E, T, &L->out_proj);
      for (gsize i = 0; i < (gsize) T * dim; i++)
        m->x[i] += m->out[i];
    }

  if (logits == NULL)
    return TRUE;
  int first = all_logits ? 0 : T - 1;
  for (int t = first; t < T; t++)
    lsc_rmsnorm (m->h + (gsize) (t - first) * dim, m->x + (gsize) t * dim, s->output_norm, dim,
                 eps);
  xwt (s, logits, s->output.rows, m->h, dim, T - first, &s->output);
  return TRUE;
}

gboolean
_lsc_ssm_eval (LscSession *s, const gint32 *tokens, int n, float *logits, gboolean all_logits,
               LscCancelFunc cancel, gpointer cancel_data, GError **error)
{
  LscSsmState *m = s->ssm;
  gboolean gpu = s->cuda != NULL;
  int block = gpu ? MIN (s->params.n_ctx, LSC_CUDA_BLOCK_TOKENS)
                 : s->params.reference ? 1 : LSC_FAST_BLOCK_TOKENS;

  const LscSsmFilter *f = &s->params.ssm_filter;
  m->filtering = f->enabled && n >= (f->min_tokens > 0 ? f->min_tokens : 3000);
  /* the state to go back to when the call fails part way through the
   * layers (the session keeps its old position): on the CPU only a cancel
   * stops it, on the GPU a device error may too, so there it is always
   * taken (a device-to-device copy, small next to the forward pass) */
  if (gpu && !_lsc_ssm_cuda_state (s, LSC_SSM_STATE_SAVE, error))
    return FALSE;
  if (cancel != NULL && !gpu)
    memcpy (m->backup, m->conv_state, m->state_floats * sizeof (float));
  /* BLAS runs inside OpenMP regions only: single-threaded for this evaluation */
  if (!gpu)
    openblas_set_num_threads (1);
  gboolean ok = TRUE;
  for (int done = 0; ok && done < n; done += block)
    {
      int T = MIN (block, n - done);
      float *out = _lsc_block_logits (s, logits, all_logits, done, T, n);
      if (gpu)
        ok = _lsc_ssm_forward_cuda (s, tokens + done, s->pos + done, T, out, all_logits, cancel,
                                    cancel_data, error);
      else if (!(ok = forward_block (s, tokens + done, s->pos + done, T, out, all_logits, cancel,
                                     cancel_data)))
        g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED, "cancelled");
    }
  if (!gpu)
    openblas_set_num_threads (s->params.n_threads);   /* for other users in this process */
  if (!ok)
    {
      /* the state as it was (a device that failed may fail this too, which
       * the error already says) */
      if (gpu)
        _lsc_ssm_cuda_state (s, LSC_SSM_STATE_RESTORE, NULL);
      if (cancel != NULL && !gpu)
        memcpy (m->conv_state, m->backup, m->state_floats * sizeof (float));
      return FALSE;
    }
  if (s->ssm_store != NULL)
    _lsc_ssm_store_set_rows (s->ssm_store, s->pos + n);
  return TRUE;
}
