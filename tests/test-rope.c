/* SPDX-License-Identifier: MIT
 *
 * RoPE frequencies of every scaling type against values computed
 * independently in float64 (Python's math module, the expressions of
 * transformers' modeling_rope_utils.py written out by hand; the numbers are
 * in the comments), and the rotation kernel in both layouts.
 */
#include "config.h"

#include <math.h>

#include "lsc-rope.h"
#include "lsc-kernels.h"
#include "lsc-test-util.h"

static LscModelConfig
config (int head_dim, double theta, LscRopeScalingType type, double factor)
{
  LscModelConfig c = { 0 };
  c.head_dim = head_dim;
  c.rope_theta = theta;
  c.rope_scaling.type = type;
  c.rope_scaling.factor = factor;
  return c;
}

static void
assert_rel (double got, double want, double tol)
{
  if (fabs (got - want) > tol * fabs (want))
    g_error ("got %.17g, want %.17g (relative error %.3g)", got, want, fabs (got - want) / fabs (want));
}

static void
test_none_and_linear (void)
{
  double inv[32];
  LscModelConfig c = config (64, 10000, LSC_ROPE_SCALING_NONE, 1);
  g_assert_cmpfloat (lsc_rope_inv_freq (&c, 100, inv), ==, 1.0);
  for (int i = 0; i < 32; i++)
    assert_rel (inv[i], pow (10000.0, -2.0 * i / 64), 1e-15);
  /* 10000^(-0.5) */
  assert_rel (inv[16], 0.01, 1e-15);

  c = config (64, 10000, LSC_ROPE_SCALING_LINEAR, 4);
  g_assert_cmpfloat (lsc_rope_inv_freq (&c, 100, inv), ==, 1.0);
  assert_rel (inv[0], 0.25, 1e-15);
  assert_rel (inv[16], 0.0025, 1e-15);
}

static void
test_dynamic (void)
{
  double inv[32];
  LscModelConfig c = config (64, 10000, LSC_ROPE_SCALING_DYNAMIC, 2);
  c.max_position = 2048;
  /* within the trained length nothing changes */
  lsc_rope_inv_freq (&c, 2048, inv);
  assert_rel (inv[5], pow (10000.0, -10.0 / 64), 1e-15);
  /* at 4096: base' = 10000 * (2 * 4096 / 2048 - 1)^(64 / 62) = 31082.236667168814 */
  lsc_rope_inv_freq (&c, 4096, inv);
  assert_rel (inv[5], 0.19863005319821675, 1e-13);
  assert_rel (inv[1], pow (31082.236667168814, -2.0 / 64), 1e-13);
}

static void
test_yarn (void)
{
  double inv[32];
  LscModelConfig c = config (64, 10000, LSC_ROPE_SCALING_YARN, 4);
  c.max_position = 16384;
  c.rope_scaling.original_max_position = 4096;
  /* correction range [10, 23]: below it extrapolated (unchanged), above interpolated (/ 4) */
  double af = lsc_rope_inv_freq (&c, 100, inv);
  assert_rel (af, 1.138629436111989, 1e-15);           /* 0.1 ln 4 + 1 */
  assert_rel (inv[0], 1.0, 1e-15);
  assert_rel (inv[8], 0.1, 1e-14);
  assert_rel (inv[12], 0.02797399468610489, 1e-13);
  assert_rel (inv[16], 0.006538461538461538, 1e-13);
  assert_rel (inv[31], 3.33380358040831e-05, 1e-13);
  /* an explicit attention factor wins */
  c.rope_scaling.attention_factor = 0.5;
  g_assert_cmpfloat (lsc_rope_inv_freq (&c, 100, inv), ==, 0.5);
}

static void
test_llama3 (void)
{
  /* Llama-3.1: head_dim 128, theta 500000, factor 8, low 1, high 4, original 8192 */
  double inv[64];
  LscModelConfig c = config (128, 500000, LSC_ROPE_SCALING_LLAMA3, 8);
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position = 8192;
  g_assert_cmpfloat (lsc_rope_inv_freq (&c, 100, inv), ==, 1.0);
  assert_rel (inv[0], 1.0, 1e-15);                        /* high frequency: unchanged */
  assert_rel (inv[20], 0.016560440080994446, 1e-13);
  assert_rel (inv[40], 3.428102195952591e-05, 1e-13);     /* smoothed band */
  assert_rel (inv[45], 1.2297638677963614e-05, 1e-13);
  assert_rel (inv[50], 4.411534674558404e-06, 1e-13);     /* low frequency: / 8 */
  assert_rel (inv[63], 3.068925988914511e-07, 1e-13);
}

/* Rotating in the interleaved layout equals rotating in the NEOX layout
 * after the row permutation the GGUF converter applies to q and k. */
static void
test_layouts (void)
{
  enum { HD = 16, HALF = 8, HEADS = 3 };
  float neox[HEADS * HD], inter[HEADS * HD], cs[HALF], sn[HALF];
  double inv[HALF];
  LscModelConfig c = config (HD, 10000, LSC_ROPE_SCALING_NONE, 1);
  lsc_rope_inv_freq (&c, 10, inv);
  lsc_rope_cos_sin (inv, HALF, 1.0, 7, cs, sn);
  for (int i = 0; i < HEADS * HD; i++)
    neox[i] = (float) g_test_rand_double_range (-1, 1);
  /* interleaved[h][2i] = neox[h][i], interleaved[h][2i+1] = neox[h][i + half] */
  for (int h = 0; h < HEADS; h++)
    for (int i = 0; i < HALF; i++)
      {
        inter[h * HD + 2 * i] = neox[h * HD + i];
        inter[h * HD + 2 * i + 1] = neox[h * HD + i + HALF];
      }
  float before = neox[0];
  lsc_rope (neox, HEADS, HD, cs, sn, LSC_ROPE_NEOX);
  lsc_rope (inter, HEADS, HD, cs, sn, LSC_ROPE_INTERLEAVED);
  g_assert_cmpfloat (neox[0], !=, before);
  for (int h = 0; h < HEADS; h++)
    for (int i = 0; i < HALF; i++)
      {
        g_assert_cmpfloat (inter[h * HD + 2 * i], ==, neox[h * HD + i]);
        g_assert_cmpfloat (inter[h * HD + 2 * i + 1], ==, neox[h * HD + i + HALF]);
      }
  /* position 0 is the identity; cos/sin at position 7 of pair 0 are cos 7, sin 7 */
  g_assert_cmpfloat (fabsf (cs[0] - (float) cos (7.0)), <, 1e-7);
  g_assert_cmpfloat (fabsf (sn[0] - (float) sin (7.0)), <, 1e-7);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/rope/none-and-linear", test_none_and_linear);
  g_test_add_func ("/engine/rope/dynamic", test_dynamic);
  g_test_add_func ("/engine/rope/yarn", test_yarn);
  g_test_add_func ("/engine/rope/llama3", test_llama3);
  g_test_add_func ("/engine/rope/layouts", test_layouts);
  return g_test_run ();
}
