/* SPDX-License-Identifier: MIT
 *
 * Two readers of SentencePiece vocabularies, both giving an SPM_BPE tokenizer
 * that merges by piece score (see lsc-tokenizer-spm.c).
 *
 * 1. tokenizer.model: a protobuf ModelProto (sentencepiece_model.proto).
 *    Only the fields we use are read; every other field is skipped.
 *
 *      ModelProto {
 *        repeated SentencePiece pieces = 1;   // length-delimited, in id order
 *        TrainerSpec trainer_spec = 2;
 *        NormalizerSpec normalizer_spec = 3;
 *      }
 *      SentencePiece {
 *        string piece = 1;                    // required, non-empty UTF-8
 *        float score = 2;                     // fixed32, default 0
 *        Type type = 3;                       // varint: NORMAL=1 (default), UNKNOWN=2,
 *                                             // CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6
 *      }
 *      TrainerSpec {
 *        ModelType model_type = 3;            // UNIGRAM=1 (default), BPE=2, WORD=3, CHAR=4
 *        bool byte_fallback = 35;             // default false
 *        int32 unk_id = 40;                   // default 0
 *        int32 bos_id = 41;                   // default 1; -1 = none
 *        int32 eos_id = 42;                   // default 2; -1 = none
 *        int32 pad_id = 43;                   // default -1 (read, unused)
 *      }
 *      NormalizerSpec {
 *        string name = 1;                     // "identity", "nmt_nfkc", ...
 *        bool add_dummy_prefix = 3;           // default true
 *        bool remove_extra_whitespaces = 4;   // default true
 *      }
 *
 *    Wire format: each field is a varint key (field_number << 3 | wire_type)
 *    then a value: wire type 0 varint (at most 10 bytes), 1 fixed64 (8 bytes
 *    LE), 2 length-delimited (varint length + bytes), 5 fixed32 (4 bytes LE).
 *    Wire types 3 and 4 (groups), 6 and 7 do not occur and are rejected.
 *    Only BPE models are supported. As llama.cpp, the precompiled normaliser
 *    and remove_extra_whitespaces are not applied: the text is taken as is.
 *
 * 2. llama2.c tokenizer.bin (little endian):
 *
 *      i32 max_token_length
 *      n_vocab × { f32 score, i32 len, len bytes (the piece, no NUL) }
 *
 *    n_vocab comes from the model checkpoint, or -1 to read to the end of the
 *    file. Ids 0, 1, 2 are <unk>, <s>, </s>; pieces use ' ' for spaces and
 *    "<0xXX>" for bytes. Spaces in pieces are rewritten to U+2581 on load so
 *    that the SentencePiece encoder serves this vocabulary unchanged; the
 *    dummy prefix then plays the part of llama2.c's leading " " token.
 */
#include "config.h"

#include "lsc-error.h"
#include "lsc-mapped-file.h"
#include "lsc-tokenizer-private.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                            */

static LscMappedFile *
lsc_sp_map_file (const char *path, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  LscMappedFile *file = lsc_mapped_file_open (path, &local_error);

  if (file == NULL)
    {
      gboolean missing = g_error_matches (local_error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND);
      g_set_error_literal (error, LSC_TOKENIZER_ERROR,
                           missing ? LSC_TOKENIZER_ERROR_NOT_FOUND : LSC_TOKENIZER_ERROR_IO,
                           local_error->message);
    }
  return file;
}

/* The byte value of a "<0xXX>" piece, or -1. */
static int
lsc_sp_byte_piece_value (const char *piece, gsize len)
{
  if (len != 6 || memcmp (piece, "<0x", 3) != 0 || piece[5] != '>')
    return -1;
  if (!g_ascii_isxdigit (piece[3]) || !g_ascii_isxdigit (piece[4]))
    return -1;
  return g_ascii_xdigit_value (piece[3]) * 16 + g_ascii_xdigit_value (piece[4]);
}

/* Registers CONTROL and USER_DEFINED pieces as specials matched in text. */
static void
lsc_sp_add_specials (LscTokenizer *tok)
{
  for (int id = 0; id < tok->n_vocab; id++)
    if (tok->types[id] == LSC_TOKEN_TYPE_CONTROL || tok->types[id] == LSC_TOKEN_TYPE_USER_DEFINED)
      _lsc_tokenizer_add_special (tok, id);
}

/* ------------------------------------------------------------------------ */
/* Protobuf wire format                                                      */

enum {
  LSC_PB_VARINT = 0,
  LSC_PB_FIXED64 = 1,
  LSC_PB_LEN = 2,
  LSC_PB_FIXED32 = 5,
};

/* A cursor over one message: the bytes [p, end) not read yet. */
typedef struct {
  const guint8 *p;
  const guint8 *end;
  const char *file;    /* basename, for messages */
  const char *where;   /* the message being read, e.g. "piece 17" or "trainer_spec" */
} LscPbReader;

static gsize
lsc_pb_left (const LscPbReader *r)
{
  return (gsize) (r->end - r->p);
}

static gboolean
lsc_pb_fail (const LscPbReader *r, GError **error, const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
lsc_pb_fail (const LscPbReader *r, GError **error, const char *format, ...)
{
  g_autofree char *what = NULL;
  va_list args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT, "%s: %s: %s",
               r->file, r->where, what);
  return FALSE;
}

static gboolean
lsc_pb_read_varint (LscPbReader *r, const char *field, guint64 *out, GError **error)
{
  guint64 value = 0;

  *out = 0;   /* on failure too */

  for (guint shift = 0; shift < 64; shift += 7)
    {
      guint8 byte;

      if (r->p == r->end)
        return lsc_pb_fail (r, error, "field '%s': truncated varint at the end of the data", field);
      byte = *r->p++;
      value |= (guint64) (byte & 0x7f) << shift;
      if ((byte & 0x80) == 0)
        {
          *out = value;
          return TRUE;
        }
    }
  return lsc_pb_fail (r, error, "field '%s': varint longer than 10 bytes", field);
}

/* Reads a key; FALSE with an error for impossible keys and wire types. */
static gboolean
lsc_pb_read_key (LscPbReader *r, guint32 *field_number, guint *wire_type, GError **error)
{
  guint64 key;

  if (!lsc_pb_read_varint (r, "key", &key, error))
    return FALSE;
  *wire_type = (guint) (key & 7);
  if ((key >> 3) == 0 || (key >> 3) > G_MAXINT32)
    return lsc_pb_fail (r, error, "field number %" G_GUINT64_FORMAT " is invalid", key >> 3);
  *field_number = (guint32) (key >> 3);
  if (*wire_type != LSC_PB_VARINT && *wire_type != LSC_PB_FIXED64 && *wire_type != LSC_PB_LEN &&
      *wire_type != LSC_PB_FIXED32)
    return lsc_pb_fail (r, error, "field %u has wire type %u, which is not supported "
                        "(0, 1, 2 or 5)", *field_number, *wire_type);
  return TRUE;
}

/* A length-delimited value as a sub-reader over its bytes. */
static gboolean
lsc_pb_read_len (LscPbReader *r, const char *field, LscPbReader *sub, GError **error)
{
  guint64 len;

  if (!lsc_pb_read_varint (r, field, &len, error))
    return FALSE;
  if (len > lsc_pb_left (r))
    return lsc_pb_fail (r, error, "field '%s': length %" G_GUINT64_FORMAT " is past the end "
                        "of the data (%" G_GSIZE_FORMAT " bytes left)", field, len, lsc_pb_left (r));
  sub->p = r->p;
  sub->end = r->p + len;
  sub->file = r->file;
  sub->where = r->where;
  r->p += len;
  return TRUE;
}

static gboolean
lsc_pb_read_fixed32 (LscPbReader *r, const char *field, guint32 *out, GError **error)
{
  guint8 bytes[4];

  if (lsc_pb_left (r) < 4)
    return lsc_pb_fail (r, error, "field '%s': fixed32 is past the end of the data "
                        "(%" G_GSIZE_FORMAT " bytes left)", field, lsc_pb_left (r));
  memcpy (bytes, r->p, 4);
  r->p += 4;
  *out = (guint32) bytes[0] | (guint32) bytes[1] << 8 | (guint32) bytes[2] << 16 |
         (guint32) bytes[3] << 24;
  return TRUE;
}

/* Skips the value of a field we do not use. */
static gboolean
lsc_pb_skip (LscPbReader *r, guint32 field_number, guint wire_type, GError **error)
{
  g_autofree char *field = g_strdup_printf ("%u", field_number);
  LscPbReader sub;
  guint64 ignored;

  switch (wire_type)
    {
    case LSC_PB_VARINT:
      return lsc_pb_read_varint (r, field, &ignored, error);
    case LSC_PB_LEN:
      return lsc_pb_read_len (r, field, &sub, error);
    case LSC_PB_FIXED32:
    case LSC_PB_FIXED64:
      {
        gsize n = wire_type == LSC_PB_FIXED32 ? 4 : 8;
        if (lsc_pb_left (r) < n)
          return lsc_pb_fail (r, error, "field '%s': fixed%u value is past the end of the data",
                              field, (guint) n * 8);
        r->p += n;
        return TRUE;
      }
    default:
      g_assert_not_reached ();
    }
  return FALSE;
}

static const char *
lsc_pb_wire_type_name (guint wire_type)
{
  switch (wire_type)
    {
    case LSC_PB_VARINT: return "0 (varint)";
    case LSC_PB_FIXED64: return "1 (fixed64)";
    case LSC_PB_LEN: return "2 (length-delimited)";
    case LSC_PB_FIXED32: return "5 (fixed32)";
    default: return "?";
    }
}

static gboolean
lsc_pb_expect (const LscPbReader *r, const char *field, guint wire_type, guint expected,
               GError **error)
{
  if (wire_type == expected)
    return TRUE;
  return lsc_pb_fail (r, error, "field '%s' has wire type %u, expected %s", field, wire_type,
                      lsc_pb_wire_type_name (expected));
}

/* An int32 field: protobuf sign-extends negative values to 64 bits. */
static gboolean
lsc_pb_read_int32 (LscPbReader *r, const char *field, guint wire_type, gint32 *out, GError **error)
{
  guint64 v;

  if (!lsc_pb_expect (r, field, wire_type, LSC_PB_VARINT, error) ||
      !lsc_pb_read_varint (r, field, &v, error))
    return FALSE;
  if ((gint64) v < G_MININT32 || (gint64) v > G_MAXINT32)
    return lsc_pb_fail (r, error, "field '%s' value %" G_GINT64_FORMAT " is out of the int32 range",
                        field, (gint64) v);
  *out = (gint32) (gint64) v;
  return TRUE;
}

static gboolean
lsc_pb_read_bool (LscPbReader *r, const char *field, guint wire_type, gboolean *out, GError **error)
{
  guint64 v;

  if (!lsc_pb_expect (r, field, wire_type, LSC_PB_VARINT, error) ||
      !lsc_pb_read_varint (r, field, &v, error))
    return FALSE;
  *out = v != 0;
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* ModelProto                                                                */

/* What the ModelProto says besides its pieces; the protobuf defaults first. */
typedef struct {
  gint32 model_type;          /* 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR */
  gboolean byte_fallback;
  gint32 unk_id, bos_id, eos_id, pad_id;
  gboolean add_dummy_prefix;
  gboolean remove_extra_whitespaces;
} LscSpModelSpec;

static gboolean
lsc_sp_read_trainer_spec (LscPbReader *r, LscSpModelSpec *spec, GError **error)
{
  while (r->p < r->end)
    {
      guint32 field;
      guint wire;
      gboolean ok;

      if (!lsc_pb_read_key (r, &field, &wire, error))
        return FALSE;
      switch (field)
        {
        case 3: ok = lsc_pb_read_int32 (r, "model_type", wire, &spec->model_type, error); break;
        case 35: ok = lsc_pb_read_bool (r, "byte_fallback", wire, &spec->byte_fallback, error); break;
        case 40: ok = lsc_pb_read_int32 (r, "unk_id", wire, &spec->unk_id, error); break;
        case 41: ok = lsc_pb_read_int32 (r, "bos_id", wire, &spec->bos_id, error); break;
        case 42: ok = lsc_pb_read_int32 (r, "eos_id", wire, &spec->eos_id, error); break;
        case 43: ok = lsc_pb_read_int32 (r, "pad_id", wire, &spec->pad_id, error); break;
        default: ok = lsc_pb_skip (r, field, wire, error); break;
        }
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

static gboolean
lsc_sp_read_normalizer_spec (LscPbReader *r, LscSpModelSpec *spec, GError **error)
{
  while (r->p < r->end)
    {
      guint32 field;
      guint wire;
      gboolean ok;

      if (!lsc_pb_read_key (r, &field, &wire, error))
        return FALSE;
      switch (field)
        {
        case 3:
          ok = lsc_pb_read_bool (r, "add_dummy_prefix", wire, &spec->add_dummy_prefix, error);
          break;
        case 4:
          ok = lsc_pb_read_bool (r, "remove_extra_whitespaces", wire,
                                 &spec->remove_extra_whitespaces, error);
          break;
        default:
          ok = lsc_pb_skip (r, field, wire, error);
          break;
        }
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

/* Reads one SentencePiece message into piece (owned, NUL-terminated), score, type. */
static gboolean
lsc_sp_read_piece (LscPbReader *r, char **piece, float *score, guint8 *type, GError **error)
{
  const guint8 *text = NULL;
  gsize text_len = 0;

  *score = 0.0f;
  *type = LSC_TOKEN_TYPE_NORMAL;
  while (r->p < r->end)
    {
      guint32 field, bits = 0;
      guint wire;
      guint64 v;
      LscPbReader sub;

      if (!lsc_pb_read_key (r, &field, &wire, error))
        return FALSE;
      switch (field)
        {
        case 1:
          if (!lsc_pb_expect (r, "piece", wire, LSC_PB_LEN, error) ||
              !lsc_pb_read_len (r, "piece", &sub, error))
            return FALSE;
          text = sub.p;
          text_len = lsc_pb_left (&sub);
          break;
        case 2:
          if (!lsc_pb_expect (r, "score", wire, LSC_PB_FIXED32, error) ||
              !lsc_pb_read_fixed32 (r, "score", &bits, error))
            return FALSE;
          memcpy (score, &bits, sizeof *score);
          break;
        case 3:
          if (!lsc_pb_expect (r, "type", wire, LSC_PB_VARINT, error) ||
              !lsc_pb_read_varint (r, "type", &v, error))
            return FALSE;
          if (v < LSC_TOKEN_TYPE_NORMAL || v > LSC_TOKEN_TYPE_BYTE)
            return lsc_pb_fail (r, error, "field 'type' is %" G_GUINT64_FORMAT
                                ", expected 1..6", v);
          *type = (guint8) v;
          break;
        default:
          if (!lsc_pb_skip (r, field, wire, error))
            return FALSE;
          break;
        }
    }

  if (text == NULL || text_len == 0)
    return lsc_pb_fail (r, error, "field 'piece' is missing or empty");
  if (memchr (text, '\0', text_len) != NULL)
    return lsc_pb_fail (r, error, "field 'piece' contains a NUL byte");
  if (!g_utf8_validate_len ((const char *) text, text_len, NULL))
    return lsc_pb_fail (r, error, "field 'piece' is not valid UTF-8");
  *piece = g_strndup ((const char *) text, text_len);
  return TRUE;
}

/* First pass over the ModelProto: checks its framing, counts the pieces and
 * finds the two specs. Nothing is allocated. */
static gboolean
lsc_sp_scan_model (LscPbReader *r, guint64 *n_pieces, LscPbReader *trainer,
                   LscPbReader *normalizer, GError **error)
{
  *n_pieces = 0;
  while (r->p < r->end)
    {
      guint32 field;
      guint wire;
      LscPbReader sub;

      if (!lsc_pb_read_key (r, &field, &wire, error))
        return FALSE;
      switch (field)
        {
        case 1:
          if (!lsc_pb_expect (r, "pieces", wire, LSC_PB_LEN, error) ||
              !lsc_pb_read_len (r, "pieces", &sub, error))
            return FALSE;
          (*n_pieces)++;
          break;
        case 2:
          if (!lsc_pb_expect (r, "trainer_spec", wire, LSC_PB_LEN, error) ||
              !lsc_pb_read_len (r, "trainer_spec", trainer, error))
            return FALSE;
          break;
        case 3:
          if (!lsc_pb_expect (r, "normalizer_spec", wire, LSC_PB_LEN, error) ||
              !lsc_pb_read_len (r, "normalizer_spec", normalizer, error))
            return FALSE;
          break;
        default:
          if (!lsc_pb_skip (r, field, wire, error))
            return FALSE;
          break;
        }
    }
  return TRUE;
}

/* A special id from the trainer spec: -1 stays "none", others must be pieces. */
static gboolean
lsc_sp_check_id (const char *file, const char *field, gint32 id, int n_vocab, int *out,
                 GError **error)
{
  if (id < 0)
    {
      *out = -1;
      return TRUE;
    }
  if (id >= n_vocab)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: trainer_spec: field '%s' is %d, outside the %d pieces", file, field, id,
                   n_vocab);
      return FALSE;
    }
  *out = id;
  return TRUE;
}

LscTokenizer *
_lsc_tokenizer_load_sentencepiece (const char *path, GError **error)
{
  g_autoptr(LscMappedFile) file = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  g_autofree char *name = NULL;
  LscSpModelSpec spec = { 1, FALSE, 0, 1, 2, -1, TRUE, TRUE };
  LscPbReader top, trainer = { 0 }, normalizer = { 0 };
  guint64 n_pieces;
  char **pieces = NULL;   /* (n_pieces + 1) NULL-terminated, handed to the tokenizer */
  float *scores = NULL;   /* (n_pieces) */
  guint8 *types = NULL;   /* (n_pieces) LscTokenType */
  int n_vocab;

  g_return_val_if_fail (path != NULL, NULL);

  file = lsc_sp_map_file (path, error);
  if (file == NULL)
    return NULL;
  name = g_path_get_basename (path);
  top = (LscPbReader) { file->data, file->data + file->size, name, "ModelProto" };

  if (!lsc_sp_scan_model (&top, &n_pieces, &trainer, &normalizer, error))
    return NULL;
  if (n_pieces == 0 || n_pieces > G_MAXINT / 2)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: ModelProto: field 'pieces' has %" G_GUINT64_FORMAT " entries", name,
                   n_pieces);
      return NULL;
    }
  n_vocab = (int) n_pieces;
  if (trainer.p != NULL && !lsc_sp_read_trainer_spec (&trainer, &spec, error))
    return NULL;
  if (normalizer.p != NULL && !lsc_sp_read_normalizer_spec (&normalizer, &spec, error))
    return NULL;
  if (spec.model_type != 2)
    {
      static const char *const model_types[] = { "?", "UNIGRAM", "BPE", "WORD", "CHAR" };
      const char *type_name = spec.model_type >= 1 && spec.model_type <= 4
                              ? model_types[spec.model_type] : "unknown";
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
                   "%s: trainer_spec: field 'model_type' is %d (%s); only BPE (2) is supported",
                   name, spec.model_type, type_name);
      return NULL;
    }

  tok = _lsc_tokenizer_new (path, LSC_TOKENIZER_SPM_BPE);
  pieces = g_new0 (char *, (gsize) n_vocab + 1);
  scores = g_new0 (float, n_vocab);
  types = g_new0 (guint8, n_vocab);
  top.p = file->data;
  for (int id = 0; top.p < top.end;)
    {
      guint32 field;
      guint wire;
      LscPbReader sub;
      g_autofree char *where = NULL;

      /* the scan checked the framing, so these cannot fail */
      if (!lsc_pb_read_key (&top, &field, &wire, error))
        goto fail;
      if (field != 1)
        {
          if (!lsc_pb_skip (&top, field, wire, error))
            goto fail;
          continue;
        }
      if (!lsc_pb_read_len (&top, "pieces", &sub, error))
        goto fail;
      where = g_strdup_printf ("piece %d", id);
      sub.where = where;
      if (!lsc_sp_read_piece (&sub, &pieces[id], &scores[id], &types[id], error))
        goto fail;
      id++;
    }
  if (!lsc_sp_check_id (name, "unk_id", spec.unk_id, n_vocab, &tok->unk_id, error) ||
      !lsc_sp_check_id (name, "bos_id", spec.bos_id, n_vocab, &tok->bos_id, error) ||
      !lsc_sp_check_id (name, "eos_id", spec.eos_id, n_vocab, &tok->eos_id, error))
    goto fail;

  if (!_lsc_tokenizer_set_vocab (tok, n_vocab, pieces, scores, types, error))
    return NULL;
  tok->add_dummy_prefix = spec.add_dummy_prefix;
  tok->strip_decoded_prefix = spec.add_dummy_prefix;
  tok->byte_fallback = spec.byte_fallback;
  lsc_sp_add_specials (tok);
  return g_steal_pointer (&tok);

fail:
  g_strfreev (pieces);
  g_free (scores);
  g_free (types);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* llama2.c tokenizer.bin                                                    */

static gint32
lsc_sp_read_i32 (const guint8 *p)
{
  guint8 b[4];
  memcpy (b, p, 4);
  return (gint32) ((guint32) b[0] | (guint32) b[1] << 8 | (guint32) b[2] << 16 |
                   (guint32) b[3] << 24);
}

static float
lsc_sp_read_f32 (const guint8 *p)
{
  guint32 bits = (guint32) lsc_sp_read_i32 (p);
  float f;
  memcpy (&f, &bits, sizeof f);
  return f;
}

/* Checks the token record at *offset and moves past it; len_out gets its length. */
static gboolean
lsc_sp_llama2c_record (const LscMappedFile *file, const char *name, int id, gint32 max_len,
                       guint64 *offset, gint32 *len_out, GError **error)
{
  guint64 left = file->size - *offset;
  gint32 len;

  if (left < 8)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: token %d: fields 'score' and 'len' are past the end of the file "
                   "(%" G_GUINT64_FORMAT " bytes left)", name, id, left);
      return FALSE;
    }
  len = lsc_sp_read_i32 (file->data + *offset + 4);
  if (len < 0 || len > max_len)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: token %d: field 'len' is %d, outside 0..max_token_length (%d)", name, id,
                   len, max_len);
      return FALSE;
    }
  if ((guint64) len > left - 8)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: token %d: field 'len' is %d, past the end of the file "
                   "(%" G_GUINT64_FORMAT " bytes left)", name, id, len, left - 8);
      return FALSE;
    }
  if (memchr (file->data + *offset + 8, '\0', (gsize) len) != NULL)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: token %d: field 'piece' contains a NUL byte", name, id);
      return FALSE;
    }
  *offset += 8 + (guint64) len;
  *len_out = len;
  return TRUE;
}

/* A llama2.c piece with ' ' rewritten to U+2581. */
static char *
lsc_sp_llama2c_piece (const guint8 *bytes, gsize len)
{
  GString *piece = g_string_sized_new (len + 1);

  for (gsize i = 0; i < len; i++)
    {
      if (bytes[i] == ' ')
        g_string_append (piece, "\xe2\x96\x81");
      else
        g_string_append_c (piece, (char) bytes[i]);
    }
  return g_string_free (piece, FALSE);
}

static guint8
lsc_sp_llama2c_type (int id, const char *piece)
{
  if (id == 0)
    return LSC_TOKEN_TYPE_UNKNOWN;
  if (id == 1 || id == 2)
    return LSC_TOKEN_TYPE_CONTROL;
  if (lsc_sp_byte_piece_value (piece, strlen (piece)) >= 0)
    return LSC_TOKEN_TYPE_BYTE;
  return LSC_TOKEN_TYPE_NORMAL;
}

LscTokenizer *
_lsc_tokenizer_load_llama2c (const char *path, int n_vocab, GError **error)
{
  g_autoptr(LscMappedFile) file = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  g_autofree char *name = NULL;
  char **pieces;   /* (n_vocab + 1) NULL-terminated, handed to the tokenizer */
  float *scores;   /* (n_vocab) */
  guint8 *types;   /* (n_vocab) LscTokenType */
  gint32 max_len;
  guint64 offset;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (n_vocab >= -1, NULL);

  file = lsc_sp_map_file (path, error);
  if (file == NULL)
    return NULL;
  name = g_path_get_basename (path);

  if (file->size < 4)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: field 'max_token_length' is past the end of the file (%" G_GUINT64_FORMAT
                   " bytes)", name, file->size);
      return NULL;
    }
  max_len = lsc_sp_read_i32 (file->data);
  if (max_len <= 0)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: field 'max_token_length' is %d, expected > 0", name, max_len);
      return NULL;
    }

  /* First pass: validate every record (and count them for n_vocab -1). */
  offset = 4;
  for (int id = 0; n_vocab < 0 ? offset < file->size : id < n_vocab; id++)
    {
      gint32 len;

      if (id >= G_MAXINT / 2)
        {
          g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                       "%s: more than %d tokens", name, G_MAXINT / 2);
          return NULL;
        }
      if (!lsc_sp_llama2c_record (file, name, id, max_len, &offset, &len, error))
        return NULL;
      if (n_vocab < 0 && offset == file->size)
        n_vocab = id + 1;
    }
  if (n_vocab <= 0)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: the vocabulary is empty", name);
      return NULL;
    }

  /* Second pass: copy the pieces. */
  pieces = g_new0 (char *, (gsize) n_vocab + 1);
  scores = g_new0 (float, n_vocab);
  types = g_new0 (guint8, n_vocab);
  offset = 4;
  for (int id = 0; id < n_vocab; id++)
    {
      gint32 len = lsc_sp_read_i32 (file->data + offset + 4);
      scores[id] = lsc_sp_read_f32 (file->data + offset);
      pieces[id] = lsc_sp_llama2c_piece (file->data + offset + 8, (gsize) len);
      types[id] = lsc_sp_llama2c_type (id, pieces[id]);
      offset += 8 + (guint64) len;
    }

  tok = _lsc_tokenizer_new (path, LSC_TOKENIZER_SPM_BPE);
  if (!_lsc_tokenizer_set_vocab (tok, n_vocab, pieces, scores, types, error))
    return NULL;
  tok->unk_id = 0;
  tok->bos_id = n_vocab > 1 ? 1 : -1;
  tok->eos_id = n_vocab > 2 ? 2 : -1;
  tok->add_dummy_prefix = TRUE;
  tok->strip_decoded_prefix = TRUE;
  tok->byte_fallback = TRUE;
  return g_steal_pointer (&tok);
}
