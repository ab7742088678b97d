/* SPDX-License-Identifier: MIT
 *
 * Retrieval-head detection and ablation (definitions in lsc-retrieval.h).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-json.h"
#include "lsc-llama-private.h"   /* _lsc_cuda_unsupported_reason () */
#include "lsc-retrieval.h"

/* ---- ROUGE-1 recall ---- */

static GHashTable *
rouge_tokens (const char *text, int *n_tokens)
{
  GHashTable *counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GString *cur = g_string_new (NULL);
  *n_tokens = 0;
  for (const char *p = text;; p++)
    {
      char c = g_ascii_tolower (*p);
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        {
          g_string_append_c (cur, c);
          continue;
        }
      if (cur->len > 0)
        {
          gpointer old = NULL;
          gboolean had = g_hash_table_lookup_extended (counts, cur->str, NULL, &old);
          int n = had ? GPOINTER_TO_INT (old) + 1 : 1;
          g_hash_table_replace (counts, g_strdup (cur->str), GINT_TO_POINTER (n));
          (*n_tokens)++;
          g_string_truncate (cur, 0);
        }
      if (*p == '\0')
        break;
    }
  g_string_free (cur, TRUE);
  return counts;
}

double
lsc_rouge1_recall (const char *reference, const char *candidate)
{
  int n_ref = 0, n_cand = 0;
  g_autoptr(GHashTable) ref = rouge_tokens (reference, &n_ref);
  g_autoptr(GHashTable) cand = rouge_tokens (candidate, &n_cand);
  if (n_ref == 0)
    return 0;
  GHashTableIter it;
  gpointer key, value;
  int overlap = 0;
  g_hash_table_iter_init (&it, ref);
  while (g_hash_table_iter_next (&it, &key, &value))
    overlap += MIN (GPOINTER_TO_INT (value), GPOINTER_TO_INT (g_hash_table_lookup (cand, key)));
  return (double) overlap / n_ref;
}

/* ---- traces and scores ---- */

LscRetrievalTrace *
lsc_retrieval_trace_new (int n_layers, int n_heads, int n_steps)
{
  LscRetrievalTrace *t = g_new0 (LscRetrievalTrace, 1);
  gsize n = (gsize) MAX (n_steps, 0) * n_layers * n_heads;
  t->n_layers = n_layers;
  t->n_heads = n_heads;
  t->n_steps = n_steps;
  t->tokens = g_new0 (gint32, MAX (n_steps, 1));
  t->argmax = g_new0 (gint32, MAX (n, 1));
  t->max_prob = g_new0 (float, MAX (n, 1));
  t->in_span = g_new0 (guint8, MAX (n, 1));
  t->copy_hit = g_new0 (guint8, MAX (n, 1));
  return t;
}

void
lsc_retrieval_trace_free (LscRetrievalTrace *t)
{
  if (t == NULL)
    return;
  g_free (t->tokens);
  g_free (t->argmax);
  g_free (t->max_prob);
  g_free (t->in_span);
  g_free (t->copy_hit);
  g_free (t);
}

void
lsc_retrieval_score_trace (LscRetrievalTrace *t, const gint32 *prompt, int n_prompt,
                           int span_start, int span_end, double *scores)
{
  int LH = t->n_layers * t->n_heads;
  gboolean have_span = span_start >= 0 && span_end > span_start;
  double unit = have_span ? 1.0 / (span_end - span_start) : 0;
  for (int i = 0; i < LH; i++)
    scores[i] = 0;
  for (int s = 0; s < t->n_steps; s++)
    for (int i = 0; i < LH; i++)
      {
        gsize at = (gsize) s * LH + i;
        int j = t->argmax[at];
        gboolean in = have_span && j >= span_start && j < span_end;
        gboolean hit = in && j < n_prompt && prompt[j] == t->tokens[s];
        t->in_span[at] = in;
        t->copy_hit[at] = hit;
        if (hit)
          scores[i] += unit;
      }
}

/* ---- running a sample ---- */

void
lsc_retrieval_params_init (LscRetrievalParams *p)
{
  memset (p, 0, sizeof *p);
  p->max_tokens = 50;
  p->recall_threshold = 0.5;
  p->capture = TRUE;
  p->eos_id = -1;
  p->bos_id = -1;
}

void
lsc_retrieval_sample_free (LscRetrievalSample *s)
{
  if (s == NULL)
    return;
  if (s->tokens != NULL)
    g_array_unref (s->tokens);
  g_free (s->response);
  lsc_retrieval_trace_free (s->trace);
  g_free (s->scores);
  g_free (s->backend_note);
  g_free (s);
}

typedef struct {
  const guint8 *masked;    /* (n_layers * n_heads) */
  int n_heads;
  const LscAttentionHooks *base;   /* the plugins' hooks under the masks */
} MaskData;

static float
mask_scale (gpointer data, int layer, int head, int pos)
{
  const MaskData *m = data;
  if (m->masked[layer * m->n_heads + head])
    return 0.0f;
  return m->base->scale != NULL ? m->base->scale (m->base->data, layer, head, pos) : 1.0f;
}

static void
mask_row (gpointer data, int layer, int head, int pos, guint8 *hidden)
{
  const MaskData *m = data;
  m->base->mask_row (m->base->data, layer, head, pos, hidden);
}

static gboolean
stop_at_newline (int token, int index, gpointer data)
{
  const LscTokenizer *tok = data;
  gint32 one = token;
  g_autofree char *text = lsc_tokenizer_decode (tok, &one, 1);
  return strchr (text, '\n') == NULL;
}

/* Argmax and probability of every generated step's row, for one head:
 * rows [row0, row0 + steps) over keys 0..row, TRACE_ROWS rows a tile, so
 * that each pass over the keys serves them all (and the CPU's threads share
 * the rows); 8 MiB of tile at 128k tokens. */
#define TRACE_ROWS 16

static gboolean
trace_head (const LscAttentionStore *a, int layer, int head, int row0, int steps,
            LscRetrievalTrace *trace, float *buf, GError **error)
{
  for (int t0 = 0; t0 < steps; t0 += TRACE_ROWS)
    {
      int t1 = MIN (t0 + TRACE_ROWS, steps), cols = row0 + t1;
      if (!lsc_attention_tile (a, layer, head, row0 + t0, row0 + t1, 0, cols, 0.0f, buf, error))
        return FALSE;
      for (int t = t0; t < t1; t++)
        {
          const float *p = buf + (gsize) (t - t0) * cols;
          int best = 0;
          for (int k = 1; k <= row0 + t; k++)
            if (p[k] > p[best])
              best = k;
          gsize at = ((gsize) t * trace->n_layers + layer) * trace->n_heads + head;
          trace->argmax[at] = best;
          trace->max_prob[at] = p[best];
        }
    }
  return TRUE;
}

/* A sample's session for n_ctx positions, before capture and masks. */
static void
session_params (const LscRetrievalParams *params, int n_ctx, LscSessionParams *sp)
{
  lsc_session_params_init (sp);
  sp->n_ctx = n_ctx;
  sp->n_threads = params->n_threads;
  sp->reference = params->reference;
  sp->backend = params->backend;
  sp->hooks = params->hooks;
}

char *
lsc_retrieval_masks_split_backends (LscModel *model, const LscRetrievalParams *params)
{
  if (params->backend != LSC_BACKEND_AUTO || lsc_backend_cuda_unavailable () != NULL)
    return NULL;
  LscSessionParams sp;
  session_params (params, 1, &sp);
  g_autofree char *plain = _lsc_cuda_unsupported_reason (model, &sp);
  sp.hooks.scale = mask_scale;   /* as lsc_retrieval_run () masks heads */
  char *masked = _lsc_cuda_unsupported_reason (model, &sp);
  if (plain == NULL && masked != NULL)
    return masked;
  g_free (masked);
  return NULL;
}

LscRetrievalSample *
lsc_retrieval_run (LscModel *model, const LscTokenizer *tok, const LscNeedlePrompt *prompt,
                   const char *answer, const LscRetrievalParams *params, LscCancelFunc cancel,
                   gpointer cancel_data, GError **error)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  int L = c->n_layers, H = c->n_heads;
  const gint32 *ids = (const gint32 *) prompt->tokens->data;
  int n = (int) prompt->tokens->len;
  g_autofree guint8 *masked = NULL;
  MaskData mask = { NULL, H, &params->hooks };

  if (n < 1)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "empty prompt");
      return NULL;
    }

  LscSessionParams sp;
  session_params (params, n + params->max_tokens + 1, &sp);
  if (params->capture)
    {
      sp.capture.enabled = TRUE;
      sp.capture.row_start = n - 1;
      sp.capture.row_end = 0;
      sp.capture.memory_budget = params->memory_budget;
    }
  if (params->n_masked > 0)
    {
      masked = g_new0 (guint8, (gsize) L * H);
      for (int i = 0; i < params->n_masked; i++)
        if (params->masked_heads[i] >= 0 && params->masked_heads[i] < L * H)
          masked[params->masked_heads[i]] = 1;
      mask.masked = masked;
      sp.hooks.scale = mask_scale;
      sp.hooks.mask_row = params->hooks.mask_row != NULL ? mask_row : NULL;
      sp.hooks.data = &mask;
    }
  g_autoptr(LscSession) session = lsc_session_new (model, &sp, error);
  if (session == NULL)
    return NULL;

  g_autoptr(LscRetrievalSample) s = g_new0 (LscRetrievalSample, 1);
  s->n_prompt = n;
  s->answer_start = prompt->answer_start;
  s->answer_end = prompt->answer_end;
  s->tokens = g_array_new (FALSE, FALSE, sizeof (gint32));
  s->backend = lsc_session_get_backend (session);
  s->backend_note = g_strdup (lsc_session_get_backend_note (session));

  if (n > 1 && !lsc_session_eval (session, ids, n - 1, NULL, FALSE, cancel, cancel_data, error))
    return NULL;
  LscGenerateParams gp;
  lsc_generate_params_init (&gp);
  gp.max_tokens = params->max_tokens;
  gp.eos_id = params->eos_id;
  gp.bos_id = params->bos_id;
  if (params->max_tokens > 0
      && !lsc_generate (session, ids + n - 1, 1, &gp, s->tokens, NULL, stop_at_newline,
                        (gpointer) tok, cancel, cancel_data, error))
    return NULL;

  /* the response: generated text without special tokens, trimmed */
  g_autoptr(GArray) plain = g_array_new (FALSE, FALSE, sizeof (gint32));
  for (guint i = 0; i < s->tokens->len; i++)
    if (!lsc_tokenizer_id_is_special (tok, g_array_index (s->tokens, gint32, i)))
      g_array_append_val (plain, g_array_index (s->tokens, gint32, i));
  s->response = g_strstrip (lsc_tokenizer_decode (tok, (const gint32 *) plain->data, plain->len));
  s->recall = lsc_rouge1_recall (answer, s->response);
  s->passed = s->recall > params->recall_threshold;

  if (params->capture)
    {
      const LscAttentionStore *a = lsc_session_get_attention (session);
      int steps = (int) s->tokens->len;
      g_autofree float *buf = g_new (float, (gsize) TRACE_ROWS * (n - 1 + steps));
      s->trace = lsc_retrieval_trace_new (L, H, steps);
      memcpy (s->trace->tokens, s->tokens->data, sizeof (gint32) * steps);
      for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
          {
            if (cancel != NULL && cancel (cancel_data))
              {
                g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED, "cancelled");
                return NULL;
              }
            if (!trace_head (a, l, h, n - 1, steps, s->trace, buf, error))
              return NULL;
          }
      s->scores = g_new0 (double, (gsize) L * H);
      lsc_retrieval_score_trace (s->trace, ids, n, s->answer_start, s->answer_end, s->scores);
      for (gsize i = 0; i < (gsize) steps * L * H; i++)
        s->copy_events += s->trace->copy_hit[i];
    }
  return g_steal_pointer (&s);
}

/* ---- summaries ---- */

void
lsc_retrieval_summary_free (LscRetrievalSummary *s)
{
  if (s == NULL)
    return;
  g_free (s->mean);
  g_free (s->ranking);
  g_free (s);
}

static int
cmp_rank (gconstpointer a, gconstpointer b, gpointer data)
{
  const double *mean = data;
  int x = *(const int *) a, y = *(const int *) b;
  double mx = isnan (mean[x]) ? -1 : mean[x], my = isnan (mean[y]) ? -1 : mean[y];
  if (mx != my)
    return mx > my ? -1 : 1;
  return (x > y) - (x < y);
}

void
lsc_retrieval_rank (const double *scores, int n, int *ranking)
{
  g_return_if_fail (n >= 0);
  g_return_if_fail (n == 0 || (scores != NULL && ranking != NULL));
  for (int k = 0; k < n; k++)
    ranking[k] = k;
  g_qsort_with_data (ranking, n, sizeof (int), cmp_rank, (gpointer) scores);
}

LscRetrievalSummary *
lsc_retrieval_summarize (LscRetrievalSample *const *samples, int n, int n_layers, int n_heads)
{
  int LH = n_layers * n_heads;
  LscRetrievalSummary *s = g_new0 (LscRetrievalSummary, 1);
  s->n_layers = n_layers;
  s->n_heads = n_heads;
  s->mean = g_new0 (double, LH);
  s->ranking = g_new (int, LH);
  for (int i = 0; i < n; i++)
    {
      if (samples[i] == NULL || samples[i]->scores == NULL)
        continue;
      s->n_samples++;
      if (!samples[i]->passed)
        continue;
      s->n_passed++;
      for (int k = 0; k < LH; k++)
        s->mean[k] += samples[i]->scores[k];
    }
  for (int k = 0; k < LH; k++)
    s->mean[k] = s->n_passed > 0 ? s->mean[k] / s->n_passed : NAN;
  lsc_retrieval_rank (s->mean, LH, s->ranking);
  return s;
}

int
lsc_retrieval_summary_count_above (const LscRetrievalSummary *s, double threshold)
{
  int count = 0;
  for (int k = 0; k < s->n_layers * s->n_heads; k++)
    count += !isnan (s->mean[k]) && s->mean[k] > threshold;
  return count;
}

json_object *
lsc_retrieval_reference_json (LscRetrievalSample *const *samples, int n, int n_layers,
                              int n_heads)
{
  json_object *o = json_object_new_object ();
  for (int l = 0; l < n_layers; l++)
    for (int h = 0; h < n_heads; h++)
      {
        json_object *a = json_object_new_array ();
        for (int i = 0; i < n; i++)
          if (samples[i] != NULL && samples[i]->scores != NULL && samples[i]->passed)
            json_object_array_add (a, lsc_json_double (samples[i]->scores[l * n_heads + h]));
        g_autofree char *key = g_strdup_printf ("%d-%d", l, h);
        json_object_object_add (o, key, a);
      }
  return o;
}

int *
lsc_retrieval_random_heads (const LscRetrievalSummary *s, int k, int exclude_top,
                            double threshold, guint64 seed, int *n_out)
{
  int LH = s->n_layers * s->n_heads;
  g_autofree guint8 *excluded = g_new0 (guint8, LH);
  for (int i = 0; i < MIN (exclude_top, LH); i++)
    excluded[s->ranking[i]] = 1;
  g_autofree int *pool = g_new (int, LH);
  int n_pool = 0;
  for (int i = 0; i < LH; i++)
    if (!excluded[i] && !(s->mean[i] > threshold))
      pool[n_pool++] = i;
  guint32 words[2] = { (guint32) seed, (guint32) (seed >> 32) };
  GRand *rng = g_rand_new_with_seed_array (words, 2);
  /* partial Fisher-Yates */
  int m = MIN (k, n_pool);
  for (int i = 0; i < m; i++)
    {
      int j = g_rand_int_range (rng, i, n_pool);
      int tmp = pool[i];
      pool[i] = pool[j];
      pool[j] = tmp;
    }
  g_rand_free (rng);
  *n_out = m;
  int *out = g_new (int, MAX (m, 1));
  memcpy (out, pool, sizeof (int) * m);
  return out;
}
