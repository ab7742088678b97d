/* SPDX-License-Identifier: MIT
 *
 * The fast CPU path of the Llama-family forward: the same function as
 * forward_token () in lsc-llama.c, computed for a block of tokens at once.
 *
 *   - prefill (blocks of up to BLOCK_TOKENS tokens): every projection is one
 *     OpenBLAS GEMM over the block; weights stored as f16/bf16/q8_0 are
 *     widened to f32 into a slab first (q|k|v and gate|up together, so that
 *     one OpenMP region feeds several GEMMs);
 *   - attention is blocked: for a chunk of heads, S = Q K^T per head (GEMM),
 *     one OpenMP region masks and softmaxes every row, then O = P V (GEMM);
 *   - a few tokens (decode, T <= LSC_FAST_MAX_T) never touch BLAS: the
 *     vectorized row kernel lsc_fast_xwt_rows () reads each weight row once
 *     (widening a chunk at a time), OpenMP across rows, and attention runs
 *     per (token, head) with lsc_fast_attend_one ().
 *
 * Threads: Debian's OpenBLAS is the pthreads build, so it is never called
 * from inside an OpenMP region; it threads itself with the session's thread
 * count. The two pools do not share cores well: libgomp's idle workers spin
 * for milliseconds after a region and slow the GEMM that follows, so the
 * prefill keeps OpenMP regions few (fused residual + norm, one region for
 * bias + RoPE + cache, one softmax region per chunk of heads), and decode is
 * OpenMP only.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "lsc-llama-private.h"
#include "lsc-rope.h"

#define BLOCK_TOKENS 512           /* tokens per block of the prefill */
#define SLAB_FLOATS (32 << 20)     /* widened weights at a time (128 MiB): 1B gate + up */
#define SCORES_FLOATS (8 << 20)    /* attention scores of a chunk of heads (32 MiB) */
#define ROW_BLOCK 16               /* weight rows per OpenMP work item of the row kernels */
#define WIDEN_MIN_T 32             /* f16/bf16/q8_0 prefill widens slabs from this many tokens */

extern void openblas_set_num_threads (int num_threads);

struct _LscFastState {
  int cap;                   /* tokens the block buffers hold */
  float *x;                  /* (cap, dim) residual stream */
  float *xb;                 /* (cap, max(dim, q_dim)) */
  float *xb2;                /* (cap, dim) */
  float *q;                  /* (cap, q_dim) */
  float *k, *v;              /* (cap, kv_dim) */
  float *hb, *hb2;           /* (cap, hidden) */
  gsize scores_len;          /* floats in scores */
  float *scores;             /* (scores_len): attention rows of a chunk of heads */
  gsize slab_len;            /* floats in slab; 0 when every matrix is f32 */
  float *slab;               /* (slab_len) widened weights */
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

static gboolean
all_f32 (const LscSession *s)
{
  if (s->output.dtype != LSC_DTYPE_F32)
    return FALSE;
  for (int l = 0; l < s->c.n_layers; l++)
    {
      const LscLayer *L = &s->layers[l];
      const LscMatrix *m[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
      for (guint i = 0; i < G_N_ELEMENTS (m); i++)
        if (m[i]->dtype != LSC_DTYPE_F32)
          return FALSE;
    }
  return TRUE;
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
  gsize n_ctx = s->params.n_ctx;
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
  /* at least one head of the block against the whole cache, and the small-T
   * attention's (LSC_FAST_MAX_T, n_heads) rows; more heads up to SCORES_FLOATS */
  f->scores_len = MAX ((gsize) cap, (gsize) LSC_FAST_MAX_T * c->n_heads) * n_ctx;
  f->scores_len = MAX (f->scores_len, MIN ((gsize) c->n_heads * cap * n_ctx, SCORES_FLOATS));
  f->scores = g_new (float, f->scores_len);
  if (cap >= WIDEN_MIN_T && !all_f32 (s))
    {
      f->slab_len = MAX ((gsize) SLAB_FLOATS, (gsize) 64 * max_cols);
      f->slab = g_new (float, f->slab_len);
    }
  f->cos = g_new (float, (gsize) cap * (c->head_dim / 2));
  f->sin = g_new (float, (gsize) cap * (c->head_dim / 2));
  s->fast = f;
  return f;
}

/* y rows [0, d) for T <= LSC_FAST_MAX_T tokens with the row kernel, every
 * weight row read once, rows split across threads. */
static void
xwt_rows (LscSession *s, float *y, int ldy, const float *x, int T, const LscMatrix *w)
{
  int n_blocks = (w->rows + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
  for (int b = 0; b < n_blocks; b++)
    {
      int r0 = b * ROW_BLOCK;
      lsc_fast_xwt_rows (y + r0, ldy, x, w->cols, T, w->data, w->dtype, w->cols, r0,
                         MIN (ROW_BLOCK, w->rows - r0));
    }
}

/* Y (T, W.rows) <- X (T, W.cols) W^T; ldy is Y's row stride.
 *
 * Few tokens (decode): the row kernel, OpenMP across rows, no BLAS. Many: one
 * OpenBLAS GEMM, over f32 weights directly, else over slabs of rows widened
 * to f32 (OpenMP) just before. OpenBLAS is never called inside an OpenMP
 * region. */
static void
gemm_xwt (LscSession *s, float *y, int ldy, const float *x, int T, const LscMatrix *w)
{
  int n = w->cols, d = w->rows, nt = s->params.n_threads;

  if (T <= LSC_FAST_MAX_T)
    {
      xwt_rows (s, y, ldy, x, T, w);
      return;
    }
  if (w->dtype == LSC_DTYPE_F32)
    {
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, d, n, 1.0f, x, n, w->data, n, 0.0f,
                   y, ldy);
      return;
    }
  if (T < WIDEN_MIN_T || s->fast->slab == NULL)
    {
      /* widening every row would cost more than reading them T / 8 times */
      for (int t = 0; t < T; t += LSC_FAST_MAX_T)
        xwt_rows (s, y + (size_t) t * ldy, ldy, x + (size_t) t * n, MIN (LSC_FAST_MAX_T, T - t),
                  w);
      return;
    }

  size_t row_bytes = lsc_dtype_row_bytes (w->dtype, n);
  float *slab = s->fast->slab;    /* (slab_rows, n) */
  int slab_rows = (int) MIN ((gsize) d, s->fast->slab_len / n);
  for (int r0 = 0; r0 < d; r0 += slab_rows)
    {
      int rows = MIN (slab_rows, d - r0);
      int n_blocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for num_threads (nt) schedule (static)
      for (int b = 0; b < n_blocks; b++)
        {
          int r = b * ROW_BLOCK;
          lsc_fast_to_f32 (slab + (size_t) r * n,
                           (const guint8 *) w->data + (size_t) (r0 + r) * row_bytes, w->dtype,
                           (size_t) MIN (ROW_BLOCK, rows - r) * n);
        }
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, rows, n, 1.0f, x, n, slab, n, 0.0f,
                   y + r0, ldy);
    }
}

/* Y_i (T, W_i.rows) <- X (T, n) W_i^T for n_w matrices of n columns. When
 * they are stored as f16/bf16/q8_0 and fit the slab together, they are
 * widened in one OpenMP region, then each is one GEMM: fewer regions, fewer
 * OpenMP-vs-OpenBLAS hand-overs. Otherwise one gemm_xwt () each. */
static void
gemm_xwt_group (LscSession *s, float *const *y, const int *ldy, const float *x, int T,
                const LscMatrix *const *w, int n_w)
{
  LscFastState *f = s->fast;
  int n = w[0]->cols;
  gsize total = 0;
  gboolean widen = T >= WIDEN_MIN_T && f->slab != NULL;
  for (int i = 0; i < n_w; i++)
    {
      widen = widen && w[i]->dtype != LSC_DTYPE_F32 && w[i]->cols == n;
      total += (gsize) w[i]->rows * n;
    }
  if (!widen || total > f->slab_len)
    {
      for (int i = 0; i < n_w; i++)
        gemm_xwt (s, y[i], ldy[i], x, T, w[i]);
      return;
    }

  /* the slab holds W_0 rows, then W_1 rows, ... (total / n, n) */
  int n_blocks[4] = { 0 }, all_blocks = 0;
  g_assert (n_w <= 4);
  for (int i = 0; i < n_w; i++)
    all_blocks += n_blocks[i] = (w[i]->rows + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
  for (int b = 0; b < all_blocks; b++)
    {
      int i = 0, bb = b;
      gsize base = 0;
      while (bb >= n_blocks[i])
        {
          bb -= n_blocks[i];
          base += (gsize) w[i]->rows * n;
          i++;
        }
      int r = bb * ROW_BLOCK;
      size_t row_bytes = lsc_dtype_row_bytes (w[i]->dtype, n);
      lsc_fast_to_f32 (f->slab + base + (size_t) r * n,
                       (const guint8 *) w[i]->data + (size_t) r * row_bytes, w[i]->dtype,
                       (size_t) MIN (ROW_BLOCK, w[i]->rows - r) * n);
    }
  gsize base = 0;
  for (int i = 0; i < n_w; i++)
    {
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, w[i]->rows, n, 1.0f, x, n,
                   f->slab + base, n, 0.0f, y[i], ldy[i]);
      base += (gsize) w[i]->rows * n;
    }
}

/* x (T, dim) += add (T, dim) when add is not NULL, then out (T, dim) <-
 * rmsnorm(x) * w: one OpenMP region for both. */
static void
residual_norm (LscSession *s, float *out, float *x, const float *add, const float *w, int T)
{
  int dim = s->c.dim;
  float eps = (float) s->c.norm_eps;
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
  for (int t = 0; t < T; t++)
    {
      float *xt = x + (size_t) t * dim;
      if (add != NULL)
        for (int i = 0; i < dim; i++)
          xt[i] += add[(size_t) t * dim + i];
      lsc_rmsnorm (out + (size_t) t * dim, xt, w, dim, eps);
    }
}

/* Attention of few query rows (T <= LSC_FAST_MAX_T, decode): one work item
 * per (token, head), no BLAS. */
static void
attention_rows (LscSession *s, int l, int start, int T, float *out)
{
  const LscModelConfig *c = &s->c;
  LscFastState *f = s->fast;
  int hd = c->head_dim, q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
  int group = c->n_heads / c->n_kv_heads, n_ctx = s->params.n_ctx;
  int window = s->layers[l].window;
  float scale = 1.0f / sqrtf ((float) hd);
  const float *key_cache = s->key_cache + (size_t) l * n_ctx * kv_dim;     /* (n_ctx, kv_dim) */
  const float *value_cache = s->value_cache + (size_t) l * n_ctx * kv_dim; /* (n_ctx, kv_dim) */

#pragma omp parallel for num_threads (s->params.n_threads) schedule (dynamic, 1)
  for (int th = 0; th < T * c->n_heads; th++)
    {
      int t = th / c->n_heads, h = th % c->n_heads, kvh = h / group;
      int pos = start + t;
      int first = window > 0 ? MAX (0, pos - window + 1) : 0;
      lsc_fast_attend_one (out + (size_t) t * q_dim + h * hd, f->scores + (size_t) th * n_ctx,
                           f->q + (size_t) t * q_dim + h * hd,
                           key_cache + (size_t) first * kv_dim + kvh * hd,
                           value_cache + (size_t) first * kv_dim + kvh * hd, pos - first + 1, hd,
                           kv_dim, scale);
    }
}

/* Attention of the block's T query rows (positions start .. start + T - 1)
 * for one layer, written to out (T, q_dim). Heads go in chunks: S = Q K^T
 * per head (GEMM), one OpenMP region masks and softmaxes every row of the
 * chunk, then O = P V per head (GEMM). */
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
  gsize per_head = (gsize) T * n_keys;
  int chunk = (int) MIN ((gsize) c->n_heads, MAX (1, f->scores_len / per_head));

  for (int h0 = 0; h0 < c->n_heads; h0 += chunk)
    {
      int nh = MIN (chunk, c->n_heads - h0);
      if (cancel != NULL && cancel (cancel_data))
        return FALSE;

      /* S_h (T, n_keys) = Q_h K_h^T * scale */
      for (int j = 0; j < nh; j++)
        {
          int h = h0 + j;
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, n_keys, hd, scale,
                       f->q + h * hd, q_dim, key_cache + (size_t) lo * kv_dim + (h / group) * hd,
                       kv_dim, 0.0f, f->scores + j * per_head, n_keys);
        }

      /* causal (and window) mask, softmax per row */
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
      for (int jt = 0; jt < nh * T; jt++)
        {
          int t = jt % T;
          int pos = start + t;
          int first = window > 0 ? MAX (0, pos - window + 1) : 0;
          float *row = f->scores + (size_t) jt * n_keys;
          for (int j = 0; j < first - lo; j++)
            row[j] = 0.0f;
          lsc_softmax (row + (first - lo), pos - first + 1);
          for (int j = pos + 1 - lo; j < n_keys; j++)
            row[j] = 0.0f;
        }

      /* O_h (T, hd) = P_h V_h */
      for (int j = 0; j < nh; j++)
        {
          int h = h0 + j;
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, n_keys, 1.0f,
                       f->scores + j * per_head, n_keys,
                       value_cache + (size_t) lo * kv_dim + (h / group) * hd, kv_dim, 0.0f,
                       out + h * hd, q_dim);
        }
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

  for (int t = 0; t < T; t++)
    {
      _lsc_embed (s, tokens[t], f->x + (size_t) t * dim);
      lsc_rope_cos_sin (s->inv_freq, half, s->rope_factor, start + t, f->cos + (size_t) t * half,
                        f->sin + (size_t) t * half);
    }

  const float *pending = NULL;   /* (T, dim) last FFN output, not yet added to x */
  for (int l = 0; l < c->n_layers; l++)
    {
      const LscLayer *L = &s->layers[l];
      if (cancel != NULL && cancel (cancel_data))
        return FALSE;

      residual_norm (s, f->xb, f->x, pending, L->attn_norm, T);

      {
        float *const y[] = { f->q, f->k, f->v };
        const int ldy[] = { q_dim, kv_dim, kv_dim };
        const LscMatrix *const w[] = { &L->wq, &L->wk, &L->wv };
        gemm_xwt_group (s, y, ldy, f->xb, T, w, 3);
      }

      /* biases, RoPE, and keys and values into the cache at start .. start + T - 1 */
      float *key_cache = s->key_cache + (size_t) l * s->params.n_ctx * kv_dim;
      float *value_cache = s->value_cache + (size_t) l * s->params.n_ctx * kv_dim;
#pragma omp parallel for num_threads (nt) schedule (static)
      for (int t = 0; t < T; t++)
        {
          const float *cs = f->cos + (size_t) t * half, *sn = f->sin + (size_t) t * half;
          float *qt = f->q + (size_t) t * q_dim;
          float *kc = key_cache + (size_t) (start + t) * kv_dim;
          float *vc = value_cache + (size_t) (start + t) * kv_dim;
          memcpy (kc, f->k + (size_t) t * kv_dim, kv_dim * sizeof (float));
          memcpy (vc, f->v + (size_t) t * kv_dim, kv_dim * sizeof (float));
          if (L->bq != NULL)
            for (int i = 0; i < q_dim; i++)
              qt[i] += L->bq[i];
          if (L->bk != NULL)
            for (int i = 0; i < kv_dim; i++)
              kc[i] += L->bk[i];
          if (L->bv != NULL)
            for (int i = 0; i < kv_dim; i++)
              vc[i] += L->bv[i];
          lsc_rope (qt, c->n_heads, hd, cs, sn, c->rope_layout);
          lsc_rope (kc, c->n_kv_heads, hd, cs, sn, c->rope_layout);
        }

      if (T <= LSC_FAST_MAX_T)
        attention_rows (s, l, start, T, f->xb);
      else if (!attention_block (s, l, start, T, f->xb, cancel, cancel_data))
        return FALSE;

      gemm_xwt (s, f->xb2, dim, f->xb, T, &L->wo);

      residual_norm (s, f->xb, f->x, f->xb2, L->ffn_norm, T);
      {
        float *const y[] = { f->hb, f->hb2 };
        const int ldy[] = { hidden, hidden };
        const LscMatrix *const w[] = { &L->w_gate, &L->w_up };
        gemm_xwt_group (s, y, ldy, f->xb, T, w, 2);
      }
#pragma omp parallel for num_threads (nt) schedule (static)
      for (int t = 0; t < T; t++)
        lsc_swiglu (f->hb + (size_t) t * hidden, f->hb + (size_t) t * hidden,
                    f->hb2 + (size_t) t * hidden, hidden);
      gemm_xwt (s, f->xb2, dim, f->hb, T, &L->w_down);
      pending = f->xb2;
    }

  if (logits == NULL)
    {
      for (size_t i = 0; i < (size_t) T * dim; i++)
        f->x[i] += pending[i];
      return TRUE;
    }
  /* last residual, final norm and classifier: every row, or just the last */
  int first = all_logits ? 0 : T - 1;
  int rows = T - first;
  for (size_t i = 0; i < (size_t) first * dim; i++)
    f->x[i] += pending[i];
  residual_norm (s, f->xb, f->x + (size_t) first * dim, pending + (size_t) first * dim,
                 s->output_norm, rows);
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
