/* SPDX-License-Identifier: MIT
 *
 * The "capture" part of a batch job: which attention to keep, and what to
 * write from it. Schema (documented in the README):
 *
 *   "capture": {
 *     "layers": [int, ...],         default all
 *     "heads": [int, ...],          default all
 *     "rows": "prompt" | "all",     default "prompt" (generated rows too with "all")
 *     "budget_mib": int,            default 4096: the store fails up front beyond it
 *     "stats": bool,                default true: per-head statistics
 *     "sink_tokens": int,           default 4: keys that count as the attention sink
 *     "pyramids": bool,             default false: every head's pooled pyramid
 *     "store": bool,                default false: the store itself, so the run reopens
 *                                   (lsc_attention_save (): attn.store.*)
 *     "tiles": [ {"layer": L, "head": H, "rows": [q0, q1], "keys": [k0, k1]}, ... ]
 *   }
 *
 * Arrays go to tensors.safetensors:
 *   attn.stats.entropy, attn.stats.sink_mass, attn.stats.max_prob,
 *   attn.stats.mean_distance          F32 [n_layers, n_heads], NaN where not captured
 *   attn.L.H.pyramid.B.max / .mean    F32 [rows, cols]: blocks of B x B cells
 *   attn.L.H.tile.Q0-Q1.K0-K1         F32 [q1 - q0, k1 - k0]: exact probabilities,
 *                                     NaN where the row cannot see the key
 *   attn.store.*                      the store (lsc-attention.h)
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-batch-private.h"
#include "lsc-json.h"

void
_lsc_job_capture_clear (LscJobCapture *c)
{
  g_clear_pointer (&c->layers, g_array_unref);
  g_clear_pointer (&c->heads, g_array_unref);
  g_clear_pointer (&c->tiles, g_array_unref);
  for (int i = 0; i < 4; i++)
    g_clear_pointer (&c->stat_values[i], g_free);
}

static gboolean
invalid (GError **error, const char *job, const char *path, const char *what, json_object *found)
{
  g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, "%s: $.capture%s: expected %s, found %s",
               job, path, what, found == NULL ? "null" : json_object_to_json_string (found));
  return FALSE;
}

static gboolean
int_in (json_object *v, gint64 min, gint64 max)
{
  return json_object_is_type (v, json_type_int) && json_object_get_int64 (v) >= min
         && json_object_get_int64 (v) <= max;
}

static gboolean
parse_int_list (GArray **out, const char *job, const char *key, json_object *v, GError **error)
{
  g_autofree char *path = g_strconcat (".", key, NULL);
  *out = g_array_new (FALSE, FALSE, sizeof (int));
  if (v == NULL)
    return TRUE;
  if (!json_object_is_type (v, json_type_array))
    return invalid (error, job, path, "an array of indices", v);
  for (size_t i = 0; i < json_object_array_length (v); i++)
    {
      json_object *e = json_object_array_get_idx (v, i);
      if (!int_in (e, 0, 1 << 20))
        {
          g_autofree char *p = g_strdup_printf (".%s[%zu]", key, i);
          return invalid (error, job, p, "an index >= 0", e);
        }
      int x = json_object_get_int (e);
      g_array_append_val (*out, x);
    }
  return TRUE;
}

/* [a, b] with 0 <= a < b */
static gboolean
parse_range (json_object *v, int *a, int *b)
{
  if (!json_object_is_type (v, json_type_array) || json_object_array_length (v) != 2
      || !int_in (json_object_array_get_idx (v, 0), 0, G_MAXINT)
      || !int_in (json_object_array_get_idx (v, 1), 0, G_MAXINT))
    return FALSE;
  *a = json_object_get_int (json_object_array_get_idx (v, 0));
  *b = json_object_get_int (json_object_array_get_idx (v, 1));
  return *a < *b;
}

gboolean
_lsc_job_capture_parse (LscJobCapture *c, const char *job, json_object *obj, GError **error)
{
  static const char *const known[] = { "layers", "heads", "rows", "budget_mib", "stats",
                                       "sink_tokens", "pyramids", "store", "tiles", NULL };
  json_object *v;

  memset (c, 0, sizeof *c);
  c->enabled = TRUE;
  c->budget = (guint64) 4096 << 20;
  c->stats = TRUE;
  c->sink_tokens = 4;
  c->tiles = g_array_new (FALSE, FALSE, sizeof (LscJobTile));
  if (!json_object_is_type (obj, json_type_object))
    return invalid (error, job, "", "an object", obj);
  if (!lsc_json_check_keys (obj, known, job, "$.capture", error))
    return FALSE;
  if (!parse_int_list (&c->layers, job, "layers", json_object_object_get (obj, "layers"), error)
      || !parse_int_list (&c->heads, job, "heads", json_object_object_get (obj, "heads"), error))
    return FALSE;
  if ((v = json_object_object_get (obj, "rows")) != NULL)
    {
      const char *s = json_object_is_type (v, json_type_string) ? json_object_get_string (v) : "";
      if (strcmp (s, "prompt") != 0 && strcmp (s, "all") != 0)
        return invalid (error, job, ".rows", "\"prompt\" or \"all\"", v);
      c->all_rows = strcmp (s, "all") == 0;
    }
  if ((v = json_object_object_get (obj, "budget_mib")) != NULL)
    {
      if (!int_in (v, 1, 1 << 24))
        return invalid (error, job, ".budget_mib", "a size in MiB >= 1", v);
      c->budget = (guint64) json_object_get_int64 (v) << 20;
    }
  if ((v = json_object_object_get (obj, "sink_tokens")) != NULL)
    {
      if (!int_in (v, 0, 1 << 20))
        return invalid (error, job, ".sink_tokens", "an integer >= 0", v);
      c->sink_tokens = json_object_get_int (v);
    }
  if ((v = json_object_object_get (obj, "stats")) != NULL)
    {
      if (!json_object_is_type (v, json_type_boolean))
        return invalid (error, job, ".stats", "true or false", v);
      c->stats = json_object_get_boolean (v);
    }
  if ((v = json_object_object_get (obj, "pyramids")) != NULL)
    {
      if (!json_object_is_type (v, json_type_boolean))
        return invalid (error, job, ".pyramids", "true or false", v);
      c->pyramids = json_object_get_boolean (v);
    }
  if ((v = json_object_object_get (obj, "store")) != NULL)
    {
      if (!json_object_is_type (v, json_type_boolean))
        return invalid (error, job, ".store", "true or false", v);
      c->store = json_object_get_boolean (v);
    }
  if ((v = json_object_object_get (obj, "tiles")) != NULL)
    {
      if (!json_object_is_type (v, json_type_array))
        return invalid (error, job, ".tiles", "an array of tiles", v);
      for (size_t i = 0; i < json_object_array_length (v); i++)
        {
          json_object *t = json_object_array_get_idx (v, i);
          LscJobTile tile;
          g_autofree char *p = g_strdup_printf (".tiles[%zu]", i);
          if (!json_object_is_type (t, json_type_object)
              || !int_in (json_object_object_get (t, "layer"), 0, 1 << 20)
              || !int_in (json_object_object_get (t, "head"), 0, 1 << 20)
              || !parse_range (json_object_object_get (t, "rows"), &tile.q0, &tile.q1)
              || !parse_range (json_object_object_get (t, "keys"), &tile.k0, &tile.k1))
            return invalid (error, job, p,
                            "{\"layer\": L, \"head\": H, \"rows\": [q0, q1], \"keys\": [k0, k1]} "
                            "with q0 < q1 and k0 < k1", t);
          tile.layer = json_object_get_int (json_object_object_get (t, "layer"));
          tile.head = json_object_get_int (json_object_object_get (t, "head"));
          g_array_append_val (c->tiles, tile);
        }
    }
  return TRUE;
}

void
_lsc_job_capture_plan (const LscJobCapture *c, int n_prompt, LscSessionParams *params)
{
  LscCapturePlan *plan = &params->capture;
  plan->enabled = TRUE;
  plan->layers = (const int *) c->layers->data;
  plan->n_layers = (int) c->layers->len;
  plan->heads = (const int *) c->heads->data;
  plan->n_heads = (int) c->heads->len;
  plan->row_start = 0;
  plan->row_end = c->all_rows ? 0 : n_prompt;
  plan->memory_budget = c->budget;
}

gboolean
_lsc_job_capture_write (LscJobCapture *c, const LscSession *session,
                        const LscModelConfig *config, json_object *results,
                        LscTensorWriter *writer, GError **error)
{
  const LscAttentionStore *a = lsc_session_get_attention (session);
  int L = config->n_layers, H = config->n_heads;
  int row0 = lsc_attention_get_row_start (a), n_rows = lsc_attention_get_n_rows (a);
  json_object *att = json_object_new_object ();
  json_object_object_add (results, "attention", att);

  json_object *rows = json_object_new_array ();
  json_object_array_add (rows, json_object_new_int (row0));
  json_object_array_add (rows, json_object_new_int (row0 + n_rows));
  json_object_object_add (att, "rows", rows);
  json_object_object_add (att, "store_bytes", json_object_new_int64 ((gint64) lsc_attention_get_bytes (a)));
  if (c->store)
    {
      if (!lsc_attention_save (a, writer, error))
        {
          g_prefix_error (error, "$.capture.store: ");
          return FALSE;
        }
      json_object_object_add (att, "store", json_object_new_boolean (TRUE));
    }

  /* statistics and pyramids: one streaming pass per captured head */
  if (c->stats || c->pyramids)
    {
      gsize n = (gsize) L * H;
      for (int i = 0; i < 4; i++)
        {
          g_free (c->stat_values[i]);
          c->stat_values[i] = g_new (float, n);
        }
      float *entropy = c->stat_values[0], *sink = c->stat_values[1];
      float *maxp = c->stat_values[2], *dist = c->stat_values[3];
      for (gsize i = 0; i < n; i++)
        entropy[i] = sink[i] = maxp[i] = dist[i] = NAN;
      for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
          {
            if (!lsc_attention_has_head (a, l, h))
              continue;
            g_autoptr(LscAttentionPyramid) pyr = NULL;
            LscHeadStats st;
            if (c->known_stats != NULL && !c->pyramids)
              st = c->known_stats[l * H + h];
            else if (!lsc_attention_analyze (a, l, h, c->sink_tokens, c->pyramids ? &pyr : NULL,
                                             &st, error))
              return FALSE;
            entropy[l * H + h] = (float) st.entropy;
            sink[l * H + h] = (float) st.sink_mass;
            maxp[l * H + h] = (float) st.max_prob;
            dist[l * H + h] = (float) st.mean_distance;
            for (int k = 0; pyr != NULL && k < pyr->n_levels; k++)
              {
                const LscPyramidLevel *lv = &pyr->levels[k];
                gint64 shape[2] = { lv->rows, lv->cols };
                g_autofree char *mx = g_strdup_printf ("attn.%d.%d.pyramid.%d.max", l, h, lv->block);
                g_autofree char *mn = g_strdup_printf ("attn.%d.%d.pyramid.%d.mean", l, h, lv->block);
                lsc_tensor_writer_add_f32 (writer, mx, 2, shape, lv->max);
                lsc_tensor_writer_add_f32 (writer, mn, 2, shape, lv->mean);
              }
          }
      if (c->stats)
        {
          gint64 shape[2] = { L, H };
          lsc_tensor_writer_add_f32 (writer, "attn.stats.entropy", 2, shape, entropy);
          lsc_tensor_writer_add_f32 (writer, "attn.stats.sink_mass", 2, shape, sink);
          lsc_tensor_writer_add_f32 (writer, "attn.stats.max_prob", 2, shape, maxp);
          lsc_tensor_writer_add_f32 (writer, "attn.stats.mean_distance", 2, shape, dist);
        }
    }

  for (guint i = 0; i < c->tiles->len; i++)
    {
      const LscJobTile *t = &g_array_index (c->tiles, LscJobTile, i);
      gsize cells = (gsize) (t->q1 - t->q0) * (t->k1 - t->k0);
      if (cells > ((gsize) 1 << 28))
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "$.capture.tiles[%u]: %" G_GSIZE_FORMAT " cells is too large for one tile "
                       "(at most 2^28; use the pyramid for overviews)", i, cells);
          return FALSE;
        }
      g_autofree float *tile = g_try_new (float, cells);
      if (tile == NULL)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "$.capture.tiles[%u]: cannot allocate %" G_GSIZE_FORMAT " cells", i, cells);
          return FALSE;
        }
      if (!lsc_attention_tile (a, t->layer, t->head, t->q0, t->q1, t->k0, t->k1, NAN, tile, error))
        {
          g_prefix_error (error, "$.capture.tiles[%u]: ", i);
          return FALSE;
        }
      gint64 shape[2] = { t->q1 - t->q0, t->k1 - t->k0 };
      g_autofree char *name = g_strdup_printf ("attn.%d.%d.tile.%d-%d.%d-%d", t->layer, t->head,
                                               t->q0, t->q1, t->k0, t->k1);
      lsc_tensor_writer_add_f32 (writer, name, 2, shape, tile);
    }
  return TRUE;
}
