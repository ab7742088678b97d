/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "lsc-kv-controls.h"

#define BIT(kind) (1u << (kind))

/* The integer parameters, in the template's order, and which policies take
 * each (as a batch job's "kv" section names them). */
enum { P_SINK, P_HEAVY, P_RECENT, P_CAPACITY, P_WINDOW, P_KERNEL, P_BETA, P_SPAN, P_OVERLAP,
       P_GLOBAL, P_LOCAL, N_PARAMS };

static const struct {
  const char *name;        /* the template's NAME_label and NAME_spin */
  gsize offset;            /* of an int in LscKvPolicy */
  guint policies;
  double step;
} params[N_PARAMS] = {
  [P_SINK] = { "sink", G_STRUCT_OFFSET (LscKvPolicy, n_sink),
               BIT (LSC_KV_STREAMING_LLM) | BIT (LSC_KV_LACACHE), 1 },
  [P_HEAVY] = { "heavy", G_STRUCT_OFFSET (LscKvPolicy, n_heavy), BIT (LSC_KV_H2O), 1 },
  [P_RECENT] = { "recent", G_STRUCT_OFFSET (LscKvPolicy, n_recent),
                 BIT (LSC_KV_STREAMING_LLM) | BIT (LSC_KV_H2O) | BIT (LSC_KV_THINK), 1 },
  [P_CAPACITY] = { "capacity", G_STRUCT_OFFSET (LscKvPolicy, capacity),
                   BIT (LSC_KV_SNAPKV) | BIT (LSC_KV_PYRAMIDKV) | BIT (LSC_KV_LACACHE), 1 },
  [P_WINDOW] = { "window", G_STRUCT_OFFSET (LscKvPolicy, window),
                 BIT (LSC_KV_SNAPKV) | BIT (LSC_KV_PYRAMIDKV), 1 },
  [P_KERNEL] = { "kernel", G_STRUCT_OFFSET (LscKvPolicy, kernel),
                 BIT (LSC_KV_SNAPKV) | BIT (LSC_KV_PYRAMIDKV), 2 },
  [P_BETA] = { "beta", G_STRUCT_OFFSET (LscKvPolicy, beta), BIT (LSC_KV_PYRAMIDKV), 1 },
  [P_SPAN] = { "span", G_STRUCT_OFFSET (LscKvPolicy, span), BIT (LSC_KV_LACACHE), 1 },
  [P_OVERLAP] = { "overlap", G_STRUCT_OFFSET (LscKvPolicy, overlap), BIT (LSC_KV_LACACHE), 1 },
  [P_GLOBAL] = { "global", G_STRUCT_OFFSET (LscKvPolicy, n_global), BIT (LSC_KV_LM_INFINITE), 1 },
  [P_LOCAL] = { "local", G_STRUCT_OFFSET (LscKvPolicy, n_local), BIT (LSC_KV_LM_INFINITE), 1 },
};

/* and the two that are not integers */
#define POOLING_POLICIES (BIT (LSC_KV_SNAPKV) | BIT (LSC_KV_PYRAMIDKV))
#define RATIO_POLICIES BIT (LSC_KV_THINK)

/* The policy drop-down's items, in order. */
static const LscKvPolicyKind kind_of_item[] = {
  LSC_KV_FULL, LSC_KV_STREAMING_LLM, LSC_KV_H2O, LSC_KV_SNAPKV, LSC_KV_PYRAMIDKV, LSC_KV_LACACHE,
  LSC_KV_LM_INFINITE, LSC_KV_THINK,
};

/* Values far beyond any cache, below the engine's own limit for a job. */
#define MAX_VALUE (1 << 24)

struct _LscKvControls
{
  GtkWidget parent_instance;

  /* template children */
  GtkWidget *box;             /* the one child: unparented in dispose */
  GtkDropDown *policy_drop;
  GtkWidget *labels[N_PARAMS];
  GtkSpinButton *spins[N_PARAMS];
  GtkWidget *pooling_label;
  GtkDropDown *pooling_drop;
  GtkWidget *ratio_label;
  GtkSpinButton *ratio_spin;
  GtkWidget *chunk_label;
  GtkSpinButton *chunk_spin;
  GtkCheckButton *compare_check;
  GtkLabel *note_label;

  /* state */
  gboolean setting;   /* values set by code: one "changed" at the end */
};

G_DEFINE_FINAL_TYPE (LscKvControls, lsc_kv_controls, GTK_TYPE_WIDGET)

enum { CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

static LscKvPolicyKind
shown_kind (LscKvControls *self)
{
  guint i = gtk_drop_down_get_selected (self->policy_drop);
  return i < G_N_ELEMENTS (kind_of_item) ? kind_of_item[i] : LSC_KV_FULL;
}

static void
emit_changed (LscKvControls *self)
{
  if (!self->setting)
    g_signal_emit (self, signals[CHANGED], 0);
}

/* The rows that apply to the shown policy. */
static void
update_visible (LscKvControls *self)
{
  LscKvPolicyKind kind = shown_kind (self);
  for (int i = 0; i < N_PARAMS; i++)
    {
      gboolean applies = (params[i].policies & BIT (kind)) != 0;
      gtk_widget_set_visible (self->labels[i], applies);
      gtk_widget_set_visible (GTK_WIDGET (self->spins[i]), applies);
    }
  gboolean pooling = (POOLING_POLICIES & BIT (kind)) != 0;
  gtk_widget_set_visible (self->pooling_label, pooling);
  gtk_widget_set_visible (GTK_WIDGET (self->pooling_drop), pooling);
  gboolean ratio = (RATIO_POLICIES & BIT (kind)) != 0;
  gtk_widget_set_visible (self->ratio_label, ratio);
  gtk_widget_set_visible (GTK_WIDGET (self->ratio_spin), ratio);
  gboolean policy = kind != LSC_KV_FULL;
  gtk_widget_set_visible (self->chunk_label, policy);
  gtk_widget_set_visible (GTK_WIDGET (self->chunk_spin), policy);
  gtk_widget_set_visible (GTK_WIDGET (self->compare_check), policy);
  gtk_widget_set_visible (GTK_WIDGET (self->note_label), policy);
}

/* The parameters of policy in the controls (the kind is the drop-down's). */
static void
show_values (LscKvControls *self, const LscKvPolicy *policy)
{
  gboolean setting = self->setting;
  self->setting = TRUE;
  for (int i = 0; i < N_PARAMS; i++)
    gtk_spin_button_set_value (self->spins[i], G_STRUCT_MEMBER (int, policy, params[i].offset));
  gtk_drop_down_set_selected (self->pooling_drop, policy->pooling == LSC_KV_POOL_MAX ? 1 : 0);
  gtk_spin_button_set_value (self->ratio_spin, policy->ratio);
  self->setting = setting;
}

/* A policy chosen: its reference defaults. */
static void
on_policy_selected (LscKvControls *self)
{
  LscKvPolicy defaults;
  lsc_kv_policy_init (&defaults, shown_kind (self));
  show_values (self, &defaults);
  update_visible (self);
  emit_changed (self);
}

static void
on_value_changed (LscKvControls *self)
{
  emit_changed (self);
}

GtkWidget *
lsc_kv_controls_new (void)
{
  return g_object_new (LSC_TYPE_KV_CONTROLS, NULL);
}

void
lsc_kv_controls_get_policy (LscKvControls *self, LscKvPolicy *policy)
{
  g_return_if_fail (LSC_IS_KV_CONTROLS (self));
  g_return_if_fail (policy != NULL);
  LscKvPolicyKind kind = shown_kind (self);
  /* the policy's own parameters; the others keep their defaults, as a job
   * that names only the policy's keys gives them */
  lsc_kv_policy_init (policy, kind);
  for (int i = 0; i < N_PARAMS; i++)
    if (params[i].policies & BIT (kind))
      G_STRUCT_MEMBER (int, policy, params[i].offset) =
          gtk_spin_button_get_value_as_int (self->spins[i]);
  if (POOLING_POLICIES & BIT (kind))
    policy->pooling = gtk_drop_down_get_selected (self->pooling_drop) == 1 ? LSC_KV_POOL_MAX
                                                                           : LSC_KV_POOL_AVG;
  if (RATIO_POLICIES & BIT (kind))
    policy->ratio = gtk_spin_button_get_value (self->ratio_spin);
}

void
lsc_kv_controls_set_policy (LscKvControls *self, const LscKvPolicy *policy)
{
  g_return_if_fail (LSC_IS_KV_CONTROLS (self));
  g_return_if_fail (policy != NULL);
  self->setting = TRUE;
  for (guint i = 0; i < G_N_ELEMENTS (kind_of_item); i++)
    if (kind_of_item[i] == policy->kind)
      gtk_drop_down_set_selected (self->policy_drop, i);
  show_values (self, policy);
  update_visible (self);
  self->setting = FALSE;
  emit_changed (self);
}

int
lsc_kv_controls_get_chunk (LscKvControls *self)
{
  g_return_val_if_fail (LSC_IS_KV_CONTROLS (self), 0);
  return gtk_spin_button_get_value_as_int (self->chunk_spin);
}

void
lsc_kv_controls_set_chunk (LscKvControls *self, int chunk)
{
  g_return_if_fail (LSC_IS_KV_CONTROLS (self));
  gtk_spin_button_set_value (self->chunk_spin, chunk);
}

gboolean
lsc_kv_controls_get_compare (LscKvControls *self)
{
  g_return_val_if_fail (LSC_IS_KV_CONTROLS (self), FALSE);
  return gtk_check_button_get_active (self->compare_check);
}

void
lsc_kv_controls_set_compare (LscKvControls *self, gboolean compare)
{
  g_return_if_fail (LSC_IS_KV_CONTROLS (self));
  gtk_check_button_set_active (self->compare_check, compare);
}

char *
lsc_kv_controls_dup_problem (LscKvControls *self)
{
  g_return_val_if_fail (LSC_IS_KV_CONTROLS (self), NULL);
  LscKvPolicy policy;
  lsc_kv_controls_get_policy (self, &policy);
  return lsc_kv_policy_check (&policy);
}

static void
lsc_kv_controls_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), LSC_TYPE_KV_CONTROLS);
  G_OBJECT_CLASS (lsc_kv_controls_parent_class)->dispose (object);
}

static void
lsc_kv_controls_class_init (LscKvControlsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = lsc_kv_controls_dispose;

  /* a control changed: the next run's policy, chunk or comparison */
  signals[CHANGED] = g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                   NULL, NULL, NULL, G_TYPE_NONE, 0);

  gtk_widget_class_set_template_from_resource (widget_class,
      "/io/github/longscope/Longscope/lsc-kv-controls.ui");
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, box);
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, policy_drop);
  for (int i = 0; i < N_PARAMS; i++)
    {
      g_autofree char *label = g_strconcat (params[i].name, "_label", NULL);
      g_autofree char *spin = g_strconcat (params[i].name, "_spin", NULL);
      gtk_widget_class_bind_template_child_full (widget_class, label, FALSE,
          G_STRUCT_OFFSET (LscKvControls, labels) + i * sizeof (GtkWidget *));
      gtk_widget_class_bind_template_child_full (widget_class, spin, FALSE,
          G_STRUCT_OFFSET (LscKvControls, spins) + i * sizeof (GtkSpinButton *));
    }
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, pooling_label);
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, pooling_drop);
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, ratio_label);
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, ratio_spin);
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, chunk_label);
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, chunk_spin);
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, compare_check);
  gtk_widget_class_bind_template_child (widget_class, LscKvControls, note_label);
  gtk_widget_class_bind_template_callback (widget_class, on_policy_selected);
  gtk_widget_class_bind_template_callback (widget_class, on_value_changed);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
lsc_kv_controls_init (LscKvControls *self)
{
  self->setting = TRUE;
  gtk_widget_init_template (GTK_WIDGET (self));
  /* values the engine refuses stay settable: the window shows its reason */
  for (int i = 0; i < N_PARAMS; i++)
    {
      gtk_spin_button_set_range (self->spins[i], 0, MAX_VALUE);
      gtk_spin_button_set_increments (self->spins[i], params[i].step, 16);
    }
  /* 1 stays settable, as every value the engine refuses */
  gtk_spin_button_set_range (self->ratio_spin, 0, 1);
  gtk_spin_button_set_increments (self->ratio_spin, 0.05, 0.1);
  gtk_spin_button_set_range (self->chunk_spin, 0, MAX_VALUE);
  gtk_spin_button_set_increments (self->chunk_spin, 1, 16);
  LscKvPolicy full;
  lsc_kv_policy_init (&full, LSC_KV_FULL);
  show_values (self, &full);
  update_visible (self);
  self->setting = FALSE;
}
