/* SPDX-License-Identifier: MIT
 *
 * Retrieval heads: needle prompts (sentence-boundary insertion, depth,
 * chat-template detection), the score arithmetic of the reference on a
 * hand-made trace, ROUGE-1 recall, the reference's JSON layout, detection
 * on stories260K and on the induction demo model with ablation, and the
 * batch job section.
 */
#include "config.h"

#include <json-c/json.h>
#include <math.h>
#include <string.h>

#include "lsc-batch.h"
#include "lsc-error.h"
#include "lsc-json.h"
#include "lsc-needle.h"
#include "lsc-retrieval.h"
#include "lsc-test-util.h"

/* A small story in the vocabulary of stories260K's tok512. */
static const char story[] =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
  "One day, she saw a big red ball. She wanted to play with it! Her mom said, \"Be careful.\" "
  "Lily ran to the ball and kicked it. The ball went up high in the sky. Lily was happy. "
  "She played with her friend Ben. Ben had a small dog. The dog liked to run and jump. "
  "They played all day in the sun. When it was time to go home, Lily said goodbye to Ben. "
  "Was the day fun? Yes, it was a very fun day. Lily went to bed and had a good dream. ";

static LscTokenizer *
load_tok512 (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = lsc_test_shared_path ("models/stories260K/tok512.bin");
  if (path == NULL)
    return NULL;
  LscTokenizer *tok = lsc_tokenizer_load (path, &error);
  g_assert_no_error (error);
  return tok;
}

static void
test_sentence_end (void)
{
  g_assert_true (lsc_needle_text_ends_sentence ("end."));
  g_assert_true (lsc_needle_text_ends_sentence ("Really?"));
  g_assert_true (lsc_needle_text_ends_sentence ("go!\" "));
  g_assert_true (lsc_needle_text_ends_sentence (".\u201d\n"));
  g_assert_true (lsc_needle_text_ends_sentence ("."));
  g_assert_false (lsc_needle_text_ends_sentence ("Mr"));
  g_assert_false (lsc_needle_text_ends_sentence (","));
  g_assert_false (lsc_needle_text_ends_sentence ("\""));
  g_assert_false (lsc_needle_text_ends_sentence (""));
  g_assert_false (lsc_needle_text_ends_sentence ("3.5x"));
}

static void
test_insertion (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = load_tok512 ();
  if (tok == NULL)
    return;
  g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, story, -1, FALSE, &error);
  g_assert_no_error (error);
  const gint32 *v = (const gint32 *) ids->data;
  int n = (int) ids->len;

  g_assert_cmpint (lsc_needle_insertion_point (tok, v, n, 0), ==, 0);
  g_assert_cmpint (lsc_needle_insertion_point (tok, v, n, 100), ==, n);
  for (int d = 5; d < 100; d += 5)
    {
      int target = (int) floor (n * d / 100.0);
      int ins = lsc_needle_insertion_point (tok, v, n, d);
      g_assert_cmpint (ins, <=, target);
      /* the text before ends a sentence, and no boundary lies in (ins, target] */
      g_autofree char *head = lsc_tokenizer_decode (tok, v, ins);
      g_assert_true (g_str_has_prefix (story, head));
      if (ins > 0)
        g_assert_true (lsc_needle_text_ends_sentence (head));
      for (int k = ins + 1; k <= target; k++)
        {
          gint32 one = v[k - 1];
          g_autofree char *piece = lsc_tokenizer_decode (tok, &one, 1);
          g_assert_false (lsc_needle_text_ends_sentence (piece));
        }
    }
  /* known placements: "Her mom said, "Be careful." " -- insertion after the closing quote */
  const char *mark = strstr (story, "careful.\"");
  g_assert_nonnull (mark);
  for (int k = 1; k <= n; k++)
    {
      g_autofree char *h = lsc_tokenizer_decode (tok, v, k);
      if (strlen (h) >= (size_t) (mark - story) + strlen ("careful.\""))
        {
          /* the first prefix reaching past the quote: depth just after it inserts there */
          int ins = lsc_needle_insertion_point (tok, v, n, 100.0 * (k + 1) / n);
          g_autofree char *head = lsc_tokenizer_decode (tok, v, ins);
          g_assert_true (g_str_has_suffix (head, "careful.\"") || g_str_has_suffix (head, "careful.\" ")
                         || lsc_needle_text_ends_sentence (head));
          break;
        }
    }
  /* "Was the day fun?" ends a sentence: a depth just past it inserts after the '?' */
  const char *q = strstr (story, "fun?");
  g_autofree char *upto = g_strndup (story, q - story + 4);
  g_autoptr(GArray) pre = lsc_tokenizer_encode (tok, upto, -1, FALSE, &error);
  int k = (int) pre->len;
  int ins = lsc_needle_insertion_point (tok, v, n, 100.0 * (k + 1.5) / n);
  g_autofree char *head = lsc_tokenizer_decode (tok, v, ins);
  g_assert_cmpstr (head, ==, upto);
}

static const LscNeedle story_needle = {
  "Tim has a blue box.", "What does Tim have?", "a blue box",
};

static void
test_build (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = load_tok512 ();
  if (tok == NULL)
    return;
  LscNeedleParams np;
  lsc_needle_params_init (&np);
  np.buffer_tokens = 20;
  np.cue_tokens = 2;
  g_autoptr(LscNeedleBuilder) b = lsc_needle_builder_new (tok, story, &np, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_needle_builder_get_template (b), ==, LSC_CHAT_TEMPLATE_NONE);
  g_assert_nonnull (lsc_needle_builder_get_warning (b));
  g_assert_nonnull (strstr (lsc_needle_builder_get_warning (b), "raw prompt"));

  g_autoptr(GArray) nids = lsc_tokenizer_encode (tok, story_needle.needle, -1, FALSE, &error);
  g_autoptr(GArray) q = lsc_tokenizer_encode (tok, "Based on the content of the book, Question: "
                                              "What does Tim have?\nAnswer:", -1, FALSE, &error);
  for (int L = 100; L <= 400; L += 150)
    for (int d = 0; d <= 100; d += 25)
      {
        g_autoptr(LscNeedlePrompt) p = lsc_needle_build (b, &story_needle, L, d, &error);
        g_assert_no_error (error);
        const gint32 *t = (const gint32 *) p->tokens->data;
        int n_hay = L - 20 - (int) nids->len;
        g_assert_cmpint (p->haystack_tokens, ==, n_hay);
        g_assert_cmpint (p->tokens->len, ==, 1 + n_hay + nids->len + q->len + 2);
        g_assert_cmpint (t[0], ==, lsc_tokenizer_get_bos (tok));
        g_assert_cmpint (p->needle_start, ==, 1 + p->insertion);
        g_assert_cmpint (p->needle_end - p->needle_start, ==, nids->len);
        g_assert_cmpmem (t + p->needle_start, nids->len * 4, nids->data, nids->len * 4);
        /* the cue: the needle's first two tokens end the prompt */
        g_assert_cmpint (p->cue_start, ==, p->tokens->len - 2);
        g_assert_cmpmem (t + p->cue_start, 8, nids->data, 8);
        /* the answer span lies inside the needle */
        g_assert_cmpint (p->answer_start, >=, p->needle_start);
        g_assert_cmpint (p->answer_end, <=, p->needle_end);
        if (d == 100)
          g_assert_cmpint (p->insertion, ==, n_hay);
        else if (d == 0)
          g_assert_cmpint (p->insertion, ==, 0);
        else
          {
            g_assert_cmpint (p->insertion, <=, n_hay * d / 100);
            g_autofree char *before = lsc_tokenizer_decode (tok, t + 1, p->insertion);
            g_assert_true (lsc_needle_text_ends_sentence (before));
          }
      }
  /* too short a context */
  g_autoptr(LscNeedlePrompt) none = lsc_needle_build (b, &story_needle, 25, 50, &error);
  g_assert_null (none);
  g_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED);
}

static void
test_find_span (void)
{
  const gint32 prompt[] = { 1, 5, 6, 7, 8, 9, 5, 6, 7, 8 };
  const gint32 needle[] = { 6, 7, 8 };
  int s, e;
  g_assert_true (lsc_needle_find_span (prompt, 10, needle, 3, &s, &e));
  g_assert_cmpint (s, ==, 2);
  g_assert_cmpint (e, ==, 5);
  /* > 90 % of the distinct ids: 9 of 10 is not enough */
  const gint32 big[] = { 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 };
  const gint32 p2[] = { 0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 99 };
  g_assert_false (lsc_needle_find_span (p2, 11, big, 10, &s, &e));
  g_assert_cmpint (s, ==, -1);
  const gint32 p3[] = { 0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 };
  g_assert_true (lsc_needle_find_span (p3, 11, big, 10, &s, &e));
  g_assert_cmpint (s, ==, 1);
}

static void
test_templates (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *qpath = lsc_test_shared_path ("models/tokenizers/hf/qwen3/tokenizer.json");
  if (qpath == NULL)
    return;
  g_autoptr(LscTokenizer) qwen = lsc_tokenizer_load (qpath, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_chat_template_detect (qwen), ==, LSC_CHAT_TEMPLATE_CHATML);

  LscNeedleParams np;
  lsc_needle_params_init (&np);
  np.buffer_tokens = 10;
  g_autoptr(LscNeedleBuilder) b = lsc_needle_builder_new (qwen, story, &np, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_needle_builder_get_template (b), ==, LSC_CHAT_TEMPLATE_CHATML);
  g_assert_null (lsc_needle_builder_get_warning (b));
  g_autoptr(LscNeedlePrompt) p = lsc_needle_build (b, &story_needle, 120, 50, &error);
  g_assert_no_error (error);
  g_autofree char *text = lsc_tokenizer_decode (qwen, (const gint32 *) p->tokens->data, p->tokens->len);
  g_assert_true (g_str_has_prefix (text, "<|im_start|>user\n<book>"));
  g_assert_true (g_str_has_suffix (text, "</book>\nBased on the content of the book, Question: "
                                         "What does Tim have?\nAnswer:<|im_end|>\n"
                                         "<|im_start|>assistant\n"));
  g_assert_nonnull (strstr (text, "Tim has a blue box."));
  g_assert_cmpint (p->answer_start, >=, p->needle_start);

  g_autoptr(LscTokenizer) tok = load_tok512 ();
  if (tok == NULL)
    return;
  g_assert_cmpint (lsc_chat_template_detect (tok), ==, LSC_CHAT_TEMPLATE_NONE);
  LscChatTemplate t;
  g_assert_true (lsc_chat_template_from_name ("llama3", &t));
  g_assert_cmpint (t, ==, LSC_CHAT_TEMPLATE_LLAMA3);
  g_assert_false (lsc_chat_template_from_name ("vicuna", &t));
}

static void
test_rouge (void)
{
  const char *ref = "eat a sandwich and sit in Dolores Park on a sunny day";
  /* 12 reference tokens ("a" twice); the response has 8 of them (one "a") */
  g_assert_cmpfloat_with_epsilon (lsc_rouge1_recall (ref, "The best thing is to eat a sandwich "
                                                     "and sit in Dolores Park."), 8.0 / 12, 1e-12);
  g_assert_cmpfloat_with_epsilon (lsc_rouge1_recall (ref, ref), 1.0, 1e-12);
  g_assert_cmpfloat_with_epsilon (lsc_rouge1_recall (ref, ""), 0.0, 1e-12);
  g_assert_cmpfloat_with_epsilon (lsc_rouge1_recall ("", "anything"), 0.0, 1e-12);
  g_assert_cmpfloat_with_epsilon (lsc_rouge1_recall ("Dolores Park", "DOLORES-park!!"), 1.0, 1e-12);
  /* no stemming: "sandwiches" is not "sandwich" */
  g_assert_cmpfloat_with_epsilon (lsc_rouge1_recall ("sandwich day", "sandwiches day"), 0.5, 1e-12);
  /* repeated response words count at most as often as in the reference */
  g_assert_cmpfloat_with_epsilon (lsc_rouge1_recall ("a b c d", "a a a a"), 0.25, 1e-12);
}

/* A hand-made trace: 1 layer, 3 heads, 4 steps; answer span [3, 6). */
static void
test_score_trace (void)
{
  const gint32 prompt[] = { 1, 20, 21, 30, 31, 32, 22, 23 };
  g_autoptr(LscRetrievalTrace) t = lsc_retrieval_trace_new (1, 3, 4);
  const gint32 gen[] = { 30, 31, 31, 32 };
  /* head 0: copies 3, 4, then 4 again (counted twice, as the reference does), then 5
   * head 1: looks inside the span but at the wrong token every step
   * head 2: looks outside the span at a position holding the same token id */
  const gint32 arg[4][3] = { { 3, 4, 1 }, { 4, 3, 4 }, { 4, 5, 7 }, { 5, 3, 0 } };
  memcpy (t->tokens, gen, sizeof gen);
  for (int s = 0; s < 4; s++)
    for (int h = 0; h < 3; h++)
      {
        t->argmax[s * 3 + h] = arg[s][h];
        t->max_prob[s * 3 + h] = 0.5f;
      }
  double scores[3];
  lsc_retrieval_score_trace (t, prompt, 8, 3, 6, scores);
  g_assert_cmpfloat_with_epsilon (scores[0], 4.0 / 3, 1e-12);
  g_assert_cmpfloat_with_epsilon (scores[1], 0.0, 1e-12);
  /* step 1: head 2 at 4 (token 31) while generating 31 -> a hit; the others are outside */
  g_assert_cmpfloat_with_epsilon (scores[2], 1.0 / 3, 1e-12);
  g_assert_cmpint (t->copy_hit[0 * 3 + 0], ==, 1);
  g_assert_cmpint (t->in_span[0 * 3 + 1], ==, 1);
  g_assert_cmpint (t->copy_hit[0 * 3 + 1], ==, 0);
  g_assert_cmpint (t->in_span[0 * 3 + 2], ==, 0);
  g_assert_cmpint (t->in_span[2 * 3 + 2], ==, 0);

  /* no span found: all zeros */
  lsc_retrieval_score_trace (t, prompt, 8, -1, -1, scores);
  g_assert_cmpfloat (scores[0], ==, 0);
}

static LscRetrievalSample *
fake_sample (const double *scores, int n, gboolean passed)
{
  LscRetrievalSample *s = g_new0 (LscRetrievalSample, 1);
  s->tokens = g_array_new (FALSE, FALSE, sizeof (gint32));
  s->response = g_strdup ("");
  s->scores = g_memdup2 (scores, sizeof (double) * n);
  s->passed = passed;
  return s;
}

static void
test_summary_json (void)
{
  const double a[4] = { 0.5, 0.0, 1.0, 0.25 }, b[4] = { 0.125, 0.375, 0.0, 0.25 }, c[4] = { 9, 9, 9, 9 };
  LscRetrievalSample *samples[3] = { fake_sample (a, 4, TRUE), fake_sample (b, 4, TRUE),
                                     fake_sample (c, 4, FALSE) };
  g_autoptr(LscRetrievalSummary) s = lsc_retrieval_summarize (samples, 3, 2, 2);
  g_assert_cmpint (s->n_samples, ==, 3);
  g_assert_cmpint (s->n_passed, ==, 2);
  g_assert_cmpfloat_with_epsilon (s->mean[0], 0.3125, 1e-12);
  g_assert_cmpfloat_with_epsilon (s->mean[2], 0.5, 1e-12);
  /* ranking: 1-0 (0.5), 0-0 (0.3125), 1-1 (0.25), 0-1 (0.1875) */
  g_assert_cmpint (s->ranking[0], ==, 2);
  g_assert_cmpint (s->ranking[1], ==, 0);
  g_assert_cmpint (s->ranking[2], ==, 3);
  g_assert_cmpint (s->ranking[3], ==, 1);
  g_assert_cmpint (lsc_retrieval_summary_count_above (s, 0.2), ==, 3);

  g_autoptr(json_object) j = lsc_retrieval_reference_json (samples, 3, 2, 2);
  g_assert_cmpstr (json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN), ==,
                   "{\"0-0\":[0.5,0.125],\"0-1\":[0.0,0.375],\"1-0\":[1.0,0.0],\"1-1\":[0.25,0.25]}");

  /* random heads: never the top K, never above the threshold, reproducible */
  int n1 = 0, n2 = 0;
  g_autofree int *r1 = lsc_retrieval_random_heads (s, 1, 1, 0.2, 42, &n1);
  g_autofree int *r2 = lsc_retrieval_random_heads (s, 1, 1, 0.2, 42, &n2);
  g_assert_cmpint (n1, ==, 1);
  g_assert_cmpint (r1[0], ==, 1);   /* the only head at or below 0.2 */

  g_assert_cmpint (r2[0], ==, r1[0]);
  g_autofree int *r3 = lsc_retrieval_random_heads (s, 3, 1, 0.2, 42, &n1);
  g_assert_cmpint (n1, ==, 1);

  /* no sample passed: NaN means, no ranking worth the name */
  samples[0]->passed = samples[1]->passed = FALSE;
  g_autoptr(LscRetrievalSummary) none = lsc_retrieval_summarize (samples, 3, 2, 2);
  g_assert_cmpint (none->n_passed, ==, 0);
  g_assert_true (isnan (none->mean[0]));
  g_assert_cmpint (lsc_retrieval_summary_count_above (none, 0.0), ==, 0);
  for (int i = 0; i < 3; i++)
    lsc_retrieval_sample_free (samples[i]);
}

/* ---- stories260K ---- */

/* stories260K, its tokenizer and a needle builder on `story`; FALSE (the
 * test skips) without the shared checkpoint. */
static gboolean
load_stories (LscModel **model, LscTokenizer **tok, LscNeedleBuilder **b)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (path == NULL)
    return FALSE;
  *model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  *tok = lsc_tokenizer_load (path, &error);
  g_assert_no_error (error);
  LscNeedleParams np;
  lsc_needle_params_init (&np);
  np.buffer_tokens = 40;
  np.cue_tokens = 3;
  *b = lsc_needle_builder_new (*tok, story, &np, &error);
  g_assert_no_error (error);
  return TRUE;
}

static void
test_stories (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  g_autoptr(LscNeedleBuilder) b = NULL;
  if (!load_stories (&model, &tok, &b))
    return;
  const LscModelConfig *c = lsc_model_get_config (model);
  int L = c->n_layers, H = c->n_heads;

  static const LscNeedle needles[] = {
    { "Tim has a blue box.", "What does Tim have?", "a blue box" },
    { "The cat sat on the red hat.", "Where did the cat sit?", "on the red hat" },
  };
  const int lengths[] = { 160, 320, 440 };
  const double depths[] = { 0, 50, 100 };
  LscRetrievalParams rp;
  lsc_retrieval_params_init (&rp);
  rp.max_tokens = 12;
  rp.n_threads = 1;
  rp.eos_id = lsc_tokenizer_get_eos (tok);
  rp.bos_id = lsc_tokenizer_get_bos (tok);
  g_autoptr(GPtrArray) samples = g_ptr_array_new_with_free_func ((GDestroyNotify) lsc_retrieval_sample_free);
  int copy_events = 0;
  for (guint k = 0; k < G_N_ELEMENTS (needles); k++)
    for (guint a = 0; a < G_N_ELEMENTS (lengths); a++)
      for (guint d = 0; d < G_N_ELEMENTS (depths); d++)
        {
          g_autoptr(LscNeedlePrompt) p = lsc_needle_build (b, &needles[k], lengths[a], depths[d], &error);
          g_assert_no_error (error);
          g_assert_cmpint (p->tokens->len + rp.max_tokens, <=, 512);
          LscRetrievalSample *s = lsc_retrieval_run (model, tok, p, needles[k].answer, &rp, NULL,
                                                     NULL, &error);
          g_assert_no_error (error);
          g_assert_nonnull (s->trace);
          g_assert_cmpint (s->trace->n_steps, ==, s->tokens->len);
          for (int i = 0; i < s->trace->n_steps * L * H; i++)
            {
              g_assert_cmpint (s->trace->argmax[i], >=, 0);
              g_assert_cmpint (s->trace->argmax[i], <, p->tokens->len + i / (L * H));
              g_assert_cmpfloat (s->trace->max_prob[i], >, 0);
              g_assert_cmpfloat (s->trace->max_prob[i], <=, 1.0f + 1e-6f);
            }
          copy_events += s->copy_events;
          if (g_test_verbose ())
            g_printerr ("# needle %u len %d depth %g: %u tokens, response \"%s\" recall %.2f copy %d\n",
                        k, lengths[a], depths[d], p->tokens->len, s->response, s->recall,
                        s->copy_events);
          g_ptr_array_add (samples, s);
        }
  g_autoptr(LscRetrievalSummary) sum = lsc_retrieval_summarize ((LscRetrievalSample **) samples->pdata,
                                                                (int) samples->len, L, H);
  if (g_test_verbose ())
    {
      g_printerr ("# stories260K: %d / %d samples passed, %d copy events, %d heads > 0.1\n",
                  sum->n_passed, sum->n_samples, copy_events,
                  lsc_retrieval_summary_count_above (sum, 0.1));
      for (int l = 0; l < L; l++)
        {
          g_printerr ("#  layer %d:", l);
          for (int h = 0; h < H; h++)
            g_printerr (" %6.3f", sum->mean[l * H + h]);
          g_printerr ("\n");
        }
      for (int i = 0; i < 5; i++)
        g_printerr ("#  rank %d: %d-%d %.3f\n", i, sum->ranking[i] / H, sum->ranking[i] % H,
                    sum->mean[sum->ranking[i]]);
    }
  g_assert_cmpint (sum->n_samples, ==, 18);
  /* regression (reference path, greedy): one sample recalls "a blue box"; layer 4
   * holds the copying heads, 4-4 first with one copy of the 4-token answer */
  g_assert_cmpint (sum->n_passed, ==, 1);
  g_assert_cmpint (copy_events, ==, 7);
  g_assert_cmpint (sum->ranking[0], ==, 4 * H + 4);
  g_assert_cmpfloat_with_epsilon (sum->mean[4 * H + 4], 0.25, 1e-12);
  g_assert_cmpint (lsc_retrieval_summary_count_above (sum, 0.1), ==, 3);
}

/* The trace against one-row tiles of a second session that evaluates the
 * same tokens in the same steps (the prompt but its last token, then one
 * token at a time, as lsc_generate does): the trace reads rows in tiles of
 * several, and a generation longer than one tile checks how they are cut. */
static void
test_trace (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  g_autoptr(LscNeedleBuilder) b = NULL;
  if (!load_stories (&model, &tok, &b))
    return;
  const LscModelConfig *c = lsc_model_get_config (model);
  int L = c->n_layers, H = c->n_heads;
  static const LscNeedle needle = { "Tim has a blue box.", "What does Tim have?", "a blue box" };
  g_autoptr(LscNeedlePrompt) p = lsc_needle_build (b, &needle, 160, 50, &error);
  g_assert_no_error (error);
  LscRetrievalParams rp;
  lsc_retrieval_params_init (&rp);
  rp.max_tokens = 40;
  rp.n_threads = 2;
  rp.eos_id = lsc_tokenizer_get_eos (tok);
  rp.bos_id = lsc_tokenizer_get_bos (tok);
  g_autoptr(LscRetrievalSample) s = lsc_retrieval_run (model, tok, p, needle.answer, &rp, NULL,
                                                        NULL, &error);
  g_assert_no_error (error);
  int n = (int) p->tokens->len, steps = s->trace->n_steps;
  g_assert_cmpint (steps, >, 20);
  g_test_message ("%d steps, %d tokens of prompt", steps, n);

  LscSessionParams sp;
  lsc_session_params_init (&sp);
  sp.n_ctx = n + rp.max_tokens + 1;
  sp.n_threads = 1;
  sp.capture.enabled = TRUE;
  sp.capture.row_start = n - 1;
  g_autoptr(LscSession) session = lsc_session_new (model, &sp, &error);
  g_assert_no_error (error);
  const gint32 *ids = (const gint32 *) p->tokens->data;
  g_assert_true (lsc_session_eval (session, ids, n - 1, NULL, FALSE, NULL, NULL, &error));
  for (int t = 0; t < steps; t++)
    {
      gint32 token = t == 0 ? ids[n - 1] : g_array_index (s->tokens, gint32, t - 1);
      g_assert_true (lsc_session_eval (session, &token, 1, NULL, FALSE, NULL, NULL, &error));
    }
  const LscAttentionStore *a = lsc_session_get_attention (session);
  g_autofree float *row = g_new (float, n + steps);
  for (int t = 0; t < steps; t++)
    for (int l = 0; l < L; l++)
      for (int h = 0; h < H; h++)
        {
          int pos = n - 1 + t, best = 0;
          g_assert_true (lsc_attention_tile (a, l, h, pos, pos + 1, 0, pos + 1, 0.0f, row, &error));
          for (int k = 1; k <= pos; k++)
            if (row[k] > row[best])
              best = k;
          gsize at = ((gsize) t * L + l) * H + h;
          g_assert_cmpint (s->trace->argmax[at], ==, best);
          g_assert_cmpfloat (s->trace->max_prob[at], ==, row[best]);
        }
}

/* ---- the induction demo ---- */

/* Lower-case sentences only: no bigram of the needle occurs in them. */
static const char demo_haystack[] =
  "the sun was warm and the sea was calm. a small cat sat on the wall, and a dog ran to the "
  "gate. we had bread, milk and tea in the old room. the wind came over the hill at night. "
  "she said it was late, so they went home. rain fell on the roof and the road was wet. "
  "in the morning the birds sang in the tall trees. he read a book by the fire. ";

/* needle: upper case, digits and symbols, no bigram twice, none shared with the
 * haystack or the question; the cue "\n#7" leaves "KZ9 X4W8 M2P6%\n" to recite */
static const LscNeedle demo_needles[] = {
  { "\n#7KZ9 X4W8 M2P6%\n", "What is the code?", "KZ9 X4W8 M2P6" },
  { "\n$5RJ3 V8Y2 G6T4&\n", "What is the key?", "RJ3 V8Y2 G6T4" },
};

static gboolean
load_demo (LscModel **model, LscTokenizer **tok)
{
  g_autoptr(GError) error = NULL;
  *model = lsc_model_load ("demo:induction", &error);
  g_assert_no_error (error);
  *tok = lsc_tokenizer_load ("demo:induction", &error);
  g_assert_no_error (error);
  return TRUE;
}

/* Runs the demo grid; returns the mean recall, fills samples when not NULL. */
static double
run_demo_grid (LscModel *model, LscTokenizer *tok, const int *masked, int n_masked,
               GPtrArray *samples)
{
  g_autoptr(GError) error = NULL;
  LscNeedleParams np;
  lsc_needle_params_init (&np);
  np.buffer_tokens = 64;
  np.cue_tokens = 3;
  g_autoptr(LscNeedleBuilder) b = lsc_needle_builder_new (tok, demo_haystack, &np, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_needle_builder_get_template (b), ==, LSC_CHAT_TEMPLATE_NONE);
  LscRetrievalParams rp;
  lsc_retrieval_params_init (&rp);
  rp.max_tokens = 24;
  rp.n_threads = 1;
  rp.eos_id = lsc_tokenizer_get_eos (tok);
  rp.capture = samples != NULL;
  rp.masked_heads = masked;
  rp.n_masked = n_masked;
  const int lengths[] = { 200, 480 };
  const double depths[] = { 0, 50, 100 };
  double recall = 0;
  int n = 0;
  for (guint k = 0; k < G_N_ELEMENTS (demo_needles); k++)
    for (guint a = 0; a < G_N_ELEMENTS (lengths); a++)
      for (guint d = 0; d < G_N_ELEMENTS (depths); d++)
        {
          g_autoptr(LscNeedlePrompt) p = lsc_needle_build (b, &demo_needles[k], lengths[a],
                                                          depths[d], &error);
          g_assert_no_error (error);
          /* the reference's rule takes the first window covering > 90 % of the
           * answer's 12 distinct ids: one token early here ("7KZ9 ... M2P"),
           * so the last answer token falls outside the span */
          g_assert_cmpint (p->answer_start, ==, p->needle_start + 2);
          g_assert_cmpint (p->answer_end - p->answer_start, ==, strlen (demo_needles[k].answer));
          LscRetrievalSample *s = lsc_retrieval_run (model, tok, p, demo_needles[k].answer, &rp,
                                                     NULL, NULL, &error);
          g_assert_no_error (error);
          if (g_test_verbose ())
            g_printerr ("# needle %u len %d depth %g masked %d: \"%s\" recall %.2f copy %d\n", k,
                        lengths[a], depths[d], n_masked, s->response, s->recall, s->copy_events);
          recall += s->recall;
          n++;
          if (samples != NULL)
            g_ptr_array_add (samples, s);
          else
            lsc_retrieval_sample_free (s);
        }
  return recall / n;
}

static void
test_demo (void)
{
  g_autoptr(LscModel) model = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  if (!load_demo (&model, &tok))
    return;
  const LscModelConfig *c = lsc_model_get_config (model);
  int L = c->n_layers, H = c->n_heads;
  int copy = 1 * H + 2;   /* LSC_DEMO_INDUCTION_COPY_LAYER, _HEAD */

  g_autoptr(GPtrArray) samples = g_ptr_array_new_with_free_func ((GDestroyNotify) lsc_retrieval_sample_free);
  double base = run_demo_grid (model, tok, NULL, 0, samples);
  g_autoptr(LscRetrievalSummary) sum = lsc_retrieval_summarize ((LscRetrievalSample **) samples->pdata,
                                                                (int) samples->len, L, H);
  if (g_test_verbose ())
    {
      g_printerr ("# demo: %d / %d passed, baseline recall %.3f\n", sum->n_passed, sum->n_samples, base);
      for (int i = 0; i < L * H; i++)
        g_printerr ("#  %d-%d: %.4f\n", sum->ranking[i] / H, sum->ranking[i] % H,
                    sum->mean[sum->ranking[i]]);
    }
  g_assert_cmpint (sum->n_passed, ==, sum->n_samples);
  g_assert_cmpfloat (base, ==, 1.0);
  g_assert_cmpint (sum->ranking[0], ==, copy);
  g_assert_cmpfloat (sum->mean[copy], >, 0.5);
  for (int i = 0; i < L * H; i++)
    if (i != copy)
      g_assert_cmpfloat (sum->mean[i], <, 0.1);
  g_assert_cmpint (lsc_retrieval_summary_count_above (sum, 0.1), ==, 1);

  /* ablation: the copy head masked, then one random distractor (seeded) */
  double top = run_demo_grid (model, tok, &copy, 1, NULL);
  int n_rand = 0;
  g_autofree int *rnd = lsc_retrieval_random_heads (sum, 1, 1, 0.1, 7, &n_rand);
  g_assert_cmpint (n_rand, ==, 1);
  g_assert_cmpint (rnd[0], !=, copy);
  double other = run_demo_grid (model, tok, rnd, 1, NULL);
  if (g_test_verbose ())
    g_printerr ("# demo ablation: copy head masked recall %.3f, random head %d-%d masked %.3f\n",
                top, rnd[0] / H, rnd[0] % H, other);
  g_assert_cmpfloat (top, <, 0.2);
  g_assert_cmpfloat (other, >, 0.9);
}

/* The batch section end to end on the demo: results.json, retrieval_heads.json, tensors. */
static void
test_demo_batch (void)
{
  g_autoptr(LscModel) model = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  if (!load_demo (&model, &tok))
    return;
  g_autoptr(GError) error = NULL;
  g_autofree char *hay = lsc_test_write_file ("hay.txt", demo_haystack, strlen (demo_haystack));
  g_autofree char *job =
    g_strdup_printf ("{\"model\": \"demo:induction\", \"threads\": 1, \"retrieval\": {"
                     "\"haystack_file\": \"hay.txt\", \"needles\": [{\"needle\": \"\\n#7KZ9 X4W8 "
                     "M2P6%%\\n\", \"question\": \"What is the code?\", \"answer\": \"KZ9 X4W8 M2P6\"}],"
                     "\"context_lengths\": {\"min\": 200, \"max\": 400, \"n\": 2}, "
                     "\"depths\": [0, 100], \"buffer_tokens\": 64, \"cue_tokens\": 3, "
                     "\"max_tokens\": 24, \"ablation\": [1], \"seed\": 3}}");
  g_autofree char *job_path = lsc_test_write_file ("job.json", job, strlen (job));
  g_autofree char *out = g_build_filename (lsc_test_tmpdir (), "out", NULL);
  g_assert_cmpint (lsc_batch_run_file (job_path, out, NULL, NULL, NULL), ==, 0);

  g_autofree char *rpath = g_build_filename (out, "results.json", NULL);
  g_autoptr(json_object) res = json_object_from_file (rpath);
  g_assert_nonnull (res);
  json_object *r = json_object_object_get (res, "retrieval");
  g_assert_cmpstr (json_object_get_string (json_object_object_get (r, "status")), ==, "ok");
  g_assert_cmpstr (json_object_get_string (json_object_object_get (r, "chat_template")), ==, "none");
  g_assert_cmpint (json_object_array_length (json_object_object_get (r, "warnings")), ==, 1);
  g_assert_cmpint (json_object_get_int (json_object_object_get (r, "n_samples")), ==, 4);
  g_assert_cmpint (json_object_get_int (json_object_object_get (r, "n_passed")), ==, 4);
  g_assert_cmpint (json_object_get_int (json_object_object_get (r, "n_heads_above_threshold")), ==, 1);
  json_object *top = json_object_array_get_idx (json_object_object_get (r, "ranking"), 0);
  g_assert_cmpint (json_object_get_int (json_object_object_get (top, "layer")), ==, 1);
  g_assert_cmpint (json_object_get_int (json_object_object_get (top, "head")), ==, 2);
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (top, "score")), >, 0.5);
  json_object *scores = json_object_object_get (r, "scores");
  g_assert_cmpint (json_object_array_length (scores), ==, 2);
  g_assert_cmpint (json_object_array_length (json_object_array_get_idx (scores, 0)), ==, 4);
  json_object *s0 = json_object_array_get_idx (json_object_object_get (r, "samples"), 0);
  g_assert_cmpstr (json_object_get_string (json_object_object_get (s0, "response")), ==, "KZ9 X4W8 M2P6%");
  g_assert_true (json_object_get_boolean (json_object_object_get (s0, "passed")));
  json_object *abl = json_object_object_get (res, "ablation");
  g_assert_nonnull (abl);
  json_object *k1 = json_object_array_get_idx (json_object_object_get (abl, "k"), 0);
  g_assert_cmpstr (json_object_get_string (json_object_array_get_idx (
                     json_object_object_get (k1, "retrieval_heads"), 0)), ==, "1-2");
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (k1, "retrieval_recall")), <, 0.2);
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (k1, "random_recall")), >, 0.9);

  /* the reference's file: {"layer-head": [one score per passing sample]} */
  g_autofree char *hpath = g_build_filename (out, "retrieval_heads.json", NULL);
  g_autoptr(json_object) heads = json_object_from_file (hpath);
  g_assert_nonnull (heads);
  g_assert_cmpint (json_object_object_length (heads), ==, 8);
  json_object *copy = json_object_object_get (heads, "1-2");
  g_assert_cmpint (json_object_array_length (copy), ==, 4);
  /* 12 of the 13 answer tokens: the span found is one token early (see run_demo_grid) */
  g_assert_cmpfloat_with_epsilon (json_object_get_double (json_object_array_get_idx (copy, 0)), 12.0 / 13, 1e-9);

  g_autofree char *tpath = g_build_filename (out, "tensors.safetensors", NULL);
  g_autoptr(GBytes) tb = lsc_test_read_file (tpath);
  gsize tlen;
  const guint8 *td = g_bytes_get_data (tb, &tlen);
  guint64 hlen;
  memcpy (&hlen, td, 8);
  g_autofree char *header = g_strndup ((const char *) td + 8, hlen);
  g_assert_nonnull (strstr (header, "\"retrieval.scores\":{\"dtype\":\"F32\",\"shape\":[2,4]"));
  g_assert_nonnull (strstr (header, "\"retrieval.0.copy_hit\""));
  g_assert_no_error (error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/retrieval/sentence-end", test_sentence_end);
  g_test_add_func ("/retrieval/insertion", test_insertion);
  g_test_add_func ("/retrieval/build", test_build);
  g_test_add_func ("/retrieval/find-span", test_find_span);
  g_test_add_func ("/retrieval/templates", test_templates);
  g_test_add_func ("/retrieval/rouge", test_rouge);
  g_test_add_func ("/retrieval/score-trace", test_score_trace);
  g_test_add_func ("/retrieval/summary-json", test_summary_json);
  g_test_add_func ("/retrieval/stories260K", test_stories);
  g_test_add_func ("/retrieval/trace", test_trace);
  g_test_add_func ("/retrieval/demo-induction", test_demo);
  g_test_add_func ("/retrieval/demo-batch", test_demo_batch);
  return g_test_run ();
}
