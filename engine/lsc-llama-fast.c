/* SPDX-License-Identifier: MIT
 *
 * The fast CPU path of the Llama-family forward: the same function as
 * forward_token () in lsc-llama.c, computed for a block of tokens at once.
 *
 *   - prefill (blocks of up to BLOCK_TOKENS tokens): every projection is a
 *     GEMM over the block. The weight rows (output columns) are split
 *     between the threads of ONE OpenMP region (q|k|v and gate|up share a
 *     region). f32 weights: each thread calls single-threaded OpenBLAS on
 *     its share. f16/bf16/q8_0 weights: with AVX-512, the kernel layer's own
 *     GEMM (lsc_fast_gemm_rows ()), which widens the weights as it packs
 *     them; without, a cache-sized tile is widened to f32 just before an
 *     sgemm on it (gemm_xwt_split ());
 *   - attention is blocked: work items of (head, chunk of query rows) over
 *     the threads, each S = Q K^T (GEMM) over the keys the chunk sees, masked
 *     softmax, O = P V (GEMM);
 *   - a few tokens (decode, T <= LSC_FAST_MAX_T) never touch BLAS: the
 *     vectorized row kernel lsc_fast_xwt_rows () reads each weight row once
 *     (widening a chunk at a time), OpenMP across rows, and attention runs
 *     per (token, head) with lsc_fast_attend_one ().
 *
 * Threads: everything is OpenMP; OpenBLAS is set to one thread for the
 * whole evaluation (and given the session's count back after) and only ever
 * called from inside OpenMP regions. Debian's OpenBLAS is the pthreads
 * build: a multi-threaded call from inside an OpenMP region is unsafe, and
 * alternating the two pools was slow on few cores (libgomp's idle workers
 * spin for milliseconds after a region, OpenBLAS's after a GEMM, and each
 * steals the cores the other needs next). Single-threaded GEMMs in one
 * region also let one thread widen a tile while the other multiplies.
 *
 * Widening bf16 into a 128 MiB slab and then calling a multi-threaded sgemm
 * on it (the first scheme) cost ~7 GB of extra memory traffic per 512-token
 * block of a 1B model; widening cache-sized tiles for sgemm still left bf16
 * prefill 3.5 % slower than f32 (every weight is widened, then packed again
 * by sgemm); lsc_fast_gemm_rows () packs once and made it 4 % faster than f32.
 * LSC_CPU_GEMM=openblas in the environment selects the tile + sgemm path
 * on any CPU (lsc_fast_gemm_available ()).
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "lsc-llama-private.h"
#include "lsc-rope.h"

#define BLOCK_TOKENS LSC_FAST_BLOCK_TOKENS   /* tokens per block of the prefill (512) */
#define SLAB_FLOATS (256 << 10)    /* one thread's widened weight tile (1 MiB: its L2) */
#define TILE_COLS 256              /* columns of a widened tile (a multiple of the Q8_0 block) */
#define ATTN_ROWS 64               /* query rows per work item of the block attention */
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
  float *scores;             /* (scores_len): attention rows, see fast_state_get () */
  guint8 *hidden;            /* (n_threads, n_ctx) mask-hook scratch, NULL without a mask hook */
  gsize slab_len;            /* floats in one thread's slab; 0 when every matrix is f32 */
  float *slab;               /* (n_threads, slab_len) widened weight tiles / GEMM scratch */
  float *xpack;              /* (lsc_fast_gemm_packed_floats (cap, widest)) X packed for
                              * lsc_fast_gemm_rows (); NULL: tile + sgemm */
  float *cos, *sin;          /* (cap, head_dim / 2) */
  guint64 bytes;             /* of the buffers above (lsc_session_get_memory ()) */
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
  g_free (f->hidden);
  g_free (f->slab);
  g_free (f->xpack);
  g_free (f->cos);
  g_free (f->sin);
  g_free (f);
}

void
_lsc_session_free_fast (LscSession *s)
{
  g_clear_pointer (&s->fast, fast_state_free);
}

/* TRUE when the classifier and every layer matrix are f32: the prefill
 * then never widens weights. */
static gboolean
model_all_f32 (const LscModel *model)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  static const LscTensorRole roles[] = { LSC_TENSOR_ATTN_Q, LSC_TENSOR_ATTN_K, LSC_TENSOR_ATTN_V,
                                         LSC_TENSOR_ATTN_O, LSC_TENSOR_FFN_GATE, LSC_TENSOR_FFN_UP,
                                         LSC_TENSOR_FFN_DOWN };
  const LscTensor *out = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1);
  if (out == NULL)
    out = lsc_model_get_weight (model, LSC_TENSOR_TOKEN_EMBD, -1);
  if (out != NULL && out->dtype != LSC_DTYPE_F32)
    return FALSE;
  for (int l = 0; l < c->n_layers; l++)
    for (guint i = 0; i < G_N_ELEMENTS (roles); i++)
      {
        const LscTensor *t = lsc_model_get_weight (model, roles[i], l);
        if (t != NULL && t->dtype != LSC_DTYPE_F32)
          return FALSE;
      }
  return TRUE;
}

/* The sizes of the fast state's buffers for evaluations of at most n tokens:
 * one formula for fast_state_get () and the estimate. */
typedef struct {
  int cap;                   /* tokens of the block buffers */
  gsize scores_len;          /* floats */
  gsize hidden_len;          /* bytes, 0 without a mask hook */
  gsize slab_len;            /* floats per thread, 0 when every matrix is f32 */
  gsize xpack_len;           /* floats, 0 without lsc_fast_gemm_rows () */
} FastSizes;

static FastSizes
fast_sizes (const LscModel *model, const LscSessionParams *params, int n)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  int q_dim = c->n_heads * c->head_dim;
  gsize n_ctx = params->n_ctx;
  FastSizes z = { 0 };
  z.cap = MIN (n, BLOCK_TOKENS);
  /* attention rows: the decode's (LSC_FAST_MAX_T, n_heads) against the whole
   * cache, or each thread's (ATTN_ROWS) rows of attention_block () */
  z.scores_len = (gsize) MAX (LSC_FAST_MAX_T * c->n_heads,
                              params->n_threads * MIN (z.cap, ATTN_ROWS)) * n_ctx;
  if (params->hooks.mask_row != NULL)
    z.hidden_len = (gsize) params->n_threads * n_ctx;
  if (z.cap >= WIDEN_MIN_T && !model_all_f32 (model))
    {
      z.slab_len = SLAB_FLOATS;
      if (lsc_fast_gemm_available ())
        {
          int widest = MAX (MAX (c->dim, q_dim), c->hidden_dim);
          z.slab_len = lsc_fast_gemm_scratch_floats (z.cap);
          z.xpack_len = lsc_fast_gemm_packed_floats (z.cap, widest);
        }
    }
  return z;
}

/* Keep in step with fast_state_get () below. */
guint64
_lsc_fast_state_bytes (const LscModel *model, const LscSessionParams *params, int n)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  guint64 q_dim = (guint64) c->n_heads * c->head_dim;
  guint64 kv_dim = (guint64) c->n_kv_heads * c->head_dim;
  FastSizes z = fast_sizes (model, params, n);
  /* x, xb2, xb, q, k, v, hb, hb2, cos, sin: per token */
  guint64 per_token = 2 * (guint64) c->dim + MAX ((guint64) c->dim, q_dim) + q_dim + 2 * kv_dim
                      + 2 * (guint64) c->hidden_dim + 2 * (guint64) (c->head_dim / 2);
  guint64 floats = per_token * z.cap + z.scores_len + (guint64) z.slab_len * params->n_threads
                   + z.xpack_len;
  return floats * sizeof (float) + z.hidden_len;
}

guint64
_lsc_session_fast_bytes (const LscSession *s)
{
  return s->fast != NULL ? s->fast->bytes : 0;
}

static LscFastState *
fast_state_get (LscSession *s, int n)
{
  const LscModelConfig *c = &s->c;
  if (s->fast != NULL && s->fast->cap >= MIN (n, BLOCK_TOKENS))
    return s->fast;
  fast_state_free (s->fast);
  FastSizes z = fast_sizes (s->model, &s->params, n);
  int cap = z.cap;

  int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
  LscFastState *f = g_new0 (LscFastState, 1);
  guint64 *counted = &f->bytes;
  f->cap = cap;
  f->x = LSC_COUNTED_NEW (counted, float, (gsize) cap * c->dim);
  f->xb = LSC_COUNTED_NEW (counted, float, (gsize) cap * MAX (c->dim, q_dim));
  f->xb2 = LSC_COUNTED_NEW (counted, float, (gsize) cap * c->dim);
  f->q = LSC_COUNTED_NEW (counted, float, (gsize) cap * q_dim);
  f->k = LSC_COUNTED_NEW (counted, float, (gsize) cap * kv_dim);
  f->v = LSC_COUNTED_NEW (counted, float, (gsize) cap * kv_dim);
  f->hb = LSC_COUNTED_NEW (counted, float, (gsize) cap * c->hidden_dim);
  f->hb2 = LSC_COUNTED_NEW (counted, float, (gsize) cap * c->hidden_dim);
  f->scores_len = z.scores_len;
  f->scores = LSC_COUNTED_NEW (counted, float, f->scores_len);
  if (z.hidden_len > 0)
    f->hidden = LSC_COUNTED_NEW (counted, guint8, z.hidden_len);
  if (z.slab_len > 0)
    {
      f->slab_len = z.slab_len;
      if (z.xpack_len > 0)
        f->xpack = LSC_COUNTED_NEW (counted, float, z.xpack_len);
      f->slab = LSC_COUNTED_NEW (counted, float, f->slab_len * s->params.n_threads);
    }
  f->cos = LSC_COUNTED_NEW (counted, float, (gsize) cap * (c->head_dim / 2));
  f->sin = LSC_COUNTED_NEW (counted, float, (gsize) cap * (c->head_dim / 2));
  s->fast = f;
  return f;
}

typedef struct {
  float *y;                  /* (T, ldy) */
  int ldy;
  const LscMatrix *w;        /* (d, n) */
} XwtOut;

/* This thread's share [*lo, *hi) of `rows` rows, in whole units. */
static void
thread_share (int rows, int unit, int tid, int nth, int *lo, int *hi)
{
  int n_units = (rows + unit - 1) / unit;
  *lo = MIN (rows, n_units * tid / nth * unit);
  *hi = MIN (rows, n_units * (tid + 1) / nth * unit);
}

/* One thread's share of gemm_xwt_split () with single-threaded OpenBLAS
 * (the caller has set it so). An f32 share is one sgemm straight from the
 * weights. Any other dtype is widened to f32 a tile of (slab_len /
 * TILE_COLS) rows x TILE_COLS columns at a time into the thread's own
 * L2-sized slab and multiplied at once (beta = 1 past the first column
 * tile): the widened floats are read back from cache, not memory. Tall,
 * narrow tiles measured best (1B, bf16, 2 cores: 1024 x 256 > 512 x 512 >
 * 256 x 1024, ~8 %): every sgemm call packs its (T, TILE_COLS) slice of X
 * again, once per tile_rows weight rows. */
static void
xwt_share_sgemm (const XwtOut *o, int n_o, const float *x, int T, int tid, int nth, float *slab,
                 gsize slab_len)
{
  for (int i = 0; i < n_o; i++)
    {
      const LscMatrix *w = o[i].w;
      int n = w->cols, lo, hi;
      thread_share (w->rows, ROW_BLOCK, tid, nth, &lo, &hi);
      if (hi <= lo)
        continue;
      if (w->dtype == LSC_DTYPE_F32)
        {
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, hi - lo, n, 1.0f, x, n,
                       (const float *) w->data + (size_t) lo * n, n, 0.0f, o[i].y + lo, o[i].ldy);
          continue;
        }
      size_t row_bytes = lsc_dtype_row_bytes (w->dtype, n);
      int kc = MIN (n, TILE_COLS);
      int tile_rows = (int) MIN ((gsize) (hi - lo), slab_len / kc);
      for (int r0 = lo; r0 < hi; r0 += tile_rows)
        {
          int rows = MIN (tile_rows, hi - r0);
          for (int k0 = 0; k0 < n; k0 += kc)
            {
              int m = MIN (kc, n - k0);
              const guint8 *src = (const guint8 *) w->data + (size_t) r0 * row_bytes
                                  + lsc_dtype_row_bytes (w->dtype, k0);
              for (int r = 0; r < rows; r++)     /* slab (rows, m) */
                lsc_fast_to_f32 (slab + (size_t) r * m, src + (size_t) r * row_bytes, w->dtype, m);
              cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, T, rows, m, 1.0f, x + k0, n,
                           slab, m, k0 == 0 ? 0.0f : 1.0f, o[i].y + r0, o[i].ldy);
            }
        }
    }
}

/* Y_i (T, W_i.rows) <- X (T, n) W_i^T for n_o matrices of n columns inside
 * ONE OpenMP region: each thread owns a contiguous share of every W_i's rows
 * (output columns) and one thread widens while the other multiplies. With
 * `packed` (some W_i not in f32, and f->xpack) the threads pack X together
 * once, then each runs lsc_fast_gemm_rows () on its rows in whole
 * micro-kernel tiles; else xwt_share_sgemm (). */
static void
gemm_xwt_split (LscSession *s, const XwtOut *o, int n_o, const float *x, int T, gboolean packed)
{
  LscFastState *f = s->fast;
  int n = o[0].w->cols;

#pragma omp parallel num_threads (s->params.n_threads)
  {
    int tid = omp_get_thread_num (), nth = omp_get_num_threads ();
    float *slab = f->slab + (gsize) tid * f->slab_len;    /* (slab_len) */
    if (!packed)
      xwt_share_sgemm (o, n_o, x, T, tid, nth, slab, f->slab_len);
    else
      {
        int n_panels = (T + LSC_FAST_GEMM_PANEL - 1) / LSC_FAST_GEMM_PANEL;
        lsc_fast_gemm_pack_x (f->xpack, x, n, T, n, n_panels * tid / nth,
                              n_panels * (tid + 1) / nth);
#pragma omp barrier
        for (int i = 0; i < n_o; i++)
          {
            int lo, hi;
            thread_share (o[i].w->rows, LSC_FAST_GEMM_ROWS, tid, nth, &lo, &hi);
            if (hi > lo)
              lsc_fast_gemm_rows (o[i].y + lo, o[i].ldy, f->xpack, T, o[i].w->data,
                                  o[i].w->dtype, n, lo, hi - lo, slab);
          }
      }
  }
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

/* Y_i (T, W_i.rows) <- X (T, n) W_i^T for n_w matrices of n columns; ldy[i]
 * is Y_i's row stride. Several matrices at once (q|k|v, gate|up) share one
 * OpenMP region.
 *
 * Few tokens (decode): the row kernel, OpenMP across rows, no BLAS; also
 * below WIDEN_MIN_T tokens for weights not in f32, where widening every row
 * would cost more than reading them T / 8 times. Else gemm_xwt_split (). */
static void
gemm_xwt_group (LscSession *s, float *const *y, const int *ldy, const float *x, int T,
                const LscMatrix *const *w, int n_w)
{
  gboolean f32 = TRUE;
  for (int i = 0; i < n_w; i++)
    f32 = f32 && w[i]->dtype == LSC_DTYPE_F32;
  if (T <= LSC_FAST_MAX_T || (!f32 && (T < WIDEN_MIN_T || s->fast->slab == NULL)))
    {
      for (int i = 0; i < n_w; i++)
        for (int t = 0; t < T; t += LSC_FAST_MAX_T)
          xwt_rows (s, y[i] + (size_t) t * ldy[i], ldy[i], x + (size_t) t * w[i]->cols,
                    MIN (LSC_FAST_MAX_T, T - t), w[i]);
      return;
    }
  XwtOut o[4];
  g_assert (n_w <= (int) G_N_ELEMENTS (o));
  for (int i = 0; i < n_w; i++)
    o[i] = (XwtOut) { y[i], ldy[i], w[i] };
  gemm_xwt_split (s, o, n_w, x, T, !f32 && s->fast->xpack != NULL);
}

/* Y (T, W.rows) <- X (T, W.cols) W^T; ldy is Y's row stride. */
static void
gemm_xwt (LscSession *s, float *y, int ldy, const float *x, int T, const LscMatrix *w)
{
  gemm_xwt_group (s, &y, &ldy, x, T, &w, 1);
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

/* Work items of the attention loops go to threads as they free up, except
 * while a KV policy sums the rows' probabilities per thread: then in a
 * fixed round robin, so that the sums (and the policy's choices) do not
 * depend on timing. */
static void
set_attention_schedule (const LscSession *s)
{
  omp_set_schedule (_lsc_kv_scoring (s) ? omp_sched_static : omp_sched_dynamic, 1);
}

/* Attention of few query rows (T <= LSC_FAST_MAX_T, decode): one work item
 * per (token, head), no BLAS. Rows are at stream positions start .. and in
 * slots slot0 .. (the same without a KV policy). */
static void
attention_rows (LscSession *s, int l, int start, int slot0, int T, float *out)
{
  const LscModelConfig *c = &s->c;
  LscFastState *f = s->fast;
  int hd = c->head_dim, q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
  int group = c->n_heads / c->n_kv_heads, n_ctx = s->params.n_ctx;
  int window = s->layers[l].window;
  float scale = 1.0f / sqrtf ((float) hd);
  const float *key_cache = _lsc_kv_keys (s, l);                             /* (n_ctx, kv_dim) */
  const float *value_cache = s->value_cache + (size_t) l * n_ctx * kv_dim; /* (n_ctx, kv_dim) */

  set_attention_schedule (s);
#pragma omp parallel for num_threads (s->params.n_threads) schedule (runtime)
  for (int th = 0; th < T * c->n_heads; th++)
    {
      int t = th / c->n_heads, h = th % c->n_heads, kvh = h / group;
      int pos = start + t, slot = slot0 + t;
      int first = window > 0 ? MAX (0, slot - window + 1) : 0;
      const float *q = f->q + (size_t) t * q_dim + h * hd;
      float *o = out + (size_t) t * q_dim + h * hd;
      float *att = f->scores + (size_t) th * n_ctx;
      if (f->hidden != NULL || _lsc_kv_fixes_rows (s))
        {
          /* a mask hook or LM-Infinite's mask: the reference row, which applies them */
          _lsc_attend_row (s, l, h, pos, q, o, att,
                           f->hidden != NULL ? f->hidden + (gsize) omp_get_thread_num () * n_ctx
                                             : NULL);
          continue;
        }
      float row_scale = scale;
      if (s->params.hooks.scale != NULL)
        row_scale *= s->params.hooks.scale (s->params.hooks.data, l, h, pos);
      float lse = lsc_fast_attend_one (o, att, q, key_cache + (size_t) first * kv_dim + kvh * hd,
                                       value_cache + (size_t) first * kv_dim + kvh * hd,
                                       slot - first + 1, hd, kv_dim, row_scale);
      if (_lsc_attention_wants (s->attention, l, pos))
        {
          lse = _lsc_attention_refine_lse (q, key_cache + (size_t) first * kv_dim + kvh * hd, kv_dim,
                                           hd, att, slot - first + 1, row_scale, lse);
          _lsc_attention_put (s->attention, l, h, pos, q, lse, row_scale);
        }
      _lsc_kv_row_query (s, h, pos, q, omp_get_thread_num ());
      float *sums = _lsc_kv_row_sums (s, h, pos, omp_get_thread_num ());
      if (sums != NULL)
        for (int j = first; j <= slot; j++)
          sums[j] += att[j - first];
    }
}

/* Attention of the block's T query rows (positions start .. start + T - 1)
 * for one layer, written to out (T, q_dim), in one OpenMP region whose
 * threads call single-threaded OpenBLAS. A work item is one head and a chunk
 * of rc query rows: S = Q K^T over the keys the chunk can see (GEMM), mask and
 * softmax each row, O = P V (GEMM). Chunking the rows skips the keys past the
 * chunk's last position (about half of S on a first block) and keeps each
 * thread's scores (rc, n_keys) small, in cache. */
static gboolean
attention_block (LscSession *s, int l, int start, int slot0, int T, float *out,
                 LscCancelFunc cancel, gpointer cancel_data)
{
  const LscModelConfig *c = &s->c;
  LscFastState *f = s->fast;
  int hd = c->head_dim, q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
  int group = c->n_heads / c->n_kv_heads, nt = s->params.n_threads;
  int window = s->layers[l].window;
  float scale = 1.0f / sqrtf ((float) hd);
  const float *key_cache = _lsc_kv_keys (s, l);
  const float *value_cache = s->value_cache + (size_t) l * s->params.n_ctx * kv_dim;

  if (cancel != NULL && cancel (cancel_data))
    return FALSE;

  /* keys are indexed by slot; a row's slot is its position without a KV policy */
  int rc = MIN (T, ATTN_ROWS);      /* query rows per chunk */
  int n_chunks = (T + rc - 1) / rc;
  int max_keys = slot0 + T;         /* scores of a thread: (rc, max_keys), fits (fast_state_get) */

  set_attention_schedule (s);
#pragma omp parallel for num_threads (nt) schedule (runtime)
  for (int item = 0; item < c->n_heads * n_chunks; item++)
    {
      /* the last chunks have the most keys: hand them out first */
      int h = item % c->n_heads, t0 = (n_chunks - 1 - item / c->n_heads) * rc;
      int rows = MIN (rc, T - t0);
      float *scores = f->scores + (gsize) omp_get_thread_num () * rc * max_keys;
      /* keys [lo, hi) are visible to at least one row of the chunk */
      int hi = slot0 + t0 + rows;
      int lo = window > 0 ? MAX (0, slot0 + t0 - window + 1) : 0;
      int n_keys = hi - lo;
      const float *kh = key_cache + (size_t) lo * kv_dim + (h / group) * hd;
      const float *vh = value_cache + (size_t) lo * kv_dim + (h / group) * hd;

      /* S (rows, n_keys) = Q_h K_h^T * scale */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_keys, hd, scale,
                   f->q + (size_t) t0 * q_dim + h * hd, q_dim, kh, kv_dim, 0.0f, scores, n_keys);
      /* causal (and window) mask, hooks, softmax per row; captured rows keep
       * their query and normaliser */
      guint8 *hidden = f->hidden != NULL ? f->hidden + (gsize) omp_get_thread_num () * s->params.n_ctx
                                         : NULL;
      for (int t = 0; t < rows; t++)
        {
          int pos = start + t0 + t, slot = slot0 + t0 + t;
          int first = window > 0 ? MAX (0, slot - window + 1) : 0;
          float *row = scores + (size_t) t * n_keys;
          float row_scale = scale;
          if (s->params.hooks.scale != NULL)
            {
              float temp = s->params.hooks.scale (s->params.hooks.data, l, h, pos);
              row_scale *= temp;
              for (int j = first - lo; j <= slot - lo; j++)
                row[j] *= temp;
            }
          /* LM-Infinite's Λ mask (lo is 0 under a KV policy) */
          _lsc_kv_fix_row (s, l, h, pos, slot, f->q + (size_t) (t0 + t) * q_dim + h * hd, row,
                           row_scale, omp_get_thread_num ());
          if (hidden != NULL)
            {
              memset (hidden, 0, (size_t) pos + 1);
              s->params.hooks.mask_row (s->params.hooks.data, l, h, pos, hidden);
              for (int j = first; j <= pos; j++)
                if (hidden[j])
                  row[j - lo] = -INFINITY;
            }
          for (int j = 0; j < first - lo; j++)
            row[j] = 0.0f;
          float lse = lsc_softmax_lse (row + (first - lo), slot - first + 1);
          for (int j = slot + 1 - lo; j < n_keys; j++)
            row[j] = 0.0f;
          if (_lsc_attention_wants (s->attention, l, pos))
            {
              const float *q = f->q + (size_t) (t0 + t) * q_dim + h * hd;
              lse = _lsc_attention_refine_lse (q, kh + (size_t) (first - lo) * kv_dim, kv_dim, hd,
                                               row + (first - lo), slot - first + 1, row_scale, lse);
              _lsc_attention_put (s->attention, l, h, pos, q, lse, row_scale);
            }
          _lsc_kv_row_query (s, h, pos, f->q + (size_t) (t0 + t) * q_dim + h * hd,
                             omp_get_thread_num ());
          float *sums = _lsc_kv_row_sums (s, h, pos, omp_get_thread_num ());
          if (sums != NULL)
            for (int j = first; j <= slot; j++)
              sums[j] += row[j - lo];
        }
      /* O_h (rows, hd) = P V_h */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, n_keys, 1.0f, scores,
                   n_keys, vh, kv_dim, 0.0f, out + (size_t) t0 * q_dim + h * hd, q_dim);
    }
  return TRUE;
}

/* One block of T tokens at positions start .. start + T - 1, the done-th
 * and on of their evaluation. */
static gboolean
forward_block (LscSession *s, const gint32 *tokens, int start, int done, int T, float *logits,
               gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data)
{
  const LscModelConfig *c = &s->c;
  LscFastState *f = s->fast;
  int dim = c->dim, hd = c->head_dim, half = hd / 2, nt = s->params.n_threads;
  int q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd, hidden = c->hidden_dim;

  /* RoPE at the tokens' positions, or at their slots under a position
   * shift (every layer then has as many slots in use) */
  gboolean pos_shift = _lsc_kv_pos_shift (s);
  int rope0 = pos_shift ? _lsc_kv_slot0 (s, 0) + done : start;
  for (int t = 0; t < T; t++)
    {
      _lsc_embed (s, tokens[t], f->x + (size_t) t * dim);
      lsc_rope_cos_sin (s->inv_freq, half, s->rope_factor, rope0 + t, f->cos + (size_t) t * half,
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

      /* biases, RoPE, and keys and values into the cache at the tokens'
       * slots (their positions without a KV policy) */
      int slot0 = _lsc_kv_slot0 (s, l) + done;
      float *key_cache = s->key_cache + (size_t) l * s->params.n_ctx * kv_dim;
      float *value_cache = s->value_cache + (size_t) l * s->params.n_ctx * kv_dim;
#pragma omp parallel for num_threads (nt) schedule (static)
      for (int t = 0; t < T; t++)
        {
          const float *cs = f->cos + (size_t) t * half, *sn = f->sin + (size_t) t * half;
          float *qt = f->q + (size_t) t * q_dim;
          float *kc = key_cache + (size_t) (slot0 + t) * kv_dim;
          float *vc = value_cache + (size_t) (slot0 + t) * kv_dim;
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
          if (!pos_shift)
            lsc_rope (kc, c->n_kv_heads, hd, cs, sn, c->rope_layout);
        }
      _lsc_kv_prepare_keys (s, l, slot0 + T);

      if (T <= LSC_FAST_MAX_T)
        attention_rows (s, l, start, slot0, T, f->xb);
      else if (!attention_block (s, l, start, slot0, T, f->xb, cancel, cancel_data))
        return FALSE;
      _lsc_kv_fold_sums (s, l, slot0 + T);

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
  fast_state_get (s, n);
  /* every BLAS call of this path runs inside an OpenMP region (see the top):
   * single-threaded OpenBLAS, set once per evaluation, not per GEMM; decode
   * (n <= LSC_FAST_MAX_T) calls no BLAS at all */
  gboolean blas = n > LSC_FAST_MAX_T;
  if (blas)
    openblas_set_num_threads (1);

  gboolean ok = TRUE;
  for (int done = 0; ok && done < n; done += BLOCK_TOKENS)
    {
      int T = MIN (BLOCK_TOKENS, n - done);
      ok = forward_block (s, tokens + done, s->pos + done, done, T,
                          _lsc_block_logits (s, logits, all_logits, done, T, n), all_logits, cancel,
                          cancel_data);
    }
  if (blas)   /* for the other users of OpenBLAS in this process */
    openblas_set_num_threads (s->params.n_threads);
  return ok;
}
