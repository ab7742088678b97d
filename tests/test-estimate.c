/* SPDX-License-Identifier: MIT
 *
 * The run estimate (lsc-estimate.h): memory against what a real session,
 * its capture store and the streaming pass allocate (exact, byte for byte),
 * FLOPs and bytes against the formulas written out here position by
 * position, time monotonic in the prompt, measured rates, and errors that
 * name the bad field.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-demo.h"
#include "lsc-error.h"
#include "lsc-estimate.h"
#include "lsc-generate.h"
#include "lsc-test-util.h"

/* ---- memory: the estimate against a real run ---- */

static float
unit_scale (gpointer data, int layer, int head, int pos)
{
  return 1.0f;
}

static void
hide_nothing (gpointer data, int layer, int head, int pos, guint8 *hidden)
{
}

/* Runs p on model as a batch job does (all but the last prompt token, then
 * generation without stop tokens; or the whole prompt when max_tokens is 0),
 * and checks every byte count of the estimate against the session's. */
static void
check_memory (LscModel *model, const LscEstimateParams *p)
{
  g_autoptr(GError) error = NULL;
  const LscModelConfig *c = lsc_model_get_config (model);
  LscEstimate e;

  g_assert_true (lsc_estimate_run (model, p, &e, &error));
  g_assert_no_error (error);

  LscSessionParams sp = p->session;
  sp.n_ctx = e.n_ctx;   /* the estimate's default is a batch job's, max (4096, prompt + new) */
  g_autoptr(LscSession) s = lsc_session_new (model, &sp, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_params (s)->n_threads, ==, e.n_threads);
  g_assert_cmpint (lsc_session_get_backend (s), ==, e.backend);

  g_autofree gint32 *prompt = g_new (gint32, p->n_prompt);
  for (int i = 0; i < p->n_prompt; i++)
    prompt[i] = (gint32) ((i * 2654435761u + 7) % (guint) c->vocab_size);
  if (p->max_tokens > 0)
    {
      LscGenerateParams gp;
      lsc_generate_params_init (&gp);
      gp.max_tokens = p->max_tokens;
      g_autoptr(GArray) out = g_array_new (FALSE, FALSE, sizeof (gint32));
      g_assert_true (lsc_session_eval (s, prompt, p->n_prompt - 1, NULL, FALSE, NULL, NULL,
                                       &error));
      g_assert_true (lsc_generate (s, prompt + p->n_prompt - 1, 1, &gp, out, NULL, NULL, NULL,
                                   NULL, NULL, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (out->len, ==, p->max_tokens);
    }
  else
    g_assert_true (lsc_session_eval (s, prompt, p->n_prompt, NULL, FALSE, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_pos (s), ==, p->n_prompt + MAX (p->max_tokens - 1, 0));

  /* weights: every tensor of the model */
  guint64 weights = 0;
  for (guint i = 0; i < lsc_model_get_n_tensors (model); i++)
    weights += lsc_model_get_tensor (model, i)->n_bytes;
  g_assert_cmpuint (e.weight_bytes, ==, weights);

  /* the session: KV cache written out, the rest as the session counts it */
  LscSessionMemory m;
  lsc_session_get_memory (s, &m);
  guint64 kv = 2ull * c->n_layers * e.n_ctx * c->n_kv_heads * c->head_dim * sizeof (float);
  g_assert_cmpuint (m.kv_bytes, ==, kv);
  g_assert_cmpuint (e.kv_bytes, ==, kv);
  g_assert_cmpuint (e.activation_bytes, ==, m.scratch_bytes);
  g_assert_cmpuint (e.activation_bytes, >, 0);

  /* the store: what results.json reports as attention.store_bytes */
  const LscAttentionStore *a = lsc_session_get_attention (s);
  if (!p->session.capture.enabled)
    {
      g_assert_null (a);
      g_assert_cmpuint (e.capture_bytes, ==, 0);
      g_assert_cmpuint (e.pyramid_bytes, ==, 0);
      g_assert_cmpfloat (e.capture_flops, ==, 0);
    }
  else
    {
      g_assert_nonnull (a);
      g_assert_cmpuint (e.capture_bytes, ==, lsc_attention_get_bytes (a));
      g_assert_cmpuint (m.capture_bytes, ==, lsc_attention_get_bytes (a));
      g_assert_cmpint (e.n_rows_captured, ==, lsc_attention_get_n_rows (a));
      /* the pyramids the streaming pass builds */
      guint64 pyramids = 0;
      for (int l = 0; l < c->n_layers; l++)
        for (int h = 0; h < c->n_heads; h++)
          {
            if (!lsc_attention_has_head (a, l, h) || !p->pyramids)
              continue;
            g_autoptr(LscAttentionPyramid) pyr = NULL;
            g_assert_true (lsc_attention_analyze (a, l, h, 4, &pyr, NULL, &error));
            g_assert_no_error (error);
            for (int k = 0; k < pyr->n_levels; k++)
              pyramids += 2ull * pyr->levels[k].rows * pyr->levels[k].cols * sizeof (float);
          }
      g_assert_cmpuint (e.pyramid_bytes, ==, pyramids);
      g_assert_cmpuint (e.pyramid_bytes > 0, ==, p->pyramids);
    }
  g_assert_cmpuint (e.total_bytes, ==, e.weight_bytes + e.kv_bytes + e.activation_bytes
                                       + e.capture_bytes + e.pyramid_bytes);
  g_test_message ("n_prompt %d, max_tokens %d, n_ctx %d: weights %" G_GUINT64_FORMAT
                  ", KV %" G_GUINT64_FORMAT ", activations %" G_GUINT64_FORMAT ", store %"
                  G_GUINT64_FORMAT ", pyramids %" G_GUINT64_FORMAT " bytes: estimate = session",
                  p->n_prompt, p->max_tokens, e.n_ctx, e.weight_bytes, e.kv_bytes,
                  e.activation_bytes, e.capture_bytes, e.pyramid_bytes);
}

/* Rates given: memory checks never measure the CPU. */
static void
params_init (LscEstimateParams *p, int n_prompt, int max_tokens)
{
  lsc_estimate_params_init (p);
  p->n_prompt = n_prompt;
  p->max_tokens = max_tokens;
  p->session.n_threads = 2;
  p->prefill_gflops = 100;
  p->decode_gbps = 10;
}

static void
test_memory_tiny_llama (void)
{
  g_autoptr(LscModel) model = lsc_test_load_shared_model ("models/random/tiny-llama");
  if (model == NULL)
    return;
  LscEstimateParams p;

  /* no capture, default n_ctx (4096) */
  params_init (&p, 37, 5);
  check_memory (model, &p);

  /* a subset of layers and heads, prompt rows, pyramids */
  int layers[] = { 2, 0, 2 }, heads[] = { 1, 3 };
  params_init (&p, 37, 5);
  p.session.n_ctx = 64;
  p.session.capture = (LscCapturePlan) { .enabled = TRUE, .layers = layers, .n_layers = 3,
                                         .heads = heads, .n_heads = 2, .row_end = 37 };
  p.stats = p.pyramids = TRUE;
  check_memory (model, &p);

  /* every layer, head and row (decode rows too), three threads */
  params_init (&p, 37, 9);
  p.session.n_ctx = 50;
  p.session.n_threads = 3;
  p.session.capture.enabled = TRUE;
  p.pyramids = TRUE;
  check_memory (model, &p);

  /* a long prompt: blocks of 512, the whole prompt in one evaluation */
  params_init (&p, 700, 0);
  p.session.n_ctx = 1024;
  p.session.capture = (LscCapturePlan) { .enabled = TRUE, .layers = layers, .n_layers = 1,
                                         .row_start = 100, .row_end = 600 };
  p.pyramids = TRUE;
  check_memory (model, &p);

  /* hooks: the store keeps scales, the fast path a mask buffer per thread */
  params_init (&p, 40, 3);
  p.session.capture.enabled = TRUE;
  p.session.hooks = (LscAttentionHooks) { unit_scale, hide_nothing, NULL };
  check_memory (model, &p);

  /* the reference path: no block buffers */
  params_init (&p, 20, 4);
  p.session.reference = TRUE;
  p.session.capture.enabled = TRUE;
  check_memory (model, &p);
}

static void
test_memory_demo (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_model_load (LSC_DEMO_INDUCTION, &error);
  g_assert_no_error (error);
  LscEstimateParams p;

  params_init (&p, 64, 8);
  p.session.capture.enabled = TRUE;
  p.stats = p.pyramids = TRUE;
  check_memory (model, &p);

  params_init (&p, 1, 1);   /* a lone BOS: the first evaluation is empty */
  check_memory (model, &p);

  /* the demo's default run in the application: prompt rows, n_ctx prompt + new + 1 */
  params_init (&p, 30, 16);
  p.session.n_ctx = 30 + 16 + 1;
  p.session.capture = (LscCapturePlan) { .enabled = TRUE, .row_end = 30 };
  check_memory (model, &p);
}

/* A model whose matrices are not f32: the fast path widens them through its
 * own GEMM or a slab (lsc-llama-fast.c), whichever this CPU takes. */
static void
test_memory_bf16 (void)
{
  g_autoptr(GError) error = NULL;
  LscModelConfig config;
  g_assert_true (lsc_model_config_init_shape (&config, "stories260K-shape"));
  g_autoptr(LscModel) model = lsc_model_new_synthetic (&config, LSC_DTYPE_BF16, 7, &error);
  g_assert_no_error (error);
  LscEstimateParams p;

  params_init (&p, 100, 4);
  p.session.n_ctx = 128;
  p.session.capture.enabled = TRUE;
  p.pyramids = TRUE;
  check_memory (model, &p);

  params_init (&p, 20, 2);   /* under WIDEN_MIN_T: no widening buffers */
  p.session.n_ctx = 64;
  check_memory (model, &p);
}

/* ---- FLOPs and bytes: the formulas written out per position ---- */

/* A small Llama with sliding windows from layer 1 on (Qwen2-style). */
static LscModel *
small_model (LscDType dtype, LscModelConfig *config)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (lsc_model_config_init_shape (config, "stories260K-shape"));
  config->vocab_size = 50;
  config->dim = 32;
  config->n_layers = 3;
  config->n_heads = 4;
  config->n_kv_heads = 2;
  config->head_dim = 16;        /* q_dim 64 != dim */
  config->hidden_dim = 48;
  config->tied_embeddings = FALSE;
  config->sliding_window = 8;
  config->max_window_layers = 1;
  LscModel *model = lsc_model_new_synthetic (config, dtype, 11, &error);
  g_assert_no_error (error);
  return model;
}

/* Keys row `pos` of `layer` sees in the small model. */
static double
visible (const LscModelConfig *c, int layer, int pos)
{
  int w = layer >= c->max_window_layers ? c->sliding_window : 0;
  return w > 0 ? MIN (pos + 1, w) : pos + 1;
}

static void
test_flops (void)
{
  g_autoptr(GError) error = NULL;
  LscModelConfig c;
  g_autoptr(LscModel) model = small_model (LSC_DTYPE_F32, &c);
  const int n = 20, G = 6, L = c.n_layers, H = c.n_heads, hd = c.head_dim;
  const double dim = c.dim, q = c.n_heads * hd, kv = c.n_kv_heads * hd, hid = c.hidden_dim;

  /* 2 x (q, k, v, o, gate, up, down) per layer; the untied classifier */
  double layer_params = L * (dim * q + 2 * dim * kv + q * dim + 3 * dim * hid);
  double cls_params = c.vocab_size * dim;
  g_assert_cmpfloat (layer_params, ==, 3 * (2048 + 2048 + 2048 + 4608));

  int cap_layers[] = { 1 }, cap_heads[] = { 0, 2 };
  LscEstimateParams p;
  lsc_estimate_params_init (&p);
  p.n_prompt = n;
  p.max_tokens = G;
  p.session.n_ctx = 32;
  p.session.n_threads = 2;
  p.session.capture = (LscCapturePlan) { .enabled = TRUE, .layers = cap_layers, .n_layers = 1,
                                         .heads = cap_heads, .n_heads = 2, .row_end = n };
  p.stats = TRUE;
  p.prefill_gflops = 100;
  p.attention_gflops = 25;
  p.decode_gbps = 8;
  LscEstimate e;
  g_assert_true (lsc_estimate_run (model, &p, &e, &error));
  g_assert_no_error (error);

  /* prefill: every prompt row, one row of logits */
  double prefill_proj = 2 * layer_params * n + 2 * cls_params;
  double prefill_attn = 0;
  for (int i = 0; i < n; i++)
    for (int l = 0; l < L; l++)
      prefill_attn += 4.0 * H * hd * visible (&c, l, i);
  /* layer 0 sees 1..20 keys (210), layers 1 and 2 min(i + 1, 8) (36 + 12 * 8 = 132 each) */
  g_assert_cmpfloat (prefill_attn, ==, 4.0 * H * hd * (210 + 2 * 132));
  g_assert_cmpfloat (e.prefill_flops, ==, prefill_proj + prefill_attn);

  /* decode: G - 1 steps at positions n .. n + G - 2, each with logits */
  double decode = 0, decode_bytes = 0;
  for (int i = n; i < n + G - 1; i++)
    {
      decode += 2 * (layer_params + cls_params);
      decode_bytes += 4 * (layer_params + cls_params);   /* f32 */
      for (int l = 0; l < L; l++)
        {
          decode += 4.0 * H * hd * visible (&c, l, i);
          decode_bytes += 2 * kv * 4 * visible (&c, l, i);
        }
    }
  g_assert_cmpfloat (e.decode_flops, ==, decode);
  g_assert_cmpfloat (e.decode_bytes, ==, decode_bytes);

  /* the streaming pass: 2 heads of layer 1 over the prompt rows */
  double cells = 0;
  for (int i = 0; i < n; i++)
    cells += visible (&c, 1, i);
  g_assert_cmpfloat (cells, ==, 132);
  g_assert_cmpint (e.n_rows_captured, ==, n);
  g_assert_cmpfloat (e.capture_flops, ==, 2 * (2.0 * hd + LSC_ESTIMATE_CELL_FLOPS) * cells);

  /* time from the rates: prefill compute-bound here (one pass over the
   * weights for the first 19 tokens, one with the classifier for the last),
   * decode bandwidth-bound */
  double prefill_read = 4 * layer_params + 4 * (layer_params + cls_params);
  double prefill_s = MAX (prefill_proj / 100e9 + prefill_attn / 25e9, prefill_read / 8e9);
  g_assert_cmpfloat_with_epsilon (e.prefill_s, prefill_s, 1e-15);
  g_assert_cmpfloat_with_epsilon (e.decode_s, MAX (decode_bytes / 8e9, decode / 100e9), 1e-15);
  g_assert_cmpfloat (e.capture_gflops, >, 0);
  g_assert_cmpfloat_with_epsilon (e.capture_s, e.capture_flops / (e.capture_gflops * 1e9), 1e-15);
  g_assert_cmpfloat_with_epsilon (e.total_s, e.prefill_s + e.decode_s + e.capture_s, 1e-15);
  g_assert_cmpfloat (e.prefill_gflops, ==, 100);
  g_assert_cmpfloat (e.attention_gflops, ==, 25);
  g_assert_cmpfloat (e.decode_gbps, ==, 8);

  /* bf16 weights: the same FLOPs, half the weight bytes read */
  LscModelConfig c16;
  g_autoptr(LscModel) model16 = small_model (LSC_DTYPE_BF16, &c16);
  LscEstimate e16;
  g_assert_true (lsc_estimate_run (model16, &p, &e16, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (e16.prefill_flops, ==, e.prefill_flops);
  g_assert_cmpfloat (e16.decode_flops, ==, e.decode_flops);
  g_assert_cmpfloat (e16.decode_bytes, ==,
                     decode_bytes - 2.0 * (G - 1) * (layer_params + cls_params));

  /* no generation: no logits, no decode */
  p.max_tokens = 0;
  g_assert_true (lsc_estimate_run (model, &p, &e, &error));
  g_assert_cmpfloat (e.prefill_flops, ==, 2 * layer_params * n + prefill_attn);
  g_assert_cmpfloat (e.decode_flops, ==, 0);
  g_assert_cmpfloat (e.decode_s, ==, 0);
}

/* ---- time ---- */

static void
test_rates (void)
{
  /* one thread: no other test of this process measures it */
  double gflops = 0, gbps = 0, gflops2 = 0, gbps2 = 0;
  gint64 t0 = g_get_monotonic_time ();
  lsc_estimate_measure_cpu_rates (1, &gflops, &gbps);
  double first_ms = (g_get_monotonic_time () - t0) / 1e3;
  t0 = g_get_monotonic_time ();
  lsc_estimate_measure_cpu_rates (1, &gflops2, &gbps2);
  double cached_ms = (g_get_monotonic_time () - t0) / 1e3;
  g_test_message ("1 thread: sgemm %.1f GFLOP/s, read %.1f GB/s, measured in %.1f ms "
                  "(cached: %.3f ms)", gflops, gbps, first_ms, cached_ms);
  g_assert_true (isfinite (gflops) && gflops > 0);
  g_assert_true (isfinite (gbps) && gbps > 0);
  g_assert_cmpfloat (gflops2, ==, gflops);   /* cached per process */
  g_assert_cmpfloat (gbps2, ==, gbps);
  g_assert_cmpfloat (first_ms, <, 2000);     /* ~100 ms; generous under sanitizers */
  g_assert_cmpfloat (cached_ms, <, 10);

  t0 = g_get_monotonic_time ();
  lsc_estimate_measure_cpu_rates (0, &gflops, &gbps);   /* all cores */
  g_test_message ("all cores: sgemm %.1f GFLOP/s, read %.1f GB/s (%.1f ms)", gflops, gbps,
                  (g_get_monotonic_time () - t0) / 1e3);
  g_assert_true (isfinite (gflops) && gflops > 0);
  g_assert_true (isfinite (gbps) && gbps > 0);
}

static void
test_time_monotonic (void)
{
  g_autoptr(GError) error = NULL;
  LscModelConfig config;
  g_assert_true (lsc_model_config_init_shape (&config, "stories260K-shape"));
  g_autoptr(LscModel) model = lsc_model_new_synthetic (&config, LSC_DTYPE_BF16, 3, &error);
  g_assert_no_error (error);

  LscEstimate prev = { 0 };
  for (int n = 1; n <= (1 << 17); n *= 2)
    {
      LscEstimateParams p;
      lsc_estimate_params_init (&p);   /* rates measured */
      p.n_prompt = n;
      p.max_tokens = 16;
      p.session.capture.enabled = TRUE;
      p.session.capture.memory_budget = G_MAXUINT64;
      p.stats = TRUE;
      LscEstimate e;
      g_assert_true (lsc_estimate_run (model, &p, &e, &error));
      g_assert_no_error (error);
      g_assert_true (isfinite (e.total_s) && e.total_s > 0);
      g_assert_true (e.prefill_s >= 0 && e.decode_s >= 0 && e.capture_s >= 0);
      if (n > 1)
        {
          g_assert_cmpfloat (e.prefill_s, >=, prev.prefill_s);
          g_assert_cmpfloat (e.decode_s, >, prev.decode_s);   /* longer context: more KV read */
          g_assert_cmpfloat (e.capture_s, >, prev.capture_s);
          g_assert_cmpfloat (e.total_s, >, prev.total_s);
          g_assert_cmpuint (e.total_bytes, >=, prev.total_bytes);
        }
      if (n >= 1024)   /* past the weight reads of small prompts */
        g_assert_cmpfloat (e.prefill_s, >, prev.prefill_s);
      prev = e;
    }
  g_test_message ("stories260K shape, 128k tokens: prefill %.1f s, decode %.2f s, capture pass "
                  "%.1f s, %.1f GiB", prev.prefill_s, prev.decode_s, prev.capture_s,
                  prev.total_bytes / 1073741824.0);
}

/* ---- bad input ---- */

static void
test_bad_input (void)
{
  g_autoptr(GError) error = NULL;
  LscModelConfig c;
  g_autoptr(LscModel) model = small_model (LSC_DTYPE_F32, &c);
  LscEstimateParams p;
  LscEstimate e;

  params_init (&p, -1, 4);
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT, "n_prompt", "-1",
                         NULL);
  g_clear_error (&error);

  params_init (&p, 0, 4);
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT, "n_prompt", NULL);
  g_clear_error (&error);

  params_init (&p, 10, -2);
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT, "max_tokens",
                         NULL);
  g_clear_error (&error);

  params_init (&p, 10, 4);
  p.session.n_threads = -3;
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                         "session.n_threads", NULL);
  g_clear_error (&error);

  params_init (&p, 10, 4);
  p.prefill_gflops = NAN;
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT, "prefill_gflops",
                         NULL);
  g_clear_error (&error);

  params_init (&p, 10, 4);
  p.decode_gbps = -1;
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT, "decode_gbps",
                         NULL);
  g_clear_error (&error);

  /* more tokens than the context */
  params_init (&p, 30, 4);
  p.session.n_ctx = 32;
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CONTEXT_FULL, "n_ctx", "33", NULL);
  g_clear_error (&error);
  p.session.n_ctx = 33;   /* 30 + 4 - 1 fit */
  g_assert_true (lsc_estimate_run (model, &p, &e, &error));
  g_assert_no_error (error);

  /* a capture layer or head that does not exist: the session's own error */
  int layers[] = { 0, 3 }, heads[] = { 1, -1 };
  params_init (&p, 10, 4);
  p.session.capture = (LscCapturePlan) { .enabled = TRUE, .layers = layers, .n_layers = 2 };
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "capture plan",
                         "layers[1] = 3", "3 layers", NULL);
  g_clear_error (&error);
  p.session.n_ctx = 64;
  g_assert_null (lsc_session_new (model, &p.session, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "layers[1] = 3", NULL);
  g_clear_error (&error);

  p.session.capture = (LscCapturePlan) { .enabled = TRUE, .heads = heads, .n_heads = 2 };
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "heads[1] = -1",
                         "4 heads", NULL);
  g_clear_error (&error);

  /* a store over its budget */
  p.session.capture = (LscCapturePlan) { .enabled = TRUE, .memory_budget = 1024 };
  g_assert_false (lsc_estimate_run (model, &p, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_OUT_OF_MEMORY, "budget", NULL);
  g_clear_error (&error);

  /* CUDA by name where it cannot run fails as the session does */
  if (lsc_backend_cuda_unavailable () != NULL)
    {
      params_init (&p, 10, 4);
      p.session.backend = LSC_BACKEND_CUDA;
      g_assert_false (lsc_estimate_run (model, &p, &e, &error));
      lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "session.backend",
                             "CUDA", NULL);
      g_clear_error (&error);
      p.session.backend = LSC_BACKEND_AUTO;   /* falls back to the CPU */
      g_assert_true (lsc_estimate_run (model, &p, &e, &error));
      g_assert_cmpint (e.backend, ==, LSC_BACKEND_CPU);
      g_assert_cmpuint (e.device_bytes, ==, 0);
    }
}

/* ---- the GPU: device memory against the context's peak ---- */

static void
test_cuda_memory (void)
{
  if (lsc_backend_cuda_unavailable () != NULL)
    {
      g_test_skip (lsc_backend_cuda_unavailable ());
      return;
    }
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_model_load (LSC_DEMO_INDUCTION, &error);
  g_assert_no_error (error);
  LscEstimateParams p;
  params_init (&p, 300, 6);
  p.session.backend = LSC_BACKEND_CUDA;
  p.session.capture.enabled = TRUE;
  p.pyramids = TRUE;
  p.attention_gflops = 1000;
  check_memory (model, &p);

  LscEstimate e;
  g_assert_true (lsc_estimate_run (model, &p, &e, &error));
  g_assert_cmpint (e.backend, ==, LSC_BACKEND_CUDA);
  /* the pass runs on the device, at the attention rate given */
  g_assert_cmpfloat (e.capture_gflops, ==, 1000);
  g_assert_cmpfloat (e.capture_s, ==, e.capture_flops / 1e12);
  LscSessionParams sp = p.session;
  sp.n_ctx = e.n_ctx;
  g_autoptr(LscSession) s = lsc_session_new (model, &sp, &error);
  g_assert_no_error (error);
  g_autofree gint32 *prompt = g_new0 (gint32, p.n_prompt);
  g_assert_true (lsc_session_eval (s, prompt, p.n_prompt, NULL, FALSE, NULL, NULL, &error));
  /* pyramids, statistics and tiles on the device use the session's buffers */
  const LscAttentionStore *a = lsc_session_get_attention (s);
  int n_layers, n_heads, n_kv_heads, head_dim;
  lsc_attention_get_shape (a, &n_layers, &n_heads, &n_kv_heads, &head_dim);
  g_autofree float *tile = g_new (float, (gsize) p.n_prompt * p.n_prompt);
  for (int l = 0; l < n_layers; l++)
    for (int h = 0; h < n_heads; h++)
      {
        g_autoptr(LscAttentionPyramid) pyr = NULL;
        LscHeadStats st;
        g_assert_true (lsc_attention_analyze (a, l, h, 1, &pyr, &st, &error));
        g_assert_true (lsc_attention_tile (a, l, h, 0, p.n_prompt, 0, p.n_prompt, 0.0f, tile,
                                           &error));
      }
  guint64 peak = 0;
  g_assert_true (lsc_session_get_device_memory (s, &peak));
  g_assert_cmpuint (e.device_bytes, ==, peak);

  /* `auto` keeps the maps on the host until their kernels are checked on a
   * device (MAPS_CUDA_CHECKED in engine/lsc-attention-cuda.c) */
  LscEstimateParams ap = p;
  ap.session.backend = LSC_BACKEND_AUTO;
  LscEstimate ae;
  g_assert_true (lsc_estimate_run (model, &ap, &ae, &error));
  g_assert_cmpint (ae.backend, ==, LSC_BACKEND_CUDA);
  g_assert_cmpuint (ae.device_bytes, <, e.device_bytes);
  g_assert_cmpfloat (ae.capture_gflops, !=, 1000);   /* the CPU's measured rate */

  /* a scale hook runs on the GPU: its multipliers of a block on both sides */
  LscEstimateParams hp = p;
  hp.session.hooks.scale = unit_scale;
  check_memory (model, &hp);
  LscEstimate he;
  g_assert_true (lsc_estimate_run (model, &hp, &he, &error));
  g_assert_cmpint (he.backend, ==, LSC_BACKEND_CUDA);
  g_assert_cmpuint (he.device_bytes, >, e.device_bytes);
  LscSessionParams hsp = hp.session;
  hsp.n_ctx = he.n_ctx;
  g_autoptr(LscSession) hs = lsc_session_new (model, &hsp, &error);
  g_assert_no_error (error);
  g_assert_true (lsc_session_eval (hs, prompt, hp.n_prompt, NULL, FALSE, NULL, NULL, &error));
  g_assert_true (lsc_session_get_device_memory (hs, &peak));
  g_assert_cmpuint (he.device_bytes, ==, peak);

  /* Mamba on the GPU, Δ recorded and filtered (pinned host copies of Δ) */
  g_autofree char *mamba_path = lsc_test_shared_path ("models/random/tiny-mamba");
  if (mamba_path == NULL)
    return;
  g_autoptr(LscModel) mamba = lsc_model_load (mamba_path, &error);
  g_assert_no_error (error);
  LscEstimateParams mp;
  params_init (&mp, 36, 5);
  mp.session.backend = LSC_BACKEND_CUDA;
  mp.session.ssm_capture = (LscSsmCapturePlan) { TRUE, 1, -1 };
  float thr[3 * 128] = { 0 };
  guint8 global[3 * 128] = { 0 };
  mp.session.ssm_filter = (LscSsmFilter) { TRUE, thr, global, 1.0, 30 };
  LscEstimate me;
  g_assert_true (lsc_estimate_run (mamba, &mp, &me, &error));
  g_assert_cmpint (me.backend, ==, LSC_BACKEND_CUDA);
  LscSessionParams msp = mp.session;
  msp.n_ctx = me.n_ctx;
  g_autoptr(LscSession) ms = lsc_session_new (mamba, &msp, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (ms), ==, LSC_BACKEND_CUDA);
  gint32 tokens[40];
  for (int i = 0; i < 40; i++)
    tokens[i] = 1 + i;
  g_assert_true (lsc_session_eval (ms, tokens, 35, NULL, FALSE, NULL, NULL, &error));
  for (int i = 35; i < 40; i++)
    g_assert_true (lsc_session_eval (ms, tokens + i, 1, NULL, FALSE, NULL, NULL, &error));
  LscSessionMemory mem;
  lsc_session_get_memory (ms, &mem);
  g_assert_cmpuint (me.kv_bytes, ==, mem.kv_bytes);
  g_assert_cmpuint (me.activation_bytes, ==, mem.scratch_bytes);
  g_assert_cmpuint (me.capture_bytes, ==, mem.capture_bytes);
  g_assert_true (lsc_session_get_device_memory (ms, &peak));
  g_assert_cmpuint (me.device_bytes, ==, peak);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/estimate/memory-tiny-llama", test_memory_tiny_llama);
  g_test_add_func ("/engine/estimate/memory-demo", test_memory_demo);
  g_test_add_func ("/engine/estimate/memory-bf16", test_memory_bf16);
  g_test_add_func ("/engine/estimate/flops", test_flops);
  g_test_add_func ("/engine/estimate/rates", test_rates);
  g_test_add_func ("/engine/estimate/time-monotonic", test_time_monotonic);
  g_test_add_func ("/engine/estimate/bad-input", test_bad_input);
  g_test_add_func ("/engine/estimate/cuda-memory", test_cuda_memory);
  return g_test_run ();
}
