/* SPDX-License-Identifier: MIT
 *
 * Selective Attention (Zhang et al., NeurIPS 2024, arXiv 2411.12892): the
 * position-aware temperature of the released code, training-free with a
 * fixed slope. The logits of query position i (n = i + 1 keys visible
 * causally) are multiplied by
 *
 *   position:  1 + alpha * ln n          (umich-sota/selective_attention)
 *   log-n:     max (1, ln n / ln L)      (log-n scaling, identity inside L)
 *
 * in layers first_layer .. last_layer, every head, before the mask and the
 * softmax: the engine folds it into 1/sqrt(head_dim). alpha = 0 is the
 * model itself. See methods.md section 5.
 */
#include "config.h"

#include <glib/gi18n-lib.h>
#include <math.h>

#include "lsc-plugin.h"

enum { P_ALPHA, P_FORM, P_TRAIN_LENGTH, P_FIRST_LAYER, P_LAST_LAYER, N_PARAMS };
enum { FORM_POSITION, FORM_LOG_N };

static const char *const form_ids[] = { "position", "log-n", NULL };
static const char *const form_labels[] = {
  N_("1 + α ln n (position temperature)"),
  N_("max(1, ln n / ln L) (log-n scaling)"),
  NULL,
};

static const LscPluginParam params[N_PARAMS] = {
  [P_ALPHA] = {
    .name = "alpha", .label = N_("Slope α"),
    .description = N_("Logits of query position n are multiplied by 1 + α ln n; 0 leaves the "
                      "model as it is. The paper's fitted values run from 0.01 (early layers) "
                      "to about 0.2 (middle layers)."),
    .type = LSC_PLUGIN_PARAM_NUMBER, .min = 0, .max = 10, .step = 0.01, .digits = 3,
    .default_value = 0.1,
  },
  [P_FORM] = {
    .name = "form", .label = N_("Temperature"),
    .description = N_("The paper's position temperature, or log-n scaling, which leaves "
                      "positions inside the training length L as they are."),
    .type = LSC_PLUGIN_PARAM_CHOICE, .choices = form_ids, .choice_labels = form_labels,
    .default_value = FORM_POSITION,
  },
  [P_TRAIN_LENGTH] = {
    .name = "train_length", .label = N_("Training length L"),
    .description = N_("For log-n scaling: the context length the model was trained on; 0 "
                      "takes the model's own (max_position_embeddings)."),
    .type = LSC_PLUGIN_PARAM_INT, .min = 0, .max = 1 << 24, .step = 1024, .default_value = 0,
  },
  [P_FIRST_LAYER] = {
    .name = "first_layer", .label = N_("First layer"),
    .description = N_("The first layer whose logits are scaled."),
    .type = LSC_PLUGIN_PARAM_INT, .min = 0, .max = 4095, .step = 1, .default_value = 0,
  },
  [P_LAST_LAYER] = {
    .name = "last_layer", .label = N_("Last layer"),
    .description = N_("The last layer whose logits are scaled; −1 is the model's last."),
    .type = LSC_PLUGIN_PARAM_INT, .min = -1, .max = 4095, .step = 1, .default_value = -1,
  },
};

typedef struct {
  int form;
  double alpha;
  double ln_train;     /* ln L, log-n form */
  int first, last;     /* layers, inclusive */
} Instance;

static gpointer
instance_new (const double *values, const LscModelConfig *config, GError **error)
{
  int first = (int) values[P_FIRST_LAYER];
  int last = values[P_LAST_LAYER] < 0 ? config->n_layers - 1 : (int) values[P_LAST_LAYER];
  if (first >= config->n_layers || last >= config->n_layers || first > last)
    {
      g_set_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_VALUE,
                   "first_layer %d .. last_layer %d: the model has layers 0 .. %d", first,
                   (int) values[P_LAST_LAYER], config->n_layers - 1);
      return NULL;
    }
  int form = (int) values[P_FORM];
  int train = values[P_TRAIN_LENGTH] > 0 ? (int) values[P_TRAIN_LENGTH] : config->max_position;
  if (form == FORM_LOG_N && train < 2)
    {
      g_set_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_VALUE,
                   "train_length: log-n scaling needs a training length of 2 or more, and "
                   "the model declares none (set train_length)");
      return NULL;
    }
  Instance *in = g_new0 (Instance, 1);
  in->form = form;
  in->alpha = values[P_ALPHA];
  in->ln_train = form == FORM_LOG_N ? log (train) : 0;
  in->first = first;
  in->last = last;
  return in;
}

static float
scale (gpointer data, int layer, int head, int pos)
{
  const Instance *in = data;
  if (layer < in->first || layer > in->last)
    return 1.0f;
  double ln_n = log ((double) pos + 1.0);
  if (in->form == FORM_LOG_N)
    return (float) fmax (1.0, ln_n / in->ln_train);
  return (float) (1.0 + in->alpha * ln_n);
}

static void
attention_hooks (gpointer instance, LscAttentionHooks *hooks)
{
  hooks->scale = scale;
  hooks->data = instance;
}

static const LscPluginInfo info = {
  .api_version = LSC_PLUGIN_API_VERSION,
  .id = "selective-attention",
  .name = N_("Selective Attention"),
  .description = N_("Temperature-scaled attention (Zhang et al., NeurIPS 2024): the logits of "
                    "later queries are sharpened by a factor that grows with ln n."),
  .gettext_domain = GETTEXT_PACKAGE,
  .params = params,
  .n_params = N_PARAMS,
  .instance_new = instance_new,
  .instance_free = g_free,
  .attention_hooks = attention_hooks,
};

G_MODULE_EXPORT const LscPluginInfo *lsc_plugin_get_info (void);

G_MODULE_EXPORT const LscPluginInfo *
lsc_plugin_get_info (void)
{
  return &info;
}
