/* SPDX-License-Identifier: MIT
 *
 * The attention capture store and everything recomputed from it: exact
 * tiles, masses, and the streaming pass that builds a head's pooled pyramid
 * and statistics. See lsc-attention.h for the definitions.
 *
 * Layout (per store):
 *   q     (n_layers_c, row_cap, n_heads_c, head_dim)  post-RoPE queries
 *   lse   (n_layers_c, n_heads_c, row_cap)             row normalisers
 *   scale (n_layers_c, n_heads_c, row_cap)             logit scale, only with a scale hook
 * where _c counts the captured layers and heads and row_cap the rows the
 * plan can hold (row_end - row_start, bounded by n_ctx).
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-llama-private.h"

extern void openblas_set_num_threads (int num_threads);

#define DEFAULT_BUDGET ((guint64) 4 << 30)
#define PYRAMID_MAX_CELLS (1 << 18)

struct _LscAttentionStore {
  const LscSession *session;   /* keys, config, windows and hooks */
  int *layer_slot;             /* (n_layers) captured index or -1 */
  int *head_slot;              /* (n_heads) captured index or -1 */
  int n_cl, n_ch;              /* captured layers, heads */
  int row_start, row_cap;
  float *q;
  float *lse;
  float *scale;                /* NULL without a scale hook */
};

static gboolean
fill_slots (int *slot, int n, const int *list, int n_list, const char *what, GError **error)
{
  int count = 0;
  for (int i = 0; i < n; i++)
    slot[i] = list == NULL || n_list == 0 ? count++ : -1;
  if (list == NULL || n_list == 0)
    return TRUE;
  for (int i = 0; i < n_list; i++)
    {
      if (list[i] < 0 || list[i] >= n)
        {
          g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                       "capture plan: %s[%d] = %d does not exist (the model has %d %s)", what, i,
                       list[i], n, what);
          return FALSE;
        }
      if (slot[list[i]] < 0)
        slot[list[i]] = count++;
    }
  return TRUE;
}

/* The store's geometry for a plan: which layers and heads get a slot
 * (layer_slot (n_layers), head_slot (n_heads)), and the bytes it needs, checked
 * against the plan's budget. One formula for the store itself
 * (_lsc_attention_store_new (), lsc_attention_get_bytes ()) and for estimates
 * (lsc_attention_plan_layout ()). */
static guint64
store_bytes (int n_cl, int n_ch, int row_cap, int head_dim, gboolean with_scale)
{
  return (guint64) n_cl * n_ch * row_cap * (head_dim + 1 + (with_scale ? 1 : 0)) * sizeof (float);
}

static gboolean
plan_layout (const LscCapturePlan *plan, int n_layers, int n_heads, int head_dim, int n_ctx,
             gboolean with_scale, int *layer_slot, int *head_slot, LscCaptureLayout *out,
             GError **error)
{
  if (!fill_slots (layer_slot, n_layers, plan->layers, plan->n_layers, "layers", error)
      || !fill_slots (head_slot, n_heads, plan->heads, plan->n_heads, "heads", error))
    return FALSE;
  int n_cl = 0, n_ch = 0;
  for (int l = 0; l < n_layers; l++)
    n_cl += layer_slot[l] >= 0;
  for (int h = 0; h < n_heads; h++)
    n_ch += head_slot[h] >= 0;

  int row_start = CLAMP (plan->row_start, 0, n_ctx);
  int row_end = plan->row_end <= row_start ? n_ctx : MIN (plan->row_end, n_ctx);
  int row_cap = row_end - row_start;
  guint64 bytes = store_bytes (n_cl, n_ch, row_cap, head_dim, with_scale);
  guint64 budget = plan->memory_budget ? plan->memory_budget : DEFAULT_BUDGET;
  if (bytes > budget)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_OUT_OF_MEMORY,
                   "capturing %d layers x %d heads x %d rows needs %.1f MiB of queries and "
                   "normalisers, over the capture budget of %.1f MiB (capture fewer layers, heads "
                   "or rows, or raise the budget)", n_cl, n_ch, row_cap, bytes / 1048576.0,
                   budget / 1048576.0);
      return FALSE;
    }
  *out = (LscCaptureLayout) { n_cl, n_ch, row_start, row_cap, bytes };
  return TRUE;
}

gboolean
lsc_attention_plan_layout (const LscCapturePlan *plan, int n_layers, int n_heads, int head_dim,
                           int n_ctx, gboolean scale_hook, LscCaptureLayout *layout,
                           GError **error)
{
  g_return_val_if_fail (plan != NULL && layout != NULL && n_layers > 0 && n_heads > 0, FALSE);
  g_autofree int *layer_slot = g_new (int, n_layers);
  g_autofree int *head_slot = g_new (int, n_heads);
  return plan_layout (plan, n_layers, n_heads, head_dim, n_ctx, scale_hook, layer_slot, head_slot,
                      layout, error);
}

LscAttentionStore *
_lsc_attention_store_new (const LscSession *s, const LscCapturePlan *plan, GError **error)
{
  const LscModelConfig *c = &s->c;
  int n_ctx = s->params.n_ctx;
  g_autofree int *layer_slot = g_new (int, c->n_layers);
  g_autofree int *head_slot = g_new (int, c->n_heads);

  gboolean with_scale = s->params.hooks.scale != NULL;
  LscCaptureLayout lay;
  if (!plan_layout (plan, c->n_layers, c->n_heads, c->head_dim, n_ctx, with_scale, layer_slot,
                    head_slot, &lay, error))
    return NULL;
  int n_cl = lay.n_layers, n_ch = lay.n_heads, row_start = lay.row_start, row_cap = lay.row_cap;
  guint64 bytes = lay.bytes;

  LscAttentionStore *a = g_new0 (LscAttentionStore, 1);
  a->session = s;
  a->layer_slot = g_steal_pointer (&layer_slot);
  a->head_slot = g_steal_pointer (&head_slot);
  a->n_cl = n_cl;
  a->n_ch = n_ch;
  a->row_start = row_start;
  a->row_cap = row_cap;
  gsize n_q = (gsize) n_cl * row_cap * n_ch * c->head_dim;
  gsize n_r = (gsize) n_cl * n_ch * row_cap;
  a->q = g_try_new (float, MAX (n_q, 1));
  a->lse = g_try_new (float, MAX (n_r, 1));
  a->scale = with_scale ? g_try_new (float, MAX (n_r, 1)) : NULL;
  if (a->q == NULL || a->lse == NULL || (with_scale && a->scale == NULL))
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_OUT_OF_MEMORY,
                   "the capture store of %.1f MiB could not be allocated", bytes / 1048576.0);
      _lsc_attention_store_free (a);
      return NULL;
    }
  return a;
}

void
_lsc_attention_store_free (LscAttentionStore *a)
{
  if (a == NULL)
    return;
  g_free (a->layer_slot);
  g_free (a->head_slot);
  g_free (a->q);
  g_free (a->lse);
  g_free (a->scale);
  g_free (a);
}

gboolean
_lsc_attention_wants (const LscAttentionStore *a, int layer, int pos)
{
  return a != NULL && a->layer_slot[layer] >= 0 && pos >= a->row_start
         && pos < a->row_start + a->row_cap;
}

float
_lsc_attention_refine_lse (const float *q, const float *keys, int kv_dim, int hd,
                           const float *p, int n, float scale, float lse)
{
  double corr = 0.0;
  for (int j = 0; j < n; j++)
    {
      if (p[j] < LSC_REFINE_MIN_P)
        continue;
      const float *k = keys + (gsize) j * kv_dim;
      double dot = 0.0;
      for (int d = 0; d < hd; d++)
        dot += (double) q[d] * k[d];
      /* the logit the float path used, recovered from its probability */
      double x32 = log ((double) p[j]) + lse;
      corr += p[j] * expm1 (scale * dot - x32);
    }
  return (float) (lse + log1p (corr));
}

void
_lsc_attention_put (LscAttentionStore *a, int layer, int head, int pos, const float *q,
                    float lse, float scale)
{
  int hs = a->head_slot[head];
  if (hs < 0 || !_lsc_attention_wants (a, layer, pos))
    return;
  int hd = a->session->c.head_dim, ls = a->layer_slot[layer], r = pos - a->row_start;
  memcpy (a->q + (((gsize) ls * a->row_cap + r) * a->n_ch + hs) * hd, q, hd * sizeof (float));
  a->lse[((gsize) ls * a->n_ch + hs) * a->row_cap + r] = lse;
  if (a->scale != NULL)
    a->scale[((gsize) ls * a->n_ch + hs) * a->row_cap + r] = scale;
}

gboolean
_lsc_attention_slot (LscAttentionStore *a, int layer, int head, float **q, gsize *q_stride,
                     float **lse, int *row_start, int *row_cap)
{
  if (a == NULL || a->scale != NULL || a->layer_slot[layer] < 0 || a->head_slot[head] < 0)
    return FALSE;
  int hd = a->session->c.head_dim, ls = a->layer_slot[layer], hs = a->head_slot[head];
  *q = a->q + ((gsize) ls * a->row_cap * a->n_ch + hs) * hd;
  *q_stride = (gsize) a->n_ch * hd;
  *lse = a->lse + ((gsize) ls * a->n_ch + hs) * a->row_cap;
  *row_start = a->row_start;
  *row_cap = a->row_cap;
  return TRUE;
}

/* ---- reading ---- */

/* Threads for recomputing tiles, pyramids and statistics: the session's,
 * but no more than the calling thread's OpenMP limit, so that a GUI
 * rendering tiles in the background (omp_set_num_threads () in its worker)
 * leaves a core to the main loop. */
static int
store_threads (const LscAttentionStore *a)
{
  return MAX (1, MIN (a->session->params.n_threads, omp_get_max_threads ()));
}

int
lsc_attention_get_row_start (const LscAttentionStore *a)
{
  return a->row_start;
}

int
lsc_attention_get_n_rows (const LscAttentionStore *a)
{
  /* the rows captured are the positions the session has run, within the plan */
  return CLAMP (a->session->pos - a->row_start, 0, a->row_cap);
}

gboolean
lsc_attention_has_head (const LscAttentionStore *a, int layer, int head)
{
  return layer >= 0 && layer < a->session->c.n_layers && head >= 0
         && head < a->session->c.n_heads && a->layer_slot[layer] >= 0 && a->head_slot[head] >= 0;
}

guint64
lsc_attention_get_bytes (const LscAttentionStore *a)
{
  return store_bytes (a->n_cl, a->n_ch, a->row_cap, a->session->c.head_dim, a->scale != NULL);
}

/* One head's view of the store and the keys. */
typedef struct {
  const LscAttentionStore *a;
  int layer, head, hd, q_stride, kv_dim;
  const float *q;       /* row r at q + r * q_stride */
  const float *lse;     /* (row_cap) */
  const float *scale;   /* (row_cap) or NULL */
  const float *keys;    /* key j at keys + j * kv_dim */
  float base_scale;
  int window;
} HeadView;

static gboolean
head_view (const LscAttentionStore *a, int layer, int head, int q0, int q1, int k0, int k1,
           HeadView *v, GError **error)
{
  const LscSession *s = a->session;
  int n_rows = lsc_attention_get_n_rows (a);

  if (!lsc_attention_has_head (a, layer, head))
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "layer %d head %d was not captured", layer, head);
      return FALSE;
    }
  if (q0 < a->row_start || q1 > a->row_start + n_rows || q0 > q1 || k0 < 0 || k0 > k1
      || k1 > s->pos)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "tile rows [%d, %d) x keys [%d, %d) is outside the captured rows [%d, %d) "
                   "x keys [0, %d)", q0, q1, k0, k1, a->row_start, a->row_start + n_rows, s->pos);
      return FALSE;
    }
  int ls = a->layer_slot[layer], hs = a->head_slot[head];
  int group = s->c.n_heads / s->c.n_kv_heads;
  v->a = a;
  v->layer = layer;
  v->head = head;
  v->hd = s->c.head_dim;
  v->q_stride = a->n_ch * v->hd;
  v->kv_dim = s->c.n_kv_heads * v->hd;
  v->q = a->q + ((gsize) ls * a->row_cap * a->n_ch + hs) * v->hd - (gsize) a->row_start * v->q_stride;
  v->lse = a->lse + ((gsize) ls * a->n_ch + hs) * a->row_cap - a->row_start;
  v->scale = a->scale != NULL ? a->scale + ((gsize) ls * a->n_ch + hs) * a->row_cap - a->row_start
                              : NULL;
  v->keys = s->key_cache + (gsize) layer * s->params.n_ctx * v->kv_dim + (head / group) * v->hd;
  v->base_scale = 1.0f / sqrtf ((float) v->hd);
  v->window = s->layers[layer].window;
  return TRUE;
}

static float
row_scale (const HeadView *v, int i)
{
  return v->scale != NULL ? v->scale[i] : v->base_scale;
}

/* First key row i can see under the model's mask. */
static int
row_first_key (const HeadView *v, int i)
{
  return v->window > 0 ? MAX (0, i - v->window + 1) : 0;
}

/* hidden (i + 1) <- the hooks' mask of row i, or NULL when there is none. */
static const guint8 *
row_hidden (const HeadView *v, int i, guint8 *buf)
{
  const LscAttentionHooks *hooks = &v->a->session->params.hooks;
  if (hooks->mask_row == NULL)
    return NULL;
  memset (buf, 0, (gsize) i + 1);
  hooks->mask_row (hooks->data, v->layer, v->head, i, buf);
  return buf;
}

gboolean
lsc_attention_get_query (const LscAttentionStore *a, int layer, int head, int pos, float *out,
                         GError **error)
{
  HeadView v;
  if (!head_view (a, layer, head, pos, pos + 1, 0, 0, &v, error))
    return FALSE;
  memcpy (out, v.q + (gsize) pos * v.q_stride, v.hd * sizeof (float));
  return TRUE;
}

gboolean
lsc_attention_get_row (const LscAttentionStore *a, int layer, int head, int pos, float *scale,
                       float *lse, GError **error)
{
  HeadView v;
  if (!head_view (a, layer, head, pos, pos + 1, 0, 0, &v, error))
    return FALSE;
  *scale = row_scale (&v, pos);
  *lse = v.lse[pos];
  return TRUE;
}

gboolean
lsc_attention_get_key (const LscAttentionStore *a, int layer, int kv_head, int pos, float *out,
                       GError **error)
{
  const LscSession *s = a->session;
  int hd = s->c.head_dim, kv_dim = s->c.n_kv_heads * hd;
  if (layer < 0 || layer >= s->c.n_layers || kv_head < 0 || kv_head >= s->c.n_kv_heads
      || pos < 0 || pos >= s->pos)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "no key for layer %d KV head %d at position %d (the session holds %d)", layer,
                   kv_head, pos, s->pos);
      return FALSE;
    }
  memcpy (out, s->key_cache + ((gsize) layer * s->params.n_ctx + pos) * kv_dim + kv_head * hd,
          hd * sizeof (float));
  return TRUE;
}

gboolean
lsc_attention_tile (const LscAttentionStore *a, int layer, int head, int q0, int q1, int k0,
                    int k1, float masked_value, float *out, GError **error)
{
  HeadView v;
  if (!head_view (a, layer, head, q0, q1, k0, k1, &v, error))
    return FALSE;
  int cols = k1 - k0;
  gboolean hooked = a->session->params.hooks.mask_row != NULL;

#pragma omp parallel num_threads (store_threads (a))
  {
    guint8 *buf = hooked ? g_malloc (q1) : NULL;
#pragma omp for schedule (dynamic, 8)
    for (int i = q0; i < q1; i++)
      {
        const float *q = v.q + (gsize) i * v.q_stride;
        float *row = out + (gsize) (i - q0) * cols;
        int first = row_first_key (&v, i);
        const guint8 *hidden = row_hidden (&v, i, buf);
        double s = row_scale (&v, i), lse = v.lse[i];
        for (int j = k0; j < k1; j++)
          {
            if (j < first || j > i || (hidden != NULL && hidden[j]))
              {
                row[j - k0] = masked_value;
                continue;
              }
            /* the dot product in double: tiles are exact to float rounding of p */
            const float *k = v.keys + (gsize) j * v.kv_dim;
            double dot = 0.0;
            for (int d = 0; d < v.hd; d++)
              dot += (double) q[d] * k[d];
            row[j - k0] = (float) exp (s * dot - lse);
          }
      }
    g_free (buf);
  }
  return TRUE;
}

gboolean
lsc_attention_mass (const LscAttentionStore *a, int layer, int head, int q0, int q1, int k0,
                    int k1, double *mass, GError **error)
{
  const int rows_per_tile = 64;
  int cols = MAX (k1 - k0, 1);
  g_autofree float *tile = g_new (float, (gsize) rows_per_tile * cols);
  double sum = 0.0;

  for (int r = q0; r < q1; r += rows_per_tile)
    {
      int r1 = MIN (r + rows_per_tile, q1);
      if (!lsc_attention_tile (a, layer, head, r, r1, k0, k1, 0.0f, tile, error))
        return FALSE;
      for (gsize i = 0; i < (gsize) (r1 - r) * (k1 - k0); i++)
        sum += tile[i];
    }
  *mass = sum;
  return TRUE;
}

/* ---- the streaming pass: pyramid and statistics ---- */

void
lsc_attention_pyramid_free (LscAttentionPyramid *p)
{
  if (p == NULL)
    return;
  for (int i = 0; i < p->n_levels; i++)
    {
      g_free (p->levels[i].max);
      g_free (p->levels[i].mean);
    }
  g_free (p->levels);
  g_free (p);
}

static int
ceil_div (int a, int b)
{
  return (a + b - 1) / b;
}

/* The block of a pyramid's finest stored level over n_rows x n_keys cells:
 * the smallest 2^k with at most PYRAMID_MAX_CELLS blocks. */
static int
pyramid_block (int n_rows, int n_keys)
{
  int block = 1;
  while ((gint64) ceil_div (n_rows, block) * ceil_div (n_keys, block) > PYRAMID_MAX_CELLS)
    block *= 2;
  return block;
}

guint64
lsc_attention_pyramid_bytes (int n_rows, int n_keys)
{
  if (n_rows <= 0 || n_keys <= 0)
    return 0;
  int block = pyramid_block (n_rows, n_keys);
  guint64 bytes = 0;
  /* every level, finest first, down to one block: max and mean floats */
  for (int r = ceil_div (n_rows, block), c = ceil_div (n_keys, block);; r = ceil_div (r, 2),
       c = ceil_div (c, 2))
    {
      bytes += (guint64) 2 * r * c * sizeof (float);
      if (r == 1 && c == 1)
        break;
    }
  return bytes;
}

/* Pools a level of (max, sum, count) 2 x 2 into the next. */
static void
pool_level (const float *max, const double *sum, const gint64 *count, int rows, int cols,
            float *max2, double *sum2, gint64 *count2)
{
  int rows2 = ceil_div (rows, 2), cols2 = ceil_div (cols, 2);
  for (int r = 0; r < rows2; r++)
    for (int c = 0; c < cols2; c++)
      {
        float m = NAN;
        double s = 0;
        gint64 n = 0;
        for (int dr = 0; dr < 2; dr++)
          for (int dc = 0; dc < 2; dc++)
            {
              int rr = 2 * r + dr, cc = 2 * c + dc;
              if (rr >= rows || cc >= cols || count[(gsize) rr * cols + cc] == 0)
                continue;
              float x = max[(gsize) rr * cols + cc];
              m = isnan (m) ? x : fmaxf (m, x);
              s += sum[(gsize) rr * cols + cc];
              n += count[(gsize) rr * cols + cc];
            }
        max2[(gsize) r * cols2 + c] = m;
        sum2[(gsize) r * cols2 + c] = s;
        count2[(gsize) r * cols2 + c] = n;
      }
}

gboolean
lsc_attention_analyze (const LscAttentionStore *a, int layer, int head, int sink_tokens,
                       LscAttentionPyramid **pyramid_out, LscHeadStats *stats,
                       GError **error)
{
  int n_rows = lsc_attention_get_n_rows (a);
  int r0 = a->row_start, n_keys = r0 + n_rows;
  HeadView v;

  if (!head_view (a, layer, head, r0, r0 + n_rows, 0, n_keys, &v, error))
    return FALSE;
  if (n_rows == 0)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "layer %d head %d: no rows captured yet", layer, head);
      return FALSE;
    }

  /* the finest stored level: smallest 2^k with at most 2^18 blocks */
  int block = pyramid_block (n_rows, n_keys);
  int rows_b = ceil_div (n_rows, block), cols_b = ceil_div (n_keys, block);
  g_autofree float *bmax = g_new (float, (gsize) rows_b * cols_b);     /* (rows_b, cols_b) */
  g_autofree double *bsum = g_new0 (double, (gsize) rows_b * cols_b);  /* (rows_b, cols_b) */
  g_autofree gint64 *bcount = g_new0 (gint64, (gsize) rows_b * cols_b);
  for (gsize i = 0; i < (gsize) rows_b * cols_b; i++)
    bmax[i] = NAN;

  /* Rows a block at a time: S = Q_blk K^T by one GEMM, then p per row. The
   * threads take whole blocks, each with its own buffer and a single-threaded
   * OpenBLAS (never a threaded OpenBLAS inside an OpenMP region); a block
   * covers whole pyramid rows, so no two threads pool into the same cell. */
  int step = MAX (block, 16);
  int n_blocks = ceil_div (n_rows, step);
  double entropy = 0, sink = 0, maxp = 0, dist = 0;
  gboolean hooked = a->session->params.hooks.mask_row != NULL;
  int nt = store_threads (a);

  openblas_set_num_threads (1);
#pragma omp parallel num_threads (nt) reduction (+:entropy, sink, maxp, dist)
  {
    float *S = g_new (float, (gsize) step * n_keys);   /* (step, n_keys) */
    guint8 *buf = hooked ? g_malloc (n_keys) : NULL;
#pragma omp for schedule (dynamic, 1)
    for (int b = 0; b < n_blocks; b++)
      {
        int i0 = r0 + b * step, i1 = MIN (i0 + step, r0 + n_rows);
        int kmax = i1;   /* keys [0, i1) cover every row of the block */
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, kmax, v.hd, 1.0f,
                     v.q + (gsize) i0 * v.q_stride, v.q_stride, v.keys, v.kv_dim, 0.0f, S, kmax);
        for (int i = i0; i < i1; i++)
          {
            const float *row = S + (gsize) (i - i0) * kmax;
            int first = row_first_key (&v, i);
            const guint8 *hidden = row_hidden (&v, i, buf);
            float s = row_scale (&v, i), lse = v.lse[i];
            float rmax = 0;
            gsize cell_row = (gsize) ((i - r0) / block) * cols_b;
            for (int j = first; j <= i; j++)
              {
                if (hidden != NULL && hidden[j])
                  continue;
                float p = expf (s * row[j] - lse);
                rmax = fmaxf (rmax, p);
                if (p > 0)
                  entropy -= p * logf (p);
                if (j < sink_tokens)
                  sink += p;
                dist += (double) p * (i - j);
                gsize cell = cell_row + j / block;
                bmax[cell] = isnan (bmax[cell]) ? p : fmaxf (bmax[cell], p);
                bsum[cell] += p;
                bcount[cell]++;
              }
            maxp += rmax;
          }
      }
    g_free (S);
    g_free (buf);
  }
  openblas_set_num_threads (nt);

  if (stats != NULL)
    {
      stats->entropy = entropy / n_rows;
      stats->sink_mass = sink / n_rows;
      stats->max_prob = maxp / n_rows;
      stats->mean_distance = dist / n_rows;
    }
  if (pyramid_out == NULL)
    return TRUE;

  LscAttentionPyramid *p = g_new0 (LscAttentionPyramid, 1);
  p->layer = layer;
  p->head = head;
  p->row_start = r0;
  p->n_rows = n_rows;
  p->n_keys = n_keys;
  int n_levels = 1;
  for (int r = rows_b, c = cols_b; r > 1 || c > 1; r = ceil_div (r, 2), c = ceil_div (c, 2))
    n_levels++;
  p->n_levels = n_levels;
  p->levels = g_new0 (LscPyramidLevel, n_levels);

  g_autofree double *sum = g_steal_pointer (&bsum);
  g_autofree gint64 *count = g_steal_pointer (&bcount);
  float *max = g_steal_pointer (&bmax);
  int rows = rows_b, cols = cols_b;
  for (int k = 0; k < n_levels; k++)
    {
      LscPyramidLevel *lv = &p->levels[k];
      lv->block = block << k;
      lv->rows = rows;
      lv->cols = cols;
      lv->max = max;
      lv->mean = g_new (float, (gsize) rows * cols);
      for (gsize c = 0; c < (gsize) rows * cols; c++)
        lv->mean[c] = count[c] ? (float) (sum[c] / count[c]) : NAN;
      if (k + 1 == n_levels)
        break;
      int rows2 = ceil_div (rows, 2), cols2 = ceil_div (cols, 2);
      float *max2 = g_new (float, (gsize) rows2 * cols2);
      double *sum2 = g_new (double, (gsize) rows2 * cols2);
      gint64 *count2 = g_new (gint64, (gsize) rows2 * cols2);
      pool_level (max, sum, count, rows, cols, max2, sum2, count2);
      g_free (sum);
      g_free (count);
      max = max2;
      sum = sum2;
      count = count2;
      rows = rows2;
      cols = cols2;
    }
  *pyramid_out = p;
  return TRUE;
}
