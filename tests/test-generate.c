/* SPDX-License-Identifier: MIT
 *
 * Generation end to end: the greedy stories of the llama2.c reference
 * program reproduced word for word from the .bin and the .gguf checkpoints,
 * the sampler's determinism and truncation, and teacher-forced scoring.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-generate.h"
#include "lsc-tokenizer.h"
#include "lsc-test-util.h"

static const char story_once[] =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
  "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
  "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. "
  "She said, \"I want to play with your ball, but I can't find it.\"\n"
  "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to "
  "do.\"\n"
  "Lily didn't want to help her mom, so she said, \"I'm sorry, mom. I didn't know what to do.\" "
  "Her mom said, \"Don't worry, Lily. We can help you.";

static const char story_zoo[] =
  "Zoo was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
  "big, red ball. She wanted to play with it, but she didn't want to play with";

static const char story_baby[] =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
  "sunshine. On";

/* Greedy generation of n_new tokens after the prompt; returns prompt + new text. */
static char *
generate_text (const char *model_rel, const char *prompt, int n_new, gboolean reference)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = lsc_test_shared_path (model_rel);
  if (path == NULL)
    return NULL;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (path, &error);
  g_assert_no_error (error);
  g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, prompt, -1, TRUE, &error);
  g_assert_no_error (error);

  LscSessionParams sp;
  lsc_session_params_init (&sp);
  sp.reference = reference;
  g_autoptr(LscSession) s = lsc_session_new (model, &sp, &error);
  g_assert_no_error (error);

  LscGenerateParams gp;
  lsc_generate_params_init (&gp);
  gp.max_tokens = n_new;
  gp.eos_id = lsc_tokenizer_get_eos (tok);
  gp.bos_id = lsc_tokenizer_get_bos (tok);
  g_autoptr(GArray) out = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_assert_true (lsc_generate (s, (gint32 *) ids->data, (int) ids->len, &gp, out, NULL, NULL, NULL,
                               NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (out->len, ==, n_new);

  /* decode the prompt (without BOS) and the new tokens together */
  g_array_remove_index (ids, 0);
  g_array_append_vals (ids, out->data, out->len);
  return lsc_tokenizer_decode (tok, (gint32 *) ids->data, ids->len);
}

static void
check_story (const char *model_rel, const char *prompt, int n_new, const char *want)
{
  for (int reference = 0; reference <= 1; reference++)
    {
      g_autofree char *text = generate_text (model_rel, prompt, n_new, reference);
      if (text == NULL)
        return;
      g_assert_cmpstr (text, ==, want);
    }
}

static void
test_stories_bin (void)
{
  check_story ("models/stories260K/stories260K.bin", "Once upon a time", 252, story_once);
  check_story ("models/stories260K/stories260K.bin", "Zoo", 57, story_zoo);
}

static void
test_stories_gguf (void)
{
  check_story ("models/stories260K/stories260K.gguf", "Once upon a time", 252, story_once);
  check_story ("models/stories260K/stories260K.gguf", "Zoo", 57, story_zoo);
}

static void
test_babyllama (void)
{
  check_story ("models/babyllama-105/model5000.bin", "Once upon a time", 83, story_baby);
}

static void
test_sampler (void)
{
  enum { V = 6 };
  const float logits[V] = { 1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f };
  LscSamplerParams p = { 0 };
  p.top_p = 1.0f;

  /* greedy picks the lowest id among ties */
  g_autoptr(LscSampler) greedy = lsc_sampler_new (&p, V);
  g_assert_cmpint (lsc_sampler_sample (greedy, logits), ==, 1);

  /* the same seed draws the same sequence; another seed another one */
  p.temperature = 1.0f;
  p.seed = 42;
  g_autoptr(LscSampler) a = lsc_sampler_new (&p, V);
  g_autoptr(LscSampler) b = lsc_sampler_new (&p, V);
  p.seed = 43;
  g_autoptr(LscSampler) c = lsc_sampler_new (&p, V);
  int counts[V] = { 0 };
  gboolean differs = FALSE;
  const int draws = 20000;
  for (int i = 0; i < draws; i++)
    {
      int x = lsc_sampler_sample (a, logits);
      g_assert_cmpint (x, ==, lsc_sampler_sample (b, logits));
      differs |= x != lsc_sampler_sample (c, logits);
      counts[x]++;
    }
  g_assert_true (differs);
  /* frequencies follow softmax within 5 standard deviations */
  double z = 0;
  for (int i = 0; i < V; i++)
    z += exp (logits[i]);
  for (int i = 0; i < V; i++)
    {
      double pi = exp (logits[i]) / z;
      double sd = sqrt (draws * pi * (1 - pi));
      g_assert_cmpfloat (fabs (counts[i] - draws * pi), <=, 5 * sd + 1);
    }

  /* top-k 2 keeps ids 1 and 3 only; top-p 0.5 keeps the two tied best (mass 0.62) */
  p.top_k = 2;
  g_autoptr(LscSampler) k2 = lsc_sampler_new (&p, V);
  p.top_k = 0;
  p.top_p = 0.5f;
  g_autoptr(LscSampler) p5 = lsc_sampler_new (&p, V);
  for (int i = 0; i < 2000; i++)
    {
      int x = lsc_sampler_sample (k2, logits), y = lsc_sampler_sample (p5, logits);
      g_assert_true (x == 1 || x == 3);
      g_assert_true (y == 1 || y == 3);
    }

  /* log-probabilities */
  g_assert_cmpfloat (fabs (lsc_log_prob (logits, V, 4) - (-1.0 - log (z))), <, 1e-12);
}

static void
test_score (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (path == NULL)
    return;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (path, &error);
  g_assert_no_error (error);
  g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, story_once, -1, TRUE, &error);
  int n = (int) ids->len;
  const gint32 *t = (const gint32 *) ids->data;

  LscSessionParams sp;
  lsc_session_params_init (&sp);
  g_autoptr(LscSession) s = lsc_session_new (model, &sp, &error);
  g_autofree double *lp = g_new (double, n - 1);
  double ppl;
  g_assert_true (lsc_score (s, t, n, lp, &ppl, NULL, NULL, &error));
  g_assert_no_error (error);

  /* the same numbers from all-position logits */
  g_autofree float *logits = g_new (float, (gsize) n * 512);
  lsc_session_rewind (s, 0);
  g_assert_true (lsc_session_eval (s, t, n, logits, TRUE, NULL, NULL, &error));
  double sum = 0;
  for (int i = 0; i < n - 1; i++)
    {
      double want = lsc_log_prob (logits + (gsize) i * 512, 512, t[i + 1]);
      g_assert_cmpfloat (fabs (lp[i] - want), <, 1e-9);
      g_assert_cmpfloat (lp[i], <=, 0.0);
      sum += lp[i];
    }
  g_assert_cmpfloat (fabs (ppl - exp (-sum / (n - 1))), <, 1e-9 * ppl);
  /* the model wrote this story greedily: it finds it very likely */
  g_test_message ("perplexity of its own greedy story: %.4f over %d tokens", ppl, n - 1);
  g_assert_cmpfloat (ppl, <, 2.0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/generate/stories260K-bin", test_stories_bin);
  g_test_add_func ("/engine/generate/stories260K-gguf", test_stories_gguf);
  g_test_add_func ("/engine/generate/babyllama-105", test_babyllama);
  g_test_add_func ("/engine/generate/sampler", test_sampler);
  g_test_add_func ("/engine/generate/score", test_score);
  return g_test_run ();
}
