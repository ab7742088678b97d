/* SPDX-License-Identifier: MIT
 *
 * lsc-tensor-reader.h: reads the arrays of a result file
 * (tensors.safetensors, as LscTensorWriter writes it) without copying them:
 * the file is memory-mapped and checked as a model's safetensors files are
 * (header length, every shape and data range against the file size) before
 * anything is read. F32 and I32 tensors; other dtypes fail by name.
 *
 * Example:
 *
 *   g_autoptr(LscTensorReader) r = lsc_tensor_reader_open ("out/tensors.safetensors", &error);
 *   gint64 shape[2] = { 16, 32 };
 *   const float *entropy = lsc_tensor_reader_get_f32 (r, "attn.stats.entropy", 2, shape, &error);
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _LscTensorReader LscTensorReader;

LscTensorReader *lsc_tensor_reader_open (const char *path, GError **error);
void lsc_tensor_reader_free (LscTensorReader *reader);
const char *lsc_tensor_reader_get_path (const LscTensorReader *reader);

/* Whether the file holds a tensor of that name; its dimensions and shape
 * (up to 8) when it does and the pointers are not NULL. */
gboolean lsc_tensor_reader_lookup (const LscTensorReader *reader, const char *name, int *n_dims,
                                   gint64 *shape);

/* The data of tensor `name`, valid while the reader lives. Fails with
 * LSC_MODEL_ERROR naming the file and the tensor when it is missing, of
 * another dtype, or not of n_dims dimensions of exactly `shape` (an entry
 * of shape < 0 accepts any length there and shape[i] is set to it). */
const float *lsc_tensor_reader_get_f32 (const LscTensorReader *reader, const char *name,
                                        int n_dims, gint64 *shape, GError **error);
const gint32 *lsc_tensor_reader_get_i32 (const LscTensorReader *reader, const char *name,
                                         int n_dims, gint64 *shape, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscTensorReader, lsc_tensor_reader_free)

G_END_DECLS
