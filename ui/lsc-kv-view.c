/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "lsc-figure.h"
#include "lsc-kv-view.h"
#include "lsc-view-figure.h"


struct _LscKvView
{
  GtkWidget parent_instance;

  /* template children */
  GtkStack *stack;
  GtkLabel *status_label;
  GtkLabel *policy_label;
  GtkLabel *budget_label;
  GtkLabel *compare_label;
  GtkSpinButton *layer_spin;
  GtkSpinButton *head_spin;
  GtkToggleButton *timeline_toggle;
  GtkToggleButton *layers_toggle;
  GtkToggleButton *kl_toggle;
  GtkCheckButton *all_heads_check;
  GtkLabel *cached_label;
  GtkDrawingArea *figure_area;
  GtkLabel *figure_note_label;

  /* owned */
  LscRun *run;                /* (nullable) */
  const LscKvLog *log;        /* (nullable) the run's */
  const double *kl;           /* (n_compared) the run's comparison, or NULL */
  const gboolean *agree;
  int n_compared;
  int layer, head;            /* -1 without a log */
  gboolean all_heads;
  LscKvFigure figure;
  gboolean updating;          /* controls set by code */
  char *policy_text, *budget_text, *cached_text, *compare_text;

  LscViewFigure shown;        /* the figure shown */
};

G_DEFINE_FINAL_TYPE (LscKvView, lsc_kv_view, GTK_TYPE_WIDGET)

enum { PROP_0, PROP_CAN_EXPORT, N_PROPS };
static GParamSpec *properties[N_PROPS];

/* ---------------------------------------------------------------- texts */

/* "H2O (heavy 4, recent 512)" */
static char *
describe_policy (const LscKvPolicy *p)
{
  /* Translators: how SnapKV and PyramidKV pool their votes, as in "max pooling" */
  const char *pooling = p->pooling == LSC_KV_POOL_MAX ? C_("pooling", "max") : C_("pooling", "avg");
  switch (p->kind)
    {
    case LSC_KV_STREAMING_LLM:
      /* Translators: a KV policy and its parameters (the names of batch jobs) */
      return g_strdup_printf (_("StreamingLLM (sink %d, recent %d)"), p->n_sink, p->n_recent);
    case LSC_KV_H2O:
      return g_strdup_printf (_("H2O (heavy %d, recent %d)"), p->n_heavy, p->n_recent);
    case LSC_KV_SNAPKV:
      return g_strdup_printf (_("SnapKV (capacity %d, window %d, kernel %d, %s pooling)"),
                              p->capacity, p->window, p->kernel, pooling);
    case LSC_KV_PYRAMIDKV:
      return g_strdup_printf (_("PyramidKV (capacity %d, window %d, kernel %d, %s pooling, "
                                "beta %d)"), p->capacity, p->window, p->kernel, pooling, p->beta);
    case LSC_KV_LACACHE:
      return g_strdup_printf (_("LaCache (capacity %d, sink %d, span %d, overlap %d)"),
                              p->capacity, p->n_sink, p->span, p->overlap);
    case LSC_KV_LM_INFINITE:
      return g_strdup_printf (_("LM-Infinite (global %d, local %d)"), p->n_global, p->n_local);
    case LSC_KV_THINK:
      return g_strdup_printf (_("ThinK (ratio %g, recent %d)"), p->ratio, p->n_recent);
    case LSC_KV_FULL:
    default:
      return g_strdup (_("Full cache"));
    }
}

static void
set_text (GtkLabel *label, char **field, char *text)
{
  g_free (*field);
  *field = text;
  gtk_label_set_text (label, text != NULL ? text : "");
}

/* The picked layer and head's cached positions at the end. */
static void
update_cached (LscKvView *self)
{
  if (self->log == NULL)
    {
      set_text (self->cached_label, &self->cached_text, NULL);
      return;
    }
  int n = lsc_kv_log_get_n_positions (self->log);
  int alive = lsc_kv_log_count_alive (self->log, self->layer, self->head);
  GString *text = g_string_new (NULL);
  g_string_printf (text,
      /* Translators: the layer, the KV head, the positions it still caches
       * and the positions the run's stream held */
      ngettext ("Layer %d, KV head %d: %d of %d position cached",
                "Layer %d, KV head %d: %d of %d positions cached", n),
      self->layer, self->head, alive, n);
  /* ThinK evicts no token: it drops key channels */
  int head_dim, pruned = lsc_run_count_kv_pruned (self->run, self->layer, self->head, &head_dim);
  if (pruned >= 0)
    {
      int recent = lsc_kv_log_get_policy (self->log)->n_recent;
      g_string_append_c (text, '\n');
      g_string_append_printf (text,
          /* Translators: ThinK's pruning; the channels it dropped, the head's
           * channels and the latest keys it left whole */
          _("%d of %d key channels dropped from all keys but the last %d"),
          pruned, head_dim, recent);
    }
  set_text (self->cached_label, &self->cached_text, g_string_free (text, FALSE));
}

/* The policy, the slots per layer, the comparison. */
static void
update_summary (LscKvView *self)
{
  if (self->log == NULL)
    {
      set_text (self->policy_label, &self->policy_text, NULL);
      set_text (self->budget_label, &self->budget_text, NULL);
      set_text (self->compare_label, &self->compare_text, NULL);
      return;
    }
  const LscKvPolicy *policy = lsc_kv_log_get_policy (self->log);
  int chunk = lsc_run_get_params (self->run)->kv_chunk;
  g_autofree char *name = describe_policy (policy);
  set_text (self->policy_label, &self->policy_text,
            chunk > 0
                /* Translators: %s is a KV policy with its parameters */
                ? g_strdup_printf (ngettext ("%s, the prompt %d token at a time",
                                             "%s, the prompt %d tokens at a time", chunk),
                                   name, chunk)
                : g_strdup_printf (_("%s, the prompt at once"), name));

  /* what each layer keeps once the prompt has run, as a batch job's
   * results give it ("budget") */
  int n_prompt, n_layers = lsc_kv_log_get_n_layers (self->log);
  lsc_run_get_tokens (self->run, NULL, &n_prompt);
  g_autoptr(GString) slots = g_string_new (NULL);
  for (int l = 0; l < n_layers; l++)
    g_string_append_printf (slots, "%s%d", l > 0 ? ", " : "",
                            lsc_kv_policy_budget (policy, n_layers, l, n_prompt));
  set_text (self->budget_label, &self->budget_text, g_strdup_printf (
      /* Translators: %d is the prompt's tokens, %s the slots of every layer ("6, 6, 4") */
      ngettext ("Slots per layer after the prompt of %d token: %s",
                "Slots per layer after the prompt of %d tokens: %s", n_prompt),
      n_prompt, slots->str));

  if (self->kl == NULL)
    set_text (self->compare_label, &self->compare_text,
              g_strdup (_("Not compared with the full cache: run again with “Compare with the full "
                          "cache” on to see what the policy costs.")));
  else
    {
      double sum = 0;
      int same = 0, n = self->n_compared;
      for (int i = 0; i < n; i++)
        {
          sum += self->kl[i];
          same += self->agree[i] != 0;
        }
      set_text (self->compare_label, &self->compare_text, g_strdup_printf (
          /* Translators: the mean KL divergence from the full cache, then in how
           * many of the compared steps the most likely next token was the same */
          ngettext ("Against the full cache: mean KL divergence %.4g nats, the same top token "
                    "in %d of %d step (%.1f %%)",
                    "Against the full cache: mean KL divergence %.4g nats, the same top token "
                    "in %d of %d steps (%.1f %%)", n),
          n > 0 ? sum / n : NAN, same, n, n > 0 ? 100.0 * same / n : NAN));
    }
}

/* ---------------------------------------------------------------- figure */

/* Which controls apply to the shown figure. */
static void
update_controls (LscKvView *self)
{
  gboolean layers = self->figure == LSC_KV_FIGURE_LAYERS;
  gtk_widget_set_sensitive (GTK_WIDGET (self->layer_spin), self->figure == LSC_KV_FIGURE_TIMELINE);
  gtk_widget_set_sensitive (GTK_WIDGET (self->head_spin),
                            self->figure == LSC_KV_FIGURE_TIMELINE || (layers && !self->all_heads));
  gtk_widget_set_sensitive (GTK_WIDGET (self->all_heads_check), layers);
  gtk_widget_set_sensitive (GTK_WIDGET (self->kl_toggle), self->kl != NULL);
}

/* Rebuilds the spec and the figure. */
static void
update_figure (LscKvView *self)
{
  gboolean could_export = self->shown.fig != NULL;
  lsc_view_figure_clear (&self->shown);
  gtk_widget_set_visible (GTK_WIDGET (self->figure_note_label), FALSE);
  int n = self->log != NULL ? lsc_kv_log_get_n_positions (self->log) : 0;
  if (n > 0)
    {
      int rows, cols, block, n_steps;
      lsc_kv_log_get_steps (self->log, &n_steps);
      lsc_figure_spec_kv_size (self->log, &rows, &cols, &block);
      /* figure text is English, as every batch figure (lsc-figure-spec.h) */
      switch (self->figure)
        {
        case LSC_KV_FIGURE_TIMELINE:
          self->shown.cells = g_new (float, (gsize) MAX (rows, 1) * cols);
          lsc_figure_spec_kv_timeline (&self->shown.spec, self->log, self->layer, self->head,
                                       self->shown.cells, self->shown.title);
          break;
        case LSC_KV_FIGURE_LAYERS:
          self->shown.cells = g_new (float, (gsize) lsc_kv_log_get_n_layers (self->log) * cols);
          lsc_figure_spec_kv_layers (&self->shown.spec, self->log,
                                     self->all_heads ? -1 : self->head, self->shown.cells,
                                     self->shown.title);
          break;
        case LSC_KV_FIGURE_KL:
        default:
          /* the new token's index, as the batch job's kv_kl figure */
          self->shown.x = g_new (double, MAX (self->n_compared, 1));
          for (int i = 0; i < self->n_compared; i++)
            self->shown.x[i] = i;
          lsc_figure_spec_kv_kl (&self->shown.spec, self->shown.x, self->kl, self->n_compared,
                                 lsc_kv_log_get_policy (self->log)->kind, self->shown.title);
          break;
        }
      g_autoptr(GError) error = NULL;
      g_autoptr(GString) note = g_string_new (NULL);
      if (!lsc_view_figure_build (&self->shown, &error))
        g_string_printf (note, _("The figure cannot be drawn: %s"), error->message);
      else if (self->figure != LSC_KV_FIGURE_KL)
        {
          if (block > 1)
            g_string_append_printf (note,
                /* Translators: under the KV figure of a long run */
                ngettext ("%d positions shown as %d columns of %d position each (the fraction "
                          "of each column cached).",
                          "%d positions shown as %d columns of %d positions each (the fraction "
                          "of each column cached).", block), n, cols, block);
          if (self->figure == LSC_KV_FIGURE_TIMELINE && rows < n_steps)
            {
              if (note->len > 0)
                g_string_append_c (note, ' ');
              g_string_append_printf (note,
                  /* Translators: under the KV timeline of a long run */
                  ngettext ("%d of %d evaluation shown, evenly spaced.",
                            "%d of %d evaluations shown, evenly spaced.", n_steps),
                  rows, n_steps);
            }
        }
      if (note->len > 0)
        {
          gtk_label_set_text (self->figure_note_label, note->str);
          gtk_widget_set_visible (GTK_WIDGET (self->figure_note_label), TRUE);
        }
    }
  gtk_widget_queue_draw (GTK_WIDGET (self->figure_area));
  if (could_export != (self->shown.fig != NULL))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_EXPORT]);
}

/* -------------------------------------------------------------- controls */

static void
show_pick (LscKvView *self)
{
  self->updating = TRUE;
  gtk_spin_button_set_value (self->layer_spin, self->layer);
  gtk_spin_button_set_value (self->head_spin, self->head);
  self->updating = FALSE;
  update_cached (self);
  /* the layers figure of every head does not depend on the pick */
  if (self->figure == LSC_KV_FIGURE_TIMELINE
      || (self->figure == LSC_KV_FIGURE_LAYERS && !self->all_heads))
    update_figure (self);
}

static void
on_layer_changed (LscKvView *self)
{
  if (!self->updating)
    lsc_kv_view_set_layer (self, gtk_spin_button_get_value_as_int (self->layer_spin));
}

static void
on_head_changed (LscKvView *self)
{
  if (!self->updating)
    lsc_kv_view_set_head (self, gtk_spin_button_get_value_as_int (self->head_spin));
}

static void
on_figure_toggled (LscKvView *self, GtkToggleButton *button)
{
  if (!gtk_toggle_button_get_active (button))
    return;   /* the newly active one's "toggled" follows */
  LscKvFigure figure = button == self->layers_toggle ? LSC_KV_FIGURE_LAYERS
                       : button == self->kl_toggle   ? LSC_KV_FIGURE_KL
                                                     : LSC_KV_FIGURE_TIMELINE;
  if (figure == self->figure)
    return;
  self->figure = figure;
  update_controls (self);
  if (!self->updating)
    update_figure (self);
}

static void
on_all_heads_toggled (LscKvView *self)
{
  gboolean all = gtk_check_button_get_active (self->all_heads_check);
  if (all == self->all_heads)
    return;
  self->all_heads = all;
  update_controls (self);
  if (!self->updating && self->figure == LSC_KV_FIGURE_LAYERS)
    update_figure (self);
}

/* ---------------------------------------------------------------- public */

void
lsc_kv_view_set_run (LscKvView *self, LscRun *run)
{
  g_return_if_fail (LSC_IS_KV_VIEW (self));
  g_return_if_fail (run == NULL || LSC_IS_RUN (run));
  g_set_object (&self->run, run);
  self->log = run != NULL ? lsc_run_get_kv (run) : NULL;
  self->kl = NULL;
  self->agree = NULL;
  self->n_compared = 0;
  if (self->log != NULL && lsc_kv_log_get_n_positions (self->log) == 0)
    self->log = NULL;
  if (self->log == NULL)
    {
      self->layer = self->head = -1;
      update_summary (self);
      update_cached (self);
      update_controls (self);
      update_figure (self);
      gtk_label_set_text (self->status_label,
                          run == NULL
                              ? _("Run a model under a KV policy (chosen in the sidebar) to see "
                                  "which tokens its cache keeps and which it drops.")
                              : _("This run kept the full cache. Choose a KV policy in the sidebar "
                                  "and run again."));
      gtk_stack_set_visible_child_name (self->stack, "empty");
      return;
    }

  lsc_run_get_kv_comparison (run, &self->kl, &self->agree, &self->n_compared);
  int L = lsc_kv_log_get_n_layers (self->log), H = lsc_kv_log_get_n_heads (self->log);
  /* the pick stays where it was, so that runs under other policies compare */
  self->layer = CLAMP (self->layer, 0, L - 1);
  self->head = CLAMP (self->head, 0, H - 1);
  self->updating = TRUE;
  gtk_spin_button_set_range (self->layer_spin, 0, L - 1);
  gtk_spin_button_set_range (self->head_spin, 0, H - 1);
  if (self->figure == LSC_KV_FIGURE_KL && self->kl == NULL)
    gtk_toggle_button_set_active (self->timeline_toggle, TRUE);
  gtk_spin_button_set_value (self->layer_spin, self->layer);
  gtk_spin_button_set_value (self->head_spin, self->head);
  self->updating = FALSE;
  update_controls (self);
  update_summary (self);
  update_cached (self);
  update_figure (self);
  gtk_stack_set_visible_child_name (self->stack, "main");
}

const char *
lsc_kv_view_get_status (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), NULL);
  return self->log == NULL ? gtk_label_get_text (self->status_label) : NULL;
}

void
lsc_kv_view_set_layer (LscKvView *self, int layer)
{
  g_return_if_fail (LSC_IS_KV_VIEW (self));
  if (self->log == NULL)
    return;
  layer = CLAMP (layer, 0, lsc_kv_log_get_n_layers (self->log) - 1);
  if (layer == self->layer)
    return;
  self->layer = layer;
  show_pick (self);
}

int
lsc_kv_view_get_layer (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), -1);
  return self->layer;
}

void
lsc_kv_view_set_head (LscKvView *self, int head)
{
  g_return_if_fail (LSC_IS_KV_VIEW (self));
  if (self->log == NULL)
    return;
  head = CLAMP (head, 0, lsc_kv_log_get_n_heads (self->log) - 1);
  if (head == self->head)
    return;
  self->head = head;
  show_pick (self);
}

int
lsc_kv_view_get_head (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), -1);
  return self->head;
}

void
lsc_kv_view_set_all_heads (LscKvView *self, gboolean all_heads)
{
  g_return_if_fail (LSC_IS_KV_VIEW (self));
  gtk_check_button_set_active (self->all_heads_check, all_heads);
}

void
lsc_kv_view_set_figure (LscKvView *self, LscKvFigure figure)
{
  g_return_if_fail (LSC_IS_KV_VIEW (self));
  if (figure == LSC_KV_FIGURE_KL && self->kl == NULL)
    figure = LSC_KV_FIGURE_TIMELINE;
  gtk_toggle_button_set_active (figure == LSC_KV_FIGURE_LAYERS ? self->layers_toggle
                                : figure == LSC_KV_FIGURE_KL   ? self->kl_toggle
                                                               : self->timeline_toggle,
                                TRUE);
}

LscKvFigure
lsc_kv_view_get_figure (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), LSC_KV_FIGURE_TIMELINE);
  return self->figure;
}

const char *
lsc_kv_view_get_policy_text (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), NULL);
  return self->policy_text != NULL ? self->policy_text : "";
}

const char *
lsc_kv_view_get_budget_text (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), NULL);
  return self->budget_text != NULL ? self->budget_text : "";
}

const char *
lsc_kv_view_get_cached_text (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), NULL);
  return self->cached_text != NULL ? self->cached_text : "";
}

const char *
lsc_kv_view_get_compare_text (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), NULL);
  return self->compare_text != NULL ? self->compare_text : "";
}

const LscFigureSpec *
lsc_kv_view_get_spec (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), NULL);
  return lsc_view_figure_get_spec (&self->shown);
}

gboolean
lsc_kv_view_can_export (LscKvView *self)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), FALSE);
  return self->shown.fig != NULL;
}

char *
lsc_kv_view_dup_export_name (LscKvView *self, const char *format)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), NULL);
  g_return_val_if_fail (format != NULL, NULL);
  if (self->shown.fig == NULL)
    return g_strdup_printf ("kv.%s", format);
  switch (self->figure)
    {
    case LSC_KV_FIGURE_TIMELINE:
      return g_strdup_printf ("kv-timeline-layer%d-head%d.%s", self->layer, self->head, format);
    case LSC_KV_FIGURE_LAYERS:
      return self->all_heads ? g_strdup_printf ("kv-layers.%s", format)
                             : g_strdup_printf ("kv-layers-head%d.%s", self->head, format);
    case LSC_KV_FIGURE_KL:
    default:
      return g_strdup_printf ("kv-kl.%s", format);
    }
}

gboolean
lsc_kv_view_export (LscKvView *self, const char *path, GError **error)
{
  g_return_val_if_fail (LSC_IS_KV_VIEW (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  return lsc_view_figure_export (&self->shown, path,
                                 _("There is no KV-cache figure to export: run a model under a "
                                   "KV policy first"), error);
}

/* ----------------------------------------------------------------- class */

static void
lsc_kv_view_dispose (GObject *object)
{
  LscKvView *self = LSC_KV_VIEW (object);
  lsc_view_figure_clear (&self->shown);
  gtk_widget_dispose_template (GTK_WIDGET (self), LSC_TYPE_KV_VIEW);
  self->log = NULL;
  self->kl = NULL;
  self->agree = NULL;
  g_clear_object (&self->run);
  g_clear_pointer (&self->policy_text, g_free);
  g_clear_pointer (&self->budget_text, g_free);
  g_clear_pointer (&self->cached_text, g_free);
  g_clear_pointer (&self->compare_text, g_free);
  G_OBJECT_CLASS (lsc_kv_view_parent_class)->dispose (object);
}

static void
lsc_kv_view_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  switch (prop_id)
    {
    case PROP_CAN_EXPORT:
      g_value_set_boolean (value, lsc_kv_view_can_export (LSC_KV_VIEW (object)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
lsc_kv_view_class_init (LscKvViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = lsc_kv_view_dispose;
  object_class->get_property = lsc_kv_view_get_property;

  properties[PROP_CAN_EXPORT] = g_param_spec_boolean ("can-export", NULL, NULL, FALSE,
                                                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
      "/io/github/longscope/Longscope/lsc-kv-view.ui");
  gtk_widget_class_bind_template_child (widget_class, LscKvView, stack);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, status_label);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, policy_label);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, budget_label);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, compare_label);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, layer_spin);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, head_spin);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, timeline_toggle);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, layers_toggle);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, kl_toggle);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, all_heads_check);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, cached_label);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, figure_area);
  gtk_widget_class_bind_template_child (widget_class, LscKvView, figure_note_label);
  gtk_widget_class_bind_template_callback (widget_class, on_layer_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_head_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_figure_toggled);
  gtk_widget_class_bind_template_callback (widget_class, on_all_heads_toggled);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
lsc_kv_view_init (LscKvView *self)
{
  self->layer = self->head = -1;
  self->all_heads = TRUE;
  self->figure = LSC_KV_FIGURE_TIMELINE;
  lsc_figure_spec_init (&self->shown.spec);
  gtk_widget_init_template (GTK_WIDGET (self));
  gtk_drawing_area_set_draw_func (self->figure_area, lsc_view_figure_draw, &self->shown, NULL);
  lsc_kv_view_set_run (self, NULL);
}
