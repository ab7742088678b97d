/* SPDX-License-Identifier: MIT
 *
 * lsc-cuda.h: the CUDA backend's kernel layer (kernels/cuda/), C-callable.
 *
 * Declared in every build; defined only when Longscope is built with CUDA
 * (LSC_HAVE_CUDA). Like the CPU kernels these never print or exit, and they
 * allocate only in the functions whose name says so (lsc_cuda_alloc and
 * lsc_cuda_context_new). Every operation is queued on the context's stream
 * and returns at once; lsc_cuda_download () and lsc_cuda_sync () wait.
 *
 * Pointers marked "device" point to memory from lsc_cuda_alloc (); shapes
 * are row-major, as in lsc-kernels.h, with explicit row strides (ld*) where
 * a matrix may be a slice of a wider one.
 *
 * Precision: f32 weights multiply in float32 (CUBLAS_COMPUTE_32F, never
 * TF32); f16/bf16 weights multiply on tensor cores with float32 accumulation
 * (activations split in two halves, see lsc_cuda_gemm_xwt ()). Norms, RoPE, softmax and attention are
 * float32; softmax statistics are float32 (log-sum-exp corrected in double
 * where capture asks for it, see lsc_cuda_attention ()).
 */
#pragma once

#include "lsc-kernels.h"

typedef struct _LscCudaContext LscCudaContext;

/* Number of CUDA devices (NO_DEVICE when none, no driver, a driver older
 * than the runtime, or a first GPU older than the kernels were built for);
 * the runtime is asked once per process, by the first caller. */
LscStatus lsc_cuda_device_count (int *n_devices);
/* Why no device can be used, for the user ("no CUDA device is present",
 * the driver's or the GPU's age, another error); NULL when one can. */
const char *lsc_cuda_unavailable_reason (void);
/* Smoke test of the toolchain and the device: out (n) <- a * x (n) + y (n)
 * computed on the GPU (host pointers). */
LscStatus lsc_cuda_saxpy (float *out, float a, const float *x, const float *y, size_t n);

/* A device, one stream and one cuBLAS handle. name (at least 256 bytes) may
 * be NULL; it receives the device's name. */
LscStatus lsc_cuda_context_new (LscCudaContext **ctx, int device, char *name);
/* The most dynamic shared memory a block may opt into on the device. */
LscStatus lsc_cuda_device_shared_optin (int device, size_t *bytes);
void lsc_cuda_context_free (LscCudaContext *ctx);
/* Free and total device memory in bytes, and the most this context has held
 * allocated at once. */
LscStatus lsc_cuda_mem_info (LscCudaContext *ctx, size_t *free_bytes, size_t *total_bytes,
                             size_t *peak_bytes);

LscStatus lsc_cuda_alloc (LscCudaContext *ctx, void **ptr, size_t bytes);
void lsc_cuda_free (LscCudaContext *ctx, void *ptr);   /* ptr may be NULL */
/* Page-locked host memory: copies to and from it run at the bus's speed
 * (pageable memory went at under 1 GB/s for captured queries). */
LscStatus lsc_cuda_host_alloc (LscCudaContext *ctx, void **ptr, size_t bytes);
void lsc_cuda_host_free (LscCudaContext *ctx, void *ptr);   /* ptr may be NULL */
/* device dst (bytes) <- host src */
LscStatus lsc_cuda_upload (LscCudaContext *ctx, void *dst, const void *src, size_t bytes);
/* host dst (bytes) <- device src; waits for the stream */
LscStatus lsc_cuda_download (LscCudaContext *ctx, void *dst, const void *src, size_t bytes);
/* host dst (rows, width bytes, dst_pitch apart) <- device src (src_pitch apart); waits */
LscStatus lsc_cuda_download_2d (LscCudaContext *ctx, void *dst, size_t dst_pitch, const void *src,
                                size_t src_pitch, size_t width, size_t rows);
/* device dst (bytes) <- device src */
LscStatus lsc_cuda_copy (LscCudaContext *ctx, void *dst, const void *src, size_t bytes);
/* device dst (bytes) <- zeros */
LscStatus lsc_cuda_zero (LscCudaContext *ctx, void *dst, size_t bytes);
/* device dst (rows, width bytes, dst_pitch apart) <- device src (src_pitch apart) */
LscStatus lsc_cuda_copy_2d (LscCudaContext *ctx, void *dst, size_t dst_pitch, const void *src,
                            size_t src_pitch, size_t width, size_t rows);
/* Waits for everything queued; reports errors of earlier kernels. */
LscStatus lsc_cuda_sync (LscCudaContext *ctx);

/* Y (T, d; ldy) <- X (T, n; ldx) W^T for W (d, n) in dtype (F32, F16 or
 * BF16), all device. Half-precision W needs x_half: device scratch of
 * lsc_cuda_gemm_scratch_bytes (T, n) (NULL for F32). Tensor cores multiply W
 * by X split into two 16-bit halves, X = hi + lo to about 2^-17, in two
 * GEMMs: the result is W times the float32 X, as on the CPU, not times X
 * rounded to W's 8 or 11 bits of mantissa (which moved logits of small
 * random models by 4 %). F16's 5-bit exponent cannot hold every float32:
 * each row of X is scaled by a power of two first (its largest |x| to
 * [2^13, 2^14)) and its row of Y scaled back, so that nothing overflows
 * 65504 and small rows keep their precision. */
LscStatus lsc_cuda_gemm_xwt (LscCudaContext *ctx, float *y, int ldy, const float *x, int ldx,
                             int T, const void *w, LscDType dtype, int d, int n, void *x_half);
/* Bytes of x_half for T rows of n: the two halves and the rows' scales. */
size_t lsc_cuda_gemm_scratch_bytes (int T, int n);

/* out (T, dim) <- rows tokens[t] of table (vocab, dim) in dtype, widened;
 * tokens (T) device int32, already checked to be < vocab. */
LscStatus lsc_cuda_embed (LscCudaContext *ctx, float *out, const int32_t *tokens, int T,
                          const void *table, LscDType dtype, int dim);
/* x (T, dim) += add (T, dim) when add is not NULL, then out (T, dim) <-
 * rmsnorm(x) * w (dim). Reference: lsc_rmsnorm (). */
LscStatus lsc_cuda_rmsnorm (LscCudaContext *ctx, float *out, float *x, const float *add,
                            const float *w, int T, int dim, float eps);
/* x (T, ld) += bias (n) on the first n columns of each row. */
LscStatus lsc_cuda_add_bias (LscCudaContext *ctx, float *x, int ld, const float *bias, int T,
                             int n);
/* x (T, ld): the first n_heads * head_dim columns of each row rotated in
 * place; cos, sin (T, head_dim / 2) for each row's position. Reference:
 * lsc_rope (). */
LscStatus lsc_cuda_rope (LscCudaContext *ctx, float *x, int ld, int T, int n_heads, int head_dim,
                         const float *cos, const float *sin, LscRopeLayout layout);
/* out (T, ldo) <- silu(gu[:, :n]) * gu[:, n:2n] for gu (T, ldg) holding gate
 * and up side by side. Reference: lsc_swiglu (). */
LscStatus lsc_cuda_swiglu (LscCudaContext *ctx, float *out, int ldo, const float *gu, int ldg,
                           int T, int n);
/* x (rows, n) <- softmax of each row in place; lse (rows) <- each row's
 * log-sum-exp (may be NULL). Reference: lsc_softmax_lse (). */
LscStatus lsc_cuda_softmax_lse (LscCudaContext *ctx, float *x, float *lse, int rows, int n);

/* Causal attention of T query rows at positions start .. start + T - 1
 * against the cached keys/values of positions 0 .. start + T - 1 (the
 * block's own keys already in the cache):
 *
 *   q (T, n_heads * head_dim; ldq)        post-RoPE queries
 *   keys, values (start + T, kv_dim)      kv_dim = n_kv_heads * head_dim;
 *                                         query head h reads KV head
 *                                         h / (n_heads / n_kv_heads)
 *   out (T, n_heads * head_dim; ldo)      softmax(scale q k^T) v
 *   row_scale (n_heads, T) or NULL        device multipliers of the logit
 *                                         scale: row t of head h uses the
 *                                         float product
 *                                         scale * row_scale[h * T + t] in
 *                                         place of scale (attention hooks'
 *                                         temperatures), its logits and the
 *                                         refined lse alike
 *   lse (n_heads, T) or NULL              each row's log-sum-exp; with
 *                                         refine, corrected to double-
 *                                         precision logits on the keys
 *                                         that carry the mass (p >= 1e-3),
 *                                         as _lsc_attention_refine_lse ()
 *                                         does on the CPU
 *
 * window > 0 limits each row to its last `window` positions. head_dim is at
 * most 128 (UNSUPPORTED beyond: the session falls back to the CPU). A FlashAttention-style kernel: scores live
 * in shared memory a 64 x 64 tile at a time, never in global memory. For a
 * few rows (decode) with `work`, the keys are split across blocks instead. */
LscStatus lsc_cuda_attention (LscCudaContext *ctx, float *out, int ldo, float *lse, const float *q,
                              int ldq, const float *keys, const float *values, int start, int T,
                              int n_heads, int n_kv_heads, int head_dim, int window, float scale,
                              const float *row_scale, int refine, void *work);
/* The shared memory per block the tiled attention kernel needs at least for
 * head_dim: where the device allows less (lsc_cuda_device_shared_optin ()),
 * lsc_cuda_attention () of more than a few rows is UNSUPPORTED (head_dim
 * over 64 on a 64 KiB GPU such as a T4). */
size_t lsc_cuda_attention_shared_bytes (int head_dim);
/* Bytes of `work` that lets lsc_cuda_attention () run T rows that see at
 * most n_keys keys (the session's n_ctx) split across the keys (decode:
 * T <= 4, refined or not): one block per (chunk of keys, head, row), then a
 * merge. 0 when T is too large to split; work may be NULL to always use the
 * tiled kernel. */
size_t lsc_cuda_attention_workspace (int T, int n_heads, int head_dim, int n_keys);

/* ---- attention maps from a capture (the CPU twin is engine/lsc-attention.c) ---- */

/* One head's captured rows and its keys, all device. Rows are positions
 * row0 .. row0 + n_rows - 1: row i's post-RoPE query at q + (i - row0)
 * head_dim, its normaliser lse[i - row0] and its logit scale
 * scale[i - row0] (base_scale for every row when scale is NULL); key j at
 * keys + j ldk. Row i sees keys first(i) .. i, first(i) = max(0, i - window
 * + 1) with a window (> 0), else 0, and
 *
 *   p[i][j] = exp(scale_i q_i . k_j - lse_i). */
typedef struct {
  int head_dim, row0, n_rows;
  const float *q, *lse, *scale;
  float base_scale;
  const float *keys; int ldk;
  int window;
} LscCudaMap;

/* out (q1 - q0, k1 - k0) <- p over rows [q0, q1) (of the map's) and keys
 * [k0, k1) (all present in keys), each dot product in double from the float
 * q and k as lsc_attention_tile () computes it, so a cell is exact to float
 * rounding; cells the row cannot see get masked_value. */
LscStatus lsc_cuda_attention_tile (LscCudaContext *ctx, const LscCudaMap *m, int q0, int q1, int k0,
                                   int k1, float masked_value, float *out);

/* The streaming pass of lsc_attention_analyze () over every row of the map
 * and keys [0, row0 + n_rows): a block of rows at a time, its scores from
 * one float32 cuBLAS GEMM (as the CPU's sgemm) into `scores` (score_cap
 * floats of device scratch, at least row0 + n_rows), then
 *
 *   cells (ceil(n_rows / block), ceil((row0 + n_rows) / block)): cell (r, c)
 *     pools rows row0 + r block .. + block - 1 and keys c block .. + block - 1:
 *     the max (NAN when it has no visible key), sum and count of its
 *     visible p; overwritten;
 *   row_stats (n_rows, 4): each row's entropy -sum p ln p (nats), mass on
 *     keys [0, sink_tokens), largest p and sum p (i - j).
 *
 * Each cell and row is reduced by one thread block, so the results do not
 * depend on scheduling. */
LscStatus lsc_cuda_attention_pool (LscCudaContext *ctx, const LscCudaMap *m, int sink_tokens,
                                   int block, float *cell_max, double *cell_sum,
                                   long long *cell_count, double *row_stats, float *scores,
                                   size_t score_cap);

/* ---- Mamba (methods.md 7.1, 7.2; the CPU twin is engine/lsc-mamba.c) ---- */

/* u (T, C) <- silu(b + sum_k w[c][k] in[t - K + 1 + k][c]): the causal
 * depthwise convolution of width K over the columns of x (T, C; rows ldx
 * apart), the inputs before the block taken from state (K - 1, C), oldest
 * first; w (C, K), b (C) or NULL. Then state <- the last K - 1 inputs of
 * (state, x). */
LscStatus lsc_cuda_ssm_conv (LscCudaContext *ctx, float *u, float *state, const float *x, int ldx,
                             int T, int C, int K, const float *w, const float *b);
/* dt (T, n) <- softplus(x[t ldx + i] + bias[i]), torch's (threshold 20). */
LscStatus lsc_cuda_ssm_dt (LscCudaContext *ctx, float *dt, const float *x, int ldx, int T, int n,
                           const float *bias);

/* The selective scan of T tokens over E channels of N states each, the state
 * carried in and out. Channel c belongs to head h = c / P, and head h to
 * group g = h / (H / G), H = E / P:
 *
 *   S[c][n] <- exp(dt[t][h] A[h a_head + n a_state]) S[c][n] + dt[t][h] x[t][c] B[t][g N + n]
 *   y[t][c] <- sum_n S[c][n] C[t][g N + n] + D[h] x[t][c],  times silu(z[t][c]) when z
 *
 * Mamba-1: P = 1, G = 1, A (E, N): a_head = N, a_state = 1, z the gate.
 * Mamba-2: A (H): a_head = 1, a_state = 0, z NULL (the gated norm follows).
 * N is at most 256 (UNSUPPORTED beyond). The states of a channel are spread
 * over up to 32 lanes of a warp, the sum over them a warp reduction. */
typedef struct {
  int T, E, N, P, G;
  const float *x; int ldx;          /* (T, E) */
  const float *dt;                  /* (T, H) */
  const float *A; int a_head, a_state;
  const float *B, *C; int ldbc;     /* rows ldbc apart */
  const float *D;                   /* (H) */
  const float *z; int ldz;          /* (T, E) or NULL */
  float *y; int ldy;                /* (T, E) */
  float *state;                     /* (E, N) */
} LscCudaScan;
LscStatus lsc_cuda_ssm_scan (LscCudaContext *ctx, const LscCudaScan *scan);

/* Mamba-2's gated RMSNorm (mamba_ssm's order): in each group of E / G
 * columns of each row, y <- y silu(z), then y <- w y / sqrt(mean(y^2) + eps);
 * y (T, E), z rows ldz apart, w (E). */
LscStatus lsc_cuda_ssm_gated_norm (LscCudaContext *ctx, float *y, const float *z, int ldz,
                                   const float *w, int T, int E, int G, double eps);
