/* SPDX-License-Identifier: MIT
 *
 * The Llama-family forward pass against logits computed by independent
 * engines (llama.cpp; Hugging Face semantics in float64), through every file
 * format, on both the reference and the fast path.
 */
#include "config.h"

#include <json-c/json.h>
#include <math.h>

#include "lsc-error.h"
#include "lsc-session.h"
#include "lsc-test-util.h"

typedef struct {
  GArray *tokens;   /* gint32 */
  float *logits;    /* (n_tokens, vocab) */
} RefSeq;

typedef struct {
  int vocab;
  GPtrArray *seqs;  /* RefSeq* */
} RefLogits;

static void
ref_seq_free (RefSeq *r)
{
  g_array_unref (r->tokens);
  g_free (r->logits);
  g_free (r);
}

static void
ref_logits_free (RefLogits *r)
{
  g_ptr_array_unref (r->seqs);
  g_free (r);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RefLogits, ref_logits_free)

/* The shared files: {"n_vocab": V, "sequences": [{"tokens": [...], "logits":
 * [[V floats] per position]}]}; the fixtures of tools/make-hf-fixtures.py:
 * {"tokens": [...], "logits": [...], ...}, one sequence. */
static RefLogits *
load_ref_file (const char *path)
{
  json_object *root = json_object_from_file (path);
  g_assert_nonnull (root);
  RefLogits *r = g_new0 (RefLogits, 1);
  r->seqs = g_ptr_array_new_with_free_func ((GDestroyNotify) ref_seq_free);
  json_object *seqs = json_object_object_get (root, "sequences");
  json_object *single = NULL;
  if (seqs == NULL)
    {
      single = json_object_new_array ();
      json_object_array_add (single, json_object_get (root));
      seqs = single;
    }
  json_object *first = json_object_object_get (json_object_array_get_idx (seqs, 0), "logits");
  r->vocab = (int) json_object_array_length (json_object_array_get_idx (first, 0));
  for (size_t i = 0; i < json_object_array_length (seqs); i++)
    {
      json_object *seq = json_object_array_get_idx (seqs, i);
      json_object *toks = json_object_object_get (seq, "tokens");
      json_object *logits = json_object_object_get (seq, "logits");
      RefSeq *rs = g_new0 (RefSeq, 1);
      size_t n = json_object_array_length (toks);
      rs->tokens = g_array_new (FALSE, FALSE, sizeof (gint32));
      rs->logits = g_new (float, n * r->vocab);
      g_assert_cmpuint (json_object_array_length (logits), ==, n);
      for (size_t t = 0; t < n; t++)
        {
          gint32 id = json_object_get_int (json_object_array_get_idx (toks, t));
          g_array_append_val (rs->tokens, id);
          json_object *row = json_object_array_get_idx (logits, t);
          g_assert_cmpuint (json_object_array_length (row), ==, (size_t) r->vocab);
          for (int v = 0; v < r->vocab; v++)
            rs->logits[t * r->vocab + v] = (float) json_object_get_double (json_object_array_get_idx (row, v));
        }
      g_ptr_array_add (r->seqs, rs);
    }
  json_object_put (single);
  json_object_put (root);
  return r;
}

static RefLogits *
load_ref (const char *rel)
{
  g_autofree char *path = lsc_test_shared_path (rel);
  return path != NULL ? load_ref_file (path) : NULL;
}

static int
argmax (const float *x, int n)
{
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

/* Frobenius relative error ||a - b|| / ||b|| over (n, vocab) logits; also
 * asserts every value is finite and every argmax agrees. */
static double
compare_logits (const float *got, const float *want, int n, int vocab, const char *what)
{
  double diff = 0, norm = 0;
  for (size_t i = 0; i < (size_t) n * vocab; i++)
    {
      g_assert_true (isfinite (got[i]));
      diff += ((double) got[i] - want[i]) * ((double) got[i] - want[i]);
      norm += (double) want[i] * want[i];
    }
  for (int t = 0; t < n; t++)
    if (argmax (got + (size_t) t * vocab, vocab) != argmax (want + (size_t) t * vocab, vocab))
      g_error ("%s: argmax differs at position %d", what, t);
  double rel = sqrt (diff / norm);
  g_test_message ("%s: relative error %.3g over %d positions", what, rel, n);
  return rel;
}

static void
check_model (const char *model_path, RefLogits *ref, const char *model_rel, gboolean reference)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_model_load (model_path, &error);
  g_assert_no_error (error);

  LscSessionParams p;
  lsc_session_params_init (&p);
  p.reference = reference;
  p.n_threads = 2;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  int vocab = lsc_model_get_config (model)->vocab_size;
  g_assert_cmpint (vocab, >=, ref->vocab);

  for (guint i = 0; i < ref->seqs->len; i++)
    {
      RefSeq *rs = g_ptr_array_index (ref->seqs, i);
      int n = (int) rs->tokens->len;
      g_autofree float *logits = g_new (float, (gsize) n * vocab);
      lsc_session_rewind (s, 0);
      g_assert_true (lsc_session_eval (s, (gint32 *) rs->tokens->data, n, logits, TRUE, NULL, NULL,
                                       &error));
      g_assert_no_error (error);
      g_assert_cmpint (vocab, ==, ref->vocab);
      g_autofree char *what = g_strdup_printf ("%s seq %u (%s)", model_rel, i,
                                               reference ? "reference" : "fast");
      g_assert_cmpfloat (compare_logits (logits, rs->logits, n, vocab, what), <=, 1e-4);
    }
}

static void
check_model_against (const char *model_rel, const char *ref_rel, gboolean reference)
{
  g_autofree char *model_path = lsc_test_shared_path (model_rel);
  if (model_path == NULL)
    return;
  g_autoptr(RefLogits) ref = load_ref (ref_rel);
  if (ref != NULL)
    check_model (model_path, ref, model_rel, reference);
}

/* tests/fixtures/hf/<name>: small models written by transformers with the
 * logits of its own forward (RoPE scalings, sliding windows, bf16, head_dim). */
static void
test_hf_fixture (gconstpointer data)
{
  const char *name = data;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf", name, NULL);
  g_autofree char *expected = g_build_filename (dir, "expected.json", NULL);
  g_autoptr(RefLogits) ref = load_ref_file (expected);
  check_model (dir, ref, name, FALSE);
  check_model (dir, ref, name, TRUE);
}

#define MODEL_TEST(fn, model, ref)                            \
  static void fn (void) { check_model_against (model, ref, FALSE); \
                          check_model_against (model, ref, TRUE); }

MODEL_TEST (test_stories_bin, "models/stories260K/stories260K.bin", "models/stories260K/reference-logits.json")
MODEL_TEST (test_stories_gguf, "models/stories260K/stories260K.gguf", "models/stories260K/reference-logits.json")
MODEL_TEST (test_llama_hf, "models/random/tiny-llama", "models/random/tiny-llama/reference-logits.json")
MODEL_TEST (test_llama_gguf, "models/random/tiny-llama/tiny-llama.f32.gguf", "models/random/tiny-llama/reference-logits.json")
MODEL_TEST (test_qwen2_hf, "models/random/tiny-qwen2", "models/random/tiny-qwen2/reference-logits.json")
MODEL_TEST (test_qwen2_gguf, "models/random/tiny-qwen2/tiny-qwen2.f32.gguf", "models/random/tiny-qwen2/reference-logits.json")
MODEL_TEST (test_mamba_hf, "models/random/tiny-mamba", "models/random/tiny-mamba/reference-logits.json")
MODEL_TEST (test_mamba_gguf, "models/random/tiny-mamba/tiny-mamba.f32.gguf", "models/random/tiny-mamba/reference-logits.json")

/* Feeding a sequence in pieces (prefill, then one token at a time) gives the
 * logits of feeding it at once, on both paths. */
static void
test_incremental (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_test_load_shared_model ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  const int n = 300, vocab = 512;
  gint32 tokens[300];
  for (int i = 0; i < n; i++)
    tokens[i] = i == 0 ? 1 : g_test_rand_int_range (3, 512);

  for (int reference = 0; reference <= 1; reference++)
    {
      LscSessionParams p;
      lsc_session_params_init (&p);
      p.reference = reference;
      g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
      g_assert_no_error (error);
      g_autofree float *all = g_new (float, n * vocab);
      g_autofree float *step = g_new (float, n * vocab);
      g_assert_true (lsc_session_eval (s, tokens, n, all, TRUE, NULL, NULL, &error));
      lsc_session_rewind (s, 0);
      g_assert_true (lsc_session_eval (s, tokens, 37, step, TRUE, NULL, NULL, &error));
      for (int i = 37; i < n; i++)
        g_assert_true (lsc_session_eval (s, tokens + i, 1, step + (size_t) i * vocab, FALSE, NULL,
                                         NULL, &error));
      g_assert_no_error (error);
      g_assert_cmpint (lsc_session_get_pos (s), ==, n);
      g_assert_cmpfloat (compare_logits (step, all, n, vocab, "incremental"), <=, 1e-5);
    }
}

/* The fast path against the reference forward on 700 tokens (a full
 * prefill block and a tail), for the checkpoint's bf16 weights and its f16
 * and f32 casts, each with both prefill GEMMs for 16-bit weights: the kernel
 * layer's own (where the CPU has AVX-512) and widened tiles + sgemm
 * (LSC_CPU_GEMM=openblas). */
static void
test_fast_matches_reference (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) stored = lsc_test_load_shared_model ("models/random/tiny-qwen2");
  if (stored == NULL)
    return;
  const int n = 700, vocab = lsc_model_get_config (stored)->vocab_size;
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = g_test_rand_int_range (0, vocab);
  g_autofree float *a = g_new (float, (gsize) n * vocab);
  g_autofree float *b = g_new (float, (gsize) n * vocab);
  static const LscDType dtypes[] = { LSC_DTYPE_BF16, LSC_DTYPE_F16, LSC_DTYPE_F32 };
  static const char *const gemms[] = { NULL, "openblas" };

  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++)
    {
      g_autoptr(LscModel) cast = NULL;
      if (dtypes[d] != LSC_DTYPE_BF16)
        {
          cast = lsc_model_new_cast (stored, dtypes[d], &error);
          g_assert_no_error (error);
        }
      LscModel *model = cast != NULL ? cast : stored;
      LscSessionParams p;
      lsc_session_params_init (&p);
      p.reference = TRUE;
      g_autoptr(LscSession) ref = lsc_session_new (model, &p, &error);
      g_assert_true (lsc_session_eval (ref, tokens, n, b, TRUE, NULL, NULL, &error));
      g_assert_no_error (error);
      for (guint g = 0; g < G_N_ELEMENTS (gemms); g++)
        {
          if (gemms[g] != NULL)
            g_setenv ("LSC_CPU_GEMM", gemms[g], TRUE);
          else
            g_unsetenv ("LSC_CPU_GEMM");
          p.reference = FALSE;
          g_autoptr(LscSession) fast = lsc_session_new (model, &p, &error);
          g_assert_true (lsc_session_eval (fast, tokens, n, a, TRUE, NULL, NULL, &error));
          g_assert_no_error (error);
          g_autofree char *what = g_strdup_printf ("fast vs reference, %s weights, %s GEMM",
                                                   lsc_dtype_name (dtypes[d]),
                                                   gemms[g] != NULL ? gemms[g] : "default");
          g_assert_cmpfloat (compare_logits (a, b, n, vocab, what), <=, 1e-5);
        }
      g_unsetenv ("LSC_CPU_GEMM");
    }
}

static gboolean
cancel_after (gpointer data)
{
  int *calls = data;
  return ++*calls > 3;
}

static void
test_errors (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_test_load_shared_model ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.n_ctx = 8;
  g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  gint32 tokens[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };

  g_assert_false (lsc_session_eval (s, tokens, 9, NULL, FALSE, NULL, NULL, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CONTEXT_FULL, "9 tokens", "of 8", NULL);
  g_clear_error (&error);

  gint32 bad[2] = { 1, 512 };
  g_assert_false (lsc_session_eval (s, bad, 2, NULL, FALSE, NULL, NULL, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_TOKEN, "token 512",
                         "index 1", NULL);
  g_clear_error (&error);

  int calls = 0;
  g_assert_true (lsc_session_eval (s, tokens, 2, NULL, FALSE, NULL, NULL, &error));
  g_assert_false (lsc_session_eval (s, tokens, 4, NULL, FALSE, cancel_after, &calls, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED, "cancelled", NULL);
  g_assert_cmpint (lsc_session_get_pos (s), ==, 2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/forward/stories260K-bin", test_stories_bin);
  g_test_add_func ("/engine/forward/stories260K-gguf", test_stories_gguf);
  g_test_add_func ("/engine/forward/tiny-llama-hf", test_llama_hf);
  g_test_add_func ("/engine/forward/tiny-llama-gguf", test_llama_gguf);
  g_test_add_func ("/engine/forward/tiny-qwen2-hf", test_qwen2_hf);
  g_test_add_func ("/engine/forward/tiny-qwen2-gguf", test_qwen2_gguf);
  g_test_add_func ("/engine/forward/tiny-mamba-hf", test_mamba_hf);
  g_test_add_func ("/engine/forward/tiny-mamba-gguf", test_mamba_gguf);
  static const char *const fixtures[] = {
    "llama-rope-none", "llama-rope-linear", "llama-rope-dynamic", "llama-rope-yarn",
    "llama-rope-llama3", "llama-head-dim", "mistral-sliding-window", "qwen2-sliding-window",
    "qwen2-bf16",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (fixtures); i++)
    {
      g_autofree char *test_path = g_strconcat ("/engine/forward/hf/", fixtures[i], NULL);
      g_test_add_data_func (test_path, fixtures[i], test_hf_fixture);
    }
  g_test_add_func ("/engine/forward/incremental", test_incremental);
  g_test_add_func ("/engine/forward/fast-matches-reference", test_fast_matches_reference);
  g_test_add_func ("/engine/forward/errors", test_errors);
  return g_test_run ();
}
