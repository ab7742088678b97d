/* SPDX-License-Identifier: MIT
 *
 * Binding tensors to roles: every format names its tensors differently
 * (Hugging Face `model.layers.3.self_attn.q_proj.weight`, GGUF
 * `blk.3.attn_q.weight`; llama2.c files have no names and get GGUF ones from
 * their loader). This file maps both naming schemes to LscTensorRole and then
 * checks that the architecture's tensors are all there with the shapes the
 * config implies, so that the forward pass never meets a surprise.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "lsc-model-private.h"
#include "lsc-error.h"

typedef struct {
  const char *suffix;   /* name after the layer prefix */
  LscTensorRole role;
} RoleName;

/* Per-layer names after `model.layers.N.` / `backbone.layers.N.` */
static const RoleName hf_layer_names[] = {
  { "input_layernorm.weight", LSC_TENSOR_ATTN_NORM },
  { "self_attn.q_proj.weight", LSC_TENSOR_ATTN_Q },
  { "self_attn.k_proj.weight", LSC_TENSOR_ATTN_K },
  { "self_attn.v_proj.weight", LSC_TENSOR_ATTN_V },
  { "self_attn.o_proj.weight", LSC_TENSOR_ATTN_O },
  { "self_attn.q_proj.bias", LSC_TENSOR_ATTN_Q_BIAS },
  { "self_attn.k_proj.bias", LSC_TENSOR_ATTN_K_BIAS },
  { "self_attn.v_proj.bias", LSC_TENSOR_ATTN_V_BIAS },
  { "post_attention_layernorm.weight", LSC_TENSOR_FFN_NORM },
  { "mlp.gate_proj.weight", LSC_TENSOR_FFN_GATE },
  { "mlp.up_proj.weight", LSC_TENSOR_FFN_UP },
  { "mlp.down_proj.weight", LSC_TENSOR_FFN_DOWN },
  { "norm.weight", LSC_TENSOR_SSM_NORM },
  { "mixer.in_proj.weight", LSC_TENSOR_SSM_IN },
  { "mixer.conv1d.weight", LSC_TENSOR_SSM_CONV1D },
  { "mixer.conv1d.bias", LSC_TENSOR_SSM_CONV1D_BIAS },
  { "mixer.x_proj.weight", LSC_TENSOR_SSM_X },
  { "mixer.dt_proj.weight", LSC_TENSOR_SSM_DT },
  { "mixer.dt_proj.bias", LSC_TENSOR_SSM_DT_BIAS },
  { "mixer.dt_bias", LSC_TENSOR_SSM_DT_BIAS },
  { "mixer.A_log", LSC_TENSOR_SSM_A_LOG },
  { "mixer.D", LSC_TENSOR_SSM_D },
  { "mixer.out_proj.weight", LSC_TENSOR_SSM_OUT },
  { "mixer.norm.weight", LSC_TENSOR_SSM_GATED_NORM },
};

static const RoleName hf_global_names[] = {
  { "model.embed_tokens.weight", LSC_TENSOR_TOKEN_EMBD },
  { "model.norm.weight", LSC_TENSOR_OUTPUT_NORM },
  { "lm_head.weight", LSC_TENSOR_OUTPUT },
  { "backbone.embeddings.weight", LSC_TENSOR_TOKEN_EMBD },
  { "backbone.embedding.weight", LSC_TENSOR_TOKEN_EMBD },
  { "backbone.norm_f.weight", LSC_TENSOR_OUTPUT_NORM },
};

/* Per-layer names after `blk.N.` */
static const RoleName gguf_layer_names[] = {
  { "attn_norm.weight", LSC_TENSOR_ATTN_NORM },
  { "attn_q.weight", LSC_TENSOR_ATTN_Q },
  { "attn_k.weight", LSC_TENSOR_ATTN_K },
  { "attn_v.weight", LSC_TENSOR_ATTN_V },
  { "attn_output.weight", LSC_TENSOR_ATTN_O },
  { "attn_q.bias", LSC_TENSOR_ATTN_Q_BIAS },
  { "attn_k.bias", LSC_TENSOR_ATTN_K_BIAS },
  { "attn_v.bias", LSC_TENSOR_ATTN_V_BIAS },
  { "ffn_norm.weight", LSC_TENSOR_FFN_NORM },
  { "ffn_gate.weight", LSC_TENSOR_FFN_GATE },
  { "ffn_up.weight", LSC_TENSOR_FFN_UP },
  { "ffn_down.weight", LSC_TENSOR_FFN_DOWN },
  { "ssm_in.weight", LSC_TENSOR_SSM_IN },
  { "ssm_conv1d.weight", LSC_TENSOR_SSM_CONV1D },
  { "ssm_conv1d.bias", LSC_TENSOR_SSM_CONV1D_BIAS },
  { "ssm_x.weight", LSC_TENSOR_SSM_X },
  { "ssm_dt.weight", LSC_TENSOR_SSM_DT },
  { "ssm_dt.bias", LSC_TENSOR_SSM_DT_BIAS },
  { "ssm_a", LSC_TENSOR_SSM_A },
  { "ssm_d", LSC_TENSOR_SSM_D },
  { "ssm_out.weight", LSC_TENSOR_SSM_OUT },
  { "ssm_norm.weight", LSC_TENSOR_SSM_GATED_NORM },
};

static const RoleName gguf_global_names[] = {
  { "token_embd.weight", LSC_TENSOR_TOKEN_EMBD },
  { "output_norm.weight", LSC_TENSOR_OUTPUT_NORM },
  { "output.weight", LSC_TENSOR_OUTPUT },
};

static const char *const role_names[LSC_TENSOR_N_ROLES] = {
  [LSC_TENSOR_UNKNOWN] = "-",
  [LSC_TENSOR_TOKEN_EMBD] = "token_embd",
  [LSC_TENSOR_OUTPUT_NORM] = "output_norm",
  [LSC_TENSOR_OUTPUT] = "output",
  [LSC_TENSOR_ATTN_NORM] = "attn_norm",
  [LSC_TENSOR_ATTN_Q] = "attn_q",
  [LSC_TENSOR_ATTN_K] = "attn_k",
  [LSC_TENSOR_ATTN_V] = "attn_v",
  [LSC_TENSOR_ATTN_O] = "attn_output",
  [LSC_TENSOR_ATTN_Q_BIAS] = "attn_q.bias",
  [LSC_TENSOR_ATTN_K_BIAS] = "attn_k.bias",
  [LSC_TENSOR_ATTN_V_BIAS] = "attn_v.bias",
  [LSC_TENSOR_FFN_NORM] = "ffn_norm",
  [LSC_TENSOR_FFN_GATE] = "ffn_gate",
  [LSC_TENSOR_FFN_UP] = "ffn_up",
  [LSC_TENSOR_FFN_DOWN] = "ffn_down",
  [LSC_TENSOR_SSM_NORM] = "ssm_block_norm",
  [LSC_TENSOR_SSM_IN] = "ssm_in",
  [LSC_TENSOR_SSM_CONV1D] = "ssm_conv1d",
  [LSC_TENSOR_SSM_CONV1D_BIAS] = "ssm_conv1d.bias",
  [LSC_TENSOR_SSM_X] = "ssm_x",
  [LSC_TENSOR_SSM_DT] = "ssm_dt",
  [LSC_TENSOR_SSM_DT_BIAS] = "ssm_dt.bias",
  [LSC_TENSOR_SSM_A_LOG] = "ssm_a_log",
  [LSC_TENSOR_SSM_A] = "ssm_a",
  [LSC_TENSOR_SSM_D] = "ssm_d",
  [LSC_TENSOR_SSM_OUT] = "ssm_out",
  [LSC_TENSOR_SSM_GATED_NORM] = "ssm_norm",
};

const char *
lsc_tensor_role_name (LscTensorRole role)
{
  return (unsigned) role < LSC_TENSOR_N_ROLES ? role_names[role] : "?";
}

static LscTensorRole
lookup (const RoleName *table, gsize n, const char *name)
{
  for (gsize i = 0; i < n; i++)
    if (strcmp (table[i].suffix, name) == 0)
      return table[i].role;
  return LSC_TENSOR_UNKNOWN;
}

/* If name is `prefix<digits>.rest`, returns rest and stores the layer. */
static const char *
strip_layer_prefix (const char *name, const char *prefix, int *layer)
{
  if (!g_str_has_prefix (name, prefix))
    return NULL;
  const char *p = name + strlen (prefix);
  char *end = NULL;
  if (!g_ascii_isdigit (*p))
    return NULL;
  guint64 v = g_ascii_strtoull (p, &end, 10);
  if (*end != '.' || v > G_MAXINT)
    return NULL;
  *layer = (int) v;
  return end + 1;
}

static void
name_to_role (const char *name, gboolean ssm, LscTensorRole *role, int *layer)
{
  const char *rest;

  *layer = -1;
  if ((rest = strip_layer_prefix (name, "blk.", layer)) != NULL)
    {
      *role = lookup (gguf_layer_names, G_N_ELEMENTS (gguf_layer_names), rest);
      /* Mamba GGUFs call the block's input norm attn_norm */
      if (ssm && *role == LSC_TENSOR_ATTN_NORM)
        *role = LSC_TENSOR_SSM_NORM;
    }
  else if ((rest = strip_layer_prefix (name, "model.layers.", layer)) != NULL
           || (rest = strip_layer_prefix (name, "backbone.layers.", layer)) != NULL)
    *role = lookup (hf_layer_names, G_N_ELEMENTS (hf_layer_names), rest);
  else
    {
      *role = lookup (gguf_global_names, G_N_ELEMENTS (gguf_global_names), name);
      if (*role == LSC_TENSOR_UNKNOWN)
        *role = lookup (hf_global_names, G_N_ELEMENTS (hf_global_names), name);
    }
  if (*role == LSC_TENSOR_UNKNOWN)
    *layer = -1;
}

static const char *
model_file (const LscModel *model)
{
  return model->path;
}

/* Checks one required or optional tensor against its expected shape
 * (n_dims entries of `shape`, 0 = any). */
static gboolean
check_weight (const LscModel *model, LscTensorRole role, int layer, gboolean required,
              int n_dims, gint64 d0, gint64 d1, GError **error)
{
  const LscTensor *t = lsc_model_get_weight (model, role, layer);
  const gint64 want[2] = { d0, d1 };

  if (t == NULL)
    {
      if (!required)
        return TRUE;
      if (layer >= 0)
        g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_MISSING_TENSOR,
                     "%s: layer %d has no %s tensor", model_file (model), layer,
                     lsc_tensor_role_name (role));
      else
        g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_MISSING_TENSOR,
                     "%s: no %s tensor", model_file (model), lsc_tensor_role_name (role));
      return FALSE;
    }

  gboolean ok = t->n_dims == n_dims;
  for (int i = 0; ok && i < n_dims; i++)
    ok = want[i] == 0 || t->shape[i] == want[i];
  if (!ok)
    {
      g_autoptr(GString) got = g_string_new ("[");
      g_autoptr(GString) exp = g_string_new ("[");
      for (int i = 0; i < t->n_dims; i++)
        g_string_append_printf (got, i ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, t->shape[i]);
      for (int i = 0; i < n_dims; i++)
        g_string_append_printf (exp, i ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, want[i]);
      g_string_append_c (got, ']');
      g_string_append_c (exp, ']');
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_SHAPE,
                   "%s: tensor '%s' has shape %s, the config implies %s", model_file (model),
                   t->name, got->str, exp->str);
      return FALSE;
    }
  if (t->dtype == LSC_DTYPE_I32 || t->dtype == LSC_DTYPE_I64)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                   "%s: tensor '%s' has integer type %s, expected a float type", model_file (model),
                   t->name, lsc_dtype_name (t->dtype));
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_transformer (LscModel *model, GError **error)
{
  const LscModelConfig *c = &model->config;
  gint64 q = (gint64) c->n_heads * c->head_dim;
  gint64 kv = (gint64) c->n_kv_heads * c->head_dim;

  if (!check_weight (model, LSC_TENSOR_TOKEN_EMBD, -1, TRUE, 2, c->vocab_size, c->dim, error)
      || !check_weight (model, LSC_TENSOR_OUTPUT_NORM, -1, TRUE, 1, c->dim, 0, error)
      || !check_weight (model, LSC_TENSOR_OUTPUT, -1, !c->tied_embeddings, 2, c->vocab_size, c->dim,
                        error))
    return FALSE;

  for (int l = 0; l < c->n_layers; l++)
    {
      if (!check_weight (model, LSC_TENSOR_ATTN_NORM, l, TRUE, 1, c->dim, 0, error)
          || !check_weight (model, LSC_TENSOR_ATTN_Q, l, TRUE, 2, q, c->dim, error)
          || !check_weight (model, LSC_TENSOR_ATTN_K, l, TRUE, 2, kv, c->dim, error)
          || !check_weight (model, LSC_TENSOR_ATTN_V, l, TRUE, 2, kv, c->dim, error)
          || !check_weight (model, LSC_TENSOR_ATTN_O, l, TRUE, 2, c->dim, q, error)
          || !check_weight (model, LSC_TENSOR_ATTN_Q_BIAS, l, c->attn_qkv_bias, 1, q, 0, error)
          || !check_weight (model, LSC_TENSOR_ATTN_K_BIAS, l, c->attn_qkv_bias, 1, kv, 0, error)
          || !check_weight (model, LSC_TENSOR_ATTN_V_BIAS, l, c->attn_qkv_bias, 1, kv, 0, error)
          || !check_weight (model, LSC_TENSOR_FFN_NORM, l, TRUE, 1, c->dim, 0, error)
          || !check_weight (model, LSC_TENSOR_FFN_GATE, l, TRUE, 2, c->hidden_dim, c->dim, error)
          || !check_weight (model, LSC_TENSOR_FFN_UP, l, TRUE, 2, c->hidden_dim, c->dim, error)
          || !check_weight (model, LSC_TENSOR_FFN_DOWN, l, TRUE, 2, c->dim, c->hidden_dim, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
check_mamba (LscModel *model, GError **error)
{
  const LscModelConfig *c = &model->config;
  gint64 e = c->ssm_d_inner;
  gboolean m2 = c->arch == LSC_ARCH_MAMBA2;

  if (!check_weight (model, LSC_TENSOR_TOKEN_EMBD, -1, TRUE, 2, c->vocab_size, c->dim, error)
      || !check_weight (model, LSC_TENSOR_OUTPUT_NORM, -1, TRUE, 1, c->dim, 0, error)
      || !check_weight (model, LSC_TENSOR_OUTPUT, -1, !c->tied_embeddings, 2, c->vocab_size, c->dim,
                        error))
    return FALSE;

  for (int l = 0; l < c->n_layers; l++)
    {
      gboolean has_a_log = lsc_model_get_weight (model, LSC_TENSOR_SSM_A_LOG, l) != NULL;
      /* Mamba-2 projects into z, x, B, C and dt at once: only the input width is fixed */
      if (!check_weight (model, LSC_TENSOR_SSM_NORM, l, TRUE, 1, c->dim, 0, error)
          || !check_weight (model, LSC_TENSOR_SSM_IN, l, TRUE, 2, m2 ? 0 : 2 * e, c->dim, error)
          || !check_weight (model, LSC_TENSOR_SSM_CONV1D, l, TRUE, 2, 0, c->ssm_d_conv, error)
          || !check_weight (model, LSC_TENSOR_SSM_CONV1D_BIAS, l, c->ssm_conv_bias, 1, 0, 0, error)
          || !check_weight (model, LSC_TENSOR_SSM_DT_BIAS, l, TRUE, 1, m2 ? c->ssm_n_heads : e, 0,
                            error)
          || !check_weight (model, LSC_TENSOR_SSM_OUT, l, TRUE, 2, c->dim, e, error))
        return FALSE;
      if (!m2
          && (!check_weight (model, LSC_TENSOR_SSM_X, l, TRUE, 2,
                             c->ssm_dt_rank + 2 * (gint64) c->ssm_d_state, e, error)
              || !check_weight (model, LSC_TENSOR_SSM_DT, l, TRUE, 2, e, c->ssm_dt_rank, error)
              || !check_weight (model, has_a_log ? LSC_TENSOR_SSM_A_LOG : LSC_TENSOR_SSM_A, l, TRUE,
                                2, e, c->ssm_d_state, error)
              || !check_weight (model, LSC_TENSOR_SSM_D, l, TRUE, 1, e, 0, error)))
        return FALSE;
      if (m2 && !check_weight (model, LSC_TENSOR_SSM_GATED_NORM, l, TRUE, 1, e, 0, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
_lsc_model_bind_tensors (LscModel *model, GError **error)
{
  LscModelConfig *c = &model->config;
  gboolean ssm = lsc_arch_is_ssm (c->arch);
  int n_slots = c->n_layers + 1;

  g_return_val_if_fail (c->n_layers > 0, FALSE);

  g_free (model->weight_index);
  model->weight_index = g_new (int, (gsize) LSC_TENSOR_N_ROLES * n_slots);
  for (gsize i = 0; i < (gsize) LSC_TENSOR_N_ROLES * n_slots; i++)
    model->weight_index[i] = -1;

  for (guint i = 0; i < model->tensors->len; i++)
    {
      LscTensor *t = &g_array_index (model->tensors, LscTensor, i);
      name_to_role (t->name, ssm, &t->role, &t->layer);
      if (t->role == LSC_TENSOR_UNKNOWN)
        {
          if (!g_str_has_suffix (t->name, "rotary_emb.inv_freq"))
            _lsc_model_warn (model, "tensor '%s' is not used by the %s forward pass", t->name,
                             lsc_arch_name (c->arch));
          continue;
        }
      if (t->layer >= c->n_layers)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: tensor '%s' belongs to layer %d, but the config has %d layers",
                       model_file (model), t->name, t->layer, c->n_layers);
          return FALSE;
        }
      int *slot = &model->weight_index[t->role * n_slots + (t->layer < 0 ? c->n_layers : t->layer)];
      if (*slot >= 0)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: tensors '%s' and '%s' both hold %s", model_file (model),
                       g_array_index (model->tensors, LscTensor, *slot).name, t->name,
                       lsc_tensor_role_name (t->role));
          return FALSE;
        }
      *slot = (int) i;
    }

  /* the embedding decides the vocabulary when the config does not say */
  const LscTensor *embd = lsc_model_get_weight (model, LSC_TENSOR_TOKEN_EMBD, -1);
  if (c->vocab_size <= 0 && embd != NULL && embd->n_dims == 2)
    c->vocab_size = (int) MIN (embd->shape[0], G_MAXINT);

  return ssm ? check_mamba (model, error) : check_transformer (model, error);
}
