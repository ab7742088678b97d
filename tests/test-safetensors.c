/* SPDX-License-Identifier: MIT
 *
 * Tests of the safetensors parser and the Hugging Face directory loader:
 * the shared tiny checkpoints, copies the test writes in other layouts
 * (f16, f32, sharded, Hub cache), and malformed files and configs.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <json-c/json.h>
#include <string.h>
#include <unistd.h>

#include "lsc-error.h"
#include "lsc-kernels.h"
#include "lsc-model.h"
#include "lsc-model-private.h"
#include "lsc-test-util.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (json_object, json_object_put)

/* --- helpers ------------------------------------------------------------- */

static guint32
float_bits (float f)
{
  guint32 u;
  memcpy (&u, &f, sizeof u);
  return u;
}

/* A tensor to write. */
typedef struct {
  const char *name;
  const char *dtype;              /* safetensors dtype name */
  int n_dims;
  gint64 shape[LSC_MAX_DIMS];     /* (n_dims) */
  const void *data;               /* (n_bytes) */
  gsize n_bytes;
} TestTensor;

/* A safetensors file: u64 header length, JSON header padded with spaces to
 * a multiple of 8, then the tensors' bytes in order. */
static GBytes *
safetensors_build (const TestTensor *tensors, guint n)
{
  g_autoptr(json_object) header = json_object_new_object ();
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GString) json = NULL;
  guint64 offset = 0, len_le;

  for (guint i = 0; i < n; i++)
    {
      json_object *desc = json_object_new_object ();
      json_object *shape = json_object_new_array ();
      json_object *offsets = json_object_new_array ();

      for (int d = 0; d < tensors[i].n_dims; d++)
        json_object_array_add (shape, json_object_new_int64 (tensors[i].shape[d]));
      json_object_array_add (offsets, json_object_new_int64 ((gint64) offset));
      offset += tensors[i].n_bytes;
      json_object_array_add (offsets, json_object_new_int64 ((gint64) offset));
      json_object_object_add (desc, "dtype", json_object_new_string (tensors[i].dtype));
      json_object_object_add (desc, "shape", shape);
      json_object_object_add (desc, "data_offsets", offsets);
      json_object_object_add (header, tensors[i].name, desc);
    }
  json = g_string_new (json_object_to_json_string_ext (header, JSON_C_TO_STRING_PLAIN));
  while (json->len % 8 != 0)
    g_string_append_c (json, ' ');

  len_le = GUINT64_TO_LE ((guint64) json->len);
  g_byte_array_append (out, (const guint8 *) &len_le, 8);
  g_byte_array_append (out, (const guint8 *) json->str, json->len);
  for (guint i = 0; i < n; i++)
    g_byte_array_append (out, tensors[i].data, tensors[i].n_bytes);
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

/* A safetensors file with the given header text and `data_len` zero bytes. */
static GBytes *
safetensors_raw (const char *header, gsize data_len)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  guint64 len_le = GUINT64_TO_LE ((guint64) strlen (header));
  g_autofree guint8 *zeros = g_malloc0 (data_len + 1);

  g_byte_array_append (out, (const guint8 *) &len_le, 8);
  g_byte_array_append (out, (const guint8 *) header, strlen (header));
  g_byte_array_append (out, zeros, data_len);
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

static void
write_bytes (const char *path, GBytes *bytes)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *parent = g_path_get_dirname (path);

  g_mkdir_with_parents (parent, 0700);
  g_file_set_contents (path, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), &error);
  g_assert_no_error (error);
}

static void
write_text (const char *path, const char *text)
{
  g_autoptr(GBytes) bytes = g_bytes_new_static (text, strlen (text));
  write_bytes (path, bytes);
}

/* A fresh directory tmpdir/name. */
static char *
make_dir (const char *name)
{
  char *dir = g_build_filename (lsc_test_tmpdir (), name, NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  return dir;
}

/* The shared checkpoint folder models/random/<name>, or NULL (test skipped). */
static char *
shared_model (const char *name)
{
  g_autofree char *rel = g_build_filename ("models", "random", name, NULL);
  return lsc_test_shared_path (rel);
}

static json_object *
read_json (const char *path)
{
  g_autoptr(GBytes) bytes = lsc_test_read_file (path);
  g_autofree char *text = g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  json_object *obj = json_tokener_parse (text);
  g_assert_nonnull (obj);
  return obj;
}

static void
write_json (const char *path, json_object *obj)
{
  write_text (path, json_object_to_json_string_ext (obj, JSON_C_TO_STRING_PRETTY));
}

/* dst/config.json <- src's config.json with `key` set to the JSON text
 * `value` (NULL: key removed); `key` NULL copies it unchanged. */
static void
write_config_variant (const char *src, const char *dst, const char *key, const char *value)
{
  g_autofree char *src_path = g_build_filename (src, "config.json", NULL);
  g_autofree char *dst_path = g_build_filename (dst, "config.json", NULL);
  g_autoptr(json_object) config = read_json (src_path);

  if (key != NULL && value == NULL)
    json_object_object_del (config, key);
  else if (key != NULL)
    {
      json_object *v = json_tokener_parse (value);
      g_assert_true (v != NULL || g_str_equal (value, "null"));
      json_object_object_add (config, key, v);
    }
  write_json (dst_path, config);
}

/* dst/model.safetensors -> src/model.safetensors (a symlink: no copy). */
static void
link_weights (const char *src, const char *dst)
{
  g_autofree char *target = g_build_filename (src, "model.safetensors", NULL);
  g_autofree char *link = g_build_filename (dst, "model.safetensors", NULL);

  g_assert_cmpint (symlink (target, link), ==, 0);
}

/* Loads tmpdir/<name> made from `base`'s weights and a config variant. */
static LscModel *
load_config_variant (const char *base, const char *name, const char *key, const char *value,
                     GError **error)
{
  g_autofree char *dir = make_dir (name);

  write_config_variant (base, dir, key, value);
  link_weights (base, dir);
  return lsc_model_load (dir, error);
}

/* Every element of `tensor` as float32 (n_elements). */
static float *
tensor_f32 (const LscTensor *tensor)
{
  g_autoptr(GError) error = NULL;
  float *out = g_new (float, lsc_tensor_n_elements (tensor));

  g_assert_true (lsc_tensor_to_f32 (tensor, out, &error));
  g_assert_no_error (error);
  return out;
}

/* Writes every tensor of `model` to dst/<file> in `dtype` ("F32", "F16", or
 * NULL: the stored bytes unchanged), tensors [first, first + n). */
static void
write_tensors (const LscModel *model, guint first, guint n, const char *dtype, const char *path)
{
  g_autoptr(GArray) tensors = g_array_new (FALSE, TRUE, sizeof (TestTensor));
  g_autoptr(GPtrArray) buffers = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GBytes) bytes = NULL;

  for (guint i = first; i < first + n; i++)
    {
      const LscTensor *t = lsc_model_get_tensor (model, i);
      gint64 n_elements = lsc_tensor_n_elements (t);
      TestTensor out = { t->name, NULL, t->n_dims, { 0 }, t->data, t->n_bytes };

      memcpy (out.shape, t->shape, sizeof out.shape);
      out.dtype = t->dtype == LSC_DTYPE_F32 ? "F32" : t->dtype == LSC_DTYPE_F16 ? "F16" : "BF16";
      if (dtype != NULL && g_str_equal (dtype, "F32"))
        {
          float *f = tensor_f32 (t);
          g_ptr_array_add (buffers, f);
          out.dtype = "F32";
          out.data = f;
          out.n_bytes = (gsize) n_elements * 4;
        }
      else if (dtype != NULL && g_str_equal (dtype, "F16"))
        {
          g_autofree float *f = tensor_f32 (t);
          guint16 *h = g_new (guint16, n_elements);
          for (gint64 k = 0; k < n_elements; k++)
            h[k] = lsc_f32_to_f16_1 (f[k]);
          g_ptr_array_add (buffers, h);
          out.dtype = "F16";
          out.data = h;
          out.n_bytes = (gsize) n_elements * 2;
        }
      g_array_append_val (tensors, out);
    }
  bytes = safetensors_build ((const TestTensor *) (void *) tensors->data, tensors->len);
  write_bytes (path, bytes);
}

/* Loads the shared checkpoint `name`, failing the test on error. */
static LscModel *
load_shared (const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = shared_model (name);
  LscModel *model;

  if (dir == NULL)
    return NULL;
  model = lsc_model_load (dir, &error);
  g_assert_no_error (error);
  g_assert_nonnull (model);
  return model;
}

/* Element `index` of tensor `name`, widened to f32. */
static float
tensor_value (const LscModel *model, const char *name, gint64 index)
{
  const LscTensor *t = lsc_model_find_tensor (model, name);
  g_autofree float *f = NULL;

  g_assert_nonnull (t);
  g_assert_cmpint (index, <, lsc_tensor_n_elements (t));
  f = tensor_f32 (t);
  return f[index];
}

static void
assert_shape (const LscTensor *t, int n_dims, gint64 d0, gint64 d1)
{
  g_assert_nonnull (t);
  g_assert_cmpint (t->n_dims, ==, n_dims);
  g_assert_cmpint (t->shape[0], ==, d0);
  if (n_dims > 1)
    g_assert_cmpint (t->shape[1], ==, d1);
}

/* --- the shared checkpoints ---------------------------------------------- */

static void
test_tiny_llama (void)
{
  g_autoptr(LscModel) model = load_shared ("tiny-llama");
  const LscModelConfig *c;
  const LscTensor *t;

  if (model == NULL)
    return;
  c = lsc_model_get_config (model);
  g_assert_cmpint (lsc_model_get_format (model), ==, LSC_FORMAT_HF);
  g_assert_cmpint (c->arch, ==, LSC_ARCH_LLAMA);
  g_assert_cmpint (c->vocab_size, ==, 105);
  g_assert_cmpint (c->dim, ==, 64);
  g_assert_cmpint (c->n_layers, ==, 3);
  g_assert_cmpint (c->n_heads, ==, 4);
  g_assert_cmpint (c->n_kv_heads, ==, 2);
  g_assert_cmpint (c->head_dim, ==, 16);
  g_assert_cmpint (c->hidden_dim, ==, 160);
  g_assert_cmpfloat (c->norm_eps, ==, 1e-5);
  g_assert_cmpfloat (c->rope_theta, ==, 10000.0);
  g_assert_cmpint (c->rope_layout, ==, LSC_ROPE_NEOX);
  g_assert_cmpint (c->rope_scaling.type, ==, LSC_ROPE_SCALING_NONE);
  g_assert_cmpfloat (c->rope_scaling.factor, ==, 1.0);
  g_assert_cmpint (c->max_position, ==, 4096);
  g_assert_cmpint (c->sliding_window, ==, 0);
  g_assert_false (c->tied_embeddings);
  g_assert_false (c->attn_qkv_bias);
  g_assert_cmpint (c->bos_id, ==, 1);
  g_assert_cmpint (c->eos_id, ==, 2);
  g_assert_cmpint (c->ssm_d_inner, ==, 0);

  g_assert_cmpuint (lsc_model_get_n_tensors (model), ==, 30);
  /* In file order: the embedding first, lm_head last. */
  g_assert_cmpstr (lsc_model_get_tensor (model, 0)->name, ==, "model.embed_tokens.weight");
  g_assert_cmpstr (lsc_model_get_tensor (model, 29)->name, ==, "lm_head.weight");

  t = lsc_model_find_tensor (model, "model.layers.1.self_attn.k_proj.weight");
  assert_shape (t, 2, 32, 64);
  g_assert_cmpint (t->dtype, ==, LSC_DTYPE_F32);
  g_assert_cmpuint (t->n_bytes, ==, 32 * 64 * 4);
  g_assert_cmpuint (t->file_index, ==, 0);
  g_assert_cmpuint (t->file_offset, ==, 8 + 3056 + 216064);
  g_assert_true (lsc_model_get_weight (model, LSC_TENSOR_ATTN_K, 1) == t);
  assert_shape (lsc_model_find_tensor (model, "model.norm.weight"), 1, 64, 0);
  assert_shape (lsc_model_find_tensor (model, "lm_head.weight"), 2, 105, 64);

  /* Values read from the file with Python's struct module. */
  g_assert_cmphex (float_bits (tensor_value (model, "model.embed_tokens.weight", 0)), ==, 0x3e33c360);
  g_assert_cmphex (float_bits (tensor_value (model, "model.embed_tokens.weight", 6719)), ==, 0x3eb329ee);
  g_assert_cmphex (float_bits (tensor_value (model, "model.layers.1.self_attn.k_proj.weight",
                                             7 * 64 + 3)), ==, 0xbd8e56f9);
  g_assert_cmphex (float_bits (tensor_value (model, "model.norm.weight", 5)), ==, 0x3f7d192e);
  g_assert_cmphex (float_bits (tensor_value (model, "lm_head.weight", 100)), ==, 0xbbc897aa);
}

static void
test_tiny_qwen2 (void)
{
  g_autoptr(LscModel) model = load_shared ("tiny-qwen2");
  const LscModelConfig *c;
  const LscTensor *t;

  if (model == NULL)
    return;
  c = lsc_model_get_config (model);
  g_assert_cmpint (c->arch, ==, LSC_ARCH_QWEN2);
  g_assert_cmpint (c->vocab_size, ==, 105);
  g_assert_cmpint (c->dim, ==, 64);
  g_assert_cmpint (c->n_layers, ==, 3);
  g_assert_cmpint (c->n_heads, ==, 4);
  g_assert_cmpint (c->n_kv_heads, ==, 2);
  g_assert_cmpint (c->head_dim, ==, 16);
  g_assert_cmpint (c->hidden_dim, ==, 160);
  g_assert_cmpfloat (c->norm_eps, ==, 1e-5);
  g_assert_cmpfloat (c->rope_theta, ==, 1000000.0);
  g_assert_cmpint (c->rope_layout, ==, LSC_ROPE_NEOX);
  g_assert_cmpint (c->max_position, ==, 4096);
  g_assert_cmpint (c->sliding_window, ==, 0);
  g_assert_true (c->tied_embeddings);
  g_assert_true (c->attn_qkv_bias);
  g_assert_cmpint (c->bos_id, ==, 1);
  g_assert_cmpint (c->eos_id, ==, 2);

  g_assert_cmpuint (lsc_model_get_n_tensors (model), ==, 38);
  g_assert_null (lsc_model_find_tensor (model, "lm_head.weight"));
  for (guint i = 0; i < lsc_model_get_n_tensors (model); i++)
    g_assert_cmpint (lsc_model_get_tensor (model, i)->dtype, ==, LSC_DTYPE_BF16);
  t = lsc_model_find_tensor (model, "model.layers.2.self_attn.v_proj.bias");
  assert_shape (t, 1, 32, 0);
  g_assert_cmpuint (t->n_bytes, ==, 64);
  assert_shape (lsc_model_find_tensor (model, "model.layers.0.mlp.down_proj.weight"), 2, 64, 160);

  /* bf16 values read from the file with Python: 0xbf17, 0x3eca, 0xbdda. */
  g_assert_cmpfloat (tensor_value (model, "model.embed_tokens.weight", 0), ==, -0.58984375);
  g_assert_cmpfloat (tensor_value (model, "model.layers.2.self_attn.v_proj.bias", 31), ==, 0.39453125);
  g_assert_cmpfloat (tensor_value (model, "model.layers.0.mlp.down_proj.weight", 64 * 160 - 1),
                     ==, -0.1064453125);
}

static void
test_tiny_mamba (void)
{
  g_autoptr(LscModel) model = load_shared ("tiny-mamba");
  const LscModelConfig *c;
  const LscTensor *t;

  if (model == NULL)
    return;
  c = lsc_model_get_config (model);
  g_assert_cmpint (c->arch, ==, LSC_ARCH_MAMBA);
  g_assert_cmpint (c->vocab_size, ==, 112);
  g_assert_cmpint (c->dim, ==, 64);
  g_assert_cmpint (c->n_layers, ==, 3);
  g_assert_cmpint (c->ssm_d_inner, ==, 128);
  g_assert_cmpint (c->ssm_d_state, ==, 16);
  g_assert_cmpint (c->ssm_d_conv, ==, 4);
  g_assert_cmpint (c->ssm_dt_rank, ==, 4);
  g_assert_cmpfloat (c->norm_eps, ==, 1e-5);
  g_assert_true (c->ssm_conv_bias);
  g_assert_false (c->ssm_proj_bias);
  g_assert_true (c->tied_embeddings);
  g_assert_cmpint (c->n_heads, ==, 0);
  g_assert_cmpint (c->bos_id, ==, 1);
  g_assert_cmpint (c->eos_id, ==, 2);

  g_assert_cmpuint (lsc_model_get_n_tensors (model), ==, 32);
  /* conv1d.weight is [128, 1, 4] in the file, (128, 4) once loaded. */
  t = lsc_model_find_tensor (model, "backbone.layers.0.mixer.conv1d.weight");
  assert_shape (t, 2, 128, 4);
  g_assert_cmpuint (t->n_bytes, ==, 128 * 4 * 4);
  g_assert_true (lsc_model_get_weight (model, LSC_TENSOR_SSM_CONV1D, 0) == t);
  assert_shape (lsc_model_find_tensor (model, "backbone.layers.2.mixer.A_log"), 2, 128, 16);
  assert_shape (lsc_model_find_tensor (model, "backbone.layers.2.mixer.x_proj.weight"), 2, 36, 128);

  /* w[5, 0, 2], A_log[127, 15], embeddings[111, 63], read with Python. */
  g_assert_cmphex (float_bits (tensor_value (model, "backbone.layers.0.mixer.conv1d.weight",
                                             5 * 4 + 2)), ==, 0x3e58bf22);
  g_assert_cmphex (float_bits (tensor_value (model, "backbone.layers.2.mixer.A_log",
                                             127 * 16 + 15)), ==, 0x4030ddd8);
  g_assert_cmphex (float_bits (tensor_value (model, "backbone.embeddings.weight",
                                             111 * 64 + 63)), ==, 0xbe928a78);
}

/* --- copies in other layouts --------------------------------------------- */

static void
test_f16_copy (void)
{
  g_autoptr(LscModel) orig = load_shared ("tiny-llama");
  g_autoptr(LscModel) copy = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *src = shared_model ("tiny-llama");
  g_autofree char *dir = NULL;
  g_autofree char *weights = NULL;

  if (orig == NULL)
    return;
  dir = make_dir ("f16-llama");
  weights = g_build_filename (dir, "model.safetensors", NULL);
  write_config_variant (src, dir, NULL, NULL);
  write_tensors (orig, 0, lsc_model_get_n_tensors (orig), "F16", weights);

  copy = lsc_model_load (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (lsc_model_get_n_tensors (copy), ==, lsc_model_get_n_tensors (orig));
  for (guint i = 0; i < lsc_model_get_n_tensors (orig); i++)
    {
      const LscTensor *a = lsc_model_get_tensor (orig, i);
      const LscTensor *b = lsc_model_find_tensor (copy, a->name);
      g_autofree float *fa = tensor_f32 (a);
      g_autofree float *fb = NULL;
      gint64 n = lsc_tensor_n_elements (a);

      g_assert_nonnull (b);
      g_assert_cmpint (b->dtype, ==, LSC_DTYPE_F16);
      g_assert_cmpuint (b->n_bytes, ==, a->n_bytes / 2);
      g_assert_cmpint (b->n_dims, ==, a->n_dims);
      g_assert_cmpmem (b->shape, sizeof b->shape, a->shape, sizeof a->shape);
      fb = tensor_f32 (b);
      for (gint64 k = 0; k < n; k++)
        g_assert_cmphex (float_bits (fb[k]), ==,
                         float_bits (lsc_f16_to_f32_1 (lsc_f32_to_f16_1 (fa[k]))));
    }
}

static void
test_bf16_to_f32_copy (void)
{
  g_autoptr(LscModel) orig = load_shared ("tiny-qwen2");
  g_autoptr(LscModel) copy = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *src = shared_model ("tiny-qwen2");
  g_autofree char *dir = NULL;
  g_autofree char *weights = NULL;

  if (orig == NULL)
    return;
  dir = make_dir ("f32-qwen2");
  weights = g_build_filename (dir, "model.safetensors", NULL);
  write_config_variant (src, dir, NULL, NULL);
  write_tensors (orig, 0, lsc_model_get_n_tensors (orig), "F32", weights);

  copy = lsc_model_load (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_model_get_config (copy)->arch, ==, LSC_ARCH_QWEN2);
  g_assert_cmpuint (lsc_model_get_n_tensors (copy), ==, 38);
  for (guint i = 0; i < lsc_model_get_n_tensors (orig); i++)
    {
      const LscTensor *a = lsc_model_get_tensor (orig, i);
      const LscTensor *b = lsc_model_find_tensor (copy, a->name);
      g_autofree float *fa = tensor_f32 (a);
      g_autofree float *fb = NULL;

      g_assert_nonnull (b);
      g_assert_cmpint (b->dtype, ==, LSC_DTYPE_F32);
      g_assert_cmpuint (b->n_bytes, ==, a->n_bytes * 2);
      fb = tensor_f32 (b);
      g_assert_cmpmem (fa, lsc_tensor_n_elements (a) * 4, fb, lsc_tensor_n_elements (b) * 4);
      /* and the f32 file holds those values byte for byte */
      g_assert_cmpmem (b->data, b->n_bytes, fa, lsc_tensor_n_elements (a) * 4);
    }
}

/* dir/ <- tiny-llama's config and its tensors in three shards, named in
 * weight_map. Shard s holds tensors [bounds[s], bounds[s + 1]). */
static void
write_sharded (const LscModel *orig, const char *src, const char *dir)
{
  const guint n = lsc_model_get_n_tensors (orig);
  const guint bounds[4] = { 0, 10, 21, n };
  g_autoptr(json_object) index = json_object_new_object ();
  json_object *weight_map = json_object_new_object ();
  g_autofree char *index_path = g_build_filename (dir, "model.safetensors.index.json", NULL);

  write_config_variant (src, dir, NULL, NULL);
  for (guint s = 0; s < 3; s++)
    {
      g_autofree char *file = g_strdup_printf ("model-%05u-of-00003.safetensors", s + 1);
      g_autofree char *path = g_build_filename (dir, file, NULL);

      write_tensors (orig, bounds[s], bounds[s + 1] - bounds[s], NULL, path);
      for (guint i = bounds[s]; i < bounds[s + 1]; i++)
        json_object_object_add (weight_map, lsc_model_get_tensor (orig, i)->name,
                                json_object_new_string (file));
    }
  json_object_object_add (index, "metadata", json_object_new_object ());
  json_object_object_add (index, "weight_map", weight_map);
  write_json (index_path, index);
}

static void
test_sharded_copy (void)
{
  g_autoptr(LscModel) orig = load_shared ("tiny-llama");
  g_autoptr(LscModel) copy = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *src = shared_model ("tiny-llama");
  g_autofree char *dir = NULL;

  if (orig == NULL)
    return;
  dir = make_dir ("sharded-llama");
  write_sharded (orig, src, dir);

  copy = lsc_model_load (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (lsc_model_get_n_tensors (copy), ==, 30);
  for (guint i = 0; i < lsc_model_get_n_tensors (orig); i++)
    {
      const LscTensor *a = lsc_model_get_tensor (orig, i);
      const LscTensor *b = lsc_model_find_tensor (copy, a->name);

      g_assert_nonnull (b);
      g_assert_cmpstr (lsc_model_get_tensor (copy, i)->name, ==, a->name);
      g_assert_cmpuint (b->file_index, ==, i < 10 ? 0 : i < 21 ? 1 : 2);
      g_assert_cmpint (b->dtype, ==, a->dtype);
      g_assert_cmpmem (b->shape, sizeof b->shape, a->shape, sizeof a->shape);
      g_assert_cmpmem (b->data, b->n_bytes, a->data, a->n_bytes);
    }
  g_assert_cmpint (lsc_model_get_config (copy)->n_kv_heads, ==, 2);
  g_assert_true (lsc_model_get_weight (copy, LSC_TENSOR_OUTPUT, -1)
                 == lsc_model_find_tensor (copy, "lm_head.weight"));
}

/* repo/blobs/<sha256> <- the file at `src`; repo/snapshots/<rev>/<name> -> it. */
static void
add_blob (const char *repo, const char *rev, const char *name, GBytes *contents)
{
  g_autofree char *sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, contents);
  g_autofree char *blob = g_build_filename (repo, "blobs", sha, NULL);
  g_autofree char *link = g_build_filename (repo, "snapshots", rev, name, NULL);
  g_autofree char *link_dir = g_path_get_dirname (link);
  g_autofree char *target = g_build_filename ("..", "..", "blobs", sha, NULL);

  write_bytes (blob, contents);
  g_assert_cmpint (g_mkdir_with_parents (link_dir, 0700), ==, 0);
  g_assert_cmpint (symlink (target, link), ==, 0);
}

static void
test_hub_cache (void)
{
  static const char rev[] = "0123456789abcdef0123456789abcdef01234567";
  g_autoptr(GError) error = NULL;
  g_autofree char *src = shared_model ("tiny-llama");
  g_autofree char *repo = NULL, *refs_main = NULL, *snapshot = NULL, *resolved = NULL;
  g_autofree char *config_path = NULL, *weights_path = NULL, *lone = NULL;
  g_autofree char *broken = NULL, *broken_snapshot = NULL;
  g_autoptr(GBytes) config = NULL, weights = NULL, stale = NULL;
  g_autoptr(LscModel) model = NULL, model2 = NULL, model3 = NULL, model4 = NULL;

  if (src == NULL)
    return;
  config_path = g_build_filename (src, "config.json", NULL);
  weights_path = g_build_filename (src, "model.safetensors", NULL);
  config = lsc_test_read_file (config_path);
  weights = lsc_test_read_file (weights_path);

  /* refs/main names the good snapshot; an older one holds no weights. */
  repo = make_dir ("hub/models--org--tiny-llama");
  add_blob (repo, rev, "config.json", config);
  add_blob (repo, rev, "model.safetensors", weights);
  stale = g_bytes_new_static ("{}", 2);
  add_blob (repo, "ffffffffffffffffffffffffffffffffffffffff", "config.json", stale);
  refs_main = g_build_filename (repo, "refs", "main", NULL);
  write_text (refs_main, "0123456789abcdef0123456789abcdef01234567\n");

  snapshot = g_build_filename (repo, "snapshots", rev, NULL);
  resolved = _lsc_hf_resolve_snapshot (repo);
  g_assert_cmpstr (resolved, ==, snapshot);
  g_clear_pointer (&resolved, g_free);
  resolved = _lsc_hf_resolve_snapshot (snapshot);
  g_assert_cmpstr (resolved, ==, snapshot);

  model = lsc_model_load (repo, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (lsc_model_get_n_tensors (model), ==, 30);
  g_assert_cmpint (lsc_model_get_config (model)->n_kv_heads, ==, 2);
  g_assert_cmphex (float_bits (tensor_value (model, "model.norm.weight", 5)), ==, 0x3f7d192e);

  /* The snapshot folder itself is an ordinary directory of symlinks. */
  model2 = lsc_model_load (snapshot, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (lsc_model_get_n_tensors (model2), ==, 30);

  /* Without refs/main, the only snapshot. */
  lone = make_dir ("hub/models--org--lone");
  add_blob (lone, rev, "config.json", config);
  add_blob (lone, rev, "model.safetensors", weights);
  model3 = lsc_model_load (lone, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (lsc_model_get_n_tensors (model3), ==, 30);

  /* Errors name the file inside the snapshot, not the blob. */
  broken = make_dir ("hub/models--org--broken");
  add_blob (broken, rev, "config.json", config);
  {
    g_autoptr(GBytes) cut = g_bytes_new_from_bytes (weights, 0, 1000);
    add_blob (broken, rev, "model.safetensors", cut);
  }
  model4 = lsc_model_load (broken, &error);
  g_assert_null (model4);
  broken_snapshot = g_build_filename ("snapshots", rev, "model.safetensors", NULL);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                         broken_snapshot, "header length 3056", NULL);
}

/* --- config variants that load ------------------------------------------- */

static void
test_config_variants (void)
{
  g_autofree char *llama = shared_model ("tiny-llama");
  g_autofree char *qwen2 = NULL;
  g_autoptr(GError) error = NULL;

  if (llama == NULL)
    return;
  qwen2 = shared_model ("tiny-qwen2");
  if (qwen2 == NULL)
    return;

  {
    g_autoptr(LscModel) m = load_config_variant (llama, "cfg-llama3", "rope_scaling",
        "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0,"
        " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}", &error);
    const LscRopeScaling *rs;
    g_assert_no_error (error);
    rs = &lsc_model_get_config (m)->rope_scaling;
    g_assert_cmpint (rs->type, ==, LSC_ROPE_SCALING_LLAMA3);
    g_assert_cmpfloat (rs->factor, ==, 8.0);
    g_assert_cmpfloat (rs->low_freq_factor, ==, 1.0);
    g_assert_cmpfloat (rs->high_freq_factor, ==, 4.0);
    g_assert_cmpint (rs->original_max_position, ==, 8192);
  }
  {
    g_autoptr(LscModel) m = load_config_variant (llama, "cfg-yarn", "rope_scaling",
        "{\"type\": \"yarn\", \"factor\": 4, \"original_max_position_embeddings\": 1024}", &error);
    const LscRopeScaling *rs;
    g_assert_no_error (error);
    rs = &lsc_model_get_config (m)->rope_scaling;
    g_assert_cmpint (rs->type, ==, LSC_ROPE_SCALING_YARN);
    g_assert_cmpfloat (rs->factor, ==, 4.0);
    g_assert_cmpint (rs->original_max_position, ==, 1024);
    g_assert_cmpfloat (rs->beta_fast, ==, 32.0);
    g_assert_cmpfloat (rs->beta_slow, ==, 1.0);
    g_assert_cmpfloat (rs->attention_factor, ==, 0.0);
  }
  {
    g_autoptr(LscModel) m = load_config_variant (llama, "cfg-linear", "rope_scaling",
        "{\"rope_type\": \"linear\", \"factor\": 2.5}", &error);
    g_assert_no_error (error);
    g_assert_cmpint (lsc_model_get_config (m)->rope_scaling.type, ==, LSC_ROPE_SCALING_LINEAR);
    g_assert_cmpfloat (lsc_model_get_config (m)->rope_scaling.factor, ==, 2.5);
  }
  {
    g_autoptr(LscModel) m = load_config_variant (llama, "cfg-default-rope", "rope_scaling",
        "{\"rope_type\": \"default\"}", &error);
    g_assert_no_error (error);
    g_assert_cmpint (lsc_model_get_config (m)->rope_scaling.type, ==, LSC_ROPE_SCALING_NONE);
    g_assert_cmpfloat (lsc_model_get_config (m)->rope_scaling.factor, ==, 1.0);
  }
  {
    /* head_dim null: hidden / heads; eos as a list; bos null. */
    g_autofree char *dir = make_dir ("cfg-mistral");
    g_autofree char *path = g_build_filename (dir, "config.json", NULL);
    g_autofree char *src_path = g_build_filename (llama, "config.json", NULL);
    g_autoptr(json_object) cfg = read_json (src_path);
    g_autoptr(LscModel) m = NULL;
    const LscModelConfig *c;

    json_object_object_add (cfg, "architectures", json_tokener_parse ("[\"MistralForCausalLM\"]"));
    json_object_object_add (cfg, "sliding_window", json_object_new_int (4096));
    json_object_object_add (cfg, "head_dim", NULL);
    json_object_object_add (cfg, "bos_token_id", NULL);
    json_object_object_add (cfg, "eos_token_id", json_tokener_parse ("[7, 2]"));
    json_object_object_del (cfg, "rope_theta");
    write_json (path, cfg);
    link_weights (llama, dir);
    m = lsc_model_load (dir, &error);
    g_assert_no_error (error);
    c = lsc_model_get_config (m);
    g_assert_cmpint (c->arch, ==, LSC_ARCH_MISTRAL);
    g_assert_cmpint (c->sliding_window, ==, 4096);
    g_assert_cmpint (c->head_dim, ==, 16);
    g_assert_cmpint (c->bos_id, ==, -1);
    g_assert_cmpint (c->eos_id, ==, 7);
    g_assert_cmpfloat (c->rope_theta, ==, 10000.0);
  }
  {
    /* No architectures: model_type decides. */
    g_autoptr(LscModel) m = load_config_variant (llama, "cfg-model-type", "architectures", NULL,
                                                 &error);
    g_assert_no_error (error);
    g_assert_cmpint (lsc_model_get_config (m)->arch, ==, LSC_ARCH_LLAMA);
  }
  {
    /* Qwen2's window applies only with use_sliding_window. */
    g_autofree char *dir = make_dir ("cfg-qwen2-window");
    g_autofree char *path = g_build_filename (dir, "config.json", NULL);
    g_autofree char *src_path = g_build_filename (qwen2, "config.json", NULL);
    g_autoptr(json_object) cfg = read_json (src_path);
    g_autoptr(LscModel) m = NULL, m2 = NULL;
    g_autofree char *dir2 = make_dir ("cfg-qwen2-nowindow");
    g_autofree char *path2 = g_build_filename (dir2, "config.json", NULL);

    json_object_object_add (cfg, "sliding_window", json_object_new_int (32));
    json_object_object_add (cfg, "max_window_layers", json_object_new_int (2));
    write_json (path2, cfg);
    link_weights (qwen2, dir2);
    m2 = lsc_model_load (dir2, &error);
    g_assert_no_error (error);
    g_assert_cmpint (lsc_model_get_config (m2)->sliding_window, ==, 0);

    json_object_object_add (cfg, "use_sliding_window", json_object_new_boolean (TRUE));
    write_json (path, cfg);
    link_weights (qwen2, dir);
    m = lsc_model_load (dir, &error);
    g_assert_no_error (error);
    g_assert_cmpint (lsc_model_get_config (m)->sliding_window, ==, 32);
    g_assert_cmpint (lsc_model_get_config (m)->max_window_layers, ==, 2);
  }
}

/* --- malformed safetensors ------------------------------------------------ */

/* Loads tmpdir/<name>/ holding tiny-llama's config.json and `weights` as
 * model.safetensors; returns the error (the load must fail). */
static GError *
load_bad_weights (const char *name, GBytes *weights)
{
  g_autofree char *src = shared_model ("tiny-llama");
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autoptr(LscModel) model = NULL;
  GError *error = NULL;

  g_assert_nonnull (src);
  dir = make_dir (name);
  path = g_build_filename (dir, "model.safetensors", NULL);
  write_config_variant (src, dir, NULL, NULL);
  write_bytes (path, weights);
  model = lsc_model_load (dir, &error);
  g_assert_null (model);
  return error;
}

static GError *
load_bad_header (const char *name, const char *header, gsize data_len)
{
  g_autoptr(GBytes) bytes = safetensors_raw (header, data_len);
  return load_bad_weights (name, bytes);
}

static void
test_bad_safetensors (void)
{
  g_autofree char *src = shared_model ("tiny-llama");
  GError *error;

  if (src == NULL)
    return;

  {
    g_autoptr(GBytes) tiny = g_bytes_new_static ("\x10\0\0\0", 4);
    error = load_bad_weights ("st-tiny", tiny);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                           "model.safetensors", "header length", "4 bytes", NULL);
    g_clear_error (&error);
  }
  {
    /* A header length of 200 with only 50 header bytes there. */
    g_autoptr(GBytes) full = safetensors_raw ("{\"__metadata__\": {}}", 192);
    g_autoptr(GBytes) cut = g_bytes_new_from_bytes (full, 0, 58);
    guint8 bytes[58];
    guint64 len = GUINT64_TO_LE (200);
    g_autoptr(GBytes) patched = NULL;

    memcpy (bytes, g_bytes_get_data (cut, NULL), 58);
    memcpy (bytes, &len, 8);
    patched = g_bytes_new (bytes, sizeof bytes);
    error = load_bad_weights ("st-header-cut", patched);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                           "model.safetensors", "header length 200", "58 bytes", NULL);
    g_clear_error (&error);
  }
  {
    guint8 bytes[16] = { 0 };
    guint64 len = GUINT64_TO_LE (G_GUINT64_CONSTANT (0xfffffffffffffff0));
    g_autoptr(GBytes) huge = NULL;

    memcpy (bytes, &len, 8);
    huge = g_bytes_new (bytes, sizeof bytes);
    error = load_bad_weights ("st-header-huge", huge);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                           "model.safetensors", "header length 18446744073709551600",
                           "past the end", NULL);
    g_clear_error (&error);
  }

  {
    /* A header over the 100 MiB cap, in a sparse file that holds it all. */
    const guint64 header_len = 100 * 1024 * 1024 + 1;
    guint64 len = GUINT64_TO_LE (header_len);
    g_autofree char *dir = make_dir ("st-header-cap");
    g_autofree char *path = g_build_filename (dir, "model.safetensors", NULL);
    g_autoptr(GBytes) head = g_bytes_new (&len, 8);
    g_autoptr(LscModel) m = NULL;

    write_config_variant (src, dir, NULL, NULL);
    write_bytes (path, head);
    g_assert_cmpint (truncate (path, (off_t) (8 + header_len)), ==, 0);
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "model.safetensors",
                           "header length 104857601 is over the 104857600-byte limit", NULL);
    g_clear_error (&error);
  }

  error = load_bad_header ("st-not-json", "{\"model.norm.weight\": {\"dtype\": ", 0);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                         "model.safetensors", "header", "not valid JSON", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-trailing", "{} x", 0);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                         "model.safetensors", "not valid JSON", "after the value", NULL);
  g_clear_error (&error);

  /* json-c alone would keep the second entry and lose the first */
  error = load_bad_header ("st-duplicate",
                           "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                           " \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                         "model.safetensors", "$.w: duplicate key", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-array", "[1, 2, 3]", 0);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                         "model.safetensors", "header", "expected a JSON object", "array", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-no-offsets",
                           "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [64]}}", 256);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "model.safetensors",
                         "tensor 'model.norm.weight'", "missing field 'data_offsets'", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-offsets-type",
                           "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [64],"
                           " \"data_offsets\": [0, \"256\"]}}", 256);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "model.safetensors",
                         "tensor 'model.norm.weight'", "data_offsets", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-past-end",
                           "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [64],"
                           " \"data_offsets\": [0, 256]}}", 16);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED, "model.safetensors",
                         "tensor 'model.norm.weight'", "data_offsets [0, 256]",
                         "past the end of the data section (16 bytes)", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-mismatch",
                           "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [64],"
                           " \"data_offsets\": [8, 4096]}}", 8192);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "model.safetensors",
                         "tensor 'model.norm.weight': data_offsets [8, 4096] do not match "
                         "shape [64] of F32 (256 bytes)", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-reversed",
                           "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [0],"
                           " \"data_offsets\": [16, 8]}}", 32);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "model.safetensors",
                         "data_offsets [16, 8] do not match", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-overflow",
                           "{\"model.norm.weight\": {\"dtype\": \"F32\","
                           " \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 0]}}", 0);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "model.safetensors",
                         "tensor 'model.norm.weight'", "shape [4294967296, 4294967296]",
                         "overflows 64 bits", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-negative",
                           "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [-64],"
                           " \"data_offsets\": [0, 256]}}", 256);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "model.safetensors",
                         "shape [-64]", "not a non-negative integer", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-5d",
                           "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [1, 1, 1, 1, 64],"
                           " \"data_offsets\": [0, 256]}}", 256);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, "model.safetensors",
                         "shape [1, 1, 1, 1, 64] has 5 dimensions", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-f64",
                           "{\"model.norm.weight\": {\"dtype\": \"F64\", \"shape\": [64],"
                           " \"data_offsets\": [0, 512]}}", 512);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                         "model.safetensors", "tensor 'model.norm.weight'", "F64", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-f8",
                           "{\"model.norm.weight\": {\"dtype\": \"F8_E4M3\", \"shape\": [64],"
                           " \"data_offsets\": [0, 64]}}", 64);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                         "tensor 'model.norm.weight'", "F8_E4M3", NULL);
  g_clear_error (&error);

  error = load_bad_header ("st-dtype-type",
                           "{\"model.norm.weight\": {\"dtype\": 32, \"shape\": [64],"
                           " \"data_offsets\": [0, 256]}}", 256);
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                         "tensor 'model.norm.weight'", "dtype: expected a string", NULL);
  g_clear_error (&error);

  /* A well-formed file whose tensors do not fit the config fails in the binder. */
  error = load_bad_header ("st-missing-tensors",
                           "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [64],"
                           " \"data_offsets\": [0, 256]}, \"__metadata__\": {\"format\": \"pt\"}}",
                           256);
  g_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_MISSING_TENSOR);
  g_clear_error (&error);
}

/* Parses a header directly, without a config: the parser on its own. */
static void
test_parser_direct (void)
{
  static const float values[6] = { 1.5f, -2.0f, 0.25f, 3.0f, -0.125f, 8.0f };
  const TestTensor tensors[] = {
    { "a.conv1d.weight", "F32", 3, { 2, 1, 3 }, values, sizeof values },
    { "scalar", "F32", 0, { 0 }, values + 5, 4 },
    { "empty", "F32", 2, { 0, 7 }, NULL, 0 },
  };
  g_autoptr(GBytes) bytes = safetensors_build (tensors, G_N_ELEMENTS (tensors));
  g_autofree char *path = g_build_filename (lsc_test_tmpdir (), "direct", "x.safetensors", NULL);
  g_autoptr(LscModel) model = _lsc_model_new (path, LSC_FORMAT_HF);
  g_autoptr(GError) error = NULL;
  const LscTensor *conv, *scalar, *empty;
  float out[6];
  guint file_index = 99;

  write_bytes (path, bytes);
  g_assert_true (_lsc_safetensors_add_file (model, path, &file_index, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (file_index, ==, 0);
  g_assert_cmpuint (lsc_model_get_n_tensors (model), ==, 3);

  conv = lsc_model_find_tensor (model, "a.conv1d.weight");
  assert_shape (conv, 2, 2, 3);
  g_assert_true (lsc_tensor_to_f32 (conv, out, &error));
  g_assert_cmpmem (out, 6 * sizeof (float), values, sizeof values);

  scalar = lsc_model_find_tensor (model, "scalar");
  g_assert_cmpint (scalar->n_dims, ==, 0);
  g_assert_cmpint (lsc_tensor_n_elements (scalar), ==, 1);
  g_assert_true (lsc_tensor_to_f32 (scalar, out, &error));
  g_assert_cmpfloat (out[0], ==, 8.0f);

  empty = lsc_model_find_tensor (model, "empty");
  assert_shape (empty, 2, 0, 7);
  g_assert_cmpuint (empty->n_bytes, ==, 0);

  /* The same file again: duplicate names. */
  g_assert_false (_lsc_safetensors_add_file (model, path, &file_index, &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                         "x.safetensors", "a.conv1d.weight", NULL);
}

/* --- malformed configs --------------------------------------------------- */

static void
test_bad_config (void)
{
  g_autofree char *llama = shared_model ("tiny-llama");
  g_autoptr(GError) error = NULL;

  if (llama == NULL)
    return;

  {
    g_autofree char *dir = make_dir ("cfg-absent");
    g_autoptr(LscModel) m = NULL;
    link_weights (llama, dir);
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND,
                           "cfg-absent", "config.json", NULL);
    g_clear_error (&error);
  }
  {
    g_autofree char *dir = make_dir ("cfg-not-json");
    g_autofree char *path = g_build_filename (dir, "config.json", NULL);
    g_autoptr(LscModel) m = NULL;
    write_text (path, "{\"hidden_size\": 64,");
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                           "config.json", "not valid JSON", NULL);
    g_clear_error (&error);
  }

#define ASSERT_VARIANT_FAILS(name, key, value, code, ...) \
  G_STMT_START { \
    g_autoptr(LscModel) m_ = load_config_variant (llama, name, key, value, &error); \
    g_assert_null (m_); \
    lsc_test_assert_error (error, LSC_MODEL_ERROR, code, "config.json", __VA_ARGS__, NULL); \
    g_clear_error (&error); \
  } G_STMT_END

  ASSERT_VARIANT_FAILS ("cfg-string", "hidden_size", "\"64\"", LSC_MODEL_ERROR_BAD_CONFIG,
                        "'hidden_size'", "expected an integer, found string \"64\"");
  ASSERT_VARIANT_FAILS ("cfg-missing", "num_hidden_layers", NULL, LSC_MODEL_ERROR_BAD_CONFIG,
                        "'num_hidden_layers' is missing");
  ASSERT_VARIANT_FAILS ("cfg-float", "intermediate_size", "160.5", LSC_MODEL_ERROR_BAD_CONFIG,
                        "'intermediate_size'", "expected an integer", "double");
  ASSERT_VARIANT_FAILS ("cfg-zero-heads", "num_attention_heads", "0",
                        LSC_MODEL_ERROR_BAD_CONFIG, "'num_attention_heads' = 0 is out of range");
  ASSERT_VARIANT_FAILS ("cfg-many-heads", "num_attention_heads", "1000000",
                        LSC_MODEL_ERROR_BAD_CONFIG, "'num_attention_heads' = 1000000");
  ASSERT_VARIANT_FAILS ("cfg-huge-dim", "hidden_size", "99999999999",
                        LSC_MODEL_ERROR_BAD_CONFIG, "'hidden_size' = 99999999999 is out of range");
  ASSERT_VARIANT_FAILS ("cfg-kv", "num_key_value_heads", "3", LSC_MODEL_ERROR_BAD_CONFIG,
                        "'num_key_value_heads' = 3 does not divide 'num_attention_heads' = 4");
  ASSERT_VARIANT_FAILS ("cfg-heads-divide", "num_attention_heads", "6", LSC_MODEL_ERROR_BAD_CONFIG,
                        "'num_attention_heads' = 6 does not divide 'hidden_size' = 64");
  ASSERT_VARIANT_FAILS ("cfg-eps", "rms_norm_eps", "-1e-5", LSC_MODEL_ERROR_BAD_CONFIG,
                        "'rms_norm_eps' = -1e-5", "positive");
  ASSERT_VARIANT_FAILS ("cfg-tie", "tie_word_embeddings", "\"yes\"", LSC_MODEL_ERROR_BAD_CONFIG,
                        "'tie_word_embeddings'", "expected a boolean");
  ASSERT_VARIANT_FAILS ("cfg-eos", "eos_token_id", "\"</s>\"", LSC_MODEL_ERROR_BAD_CONFIG,
                        "'eos_token_id'", "expected a token id");
  ASSERT_VARIANT_FAILS ("cfg-arch", "architectures", "[\"BertForMaskedLM\"]",
                        LSC_MODEL_ERROR_UNSUPPORTED_ARCH, "architectures[0]", "BertForMaskedLM");
  ASSERT_VARIANT_FAILS ("cfg-arch-type", "architectures", "\"LlamaForCausalLM\"",
                        LSC_MODEL_ERROR_BAD_CONFIG, "'architectures'", "expected a list");
  ASSERT_VARIANT_FAILS ("cfg-rope-type", "rope_scaling",
                        "{\"rope_type\": \"longrope\", \"factor\": 4.0}",
                        LSC_MODEL_ERROR_BAD_CONFIG, "'rope_scaling.rope_type'", "longrope");
  ASSERT_VARIANT_FAILS ("cfg-rope-factor", "rope_scaling", "{\"type\": \"linear\"}",
                        LSC_MODEL_ERROR_BAD_CONFIG, "'rope_scaling.factor' is missing");
  ASSERT_VARIANT_FAILS ("cfg-rope-llama3", "rope_scaling",
                        "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0,"
                        " \"original_max_position_embeddings\": 8192}",
                        LSC_MODEL_ERROR_BAD_CONFIG, "'rope_scaling.high_freq_factor' is missing");
  ASSERT_VARIANT_FAILS ("cfg-rope-kind", "rope_scaling", "[2.0]",
                        LSC_MODEL_ERROR_BAD_CONFIG, "'rope_scaling'", "expected an object");

  {
    /* Unknown model_type without architectures. */
    g_autofree char *dir = make_dir ("cfg-model-type-bad");
    g_autofree char *path = g_build_filename (dir, "config.json", NULL);
    g_autoptr(LscModel) m = NULL;
    write_text (path, "{\"model_type\": \"gpt2\", \"hidden_size\": 64}");
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_ARCH,
                           "config.json", "model_type", "gpt2", NULL);
    g_clear_error (&error);
  }
  {
    /* Mamba-2 whose heads do not tile the inner size. */
    g_autofree char *dir = make_dir ("cfg-mamba2");
    g_autofree char *path = g_build_filename (dir, "config.json", NULL);
    g_autoptr(LscModel) m = NULL;
    write_text (path, "{\"architectures\": [\"Mamba2ForCausalLM\"], \"hidden_size\": 64,"
                " \"num_hidden_layers\": 2, \"vocab_size\": 100, \"expand\": 2,"
                " \"num_heads\": 4, \"head_dim\": 16, \"n_groups\": 1}");
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG, "config.json",
                           "'num_heads' * 'head_dim' = 4 * 16 does not equal the inner size 128",
                           NULL);
    g_clear_error (&error);
  }
  {
    g_autofree char *mamba = shared_model ("tiny-mamba");
    g_assert_nonnull (mamba);
    {
      g_autoptr(LscModel) m = load_config_variant (mamba, "cfg-mamba-dt", "time_step_rank",
                                                   "\"fast\"", &error);
      g_assert_null (m);
      lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG, "config.json",
                             "'time_step_rank'", "\"auto\"", NULL);
      g_clear_error (&error);
    }
    {
      /* "auto" = ceil(64 / 16) = 4, and d_inner from expand. */
      g_autofree char *dir = make_dir ("cfg-mamba-auto");
      g_autofree char *path = g_build_filename (dir, "config.json", NULL);
      g_autofree char *src_path = g_build_filename (mamba, "config.json", NULL);
      g_autoptr(json_object) cfg = read_json (src_path);
      g_autoptr(LscModel) m = NULL;

      json_object_object_add (cfg, "time_step_rank", json_object_new_string ("auto"));
      json_object_object_del (cfg, "intermediate_size");
      json_object_object_del (cfg, "tie_word_embeddings");
      write_json (path, cfg);
      link_weights (mamba, dir);
      m = lsc_model_load (dir, &error);
      g_assert_no_error (error);
      g_assert_cmpint (lsc_model_get_config (m)->ssm_dt_rank, ==, 4);
      g_assert_cmpint (lsc_model_get_config (m)->ssm_d_inner, ==, 128);
      g_assert_true (lsc_model_get_config (m)->tied_embeddings);
    }
  }
#undef ASSERT_VARIANT_FAILS
}

/* --- weights files ------------------------------------------------------- */

static void
test_bad_index (void)
{
  g_autoptr(LscModel) orig = load_shared ("tiny-llama");
  g_autofree char *src = shared_model ("tiny-llama");
  g_autoptr(GError) error = NULL;

  if (orig == NULL)
    return;

  {
    g_autofree char *dir = make_dir ("no-weights");
    g_autoptr(LscModel) m = NULL;
    write_config_variant (src, dir, NULL, NULL);
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND, "no-weights",
                           "model.safetensors", "model.safetensors.index.json", NULL);
    g_clear_error (&error);
  }
  {
    /* The index names a shard that is not there. */
    g_autofree char *dir = make_dir ("index-missing-shard");
    g_autofree char *shard = g_build_filename (dir, "model-00003-of-00003.safetensors", NULL);
    g_autoptr(LscModel) m = NULL;
    write_sharded (orig, src, dir);
    g_assert_cmpint (g_unlink (shard), ==, 0);
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND,
                           "model.safetensors.index.json", "model-00003-of-00003.safetensors",
                           NULL);
    g_clear_error (&error);
  }
  {
    /* The index lists a tensor its shard lacks. */
    g_autofree char *dir = make_dir ("index-extra-name");
    g_autofree char *index_path = g_build_filename (dir, "model.safetensors.index.json", NULL);
    g_autoptr(json_object) index = NULL;
    json_object *map;
    g_autoptr(LscModel) m = NULL;
    write_sharded (orig, src, dir);
    index = read_json (index_path);
    g_assert_true (json_object_object_get_ex (index, "weight_map", &map));
    json_object_object_add (map, "model.layers.9.extra.weight",
                            json_object_new_string ("model-00002-of-00003.safetensors"));
    write_json (index_path, index);
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_MISSING_TENSOR,
                           "model.safetensors.index.json", "model.layers.9.extra.weight",
                           "model-00002-of-00003.safetensors", NULL);
    g_clear_error (&error);
  }
  {
    /* A shard holds a tensor the index maps elsewhere. */
    g_autofree char *dir = make_dir ("index-wrong-shard");
    g_autofree char *index_path = g_build_filename (dir, "model.safetensors.index.json", NULL);
    g_autoptr(json_object) index = NULL;
    json_object *map;
    g_autoptr(LscModel) m = NULL;
    write_sharded (orig, src, dir);
    index = read_json (index_path);
    g_assert_true (json_object_object_get_ex (index, "weight_map", &map));
    json_object_object_add (map, "model.norm.weight",
                            json_object_new_string ("model-00001-of-00003.safetensors"));
    write_json (index_path, index);
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                           "model.safetensors.index.json", "model-00003-of-00003.safetensors",
                           "'model.norm.weight'", "model-00001-of-00003.safetensors", NULL);
    g_clear_error (&error);
  }
  {
    /* Shard names are file names in the directory, never paths. */
    g_autofree char *dir = make_dir ("index-path");
    g_autofree char *index_path = g_build_filename (dir, "model.safetensors.index.json", NULL);
    g_autoptr(LscModel) m = NULL;
    write_config_variant (src, dir, NULL, NULL);
    write_text (index_path, "{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}");
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                           "model.safetensors.index.json", "'model.norm.weight'",
                           "\"../x.safetensors\" is not a file name", NULL);
    g_clear_error (&error);
  }
  {
    g_autofree char *dir = make_dir ("index-no-map");
    g_autofree char *index_path = g_build_filename (dir, "model.safetensors.index.json", NULL);
    g_autoptr(LscModel) m = NULL;
    write_config_variant (src, dir, NULL, NULL);
    write_text (index_path, "{\"metadata\": {}}");
    m = lsc_model_load (dir, &error);
    g_assert_null (m);
    lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                           "model.safetensors.index.json", "'weight_map' is missing", NULL);
    g_clear_error (&error);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/engine/safetensors/tiny-llama", test_tiny_llama);
  g_test_add_func ("/engine/safetensors/tiny-qwen2", test_tiny_qwen2);
  g_test_add_func ("/engine/safetensors/tiny-mamba", test_tiny_mamba);
  g_test_add_func ("/engine/safetensors/parser-direct", test_parser_direct);
  g_test_add_func ("/engine/safetensors/f16-copy", test_f16_copy);
  g_test_add_func ("/engine/safetensors/bf16-to-f32-copy", test_bf16_to_f32_copy);
  g_test_add_func ("/engine/safetensors/sharded", test_sharded_copy);
  g_test_add_func ("/engine/safetensors/hub-cache", test_hub_cache);
  g_test_add_func ("/engine/safetensors/config-variants", test_config_variants);
  g_test_add_func ("/engine/safetensors/bad-safetensors", test_bad_safetensors);
  g_test_add_func ("/engine/safetensors/bad-config", test_bad_config);
  g_test_add_func ("/engine/safetensors/bad-index", test_bad_index);

  return g_test_run ();
}
