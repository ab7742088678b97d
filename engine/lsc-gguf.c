/* SPDX-License-Identifier: MIT
 *
 * lsc-gguf.c: the GGUF reader. The format and the validation rules are
 * specified at the top of lsc-gguf.h; in short (little endian):
 *
 *   u32 magic "GGUF", u32 version (2, 3), u64 n_tensors, u64 n_kv,
 *   n_kv × { string key, u32 type, value },
 *   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
 *   padding to general.alignment (default 32), tensor data.
 *
 * Parsing is one forward pass over the mapped bytes with a cursor
 * (GgufReader). Every read is bounds-checked; every count is checked against
 * the bytes left (count × the smallest size an element can have) before
 * anything is allocated for it. Metadata values are decoded up front:
 * strings become NUL-terminated copies, string arrays one block of pointers
 * followed by the characters (a 150k-token vocabulary is one allocation),
 * numeric arrays aligned float / int32 copies. Tensor data stays in the map.
 */
#include "config.h"

#include <string.h>

#include "lsc-gguf.h"
#include "lsc-error.h"
#include "lsc-mapped-file.h"

#define LSC_GGUF_MAGIC             0x46554747u  /* "GGUF" read as little-endian u32 */
#define LSC_GGUF_DEFAULT_ALIGNMENT 32
#define LSC_GGUF_MAX_ARRAY_DEPTH   8            /* arrays of arrays of ... */
#define LSC_GGUF_MIN_KV_BYTES      (8 + 4 + 1)  /* empty key, type, one-byte value */
/* empty name, n_dims, ne[0], type, offset */
#define LSC_GGUF_MIN_TENSOR_BYTES  (8 + 4 + 8 + 4 + 8)
#define LSC_GGUF_SHORT_ARRAY       8            /* value_to_string prints arrays up to this */

/* A decoded scalar of any numeric type (bool is UNSIGNED 0/1). */
typedef struct {
  enum { GGUF_NUM_UNSIGNED, GGUF_NUM_SIGNED, GGUF_NUM_FLOAT } kind;
  guint64 u;
  gint64 i;
  double f;
} GgufNumber;

typedef struct {
  char *key;                  /* NUL-terminated copy; keys hold no NUL */
  LscGgufType type;
  GgufNumber num;             /* integer, bool and float scalars */
  char *str;                  /* STRING: (str_len + 1) bytes, NUL-terminated; may hold NULs */
  guint64 str_len;
  /* ARRAY */
  LscGgufType array_type;
  guint64 array_len;
  const guint8 *array_data;   /* the elements in the map (unaligned) */
  char **strv;                /* STRING elements: (array_len + 1) pointers, NULL-terminated,
                               * followed in the same block by the NUL-terminated characters */
  float *f32;                 /* FLOAT32/FLOAT64 elements: (max (array_len, 1)) */
  gint32 *i32;                /* integer/bool elements, when every one fits: (max (array_len, 1)) */
  guint64 i32_misfit;         /* when i32 is NULL for an integer array: the first misfit */
} LscGgufKv;

struct _LscGguf {
  char *path;                 /* as given */
  char *name;                 /* basename, for messages */
  LscMappedFile *file;        /* owned when opened with lsc_gguf_open (), else NULL */
  const guint8 *data;         /* (size) bytes of the whole file */
  guint64 size;
  guint32 version;
  guint32 alignment;
  LscGgufKv *kvs;             /* (n_kv) */
  guint n_kv;
  GHashTable *kv_index;       /* key (borrowed) -> index + 1 */
  LscGgufTensorInfo *tensors; /* (n_tensors) */
  guint64 n_tensors;
  GHashTable *tensor_index;   /* name (borrowed) -> index + 1 */
  guint64 data_offset;        /* start of the data section (aligned) */
};

/* A cursor over the mapped bytes. */
typedef struct {
  const char *name;           /* file name for messages */
  const guint8 *data;         /* (size) */
  guint64 size;
  guint64 pos;
} GgufReader;

/* ggml.h numbering; NULL = a number ggml never used. */
static const char *const ggml_type_names[] = {
  [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [4] = "Q4_2", [5] = "Q4_3",
  [6] = "Q5_0", [7] = "Q5_1", [8] = "Q8_0", [9] = "Q8_1", [10] = "Q2_K", [11] = "Q3_K",
  [12] = "Q4_K", [13] = "Q5_K", [14] = "Q6_K", [15] = "Q8_K", [16] = "IQ2_XXS",
  [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S",
  [22] = "IQ2_S", [23] = "IQ4_XS", [24] = "I8", [25] = "I16", [26] = "I32", [27] = "I64",
  [28] = "F64", [29] = "IQ1_M", [30] = "BF16", [31] = "Q4_0_4_4", [32] = "Q4_0_4_8",
  [33] = "Q4_0_8_8", [34] = "TQ1_0", [35] = "TQ2_0", [36] = "IQ4_NL_4_4",
  [37] = "IQ4_NL_4_8", [38] = "IQ4_NL_8_8", [39] = "MXFP4",
};

const char *
lsc_ggml_type_name (guint32 ggml_type)
{
  if (ggml_type < G_N_ELEMENTS (ggml_type_names) && ggml_type_names[ggml_type] != NULL)
    return ggml_type_names[ggml_type];
  return "unknown";
}

static gboolean
ggml_type_is_known (guint32 ggml_type)
{
  return ggml_type < G_N_ELEMENTS (ggml_type_names) && ggml_type_names[ggml_type] != NULL;
}

static const char *
gguf_type_name (guint32 type)
{
  static const char *const names[] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL", "STRING",
    "ARRAY", "UINT64", "INT64", "FLOAT64",
  };
  return type < G_N_ELEMENTS (names) ? names[type] : "unknown";
}

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown types. */
static guint64
gguf_type_fixed_size (guint32 type)
{
  switch (type)
    {
    case LSC_GGUF_TYPE_UINT8: case LSC_GGUF_TYPE_INT8: case LSC_GGUF_TYPE_BOOL:
      return 1;
    case LSC_GGUF_TYPE_UINT16: case LSC_GGUF_TYPE_INT16:
      return 2;
    case LSC_GGUF_TYPE_UINT32: case LSC_GGUF_TYPE_INT32: case LSC_GGUF_TYPE_FLOAT32:
      return 4;
    case LSC_GGUF_TYPE_UINT64: case LSC_GGUF_TYPE_INT64: case LSC_GGUF_TYPE_FLOAT64:
      return 8;
    default:
      return 0;
    }
}

/* The fewest bytes a value of `type` can take; 0 for unknown types. */
static guint64
gguf_type_min_size (guint32 type)
{
  if (type == LSC_GGUF_TYPE_STRING)
    return 8;                   /* u64 length */
  if (type == LSC_GGUF_TYPE_ARRAY)
    return 4 + 8;               /* element type, count */
  return gguf_type_fixed_size (type);
}

static gboolean
gguf_type_is_integer (guint32 type)
{
  return gguf_type_fixed_size (type) != 0 && type != LSC_GGUF_TYPE_FLOAT32
         && type != LSC_GGUF_TYPE_FLOAT64;
}

static guint32
load_u32 (const guint8 *p)
{
  guint32 v;
  memcpy (&v, p, sizeof v);
  return GUINT32_FROM_LE (v);
}

static guint64
load_u64 (const guint8 *p)
{
  guint64 v;
  memcpy (&v, p, sizeof v);
  return GUINT64_FROM_LE (v);
}

/* Decodes one value of a fixed-size type at p. */
static GgufNumber
decode_number (guint32 type, const guint8 *p)
{
  GgufNumber n = { GGUF_NUM_UNSIGNED, 0, 0, 0.0 };
  guint16 u16;
  guint32 u32;
  guint64 u64;

  switch (type)
    {
    case LSC_GGUF_TYPE_UINT8:
      n.u = p[0];
      break;
    case LSC_GGUF_TYPE_BOOL:
      n.u = p[0] != 0;
      break;
    case LSC_GGUF_TYPE_INT8:
      n.kind = GGUF_NUM_SIGNED;
      n.i = (gint8) p[0];
      break;
    case LSC_GGUF_TYPE_UINT16:
      memcpy (&u16, p, 2);
      n.u = GUINT16_FROM_LE (u16);
      break;
    case LSC_GGUF_TYPE_INT16:
      memcpy (&u16, p, 2);
      n.kind = GGUF_NUM_SIGNED;
      n.i = (gint16) GUINT16_FROM_LE (u16);
      break;
    case LSC_GGUF_TYPE_UINT32:
      n.u = load_u32 (p);
      break;
    case LSC_GGUF_TYPE_INT32:
      n.kind = GGUF_NUM_SIGNED;
      n.i = (gint32) load_u32 (p);
      break;
    case LSC_GGUF_TYPE_UINT64:
      n.u = load_u64 (p);
      break;
    case LSC_GGUF_TYPE_INT64:
      n.kind = GGUF_NUM_SIGNED;
      n.i = (gint64) load_u64 (p);
      break;
    case LSC_GGUF_TYPE_FLOAT32:
      {
        float f;
        u32 = load_u32 (p);
        memcpy (&f, &u32, 4);
        n.kind = GGUF_NUM_FLOAT;
        n.f = f;
      }
      break;
    case LSC_GGUF_TYPE_FLOAT64:
      u64 = load_u64 (p);
      n.kind = GGUF_NUM_FLOAT;
      memcpy (&n.f, &u64, 8);
      break;
    default:
      g_assert_not_reached ();
    }
  return n;
}

/* ---- the cursor ---------------------------------------------------------- */

static gboolean
reader_need (GgufReader *r, guint64 n_bytes, const char *what, GError **error)
{
  if (n_bytes <= r->size - r->pos)
    return TRUE;
  g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
               "%s: %s: %" G_GUINT64_FORMAT " bytes at offset %" G_GUINT64_FORMAT
               " are past the end of the file (%" G_GUINT64_FORMAT " bytes)",
               r->name, what, n_bytes, r->pos, r->size);
  return FALSE;
}

/* `count` items of at least `min_size` bytes each must fit in what is left.
 * A count no file of this size could hold is CORRUPT, one that merely runs
 * past the end TRUNCATED. */
static gboolean
reader_need_count (GgufReader *r, guint64 count, guint64 min_size, const char *what,
                   GError **error)
{
  guint64 need;
  gboolean fits = g_uint64_checked_mul (&need, count, min_size);

  if (fits && need <= r->size - r->pos)
    return TRUE;
  if (!fits || need > r->size)
    g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                 "%s: %s: count %" G_GUINT64_FORMAT " (at least %" G_GUINT64_FORMAT
                 " bytes each) cannot fit in the file (%" G_GUINT64_FORMAT " bytes)",
                 r->name, what, count, min_size, r->size);
  else
    g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                 "%s: %s: count %" G_GUINT64_FORMAT " (at least %" G_GUINT64_FORMAT
                 " bytes each) runs past the end of the file (%" G_GUINT64_FORMAT
                 " bytes left after offset %" G_GUINT64_FORMAT ")",
                 r->name, what, count, min_size, r->size - r->pos, r->pos);
  return FALSE;
}

static gboolean
reader_u32 (GgufReader *r, guint32 *out, const char *what, GError **error)
{
  if (!reader_need (r, 4, what, error))
    return FALSE;
  *out = load_u32 (r->data + r->pos);
  r->pos += 4;
  return TRUE;
}

static gboolean
reader_u64 (GgufReader *r, guint64 *out, const char *what, GError **error)
{
  if (!reader_need (r, 8, what, error))
    return FALSE;
  *out = load_u64 (r->data + r->pos);
  r->pos += 8;
  return TRUE;
}

/* A GGUF string: *bytes (*len) points into the map. */
static gboolean
reader_string (GgufReader *r, const guint8 **bytes, guint64 *len, const char *what,
               GError **error)
{
  if (!reader_u64 (r, len, what, error)
      || !reader_need_count (r, *len, 1, what, error))
    return FALSE;
  *bytes = r->data + r->pos;
  r->pos += *len;
  return TRUE;
}

/* A key or tensor name: a string without NUL bytes, copied. */
static char *
reader_name (GgufReader *r, const char *what, GError **error)
{
  const guint8 *bytes;
  guint64 len;

  if (!reader_string (r, &bytes, &len, what, error))
    return NULL;
  if (memchr (bytes, 0, len) != NULL)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %s: the name contains a NUL byte", r->name, what);
      return NULL;
    }
  return g_strndup ((const char *) bytes, len);
}

/* Skips a value of `type` (arrays nest up to LSC_GGUF_MAX_ARRAY_DEPTH). */
static gboolean
reader_skip_value (GgufReader *r, guint32 type, int depth, const char *what, GError **error)
{
  guint64 size = gguf_type_fixed_size (type);
  guint32 elem_type;
  guint64 count;
  const guint8 *bytes;

  if (size != 0)
    {
      if (!reader_need (r, size, what, error))
        return FALSE;
      r->pos += size;
      return TRUE;
    }
  if (type == LSC_GGUF_TYPE_STRING)
    return reader_string (r, &bytes, &count, what, error);

  g_assert (type == LSC_GGUF_TYPE_ARRAY);
  if (depth >= LSC_GGUF_MAX_ARRAY_DEPTH)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %s: arrays nested deeper than %d levels", r->name, what,
                   LSC_GGUF_MAX_ARRAY_DEPTH);
      return FALSE;
    }
  if (!reader_u32 (r, &elem_type, what, error))
    return FALSE;
  if (gguf_type_min_size (elem_type) == 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %s: unknown array element type %u", r->name, what, elem_type);
      return FALSE;
    }
  if (!reader_u64 (r, &count, what, error)
      || !reader_need_count (r, count, gguf_type_min_size (elem_type), what, error))
    return FALSE;
  size = gguf_type_fixed_size (elem_type);
  if (size != 0)
    {
      r->pos += count * size;   /* checked by reader_need_count */
      return TRUE;
    }
  for (guint64 i = 0; i < count; i++)
    if (!reader_skip_value (r, elem_type, depth + 1, what, error))
      return FALSE;
  return TRUE;
}

/* ---- metadata values ------------------------------------------------------- */

static void
kv_clear (LscGgufKv *kv)
{
  g_free (kv->key);
  g_free (kv->str);
  g_free (kv->strv);
  g_free (kv->f32);
  g_free (kv->i32);
}

/* Copies `count` strings starting at `p` (already validated) into one block. */
static char **
copy_string_array (const guint8 *p, guint64 count, guint64 total_len, const char *name,
                   const char *what, GError **error)
{
  gsize n_ptrs, ptr_bytes, block;
  char **strv;
  char *chars;

  /* (count + 1) pointers, then count strings of total_len bytes + count NULs */
  if (!g_size_checked_add (&n_ptrs, count, 1)
      || !g_size_checked_mul (&ptr_bytes, n_ptrs, sizeof (char *))
      || !g_size_checked_add (&block, ptr_bytes, total_len)
      || !g_size_checked_add (&block, block, count))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %s: %" G_GUINT64_FORMAT " strings do not fit in memory", name, what, count);
      return NULL;
    }
  strv = g_malloc (block);
  chars = (char *) (strv + n_ptrs);
  for (guint64 i = 0; i < count; i++)
    {
      guint64 len = load_u64 (p);
      strv[i] = chars;
      memcpy (chars, p + 8, len);
      chars[len] = '\0';
      chars += len + 1;
      p += 8 + len;
    }
  strv[count] = NULL;
  return strv;
}

/* Decodes a fixed-size array into the aligned copies the getters return. */
static void
decode_numeric_array (LscGgufKv *kv)
{
  guint64 size = gguf_type_fixed_size (kv->array_type);
  guint64 n_alloc = MAX (kv->array_len, 1);

  if (kv->array_type == LSC_GGUF_TYPE_FLOAT32 || kv->array_type == LSC_GGUF_TYPE_FLOAT64)
    {
      kv->f32 = g_new0 (float, n_alloc);
      for (guint64 i = 0; i < kv->array_len; i++)
        kv->f32[i] = (float) decode_number (kv->array_type, kv->array_data + i * size).f;
      return;
    }

  kv->i32 = g_new0 (gint32, n_alloc);
  for (guint64 i = 0; i < kv->array_len; i++)
    {
      GgufNumber n = decode_number (kv->array_type, kv->array_data + i * size);
      gboolean fits = n.kind == GGUF_NUM_SIGNED ? n.i >= G_MININT32 && n.i <= G_MAXINT32
                                                 : n.u <= G_MAXINT32;
      if (!fits)
        {
          g_clear_pointer (&kv->i32, g_free);
          kv->i32_misfit = i;
          return;
        }
      kv->i32[i] = n.kind == GGUF_NUM_SIGNED ? (gint32) n.i : (gint32) n.u;
    }
}

static gboolean
parse_array (GgufReader *r, LscGgufKv *kv, const char *what, GError **error)
{
  guint32 elem_type;
  guint64 count, size, total_len = 0;

  if (!reader_u32 (r, &elem_type, what, error))
    return FALSE;
  if (gguf_type_min_size (elem_type) == 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %s: unknown array element type %u", r->name, what, elem_type);
      return FALSE;
    }
  if (!reader_u64 (r, &count, what, error)
      || !reader_need_count (r, count, gguf_type_min_size (elem_type), what, error))
    return FALSE;

  kv->array_type = elem_type;
  kv->array_len = count;
  kv->array_data = r->data + r->pos;

  size = gguf_type_fixed_size (elem_type);
  if (size != 0)
    {
      r->pos += count * size;   /* checked by reader_need_count */
      decode_numeric_array (kv);
      return TRUE;
    }

  if (elem_type == LSC_GGUF_TYPE_STRING)
    {
      for (guint64 i = 0; i < count; i++)
        {
          const guint8 *bytes;
          guint64 len;
          if (!reader_string (r, &bytes, &len, what, error))
            return FALSE;
          total_len += len;     /* bounded by the file size */
        }
      kv->strv = copy_string_array (kv->array_data, count, total_len, r->name, what, error);
      return kv->strv != NULL;
    }

  for (guint64 i = 0; i < count; i++)
    if (!reader_skip_value (r, elem_type, 1, what, error))
      return FALSE;
  return TRUE;
}

static gboolean
parse_value (GgufReader *r, LscGgufKv *kv, const char *what, GError **error)
{
  guint64 size = gguf_type_fixed_size (kv->type);

  if (size != 0)
    {
      if (!reader_need (r, size, what, error))
        return FALSE;
      kv->num = decode_number (kv->type, r->data + r->pos);
      r->pos += size;
      return TRUE;
    }
  if (kv->type == LSC_GGUF_TYPE_STRING)
    {
      const guint8 *bytes;
      if (!reader_string (r, &bytes, &kv->str_len, what, error))
        return FALSE;
      kv->str = g_malloc (kv->str_len + 1);
      memcpy (kv->str, bytes, kv->str_len);
      kv->str[kv->str_len] = '\0';
      return TRUE;
    }
  return parse_array (r, kv, what, error);
}

/* ---- the file ---------------------------------------------------------------- */

static gboolean
parse_header (LscGguf *gguf, GgufReader *r, guint64 *n_tensors, guint64 *n_kv,
              GError **error)
{
  guint32 magic;

  if (r->size < 4)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                   "%s: the file is %" G_GUINT64_FORMAT " bytes, too short for the GGUF magic",
                   gguf->name, r->size);
      return FALSE;
    }
  magic = load_u32 (r->data);
  if (magic != LSC_GGUF_MAGIC)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_MAGIC,
                   "%s: magic 0x%08x is not \"GGUF\" (0x%08x): not a GGUF file",
                   gguf->name, magic, LSC_GGUF_MAGIC);
      return FALSE;
    }
  r->pos = 4;
  if (!reader_u32 (r, &gguf->version, "version", error))
    return FALSE;
  if (gguf->version != 2 && gguf->version != 3)
    {
      guint32 swapped = GUINT32_SWAP_LE_BE (gguf->version);
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_VERSION,
                   "%s: version %u is not supported (GGUF 2 and 3 are)%s", gguf->name,
                   gguf->version,
                   gguf->version == 1 ? "; version 1 used 32-bit counts, convert the file again"
                   : swapped == 2 || swapped == 3 ? "; this looks like a big-endian file" : "");
      return FALSE;
    }
  if (!reader_u64 (r, n_tensors, "n_tensors", error)
      || !reader_u64 (r, n_kv, "n_kv", error))
    return FALSE;
  /* Early plausibility checks; exact ones follow when the items are read. */
  if (!reader_need_count (r, *n_kv, LSC_GGUF_MIN_KV_BYTES, "n_kv", error)
      || !reader_need_count (r, *n_tensors, LSC_GGUF_MIN_TENSOR_BYTES, "n_tensors", error))
    return FALSE;
  if (*n_kv > G_MAXUINT || *n_tensors > G_MAXUINT)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: n_kv %" G_GUINT64_FORMAT " or n_tensors %" G_GUINT64_FORMAT
                   " is too large", gguf->name, *n_kv, *n_tensors);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_kvs (LscGguf *gguf, GgufReader *r, guint64 n_kv, GError **error)
{
  gguf->kvs = g_new0 (LscGgufKv, n_kv);
  gguf->n_kv = (guint) n_kv;
  for (guint i = 0; i < gguf->n_kv; i++)
    {
      LscGgufKv *kv = &gguf->kvs[i];
      g_autofree char *where = g_strdup_printf ("key #%u", i);
      g_autofree char *what = NULL;
      guint32 type;

      kv->key = reader_name (r, where, error);
      if (kv->key == NULL)
        return FALSE;
      what = g_strdup_printf ("key '%s'", kv->key);
      if (g_hash_table_contains (gguf->kv_index, kv->key))
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: %s appears twice (duplicate key)", gguf->name, what);
          return FALSE;
        }
      g_hash_table_insert (gguf->kv_index, kv->key, GUINT_TO_POINTER (i + 1));

      if (!reader_u32 (r, &type, what, error))
        return FALSE;
      if (gguf_type_min_size (type) == 0)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: %s: unknown value type %u", gguf->name, what, type);
          return FALSE;
        }
      kv->type = type;
      if (!parse_value (r, kv, what, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
parse_alignment (LscGguf *gguf, GError **error)
{
  int index = lsc_gguf_find_key (gguf, "general.alignment");
  const LscGgufKv *kv;

  gguf->alignment = LSC_GGUF_DEFAULT_ALIGNMENT;
  if (index < 0)
    return TRUE;
  kv = &gguf->kvs[index];
  if (kv->type != LSC_GGUF_TYPE_UINT32)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: key 'general.alignment' has type %s, expected UINT32", gguf->name,
                   gguf_type_name (kv->type));
      return FALSE;
    }
  if (kv->num.u == 0 || (kv->num.u & (kv->num.u - 1)) != 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: key 'general.alignment' is %" G_GUINT64_FORMAT
                   ", which is not a power of two", gguf->name, kv->num.u);
      return FALSE;
    }
  gguf->alignment = (guint32) kv->num.u;
  return TRUE;
}

/* The LscDType of a ggml type we compute with, or an error naming the tensor. */
static gboolean
tensor_dtype (const LscGguf *gguf, const char *what, guint32 ggml_type, LscDType *dtype,
              GError **error)
{
  switch (ggml_type)
    {
    case LSC_GGML_TYPE_F32:  *dtype = LSC_DTYPE_F32;  return TRUE;
    case LSC_GGML_TYPE_F16:  *dtype = LSC_DTYPE_F16;  return TRUE;
    case LSC_GGML_TYPE_BF16: *dtype = LSC_DTYPE_BF16; return TRUE;
    case LSC_GGML_TYPE_Q8_0: *dtype = LSC_DTYPE_Q8_0; return TRUE;
    default:
      break;
    }
  if (!ggml_type_is_known (ggml_type))
    g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                 "%s: %s has unknown ggml type %u", gguf->name, what, ggml_type);
  else
    g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,
                 "%s: %s has type %s, which Longscope does not compute with "
                 "(F32, F16, BF16, Q8_0)", gguf->name, what, lsc_ggml_type_name (ggml_type));
  return FALSE;
}

/* Bytes of n elements of dtype; FALSE on overflow. Q8_0: n is a multiple of 32. */
static gboolean
tensor_n_bytes (LscDType dtype, guint64 n_elements, guint64 *n_bytes)
{
  switch (dtype)
    {
    case LSC_DTYPE_F32:
      return g_uint64_checked_mul (n_bytes, n_elements, 4);
    case LSC_DTYPE_F16:
    case LSC_DTYPE_BF16:
      return g_uint64_checked_mul (n_bytes, n_elements, 2);
    case LSC_DTYPE_Q8_0:
      return g_uint64_checked_mul (n_bytes, n_elements / LSC_Q8_0_BLOCK, sizeof (LscBlockQ8_0));
    default:
      g_assert_not_reached ();
    }
  return FALSE;
}

/* One tensor info; info->offset is left relative to the data section. */
static gboolean
parse_tensor_info (LscGguf *gguf, GgufReader *r, guint64 index, LscGgufTensorInfo *info,
                   GError **error)
{
  g_autofree char *where = g_strdup_printf ("tensor #%" G_GUINT64_FORMAT, index);
  g_autofree char *what = NULL;
  guint32 n_dims;
  guint64 n_elements = 1;

  info->name = reader_name (r, where, error);
  if (info->name == NULL)
    return FALSE;
  what = g_strdup_printf ("tensor '%s'", info->name);
  if (g_hash_table_contains (gguf->tensor_index, info->name))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %s appears twice (duplicate tensor name)", gguf->name, what);
      return FALSE;
    }
  g_hash_table_insert (gguf->tensor_index, info->name, GSIZE_TO_POINTER (index + 1));

  if (!reader_u32 (r, &n_dims, what, error))
    return FALSE;
  if (n_dims < 1 || n_dims > 4)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %s: n_dims %u is outside 1..4", gguf->name, what, n_dims);
      return FALSE;
    }
  info->n_dims = (int) n_dims;
  for (int d = 0; d < 4; d++)
    info->ne[d] = 1;
  for (int d = 0; d < info->n_dims; d++)
    {
      if (!reader_u64 (r, &info->ne[d], what, error))
        return FALSE;
      if (info->ne[d] == 0 || info->ne[d] > G_MAXINT64)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: %s: ne[%d] = %" G_GUINT64_FORMAT " is not a valid dimension",
                       gguf->name, what, d, info->ne[d]);
          return FALSE;
        }
      if (!g_uint64_checked_mul (&n_elements, n_elements, info->ne[d])
          || n_elements > G_MAXINT64)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: %s: the element count overflows at ne[%d] = %" G_GUINT64_FORMAT,
                       gguf->name, what, d, info->ne[d]);
          return FALSE;
        }
    }

  if (!reader_u32 (r, &info->ggml_type, what, error)
      || !tensor_dtype (gguf, what, info->ggml_type, &info->dtype, error))
    return FALSE;
  if (info->dtype == LSC_DTYPE_Q8_0 && info->ne[0] % LSC_Q8_0_BLOCK != 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %s: type Q8_0 needs ne[0] = %" G_GUINT64_FORMAT
                   " to be a multiple of %d", gguf->name, what, info->ne[0], LSC_Q8_0_BLOCK);
      return FALSE;
    }
  if (!tensor_n_bytes (info->dtype, n_elements, &info->n_bytes))
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: %s: the byte size overflows", gguf->name, what);
      return FALSE;
    }
  return reader_u64 (r, &info->offset, what, error);
}

/* Places the data section after the header and every tensor inside it. */
static gboolean
place_tensors (LscGguf *gguf, GgufReader *r, GError **error)
{
  guint64 data_size;

  /* r->pos <= size, so rounding up cannot overflow meaningfully; check anyway */
  if (!g_uint64_checked_add (&gguf->data_offset, r->pos, gguf->alignment - 1))
    gguf->data_offset = G_MAXUINT64;
  gguf->data_offset -= gguf->data_offset % gguf->alignment;
  data_size = gguf->data_offset < gguf->size ? gguf->size - gguf->data_offset : 0;

  for (guint64 i = 0; i < gguf->n_tensors; i++)
    {
      LscGgufTensorInfo *info = &gguf->tensors[i];
      guint64 offset = info->offset;

      if (offset % gguf->alignment != 0)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                       "%s: tensor '%s': offset %" G_GUINT64_FORMAT
                       " is not a multiple of the alignment (%u)", gguf->name, info->name,
                       offset, gguf->alignment);
          return FALSE;
        }
      if (offset > data_size || info->n_bytes > data_size - offset)
        {
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
                       "%s: tensor '%s': offset %" G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT
                       " bytes is past the end of the data section (%" G_GUINT64_FORMAT
                       " bytes)", gguf->name, info->name, offset, info->n_bytes, data_size);
          return FALSE;
        }
      info->offset = gguf->data_offset + offset;
    }
  return TRUE;
}

LscGguf *
lsc_gguf_new_from_data (const char *path, const guint8 *data, guint64 size, GError **error)
{
  g_autoptr(LscGguf) gguf = NULL;
  GgufReader r;
  guint64 n_tensors, n_kv;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (data != NULL || size == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  gguf = g_new0 (LscGguf, 1);
  gguf->path = g_strdup (path);
  gguf->name = g_path_get_basename (path);
  gguf->data = data;
  gguf->size = size;
  gguf->kv_index = g_hash_table_new (g_str_hash, g_str_equal);
  gguf->tensor_index = g_hash_table_new (g_str_hash, g_str_equal);

  r = (GgufReader) { gguf->name, data, size, 0 };
  if (!parse_header (gguf, &r, &n_tensors, &n_kv, error)
      || !parse_kvs (gguf, &r, n_kv, error)
      || !parse_alignment (gguf, error)
      || !reader_need_count (&r, n_tensors, LSC_GGUF_MIN_TENSOR_BYTES, "n_tensors", error))
    return NULL;

  gguf->tensors = g_new0 (LscGgufTensorInfo, n_tensors);
  gguf->n_tensors = n_tensors;
  for (guint64 i = 0; i < n_tensors; i++)
    if (!parse_tensor_info (gguf, &r, i, &gguf->tensors[i], error))
      return NULL;
  if (!place_tensors (gguf, &r, error))
    return NULL;
  return g_steal_pointer (&gguf);
}

LscGguf *
lsc_gguf_open (const char *path, GError **error)
{
  g_autoptr(LscMappedFile) file = NULL;
  LscGguf *gguf;

  g_return_val_if_fail (path != NULL, NULL);

  file = lsc_mapped_file_open (path, error);
  if (file == NULL)
    return NULL;
  gguf = lsc_gguf_new_from_data (path, file->data, file->size, error);
  if (gguf != NULL)
    gguf->file = g_steal_pointer (&file);
  return gguf;
}

void
lsc_gguf_free (LscGguf *gguf)
{
  if (gguf == NULL)
    return;
  for (guint i = 0; i < gguf->n_kv; i++)
    kv_clear (&gguf->kvs[i]);
  g_free (gguf->kvs);
  for (guint64 i = 0; i < gguf->n_tensors; i++)
    g_free (gguf->tensors[i].name);
  g_free (gguf->tensors);
  g_clear_pointer (&gguf->kv_index, g_hash_table_unref);
  g_clear_pointer (&gguf->tensor_index, g_hash_table_unref);
  lsc_mapped_file_free (gguf->file);
  g_free (gguf->path);
  g_free (gguf->name);
  g_free (gguf);
}

const char *
lsc_gguf_get_path (const LscGguf *gguf)
{
  g_return_val_if_fail (gguf != NULL, NULL);
  return gguf->path;
}

guint32
lsc_gguf_get_version (const LscGguf *gguf)
{
  g_return_val_if_fail (gguf != NULL, 0);
  return gguf->version;
}

guint32
lsc_gguf_get_alignment (const LscGguf *gguf)
{
  g_return_val_if_fail (gguf != NULL, 0);
  return gguf->alignment;
}

const guint8 *
lsc_gguf_get_data (const LscGguf *gguf, guint64 *size)
{
  g_return_val_if_fail (gguf != NULL, NULL);
  if (size != NULL)
    *size = gguf->size;
  return gguf->data;
}

/* ---- metadata getters ------------------------------------------------------ */

guint
lsc_gguf_get_n_kv (const LscGguf *gguf)
{
  g_return_val_if_fail (gguf != NULL, 0);
  return gguf->n_kv;
}

const char *
lsc_gguf_get_key (const LscGguf *gguf, guint index)
{
  g_return_val_if_fail (gguf != NULL && index < gguf->n_kv, NULL);
  return gguf->kvs[index].key;
}

int
lsc_gguf_find_key (const LscGguf *gguf, const char *key)
{
  guint index;

  g_return_val_if_fail (gguf != NULL && key != NULL, -1);
  index = GPOINTER_TO_UINT (g_hash_table_lookup (gguf->kv_index, key));
  return index == 0 || index - 1 > G_MAXINT ? -1 : (int) (index - 1);
}

gboolean
lsc_gguf_has_key (const LscGguf *gguf, const char *key)
{
  return lsc_gguf_find_key (gguf, key) >= 0;
}

LscGgufType
lsc_gguf_get_kv_type (const LscGguf *gguf, guint index)
{
  g_return_val_if_fail (gguf != NULL && index < gguf->n_kv, LSC_GGUF_TYPE_UINT8);
  return gguf->kvs[index].type;
}

LscGgufType
lsc_gguf_get_array_type (const LscGguf *gguf, guint index)
{
  g_return_val_if_fail (gguf != NULL && index < gguf->n_kv, LSC_GGUF_TYPE_UINT8);
  return gguf->kvs[index].array_type;
}

guint64
lsc_gguf_get_array_length (const LscGguf *gguf, guint index)
{
  g_return_val_if_fail (gguf != NULL && index < gguf->n_kv, 0);
  return gguf->kvs[index].array_len;
}

/* "UINT32" or "ARRAY of STRING", for messages. */
static char *
kv_type_description (const LscGgufKv *kv)
{
  if (kv->type == LSC_GGUF_TYPE_ARRAY)
    return g_strdup_printf ("ARRAY of %s", gguf_type_name (kv->array_type));
  return g_strdup (gguf_type_name (kv->type));
}

static const LscGgufKv *
lookup_kv (const LscGguf *gguf, const char *key, GError **error)
{
  int index = lsc_gguf_find_key (gguf, key);

  if (index < 0)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: key '%s' is missing", gguf->name, key);
      return NULL;
    }
  return &gguf->kvs[index];
}

static void
set_type_error (const LscGguf *gguf, const LscGgufKv *kv, const char *expected, GError **error)
{
  g_autofree char *actual = kv_type_description (kv);

  g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
               "%s: key '%s' has type %s, expected %s", gguf->name, kv->key, actual, expected);
}

gboolean
lsc_gguf_get_int (const LscGguf *gguf, const char *key, gint64 *out, GError **error)
{
  const LscGgufKv *kv;

  g_return_val_if_fail (gguf != NULL && key != NULL && out != NULL, FALSE);
  kv = lookup_kv (gguf, key, error);
  if (kv == NULL)
    return FALSE;
  if (!gguf_type_is_integer (kv->type))
    {
      set_type_error (gguf, kv, "an integer", error);
      return FALSE;
    }
  if (kv->num.kind == GGUF_NUM_SIGNED)
    *out = kv->num.i;
  else if (kv->num.u <= G_MAXINT64)
    *out = (gint64) kv->num.u;
  else
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: key '%s' = %" G_GUINT64_FORMAT " does not fit in int64", gguf->name,
                   key, kv->num.u);
      return FALSE;
    }
  return TRUE;
}

gboolean
lsc_gguf_get_double (const LscGguf *gguf, const char *key, double *out, GError **error)
{
  const LscGgufKv *kv;

  g_return_val_if_fail (gguf != NULL && key != NULL && out != NULL, FALSE);
  kv = lookup_kv (gguf, key, error);
  if (kv == NULL)
    return FALSE;
  if (gguf_type_fixed_size (kv->type) == 0 || kv->type == LSC_GGUF_TYPE_BOOL)
    {
      set_type_error (gguf, kv, "a number", error);
      return FALSE;
    }
  switch (kv->num.kind)
    {
    case GGUF_NUM_FLOAT:    *out = kv->num.f; break;
    case GGUF_NUM_SIGNED:   *out = (double) kv->num.i; break;
    case GGUF_NUM_UNSIGNED: *out = (double) kv->num.u; break;
    default: g_assert_not_reached ();
    }
  return TRUE;
}

gboolean
lsc_gguf_get_bool (const LscGguf *gguf, const char *key, gboolean *out, GError **error)
{
  const LscGgufKv *kv;

  g_return_val_if_fail (gguf != NULL && key != NULL && out != NULL, FALSE);
  kv = lookup_kv (gguf, key, error);
  if (kv == NULL)
    return FALSE;
  if (kv->type != LSC_GGUF_TYPE_BOOL)
    {
      set_type_error (gguf, kv, "BOOL", error);
      return FALSE;
    }
  *out = kv->num.u != 0;
  return TRUE;
}

const char *
lsc_gguf_get_string (const LscGguf *gguf, const char *key, GError **error)
{
  const LscGgufKv *kv;

  g_return_val_if_fail (gguf != NULL && key != NULL, NULL);
  kv = lookup_kv (gguf, key, error);
  if (kv == NULL)
    return NULL;
  if (kv->type != LSC_GGUF_TYPE_STRING)
    {
      set_type_error (gguf, kv, "STRING", error);
      return NULL;
    }
  return kv->str;
}

/* The kv of an array `key`, or NULL with an error. */
static const LscGgufKv *
lookup_array (const LscGguf *gguf, const char *key, const char *expected, GError **error)
{
  const LscGgufKv *kv = lookup_kv (gguf, key, error);

  if (kv != NULL && kv->type != LSC_GGUF_TYPE_ARRAY)
    {
      set_type_error (gguf, kv, expected, error);
      return NULL;
    }
  return kv;
}

const char *const *
lsc_gguf_get_string_array (const LscGguf *gguf, const char *key, guint64 *n, GError **error)
{
  const LscGgufKv *kv;

  g_return_val_if_fail (gguf != NULL && key != NULL, NULL);
  kv = lookup_array (gguf, key, "ARRAY of STRING", error);
  if (kv == NULL)
    return NULL;
  if (kv->strv == NULL)
    {
      set_type_error (gguf, kv, "ARRAY of STRING", error);
      return NULL;
    }
  if (n != NULL)
    *n = kv->array_len;
  return (const char *const *) kv->strv;
}

const float *
lsc_gguf_get_f32_array (const LscGguf *gguf, const char *key, guint64 *n, GError **error)
{
  const LscGgufKv *kv;

  g_return_val_if_fail (gguf != NULL && key != NULL, NULL);
  kv = lookup_array (gguf, key, "ARRAY of FLOAT32", error);
  if (kv == NULL)
    return NULL;
  if (kv->f32 == NULL)
    {
      set_type_error (gguf, kv, "ARRAY of FLOAT32", error);
      return NULL;
    }
  if (n != NULL)
    *n = kv->array_len;
  return kv->f32;
}

const gint32 *
lsc_gguf_get_i32_array (const LscGguf *gguf, const char *key, guint64 *n, GError **error)
{
  const LscGgufKv *kv;

  g_return_val_if_fail (gguf != NULL && key != NULL, NULL);
  kv = lookup_array (gguf, key, "ARRAY of INT32", error);
  if (kv == NULL)
    return NULL;
  if (!gguf_type_is_integer (kv->array_type))
    {
      set_type_error (gguf, kv, "ARRAY of INT32", error);
      return NULL;
    }
  if (kv->i32 == NULL)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                   "%s: key '%s': element %" G_GUINT64_FORMAT " does not fit in int32",
                   gguf->name, key, kv->i32_misfit);
      return NULL;
    }
  if (n != NULL)
    *n = kv->array_len;
  return kv->i32;
}

/* ---- display --------------------------------------------------------------- */

static void
append_number (GString *out, guint32 type, GgufNumber n)
{
  if (type == LSC_GGUF_TYPE_BOOL)
    g_string_append (out, n.u ? "true" : "false");
  else if (n.kind == GGUF_NUM_FLOAT)
    g_string_append_printf (out, "%g", n.f);
  else if (n.kind == GGUF_NUM_SIGNED)
    g_string_append_printf (out, "%" G_GINT64_FORMAT, n.i);
  else
    g_string_append_printf (out, "%" G_GUINT64_FORMAT, n.u);
}

/* A quoted, escaped string, cut after 60 bytes. */
static void
append_quoted (GString *out, const char *s, gsize len)
{
  char high[129];               /* bytes 0x80..0xff, kept as they are (UTF-8) */
  gsize shown = MIN (len, 60);
  g_autofree char *valid = NULL;
  g_autofree char *escaped = NULL;

  for (int i = 0; i < 128; i++)
    high[i] = (char) (0x80 + i);
  high[128] = '\0';
  valid = g_utf8_make_valid (s, (gssize) shown);
  escaped = g_strescape (valid, high);
  g_string_append_printf (out, "\"%s\"%s", escaped, shown < len ? "…" : "");
}

char *
lsc_gguf_value_to_string (const LscGguf *gguf, guint index)
{
  const LscGgufKv *kv;
  GString *out;

  g_return_val_if_fail (gguf != NULL && index < gguf->n_kv, NULL);
  kv = &gguf->kvs[index];
  out = g_string_new (NULL);

  if (kv->type == LSC_GGUF_TYPE_STRING)
    append_quoted (out, kv->str, kv->str_len);
  else if (kv->type != LSC_GGUF_TYPE_ARRAY)
    append_number (out, kv->type, kv->num);
  else if (kv->array_len > LSC_GGUF_SHORT_ARRAY || kv->array_type == LSC_GGUF_TYPE_ARRAY)
    g_string_append_printf (out, "[%" G_GUINT64_FORMAT " × %s]", kv->array_len,
                            gguf_type_name (kv->array_type));
  else
    {
      guint64 size = gguf_type_fixed_size (kv->array_type);
      g_string_append_c (out, '[');
      for (guint64 i = 0; i < kv->array_len; i++)
        {
          if (i > 0)
            g_string_append (out, ", ");
          if (kv->strv != NULL)
            append_quoted (out, kv->strv[i], strlen (kv->strv[i]));
          else
            append_number (out, kv->array_type,
                           decode_number (kv->array_type, kv->array_data + i * size));
        }
      g_string_append_c (out, ']');
    }
  return g_string_free (out, FALSE);
}

/* ---- tensors ----------------------------------------------------------------- */

guint64
lsc_gguf_get_n_tensors (const LscGguf *gguf)
{
  g_return_val_if_fail (gguf != NULL, 0);
  return gguf->n_tensors;
}

const LscGgufTensorInfo *
lsc_gguf_get_tensor (const LscGguf *gguf, guint64 index)
{
  g_return_val_if_fail (gguf != NULL && index < gguf->n_tensors, NULL);
  return &gguf->tensors[index];
}
