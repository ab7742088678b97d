/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "lsc-json.h"
#include "lsc-tensor-writer.h"

typedef struct {
  char *name;
  const char *dtype;       /* "F32" or "I32" */
  int n_dims;
  gint64 shape[8];
  GBytes *data;
} Entry;

struct _LscTensorWriter {
  GPtrArray *entries;      /* (element-type Entry) */
  GHashTable *names;       /* borrowed names */
};

static void
entry_free (Entry *e)
{
  g_free (e->name);
  g_bytes_unref (e->data);
  g_free (e);
}

LscTensorWriter *
lsc_tensor_writer_new (void)
{
  LscTensorWriter *w = g_new0 (LscTensorWriter, 1);
  w->entries = g_ptr_array_new_with_free_func ((GDestroyNotify) entry_free);
  w->names = g_hash_table_new (g_str_hash, g_str_equal);
  return w;
}

void
lsc_tensor_writer_free (LscTensorWriter *w)
{
  if (w == NULL)
    return;
  g_hash_table_unref (w->names);
  g_ptr_array_unref (w->entries);
  g_free (w);
}

static gboolean
add (LscTensorWriter *w, const char *name, const char *dtype, int n_dims, const gint64 *shape,
     const void *data, gboolean borrow)
{
  g_return_val_if_fail (n_dims >= 0 && n_dims <= 8, FALSE);
  if (g_hash_table_contains (w->names, name))
    return FALSE;
  gsize n = 1;
  for (int i = 0; i < n_dims; i++)
    n *= (gsize) shape[i];
  Entry *e = g_new0 (Entry, 1);
  e->name = g_strdup (name);
  e->dtype = dtype;
  e->n_dims = n_dims;
  memcpy (e->shape, shape, n_dims * sizeof (gint64));
  e->data = borrow ? g_bytes_new_static (data, n * 4) : g_bytes_new (data, n * 4);
  g_ptr_array_add (w->entries, e);
  g_hash_table_add (w->names, e->name);
  return TRUE;
}

gboolean
lsc_tensor_writer_add_f32 (LscTensorWriter *w, const char *name, int n_dims, const gint64 *shape,
                           const float *data)
{
  return add (w, name, "F32", n_dims, shape, data, FALSE);
}

gboolean
lsc_tensor_writer_add_f32_borrowed (LscTensorWriter *w, const char *name, int n_dims,
                                    const gint64 *shape, const float *data)
{
  return add (w, name, "F32", n_dims, shape, data, TRUE);
}

gboolean
lsc_tensor_writer_add_i32 (LscTensorWriter *w, const char *name, int n_dims, const gint64 *shape,
                           const gint32 *data)
{
  return add (w, name, "I32", n_dims, shape, data, FALSE);
}

guint
lsc_tensor_writer_get_n_tensors (const LscTensorWriter *w)
{
  return w->entries->len;
}

gboolean
lsc_tensor_writer_write (const LscTensorWriter *w, const char *path, GError **error)
{
  g_autoptr(json_object) header = json_object_new_object ();
  json_object *meta = json_object_new_object ();
  guint64 offset = 0;

  json_object_object_add (meta, "producer", json_object_new_string ("longscope " PACKAGE_VERSION));
  json_object_object_add (header, "__metadata__", meta);
  for (guint i = 0; i < w->entries->len; i++)
    {
      const Entry *e = g_ptr_array_index (w->entries, i);
      json_object *t = json_object_new_object ();
      json_object *shape = json_object_new_array ();
      json_object *offsets = json_object_new_array ();
      for (int d = 0; d < e->n_dims; d++)
        json_object_array_add (shape, json_object_new_int64 (e->shape[d]));
      json_object_array_add (offsets, json_object_new_int64 ((gint64) offset));
      offset += g_bytes_get_size (e->data);
      json_object_array_add (offsets, json_object_new_int64 ((gint64) offset));
      json_object_object_add (t, "dtype", json_object_new_string (e->dtype));
      json_object_object_add (t, "shape", shape);
      json_object_object_add (t, "data_offsets", offsets);
      json_object_object_add (header, e->name, t);
    }

  /* the header padded with spaces so that the data starts 8-byte aligned */
  GString *text = g_string_new (json_object_to_json_string_ext (header, JSON_C_TO_STRING_PLAIN));
  while ((8 + text->len) % 8 != 0)
    g_string_append_c (text, ' ');
  guint64 n = GUINT64_TO_LE (text->len);

  g_autofree char *tmp = g_strconcat (path, ".tmp", NULL);
  FILE *f = g_fopen (tmp, "wb");
  gboolean ok = f != NULL;
  ok = ok && fwrite (&n, 8, 1, f) == 1 && fwrite (text->str, 1, text->len, f) == text->len;
  for (guint i = 0; ok && i < w->entries->len; i++)
    {
      const Entry *e = g_ptr_array_index (w->entries, i);
      gsize size;
      const void *data = g_bytes_get_data (e->data, &size);
      ok = size == 0 || fwrite (data, 1, size, f) == size;
    }
  int saved = errno;
  if (f != NULL && fclose (f) != 0 && ok)
    {
      ok = FALSE;
      saved = errno;
    }
  g_string_free (text, TRUE);
  if (!ok || g_rename (tmp, path) != 0)
    {
      if (ok)
        saved = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved), "%s: cannot write: %s",
                   path, g_strerror (saved));
      g_unlink (tmp);
      return FALSE;
    }
  return TRUE;
}
