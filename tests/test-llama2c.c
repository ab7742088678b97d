/* SPDX-License-Identifier: MIT
 *
 * llama2.c checkpoints: the shared stories260K and babyllama-105 files, the
 * variants the shared files lack (unshared classifier, version-1 header)
 * generated here from them, and malformed headers.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-model.h"
#include "lsc-test-util.h"

typedef struct {
  gint32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} Header;

static void
test_stories260k (void)
{
  g_autofree char *path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  g_autoptr(GError) error = NULL;
  if (path == NULL)
    return;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);

  const LscModelConfig *c = lsc_model_get_config (model);
  g_assert_cmpint (lsc_model_get_format (model), ==, LSC_FORMAT_LLAMA2C);
  g_assert_cmpint (c->arch, ==, LSC_ARCH_LLAMA);
  g_assert_cmpint (c->dim, ==, 64);
  g_assert_cmpint (c->hidden_dim, ==, 172);
  g_assert_cmpint (c->n_layers, ==, 5);
  g_assert_cmpint (c->n_heads, ==, 8);
  g_assert_cmpint (c->n_kv_heads, ==, 4);
  g_assert_cmpint (c->head_dim, ==, 8);
  g_assert_cmpint (c->vocab_size, ==, 512);
  g_assert_cmpint (c->max_position, ==, 512);
  g_assert_true (c->tied_embeddings);
  g_assert_cmpint (c->rope_layout, ==, LSC_ROPE_INTERLEAVED);
  g_assert_cmpfloat (c->rope_theta, ==, 10000.0);
  g_assert_cmpint (c->bos_id, ==, 1);
  g_assert_cmpint (c->eos_id, ==, 2);
  /* embedding + 5 x 9 per layer + final norm; no classifier */
  g_assert_cmpuint (lsc_model_get_n_tensors (model), ==, 1 + 5 * 9 + 1);
  g_assert_null (lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1));

  const LscTensor *wk = lsc_model_get_weight (model, LSC_TENSOR_ATTN_K, 4);
  g_assert_nonnull (wk);
  g_assert_cmpstr (wk->name, ==, "blk.4.attn_k.weight");
  g_assert_cmpint (wk->shape[0], ==, 32);
  g_assert_cmpint (wk->shape[1], ==, 64);

  /* the embedding starts right after the 28-byte header */
  g_autoptr(GBytes) bytes = lsc_test_read_file (path);
  const guint8 *raw = g_bytes_get_data (bytes, NULL);
  const LscTensor *embd = lsc_model_get_weight (model, LSC_TENSOR_TOKEN_EMBD, -1);
  g_assert_cmpuint (embd->file_offset, ==, 28);
  g_assert_cmpmem (embd->data, 512 * 64 * 4, raw + 28, 512 * 64 * 4);
  /* the final norm sits before the 512 x 4 x 2 floats of freq_cis at the end */
  const LscTensor *norm = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT_NORM, -1);
  g_assert_cmpuint (norm->file_offset + 64 * 4 + 512 * 8 * 4, ==, g_bytes_get_size (bytes));
}

static void
test_babyllama (void)
{
  g_autofree char *path = lsc_test_shared_path ("models/babyllama-105/model5000.bin");
  g_autoptr(GError) error = NULL;
  if (path == NULL)
    return;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  const LscModelConfig *c = lsc_model_get_config (model);
  g_assert_cmpint (c->dim, ==, 128);
  g_assert_cmpint (c->hidden_dim, ==, 352);
  g_assert_cmpint (c->n_layers, ==, 5);
  g_assert_cmpint (c->n_heads, ==, 8);
  g_assert_cmpint (c->n_kv_heads, ==, 4);
  g_assert_cmpint (c->vocab_size, ==, 105);
  g_assert_cmpint (c->max_position, ==, 256);
}

/* Reads the stories260K weights as (header, floats). */
static gboolean
read_stories (Header *h, const float **w, gsize *n_floats, GBytes **keep)
{
  g_autofree char *path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (path == NULL)
    return FALSE;
  *keep = lsc_test_read_file (path);
  gsize size;
  const guint8 *raw = g_bytes_get_data (*keep, &size);
  memcpy (h, raw, sizeof *h);
  *w = (const float *) (raw + sizeof *h);
  *n_floats = (size - sizeof *h) / 4;
  return TRUE;
}

static void
assert_same_values (const LscModel *a, const LscModel *b)
{
  const LscModelConfig *c = lsc_model_get_config (a);
  for (LscTensorRole role = LSC_TENSOR_TOKEN_EMBD; role <= LSC_TENSOR_FFN_DOWN; role++)
    for (int l = -1; l < c->n_layers; l++)
      {
        const LscTensor *ta = lsc_model_get_weight (a, role, l);
        const LscTensor *tb = lsc_model_get_weight (b, role, l);
        if (ta == NULL || role == LSC_TENSOR_OUTPUT)
          continue;
        g_assert_nonnull (tb);
        g_assert_cmpint (ta->n_bytes, ==, tb->n_bytes);
        g_assert_cmpmem (ta->data, ta->n_bytes, tb->data, tb->n_bytes);
      }
}

static void
test_unshared_classifier (void)
{
  Header h;
  const float *w;
  gsize n;
  g_autoptr(GBytes) keep = NULL;
  g_autoptr(GError) error = NULL;
  if (!read_stories (&h, &w, &n, &keep))
    return;

  /* same weights, negative vocab_size, and a classifier = 2 x embedding */
  Header h2 = h;
  h2.vocab_size = -h.vocab_size;
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_byte_array_append (out, (const guint8 *) &h2, sizeof h2);
  g_byte_array_append (out, (const guint8 *) w, n * 4);
  for (gsize i = 0; i < (gsize) h.vocab_size * h.dim; i++)
    {
      float v = 2.0f * w[i];
      g_byte_array_append (out, (const guint8 *) &v, 4);
    }
  g_autofree char *path = lsc_test_write_file ("unshared.bin", out->data, out->len);

  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  g_assert_false (lsc_model_get_config (model)->tied_embeddings);
  g_assert_cmpint (lsc_model_get_config (model)->vocab_size, ==, 512);
  const LscTensor *cls = lsc_model_get_weight (model, LSC_TENSOR_OUTPUT, -1);
  g_assert_nonnull (cls);
  g_autofree float *v = g_new (float, 512 * 64);
  g_assert_true (lsc_tensor_to_f32 (cls, v, &error));
  for (int i = 0; i < 512 * 64; i += 97)
    g_assert_cmpfloat (v[i], ==, 2.0f * w[i]);

  g_autofree char *orig_path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  g_autoptr(LscModel) orig = lsc_model_load (orig_path, &error);
  g_assert_no_error (error);
  assert_same_values (orig, model);
}

static void
test_version1 (void)
{
  Header h;
  const float *w;
  gsize n;
  g_autoptr(GBytes) keep = NULL;
  g_autoptr(GError) error = NULL;
  if (!read_stories (&h, &w, &n, &keep))
    return;

  g_autofree char *orig_path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  g_autoptr(LscModel) orig = lsc_model_load (orig_path, &error);
  g_assert_no_error (error);

  /* write the version-1 layout from the loaded tensors */
  g_autoptr(GByteArray) out = g_byte_array_new ();
  guint8 header[256] = { 0 };
  guint32 magic = 0x616b3432;
  gint32 version = 1;
  memcpy (header, &magic, 4);
  memcpy (header + 4, &version, 4);
  memcpy (header + 8, &h, sizeof h);
  header[8 + sizeof h] = 1;   /* shared classifier */
  g_byte_array_append (out, header, sizeof header);
  const LscTensorRole norms[] = { LSC_TENSOR_ATTN_NORM, LSC_TENSOR_FFN_NORM };
  for (gsize r = 0; r < G_N_ELEMENTS (norms); r++)
    for (int l = 0; l < h.n_layers; l++)
      {
        const LscTensor *t = lsc_model_get_weight (orig, norms[r], l);
        g_byte_array_append (out, t->data, t->n_bytes);
      }
  const LscTensor *t = lsc_model_get_weight (orig, LSC_TENSOR_OUTPUT_NORM, -1);
  g_byte_array_append (out, t->data, t->n_bytes);
  t = lsc_model_get_weight (orig, LSC_TENSOR_TOKEN_EMBD, -1);
  g_byte_array_append (out, t->data, t->n_bytes);
  const LscTensorRole mats[] = { LSC_TENSOR_ATTN_Q, LSC_TENSOR_ATTN_K, LSC_TENSOR_ATTN_V,
                                 LSC_TENSOR_ATTN_O, LSC_TENSOR_FFN_GATE, LSC_TENSOR_FFN_DOWN,
                                 LSC_TENSOR_FFN_UP };
  for (gsize r = 0; r < G_N_ELEMENTS (mats); r++)
    for (int l = 0; l < h.n_layers; l++)
      {
        t = lsc_model_get_weight (orig, mats[r], l);
        g_byte_array_append (out, t->data, t->n_bytes);
      }
  g_autofree char *path = lsc_test_write_file ("v1.bin", out->data, out->len);
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  g_assert_true (lsc_model_get_config (model)->tied_embeddings);
  assert_same_values (orig, model);

  /* version 2 (int8) and unknown versions are refused by name */
  version = 2;
  memcpy (out->data + 4, &version, 4);
  g_autofree char *p2 = lsc_test_write_file ("v2.bin", out->data, out->len);
  g_assert_null (lsc_model_load (p2, &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE, "v2.bin",
                         "int8", NULL);
  g_clear_error (&error);
  version = 7;
  memcpy (out->data + 4, &version, 4);
  g_autofree char *p7 = lsc_test_write_file ("v7.bin", out->data, out->len);
  g_assert_null (lsc_model_load (p7, &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_VERSION, "v7.bin",
                         "version 7", NULL);
}

static void
test_malformed (void)
{
  Header h;
  const float *w;
  gsize n;
  g_autoptr(GBytes) keep = NULL;
  g_autoptr(GError) error = NULL;
  if (!read_stories (&h, &w, &n, &keep))
    return;
  gsize size = g_bytes_get_size (keep);
  const guint8 *raw = g_bytes_get_data (keep, NULL);

  /* cut anywhere: an error, never a crash */
  const gsize cuts[] = { 0, 3, 27, 28, 1000, size / 2, size - 4, size - 1 };
  for (gsize i = 0; i < G_N_ELEMENTS (cuts); i++)
    {
      g_autofree char *p = lsc_test_write_file ("cut.bin", raw, cuts[i]);
      g_assert_null (lsc_model_load (p, &error));
      lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED, "cut.bin", NULL);
      g_clear_error (&error);
    }

  /* trailing garbage: the header does not describe this file */
  g_autoptr(GByteArray) longer = g_byte_array_new ();
  g_byte_array_append (longer, raw, size);
  g_byte_array_append (longer, (const guint8 *) "junk", 4);
  g_autofree char *pl = lsc_test_write_file ("long.bin", longer->data, longer->len);
  g_assert_null (lsc_model_load (pl, &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "long.bin",
                         "implies 1056540 bytes, the file has 1056544", NULL);
  g_clear_error (&error);

  /* lying header fields */
  const struct { gsize field; gint32 value; const char *frag; } lies[] = {
    { 0, 0, "dim = 0" },
    { 2, -3, "n_layers = -3" },
    { 3, 7, "n_heads = 7" },
    { 4, 3, "n_kv_heads = 3" },
    { 6, 1 << 30, "seq_len" },
    { 1, 0x7fffffff, "hidden_dim" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (lies); i++)
    {
      g_autofree guint8 *copy = g_memdup2 (raw, size);
      memcpy (copy + 4 * lies[i].field, &lies[i].value, 4);
      g_autofree char *p = lsc_test_write_file ("lie.bin", copy, size);
      g_assert_null (lsc_model_load (p, &error));
      lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "lie.bin",
                             lies[i].frag, NULL);
      g_clear_error (&error);
    }

  /* a larger vocabulary than the file holds */
  g_autofree guint8 *copy = g_memdup2 (raw, size);
  gint32 vocab = 4096;
  memcpy (copy + 20, &vocab, 4);
  g_autofree char *pv = lsc_test_write_file ("vocab.bin", copy, size);
  g_assert_null (lsc_model_load (pv, &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED, "vocab.bin",
                         "vocab_size 4096", NULL);
  g_clear_error (&error);

  /* not a model at all */
  g_assert_null (lsc_model_load ("/nonexistent/x.bin", &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND, "/nonexistent/x.bin",
                         NULL);
  g_clear_error (&error);
  g_autofree char *px = lsc_test_write_file ("notes.txt", "hello", 5);
  g_assert_null (lsc_model_load (px, &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNKNOWN_FORMAT, "notes.txt", NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/llama2c/stories260K", test_stories260k);
  g_test_add_func ("/engine/llama2c/babyllama-105", test_babyllama);
  g_test_add_func ("/engine/llama2c/unshared-classifier", test_unshared_classifier);
  g_test_add_func ("/engine/llama2c/version1", test_version1);
  g_test_add_func ("/engine/llama2c/malformed", test_malformed);
  return g_test_run ();
}
