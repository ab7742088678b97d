/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>

#include "lsc-attention-view.h"
#include "lsc-head-grid.h"
#include "lsc-head-maps.h"

struct _LscAttentionView
{
  GtkWidget parent_instance;

  /* template children */
  GtkStack *stack;
  GtkLabel *empty_label;
  GtkSpinButton *layer_spin;
  GtkSpinButton *head_spin;
  GtkDropDown *colormap_drop;
  GtkDropDown *scale_drop;
  GtkDropDown *stat_drop;
  GtkButton *zoom_in_button;
  GtkButton *zoom_out_button;
  GtkButton *zoom_reset_button;
  LscHeatmap *heatmap;
  LscHeadGrid *head_grid;
  GtkLabel *maps_label;
  LscHeadMaps *head_maps;

  /* owned */
  LscRun *run;               /* (nullable) */
  GSettings *settings;       /* (nullable) */
  char **labels;             /* (nullable) token texts by position */
  int n_labels;
  int n_heads;               /* query heads per layer */
  gboolean updating;         /* spin buttons set by code */
  GCancellable *pending;     /* (nullable) the head whose pyramid is being built */
};

G_DEFINE_FINAL_TYPE (LscAttentionView, lsc_attention_view, GTK_TYPE_WIDGET)

static const char *const colormap_names[] = { "viridis", "magma", "RdBu_r" };
static const char *const scale_names[] = { "linear", "log", "quantile" };

static guint
index_of (const char *const *names, guint n, const char *name)
{
  for (guint i = 0; i < n; i++)
    if (g_strcmp0 (names[i], name) == 0)
      return i;
  return 0;
}

/* Shows source (transfer full) in the heatmap. */
static void
show_source (LscAttentionView *self, LscAttentionSource *source)
{
  /* Translators: the title of an attention map */
  g_autofree char *title = g_strdup_printf (_("Layer %d, head %d"),
                                            lsc_attention_source_get_layer (source),
                                            lsc_attention_source_get_head (source));
  lsc_heatmap_set_source (self->heatmap, source, (const char *const *) self->labels,
                          self->n_labels, title);
}

static void
on_source_ready (GObject *object, GAsyncResult *result, gpointer data)
{
  g_autoptr(LscAttentionView) self = data;
  g_autoptr(GError) error = NULL;
  LscAttentionSource *source = lsc_attention_source_new_finish (result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;   /* another head was asked for since */
  g_clear_object (&self->pending);
  if (source == NULL)
    {
      g_warning ("attention view: %s", error->message);
      lsc_heatmap_set_source (self->heatmap, NULL, NULL, 0, NULL);
      return;
    }
  show_source (self, source);
}

void
lsc_attention_view_show_head (LscAttentionView *self, int layer, int head)
{
  g_return_if_fail (LSC_IS_ATTENTION_VIEW (self));
  const LscAttentionStore *store = self->run != NULL ? lsc_run_get_attention (self->run) : NULL;
  if (store == NULL)
    return;
  self->updating = TRUE;
  gtk_spin_button_set_value (self->layer_spin, layer);
  gtk_spin_button_set_value (self->head_spin, head);
  self->updating = FALSE;
  lsc_head_grid_set_selected (self->head_grid, layer, head);
  lsc_head_maps_set_layer (self->head_maps, store, G_OBJECT (self->run), layer, self->n_heads);
  lsc_head_maps_set_selected (self->head_maps, head);
  /* Translators: the heading over the small maps of every head of one layer */
  g_autofree char *maps = g_strdup_printf (_("Every head of layer %d (click one to open it)"), layer);
  gtk_label_set_text (self->maps_label, maps);

  /* a head whose small map is ready has its pyramid already */
  LscAttentionSource *cached = lsc_head_maps_get_source (self->head_maps, layer, head);
  if (cached != NULL)
    {
      if (self->pending != NULL)
        g_cancellable_cancel (self->pending);
      g_clear_object (&self->pending);
      show_source (self, lsc_attention_source_ref (cached));
      return;
    }

  /* the pyramid is built on a worker thread; the map shown stays until it is ready */
  if (self->pending != NULL)
    g_cancellable_cancel (self->pending);
  g_set_object (&self->pending, g_cancellable_new ());
  lsc_attention_source_new_async (store, G_OBJECT (self->run), layer, head, self->pending,
                                  on_source_ready, g_object_ref (self));
}

static void
on_head_spin_changed (LscAttentionView *self)
{
  if (self->updating || self->run == NULL)
    return;
  lsc_attention_view_show_head (self, gtk_spin_button_get_value_as_int (self->layer_spin),
                                gtk_spin_button_get_value_as_int (self->head_spin));
}

static void
on_head_activated (LscAttentionView *self, int layer, int head, gpointer emitter)
{
  lsc_attention_view_show_head (self, layer, head);
}

static void
on_colormap_selected (LscAttentionView *self)
{
  guint i = gtk_drop_down_get_selected (self->colormap_drop);
  if (i >= G_N_ELEMENTS (colormap_names))
    return;
  LscColormap map = LSC_COLORMAP_VIRIDIS;
  lsc_colormap_from_name (colormap_names[i], &map);
  lsc_heatmap_set_colormap (self->heatmap, map);
  lsc_head_maps_set_colormap (self->head_maps, map);
  if (self->settings != NULL)
    g_settings_set_string (self->settings, "colormap", colormap_names[i]);
}

static void
on_scale_selected (LscAttentionView *self)
{
  static const LscScaleKind kinds[] = { LSC_SCALE_LINEAR, LSC_SCALE_LOG, LSC_SCALE_QUANTILE };
  guint i = gtk_drop_down_get_selected (self->scale_drop);
  if (i >= G_N_ELEMENTS (kinds))
    return;
  lsc_heatmap_set_scale_kind (self->heatmap, kinds[i]);
  if (self->settings != NULL)
    g_settings_set_string (self->settings, "scale", scale_names[i]);
}

static void
on_stat_selected (LscAttentionView *self)
{
  lsc_head_grid_set_stat (self->head_grid, gtk_drop_down_get_selected (self->stat_drop));
}

static void
on_zoom_in (LscAttentionView *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self->heatmap), "zoom.in", NULL);
}

static void
on_zoom_out (LscAttentionView *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self->heatmap), "zoom.out", NULL);
}

static void
on_zoom_reset (LscAttentionView *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self->heatmap), "zoom.reset", NULL);
}

static void
on_settings_changed (GSettings *settings, const char *key, LscAttentionView *self)
{
  g_autofree char *value = g_settings_get_string (settings, key);
  if (g_str_equal (key, "colormap"))
    gtk_drop_down_set_selected (self->colormap_drop,
                                index_of (colormap_names, G_N_ELEMENTS (colormap_names), value));
  else if (g_str_equal (key, "scale"))
    gtk_drop_down_set_selected (self->scale_drop,
                                index_of (scale_names, G_N_ELEMENTS (scale_names), value));
}

void
lsc_attention_view_set_settings (LscAttentionView *self, GSettings *settings)
{
  g_return_if_fail (LSC_IS_ATTENTION_VIEW (self));
  if (self->settings != NULL)
    g_signal_handlers_disconnect_by_data (self->settings, self);
  g_set_object (&self->settings, settings);
  if (settings == NULL)
    return;
  g_signal_connect (settings, "changed::colormap", G_CALLBACK (on_settings_changed), self);
  g_signal_connect (settings, "changed::scale", G_CALLBACK (on_settings_changed), self);
  on_settings_changed (settings, "colormap", self);
  on_settings_changed (settings, "scale", self);
}

void
lsc_attention_view_set_run (LscAttentionView *self, LscRun *run)
{
  g_return_if_fail (LSC_IS_ATTENTION_VIEW (self));
  g_set_object (&self->run, run);
  g_clear_pointer (&self->labels, g_strfreev);
  self->n_labels = 0;
  const LscAttentionStore *store = run != NULL ? lsc_run_get_attention (run) : NULL;
  int nl = 0, nh = 0;
  const LscHeadStats *stats = run != NULL ? lsc_run_get_head_stats (run, &nl, &nh) : NULL;
  if (store == NULL || stats == NULL)
    {
      const LscModelConfig *config = run != NULL
          ? lsc_model_get_config (lsc_loaded_model_get_model (lsc_run_get_model (run))) : NULL;
      gtk_label_set_text (self->empty_label,
                          config != NULL && lsc_arch_is_ssm (config->arch)
                          ? _("A Mamba model has no attention: the SSM Channels view shows how "
                              "long each of its channels remembers.")
                          : _("No attention maps yet. Run the model with “Capture attention” on "
                              "to see them here."));
      lsc_heatmap_set_source (self->heatmap, NULL, NULL, 0, NULL);
      lsc_head_grid_set_stats (self->head_grid, NULL, 0, 0);
      lsc_head_maps_set_layer (self->head_maps, NULL, NULL, 0, 0);
      gtk_stack_set_visible_child_name (self->stack, "empty");
      return;
    }

  int n_tokens;
  const gint32 *tokens = lsc_run_get_tokens (run, &n_tokens, NULL);
  LscTokenizer *tok = lsc_loaded_model_get_tokenizer (lsc_run_get_model (run));
  self->labels = g_new0 (char *, n_tokens + 1);
  for (int i = 0; i < n_tokens; i++)
    {
      const char *piece = lsc_tokenizer_get_piece (tok, tokens[i]);
      self->labels[i] = g_strdup (piece != NULL ? piece : "");
    }
  self->n_labels = n_tokens;

  self->n_heads = nh;
  lsc_head_maps_set_layer (self->head_maps, NULL, NULL, 0, 0);   /* a new store */
  self->updating = TRUE;
  gtk_spin_button_set_range (self->layer_spin, 0, nl - 1);
  gtk_spin_button_set_range (self->head_spin, 0, nh - 1);
  self->updating = FALSE;
  lsc_head_grid_set_stats (self->head_grid, stats, nl, nh);
  gtk_stack_set_visible_child_name (self->stack, "map");
  /* the first captured head (saved results may hold some layers only) */
  for (int k = 0; k < nl * nh; k++)
    if (lsc_attention_has_head (store, k / nh, k % nh))
      {
        lsc_attention_view_show_head (self, k / nh, k % nh);
        break;
      }
}

LscHeadMaps *
lsc_attention_view_get_head_maps (LscAttentionView *self)
{
  g_return_val_if_fail (LSC_IS_ATTENTION_VIEW (self), NULL);
  return self->head_maps;
}

LscHeatmap *
lsc_attention_view_get_heatmap (LscAttentionView *self)
{
  g_return_val_if_fail (LSC_IS_ATTENTION_VIEW (self), NULL);
  return self->heatmap;
}

static void
lsc_attention_view_dispose (GObject *object)
{
  LscAttentionView *self = LSC_ATTENTION_VIEW (object);
  if (self->settings != NULL)
    g_signal_handlers_disconnect_by_data (self->settings, self);
  gtk_widget_dispose_template (GTK_WIDGET (self), LSC_TYPE_ATTENTION_VIEW);
  g_clear_object (&self->settings);
  if (self->pending != NULL)
    g_cancellable_cancel (self->pending);
  g_clear_object (&self->pending);
  g_clear_object (&self->run);
  g_clear_pointer (&self->labels, g_strfreev);
  G_OBJECT_CLASS (lsc_attention_view_parent_class)->dispose (object);
}

static void
lsc_attention_view_class_init (LscAttentionViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = lsc_attention_view_dispose;

  g_type_ensure (LSC_TYPE_HEATMAP);
  g_type_ensure (LSC_TYPE_HEAD_GRID);
  g_type_ensure (LSC_TYPE_HEAD_MAPS);
  gtk_widget_class_set_template_from_resource (widget_class,
      "/io/github/longscope/Longscope/lsc-attention-view.ui");
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, stack);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, empty_label);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, layer_spin);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, head_spin);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, colormap_drop);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, scale_drop);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, stat_drop);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, zoom_in_button);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, zoom_out_button);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, zoom_reset_button);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, heatmap);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, head_grid);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, maps_label);
  gtk_widget_class_bind_template_child (widget_class, LscAttentionView, head_maps);
  gtk_widget_class_bind_template_callback (widget_class, on_head_spin_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_head_activated);
  gtk_widget_class_bind_template_callback (widget_class, on_colormap_selected);
  gtk_widget_class_bind_template_callback (widget_class, on_scale_selected);
  gtk_widget_class_bind_template_callback (widget_class, on_stat_selected);
  gtk_widget_class_bind_template_callback (widget_class, on_zoom_in);
  gtk_widget_class_bind_template_callback (widget_class, on_zoom_out);
  gtk_widget_class_bind_template_callback (widget_class, on_zoom_reset);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
lsc_attention_view_init (LscAttentionView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  LscHeatmapModel *model = lsc_heatmap_get_model (self->heatmap);
  g_object_bind_property (model, "can-zoom-in", self->zoom_in_button, "sensitive", G_BINDING_SYNC_CREATE);
  g_object_bind_property (model, "can-zoom-out", self->zoom_out_button, "sensitive", G_BINDING_SYNC_CREATE);
  g_object_bind_property (model, "can-zoom-out", self->zoom_reset_button, "sensitive", G_BINDING_SYNC_CREATE);
}
