/* SPDX-License-Identifier: MIT
 *
 * SentencePiece-style BPE (Llama-1/2, Mistral, phi-3, llama2.c), as
 * llama.cpp's llm_tokenizer_spm and llama2.c's encode () do it:
 *
 *  1. normalise: every ' ' becomes U+2581 ("▁"); when the tokenizer asks
 *     for a dummy prefix and there is text, "▁" is prepended to the stretch
 *     (llama2.c's leading " " token plays the same part);
 *  2. split the normalised text into one symbol per UTF-8 character;
 *  3. repeatedly merge the adjacent pair of symbols that is best:
 *       - score merging (SentencePiece .model, llama2.c .bin, GGUF "llama"):
 *         the concatenation must be a vocabulary piece, highest score wins;
 *       - rank merging (tokenizer.json with byte_fallback): "left right" must
 *         be a merge rule, lowest rank wins;
 *     ties go to the leftmost pair;
 *  4. every final symbol becomes its piece id; a character without a piece
 *     becomes its UTF-8 bytes as <0xXX> pieces (byte fallback) or <unk>.
 *
 * Step 3 keeps the symbols in a doubly linked list and the candidate pairs in
 * a binary heap, so encoding is O(n log n) in the text length (llama2.c
 * rescans every pair after each merge, O(n^2), too slow for long prompts).
 * A heap entry remembers the lengths of its two symbols; when either symbol
 * has changed since, the entry is stale and is dropped when popped.
 *
 * Each pair is judged once, when it becomes adjacent, exactly as llama2.c
 * and llama.cpp do, so the result equals theirs.
 */
#include "config.h"

#include "lsc-tokenizer-private.h"

#include <string.h>

#define LSC_SPM_SPACE "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, "▁" */
#define LSC_SPM_SPACE_LEN 3

/* One symbol: a byte range of the normalised text, linked to its neighbours. */
typedef struct {
  int prev;        /* index of the left neighbour, -1 at the start */
  int next;        /* index of the right neighbour, -1 at the end */
  gsize start;     /* byte offset in the normalised text */
  gsize len;       /* bytes; 0 once merged into the left neighbour */
} LscSpmSymbol;

/* A candidate merge of symbols left and right (adjacent when queued). */
typedef struct {
  int left;
  int right;
  double priority; /* higher merges first: the score, or -rank */
  gsize len;       /* left.len + right.len when queued; differs once stale */
} LscSpmPair;

/* Byte length of the UTF-8 sequence that starts with `c` (1 for stray bytes). */
static gsize
lsc_spm_utf8_len (guint8 c)
{
  static const guint8 lengths[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
  return lengths[c >> 4];
}

/* The text with ' ' replaced by U+2581, and the dummy prefix when asked. */
static GString *
lsc_spm_normalise (const LscTokenizer *tok, const char *text, gsize len)
{
  GString *norm = g_string_sized_new (len + len / 2 + LSC_SPM_SPACE_LEN);

  if (tok->add_dummy_prefix && len > 0)
    g_string_append_len (norm, LSC_SPM_SPACE, LSC_SPM_SPACE_LEN);
  for (gsize i = 0; i < len; i++)
    {
      if (text[i] == ' ')
        g_string_append_len (norm, LSC_SPM_SPACE, LSC_SPM_SPACE_LEN);
      else
        g_string_append_c (norm, text[i]);
    }
  return norm;
}

/* TRUE when pair a should be merged before pair b. */
static gboolean
lsc_spm_pair_before (const LscSpmPair *a, const LscSpmPair *b)
{
  if (a->priority != b->priority)
    return a->priority > b->priority;
  return a->left < b->left;
}

static void
lsc_spm_heap_push (GArray *heap, const LscSpmPair *pair)
{
  LscSpmPair *items;
  guint i;

  g_array_append_val (heap, *pair);
  items = (LscSpmPair *) heap->data;
  i = heap->len - 1;
  while (i > 0)
    {
      guint parent = (i - 1) / 2;
      if (!lsc_spm_pair_before (&items[i], &items[parent]))
        break;
      LscSpmPair tmp = items[i];
      items[i] = items[parent];
      items[parent] = tmp;
      i = parent;
    }
}

static LscSpmPair
lsc_spm_heap_pop (GArray *heap)
{
  LscSpmPair *items = (LscSpmPair *) heap->data;
  LscSpmPair top = items[0];
  guint n = heap->len - 1;
  guint i = 0;

  items[0] = items[n];
  g_array_set_size (heap, n);
  for (;;)
    {
      guint l = 2 * i + 1, r = l + 1, best = i;
      if (l < n && lsc_spm_pair_before (&items[l], &items[best]))
        best = l;
      if (r < n && lsc_spm_pair_before (&items[r], &items[best]))
        best = r;
      if (best == i)
        break;
      LscSpmPair tmp = items[i];
      items[i] = items[best];
      items[best] = tmp;
      i = best;
    }
  return top;
}

/* The merge priority of two adjacent symbols, or FALSE when they do not merge.
 * `key` is scratch space for the "left right" rule of rank merging. */
static gboolean
lsc_spm_pair_priority (const LscTokenizer *tok, const char *norm, const LscSpmSymbol *left,
                       const LscSpmSymbol *right, GString *key, double *priority)
{
  int id = _lsc_tokenizer_piece_id (tok, norm + left->start, (gssize) (left->len + right->len));

  if (id < 0 || id >= tok->n_vocab)
    return FALSE;
  if (tok->merge_rank != NULL)
    {
      gpointer rank_plus_one;

      g_string_truncate (key, 0);
      g_string_append_len (key, norm + left->start, (gssize) left->len);
      g_string_append_c (key, ' ');
      g_string_append_len (key, norm + right->start, (gssize) right->len);
      rank_plus_one = g_hash_table_lookup (tok->merge_rank, key->str);
      if (rank_plus_one == NULL)
        return FALSE;
      *priority = -(double) GPOINTER_TO_INT (rank_plus_one);
    }
  else
    {
      *priority = tok->scores != NULL ? (double) tok->scores[id] : 0.0;
    }
  return TRUE;
}

static void
lsc_spm_try_pair (const LscTokenizer *tok, const char *norm, const LscSpmSymbol *symbols,
                  int left, int right, GString *key, GArray *heap)
{
  LscSpmPair pair;

  if (left < 0 || right < 0)
    return;
  /* a NUL character stays alone: pieces are C strings and cannot hold it */
  if (norm[symbols[left].start] == '\0' || norm[symbols[right].start] == '\0')
    return;
  if (!lsc_spm_pair_priority (tok, norm, &symbols[left], &symbols[right], key, &pair.priority))
    return;
  pair.left = left;
  pair.right = right;
  pair.len = symbols[left].len + symbols[right].len;
  lsc_spm_heap_push (heap, &pair);
}

/* Appends the ids of one final symbol: its piece, or byte fallback, or unk. */
static void
lsc_spm_emit_symbol (const LscTokenizer *tok, const char *piece, gsize len, GArray *out)
{
  int id = piece[0] != '\0' ? _lsc_tokenizer_piece_id (tok, piece, (gssize) len) : -1;
  gboolean have_bytes = tok->byte_fallback;

  if (id >= 0)
    {
      g_array_append_val (out, id);
      return;
    }
  for (gsize i = 0; i < len && have_bytes; i++)
    have_bytes = tok->byte_ids[(guint8) piece[i]] >= 0;
  if (have_bytes)
    {
      for (gsize i = 0; i < len; i++)
        g_array_append_val (out, tok->byte_ids[(guint8) piece[i]]);
    }
  else if (tok->unk_id >= 0)
    {
      g_array_append_val (out, tok->unk_id);
    }
}

void
_lsc_tokenizer_spm_encode (const LscTokenizer *tok, const char *text, gsize len,
                           GArray *out)
{
  g_autoptr(GString) norm = NULL;
  g_autoptr(GString) key = NULL;
  g_autoptr(GArray) heap = NULL;   /* (element-type LscSpmPair) candidate merges */
  g_autofree LscSpmSymbol *symbols = NULL; /* (n_symbols) one per character at first */
  int n_symbols = 0;

  g_return_if_fail (tok != NULL && out != NULL);
  g_return_if_fail (text != NULL || len == 0);

  norm = lsc_spm_normalise (tok, text, len);
  if (norm->len == 0)
    return;
  g_return_if_fail (norm->len < G_MAXINT);

  symbols = g_new0 (LscSpmSymbol, norm->len);
  for (gsize offset = 0; offset < norm->len; n_symbols++)
    {
      gsize n = MIN (lsc_spm_utf8_len ((guint8) norm->str[offset]), norm->len - offset);
      symbols[n_symbols].prev = n_symbols - 1;
      symbols[n_symbols].next = offset + n < norm->len ? n_symbols + 1 : -1;
      symbols[n_symbols].start = offset;
      symbols[n_symbols].len = n;
      offset += n;
    }

  key = g_string_new (NULL);
  heap = g_array_sized_new (FALSE, FALSE, sizeof (LscSpmPair), (guint) n_symbols);
  for (int i = 0; i + 1 < n_symbols; i++)
    lsc_spm_try_pair (tok, norm->str, symbols, i, i + 1, key, heap);

  while (heap->len > 0)
    {
      LscSpmPair pair = lsc_spm_heap_pop (heap);
      LscSpmSymbol *left = &symbols[pair.left];
      LscSpmSymbol *right = &symbols[pair.right];

      /* stale: one side was merged away or grew since this pair was queued */
      if (left->len == 0 || right->len == 0 || left->len + right->len != pair.len)
        continue;

      left->len += right->len;
      right->len = 0;
      left->next = right->next;
      if (right->next >= 0)
        symbols[right->next].prev = pair.left;

      lsc_spm_try_pair (tok, norm->str, symbols, left->prev, pair.left, key, heap);
      lsc_spm_try_pair (tok, norm->str, symbols, pair.left, left->next, key, heap);
    }

  for (int i = 0; i >= 0; i = symbols[i].next)
    lsc_spm_emit_symbol (tok, norm->str + symbols[i].start, symbols[i].len, out);
}

/* The byte value of a "<0xXX>" piece, or -1. */
static int
lsc_spm_byte_piece_value (const char *piece)
{
  if (strlen (piece) != 6 || strncmp (piece, "<0x", 3) != 0 || piece[5] != '>')
    return -1;
  if (!g_ascii_isxdigit (piece[3]) || !g_ascii_isxdigit (piece[4]))
    return -1;
  return g_ascii_xdigit_value (piece[3]) * 16 + g_ascii_xdigit_value (piece[4]);
}

void
_lsc_tokenizer_spm_decode_piece (const LscTokenizer *tok, int id, GString *out)
{
  const char *piece;
  int byte;

  g_return_if_fail (tok != NULL && out != NULL);
  if (id < 0 || id >= tok->n_vocab)
    return;

  piece = tok->pieces[id];
  byte = lsc_spm_byte_piece_value (piece);
  if (byte >= 0 && (tok->byte_ids[byte] == id ||
                    (tok->types != NULL && tok->types[id] == LSC_TOKEN_TYPE_BYTE)))
    {
      g_string_append_c (out, (char) byte);
      return;
    }
  if (tok->types != NULL && tok->types[id] == LSC_TOKEN_TYPE_CONTROL)
    {
      g_string_append (out, piece);
      return;
    }
  for (const char *p = piece; *p != '\0';)
    {
      if (strncmp (p, LSC_SPM_SPACE, LSC_SPM_SPACE_LEN) == 0)
        {
          g_string_append_c (out, ' ');
          p += LSC_SPM_SPACE_LEN;
        }
      else
        {
          g_string_append_c (out, *p);
          p++;
        }
    }
}
