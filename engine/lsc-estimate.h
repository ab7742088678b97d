/* SPDX-License-Identifier: MIT
 *
 * lsc-estimate.h: what a run will cost before it starts: memory, work and
 * time, GTK-free (the application shows it before Run; batch tools can
 * print it).
 *
 * A run is what `longscope --batch` and the application do: a session of
 * `session` parameters on `model`; with max_tokens > 0, the prompt's first
 * n_prompt - 1 tokens in one evaluation, then generation (the last prompt
 * token, which yields the first new token's logits, and max_tokens - 1
 * single-token steps, none cut short by EOS); with max_tokens = 0, the
 * whole prompt in one evaluation. With capture, the per-head streaming pass
 * (lsc_attention_analyze ()) may follow for statistics and pyramids.
 *
 * Memory is exact where the engine's own sizes are known: the KV cache, the
 * capture store, the session's buffers and pyramids come from the formulas
 * the session allocates with (lsc_session_get_memory () reports the same
 * numbers after the run); weights are the model's tensor bytes.
 *
 * Work, counted as multiply-adds x 2 (FLOPs):
 *   projections: 2 x matrix parameters per token (q, k, v, o, gate, up, down
 *                of every layer), plus 2 x vocab x dim for each row of logits
 *                (one for the prompt when max_tokens > 0, one per decode step);
 *   attention:   4 x n_heads x head_dim x visible keys per query row and layer
 *                (QK^T and PV), visible = pos + 1, or min(pos + 1, window) on
 *                a sliding-window layer; mask hooks are not looked at (an upper
 *                bound);
 *   capture:     per captured layer, head and row, (2 x head_dim +
 *                LSC_ESTIMATE_CELL_FLOPS) x visible keys for the streaming
 *                pass, when stats or pyramids are asked for.
 * Decode also reads, per step, every layer matrix and the classifier in their
 * stored dtype and 2 x n_kv_heads x head_dim floats of KV cache per visible
 * key and layer.
 *
 * Time, from the rates given (or measured): prefill is compute-bound,
 * projections / prefill_gflops + attention / attention_gflops, but no faster
 * than reading the weights once per block of the forward path (512 tokens on
 * the CPU, 4096 on the GPU, 1 on the reference path) at decode_gbps; decode is
 * bandwidth-bound, decode bytes / decode_gbps, but no faster than its FLOPs at
 * prefill_gflops; the capture pass runs at the CPU's GEMM rate, or at
 * attention_gflops when the session computes its maps on the GPU (float32
 * scores there too).
 * These are floors: on 2 cores the fast path took 1.3x the estimate for the
 * llama-1b shape (2 layers, 4096-token prefill and 16 decode steps; the
 * prefill at 75 % of the measured sgemm rate).
 *
 * Example:
 *
 *   LscEstimateParams p;
 *   lsc_estimate_params_init (&p);
 *   p.n_prompt = 4096;
 *   p.max_tokens = 64;
 *   p.session.capture.enabled = TRUE;     // every layer, head and row
 *   p.stats = TRUE;
 *   LscEstimate e;
 *   if (lsc_estimate_run (model, &p, &e, &error))
 *     g_print ("%.1f GiB, %.0f s\n", e.total_bytes / 1073741824.0, e.total_s);
 */
#pragma once

#include <glib.h>

#include "lsc-model.h"
#include "lsc-session.h"

G_BEGIN_DECLS

/* What one captured cell of the streaming pass costs besides its q.k
 * product (exp, log, the pyramid's max and sum, the statistics: scalar code),
 * in FLOPs at the CPU's GEMM rate. Measured with bench-capture on 2 cores
 * with AVX-512 (sgemm 181 GFLOP/s): one head's pass over the 8.4 M visible
 * cells of 4096 rows took 63 ms (stories260K, head_dim 8) and 74 ms (llama-1b
 * shape, head_dim 64), 1350-1470 FLOPs a cell. */
#define LSC_ESTIMATE_CELL_FLOPS 1400

typedef struct {
  int n_prompt;               /* prompt tokens, BOS included (>= 1) */
  int max_tokens;             /* new tokens (>= 0) */
  /* The session as it will be created: n_ctx (0 here: max (4096, n_prompt +
   * max_tokens), as a batch job), n_threads (0: all cores), reference,
   * backend (AUTO resolves as lsc_session_new () does), capture (its layers,
   * heads, rows and budget) and hooks (only whether they are set). */
  LscSessionParams session;
  /* With a KV policy (session.kv_policy), the run is lsc_generate_kv ()'s:
   * the whole prompt in evaluations of kv_chunk tokens (0: at once), then
   * max_tokens - 1 single steps; n_ctx (0 here: lsc_kv_policy_slots ()) is
   * the cache's slots, which the stream may outrun. kv_compare adds the full
   * cache's session of n_prompt + max_tokens tokens. Attention work is
   * counted as if nothing were evicted (an upper bound). */
  int kv_chunk;
  gboolean kv_compare;
  gboolean stats;             /* with capture: the streaming pass runs over every captured head */
  gboolean pyramids;          /* ... and keeps every captured head's pyramid (implies the pass) */
  /* Rates to assume; 0: on the CPU, measured (lsc_estimate_measure_cpu_rates ());
   * on the GPU, prefill_gflops and decode_gbps must be given. */
  double prefill_gflops;      /* projections (GEMM), GFLOP/s */
  double attention_gflops;    /* attention; 0: prefill_gflops */
  double decode_gbps;         /* memory read bandwidth, GB/s */
} LscEstimateParams;

/* n_prompt 1, max_tokens 0, default session parameters (CPU, no capture),
 * no pass, rates measured. */
void lsc_estimate_params_init (LscEstimateParams *params);

typedef struct {
  LscBackend backend;         /* where the run computes: CPU or CUDA */
  int n_ctx;                  /* the session's KV cache length */
  int n_threads;              /* the session's threads */
  /* host memory, bytes */
  guint64 weight_bytes;       /* the model's tensors (lsc_model_get_weight_bytes ()) */
  guint64 kv_bytes;           /* the KV cache */
  guint64 activation_bytes;   /* the session's other buffers (LscSessionMemory.scratch_bytes) */
  guint64 capture_bytes;      /* the capture store (lsc_attention_get_bytes ()) */
  guint64 pyramid_bytes;      /* every captured head's pyramid, when kept */
  guint64 total_bytes;        /* the five above */
  guint64 device_bytes;       /* GPU: peak device memory (lsc_session_get_device_memory ()); 0 */
  /* work */
  int n_rows_captured;        /* query rows in the store after the run */
  double prefill_flops;       /* the prompt (and its row of logits) */
  double decode_flops;        /* max_tokens - 1 decode steps */
  double decode_bytes;        /* what those steps read */
  double capture_flops;       /* the streaming pass over the captured heads */
  /* rates used */
  double prefill_gflops, attention_gflops, decode_gbps;
  double capture_gflops;      /* the CPU's GEMM rate, or attention_gflops with maps on the GPU */
  /* time, seconds */
  double prefill_s, decode_s, capture_s, total_s;
} LscEstimate;

/* out <- the estimate of the run `params` describes on `model`. Fails with
 * LSC_RUN_ERROR_INVALID_ARGUMENT naming the field ("n_prompt: -1 ..."), with
 * the errors lsc_session_new () would give (a Mamba model, a capture plan
 * naming a layer or head that does not exist, a store over its budget, CUDA
 * asked for where it cannot run), and with LSC_RUN_ERROR_CONTEXT_FULL when
 * n_prompt + max_tokens - 1 tokens do not fit in n_ctx. Measures the CPU
 * rates (once per process and thread count) when a rate it needs is 0. */
gboolean lsc_estimate_run (LscModel *model, const LscEstimateParams *params, LscEstimate *out,
                           GError **error);

/* The CPU's rates, measured quickly (65-100 ms on 2 cores) the first time
 * for a thread count, then cached for the process (thread-safe; concurrent
 * callers wait for one measure): gflops, the best GFLOP/s of a 256 x 1024 x
 * 1024 cblas_sgemm split across n_threads OpenMP threads as the fast path
 * splits its GEMMs; gbps, the best GB/s of n_threads reading 48 MiB each
 * (64 to 128 MiB in all: a large last-level cache can still flatter it).
 * n_threads 0: all cores.
 *
 * Example:
 *
 *   double gflops, gbps;
 *   lsc_estimate_measure_cpu_rates (0, &gflops, &gbps);
 */
void lsc_estimate_measure_cpu_rates (int n_threads, double *gflops, double *gbps);

G_END_DECLS
