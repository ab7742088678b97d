/* SPDX-License-Identifier: MIT
 *
 * The run estimate: memory from the session's own size formulas
 * (lsc-llama*.c, lsc-attention.c), FLOPs and bytes in closed form, time from
 * rates measured here or given. See lsc-estimate.h for the definitions.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-estimate.h"
#include "lsc-llama-private.h"

/* ---- rates of this CPU ---- */

#define RATE_M 256                        /* sgemm (M, K) x (N, K)^T: a block of tokens */
#define RATE_N 1024
#define RATE_K 1024
/* The buffer read: 48 MiB a thread, from 64 to 128 MiB. On a 2-core VM of
 * a large-L3 server, 2 threads read 64 MiB 15-50 % faster than 1 GiB (DRAM),
 * 96 MiB 0-20 %, 128 MiB 0-10 %; 1 thread read 64 MiB within 5 %. First
 * touching it (page faults) costs several times more than reading it, so it
 * is read two to a few times: the whole measure takes 65-100 ms there. */
static gsize
read_bytes (int nt)
{
  return (gsize) CLAMP (48 * nt, 64, 128) << 20;
}
#define GEMM_BUDGET_US 10000              /* sgemm repetitions past the third timed one */
#define READ_BUDGET_US 20000              /* reads past the second */
#define RATE_CACHE 8

typedef struct {
  int n_threads;
  double gflops, gbps;
} CpuRates;

static GMutex rates_lock;
static CpuRates rates_cache[RATE_CACHE];
static int rates_n;

/* Best GFLOP/s of the sgemm, its columns split across nt OpenMP threads,
 * each calling single-threaded OpenBLAS (as lsc-llama-fast.c does). The
 * first repetition warms up and is not counted. */
static double
measure_gflops (int nt)
{
  float *a = g_new (float, (gsize) RATE_M * RATE_K);   /* (M, K) */
  float *b = g_new (float, (gsize) RATE_N * RATE_K);   /* (N, K) */
  float *c = g_new (float, (gsize) RATE_M * RATE_N);   /* (M, N) */
  for (gsize i = 0; i < (gsize) RATE_M * RATE_K; i++)
    a[i] = (float) (i % 7) * 0.1f;
  for (gsize i = 0; i < (gsize) RATE_N * RATE_K; i++)
    b[i] = (float) (i % 5) * 0.1f;

  int saved = openblas_get_num_threads ();
  openblas_set_num_threads (1);
  double best = 0;
  gint64 start = 0;
  for (int rep = 0; rep < 16; rep++)
    {
      gint64 t0 = g_get_monotonic_time ();
      if (rep == 1)
        start = t0;
#pragma omp parallel num_threads (nt)
      {
        int tid = omp_get_thread_num (), nth = omp_get_num_threads ();
        int lo = RATE_N * tid / nth, hi = RATE_N * (tid + 1) / nth;
        if (hi > lo)
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, RATE_M, hi - lo, RATE_K, 1.0f, a,
                       RATE_K, b + (gsize) lo * RATE_K, RATE_K, 0.0f, c + lo, RATE_N);
      }
      gint64 t1 = g_get_monotonic_time ();
      if (rep > 0)
        best = MAX (best, 2.0 * RATE_M * RATE_N * RATE_K / (MAX (t1 - t0, 1) * 1e3));
      if (rep >= 3 && t1 - start > GEMM_BUDGET_US)
        break;
    }
  openblas_set_num_threads (saved);
  g_free (a);
  g_free (b);
  g_free (c);
  return best;
}

/* Best GB/s of nt threads reading read_bytes (nt), each its own share, first
 * touched by the same thread. Filled by memset () and read by memchr () for
 * a byte that is not there: libc's vectorized loops, as fast in a debug or
 * sanitizer build as in a release one. */
static double
measure_gbps (int nt)
{
  const gsize bytes = read_bytes (nt);
  guint8 *buf = g_malloc (bytes);   /* (bytes) */
#pragma omp parallel num_threads (nt)
  {
    int tid = omp_get_thread_num (), nth = omp_get_num_threads ();
    gsize lo = bytes / nth * tid;
    gsize hi = tid == nth - 1 ? bytes : bytes / nth * (tid + 1);
    memset (buf + lo, 0, hi - lo);
  }

  double best = 0;
  int found = 0;
  gint64 start = g_get_monotonic_time ();
  for (int rep = 0; rep < 6; rep++)
    {
      gint64 t0 = g_get_monotonic_time ();
#pragma omp parallel num_threads (nt) reduction (+ : found)
      {
        int tid = omp_get_thread_num (), nth = omp_get_num_threads ();
        gsize lo = bytes / nth * tid;
        gsize hi = tid == nth - 1 ? bytes : bytes / nth * (tid + 1);
        found += memchr (buf + lo, 1, hi - lo) != NULL;
      }
      gint64 t1 = g_get_monotonic_time ();
      best = MAX (best, (double) bytes / (MAX (t1 - t0, 1) * 1e3));
      if (rep >= 1 && t1 - start > READ_BUDGET_US)
        break;
    }
  g_free (buf);
  if (found != 0)   /* never: the buffer holds zeros */
    g_debug ("memchr found a byte that was never written");
  return best;
}

void
lsc_estimate_measure_cpu_rates (int n_threads, double *gflops, double *gbps)
{
  if (n_threads <= 0)
    n_threads = (int) g_get_num_processors ();

  g_mutex_lock (&rates_lock);
  const CpuRates *r = NULL;
  for (int i = 0; i < MIN (rates_n, RATE_CACHE) && r == NULL; i++)
    if (rates_cache[i].n_threads == n_threads)
      r = &rates_cache[i];
  if (r == NULL)
    {
      CpuRates m = { n_threads, measure_gflops (n_threads), measure_gbps (n_threads) };
      rates_cache[rates_n % RATE_CACHE] = m;
      r = &rates_cache[rates_n % RATE_CACHE];
      rates_n++;
    }
  if (gflops != NULL)
    *gflops = r->gflops;
  if (gbps != NULL)
    *gbps = r->gbps;
  g_mutex_unlock (&rates_lock);
}

/* ---- the estimate ---- */

void
lsc_estimate_params_init (LscEstimateParams *params)
{
  memset (params, 0, sizeof *params);
  lsc_session_params_init (&params->session);
  params->n_prompt = 1;
}

/* Visible keys summed over query positions [0, n) of a layer with sliding
 * window w (0: full causal): row i sees min(i + 1, w) keys. */
static double
visible_keys (gint64 n, int w)
{
  if (n <= 0)
    return 0;
  if (w <= 0 || n <= w)
    return (double) n * (n + 1) / 2;
  return (double) w * (w + 1) / 2 + (double) (n - w) * w;
}

/* The same over positions [a, b), summed over the layers whose `use` is set
 * (NULL: all). */
static double
visible_keys_layers (const LscModelConfig *c, const gboolean *use, gint64 a, gint64 b)
{
  double sum = 0;
  for (int l = 0; l < c->n_layers; l++)
    if (use == NULL || use[l])
      {
        int w = _lsc_layer_window (c, l);
        sum += visible_keys (b, w) - visible_keys (a, w);
      }
  return sum;
}

static gboolean
bad_rate (double rate)
{
  return !(rate >= 0) || !isfinite (rate);
}

static gboolean
invalid (GError **error, const char *field, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static gboolean
invalid (GError **error, const char *field, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT, "%s: %s", field, msg);
  return FALSE;
}

/* The backend lsc_session_new () ends up on, or FALSE (error set) where it
 * would fail. */
static gboolean
resolve_backend (LscModel *model, const LscSessionParams *sp, LscBackend *backend,
                 GError **error)
{
  *backend = LSC_BACKEND_CPU;
  if (sp->backend == LSC_BACKEND_CPU)
    return TRUE;
  if (sp->backend != LSC_BACKEND_CUDA && sp->backend != LSC_BACKEND_AUTO)
    return invalid (error, "session.backend", "%d is not a backend", (int) sp->backend);
  const char *unavailable = lsc_backend_cuda_unavailable ();
  if (unavailable != NULL)
    {
      if (sp->backend == LSC_BACKEND_CUDA)
        {
          g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                       "session.backend: the CUDA backend was asked for, but %s", unavailable);
          return FALSE;
        }
      return TRUE;
    }
  g_autofree char *reason = _lsc_cuda_unsupported_reason (model, sp);
  if (reason == NULL)
    *backend = LSC_BACKEND_CUDA;
  return TRUE;
}

/* Parameters of the 2-D matrices and their bytes: the layers' (q, k, v, o,
 * gate, up, down; an SSM's in, x, dt and out projections) and the
 * classifier's (the output matrix, or the embedding when tied). */
static void
matrix_sizes (LscModel *model, double *layer_params, double *layer_bytes, double *cls_params,
              double *cls_bytes)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  static const LscTensorRole roles[] = { LSC_TENSOR_ATTN_Q, LSC_TENSOR_ATTN_K, LSC_TENSOR_ATTN_V,
                                         LSC_TENSOR_ATTN_O, LSC_TENSOR_FFN_GATE, LSC_TENSOR_FFN_UP,
                                         LSC_TENSOR_FFN_DOWN, LSC_TENSOR_SSM_IN, LSC_TENSOR_SSM_X,
                                         LSC_TENSOR_SSM_DT, LSC_TENSOR_SSM_OUT };
  *layer_params = *layer_bytes = 0;
  for (int l = 0; l < c->n_layers; l++)
    for (guint i = 0; i < G_N_ELEMENTS (roles); i++)
      {
        const LscTensor *t = lsc_model_get_weight (model, roles[i], l);
        if (t != NULL)
          {
            *layer_params += (double) lsc_tensor_n_elements (t);
            *layer_bytes += (double) t->n_bytes;
          }
      }
  const LscTensor *cls = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1);
  if (cls == NULL)
    cls = lsc_model_get_weight (model, LSC_TENSOR_TOKEN_EMBD, -1);
  *cls_params = cls != NULL ? (double) lsc_tensor_n_elements (cls) : 0;
  *cls_bytes = cls != NULL ? (double) cls->n_bytes : 0;
}

gboolean
lsc_estimate_run (LscModel *model, const LscEstimateParams *params, LscEstimate *out,
                  GError **error)
{
  g_return_val_if_fail (model != NULL && params != NULL && out != NULL, FALSE);
  const LscModelConfig *c = lsc_model_get_config (model);
  const LscEstimateParams *p = params;
  LscEstimate e = { 0 };

  /* the parameters, then what lsc_session_new () would refuse */
  if (p->n_prompt < 1)
    return invalid (error, "n_prompt", "%d tokens (the prompt needs at least 1)", p->n_prompt);
  if (p->max_tokens < 0)
    return invalid (error, "max_tokens", "%d (must be 0 or more)", p->max_tokens);
  if (p->session.n_ctx < 0)
    return invalid (error, "session.n_ctx", "%d (must be 0, the default, or more)",
                    p->session.n_ctx);
  if (p->session.n_threads < 0)
    return invalid (error, "session.n_threads", "%d (must be 0, all cores, or more)",
                    p->session.n_threads);
  if (bad_rate (p->prefill_gflops))
    return invalid (error, "prefill_gflops", "%g (must be 0, measure, or a positive rate)",
                    p->prefill_gflops);
  if (bad_rate (p->attention_gflops))
    return invalid (error, "attention_gflops", "%g (must be 0, as prefill_gflops, or a positive "
                    "rate)", p->attention_gflops);
  if (bad_rate (p->decode_gbps))
    return invalid (error, "decode_gbps", "%g (must be 0, measure, or a positive rate)",
                    p->decode_gbps);
  gboolean ssm = lsc_arch_is_ssm (c->arch);

  /* the session's effective parameters */
  LscSessionParams sp = p->session;
  gboolean kv = sp.kv_policy.kind != LSC_KV_FULL;
  if (sp.n_ctx == 0 && kv)
    sp.n_ctx = lsc_kv_policy_slots (&sp.kv_policy, p->n_prompt, p->kv_chunk, p->max_tokens);
  if (sp.n_ctx == 0)
    sp.n_ctx = (int) MIN ((gint64) G_MAXINT, MAX ((gint64) 4096,
                                                  (gint64) p->n_prompt + p->max_tokens));
  if (sp.n_threads == 0)
    sp.n_threads = (int) g_get_num_processors ();
  int n_decode = MAX (p->max_tokens - 1, 0);           /* single-token steps */
  gint64 n_pos = (gint64) p->n_prompt + n_decode;      /* tokens in the cache at the end */
  if (n_pos > sp.n_ctx && !kv)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CONTEXT_FULL,
                   "n_ctx: the run holds %" G_GINT64_FORMAT " tokens (n_prompt %d + max_tokens "
                   "%d - 1), more than n_ctx %d", n_pos, p->n_prompt, p->max_tokens, sp.n_ctx);
      return FALSE;
    }
  /* what lsc_session_new () refuses, with its words: an SSM's capture, hooks
   * and Δ recording, and any model's KV policy */
  if (kv || (ssm && (sp.capture.enabled || sp.hooks.scale != NULL || sp.hooks.mask_row != NULL
                     || sp.ssm_capture.enabled || sp.ssm_filter.enabled)))
    {
      LscSessionParams check = sp;
      check.n_ctx = 1;
      check.backend = LSC_BACKEND_CPU;   /* resolve_backend () checks the GPU */
      g_autoptr(LscSession) probe = lsc_session_new (model, &check, error);
      if (probe == NULL)
        return FALSE;
    }
  if (!resolve_backend (model, &sp, &e.backend, error))
    return FALSE;
  e.n_ctx = sp.n_ctx;
  e.n_threads = sp.n_threads;

  /* the capture store, as lsc_session_new () would make it */
  LscCaptureLayout lay = { 0 };
  g_autofree gboolean *captured = g_new0 (gboolean, c->n_layers);
  if (sp.capture.enabled)
    {
      if (!lsc_attention_plan_layout (&sp.capture, c->n_layers, c->n_heads, c->head_dim, sp.n_ctx,
                                      sp.hooks.scale != NULL, &lay, error))
        return FALSE;
      for (int l = 0; l < c->n_layers; l++)
        captured[l] = sp.capture.layers == NULL || sp.capture.n_layers == 0;
      for (int i = 0; sp.capture.layers != NULL && i < sp.capture.n_layers; i++)
        captured[sp.capture.layers[i]] = TRUE;   /* validated by the layout */
      e.n_rows_captured = (int) CLAMP (n_pos - lay.row_start, 0, lay.row_cap);
    }

  /* memory */
  guint64 kv_dim = (guint64) c->n_kv_heads * c->head_dim;
  e.weight_bytes = lsc_model_get_weight_bytes (model);
  e.kv_bytes = ssm ? _lsc_ssm_state_bytes (c)
                  : 2 * (guint64) c->n_layers * sp.n_ctx * kv_dim * sizeof (float);
  e.activation_bytes = ssm ? 0 : _lsc_session_base_bytes (model, &sp);
  /* evaluations: the prompt less its last token when generating, then
   * single tokens; the fast path's buffers fit the largest */
  int first_eval = p->max_tokens > 0 ? p->n_prompt - 1 : p->n_prompt;
  int largest_eval = MAX (first_eval, p->max_tokens > 0 ? 1 : 0);
  if (kv)
    {
      /* lsc_generate_kv (): the whole prompt, kv_chunk tokens at a time */
      largest_eval = p->kv_chunk > 0 ? MIN (p->kv_chunk, p->n_prompt) : p->n_prompt;
      e.activation_bytes += _lsc_kv_state_bytes (c, &sp)
                            + _lsc_kv_log_bytes (c, &sp.kv_policy, p->kv_chunk, p->n_prompt,
                                                 (int) n_pos);
      if (p->kv_compare)
        {
          LscSessionParams fp = sp;
          lsc_kv_policy_init (&fp.kv_policy, LSC_KV_FULL);
          fp.n_ctx = p->n_prompt + p->max_tokens;
          e.kv_bytes += 2 * (guint64) c->n_layers * fp.n_ctx * kv_dim * sizeof (float);
          e.activation_bytes += _lsc_session_base_bytes (model, &fp)
                                + (sp.reference ? 0 : _lsc_fast_state_bytes (model, &fp,
                                                                              p->n_prompt));
        }
    }
  if (e.backend == LSC_BACKEND_CUDA)
    {
      guint64 host = 0;
      if (!_lsc_cuda_memory (model, &sp, &e.device_bytes, &host))
        g_assert_not_reached ();   /* resolve_backend () picks CUDA only in CUDA builds */
      e.activation_bytes += host + (ssm ? _lsc_ssm_session_bytes (model, &sp, 0) : 0);
    }
  else if (ssm)
    e.activation_bytes += _lsc_ssm_session_bytes (model, &sp, largest_eval);
  else if (!sp.reference)
    e.activation_bytes += _lsc_fast_state_bytes (model, &sp, largest_eval);
  e.capture_bytes = lay.bytes;
  if (ssm && sp.ssm_capture.enabled)
    {
      const LscSsmFilter *f = &sp.ssm_filter;
      gboolean filtered = f->enabled && first_eval >= (f->min_tokens > 0 ? f->min_tokens : 3000);
      int block = e.backend == LSC_BACKEND_CUDA ? MIN (sp.n_ctx, LSC_CUDA_BLOCK_TOKENS)
                  : sp.reference ? 1 : LSC_FAST_BLOCK_TOKENS;
      e.capture_bytes = _lsc_ssm_store_bytes (c, &sp.ssm_capture, block, first_eval, (int) n_pos,
                                              filtered);
    }
  gboolean pass = sp.capture.enabled && (p->stats || p->pyramids) && e.n_rows_captured > 0;
  if (pass && p->pyramids)
    e.pyramid_bytes = (guint64) lay.n_layers * lay.n_heads
                      * lsc_attention_pyramid_bytes (e.n_rows_captured,
                                                     lay.row_start + e.n_rows_captured);
  e.total_bytes = e.weight_bytes + e.kv_bytes + e.activation_bytes + e.capture_bytes
                  + e.pyramid_bytes;

  /* work */
  double layer_params, layer_bytes, cls_params, cls_bytes;
  matrix_sizes (model, &layer_params, &layer_bytes, &cls_params, &cls_bytes);
  double attn_per_key = 4.0 * c->n_heads * c->head_dim;       /* per visible key and layer */
  double kv_per_key = 2.0 * kv_dim * sizeof (float);          /* bytes, per visible key and layer */
  double logits_rows = p->max_tokens > 0 ? 1 : 0;
  double prefill_proj = 2.0 * layer_params * p->n_prompt + 2.0 * cls_params * logits_rows;
  double prefill_attn = attn_per_key * visible_keys_layers (c, NULL, 0, p->n_prompt);
  e.prefill_flops = prefill_proj + prefill_attn;
  double decode_keys = visible_keys_layers (c, NULL, p->n_prompt, n_pos);
  e.decode_flops = 2.0 * (layer_params + cls_params) * n_decode + attn_per_key * decode_keys;
  e.decode_bytes = (layer_bytes + cls_bytes) * n_decode + kv_per_key * decode_keys;
  if (pass)
    e.capture_flops = (double) lay.n_heads * (2.0 * c->head_dim + LSC_ESTIMATE_CELL_FLOPS)
                      * visible_keys_layers (c, captured, lay.row_start,
                                             lay.row_start + e.n_rows_captured);

  /* rates */
  double cpu_gflops = 0, cpu_gbps = 0;
  gboolean cuda = e.backend == LSC_BACKEND_CUDA;
  if (cuda && p->prefill_gflops <= 0)
    return invalid (error, "prefill_gflops", "the GPU's rate must be given (it is not measured)");
  if (cuda && p->decode_gbps <= 0)
    return invalid (error, "decode_gbps", "the GPU's bandwidth must be given (it is not "
                    "measured)");
  /* the pass runs where the session computes its maps (it has buffers for
   * them on the device, or none) */
  gboolean maps_gpu = cuda && _lsc_cuda_maps_bytes (model, &sp) > 0;
  if ((!cuda && (p->prefill_gflops <= 0 || p->decode_gbps <= 0))
      || (e.capture_flops > 0 && !maps_gpu))
    lsc_estimate_measure_cpu_rates (sp.n_threads, &cpu_gflops, &cpu_gbps);
  e.prefill_gflops = p->prefill_gflops > 0 ? p->prefill_gflops : cpu_gflops;
  e.attention_gflops = p->attention_gflops > 0 ? p->attention_gflops : e.prefill_gflops;
  e.decode_gbps = p->decode_gbps > 0 ? p->decode_gbps : cpu_gbps;
  e.capture_gflops = maps_gpu ? e.attention_gflops : cpu_gflops;

  /* time */
  int block = sp.reference ? 1 : cuda ? LSC_CUDA_BLOCK_TOKENS : LSC_FAST_BLOCK_TOKENS;
  double weight_passes = (double) ((first_eval + block - 1) / block);   /* no logits */
  double prefill_read = weight_passes * layer_bytes
                        + logits_rows * (layer_bytes + cls_bytes);
  e.prefill_s = MAX (prefill_proj / (e.prefill_gflops * 1e9)
                       + prefill_attn / (e.attention_gflops * 1e9),
                     prefill_read / (e.decode_gbps * 1e9));
  e.decode_s = MAX (e.decode_bytes / (e.decode_gbps * 1e9),
                    e.decode_flops / (e.prefill_gflops * 1e9));
  e.capture_s = e.capture_flops > 0 ? e.capture_flops / (e.capture_gflops * 1e9) : 0;
  e.total_s = e.prefill_s + e.decode_s + e.capture_s;
  *out = e;
  return TRUE;
}
