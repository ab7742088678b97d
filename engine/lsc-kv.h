/* SPDX-License-Identifier: MIT
 *
 * lsc-kv.h: KV-cache eviction policies (methods.md section 3) that run for
 * real in a session's KV cache, and the log of what they kept and dropped.
 *
 * With a policy, a session's cache has n_ctx slots per layer and KV head,
 * and a token's slot is no longer its position: the stream can run far past
 * n_ctx. Every evaluation appends its tokens after the slots in use (the
 * attention of a new token sees every cached slot and the new tokens before
 * it), then the policy runs once on the cache:
 *
 *   streaming-llm  (Xiao et al. 2024, mit-han-lab/streaming-llm): when more
 *                  than sink + recent slots are in use, keep the first
 *                  `sink` and the last `recent`; every layer and head alike.
 *                  Position shift: keys are cached before RoPE and rotated
 *                  at their slot index at every step; a query is rotated at
 *                  its own slot.
 *   h2o            (Zhang et al. 2023, FMInference/H2O real-drop): every
 *                  slot accumulates the attention it receives (summed over
 *                  the evaluation's query rows, kept across evaluations);
 *                  when more than heavy + recent slots are in use, keep the
 *                  `heavy` slots with the most accumulated attention among
 *                  all but the last `recent`, and the last `recent`.
 *   snapkv         (Li et al. 2024, FasterDecoding/SnapKV): once, after the
 *                  first evaluation (the prompt) when it held at least
 *                  `capacity` tokens: the last `window` prompt rows vote
 *                  (their attention summed) for every earlier token, the
 *                  votes are pooled (avg or max, `kernel` wide, stride 1),
 *                  and the capacity - window best plus the window are kept.
 *                  Decode tokens are appended, never evicted.
 *   pyramidkv      (Cai et al. 2024, Zefan-Cai/PyramidKV): SnapKV with a
 *                  budget that falls linearly with depth (`beta` sets the
 *                  smallest), as pyramidkv_utils.py computes it.
 *   lacache        (Shi et al. 2025, GATECH-EIC/LaCache ppl/lacache/kv_cache.py):
 *                  when more than `capacity` slots are in use, the oldest
 *                  tokens after the `sink` are thinned in blocks: of every
 *                  `before` consecutive tokens layer l keeps `after`,
 *                  starting at offset l mod (before - after + 1), a ladder
 *                  across layers (before and after follow from n_layers,
 *                  `span` and `overlap`); once the ladder reaches the end of
 *                  the cache it starts over, thinning the laddered region
 *                  again. Every layer keeps as many tokens, at different
 *                  positions. Position shift, as streaming-llm. Where the
 *                  reference's arithmetic would repeat a token (a first
 *                  eviction smaller than its one-time compensation), this
 *                  evicts nothing instead.
 *
 *   lm-infinite    (Han et al. 2024, Glaciohound/LM-Infinite, the Λ-shaped
 *                  mask with the distance cap): a query at position p sees
 *                  keys with p - j < `local` at their true distance, and the
 *                  first `global` tokens, when farther, at the fixed
 *                  distance `local` (the query rotated at `local`, the key
 *                  unrotated); nothing else. The cache keeps just what can
 *                  still be seen, the first `global` and the last local - 1
 *                  tokens [adaptation, methods.md 3.6]: the logits are the
 *                  reference's, whose cache keeps everything.
 *   think          (Xu et al. 2024, SalesforceAIResearch/ThinK
 *                  key_pruner_query_driven): once, after the first
 *                  evaluation, each KV head scores its key channels by
 *                  mean(q_c^2) over the last 32 query rows times mean(k_c^2)
 *                  over the cached keys, and drops the int(head_dim * ratio)
 *                  lowest channels from every key but the last `recent`
 *                  (the channels are zeroed in the cache: the logits are
 *                  those of the pruned keys; no memory is saved). No token
 *                  is evicted. Scores of the query heads of a KV head are
 *                  summed.
 *
 * H2O, SnapKV, PyramidKV, LM-Infinite and ThinK keep keys after RoPE at their
 * original positions, and new queries use their true position.
 *
 * Grouped-query attention [adaptation, methods.md 0.2 (b)]: the cache is not
 * expanded to the query heads. Scores are kept per query head and summed
 * over the heads that share a KV head; each KV head selects its own slots.
 * With one query head per KV head this is the reference's selection.
 * Selected slots stay in position order (the references gather SnapKV's in
 * score order; attention does not depend on the order). Ties go to the
 * earlier position.
 *
 * A prompt may be fed in chunks (several evaluations): StreamingLLM and H2O
 * then act after every chunk, as the references act after every forward
 * call; StreamingLLM one token at a time is the reference perplexity run.
 *
 * Example (H2O with 64 heavy hitters and 64 recent tokens):
 *
 *   lsc_kv_policy_init (&p.kv_policy, LSC_KV_H2O);
 *   p.kv_policy.n_heavy = 64;
 *   p.kv_policy.n_recent = 64;
 *   p.n_ctx = 128 + prompt_len;          // the budget plus one evaluation
 *   session = lsc_session_new (model, &p, &error);
 *   ...
 *   const LscKvLog *log = lsc_session_get_kv (session);
 *   if (lsc_kv_log_evicted_at (log, 3, 0, 17) >= 0) ...   // gone
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  LSC_KV_FULL = 0,          /* no eviction (the default) */
  LSC_KV_STREAMING_LLM,
  LSC_KV_H2O,
  LSC_KV_SNAPKV,
  LSC_KV_PYRAMIDKV,
  LSC_KV_LACACHE,
  LSC_KV_LM_INFINITE,
  LSC_KV_THINK,
} LscKvPolicyKind;

typedef enum {
  LSC_KV_POOL_AVG = 0,      /* avg_pool1d, zero padding counted */
  LSC_KV_POOL_MAX,          /* max_pool1d */
} LscKvPooling;

typedef struct {
  LscKvPolicyKind kind;
  int n_sink;               /* streaming-llm, lacache: start_size */
  int n_recent;             /* streaming-llm, h2o, think: recent_size */
  int n_heavy;              /* h2o: hh_size */
  int capacity;             /* snapkv / pyramidkv: max_capacity_prompt (average per layer);
                               lacache: cache_size */
  int window;               /* snapkv / pyramidkv: observation window */
  int kernel;               /* snapkv / pyramidkv: pooling kernel, odd */
  LscKvPooling pooling;
  int beta;                 /* pyramidkv: the smallest budget is (capacity - window) / beta */
  int span, overlap;        /* lacache: layers a token's ladder step spans, and their overlap */
  int n_global, n_local;    /* lm-infinite: global_branch and local_branch (= limit_distance) */
  double ratio;             /* think: pruning_ratio, the fraction of key channels dropped */
} LscKvPolicy;

/* policy <- kind with the reference code's defaults: streaming-llm sink 4,
 * recent 512 (StartRecentKVCache); h2o heavy 4, recent 512
 * (H2OKVCache_LayerWise); snapkv capacity 2048, window 32, kernel 5, avg
 * (SnapKVCluster); pyramidkv capacity 2048, window 8, kernel 7, max, beta
 * 20 (the KVCache-Factory runner); lacache capacity 256, sink 4, span 16,
 * overlap 0 (the perplexity runner); lm-infinite global 10, local 4096
 * (the README's convert_llama_model (model, 4096, 10) for Llama-2); think
 * ratio 0.4, recent 32. */
void lsc_kv_policy_init (LscKvPolicy *policy, LscKvPolicyKind kind);
/* "full", "streaming-llm", "h2o", "snapkv", "pyramidkv", "lacache", "lm-infinite",
 * "think" */
const char *lsc_kv_policy_name (LscKvPolicyKind kind);
gboolean lsc_kv_policy_from_string (const char *name, LscKvPolicyKind *kind);
/* NULL when the policy's parameters are usable, else what is wrong
 * ("h2o: recent must be at least 1, not 0"); free it. */
char *lsc_kv_policy_check (const LscKvPolicy *policy);
/* Slots the policy keeps in `layer` (of n_layers) once a first evaluation of
 * n_prompt tokens has run: n_prompt when it evicts nothing then. */
int lsc_kv_policy_budget (const LscKvPolicy *policy, int n_layers, int layer, int n_prompt);

/* The slots (n_ctx) a session needs to run a prompt of n_prompt tokens,
 * fed `chunk` at a time (0: at once), and then max_tokens new tokens one at
 * a time: the budget plus the largest evaluation for streaming-llm and
 * h2o (lacache: its capacity and at most capacity / 2 of compensation;
 * lm-infinite: global + local - 1), every
 * token for snapkv and pyramidkv (their decode appends), never more than
 * n_prompt + max_tokens. */
int lsc_kv_policy_slots (const LscKvPolicy *policy, int n_prompt, int chunk, int max_tokens);

/* ---- the log ---- */

typedef struct _LscKvLog LscKvLog;

/* The record of one session's decisions, per layer and KV head, for every
 * position the stream has held. Scores are the policy's: h2o the attention
 * a token has accumulated (summed over the query heads of the KV head),
 * snapkv / pyramidkv its pooled vote; NaN where the policy has none
 * (streaming-llm, tokens that came after a one-shot compression). An
 * evicted token keeps the score it was evicted with; a live one has its
 * latest. */
const LscKvPolicy *lsc_kv_log_get_policy (const LscKvLog *log);
int lsc_kv_log_get_n_layers (const LscKvLog *log);
int lsc_kv_log_get_n_heads (const LscKvLog *log);       /* KV heads */
int lsc_kv_log_get_n_positions (const LscKvLog *log);   /* tokens the stream has held */
/* The stream length after each evaluation, (n_steps) ascending. */
const int *lsc_kv_log_get_steps (const LscKvLog *log, int *n_steps);
/* How many tokens the stream held when (layer, head) evicted position pos,
 * or -1 while it is cached. */
int lsc_kv_log_evicted_at (const LscKvLog *log, int layer, int head, int pos);
float lsc_kv_log_score (const LscKvLog *log, int layer, int head, int pos);
/* TRUE when position pos was in the cache of (layer, head) once the stream
 * held `length` tokens and the policy had run. */
gboolean lsc_kv_log_alive (const LscKvLog *log, int layer, int head, int pos, int length);
/* Cached positions of (layer, head) now. */
int lsc_kv_log_count_alive (const LscKvLog *log, int layer, int head);
/* ThinK: whether (layer, head) dropped key channel c (0 .. head_dim - 1)
 * from its older keys; FALSE for every other policy. */
gboolean lsc_kv_log_channel_pruned (const LscKvLog *log, int layer, int head, int channel);
int lsc_kv_log_get_head_dim (const LscKvLog *log);

/* A log read back from saved results: evicted_at and scores are (n_layers,
 * n_heads, n_positions), steps (n_steps), and for ThinK pruned (n_layers,
 * n_heads, head_dim) nonzero for a dropped channel (NULL: none); all copied. */
LscKvLog *lsc_kv_log_new_from_data (const LscKvPolicy *policy, int n_layers, int n_heads,
                                    int head_dim, int n_positions, const gint32 *evicted_at,
                                    const float *scores, const int *steps, int n_steps,
                                    const gint32 *pruned);
/* Only logs made by lsc_kv_log_new_from_data (); a session's belongs to it. */
void lsc_kv_log_free (LscKvLog *log);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscKvLog, lsc_kv_log_free)

/* ---- comparing a policy's run with the full cache ---- */

/* KL(P || Q) in nats of the next-token distributions softmax(p) and
 * softmax(q), computed in double. */
double lsc_kv_kl_divergence (const float *logits_p, const float *logits_q, int n);

G_END_DECLS
