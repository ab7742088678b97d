/* SPDX-License-Identifier: MIT
 *
 * The Mamba-1 / Mamba-2 sessions beyond their logits (test-forward.c holds
 * those to the shared reference): the recurrent state across calls, cancel,
 * the errors of what an SSM has not got.
 */
#include "config.h"

#include <math.h>

#include "lsc-error.h"
#include "lsc-estimate.h"
#include "lsc-session.h"
#include "lsc-test-util.h"

static LscModel *
load_shared (const char *rel)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = lsc_test_shared_path (rel);
  if (path == NULL)
    return NULL;
  LscModel *model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  return model;
}

static double
max_abs_diff (const float *a, const float *b, gsize n)
{
  double d = 0;
  for (gsize i = 0; i < n; i++)
    {
      g_assert_true (isfinite (a[i]) && isfinite (b[i]));
      d = MAX (d, fabs ((double) a[i] - b[i]));
    }
  return d;
}

/* A prompt in pieces (a prefill, then one token at a time, through the
 * convolution's carried inputs and the scan state) gives the logits of the
 * whole sequence at once; a rewind to 0 starts over. */
static void
test_incremental (void)
{
  g_autoptr(LscModel) model = load_shared ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  g_autoptr(GError) error = NULL;
  const int n = 600, vocab = lsc_model_get_config (model)->vocab_size;
  gint32 tokens[600];
  for (int i = 0; i < n; i++)
    tokens[i] = i == 0 ? 1 : g_test_rand_int_range (3, 105);

  for (int reference = 0; reference <= 1; reference++)
    {
      LscSessionParams p;
      lsc_session_params_init (&p);
      p.reference = reference;
      p.n_threads = 2;
      g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
      g_autofree float *all = g_new (float, (gsize) n * vocab);
      g_autofree float *step = g_new (float, (gsize) n * vocab);
      g_assert_true (lsc_session_eval (s, tokens, n, all, TRUE, NULL, NULL, &error));
      lsc_session_rewind (s, 0);
      g_assert_cmpint (lsc_session_get_pos (s), ==, 0);
      /* 2 tokens: fewer than the convolution's K - 1 = 3 carried inputs */
      g_assert_true (lsc_session_eval (s, tokens, 2, step, TRUE, NULL, NULL, &error));
      g_assert_true (lsc_session_eval (s, tokens + 2, 35, step + 2 * vocab, TRUE, NULL, NULL,
                                       &error));
      for (int i = 37; i < n; i++)
        g_assert_true (lsc_session_eval (s, tokens + i, 1, step + (gsize) i * vocab, FALSE, NULL,
                                         NULL, &error));
      g_assert_no_error (error);
      g_assert_cmpint (lsc_session_get_pos (s), ==, n);
      /* the fast path's GEMM and row kernel sum in other orders: rounding */
      double d = max_abs_diff (step, all, (gsize) n * vocab), diff = 0, norm = 0;
      for (gsize i = 0; i < (gsize) n * vocab; i++)
        {
          diff += ((double) step[i] - all[i]) * ((double) step[i] - all[i]);
          norm += (double) all[i] * all[i];
        }
      g_test_message ("%s: incremental vs whole: relative error %.3g, max |d logit| %.3g",
                      reference ? "reference" : "fast", sqrt (diff / norm), d);
      g_assert_cmpfloat (sqrt (diff / norm), <=, reference ? 0.0 : 1e-5);
    }
}

static gboolean
cancel_after (gpointer data)
{
  int *calls = data;
  return ++*calls > 2;
}

/* A cancelled evaluation leaves the state as it was: the next token's logits
 * are those of an uncancelled session. */
static void
test_cancel_keeps_state (void)
{
  g_autoptr(LscModel) model = load_shared ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  g_autoptr(GError) error = NULL;
  int vocab = lsc_model_get_config (model)->vocab_size;
  gint32 tokens[12] = { 1, 5, 9, 14, 3, 22, 7, 8, 40, 41, 42, 43 };
  LscSessionParams p;
  lsc_session_params_init (&p);
  g_autoptr(LscSession) a = lsc_session_new (model, &p, &error);
  g_autoptr(LscSession) b = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_autofree float *la = g_new (float, vocab);
  g_autofree float *lb = g_new (float, vocab);

  g_assert_true (lsc_session_eval (a, tokens, 4, NULL, FALSE, NULL, NULL, &error));
  g_assert_true (lsc_session_eval (b, tokens, 4, NULL, FALSE, NULL, NULL, &error));
  int calls = 0;
  g_assert_false (lsc_session_eval (b, tokens + 4, 7, NULL, FALSE, cancel_after, &calls, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED, "cancelled", NULL);
  g_clear_error (&error);
  g_assert_cmpint (lsc_session_get_pos (b), ==, 4);

  g_assert_true (lsc_session_eval (a, tokens + 4, 8, la, FALSE, NULL, NULL, &error));
  g_assert_true (lsc_session_eval (b, tokens + 4, 8, lb, FALSE, NULL, NULL, &error));
  g_assert_cmpfloat (max_abs_diff (la, lb, vocab), ==, 0.0);
}

/* What an SSM has not got is refused by name; memory counts the state. */
static void
test_errors_and_memory (void)
{
  g_autoptr(LscModel) model = load_shared ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  g_autoptr(GError) error = NULL;
  LscSessionParams p;

  lsc_session_params_init (&p);
  p.capture.enabled = TRUE;
  g_assert_null (lsc_session_new (model, &p, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "tiny-mamba",
                         "mamba has no attention to capture", NULL);
  g_clear_error (&error);

  lsc_session_params_init (&p);
  p.backend = LSC_BACKEND_CUDA;
  g_assert_null (lsc_session_new (model, &p, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "the CUDA backend does not run mamba yet", NULL);
  g_clear_error (&error);

  lsc_session_params_init (&p);
  p.backend = LSC_BACKEND_AUTO;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s), ==, LSC_BACKEND_CPU);
  g_assert_cmpstr (lsc_session_get_backend_note (s), ==, "the CUDA backend does not run mamba yet");

  /* 3 layers x ((K - 1) * E + E * N) floats: (3 * 128 + 128 * 16) * 3 * 4 bytes */
  LscSessionMemory mem;
  lsc_session_get_memory (s, &mem);
  g_assert_cmpuint (mem.kv_bytes, ==, (3 * 128 + 128 * 16) * 3 * 4);
  g_assert_cmpuint (mem.capture_bytes, ==, 0);

  gint32 bad[2] = { 1, 112 };
  g_assert_false (lsc_session_eval (s, bad, 2, NULL, FALSE, NULL, NULL, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_TOKEN, "token 112", NULL);
}

/* The estimate predicts the memory a session reports after the run, on both
 * paths, and refuses what the session refuses. */
static void
test_estimate (void)
{
  g_autoptr(LscModel) model = load_shared ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  g_autoptr(GError) error = NULL;
  gint32 tokens[40];
  for (int i = 0; i < 40; i++)
    tokens[i] = 1 + i;

  for (int reference = 0; reference <= 1; reference++)
    {
      LscEstimateParams ep;
      lsc_estimate_params_init (&ep);
      ep.n_prompt = 36;
      ep.max_tokens = 5;
      ep.session.reference = reference;
      ep.session.n_threads = 2;
      ep.prefill_gflops = 1;
      ep.decode_gbps = 1;
      LscEstimate e;
      g_assert_true (lsc_estimate_run (model, &ep, &e, &error));
      g_assert_no_error (error);

      g_autoptr(LscSession) s = lsc_session_new (model, &ep.session, &error);
      g_assert_no_error (error);
      g_assert_true (lsc_session_eval (s, tokens, 35, NULL, FALSE, NULL, NULL, &error));
      for (int i = 35; i < 40; i++)
        g_assert_true (lsc_session_eval (s, tokens + i, 1, NULL, FALSE, NULL, NULL, &error));
      LscSessionMemory mem;
      lsc_session_get_memory (s, &mem);
      g_assert_cmpuint (e.kv_bytes, ==, mem.kv_bytes);
      g_assert_cmpuint (e.activation_bytes, ==, mem.scratch_bytes);
      g_assert_cmpuint (e.capture_bytes, ==, 0);
      /* 2 flops per matrix parameter and token: in (256 x 64), x (36 x 128), dt (128 x 4),
       * out (64 x 128) per layer, 3 layers, and one row of logits (112 x 64) */
      g_assert_cmpfloat (e.prefill_flops, ==, 2.0 * (16384 + 4608 + 512 + 8192) * 3 * 36
                                                + 2.0 * 112 * 64);
    }

  LscEstimateParams ep;
  lsc_estimate_params_init (&ep);
  ep.session.capture.enabled = TRUE;
  LscEstimate e;
  g_assert_false (lsc_estimate_run (model, &ep, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "mamba has no attention to capture", NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (lsc_test_shared_path ("models/random/tiny-mamba") == NULL)
    g_test_message ("../shared/models/random/tiny-mamba is absent: its tests skip");
  g_test_add_func ("/engine/ssm/incremental", test_incremental);
  g_test_add_func ("/engine/ssm/cancel-keeps-state", test_cancel_keeps_state);
  g_test_add_func ("/engine/ssm/errors-and-memory", test_errors_and_memory);
  g_test_add_func ("/engine/ssm/estimate", test_estimate);
  return g_test_run ();
}
