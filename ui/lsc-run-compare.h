/* SPDX-License-Identifier: MIT
 *
 * lsc-run-compare.h: A/B comparison of two finished runs of the same model,
 * GTK-free. For one (layer, head): the difference of the attention
 * probabilities B - A over the rows both runs captured (positions
 * [row0, row0 + n) as queries and as keys, n the smaller captured length),
 * its largest magnitude and where it is, its mean magnitude; and the
 * difference of the mean log-probability of the generated tokens.
 *
 * Example:
 *
 *   LscRunCompare c;
 *   if (lsc_run_compare (run_a, run_b, 1, 2, &c, &error))
 *     {
 *       // c.delta[i * c.n + j] = p_B(row0 + i, row0 + j) - p_A(...), masked cells 0
 *       g_print ("max |dp| %g at (%d, %d)\n", c.max_abs, c.max_row, c.max_key);
 *       lsc_run_compare_clear (&c);
 *     }
 */
#pragma once

#include <glib.h>

#include "lsc-run.h"

G_BEGIN_DECLS

typedef struct {
  int layer, head;
  int row0;                 /* first common position */
  int n;                    /* common rows = common keys */
  float *delta;             /* (n, n) row-major: tile(B) - tile(A); owned */
  double max_abs;           /* max |delta|; 0 when all are equal */
  int max_row, max_key;     /* positions (row0-based offsets added) of the first max, row-major */
  double mean_abs;          /* mean |delta| over all n * n cells (masked cells count as 0) */
  int n_logprobs_a, n_logprobs_b;
  double mean_logprob_a;    /* mean log-probability of A's generated tokens; NAN without any */
  double mean_logprob_b;
  double delta_logprob;     /* mean_logprob_b - mean_logprob_a; NAN when either is NAN */
} LscRunCompare;

/* out <- the comparison of runs a and b at (layer, head). Fails with
 * G_IO_ERROR_INVALID_ARGUMENT when the runs are of different models (their
 * lsc_loaded_model_get_path differ), G_IO_ERROR_NOT_FOUND when either run
 * captured no attention or no row in common, or as lsc_attention_tile (head
 * not captured, out of range). On failure out is cleared. */
gboolean lsc_run_compare (LscRun *a, LscRun *b, int layer, int head, LscRunCompare *out,
                          GError **error);
/* Mean of n log-probabilities; NAN for n == 0. */
double lsc_run_compare_mean_logprob (const double *logprobs, int n);
/* Frees out->delta and zeroes out. */
void lsc_run_compare_clear (LscRunCompare *out);

G_END_DECLS
