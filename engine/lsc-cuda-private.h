/* SPDX-License-Identifier: MIT
 *
 * lsc-cuda-private.h: the GPU state of a session, shared by the CUDA paths of
 * the transformer (lsc-llama-cuda.c) and of Mamba (lsc-mamba-cuda.c). Only
 * in CUDA builds.
 */
#pragma once

#include "config.h"

#if LSC_HAVE_CUDA

#include "lsc-cuda.h"
#include "lsc-llama-private.h"

typedef struct _LscSsmCuda LscSsmCuda;   /* Mamba's layers, state and buffers (lsc-mamba-cuda.c) */
typedef struct _LscCudaMaps LscCudaMaps; /* attention maps' buffers (lsc-attention-cuda.c) */

typedef struct {
  float *attn_norm, *ffn_norm;   /* (dim) */
  float *bqkv;                   /* (q_dim + 2 kv_dim), zeros where a bias is absent; or NULL */
  LscMatrix wqkv;                /* (q_dim + 2 kv_dim, dim): q, k and v rows stacked */
  LscMatrix wo;                  /* (dim, q_dim) */
  LscMatrix wgu;                 /* (2 hidden, dim): gate rows, then up rows */
  LscMatrix wdown;               /* (dim, hidden) */
} LscCudaLayer;

/* Device pointers, except where said. The fields up to `x_half` serve both
 * architectures: the embedding, the residual stream and the logits. */
struct _LscCudaState {
  LscCudaContext *ctx;
  char device[256];              /* host: the device's name */
  LscMatrix embd, output;        /* output.data == embd.data when tied */
  float *output_norm;            /* (dim) */
  int cap;                       /* tokens the block buffers hold */
  int32_t *tokens;               /* (cap) */
  float *x;                      /* (cap, dim) residual stream */
  float *xb;                     /* (cap, at least dim): the normalised stream */
  float *logits;                 /* (min(cap, LSC_CUDA_LOGIT_ROWS), vocab) */
  void *x_half;                  /* 16-bit GEMM inputs: lsc_cuda_gemm_scratch_bytes (cap, widest) */
  guint64 host_bytes;            /* host buffers (lsc_session_get_memory ()) */

  LscSsmCuda *ssm;               /* Mamba; the rest is the transformer's */

  LscCudaLayer *layers;          /* host array (n_layers) */
  float *key_cache, *value_cache;   /* (n_layers, n_ctx, kv_dim) */
  float *cs;                     /* (2, cap, head_dim / 2): the block's cos, then its sin */
  float *xb2;                    /* (cap, dim) */
  float *qkv;                    /* (cap, q_dim + 2 kv_dim) */
  float *gu;                     /* (cap, 2 hidden) */
  float *hb;                     /* (cap, hidden) */
  float *lse;                    /* (n_heads, cap) */
  void *attn_work;               /* decode attention's split-K partials */
  float *host_cs;                /* host (cap, head_dim) cos then sin of a block */
  float *row_scale;              /* (n_layers, n_heads, cap): the scale hook's multipliers of a
                                    block, layer l's (n_heads, T) at l n_heads T; NULL without
                                    a scale hook */
  float *host_scale;             /* host: the same, filled per block */
  float *staging;                /* pinned host (cap, max(q_dim, kv_dim)): captured rows on
                                    their way to the store and back; NULL without capture */
  LscCudaMaps *maps;             /* tiles and pyramids on the device; NULL: on the host */
};

#define LSC_CUDA_LOGIT_ROWS 256   /* rows of logits computed (and downloaded) at once */

/* Sets error from a failed kernel-layer call (`what` says what was being
 * done) and returns FALSE. */
gboolean _lsc_cuda_fail (GError **error, LscStatus status, const char *what);

/* Return FALSE from the enclosing function (error set) when call fails. */
#define LSC_GPU_TRY(call, what)                              \
  do {                                                       \
    LscStatus st_ = (call);                                  \
    if (st_ != LSC_STATUS_OK)                                \
      return _lsc_cuda_fail (error, st_, what);              \
  } while (0)

/* dst <- the n_parts matrices stacked by rows (all of one dtype and width). */
gboolean _lsc_cuda_upload_matrix (LscCudaState *g, LscMatrix *dst, const LscMatrix *const *parts,
                                  int n_parts, GError **error);
/* *dst <- a device copy of src (n floats); src NULL: allocated only. */
gboolean _lsc_cuda_upload_floats (LscCudaState *g, float **dst, const float *src, size_t n,
                                  GError **error);
/* The embedding, classifier and final norm (both architectures). */
gboolean _lsc_cuda_upload_head (LscSession *s, LscCudaState *g, GError **error);
/* Their device bytes, as _lsc_cuda_upload_head () allocates them. */
guint64 _lsc_cuda_head_bytes (const LscModel *model);
/* Tokens of the block into g->x (T, dim). */
gboolean _lsc_cuda_embed_block (LscSession *s, const gint32 *tokens, int T, GError **error);
/* The last residual (x += pending, which may be NULL), the final norm and the
 * classifier of a block of T rows: every row into logits (T, vocab) when
 * all_logits, else the last one (vocab). */
gboolean _lsc_cuda_block_logits (LscSession *s, const float *pending, int T, float *logits,
                                 gboolean all_logits, GError **error);

/* Mamba on the GPU (lsc-mamba-cuda.c; the rest is in lsc-llama-private.h):
 * the upload of its layers, state and buffers (g->ssm set), their device and
 * host bytes, and the host side's release (the context frees the device's). */
gboolean _lsc_ssm_cuda_upload (LscSession *s, LscCudaState *g, GError **error);
void _lsc_ssm_cuda_memory (const LscModel *model, const LscSessionParams *params,
                           guint64 *device_bytes, guint64 *host_bytes);
void _lsc_ssm_cuda_free (LscCudaState *g);

/* The attention maps' buffers of a capturing session (none when its maps
 * stay on the host), and the host side's release (the context frees the
 * device's). */
gboolean _lsc_cuda_maps_alloc (LscSession *s, LscCudaState *g, GError **error);
void _lsc_cuda_maps_free (LscCudaState *g);

#endif /* LSC_HAVE_CUDA */
