/* SPDX-License-Identifier: MIT
 *
 * lsc-hf.c: Hugging Face model directories.
 *
 * A directory holds
 *
 *   config.json                      the architecture and its hyper-parameters
 *   model.safetensors                the weights (lsc-safetensors.c), or
 *   model.safetensors.index.json     {"metadata": {...}, "weight_map": {tensor: shard}}
 *   model-0000N-of-0000M.safetensors   with the shards it names
 *
 * The Hub cache keeps one repository as
 *
 *   models--org--name/refs/main                a commit hash, e.g. "1f2e3d..."
 *   models--org--name/snapshots/<rev>/<file>   symlinks to ../../blobs/<sha>
 *   models--org--name/blobs/<sha>              the files' contents
 *
 * Given the repository folder we load the snapshot refs/main names (else
 * the newest one); a snapshot folder is an ordinary directory whose
 * symlinks open() follows, so error messages name the file inside it.
 *
 * config.json keys read, by architecture (architectures[0], else
 * model_type):
 *
 *   Llama/Mistral/Qwen2: hidden_size, num_hidden_layers, num_attention_heads,
 *     num_key_value_heads (= heads), head_dim (= hidden / heads),
 *     intermediate_size, rms_norm_eps (1e-6), rope_theta (10000), vocab_size,
 *     max_position_embeddings, tie_word_embeddings (false), attention_bias
 *     (Llama, Mistral; Qwen2 always has q/k/v biases), sliding_window
 *     (Mistral; Qwen2 only with use_sliding_window, from max_window_layers),
 *     rope_scaling {rope_type|type, factor, original_max_position_embeddings,
 *     low_freq_factor, high_freq_factor, beta_fast, beta_slow,
 *     attention_factor}, bos_token_id, eos_token_id.
 *   Mamba: hidden_size, num_hidden_layers, intermediate_size (= expand *
 *     hidden), state_size, conv_kernel, time_step_rank ("auto" = ceil(hidden
 *     / 16)), use_conv_bias, use_bias, layer_norm_epsilon, vocab_size,
 *     tie_word_embeddings (true), bos_token_id, eos_token_id.
 *   Mamba-2: as Mamba plus n_groups, head_dim, num_heads
 *     (num_heads * head_dim = d_inner); tie_word_embeddings defaults to false
 *     as in transformers' Mamba2Config.
 */
#include "config.h"

#include "lsc-model-private.h"
#include "lsc-error.h"
#include "lsc-json.h"

#include <json-c/json.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#define LSC_HF_MAX_DIM       (1 << 20)   /* hidden, FFN and SSM sizes */
#define LSC_HF_MAX_HEADS     65536
#define LSC_HF_MAX_LAYERS    65536
#define LSC_HF_MAX_VOCAB     (1 << 24)
#define LSC_HF_MAX_POSITION  (1 << 30)
#define LSC_HF_MAX_JSON      (100 * 1024 * 1024)


/* A JSON object being read, with what error messages call it. */
typedef struct {
  const char *file;     /* path of the JSON file */
  const char *prefix;   /* "" or "rope_scaling." */
  json_object *obj;
} HfJson;

/* --- Hub cache layout ---------------------------------------------------- */

static gboolean
is_plain_file_name (const char *name)
{
  return name[0] != '\0' && strchr (name, G_DIR_SEPARATOR) == NULL
         && !g_str_equal (name, ".") && !g_str_equal (name, "..");
}

/* The snapshot refs/main names, or NULL. */
static char *
snapshot_from_ref (const char *repo)
{
  g_autofree char *ref_path = g_build_filename (repo, "refs", "main", NULL);
  g_autofree char *contents = NULL;
  g_autofree char *snapshot = NULL;

  if (!g_file_get_contents (ref_path, &contents, NULL, NULL))
    return NULL;
  g_strstrip (contents);
  if (!is_plain_file_name (contents))
    return NULL;
  snapshot = g_build_filename (repo, "snapshots", contents, NULL);
  if (!g_file_test (snapshot, G_FILE_TEST_IS_DIR))
    return NULL;
  return g_steal_pointer (&snapshot);
}

/* The newest folder in snapshots/ (by modification time, then name), or NULL. */
static char *
newest_snapshot (const char *repo)
{
  g_autofree char *snapshots = g_build_filename (repo, "snapshots", NULL);
  g_autoptr(GDir) dir = g_dir_open (snapshots, 0, NULL);
  g_autofree char *best = NULL;
  gint64 best_mtime = G_MININT64;
  const char *name;

  if (dir == NULL)
    return NULL;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (snapshots, name, NULL);
      struct stat st;

      if (stat (path, &st) != 0 || !S_ISDIR (st.st_mode))
        continue;
      if (best == NULL || (gint64) st.st_mtime > best_mtime
          || ((gint64) st.st_mtime == best_mtime && strcmp (path, best) > 0))
        {
          g_free (best);
          best = g_steal_pointer (&path);
          best_mtime = (gint64) st.st_mtime;
        }
    }
  return g_steal_pointer (&best);
}

char *
_lsc_hf_resolve_snapshot (const char *dir)
{
  g_autofree char *snapshots = NULL;
  char *snapshot;

  g_return_val_if_fail (dir != NULL, NULL);

  snapshots = g_build_filename (dir, "snapshots", NULL);
  if (!g_file_test (snapshots, G_FILE_TEST_IS_DIR))
    return g_strdup (dir);

  snapshot = snapshot_from_ref (dir);
  if (snapshot == NULL)
    snapshot = newest_snapshot (dir);
  return snapshot != NULL ? snapshot : g_strdup (dir);
}

/* --- JSON files ---------------------------------------------------------- */

static json_object *
read_json_file (const char *path, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *text = NULL;
  gsize len = 0;
  struct stat st;

  if (stat (path, &st) == 0 && (guint64) st.st_size > LSC_HF_MAX_JSON)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %" G_GUINT64_FORMAT " bytes is over the %d-byte limit for JSON files",
                   path, (guint64) st.st_size, LSC_HF_MAX_JSON);
      return NULL;
    }
  if (!g_file_get_contents (path, &text, &len, &local_error))
    {
      g_set_error (error, LSC_MODEL_ERROR,
                   g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                   ? LSC_MODEL_ERROR_NOT_FOUND : LSC_MODEL_ERROR_IO,
                   "%s", local_error->message);
      return NULL;
    }
  return lsc_json_parse (path, text, len, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT, error);
}

/* A short rendering of a JSON value for messages. */
static char *
json_repr (json_object *value)
{
  const char *s = json_object_to_json_string_ext (value, JSON_C_TO_STRING_PLAIN
                                                                   | JSON_C_TO_STRING_NOSLASHESCAPE);

  if (strlen (s) > 40)
    return g_strdup_printf ("%.37s...", s);
  return g_strdup (s);
}

static gboolean
set_type_error (const HfJson *j, const char *key, const char *expected, json_object *found,
                GError **error)
{
  g_autofree char *repr = json_repr (found);

  g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
               "%s: '%s%s': expected %s, found %s %s", j->file, j->prefix, key, expected,
               json_type_to_name (json_object_get_type (found)), repr);
  return FALSE;
}

static gboolean
set_missing_error (const HfJson *j, const char *key, GError **error)
{
  g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
               "%s: '%s%s' is missing", j->file, j->prefix, key);
  return FALSE;
}

/* The value of `key`, or NULL when it is absent or null. */
static json_object *
lookup (const HfJson *j, const char *key)
{
  json_object *value = NULL;

  if (!json_object_object_get_ex (j->obj, key, &value))
    return NULL;
  return value;
}

/* An integer in [min, max]; `*out` is left alone when the key is absent or
 * null and not `required`. */
static gboolean
get_int (const HfJson *j, const char *key, gboolean required, gint64 min, gint64 max,
         int *out, GError **error)
{
  json_object *value = lookup (j, key);
  gint64 v;

  if (value == NULL)
    return required ? set_missing_error (j, key, error) : TRUE;
  if (!json_object_is_type (value, json_type_int))
    return set_type_error (j, key, "an integer", value, error);
  v = json_object_get_int64 (value);
  if (v < min || v > max)   /* json-c clamps integers past G_MAXINT64 to it */
    {
      g_autofree char *repr = json_repr (value);
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: '%s%s' = %s is out of range [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]",
                   j->file, j->prefix, key, repr, min, max);
      return FALSE;
    }
  *out = (int) v;
  return TRUE;
}

/* A finite number (integer or not) > 0, or >= 0 when `may_be_zero`. */
static gboolean
get_double (const HfJson *j, const char *key, gboolean required, gboolean may_be_zero,
            double *out, GError **error)
{
  json_object *value = lookup (j, key);
  double v;

  if (value == NULL)
    return required ? set_missing_error (j, key, error) : TRUE;
  if (!json_object_is_type (value, json_type_int) && !json_object_is_type (value, json_type_double))
    return set_type_error (j, key, "a number", value, error);
  v = json_object_get_double (value);
  if (!isfinite (v) || v < 0 || (v == 0 && !may_be_zero))
    {
      g_autofree char *repr = json_repr (value);
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: '%s%s' = %s must be a %s finite number", j->file, j->prefix, key, repr,
                   may_be_zero ? "non-negative" : "positive");
      return FALSE;
    }
  *out = v;
  return TRUE;
}

static gboolean
get_bool (const HfJson *j, const char *key, gboolean *out, GError **error)
{
  json_object *value = lookup (j, key);

  if (value == NULL)
    return TRUE;
  if (!json_object_is_type (value, json_type_boolean))
    return set_type_error (j, key, "a boolean", value, error);
  *out = json_object_get_boolean (value);
  return TRUE;
}

/* bos_token_id / eos_token_id: an id, a list of ids (the first counts), or
 * null (-1). */
static gboolean
get_token_id (const HfJson *j, const char *key, int *out, GError **error)
{
  json_object *value = lookup (j, key);

  *out = -1;
  if (value != NULL && json_object_is_type (value, json_type_array))
    {
      if (json_object_array_length (value) == 0)
        return TRUE;
      value = json_object_array_get_idx (value, 0);
    }
  if (value == NULL)
    return TRUE;
  if (!json_object_is_type (value, json_type_int))
    return set_type_error (j, key, "a token id, a list of them or null", value, error);
  if (json_object_get_int64 (value) < 0 || json_object_get_int64 (value) > G_MAXINT)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: '%s%s' = %" G_GINT64_FORMAT " is not a token id", j->file, j->prefix,
                   key, json_object_get_int64 (value));
      return FALSE;
    }
  *out = (int) json_object_get_int64 (value);
  return TRUE;
}

/* --- config.json --------------------------------------------------------- */

static const struct {
  const char *architecture;
  const char *model_type;
  LscArch arch;
} hf_archs[] = {
  { "LlamaForCausalLM", "llama", LSC_ARCH_LLAMA },
  { "MistralForCausalLM", "mistral", LSC_ARCH_MISTRAL },
  { "Qwen2ForCausalLM", "qwen2", LSC_ARCH_QWEN2 },
  { "MambaForCausalLM", "mamba", LSC_ARCH_MAMBA },
  { "Mamba2ForCausalLM", "mamba2", LSC_ARCH_MAMBA2 },
};

static gboolean
parse_arch (const HfJson *j, LscArch *arch, GError **error)
{
  json_object *archs = lookup (j, "architectures");
  json_object *type = lookup (j, "model_type");

  if (archs != NULL && !json_object_is_type (archs, json_type_array))
    return set_type_error (j, "architectures", "a list of class names", archs, error);
  if (archs != NULL && json_object_array_length (archs) > 0)
    {
      json_object *first = json_object_array_get_idx (archs, 0);
      if (first == NULL || !json_object_is_type (first, json_type_string))
        return set_type_error (j, "architectures[0]", "a class name", first, error);
      for (gsize i = 0; i < G_N_ELEMENTS (hf_archs); i++)
        if (g_str_equal (json_object_get_string (first), hf_archs[i].architecture))
          {
            *arch = hf_archs[i].arch;
            return TRUE;
          }
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_ARCH,
                   "%s: architectures[0]: '%s' is not supported (LlamaForCausalLM, "
                   "MistralForCausalLM, Qwen2ForCausalLM, MambaForCausalLM and "
                   "Mamba2ForCausalLM are)", j->file, json_object_get_string (first));
      return FALSE;
    }

  if (type == NULL)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: neither 'architectures' nor 'model_type' is set", j->file);
      return FALSE;
    }
  if (!json_object_is_type (type, json_type_string))
    return set_type_error (j, "model_type", "a string", type, error);
  for (gsize i = 0; i < G_N_ELEMENTS (hf_archs); i++)
    if (g_str_equal (json_object_get_string (type), hf_archs[i].model_type))
      {
        *arch = hf_archs[i].arch;
        return TRUE;
      }
  g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_ARCH,
               "%s: model_type: '%s' is not supported (llama, mistral, qwen2, mamba and "
               "mamba2 are)", j->file, json_object_get_string (type));
  return FALSE;
}

/* rope_scaling (transformers 4) or rope_parameters (transformers 5, which
 * also carries rope_theta). A top-level original_max_position_embeddings
 * wins over the one inside, as in transformers. */
static gboolean
parse_rope_scaling (const HfJson *root, LscModelConfig *c, GError **error)
{
  LscRopeScaling *rs = &c->rope_scaling;
  static const struct {
    const char *name;
    LscRopeScalingType type;
  } types[] = {
    { "default", LSC_ROPE_SCALING_NONE },
    { "linear", LSC_ROPE_SCALING_LINEAR },
    { "dynamic", LSC_ROPE_SCALING_DYNAMIC },
    { "yarn", LSC_ROPE_SCALING_YARN },
    { "llama3", LSC_ROPE_SCALING_LLAMA3 },
  };
  gboolean v5 = lookup (root, "rope_scaling") == NULL && lookup (root, "rope_parameters") != NULL;
  const char *key = v5 ? "rope_parameters" : "rope_scaling";
  json_object *value = lookup (root, key);
  HfJson j = { root->file, v5 ? "rope_parameters." : "rope_scaling.", value };
  json_object *type;
  const char *type_key = "rope_type";
  gboolean known = FALSE;

  *rs = (LscRopeScaling) { .type = LSC_ROPE_SCALING_NONE, .factor = 1.0,
                           .beta_fast = 32.0, .beta_slow = 1.0 };
  if (value == NULL)
    return TRUE;
  if (!json_object_is_type (value, json_type_object))
    return set_type_error (root, key, "an object or null", value, error);
  if (!get_double (&j, "rope_theta", FALSE, FALSE, &c->rope_theta, error))
    return FALSE;

  type = lookup (&j, "rope_type");
  if (type == NULL)
    {
      type_key = "type";
      type = lookup (&j, "type");
    }
  if (type == NULL && v5)
    return TRUE;
  if (type == NULL)
    return set_missing_error (&j, "rope_type", error);
  if (!json_object_is_type (type, json_type_string))
    return set_type_error (&j, type_key, "a string", type, error);
  for (gsize i = 0; i < G_N_ELEMENTS (types); i++)
    if (g_str_equal (json_object_get_string (type), types[i].name))
      {
        rs->type = types[i].type;
        known = TRUE;
      }
  if (!known)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: '%s%s': '%s' is not supported (default, linear, dynamic, "
                   "yarn and llama3 are)", root->file, j.prefix, type_key,
                   json_object_get_string (type));
      return FALSE;
    }
  if (rs->type == LSC_ROPE_SCALING_NONE)
    return TRUE;

  if (!get_double (&j, "factor", TRUE, FALSE, &rs->factor, error)
      || !get_int (&j, "original_max_position_embeddings",
                   rs->type == LSC_ROPE_SCALING_LLAMA3, 1, LSC_HF_MAX_POSITION,
                   &rs->original_max_position, error)
      || !get_int (root, "original_max_position_embeddings", FALSE, 1, LSC_HF_MAX_POSITION,
                   &rs->original_max_position, error))
    return FALSE;

  if (rs->type == LSC_ROPE_SCALING_LLAMA3)
    {
      if (!get_double (&j, "low_freq_factor", TRUE, FALSE, &rs->low_freq_factor, error)
          || !get_double (&j, "high_freq_factor", TRUE, FALSE, &rs->high_freq_factor, error))
        return FALSE;
      if (rs->high_freq_factor <= rs->low_freq_factor)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                       "%s: 'rope_scaling.high_freq_factor' = %g must be greater than "
                       "'rope_scaling.low_freq_factor' = %g", root->file,
                       rs->high_freq_factor, rs->low_freq_factor);
          return FALSE;
        }
    }
  if (rs->type == LSC_ROPE_SCALING_YARN)
    {
      if (!get_double (&j, "beta_fast", FALSE, FALSE, &rs->beta_fast, error)
          || !get_double (&j, "beta_slow", FALSE, FALSE, &rs->beta_slow, error)
          || !get_double (&j, "attention_factor", FALSE, TRUE, &rs->attention_factor, error))
        return FALSE;
    }
  return TRUE;
}

/* Qwen2's layer_types, when given, overrides max_window_layers: the engine
 * supports full layers first, then sliding ones (what max_window_layers
 * describes). */
static gboolean
parse_layer_types (const HfJson *j, LscModelConfig *c, GError **error)
{
  json_object *types = lookup (j, "layer_types");
  int first_sliding = -1;

  if (types == NULL)
    return TRUE;
  if (!json_object_is_type (types, json_type_array)
      || json_object_array_length (types) != (size_t) c->n_layers)
    return set_type_error (j, "layer_types", "an array with one entry per layer", types, error);
  for (int i = 0; i < c->n_layers; i++)
    {
      const char *t = json_object_get_string (json_object_array_get_idx (types, i));
      gboolean sliding = g_strcmp0 (t, "sliding_attention") == 0;
      if (!sliding && g_strcmp0 (t, "full_attention") != 0)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                       "%s: 'layer_types[%d]': expected \"full_attention\" or "
                       "\"sliding_attention\", found %s", j->file, i, t != NULL ? t : "null");
          return FALSE;
        }
      if (sliding && first_sliding < 0)
        first_sliding = i;
      if (!sliding && first_sliding >= 0)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                       "%s: 'layer_types[%d]': a full-attention layer after sliding ones is not "
                       "supported", j->file, i);
          return FALSE;
        }
    }
  if (first_sliding < 0)
    c->sliding_window = 0;
  else
    c->max_window_layers = first_sliding;
  return TRUE;
}

static gboolean
parse_transformer (const HfJson *j, LscModelConfig *c, GError **error)
{
  gboolean use_sliding_window = FALSE;

  c->head_dim = 0;
  c->norm_eps = 1e-6;
  c->rope_theta = 10000.0;
  c->max_position = c->arch == LSC_ARCH_LLAMA ? 2048
                    : c->arch == LSC_ARCH_MISTRAL ? 131072 : 32768;
  c->rope_layout = LSC_ROPE_NEOX;

  if (!get_int (j, "hidden_size", TRUE, 1, LSC_HF_MAX_DIM, &c->dim, error)
      || !get_int (j, "num_hidden_layers", TRUE, 1, LSC_HF_MAX_LAYERS, &c->n_layers, error)
      || !get_int (j, "num_attention_heads", TRUE, 1, LSC_HF_MAX_HEADS, &c->n_heads, error))
    return FALSE;
  c->n_kv_heads = c->n_heads;
  if (!get_int (j, "num_key_value_heads", FALSE, 1, LSC_HF_MAX_HEADS, &c->n_kv_heads, error)
      || !get_int (j, "head_dim", FALSE, 1, LSC_HF_MAX_DIM, &c->head_dim, error)
      || !get_int (j, "intermediate_size", TRUE, 1, LSC_HF_MAX_DIM, &c->hidden_dim, error)
      || !get_int (j, "vocab_size", TRUE, 1, LSC_HF_MAX_VOCAB, &c->vocab_size, error)
      || !get_int (j, "max_position_embeddings", FALSE, 1, LSC_HF_MAX_POSITION,
                   &c->max_position, error)
      || !get_double (j, "rms_norm_eps", FALSE, FALSE, &c->norm_eps, error)
      || !get_double (j, "rope_theta", FALSE, FALSE, &c->rope_theta, error)
      || !get_bool (j, "tie_word_embeddings", &c->tied_embeddings, error)
      || !parse_rope_scaling (j, c, error))
    return FALSE;

  if (c->n_heads % c->n_kv_heads != 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: 'num_key_value_heads' = %d does not divide 'num_attention_heads' = %d",
                   j->file, c->n_kv_heads, c->n_heads);
      return FALSE;
    }
  if (c->head_dim == 0)
    {
      if (c->dim % c->n_heads != 0)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                       "%s: 'num_attention_heads' = %d does not divide 'hidden_size' = %d "
                       "and there is no 'head_dim'", j->file, c->n_heads, c->dim);
          return FALSE;
        }
      c->head_dim = c->dim / c->n_heads;
    }
  if (c->head_dim % 2 != 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: 'head_dim' = %d must be even for rotary embeddings", j->file,
                   c->head_dim);
      return FALSE;
    }
  if ((gint64) c->n_heads * c->head_dim > LSC_HF_MAX_DIM)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: 'num_attention_heads' * 'head_dim' = %d * %d is over %d", j->file,
                   c->n_heads, c->head_dim, LSC_HF_MAX_DIM);
      return FALSE;
    }

  switch (c->arch)
    {
    case LSC_ARCH_QWEN2:
      c->attn_qkv_bias = TRUE;
      if (!get_bool (j, "use_sliding_window", &use_sliding_window, error))
        return FALSE;
      if (use_sliding_window)
        {
          c->sliding_window = 4096;
          c->max_window_layers = 28;
          if (!get_int (j, "sliding_window", FALSE, 1, G_MAXINT, &c->sliding_window, error)
              || !get_int (j, "max_window_layers", FALSE, 0, LSC_HF_MAX_LAYERS,
                           &c->max_window_layers, error)
              || !parse_layer_types (j, c, error))
            return FALSE;
        }
      break;
    case LSC_ARCH_MISTRAL:
      /* transformers' MistralConfig default: absent means 4096, null means none */
      if (!json_object_object_get_ex (j->obj, "sliding_window", NULL))
        c->sliding_window = 4096;
      else if (!get_int (j, "sliding_window", FALSE, 1, G_MAXINT, &c->sliding_window, error))
        return FALSE;
      G_GNUC_FALLTHROUGH;
    case LSC_ARCH_LLAMA:
      if (!get_bool (j, "attention_bias", &c->attn_qkv_bias, error))
        return FALSE;
      break;
    case LSC_ARCH_MAMBA:
    case LSC_ARCH_MAMBA2:
    default:
      g_assert_not_reached ();
    }
  return TRUE;
}

static gboolean
parse_mamba (const HfJson *j, LscModelConfig *c, GError **error)
{
  json_object *dt_rank;
  int expand = 2;

  c->norm_eps = 1e-5;
  c->ssm_d_state = c->arch == LSC_ARCH_MAMBA ? 16 : 128;
  c->ssm_d_conv = 4;
  c->ssm_conv_bias = TRUE;
  c->ssm_proj_bias = FALSE;
  c->tied_embeddings = c->arch == LSC_ARCH_MAMBA;
  c->rope_layout = LSC_ROPE_NEOX;

  if (!get_int (j, "hidden_size", TRUE, 1, LSC_HF_MAX_DIM, &c->dim, error)
      || !get_int (j, "num_hidden_layers", TRUE, 1, LSC_HF_MAX_LAYERS, &c->n_layers, error)
      || !get_int (j, "vocab_size", TRUE, 1, LSC_HF_MAX_VOCAB, &c->vocab_size, error)
      || !get_int (j, "expand", FALSE, 1, 64, &expand, error)
      || !get_int (j, "state_size", FALSE, 1, LSC_HF_MAX_DIM, &c->ssm_d_state, error)
      || !get_int (j, "conv_kernel", FALSE, 1, 1024, &c->ssm_d_conv, error)
      || !get_double (j, "layer_norm_epsilon", FALSE, FALSE, &c->norm_eps, error)
      || !get_bool (j, "use_conv_bias", &c->ssm_conv_bias, error)
      || !get_bool (j, "use_bias", &c->ssm_proj_bias, error)
      || !get_bool (j, "tie_word_embeddings", &c->tied_embeddings, error))
    return FALSE;

  if ((gint64) expand * c->dim > LSC_HF_MAX_DIM)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: 'expand' * 'hidden_size' = %d * %d is over %d", j->file, expand,
                   c->dim, LSC_HF_MAX_DIM);
      return FALSE;
    }
  c->ssm_d_inner = expand * c->dim;
  if (!get_int (j, "intermediate_size", FALSE, 1, LSC_HF_MAX_DIM, &c->ssm_d_inner, error))
    return FALSE;

  /* time_step_rank: an integer or "auto" (the default) = ceil(hidden / 16). */
  c->ssm_dt_rank = (c->dim + 15) / 16;
  dt_rank = lookup (j, "time_step_rank");
  if (dt_rank != NULL && json_object_is_type (dt_rank, json_type_string))
    {
      if (!g_str_equal (json_object_get_string (dt_rank), "auto"))
        return set_type_error (j, "time_step_rank", "an integer or \"auto\"", dt_rank, error);
    }
  else if (!get_int (j, "time_step_rank", FALSE, 1, LSC_HF_MAX_DIM, &c->ssm_dt_rank, error))
    return FALSE;

  if (c->arch == LSC_ARCH_MAMBA2)
    {
      c->ssm_n_groups = 8;
      c->ssm_head_dim = 64;
      c->ssm_n_heads = 128;
      if (!get_int (j, "n_groups", FALSE, 1, LSC_HF_MAX_HEADS, &c->ssm_n_groups, error)
          || !get_int (j, "head_dim", FALSE, 1, LSC_HF_MAX_DIM, &c->ssm_head_dim, error)
          || !get_int (j, "num_heads", FALSE, 1, LSC_HF_MAX_HEADS, &c->ssm_n_heads, error))
        return FALSE;
      if ((gint64) c->ssm_n_heads * c->ssm_head_dim != c->ssm_d_inner)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                       "%s: 'num_heads' * 'head_dim' = %d * %d does not equal the inner "
                       "size %d", j->file, c->ssm_n_heads, c->ssm_head_dim, c->ssm_d_inner);
          return FALSE;
        }
      if (c->ssm_n_heads % c->ssm_n_groups != 0)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                       "%s: 'n_groups' = %d does not divide 'num_heads' = %d", j->file,
                       c->ssm_n_groups, c->ssm_n_heads);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
parse_config (const char *path, LscModelConfig *c, GError **error)
{
  g_autoptr(json_object) root = read_json_file (path, error);
  HfJson j = { path, "", root };

  if (root == NULL)
    {
      /* A config.json that is no JSON is a bad config, not a corrupt file. */
      if (error != NULL && g_error_matches (*error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT))
        (*error)->code = LSC_MODEL_ERROR_BAD_CONFIG;
      return FALSE;
    }
  if (!json_object_is_type (root, json_type_object))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: expected a JSON object, found %s", path,
                   json_type_to_name (json_object_get_type (root)));
      return FALSE;
    }

  if (!parse_arch (&j, &c->arch, error)
      || !get_token_id (&j, "bos_token_id", &c->bos_id, error)
      || !get_token_id (&j, "eos_token_id", &c->eos_id, error))
    return FALSE;

  if (lsc_arch_is_ssm (c->arch))
    return parse_mamba (&j, c, error);
  return parse_transformer (&j, c, error);
}

/* --- weights ------------------------------------------------------------- */

/* GCompareFunc for a GPtrArray of strings: gets pointers to the elements. */
static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static gboolean
load_sharded (LscModel *model, const char *dir, const char *index_path, GError **error)
{
  g_autoptr(json_object) root = read_json_file (index_path, error);
  g_autoptr(GPtrArray) shards = NULL;   /* (element-type utf8) sorted, unique; not owned */
  json_object *weight_map = NULL;
  HfJson j = { index_path, "", root };

  if (root == NULL)
    return FALSE;
  if (!json_object_is_type (root, json_type_object))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: expected a JSON object, found %s", index_path,
                   json_type_to_name (json_object_get_type (root)));
      return FALSE;
    }
  weight_map = lookup (&j, "weight_map");
  if (weight_map == NULL)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: 'weight_map' is missing", index_path);
      return FALSE;
    }
  if (!json_object_is_type (weight_map, json_type_object))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: 'weight_map': expected an object, found %s", index_path,
                   json_type_to_name (json_object_get_type (weight_map)));
      return FALSE;
    }

  /* Shard names must be plain file names in `dir`. */
  shards = g_ptr_array_new ();
  json_object_object_foreach (weight_map, name, shard)
    {
      const char *file;

      if (!json_object_is_type (shard, json_type_string)
          || !is_plain_file_name (json_object_get_string (shard)))
        {
          g_autofree char *repr = json_repr (shard);
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: 'weight_map': tensor '%s': %s is not a file name in the directory",
                       index_path, name, repr);
          return FALSE;
        }
      file = json_object_get_string (shard);
      if (!g_ptr_array_find_with_equal_func (shards, file, g_str_equal, NULL))
        g_ptr_array_add (shards, (gpointer) file);
    }
  if (shards->len == 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: 'weight_map' is empty", index_path);
      return FALSE;
    }
  g_ptr_array_sort (shards, compare_names);

  for (guint s = 0; s < shards->len; s++)
    {
      const char *shard_name = g_ptr_array_index (shards, s);
      g_autofree char *shard_path = g_build_filename (dir, shard_name, NULL);
      guint first = model->tensors->len;
      guint file_index;

      if (!g_file_test (shard_path, G_FILE_TEST_EXISTS))
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND,
                       "%s: 'weight_map' names shard %s, which does not exist in %s",
                       index_path, shard_name, dir);
          return FALSE;
        }
      if (!_lsc_safetensors_add_file (model, shard_path, &file_index, error))
        return FALSE;
      g_assert (file_index == s);

      /* Every tensor of the shard must be listed for it. */
      for (guint t = first; t < model->tensors->len; t++)
        {
          const LscTensor *tensor = &g_array_index (model->tensors, LscTensor, t);
          json_object *listed = NULL;

          if (!json_object_object_get_ex (weight_map, tensor->name, &listed)
              || !g_str_equal (json_object_get_string (listed), shard_name))
            {
              g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                           "%s: tensor '%s' is in this shard, but %s maps it to %s",
                           shard_path, tensor->name, index_path,
                           listed != NULL ? json_object_get_string (listed) : "no shard");
              return FALSE;
            }
        }
    }

  /* Every tensor listed must have been found in its shard. */
  json_object_object_foreach (weight_map, listed_name, listed_shard)
    {
      if (lsc_model_find_tensor (model, listed_name) == NULL)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_MISSING_TENSOR,
                       "%s: tensor '%s' is listed in weight_map but missing from %s/%s",
                       index_path, listed_name, dir, json_object_get_string (listed_shard));
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
load_weights (LscModel *model, const char *dir, GError **error)
{
  g_autofree char *single = g_build_filename (dir, "model.safetensors", NULL);
  g_autofree char *index = g_build_filename (dir, "model.safetensors.index.json", NULL);

  if (g_file_test (single, G_FILE_TEST_EXISTS))
    return _lsc_safetensors_add_file (model, single, NULL, error);
  if (g_file_test (index, G_FILE_TEST_EXISTS))
    return load_sharded (model, dir, index, error);

  g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND,
               "%s: no weights: neither model.safetensors nor model.safetensors.index.json "
               "is there", dir);
  return FALSE;
}

gboolean
_lsc_model_load_hf (LscModel *model, const char *dir, GError **error)
{
  g_autofree char *snapshot = NULL;
  g_autofree char *config_path = NULL;
  LscModelConfig config;

  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (dir != NULL, FALSE);

  snapshot = _lsc_hf_resolve_snapshot (dir);
  config_path = g_build_filename (snapshot, "config.json", NULL);

  /* Start from the fresh model's defaults (bos/eos -1, rope factor 1). */
  config = model->config;
  if (!g_file_test (config_path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND,
                   "%s: config.json is missing", snapshot);
      return FALSE;
    }
  if (!parse_config (config_path, &config, error))
    return FALSE;
  model->config = config;

  if (!load_weights (model, snapshot, error))
    return FALSE;
  return _lsc_model_bind_tensors (model, error);
}
