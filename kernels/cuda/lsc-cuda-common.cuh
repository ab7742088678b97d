// SPDX-License-Identifier: MIT
//
// Error mapping shared by the CUDA kernels: a failing runtime call becomes an
// LscStatus; nothing here prints or exits.
#pragma once

#include <cuda_runtime.h>

extern "C" {
#include "lsc-kernels.h"
}

static inline LscStatus
lsc_cuda_status (cudaError_t err)
{
  switch (err)
    {
    case cudaSuccess: return LSC_STATUS_OK;
    case cudaErrorMemoryAllocation: return LSC_STATUS_OUT_OF_MEMORY;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver: return LSC_STATUS_NO_DEVICE;
    default: return LSC_STATUS_DEVICE_ERROR;
    }
}

// Return the mapped status from the enclosing function when expr fails.
#define LSC_CUDA_CHECK(expr)                         \
  do {                                               \
    cudaError_t lsc_err_ = (expr);                   \
    if (lsc_err_ != cudaSuccess)                     \
      return lsc_cuda_status (lsc_err_);             \
  } while (0)

// Set `status` and jump to the enclosing function's `out:` label when expr fails.
#define LSC_CUDA_TRY(expr)                           \
  do {                                               \
    cudaError_t lsc_err_ = (expr);                   \
    if (lsc_err_ != cudaSuccess)                     \
      {                                              \
        status = lsc_cuda_status (lsc_err_);         \
        goto out;                                    \
      }                                              \
  } while (0)
