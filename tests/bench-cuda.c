/* SPDX-License-Identifier: MIT
 *
 * bench-cuda: the CUDA backend on a synthetic model.
 *
 *   bench-cuda [--shape NAME] [--dtype bf16|f16|f32] [--lengths 4096,32768,131072]
 *              [--capture 32768,131072] [--decode N]
 *
 * Prints one table:
 *   - the cuBLAS GEMM rate measured on the model's own projection shapes
 *     (T = 4096), and the prefill floor it implies: projection FLOPs per
 *     token / rate, plus the causal attention FLOPs (4 N d_q per layer and
 *     token on average, N/2 keys per row) at the attention kernel's measured
 *     rate;
 *   - prefill tokens/s at each length (a fresh session, one eval);
 *   - with --capture, the same prefill capturing every layer, head and row
 *     (queries and normalisers copied to the host store), its time against
 *     the plain one, and the peak device memory; then the time of one head's
 *     pyramid and statistics (lsc_attention_analyze () on the device, the
 *     mean of three heads) and what every head would take;
 *   - decode tokens/s after the first length's prompt and after each
 *     captured one, against the floor of reading every weight and the
 *     context's float32 keys and values once per step at the measured
 *     device-to-device copy rate, and with --capture the same steps
 *     captured (every row of every head stored as it is generated, as
 *     retrieval-head runs do);
 *   - with --capture, the longest prompt whose full capture this machine
 *     holds: device memory by the session's estimate (test-estimate checks
 *     that it equals the peak byte for byte) within what the GPU has free,
 *     and host memory within its RAM.
 * A Mamba shape (mamba-1.4b, mamba2-1.3b) gives prefill, decode and peak
 * memory only: the floor and capture are the transformer's.
 * A benchmark, never a test: it needs a GPU and minutes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsc-cuda.h"
#include "lsc-estimate.h"
#include "lsc-session.h"

static double
now_s (void)
{
  return g_get_monotonic_time () / 1e6;
}

static char *opt_shape = "llama-1b";
static char *opt_dtype = "bf16";
static char *opt_lengths = "4096,32768,131072";
static char *opt_capture = "";
static int opt_decode = 64;

static const GOptionEntry entries[] = {
  { "shape", 0, 0, G_OPTION_ARG_STRING, &opt_shape,
    "Synthetic model shape: llama-1b (default), mamba-1.4b, mamba2-1.3b", "NAME" },
  { "dtype", 0, 0, G_OPTION_ARG_STRING, &opt_dtype, "Weights: bf16, f16 or f32", "TYPE" },
  { "lengths", 0, 0, G_OPTION_ARG_STRING, &opt_lengths, "Prefill lengths", "N,N,..." },
  { "capture", 0, 0, G_OPTION_ARG_STRING, &opt_capture, "Lengths to time with full capture", "N,.." },
  { "decode", 0, 0, G_OPTION_ARG_INT, &opt_decode, "Decode steps after the first prefill and each captured one", "N" },
  { NULL }
};

static void
die (const char *what, const GError *error)
{
  g_printerr ("bench-cuda: %s: %s\n", what, error != NULL ? error->message : "failed");
  exit (1);
}

static GArray *
parse_list (const char *s)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (int));
  g_auto(GStrv) parts = g_strsplit (s, ",", -1);
  for (int i = 0; parts[i] != NULL; i++)
    if (*parts[i] != '\0')
      {
        int v = atoi (parts[i]);
        g_array_append_val (a, v);
      }
  return a;
}

/* FLOP/s of the projections of one layer plus the classifier at T tokens. */
static double
gemm_rate (const LscModelConfig *c, LscDType dtype, int T, double *flops_per_token)
{
  LscCudaContext *ctx;
  if (lsc_cuda_context_new (&ctx, 0, NULL) != LSC_STATUS_OK)
    die ("CUDA", NULL);
  int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
  /* (d, n) of each GEMM of a layer */
  const int shapes[][2] = { { q_dim + 2 * kv_dim, c->dim }, { c->dim, q_dim },
                            { 2 * c->hidden_dim, c->dim }, { c->dim, c->hidden_dim } };
  int widest = MAX (MAX (c->dim, q_dim), c->hidden_dim), tallest = 2 * c->hidden_dim;
  void *x, *y, *w, *half;
  if (lsc_cuda_alloc (ctx, &x, (size_t) T * widest * 4) != LSC_STATUS_OK
      || lsc_cuda_alloc (ctx, &y, (size_t) T * tallest * 4) != LSC_STATUS_OK
      || lsc_cuda_alloc (ctx, &w, (size_t) tallest * widest * 4) != LSC_STATUS_OK
      || lsc_cuda_alloc (ctx, &half, lsc_cuda_gemm_scratch_bytes (T, widest)) != LSC_STATUS_OK)
    die ("allocating GEMM buffers", NULL);
  double flops = 0.0, best = 1e30;
  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    flops += 2.0 * shapes[i][0] * shapes[i][1];
  *flops_per_token = flops * c->n_layers + 2.0 * c->vocab_size * c->dim / T;
  for (int rep = 0; rep < 5; rep++)
    {
      double t = now_s ();
      for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
        if (lsc_cuda_gemm_xwt (ctx, y, shapes[i][0], x, shapes[i][1], T, w, dtype, shapes[i][0],
                               shapes[i][1], half) != LSC_STATUS_OK)
          die ("GEMM", NULL);
      if (lsc_cuda_sync (ctx) != LSC_STATUS_OK)
        die ("GEMM", NULL);
      best = MIN (best, now_s () - t);
    }
  lsc_cuda_context_free (ctx);
  return flops * T / best;
}

/* FLOP/s of the attention kernel: T rows against T causal keys, all heads. */
static double
attention_rate (const LscModelConfig *c, int T)
{
  LscCudaContext *ctx;
  if (lsc_cuda_context_new (&ctx, 0, NULL) != LSC_STATUS_OK)
    die ("CUDA", NULL);
  int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
  void *q, *k, *v, *o;
  if (lsc_cuda_alloc (ctx, &q, (size_t) T * q_dim * 4) != LSC_STATUS_OK
      || lsc_cuda_alloc (ctx, &k, (size_t) T * kv_dim * 4) != LSC_STATUS_OK
      || lsc_cuda_alloc (ctx, &v, (size_t) T * kv_dim * 4) != LSC_STATUS_OK
      || lsc_cuda_alloc (ctx, &o, (size_t) T * q_dim * 4) != LSC_STATUS_OK)
    die ("allocating attention buffers", NULL);
  double best = 1e30;
  for (int rep = 0; rep < 3; rep++)
    {
      double t = now_s ();
      if (lsc_cuda_attention (ctx, o, q_dim, NULL, q, q_dim, k, v, 0, T, c->n_heads, c->n_kv_heads,
                              c->head_dim, 0, 0.125f, NULL, 0, NULL) != LSC_STATUS_OK
          || lsc_cuda_sync (ctx) != LSC_STATUS_OK)
        die ("attention", NULL);
      best = MIN (best, now_s () - t);
    }
  lsc_cuda_context_free (ctx);
  /* QK^T and PV over the causal half */
  return 4.0 * (double) T * T / 2 * q_dim / best;
}

/* Bytes/s of device memory: a device-to-device copy of 1 GiB (less on the
 * emulator's small devices), bytes read plus bytes written. */
static double
copy_rate (void)
{
  LscCudaContext *ctx;
  size_t free_b = 0, bytes;
  void *a, *b;
  if (lsc_cuda_context_new (&ctx, 0, NULL) != LSC_STATUS_OK
      || lsc_cuda_mem_info (ctx, &free_b, NULL, NULL) != LSC_STATUS_OK)
    die ("CUDA", NULL);
  bytes = MIN ((size_t) 1 << 30, free_b / 4);
  if (lsc_cuda_alloc (ctx, &a, bytes) != LSC_STATUS_OK
      || lsc_cuda_alloc (ctx, &b, bytes) != LSC_STATUS_OK)
    die ("allocating copy buffers", NULL);
  double best = 1e30;
  for (int rep = 0; rep < 5; rep++)
    {
      double t = now_s ();
      if (lsc_cuda_copy (ctx, b, a, bytes) != LSC_STATUS_OK || lsc_cuda_sync (ctx) != LSC_STATUS_OK)
        die ("copy", NULL);
      best = MIN (best, now_s () - t);
    }
  lsc_cuda_context_free (ctx);
  return 2.0 * bytes / best;
}

typedef struct {
  double seconds;
  double peak_gib;       /* device memory the session held at most */
  double decode_tok_s;
  double analyze_s;      /* one head's pyramid and statistics, mean of three */
} Run;

static Run
run (LscModel *model, const gint32 *tokens, int n, gboolean capture, int decode)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.backend = LSC_BACKEND_CUDA;
  p.n_ctx = n + decode;
  p.capture.enabled = capture;
  p.capture.memory_budget = (guint64) 100 << 30;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  if (s == NULL)
    die ("session", error);
  Run r = { 0 };
  double t = now_s ();
  if (!lsc_session_eval (s, tokens, n, NULL, FALSE, NULL, NULL, &error))
    die ("prefill", error);
  r.seconds = now_s () - t;
  if (decode > 0)
    {
      int vocab = lsc_session_get_n_vocab (s);
      g_autofree float *logits = g_new (float, vocab);
      t = now_s ();
      for (int i = 0; i < decode; i++)
        if (!lsc_session_eval (s, tokens + i, 1, logits, FALSE, NULL, NULL, &error))
          die ("decode", error);
      r.decode_tok_s = decode / (now_s () - t);
    }
  if (capture)
    {
      const LscAttentionStore *a = lsc_session_get_attention (s);
      int n_layers, n_heads, n_kv_heads, head_dim;
      lsc_attention_get_shape (a, &n_layers, &n_heads, &n_kv_heads, &head_dim);
      const int heads[3][2] = { { 0, 0 }, { n_layers / 2, n_heads / 2 },
                                { n_layers - 1, n_heads - 1 } };
      t = now_s ();
      for (int i = 0; i < 3; i++)
        {
          g_autoptr(LscAttentionPyramid) pyr = NULL;
          LscHeadStats st;
          if (!lsc_attention_analyze (a, heads[i][0], heads[i][1], 4, &pyr, &st, &error))
            die ("analyze", error);
        }
      r.analyze_s = (now_s () - t) / 3;
    }
  guint64 peak = 0;
  lsc_session_get_device_memory (s, &peak);
  r.peak_gib = peak / 1073741824.0;
  return r;
}

/* Device bytes of a CUDA session that captures every layer, head and row
 * of an n-token prompt (n_ctx n), and the host bytes of its store. */
static void
capture_bytes (LscModel *model, int n, guint64 *device, guint64 *host)
{
  LscEstimateParams p;
  lsc_estimate_params_init (&p);
  p.n_prompt = n;
  p.session.n_ctx = n;
  p.session.backend = LSC_BACKEND_CUDA;
  p.session.capture.enabled = TRUE;
  p.session.capture.memory_budget = G_MAXUINT64;
  p.prefill_gflops = p.decode_gbps = 1;   /* only memory is read */
  LscEstimate e;
  g_autoptr(GError) error = NULL;
  if (!lsc_estimate_run (model, &p, &e, &error))
    die ("estimating a full capture", error);
  *device = e.device_bytes;
  *host = e.total_bytes;
}

/* The longest full capture whose device memory fits device_free and whose
 * host memory (the store, the host's copy of the keys, the weights) fits
 * host_ram, to 1024 tokens (0 when not even that does). */
static int
longest_capture (LscModel *model, guint64 device_free, guint64 host_ram, guint64 *device,
                 guint64 *host)
{
  int lo = 0, hi = 1 << 24;   /* 16M tokens: no GPU holds their keys */
  *device = *host = 0;
  while (hi - lo > 1024)
    {
      int mid = lo + (hi - lo) / 2048 * 1024;
      guint64 d, h;
      capture_bytes (model, mid, &d, &h);
      if (d <= device_free && h <= host_ram)
        {
          lo = mid;
          *device = d;
          *host = h;
        }
      else
        hi = mid;
    }
  return lo;
}

int
main (int argc, char **argv)
{
  /* a row at a time: a run stopped at a device call's time limit keeps the rows it made */
  setvbuf (stdout, NULL, _IOLBF, 0);
  g_autoptr(GOptionContext) octx = g_option_context_new ("- the CUDA backend's speed");
  g_autoptr(GError) error = NULL;
  g_option_context_add_main_entries (octx, entries, NULL);
  if (!g_option_context_parse (octx, &argc, &argv, &error))
    die ("options", error);

  int n_dev = 0;
  if (lsc_cuda_device_count (&n_dev) != LSC_STATUS_OK || n_dev == 0)
    {
      g_print ("bench-cuda: no CUDA device; nothing to measure\n");
      return 0;
    }
  LscModelConfig config;
  if (!lsc_model_config_init_shape (&config, opt_shape))
    die ("--shape", NULL);
  LscDType dtype = g_str_equal (opt_dtype, "f32")   ? LSC_DTYPE_F32
                   : g_str_equal (opt_dtype, "f16") ? LSC_DTYPE_F16
                                                    : LSC_DTYPE_BF16;
  g_autoptr(GArray) lengths = parse_list (opt_lengths);
  g_autoptr(GArray) captures = parse_list (opt_capture);
  int longest = 0;
  for (guint i = 0; i < lengths->len; i++)
    longest = MAX (longest, g_array_index (lengths, int, i));
  config.max_position = MAX (config.max_position, longest + opt_decode);

  double t = now_s ();
  g_autoptr(LscModel) model = lsc_model_new_synthetic (&config, dtype, 1, &error);
  if (model == NULL)
    die ("model", error);
  g_print ("synthetic %s in %s, made in %.1f s\n", opt_shape, lsc_dtype_name (dtype), now_s () - t);

  /* the floor is the transformer's: Mamba's rows give prefill and decode only */
  gboolean ssm = lsc_arch_is_ssm (config.arch);
  double flops_token = 0, gemm = 0, attn = 0;
  if (!ssm)
    {
      gemm = gemm_rate (&config, dtype, 4096, &flops_token);
      int attn_T = MIN (8192, longest);
      attn = attention_rate (&config, attn_T);
      g_print ("cuBLAS %s GEMM (T=4096, the layer's shapes): %.1f TFLOP/s; attention kernel "
               "(T=%d, f32): %.1f TFLOP/s\n", lsc_dtype_name (dtype), gemm / 1e12, attn_T,
               attn / 1e12);
    }
  int q_dim = config.n_heads * config.head_dim;
  /* a decode step reads every weight once and, for a transformer, the
   * float32 keys and values of its context */
  double bandwidth = copy_rate (), weights = lsc_model_get_weight_bytes (model);
  double kv_token = ssm ? 0 : 2.0 * config.n_kv_heads * config.head_dim * 4 * config.n_layers;
  g_print ("device memory: %.0f GB/s (device-to-device copy); weights %.2f GB, %.0f KiB of KV "
           "cache per token of context\n", bandwidth / 1e9, weights / 1e9, kv_token / 1024);

  g_autofree gint32 *tokens = g_new (gint32, longest + opt_decode);
  for (int i = 0; i < longest + opt_decode; i++)
    tokens[i] = 1 + (int) ((i * 2654435761u) % (guint) (config.vocab_size - 1));

  /* the first launch of each kernel loads its module: not the first row's time */
  run (model, tokens, MIN (longest, 512), FALSE, 1);

  g_print ("\n| tokens | prefill s | tok/s | floor tok/s | capture s | capture / plain "
           "| peak GiB plain | peak GiB capture | pyramid s/head | all heads s | decode tok/s "
           "| decode floor tok/s | decode tok/s capture |\n");
  g_print ("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (guint i = 0; i < lengths->len; i++)
    {
      int n = g_array_index (lengths, int, i);
      gboolean cap = FALSE;
      for (guint j = 0; !ssm && j < captures->len; j++)
        cap = cap || g_array_index (captures, int, j) == n;
      int decode = i == 0 || cap ? opt_decode : 0;
      /* projections at the GEMM rate, attention (mean n/2 keys per row) at the kernel's */
      double attn_flops = 4.0 * n / 2 * q_dim * config.n_layers;
      double floor_s = ssm ? 0 : n * (flops_token / gemm + attn_flops / attn);
      Run plain = run (model, tokens, n, FALSE, decode);
      Run with = { 0 };
      if (cap)
        with = run (model, tokens, n, TRUE, decode);
      g_print ("| %d | %.2f | %.0f | ", n, plain.seconds, n / plain.seconds);
      g_print (ssm ? "- | " : "%.0f | ", n / floor_s);
      if (cap)
        g_print ("%.2f | %.2f | %.1f | %.1f | %.3f | %.1f | ", with.seconds,
                 with.seconds / plain.seconds, plain.peak_gib, with.peak_gib, with.analyze_s,
                 with.analyze_s * config.n_layers * config.n_heads);
      else
        g_print ("- | - | %.1f | - | - | - | ", plain.peak_gib);
      if (decode > 0)
        g_print ("%.1f | %.1f | ", plain.decode_tok_s, bandwidth / (weights + kv_token * n));
      else
        g_print ("- | - | ");
      if (cap && decode > 0)
        g_print ("%.1f |\n", with.decode_tok_s);
      else
        g_print ("- |\n");
    }

  if (!ssm && captures->len > 0)
    {
      LscCudaContext *ctx;
      size_t free_b = 0, total_b = 0;
      if (lsc_cuda_context_new (&ctx, 0, NULL) != LSC_STATUS_OK
          || lsc_cuda_mem_info (ctx, &free_b, &total_b, NULL) != LSC_STATUS_OK)
        die ("CUDA", NULL);
      lsc_cuda_context_free (ctx);
      guint64 device, host, ram = (guint64) sysconf (_SC_PHYS_PAGES) * sysconf (_SC_PAGESIZE);
      int n = longest_capture (model, free_b, G_MAXUINT64, &device, &host);
      g_print ("\nlongest full capture the GPU holds: %d tokens, %.1f of its %.1f GiB free (%.1f "
               "GiB in all)\n", n, device / 1073741824.0, free_b / 1073741824.0,
               total_b / 1073741824.0);
      n = longest_capture (model, free_b, ram, &device, &host);
      g_print ("... and this machine: %d tokens, %.1f GiB of device memory and %.1f of its %.1f "
               "GiB (the host store, the host's keys, the weights)\n", n, device / 1073741824.0,
               host / 1073741824.0, ram / 1073741824.0);
    }
  return 0;
}
