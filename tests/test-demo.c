/* SPDX-License-Identifier: MIT
 *
 * The built-in demo model demo:induction (engine/lsc-demo.c): loading by
 * name, its tokenizer, that it copies a repeated random sequence on both
 * forward paths, that its planted heads show in the attention maps and the
 * distractors do not, and that it retrieves a needle from a haystack.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-demo.h"
#include "lsc-error.h"
#include "lsc-generate.h"
#include "lsc-test-util.h"

#define FIRST_TEXT_ID 5         /* " "; ids 5 .. 99 are the 95 printable characters */
#define N_SEQUENCES 24
#define SEED 20240917

static LscModel *
load_model (void)
{
  g_autoptr(GError) error = NULL;
  LscModel *model = lsc_model_load (LSC_DEMO_INDUCTION, &error);
  g_assert_no_error (error);
  g_assert_nonnull (model);
  return model;
}

static void
test_load (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = load_model ();
  const LscModelConfig *c = lsc_model_get_config (model);

  g_assert_cmpstr (lsc_model_get_path (model), ==, "demo:induction");
  g_assert_cmpint (c->arch, ==, LSC_ARCH_LLAMA);
  g_assert_cmpint (c->vocab_size, ==, LSC_DEMO_N_VOCAB);
  g_assert_cmpint (c->n_layers, ==, 2);
  g_assert_cmpint (c->n_heads, ==, 4);
  g_assert_cmpint (c->n_kv_heads, ==, 4);
  g_assert_cmpint (c->head_dim, ==, 128);
  g_assert_cmpint (c->rope_layout, ==, LSC_ROPE_NEOX);
  g_assert_true (c->tied_embeddings);
  g_assert_cmpint (c->bos_id, ==, LSC_DEMO_BOS_ID);
  g_assert_cmpint (c->eos_id, ==, LSC_DEMO_EOS_ID);
  g_assert_cmpuint (lsc_model_get_n_tensors (model), ==, 20);
  g_assert_nonnull (lsc_model_get_weight (model, LSC_TENSOR_ATTN_Q, 1));
  g_assert_null (lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1));

  /* the MLP is zero */
  const LscTensor *down = lsc_model_get_weight (model, LSC_TENSOR_FFN_DOWN, 0);
  const float *d = down->data;
  for (gint64 i = 0; i < lsc_tensor_n_elements (down); i++)
    g_assert_cmpfloat (d[i], ==, 0.0f);

  /* the same weights every time (fixed seed) */
  g_autoptr(LscModel) again = load_model ();
  for (guint i = 0; i < lsc_model_get_n_tensors (model); i++)
    {
      const LscTensor *a = lsc_model_get_tensor (model, i);
      const LscTensor *b = lsc_model_get_tensor (again, i);
      g_assert_cmpuint (a->n_bytes, ==, b->n_bytes);
      g_assert_true (memcmp (a->data, b->data, a->n_bytes) == 0);
    }

  /* demo names are names: a file path that merely ends in one is a file */
  g_autoptr(LscModel) missing = lsc_model_load ("/nonexistent-job-dir/demo:induction", &error);
  g_assert_null (missing);
  g_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (lsc_demo_match_path ("/some/dir/model.gguf"));
  g_assert_cmpstr (lsc_demo_match_path ("demo:x"), ==, "demo:x");
}

static void
test_info (void)
{
  g_autoptr(LscModel) model = load_model ();
  g_autoptr(GString) out = g_string_new (NULL);

  lsc_model_describe (model, out, TRUE);
  g_assert_nonnull (strstr (out->str, "model:            demo:induction\n"));
  g_assert_nonnull (strstr (out->str, "architecture:     llama\n"));
  g_assert_nonnull (strstr (out->str, "n_heads:          4\n"));
  g_assert_nonnull (strstr (out->str, "rope_layout:      neox (rotate_half)\n"));
  g_assert_nonnull (strstr (out->str, "blk.1.attn_output.weight"));
  g_assert_nonnull (strstr (out->str, "not a trained model"));
}

static void
test_tokenizer (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (LSC_DEMO_INDUCTION, &error);
  g_assert_no_error (error);

  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, LSC_DEMO_N_VOCAB);
  g_assert_cmpint (lsc_tokenizer_get_bos (tok), ==, LSC_DEMO_BOS_ID);
  g_assert_cmpint (lsc_tokenizer_get_eos (tok), ==, LSC_DEMO_EOS_ID);
  g_assert_true (lsc_tokenizer_id_is_special (tok, LSC_DEMO_BOS_ID));

  /* every printable character, tab and newline: one token each, round trip */
  g_autoptr(GString) text = g_string_new ("\t\n");
  for (char c = ' '; c <= '~'; c++)
    g_string_append_c (text, c);
  g_string_append (text, "  Hello, <s> world!\n");
  g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, text->str, -1, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ids->len, ==, text->len + 1);
  g_assert_cmpint (g_array_index (ids, gint32, 0), ==, LSC_DEMO_BOS_ID);
  for (guint i = 1; i < ids->len; i++)
    g_assert_cmpint (g_array_index (ids, gint32, i), >=, 3);
  g_assert_cmpint (g_array_index (ids, gint32, 3), ==, FIRST_TEXT_ID);   /* ' ' */
  g_assert_cmpint (g_array_index (ids, gint32, 4), ==, FIRST_TEXT_ID + 1); /* '!' */
  g_autofree char *back = lsc_tokenizer_decode (tok, (gint32 *) ids->data + 1, ids->len - 1);
  g_assert_cmpstr (back, ==, text->str);

  /* random printable text */
  GRand *rand = g_rand_new_with_seed (SEED);
  for (int k = 0; k < 50; k++)
    {
      char buf[200];   /* random printable ASCII + NUL */
      int n = g_rand_int_range (rand, 0, (int) sizeof buf);
      for (int i = 0; i < n; i++)
        buf[i] = (char) g_rand_int_range (rand, ' ', '~' + 1);
      buf[n] = '\0';
      g_autoptr(GArray) r = lsc_tokenizer_encode (tok, buf, -1, FALSE, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (r->len, ==, (guint) n);
      g_autofree char *s = lsc_tokenizer_decode (tok, (gint32 *) r->data, r->len);
      g_assert_cmpstr (s, ==, buf);
    }
  g_rand_free (rand);

  /* outside printable ASCII: <unk> */
  g_autoptr(GArray) u = lsc_tokenizer_encode (tok, "a\xc3\xa9", -1, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (u->len, ==, 2);
  g_assert_cmpint (g_array_index (u, gint32, 1), ==, LSC_DEMO_UNK_ID);
}

/* BOS + seq + seq with seq random over the 95 printable characters; returns
 * the tokens and the sequence length in *len. */
static GArray *
repeated_sequence (GRand *rand, int *len)
{
  GArray *tokens = g_array_new (FALSE, FALSE, sizeof (gint32));
  int n = g_rand_int_range (rand, 20, 51);
  gint32 bos = LSC_DEMO_BOS_ID;

  g_array_append_val (tokens, bos);
  g_array_set_size (tokens, 1 + 2 * n);
  gint32 *t = (gint32 *) tokens->data;   /* (1 + 2 n) */
  for (int i = 0; i < n; i++)
    t[1 + i] = t[1 + n + i] = g_rand_int_range (rand, FIRST_TEXT_ID, LSC_DEMO_N_VOCAB);
  *len = n;
  return tokens;
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

static void
test_copy (gconstpointer data)
{
  gboolean reference = GPOINTER_TO_INT (data);
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = load_model ();
  GRand *rand = g_rand_new_with_seed (SEED);
  int vocab = LSC_DEMO_N_VOCAB;
  int right = 0, total = 0, worst_right = 0, worst_total = 1;

  for (int k = 0; k < N_SEQUENCES; k++)
    {
      int len;
      g_autoptr(GArray) tokens = repeated_sequence (rand, &len);
      const gint32 *t = (const gint32 *) tokens->data;
      int n = (int) tokens->len;

      LscSessionParams sp;
      lsc_session_params_init (&sp);
      sp.reference = reference;
      sp.n_ctx = n;
      g_autoptr(LscSession) s = lsc_session_new (model, &sp, &error);
      g_assert_no_error (error);
      g_autofree float *logits = g_new (float, (gsize) n * vocab);   /* (n, vocab) */
      lsc_session_eval (s, t, n, logits, TRUE, NULL, NULL, &error);
      g_assert_no_error (error);

      /* second copy: position 1 + len + u predicts seq[u + 1] */
      int seq_right = 0;
      for (int u = 0; u + 1 < len; u++)
        {
          int pos = 1 + len + u;
          seq_right += argmax (logits + (gsize) pos * vocab, vocab) == t[pos + 1];
        }
      right += seq_right;
      total += len - 1;
      if (seq_right * worst_total < worst_right * (len - 1) || k == 0)
        {
          worst_right = seq_right;
          worst_total = len - 1;
        }
    }
  g_rand_free (rand);

  double accuracy = (double) right / total;
  g_test_message ("%s path: %d of %d second-copy positions predicted (%.2f %%), "
                  "worst sequence %d of %d", reference ? "reference" : "fast", right, total,
                  100.0 * accuracy, worst_right, worst_total);
  g_assert_cmpfloat (accuracy, >=, 0.95);
}

/* Row argmax of a tile of rows [q0, q1) over keys [0, q1). */
static void
row_argmax (const LscAttentionStore *a, int layer, int head, int q0, int q1, int *amax,
            float *pmax)
{
  g_autoptr(GError) error = NULL;
  g_autofree float *tile = g_new (float, (gsize) (q1 - q0) * q1);   /* (q1 - q0, q1) */

  g_assert_true (lsc_attention_tile (a, layer, head, q0, q1, 0, q1, 0.0f, tile, &error));
  g_assert_no_error (error);
  for (int i = q0; i < q1; i++)
    {
      const float *r = tile + (gsize) (i - q0) * q1;
      amax[i - q0] = argmax (r, i + 1);
      pmax[i - q0] = r[amax[i - q0]];
    }
}

static void
test_attention (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = load_model ();
  GRand *rand = g_rand_new_with_seed (SEED + 1);
  /* per (layer, head): rows at i - 1, second-copy rows at the copy target, rows */
  int prev_hits[2][4] = { { 0 } }, copy_hits[2][4] = { { 0 } };
  int prev_rows = 0, copy_rows = 0;
  double max_sum[2][4] = { { 0 } };

  for (int k = 0; k < 4; k++)
    {
      int len;
      g_autoptr(GArray) tokens = repeated_sequence (rand, &len);
      int n = (int) tokens->len;

      LscSessionParams sp;
      lsc_session_params_init (&sp);
      sp.capture.enabled = TRUE;
      sp.n_ctx = n;
      g_autoptr(LscSession) s = lsc_session_new (model, &sp, &error);
      g_assert_no_error (error);
      lsc_session_eval (s, (gint32 *) tokens->data, n, NULL, FALSE, NULL, NULL, &error);
      g_assert_no_error (error);
      const LscAttentionStore *a = lsc_session_get_attention (s);
      g_assert_nonnull (a);

      g_autofree int *amax = g_new (int, n);
      g_autofree float *pmax = g_new (float, n);
      for (int l = 0; l < 2; l++)
        for (int h = 0; h < 4; h++)
          {
            row_argmax (a, l, h, 0, n, amax, pmax);
            for (int i = 2; i < n; i++)
              {
                prev_hits[l][h] += amax[i] == i - 1;
                max_sum[l][h] += pmax[i];
              }
            /* second copy: the key after the earlier occurrence, i - len + 1 */
            for (int i = 1 + len; i < n; i++)
              copy_hits[l][h] += amax[i] == i - len + 1;

            if (l == LSC_DEMO_PREV_TOKEN_LAYER && h == LSC_DEMO_PREV_TOKEN_HEAD)
              {
                g_assert_cmpint (amax[1], ==, 0);
                for (int i = 2; i < n; i++)
                  {
                    g_assert_cmpint (amax[i], ==, i - 1);
                    g_assert_cmpfloat_with_epsilon (pmax[i], 0.65, 1e-3);
                  }
              }
          }
      prev_rows += n - 2;
      copy_rows += len;
    }
  g_rand_free (rand);

  for (int l = 0; l < 2; l++)
    for (int h = 0; h < 4; h++)
      {
        double prev_frac = (double) prev_hits[l][h] / prev_rows;
        double copy_frac = (double) copy_hits[l][h] / copy_rows;
        double mean_max = max_sum[l][h] / prev_rows;
        gboolean is_prev = l == LSC_DEMO_PREV_TOKEN_LAYER && h == LSC_DEMO_PREV_TOKEN_HEAD;
        gboolean is_copy = l == LSC_DEMO_INDUCTION_COPY_LAYER && h == LSC_DEMO_INDUCTION_COPY_HEAD;
        g_test_message ("layer %d head %d: argmax at i-1 %.3f, at the copy target %.3f, "
                        "mean max prob %.3f%s", l, h, prev_frac, copy_frac, mean_max,
                        is_prev ? " (previous-token head)" : is_copy ? " (copy head)" : "");
        if (is_prev)
          g_assert_cmpfloat (prev_frac, ==, 1.0);
        else if (is_copy)
          g_assert_cmpfloat (copy_frac, >=, 0.95);
        else
          {
            g_assert_cmpfloat (prev_frac, <, 0.25);
            g_assert_cmpfloat (copy_frac, <, 0.25);
            g_assert_cmpfloat (mean_max, <, 0.5);
          }
      }
}

static void
check_needle (LscModel *model, LscTokenizer *tok, const char *needle, int cue_len,
              int haystack_len, double depth, gboolean reference, gboolean capture)
{
  g_autoptr(GError) error = NULL;
  LscDemoNeedlePrompt p;

  g_assert_true (lsc_demo_needle_prompt (needle, cue_len, haystack_len, depth, 7, &p, &error));
  g_assert_no_error (error);
  g_assert_true (strncmp (p.text + p.needle_offset, needle, strlen (needle)) == 0);
  g_autofree char *tail = g_strdup_printf ("\n%.*s", cue_len, needle);
  g_assert_true (g_str_has_suffix (p.text, tail));

  g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, p.text, -1, TRUE, &error);
  g_assert_no_error (error);
  int n_prompt = (int) ids->len;
  int n_rest = p.needle_len - p.cue_len;

  LscSessionParams sp;
  lsc_session_params_init (&sp);
  sp.reference = reference;
  sp.n_ctx = n_prompt + n_rest + 1;
  g_autoptr(LscSession) s = lsc_session_new (model, &sp, &error);
  g_assert_no_error (error);

  LscGenerateParams gp;
  lsc_generate_params_init (&gp);
  gp.max_tokens = n_rest + 1;
  g_autoptr(GArray) out = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_assert_true (lsc_generate (s, (gint32 *) ids->data, n_prompt, &gp, out, NULL, NULL, NULL,
                               NULL, NULL, &error));
  g_assert_no_error (error);
  g_autofree char *text = lsc_tokenizer_decode (tok, (gint32 *) out->data, out->len);
  g_autofree char *expected = g_strconcat (needle + cue_len, "\n", NULL);
  g_assert_cmpstr (text, ==, expected);

  if (!capture)
    {
      lsc_demo_needle_prompt_clear (&p);
      return;
    }

  /* The retrieval score of every head, from a captured run over the prompt
   * and the generated tokens: step k emits out[k] from the row at
   * n_prompt - 1 + k; a hit is an argmax inside the needle on that token. */
  g_array_append_vals (ids, out->data, n_rest);
  int n_keys = (int) ids->len;
  lsc_session_params_init (&sp);
  sp.capture.enabled = TRUE;
  sp.n_ctx = n_keys;
  g_autoptr(LscSession) cs = lsc_session_new (model, &sp, &error);
  g_assert_no_error (error);
  g_assert_true (lsc_session_eval (cs, (gint32 *) ids->data, n_keys, NULL, FALSE, NULL, NULL,
                                   &error));
  g_assert_no_error (error);
  const LscAttentionStore *a = lsc_session_get_attention (cs);
  int needle_start = p.needle_offset + 1, needle_end = needle_start + p.needle_len;
  g_autofree float *tile = g_new (float, n_keys);   /* (1, n_keys) */
  const gint32 *all = (const gint32 *) ids->data;
  for (int l = 0; l < 2; l++)
    for (int h = 0; h < 4; h++)
      {
        int hits = 0;
        for (int k = 0; k < n_rest; k++)
          {
            int row = n_prompt - 1 + k;
            g_assert_true (lsc_attention_tile (a, l, h, row, row + 1, 0, row + 1, 0.0f, tile,
                                               &error));
            g_assert_no_error (error);
            int j = argmax (tile, row + 1);
            gint32 w = g_array_index (out, gint32, k);
            if (j >= needle_start && j < needle_end && all[j] == w)
              hits++;
            if (l == LSC_DEMO_INDUCTION_COPY_LAYER && h == LSC_DEMO_INDUCTION_COPY_HEAD)
              g_assert_cmpint (j, ==, needle_start + cue_len + k);
          }
        if (l == LSC_DEMO_INDUCTION_COPY_LAYER && h == LSC_DEMO_INDUCTION_COPY_HEAD)
          g_assert_cmpint (hits, ==, n_rest);
        else
          g_assert_cmpint (hits, <=, n_rest / 4);
      }
  lsc_demo_needle_prompt_clear (&p);
}

static void
test_needle (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = load_model ();
  g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (LSC_DEMO_INDUCTION, &error);
  g_assert_no_error (error);

  check_needle (model, tok, "K7Q2-X9M4@ZP", 3, 500, 0.5, FALSE, TRUE);
  check_needle (model, tok, "K7Q2-X9M4@ZP", 3, 500, 0.5, TRUE, FALSE);
  check_needle (model, tok, "CODE=H0RSE-B4TERY", 5, 600, 0.0, FALSE, TRUE);
  check_needle (model, tok, "#42/Q&A!", 1, 400, 0.9, FALSE, TRUE);
  check_needle (model, tok, "ZEBRA_7", 2, 200, 1.0, FALSE, TRUE);
  /* longer range, fast path only (capture runs the reference path) */
  check_needle (model, tok, "V0LT-8=Q3#KJ", 4, 2500, 0.25, FALSE, FALSE);

  /* needles the copy head cannot retrieve unambiguously are refused */
  LscDemoNeedlePrompt p;
  g_assert_false (lsc_demo_needle_prompt ("secret", 2, 100, 0.5, 1, &p, &error));
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                         "haystack", NULL);
  g_clear_error (&error);
  g_assert_false (lsc_demo_needle_prompt ("AB1AB2", 2, 100, 0.5, 1, &p, &error));
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                         "bigram 'AB'", NULL);
  g_clear_error (&error);
  g_assert_false (lsc_demo_needle_prompt ("A11B", 2, 100, 0.5, 1, &p, &error));
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                         "doubled", NULL);
  g_clear_error (&error);
  g_assert_false (lsc_demo_needle_prompt ("XYZ", 3, 100, 0.5, 1, &p, &error));
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                         "cue", NULL);
}

static void
test_unknown (void)
{
  g_autoptr(GError) error = NULL;

  g_assert_null (lsc_model_load ("demo:foo", &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND, "demo:foo",
                         "demo:induction", NULL);
  g_clear_error (&error);
  g_assert_null (lsc_tokenizer_load ("demo:foo", &error));
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND, "demo:foo",
                         "demo:induction", NULL);
  g_clear_error (&error);
  g_assert_null (lsc_demo_model_new ("demo:", &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND, "demo:induction",
                         NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/demo/load", test_load);
  g_test_add_func ("/engine/demo/info", test_info);
  g_test_add_func ("/engine/demo/tokenizer", test_tokenizer);
  g_test_add_data_func ("/engine/demo/copy/fast", GINT_TO_POINTER (FALSE), test_copy);
  g_test_add_data_func ("/engine/demo/copy/reference", GINT_TO_POINTER (TRUE), test_copy);
  g_test_add_func ("/engine/demo/attention", test_attention);
  g_test_add_func ("/engine/demo/needle", test_needle);
  g_test_add_func ("/engine/demo/unknown", test_unknown);
  return g_test_run ();
}
