/* SPDX-License-Identifier: MIT
 *
 * LscModel: the format-independent model handle. lsc_model_load () looks at
 * the path, hands it to the loader of its format (lsc-hf.c, lsc-model-gguf.c,
 * lsc-llama2c.c), and the loaders fill in the structure through the helpers
 * below.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "lsc-model-private.h"
#include "lsc-demo.h"
#include "lsc-error.h"
#include "lsc-gguf.h"

LscModel *
_lsc_model_new (const char *path, LscModelFormat format)
{
  LscModel *model = g_new0 (LscModel, 1);
  model->path = g_strdup (path);
  model->format = format;
  model->config.bos_id = -1;
  model->config.eos_id = -1;
  model->config.rope_scaling.factor = 1.0;
  model->files = g_ptr_array_new_with_free_func ((GDestroyNotify) lsc_mapped_file_free);
  model->tensors = g_array_new (FALSE, TRUE, sizeof (LscTensor));
  model->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  model->warnings = g_ptr_array_new_null_terminated (0, g_free, TRUE);
  return model;
}

void
lsc_model_free (LscModel *model)
{
  if (model == NULL)
    return;
  for (guint i = 0; i < model->tensors->len; i++)
    g_free (g_array_index (model->tensors, LscTensor, i).name);
  g_array_unref (model->tensors);
  g_hash_table_unref (model->by_name);
  g_ptr_array_unref (model->files);
  g_ptr_array_unref (model->warnings);
  g_free (model->weight_index);
  if (model->format_data_free != NULL)
    model->format_data_free (model->format_data);
  g_free (model->path);
  g_free (model);
}

LscTensor *
_lsc_model_add_tensor (LscModel *model, const char *name, LscDType dtype, int n_dims,
                       const gint64 *shape, guint file_index, guint64 offset, GError **error)
{
  const LscMappedFile *file;
  LscTensor t = { 0 };
  guint64 n_elements = 1;

  g_return_val_if_fail (file_index < model->files->len, NULL);
  g_return_val_if_fail (n_dims >= 0 && n_dims <= LSC_MAX_DIMS, NULL);
  file = g_ptr_array_index (model->files, file_index);

  if (g_hash_table_contains (model->by_name, name))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: tensor '%s' appears twice", file->path, name);
      return NULL;
    }
  for (int i = 0; i < n_dims; i++)
    {
      if (shape[i] < 0 || !g_uint64_checked_mul (&n_elements, n_elements, (guint64) shape[i]))
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: tensor '%s': shape dimension %d (%" G_GINT64_FORMAT
                       ") is negative or the element count overflows", file->path, name, i, shape[i]);
          return NULL;
        }
    }
  if (n_elements > G_MAXSIZE / 8 || (dtype == LSC_DTYPE_Q8_0 && n_elements % LSC_Q8_0_BLOCK))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: tensor '%s': %" G_GUINT64_FORMAT " elements of %s is not a valid size",
                   file->path, name, n_elements, lsc_dtype_name (dtype));
      return NULL;
    }

  t.n_bytes = lsc_dtype_row_bytes (dtype, n_elements);
  g_autofree char *what = g_strdup_printf ("tensor '%s'", name);
  if (!lsc_mapped_file_check_range (file, offset, t.n_bytes, what, error))
    return NULL;

  t.name = g_strdup (name);
  t.role = LSC_TENSOR_UNKNOWN;
  t.layer = -1;
  t.dtype = dtype;
  t.n_dims = n_dims;
  for (int i = 0; i < LSC_MAX_DIMS; i++)
    t.shape[i] = i < n_dims ? shape[i] : 1;
  t.data = file->data != NULL ? file->data + offset : NULL;
  t.file_index = file_index;
  t.file_offset = offset;
  g_array_append_val (model->tensors, t);
  g_hash_table_insert (model->by_name, t.name, GUINT_TO_POINTER (model->tensors->len));
  return &g_array_index (model->tensors, LscTensor, model->tensors->len - 1);
}

void
_lsc_model_warn (LscModel *model, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_ptr_array_add (model->warnings, msg);
}

static gboolean
is_gguf_file (const char *path)
{
  char magic[4] = { 0 };
  FILE *f = fopen (path, "rb");
  if (f == NULL)
    return FALSE;
  gboolean yes = fread (magic, 1, 4, f) == 4 && memcmp (magic, "GGUF", 4) == 0;
  fclose (f);
  return yes;
}

LscModel *
lsc_model_load (const char *path, GError **error)
{
  g_autoptr(LscModel) model = NULL;
  gboolean ok;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* built-in demo models (lsc-demo.c) */
  const char *demo = lsc_demo_match_path (path);
  if (demo != NULL)
    return lsc_demo_model_new (demo, error);

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND,
                   "%s: no such file or directory", path);
      return NULL;
    }

  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_autofree char *dir = _lsc_hf_resolve_snapshot (path);
      model = _lsc_model_new (path, LSC_FORMAT_HF);
      ok = _lsc_model_load_hf (model, dir, error);
    }
  else if (is_gguf_file (path))
    {
      model = _lsc_model_new (path, LSC_FORMAT_GGUF);
      ok = _lsc_model_load_gguf (model, path, error);
    }
  else if (g_str_has_suffix (path, ".json") || g_str_has_suffix (path, ".safetensors"))
    {
      /* config.json or model.safetensors: the model is the folder they are in */
      g_autofree char *parent = g_path_get_dirname (path);
      g_autofree char *dir = _lsc_hf_resolve_snapshot (parent);
      model = _lsc_model_new (path, LSC_FORMAT_HF);
      ok = _lsc_model_load_hf (model, dir, error);
    }
  else if (g_str_has_suffix (path, ".bin"))
    {
      model = _lsc_model_new (path, LSC_FORMAT_LLAMA2C);
      ok = _lsc_model_load_llama2c (model, path, error);
    }
  else
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNKNOWN_FORMAT,
                   "%s: not a model Longscope reads (expected a Hugging Face directory, "
                   "a .gguf file or a llama2.c .bin checkpoint)", path);
      return NULL;
    }

  return ok ? g_steal_pointer (&model) : NULL;
}

const char *
lsc_model_get_path (const LscModel *model)
{
  return model->path;
}

LscModelFormat
lsc_model_get_format (const LscModel *model)
{
  return model->format;
}

const LscModelConfig *
lsc_model_get_config (const LscModel *model)
{
  return &model->config;
}

const char *const *
lsc_model_get_warnings (const LscModel *model)
{
  static const char *const none[] = { NULL };
  if (model->warnings->pdata == NULL)
    return none;
  return (const char *const *) model->warnings->pdata;
}

guint
lsc_model_get_n_tensors (const LscModel *model)
{
  return model->tensors->len;
}

const LscTensor *
lsc_model_get_tensor (const LscModel *model, guint index)
{
  g_return_val_if_fail (index < model->tensors->len, NULL);
  return &g_array_index (model->tensors, LscTensor, index);
}

const LscTensor *
lsc_model_find_tensor (const LscModel *model, const char *name)
{
  guint i = GPOINTER_TO_UINT (g_hash_table_lookup (model->by_name, name));
  return i ? &g_array_index (model->tensors, LscTensor, i - 1) : NULL;
}

const LscTensor *
lsc_model_get_weight (const LscModel *model, LscTensorRole role, int layer)
{
  int n_layers = model->config.n_layers;
  if (model->weight_index == NULL || role <= LSC_TENSOR_UNKNOWN || role >= LSC_TENSOR_N_ROLES
      || layer < -1 || layer >= n_layers)
    return NULL;
  int slot = layer < 0 ? n_layers : layer;
  int i = model->weight_index[role * (n_layers + 1) + slot];
  return i >= 0 ? &g_array_index (model->tensors, LscTensor, i) : NULL;
}

guint64
lsc_model_get_weight_bytes (const LscModel *model)
{
  guint64 bytes = 0;
  for (guint i = 0; i < model->tensors->len; i++)
    bytes += g_array_index (model->tensors, LscTensor, i).n_bytes;
  return bytes;
}

gint64
lsc_tensor_n_elements (const LscTensor *tensor)
{
  gint64 n = 1;
  for (int i = 0; i < tensor->n_dims; i++)
    n *= tensor->shape[i];
  return n;
}

gboolean
lsc_tensor_to_f32 (const LscTensor *tensor, float *out, GError **error)
{
  LscStatus status = lsc_to_f32 (out, tensor->data, tensor->dtype,
                                 (size_t) lsc_tensor_n_elements (tensor));
  if (status != LSC_STATUS_OK)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                   "tensor '%s': cannot convert %s to F32: %s", tensor->name,
                   lsc_dtype_name (tensor->dtype), lsc_status_to_string (status));
      return FALSE;
    }
  return TRUE;
}

const char *
lsc_arch_name (LscArch arch)
{
  switch (arch)
    {
    case LSC_ARCH_LLAMA: return "llama";
    case LSC_ARCH_MISTRAL: return "mistral";
    case LSC_ARCH_QWEN2: return "qwen2";
    case LSC_ARCH_MAMBA: return "mamba";
    case LSC_ARCH_MAMBA2: return "mamba2";
    }
  return "?";
}

const char *
lsc_model_format_name (LscModelFormat format)
{
  switch (format)
    {
    case LSC_FORMAT_HF: return "Hugging Face (safetensors)";
    case LSC_FORMAT_GGUF: return "GGUF";
    case LSC_FORMAT_LLAMA2C: return "llama2.c";
    }
  return "?";
}

static const char *
rope_scaling_name (LscRopeScalingType type)
{
  switch (type)
    {
    case LSC_ROPE_SCALING_NONE: return "none";
    case LSC_ROPE_SCALING_LINEAR: return "linear";
    case LSC_ROPE_SCALING_DYNAMIC: return "dynamic";
    case LSC_ROPE_SCALING_YARN: return "yarn";
    case LSC_ROPE_SCALING_LLAMA3: return "llama3";
    }
  return "?";
}

gboolean
lsc_arch_is_ssm (LscArch arch)
{
  return arch == LSC_ARCH_MAMBA || arch == LSC_ARCH_MAMBA2;
}

void
lsc_model_describe (const LscModel *model, GString *out, gboolean with_tensors)
{
  const LscModelConfig *c = &model->config;
  guint64 total_bytes = lsc_model_get_weight_bytes (model), total_params = 0;

  for (guint i = 0; i < model->tensors->len; i++)
    total_params += (guint64) lsc_tensor_n_elements (&g_array_index (model->tensors, LscTensor, i));

  g_string_append_printf (out, "model:            %s\n", model->path);
  g_string_append_printf (out, "format:           %s\n", lsc_model_format_name (model->format));
  g_string_append_printf (out, "architecture:     %s\n", lsc_arch_name (c->arch));
  g_string_append_printf (out, "parameters:       %" G_GUINT64_FORMAT " (%.1f MiB in %u tensors)\n",
                          total_params, total_bytes / 1048576.0, model->tensors->len);
  g_string_append_printf (out, "vocab_size:       %d\n", c->vocab_size);
  g_string_append_printf (out, "dim:              %d\n", c->dim);
  g_string_append_printf (out, "n_layers:         %d\n", c->n_layers);
  if (!lsc_arch_is_ssm (c->arch))
    {
      g_string_append_printf (out, "n_heads:          %d\n", c->n_heads);
      g_string_append_printf (out, "n_kv_heads:       %d\n", c->n_kv_heads);
      g_string_append_printf (out, "head_dim:         %d\n", c->head_dim);
      g_string_append_printf (out, "hidden_dim:       %d\n", c->hidden_dim);
      g_string_append_printf (out, "rope_theta:       %g\n", c->rope_theta);
      g_string_append_printf (out, "rope_layout:      %s\n",
                              c->rope_layout == LSC_ROPE_NEOX ? "neox (rotate_half)" : "interleaved");
      g_string_append_printf (out, "rope_scaling:     %s", rope_scaling_name (c->rope_scaling.type));
      if (c->rope_scaling.type != LSC_ROPE_SCALING_NONE)
        g_string_append_printf (out, " (factor %g, original context %d)", c->rope_scaling.factor,
                                c->rope_scaling.original_max_position);
      g_string_append_c (out, '\n');
      g_string_append_printf (out, "sliding_window:   %d", c->sliding_window);
      if (c->sliding_window > 0 && c->max_window_layers > 0)
        g_string_append_printf (out, " (layers >= %d)", c->max_window_layers);
      g_string_append_c (out, '\n');
      g_string_append_printf (out, "qkv_bias:         %s\n", c->attn_qkv_bias ? "yes" : "no");
    }
  else
    {
      g_string_append_printf (out, "ssm_d_inner:      %d\n", c->ssm_d_inner);
      g_string_append_printf (out, "ssm_d_state:      %d\n", c->ssm_d_state);
      g_string_append_printf (out, "ssm_d_conv:       %d\n", c->ssm_d_conv);
      g_string_append_printf (out, "ssm_dt_rank:      %d\n", c->ssm_dt_rank);
      if (c->arch == LSC_ARCH_MAMBA2)
        g_string_append_printf (out, "ssm_heads:        %d x %d (groups %d)\n", c->ssm_n_heads,
                                c->ssm_head_dim, c->ssm_n_groups);
    }
  g_string_append_printf (out, "norm_eps:         %g\n", c->norm_eps);
  g_string_append_printf (out, "context_length:   %d%s\n", c->max_position,
                          model->format == LSC_FORMAT_GGUF ? " (advisory)" : "");
  g_string_append_printf (out, "tied_embeddings:  %s\n", c->tied_embeddings ? "yes" : "no");
  g_string_append_printf (out, "bos_id:           %d\n", c->bos_id);
  g_string_append_printf (out, "eos_id:           %d\n", c->eos_id);
  for (guint i = 0; i < model->warnings->len; i++)
    g_string_append_printf (out, "warning:          %s\n",
                            (const char *) g_ptr_array_index (model->warnings, i));

  if (!with_tensors)
    return;
  g_string_append (out, "tensors:\n");
  for (guint i = 0; i < model->tensors->len; i++)
    {
      const LscTensor *t = &g_array_index (model->tensors, LscTensor, i);
      g_autoptr(GString) shape = g_string_new ("[");
      for (int d = 0; d < t->n_dims; d++)
        g_string_append_printf (shape, d ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, t->shape[d]);
      g_string_append_c (shape, ']');
      g_string_append_printf (out, "  %-48s %-5s %-16s %s\n", t->name, lsc_dtype_name (t->dtype),
                              shape->str, lsc_tensor_role_name (t->role));
    }
}
