// SPDX-License-Identifier: MIT
//
// The CPU emulator's stand-in for <cuda_bf16.h>: __nv_bfloat16 as its 16
// bits; conversions round to nearest even and keep NaN a (quiet) NaN.
#pragma once

#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
  uint16_t bits;
};

static inline __nv_bfloat16
__float2bfloat16_rn (float f)
{
  uint32_t u;
  memcpy (&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return __nv_bfloat16 { (uint16_t) ((u >> 16) | 0x40) };
  u += 0x7fffu + ((u >> 16) & 1);
  return __nv_bfloat16 { (uint16_t) (u >> 16) };
}

static inline __nv_bfloat16 __float2bfloat16 (float f) { return __float2bfloat16_rn (f); }

static inline float
__bfloat162float (__nv_bfloat16 h)
{
  uint32_t u = (uint32_t) h.bits << 16;
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}
