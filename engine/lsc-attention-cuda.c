/* SPDX-License-Identifier: MIT
 *
 * Attention maps on the GPU: the tiles and the streaming pass of
 * lsc-attention.c computed where a CUDA session's keys already are.
 *
 * A session that runs on the GPU and captures attention keeps, besides its
 * KV cache, buffers for one head's captured rows (queries, normalisers,
 * scales), its pyramid cells and row statistics, and a block of scores.
 * A tile or a pass uploads the head's rows from the host store (through the
 * pinned staging buffer), computes on the device (lsc-cuda.h's
 * lsc_cuda_attention_tile () and lsc_cuda_attention_pool ()) and downloads
 * the result; lsc-attention.c builds the pyramid's coarser levels and the
 * statistics from it as it does from its own pass. One head at a time: a
 * mutex serialises callers (the GUI recomputes tiles on worker threads).
 *
 * Memory: row_cap (head_dim + 2) floats and 4 row_cap doubles for the rows,
 * 2^18 cells of float max, double sum and 64-bit count, and
 * min(row_cap n_ctx, max(2^25, n_ctx)) floats of scores (128 MiB at most
 * below 32M tokens): 202 MiB for every row of a 128k-token capture of
 * head_dim 128. Counted in the session's device estimate.
 */
#include "config.h"

#include <string.h>

#include "lsc-error.h"
#include "lsc-llama-private.h"

/* Set once tests/test-cuda.c's map tests have passed on a GPU; until then a
 * session on the GPU by `auto` recomputes its maps on the CPU (from the host
 * copy of its keys), one asked for by `cuda` on the GPU. */
#define MAPS_CUDA_CHECKED FALSE

#define SCORE_CAP ((guint64) 1 << 25)   /* floats of scores, unless n_ctx needs more */

#if LSC_HAVE_CUDA

#include "lsc-cuda-private.h"

struct _LscCudaMaps {
  GMutex lock;
  int row_cap;
  float *q;                  /* (row_cap, head_dim) one head's captured queries */
  float *lse, *scale;        /* (row_cap) */
  double *row_stats;         /* (row_cap, 4) */
  float *cell_max;           /* (LSC_PYRAMID_MAX_CELLS) */
  double *cell_sum;
  long long *cell_count;
  float *scores;             /* (score_cap) */
  size_t score_cap;
};

/* Rows the buffers hold and floats of scores, when the session has them. */
static gboolean
maps_shape (const LscModelConfig *c, const LscSessionParams *p, int *row_cap, size_t *score_cap)
{
  LscCaptureLayout lay;
  if (!p->capture.enabled || (!MAPS_CUDA_CHECKED && p->backend != LSC_BACKEND_CUDA)
      || !lsc_attention_plan_layout (&p->capture, c->n_layers, c->n_heads, c->head_dim, p->n_ctx,
                                     p->hooks.scale != NULL, &lay, NULL))
    return FALSE;
  *row_cap = lay.row_cap;
  *score_cap = MIN ((guint64) lay.row_cap * p->n_ctx, MAX (SCORE_CAP, (guint64) p->n_ctx));
  return TRUE;
}

guint64
_lsc_cuda_maps_bytes (const LscModel *model, const LscSessionParams *params)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  int row_cap;
  size_t score_cap;
  if (!maps_shape (c, params, &row_cap, &score_cap))
    return 0;
  return (guint64) row_cap * (c->head_dim + 2) * sizeof (float)
         + (guint64) row_cap * 4 * sizeof (double)
         + (guint64) LSC_PYRAMID_MAX_CELLS * (sizeof (float) + sizeof (double) + sizeof (long long))
         + score_cap * sizeof (float);
}

static gboolean
alloc (LscCudaState *g, void **ptr, size_t bytes, GError **error)
{
  LSC_GPU_TRY (lsc_cuda_alloc (g->ctx, ptr, bytes), "allocating the attention maps' buffers");
  return TRUE;
}

gboolean
_lsc_cuda_maps_alloc (LscSession *s, LscCudaState *g, GError **error)
{
  const LscModelConfig *c = &s->c;
  int row_cap;
  size_t score_cap;
  if (!maps_shape (c, &s->params, &row_cap, &score_cap))
    return TRUE;
  LscCudaMaps *mp = g_new0 (LscCudaMaps, 1);
  g_mutex_init (&mp->lock);
  mp->row_cap = row_cap;
  mp->score_cap = score_cap;
  g->maps = mp;
  size_t cells = LSC_PYRAMID_MAX_CELLS;
  return alloc (g, (void **) &mp->q, (size_t) row_cap * c->head_dim * sizeof (float), error)
         && alloc (g, (void **) &mp->lse, (size_t) row_cap * sizeof (float), error)
         && alloc (g, (void **) &mp->scale, (size_t) row_cap * sizeof (float), error)
         && alloc (g, (void **) &mp->row_stats, (size_t) row_cap * 4 * sizeof (double), error)
         && alloc (g, (void **) &mp->cell_max, cells * sizeof (float), error)
         && alloc (g, (void **) &mp->cell_sum, cells * sizeof (double), error)
         && alloc (g, (void **) &mp->cell_count, cells * sizeof (long long), error)
         && alloc (g, (void **) &mp->scores, score_cap * sizeof (float), error);
}

void
_lsc_cuda_maps_free (LscCudaState *g)
{
  /* the context frees the device buffers */
  if (g->maps == NULL)
    return;
  g_mutex_clear (&g->maps->lock);
  g_clear_pointer (&g->maps, g_free);
}

gboolean
_lsc_cuda_maps_on (const LscSession *s)
{
  return s->cuda != NULL && s->cuda->maps != NULL;
}

/* The device's copy of rows [r0, r0 + n) of the head (queries through the
 * pinned staging buffer, in pieces), and the map that reads it. */
static gboolean
upload_head (const LscSession *s, const LscMapHead *h, int r0, int n, LscCudaMap *m,
             GError **error)
{
  LscCudaState *g = s->cuda;
  LscCudaMaps *mp = g->maps;
  const LscModelConfig *c = &s->c;
  int hd = h->head_dim, kv_dim = c->n_kv_heads * hd;
  int per = g->cap * MAX (c->n_heads * hd, kv_dim) / hd;

  g_return_val_if_fail (n <= mp->row_cap, FALSE);
  for (int r = 0; r < n; r += per)
    {
      int k = MIN (per, n - r);
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static)
      for (int i = 0; i < k; i++)
        memcpy (g->staging + (gsize) i * hd, h->q + (gsize) (r0 + r + i) * h->q_stride,
                hd * sizeof (float));
      LSC_GPU_TRY (lsc_cuda_upload (g->ctx, mp->q + (size_t) r * hd, g->staging,
                                    (size_t) k * hd * sizeof (float)),
                   "copying captured queries to the device");
    }
  LSC_GPU_TRY (lsc_cuda_upload (g->ctx, mp->lse, h->lse + r0, (size_t) n * sizeof (float)),
               "copying captured normalisers to the device");
  if (h->scale != NULL)
    LSC_GPU_TRY (lsc_cuda_upload (g->ctx, mp->scale, h->scale + r0, (size_t) n * sizeof (float)),
                 "copying captured logit scales to the device");
  *m = (LscCudaMap) {
    .head_dim = hd, .row0 = r0, .n_rows = n, .q = mp->q, .lse = mp->lse,
    .scale = h->scale != NULL ? mp->scale : NULL, .base_scale = h->base_scale,
    .keys = g->key_cache + (size_t) h->layer * s->params.n_ctx * kv_dim + (size_t) h->kv_head * hd,
    .ldk = kv_dim, .window = h->window,
  };
  return TRUE;
}

static gboolean
map_tile (const LscSession *s, const LscMapHead *h, int q0, int q1, int k0, int k1,
          float masked_value, float *out, GError **error)
{
  LscCudaState *g = s->cuda;
  LscCudaMaps *mp = g->maps;
  LscCudaMap m;
  if (!upload_head (s, h, q0, q1 - q0, &m, error))
    return FALSE;
  int cols = k1 - k0, per = (int) MIN ((size_t) (q1 - q0), mp->score_cap / cols);
  for (int r = q0; r < q1; r += per)
    {
      int r1 = MIN (r + per, q1);
      LSC_GPU_TRY (lsc_cuda_attention_tile (g->ctx, &m, r, r1, k0, k1, masked_value, mp->scores),
                   "recomputing a tile");
      LSC_GPU_TRY (lsc_cuda_download (g->ctx, out + (gsize) (r - q0) * cols, mp->scores,
                                      (size_t) (r1 - r) * cols * sizeof (float)),
                   "copying a tile from the device");
    }
  return TRUE;
}

gboolean
_lsc_cuda_map_tile (const LscSession *s, const LscMapHead *h, int q0, int q1, int k0, int k1,
                    float masked_value, float *out, GError **error)
{
  if (q1 <= q0 || k1 <= k0)
    return TRUE;
  g_mutex_lock (&s->cuda->maps->lock);
  gboolean ok = map_tile (s, h, q0, q1, k0, k1, masked_value, out, error);
  g_mutex_unlock (&s->cuda->maps->lock);
  return ok;
}

static gboolean
map_pool (const LscSession *s, const LscMapHead *h, int r0, int n_rows, int sink_tokens,
          int block, float *cell_max, double *cell_sum, gint64 *cell_count, double sums[4],
          GError **error)
{
  LscCudaState *g = s->cuda;
  LscCudaMaps *mp = g->maps;
  LscCudaMap m;
  int n_keys = r0 + n_rows;
  size_t cells = (size_t) ((n_rows + block - 1) / block) * ((n_keys + block - 1) / block);
  g_return_val_if_fail (cells <= LSC_PYRAMID_MAX_CELLS, FALSE);
  if (!upload_head (s, h, r0, n_rows, &m, error))
    return FALSE;
  LSC_GPU_TRY (lsc_cuda_attention_pool (g->ctx, &m, sink_tokens, block, mp->cell_max,
                                        mp->cell_sum, mp->cell_count, mp->row_stats, mp->scores,
                                        mp->score_cap), "pooling the attention map");
  G_STATIC_ASSERT (sizeof (gint64) == sizeof (long long));
  g_autofree double *rows = g_new (double, (gsize) n_rows * 4);
  LSC_GPU_TRY (lsc_cuda_download (g->ctx, cell_max, mp->cell_max, cells * sizeof (float)),
               "copying the pyramid from the device");
  LSC_GPU_TRY (lsc_cuda_download (g->ctx, cell_sum, mp->cell_sum, cells * sizeof (double)),
               "copying the pyramid from the device");
  LSC_GPU_TRY (lsc_cuda_download (g->ctx, cell_count, mp->cell_count, cells * sizeof (gint64)),
               "copying the pyramid from the device");
  LSC_GPU_TRY (lsc_cuda_download (g->ctx, rows, mp->row_stats,
                                  (size_t) n_rows * 4 * sizeof (double)),
               "copying the statistics from the device");
  /* summed over rows in order: the same statistics on every call */
  memset (sums, 0, 4 * sizeof (double));
  for (int i = 0; i < n_rows; i++)
    for (int k = 0; k < 4; k++)
      sums[k] += rows[(gsize) i * 4 + k];
  return TRUE;
}

gboolean
_lsc_cuda_map_pool (const LscSession *s, const LscMapHead *h, int r0, int n_rows,
                    int sink_tokens, int block, float *cell_max, double *cell_sum,
                    gint64 *cell_count, double sums[4], GError **error)
{
  g_mutex_lock (&s->cuda->maps->lock);
  gboolean ok = map_pool (s, h, r0, n_rows, sink_tokens, block, cell_max, cell_sum, cell_count,
                          sums, error);
  g_mutex_unlock (&s->cuda->maps->lock);
  return ok;
}

#else /* !LSC_HAVE_CUDA */

guint64
_lsc_cuda_maps_bytes (G_GNUC_UNUSED const LscModel *model,
                      G_GNUC_UNUSED const LscSessionParams *params)
{
  return 0;
}

gboolean
_lsc_cuda_maps_on (G_GNUC_UNUSED const LscSession *s)
{
  return FALSE;
}

gboolean
_lsc_cuda_map_tile (G_GNUC_UNUSED const LscSession *s, G_GNUC_UNUSED const LscMapHead *h,
                    G_GNUC_UNUSED int q0, G_GNUC_UNUSED int q1, G_GNUC_UNUSED int k0,
                    G_GNUC_UNUSED int k1, G_GNUC_UNUSED float masked_value,
                    G_GNUC_UNUSED float *out, G_GNUC_UNUSED GError **error)
{
  g_return_val_if_reached (FALSE);
}

gboolean
_lsc_cuda_map_pool (G_GNUC_UNUSED const LscSession *s, G_GNUC_UNUSED const LscMapHead *h,
                    G_GNUC_UNUSED int r0, G_GNUC_UNUSED int n_rows,
                    G_GNUC_UNUSED int sink_tokens, G_GNUC_UNUSED int block,
                    G_GNUC_UNUSED float *cell_max, G_GNUC_UNUSED double *cell_sum,
                    G_GNUC_UNUSED gint64 *cell_count, G_GNUC_UNUSED double sums[4],
                    G_GNUC_UNUSED GError **error)
{
  g_return_val_if_reached (FALSE);
}

#endif /* LSC_HAVE_CUDA */
