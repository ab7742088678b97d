/* SPDX-License-Identifier: MIT
 *
 * lsc-tensor-writer.h: writes result arrays (attention tiles, pyramids,
 * statistics) as one safetensors file, the format every notebook reads
 * (`safetensors.numpy.load_file`, `safetensors.torch.load_file`).
 *
 * Tensors are F32 or I32, written in the order they were added, 8-byte
 * aligned, with "__metadata__": {"producer": "longscope <version>"}. The
 * file is written to a temporary name beside the target and renamed, so a
 * reader never sees half a file.
 *
 * Example:
 *
 *   g_autoptr(LscTensorWriter) w = lsc_tensor_writer_new ();
 *   gint64 shape[2] = { 64, 64 };
 *   lsc_tensor_writer_add_f32 (w, "attn.3.7.tile.0-64.0-64", 2, shape, tile);
 *   lsc_tensor_writer_write (w, "out/tensors.safetensors", &error);
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _LscTensorWriter LscTensorWriter;

LscTensorWriter *lsc_tensor_writer_new (void);
void lsc_tensor_writer_free (LscTensorWriter *writer);

/* Copies data (prod(shape) values). A name added twice replaces nothing:
 * returns FALSE and keeps the first. */
gboolean lsc_tensor_writer_add_f32 (LscTensorWriter *writer, const char *name, int n_dims,
                                    const gint64 *shape, const float *data);
/* The same without a copy, for large arrays (stored queries and keys): data
 * must stay valid and unchanged until the writer is freed. */
gboolean lsc_tensor_writer_add_f32_borrowed (LscTensorWriter *writer, const char *name,
                                             int n_dims, const gint64 *shape, const float *data);
gboolean lsc_tensor_writer_add_i32 (LscTensorWriter *writer, const char *name, int n_dims,
                                    const gint64 *shape, const gint32 *data);
guint lsc_tensor_writer_get_n_tensors (const LscTensorWriter *writer);

gboolean lsc_tensor_writer_write (const LscTensorWriter *writer, const char *path, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscTensorWriter, lsc_tensor_writer_free)

G_END_DECLS
