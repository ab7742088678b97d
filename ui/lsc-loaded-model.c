/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "lsc-demo.h"
#include "lsc-loaded-model.h"

struct _LscLoadedModel
{
  GObject parent_instance;

  /* immutable after load */
  char *path;
  LscModel *model;           /* (owned) */
  LscTokenizer *tokenizer;   /* (owned) */
};

G_DEFINE_FINAL_TYPE (LscLoadedModel, lsc_loaded_model, G_TYPE_OBJECT)

static void
lsc_loaded_model_finalize (GObject *object)
{
  LscLoadedModel *self = LSC_LOADED_MODEL (object);
  g_clear_pointer (&self->tokenizer, lsc_tokenizer_free);
  g_clear_pointer (&self->model, lsc_model_free);
  g_free (self->path);
  G_OBJECT_CLASS (lsc_loaded_model_parent_class)->finalize (object);
}

static void
lsc_loaded_model_class_init (LscLoadedModelClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = lsc_loaded_model_finalize;
}

static void
lsc_loaded_model_init (LscLoadedModel *self)
{
}

LscLoadedModel *
lsc_loaded_model_load (const char *path, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  /* absolute, as a batch job resolves its model: what the window shows,
   * what recent models remember and what a saved job names stay valid from
   * any folder (built-in demo models are names, not files) */
  g_autofree char *abs_path = lsc_demo_match_path (path) != NULL ? g_strdup (path)
                                                                 : g_canonicalize_filename (path, NULL);
  g_autoptr(LscModel) model = lsc_model_load (abs_path, error);
  if (model == NULL)
    return NULL;
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;
  g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (abs_path, error);
  if (tok == NULL)
    return NULL;
  LscLoadedModel *self = g_object_new (LSC_TYPE_LOADED_MODEL, NULL);
  self->path = g_steal_pointer (&abs_path);
  self->model = g_steal_pointer (&model);
  self->tokenizer = g_steal_pointer (&tok);
  return self;
}

static void
load_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  GError *error = NULL;
  LscLoadedModel *m = lsc_loaded_model_load (task_data, cancellable, &error);
  if (m == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, m, g_object_unref);
}

void
lsc_loaded_model_load_async (const char *path, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (path != NULL);
  g_autoptr(GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, lsc_loaded_model_load_async);
  g_task_set_task_data (task, g_strdup (path), g_free);
  g_task_run_in_thread (task, load_thread);
}

LscLoadedModel *
lsc_loaded_model_load_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == lsc_loaded_model_load_async, NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

const char *
lsc_loaded_model_get_path (LscLoadedModel *self)
{
  g_return_val_if_fail (LSC_IS_LOADED_MODEL (self), NULL);
  return self->path;
}

LscModel *
lsc_loaded_model_get_model (LscLoadedModel *self)
{
  g_return_val_if_fail (LSC_IS_LOADED_MODEL (self), NULL);
  return self->model;
}

LscTokenizer *
lsc_loaded_model_get_tokenizer (LscLoadedModel *self)
{
  g_return_val_if_fail (LSC_IS_LOADED_MODEL (self), NULL);
  return self->tokenizer;
}
