/* SPDX-License-Identifier: MIT
 *
 * lsc-model-gguf.c: an LscModel from a GGUF file (format: lsc-gguf.h).
 *
 * The config comes from `general.architecture` (llama, qwen2, mamba,
 * mamba2; Mistral GGUFs say llama) and that architecture's keys, as
 * llama.cpp writes them:
 *
 *   {arch}.embedding_length, .block_count, .context_length (advisory),
 *   .feed_forward_length, .attention.head_count, .attention.head_count_kv,
 *   .attention.key_length, .attention.layer_norm_rms_epsilon,
 *   .attention.sliding_window, .rope.freq_base, .rope.dimension_count,
 *   .rope.scaling.{type,factor,original_context_length}, .vocab_size,
 *   .ssm.{conv_kernel,inner_size,state_size,time_step_rank,group_count}
 *   tokenizer.ggml.bos_token_id / eos_token_id (0xFFFFFFFF = none)
 *
 * Tensors keep their GGUF names; shapes are reversed to outermost first
 * (GGUF's ne[0] is the innermost, contiguous dimension). Their data points
 * into the LscMappedFile kept in model->files; the parsed LscGguf stays in
 * model->format_data for the tokenizer, which reads tokenizer.ggml.* from it.
 */
#include "config.h"

#include <string.h>

#include "lsc-model-private.h"
#include "lsc-error.h"
#include "lsc-gguf.h"

#define LSC_GGUF_NO_TOKEN 0xFFFFFFFFu   /* "absent" special-token id */

typedef struct {
  const LscGguf *gguf;
  const char *name;    /* file basename, for messages */
  const char *arch;    /* general.architecture */
} GgufConfigReader;

/* `{arch}.suffix` as an int in [min, G_MAXINT]. When absent: `fallback`,
 * or a BAD_CONFIG error when `required`. */
static gboolean
read_int (const GgufConfigReader *cr, const char *suffix, gboolean required, int fallback,
          int min, int *out, GError **error)
{
  g_autofree char *key = g_strdup_printf ("%s.%s", cr->arch, suffix);
  gint64 v;

  if (!lsc_gguf_has_key (cr->gguf, key) && !required)
    {
      *out = fallback;
      return TRUE;
    }
  if (!lsc_gguf_get_int (cr->gguf, key, &v, error))
    return FALSE;
  if (v < min || v > G_MAXINT)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: key '%s' = %" G_GINT64_FORMAT " is outside %d..%d", cr->name, key, v,
                   min, G_MAXINT);
      return FALSE;
    }
  *out = (int) v;
  return TRUE;
}

/* `{arch}.suffix` as a finite double > 0, or `fallback` when absent. */
static gboolean
read_positive_double (const GgufConfigReader *cr, const char *suffix, double fallback,
                      double *out, GError **error)
{
  g_autofree char *key = g_strdup_printf ("%s.%s", cr->arch, suffix);

  if (!lsc_gguf_has_key (cr->gguf, key))
    {
      *out = fallback;
      return TRUE;
    }
  if (!lsc_gguf_get_double (cr->gguf, key, out, error))
    return FALSE;
  if (!(*out > 0.0 && *out < G_MAXDOUBLE))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: key '%s' = %g is not a positive number", cr->name, key, *out);
      return FALSE;
    }
  return TRUE;
}

/* A special-token id; absent or 0xFFFFFFFF -> -1. */
static gboolean
read_token_id (const GgufConfigReader *cr, const char *key, int *out, GError **error)
{
  gint64 v;

  *out = -1;
  if (!lsc_gguf_has_key (cr->gguf, key))
    return TRUE;
  if (!lsc_gguf_get_int (cr->gguf, key, &v, error))
    return FALSE;
  if (v >= 0 && v < G_MAXINT && v != LSC_GGUF_NO_TOKEN)
    *out = (int) v;
  return TRUE;
}

static const LscGgufTensorInfo *
find_tensor_info (const LscGguf *gguf, const char *name)
{
  for (guint64 i = 0; i < lsc_gguf_get_n_tensors (gguf); i++)
    {
      const LscGgufTensorInfo *info = lsc_gguf_get_tensor (gguf, i);
      if (strcmp (info->name, name) == 0)
        return info;
    }
  return NULL;
}

static gboolean
read_rope_scaling (LscModel *model, const GgufConfigReader *cr, GError **error)
{
  LscRopeScaling *s = &model->config.rope_scaling;
  g_autofree char *type_key = g_strdup_printf ("%s.rope.scaling.type", cr->arch);
  g_autofree char *linear_key = g_strdup_printf ("%s.rope.scale_linear", cr->arch);
  const char *type = "none";

  s->type = LSC_ROPE_SCALING_NONE;
  s->factor = 1.0;
  s->beta_fast = 32.0;
  s->beta_slow = 1.0;
  if (lsc_gguf_has_key (cr->gguf, type_key))
    {
      type = lsc_gguf_get_string (cr->gguf, type_key, error);
      if (type == NULL)
        return FALSE;
    }
  else if (lsc_gguf_has_key (cr->gguf, linear_key))
    type = "linear";    /* older files: rope.scale_linear alone */

  if (strcmp (type, "none") == 0)
    ;
  else if (strcmp (type, "linear") == 0)
    s->type = LSC_ROPE_SCALING_LINEAR;
  else if (strcmp (type, "yarn") == 0)
    s->type = LSC_ROPE_SCALING_YARN;
  else
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: key '%s' = '%s' is not a RoPE scaling Longscope implements "
                   "(none, linear, yarn)", cr->name, type_key, type);
      return FALSE;
    }

  if (s->type != LSC_ROPE_SCALING_NONE)
    {
      if (!read_positive_double (cr, lsc_gguf_has_key (cr->gguf, type_key)
                                     ? "rope.scaling.factor" : "rope.scale_linear",
                                 1.0, &s->factor, error)
          || !read_int (cr, "rope.scaling.original_context_length", FALSE, 0, 0,
                        &s->original_max_position, error))
        return FALSE;
    }
  if (s->type == LSC_ROPE_SCALING_YARN
      && (!read_positive_double (cr, "rope.scaling.yarn_beta_fast", 32.0, &s->beta_fast, error)
          || !read_positive_double (cr, "rope.scaling.yarn_beta_slow", 1.0, &s->beta_slow, error)))
    return FALSE;

  /* llama3-style scaling is stored as precomputed per-dimension factors */
  if (find_tensor_info (cr->gguf, "rope_freqs.weight") != NULL)
    _lsc_model_warn (model, "%s: tensor 'rope_freqs.weight' holds llama3 RoPE frequency factors, "
                     "which Longscope does not apply: logits will differ from llama.cpp's",
                     cr->name);
  return TRUE;
}

static gboolean
read_transformer_config (LscModel *model, const GgufConfigReader *cr, GError **error)
{
  LscModelConfig *c = &model->config;
  g_autofree char *key_length_key = g_strdup_printf ("%s.attention.key_length", cr->arch);
  int rope_dims;

  if (!read_int (cr, "attention.head_count", TRUE, 0, 1, &c->n_heads, error)
      || !read_int (cr, "attention.head_count_kv", FALSE, c->n_heads, 1, &c->n_kv_heads, error)
      || !read_int (cr, "feed_forward_length", TRUE, 0, 1, &c->hidden_dim, error)
      || !read_int (cr, "attention.key_length", FALSE, c->dim / c->n_heads, 1, &c->head_dim,
                    error)
      || !read_int (cr, "rope.dimension_count", FALSE, c->head_dim, 1, &rope_dims, error)
      || !read_positive_double (cr, "rope.freq_base", 10000.0, &c->rope_theta, error)
      || !read_int (cr, "attention.sliding_window", FALSE, 0, 0, &c->sliding_window, error)
      || !read_rope_scaling (model, cr, error))
    return FALSE;

  if (c->n_heads % c->n_kv_heads != 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: key '%s.attention.head_count' = %d is not a multiple of "
                   "'%s.attention.head_count_kv' = %d", cr->name, cr->arch, c->n_heads, cr->arch,
                   c->n_kv_heads);
      return FALSE;
    }
  if (!lsc_gguf_has_key (cr->gguf, key_length_key) && c->dim % c->n_heads != 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: key '%s.embedding_length' = %d is not a multiple of "
                   "'%s.attention.head_count' = %d", cr->name, cr->arch, c->dim, cr->arch,
                   c->n_heads);
      return FALSE;
    }
  if (rope_dims != c->head_dim)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: key '%s.rope.dimension_count' = %d differs from the head size %d "
                   "(partial rotary embeddings are not supported)", cr->name, cr->arch,
                   rope_dims, c->head_dim);
      return FALSE;
    }
  c->rope_layout = c->arch == LSC_ARCH_QWEN2 ? LSC_ROPE_NEOX : LSC_ROPE_INTERLEAVED;
  c->attn_qkv_bias = find_tensor_info (cr->gguf, "blk.0.attn_q.bias") != NULL;
  return TRUE;
}

static gboolean
read_mamba_config (LscModel *model, const GgufConfigReader *cr, GError **error)
{
  LscModelConfig *c = &model->config;
  g_autofree char *rms_key = g_strdup_printf ("%s.ssm.dt_b_c_rms", cr->arch);
  gboolean dt_b_c_rms = FALSE;

  if (!read_int (cr, "ssm.conv_kernel", TRUE, 0, 1, &c->ssm_d_conv, error)
      || !read_int (cr, "ssm.inner_size", TRUE, 0, 1, &c->ssm_d_inner, error)
      || !read_int (cr, "ssm.state_size", TRUE, 0, 1, &c->ssm_d_state, error)
      || !read_int (cr, "ssm.time_step_rank", TRUE, 0, 1, &c->ssm_dt_rank, error))
    return FALSE;
  if (lsc_gguf_has_key (cr->gguf, rms_key)
      && !lsc_gguf_get_bool (cr->gguf, rms_key, &dt_b_c_rms, error))
    return FALSE;
  if (dt_b_c_rms)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_ARCH,
                   "%s: key '%s' is true (Falcon-Mamba's extra RMS norms), which Longscope "
                   "does not implement", cr->name, rms_key);
      return FALSE;
    }
  if (c->arch == LSC_ARCH_MAMBA2)
    {
      if (!read_int (cr, "ssm.group_count", FALSE, 1, 1, &c->ssm_n_groups, error))
        return FALSE;
      /* llama.cpp stores the number of heads as the time-step rank */
      c->ssm_n_heads = c->ssm_dt_rank;
      if (c->ssm_d_inner % c->ssm_n_heads != 0 || c->ssm_d_inner % c->ssm_n_groups != 0)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                       "%s: key '%s.ssm.inner_size' = %d is not a multiple of the %d heads "
                       "and %d groups", cr->name, cr->arch, c->ssm_d_inner, c->ssm_n_heads,
                       c->ssm_n_groups);
          return FALSE;
        }
      if (c->ssm_n_heads % c->ssm_n_groups != 0)
        {
          /* a head's B and C come from group head / (heads / groups) */
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                       "%s: key '%s.ssm.group_count' = %d does not divide the %d heads "
                       "('%s.ssm.time_step_rank')", cr->name, cr->arch, c->ssm_n_groups,
                       c->ssm_n_heads, cr->arch);
          return FALSE;
        }
      c->ssm_head_dim = c->ssm_d_inner / c->ssm_n_heads;
    }
  c->ssm_conv_bias = find_tensor_info (cr->gguf, "blk.0.ssm_conv1d.bias") != NULL;
  c->ssm_proj_bias = find_tensor_info (cr->gguf, "blk.0.ssm_in.bias") != NULL;
  return TRUE;
}

static gboolean
read_config (LscModel *model, const LscGguf *gguf, const char *name, GError **error)
{
  LscModelConfig *c = &model->config;
  GgufConfigReader cr = { gguf, name, NULL };
  const LscGgufTensorInfo *embd;
  gboolean ssm;

  cr.arch = lsc_gguf_get_string (gguf, "general.architecture", error);
  if (cr.arch == NULL)
    return FALSE;
  if (strcmp (cr.arch, "llama") == 0)
    c->arch = LSC_ARCH_LLAMA;
  else if (strcmp (cr.arch, "qwen2") == 0)
    c->arch = LSC_ARCH_QWEN2;
  else if (strcmp (cr.arch, "mamba") == 0)
    c->arch = LSC_ARCH_MAMBA;
  else if (strcmp (cr.arch, "mamba2") == 0)
    c->arch = LSC_ARCH_MAMBA2;
  else
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_ARCH,
                   "%s: general.architecture '%s' is not an architecture Longscope runs "
                   "(llama, qwen2, mamba, mamba2)", name, cr.arch);
      return FALSE;
    }
  ssm = lsc_arch_is_ssm (c->arch);

  if (!read_int (&cr, "embedding_length", TRUE, 0, 1, &c->dim, error)
      || !read_int (&cr, "block_count", TRUE, 0, 1, &c->n_layers, error)
      || !read_int (&cr, "context_length", FALSE, 0, 0, &c->max_position, error)
      || !read_positive_double (&cr, "attention.layer_norm_rms_epsilon", 1e-5, &c->norm_eps,
                                error)
      || !read_int (&cr, "vocab_size", FALSE, 0, 1, &c->vocab_size, error)
      || !read_token_id (&cr, "tokenizer.ggml.bos_token_id", &c->bos_id, error)
      || !read_token_id (&cr, "tokenizer.ggml.eos_token_id", &c->eos_id, error))
    return FALSE;

  /* Converters write defaults here (llama2.c's writes 128 for a model
   * trained at 512): note it, never cap. */
  if (c->max_position > 0)
    _lsc_model_warn (model, "%s: %s.context_length = %d is advisory; Longscope does not stop "
                     "there, but quality past the trained context is not guaranteed", name,
                     cr.arch, c->max_position);

  /* the embedding's rows are the vocabulary (ne[1] is the outer dimension) */
  embd = find_tensor_info (gguf, "token_embd.weight");
  if (embd != NULL && embd->n_dims == 2 && embd->ne[1] <= G_MAXINT)
    c->vocab_size = (int) embd->ne[1];
  c->tied_embeddings = find_tensor_info (gguf, "output.weight") == NULL;

  return ssm ? read_mamba_config (model, &cr, error)
             : read_transformer_config (model, &cr, error);
}

/* Mamba-2 GGUFs store A and D as (n_heads, 1) and the gated norm as
 * (n_groups, d_inner / n_groups): flatten them to the 1-D shapes the
 * forward pass reads. */
static void
flatten_mamba2_tensor (LscTensor *t)
{
  if (t->n_dims < 2)
    return;
  if (g_str_has_suffix (t->name, ".ssm_a") || g_str_has_suffix (t->name, ".ssm_d")
      || g_str_has_suffix (t->name, ".ssm_norm.weight"))
    {
      t->shape[0] = lsc_tensor_n_elements (t);
      for (int d = 1; d < LSC_MAX_DIMS; d++)
        t->shape[d] = 1;
      t->n_dims = 1;
    }
}

static gboolean
add_tensors (LscModel *model, const LscGguf *gguf, guint file_index, GError **error)
{
  for (guint64 i = 0; i < lsc_gguf_get_n_tensors (gguf); i++)
    {
      const LscGgufTensorInfo *info = lsc_gguf_get_tensor (gguf, i);
      gint64 shape[LSC_MAX_DIMS];   /* (n_dims) outermost first */
      LscTensor *t;

      for (int d = 0; d < info->n_dims; d++)
        shape[d] = (gint64) info->ne[info->n_dims - 1 - d];
      t = _lsc_model_add_tensor (model, info->name, info->dtype, info->n_dims, shape,
                                 file_index, info->offset, error);
      if (t == NULL)
        return FALSE;
      if (model->config.arch == LSC_ARCH_MAMBA2)
        flatten_mamba2_tensor (t);
    }
  return TRUE;
}

gboolean
_lsc_model_load_gguf (LscModel *model, const char *file, GError **error)
{
  g_autoptr(LscMappedFile) mapped = NULL;
  g_autoptr(LscGguf) gguf = NULL;
  g_autofree char *name = g_path_get_basename (file);
  guint file_index;

  mapped = lsc_mapped_file_open (file, error);
  if (mapped == NULL)
    return FALSE;
  gguf = lsc_gguf_new_from_data (file, mapped->data, mapped->size, error);
  if (gguf == NULL)
    return FALSE;

  /* The model owns the map; the LscGguf borrows it and lives as long. */
  g_assert (lsc_gguf_get_data (gguf, NULL) == mapped->data);
  g_ptr_array_add (model->files, g_steal_pointer (&mapped));
  file_index = model->files->len - 1;
  model->format_data = g_steal_pointer (&gguf);
  model->format_data_free = (GDestroyNotify) lsc_gguf_free;

  if (!read_config (model, model->format_data, name, error)
      || !add_tensors (model, model->format_data, file_index, error))
    return FALSE;
  return _lsc_model_bind_tensors (model, error);
}
