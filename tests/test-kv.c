/* SPDX-License-Identifier: MIT
 *
 * KV-cache eviction policies (lsc-kv.h) in a session: logits, kept
 * positions and scores against tools/make-kv-fixtures.py, a float64 torch
 * forward with an explicit cache on which each policy runs as its authors'
 * code does (tests/fixtures/kv/kv-policies.json); then streams far past
 * the cache, cancel, rewind and the errors.
 */
#include "config.h"

#include <json-c/json.h>
#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-estimate.h"
#include "lsc-generate.h"
#include "lsc-session.h"
#include "lsc-test-util.h"

static LscModel *
load_fixture_model (const char *rel)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "fixtures", rel, NULL);
  LscModel *model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  return model;
}

static json_object *
load_cases (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "fixtures", "kv", "kv-policies.json",
                                                 NULL);
  json_object *root = json_object_from_file (path);
  g_assert_nonnull (root);
  return root;
}

static int
get_int (json_object *o, const char *key, int fallback)
{
  json_object *v;
  return json_object_object_get_ex (o, key, &v) ? json_object_get_int (v) : fallback;
}

static void
policy_from_json (json_object *o, LscKvPolicy *p)
{
  json_object *v;
  LscKvPolicyKind kind;
  g_assert_true (json_object_object_get_ex (o, "kind", &v));
  g_assert_true (lsc_kv_policy_from_string (json_object_get_string (v), &kind));
  lsc_kv_policy_init (p, kind);
  p->n_sink = get_int (o, "sink", p->n_sink);
  p->n_recent = get_int (o, "recent", p->n_recent);
  p->n_heavy = get_int (o, "heavy", p->n_heavy);
  p->capacity = get_int (o, "capacity", p->capacity);
  p->window = get_int (o, "window", p->window);
  p->kernel = get_int (o, "kernel", p->kernel);
  p->beta = get_int (o, "beta", p->beta);
  p->span = get_int (o, "span", p->span);
  p->overlap = get_int (o, "overlap", p->overlap);
  p->n_global = get_int (o, "global", p->n_global);
  p->n_local = get_int (o, "local", p->n_local);
  if (json_object_object_get_ex (o, "ratio", &v))
    p->ratio = json_object_get_double (v);
  if (json_object_object_get_ex (o, "pooling", &v))
    p->pooling = strcmp (json_object_get_string (v), "max") == 0 ? LSC_KV_POOL_MAX
                                                                 : LSC_KV_POOL_AVG;
}

/* Slots the case needs: every token for the one-shot policies, else the
 * budget plus the largest evaluation, so that slots and positions part. */
static int
case_n_ctx (const LscKvPolicy *p, json_object *evals)
{
  int total = 0, largest = 0;
  for (size_t e = 0; e < json_object_array_length (evals); e++)
    {
      json_object *tokens = json_object_object_get (json_object_array_get_idx (evals, e), "tokens");
      int n = (int) json_object_array_length (tokens);
      total += n;
      largest = MAX (largest, n);
    }
  if (p->kind == LSC_KV_STREAMING_LLM)
    return MIN (total, p->n_sink + p->n_recent + largest);
  if (p->kind == LSC_KV_H2O)
    return MIN (total, p->n_heavy + p->n_recent + largest);
  if (p->kind == LSC_KV_LACACHE)
    return MIN (total, p->capacity + 2 + largest);
  if (p->kind == LSC_KV_LM_INFINITE)
    return MIN (total, p->n_global + p->n_local - 1 + largest);
  return total;
}

typedef struct {
  double logits;      /* largest |engine - fixture| / largest |fixture| of an evaluation */
  double scores;      /* largest relative score error */
} CaseErrors;

static void
run_case (json_object *c, gboolean reference, CaseErrors *err)
{
  g_autoptr(GError) error = NULL;
  const char *name = json_object_get_string (json_object_object_get (c, "name"));
  g_autoptr(LscModel) model = load_fixture_model (json_object_get_string (
    json_object_object_get (c, "model")));
  json_object *evals = json_object_object_get (c, "evals");

  LscSessionParams p;
  lsc_session_params_init (&p);
  policy_from_json (json_object_object_get (c, "policy"), &p.kv_policy);
  p.n_ctx = case_n_ctx (&p.kv_policy, evals);
  p.n_threads = 2;
  p.reference = reference;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  const LscKvLog *log = lsc_session_get_kv (s);
  g_assert_true ((log == NULL) == (p.kv_policy.kind == LSC_KV_FULL));
  int vocab = lsc_session_get_n_vocab (s);

  for (size_t e = 0; e < json_object_array_length (evals); e++)
    {
      json_object *ev = json_object_array_get_idx (evals, e);
      json_object *jt = json_object_object_get (ev, "tokens");
      int n = (int) json_object_array_length (jt);
      g_autofree gint32 *tokens = g_new (gint32, n);
      for (int i = 0; i < n; i++)
        tokens[i] = json_object_get_int (json_object_array_get_idx (jt, i));
      g_autofree float *logits = g_new (float, (gsize) n * vocab);
      g_assert_true (lsc_session_eval (s, tokens, n, logits, TRUE, NULL, NULL, &error));
      g_assert_no_error (error);

      json_object *jl = json_object_object_get (ev, "logits");
      g_assert_cmpint (json_object_array_length (jl), ==, n);
      double diff = 0, scale = 0;
      for (int i = 0; i < n; i++)
        {
          json_object *row = json_object_array_get_idx (jl, i);
          g_assert_cmpint (json_object_array_length (row), ==, vocab);
          for (int v = 0; v < vocab; v++)
            {
              double want = json_object_get_double (json_object_array_get_idx (row, v));
              float got = logits[(gsize) i * vocab + v];
              g_assert_true (isfinite (got));
              diff = MAX (diff, fabs (got - want));
              scale = MAX (scale, fabs (want));
            }
        }
      err->logits = MAX (err->logits, diff / scale);
      if (diff / scale > 1e-4)
        g_error ("%s (%s path), evaluation %zu: logits differ by %.3g relative", name,
                 reference ? "reference" : "fast", e, diff / scale);
      if (log == NULL)
        continue;

      /* the kept positions of every layer and KV head, and their scores */
      int length = lsc_session_get_pos (s);
      json_object *kept = json_object_object_get (ev, "kept");
      json_object *scores = json_object_object_get (ev, "scores");
      json_object *pooled = json_object_object_get (ev, "pooled");
      g_assert_cmpint (json_object_array_length (kept), ==, lsc_kv_log_get_n_layers (log));
      for (int l = 0; l < lsc_kv_log_get_n_layers (log); l++)
        for (int h = 0; h < lsc_kv_log_get_n_heads (log); h++)
          {
            json_object *want = json_object_array_get_idx (json_object_array_get_idx (kept, l), h);
            GString *got_s = g_string_new (NULL), *want_s = g_string_new (NULL);
            for (int pos = 0; pos < length; pos++)
              if (lsc_kv_log_alive (log, l, h, pos, length))
                g_string_append_printf (got_s, " %d", pos);
            for (size_t i = 0; i < json_object_array_length (want); i++)
              g_string_append_printf (want_s, " %d",
                                      json_object_get_int (json_object_array_get_idx (want, i)));
            if (strcmp (got_s->str, want_s->str) != 0)
              g_error ("%s (%s path), evaluation %zu, layer %d, head %d: kept%s, want%s", name,
                       reference ? "reference" : "fast", e, l, h, got_s->str, want_s->str);
            g_assert_cmpint (lsc_kv_log_count_alive (log, l, h), ==,
                             (int) json_object_array_length (want));
            for (size_t i = 0; scores != NULL && i < json_object_array_length (want); i++)
              {
                int pos = json_object_get_int (json_object_array_get_idx (want, i));
                double w = json_object_get_double (json_object_array_get_idx (
                  json_object_array_get_idx (json_object_array_get_idx (scores, l), h), i));
                double rel = fabs (lsc_kv_log_score (log, l, h, pos) - w) / MAX (fabs (w), 1e-3);
                err->scores = MAX (err->scores, rel);
                g_assert_cmpfloat (rel, <, 1e-4);
              }
            /* snapkv / pyramidkv: every prefix position carries its pooled
             * vote, kept or evicted */
            json_object *jp = pooled != NULL ? json_object_array_get_idx (
                                json_object_array_get_idx (pooled, l), h)
                                             : NULL;
            for (size_t pos = 0; jp != NULL && pos < json_object_array_length (jp); pos++)
              {
                double w = json_object_get_double (json_object_array_get_idx (jp, pos));
                double rel = fabs (lsc_kv_log_score (log, l, h, (int) pos) - w)
                             / MAX (fabs (w), 1e-3);
                err->scores = MAX (err->scores, rel);
                g_assert_cmpfloat (rel, <, 1e-4);
              }
            /* think: the channels dropped from the older keys */
            json_object *jpr = json_object_object_get (ev, "pruned");
            if (jpr != NULL)
              {
                json_object *want_ch = json_object_array_get_idx (
                  json_object_array_get_idx (jpr, l), h);
                int hd = lsc_kv_log_get_head_dim (log), n_pruned = 0;
                for (int ch = 0; ch < hd; ch++)
                  n_pruned += lsc_kv_log_channel_pruned (log, l, h, ch);
                g_assert_cmpint (n_pruned, ==, (int) json_object_array_length (want_ch));
                for (size_t i = 0; i < json_object_array_length (want_ch); i++)
                  g_assert_true (lsc_kv_log_channel_pruned (
                    log, l, h, json_object_get_int (json_object_array_get_idx (want_ch, i))));
              }
            g_string_free (got_s, TRUE);
            g_string_free (want_s, TRUE);
          }
      int n_steps;
      const int *steps = lsc_kv_log_get_steps (log, &n_steps);
      g_assert_cmpint (n_steps, ==, (int) e + 1);
      g_assert_cmpint (steps[e], ==, length);
    }
}

static void
test_reference_cases (void)
{
  json_object *root = load_cases ();
  json_object *cases = json_object_object_get (root, "cases");
  g_assert_cmpint (json_object_array_length (cases), >=, 10);
  for (size_t i = 0; i < json_object_array_length (cases); i++)
    {
      json_object *c = json_object_array_get_idx (cases, i);
      CaseErrors fast = { 0 }, ref = { 0 };
      run_case (c, FALSE, &fast);
      run_case (c, TRUE, &ref);
      g_test_message ("%-22s logits %.2g (fast) %.2g (reference), scores %.2g / %.2g",
                      json_object_get_string (json_object_object_get (c, "name")), fast.logits,
                      ref.logits, fast.scores, ref.scores);
    }
  json_object_put (root);
}

static void
test_policy_check (void)
{
  static const struct {
    LscKvPolicyKind kind;
    int field, value;
    const char *message;
  } bad[] = {
    { LSC_KV_STREAMING_LLM, 0, -1, "streaming-llm: sink must be at least 0, not -1" },
    { LSC_KV_STREAMING_LLM, 1, 0, "streaming-llm: recent must be at least 1, not 0" },
    { LSC_KV_H2O, 2, -2, "h2o: heavy must be at least 0, not -2" },
    { LSC_KV_H2O, 1, 0, "h2o: recent must be at least 1, not 0" },
    { LSC_KV_SNAPKV, 4, 0, "snapkv: window must be at least 1, not 0" },
    { LSC_KV_SNAPKV, 3, 32, "snapkv: capacity (32) must be larger than the window (32)" },
    { LSC_KV_PYRAMIDKV, 5, 4, "pyramidkv: kernel must be an odd number of at least 1, not 4" },
    { LSC_KV_PYRAMIDKV, 6, 0, "pyramidkv: beta must be at least 1, not 0" },
    { LSC_KV_LACACHE, 7, 0, "lacache: span must be at least 1, not 0" },
    { LSC_KV_LACACHE, 8, 16, "lacache: overlap must be at least 0 and below the span (16), not 16" },
    { LSC_KV_LACACHE, 3, 4, "lacache: capacity (4) must be larger than the sink (4)" },
    { LSC_KV_LM_INFINITE, 9, -1, "lm-infinite: global must be at least 0, not -1" },
    { LSC_KV_LM_INFINITE, 10, 0, "lm-infinite: local must be at least 1, not 0" },
    { LSC_KV_THINK, 1, -1, "think: recent must be at least 0, not -1" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      LscKvPolicy p;
      lsc_kv_policy_init (&p, bad[i].kind);
      g_assert_null (lsc_kv_policy_check (&p));
      int *fields[] = { &p.n_sink, &p.n_recent, &p.n_heavy, &p.capacity, &p.window, &p.kernel,
                        &p.beta, &p.span, &p.overlap, &p.n_global, &p.n_local };
      *fields[bad[i].field] = bad[i].value;
      g_autofree char *msg = lsc_kv_policy_check (&p);
      g_assert_cmpstr (msg, ==, bad[i].message);
    }
  LscKvPolicy think;
  lsc_kv_policy_init (&think, LSC_KV_THINK);
  think.ratio = 1.0;
  g_autofree char *ratio_msg = lsc_kv_policy_check (&think);
  g_assert_cmpstr (ratio_msg, ==, "think: ratio must be in [0, 1), not 1");
  LscKvPolicyKind kind;
  g_assert_false (lsc_kv_policy_from_string ("h2o ", &kind));
  g_assert_true (lsc_kv_policy_from_string ("pyramidkv", &kind));
  g_assert_cmpint (kind, ==, LSC_KV_PYRAMIDKV);
  g_assert_cmpstr (lsc_kv_policy_name (LSC_KV_STREAMING_LLM), ==, "streaming-llm");
}

/* methods.md 3.4's example: C = 128, w = 8, L = 32 keeps 234 prefix tokens
 * in layer 0 and 17 in layer 31, plus the window. */
static void
test_policy_budget (void)
{
  LscKvPolicy p;
  lsc_kv_policy_init (&p, LSC_KV_PYRAMIDKV);
  p.capacity = 128;
  p.window = 8;
  g_assert_cmpint (lsc_kv_policy_budget (&p, 32, 0, 4096), ==, 234 + 8);
  g_assert_cmpint (lsc_kv_policy_budget (&p, 32, 31, 4096), ==, 17 + 8);
  /* a prompt below capacity is kept whole; below twice the prefix budget,
   * every layer keeps SnapKV's */
  g_assert_cmpint (lsc_kv_policy_budget (&p, 32, 31, 100), ==, 100);
  g_assert_cmpint (lsc_kv_policy_budget (&p, 32, 31, 200), ==, 128);
  p.kind = LSC_KV_SNAPKV;
  g_assert_cmpint (lsc_kv_policy_budget (&p, 32, 31, 4096), ==, 128);
  lsc_kv_policy_init (&p, LSC_KV_STREAMING_LLM);
  g_assert_cmpint (lsc_kv_policy_budget (&p, 32, 5, 4096), ==, 516);
  g_assert_cmpint (lsc_kv_policy_budget (&p, 32, 5, 300), ==, 300);
}

/* methods.md 3.5's worked example of LaCache's ladder (8 layers, span 4,
 * overlap 0, capacity 24, sink 2, 80 tokens one at a time), which
 * tools/make-kv-fixtures.py's transcription of the reference reproduces,
 * on a synthetic 8-layer model; and the ladder's own errors. */
static void
test_lacache_ladder (void)
{
  g_autoptr(GError) error = NULL;
  json_object *root = load_cases ();
  json_object *ex = json_object_object_get (root, "lacache_example");
  LscModelConfig config;
  g_assert_true (lsc_model_config_init_shape (&config, "stories260K-shape"));
  config.n_layers = 8;
  g_autoptr(LscModel) model = lsc_model_new_synthetic (&config, LSC_DTYPE_F32, 7, &error);
  g_assert_no_error (error);
  LscSessionParams p;
  lsc_session_params_init (&p);
  lsc_kv_policy_init (&p.kv_policy, LSC_KV_LACACHE);
  p.kv_policy.capacity = 24;
  p.kv_policy.n_sink = 2;
  p.kv_policy.span = 4;
  p.n_ctx = 26;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  for (gint32 t = 0; t < 80; t++)
    {
      gint32 token = 3 + t % 50;
      g_assert_true (lsc_session_eval (s, &token, 1, NULL, FALSE, NULL, NULL, &error));
    }
  const LscKvLog *log = lsc_session_get_kv (s);
  json_object *kept = json_object_object_get (ex, "kept");
  for (int l = 0; l < 8; l++)
    {
      json_object *want = json_object_array_get_idx (kept, l);
      g_assert_cmpint (lsc_kv_log_count_alive (log, l, 0), ==, 24);
      g_assert_cmpint (json_object_array_length (want), ==, 24);
      for (int i = 0; i < 24; i++)
        g_assert_true (lsc_kv_log_alive (log, l, 0, json_object_get_int (
                                           json_object_array_get_idx (want, i)), 80));
    }
  /* layer 0 keeps 18 and 32, layer 1 17 and 31: the ladder */
  g_assert_true (lsc_kv_log_alive (log, 0, 0, 18, 80) && !lsc_kv_log_alive (log, 1, 0, 18, 80));
  g_assert_true (lsc_kv_log_alive (log, 1, 0, 31, 80) && !lsc_kv_log_alive (log, 0, 0, 31, 80));
  json_object_put (root);

  /* a span as long as the model drops nothing; a capacity without room */
  lsc_kv_policy_init (&p.kv_policy, LSC_KV_LACACHE);
  p.kv_policy.span = 8;
  g_assert_null (lsc_session_new (model, &p, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                         "lacache: span 8 and overlap 0 drop no token with 8 layers", NULL);
  g_clear_error (&error);
  p.kv_policy.span = 4;
  p.kv_policy.capacity = 12;
  g_assert_null (lsc_session_new (model, &p, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                         "lacache: capacity 12 leaves no room for a ladder (it must be at least "
                         "sink + layers + 1 = 13)", NULL);
}

static void
fill_tokens (gint32 *tokens, int n, int vocab, guint32 seed)
{
  GRand *r = g_rand_new_with_seed (seed);
  for (int i = 0; i < n; i++)
    tokens[i] = g_rand_int_range (r, 3, vocab);
  g_rand_free (r);
}

/* StreamingLLM one token at a time through a 16-slot cache, 12 times as
 * many tokens as slots: both paths agree, the positions run past n_ctx, and
 * the log says when each token left. */
static void
test_stream_past_cache (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = load_fixture_model ("kv/tiny-mha");
  LscSession *s[2];
  for (int r = 0; r < 2; r++)
    {
      LscSessionParams p;
      lsc_session_params_init (&p);
      lsc_kv_policy_init (&p.kv_policy, LSC_KV_STREAMING_LLM);
      p.kv_policy.n_sink = 4;
      p.kv_policy.n_recent = 11;
      p.n_ctx = 16;
      p.reference = r == 1;
      s[r] = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
    }
  int vocab = lsc_session_get_n_vocab (s[0]), n = 200;
  gint32 tokens[200];
  fill_tokens (tokens, n, vocab, 7);
  g_autofree float *a = g_new (float, vocab), *b = g_new (float, vocab);
  double worst = 0;
  for (int i = 0; i < n; i++)
    {
      g_assert_true (lsc_session_eval (s[0], tokens + i, 1, a, FALSE, NULL, NULL, &error));
      g_assert_true (lsc_session_eval (s[1], tokens + i, 1, b, FALSE, NULL, NULL, &error));
      for (int v = 0; v < vocab; v++)
        worst = MAX (worst, fabs (a[v] - b[v]));
    }
  g_test_message ("fast vs reference over 200 steps: %.2g", worst);
  g_assert_cmpfloat (worst, <, 1e-4);
  const LscKvLog *log = lsc_session_get_kv (s[0]);
  g_assert_cmpint (lsc_session_get_pos (s[0]), ==, n);
  g_assert_cmpint (lsc_kv_log_get_n_positions (log), ==, n);
  for (int l = 0; l < lsc_kv_log_get_n_layers (log); l++)
    for (int h = 0; h < lsc_kv_log_get_n_heads (log); h++)
      {
        g_assert_cmpint (lsc_kv_log_count_alive (log, l, h), ==, 15);
        /* the sinks stay; position 4 left when the 16th token arrived;
         * position k (4 <= k < 189) when token k + 12 did */
        for (int pos = 0; pos < 4; pos++)
          g_assert_cmpint (lsc_kv_log_evicted_at (log, l, h, pos), ==, -1);
        for (int pos = 4; pos < n - 11; pos++)
          g_assert_cmpint (lsc_kv_log_evicted_at (log, l, h, pos), ==, pos + 12);
        g_assert_true (isnan (lsc_kv_log_score (log, l, h, 50)));
        g_assert_true (lsc_kv_log_alive (log, l, h, 50, 60));
        g_assert_false (lsc_kv_log_alive (log, l, h, 50, 62));
      }

  /* a 17-token evaluation does not fit 16 slots holding 15 */
  gint32 more[17] = { 5 };
  g_assert_false (lsc_session_eval (s[0], more, 17, NULL, FALSE, NULL, NULL, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CONTEXT_FULL,
                         "17 tokens do not fit: the KV cache holds 15 of its 16 slots", NULL);
  lsc_session_free (s[0]);
  lsc_session_free (s[1]);
}

static gboolean
cancel_now (gpointer data)
{
  return TRUE;
}

static LscSession *
h2o_session (LscModel *model, int n_ctx)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p;
  lsc_session_params_init (&p);
  lsc_kv_policy_init (&p.kv_policy, LSC_KV_H2O);
  p.kv_policy.n_heavy = 6;
  p.kv_policy.n_recent = 6;
  p.n_ctx = n_ctx;
  LscSession *s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  return s;
}

/* A cancelled evaluation leaves the cache, the scores and the log as they
 * were; rewinding to 0 starts a new stream. */
static void
test_cancel_and_rewind (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = load_fixture_model ("kv/tiny-mha");
  g_autoptr(LscSession) a = h2o_session (model, 64);
  g_autoptr(LscSession) b = h2o_session (model, 64);
  int vocab = lsc_session_get_n_vocab (a);
  gint32 tokens[60];
  fill_tokens (tokens, 60, vocab, 11);
  g_autofree float *la = g_new (float, vocab), *lb = g_new (float, vocab);

  g_assert_true (lsc_session_eval (a, tokens, 40, NULL, FALSE, NULL, NULL, &error));
  g_assert_true (lsc_session_eval (b, tokens, 40, NULL, FALSE, NULL, NULL, &error));
  g_assert_false (lsc_session_eval (b, tokens + 40, 20, lb, FALSE, cancel_now, NULL, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED, "cancelled", NULL);
  g_clear_error (&error);
  g_assert_cmpint (lsc_session_get_pos (b), ==, 40);
  for (int i = 40; i < 60; i++)
    {
      g_assert_true (lsc_session_eval (a, tokens + i, 1, la, FALSE, NULL, NULL, &error));
      g_assert_true (lsc_session_eval (b, tokens + i, 1, lb, FALSE, NULL, NULL, &error));
      g_assert_cmpmem (la, vocab * sizeof (float), lb, vocab * sizeof (float));
    }
  const LscKvLog *ka = lsc_session_get_kv (a), *kb = lsc_session_get_kv (b);
  for (int pos = 0; pos < 60; pos++)
    {
      g_assert_cmpint (lsc_kv_log_evicted_at (ka, 1, 2, pos), ==,
                       lsc_kv_log_evicted_at (kb, 1, 2, pos));
      g_assert_cmpfloat (lsc_kv_log_score (ka, 1, 2, pos), ==, lsc_kv_log_score (kb, 1, 2, pos));
    }

  /* back to an empty stream: the same tokens give the same logits */
  g_autofree float *first = g_new (float, vocab), *again = g_new (float, vocab);
  g_autoptr(LscSession) c = h2o_session (model, 64);
  g_assert_true (lsc_session_eval (c, tokens, 30, first, FALSE, NULL, NULL, &error));
  lsc_session_rewind (a, 0);
  g_assert_cmpint (lsc_kv_log_get_n_positions (lsc_session_get_kv (a)), ==, 0);
  g_assert_true (lsc_session_eval (a, tokens, 30, again, FALSE, NULL, NULL, &error));
  g_assert_cmpmem (first, vocab * sizeof (float), again, vocab * sizeof (float));
  g_assert_cmpint (lsc_kv_log_count_alive (lsc_session_get_kv (a), 0, 0), ==, 12);
}

static void
test_refused (void)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p;

  /* attention capture */
  g_autoptr(LscModel) mha = load_fixture_model ("kv/tiny-mha");
  lsc_session_params_init (&p);
  lsc_kv_policy_init (&p.kv_policy, LSC_KV_SNAPKV);
  p.capture.enabled = TRUE;
  g_assert_null (lsc_session_new (mha, &p, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "tiny-mha: the snapkv KV policy cannot run with attention capture yet",
                         NULL);
  g_clear_error (&error);

  /* bad parameters */
  lsc_session_params_init (&p);
  lsc_kv_policy_init (&p.kv_policy, LSC_KV_H2O);
  p.kv_policy.n_recent = 0;
  g_assert_null (lsc_session_new (mha, &p, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                         "h2o: recent must be at least 1, not 0", NULL);
  g_clear_error (&error);

  /* sliding windows */
  g_autoptr(LscModel) mistral = load_fixture_model ("hf/mistral-sliding-window");
  lsc_session_params_init (&p);
  lsc_kv_policy_init (&p.kv_policy, LSC_KV_STREAMING_LLM);
  g_assert_null (lsc_session_new (mistral, &p, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "mistral-sliding-window",
                         "the streaming-llm KV policy cannot run with sliding-window attention yet",
                         NULL);
  g_clear_error (&error);

  /* an SSM has no KV cache */
  g_autoptr(LscModel) mamba = load_fixture_model ("ssm/tiny-mamba2");
  lsc_session_params_init (&p);
  lsc_kv_policy_init (&p.kv_policy, LSC_KV_H2O);
  g_assert_null (lsc_session_new (mamba, &p, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "has no KV cache for the h2o policy to evict from", NULL);
}

/* What the session counts for a policy: its state and its log. */
static void
test_memory (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = load_fixture_model ("kv/tiny-mha");
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.n_ctx = 64;
  p.n_threads = 2;
  g_autoptr(LscSession) full = lsc_session_new (model, &p, &error);
  lsc_kv_policy_init (&p.kv_policy, LSC_KV_H2O);
  g_autoptr(LscSession) h2o = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  gint32 tokens[40];
  fill_tokens (tokens, 40, 128, 3);
  g_assert_true (lsc_session_eval (full, tokens, 40, NULL, FALSE, NULL, NULL, &error));
  g_assert_true (lsc_session_eval (h2o, tokens, 40, NULL, FALSE, NULL, NULL, &error));
  LscSessionMemory mf, mh;
  lsc_session_get_memory (full, &mf);
  lsc_session_get_memory (h2o, &mh);
  g_assert_cmpuint (mf.kv_bytes, ==, mh.kv_bytes);
  /* 4 layers, 4 heads, 64 slots: len (16) + slot table (4096) + hh and
   * delta (2 x 4096) + 2 threads' sums (2048); log: 64 positions x 16 x 8 */
  guint64 state = 4 * 4 + 4 * 4 * 64 * 4 + 2 * 4 * 4 * 64 * 4 + 2 * 4 * 64 * 4;
  g_assert_cmpuint (mh.scratch_bytes - mf.scratch_bytes, ==, state + 64 * 16 * 8);
}

/* lsc_estimate_run () predicts the policy session's memory byte for byte:
 * the prompt in chunks of 8, then generation, for each policy; and refuses
 * what the session would. */
static void
test_estimate (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = load_fixture_model ("kv/tiny-mha");
  static const LscKvPolicyKind kinds[] = { LSC_KV_STREAMING_LLM, LSC_KV_H2O, LSC_KV_SNAPKV,
                                           LSC_KV_PYRAMIDKV, LSC_KV_LACACHE, LSC_KV_LM_INFINITE,
                                           LSC_KV_THINK };
  gint32 prompt[100];
  fill_tokens (prompt, 100, 128, 5);
  for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
    for (int chunk = 0; chunk <= 8; chunk += 8)
      {
        LscEstimateParams ep;
        lsc_estimate_params_init (&ep);
        ep.n_prompt = 100;
        ep.max_tokens = 70;
        ep.kv_chunk = chunk;
        ep.session.n_threads = 2;
        lsc_kv_policy_init (&ep.session.kv_policy, kinds[i]);
        ep.session.kv_policy.n_recent = 10;
        ep.session.kv_policy.capacity = 40;
        ep.session.kv_policy.n_local = 30;
        ep.session.kv_policy.span = 2;    /* lacache: a ladder for 4 layers */
        ep.prefill_gflops = ep.decode_gbps = 1;
        LscEstimate e;
        g_assert_true (lsc_estimate_run (model, &ep, &e, &error));
        g_assert_no_error (error);

        LscSessionParams sp = ep.session;
        sp.n_ctx = lsc_kv_policy_slots (&sp.kv_policy, 100, chunk, 70);
        g_assert_cmpint (e.n_ctx, ==, sp.n_ctx);
        g_autoptr(LscSession) s = lsc_session_new (model, &sp, &error);
        g_assert_no_error (error);
        LscGenerateParams gp;
        lsc_generate_params_init (&gp);
        gp.max_tokens = 70;
        g_autoptr(GArray) out = g_array_new (FALSE, FALSE, sizeof (gint32));
        g_assert_true (lsc_generate_kv (s, NULL, prompt, 100, chunk, &gp, out, NULL, NULL, NULL,
                                        NULL, NULL, NULL, NULL, &error));
        g_assert_no_error (error);
        g_assert_cmpint (out->len, ==, 70);
        g_assert_cmpint (lsc_session_get_pos (s), ==, 169);
        LscSessionMemory m;
        lsc_session_get_memory (s, &m);
        g_assert_cmpuint (e.kv_bytes, ==, m.kv_bytes);
        g_assert_cmpuint (e.activation_bytes, ==, m.scratch_bytes);
      }

  /* what the session refuses, the estimate refuses with its words */
  LscEstimateParams ep;
  lsc_estimate_params_init (&ep);
  ep.n_prompt = 10;
  ep.session.capture.enabled = TRUE;
  lsc_kv_policy_init (&ep.session.kv_policy, LSC_KV_H2O);
  LscEstimate e;
  g_assert_false (lsc_estimate_run (model, &ep, &e, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                         "the h2o KV policy cannot run with attention capture yet", NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kv/policy/check", test_policy_check);
  g_test_add_func ("/kv/policy/budget", test_policy_budget);
  g_test_add_func ("/kv/lacache-ladder", test_lacache_ladder);
  g_test_add_func ("/kv/reference-cases", test_reference_cases);
  g_test_add_func ("/kv/stream-past-cache", test_stream_past_cache);
  g_test_add_func ("/kv/cancel-and-rewind", test_cancel_and_rewind);
  g_test_add_func ("/kv/refused", test_refused);
  g_test_add_func ("/kv/memory", test_memory);
  g_test_add_func ("/kv/estimate", test_estimate);
  return g_test_run ();
}
