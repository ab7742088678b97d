/* SPDX-License-Identifier: MIT
 *
 * lsc-demo.h: built-in demo models with weights set by hand, for demos and as
 * ground truth for the analyses (retrieval heads, attention maps).
 *
 * A demo is named by a path that starts with "demo:"; lsc_model_load () and
 * lsc_tokenizer_load () accept it wherever they accept a file, so
 * `longscope --info demo:induction` and a batch job with
 * "model": "demo:induction" both work. Known names: "demo:induction".
 *
 * demo:induction: a 2-layer Llama (dim 256, 4 heads of 128, MHA, RMSNorm,
 * NEOX RoPE with theta 1e32, SwiGLU with zero weights, tied embeddings) and a
 * character-level tokenizer of 100 pieces:
 *
 *   id 0 <unk>, 1 <s> (BOS), 2 </s> (EOS), 3 "\t", 4 "\n", 5 " ",
 *   6 .. 99 the printable ASCII characters '!' .. '~' (id = c - '!' + 6).
 *
 * Encoding never merges and adds no dummy-prefix space, so one character is
 * one token: the token index of byte k of a prompt is k + 1 after BOS.
 * Printable ASCII, tab and newline round-trip; other characters become <unk>.
 *
 * Planted heads (every other head is a distractor with small random
 * weights, fixed seed):
 *  - layer LSC_DEMO_PREV_TOKEN_LAYER, head LSC_DEMO_PREV_TOKEN_HEAD: a
 *    previous-token head. Row i (i >= 2) puts 0.65 of its mass on key i - 1
 *    and 0.35 on key i - 2 (row 1 puts all of it on key 0), whatever the
 *    tokens, so its argmax is always i - 1.
 *  - layer LSC_DEMO_INDUCTION_COPY_LAYER, head LSC_DEMO_INDUCTION_COPY_HEAD:
 *    an induction (copy) head. Row i attends to the key j that follows an
 *    earlier occurrence of the current token (tokens[j - 1] == tokens[i]),
 *    preferring the one whose preceding token also matches
 *    (tokens[j - 2] == tokens[i - 1]), and copies tokens[j] into the logits:
 *    greedy decoding continues a repeated sequence. When no earlier token
 *    matches, the row attends to itself and the model predicts the current
 *    token again.
 *
 * On BOS + a random sequence of 20 .. 50 of the 95 printable characters
 * repeated twice, the greedy prediction on the second copy is the next
 * character for 97.8 % of positions (747 of 764 over 24 sequences, both
 * forward paths; tests/test-demo.c requires 95 %). The misses are the
 * ambiguous cases: the second copy's first token when that character occurs
 * more than once in the sequence (its preceding token, the end of the first
 * copy, never preceded it before), a bigram that occurs twice, and an
 * earlier doubled letter "xx" when the current token is x.
 *
 * Needle prompts for retrieval-head detection (lsc_demo_needle_prompt ()):
 *
 *   haystack ... NEEDLE "\n" haystack ... "\n" CUE
 *
 * The haystack uses only LSC_DEMO_HAYSTACK_CHARS (lower-case pseudo-words,
 * spaces, commas, full stops); the needle uses none of them (upper case,
 * digits, other punctuation), no bigram twice and no doubled character
 * (see the copy head's one weakness in lsc-demo.c); the cue is the first
 * cue_len characters of the needle. Greedy generation after the prompt emits
 * the rest of the needle, then "\n" (stop there, as the retrieval-head
 * detection loop does); at each of those steps the copy head's argmax is the
 * prompt position of the token being emitted, inside the needle, so it
 * scores 1 and no other head should. Because the copy head matches on two
 * characters only, a needle that shares a bigram with the rest of the prompt
 * can be retrieved from the wrong place: keep needles to the rules above.
 */
#pragma once

#include <glib.h>

#include "lsc-model.h"
#include "lsc-tokenizer.h"

G_BEGIN_DECLS

#define LSC_DEMO_PREFIX "demo:"
#define LSC_DEMO_INDUCTION "demo:induction"

/* demo:induction */
#define LSC_DEMO_N_VOCAB 100
#define LSC_DEMO_UNK_ID 0
#define LSC_DEMO_BOS_ID 1
#define LSC_DEMO_EOS_ID 2
#define LSC_DEMO_PREV_TOKEN_LAYER 0
#define LSC_DEMO_PREV_TOKEN_HEAD 1
#define LSC_DEMO_INDUCTION_COPY_LAYER 1
#define LSC_DEMO_INDUCTION_COPY_HEAD 2
/* Characters the needle-prompt haystack is made of. */
#define LSC_DEMO_HAYSTACK_CHARS "abcdefghijklmnopqrstuvwxyz .,"

/* The demo names, NULL-terminated. */
const char *const *lsc_demo_get_names (void);

/* `path` itself when it names a demo ("demo:..."), or NULL. */
const char *lsc_demo_match_path (const char *path);

/* The model of a demo name; LSC_MODEL_ERROR_NOT_FOUND, listing the known
 * names, when there is none. */
LscModel *lsc_demo_model_new (const char *name, GError **error);

/* The tokenizer of a demo name; LSC_TOKENIZER_ERROR_NOT_FOUND otherwise. */
LscTokenizer *lsc_demo_tokenizer_new (const char *name, GError **error);

/* A needle-in-a-haystack prompt for demo:induction (see above). */
typedef struct {
  char *text;            /* haystack, needle, "\n", haystack, "\n", cue */
  int needle_offset;     /* byte offset of the needle in text; its token index is
                            needle_offset + 1 when BOS is prepended */
  int needle_len;        /* bytes (= tokens) */
  int cue_len;           /* the cue is the needle's first cue_len characters */
} LscDemoNeedlePrompt;

/* Builds `out` with haystack_len characters of haystack (pseudo-words from
 * a xorshift generator seeded by `seed`) and the needle inserted at the word
 * boundary at or before depth * haystack_len (depth in [0, 1]). Fails with
 * LSC_TOKENIZER_ERROR_INVALID_TEXT when the needle breaks the rules above or
 * cue_len is not in [1, needle length). Expected greedy continuation:
 * needle + cue_len, then "\n". */
gboolean lsc_demo_needle_prompt (const char *needle, int cue_len, int haystack_len, double depth,
                                 guint64 seed, LscDemoNeedlePrompt *out, GError **error);
void lsc_demo_needle_prompt_clear (LscDemoNeedlePrompt *prompt);

G_END_DECLS
