/* SPDX-License-Identifier: MIT
 *
 * A read-only memory map of a whole file, shared by every model loader.
 * Sizes and offsets are 64-bit; `lsc_mapped_file_check_range` is the one
 * place that decides whether [offset, offset + size) lies inside the file.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *path;          /* as given (for error messages) */
  const guint8 *data;  /* (size) bytes, NULL when size == 0 */
  guint64 size;
} LscMappedFile;

LscMappedFile *lsc_mapped_file_open (const char *path, GError **error);
void lsc_mapped_file_free (LscMappedFile *file);

/* Zero-filled anonymous memory of `size` bytes standing in for a file (the
 * weights of synthetic and demo models): the caller fills it through *data,
 * then seals it read-only with lsc_mapped_file_seal (); it is freed like a
 * file map. `name` is what messages call it. */
LscMappedFile *lsc_mapped_file_new_anonymous (const char *name, guint64 size, guint8 **data,
                                              GError **error);
void lsc_mapped_file_seal (LscMappedFile *file);

/* TRUE when [offset, offset + size) is inside the file, without overflow. */
gboolean lsc_mapped_file_has_range (const LscMappedFile *file, guint64 offset, guint64 size);

/* Like has_range, but sets LSC_MODEL_ERROR_TRUNCATED naming `what` when it is not. */
gboolean lsc_mapped_file_check_range (const LscMappedFile *file, guint64 offset, guint64 size,
                                      const char *what, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscMappedFile, lsc_mapped_file_free)

G_END_DECLS
