/* SPDX-License-Identifier: MIT
 *
 * lsc-plugin.h: experiments as plugins. A plugin is a folder of two files:
 * a descriptor (a key file) and a shared module built against this header
 * only:
 *
 *   selective-attention.plugin       [Longscope Plugin]
 *                                    Id=selective-attention
 *                                    Module=selective-attention
 *   libselective-attention.so        exports lsc_plugin_get_info ()
 *
 * The module describes itself in an LscPluginInfo: its typed parameters
 * (the GUI builds its controls from them, batch jobs name them as keys)
 * and its hooks into a run. Every parameter value is a double: numbers as
 * they are, integers integral, booleans 0 or 1, choices the index of the
 * choice. A run holds an LscPluginStack: the enabled plugins with their
 * values, made into instances for one model, whose hooks the stack joins
 * (logit scales multiply, masks add up).
 *
 * Plugins are found, first id wins, in the folders of LSC_PLUGIN_PATH
 * (colon-separated), the installed plugin folder and, for a Longscope run
 * from its build tree, the build's plugins/ folder: each folder's *.plugin
 * files and those of its subfolders.
 *
 * Example (a job's "plugins": [{"id": "selective-attention", "alpha": 0.2}]):
 *
 *   g_autoptr(LscPluginStack) stack = lsc_plugin_stack_new ();
 *   if (!lsc_plugin_stack_parse_json (stack, plugins_json, "job.json", "$.plugins", &error)
 *       || !lsc_plugin_stack_instantiate (stack, lsc_model_get_config (model), &error))
 *     return FALSE;
 *   lsc_plugin_stack_get_hooks (stack, &session_params.hooks);
 */
#pragma once

#include <glib.h>
#include <gmodule.h>
#include <json-c/json.h>

#include "lsc-attention.h"
#include "lsc-model.h"

G_BEGIN_DECLS

#define LSC_PLUGIN_API_VERSION 1
#define LSC_PLUGIN_MAX_PARAMS 16

/* A macro, not a function: plugin modules use it and link no engine code. */
#define LSC_PLUGIN_ERROR (g_quark_from_static_string ("lsc-plugin-error-quark"))

typedef enum {
  LSC_PLUGIN_ERROR_NOT_FOUND,    /* no plugin of that id */
  LSC_PLUGIN_ERROR_DESCRIPTOR,   /* the .plugin file is unreadable or lacks a key */
  LSC_PLUGIN_ERROR_MODULE,       /* the module does not load or lacks lsc_plugin_get_info */
  LSC_PLUGIN_ERROR_INVALID,      /* the module's description is inconsistent or of another API */
  LSC_PLUGIN_ERROR_VALUE,        /* instance_new: values that do not fit the model */
} LscPluginError;

typedef enum {
  LSC_PLUGIN_PARAM_NUMBER,
  LSC_PLUGIN_PARAM_INT,
  LSC_PLUGIN_PARAM_BOOL,
  LSC_PLUGIN_PARAM_CHOICE,
} LscPluginParamType;

typedef struct {
  const char *name;          /* the key in jobs and results: "alpha" */
  const char *label;         /* for the GUI, marked N_() in the plugin's gettext domain */
  const char *description;   /* a tooltip; may be NULL */
  LscPluginParamType type;
  double min, max;           /* NUMBER and INT (inclusive) */
  double step;               /* NUMBER and INT: a spin button's step */
  int digits;                /* NUMBER: decimals shown */
  double default_value;
  const char *const *choices;   /* CHOICE: NULL-terminated ids, written in jobs */
  const char *const *choice_labels;   /* CHOICE: the same count of N_() labels */
} LscPluginParam;

typedef struct {
  int api_version;           /* LSC_PLUGIN_API_VERSION */
  const char *id;            /* as in the descriptor */
  const char *name;          /* N_() */
  const char *description;   /* N_(); one or two sentences */
  const char *gettext_domain;   /* where the N_() strings are translated */
  const LscPluginParam *params;
  int n_params;              /* at most LSC_PLUGIN_MAX_PARAMS */

  /* One run's state from checked values (values[i] for params[i]) on a
   * model of `config`; NULL with an error (LSC_PLUGIN_ERROR_VALUE naming
   * the parameter) when the values do not fit the model. */
  gpointer (*instance_new) (const double *values, const LscModelConfig *config, GError **error);
  void (*instance_free) (gpointer instance);
  /* Sets the attention hooks the instance needs (leaving the others NULL),
   * with hooks->data = instance. NULL when the plugin has none. */
  void (*attention_hooks) (gpointer instance, LscAttentionHooks *hooks);
} LscPluginInfo;

/* What a plugin module exports. */
typedef const LscPluginInfo *(*LscPluginGetInfoFunc) (void);
#define LSC_PLUGIN_GET_INFO_SYMBOL "lsc_plugin_get_info"

/* Loads the plugin of one descriptor (tests and tools; the registry below
 * calls it for every descriptor it finds). The module stays loaded. */
const LscPluginInfo *lsc_plugin_load (const char *descriptor_path, GError **error);

/* The plugins found (loaded once, on first use, thread-safe), sorted by id.
 * Descriptors that fail to load are skipped; their errors, one line each,
 * are in lsc_plugin_get_load_problems (). */
const LscPluginInfo *const *lsc_plugin_list (int *n_plugins);
const char *const *lsc_plugin_get_load_problems (void);
/* The plugin of `id`, or NULL with LSC_PLUGIN_ERROR_NOT_FOUND listing those there are. */
const LscPluginInfo *lsc_plugin_find (const char *id, GError **error);

/* params' defaults into values. */
void lsc_plugin_get_defaults (const LscPluginInfo *info, double *values);
/* The JSON form of one value: a number, an integer, a boolean or a choice id. */
json_object *lsc_plugin_value_to_json (const LscPluginParam *param, double value);
/* "[0, 10]": a NUMBER or INT parameter's bounds as jobs write them, whatever the locale. */
char *lsc_plugin_param_dup_range (const LscPluginParam *param);
/* FALSE with LSC_JOB_ERROR_INVALID "FILE: PATH: expected ..., found ..." when
 * `v` is not a value of `param` (wrong type, out of range, unknown choice). */
gboolean lsc_plugin_value_from_json (const LscPluginParam *param, json_object *v, double *value,
                                     const char *file, const char *path, GError **error);

typedef struct _LscPluginStack LscPluginStack;

LscPluginStack *lsc_plugin_stack_new (void);
void lsc_plugin_stack_free (LscPluginStack *stack);
/* The plugins and their values, without instances. */
LscPluginStack *lsc_plugin_stack_copy (const LscPluginStack *stack);
/* Appends a plugin with its values (copied; checked against the ranges). */
gboolean lsc_plugin_stack_add (LscPluginStack *stack, const LscPluginInfo *info,
                               const double *values, GError **error);
int lsc_plugin_stack_get_size (const LscPluginStack *stack);
const LscPluginInfo *lsc_plugin_stack_get (const LscPluginStack *stack, int i,
                                           const double **values);
/* Reads a JSON array of {"id": ID, PARAM: VALUE, ...} (parameters left out
 * take their defaults), as in a job's "plugins", appending each entry.
 * Errors name file and path: "job.json: $.plugins[0].alpha: expected a
 * number in [0, 10], found -1". */
gboolean lsc_plugin_stack_parse_json (LscPluginStack *stack, json_object *array,
                                      const char *file, const char *path, GError **error);
/* The same array, every parameter written. */
json_object *lsc_plugin_stack_to_json (const LscPluginStack *stack);
/* Makes every plugin's instance for `config` (again, after an earlier call). */
gboolean lsc_plugin_stack_instantiate (LscPluginStack *stack, const LscModelConfig *config,
                                       GError **error);
/* The joined attention hooks of the instances (all NULL without any): valid
 * while the stack lives and is not instantiated again. */
void lsc_plugin_stack_get_hooks (LscPluginStack *stack, LscAttentionHooks *hooks);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscPluginStack, lsc_plugin_stack_free)

G_END_DECLS
