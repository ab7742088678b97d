/* SPDX-License-Identifier: MIT
 *
 * The fast CPU path of the Llama-family forward: the same function as
 * forward_token () in lsc-llama.c, computed for a block of tokens at once.
 *
 *   - every projection is one OpenBLAS GEMM over the block (weights stored as
 *     f16/bf16/q8_0 are widened to f32 a slab of rows at a time);
 *   - attention is blocked: per head, S = Q K^T for the block's rows against
 *     the keys they can see (one GEMM), mask and softmax per row (OpenMP),
 *     then O = P V (one GEMM);
 *   - a single token (decode) uses matrix-vector products instead, split
 *     across threads by rows.
 *
 * Debian's OpenBLAS is the pthreads build: it is never called from inside an
 * OpenMP region; it threads itself, with the session's thread count.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "lsc-llama-private.h"
#include "lsc-rope.h"

#define BLOCK_TOKENS 256     /* tokens per block of the prefill */
#define SLAB_ROWS 64         /* weight rows widened to f32 at a time */

extern void openblas_set_num_threads (int num_threads);

struct _LscFastState {
  int cap;                   /* tokens the block buffers hold */
  float *x;                  /* (cap, dim) residual stream */
  float *xb;                 /* (cap, max(dim, q_dim)) */
  float *xb2;                /* (cap, dim) */
  float *q;                  /* (cap, q_dim) */
  float *k, *v;              /* (cap, kv_dim) */
  float *hb, *hb2;           /* (cap, hidden) */
  float *scores;             /* (cap, n_ctx) attention of one head */
  float *slab;               /* (SLAB_ROWS, max_cols) widened weights */
  float *cos, *sin;          /* (cap, head_dim / 2) */
};

static void
fast_state_free (LscFastState *f)
{
  if (f == NULL)
    return;
  g_free (f->x);
  g_free (f->xb);
  g_free (f->xb2);
  g_free (f->q);
  g_free (f->k);
  g_free (f->v);
  g_free (f->hb);
  g_free (f->hb2);
  g_free (f->scores);
  g_free (f->slab);
  g_free (f->cos);
  g_free (f->sin);
  g_free (f);
}

void
_lsc_session_free_fast (LscSession *s)
{
  g_clear_pointer (&s->fast, fast_state_free);
}

static LscFastState *
fast_state_get (LscSession *s, int n)
{
  const LscModelConfig *c = &s->c;
  int cap = MIN (n, BLOCK_TOKENS);
  if (s->fast != NULL && s->fast->cap >= cap)
    return s->fast;
  fast_state_free (s->fast);

  int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
  int max_cols = MAX (MAX (c->dim, q_dim), c->hidden_dim);
  LscFastState *f = g_new0 (LscFastState, 1);
  f->cap = cap;
  f->x = g_new (float, (gsize) cap * c->dim);
  f->xb = g_new (float, (gsize) cap * MAX (c->dim, q_dim));
  f->xb2 = g_new (float, (gsize) cap * c->dim);
  f->q = g_new (float, (gsize) cap * q_dim);
  f->k = g_new (float, (gsize) cap * kv_dim);
  f->v = g_new (float, (gsize) cap * kv_dim);
  f->hb = g_new (float, (gsize) cap * c->hidden_dim);
  f->hb2 = g_new (float, (gsize) cap * c->hidden_dim);
  f->scores = g_new (float, (gsize) cap * s->params.n_ctx);
  f->slab = g_new (float, (gsize) SLAB_ROWS * max_cols);
  f->cos = g_new (float, (gsize) cap * (c->head_dim / 2));
  f->sin = g_new (float, (gsize) cap * (c->head_dim / 2));
  s->fast = f;
  return f;
}

/* Y (T, W.rows) <- X (T, W.cols) W^T; ldy is Y's row stride. */
static void
gemm_xwt (LscSession *s, float *y, int ldy, const float *x, int T, const LscMatrix *w)
{
  int n = w->cols, d = w->rows, nt = s->params.n_threads;

  if (T == 1)
    {
      /* decode: a matrix-vector product, rows split across threads */
      if (w->dtype == LSC_DTYPE_F32)
        cblas_sgemv (CblasRowMajor, CblasNoTrans, d, n, 1.0f, w->data, n, x, 1, 0.0f, y, 1);
      else
        {
#pragma omp parallel for num_threads (nt) schedule (static)
          for (int i = 0; i < d; i++)
            y[i] = lsc_dot_row (w->data, w->dtype, n, i, x);
        }
      return;
    }

  if (w->dtype == LSC_DTYPE_F32)
    {
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, d, n, 1.0f, x, n, w->data, n, 0.0f,
                   y, ldy);
      return;
    }

  size_t row_bytes = lsc_dtype_row_bytes (w->dtype, n);
  float *slab = s->fast->slab;
  for (int r0 = 0; r0 < d; r0 += SLAB_ROWS)
    {
      int rows = MIN (SLAB_ROWS, d - r0);
#pragma omp parallel for num_threads (nt) schedule (static)
      for (int r = 0; r < rows; r++)
        lsc_to_f32 (slab + (size_t) r * n, (const guint8 *) w->data + (size_t) (r0 + r) * row_bytes,
                    w->dtype, n);
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, rows, n, 1.0f, x, n, slab, n, 0.0f,
                   y + r0, ldy);
    }
}

static void
add_bias_rows (float *y, const float *b, int T, int n)
{
  if (b == NULL)
    return;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < n; i++)
      y[(size_t) t * n + i] += b[i];
}

/* Attention of the block's T query rows (positions start .. start + T - 1)
 * for one layer, written to out (T, q_dim). */
static gboolean
attention_block (LscSession *s, int l, int start, int T, float *out, LscCancelFunc cancel,
                 gpointer cancel_data)
{
  const LscModelConfig *c = &s->c;
  LscFastState *f = s->fast;
  int hd = c->head_dim, q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
  int group = c->n_heads / c->n_kv_heads;
  int window = s->layers[l].window;
  float scale = 1.0f / sqrtf ((float) hd);
  const float *key_cache = s->key_cache + (size_t) l * s->params.n_ctx * kv_dim;
  const float *value_cache = s->value_cache + (size_t) l * s->params.n_ctx * kv_dim;

  /* keys [lo, end) are visible to at least one row of the block */
  int end = start + T;
  int lo = window > 0 ? MAX (0, start - window + 1) : 0;
  int n_keys = end - lo;
  float *S = f->scores;   /* (T, n_keys) */

  for (int h = 0; h < c->n_heads; h++)
    {
      int kvh = h / group;
      if (cancel != NULL && cancel (cancel_data))
        return FALSE;

      /* S = Q_h K_h^T * scale */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, n_keys, hd, scale,
                   f->q + h * hd, q_dim, key_cache + (size_t) lo * kv_dim + kvh * hd, kv_dim, 0.0f,
                   S, n_keys);

      /* causal (and window) mask, softmax per row */
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
      for (int t = 0; t < T; t++)
        {
          int pos = start + t;
          int first = window > 0 ? MAX (0, pos - window + 1) : 0;
          float *row = S + (size_t) t * n_keys;
          for (int j = 0; j < first - lo; j++)
            row[j] = 0.0f;
          lsc_softmax (row + (first - lo), pos - first + 1);
          for (int j = pos + 1 - lo; j < n_keys; j++)
            row[j] = 0.0f;
        }

      /* O_h = P V_h */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, n_keys, 1.0f, S, n_keys,
                   value_cache + (size_t) lo * kv_dim + kvh * hd, kv_dim, 0.0f, out + h * hd, q_dim);
    }
  return TRUE;
}

/* One block of T tokens at positions start .. start + T - 1. */
static gboolean
forward_block (LscSession *s, const gint32 *tokens, int start, int T, float *logits,
               gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data)
{
  const LscModelConfig *c = &s->c;
  LscFastState *f = s->fast;
  int dim = c->dim, hd = c->head_dim, half = hd / 2, nt = s->params.n_threads;
  int q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd, hidden = c->hidden_dim;
  float eps = (float) c->norm_eps;

  for (int t = 0; t < T; t++)
    {
      _lsc_embed (s, tokens[t], f->x + (size_t) t * dim);
      lsc_rope_cos_sin (s->inv_freq, half, s->rope_factor, start + t, f->cos + (size_t) t * half,
                        f->sin + (size_t) t * half);
    }

  for (int l = 0; l < c->n_layers; l++)
    {
      const LscLayer *L = &s->layers[l];
      if (cancel != NULL && cancel (cancel_data))
        return FALSE;

#pragma omp parallel for num_threads (nt) schedule (static)
      for (int t = 0; t < T; t++)
        lsc_rmsnorm (f->xb + (size_t) t * dim, f->x + (size_t) t * dim, L->attn_norm, dim, eps);

      gemm_xwt (s, f->q, q_dim, f->xb, T, &L->wq);
      gemm_xwt (s, f->k, kv_dim, f->xb, T, &L->wk);
      gemm_xwt (s, f->v, kv_dim, f->xb, T, &L->wv);
      add_bias_rows (f->q, L->bq, T, q_dim);
      add_bias_rows (f->k, L->bk, T, kv_dim);
      add_bias_rows (f->v, L->bv, T, kv_dim);

      float *key_cache = s->key_cache + (size_t) l * s->params.n_ctx * kv_dim;
      float *value_cache = s->value_cache + (size_t) l * s->params.n_ctx * kv_dim;
#pragma omp parallel for num_threads (nt) schedule (static)
      for (int t = 0; t < T; t++)
        {
          const float *cs = f->cos + (size_t) t * half, *sn = f->sin + (size_t) t * half;
          lsc_rope (f->q + (size_t) t * q_dim, c->n_heads, hd, cs, sn, c->rope_layout);
          lsc_rope (f->k + (size_t) t * kv_dim, c->n_kv_heads, hd, cs, sn, c->rope_layout);
        }
      memcpy (key_cache + (size_t) start * kv_dim, f->k, (size_t) T * kv_dim * sizeof (float));
      memcpy (value_cache + (size_t) start * kv_dim, f->v, (size_t) T * kv_dim * sizeof (float));

      if (!attention_block (s, l, start, T, f->xb, cancel, cancel_data))
        return FALSE;

      gemm_xwt (s, f->xb2, dim, f->xb, T, &L->wo);
      for (size_t i = 0; i < (size_t) T * dim; i++)
        f->x[i] += f->xb2[i];

#pragma omp parallel for num_threads (nt) schedule (static)
      for (int t = 0; t < T; t++)
        lsc_rmsnorm (f->xb + (size_t) t * dim, f->x + (size_t) t * dim, L->ffn_norm, dim, eps);
      gemm_xwt (s, f->hb, hidden, f->xb, T, &L->w_gate);
      gemm_xwt (s, f->hb2, hidden, f->xb, T, &L->w_up);
#pragma omp parallel for num_threads (nt) schedule (static)
      for (int t = 0; t < T; t++)
        lsc_swiglu (f->hb + (size_t) t * hidden, f->hb + (size_t) t * hidden,
                    f->hb2 + (size_t) t * hidden, hidden);
      gemm_xwt (s, f->xb2, dim, f->hb, T, &L->w_down);
      for (size_t i = 0; i < (size_t) T * dim; i++)
        f->x[i] += f->xb2[i];
    }

  if (logits == NULL)
    return TRUE;
  /* final norm and classifier: every row, or just the last */
  int first = all_logits ? 0 : T - 1;
  int rows = T - first;
  for (int t = first; t < T; t++)
    lsc_rmsnorm (f->xb + (size_t) (t - first) * dim, f->x + (size_t) t * dim, s->output_norm, dim,
                 eps);
  gemm_xwt (s, logits, s->output.rows, f->xb, rows, &s->output);
  return TRUE;
}

gboolean
_lsc_session_eval_fast (LscSession *s, const gint32 *tokens, int n, float *logits,
                        gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data)
{
  int vocab = s->output.rows;
  fast_state_get (s, n);
  openblas_set_num_threads (s->params.n_threads);

  for (int done = 0; done < n; done += BLOCK_TOKENS)
    {
      int T = MIN (BLOCK_TOKENS, n - done);
      gboolean last = done + T == n;
      float *out = NULL;
      if (logits != NULL && all_logits)
        out = logits + (size_t) done * vocab;
      else if (logits != NULL && last)
        out = logits;
      if (!forward_block (s, tokens + done, s->pos + done, T, out, all_logits, cancel, cancel_data))
        return FALSE;
    }
  return TRUE;
}
