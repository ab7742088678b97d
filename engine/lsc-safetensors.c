/* SPDX-License-Identifier: MIT
 *
 * lsc-safetensors.c: the safetensors file format (Hugging Face).
 *
 * Layout, all integers little-endian:
 *
 *   offset 0       u64 N          length of the JSON header in bytes
 *   offset 8       N bytes        JSON header (UTF-8), possibly padded with
 *                                 trailing spaces
 *   offset 8 + N   data section   the tensors' bytes, back to back
 *
 * The header is one JSON object. Each key is a tensor name mapped to
 *
 *   { "dtype": "F32" | "F16" | "BF16" | ...,
 *     "shape": [d0, d1, ...],                  outermost first, may be []
 *     "data_offsets": [begin, end] }           relative to the data section
 *
 * plus an optional "__metadata__" object of string -> string, which we
 * ignore. A tensor's bytes are [8 + N + begin, 8 + N + end) in the file and
 * must hold exactly prod(shape) * sizeof(dtype) bytes, row-major.
 *
 * We compute with F32, F16 and BF16; every other dtype (F64, I64, U8,
 * F8_E4M3, ...) fails with LSC_MODEL_ERROR_UNSUPPORTED_DTYPE naming the
 * tensor. Shapes may have 0 to LSC_MAX_DIMS dimensions, except that a Mamba
 * `conv1d.weight` stored as [E, 1, K] is squeezed to (E, K) on load, the
 * shape lsc-model.h gives the SSM_CONV1D role.
 *
 * Everything is checked before it is used: the header length against the
 * file size (and a 100 MiB cap), each size computed in 64 bits with overflow
 * checks, and each data range against the data section.
 */
#include "config.h"

#include "lsc-model-private.h"
#include "lsc-error.h"
#include "lsc-json.h"
#include "lsc-tensor-reader.h"

#include <json-c/json.h>
#include <string.h>

#define LSC_SAFETENSORS_MAX_HEADER (100 * 1024 * 1024)


/* One header entry, collected before any tensor is added so that tensors
 * are added in data order. */
typedef struct {
  const char *name;              /* owned by the JSON header */
  int dtype;                     /* a DTypeSet's code */
  int n_dims;
  gint64 shape[LSC_MAX_DIMS];    /* (n_dims) outermost first */
  guint64 begin;                 /* relative to the data section */
} SafetensorsEntry;

static guint64
read_u64_le (const guint8 *p)
{
  guint64 v;
  memcpy (&v, p, sizeof v);
  return GUINT64_FROM_LE (v);
}

/* The dtypes a reader accepts: parse maps a safetensors dtype name to the
 * reader's code and element size; `accepted` lists them for errors. */
typedef struct {
  gboolean (*parse) (const char *name, int *dtype, gsize *elem_size);
  const char *accepted;
} DTypeSet;

/* Models compute with F32, F16 and BF16 (as LscDType). */
static gboolean
parse_model_dtype (const char *name, int *dtype, gsize *elem_size)
{
  if (g_str_equal (name, "F32"))
    *dtype = LSC_DTYPE_F32, *elem_size = 4;
  else if (g_str_equal (name, "F16"))
    *dtype = LSC_DTYPE_F16, *elem_size = 2;
  else if (g_str_equal (name, "BF16"))
    *dtype = LSC_DTYPE_BF16, *elem_size = 2;
  else
    return FALSE;
  return TRUE;
}

static const DTypeSet model_dtypes = { parse_model_dtype, "F32, F16 and BF16 are" };

static void
format_shape (GString *out, json_object *shape)
{
  gsize n = json_object_array_length (shape);

  g_string_append_c (out, '[');
  for (gsize i = 0; i < n; i++)
    g_string_append_printf (out, "%s%s", i > 0 ? ", " : "",
                            json_object_to_json_string_ext (json_object_array_get_idx (shape, i),
                                                            JSON_C_TO_STRING_PLAIN));
  g_string_append_c (out, ']');
}

/* A non-negative JSON integer (json-c keeps integers above G_MAXINT64 as
 * unsigned). */
static gboolean
get_json_u64 (json_object *value, guint64 *out)
{
  if (value == NULL || !json_object_is_type (value, json_type_int))
    return FALSE;
  if (json_object_get_int64 (value) < 0)
    return FALSE;
  *out = json_object_get_uint64 (value);
  return TRUE;
}

static gboolean
parse_entry (const char *path, const char *name, json_object *desc, guint64 data_size,
             const DTypeSet *dtypes, SafetensorsEntry *entry, GError **error)
{
  static const char *const fields[] = { "dtype", "shape", "data_offsets" };
  json_object *dtype_obj, *shape_obj, *offsets_obj;
  gsize elem_size = 0, n_dims;
  guint64 n_bytes, begin, end;
  g_autoptr(GString) shape_str = g_string_new (NULL);

  if (!json_object_is_type (desc, json_type_object))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: tensor '%s': expected an object with dtype, shape and data_offsets, found %s",
                   path, name, json_type_to_name (json_object_get_type (desc)));
      return FALSE;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    if (!json_object_object_get_ex (desc, fields[i], NULL))
      {
        g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                     "%s: tensor '%s': missing field '%s'", path, name, fields[i]);
        return FALSE;
      }
  json_object_object_get_ex (desc, "dtype", &dtype_obj);
  json_object_object_get_ex (desc, "shape", &shape_obj);
  json_object_object_get_ex (desc, "data_offsets", &offsets_obj);

  entry->name = name;

  /* dtype */
  if (!json_object_is_type (dtype_obj, json_type_string))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: tensor '%s': dtype: expected a string, found %s", path, name,
                   json_type_to_name (json_object_get_type (dtype_obj)));
      return FALSE;
    }
  if (!dtypes->parse (json_object_get_string (dtype_obj), &entry->dtype, &elem_size))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                   "%s: tensor '%s': dtype %s is not supported (%s)",
                   path, name, json_object_get_string (dtype_obj), dtypes->accepted);
      return FALSE;
    }

  /* shape */
  if (!json_object_is_type (shape_obj, json_type_array))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: tensor '%s': shape: expected an array, found %s", path, name,
                   json_type_to_name (json_object_get_type (shape_obj)));
      return FALSE;
    }
  n_dims = json_object_array_length (shape_obj);
  format_shape (shape_str, shape_obj);
  if (n_dims > LSC_MAX_DIMS)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: tensor '%s': shape %s has %" G_GSIZE_FORMAT
                   " dimensions, at most %d are supported",
                   path, name, shape_str->str, n_dims, LSC_MAX_DIMS);
      return FALSE;
    }
  n_bytes = elem_size;
  for (gsize i = 0; i < n_dims; i++)
    {
      guint64 d;
      if (!get_json_u64 (json_object_array_get_idx (shape_obj, i), &d) || d > G_MAXINT64)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: tensor '%s': shape %s: dimension %" G_GSIZE_FORMAT
                       " is not a non-negative integer", path, name, shape_str->str, i);
          return FALSE;
        }
      if (!g_uint64_checked_mul (&n_bytes, n_bytes, d))
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: tensor '%s': shape %s of %s overflows 64 bits", path, name,
                       shape_str->str, json_object_get_string (dtype_obj));
          return FALSE;
        }
      entry->shape[i] = (gint64) d;
    }
  entry->n_dims = (int) n_dims;

  /* data_offsets */
  if (!json_object_is_type (offsets_obj, json_type_array)
      || json_object_array_length (offsets_obj) != 2
      || !get_json_u64 (json_object_array_get_idx (offsets_obj, 0), &begin)
      || !get_json_u64 (json_object_array_get_idx (offsets_obj, 1), &end))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: tensor '%s': data_offsets %s is not a pair of non-negative integers",
                   path, name,
                   json_object_to_json_string_ext (offsets_obj, JSON_C_TO_STRING_PLAIN
                                                   | JSON_C_TO_STRING_NOSLASHESCAPE));
      return FALSE;
    }
  if (begin > end || end - begin != n_bytes)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: tensor '%s': data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                   "] do not match shape %s of %s (%" G_GUINT64_FORMAT " bytes)",
                   path, name, begin, end, shape_str->str,
                   json_object_get_string (dtype_obj), n_bytes);
      return FALSE;
    }
  if (end > data_size)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                   "%s: tensor '%s': data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                   "] are past the end of the data section (%" G_GUINT64_FORMAT " bytes)",
                   path, name, begin, end, data_size);
      return FALSE;
    }
  entry->begin = begin;

  /* Mamba's depthwise conv1d.weight [E, 1, K] is the (E, K) of SSM_CONV1D. */
  if (entry->n_dims == 3 && entry->shape[1] == 1 && g_str_has_suffix (name, "conv1d.weight"))
    {
      entry->shape[1] = entry->shape[2];
      entry->n_dims = 2;
    }
  return TRUE;
}

static gint
compare_entries (gconstpointer a, gconstpointer b)
{
  const SafetensorsEntry *ea = a, *eb = b;

  if (ea->begin != eb->begin)
    return ea->begin < eb->begin ? -1 : 1;
  return strcmp (ea->name, eb->name);
}

/* Reads the header of `file`: its entries (names owned by *header_out) in
 * data order, and where the data section starts. */
static gboolean
read_header (const LscMappedFile *file, const DTypeSet *dtypes, json_object **header_out,
             GArray **entries_out, guint64 *data_start_out, GError **error)
{
  g_autoptr(json_object) header = NULL;
  g_autoptr(GArray) entries = NULL;   /* (element-type SafetensorsEntry) in data order */
  g_autofree char *what = NULL;
  guint64 header_len, data_start, data_size;

  if (file->size < 8)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                   "%s: header length: the file is %" G_GUINT64_FORMAT
                   " bytes, shorter than the 8-byte header length", file->path, file->size);
      return FALSE;
    }
  header_len = read_u64_le (file->data);
  if (header_len > file->size - 8)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                   "%s: header length %" G_GUINT64_FORMAT " is past the end of the file (%"
                   G_GUINT64_FORMAT " bytes)", file->path, header_len, file->size);
      return FALSE;
    }
  if (header_len > LSC_SAFETENSORS_MAX_HEADER)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: header length %" G_GUINT64_FORMAT " is over the %d-byte limit",
                   file->path, header_len, LSC_SAFETENSORS_MAX_HEADER);
      return FALSE;
    }
  data_start = 8 + header_len;
  data_size = file->size - data_start;

  what = g_strdup_printf ("%s: header", file->path);
  header = lsc_json_parse (what, (const char *) file->data + 8, header_len, LSC_MODEL_ERROR,
                           LSC_MODEL_ERROR_CORRUPT, error);
  if (header == NULL)
    return FALSE;
  if (!json_object_is_type (header, json_type_object))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: header: expected a JSON object, found %s", file->path,
                   json_type_to_name (json_object_get_type (header)));
      return FALSE;
    }

  entries = g_array_new (FALSE, TRUE, sizeof (SafetensorsEntry));
  json_object_object_foreach (header, key, value)
    {
      SafetensorsEntry entry = { 0 };

      if (g_str_equal (key, "__metadata__"))
        {
          if (!json_object_is_type (value, json_type_object))
            {
              g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                           "%s: __metadata__: expected an object, found %s", file->path,
                           json_type_to_name (json_object_get_type (value)));
              return FALSE;
            }
          continue;
        }
      if (!parse_entry (file->path, key, value, data_size, dtypes, &entry, error))
        return FALSE;
      g_array_append_val (entries, entry);
    }
  g_array_sort (entries, compare_entries);
  *header_out = g_steal_pointer (&header);
  *entries_out = g_steal_pointer (&entries);
  *data_start_out = data_start;
  return TRUE;
}

/* Reads the header of `file` and adds its tensors to `model` as file
 * `file_index`. */
static gboolean
add_tensors (LscModel *model, const LscMappedFile *file, guint file_index, GError **error)
{
  g_autoptr(json_object) header = NULL;
  g_autoptr(GArray) entries = NULL;
  guint64 data_start;

  if (!read_header (file, &model_dtypes, &header, &entries, &data_start, error))
    return FALSE;
  for (guint i = 0; i < entries->len; i++)
    {
      const SafetensorsEntry *e = &g_array_index (entries, SafetensorsEntry, i);
      if (_lsc_model_add_tensor (model, e->name, (LscDType) e->dtype, e->n_dims, e->shape,
                                 file_index, data_start + e->begin, error) == NULL)
        return FALSE;
    }
  return TRUE;
}

gboolean
_lsc_safetensors_add_file (LscModel *model, const char *path, guint *file_index,
                           GError **error)
{
  LscMappedFile *file;
  guint index;

  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  file = lsc_mapped_file_open (path, error);
  if (file == NULL)
    return FALSE;

  /* The model owns the map from here on, so tensors may point into it. */
  index = model->files->len;
  g_ptr_array_add (model->files, file);
  if (file_index != NULL)
    *file_index = index;

  return add_tensors (model, file, index, error);
}

/* ---- result files ---- */

enum { RESULT_F32, RESULT_I32 };

static gboolean
parse_result_dtype (const char *name, int *dtype, gsize *elem_size)
{
  *elem_size = 4;
  if (g_str_equal (name, "F32"))
    *dtype = RESULT_F32;
  else if (g_str_equal (name, "I32"))
    *dtype = RESULT_I32;
  else
    return FALSE;
  return TRUE;
}

static const DTypeSet result_dtypes = { parse_result_dtype, "F32 and I32 are" };

struct _LscTensorReader {
  LscMappedFile *file;
  json_object *header;         /* owns the entries' names */
  GArray *entries;             /* (element-type SafetensorsEntry) */
  GHashTable *by_name;         /* name -> index + 1 */
  guint64 data_start;
};

LscTensorReader *
lsc_tensor_reader_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_autoptr(LscMappedFile) file = lsc_mapped_file_open (path, error);
  if (file == NULL)
    return NULL;
  json_object *header;
  GArray *entries;
  guint64 data_start;
  if (!read_header (file, &result_dtypes, &header, &entries, &data_start, error))
    return NULL;

  LscTensorReader *r = g_new0 (LscTensorReader, 1);
  r->file = g_steal_pointer (&file);
  r->header = header;
  r->entries = entries;
  r->data_start = data_start;
  r->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < entries->len; i++)
    g_hash_table_insert (r->by_name, (gpointer) g_array_index (entries, SafetensorsEntry, i).name,
                         GUINT_TO_POINTER (i + 1));
  return r;
}

void
lsc_tensor_reader_free (LscTensorReader *r)
{
  if (r == NULL)
    return;
  g_hash_table_unref (r->by_name);
  g_array_unref (r->entries);
  json_object_put (r->header);
  lsc_mapped_file_free (r->file);
  g_free (r);
}

const char *
lsc_tensor_reader_get_path (const LscTensorReader *r)
{
  return r->file->path;
}

static const SafetensorsEntry *
find_entry (const LscTensorReader *r, const char *name)
{
  guint i = GPOINTER_TO_UINT (g_hash_table_lookup (r->by_name, name));
  return i == 0 ? NULL : &g_array_index (r->entries, SafetensorsEntry, i - 1);
}

gboolean
lsc_tensor_reader_lookup (const LscTensorReader *r, const char *name, int *n_dims, gint64 *shape)
{
  const SafetensorsEntry *e = find_entry (r, name);
  if (e == NULL)
    return FALSE;
  if (n_dims != NULL)
    *n_dims = e->n_dims;
  if (shape != NULL)
    memcpy (shape, e->shape, e->n_dims * sizeof (gint64));
  return TRUE;
}

static void
append_shape (GString *s, int n_dims, const gint64 *shape)
{
  g_string_append_c (s, '[');
  for (int i = 0; i < n_dims; i++)
    {
      if (shape[i] < 0)
        g_string_append_printf (s, "%s*", i > 0 ? ", " : "");
      else
        g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i > 0 ? ", " : "", shape[i]);
    }
  g_string_append_c (s, ']');
}

static gconstpointer
get_data (const LscTensorReader *r, const char *name, int dtype, int n_dims, gint64 *shape,
          GError **error)
{
  static const char *const names[] = { "F32", "I32" };
  const SafetensorsEntry *e = find_entry (r, name);
  if (e == NULL)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_MISSING_TENSOR,
                   "%s: tensor '%s' is missing", r->file->path, name);
      return NULL;
    }
  gboolean same = e->n_dims == n_dims;
  for (int i = 0; same && i < n_dims; i++)
    same = shape[i] < 0 || shape[i] == e->shape[i];
  if (e->dtype != dtype || !same)
    {
      g_autoptr(GString) want = g_string_new (NULL), got = g_string_new (NULL);
      append_shape (want, n_dims, shape);
      append_shape (got, e->n_dims, e->shape);
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_SHAPE,
                   "%s: tensor '%s': expected %s %s, found %s %s", r->file->path, name,
                   names[dtype], want->str, names[e->dtype], got->str);
      return NULL;
    }
  guint64 offset = r->data_start + e->begin;
  if (offset % 4 != 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: tensor '%s': data at byte %" G_GUINT64_FORMAT " is not 4-byte aligned",
                   r->file->path, name, offset);
      return NULL;
    }
  memcpy (shape, e->shape, n_dims * sizeof (gint64));
  /* an empty tensor may sit at the very end of the file */
  return r->file->data != NULL ? (gconstpointer) (r->file->data + offset) : (gconstpointer) "";
}

const float *
lsc_tensor_reader_get_f32 (const LscTensorReader *r, const char *name, int n_dims, gint64 *shape,
                           GError **error)
{
  return get_data (r, name, RESULT_F32, n_dims, shape, error);
}

const gint32 *
lsc_tensor_reader_get_i32 (const LscTensorReader *r, const char *name, int n_dims, gint64 *shape,
                           GError **error)
{
  return get_data (r, name, RESULT_I32, n_dims, shape, error);
}
