/* SPDX-License-Identifier: MIT
 *
 * Synthetic Llama-family and Mamba models: the shape of a real checkpoint with random
 * weights generated in memory, for benchmarks and tests that need a big model
 * without shipping one.
 *
 * The weights live in one anonymous memory map wrapped in an LscMappedFile
 * (lsc_mapped_file_free () unmaps it like a file map), under GGUF names
 * (token_embd.weight, blk.N.attn_q.weight, ...), and are bound by the same
 * _lsc_model_bind_tensors () as every loader. Matrices are uniform(-a, a) with
 * a = 1 / sqrt(cols), so that activations keep unit scale through the layers;
 * norm weights are 1 + uniform(-0.02, 0.02), biases uniform(-0.02, 0.02);
 * Mamba's A is -1 + uniform(-0.5, 0.5) and its Δ bias -4 + uniform(-1, 1).
 * Each row has its own xorshift stream seeded from (seed, tensor, row): the
 * weights do not depend on the thread count, and rows are filled in parallel.
 *
 * lsc_model_new_cast () builds the same kind of in-memory model from an
 * existing one: the source's config, tensor names, shapes and order, with the
 * float matrices converted (through float32, rounding to nearest even) and
 * everything else copied byte for byte.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-model-private.h"

#define TENSOR_ALIGN 64   /* bytes; every tensor starts on a cache line */

typedef struct {
  const char *name;
  LscModelConfig config;
} NamedShape;

static void
shape_defaults (LscModelConfig *c)
{
  memset (c, 0, sizeof *c);
  c->arch = LSC_ARCH_LLAMA;
  c->rope_layout = LSC_ROPE_INTERLEAVED;
  c->rope_scaling.type = LSC_ROPE_SCALING_NONE;
  c->rope_scaling.factor = 1.0;
  c->norm_eps = 1e-5;
  c->tied_embeddings = TRUE;
  c->bos_id = 1;
  c->eos_id = 2;
}

gboolean
lsc_model_config_init_shape (LscModelConfig *config, const char *name)
{
  g_return_val_if_fail (config != NULL && name != NULL, FALSE);

  shape_defaults (config);
  if (g_str_equal (name, "llama-1b"))
    {
      /* Llama 3.2 1B (without its llama3 RoPE scaling) */
      config->vocab_size = 128256;
      config->dim = 2048;
      config->n_layers = 16;
      config->n_heads = 32;
      config->n_kv_heads = 8;
      config->head_dim = 64;
      config->hidden_dim = 8192;
      config->rope_theta = 500000.0;
      config->max_position = 131072;
      config->bos_id = 128000;
      config->eos_id = 128001;
      return TRUE;
    }
  if (g_str_equal (name, "mamba-1.4b") || g_str_equal (name, "mamba2-1.3b"))
    {
      /* state-spaces/mamba-1.4b-hf and mamba2-1.3b: d_model 2048, 48 layers,
       * d_inner 4096, conv 4; Mamba-1 16 states, dt rank 128; Mamba-2 128
       * states, 64 heads of 64, 1 group */
      gboolean m2 = name[5] == '2';
      config->arch = m2 ? LSC_ARCH_MAMBA2 : LSC_ARCH_MAMBA;
      config->vocab_size = 50280;
      config->dim = 2048;
      config->n_layers = 48;
      config->ssm_d_inner = 4096;
      config->ssm_d_state = m2 ? 128 : 16;
      config->ssm_d_conv = 4;
      config->ssm_dt_rank = m2 ? 0 : 128;
      config->ssm_n_groups = m2 ? 1 : 0;
      config->ssm_head_dim = m2 ? 64 : 0;
      config->ssm_n_heads = m2 ? 64 : 0;
      config->ssm_conv_bias = TRUE;
      config->max_position = 2048;
      config->bos_id = 0;
      config->eos_id = 0;
      return TRUE;
    }
  if (g_str_equal (name, "stories260K-shape"))
    {
      config->vocab_size = 512;
      config->dim = 64;
      config->n_layers = 5;
      config->n_heads = 8;
      config->n_kv_heads = 4;
      config->head_dim = 8;
      config->hidden_dim = 172;
      config->rope_theta = 10000.0;
      config->max_position = 512;
      return TRUE;
    }
  return FALSE;
}

/* One tensor to generate. */
typedef struct {
  char *name;
  int n_dims;
  gint64 shape[2];          /* (rows, cols); cols = 1 for vectors */
  LscDType dtype;
  int kind;                 /* KIND_* */
  guint64 offset;           /* into the map */
} Plan;

/* Mamba's A is negative and its Δ bias makes softplus give Δ of 0.007-0.05,
 * as the reference initialisation does (dt_min 0.001, dt_max 0.1) */
enum { KIND_MATRIX, KIND_NORM, KIND_BIAS, KIND_SSM_A, KIND_SSM_DT_BIAS };

static guint64
splitmix64 (guint64 *state)
{
  guint64 z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* xorshift64*: a uniform float in [-1, 1) */
static inline float
next_uniform (guint64 *x)
{
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  guint64 r = *x * 0x2545f4914f6cdd1dull;
  return (float) (r >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* Fills row `row` of plan p (cols values) at dst; buf holds cols floats. */
static void
fill_row (guint8 *dst, const Plan *p, guint64 seed, guint tensor, gint64 row, float *buf)
{
  gint64 cols = p->shape[1];
  guint64 st = seed ^ ((guint64) tensor << 40) ^ (guint64) row;
  guint64 x = splitmix64 (&st) | 1;
  static const float bases[] = { [KIND_NORM] = 1.0f, [KIND_SSM_A] = -1.0f,
                                 [KIND_SSM_DT_BIAS] = -4.0f };
  static const float spreads[] = { [KIND_NORM] = 0.02f, [KIND_BIAS] = 0.02f,
                                   [KIND_SSM_A] = 0.5f, [KIND_SSM_DT_BIAS] = 1.0f };
  float a = p->kind == KIND_MATRIX ? 1.0f / sqrtf ((float) cols) : spreads[p->kind];
  float base = bases[p->kind];

  for (gint64 j = 0; j < cols; j++)
    buf[j] = base + a * next_uniform (&x);
  if (lsc_from_f32 (dst, buf, p->dtype, (size_t) cols) != LSC_STATUS_OK)
    g_assert_not_reached ();   /* widths were checked for Q8_0 */
}

static void
plan_add (GArray *plans, LscDType dtype, int kind, gint64 rows, gint64 cols, const char *fmt, ...)
  G_GNUC_PRINTF (6, 7);

static void
plan_add (GArray *plans, LscDType dtype, int kind, gint64 rows, gint64 cols, const char *fmt, ...)
{
  va_list ap;
  Plan p = { 0 };
  va_start (ap, fmt);
  p.name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  p.n_dims = kind == KIND_MATRIX || cols > 1 ? 2 : 1;   /* Mamba-1's A is (E, N) */
  p.shape[0] = rows;
  p.shape[1] = cols;
  p.dtype = kind == KIND_MATRIX ? dtype : LSC_DTYPE_F32;
  p.kind = kind;
  g_array_append_val (plans, p);
}

static void
plan_clear (gpointer data)
{
  g_free (((Plan *) data)->name);
}

LscModel *
lsc_model_new_synthetic (const LscModelConfig *config, LscDType dtype, guint64 seed,
                         GError **error)
{
  const LscModelConfig *c = config;

  g_return_val_if_fail (config != NULL, NULL);

  if (dtype != LSC_DTYPE_F32 && dtype != LSC_DTYPE_BF16 && dtype != LSC_DTYPE_F16
      && dtype != LSC_DTYPE_Q8_0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                   "synthetic model: weights of type %s are not supported", lsc_dtype_name (dtype));
      return NULL;
    }
  gboolean ssm = lsc_arch_is_ssm (c->arch), m2 = c->arch == LSC_ARCH_MAMBA2;
  if (ssm && (c->n_layers <= 0 || c->dim <= 0 || c->vocab_size <= 0 || c->ssm_d_inner <= 0
              || c->ssm_d_state <= 0 || c->ssm_d_conv <= 0 || dtype == LSC_DTYPE_Q8_0
              || (m2 ? c->ssm_n_heads <= 0 || c->ssm_n_groups <= 0
                       || c->ssm_n_heads * c->ssm_head_dim != c->ssm_d_inner
                       || c->ssm_n_heads % c->ssm_n_groups != 0
                     : c->ssm_dt_rank <= 0)))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "synthetic model: the config is not a complete Mamba (F32, BF16 or F16)");
      return NULL;
    }
  if (!ssm && (c->n_layers <= 0 || c->dim <= 0
      || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads != 0
      || c->head_dim <= 0 || c->head_dim % 2 != 0 || c->hidden_dim <= 0 || c->vocab_size <= 0))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "synthetic model: the config is not a complete Llama-family transformer");
      return NULL;
    }
  gint64 q_dim = (gint64) c->n_heads * c->head_dim, kv_dim = (gint64) c->n_kv_heads * c->head_dim;
  if (dtype == LSC_DTYPE_Q8_0
      && (c->dim % LSC_Q8_0_BLOCK != 0 || q_dim % LSC_Q8_0_BLOCK != 0
          || c->hidden_dim % LSC_Q8_0_BLOCK != 0))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "synthetic model: Q8_0 needs matrix widths that are multiples of %d",
                   LSC_Q8_0_BLOCK);
      return NULL;
    }

  /* the tensors, in GGUF order */
  g_autoptr(GArray) plans = g_array_new (FALSE, TRUE, sizeof (Plan));
  g_array_set_clear_func (plans, plan_clear);
  plan_add (plans, dtype, KIND_MATRIX, c->vocab_size, c->dim, "token_embd.weight");
  plan_add (plans, dtype, KIND_NORM, c->dim, 1, "output_norm.weight");
  if (!c->tied_embeddings)
    plan_add (plans, dtype, KIND_MATRIX, c->vocab_size, c->dim, "output.weight");
  for (int l = 0; ssm && l < c->n_layers; l++)
    {
      /* llama.cpp's Mamba GGUF names; A as -exp(A_log) */
      gint64 e = c->ssm_d_inner, n = c->ssm_d_state, h = m2 ? c->ssm_n_heads : e;
      gint64 n_conv = m2 ? e + 2 * c->ssm_n_groups * n : e;
      plan_add (plans, dtype, KIND_NORM, c->dim, 1, "blk.%d.attn_norm.weight", l);
      plan_add (plans, dtype, KIND_MATRIX, m2 ? 2 * e + 2 * c->ssm_n_groups * n + h : 2 * e,
                c->dim, "blk.%d.ssm_in.weight", l);
      plan_add (plans, dtype, KIND_MATRIX, n_conv, c->ssm_d_conv, "blk.%d.ssm_conv1d.weight", l);
      plan_add (plans, dtype, KIND_BIAS, n_conv, 1, "blk.%d.ssm_conv1d.bias", l);
      if (!m2)
        {
          plan_add (plans, dtype, KIND_MATRIX, c->ssm_dt_rank + 2 * n, e, "blk.%d.ssm_x.weight",
                    l);
          plan_add (plans, dtype, KIND_MATRIX, e, c->ssm_dt_rank, "blk.%d.ssm_dt.weight", l);
        }
      plan_add (plans, dtype, KIND_SSM_DT_BIAS, h, 1, "blk.%d.ssm_dt.bias", l);
      if (m2)
        plan_add (plans, dtype, KIND_SSM_A, h, 1, "blk.%d.ssm_a", l);
      else
        plan_add (plans, dtype, KIND_SSM_A, e, n, "blk.%d.ssm_a", l);
      plan_add (plans, dtype, KIND_NORM, h, 1, "blk.%d.ssm_d", l);
      if (m2)
        plan_add (plans, dtype, KIND_NORM, e, 1, "blk.%d.ssm_norm.weight", l);
      plan_add (plans, dtype, KIND_MATRIX, c->dim, e, "blk.%d.ssm_out.weight", l);
    }
  for (int l = 0; !ssm && l < c->n_layers; l++)
    {
      plan_add (plans, dtype, KIND_NORM, c->dim, 1, "blk.%d.attn_norm.weight", l);
      plan_add (plans, dtype, KIND_MATRIX, q_dim, c->dim, "blk.%d.attn_q.weight", l);
      plan_add (plans, dtype, KIND_MATRIX, kv_dim, c->dim, "blk.%d.attn_k.weight", l);
      plan_add (plans, dtype, KIND_MATRIX, kv_dim, c->dim, "blk.%d.attn_v.weight", l);
      if (c->attn_qkv_bias)
        {
          plan_add (plans, dtype, KIND_BIAS, q_dim, 1, "blk.%d.attn_q.bias", l);
          plan_add (plans, dtype, KIND_BIAS, kv_dim, 1, "blk.%d.attn_k.bias", l);
          plan_add (plans, dtype, KIND_BIAS, kv_dim, 1, "blk.%d.attn_v.bias", l);
        }
      plan_add (plans, dtype, KIND_MATRIX, c->dim, q_dim, "blk.%d.attn_output.weight", l);
      plan_add (plans, dtype, KIND_NORM, c->dim, 1, "blk.%d.ffn_norm.weight", l);
      plan_add (plans, dtype, KIND_MATRIX, c->hidden_dim, c->dim, "blk.%d.ffn_gate.weight", l);
      plan_add (plans, dtype, KIND_MATRIX, c->hidden_dim, c->dim, "blk.%d.ffn_up.weight", l);
      plan_add (plans, dtype, KIND_MATRIX, c->dim, c->hidden_dim, "blk.%d.ffn_down.weight", l);
    }

  /* offsets: vectors are generated as (n, 1), i.e. one row of n values */
  guint64 size = 0;
  for (guint i = 0; i < plans->len; i++)
    {
      Plan *p = &g_array_index (plans, Plan, i);
      if (p->n_dims == 1)
        {
          p->shape[1] = p->shape[0];
          p->shape[0] = 1;
        }
      p->offset = size;
      size += lsc_dtype_row_bytes (p->dtype, (size_t) (p->shape[0] * p->shape[1]));
      size = (size + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    }

  g_autofree char *path = g_strdup_printf ("synthetic(dim %d, %d layers, %s, seed %" G_GUINT64_FORMAT ")",
                                           c->dim, c->n_layers, lsc_dtype_name (dtype), seed);
  guint8 *map;
  LscMappedFile *file = lsc_mapped_file_new_anonymous (path, size, &map, error);
  if (file == NULL)
    return NULL;

  for (guint i = 0; i < plans->len; i++)
    {
      const Plan *p = &g_array_index (plans, Plan, i);
      size_t row_bytes = lsc_dtype_row_bytes (p->dtype, (size_t) p->shape[1]);
      gint64 rows = p->shape[0];
#pragma omp parallel
      {
        g_autofree float *buf = g_new (float, MAX (p->shape[1], 1));
#pragma omp for schedule (static)
        for (gint64 r = 0; r < rows; r++)
          fill_row (map + p->offset + (size_t) r * row_bytes, p, seed, i, r, buf);
      }
    }
  lsc_mapped_file_seal (file);

  LscModel *model = _lsc_model_new (path, LSC_FORMAT_GGUF);
  model->config = *c;
  g_ptr_array_add (model->files, file);   /* owns the map from here on */

  for (guint i = 0; i < plans->len; i++)
    {
      const Plan *p = &g_array_index (plans, Plan, i);
      gint64 shape[2] = { p->shape[0], p->shape[1] };
      if (p->n_dims == 1)
        shape[0] = p->shape[1];
      if (_lsc_model_add_tensor (model, p->name, p->dtype, p->n_dims, shape, 0, p->offset,
                                 error) == NULL)
        {
          lsc_model_free (model);
          return NULL;
        }
    }
  if (!_lsc_model_bind_tensors (model, error))
    {
      lsc_model_free (model);
      return NULL;
    }
  return model;
}

static gboolean
is_float_dtype (LscDType dtype)
{
  return dtype == LSC_DTYPE_F32 || dtype == LSC_DTYPE_F16 || dtype == LSC_DTYPE_BF16;
}

LscModel *
lsc_model_new_cast (LscModel *model, LscDType dtype, GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);

  if (!is_float_dtype (dtype))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                   "%s: casting the weights to %s is not supported (F32, F16 or BF16)",
                   model->path, lsc_dtype_name (dtype));
      return NULL;
    }

  /* the copy's layout: the source's tensors in order, matrices as dtype */
  guint n = model->tensors->len;
  g_autofree LscDType *dtypes = g_new (LscDType, MAX (n, 1));
  g_autofree guint64 *offsets = g_new (guint64, MAX (n, 1));
  guint64 size = 0;
  for (guint i = 0; i < n; i++)
    {
      const LscTensor *t = &g_array_index (model->tensors, LscTensor, i);
      if (t->dtype == LSC_DTYPE_Q8_0)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                       "%s: tensor '%s' is %s: quantised weights cannot be cast to %s",
                       model->path, t->name, lsc_dtype_name (t->dtype), lsc_dtype_name (dtype));
          return NULL;
        }
      dtypes[i] = t->n_dims == 2 && is_float_dtype (t->dtype) ? dtype : t->dtype;
      offsets[i] = size;
      size += lsc_dtype_row_bytes (dtypes[i], (size_t) lsc_tensor_n_elements (t));
      size = (size + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    }

  g_autofree char *lower = g_ascii_strdown (lsc_dtype_name (dtype), -1);
  g_autofree char *path = g_strdup_printf ("%s (as %s)", model->path, lower);
  guint8 *map;
  LscMappedFile *file = lsc_mapped_file_new_anonymous (path, size, &map, error);
  if (file == NULL)
    return NULL;

  for (guint i = 0; i < n; i++)
    {
      const LscTensor *t = &g_array_index (model->tensors, LscTensor, i);
      if (dtypes[i] == t->dtype)
        {
          if (t->n_bytes > 0)
            memcpy (map + offsets[i], t->data, t->n_bytes);
          continue;
        }
      /* a float matrix to convert, row by row */
      gint64 rows = t->shape[0], cols = t->shape[1];
      size_t src_row = lsc_dtype_row_bytes (t->dtype, (size_t) cols);
      size_t dst_row = lsc_dtype_row_bytes (dtypes[i], (size_t) cols);
#pragma omp parallel
      {
        g_autofree float *buf = g_new (float, MAX (cols, 1));
#pragma omp for schedule (static)
        for (gint64 r = 0; r < rows; r++)
          {
            lsc_to_f32 (buf, (const guint8 *) t->data + (size_t) r * src_row, t->dtype,
                        (size_t) cols);
            lsc_from_f32 (map + offsets[i] + (size_t) r * dst_row, buf, dtypes[i], (size_t) cols);
          }
      }
    }
  lsc_mapped_file_seal (file);

  LscModel *copy = _lsc_model_new (path, model->format);
  copy->config = model->config;
  g_ptr_array_add (copy->files, file);   /* owns the map from here on */

  for (guint i = 0; i < n; i++)
    {
      const LscTensor *t = &g_array_index (model->tensors, LscTensor, i);
      if (_lsc_model_add_tensor (copy, t->name, dtypes[i], t->n_dims, t->shape, 0, offsets[i],
                                 error) == NULL)
        {
          lsc_model_free (copy);
          return NULL;
        }
    }
  if (!_lsc_model_bind_tensors (copy, error))
    {
      lsc_model_free (copy);
      return NULL;
    }
  /* the source's notes, not the binding's repetition of them */
  g_ptr_array_set_size (copy->warnings, 0);
  for (const char *const *w = lsc_model_get_warnings (model); *w != NULL; w++)
    g_ptr_array_add (copy->warnings, g_strdup (*w));
  return copy;
}
