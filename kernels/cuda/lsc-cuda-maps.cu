// SPDX-License-Identifier: MIT
//
// Attention maps from a capture: the GPU twin of the tile and the streaming
// pass of engine/lsc-attention.c.
//
// Tiles: one thread per cell, 16 x 16 cells per block; the block's 16 queries
// and 16 keys wait in shared memory (rows padded to head_dim + 1 floats so
// that the 16 keys a half-warp reads sit in 16 banks), and each dot product
// is summed in double. A product of two floats is exact in double, so the
// dot is the CPU's to the last bit whether or not either side fuses the
// multiply-add; only exp's last bit may differ before p is rounded to float.
//
// The streaming pass: a block of rows at a time, the rows' scores against
// every key they can see from one cuBLAS GEMM (float32, as the CPU's sgemm)
// into scratch, then two kernels read them: one block per row for the row's
// statistics, one block per pyramid cell for the cell's max, sum and count.
// Every sum is one block's reduction (double), written once, so the results
// do not depend on how the blocks were scheduled.
#include "lsc-cuda-common.cuh"

#include <algorithm>
#include <cmath>

#define TILE 16               // cells per side of a tile block
#define ROW_THREADS 256       // threads per row of the statistics
#define CELL_THREADS 128      // threads per pyramid cell of more than 32 entries (else 32)
#define MAX_GRID_Y 65535

static __device__ inline int
first_key (const LscCudaMap &m, int i)
{
  return m.window > 0 ? max (0, i - m.window + 1) : 0;
}

static __device__ inline float
row_scale (const LscCudaMap &m, int i)
{
  return m.scale != NULL ? m.scale[i - m.row0] : m.base_scale;
}

/* ---- tiles ---- */

static __global__ void
tile_kernel (LscCudaMap m, int q0, int q1, int k0, int k1, float masked_value, float *out)
{
  extern __shared__ float sh[];
  const int hd = m.head_dim, st = hd + 1;
  float *qs = sh, *ks = sh + TILE * st;
  int ib = q0 + blockIdx.y * TILE, jb = k0 + blockIdx.x * TILE;

  for (int e = threadIdx.y * TILE + threadIdx.x; e < TILE * hd; e += TILE * TILE)
    {
      int r = e / hd, d = e % hd;
      qs[r * st + d] = ib + r < q1 ? m.q[(size_t) (ib + r - m.row0) * hd + d] : 0.0f;
      ks[r * st + d] = jb + r < k1 ? m.keys[(size_t) (jb + r) * m.ldk + d] : 0.0f;
    }
  __syncthreads ();

  int i = ib + threadIdx.y, j = jb + threadIdx.x;
  if (i >= q1 || j >= k1)
    return;
  float *o = out + (size_t) (i - q0) * (k1 - k0) + (j - k0);
  if (j < first_key (m, i) || j > i)
    {
      *o = masked_value;
      return;
    }
  const float *qi = qs + threadIdx.y * st, *kj = ks + threadIdx.x * st;
  double dot = 0.0;
  for (int d = 0; d < hd; d++)
    dot += (double) qi[d] * kj[d];
  *o = (float) exp ((double) row_scale (m, i) * dot - (double) m.lse[i - m.row0]);
}

extern "C" LscStatus
lsc_cuda_attention_tile (LscCudaContext *ctx, const LscCudaMap *m, int q0, int q1, int k0, int k1,
                         float masked_value, float *out)
{
  if (q0 < m->row0 || q1 > m->row0 + m->n_rows || k0 < 0 || m->head_dim < 1)
    return LSC_STATUS_INVALID_ARGUMENT;
  if (q1 <= q0 || k1 <= k0)
    return LSC_STATUS_OK;
  size_t smem = (size_t) 2 * TILE * (m->head_dim + 1) * sizeof (float);
  if (smem > 48 * 1024)
    return LSC_STATUS_UNSUPPORTED;
  // a launch's grid holds MAX_GRID_Y blocks of TILE rows: taller tiles
  // (a million-row column) take several
  const int rows_per_launch = MAX_GRID_Y * TILE;
  for (int r = q0, r1; r < q1; r = r1)
    {
      r1 = r + std::min (q1 - r, rows_per_launch);
      dim3 grid (lsc_cuda_blocks (k1 - k0, TILE), lsc_cuda_blocks (r1 - r, TILE));
      tile_kernel<<<grid, dim3 (TILE, TILE), smem, ctx->stream>>> (
          *m, r, r1, k0, k1, masked_value, out + (size_t) (r - q0) * (k1 - k0));
      LscStatus status = LSC_CUDA_LAUNCHED ();
      if (status != LSC_STATUS_OK)
        return status;
    }
  return LSC_STATUS_OK;
}

/* ---- the streaming pass ---- */

// Scores of rows [i0, i1) against keys [k_lo, i1): row i's score of key j at
// S[(i - i0) lds + j - k_lo].
struct Chunk {
  int i0, i1, k_lo;
  const float *S;
  size_t lds;
};

static __device__ inline float
chunk_p (const LscCudaMap &m, const Chunk &c, int i, int j)
{
  float s = c.S[(size_t) (i - c.i0) * c.lds + (j - c.k_lo)];
  return expf (row_scale (m, i) * s - m.lse[i - m.row0]);
}

// One block per row of the chunk: entropy, sink mass, max p, distance.
static __global__ void
pool_rows_kernel (LscCudaMap m, Chunk c, int sink_tokens, double *row_stats)
{
  int i = c.i0 + blockIdx.x;
  double entropy = 0.0, sink = 0.0, dist = 0.0;
  float maxp = 0.0f;
  for (int j = first_key (m, i) + threadIdx.x; j <= i; j += ROW_THREADS)
    {
      float p = chunk_p (m, c, i, j);
      if (p > 0)
        entropy -= p * logf (p);   // the product in float, the sum in double, as on the CPU
      if (j < sink_tokens)
        sink += p;
      dist += (double) p * (i - j);
      maxp = fmaxf (maxp, p);
    }
  entropy = lsc_block_reduce<ROW_THREADS> (entropy, LscSumOp ());
  sink = lsc_block_reduce<ROW_THREADS> (sink, LscSumOp ());
  dist = lsc_block_reduce<ROW_THREADS> (dist, LscSumOp ());
  maxp = lsc_block_reduce<ROW_THREADS> (maxp, LscMaxOp ());
  if (threadIdx.x == 0)
    {
      double *o = row_stats + (size_t) (i - m.row0) * 4;
      o[0] = entropy;
      o[1] = sink;
      o[2] = maxp;
      o[3] = dist;
    }
}

// One block (of THREADS) per pyramid cell (rb0 + y, cb0 + x) that the
// chunk's rows reach: the chunk's part of the cell merged into what earlier
// chunks left.
template <int THREADS>
static __global__ void
pool_cells_kernel (LscCudaMap m, Chunk c, int block, int rb0, int cb0, int cols_b, float *cell_max,
                   double *cell_sum, long long *cell_count)
{
  int rb = rb0 + blockIdx.y, cb = cb0 + blockIdx.x;
  int ra = max (c.i0, m.row0 + rb * block), rz = min (c.i1, m.row0 + (rb + 1) * block);
  int ca = max (c.k_lo, cb * block), cz = min (c.i1, (cb + 1) * block);
  // rows [ra, rz) together see keys [first(ra), rz - 1]: a cell outside
  // (above the diagonal, before the window) has nothing (the whole block returns)
  if (ra >= rz || ca > rz - 1 || cz - 1 < first_key (m, ra))
    return;

  int w = cz - ca, n = (rz - ra) * w, count = 0;
  double sum = 0.0;
  float maxp = 0.0f;
  for (int e = threadIdx.x; e < n; e += THREADS)
    {
      int i = ra + e / w, j = ca + e % w;
      if (j < first_key (m, i) || j > i)
        continue;
      float p = chunk_p (m, c, i, j);
      sum += p;
      maxp = fmaxf (maxp, p);
      count++;
    }
  sum = lsc_block_reduce<THREADS> (sum, LscSumOp ());
  maxp = lsc_block_reduce<THREADS> (maxp, LscMaxOp ());
  count = lsc_block_reduce<THREADS> (count, LscSumOp ());
  if (threadIdx.x == 0 && count > 0)
    {
      size_t at = (size_t) rb * cols_b + cb;
      cell_max[at] = fmaxf (cell_max[at], maxp);   // NAN (no visible key yet) gives maxp
      cell_sum[at] += sum;
      cell_count[at] += count;
    }
}

static __global__ void
cells_init_kernel (float *cell_max, double *cell_sum, long long *cell_count, size_t n)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    {
      cell_max[i] = __int_as_float (0x7fc00000);   // NAN
      cell_sum[i] = 0.0;
      cell_count[i] = 0;
    }
}

// The most rows r from i0 whose scores against keys [k_lo, i0 + r) fit in
// cap floats: r (i0 - k_lo + r) <= cap; at least 1 (cap holds every key).
static int
chunk_rows (int i0, int k_lo, int rows_left, size_t cap)
{
  double base = i0 - k_lo;
  long long r = (long long) ((std::sqrt (base * base + 4.0 * (double) cap) - base) / 2);
  while (r > 1 && (double) r * (base + r) > (double) cap)
    r--;
  return (int) std::max (1LL, std::min (r, (long long) rows_left));
}

extern "C" LscStatus
lsc_cuda_attention_pool (LscCudaContext *ctx, const LscCudaMap *m, int sink_tokens, int block,
                         float *cell_max, double *cell_sum, long long *cell_count,
                         double *row_stats, float *scores, size_t score_cap)
{
  int n_keys = m->row0 + m->n_rows;
  if (m->n_rows < 1 || m->row0 < 0 || block < 1 || m->head_dim < 1 || m->ldk < m->head_dim
      || score_cap < (size_t) n_keys)
    return LSC_STATUS_INVALID_ARGUMENT;
  int rows_b = (m->n_rows + block - 1) / block, cols_b = (n_keys + block - 1) / block;
  if (rows_b > MAX_GRID_Y)
    return LSC_STATUS_INVALID_ARGUMENT;

  size_t n_cells = (size_t) rows_b * cols_b;
  cells_init_kernel<<<lsc_cuda_blocks (n_cells, 256), 256, 0, ctx->stream>>> (cell_max, cell_sum,
                                                                             cell_count, n_cells);
  LscStatus status = LSC_CUDA_LAUNCHED ();
  const float one = 1.0f, zero = 0.0f;
  for (int i0 = m->row0; i0 < n_keys && status == LSC_STATUS_OK;)
    {
      Chunk c;
      c.i0 = i0;
      c.k_lo = m->window > 0 ? std::max (0, i0 - m->window + 1) : 0;
      c.i1 = i0 + chunk_rows (i0, c.k_lo, n_keys - i0, score_cap);
      c.lds = (size_t) (c.i1 - c.k_lo);
      c.S = scores;
      int R = c.i1 - c.i0;
      // S (R, lds) = Q[i0, i1) K[k_lo, i1)^T: column-major S^T = K^T Q^T
      status = lsc_cublas_status (cublasGemmEx (
          ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int) c.lds, R, m->head_dim, &one,
          m->keys + (size_t) c.k_lo * m->ldk, CUDA_R_32F, m->ldk,
          m->q + (size_t) (i0 - m->row0) * m->head_dim, CUDA_R_32F, m->head_dim, &zero, scores,
          CUDA_R_32F, (int) c.lds, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      if (status != LSC_STATUS_OK)
        break;
      pool_rows_kernel<<<R, ROW_THREADS, 0, ctx->stream>>> (*m, c, sink_tokens, row_stats);
      int rb0 = (c.i0 - m->row0) / block, rb1 = (c.i1 - 1 - m->row0) / block;
      int cb0 = c.k_lo / block, cb1 = (c.i1 - 1) / block;
      dim3 grid (cb1 - cb0 + 1, rb1 - rb0 + 1);
      // a small cell (short maps) keeps one warp, not four mostly idle ones
      if (block * block <= 32)
        pool_cells_kernel<32><<<grid, 32, 0, ctx->stream>>> (*m, c, block, rb0, cb0, cols_b,
                                                             cell_max, cell_sum, cell_count);
      else
        pool_cells_kernel<CELL_THREADS><<<grid, CELL_THREADS, 0, ctx->stream>>> (
            *m, c, block, rb0, cb0, cols_b, cell_max, cell_sum, cell_count);
      status = LSC_CUDA_LAUNCHED ();
      i0 = c.i1;
    }
  return status;
}
