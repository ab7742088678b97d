/* SPDX-License-Identifier: MIT
 *
 * lsc-plugin-controls.h: the sidebar's plugins, each a check button to
 * enable it and the controls its declared parameters call for (a spin
 * button for a number or an integer, a check button for a boolean, a
 * drop-down for a choice), in the plugin's own translations. Without any
 * plugin it says so, with the problems the loader met.
 *
 * Example:
 *
 *   GtkWidget *controls = lsc_plugin_controls_new ();
 *   g_signal_connect_swapped (controls, "changed", G_CALLBACK (update_estimate), self);
 *   ...
 *   g_autoptr(LscPluginStack) stack = lsc_plugin_controls_dup_stack (LSC_PLUGIN_CONTROLS (controls));
 */
#pragma once

#include <gtk/gtk.h>

#include "lsc-plugin.h"

G_BEGIN_DECLS

#define LSC_TYPE_PLUGIN_CONTROLS (lsc_plugin_controls_get_type ())
G_DECLARE_FINAL_TYPE (LscPluginControls, lsc_plugin_controls, LSC, PLUGIN_CONTROLS, GtkWidget)

GtkWidget *lsc_plugin_controls_new (void);
/* The enabled plugins with the values shown, in the list's order (sorted by id). */
LscPluginStack *lsc_plugin_controls_dup_stack (LscPluginControls *self);
/* Enables the plugins of `stack` with its values and disables the others
 * (of a plugin listed twice, the last entry shows); emits "changed" once. */
void lsc_plugin_controls_set_stack (LscPluginControls *self, const LscPluginStack *stack);

G_END_DECLS
