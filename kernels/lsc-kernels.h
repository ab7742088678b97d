/* SPDX-License-Identifier: MIT
 *
 * lsc-kernels.h: the numeric kernel layer of Longscope.
 *
 * Kernels are plain C (plus OpenBLAS/OpenMP fast paths in cpu/ and CUDA in
 * cuda/) with no GLib: they never allocate behind the caller's back, never
 * print and never exit. Fallible kernels return an LscStatus.
 *
 * Conventions: output arguments come first, sizes are explicit, and every
 * buffer's shape is stated in the comment of the function that takes it.
 *
 * Example: widen one row of bf16 weights to float32.
 *
 *   float row[4096];
 *   lsc_bf16_to_f32 (row, weights + r * 4096, 4096);
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef enum {
  LSC_STATUS_OK = 0,
  LSC_STATUS_INVALID_ARGUMENT,
  LSC_STATUS_UNSUPPORTED,
  LSC_STATUS_NO_DEVICE,
  LSC_STATUS_OUT_OF_MEMORY,
  LSC_STATUS_DEVICE_ERROR,
  LSC_STATUS_CANCELLED,
} LscStatus;

const char *lsc_status_to_string (LscStatus status);

/* Storage types of weights as they lie in model files. */
typedef enum {
  LSC_DTYPE_F32 = 0,
  LSC_DTYPE_F16,
  LSC_DTYPE_BF16,
  LSC_DTYPE_Q8_0,
  LSC_DTYPE_I32,
  LSC_DTYPE_I64,
  LSC_DTYPE_N_TYPES,
} LscDType;

/* Q8_0 as in GGUF: blocks of 32 int8 values sharing one f16 scale. */
#define LSC_Q8_0_BLOCK 32
typedef struct {
  uint16_t d;                 /* f16 scale */
  int8_t qs[LSC_Q8_0_BLOCK];  /* value = d * qs[i] */
} LscBlockQ8_0;

const char *lsc_dtype_name (LscDType dtype);
/* Bytes for n elements of dtype, or 0 when n does not fit the type's block
 * size (Q8_0 needs a multiple of 32). */
size_t lsc_dtype_row_bytes (LscDType dtype, size_t n);

float lsc_f16_to_f32_1 (uint16_t h);
uint16_t lsc_f32_to_f16_1 (float f);        /* round to nearest even */
float lsc_bf16_to_f32_1 (uint16_t h);
uint16_t lsc_f32_to_bf16_1 (float f);       /* round to nearest even, NaN kept */

/* out (n) <- in (n) */
void lsc_f16_to_f32 (float *out, const uint16_t *in, size_t n);
void lsc_bf16_to_f32 (float *out, const uint16_t *in, size_t n);
/* out (n) <- in (n / 32 blocks); n must be a multiple of 32 */
void lsc_q8_0_to_f32 (float *out, const LscBlockQ8_0 *in, size_t n);
/* out (n / 32 blocks) <- in (n); n must be a multiple of 32 */
void lsc_f32_to_q8_0 (LscBlockQ8_0 *out, const float *in, size_t n);

/* out (n) <- n elements of any dtype starting at in. */
LscStatus lsc_to_f32 (float *out, const void *in, LscDType dtype, size_t n);
/* out (n elements of dtype: F32, F16, BF16 or Q8_0) <- in (n), rounded to
 * nearest even (Q8_0: n a multiple of 32, quantised per block). */
LscStatus lsc_from_f32 (void *out, const float *in, LscDType dtype, size_t n);

/* Which dimensions RoPE rotates together. */
typedef enum {
  LSC_ROPE_NEOX,         /* HF rotate_half: i pairs with i + d/2 (safetensors, qwen2 GGUF) */
  LSC_ROPE_INTERLEAVED,  /* pairs (2i, 2i+1): llama-arch GGUF (permuted q/k rows), llama2.c */
} LscRopeLayout;

/* ---- reference CPU kernels (kernels/cpu/lsc-cpu-ref.c) ----
 * Plain loops, the ground truth every fast path and GPU kernel is tested
 * against. No allocation; output first. */

/* out (n) <- x (n) / sqrt(mean(x^2) + eps) * w (n) */
void lsc_rmsnorm (float *out, const float *x, const float *w, int n, float eps);
/* out (d) <- W (d, n) x (n), W stored in dtype, row-major */
void lsc_matvec (float *out, const float *x, const void *w, LscDType dtype, int n, int d);
/* dot product of row `row` of W (d, n) in dtype with x (n) */
float lsc_dot_row (const void *w, LscDType dtype, int n, int row, const float *x);
/* x (n_heads, head_dim) rotated in place; cos, sin (head_dim / 2) for this position */
void lsc_rope (float *x, int n_heads, int head_dim, const float *cos, const float *sin,
               LscRopeLayout layout);
/* x (n) <- softmax(x) in place, max-subtracted; returns the log-sum-exp of
 * the input (max + ln sum exp(x - max), the sum accumulated in double): the
 * row's normaliser, which attention capture keeps for exact recompute. */
float lsc_softmax_lse (float *x, int n);
/* out (n) <- silu(gate (n)) * up (n) */
void lsc_swiglu (float *out, const float *gate, const float *up, int n);
/* Mamba-1's selective scan of one inner channel over T tokens
 * (methods.md 7.1): for t < T,
 *   h[n] <- exp(dt_t a[n]) h[n] + dt_t x_t b_t[n],   y_t <- sum_n h[n] c_t[n]
 * over the channel's n_states states h (updated in place) and A row a;
 * dt_t, x_t, y_t at dt, x, y + t * step; b_t, c_t at b, c + t * stride. */
void lsc_ssm_scan (float *y, float *h, const float *a, int n_states, const float *dt,
                   const float *x, int step, const float *b, const float *c, int stride, int T);

/* The CUDA backend's kernels are declared in lsc-cuda.h. */

/* ---- fast paths (kernels/cpu/lsc-cpu-fast.c) ----
 * Vectorized twins of the reference kernels, used by the fast forward
 * (engine/lsc-llama-fast.c) and tested against their references in
 * tests/test-fast-kernels.c. No allocation, no threads: callers split work
 * across threads. Sums run in another order than the reference's, so results
 * agree to rounding; conversions are bit-exact. */

/* Most tokens lsc_fast_xwt_rows () takes at once. */
#define LSC_FAST_MAX_T 8

/* y[t * ldy + i] <- row (row0 + i) of W (d, n, stored in dtype) . x[t * ldx ..]
 * for t < T, i < n_rows: y (T, ldy), x (T, ldx), 1 <= T <= LSC_FAST_MAX_T.
 * Each row is read once for all T tokens. Reference: lsc_dot_row (). */
void lsc_fast_xwt_rows (float *y, int ldy, const float *x, int ldx, int T, const void *w,
                        LscDType dtype, int n, int row0, int n_rows);
/* out (n) <- n elements of dtype at in, widened. Reference: lsc_to_f32 (). */
LscStatus lsc_fast_to_f32 (float *out, const void *in, LscDType dtype, size_t n);
/* One query head against n_keys cached keys/values (rows `stride` floats
 * apart): att (n_keys) <- softmax(scale * keys q), out (head_dim) <- att^T
 * values; returns the row's log-sum-exp. Reference: the attention loop of
 * forward_token () (lsc-llama.c). */
/* lsc_ssm_scan () with exp computed by a polynomial the compiler vectorizes
 * (within 2 ulp of expf on [-87, 88]; arguments are clamped there) and the
 * sum over states in 16 lanes. Reference: lsc_ssm_scan (). */
void lsc_fast_ssm_scan (float *y, float *h, const float *a, int n_states, const float *dt,
                        const float *x, int step, const float *b, const float *c, int stride,
                        int T);
float lsc_fast_attend_one (float *out, float *att, const float *q, const float *keys,
                           const float *values, int n_keys, int head_dim, int stride, float scale);

/* ---- prefill GEMM for weights not stored as f32 (kernels/cpu/lsc-cpu-gemm.c) ----
 * Y = X W^T in float32 arithmetic for W in any dtype, the weights widened a
 * cache-sized tile at a time as they are multiplied (OpenBLAS has no GEMM
 * taking 16-bit weights with float32 activations). x86-64 with AVX-512 only:
 * call nothing else here unless lsc_fast_gemm_available (), which is also 0
 * when the environment has LSC_CPU_GEMM=openblas (the engine then widens
 * tiles for sgemm: to compare the two, and to test both). Single-threaded:
 * callers split rows (in multiples of LSC_FAST_GEMM_ROWS) across threads.
 *
 *   float *xp = malloc (lsc_fast_gemm_packed_floats (T, n) * sizeof (float));
 *   lsc_fast_gemm_pack_x (xp, x, n, T, n, 0, (T + LSC_FAST_GEMM_PANEL - 1) / LSC_FAST_GEMM_PANEL);
 *   lsc_fast_gemm_rows (y, d, xp, T, w, LSC_DTYPE_BF16, n, 0, d, scratch);
 *
 * Reference: lsc_dot_row () per output; the sums are blocked (256 columns
 * at a time), so results agree to rounding. */
#define LSC_FAST_GEMM_PANEL 32   /* tokens per panel of packed X */
#define LSC_FAST_GEMM_ROWS 12    /* weight rows per micro-kernel tile */

int lsc_fast_gemm_available (void);
/* floats of X (T, n) packed; floats of one thread's scratch for T tokens */
size_t lsc_fast_gemm_packed_floats (int T, int n);
size_t lsc_fast_gemm_scratch_floats (int T);
/* Panels [panel0, panel1) of x (T, ldx) packed into xp (whose size is
 * lsc_fast_gemm_packed_floats (T, n)): tokens LSC_FAST_GEMM_PANEL at a time,
 * k-major, zero past T. Threads may pack disjoint panel ranges. */
void lsc_fast_gemm_pack_x (float *xp, const float *x, int ldx, int T, int n, int panel0,
                           int panel1);
/* y[t * ldy + i] <- row (row0 + i) of W (d, n, stored in dtype) . x[t] for
 * t < T, i < n_rows, from X packed by lsc_fast_gemm_pack_x (); scratch holds
 * lsc_fast_gemm_scratch_floats (T) floats. For q8_0, n is a multiple of 32. */
void lsc_fast_gemm_rows (float *y, int ldy, const float *xp, int T, const void *w,
                         LscDType dtype, int n, int row0, int n_rows, float *scratch);
