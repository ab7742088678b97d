/* SPDX-License-Identifier: MIT
 *
 * lsc-generate.h: sampling, generation and teacher-forced scoring on top of
 * an LscSession.
 *
 * Sampling follows llama2.c: logits / temperature, softmax, then top-k and
 * top-p truncation, then one draw from a xorshift64* generator seeded by the
 * caller, so that a seed reproduces a generation on every machine.
 * temperature 0 is greedy (argmax, lowest id on ties).
 *
 * Example:
 *
 *   LscGenerateParams gp;
 *   lsc_generate_params_init (&gp);     // greedy, 256 tokens, stop on EOS
 *   g_autoptr(GArray) out = g_array_new (FALSE, FALSE, sizeof (gint32));
 *   lsc_generate (session, prompt, n_prompt, &gp, out, NULL, NULL, NULL, &error);
 */
#pragma once

#include "lsc-session.h"

G_BEGIN_DECLS

typedef struct {
  float temperature;     /* 0 = greedy */
  int top_k;             /* 0 = off */
  float top_p;           /* 1 = off */
  guint64 seed;
} LscSamplerParams;

typedef struct _LscSampler LscSampler;

LscSampler *lsc_sampler_new (const LscSamplerParams *params, int n_vocab);
void lsc_sampler_free (LscSampler *sampler);
/* Draws a token from logits (n_vocab); logits are not modified. */
int lsc_sampler_sample (LscSampler *sampler, const float *logits);

/* log softmax(logits (n))[token] in double precision */
double lsc_log_prob (const float *logits, int n, int token);

typedef struct {
  int max_tokens;        /* new tokens at most */
  LscSamplerParams sampler;
  int eos_id;            /* stop after this token; -1 = never */
  int bos_id;            /* also stop on this one (llama2.c models end a story with BOS); -1 = never */
} LscGenerateParams;

/* 256 tokens, greedy, seed 0, no stop ids. */
void lsc_generate_params_init (LscGenerateParams *params);

/* Called after each new token; return FALSE to stop early. */
typedef gboolean (*LscTokenFunc) (int token, int index, gpointer user_data);

/* Appends the prompt (n_prompt) to the session, then samples up to
 * max_tokens new tokens into out_tokens (gint32); out_logprobs (double), when
 * not NULL, receives each new token's log-probability under the model
 * (temperature 1, no truncation). A stop token is kept in the output. */
gboolean lsc_generate (LscSession *session, const gint32 *prompt, int n_prompt,
                       const LscGenerateParams *params, GArray *out_tokens, GArray *out_logprobs,
                       LscTokenFunc on_token, gpointer token_data,
                       LscCancelFunc cancel, gpointer cancel_data, GError **error);

/* lsc_generate () with the prompt fed in evaluations of `chunk` tokens (0:
 * at once), for a session with a KV policy (lsc-kv.h), as StreamingLLM's and
 * H2O's references feed a stream. With `full`, an empty session of the same
 * model without a policy, the same tokens run there too (the prompt at
 * once, then the policy's tokens teacher-forced), and for the prompt and
 * every new token but the last, kl (double) receives KL(full || policy) in
 * nats of the next-token distributions and agree (gboolean) whether their
 * argmaxes (lowest id on ties) agree. */
gboolean lsc_generate_kv (LscSession *session, LscSession *full, const gint32 *prompt,
                          int n_prompt, int chunk, const LscGenerateParams *params,
                          GArray *out_tokens, GArray *out_logprobs, GArray *kl, GArray *agree,
                          LscTokenFunc on_token, gpointer token_data, LscCancelFunc cancel,
                          gpointer cancel_data, GError **error);
/* The `full` session for lsc_generate_kv (): `session`'s settings without
 * its KV policy, for n_ctx positions, on the backend `session` runs on (the
 * CPU, which runs the policies) so that the two differ by the policy alone. */
LscSession *lsc_generate_kv_full_new (LscModel *model, const LscSession *session, int n_ctx,
                                      GError **error);
/* Teacher-forced scoring of tokens (n >= 2) from an empty session:
 * logprobs (n - 1) receives log p(tokens[i + 1] | tokens[0..i]). Returns the
 * perplexity exp(-mean logprob) in *perplexity. */
gboolean lsc_score (LscSession *session, const gint32 *tokens, int n, double *logprobs,
                    double *perplexity, LscCancelFunc cancel, gpointer cancel_data,
                    GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscSampler, lsc_sampler_free)

G_END_DECLS
