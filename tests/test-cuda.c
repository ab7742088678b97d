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
 *     to bf16 within 1e-2; capture (queries, normalisers, exact tiles);
 *   - backend selection, which also runs without a device.
 *
 * Tests that need a device skip without one (or in a build without CUDA).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-cuda.h"
#include "lsc-error.h"
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
  for (gsize di = 0; di < G_N_ELEMENTS (dtypes); di++)
    for (gsize si = 0; si < G_N_ELEMENTS (shapes); si++)
      {
        LscDType dt = dtypes[di];
        int T = shapes[si][0], d = shapes[si][1], n = shapes[si][2];
        int ldx = n + shapes[si][3], ldy = d + shapes[si][3];
        g_autofree float *x = random_floats ((size_t) T * ldx, 1.0f);
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
          g_assert_cmpint (lsc_cuda_alloc (context (), &half, (size_t) 2 * T * n * 2), ==,
                           LSC_STATUS_OK);
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
                if (err > (dt == LSC_DTYPE_F32 ? 1e-5 : 2e-5) * mag + 1e-7)
                  g_error ("gemm %s T=%d d=%d n=%d: y[%d][%d] = %.9g, expected %.9g",
                           lsc_dtype_name (dt), T, d, n, t, i, y[(size_t) t * ldy + i], ref);
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
 * normaliser of the same q and k. */
static void
attention_ref (float *out, double *lse64, const float *q, int ldq, const float *keys,
               const float *values, int start, int T, int n_heads, int n_kv_heads, int hd,
               int window, float scale)
{
  int kv_dim = n_kv_heads * hd, group = n_heads / n_kv_heads;
  g_autofree float *att = g_new (float, start + T);
  g_autofree double *x64 = g_new (double, start + T);
  for (int t = 0; t < T; t++)
    for (int h = 0; h < n_heads; h++)
      {
        int pos = start + t, first = window > 0 ? MAX (0, pos - window + 1) : 0;
        const float *qh = q + (size_t) t * ldq + h * hd;
        double mx = -INFINITY, sum = 0.0;
        for (int j = first; j <= pos; j++)
          {
            const float *k = keys + (size_t) j * kv_dim + (h / group) * hd;
            double dot = 0.0;
            for (int d = 0; d < hd; d++)
              dot += (double) qh[d] * k[d];
            x64[j] = dot * scale;
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
  /* n_heads, n_kv_heads, head_dim, start, T, window */
  const int cases[][6] = {
    { 4, 2, 8, 0, 5, 0 },     { 4, 4, 64, 0, 130, 0 }, { 8, 2, 64, 70, 67, 0 },
    { 2, 1, 128, 0, 200, 50 }, { 3, 3, 100, 10, 65, 0 }, { 4, 2, 64, 300, 1, 0 },
    { 2, 2, 16, 0, 1, 0 },     { 2, 1, 64, 1000, 3, 17 }, { 4, 1, 128, 20000, 2, 0 },
    { 2, 2, 64, 5000, 4, 3000 },
  };
  for (gsize ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    for (int refine = 0; refine <= 1; refine++)
      {
        int nh = cases[ci][0], nkv = cases[ci][1], hd = cases[ci][2];
        int start = cases[ci][3], T = cases[ci][4], window = cases[ci][5];
        int q_dim = nh * hd, kv_dim = nkv * hd, ldq = q_dim + 3, n_keys = start + T;
        float scale = 1.0f / sqrtf ((float) hd);
        /* queries and keys of scale 3: peaked rows, large logits */
        g_autofree float *q = random_floats ((size_t) T * ldq, 3.0f);
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
        /* few rows without refine take the split (decode) kernel */
        void *work = NULL;
        size_t work_bytes = lsc_cuda_attention_workspace (T, nh, hd);
        if (work_bytes > 0)
          g_assert_cmpint (lsc_cuda_alloc (context (), &work, work_bytes), ==, LSC_STATUS_OK);
        g_assert_cmpint (lsc_cuda_attention (context (), dout, q_dim, dlse, dq, ldq, dk, dv, start,
                                             T, nh, nkv, hd, window, scale, refine, work), ==,
                         LSC_STATUS_OK);
        g_autofree float *out = take_floats (dout, (size_t) T * q_dim);
        g_autofree float *lse = take_floats (dlse, (size_t) nh * T);
        assert_finite (out, (size_t) T * q_dim, "attention");
        g_autofree float *ref = g_new (float, (size_t) T * q_dim);
        g_autofree double *lse64 = g_new (double, (size_t) nh * T);
        attention_ref (ref, lse64, q, ldq, k, v, start, T, nh, nkv, hd, window, scale);
        assert_close (out, ref, (size_t) T * q_dim, 1e-4, 1e-5, "attention");
        for (int i = 0; i < nh * T; i++)
          {
            /* refined: the float64 normaliser to float rounding; else float sums */
            double tol = refine ? 1e-6 + 1.2e-7 * fabs (lse64[i]) : 2e-5;
            if (fabs (lse[i] - lse64[i]) > tol)
              g_error ("attention case %zu refine %d: lse[%d] = %.9g, float64 %.9g", ci, refine, i,
                       lse[i], lse64[i]);
          }
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

/* Logits of a prompt (all positions) and of 6 decode steps after it, on
 * `backend`; returns (n + 6, vocab). */
static float *
run_logits (LscModel *model, LscBackend backend, const gint32 *tokens, int n, int n_ctx)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.backend = backend;
  p.n_ctx = n_ctx;
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
check_model_parity (const char *path, const char *name)
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
      g_autofree float *cpu = run_logits (cast, LSC_BACKEND_CPU, tokens, n, 512);
      g_autofree float *gpu = run_logits (cast, LSC_BACKEND_CUDA, tokens, n, 512);
      double rel = max_rel_diff (gpu, cpu, (size_t) (n + 6) * vocab);
      double tol = dtypes[di] == LSC_DTYPE_F32 ? 1e-4 : 1e-2;
      g_test_message ("%s as %s: CUDA vs CPU max relative difference %.3g (tolerance %g)", name,
                      lsc_dtype_name (dtypes[di]), rel, tol);
      if (g_test_verbose ())
        g_printerr ("  %-32s %-5s %.3g\n", name, lsc_dtype_name (dtypes[di]), rel);
      g_assert_cmpfloat (rel, <=, tol);
    }
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

static void
test_model_fixture (gconstpointer data)
{
  if (!have_device ())
    return;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf", data, NULL);
  check_model_parity (dir, data);
}

/* Capture on the GPU stores what the CPU stores: queries, normalisers, and so
 * the same exact tiles; some heads of two layers (a copy per head) and every
 * head of one layer (one copy of whole rows). */
static void
check_capture (LscModel *model, const int *layers, int n_layers, const int *heads, int n_heads)
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
      s[b] = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
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
            g_assert_cmpfloat_with_epsilon (lse1, lse0, 1e-4);
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
  g_autoptr(GError) error = NULL;
  g_autofree char *path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (path == NULL)
    return;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  const int some_layers[] = { 0, 3 }, some_heads[] = { 1, 2, 7 }, one_layer[] = { 4 };
  check_capture (model, some_layers, 2, some_heads, 3);
  check_capture (model, one_layer, 1, NULL, 0);
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

  p.hooks.scale = half_scale;
  g_autoptr(LscSession) s4 = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s4), ==, LSC_BACKEND_CPU);
  g_assert_nonnull (strstr (lsc_session_get_backend_note (s4), device ? "hooks" : "CUDA"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cuda/backend/selection", test_backend_selection);
#if LSC_HAVE_CUDA
  g_test_add_func ("/cuda/kernels/gemm", test_gemm);
  g_test_add_func ("/cuda/kernels/embed", test_embed);
  g_test_add_func ("/cuda/kernels/rmsnorm", test_rmsnorm);
  g_test_add_func ("/cuda/kernels/rope", test_rope);
  g_test_add_func ("/cuda/kernels/bias-swiglu", test_bias_swiglu);
  g_test_add_func ("/cuda/kernels/softmax", test_softmax);
  g_test_add_func ("/cuda/kernels/attention", test_attention);
  static const char *const shared[] = {
    "models/stories260K/stories260K.bin", "models/stories260K/stories260K.gguf",
    "models/random/tiny-llama", "models/random/tiny-llama/tiny-llama.f32.gguf",
    "models/random/tiny-qwen2", "models/random/tiny-qwen2/tiny-qwen2.f32.gguf",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (shared); i++)
    {
      g_autofree char *name = g_strdup_printf ("/cuda/models/%s", shared[i] + strlen ("models/"));
      g_test_add_data_func (name, shared[i], test_model_shared);
    }
  static const char *const fixtures[] = {
    "llama-head-dim", "llama-rope-dynamic", "llama-rope-linear", "llama-rope-llama3",
    "llama-rope-none", "llama-rope-yarn", "mistral-sliding-window", "qwen2-bf16",
    "qwen2-sliding-window",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (fixtures); i++)
    {
      g_autofree char *name = g_strdup_printf ("/cuda/models/fixture/%s", fixtures[i]);
      g_test_add_data_func (name, fixtures[i], test_model_fixture);
    }
  g_test_add_func ("/cuda/capture", test_capture);
#endif
  return g_test_run ();
}
