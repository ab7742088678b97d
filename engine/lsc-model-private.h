/* SPDX-License-Identifier: MIT
 *
 * What the format loaders share: the LscModel structure they fill in and the
 * helpers to add tensors to it. Only engine/ includes this.
 */
#pragma once

#include "lsc-model.h"
#include "lsc-mapped-file.h"

G_BEGIN_DECLS

struct _LscModel {
  char *path;                  /* as given */
  LscModelFormat format;
  LscModelConfig config;
  GPtrArray *files;            /* (element-type LscMappedFile) shards in index order */
  GArray *tensors;             /* (element-type LscTensor) in file order */
  GHashTable *by_name;         /* name -> index + 1 (GUINT_TO_POINTER) */
  GPtrArray *warnings;         /* (element-type char*) NULL-terminated when read */
  int *weight_index;           /* (LSC_TENSOR_N_ROLES, n_layers + 1) tensor index, -1 = absent;
                                  slot n_layers holds the non-layer roles */
  gpointer format_data;        /* the loader's own state (the parsed GGUF for GGUF) */
  GDestroyNotify format_data_free;
};

/* An empty model for `path`: config with bos/eos -1, no tensors. */
LscModel *_lsc_model_new (const char *path, LscModelFormat format);

/* Adds a tensor: copies `name`, takes data = files[file_index]->data + offset,
 * checks that the range is inside the file (TRUNCATED error otherwise) and
 * that `name` is not a duplicate (CORRUPT). Role and layer start UNKNOWN/-1. */
LscTensor *_lsc_model_add_tensor (LscModel *model, const char *name, LscDType dtype,
                                  int n_dims, const gint64 *shape, guint file_index,
                                  guint64 offset, GError **error);

void _lsc_model_warn (LscModel *model, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* Assigns role and layer to every tensor from its GGUF-style or HF-style
 * name, then checks that every tensor the architecture needs is present and
 * has the shape the config implies (MISSING_TENSOR / BAD_SHAPE). */
gboolean _lsc_model_bind_tensors (LscModel *model, GError **error);

/* Format loaders, called by lsc_model_load () on a fresh model. */
gboolean _lsc_model_load_hf (LscModel *model, const char *dir, GError **error);
gboolean _lsc_model_load_gguf (LscModel *model, const char *file, GError **error);
gboolean _lsc_model_load_llama2c (LscModel *model, const char *file, GError **error);

/* Resolves a Hub cache repo folder (models--org--name/) to its newest
 * snapshot (refs/main when present); returns a newly allocated path, or a
 * copy of `dir` when it is not such a folder. */
char *_lsc_hf_resolve_snapshot (const char *dir);

/* Maps one safetensors file, appends it to model->files (its position is
 * returned in file_index) and adds its tensors (lsc-safetensors.c). */
gboolean _lsc_safetensors_add_file (LscModel *model, const char *path, guint *file_index,
                                    GError **error);

G_END_DECLS
