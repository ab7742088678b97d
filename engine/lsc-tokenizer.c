/* SPDX-License-Identifier: MIT
 *
 * lsc-tokenizer.c: the tokenizer core shared by every reader and algorithm:
 * the vocabulary tables, merge ranks, special tokens, the public
 * encode/decode entry points, and lsc_tokenizer_load (), which finds the
 * tokenizer file for a path and picks its reader.
 *
 * Finding the tokenizer (lsc_tokenizer_load):
 *
 *   directory            tokenizer.json, else tokenizer.model
 *   *.json               Hugging Face tokenizer.json
 *   "GGUF" magic         the vocabulary stored in the GGUF file
 *   *.model              SentencePiece model (protobuf)
 *   *.bin                a llama2.c tokenizer when its records parse as one:
 *                          i32 max_token_length,
 *                          { f32 score, i32 len, len bytes } until the end;
 *                        otherwise a llama2.c checkpoint, either
 *                          7 × i32 (dim, hidden_dim, n_layers, n_heads,
 *                                   n_kv_heads, vocab_size, seq_len)  or
 *                          u32 magic "ak42" (0x616b3432), i32 version, then
 *                          the same 7 × i32;
 *                        its tokenizer is tokenizer.bin beside it, else the
 *                        single tok*.bin there, else tokenizer.model, read
 *                        with |vocab_size| entries.
 *   any other file       tokenizer.json, else tokenizer.model beside it
 *
 * Encoding (lsc_tokenizer_encode): the text is validated as UTF-8, then cut
 * at every literal occurrence of a special token (leftmost, longest first,
 * as Hugging Face's added-vocabulary matcher does); each stretch between
 * special tokens is normalised (NFC when the tokenizer asks for it) and
 * encoded by the tokenizer's algorithm.
 */
#include "config.h"

#include "lsc-tokenizer-private.h"

#include "lsc-demo.h"
#include "lsc-error.h"
#include "lsc-gguf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LSC_LLAMA2C_MAGIC 0x616b3432u  /* "ak42" little endian */

/* ---------------------------------------------------------------------- */
/* construction                                                           */
/* ---------------------------------------------------------------------- */

LscTokenizer *
_lsc_tokenizer_new (const char *path, LscTokenizerKind kind)
{
  LscTokenizer *tok = g_new0 (LscTokenizer, 1);

  tok->path = g_strdup (path);
  tok->kind = kind;
  tok->bos_id = tok->eos_id = tok->unk_id = -1;
  for (int b = 0; b < 256; b++)
    tok->byte_ids[b] = -1;
  tok->specials = g_array_new (FALSE, FALSE, sizeof (int));
  tok->pre_regexes = g_ptr_array_new_with_free_func ((GDestroyNotify) g_regex_unref);
  return tok;
}

void
lsc_tokenizer_free (LscTokenizer *tok)
{
  if (tok == NULL)
    return;
  if (tok->pieces != NULL)
    for (int i = 0; i < tok->n_vocab; i++)
      g_free (tok->pieces[i]);
  g_free (tok->pieces);
  g_free (tok->scores);
  g_free (tok->types);
  g_clear_pointer (&tok->piece_to_id, g_hash_table_unref);
  g_clear_pointer (&tok->merge_rank, g_hash_table_unref);
  g_clear_pointer (&tok->specials, g_array_unref);
  g_clear_pointer (&tok->pre_regexes, g_ptr_array_unref);
  g_free (tok->path);
  g_free (tok);
}

static const char *
tokenizer_name (const LscTokenizer *tok)
{
  const char *slash = tok->path != NULL ? strrchr (tok->path, G_DIR_SEPARATOR) : NULL;
  if (tok->path == NULL)
    return "tokenizer";
  return slash != NULL && slash[1] != '\0' ? slash + 1 : tok->path;
}

/* Length of the piece of a special id (0 when it has none). */
static gsize
special_len (const LscTokenizer *tok, int id)
{
  return id >= 0 && id < tok->n_vocab && tok->pieces[id] != NULL ? strlen (tok->pieces[id]) : 0;
}

static int
compare_specials_longest_first (gconstpointer a, gconstpointer b, gpointer user_data)
{
  const LscTokenizer *tok = user_data;
  gsize la = special_len (tok, *(const int *) a);
  gsize lb = special_len (tok, *(const int *) b);
  if (la != lb)
    return la > lb ? -1 : 1;
  return *(const int *) a - *(const int *) b;
}

static void
sort_specials (LscTokenizer *tok)
{
  g_array_sort_with_data (tok->specials, compare_specials_longest_first, tok);
}

gboolean
_lsc_tokenizer_set_vocab (LscTokenizer *tok, int n_vocab, char **pieces, float *scores,
                          guint8 *types, GError **error)
{
  g_return_val_if_fail (tok != NULL && tok->pieces == NULL, FALSE);

  /* Take ownership first so that every path frees them with the tokenizer. */
  tok->n_vocab = n_vocab > 0 ? n_vocab : 0;
  tok->pieces = pieces;
  tok->scores = scores;
  tok->types = types;

  if (n_vocab <= 0 || pieces == NULL)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: vocabulary: %d tokens, expected at least one", tokenizer_name (tok),
                   n_vocab);
      return FALSE;
    }
  if (tok->types == NULL)
    {
      tok->types = g_new (guint8, n_vocab);
      memset (tok->types, LSC_TOKEN_TYPE_NORMAL, n_vocab);
    }

  tok->piece_to_id = g_hash_table_new (g_str_hash, g_str_equal);
  for (int id = 0; id < n_vocab; id++)
    {
      if (pieces[id] == NULL)
        {
          g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                       "%s: vocabulary: token %d has no text", tokenizer_name (tok), id);
          return FALSE;
        }
      /* Duplicates keep the lowest id; gaps (UNUSED, empty) are not looked up. */
      if (pieces[id][0] == '\0' && tok->types[id] == LSC_TOKEN_TYPE_UNUSED)
        continue;
      if (!g_hash_table_contains (tok->piece_to_id, pieces[id]))
        g_hash_table_insert (tok->piece_to_id, pieces[id], GINT_TO_POINTER (id + 1));
    }

  for (int b = 0; b < 256; b++)
    {
      if (tok->kind == LSC_TOKENIZER_SPM_BPE)
        {
          char name[8];  /* "<0xAB>" + NUL */
          g_snprintf (name, sizeof name, "<0x%02X>", b);
          tok->byte_ids[b] = _lsc_tokenizer_piece_id (tok, name, -1);
        }
      else
        {
          char utf8[8];  /* one UTF-8 character + NUL */
          int n = g_unichar_to_utf8 (_lsc_tokenizer_bpe_byte_char ((guint8) b), utf8);
          tok->byte_ids[b] = _lsc_tokenizer_piece_id (tok, utf8, n);
        }
    }

  /* Specials registered before the vocabulary could not be ordered yet. */
  sort_specials (tok);
  return TRUE;
}

void
_lsc_tokenizer_add_merge (LscTokenizer *tok, const char *left, const char *right)
{
  g_return_if_fail (tok != NULL && left != NULL && right != NULL);

  if (tok->merge_rank == NULL)
    tok->merge_rank = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  char *key = g_strconcat (left, " ", right, NULL);
  if (g_hash_table_contains (tok->merge_rank, key))
    {
      g_free (key);  /* a repeated rule keeps its first (best) rank */
      return;
    }
  guint rank = g_hash_table_size (tok->merge_rank);
  g_hash_table_insert (tok->merge_rank, key, GUINT_TO_POINTER (rank + 1));
}

void
_lsc_tokenizer_add_special (LscTokenizer *tok, int id)
{
  g_return_if_fail (tok != NULL && id >= 0);

  for (guint i = 0; i < tok->specials->len; i++)
    if (g_array_index (tok->specials, int, i) == id)
      return;
  if (tok->pieces != NULL && special_len (tok, id) == 0)
    return;  /* outside the vocabulary, or empty: nothing to match */

  g_array_append_val (tok->specials, id);
  if (tok->pieces != NULL)
    sort_specials (tok);
}

int
_lsc_tokenizer_piece_id (const LscTokenizer *tok, const char *piece, gssize len)
{
  if (tok->piece_to_id == NULL || piece == NULL)
    return -1;
  if (len < 0)
    return GPOINTER_TO_INT (g_hash_table_lookup (tok->piece_to_id, piece)) - 1;

  char buf[256];  /* (len + 1) short pieces are looked up without allocating */
  if ((gsize) len < sizeof buf)
    {
      memcpy (buf, piece, len);
      buf[len] = '\0';
      return GPOINTER_TO_INT (g_hash_table_lookup (tok->piece_to_id, buf)) - 1;
    }
  g_autofree char *copy = g_strndup (piece, len);
  return GPOINTER_TO_INT (g_hash_table_lookup (tok->piece_to_id, copy)) - 1;
}

/* ---------------------------------------------------------------------- */
/* encode                                                                 */
/* ---------------------------------------------------------------------- */

/* Offset of the first invalid UTF-8 sequence in text, or -1. NUL is valid. */
static gssize
find_invalid_utf8 (const char *text, gsize len)
{
  const char *end = NULL;
  gsize done = 0;

  while (done < len)
    {
      /* g_utf8_validate_len () stops at NUL bytes, which are valid text. */
      if (g_utf8_validate_len (text + done, len - done, &end))
        return -1;
      done = end - text;
      if (text[done] != '\0')
        return done;
      done++;
    }
  return -1;
}

/* Appends the NFC form of text to out; embedded NULs are kept as they are. */
static void
append_nfc (GString *out, const char *text, gsize len)
{
  while (len > 0)
    {
      const char *nul = memchr (text, '\0', len);
      gsize part = nul != NULL ? (gsize) (nul - text) : len;
      if (part > 0)
        {
          g_autofree char *nfc = g_utf8_normalize (text, part, G_NORMALIZE_NFC);
          g_string_append (out, nfc);
        }
      if (nul == NULL)
        break;
      g_string_append_c (out, '\0');
      text += part + 1;
      len -= part + 1;
    }
}

/* One stretch of text with no special token in it. Every stretch either
 * starts the input or follows a special token, and SentencePiece-style
 * tokenizers give each one the dummy prefix (llama.cpp's is_prev_special,
 * Hugging Face's Prepend normalizer runs on every stretch). */
static void
encode_stretch (const LscTokenizer *tok, const char *text, gsize len, GArray *out)
{
  g_autoptr(GString) buf = NULL;  /* the normalised stretch, when it differs */

  if (len == 0)
    return;
  if (tok->nfc)
    {
      buf = g_string_sized_new (len + 8);
      append_nfc (buf, text, len);
    }
  if (tok->kind == LSC_TOKENIZER_BYTE_BPE && tok->add_dummy_prefix)
    {
      /* ByteLevel add_prefix_space: " " unless the stretch starts with one. */
      if (buf == NULL)
        buf = g_string_new_len (text, len);
      if (buf->str[0] != ' ')
        g_string_prepend_c (buf, ' ');
    }
  if (buf != NULL)
    {
      text = buf->str;
      len = buf->len;
    }

  if (tok->kind == LSC_TOKENIZER_SPM_BPE)
    _lsc_tokenizer_spm_encode (tok, text, len, out);
  else
    _lsc_tokenizer_bpe_encode (tok, text, len, out);
}

/* The id of the longest special token at text[0..], or -1. */
static int
match_special (const LscTokenizer *tok, const gboolean *first_byte, const char *text, gsize len)
{
  if (!first_byte[(guint8) text[0]])
    return -1;
  for (guint i = 0; i < tok->specials->len; i++)  /* longest first */
    {
      int id = g_array_index (tok->specials, int, i);
      gsize n = special_len (tok, id);
      if (n > 0 && n <= len && memcmp (text, tok->pieces[id], n) == 0)
        return id;
    }
  return -1;
}

GArray *
lsc_tokenizer_encode (const LscTokenizer *tok, const char *text, gssize len,
                      gboolean add_bos, GError **error)
{
  g_return_val_if_fail (tok != NULL, NULL);
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  gsize n = len < 0 ? strlen (text) : (gsize) len;
  gssize bad = find_invalid_utf8 (text, n);
  if (bad >= 0)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                   "%s: input text: invalid UTF-8 at byte offset %" G_GSSIZE_FORMAT
                   " (byte 0x%02x)", tokenizer_name (tok), bad, (guint8) text[bad]);
      return NULL;
    }

  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));  /* (n_ids) */
  if (add_bos && tok->bos_id >= 0)
    {
      gint32 bos = tok->bos_id;
      g_array_append_val (ids, bos);
    }

  gboolean first_byte[256] = { FALSE };  /* first bytes of the special tokens */
  for (guint i = 0; i < tok->specials->len; i++)
    {
      int id = g_array_index (tok->specials, int, i);
      if (special_len (tok, id) > 0)
        first_byte[(guint8) tok->pieces[id][0]] = TRUE;
    }

  gsize stretch = 0;  /* start of the text not yet encoded */
  gsize pos = 0;
  while (pos < n)
    {
      int id = match_special (tok, first_byte, text + pos, n - pos);
      if (id < 0)
        {
          pos++;
          continue;
        }
      encode_stretch (tok, text + stretch, pos - stretch, ids);
      gint32 special = id;
      g_array_append_val (ids, special);
      pos += special_len (tok, id);
      stretch = pos;
    }
  encode_stretch (tok, text + stretch, n - stretch, ids);
  return ids;
}

/* ---------------------------------------------------------------------- */
/* decode                                                                 */
/* ---------------------------------------------------------------------- */

#define REPLACEMENT_CHAR "\357\277\275"  /* U+FFFD */

/* Length of the valid UTF-8 sequence at s[0..n), or, when it is invalid,
 * minus the length of its maximal invalid prefix (at least 1): the
 * "maximal subpart" rule of Unicode §3.9 that Rust's from_utf8_lossy
 * (and so Hugging Face's decoders) follow. */
static int
utf8_sequence (const guint8 *s, gsize n)
{
  guint8 b = s[0];
  int need;         /* continuation bytes */
  guint8 lo = 0x80, hi = 0xbf;  /* range of the first continuation byte */

  if (b < 0x80)
    return 1;
  else if (b >= 0xc2 && b <= 0xdf)
    need = 1;
  else if (b >= 0xe0 && b <= 0xef)
    {
      need = 2;
      if (b == 0xe0)
        lo = 0xa0;
      else if (b == 0xed)
        hi = 0x9f;
    }
  else if (b >= 0xf0 && b <= 0xf4)
    {
      need = 3;
      if (b == 0xf0)
        lo = 0x90;
      else if (b == 0xf4)
        hi = 0x8f;
    }
  else
    return -1;

  for (int i = 1; i <= need; i++)
    {
      if ((gsize) i >= n || s[i] < lo || s[i] > hi)
        return -i;
      lo = 0x80;
      hi = 0xbf;
    }
  return need + 1;
}

static char *
utf8_make_valid_lossy (const GString *bytes)
{
  GString *out = g_string_sized_new (bytes->len + 1);
  const guint8 *s = (const guint8 *) bytes->str;
  gsize i = 0;

  while (i < bytes->len)
    {
      int n = utf8_sequence (s + i, bytes->len - i);
      if (n > 0)
        g_string_append_len (out, (const char *) s + i, n);
      else
        g_string_append (out, REPLACEMENT_CHAR);
      i += ABS (n);
    }
  return g_string_free (out, FALSE);
}

/* SentencePiece byte pieces: a run that is valid UTF-8 is kept, otherwise
 * every byte of it becomes U+FFFD (Hugging Face's ByteFallback decoder). */
static void
flush_byte_run (GString *run, GString *out)
{
  if (run->len == 0)
    return;
  if (g_utf8_validate_len (run->str, run->len, NULL))
    g_string_append_len (out, run->str, run->len);
  else
    for (gsize i = 0; i < run->len; i++)
      g_string_append (out, REPLACEMENT_CHAR);
  g_string_truncate (run, 0);
}

/* An SPM <0xXX> piece: typed BYTE, or (llama2.c files carry no types) the
 * id byte_ids found for its byte. */
static gboolean
is_spm_byte_piece (const LscTokenizer *tok, int id)
{
  const char *piece = tok->pieces[id];
  unsigned int byte = 0;

  if (tok->kind != LSC_TOKENIZER_SPM_BPE)
    return FALSE;
  if (tok->types[id] == LSC_TOKEN_TYPE_BYTE)
    return TRUE;
  if (strlen (piece) != 6 || !g_str_has_prefix (piece, "<0x") || piece[5] != '>'
      || !g_ascii_isxdigit (piece[3]) || !g_ascii_isxdigit (piece[4]))
    return FALSE;
  byte = g_ascii_xdigit_value (piece[3]) * 16 + g_ascii_xdigit_value (piece[4]);
  return tok->byte_ids[byte] == id;
}

char *
lsc_tokenizer_decode (const LscTokenizer *tok, const gint32 *ids, gsize n_ids)
{
  g_return_val_if_fail (tok != NULL, NULL);
  g_return_val_if_fail (ids != NULL || n_ids == 0, NULL);

  g_autoptr(GString) bytes = g_string_new (NULL);  /* decoded bytes, maybe invalid UTF-8 */
  g_autoptr(GString) run = g_string_new (NULL);    /* pending SPM byte pieces */

  for (gsize i = 0; i < n_ids; i++)
    {
      int id = ids[i];
      if (id < 0 || id >= tok->n_vocab)
        continue;  /* padding rows decode to "" */

      guint8 type = tok->types[id];
      if (is_spm_byte_piece (tok, id))
        {
          _lsc_tokenizer_spm_decode_piece (tok, id, run);
          continue;
        }
      flush_byte_run (run, bytes);

      if (type == LSC_TOKEN_TYPE_CONTROL || type == LSC_TOKEN_TYPE_USER_DEFINED)
        g_string_append (bytes, tok->pieces[id]);
      else if (tok->kind == LSC_TOKENIZER_SPM_BPE)
        _lsc_tokenizer_spm_decode_piece (tok, id, bytes);
      else
        _lsc_tokenizer_bpe_decode_piece (tok, id, bytes);
    }
  flush_byte_run (run, bytes);

  /* Hugging Face's Strip decoder: one leading space (the dummy prefix). */
  if (tok->strip_decoded_prefix && bytes->len > 0 && bytes->str[0] == ' ')
    g_string_erase (bytes, 0, 1);

  return utf8_make_valid_lossy (bytes);
}

/* ---------------------------------------------------------------------- */
/* accessors                                                              */
/* ---------------------------------------------------------------------- */

LscTokenizerKind
lsc_tokenizer_get_kind (const LscTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, LSC_TOKENIZER_SPM_BPE);
  return tok->kind;
}

const char *
lsc_tokenizer_get_path (const LscTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, NULL);
  return tok->path;
}

int
lsc_tokenizer_get_n_vocab (const LscTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, 0);
  return tok->n_vocab;
}

int
lsc_tokenizer_get_bos (const LscTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, -1);
  return tok->bos_id;
}

int
lsc_tokenizer_get_eos (const LscTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, -1);
  return tok->eos_id;
}

const char *
lsc_tokenizer_get_piece (const LscTokenizer *tok, int id)
{
  g_return_val_if_fail (tok != NULL, NULL);
  if (id < 0 || id >= tok->n_vocab)
    return NULL;
  return tok->pieces[id];
}

gboolean
lsc_tokenizer_id_is_special (const LscTokenizer *tok, int id)
{
  g_return_val_if_fail (tok != NULL, FALSE);
  return id >= 0 && id < tok->n_vocab && tok->types[id] == LSC_TOKEN_TYPE_CONTROL;
}

gboolean
lsc_tokenizer_id_is_padding (const LscTokenizer *tok, int id)
{
  g_return_val_if_fail (tok != NULL, FALSE);
  return id >= tok->n_vocab;
}

/* ---------------------------------------------------------------------- */
/* finding the tokenizer                                                  */
/* ---------------------------------------------------------------------- */

static gboolean
has_suffix_ci (const char *name, const char *suffix)
{
  gsize n = strlen (name), s = strlen (suffix);
  return n >= s && g_ascii_strcasecmp (name + n - s, suffix) == 0;
}

static guint32
read_u32_le (const guint8 *p)
{
  return (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
}

/* TRUE when data walks as a llama2.c tokenizer (see the top of the file)
 * and ends exactly after its last record. */
static gboolean
parses_as_llama2c_tokenizer (const guint8 *data, gsize size)
{
  if (size < 4)
    return FALSE;
  gint32 max_len = (gint32) read_u32_le (data);
  if (max_len <= 0 || max_len > 65536)
    return FALSE;

  gsize pos = 4, n_tokens = 0;
  while (pos < size)
    {
      if (size - pos < 8)
        return FALSE;
      gint32 len = (gint32) read_u32_le (data + pos + 4);
      if (len < 0 || len > max_len || (gsize) len > size - pos - 8)
        return FALSE;
      pos += 8 + (gsize) len;
      n_tokens++;
    }
  return n_tokens > 0;
}

/* The |vocab_size| of a llama2.c checkpoint header, or -1. */
static int
llama2c_checkpoint_vocab (const guint8 *data, gsize size)
{
  gsize header = 0;  /* offset of the 7 × i32 */
  if (size >= 4 && read_u32_le (data) == LSC_LLAMA2C_MAGIC)
    header = 8;
  if (size < header + 7 * 4)
    return -1;
  gint32 fields[7];  /* dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len */
  for (int i = 0; i < 7; i++)
    fields[i] = (gint32) read_u32_le (data + header + 4 * i);
  for (int i = 0; i < 7; i++)
    if (fields[i] == 0 || fields[i] == G_MININT32 || (i != 5 && fields[i] < 0))
      return -1;
  return ABS (fields[5]);
}

/* The single file tok*.bin in dir other than `self`, or NULL. */
static char *
find_single_tok_bin (const char *dir, const char *self)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  g_autofree char *self_base = g_path_get_basename (self);
  char *found = NULL;
  const char *name;

  if (d == NULL)
    return NULL;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      if (!g_str_has_prefix (name, "tok") || !has_suffix_ci (name, ".bin")
          || strcmp (name, self_base) == 0)
        continue;
      if (found != NULL)
        {
          g_clear_pointer (&found, g_free);
          return NULL;  /* ambiguous */
        }
      found = g_build_filename (dir, name, NULL);
    }
  return found;
}

static LscTokenizer *
load_beside_llama2c (const char *model_path, int n_vocab, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (model_path);
  g_autofree char *bin = g_build_filename (dir, "tokenizer.bin", NULL);
  g_autofree char *model = g_build_filename (dir, "tokenizer.model", NULL);

  if (g_file_test (bin, G_FILE_TEST_IS_REGULAR))
    return _lsc_tokenizer_load_llama2c (bin, n_vocab, error);
  g_autofree char *tok_bin = find_single_tok_bin (dir, model_path);
  if (tok_bin != NULL)
    return _lsc_tokenizer_load_llama2c (tok_bin, n_vocab, error);
  if (g_file_test (model, G_FILE_TEST_IS_REGULAR))
    return _lsc_tokenizer_load_sentencepiece (model, error);

  g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND,
               "%s: no tokenizer for this llama2.c checkpoint: looked for tokenizer.bin, "
               "a single tok*.bin and tokenizer.model in %s", model_path, dir);
  return NULL;
}

static LscTokenizer *
load_from_dir (const char *dir, const char *what, GError **error)
{
  g_autofree char *json = g_build_filename (dir, "tokenizer.json", NULL);
  g_autofree char *model = g_build_filename (dir, "tokenizer.model", NULL);

  if (g_file_test (json, G_FILE_TEST_IS_REGULAR))
    return _lsc_tokenizer_load_json (json, error);
  if (g_file_test (model, G_FILE_TEST_IS_REGULAR))
    return _lsc_tokenizer_load_sentencepiece (model, error);

  g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND,
               "%s: no tokenizer found: looked for tokenizer.json and tokenizer.model in %s",
               what, dir);
  return NULL;
}

static LscTokenizer *
load_gguf (const char *path, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(LscGguf) gguf = lsc_gguf_open (path, &local);

  if (gguf == NULL)
    {
      /* The GGUF reader speaks LSC_MODEL_ERROR; callers here expect ours. */
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT, "%s",
                   local->message);
      return NULL;
    }
  return _lsc_tokenizer_load_gguf (gguf, error);
}

/* The whole file, memory-mapped. */
static GBytes *
map_file (const char *path, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(GMappedFile) mapped = g_mapped_file_new (path, FALSE, &local);

  if (mapped == NULL)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_IO, "%s: cannot read: %s",
                   path, local->message);
      return NULL;
    }
  return g_mapped_file_get_bytes (mapped);
}

static LscTokenizer *
load_bin (const char *path, GError **error)
{
  g_autoptr(GBytes) bytes = map_file (path, error);
  if (bytes == NULL)
    return NULL;

  gsize size = 0;
  const guint8 *data = g_bytes_get_data (bytes, &size);
  gboolean magic = size >= 4 && read_u32_le (data) == LSC_LLAMA2C_MAGIC;

  if (!magic && parses_as_llama2c_tokenizer (data, size))
    return _lsc_tokenizer_load_llama2c (path, -1, error);

  int n_vocab = llama2c_checkpoint_vocab (data, size);
  if (n_vocab <= 0)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: header: neither a llama2.c tokenizer nor a llama2.c checkpoint", path);
      return NULL;
    }
  return load_beside_llama2c (path, n_vocab, error);
}

LscTokenizer *
lsc_tokenizer_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* built-in demo tokenizers (lsc-demo.c) */
  const char *demo = lsc_demo_match_path (path);
  if (demo != NULL)
    return lsc_demo_tokenizer_new (demo, error);

  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    return load_from_dir (path, path, error);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND,
                   "%s: no such tokenizer file or model directory", path);
      return NULL;
    }

  if (has_suffix_ci (path, ".json"))
    return _lsc_tokenizer_load_json (path, error);

  guint8 magic[4] = { 0 };  /* the first bytes of the file */
  FILE *f = fopen (path, "rb");
  if (f == NULL)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_IO, "%s: cannot open: %s",
                   path, g_strerror (errno));
      return NULL;
    }
  gsize got = fread (magic, 1, sizeof magic, f);
  fclose (f);

  if (got == 4 && memcmp (magic, "GGUF", 4) == 0)
    return load_gguf (path, error);
  if (has_suffix_ci (path, ".model"))
    return _lsc_tokenizer_load_sentencepiece (path, error);
  if (has_suffix_ci (path, ".bin"))
    return load_bin (path, error);

  /* Any other model file (e.g. model.safetensors): look beside it. */
  g_autofree char *dir = g_path_get_dirname (path);
  return load_from_dir (dir, path, error);
}
