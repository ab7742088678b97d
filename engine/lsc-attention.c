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
 * plan can hold (row_end - row_start, bounded by n_ctx). Keys, windows and
 * hooks are the session's.
 *
 * A store read back from a result file (lsc_attention_load) has the same
 * per-layer arrays in the file's memory map, its own keys and windows, no
 * hooks (a scale is stored per row; stores of runs with a mask hook are
 * not saved), and row_cap rows, all captured.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-llama-private.h"
#include "lsc-tensor-reader.h"
#include "lsc-tensor-writer.h"

extern void openblas_set_num_threads (int num_threads);

#define DEFAULT_BUDGET ((guint64) 4 << 30)

struct _LscAttentionStore {
  const LscSession *session;   /* keys, windows and hooks; NULL when read from a file */
  int n_layers, n_heads, n_kv_heads, head_dim;
  int *layer_slot;             /* (n_layers) captured index or -1 */
  int *head_slot;              /* (n_heads) captured index or -1 */
  int n_cl, n_ch;              /* captured layers, heads */
  int row_start, row_cap;
  float *q;                    /* owned by a session's store */
  float *lse;
  float *scale;                /* NULL without a scale hook */
  /* per captured layer, for reading: */
  const float **layer_q;       /* (n_cl) (row_cap, n_ch, head_dim) */
  const float **layer_lse;     /* (n_cl) (n_ch, row_cap) */
  const float **layer_scale;   /* (n_cl) (n_ch, row_cap), NULL without scales */
  /* read from a file: */
  LscTensorReader *file;
  const float **keys;          /* (n_layers) (row_start + row_cap, n_kv_heads, head_dim) or NULL */
  int *windows;                /* (n_layers) */
};

/* The per-layer read pointers into a session store's arrays. */
static void
point_layers (LscAttentionStore *a)
{
  gsize q_layer = (gsize) a->row_cap * a->n_ch * a->head_dim, r_layer = (gsize) a->n_ch * a->row_cap;
  a->layer_q = g_new (const float *, MAX (a->n_cl, 1));
  a->layer_lse = g_new (const float *, MAX (a->n_cl, 1));
  a->layer_scale = a->scale != NULL ? g_new (const float *, MAX (a->n_cl, 1)) : NULL;
  for (int l = 0; l < a->n_cl; l++)
    {
      a->layer_q[l] = a->q + l * q_layer;
      a->layer_lse[l] = a->lse + l * r_layer;
      if (a->scale != NULL)
        a->layer_scale[l] = a->scale + l * r_layer;
    }
}

/* slot[i]: where layer (head) i is in the store, or -1. Slots follow the
 * index order whatever the plan's order, so that a store holding every
 * head keeps a row's queries as the model's q vector (the GPU copies whole
 * rows then). */
static gboolean
fill_slots (int *slot, int n, const int *list, int n_list, const char *what, GError **error)
{
  gboolean all = list == NULL || n_list == 0;
  for (int i = 0; i < n; i++)
    slot[i] = all ? 0 : -1;
  for (int i = 0; !all && i < n_list; i++)
    {
      if (list[i] < 0 || list[i] >= n)
        {
          g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                       "capture plan: %s[%d] = %d does not exist (the model has %d %s)", what, i,
                       list[i], n, what);
          return FALSE;
        }
      slot[list[i]] = 0;
    }
  for (int i = 0, count = 0; i < n; i++)
    if (slot[i] >= 0)
      slot[i] = count++;
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
  a->n_layers = c->n_layers;
  a->n_heads = c->n_heads;
  a->n_kv_heads = c->n_kv_heads;
  a->head_dim = c->head_dim;
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
  point_layers (a);
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
  g_free (a->layer_q);
  g_free (a->layer_lse);
  g_free (a->layer_scale);
  g_free (a->keys);
  g_free (a->windows);
  lsc_tensor_reader_free (a->file);
  g_free (a);
}

gboolean
_lsc_attention_has_layer (const LscAttentionStore *a, int layer)
{
  return a != NULL && a->layer_slot[layer] >= 0;
}

gboolean
_lsc_attention_wants (const LscAttentionStore *a, int layer, int pos)
{
  return _lsc_attention_has_layer (a, layer) && pos >= a->row_start
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
  int hd = a->head_dim, ls = a->layer_slot[layer], r = pos - a->row_start;
  memcpy (a->q + (((gsize) ls * a->row_cap + r) * a->n_ch + hs) * hd, q, hd * sizeof (float));
  a->lse[((gsize) ls * a->n_ch + hs) * a->row_cap + r] = lse;
  if (a->scale != NULL)
    a->scale[((gsize) ls * a->n_ch + hs) * a->row_cap + r] = scale;
}

gboolean
_lsc_attention_slot (LscAttentionStore *a, int layer, int head, float **q, gsize *q_stride,
                     float **lse, float **scale, int *row_start, int *row_cap)
{
  if (a == NULL || a->layer_slot[layer] < 0 || a->head_slot[head] < 0)
    return FALSE;
  int hd = a->head_dim, ls = a->layer_slot[layer], hs = a->head_slot[head];
  *q = a->q + ((gsize) ls * a->row_cap * a->n_ch + hs) * hd;
  *q_stride = (gsize) a->n_ch * hd;
  *lse = a->lse + ((gsize) ls * a->n_ch + hs) * a->row_cap;
  *scale = a->scale != NULL ? a->scale + ((gsize) ls * a->n_ch + hs) * a->row_cap : NULL;
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
  int n = a->session != NULL ? a->session->params.n_threads : G_MAXINT;
  return MAX (1, MIN (n, omp_get_max_threads ()));
}

/* Keys [0, n_keys) exist: the positions the session has run, or the file's. */
static int
store_n_keys (const LscAttentionStore *a)
{
  return a->session != NULL ? a->session->pos : a->row_start + a->row_cap;
}

/* Key j of layer at keys + j * n_kv_heads * head_dim. */
static const float *
layer_keys (const LscAttentionStore *a, int layer)
{
  const LscSession *s = a->session;
  if (s == NULL)
    return a->keys[layer];
  return s->key_cache + (gsize) layer * s->params.n_ctx * s->c.n_kv_heads * s->c.head_dim;
}

/* The mask hook of the session, or NULL. */
static const LscAttentionHooks *
mask_hooks (const LscAttentionStore *a)
{
  if (a->session == NULL || a->session->params.hooks.mask_row == NULL)
    return NULL;
  return &a->session->params.hooks;
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
  return CLAMP (store_n_keys (a) - a->row_start, 0, a->row_cap);
}

gboolean
lsc_attention_has_head (const LscAttentionStore *a, int layer, int head)
{
  return layer >= 0 && layer < a->n_layers && head >= 0 && head < a->n_heads
         && a->layer_slot[layer] >= 0 && a->head_slot[head] >= 0;
}

guint64
lsc_attention_get_bytes (const LscAttentionStore *a)
{
  return store_bytes (a->n_cl, a->n_ch, a->row_cap, a->head_dim, a->layer_scale != NULL);
}

/* One head's view of the store and the keys. */
typedef struct {
  const LscAttentionStore *a;
  int layer, head, hd, q_stride, kv_dim;
  const float *q;       /* row r at q + r * q_stride */
  const float *lse;     /* (row_cap) */
  const float *scale;   /* (row_cap) or NULL */
  const float *keys;    /* key j at keys + j * kv_dim */
  const LscAttentionHooks *hooks;   /* with a mask_row, or NULL */
  float base_scale;
  int window;
} HeadView;

static gboolean
head_view (const LscAttentionStore *a, int layer, int head, int q0, int q1, int k0, int k1,
           HeadView *v, GError **error)
{
  int n_rows = lsc_attention_get_n_rows (a), n_keys = store_n_keys (a);

  if (!lsc_attention_has_head (a, layer, head))
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "layer %d head %d was not captured", layer, head);
      return FALSE;
    }
  if (q0 < a->row_start || q1 > a->row_start + n_rows || q0 > q1 || k0 < 0 || k0 > k1
      || k1 > n_keys)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "tile rows [%d, %d) x keys [%d, %d) is outside the captured rows [%d, %d) "
                   "x keys [0, %d)", q0, q1, k0, k1, a->row_start, a->row_start + n_rows, n_keys);
      return FALSE;
    }
  int ls = a->layer_slot[layer], hs = a->head_slot[head];
  int group = a->n_heads / a->n_kv_heads;
  v->a = a;
  v->layer = layer;
  v->head = head;
  v->hd = a->head_dim;
  v->q_stride = a->n_ch * v->hd;
  v->kv_dim = a->n_kv_heads * v->hd;
  /* indexed by position: row i at q + i * q_stride, lse[i], scale[i] */
  v->q = a->layer_q[ls] + (gsize) hs * v->hd - (gsize) a->row_start * v->q_stride;
  v->lse = a->layer_lse[ls] + (gsize) hs * a->row_cap - a->row_start;
  v->scale = a->layer_scale != NULL ? a->layer_scale[ls] + (gsize) hs * a->row_cap - a->row_start
                                    : NULL;
  v->keys = layer_keys (a, layer) + (head / group) * v->hd;
  v->hooks = mask_hooks (a);
  v->base_scale = 1.0f / sqrtf ((float) v->hd);
  v->window = a->session != NULL ? a->session->layers[layer].window : a->windows[layer];
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
  const LscAttentionHooks *hooks = v->hooks;
  if (hooks == NULL)
    return NULL;
  memset (buf, 0, (gsize) i + 1);
  hooks->mask_row (hooks->data, v->layer, v->head, i, buf);
  return buf;
}

/* The GPU recomputes the maps of a store whose session runs there, unless a
 * mask hook (a host function) decides what each row sees. */
static gboolean
on_gpu (const LscAttentionStore *a)
{
  return a->session != NULL && mask_hooks (a) == NULL && _lsc_cuda_maps_on (a->session);
}

static LscMapHead
map_head (const HeadView *v)
{
  const LscAttentionStore *a = v->a;
  return (LscMapHead) {
    .layer = v->layer, .kv_head = v->head / (a->n_heads / a->n_kv_heads), .head_dim = v->hd,
    .q = v->q, .q_stride = v->q_stride, .lse = v->lse, .scale = v->scale,
    .base_scale = v->base_scale, .window = v->window,
  };
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
  int hd = a->head_dim, kv_dim = a->n_kv_heads * hd, n_keys = store_n_keys (a);
  if (layer < 0 || layer >= a->n_layers || kv_head < 0 || kv_head >= a->n_kv_heads
      || pos < 0 || pos >= n_keys || a->layer_slot[layer] < 0)
    {
      /* a session on the GPU keeps host keys of its captured layers only */
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "no key for layer %d KV head %d at position %d (the store holds %d keys of "
                   "its captured layers)", layer, kv_head, pos, n_keys);
      return FALSE;
    }
  memcpy (out, layer_keys (a, layer) + (gsize) pos * kv_dim + kv_head * hd, hd * sizeof (float));
  return TRUE;
}

/* p of row i over keys [lo, hi) (all visible but the hidden ones, which
 * stay as they are) into out. Each dot product is summed in double in the
 * order of the dimensions, as the GPU's tile kernel sums it: products of
 * floats are exact in double, so tiles are exact to the float rounding of
 * p. Four keys at a time keep four independent sums in flight. */
static void
tile_row (const HeadView *v, int i, int lo, int hi, const guint8 *hidden, float *out)
{
  const float *q = v->q + (gsize) i * v->q_stride;
  const gsize ld = v->kv_dim;
  double s = row_scale (v, i), lse = v->lse[i];
  int j = lo;
  for (; j + 4 <= hi; j += 4)
    {
      const float *k = v->keys + (gsize) j * ld;
      double d0 = 0.0, d1 = 0.0, d2 = 0.0, d3 = 0.0;
      for (int d = 0; d < v->hd; d++)
        {
          double qd = q[d];
          d0 += qd * k[d];
          d1 += qd * k[ld + d];
          d2 += qd * k[2 * ld + d];
          d3 += qd * k[3 * ld + d];
        }
      const double dot[4] = { d0, d1, d2, d3 };
      for (int e = 0; e < 4; e++)
        if (hidden == NULL || !hidden[j + e])
          out[j + e - lo] = (float) exp (s * dot[e] - lse);
    }
  for (; j < hi; j++)
    {
      if (hidden != NULL && hidden[j])
        continue;
      const float *k = v->keys + (gsize) j * ld;
      double dot = 0.0;
      for (int d = 0; d < v->hd; d++)
        dot += (double) q[d] * k[d];
      out[j - lo] = (float) exp (s * dot - lse);
    }
}

gboolean
lsc_attention_tile (const LscAttentionStore *a, int layer, int head, int q0, int q1, int k0,
                    int k1, float masked_value, float *out, GError **error)
{
  HeadView v;
  if (!head_view (a, layer, head, q0, q1, k0, k1, &v, error))
    return FALSE;
  if (on_gpu (a))
    {
      LscMapHead h = map_head (&v);
      return _lsc_cuda_map_tile (a->session, &h, q0, q1, k0, k1, masked_value, out, error);
    }
  int cols = k1 - k0;
  gboolean hooked = mask_hooks (a) != NULL;

#pragma omp parallel num_threads (store_threads (a))
  {
    guint8 *buf = hooked ? g_malloc (q1) : NULL;
#pragma omp for schedule (dynamic, 8)
    for (int i = q0; i < q1; i++)
      {
        float *row = out + (gsize) (i - q0) * cols;
        int lo = MAX (k0, row_first_key (&v, i)), hi = MIN (k1, i + 1);   /* visible: [lo, hi) */
        const guint8 *hidden = row_hidden (&v, i, buf);
        for (int j = k0; j < k1; j++)
          if (j < lo || j >= hi || (hidden != NULL && hidden[j]))
            row[j - k0] = masked_value;
        if (lo < hi)
          tile_row (&v, i, lo, hi, hidden, row + (lo - k0));
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

/* ---- saving and loading ---- */

#define STORE_VERSION 1

/* attn.store.geometry: what a reader needs to interpret the other tensors. */
enum { G_VERSION, G_LAYERS, G_HEADS, G_KV_HEADS, G_HEAD_DIM, G_ROW_START, G_ROWS, G_SCALES, G_N };

gboolean
lsc_attention_save (const LscAttentionStore *a, LscTensorWriter *w, GError **error)
{
  g_return_val_if_fail (a != NULL && w != NULL, FALSE);
  if (mask_hooks (a) != NULL)
    {
      g_set_error_literal (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                           "the attention store of a run with a mask hook cannot be saved "
                           "(its masks are code, not data)");
      return FALSE;
    }
  int n_rows = lsc_attention_get_n_rows (a), n_keys = a->row_start + n_rows;
  gint32 geometry[G_N] = { STORE_VERSION, a->n_layers, a->n_heads, a->n_kv_heads, a->head_dim,
                           a->row_start, n_rows, a->layer_scale != NULL };
  g_autofree gint32 *layers = g_new (gint32, MAX (a->n_cl, 1));
  g_autofree gint32 *heads = g_new (gint32, MAX (a->n_ch, 1));
  g_autofree gint32 *windows = g_new (gint32, a->n_layers);
  for (int l = 0; l < a->n_layers; l++)
    {
      windows[l] = a->session != NULL ? a->session->layers[l].window : a->windows[l];
      if (a->layer_slot[l] >= 0)
        layers[a->layer_slot[l]] = l;
    }
  for (int h = 0; h < a->n_heads; h++)
    if (a->head_slot[h] >= 0)
      heads[a->head_slot[h]] = h;

  gint64 shape[3] = { G_N };
  if (!lsc_tensor_writer_add_i32 (w, "attn.store.geometry", 1, shape, geometry))
    {
      g_set_error_literal (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                           "an attention store is already in this tensor file");
      return FALSE;
    }
  shape[0] = a->n_cl;
  lsc_tensor_writer_add_i32 (w, "attn.store.layers", 1, shape, layers);
  shape[0] = a->n_ch;
  lsc_tensor_writer_add_i32 (w, "attn.store.heads", 1, shape, heads);
  shape[0] = a->n_layers;
  lsc_tensor_writer_add_i32 (w, "attn.store.windows", 1, shape, windows);

  /* normalisers and scales: the captured rows of each head, packed */
  g_autofree float *packed = g_new (float, MAX ((gsize) a->n_ch * n_rows, 1));
  for (int l = 0; l < a->n_layers; l++)
    {
      int ls = a->layer_slot[l];
      if (ls < 0)
        continue;
      char name[64];
      g_snprintf (name, sizeof name, "attn.store.%d.query", l);
      gint64 qshape[3] = { n_rows, a->n_ch, a->head_dim };
      lsc_tensor_writer_add_f32_borrowed (w, name, 3, qshape, a->layer_q[ls]);
      g_snprintf (name, sizeof name, "attn.store.%d.key", l);
      gint64 kshape[3] = { n_keys, a->n_kv_heads, a->head_dim };
      lsc_tensor_writer_add_f32_borrowed (w, name, 3, kshape, layer_keys (a, l));
      for (int which = 0; which < 2; which++)
        {
          const float *src = which == 0 ? a->layer_lse[ls]
                             : a->layer_scale != NULL ? a->layer_scale[ls] : NULL;
          if (src == NULL)
            continue;
          for (int h = 0; h < a->n_ch; h++)
            memcpy (packed + (gsize) h * n_rows, src + (gsize) h * a->row_cap,
                    n_rows * sizeof (float));
          g_snprintf (name, sizeof name, "attn.store.%d.%s", l, which == 0 ? "lse" : "scale");
          gint64 rshape[2] = { a->n_ch, n_rows };
          lsc_tensor_writer_add_f32 (w, name, 2, rshape, packed);
        }
    }
  return TRUE;
}

/* Frees a store being loaded; the error is already set. */
static LscAttentionStore *
drop (LscAttentionStore *a)
{
  _lsc_attention_store_free (a);
  return NULL;
}

static LscAttentionStore *
load_failed (LscAttentionStore *a, GError **error, const char *path, const char *format, ...)
  G_GNUC_PRINTF (4, 5);

static LscAttentionStore *
load_failed (LscAttentionStore *a, GError **error, const char *path, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "%s: %s", path, msg);
  return drop (a);
}

LscAttentionStore *
lsc_attention_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  LscTensorReader *r = lsc_tensor_reader_open (path, error);
  return r != NULL ? lsc_attention_load_reader (r, error) : NULL;
}

LscAttentionStore *
lsc_attention_load_reader (LscTensorReader *r, GError **error)
{
  g_return_val_if_fail (r != NULL, NULL);
  const char *path = lsc_tensor_reader_get_path (r);
  LscAttentionStore *a = g_new0 (LscAttentionStore, 1);
  a->file = r;

  if (!lsc_tensor_reader_lookup (r, "attn.store.geometry", NULL, NULL))
    return load_failed (a, error, path, "no attention store in this file (tensor "
                        "'attn.store.geometry' is missing: the run was saved without "
                        "\"store\": true in its capture)");
  gint64 shape[3] = { G_N };
  const gint32 *g = lsc_tensor_reader_get_i32 (r, "attn.store.geometry", 1, shape, error);
  if (g == NULL)
    return drop (a);
  if (g[G_VERSION] != STORE_VERSION)
    return load_failed (a, error, path, "attn.store.geometry: store version %d is not supported "
                        "(this Longscope reads version %d)", g[G_VERSION], STORE_VERSION);
  static const char *const fields[] = { "version", "n_layers", "n_heads", "n_kv_heads",
                                        "head_dim", "row_start", "n_rows", "scales" };
  static const int min[] = { 0, 1, 1, 1, 1, 0, 0, 0 };
  static const int max[] = { 1, 1 << 16, 1 << 16, 1 << 16, 1 << 16, G_MAXINT / 2, G_MAXINT / 2, 1 };
  for (int i = 1; i < G_N; i++)
    if (g[i] < min[i] || g[i] > max[i])
      return load_failed (a, error, path, "attn.store.geometry: %s = %d is out of range [%d, %d]",
                          fields[i], g[i], min[i], max[i]);
  if (g[G_HEADS] % g[G_KV_HEADS] != 0)
    return load_failed (a, error, path, "attn.store.geometry: n_heads = %d is not a multiple of "
                        "n_kv_heads = %d", g[G_HEADS], g[G_KV_HEADS]);
  a->n_layers = g[G_LAYERS];
  a->n_heads = g[G_HEADS];
  a->n_kv_heads = g[G_KV_HEADS];
  a->head_dim = g[G_HEAD_DIM];
  a->row_start = g[G_ROW_START];
  a->row_cap = g[G_ROWS];
  int n_keys = a->row_start + a->row_cap;

  /* which layers and heads, each once and in range */
  const char *lists[2] = { "attn.store.layers", "attn.store.heads" };
  int n_of[2] = { a->n_layers, a->n_heads };
  int *slots[2] = { a->layer_slot = g_new (int, a->n_layers), a->head_slot = g_new (int, a->n_heads) };
  int *counts[2] = { &a->n_cl, &a->n_ch };
  for (int k = 0; k < 2; k++)
    {
      shape[0] = -1;
      const gint32 *list = lsc_tensor_reader_get_i32 (r, lists[k], 1, shape, error);
      if (list == NULL)
        return drop (a);
      for (int i = 0; i < n_of[k]; i++)
        slots[k][i] = -1;
      for (gint64 i = 0; i < shape[0]; i++)
        {
          if (list[i] < 0 || list[i] >= n_of[k] || slots[k][list[i]] >= 0)
            return load_failed (a, error, path, "%s[%" G_GINT64_FORMAT "] = %d is out of range "
                                "or repeated (%d %s)", lists[k], i, list[i], n_of[k],
                                k == 0 ? "layers" : "heads");
          slots[k][list[i]] = (int) i;
        }
      *counts[k] = (int) shape[0];
    }
  shape[0] = a->n_layers;
  const gint32 *windows = lsc_tensor_reader_get_i32 (r, "attn.store.windows", 1, shape, error);
  if (windows == NULL)
    return drop (a);
  a->windows = g_new (int, a->n_layers);
  for (int l = 0; l < a->n_layers; l++)
    {
      if (windows[l] < 0)
        return load_failed (a, error, path, "attn.store.windows[%d] = %d is negative", l,
                            windows[l]);
      a->windows[l] = windows[l];
    }

  a->layer_q = g_new0 (const float *, MAX (a->n_cl, 1));
  a->layer_lse = g_new0 (const float *, MAX (a->n_cl, 1));
  a->layer_scale = g[G_SCALES] ? g_new0 (const float *, MAX (a->n_cl, 1)) : NULL;
  a->keys = g_new0 (const float *, a->n_layers);
  for (int l = 0; l < a->n_layers; l++)
    {
      int ls = a->layer_slot[l];
      if (ls < 0)
        continue;
      char name[64];
      g_snprintf (name, sizeof name, "attn.store.%d.query", l);
      gint64 qshape[3] = { a->row_cap, a->n_ch, a->head_dim };
      gint64 kshape[3] = { n_keys, a->n_kv_heads, a->head_dim };
      gint64 rshape[2] = { a->n_ch, a->row_cap };
      if ((a->layer_q[ls] = lsc_tensor_reader_get_f32 (r, name, 3, qshape, error)) == NULL)
        return drop (a);
      g_snprintf (name, sizeof name, "attn.store.%d.key", l);
      if ((a->keys[l] = lsc_tensor_reader_get_f32 (r, name, 3, kshape, error)) == NULL)
        return drop (a);
      g_snprintf (name, sizeof name, "attn.store.%d.lse", l);
      if ((a->layer_lse[ls] = lsc_tensor_reader_get_f32 (r, name, 2, rshape, error)) == NULL)
        return drop (a);
      g_snprintf (name, sizeof name, "attn.store.%d.scale", l);
      if (a->layer_scale != NULL
          && (a->layer_scale[ls] = lsc_tensor_reader_get_f32 (r, name, 2, rshape, error)) == NULL)
        return drop (a);
    }
  return a;
}

void
lsc_attention_free (LscAttentionStore *a)
{
  if (a == NULL)
    return;
  g_return_if_fail (a->session == NULL);
  _lsc_attention_store_free (a);
}

void
lsc_attention_get_shape (const LscAttentionStore *a, int *n_layers, int *n_heads,
                         int *n_kv_heads, int *head_dim)
{
  if (n_layers != NULL)
    *n_layers = a->n_layers;
  if (n_heads != NULL)
    *n_heads = a->n_heads;
  if (n_kv_heads != NULL)
    *n_kv_heads = a->n_kv_heads;
  if (head_dim != NULL)
    *head_dim = a->head_dim;
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
 * the smallest 2^k with at most LSC_PYRAMID_MAX_CELLS blocks. */
static int
pyramid_block (int n_rows, int n_keys)
{
  int block = 1;
  while ((gint64) ceil_div (n_rows, block) * ceil_div (n_keys, block) > LSC_PYRAMID_MAX_CELLS)
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

/* Bytes of scores a thread of the streaming pass holds at most (it takes
 * 16 rows at a time in any case). */
static gsize pool_scores_cap = 64 << 20;

void
_lsc_attention_set_pool_scores_cap (gsize bytes)
{
  pool_scores_cap = bytes;
}

/* The streaming pass on the host over rows [r0, r0 + n_rows) of the head:
 * the finest pyramid cells (cols_b per row of cells) and the sums over rows
 * of entropy, sink mass, max p and distance. */
static void
pool_cpu (const HeadView *v, int r0, int n_rows, int sink_tokens, int block, int cols_b,
          float *bmax, double *bsum, gint64 *bcount, double sums[4])
{
  int n_keys = r0 + n_rows;
  /* The threads take whole blocks of rows, each with its own buffer and a
   * single-threaded OpenBLAS (never a threaded OpenBLAS inside an OpenMP
   * region); a block covers whole pyramid rows, so no two threads pool into
   * the same cell. A block's rows go `sub` at a time: S = Q_sub K^T by one
   * GEMM, then p per row. Pyramid rows are n / 512 tall, so at long
   * contexts whole blocks would not fit (2048 rows of 1M keys: 8 GiB a
   * thread). */
  int step = MAX (block, 16);
  int n_blocks = ceil_div (n_rows, step);
  int sub = (int) CLAMP (pool_scores_cap / ((gsize) n_keys * sizeof (float)), 16, (gsize) step);
  double entropy = 0, sink = 0, maxp = 0, dist = 0;
  gboolean hooked = v->hooks != NULL;
  int nt = store_threads (v->a);

  openblas_set_num_threads (1);
#pragma omp parallel num_threads (nt) reduction (+:entropy, sink, maxp, dist)
  {
    float *S = g_new (float, (gsize) sub * n_keys);   /* (sub, n_keys) */
    guint8 *buf = hooked ? g_malloc (n_keys) : NULL;
#pragma omp for schedule (dynamic, 1)
    for (int b = 0; b < n_blocks; b++)
      {
        int b0 = r0 + b * step, b1 = MIN (b0 + step, r0 + n_rows);
        for (int i0 = b0; i0 < b1; i0 += sub)
          {
            int i1 = MIN (i0 + sub, b1);
            /* keys [k0, i1) cover every row of the GEMM: a sliding window's
             * first key grows with the row, so at 1M tokens a 4k window
             * computes 1/250 of the scores */
            int k0 = row_first_key (v, i0), width = i1 - k0;
            cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, width, v->hd, 1.0f,
                         v->q + (gsize) i0 * v->q_stride, v->q_stride,
                         v->keys + (gsize) k0 * v->kv_dim, v->kv_dim, 0.0f, S, width);
            for (int i = i0; i < i1; i++)
              {
                const float *row = S + (gsize) (i - i0) * width;   /* key j at row[j - k0] */
                int first = row_first_key (v, i);
                const guint8 *hidden = row_hidden (v, i, buf);
                float s = row_scale (v, i), lse = v->lse[i];
                float rmax = 0;
                gsize cell_row = (gsize) ((i - r0) / block) * cols_b;
                for (int j = first; j <= i; j++)
                  {
                    if (hidden != NULL && hidden[j])
                      continue;
                    float p = expf (s * row[j - k0] - lse);
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
      }
    g_free (S);
    g_free (buf);
  }
  openblas_set_num_threads (nt);
  sums[0] = entropy;
  sums[1] = sink;
  sums[2] = maxp;
  sums[3] = dist;
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

  /* the sums over rows of entropy, sink mass, max p and distance */
  double sums[4];
  if (on_gpu (a))
    {
      LscMapHead h = map_head (&v);
      if (!_lsc_cuda_map_pool (a->session, &h, r0, n_rows, sink_tokens, block, bmax, bsum, bcount,
                               sums, error))
        return FALSE;
    }
  else
    pool_cpu (&v, r0, n_rows, sink_tokens, block, cols_b, bmax, bsum, bcount, sums);

  if (stats != NULL)
    {
      stats->entropy = sums[0] / n_rows;
      stats->sink_mass = sums[1] / n_rows;
      stats->max_prob = sums[2] / n_rows;
      stats->mean_distance = sums[3] / n_rows;
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
