// SPDX-License-Identifier: MIT
//
// Fused causal attention (FlashAttention-style, float32): one thread block
// per (64 query rows, head) walks the visible keys 64 at a time. The block
// holds its queries, one tile of keys (transposed) and values, and the
// tile's probabilities in shared memory; each of its 256 threads (16 x 16)
// owns 4 rows x 4 keys of the score tile and 4 rows x (4 per 64) columns of
// the output. The softmax is online: a running row max m and sum l, the
// output and l rescaled by exp(m_old - m_new) whenever the max grows, so
// scores never reach global memory.
//
// The row sums l (and the capture correction c) accumulate in double, so a
// 128k-key row keeps its normaliser to float precision. With `refine`, every
// key whose weight exp(s - m) is at least 1e-3 of the running l (a superset
// of the keys whose final p >= 1e-3, as l only grows) also adds
// exp(s - m) * expm1(x64 - s) to c, x64 being the logit recomputed from the
// same float q and k in double; then
// lse = m + ln l + ln(1 + c / l) is the double-precision normaliser that
// exact tile recomputation (engine/lsc-attention.c) needs, as
// _lsc_attention_refine_lse () computes it on the CPU.
//
// A per-row logit scale (attention hooks: a temperature per layer, head and
// query row) enters as row_scale (n_heads, T): row t of head h uses the
// float product scale * row_scale[h T + t] where `scale` stands otherwise,
// both in its logits (dot * that product, as the CPU's decode path
// lsc_fast_attend_one () computes them) and in the refinement, so lse is the
// normaliser of that product times the float64 dot, the scale the capture
// store keeps for the row.
#include "lsc-cuda-common.cuh"

#include <algorithm>

#define BR 64          // query rows per block
#define BC 64          // keys per tile
#define THREADS 256
#define REFINE_MIN_P 1e-3f

// SHARED_KV: the tile's values go where its keys were, loaded after the
// softmax, for GPUs that let a block opt into less shared memory than the
// H100's 227 KiB (99 KiB on an RTX 4090, 64 KiB on a T4): 84 KiB instead
// of 116 KiB at HDP 128, 52 KiB instead of 67 KiB at 64, at the cost of a
// second load and barrier per tile.
template <int HDP, bool SHARED_KV>
struct AttnSmem {
  static constexpr int QS = HDP + 4;     // row stride of Qs (keeps float4 alignment)
  static constexpr int KS = BC + 4;      // row stride of Kt and Ps
  static constexpr size_t floats = (size_t) BR * QS + (size_t) HDP * KS
                                   + (SHARED_KV ? 0 : (size_t) BC * HDP) + (size_t) BR * KS;
  static constexpr size_t bytes = floats * sizeof (float);
};

// the sum over the 16 threads of a row group (lanes 16 apart never mix)
template <typename F>
static __device__ inline F
row_sum16 (F v)
{
  for (int o = 8; o > 0; o /= 2)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  return v;
}

static __device__ inline float
row_max16 (float v)
{
  for (int o = 8; o > 0; o /= 2)
    v = fmaxf (v, __shfl_xor_sync (0xffffffffu, v, o));
  return v;
}

static __device__ inline float
comp (const float4 &v, int i)
{
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// Vs (BC, HDP) <- the values of keys k0 .. k0 + BC - 1 (zero past last_pos
// and head_dim)
template <int HDP>
static __device__ inline void
load_values (float *Vs, const float *vbase, int k0, int last_pos, int hd, int kv_dim, int tid)
{
  for (int i = tid; i < BC * HDP; i += THREADS)
    {
      int key = i / HDP, d = i % HDP;
      Vs[key * HDP + d] = k0 + key <= last_pos && d < hd ? vbase[(size_t) (k0 + key) * kv_dim + d]
                                                         : 0.0f;
    }
}

// HDP: head_dim rounded up to 32, 64 or 128 (padding columns are zero).
// Two blocks share an SM up to HDP 64 (69 KB of shared memory each, 128
// registers a thread); at 128 one block takes 119 KB, so its threads may
// use all the registers they want and keep every accumulator out of
// local memory.
template <int HDP, bool SHARED_KV>
static __global__ void __launch_bounds__ (THREADS, HDP > 64 ? 1 : 2)
attention_kernel (float *out, int ldo, float *lse, const float *q, int ldq, const float *keys,
                  const float *values, int start, int T, int group, int hd, int kv_dim,
                  int window, float scale, const float *row_scale, int refine)
{
  using S = AttnSmem<HDP, SHARED_KV>;
  constexpr int QS = S::QS, KS = S::KS;
  constexpr int NJ = (HDP + 63) / 64;     // output column groups of 64 per thread
  extern __shared__ float4 smem4[];
  float *Qs = (float *) smem4;            // (BR, QS)
  float *Kt = Qs + BR * QS;               // (HDP, KS): keys transposed
  float *Vs = SHARED_KV ? Kt : Kt + HDP * KS;              // (BC, HDP)
  float *Ps = Kt + HDP * KS + (SHARED_KV ? 0 : BC * HDP);  // (BR, KS): probabilities of the tile

  const int h = blockIdx.y, kvh = h / group;
  // the heaviest row tiles (most keys) first
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BR;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int rows_here = min (BR, T - q0);
  const int last_pos = start + q0 + rows_here - 1;
  const float *kbase = keys + (size_t) kvh * hd;
  const float *vbase = values + (size_t) kvh * hd;
  // whole float4s of keys: every row and head starts on 16 bytes
  const bool vec4 = hd % 4 == 0 && kv_dim % 4 == 0 && (size_t) keys % 16 == 0;

  for (int i = tid; i < BR * HDP; i += THREADS)
    {
      int r = i / HDP, d = i % HDP;
      Qs[r * QS + d] = r < rows_here && d < hd ? q[(size_t) (q0 + r) * ldq + (size_t) h * hd + d]
                                               : 0.0f;
    }

  int pos[4], lo[4];
  float m[4], o[4][NJ * 4];
  double l[4];     // the row's sum of exp(s - m), the same in its 16 threads
  double c[4];     // this thread's part of the capture correction
  #pragma unroll
  for (int i = 0; i < 4; i++)
    {
      int r = ty * 4 + i;
      pos[i] = r < rows_here ? start + q0 + r : -1;   // -1: no row, every key masked
      lo[i] = window > 0 ? pos[i] - window + 1 : 0;
      m[i] = -INFINITY;
      l[i] = c[i] = 0.0;
      #pragma unroll
      for (int j = 0; j < NJ * 4; j++)
        o[i][j] = 0.0f;
    }

  int first_key = window > 0 ? max (0, start + q0 - window + 1) : 0;
  for (int k0 = first_key / BC * BC; k0 <= last_pos; k0 += BC)
    {
      __syncthreads ();   // the previous tile is no longer read
      // Neighbouring threads take neighbouring keys, so the transposed
      // stores hit distinct banks; each load reads a different key row.
      // With 4 dimensions per load a warp touches a quarter of the cache
      // lines it would one float at a time.
      if (vec4)
        for (int i = tid; i < BC * HDP / 4; i += THREADS)
          {
            int key = i % BC, d = i / BC * 4;
            float4 kv = { 0.0f, 0.0f, 0.0f, 0.0f };
            if (k0 + key <= last_pos && d < hd)
              kv = *(const float4 *) &kbase[(size_t) (k0 + key) * kv_dim + d];
            Kt[(d + 0) * KS + key] = kv.x;
            Kt[(d + 1) * KS + key] = kv.y;
            Kt[(d + 2) * KS + key] = kv.z;
            Kt[(d + 3) * KS + key] = kv.w;
          }
      else
        for (int i = tid; i < BC * HDP; i += THREADS)
          {
            int key = i % BC, d = i / BC;
            Kt[d * KS + key] = k0 + key <= last_pos && d < hd
                                 ? kbase[(size_t) (k0 + key) * kv_dim + d] : 0.0f;
          }
      if (!SHARED_KV)
        load_values<HDP> (Vs, vbase, k0, last_pos, hd, kv_dim, tid);
      __syncthreads ();

      // scores of rows ty*4 + i, keys tx*4 + j
      float s[4][4] = {};
      for (int d = 0; d < HDP; d += 4)
        {
          float4 qv[4];
          #pragma unroll
          for (int i = 0; i < 4; i++)
            qv[i] = *(const float4 *) &Qs[(ty * 4 + i) * QS + d];
          #pragma unroll
          for (int dd = 0; dd < 4; dd++)
            {
              float4 kv = *(const float4 *) &Kt[(d + dd) * KS + tx * 4];
              #pragma unroll
              for (int i = 0; i < 4; i++)
                {
                  float a = comp (qv[i], dd);
                  s[i][0] += a * kv.x;
                  s[i][1] += a * kv.y;
                  s[i][2] += a * kv.z;
                  s[i][3] += a * kv.w;
                }
            }
        }

      #pragma unroll
      for (int i = 0; i < 4; i++)
        {
          const float rsi = row_scale != NULL && pos[i] >= 0
                              ? scale * row_scale[(size_t) h * T + q0 + ty * 4 + i] : scale;
          float mx = -INFINITY;
          #pragma unroll
          for (int j = 0; j < 4; j++)
            {
              int key = k0 + tx * 4 + j;
              bool visible = key <= pos[i] && key >= lo[i];
              s[i][j] = visible ? s[i][j] * rsi : -INFINITY;
              mx = fmaxf (mx, s[i][j]);
            }
          float m_new = fmaxf (m[i], row_max16 (mx));
          float corr = m_new == -INFINITY ? 1.0f : expf (m[i] - m_new);
          float p[4], psum = 0.0f;
          #pragma unroll
          for (int j = 0; j < 4; j++)
            {
              p[j] = s[i][j] == -INFINITY ? 0.0f : expf (s[i][j] - m_new);
              Ps[(ty * 4 + i) * KS + tx * 4 + j] = p[j];
              psum += p[j];
            }
          l[i] = l[i] * corr + row_sum16 (psum);
          if (refine)
            {
              // l only grows, so p / l[i] bounds the key's final probability
              // from above: every key with p >= 1e-3 in the end is included
              double cpart = 0.0;
              #pragma unroll
              for (int j = 0; j < 4; j++)
                if (p[j] > 0.0f && p[j] >= REFINE_MIN_P * l[i])
                  {
                    double dot = 0.0;
                    for (int d = 0; d < hd; d++)
                      dot += (double) Qs[(ty * 4 + i) * QS + d] * (double) Kt[d * KS + tx * 4 + j];
                    cpart += p[j] * expm1 ((double) rsi * dot - (double) s[i][j]);
                  }
              c[i] = c[i] * corr + cpart;
            }
          #pragma unroll
          for (int j = 0; j < NJ * 4; j++)
            o[i][j] *= corr;
          m[i] = m_new;
        }
      __syncthreads ();
      if (SHARED_KV)
        {
          // the keys are read: the values take their place
          load_values<HDP> (Vs, vbase, k0, last_pos, hd, kv_dim, tid);
          __syncthreads ();
        }

      // O += P V
      for (int k = 0; k < BC; k += 4)
        {
          float4 pv[4];
          #pragma unroll
          for (int i = 0; i < 4; i++)
            pv[i] = *(const float4 *) &Ps[(ty * 4 + i) * KS + k];
          #pragma unroll
          for (int kk = 0; kk < 4; kk++)
            #pragma unroll
            for (int jj = 0; jj < NJ; jj++)
              {
                int col = jj * 64 + tx * 4;
                if (col >= HDP)
                  continue;
                float4 v = *(const float4 *) &Vs[(k + kk) * HDP + col];
                #pragma unroll
                for (int i = 0; i < 4; i++)
                  {
                    float p = comp (pv[i], kk);
                    o[i][jj * 4 + 0] += p * v.x;
                    o[i][jj * 4 + 1] += p * v.y;
                    o[i][jj * 4 + 2] += p * v.z;
                    o[i][jj * 4 + 3] += p * v.w;
                  }
              }
        }
    }

  #pragma unroll
  for (int i = 0; i < 4; i++)
    {
      double lt = l[i], ct = row_sum16 (c[i]);   // l is the row's total, c a partial
      if (pos[i] < 0)
        continue;
      int r = q0 + ty * 4 + i;
      float inv = (float) (1.0 / lt);
      #pragma unroll
      for (int jj = 0; jj < NJ; jj++)
        #pragma unroll
        for (int e = 0; e < 4; e++)
          {
            int col = jj * 64 + tx * 4 + e;
            if (col < hd)
              out[(size_t) r * ldo + (size_t) h * hd + col] = o[i][jj * 4 + e] * inv;
          }
      if (lse != NULL && tx == 0)
        lse[(size_t) h * T + r] = (float) ((double) m[i] + log (lt) + (refine ? log1p (ct / lt) : 0.0));
    }
}

/* ---- decode: few query rows, many keys ---- */

// A handful of rows would give the tiled kernel one block per head: 32
// blocks on 132 SMs, each walking the whole cache. Instead (split-K, "flash
// decoding") each row's visible keys are cut into n_splits chunks, one block
// per (chunk, head, row) computes its chunk's max, sum and weighted values,
// and a second kernel merges the chunks. With refine (a captured decode
// step, as in retrieval-head runs) a chunk also sums the capture correction
// over its keys with p >= 1e-3 of the chunk's sum: a superset of the keys
// whose final p >= 1e-3, the row's sum being at least the chunk's.
#define SPLIT_THREADS 128
#define MAX_SPLITS 512         // chunks of a row up to 2M keys (MAX_SPLITS x MAX_CHUNK)
#define MIN_CHUNK 256
#define MAX_CHUNK 4096
#define SPLIT_MAX_T 4

// part (T, n_heads, n_splits, PART_HEAD + hd): the chunk's max, sum and
// capture correction, and its weighted values. The sum of at most MAX_CHUNK
// weights, summed in double and rounded once, is good to float precision.
#define PART_HEAD 3

static __global__ void __launch_bounds__ (SPLIT_THREADS)
decode_partial_kernel (float *part, const float *q, int ldq, const float *keys, const float *values,
                       int start, int group, int hd, int kv_dim, int window, float scale,
                       const float *row_scale, int chunk, int refine)
{
  extern __shared__ float S[];           // (chunk) scores, then weights
  float *X = S + chunk;                  // with refine, (chunk) the scores kept
  __shared__ float qs[128];
  const int split = blockIdx.x, h = blockIdx.y, t = blockIdx.z, kvh = h / group;
  const int pos = start + t, first = window > 0 ? max (0, pos - window + 1) : 0;
  const int k_lo = first + split * chunk, k_hi = min (pos + 1, k_lo + chunk);
  // the row's logit scale; row_scale is (n_heads, T), T = gridDim.z
  const float rscale = row_scale != NULL ? scale * row_scale[(size_t) h * gridDim.z + t] : scale;
  float *out = part + (((size_t) t * gridDim.y + h) * gridDim.x + split) * (PART_HEAD + hd);

  for (int d = threadIdx.x; d < hd; d += SPLIT_THREADS)
    qs[d] = q[(size_t) t * ldq + (size_t) h * hd + d];
  __syncthreads ();
  if (k_lo >= k_hi)   // an empty chunk (a shorter row): weight zero
    {
      for (int d = threadIdx.x; d < PART_HEAD + hd; d += SPLIT_THREADS)
        out[d] = d == 0 ? -INFINITY : 0.0f;
      return;
    }
  // one key per thread, read 4 dimensions at a time where rows allow
  const bool vec4 = hd % 4 == 0 && kv_dim % 4 == 0 && (size_t) keys % 16 == 0;
  float mx = -INFINITY;
  for (int k = k_lo + threadIdx.x; k < k_hi; k += SPLIT_THREADS)
    {
      const float *kr = keys + (size_t) k * kv_dim + (size_t) kvh * hd;
      float dot = 0.0f;
      if (vec4)
        for (int d = 0; d < hd; d += 4)
          {
            float4 kv = *(const float4 *) &kr[d];
            dot += qs[d] * kv.x;
            dot += qs[d + 1] * kv.y;
            dot += qs[d + 2] * kv.z;
            dot += qs[d + 3] * kv.w;
          }
      else
        for (int d = 0; d < hd; d++)
          dot += qs[d] * kr[d];
      S[k - k_lo] = dot * rscale;
      mx = fmaxf (mx, dot * rscale);
    }
  mx = lsc_block_reduce<SPLIT_THREADS> (mx, LscMaxOp ());
  double sum = 0.0;
  for (int k = k_lo + threadIdx.x; k < k_hi; k += SPLIT_THREADS)
    {
      float p = expf (S[k - k_lo] - mx);
      if (refine)
        X[k - k_lo] = S[k - k_lo];
      S[k - k_lo] = p;
      sum += p;
    }
  sum = lsc_block_reduce<SPLIT_THREADS> (sum, LscSumOp ());   // also orders the writes to S before the reads
  double c = 0.0;
  if (refine)
    {
      // each thread its own keys again: the logit in double from the same
      // float q and k, as the tiled kernel refines
      for (int k = k_lo + threadIdx.x; k < k_hi; k += SPLIT_THREADS)
        {
          float p = S[k - k_lo];
          if (p > 0.0f && p >= REFINE_MIN_P * sum)
            {
              const float *kr = keys + (size_t) k * kv_dim + (size_t) kvh * hd;
              double dot = 0.0;
              for (int d = 0; d < hd; d++)
                dot += (double) qs[d] * (double) kr[d];
              c += p * expm1 ((double) rscale * dot - (double) X[k - k_lo]);
            }
        }
      c = lsc_block_reduce<SPLIT_THREADS> (c, LscSumOp ());
    }
  for (int d = threadIdx.x; d < hd; d += SPLIT_THREADS)
    {
      const float *vc = values + (size_t) kvh * hd + d;
      float acc = 0.0f;
      for (int k = k_lo; k < k_hi; k++)
        acc += S[k - k_lo] * vc[(size_t) k * kv_dim];
      out[PART_HEAD + d] = acc;
    }
  if (threadIdx.x == 0)
    {
      out[0] = mx;
      out[1] = (float) sum;
      out[2] = (float) c;
    }
}

// one block (hd threads, at least 32) per (head, row)
static __global__ void
decode_merge_kernel (float *o, int ldo, float *lse, const float *part, int n_splits, int T, int hd)
{
  const int h = blockIdx.x, t = blockIdx.y, n_heads = gridDim.x;
  const float *p = part + ((size_t) t * n_heads + h) * n_splits * (PART_HEAD + hd);
  float M = -INFINITY;
  for (int i = 0; i < n_splits; i++)
    M = fmaxf (M, p[(size_t) i * (PART_HEAD + hd)]);
  double L = 0.0, C = 0.0;
  float acc = 0.0f;
  int d = threadIdx.x;
  for (int i = 0; i < n_splits; i++)
    {
      const float *pi = p + (size_t) i * (PART_HEAD + hd);
      if (pi[0] == -INFINITY)
        continue;
      float w = expf (pi[0] - M);
      L += (double) w * pi[1];
      C += (double) w * pi[2];
      if (d < hd)
        acc += w * pi[PART_HEAD + d];
    }
  if (d < hd)
    o[(size_t) t * ldo + (size_t) h * hd + d] = (float) (acc / L);
  if (lse != NULL && d == 0)
    lse[(size_t) h * T + t] = (float) (M + log (L) + log1p (C / L));
}

// The chunks a decode row of n_vis keys is cut into: chunks of MIN_CHUNK
// keys or more, up to MAX_SPLITS of them; past MAX_SPLITS x MAX_CHUNK keys
// (2M: an H200 holds more of a 1B model's cache) as many chunks of MAX_CHUNK
// as the row needs, where a fallback to the tiled kernel would leave one
// block per head to walk the whole cache. Grows with n_vis, so a workspace
// sized for n_ctx keys holds every row's.
static int
decode_splits (int n_vis)
{
  long long n = std::max (n_vis, 1);
  long long fine = std::min ((long long) MAX_SPLITS, (n + MIN_CHUNK - 1) / MIN_CHUNK);
  return (int) std::max (fine, (n + MAX_CHUNK - 1) / MAX_CHUNK);
}

extern "C" size_t
lsc_cuda_attention_workspace (int T, int n_heads, int head_dim, int n_keys)
{
  // lsc_cuda_attention () cuts a row of n_vis <= n_keys keys into this many or fewer
  size_t splits = decode_splits (n_keys);
  if (T > SPLIT_MAX_T)
    return 0;
  return (size_t) T * n_heads * splits * (PART_HEAD + head_dim) * sizeof (float);
}

template <int HDP, bool SHARED_KV>
static LscStatus
launch_layout (LscCudaContext *ctx, float *out, int ldo, float *lse, const float *q, int ldq,
               const float *keys, const float *values, int start, int T, int n_heads,
               int n_kv_heads, int hd, int window, float scale, const float *row_scale, int refine)
{
  size_t smem = AttnSmem<HDP, SHARED_KV>::bytes;
  LSC_CUDA_CHECK (cudaFuncSetAttribute (attention_kernel<HDP, SHARED_KV>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
  dim3 grid ((T + BR - 1) / BR, n_heads);
  attention_kernel<HDP, SHARED_KV><<<grid, THREADS, smem, ctx->stream>>> (
      out, ldo, lse, q, ldq, keys, values, start, T, n_heads / n_kv_heads, hd, n_kv_heads * hd,
      window, scale, row_scale, refine);
  return LSC_CUDA_LAUNCHED ();
}

// the separate key and value tiles where the device allows, else the shared one
template <int HDP>
static LscStatus
launch (LscCudaContext *ctx, float *out, int ldo, float *lse, const float *q, int ldq,
        const float *keys, const float *values, int start, int T, int n_heads, int n_kv_heads,
        int hd, int window, float scale, const float *row_scale, int refine)
{
  if (AttnSmem<HDP, false>::bytes <= ctx->smem_optin)
    return launch_layout<HDP, false> (ctx, out, ldo, lse, q, ldq, keys, values, start, T, n_heads,
                                      n_kv_heads, hd, window, scale, row_scale, refine);
  if (AttnSmem<HDP, true>::bytes <= ctx->smem_optin)
    return launch_layout<HDP, true> (ctx, out, ldo, lse, q, ldq, keys, values, start, T, n_heads,
                                     n_kv_heads, hd, window, scale, row_scale, refine);
  return LSC_STATUS_UNSUPPORTED;
}

extern "C" size_t
lsc_cuda_attention_shared_bytes (int head_dim)
{
  return head_dim <= 32 ? AttnSmem<32, true>::bytes
         : head_dim <= 64 ? AttnSmem<64, true>::bytes : AttnSmem<128, true>::bytes;
}

extern "C" LscStatus
lsc_cuda_attention (LscCudaContext *ctx, float *out, int ldo, float *lse, const float *q, int ldq,
                    const float *keys, const float *values, int start, int T, int n_heads,
                    int n_kv_heads, int head_dim, int window, float scale, const float *row_scale,
                    int refine, void *work)
{
  if (T <= 0)
    return LSC_STATUS_OK;
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || start < 0 || head_dim <= 0)
    return LSC_STATUS_INVALID_ARGUMENT;
  if (head_dim > 128)
    return LSC_STATUS_UNSUPPORTED;

  /* the last row sees the most keys */
  int pos = start + T - 1, n_vis = window > 0 ? std::min (window, pos + 1) : pos + 1;
  int n_splits = decode_splits (n_vis);
  int chunk = (int) (((long long) n_vis + n_splits - 1) / n_splits);   // at most MAX_CHUNK
  if (work != NULL && T <= SPLIT_MAX_T)
    {
      dim3 grid (n_splits, n_heads, T);
      size_t smem = (refine ? 2 : 1) * chunk * sizeof (float);
      decode_partial_kernel<<<grid, SPLIT_THREADS, smem, ctx->stream>>> (
          (float *) work, q, ldq, keys, values, start, n_heads / n_kv_heads, head_dim,
          n_kv_heads * head_dim, window, scale, row_scale, chunk, refine);
      LscStatus status = LSC_CUDA_LAUNCHED ();
      if (status != LSC_STATUS_OK)
        return status;
      decode_merge_kernel<<<dim3 (n_heads, T), std::max (32, head_dim), 0, ctx->stream>>> (
          out, ldo, lse, (const float *) work, n_splits, T, head_dim);
      return LSC_CUDA_LAUNCHED ();
    }
  if (head_dim <= 32)
    return launch<32> (ctx, out, ldo, lse, q, ldq, keys, values, start, T, n_heads, n_kv_heads,
                       head_dim, window, scale, row_scale, refine);
  if (head_dim <= 64)
    return launch<64> (ctx, out, ldo, lse, q, ldq, keys, values, start, T, n_heads, n_kv_heads,
                       head_dim, window, scale, row_scale, refine);
  return launch<128> (ctx, out, ldo, lse, q, ldq, keys, values, start, T, n_heads, n_kv_heads,
                      head_dim, window, scale, row_scale, refine);
}
