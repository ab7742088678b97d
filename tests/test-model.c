/* SPDX-License-Identifier: MIT
 *
 * One model, several files: the same weights read from llama2.c, GGUF and
 * safetensors must come out the same, up to the documented q/k row
 * permutation of llama-arch GGUF files.
 */
#include "config.h"

#include <string.h>

#include "lsc-model.h"
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

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/model/stories260K-bin-vs-gguf", test_stories_bin_vs_gguf);
  g_test_add_func ("/engine/model/tiny-llama-hf-vs-gguf", test_llama_hf_vs_gguf);
  g_test_add_func ("/engine/model/tiny-qwen2-hf-vs-gguf", test_qwen2_hf_vs_gguf);
  return g_test_run ();
}
