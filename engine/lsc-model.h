/* SPDX-License-Identifier: MIT
 *
 * lsc-model.h: one normalised description of a checkpoint, whatever its file
 * format, with its weights memory-mapped.
 *
 * Formats: Hugging Face directories (config.json + single or sharded
 * safetensors, also the Hub cache layout models--org--name/snapshots/<rev>/),
 * GGUF v2/v3 files, and llama2.c checkpoints (.bin, legacy and version 1
 * float32). Each loader validates every count, offset and size against the
 * file before it allocates, and fails with an LSC_MODEL_ERROR naming the file
 * and the field.
 *
 * Tensors keep the name they have in the file (for `longscope --info`) and
 * carry a normalised role and layer, which is what the forward pass asks for.
 * Shapes are outermost first, as PyTorch prints them: a projection from dim
 * to n_heads * head_dim is (n_heads * head_dim, dim) in every format (GGUF's
 * ne[] order is reversed on load).
 *
 * Example:
 *
 *   g_autoptr(GError) error = NULL;
 *   g_autoptr(LscModel) model = lsc_model_load ("stories260K.bin", &error);
 *   if (model == NULL)
 *     g_printerr ("%s\n", error->message);
 *   const LscModelConfig *c = lsc_model_get_config (model);
 *   const LscTensor *wq = lsc_model_get_weight (model, LSC_TENSOR_ATTN_Q, 0);
 *   // wq->shape = { c->n_heads * c->head_dim, c->dim }
 */
#pragma once

#include <glib.h>

#include "lsc-kernels.h"

G_BEGIN_DECLS

typedef enum {
  LSC_ARCH_LLAMA,
  LSC_ARCH_MISTRAL,
  LSC_ARCH_QWEN2,
  LSC_ARCH_MAMBA,     /* Mamba-1 */
  LSC_ARCH_MAMBA2,
} LscArch;

typedef enum {
  LSC_FORMAT_HF,        /* config.json + safetensors */
  LSC_FORMAT_GGUF,
  LSC_FORMAT_LLAMA2C,
} LscModelFormat;

typedef enum {
  LSC_ROPE_SCALING_NONE,
  LSC_ROPE_SCALING_LINEAR,
  LSC_ROPE_SCALING_DYNAMIC,   /* dynamic NTK */
  LSC_ROPE_SCALING_YARN,
  LSC_ROPE_SCALING_LLAMA3,
} LscRopeScalingType;

typedef struct {
  LscRopeScalingType type;
  double factor;                /* 1 when type is NONE */
  int original_max_position;    /* original_max_position_embeddings; 0 = use max_position */
  double low_freq_factor;       /* llama3 */
  double high_freq_factor;      /* llama3 */
  double beta_fast, beta_slow;  /* yarn (32, 1) */
  double attention_factor;      /* yarn; 0 = default 0.1 ln(factor) + 1 */
} LscRopeScaling;

typedef struct {
  LscArch arch;
  int vocab_size;          /* rows of the embedding (may exceed the tokenizer: padded) */
  int dim;                 /* hidden size */
  int n_layers;
  /* attention (transformers) */
  int n_heads;
  int n_kv_heads;
  int head_dim;            /* explicit in config or dim / n_heads */
  int hidden_dim;          /* FFN intermediate size */
  double norm_eps;
  double rope_theta;
  LscRopeLayout rope_layout;
  LscRopeScaling rope_scaling;
  int max_position;        /* trained context length; advisory (GGUF context_length) */
  int sliding_window;      /* 0 = none */
  int max_window_layers;   /* Qwen2: layers >= this use the window; 0 = all layers */
  gboolean tied_embeddings;
  gboolean attn_qkv_bias;  /* Qwen2 */
  /* special tokens as the model declares them; -1 = none */
  int bos_id;
  int eos_id;
  /* SSM (Mamba-1 / Mamba-2); 0 for transformers */
  int ssm_d_inner;
  int ssm_d_state;
  int ssm_d_conv;
  int ssm_dt_rank;
  int ssm_n_groups;        /* Mamba-2 */
  int ssm_head_dim;        /* Mamba-2 */
  int ssm_n_heads;         /* Mamba-2 */
  gboolean ssm_conv_bias;
  gboolean ssm_proj_bias;
} LscModelConfig;

/* Normalised tensor roles. Per-layer roles have layer >= 0, others -1. */
typedef enum {
  LSC_TENSOR_UNKNOWN = 0,
  LSC_TENSOR_TOKEN_EMBD,      /* (vocab, dim) */
  LSC_TENSOR_OUTPUT_NORM,     /* (dim) */
  LSC_TENSOR_OUTPUT,          /* (vocab, dim); absent when embeddings are tied */
  LSC_TENSOR_ATTN_NORM,       /* (dim) */
  LSC_TENSOR_ATTN_Q,          /* (n_heads * head_dim, dim) */
  LSC_TENSOR_ATTN_K,          /* (n_kv_heads * head_dim, dim) */
  LSC_TENSOR_ATTN_V,          /* (n_kv_heads * head_dim, dim) */
  LSC_TENSOR_ATTN_O,          /* (dim, n_heads * head_dim) */
  LSC_TENSOR_ATTN_Q_BIAS,     /* (n_heads * head_dim) */
  LSC_TENSOR_ATTN_K_BIAS,     /* (n_kv_heads * head_dim) */
  LSC_TENSOR_ATTN_V_BIAS,     /* (n_kv_heads * head_dim) */
  LSC_TENSOR_FFN_NORM,        /* (dim) */
  LSC_TENSOR_FFN_GATE,        /* (hidden_dim, dim) */
  LSC_TENSOR_FFN_UP,          /* (hidden_dim, dim) */
  LSC_TENSOR_FFN_DOWN,        /* (dim, hidden_dim) */
  LSC_TENSOR_SSM_NORM,        /* Mamba block input norm (dim) */
  LSC_TENSOR_SSM_IN,          /* (2 * d_inner [+ ...], dim) */
  LSC_TENSOR_SSM_CONV1D,      /* (d_inner, d_conv): [E,1,K] is squeezed on load */
  LSC_TENSOR_SSM_CONV1D_BIAS, /* (d_inner) */
  LSC_TENSOR_SSM_X,           /* (dt_rank + 2 * d_state, d_inner) */
  LSC_TENSOR_SSM_DT,          /* (d_inner, dt_rank) */
  LSC_TENSOR_SSM_DT_BIAS,     /* (d_inner) */
  LSC_TENSOR_SSM_A_LOG,       /* (d_inner, d_state): A = -exp(A_log) (safetensors) */
  LSC_TENSOR_SSM_A,           /* (d_inner, d_state): A itself (GGUF) */
  LSC_TENSOR_SSM_D,           /* (d_inner) */
  LSC_TENSOR_SSM_OUT,         /* (dim, d_inner) */
  LSC_TENSOR_SSM_GATED_NORM,  /* Mamba-2 gated RMSNorm (d_inner) */
  LSC_TENSOR_N_ROLES,
} LscTensorRole;

#define LSC_MAX_DIMS 4

typedef struct {
  char *name;                 /* as in the file */
  LscTensorRole role;
  int layer;                  /* -1 for non-layer tensors */
  LscDType dtype;
  int n_dims;
  gint64 shape[LSC_MAX_DIMS]; /* outermost first */
  const void *data;           /* into the mapped file */
  guint64 n_bytes;
  guint file_index;           /* which mapped file (shards) */
  guint64 file_offset;        /* where data starts in that file */
} LscTensor;

typedef struct _LscModel LscModel;

/* Loads a model from a directory (Hugging Face layout, or a Hub cache repo
 * folder with snapshots/) or a file (.gguf, llama2.c .bin). */
LscModel *lsc_model_load (const char *path, GError **error);
void lsc_model_free (LscModel *model);

const char *lsc_model_get_path (const LscModel *model);
LscModelFormat lsc_model_get_format (const LscModel *model);
const LscModelConfig *lsc_model_get_config (const LscModel *model);
/* Non-fatal notes from loading (advisory context length, unknown keys kept, ...). */
const char *const *lsc_model_get_warnings (const LscModel *model);

guint lsc_model_get_n_tensors (const LscModel *model);
const LscTensor *lsc_model_get_tensor (const LscModel *model, guint index);
const LscTensor *lsc_model_find_tensor (const LscModel *model, const char *name);
/* The tensor with this role (and layer), or NULL. */
const LscTensor *lsc_model_get_weight (const LscModel *model, LscTensorRole role, int layer);

/* Bytes of all the model's tensors in their stored dtypes (what the weights
 * occupy mapped or in memory): the sum of every tensor's n_bytes. */
guint64 lsc_model_get_weight_bytes (const LscModel *model);

gint64 lsc_tensor_n_elements (const LscTensor *tensor);
/* out (n_elements) <- the tensor widened to float32. */
gboolean lsc_tensor_to_f32 (const LscTensor *tensor, float *out, GError **error);

const char *lsc_arch_name (LscArch arch);
/* TRUE for the state-space models (Mamba-1, Mamba-2), which have no attention. */
gboolean lsc_arch_is_ssm (LscArch arch);
const char *lsc_model_format_name (LscModelFormat format);
const char *lsc_tensor_role_name (LscTensorRole role);

/* Writes the human-readable summary of `longscope --info` (config, then one
 * line per tensor with name, role, dtype and shape). */
void lsc_model_describe (const LscModel *model, GString *out, gboolean with_tensors);

/* ---- synthetic models (lsc-synthetic.c) ----
 * The shape of a real checkpoint with random weights generated in memory, for
 * benchmarks and tests. Named shapes: "llama-1b" (Llama 3.2 1B: dim 2048,
 * 16 layers, 32/8 heads, head dim 64, FFN 8192, vocab 128256, tied, rope_theta
 * 500000), "stories260K-shape" (dim 64, 5 layers, 8/4 heads, FFN 172,
 * vocab 512), "mamba-1.4b" and "mamba2-1.3b" (d_model 2048, 48 layers,
 * d_inner 4096, vocab 50280; 16 states and dt rank 128, or 128 states in 64
 * heads of 64). */

/* Fills config with a named shape; FALSE (config untouched) when unknown. */
gboolean lsc_model_config_init_shape (LscModelConfig *config, const char *name);
/* A Llama-family model of `config` (arch LLAMA/MISTRAL/QWEN2) whose matrices
 * are dtype (F32, BF16, F16 or Q8_0) uniform(-a, a), a = 1 / sqrt(cols), and
 * whose norms are F32 1 + small noise; or a Mamba-1/2 (F32, BF16 or F16) of
 * the same kind. The same seed gives the same weights. */
LscModel *lsc_model_new_synthetic (const LscModelConfig *config, LscDType dtype, guint64 seed,
                                   GError **error);

/* A copy of a Llama-family model held in memory, with every 2-D weight
 * matrix converted to dtype (F32, F16 or BF16; round to nearest even) and
 * the 1-D tensors (norms, biases) kept as they are: "the same checkpoint in
 * bf16" for backend parity tests and precision studies. The copy does not
 * reference `model`. Fails with LSC_MODEL_ERROR_UNSUPPORTED_DTYPE for a
 * q8_0 source or target. */
LscModel *lsc_model_new_cast (LscModel *model, LscDType dtype, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscModel, lsc_model_free)

G_END_DECLS
