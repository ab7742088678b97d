/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <stdlib.h>

#include "lsc-figure.h"
#include "lsc-head-grid.h"
#include "lsc-retrieval-view.h"

/* rows of the ranked list */
#define N_TOP 10

struct _LscRetrievalView
{
  GtkWidget parent_instance;

  /* template children */
  GtkStack *stack;
  GtkEntry *needle_entry;
  GtkEntry *question_entry;
  GtkEntry *answer_entry;
  GtkEntry *lengths_entry;
  GtkSpinButton *depths_spin;
  GtkButton *detect_button;
  GtkButton *cancel_button;
  GtkLabel *status_label;
  GtkWidget *results_box;
  LscHeadGrid *head_grid;
  GtkListBox *ranking_list;

  /* owned */
  LscLoadedModel *model;              /* (nullable) */
  GCancellable *cancellable;          /* (nullable) the running detection's */
  LscRetrievalDetection *detection;   /* (nullable) the last finished one */
  LscRetrievalRunParams defaults;     /* the model's, for what the form does not set */
  char *row_texts[N_TOP];
};

G_DEFINE_FINAL_TYPE (LscRetrievalView, lsc_retrieval_view, GTK_TYPE_WIDGET)

enum { PROP_0, PROP_BUSY, PROP_CAN_EXPORT, N_PROPS };
static GParamSpec *properties[N_PROPS];

enum { HEAD_ACTIVATED, N_SIGNALS };
static guint signals[N_SIGNALS];

/* ------------------------------------------------------------- helpers */

/* Texts with line breaks go into one-line entries as C escapes ("\n"),
 * non-ASCII UTF-8 as is. */
static char *
escape_text (const char *text)
{
  char exceptions[129];
  for (int i = 0; i < 128; i++)
    exceptions[i] = (char) (0x80 + i);
  exceptions[128] = '\0';
  return g_strescape (text, exceptions);
}

static void
set_status (LscRetrievalView *self, const char *text)
{
  gtk_label_set_text (self->status_label, text);
}

static void
update_sensitivity (LscRetrievalView *self)
{
  gboolean busy = self->cancellable != NULL;
  gtk_widget_set_sensitive (GTK_WIDGET (self->detect_button), self->model != NULL && !busy);
  gtk_widget_set_sensitive (GTK_WIDGET (self->cancel_button), busy);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUSY]);
}

static void
clear_results (LscRetrievalView *self)
{
  gboolean could_export = lsc_retrieval_view_can_export (self);
  g_clear_pointer (&self->detection, lsc_retrieval_detection_free);
  for (int i = 0; i < N_TOP; i++)
    g_clear_pointer (&self->row_texts[i], g_free);
  GtkWidget *row;
  while ((row = gtk_widget_get_first_child (GTK_WIDGET (self->ranking_list))) != NULL)
    gtk_list_box_remove (self->ranking_list, row);
  lsc_head_grid_set_values (self->head_grid, NULL, 0, 0, NULL);
  gtk_widget_set_visible (self->results_box, FALSE);
  if (could_export)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_EXPORT]);
}

/* The status line, after `origin` (NULL: none) when the detection was not
 * run here. */
static void
set_status_from (LscRetrievalView *self, const char *origin, const char *text)
{
  g_autofree char *full = origin != NULL ? g_strdup_printf ("%s\n%s", origin, text) : NULL;
  set_status (self, full != NULL ? full : text);
}

static void
show_detection (LscRetrievalView *self, LscRetrievalDetection *d, const char *origin)
{
  clear_results (self);
  self->detection = d;
  if (d->n_passed == 0)
    {
      /* Translators: detection finished, but the model never recalled the answer */
      g_autofree char *text = g_strdup_printf (
          ngettext ("No sample passed the recall filter (%d sample, mean recall %.2f): no head "
                    "can be scored. Try shorter contexts or another needle.",
                    "No sample passed the recall filter (%d samples, mean recall %.2f): no head "
                    "can be scored. Try shorter contexts or another needle.", d->n_samples),
          d->n_samples, d->mean_recall);
      set_status_from (self, origin, text);
      return;
    }
  lsc_head_grid_set_values (self->head_grid, d->scores, d->n_layers, d->n_heads,
                            _("Retrieval score"));
  for (int i = 0; i < MIN (N_TOP, d->n_layers * d->n_heads); i++)
    {
      int k = d->ranking[i];
      /* Translators: a row of the ranked list of retrieval heads */
      self->row_texts[i] = g_strdup_printf (_("layer %d, head %d: %.3f"), k / d->n_heads,
                                            k % d->n_heads, d->scores[k]);
      GtkWidget *label = gtk_label_new (self->row_texts[i]);
      gtk_label_set_xalign (GTK_LABEL (label), 0);
      gtk_widget_set_margin_start (label, 8);
      gtk_widget_set_margin_end (label, 8);
      gtk_widget_set_margin_top (label, 4);
      gtk_widget_set_margin_bottom (label, 4);
      gtk_list_box_append (self->ranking_list, label);
    }
  gtk_widget_set_visible (self->results_box, TRUE);
  g_autofree char *passed = g_strdup_printf (
      /* Translators: after detection; followed by the number of retrieval heads */
      ngettext ("%d of %d sample passed the recall filter (mean recall %.2f).",
                "%d of %d samples passed the recall filter (mean recall %.2f).", d->n_samples),
      d->n_passed, d->n_samples, d->mean_recall);
  g_autofree char *above = g_strdup_printf (
      ngettext ("%d head scores above %.2f.", "%d heads score above %.2f.", d->n_above),
      d->n_above, d->score_threshold);
  g_autofree char *text = d->warning != NULL
      ? g_strdup_printf ("%s %s\n%s", passed, above, d->warning)
      : g_strdup_printf ("%s %s", passed, above);
  set_status_from (self, origin, text);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_EXPORT]);
}

/* "200, 400" -> lengths; FALSE when empty, not numbers or too many. */
static gboolean
parse_lengths (const char *text, LscRetrievalRunParams *p)
{
  g_auto(GStrv) parts = g_strsplit_set (text, ", ;", -1);
  int n = 0;
  for (int i = 0; parts[i] != NULL; i++)
    {
      if (*parts[i] == '\0')
        continue;
      char *end = NULL;
      long v = strtol (parts[i], &end, 10);
      if (*end != '\0' || v < 1 || v > (1 << 24) || n == LSC_RETRIEVAL_RUN_MAX_LENGTHS)
        return FALSE;
      p->context_lengths[n++] = (int) v;
    }
  p->n_lengths = n;
  return n > 0;
}

static void
fill_form (LscRetrievalView *self)
{
  const LscRetrievalRunParams *p = &self->defaults;
  g_autofree char *needle = escape_text (p->needle);
  g_autofree char *question = escape_text (p->question);
  g_autofree char *answer = escape_text (p->answer);
  gtk_editable_set_text (GTK_EDITABLE (self->needle_entry), needle);
  gtk_editable_set_text (GTK_EDITABLE (self->question_entry), question);
  gtk_editable_set_text (GTK_EDITABLE (self->answer_entry), answer);
  g_autoptr(GString) lengths = g_string_new (NULL);
  for (int i = 0; i < p->n_lengths; i++)
    g_string_append_printf (lengths, i > 0 ? ", %d" : "%d", p->context_lengths[i]);
  gtk_editable_set_text (GTK_EDITABLE (self->lengths_entry), lengths->str);
  gtk_spin_button_set_value (self->depths_spin, p->n_depths);
}

/* ------------------------------------------------------------ detection */

static void
on_progress (int done, int total, gpointer user_data)
{
  /* alive: the task holds a reference until finish, and no progress comes
   * after finish or once cancelled (set_model, dispose) */
  LscRetrievalView *self = user_data;
  /* Translators: progress of retrieval-head detection */
  g_autofree char *text = g_strdup_printf (_("Sample %d of %d…"), MIN (done + 1, total), total);
  set_status (self, text);
}

static void
on_detect_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(LscRetrievalView) self = user_data;
  g_autoptr(GError) error = NULL;
  LscRetrievalDetection *d = lsc_retrieval_detect_finish (result, &error);
  GCancellable *mine = g_task_get_cancellable (G_TASK (result));
  if (mine != self->cancellable)
    {
      /* superseded (another model): its successor owns the view */
      g_clear_pointer (&d, lsc_retrieval_detection_free);
      return;
    }
  g_clear_object (&self->cancellable);
  if (d == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        set_status (self, _("Cancelled"));
      else
        {
          g_autofree char *text = g_strdup_printf (_("Detection failed: %s"), error->message);
          set_status (self, text);
        }
    }
  else
    show_detection (self, d, NULL);
  update_sensitivity (self);
}

void
lsc_retrieval_view_detect (LscRetrievalView *self)
{
  g_return_if_fail (LSC_IS_RETRIEVAL_VIEW (self));
  if (self->model == NULL || self->cancellable != NULL)
    return;
  LscRetrievalRunParams p = self->defaults;
  g_autofree char *needle = g_strcompress (gtk_editable_get_text (GTK_EDITABLE (self->needle_entry)));
  g_autofree char *question = g_strcompress (gtk_editable_get_text (GTK_EDITABLE (self->question_entry)));
  g_autofree char *answer = g_strcompress (gtk_editable_get_text (GTK_EDITABLE (self->answer_entry)));
  p.needle = needle;
  p.question = question;
  p.answer = answer;
  p.n_depths = gtk_spin_button_get_value_as_int (self->depths_spin);
  if (*needle == '\0' || *question == '\0' || *answer == '\0')
    {
      set_status (self, _("The needle, question and answer must not be empty."));
      return;
    }
  if (!parse_lengths (gtk_editable_get_text (GTK_EDITABLE (self->lengths_entry)), &p))
    {
      set_status (self, _("Context lengths: give one to 16 token counts, separated by commas."));
      return;
    }
  clear_results (self);
  self->cancellable = g_cancellable_new ();
  set_status (self, _("Starting…"));
  lsc_retrieval_detect_async (self->model, &p, on_progress, self, self->cancellable,
                              on_detect_done, g_object_ref (self));
  update_sensitivity (self);
}

void
lsc_retrieval_view_cancel (LscRetrievalView *self)
{
  g_return_if_fail (LSC_IS_RETRIEVAL_VIEW (self));
  if (self->cancellable == NULL)
    return;
  g_cancellable_cancel (self->cancellable);
  set_status (self, _("Cancelling…"));
}

static void
on_detect_clicked (LscRetrievalView *self)
{
  lsc_retrieval_view_detect (self);
}

static void
on_cancel_clicked (LscRetrievalView *self)
{
  lsc_retrieval_view_cancel (self);
}

/* ---------------------------------------------------------------- heads */

/* Whether the detection's heads are the open model's: a saved detection
 * may come from another model (another path, or another shape). */
static gboolean
detection_of_model (LscRetrievalView *self)
{
  const LscRetrievalDetection *d = self->detection;
  if (self->model == NULL)
    return d->model_path == NULL;
  LscModel *model = lsc_loaded_model_get_model (self->model);
  const LscModelConfig *c = lsc_model_get_config (model);
  return c->n_layers == d->n_layers && c->n_heads == d->n_heads
         && (d->model_path == NULL || g_strcmp0 (d->model_path, lsc_model_get_path (model)) == 0);
}

void
lsc_retrieval_view_activate_head (LscRetrievalView *self, int layer, int head)
{
  g_return_if_fail (LSC_IS_RETRIEVAL_VIEW (self));
  const LscRetrievalDetection *d = self->detection;
  if (d == NULL || layer < 0 || layer >= d->n_layers || head < 0 || head >= d->n_heads)
    return;
  lsc_head_grid_set_selected (self->head_grid, layer, head);
  if (!detection_of_model (self))
    {
      double score = d->scores[layer * d->n_heads + head];
      g_autofree char *text = d->model_path != NULL
          /* Translators: a head of a saved detection of another model was
           * clicked; %s is that model */
          ? g_strdup_printf (_("Layer %d, head %d: retrieval score %.3f, detected on %s, not on "
                               "the open model."), layer, head, score, d->model_path)
          : g_strdup_printf (_("Layer %d, head %d: retrieval score %.3f, detected on another "
                               "model."), layer, head, score);
      set_status (self, text);
      return;
    }
  gboolean opened = FALSE;
  g_signal_emit (self, signals[HEAD_ACTIVATED], 0, layer, head, &opened);
  if (opened)
    return;
  /* Translators: a head clicked while there is no attention map to open */
  g_autofree char *text = g_strdup_printf (
      _("Layer %d, head %d: retrieval score %.3f. Run the model with “Capture attention” on to "
        "open its attention map."), layer, head, d->scores[layer * d->n_heads + head]);
  set_status (self, text);
}

static void
on_grid_head_activated (LscRetrievalView *self, int layer, int head, gpointer grid)
{
  lsc_retrieval_view_activate_head (self, layer, head);
}

static void
on_row_activated (LscRetrievalView *self, GtkListBoxRow *row, gpointer list)
{
  int i = gtk_list_box_row_get_index (row);
  const LscRetrievalDetection *d = self->detection;
  if (d == NULL || i < 0 || i >= d->n_layers * d->n_heads)
    return;
  int k = d->ranking[i];
  lsc_retrieval_view_activate_head (self, k / d->n_heads, k % d->n_heads);
}

/* ---------------------------------------------------------------- public */

void
lsc_retrieval_view_set_model (LscRetrievalView *self, LscLoadedModel *model)
{
  g_return_if_fail (LSC_IS_RETRIEVAL_VIEW (self));
  if (self->cancellable != NULL)
    g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  clear_results (self);
  g_set_object (&self->model, model);
  lsc_retrieval_run_params_init (&self->defaults, model);
  fill_form (self);
  gtk_stack_set_visible_child_name (self->stack, model != NULL ? "main" : "empty");
  set_status (self, _("Press Detect to run the needle grid: each sample puts the needle into the "
                      "haystack and asks for it back, and every head is scored by how often it "
                      "copies the answer from the needle."));
  update_sensitivity (self);
}

gboolean
lsc_retrieval_view_get_busy (LscRetrievalView *self)
{
  g_return_val_if_fail (LSC_IS_RETRIEVAL_VIEW (self), FALSE);
  return self->cancellable != NULL;
}

const LscRetrievalDetection *
lsc_retrieval_view_get_detection (LscRetrievalView *self)
{
  g_return_val_if_fail (LSC_IS_RETRIEVAL_VIEW (self), NULL);
  return self->detection;
}

gboolean
lsc_retrieval_view_get_top_head (LscRetrievalView *self, int *layer, int *head, double *score)
{
  g_return_val_if_fail (LSC_IS_RETRIEVAL_VIEW (self), FALSE);
  const LscRetrievalDetection *d = self->detection;
  if (d == NULL || d->n_passed == 0 || d->n_layers * d->n_heads == 0)
    return FALSE;
  int k = d->ranking[0];
  if (layer != NULL)
    *layer = k / d->n_heads;
  if (head != NULL)
    *head = k % d->n_heads;
  if (score != NULL)
    *score = d->scores[k];
  return TRUE;
}

const char *
lsc_retrieval_view_get_row_text (LscRetrievalView *self, int n)
{
  g_return_val_if_fail (LSC_IS_RETRIEVAL_VIEW (self), NULL);
  return n >= 0 && n < N_TOP ? self->row_texts[n] : NULL;
}

const char *
lsc_retrieval_view_get_status (LscRetrievalView *self)
{
  g_return_val_if_fail (LSC_IS_RETRIEVAL_VIEW (self), NULL);
  return gtk_label_get_text (self->status_label);
}

void
lsc_retrieval_view_show_detection (LscRetrievalView *self, LscRetrievalDetection *detection,
                                   const char *source_label)
{
  g_return_if_fail (LSC_IS_RETRIEVAL_VIEW (self));
  g_return_if_fail (detection != NULL);
  g_return_if_fail (source_label != NULL);
  if (self->cancellable != NULL)
    g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  g_autofree char *origin = detection->model_path != NULL
      /* Translators: the first line of the status of a saved detection: the
       * model it was detected on, and where it was read from (a results.json) */
      ? g_strdup_printf (_("Saved detection on %s, from %s."), detection->model_path, source_label)
      /* Translators: as above, for a saved detection that does not name its model */
      : g_strdup_printf (_("Saved detection from %s."), source_label);
  gtk_stack_set_visible_child_name (self->stack, "main");
  show_detection (self, detection, origin);
  update_sensitivity (self);
}

gboolean
lsc_retrieval_view_can_export (LscRetrievalView *self)
{
  g_return_val_if_fail (LSC_IS_RETRIEVAL_VIEW (self), FALSE);
  return self->detection != NULL && self->detection->n_passed > 0;
}

gboolean
lsc_retrieval_view_export (LscRetrievalView *self, const char *path, GError **error)
{
  g_return_val_if_fail (LSC_IS_RETRIEVAL_VIEW (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  const LscRetrievalDetection *d = self->detection;
  if (d == NULL || d->n_passed == 0)
    {
      g_set_error_literal (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA,
                           d == NULL
                           ? _("There are no retrieval scores to export: press Detect first")
                           : _("There are no retrieval scores to export: no sample passed the "
                               "recall filter"));
      return FALSE;
    }
  /* a batch job's {"kind": "retrieval_scores"} with its defaults */
  g_autofree float *cells = g_new (float, (gsize) d->n_layers * d->n_heads);
  LscFigureSpec spec;
  lsc_figure_spec_init (&spec);
  lsc_figure_spec_retrieval_scores (&spec, d->scores, d->n_layers, d->n_heads, cells);
  spec.path = path;
  return lsc_figure_save_spec (&spec, NULL, error);
}

/* ----------------------------------------------------------------- class */

static void
lsc_retrieval_view_dispose (GObject *object)
{
  LscRetrievalView *self = LSC_RETRIEVAL_VIEW (object);
  if (self->cancellable != NULL)
    g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->detection, lsc_retrieval_detection_free);
  for (int i = 0; i < N_TOP; i++)
    g_clear_pointer (&self->row_texts[i], g_free);
  gtk_widget_dispose_template (GTK_WIDGET (self), LSC_TYPE_RETRIEVAL_VIEW);
  g_clear_object (&self->model);
  G_OBJECT_CLASS (lsc_retrieval_view_parent_class)->dispose (object);
}

static void
lsc_retrieval_view_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  switch (prop_id)
    {
    case PROP_BUSY:
      g_value_set_boolean (value, lsc_retrieval_view_get_busy (LSC_RETRIEVAL_VIEW (object)));
      break;
    case PROP_CAN_EXPORT:
      g_value_set_boolean (value, lsc_retrieval_view_can_export (LSC_RETRIEVAL_VIEW (object)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
lsc_retrieval_view_class_init (LscRetrievalViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = lsc_retrieval_view_dispose;
  object_class->get_property = lsc_retrieval_view_get_property;

  properties[PROP_BUSY] = g_param_spec_boolean ("busy", NULL, NULL, FALSE,
                                                G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_CAN_EXPORT] = g_param_spec_boolean ("can-export", NULL, NULL, FALSE,
                                                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
  /* (layer, head) -> TRUE when a handler opened the head */
  signals[HEAD_ACTIVATED] = g_signal_new ("head-activated", G_TYPE_FROM_CLASS (klass),
                                          G_SIGNAL_RUN_LAST, 0, g_signal_accumulator_true_handled,
                                          NULL, NULL, G_TYPE_BOOLEAN, 2, G_TYPE_INT, G_TYPE_INT);

  g_type_ensure (LSC_TYPE_HEAD_GRID);
  gtk_widget_class_set_template_from_resource (widget_class,
      "/io/github/longscope/Longscope/lsc-retrieval-view.ui");
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, stack);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, needle_entry);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, question_entry);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, answer_entry);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, lengths_entry);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, depths_spin);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, detect_button);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, cancel_button);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, status_label);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, results_box);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, head_grid);
  gtk_widget_class_bind_template_child (widget_class, LscRetrievalView, ranking_list);
  gtk_widget_class_bind_template_callback (widget_class, on_detect_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_cancel_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_grid_head_activated);
  gtk_widget_class_bind_template_callback (widget_class, on_row_activated);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
lsc_retrieval_view_init (LscRetrievalView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  lsc_retrieval_view_set_model (self, NULL);
}
