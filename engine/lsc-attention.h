/* SPDX-License-Identifier: MIT
 *
 * lsc-attention.h: attention maps at long context without N^2 memory.
 *
 * While a session runs, the capture store keeps, for every captured layer and
 * query head, what is needed to recompute any attention probability exactly:
 * the post-RoPE query of each captured row (head_dim floats) and the row's
 * softmax normaliser (log-sum-exp of its scaled logits). Keys are the
 * session's KV cache (post-RoPE, float32); query head h reads KV head
 * h / (n_heads / n_kv_heads). The mask of a row is the model's (causal, plus
 * the layer's sliding window) plus whatever the session's attention hooks
 * hide, and its logit scale is 1/sqrt(head_dim) times the hooks' scale, so
 *
 *     p[i][j] = exp(scale_i * q_i . k_j - lse_i)   for visible j, 0 otherwise
 *
 * is exactly the probability the forward pass used. Memory per captured
 * head: n_rows * (head_dim + 1) floats (+1 when a scale hook is set),
 * against n_rows^2 for the map itself.
 *
 * From the store: exact tiles of any (layer, head, query range, key range),
 * a pooled pyramid per head (block max and block mean over visible cells,
 * blocks of 2^k, built in one streaming pass over row blocks), per-head
 * statistics, and the mass of any (query span, key span).
 *
 * A session on the GPU (without a mask hook) computes tiles and the
 * streaming pass there, from its device copy of the keys: tiles agree with
 * the host's to float rounding (both sum each dot product in double), the
 * pyramid and statistics to about 1e-6 (both score in float32, summed in
 * another order). Calls may come from several threads; the device serves
 * one at a time.
 *
 * The store belongs to its session: it is valid while the session lives, and
 * rewinding the session drops the captured rows past the new position. Do
 * not read it while the session evaluates.
 *
 * Example:
 *
 *   LscSessionParams p;
 *   lsc_session_params_init (&p);
 *   p.capture.enabled = TRUE;              // every layer, head and row
 *   session = lsc_session_new (model, &p, &error);
 *   lsc_session_eval (session, tokens, n, NULL, FALSE, NULL, NULL, &error);
 *   const LscAttentionStore *a = lsc_session_get_attention (session);
 *   float tile[64 * 64];
 *   lsc_attention_tile (a, 3, 7, 1000, 1064, 0, 64, 0.0f, tile, &error);
 */
#pragma once

#include <glib.h>

#include "lsc-tensor-reader.h"
#include "lsc-tensor-writer.h"

G_BEGIN_DECLS

/* What a session captures. Layers and heads are lists of indices; NULL (or
 * n = 0) means all. Rows are the query positions [row_start, row_end);
 * row_end <= row_start (0 by default) means every position the session
 * will hold. */
typedef struct {
  gboolean enabled;
  const int *layers;
  int n_layers;
  const int *heads;
  int n_heads;
  int row_start;
  int row_end;
  guint64 memory_budget;   /* bytes the store may use; 0 = 4 GiB */
} LscCapturePlan;

/* Hooks on the attention logits of every layer and head, for plugins
 * (temperatures, masks) and KV policies. Both must be pure functions of
 * their arguments: tiles are recomputed later by calling them again. */
typedef struct {
  /* Multiplier of the logits of query row `pos` (1 = none). */
  float (*scale) (gpointer data, int layer, int head, int pos);
  /* Marks keys 0 .. pos hidden from query row `pos`: hidden (pos + 1) comes
   * zeroed; set entries to 1. At least one key the model's own mask leaves
   * visible must stay visible. */
  void (*mask_row) (gpointer data, int layer, int head, int pos, guint8 *hidden);
  gpointer data;
} LscAttentionHooks;

/* What the capture store of a plan holds: the captured layers and heads
 * (indices listed twice count once), the rows it can hold, and its bytes:
 *
 *     bytes = n_layers * n_heads * row_cap * (head_dim + 1 [+ 1 with a scale hook]) * 4
 *
 * (queries, normalisers [, logit scales]), the size lsc_attention_get_bytes ()
 * reports. */
typedef struct {
  int n_layers, n_heads;   /* captured */
  int row_start, row_cap;  /* query rows [row_start, row_start + row_cap) */
  guint64 bytes;
} LscCaptureLayout;

/* The layout of the store that a session of n_ctx tokens on a model of
 * n_layers layers and n_heads query heads of head_dim makes for `plan`
 * (plan->enabled is not looked at), with the session's own formula and
 * checks: fails as lsc_session_new () would, with LSC_RUN_ERROR_UNSUPPORTED
 * naming the plan's entry for a layer or head that does not exist
 * ("capture plan: layers[1] = 7 does not exist (the model has 2 layers)"),
 * LSC_RUN_ERROR_OUT_OF_MEMORY when the store is over plan->memory_budget.
 *
 * Example (a 16-layer model of 32 heads of 64, 4096 prompt rows of layer 3):
 *
 *   int layers[] = { 3 };
 *   LscCapturePlan plan = { .enabled = TRUE, .layers = layers, .n_layers = 1,
 *                           .row_end = 4096 };
 *   LscCaptureLayout lay;
 *   lsc_attention_plan_layout (&plan, 16, 32, 64, 8192, FALSE, &lay, &error);
 *   // lay.bytes = 1 * 32 * 4096 * 65 * 4 = 34078720
 */
gboolean lsc_attention_plan_layout (const LscCapturePlan *plan, int n_layers, int n_heads,
                                    int head_dim, int n_ctx, gboolean scale_hook,
                                    LscCaptureLayout *layout, GError **error);

typedef struct _LscAttentionStore LscAttentionStore;

/* Rows captured so far: positions [lsc_attention_get_row_start (),
 * lsc_attention_get_row_start () + n_rows). */
int lsc_attention_get_row_start (const LscAttentionStore *store);
int lsc_attention_get_n_rows (const LscAttentionStore *store);
gboolean lsc_attention_has_head (const LscAttentionStore *store, int layer, int head);
/* Bytes held by the store (queries, normalisers, scales). */
guint64 lsc_attention_get_bytes (const LscAttentionStore *store);

/* out (head_dim) <- the stored post-RoPE query of (layer, head, pos). */
gboolean lsc_attention_get_query (const LscAttentionStore *store, int layer, int head, int pos,
                                  float *out, GError **error);
/* out (head_dim) <- the post-RoPE key of (layer, KV head, pos) from the KV
 * cache, for a layer the store holds. */
gboolean lsc_attention_get_key (const LscAttentionStore *store, int layer, int kv_head, int pos,
                                float *out, GError **error);
/* The logit scale and normaliser of a captured row. */
gboolean lsc_attention_get_row (const LscAttentionStore *store, int layer, int head, int pos,
                                float *scale, float *lse, GError **error);

/* out ((q1 - q0), (k1 - k0)) <- probabilities of query rows [q0, q1) over
 * keys [k0, k1); cells the row cannot see get masked_value (0, or NAN for
 * figures). Fails with LSC_RUN_ERROR_UNSUPPORTED naming the range when the
 * head or a row was not captured. */
gboolean lsc_attention_tile (const LscAttentionStore *store, int layer, int head, int q0, int q1,
                             int k0, int k1, float masked_value, float *out, GError **error);

/* Sum of the probabilities of query rows [q0, q1) over keys [k0, k1). */
gboolean lsc_attention_mass (const LscAttentionStore *store, int layer, int head, int q0, int q1,
                             int k0, int k1, double *mass, GError **error);

/* Per-head statistics over all captured rows (means over rows). */
typedef struct {
  double entropy;          /* -sum p ln p, nats */
  double sink_mass;        /* mass on keys [0, sink_tokens) */
  double max_prob;         /* the row's largest probability */
  double mean_distance;    /* sum p_j (i - j), in tokens */
} LscHeadStats;

/* A pooled pyramid of one head's map, over the captured rows (r rows, from
 * row_start) and keys [0, row_start + r). Level k pools blocks of 2^k x 2^k
 * cells; levels[0] is the finest stored level, the smallest 2^k with
 * ceil(n_rows / 2^k) * ceil(n_keys / 2^k) <= 2^18; finer views recompute tiles. */
typedef struct {
  int block;               /* 2^k cells per side */
  int rows, cols;          /* blocks */
  float *max;              /* (rows, cols) block max over visible cells; NAN if none visible */
  float *mean;             /* (rows, cols) block mean over visible cells; NAN if none visible */
} LscPyramidLevel;

typedef struct {
  int layer, head;
  int row_start, n_rows, n_keys;
  int n_levels;
  LscPyramidLevel *levels; /* (n_levels) finest first, down to a single block */
} LscAttentionPyramid;

/* One streaming pass over the head's rows (blocks of rows, never the whole
 * map): the pyramid and the statistics together. Either output may be NULL. */
gboolean lsc_attention_analyze (const LscAttentionStore *store, int layer, int head, int sink_tokens,
                                LscAttentionPyramid **pyramid, LscHeadStats *stats,
                                GError **error);
void lsc_attention_pyramid_free (LscAttentionPyramid *pyramid);
/* Bytes of the max and mean arrays of every level of the pyramid that
 * lsc_attention_analyze () builds over n_rows captured rows and n_keys keys
 * (0 when either is 0). Example: 4096 rows x 4096 keys: blocks of 8, levels
 * of 512^2, 256^2, ..., 1 blocks: 2 * 4 * (512^2 + 256^2 + ... + 1) = 2796200. */
guint64 lsc_attention_pyramid_bytes (int n_rows, int n_keys);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscAttentionPyramid, lsc_attention_pyramid_free)

/* The model geometry the store was captured on. */
void lsc_attention_get_shape (const LscAttentionStore *store, int *n_layers, int *n_heads,
                              int *n_kv_heads, int *head_dim);

/* Saving a store with its run, so that the run's attention reopens exactly
 * (the GUI's Export Run, a batch job's "capture": {"store": true}): adds
 * to writer, all F32 unless said,
 *
 *   attn.store.geometry  I32 [8]: version (1), n_layers, n_heads, n_kv_heads,
 *                        head_dim, row_start, n_rows, scales (0 or 1)
 *   attn.store.layers    I32 [n_captured_layers], attn.store.heads I32 [n_captured_heads]
 *   attn.store.windows   I32 [n_layers]: each layer's sliding window (0: none)
 *   attn.store.L.query   [n_rows, n_captured_heads, head_dim]: post-RoPE queries
 *                        of rows row_start .. row_start + n_rows - 1
 *   attn.store.L.key     [row_start + n_rows, n_kv_heads, head_dim]: post-RoPE keys
 *   attn.store.L.lse     [n_captured_heads, n_rows]: row normalisers
 *   attn.store.L.scale   [n_captured_heads, n_rows]: row logit scales, with scales = 1
 *                        (otherwise 1/sqrt(head_dim))
 *
 * for every captured layer L, so that p[i][j] = exp(scale_i * q_i . k_j -
 * lse_i) over the keys row i sees (causal, within the layer's window).
 * Queries and keys are not copied: the store (and its session) must outlive
 * the writer. Fails with LSC_RUN_ERROR_UNSUPPORTED for a session with a
 * mask hook (its masks are code) or a writer that holds a store already. */
gboolean lsc_attention_save (const LscAttentionStore *store, LscTensorWriter *writer,
                             GError **error);

/* A store read back from a tensor file that lsc_attention_save () wrote: the
 * file is memory-mapped, nothing is copied, every tensor's dtype and shape
 * is checked against the geometry, and errors name the file and the tensor
 * (LSC_MODEL_ERROR). Tiles, masses, pyramids and statistics from it equal
 * those of the saved run. Free with lsc_attention_free (). */
LscAttentionStore *lsc_attention_load (const char *path, GError **error);
/* The same from a tensor file already open (its other tensors read too,
 * e.g. statistics): takes the reader, which the store keeps or frees. */
LscAttentionStore *lsc_attention_load_reader (LscTensorReader *reader, GError **error);
/* Only for stores from lsc_attention_load (); a session owns its own. */
void lsc_attention_free (LscAttentionStore *store);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscAttentionStore, lsc_attention_free)

G_END_DECLS
