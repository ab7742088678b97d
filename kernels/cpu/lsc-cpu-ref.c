/* SPDX-License-Identifier: MIT
 *
 * Reference CPU kernels: one readable loop each, in float32 with the
 * accumulation order written out. They are the definition the fast paths
 * (OpenBLAS/OpenMP) and the CUDA kernels are tested against.
 */
#include "lsc-kernels.h"

#include <math.h>

void
lsc_rmsnorm (float *out, const float *x, const float *w, int n, float eps)
{
  float ss = 0.0f;
  for (int i = 0; i < n; i++)
    ss += x[i] * x[i];
  float scale = 1.0f / sqrtf (ss / n + eps);
  for (int i = 0; i < n; i++)
    out[i] = w[i] * (x[i] * scale);
}

float
lsc_dot_row (const void *w, LscDType dtype, int n, int row, const float *x)
{
  float sum = 0.0f;
  switch (dtype)
    {
    case LSC_DTYPE_F32:
      {
        const float *r = (const float *) w + (size_t) row * n;
        for (int j = 0; j < n; j++)
          sum += r[j] * x[j];
        break;
      }
    case LSC_DTYPE_F16:
      {
        const uint16_t *r = (const uint16_t *) w + (size_t) row * n;
        for (int j = 0; j < n; j++)
          sum += lsc_f16_to_f32_1 (r[j]) * x[j];
        break;
      }
    case LSC_DTYPE_BF16:
      {
        const uint16_t *r = (const uint16_t *) w + (size_t) row * n;
        for (int j = 0; j < n; j++)
          sum += lsc_bf16_to_f32_1 (r[j]) * x[j];
        break;
      }
    case LSC_DTYPE_Q8_0:
      {
        const LscBlockQ8_0 *r = (const LscBlockQ8_0 *) w + (size_t) row * (n / LSC_Q8_0_BLOCK);
        for (int b = 0; b < n / LSC_Q8_0_BLOCK; b++)
          {
            float d = lsc_f16_to_f32_1 (r[b].d);
            for (int i = 0; i < LSC_Q8_0_BLOCK; i++)
              sum += d * r[b].qs[i] * x[b * LSC_Q8_0_BLOCK + i];
          }
        break;
      }
    case LSC_DTYPE_I32:
    case LSC_DTYPE_I64:
    case LSC_DTYPE_N_TYPES:
      break;
    }
  return sum;
}

void
lsc_matvec (float *out, const float *x, const void *w, LscDType dtype, int n, int d)
{
  for (int i = 0; i < d; i++)
    out[i] = lsc_dot_row (w, dtype, n, i, x);
}

void
lsc_rope (float *x, int n_heads, int head_dim, const float *cos, const float *sin,
          LscRopeLayout layout)
{
  int half = head_dim / 2;
  for (int h = 0; h < n_heads; h++)
    {
      float *v = x + (size_t) h * head_dim;
      for (int i = 0; i < half; i++)
        {
          /* NEOX pairs i with i + d/2; INTERLEAVED pairs 2i with 2i + 1 */
          int a = layout == LSC_ROPE_NEOX ? i : 2 * i;
          int b = layout == LSC_ROPE_NEOX ? i + half : 2 * i + 1;
          float x0 = v[a], x1 = v[b];
          v[a] = x0 * cos[i] - x1 * sin[i];
          v[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

float
lsc_softmax_lse (float *x, int n)
{
  float max = x[0];
  for (int i = 1; i < n; i++)
    max = fmaxf (max, x[i]);
  double sum = 0.0;
  for (int i = 0; i < n; i++)
    {
      x[i] = expf (x[i] - max);
      sum += x[i];
    }
  float inv = (float) (1.0 / sum);
  for (int i = 0; i < n; i++)
    x[i] *= inv;
  return (float) (max + log (sum));
}

void
lsc_swiglu (float *out, const float *gate, const float *up, int n)
{
  for (int i = 0; i < n; i++)
    {
      float g = gate[i];
      out[i] = g / (1.0f + expf (-g)) * up[i];
    }
}

void
lsc_ssm_scan (float *y, float *h, const float *a, int n_states, const float *dt, const float *x,
              int step, const float *b, const float *c, int stride, int T)
{
  for (int t = 0; t < T; t++)
    {
      const float *bt = b + (size_t) t * stride, *ct = c + (size_t) t * stride;
      float d = dt[(size_t) t * step], xv = x[(size_t) t * step];
      float acc = 0.0f;
      for (int n = 0; n < n_states; n++)
        {
          h[n] = expf (d * a[n]) * h[n] + d * bt[n] * xv;
          acc += h[n] * ct[n];
        }
      y[(size_t) t * step] = acc;
    }
}
