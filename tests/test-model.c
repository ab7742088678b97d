/* SPDX-License-Identifier: MIT
 *
 * One model, several files: the same weights read from llama2.c, GGUF and
 * safetensors must come out the same, up to the documented q/k row
 * permutation of llama-arch GGUF files. And one model, several dtypes:
 * lsc_model_new_cast () rounds every matrix and nothing else.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-model.h"
#include "lsc-session.h"
#include "lsc-test-util.h"

static LscModel *
load (const char *rel)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = lsc_test_shared_path (rel);
  if (path == NULL)
    return NULL;
  LscModel *m = lsc_model_load (path, &error);
  g_assert_no_error (error);
  return m;
}

static float *
values (const LscTensor *t)
{
  g_autoptr(GError) error = NULL;
  float *v = g_new (float, lsc_tensor_n_elements (t));
  g_assert_true (lsc_tensor_to_f32 (t, v, &error));
  return v;
}

/* GGUF's converter permutes q/k rows per head (reshape to (heads, 2, d/2),
 * swap the last two axes): HF row (h, j, i), j < 2 halves, i < d/2, is GGUF
 * row (h, i, j). Returns the GGUF row of HF row `row`. */
static gint64
permuted_row (gint64 row, int head_dim)
{
  gint64 h = row / head_dim, r = row % head_dim;
  gint64 j = r / (head_dim / 2), i = r % (head_dim / 2);
  return h * head_dim + i * 2 + j;
}

static void
assert_same_model (const LscModel *a, const LscModel *b, gboolean permute_qk)
{
  const LscModelConfig *ca = lsc_model_get_config (a), *cb = lsc_model_get_config (b);
  g_assert_cmpint (ca->dim, ==, cb->dim);
  g_assert_cmpint (ca->n_layers, ==, cb->n_layers);
  g_assert_cmpint (ca->n_heads, ==, cb->n_heads);
  g_assert_cmpint (ca->n_kv_heads, ==, cb->n_kv_heads);
  g_assert_cmpint (ca->head_dim, ==, cb->head_dim);
  g_assert_cmpint (ca->hidden_dim, ==, cb->hidden_dim);
  g_assert_cmpint (ca->vocab_size, ==, cb->vocab_size);
  g_assert_cmpfloat (ca->rope_theta, ==, cb->rope_theta);

  int compared = 0;
  for (LscTensorRole role = LSC_TENSOR_TOKEN_EMBD; role <= LSC_TENSOR_FFN_DOWN; role++)
    for (int l = -1; l < ca->n_layers; l++)
      {
        const LscTensor *ta = lsc_model_get_weight (a, role, l);
        const LscTensor *tb = lsc_model_get_weight (b, role, l);
        /* the classifier: a file may store a copy of the embedding instead of tying it */
        if (role == LSC_TENSOR_OUTPUT)
          {
            ta = ta != NULL ? ta : lsc_model_get_weight (a, LSC_TENSOR_TOKEN_EMBD, -1);
            tb = tb != NULL ? tb : lsc_model_get_weight (b, LSC_TENSOR_TOKEN_EMBD, -1);
          }
        g_assert_true ((ta == NULL) == (tb == NULL));
        if (ta == NULL)
          continue;
        g_assert_cmpint (ta->n_dims, ==, tb->n_dims);
        g_assert_cmpint (ta->shape[0], ==, tb->shape[0]);
        g_assert_cmpint (ta->shape[1], ==, tb->shape[1]);
        g_autofree float *va = values (ta);
        g_autofree float *vb = values (tb);
        gboolean qk = permute_qk && (role == LSC_TENSOR_ATTN_Q || role == LSC_TENSOR_ATTN_K);
        gint64 cols = ta->n_dims == 2 ? ta->shape[1] : 1;
        for (gint64 r = 0; r < ta->shape[0]; r++)
          {
            gint64 rb = qk ? permuted_row (r, ca->head_dim) : r;
            if (memcmp (va + r * cols, vb + rb * cols, cols * sizeof (float)) != 0)
              g_error ("%s vs %s: row %" G_GINT64_FORMAT " differs", ta->name, tb->name, r);
          }
        compared++;
      }
  g_assert_cmpint (compared, >, 9 * ca->n_layers);
}

static void
test_stories_bin_vs_gguf (void)
{
  g_autoptr(LscModel) bin = load ("models/stories260K/stories260K.bin");
  g_autoptr(LscModel) gguf = load ("models/stories260K/stories260K.gguf");
  if (bin == NULL || gguf == NULL)
    return;
  /* the llama2.c export already uses the interleaved layout: no permutation */
  assert_same_model (gguf, bin, FALSE);
  g_assert_cmpint (lsc_model_get_config (gguf)->rope_layout, ==, LSC_ROPE_INTERLEAVED);
  /* GGUF says 128 tokens of context; kept, flagged advisory, never a cap */
  g_assert_cmpint (lsc_model_get_config (gguf)->max_position, ==, 128);
  g_autoptr(GString) d = g_string_new (NULL);
  lsc_model_describe (gguf, d, TRUE);
  g_assert_nonnull (strstr (d->str, "context_length:   128 (advisory)\n"));
  g_assert_nonnull (strstr (d->str, "token_embd.weight"));
}

static void
test_llama_hf_vs_gguf (void)
{
  g_autoptr(LscModel) hf = load ("models/random/tiny-llama");
  g_autoptr(LscModel) gguf = load ("models/random/tiny-llama/tiny-llama.f32.gguf");
  if (hf == NULL || gguf == NULL)
    return;
  assert_same_model (hf, gguf, TRUE);
  g_assert_cmpint (lsc_model_get_config (hf)->rope_layout, ==, LSC_ROPE_NEOX);
  g_assert_cmpint (lsc_model_get_config (gguf)->rope_layout, ==, LSC_ROPE_INTERLEAVED);
}

static void
test_qwen2_hf_vs_gguf (void)
{
  g_autoptr(LscModel) hf = load ("models/random/tiny-qwen2");
  g_autoptr(LscModel) gguf = load ("models/random/tiny-qwen2/tiny-qwen2.f32.gguf");
  if (hf == NULL || gguf == NULL)
    return;
  /* bf16 in safetensors, f32 in GGUF: widening is exact; qwen2 is not permuted */
  g_assert_cmpint (lsc_model_get_weight (hf, LSC_TENSOR_ATTN_Q, 0)->dtype, ==, LSC_DTYPE_BF16);
  assert_same_model (hf, gguf, FALSE);
  for (int l = 0; l < 3; l++)
    {
      g_autofree float *a = values (lsc_model_get_weight (hf, LSC_TENSOR_ATTN_K_BIAS, l));
      g_autofree float *b = values (lsc_model_get_weight (gguf, LSC_TENSOR_ATTN_K_BIAS, l));
      g_assert_cmpmem (a, 32 * sizeof (float), b, 32 * sizeof (float));
    }
}

static void
assert_same_config (const LscModelConfig *a, const LscModelConfig *b)
{
  g_assert_cmpint (a->arch, ==, b->arch);
  g_assert_cmpint (a->vocab_size, ==, b->vocab_size);
  g_assert_cmpint (a->dim, ==, b->dim);
  g_assert_cmpint (a->n_layers, ==, b->n_layers);
  g_assert_cmpint (a->n_heads, ==, b->n_heads);
  g_assert_cmpint (a->n_kv_heads, ==, b->n_kv_heads);
  g_assert_cmpint (a->head_dim, ==, b->head_dim);
  g_assert_cmpint (a->hidden_dim, ==, b->hidden_dim);
  g_assert_cmpfloat (a->norm_eps, ==, b->norm_eps);
  g_assert_cmpfloat (a->rope_theta, ==, b->rope_theta);
  g_assert_cmpint (a->rope_layout, ==, b->rope_layout);
  g_assert_cmpint (a->rope_scaling.type, ==, b->rope_scaling.type);
  g_assert_cmpfloat (a->rope_scaling.factor, ==, b->rope_scaling.factor);
  g_assert_cmpint (a->rope_scaling.original_max_position, ==, b->rope_scaling.original_max_position);
  g_assert_cmpint (a->max_position, ==, b->max_position);
  g_assert_cmpint (a->sliding_window, ==, b->sliding_window);
  g_assert_cmpint (a->max_window_layers, ==, b->max_window_layers);
  g_assert_cmpint (a->tied_embeddings, ==, b->tied_embeddings);
  g_assert_cmpint (a->attn_qkv_bias, ==, b->attn_qkv_bias);
  g_assert_cmpint (a->bos_id, ==, b->bos_id);
  g_assert_cmpint (a->eos_id, ==, b->eos_id);
}

/* cast (in `to`) against its source: same tensors in the same order, the
 * matrices rounded element by element, everything else byte for byte. */
static void
assert_cast_of (const LscModel *cast, const LscModel *src, LscDType to)
{
  assert_same_config (lsc_model_get_config (cast), lsc_model_get_config (src));
  g_assert_cmpint (lsc_model_get_format (cast), ==, lsc_model_get_format (src));
  g_assert_cmpstrv (lsc_model_get_warnings (cast), lsc_model_get_warnings (src));
  g_assert_cmpuint (lsc_model_get_n_tensors (cast), ==, lsc_model_get_n_tensors (src));
  int matrices = 0, vectors = 0;
  for (guint i = 0; i < lsc_model_get_n_tensors (src); i++)
    {
      const LscTensor *s = lsc_model_get_tensor (src, i), *c = lsc_model_get_tensor (cast, i);
      g_assert_cmpstr (c->name, ==, s->name);
      g_assert_cmpint (c->role, ==, s->role);
      g_assert_cmpint (c->layer, ==, s->layer);
      g_assert_cmpint (c->n_dims, ==, s->n_dims);
      g_assert_cmpmem (c->shape, sizeof c->shape, s->shape, sizeof s->shape);
      g_assert_true (c->data != s->data);
      if (s->n_dims != 2)
        {
          g_assert_cmpint (c->dtype, ==, s->dtype);
          g_assert_cmpmem (c->data, c->n_bytes, s->data, s->n_bytes);
          vectors++;
          continue;
        }
      g_assert_cmpint (c->dtype, ==, to);
      gint64 n = lsc_tensor_n_elements (s);
      g_autofree float *v = values (s);
      for (gint64 j = 0; j < n; j++)
        {
          gboolean same;
          if (to == LSC_DTYPE_BF16)
            same = ((const guint16 *) c->data)[j] == lsc_f32_to_bf16_1 (v[j]);
          else if (to == LSC_DTYPE_F16)
            same = ((const guint16 *) c->data)[j] == lsc_f32_to_f16_1 (v[j]);
          else
            same = memcmp ((const float *) c->data + j, v + j, sizeof (float)) == 0;
          if (!same)
            g_error ("%s: element %" G_GINT64_FORMAT " is not %s of the source's %g", c->name, j,
                     lsc_dtype_name (to), v[j]);
        }
      matrices++;
    }
  const LscModelConfig *cfg = lsc_model_get_config (src);
  g_assert_cmpint (matrices, >=, 7 * cfg->n_layers + 1);
  g_assert_cmpint (vectors, >=, 2 * cfg->n_layers + 1);
}

static void
test_cast_synthetic (void)
{
  g_autoptr(GError) error = NULL;
  LscModelConfig config;
  g_assert_true (lsc_model_config_init_shape (&config, "stories260K-shape"));
  /* a config with every field set, to see that all of it is copied */
  config.tied_embeddings = FALSE;
  config.attn_qkv_bias = TRUE;
  config.rope_layout = LSC_ROPE_NEOX;
  config.rope_scaling.type = LSC_ROPE_SCALING_LINEAR;
  config.rope_scaling.factor = 2.0;
  config.rope_scaling.original_max_position = 256;
  config.sliding_window = 64;
  config.max_window_layers = 3;
  config.bos_id = 7;
  config.eos_id = 9;

  LscModel *source = lsc_model_new_synthetic (&config, LSC_DTYPE_F32, 42, &error);
  g_assert_no_error (error);
  g_autoptr(LscModel) bf16 = lsc_model_new_cast (source, LSC_DTYPE_BF16, &error);
  g_assert_no_error (error);
  g_autofree char *path = g_strdup_printf ("%s (as bf16)", lsc_model_get_path (source));
  g_assert_cmpstr (lsc_model_get_path (bf16), ==, path);
  /* the copy owns its weights: compare it with the same model made again */
  lsc_model_free (source);
  g_autoptr(LscModel) again = lsc_model_new_synthetic (&config, LSC_DTYPE_F32, 42, &error);
  g_assert_no_error (error);
  assert_cast_of (bf16, again, LSC_DTYPE_BF16);
  g_assert_nonnull (lsc_model_get_weight (bf16, LSC_TENSOR_OUTPUT, -1));
  g_assert_nonnull (lsc_model_get_weight (bf16, LSC_TENSOR_ATTN_K_BIAS, 4));

  /* from a non-F32 source: bf16 widens exactly, and rounds to f16 like float32 does */
  g_autoptr(LscModel) f32 = lsc_model_new_cast (bf16, LSC_DTYPE_F32, &error);
  g_assert_no_error (error);
  assert_cast_of (f32, bf16, LSC_DTYPE_F32);
  g_autoptr(LscModel) f16 = lsc_model_new_cast (bf16, LSC_DTYPE_F16, &error);
  g_assert_no_error (error);
  assert_cast_of (f16, bf16, LSC_DTYPE_F16);
  g_autoptr(LscModel) same = lsc_model_new_cast (bf16, LSC_DTYPE_BF16, &error);
  g_assert_no_error (error);
  assert_cast_of (same, bf16, LSC_DTYPE_BF16);
}

static void
test_cast_unsupported (void)
{
  g_autoptr(GError) error = NULL;
  LscModelConfig config;
  g_assert_true (lsc_model_config_init_shape (&config, "stories260K-shape"));
  g_autoptr(LscModel) f32 = lsc_model_new_synthetic (&config, LSC_DTYPE_F32, 1, &error);
  g_assert_no_error (error);

  static const LscDType targets[] = { LSC_DTYPE_Q8_0, LSC_DTYPE_I32, LSC_DTYPE_I64 };
  for (gsize i = 0; i < G_N_ELEMENTS (targets); i++)
    {
      LscModel *m = lsc_model_new_cast (f32, targets[i], &error);
      g_assert_null (m);
      lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                             lsc_dtype_name (targets[i]), NULL);
      g_clear_error (&error);
    }

  config.hidden_dim = 192;   /* Q8_0 blocks of 32 */
  g_autoptr(LscModel) q8 = lsc_model_new_synthetic (&config, LSC_DTYPE_Q8_0, 1, &error);
  g_assert_no_error (error);
  g_assert_null (lsc_model_new_cast (q8, LSC_DTYPE_BF16, &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                         "'token_embd.weight'", lsc_dtype_name (LSC_DTYPE_Q8_0), NULL);
}

static int
argmax (const float *v, int n)
{
  int best = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[best])
      best = i;
  return best;
}

/* The last logits of a short prompt on a fresh CPU session. */
static float *
last_logits (LscModel *model, int *n_vocab)
{
  static const gint32 story[] = { 1, 403, 407, 261, 378 };   /* <s> Once upon a time */
  g_autoptr(GError) error = NULL;
  gint32 prompt[G_N_ELEMENTS (story)];
  for (gsize i = 0; i < G_N_ELEMENTS (story); i++)   /* within smaller vocabularies too */
    prompt[i] = story[i] % lsc_model_get_config (model)->vocab_size;
  LscSessionParams sp;
  lsc_session_params_init (&sp);
  g_autoptr(LscSession) s = lsc_session_new (model, &sp, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_session_get_backend (s), ==, LSC_BACKEND_CPU);
  *n_vocab = lsc_session_get_n_vocab (s);
  float *logits = g_new (float, *n_vocab);
  g_assert_true (lsc_session_eval (s, prompt, G_N_ELEMENTS (prompt), logits, FALSE, NULL, NULL,
                                   &error));
  g_assert_no_error (error);
  return logits;
}

/* Frobenius relative error ||got - want|| / ||want||. */
static double
relative_error (const float *got, const float *want, int n)
{
  double diff = 0, norm = 0;
  for (int i = 0; i < n; i++)
    {
      g_assert_true (isfinite (got[i]));
      diff += ((double) got[i] - want[i]) * ((double) got[i] - want[i]);
      norm += (double) want[i] * want[i];
    }
  return sqrt (diff / norm);
}

/* The bf16 copy of a checkpoint predicts what the checkpoint predicts; its
 * logits move by the rounding of the weights, and no more. Returns the
 * copy's last logits, or NULL (the test skipped) without the checkpoint. */
static float *
cast_forward (const char *rel, int *n_vocab)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) source = load (rel);
  if (source == NULL)
    return NULL;
  g_autoptr(LscModel) bf16 = lsc_model_new_cast (source, LSC_DTYPE_BF16, &error);
  g_assert_no_error (error);
  assert_cast_of (bf16, source, LSC_DTYPE_BF16);

  int n = 0;
  g_autofree float *a = last_logits (source, &n);
  float *b = last_logits (bf16, n_vocab);
  g_assert_cmpint (*n_vocab, ==, n);
  double rel_err = relative_error (b, a, n);
  g_test_message ("%s: bf16 copy: relative error %.3g", rel, rel_err);
  g_assert_cmpint (argmax (b, n), ==, argmax (a, n));
  g_assert_cmpfloat (rel_err, >, 0.0);     /* the weights did change */
  g_assert_cmpfloat (rel_err, <, 0.03);    /* by bf16 rounding only (0.2% to 1.4% here) */
  return b;
}

static void
test_cast_forward (void)
{
  int n = 0, n_hf = 0;
  g_autofree float *bin = cast_forward ("models/stories260K/stories260K.bin", &n);
  g_autofree float *gguf = cast_forward ("models/stories260K/stories260K.gguf", &n);
  if (bin != NULL && gguf != NULL)
    g_assert_cmpfloat (relative_error (gguf, bin, n), <=, 1e-5);

  /* llama-arch GGUF (q/k rows permuted, interleaved RoPE) against the same
   * weights from safetensors (rotate_half): the copies bind as their
   * sources do, so they still compute the same function */
  g_autofree float *tiny = cast_forward ("models/random/tiny-llama/tiny-llama.f32.gguf", &n);
  g_autofree float *tiny_hf = cast_forward ("models/random/tiny-llama", &n_hf);
  if (tiny != NULL && tiny_hf != NULL)
    {
      g_assert_cmpint (n, ==, n_hf);
      g_assert_cmpint (argmax (tiny, n), ==, argmax (tiny_hf, n));
      g_assert_cmpfloat (relative_error (tiny, tiny_hf, n), <=, 1e-4);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/model/stories260K-bin-vs-gguf", test_stories_bin_vs_gguf);
  g_test_add_func ("/engine/model/tiny-llama-hf-vs-gguf", test_llama_hf_vs_gguf);
  g_test_add_func ("/engine/model/tiny-qwen2-hf-vs-gguf", test_qwen2_hf_vs_gguf);
  g_test_add_func ("/engine/model/cast-synthetic", test_cast_synthetic);
  g_test_add_func ("/engine/model/cast-unsupported", test_cast_unsupported);
  g_test_add_func ("/engine/model/cast-forward", test_cast_forward);
  return g_test_run ();
}
