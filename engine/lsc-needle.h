/* SPDX-License-Identifier: MIT
 *
 * lsc-needle.h: needle-in-a-haystack prompts, as built by the retrieval-head
 * reference (nightdessert/Retrieval_Head, retrieval_head_detection.py).
 *
 * A prompt of a target context length L (tokens of the model's tokenizer)
 * and depth d (0..100 %) is assembled in token ids:
 *
 *   [BOS] prefix  haystack[0 .. ins)  needle  haystack[ins .. n)  suffix  [cue]
 *
 * where the haystack is the text tokenized once and repeated as needed,
 * n = L - buffer_tokens - len(needle) (the reference's budget, buffer 200),
 * ins = floor(n * d / 100) moved back to just after the nearest preceding
 * sentence end (a token whose decoded text ends with '.', '!' or '?',
 * possibly followed by closing quotes, brackets or white space); d = 100
 * appends the needle at the end. The question is the reference's:
 *
 *   raw:  context "Based on the content of the book, Question: {q}\nAnswer:"
 *   chat: user turn "<book>{context}</book>\nBased on the content of the book,
 *         Question: {q}\nAnswer:" inside the chat template, generation prompt
 *         open
 *
 * Chat templates are recognised by signature: a special token
 * <|im_start|> (ChatML), <|start_header_id|> (Llama-3) or [INST] (Mistral
 * v0.3+ control tokens); otherwise the raw prompt with a warning. The
 * optional cue appends the first cue_tokens tokens of the needle to the
 * prompt (a model that continues text after a cue, such as the induction
 * demo, then recites the rest of the needle).
 *
 * The answer span (what detection scores against) is located by the
 * reference's rule: the first window of len(answer ids) prompt tokens whose
 * set of ids covers more than 90 % of the answer's set of ids.
 * (For byte-level BPE a short answer may fail that test because its first
 * word lacks the space it has in context; the search then retries with " "
 * + answer.)
 */
#pragma once

#include <glib.h>

#include "lsc-tokenizer.h"

G_BEGIN_DECLS

typedef enum {
  LSC_CHAT_TEMPLATE_AUTO,      /* detect from the tokenizer's special tokens */
  LSC_CHAT_TEMPLATE_NONE,      /* the raw (base-model) prompt */
  LSC_CHAT_TEMPLATE_CHATML,    /* <|im_start|>user ... <|im_end|> (Qwen) */
  LSC_CHAT_TEMPLATE_LLAMA3,    /* <|start_header_id|>user<|end_header_id|> ... <|eot_id|> */
  LSC_CHAT_TEMPLATE_MISTRAL,   /* [INST] ... [/INST] */
} LscChatTemplate;

const char *lsc_chat_template_name (LscChatTemplate t);
/* "auto", "none", "chatml", "llama3", "mistral"; FALSE for anything else. */
gboolean lsc_chat_template_from_name (const char *name, LscChatTemplate *out);
/* The template whose signature token the tokenizer has as a special token,
 * or LSC_CHAT_TEMPLATE_NONE. */
LscChatTemplate lsc_chat_template_detect (const LscTokenizer *tok);

/* TRUE when `text` ends a sentence: '.', '!' or '?' possibly followed by
 * closing quotes, brackets and white space. */
gboolean lsc_needle_text_ends_sentence (const char *text);

/* The insertion point (a token index in [0, n]) for depth_percent over the
 * ids: n at 100 %, else floor(n * depth / 100) moved back to just after a
 * sentence-ending token (0 when none precedes it). A token of closing quotes
 * or white space right after a sentence end also counts as one. */
int lsc_needle_insertion_point (const LscTokenizer *tok, const gint32 *ids, int n,
                                double depth_percent);

/* The reference's needle search: [*start, *end) of the first window of
 * n_needle prompt ids covering > 90 % of the needle's distinct ids; FALSE
 * (and -1, -1) when none does. */
gboolean lsc_needle_find_span (const gint32 *prompt, int n_prompt, const gint32 *needle,
                               int n_needle, int *start, int *end);

typedef struct {
  const char *needle;      /* the sentence inserted into the haystack */
  const char *question;
  const char *answer;      /* the reference's real_needle: what a correct answer recalls */
} LscNeedle;

typedef struct {
  LscChatTemplate chat_template;  /* default AUTO */
  int buffer_tokens;              /* default 200 (the reference's final_context_length_buffer) */
  int cue_tokens;                 /* default 0: no cue */
  gboolean bos;                   /* default TRUE: prepend BOS when the tokenizer has one */
} LscNeedleParams;

void lsc_needle_params_init (LscNeedleParams *params);

typedef struct {
  GArray *tokens;          /* (element-type gint32) the prompt ids */
  int context_length;      /* the target L */
  double depth_percent;
  int haystack_tokens;     /* haystack ids in the prompt */
  int insertion;           /* haystack ids before the needle */
  int needle_start, needle_end;   /* the inserted needle sentence in the prompt */
  int answer_start, answer_end;   /* the answer span by the reference's rule; -1 when not found */
  int cue_start;           /* first cue id in the prompt, or -1 */
} LscNeedlePrompt;

void lsc_needle_prompt_free (LscNeedlePrompt *prompt);

typedef struct _LscNeedleBuilder LscNeedleBuilder;

/* The haystack is `haystack` (UTF-8 text, tokenized once). The tokenizer
 * must outlive the builder. */
LscNeedleBuilder *lsc_needle_builder_new (const LscTokenizer *tok, const char *haystack,
                                          const LscNeedleParams *params, GError **error);
void lsc_needle_builder_free (LscNeedleBuilder *builder);
/* The template in use (detected when AUTO). */
LscChatTemplate lsc_needle_builder_get_template (const LscNeedleBuilder *builder);
/* A warning about the prompt (no chat template found), or NULL. */
const char *lsc_needle_builder_get_warning (const LscNeedleBuilder *builder);
int lsc_needle_builder_get_haystack_tokens (const LscNeedleBuilder *builder);

/* One prompt; fails with LSC_RUN_ERROR_UNSUPPORTED when the context length
 * leaves no room for the haystack. */
LscNeedlePrompt *lsc_needle_build (LscNeedleBuilder *builder, const LscNeedle *needle,
                                   int context_length, double depth_percent, GError **error);

/* data/haystack.txt: $LSC_DATA_DIR/haystack.txt when set, else the source
 * tree's data folder. */
char *lsc_needle_default_haystack_path (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscNeedleBuilder, lsc_needle_builder_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscNeedlePrompt, lsc_needle_prompt_free)

G_END_DECLS
