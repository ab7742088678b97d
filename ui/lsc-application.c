/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>

#include "lsc-application.h"
#include "lsc-session.h"
#include "lsc-demo.h"
#include "lsc-window.h"

struct _LscApplication
{
  GtkApplication parent_instance;

  /* owned */
  char *model_path;       /* opened by the first window */
  GSettings *settings;    /* (nullable) */
};

G_DEFINE_FINAL_TYPE (LscApplication, lsc_application, GTK_TYPE_APPLICATION)

static GSettings *
create_settings (void)
{
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr(GSettingsSchema) schema =
      source != NULL ? g_settings_schema_source_lookup (source, LSC_APP_ID, TRUE) : NULL;
#ifdef LSC_BUILD_SCHEMA_DIR
  /* running from the build tree */
  g_autoptr(GSettingsSchemaSource) build_source = NULL;
  if (schema == NULL)
    {
      build_source = g_settings_schema_source_new_from_directory (LSC_BUILD_SCHEMA_DIR, source,
                                                                  FALSE, NULL);
      if (build_source != NULL)
        schema = g_settings_schema_source_lookup (build_source, LSC_APP_ID, FALSE);
    }
#endif
  if (schema == NULL)
    {
      g_message ("GSettings schema %s not found: preferences will not be kept", LSC_APP_ID);
      return NULL;
    }
  return g_settings_new_full (schema, NULL, NULL);
}

static void
about_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  GtkApplication *app = data;
  const char *authors[] = { "The Longscope authors", NULL };
  gtk_show_about_dialog (gtk_application_get_active_window (app),
                         "program-name", "Longscope",
                         "logo-icon-name", LSC_APP_ID,
                         "version", PACKAGE_VERSION,
                         "comments", _("Look inside long-context language models"),
                         "license-type", GTK_LICENSE_MIT_X11,
                         "authors", authors,
                         "translator-credits", _("translator-credits"),
                         NULL);
}

static void
quit_action (GSimpleAction *action, GVariant *param, gpointer data)
{
  GtkApplication *app = data;
  GList *windows = gtk_application_get_windows (app);
  while (windows != NULL)
    {
      GList *next = windows->next;
      gtk_window_destroy (windows->data);
      windows = next;
    }
  g_application_quit (G_APPLICATION (app));
}

static const GActionEntry app_actions[] = {
  { "about", about_action },
  { "quit", quit_action },
};

static void
lsc_application_startup (GApplication *app)
{
  LscApplication *self = LSC_APPLICATION (app);
  G_APPLICATION_CLASS (lsc_application_parent_class)->startup (app);
  g_action_map_add_action_entries (G_ACTION_MAP (app), app_actions, G_N_ELEMENTS (app_actions), app);
  self->settings = create_settings ();

  static const struct { const char *action; const char *accels[3]; } accels[] = {
    { "app.quit", { "<Control>q", NULL } },
    { "win.open-model", { "<Control>o", NULL } },
    { "win.open-results", { "<Control><Shift>o", NULL } },
    { "win.run", { "<Control>Return", "F5", NULL } },
    { "win.cancel", { "Escape", NULL } },
    { "win.export::png", { "<Control>e", NULL } },
    { "win.export::svg", { "<Control><Shift>e", NULL } },
    { "win.export::pdf", { "<Control>p", NULL } },
    { "win.save-job", { "<Control><Shift>s", NULL } },
    { "win.export-run", { "<Control><Shift>r", NULL } },
  };
  for (guint i = 0; i < G_N_ELEMENTS (accels); i++)
    gtk_application_set_accels_for_action (GTK_APPLICATION (app), accels[i].action, accels[i].accels);

  g_autoptr(GtkCssProvider) css = gtk_css_provider_new ();
  gtk_css_provider_load_from_resource (css, "/io/github/longscope/Longscope/style.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (css),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  gtk_window_set_default_icon_name (LSC_APP_ID);

  /* probe the GPU here, on the main thread, not first in a run's worker */
  const char *no_gpu = lsc_backend_cuda_unavailable ();
  g_debug ("runs use %s%s", no_gpu == NULL ? "the GPU" : "the CPU: ", no_gpu != NULL ? no_gpu : "");
}

static void
lsc_application_activate (GApplication *app)
{
  LscApplication *self = LSC_APPLICATION (app);
  GtkWindow *win = gtk_application_get_active_window (GTK_APPLICATION (app));
  if (win == NULL)
    {
      LscWindow *lw = lsc_window_new (GTK_APPLICATION (app), self->settings);
      lsc_window_open_model (lw, self->model_path != NULL ? self->model_path : LSC_DEMO_INDUCTION);
      win = GTK_WINDOW (lw);
    }
  gtk_window_present (win);
}

static void
lsc_application_finalize (GObject *object)
{
  LscApplication *self = LSC_APPLICATION (object);
  g_free (self->model_path);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (lsc_application_parent_class)->finalize (object);
}

static void
lsc_application_class_init (LscApplicationClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = lsc_application_finalize;
  G_APPLICATION_CLASS (klass)->startup = lsc_application_startup;
  G_APPLICATION_CLASS (klass)->activate = lsc_application_activate;
}

static void
lsc_application_init (LscApplication *self)
{
}

LscApplication *
lsc_application_new (const char *model_path)
{
  /* NON_UNIQUE: each `longscope PATH` opens its own model in its own process */
  LscApplication *self = g_object_new (LSC_TYPE_APPLICATION,
                                       "application-id", LSC_APP_ID,
                                       "flags", G_APPLICATION_NON_UNIQUE,
                                       "resource-base-path", "/io/github/longscope/Longscope",
                                       NULL);
  self->model_path = g_strdup (model_path);
  return self;
}

GSettings *
lsc_application_get_settings (LscApplication *self)
{
  g_return_val_if_fail (LSC_IS_APPLICATION (self), NULL);
  return self->settings;
}
