/* SPDX-License-Identifier: MIT
 *
 * Plugins: finding and loading their modules, checking their parameter
 * values, and joining the hooks of the enabled ones (lsc-plugin.h).
 */
#include "config.h"

#include <gmodule.h>
#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-json.h"
#include "lsc-plugin.h"

#define DESCRIPTOR_GROUP "Longscope Plugin"

/* ---- loading ---- */

/* Every inconsistency a GUI or job would trip over later, found now. */
static gboolean
check_info (const LscPluginInfo *info, const char *id, const char *module_path, GError **error)
{
  const char *why = NULL;
  g_autofree char *detail = NULL;

  if (info->api_version != LSC_PLUGIN_API_VERSION)
    detail = g_strdup_printf ("plugin API version %d, this Longscope has %d", info->api_version,
                              LSC_PLUGIN_API_VERSION);
  else if (info->id == NULL || strcmp (info->id, id) != 0)
    detail = g_strdup_printf ("its id is \"%s\", the descriptor says \"%s\"",
                              info->id ? info->id : "(null)", id);
  else if (info->name == NULL || info->instance_new == NULL || info->instance_free == NULL)
    why = "name, instance_new or instance_free is missing";
  else if (info->n_params < 0 || info->n_params > LSC_PLUGIN_MAX_PARAMS
           || (info->n_params > 0 && info->params == NULL))
    detail = g_strdup_printf ("%d parameters (at most %d)", info->n_params, LSC_PLUGIN_MAX_PARAMS);
  for (int i = 0; why == NULL && detail == NULL && i < info->n_params; i++)
    {
      const LscPluginParam *p = &info->params[i];
      gboolean ok = p->name != NULL && p->label != NULL && strcmp (p->name, "id") != 0;
      for (int j = 0; ok && j < i; j++)
        ok = strcmp (info->params[j].name, p->name) != 0;
      int n_choices = 0;
      switch (p->type)
        {
        case LSC_PLUGIN_PARAM_NUMBER:
        case LSC_PLUGIN_PARAM_INT:
          ok = ok && p->min <= p->default_value && p->default_value <= p->max;
          break;
        case LSC_PLUGIN_PARAM_BOOL:
          ok = ok && (p->default_value == 0 || p->default_value == 1);
          break;
        case LSC_PLUGIN_PARAM_CHOICE:
          while (ok && p->choices != NULL && p->choices[n_choices] != NULL)
            ok = p->choice_labels != NULL && p->choice_labels[n_choices++] != NULL;
          ok = ok && n_choices > 0 && p->default_value >= 0 && p->default_value < n_choices
               && p->default_value == floor (p->default_value);
          break;
        default:
          ok = FALSE;
        }
      if (!ok)
        detail = g_strdup_printf ("parameter %d (%s) is ill-declared (name, label, type, "
                                  "choices or a default outside its range)",
                                  i, p->name ? p->name : "(null)");
    }
  if (why == NULL && detail == NULL)
    return TRUE;
  g_set_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_INVALID, "%s: %s", module_path,
               why ? why : detail);
  return FALSE;
}

const LscPluginInfo *
lsc_plugin_load (const char *descriptor_path, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) local = NULL;

  if (!g_key_file_load_from_file (kf, descriptor_path, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_DESCRIPTOR, "%s: %s",
                   descriptor_path, local->message);
      return NULL;
    }
  g_autofree char *id = g_key_file_get_string (kf, DESCRIPTOR_GROUP, "Id", NULL);
  g_autofree char *module = g_key_file_get_string (kf, DESCRIPTOR_GROUP, "Module", NULL);
  if (id == NULL || *id == '\0' || module == NULL || *module == '\0' || strchr (module, '/'))
    {
      g_set_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_DESCRIPTOR,
                   "%s: [%s] needs Id and Module (a file name, no folder)", descriptor_path,
                   DESCRIPTOR_GROUP);
      return NULL;
    }

  g_autofree char *dir = g_path_get_dirname (descriptor_path);
  g_autofree char *file = g_strdup_printf ("lib%s.%s", module, G_MODULE_SUFFIX);
  g_autofree char *module_path = g_build_filename (dir, file, NULL);
  /* local: one plugin's symbols do not resolve another's */
  GModule *handle = g_module_open (module_path, G_MODULE_BIND_LOCAL);
  if (handle == NULL)
    {
      g_set_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_MODULE, "%s: Module: %s",
                   descriptor_path, g_module_error ());
      return NULL;
    }
  LscPluginGetInfoFunc get_info = NULL;
  const LscPluginInfo *info = NULL;
  if (!g_module_symbol (handle, LSC_PLUGIN_GET_INFO_SYMBOL, (gpointer *) &get_info)
      || get_info == NULL || (info = get_info ()) == NULL)
    {
      g_set_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_MODULE,
                   "%s: exports no %s () or it returns NULL", module_path,
                   LSC_PLUGIN_GET_INFO_SYMBOL);
      g_module_close (handle);
      return NULL;
    }
  if (!check_info (info, id, module_path, error))
    {
      g_module_close (handle);
      return NULL;
    }
  /* plugins stay loaded for the life of the process */
  g_module_make_resident (handle);
  return info;
}

typedef struct {
  GPtrArray *plugins;    /* (element-type LscPluginInfo) sorted by id, NULL-terminated */
  GPtrArray *problems;   /* (element-type utf8) NULL-terminated */
} Registry;

static void
add_descriptor (Registry *r, const char *path)
{
  g_autoptr(GError) error = NULL;
  const LscPluginInfo *info = lsc_plugin_load (path, &error);
  if (info == NULL)
    {
      g_ptr_array_add (r->problems, g_strdup (error->message));
      return;
    }
  for (guint i = 0; i < r->plugins->len; i++)
    if (strcmp (((const LscPluginInfo *) r->plugins->pdata[i])->id, info->id) == 0)
      return;   /* an earlier folder has it */
  g_ptr_array_add (r->plugins, (gpointer) info);
}

static int
compare_name (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* dir's *.plugin files, then those of its subfolders, in name order. */
static void
scan_dir (Registry *r, const char *dir, int depth)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  if (d == NULL)
    return;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (d)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_name);
  for (int pass = 0; pass < 2; pass++)
    for (guint i = 0; i < names->len; i++)
      {
        g_autofree char *path = g_build_filename (dir, names->pdata[i], NULL);
        if (pass == 0 && g_str_has_suffix (names->pdata[i], ".plugin"))
          add_descriptor (r, path);
        else if (pass == 1 && depth == 0 && g_file_test (path, G_FILE_TEST_IS_DIR))
          scan_dir (r, path, 1);
      }
}

static int
compare_id (gconstpointer a, gconstpointer b)
{
  return strcmp ((*(const LscPluginInfo *const *) a)->id, (*(const LscPluginInfo *const *) b)->id);
}

static gpointer
registry_load (gpointer data)
{
  Registry *r = g_new0 (Registry, 1);
  r->plugins = g_ptr_array_new ();
  r->problems = g_ptr_array_new_with_free_func (g_free);

  const char *env = g_getenv ("LSC_PLUGIN_PATH");
  if (env != NULL)
    {
      g_auto(GStrv) dirs = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
      for (char **d = dirs; *d != NULL; d++)
        if (**d != '\0')
          scan_dir (r, *d, 0);
    }
  scan_dir (r, LSC_PLUGIN_DIR, 0);
#ifdef LSC_BUILD_PLUGIN_DIR
  scan_dir (r, LSC_BUILD_PLUGIN_DIR, 0);
#endif
  g_ptr_array_sort (r->plugins, compare_id);
  g_ptr_array_add (r->plugins, NULL);
  g_ptr_array_add (r->problems, NULL);
  return r;
}

static Registry *
registry (void)
{
  static GOnce once = G_ONCE_INIT;
  return g_once (&once, registry_load, NULL);
}

const LscPluginInfo *const *
lsc_plugin_list (int *n_plugins)
{
  Registry *r = registry ();
  if (n_plugins != NULL)
    *n_plugins = (int) r->plugins->len - 1;
  return (const LscPluginInfo *const *) r->plugins->pdata;
}

const char *const *
lsc_plugin_get_load_problems (void)
{
  return (const char *const *) registry ()->problems->pdata;
}

const LscPluginInfo *
lsc_plugin_find (const char *id, GError **error)
{
  int n;
  const LscPluginInfo *const *list = lsc_plugin_list (&n);
  for (int i = 0; i < n; i++)
    if (strcmp (list[i]->id, id) == 0)
      return list[i];
  g_autoptr(GString) ids = g_string_new (NULL);
  for (int i = 0; i < n; i++)
    g_string_append_printf (ids, "%s%s", i ? ", " : "", list[i]->id);
  g_set_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_NOT_FOUND,
               "no plugin \"%s\" (found: %s)", id, n > 0 ? ids->str : "none");
  return NULL;
}

/* ---- values ---- */

void
lsc_plugin_get_defaults (const LscPluginInfo *info, double *values)
{
  for (int i = 0; i < info->n_params; i++)
    values[i] = info->params[i].default_value;
}

json_object *
lsc_plugin_value_to_json (const LscPluginParam *param, double value)
{
  switch (param->type)
    {
    case LSC_PLUGIN_PARAM_INT:
      return json_object_new_int64 ((gint64) value);
    case LSC_PLUGIN_PARAM_BOOL:
      return json_object_new_boolean (value != 0);
    case LSC_PLUGIN_PARAM_CHOICE:
      return json_object_new_string (param->choices[(int) value]);
    case LSC_PLUGIN_PARAM_NUMBER:
    default:
      /* values are finite: they passed value_ok */
      return lsc_json_double_short (value);
    }
}

char *
lsc_plugin_param_dup_range (const LscPluginParam *param)
{
  g_autoptr(json_object) lo = lsc_plugin_value_to_json (param, param->min);
  g_autoptr(json_object) hi = lsc_plugin_value_to_json (param, param->max);
  return g_strdup_printf ("[%s, %s]", json_object_to_json_string (lo),
                          json_object_to_json_string (hi));
}

/* "a number in [0, 10]" */
static char *
range_text (const char *what, const LscPluginParam *param)
{
  g_autofree char *range = lsc_plugin_param_dup_range (param);
  return g_strdup_printf ("%s in %s", what, range);
}

/* "expected X, found Y" for one parameter. */
static char *
param_expectation (const LscPluginParam *param)
{
  switch (param->type)
    {
    case LSC_PLUGIN_PARAM_INT:
      return range_text ("an integer", param);
    case LSC_PLUGIN_PARAM_BOOL:
      return g_strdup ("true or false");
    case LSC_PLUGIN_PARAM_CHOICE:
      {
        g_autoptr(GString) s = g_string_new ("one of ");
        for (int i = 0; param->choices[i] != NULL; i++)
          g_string_append_printf (s, "%s\"%s\"", i ? ", " : "", param->choices[i]);
        return g_string_free (g_steal_pointer (&s), FALSE);
      }
    case LSC_PLUGIN_PARAM_NUMBER:
    default:
      return range_text ("a number", param);
    }
}

static gboolean
value_ok (const LscPluginParam *param, double v)
{
  switch (param->type)
    {
    case LSC_PLUGIN_PARAM_INT:
      return v == floor (v) && v >= param->min && v <= param->max;
    case LSC_PLUGIN_PARAM_BOOL:
      return v == 0 || v == 1;
    case LSC_PLUGIN_PARAM_CHOICE:
      for (int i = 0; param->choices[i] != NULL; i++)
        if (v == i)
          return TRUE;
      return FALSE;
    case LSC_PLUGIN_PARAM_NUMBER:
    default:
      return isfinite (v) && v >= param->min && v <= param->max;
    }
}

gboolean
lsc_plugin_value_from_json (const LscPluginParam *param, json_object *v, double *value,
                            const char *file, const char *path, GError **error)
{
  gboolean typed = FALSE;
  double x = 0;
  switch (param->type)
    {
    case LSC_PLUGIN_PARAM_INT:
      typed = json_object_is_type (v, json_type_int);
      x = typed ? (double) json_object_get_int64 (v) : 0;
      break;
    case LSC_PLUGIN_PARAM_NUMBER:
      typed = json_object_is_type (v, json_type_int) || json_object_is_type (v, json_type_double);
      x = typed ? json_object_get_double (v) : 0;
      break;
    case LSC_PLUGIN_PARAM_BOOL:
      typed = json_object_is_type (v, json_type_boolean);
      x = typed && json_object_get_boolean (v) ? 1 : 0;
      break;
    case LSC_PLUGIN_PARAM_CHOICE:
      x = -1;
      for (int i = 0; json_object_is_type (v, json_type_string) && param->choices[i] != NULL; i++)
        if (strcmp (json_object_get_string (v), param->choices[i]) == 0)
          x = i, typed = TRUE;
      break;
    }
  if (typed && value_ok (param, x))
    {
      *value = x;
      return TRUE;
    }
  g_autofree char *expected = param_expectation (param);
  g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, "%s: %s: expected %s, found %s", file,
               path, expected, v ? json_object_to_json_string_ext (v, JSON_C_TO_STRING_PLAIN) : "null");
  return FALSE;
}

/* ---- stacks ---- */

typedef struct {
  const LscPluginInfo *info;
  double values[LSC_PLUGIN_MAX_PARAMS];
  gpointer instance;
  LscAttentionHooks hooks;
} Entry;

struct _LscPluginStack
{
  GArray *entries;   /* (element-type Entry) */
};

static void
entry_drop_instance (Entry *e)
{
  if (e->instance != NULL)
    e->info->instance_free (e->instance);
  e->instance = NULL;
  memset (&e->hooks, 0, sizeof e->hooks);
}

LscPluginStack *
lsc_plugin_stack_new (void)
{
  LscPluginStack *stack = g_new0 (LscPluginStack, 1);
  stack->entries = g_array_new (FALSE, TRUE, sizeof (Entry));
  return stack;
}

void
lsc_plugin_stack_free (LscPluginStack *stack)
{
  if (stack == NULL)
    return;
  for (guint i = 0; i < stack->entries->len; i++)
    entry_drop_instance (&g_array_index (stack->entries, Entry, i));
  g_array_unref (stack->entries);
  g_free (stack);
}

LscPluginStack *
lsc_plugin_stack_copy (const LscPluginStack *stack)
{
  LscPluginStack *copy = lsc_plugin_stack_new ();
  for (guint i = 0; i < stack->entries->len; i++)
    {
      Entry e = g_array_index (stack->entries, Entry, i);
      e.instance = NULL;
      memset (&e.hooks, 0, sizeof e.hooks);
      g_array_append_val (copy->entries, e);
    }
  return copy;
}

gboolean
lsc_plugin_stack_add (LscPluginStack *stack, const LscPluginInfo *info, const double *values,
                      GError **error)
{
  Entry e = { .info = info };
  for (int i = 0; i < info->n_params; i++)
    {
      if (!value_ok (&info->params[i], values[i]))
        {
          g_autofree char *expected = param_expectation (&info->params[i]);
          char found[G_ASCII_DTOSTR_BUF_SIZE];
          g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                       "plugin %s: %s: expected %s, found %s", info->id, info->params[i].name,
                       expected, g_ascii_dtostr (found, sizeof found, values[i]));
          return FALSE;
        }
      e.values[i] = values[i];
    }
  g_array_append_val (stack->entries, e);
  return TRUE;
}

int
lsc_plugin_stack_get_size (const LscPluginStack *stack)
{
  return (int) stack->entries->len;
}

const LscPluginInfo *
lsc_plugin_stack_get (const LscPluginStack *stack, int i, const double **values)
{
  g_return_val_if_fail (i >= 0 && i < (int) stack->entries->len, NULL);
  Entry *e = &g_array_index (stack->entries, Entry, i);
  if (values != NULL)
    *values = e->values;
  return e->info;
}

gboolean
lsc_plugin_stack_parse_json (LscPluginStack *stack, json_object *array, const char *file,
                             const char *path, GError **error)
{
  if (!json_object_is_type (array, json_type_array))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: %s: expected an array of plugins, found %s", file, path,
                   json_object_to_json_string_ext (array, JSON_C_TO_STRING_PLAIN));
      return FALSE;
    }
  for (size_t i = 0; i < json_object_array_length (array); i++)
    {
      json_object *o = json_object_array_get_idx (array, i), *id = NULL;
      g_autofree char *at = g_strdup_printf ("%s[%zu]", path, i);
      if (!json_object_is_type (o, json_type_object)
          || !json_object_object_get_ex (o, "id", &id) || !json_object_is_type (id, json_type_string))
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: %s: expected an object with an \"id\" string", file, at);
          return FALSE;
        }
      g_autoptr(GError) local = NULL;
      const LscPluginInfo *info = lsc_plugin_find (json_object_get_string (id), &local);
      if (info == NULL)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, "%s: %s.id: %s", file, at,
                       local->message);
          return FALSE;
        }
      const char *known[LSC_PLUGIN_MAX_PARAMS + 2] = { "id" };
      for (int p = 0; p < info->n_params; p++)
        known[p + 1] = info->params[p].name;
      if (!lsc_json_check_keys (o, known, file, at, error))
        return FALSE;

      double values[LSC_PLUGIN_MAX_PARAMS];
      lsc_plugin_get_defaults (info, values);
      for (int p = 0; p < info->n_params; p++)
        {
          json_object *v;
          g_autofree char *vat = g_strdup_printf ("%s.%s", at, info->params[p].name);
          if (json_object_object_get_ex (o, info->params[p].name, &v)
              && !lsc_plugin_value_from_json (&info->params[p], v, &values[p], file, vat, error))
            return FALSE;
        }
      if (!lsc_plugin_stack_add (stack, info, values, error))
        return FALSE;
    }
  return TRUE;
}

json_object *
lsc_plugin_stack_to_json (const LscPluginStack *stack)
{
  json_object *array = json_object_new_array ();
  for (guint i = 0; i < stack->entries->len; i++)
    {
      const Entry *e = &g_array_index (stack->entries, Entry, i);
      json_object *o = json_object_new_object ();
      json_object_object_add (o, "id", json_object_new_string (e->info->id));
      for (int p = 0; p < e->info->n_params; p++)
        json_object_object_add (o, e->info->params[p].name,
                                lsc_plugin_value_to_json (&e->info->params[p], e->values[p]));
      json_object_array_add (array, o);
    }
  return array;
}

gboolean
lsc_plugin_stack_instantiate (LscPluginStack *stack, const LscModelConfig *config,
                              GError **error)
{
  for (guint i = 0; i < stack->entries->len; i++)
    entry_drop_instance (&g_array_index (stack->entries, Entry, i));
  for (guint i = 0; i < stack->entries->len; i++)
    {
      Entry *e = &g_array_index (stack->entries, Entry, i);
      g_autoptr(GError) local = NULL;
      e->instance = e->info->instance_new (e->values, config, &local);
      if (e->instance == NULL)
        {
          g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT, "plugin %s: %s",
                       e->info->id, local ? local->message : "cannot be used with this model");
          return FALSE;
        }
      if (e->info->attention_hooks != NULL)
        e->info->attention_hooks (e->instance, &e->hooks);
    }
  return TRUE;
}

/* Several plugins' hooks joined: scales multiply, hidden keys add up. */
static float
joined_scale (gpointer data, int layer, int head, int pos)
{
  LscPluginStack *stack = data;
  float s = 1.0f;
  for (guint i = 0; i < stack->entries->len; i++)
    {
      const Entry *e = &g_array_index (stack->entries, Entry, i);
      if (e->hooks.scale != NULL)
        s *= e->hooks.scale (e->hooks.data, layer, head, pos);
    }
  return s;
}

static void
joined_mask_row (gpointer data, int layer, int head, int pos, guint8 *hidden)
{
  LscPluginStack *stack = data;
  for (guint i = 0; i < stack->entries->len; i++)
    {
      const Entry *e = &g_array_index (stack->entries, Entry, i);
      if (e->hooks.mask_row != NULL)
        e->hooks.mask_row (e->hooks.data, layer, head, pos, hidden);
    }
}

void
lsc_plugin_stack_get_hooks (LscPluginStack *stack, LscAttentionHooks *hooks)
{
  memset (hooks, 0, sizeof *hooks);
  const Entry *hooked = NULL;
  int n_hooked = 0;
  gboolean any_scale = FALSE, any_mask = FALSE;
  for (guint i = 0; i < stack->entries->len; i++)
    {
      const Entry *e = &g_array_index (stack->entries, Entry, i);
      any_scale |= e->hooks.scale != NULL;
      any_mask |= e->hooks.mask_row != NULL;
      if (e->hooks.scale != NULL || e->hooks.mask_row != NULL)
        hooked = e, n_hooked++;
    }
  /* one plugin's hooks go in as they are, without the indirection */
  if (n_hooked <= 1)
    {
      if (hooked != NULL)
        *hooks = hooked->hooks;
      return;
    }
  if (any_scale)
    hooks->scale = joined_scale;
  if (any_mask)
    hooks->mask_row = joined_mask_row;
  hooks->data = stack;
}
