/* SPDX-License-Identifier: MIT
 *
 * The tokenizer structure shared by the algorithms (lsc-tokenizer-spm.c,
 * lsc-tokenizer-bpe.c) and the file readers. Only engine/ includes this.
 */
#pragma once

#include "lsc-tokenizer.h"
#include "lsc-gguf.h"

G_BEGIN_DECLS

/* Token types, numbered as in SentencePiece and GGUF. */
typedef enum {
  LSC_TOKEN_TYPE_UNDEFINED = 0,
  LSC_TOKEN_TYPE_NORMAL = 1,
  LSC_TOKEN_TYPE_UNKNOWN = 2,
  LSC_TOKEN_TYPE_CONTROL = 3,
  LSC_TOKEN_TYPE_USER_DEFINED = 4,
  LSC_TOKEN_TYPE_UNUSED = 5,
  LSC_TOKEN_TYPE_BYTE = 6,
} LscTokenType;

struct _LscTokenizer {
  char *path;
  LscTokenizerKind kind;

  /* vocabulary */
  int n_vocab;
  char **pieces;               /* (n_vocab) NUL-terminated, as stored */
  float *scores;               /* (n_vocab) SPM merge scores; NULL when merge ranks are used */
  guint8 *types;               /* (n_vocab) LscTokenType */
  GHashTable *piece_to_id;     /* piece -> id + 1 (borrows pieces[]) */
  GHashTable *merge_rank;      /* "left right" (owned) -> rank + 1; NULL for score merging */
  int byte_ids[256];           /* SPM: id of <0xXX>, -1 if absent; BYTE_BPE: id of the mapped byte */

  /* special tokens matched literally in the input (ids), longest first */
  GArray *specials;            /* (element-type int) */

  int bos_id, eos_id, unk_id;  /* -1 when none */

  /* behaviour */
  gboolean add_dummy_prefix;   /* SPM: prepend U+2581 to the text */
  gboolean byte_fallback;      /* SPM: unknown characters become <0xXX> pieces */
  gboolean ignore_merges;      /* BYTE_BPE: a whole pre-token found in the vocab is emitted as is */
  gboolean nfc;                /* normalise input to NFC first (Qwen) */
  gboolean strip_decoded_prefix; /* decode: drop the first leading space (SPM dummy prefix) */
  GPtrArray *pre_regexes;      /* (element-type GRegex) BYTE_BPE pre-tokenizer splits, in order */
  gboolean pre_split_digits;   /* split runs of digits into single digits */
};

/* An empty tokenizer of `kind` with ids -1 and byte_ids -1. */
LscTokenizer *_lsc_tokenizer_new (const char *path, LscTokenizerKind kind);

/* Sets n_vocab, takes ownership of pieces (and scores, types when not NULL;
 * types default to NORMAL) and builds piece_to_id and, for SPM, byte_ids. */
gboolean _lsc_tokenizer_set_vocab (LscTokenizer *tok, int n_vocab, char **pieces, float *scores,
                                   guint8 *types, GError **error);
/* Adds a merge rule; rank is the order of addition. */
void _lsc_tokenizer_add_merge (LscTokenizer *tok, const char *left, const char *right);
/* Registers id as a special token matched literally in input text. */
void _lsc_tokenizer_add_special (LscTokenizer *tok, int id);

/* -1 when absent */
int _lsc_tokenizer_piece_id (const LscTokenizer *tok, const char *piece, gssize len);

/* Algorithms: encode one stretch of text with no special tokens in it,
 * appending ids to out. SPM gives every stretch its dummy-prefix "▁" (the
 * start of the input and each stretch after a special token), as llama.cpp
 * and Hugging Face's Mistral tokenizer do. */
void _lsc_tokenizer_spm_encode (const LscTokenizer *tok, const char *text, gsize len,
                                GArray *out);
void _lsc_tokenizer_bpe_encode (const LscTokenizer *tok, const char *text, gsize len,
                                GArray *out);
/* Appends the bytes of one piece to out. */
void _lsc_tokenizer_spm_decode_piece (const LscTokenizer *tok, int id, GString *out);
void _lsc_tokenizer_bpe_decode_piece (const LscTokenizer *tok, int id, GString *out);

/* BYTE_BPE pre-tokenizers by llama.cpp's `tokenizer.ggml.pre` name ("gpt-2",
 * "llama-bpe", "qwen2", "falcon", "mpt", ...); UNSUPPORTED error otherwise. */
gboolean _lsc_tokenizer_bpe_set_pre (LscTokenizer *tok, const char *pre_name, GError **error);
/* GPT-2's bytes_to_unicode: the printable character byte-level BPE uses for a byte. */
gunichar _lsc_tokenizer_bpe_byte_char (guint8 byte);

/* Readers. */
LscTokenizer *_lsc_tokenizer_load_llama2c (const char *path, int n_vocab, GError **error);
LscTokenizer *_lsc_tokenizer_load_sentencepiece (const char *path, GError **error);
LscTokenizer *_lsc_tokenizer_load_json (const char *path, GError **error);
LscTokenizer *_lsc_tokenizer_load_gguf (const LscGguf *gguf, GError **error);

G_END_DECLS
