/* SPDX-License-Identifier: MIT
 *
 * Fast CPU kernels: the hot loops of the batched forward (lsc-llama-fast.c)
 * written so that GCC vectorizes them. Each has a reference twin in
 * lsc-cpu-ref.c / lsc-convert.c and a test against it on random inputs
 * (tests/test-fast-kernels.c):
 *
 *   lsc_fast_xwt_rows    ~ lsc_dot_row      (row dots of a weight matrix)
 *   lsc_fast_to_f32      ~ lsc_to_f32       (bit-exact)
 *   lsc_fast_attend_one  ~ the attention loop of forward_token () in
 *                          lsc-llama.c (lsc_softmax_lse between two plain loops)
 *
 * How they vectorize without -ffast-math: a dot product keeps 16 independent
 * partial sums (acc[16]), which GCC turns into SIMD accumulators; a stored
 * row is widened a chunk at a time into a small stack buffer of floats first
 * (a shift for bf16, vcvtph2ps for f16 where the CPU has F16C), then dotted.
 * The sums are in a different order than the reference's sequential one, so
 * results agree to rounding (a few ulp of the sum of |terms|), not bit for
 * bit; conversions are exact.
 *
 * On x86-64 the hot functions are compiled three times (GCC function
 * multiversioning: x86-64-v4 = AVX-512, x86-64-v3 = AVX2 + FMA + F16C, and
 * the baseline) and the loader picks the best the CPU has; the binary runs on
 * any x86-64.
 *
 * No allocation, no printing, no threads: callers split rows across threads.
 */
#include "config.h"

#include "lsc-kernels.h"

#include <string.h>

#if defined (__x86_64__) && defined (__GNUC__) && !defined (__clang__) && !defined (__SANITIZE_ADDRESS__)
#define LSC_CLONES __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LSC_CLONES
#endif

#define CHUNK 256     /* columns widened at a time; a multiple of 16 and of the Q8_0 block */

#if defined (__x86_64__) && defined (__GNUC__)
#include <immintrin.h>

/* out (m) <- m halves, 8 at a time with F16C's vcvtph2ps. GCC 12 does not
 * vectorize a loop of _Float16 -> float conversions (one conversion per
 * element: f16 decode ran at a third of bf16's speed). */
__attribute__ ((target ("avx,f16c"))) static void
f16_row_f16c (float *out, const uint16_t *in, int m)
{
  int k = 0;
  for (; k + 8 <= m; k += 8)
    _mm256_storeu_ps (out + k, _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) (in + k))));
  for (; k < m; k++)
    out[k] = _cvtsh_ss (in[k]);
}

/* out (32 nb) <- nb q8_0 blocks: each scale widened by F16C, its 32 int8
 * quants 8 at a time (the portable loop below calls lsc_f16_to_f32_1 per
 * block and left q8_0 decode at a sixth of its bandwidth floor). */
__attribute__ ((target ("avx2,f16c"))) static void
q8_0_row_f16c (float *out, const LscBlockQ8_0 *b, int nb)
{
  for (int q = 0; q < nb; q++)
    {
      __m256 d = _mm256_set1_ps (_cvtsh_ss (b[q].d));
      for (int k = 0; k < LSC_Q8_0_BLOCK; k += 8)
        {
          __m128i i8 = _mm_loadl_epi64 ((const __m128i *) (b[q].qs + k));
          __m256 v = _mm256_cvtepi32_ps (_mm256_cvtepi8_epi32 (i8));
          _mm256_storeu_ps (out + q * LSC_Q8_0_BLOCK + k, _mm256_mul_ps (d, v));
        }
    }
}

static int
have_f16c (void)
{
  static int have = -1;
  if (have < 0)
    have = __builtin_cpu_supports ("f16c") && __builtin_cpu_supports ("avx2");
  return have;
}
#endif
#define LANES 16      /* independent partial sums of a dot product */

/* Elements [j, j + m) of a stored row as floats: a pointer into the row for
 * f32, else widened into buf (m). For q8_0, j and m are multiples of 32. */
static inline const float *
chunk_f32 (float *buf, const void *row, LscDType dtype, int j, int m)
{
  switch (dtype)
    {
    case LSC_DTYPE_F32:
      return (const float *) row + j;
    case LSC_DTYPE_BF16:
      {
        const uint16_t *r = (const uint16_t *) row + j;
        for (int k = 0; k < m; k++)
          {
            uint32_t u = (uint32_t) r[k] << 16;
            memcpy (&buf[k], &u, sizeof u);
          }
        return buf;
      }
    case LSC_DTYPE_F16:
      {
        const uint16_t *r = (const uint16_t *) row + j;
#if defined (__x86_64__) && defined (__GNUC__)
        if (have_f16c ())
          {
            f16_row_f16c (buf, r, m);
            return buf;
          }
#endif
#if defined (__FLT16_MAX__)
        for (int k = 0; k < m; k++)
          {
            _Float16 h;
            memcpy (&h, &r[k], sizeof h);
            buf[k] = (float) h;
          }
#else
        for (int k = 0; k < m; k++)
          buf[k] = lsc_f16_to_f32_1 (r[k]);
#endif
        return buf;
      }
    case LSC_DTYPE_Q8_0:
      {
        const LscBlockQ8_0 *b = (const LscBlockQ8_0 *) row + j / LSC_Q8_0_BLOCK;
#if defined (__x86_64__) && defined (__GNUC__)
        if (have_f16c ())
          {
            q8_0_row_f16c (buf, b, m / LSC_Q8_0_BLOCK);
            return buf;
          }
#endif
        for (int q = 0; q < m / LSC_Q8_0_BLOCK; q++)
          {
            float d = lsc_f16_to_f32_1 (b[q].d);
            for (int k = 0; k < LSC_Q8_0_BLOCK; k++)
              buf[q * LSC_Q8_0_BLOCK + k] = d * b[q].qs[k];
          }
        return buf;
      }
    case LSC_DTYPE_I32:
    case LSC_DTYPE_I64:
    case LSC_DTYPE_N_TYPES:
      break;
    }
  memset (buf, 0, (size_t) m * sizeof (float));
  return buf;
}

/* sum of acc (LANES), pairwise */
static inline float
reduce_lanes (const float *acc)
{
  float s8[8];
  for (int u = 0; u < 8; u++)
    s8[u] = acc[u] + acc[u + 8];
  for (int u = 0; u < 4; u++)
    s8[u] += s8[u + 4];
  return (s8[0] + s8[2]) + (s8[1] + s8[3]);
}

LSC_CLONES void
lsc_fast_xwt_rows (float *y, int ldy, const float *x, int ldx, int T, const void *w,
                   LscDType dtype, int n, int row0, int n_rows)
{
  size_t row_bytes = lsc_dtype_row_bytes (dtype, (size_t) n);
  float buf[CHUNK];                             /* (CHUNK) one widened chunk of a row */
  float acc[LSC_FAST_MAX_T][LANES];             /* (T, LANES) partial sums */
  float tail[LSC_FAST_MAX_T];                   /* (T) sums of the columns past n & ~15 */

  if (dtype == LSC_DTYPE_BF16 && T == 1)
    {
      /* decode over bf16: widen and multiply in one pass, no buffer */
      int n16 = n & ~(LANES - 1);
      for (int i = 0; i < n_rows; i++)
        {
          const uint16_t *r = (const uint16_t *) ((const uint8_t *) w + (size_t) (row0 + i) * row_bytes);
          float a[LANES] = { 0 };
          float t1 = 0.0f;
          for (int k = 0; k < n16; k += LANES)
            for (int u = 0; u < LANES; u++)
              {
                uint32_t bits = (uint32_t) r[k + u] << 16;
                float v;
                memcpy (&v, &bits, sizeof v);
                a[u] += v * x[k + u];
              }
          for (int k = n16; k < n; k++)
            t1 += lsc_bf16_to_f32_1 (r[k]) * x[k];
          y[i] = reduce_lanes (a) + t1;
        }
      return;
    }

  for (int i = 0; i < n_rows; i++)
    {
      const void *row = (const uint8_t *) w + (size_t) (row0 + i) * row_bytes;
      memset (acc, 0, sizeof acc);
      memset (tail, 0, sizeof tail);
      for (int j = 0; j < n; j += CHUNK)
        {
          int m = n - j < CHUNK ? n - j : CHUNK;
          int m16 = m & ~(LANES - 1);
          const float *v = chunk_f32 (buf, row, dtype, j, m);
          for (int t = 0; t < T; t++)
            {
              const float *xt = x + (size_t) t * ldx + j;
              float a[LANES];
              memcpy (a, acc[t], sizeof a);
              for (int k = 0; k < m16; k += LANES)
                for (int u = 0; u < LANES; u++)
                  a[u] += v[k + u] * xt[k + u];
              memcpy (acc[t], a, sizeof a);
              for (int k = m16; k < m; k++)
                tail[t] += v[k] * xt[k];
            }
        }
      for (int t = 0; t < T; t++)
        y[(size_t) t * ldy + i] = reduce_lanes (acc[t]) + tail[t];
    }
}

LSC_CLONES LscStatus
lsc_fast_to_f32 (float *out, const void *in, LscDType dtype, size_t n)
{
  switch (dtype)
    {
    case LSC_DTYPE_F32:
      memcpy (out, in, n * sizeof (float));
      return LSC_STATUS_OK;
    case LSC_DTYPE_BF16:
    case LSC_DTYPE_F16:
      for (size_t j = 0; j < n; j += CHUNK)
        {
          int m = n - j < CHUNK ? (int) (n - j) : CHUNK;
          chunk_f32 (out + j, (const uint16_t *) in + j, dtype, 0, m);
        }
      return LSC_STATUS_OK;
    case LSC_DTYPE_Q8_0:
      if (n % LSC_Q8_0_BLOCK)
        return LSC_STATUS_INVALID_ARGUMENT;
      chunk_f32 (out, in, dtype, 0, (int) n);
      return LSC_STATUS_OK;
    case LSC_DTYPE_I32:
    case LSC_DTYPE_I64:
    case LSC_DTYPE_N_TYPES:
      break;
    }
  return LSC_STATUS_UNSUPPORTED;
}

LSC_CLONES float
lsc_fast_attend_one (float *out, float *att, const float *q, const float *keys,
                     const float *values, int n_keys, int head_dim, int stride, float scale)
{
  int m16 = head_dim & ~(LANES - 1);

  /* scores */
  for (int j = 0; j < n_keys; j++)
    {
      const float *k = keys + (size_t) j * stride;
      float a[LANES] = { 0 };
      float tail = 0.0f;
      for (int i = 0; i < m16; i += LANES)
        for (int u = 0; u < LANES; u++)
          a[u] += q[i + u] * k[i + u];
      for (int i = m16; i < head_dim; i++)
        tail += q[i] * k[i];
      att[j] = (reduce_lanes (a) + tail) * scale;
    }

  float lse = lsc_softmax_lse (att, n_keys);

  /* weighted sum of the values */
  memset (out, 0, (size_t) head_dim * sizeof (float));
  for (int j = 0; j < n_keys; j++)
    {
      const float *v = values + (size_t) j * stride;
      float p = att[j];
      for (int i = 0; i < head_dim; i++)
        out[i] += p * v[i];
    }
  return lse;
}

/* exp (x) by Cephes' expf: x = k ln 2 + r, |r| <= ln 2 / 2, a degree-6
 * polynomial in r, times 2^k built in the exponent bits. k is rounded by
 * adding 1.5 * 2^23 (its integer lands in the low mantissa bits), not by a
 * float-to-int conversion, which GCC will not vectorize as it may trap. No
 * calls and no branches, so that the loops around it vectorize; x is
 * clamped to [-87, 88], where 2^k stays a normal float. Within 8e-8 of
 * exp on [-87, 0] (tests/test-fast-kernels.c). */
static inline float
exp_poly (float x)
{
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
  float t = x * 1.44269504088896341f + 12582912.0f;
  float k = t - 12582912.0f;
  float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t bits, scale_bits;
  float scale;
  memcpy (&bits, &t, sizeof bits);
  scale_bits = (bits - 0x4B400000u + 127u) << 23;   /* 0x4B400000: 1.5 * 2^23 */
  memcpy (&scale, &scale_bits, sizeof scale);
  return p * scale;
}

LSC_CLONES void
lsc_fast_ssm_scan (float *y, float *h, const float *a, int n_states, const float *dt,
                   const float *x, int step, const float *b, const float *c, int stride, int T)
{
  int n16 = n_states & ~(LANES - 1);
  for (int t = 0; t < T; t++)
    {
      const float *bt = b + (size_t) t * stride, *ct = c + (size_t) t * stride;
      float d = dt[(size_t) t * step], dx = d * x[(size_t) t * step];
      float acc[LANES] = { 0 };
      float tail = 0.0f;
      for (int i = 0; i < n16; i += LANES)
        {
          /* through local lanes: h may alias nothing, but GCC cannot tell */
          float hl[LANES], al[LANES], bl[LANES], cl[LANES];
          memcpy (hl, h + i, sizeof hl);
          memcpy (al, a + i, sizeof al);
          memcpy (bl, bt + i, sizeof bl);
          memcpy (cl, ct + i, sizeof cl);
          for (int u = 0; u < LANES; u++)
            {
              hl[u] = exp_poly (d * al[u]) * hl[u] + dx * bl[u];
              acc[u] += hl[u] * cl[u];
            }
          memcpy (h + i, hl, sizeof hl);
        }
      for (int n = n16; n < n_states; n++)
        {
          h[n] = exp_poly (d * a[n]) * h[n] + dx * bt[n];
          tail += h[n] * ct[n];
        }
      y[(size_t) t * step] = reduce_lanes (acc) + tail;
    }
}
