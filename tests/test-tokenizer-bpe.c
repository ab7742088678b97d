/* SPDX-License-Identifier: MIT
 *
 * Byte-level BPE and tokenizer.json: llama.cpp's vocabulary test vectors
 * (ggml-vocab-{gpt-2,falcon,mpt}.gguf with their .inp/.out files), the
 * Qwen3 tokenizer.json against ids computed by Hugging Face tokenizers
 * (tools/make-tokenizer-vectors.py), round trips of random UTF-8, the
 * tokenizer core (invalid text, padding ids, finding tokenizer files) and
 * malformed tokenizer.json files.
 */
#include "config.h"

#include "lsc-error.h"
#include "lsc-test-util.h"
#include "lsc-tokenizer-private.h"
#include "lsc-tokenizer.h"

#include <string.h>

/* ---- helpers ------------------------------------------------------------- */

typedef struct {
  const char *text;
  gint32 ids[64];  /* ends with -1 */
} LscTokVector;

static char *
ids_to_string (const gint32 *ids, gsize n)
{
  GString *s = g_string_new ("[");
  for (gsize i = 0; i < n; i++)
    g_string_append_printf (s, " %d", ids[i]);
  g_string_append (s, " ]");
  return g_string_free (s, FALSE);
}

static void
assert_ids (const char *what, const char *text, const GArray *ids, const gint32 *expected,
            gsize n_expected)
{
  gboolean same = ids->len == n_expected
                  && (n_expected == 0
                      || memcmp (ids->data, expected, n_expected * sizeof (gint32)) == 0);
  if (!same)
    {
      g_autofree char *got = ids_to_string ((const gint32 *) ids->data, ids->len);
      g_autofree char *want = ids_to_string (expected, n_expected);
      g_test_message ("%s: \"%s\": got %s, expected %s", what, text, got, want);
    }
  g_assert_true (same);
}

static gsize
vector_len (const gint32 *ids)
{
  gsize n = 0;
  while (ids[n] >= 0)
    n++;
  return n;
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

static char *
decode_array (const LscTokenizer *tok, const GArray *ids)
{
  return lsc_tokenizer_decode (tok, (const gint32 *) ids->data, ids->len);
}

/* Loads a shared tokenizer, or NULL after skipping the test. */
static LscTokenizer *
load_shared (const char *rel)
{
  g_autofree char *path = lsc_test_shared_path (rel);
  g_autoptr(GError) error = NULL;
  if (path == NULL)
    return NULL;
  LscTokenizer *tok = lsc_tokenizer_load (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (tok);
  return tok;
}

/* ---- llama.cpp vocabulary vectors ----------------------------------------- */

/* The .inp file holds strings separated by "\n__ggml_vocab_test__\n", the
 * last one followed by a final separator; empty strings are real entries.
 * The .out file holds one line of space-separated ids per string. */
static void
test_gguf_vectors (gconstpointer data)
{
  const char *name = data;
  g_autofree char *rel = g_strdup_printf ("models/tokenizers/gguf/ggml-vocab-%s.gguf", name);
  g_autoptr(LscTokenizer) tok = load_shared (rel);
  if (tok == NULL)
    return;
  g_assert_cmpint (lsc_tokenizer_get_kind (tok), ==, LSC_TOKENIZER_BYTE_BPE);

  g_autofree char *gguf = lsc_test_shared_path (rel);
  g_autofree char *inp_path = g_strconcat (gguf, ".inp", NULL);
  g_autofree char *out_path = g_strconcat (gguf, ".out", NULL);
  g_autoptr(GBytes) inp = lsc_test_read_file (inp_path);
  g_autoptr(GBytes) out = lsc_test_read_file (out_path);
  g_autofree char *inp_text = g_strndup (g_bytes_get_data (inp, NULL), g_bytes_get_size (inp));
  g_autofree char *out_text = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));

  const char *sep = "\n__ggml_vocab_test__\n";
  g_assert_true (g_str_has_suffix (inp_text, sep));
  inp_text[strlen (inp_text) - strlen (sep)] = '\0';
  g_auto(GStrv) inputs = g_strsplit (inp_text, sep, -1);
  g_auto(GStrv) lines = g_strsplit (out_text, "\n", -1);
  guint n = g_strv_length (inputs);
  g_assert_cmpuint (n, ==, 46);
  g_assert_cmpuint (g_strv_length (lines), >=, n);

  guint n_empty = 0;
  for (guint i = 0; i < n; i++)
    {
      g_auto(GStrv) fields = g_strsplit_set (lines[i], " ", -1);
      g_autoptr(GArray) expected = g_array_new (FALSE, FALSE, sizeof (gint32));
      for (guint f = 0; fields[f] != NULL; f++)
        if (fields[f][0] != '\0')
          {
            gint32 id = (gint32) g_ascii_strtoll (fields[f], NULL, 10);
            g_array_append_val (expected, id);
          }
      n_empty += inputs[i][0] == '\0';

      g_autoptr(GArray) ids = encode_ok (tok, inputs[i], -1, FALSE);
      assert_ids (name, inputs[i], ids, (const gint32 *) expected->data, expected->len);

      /* Byte-level BPE loses nothing: decoding gives the input back. */
      g_autofree char *text = decode_array (tok, ids);
      g_assert_cmpstr (text, ==, inputs[i]);
    }
  g_assert_cmpuint (n_empty, ==, 1);
}

/* ---- Qwen3 tokenizer.json --------------------------------------------------- */

static const LscTokVector qwen3_vectors[] = {
  { "Hello world",
    { 9707, 1879, -1 } },
  { " Hello World!",
    { 21927, 4337, 0, -1 } },
  { "<|im_start|>user\012What's 1234567 + 89?<|im_end|>\012<|im_start|>assistant\012",
    { 151644, 872, 198, 3838, 594, 220, 16, 17, 18, 19, 20, 21, 22, 488, 220, 23, 24, 30, 151645, 198, 151644, 77091, 198, -1 } },
  { "I'm here, they're gone; we'll see. IT'S OK",
    { 40, 2776, 1588, 11, 807, 2299, 8048, 26, 582, 3278, 1490, 13, 8700, 13272, 10402, -1 } },
  { "F\303\274hrer caf\303\251 na\303\257ve",
    { 37, 50753, 261, 51950, 94880, 586, -1 } },
  { "\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210\343\201\250\344\270\255\346\226\207\343\200\202",
    { 101059, 102819, 15767, 56833, 61803, 70534, 19182, 104811, 1773, -1 } },
  { "emoji: \360\237\246\231\360\237\232\200\360\237\221\250\342\200\215\360\237\221\251\342\200\215\360\237\221\247 done",
    { 37523, 25, 11162, 99, 247, 145836, 145367, 378, 235, 145233, 378, 235, 145665, 2814, -1 } },
  { "   leading spaces and trailing   ",
    { 256, 6388, 12621, 323, 27748, 262, -1 } },
  { "tabs\011and\015\012CRLF\012\012\012newlines",
    { 30993, 52477, 319, 34, 80658, 1406, 931, 7969, -1 } },
  { "e\314\201 (decomposed) vs \303\251",
    { 963, 320, 450, 92734, 8, 6165, 3958, -1 } },
  { "<think>\012reasoning\012</think>\012\012answer",
    { 151667, 198, 19895, 287, 198, 151668, 271, 9217, -1 } },
  { "code: for (int i = 0; i < 10; i++) { x += a[i]; }",
    { 1851, 25, 369, 320, 396, 600, 284, 220, 15, 26, 600, 366, 220, 16, 15, 26, 600, 2457, 314, 856, 1421, 264, 989, 5265, 335, -1 } },
  { "\303\226<|endoftext|>after",
    { 63361, 151643, 10694, -1 } },
  { "\355\225\234\352\265\255\354\226\264 \355\205\215\354\212\244\355\212\270",
    { 23573, 124785, 31079, 10764, 44104, 53189, -1 } },
  { "    \012    ",
    { 1066, 257, -1 } },
  { "\302\240non-breaking\343\200\200ideographic space",
    { 4102, 6280, 54307, 22441, 94007, 3550, -1 } },
};
static void
test_qwen3_vectors (void)
{
  g_autoptr(LscTokenizer) tok = load_shared ("models/tokenizers/hf/qwen3/tokenizer.json");
  if (tok == NULL)
    return;

  g_assert_cmpint (lsc_tokenizer_get_kind (tok), ==, LSC_TOKENIZER_BYTE_BPE);
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, 151669);
  g_assert_cmpint (lsc_tokenizer_get_bos (tok), ==, -1);
  g_assert_cmpint (lsc_tokenizer_get_eos (tok), ==, 151645);  /* <|im_end|> */
  g_assert_true (lsc_tokenizer_id_is_special (tok, 151643));
  g_assert_false (lsc_tokenizer_id_is_special (tok, 151667));  /* <think>: added, not special */
  g_assert_false (lsc_tokenizer_id_is_special (tok, 9707));
  g_assert_cmpstr (lsc_tokenizer_get_piece (tok, 21927), ==, "\304\240Hello");  /* "ĠHello" */

  for (gsize v = 0; v < G_N_ELEMENTS (qwen3_vectors); v++)
    {
      const LscTokVector *vec = &qwen3_vectors[v];
      g_autoptr(GArray) ids = encode_ok (tok, vec->text, -1, FALSE);
      assert_ids ("qwen3", vec->text, ids, vec->ids, vector_len (vec->ids));

      /* add_bos is a no-op without a BOS token. */
      g_autoptr(GArray) with_bos = encode_ok (tok, vec->text, -1, TRUE);
      g_assert_cmpuint (with_bos->len, ==, ids->len);

      g_autofree char *text = decode_array (tok, ids);
      g_autofree char *nfc = g_utf8_normalize (vec->text, -1, G_NORMALIZE_NFC);
      g_assert_cmpstr (text, ==, nfc);
    }

  /* Empty input: no ids. */
  g_autoptr(GArray) empty = encode_ok (tok, "", 0, TRUE);
  g_assert_cmpuint (empty->len, ==, 0);
}

/* Random text from fragments that stress the pre-tokenizer and the byte
 * mapping, random code points (Latin, combining marks, CJK, Hangul jamo,
 * emoji, odd whitespace) and special tokens. */
static char *
random_text (GRand *rand)
{
  static const char *const fragments[] = {
    " ", "  ", "    ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "\302\240", "\343\200\200",
    "Hello", " world", "I'm", "you'RE", "'ll", "'s", "don't", "12", "3456789", " 0.5",
    "caf\303\251", "e\314\201", "A\314\212", "\341\204\222\341\205\241\341\206\253",
    "\346\227\245\346\234\254", "\360\237\246\231", "\360\237\221\250\342\200\215\360\237\222\273",
    "<|im_end|>", "<|im_start|>", "<think>", "<|im_end", "|>", "<>", "(x+y)*z", "#!", "...",
    "\342\202\254", "\316\261\316\262\316\263", "\327\251\327\234\327\225\327\235",
  };
  static const gunichar ranges[][2] = {
    { 0x20, 0x7e }, { 0xa0, 0x17f }, { 0x300, 0x36f }, { 0x4e00, 0x4fff }, { 0x1100, 0x11ff },
    { 0xac00, 0xad00 }, { 0x1f300, 0x1f64f }, { 0x2000, 0x200b }, { 0x0, 0x1f },
  };
  GString *s = g_string_new (NULL);
  int n = g_rand_int_range (rand, 0, 24);

  for (int i = 0; i < n; i++)
    {
      if (g_rand_boolean (rand))
        {
          g_string_append (s, fragments[g_rand_int_range (rand, 0, G_N_ELEMENTS (fragments))]);
          continue;
        }
      int r = g_rand_int_range (rand, 0, G_N_ELEMENTS (ranges));
      int count = g_rand_int_range (rand, 1, 6);
      for (int k = 0; k < count; k++)
        {
          gunichar c = g_rand_int_range (rand, ranges[r][0], ranges[r][1] + 1);
          if (c == 0)
            c = ' ';
          g_string_append_unichar (s, c);
        }
    }
  return g_string_free (s, FALSE);
}

/* The pieces around a special token are normalised separately (as Hugging
 * Face does), so a combining mark right after "<|im_end|>" would stay apart
 * from its '>' while NFC (s) composes them: such strings are skipped. */
static gboolean
mark_follows_special (const char *s)
{
  for (const char *p = strchr (s, '>'); p != NULL; p = strchr (p + 1, '>'))
    {
      gunichar next = g_utf8_get_char (p + 1);
      if (g_unichar_combining_class (next) != 0)
        return TRUE;
    }
  return FALSE;
}

static void
test_qwen3_roundtrip (void)
{
  g_autoptr(LscTokenizer) tok = load_shared ("models/tokenizers/hf/qwen3/tokenizer.json");
  if (tok == NULL)
    return;
  g_autoptr(GRand) rand = g_rand_new_with_seed (20240611);
  int n_special = 0, n_checked = 0;

  for (int i = 0; i < 2000; i++)
    {
      g_autofree char *s = random_text (rand);
      if (mark_follows_special (s))
        continue;
      g_autoptr(GArray) ids = encode_ok (tok, s, -1, FALSE);
      g_autofree char *back = decode_array (tok, ids);
      g_autofree char *nfc = g_utf8_normalize (s, -1, G_NORMALIZE_NFC);
      if (g_strcmp0 (back, nfc) != 0)
        g_test_message ("round trip of \"%s\" gave \"%s\"", s, back);
      g_assert_cmpstr (back, ==, nfc);
      for (guint k = 0; k < ids->len; k++)
        {
          gint32 id = g_array_index (ids, gint32, k);
          g_assert_cmpint (id, >=, 0);
          g_assert_cmpint (id, <, lsc_tokenizer_get_n_vocab (tok));
          n_special += id == 151645;
        }
      n_checked++;
    }
  g_assert_cmpint (n_checked, >, 1500);
  g_assert_cmpint (n_special, >, 0);  /* "<|im_end|>" was seen as the special token */

  /* A long whitespace run stays cheap and exact. */
  g_autofree char *spaces = g_strnfill (100000, ' ');
  g_autoptr(GArray) ids = encode_ok (tok, spaces, -1, FALSE);
  g_autofree char *back = decode_array (tok, ids);
  g_assert_cmpstr (back, ==, spaces);
}

static void
test_qwen3_load_time (void)
{
  g_autofree char *path = lsc_test_shared_path ("models/tokenizers/hf/qwen3");
  g_autoptr(GError) error = NULL;
  if (path == NULL)
    return;

  gint64 t0 = g_get_monotonic_time ();
  g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (path, &error);  /* a directory */
  double seconds = (g_get_monotonic_time () - t0) / 1e6;
  g_assert_no_error (error);
  g_assert_true (g_str_has_suffix (lsc_tokenizer_get_path (tok), "tokenizer.json"));
  g_test_message ("qwen3 tokenizer.json (11 MB) loaded in %.3f s", seconds);
  g_assert_cmpfloat (seconds, <, 10.0);  /* generous: sanitizer builds are slow */
}

/* ---- Mistral tokenizer.json (SentencePiece-style BPE) ----------------------- */

static const LscTokVector mistral_vectors[] = {
  { "Hello world",
    { 22557, 1526, -1 } },
  { "  two leading spaces",
    { 259, 989, 5374, 10599, -1 } },
  { "\346\227\245\346\234\254\350\252\236 \360\237\246\231",
    { 28705, 29142, 29119, 30321, 28705, 243, 162, 169, 156, -1 } },
  { "<s>inline</s>",  /* the text after <s> gets the dummy prefix too: "▁inline" */
    { 1, 12901, 2, -1 } },
};
static void
test_mistral_json (void)
{
  g_autoptr(LscTokenizer) tok = load_shared ("models/tokenizers/hf/mistral-7b-v0.1/tokenizer.json");
  if (tok == NULL)
    return;

  g_assert_cmpint (lsc_tokenizer_get_kind (tok), ==, LSC_TOKENIZER_SPM_BPE);
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, 32000);
  g_assert_cmpint (lsc_tokenizer_get_bos (tok), ==, 1);
  g_assert_cmpint (lsc_tokenizer_get_eos (tok), ==, 2);

  for (gsize v = 0; v < G_N_ELEMENTS (mistral_vectors); v++)
    {
      const LscTokVector *vec = &mistral_vectors[v];
      g_autoptr(GArray) ids = encode_ok (tok, vec->text, -1, FALSE);
      assert_ids ("mistral", vec->text, ids, vec->ids, vector_len (vec->ids));
    }

  static const gint32 hello[] = { 1, 22557, 1526 };
  g_autoptr(GArray) ids = encode_ok (tok, "Hello world", -1, TRUE);
  assert_ids ("mistral", "Hello world", ids, hello, G_N_ELEMENTS (hello));
  g_autofree char *text = decode_array (tok, ids);
  g_assert_cmpstr (text, ==, "<s> Hello world");  /* HF decode, skip_special_tokens=False */
  g_autofree char *plain = lsc_tokenizer_decode (tok, hello + 1, 2);
  g_assert_cmpstr (plain, ==, "Hello world");  /* the dummy-prefix space is stripped */

  /* Byte pieces: a broken sequence becomes one U+FFFD per byte. */
  /* <0xF0> <0x9F> <0xA6> <0x99> <0x9F> */
  static const gint32 bytes[] = { 243, 162, 169, 156, 162 };
  g_autofree char *llama = lsc_tokenizer_decode (tok, bytes, 4);
  g_assert_cmpstr (llama, ==, "\360\237\246\231");
  g_autofree char *broken = lsc_tokenizer_decode (tok, bytes + 1, 2);
  g_assert_cmpstr (broken, ==, "\357\277\275\357\277\275");
}

/* ---- a tiny tokenizer.json, written by the test ----------------------------- */

/* Byte-level, vocabulary without most bytes: "Ġ" is the mapped space. */
static const char tiny_json[] =
  "{ \"added_tokens\": [ { \"id\": 9, \"content\": \"<eot>\", \"special\": true } ],"
  "  \"normalizer\": null,"
  "  \"pre_tokenizer\": { \"type\": \"ByteLevel\", \"add_prefix_space\": false },"
  "  \"decoder\": { \"type\": \"ByteLevel\" },"
  "  \"model\": { \"type\": \"BPE\","
  "    \"vocab\": { \"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"abc\": 4, \"\\u0120\": 5,"
  "                 \"\\u0120a\": 6, \"\\u00c3\": 7, \"\\u00a9\": 8 },"
  "    \"merges\": [ \"a b\", [\"ab\", \"c\"], \"\\u0120 a\" ] } }";

static char *
write_json (const char *name, const char *text)
{
  return lsc_test_write_file (name, text, strlen (text));
}

static void
test_tiny_bpe (void)
{
  g_autofree char *path = write_json ("tiny/tokenizer.json", tiny_json);
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (path, &error);
  g_assert_no_error (error);

  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, 10);
  /* "abc ab": chunks "abc", " ab"; in " ab" the rank-0 merge a+b wins over Ġ+a. */
  static const gint32 expect1[] = { 4, 5, 3 };
  g_autoptr(GArray) ids = encode_ok (tok, "abc ab", -1, FALSE);
  assert_ids ("tiny", "abc ab", ids, expect1, G_N_ELEMENTS (expect1));

  /* " ac": Ġ+a merges (no a+c rule); the special splits the text; é is
   * no piece, so its bytes (Ã ©) are used; 'z' has no id at all. */
  static const gint32 expect2[] = { 6, 2, 9, 7, 8, 0 };
  g_autoptr(GArray) ids2 = encode_ok (tok, " ac<eot>\303\251za", -1, FALSE);
  assert_ids ("tiny", " ac<eot>éza", ids2, expect2, G_N_ELEMENTS (expect2));
  g_autofree char *text = decode_array (tok, ids2);
  g_assert_cmpstr (text, ==, " ac<eot>\303\251a");

  /* Ids beyond the vocabulary (padding rows) decode to "". */
  static const gint32 padded[] = { 3, 10, 4000, -5, 2 };
  g_autofree char *pad_text = lsc_tokenizer_decode (tok, padded, G_N_ELEMENTS (padded));
  g_assert_cmpstr (pad_text, ==, "abc");
  g_assert_true (lsc_tokenizer_id_is_padding (tok, 10));
  g_assert_true (lsc_tokenizer_id_is_padding (tok, 4000));
  g_assert_false (lsc_tokenizer_id_is_padding (tok, 9));
  g_assert_null (lsc_tokenizer_get_piece (tok, 10));
  g_assert_true (lsc_tokenizer_id_is_special (tok, 9));

  /* Invalid UTF-8 from byte pieces becomes U+FFFD, one per maximal invalid
   * subpart (as Rust's from_utf8_lossy): 0xC3 'a' and 0xC3 0xC3 0xA9. */
  static const gint32 lone[] = { 7, 0, 7, 7, 8 };
  g_autofree char *lone_text = lsc_tokenizer_decode (tok, lone, G_N_ELEMENTS (lone));
  g_assert_cmpstr (lone_text, ==, "\357\277\275a\357\277\275\303\251");
}

static void
test_invalid_text (void)
{
  g_autofree char *path = write_json ("invalid/tokenizer.json", tiny_json);
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (path, &error);
  g_assert_no_error (error);

  GArray *ids = lsc_tokenizer_encode (tok, "abc\377ab", -1, FALSE, &error);
  g_assert_null (ids);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                         "tokenizer.json", "UTF-8", "offset 3", NULL);
  g_clear_error (&error);

  /* A truncated sequence at the very end. */
  ids = lsc_tokenizer_encode (tok, "ab\303", 3, FALSE, &error);
  g_assert_null (ids);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                         "offset 2", NULL);
  g_clear_error (&error);

  /* An explicit length may cover NUL bytes, which are valid text. */
  g_autoptr(GArray) nul = lsc_tokenizer_encode (tok, "a\0b", 3, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (nul->len, ==, 2);  /* 'a', (no id for NUL), 'b' */
}

/* ---- malformed tokenizer.json ------------------------------------------------ */

typedef struct {
  const char *name;
  const char *json;
  int code;
  const char *fragment1, *fragment2;
} LscBadJson;

static const LscBadJson bad_json[] = {
  { "not-json.json", "{ \"model\": { \"type\": \"BPE\", ",
    LSC_TOKENIZER_ERROR_CORRUPT, "not valid JSON", "byte" },
  { "array.json", "[1, 2]", LSC_TOKENIZER_ERROR_CORRUPT, "top level", NULL },
  { "wordpiece.json", "{ \"model\": { \"type\": \"WordPiece\", \"vocab\": { \"a\": 0 } } }",
    LSC_TOKENIZER_ERROR_UNSUPPORTED, "model.type", "\"WordPiece\"" },
  { "unigram.json", "{ \"model\": { \"type\": \"Unigram\", \"vocab\": [] } }",
    LSC_TOKENIZER_ERROR_UNSUPPORTED, "model.type", "\"Unigram\"" },
  { "merge-type.json",
    "{ \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 0, \"b\": 1, \"ab\": 2 },"
    "  \"merges\": [ \"a b\", 42 ] } }",
    LSC_TOKENIZER_ERROR_CORRUPT, "model.merges[1]", "found 42" },
  { "merge-three.json",
    "{ \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 0, \"b\": 1 },"
    "  \"merges\": [ [\"a\", \"b\", \"a\"] ] } }",
    LSC_TOKENIZER_ERROR_CORRUPT, "model.merges[0]", "expected \"a b\" or [a, b]" },
  { "merge-oov.json",
    "{ \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 0, \"b\": 1 },"
    "  \"merges\": [ \"a q\" ] } }",
    LSC_TOKENIZER_ERROR_CORRUPT, "model.merges[0]", "\"q\" is not in model.vocab" },
  { "negative-id.json",
    "{ \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 0, \"b\": -3 } } }",
    LSC_TOKENIZER_ERROR_CORRUPT, "model.vocab[\"b\"]", "id -3 is negative" },
  { "string-id.json",
    "{ \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": \"zero\" } } }",
    LSC_TOKENIZER_ERROR_CORRUPT, "model.vocab[\"a\"]", "expected an integer id" },
  { "huge-id.json",
    "{ \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 4000000000 } } }",
    LSC_TOKENIZER_ERROR_CORRUPT, "model.vocab[\"a\"]", "too large" },
  { "duplicate-id.json",
    "{ \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 0, \"b\": 0 } } }",
    LSC_TOKENIZER_ERROR_CORRUPT, "model.vocab", "id 0 is also" },
  { "added-id.json",
    "{ \"added_tokens\": [ { \"content\": \"<x>\" } ],"
    "  \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 0 } } }",
    LSC_TOKENIZER_ERROR_CORRUPT, "added_tokens[0].id", NULL },
  { "no-model.json", "{ \"version\": \"1.0\" }", LSC_TOKENIZER_ERROR_CORRUPT, "model", NULL },
  { "split-removed.json",
    "{ \"pre_tokenizer\": { \"type\": \"Split\", \"pattern\": { \"Regex\": \"a\" },"
    "    \"behavior\": \"Removed\" },"
    "  \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 0 } } }",
    LSC_TOKENIZER_ERROR_UNSUPPORTED, "pre_tokenizer.behavior", "\"Removed\"" },
  { "bad-regex.json",
    "{ \"pre_tokenizer\": { \"type\": \"Sequence\", \"pretokenizers\": [ { \"type\": \"Split\","
    "    \"pattern\": { \"Regex\": \"(a\" }, \"behavior\": \"Isolated\" } ] },"
    "  \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 0 } } }",
    LSC_TOKENIZER_ERROR_CORRUPT, "pre_tokenizer.pretokenizers[0].pattern", NULL },
  { "nfkc.json",
    "{ \"normalizer\": { \"type\": \"NFKC\" },"
    "  \"model\": { \"type\": \"BPE\", \"vocab\": { \"a\": 0 } } }",
    LSC_TOKENIZER_ERROR_UNSUPPORTED, "normalizer.type", "\"NFKC\"" },
};

static void
test_bad_json (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (bad_json); i++)
    {
      const LscBadJson *bad = &bad_json[i];
      g_autofree char *path = write_json (bad->name, bad->json);
      g_autoptr(GError) error = NULL;
      g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (path, &error);

      g_test_message ("%s: %s", bad->name, error != NULL ? error->message : "(no error)");
      g_assert_null (tok);
      if (bad->fragment2 != NULL)
        lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, bad->code, bad->name,
                               bad->fragment1, bad->fragment2, NULL);
      else
        lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, bad->code, bad->name,
                               bad->fragment1, NULL);
    }
}

/* ---- finding tokenizer files ------------------------------------------------- */

static void
test_load_not_found (void)
{
  g_autofree char *dir = g_build_filename (lsc_test_tmpdir (), "empty-model", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);

  g_autoptr(LscTokenizer) tok = lsc_tokenizer_load (dir, &error);
  g_assert_null (tok);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND,
                         "tokenizer.json", "tokenizer.model", "empty-model", NULL);
  g_clear_error (&error);

  /* A model file with nothing beside it. */
  g_autofree char *weights = lsc_test_write_file ("empty-model/model.safetensors", "x", 1);
  g_autoptr(LscTokenizer) tok2 = lsc_tokenizer_load (weights, &error);
  g_assert_null (tok2);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND,
                         "model.safetensors", "tokenizer.json", NULL);
  g_clear_error (&error);

  g_autofree char *missing = g_build_filename (dir, "nope.json", NULL);
  g_autoptr(LscTokenizer) tok3 = lsc_tokenizer_load (missing, &error);
  g_assert_null (tok3);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND,
                         "nope.json", NULL);
}

/* A llama2.c checkpoint finds tok512.bin beside it and reads it with the
 * checkpoint's vocabulary size (README: reference ids of llama2.c). */
static void
test_load_llama2c_checkpoint (void)
{
  g_autoptr(LscTokenizer) tok = load_shared ("models/stories260K/stories260K.bin");
  if (tok == NULL)
    return;

  g_assert_true (g_str_has_suffix (lsc_tokenizer_get_path (tok), "tok512.bin"));
  g_assert_cmpint (lsc_tokenizer_get_n_vocab (tok), ==, 512);
  static const gint32 expected[] = { 1, 403, 407, 261, 378 };
  g_autoptr(GArray) ids = encode_ok (tok, "Once upon a time", -1, TRUE);
  assert_ids ("stories260K", "Once upon a time", ids, expected, G_N_ELEMENTS (expected));
  g_autofree char *text = lsc_tokenizer_decode (tok, expected + 1, 4);
  g_assert_cmpstr (text, ==, "Once upon a time");

  /* A checkpoint in a folder of its own, with no tokenizer beside it. */
  g_autoptr(GBytes) bin = NULL;
  g_autofree char *src = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  g_autoptr(GError) error = NULL;
  bin = lsc_test_read_file (src);
  g_autofree char *lonely = lsc_test_write_file ("lonely/model.bin", g_bytes_get_data (bin, NULL),
                                                 MIN (g_bytes_get_size (bin), 4096));
  g_autoptr(LscTokenizer) none = lsc_tokenizer_load (lonely, &error);
  g_assert_null (none);
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND,
                         "model.bin", "tokenizer.bin", "tok*.bin", "tokenizer.model", NULL);
}

/* Pre-tokenizers by llama.cpp's tokenizer.ggml.pre name, as the GGUF
 * reader asks for them. */
static void
test_pre_names (void)
{
  static const struct { const char *name; guint n_regexes; } known[] = {
    { "gpt-2", 1 }, { "mpt", 1 }, { "gpt-neox", 1 }, { "olmo", 1 }, { "llama-bpe", 1 },
    { "qwen2", 1 }, { "falcon", 3 }, { "starcoder", 2 }, { "deepseek-coder", 5 },
    { "default", 4 }, { NULL, 4 },  /* absent: llama.cpp's default */
  };
  g_autoptr(LscTokenizer) tok = _lsc_tokenizer_new ("vocab.gguf", LSC_TOKENIZER_BYTE_BPE);
  g_autoptr(GError) error = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (known); i++)
    {
      g_assert_true (_lsc_tokenizer_bpe_set_pre (tok, known[i].name, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (tok->pre_regexes->len, ==, known[i].n_regexes);
    }

  g_assert_false (_lsc_tokenizer_bpe_set_pre (tok, "klingon-bpe", &error));
  lsc_test_assert_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
                         "vocab.gguf", "tokenizer.ggml.pre", "\"klingon-bpe\"", NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_data_func ("/engine/tokenizer/bpe/gguf-vectors/gpt-2", "gpt-2", test_gguf_vectors);
  g_test_add_data_func ("/engine/tokenizer/bpe/gguf-vectors/falcon", "falcon", test_gguf_vectors);
  g_test_add_data_func ("/engine/tokenizer/bpe/gguf-vectors/mpt", "mpt", test_gguf_vectors);
  g_test_add_func ("/engine/tokenizer/bpe/qwen3/vectors", test_qwen3_vectors);
  g_test_add_func ("/engine/tokenizer/bpe/qwen3/roundtrip", test_qwen3_roundtrip);
  g_test_add_func ("/engine/tokenizer/bpe/qwen3/load-time", test_qwen3_load_time);
  g_test_add_func ("/engine/tokenizer/json/mistral", test_mistral_json);
  g_test_add_func ("/engine/tokenizer/bpe/tiny", test_tiny_bpe);
  g_test_add_func ("/engine/tokenizer/invalid-text", test_invalid_text);
  g_test_add_func ("/engine/tokenizer/json/errors", test_bad_json);
  g_test_add_func ("/engine/tokenizer/load/not-found", test_load_not_found);
  g_test_add_func ("/engine/tokenizer/load/llama2c-checkpoint", test_load_llama2c_checkpoint);
  g_test_add_func ("/engine/tokenizer/bpe/pre-names", test_pre_names);

  return g_test_run ();
}
