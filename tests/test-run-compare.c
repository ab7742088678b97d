/* SPDX-License-Identifier: MIT
 *
 * The A/B comparison of two runs (lsc-run-compare.h), headless: two
 * demo:induction runs with prompts of equal token length. No GTK.
 */
#include "config.h"

#include <gio/gio.h>
#include <math.h>

#include "lsc-demo.h"
#include "lsc-run-compare.h"
#include "lsc-run.h"
#include "lsc-test-util.h"

static LscRun *
demo_run (const char *prompt, int max_tokens, gboolean capture)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscLoadedModel) model = lsc_loaded_model_load (LSC_DEMO_INDUCTION, NULL, &error);
  g_assert_no_error (error);
  LscRunParams p;
  lsc_run_params_init (&p);
  p.prompt = prompt;
  p.max_tokens = max_tokens;
  p.capture = capture;
  /* the CPU's exact numbers: several cells differ by 1 - O(1e-7) between
   * the two runs, and where the largest is depends on the last bits */
  p.backend = LSC_BACKEND_CPU;
  LscRun *run = lsc_run_new (model, &p);
  g_assert_true (lsc_test_execute_run (run, FALSE, &error));
  g_assert_no_error (error);
  return run;
}

#define PROMPT_A "abcdefgh abcdefgh"
#define PROMPT_B "abcdefgh hgfedcba"   /* same length: BOS + 17 characters */

static void
test_identical (void)
{
  g_autoptr(LscRun) a = demo_run (PROMPT_A, 4, TRUE);
  g_autoptr(LscRun) b = demo_run (PROMPT_A, 4, TRUE);
  g_autoptr(GError) error = NULL;
  for (int layer = 0; layer < 2; layer++)
    for (int head = 0; head < 4; head++)
      {
        LscRunCompare c;
        g_assert_true (lsc_run_compare (a, b, layer, head, &c, &error));
        g_assert_no_error (error);
        g_assert_cmpint (c.row0, ==, 0);
        g_assert_cmpint (c.n, >=, 18);
        for (int k = 0; k < c.n * c.n; k++)
          g_assert_cmpfloat (c.delta[k], ==, 0.0f);
        g_assert_cmpfloat (c.max_abs, ==, 0.0);
        g_assert_cmpfloat (c.mean_abs, ==, 0.0);
        g_assert_cmpint (c.max_row, ==, 0);
        g_assert_cmpint (c.max_key, ==, 0);
        g_assert_cmpint (c.n_logprobs_a, ==, 4);
        g_assert_cmpint (c.n_logprobs_b, ==, 4);
        g_assert_cmpfloat (c.delta_logprob, ==, 0.0);
        lsc_run_compare_clear (&c);
      }
}

static void
test_two_prompts (void)
{
  g_autoptr(LscRun) a = demo_run (PROMPT_A, 4, TRUE);
  g_autoptr(LscRun) b = demo_run (PROMPT_B, 4, TRUE);
  int na, nb, pa, pb;
  lsc_run_get_tokens (a, &na, &pa);
  lsc_run_get_tokens (b, &nb, &pb);
  g_assert_cmpint (pa, ==, 18);
  g_assert_cmpint (pb, ==, 18);
  const LscAttentionStore *sa = lsc_run_get_attention (a);
  const LscAttentionStore *sb = lsc_run_get_attention (b);
  int n = MIN (lsc_attention_get_n_rows (sa), lsc_attention_get_n_rows (sb));

  g_autoptr(GError) error = NULL;
  LscRunCompare c;
  g_assert_true (lsc_run_compare (a, b, LSC_DEMO_INDUCTION_COPY_LAYER, LSC_DEMO_INDUCTION_COPY_HEAD, &c, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.layer, ==, 1);
  g_assert_cmpint (c.head, ==, 2);
  g_assert_cmpint (c.row0, ==, 0);
  g_assert_cmpint (c.n, ==, n);

  g_autofree float *ta = g_new (float, n * n);
  g_autofree float *tb = g_new (float, n * n);
  g_assert_true (lsc_attention_tile (sa, 1, 2, 0, n, 0, n, 0.0f, ta, &error));
  g_assert_true (lsc_attention_tile (sb, 1, 2, 0, n, 0, n, 0.0f, tb, &error));
  double max = 0, sum = 0;
  int mr = 0, mk = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      {
        float d = tb[i * n + j] - ta[i * n + j];
        g_assert_cmpfloat (c.delta[i * n + j], ==, d);   /* exact, element-wise */
        sum += fabs (d);
        if (fabs (d) > max)
          {
            max = fabs (d);
            mr = i;
            mk = j;
          }
      }
  g_assert_cmpfloat (c.max_abs, ==, max);
  g_assert_cmpfloat (c.max_abs, >, 0.5);
  g_assert_cmpint (c.max_row, ==, mr);
  g_assert_cmpint (c.max_key, ==, mk);
  g_test_message ("max |dp| %.9g at (%d, %d), mean %.9g, dlogprob %.9g", c.max_abs, c.max_row,
                  c.max_key, c.mean_abs, c.delta_logprob);
  g_assert_cmpint (c.max_row, ==, 18);   /* the first generated position */
  g_assert_cmpint (c.max_key, ==, 10);
  g_assert_cmpfloat_with_epsilon (c.max_abs, 1.0, 1e-5);   /* one run copies there, the other not */
  g_assert_cmpfloat (c.mean_abs, ==, sum / ((double) n * n));
  g_assert_cmpfloat (c.mean_abs, >, 0.0);
  /* the log-probability difference: means of the generated tokens' */
  int nla, nlb;
  const double *la = lsc_run_get_logprobs (a, &nla);
  const double *lb = lsc_run_get_logprobs (b, &nlb);
  g_assert_cmpint (nla, ==, 4);
  g_assert_cmpint (nlb, ==, 4);
  double ma = (la[0] + la[1] + la[2] + la[3]) / 4, mb = (lb[0] + lb[1] + lb[2] + lb[3]) / 4;
  g_assert_cmpfloat_with_epsilon (c.mean_logprob_a, ma, 1e-12);
  g_assert_cmpfloat_with_epsilon (c.mean_logprob_b, mb, 1e-12);
  g_assert_cmpfloat_with_epsilon (c.delta_logprob, mb - ma, 1e-12);
  lsc_run_compare_clear (&c);
  g_assert_null (c.delta);
  g_assert_cmpint (c.n, ==, 0);

  /* a head's value at the max: B - A exactly */
  g_assert_cmpfloat (fabs (tb[mr * n + mk] - ta[mr * n + mk]), ==, max);
}

static void
test_errors (void)
{
  g_autoptr(LscRun) a = demo_run (PROMPT_A, 2, TRUE);
  g_autoptr(LscRun) b = demo_run (PROMPT_A, 2, FALSE);
  g_autoptr(GError) error = NULL;
  LscRunCompare c;
  g_assert_false (lsc_run_compare (a, b, 0, 0, &c, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_null (c.delta);
  g_clear_error (&error);
  g_assert_false (lsc_run_compare (a, a, 7, 0, &c, &error));   /* no layer 7 */
  g_assert_nonnull (error);
  g_assert_null (c.delta);
  g_assert_true (isnan (lsc_run_compare_mean_logprob (NULL, 0)));
  double lp[] = { -1.0, -2.0 };
  g_assert_cmpfloat (lsc_run_compare_mean_logprob (lp, 2), ==, -1.5);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ui/RunCompare/identical", test_identical);
  g_test_add_func ("/ui/RunCompare/two-prompts", test_two_prompts);
  g_test_add_func ("/ui/RunCompare/errors", test_errors);
  return g_test_run ();
}
