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

/* A 1-D tensor (norm weight or bias) widened to float32, or NULL when absent;
 * its bytes are added to *counter. */
float *_lsc_widen (const LscTensor *t, guint64 *counter);
/* A 2-D tensor as a matrix in the map ({ NULL } when absent). */
LscMatrix _lsc_matrix (const LscTensor *t);

typedef struct _LscFastState LscFastState;
typedef struct _LscCudaState LscCudaState;
typedef struct _LscSsmState LscSsmState;
typedef struct _LscKvState LscKvState;

struct _LscSession {
  LscModel *model;                   /* borrowed */
  LscModelConfig c;
  LscSessionParams params;           /* effective values */
  int pos;                           /* tokens in the cache */

  /* weights */
  LscMatrix embd;                    /* (vocab, dim) */
  LscMatrix output;                  /* (vocab, dim): the classifier, or embd when tied */
  float *output_norm;                /* (dim) */
  LscLayer *layers;                  /* (n_layers); NULL for an SSM */
  LscSsmState *ssm;                  /* Mamba-1/2 layers and recurrent state (lsc-mamba.c);
                                        NULL for a transformer, which has the fields below */
  LscSsmStore *ssm_store;            /* Δ of an SSM, NULL when not recording */

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
  LscCudaState *cuda;                /* the GPU copy of weights, cache and buffers; NULL on the CPU */
  char *backend_note;                /* why CUDA/AUTO fell back to the CPU, or NULL */
  LscAttentionStore *attention;      /* capture store, NULL when not capturing */
  LscKvState *kv;                    /* the KV policy's slots and log (lsc-kv.c), NULL without */
  guint8 *hidden;                    /* (n_ctx) mask-hook scratch of the reference path */
  guint64 scratch_bytes;             /* bytes of the buffers above that lsc_session_new ()
                                        allocates besides the KV cache and the store */
};

/* g_new (type, n) that adds the n * sizeof (type) bytes to *counter: how a
 * session accounts for its buffers (lsc_session_get_memory ()). */
static inline gpointer
_lsc_counted_new (guint64 *counter, gsize size, gsize n)
{
  *counter += (guint64) size * n;
  return g_malloc_n (n, size);
}
#define LSC_COUNTED_NEW(counter, type, n) \
  ((type *) _lsc_counted_new ((counter), sizeof (type), (n)))

/* ---- what a session allocates, for estimates (lsc-estimate.c) ----
 * Each sits next to the code that allocates; tests/test-estimate.c holds them
 * to what lsc_session_get_memory () counts. params are effective values
 * (n_ctx and n_threads resolved). */

/* Tokens per block of the fast CPU prefill (lsc-llama-fast.c) and of the GPU
 * one (lsc-llama-cuda.c). */
#define LSC_FAST_BLOCK_TOKENS 512
#define LSC_CUDA_BLOCK_TOKENS 4096

/* lsc_session_new ()'s buffers besides the KV cache and the store (scratch_bytes). */
guint64 _lsc_session_base_bytes (const LscModel *model, const LscSessionParams *params);
/* The fast path's buffers once evaluations of at most n tokens have run (n >= 1). */
guint64 _lsc_fast_state_bytes (const LscModel *model, const LscSessionParams *params, int n);
/* The GPU path's peak device memory (weights, KV cache, block buffers) and its
 * host buffers; FALSE in a build without CUDA. */
gboolean _lsc_cuda_memory (const LscModel *model, const LscSessionParams *params,
                           guint64 *device_bytes, guint64 *host_bytes);
/* The GPU path's host buffers of a session (0 without a GPU state). */
guint64 _lsc_session_cuda_host_bytes (const LscSession *s);
/* Why the GPU path cannot run `model` with `params`, or NULL when it can (free it). */
char *_lsc_cuda_unsupported_reason (const LscModel *model, const LscSessionParams *params);
/* Why the GPU path cannot compute with the model's embedding, classifier and
 * the layers' matrices of the n_roles roles (their dtypes), or NULL (free it). */
char *_lsc_cuda_weights_reason (const LscModel *model, const LscTensorRole *roles, int n_roles);
/* The fast path's buffers of a session (0 before its first fast evaluation). */
guint64 _lsc_session_fast_bytes (const LscSession *s);

int _lsc_layer_window (const LscModelConfig *c, int layer);
/* The reference attention of one query row: out (head_dim) <- the head's
 * attention over the cached keys/values of layer l at position pos, with the
 * session's hooks applied and the row captured when the plan says so.
 * att (n_ctx) and hidden (n_ctx) are scratch. */
void _lsc_attend_row (LscSession *s, int l, int h, int pos, const float *q, float *out,
                      float *att, guint8 *hidden);
void _lsc_session_prepare_rope (LscSession *s, int seq_len);
/* out (dim) <- embedding row of token */
void _lsc_embed (const LscSession *s, int token, float *out);

/* Where the block of tokens [done, done + T) of an n-token evaluation writes
 * its logits: rows done.. of logits (n, vocab) when all_logits, else the
 * last block writes the one row; NULL for the others (or no logits). */
float *_lsc_block_logits (const LscSession *s, float *logits, gboolean all_logits, int done, int T,
                          int n);

/* The CUDA path (lsc-llama-cuda.c). init returns TRUE with s->cuda set, or
 * TRUE with s->cuda NULL and s->backend_note saying why the session stays on
 * the CPU; FALSE (error set) when CUDA was asked for explicitly and cannot
 * run at all, or the device fails. */
gboolean _lsc_session_init_cuda (LscSession *s, GError **error);
/* FALSE with CANCELLED, DEVICE or OUT_OF_MEMORY set. */
gboolean _lsc_session_eval_cuda (LscSession *s, const gint32 *tokens, int n, float *logits,
                                 gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data,
                                 GError **error);
void _lsc_session_free_cuda (LscSession *s);

/* The Δ store (lsc-ssm.c). a (n_layers) points at each layer's A (n_channels,
 * n_states), which the store borrows. put records rows [row0, row0 + T) of a
 * layer (ignored outside the plan's layers), with the filter's kept mask
 * when one ran; set_rows says how many rows are valid (0 also drops the
 * kept masks). */
LscSsmStore *_lsc_ssm_store_new (const LscSsmCapturePlan *plan, int n_layers, int n_channels,
                                 int n_states, const float *const *a, GError **error);
void _lsc_ssm_store_put (LscSsmStore *store, int layer, int row0, int T, const float *dt,
                         const guint8 *kept);
void _lsc_ssm_store_set_rows (LscSsmStore *store, int rows);
/* The store's capacity in rows after it held `cap` and needs `rows`. */
int _lsc_ssm_store_grow (int cap, int rows);
/* The store's bytes after a run of first_eval tokens at once (in blocks of
 * `block`), then single tokens up to n_pos; filtered: the first evaluation
 * ran the filter (kept masks on the recorded layers). */
guint64 _lsc_ssm_store_bytes (const LscModelConfig *c, const LscSsmCapturePlan *plan, int block,
                              int first_eval, int n_pos, gboolean filtered);

/* The Mamba-1/2 forward (lsc-mamba.c). init sets s->ssm; eval runs n tokens
 * from s->pos (FALSE, error set: cancelled, or the device failed; the state
 * is left as it was). */
gboolean _lsc_ssm_init (LscSession *s, GError **error);
gboolean _lsc_ssm_eval (LscSession *s, const gint32 *tokens, int n, float *logits,
                        gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data,
                        GError **error);
void _lsc_ssm_free (LscSession *s);
/* Back to the empty state (position 0). */
void _lsc_ssm_reset (LscSession *s);

/* The sizes of a Mamba mixer, from the config. */
typedef struct {
  gboolean m2;
  int E, N, K, R;         /* inner size, state size, conv width, dt rank (Mamba-1) */
  int H, P, G;            /* Mamba-2 heads, head dim, groups; Mamba-1: H = E, P = 1, G = 1 */
  int n_in;               /* rows of in_proj */
  int n_conv;             /* channels of the convolution: E (Mamba-1), E + 2GN (Mamba-2) */
  int widest;             /* the widest input of a projection: max(dim, E, R) */
} LscSsmShape;
void _lsc_ssm_shape (const LscModelConfig *c, LscSsmShape *shape);

/* One Mamba layer as the forward uses it: vectors widened to float32,
 * matrices as stored. */
typedef struct {
  float *norm;            /* (dim) block input norm */
  LscMatrix in_proj;      /* Mamba-1 (2E, dim); Mamba-2 (2E + 2GN + H, dim) */
  float *conv_w;          /* (n_conv, K) */
  float *conv_b;          /* (n_conv) or NULL */
  LscMatrix x_proj;       /* Mamba-1 (R + 2N, E) */
  LscMatrix dt_proj;      /* Mamba-1 (E, R) */
  float *dt_bias;         /* (E) Mamba-1; (H) Mamba-2 */
  float *A;               /* -exp(A_log): (E, N) Mamba-1; (H) Mamba-2 */
  float *D;               /* (E) / (H) */
  float *gated_norm;      /* Mamba-2 (E) */
  LscMatrix out_proj;     /* (dim, E) */
} LscSsmLayer;
const LscSsmLayer *_lsc_ssm_get_layer (const LscSession *s, int layer);

/* Whether this evaluation records or filters Δ: then every layer's Δ (T, H)
 * goes through _lsc_ssm_dt_hook (), which records it and zeroes what the
 * filter drops (TRUE when it filtered, so dt may have changed); kept (T, H)
 * is its scratch. */
gboolean _lsc_ssm_dt_hooked (const LscSession *s);
gboolean _lsc_ssm_dt_hook (LscSession *s, int layer, int start, int T, float *dt, guint8 *kept);

/* Mamba on the GPU (lsc-mamba-cuda.c; no-ops that say so in a build without
 * CUDA). Why it cannot run `model` with `params` (NULL when it can; free it);
 * one block of T tokens at positions start.. through every layer (logits as
 * in _lsc_session_eval_cuda ()); and the device copy of the state: saved
 * before an evaluation that may be cancelled, restored after, or zeroed. */
char *_lsc_ssm_cuda_unsupported_reason (const LscModel *model, const LscSessionParams *params);
gboolean _lsc_ssm_forward_cuda (LscSession *s, const gint32 *tokens, int start, int T,
                                float *logits, gboolean all_logits, LscCancelFunc cancel,
                                gpointer cancel_data, GError **error);
typedef enum { LSC_SSM_STATE_SAVE, LSC_SSM_STATE_RESTORE, LSC_SSM_STATE_ZERO } LscSsmStateOp;
gboolean _lsc_ssm_cuda_state (LscSession *s, LscSsmStateOp op, GError **error);
/* A (n floats) of an SSM layer as the forward uses it: -exp(A_log), or A
 * where the checkpoint stores that, widened to float32 (its bytes added to
 * *counter); NULL when the layer has neither, of n elements. */
float *_lsc_ssm_widen_a (const LscModel *model, int layer, gint64 n, guint64 *counter);

/* KV policies (lsc-kv.c). Without one (s->kv NULL) a token's slot is its
 * position and every call below is a no-op or says so. During an
 * evaluation, s->pos is the stream position of its first token, which goes
 * to slot _lsc_kv_slot0 (s, layer) of every layer. */
gboolean _lsc_kv_init (LscSession *s, GError **error);   /* s->layers set */
void _lsc_kv_free (LscSession *s);
void _lsc_kv_reset (LscSession *s);                      /* back to an empty stream */
int _lsc_kv_slot0 (const LscSession *s, int layer);
int _lsc_kv_max_len (const LscSession *s);               /* slots in use, the fullest layer */
/* TRUE: keys are cached before RoPE and queries rotate at their slot. */
gboolean _lsc_kv_pos_shift (const LscSession *s);
/* Where attention reads layer's keys: the cache, or (position shift) the
 * copy _lsc_kv_prepare_keys () made of its first n_slots slots, each
 * rotated at its slot. Call that first, once the new keys are in the cache
 * (it also unrotates LM-Infinite's global keys). */
const float *_lsc_kv_keys (const LscSession *s, int layer);
void _lsc_kv_prepare_keys (LscSession *s, int layer, int n_slots);
/* TRUE when the policy changes attention rows (LM-Infinite's Λ mask):
 * every row's scaled logits over slots 0 .. slot then go through
 * _lsc_kv_fix_row () before the softmax (q: the row's query after RoPE,
 * scale its logit scale, thread its OpenMP thread). */
gboolean _lsc_kv_fixes_rows (const LscSession *s);
void _lsc_kv_fix_row (LscSession *s, int layer, int head, int pos, int slot, const float *q,
                      float *scores, float scale, int thread);
/* Before an evaluation of n tokens: which rows the policy scores. */
void _lsc_kv_begin_eval (LscSession *s, int n);
/* TRUE while the current evaluation's rows add to per-thread sums. */
gboolean _lsc_kv_scoring (const LscSession *s);
/* Where the row of query head `head` at stream position pos adds its
 * probabilities (indexed by slot) on OpenMP thread `thread`; NULL when the
 * policy does not score it. */
float *_lsc_kv_row_sums (LscSession *s, int head, int pos, int thread);
/* ThinK: the query (after RoPE) of the row of query head `head` at stream
 * position pos, on OpenMP thread `thread`, for the channel scores. */
void _lsc_kv_row_query (LscSession *s, int head, int pos, const float *q, int thread);
/* After a layer's attention: folds the threads' sums of its first n_slots slots. */
void _lsc_kv_fold_sums (LscSession *s, int layer, int n_slots);
/* After an evaluation of n tokens that finished (s->pos already advanced):
 * the policy decides, compacts and logs. */
void _lsc_kv_end_eval (LscSession *s, int n);
/* After a cancelled one: drops its sums. */
void _lsc_kv_cancel_eval (LscSession *s);
/* Bytes of a policy's state (slot table, score sums, rotation buffers) for
 * a session of params; of its log after a prompt of n_prompt tokens fed
 * `chunk` at a time (0: at once), then single tokens up to n_pos; and of a
 * session's (both). */
guint64 _lsc_kv_state_bytes (const LscModelConfig *c, const LscSessionParams *params);
guint64 _lsc_kv_log_bytes (const LscModelConfig *c, const LscKvPolicy *policy, int chunk,
                           int n_prompt, int n_pos);
guint64 _lsc_session_kv_bytes (const LscSession *s);
/* Bytes of the recurrent state of a model (conv inputs and SSM state, every layer). */
guint64 _lsc_ssm_state_bytes (const LscModelConfig *c);
/* Bytes of the block buffers of a session (0 before its first evaluation). */
guint64 _lsc_ssm_buffer_bytes (const LscSession *s);
/* An SSM session's scratch_bytes (lsc_session_get_memory ()) once evaluations
 * of at most n tokens have run (n = 0: none yet). */
guint64 _lsc_ssm_session_bytes (const LscModel *model, const LscSessionParams *params, int n);

gboolean _lsc_session_eval_fast (LscSession *s, const gint32 *tokens, int n, float *logits,
                                 gboolean all_logits, LscCancelFunc cancel, gpointer cancel_data);
void _lsc_session_free_fast (LscSession *s);

/* The capture store (lsc-attention.c). */
LscAttentionStore *_lsc_attention_store_new (const LscSession *s, const LscCapturePlan *plan,
                                             GError **error);
void _lsc_attention_store_free (LscAttentionStore *store);
/* TRUE when row `pos` of `layer` is captured (store may be NULL). */
gboolean _lsc_attention_wants (const LscAttentionStore *store, int layer, int pos);
/* TRUE when the store holds heads of `layer`: their tiles read its keys at
 * every position, captured rows or not (store may be NULL). */
gboolean _lsc_attention_has_layer (const LscAttentionStore *store, int layer);
/* The float32 paths compute a row's scores with float dot products; a tile
 * recomputed in double would disagree with their normaliser by the float
 * rounding of the large logits. This corrects lse to the double-precision
 * scores of the keys that carry the mass (p >= LSC_REFINE_MIN_P):
 * lse64 = lse + ln(1 + sum_j p_j (exp(x64_j - x32_j) - 1)), over the row's
 * keys (n, kv_dim apart) and probabilities p (n). */
#define LSC_REFINE_MIN_P 1e-3f
float _lsc_attention_refine_lse (const float *q, const float *keys, int kv_dim, int hd,
                                 const float *p, int n, float scale, float lse);
/* Where the store keeps (layer, head): the query of row pos at
 * q + (pos - row_start) * q_stride floats, its normaliser at
 * lse + (pos - row_start), its logit scale at scale + (pos - row_start)
 * (scale NULL: the store keeps none, no scale hook); rows
 * [row_start, row_start + row_cap). FALSE when the head is not captured.
 * For backends that write rows in bulk (the GPU). */
gboolean _lsc_attention_slot (LscAttentionStore *store, int layer, int head, float **q,
                              gsize *q_stride, float **lse, float **scale, int *row_start,
                              int *row_cap);
/* Records query q (head_dim), the normaliser and the logit scale of (layer, head, pos). */
void _lsc_attention_put (LscAttentionStore *store, int layer, int head, int pos, const float *q,
                         float lse, float scale);
/* Tests: the scores the CPU's streaming pass holds per thread (64 MiB). */
void _lsc_attention_set_pool_scores_cap (gsize bytes);

/* ---- attention maps on the GPU (lsc-attention-cuda.c) ---- */

#define LSC_PYRAMID_MAX_CELLS (1 << 18)   /* blocks of a pyramid's finest stored level */

/* One head's captured rows in the host store, indexed by position: row i's
 * query at q + i q_stride, its normaliser lse[i] and logit scale scale[i]
 * (scale NULL: base_scale); its keys are the session's (layer, kv_head). */
typedef struct {
  int layer, kv_head, head_dim;
  const float *q;
  gsize q_stride;
  const float *lse, *scale;
  float base_scale;
  int window;
} LscMapHead;

/* TRUE when the GPU recomputes the tiles and pyramids of s's store. */
gboolean _lsc_cuda_maps_on (const LscSession *s);
/* lsc_attention_tile () on the GPU (the range checked by the caller). */
gboolean _lsc_cuda_map_tile (const LscSession *s, const LscMapHead *h, int q0, int q1, int k0,
                             int k1, float masked_value, float *out, GError **error);
/* lsc_attention_analyze ()'s pass on the GPU over rows [r0, r0 + n_rows) and
 * keys [0, r0 + n_rows): the finest pyramid cells (ceil(n_rows / block),
 * ceil(n_keys / block)), at most LSC_PYRAMID_MAX_CELLS, of max, sum and count,
 * and the sums over rows of entropy, sink mass, max p and distance. */
gboolean _lsc_cuda_map_pool (const LscSession *s, const LscMapHead *h, int r0, int n_rows,
                             int sink_tokens, int block, float *cell_max, double *cell_sum,
                             gint64 *cell_count, double sums[4], GError **error);
/* The device bytes of a session's map buffers (0 when it has none). */
guint64 _lsc_cuda_maps_bytes (const LscModel *model, const LscSessionParams *params);

G_END_DECLS
