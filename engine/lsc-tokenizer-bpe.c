/* SPDX-License-Identifier: MIT
 *
 * lsc-tokenizer-bpe.c: byte-level BPE (GPT-2, Llama-3, Qwen2, falcon, mpt,
 * gpt-neox), as Hugging Face's ByteLevel + BPE model and llama.cpp's
 * llm_tokenizer_bpe do it:
 *
 *  1. pre-tokenize: the tokenizer's regular expressions (tok->pre_regexes)
 *     run in order; each one splits every chunk produced so far into its
 *     matches and the unmatched stretches between them, which stay chunks
 *     too (llama.cpp's unicode_regex_split, Hugging Face's Split with
 *     behavior "Isolated"). A regex sees one chunk at a time, so lookaheads
 *     stop at the chunk's end. Optionally every digit becomes its own chunk;
 *  2. map each byte of a chunk to a printable character (GPT-2's
 *     bytes_to_unicode: printable Latin-1 bytes map to themselves, the other
 *     68 bytes to U+0100..U+0143 in order);
 *  3. if ignore_merges and the whole mapped chunk is a vocabulary piece,
 *     emit it; otherwise start from one symbol per byte and repeatedly merge
 *     the adjacent pair with the lowest merge rank (ties: leftmost);
 *  4. each final symbol becomes its piece id; a symbol that is no piece
 *     falls back to the ids of its single bytes.
 *
 * Step 3 keeps symbols in a doubly linked list and candidate pairs in a
 * binary heap: O(n log n) per chunk, so long whitespace runs stay cheap. A
 * heap entry remembers the combined length of its pair; when either symbol
 * has grown or vanished since, the entry is stale and dropped when popped.
 *
 * The pre-tokenizer regexes per llama.cpp `tokenizer.ggml.pre` name follow
 * llama-vocab.cpp; GRegex (PCRE2 with UCP) gives \s, \p{L} and \p{N} their
 * Unicode meaning, so the original Hugging Face patterns work as they are.
 */
#include "config.h"

#include "lsc-tokenizer-private.h"

#include "lsc-error.h"

#include <string.h>

/* ---------------------------------------------------------------------- */
/* bytes <-> printable characters                                         */
/* ---------------------------------------------------------------------- */

static gboolean
byte_is_printable (guint byte)
{
  return (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || byte >= 0xae;
}

gunichar
_lsc_tokenizer_bpe_byte_char (guint8 byte)
{
  if (byte_is_printable (byte))
    return byte;
  /* The 68 others, in byte order: 0x00..0x20, 0x7f..0xa0, 0xad. */
  if (byte <= 0x20)
    return 0x100 + byte;
  if (byte <= 0xa0)
    return 0x100 + 0x21 + (byte - 0x7f);
  return 0x100 + 0x43;  /* 0xad */
}

/* The byte of a mapped character, or -1 when c is none. */
static int
char_byte (gunichar c)
{
  if (c < 0x100)
    return byte_is_printable (c) ? (int) c : -1;
  if (c <= 0x120)
    return (int) (c - 0x100);
  if (c <= 0x142)
    return (int) (c - 0x121 + 0x7f);
  if (c == 0x143)
    return 0xad;
  return -1;
}

/* ---------------------------------------------------------------------- */
/* pre-tokenizer                                                          */
/* ---------------------------------------------------------------------- */

typedef struct {
  gsize start;  /* byte offset in the stretch */
  gsize len;
} LscChunk;

static void
push_chunk (GArray *chunks, gsize start, gsize len)
{
  LscChunk c = { start, len };
  if (len > 0)
    g_array_append_val (chunks, c);
}

/* Splits every chunk of `in` by the matches of re, into `out`. */
static void
split_by_regex (const GRegex *re, const char *text, const GArray *in, GArray *out)
{
  for (guint i = 0; i < in->len; i++)
    {
      const LscChunk *c = &g_array_index (in, LscChunk, i);
      g_autoptr(GMatchInfo) match = NULL;
      gsize done = 0;  /* offset in the chunk of the first byte not pushed */

      g_regex_match_full (re, text + c->start, c->len, 0, 0, &match, NULL);
      while (g_match_info_matches (match))
        {
          int s = 0, e = 0;
          g_match_info_fetch_pos (match, 0, &s, &e);
          if (e > s)
            {
              push_chunk (out, c->start + done, (gsize) s - done);
              push_chunk (out, c->start + s, (gsize) (e - s));
              done = e;
            }
          g_match_info_next (match, NULL);
        }
      push_chunk (out, c->start + done, c->len - done);
    }
}

static gboolean
unichar_is_numeric (gunichar c)
{
  GUnicodeType t = g_unichar_type (c);
  return t == G_UNICODE_DECIMAL_NUMBER || t == G_UNICODE_LETTER_NUMBER
         || t == G_UNICODE_OTHER_NUMBER;
}

/* Every numeric character of `in` becomes a chunk of its own. */
static void
split_digits (const char *text, const GArray *in, GArray *out)
{
  for (guint i = 0; i < in->len; i++)
    {
      const LscChunk *c = &g_array_index (in, LscChunk, i);
      gsize done = 0, pos = 0;

      while (pos < c->len)
        {
          const char *p = text + c->start + pos;
          gsize n = g_utf8_next_char (p) - p;
          if (unichar_is_numeric (g_utf8_get_char (p)))
            {
              push_chunk (out, c->start + done, pos - done);
              push_chunk (out, c->start + pos, n);
              done = pos + n;
            }
          pos += n;
        }
      push_chunk (out, c->start + done, c->len - done);
    }
}

/* The chunks of text[0..len), in order. */
static GArray *
pre_tokenize (const LscTokenizer *tok, const char *text, gsize len)
{
  GArray *chunks = g_array_new (FALSE, FALSE, sizeof (LscChunk));  /* (n_chunks) */
  push_chunk (chunks, 0, len);

  for (guint r = 0; r < tok->pre_regexes->len; r++)
    {
      GArray *next = g_array_new (FALSE, FALSE, sizeof (LscChunk));
      split_by_regex (g_ptr_array_index (tok->pre_regexes, r), text, chunks, next);
      g_array_unref (chunks);
      chunks = next;
    }
  if (tok->pre_split_digits)
    {
      GArray *next = g_array_new (FALSE, FALSE, sizeof (LscChunk));
      split_digits (text, chunks, next);
      g_array_unref (chunks);
      chunks = next;
    }
  return chunks;
}

/* ---------------------------------------------------------------------- */
/* merging                                                                */
/* ---------------------------------------------------------------------- */

typedef struct {
  gsize start;     /* byte offset in the mapped word */
  gsize len;       /* 0 once merged into its left neighbour */
  int prev, next;  /* neighbouring symbols, -1 at the ends */
} LscSymbol;

typedef struct {
  guint rank;
  int left, right;  /* symbol indices */
  gsize len;        /* left.len + right.len when the pair was queued */
} LscBigram;

/* Scratch buffers reused across the chunks of one encode call. */
typedef struct {
  GString *word;    /* the mapped chunk (UTF-8 of the printable characters) */
  GString *key;     /* "left right" merge key */
  GArray *symbols;  /* (n_symbols) LscSymbol */
  GArray *heap;     /* (n_pairs) LscBigram, a binary min-heap */
} LscBpeWork;

static gboolean
bigram_less (const LscBigram *a, const LscBigram *b)
{
  return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void
heap_push (GArray *heap, const LscBigram *item)
{
  g_array_append_val (heap, *item);
  LscBigram *h = (LscBigram *) heap->data;
  guint i = heap->len - 1;
  while (i > 0)
    {
      guint parent = (i - 1) / 2;
      if (!bigram_less (&h[i], &h[parent]))
        break;
      LscBigram tmp = h[i];
      h[i] = h[parent];
      h[parent] = tmp;
      i = parent;
    }
}

static LscBigram
heap_pop (GArray *heap)
{
  LscBigram *h = (LscBigram *) heap->data;
  LscBigram top = h[0];
  guint n = heap->len - 1;

  h[0] = h[n];
  g_array_set_size (heap, n);
  guint i = 0;
  for (;;)
    {
      guint l = 2 * i + 1, r = l + 1, best = i;
      if (l < n && bigram_less (&h[l], &h[best]))
        best = l;
      if (r < n && bigram_less (&h[r], &h[best]))
        best = r;
      if (best == i)
        break;
      LscBigram tmp = h[i];
      h[i] = h[best];
      h[best] = tmp;
      i = best;
    }
  return top;
}

/* Queues the pair (left, right) when a merge rule joins them. */
static void
queue_pair (const LscTokenizer *tok, LscBpeWork *w, int left, int right)
{
  if (left < 0 || right < 0 || tok->merge_rank == NULL)
    return;
  const LscSymbol *l = &g_array_index (w->symbols, LscSymbol, left);
  const LscSymbol *r = &g_array_index (w->symbols, LscSymbol, right);

  g_string_truncate (w->key, 0);
  g_string_append_len (w->key, w->word->str + l->start, l->len);
  g_string_append_c (w->key, ' ');
  g_string_append_len (w->key, w->word->str + r->start, r->len);
  guint rank = GPOINTER_TO_UINT (g_hash_table_lookup (tok->merge_rank, w->key->str));
  if (rank == 0)
    return;

  LscBigram b = { rank - 1, left, right, l->len + r->len };
  heap_push (w->heap, &b);
}

/* Appends the ids of a symbol that is no piece: one per byte. */
static void
append_byte_ids (const LscTokenizer *tok, const char *text, gsize len, GArray *out)
{
  for (const char *p = text; p < text + len; p = g_utf8_next_char (p))
    {
      int byte = char_byte (g_utf8_get_char (p));
      if (byte >= 0 && tok->byte_ids[byte] >= 0)
        {
          gint32 id = tok->byte_ids[byte];
          g_array_append_val (out, id);
        }
    }
}

static void
append_symbol (const LscTokenizer *tok, const char *text, gsize len, GArray *out)
{
  int id = _lsc_tokenizer_piece_id (tok, text, len);
  if (id >= 0)
    {
      gint32 v = id;
      g_array_append_val (out, v);
    }
  else
    append_byte_ids (tok, text, len, out);
}

/* BPE on one chunk of raw bytes. */
static void
encode_chunk (const LscTokenizer *tok, LscBpeWork *w, const char *bytes, gsize n,
              GArray *out)
{
  g_string_truncate (w->word, 0);
  g_array_set_size (w->symbols, 0);
  g_array_set_size (w->heap, 0);

  for (gsize i = 0; i < n; i++)
    {
      LscSymbol s = { w->word->len, 0, (int) i - 1, i + 1 < n ? (int) i + 1 : -1 };
      g_string_append_unichar (w->word, _lsc_tokenizer_bpe_byte_char ((guint8) bytes[i]));
      s.len = w->word->len - s.start;
      g_array_append_val (w->symbols, s);
    }

  if (tok->ignore_merges && _lsc_tokenizer_piece_id (tok, w->word->str, w->word->len) >= 0)
    {
      append_symbol (tok, w->word->str, w->word->len, out);
      return;
    }

  for (gsize i = 1; i < n; i++)
    queue_pair (tok, w, (int) i - 1, (int) i);

  while (w->heap->len > 0)
    {
      LscBigram b = heap_pop (w->heap);
      LscSymbol *l = &g_array_index (w->symbols, LscSymbol, b.left);
      LscSymbol *r = &g_array_index (w->symbols, LscSymbol, b.right);
      if (l->len == 0 || r->len == 0 || l->len + r->len != b.len)
        continue;  /* stale */

      l->len += r->len;
      r->len = 0;
      l->next = r->next;
      if (r->next >= 0)
        g_array_index (w->symbols, LscSymbol, r->next).prev = b.left;

      queue_pair (tok, w, l->prev, b.left);
      queue_pair (tok, w, b.left, l->next);
    }

  for (int i = 0; i >= 0 && (gsize) i < n;)
    {
      const LscSymbol *s = &g_array_index (w->symbols, LscSymbol, i);
      append_symbol (tok, w->word->str + s->start, s->len, out);
      i = s->next;
    }
}

void
_lsc_tokenizer_bpe_encode (const LscTokenizer *tok, const char *text, gsize len, GArray *out)
{
  g_return_if_fail (tok != NULL && out != NULL);
  if (len == 0)
    return;

  g_autoptr(GArray) chunks = pre_tokenize (tok, text, len);
  LscBpeWork w = {
    g_string_new (NULL),
    g_string_new (NULL),
    g_array_new (FALSE, FALSE, sizeof (LscSymbol)),
    g_array_new (FALSE, FALSE, sizeof (LscBigram)),
  };

  for (guint i = 0; i < chunks->len; i++)
    {
      const LscChunk *c = &g_array_index (chunks, LscChunk, i);
      encode_chunk (tok, &w, text + c->start, c->len, out);
    }

  g_string_free (w.word, TRUE);
  g_string_free (w.key, TRUE);
  g_array_unref (w.symbols);
  g_array_unref (w.heap);
}

void
_lsc_tokenizer_bpe_decode_piece (const LscTokenizer *tok, int id, GString *out)
{
  g_return_if_fail (tok != NULL && out != NULL);
  if (id < 0 || id >= tok->n_vocab)
    return;

  const char *piece = tok->pieces[id];
  gsize start = out->len;
  for (const char *p = piece; *p != '\0'; p = g_utf8_next_char (p))
    {
      int byte = char_byte (g_utf8_get_char (p));
      if (byte < 0)
        {
          /* Not byte-level text (Hugging Face keeps such a token as it is). */
          g_string_truncate (out, start);
          g_string_append (out, piece);
          return;
        }
      g_string_append_c (out, (char) byte);
    }
}

/* ---------------------------------------------------------------------- */
/* pre-tokenizers by llama.cpp name                                       */
/* ---------------------------------------------------------------------- */

#define RE_GPT2 \
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3 \
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" \
  "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 \
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" \
  "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_BLOOM " ?[^(\\s|.,!?…。，、।۔،)]+"
#define RE_TEKKEN \
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" \
  "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" \
  "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT4O \
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)?" \
  "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)?" \
  "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
  const char *names;          /* '|'-separated tokenizer.ggml.pre values */
  const char *regexes[6];     /* applied in order; NULL-terminated */
} LscPreTokenizer;

static const LscPreTokenizer pre_tokenizers[] = {
  { "default",
    { "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]" } },
  { "gpt-2|gpt2|phi-2|mpt|olmo|gpt-neox|jais|roberta-bpe|jina-es|jina-de|jina-v1-en"
    "|jina-v2-es|jina-v2-de|jina-v2-code|gigachat|trillion|granite-docling",
    { RE_GPT2 } },
  { "llama3|llama-v3|llama-bpe|falcon3|pixtral|dbrx|smaug-bpe|chatglm-bpe",
    { RE_LLAMA3 } },
  { "qwen2|stablelm2|deepseek-r1-qwen|hunyuan", { RE_QWEN2 } },
  { "falcon", { "[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]" } },
  { "starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", { "\\p{N}", RE_GPT2 } },
  { "deepseek-coder",
    { "[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}" } },
  { "poro-chat|bloom|gpt3-finnish", { RE_BLOOM } },
  { "viking", { RE_BLOOM, "\\p{N}" } },
  { "tekken", { RE_TEKKEN } },
  { "gpt-4o|minimax-m2", { RE_GPT4O } },
};

static gboolean
name_in_list (const char *names, const char *name)
{
  g_auto(GStrv) list = g_strsplit (names, "|", -1);
  return g_strv_contains ((const char *const *) list, name);
}

gboolean
_lsc_tokenizer_bpe_set_pre (LscTokenizer *tok, const char *pre_name, GError **error)
{
  g_return_val_if_fail (tok != NULL, FALSE);
  const char *name = pre_name != NULL && pre_name[0] != '\0' ? pre_name : "default";

  for (gsize i = 0; i < G_N_ELEMENTS (pre_tokenizers); i++)
    {
      const LscPreTokenizer *pre = &pre_tokenizers[i];
      if (!name_in_list (pre->names, name))
        continue;

      g_ptr_array_set_size (tok->pre_regexes, 0);
      for (gsize r = 0; r < G_N_ELEMENTS (pre->regexes) && pre->regexes[r] != NULL; r++)
        {
          g_autoptr(GError) local = NULL;
          GRegex *re = g_regex_new (pre->regexes[r], G_REGEX_OPTIMIZE | G_REGEX_DOLLAR_ENDONLY,
                                    0, &local);
          if (re == NULL)
            {
              g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
                           "%s: tokenizer.ggml.pre \"%s\": regex %" G_GSIZE_FORMAT ": %s",
                           tok->path, name, r, local->message);
              return FALSE;
            }
          g_ptr_array_add (tok->pre_regexes, re);
        }
      return TRUE;
    }

  g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_UNSUPPORTED,
               "%s: tokenizer.ggml.pre \"%s\" is not a pre-tokenizer Longscope knows "
               "(gpt-2, llama-bpe, qwen2, falcon, mpt, gpt-neox, starcoder, ...)",
               tok->path, name);
  return FALSE;
}
