/* SPDX-License-Identifier: MIT
 *
 * lsc-tokenizer-json.c: Hugging Face tokenizer.json (the `tokenizers`
 * library's serialisation), BPE models only.
 *
 * The parts we read:
 *
 *   {
 *     "added_tokens": [ { "id": 151643, "content": "<|endoftext|>",
 *                         "special": true, ... }, ... ],
 *     "normalizer": null | { "type": "NFC" }
 *                 | { "type": "Sequence", "normalizers": [
 *                       { "type": "Prepend", "prepend": "▁" },
 *                       { "type": "Replace", "pattern": { "String": " " },
 *                         "content": "▁" } ] },
 *     "pre_tokenizer": null
 *                 | { "type": "ByteLevel", "add_prefix_space": b, "use_regex": b }
 *                 | { "type": "Split", "pattern": { "Regex": r } | { "String": s },
 *                     "behavior": "Isolated", "invert": false }
 *                 | { "type": "Digits", "individual_digits": b }
 *                 | { "type": "Metaspace", "replacement": "▁",
 *                     "prepend_scheme": "first" | "always" | "never" }
 *                 | { "type": "Sequence", "pretokenizers": [ ... ] },
 *     "post_processor": { "type": "TemplateProcessing",
 *                         "single": [ { "SpecialToken": { "id": "<s>" } }, ... ] } | ...,
 *     "decoder": null | { "type": "ByteLevel" }
 *              | { "type": "Sequence", "decoders": [ Replace, ByteFallback, Fuse,
 *                  { "type": "Strip", "content": " ", "start": 1, "stop": 0 } ] },
 *     "model": {
 *       "type": "BPE",
 *       "vocab": { "piece": id, ... },           ids >= 0, gaps allowed
 *       "merges": [ "a b", ... ] | [ [ "a", "b" ], ... ],
 *       "byte_fallback": b, "ignore_merges": b, "unk_token": s | null
 *     }
 *   }
 *
 * n_vocab is one more than the largest id in model.vocab and added_tokens;
 * ids in no list are empty UNUSED pieces. Added tokens are matched literally
 * in the input, special or not (as Hugging Face does); special ones are
 * CONTROL tokens, the others USER_DEFINED.
 *
 * The algorithm: byte-level BPE when a ByteLevel pre-tokenizer or decoder
 * is present, SentencePiece-style BPE (merged by rank, byte fallback from
 * the model) otherwise. BOS comes from the post-processor template, else
 * from tokenizer_config.json beside the file ("bos_token"), EOS from
 * tokenizer_config.json ("eos_token").
 */
#include "config.h"

#include "lsc-tokenizer-private.h"

#include "lsc-error.h"

#include <json.h>
#include <stdarg.h>
#include <string.h>

/* The largest id we accept: 2^24 tokens is far beyond any real vocabulary
 * and keeps the piece table (8 bytes per id) below 128 MiB. */
#define MAX_TOKEN_ID (1 << 24)

#define SPM_SPACE "\xe2\x96\x81"  /* U+2581 */

#define BYTE_LEVEL_REGEX \
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* What the normalizer, pre-tokenizer and decoder ask for. */
typedef struct {
  gboolean byte_level;     /* a ByteLevel pre-tokenizer or decoder */
  gboolean nfc;
  gboolean spm_prefix;     /* Prepend("▁") normalizer, or Metaspace prepending */
  gboolean add_prefix_space; /* ByteLevel add_prefix_space */
  gboolean strip;          /* the decoder drops a leading space */
  GPtrArray *regexes;      /* (element-type GRegex) splits in order */
} LscJsonPipeline;

static void
set_corrupt (GError **error, const char *file, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
set_corrupt (GError **error, const char *file, const char *fmt, ...)
{
  va_list args;
  va_start (args, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, args);
  va_end (args);
  g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT, "%s: %s", file, msg);
}

/* A short JSON rendering of a value for error messages. */
static char *
describe (json_object *value)
{
  const char *s = json_object_to_json_string_ext (value, JSON_C_TO_STRING_PLAIN);
  if (strlen (s) > 40)
    return g_strdup_printf ("%.37s...", s);
  return g_strdup (s);
}

static json_object *
member (json_object *obj, const char *key)
{
  json_object *value = NULL;
  if (obj == NULL || !json_object_is_type (obj, json_type_object))
    return NULL;
  json_object_object_get_ex (obj, key, &value);
  return value;
}

/* The string member `key`, or NULL when absent or not a string. */
static const char *
member_string (json_object *obj, const char *key)
{
  json_object *value = member (obj, key);
  return value != NULL && json_object_is_type (value, json_type_string)
         ? json_object_get_string (value) : NULL;
}

static gboolean
member_bool (json_object *obj, const char *key, gboolean fallback)
{
  json_object *value = member (obj, key);
  return value != NULL && json_object_is_type (value, json_type_boolean)
         ? json_object_get_boolean (value) : fallback;
}

/* ---------------------------------------------------------------------- */
/* normalizer, pre-tokenizer, decoder                                     */
/* ---------------------------------------------------------------------- */

/* Every component is an object with a string "type". */
static const char *
component_type (json_object *obj, const char *file, const char *field, GError **error)
{
  const char *type = member_string (obj, "type");
  if (!json_object_is_type (obj, json_type_object) || type == NULL)
    {
      g_autofree char *found = describe (obj);
      set_corrupt (error, file, "%s: expected an object with a \"type\", found %s", field, found);
      return NULL;
    }
  return type;
}

static gboolean
set_unsupported (GError **error, const char *file, const char *field, const char *type)
{
  g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
               "%s: %s.type \"%s\" is not supported", file, field, type);
  return FALSE;
}

/* Calls parse on each element of the array member `key` of a Sequence. */
typedef gboolean (*LscParseFunc) (json_object *obj, const char *file, const char *field,
                                  LscJsonPipeline *pipe, GError **error);

static gboolean
parse_sequence (json_object *obj, const char *key, LscParseFunc parse, const char *file,
                const char *field, LscJsonPipeline *pipe, GError **error)
{
  json_object *list = member (obj, key);
  if (list == NULL || !json_object_is_type (list, json_type_array))
    {
      set_corrupt (error, file, "%s.%s: expected an array", field, key);
      return FALSE;
    }
  for (size_t i = 0; i < json_object_array_length (list); i++)
    {
      g_autofree char *sub = g_strdup_printf ("%s.%s[%zu]", field, key, i);
      if (!parse (json_object_array_get_idx (list, i), file, sub, pipe, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
parse_normalizer (json_object *obj, const char *file, const char *field,
                  LscJsonPipeline *pipe, GError **error)
{
  if (obj == NULL)
    return TRUE;
  const char *type = component_type (obj, file, field, error);
  if (type == NULL)
    return FALSE;

  if (strcmp (type, "Sequence") == 0)
    return parse_sequence (obj, "normalizers", parse_normalizer, file, field, pipe, error);
  if (strcmp (type, "NFC") == 0)
    {
      pipe->nfc = TRUE;
      return TRUE;
    }
  if (strcmp (type, "Prepend") == 0 && g_strcmp0 (member_string (obj, "prepend"), SPM_SPACE) == 0)
    {
      pipe->spm_prefix = TRUE;
      return TRUE;
    }
  if (strcmp (type, "Replace") == 0
      && g_strcmp0 (member_string (member (obj, "pattern"), "String"), " ") == 0
      && g_strcmp0 (member_string (obj, "content"), SPM_SPACE) == 0)
    return TRUE;  /* the SentencePiece algorithm escapes spaces itself */

  g_autofree char *what = g_strdup_printf ("%s%s", type,
                                           strcmp (type, "Prepend") == 0
                                           || strcmp (type, "Replace") == 0
                                           ? " (other than the SentencePiece \"▁\" form)" : "");
  return set_unsupported (error, file, field, what);
}

static gboolean
add_regex (LscJsonPipeline *pipe, const char *pattern, const char *file, const char *field,
           GError **error)
{
  g_autoptr(GError) local = NULL;
  GRegex *re = g_regex_new (pattern, G_REGEX_OPTIMIZE | G_REGEX_DOLLAR_ENDONLY, 0, &local);
  if (re == NULL)
    {
      set_corrupt (error, file, "%s.pattern: %s", field, local->message);
      return FALSE;
    }
  g_ptr_array_add (pipe->regexes, re);
  return TRUE;
}

static gboolean
parse_split (json_object *obj, const char *file, const char *field, LscJsonPipeline *pipe,
             GError **error)
{
  json_object *pattern = member (obj, "pattern");
  const char *regex = member_string (pattern, "Regex");
  const char *literal = member_string (pattern, "String");
  const char *behavior = member_string (obj, "behavior");

  if (behavior == NULL || strcmp (behavior, "Isolated") != 0 || member_bool (obj, "invert", FALSE))
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
                   "%s: %s.behavior \"%s\"%s is not supported (only \"Isolated\")", file, field,
                   behavior != NULL ? behavior : "(none)",
                   member_bool (obj, "invert", FALSE) ? " with invert" : "");
      return FALSE;
    }
  if (regex != NULL)
    return add_regex (pipe, regex, file, field, error);
  if (literal != NULL)
    {
      g_autofree char *escaped = g_regex_escape_string (literal, -1);
      return add_regex (pipe, escaped, file, field, error);
    }
  g_autofree char *found = describe (pattern != NULL ? pattern : obj);
  set_corrupt (error, file, "%s.pattern: expected {\"Regex\": ...} or {\"String\": ...}, found %s",
               field, found);
  return FALSE;
}

static gboolean
parse_pre_tokenizer (json_object *obj, const char *file, const char *field,
                     LscJsonPipeline *pipe, GError **error)
{
  if (obj == NULL)
    return TRUE;
  const char *type = component_type (obj, file, field, error);
  if (type == NULL)
    return FALSE;

  if (strcmp (type, "Sequence") == 0)
    return parse_sequence (obj, "pretokenizers", parse_pre_tokenizer, file, field, pipe, error);
  if (strcmp (type, "ByteLevel") == 0)
    {
      pipe->byte_level = TRUE;
      pipe->add_prefix_space = member_bool (obj, "add_prefix_space", TRUE);
      if (member_bool (obj, "use_regex", TRUE))
        return add_regex (pipe, BYTE_LEVEL_REGEX, file, field, error);
      return TRUE;
    }
  if (strcmp (type, "Split") == 0)
    return parse_split (obj, file, field, pipe, error);
  if (strcmp (type, "Digits") == 0)
    return add_regex (pipe, member_bool (obj, "individual_digits", FALSE) ? "\\p{N}" : "\\p{N}+",
                      file, field, error);
  if (strcmp (type, "Metaspace") == 0)
    {
      const char *scheme = member_string (obj, "prepend_scheme");
      if (g_strcmp0 (member_string (obj, "replacement"), SPM_SPACE) != 0)
        {
          set_corrupt (error, file, "%s.replacement: expected \"▁\"", field);
          return FALSE;
        }
      pipe->spm_prefix = scheme != NULL ? strcmp (scheme, "never") != 0
                                        : member_bool (obj, "add_prefix_space", TRUE);
      return TRUE;
    }
  return set_unsupported (error, file, field, type);
}

static gboolean
parse_decoder (json_object *obj, const char *file, const char *field, LscJsonPipeline *pipe,
               GError **error)
{
  if (obj == NULL)
    return TRUE;
  const char *type = component_type (obj, file, field, error);
  if (type == NULL)
    return FALSE;

  if (strcmp (type, "Sequence") == 0)
    return parse_sequence (obj, "decoders", parse_decoder, file, field, pipe, error);
  if (strcmp (type, "ByteLevel") == 0)
    {
      pipe->byte_level = TRUE;
      return TRUE;
    }
  if (strcmp (type, "Replace") == 0 || strcmp (type, "ByteFallback") == 0
      || strcmp (type, "Fuse") == 0)
    return TRUE;  /* what the SentencePiece decode does anyway */
  if (strcmp (type, "Strip") == 0)
    {
      json_object *start = member (obj, "start");
      if (g_strcmp0 (member_string (obj, "content"), " ") == 0 && start != NULL
          && json_object_get_int (start) > 0)
        pipe->strip = TRUE;
      return TRUE;
    }
  if (strcmp (type, "Metaspace") == 0)
    {
      const char *scheme = member_string (obj, "prepend_scheme");
      pipe->strip = scheme != NULL ? strcmp (scheme, "never") != 0
                                   : member_bool (obj, "add_prefix_space", TRUE);
      return TRUE;
    }
  return set_unsupported (error, file, field, type);
}

/* ---------------------------------------------------------------------- */
/* vocabulary                                                             */
/* ---------------------------------------------------------------------- */

/* Checks a token id value; returns it, or -1 with error set. */
static int
check_id (json_object *value, const char *file, const char *field, GError **error)
{
  if (value == NULL || !json_object_is_type (value, json_type_int))
    {
      g_autofree char *found = value != NULL ? describe (value) : g_strdup ("nothing");
      set_corrupt (error, file, "%s: expected an integer id, found %s", field, found);
      return -1;
    }
  gint64 id = json_object_get_int64 (value);
  if (id < 0 || id >= MAX_TOKEN_ID)
    {
      set_corrupt (error, file, "%s: id %" G_GINT64_FORMAT " is %s", field, id,
                   id < 0 ? "negative" : "too large (at most 16777215)");
      return -1;
    }
  return (int) id;
}

/* Validates model.vocab and added_tokens; returns n_vocab or -1. */
static int
count_vocab (json_object *vocab, json_object *added, const char *file, GError **error)
{
  int max_id = -1;

  json_object_object_foreach (vocab, piece, value)
    {
      g_autofree char *field = g_strdup_printf ("model.vocab[\"%s\"]", piece);
      int id = check_id (value, file, field, error);
      if (id < 0)
        return -1;
      max_id = MAX (max_id, id);
    }
  for (size_t i = 0; added != NULL && i < json_object_array_length (added); i++)
    {
      json_object *entry = json_object_array_get_idx (added, i);
      g_autofree char *field = g_strdup_printf ("added_tokens[%zu].id", i);
      int id = check_id (member (entry, "id"), file, field, error);
      if (id < 0)
        return -1;
      if (member_string (entry, "content") == NULL)
        {
          set_corrupt (error, file, "added_tokens[%zu].content: expected a string", i);
          return -1;
        }
      max_id = MAX (max_id, id);
    }
  if (max_id < 0)
    {
      set_corrupt (error, file, "model.vocab: empty vocabulary");
      return -1;
    }
  return max_id + 1;
}

static gboolean
is_byte_piece (const char *piece)
{
  return strlen (piece) == 6 && g_str_has_prefix (piece, "<0x") && piece[5] == '>'
         && g_ascii_isxdigit (piece[3]) && g_ascii_isxdigit (piece[4]);
}

static gboolean
load_vocab (LscTokenizer *tok, json_object *vocab, json_object *added, gboolean byte_fallback,
            const char *file, GError **error)
{
  int n_vocab = count_vocab (vocab, added, file, error);
  if (n_vocab < 0)
    return FALSE;

  char **pieces = g_new0 (char *, n_vocab);   /* (n_vocab) */
  guint8 *types = g_new (guint8, n_vocab);     /* (n_vocab) LscTokenType */
  memset (types, LSC_TOKEN_TYPE_NORMAL, n_vocab);

  json_object_object_foreach (vocab, piece, value)
    {
      int id = json_object_get_int (value);
      if (pieces[id] != NULL)
        {
          set_corrupt (error, file, "model.vocab[\"%s\"]: id %d is also \"%s\"", piece, id,
                       pieces[id]);
          for (int i = 0; i < n_vocab; i++)
            g_free (pieces[i]);
          g_free (pieces);
          g_free (types);
          return FALSE;
        }
      pieces[id] = g_strdup (piece);
      if (tok->kind == LSC_TOKENIZER_SPM_BPE && byte_fallback && is_byte_piece (piece))
        types[id] = LSC_TOKEN_TYPE_BYTE;
    }
  for (size_t i = 0; added != NULL && i < json_object_array_length (added); i++)
    {
      json_object *entry = json_object_array_get_idx (added, i);
      int id = json_object_get_int (member (entry, "id"));
      g_free (pieces[id]);
      pieces[id] = g_strdup (member_string (entry, "content"));
      types[id] = member_bool (entry, "special", FALSE) ? LSC_TOKEN_TYPE_CONTROL
                                                        : LSC_TOKEN_TYPE_USER_DEFINED;
    }
  for (int id = 0; id < n_vocab; id++)
    if (pieces[id] == NULL)
      {
        pieces[id] = g_strdup ("");
        types[id] = LSC_TOKEN_TYPE_UNUSED;
      }

  if (!_lsc_tokenizer_set_vocab (tok, n_vocab, pieces, NULL, types, error))
    return FALSE;

  for (size_t i = 0; added != NULL && i < json_object_array_length (added); i++)
    {
      json_object *entry = json_object_array_get_idx (added, i);
      _lsc_tokenizer_add_special (tok, json_object_get_int (member (entry, "id")));
    }
  return TRUE;
}

static gboolean
check_merge_piece (LscTokenizer *tok, const char *piece, const char *file, size_t i,
                   GError **error)
{
  if (_lsc_tokenizer_piece_id (tok, piece, -1) >= 0)
    return TRUE;
  set_corrupt (error, file, "model.merges[%zu]: \"%s\" is not in model.vocab", i, piece);
  return FALSE;
}

static gboolean
load_merges (LscTokenizer *tok, json_object *merges, const char *file, GError **error)
{
  if (merges == NULL)
    return TRUE;
  if (!json_object_is_type (merges, json_type_array))
    {
      g_autofree char *found = describe (merges);
      set_corrupt (error, file, "model.merges: expected an array, found %s", found);
      return FALSE;
    }

  for (size_t i = 0; i < json_object_array_length (merges); i++)
    {
      json_object *m = json_object_array_get_idx (merges, i);
      g_autofree char *left = NULL;
      const char *right = NULL;

      if (json_object_is_type (m, json_type_string))
        {
          const char *s = json_object_get_string (m);
          const char *space = strchr (s, ' ');
          if (space != NULL && space != s && space[1] != '\0' && strchr (space + 1, ' ') == NULL)
            {
              left = g_strndup (s, space - s);
              right = space + 1;
            }
        }
      else if (json_object_is_type (m, json_type_array) && json_object_array_length (m) == 2
               && json_object_is_type (json_object_array_get_idx (m, 0), json_type_string)
               && json_object_is_type (json_object_array_get_idx (m, 1), json_type_string))
        {
          left = g_strdup (json_object_get_string (json_object_array_get_idx (m, 0)));
          right = json_object_get_string (json_object_array_get_idx (m, 1));
        }
      if (left == NULL)
        {
          g_autofree char *found = describe (m);
          set_corrupt (error, file, "model.merges[%zu]: expected \"a b\" or [a, b], found %s",
                       i, found);
          return FALSE;
        }
      if (!check_merge_piece (tok, left, file, i, error)
          || !check_merge_piece (tok, right, file, i, error))
        return FALSE;
      _lsc_tokenizer_add_merge (tok, left, right);
    }
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* BOS / EOS                                                              */
/* ---------------------------------------------------------------------- */

/* The first SpecialToken of a TemplateProcessing "single" template. */
static const char *
template_bos (json_object *post)
{
  json_object *single = member (post, "single");
  if (g_strcmp0 (member_string (post, "type"), "TemplateProcessing") != 0 || single == NULL
      || !json_object_is_type (single, json_type_array) || json_object_array_length (single) == 0)
    return NULL;
  return member_string (member (json_object_array_get_idx (single, 0), "SpecialToken"), "id");
}

/* "bos_token": "<s>" or { "content": "<s>", ... } */
static const char *
config_token (json_object *config, const char *key)
{
  json_object *value = member (config, key);
  if (value != NULL && json_object_is_type (value, json_type_object))
    return member_string (value, "content");
  return member_string (config, key);
}

static gboolean
load_special_ids (LscTokenizer *tok, json_object *root, const char *path, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *config_path = g_build_filename (dir, "tokenizer_config.json", NULL);
  json_object *config = NULL;

  const char *bos = template_bos (member (root, "post_processor"));
  if (bos != NULL)
    tok->bos_id = _lsc_tokenizer_piece_id (tok, bos, -1);

  if (g_file_test (config_path, G_FILE_TEST_IS_REGULAR))
    {
      g_autofree char *text = NULL;
      gsize size = 0;
      g_autoptr(GError) local = NULL;
      if (!g_file_get_contents (config_path, &text, &size, &local))
        {
          g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_IO,
                       "%s: cannot read: %s", config_path, local->message);
          return FALSE;
        }
      config = json_tokener_parse (text);
      if (config == NULL || !json_object_is_type (config, json_type_object))
        {
          set_corrupt (error, config_path, "not a JSON object");
          json_object_put (config);
          return FALSE;
        }
      if (tok->bos_id < 0 && config_token (config, "bos_token") != NULL)
        tok->bos_id = _lsc_tokenizer_piece_id (tok, config_token (config, "bos_token"), -1);
      if (config_token (config, "eos_token") != NULL)
        tok->eos_id = _lsc_tokenizer_piece_id (tok, config_token (config, "eos_token"), -1);
      json_object_put (config);
    }
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* the reader                                                             */
/* ---------------------------------------------------------------------- */

static json_object *
parse_file (const char *path, const char *file, GError **error)
{
  g_autofree char *text = NULL;
  gsize size = 0;
  g_autoptr(GError) local = NULL;

  if (!g_file_get_contents (path, &text, &size, &local))
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_IO, "%s: cannot read: %s",
                   path, local->message);
      return NULL;
    }
  if (size > G_MAXINT)
    {
      set_corrupt (error, file, "%" G_GSIZE_FORMAT " bytes is too large", size);
      return NULL;
    }

  json_tokener *parser = json_tokener_new ();
  json_object *root = json_tokener_parse_ex (parser, text, (int) size);
  enum json_tokener_error err = json_tokener_get_error (parser);
  size_t end = json_tokener_get_parse_end (parser);
  json_tokener_free (parser);

  if (root == NULL || err != json_tokener_success)
    {
      set_corrupt (error, file, "not valid JSON at byte %zu: %s", end,
                   err == json_tokener_continue ? "unexpected end of file"
                                                : json_tokener_error_desc (err));
      json_object_put (root);
      return NULL;
    }
  if (!json_object_is_type (root, json_type_object))
    {
      set_corrupt (error, file, "expected a JSON object at the top level");
      json_object_put (root);
      return NULL;
    }
  return root;
}

static void
pipeline_clear (LscJsonPipeline *pipe)
{
  g_clear_pointer (&pipe->regexes, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (LscJsonPipeline, pipeline_clear)

LscTokenizer *
_lsc_tokenizer_load_json (const char *path, GError **error)
{
  g_autofree char *file = g_path_get_basename (path);
  g_auto(LscJsonPipeline) pipe = { 0 };

  json_object *root = parse_file (path, file, error);
  if (root == NULL)
    return NULL;

  /* From here on every exit puts root. */
  LscTokenizer *tok = NULL;
  json_object *model = member (root, "model");
  const char *type = member_string (model, "type");
  json_object *vocab = member (model, "vocab");
  json_object *added = member (root, "added_tokens");

  if (model == NULL || !json_object_is_type (model, json_type_object))
    {
      set_corrupt (error, file, "model: expected an object");
      goto fail;
    }
  if (type != NULL && strcmp (type, "BPE") != 0)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
                   "%s: model.type \"%s\" is not supported (only \"BPE\")", file, type);
      goto fail;
    }
  if (vocab == NULL || !json_object_is_type (vocab, json_type_object))
    {
      set_corrupt (error, file, "model.vocab: expected an object of piece: id");
      goto fail;
    }
  if (added != NULL && json_object_is_type (added, json_type_null))
    added = NULL;
  if (added != NULL && !json_object_is_type (added, json_type_array))
    {
      set_corrupt (error, file, "added_tokens: expected an array");
      goto fail;
    }

  pipe.regexes = g_ptr_array_new_with_free_func ((GDestroyNotify) g_regex_unref);
  if (!parse_normalizer (member (root, "normalizer"), file, "normalizer", &pipe, error)
      || !parse_pre_tokenizer (member (root, "pre_tokenizer"), file, "pre_tokenizer", &pipe,
                               error)
      || !parse_decoder (member (root, "decoder"), file, "decoder", &pipe, error))
    goto fail;

  tok = _lsc_tokenizer_new (path, pipe.byte_level ? LSC_TOKENIZER_BYTE_BPE
                                                  : LSC_TOKENIZER_SPM_BPE);
  tok->nfc = pipe.nfc;
  tok->ignore_merges = member_bool (model, "ignore_merges", FALSE);
  if (pipe.byte_level)
    {
      tok->add_dummy_prefix = pipe.add_prefix_space;
      g_ptr_array_extend_and_steal (tok->pre_regexes, g_steal_pointer (&pipe.regexes));
    }
  else
    {
      tok->add_dummy_prefix = pipe.spm_prefix;
      tok->byte_fallback = member_bool (model, "byte_fallback", FALSE);
      tok->strip_decoded_prefix = pipe.strip;
    }

  if (!load_vocab (tok, vocab, added, tok->byte_fallback, file, error)
      || !load_merges (tok, member (model, "merges"), file, error)
      || !load_special_ids (tok, root, path, error))
    goto fail;

  const char *unk = member_string (model, "unk_token");
  if (unk != NULL)
    tok->unk_id = _lsc_tokenizer_piece_id (tok, unk, -1);

  json_object_put (root);
  return tok;

fail:
  g_clear_pointer (&tok, lsc_tokenizer_free);
  json_object_put (root);
  return NULL;
}
