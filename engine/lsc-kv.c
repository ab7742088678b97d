/* SPDX-License-Identifier: MIT
 *
 * KV-cache eviction policies in a session's cache (lsc-kv.h): the slot
 * bookkeeping the forward paths read (lsc-llama.c, lsc-llama-fast.c), the
 * policies' decisions after every evaluation, compaction, and the log.
 *
 * During an evaluation nothing is evicted: new tokens go to slots len ..
 * len + n - 1 of each layer, and rows whose attention a policy scores add
 * their probabilities to per-thread column sums (acc), folded into `delta`
 * after each layer. A cancelled evaluation drops delta and leaves the
 * cache as it was; a finished one hands it to the policy, which compacts
 * the kept slots of every (layer, KV head) to the front, in slot order.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-kv.h"
#include "lsc-llama-private.h"
#include "lsc-rope.h"

struct _LscKvLog {
  LscKvPolicy policy;
  int n_layers, n_heads;
  int n_positions;           /* tokens the stream has held */
  int cap;                   /* positions allocated */
  int head_dim;
  guint8 *pruned;            /* think: (n_layers, n_heads, head_dim) 1 = channel dropped */
  gint32 *evicted_at;        /* (cap, n_layers, n_heads): -1 while cached */
  float *score;              /* (cap, n_layers, n_heads) */
  GArray *steps;             /* int: stream length after each evaluation */
};

struct _LscKvState {
  LscKvPolicy policy;
  gboolean pos_shift;        /* keys cached before RoPE, rotated at their slot */
  int n_heads, n_kv_heads, group, n_ctx, n_threads;
  int *len;                  /* (n_layers) slots in use */
  gint32 *slot_pos;          /* (n_layers, n_kv_heads, n_ctx) original position of each slot */
  float *hh;                 /* h2o: (n_layers, n_heads, n_ctx) accumulated attention */
  float *delta;              /* (n_layers, n_heads, n_ctx) this evaluation's column sums */
  float *acc;                /* (n_threads, n_heads, n_ctx) one layer's sums, per thread */
  int acc_from;              /* rows at stream positions >= acc_from add to acc; G_MAXINT: none */
  float *rot;                /* pos shift: (n_ctx, kv_dim) one layer's keys rotated at their slot */
  float *rot_cos, *rot_sin;  /* pos shift: (n_ctx, head_dim / 2) */
  int rot_seq;               /* the rope_seq_len the tables were made for; -1: none */
  int n_evals;
  float *raw;                /* lm-infinite: (n_global, kv_dim) one layer's global keys unrotated */
  float *raw_cos, *raw_sin;  /* lm-infinite: (n_global, head_dim / 2) angle -j */
  float *stat_cos, *stat_sin;   /* lm-infinite: (n_ctx, head_dim / 2) angle local - p of the
                                   evaluation's rows */
  float *stat_q;             /* lm-infinite: (n_threads, head_dim) a row's query at `local` */
  double *qsq;               /* think: (n_threads, n_heads, head_dim) one layer's sums of q_c^2 */
  double *qn;                /* think: (n_layers, n_heads, head_dim) sums over the last rows */
  int la_cursor;             /* lacache: the first slot not laddered yet */
  int la_capacity;           /* lacache: cache_size, with the compensation once added */
  gboolean la_compensated;
  LscKvLog log;
};

static const char *const policy_names[] = { "full", "streaming-llm", "h2o", "snapkv", "pyramidkv",
                                             "lacache", "lm-infinite", "think" };

/* ThinK scores channels with the last THINK_QUERIES query rows of the
 * prompt (hard-coded in key_pruner_query_driven). */
#define THINK_QUERIES 32

void
lsc_kv_policy_init (LscKvPolicy *p, LscKvPolicyKind kind)
{
  memset (p, 0, sizeof *p);
  p->kind = kind;
  switch (kind)
    {
    case LSC_KV_STREAMING_LLM:
      p->n_sink = 4;
      p->n_recent = 512;
      break;
    case LSC_KV_H2O:
      p->n_heavy = 4;
      p->n_recent = 512;
      break;
    case LSC_KV_SNAPKV:
      p->capacity = 2048;
      p->window = 32;
      p->kernel = 5;
      p->pooling = LSC_KV_POOL_AVG;
      break;
    case LSC_KV_PYRAMIDKV:
      p->capacity = 2048;
      p->window = 8;
      p->kernel = 7;
      p->pooling = LSC_KV_POOL_MAX;
      p->beta = 20;
      break;
    case LSC_KV_LACACHE:
      p->capacity = 256;
      p->n_sink = 4;
      p->span = 16;
      p->overlap = 0;
      break;
    case LSC_KV_LM_INFINITE:
      p->n_global = 10;
      p->n_local = 4096;
      break;
    case LSC_KV_THINK:
      p->ratio = 0.4;
      p->n_recent = 32;
      break;
    case LSC_KV_FULL:
    default:
      break;
    }
}

const char *
lsc_kv_policy_name (LscKvPolicyKind kind)
{
  return (guint) kind < G_N_ELEMENTS (policy_names) ? policy_names[kind] : "unknown";
}

gboolean
lsc_kv_policy_from_string (const char *name, LscKvPolicyKind *kind)
{
  for (guint i = 0; name != NULL && i < G_N_ELEMENTS (policy_names); i++)
    if (strcmp (name, policy_names[i]) == 0)
      {
        *kind = (LscKvPolicyKind) i;
        return TRUE;
      }
  return FALSE;
}

char *
lsc_kv_policy_check (const LscKvPolicy *p)
{
  const char *name = lsc_kv_policy_name (p->kind);
  switch (p->kind)
    {
    case LSC_KV_FULL:
      return NULL;
    case LSC_KV_STREAMING_LLM:
      if (p->n_sink < 0)
        return g_strdup_printf ("%s: sink must be at least 0, not %d", name, p->n_sink);
      if (p->n_recent < 1)
        return g_strdup_printf ("%s: recent must be at least 1, not %d", name, p->n_recent);
      return NULL;
    case LSC_KV_H2O:
      if (p->n_heavy < 0)
        return g_strdup_printf ("%s: heavy must be at least 0, not %d", name, p->n_heavy);
      if (p->n_recent < 1)
        return g_strdup_printf ("%s: recent must be at least 1, not %d", name, p->n_recent);
      return NULL;
    case LSC_KV_SNAPKV:
    case LSC_KV_PYRAMIDKV:
      if (p->window < 1)
        return g_strdup_printf ("%s: window must be at least 1, not %d", name, p->window);
      if (p->capacity <= p->window)
        return g_strdup_printf ("%s: capacity (%d) must be larger than the window (%d)", name,
                                p->capacity, p->window);
      if (p->kernel < 1 || p->kernel % 2 == 0)
        return g_strdup_printf ("%s: kernel must be an odd number of at least 1, not %d", name,
                                p->kernel);
      if (p->pooling != LSC_KV_POOL_AVG && p->pooling != LSC_KV_POOL_MAX)
        return g_strdup_printf ("%s: unknown pooling %d", name, p->pooling);
      if (p->kind == LSC_KV_PYRAMIDKV && p->beta < 1)
        return g_strdup_printf ("%s: beta must be at least 1, not %d", name, p->beta);
      return NULL;
    case LSC_KV_LACACHE:
      if (p->n_sink < 0)
        return g_strdup_printf ("%s: sink must be at least 0, not %d", name, p->n_sink);
      if (p->span < 1)
        return g_strdup_printf ("%s: span must be at least 1, not %d", name, p->span);
      if (p->overlap < 0 || p->overlap >= p->span)
        return g_strdup_printf ("%s: overlap must be at least 0 and below the span (%d), not %d",
                                name, p->span, p->overlap);
      if (p->capacity <= p->n_sink)
        return g_strdup_printf ("%s: capacity (%d) must be larger than the sink (%d)", name,
                                p->capacity, p->n_sink);
      return NULL;
    case LSC_KV_LM_INFINITE:
      if (p->n_global < 0)
        return g_strdup_printf ("%s: global must be at least 0, not %d", name, p->n_global);
      if (p->n_local < 1)
        return g_strdup_printf ("%s: local must be at least 1, not %d", name, p->n_local);
      return NULL;
    case LSC_KV_THINK:
      if (!(p->ratio >= 0.0 && p->ratio < 1.0))
        return g_strdup_printf ("%s: ratio must be in [0, 1), not %g", name, p->ratio);
      if (p->n_recent < 0)
        return g_strdup_printf ("%s: recent must be at least 0, not %d", name, p->n_recent);
      return NULL;
    default:
      return g_strdup_printf ("unknown KV policy %d", p->kind);
    }
}

/* Python's a // b (floor division) for b > 0. */
static int
floor_div (int a, int b)
{
  int q = a / b;
  return a % b != 0 && a < 0 ? q - 1 : q;
}

/* Prefix tokens (before the window) that SnapKV / PyramidKV keep in `layer`
 * after a prompt of n tokens; -1: no compression. PyramidKV as
 * PyramidKVCluster.update_kv () computes it. */
static int
prefix_budget (const LscKvPolicy *p, int n_layers, int layer, int n)
{
  int avg = p->capacity - p->window;
  if (n < p->capacity)
    return -1;
  if (p->kind == LSC_KV_SNAPKV || n < avg * 2)
    return avg;
  int min_num = floor_div (avg, p->beta);
  int max_num = avg * 2 - min_num;
  if (max_num >= n - p->window)
    {
      max_num = n - p->window;
      min_num = avg * 2 - max_num;
    }
  int steps = n_layers > 1 ? floor_div (max_num - min_num, n_layers - 1) : 0;
  return CLAMP (max_num - layer * steps, 0, n - p->window);
}

/* Python's ceil (a / b) for b > 0. */
static int
ceil_div (int a, int b)
{
  return -floor_div (-a, b);
}

/* LaCache's ladder for n_layers layers: of every `before` consecutive tokens
 * a layer keeps `after`; `reduce` = before - after are dropped. */
typedef struct {
  int before, after, reduce;
} Ladder;

static Ladder
ladder_of (const LscKvPolicy *p, int n_layers)
{
  Ladder g;
  int step = p->span - p->overlap;
  g.before = 1 + ceil_div (n_layers - p->span, step);
  g.after = MIN (ceil_div (p->span, step), g.before);
  g.reduce = g.before - g.after;
  return g;
}

/* NULL when LaCache's ladder works for n_layers layers, else why not. */
static char *
ladder_check (const LscKvPolicy *p, int n_layers)
{
  Ladder g = ladder_of (p, n_layers);
  if (g.reduce < 1)
    return g_strdup_printf ("lacache: span %d and overlap %d drop no token with %d layers "
                            "(keep the span below the number of layers)", p->span, p->overlap,
                            n_layers);
  if (p->capacity - p->n_sink - n_layers < g.after)
    return g_strdup_printf ("lacache: capacity %d leaves no room for a ladder (it must be at "
                            "least sink + layers + %d = %d)", p->capacity, g.after,
                            p->n_sink + n_layers + g.after);
  return NULL;
}

int
lsc_kv_policy_budget (const LscKvPolicy *p, int n_layers, int layer, int n_prompt)
{
  switch (p->kind)
    {
    case LSC_KV_STREAMING_LLM:
      return MIN (n_prompt, p->n_sink + p->n_recent);
    case LSC_KV_H2O:
      return MIN (n_prompt, p->n_heavy + p->n_recent);
    case LSC_KV_SNAPKV:
    case LSC_KV_PYRAMIDKV:
      {
        int prefix = prefix_budget (p, n_layers, layer, n_prompt);
        return prefix < 0 ? n_prompt : prefix + p->window;
      }
    case LSC_KV_LM_INFINITE:
      return MIN (n_prompt, p->n_global + p->n_local - 1);
    case LSC_KV_LACACHE:
      /* the first eviction adds the one-time compensation to the capacity */
      return n_prompt <= p->capacity
               ? n_prompt
               : MIN (n_prompt, p->capacity + ladder_of (p, n_layers).reduce / 2);
    case LSC_KV_FULL:
    default:
      return n_prompt;
    }
}

int
lsc_kv_policy_slots (const LscKvPolicy *p, int n_prompt, int chunk, int max_tokens)
{
  int all = n_prompt + max_tokens;
  int largest = MAX (1, chunk > 0 ? MIN (chunk, n_prompt) : n_prompt);
  switch (p->kind)
    {
    case LSC_KV_STREAMING_LLM:
      return MIN (all, p->n_sink + p->n_recent + largest);
    case LSC_KV_H2O:
      return MIN (all, p->n_heavy + p->n_recent + largest);
    case LSC_KV_LACACHE:
      return MIN (all, p->capacity + p->capacity / 2 + largest);
    case LSC_KV_LM_INFINITE:
      return MIN (all, p->n_global + p->n_local - 1 + largest);
    default:
      return all;
    }
}

/* ---- the log ---- */

static void
log_init (LscKvLog *log, const LscKvPolicy *policy, int n_layers, int n_heads, int head_dim)
{
  memset (log, 0, sizeof *log);
  log->policy = *policy;
  log->n_layers = n_layers;
  log->n_heads = n_heads;
  log->head_dim = head_dim;
  log->steps = g_array_new (FALSE, FALSE, sizeof (int));
  if (policy->kind == LSC_KV_THINK)
    log->pruned = g_new0 (guint8, (gsize) n_layers * n_heads * head_dim);
}

static void
log_clear (LscKvLog *log)
{
  g_clear_pointer (&log->pruned, g_free);
  g_clear_pointer (&log->evicted_at, g_free);
  g_clear_pointer (&log->score, g_free);
  g_clear_pointer (&log->steps, g_array_unref);
}

static gsize
log_index (const LscKvLog *log, int layer, int head, int pos)
{
  return ((gsize) pos * log->n_layers + layer) * log->n_heads + head;
}

/* Positions [n_positions, n_positions + n) join the log, cached, without a score. */
static void
log_append (LscKvLog *log, int n)
{
  int rows = log->n_positions + n;
  int cap = _lsc_ssm_store_grow (log->cap, rows);
  gsize per = (gsize) log->n_layers * log->n_heads;
  if (cap > log->cap)
    {
      log->evicted_at = g_renew (gint32, log->evicted_at, (gsize) cap * per);
      log->score = g_renew (float, log->score, (gsize) cap * per);
      log->cap = cap;
    }
  for (gsize i = (gsize) log->n_positions * per; i < (gsize) rows * per; i++)
    {
      log->evicted_at[i] = -1;
      log->score[i] = NAN;
    }
  log->n_positions = rows;
}

static guint64
log_bytes (const LscKvLog *log)
{
  return (guint64) log->cap * log->n_layers * log->n_heads * (sizeof (gint32) + sizeof (float))
         + (log->pruned != NULL ? (guint64) log->n_layers * log->n_heads * log->head_dim : 0);
}

gboolean
lsc_kv_log_channel_pruned (const LscKvLog *log, int layer, int head, int channel)
{
  g_return_val_if_fail (layer >= 0 && layer < log->n_layers && head >= 0 && head < log->n_heads
                          && channel >= 0 && channel < log->head_dim,
                        FALSE);
  return log->pruned != NULL
         && log->pruned[((gsize) layer * log->n_heads + head) * log->head_dim + channel];
}

int
lsc_kv_log_get_head_dim (const LscKvLog *log)
{
  return log->head_dim;
}

const LscKvPolicy *
lsc_kv_log_get_policy (const LscKvLog *log)
{
  return &log->policy;
}

int
lsc_kv_log_get_n_layers (const LscKvLog *log)
{
  return log->n_layers;
}

int
lsc_kv_log_get_n_heads (const LscKvLog *log)
{
  return log->n_heads;
}

int
lsc_kv_log_get_n_positions (const LscKvLog *log)
{
  return log->n_positions;
}

const int *
lsc_kv_log_get_steps (const LscKvLog *log, int *n_steps)
{
  *n_steps = (int) log->steps->len;
  return (const int *) log->steps->data;
}

int
lsc_kv_log_evicted_at (const LscKvLog *log, int layer, int head, int pos)
{
  g_return_val_if_fail (layer >= 0 && layer < log->n_layers && head >= 0 && head < log->n_heads
                          && pos >= 0 && pos < log->n_positions,
                        -1);
  return log->evicted_at[log_index (log, layer, head, pos)];
}

float
lsc_kv_log_score (const LscKvLog *log, int layer, int head, int pos)
{
  g_return_val_if_fail (layer >= 0 && layer < log->n_layers && head >= 0 && head < log->n_heads
                          && pos >= 0 && pos < log->n_positions,
                        NAN);
  return log->score[log_index (log, layer, head, pos)];
}

gboolean
lsc_kv_log_alive (const LscKvLog *log, int layer, int head, int pos, int length)
{
  if (pos < 0 || pos >= MIN (length, log->n_positions))
    return FALSE;
  int at = lsc_kv_log_evicted_at (log, layer, head, pos);
  return at < 0 || at > length;
}

int
lsc_kv_log_count_alive (const LscKvLog *log, int layer, int head)
{
  int n = 0;
  for (int pos = 0; pos < log->n_positions; pos++)
    n += log->evicted_at[log_index (log, layer, head, pos)] < 0;
  return n;
}

LscKvLog *
lsc_kv_log_new_from_data (const LscKvPolicy *policy, int n_layers, int n_heads, int head_dim,
                          int n_positions, const gint32 *evicted_at, const float *scores,
                          const int *steps, int n_steps, const gint32 *pruned)
{
  g_return_val_if_fail (n_layers > 0 && n_heads > 0 && head_dim > 0 && n_positions >= 0
                          && n_steps >= 0, NULL);
  LscKvLog *log = g_new0 (LscKvLog, 1);
  log_init (log, policy, n_layers, n_heads, head_dim);
  for (gsize i = 0; log->pruned != NULL && pruned != NULL
                    && i < (gsize) n_layers * n_heads * head_dim; i++)
    log->pruned[i] = pruned[i] != 0;
  log_append (log, n_positions);
  for (int l = 0; l < n_layers; l++)
    for (int h = 0; h < n_heads; h++)
      for (int pos = 0; pos < n_positions; pos++)
        {
          gsize src = ((gsize) l * n_heads + h) * n_positions + pos;
          log->evicted_at[log_index (log, l, h, pos)] = evicted_at[src];
          log->score[log_index (log, l, h, pos)] = scores[src];
        }
  g_array_append_vals (log->steps, steps, n_steps);
  return log;
}

void
lsc_kv_log_free (LscKvLog *log)
{
  if (log == NULL)
    return;
  log_clear (log);
  g_free (log);
}

double
lsc_kv_kl_divergence (const float *p, const float *q, int n)
{
  double mp = -INFINITY, mq = -INFINITY, zp = 0.0, zq = 0.0;
  for (int i = 0; i < n; i++)
    {
      mp = MAX (mp, p[i]);
      mq = MAX (mq, q[i]);
    }
  for (int i = 0; i < n; i++)
    {
      zp += exp (p[i] - mp);
      zq += exp (q[i] - mq);
    }
  double lp = mp + log (zp), lq = mq + log (zq), kl = 0.0;
  for (int i = 0; i < n; i++)
    {
      double a = p[i] - lp, b = q[i] - lq;
      kl += exp (a) * (a - b);
    }
  return MAX (kl, 0.0);
}

/* ---- the session side ---- */

static gboolean
policy_scores (const LscKvPolicy *p)
{
  return p->kind == LSC_KV_H2O || p->kind == LSC_KV_SNAPKV || p->kind == LSC_KV_PYRAMIDKV;
}

/* Keep in step with _lsc_kv_init () below. */
guint64
_lsc_kv_state_bytes (const LscModelConfig *c, const LscSessionParams *params)
{
  const LscKvPolicy *p = &params->kv_policy;
  if (p->kind == LSC_KV_FULL)
    return 0;
  guint64 n_ctx = params->n_ctx, L = c->n_layers, H = c->n_heads;
  guint64 bytes = L * sizeof (int) + L * c->n_kv_heads * n_ctx * sizeof (gint32);
  if (p->kind == LSC_KV_H2O)
    bytes += L * H * n_ctx * sizeof (float);
  if (policy_scores (p))
    bytes += (L + params->n_threads) * H * n_ctx * sizeof (float);
  if (p->kind == LSC_KV_STREAMING_LLM || p->kind == LSC_KV_LACACHE)
    bytes += n_ctx * ((guint64) c->n_kv_heads * c->head_dim + c->head_dim) * sizeof (float);
  if (p->kind == LSC_KV_LM_INFINITE)
    bytes += ((guint64) p->n_global * (c->n_kv_heads + 1) + n_ctx + params->n_threads)
             * c->head_dim * sizeof (float);
  if (p->kind == LSC_KV_THINK)
    bytes += (L + params->n_threads) * H * c->head_dim * sizeof (double);
  return bytes;
}

guint64
_lsc_kv_log_bytes (const LscModelConfig *c, const LscKvPolicy *p, int chunk, int n_prompt,
                   int n_pos)
{
  guint64 pruned = p->kind == LSC_KV_THINK ? (guint64) c->n_layers * c->n_kv_heads * c->head_dim
                                           : 0;
  if (p->kind == LSC_KV_FULL)
    return 0;
  int cap = 0, step = chunk > 0 ? chunk : MAX (n_prompt, 1);
  for (int r = MIN (step, n_prompt); r <= n_prompt && r > 0;
       r = r == n_prompt ? r + 1 : MIN (r + step, n_prompt))
    cap = _lsc_ssm_store_grow (cap, r);
  for (int r = n_prompt + 1; r <= n_pos; r++)
    cap = _lsc_ssm_store_grow (cap, r);
  return (guint64) cap * c->n_layers * c->n_kv_heads * (sizeof (gint32) + sizeof (float)) + pruned;
}

guint64
_lsc_session_kv_bytes (const LscSession *s)
{
  if (s->kv == NULL)
    return 0;
  return _lsc_kv_state_bytes (&s->c, &s->params) + log_bytes (&s->kv->log);
}

gboolean
_lsc_kv_init (LscSession *s, GError **error)
{
  const LscKvPolicy *p = &s->params.kv_policy;
  const char *path = lsc_model_get_path (s->model);
  const char *name = lsc_kv_policy_name (p->kind);
  const LscModelConfig *c = &s->c;

  if (p->kind == LSC_KV_FULL)
    return TRUE;
  g_autofree char *bad = lsc_kv_policy_check (p);
  if (bad != NULL)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT, "%s", bad);
      return FALSE;
    }
  const char *refused = NULL;
  if (s->params.capture.enabled)
    refused = "attention capture";
  else if (s->params.hooks.mask_row != NULL)
    refused = "an attention mask hook (a plugin)";
  for (int l = 0; refused == NULL && l < c->n_layers; l++)
    if (s->layers[l].window > 0)
      refused = "sliding-window attention";
  if (refused != NULL)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "%s: the %s KV policy cannot run with %s yet", path, name, refused);
      return FALSE;
    }
  g_autofree char *ladder = p->kind == LSC_KV_LACACHE ? ladder_check (p, c->n_layers) : NULL;
  if (ladder != NULL)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT, "%s: %s", path, ladder);
      return FALSE;
    }

  LscKvState *kv = g_new0 (LscKvState, 1);
  s->kv = kv;
  kv->policy = *p;
  kv->pos_shift = p->kind == LSC_KV_STREAMING_LLM || p->kind == LSC_KV_LACACHE;
  kv->la_cursor = p->n_sink;
  kv->la_capacity = p->capacity;
  kv->n_heads = c->n_heads;
  kv->n_kv_heads = c->n_kv_heads;
  kv->group = c->n_heads / c->n_kv_heads;
  kv->n_ctx = s->params.n_ctx;
  kv->n_threads = s->params.n_threads;
  kv->acc_from = G_MAXINT;
  kv->rot_seq = -1;

  gsize n_ctx = kv->n_ctx, L = c->n_layers, H = c->n_heads;
  kv->len = g_new0 (int, L);
  kv->slot_pos = g_new (gint32, L * c->n_kv_heads * n_ctx);
  if (p->kind == LSC_KV_H2O)
    kv->hh = g_new0 (float, L * H * n_ctx);
  if (policy_scores (p))
    {
      kv->delta = g_new0 (float, L * H * n_ctx);
      kv->acc = g_new0 (float, (gsize) kv->n_threads * H * n_ctx);
    }
  if (kv->pos_shift)
    {
      kv->rot = g_new (float, n_ctx * c->n_kv_heads * c->head_dim);
      kv->rot_cos = g_new (float, n_ctx * (c->head_dim / 2));
      kv->rot_sin = g_new (float, n_ctx * (c->head_dim / 2));
    }
  if (p->kind == LSC_KV_LM_INFINITE)
    {
      gsize half = c->head_dim / 2, g = p->n_global;
      kv->raw = g_new (float, g * c->n_kv_heads * c->head_dim);
      kv->raw_cos = g_new (float, g * half);
      kv->raw_sin = g_new (float, g * half);
      kv->stat_cos = g_new (float, n_ctx * half);
      kv->stat_sin = g_new (float, n_ctx * half);
      kv->stat_q = g_new (float, (gsize) kv->n_threads * c->head_dim);
    }
  if (p->kind == LSC_KV_THINK)
    {
      kv->qsq = g_new0 (double, (gsize) kv->n_threads * H * c->head_dim);
      kv->qn = g_new0 (double, L * H * c->head_dim);
    }
  log_init (&kv->log, p, c->n_layers, c->n_kv_heads, c->head_dim);
  return TRUE;
}

void
_lsc_kv_free (LscSession *s)
{
  LscKvState *kv = s->kv;
  if (kv == NULL)
    return;
  g_free (kv->len);
  g_free (kv->slot_pos);
  g_free (kv->hh);
  g_free (kv->delta);
  g_free (kv->acc);
  g_free (kv->rot);
  g_free (kv->rot_cos);
  g_free (kv->rot_sin);
  g_free (kv->raw);
  g_free (kv->raw_cos);
  g_free (kv->raw_sin);
  g_free (kv->stat_cos);
  g_free (kv->stat_sin);
  g_free (kv->stat_q);
  g_free (kv->qsq);
  g_free (kv->qn);
  log_clear (&kv->log);
  g_clear_pointer (&s->kv, g_free);
}

void
_lsc_kv_reset (LscSession *s)
{
  LscKvState *kv = s->kv;
  memset (kv->len, 0, s->c.n_layers * sizeof (int));
  kv->n_evals = 0;
  kv->la_cursor = kv->policy.n_sink;
  kv->la_capacity = kv->policy.capacity;
  kv->la_compensated = FALSE;
  kv->acc_from = G_MAXINT;
  LscKvPolicy policy = kv->log.policy;
  log_clear (&kv->log);
  log_init (&kv->log, &policy, s->c.n_layers, s->c.n_kv_heads, s->c.head_dim);
}

const LscKvLog *
lsc_session_get_kv (const LscSession *s)
{
  return s->kv != NULL ? &s->kv->log : NULL;
}

int
_lsc_kv_slot0 (const LscSession *s, int layer)
{
  return s->kv != NULL ? s->kv->len[layer] : s->pos;
}

int
_lsc_kv_max_len (const LscSession *s)
{
  int m = 0;
  for (int l = 0; l < s->c.n_layers; l++)
    m = MAX (m, s->kv->len[l]);
  return m;
}

gboolean
_lsc_kv_pos_shift (const LscSession *s)
{
  return s->kv != NULL && s->kv->pos_shift;
}

void
_lsc_kv_begin_eval (LscSession *s, int n)
{
  LscKvState *kv = s->kv;
  if (kv == NULL)
    return;
  const LscKvPolicy *p = &kv->policy;
  kv->acc_from = G_MAXINT;
  if (p->kind == LSC_KV_H2O)
    kv->acc_from = s->pos;
  else if (p->kind == LSC_KV_THINK && kv->n_evals == 0)
    kv->acc_from = s->pos + MAX (0, n - THINK_QUERIES);
  else if ((p->kind == LSC_KV_SNAPKV || p->kind == LSC_KV_PYRAMIDKV) && kv->n_evals == 0
           && n >= p->capacity)
    kv->acc_from = s->pos + n - p->window;
  if (p->kind == LSC_KV_LM_INFINITE)
    {
      /* pure rotations (no attention factor): a row's query from its
       * position to `local`, a global key from its position back to 0 */
      int half = s->c.head_dim / 2;
      for (int i = 0; i < n; i++)
        lsc_rope_cos_sin (s->inv_freq, half, 1.0, p->n_local - (s->pos + i),
                          kv->stat_cos + (gsize) i * half, kv->stat_sin + (gsize) i * half);
      for (int j = 0; j < p->n_global; j++)
        lsc_rope_cos_sin (s->inv_freq, half, 1.0, -j, kv->raw_cos + (gsize) j * half,
                          kv->raw_sin + (gsize) j * half);
    }
}

gboolean
_lsc_kv_fixes_rows (const LscSession *s)
{
  return s->kv != NULL && s->kv->policy.kind == LSC_KV_LM_INFINITE;
}

/* The original position of `slot` of (layer, kvh) during an evaluation:
 * slots past those in use hold the evaluation's tokens. */
static int
slot_position (const LscSession *s, int layer, int kvh, int slot)
{
  const LscKvState *kv = s->kv;
  int len = kv->len[layer];
  if (slot >= len)
    return s->pos + (slot - len);
  return kv->slot_pos[((gsize) layer * kv->n_kv_heads + kvh) * kv->n_ctx + slot];
}

void
_lsc_kv_fix_row (LscSession *s, int layer, int head, int pos, int slot, const float *q,
                 float *scores, float scale, int thread)
{
  LscKvState *kv = s->kv;
  if (kv == NULL || kv->policy.kind != LSC_KV_LM_INFINITE)
    return;
  const LscModelConfig *c = &s->c;
  int hd = c->head_dim, half = hd / 2, kv_dim = c->n_kv_heads * hd, kvh = head / kv->group;
  int local = kv->policy.n_local, n_global = kv->policy.n_global;
  /* positions grow with the slot: the keys out of the local window are
   * slots [0, far), found by bisection */
  int lo = 0, hi = slot + 1;
  while (lo < hi)
    {
      int mid = lo + (hi - lo) / 2;
      if (pos - slot_position (s, layer, kvh, mid) >= local)
        lo = mid + 1;
      else
        hi = mid;
    }
  int far = lo;
  for (int j = MIN (n_global, far); j < far; j++)
    scores[j] = -INFINITY;   /* neither global nor local: hidden */
  float *qs = NULL;
  for (int j = 0; j < MIN (n_global, far); j++)
    {
      /* slot j < n_global holds position j: nothing before it is ever evicted */
      if (qs == NULL)
        {
          /* the query rotated at the distance cap instead of its position */
          qs = kv->stat_q + (gsize) thread * hd;
          memcpy (qs, q, hd * sizeof (float));
          gsize row = pos - s->pos;
          lsc_rope (qs, 1, hd, kv->stat_cos + row * half, kv->stat_sin + row * half,
                    c->rope_layout);
        }
      const float *k = kv->raw + (gsize) j * kv_dim + kvh * hd;   /* slot j holds position j */
      double dot = 0.0;
      for (int i = 0; i < hd; i++)
        dot += (double) qs[i] * k[i];
      scores[j] = (float) (dot * scale);
    }
}

gboolean
_lsc_kv_scoring (const LscSession *s)
{
  return s->kv != NULL && s->kv->acc_from != G_MAXINT;
}

void
_lsc_kv_row_query (LscSession *s, int head, int pos, const float *q, int thread)
{
  LscKvState *kv = s->kv;
  if (kv == NULL || kv->qsq == NULL || pos < kv->acc_from)
    return;
  int hd = s->c.head_dim;
  double *sq = kv->qsq + ((gsize) thread * kv->n_heads + head) * hd;
  for (int c = 0; c < hd; c++)
    sq[c] += (double) q[c] * q[c];
}

float *
_lsc_kv_row_sums (LscSession *s, int head, int pos, int thread)
{
  LscKvState *kv = s->kv;
  if (kv == NULL || kv->acc == NULL || pos < kv->acc_from)
    return NULL;
  return kv->acc + ((gsize) thread * kv->n_heads + head) * kv->n_ctx;
}

void
_lsc_kv_fold_sums (LscSession *s, int layer, int n_slots)
{
  LscKvState *kv = s->kv;
  if (kv == NULL || kv->acc_from == G_MAXINT)
    return;
  if (kv->qsq != NULL)
    {
      int hd = s->c.head_dim;
      gsize per = (gsize) kv->n_heads * hd;
      double *qn = kv->qn + (gsize) layer * per;
      for (int t = 0; t < kv->n_threads; t++)
        for (gsize i = 0; i < per; i++)
          {
            qn[i] += kv->qsq[t * per + i];
            kv->qsq[t * per + i] = 0.0;
          }
      return;
    }
  gsize n_ctx = kv->n_ctx;
  float *delta = kv->delta + (gsize) layer * kv->n_heads * n_ctx;
  for (int t = 0; t < kv->n_threads; t++)
    for (int h = 0; h < kv->n_heads; h++)
      {
        float *a = kv->acc + ((gsize) t * kv->n_heads + h) * n_ctx;
        float *d = delta + (gsize) h * n_ctx;
        for (int j = 0; j < n_slots; j++)
          d[j] += a[j];
        memset (a, 0, n_slots * sizeof (float));
      }
}

const float *
_lsc_kv_keys (const LscSession *s, int layer)
{
  if (s->kv != NULL && s->kv->pos_shift)
    return s->kv->rot;
  return s->key_cache + (gsize) layer * s->params.n_ctx * s->c.n_kv_heads * s->c.head_dim;
}

void
_lsc_kv_prepare_keys (LscSession *s, int layer, int n_slots)
{
  const LscModelConfig *c = &s->c;
  int kv_dim = c->n_kv_heads * c->head_dim, half = c->head_dim / 2;
  LscKvState *kv = s->kv;
  if (kv == NULL)
    return;
  const float *cache = s->key_cache + (gsize) layer * s->params.n_ctx * kv_dim;
  if (kv->policy.kind == LSC_KV_LM_INFINITE)
    {
      /* the global tokens' keys unrotated (they sit in the first slots) */
      for (int j = 0; j < MIN (kv->policy.n_global, n_slots); j++)
        {
          float *k = kv->raw + (gsize) j * kv_dim;
          memcpy (k, cache + (gsize) j * kv_dim, kv_dim * sizeof (float));
          lsc_rope (k, c->n_kv_heads, c->head_dim, kv->raw_cos + (gsize) j * half,
                    kv->raw_sin + (gsize) j * half, c->rope_layout);
        }
      return;
    }
  if (!kv->pos_shift)
    return;
  if (kv->rot_seq != s->rope_seq_len)
    {
      for (int j = 0; j < kv->n_ctx; j++)
        lsc_rope_cos_sin (s->inv_freq, half, s->rope_factor, j, kv->rot_cos + (gsize) j * half,
                          kv->rot_sin + (gsize) j * half);
      kv->rot_seq = s->rope_seq_len;
    }
  /* keys are cached before RoPE: rotate each at its slot */
#pragma omp parallel for num_threads (s->params.n_threads) schedule (static) \
  if ((gint64) n_slots * kv_dim >= (1 << 16))
  for (int j = 0; j < n_slots; j++)
    {
      float *k = kv->rot + (gsize) j * kv_dim;
      memcpy (k, cache + (gsize) j * kv_dim, kv_dim * sizeof (float));
      lsc_rope (k, c->n_kv_heads, c->head_dim, kv->rot_cos + (gsize) j * half,
                kv->rot_sin + (gsize) j * half, c->rope_layout);
    }
}

void
_lsc_kv_cancel_eval (LscSession *s)
{
  LscKvState *kv = s->kv;
  if (kv == NULL)
    return;
  if (kv->delta != NULL)
    memset (kv->delta, 0, (gsize) s->c.n_layers * kv->n_heads * kv->n_ctx * sizeof (float));
  if (kv->acc != NULL)
    memset (kv->acc, 0, (gsize) kv->n_threads * kv->n_heads * kv->n_ctx * sizeof (float));
  if (kv->qsq != NULL)
    {
      memset (kv->qsq, 0, (gsize) kv->n_threads * kv->n_heads * s->c.head_dim * sizeof (double));
      memset (kv->qn, 0, (gsize) s->c.n_layers * kv->n_heads * s->c.head_dim * sizeof (double));
    }
  kv->acc_from = G_MAXINT;
}

/* ---- decisions ---- */

typedef struct {
  const double *score;
} ByScore;

/* Descending score, then ascending slot. */
static gint
by_score (gconstpointer a, gconstpointer b, gpointer data)
{
  const double *score = ((const ByScore *) data)->score;
  int i = *(const int *) a, j = *(const int *) b;
  if (score[i] != score[j])
    return score[i] > score[j] ? -1 : 1;
  return (i > j) - (i < j);
}

static gint
by_slot (gconstpointer a, gconstpointer b)
{
  int i = *(const int *) a, j = *(const int *) b;
  return (i > j) - (i < j);
}

/* keep <- the k slots of [0, n) with the highest score, then slots
 * [tail, len), in slot order; returns how many. order is (n) scratch. */
static int
select_top (const double *score, int n, int k, int tail, int len, int *order, int *keep)
{
  for (int i = 0; i < n; i++)
    order[i] = i;
  ByScore data = { score };
  g_qsort_with_data (order, n, sizeof (int), by_score, &data);
  k = MIN (k, n);
  memcpy (keep, order, k * sizeof (int));
  qsort (keep, k, sizeof (int), by_slot);
  for (int j = tail; j < len; j++)
    keep[k++] = j;
  return k;
}

/* Compacts the n_keep slots keep (ascending) of (layer, kv head) to the
 * front; the others are logged evicted with score[slot] (NULL: NaN). */
static void
compact (LscSession *s, int layer, int kvh, const int *keep, int n_keep, int len,
         const double *score)
{
  LscKvState *kv = s->kv;
  const LscModelConfig *c = &s->c;
  int hd = c->head_dim, kv_dim = c->n_kv_heads * hd;
  gsize n_ctx = kv->n_ctx;
  float *kc = s->key_cache + (gsize) layer * n_ctx * kv_dim + kvh * hd;
  float *vc = s->value_cache + (gsize) layer * n_ctx * kv_dim + kvh * hd;
  gint32 *slot_pos = kv->slot_pos + ((gsize) layer * kv->n_kv_heads + kvh) * n_ctx;

  int next = 0;
  for (int j = 0; j < len; j++)
    {
      if (next < n_keep && keep[next] == j)
        {
          next++;
          continue;
        }
      gsize at = log_index (&kv->log, layer, kvh, slot_pos[j]);
      kv->log.evicted_at[at] = s->pos;
      kv->log.score[at] = score != NULL ? (float) score[j] : NAN;
    }
  for (int i = 0; i < n_keep; i++)
    {
      int src = keep[i];
      if (src == i)
        continue;
      memcpy (kc + (gsize) i * kv_dim, kc + (gsize) src * kv_dim, hd * sizeof (float));
      memcpy (vc + (gsize) i * kv_dim, vc + (gsize) src * kv_dim, hd * sizeof (float));
      slot_pos[i] = slot_pos[src];
      if (kv->hh != NULL)
        for (int g = 0; g < kv->group; g++)
          {
            float *hh = kv->hh + ((gsize) layer * kv->n_heads + kvh * kv->group + g) * n_ctx;
            hh[i] = hh[src];
          }
    }
}

/* One LaCache call (ppl/lacache/kv_cache.py LaCache.__call__) on a cache of
 * len slots in every layer: what it keeps, decided once for all layers. */
typedef struct {
  gboolean active;
  Ladder g;
  int cursor, n_ladders;           /* the ladder from the old cursor, n_ladders blocks */
  int base_len;                    /* entries of the first selection */
  gboolean startover;
  int times, before_so, n_ladders_so;
  int next_cursor;
} LadderStep;

static LadderStep
ladder_step (LscKvState *kv, int n_layers, int len)
{
  const LscKvPolicy *p = &kv->policy;
  LadderStep st = { FALSE };
  if (len <= kv->la_capacity)
    return st;
  st.g = ladder_of (p, n_layers);
  if (!kv->la_compensated)
    {
      kv->la_capacity += st.g.reduce / 2;   /* matches the average cache size */
      kv->la_compensated = TRUE;
    }
  int need = len - kv->la_capacity;
  if (need <= 0)
    return st;   /* the reference would repeat tokens here: evict nothing */
  st.active = TRUE;
  st.cursor = kv->la_cursor;
  int room = kv->la_capacity - kv->la_cursor - n_layers;
  int can = floor_div (room, st.g.after) * st.g.reduce;
  st.startover = need > can;
  int increment = st.startover ? room : ceil_div (need, st.g.reduce) * st.g.after;
  st.n_ladders = MAX (0, floor_div (increment, st.g.after));
  st.base_len = st.cursor + st.n_ladders * st.g.after + (len - (st.cursor + st.g.before * st.n_ladders));
  st.next_cursor = st.cursor + increment;
  if (st.startover)
    {
      int once = floor_div (kv->la_capacity - p->n_sink - n_layers, st.g.after) * st.g.reduce;
      int remaining = need - can;
      st.times = ceil_div (remaining, once);
      st.before_so = st.g.before + (st.times - 1) * (st.g.before - 1);
      int reduce_so = st.before_so - st.g.after;
      int increment_so = ceil_div (remaining, reduce_so) * st.g.after;
      st.n_ladders_so = floor_div (increment_so, st.g.after);
      st.next_cursor = p->n_sink + increment_so;
    }
  return st;
}

/* keep <- the slots layer l keeps in the step (ascending); returns how many. */
static int
ladder_keep (const LadderStep *st, const LscKvPolicy *p, int layer, int len, int *keep,
             int *scratch)
{
  const Ladder *g = &st->g;
  int n = 0;
  for (int j = 0; j < st->cursor; j++)
    scratch[n++] = j;
  for (int b = 0; b < st->n_ladders; b++)
    for (int k = 0; k < g->after; k++)
      scratch[n++] = st->cursor + layer % (g->reduce + 1) + g->before * b + k;
  for (int j = st->cursor + g->before * st->n_ladders; j < len; j++)
    scratch[n++] = j;
  if (!st->startover)
    {
      memcpy (keep, scratch, n * sizeof (int));
      return n;
    }
  /* start over: thin the laddered region again, indexing the selection above */
  int reduce_so = st->before_so - g->after, m = 0;
  for (int j = 0; j < p->n_sink; j++)
    keep[m++] = scratch[j];
  for (int b = 0; b < st->n_ladders_so; b++)
    for (int k = 0; k < g->after; k++)
      {
        int i = p->n_sink + layer % (reduce_so + 1) + st->before_so * b + st->times * k;
        if (i < n)
          keep[m++] = scratch[i];
      }
  for (int i = p->n_sink + st->before_so * st->n_ladders_so; i < n; i++)
    keep[m++] = scratch[i];
  qsort (keep, m, sizeof (int), by_slot);
  return m;
}

/* score (len) <- the sum over the query heads of KV head kvh of src
 * (n_layers, n_heads, n_ctx) at layer. */
static void
group_sum (const LscKvState *kv, const float *src, int layer, int kvh, int len, double *score)
{
  for (int j = 0; j < len; j++)
    score[j] = 0.0;
  for (int g = 0; g < kv->group; g++)
    {
      const float *a = src + ((gsize) layer * kv->n_heads + kvh * kv->group + g) * kv->n_ctx;
      for (int j = 0; j < len; j++)
        score[j] += a[j];
    }
}

/* pooled (n) <- avg_pool1d / max_pool1d of v (n), stride 1, padding k / 2. */
static void
pool (const double *v, int n, int k, LscKvPooling pooling, double *pooled)
{
  int r = k / 2;
  for (int j = 0; j < n; j++)
    {
      double acc = pooling == LSC_KV_POOL_MAX ? -INFINITY : 0.0;
      for (int i = MAX (0, j - r); i <= MIN (n - 1, j + r); i++)
        acc = pooling == LSC_KV_POOL_MAX ? MAX (acc, v[i]) : acc + v[i];
      pooled[j] = pooling == LSC_KV_POOL_MAX ? acc : acc / k;
    }
}

static void
log_live_scores (LscKvState *kv, int layer, int kvh, int len, const double *score)
{
  const gint32 *slot_pos = kv->slot_pos + ((gsize) layer * kv->n_kv_heads + kvh) * kv->n_ctx;
  for (int j = 0; j < len; j++)
    kv->log.score[log_index (&kv->log, layer, kvh, slot_pos[j])] = (float) score[j];
}

/* ThinK after the first evaluation of n tokens: per layer and KV head,
 * channel scores mean(q_c^2) (the last rows, summed over the query heads)
 * times mean(k_c^2) (every cached key); the int(head_dim * ratio) lowest
 * are zeroed in every key but the last `recent`. */
static void
think_prune (LscSession *s, int n)
{
  LscKvState *kv = s->kv;
  const LscModelConfig *c = &s->c;
  int hd = c->head_dim, kv_dim = c->n_kv_heads * hd;
  int n_prune = (int) (hd * kv->policy.ratio), n_rows = MIN (n, THINK_QUERIES);
  g_autofree double *score = g_new (double, hd);
  g_autofree int *order = g_new (int, hd);
  g_autofree int *drop = g_new (int, hd);
  for (int l = 0; l < c->n_layers; l++)
    {
      int len = kv->len[l], old = len - kv->policy.n_recent;
      float *kc = s->key_cache + (gsize) l * kv->n_ctx * kv_dim;
      for (int kvh = 0; kvh < kv->n_kv_heads; kvh++)
        {
          for (int ch = 0; ch < hd; ch++)
            {
              double q2 = 0.0, k2 = 0.0;
              for (int g = 0; g < kv->group; g++)
                q2 += kv->qn[((gsize) l * kv->n_heads + kvh * kv->group + g) * hd + ch];
              for (int j = 0; j < len; j++)
                {
                  double k = kc[(gsize) j * kv_dim + kvh * hd + ch];
                  k2 += k * k;
                }
              score[ch] = -(q2 / n_rows) * (k2 / len);   /* the lowest first */
            }
          if (old <= 0)
            continue;
          select_top (score, hd, n_prune, hd, hd, order, drop);
          for (int i = 0; i < n_prune; i++)
            {
              int ch = drop[i];
              kv->log.pruned[((gsize) l * kv->n_kv_heads + kvh) * hd + ch] = 1;
              for (int j = 0; j < old; j++)
                kc[(gsize) j * kv_dim + kvh * hd + ch] = 0.0f;
            }
        }
    }
}

void
_lsc_kv_end_eval (LscSession *s, int n)
{
  LscKvState *kv = s->kv;
  if (kv == NULL)
    return;
  const LscKvPolicy *p = &kv->policy;
  const LscModelConfig *c = &s->c;
  gsize n_ctx = kv->n_ctx;
  int start = s->pos - n;   /* the stream position of the evaluation's first token */

  log_append (&kv->log, n);
  int max_len = 0;
  for (int l = 0; l < c->n_layers; l++)
    {
      for (int h = 0; h < kv->n_kv_heads; h++)
        for (int i = 0; i < n; i++)
          kv->slot_pos[((gsize) l * kv->n_kv_heads + h) * n_ctx + kv->len[l] + i] = start + i;
      if (kv->hh != NULL)
        for (int h = 0; h < kv->n_heads; h++)
          memset (kv->hh + ((gsize) l * kv->n_heads + h) * n_ctx + kv->len[l], 0,
                  n * sizeof (float));
      kv->len[l] += n;
      max_len = MAX (max_len, kv->len[l]);
    }

  double *score = g_new (double, max_len);
  double *pooled = g_new (double, max_len);
  int *order = g_new (int, max_len);
  int *keep = g_new (int, max_len);
  LadderStep ladder = { FALSE };
  if (p->kind == LSC_KV_LACACHE)
    ladder = ladder_step (kv, c->n_layers, kv->len[0]);
  for (int l = 0; l < c->n_layers; l++)
    {
      int len = kv->len[l], n_keep = -1;
      for (int kvh = 0; kvh < kv->n_kv_heads; kvh++)
        switch (p->kind)
          {
          case LSC_KV_STREAMING_LLM:
            if (len > p->n_sink + p->n_recent)
              {
                n_keep = 0;
                for (int j = 0; j < p->n_sink; j++)
                  keep[n_keep++] = j;
                for (int j = len - p->n_recent; j < len; j++)
                  keep[n_keep++] = j;
                compact (s, l, kvh, keep, n_keep, len, NULL);
              }
            break;
          case LSC_KV_H2O:
            {
              float *hh = kv->hh + (gsize) l * kv->n_heads * n_ctx;
              const float *d = kv->delta + (gsize) l * kv->n_heads * n_ctx;
              for (int g = 0; g < kv->group; g++)
                {
                  gsize off = (gsize) (kvh * kv->group + g) * n_ctx;
                  for (int j = 0; j < len; j++)
                    hh[off + j] += d[off + j];
                }
              group_sum (kv, kv->hh, l, kvh, len, score);
              if (len > p->n_heavy + p->n_recent)
                {
                  n_keep = select_top (score, len - p->n_recent, p->n_heavy, len - p->n_recent,
                                       len, order, keep);
                  compact (s, l, kvh, keep, n_keep, len, score);
                  for (int i = 0; i < n_keep; i++)
                    score[i] = score[keep[i]];
                }
              log_live_scores (kv, l, kvh, n_keep < 0 ? len : n_keep, score);
            }
            break;
          case LSC_KV_SNAPKV:
          case LSC_KV_PYRAMIDKV:
            {
              int prefix = kv->n_evals == 0 ? prefix_budget (p, c->n_layers, l, n) : -1;
              if (prefix < 0)
                break;
              int m = len - p->window;
              group_sum (kv, kv->delta, l, kvh, m, score);
              pool (score, m, p->kernel, p->pooling, pooled);
              n_keep = select_top (pooled, m, prefix, m, len, order, keep);
              compact (s, l, kvh, keep, n_keep, len, pooled);
              const gint32 *slot_pos = kv->slot_pos + ((gsize) l * kv->n_kv_heads + kvh) * n_ctx;
              for (int i = 0; i < n_keep && keep[i] < m; i++)
                kv->log.score[log_index (&kv->log, l, kvh, slot_pos[i])] = (float) pooled[keep[i]];
            }
            break;
          case LSC_KV_LM_INFINITE:
            {
              /* what the next query can still see: the global tokens and
               * the last local - 1 */
              n_keep = 0;
              for (int j = 0; j < len; j++)
                {
                  int pj = kv->slot_pos[((gsize) l * kv->n_kv_heads + kvh) * n_ctx + j];
                  if (pj < p->n_global || s->pos - pj < p->n_local)
                    keep[n_keep++] = j;
                }
              if (n_keep < len)
                compact (s, l, kvh, keep, n_keep, len, NULL);
            }
            break;
          case LSC_KV_LACACHE:
            if (ladder.active)
              {
                n_keep = ladder_keep (&ladder, p, l, len, keep, order);
                compact (s, l, kvh, keep, n_keep, len, NULL);
              }
            break;
          case LSC_KV_FULL:
          default:
            break;
          }
      if (n_keep >= 0)
        kv->len[l] = n_keep;
    }
  g_free (score);
  g_free (pooled);
  g_free (order);
  g_free (keep);
  if (ladder.active)
    kv->la_cursor = ladder.next_cursor;

  if (p->kind == LSC_KV_THINK && kv->n_evals == 0)
    think_prune (s, n);
  if (kv->delta != NULL && kv->acc_from != G_MAXINT)
    memset (kv->delta, 0, (gsize) c->n_layers * kv->n_heads * n_ctx * sizeof (float));
  kv->acc_from = G_MAXINT;
  kv->n_evals++;
  g_array_append_val (kv->log.steps, s->pos);
}
