/* SPDX-License-Identifier: MIT
 *
 * SentencePiece-style BPE: llama2.c tokenizer.bin, SentencePiece .model,
 * GGUF "llama" vocabularies and the Mistral tokenizer.json, against reference
 * ids from llama2.c, sentencepiece, Hugging Face tokenizers and llama.cpp
 * (tools/make-spm-vectors.py), plus malformed files.
 */
#include "config.h"

#include "lsc-error.h"
#include "lsc-gguf.h"
#include "lsc-test-util.h"
#include "lsc-tokenizer-private.h"
#include "lsc-tokenizer.h"

#include <string.h>

#define SPACE "\xe2\x96\x81" /* U+2581 */

/* ---- helpers ------------------------------------------------------------- */

/* Expected ids end with -1. */
static void
assert_ids (const char *what, const char *text, GArray *ids, const gint32 *expected)
{
  gsize n = 0;
  gboolean same;

  while (expected[n] >= 0)
    n++;
  same = ids->len == n && (n == 0 || memcmp (ids->data, expected, n * sizeof (gint32)) == 0);
  if (!same)
    {
      g_autoptr(GString) got = g_string_new (NULL);
      g_autoptr(GString) want = g_string_new (NULL);
      for (guint i = 0; i < ids->len; i++)
        g_string_append_printf (got, " %d", g_array_index (ids, gint32, i));
      for (gsize i = 0; i < n; i++)
        g_string_append_printf (want, " %d", expected[i]);
      g_test_message ("%s: \"%s\": got [%s ], expected [%s ]", what, text, got->str, want->str);
    }
  g_assert_true (same);
}

static GArray *
encode_ok (const LscTokenizer *tok, const char *text, gssize len, gboolean add_bos)
{
  g_autoptr(GError) error = NULL;
  GArray *ids = lsc_tokenizer_encode (tok, text, len, add_bos, &error);

  g_assert_no_error (error);
  g_assert_nonnull (ids);
  return ids;
}

static void
assert_encodes (const LscTokenizer *tok, const char *text, gboolean add_bos, const gint32 *expected)
{
  g_autoptr(GArray) ids = encode_ok (tok, text, -1, add_bos);
  assert_ids (lsc_tokenizer_get_path (tok), text, ids, expected);
}

static void
assert_round_trip (const LscTokenizer *tok, const char *text, gsize len)
{
  g_autoptr(GArray) ids = encode_ok (tok, text, (gssize) len, FALSE);
  g_autofree char *back = lsc_tokenizer_decode (tok, (const gint32 *) ids->data, ids->len);

  if (strlen (back) != len || memcmp (back, text, len) != 0)
    g_test_message ("round trip: \"%.*s\" came back as \"%s\"", (int) MIN (len, 200), text, back);
  g_assert_cmpuint (strlen (back), ==, len);
  g_assert_true (memcmp (back, text, len) == 0);
}

static LscTokenizer *
load_llama2c (const char *rel, int n_vocab)
{
  g_autofree char *path = lsc_test_shared_path (rel);
  g_autoptr(GError) error = NULL;
  LscTokenizer *tok;

  if (path == NULL)
    return NULL;
  tok = _lsc_tokenizer_load_llama2c (path, n_vocab, &error);
  g_assert_no_error (error);
  g_assert_nonnull (tok);
  return tok;
}

/* ---- llama2.c tokenizer.bin ---------------------------------------------- */

typedef struct {
  const char *file;
  const char *text;
  gint32 ids[40];   /* with BOS, -1 terminated */
} RefCase;

/* ../shared/models/README.md: ids from the llama2.c reference encoder. */
static const RefCase llama2c_refs[] = {
  { "models/stories260K/tok512.bin", "Once upon a time", { 1, 403, 407, 261, 378, -1 } },
  { "models/stories260K/tok512.bin", "Zoo", { 1, 410, 469, 347, -1 } },
  { "models/stories260K/tok512.bin", "Lily's mom said, \"Let's go!\"",
    { 1, 317, 439, 419, 357, 336, 432, 313, 438, 316, 439, 419, 298, 414, 443, 436, -1 } },
  { "models/babyllama-105/tok105.bin", "Once upon a time",
    { 1, 3, 34, 9, 22, 4, 3, 18, 20, 7, 9, 3, 5, 3, 6, 10, 16, 4, -1 } },
  { "models/babyllama-105/tok105.bin", "Zoo", { 1, 3, 62, 7, 7, -1 } },
};

static void
test_llama2c_reference (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (llama2c_refs); i++)
    {
      const RefCase *c = &llama2c_refs[i];
      g_autoptr(LscTokenizer) tok = load_llama2c (c->file, -1);
      g_autoptr(GArray) ids = NULL;
      g_autofree char *text = NULL;

      if (tok == NULL)
        return;
      g_assert_cmpint (lsc_tokenizer_get_kind (tok), ==, LSC_TOKENIZER_SPM_BPE);
      g_assert_cmpint (lsc_tokenizer_get_bos (tok), ==, 1);
      g_assert_cmpint (lsc_tokenizer_get_eos (tok), ==, 2);
      ids = encode_ok (tok, c->text, -1, TRUE);
      assert_ids (c->file, c->text, ids, c->ids);

      /* without the BOS the ids decode back to the text */
      text = lsc_tokenizer_decode (tok, (const gint32 *) ids->data + 1, ids->len - 1);
      g_assert_cmpstr (text, ==, c->text);
    }
}

static void
test_llama2c_vocab (void)
{
  g_autoptr(LscTokenizer) tok = load_llama2c ("models/stories260K/tok512.bin", 512);
  g_autoptr(LscTokenizer) all = load_llama2c ("models/stories260K/tok512.bin", -1);
  static const gint32 empty[] = { -1 };
  static const gint32 bos_only[] = { 1, -1 };
  static const gint32 cjk[] = { 410, 3 + 0xe6, 3 + 0x97, 3 + 0xa5, -1 };

  if (tok == NULL || all == NULL)
    return;
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, 512);
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (all), ==, 512);
  /* spaces are stored as U+2581 so that one encoder serves every SPM vocabulary */
  g_assert_cmpstr (lsc_tokenizer_get_piece (tok, 259), ==, SPACE "t");
  g_assert_cmpstr (lsc_tokenizer_get_piece (tok, 3 + 0x41), ==, "<0x41>");

  assert_encodes (tok, "", FALSE, empty);
  assert_encodes (tok, "", TRUE, bos_only);

  /* "日" has no piece in tok512: its UTF-8 bytes E6 97 A5 become <0xE6> <0x97> <0xA5>
   * (byte + 3), after the dummy-prefix piece " " (410) */
  assert_encodes (tok, "\xe6\x97\xa5", FALSE, cjk);
  {
    static const char mixed[] = "caf\xc3\xa9 \xf0\x9f\xa6\x99 and  two  spaces\n";
    assert_round_trip (tok, mixed, strlen (mixed));
  }
}

/* ---- SentencePiece .model ------------------------------------------------ */

static const char *const tok105_texts[] = {
  "Once upon a time",
  "Zoo",
  "Lily's mom said, \"Let's go!\"",
  " leading, trailing and  double  spaces ",
  "Hi\nthere",
  "",
};

static void
test_model_matches_llama2c (void)
{
  g_autofree char *path = lsc_test_shared_path ("models/babyllama-105/tok105.model");
  g_autoptr(LscTokenizer) bin = load_llama2c ("models/babyllama-105/tok105.bin", -1);
  g_autoptr(LscTokenizer) model = NULL;
  g_autoptr(LscTokenizer) loaded = NULL;
  g_autoptr(GError) error = NULL;
  /* sentencepiece's own encoder on tok105.model (tools/make-spm-vectors.py) */
  static const gint32 lily[] = { 1, 3, 31, 10, 14, 15, 32, 12, 3, 16, 7, 16, 3, 12, 5, 10, 11, 25,
                                 3, 29, 31, 4, 6, 32, 12, 3, 21, 7, 36, 29, -1 };

  if (path == NULL || bin == NULL)
    return;
  model = _lsc_tokenizer_load_sentencepiece (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_tokenizer_get_kind (model), ==, LSC_TOKENIZER_SPM_BPE);
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (model), ==, 105);
  g_assert_cmpint (lsc_tokenizer_get_bos (model), ==, 1);
  g_assert_cmpint (lsc_tokenizer_get_eos (model), ==, 2);
  g_assert_cmpstr (lsc_tokenizer_get_piece (model, 3), ==, SPACE);
  g_assert_cmpstr (lsc_tokenizer_get_piece (model, 1), ==, "<s>");
  g_assert_true (lsc_tokenizer_id_is_special (model, 1));

  for (gsize i = 0; i < G_N_ELEMENTS (llama2c_refs); i++)
    if (g_str_has_suffix (llama2c_refs[i].file, "tok105.bin"))
      assert_encodes (model, llama2c_refs[i].text, TRUE, llama2c_refs[i].ids);
  assert_encodes (model, tok105_texts[2], TRUE, lily);

  for (gsize i = 0; i < G_N_ELEMENTS (tok105_texts); i++)
    {
      g_autoptr(GArray) a = encode_ok (bin, tok105_texts[i], -1, TRUE);
      g_autoptr(GArray) b = encode_ok (model, tok105_texts[i], -1, TRUE);
      g_autoptr(GArray) with_bos = g_array_new (FALSE, FALSE, sizeof (gint32));
      gint32 end = -1;

      g_array_append_vals (with_bos, a->data, a->len);
      g_array_append_val (with_bos, end);
      assert_ids ("tok105.model vs tok105.bin", tok105_texts[i], b, (gint32 *) with_bos->data);
    }

  /* the public loader dispatches on the file */
  loaded = lsc_tokenizer_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (loaded), ==, 105);
  assert_encodes (loaded, tok105_texts[2], TRUE, lily);
}

/* A minimal protobuf writer for hand-made .model files. */
static void
pb_varint (GByteArray *b, guint64 v)
{
  do
    {
      guint8 byte = (guint8) (v & 0x7f);
      v >>= 7;
      if (v != 0)
        byte |= 0x80;
      g_byte_array_append (b, &byte, 1);
    }
  while (v != 0);
}

static void
pb_key (GByteArray *b, guint field, guint wire)
{
  pb_varint (b, (guint64) field << 3 | wire);
}

static void
pb_bytes (GByteArray *b, guint field, const void *data, gsize len)
{
  pb_key (b, field, 2);
  pb_varint (b, len);
  g_byte_array_append (b, data, (guint) len);
}

static void
pb_piece (GByteArray *b, const char *piece, float score, int type)
{
  g_autoptr(GByteArray) m = g_byte_array_new ();
  guint8 bits[4];

  pb_bytes (m, 1, piece, strlen (piece));
  pb_key (m, 2, 5);
  memcpy (bits, &score, 4);   /* little-endian hosts only, as the engine */
  g_byte_array_append (m, bits, 4);
  if (type != 1)
    {
      pb_key (m, 3, 0);
      pb_varint (m, (guint64) type);
    }
  pb_bytes (b, 1, m->data, m->len);
}

/* trainer_spec { model_type: BPE } */
static void
pb_bpe_trainer (GByteArray *b)
{
  static const guint8 bpe[] = { 0x18, 0x02 };
  pb_bytes (b, 2, bpe, sizeof bpe);
}

enum { N_SMALL_PIECES = 3 + 256 + 9 };

/* A BPE model: <unk> <s> </s>, 256 byte pieces, then merges of a, b, c. */
static GByteArray *
small_model (int model_type, gboolean byte_fallback, gboolean add_dummy_prefix)
{
  GByteArray *b = g_byte_array_new ();
  g_autoptr(GByteArray) trainer = g_byte_array_new ();
  g_autoptr(GByteArray) normalizer = g_byte_array_new ();

  pb_piece (b, "<unk>", 0, 2);
  pb_piece (b, "<s>", 0, 3);
  pb_piece (b, "</s>", 0, 3);
  for (int i = 0; i < 256; i++)
    {
      char piece[8];
      g_snprintf (piece, sizeof piece, "<0x%02X>", i);
      pb_piece (b, piece, 0, 6);
    }
  pb_piece (b, SPACE, -1, 1);        /* 259 */
  pb_piece (b, "a", -1, 1);          /* 260 */
  pb_piece (b, "b", -1, 1);          /* 261 */
  pb_piece (b, "c", -1, 1);          /* 262 */
  pb_piece (b, "ab", -3, 1);         /* 263 */
  pb_piece (b, "bc", -2, 1);         /* 264 */
  pb_piece (b, "aa", -4, 1);         /* 265 */
  pb_piece (b, SPACE "ab", -5, 1);   /* 266 */
  pb_piece (b, "<sep>", 0, 4);       /* 267, USER_DEFINED */

  pb_key (trainer, 3, 0);
  pb_varint (trainer, (guint64) model_type);
  pb_key (trainer, 35, 0);
  pb_varint (trainer, byte_fallback);
  pb_key (trainer, 43, 0);
  pb_varint (trainer, G_MAXUINT64);  /* pad_id -1, sign-extended to 10 bytes */
  pb_bytes (b, 2, trainer->data, trainer->len);

  pb_bytes (normalizer, 1, "identity", 8);
  pb_key (normalizer, 3, 0);
  pb_varint (normalizer, add_dummy_prefix);
  pb_bytes (b, 3, normalizer->data, normalizer->len);
  return b;
}

static LscTokenizer *
load_bytes_as_model (const char *name, const guint8 *data, gsize len, GError **error)
{
  g_autofree char *path = lsc_test_write_file (name, data, len);
  return _lsc_tokenizer_load_sentencepiece (path, error);
}

static void
test_model_merges (void)
{
  g_autoptr(GByteArray) bytes = small_model (2, TRUE, TRUE);
  g_autoptr(GByteArray) no_prefix = small_model (2, TRUE, FALSE);
  g_autoptr(GByteArray) no_bytes = small_model (2, FALSE, TRUE);
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = load_bytes_as_model ("small.model", bytes->data, bytes->len, &error);
  g_autoptr(LscTokenizer) tok_np = NULL;
  g_autoptr(LscTokenizer) tok_nb = NULL;
  /* "bc" (-2) beats "ab" (-3); "a"+"bc" is no piece */
  static const gint32 abc[] = { 259, 260, 264, -1 };
  /* "ab", then "▁"+"ab" */
  static const gint32 ab[] = { 266, -1 };
  /* equal scores: the leftmost "aa" merges */
  static const gint32 aaa[] = { 259, 265, 260, -1 };
  static const gint32 e_acute[] = { 259, 3 + 0xc3, 3 + 0xa9, -1 };
  static const gint32 spaces[] = { 266, 259, 266, -1 };   /* "▁ab" "▁" "▁ab" */
  static const gint32 ab_np[] = { 263, -1 };
  static const gint32 e_acute_unk[] = { 259, 0, -1 };
  static const gint32 sep[] = { 259, 260, 267, -1 };
  static const gint32 sep_alone[] = { 267, -1 };
  static const gint32 with_nul[] = { 259, 260, 3, 261, -1 };

  g_assert_no_error (error);
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, N_SMALL_PIECES);
  assert_encodes (tok, "abc", FALSE, abc);
  assert_encodes (tok, "ab", FALSE, ab);
  assert_encodes (tok, "aaa", FALSE, aaa);
  assert_encodes (tok, "\xc3\xa9", FALSE, e_acute);
  assert_encodes (tok, "ab  ab", FALSE, spaces);
  assert_round_trip (tok, "ab  ab", 6);
  {
    /* a NUL character never merges and falls back to <0x00> */
    g_autoptr(GArray) ids = encode_ok (tok, "a\0b", 3, FALSE);
    assert_ids ("small.model", "a\\0b", ids, with_nul);
  }
  assert_round_trip (tok, "\xc3\xa9\xe6\x97\xa5 \xf0\x9f\xa6\x99", 10);
  /* USER_DEFINED "<sep>" is matched literally */
  assert_encodes (tok, "a<sep>", FALSE, sep);
  assert_encodes (tok, "<sep>", FALSE, sep_alone);
  g_assert_true (lsc_tokenizer_id_is_special (tok, 1));

  tok_np = load_bytes_as_model ("np.model", no_prefix->data, no_prefix->len, &error);
  g_assert_no_error (error);
  assert_encodes (tok_np, "ab", FALSE, ab_np);

  tok_nb = load_bytes_as_model ("nb.model", no_bytes->data, no_bytes->len, &error);
  g_assert_no_error (error);
  assert_encodes (tok_nb, "\xc3\xa9", FALSE, e_acute_unk);
}

/* ---- malformed .model ---------------------------------------------------- */

static void
assert_model_error (const char *name, const guint8 *data, gsize len, int code, const char *fragment)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = load_bytes_as_model (name, data, len, &error);

  g_assert_null (tok);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, code, name, fragment, NULL);
}

static void
test_model_truncated (void)
{
  g_autofree char *path = lsc_test_shared_path ("models/babyllama-105/tok105.model");
  g_autoptr(GBytes) whole = NULL;
  const guint8 *data;
  gsize size;
  int n_loaded = 0;

  if (path == NULL)
    return;
  whole = lsc_test_read_file (path);
  data = g_bytes_get_data (whole, &size);

  /* Every cut fails, except one at the start of the (optional) normalizer_spec. */
  for (gsize cut = 0; cut < size; cut++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(LscTokenizer) tok = load_bytes_as_model ("cut/tok105.model", data, cut, &error);

      if (tok != NULL)
        {
          g_assert_no_error (error);
          g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, 105);
          n_loaded++;
          continue;
        }
      g_assert_nonnull (error);
      g_assert_true (error->domain == LSC_TOKENIZER_ERROR);
      if (error->code == LSC_TOKENIZER_ERROR_UNSUPPORTED)
        /* cut between fields before the trainer_spec: the default model_type */
        lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
                               "tok105.model", "model_type", "UNIGRAM", NULL);
      else
        lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                               "tok105.model", NULL);
    }
  g_assert_cmpint (n_loaded, <=, 1);

  /* a cut inside the score of piece 0 (the trainer_spec comes first here) */
  {
    g_autoptr(GByteArray) b = g_byte_array_new ();
    g_autoptr(GByteArray) m = g_byte_array_new ();
    pb_bytes (m, 1, "x", 1);
    pb_key (m, 2, 5);
    g_byte_array_append (m, (const guint8 *) "\0\0", 2);
    pb_bpe_trainer (b);
    pb_bytes (b, 1, m->data, m->len);
    assert_model_error ("short-score.model", b->data, b->len, LSC_TOKENIZER_ERROR_CORRUPT,
                        "piece 0: field 'score': fixed32 is past the end");
  }
}

static void
test_model_malformed (void)
{
  /* wire type 3 (start group) on field 1 */
  static const guint8 group[] = { 0x0b, 0x00 };
  /* field 1 says 127 bytes, 1 follows */
  static const guint8 past_end[] = { 0x0a, 0x7f, 'a' };
  /* unknown field 7, varint cut short */
  static const guint8 short_varint[] = { 0x38, 0x80, 0x80 };
  /* 11-byte varint */
  static const guint8 long_varint[] = { 0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0x01 };
  /* pieces as a varint */
  static const guint8 pieces_varint[] = { 0x08, 0x01 };
  g_autoptr(GByteArray) bad_score = g_byte_array_new ();
  g_autoptr(GByteArray) bad_type = g_byte_array_new ();
  g_autoptr(GByteArray) no_piece = g_byte_array_new ();
  g_autoptr(GByteArray) unigram = small_model (1, TRUE, TRUE);
  g_autoptr(GByteArray) no_trainer = g_byte_array_new ();
  g_autoptr(GByteArray) bad_bos = small_model (2, TRUE, TRUE);
  g_autoptr(GByteArray) m = g_byte_array_new ();
  g_autoptr(GByteArray) t = g_byte_array_new ();

  assert_model_error ("group.model", group, sizeof group, LSC_TOKENIZER_ERROR_CORRUPT,
                      "field 1 has wire type 3");
  assert_model_error ("past-end.model", past_end, sizeof past_end, LSC_TOKENIZER_ERROR_CORRUPT,
                      "field 'pieces': length 127 is past the end");
  assert_model_error ("short-varint.model", short_varint, sizeof short_varint,
                      LSC_TOKENIZER_ERROR_CORRUPT, "truncated varint");
  assert_model_error ("long-varint.model", long_varint, sizeof long_varint,
                      LSC_TOKENIZER_ERROR_CORRUPT, "varint longer than 10 bytes");
  assert_model_error ("pieces-varint.model", pieces_varint, sizeof pieces_varint,
                      LSC_TOKENIZER_ERROR_CORRUPT,
                      "field 'pieces' has wire type 0, expected 2 (length-delimited)");
  assert_model_error ("empty.model", NULL, 0, LSC_TOKENIZER_ERROR_CORRUPT,
                      "field 'pieces' has 0 entries");

  /* piece 1's score as a string */
  pb_piece (bad_score, "a", 0, 1);
  pb_bytes (m, 1, "b", 1);
  pb_bytes (m, 2, "1.0", 3);
  pb_bytes (bad_score, 1, m->data, m->len);
  pb_bpe_trainer (bad_score);
  assert_model_error ("bad-score.model", bad_score->data, bad_score->len,
                      LSC_TOKENIZER_ERROR_CORRUPT,
                      "piece 1: field 'score' has wire type 2, expected 5 (fixed32)");

  pb_piece (bad_type, "a", 0, 9);
  pb_bpe_trainer (bad_type);
  assert_model_error ("bad-type.model", bad_type->data, bad_type->len, LSC_TOKENIZER_ERROR_CORRUPT,
                      "piece 0: field 'type' is 9");

  g_byte_array_set_size (m, 0);
  pb_key (m, 2, 5);
  g_byte_array_append (m, (const guint8 *) "\0\0\0\0", 4);
  pb_bytes (no_piece, 1, m->data, m->len);
  pb_bpe_trainer (no_piece);
  assert_model_error ("no-piece.model", no_piece->data, no_piece->len,
                      LSC_TOKENIZER_ERROR_CORRUPT, "piece 0: field 'piece' is missing");

  assert_model_error ("unigram.model", unigram->data, unigram->len,
                      LSC_TOKENIZER_ERROR_UNSUPPORTED, "field 'model_type' is 1 (UNIGRAM)");
  pb_piece (no_trainer, "a", 0, 1);
  assert_model_error ("no-trainer.model", no_trainer->data, no_trainer->len,
                      LSC_TOKENIZER_ERROR_UNSUPPORTED, "field 'model_type' is 1 (UNIGRAM)");

  /* a second trainer_spec overrides bos_id with one past the pieces */
  pb_key (t, 3, 0);
  pb_varint (t, 2);
  pb_key (t, 41, 0);
  pb_varint (t, 5000);
  pb_bytes (bad_bos, 2, t->data, t->len);
  assert_model_error ("bad-bos.model", bad_bos->data, bad_bos->len, LSC_TOKENIZER_ERROR_CORRUPT,
                      "trainer_spec: field 'bos_id' is 5000");
}

/* ---- malformed llama2.c tokenizer.bin ------------------------------------ */

static void
append_i32 (GByteArray *b, gint32 v)
{
  guint8 le[4] = { (guint8) v, (guint8) (v >> 8), (guint8) (v >> 16), (guint8) (v >> 24) };
  g_byte_array_append (b, le, 4);
}

static void
append_token (GByteArray *b, float score, gint32 len, const char *bytes)
{
  guint32 bits;
  memcpy (&bits, &score, 4);
  append_i32 (b, (gint32) bits);
  append_i32 (b, len);
  g_byte_array_append (b, (const guint8 *) bytes, (guint) strlen (bytes));
}

static void
assert_llama2c_error (const char *name, GByteArray *b, int n_vocab, const char *fragment)
{
  g_autofree char *path = lsc_test_write_file (name, b->data, b->len);
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = _lsc_tokenizer_load_llama2c (path, n_vocab, &error);

  g_assert_null (tok);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT, name, fragment,
                         NULL);
}

static void
test_llama2c_malformed (void)
{
  g_autoptr(GByteArray) past_end = g_byte_array_new ();
  g_autoptr(GByteArray) too_long = g_byte_array_new ();
  g_autoptr(GByteArray) negative = g_byte_array_new ();
  g_autoptr(GByteArray) header = g_byte_array_new ();
  g_autoptr(GByteArray) bad_max = g_byte_array_new ();
  g_autoptr(GByteArray) good = g_byte_array_new ();
  g_autoptr(GByteArray) half = g_byte_array_new ();
  g_autofree char *good_path = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = NULL;

  append_i32 (past_end, 8);
  append_token (past_end, 0, 5, "<unk>");
  append_token (past_end, 0, 7, "<s>");
  assert_llama2c_error ("past-end.bin", past_end, -1,
                        "token 1: field 'len' is 7, past the end of the file (3 bytes left)");

  append_i32 (too_long, 4);
  append_token (too_long, 0, 5, "<unk>");
  assert_llama2c_error ("too-long.bin", too_long, -1,
                        "token 0: field 'len' is 5, outside 0..max_token_length (4)");

  append_i32 (negative, 8);
  append_token (negative, 0, -1, "");
  assert_llama2c_error ("negative.bin", negative, -1, "token 0: field 'len' is -1");

  g_byte_array_append (header, (const guint8 *) "\x08\x00", 2);
  assert_llama2c_error ("header.bin", header, -1, "field 'max_token_length' is past the end");

  append_i32 (bad_max, 0);
  assert_llama2c_error ("bad-max.bin", bad_max, -1, "field 'max_token_length' is 0");

  /* the checkpoint asks for more tokens than the file has */
  append_i32 (good, 8);
  append_token (good, 0, 5, "<unk>");
  append_token (good, 0, 3, "<s>");
  append_token (good, 0, 4, "</s>");
  append_token (good, -1, 1, " ");
  append_token (good, -2, 1, "a");
  assert_llama2c_error ("short.bin", good, 6,
                        "token 5: fields 'score' and 'len' are past the end of the file");

  g_byte_array_append (half, good->data, good->len);
  g_byte_array_append (half, (const guint8 *) "\0\0\0\0\1", 5);
  assert_llama2c_error ("half.bin", half, -1,
                        "token 5: fields 'score' and 'len' are past the end of the file "
                        "(5 bytes left)");

  good_path = lsc_test_write_file ("good.bin", good->data, good->len);
  tok = _lsc_tokenizer_load_llama2c (good_path, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, 5);
  g_assert_cmpstr (lsc_tokenizer_get_piece (tok, 3), ==, SPACE);
}

/* ---- GGUF vocabularies --------------------------------------------------- */

static LscTokenizer *
load_gguf_vocab (const char *rel, GError **error)
{
  g_autofree char *path = lsc_test_shared_path (rel);
  g_autoptr(LscGguf) gguf = NULL;
  g_autoptr(GError) local_error = NULL;

  if (path == NULL)
    return NULL;
  gguf = lsc_gguf_open (path, &local_error);
  g_assert_no_error (local_error);
  return _lsc_tokenizer_load_gguf (gguf, error);
}

/* llama.cpp's test-tokenizer-0: inputs separated by "\n__ggml_vocab_test__\n"
 * (the file ends with one, so the last piece is dropped); one output line of
 * ids per input. */
static void
test_gguf_vocab_vectors (void)
{
  g_autofree char *inp_path = lsc_test_shared_path ("models/tokenizers/gguf/ggml-vocab-phi-3.gguf.inp");
  g_autofree char *out_path = lsc_test_shared_path ("models/tokenizers/gguf/ggml-vocab-phi-3.gguf.out");
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  g_autoptr(GBytes) inp = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autofree char *inp_text = NULL;
  g_autofree char *out_text = NULL;
  g_auto(GStrv) inputs = NULL;
  g_auto(GStrv) outputs = NULL;
  guint n_inputs;

  if (inp_path == NULL || out_path == NULL)
    return;
  tok = load_gguf_vocab ("models/tokenizers/gguf/ggml-vocab-phi-3.gguf", &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_tokenizer_get_kind (tok), ==, LSC_TOKENIZER_SPM_BPE);
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, 32064);

  inp = lsc_test_read_file (inp_path);
  out = lsc_test_read_file (out_path);
  inp_text = g_strndup (g_bytes_get_data (inp, NULL), g_bytes_get_size (inp));
  out_text = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));
  inputs = g_strsplit (inp_text, "\n__ggml_vocab_test__\n", -1);
  outputs = g_strsplit (out_text, "\n", -1);
  n_inputs = g_strv_length (inputs) - 1;
  g_assert_cmpuint (n_inputs, >, 30);
  g_assert_cmpstr (inputs[n_inputs], ==, "");
  g_assert_cmpuint (g_strv_length (outputs), >=, n_inputs);

  for (guint i = 0; i < n_inputs; i++)
    {
      g_auto(GStrv) fields = g_strsplit (outputs[i], " ", -1);
      g_autoptr(GArray) expected = g_array_new (FALSE, FALSE, sizeof (gint32));
      gint32 end = -1;

      for (char **f = fields; *f != NULL; f++)
        if (**f != '\0')
          {
            gint32 id = (gint32) g_ascii_strtoll (*f, NULL, 10);
            g_array_append_val (expected, id);
          }
      g_array_append_val (expected, end);
      assert_encodes (tok, inputs[i], FALSE, (const gint32 *) expected->data);
    }
}

static void
test_gguf_unsupported (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = load_gguf_vocab ("models/tokenizers/gguf/ggml-vocab-bert-bge.gguf",
                                                 &error);
  if (tok == NULL && error == NULL)
    return;
  g_assert_null (tok);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
                         "ggml-vocab-bert-bge.gguf", "tokenizer.ggml.model", "bert", NULL);
}

static void
append_u32 (GByteArray *b, guint32 v)
{
  append_i32 (b, (gint32) v);
}

static void
append_u64 (GByteArray *b, guint64 v)
{
  append_u32 (b, (guint32) v);
  append_u32 (b, (guint32) (v >> 32));
}

static void
append_gguf_string (GByteArray *b, const char *s)
{
  append_u64 (b, strlen (s));
  g_byte_array_append (b, (const guint8 *) s, (guint) strlen (s));
}

/* A GGUF v3 file with no tensors, built key by key. */
typedef struct {
  GByteArray *kvs;
  guint64 n_kv;
} GgufBuilder;

static void
gguf_key (GgufBuilder *g, const char *key, guint32 type)
{
  append_gguf_string (g->kvs, key);
  append_u32 (g->kvs, type);
  g->n_kv++;
}

static void
gguf_string (GgufBuilder *g, const char *key, const char *value)
{
  gguf_key (g, key, LSC_GGUF_TYPE_STRING);
  append_gguf_string (g->kvs, value);
}

static void
gguf_u32 (GgufBuilder *g, const char *key, guint32 value)
{
  gguf_key (g, key, LSC_GGUF_TYPE_UINT32);
  append_u32 (g->kvs, value);
}

static void
gguf_bool (GgufBuilder *g, const char *key, gboolean value)
{
  guint8 b = value ? 1 : 0;
  gguf_key (g, key, LSC_GGUF_TYPE_BOOL);
  g_byte_array_append (g->kvs, &b, 1);
}

static void
gguf_strings (GgufBuilder *g, const char *key, const char *const *values, guint64 n)
{
  gguf_key (g, key, LSC_GGUF_TYPE_ARRAY);
  append_u32 (g->kvs, LSC_GGUF_TYPE_STRING);
  append_u64 (g->kvs, n);
  for (guint64 i = 0; i < n; i++)
    append_gguf_string (g->kvs, values[i]);
}

static void
gguf_numbers (GgufBuilder *g, const char *key, guint32 type, const guint32 *values, guint64 n)
{
  gguf_key (g, key, LSC_GGUF_TYPE_ARRAY);
  append_u32 (g->kvs, type);
  append_u64 (g->kvs, n);
  for (guint64 i = 0; i < n; i++)
    append_u32 (g->kvs, values[i]);
}

static LscTokenizer *
gguf_build_and_load (GgufBuilder *g, const char *name, GError **error)
{
  g_autoptr(GByteArray) b = g_byte_array_new ();
  g_autofree char *path = NULL;
  g_autoptr(LscGguf) gguf = NULL;
  g_autoptr(GError) open_error = NULL;

  append_u32 (b, 0x46554747);   /* "GGUF" */
  append_u32 (b, 3);
  append_u64 (b, 0);            /* n_tensors */
  append_u64 (b, g->n_kv);
  g_byte_array_append (b, g->kvs->data, g->kvs->len);
  g_byte_array_unref (g->kvs);
  path = lsc_test_write_file (name, b->data, b->len);
  gguf = lsc_gguf_open (path, &open_error);
  g_assert_no_error (open_error);
  return _lsc_tokenizer_load_gguf (gguf, error);
}

static void
test_gguf_crafted (void)
{
  static const char *const tokens[] = { "<unk>", "<s>", "</s>", SPACE, "a", SPACE "a", "<|end|>" };
  static const float scores[] = { 0, 0, 0, -1, -2, -3, 0 };
  static const guint32 types[] = { 2, 3, 3, 1, 1, 1, 3 };
  static const gint32 no_prefix[] = { 4, 5, -1 };
  static const gint32 with_end[] = { 5, 6, -1 };
  static const gint32 with_end_a[] = { 5, 6, 5, -1 };
  guint32 score_bits[G_N_ELEMENTS (scores)];
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  g_autoptr(LscTokenizer) with_prefix = NULL;
  g_autoptr(LscTokenizer) bad = NULL;
  GgufBuilder g;

  memcpy (score_bits, scores, sizeof scores);

  /* no add_space_prefix, 0xFFFFFFFF for "no BOS", no EOS key */
  g = (GgufBuilder) { g_byte_array_new (), 0 };
  gguf_string (&g, "tokenizer.ggml.model", "llama");
  gguf_strings (&g, "tokenizer.ggml.tokens", tokens, G_N_ELEMENTS (tokens));
  gguf_numbers (&g, "tokenizer.ggml.scores", LSC_GGUF_TYPE_FLOAT32, score_bits, G_N_ELEMENTS (scores));
  gguf_numbers (&g, "tokenizer.ggml.token_type", LSC_GGUF_TYPE_INT32, types, G_N_ELEMENTS (types));
  gguf_u32 (&g, "tokenizer.ggml.bos_token_id", G_MAXUINT32);
  gguf_bool (&g, "tokenizer.ggml.add_space_prefix", FALSE);
  tok = gguf_build_and_load (&g, "crafted.gguf", &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_tokenizer_get_bos (tok), ==, -1);
  g_assert_cmpint (lsc_tokenizer_get_eos (tok), ==, -1);
  assert_encodes (tok, "a a", TRUE, no_prefix);

  /* default add_space_prefix; CONTROL "<|end|>" is matched in the text */
  g = (GgufBuilder) { g_byte_array_new (), 0 };
  gguf_string (&g, "tokenizer.ggml.model", "llama");
  gguf_strings (&g, "tokenizer.ggml.tokens", tokens, G_N_ELEMENTS (tokens));
  gguf_numbers (&g, "tokenizer.ggml.scores", LSC_GGUF_TYPE_FLOAT32, score_bits, G_N_ELEMENTS (scores));
  gguf_numbers (&g, "tokenizer.ggml.token_type", LSC_GGUF_TYPE_INT32, types, G_N_ELEMENTS (types));
  gguf_u32 (&g, "tokenizer.ggml.bos_token_id", 1);
  with_prefix = gguf_build_and_load (&g, "prefix.gguf", &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_tokenizer_get_bos (with_prefix), ==, 1);
  assert_encodes (with_prefix, "a<|end|>", FALSE, with_end);
  /* as llama.cpp: the text after a special token gets the dummy prefix too */
  assert_encodes (with_prefix, "a<|end|>a", FALSE, with_end_a);

  /* scores of the wrong length */
  g = (GgufBuilder) { g_byte_array_new (), 0 };
  gguf_string (&g, "tokenizer.ggml.model", "llama");
  gguf_strings (&g, "tokenizer.ggml.tokens", tokens, G_N_ELEMENTS (tokens));
  gguf_numbers (&g, "tokenizer.ggml.scores", LSC_GGUF_TYPE_FLOAT32, score_bits, 3);
  bad = gguf_build_and_load (&g, "short-scores.gguf", &error);
  g_assert_null (bad);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                         "short-scores.gguf", "'tokenizer.ggml.scores' has 3 entries for 7 tokens",
                         NULL);
  g_clear_error (&error);

  /* a bos id outside the vocabulary */
  g = (GgufBuilder) { g_byte_array_new (), 0 };
  gguf_string (&g, "tokenizer.ggml.model", "llama");
  gguf_strings (&g, "tokenizer.ggml.tokens", tokens, G_N_ELEMENTS (tokens));
  gguf_u32 (&g, "tokenizer.ggml.bos_token_id", 7);
  bad = gguf_build_and_load (&g, "bad-bos.gguf", &error);
  g_assert_null (bad);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                         "bad-bos.gguf", "'tokenizer.ggml.bos_token_id' is 7", NULL);
  g_clear_error (&error);

  /* no tokens */
  g = (GgufBuilder) { g_byte_array_new (), 0 };
  gguf_string (&g, "tokenizer.ggml.model", "llama");
  bad = gguf_build_and_load (&g, "no-tokens.gguf", &error);
  g_assert_null (bad);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                         "no-tokens.gguf", "'tokenizer.ggml.tokens' is missing", NULL);
  g_clear_error (&error);

  /* gpt2 without merges */
  g = (GgufBuilder) { g_byte_array_new (), 0 };
  gguf_string (&g, "tokenizer.ggml.model", "gpt2");
  gguf_strings (&g, "tokenizer.ggml.tokens", tokens, G_N_ELEMENTS (tokens));
  bad = gguf_build_and_load (&g, "no-merges.gguf", &error);
  g_assert_null (bad);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                         "no-merges.gguf", "'tokenizer.ggml.merges' is missing", NULL);
  g_clear_error (&error);

  /* an unknown tokenizer model */
  g = (GgufBuilder) { g_byte_array_new (), 0 };
  gguf_string (&g, "tokenizer.ggml.model", "rwkv");
  gguf_strings (&g, "tokenizer.ggml.tokens", tokens, G_N_ELEMENTS (tokens));
  bad = gguf_build_and_load (&g, "rwkv.gguf", &error);
  g_assert_null (bad);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
                         "rwkv.gguf", "'tokenizer.ggml.model' is \"rwkv\"", NULL);
}

static void
test_gguf_model_vocab (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = load_gguf_vocab ("models/stories260K/stories260K.gguf", &error);
  static const gint32 once[] = { 1, 403, 407, 261, 378, -1 };

  if (tok == NULL && error == NULL)
    return;
  g_assert_no_error (error);
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, 512);
  g_assert_cmpint (lsc_tokenizer_get_bos (tok), ==, 1);
  g_assert_cmpint (lsc_tokenizer_get_eos (tok), ==, 2);
  /* the same vocabulary as tok512.bin gives the same ids */
  assert_encodes (tok, "Once upon a time", TRUE, once);
}

/* ---- Mistral tokenizer.json (SPM BPE by merge rank) ---------------------- */

typedef struct {
  const char *text;
  gint32 ids[24];   /* no BOS, -1 terminated */
} MistralCase;

/* Hugging Face tokenizers, add_special_tokens=False (tools/make-spm-vectors.py) */
static const MistralCase mistral_cases[] = {
  { "Hello world", { 22557, 1526, -1 } },
  { " Hello world", { 28705, 22557, 1526, -1 } },
  { "Hello  world", { 22557, 28705, 1526, -1 } },
  { "   leading and trailing   ", { 2287, 5374, 304, 27166, 2287, -1 } },
  { "line one\012line two\012\012", { 1407, 624, 13, 1081, 989, 13, 13, -1 } },
  { "\011 tab\011between", { 28705, 12, 7683, 12, 24829, -1 } },
  { "caf\303\251 na\303\257ve r\303\251sum\303\251", { 28345, 1879, 28920, 333, 11310, 383, 28797, -1 } },
  { "\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210",
    { 28705, 29142, 29119, 30321, 28993, 29610, 29753, 29109, 29123, -1 } },
  { "llama \360\237\246\231 emoji \360\237\230\200!",
    { 8814, 2786, 28705, 243, 162, 169, 156, 877, 27813, 28705, 30575, 28808, -1 } },
  { "w048 7tuijk dsdfhu",
    { 275, 28734, 28781, 28783, 28705, 28787, 17512, 17722, 18099, 4053, 9538, -1 } },
  { "\320\275\320\265\321\211\320\276 \320\275\320\260 \320\221\321\212\320\273\320\263\320\260\321\200\321\201\320\272\320\270",
    { 2409, 6986, 929, 2216, 11134, 17260, 2073, -1 } },
  { "int main(void) { return 0; }",
    { 716, 2191, 28732, 2828, 28731, 371, 604, 28705, 28734, 28745, 443, -1 } },
  { "3.14159 + 2 = 5.14159",
    { 28705, 28770, 28723, 28740, 28781, 28740, 28782, 28774, 648, 28705, 28750, 327, 28705, 28782,
      28723, 28740, 28781, 28740, 28782, 28774, -1 } },
  { "\342\226\201already a metaspace", { 28705, 2141, 264, 1424, 293, 2644, -1 } },
  { " ", { 259, -1 } },
  { "a", { 264, -1 } },
  { "", { -1 } },
};

static LscTokenizer *
load_mistral (void)
{
  g_autofree char *path = lsc_test_shared_path ("models/tokenizers/hf/mistral-7b-v0.1/tokenizer.json");
  g_autoptr(GError) error = NULL;
  LscTokenizer *tok;

  if (path == NULL)
    return NULL;
  tok = lsc_tokenizer_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (lsc_tokenizer_get_kind (tok), ==, LSC_TOKENIZER_SPM_BPE);
  return tok;
}

static void
test_mistral_ids (void)
{
  g_autoptr(LscTokenizer) tok = load_mistral ();

  if (tok == NULL)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (mistral_cases); i++)
    {
      assert_encodes (tok, mistral_cases[i].text, FALSE, mistral_cases[i].ids);
      if (strstr (mistral_cases[i].text, SPACE) == NULL)
        assert_round_trip (tok, mistral_cases[i].text, strlen (mistral_cases[i].text));
    }
}

static const char *const fragments[] = {
  " ", "  ", "   ", "\n", "\n\n", "\t", "a", "the", "Hello", "world", ",", ".", "!",
  "\xc3\xa9", "\xc3\xbc", "\xe6\x97\xa5\xe6\x9c\xac", "\xe8\xaa\x9e", "\xf0\x9f\xa6\x99",
  "\xf0\x9f\x98\x80", "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9", "\xd0\x91", "0", "42",
  "3.14", "<", ">", "</", "\xe2\x96\x82", "\xef\xbf\xbd", "\x7f", "\x01",
};

static char *
random_text (gsize n_fragments)
{
  GString *s = g_string_new (NULL);
  for (gsize i = 0; i < n_fragments; i++)
    g_string_append (s, fragments[g_test_rand_int_range (0, G_N_ELEMENTS (fragments))]);
  return g_string_free (s, FALSE);
}

static void
test_mistral_round_trip (void)
{
  g_autoptr(LscTokenizer) tok = load_mistral ();

  if (tok == NULL)
    return;
  for (int i = 0; i < 300; i++)
    {
      g_autofree char *text = random_text ((gsize) g_test_rand_int_range (0, 16));
      assert_round_trip (tok, text, strlen (text));
    }
}

/* 100 kB in one piece: the heap-based merge keeps this fast. */
static void
test_long_input (void)
{
  g_autoptr(LscTokenizer) tok = load_mistral ();
  g_autoptr(GString) text = g_string_new (NULL);
  g_autoptr(GTimer) timer = NULL;
  g_autoptr(GArray) ids = NULL;
  g_autofree char *back = NULL;

  if (tok == NULL)
    return;
  while (text->len < 100 * 1000)
    {
      g_autofree char *part = random_text (8);
      g_string_append (text, part);
    }
  timer = g_timer_new ();
  ids = encode_ok (tok, text->str, (gssize) text->len, FALSE);
  g_test_message ("%" G_GSIZE_FORMAT " bytes -> %u ids in %.3f s", text->len, ids->len,
                  g_timer_elapsed (timer, NULL));
  g_assert_cmpfloat (g_timer_elapsed (timer, NULL), <, 20.0);
  back = lsc_tokenizer_decode (tok, (const gint32 *) ids->data, ids->len);
  g_assert_cmpstr (back, ==, text->str);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/engine/tokenizer/spm/llama2c-reference", test_llama2c_reference);
  g_test_add_func ("/engine/tokenizer/spm/llama2c-vocab", test_llama2c_vocab);
  g_test_add_func ("/engine/tokenizer/spm/llama2c-malformed", test_llama2c_malformed);
  g_test_add_func ("/engine/tokenizer/spm/model-matches-llama2c", test_model_matches_llama2c);
  g_test_add_func ("/engine/tokenizer/spm/model-merges", test_model_merges);
  g_test_add_func ("/engine/tokenizer/spm/model-truncated", test_model_truncated);
  g_test_add_func ("/engine/tokenizer/spm/model-malformed", test_model_malformed);
  g_test_add_func ("/engine/tokenizer/spm/gguf-phi-3-vectors", test_gguf_vocab_vectors);
  g_test_add_func ("/engine/tokenizer/spm/gguf-unsupported", test_gguf_unsupported);
  g_test_add_func ("/engine/tokenizer/spm/gguf-crafted", test_gguf_crafted);
  g_test_add_func ("/engine/tokenizer/spm/gguf-model-vocab", test_gguf_model_vocab);
  g_test_add_func ("/engine/tokenizer/spm/mistral-ids", test_mistral_ids);
  g_test_add_func ("/engine/tokenizer/spm/mistral-round-trip", test_mistral_round_trip);
  g_test_add_func ("/engine/tokenizer/spm/long-input", test_long_input);

  return g_test_run ();
}
