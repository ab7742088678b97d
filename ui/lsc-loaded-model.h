/* SPDX-License-Identifier: MIT
 *
 * lsc-loaded-model.h: a model and its tokenizer, loaded off the main thread
 * and shared (by reference) between the window and the runs made with it.
 * GTK-free.
 */
#pragma once

#include <gio/gio.h>

#include "lsc-model.h"
#include "lsc-tokenizer.h"

G_BEGIN_DECLS

#define LSC_TYPE_LOADED_MODEL (lsc_loaded_model_get_type ())
G_DECLARE_FINAL_TYPE (LscLoadedModel, lsc_loaded_model, LSC, LOADED_MODEL, GObject)

/* Loads on the calling thread. */
LscLoadedModel *lsc_loaded_model_load (const char *path, GCancellable *cancellable, GError **error);
void lsc_loaded_model_load_async (const char *path, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data);
LscLoadedModel *lsc_loaded_model_load_finish (GAsyncResult *result, GError **error);

/* The path made absolute (g_canonicalize_filename), or the demo model's name. */
const char *lsc_loaded_model_get_path (LscLoadedModel *self);
LscModel *lsc_loaded_model_get_model (LscLoadedModel *self);
LscTokenizer *lsc_loaded_model_get_tokenizer (LscLoadedModel *self);

G_END_DECLS
