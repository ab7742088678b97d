/* SPDX-License-Identifier: MIT
 *
 * lsc-tokenizer.h: text <-> token ids for every checkpoint Longscope reads.
 *
 * Two algorithms cover the models we run:
 *  - SentencePiece-style BPE with byte fallback (Llama-1/2, Mistral, phi-3,
 *    llama2.c): pieces use U+2581 for spaces, a dummy-prefix space is
 *    prepended, pairs merge by piece score (SentencePiece .model, llama2.c
 *    tokenizer.bin, GGUF "llama" vocab) or by merge rank (tokenizer.json
 *    with byte_fallback), and characters without a piece become <0xXX> bytes.
 *  - byte-level BPE (GPT-2, Llama-3, Qwen2, falcon, mpt, gpt-neox): bytes
 *    mapped to printable characters, text split by the pre-tokenizer's
 *    regular expressions, pairs merged by rank (tokenizer.json, GGUF "gpt2"
 *    vocab).
 * Added/special tokens (e.g. <|im_end|>) are matched literally in the input
 * before either algorithm runs.
 *
 * Sources: tokenizer.json, tokenizer.model (SentencePiece protobuf), llama2.c
 * tokenizer .bin files, and the vocabulary of a GGUF file.
 *
 * Ids beyond the vocabulary of the tokenizer but inside the model's (padded
 * embedding rows) decode to empty text; lsc_tokenizer_id_is_padding () tells.
 *
 * Example:
 *
 *   g_autoptr(LscTokenizer) tok = lsc_tokenizer_load ("Qwen2.5-1.5B/", &error);
 *   g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, "Hello", -1, FALSE, &error);
 *   g_autofree char *text = lsc_tokenizer_decode (tok, (gint32 *) ids->data, ids->len);
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _LscTokenizer LscTokenizer;

typedef enum {
  LSC_TOKENIZER_SPM_BPE,     /* SentencePiece-style BPE, byte fallback */
  LSC_TOKENIZER_BYTE_BPE,    /* byte-level BPE */
} LscTokenizerKind;

/* `path` is a tokenizer file (tokenizer.json, *.model, llama2.c tokenizer
 * .bin, *.gguf) or a model directory / model file, next to which the
 * tokenizer is looked for: tokenizer.json, then tokenizer.model, then (for a
 * llama2.c checkpoint) tokenizer.bin or the single tok*.bin beside it; a GGUF
 * model carries its own vocabulary. */
LscTokenizer *lsc_tokenizer_load (const char *path, GError **error);
void lsc_tokenizer_free (LscTokenizer *tok);

LscTokenizerKind lsc_tokenizer_get_kind (const LscTokenizer *tok);
const char *lsc_tokenizer_get_path (const LscTokenizer *tok);
int lsc_tokenizer_get_n_vocab (const LscTokenizer *tok);
int lsc_tokenizer_get_bos (const LscTokenizer *tok);   /* -1 when none */
int lsc_tokenizer_get_eos (const LscTokenizer *tok);   /* -1 when none */

/* Encodes `len` bytes of UTF-8 (-1: NUL-terminated) to a GArray of gint32
 * ids, prepending BOS when `add_bos` (and the tokenizer has one). Invalid
 * UTF-8 fails with LSC_TOKENIZER_ERROR_INVALID_TEXT. */
GArray *lsc_tokenizer_encode (const LscTokenizer *tok, const char *text, gssize len,
                              gboolean add_bos, GError **error);

/* Decodes ids to text as Hugging Face's decode (skip_special_tokens=False)
 * would: the dummy-prefix space of the first piece is dropped, byte pieces
 * are joined back into UTF-8 (invalid sequences become U+FFFD), special
 * tokens appear as their text. Ids outside [0, n_vocab) decode to "". */
char *lsc_tokenizer_decode (const LscTokenizer *tok, const gint32 *ids, gsize n_ids);

/* The raw piece of one id as stored in the vocabulary, or NULL outside it. */
const char *lsc_tokenizer_get_piece (const LscTokenizer *tok, int id);
gboolean lsc_tokenizer_id_is_special (const LscTokenizer *tok, int id);
/* TRUE for ids >= n_vocab (padding rows of a larger model vocabulary). */
gboolean lsc_tokenizer_id_is_padding (const LscTokenizer *tok, int id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LscTokenizer, lsc_tokenizer_free)

G_END_DECLS
