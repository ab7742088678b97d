// SPDX-License-Identifier: MIT
//
// The first CUDA translation unit: it proves in CI that nvcc, the -gencode
// flags and the link against the CUDA runtime work, and gives the test suite
// a device probe. The real backend grows beside it (kernels/cuda/<op>.cu).
#include "lsc-cuda-common.cuh"

static __global__ void
saxpy_kernel (float *out, float a, const float *x, const float *y, size_t n)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    out[i] = a * x[i] + y[i];
}

extern "C" LscStatus
lsc_cuda_device_count (int *n_devices)
{
  *n_devices = 0;
  cudaError_t err = cudaGetDeviceCount (n_devices);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
    {
      *n_devices = 0;
      cudaGetLastError ();   // clear the sticky error
      return LSC_STATUS_NO_DEVICE;
    }
  LSC_CUDA_CHECK (err);
  return *n_devices > 0 ? LSC_STATUS_OK : LSC_STATUS_NO_DEVICE;
}

extern "C" LscStatus
lsc_cuda_saxpy (float *out, float a, const float *x, const float *y, size_t n)
{
  float *d_out = NULL, *d_x = NULL, *d_y = NULL;
  LscStatus status = LSC_STATUS_OK;
  size_t bytes = n * sizeof (float);

  if (n == 0)
    return LSC_STATUS_OK;
  LSC_CUDA_TRY (cudaMalloc (&d_out, bytes));
  LSC_CUDA_TRY (cudaMalloc (&d_x, bytes));
  LSC_CUDA_TRY (cudaMalloc (&d_y, bytes));
  LSC_CUDA_TRY (cudaMemcpy (d_x, x, bytes, cudaMemcpyHostToDevice));
  LSC_CUDA_TRY (cudaMemcpy (d_y, y, bytes, cudaMemcpyHostToDevice));
  saxpy_kernel<<<(unsigned) ((n + 255) / 256), 256>>> (d_out, a, d_x, d_y, n);
  LSC_CUDA_TRY (cudaGetLastError ());
  LSC_CUDA_TRY (cudaMemcpy (out, d_out, bytes, cudaMemcpyDeviceToHost));
out:
  cudaFree (d_out);
  cudaFree (d_x);
  cudaFree (d_y);
  return status;
}
