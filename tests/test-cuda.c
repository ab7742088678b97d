/* SPDX-License-Identifier: MIT
 *
 * Suite `cuda`: the CUDA backend against the CPU.
 *
 *   - every kernel against its CPU reference on random inputs of several
 *     shapes, odd sizes included, each output buffer followed by sentinel
 *     floats that must survive, and every output finite;
 *   - whole models: CUDA sessions against CPU sessions on the shared random
 *     checkpoints, stories260K and the transformers fixtures; f32 weights
 *     within 1e-4 (relative to the largest logit), the same checkpoints cast
 *     to bf16 within 1e-2; with a scale hook (a plugin's temperature) too;
 *     capture (queries, normalisers, row scales, exact tiles);
 *   - backend selection, which also runs without a device.
 *
 * Tests that need a device skip without one (or in a build without CUDA).
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lsc-batch.h"
#include "lsc-cuda.h"
#include "lsc-error.h"
#include "lsc-estimate.h"
#include "lsc-json.h"
#include "lsc-session.h"
#include "lsc-test-util.h"

#define GUARD 64                      /* sentinel floats after every output */
#define SENTINEL 0x7fc0deadu          /* a quiet NaN no kernel writes */

#if LSC_HAVE_CUDA

static gboolean
have_device (void)
{
  int n = 0;
  if (lsc_cuda_device_count (&n) == LSC_STATUS_OK && n > 0)
    return TRUE;
  g_test_skip ("no CUDA device present");
  return FALSE;
}

static LscCudaContext *
context (void)
{
  static LscCudaContext *ctx;
  if (ctx == NULL)
    g_assert_cmpint (lsc_cuda_context_new (&ctx, 0, NULL), ==, LSC_STATUS_OK);
  return ctx;
}

static float
randf (float a)
{
  return (float) g_test_rand_double_range (-a, a);
}

static float *
random_floats (size_t n, float a)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = randf (a);
  return x;
}

/* A device copy of host (n floats), followed by GUARD sentinels. */
static float *
device_floats (const float *host, size_t n)
{
  float *d;
  g_assert_cmpint (lsc_cuda_alloc (context (), (void **) &d, (n + GUARD) * sizeof (float)), ==,
                   LSC_STATUS_OK);
  g_autofree guint32 *buf = g_new (guint32, n + GUARD);
  if (host != NULL)
    memcpy (buf, host, n * sizeof (float));
  else
    memset (buf, 0, n * sizeof (float));
  for (int i = 0; i < GUARD; i++)
    buf[n + i] = SENTINEL;
  g_assert_cmpint (lsc_cuda_upload (context (), d, buf, (n + GUARD) * sizeof (float)), ==,
                   LSC_STATUS_OK);
  return d;
}

static void *
device_bytes (const void *host, size_t bytes)
{
  void *d;
  g_assert_cmpint (lsc_cuda_alloc (context (), &d, bytes), ==, LSC_STATUS_OK);
  g_assert_cmpint (lsc_cuda_upload (context (), d, host, bytes), ==, LSC_STATUS_OK);
  return d;
}

/* Downloads n floats of d, checks the sentinels behind them and frees d. */
static float *
take_floats (float *d, size_t n)
{
  g_assert_cmpint (lsc_cuda_sync (context ()), ==, LSC_STATUS_OK);
  guint32 *buf = g_new (guint32, n + GUARD);
  g_assert_cmpint (lsc_cuda_download (context (), buf, d, (n + GUARD) * sizeof (float)), ==,
                   LSC_STATUS_OK);
  for (int i = 0; i < GUARD; i++)
    if (buf[n + i] != SENTINEL)
      g_error ("out-of-bounds write: sentinel %d after %zu floats is 0x%08x", i, n, buf[n + i]);
  lsc_cuda_free (context (), d);
  return (float *) buf;
}

static void
assert_finite (const float *x, size_t n, const char *what)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite (x[i]))
      g_error ("%s[%zu] = %g is not finite", what, i, x[i]);
}

/* ---- kernels ---- */

static void
test_gemm (void)
{
  if (!have_device ())
    return;
  /* T, d, n, extra row stride of x and y */
  const int shapes[][4] = { { 1, 1, 1, 0 }, { 3, 17, 33, 5 }, { 8, 64, 64, 0 },
                            { 37, 129, 257, 3 }, { 130, 300, 96, 0 }, { 1, 1000, 2048, 0 } };
  const LscDType dtypes[] = { LSC_DTYPE_F32, LSC_DTYPE_F16, LSC_DTYPE_BF16 };
  /* activations of 1, tiny ones (f16's subnormals) and ones past f16's 65504 */
  const float amplitudes[] = { 1.0f, 1e-4f, 7e4f };
  for (gsize ai = 0; ai < G_N_ELEMENTS (amplitudes); ai++)
    for (gsize di = 0; di < G_N_ELEMENTS (dtypes); di++)
      for (gsize si = 0; si < G_N_ELEMENTS (shapes); si++)
        {
          LscDType dt = dtypes[di];
          int T = shapes[si][0], d = shapes[si][1], n = shapes[si][2];
          int ldx = n + shapes[si][3], ldy = d + shapes[si][3];
          g_autofree float *x = random_floats ((size_t) T * ldx, amplitudes[ai]);
          g_autofree float *wf = random_floats ((size_t) d * n, 1.0f);
          size_t wbytes = lsc_dtype_row_bytes (dt, n) * d;
          g_autofree guint16 *wh = g_new (guint16, (size_t) d * n);
          if (dt != LSC_DTYPE_F32)
            lsc_from_f32 (wh, wf, dt, (size_t) d * n);
          const void *w = dt == LSC_DTYPE_F32 ? (const void *) wf : (const void *) wh;

          float *dx = device_floats (x, (size_t) T * ldx);
          float *dy = device_floats (NULL, (size_t) T * ldy);
          void *dw = device_bytes (w, wbytes);
          void *half = NULL;
          if (dt != LSC_DTYPE_F32)
            g_assert_cmpint (lsc_cuda_alloc (context (), &half, lsc_cuda_gemm_scratch_bytes (T, n)),
                             ==, LSC_STATUS_OK);
          g_assert_cmpint (lsc_cuda_gemm_xwt (context (), dy, ldy, dx, ldx, T, dw, dt, d, n, half),
                           ==, LSC_STATUS_OK);
          g_autofree float *y = take_floats (dy, (size_t) T * ldy);
          assert_finite (y, (size_t) T * ldy, "gemm");
          g_autofree float *wrow = g_new (float, n);
          for (int i = 0; i < d; i++)
            {
              lsc_to_f32 (wrow, (const guint8 *) w + lsc_dtype_row_bytes (dt, n) * i, dt, n);
              for (int t = 0; t < T; t++)
                {
                  /* W times the float32 X, whatever W's type (X goes in two halves) */
                  double ref = 0.0, mag = 0.0;
                  for (int j = 0; j < n; j++)
                    {
                      ref += (double) wrow[j] * x[(size_t) t * ldx + j];
                      mag += fabs ((double) wrow[j] * x[(size_t) t * ldx + j]);
                    }
                  double err = fabs (y[(size_t) t * ldy + i] - ref);
                  if (err > (dt == LSC_DTYPE_F32 ? 1e-5 : 2e-5) * mag + 1e-7 * amplitudes[ai])
                    g_error ("gemm %s T=%d d=%d n=%d |x| %g: y[%d][%d] = %.9g, expected %.9g",
                             lsc_dtype_name (dt), T, d, n, amplitudes[ai], t, i,
                             y[(size_t) t * ldy + i], ref);
                }
            }
          lsc_cuda_free (context (), dx);
          lsc_cuda_free (context (), dw);
          lsc_cuda_free (context (), half);
        }
}

static void
test_embed (void)
{
  if (!have_device ())
    return;
  const int vocab = 37, dim = 301, T = 9;
  const LscDType dtypes[] = { LSC_DTYPE_F32, LSC_DTYPE_F16, LSC_DTYPE_BF16 };
  g_autofree float *tf = random_floats ((size_t) vocab * dim, 2.0f);
  g_autofree guint16 *th = g_new (guint16, (size_t) vocab * dim);
  gint32 tokens[9] = { 0, 36, 5, 5, 17, 1, 35, 0, 20 };
  for (gsize di = 0; di < G_N_ELEMENTS (dtypes); di++)
    {
      LscDType dt = dtypes[di];
      if (dt != LSC_DTYPE_F32)
        lsc_from_f32 (th, tf, dt, (size_t) vocab * dim);
      const void *table = dt == LSC_DTYPE_F32 ? (const void *) tf : (const void *) th;
      void *dtable = device_bytes (table, lsc_dtype_row_bytes (dt, dim) * vocab);
      void *dtok = device_bytes (tokens, sizeof tokens);
      float *dout = device_floats (NULL, (size_t) T * dim);
      g_assert_cmpint (lsc_cuda_embed (context (), dout, dtok, T, dtable, dt, dim), ==,
                       LSC_STATUS_OK);
      g_autofree float *out = take_floats (dout, (size_t) T * dim);
      g_autofree float *row = g_new (float, dim);
      for (int t = 0; t < T; t++)
        {
          lsc_to_f32 (row, (const guint8 *) table + lsc_dtype_row_bytes (dt, dim) * tokens[t], dt,
                      dim);
          g_assert_cmpmem (out + (size_t) t * dim, dim * sizeof (float), row, dim * sizeof (float));
        }
      lsc_cuda_free (context (), dtable);
      lsc_cuda_free (context (), dtok);
    }
}

static void
assert_close (const float *got, const float *want, size_t n, double rel, double abs_tol,
              const char *what)
{
  for (size_t i = 0; i < n; i++)
    if (!(fabs ((double) got[i] - want[i]) <= abs_tol + rel * fabs ((double) want[i])))
      g_error ("%s[%zu] = %.9g, expected %.9g", what, i, got[i], want[i]);
}

static void
test_rmsnorm (void)
{
  if (!have_device ())
    return;
  const int dims[] = { 1, 7, 64, 2049 };
  for (gsize di = 0; di < G_N_ELEMENTS (dims); di++)
    for (int with_add = 0; with_add <= 1; with_add++)
      {
        int dim = dims[di], T = 5;
        size_t n = (size_t) T * dim;
        g_autofree float *x = random_floats (n, 3.0f);
        g_autofree float *add = random_floats (n, 1.0f);
        g_autofree float *w = random_floats (dim, 2.0f);
        float *dx = device_floats (x, n), *dadd = device_floats (add, n);
        float *dw = device_floats (w, dim), *dout = device_floats (NULL, n);
        g_assert_cmpint (lsc_cuda_rmsnorm (context (), dout, dx, with_add ? dadd : NULL, dw, T, dim,
                                           1e-5f), ==, LSC_STATUS_OK);
        g_autofree float *out = take_floats (dout, n);
        g_autofree float *xs = take_floats (dx, n);
        g_autofree float *ref = g_new (float, n);
        for (int t = 0; t < T; t++)
          {
            float *xt = x + (size_t) t * dim;
            if (with_add)
              for (int i = 0; i < dim; i++)
                xt[i] += add[(size_t) t * dim + i];
            lsc_rmsnorm (ref + (size_t) t * dim, xt, w, dim, 1e-5f);
          }
        assert_close (xs, x, n, 0.0, 0.0, "rmsnorm residual");
        assert_close (out, ref, n, 1e-5, 1e-6, "rmsnorm");
        lsc_cuda_free (context (), dadd);
        lsc_cuda_free (context (), dw);
      }
}

static void
test_rope (void)
{
  if (!have_device ())
    return;
  const int head_dims[] = { 2, 8, 64, 128 };
  for (gsize hi = 0; hi < G_N_ELEMENTS (head_dims); hi++)
    for (int layout = LSC_ROPE_NEOX; layout <= LSC_ROPE_INTERLEAVED; layout++)
      {
        int hd = head_dims[hi], half = hd / 2, T = 5, n_heads = 3, ld = n_heads * hd + 7;
        size_t n = (size_t) T * ld;
        g_autofree float *x = random_floats (n, 2.0f);
        g_autofree float *cs = g_new (float, (size_t) T * half);
        g_autofree float *sn = g_new (float, (size_t) T * half);
        for (int i = 0; i < T * half; i++)
          {
            double a = g_test_rand_double_range (0, 100);
            cs[i] = (float) cos (a);
            sn[i] = (float) sin (a);
          }
        float *dx = device_floats (x, n);
        float *dc = device_floats (cs, (size_t) T * half), *ds = device_floats (sn, (size_t) T * half);
        g_assert_cmpint (lsc_cuda_rope (context (), dx, ld, T, n_heads, hd, dc, ds, layout), ==,
                         LSC_STATUS_OK);
        g_autofree float *out = take_floats (dx, n);
        for (int t = 0; t < T; t++)
          lsc_rope (x + (size_t) t * ld, n_heads, hd, cs + (size_t) t * half,
                    sn + (size_t) t * half, layout);
        assert_close (out, x, n, 1e-6, 1e-6, layout == LSC_ROPE_NEOX ? "rope neox" : "rope interleaved");
        lsc_cuda_free (context (), dc);
        lsc_cuda_free (context (), ds);
      }
}

static void
test_bias_swiglu (void)
{
  if (!have_device ())
    return;
  const int widths[] = { 1, 1000, 4099 };
  for (gsize wi = 0; wi < G_N_ELEMENTS (widths); wi++)
    {
      int n = widths[wi], T = 3, ldg = 2 * n + 1, ldo = n + 2;
      g_autofree float *gu = random_floats ((size_t) T * ldg, 6.0f);
      g_autofree float *bias = random_floats (2 * n, 1.0f);
      float *dgu = device_floats (gu, (size_t) T * ldg), *db = device_floats (bias, 2 * n);
      float *dout = device_floats (NULL, (size_t) T * ldo);
      g_assert_cmpint (lsc_cuda_add_bias (context (), dgu, ldg, db, T, 2 * n), ==, LSC_STATUS_OK);
      g_assert_cmpint (lsc_cuda_swiglu (context (), dout, ldo, dgu, ldg, T, n), ==, LSC_STATUS_OK);
      g_autofree float *out = take_floats (dout, (size_t) T * ldo);
      g_autofree float *gub = take_floats (dgu, (size_t) T * ldg);
      g_autofree float *ref = g_new0 (float, (size_t) T * ldo);
      for (int t = 0; t < T; t++)
        {
          float *row = gu + (size_t) t * ldg;
          for (int i = 0; i < 2 * n; i++)
            row[i] += bias[i];
          lsc_swiglu (ref + (size_t) t * ldo, row, row + n, n);
        }
      assert_close (gub, gu, (size_t) T * ldg, 0.0, 0.0, "bias");
      assert_close (out, ref, (size_t) T * ldo, 1e-6, 1e-7, "swiglu");
      lsc_cuda_free (context (), db);
    }
}

static void
test_softmax (void)
{
  if (!have_device ())
    return;
  const int widths[] = { 1, 2, 255, 256, 1000, 70000 };
  for (gsize wi = 0; wi < G_N_ELEMENTS (widths); wi++)
    {
      int n = widths[wi], rows = 3;
      g_autofree float *x = random_floats ((size_t) rows * n, 20.0f);
      float *dx = device_floats (x, (size_t) rows * n), *dl = device_floats (NULL, rows);
      g_assert_cmpint (lsc_cuda_softmax_lse (context (), dx, dl, rows, n), ==, LSC_STATUS_OK);
      g_autofree float *p = take_floats (dx, (size_t) rows * n);
      g_autofree float *lse = take_floats (dl, rows);
      for (int r = 0; r < rows; r++)
        {
          float ref_lse = lsc_softmax_lse (x + (size_t) r * n, n);
          g_assert_cmpfloat_with_epsilon (lse[r], ref_lse, 1e-5);
        }
      assert_close (p, x, (size_t) rows * n, 1e-5, 1e-7, "softmax");
    }
}

/* The reference attention: every row's scores in double, rounded to float,
 * softmax with the reference kernel, weighted values; lse64 the float64
 * normaliser of the same q and k. row_scale (n_heads, T) or NULL: row t of
 * head h scales by the float scale * row_scale[h T + t], as the kernel. */
static void
attention_ref (float *out, double *lse64, const float *q, int ldq, const float *keys,
               const float *values, int start, int T, int n_heads, int n_kv_heads, int hd,
               int window, float scale, const float *row_scale)
{
  int kv_dim = n_kv_heads * hd, group = n_heads / n_kv_heads;
  g_autofree float *att = g_new (float, start + T);
  g_autofree double *x64 = g_new (double, start + T);
  for (int t = 0; t < T; t++)
    for (int h = 0; h < n_heads; h++)
      {
        int pos = start + t, first = window > 0 ? MAX (0, pos - window + 1) : 0;
        const float *qh = q + (size_t) t * ldq + h * hd;
        float rs = row_scale != NULL ? scale * row_scale[(size_t) h * T + t] : scale;
        double mx = -INFINITY, sum = 0.0;
        for (int j = first; j <= pos; j++)
          {
            const float *k = keys + (size_t) j * kv_dim + (h / group) * hd;
            double dot = 0.0;
            for (int d = 0; d < hd; d++)
              dot += (double) qh[d] * k[d];
            x64[j] = dot * rs;
            att[j - first] = (float) x64[j];
            mx = MAX (mx, x64[j]);
          }
        for (int j = first; j <= pos; j++)
          sum += exp (x64[j] - mx);
        lse64[(size_t) h * T + t] = mx + log (sum);
        lsc_softmax_lse (att, pos - first + 1);
        float *o = out + (size_t) t * n_heads * hd + h * hd;
        memset (o, 0, hd * sizeof (float));
        for (int j = first; j <= pos; j++)
          for (int d = 0; d < hd; d++)
            o[d] += att[j - first] * values[(size_t) j * kv_dim + (h / group) * hd + d];
      }
}

static void
test_attention (void)
{
  if (!have_device ())
    return;
  /* n_heads, n_kv_heads, head_dim, start, T, window, query amplitude: 3,
   * or 40 for logits in the hundreds, whose float rounding the refined
   * normaliser must undo (it moves lse by more than the refined tolerance) */
  const int cases[][7] = {
    { 4, 2, 8, 0, 5, 0, 3 },      { 4, 4, 64, 0, 130, 0, 3 },   { 8, 2, 64, 70, 67, 0, 3 },
    { 2, 1, 128, 0, 200, 50, 3 }, { 3, 3, 100, 10, 65, 0, 3 },  { 4, 2, 64, 300, 1, 0, 3 },
    { 2, 2, 16, 0, 1, 0, 3 },     { 2, 1, 64, 1000, 3, 17, 3 }, { 4, 1, 128, 20000, 2, 0, 3 },
    { 2, 2, 64, 5000, 4, 3000, 3 }, { 3, 1, 3, 0, 70, 0, 3 },   { 2, 1, 36, 10, 100, 40, 3 },
    { 2, 1, 5, 600, 2, 0, 3 },    { 2, 1, 128, 0, 150, 0, 40 }, { 4, 2, 64, 3000, 2, 0, 40 },
    { 1, 1, 8, 600000, 1, 0, 3 },   /* past 128 chunks of 4096: 512 splits */
    { 1, 1, 4, 2200000, 1, 0, 3 },  /* past 512 chunks of 4096 (an H200's 1B cache) */
  };
  /* a row past 2M keys is still split, in chunks of at most 4096 keys (the
   * part of each: max, sum, correction and head_dim weighted values), not
   * left to one block per head walking the whole cache */
  for (int n = 2097152; n <= 8388608; n += 1048577)
    g_assert_cmpuint (lsc_cuda_attention_workspace (1, 1, 4, n), >=,
                      (size_t) ((n + 4095) / 4096) * (3 + 4) * sizeof (float));
  /* the device's shared memory per block: an H100's 227 KiB; on the
   * emulator also an RTX 4090's 99 KiB (values share the keys' tile at head
   * sizes over 64) and a T4's 64 KiB (over 32; over 64 it cannot) */
#if LSC_CUDA_EMULATOR
  const char *limits[] = { NULL, "101376", "65536" };
#else
  const char *limits[] = { NULL };
#endif
  for (gsize li = 0; li < G_N_ELEMENTS (limits); li++)
    for (gsize ci = 0; ci < G_N_ELEMENTS (cases); ci++)
      for (int variant = 0; variant < 4; variant++)
        {
          int refine = variant & 1, scaled = variant >> 1;
          int nh = cases[ci][0], nkv = cases[ci][1], hd = cases[ci][2];
          int start = cases[ci][3], T = cases[ci][4], window = cases[ci][5];
          int q_dim = nh * hd, kv_dim = nkv * hd, ldq = q_dim + 3, n_keys = start + T;
          float scale = 1.0f / sqrtf ((float) hd);
          /* a context of the device with that limit */
          LscCudaContext *ctx = context ();
          size_t allowed = 0;
          if (limits[li] != NULL)
            {
              g_setenv ("LSC_CUDA_EMULATOR_SHARED", limits[li], TRUE);
              g_assert_cmpint (lsc_cuda_context_new (&ctx, 0, NULL), ==, LSC_STATUS_OK);
            }
          g_assert_cmpint (lsc_cuda_device_shared_optin (0, &allowed), ==, LSC_STATUS_OK);
          g_unsetenv ("LSC_CUDA_EMULATOR_SHARED");
          if (lsc_cuda_attention_shared_bytes (hd) > allowed && T > 4)
            {
              /* more than a decode step's rows take the tiled kernel */
              g_assert_cmpint (lsc_cuda_attention (ctx, NULL, q_dim, NULL, NULL, ldq, NULL, NULL,
                                                   start, T, nh, nkv, hd, window, scale, NULL,
                                                   refine, NULL), ==, LSC_STATUS_UNSUPPORTED);
              if (ctx != context ())
                lsc_cuda_context_free (ctx);
              continue;
            }
          /* queries and keys of scale 3 (or more): peaked rows, large logits */
          g_autofree float *q = random_floats ((size_t) T * ldq, (float) cases[ci][6]);
          g_autofree float *k = random_floats ((size_t) (n_keys + 50) * kv_dim, 3.0f);
          g_autofree float *v = random_floats ((size_t) (n_keys + 50) * kv_dim, 1.0f);
          /* the cache past the block is not yet written: NaN there must not leak */
          for (size_t i = (size_t) n_keys * kv_dim; i < (size_t) (n_keys + 50) * kv_dim; i++)
            k[i] = v[i] = NAN;
          float *dq = device_floats (q, (size_t) T * ldq);
          float *dk = device_floats (k, (size_t) (n_keys + 50) * kv_dim);
          float *dv = device_floats (v, (size_t) (n_keys + 50) * kv_dim);
          float *dout = device_floats (NULL, (size_t) T * q_dim);
          float *dlse = device_floats (NULL, (size_t) nh * T);
          /* scaled: a logit scale per row (a hook's temperature), 0.3 to 3 */
          g_autofree float *rs = NULL;
          float *drs = NULL;
          if (scaled)
            {
              rs = g_new (float, (size_t) nh * T);
              for (int i = 0; i < nh * T; i++)
                rs[i] = (float) g_test_rand_double_range (0.3, 3.0);
              drs = device_floats (rs, (size_t) nh * T);
            }
          /* few rows take the split (decode) kernel, refined or not */
          void *work = NULL;
          size_t work_bytes = lsc_cuda_attention_workspace (T, nh, hd, n_keys);
          if (work_bytes > 0)
            g_assert_cmpint (lsc_cuda_alloc (context (), &work, work_bytes), ==, LSC_STATUS_OK);
          g_assert_cmpint (lsc_cuda_attention (ctx, dout, q_dim, dlse, dq, ldq, dk, dv, start, T,
                                               nh, nkv, hd, window, scale, drs, refine, work),
                           ==, LSC_STATUS_OK);
          g_assert_cmpint (lsc_cuda_sync (ctx), ==, LSC_STATUS_OK);
          if (ctx != context ())
            lsc_cuda_context_free (ctx);
          g_autofree float *out = take_floats (dout, (size_t) T * q_dim);
          g_autofree float *lse = take_floats (dlse, (size_t) nh * T);
          assert_finite (out, (size_t) T * q_dim, "attention");
          g_autofree float *ref = g_new (float, (size_t) T * q_dim);
          g_autofree double *lse64 = g_new (double, (size_t) nh * T);
          attention_ref (ref, lse64, q, ldq, k, v, start, T, nh, nkv, hd, window, scale, rs);
          /* float logits round in proportion to their size, the output with them */
          double big = cases[ci][6] / 3.0;
          for (int i = 0; scaled && i < nh * T; i++)
            big = MAX (big, cases[ci][6] / 3.0 * rs[i]);
          assert_close (out, ref, (size_t) T * q_dim, 1e-4 * big, 1e-5 * big, "attention");
          for (int i = 0; i < nh * T; i++)
            {
              /* refined: the float64 normaliser to float rounding; else float
               * sums, whose error grows with the logits (and their scale) */
              double tol = refine ? 1e-6 + 1.2e-7 * fabs (lse64[i])
                                  : 2e-5 * cases[ci][6] / 3 * (scaled ? MAX (1.0, rs[i]) : 1.0);
              if (fabs (lse[i] - lse64[i]) > tol)
                g_error ("attention case %zu refine %d scaled %d: lse[%d] = %.9g, float64 %.9g", ci,
                         refine, scaled, i, lse[i], lse64[i]);
            }
          if (drs != NULL)
            g_free (take_floats (drs, (size_t) nh * T));   /* the kernel only reads it */
          lsc_cuda_free (context (), dq);
          lsc_cuda_free (context (), dk);
          lsc_cuda_free (context (), dv);
          lsc_cuda_free (context (), work);
        }
}

/* ---- whole models ---- */

static double
max_rel_diff (const float *got, const float *want, size_t n)
{
  double diff = 0.0, mag = 0.0;
  for (size_t i = 0; i < n; i++)
    {
      g_assert_true (isfinite (got[i]));
      diff = MAX (diff, fabs ((double) got[i] - want[i]));
      mag = MAX (mag, fabs ((double) want[i]));
    }
  return diff / MAX (mag, 1e-30);
}

/* A scale hook that varies with layer, head and row (0.4 to 2.4), as a
 * plugin's temperature does. */
static float
varied_scale (G_GNUC_UNUSED gpointer data, int layer, int head, int pos)
{
  return 0.4f + 0.2f * (float) ((layer * 5 + head * 3 + pos) % 11);
}

/* Logits of a prompt (all positions) and of 6 decode steps after it, on
 * `backend`, with `hooks` (or none); returns (n + 6, vocab). */
static float *
run_logits (LscModel *model, LscBackend backend, const gint32 *tokens, int n, int n_ctx,
            const LscAttentionHooks *hooks)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.backend = backend;
  p.n_ctx = n_ctx;
  if (hooks != NULL)
    p.hooks = *hooks;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s), ==, backend);
  /* a GPU session holds at least the model's weights on the device */
  guint64 peak = 0;
  g_assert_true (lsc_session_get_device_memory (s, &peak) == (backend == LSC_BACKEND_CUDA));
  guint64 weights = 0;
  for (guint i = 0; i < lsc_model_get_n_tensors (model); i++)
    weights += lsc_model_get_tensor (model, i)->n_bytes;
  if (backend == LSC_BACKEND_CUDA)
    g_assert_cmpuint (peak, >=, weights);
  int vocab = lsc_session_get_n_vocab (s);
  float *logits = g_new (float, (size_t) (n + 6) * vocab);
  g_assert_true (lsc_session_eval (s, tokens, n, logits, TRUE, NULL, NULL, &error));
  for (int i = 0; i < 6; i++)
    g_assert_true (lsc_session_eval (s, tokens + i, 1, logits + (size_t) (n + i) * vocab, FALSE,
                                     NULL, NULL, &error));
  g_assert_no_error (error);
  return logits;
}

static void
check_parity (const char *path, const char *name, const LscAttentionHooks *hooks)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  const LscModelConfig *c = lsc_model_get_config (model);
  const int n = 200;
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = g_test_rand_int_range (0, c->vocab_size);

  const LscDType dtypes[] = { LSC_DTYPE_F32, LSC_DTYPE_BF16 };
  for (gsize di = 0; di < G_N_ELEMENTS (dtypes); di++)
    {
      g_autoptr(LscModel) cast = lsc_model_new_cast (model, dtypes[di], &error);
      g_assert_no_error (error);
      int vocab = c->vocab_size;
      g_autofree float *cpu = run_logits (cast, LSC_BACKEND_CPU, tokens, n, 512, hooks);
      g_autofree float *gpu = run_logits (cast, LSC_BACKEND_CUDA, tokens, n, 512, hooks);
      double rel = max_rel_diff (gpu, cpu, (size_t) (n + 6) * vocab);
      double tol = dtypes[di] == LSC_DTYPE_F32 ? 1e-4 : 1e-2;
      const char *with = hooks != NULL ? " with a scale hook" : "";
      g_test_message ("%s as %s%s: CUDA vs CPU max relative difference %.3g (tolerance %g)", name,
                      lsc_dtype_name (dtypes[di]), with, rel, tol);
      if (g_test_verbose ())
        g_printerr ("  %-32s %-5s%s %.3g\n", name, lsc_dtype_name (dtypes[di]), with, rel);
      g_assert_cmpfloat (rel, <=, tol);
    }
}

static void
check_model_parity (const char *path, const char *name)
{
  check_parity (path, name, NULL);
}

static void
test_model_shared (gconstpointer data)
{
  if (!have_device ())
    return;
  g_autofree char *path = lsc_test_shared_path (data);
  if (path != NULL)
    check_model_parity (path, data);
}

/* A scale hook (a plugin's temperature) runs on the GPU: the same logits as
 * the CPU with the same hook, the block kernel, decode's split kernel alike. */
static void
test_model_scaled (gconstpointer data)
{
  if (!have_device ())
    return;
  g_autofree char *path = lsc_test_shared_path (data);
  LscAttentionHooks hooks = { .scale = varied_scale };
  if (path != NULL)
    check_parity (path, data, &hooks);
}

static void
test_model_fixture (gconstpointer data)
{
  if (!have_device ())
    return;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf", data, NULL);
  check_model_parity (dir, data);
}

/* Capture on the GPU stores what the CPU stores: queries, normalisers (and
 * with a scale hook each row's logit scale), and so the same exact tiles;
 * some heads of two layers (a copy per head) and every head of one layer
 * (one copy of whole rows, whatever the order of the plan's list). */
static void
check_capture (LscModel *model, const int *layers, int n_layers, const int *heads, int n_heads,
               const LscAttentionHooks *hooks)
{
  g_autoptr(GError) error = NULL;
  const LscModelConfig *c = lsc_model_get_config (model);
  const int n = 300, hd = c->head_dim;
  gint32 tokens[300];
  for (int i = 0; i < n; i++)
    tokens[i] = i == 0 ? 1 : g_test_rand_int_range (3, 512);

  LscSession *s[2];
  for (int b = 0; b < 2; b++)
    {
      LscSessionParams p;
      lsc_session_params_init (&p);
      p.backend = b ? LSC_BACKEND_CUDA : LSC_BACKEND_CPU;
      p.n_ctx = 512;
      p.capture.enabled = TRUE;
      p.capture.layers = layers;
      p.capture.n_layers = n_layers;
      p.capture.heads = heads;
      p.capture.n_heads = n_heads;
      p.capture.row_start = 20;
      if (hooks != NULL)
        p.hooks = *hooks;
      s[b] = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
      g_assert_cmpint (lsc_session_get_backend (s[b]), ==, p.backend);
      /* a prefill in two pieces and a decode step */
      g_assert_true (lsc_session_eval (s[b], tokens, 150, NULL, FALSE, NULL, NULL, &error));
      g_assert_true (lsc_session_eval (s[b], tokens + 150, n - 151, NULL, FALSE, NULL, NULL, &error));
      g_assert_true (lsc_session_eval (s[b], tokens + n - 1, 1, NULL, FALSE, NULL, NULL, &error));
    }
  const LscAttentionStore *a[2] = { lsc_session_get_attention (s[0]), lsc_session_get_attention (s[1]) };
  g_assert_cmpint (lsc_attention_get_n_rows (a[1]), ==, n - 20);
  g_autofree float *tile0 = g_new (float, (size_t) (n - 20) * n);
  g_autofree float *tile1 = g_new (float, (size_t) (n - 20) * n);
  for (int li = 0; li < n_layers; li++)
    for (int hi = 0; hi < (n_heads > 0 ? n_heads : c->n_heads); hi++)
      {
        int l = layers[li], h = n_heads > 0 ? heads[hi] : hi;
        for (int pos = 20; pos < n; pos += 7)
          {
            float q0[64], q1[64], sc0, sc1, lse0, lse1;
            g_assert_true (lsc_attention_get_query (a[0], l, h, pos, q0, &error));
            g_assert_true (lsc_attention_get_query (a[1], l, h, pos, q1, &error));
            assert_close (q1, q0, hd, 1e-4, 1e-5, "captured query");
            g_assert_true (lsc_attention_get_row (a[0], l, h, pos, &sc0, &lse0, &error));
            g_assert_true (lsc_attention_get_row (a[1], l, h, pos, &sc1, &lse1, &error));
            g_assert_cmpfloat (sc0, ==, sc1);
            float base = 1.0f / sqrtf ((float) hd);
            g_assert_cmpfloat (sc1, ==, hooks != NULL ? base * hooks->scale (hooks->data, l, h, pos)
                                                      : base);
            g_assert_cmpfloat_with_epsilon (lse1, lse0, 1e-4);
          }
        if (hi == 0)
          {
            /* the host copy of the layer's keys, which host tiles read */
            float k0[64], k1[64];
            g_assert_true (lsc_attention_get_key (a[0], l, 0, n - 1, k0, &error));
            g_assert_true (lsc_attention_get_key (a[1], l, 0, n - 1, k1, &error));
            assert_close (k1, k0, hd, 1e-4, 1e-5, "captured layer's key");
          }
        g_assert_true (lsc_attention_tile (a[0], l, h, 20, n, 0, n, 0.0f, tile0, &error));
        g_assert_true (lsc_attention_tile (a[1], l, h, 20, n, 0, n, 0.0f, tile1, &error));
        g_assert_no_error (error);
        assert_close (tile1, tile0, (size_t) (n - 20) * n, 1e-3, 1e-6, "captured tile");
      }
  lsc_session_free (s[0]);
  lsc_session_free (s[1]);
}

static void
test_capture (void)
{
  if (!have_device ())
    return;
  g_autoptr(LscModel) model = lsc_test_load_shared_model ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  const int some_layers[] = { 0, 3 }, some_heads[] = { 1, 2, 7 }, one_layer[] = { 4 };
  check_capture (model, some_layers, 2, some_heads, 3, NULL);
  check_capture (model, one_layer, 1, NULL, 0, NULL);
  /* every head, listed out of order: still whole rows in the model's order */
  const int all_shuffled[] = { 5, 0, 7, 2, 1, 6, 3, 4 };
  check_capture (model, one_layer, 1, all_shuffled, 8, NULL);
  /* a scale hook: the GPU stores each row's scale as the CPU does */
  LscAttentionHooks hooks = { .scale = varied_scale };
  check_capture (model, some_layers, 2, some_heads, 3, &hooks);
  check_capture (model, one_layer, 1, NULL, 0, &hooks);
}

/* ---- attention maps: tiles and the streaming pass on the GPU ---- */

/* One head's captured rows, random: queries (n_rows, hd), keys (n_keys, ldk
 * apart, past head_dim garbage), per-row logit scales (0.3 to 3 times the
 * base) or none, and normalisers in float64 so that each row's p sums to 1. */
typedef struct {
  int hd, row0, n_rows, n_keys, ldk, window;
  float base;
  float *q, *keys, *lse, *scale;
} MapCase;

static int
map_first (const MapCase *mc, int i)
{
  return mc->window > 0 ? MAX (0, i - mc->window + 1) : 0;
}

/* The logit of (i, j) in float64 from the float query and key; with
 * `error`, also a bound on the rounding of the float32 logit as sgemm
 * computes it: head_dim 2^-24 sum |q_d k_d|, times the row's scale. */
static double
map_logit (const MapCase *mc, int i, int j, double *error)
{
  const float *q = mc->q + (size_t) (i - mc->row0) * mc->hd, *k = mc->keys + (size_t) j * mc->ldk;
  double dot = 0.0, magnitude = 0.0;
  for (int d = 0; d < mc->hd; d++)
    {
      dot += (double) q[d] * k[d];
      magnitude += fabs ((double) q[d] * k[d]);
    }
  double scale = mc->scale != NULL ? (double) mc->scale[i - mc->row0] : (double) mc->base;
  if (error != NULL)
    *error = scale * mc->hd * 0x1p-24 * magnitude;
  return scale * dot;
}

static void
map_case_init (MapCase *mc, int hd, int row0, int n_rows, int window, gboolean scaled)
{
  *mc = (MapCase) { hd, row0, n_rows, row0 + n_rows, 2 * hd + 3, window,
                    1.0f / sqrtf ((float) hd), NULL, NULL, NULL, NULL };
  mc->q = random_floats ((size_t) n_rows * hd, 1.5f);
  mc->keys = random_floats ((size_t) mc->n_keys * mc->ldk, 1.5f);
  if (scaled)
    {
      mc->scale = g_new (float, n_rows);
      for (int r = 0; r < n_rows; r++)
        mc->scale[r] = mc->base * (float) g_test_rand_double_range (0.3, 3.0);
    }
  mc->lse = g_new (float, n_rows);
  for (int i = row0; i < mc->n_keys; i++)
    {
      double mx = -INFINITY, sum = 0.0;
      for (int j = map_first (mc, i); j <= i; j++)
        mx = MAX (mx, map_logit (mc, i, j, NULL));
      for (int j = map_first (mc, i); j <= i; j++)
        sum += exp (map_logit (mc, i, j, NULL) - mx);
      mc->lse[i - row0] = (float) (mx + log (sum));
    }
}

static void
map_case_clear (MapCase *mc)
{
  g_free (mc->q);
  g_free (mc->keys);
  g_free (mc->lse);
  g_free (mc->scale);
}

/* The case's device copy (freed by map_device_free ()). */
static LscCudaMap
map_device (const MapCase *mc)
{
  return (LscCudaMap) {
    .head_dim = mc->hd, .row0 = mc->row0, .n_rows = mc->n_rows,
    .q = device_floats (mc->q, (size_t) mc->n_rows * mc->hd),
    .lse = device_floats (mc->lse, mc->n_rows),
    .scale = mc->scale != NULL ? device_floats (mc->scale, mc->n_rows) : NULL,
    .base_scale = mc->base,
    .keys = device_floats (mc->keys, (size_t) mc->n_keys * mc->ldk), .ldk = mc->ldk,
    .window = mc->window,
  };
}

/* Checks that the kernels left the inputs' sentinels alone, and frees them. */
static void
map_device_free (const MapCase *mc, LscCudaMap *m)
{
  g_free (take_floats ((float *) m->q, (size_t) mc->n_rows * mc->hd));
  g_free (take_floats ((float *) m->lse, mc->n_rows));
  if (m->scale != NULL)
    g_free (take_floats ((float *) m->scale, mc->n_rows));
  g_free (take_floats ((float *) m->keys, (size_t) mc->n_keys * mc->ldk));
}

/* head_dim, row0, n_rows, window, scaled */
static const int map_cases[][5] = {
  { 1, 0, 33, 0, 0 },   { 3, 5, 40, 0, 1 },     { 8, 0, 100, 0, 0 },   { 64, 100, 150, 0, 1 },
  { 80, 7, 90, 17, 0 }, { 128, 300, 70, 0, 1 }, { 128, 0, 260, 64, 1 }, { 100, 1000, 17, 0, 0 },
};

/* out, the tile [q0, q1) x [k0, k1) of case ci, against the float64 p */
static void
check_map_tile (const MapCase *mc, gsize ci, int q0, int q1, int k0, int k1, const float *out)
{
  for (int i = q0; i < q1; i++)
    for (int j = k0; j < k1; j++)
      {
        float got = out[(size_t) (i - q0) * (k1 - k0) + (j - k0)];
        if (j < map_first (mc, i) || j > i)
          {
            if (!isnan (got))
              g_error ("tile case %zu: (%d, %d) is masked, got %g", ci, i, j, got);
            continue;
          }
        /* the float64 logit: p to float rounding (exp's last bit aside) */
        double want = (float) exp (map_logit (mc, i, j, NULL) - (double) mc->lse[i - mc->row0]);
        if (!(fabs (got - want) <= 2.5e-7 * want + 1e-30))
          g_error ("tile case %zu: p(%d, %d) = %.9g, float64 %.9g", ci, i, j, got, want);
      }
}

static void
test_map_tile (void)
{
  if (!have_device ())
    return;
  for (gsize ci = 0; ci < G_N_ELEMENTS (map_cases); ci++)
    {
      const int *k = map_cases[ci];
      MapCase mc;
      map_case_init (&mc, k[0], k[1], k[2], k[3], k[4]);
      LscCudaMap m = map_device (&mc);
      int r0 = mc.row0, r1 = mc.n_keys;
      /* the whole map, a part, the last row, keys right of the diagonal, all masked */
      const int tiles[][4] = {
        { r0, r1, 0, r1 },           { r0 + 3, MIN (r0 + 29, r1), 2, MIN (r1, 50) },
        { r1 - 1, r1, 0, r1 },       { r0, r0 + 5, r0, r1 },
        { r0, r0 + 1, r0 + 1, r1 },
      };
      for (gsize ti = 0; ti < G_N_ELEMENTS (tiles); ti++)
        {
          int q0 = tiles[ti][0], q1 = tiles[ti][1], k0 = tiles[ti][2], k1 = tiles[ti][3];
          size_t n = (size_t) (q1 - q0) * (k1 - k0);
          float *dout = device_floats (NULL, n);
          g_assert_cmpint (lsc_cuda_attention_tile (context (), &m, q0, q1, k0, k1, NAN, dout), ==,
                           LSC_STATUS_OK);
          g_autofree float *out = take_floats (dout, n);
          check_map_tile (&mc, ci, q0, q1, k0, k1, out);
        }
      /* a row outside the map's is refused */
      g_assert_cmpint (lsc_cuda_attention_tile (context (), &m, r0 - 1, r0 + 1, 0, 1, 0.0f, NULL),
                       ==, LSC_STATUS_INVALID_ARGUMENT);
      map_device_free (&mc, &m);
      map_case_clear (&mc);
    }
}

/* A tile taller than one launch's grid (65535 blocks of 16 rows): a million
 * captured rows against a few keys, as a column of a 1M-token map. */
static void
test_map_tile_tall (void)
{
  if (!have_device ())
    return;
  const int n = 65535 * 16 + 40, hd = 2;
  MapCase mc = { hd, 0, n, 3, hd, 0, 1.0f / sqrtf ((float) hd), NULL, NULL, NULL, NULL };
  mc.q = random_floats ((size_t) n * hd, 1.5f);
  mc.keys = random_floats ((size_t) mc.n_keys * mc.ldk, 1.5f);
  mc.lse = g_new (float, n);
  for (int i = 0; i < n; i++)
    mc.lse[i] = (float) map_logit (&mc, i, 0, NULL) + 0.5f;   /* p(i, 0) = e^-0.5 */
  LscCudaMap m = map_device (&mc);
  float *dout = device_floats (NULL, (size_t) n * mc.n_keys);
  g_assert_cmpint (lsc_cuda_attention_tile (context (), &m, 0, n, 0, mc.n_keys, NAN, dout), ==,
                   LSC_STATUS_OK);
  g_autofree float *out = take_floats (dout, (size_t) n * mc.n_keys);
  check_map_tile (&mc, 0, 0, n, 0, mc.n_keys, out);
  map_device_free (&mc, &m);
  map_case_clear (&mc);
}

/* The pass's cells and row statistics in float64: cells (rows_b, cols_b) of
 * max (NAN when empty), sum and count; rows (n_rows, 4); and each row's
 * largest logit error bound (n_rows). */
static void
map_pool_ref (const MapCase *mc, int sink, int block, double *cmax, double *csum, gint64 *ccount,
              double *rows, double *logit_error)
{
  int cols_b = (mc->n_keys + block - 1) / block;
  size_t n_cells = (size_t) ((mc->n_rows + block - 1) / block) * cols_b;
  for (size_t c = 0; c < n_cells; c++)
    {
      cmax[c] = NAN;
      csum[c] = 0.0;
      ccount[c] = 0;
    }
  for (int i = mc->row0; i < mc->n_keys; i++)
    {
      double *st = rows + (size_t) (i - mc->row0) * 4;
      memset (st, 0, 4 * sizeof (double));
      logit_error[i - mc->row0] = 0.0;
      for (int j = map_first (mc, i); j <= i; j++)
        {
          double err, p = exp (map_logit (mc, i, j, &err) - (double) mc->lse[i - mc->row0]);
          logit_error[i - mc->row0] = MAX (logit_error[i - mc->row0], err);
          st[0] -= p > 0 ? p * log (p) : 0.0;
          st[1] += j < sink ? p : 0.0;
          st[2] = MAX (st[2], p);
          st[3] += p * (i - j);
          size_t c = (size_t) ((i - mc->row0) / block) * cols_b + j / block;
          cmax[c] = isnan (cmax[c]) ? p : MAX (cmax[c], p);
          csum[c] += p;
          ccount[c]++;
        }
    }
}

static void
test_map_pool (void)
{
  if (!have_device ())
    return;
  const int blocks[] = { 1, 4, 16 };
  for (gsize ci = 0; ci < G_N_ELEMENTS (map_cases); ci++)
    for (gsize bi = 0; bi < G_N_ELEMENTS (blocks); bi++)
      for (int cap_kind = 0; cap_kind < 3; cap_kind++)
        {
          const int *k = map_cases[ci];
          MapCase mc;
          map_case_init (&mc, k[0], k[1], k[2], k[3], k[4]);
          LscCudaMap m = map_device (&mc);
          int block = blocks[bi], sink = ci % 2 ? 4 : 0;
          int rows_b = (mc.n_rows + block - 1) / block, cols_b = (mc.n_keys + block - 1) / block;
          size_t n_cells = (size_t) rows_b * cols_b, n_rows = mc.n_rows;
          /* scores of one row per block, of a few, of all at once */
          size_t cap = cap_kind == 0 ? (size_t) mc.n_keys
                       : cap_kind == 1 ? (size_t) mc.n_keys * 5 + 7 : (size_t) 1 << 22;
          /* outputs start as NaN (doubles and counts of NaN bits): all must be written */
          g_autofree float *nans = g_new (float, MAX (2 * n_cells, 8 * n_rows));
          for (size_t i = 0; i < MAX (2 * n_cells, 8 * n_rows); i++)
            nans[i] = NAN;
          float *dmax = device_floats (nans, n_cells);
          float *dsum = device_floats (nans, 2 * n_cells);
          float *dcount = device_floats (nans, 2 * n_cells);
          float *drows = device_floats (nans, 8 * n_rows);
          float *dscores = device_floats (NULL, cap);
          g_assert_cmpint (lsc_cuda_attention_pool (context (), &m, sink, block, dmax,
                                                    (double *) dsum, (long long *) dcount,
                                                    (double *) drows, dscores, cap),
                           ==, LSC_STATUS_OK);
          g_autofree float *cmax = take_floats (dmax, n_cells);
          g_autofree double *csum = (double *) take_floats (dsum, 2 * n_cells);
          g_autofree gint64 *ccount = (gint64 *) take_floats (dcount, 2 * n_cells);
          g_autofree double *rows = (double *) take_floats (drows, 8 * n_rows);
          g_free (take_floats (dscores, cap));

          g_autofree double *rmax = g_new (double, n_cells);
          g_autofree double *rsum = g_new (double, n_cells);
          g_autofree gint64 *rcount = g_new (gint64, n_cells);
          g_autofree double *rrows = g_new (double, 4 * n_rows);
          g_autofree double *rerr = g_new (double, n_rows);
          map_pool_ref (&mc, sink, block, rmax, rsum, rcount, rrows, rerr);
          /* float32 scores (as the CPU's sgemm): a logit carries up to about
           * head_dim 2^-24 sum |q_d k_d| of rounding, 1.5e-4 for the scaled
           * head_dim 128 cases, and p that relative error */
          for (size_t c = 0; c < n_cells; c++)
            {
              if (ccount[c] != rcount[c] || isnan (cmax[c]) != isnan (rmax[c])
                  || (!isnan (rmax[c]) && (fabs (cmax[c] - rmax[c]) > 3e-4 * rmax[c] + 1e-12
                                           || fabs (csum[c] - rsum[c]) > 3e-4 * rsum[c] + 1e-12)))
                g_error ("pool case %zu block %d cap %zu: cell %zu: max %.9g sum %.9g count %"
                         G_GINT64_FORMAT ", float64 %.9g %.9g %" G_GINT64_FORMAT, ci, block, cap,
                         c, cmax[c], csum[c], ccount[c], rmax[c], rsum[c], rcount[c]);
            }
          /* Logit errors d_j move the entropy by -sum p_j d_j (ln p_j + 1),
           * at most (H + 1) max d: absolute, not relative, in a peaked row
           * (H near 0, its largest p near 1). The other statistics move by
           * at most max d of themselves. */
          for (size_t i = 0; i < 4 * n_rows; i++)
            if (!(fabs (rows[i] - rrows[i])
                  <= 3e-4 * fabs (rrows[i]) + 1e-6
                     + (i % 4 == 0 ? (rrows[i] + 1.0) * rerr[i / 4] : 0.0)))
              g_error ("pool case %zu block %d cap %zu: row %zu statistic %zu = %.9g, "
                       "float64 %.9g", ci, block, cap, i / 4, i % 4, rows[i], rrows[i]);
          map_device_free (&mc, &m);
          map_case_clear (&mc);
        }
}

/* A session on the GPU recomputes its maps there: the same pyramids,
 * statistics, tiles and masses as the CPU computes from the same store
 * (saved and reopened: a store without a session stays on the host). */
static void
assert_same_pyramid (const LscAttentionPyramid *x, const LscAttentionPyramid *y, const char *what)
{
  g_assert_cmpint (x->n_levels, ==, y->n_levels);
  g_assert_cmpint (x->n_rows, ==, y->n_rows);
  g_assert_cmpint (x->n_keys, ==, y->n_keys);
  for (int k = 0; k < x->n_levels; k++)
    {
      const LscPyramidLevel *a = &x->levels[k], *b = &y->levels[k];
      g_assert_cmpint (a->block, ==, b->block);
      g_assert_cmpint (a->rows, ==, b->rows);
      g_assert_cmpint (a->cols, ==, b->cols);
      for (size_t c = 0; c < (size_t) a->rows * a->cols; c++)
        if (isnan (a->max[c]) != isnan (b->max[c]) || isnan (a->mean[c]) != isnan (b->mean[c])
            || fabs (a->max[c] - b->max[c]) > 1e-4 * fabs (b->max[c]) + 1e-12
            || fabs (a->mean[c] - b->mean[c]) > 1e-4 * fabs (b->mean[c]) + 1e-12)
          g_error ("%s: level %d cell %zu: max %.9g mean %.9g, on the CPU %.9g %.9g", what, k, c,
                   a->max[c], a->mean[c], b->max[c], b->mean[c]);
    }
}

static void
assert_stat (double got, double want, const char *what, const char *stat)
{
  if (!(fabs (got - want) <= 1e-4 * fabs (want) + 1e-7))
    g_error ("%s: %s %.9g, on the CPU %.9g", what, stat, got, want);
}

static void
check_maps (const char *path, const char *name, const LscAttentionHooks *hooks)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  const LscModelConfig *c = lsc_model_get_config (model);
  /* three evaluations: one with no captured row (whose keys the captured
   * rows still read), one whose capture starts inside it, one all captured */
  const int n = 300, row0 = 150, evals[] = { 0, 100, 200, n };
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = g_test_rand_int_range (0, c->vocab_size);

  LscSessionParams p;
  lsc_session_params_init (&p);
  p.backend = LSC_BACKEND_CUDA;
  p.n_ctx = 512;
  p.capture.enabled = TRUE;
  p.capture.row_start = row0;
  if (hooks != NULL)
    p.hooks = *hooks;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  for (int e = 0; e < 3; e++)
    g_assert_true (lsc_session_eval (s, tokens + evals[e], evals[e + 1] - evals[e], NULL, FALSE,
                                     NULL, NULL, &error));
  const LscAttentionStore *gpu = lsc_session_get_attention (s);
  g_autoptr(LscTensorWriter) w = lsc_tensor_writer_new ();
  g_assert_true (lsc_attention_save (gpu, w, &error));
  g_autofree char *file = g_build_filename (lsc_test_tmpdir (), "maps.safetensors", NULL);
  g_assert_true (lsc_tensor_writer_write (w, file, &error));
  g_autoptr(LscAttentionStore) cpu = lsc_attention_load (file, &error);
  g_assert_no_error (error);

  size_t cells = (size_t) (n - row0) * n;
  g_autofree float *t0 = g_new (float, cells);
  g_autofree float *t1 = g_new (float, cells);
  for (int l = 0; l < c->n_layers; l++)
    for (int h = 0; h < c->n_heads; h++)
      {
        g_autofree char *what = g_strdup_printf ("%s layer %d head %d", name, l, h);
        g_autoptr(LscAttentionPyramid) pg = NULL;
        g_autoptr(LscAttentionPyramid) pc = NULL;
        LscHeadStats sg, sc;
        g_assert_true (lsc_attention_analyze (gpu, l, h, 4, &pg, &sg, &error));
        g_assert_true (lsc_attention_analyze (cpu, l, h, 4, &pc, &sc, &error));
        g_assert_no_error (error);
        assert_same_pyramid (pg, pc, what);
        assert_stat (sg.entropy, sc.entropy, what, "entropy");
        assert_stat (sg.sink_mass, sc.sink_mass, what, "sink mass");
        assert_stat (sg.max_prob, sc.max_prob, what, "max p");
        assert_stat (sg.mean_distance, sc.mean_distance, what, "mean distance");

        g_assert_true (lsc_attention_tile (gpu, l, h, row0, n, 0, n, NAN, t0, &error));
        g_assert_true (lsc_attention_tile (cpu, l, h, row0, n, 0, n, NAN, t1, &error));
        g_assert_no_error (error);
        for (size_t i = 0; i < cells; i++)
          if (isnan (t0[i]) != isnan (t1[i]) || fabs (t0[i] - t1[i]) > 2.5e-7 * fabs (t1[i]))
            g_error ("%s: tile cell (%zu, %zu) = %.9g, on the CPU %.9g", what, row0 + i / n, i % n,
                     t0[i], t1[i]);
        double mg, mc;
        g_assert_true (lsc_attention_mass (gpu, l, h, 160, 250, 10, 120, &mg, &error));
        g_assert_true (lsc_attention_mass (cpu, l, h, 160, 250, 10, 120, &mc, &error));
        assert_stat (mg, mc, what, "mass");
      }
}

static void
test_maps_shared (gconstpointer data)
{
  if (!have_device ())
    return;
  g_autofree char *path = lsc_test_shared_path (data);
  if (path != NULL)
    check_maps (path, data, NULL);
}

static void
test_maps_fixture (void)
{
  if (!have_device ())
    return;
  /* a sliding window of 8 tokens */
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf",
                                                "mistral-sliding-window", NULL);
  check_maps (dir, "mistral-sliding-window", NULL);
}

static void
test_maps_scaled (void)
{
  if (!have_device ())
    return;
  g_autofree char *path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  LscAttentionHooks hooks = { .scale = varied_scale };
  if (path != NULL)
    check_maps (path, "stories260K with a scale hook", &hooks);
}

/* ---- Mamba ---- */

/* The convolution of lsc-mamba.c's conv_block (), in double: u (T, C) and
 * the state after. */
static void
ssm_conv_ref (double *u, float *state, const float *x, int ldx, int T, int C, int K,
              const float *w, const float *b)
{
  for (int t = 0; t < T; t++)
    for (int c = 0; c < C; c++)
      {
        double acc = b != NULL ? b[c] : 0.0;
        for (int k = 0; k < K; k++)
          {
            int j = t - (K - 1) + k;
            acc += (double) w[c * K + k] * (j < 0 ? state[(K - 1 + j) * C + c] : x[j * ldx + c]);
          }
        u[t * C + c] = acc / (1.0 + exp (-acc));
      }
  for (int c = 0; c < C; c++)
    for (int k = 0; k < K - 1; k++)
      {
        int j = T - (K - 1) + k;
        state[k * C + c] = j < 0 ? state[(K - 1 + j) * C + c] : x[j * ldx + c];
      }
}

static void
test_ssm_conv (void)
{
  if (!have_device ())
    return;
  /* T, C, K: fewer tokens than the state holds, K = 1 (no state), odd sizes */
  const int cases[][3] = { { 1, 5, 4 }, { 2, 33, 4 }, { 3, 8, 4 }, { 300, 130, 4 },
                           { 7, 64, 1 }, { 5, 17, 2 } };
  for (gsize ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    for (int with_bias = 0; with_bias <= 1; with_bias++)
      {
        int T = cases[ci][0], C = cases[ci][1], K = cases[ci][2], ldx = C + 9;
        size_t n_state = (size_t) (K - 1) * C;
        g_autofree float *x = random_floats ((size_t) T * ldx, 2.0f);
        g_autofree float *state = random_floats (n_state, 2.0f);
        g_autofree float *w = random_floats ((size_t) C * K, 1.0f);
        g_autofree float *b = random_floats (C, 1.0f);
        float *dx = device_floats (x, (size_t) T * ldx), *dw = device_floats (w, (size_t) C * K);
        float *db = device_floats (b, C), *dstate = device_floats (state, n_state);
        float *du = device_floats (NULL, (size_t) T * C);
        g_assert_cmpint (lsc_cuda_ssm_conv (context (), du, dstate, dx, ldx, T, C, K, dw,
                                            with_bias ? db : NULL), ==, LSC_STATUS_OK);
        g_autofree float *u = take_floats (du, (size_t) T * C);
        g_autofree float *state_out = take_floats (dstate, n_state);
        g_autofree double *ref = g_new (double, (size_t) T * C);
        ssm_conv_ref (ref, state, x, ldx, T, C, K, w, with_bias ? b : NULL);
        g_autofree float *ref_f = g_new (float, (size_t) T * C);
        for (size_t i = 0; i < (size_t) T * C; i++)
          ref_f[i] = (float) ref[i];
        assert_finite (u, (size_t) T * C, "ssm conv");
        assert_close (u, ref_f, (size_t) T * C, 1e-5, 1e-6, "ssm conv");
        /* the state is copied, not computed: exact */
        assert_close (state_out, state, n_state, 0, 0, "ssm conv state");
        lsc_cuda_free (context (), dx);
        lsc_cuda_free (context (), dw);
        lsc_cuda_free (context (), db);
      }
}

static void
test_ssm_dt (void)
{
  if (!have_device ())
    return;
  const int T = 37, n = 70, ldx = 101;
  g_autofree float *x = random_floats ((size_t) T * ldx, 30.0f);   /* both sides of 20 */
  g_autofree float *bias = random_floats (n, 2.0f);
  float *dx = device_floats (x, (size_t) T * ldx), *dbias = device_floats (bias, n);
  float *ddt = device_floats (NULL, (size_t) T * n);
  g_assert_cmpint (lsc_cuda_ssm_dt (context (), ddt, dx, ldx, T, n, dbias), ==, LSC_STATUS_OK);
  g_autofree float *dt = take_floats (ddt, (size_t) T * n);
  g_autofree float *ref = g_new (float, (size_t) T * n);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < n; i++)
      {
        float v = x[t * ldx + i] + bias[i];
        ref[t * n + i] = v > 20.0f ? v : log1pf (expf (v));
      }
  assert_finite (dt, (size_t) T * n, "ssm dt");
  assert_close (dt, ref, (size_t) T * n, 2e-6, 1e-30, "ssm dt");
  lsc_cuda_free (context (), dx);
  lsc_cuda_free (context (), dbias);
}

/* The scan of lsc-cuda.h's LscCudaScan, in double, on host copies of its
 * arrays (the same pointers' offsets): y (T, E) and the state after. */
static void
ssm_scan_ref (const LscCudaScan *a, double *y, double *S)
{
  int H = a->E / a->P;
  for (int t = 0; t < a->T; t++)
    for (int c = 0; c < a->E; c++)
      {
        int h = c / a->P, g = h / (H / a->G);
        double d = a->dt[t * H + h], xv = a->x[t * a->ldx + c], acc = 0;
        for (int n = 0; n < a->N; n++)
          {
            double *s = &S[(size_t) c * a->N + n];
            *s = exp (d * a->A[h * a->a_head + n * a->a_state]) * *s
                 + d * xv * a->B[t * a->ldbc + g * a->N + n];
            acc += *s * a->C[t * a->ldbc + g * a->N + n];
          }
        double v = acc + a->D[h] * xv;
        if (a->z != NULL)
          {
            double z = a->z[t * a->ldz + c];
            v *= z / (1.0 + exp (-z));
          }
        y[t * a->E + c] = v;
      }
}

static void
test_ssm_scan (void)
{
  if (!have_device ())
    return;
  /* T, E, N, P, G, mamba2: every lane count (N = 1 .. 256, up to 8 states
   * a lane), channels that do not fill a block, groups */
  const int cases[][6] = {
    { 1, 5, 1, 1, 1, 0 },     { 3, 128, 16, 1, 1, 0 }, { 100, 40, 5, 1, 1, 0 },
    { 17, 33, 17, 1, 1, 0 },  { 9, 70, 200, 1, 1, 0 }, { 1, 16, 256, 1, 1, 0 },
    { 50, 64, 128, 8, 2, 1 }, { 7, 24, 64, 3, 1, 1 },  { 130, 48, 16, 4, 4, 1 },
    { 2, 6, 3, 2, 3, 1 },
  };
  for (gsize ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    {
      int T = cases[ci][0], E = cases[ci][1], N = cases[ci][2], P = cases[ci][3];
      int G = cases[ci][4], m2 = cases[ci][5], H = E / P;
      int ldx = E + 3, ldbc = 2 * G * N + 5, ldz = E + 1, ldy = E;
      size_t n_a = m2 ? (size_t) H : (size_t) E * N;
      g_autofree float *x = random_floats ((size_t) T * ldx, 1.0f);
      g_autofree float *dt = g_new (float, (size_t) T * H);
      for (size_t i = 0; i < (size_t) T * H; i++)
        dt[i] = (float) g_test_rand_double_range (0.0, 0.5);
      g_autofree float *A = g_new (float, n_a);
      for (size_t i = 0; i < n_a; i++)
        A[i] = (float) -g_test_rand_double_range (0.01, 2.0);
      g_autofree float *bc = random_floats ((size_t) T * ldbc, 1.0f);
      g_autofree float *D = random_floats (H, 1.0f);
      g_autofree float *z = random_floats ((size_t) T * ldz, 3.0f);
      g_autofree float *state = random_floats ((size_t) E * N, 1.0f);

      LscCudaScan host = {
        .T = T, .E = E, .N = N, .P = P, .G = G, .x = x, .ldx = ldx, .dt = dt, .A = A,
        .a_head = m2 ? 1 : N, .a_state = m2 ? 0 : 1, .B = bc, .C = bc + G * N, .ldbc = ldbc,
        .D = D, .z = m2 ? NULL : z, .ldz = ldz, .ldy = ldy,
      };
      LscCudaScan dev = host;
      dev.x = device_floats (x, (size_t) T * ldx);
      dev.dt = device_floats (dt, (size_t) T * H);
      dev.A = device_floats (A, n_a);
      float *dbc = device_floats (bc, (size_t) T * ldbc);
      dev.B = dbc;
      dev.C = dbc + G * N;
      dev.D = device_floats (D, H);
      dev.z = m2 ? NULL : device_floats (z, (size_t) T * ldz);
      dev.y = device_floats (NULL, (size_t) T * ldy);
      dev.state = device_floats (state, (size_t) E * N);
      g_assert_cmpint (lsc_cuda_ssm_scan (context (), &dev), ==, LSC_STATUS_OK);
      g_autofree float *y = take_floats (dev.y, (size_t) T * ldy);
      g_autofree float *s_out = take_floats (dev.state, (size_t) E * N);

      g_autofree double *y_ref = g_new (double, (size_t) T * E);
      g_autofree double *s_ref = g_new (double, (size_t) E * N);
      for (size_t i = 0; i < (size_t) E * N; i++)
        s_ref[i] = state[i];
      ssm_scan_ref (&host, y_ref, s_ref);
      g_autofree float *y_ref_f = g_new (float, (size_t) T * E);
      g_autofree float *s_ref_f = g_new (float, (size_t) E * N);
      for (size_t i = 0; i < (size_t) T * E; i++)
        y_ref_f[i] = (float) y_ref[i];
      for (size_t i = 0; i < (size_t) E * N; i++)
        s_ref_f[i] = (float) s_ref[i];
      assert_finite (y, (size_t) T * E, "ssm scan y");
      assert_finite (s_out, (size_t) E * N, "ssm scan state");
      /* float sums of up to 256 terms of size ~1, over 130 steps */
      assert_close (y, y_ref_f, (size_t) T * E, 1e-4, 1e-5 * sqrt (N), "ssm scan y");
      assert_close (s_out, s_ref_f, (size_t) E * N, 1e-4, 1e-5, "ssm scan state");
      lsc_cuda_free (context (), (void *) dev.x);
      lsc_cuda_free (context (), (void *) dev.dt);
      lsc_cuda_free (context (), (void *) dev.A);
      lsc_cuda_free (context (), dbc);
      lsc_cuda_free (context (), (void *) dev.D);
      lsc_cuda_free (context (), (void *) dev.z);
    }
}

static void
test_ssm_gated_norm (void)
{
  if (!have_device ())
    return;
  /* T, E, G */
  const int cases[][3] = { { 1, 8, 1 }, { 5, 64, 2 }, { 3, 1536, 1 }, { 4, 300, 3 } };
  for (gsize ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    {
      int T = cases[ci][0], E = cases[ci][1], G = cases[ci][2], ldz = E + 7, gs = E / G;
      double eps = 1e-5;
      g_autofree float *y = random_floats ((size_t) T * E, 2.0f);
      g_autofree float *z = random_floats ((size_t) T * ldz, 3.0f);
      g_autofree float *w = random_floats (E, 2.0f);
      float *dy = device_floats (y, (size_t) T * E);
      float *dz = device_floats (z, (size_t) T * ldz), *dw = device_floats (w, E);
      g_assert_cmpint (lsc_cuda_ssm_gated_norm (context (), dy, dz, ldz, dw, T, E, G, eps), ==,
                       LSC_STATUS_OK);
      g_autofree float *got = take_floats (dy, (size_t) T * E);
      g_autofree float *ref = g_new (float, (size_t) T * E);
      for (int t = 0; t < T; t++)
        for (int g = 0; g < G; g++)
          {
            double v[1536], ss = 0;
            for (int i = 0; i < gs; i++)
              {
                double zz = z[t * ldz + g * gs + i];
                v[i] = y[t * E + g * gs + i] * zz / (1.0 + exp (-zz));
                ss += v[i] * v[i];
              }
            double r = 1.0 / sqrt (ss / gs + eps);
            for (int i = 0; i < gs; i++)
              ref[t * E + g * gs + i] = (float) (v[i] * r * w[g * gs + i]);
          }
      assert_finite (got, (size_t) T * E, "gated norm");
      assert_close (got, ref, (size_t) T * E, 1e-5, 1e-6, "gated norm");
      lsc_cuda_free (context (), dz);
      lsc_cuda_free (context (), dw);
    }
}

/* A Mamba session on `backend` (Δ recorded, `filter` may be NULL) that has
 * evaluated tokens (n) in one call: all-position logits into logits. */
static LscSession *
ssm_session (LscModel *model, LscBackend backend, const gint32 *tokens, int n,
             const LscSsmFilter *filter, float *logits)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.backend = backend;
  p.n_ctx = n + 8;
  p.ssm_capture = (LscSsmCapturePlan) { TRUE, 0, -1 };
  if (filter != NULL)
    p.ssm_filter = *filter;
  LscSession *s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s), ==, backend);
  g_assert_true (lsc_session_eval (s, tokens, n, logits, TRUE, NULL, NULL, &error));
  g_assert_no_error (error);
  return s;
}

static gboolean
cancel_at_second (gpointer data)
{
  return ++*(int *) data == 2;   /* asked before each layer: layer 0 has run */
}

static int
compare_floats (const void *a, const void *b)
{
  float x = *(const float *) a, y = *(const float *) b;
  return (x > y) - (x < y);
}

/* Mamba sessions on the GPU against the CPU: tiny-mamba2 (tests/fixtures/ssm,
 * 2 groups of 4 heads) and tiny-mamba (shared, Mamba-1): logits over two GPU
 * blocks, recorded Δ, LongMamba's filter, a cancelled evaluation and a
 * rewind. */
static void
check_ssm_session (const char *path, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  const LscModelConfig *c = lsc_model_get_config (model);
  const int n = 4400;   /* two GPU blocks of at most 4096 tokens */
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = g_test_rand_int_range (0, c->vocab_size);
  int vocab = c->vocab_size;
  g_autofree float *l_cpu = g_new (float, (size_t) n * vocab);
  g_autofree float *l_gpu = g_new (float, (size_t) n * vocab);

  /* vanilla, Δ recorded */
  LscSession *cpu = ssm_session (model, LSC_BACKEND_CPU, tokens, n, NULL, l_cpu);
  LscSession *gpu = ssm_session (model, LSC_BACKEND_CUDA, tokens, n, NULL, l_gpu);
  double rel = max_rel_diff (l_gpu, l_cpu, (size_t) n * vocab);
  g_test_message ("%s: CUDA vs CPU logits over %d tokens %.3g", name, n, rel);
  g_assert_cmpfloat (rel, <=, 1e-4);
  const LscSsmStore *st[2] = { lsc_session_get_ssm (cpu), lsc_session_get_ssm (gpu) };
  int H = lsc_ssm_store_get_n_channels (st[0]);
  g_assert_cmpint (lsc_ssm_store_get_n_rows (st[1]), ==, n);
  for (int l = 0; l < c->n_layers; l++)
    assert_close (lsc_ssm_store_get_dt (st[1], l), lsc_ssm_store_get_dt (st[0], l),
                  (size_t) n * H, 1e-4, 1e-7, "recorded Δ");

  /* The filter. Layer 0 sees the same Δ filtered or not: its thresholds lie
   * between two of the CPU's Δ of each channel, far from both, so that
   * float differences cannot flip a decision. Later layers see Δ the filter
   * has changed, which may land next to any threshold (the two backends then
   * decide differently, and the logits part by more than float rounding):
   * there a channel keeps every token (-1) or none (FLT_MAX). */
  g_autofree float *thr = g_new (float, (size_t) c->n_layers * H);
  g_autofree guint8 *global = g_new (guint8, (size_t) c->n_layers * H);
  g_autofree float *col = g_new (float, n);
  const float *dt0 = lsc_ssm_store_get_dt (st[0], 0);
  for (int l = 0; l < c->n_layers; l++)
    for (int h = 0; h < H; h++)
      {
        global[l * H + h] = h % 2 == 0;
        if (l > 0)
          {
            thr[l * H + h] = h % 4 == 0 ? FLT_MAX : -1.0f;
            continue;
          }
        for (int t = 0; t < n; t++)
          col[t] = dt0[(size_t) t * H + h];
        qsort (col, n, sizeof (float), compare_floats);
        int k = n / 2;
        while (k < n - 1 && col[k + 1] - col[k] < 1e-4f * col[k + 1])
          k++;
        thr[h] = 0.5f * (col[k] + col[k + 1]);
      }
  lsc_session_free (cpu);
  lsc_session_free (gpu);
  LscSsmFilter f = { TRUE, thr, global, 1.0, 64 };
  cpu = ssm_session (model, LSC_BACKEND_CPU, tokens, n, &f, l_cpu);
  gpu = ssm_session (model, LSC_BACKEND_CUDA, tokens, n, &f, l_gpu);
  rel = max_rel_diff (l_gpu, l_cpu, (size_t) n * vocab);
  g_test_message ("%s filtered: CUDA vs CPU logits %.3g", name, rel);
  g_assert_cmpfloat (rel, <=, 1e-4);
  st[0] = lsc_session_get_ssm (cpu);
  st[1] = lsc_session_get_ssm (gpu);
  int n_dropped = 0;
  for (int l = 0; l < c->n_layers; l++)
    {
      const guint8 *k0 = lsc_ssm_store_get_kept (st[0], l), *k1 = lsc_ssm_store_get_kept (st[1], l);
      g_assert_nonnull (k1);
      for (size_t i = 0; i < (size_t) n * H; i++)
        {
          g_assert_cmpint (k1[i], ==, k0[i]);
          n_dropped += !k0[i];
        }
    }
  g_assert_cmpint (n_dropped, >, 0);

  /* a cancelled step leaves the GPU state as it was; a rewind empties it */
  float *next_cpu = l_cpu, *next_gpu = l_gpu;
  int calls = 0;
  g_assert_false (lsc_session_eval (gpu, tokens, 5, NULL, FALSE, cancel_at_second, &calls, &error));
  g_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_true (lsc_session_eval (cpu, tokens, 5, next_cpu, FALSE, NULL, NULL, &error));
  g_assert_true (lsc_session_eval (gpu, tokens, 5, next_gpu, FALSE, NULL, NULL, &error));
  g_assert_cmpfloat (max_rel_diff (next_gpu, next_cpu, vocab), <=, 1e-4);
  lsc_session_rewind (gpu, 0);
  lsc_session_rewind (cpu, 0);
  g_assert_true (lsc_session_eval (cpu, tokens, 9, next_cpu, FALSE, NULL, NULL, &error));
  g_assert_true (lsc_session_eval (gpu, tokens, 9, next_gpu, FALSE, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (max_rel_diff (next_gpu, next_cpu, vocab), <=, 1e-4);
  lsc_session_free (cpu);
  lsc_session_free (gpu);
}

static void
test_ssm_fixture (void)
{
  if (!have_device ())
    return;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "ssm", "tiny-mamba2",
                                                NULL);
  check_ssm_session (dir, "tiny-mamba2");
  check_model_parity (dir, "tiny-mamba2");
}

static void
test_ssm_shared (gconstpointer data)
{
  if (!have_device ())
    return;
  g_autofree char *path = lsc_test_shared_path (data);
  if (path == NULL)
    return;
  check_ssm_session (path, data);
  check_model_parity (path, data);
}

/* Mamba sessions fed the same tokens in pieces of several sizes on both
 * backends (1 token first, fewer than d_conv, odd sizes, a block that is
 * n_ctx's end): the last logits of every piece and the recorded Δ agree. */
static void
check_ssm_splits (const char *path, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  const LscModelConfig *c = lsc_model_get_config (model);
  int vocab = c->vocab_size;
  static const int pieces[][8] = { { 1, 1, 2, 5, 0 }, { 2, 1, 40, 1, 0 }, { 3, 17, 1, 1, 0 },
                                   { 37, 1, 2, 3, 0 } };
  const int n_ctxs[] = { 64, 13, 4096 };
  for (gsize ni = 0; ni < G_N_ELEMENTS (n_ctxs); ni++)
    for (gsize pi = 0; pi < G_N_ELEMENTS (pieces); pi++)
      {
        int n_ctx = n_ctxs[ni];
        LscSession *s[2];
        for (int b = 0; b < 2; b++)
          {
            LscSessionParams p;
            lsc_session_params_init (&p);
            p.backend = b == 0 ? LSC_BACKEND_CPU : LSC_BACKEND_CUDA;
            p.n_ctx = n_ctx;
            p.ssm_capture = (LscSsmCapturePlan) { TRUE, 0, -1 };
            s[b] = lsc_session_new (model, &p, &error);
            g_assert_no_error (error);
          }
        int pos = 0;
        for (int k = 0; pieces[pi][k] > 0; k++)
          {
            int n = pieces[pi][k];
            if (pos + n > n_ctx)
              n = n_ctx - pos;
            if (n <= 0)
              break;
            g_autofree gint32 *tokens = g_new (gint32, n);
            for (int i = 0; i < n; i++)
              tokens[i] = (pos + i * 7 + 3) % vocab;
            g_autofree float *l0 = g_new (float, (size_t) n * vocab);
            g_autofree float *l1 = g_new (float, (size_t) n * vocab);
            float *l[2] = { l0, l1 };
            for (int b = 0; b < 2; b++)
              {
                g_assert_true (lsc_session_eval (s[b], tokens, n, l[b], TRUE, NULL, NULL, &error));
                g_assert_no_error (error);
              }
            double rel = max_rel_diff (l[1], l[0], (size_t) n * vocab);
            g_test_message ("%s n_ctx %d piece %d (%d tokens at %d): %.3g", name, n_ctx, k, n, pos,
                            rel);
            g_assert_cmpfloat (rel, <=, 1e-4);
            pos += n;
          }
        const LscSsmStore *st[2] = { lsc_session_get_ssm (s[0]), lsc_session_get_ssm (s[1]) };
        g_assert_cmpint (lsc_ssm_store_get_n_rows (st[1]), ==, pos);
        g_assert_cmpint (lsc_ssm_store_get_n_rows (st[0]), ==, pos);
        int H = lsc_ssm_store_get_n_channels (st[0]);
        for (int l = 0; l < c->n_layers; l++)
          assert_close (lsc_ssm_store_get_dt (st[1], l), lsc_ssm_store_get_dt (st[0], l),
                        (size_t) pos * H, 1e-4, 1e-7, "recorded Δ");
        lsc_session_free (s[0]);
        lsc_session_free (s[1]);
      }
}

static void
test_ssm_splits (void)
{
  if (!have_device ())
    return;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "ssm", "tiny-mamba2",
                                                NULL);
  check_ssm_splits (dir, "tiny-mamba2");
  g_autofree char *path = lsc_test_shared_path ("models/random/tiny-mamba");
  if (path != NULL)
    check_ssm_splits (path, "tiny-mamba");
}

#if LSC_CUDA_EMULATOR
/* A device error part way through an evaluation with no cancel callback
 * (the emulator refuses layer 1's scan): the call fails and leaves the
 * session as it was, the recurrent state of the layers that ran included,
 * as a cancelled one does. The next evaluations then match a CPU session
 * that never saw the failed call. */
static void
check_ssm_device_error (const char *path, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  int vocab = lsc_model_get_config (model)->vocab_size;
  const gint32 tokens[] = { 5, 17, 3, 60, 9, 41, 22, 7, 80, 1, 33 };
  const int n = G_N_ELEMENTS (tokens);
  LscSession *s[2];
  for (int b = 0; b < 2; b++)
    {
      LscSessionParams p;
      lsc_session_params_init (&p);
      p.backend = b == 0 ? LSC_BACKEND_CPU : LSC_BACKEND_CUDA;
      p.n_ctx = 64;
      s[b] = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
    }
  float *l[2] = { g_new (float, vocab), g_new (float, vocab) };
  /* failing at once (the state still empty) and after a prefix */
  for (int round = 0; round < 2; round++)
    {
      g_setenv ("LSC_CUDA_EMULATOR_FAIL_LAUNCH", "scan_kernel:2", TRUE);
      g_assert_false (lsc_session_eval (s[1], tokens, n, l[1], FALSE, NULL, NULL, &error));
      g_unsetenv ("LSC_CUDA_EMULATOR_FAIL_LAUNCH");
      g_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_DEVICE);
      g_clear_error (&error);
      g_assert_cmpint (lsc_session_get_pos (s[1]), ==, round * 4);
      for (int b = 0; b < 2; b++)
        {
          g_assert_true (lsc_session_eval (s[b], tokens + 2 * round, 4, l[b], FALSE, NULL, NULL,
                                           &error));
          g_assert_no_error (error);
        }
      double rel = max_rel_diff (l[1], l[0], vocab);
      g_test_message ("%s after a device error (round %d): CUDA vs CPU %.3g", name, round, rel);
      g_assert_cmpfloat (rel, <=, 1e-4);
    }
  g_free (l[0]);
  g_free (l[1]);
  lsc_session_free (s[0]);
  lsc_session_free (s[1]);
}
#endif

static void
test_ssm_device_error (void)
{
  if (!have_device ())
    return;
#if LSC_CUDA_EMULATOR
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "ssm", "tiny-mamba2",
                                                NULL);
  check_ssm_device_error (dir, "tiny-mamba2");
  g_autofree char *path = lsc_test_shared_path ("models/random/tiny-mamba");
  if (path != NULL)
    check_ssm_device_error (path, "tiny-mamba");
#else
  g_test_skip ("a device error is injected by the emulator");
#endif
}

#if LSC_CUDA_EMULATOR
/* A device error part way through a transformer evaluation (the emulator
 * fails the K-th launch of a kernel) in a prefill and in a decode step, with
 * capture off, every head of every layer, or some heads of some layers and
 * rows: the call fails with a device error and leaves the session as it
 * was, position and captured rows included; the next evaluations and the
 * captured tiles then match a CPU session that never saw the failed call. */
typedef struct {
  const char *kernel;   /* LSC_CUDA_EMULATOR_FAIL_LAUNCH */
  int n;                /* tokens of the failed call: a prefill block or a decode step */
} DeviceFault;

static void
assert_same_store_rows (const LscAttentionStore *a, const LscModelConfig *c, int r0, int r1,
                        const float *q_before, const float *lse_before, gboolean save)
{
  g_autoptr(GError) error = NULL;
  int hd = c->head_dim, i = 0;
  for (int l = 0; l < c->n_layers; l++)
    for (int h = 0; h < c->n_heads; h++)
      if (lsc_attention_has_head (a, l, h))
        for (int pos = r0; pos < r1; pos++, i++)
          {
            float q[256], sc, lse;
            g_assert_true (lsc_attention_get_query (a, l, h, pos, q, &error));
            g_assert_true (lsc_attention_get_row (a, l, h, pos, &sc, &lse, &error));
            g_assert_no_error (error);
            if (save)
              {
                memcpy ((float *) q_before + (gsize) i * hd, q, hd * sizeof (float));
                ((float *) lse_before)[i] = lse;
              }
            else
              {
                g_assert_cmpmem (q, hd * sizeof (float), q_before + (gsize) i * hd,
                                 hd * sizeof (float));
                g_assert_cmpfloat (lse, ==, lse_before[i]);
              }
          }
}

static void
check_llama_device_error (LscModel *model, const char *name, const LscCapturePlan *plan)
{
  g_autoptr(GError) error = NULL;
  const LscModelConfig *c = lsc_model_get_config (model);
  int vocab = c->vocab_size;
  const int n_ctx = 256;
  gint32 tokens[256];
  for (int i = 0; i < n_ctx; i++)
    tokens[i] = g_test_rand_int_range (0, vocab);
  LscSession *s[2];
  for (int b = 0; b < 2; b++)
    {
      LscSessionParams p;
      lsc_session_params_init (&p);
      p.backend = b == 0 ? LSC_BACKEND_CPU : LSC_BACKEND_CUDA;
      p.n_ctx = n_ctx;
      if (plan != NULL)
        p.capture = *plan;
      s[b] = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
      g_assert_cmpint (lsc_session_get_backend (s[b]), ==, p.backend);
    }
  const LscAttentionStore *a[2] = { lsc_session_get_attention (s[0]),
                                    lsc_session_get_attention (s[1]) };
  g_autofree float *l0 = g_new (float, (size_t) 32 * vocab);
  g_autofree float *l1 = g_new (float, (size_t) 32 * vocab);
  int pos = 24;
  for (int b = 0; b < 2; b++)
    g_assert_true (lsc_session_eval (s[b], tokens, pos, NULL, FALSE, NULL, NULL, &error));
  static const DeviceFault faults[] = {
    { "embed_kernel:1", 20 }, { "rmsnorm_kernel:3", 20 }, { "rope_kernel:4", 20 },
    { "attention_kernel:2", 20 }, { "swiglu_kernel:2", 20 },
    { "rmsnorm_kernel:1", 20 }, { "attention_kernel:1", 20 },
    { "decode_partial_kernel:1", 1 }, { "decode_merge_kernel:3", 1 }, { "rope_kernel:2", 1 },
    { "rmsnorm_kernel:6", 1 },
    { "decode_partial_kernel:2", 3 }, { "rmsnorm_kernel:5", 1 },
  };
  for (gsize f = 0; f < G_N_ELEMENTS (faults); f++)
    {
      int rows = a[1] != NULL ? lsc_attention_get_n_rows (a[1]) : 0;
      int row0 = a[1] != NULL ? lsc_attention_get_row_start (a[1]) : 0;
      g_autofree float *q_before = g_new (float, (size_t) (rows + 1) * c->n_layers * c->n_heads * c->head_dim);
      g_autofree float *lse_before = g_new (float, (size_t) (rows + 1) * c->n_layers * c->n_heads);
      if (a[1] != NULL)
        assert_same_store_rows (a[1], c, row0, row0 + rows, q_before, lse_before, TRUE);
      g_setenv ("LSC_CUDA_EMULATOR_FAIL_LAUNCH", faults[f].kernel, TRUE);
      gboolean ok = lsc_session_eval (s[1], tokens + pos, faults[f].n, l1, FALSE, NULL, NULL, &error);
      g_unsetenv ("LSC_CUDA_EMULATOR_FAIL_LAUNCH");
      if (ok)
        g_error ("%s: no failure with %s", name, faults[f].kernel);
      g_test_message ("%s: %s: %s", name, faults[f].kernel, error->message);
      g_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_DEVICE);
      g_clear_error (&error);
      g_assert_cmpint (lsc_session_get_pos (s[1]), ==, pos);
      if (a[1] != NULL)
        {
          g_assert_cmpint (lsc_attention_get_n_rows (a[1]), ==, rows);
          assert_same_store_rows (a[1], c, row0, row0 + rows, q_before, lse_before, FALSE);
        }
      /* then the same tokens, which the CPU runs for the first time */
      int m = faults[f].n;
      for (int b = 0; b < 2; b++)
        {
          g_assert_true (lsc_session_eval (s[b], tokens + pos, m, b ? l1 : l0, TRUE, NULL, NULL,
                                           &error));
          g_assert_no_error (error);
        }
      pos += m;
      double rel = max_rel_diff (l1, l0, (size_t) m * vocab);
      g_test_message ("%s after %s: CUDA vs CPU %.3g", name, faults[f].kernel, rel);
      /* rounding is ~1e-4 of the largest logit (tiny-qwen2's random weights
       * reach it on one block); a stale cache or row is off by far more */
      if (rel > 1e-3)
        g_error ("%s after %s: CUDA vs CPU %.3g", name, faults[f].kernel, rel);
    }
  if (a[1] != NULL)
    {
      int row0 = lsc_attention_get_row_start (a[1]);
      g_assert_cmpint (lsc_attention_get_n_rows (a[1]), ==, lsc_attention_get_n_rows (a[0]));
      int r1 = row0 + lsc_attention_get_n_rows (a[1]);
      size_t cells = (size_t) (r1 - row0) * pos;
      g_autofree float *t0 = g_new (float, MAX (cells, 1));
      g_autofree float *t1 = g_new (float, MAX (cells, 1));
      for (int l = 0; l < c->n_layers; l++)
        for (int h = 0; h < c->n_heads; h++)
          if (lsc_attention_has_head (a[1], l, h) && r1 > row0)
            {
              g_assert_true (lsc_attention_tile (a[0], l, h, row0, r1, 0, pos, 0.0f, t0, &error));
              g_assert_true (lsc_attention_tile (a[1], l, h, row0, r1, 0, pos, 0.0f, t1, &error));
              g_assert_no_error (error);
              assert_close (t1, t0, cells, 1e-3, 1e-6, "tile after device errors");
            }
    }
  lsc_session_free (s[0]);
  lsc_session_free (s[1]);
}
#endif

static void
test_llama_device_error (void)
{
  if (!have_device ())
    return;
#if LSC_CUDA_EMULATOR
  const char *const paths[] = { "models/stories260K/stories260K.bin", "models/random/tiny-qwen2" };
  for (gsize i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autoptr(LscModel) model = lsc_test_load_shared_model (paths[i]);
      if (model == NULL)
        continue;
      check_llama_device_error (model, paths[i], NULL);
      LscCapturePlan all = { .enabled = TRUE };
      check_llama_device_error (model, paths[i], &all);
      const int layers[] = { 0, 1 }, heads[] = { 1, 2 };
      LscCapturePlan some = { .enabled = TRUE, .layers = layers, .n_layers = 2, .heads = heads,
                              .n_heads = 2, .row_start = 30 };
      check_llama_device_error (model, paths[i], &some);
    }
#else
  g_test_skip ("a device error is injected by the emulator");
#endif
}

#if LSC_CUDA_EMULATOR
/* A session created, the device left with a few KiB: what runs later
 * (evaluations, tiles of every size, pyramids on the device) allocates
 * nothing more, or fails with a clear error and leaves the session whole. */
static void
test_llama_device_memory (void)
{
  if (!have_device ())
    return;
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_test_load_shared_model ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  const LscModelConfig *c = lsc_model_get_config (model);
  const int n_ctx = 1024, n = 600;
  g_autofree gint32 *tokens = g_new (gint32, n_ctx);
  for (int i = 0; i < n_ctx; i++)
    tokens[i] = g_test_rand_int_range (0, c->vocab_size);
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.backend = LSC_BACKEND_CUDA;
  p.n_ctx = n_ctx;
  p.capture.enabled = TRUE;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  size_t free_bytes = 0, total = 0;
  g_assert_cmpint (lsc_cuda_mem_info (context (), &free_bytes, &total, NULL), ==, LSC_STATUS_OK);
  g_autofree char *limit = g_strdup_printf ("%zu", total - free_bytes + 4096);
  g_setenv ("LSC_CUDA_EMULATOR_MEMORY", limit, TRUE);
  g_assert_true (lsc_session_eval (s, tokens, n, NULL, FALSE, NULL, NULL, &error));
  g_assert_no_error (error);
  const LscAttentionStore *a = lsc_session_get_attention (s);
  g_autofree float *tile = g_new (float, (size_t) n * n);
  g_assert_true (lsc_attention_tile (a, 1, 2, 0, n, 0, n, 0.0f, tile, &error));
  g_assert_no_error (error);
  g_autoptr(LscAttentionPyramid) pyr = NULL;
  LscHeadStats st;
  g_assert_true (lsc_attention_analyze (a, 1, 2, 4, &pyr, &st, &error));
  g_assert_no_error (error);
  g_assert_true (lsc_session_eval (s, tokens + n, 1, NULL, FALSE, NULL, NULL, &error));
  g_assert_no_error (error);
  g_unsetenv ("LSC_CUDA_EMULATOR_MEMORY");
}
#endif

#if LSC_CUDA_EMULATOR
/* Runs a job on the GPU with LSC_CUDA_EMULATOR_FAIL_LAUNCH = fail; returns
 * its results.json. */
static json_object *
run_failing_job (const char *name, const char *job, const char *fail, int *exit_status)
{
  g_autofree char *job_name = g_strdup_printf ("%s.json", name);
  g_autofree char *job_path = lsc_test_write_file (job_name, job, strlen (job));
  g_autofree char *out = g_build_filename (lsc_test_tmpdir (), name, NULL);
  LscBackend cuda = LSC_BACKEND_CUDA;
  g_setenv ("LSC_CUDA_EMULATOR_FAIL_LAUNCH", fail, TRUE);
  *exit_status = lsc_batch_run_file (job_path, out, &cuda, NULL, NULL);
  g_unsetenv ("LSC_CUDA_EMULATOR_FAIL_LAUNCH");
  g_autofree char *rpath = g_build_filename (out, "results.json", NULL);
  return json_object_from_file (rpath);
}

static const char *
json_string (json_object *o, const char *key)
{
  return json_object_get_string (json_object_object_get (o, key));
}
#endif

/* A batch job whose evaluation fails on the device part way (the second
 * retrieval sample, a decode step of a generation): exit status 1,
 * results.json "failed" with the device's error and what it stopped, and no
 * file that reads as a finished result (retrieval_heads.json, whose layout
 * cannot say that samples are missing). */
static void
test_batch_device_error (void)
{
  if (!have_device ())
    return;
#if LSC_CUDA_EMULATOR
  static const char hay[] =
    "the sun was warm and the sea was calm. a small cat sat on the wall, and a dog ran to the "
    "gate. we had bread, milk and tea in the old room. the wind came over the hill at night. "
    "she said it was late, so they went home. rain fell on the roof and the road was wet. "
    "in the morning the birds sang in the tall trees. he read a book by the fire. ";
  g_autofree char *hay_path = lsc_test_write_file ("hay.txt", hay, strlen (hay));
  g_autofree char *job =
    g_strdup_printf ("{\"model\": \"demo:induction\", \"threads\": 1, \"retrieval\": {"
                     "\"haystack_file\": \"%s\", \"needles\": [{\"needle\": \"\\n#7KZ9 X4W8 "
                     "M2P6%%\\n\", \"question\": \"What is the code?\", \"answer\": "
                     "\"KZ9 X4W8 M2P6\"}], \"context_lengths\": {\"min\": 200, \"max\": 400, "
                     "\"n\": 2}, \"depths\": [0, 100], \"buffer_tokens\": 64, "
                     "\"cue_tokens\": 3, \"max_tokens\": 24}}", hay_path);
  int status;
  /* the first sample's 24 decode steps launch 48 split kernels */
  g_autoptr(json_object) res = run_failing_job ("retrieval-fail", job, "decode_partial_kernel:60",
                                                &status);
  g_assert_nonnull (res);
  g_assert_cmpint (status, ==, 1);
  g_assert_cmpstr (json_string (res, "status"), ==, "failed");
  g_assert_nonnull (strstr (json_string (res, "error"), "CUDA: device error while attending"));
  g_assert_nonnull (strstr (json_string (res, "error"), "retrieval sample 2"));
  json_object *r = json_object_object_get (res, "retrieval");
  g_assert_cmpstr (json_string (r, "status"), ==, "incomplete");
  g_assert_cmpint (json_object_get_int (json_object_object_get (r, "n_samples")), ==, 1);
  g_assert_null (json_object_object_get (r, "reference_file"));
  g_autofree char *heads = g_build_filename (lsc_test_tmpdir (), "retrieval-fail",
                                             "retrieval_heads.json", NULL);
  g_assert_false (g_file_test (heads, G_FILE_TEST_EXISTS));

  const char *gen = "{\"model\": \"demo:induction\", \"threads\": 1, \"prompt\": \"the sun was "
                    "warm and the sea\", \"max_tokens\": 20, \"capture\": {\"stats\": true}}";
  g_autoptr(json_object) g = run_failing_job ("generation-fail", gen, "decode_partial_kernel:9",
                                              &status);
  g_assert_nonnull (g);
  g_assert_cmpint (status, ==, 1);
  g_assert_cmpstr (json_string (g, "status"), ==, "failed");
  g_assert_nonnull (strstr (json_string (g, "error"), "CUDA: device error while attending"));
  g_assert_null (json_object_object_get (g, "attention"));
  g_assert_null (json_object_object_get (g, "tensors_file"));
#else
  g_test_skip ("a device error is injected by the emulator");
#endif
}

/* A session the GPU cannot hold stops before uploading anything, with what
 * it needs and what is free: the emulator is told it has 4 MiB, a GPU is
 * filled but for 4 MiB. */
static void
test_backend_memory (void)
{
  if (!have_device ())
    return;
  g_autoptr(GError) error = NULL;
  LscModelConfig config;
  g_assert_true (lsc_model_config_init_shape (&config, "stories260K-shape"));
  g_autoptr(LscModel) model = lsc_model_new_synthetic (&config, LSC_DTYPE_F32, 7, &error);
  g_assert_no_error (error);
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.n_ctx = 4096;
  /* the session's estimate: 5 MiB of KV cache, 4096-token buffers */
  LscEstimateParams ep;
  lsc_estimate_params_init (&ep);
  ep.session = p;
  ep.session.backend = LSC_BACKEND_CUDA;
  ep.prefill_gflops = ep.decode_gbps = 1;
  LscEstimate est;
  g_assert_true (lsc_estimate_run (model, &ep, &est, &error));
  g_autofree char *need = g_format_size_full (est.device_bytes, G_FORMAT_SIZE_IEC_UNITS);
  g_autofree char *want = g_strdup_printf ("the session needs %s of device memory for a context "
                                           "of 4096 tokens, and ", need);
  void *hog = NULL;
#if LSC_CUDA_EMULATOR
  g_setenv ("LSC_CUDA_EMULATOR_MEMORY", "4194304", TRUE);
#else
  size_t free_bytes = 0;
  g_assert_cmpint (lsc_cuda_mem_info (context (), &free_bytes, NULL, NULL), ==, LSC_STATUS_OK);
  g_assert_cmpint (lsc_cuda_alloc (context (), &hog, free_bytes - (4 << 20)), ==, LSC_STATUS_OK);
#endif
  for (int b = 0; b < 2; b++)
    {
      p.backend = b ? LSC_BACKEND_CUDA : LSC_BACKEND_AUTO;
      g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
      g_assert_null (s);
      lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_OUT_OF_MEMORY, want,
                             "free: shorten the context or run on the CPU", NULL);
      g_clear_error (&error);
    }
#if LSC_CUDA_EMULATOR
  g_unsetenv ("LSC_CUDA_EMULATOR_MEMORY");
#endif
  lsc_cuda_free (context (), hog);
  /* with the memory back, the same session runs on the GPU */
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s), ==, LSC_BACKEND_CUDA);
}

/* Shared memory per block: a head size whose tiles a GPU cannot hold (a
 * T4's 64 KiB at head_dim 128) runs on the CPU with the reason, like
 * anything the backend does not run, and the estimate agrees; with 99 KiB
 * (an RTX 4090) the values share the keys' tile and the logits match the
 * CPU's. Emulator only: its limit can be set. */
static void
test_backend_shared_memory (void)
{
  if (!have_device ())
    return;
#if LSC_CUDA_EMULATOR
  g_autoptr(GError) error = NULL;
  LscModelConfig config;
  g_assert_true (lsc_model_config_init_shape (&config, "stories260K-shape"));
  config.head_dim = 128;   /* explicit, above dim / n_heads */
  g_autoptr(LscModel) model = lsc_model_new_synthetic (&config, LSC_DTYPE_F32, 7, &error);
  g_assert_no_error (error);
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.n_ctx = 128;

  g_setenv ("LSC_CUDA_EMULATOR_SHARED", "65536", TRUE);
  for (int b = 0; b < 2; b++)
    {
      p.backend = b ? LSC_BACKEND_CUDA : LSC_BACKEND_AUTO;
      g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
      g_assert_cmpint (lsc_session_get_backend (s), ==, LSC_BACKEND_CPU);
      g_assert_cmpstr (lsc_session_get_backend_note (s), ==,
                       "attention of head_dim 128 needs 84 KiB of shared memory per block, and "
                       "the GPU allows 64 KiB");
    }
  /* the estimate says so too */
  LscEstimateParams ep;
  lsc_estimate_params_init (&ep);
  ep.session = p;
  ep.prefill_gflops = ep.decode_gbps = 1;
  LscEstimate est;
  g_assert_true (lsc_estimate_run (model, &ep, &est, &error));
  g_assert_cmpint (est.backend, ==, LSC_BACKEND_CPU);

  g_setenv ("LSC_CUDA_EMULATOR_SHARED", "101376", TRUE);
  gint32 tokens[70];
  for (int i = 0; i < 70; i++)
    tokens[i] = 1 + (i * 37) % 500;
  int vocab = config.vocab_size;
  g_autofree float *logits = g_new (float, (size_t) 2 * 70 * vocab);
  for (int b = 0; b < 2; b++)
    {
      p.backend = b ? LSC_BACKEND_CUDA : LSC_BACKEND_CPU;
      g_autoptr(LscSession) sb = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
      g_assert_true (lsc_session_eval (sb, tokens, 70, logits + (size_t) b * 70 * vocab, TRUE,
                                       NULL, NULL, &error));
      g_assert_no_error (error);
    }
  g_unsetenv ("LSC_CUDA_EMULATOR_SHARED");
  double diff = max_rel_diff (logits + (size_t) 70 * vocab, logits, (size_t) 70 * vocab);
  g_assert_cmpfloat (diff, <, 1e-5);
#else
  g_test_skip ("the emulator's shared memory limit can be set, a GPU's cannot");
#endif
}

#endif /* LSC_HAVE_CUDA */

/* ---- backend selection (runs everywhere) ---- */

static float
half_scale (G_GNUC_UNUSED gpointer data, G_GNUC_UNUSED int layer, G_GNUC_UNUSED int head,
            G_GNUC_UNUSED int pos)
{
  return 0.5f;
}

static void
hide_first (G_GNUC_UNUSED gpointer data, G_GNUC_UNUSED int layer, G_GNUC_UNUSED int head, int pos,
            guint8 *hidden)
{
  if (pos > 0)
    hidden[0] = 1;
}

static void
test_backend_selection (void)
{
  g_autoptr(GError) error = NULL;
  LscModelConfig config;
  g_assert_true (lsc_model_config_init_shape (&config, "stories260K-shape"));
  config.hidden_dim = 192;   /* Q8_0 needs widths that are multiples of 32 */
  g_autoptr(LscModel) model = lsc_model_new_synthetic (&config, LSC_DTYPE_F32, 7, &error);
  g_autoptr(LscModel) q8 = lsc_model_new_synthetic (&config, LSC_DTYPE_Q8_0, 7, &error);
  g_assert_no_error (error);

  LscBackend b;
  g_assert_true (lsc_backend_from_string ("cuda", &b) && b == LSC_BACKEND_CUDA);
  g_assert_false (lsc_backend_from_string ("gpu", &b));
  g_assert_cmpstr (lsc_backend_name (LSC_BACKEND_AUTO), ==, "auto");

  gboolean device = FALSE;
#if LSC_HAVE_CUDA
  int n = 0;
  device = lsc_cuda_device_count (&n) == LSC_STATUS_OK && n > 0;
#endif

  LscSessionParams p;
  lsc_session_params_init (&p);
  g_assert_cmpint (p.backend, ==, LSC_BACKEND_CPU);

  /* auto: CUDA exactly when there is a device */
  p.backend = LSC_BACKEND_AUTO;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s), ==, device ? LSC_BACKEND_CUDA : LSC_BACKEND_CPU);
  g_assert_true ((lsc_session_get_backend_note (s) == NULL) == device);
  g_assert_true ((lsc_backend_cuda_unavailable () == NULL) == device);
  if (!device)
    g_assert_cmpstr (lsc_session_get_backend_note (s), ==, lsc_backend_cuda_unavailable ());
  guint64 peak = 0;
  g_assert_true (lsc_session_get_device_memory (s, &peak) == device);

  /* cuda without a device: an error that says so */
  p.backend = LSC_BACKEND_CUDA;
  g_autoptr(LscSession) s2 = lsc_session_new (model, &p, &error);
  if (device)
    g_assert_no_error (error);
  else
    {
      g_assert_null (s2);
      lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "CUDA backend", NULL);
      g_clear_error (&error);
    }

  /* what the GPU does not run falls back to the CPU, with the reason */
  p.backend = LSC_BACKEND_AUTO;
  g_autoptr(LscSession) s3 = lsc_session_new (q8, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s3), ==, LSC_BACKEND_CPU);
  g_assert_nonnull (strstr (lsc_session_get_backend_note (s3),
                            device ? "Q8_0 weights" : "CUDA"));

  /* a scale hook (a plugin's temperature) runs on the GPU when asked for by
   * name; auto keeps it on the CPU until the scale-hook cases have passed on
   * a device */
  p.hooks.scale = half_scale;
  g_autoptr(LscSession) s4 = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s4), ==, LSC_BACKEND_CPU);
  g_assert_nonnull (strstr (lsc_session_get_backend_note (s4),
                            device ? "logit scales (plugins) have not been checked" : "CUDA"));
  if (device)
    {
      p.backend = LSC_BACKEND_CUDA;
      g_autoptr(LscSession) s4b = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
      g_assert_cmpint (lsc_session_get_backend (s4b), ==, LSC_BACKEND_CUDA);
      g_assert_null (lsc_session_get_backend_note (s4b));
      p.backend = LSC_BACKEND_AUTO;
    }

  /* a mask hook does not: the CPU, saying so */
  p.hooks.mask_row = hide_first;
  g_autoptr(LscSession) s5 = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s5), ==, LSC_BACKEND_CPU);
  g_assert_nonnull (strstr (lsc_session_get_backend_note (s5),
                            device ? "attention mask hooks" : "CUDA"));
}

#if LSC_CUDA_EMULATOR
/* A driver older than the runtime, or a GPU older than the oldest
 * architecture built for (compute_75), is no device: the reason, word for
 * word, in the note of an auto session (which runs on the CPU) and in the
 * error of a cuda one. Each case in a process of its own, the device count
 * being asked once per process; 7.5 itself is a device. */
static void
test_backend_unusable (void)
{
  static const struct { const char *var, *value, *says; } cases[] = {
    { "LSC_CUDA_EMULATOR_DRIVER", "12020",
      "the NVIDIA driver supports CUDA 12.2, older than the CUDA 13.0 this build uses "
      "(update the driver)" },
    { "LSC_CUDA_EMULATOR_CAPABILITY", "7.0",
      "the GPU (Longscope CUDA emulator (CPU)) has compute capability 7.0; this build's kernels "
      "need 7.5 or newer" },
    { "LSC_CUDA_EMULATOR_CAPABILITY", "7.5", "" },
  };
  if (g_test_subprocess ())
    {
      const char *says = g_getenv ("LSC_TEST_UNUSABLE");
      g_autoptr(GError) error = NULL;
      LscModelConfig config;
      g_assert_true (lsc_model_config_init_shape (&config, "stories260K-shape"));
      g_autoptr(LscModel) model = lsc_model_new_synthetic (&config, LSC_DTYPE_F32, 7, &error);
      g_assert_no_error (error);
      LscSessionParams p;
      lsc_session_params_init (&p);
      p.backend = LSC_BACKEND_AUTO;
      g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
      if (*says == '\0')
        {
          g_assert_null (lsc_backend_cuda_unavailable ());
          g_assert_cmpint (lsc_session_get_backend (s), ==, LSC_BACKEND_CUDA);
          return;
        }
      g_assert_cmpstr (lsc_backend_cuda_unavailable (), ==, says);
      g_assert_cmpint (lsc_session_get_backend (s), ==, LSC_BACKEND_CPU);
      g_assert_cmpstr (lsc_session_get_backend_note (s), ==, says);
      p.backend = LSC_BACKEND_CUDA;
      g_assert_null (lsc_session_new (model, &p, &error));
      g_autofree char *want = g_strdup_printf ("the CUDA backend was asked for, but %s", says);
      g_assert_cmpstr (error->message, ==, want);
      return;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_setenv (cases[i].var, cases[i].value, TRUE);
      g_setenv ("LSC_TEST_UNUSABLE", cases[i].says, TRUE);
      g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
      g_unsetenv (cases[i].var);
      g_unsetenv ("LSC_TEST_UNUSABLE");
      g_test_trap_assert_passed ();
    }
}
#endif

/* The tests to add: all, or those under the prefixes given as arguments
 * (the emulated build runs the suite in parts; GLib's -p skips tests under a
 * suite that holds both tests and suites). */
static const char *const *only;

static gboolean
wanted (const char *path)
{
  if (only == NULL || only[0] == NULL)
    return TRUE;
  for (const char *const *p = only; *p != NULL; p++)
    if (g_str_has_prefix (path, *p))
      return TRUE;
  return FALSE;
}

static void
add_func (const char *path, GTestFunc fn)
{
  if (wanted (path))
    g_test_add_func (path, fn);
}

static G_GNUC_UNUSED void   /* unused without CUDA */
add_data_func (const char *path, gconstpointer data, GTestDataFunc fn)
{
  if (wanted (path))
    g_test_add_data_func (path, data, fn);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  only = (const char *const *) argv + 1;   /* what g_test_init () left: prefixes */
  add_func ("/cuda/backend/selection", test_backend_selection);
#if LSC_HAVE_CUDA
  add_func ("/cuda/kernels/gemm", test_gemm);
  add_func ("/cuda/kernels/embed", test_embed);
  add_func ("/cuda/kernels/rmsnorm", test_rmsnorm);
  add_func ("/cuda/kernels/rope", test_rope);
  add_func ("/cuda/kernels/bias-swiglu", test_bias_swiglu);
  add_func ("/cuda/kernels/softmax", test_softmax);
  add_func ("/cuda/kernels/attention", test_attention);
  static const char *const shared[] = {
    "models/stories260K/stories260K.bin", "models/stories260K/stories260K.gguf",
    "models/random/tiny-llama", "models/random/tiny-llama/tiny-llama.f32.gguf",
    "models/random/tiny-qwen2", "models/random/tiny-qwen2/tiny-qwen2.f32.gguf",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (shared); i++)
    {
      g_autofree char *name = g_strdup_printf ("/cuda/models/%s", shared[i] + strlen ("models/"));
      add_data_func (name, shared[i], test_model_shared);
    }
  static const char *const fixtures[] = {
    "llama-head-dim", "llama-rope-dynamic", "llama-rope-linear", "llama-rope-llama3",
    "llama-rope-none", "llama-rope-yarn", "mistral-sliding-window", "qwen2-bf16",
    "qwen2-sliding-window",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (fixtures); i++)
    {
      g_autofree char *name = g_strdup_printf ("/cuda/models/fixture/%s", fixtures[i]);
      add_data_func (name, fixtures[i], test_model_fixture);
    }
  static const char *const scaled[] = { "models/stories260K/stories260K.bin",
                                        "models/random/tiny-llama" };
  for (gsize i = 0; i < G_N_ELEMENTS (scaled); i++)
    {
      g_autofree char *name = g_strdup_printf ("/cuda/models/scale-hook/%s",
                                               scaled[i] + strlen ("models/"));
      add_data_func (name, scaled[i], test_model_scaled);
    }
  add_func ("/cuda/capture", test_capture);
  add_func ("/cuda/kernels/attention-tile", test_map_tile);
  add_func ("/cuda/kernels/attention-tile-tall", test_map_tile_tall);
  add_func ("/cuda/kernels/attention-pool", test_map_pool);
  static const char *const mapped[] = { "models/stories260K/stories260K.bin",
                                        "models/random/tiny-llama", "models/random/tiny-qwen2" };
  for (gsize i = 0; i < G_N_ELEMENTS (mapped); i++)
    {
      g_autofree char *name = g_strdup_printf ("/cuda/maps/%s", mapped[i] + strlen ("models/"));
      add_data_func (name, mapped[i], test_maps_shared);
    }
  add_func ("/cuda/maps/fixture/mistral-sliding-window", test_maps_fixture);
  add_func ("/cuda/maps/scale-hook/stories260K", test_maps_scaled);
  add_func ("/cuda/kernels/ssm-conv", test_ssm_conv);
  add_func ("/cuda/kernels/ssm-dt", test_ssm_dt);
  add_func ("/cuda/kernels/ssm-scan", test_ssm_scan);
  add_func ("/cuda/kernels/ssm-gated-norm", test_ssm_gated_norm);
  add_func ("/cuda/ssm/fixture/tiny-mamba2", test_ssm_fixture);
  add_func ("/cuda/ssm/splits", test_ssm_splits);
  add_func ("/cuda/ssm/device-error", test_ssm_device_error);
  static const char *const mambas[] = { "models/random/tiny-mamba",
                                        "models/random/tiny-mamba/tiny-mamba.f32.gguf" };
  for (gsize i = 0; i < G_N_ELEMENTS (mambas); i++)
    {
      g_autofree char *name = g_strdup_printf ("/cuda/ssm/%s", mambas[i] + strlen ("models/"));
      add_data_func (name, mambas[i], test_ssm_shared);
    }
  add_func ("/cuda/llama/device-error", test_llama_device_error);
#if LSC_CUDA_EMULATOR
  add_func ("/cuda/llama/device-memory", test_llama_device_memory);
#endif
  add_func ("/cuda/batch/device-error", test_batch_device_error);
  add_func ("/cuda/backend/memory", test_backend_memory);
  add_func ("/cuda/backend/shared-memory", test_backend_shared_memory);
#if LSC_CUDA_EMULATOR
  add_func ("/cuda/backend/unusable", test_backend_unusable);
#endif
#endif
  return g_test_run ();
}
