/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "lsc-figure.h"
#include "lsc-run-open.h"
#include "lsc-ssm-view.h"
#include "lsc-view-figure.h"

/* The figure's columns (tokens or distances) are capped at this many: a
 * long run's Δ is aggregated over blocks of k consecutive tokens, k the
 * smallest that fits (sums for the receptive field, which is then exact at
 * every k-th distance; the mean of the kept Δ for the raster), so that a
 * 128k-token run of a 5120-channel model stays a 40 MiB figure drawn in a
 * fraction of a second. The figure's axis says so; below the cap the figure
 * is the batch job's. */
#define MAX_COLUMNS 2048

/* The overview's width in pixels that channels share (at most 26 each). */
#define OVERVIEW_WIDTH 768.0
#define OVERVIEW_HEIGHT 400.0


struct _LscSsmView
{
  GtkWidget parent_instance;

  /* template children */
  GtkStack *stack;
  GtkLabel *status_label;
  GtkLabel *overview_label;
  LscHeadGrid *head_grid;
  GtkScale *threshold_scale;
  GtkLabel *threshold_label;
  GtkSpinButton *layer_spin;
  GtkToggleButton *rf_toggle;
  GtkToggleButton *dt_toggle;
  GtkDrawingArea *figure_area;
  GtkLabel *figure_note_label;

  /* owned */
  LscRun *run;                /* (nullable) */
  const LscSsmStore *store;   /* (nullable) the run's */
  double *log_decay;          /* (n_layers * n_channels) ln decay over the run; NaN: not recorded */
  int n_layers, n_channels;
  int layer;                  /* -1 without a store */
  double c;                   /* LongMamba's threshold */
  int n_global;
  char *threshold_text;
  LscSsmFigure figure;
  gboolean updating;          /* controls set by code */

  LscViewFigure shown;        /* the figure shown */
};

G_DEFINE_FINAL_TYPE (LscSsmView, lsc_ssm_view, GTK_TYPE_WIDGET)

enum { PROP_0, PROP_CAN_EXPORT, N_PROPS };
static GParamSpec *properties[N_PROPS];

/* ---------------------------------------------------------------- figure */

/* dt (n, C) summed over blocks of k rows aligned to end at the last row:
 * block b of nb covers rows [n - (nb - b) k, n - (nb - b - 1) k), the
 * first one clipped at row 0. The receptive field of the sums is the exact
 * one at distances 0, k, 2k, ...: ln r is linear in the sum of Δ. */
static float *
block_sums_from_end (const float *dt, int n, int C, int k, int *n_blocks)
{
  int nb = (n + k - 1) / k;
  float *out = g_new0 (float, (gsize) nb * C);
  for (int t = 0; t < n; t++)
    {
      int b = nb - 1 - (n - 1 - t) / k;
      const float *row = dt + (gsize) t * C;
      float *o = out + (gsize) b * C;
      for (int c = 0; c < C; c++)
        o[c] += row[c];
    }
  *n_blocks = nb;
  return out;
}

/* The mean of the kept Δ over blocks of k tokens from the first; a block
 * whose tokens were all dropped is dropped (kept_out 0). kept NULL: none
 * dropped, kept_out left NULL. */
static float *
block_means (const float *dt, const guint8 *kept, int n, int C, int k, int *n_blocks,
             guint8 **kept_out)
{
  int nb = (n + k - 1) / k;
  float *out = g_new0 (float, (gsize) nb * C);
  g_autofree int *count = g_new (int, C);
  *kept_out = kept != NULL ? g_new0 (guint8, (gsize) nb * C) : NULL;
  for (int b = 0; b < nb; b++)
    {
      float *o = out + (gsize) b * C;
      for (int c = 0; c < C; c++)
        count[c] = 0;
      for (int t = b * k; t < MIN ((b + 1) * k, n); t++)
        for (int c = 0; c < C; c++)
          if (kept == NULL || kept[(gsize) t * C + c])
            {
              o[c] += dt[(gsize) t * C + c];
              count[c]++;
            }
      for (int c = 0; c < C; c++)
        {
          o[c] = count[c] > 0 ? o[c] / count[c] : 0.0f;
          if (*kept_out != NULL)
            (*kept_out)[(gsize) b * C + c] = count[c] > 0;
        }
    }
  *n_blocks = nb;
  return out;
}

/* Rebuilds the spec and the figure of the picked layer. */
static void
update_figure (LscSsmView *self)
{
  gboolean could_export = self->shown.fig != NULL;
  lsc_view_figure_clear (&self->shown);
  gtk_widget_set_visible (GTK_WIDGET (self->figure_note_label), FALSE);
  const float *dt = self->store != NULL && self->layer >= 0
                        ? lsc_ssm_store_get_dt (self->store, self->layer) : NULL;
  int n = self->store != NULL ? lsc_ssm_store_get_n_rows (self->store) : 0;
  if (dt != NULL && n > 0)
    {
      int C = self->n_channels, layer = self->layer;
      int k = n > MAX_COLUMNS ? (n + MAX_COLUMNS - 1) / MAX_COLUMNS : 1;
      const float *a = lsc_ssm_store_get_a (self->store, layer);
      int n_states = lsc_ssm_store_get_n_states (self->store);
      const guint8 *kept = lsc_ssm_store_get_kept (self->store, layer);
      /* figure text is English, as every batch figure (lsc-figure-spec.h) */
      if (self->figure == LSC_SSM_FIGURE_RECEPTIVE_FIELD && k == 1)
        {
          self->shown.cells = g_new (float, (gsize) C * n);
          lsc_figure_spec_ssm_receptive_field (&self->shown.spec, dt, n, C, a, n_states,
                                               layer, self->shown.cells, self->shown.title);
        }
      else if (self->figure == LSC_SSM_FIGURE_RECEPTIVE_FIELD)
        {
          int nb;
          g_autofree float *sums = block_sums_from_end (dt, n, C, k, &nb);
          self->shown.cells = g_new (float, (gsize) C * nb);
          lsc_figure_spec_ssm_receptive_field (&self->shown.spec, sums, nb, C, a, n_states,
                                               layer, self->shown.cells, self->shown.title);
          g_snprintf (self->shown.title, sizeof self->shown.title,
                      "Layer %d: decay from token %d", layer, n - 1);
          g_snprintf (self->shown.x_label, sizeof self->shown.x_label,
                      "Distance (tokens / %d)", k);
          self->shown.spec.x_label = self->shown.x_label;
        }
      else if (k == 1)
        {
          self->shown.cells = g_new (float, (gsize) C * n);
          lsc_figure_spec_ssm_dt (&self->shown.spec, dt, kept, n, C, layer, self->shown.cells,
                                  self->shown.title);
        }
      else
        {
          int nb;
          g_autofree guint8 *kept_blocks = NULL;
          g_autofree float *means = block_means (dt, kept, n, C, k, &nb, &kept_blocks);
          self->shown.cells = g_new (float, (gsize) C * nb);
          lsc_figure_spec_ssm_dt (&self->shown.spec, means, kept_blocks, nb, C, layer,
                                  self->shown.cells, self->shown.title);
          g_snprintf (self->shown.x_label, sizeof self->shown.x_label,
                      "Token / %d (mean Δ of each block)", k);
          self->shown.spec.x_label = self->shown.x_label;
        }
      g_autoptr(GError) error = NULL;
      if (!lsc_view_figure_build (&self->shown, &error))
        {
          g_autofree char *text = g_strdup_printf (_("The figure cannot be drawn: %s"),
                                                   error->message);
          gtk_label_set_text (self->figure_note_label, text);
          gtk_widget_set_visible (GTK_WIDGET (self->figure_note_label), TRUE);
        }
      else if (k > 1)
        {
          g_autofree char *text = g_strdup_printf (
              /* Translators: under the SSM figure of a long run */
              ngettext ("%d tokens shown as %d columns of %d token each.",
                        "%d tokens shown as %d columns of %d tokens each.", k),
              n, (n + k - 1) / k, k);
          gtk_label_set_text (self->figure_note_label, text);
          gtk_widget_set_visible (GTK_WIDGET (self->figure_note_label), TRUE);
        }
    }
  gtk_widget_queue_draw (GTK_WIDGET (self->figure_area));
  if (could_export != (self->shown.fig != NULL))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_EXPORT]);
}

/* ------------------------------------------------------------- threshold */

static void
update_threshold (LscSsmView *self)
{
  g_clear_pointer (&self->threshold_text, g_free);
  self->n_global = -1;
  if (self->store == NULL || self->layer < 0)
    {
      gtk_label_set_text (self->threshold_label, "");
      return;
    }
  double ln_c = log (self->c);
  const double *ld = self->log_decay + (gsize) self->layer * self->n_channels;
  int g = 0;
  for (int c = 0; c < self->n_channels; c++)
    g += ld[c] > ln_c;
  self->n_global = g;
  int n = lsc_ssm_store_get_n_rows (self->store);
  self->threshold_text = g_strdup_printf (
      /* Translators: LongMamba's split of a layer's channels; the numbers are
       * the layer, the global channels, all channels, the tokens of the run
       * and the threshold c */
      ngettext ("Layer %d: %d of %d channel global (decay over %d tokens above c = %.3g)",
                "Layer %d: %d of %d channels global (decay over %d tokens above c = %.3g)",
                self->n_channels),
      self->layer, g, self->n_channels, n, self->c);
  gtk_label_set_text (self->threshold_label, self->threshold_text);
}

static char *
format_c (GtkScale *scale, double value, gpointer data)
{
  return g_strdup_printf ("c = %.3g", pow (10.0, value));
}

static void
on_threshold_changed (LscSsmView *self)
{
  if (self->updating)
    return;
  self->c = pow (10.0, gtk_range_get_value (GTK_RANGE (self->threshold_scale)));
  update_threshold (self);
}

/* ----------------------------------------------------------------- layer */

static void
show_layer (LscSsmView *self, int layer)
{
  self->layer = layer;
  self->updating = TRUE;
  gtk_spin_button_set_value (self->layer_spin, layer);
  self->updating = FALSE;
  lsc_head_grid_set_selected (self->head_grid, layer, -1);
  update_threshold (self);
  update_figure (self);
}

static void
on_layer_changed (LscSsmView *self)
{
  if (self->updating || self->store == NULL)
    return;
  lsc_ssm_view_set_layer (self, gtk_spin_button_get_value_as_int (self->layer_spin));
}

static void
on_grid_activated (LscSsmView *self, int layer, int channel, gpointer grid)
{
  lsc_ssm_view_set_layer (self, layer);
}

static void
on_figure_toggled (LscSsmView *self, GtkToggleButton *button)
{
  if (!gtk_toggle_button_get_active (button))
    return;   /* the other one's "toggled" follows */
  LscSsmFigure figure = button == self->dt_toggle ? LSC_SSM_FIGURE_DT
                                                  : LSC_SSM_FIGURE_RECEPTIVE_FIELD;
  if (figure == self->figure)
    return;
  self->figure = figure;
  if (!self->updating)
    update_figure (self);
}

/* ---------------------------------------------------------------- public */

static void
show_status (LscSsmView *self, const char *text)
{
  gtk_label_set_text (self->status_label, text);
  gtk_stack_set_visible_child_name (self->stack, "empty");
}

void
lsc_ssm_view_set_run (LscSsmView *self, LscRun *run)
{
  g_return_if_fail (LSC_IS_SSM_VIEW (self));
  g_return_if_fail (run == NULL || LSC_IS_RUN (run));
  g_set_object (&self->run, run);
  self->store = run != NULL ? lsc_run_get_ssm (run) : NULL;
  g_clear_pointer (&self->log_decay, g_free);
  self->n_layers = self->n_channels = 0;
  self->layer = -1;

  const LscModelConfig *config = run != NULL
      ? lsc_model_get_config (lsc_loaded_model_get_model (lsc_run_get_model (run))) : NULL;
  int n_rows = self->store != NULL ? lsc_ssm_store_get_n_rows (self->store) : 0;
  if (self->store == NULL || n_rows == 0)
    {
      self->store = NULL;
      lsc_head_grid_set_values (self->head_grid, NULL, 0, 0, NULL);
      update_threshold (self);
      update_figure (self);
      if (run == NULL)
        show_status (self, _("Run a Mamba model to see its channels: how long each one "
                             "remembers, and which of them LongMamba counts as global."));
      else if (!lsc_arch_is_ssm (config->arch))
        {
          /* Translators: %s is the model's architecture, e.g. "llama" */
          g_autofree char *text = g_strdup_printf (
              _("This run’s model (%s) has no SSM channels: open a Mamba model and run it to "
                "see how long each of its channels remembers."), lsc_arch_name (config->arch));
          show_status (self, text);
        }
      else if (lsc_run_get_source (run) != NULL)
        show_status (self, _("These saved results hold no Δ to show: run the model here to see "
                             "its channels."));
      else
        show_status (self, _("This run recorded no Δ: run it again with “Record Δ” on to see "
                             "its channels."));
      return;
    }

  /* every channel's memory over the whole run */
  int L = lsc_ssm_store_get_n_layers (self->store), C = lsc_ssm_store_get_n_channels (self->store);
  int first = lsc_ssm_store_get_first_layer (self->store);
  int last = lsc_ssm_store_get_last_layer (self->store);
  self->n_layers = L;
  self->n_channels = C;
  self->log_decay = g_new (double, (gsize) L * C);
  g_autofree double *log10_decay = g_new (double, (gsize) L * C);
  for (int l = 0; l < L; l++)
    {
      double *ld = self->log_decay + (gsize) l * C;
      if (!lsc_ssm_store_log_decay (self->store, l, 0, n_rows, ld))
        for (int c = 0; c < C; c++)
          ld[c] = NAN;
      for (int c = 0; c < C; c++)
        log10_decay[(gsize) l * C + c] = ld[c] / G_LN10;
    }
  lsc_head_grid_set_cell_size (self->head_grid, CLAMP (floor (OVERVIEW_WIDTH / C), 1, 26),
                               CLAMP (floor (OVERVIEW_HEIGHT / L), 6, 26));
  lsc_head_grid_set_values (self->head_grid, log10_decay, L, C, _("log10 decay"));
  g_autofree char *overview = g_strdup_printf (
      /* Translators: the heading of the SSM view's overview */
      ngettext ("Channel memory over %d token (log10 of each channel’s decay; click a layer)",
                "Channel memory over %d tokens (log10 of each channel’s decay; click a layer)",
                n_rows), n_rows);
  gtk_label_set_text (self->overview_label, overview);
  self->updating = TRUE;
  gtk_spin_button_set_range (self->layer_spin, first, last);
  self->updating = FALSE;
  gtk_stack_set_visible_child_name (self->stack, "main");
  show_layer (self, first);
}

const char *
lsc_ssm_view_get_status (LscSsmView *self)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), NULL);
  return self->store == NULL ? gtk_label_get_text (self->status_label) : NULL;
}

void
lsc_ssm_view_set_layer (LscSsmView *self, int layer)
{
  g_return_if_fail (LSC_IS_SSM_VIEW (self));
  if (self->store == NULL)
    return;
  layer = CLAMP (layer, lsc_ssm_store_get_first_layer (self->store),
                 lsc_ssm_store_get_last_layer (self->store));
  if (layer != self->layer)
    show_layer (self, layer);
}

int
lsc_ssm_view_get_layer (LscSsmView *self)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), -1);
  return self->layer;
}

void
lsc_ssm_view_set_threshold (LscSsmView *self, double c)
{
  g_return_if_fail (LSC_IS_SSM_VIEW (self));
  g_return_if_fail (c > 0 && c <= 1);
  self->c = MAX (c, 1e-6);
  self->updating = TRUE;
  gtk_range_set_value (GTK_RANGE (self->threshold_scale), log10 (self->c));
  self->updating = FALSE;
  update_threshold (self);
}

double
lsc_ssm_view_get_threshold (LscSsmView *self)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), 0);
  return self->c;
}

int
lsc_ssm_view_get_n_global (LscSsmView *self)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), -1);
  return self->n_global;
}

const char *
lsc_ssm_view_get_threshold_text (LscSsmView *self)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), NULL);
  return self->threshold_text != NULL ? self->threshold_text : "";
}

void
lsc_ssm_view_set_figure (LscSsmView *self, LscSsmFigure figure)
{
  g_return_if_fail (LSC_IS_SSM_VIEW (self));
  gtk_toggle_button_set_active (figure == LSC_SSM_FIGURE_DT ? self->dt_toggle : self->rf_toggle,
                                TRUE);
}

LscSsmFigure
lsc_ssm_view_get_figure (LscSsmView *self)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), LSC_SSM_FIGURE_RECEPTIVE_FIELD);
  return self->figure;
}

const LscFigureSpec *
lsc_ssm_view_get_spec (LscSsmView *self)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), NULL);
  return lsc_view_figure_get_spec (&self->shown);
}

LscHeadGrid *
lsc_ssm_view_get_head_grid (LscSsmView *self)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), NULL);
  return self->head_grid;
}

gboolean
lsc_ssm_view_can_export (LscSsmView *self)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), FALSE);
  return self->shown.fig != NULL;
}

char *
lsc_ssm_view_dup_export_name (LscSsmView *self, const char *format)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), NULL);
  g_return_val_if_fail (format != NULL, NULL);
  if (self->shown.fig == NULL)
    return g_strdup_printf ("ssm.%s", format);
  return g_strdup_printf ("%s-layer%d.%s",
                          self->figure == LSC_SSM_FIGURE_DT ? "ssm-dt" : "ssm-receptive-field",
                          self->layer, format);
}

gboolean
lsc_ssm_view_export (LscSsmView *self, const char *path, GError **error)
{
  g_return_val_if_fail (LSC_IS_SSM_VIEW (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  return lsc_view_figure_export (&self->shown, path,
                                 _("There is no SSM figure to export: run a Mamba model with "
                                   "“Record Δ” on first"), error);
}

/* ----------------------------------------------------------------- class */

static void
lsc_ssm_view_dispose (GObject *object)
{
  LscSsmView *self = LSC_SSM_VIEW (object);
  lsc_view_figure_clear (&self->shown);
  gtk_widget_dispose_template (GTK_WIDGET (self), LSC_TYPE_SSM_VIEW);
  self->store = NULL;
  g_clear_object (&self->run);
  g_clear_pointer (&self->log_decay, g_free);
  g_clear_pointer (&self->threshold_text, g_free);
  G_OBJECT_CLASS (lsc_ssm_view_parent_class)->dispose (object);
}

static void
lsc_ssm_view_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  switch (prop_id)
    {
    case PROP_CAN_EXPORT:
      g_value_set_boolean (value, lsc_ssm_view_can_export (LSC_SSM_VIEW (object)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
lsc_ssm_view_class_init (LscSsmViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = lsc_ssm_view_dispose;
  object_class->get_property = lsc_ssm_view_get_property;

  properties[PROP_CAN_EXPORT] = g_param_spec_boolean ("can-export", NULL, NULL, FALSE,
                                                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  g_type_ensure (LSC_TYPE_HEAD_GRID);
  gtk_widget_class_set_template_from_resource (widget_class,
      "/io/github/longscope/Longscope/lsc-ssm-view.ui");
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, stack);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, status_label);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, overview_label);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, head_grid);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, threshold_scale);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, threshold_label);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, layer_spin);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, rf_toggle);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, dt_toggle);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, figure_area);
  gtk_widget_class_bind_template_child (widget_class, LscSsmView, figure_note_label);
  gtk_widget_class_bind_template_callback (widget_class, on_threshold_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_layer_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_grid_activated);
  gtk_widget_class_bind_template_callback (widget_class, on_figure_toggled);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
lsc_ssm_view_init (LscSsmView *self)
{
  self->layer = -1;
  self->n_global = -1;
  self->c = LSC_SSM_VIEW_DEFAULT_C;
  self->figure = LSC_SSM_FIGURE_RECEPTIVE_FIELD;
  lsc_figure_spec_init (&self->shown.spec);
  gtk_widget_init_template (GTK_WIDGET (self));
  gtk_scale_set_format_value_func (self->threshold_scale, format_c, NULL, NULL);
  gtk_drawing_area_set_draw_func (self->figure_area, lsc_view_figure_draw, &self->shown, NULL);
  lsc_head_grid_set_channels (self->head_grid, TRUE);
  self->updating = TRUE;
  gtk_range_set_value (GTK_RANGE (self->threshold_scale), log10 (self->c));
  self->updating = FALSE;
  lsc_ssm_view_set_run (self, NULL);
}
