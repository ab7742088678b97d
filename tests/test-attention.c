/* SPDX-License-Identifier: MIT
 *
 * Attention capture: tiles recomputed from the store against a naive
 * float64 softmax over the same queries and keys, masks and scales from
 * hooks, the pooled pyramid and statistics against pooling of the full map,
 * partial plans and the memory budget, and stores saved to a tensor file
 * and read back.
 */
#include "config.h"

#include <json-c/json.h>
#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-llama-private.h"   /* _lsc_attention_set_pool_scores_cap () */
#include "lsc-session.h"
#include "lsc-tensor-reader.h"
#include "lsc-test-util.h"

typedef struct {
  LscModel *model;
  LscSession *session;
  const LscAttentionStore *store;
  const LscModelConfig *c;
  int n;
} Run;

static void
run_clear (Run *r)
{
  lsc_session_free (r->session);
  lsc_model_free (r->model);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

static gboolean
run_model (Run *r, const char *rel, int n, const LscSessionParams *params)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = rel[0] == '/' ? g_strdup (rel) : lsc_test_shared_path (rel);
  if (path == NULL)
    return FALSE;
  r->model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  r->c = lsc_model_get_config (r->model);
  r->session = lsc_session_new (r->model, params, &error);
  g_assert_no_error (error);
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = i == 0 ? 1 : (int) ((i * 2654435761u) % (guint) r->c->vocab_size);
  g_assert_true (lsc_session_eval (r->session, tokens, n, NULL, FALSE, NULL, NULL, &error));
  g_assert_no_error (error);
  r->store = lsc_session_get_attention (r->session);
  r->n = n;
  return TRUE;
}

/* Naive float64 softmax of row i over its visible keys; hidden (i + 1) may be NULL. */
static void
naive_row (const Run *r, int layer, int head, int i, int window, double scale_mult,
           const guint8 *hidden, double *p)
{
  int hd = r->c->head_dim, kvh = head / (r->c->n_heads / r->c->n_kv_heads);
  float q[256], k[256];
  g_autoptr(GError) error = NULL;
  g_assert_true (lsc_attention_get_query (r->store, layer, head, i, q, &error));
  double scale = scale_mult / sqrt ((double) hd), max = -INFINITY, sum = 0;
  int first = window > 0 ? MAX (0, i - window + 1) : 0;
  for (int j = 0; j <= i; j++)
    {
      p[j] = -INFINITY;
      if (j < first || (hidden != NULL && hidden[j]))
        continue;
      g_assert_true (lsc_attention_get_key (r->store, layer, kvh, j, k, &error));
      double dot = 0;
      for (int d = 0; d < hd; d++)
        dot += (double) q[d] * k[d];
      p[j] = scale * dot;
      max = fmax (max, p[j]);
    }
  for (int j = 0; j <= i; j++)
    sum += isinf (p[j]) ? 0 : exp (p[j] - max);
  for (int j = 0; j <= i; j++)
    p[j] = isinf (p[j]) ? 0 : exp (p[j] - max) / sum;
}

typedef void (*MaskFunc) (int layer, int head, int pos, guint8 *hidden);

/* Random tiles, the diagonal, the masked upper triangle and the last row,
 * all within |p - p64| <= 1e-6 + 1e-5 p64. */
static void
check_tiles (const Run *r, int window, double (*scale_of) (int, int, int), MaskFunc mask)
{
  g_autoptr(GError) error = NULL;
  int n = r->n, row0 = lsc_attention_get_row_start (r->store);
  int row1 = row0 + lsc_attention_get_n_rows (r->store);   /* captured rows [row0, row1) */
  g_autofree double *p64 = g_new (double, n);
  g_autofree float *tile = g_new (float, (gsize) n * n);
  g_autofree guint8 *hidden = g_new (guint8, n);
  double worst = 0;

  for (int t = 0; t < 24; t++)
    {
      int layer = g_test_rand_int_range (0, r->c->n_layers);
      int head = g_test_rand_int_range (0, r->c->n_heads);
      int q0, q1, k0, k1;
      if (!lsc_attention_has_head (r->store, layer, head))
        {
          t--;
          continue;
        }
      switch (t % 4)
        {
        case 0:   /* the diagonal */
          q0 = g_test_rand_int_range (row0, row1 - 16);
          q1 = q0 + 16;
          k0 = q0;
          k1 = q1;
          break;
        case 1:   /* the last row, every key */
          q0 = row1 - 1;
          q1 = row1;
          k0 = 0;
          k1 = n;
          break;
        case 2:   /* above the diagonal: all masked */
          q0 = row0;
          q1 = row0 + 8;
          k0 = row0 + 8;
          k1 = MIN (n, row0 + 40);
          break;
        default:  /* anywhere */
          q0 = g_test_rand_int_range (row0, row1 - 1);
          q1 = g_test_rand_int_range (q0 + 1, row1 + 1);
          k0 = g_test_rand_int_range (0, n - 1);
          k1 = g_test_rand_int_range (k0 + 1, n + 1);
        }
      lsc_attention_tile (r->store, layer, head, q0, q1, k0, k1, -1.0f, tile, &error);
      g_assert_no_error (error);
      for (int i = q0; i < q1; i++)
        {
          memset (hidden, 0, n);
          if (mask != NULL)
            mask (layer, head, i, hidden);
          naive_row (r, layer, head, i, window, scale_of ? scale_of (layer, head, i) : 1.0,
                     mask != NULL ? hidden : NULL, p64);
          for (int j = k0; j < k1; j++)
            {
              float got = tile[(gsize) (i - q0) * (k1 - k0) + (j - k0)];
              gboolean visible = j <= i && p64[j] > 0;
              if (!visible && j <= i && !(j < (window > 0 ? i - window + 1 : 0)) && !hidden[j])
                visible = TRUE;   /* visible but underflowed to 0 in float64 too */
              if (!visible)
                {
                  g_assert_cmpfloat (got, ==, -1.0f);
                  continue;
                }
              double err = fabs (got - p64[j]);
              worst = fmax (worst, err / (1e-6 + 1e-5 * p64[j]));
              if (err > 1e-6 + 1e-5 * p64[j])
                g_error ("layer %d head %d p[%d][%d] = %.9g, float64 %.9g", layer, head, i, j,
                         got, p64[j]);
            }
        }
    }
  g_test_message ("worst error: %.3f of the tolerance", worst);
}

static LscSessionParams
capture_all (gboolean reference)
{
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.reference = reference;
  p.capture.enabled = TRUE;
  return p;
}

static void
test_tiles_stories (void)
{
  LscSessionParams p = capture_all (FALSE);
  g_auto(Run) r = { 0 };
  if (!run_model (&r, "models/stories260K/stories260K.bin", 200, &p))
    return;
  check_tiles (&r, 0, NULL, NULL);
  g_assert_cmpint (lsc_attention_get_n_rows (r.store), ==, 200);
  /* queries and normalisers only: 5 layers x 8 heads x 200 rows x (8 + 1) floats */
  g_assert_cmpuint (lsc_attention_get_bytes (r.store), ==, 5ull * 8 * 4096 * 9 * 4);
}

static void
test_tiles_tiny_llama (void)
{
  LscSessionParams p = capture_all (FALSE);
  g_auto(Run) r = { 0 };
  if (!run_model (&r, "models/random/tiny-llama", 300, &p))
    return;
  check_tiles (&r, 0, NULL, NULL);
}

/* A hand-made mask and scale: head 1 of every layer cannot see odd keys
 * other than itself; layer 0 head 0 runs at temperature 0.5. */
static void
odd_mask (int layer, int head, int pos, guint8 *hidden)
{
  if (head == 1)
    for (int j = 1; j < pos; j += 2)
      hidden[j] = 1;
}

static void
hook_mask (gpointer data, int layer, int head, int pos, guint8 *hidden)
{
  odd_mask (layer, head, pos, hidden);
}

static double
hot_scale (int layer, int head, int pos)
{
  return layer == 0 && head == 0 ? 2.0 : 1.0;
}

static float
hook_scale (gpointer data, int layer, int head, int pos)
{
  return (float) hot_scale (layer, head, pos);
}

static void
test_hooks (void)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p = capture_all (FALSE);
  p.hooks.scale = hook_scale;
  p.hooks.mask_row = hook_mask;
  g_auto(Run) r = { 0 };
  if (!run_model (&r, "models/stories260K/stories260K.bin", 120, &p))
    return;
  check_tiles (&r, 0, hot_scale, odd_mask);

  /* the hooks changed what the model computed */
  float scale, lse;
  g_assert_true (lsc_attention_get_row (r.store, 0, 0, 50, &scale, &lse, &error));
  g_assert_cmpfloat (fabsf (scale - 2.0f / sqrtf (8.0f)), <, 1e-7);
  g_autofree float *row = g_new (float, 120);
  g_assert_true (lsc_attention_tile (r.store, 2, 1, 99, 100, 0, 100, -1.0f, row, &error));
  g_assert_cmpfloat (row[1], ==, -1.0f);
  g_assert_cmpfloat (row[97], ==, -1.0f);
  g_assert_cmpfloat (row[98], >=, 0.0f);
  g_assert_cmpfloat (row[99], >=, 0.0f);
}

/* Reference and fast paths capture the same maps: their queries and keys
 * differ by the forward's own float rounding (GEMM vs matrix-vector sums),
 * so the maps agree to that, not to the tiles' float64 tolerance. */
static void
test_paths_agree (void)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams pf = capture_all (FALSE), pr = capture_all (TRUE);
  g_auto(Run) f = { 0 };
  g_auto(Run) r = { 0 };
  if (!run_model (&f, "models/stories260K/stories260K.bin", 150, &pf)
      || !run_model (&r, "models/stories260K/stories260K.bin", 150, &pr))
    return;
  g_autofree float *a = g_new (float, 150 * 150);
  g_autofree float *b = g_new (float, 150 * 150);
  for (int l = 0; l < 5; l++)
    for (int h = 0; h < 8; h++)
      {
        g_assert_true (lsc_attention_tile (f.store, l, h, 0, 150, 0, 150, 0, a, &error));
        g_assert_true (lsc_attention_tile (r.store, l, h, 0, 150, 0, 150, 0, b, &error));
        for (int i = 0; i < 150 * 150; i++)
          g_assert_cmpfloat (fabsf (a[i] - b[i]), <=, 1e-5f + 1e-4f * b[i]);
      }
}

/* Pyramid and statistics of one head against pooling of its full map (NaN
 * where a row cannot see a key). */
static void
check_pyramid_and_stats (const Run *r, int layer, int head)
{
  g_autoptr(GError) error = NULL;
  int n = r->n;
  g_autofree float *map = g_new (float, (gsize) n * n);
  g_autoptr(LscAttentionPyramid) pyr = NULL;
  LscHeadStats st;
  g_assert_true (lsc_attention_analyze (r->store, layer, head, 4, &pyr, &st, &error));
  g_assert_no_error (error);
  g_assert_true (lsc_attention_tile (r->store, layer, head, 0, n, 0, n, NAN, map, &error));

  /* statistics */
  double entropy = 0, sink = 0, maxp = 0, dist = 0;
  for (int i = 0; i < n; i++)
    {
      double m = 0;
      for (int j = 0; j <= i; j++)
        {
          double x = map[(gsize) i * n + j];
          if (isnan (x))
            continue;
          if (x > 0)
            entropy -= x * log (x);
          if (j < 4)
            sink += x;
          m = fmax (m, x);
          dist += x * (i - j);
        }
      maxp += m;
    }
  g_assert_cmpfloat (fabs (st.entropy - entropy / n), <=, 1e-4 * entropy / n);
  g_assert_cmpfloat (fabs (st.sink_mass - sink / n), <=, 1e-5);
  g_assert_cmpfloat (fabs (st.max_prob - maxp / n), <=, 1e-5);
  g_assert_cmpfloat (fabs (st.mean_distance - dist / n), <=, 1e-4 * dist / n);

  /* every level against naive pooling */
  g_assert_cmpint (pyr->levels[0].block, ==, 2);
  g_assert_cmpint (pyr->levels[pyr->n_levels - 1].rows, ==, 1);
  for (int k = 0; k < pyr->n_levels; k++)
    {
      const LscPyramidLevel *lv = &pyr->levels[k];
      g_assert_cmpint (lv->rows, ==, (n + lv->block - 1) / lv->block);
      for (int br = 0; br < lv->rows; br++)
        for (int bc = 0; bc < lv->cols; bc++)
          {
            double mx = NAN, sum = 0;
            int count = 0;
            for (int i = br * lv->block; i < MIN (n, (br + 1) * lv->block); i++)
              for (int j = bc * lv->block; j < MIN (n, (bc + 1) * lv->block); j++)
                {
                  float x = map[(gsize) i * n + j];
                  if (isnan (x))
                    continue;
                  mx = isnan (mx) ? x : fmax (mx, x);
                  sum += x;
                  count++;
                }
            float gmax = lv->max[br * lv->cols + bc], gmean = lv->mean[br * lv->cols + bc];
            if (count == 0)
              {
                g_assert_true (isnan (gmax) && isnan (gmean));
                continue;
              }
            g_assert_cmpfloat (fabs (gmax - mx), <=, 1e-6 + 1e-4 * mx);
            g_assert_cmpfloat (fabs (gmean - sum / count), <=, 1e-6 + 1e-4 * sum / count);
          }
    }

  /* mass: every row sums to one; a key span of a query span */
  double mass;
  g_assert_true (lsc_attention_mass (r->store, layer, head, 0, n, 0, n, &mass, &error));
  g_assert_cmpfloat (fabs (mass - n), <=, 1e-3);
  g_assert_true (lsc_attention_mass (r->store, layer, head, n - 100, n, n - 110, n - 100, &mass,
                                     &error));
  double want = 0;
  for (int i = n - 100; i < n; i++)
    for (int j = n - 110; j < n - 100; j++)
      if (!isnan (map[(gsize) i * n + j]))
        want += map[(gsize) i * n + j];
  g_assert_cmpfloat (fabs (mass - want), <=, 1e-5 * MAX (want, 1));
}

/* 700^2 > 2^18: the finest stored level pools 2 x 2 */
static void
test_pyramid_and_stats (void)
{
  LscSessionParams p = capture_all (FALSE);
  g_auto(Run) r = { 0 };
  if (!run_model (&r, "models/random/tiny-llama", 700, &p))
    return;
  check_pyramid_and_stats (&r, 0, 1);
  check_pyramid_and_stats (&r, 2, 3);
}

/* A sliding window of 8: tiles, and the streaming pass, which computes only
 * the scores of the keys its rows can see (a 4k window at 1M tokens: 1/250
 * of them). */
static void
test_sliding_window (void)
{
  LscSessionParams p = capture_all (FALSE);
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf",
                                                "mistral-sliding-window", NULL);
  g_auto(Run) r = { 0 };
  run_model (&r, dir, 700, &p);
  g_assert_cmpint (r.c->sliding_window, ==, 8);
  check_tiles (&r, 8, NULL, NULL);
  check_pyramid_and_stats (&r, 0, 1);
  check_pyramid_and_stats (&r, 1, 3);
}

/* The streaming pass cuts a pyramid row of rows into GEMMs of fewer rows
 * where their scores would pass its cap (at 1M tokens a pyramid row is 2048
 * rows: 8 GiB of scores a thread): the same pyramid and statistics. 8200
 * rows make the finest level pool 32 x 32; a cap of one byte takes 16 rows
 * at a time. */
static void
test_pool_in_parts (void)
{
  g_autoptr(GError) error = NULL;
  const int layers[] = { 1 }, heads[] = { 2 }, n = 8200;
  LscSessionParams p = capture_all (FALSE);
  p.n_ctx = n;
  p.capture.layers = layers;
  p.capture.n_layers = 1;
  p.capture.heads = heads;
  p.capture.n_heads = 1;
  g_auto(Run) r = { 0 };
  if (!run_model (&r, "models/random/tiny-llama", n, &p))
    return;
  LscAttentionPyramid *pyr[2];
  LscHeadStats st[2];
  for (int i = 0; i < 2; i++)
    {
      _lsc_attention_set_pool_scores_cap (i == 0 ? 64 << 20 : 1);
      g_assert_true (lsc_attention_analyze (r.store, 1, 2, 4, &pyr[i], &st[i], &error));
      g_assert_no_error (error);
    }
  _lsc_attention_set_pool_scores_cap (64 << 20);
  g_assert_cmpint (pyr[0]->levels[0].block, ==, 32);
  g_assert_cmpint (pyr[0]->n_levels, ==, pyr[1]->n_levels);
  for (int k = 0; k < pyr[0]->n_levels; k++)
    {
      gsize m = (gsize) pyr[0]->levels[k].rows * pyr[0]->levels[k].cols * sizeof (float);
      g_assert_cmpmem (pyr[0]->levels[k].max, m, pyr[1]->levels[k].max, m);
      g_assert_cmpmem (pyr[0]->levels[k].mean, m, pyr[1]->levels[k].mean, m);
    }
  g_assert_cmpfloat (fabs (st[0].entropy - st[1].entropy), <=, 1e-9 * st[0].entropy);
  g_assert_cmpfloat (fabs (st[0].mean_distance - st[1].mean_distance), <=,
                     1e-9 * st[0].mean_distance);
  g_assert_cmpfloat (fabs (st[0].max_prob - st[1].max_prob), <=, 1e-9 * st[0].max_prob);
  lsc_attention_pyramid_free (pyr[0]);
  lsc_attention_pyramid_free (pyr[1]);
}

static void
test_partial_plan_and_budget (void)
{
  g_autoptr(GError) error = NULL;
  const int layers[] = { 1 }, heads[] = { 0, 3 };
  LscSessionParams p = capture_all (FALSE);
  p.capture.layers = layers;
  p.capture.n_layers = 1;
  p.capture.heads = heads;
  p.capture.n_heads = 2;
  p.capture.row_start = 50;
  p.capture.row_end = 120;
  g_auto(Run) r = { 0 };
  if (!run_model (&r, "models/stories260K/stories260K.bin", 150, &p))
    return;
  g_assert_true (lsc_attention_has_head (r.store, 1, 3));
  g_assert_false (lsc_attention_has_head (r.store, 1, 1));
  g_assert_false (lsc_attention_has_head (r.store, 0, 0));
  g_assert_cmpint (lsc_attention_get_n_rows (r.store), ==, 70);
  g_assert_cmpuint (lsc_attention_get_bytes (r.store), ==, 1ull * 2 * 70 * 9 * 4);
  check_tiles (&r, 0, NULL, NULL);

  float tile[4];
  g_assert_false (lsc_attention_tile (r.store, 1, 1, 60, 61, 0, 4, 0, tile, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "layer 1 head 1 was not captured", NULL);
  g_clear_error (&error);
  g_assert_false (lsc_attention_tile (r.store, 1, 0, 40, 41, 0, 4, 0, tile, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "rows [40, 41)",
                         "captured rows [50, 120)", NULL);
  g_clear_error (&error);
  /* keys of the captured layers only, whatever the backend (a GPU session
   * keeps no host copy of the others) */
  float key[8];
  g_assert_true (lsc_attention_get_key (r.store, 1, 3, 149, key, &error));
  g_assert_false (lsc_attention_get_key (r.store, 0, 3, 149, key, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "no key for layer 0 KV head 3 at position 149",
                         "150 keys of its captured layers", NULL);
  g_clear_error (&error);

  /* rewinding drops the rows past the new position */
  lsc_session_rewind (r.session, 100);
  g_assert_cmpint (lsc_attention_get_n_rows (r.store), ==, 50);

  /* a store over the budget fails before anything runs */
  g_autofree char *path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  LscSessionParams big = capture_all (FALSE);
  big.n_ctx = 100000;
  big.capture.memory_budget = 64 << 20;
  g_autoptr(LscSession) s = lsc_session_new (r.model, &big, &error);
  g_assert_null (s);
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_OUT_OF_MEMORY,
                         "5 layers x 8 heads x 100000 rows needs 137.3 MiB",
                         "capture budget of 64.0 MiB", NULL);
}


/* ---- saved stores ---- */

/* b, read back from a file, holds what a holds: the same heads, and for
 * each the same queries, normalisers and scales, the same tiles (bit for
 * bit: the same arithmetic on the same numbers), pyramid and statistics. */
static void
assert_same_store (const LscAttentionStore *a, const LscAttentionStore *b)
{
  g_autoptr(GError) error = NULL;
  int nl, nh, nkv, hd, nl2, nh2, nkv2, hd2;
  lsc_attention_get_shape (a, &nl, &nh, &nkv, &hd);
  lsc_attention_get_shape (b, &nl2, &nh2, &nkv2, &hd2);
  g_assert_cmpint (nl, ==, nl2);
  g_assert_cmpint (nh, ==, nh2);
  g_assert_cmpint (nkv, ==, nkv2);
  g_assert_cmpint (hd, ==, hd2);
  int r0 = lsc_attention_get_row_start (a), n = lsc_attention_get_n_rows (a);
  g_assert_cmpint (lsc_attention_get_row_start (b), ==, r0);
  g_assert_cmpint (lsc_attention_get_n_rows (b), ==, n);
  gsize cells = (gsize) n * (r0 + n);
  g_autofree float *ta = g_new (float, cells), *tb = g_new (float, cells);
  g_autofree float *qa = g_new (float, hd), *qb = g_new (float, hd);
  int checked = 0;
  for (int l = 0; l < nl; l++)
    for (int h = 0; h < nh; h++)
      {
        g_assert_cmpint (lsc_attention_has_head (a, l, h), ==, lsc_attention_has_head (b, l, h));
        if (!lsc_attention_has_head (a, l, h))
          continue;
        checked++;
        g_assert_true (lsc_attention_tile (a, l, h, r0, r0 + n, 0, r0 + n, NAN, ta, &error));
        g_assert_true (lsc_attention_tile (b, l, h, r0, r0 + n, 0, r0 + n, NAN, tb, &error));
        g_assert_no_error (error);
        g_assert_cmpmem (ta, cells * sizeof (float), tb, cells * sizeof (float));
        for (int i = r0; i < r0 + n; i++)
          {
            float sa, la, sb, lb;
            g_assert_true (lsc_attention_get_query (a, l, h, i, qa, &error));
            g_assert_true (lsc_attention_get_query (b, l, h, i, qb, &error));
            g_assert_cmpmem (qa, hd * sizeof (float), qb, hd * sizeof (float));
            g_assert_true (lsc_attention_get_row (a, l, h, i, &sa, &la, &error));
            g_assert_true (lsc_attention_get_row (b, l, h, i, &sb, &lb, &error));
            g_assert_cmpfloat (sa, ==, sb);
            g_assert_cmpfloat (la, ==, lb);
          }
        g_autoptr(LscAttentionPyramid) pa = NULL;
        g_autoptr(LscAttentionPyramid) pb = NULL;
        LscHeadStats st_a, st_b;
        g_assert_true (lsc_attention_analyze (a, l, h, 2, &pa, &st_a, &error));
        g_assert_true (lsc_attention_analyze (b, l, h, 2, &pb, &st_b, &error));
        g_assert_cmpint (pa->n_levels, ==, pb->n_levels);
        for (int k = 0; k < pa->n_levels; k++)
          {
            gsize m = (gsize) pa->levels[k].rows * pa->levels[k].cols * sizeof (float);
            g_assert_cmpmem (pa->levels[k].max, m, pb->levels[k].max, m);
            g_assert_cmpmem (pa->levels[k].mean, m, pb->levels[k].mean, m);
          }
        /* sums over threads: the same to rounding */
        g_assert_cmpfloat (fabs (st_a.entropy - st_b.entropy), <=, 1e-9 * st_a.entropy);
        g_assert_cmpfloat (fabs (st_a.mean_distance - st_b.mean_distance), <=,
                           1e-9 * st_a.mean_distance);
      }
  g_assert_cmpint (checked, >, 0);
  for (int kv = 0; kv < nkv; kv++)
    {
      g_assert_true (lsc_attention_get_key (a, 1, kv, r0 + n - 1, qa, &error));
      g_assert_true (lsc_attention_get_key (b, 1, kv, r0 + n - 1, qb, &error));
      g_assert_cmpmem (qa, hd * sizeof (float), qb, hd * sizeof (float));
    }
}

static char *
save_store (const LscAttentionStore *a, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTensorWriter) w = lsc_tensor_writer_new ();
  g_assert_true (lsc_attention_save (a, w, &error));
  g_assert_no_error (error);
  char *path = g_build_filename (lsc_test_tmpdir (), name, NULL);
  g_assert_true (lsc_tensor_writer_write (w, path, &error));
  g_assert_no_error (error);
  return path;
}

/* A sliding window, GQA, a scale hook and a partial plan survive the file. */
static void
test_save_and_load (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf",
                                                "mistral-sliding-window", NULL);
  const int layers[] = { 1, 0 }, heads[] = { 3, 0, 2 };
  LscSessionParams p = capture_all (FALSE);
  p.capture.layers = layers;
  p.capture.n_layers = 2;
  p.capture.heads = heads;
  p.capture.n_heads = 3;
  p.capture.row_start = 5;
  p.capture.row_end = 60;   /* more than will run: 35 rows of 40 tokens */
  p.hooks.scale = hook_scale;
  g_auto(Run) r = { 0 };
  run_model (&r, dir, 40, &p);
  g_assert_cmpint (r.c->n_kv_heads, <, r.c->n_heads);
  g_autofree char *path = save_store (r.store, "store-window.safetensors");
  /* one store per tensor file */
  g_autoptr(LscTensorWriter) twice = lsc_tensor_writer_new ();
  g_assert_true (lsc_attention_save (r.store, twice, &error));
  g_assert_false (lsc_attention_save (r.store, twice, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "an attention store is already in this tensor file", NULL);
  g_clear_error (&error);
  g_autoptr(LscAttentionStore) b = lsc_attention_load (path, &error);
  g_assert_no_error (error);
  assert_same_store (r.store, b);
  /* queries, normalisers and scales of the 35 rows run */
  g_assert_cmpuint (lsc_attention_get_bytes (b), ==, 2ull * 3 * 35 * (r.c->head_dim + 2) * 4);
  /* a 1000-token capture of every head reopens just as well */
  LscSessionParams all = capture_all (FALSE);
  g_auto(Run) big = { 0 };
  if (run_model (&big, "models/random/tiny-llama", 1000, &all))
    {
      g_autofree char *bpath = save_store (big.store, "store-tiny-llama.safetensors");
      g_autoptr(LscAttentionStore) bb = lsc_attention_load (bpath, &error);
      g_assert_no_error (error);
      assert_same_store (big.store, bb);
    }
}

static void
test_save_refuses_mask_hooks (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf",
                                                "mistral-sliding-window", NULL);
  LscSessionParams p = capture_all (FALSE);
  p.hooks.mask_row = hook_mask;
  g_auto(Run) r = { 0 };
  run_model (&r, dir, 20, &p);
  g_autoptr(LscTensorWriter) w = lsc_tensor_writer_new ();
  g_assert_false (lsc_attention_save (r.store, w, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "the attention store of a run with a mask hook cannot be saved", NULL);
  g_assert_cmpuint (lsc_tensor_writer_get_n_tensors (w), ==, 0);
}

/* A store written by hand: one layer, one head of dimension 2, queries
 * (1, 0) and (0, 1), keys the same, no scale: p[1] = softmax (0, 1/sqrt 2).
 * `broken` names the one thing to get wrong. */
static char *
write_tiny_store (const char *broken)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTensorWriter) w = lsc_tensor_writer_new ();
  const float s = 1.0f / sqrtf (2.0f);
  gint32 geometry[8] = { 1, 1, 1, 1, 2, 0, 2, 0 };
  gint32 layers[1] = { 0 }, heads[1] = { 0 }, windows[1] = { 0 };
  const float q[4] = { 1, 0, 0, 1 };
  const float lse[2] = { s, logf (1.0f + expf (s)) };
  gint64 s1[1] = { 8 }, sl[1] = { 1 }, sq[3] = { 2, 1, 2 }, sr[2] = { 1, 2 };
  if (g_strcmp0 (broken, "version") == 0)
    geometry[0] = 2;
  if (g_strcmp0 (broken, "head_dim") == 0)
    geometry[4] = 0;
  if (g_strcmp0 (broken, "heads") == 0)
    heads[0] = 1;
  if (g_strcmp0 (broken, "window") == 0)
    windows[0] = -3;
  if (g_strcmp0 (broken, "query") == 0)
    sq[0] = 1;
  if (g_strcmp0 (broken, "geometry") != 0)
    lsc_tensor_writer_add_i32 (w, "attn.store.geometry", 1, s1, geometry);
  lsc_tensor_writer_add_i32 (w, "attn.store.layers", 1, sl, layers);
  lsc_tensor_writer_add_i32 (w, "attn.store.heads", 1, sl, heads);
  lsc_tensor_writer_add_i32 (w, "attn.store.windows", 1, sl, windows);
  lsc_tensor_writer_add_f32 (w, "attn.store.0.query", 3, sq, q);
  gint64 sk[3] = { 2, 1, 2 };
  if (g_strcmp0 (broken, "key") == 0)
    lsc_tensor_writer_add_i32 (w, "attn.store.0.key", 3, sk, (const gint32 *) q);
  else
    lsc_tensor_writer_add_f32 (w, "attn.store.0.key", 3, sk, q);
  if (g_strcmp0 (broken, "lse") != 0)
    lsc_tensor_writer_add_f32 (w, "attn.store.0.lse", 2, sr, lse);
  g_autofree char *name = g_strdup_printf ("tiny-store-%s.safetensors", broken ? broken : "ok");
  char *path = g_build_filename (lsc_test_tmpdir (), name, NULL);
  g_assert_true (lsc_tensor_writer_write (w, path, &error));
  return path;
}

static void
test_load_errors (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ok = write_tiny_store (NULL);
  g_autoptr(LscAttentionStore) a = lsc_attention_load (ok, &error);
  g_assert_no_error (error);
  float tile[4];
  g_assert_true (lsc_attention_tile (a, 0, 0, 0, 2, 0, 2, -1.0f, tile, &error));
  g_assert_cmpfloat (tile[0], ==, 1.0f);
  g_assert_cmpfloat (tile[1], ==, -1.0f);
  g_assert_cmpfloat (fabsf (tile[2] - 1.0f / (1.0f + expf (1.0f / sqrtf (2.0f)))), <=, 1e-7);
  g_assert_cmpfloat (fabsf (tile[2] + tile[3] - 1.0f), <=, 1e-7);
  g_assert_false (lsc_attention_has_head (a, 0, 1));

  static const struct { const char *broken, *code, *want; } cases[] = {
    { "geometry", "missing", "no attention store in this file (tensor 'attn.store.geometry' is missing" },
    { "version", "", "attn.store.geometry: store version 2 is not supported (this Longscope reads version 1)" },
    { "head_dim", "", "attn.store.geometry: head_dim = 0 is out of range [1, 65536]" },
    { "heads", "", "attn.store.heads[0] = 1 is out of range or repeated (1 heads)" },
    { "window", "", "attn.store.windows[0] = -3 is negative" },
    { "query", "shape", "tensor 'attn.store.0.query': expected F32 [2, 1, 2], found F32 [1, 1, 2]" },
    { "key", "shape", "tensor 'attn.store.0.key': expected F32 [2, 1, 2], found I32 [2, 1, 2]" },
    { "lse", "missing-tensor", "tensor 'attn.store.0.lse' is missing" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = write_tiny_store (cases[i].broken);
      g_autoptr(LscAttentionStore) b = lsc_attention_load (path, &error);
      g_assert_null (b);
      int code = g_str_equal (cases[i].code, "shape") ? LSC_MODEL_ERROR_BAD_SHAPE
                 : g_str_equal (cases[i].code, "missing-tensor") ? LSC_MODEL_ERROR_MISSING_TENSOR
                 : LSC_MODEL_ERROR_CORRUPT;
      lsc_test_assert_error (error, LSC_MODEL_ERROR, code, path, cases[i].want, NULL);
      g_clear_error (&error);
    }

  /* a file cut short fails on its header, before anything is read */
  g_autoptr(GBytes) bytes = lsc_test_read_file (ok);
  g_autofree char *cut = lsc_test_write_file ("tiny-store-cut.safetensors",
                                              g_bytes_get_data (bytes, NULL),
                                              g_bytes_get_size (bytes) - 9);
  g_assert_null (lsc_attention_load (cut, &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED, cut,
                         "are past the end of the data section", NULL);
}

/* The full maps equal transformers' output_attentions (eager, float32),
 * fixtures made by tools/make-attention-fixture.py. */
static void
test_hf_output_attentions (gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf", data, NULL);
  g_autofree char *path = g_build_filename (dir, "attentions.json", NULL);
  json_object *root = json_object_from_file (path);
  g_assert_nonnull (root);
  json_object *toks = json_object_object_get (root, "tokens");
  json_object *maps = json_object_object_get (root, "attentions");
  int n = (int) json_object_array_length (toks);
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = json_object_get_int (json_object_array_get_idx (toks, i));

  g_autoptr(LscModel) model = lsc_model_load (dir, &error);
  g_assert_no_error (error);
  LscSessionParams p = capture_all (FALSE);
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_true (lsc_session_eval (s, tokens, n, NULL, FALSE, NULL, NULL, &error));
  g_assert_no_error (error);
  const LscAttentionStore *store = lsc_session_get_attention (s);
  g_autofree float *tile = g_new (float, (gsize) n * n);
  double worst = 0;
  for (size_t l = 0; l < json_object_array_length (maps); l++)
    {
      json_object *heads = json_object_array_get_idx (maps, l);
      for (size_t h = 0; h < json_object_array_length (heads); h++)
        {
          json_object *rows = json_object_array_get_idx (heads, h);
          g_assert_true (lsc_attention_tile (store, (int) l, (int) h, 0, n, 0, n, 0.0f, tile,
                                             &error));
          for (int i = 0; i < n; i++)
            {
              json_object *row = json_object_array_get_idx (rows, i);
              for (int j = 0; j < n; j++)
                {
                  double want = json_object_get_double (json_object_array_get_idx (row, j));
                  worst = fmax (worst, fabs (tile[(gsize) i * n + j] - want));
                }
            }
        }
    }
  json_object_put (root);
  g_test_message ("%s: largest difference from transformers %.3g", (const char *) data, worst);
  g_assert_cmpfloat (worst, <=, 1e-5);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/attention/tiles-stories260K", test_tiles_stories);
  g_test_add_func ("/engine/attention/tiles-tiny-llama", test_tiles_tiny_llama);
  g_test_add_func ("/engine/attention/sliding-window", test_sliding_window);
  g_test_add_func ("/engine/attention/hooks", test_hooks);
  g_test_add_func ("/engine/attention/paths-agree", test_paths_agree);
  g_test_add_func ("/engine/attention/pyramid-and-stats", test_pyramid_and_stats);
  g_test_add_func ("/engine/attention/pool-in-parts", test_pool_in_parts);
  g_test_add_func ("/engine/attention/partial-plan-and-budget", test_partial_plan_and_budget);
  g_test_add_func ("/engine/attention/save-and-load", test_save_and_load);
  g_test_add_func ("/engine/attention/save-refuses-mask-hooks", test_save_refuses_mask_hooks);
  g_test_add_func ("/engine/attention/load-errors", test_load_errors);
  g_test_add_data_func ("/engine/attention/hf/llama-rope-none", "llama-rope-none",
                        test_hf_output_attentions);
  g_test_add_data_func ("/engine/attention/hf/mistral-sliding-window", "mistral-sliding-window",
                        test_hf_output_attentions);
  return g_test_run ();
}
