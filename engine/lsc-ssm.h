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

/* A store read back from saved results (a batch job's tensors.safetensors
 * "ssm.dt.L"): Δ of layers [first_layer, last_layer] of `model`, dt[i] the
 * (n_rows, n_channels) rows of layer first_layer + i, copied; A comes from
 * the model's weights. Fails (LSC_RUN_ERROR_INVALID_ARGUMENT) for a model
 * that is not a Mamba or layers it lacks. A session's own store belongs to
 * the session (lsc_session_get_ssm ()); free only the ones made here. */
LscSsmStore *lsc_ssm_store_new_from_data (LscModel *model, int first_layer, int last_layer,
                                          int n_rows, const float *const *dt, GError **error);
void lsc_ssm_store_free (LscSsmStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscSsmStore, lsc_ssm_store_free)

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

/* LongMamba's offline calibration of one window ("align targets",
 * methods.md 2.2, load_align_target.py), pure math. From dt (n_rows = T
 * rows, n_channels) of one layer over one calibration window and a
 * (n_channels, n_states), per channel c (all sums in double):
 *
 *   k_top  = max (1, floor (T * ratio))  (the double product, as Python's
 *            int (T * r)); v = the smallest of the k_top largest Δ
 *   Δc[t]  = min (Δ[t], v)                           clip the outliers
 *   dt_sum[c]      = Σ_t Δc[t]                       (units of Δ)
 *   log_ta_prod[c] = A_c * dt_sum[c]                 ln tA_prod, A_c the
 *            slowest state's A (max over n, as lsc_ssm_log_decay) [adaptation
 *            for Mamba-1; Mamba-2 has n_states = 1]
 *   for each target length Lt = targets[j] (tokens):
 *     Lt <= T: threshold = 0, alpha = 1   [choice: the reference writes 0 / 1
 *              for its 1k and 2k targets, i.e. Lt <= its T = 2000]
 *     else:    s  = Δc sorted descending (length T)
 *              s2 = s stretched to length Lt as torch's F.interpolate
 *                   (mode='linear', align_corners=False): for i in 0 .. Lt-1,
 *                   src = max (0, (i + 0.5) * T / Lt - 0.5), i0 = floor (src),
 *                   i1 = min (i0 + 1, T - 1), λ = src - i0,
 *                   s2[i] = (1 - λ) s[i0] + λ s[i1]
 *              cum = cumsum (s2); i* = the first i with cum[i] > dt_sum, or 0
 *                   when there is none (torch.argmax of all-false is 0: only
 *                   when dt_sum = 0)
 *              k = i* + 1
 *              alpha[j][c]     = min (k / Lt, 1)   fraction of tokens kept
 *              threshold[j][c] = s2[min (k, Lt - 1)]   the Δ threshold for Lt
 *                   [choice: the reference gathers s2[k], out of range when
 *                   k = Lt; we clamp to the last element]
 *
 * alpha and threshold are (n_targets, n_channels), row j for targets[j].
 * Cost: a sort per channel and at most Lt steps per (channel, target) (the
 * scan stops at the crossing; s2 is never stored). Requires n_rows >= 1,
 * 0 < ratio <= 1, targets >= 1. For a window [row_a, row_b) of a store,
 * pass dt + row_a * n_channels and n_rows = row_b - row_a.
 *
 * Example (layer 3, the first 2000 prompt rows, targets 4k and 8k):
 *
 *   int targets[2] = { 4000, 8000 };
 *   lsc_ssm_calibrate (lsc_ssm_store_get_dt (st, 3), 2000, C,
 *                      lsc_ssm_store_get_a (st, 3), S, 0.15, targets, 2,
 *                      log_ta_prod, dt_sum, alpha, threshold);
 *   // a filter for an ~8k prompt: threshold[1 * C + c] per channel c,
 *   // global where log_ta_prod[c] > log (0.05)
 */
void lsc_ssm_calibrate (const float *dt, int n_rows, int n_channels, const float *a, int n_states,
                        double ratio, const int *targets, int n_targets, double *log_ta_prod,
                        double *dt_sum, double *alpha, double *threshold);

/* How lsc_ssm_aggregate () combines the samples (windows) of a calibration:
 * the reference's "...-max" and "...-avg" folders. */
typedef enum {
  LSC_SSM_AGGREGATE_MAX,
  LSC_SSM_AGGREGATE_MEAN,
} LscSsmAggregate;

/* out (n) <- the elementwise max or mean of samples (n_samples, n), a
 * sample per row, in double. log_domain: the values are logarithms of the
 * quantity the reference aggregates (ln tA_prod: it averages tA_prod), so
 * MEAN gives ln (mean (exp (x))) (computed stably); MAX is the same either
 * way. Requires n_samples >= 1.
 *
 * Example (3 windows' thresholds, (3, n_targets * C) -> (n_targets * C)):
 *
 *   lsc_ssm_aggregate (LSC_SSM_AGGREGATE_MAX, thr, 3, n_targets * C, FALSE, out);
 */
void lsc_ssm_aggregate (LscSsmAggregate how, const double *samples, int n_samples, gsize n,
                        gboolean log_domain, double *out);

G_END_DECLS
