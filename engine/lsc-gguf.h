/* SPDX-License-Identifier: MIT
 *
 * lsc-gguf.h: a reader for GGUF files (versions 2 and 3), the format of
 * llama.cpp. The whole file is memory-mapped; metadata is parsed and
 * validated up front, tensor data stays in the map.
 *
 * File layout (little endian):
 *
 *   u32  magic "GGUF"   (0x46554747)
 *   u32  version        (2 or 3; version 1 used 32-bit counts and is refused)
 *   u64  n_tensors
 *   u64  n_kv
 *   n_kv   × { string key, u32 value_type, value }
 *   n_tensors × { string name, u32 n_dims (1..4), u64 ne[n_dims] (innermost first),
 *                 u32 ggml_type, u64 offset (relative to the data section) }
 *   padding to `general.alignment` (u32 metadata, default 32)
 *   tensor data; each tensor's offset is a multiple of the alignment
 *
 *   string = u64 length + bytes (not NUL-terminated, UTF-8)
 *   value  = by type: u8 i8 u16 i16 u32 i32 f32 bool(u8) string u64 i64 f64,
 *            or array: u32 element_type, u64 count, count × value (no nested arrays
 *            of arrays in practice, but they parse)
 *
 * Validation: every count is checked against the bytes left in the file
 * before anything is allocated, every string and array against the end of
 * the file, every tensor's byte range against the data section, and every
 * ggml type against the ones we compute with (F32, F16, BF16, Q8_0); any
 * other quantisation (Q4_K, ...) fails with LSC_MODEL_ERROR_UNSUPPORTED_DTYPE
 * naming the tensor and the type, e.g. "x.gguf: tensor 'blk.0.ffn_up.weight'
 * has type Q4_K, which Longscope does not compute with (F32, F16, BF16, Q8_0)".
 *
 * Example:
 *
 *   g_autoptr(LscGguf) gguf = lsc_gguf_open ("model.gguf", &error);
 *   const char *arch = lsc_gguf_get_string (gguf, "general.architecture", &error);
 *   guint64 n_vocab;
 *   const char *const *tokens = lsc_gguf_get_string_array (gguf, "tokenizer.ggml.tokens",
 *                                                           &n_vocab, &error);
 */
#pragma once

#include <glib.h>

#include "lsc-kernels.h"

G_BEGIN_DECLS

typedef enum {
  LSC_GGUF_TYPE_UINT8 = 0,
  LSC_GGUF_TYPE_INT8 = 1,
  LSC_GGUF_TYPE_UINT16 = 2,
  LSC_GGUF_TYPE_INT16 = 3,
  LSC_GGUF_TYPE_UINT32 = 4,
  LSC_GGUF_TYPE_INT32 = 5,
  LSC_GGUF_TYPE_FLOAT32 = 6,
  LSC_GGUF_TYPE_BOOL = 7,
  LSC_GGUF_TYPE_STRING = 8,
  LSC_GGUF_TYPE_ARRAY = 9,
  LSC_GGUF_TYPE_UINT64 = 10,
  LSC_GGUF_TYPE_INT64 = 11,
  LSC_GGUF_TYPE_FLOAT64 = 12,
} LscGgufType;

/* ggml tensor types we read (the numbering of ggml.h). */
#define LSC_GGML_TYPE_F32  0
#define LSC_GGML_TYPE_F16  1
#define LSC_GGML_TYPE_Q8_0 8
#define LSC_GGML_TYPE_BF16 30

typedef struct {
  char *name;             /* NUL-terminated copy */
  int n_dims;
  guint64 ne[4];          /* innermost first, as in the file; unused entries 1 */
  guint32 ggml_type;
  LscDType dtype;
  guint64 offset;         /* absolute offset in the file */
  guint64 n_bytes;
} LscGgufTensorInfo;

typedef struct _LscGguf LscGguf;

LscGguf *lsc_gguf_open (const char *path, GError **error);
/* Parses GGUF bytes that the caller has mapped and keeps alive (unchanged)
 * as long as the LscGguf: the model loader's own LscMappedFile, or memory
 * in tests. `path` names the file in messages. */
LscGguf *lsc_gguf_new_from_data (const char *path, const guint8 *data, guint64 size,
                                 GError **error);
void lsc_gguf_free (LscGguf *gguf);

const char *lsc_gguf_get_path (const LscGguf *gguf);
guint32 lsc_gguf_get_version (const LscGguf *gguf);
guint32 lsc_gguf_get_alignment (const LscGguf *gguf);
/* The map; tensors point into it. */
const guint8 *lsc_gguf_get_data (const LscGguf *gguf, guint64 *size);

/* Metadata. Keys are looked up exactly. A getter on a missing key or a
 * value of an incompatible type returns FALSE/NULL with
 * LSC_MODEL_ERROR_BAD_CONFIG naming the file and key; `has_key` never errs. */
guint lsc_gguf_get_n_kv (const LscGguf *gguf);
const char *lsc_gguf_get_key (const LscGguf *gguf, guint index);
gboolean lsc_gguf_has_key (const LscGguf *gguf, const char *key);
/* -1 when absent */
int lsc_gguf_find_key (const LscGguf *gguf, const char *key);
LscGgufType lsc_gguf_get_kv_type (const LscGguf *gguf, guint index);
/* For arrays: the element type and count. */
LscGgufType lsc_gguf_get_array_type (const LscGguf *gguf, guint index);
guint64 lsc_gguf_get_array_length (const LscGguf *gguf, guint index);

/* Any integer type whose value fits; bool counts as 0/1. */
gboolean lsc_gguf_get_int (const LscGguf *gguf, const char *key, gint64 *out, GError **error);
/* FLOAT32 or FLOAT64 (or an integer). */
gboolean lsc_gguf_get_double (const LscGguf *gguf, const char *key, double *out, GError **error);
gboolean lsc_gguf_get_bool (const LscGguf *gguf, const char *key, gboolean *out, GError **error);
const char *lsc_gguf_get_string (const LscGguf *gguf, const char *key, GError **error);
/* An array of strings, NUL-terminated copies (the array itself is NULL-terminated). */
const char *const *lsc_gguf_get_string_array (const LscGguf *gguf, const char *key,
                                               guint64 *n, GError **error);
/* A numeric array: FLOAT32 elements as float, integer elements widened to
 * gint64 or narrowed to int32 only when every element fits. */
const float *lsc_gguf_get_f32_array (const LscGguf *gguf, const char *key, guint64 *n,
                                     GError **error);
const gint32 *lsc_gguf_get_i32_array (const LscGguf *gguf, const char *key, guint64 *n,
                                      GError **error);

/* Formats any value for display ("[151936 × STRING]" for long arrays). */
char *lsc_gguf_value_to_string (const LscGguf *gguf, guint index);

guint64 lsc_gguf_get_n_tensors (const LscGguf *gguf);
const LscGgufTensorInfo *lsc_gguf_get_tensor (const LscGguf *gguf, guint64 index);

const char *lsc_ggml_type_name (guint32 ggml_type);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscGguf, lsc_gguf_free)

G_END_DECLS
