/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-generate.h"

struct _LscSampler {
  LscSamplerParams params;
  int n_vocab;
  guint64 state;          /* xorshift64* */
  float *probs;           /* (n_vocab) */
  int *order;             /* (n_vocab) candidate ids */
};

LscSampler *
lsc_sampler_new (const LscSamplerParams *params, int n_vocab)
{
  LscSampler *s = g_new0 (LscSampler, 1);
  s->params = *params;
  s->n_vocab = n_vocab;
  /* xorshift must not start at 0 */
  s->state = params->seed ? params->seed : 0x9e3779b97f4a7c15ull;
  s->probs = g_new (float, n_vocab);
  s->order = g_new (int, n_vocab);
  return s;
}

void
lsc_sampler_free (LscSampler *s)
{
  if (s == NULL)
    return;
  g_free (s->probs);
  g_free (s->order);
  g_free (s);
}

static float
random_f32 (guint64 *state)
{
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  guint32 r = (guint32) ((*state * 0x2545F4914F6CDD1Dull) >> 32);
  return (r >> 8) / 16777216.0f;
}

static int
argmax (const float *x, int n)
{
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

static int
by_prob_desc (const void *a, const void *b, void *probs)
{
  const float *p = probs;
  float pa = p[*(const int *) a], pb = p[*(const int *) b];
  if (pa != pb)
    return pa > pb ? -1 : 1;
  return *(const int *) a - *(const int *) b;
}

int
lsc_sampler_sample (LscSampler *s, const float *logits)
{
  int n = s->n_vocab;
  const LscSamplerParams *p = &s->params;

  if (p->temperature <= 0.0f)
    return argmax (logits, n);

  /* softmax(logits / T) */
  float max = logits[argmax (logits, n)];
  double sum = 0;
  for (int i = 0; i < n; i++)
    {
      s->probs[i] = expf ((logits[i] - max) / p->temperature);
      sum += s->probs[i];
    }
  for (int i = 0; i < n; i++)
    s->probs[i] = (float) (s->probs[i] / sum);

  /* candidates: all ids, or the top-k / top-p set in decreasing probability */
  int n_cand = n;
  for (int i = 0; i < n; i++)
    s->order[i] = i;
  gboolean truncate = (p->top_k > 0 && p->top_k < n) || (p->top_p > 0.0f && p->top_p < 1.0f);
  if (truncate)
    {
      qsort_r (s->order, n, sizeof (int), by_prob_desc, s->probs);
      if (p->top_k > 0 && p->top_k < n)
        n_cand = p->top_k;
      if (p->top_p > 0.0f && p->top_p < 1.0f)
        {
          double cum = 0;
          for (int i = 0; i < n_cand; i++)
            {
              cum += s->probs[s->order[i]];
              if (cum >= p->top_p)
                {
                  n_cand = i + 1;
                  break;
                }
            }
        }
    }

  double mass = 0;
  for (int i = 0; i < n_cand; i++)
    mass += s->probs[s->order[i]];
  double coin = random_f32 (&s->state) * mass, cdf = 0;
  for (int i = 0; i < n_cand; i++)
    {
      cdf += s->probs[s->order[i]];
      if (coin < cdf)
        return s->order[i];
    }
  return s->order[n_cand - 1];   /* rounding */
}

double
lsc_log_prob (const float *logits, int n, int token)
{
  double max = logits[argmax (logits, n)], sum = 0;
  for (int i = 0; i < n; i++)
    sum += exp (logits[i] - max);
  return logits[token] - max - log (sum);
}

void
lsc_generate_params_init (LscGenerateParams *params)
{
  memset (params, 0, sizeof *params);
  params->max_tokens = 256;
  params->sampler.top_p = 1.0f;
  params->eos_id = -1;
  params->bos_id = -1;
}

gboolean
lsc_generate (LscSession *session, const gint32 *prompt, int n_prompt,
              const LscGenerateParams *params, GArray *out_tokens, GArray *out_logprobs,
              LscTokenFunc on_token, gpointer token_data, LscCancelFunc cancel,
              gpointer cancel_data, GError **error)
{
  return lsc_generate_kv (session, NULL, prompt, n_prompt, 0, params, out_tokens, out_logprobs,
                          NULL, NULL, on_token, token_data, cancel, cancel_data, error);
}

/* The policy's logits against the full cache's: one entry of kl and agree. */
static void
compare_step (const float *policy, const float *full, int vocab, GArray *kl, GArray *agree)
{
  double d = lsc_kv_kl_divergence (full, policy, vocab);
  gboolean same = argmax (full, vocab) == argmax (policy, vocab);
  g_array_append_val (kl, d);
  g_array_append_val (agree, same);
}

LscSession *
lsc_generate_kv_full_new (LscModel *model, const LscSession *session, int n_ctx, GError **error)
{
  LscSessionParams fp = *lsc_session_get_params (session);
  lsc_kv_policy_init (&fp.kv_policy, LSC_KV_FULL);
  fp.backend = lsc_session_get_backend (session);
  fp.n_ctx = n_ctx;
  return lsc_session_new (model, &fp, error);
}

gboolean
lsc_generate_kv (LscSession *session, LscSession *full, const gint32 *prompt, int n_prompt,
                 int chunk, const LscGenerateParams *params, GArray *out_tokens,
                 GArray *out_logprobs, GArray *kl, GArray *agree, LscTokenFunc on_token,
                 gpointer token_data, LscCancelFunc cancel, gpointer cancel_data, GError **error)
{
  int vocab = lsc_session_get_n_vocab (session);
  g_autofree float *logits = g_new (float, vocab);
  g_autofree float *full_logits = full != NULL ? g_new (float, vocab) : NULL;
  g_autoptr(LscSampler) sampler = lsc_sampler_new (&params->sampler, vocab);

  if (chunk <= 0)
    chunk = n_prompt;
  for (int done = 0; done < n_prompt; done += chunk)
    if (!lsc_session_eval (session, prompt + done, MIN (chunk, n_prompt - done), logits, FALSE,
                           cancel, cancel_data, error))
      return FALSE;
  if (full != NULL)
    {
      if (!lsc_session_eval (full, prompt, n_prompt, full_logits, FALSE, cancel, cancel_data,
                             error))
        return FALSE;
      compare_step (logits, full_logits, vocab, kl, agree);
    }

  for (int i = 0; i < params->max_tokens; i++)
    {
      gint32 token = lsc_sampler_sample (sampler, logits);
      g_array_append_val (out_tokens, token);
      if (out_logprobs != NULL)
        {
          double lp = lsc_log_prob (logits, vocab, token);
          g_array_append_val (out_logprobs, lp);
        }
      if (on_token != NULL && !on_token (token, i, token_data))
        break;
      if (token == params->eos_id || token == params->bos_id || i + 1 == params->max_tokens)
        break;
      if (!lsc_session_eval (session, &token, 1, logits, FALSE, cancel, cancel_data, error))
        return FALSE;
      if (full != NULL)
        {
          if (!lsc_session_eval (full, &token, 1, full_logits, FALSE, cancel, cancel_data, error))
            return FALSE;
          compare_step (logits, full_logits, vocab, kl, agree);
        }
    }
  return TRUE;
}

gboolean
lsc_score (LscSession *session, const gint32 *tokens, int n, double *logprobs,
           double *perplexity, LscCancelFunc cancel, gpointer cancel_data, GError **error)
{
  int vocab = lsc_session_get_n_vocab (session);
  /* all-position logits a chunk at a time: at most 16M floats */
  int chunk = CLAMP ((1 << 24) / MAX (vocab, 1), 1, 512);
  g_autofree float *logits = g_new (float, (gsize) chunk * vocab);
  double total = 0;

  g_return_val_if_fail (n >= 2, FALSE);
  lsc_session_rewind (session, 0);
  for (int done = 0; done < n - 1; done += chunk)
    {
      int m = MIN (chunk, n - 1 - done);
      if (!lsc_session_eval (session, tokens + done, m, logits, TRUE, cancel, cancel_data, error))
        return FALSE;
      for (int i = 0; i < m; i++)
        {
          logprobs[done + i] = lsc_log_prob (logits + (gsize) i * vocab, vocab, tokens[done + i + 1]);
          total += logprobs[done + i];
        }
    }
  if (perplexity != NULL)
    *perplexity = exp (-total / (n - 1));
  return TRUE;
}
