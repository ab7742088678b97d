/* SPDX-License-Identifier: MIT
 *
 * The Mamba-1 / Mamba-2 sessions beyond their logits (test-forward.c holds
 * those to the shared reference): the recurrent state across calls, cancel,
 * the errors of what an SSM has not got.
 */
#include "config.h"

#include <json-c/json.h>
#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-estimate.h"
#include "lsc-session.h"
#include "lsc-test-util.h"

static LscModel *
load_shared (const char *rel)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = lsc_test_shared_path (rel);
  if (path == NULL)
    return NULL;
  LscModel *model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  return model;
}

static double
max_abs_diff (const float *a, const float *b, gsize n)
{
  double d = 0;
  for (gsize i = 0; i < n; i++)
    {
      g_assert_true (isfinite (a[i]) && isfinite (b[i]));
      d = MAX (d, fabs ((double) a[i] - b[i]));
    }
  return d;
}

/* Every number of a nested JSON array, depth first, into out (which holds n). */
static gsize
flatten (json_object *v, double *out, gsize n, gsize at)
{
  if (json_object_is_type (v, json_type_array))
    {
      for (size_t i = 0; i < json_object_array_length (v); i++)
        at = flatten (json_object_array_get_idx (v, i), out, n, at);
      return at;
    }
  g_assert_cmpuint (at, <, n);
  out[at] = json_object_is_type (v, json_type_boolean) ? json_object_get_boolean (v)
                                                       : json_object_get_double (v);
  return at + 1;
}

/* key of the fixture object as n numbers (asserts the count). */
static double *
fixture_numbers (json_object *o, const char *key, gsize n)
{
  json_object *v = json_object_object_get (o, key);
  g_assert_nonnull (v);
  double *out = g_new (double, n);
  g_assert_cmpuint (flatten (v, out, n, 0), ==, n);
  return out;
}

static json_object *
load_fixture (const char *rel)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "fixtures", "ssm", rel, NULL);
  json_object *o = json_object_from_file (path);
  g_assert_nonnull (o);
  return o;
}

static GArray *
fixture_tokens (json_object *o)
{
  json_object *a = json_object_object_get (o, "tokens");
  GArray *t = g_array_new (FALSE, FALSE, sizeof (gint32));
  for (size_t i = 0; i < json_object_array_length (a); i++)
    {
      gint32 id = json_object_get_int (json_object_array_get_idx (a, i));
      g_array_append_val (t, id);
    }
  return t;
}

/* ||got - want|| / ||want|| over n values. */
static double
rel_error_f (const float *got, const double *want, gsize n)
{
  double diff = 0, norm = 0;
  for (gsize i = 0; i < n; i++)
    {
      g_assert_true (isfinite (got[i]));
      diff += (got[i] - want[i]) * (got[i] - want[i]);
      norm += want[i] * want[i];
    }
  return sqrt (diff / norm);
}

typedef struct {
  LscModel *model;
  LscSession *session;
  float *logits;   /* (n, vocab) */
  int n, vocab;
} Run;

static void
run_clear (Run *r)
{
  g_clear_pointer (&r->session, lsc_session_free);
  g_clear_pointer (&r->model, lsc_model_free);
  g_clear_pointer (&r->logits, g_free);
}

/* Loads the model and evaluates the fixture's tokens at once, recording Δ. */
static void
run_fixture (Run *r, const char *model_path, GArray *tokens, gboolean reference,
             const LscSsmFilter *filter)
{
  g_autoptr(GError) error = NULL;
  r->model = lsc_model_load (model_path, &error);
  g_assert_no_error (error);
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.reference = reference;
  p.n_threads = 2;
  p.ssm_capture = (LscSsmCapturePlan) { TRUE, 0, -1 };
  if (filter != NULL)
    p.ssm_filter = *filter;
  r->session = lsc_session_new (r->model, &p, &error);
  g_assert_no_error (error);
  r->n = (int) tokens->len;
  r->vocab = lsc_session_get_n_vocab (r->session);
  r->logits = g_new (float, (gsize) r->n * r->vocab);
  g_assert_true (lsc_session_eval (r->session, (gint32 *) tokens->data, r->n, r->logits, TRUE,
                                   NULL, NULL, &error));
  g_assert_no_error (error);
}

/* The recorded Δ of every layer, (n_layers, n_rows, n_channels), against the
 * fixture's. */
static double
dt_error (const LscSsmStore *st, const double *want)
{
  int L = lsc_ssm_store_get_n_layers (st), n = lsc_ssm_store_get_n_rows (st);
  int C = lsc_ssm_store_get_n_channels (st);
  double worst = 0;
  for (int l = 0; l < L; l++)
    worst = MAX (worst, rel_error_f (lsc_ssm_store_get_dt (st, l),
                                     want + (gsize) l * n * C, (gsize) n * C));
  return worst;
}

/* tiny-mamba2 (tests/fixtures/ssm, written by tools/make-ssm-fixtures.py):
 * 2 groups of 4 heads, so the gated norm is per group; logits and Δ against
 * transformers on both paths, and A as the checkpoint's -exp(A_log). */
static void
test_mamba2_fixture (void)
{
  json_object *o = load_fixture ("tiny-mamba2/expected.json");
  g_autoptr(GArray) tokens = fixture_tokens (o);
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "ssm", "tiny-mamba2",
                                                NULL);
  int n = (int) tokens->len;
  g_autofree double *logits = fixture_numbers (o, "logits", (gsize) n * 112);
  g_autofree double *dt = fixture_numbers (o, "dt", 2 * (gsize) n * 8);
  g_autofree double *a = fixture_numbers (o, "A", 2 * 8);

  for (int reference = 0; reference <= 1; reference++)
    {
      Run r = { 0 };
      run_fixture (&r, dir, tokens, reference, NULL);
      const LscSsmStore *st = lsc_session_get_ssm (r.session);
      g_assert_cmpint (lsc_ssm_store_get_n_channels (st), ==, 8);
      g_assert_cmpint (lsc_ssm_store_get_n_states (st), ==, 1);
      g_assert_cmpint (lsc_ssm_store_get_n_rows (st), ==, n);
      double le = rel_error_f (r.logits, logits, (gsize) n * 112), de = dt_error (st, dt);
      g_test_message ("tiny-mamba2 (%s): logits %.3g, dt %.3g relative",
                      reference ? "reference" : "fast", le, de);
      g_assert_cmpfloat (le, <=, 1e-4);
      g_assert_cmpfloat (de, <=, 1e-4);
      for (int l = 0; l < 2; l++)
        for (int h = 0; h < 8; h++)
          g_assert_cmpfloat (fabs (lsc_ssm_store_get_a (st, l)[h] - a[l * 8 + h]), <=,
                             1e-6 * fabs (a[l * 8 + h]));
      run_clear (&r);
    }
  json_object_put (o);
}

/* tiny-mamba's Δ (E = 128 channels, N = 16 states) against transformers,
 * and A from the safetensors' A_log and the GGUF's A alike. */
static void
test_mamba1_dt (void)
{
  g_autofree char *hf = lsc_test_shared_path ("models/random/tiny-mamba");
  g_autofree char *gguf = lsc_test_shared_path ("models/random/tiny-mamba/tiny-mamba.f32.gguf");
  if (hf == NULL || gguf == NULL)
    return;
  json_object *o = load_fixture ("tiny-mamba-dt.json");
  g_autoptr(GArray) tokens = fixture_tokens (o);
  int n = (int) tokens->len;
  g_autofree double *dt = fixture_numbers (o, "dt", 3 * (gsize) n * 128);
  g_autofree double *a = fixture_numbers (o, "A", 3 * 128 * 16);
  const char *paths[] = { hf, gguf };

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      Run r = { 0 };
      run_fixture (&r, paths[i], tokens, FALSE, NULL);
      const LscSsmStore *st = lsc_session_get_ssm (r.session);
      g_assert_cmpint (lsc_ssm_store_get_n_channels (st), ==, 128);
      g_assert_cmpint (lsc_ssm_store_get_n_states (st), ==, 16);
      double de = dt_error (st, dt);
      g_test_message ("%s: dt %.3g relative", paths[i], de);
      g_assert_cmpfloat (de, <=, 1e-4);
      for (int l = 0; l < 3; l++)
        for (int k = 0; k < 128 * 16; k++)
          g_assert_cmpfloat (fabs (lsc_ssm_store_get_a (st, l)[k] - a[l * 2048 + k]), <=,
                             1e-6 * fabs (a[l * 2048 + k]));

      /* the slowest state's decay over the 64 tokens, from the fixture's own numbers */
      double log_decay[128];
      g_assert_true (lsc_ssm_store_log_decay (st, 1, 0, n, log_decay));
      for (int e = 0; e < 128; e += 17)
        {
          double sum = 0, slowest = -INFINITY;
          for (int t = 0; t < n; t++)
            sum += dt[(gsize) (1 * n + t) * 128 + e];
          for (int k = 0; k < 16; k++)
            slowest = MAX (slowest, a[2048 + e * 16 + k]);
          g_assert_cmpfloat (fabs (log_decay[e] - slowest * sum), <=, 1e-4 * fabs (slowest * sum));
        }
      g_assert_false (lsc_ssm_store_log_decay (st, 1, 0, n + 1, log_decay));
      run_clear (&r);
    }
  json_object_put (o);
}

/* LongMamba's filter on tiny-mamba2 with the fixture's thresholds and global
 * heads: the logits of the filtered prefill, which tokens each global head
 * kept, and tA_prod of the vanilla run (in the log domain: most underflow). */
static void
test_longmamba_filter (void)
{
  json_object *o = load_fixture ("tiny-mamba2/expected.json");
  json_object *lm = json_object_object_get (o, "longmamba");
  g_autoptr(GArray) tokens = fixture_tokens (o);
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "ssm", "tiny-mamba2",
                                                NULL);
  int n = (int) tokens->len;
  g_autofree double *logits = fixture_numbers (lm, "logits", (gsize) n * 112);
  g_autofree double *kept = fixture_numbers (lm, "kept", 2 * 8 * (gsize) n);
  g_autofree double *global_d = fixture_numbers (lm, "global", 16);
  g_autofree double *thr_d = fixture_numbers (lm, "threshold", 16);
  g_autofree double *log_ta = fixture_numbers (lm, "log_tA_prod", 16);
  double c = json_object_get_double (json_object_object_get (lm, "c"));
  float thr[16];
  guint8 global[16];
  for (int i = 0; i < 16; i++)
    {
      thr[i] = (float) thr_d[i];
      global[i] = global_d[i] != 0;
    }

  /* the vanilla run classifies the heads as the fixture did */
  Run r = { 0 };
  run_fixture (&r, dir, tokens, FALSE, NULL);
  for (int l = 0; l < 2; l++)
    {
      double log_decay[8];
      g_assert_true (lsc_ssm_store_log_decay (lsc_session_get_ssm (r.session), l, 0, n,
                                              log_decay));
      for (int h = 0; h < 8; h++)
        {
          g_assert_cmpfloat (fabs (log_decay[h] - log_ta[l * 8 + h]), <=,
                             1e-4 * fabs (log_ta[l * 8 + h]) + 1e-6);
          g_assert_cmpint (log_decay[h] > log (c), ==, global[l * 8 + h]);
        }
    }
  run_clear (&r);

  for (int reference = 0; reference <= 1; reference++)
    {
      LscSsmFilter f = { TRUE, thr, global, 1.0, n };
      run_fixture (&r, dir, tokens, reference, &f);
      const LscSsmStore *st = lsc_session_get_ssm (r.session);
      double le = rel_error_f (r.logits, logits, (gsize) n * 112);
      g_test_message ("tiny-mamba2 filtered (%s): logits %.3g relative",
                      reference ? "reference" : "fast", le);
      g_assert_cmpfloat (le, <=, 1e-4);
      int n_dropped = 0;
      for (int l = 0; l < 2; l++)
        {
          const guint8 *k = lsc_ssm_store_get_kept (st, l);
          g_assert_nonnull (k);
          for (int h = 0; h < 8; h++)
            for (int t = 0; t < n; t++)
              {
                g_assert_cmpint (k[t * 8 + h], ==, kept[(l * 8 + h) * n + t] != 0);
                n_dropped += !k[t * 8 + h];
              }
        }
      g_assert_cmpint (n_dropped, >, 0);
      run_clear (&r);
    }

  /* below min_tokens nothing is filtered: the vanilla logits */
  LscSsmFilter f = { TRUE, thr, global, 1.0, n + 1 };
  run_fixture (&r, dir, tokens, FALSE, &f);
  g_autofree double *vanilla = fixture_numbers (o, "logits", (gsize) n * 112);
  g_assert_cmpfloat (rel_error_f (r.logits, vanilla, (gsize) n * 112), <=, 1e-4);
  g_assert_null (lsc_ssm_store_get_kept (lsc_session_get_ssm (r.session), 0));
  run_clear (&r);
  json_object_put (o);
}

/* A prompt in pieces (a prefill, then one token at a time, through the
 * convolution's carried inputs and the scan state) gives the logits of the
 * whole sequence at once; a rewind to 0 starts over. */
static void
test_incremental (void)
{
  g_autoptr(LscModel) model = load_shared ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  g_autoptr(GError) error = NULL;
  const int n = 600, vocab = lsc_model_get_config (model)->vocab_size;
  gint32 tokens[600];
  for (int i = 0; i < n; i++)
    tokens[i] = i == 0 ? 1 : g_test_rand_int_range (3, 105);

  for (int reference = 0; reference <= 1; reference++)
    {
      LscSessionParams p;
      lsc_session_params_init (&p);
      p.reference = reference;
      p.n_threads = 2;
      g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
      g_autofree float *all = g_new (float, (gsize) n * vocab);
      g_autofree float *step = g_new (float, (gsize) n * vocab);
      g_assert_true (lsc_session_eval (s, tokens, n, all, TRUE, NULL, NULL, &error));
      lsc_session_rewind (s, 0);
      g_assert_cmpint (lsc_session_get_pos (s), ==, 0);
      /* 2 tokens: fewer than the convolution's K - 1 = 3 carried inputs */
      g_assert_true (lsc_session_eval (s, tokens, 2, step, TRUE, NULL, NULL, &error));
      g_assert_true (lsc_session_eval (s, tokens + 2, 35, step + 2 * vocab, TRUE, NULL, NULL,
                                       &error));
      for (int i = 37; i < n; i++)
        g_assert_true (lsc_session_eval (s, tokens + i, 1, step + (gsize) i * vocab, FALSE, NULL,
                                         NULL, &error));
      g_assert_no_error (error);
      g_assert_cmpint (lsc_session_get_pos (s), ==, n);
      /* the fast path's GEMM and row kernel sum in other orders: rounding */
      double d = max_abs_diff (step, all, (gsize) n * vocab), diff = 0, norm = 0;
      for (gsize i = 0; i < (gsize) n * vocab; i++)
        {
          diff += ((double) step[i] - all[i]) * ((double) step[i] - all[i]);
          norm += (double) all[i] * all[i];
        }
      g_test_message ("%s: incremental vs whole: relative error %.3g, max |d logit| %.3g",
                      reference ? "reference" : "fast", sqrt (diff / norm), d);
      g_assert_cmpfloat (sqrt (diff / norm), <=, reference ? 0.0 : 1e-5);
    }
}

static gboolean
cancel_after (gpointer data)
{
  int *calls = data;
  return ++*calls > 2;
}

/* A cancelled evaluation leaves the state as it was: the next token's logits
 * are those of an uncancelled session. */
static void
test_cancel_keeps_state (void)
{
  g_autoptr(LscModel) model = load_shared ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  g_autoptr(GError) error = NULL;
  int vocab = lsc_model_get_config (model)->vocab_size;
  gint32 tokens[12] = { 1, 5, 9, 14, 3, 22, 7, 8, 40, 41, 42, 43 };
  LscSessionParams p;
  lsc_session_params_init (&p);
  g_autoptr(LscSession) a = lsc_session_new (model, &p, &error);
  g_autoptr(LscSession) b = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_autofree float *la = g_new (float, vocab);
  g_autofree float *lb = g_new (float, vocab);

  g_assert_true (lsc_session_eval (a, tokens, 4, NULL, FALSE, NULL, NULL, &error));
  g_assert_true (lsc_session_eval (b, tokens, 4, NULL, FALSE, NULL, NULL, &error));
  int calls = 0;
  g_assert_false (lsc_session_eval (b, tokens + 4, 7, NULL, FALSE, cancel_after, &calls, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED, "cancelled", NULL);
  g_clear_error (&error);
  g_assert_cmpint (lsc_session_get_pos (b), ==, 4);

  g_assert_true (lsc_session_eval (a, tokens + 4, 8, la, FALSE, NULL, NULL, &error));
  g_assert_true (lsc_session_eval (b, tokens + 4, 8, lb, FALSE, NULL, NULL, &error));
  g_assert_cmpfloat (max_abs_diff (la, lb, vocab), ==, 0.0);
}

/* What an SSM has not got is refused by name; memory counts the state. */
static void
test_errors_and_memory (void)
{
  g_autoptr(LscModel) model = load_shared ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  g_autoptr(GError) error = NULL;
  LscSessionParams p;

  lsc_session_params_init (&p);
  p.capture.enabled = TRUE;
  g_assert_null (lsc_session_new (model, &p, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "tiny-mamba",
                         "mamba has no attention to capture", NULL);
  g_clear_error (&error);

  /* the GPU: asked for by name without one, an error that says why; auto
   * stays on the CPU with a note (with a GPU, until Mamba's kernels have
   * passed the cuda suite there; tests/test-cuda.c runs them by name) */
  const char *no_gpu = lsc_backend_cuda_unavailable ();
  lsc_session_params_init (&p);
  p.backend = LSC_BACKEND_CUDA;
  if (no_gpu != NULL)
    {
      g_assert_null (lsc_session_new (model, &p, &error));
      lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                             "the CUDA backend was asked for, but ", no_gpu, NULL);
      g_clear_error (&error);
    }

  lsc_session_params_init (&p);
  p.backend = LSC_BACKEND_AUTO;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s), ==, LSC_BACKEND_CPU);
  if (no_gpu != NULL)
    g_assert_cmpstr (lsc_session_get_backend_note (s), ==, no_gpu);
  else
    g_assert_cmpstr (lsc_session_get_backend_note (s), ==,
                     "the CUDA kernels for mamba have not been checked on a device yet (the cuda "
                     "backend, asked for by name, runs them)");

  /* 3 layers x ((K - 1) * E + E * N) floats: (3 * 128 + 128 * 16) * 3 * 4 bytes */
  LscSessionMemory mem;
  lsc_session_get_memory (s, &mem);
  g_assert_cmpuint (mem.kv_bytes, ==, (3 * 128 + 128 * 16) * 3 * 4);
  g_assert_cmpuint (mem.capture_bytes, ==, 0);

  gint32 bad[2] = { 1, 112 };
  g_assert_false (lsc_session_eval (s, bad, 2, NULL, FALSE, NULL, NULL, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_TOKEN, "token 112", NULL);
}

/* Logits (n, vocab) of tokens 1 .. n on the fast or the reference path. */
static float *
synthetic_logits (LscModel *model, gboolean reference, int n)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.reference = reference;
  p.n_threads = 2;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  int vocab = lsc_session_get_n_vocab (s);
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = 1 + i % (vocab - 1);
  float *logits = g_new (float, (gsize) n * vocab);
  g_assert_true (lsc_session_eval (s, tokens, n, logits, TRUE, NULL, NULL, &error));
  g_assert_no_error (error);
  return logits;
}

/* The synthetic Mamba shapes (for the benchmarks), shrunk: both paths agree,
 * the same seed gives the same model, and an incomplete config is refused. */
static void
test_synthetic (void)
{
  g_autoptr(GError) error = NULL;
  const char *names[] = { "mamba-1.4b", "mamba2-1.3b" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      LscModelConfig c;
      g_assert_true (lsc_model_config_init_shape (&c, names[i]));
      g_assert_cmpint (c.arch, ==, i == 0 ? LSC_ARCH_MAMBA : LSC_ARCH_MAMBA2);
      g_assert_cmpint (c.ssm_d_inner, ==, 4096);
      c.n_layers = 2;
      c.dim = 64;
      c.ssm_d_inner = 128;
      c.ssm_dt_rank = i == 0 ? 8 : 0;
      c.ssm_d_state = i == 0 ? 16 : 32;
      c.ssm_n_heads = i == 0 ? 0 : 4;
      c.ssm_head_dim = i == 0 ? 0 : 32;
      c.ssm_n_groups = i == 0 ? 0 : 2;
      c.vocab_size = 300;
      g_autoptr(LscModel) a = lsc_model_new_synthetic (&c, LSC_DTYPE_BF16, 5, &error);
      g_autoptr(LscModel) b = lsc_model_new_synthetic (&c, LSC_DTYPE_BF16, 5, &error);
      g_assert_no_error (error);
      const int n = 40;
      g_autofree float *fast = synthetic_logits (a, FALSE, n);
      g_autofree float *ref = synthetic_logits (a, TRUE, n);
      g_autofree float *again = synthetic_logits (b, FALSE, n);
      double diff = 0, mag = 0;
      for (int j = 0; j < n * 300; j++)
        {
          g_assert_true (isfinite (fast[j]));
          diff = MAX (diff, fabs ((double) fast[j] - ref[j]));
          mag = MAX (mag, fabs ((double) ref[j]));
          g_assert_cmpfloat (fast[j], ==, again[j]);
        }
      g_test_message ("synthetic %s: fast vs reference %.3g of the largest logit %.3g", names[i],
                      diff / mag, mag);
      g_assert_cmpfloat (mag, >, 0.1);
      g_assert_cmpfloat (diff, <=, 1e-4 * mag);

      c.ssm_d_state = 0;
      g_assert_null (lsc_model_new_synthetic (&c, LSC_DTYPE_BF16, 5, &error));
      lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                             "not a complete Mamba", NULL);
      g_clear_error (&error);
    }
}

/* The estimate predicts the memory a session reports after the run, on both
 * paths, and refuses what the session refuses. */
static void
test_estimate (void)
{
  g_autoptr(LscModel) model = load_shared ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  g_autoptr(GError) error = NULL;
  gint32 tokens[40];
  for (int i = 0; i < 40; i++)
    tokens[i] = 1 + i;

  for (int reference = 0; reference <= 1; reference++)
    {
      LscEstimateParams ep;
      lsc_estimate_params_init (&ep);
      ep.n_prompt = 36;
      ep.max_tokens = 5;
      ep.session.reference = reference;
      ep.session.ssm_capture = (LscSsmCapturePlan) { TRUE, 1, -1 };
      /* the fast path filters the 35-token prefill, so layers 1 and 2 get kept masks */
      float thr[3 * 128] = { 0 };
      guint8 global[3 * 128] = { 0 };
      ep.session.ssm_filter = (LscSsmFilter) { !reference, thr, global, 1.0, 30 };
      ep.session.n_threads = 2;
      ep.prefill_gflops = 1;
      ep.decode_gbps = 1;
      LscEstimate e;
      g_assert_true (lsc_estimate_run (model, &ep, &e, &error));
      g_assert_no_error (error);

      g_autoptr(LscSession) s = lsc_session_new (model, &ep.session, &error);
      g_assert_no_error (error);
      g_assert_true (lsc_session_eval (s, tokens, 35, NULL, FALSE, NULL, NULL, &error));
      for (int i = 35; i < 40; i++)
        g_assert_true (lsc_session_eval (s, tokens + i, 1, NULL, FALSE, NULL, NULL, &error));
      LscSessionMemory mem;
      lsc_session_get_memory (s, &mem);
      g_assert_cmpuint (e.kv_bytes, ==, mem.kv_bytes);
      g_assert_cmpuint (e.activation_bytes, ==, mem.scratch_bytes);
      g_assert_cmpuint (e.capture_bytes, ==, mem.capture_bytes);
      /* 45 rows (35, then 5: 64 rows of capacity by doubling), 2 layers, 128 channels, floats
       * and (filtered) kept bytes */
      g_assert_cmpuint (e.capture_bytes, ==, reference ? 64 * 2 * 128 * 4 : 64 * 2 * 128 * 5);
      /* 2 flops per matrix parameter and token: in (256 x 64), x (36 x 128), dt (128 x 4),
       * out (64 x 128) per layer, 3 layers, and one row of logits (112 x 64) */
      g_assert_cmpfloat (e.prefill_flops, ==, 2.0 * (16384 + 4608 + 512 + 8192) * 3 * 36
                                                + 2.0 * 112 * 64);
    }

  LscEstimateParams ep;
  lsc_estimate_params_init (&ep);
  ep.session.capture.enabled = TRUE;
  LscEstimate e;
  g_assert_false (lsc_estimate_run (model, &ep, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "mamba has no attention to capture", NULL);
}

/* |got - want| <= tol * |want| (tol absolute when want = 0). */
static void
assert_close (double got, double want, double tol, const char *what, int i)
{
  if (!(fabs (got - want) <= tol * MAX (fabs (want), want == 0 ? 1.0 : 0.0)))
    g_error ("%s[%d]: %.17g, expected %.17g", what, i, got, want);
}

/* Compares (log_tA_prod, dt_sum, alpha, threshold) of one layer with a
 * fixture entry {"log_tA_prod", "dt_sum", "alpha", "threshold"}. */
static void
assert_calibration (json_object *e, const double *ltp, const double *sum, const double *alpha,
                    const double *thr, int n_targets, int C)
{
  g_autofree double *w_ltp = fixture_numbers (e, "log_tA_prod", C);
  g_autofree double *w_sum = fixture_numbers (e, "dt_sum", C);
  g_autofree double *w_alpha = fixture_numbers (e, "alpha", (gsize) n_targets * C);
  g_autofree double *w_thr = fixture_numbers (e, "threshold", (gsize) n_targets * C);
  for (int c = 0; c < C; c++)
    {
      assert_close (ltp[c], w_ltp[c], 1e-6, "log_tA_prod", c);
      assert_close (sum[c], w_sum[c], 1e-6, "dt_sum", c);
    }
  for (int i = 0; i < n_targets * C; i++)
    {
      assert_close (alpha[i], w_alpha[i], 1e-12, "alpha", i);
      assert_close (thr[i], w_thr[i], 1e-6, "threshold", i);
    }
}

/* LongMamba's calibration (methods.md 2.2) of tiny-mamba2's Δ against torch
 * (tools/make-longmamba-calibration-fixture.py): three windows, both
 * layers, five targets (those <= T give threshold 0 and alpha 1), and the
 * max / mean over two windows. */
static void
test_longmamba_calibration (void)
{
  json_object *src = load_fixture ("tiny-mamba2/expected.json");
  json_object *o = load_fixture ("longmamba-calibration.json");
  const int L = 2, T = 64, C = 8;
  g_autofree double *dt_d = fixture_numbers (src, "dt", (gsize) L * T * C);
  g_autofree double *a_d = fixture_numbers (src, "A", (gsize) L * C);
  g_autofree float *dt = g_new (float, (gsize) L * T * C);
  float a[2 * 8];
  for (gsize i = 0; i < (gsize) L * T * C; i++)
    dt[i] = (float) dt_d[i];
  for (int i = 0; i < L * C; i++)
    a[i] = (float) a_d[i];
  double ratio = json_object_get_double (json_object_object_get (o, "ratio"));
  json_object *tj = json_object_object_get (o, "targets");
  int n_targets = (int) json_object_array_length (tj);
  g_autofree int *targets = g_new (int, n_targets);
  for (int j = 0; j < n_targets; j++)
    targets[j] = json_object_get_int (json_object_array_get_idx (tj, j));
  g_assert_cmpfloat (ratio, ==, 0.15);

  json_object *windows = json_object_object_get (o, "windows");
  int n_windows = (int) json_object_array_length (windows);
  gsize per = (gsize) (2 + 2 * n_targets) * C;   /* ltp, sum, alpha, thr of a layer */
  g_autofree double *res = g_new (double, (gsize) n_windows * L * per);
  int agg_index[2] = { -1, -1 };
  for (int w = 0; w < n_windows; w++)
    {
      json_object *win = json_object_array_get_idx (windows, w);
      json_object *rows = json_object_object_get (win, "rows");
      int ra = json_object_get_int (json_object_array_get_idx (rows, 0));
      int rb = json_object_get_int (json_object_array_get_idx (rows, 1));
      const char *name = json_object_get_string (json_object_object_get (win, "name"));
      json_object *agg = json_object_object_get (o, "aggregate_of");
      for (int k = 0; k < 2; k++)
        if (g_strcmp0 (name, json_object_get_string (json_object_array_get_idx (agg, k))) == 0)
          agg_index[k] = w;
      for (int l = 0; l < L; l++)
        {
          double *r = res + ((gsize) w * L + l) * per;
          lsc_ssm_calibrate (dt + ((gsize) l * T + ra) * C, rb - ra, C, a + l * C, 1, ratio,
                             targets, n_targets, r, r + C, r + 2 * C, r + (2 + n_targets) * C);
          assert_calibration (json_object_array_get_idx (json_object_object_get (win, "per_layer"),
                                                         l),
                              r, r + C, r + 2 * C, r + (2 + n_targets) * C, n_targets, C);
          for (int j = 0; j < n_targets; j++)
            for (int c = 0; c < C; c++)
              {
                double al = r[(2 + j) * C + c], th = r[(2 + n_targets + j) * C + c];
                if (targets[j] <= rb - ra)
                  {
                    g_assert_cmpfloat (al, ==, 1);
                    g_assert_cmpfloat (th, ==, 0);
                  }
                else
                  {
                    g_assert_cmpfloat (al, >, 0);
                    g_assert_cmpfloat (al, <=, 1);
                    g_assert_cmpfloat (th, >, 0);
                  }
              }
        }
    }
  g_assert_cmpint (agg_index[0], >=, 0);
  g_assert_cmpint (agg_index[1], >=, 0);

  /* max and mean over two windows, of the C results and of the fixture's own
   * per-window values */
  for (int how = 0; how < 2; how++)
    {
      json_object *want = json_object_object_get (o, how == 0 ? "max" : "mean");
      for (int l = 0; l < L; l++)
        {
          double two[2 * 2 * (2 + 2 * 5) * 8];
          g_assert_cmpint (n_targets, ==, 5);
          double out[(2 + 2 * 5) * 8], from_fixture[(2 + 2 * 5) * 8];
          for (int k = 0; k < 2; k++)
            memcpy (two + k * per, res + ((gsize) agg_index[k] * L + l) * per,
                    per * sizeof (double));
          /* ln tA_prod in the log domain, the rest plain */
          double ltp2[2 * 8];
          for (int k = 0; k < 2; k++)
            memcpy (ltp2 + k * C, two + k * per, C * sizeof (double));
          lsc_ssm_aggregate (how, ltp2, 2, C, TRUE, out);
          double rest[2 * (2 * 5 + 1) * 8];
          for (int k = 0; k < 2; k++)
            memcpy (rest + k * (per - C), two + k * per + C,
                    (per - C) * sizeof (double));
          lsc_ssm_aggregate (how, rest, 2, per - C, FALSE, out + C);
          json_object *e = json_object_array_get_idx (want, l);
          assert_calibration (e, out, out + C, out + 2 * C, out + (2 + n_targets) * C, n_targets,
                              C);

          /* the helper on the fixture's own per-window numbers */
          const char *keys[4] = { "log_tA_prod", "dt_sum", "alpha", "threshold" };
          gsize sizes[4] = { C, C, (gsize) n_targets * C, (gsize) n_targets * C };
          gsize at = 0;
          for (int q = 0; q < 4; q++)
            {
              double *x[2];
              g_autofree double *both = g_new (double, 2 * sizes[q]);
              for (int k = 0; k < 2; k++)
                {
                  json_object *pl = json_object_object_get (
                    json_object_array_get_idx (windows, agg_index[k]), "per_layer");
                  x[k] = fixture_numbers (json_object_array_get_idx (pl, l), keys[q], sizes[q]);
                  memcpy (both + k * sizes[q], x[k], sizes[q] * sizeof (double));
                  g_free (x[k]);
                }
              lsc_ssm_aggregate (how, both, 2, sizes[q], q == 0, from_fixture + at);
              g_autofree double *w = fixture_numbers (e, keys[q], sizes[q]);
              for (gsize i = 0; i < sizes[q]; i++)
                if (how == 0)
                  g_assert_cmpfloat (from_fixture[at + i], ==, w[i]);
                else
                  assert_close (from_fixture[at + i], w[i], 1e-14, keys[q], (int) i);
              at += sizes[q];
            }
        }
    }
  g_test_message ("LongMamba calibration: %d windows x %d layers x %d targets match torch",
                  n_windows, L, n_targets);
  json_object_put (o);
  json_object_put (src);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/ssm/incremental", test_incremental);
  g_test_add_func ("/engine/ssm/cancel-keeps-state", test_cancel_keeps_state);
  g_test_add_func ("/engine/ssm/errors-and-memory", test_errors_and_memory);
  g_test_add_func ("/engine/ssm/estimate", test_estimate);
  g_test_add_func ("/engine/ssm/synthetic", test_synthetic);
  g_test_add_func ("/engine/ssm/mamba2-fixture", test_mamba2_fixture);
  g_test_add_func ("/engine/ssm/mamba1-dt", test_mamba1_dt);
  g_test_add_func ("/engine/ssm/longmamba-filter", test_longmamba_filter);
  g_test_add_func ("/engine/ssm/longmamba-calibration", test_longmamba_calibration);
  return g_test_run ();
}
