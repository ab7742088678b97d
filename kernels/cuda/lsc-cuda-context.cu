// SPDX-License-Identifier: MIT
//
// The CUDA context (device, stream, cuBLAS handle), device memory, and the
// projections: every weight matrix product is one cuBLAS GEMM.
#include "lsc-cuda-common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cfloat>
#include <cstdio>
#include <new>

static __global__ void
saxpy_kernel (float *out, float a, const float *x, const float *y, size_t n)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    out[i] = a * x[i] + y[i];
}

// Why the first device cannot run these kernels (text for the user), set
// once with the device count.
static char unusable[256] = "no CUDA device is present";

// The runtime's answer, asked once per process: without a driver every
// call would try (and fail) to load it again, leaking its error buffer in
// each thread that asks. A driver older than the runtime, or a GPU older
// than the oldest architecture built for, counts as no device, with the
// reason: `auto` then runs on the CPU and says why, where the first kernel
// launch would otherwise fail part way through a prefill.
extern "C" LscStatus
lsc_cuda_device_count (int *n_devices)
{
  static int count;
  static const LscStatus status = [] {
    cudaError_t err = cudaGetDeviceCount (&count);
    if (err != cudaSuccess)
      {
        int driver = 0, runtime = 0;
        count = 0;
        cudaGetLastError ();   // clear the sticky error
        if (err == cudaErrorInsufficientDriver && cudaDriverGetVersion (&driver) == cudaSuccess
            && driver > 0 && cudaRuntimeGetVersion (&runtime) == cudaSuccess)
          snprintf (unusable, sizeof unusable,
                    "the NVIDIA driver supports CUDA %d.%d, older than the CUDA %d.%d this "
                    "build uses (update the driver)", driver / 1000, driver % 1000 / 10,
                    runtime / 1000, runtime % 1000 / 10);
        return err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver
                 ? LSC_STATUS_NO_DEVICE : lsc_cuda_status (err);
      }
    int major = 0, minor = 0;
    if (count > 0
        && cudaDeviceGetAttribute (&major, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess
        && cudaDeviceGetAttribute (&minor, cudaDevAttrComputeCapabilityMinor, 0) == cudaSuccess
        && major * 10 + minor < LSC_CUDA_MIN_ARCH)
      {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties (&prop, 0) != cudaSuccess)
          snprintf (prop.name, sizeof prop.name, "device 0");
        snprintf (unusable, sizeof unusable,
                  "the GPU (%s) has compute capability %d.%d; this build's kernels need %d.%d "
                  "or newer", prop.name, major, minor, LSC_CUDA_MIN_ARCH / 10,
                  LSC_CUDA_MIN_ARCH % 10);
        count = 0;
      }
    return count > 0 ? LSC_STATUS_OK : LSC_STATUS_NO_DEVICE;
  }();
  *n_devices = count;
  return status;
}

extern "C" const char *
lsc_cuda_unavailable_reason (void)
{
  int n;
  LscStatus st = lsc_cuda_device_count (&n);
  if (st == LSC_STATUS_OK)
    return NULL;
  return st == LSC_STATUS_NO_DEVICE ? unusable : lsc_status_to_string (st);
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
  saxpy_kernel<<<lsc_cuda_blocks (n, 256), 256>>> (d_out, a, d_x, d_y, n);
  LSC_CUDA_TRY (cudaGetLastError ());
  LSC_CUDA_TRY (cudaMemcpy (out, d_out, bytes, cudaMemcpyDeviceToHost));
out:
  cudaFree (d_out);
  cudaFree (d_x);
  cudaFree (d_y);
  return status;
}

// one attribute, not every property: the estimate asks for each run
extern "C" LscStatus
lsc_cuda_device_shared_optin (int device, size_t *bytes)
{
  int v = 0;
  *bytes = 0;
  LSC_CUDA_CHECK (cudaDeviceGetAttribute (&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  *bytes = (size_t) v;
  return LSC_STATUS_OK;
}

/* ---- context and memory ---- */

extern "C" LscStatus
lsc_cuda_context_new (LscCudaContext **out, int device, char *name)
{
  int n = 0;
  *out = NULL;
  LscStatus status = lsc_cuda_device_count (&n);
  if (status != LSC_STATUS_OK)
    return status;
  if (device < 0 || device >= n)
    return LSC_STATUS_INVALID_ARGUMENT;
  LSC_CUDA_CHECK (cudaSetDevice (device));
  size_t smem_optin;
  status = lsc_cuda_device_shared_optin (device, &smem_optin);
  if (status != LSC_STATUS_OK)
    return status;
  if (name != NULL)
    {
      cudaDeviceProp prop;
      LSC_CUDA_CHECK (cudaGetDeviceProperties (&prop, device));
      snprintf (name, 256, "%s", prop.name);
    }

  LscCudaContext *ctx = new (std::nothrow) LscCudaContext ();
  if (ctx == NULL)
    return LSC_STATUS_OUT_OF_MEMORY;
  ctx->device = device;
  ctx->smem_optin = smem_optin;
  cudaError_t err = cudaStreamCreateWithFlags (&ctx->stream, cudaStreamNonBlocking);
  if (err != cudaSuccess)
    {
      delete ctx;
      return lsc_cuda_status (err);
    }
  cublasStatus_t st = cublasCreate (&ctx->blas);
  if (st != CUBLAS_STATUS_SUCCESS)
    {
      cudaStreamDestroy (ctx->stream);
      delete ctx;
      return lsc_cublas_status (st);
    }
  cublasSetStream (ctx->blas, ctx->stream);
  // float32 GEMMs stay float32: no TF32 tensor-op math
  cublasSetMathMode (ctx->blas, CUBLAS_DEFAULT_MATH);
  *out = ctx;
  return LSC_STATUS_OK;
}

extern "C" void
lsc_cuda_context_free (LscCudaContext *ctx)
{
  if (ctx == NULL)
    return;
  cudaSetDevice (ctx->device);
  cudaStreamSynchronize (ctx->stream);
  for (auto &a : ctx->sizes)
    cudaFree (a.first);
  cublasDestroy (ctx->blas);
  cudaStreamDestroy (ctx->stream);
  delete ctx;
}

extern "C" LscStatus
lsc_cuda_mem_info (LscCudaContext *ctx, size_t *free_bytes, size_t *total_bytes, size_t *peak_bytes)
{
  size_t f = 0, t = 0;
  LSC_CUDA_CHECK (cudaMemGetInfo (&f, &t));
  if (free_bytes != NULL)
    *free_bytes = f;
  if (total_bytes != NULL)
    *total_bytes = t;
  if (peak_bytes != NULL)
    *peak_bytes = ctx->peak;
  return LSC_STATUS_OK;
}

extern "C" LscStatus
lsc_cuda_alloc (LscCudaContext *ctx, void **ptr, size_t bytes)
{
  *ptr = NULL;
  LSC_CUDA_CHECK (cudaMalloc (ptr, bytes > 0 ? bytes : 1));
  ctx->sizes[*ptr] = bytes;
  ctx->held += bytes;
  if (ctx->held > ctx->peak)
    ctx->peak = ctx->held;
  return LSC_STATUS_OK;
}

extern "C" void
lsc_cuda_free (LscCudaContext *ctx, void *ptr)
{
  if (ptr == NULL)
    return;
  auto it = ctx->sizes.find (ptr);
  if (it != ctx->sizes.end ())
    {
      ctx->held -= it->second;
      ctx->sizes.erase (it);
    }
  cudaStreamSynchronize (ctx->stream);   // nothing queued may still use it
  cudaFree (ptr);
}

extern "C" LscStatus
lsc_cuda_host_alloc (LscCudaContext *ctx, void **ptr, size_t bytes)
{
  *ptr = NULL;
  LSC_CUDA_CHECK (cudaSetDevice (ctx->device));
  LSC_CUDA_CHECK (cudaMallocHost (ptr, bytes > 0 ? bytes : 1));
  return LSC_STATUS_OK;
}

extern "C" void
lsc_cuda_host_free (LscCudaContext *ctx, void *ptr)
{
  if (ptr == NULL)
    return;
  cudaStreamSynchronize (ctx->stream);
  cudaFreeHost (ptr);
}

extern "C" LscStatus
lsc_cuda_upload (LscCudaContext *ctx, void *dst, const void *src, size_t bytes)
{
  LSC_CUDA_CHECK (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream));
  // src is pageable host memory the caller may reuse at once
  LSC_CUDA_CHECK (cudaStreamSynchronize (ctx->stream));
  return LSC_STATUS_OK;
}

extern "C" LscStatus
lsc_cuda_download (LscCudaContext *ctx, void *dst, const void *src, size_t bytes)
{
  LSC_CUDA_CHECK (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
  LSC_CUDA_CHECK (cudaStreamSynchronize (ctx->stream));
  return LSC_STATUS_OK;
}

extern "C" LscStatus
lsc_cuda_download_2d (LscCudaContext *ctx, void *dst, size_t dst_pitch, const void *src,
                      size_t src_pitch, size_t width, size_t rows)
{
  if (rows == 0 || width == 0)
    return LSC_STATUS_OK;
  LSC_CUDA_CHECK (cudaMemcpy2DAsync (dst, dst_pitch, src, src_pitch, width, rows,
                                     cudaMemcpyDeviceToHost, ctx->stream));
  LSC_CUDA_CHECK (cudaStreamSynchronize (ctx->stream));
  return LSC_STATUS_OK;
}

extern "C" LscStatus
lsc_cuda_copy (LscCudaContext *ctx, void *dst, const void *src, size_t bytes)
{
  LSC_CUDA_CHECK (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
  return LSC_STATUS_OK;
}

extern "C" LscStatus
lsc_cuda_zero (LscCudaContext *ctx, void *dst, size_t bytes)
{
  LSC_CUDA_CHECK (cudaMemsetAsync (dst, 0, bytes, ctx->stream));
  return LSC_STATUS_OK;
}

extern "C" LscStatus
lsc_cuda_copy_2d (LscCudaContext *ctx, void *dst, size_t dst_pitch, const void *src,
                  size_t src_pitch, size_t width, size_t rows)
{
  if (rows == 0 || width == 0)
    return LSC_STATUS_OK;
  LSC_CUDA_CHECK (cudaMemcpy2DAsync (dst, dst_pitch, src, src_pitch, width, rows,
                                     cudaMemcpyDeviceToDevice, ctx->stream));
  return LSC_STATUS_OK;
}

extern "C" LscStatus
lsc_cuda_sync (LscCudaContext *ctx)
{
  LSC_CUDA_CHECK (cudaGetLastError ());
  LSC_CUDA_CHECK (cudaStreamSynchronize (ctx->stream));
  return LSC_STATUS_OK;
}

/* ---- projections ---- */

// BF16 X (float32's exponents): x (T, n; ldx) split into two halves, hi
// (T, n) <- x rounded to bf16 (to nearest even, as lsc_f32_to_bf16_1 ()),
// lo (T, n) <- the rest (x - hi) rounded; hi + lo holds x to ~2^-17
static __global__ void
split_rows_kernel (__nv_bfloat16 *hi, __nv_bfloat16 *lo, const float *x, int ldx, int T, int n)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t) T * n)
    return;
  float v = x[(i / n) * ldx + i % n];
  __nv_bfloat16 h = __float2bfloat16_rn (v);
  hi[i] = h;
  lo[i] = __float2bfloat16_rn (v - __bfloat162float (h));
}

// F16 X: row t of x scaled by s_t = 2^k first, k such that the row's
// largest |x| lands in [2^13, 2^14) (clamped to float's exponents): no half
// overflows 65504, and lo is a normal f16 for every entry above 2^-17 of
// the row's largest. inv_scale[t] = 2^-k undoes it on Y's row, exactly. NaN
// or Inf in a row poisons its y, as on the CPU.
static __global__ void
split_rows_scaled_kernel (__half *hi, __half *lo, float *inv_scale, const float *x, int ldx, int n)
{
  const int t = blockIdx.x;
  const float *xr = x + (size_t) t * ldx;
  float mx = 0.0f;
  for (int j = threadIdx.x; j < n; j += 256)
    mx = fmaxf (mx, fabsf (xr[j]));
  mx = lsc_block_reduce<256> (mx, LscMaxOp ());
  int e = 0;
  if (mx > 0.0f && mx <= FLT_MAX)
    frexpf (mx, &e);   // mx < 2^e
  int k = max (-126, min (127, 14 - e));
  float s = ldexpf (1.0f, k);
  for (int j = threadIdx.x; j < n; j += 256)
    {
      float v = xr[j] * s;
      __half h = __float2half_rn (v);
      hi[(size_t) t * n + j] = h;
      lo[(size_t) t * n + j] = __float2half_rn (v - __half2float (h));
    }
  if (threadIdx.x == 0)
    inv_scale[t] = ldexpf (1.0f, -k);
}

static __global__ void
scale_rows_kernel (float *y, int ldy, int T, int d, const float *inv_scale)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i < (size_t) T * d)
    y[(i / d) * ldy + i % d] *= inv_scale[i / d];
}

extern "C" size_t
lsc_cuda_gemm_scratch_bytes (int T, int n)
{
  return (size_t) 2 * T * n * sizeof (uint16_t) + (size_t) T * sizeof (float);
}

extern "C" LscStatus
lsc_cuda_gemm_xwt (LscCudaContext *ctx, float *y, int ldy, const float *x, int ldx, int T,
                   const void *w, LscDType dtype, int d, int n, void *x_half)
{
  const float one = 1.0f, zero = 0.0f;
  size_t count = (size_t) T * n;

  if (T <= 0 || d <= 0 || n <= 0)
    return LSC_STATUS_OK;
  // Row-major Y (T, d) is column-major Y^T (d, T) = W X^T, and row-major W
  // (d, n) is column-major (n, d): op(A) = T.
  if (dtype == LSC_DTYPE_F32)
    return lsc_cublas_status (cublasGemmEx (ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, d, T, n, &one, w,
                                            CUDA_R_32F, n, x, CUDA_R_32F, ldx, &zero, y,
                                            CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT));
  if ((dtype != LSC_DTYPE_F16 && dtype != LSC_DTYPE_BF16))
    return LSC_STATUS_UNSUPPORTED;
  if (x_half == NULL)
    return LSC_STATUS_INVALID_ARGUMENT;

  // Tensor cores take W and X in the same 16-bit type: X goes as hi + lo,
  // two GEMMs into the same Y, so that Y is W times the float32 X (as on the
  // CPU) and not times X rounded to 8 or 11 bits.
  cudaDataType_t type = dtype == LSC_DTYPE_F16 ? CUDA_R_16F : CUDA_R_16BF;
  uint16_t *hi = (uint16_t *) x_half, *lo = hi + count;
  float *inv_scale = (float *) (lo + count);
  if (dtype == LSC_DTYPE_F16)
    split_rows_scaled_kernel<<<T, 256, 0, ctx->stream>>> ((__half *) hi, (__half *) lo, inv_scale,
                                                          x, ldx, n);
  else
    split_rows_kernel<<<lsc_cuda_blocks (count, 256), 256, 0, ctx->stream>>> (
        (__nv_bfloat16 *) hi, (__nv_bfloat16 *) lo, x, ldx, T, n);
  LscStatus status = LSC_CUDA_LAUNCHED ();
  if (status != LSC_STATUS_OK)
    return status;
  status = lsc_cublas_status (cublasGemmEx (ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, d, T, n, &one, w,
                                            type, n, hi, type, n, &zero, y, CUDA_R_32F, ldy,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  if (status != LSC_STATUS_OK)
    return status;
  status = lsc_cublas_status (cublasGemmEx (ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, d, T, n, &one, w,
                                            type, n, lo, type, n, &one, y, CUDA_R_32F, ldy,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  if (status != LSC_STATUS_OK || dtype != LSC_DTYPE_F16)
    return status;
  scale_rows_kernel<<<lsc_cuda_blocks ((size_t) T * d, 256), 256, 0, ctx->stream>>> (y, ldy, T, d,
                                                                                     inv_scale);
  return LSC_CUDA_LAUNCHED ();
}
