/* SPDX-License-Identifier: MIT
 *
 * The parts of a batch job beyond generation, each in its own file:
 * attention capture (lsc-batch-attention.c).
 */
#pragma once

#include <json-c/json.h>

#include "lsc-session.h"
#include "lsc-tensor-writer.h"

G_BEGIN_DECLS

typedef struct {
  int layer, head, q0, q1, k0, k1;
} LscJobTile;

/* The job's "capture" object. */
typedef struct {
  gboolean enabled;
  GArray *layers;          /* (element-type int) empty = all */
  GArray *heads;           /* (element-type int) empty = all */
  gboolean all_rows;       /* prompt and generated rows; FALSE = prompt rows only */
  guint64 budget;          /* bytes */
  GArray *tiles;           /* (element-type LscJobTile) */
  gboolean pyramids;
  gboolean stats;
  int sink_tokens;
} LscJobCapture;

void _lsc_job_capture_clear (LscJobCapture *capture);
gboolean _lsc_job_capture_parse (LscJobCapture *capture, const char *job_name, json_object *obj,
                                 GError **error);
/* Fills params->capture from the job (row_end = n_prompt unless all_rows). */
void _lsc_job_capture_plan (const LscJobCapture *capture, int n_prompt, LscSessionParams *params);
/* Writes "attention" into results and the arrays into writer. */
gboolean _lsc_job_capture_write (const LscJobCapture *capture, const LscSession *session,
                                 const LscModelConfig *config, json_object *results,
                                 LscTensorWriter *writer, GError **error);

G_END_DECLS
