// SPDX-License-Identifier: MIT
//
// Mamba's kernels: the causal convolution, Δ, the selective scan and the
// gated norm. Each computes what engine/lsc-mamba.c computes on the CPU, in
// float32 with the same expf/log1pf (sums over states in another order: a
// warp reduction instead of a loop).
//
// The scan is the plain recurrence, sequential in time and parallel over
// channels and states, like the CPU's; mamba_ssm's chunked scans compute
// the same function.
#include "lsc-cuda-common.cuh"

#define ROW_THREADS 256    // threads of the one-block-per-row gated norm
#define SCAN_THREADS 128   // threads of a scan block
#define MAX_STATES 256     // 32 lanes x 8 states per lane

static __device__ inline float
silu (float v)
{
  return v / (1.0f + expf (-v));
}

// one thread per (token, channel)
static __global__ void
conv_kernel (float *u, const float *state, const float *x, int ldx, int T, int C, int K,
             const float *w, const float *b)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t) T * C)
    return;
  int t = (int) (i / C), c = (int) (i % C);
  float acc = b != NULL ? b[c] : 0.0f;
  for (int k = 0; k < K; k++)
    {
      int j = t - (K - 1) + k;   // < 0: from the state
      acc += w[(size_t) c * K + k] * (j < 0 ? state[(size_t) (K - 1 + j) * C + c]
                                            : x[(size_t) j * ldx + c]);
    }
  u[i] = silu (acc);
}

// one thread per channel, after conv_kernel has read the old state: the
// state moves up by T in place, oldest first, as on the CPU
static __global__ void
conv_state_kernel (float *state, const float *x, int ldx, int T, int C, int K)
{
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C)
    return;
  for (int k = 0; k < K - 1; k++)
    {
      int j = T - (K - 1) + k;
      state[(size_t) k * C + c] = j < 0 ? state[(size_t) (K - 1 + j) * C + c]
                                        : x[(size_t) j * ldx + c];
    }
}

extern "C" LscStatus
lsc_cuda_ssm_conv (LscCudaContext *ctx, float *u, float *state, const float *x, int ldx, int T,
                   int C, int K, const float *w, const float *b)
{
  if (T <= 0 || C <= 0)
    return LSC_STATUS_OK;
  if (K < 1)
    return LSC_STATUS_INVALID_ARGUMENT;
  conv_kernel<<<lsc_cuda_blocks ((size_t) T * C, 256), 256, 0, ctx->stream>>> (u, state, x, ldx,
                                                                              T, C, K, w, b);
  if (K > 1)
    conv_state_kernel<<<lsc_cuda_blocks (C, 128), 128, 0, ctx->stream>>> (state, x, ldx, T, C, K);
  return LSC_CUDA_LAUNCHED ();
}

static __global__ void
dt_kernel (float *dt, const float *x, int ldx, int T, int n, const float *bias)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t) T * n)
    return;
  size_t t = i / n, j = i % n;
  float v = x[t * ldx + j] + bias[j];
  dt[i] = v > 20.0f ? v : log1pf (expf (v));   // torch.nn.functional.softplus
}

extern "C" LscStatus
lsc_cuda_ssm_dt (LscCudaContext *ctx, float *dt, const float *x, int ldx, int T, int n,
                 const float *bias)
{
  if (T <= 0 || n <= 0)
    return LSC_STATUS_OK;
  dt_kernel<<<lsc_cuda_blocks ((size_t) T * n, 256), 256, 0, ctx->stream>>> (dt, x, ldx, T, n,
                                                                            bias);
  return LSC_CUDA_LAUNCHED ();
}

// LANES threads (a power of two <= 32, so a channel's lanes share a warp)
// hold a channel's states, SPL each: state n = lane + j LANES. Every thread
// of a warp runs every step (the shuffles need them all); lanes past the
// last channel or state compute with zeros and write nothing.
template <int LANES, int SPL>
static __global__ void
scan_kernel (LscCudaScan a)
{
  int per_block = SCAN_THREADS / LANES;
  int c = blockIdx.x * per_block + threadIdx.x / LANES, lane = threadIdx.x % LANES;
  bool live = c < a.E;
  int ch = live ? c : a.E - 1;   // a valid channel to read, for the others
  int H = a.E / a.P, h = ch / a.P, g = h / (H / a.G);

  float s[SPL], A[SPL];
  bool has[SPL];
#pragma unroll
  for (int j = 0; j < SPL; j++)
    {
      int n = lane + j * LANES;
      has[j] = live && n < a.N;
      s[j] = has[j] ? a.state[(size_t) ch * a.N + n] : 0.0f;
      A[j] = has[j] ? a.A[(size_t) h * a.a_head + (size_t) n * a.a_state] : 0.0f;
    }
  float D = a.D[h];

  for (int t = 0; t < a.T; t++)
    {
      float d = a.dt[(size_t) t * H + h], xv = a.x[(size_t) t * a.ldx + ch];
      const float *B = a.B + (size_t) t * a.ldbc + (size_t) g * a.N;
      const float *C = a.C + (size_t) t * a.ldbc + (size_t) g * a.N;
      float dx = d * xv, acc = 0.0f;
#pragma unroll
      for (int j = 0; j < SPL; j++)
        if (has[j])
          {
            int n = lane + j * LANES;
            s[j] = expf (d * A[j]) * s[j] + dx * B[n];
            acc += s[j] * C[n];
          }
#pragma unroll
      for (int o = LANES / 2; o > 0; o /= 2)
        acc += __shfl_xor_sync (0xffffffffu, acc, o);
      if (live && lane == 0)
        {
          float y = acc + D * xv;
          if (a.z != NULL)
            y *= silu (a.z[(size_t) t * a.ldz + ch]);
          a.y[(size_t) t * a.ldy + ch] = y;
        }
    }
#pragma unroll
  for (int j = 0; j < SPL; j++)
    if (has[j])
      a.state[(size_t) ch * a.N + lane + j * LANES] = s[j];
}

template <int LANES>
static void
launch_scan (const LscCudaScan *a, int spl, cudaStream_t stream)
{
  unsigned blocks = lsc_cuda_blocks (a->E, SCAN_THREADS / LANES);
  if (spl <= 1)
    scan_kernel<LANES, 1><<<blocks, SCAN_THREADS, 0, stream>>> (*a);
  else if (spl <= 2)
    scan_kernel<LANES, 2><<<blocks, SCAN_THREADS, 0, stream>>> (*a);
  else if (spl <= 4)
    scan_kernel<LANES, 4><<<blocks, SCAN_THREADS, 0, stream>>> (*a);
  else
    scan_kernel<LANES, 8><<<blocks, SCAN_THREADS, 0, stream>>> (*a);
}

extern "C" LscStatus
lsc_cuda_ssm_scan (LscCudaContext *ctx, const LscCudaScan *a)
{
  if (a->T <= 0 || a->E <= 0)
    return LSC_STATUS_OK;
  if (a->N < 1 || a->N > MAX_STATES || a->P < 1 || a->G < 1 || a->E % a->P != 0
      || (a->E / a->P) % a->G != 0)
    return a->N > MAX_STATES ? LSC_STATUS_UNSUPPORTED : LSC_STATUS_INVALID_ARGUMENT;
  int lanes = 1;
  while (lanes < a->N && lanes < 32)
    lanes *= 2;
  int spl = (a->N + lanes - 1) / lanes;
  switch (lanes)
    {
    case 1: launch_scan<1> (a, spl, ctx->stream); break;
    case 2: launch_scan<2> (a, spl, ctx->stream); break;
    case 4: launch_scan<4> (a, spl, ctx->stream); break;
    case 8: launch_scan<8> (a, spl, ctx->stream); break;
    case 16: launch_scan<16> (a, spl, ctx->stream); break;
    default: launch_scan<32> (a, spl, ctx->stream); break;
    }
  return LSC_CUDA_LAUNCHED ();
}

// one block per (row, group); the sum of squares in double, as on the CPU
static __global__ void
gated_norm_kernel (float *y, const float *z, int ldz, const float *w, int E, int G, double eps)
{
  int t = blockIdx.x / G, g = blockIdx.x % G, gs = E / G;
  float *yr = y + (size_t) t * E + (size_t) g * gs;
  const float *zr = z + (size_t) t * ldz + (size_t) g * gs;
  double ss = 0.0;
  for (int i = threadIdx.x; i < gs; i += ROW_THREADS)
    {
      float v = yr[i] * silu (zr[i]);
      yr[i] = v;
      ss += (double) v * v;
    }
  ss = lsc_block_reduce<ROW_THREADS> (ss, LscSumOp ());
  float r = (float) (1.0 / sqrt (ss / gs + eps));
  for (int i = threadIdx.x; i < gs; i += ROW_THREADS)
    yr[i] = yr[i] * r * w[(size_t) g * gs + i];
}

extern "C" LscStatus
lsc_cuda_ssm_gated_norm (LscCudaContext *ctx, float *y, const float *z, int ldz, const float *w,
                         int T, int E, int G, double eps)
{
  if (T <= 0 || E <= 0)
    return LSC_STATUS_OK;
  if (G < 1 || E % G != 0)
    return LSC_STATUS_INVALID_ARGUMENT;
  gated_norm_kernel<<<(unsigned) T * G, ROW_THREADS, 0, ctx->stream>>> (y, z, ldz, w, E, G, eps);
  return LSC_CUDA_LAUNCHED ();
}
