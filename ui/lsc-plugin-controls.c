/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>

#include "lsc-plugin-controls.h"

typedef struct {
  const LscPluginInfo *info;
  GtkCheckButton *enable;
  GtkWidget *grid;                              /* sensitive while enabled */
  GtkWidget *controls[LSC_PLUGIN_MAX_PARAMS];   /* one per parameter */
} Row;

struct _LscPluginControls
{
  GtkWidget parent_instance;
  GArray *rows;       /* (element-type Row) */
  gboolean setting;   /* in set_stack: one "changed" at the end */
};

G_DEFINE_FINAL_TYPE (LscPluginControls, lsc_plugin_controls, GTK_TYPE_WIDGET)

enum { CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
emit_changed (LscPluginControls *self)
{
  if (!self->setting)
    g_signal_emit (self, signals[CHANGED], 0);
}

static const char *
tr (const LscPluginInfo *info, const char *text)
{
  return text != NULL && info->gettext_domain != NULL ? g_dgettext (info->gettext_domain, text)
                                                        : text;
}

static GtkWidget *
control_new (LscPluginControls *self, const LscPluginInfo *info, const LscPluginParam *p)
{
  GtkWidget *w;
  switch (p->type)
    {
    case LSC_PLUGIN_PARAM_BOOL:
      w = gtk_check_button_new ();
      gtk_check_button_set_active (GTK_CHECK_BUTTON (w), p->default_value != 0);
      g_signal_connect_swapped (w, "toggled", G_CALLBACK (emit_changed), self);
      break;
    case LSC_PLUGIN_PARAM_CHOICE:
      {
        g_autoptr(GtkStringList) list = gtk_string_list_new (NULL);
        for (int i = 0; p->choices[i] != NULL; i++)
          gtk_string_list_append (list, tr (info, p->choice_labels[i]));
        w = gtk_drop_down_new (G_LIST_MODEL (g_steal_pointer (&list)), NULL);
        gtk_drop_down_set_selected (GTK_DROP_DOWN (w), (guint) p->default_value);
        g_signal_connect_swapped (w, "notify::selected", G_CALLBACK (emit_changed), self);
        break;
      }
    case LSC_PLUGIN_PARAM_NUMBER:
    case LSC_PLUGIN_PARAM_INT:
    default:
      {
        double step = p->step > 0 ? p->step : 1;
        w = gtk_spin_button_new_with_range (p->min, p->max, step);
        gtk_spin_button_set_digits (GTK_SPIN_BUTTON (w),
                                    p->type == LSC_PLUGIN_PARAM_INT ? 0 : (guint) MAX (p->digits, 0));
        /* the range's step would round typed values to multiples of it */
        gtk_spin_button_set_snap_to_ticks (GTK_SPIN_BUTTON (w), FALSE);
        gtk_spin_button_set_value (GTK_SPIN_BUTTON (w), p->default_value);
        gtk_widget_set_hexpand (w, TRUE);
        g_signal_connect_swapped (w, "value-changed", G_CALLBACK (emit_changed), self);
      }
    }
  if (p->description != NULL)
    gtk_widget_set_tooltip_text (w, tr (info, p->description));
  return w;
}

static double
control_get (const LscPluginParam *p, GtkWidget *w)
{
  switch (p->type)
    {
    case LSC_PLUGIN_PARAM_BOOL:
      return gtk_check_button_get_active (GTK_CHECK_BUTTON (w)) ? 1 : 0;
    case LSC_PLUGIN_PARAM_CHOICE:
      return gtk_drop_down_get_selected (GTK_DROP_DOWN (w));
    case LSC_PLUGIN_PARAM_INT:
      return gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (w));
    case LSC_PLUGIN_PARAM_NUMBER:
    default:
      return gtk_spin_button_get_value (GTK_SPIN_BUTTON (w));
    }
}

static void
control_set (const LscPluginParam *p, GtkWidget *w, double v)
{
  switch (p->type)
    {
    case LSC_PLUGIN_PARAM_BOOL:
      gtk_check_button_set_active (GTK_CHECK_BUTTON (w), v != 0);
      break;
    case LSC_PLUGIN_PARAM_CHOICE:
      gtk_drop_down_set_selected (GTK_DROP_DOWN (w), (guint) v);
      break;
    case LSC_PLUGIN_PARAM_NUMBER:
    case LSC_PLUGIN_PARAM_INT:
    default:
      gtk_spin_button_set_value (GTK_SPIN_BUTTON (w), v);
    }
}

static void
on_enable_toggled (LscPluginControls *self, GtkCheckButton *enable)
{
  for (guint i = 0; i < self->rows->len; i++)
    {
      Row *row = &g_array_index (self->rows, Row, i);
      if (row->enable == enable)
        gtk_widget_set_sensitive (row->grid, gtk_check_button_get_active (enable));
    }
  emit_changed (self);
}

static void
add_plugin (LscPluginControls *self, const LscPluginInfo *info)
{
  Row row = { .info = info };
  GtkWidget *box = GTK_WIDGET (self);

  row.enable = GTK_CHECK_BUTTON (gtk_check_button_new_with_label (tr (info, info->name)));
  if (info->description != NULL)
    gtk_widget_set_tooltip_text (GTK_WIDGET (row.enable), tr (info, info->description));
  gtk_widget_set_parent (GTK_WIDGET (row.enable), box);

  row.grid = gtk_grid_new ();
  gtk_grid_set_column_spacing (GTK_GRID (row.grid), 12);
  gtk_grid_set_row_spacing (GTK_GRID (row.grid), 6);
  gtk_widget_set_margin_start (row.grid, 24);
  gtk_widget_set_sensitive (row.grid, FALSE);
  for (int i = 0; i < info->n_params; i++)
    {
      const LscPluginParam *p = &info->params[i];
      GtkWidget *label = gtk_label_new (tr (info, p->label));
      gtk_label_set_xalign (GTK_LABEL (label), 0);
      gtk_label_set_wrap (GTK_LABEL (label), TRUE);
      row.controls[i] = control_new (self, info, p);
      gtk_label_set_mnemonic_widget (GTK_LABEL (label), row.controls[i]);
      gtk_grid_attach (GTK_GRID (row.grid), label, 0, i, 1, 1);
      gtk_grid_attach (GTK_GRID (row.grid), row.controls[i], 1, i, 1, 1);
    }
  gtk_widget_set_parent (row.grid, box);
  g_signal_connect_swapped (row.enable, "toggled", G_CALLBACK (on_enable_toggled), self);
  g_array_append_val (self->rows, row);
}

static void
lsc_plugin_controls_init (LscPluginControls *self)
{
  self->rows = g_array_new (FALSE, TRUE, sizeof (Row));
  gtk_orientable_set_orientation (GTK_ORIENTABLE (gtk_widget_get_layout_manager (GTK_WIDGET (self))),
                                  GTK_ORIENTATION_VERTICAL);
  gtk_box_layout_set_spacing (GTK_BOX_LAYOUT (gtk_widget_get_layout_manager (GTK_WIDGET (self))), 6);

  int n;
  const LscPluginInfo *const *list = lsc_plugin_list (&n);
  for (int i = 0; i < n; i++)
    add_plugin (self, list[i]);

  const char *const *problems = lsc_plugin_get_load_problems ();
  if (n == 0 || problems[0] != NULL)
    {
      g_autoptr(GString) text = g_string_new (n == 0 ? _("No plugins found.") : "");
      for (int i = 0; problems[i] != NULL; i++)
        g_string_append_printf (text, "%s%s", text->len > 0 ? "\n" : "", problems[i]);
      GtkWidget *label = gtk_label_new (text->str);
      gtk_label_set_xalign (GTK_LABEL (label), 0);
      gtk_label_set_wrap (GTK_LABEL (label), TRUE);
      gtk_label_set_wrap_mode (GTK_LABEL (label), PANGO_WRAP_WORD_CHAR);
      gtk_widget_add_css_class (label, "dim-label");
      gtk_widget_set_parent (label, GTK_WIDGET (self));
    }
}

static void
lsc_plugin_controls_dispose (GObject *object)
{
  GtkWidget *child;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (object))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (lsc_plugin_controls_parent_class)->dispose (object);
}

static void
lsc_plugin_controls_finalize (GObject *object)
{
  g_array_unref (LSC_PLUGIN_CONTROLS (object)->rows);
  G_OBJECT_CLASS (lsc_plugin_controls_parent_class)->finalize (object);
}

static void
lsc_plugin_controls_class_init (LscPluginControlsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->dispose = lsc_plugin_controls_dispose;
  object_class->finalize = lsc_plugin_controls_finalize;
  gtk_widget_class_set_layout_manager_type (GTK_WIDGET_CLASS (klass), GTK_TYPE_BOX_LAYOUT);
  /* a plugin was enabled or disabled, or a value changed */
  signals[CHANGED] = g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                   NULL, NULL, NULL, G_TYPE_NONE, 0);
}

GtkWidget *
lsc_plugin_controls_new (void)
{
  return g_object_new (LSC_TYPE_PLUGIN_CONTROLS, NULL);
}

LscPluginStack *
lsc_plugin_controls_dup_stack (LscPluginControls *self)
{
  g_return_val_if_fail (LSC_IS_PLUGIN_CONTROLS (self), NULL);
  LscPluginStack *stack = lsc_plugin_stack_new ();
  for (guint i = 0; i < self->rows->len; i++)
    {
      Row *row = &g_array_index (self->rows, Row, i);
      if (!gtk_check_button_get_active (row->enable))
        continue;
      double values[LSC_PLUGIN_MAX_PARAMS];
      for (int p = 0; p < row->info->n_params; p++)
        values[p] = control_get (&row->info->params[p], row->controls[p]);
      /* the controls hold their parameters' ranges: always accepted */
      g_autoptr(GError) error = NULL;
      if (!lsc_plugin_stack_add (stack, row->info, values, &error))
        g_critical ("%s", error->message);
    }
  return stack;
}

void
lsc_plugin_controls_set_stack (LscPluginControls *self, const LscPluginStack *stack)
{
  g_return_if_fail (LSC_IS_PLUGIN_CONTROLS (self));
  self->setting = TRUE;
  for (guint i = 0; i < self->rows->len; i++)
    {
      Row *row = &g_array_index (self->rows, Row, i);
      gboolean enabled = FALSE;
      for (int s = 0; s < lsc_plugin_stack_get_size (stack); s++)
        {
          const double *values;
          if (lsc_plugin_stack_get (stack, s, &values) != row->info)
            continue;
          enabled = TRUE;
          for (int p = 0; p < row->info->n_params; p++)
            control_set (&row->info->params[p], row->controls[p], values[p]);
        }
      gtk_check_button_set_active (row->enable, enabled);
    }
  self->setting = FALSE;
  emit_changed (self);
}
