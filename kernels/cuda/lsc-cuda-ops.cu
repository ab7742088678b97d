// SPDX-License-Identifier: MIT
//
// The small kernels of the forward pass: embedding, RMSNorm, biases, RoPE,
// SwiGLU and softmax. Each is the GPU twin of a reference kernel in
// kernels/cpu/lsc-cpu-ref.c and computes the same float32 arithmetic (sums
// in another order: a block reduction instead of a loop).
#include "lsc-cuda-common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define ROW_THREADS 256   // threads of the one-block-per-row kernels

static __device__ inline float widen (float v) { return v; }
static __device__ inline float widen (__half v) { return __half2float (v); }
static __device__ inline float widen (__nv_bfloat16 v) { return __bfloat162float (v); }

template <typename W>
static __global__ void
embed_kernel (float *out, const int32_t *tokens, const W *table, int dim)
{
  int t = blockIdx.x;
  const W *row = table + (size_t) tokens[t] * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    out[(size_t) t * dim + i] = widen (row[i]);
}

extern "C" LscStatus
lsc_cuda_embed (LscCudaContext *ctx, float *out, const int32_t *tokens, int T, const void *table,
                LscDType dtype, int dim)
{
  if (T <= 0)
    return LSC_STATUS_OK;
  switch (dtype)
    {
    case LSC_DTYPE_F32:
      embed_kernel<<<T, ROW_THREADS, 0, ctx->stream>>> (out, tokens, (const float *) table, dim);
      break;
    case LSC_DTYPE_F16:
      embed_kernel<<<T, ROW_THREADS, 0, ctx->stream>>> (out, tokens, (const __half *) table, dim);
      break;
    case LSC_DTYPE_BF16:
      embed_kernel<<<T, ROW_THREADS, 0, ctx->stream>>> (out, tokens, (const __nv_bfloat16 *) table,
                                                        dim);
      break;
    default:
      return LSC_STATUS_UNSUPPORTED;
    }
  return LSC_CUDA_LAUNCHED ();
}

static __global__ void
rmsnorm_kernel (float *out, float *x, const float *add, const float *w, int dim, float eps)
{
  float *xr = x + (size_t) blockIdx.x * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += ROW_THREADS)
    {
      float v = xr[i];
      if (add != NULL)
        xr[i] = v = v + add[(size_t) blockIdx.x * dim + i];
      ss += v * v;
    }
  ss = lsc_block_reduce<ROW_THREADS> (ss, LscSumOp ());
  float scale = 1.0f / sqrtf (ss / dim + eps);
  float *o = out + (size_t) blockIdx.x * dim;
  for (int i = threadIdx.x; i < dim; i += ROW_THREADS)
    o[i] = w[i] * (xr[i] * scale);
}

extern "C" LscStatus
lsc_cuda_rmsnorm (LscCudaContext *ctx, float *out, float *x, const float *add, const float *w,
                  int T, int dim, float eps)
{
  if (T <= 0)
    return LSC_STATUS_OK;
  rmsnorm_kernel<<<T, ROW_THREADS, 0, ctx->stream>>> (out, x, add, w, dim, eps);
  return LSC_CUDA_LAUNCHED ();
}

static __global__ void
add_bias_kernel (float *x, int ld, const float *bias, int T, int n)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i < (size_t) T * n)
    x[(i / n) * ld + i % n] += bias[i % n];
}

extern "C" LscStatus
lsc_cuda_add_bias (LscCudaContext *ctx, float *x, int ld, const float *bias, int T, int n)
{
  if (T <= 0 || n <= 0)
    return LSC_STATUS_OK;
  add_bias_kernel<<<lsc_cuda_blocks ((size_t) T * n, 256), 256, 0, ctx->stream>>> (x, ld, bias, T, n);
  return LSC_CUDA_LAUNCHED ();
}

// one thread per (row, head, pair)
static __global__ void
rope_kernel (float *x, int ld, int T, int n_heads, int head_dim, const float *cos,
             const float *sin, int neox)
{
  int half = head_dim / 2;
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t) T * n_heads * half)
    return;
  int p = (int) (i % half), h = (int) ((i / half) % n_heads);
  size_t t = i / ((size_t) half * n_heads);
  float *v = x + t * ld + (size_t) h * head_dim;
  int a = neox ? p : 2 * p, b = neox ? p + half : 2 * p + 1;
  float c = cos[t * half + p], s = sin[t * half + p];
  float x0 = v[a], x1 = v[b];
  v[a] = x0 * c - x1 * s;
  v[b] = x0 * s + x1 * c;
}

extern "C" LscStatus
lsc_cuda_rope (LscCudaContext *ctx, float *x, int ld, int T, int n_heads, int head_dim,
               const float *cos, const float *sin, LscRopeLayout layout)
{
  size_t n = (size_t) T * n_heads * (head_dim / 2);
  if (n == 0)
    return LSC_STATUS_OK;
  rope_kernel<<<lsc_cuda_blocks (n, 256), 256, 0, ctx->stream>>> (x, ld, T, n_heads, head_dim, cos,
                                                                  sin, layout == LSC_ROPE_NEOX);
  return LSC_CUDA_LAUNCHED ();
}

static __global__ void
swiglu_kernel (float *out, int ldo, const float *gu, int ldg, int T, int n)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t) T * n)
    return;
  size_t t = i / n, j = i % n;
  float g = gu[t * ldg + j];
  out[t * ldo + j] = g / (1.0f + expf (-g)) * gu[t * ldg + n + j];
}

extern "C" LscStatus
lsc_cuda_swiglu (LscCudaContext *ctx, float *out, int ldo, const float *gu, int ldg, int T, int n)
{
  if (T <= 0 || n <= 0)
    return LSC_STATUS_OK;
  swiglu_kernel<<<lsc_cuda_blocks ((size_t) T * n, 256), 256, 0, ctx->stream>>> (out, ldo, gu, ldg,
                                                                                 T, n);
  return LSC_CUDA_LAUNCHED ();
}

static __global__ void
softmax_lse_kernel (float *x, float *lse, int n)
{
  float *row = x + (size_t) blockIdx.x * n;
  float m = -INFINITY;
  for (int i = threadIdx.x; i < n; i += ROW_THREADS)
    m = fmaxf (m, row[i]);
  m = lsc_block_reduce<ROW_THREADS> (m, LscMaxOp ());
  double sum = 0.0;   // in double, as the reference
  for (int i = threadIdx.x; i < n; i += ROW_THREADS)
    {
      float e = expf (row[i] - m);
      row[i] = e;
      sum += e;
    }
  sum = lsc_block_reduce<ROW_THREADS> (sum, LscSumOp ());
  float inv = (float) (1.0 / sum);
  for (int i = threadIdx.x; i < n; i += ROW_THREADS)
    row[i] *= inv;
  if (lse != NULL && threadIdx.x == 0)
    lse[blockIdx.x] = (float) (m + log (sum));
}

extern "C" LscStatus
lsc_cuda_softmax_lse (LscCudaContext *ctx, float *x, float *lse, int rows, int n)
{
  if (rows <= 0 || n <= 0)
    return LSC_STATUS_OK;
  softmax_lse_kernel<<<rows, ROW_THREADS, 0, ctx->stream>>> (x, lse, n);
  return LSC_CUDA_LAUNCHED ();
}
