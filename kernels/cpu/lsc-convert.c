/* SPDX-License-Identifier: MIT
 *
 * Conversions between the storage dtypes of model files and float32.
 * These are the reference definitions; the forward pass calls them per row.
 */
#include "lsc-kernels.h"

#include <math.h>
#include <string.h>

const char *
lsc_status_to_string (LscStatus status)
{
  switch (status)
    {
    case LSC_STATUS_OK: return "ok";
    case LSC_STATUS_INVALID_ARGUMENT: return "invalid argument";
    case LSC_STATUS_UNSUPPORTED: return "unsupported operation";
    case LSC_STATUS_NO_DEVICE: return "no device";
    case LSC_STATUS_OUT_OF_MEMORY: return "out of memory";
    case LSC_STATUS_DEVICE_ERROR: return "device error";
    case LSC_STATUS_CANCELLED: return "cancelled";
    }
  return "unknown status";
}

const char *
lsc_dtype_name (LscDType dtype)
{
  static const char *names[LSC_DTYPE_N_TYPES] = { "F32", "F16", "BF16", "Q8_0", "I32", "I64" };
  return (unsigned) dtype < LSC_DTYPE_N_TYPES ? names[dtype] : "?";
}

size_t
lsc_dtype_row_bytes (LscDType dtype, size_t n)
{
  switch (dtype)
    {
    case LSC_DTYPE_F32: return n * 4;
    case LSC_DTYPE_I32: return n * 4;
    case LSC_DTYPE_I64: return n * 8;
    case LSC_DTYPE_F16:
    case LSC_DTYPE_BF16: return n * 2;
    case LSC_DTYPE_Q8_0:
      return n % LSC_Q8_0_BLOCK ? 0 : n / LSC_Q8_0_BLOCK * sizeof (LscBlockQ8_0);
    case LSC_DTYPE_N_TYPES: break;
    }
  return 0;
}

static inline uint32_t
f32_bits (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  return u;
}

static inline float
bits_f32 (uint32_t u)
{
  float f;
  memcpy (&f, &u, 4);
  return f;
}

float
lsc_f16_to_f32_1 (uint16_t h)
{
  uint32_t sign = (uint32_t) (h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;

  if (exp == 0x1f)                      /* inf / nan */
    return bits_f32 (sign | 0x7f800000u | (man << 13));
  if (exp == 0)
    {
      if (man == 0)
        return bits_f32 (sign);
      /* subnormal: man * 2^-24 */
      float v = ldexpf ((float) man, -24);
      return sign ? -v : v;
    }
  return bits_f32 (sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t
lsc_f32_to_f16_1 (float f)
{
  uint32_t u = f32_bits (f);
  uint16_t sign = (u >> 16) & 0x8000;
  uint32_t a = u & 0x7fffffffu;

  if (a >= 0x7f800000u)                 /* inf / nan */
    return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0);
  if (a >= 0x477ff000u)                 /* rounds to >= 65520: inf */
    return sign | 0x7c00;
  if (a < 0x38800000u)                  /* below the smallest normal: subnormal or zero */
    {
      /* value * 2^24, rounded to nearest even, is the subnormal mantissa */
      float v = bits_f32 (a) * 16777216.0f;
      return sign | (uint16_t) lrintf (v);
    }
  uint32_t mant_odd = (a >> 13) & 1;
  a += 0xfff + mant_odd;                /* round to nearest even */
  return sign | (uint16_t) (((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ff));
}

float
lsc_bf16_to_f32_1 (uint16_t h)
{
  return bits_f32 ((uint32_t) h << 16);
}

uint16_t
lsc_f32_to_bf16_1 (float f)
{
  uint32_t u = f32_bits (f);
  if ((u & 0x7fffffffu) > 0x7f800000u)  /* keep NaN a (quiet) NaN */
    return (u >> 16) | 0x40;
  u += 0x7fff + ((u >> 16) & 1);
  return u >> 16;
}

void
lsc_f16_to_f32 (float *out, const uint16_t *in, size_t n)
{
  for (size_t i = 0; i < n; i++)
    out[i] = lsc_f16_to_f32_1 (in[i]);
}

void
lsc_bf16_to_f32 (float *out, const uint16_t *in, size_t n)
{
  for (size_t i = 0; i < n; i++)
    out[i] = lsc_bf16_to_f32_1 (in[i]);
}

void
lsc_q8_0_to_f32 (float *out, const LscBlockQ8_0 *in, size_t n)
{
  for (size_t b = 0; b < n / LSC_Q8_0_BLOCK; b++)
    {
      float d = lsc_f16_to_f32_1 (in[b].d);
      for (int i = 0; i < LSC_Q8_0_BLOCK; i++)
        out[b * LSC_Q8_0_BLOCK + i] = d * in[b].qs[i];
    }
}

void
lsc_f32_to_q8_0 (LscBlockQ8_0 *out, const float *in, size_t n)
{
  /* The quantiser of ggml's quantize_row_q8_0_ref: d = amax / 127. */
  for (size_t b = 0; b < n / LSC_Q8_0_BLOCK; b++)
    {
      const float *x = in + b * LSC_Q8_0_BLOCK;
      float amax = 0.0f;
      for (int i = 0; i < LSC_Q8_0_BLOCK; i++)
        amax = fmaxf (amax, fabsf (x[i]));
      float d = amax / 127.0f;
      float id = d ? 1.0f / d : 0.0f;
      out[b].d = lsc_f32_to_f16_1 (d);
      for (int i = 0; i < LSC_Q8_0_BLOCK; i++)
        out[b].qs[i] = (int8_t) roundf (x[i] * id);
    }
}

LscStatus
lsc_to_f32 (float *out, const void *in, LscDType dtype, size_t n)
{
  switch (dtype)
    {
    case LSC_DTYPE_F32:
      memcpy (out, in, n * sizeof (float));
      return LSC_STATUS_OK;
    case LSC_DTYPE_F16:
      lsc_f16_to_f32 (out, in, n);
      return LSC_STATUS_OK;
    case LSC_DTYPE_BF16:
      lsc_bf16_to_f32 (out, in, n);
      return LSC_STATUS_OK;
    case LSC_DTYPE_Q8_0:
      if (n % LSC_Q8_0_BLOCK)
        return LSC_STATUS_INVALID_ARGUMENT;
      lsc_q8_0_to_f32 (out, in, n);
      return LSC_STATUS_OK;
    case LSC_DTYPE_I32:
    case LSC_DTYPE_I64:
    case LSC_DTYPE_N_TYPES:
      break;
    }
  return LSC_STATUS_UNSUPPORTED;
}

LscStatus
lsc_from_f32 (void *out, const float *in, LscDType dtype, size_t n)
{
  uint16_t *h = out;
  switch (dtype)
    {
    case LSC_DTYPE_F32:
      memcpy (out, in, n * sizeof (float));
      return LSC_STATUS_OK;
    case LSC_DTYPE_F16:
      for (size_t i = 0; i < n; i++)
        h[i] = lsc_f32_to_f16_1 (in[i]);
      return LSC_STATUS_OK;
    case LSC_DTYPE_BF16:
      for (size_t i = 0; i < n; i++)
        h[i] = lsc_f32_to_bf16_1 (in[i]);
      return LSC_STATUS_OK;
    case LSC_DTYPE_Q8_0:
      if (n % LSC_Q8_0_BLOCK)
        return LSC_STATUS_INVALID_ARGUMENT;
      lsc_f32_to_q8_0 (out, in, n);
      return LSC_STATUS_OK;
    case LSC_DTYPE_I32:
    case LSC_DTYPE_I64:
    case LSC_DTYPE_N_TYPES:
      break;
    }
  return LSC_STATUS_UNSUPPORTED;
}
