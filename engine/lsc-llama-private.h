/* SPDX-License-Identifier: MIT
 *
 * The session state shared by the reference forward (lsc-llama.c) and the
 * fast batched one (lsc-llama-fast.c).
 */
#pragma once

#include "lsc-session.h"

G_BEGIN_DECLS

/* A weight matrix (rows, cols) in its stored dtype, row-major, in the map. */
typedef struct {
  const void *data;
  LscDType dtype;
  int rows, cols;
} LscMatrix;

typedef struct {
  float *attn_norm, *ffn_norm;       /* (dim) widened to f32 */
  float *bq, *bk, *bv;               /* (q_dim), (kv_dim), (kv_dim); NULL without biases */
  LscMatrix wq, wk, wv, wo;          /* (q_dim, dim), (kv_dim, dim) x 2, (dim, q_dim) */
  LscMatrix w_gate, w_up, w_down;    /* (hidden, dim) x 2, (dim, hidden) */
  int window;                        /* sliding window in tokens, 0 = full causal */
} LscLayer;

typedef struct _LscFastState LscFastState;

struct _LscSession {
  LscModel *model;                   /* borrowed */
  LscModelConfig c;
  LscSessionParams params;           /* effective values */
  int pos;                           /* tokens in the cache */

  /* weights */
  LscMatrix embd;                    /* (vocab, dim) */
  LscMatrix output;                  /* (vocab, dim): the classifier, or embd when tied */
  float *output_norm;                /* (dim) */
  LscLayer *layers;                  /* (n_layers) */

  /* KV cache, post-RoPE keys */
  float *key_cache;                  /* (n_layers, n_ctx, kv_dim) */
  float *value_cache;                /* (n_layers, n_ctx, kv_dim) */

  /* RoPE */
  double *inv_freq;                  /* (head_dim / 2) */
  double rope_factor;                /* YaRN attention factor, else 1 */
  int rope_seq_len;                  /* length inv_freq was computed for; -1 = never */
  float *rope_cos, *rope_sin;        /* (head_dim / 2) for the current position */

  /* activations of the reference path, one token */
  float *x;                          /* (dim) residual stream */
  float *xb;                         /* (max(dim, q_dim)) */
  float *xb2;                        /* (dim) */
  float *hb, *hb2;                   /* (hidden) */
  float *q;                          /* (q_dim) */
  float *k, *v;                      /* (kv_dim) */
  float *att;                        /* (n_ctx) */

  LscFastState *fast;                /* buffers of the batched path, grown on demand */
  LscAttentionStore *attention;      /* capture store, NULL when not capturing */
  guint8 *hidden;                    /* (n_ctx) mask-hook scratch of the reference path */
};

int _lsc_layer_window (const LscModelConfig *c, int layer);
void _lsc_session_prepare_rope (LscSession *s, int seq_len);
/* out (dim) <- embedding row of token */
void _lsc_embed (const LscSession *s, int token, float *out);

gboolean _lsc_session_eval_fast (LscSession *s, const gint32 *tokens, int n, float *logits,
                                 gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data);
void _lsc_session_free_fast (LscSession *s);

/* The capture store (lsc-attention.c). */
LscAttentionStore *_lsc_attention_store_new (const LscSession *s, const LscCapturePlan *plan,
                                             GError **error);
void _lsc_attention_store_free (LscAttentionStore *store);
/* TRUE when row `pos` of `layer` is captured (store may be NULL). */
gboolean _lsc_attention_wants (const LscAttentionStore *store, int layer, int pos);
/* Records query q (head_dim), the normaliser and the logit scale of (layer, head, pos). */
void _lsc_attention_put (LscAttentionStore *store, int layer, int head, int pos, const float *q,
                         float lse, float scale);

G_END_DECLS
