/* SPDX-License-Identifier: MIT
 *
 * The parts of a batch job beyond generation, each in its own file:
 * attention capture (lsc-batch-attention.c), retrieval-head detection
 * (lsc-batch-retrieval.c).
 */
#pragma once

#include <json-c/json.h>

#include "lsc-batch.h"
#include "lsc-session.h"
#include "lsc-tokenizer.h"
#include "lsc-tensor-writer.h"

G_BEGIN_DECLS

typedef struct {
  int layer, head, q0, q1, k0, k1;
} LscJobTile;

/* The job's "backend" and what its sessions ran on, for the provenance. */
typedef struct {
  LscBackend requested;    /* the job's, or --backend */
  gboolean ran;            /* a session was created */
  LscBackend used;         /* CPU or CUDA: the first session's */
  char *note;              /* why a session ran on the CPU although CUDA or AUTO was asked */
} LscJobBackend;

/* Records that a session runs on `used` (with lsc_session_get_backend_note's
 * `note`); prints the first note as a warning on stderr when the job asked
 * for CUDA by name. */
void _lsc_job_backend_record (LscJobBackend *backend, LscBackend used, const char *note);
/* Creates the output folder (and its parents); the error names the folder. */
gboolean _lsc_batch_make_output_dir (const char *output_dir, GError **error);

/* The job's "capture" object. */
typedef struct {
  gboolean enabled;
  GArray *layers;          /* (element-type int) empty = all */
  GArray *heads;           /* (element-type int) empty = all */
  gboolean all_rows;       /* prompt and generated rows; FALSE = prompt rows only */
  guint64 budget;          /* bytes */
  GArray *tiles;           /* (element-type LscJobTile) */
  gboolean pyramids;
  gboolean store;              /* the queries, keys and normalisers themselves */
  gboolean stats;
  int sink_tokens;
  float *stat_values[4];   /* (n_layers, n_heads) entropy, sink_mass, max_prob, mean_distance,
                              filled by _lsc_job_capture_write; NaN where not captured */
  const LscHeadStats *known_stats;  /* (n_layers * n_heads) computed already with sink_tokens
                              (an application's run, lsc_batch_write_record), or NULL: computed
                              from the store; not used with pyramids */
} LscJobCapture;

void _lsc_job_capture_clear (LscJobCapture *capture);
gboolean _lsc_job_capture_parse (LscJobCapture *capture, const char *job_name, json_object *obj,
                                 GError **error);
/* Fills params->capture from the job (row_end = n_prompt unless all_rows). */
void _lsc_job_capture_plan (const LscJobCapture *capture, int n_prompt, LscSessionParams *params);
/* Writes "attention" into results and the arrays into writer. */
gboolean _lsc_job_capture_write (LscJobCapture *capture, const LscSession *session,
                                 const LscModelConfig *config, json_object *results,
                                 LscTensorWriter *writer, GError **error);

/* The job's "figures" array (lsc-batch-figures.c). */
typedef enum {
  LSC_JOB_FIGURE_ATTENTION,    /* an exact tile */
  LSC_JOB_FIGURE_PYRAMID,      /* a pooled level of a whole map */
  LSC_JOB_FIGURE_STATS,        /* a per-head statistic, layers x heads */
  LSC_JOB_FIGURE_LOSS,         /* teacher-forced loss against position */
  LSC_JOB_FIGURE_RETRIEVAL_SCORES,  /* retrieval scores, layers x heads */
  LSC_JOB_FIGURE_RETRIEVAL_RANKING, /* the top retrieval heads as bars */
  LSC_JOB_FIGURE_ABLATION,     /* needle recall against masked heads */
  LSC_JOB_FIGURE_SSM_DECAY,    /* each channel's memory, layers x channels */
  LSC_JOB_FIGURE_SSM_RECEPTIVE_FIELD,  /* one layer: channels x distance */
  LSC_JOB_FIGURE_SSM_DT,       /* one layer: Δ, channels x tokens */
  LSC_JOB_FIGURE_KV_TIMELINE,  /* one layer and KV head: cached positions per step */
  LSC_JOB_FIGURE_KV_LAYERS,    /* cached positions per layer at the end */
  LSC_JOB_FIGURE_KV_KL,        /* KL from the full cache per new token */
} LscJobFigureKind;

typedef struct {
  LscJobFigureKind kind;
  char *file;                  /* relative to the output folder */
  char *title;                 /* NULL: a default */
  char *colormap, *scale;
  double dpi;
  int layer, head;
  int q0, q1, k0, k1;          /* attention */
  int level;                   /* pyramid: index, -1 = the first with at most 512 x 512 blocks */
  gboolean reduce_mean;        /* pyramid: mean instead of max */
  char *stat;                  /* stats: entropy, sink_mass, max_prob, mean_distance */
  int top;                     /* retrieval_ranking: bars (20) */
  int run;                     /* kv_timeline, kv_layers: which run of a "kv" list (0) */
} LscJobFigure;

/* What a job's figures need from the rest of the job. */
typedef struct {
  gboolean capture;            /* attention, pyramid, stats */
  gboolean score;              /* loss */
  gboolean retrieval;          /* retrieval_scores, retrieval_ranking, ablation */
  gboolean ssm;                /* ssm_decay, ssm_receptive_field, ssm_dt */
  gboolean kv;                 /* kv_timeline, kv_layers */
  gboolean kv_compare;         /* kv_kl */
  gboolean other;              /* any figure that is not a retrieval one */
} LscJobFigureNeeds;

/* Parses $.figures into figures (element-type LscJobFigure, cleared with
 * _lsc_job_figures_free) and says what they need. */
GArray *_lsc_job_figures_parse (const char *job_name, json_object *array, LscJobFigureNeeds *needs,
                                GError **error);
void _lsc_job_figures_free (GArray *figures);

typedef struct {
  const LscSession *session;   /* with its capture store, or NULL */
  const LscJobCapture *capture; /* its statistics, or NULL */
  const LscModelConfig *config;
  const LscTokenizer *tokenizer;
  const gint32 *tokens;        /* (n_tokens) every position the session ran */
  int n_tokens;
  const double *score;         /* (n_score) teacher-forced log-probabilities, or NULL */
  int n_score;
  int sink_tokens;
  json_object *results;        /* results.json so far: the retrieval figures read it */
  int kv_n_runs;               /* the "kv" section's runs (0 without one) */
  const LscSession *const *kv_sessions;   /* (kv_n_runs) each run's session */
  const double *const *kv_kl;  /* (kv_n_runs) KL from the full cache per step, NULL entries
                                  for runs not compared */
  const int *kv_n_compared;    /* (kv_n_runs) */
} LscJobFigureContext;

/* Draws every figure through `render` into output_dir; returns the written
 * file names in `written`. */
gboolean _lsc_job_figures_render (GArray *figures, const LscJobFigureContext *ctx,
                                  const char *output_dir, LscFigureFunc render, gpointer data,
                                  json_object *written, GError **error);

/* The job's "retrieval" object (lsc-batch-retrieval.c). */
typedef struct {
  gboolean enabled;
  char *haystack_file;     /* resolved path */
  GPtrArray *needles;      /* (element-type char *) needle, question, answer, needle, ... */
  GArray *context_lengths; /* (element-type int) */
  GArray *depths;          /* (element-type double) percent */
  int buffer_tokens;
  int cue_tokens;
  int chat_template;       /* LscChatTemplate */
  int max_tokens;
  double recall_threshold;
  double score_threshold;
  GArray *ablation;        /* (element-type int) K values */
  guint64 seed;
  guint64 budget;          /* capture store bytes */
  LscAttentionHooks hooks; /* the job's plugins, set by the runner before the run */
} LscJobRetrieval;

void _lsc_job_retrieval_clear (LscJobRetrieval *retrieval);
/* base_dir resolves haystack_file. */
gboolean _lsc_job_retrieval_parse (LscJobRetrieval *retrieval, const char *job_name,
                                   const char *base_dir, json_object *obj, GError **error);
/* Runs detection (and ablation) on backend->requested, records every
 * sample's session in backend, writes "retrieval" and "ablation" into
 * results, arrays into writer and DIR/retrieval_heads.json. On failure or
 * cancellation the sections hold the samples done so far. */
gboolean _lsc_job_retrieval_run (const LscJobRetrieval *retrieval, LscModel *model,
                                 const LscTokenizer *tok, int threads, gboolean reference,
                                 LscJobBackend *backend, gboolean bos, gboolean stop_at_eos,
                                 const char *output_dir, json_object *results,
                                 LscTensorWriter *writer, LscCancelFunc cancel,
                                 gpointer cancel_data, GError **error);

/* The job's "ssm" object (lsc-batch-ssm.c). */
typedef struct {
  gboolean enabled;
  int first_layer, last_layer;   /* -1: the last */
  double c;                      /* global when tA_prod > c (0.05) */
  int window;                    /* tokens tA_prod is measured over; 0 = the prompt */
  gboolean tensors;              /* Δ into tensors.safetensors */
  gboolean filter;               /* LongMamba's filter */
  json_object *threshold, *global;   /* (owned) as the job gives them */
  double b;
  int min_tokens;
  float *threshold_values;       /* (n_layers, n_channels) once planned */
  guint8 *global_values;
  gboolean calibrate;            /* LongMamba's calibration (methods.md 2.2) */
  double cal_ratio;              /* clip: Δ above the top ratio are clamped (0.15) */
  int *cal_targets, cal_n_targets;   /* target lengths (tokens) */
  int cal_samples;               /* windows the recorded window is split into (1) */
  int cal_aggregate;             /* LscSsmAggregate (max) */
} LscJobSsm;

void _lsc_job_ssm_clear (LscJobSsm *ssm);
gboolean _lsc_job_ssm_parse (LscJobSsm *ssm, const char *job_name, json_object *obj,
                             GError **error);
/* Checks the section against the model and fills params->ssm_capture and
 * ssm_filter (which point into ssm: keep it alive with the session). */
gboolean _lsc_job_ssm_plan (LscJobSsm *ssm, const char *job_name, const LscModelConfig *config,
                            LscSessionParams *params, GError **error);
/* Writes "ssm" into results and the recorded Δ into writer. */
gboolean _lsc_job_ssm_write (const LscJobSsm *ssm, const LscSession *session, int n_prompt,
                             json_object *results, LscTensorWriter *writer, GError **error);

/* The job's "kv" section (lsc-batch-kv.c): one policy (an object) or
 * several to compare (an array of them), each run on its own. */
typedef struct {
  LscKvPolicy policy;
  int chunk;                     /* prompt tokens per evaluation, 0 = at once */
  gboolean compare;              /* also run the full cache */
} LscJobKvRun;

typedef struct {
  gboolean enabled;
  gboolean list;                 /* given as an array: results and tensors per run */
  int n_runs;
  LscJobKvRun *runs;             /* (n_runs) */
} LscJobKv;

void _lsc_job_kv_clear (LscJobKv *kv);
gboolean _lsc_job_kv_parse (LscJobKv *kv, const char *job_name, json_object *obj,
                            GError **error);
/* Fills o (an object) with run i's results (kl and agree (n_compared) or
 * NULL) and adds its log to writer ("kv.evicted_at", or "kv.I.evicted_at"
 * when the section is a list). */
gboolean _lsc_job_kv_write (const LscJobKv *kv, int i, const LscSession *session, int n_prompt,
                            const double *kl, const gboolean *agree, int n_compared,
                            json_object *o, LscTensorWriter *writer, GError **error);

G_END_DECLS
