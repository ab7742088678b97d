/* SPDX-License-Identifier: MIT
 *
 * The dtype conversions every loader and kernel relies on, checked against
 * hand-computed bit patterns and against each other.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-kernels.h"
#include "lsc-test-util.h"

static void
test_f16_known (void)
{
  static const struct { uint16_t h; float f; } cases[] = {
    { 0x0000, 0.0f }, { 0x3c00, 1.0f }, { 0xc000, -2.0f }, { 0x3555, 0.333251953125f },
    { 0x7bff, 65504.0f }, { 0x0400, 6.103515625e-05f }, { 0x0001, 5.9604644775390625e-08f },
    { 0x03ff, 6.097555160522461e-05f },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_assert_cmpfloat (lsc_f16_to_f32_1 (cases[i].h), ==, cases[i].f);
      g_assert_cmphex (lsc_f32_to_f16_1 (cases[i].f), ==, cases[i].h);
    }
  g_assert_true (isinf (lsc_f16_to_f32_1 (0x7c00)));
  g_assert_true (isnan (lsc_f16_to_f32_1 (0x7e00)));
  g_assert_cmphex (lsc_f32_to_f16_1 (1e6f), ==, 0x7c00);
  g_assert_cmphex (lsc_f32_to_f16_1 (-INFINITY), ==, 0xfc00);
  g_assert_true ((lsc_f32_to_f16_1 (NAN) & 0x7fff) > 0x7c00);
  /* ties round to even: 1 + 2^-11 lies between 0x3c00 and 0x3c01 */
  g_assert_cmphex (lsc_f32_to_f16_1 (1.0f + ldexpf (1, -11)), ==, 0x3c00);
  g_assert_cmphex (lsc_f32_to_f16_1 (1.0f + 3 * ldexpf (1, -11)), ==, 0x3c02);
}

static void
test_f16_all_roundtrip (void)
{
  /* every finite half survives f16 -> f32 -> f16 */
  for (uint32_t h = 0; h < 0x10000; h++)
    {
      if ((h & 0x7c00) == 0x7c00)
        continue;
      float f = lsc_f16_to_f32_1 ((uint16_t) h);
      g_assert_cmphex (lsc_f32_to_f16_1 (f), ==, h);
    }
}

static void
test_bf16 (void)
{
  g_assert_cmpfloat (lsc_bf16_to_f32_1 (0x3f80), ==, 1.0f);
  g_assert_cmpfloat (lsc_bf16_to_f32_1 (0xc040), ==, -3.0f);
  g_assert_cmphex (lsc_f32_to_bf16_1 (1.0f), ==, 0x3f80);
  /* 1 + 2^-8 is a tie between 0x3f80 and 0x3f81: even wins */
  g_assert_cmphex (lsc_f32_to_bf16_1 (1.0f + ldexpf (1, -8)), ==, 0x3f80);
  g_assert_cmphex (lsc_f32_to_bf16_1 (1.0f + 3 * ldexpf (1, -8)), ==, 0x3f82);
  g_assert_true (isnan (lsc_bf16_to_f32_1 (lsc_f32_to_bf16_1 (NAN))));
}

static void
test_q8_0 (void)
{
  float x[64], y[64];
  LscBlockQ8_0 q[2];
  for (int i = 0; i < 64; i++)
    x[i] = sinf (i * 0.7f) * (i < 32 ? 1.0f : 100.0f);
  lsc_f32_to_q8_0 (q, x, 64);
  g_assert_cmpint (lsc_dtype_row_bytes (LSC_DTYPE_Q8_0, 64), ==, 68);
  g_assert_cmpint (lsc_dtype_row_bytes (LSC_DTYPE_Q8_0, 33), ==, 0);
  g_assert_cmpint (lsc_to_f32 (y, q, LSC_DTYPE_Q8_0, 64), ==, LSC_STATUS_OK);
  for (int b = 0; b < 2; b++)
    {
      /* the quantiser rounds with 1/d but the block stores d as f16: each
       * value is off by at most half a step plus 127 times d's rounding */
      float amax = 0.0f;
      for (int i = 0; i < 32; i++)
        amax = fmaxf (amax, fabsf (x[b * 32 + i]));
      float d = amax / 127.0f, d16 = lsc_f16_to_f32_1 (q[b].d);
      g_assert_cmpfloat (fabsf (d16 - d), <=, d * 0x1p-11f);
      for (int i = b * 32; i < b * 32 + 32; i++)
        g_assert_cmpfloat (fabsf (y[i] - x[i]), <=, 0.5f * d + 127.0f * fabsf (d16 - d) + 1e-6f);
    }
  g_assert_cmpint (lsc_to_f32 (y, q, LSC_DTYPE_Q8_0, 40), ==, LSC_STATUS_INVALID_ARGUMENT);
  g_assert_cmpint (lsc_to_f32 (y, q, LSC_DTYPE_I32, 4), ==, LSC_STATUS_UNSUPPORTED);
}

/* lsc_from_f32 (): the per-element rounders and the block quantiser, by dtype */
static void
test_from_f32 (void)
{
  float x[64];
  guint16 h[64];
  float f[64];
  LscBlockQ8_0 q[2], q_ref[2];
  for (int i = 0; i < 64; i++)
    x[i] = sinf (i * 1.3f) * powf (10.0f, (float) (i % 7) - 3.0f);
  g_assert_cmpint (lsc_from_f32 (f, x, LSC_DTYPE_F32, 64), ==, LSC_STATUS_OK);
  g_assert_cmpmem (f, sizeof f, x, sizeof x);
  g_assert_cmpint (lsc_from_f32 (h, x, LSC_DTYPE_F16, 64), ==, LSC_STATUS_OK);
  for (int i = 0; i < 64; i++)
    g_assert_cmpuint (h[i], ==, lsc_f32_to_f16_1 (x[i]));
  g_assert_cmpint (lsc_from_f32 (h, x, LSC_DTYPE_BF16, 64), ==, LSC_STATUS_OK);
  for (int i = 0; i < 64; i++)
    g_assert_cmpuint (h[i], ==, lsc_f32_to_bf16_1 (x[i]));
  g_assert_cmpint (lsc_from_f32 (q, x, LSC_DTYPE_Q8_0, 64), ==, LSC_STATUS_OK);
  lsc_f32_to_q8_0 (q_ref, x, 64);
  g_assert_cmpmem (q, sizeof q, q_ref, sizeof q_ref);
  g_assert_cmpint (lsc_from_f32 (q, x, LSC_DTYPE_Q8_0, 40), ==, LSC_STATUS_INVALID_ARGUMENT);
  g_assert_cmpint (lsc_from_f32 (h, x, LSC_DTYPE_I32, 4), ==, LSC_STATUS_UNSUPPORTED);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/convert/f16-known", test_f16_known);
  g_test_add_func ("/kernels/convert/f16-all-roundtrip", test_f16_all_roundtrip);
  g_test_add_func ("/kernels/convert/bf16", test_bf16);
  g_test_add_func ("/kernels/convert/q8_0", test_q8_0);
  g_test_add_func ("/kernels/convert/from-f32", test_from_f32);
  return g_test_run ();
}
