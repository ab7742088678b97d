/* SPDX-License-Identifier: MIT
 *
 * bench-forward: speed of the fast CPU forward path against what this
 * machine can do at best.
 *
 *   bench-forward [--model PATH | --shape NAME] [--dtype f32|bf16|f16|q8_0]
 *                 [--prefill N] [--decode N] [--threads N] [--layers N] [--repeat N]
 *                 [--kv POLICY [--kv-budget N]]
 *
 * It times a prefill of N tokens (default 512, logits of the last one only;
 * with --repeat, the best of that many, rewinding the session between)
 * and then N single-token decode steps (default 32) on a fresh session, and
 * prints them beside two floors measured here and now:
 *
 *   prefill floor = best cblas_sgemm GFLOP/s / (2 * matrix parameters per token)
 *   decode floor  = read bandwidth (a large buffer summed by the threads)
 *                   / bytes of weights one token reads
 *
 * and the run estimate of lsc-estimate.h (its own quick rates) beside the
 * measured times and memory.
 *
 * --kv runs the session under a KV policy (lsc-kv.h) keeping about
 * --kv-budget tokens (256): streaming-llm 4 sinks + the rest recent, h2o
 * half heavy half recent, snapkv / pyramidkv that capacity, lm-infinite 4
 * global tokens and the rest local. The prefill
 * then includes the policy's scoring and compaction, and decode attends to
 * the budget only.
 *
 * --shape builds a synthetic model (lsc_model_new_synthetic (), random
 * weights in --dtype); --layers keeps only the first N layers of the shape.
 * Registered as meson benchmarks (`meson test --benchmark`), never as tests.
 */
#include "config.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "lsc-estimate.h"
#include "lsc-kernels.h"
#include "lsc-session.h"

extern void openblas_set_num_threads (int num_threads);

static double
now_s (void)
{
  return g_get_monotonic_time () / 1e6;
}

/* Best GFLOP/s of cblas_sgemm over the GEMM shapes of a 1B prefill block. */
static double
sgemm_floor (int n_threads)
{
  static const int shapes[][3] = {   /* M (tokens), N (rows of W), K (cols of W) */
    { 512, 8192, 2048 },
    { 512, 2048, 8192 },
    { 512, 2048, 2048 },
  };
  const gsize max = (gsize) 512 * 8192;
  float *a = g_new (float, max);   /* (M, K) */
  float *b = g_new (float, max * 4); /* (N, K) */
  float *c = g_new (float, max);   /* (M, N) */
  for (gsize i = 0; i < max; i++)
    a[i] = c[i] = (float) (i % 7) * 0.1f;
  for (gsize i = 0; i < max * 4; i++)
    b[i] = (float) (i % 5) * 0.1f;

  openblas_set_num_threads (n_threads);
  double best = 0;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (int rep = 0; rep < 3; rep++)
      {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        double t0 = now_s ();
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c,
                     N);
        double dt = now_s () - t0;
        best = MAX (best, 2.0 * M * N * K / dt / 1e9);
      }
  g_free (a);
  g_free (b);
  g_free (c);
  return best;
}

/* Best read bandwidth in GB/s: n_threads sum a 1 GiB buffer. */
static double
read_floor (int n_threads)
{
  const gsize n = (gsize) 256 << 20;   /* floats: 1 GiB */
  float *buf = g_new (float, n);       /* (n) */
#pragma omp parallel for num_threads (n_threads) schedule (static)
  for (gsize i = 0; i < n; i++)
    buf[i] = 1.0f;

  double best = 0, total = 0;
  for (int rep = 0; rep < 4; rep++)
    {
      float sum = 0.0f;
      double t0 = now_s ();
#pragma omp parallel num_threads (n_threads) reduction (+ : sum)
      {
        float acc[32] = { 0 };   /* independent partial sums: the loop vectorizes */
#pragma omp for schedule (static)
        for (gsize i = 0; i < n; i += 32)
          for (int j = 0; j < 32; j++)
            acc[j] += buf[i + j];
        for (int j = 0; j < 32; j++)
          sum += acc[j];
      }
      double dt = now_s () - t0;
      total += sum;
      best = MAX (best, n * sizeof (float) / dt / 1e9);
    }
  g_free (buf);
  if (total < 0)   /* keeps the sums alive */
    g_print ("%g\n", total);
  return best;
}

static gboolean
parse_dtype (const char *name, LscDType *dtype)
{
  static const struct { const char *name; LscDType dtype; } names[] = {
    { "f32", LSC_DTYPE_F32 }, { "bf16", LSC_DTYPE_BF16 }, { "f16", LSC_DTYPE_F16 },
    { "q8_0", LSC_DTYPE_Q8_0 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (g_ascii_strcasecmp (name, names[i].name) == 0)
      {
        *dtype = names[i].dtype;
        return TRUE;
      }
  return FALSE;
}

static double
peak_rss_gib (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1048576.0;   /* KiB on Linux */
}

int
main (int argc, char **argv)
{
  g_autofree char *model_path = NULL;
  g_autofree char *shape = NULL;
  g_autofree char *dtype_name = NULL;
  int n_prefill = 512, n_decode = 32, n_threads = 0, n_layers = 0, n_repeat = 1, kv_budget = 256;
  g_autofree char *kv_name = NULL;
  gboolean no_floors = FALSE;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &model_path, "A model file or directory", "PATH" },
    { "shape", 0, 0, G_OPTION_ARG_STRING, &shape, "Synthetic model: llama-1b (default), "
      "stories260K-shape, mamba-1.4b, mamba2-1.3b", "NAME" },
    { "dtype", 0, 0, G_OPTION_ARG_STRING, &dtype_name, "Synthetic weights: f32 (default), bf16, "
      "f16, q8_0", "TYPE" },
    { "prefill", 0, 0, G_OPTION_ARG_INT, &n_prefill, "Prompt tokens (512)", "N" },
    { "decode", 0, 0, G_OPTION_ARG_INT, &n_decode, "Decode steps after the prompt (32)", "N" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &n_threads, "Threads (0 = all cores)", "N" },
    { "layers", 0, 0, G_OPTION_ARG_INT, &n_layers, "Keep the first N layers of the shape", "N" },
    { "repeat", 0, 0, G_OPTION_ARG_INT, &n_repeat, "Prefill N times (rewinding), report the best (1)", "N" },
    { "no-floors", 0, 0, G_OPTION_ARG_NONE, &no_floors, "Skip the sgemm/bandwidth floors", NULL },
    { "kv", 0, 0, G_OPTION_ARG_STRING, &kv_name, "A KV policy: streaming-llm, h2o, snapkv, "
      "pyramidkv", "POLICY" },
    { "kv-budget", 0, 0, G_OPTION_ARG_INT, &kv_budget, "Tokens the policy keeps (256)", "N" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- time the forward pass");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("bench-forward: %s\n", error->message);
      return 2;
    }
  LscDType dtype = LSC_DTYPE_F32;
  if (dtype_name != NULL && !parse_dtype (dtype_name, &dtype))
    {
      g_printerr ("bench-forward: unknown --dtype '%s'\n", dtype_name);
      return 2;
    }
  if (n_prefill < 1 || n_decode < 0)
    {
      g_printerr ("bench-forward: --prefill must be >= 1 and --decode >= 0\n");
      return 2;
    }
  if (n_threads <= 0)
    n_threads = (int) g_get_num_processors ();

  /* the model */
  double t0 = now_s ();
  g_autoptr(LscModel) model = NULL;
  g_autofree char *what = NULL;
  if (model_path != NULL)
    {
      model = lsc_model_load (model_path, &error);
      what = g_path_get_basename (model_path);
    }
  else
    {
      LscModelConfig config;
      if (shape == NULL)
        shape = g_strdup ("llama-1b");
      if (!lsc_model_config_init_shape (&config, shape))
        {
          g_printerr ("bench-forward: unknown --shape '%s'\n", shape);
          return 2;
        }
      if (n_layers > 0)
        config.n_layers = MIN (n_layers, config.n_layers);
      model = lsc_model_new_synthetic (&config, dtype, 1234, &error);
      what = g_strdup_printf ("%s (synthetic %s)", shape, lsc_dtype_name (dtype));
    }
  if (model == NULL)
    {
      g_printerr ("bench-forward: %s\n", error->message);
      return 3;
    }
  double t_model = now_s () - t0;
  const LscModelConfig config_copy = *lsc_model_get_config (model);   /* outlives the model */
  const LscModelConfig *c = &config_copy;

  /* what one token reads: every layer matrix, the classifier (the embedding
   * when tied) once; the embedding row itself is negligible */
  double layer_params = 0, layer_bytes = 0, cls_params = 0, cls_bytes = 0;
  for (guint i = 0; i < lsc_model_get_n_tensors (model); i++)
    {
      const LscTensor *t = lsc_model_get_tensor (model, i);
      if (t->n_dims != 2)
        continue;
      if (t->layer >= 0)
        {
          layer_params += lsc_tensor_n_elements (t);
          layer_bytes += t->n_bytes;
        }
      else if (t->role == LSC_TENSOR_OUTPUT
               || (t->role == LSC_TENSOR_TOKEN_EMBD && c->tied_embeddings))
        {
          cls_params += lsc_tensor_n_elements (t);
          cls_bytes += t->n_bytes;
        }
    }

  LscSessionParams p;
  lsc_session_params_init (&p);
  p.n_threads = n_threads;
  p.n_ctx = n_prefill + n_decode + 1;
  if (kv_name != NULL)
    {
      LscKvPolicyKind kind;
      if (!lsc_kv_policy_from_string (kv_name, &kind))
        {
          g_printerr ("bench-forward: unknown --kv '%s'\n", kv_name);
          return 2;
        }
      lsc_kv_policy_init (&p.kv_policy, kind);
      p.kv_policy.n_sink = 4;
      p.kv_policy.n_recent = kind == LSC_KV_H2O ? kv_budget / 2 : kv_budget - 4;
      p.kv_policy.n_heavy = kv_budget - kv_budget / 2;
      p.kv_policy.capacity = kv_budget;
      p.kv_policy.n_global = 4;
      p.kv_policy.n_local = kv_budget - 4;
      p.n_ctx = lsc_kv_policy_slots (&p.kv_policy, n_prefill, 0, n_decode + 1);
      what = g_strdup_printf ("%s, %s keeping %d tokens", g_steal_pointer (&what), kv_name,
                              kv_budget);
    }
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  if (s == NULL)
    {
      g_printerr ("bench-forward: %s\n", error->message);
      return 1;
    }
  int vocab = lsc_session_get_n_vocab (s);
  g_autofree float *logits = g_new (float, vocab);           /* (vocab) */
  g_autofree gint32 *tokens = g_new (gint32, n_prefill + n_decode); /* (n_prefill + n_decode) */
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  for (int i = 0; i < n_prefill + n_decode; i++)
    tokens[i] = g_rand_int_range (rand, 0, c->vocab_size);

  /* best of n_repeat: a 2-core machine's timings move by several % run to run */
  double t_prefill = G_MAXDOUBLE;
  for (int r = 0; r < MAX (n_repeat, 1); r++)
    {
      lsc_session_rewind (s, 0);
      t0 = now_s ();
      if (!lsc_session_eval (s, tokens, n_prefill, logits, FALSE, NULL, NULL, &error))
        {
          g_printerr ("bench-forward: %s\n", error->message);
          return 1;
        }
      t_prefill = MIN (t_prefill, now_s () - t0);
    }

  t0 = now_s ();
  for (int i = 0; i < n_decode; i++)
    if (!lsc_session_eval (s, tokens + n_prefill + i, 1, logits, FALSE, NULL, NULL, &error))
      {
        g_printerr ("bench-forward: %s\n", error->message);
        return 1;
      }
  double t_decode = now_s () - t0;
  double rss = peak_rss_gib ();
  LscSessionMemory mem;
  lsc_session_get_memory (s, &mem);
  g_clear_pointer (&s, lsc_session_free);

  /* the estimate of the same run: the prompt with its logits, then the
   * decode steps (max_tokens - 1 of them after the prompt's) */
  LscEstimateParams ep;
  lsc_estimate_params_init (&ep);
  ep.n_prompt = n_prefill;
  ep.max_tokens = n_decode + 1;
  ep.session = p;
  LscEstimate est;
  gint64 te = g_get_monotonic_time ();
  if (!lsc_estimate_run (model, &ep, &est, &error))
    {
      g_printerr ("bench-forward: %s\n", error->message);
      return 1;
    }
  double t_estimate = (g_get_monotonic_time () - te) / 1e6;
  g_clear_pointer (&model, lsc_model_free);

  double gflops = no_floors ? 0 : sgemm_floor (n_threads);
  double bw = no_floors ? 0 : read_floor (n_threads);
  double prefill_tps = n_prefill / t_prefill;
  double decode_tps = n_decode > 0 ? n_decode / t_decode : 0;
  /* the classifier runs once per prefill (last token's logits) */
  double flops_per_token = 2.0 * (layer_params + cls_params / n_prefill);
  double prefill_floor = gflops * 1e9 / flops_per_token;
  double decode_floor = bw * 1e9 / (layer_bytes + cls_bytes);

  /* which prefill GEMM takes weights not in f32 (see lsc-llama-fast.c) */
  const char *gemm = lsc_fast_gemm_available () ? "lsc_fast_gemm_rows" : "widened tiles + sgemm";
  g_print ("bench-forward: %s, %d layers, dim %d, %.1f M matrix params (%.2f GB read per token), "
           "%d threads, model ready in %.1f s, f16/bf16/q8_0 prefill GEMM: %s\n", what,
           c->n_layers, c->dim, (layer_params + cls_params) / 1e6,
           (layer_bytes + cls_bytes) / 1e9, n_threads, t_model, gemm);
  g_print ("| %-30s | %12s | %-34s | %8s |\n", "measure", "value", "floor (this machine)", "of floor");
  g_print ("|%s|%s|%s|%s|\n", "--------------------------------", "--------------",
           "------------------------------------", "----------");
  g_autofree char *pl = g_strdup_printf ("prefill (%d tokens)", n_prefill);
  g_autofree char *pf = g_strdup_printf ("%.1f tok/s (sgemm %.0f GFLOP/s)", prefill_floor, gflops);
  g_print ("| %-30s | %8.2f tok/s | %-34s | %7.0f%% |\n", pl, prefill_tps,
           no_floors ? "-" : pf, no_floors ? 0 : 100 * prefill_tps / prefill_floor);
  g_autofree char *dl = g_strdup_printf ("decode (%d tokens after %d)", n_decode, n_prefill);
  g_autofree char *df = g_strdup_printf ("%.2f tok/s (read %.1f GB/s)", decode_floor, bw);
  g_print ("| %-30s | %8.2f tok/s | %-34s | %7.0f%% |\n", dl, decode_tps,
           no_floors ? "-" : df, no_floors ? 0 : 100 * decode_tps / decode_floor);
  g_print ("| %-30s | %10.2f GiB | %-34s | %8s |\n", "peak RSS (model + session)", rss, "", "");
  g_print ("estimate (sgemm %.0f GFLOP/s, read %.1f GB/s, measured in %.0f ms): prefill %.2f s "
           "(measured %.2f s), decode %.2f s (measured %.2f s); %.3f GiB of weights, KV cache "
           "and buffers (the session held %.3f GiB besides the weights; estimate %.3f GiB)\n",
           est.prefill_gflops, est.decode_gbps, t_estimate * 1e3, est.prefill_s, t_prefill,
           est.decode_s, t_decode, est.total_bytes / 1073741824.0,
           (mem.kv_bytes + mem.scratch_bytes) / 1073741824.0,
           (est.kv_bytes + est.activation_bytes) / 1073741824.0);
  return 0;
}
