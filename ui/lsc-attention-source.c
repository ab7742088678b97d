/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>

#include "lsc-attention-source.h"

struct _LscAttentionSource
{
  /* borrowed, kept alive by owner */
  const LscAttentionStore *store;
  GObject *owner;                 /* (nullable) (owned) */

  int layer, head;
  LscAttentionPyramid *pyramid;   /* (owned) */
};

void
lsc_attention_grid_free (LscAttentionGrid *grid)
{
  if (grid == NULL)
    return;
  g_free (grid->values);
  g_free (grid);
}

float
lsc_attention_grid_value (const LscAttentionGrid *grid, int row, int col)
{
  if (row < grid->r0 || col < grid->c0)
    return NAN;
  int i = (row - grid->r0) / grid->block;
  int j = (col - grid->c0) / grid->block;
  if (i >= grid->rows || j >= grid->cols)
    return NAN;
  return grid->values[(gsize) i * grid->cols + j];
}

gboolean
lsc_attention_grid_covers (const LscAttentionGrid *grid, int r0, int r1, int c0, int c1)
{
  return grid != NULL && r0 >= grid->r0 && c0 >= grid->c0
         && r1 <= grid->r0 + grid->rows * grid->block
         && c1 <= grid->c0 + grid->cols * grid->block;
}

LscAttentionSource *
lsc_attention_source_new (const LscAttentionStore *store, GObject *owner, int layer, int head,
                          GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  LscAttentionPyramid *pyramid = NULL;
  if (!lsc_attention_analyze (store, layer, head, 1, &pyramid, NULL, error))
    return NULL;
  LscAttentionSource *src = g_atomic_rc_box_new0 (LscAttentionSource);
  src->store = store;
  src->owner = owner != NULL ? g_object_ref (owner) : NULL;
  src->layer = layer;
  src->head = head;
  src->pyramid = pyramid;
  return src;
}

static void
source_clear (gpointer data)
{
  LscAttentionSource *src = data;
  lsc_attention_pyramid_free (src->pyramid);
  g_clear_object (&src->owner);
}

LscAttentionSource *
lsc_attention_source_ref (LscAttentionSource *src)
{
  return g_atomic_rc_box_acquire (src);
}

void
lsc_attention_source_unref (LscAttentionSource *src)
{
  if (src != NULL)
    g_atomic_rc_box_release_full (src, source_clear);
}

typedef struct {
  const LscAttentionStore *store;
  GObject *owner;
  int layer, head;
} NewTask;

static void
new_task_free (gpointer data)
{
  NewTask *t = data;
  g_clear_object (&t->owner);
  g_free (t);
}

static void
new_in_thread (GTask *task, gpointer object, gpointer data, GCancellable *cancellable)
{
  NewTask *t = data;
  GError *error = NULL;
  LscAttentionSource *src = lsc_attention_source_new (t->store, t->owner, t->layer, t->head, &error);
  if (src == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, src, (GDestroyNotify) lsc_attention_source_unref);
}

void
lsc_attention_source_new_async (const LscAttentionStore *store, GObject *owner, int layer,
                                int head, GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data)
{
  g_return_if_fail (store != NULL);
  NewTask *t = g_new0 (NewTask, 1);
  t->store = store;
  t->owner = owner != NULL ? g_object_ref (owner) : NULL;
  t->layer = layer;
  t->head = head;
  g_autoptr(GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, lsc_attention_source_new_async);
  g_task_set_task_data (task, t, new_task_free);
  g_task_run_in_thread (task, new_in_thread);
}

LscAttentionSource *
lsc_attention_source_new_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

int lsc_attention_source_get_layer (const LscAttentionSource *src) { return src->layer; }
int lsc_attention_source_get_head (const LscAttentionSource *src) { return src->head; }
int lsc_attention_source_get_rows (const LscAttentionSource *src) { return src->pyramid->n_rows; }
int lsc_attention_source_get_cols (const LscAttentionSource *src) { return src->pyramid->n_keys; }
int lsc_attention_source_get_row_start (const LscAttentionSource *src) { return src->pyramid->row_start; }

const float *
lsc_attention_source_get_overview (const LscAttentionSource *src, gsize *n)
{
  const LscPyramidLevel *l = &src->pyramid->levels[0];
  *n = (gsize) l->rows * l->cols;
  return l->max;
}

LscAttentionGrid *
lsc_attention_source_fetch (const LscAttentionSource *src, int r0, int r1, int c0, int c1,
                            gsize max_values, GError **error)
{
  g_return_val_if_fail (src != NULL, NULL);
  const LscAttentionPyramid *p = src->pyramid;
  r0 = CLAMP (r0, 0, p->n_rows);
  r1 = CLAMP (r1, r0, p->n_rows);
  c0 = CLAMP (c0, 0, p->n_keys);
  c1 = CLAMP (c1, c0, p->n_keys);
  g_return_val_if_fail (r1 > r0 && c1 > c0, NULL);

  LscAttentionGrid *g = g_new0 (LscAttentionGrid, 1);
  if ((gsize) (r1 - r0) * (gsize) (c1 - c0) <= MAX (max_values, 1))
    {
      g->block = 1;
      g->r0 = r0;
      g->c0 = c0;
      g->rows = r1 - r0;
      g->cols = c1 - c0;
      g->values = g_new (float, (gsize) g->rows * g->cols);
      if (!lsc_attention_tile (src->store, src->layer, src->head, p->row_start + r0,
                               p->row_start + r1, c0, c1, NAN, g->values, error))
        {
          lsc_attention_grid_free (g);
          return NULL;
        }
      return g;
    }

  /* the finest pyramid level that fits, else the coarsest */
  const LscPyramidLevel *lv = &p->levels[p->n_levels - 1];
  for (int k = 0; k < p->n_levels; k++)
    {
      const LscPyramidLevel *l = &p->levels[k];
      gsize br = (gsize) (r1 - 1) / l->block - r0 / l->block + 1;
      gsize bc = (gsize) (c1 - 1) / l->block - c0 / l->block + 1;
      if (br * bc <= max_values)
        {
          lv = l;
          break;
        }
    }
  int b = lv->block;
  int br0 = r0 / b, br1 = MIN ((r1 - 1) / b + 1, lv->rows);
  int bc0 = c0 / b, bc1 = MIN ((c1 - 1) / b + 1, lv->cols);
  g->block = b;
  g->r0 = br0 * b;
  g->c0 = bc0 * b;
  g->rows = br1 - br0;
  g->cols = bc1 - bc0;
  g->values = g_new (float, (gsize) g->rows * g->cols);
  for (int i = 0; i < g->rows; i++)
    for (int j = 0; j < g->cols; j++)
      g->values[(gsize) i * g->cols + j] = lv->max[(gsize) (br0 + i) * lv->cols + bc0 + j];
  return g;
}

gboolean
lsc_attention_source_get_prob (const LscAttentionSource *src, int row, int col, float *prob,
                               GError **error)
{
  return lsc_attention_tile (src->store, src->layer, src->head,
                             src->pyramid->row_start + row, src->pyramid->row_start + row + 1,
                             col, col + 1, NAN, prob, error);
}

gboolean
lsc_attention_source_get_mass (const LscAttentionSource *src, int r0, int r1, int c0, int c1,
                               double *mass, GError **error)
{
  int start = src->pyramid->row_start;
  return lsc_attention_mass (src->store, src->layer, src->head, start + r0, start + r1, c0, c1,
                             mass, error);
}
