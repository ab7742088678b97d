/* SPDX-License-Identifier: MIT
 *
 * lsc-kv-controls.h: the sidebar's KV cache group: the eviction policy
 * (lsc-kv.h) the next run uses, the spin buttons of the chosen policy's
 * parameters (only those that apply show; choosing a policy shows its
 * reference defaults, lsc_kv_policy_init ()), the prompt chunk and whether
 * to compare with the full cache. Values the policy cannot take stay
 * settable: lsc_kv_controls_dup_problem () says what is wrong, in the
 * engine's words, for the window to show.
 *
 * Example:
 *
 *   LscKvPolicy policy;
 *   lsc_kv_controls_get_policy (controls, &policy);
 *   g_autofree char *problem = lsc_kv_controls_dup_problem (controls);
 *   if (problem == NULL && policy.kind != LSC_KV_FULL)
 *     ... run with policy, lsc_kv_controls_get_chunk (), lsc_kv_controls_get_compare ()
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-kv.h"

G_BEGIN_DECLS

#define LSC_TYPE_KV_CONTROLS (lsc_kv_controls_get_type ())
G_DECLARE_FINAL_TYPE (LscKvControls, lsc_kv_controls, LSC, KV_CONTROLS, GtkWidget)

GtkWidget *lsc_kv_controls_new (void);
/* The policy shown (LSC_KV_FULL: the full cache). */
void lsc_kv_controls_get_policy (LscKvControls *self, LscKvPolicy *policy);
/* Shows policy: its kind and its values; emits "changed" once. */
void lsc_kv_controls_set_policy (LscKvControls *self, const LscKvPolicy *policy);
/* Prompt tokens per evaluation (0: the whole prompt at once). */
int lsc_kv_controls_get_chunk (LscKvControls *self);
void lsc_kv_controls_set_chunk (LscKvControls *self, int chunk);
/* Whether a run under a policy also runs the full cache (TRUE). */
gboolean lsc_kv_controls_get_compare (LscKvControls *self);
void lsc_kv_controls_set_compare (LscKvControls *self, gboolean compare);
/* NULL when the shown policy can run (the full cache always can), else
 * what is wrong with it (lsc_kv_policy_check ()); free it. */
char *lsc_kv_controls_dup_problem (LscKvControls *self);

G_END_DECLS
