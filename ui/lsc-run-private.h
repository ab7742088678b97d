/* SPDX-License-Identifier: MIT
 *
 * lsc-run-private.h: the fields of LscRun, for lsc-run.c (runs made here)
 * and lsc-run-open.c (runs read back from saved results).
 */
#pragma once

#include "lsc-run.h"

G_BEGIN_DECLS

struct _LscRun
{
  GObject parent_instance;

  /* set at construction, read-only afterwards (shared with the worker) */
  LscLoadedModel *model;      /* (owned) */
  LscRunParams params;        /* prompt owned */
  GMainContext *context;      /* (owned) where progress is published */

  /* written by the worker under `lock`, published by one idle */
  GMutex lock;
  double fraction;
  char *phase;
  guint progress_idle;        /* pending idle source id, 0 = none */

  /* main thread: published copies */
  double shown_fraction;
  char *shown_phase;

  /* results: written by the worker, read after finish */
  LscSession *session;        /* (owned) holds the attention store */
  GArray *tokens;             /* (gint32) prompt then generated */
  int n_prompt;
  GArray *logprobs;           /* (double) of the generated tokens */
  double prefill_s, decode_s, total_s;
  char *output;
  LscHeadStats *stats;        /* (n_layers * n_heads) or NULL */
  int n_layers, n_heads;
  GArray *kv_kl;              /* (double) KL from the full cache per step, or NULL */
  GArray *kv_agree;           /* (gboolean) top-1 agreement per step, or NULL */
  gboolean started;

  /* a run opened from saved results (lsc-run-open.c) instead of run here */
  char *source;               /* the results folder */
  char *job_json;             /* the job that made them, as saved */
  LscAttentionStore *store;   /* (owned) read from its tensor file, or NULL */
  LscSsmStore *ssm_store;     /* (owned) Δ read from its tensor file, or NULL */
  LscKvLog *kv_log;           /* (owned) the KV policy's log read back, or NULL */
};

G_END_DECLS
