/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "lsc-experiments-view.h"
#include "lsc-figure.h"

/* the map is drawn at an integer multiple of its size of at least this many
 * pixels, so that GtkPicture's filtering keeps the cells sharp */
#define MAP_MIN_PIXELS 256

struct _LscExperimentsView
{
  GtkWidget parent_instance;

  /* template children */
  GtkWidget *scroller;
  GtkLabel *summary_label;
  GtkWidget *controls_box;
  GtkSpinButton *layer_spin;
  GtkSpinButton *head_spin;
  GtkPicture *diff_picture;
  GtkLabel *text_a_label;
  GtkLabel *text_b_label;

  /* owned */
  LscRun *a;              /* (nullable) */
  LscRun *b;              /* (nullable) */
  LscRunCompare compare;  /* valid when has_compare */
  gboolean has_compare;
  gboolean updating;
};

G_DEFINE_FINAL_TYPE (LscExperimentsView, lsc_experiments_view, GTK_TYPE_WIDGET)

enum { PROP_0, PROP_CAN_EXPORT, N_PROPS };
static GParamSpec *properties[N_PROPS];

/* Δp in [-m, m] -> an RGB texture, RdBu_r centred on 0. */
static GdkTexture *
delta_texture (const LscRunCompare *c)
{
  int n = c->n;
  int scale = MAX (1, (MAP_MIN_PIXELS + n - 1) / n);
  int side = n * scale;
  gsize stride = (gsize) side * 3;
  guint8 *px = g_malloc (stride * side);
  double m = c->max_abs > 0 ? c->max_abs : 1.0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      {
        guint8 r, g, b;
        lsc_colormap_rgb (LSC_COLORMAP_RDBU_R, 0.5 + 0.5 * c->delta[(gsize) i * n + j] / m, &r, &g, &b);
        for (int y = i * scale; y < (i + 1) * scale; y++)
          for (int x = j * scale; x < (j + 1) * scale; x++)
            {
              guint8 *p = px + (gsize) y * stride + (gsize) x * 3;
              p[0] = r;
              p[1] = g;
              p[2] = b;
            }
      }
  g_autoptr(GBytes) bytes = g_bytes_new_take (px, stride * side);
  return gdk_memory_texture_new (side, side, GDK_MEMORY_R8G8B8, bytes, stride);
}

/* "Run A: <output>\n  token  logprob\n..." */
static char *
run_text (LscRun *run, const char *title)
{
  GString *s = g_string_new (title);
  g_string_append_c (s, '\n');
  if (run == NULL)
    return g_string_free (s, FALSE);
  int n_tokens, n_prompt, n_lp;
  const gint32 *tokens = lsc_run_get_tokens (run, &n_tokens, &n_prompt);
  const double *lp = lsc_run_get_logprobs (run, &n_lp);
  LscTokenizer *tok = lsc_loaded_model_get_tokenizer (lsc_run_get_model (run));
  const char *output = lsc_run_get_output (run);
  g_string_append_printf (s, "%s\n", output != NULL ? output : "");
  int n_gen = tokens != NULL ? MIN (n_lp, n_tokens - n_prompt) : 0;
  for (int i = 0; i < n_gen; i++)
    {
      const char *piece = lsc_tokenizer_get_piece (tok, tokens[n_prompt + i]);
      g_string_append_printf (s, "%3d  %-12s %9.4f\n", i, piece != NULL ? piece : "?", lp[i]);
    }
  double mean = lsc_run_compare_mean_logprob (lp, n_lp);
  if (!isnan (mean))
    g_string_append_printf (s, _("mean log-probability %.4f"), mean);
  return g_string_free (s, FALSE);
}

static void update_compare (LscExperimentsView *self);

/* Recomputes the comparison; "can-export" follows it. */
static void
update (LscExperimentsView *self)
{
  gboolean had = self->has_compare;
  update_compare (self);
  if (had != self->has_compare)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_EXPORT]);
}

static void
update_compare (LscExperimentsView *self)
{
  if (self->has_compare)
    lsc_run_compare_clear (&self->compare);
  self->has_compare = FALSE;
  gtk_picture_set_paintable (self->diff_picture, NULL);

  g_autofree char *ta = run_text (self->a, _("Run A (earlier)"));
  g_autofree char *tb = run_text (self->b, _("Run B (latest)"));
  gtk_label_set_text (self->text_a_label, self->a != NULL ? ta : "");
  gtk_label_set_text (self->text_b_label, self->b != NULL ? tb : "");

  if (self->a == NULL || self->b == NULL)
    {
      gtk_label_set_text (self->summary_label,
                          _("Nothing to compare yet: run twice (change the prompt or the settings "
                            "between the runs) to compare the last two runs."));
      gtk_widget_set_sensitive (self->controls_box, FALSE);
      return;
    }
  const char *pa = lsc_loaded_model_get_path (lsc_run_get_model (self->a));
  const char *pb = lsc_loaded_model_get_path (lsc_run_get_model (self->b));
  if (g_strcmp0 (pa, pb) != 0)
    {
      gtk_label_set_text (self->summary_label,
                          _("The last two runs are of different models: run twice on the same "
                            "model to compare them."));
      gtk_widget_set_sensitive (self->controls_box, FALSE);
      return;
    }
  /* what every pair of runs can compare: their generations */
  int n_lp_a, n_lp_b;
  const double *lp_a = lsc_run_get_logprobs (self->a, &n_lp_a);
  const double *lp_b = lsc_run_get_logprobs (self->b, &n_lp_b);
  double delta_lp = lsc_run_compare_mean_logprob (lp_b, n_lp_b)
                    - lsc_run_compare_mean_logprob (lp_a, n_lp_a);
  LscArch arch = lsc_model_get_config (lsc_loaded_model_get_model (lsc_run_get_model (self->b)))->arch;
  const char *why = NULL;
  if (lsc_arch_is_ssm (arch))
    why = _("A Mamba model has no attention to compare: the two runs’ tokens and "
            "log-probabilities are below.");
  else if (lsc_run_get_kv (self->a) != NULL || lsc_run_get_kv (self->b) != NULL)
    why = _("A run under a KV policy captures no attention: the two runs’ tokens and "
            "log-probabilities are below (the KV Cache view compares a policy with the full "
            "cache).");
  if (why != NULL)
    {
      g_autofree char *msg = NULL;
      if (isnan (delta_lp))
        msg = g_strdup (why);
      else
        /* Translators: %s is a sentence, %.3g a number */
        msg = g_strdup_printf (_("%s Δ mean log-probability (B − A) %.3g."), why, delta_lp);
      gtk_label_set_text (self->summary_label, msg);
      gtk_widget_set_sensitive (self->controls_box, FALSE);
      return;
    }
  if (lsc_run_get_attention (self->a) == NULL || lsc_run_get_attention (self->b) == NULL)
    {
      gtk_label_set_text (self->summary_label,
                          _("A run did not capture attention: turn on attention capture and run "
                            "twice to compare the attention."));
      gtk_widget_set_sensitive (self->controls_box, FALSE);
      return;
    }
  gtk_widget_set_sensitive (self->controls_box, TRUE);
  int layer = gtk_spin_button_get_value_as_int (self->layer_spin);
  int head = gtk_spin_button_get_value_as_int (self->head_spin);
  g_autoptr(GError) error = NULL;
  if (!lsc_run_compare (self->a, self->b, layer, head, &self->compare, &error))
    {
      g_autofree char *msg = g_strdup_printf (_("Cannot compare the runs: %s"), error->message);
      gtk_label_set_text (self->summary_label, msg);
      return;
    }
  self->has_compare = TRUE;
  const LscRunCompare *c = &self->compare;
  g_autofree char *msg = g_strdup_printf (
      _("Layer %d, head %d, %d common positions: max |Δp| %.4g at query %d, key %d; "
        "mean |Δp| %.4g; Δ mean log-probability (B − A) %.3g"),
      c->layer, c->head, c->n, c->max_abs, c->max_row, c->max_key, c->mean_abs,
      c->delta_logprob);
  gtk_label_set_text (self->summary_label, msg);
  g_autoptr(GdkTexture) tex = delta_texture (c);
  gtk_picture_set_paintable (self->diff_picture, GDK_PAINTABLE (tex));
}

static void
on_head_changed (LscExperimentsView *self)
{
  if (!self->updating)
    update (self);
}

void
lsc_experiments_view_set_runs (LscExperimentsView *self, LscRun *a, LscRun *b)
{
  g_return_if_fail (LSC_IS_EXPERIMENTS_VIEW (self));
  g_set_object (&self->a, a);
  g_set_object (&self->b, b);
  int nl = 0, nh = 0, nl2 = 0, nh2 = 0;
  if (a != NULL && b != NULL && lsc_run_get_head_stats (a, &nl, &nh) != NULL
      && lsc_run_get_head_stats (b, &nl2, &nh2) != NULL)
    {
      nl = MIN (nl, nl2);
      nh = MIN (nh, nh2);
    }
  else
    nl = nh = 1;
  self->updating = TRUE;
  gtk_spin_button_set_range (self->layer_spin, 0, MAX (nl - 1, 0));
  gtk_spin_button_set_range (self->head_spin, 0, MAX (nh - 1, 0));
  self->updating = FALSE;
  update (self);
}

void
lsc_experiments_view_set_head (LscExperimentsView *self, int layer, int head)
{
  g_return_if_fail (LSC_IS_EXPERIMENTS_VIEW (self));
  self->updating = TRUE;
  gtk_spin_button_set_value (self->layer_spin, layer);
  gtk_spin_button_set_value (self->head_spin, head);
  self->updating = FALSE;
  update (self);
}

void
lsc_experiments_view_get_head (LscExperimentsView *self, int *layer, int *head)
{
  g_return_if_fail (LSC_IS_EXPERIMENTS_VIEW (self));
  if (layer != NULL)
    *layer = gtk_spin_button_get_value_as_int (self->layer_spin);
  if (head != NULL)
    *head = gtk_spin_button_get_value_as_int (self->head_spin);
}

const LscRunCompare *
lsc_experiments_view_get_compare (LscExperimentsView *self)
{
  g_return_val_if_fail (LSC_IS_EXPERIMENTS_VIEW (self), NULL);
  return self->has_compare ? &self->compare : NULL;
}

const char *
lsc_experiments_view_get_summary (LscExperimentsView *self)
{
  g_return_val_if_fail (LSC_IS_EXPERIMENTS_VIEW (self), NULL);
  return gtk_label_get_text (self->summary_label);
}

gboolean
lsc_experiments_view_can_export (LscExperimentsView *self)
{
  g_return_val_if_fail (LSC_IS_EXPERIMENTS_VIEW (self), FALSE);
  return self->has_compare;
}

gboolean
lsc_experiments_view_export (LscExperimentsView *self, const char *path, GError **error)
{
  g_return_val_if_fail (LSC_IS_EXPERIMENTS_VIEW (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  if (!self->has_compare)
    {
      /* Translators: %s is the view's summary, which says why there is no map */
      g_set_error (error, LSC_FIGURE_ERROR, LSC_FIGURE_ERROR_NO_DATA,
                   _("There is no difference map to export. %s"),
                   gtk_label_get_text (self->summary_label));
      return FALSE;
    }
  const LscRunCompare *c = &self->compare;
  LscHeatmapParams hp;
  lsc_heatmap_params_init (&hp);
  /* Translators: the title of an exported difference map */
  g_autofree char *title = g_strdup_printf (_("Layer %d, head %d: attention B − A"), c->layer,
                                            c->head);
  hp.title = title;
  hp.x_label = _("Key position");
  hp.y_label = _("Query position");
  hp.colorbar_label = _("Δp (B − A)");
  /* as the view draws it: RdBu_r, white at 0, symmetric at the largest |Δp| */
  double m = c->max_abs > 0 ? c->max_abs : 1.0;
  hp.colormap = LSC_COLORMAP_RDBU_R;
  hp.scale.kind = LSC_SCALE_LINEAR;
  hp.scale.diverging = TRUE;
  hp.scale.vmin = -m;
  hp.scale.vmax = m;
  hp.row_offset = c->row0;
  hp.col_offset = c->row0;
  g_autoptr(LscFigure) fig = lsc_figure_new_heatmap (c->delta, c->n, c->n, &hp, error);
  if (fig == NULL)
    return FALSE;
  LscFigureOutput out;
  lsc_figure_output_init (&out);
  return lsc_figure_save (fig, path, &out, error);
}

static void
lsc_experiments_view_get_property (GObject *object, guint prop_id, GValue *value,
                                   GParamSpec *pspec)
{
  switch (prop_id)
    {
    case PROP_CAN_EXPORT:
      g_value_set_boolean (value, lsc_experiments_view_can_export (LSC_EXPERIMENTS_VIEW (object)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
lsc_experiments_view_dispose (GObject *object)
{
  LscExperimentsView *self = LSC_EXPERIMENTS_VIEW (object);
  if (self->has_compare)
    lsc_run_compare_clear (&self->compare);
  self->has_compare = FALSE;
  gtk_widget_dispose_template (GTK_WIDGET (self), LSC_TYPE_EXPERIMENTS_VIEW);
  g_clear_object (&self->a);
  g_clear_object (&self->b);
  G_OBJECT_CLASS (lsc_experiments_view_parent_class)->dispose (object);
}

static void
lsc_experiments_view_class_init (LscExperimentsViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = lsc_experiments_view_dispose;
  object_class->get_property = lsc_experiments_view_get_property;

  properties[PROP_CAN_EXPORT] = g_param_spec_boolean ("can-export", NULL, NULL, FALSE,
                                                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
  gtk_widget_class_set_template_from_resource (widget_class,
      "/io/github/longscope/Longscope/lsc-experiments-view.ui");
  gtk_widget_class_bind_template_child (widget_class, LscExperimentsView, scroller);
  gtk_widget_class_bind_template_child (widget_class, LscExperimentsView, summary_label);
  gtk_widget_class_bind_template_child (widget_class, LscExperimentsView, controls_box);
  gtk_widget_class_bind_template_child (widget_class, LscExperimentsView, layer_spin);
  gtk_widget_class_bind_template_child (widget_class, LscExperimentsView, head_spin);
  gtk_widget_class_bind_template_child (widget_class, LscExperimentsView, diff_picture);
  gtk_widget_class_bind_template_child (widget_class, LscExperimentsView, text_a_label);
  gtk_widget_class_bind_template_child (widget_class, LscExperimentsView, text_b_label);
  gtk_widget_class_bind_template_callback (widget_class, on_head_changed);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
lsc_experiments_view_init (LscExperimentsView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  update (self);
}
