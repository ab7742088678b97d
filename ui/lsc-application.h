/* SPDX-License-Identifier: MIT
 *
 * lsc-application.h: the GtkApplication: settings, application actions
 * (about, quit), accelerators, and one window on activation that opens the
 * model given on the command line (or demo:induction).
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define LSC_TYPE_APPLICATION (lsc_application_get_type ())
G_DECLARE_FINAL_TYPE (LscApplication, lsc_application, LSC, APPLICATION, GtkApplication)

/* model_path: opened in the first window; NULL opens demo:induction. */
LscApplication *lsc_application_new (const char *model_path);
/* The preferences, or NULL when the schema is neither installed nor in the
 * build tree (then nothing is remembered). */
GSettings *lsc_application_get_settings (LscApplication *self);

G_END_DECLS
