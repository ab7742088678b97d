/* SPDX-License-Identifier: MIT
 *
 * The vocabulary stored in a GGUF file's metadata, as llama.cpp writes and
 * reads it (llama-vocab.cpp):
 *
 *   tokenizer.ggml.model             string    "llama" (SentencePiece BPE) or "gpt2"
 *                                              (byte-level BPE); "bert", "rwkv", ... are
 *                                              not supported
 *   tokenizer.ggml.tokens            [string]  the pieces, in id order (required)
 *   tokenizer.ggml.scores            [f32]     "llama": merge scores (default 0)
 *   tokenizer.ggml.token_type        [i32]     LscTokenType per piece (default NORMAL)
 *   tokenizer.ggml.merges            [string]  "gpt2": "left right" rules, by rank (required)
 *   tokenizer.ggml.pre               string    "gpt2": pre-tokenizer name (default "default")
 *   tokenizer.ggml.add_space_prefix  bool      "llama": dummy prefix (default true)
 *   tokenizer.ggml.bos_token_id      u32       0xFFFFFFFF or absent: none
 *   tokenizer.ggml.eos_token_id      u32       idem
 *   tokenizer.ggml.unknown_token_id  u32       idem
 *   tokenizer.ggml.add_bos_token     bool      not read: lsc_tokenizer_encode () takes add_bos
 *
 * CONTROL and USER_DEFINED pieces are registered as specials, matched
 * literally in input text as llama.cpp does.
 */
#include "config.h"

#include "lsc-error.h"
#include "lsc-tokenizer-private.h"

#include <string.h>

/* Re-raises a metadata error of the GGUF reader as a corrupt tokenizer. */
static void
lsc_tg_propagate (GError **error, GError *local_error)
{
  g_set_error_literal (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                       local_error->message);
  g_error_free (local_error);
}

/* An optional token id: -1 when absent or 0xFFFFFFFF; CORRUPT outside the vocabulary. */
static gboolean
lsc_tg_read_id (const LscGguf *gguf, const char *name, const char *key, int n_vocab, int *out,
                GError **error)
{
  GError *local_error = NULL;
  gint64 v;

  *out = -1;
  if (!lsc_gguf_has_key (gguf, key))
    return TRUE;
  if (!lsc_gguf_get_int (gguf, key, &v, &local_error))
    {
      lsc_tg_propagate (error, local_error);
      return FALSE;
    }
  if (v == -1 || v == G_MAXUINT32)
    return TRUE;
  if (v < 0 || v >= n_vocab)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: key '%s' is %" G_GINT64_FORMAT ", outside the %d tokens", name, key, v,
                   n_vocab);
      return FALSE;
    }
  *out = (int) v;
  return TRUE;
}

static gboolean
lsc_tg_read_bool (const LscGguf *gguf, const char *key, gboolean fallback, gboolean *out,
                  GError **error)
{
  GError *local_error = NULL;

  *out = fallback;
  if (!lsc_gguf_has_key (gguf, key))
    return TRUE;
  if (!lsc_gguf_get_bool (gguf, key, out, &local_error))
    {
      lsc_tg_propagate (error, local_error);
      return FALSE;
    }
  return TRUE;
}

/* Reads tokens, scores (when `want_scores`) and token types into fresh arrays. */
static gboolean
lsc_tg_read_vocab (const LscGguf *gguf, const char *name, gboolean want_scores, int *n_vocab,
                   char ***pieces_out, float **scores_out, guint8 **types_out, GError **error)
{
  GError *local_error = NULL;
  const char *const *tokens;
  const float *scores = NULL;
  const gint32 *types = NULL;
  guint64 n, n_scores = 0, n_types = 0;
  char **pieces;        /* (n + 1) NULL-terminated */
  float *score_copy;    /* (n) or NULL */
  guint8 *type_copy;    /* (n) LscTokenType */

  if (!lsc_gguf_has_key (gguf, "tokenizer.ggml.tokens"))
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: key 'tokenizer.ggml.tokens' is missing", name);
      return FALSE;
    }
  tokens = lsc_gguf_get_string_array (gguf, "tokenizer.ggml.tokens", &n, &local_error);
  if (tokens == NULL)
    {
      lsc_tg_propagate (error, local_error);
      return FALSE;
    }
  if (n == 0 || n > G_MAXINT / 2)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: key 'tokenizer.ggml.tokens' has %" G_GUINT64_FORMAT " entries", name, n);
      return FALSE;
    }

  if (want_scores && lsc_gguf_has_key (gguf, "tokenizer.ggml.scores"))
    {
      scores = lsc_gguf_get_f32_array (gguf, "tokenizer.ggml.scores", &n_scores, &local_error);
      if (scores == NULL)
        {
          lsc_tg_propagate (error, local_error);
          return FALSE;
        }
      if (n_scores != n)
        {
          g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                       "%s: key 'tokenizer.ggml.scores' has %" G_GUINT64_FORMAT " entries for %"
                       G_GUINT64_FORMAT " tokens", name, n_scores, n);
          return FALSE;
        }
    }
  if (lsc_gguf_has_key (gguf, "tokenizer.ggml.token_type"))
    {
      types = lsc_gguf_get_i32_array (gguf, "tokenizer.ggml.token_type", &n_types, &local_error);
      if (types == NULL)
        {
          lsc_tg_propagate (error, local_error);
          return FALSE;
        }
      if (n_types != n)
        {
          g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                       "%s: key 'tokenizer.ggml.token_type' has %" G_GUINT64_FORMAT
                       " entries for %" G_GUINT64_FORMAT " tokens", name, n_types, n);
          return FALSE;
        }
      for (guint64 i = 0; i < n; i++)
        if (types[i] < LSC_TOKEN_TYPE_UNDEFINED || types[i] > LSC_TOKEN_TYPE_BYTE)
          {
            g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                         "%s: key 'tokenizer.ggml.token_type': token %" G_GUINT64_FORMAT
                         " has type %d, expected 0..6", name, i, types[i]);
            return FALSE;
          }
    }

  pieces = g_new0 (char *, n + 1);
  score_copy = want_scores ? g_new0 (float, n) : NULL;
  type_copy = g_new0 (guint8, n);
  for (guint64 i = 0; i < n; i++)
    {
      pieces[i] = g_strdup (tokens[i]);
      if (scores != NULL)
        score_copy[i] = scores[i];
      type_copy[i] = types != NULL ? (guint8) types[i] : LSC_TOKEN_TYPE_NORMAL;
    }
  *n_vocab = (int) n;
  *pieces_out = pieces;
  *scores_out = score_copy;
  *types_out = type_copy;
  return TRUE;
}

/* tokenizer.ggml.merges: "left right" strings, split at the first space after
 * the first byte (as llama.cpp does). */
static gboolean
lsc_tg_read_merges (const LscGguf *gguf, const char *name, LscTokenizer *tok, GError **error)
{
  GError *local_error = NULL;
  const char *const *merges;
  guint64 n;

  if (!lsc_gguf_has_key (gguf, "tokenizer.ggml.merges"))
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                   "%s: key 'tokenizer.ggml.merges' is missing", name);
      return FALSE;
    }
  merges = lsc_gguf_get_string_array (gguf, "tokenizer.ggml.merges", &n, &local_error);
  if (merges == NULL)
    {
      lsc_tg_propagate (error, local_error);
      return FALSE;
    }
  for (guint64 i = 0; i < n; i++)
    {
      const char *space = merges[i][0] != '\0' ? strchr (merges[i] + 1, ' ') : NULL;
      g_autofree char *left = NULL;

      if (space == NULL || space[1] == '\0')
        {
          g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_CORRUPT,
                       "%s: key 'tokenizer.ggml.merges': entry %" G_GUINT64_FORMAT
                       " is not \"left right\"", name, i);
          return FALSE;
        }
      left = g_strndup (merges[i], (gsize) (space - merges[i]));
      _lsc_tokenizer_add_merge (tok, left, space + 1);
    }
  return TRUE;
}

static void
lsc_tg_add_specials (LscTokenizer *tok)
{
  for (int id = 0; id < tok->n_vocab; id++)
    if (tok->types[id] == LSC_TOKEN_TYPE_CONTROL || tok->types[id] == LSC_TOKEN_TYPE_USER_DEFINED)
      _lsc_tokenizer_add_special (tok, id);
}

LscTokenizer *
_lsc_tokenizer_load_gguf (const LscGguf *gguf, GError **error)
{
  g_autoptr(LscTokenizer) tok = NULL;
  g_autofree char *name = NULL;
  GError *local_error = NULL;
  const char *model;
  gboolean is_spm;
  int n_vocab;
  char **pieces;
  float *scores;
  guint8 *types;

  g_return_val_if_fail (gguf != NULL, NULL);

  name = g_path_get_basename (lsc_gguf_get_path (gguf));
  if (!lsc_gguf_has_key (gguf, "tokenizer.ggml.model"))
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND,
                   "%s: key 'tokenizer.ggml.model' is missing: the file has no vocabulary", name);
      return NULL;
    }
  model = lsc_gguf_get_string (gguf, "tokenizer.ggml.model", &local_error);
  if (model == NULL)
    {
      lsc_tg_propagate (error, local_error);
      return NULL;
    }
  if (strcmp (model, "llama") == 0)
    is_spm = TRUE;
  else if (strcmp (model, "gpt2") == 0)
    is_spm = FALSE;
  else
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
                   "%s: key 'tokenizer.ggml.model' is \"%s\"; Longscope reads \"llama\" "
                   "(SentencePiece BPE) and \"gpt2\" (byte-level BPE) vocabularies", name, model);
      return NULL;
    }

  if (!lsc_tg_read_vocab (gguf, name, is_spm, &n_vocab, &pieces, &scores, &types, error))
    return NULL;
  tok = _lsc_tokenizer_new (lsc_gguf_get_path (gguf),
                            is_spm ? LSC_TOKENIZER_SPM_BPE : LSC_TOKENIZER_BYTE_BPE);
  if (!_lsc_tokenizer_set_vocab (tok, n_vocab, pieces, scores, types, error))
    return NULL;

  if (!lsc_tg_read_id (gguf, name, "tokenizer.ggml.bos_token_id", n_vocab, &tok->bos_id, error) ||
      !lsc_tg_read_id (gguf, name, "tokenizer.ggml.eos_token_id", n_vocab, &tok->eos_id, error) ||
      !lsc_tg_read_id (gguf, name, "tokenizer.ggml.unknown_token_id", n_vocab, &tok->unk_id,
                       error))
    return NULL;

  if (is_spm)
    {
      if (!lsc_tg_read_bool (gguf, "tokenizer.ggml.add_space_prefix", TRUE,
                             &tok->add_dummy_prefix, error))
        return NULL;
      tok->strip_decoded_prefix = tok->add_dummy_prefix;
      tok->byte_fallback = TRUE;
    }
  else
    {
      const char *pre = "default";

      if (!lsc_tg_read_merges (gguf, name, tok, error))
        return NULL;
      if (lsc_gguf_has_key (gguf, "tokenizer.ggml.pre"))
        {
          pre = lsc_gguf_get_string (gguf, "tokenizer.ggml.pre", &local_error);
          if (pre == NULL)
            {
              lsc_tg_propagate (error, local_error);
              return NULL;
            }
        }
      if (!_lsc_tokenizer_bpe_set_pre (tok, pre, error))
        return NULL;
    }
  lsc_tg_add_specials (tok);
  return g_steal_pointer (&tok);
}
