/* SPDX-License-Identifier: MIT
 *
 * Needle-in-a-haystack prompts (see lsc-needle.h for the layout and the
 * reference it follows).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-error.h"
#include "lsc-needle.h"

#ifndef LSC_DATA_SOURCE_DIR
#define LSC_DATA_SOURCE_DIR "data"
#endif

static const char question_format[] = "Based on the content of the book, Question: %s\nAnswer:";

const char *
lsc_chat_template_name (LscChatTemplate t)
{
  switch (t)
    {
    case LSC_CHAT_TEMPLATE_AUTO: return "auto";
    case LSC_CHAT_TEMPLATE_NONE: return "none";
    case LSC_CHAT_TEMPLATE_CHATML: return "chatml";
    case LSC_CHAT_TEMPLATE_LLAMA3: return "llama3";
    case LSC_CHAT_TEMPLATE_MISTRAL: return "mistral";
    }
  return "?";
}

gboolean
lsc_chat_template_from_name (const char *name, LscChatTemplate *out)
{
  for (int t = LSC_CHAT_TEMPLATE_AUTO; t <= LSC_CHAT_TEMPLATE_MISTRAL; t++)
    if (strcmp (name, lsc_chat_template_name ((LscChatTemplate) t)) == 0)
      {
        *out = (LscChatTemplate) t;
        return TRUE;
      }
  return FALSE;
}

/* TRUE when `text` encodes to exactly one special token. */
static gboolean
has_special (const LscTokenizer *tok, const char *text)
{
  g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, text, -1, FALSE, NULL);
  if (ids == NULL)
    return FALSE;
  for (guint i = 0; i < ids->len; i++)
    {
      int id = g_array_index (ids, gint32, i);
      if (lsc_tokenizer_id_is_special (tok, id)
          && g_strcmp0 (lsc_tokenizer_get_piece (tok, id), text) == 0)
        return TRUE;
    }
  return FALSE;
}

LscChatTemplate
lsc_chat_template_detect (const LscTokenizer *tok)
{
  if (has_special (tok, "<|im_start|>") && has_special (tok, "<|im_end|>"))
    return LSC_CHAT_TEMPLATE_CHATML;
  if (has_special (tok, "<|start_header_id|>") && has_special (tok, "<|end_header_id|>"))
    return LSC_CHAT_TEMPLATE_LLAMA3;
  if (has_special (tok, "[INST]"))
    return LSC_CHAT_TEMPLATE_MISTRAL;
  return LSC_CHAT_TEMPLATE_NONE;
}

static gboolean
is_closer (gunichar c)
{
  return g_unichar_isspace (c) || c == '"' || c == '\'' || c == ')' || c == ']'
         || c == 0x201D /* ” */ || c == 0x2019 /* ’ */ || c == 0x00BB /* » */;
}

/* Length of `text` without its trailing closers. */
static const char *
strip_closers (const char *text, const char *end)
{
  while (end > text)
    {
      const char *prev = g_utf8_find_prev_char (text, end);
      if (prev == NULL || !is_closer (g_utf8_get_char (prev)))
        break;
      end = prev;
    }
  return end;
}

gboolean
lsc_needle_text_ends_sentence (const char *text)
{
  const char *end = strip_closers (text, text + strlen (text));
  return end > text && (end[-1] == '.' || end[-1] == '!' || end[-1] == '?');
}

/* 1: ends a sentence, 2: closers only, 3: neither */
static int
token_class (const LscTokenizer *tok, int id, guint8 *cache, int n_cache)
{
  if (id >= 0 && id < n_cache && cache[id] != 0)
    return cache[id];
  gint32 one = id;
  g_autofree char *text = lsc_tokenizer_decode (tok, &one, 1);
  int c;
  if (lsc_needle_text_ends_sentence (text))
    c = 1;
  else if (*text != '\0' && strip_closers (text, text + strlen (text)) == text)
    c = 2;
  else
    c = 3;
  if (id >= 0 && id < n_cache)
    cache[id] = (guint8) c;
  return c;
}

static int
insertion_point (const LscTokenizer *tok, const gint32 *ids, int n, double depth,
                 guint8 *cache, int n_cache)
{
  if (depth >= 100)
    return n;
  int ins = (int) floor (n * (MAX (depth, 0.0) / 100.0));
  ins = CLAMP (ins, 0, n);
  while (ins > 0)
    {
      int c = token_class (tok, ids[ins - 1], cache, n_cache);
      if (c == 1)
        break;
      if (c == 2)
        {
          /* closers right after a sentence end: insert after them */
          int j = ins - 1;
          while (j > 0 && token_class (tok, ids[j - 1], cache, n_cache) == 2)
            j--;
          if (j > 0 && token_class (tok, ids[j - 1], cache, n_cache) == 1)
            break;
        }
      ins--;
    }
  return ins;
}

int
lsc_needle_insertion_point (const LscTokenizer *tok, const gint32 *ids, int n,
                            double depth_percent)
{
  int n_cache = lsc_tokenizer_get_n_vocab (tok);
  g_autofree guint8 *cache = g_new0 (guint8, n_cache);
  return insertion_point (tok, ids, n, depth_percent, cache, n_cache);
}

static int
cmp_int32 (gconstpointer a, gconstpointer b)
{
  gint32 x = *(const gint32 *) a, y = *(const gint32 *) b;
  return (x > y) - (x < y);
}

gboolean
lsc_needle_find_span (const gint32 *prompt, int n_prompt, const gint32 *needle, int n_needle,
                      int *start, int *end)
{
  *start = *end = -1;
  if (n_needle <= 0)
    return FALSE;
  /* the needle's distinct ids, sorted */
  g_autofree gint32 *set = g_memdup2 (needle, sizeof (gint32) * n_needle);
  qsort (set, n_needle, sizeof (gint32), cmp_int32);
  int n_set = 0;
  for (int i = 0; i < n_needle; i++)
    if (n_set == 0 || set[n_set - 1] != set[i])
      set[n_set++] = set[i];
  g_autofree guint8 *seen = g_new (guint8, n_set);

  for (int i = 0; i < n_prompt; i++)
    {
      int hits = 0;
      memset (seen, 0, n_set);
      for (int k = i; k < MIN (n_prompt, i + n_needle); k++)
        {
          gint32 *p = bsearch (&prompt[k], set, n_set, sizeof (gint32), cmp_int32);
          if (p != NULL && !seen[p - set])
            {
              seen[p - set] = 1;
              hits++;
            }
        }
      if ((double) hits / n_set > 0.9)
        {
          *start = i;
          *end = i + n_needle;
          return TRUE;
        }
    }
  return FALSE;
}

void
lsc_needle_params_init (LscNeedleParams *params)
{
  memset (params, 0, sizeof *params);
  params->chat_template = LSC_CHAT_TEMPLATE_AUTO;
  params->buffer_tokens = 200;
  params->cue_tokens = 0;
  params->bos = TRUE;
}

void
lsc_needle_prompt_free (LscNeedlePrompt *prompt)
{
  if (prompt == NULL)
    return;
  if (prompt->tokens != NULL)
    g_array_unref (prompt->tokens);
  g_free (prompt);
}

struct _LscNeedleBuilder {
  const LscTokenizer *tok;
  LscNeedleParams params;
  LscChatTemplate chat_template;
  char *warning;
  GArray *haystack;        /* (element-type gint32) */
  guint8 *class_cache;     /* token_class () per id */
  int n_cache;
};

void
lsc_needle_builder_free (LscNeedleBuilder *b)
{
  if (b == NULL)
    return;
  g_free (b->warning);
  if (b->haystack != NULL)
    g_array_unref (b->haystack);
  g_free (b->class_cache);
  g_free (b);
}

LscNeedleBuilder *
lsc_needle_builder_new (const LscTokenizer *tok, const char *haystack,
                        const LscNeedleParams *params, GError **error)
{
  g_autoptr(LscNeedleBuilder) b = g_new0 (LscNeedleBuilder, 1);
  b->tok = tok;
  if (params != NULL)
    b->params = *params;
  else
    lsc_needle_params_init (&b->params);
  b->chat_template = b->params.chat_template;
  if (b->chat_template == LSC_CHAT_TEMPLATE_AUTO)
    {
      b->chat_template = lsc_chat_template_detect (tok);
      if (b->chat_template == LSC_CHAT_TEMPLATE_NONE)
        b->warning = g_strdup_printf ("%s: no chat template recognised (no <|im_start|>, "
                                      "<|start_header_id|> or [INST] special token); using the "
                                      "raw prompt", lsc_tokenizer_get_path (tok));
    }
  b->haystack = lsc_tokenizer_encode (tok, haystack, -1, FALSE, error);
  if (b->haystack == NULL)
    return NULL;
  if (b->haystack->len == 0)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "the haystack encodes to no tokens");
      return NULL;
    }
  b->n_cache = lsc_tokenizer_get_n_vocab (tok);
  b->class_cache = g_new0 (guint8, b->n_cache);
  return g_steal_pointer (&b);
}

LscChatTemplate
lsc_needle_builder_get_template (const LscNeedleBuilder *b)
{
  return b->chat_template;
}

const char *
lsc_needle_builder_get_warning (const LscNeedleBuilder *b)
{
  return b->warning;
}

int
lsc_needle_builder_get_haystack_tokens (const LscNeedleBuilder *b)
{
  return (int) b->haystack->len;
}

static gboolean
append_text (GArray *out, const LscTokenizer *tok, const char *text, GError **error)
{
  if (*text == '\0')
    return TRUE;
  g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, text, -1, FALSE, error);
  if (ids == NULL)
    return FALSE;
  g_array_append_vals (out, ids->data, ids->len);
  return TRUE;
}

LscNeedlePrompt *
lsc_needle_build (LscNeedleBuilder *b, const LscNeedle *needle, int context_length,
                  double depth_percent, GError **error)
{
  const LscTokenizer *tok = b->tok;
  g_autoptr(GArray) needle_ids = lsc_tokenizer_encode (tok, needle->needle, -1, FALSE, error);
  if (needle_ids == NULL)
    return NULL;
  int n_hay = context_length - b->params.buffer_tokens - (int) needle_ids->len;
  if (n_hay <= 0)
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED,
                   "context length %d leaves no room for the haystack (buffer %d tokens, "
                   "needle %u tokens)", context_length, b->params.buffer_tokens, needle_ids->len);
      return NULL;
    }

  /* the haystack, repeated until long enough, cut to n_hay ids */
  g_autofree gint32 *hay = g_new (gint32, n_hay);
  for (int i = 0; i < n_hay; i++)
    hay[i] = g_array_index (b->haystack, gint32, i % b->haystack->len);
  int ins = insertion_point (tok, hay, n_hay, depth_percent, b->class_cache, b->n_cache);

  const char *prefix = "", *close = "";
  const char *open_book = "", *close_book = "";
  switch (b->chat_template)
    {
    case LSC_CHAT_TEMPLATE_CHATML:
      prefix = "<|im_start|>user\n";
      close = "<|im_end|>\n<|im_start|>assistant\n";
      break;
    case LSC_CHAT_TEMPLATE_LLAMA3:
      prefix = "<|start_header_id|>user<|end_header_id|>\n\n";
      close = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case LSC_CHAT_TEMPLATE_MISTRAL:
      prefix = "[INST] ";
      close = "[/INST]";
      break;
    case LSC_CHAT_TEMPLATE_AUTO:
    case LSC_CHAT_TEMPLATE_NONE:
    default:
      break;
    }
  if (b->chat_template != LSC_CHAT_TEMPLATE_NONE && b->chat_template != LSC_CHAT_TEMPLATE_AUTO)
    {
      open_book = "<book>";
      close_book = "</book>\n";
    }
  g_autofree char *question = g_strdup_printf (question_format, needle->question);
  g_autofree char *head = g_strconcat (prefix, open_book, NULL);
  g_autofree char *tail = g_strconcat (close_book, question, close, NULL);

  g_autoptr(LscNeedlePrompt) p = g_new0 (LscNeedlePrompt, 1);
  p->tokens = g_array_new (FALSE, FALSE, sizeof (gint32));
  p->context_length = context_length;
  p->depth_percent = depth_percent;
  p->haystack_tokens = n_hay;
  p->insertion = ins;
  p->cue_start = -1;
  int bos = lsc_tokenizer_get_bos (tok);
  if (b->params.bos && bos >= 0)
    g_array_append_val (p->tokens, bos);
  if (!append_text (p->tokens, tok, head, error))
    return NULL;
  g_array_append_vals (p->tokens, hay, ins);
  p->needle_start = (int) p->tokens->len;
  g_array_append_vals (p->tokens, needle_ids->data, needle_ids->len);
  p->needle_end = (int) p->tokens->len;
  g_array_append_vals (p->tokens, hay + ins, n_hay - ins);
  if (!append_text (p->tokens, tok, tail, error))
    return NULL;
  if (b->params.cue_tokens > 0)
    {
      p->cue_start = (int) p->tokens->len;
      g_array_append_vals (p->tokens, needle_ids->data,
                           MIN ((guint) b->params.cue_tokens, needle_ids->len));
    }

  g_autoptr(GArray) answer_ids = lsc_tokenizer_encode (tok, needle->answer, -1, FALSE, error);
  if (answer_ids == NULL)
    return NULL;
  if (!lsc_needle_find_span ((const gint32 *) p->tokens->data, (int) p->tokens->len,
                             (const gint32 *) answer_ids->data, (int) answer_ids->len,
                             &p->answer_start, &p->answer_end))
    {
      /* byte-level BPE: inside a sentence the answer's first word carries its
       * space (" blue" rather than "blue"); a short answer then misses the
       * 90 % overlap, so try once more with a leading space */
      g_autofree char *spaced = g_strconcat (" ", needle->answer, NULL);
      g_autoptr(GArray) spaced_ids = lsc_tokenizer_encode (tok, spaced, -1, FALSE, error);
      if (spaced_ids == NULL)
        return NULL;
      lsc_needle_find_span ((const gint32 *) p->tokens->data, (int) p->tokens->len,
                            (const gint32 *) spaced_ids->data, (int) spaced_ids->len,
                            &p->answer_start, &p->answer_end);
    }
  return g_steal_pointer (&p);
}

char *
lsc_needle_default_haystack_path (void)
{
  const char *env = g_getenv ("LSC_DATA_DIR");
  if (env != NULL && *env != '\0')
    return g_build_filename (env, "haystack.txt", NULL);
  return g_build_filename (LSC_DATA_SOURCE_DIR, "haystack.txt", NULL);
}
