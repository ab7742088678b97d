/* SPDX-License-Identifier: MIT
 *
 * Suite `cuda`: the CUDA backend against the CPU. Skipped when Longscope was
 * built without CUDA or no device is present.
 */
#include "config.h"

#include <math.h>

#include "lsc-kernels.h"
#include "lsc-test-util.h"

static gboolean
have_device (void)
{
#if LSC_HAVE_CUDA
  int n = 0;
  LscStatus status = lsc_cuda_device_count (&n);
  if (status == LSC_STATUS_OK && n > 0)
    return TRUE;
  g_test_skip ("no CUDA device present");
  return FALSE;
#else
  g_test_skip ("built without CUDA");
  return FALSE;
#endif
}

static void
test_saxpy (void)
{
  if (!have_device ())
    return;
#if LSC_HAVE_CUDA
  const size_t sizes[] = { 1, 255, 256, 257, 100003 };
  for (gsize s = 0; s < G_N_ELEMENTS (sizes); s++)
    {
      size_t n = sizes[s];
      g_autofree float *x = g_new (float, n);
      g_autofree float *y = g_new (float, n);
      g_autofree float *out = g_new (float, n + 1);
      for (size_t i = 0; i < n; i++)
        {
          x[i] = (float) g_test_rand_double_range (-1, 1);
          y[i] = (float) g_test_rand_double_range (-1, 1);
        }
      out[n] = 12345.0f;   /* sentinel */
      g_assert_cmpint (lsc_cuda_saxpy (out, 0.5f, x, y, n), ==, LSC_STATUS_OK);
      for (size_t i = 0; i < n; i++)
        g_assert_cmpfloat_with_epsilon (out[i], 0.5f * x[i] + y[i], 1e-6);
      g_assert_cmpfloat (out[n], ==, 12345.0f);
    }
#endif
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cuda/smoke/saxpy", test_saxpy);
  return g_test_run ();
}
