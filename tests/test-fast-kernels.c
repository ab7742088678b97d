/* SPDX-License-Identifier: MIT
 *
 * The fast CPU kernels (kernels/cpu/lsc-cpu-fast.c, lsc-cpu-gemm.c) against
 * their references on random inputs of odd sizes, with sentinels around
 * every output.
 *
 * Tolerances:
 *   lsc_fast_to_f32      bit-exact (NaN inputs: NaN outputs)
 *   lsc_fast_xwt_rows,   |fast - ref| <= 2 n FLT_EPSILON sum_j |w_j x_j| (both
 *   lsc_fast_gemm_rows   sums' worst-case rounding), per output
 *   lsc_fast_attend_one  probabilities within 1e-6 + 1e-5 p; outputs within
 *                        1e-5 max |v| + 1e-6 absolute
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "lsc-kernels.h"
#include "lsc-test-util.h"

#define SENTINEL 12345.678f

static float
rand_float (void)
{
  return (float) g_test_rand_double_range (-1.0, 1.0);
}

/* w (d, n) in dtype, plus its widened copy wf (d, n) */
static void *
random_matrix (LscDType dtype, int d, int n, float *wf)
{
  size_t row_bytes = lsc_dtype_row_bytes (dtype, n);
  guint8 *w = g_malloc ((size_t) d * row_bytes);
  float *row = g_new (float, n);   /* (n) */
  for (int i = 0; i < d; i++)
    {
      for (int j = 0; j < n; j++)
        row[j] = rand_float () * 2.0f;
      guint8 *dst = w + (size_t) i * row_bytes;
      switch (dtype)
        {
        case LSC_DTYPE_F32:
          memcpy (dst, row, row_bytes);
          break;
        case LSC_DTYPE_BF16:
          for (int j = 0; j < n; j++)
            ((guint16 *) dst)[j] = lsc_f32_to_bf16_1 (row[j]);
          break;
        case LSC_DTYPE_F16:
          for (int j = 0; j < n; j++)
            ((guint16 *) dst)[j] = lsc_f32_to_f16_1 (row[j]);
          break;
        case LSC_DTYPE_Q8_0:
          lsc_f32_to_q8_0 ((LscBlockQ8_0 *) dst, row, n);
          break;
        default:
          g_assert_not_reached ();
        }
      lsc_to_f32 (wf + (size_t) i * n, dst, dtype, n);
    }
  g_free (row);
  return w;
}

/* n floats of SENTINEL at p: what a kernel must not write */
static void
plant (float *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = SENTINEL;
}

static void
check_planted (const float *p, size_t n, const char *what)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != SENTINEL)
      g_error ("%s: written %zu floats past its end", what, i);
}

/* Rows [row0, row0 + n_rows) of W x for T tokens by lsc_fast_xwt_rows ()
 * or, with `gemm`, by lsc_fast_gemm_pack_x () + lsc_fast_gemm_rows (),
 * against lsc_dot_row (); everything outside them is a sentinel. */
static void
check_xwt (LscDType dtype, int d, int n, int T, gboolean gemm)
{
  float *wf = g_new (float, (size_t) d * n);           /* (d, n) */
  void *w = random_matrix (dtype, d, n, wf);
  int ldx = n + 3, ldy = d + 5;
  float *x = g_new (float, (size_t) T * ldx);          /* (T, ldx) */
  float *y = g_new (float, (size_t) T * ldy);          /* (T, ldy) */
  for (size_t i = 0; i < (size_t) T * ldx; i++)
    x[i] = rand_float ();
  for (size_t i = 0; i < (size_t) T * ldy; i++)
    y[i] = SENTINEL;

  /* rows [row0, row0 + n_rows) only, into y + row0 */
  int row0 = d > 2 ? 1 : 0, n_rows = d - row0 - (d > 3 ? 1 : 0);
  if (gemm)
    {
      const int pad = 64;
      size_t xp_len = lsc_fast_gemm_packed_floats (T, n);
      size_t scratch_len = lsc_fast_gemm_scratch_floats (T);
      float *xp = g_new (float, xp_len + pad);
      float *scratch = g_new (float, scratch_len + pad);
      plant (xp + xp_len, pad);
      plant (scratch + scratch_len, pad);
      int n_panels = (T + LSC_FAST_GEMM_PANEL - 1) / LSC_FAST_GEMM_PANEL;
      /* in two calls, as two threads would */
      lsc_fast_gemm_pack_x (xp, x, ldx, T, n, 0, n_panels / 2);
      lsc_fast_gemm_pack_x (xp, x, ldx, T, n, n_panels / 2, n_panels);
      lsc_fast_gemm_rows (y + row0, ldy, xp, T, w, dtype, n, row0, n_rows, scratch);
      check_planted (xp + xp_len, pad, "gemm packed x");
      check_planted (scratch + scratch_len, pad, "gemm scratch");
      g_free (xp);
      g_free (scratch);
    }
  else
    lsc_fast_xwt_rows (y + row0, ldy, x, ldx, T, w, dtype, n, row0, n_rows);

  for (int t = 0; t < T; t++)
    for (int i = 0; i < ldy; i++)
      {
        float got = y[(size_t) t * ldy + i];
        if (i < row0 || i >= row0 + n_rows)
          {
            g_assert_cmpfloat (got, ==, SENTINEL);
            continue;
          }
        const float *xt = x + (size_t) t * ldx;
        float want = lsc_dot_row (w, dtype, n, i, xt);
        double mag = 0;
        for (int j = 0; j < n; j++)
          mag += fabs ((double) wf[(size_t) i * n + j] * xt[j]);
        double tol = 2.0 * n * FLT_EPSILON * mag;
        if (!(fabs ((double) got - want) <= tol))
          g_error ("%s %s d %d n %d T %d: row %d token %d: %.9g vs %.9g (tol %.3g)",
                   gemm ? "gemm_rows" : "xwt_rows", lsc_dtype_name (dtype), d, n, T, i, t, got,
                   want, tol);
      }
  g_free (w);
  g_free (wf);
  g_free (x);
  g_free (y);
}

static void
test_xwt_rows (void)
{
  static const int widths[] = { 1, 7, 16, 17, 100, 255, 257, 300, 1000, 2053 };
  static const int q8_widths[] = { 32, 96, 288, 1024 };
  static const int heights[] = { 1, 3, 17 };
  static const LscDType dtypes[] = { LSC_DTYPE_F32, LSC_DTYPE_BF16, LSC_DTYPE_F16 };

  for (guint di = 0; di < G_N_ELEMENTS (dtypes); di++)
    for (guint ni = 0; ni < G_N_ELEMENTS (widths); ni++)
      for (guint hi = 0; hi < G_N_ELEMENTS (heights); hi++)
        for (int T = 1; T <= LSC_FAST_MAX_T; T += 3)
          check_xwt (dtypes[di], heights[hi], widths[ni], T, FALSE);
  for (guint ni = 0; ni < G_N_ELEMENTS (q8_widths); ni++)
    for (guint hi = 0; hi < G_N_ELEMENTS (heights); hi++)
      for (int T = 1; T <= LSC_FAST_MAX_T; T++)
        check_xwt (LSC_DTYPE_Q8_0, heights[hi], q8_widths[ni], T, FALSE);
}

/* Shapes around every blocking boundary of lsc_fast_gemm_rows (): 16-wide
 * transposes, 32-token panels, 12-row tiles, 96-row slabs, 256 columns. */
static void
test_gemm_rows (void)
{
  if (!lsc_fast_gemm_available ())
    {
      g_test_skip ("this CPU has no AVX-512: the prefill uses widened tiles + sgemm");
      return;
    }
  static const int widths[] = { 1, 16, 17, 255, 256, 300, 1000 };
  static const int q8_widths[] = { 32, 288 };
  static const int heights[] = { 1, 14, 26, 99, 200 };
  static const int tokens[] = { 1, 15, 32, 33, 49, 70 };
  static const LscDType dtypes[] = { LSC_DTYPE_F32, LSC_DTYPE_BF16, LSC_DTYPE_F16 };

  for (guint hi = 0; hi < G_N_ELEMENTS (heights); hi++)
    for (guint ti = 0; ti < G_N_ELEMENTS (tokens); ti++)
      {
        for (guint di = 0; di < G_N_ELEMENTS (dtypes); di++)
          for (guint ni = 0; ni < G_N_ELEMENTS (widths); ni++)
            check_xwt (dtypes[di], heights[hi], widths[ni], tokens[ti], TRUE);
        for (guint ni = 0; ni < G_N_ELEMENTS (q8_widths); ni++)
          check_xwt (LSC_DTYPE_Q8_0, heights[hi], q8_widths[ni], tokens[ti], TRUE);
      }
}

static gboolean
same_float (float a, float b)
{
  if (isnan (a) || isnan (b))
    return isnan (a) && isnan (b);
  return memcmp (&a, &b, sizeof a) == 0;
}

/* every 16-bit pattern (normals, subnormals, infinities, NaNs), at an odd offset */
static void
test_to_f32 (void)
{
  const size_t n = 65536 + 3;
  guint16 *in = g_new (guint16, n);      /* (n) */
  float *got = g_new (float, n + 1);     /* (n) + a sentinel */
  float *want = g_new (float, n);        /* (n) */
  for (size_t i = 0; i < n; i++)
    in[i] = (guint16) (i * 40503u + 7);  /* an odd multiplier: a permutation of the patterns */

  LscDType dtypes[] = { LSC_DTYPE_BF16, LSC_DTYPE_F16 };
  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++)
    for (size_t len = 1; len <= n; len = len * 3 + 1)
      {
        got[len] = SENTINEL;
        g_assert_cmpint (lsc_fast_to_f32 (got, in, dtypes[d], len), ==, LSC_STATUS_OK);
        lsc_to_f32 (want, in, dtypes[d], len);
        for (size_t i = 0; i < len; i++)
          if (!same_float (got[i], want[i]))
            g_error ("%s 0x%04x: %a vs %a", lsc_dtype_name (dtypes[d]), in[i], got[i], want[i]);
        g_assert_cmpfloat (got[len], ==, SENTINEL);
      }

  /* q8_0 */
  const size_t nq = 32 * 37;
  float *src = g_new (float, nq);                              /* (nq) */
  LscBlockQ8_0 *q = g_new (LscBlockQ8_0, nq / LSC_Q8_0_BLOCK); /* (nq / 32) */
  for (size_t i = 0; i < nq; i++)
    src[i] = rand_float () * 3.0f;
  lsc_f32_to_q8_0 (q, src, nq);
  float *qgot = g_new (float, nq);
  float *qwant = g_new (float, nq);
  g_assert_cmpint (lsc_fast_to_f32 (qgot, q, LSC_DTYPE_Q8_0, nq), ==, LSC_STATUS_OK);
  lsc_to_f32 (qwant, q, LSC_DTYPE_Q8_0, nq);
  g_assert_cmpmem (qgot, nq * sizeof (float), qwant, nq * sizeof (float));
  g_assert_cmpint (lsc_fast_to_f32 (qgot, q, LSC_DTYPE_Q8_0, 33), ==,
                   LSC_STATUS_INVALID_ARGUMENT);
  g_assert_cmpint (lsc_fast_to_f32 (qgot, q, LSC_DTYPE_I32, 4), ==, LSC_STATUS_UNSUPPORTED);

  g_free (src);
  g_free (q);
  g_free (qgot);
  g_free (qwant);
  g_free (in);
  g_free (got);
  g_free (want);
}

/* The attention loop of forward_token () (lsc-llama.c) for one head. */
static void
attend_one_ref (float *out, float *att, const float *q, const float *keys, const float *values,
                int n_keys, int head_dim, int stride, float scale)
{
  for (int t = 0; t < n_keys; t++)
    {
      const float *k = keys + (size_t) t * stride;
      float score = 0.0f;
      for (int i = 0; i < head_dim; i++)
        score += q[i] * k[i];
      att[t] = score * scale;
    }
  lsc_softmax_lse (att, n_keys);
  memset (out, 0, head_dim * sizeof (float));
  for (int t = 0; t < n_keys; t++)
    {
      const float *v = values + (size_t) t * stride;
      for (int i = 0; i < head_dim; i++)
        out[i] += att[t] * v[i];
    }
}

static void
test_attend_one (void)
{
  static const int head_dims[] = { 2, 8, 15, 64, 80, 128 };
  static const int key_counts[] = { 1, 2, 31, 300 };

  for (guint hi = 0; hi < G_N_ELEMENTS (head_dims); hi++)
    for (guint ki = 0; ki < G_N_ELEMENTS (key_counts); ki++)
      {
        int hd = head_dims[hi], nk = key_counts[ki], stride = hd * 3 + 1;
        float scale = 1.0f / sqrtf ((float) hd);
        float *q = g_new (float, hd);                        /* (hd) */
        float *kv = g_new (float, (size_t) nk * stride * 2); /* keys then values, (nk, stride) each */
        float *att = g_new (float, nk + 1), *att_ref = g_new (float, nk);
        float *out = g_new (float, hd + 1), *out_ref = g_new (float, hd);
        for (int i = 0; i < hd; i++)
          q[i] = rand_float () * 3.0f;
        float vmax = 0;
        for (size_t i = 0; i < (size_t) nk * stride * 2; i++)
          {
            kv[i] = rand_float () * 3.0f;
            if (i >= (size_t) nk * stride)
              vmax = fmaxf (vmax, fabsf (kv[i]));
          }
        const float *keys = kv, *values = kv + (size_t) nk * stride;
        att[nk] = out[hd] = SENTINEL;

        lsc_fast_attend_one (out, att, q, keys, values, nk, hd, stride, scale);
        attend_one_ref (out_ref, att_ref, q, keys, values, nk, hd, stride, scale);

        for (int t = 0; t < nk; t++)
          /* the scores round differently (another summation order): a
           * relative error in p of |logit| x float epsilon, ~2e-6 at p ~ 1 */
          g_assert_cmpfloat (fabsf (att[t] - att_ref[t]), <=, 1e-6f + 1e-5f * att_ref[t]);
        for (int i = 0; i < hd; i++)
          g_assert_cmpfloat (fabsf (out[i] - out_ref[i]), <=, 1e-5f * vmax + 1e-6f);
        g_assert_cmpfloat (att[nk], ==, SENTINEL);
        g_assert_cmpfloat (out[hd], ==, SENTINEL);
        g_free (q);
        g_free (kv);
        g_free (att);
        g_free (att_ref);
        g_free (out);
        g_free (out_ref);
      }
}

/* Mamba-1's scan of one channel: the vectorized exp against expf over the
 * range Δ·A takes, then whole scans (state sizes around the 16 lanes, with
 * strides and steps as in a block) against the reference; nothing past the
 * outputs is written. */
static void
test_ssm_scan (void)
{
  /* exp alone: T = 1, h = 1, b = 0, c one-hot picks exp (dt a[n]) */
  static float a[4096], zero[4096], one_hot[4096];
  double worst = 0;
  one_hot[0] = 1.0f;
  for (int i = 0; i < 4096; i++)
    a[i] = -87.0f * i / 4095.0f;
  for (int i = 0; i < 4096; i++)
    {
      float hh = 1.0f, dt = 1.0f, x = 0.0f, y;
      lsc_fast_ssm_scan (&y, &hh, a + i, 1, &dt, &x, 1, zero, one_hot, 0, 1);
      double want = exp ((double) a[i]);
      worst = MAX (worst, fabs (y - want) / want);
    }
  g_test_message ("exp on [-87, 0]: max relative error %.3g", worst);
  g_assert_cmpfloat (worst, <=, 2.4e-7);   /* 2 ulp */

  static const int states[] = { 1, 15, 16, 17, 40 };
  for (guint si = 0; si < G_N_ELEMENTS (states); si++)
    {
      int N = states[si], T = 37, step = 3, stride = 2 * N + 5;
      float *A = g_new (float, N), *h1 = g_new (float, N), *h2 = g_new (float, N);
      float *dt = g_new (float, T * step), *x = g_new (float, T * step);
      float *bc = g_new (float, (size_t) T * stride);
      float *y1 = g_new (float, T * step + 1), *y2 = g_new (float, T * step + 1);
      for (int n = 0; n < N; n++)
        {
          A[n] = -(n + 1) * (1.0f + 0.5f * rand_float ());
          h1[n] = h2[n] = rand_float ();
        }
      for (int t = 0; t < T * step; t++)
        {
          dt[t] = 0.05f * (1.5f + rand_float ());
          x[t] = 2.0f * rand_float ();
          y1[t] = y2[t] = 0.0f;
        }
      for (size_t i = 0; i < (size_t) T * stride; i++)
        bc[i] = rand_float ();
      plant (y1 + T * step, 1);
      lsc_ssm_scan (y2, h2, A, N, dt, x, step, bc, bc + N, stride, T);
      lsc_fast_ssm_scan (y1, h1, A, N, dt, x, step, bc, bc + N, stride, T);
      for (int t = 0; t < T; t++)
        g_assert_cmpfloat (fabsf (y1[t * step] - y2[t * step]), <=,
                           1e-5f * (1.0f + fabsf (y2[t * step])));
      for (int n = 0; n < N; n++)
        g_assert_cmpfloat (fabsf (h1[n] - h2[n]), <=, 1e-5f * (1.0f + fabsf (h2[n])));
      check_planted (y1 + T * step, 1, "lsc_fast_ssm_scan");
      g_free (A);
      g_free (h1);
      g_free (h2);
      g_free (dt);
      g_free (x);
      g_free (bc);
      g_free (y1);
      g_free (y2);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/fast/xwt-rows", test_xwt_rows);
  g_test_add_func ("/kernels/fast/gemm-rows", test_gemm_rows);
  g_test_add_func ("/kernels/fast/to-f32", test_to_f32);
  g_test_add_func ("/kernels/fast/attend-one", test_attend_one);
  g_test_add_func ("/kernels/fast/ssm-scan", test_ssm_scan);
  return g_test_run ();
}
