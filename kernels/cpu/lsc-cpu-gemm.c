/* SPDX-License-Identifier: MIT
 *
 * The prefill GEMM for weights stored as bf16/f16/q8_0 (x86-64 with
 * AVX-512): Y = X W^T in float32 arithmetic, the weights widened into a
 * cache-resident tile as they are multiplied.
 *
 * Why not OpenBLAS: it has no GEMM that takes 16-bit weights with float32
 * activations (Debian's build has no sbgemm, and sbgemm would round the
 * activations to bf16). Widening a tile of weights and calling sgemm on it
 * costs an extra pass over every weight (widen, then sgemm packs the tile
 * again): bf16 prefill ran 3.5 % slower than f32 that way. Here the widening
 * IS the packing, so bf16 costs nothing over f32.
 *
 * The scheme is the classic one (Goto; BLIS), turned so that the vectors run
 * along tokens:
 *
 *   X (T, n) is packed once into panels of LSC_FAST_GEMM_PANEL tokens,
 *   k-major (xp[k][32 tokens]), zero-padded: shared by every matrix of a
 *   group and every thread.
 *   For each block of MC weight rows and each KC columns: widen the rows
 *   into the slab (MC x KC floats, L2), then for every token panel and every
 *   MR rows run the micro-kernel: a 12 x 32 tile of C^T in 24 AVX-512
 *   registers, each step loading 32 tokens of one column of X^T (2 vectors)
 *   and broadcasting 12 weights (a last panel of at most 16 tokens: 12 x 16). C^T (MC rows x tokens) stays in L2 across
 *   the KC blocks and is transposed into Y once per row block.
 *
 * Each KC block's partial sums start from zero and are added to C^T after,
 * as OpenBLAS does: the rounding error stays that of a blocked sum, not of
 * one n-term running sum.
 */
#include "config.h"

#include "lsc-kernels.h"

#include <stdlib.h>
#include <string.h>

#if defined (__x86_64__) && defined (__GNUC__)

#include <immintrin.h>

#define LSC_AVX512 __attribute__ ((target ("avx512f")))

#define PANEL LSC_FAST_GEMM_PANEL  /* tokens per packed panel: two vectors */
#define MR LSC_FAST_GEMM_ROWS      /* weight rows per micro-kernel tile */
#define KC 256                     /* columns per slab (a multiple of the Q8_0 block) */
#define MC (8 * MR)                /* weight rows per slab */
#define MIN(a, b) ((a) < (b) ? (a) : (b))

int
lsc_fast_gemm_available (void)
{
  const char *choice = getenv ("LSC_CPU_GEMM");
  return __builtin_cpu_supports ("avx512f") && (choice == NULL || strcmp (choice, "openblas") != 0);
}

/* dst[c * ldd + r] <- src[r * lds + c] for r, c < 16 */
LSC_AVX512 static inline void
transpose16 (float *dst, size_t ldd, const float *src, size_t lds)
{
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++)
    r[i] = _mm512_loadu_ps (src + i * lds);
  /* pairs of rows interleaved, then pairs of pairs: t[4q + j] holds rows
   * 4q..4q+3 of columns j, j + 4, j + 8, j + 12 (one per 128-bit lane) */
  for (int i = 0; i < 16; i += 2)
    {
      t[i] = _mm512_unpacklo_ps (r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps (r[i], r[i + 1]);
    }
  for (int i = 0; i < 16; i += 4)
    for (int h = 0; h < 2; h++)
      {
        __m512d a = _mm512_castps_pd (t[i + h]), b = _mm512_castps_pd (t[i + h + 2]);
        r[i + 2 * h] = _mm512_castpd_ps (_mm512_unpacklo_pd (a, b));
        r[i + 2 * h + 1] = _mm512_castpd_ps (_mm512_unpackhi_pd (a, b));
      }
  /* gather the four 128-bit lanes of each column group */
  for (int j = 0; j < 4; j++)
    {
      __m512 a = _mm512_shuffle_f32x4 (r[j], r[4 + j], 0x44);
      __m512 b = _mm512_shuffle_f32x4 (r[j], r[4 + j], 0xee);
      __m512 c = _mm512_shuffle_f32x4 (r[8 + j], r[12 + j], 0x44);
      __m512 d = _mm512_shuffle_f32x4 (r[8 + j], r[12 + j], 0xee);
      t[j] = _mm512_shuffle_f32x4 (a, c, 0x88);
      t[j + 4] = _mm512_shuffle_f32x4 (a, c, 0xdd);
      t[j + 8] = _mm512_shuffle_f32x4 (b, d, 0x88);
      t[j + 12] = _mm512_shuffle_f32x4 (b, d, 0xdd);
    }
  for (int i = 0; i < 16; i++)
    _mm512_storeu_ps (dst + i * ldd, t[i]);
}

/* dst (cols, ldd)[c][r] <- src (rows, lds)[r][c] for r < rows, c < cols;
 * dst rows r >= rows up to pad_rows are zeroed. */
LSC_AVX512 static void
transpose (float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols, int pad_rows)
{
  int r16 = rows & ~15, c16 = cols & ~15;
  for (int r = 0; r < r16; r += 16)
    for (int c = 0; c < c16; c += 16)
      transpose16 (dst + (size_t) c * ldd + r, ldd, src + (size_t) r * lds + c, lds);
  for (int c = 0; c < cols; c++)
    {
      int r0 = c < c16 ? r16 : 0;
      for (int r = r0; r < rows; r++)
        dst[(size_t) c * ldd + r] = src[(size_t) r * lds + c];
      for (int r = rows; r < pad_rows; r++)
        dst[(size_t) c * ldd + r] = 0.0f;
    }
}

size_t
lsc_fast_gemm_packed_floats (int T, int n)
{
  return (size_t) (T + PANEL - 1) / PANEL * PANEL * n;
}

size_t
lsc_fast_gemm_scratch_floats (int T)
{
  return (size_t) MC * KC + (size_t) MC * ((T + PANEL - 1) / PANEL * PANEL);
}

LSC_AVX512 void
lsc_fast_gemm_pack_x (float *xp, const float *x, int ldx, int T, int n, int panel0, int panel1)
{
  for (int p = panel0; p < panel1; p++)
    {
      int t0 = p * PANEL;
      transpose (xp + (size_t) p * PANEL * n, PANEL, x + (size_t) t0 * ldx, ldx,
                 MIN (PANEL, T - t0), n, PANEL);
    }
}

/* ct (MR, ldc)[i][0 .. 16 NV) (+)= sum over k < kc of w[i * ldw + k] xp[k][..]:
 * NV = 2 for a whole panel, 1 for a last panel of at most 16 tokens. */
LSC_AVX512 static inline __attribute__ ((always_inline)) void
micro_kernel (float *ct, size_t ldc, const float *w, size_t ldw, const float *xp, int kc,
              int accumulate, const int NV)
{
  __m512 c[MR][2];
  for (int i = 0; i < MR; i++)
    c[i][0] = c[i][1] = _mm512_setzero_ps ();
  for (int k = 0; k < kc; k++)
    {
      __m512 x0 = _mm512_loadu_ps (xp + (size_t) k * PANEL);
      __m512 x1 = NV == 2 ? _mm512_loadu_ps (xp + (size_t) k * PANEL + 16) : x0;
#pragma GCC unroll 12
      for (int i = 0; i < MR; i++)
        {
          __m512 b = _mm512_set1_ps (w[i * ldw + k]);
          c[i][0] = _mm512_fmadd_ps (b, x0, c[i][0]);
          if (NV == 2)
            c[i][1] = _mm512_fmadd_ps (b, x1, c[i][1]);
        }
    }
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++)
      {
        float *dst = ct + i * ldc + 16 * v;
        __m512 sum = accumulate ? _mm512_add_ps (_mm512_loadu_ps (dst), c[i][v]) : c[i][v];
        _mm512_storeu_ps (dst, sum);
      }
}

LSC_AVX512 static void
micro_kernel_32 (float *ct, size_t ldc, const float *w, size_t ldw, const float *xp, int kc,
                 int accumulate)
{
  micro_kernel (ct, ldc, w, ldw, xp, kc, accumulate, 2);
}

LSC_AVX512 static void
micro_kernel_16 (float *ct, size_t ldc, const float *w, size_t ldw, const float *xp, int kc,
                 int accumulate)
{
  micro_kernel (ct, ldc, w, ldw, xp, kc, accumulate, 1);
}

/* Asks for the weights of the slab after (r0, k0) while this one is
 * multiplied: its MC rows are as many short runs of memory (KC columns each)
 * that the hardware prefetcher would not fetch ahead, and widening them
 * waited on memory (7 % of a bf16 prefill). */
static void
prefetch_next (const void *w, LscDType dtype, int n, size_t row_bytes, int r0, int k0, int r_end)
{
  int k1 = k0 + KC;
  if (k1 >= n)
    {
      r0 += MC;
      k1 = 0;
    }
  int rows = MIN (MC, r_end - r0);
  size_t off = lsc_dtype_row_bytes (dtype, k1);
  size_t len = lsc_dtype_row_bytes (dtype, MIN (KC, n - k1));
  for (int r = 0; r < rows; r++)
    {
      const char *p = (const char *) w + (size_t) (r0 + r) * row_bytes + off;
      for (size_t b = 0; b < len; b += 64)
        __builtin_prefetch (p + b, 0, 2);
    }
}

LSC_AVX512 void
lsc_fast_gemm_rows (float *y, int ldy, const float *xp, int T, const void *w, LscDType dtype,
                    int n, int row0, int n_rows, float *scratch)
{
  const int Tp = (T + PANEL - 1) / PANEL * PANEL;
  float *slab = scratch;            /* (MC, KC) widened weights */
  float *ct = scratch + MC * KC;    /* (MC, Tp) C^T of the row block */
  size_t row_bytes = lsc_dtype_row_bytes (dtype, n);

  for (int r0 = row0; r0 < row0 + n_rows; r0 += MC)
    {
      int mr = MIN (MC, row0 + n_rows - r0);
      int mr_pad = (mr + MR - 1) / MR * MR;
      for (int k0 = 0; k0 < n; k0 += KC)
        {
          int kc = MIN (KC, n - k0);
          const uint8_t *src = (const uint8_t *) w + (size_t) r0 * row_bytes
                               + lsc_dtype_row_bytes (dtype, k0);
          for (int r = 0; r < mr; r++)
            lsc_fast_to_f32 (slab + (size_t) r * KC, src + (size_t) r * row_bytes, dtype, kc);
          for (int r = mr; r < mr_pad; r++)
            memset (slab + (size_t) r * KC, 0, kc * sizeof (float));
          prefetch_next (w, dtype, n, row_bytes, r0, k0, row0 + n_rows);
          for (int t0 = 0; t0 < Tp; t0 += PANEL)
            for (int i = 0; i < mr_pad; i += MR)
              (T - t0 > 16 ? micro_kernel_32 : micro_kernel_16) (
                ct + (size_t) i * Tp + t0, Tp, slab + (size_t) i * KC, KC,
                xp + (size_t) t0 * n + (size_t) k0 * PANEL, kc, k0 > 0);
        }
      transpose (y + (r0 - row0), ldy, ct, Tp, mr, T, mr);
    }
}

#else /* no AVX-512 build: lsc_fast_gemm_available () says so, nothing else is called */

int
lsc_fast_gemm_available (void)
{
  return 0;
}

size_t
lsc_fast_gemm_packed_floats (int T, int n)
{
  return (size_t) (T + LSC_FAST_GEMM_PANEL - 1) / LSC_FAST_GEMM_PANEL * LSC_FAST_GEMM_PANEL * n;
}

size_t
lsc_fast_gemm_scratch_floats (int T)
{
  (void) T;
  return 0;
}

void
lsc_fast_gemm_pack_x (float *xp, const float *x, int ldx, int T, int n, int panel0, int panel1)
{
  (void) xp, (void) x, (void) ldx, (void) T, (void) n, (void) panel0, (void) panel1;
}

void
lsc_fast_gemm_rows (float *y, int ldy, const float *xp, int T, const void *w, LscDType dtype,
                    int n, int row0, int n_rows, float *scratch)
{
  (void) y, (void) ldy, (void) xp, (void) T, (void) w, (void) dtype, (void) n, (void) row0,
    (void) n_rows, (void) scratch;
}

#endif
