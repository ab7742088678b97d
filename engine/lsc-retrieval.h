/* SPDX-License-Identifier: MIT
 *
 * lsc-retrieval.h: retrieval-head detection (Wu et al. 2024, reference code
 * nightdessert/Retrieval_Head) and head ablation.
 *
 * One sample = one needle prompt (lsc-needle.h). Generation follows the
 * reference: the prompt minus its last token is prefilled, the last prompt
 * token is the first decode step, decoding is greedy, at most max_tokens
 * (50) new tokens, and stops after a token whose text holds a newline (the
 * reference's '<0x0A>') or after EOS (and, for llama2.c checkpoints, BOS).
 * The rows captured are the decode rows: positions n_prompt - 1 onwards, all
 * layers and query heads.
 *
 * For decode step t (row r = n_prompt - 1 + t, generated token w_t) and
 * every (layer, query head): j = argmax_k p[r][k] over all keys 0..r (lowest
 * index on ties), p = p[r][j], in_span = answer_start <= j < answer_end,
 * copy_hit = in_span && prompt[j] == w_t. The per-sample score of a head is
 *
 *     score = (number of steps with copy_hit) / (answer_end - answer_start)
 *
 * exactly as the reference: every decode step counts, so a head that copies
 * the same answer position twice counts it twice and a score can exceed 1.
 *
 * A sample counts only when its answer is recalled: ROUGE-1 recall of the
 * response against the answer > recall_threshold (0.5, the reference's
 * "> 50"). Our ROUGE-1 recall: both texts lower-cased (ASCII), every run of
 * characters other than [a-z0-9] is a separator (rouge_score's tokenizer),
 * no stemming; recall = sum over distinct reference tokens of
 * min(count in response, count in reference) / number of reference tokens.
 * The response is the generated text without special tokens, trimmed.
 *
 * Head score = mean of the per-sample scores over passing samples; heads
 * rank by it, descending (ties by layer, then head). The reference's JSON:
 * {"layer-head": [per-sample score of each passing sample, ...]}.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "lsc-generate.h"
#include "lsc-needle.h"
#include "lsc-tokenizer.h"

G_BEGIN_DECLS

/* ROUGE-1 recall of `candidate` against `reference` in [0, 1] (0 when the
 * reference has no tokens). */
double lsc_rouge1_recall (const char *reference, const char *candidate);

/* Per decode step and head: what the detector looks at. */
typedef struct {
  int n_layers, n_heads;
  int n_steps;
  gint32 *tokens;          /* (n_steps) the generated tokens */
  gint32 *argmax;          /* (n_steps, n_layers, n_heads) argmax key position */
  float *max_prob;         /* (n_steps, n_layers, n_heads) its probability */
  guint8 *in_span;         /* (n_steps, n_layers, n_heads) filled by lsc_retrieval_score_trace */
  guint8 *copy_hit;        /* (n_steps, n_layers, n_heads) likewise */
} LscRetrievalTrace;

LscRetrievalTrace *lsc_retrieval_trace_new (int n_layers, int n_heads, int n_steps);
void lsc_retrieval_trace_free (LscRetrievalTrace *trace);

/* Fills trace->in_span and trace->copy_hit and scores (n_layers *
 * n_heads, layer-major) with the per-sample scores above; all zero when
 * the span is empty (start < 0, as the reference when it finds no span). */
void lsc_retrieval_score_trace (LscRetrievalTrace *trace, const gint32 *prompt, int n_prompt,
                                int span_start, int span_end, double *scores);

typedef struct {
  int max_tokens;              /* default 50 */
  double recall_threshold;     /* default 0.5: passes when recall > threshold */
  gboolean capture;            /* default TRUE: detect; FALSE: generate only (ablation) */
  int n_threads;               /* 0 = all cores */
  gboolean reference;          /* the reference forward path */
  LscBackend backend;          /* CPU by default (lsc-session.h) */
  int eos_id, bos_id;          /* stop ids, -1 = none */
  const int *masked_heads;     /* layer * n_heads + head: scale 0 (uniform attention) */
  int n_masked;
  guint64 memory_budget;       /* capture store budget in bytes; 0 = 4 GiB */
  LscAttentionHooks hooks;     /* plugins' hooks, none by default; masked heads scale by 0 over them */
} LscRetrievalParams;

void lsc_retrieval_params_init (LscRetrievalParams *params);

typedef struct {
  int n_prompt;
  int answer_start, answer_end;
  GArray *tokens;              /* (element-type gint32) generated */
  char *response;
  double recall;
  gboolean passed;
  LscRetrievalTrace *trace;    /* NULL without capture */
  double *scores;              /* (n_layers * n_heads) per-sample scores; NULL without capture */
  int copy_events;             /* copy hits over all steps and heads */
  LscBackend backend;          /* what the sample's session ran on: CPU or CUDA */
  char *backend_note;          /* why it ran on the CPU although CUDA or AUTO was asked, or NULL */
} LscRetrievalSample;

void lsc_retrieval_sample_free (LscRetrievalSample *sample);

/* Why runs with heads masked (a logit scale) would run on the CPU where the
 * same runs without masks take the GPU (auto keeps logit scales off the GPU
 * until they are checked there), or NULL when both go to the same backend.
 * A grid with ablations then runs everything on the CPU, so that recalls
 * with and without masks compare. */
char *lsc_retrieval_masks_split_backends (LscModel *model, const LscRetrievalParams *params);

/* Runs one sample: generation from a fresh session (capture and masks per
 * params), then the trace, scores and the recall filter. */
LscRetrievalSample *lsc_retrieval_run (LscModel *model, const LscTokenizer *tok,
                                       const LscNeedlePrompt *prompt, const char *answer,
                                       const LscRetrievalParams *params, LscCancelFunc cancel,
                                       gpointer cancel_data, GError **error);

typedef struct {
  int n_layers, n_heads;
  int n_samples, n_passed;
  double *mean;            /* (n_layers * n_heads) mean over passing samples; NAN when none passed */
  int *ranking;            /* (n_layers * n_heads) head indices, best first */
} LscRetrievalSummary;

/* ranking (n) <- the head indices 0..n-1 ordered by scores (n), best first,
 * as the summary ranks them: descending, NaN counted as -1 (after every
 * score >= 0), ties by index (layer, then head). */
void lsc_retrieval_rank (const double *scores, int n, int *ranking);

/* Samples without scores (no capture) are ignored. */
LscRetrievalSummary *lsc_retrieval_summarize (LscRetrievalSample *const *samples, int n,
                                              int n_layers, int n_heads);
void lsc_retrieval_summary_free (LscRetrievalSummary *summary);
/* Heads with a mean score > threshold. */
int lsc_retrieval_summary_count_above (const LscRetrievalSummary *summary, double threshold);

/* The reference's layout: {"L-H": [score of each passing sample]}. */
json_object *lsc_retrieval_reference_json (LscRetrievalSample *const *samples, int n,
                                           int n_layers, int n_heads);

/* k heads drawn (seeded, uniformly, without replacement) from the heads
 * that are neither among the first `exclude_top` of the ranking nor scored
 * above `threshold`; *n_out may be less than k when too few qualify. */
int *lsc_retrieval_random_heads (const LscRetrievalSummary *summary, int k, int exclude_top,
                                 double threshold, guint64 seed, int *n_out);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscRetrievalTrace, lsc_retrieval_trace_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscRetrievalSample, lsc_retrieval_sample_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscRetrievalSummary, lsc_retrieval_summary_free)

G_END_DECLS
