// SPDX-License-Identifier: MIT
//
// The CPU emulator's stand-in for <cuda_fp16.h>: __half as GCC's _Float16
// (IEEE binary16, conversions round to nearest even as on the GPU).
#pragma once

#include <cstdint>

struct __half {
  _Float16 v;
};

static inline __half __float2half_rn (float f) { return __half { (_Float16) f }; }
static inline __half __float2half (float f) { return __float2half_rn (f); }
static inline float __half2float (__half h) { return (float) h.v; }
