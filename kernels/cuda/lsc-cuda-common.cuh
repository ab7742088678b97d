// SPDX-License-Identifier: MIT
//
// Shared by the CUDA translation units: error mapping (a failing runtime or
// cuBLAS call becomes an LscStatus; nothing here prints or exits) and the
// context every operation is queued on.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <unordered_map>

extern "C" {
#include "lsc-cuda.h"
}

struct _LscCudaContext {
  int device;
  cudaStream_t stream;
  cublasHandle_t blas;
  size_t smem_optin;    // the most dynamic shared memory a block may opt into
  size_t held;          // bytes allocated through lsc_cuda_alloc now
  size_t peak;          // the most ever held at once
  std::unordered_map<void *, size_t> sizes;   // of each live allocation
};

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

static inline LscStatus
lsc_cublas_status (cublasStatus_t st)
{
  switch (st)
    {
    case CUBLAS_STATUS_SUCCESS: return LSC_STATUS_OK;
    case CUBLAS_STATUS_ALLOC_FAILED: return LSC_STATUS_OUT_OF_MEMORY;
    case CUBLAS_STATUS_NOT_SUPPORTED:
    case CUBLAS_STATUS_ARCH_MISMATCH: return LSC_STATUS_UNSUPPORTED;
    case CUBLAS_STATUS_INVALID_VALUE: return LSC_STATUS_INVALID_ARGUMENT;
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

// The status of the last kernel launch.
#define LSC_CUDA_LAUNCHED() lsc_cuda_status (cudaGetLastError ())

static inline unsigned
lsc_cuda_blocks (size_t n, unsigned threads)
{
  return (unsigned) ((n + threads - 1) / threads);
}

struct LscMaxOp { __device__ float operator() (float a, float b) const { return fmaxf (a, b); } };
struct LscSumOp {
  template <typename F> __device__ F operator() (F a, F b) const { return a + b; }
};

// op over v of the block's THREADS threads (a multiple of 32); every thread
// gets the result (a single warp's without a barrier). Each (F, THREADS, Op)
// has its own scratch, and the first __syncthreads keeps a call from
// overwriting what an earlier one still reads.
template <int THREADS, typename F, typename Op>
static __device__ F
lsc_block_reduce (F v, Op op)
{
  __shared__ F partial[THREADS / 32];
  for (int o = 16; o > 0; o /= 2)
    v = op (v, __shfl_xor_sync (0xffffffffu, v, o));
  if constexpr (THREADS == 32)
    return v;   // one warp: no shared scratch, no barrier
  __syncthreads ();
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = v;
  __syncthreads ();
  F r = partial[0];
  for (int w = 1; w < THREADS / 32; w++)
    r = op (r, partial[w]);
  return r;
}
