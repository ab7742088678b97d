/* SPDX-License-Identifier: MIT
 *
 * lsc-ssm.h: what a Mamba-1 / Mamba-2 session records of its time steps Δ,
 * LongMamba's token filter, and the receptive-field analyses of
 * methods.md section 2.
 *
 * A "channel" is what carries its own Δ: a head of Mamba-2 (n_channels =
 * n_heads, one A per head) or a channel of the inner stream of Mamba-1
 * (n_channels = d_inner, with one A per state index: n_states = d_state).
 * The contribution of token s to channel c's state at time t is scaled by
 *
 *   r_c(s, t) = exp(A_c * sum_{u = s+1 .. t} Δ_u)
 *
 * For Mamba-1, whose A varies with the state index n, the analyses use the
 * slowest state (the A closest to 0), as methods.md 2.1 suggests: a channel
 * remembers as long as its longest-lived state does. [adaptation]
 *
 * Example (record Δ of layers 2..5, then classify their channels):
 *
 *   p.ssm_capture = (LscSsmCapturePlan) { TRUE, 2, 5 };
 *   g_autoptr(LscSession) s = lsc_session_new (model, &p, &error);
 *   lsc_session_eval (s, tokens, n, NULL, FALSE, NULL, NULL, &error);
 *   const LscSsmStore *st = lsc_session_get_ssm (s);
 *   double *log_decay = g_new (double, lsc_ssm_store_get_n_channels (st));
 *   lsc_ssm_store_log_decay (st, 3, 0, n, log_decay);
 *   // channel c of layer 3 is global when log_decay[c] > log (0.05)
 */
#pragma once

#include <glib.h>

#include "lsc-model.h"

G_BEGIN_DECLS

/* Channels of a Mamba model: n_heads (Mamba-2) or d_inner (Mamba-1); 0 for
 * a transformer. */
int lsc_ssm_n_channels (const LscModelConfig *config);

/* Record Δ of layers [first_layer, last_layer] at every position (float32:
 * rows x channels x 4 bytes per layer). */
typedef struct {
  gboolean enabled;
  int first_layer;
  int last_layer;        /* -1: the last layer */
} LscSsmCapturePlan;

/* LongMamba's token filter (methods.md 2.3): during an evaluation of at
 * least min_tokens tokens (a prefill; single-token decode steps are never
 * filtered), a channel marked global gets Δ = 0 at every token whose Δ is
 * not above threshold * b, so the token neither decays nor writes that
 * channel's state. Local channels are untouched. The reference code filters
 * Mamba-2 heads only; on Mamba-1 this filters inner channels [adaptation]. */
typedef struct {
  gboolean enabled;
  const float *threshold;   /* (n_layers, n_channels) Δ thresholds; borrowed */
  const guint8 *global;     /* (n_layers, n_channels) 1 = filter the channel; borrowed */
  double b;                 /* 0 = 1.0, the reference default */
  int min_tokens;           /* 0 = 3000: the reference filters when int(n / 1000) > 2 */
} LscSsmFilter;

typedef struct _LscSsmStore LscSsmStore;

int lsc_ssm_store_get_n_layers (const LscSsmStore *store);     /* of the model */
int lsc_ssm_store_get_first_layer (const LscSsmStore *store);
int lsc_ssm_store_get_last_layer (const LscSsmStore *store);   /* inclusive */
int lsc_ssm_store_get_n_channels (const LscSsmStore *store);
int lsc_ssm_store_get_n_states (const LscSsmStore *store);     /* columns of A */
/* Positions recorded: the session's position. */
int lsc_ssm_store_get_n_rows (const LscSsmStore *store);
guint64 lsc_ssm_store_get_bytes (const LscSsmStore *store);
/* Δ of a recorded layer, (n_rows, n_channels), as the model computed it
 * (before the filter); NULL for a layer not recorded. */
const float *lsc_ssm_store_get_dt (const LscSsmStore *store, int layer);
/* A = -exp(A_log) of any layer, (n_channels, n_states). */
const float *lsc_ssm_store_get_a (const LscSsmStore *store, int layer);
/* 1 where Δ was kept, 0 where the filter zeroed it, (n_rows, n_channels);
 * NULL when no filter ran on the layer. */
const guint8 *lsc_ssm_store_get_kept (const LscSsmStore *store, int layer);

/* out (n_channels) <- ln r_c over the rows [row_a, row_b) of a recorded layer:
 * max_n A[c][n] * sum Δ[row_a .. row_b)[c], the log of LongMamba's tA_prod
 * when the rows are a training-length window. FALSE for a layer not
 * recorded or rows out of range. */
gboolean lsc_ssm_store_log_decay (const LscSsmStore *store, int layer, int row_a, int row_b,
                                  double *out);

/* The same from plain arrays: dt (n_rows, n_channels), a (n_channels,
 * n_states). */
void lsc_ssm_log_decay (const float *dt, int n_channels, const float *a, int n_states, int row_a,
                        int row_b, double *out);

/* The decay curve of channel c seen from query row t: out (t + 1) <- ln
 * r_c(s, t) for s = 0 .. t (out[t] = 0), from dt (n_rows, n_channels). */
void lsc_ssm_decay_curve (const float *dt, int n_channels, const float *a, int n_states, int c,
                          int t, double *out);

G_END_DECLS
