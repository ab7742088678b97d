/* SPDX-License-Identifier: MIT
 *
 * Error domains of the engine, one per module. Engine messages are English;
 * the UI maps codes to translated text where it needs to.
 *
 * Every message names the file and the field at fault, e.g.
 *   "model.gguf: tensor 'blk.0.attn_q.weight': data offset 81920 + 4096 bytes
 *    is past the end of the file (65536 bytes)"
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Loading model files: safetensors, Hugging Face directories, GGUF, llama2.c. */
#define LSC_MODEL_ERROR (lsc_model_error_quark ())
GQuark lsc_model_error_quark (void);

typedef enum {
  LSC_MODEL_ERROR_IO,                  /* cannot open, stat or map a file */
  LSC_MODEL_ERROR_NOT_FOUND,           /* a file the format needs is missing */
  LSC_MODEL_ERROR_UNKNOWN_FORMAT,      /* the path is no model file or directory we know */
  LSC_MODEL_ERROR_TRUNCATED,           /* the file ends before a header or tensor does */
  LSC_MODEL_ERROR_BAD_MAGIC,
  LSC_MODEL_ERROR_UNSUPPORTED_VERSION,
  LSC_MODEL_ERROR_CORRUPT,             /* a header field is impossible: offsets, counts, lengths */
  LSC_MODEL_ERROR_UNSUPPORTED_DTYPE,   /* a tensor type we do not compute with (Q4_K, int8 llama2.c, ...) */
  LSC_MODEL_ERROR_UNSUPPORTED_ARCH,    /* an architecture we do not run */
  LSC_MODEL_ERROR_BAD_CONFIG,          /* config.json / metadata field missing or of the wrong type */
  LSC_MODEL_ERROR_MISSING_TENSOR,
  LSC_MODEL_ERROR_BAD_SHAPE,           /* a tensor's shape disagrees with the config */
} LscModelError;

/* Loading and using tokenizers. */
#define LSC_TOKENIZER_ERROR (lsc_tokenizer_error_quark ())
GQuark lsc_tokenizer_error_quark (void);

typedef enum {
  LSC_TOKENIZER_ERROR_IO,
  LSC_TOKENIZER_ERROR_NOT_FOUND,       /* no tokenizer file next to a model */
  LSC_TOKENIZER_ERROR_CORRUPT,         /* the tokenizer file is malformed */
  LSC_TOKENIZER_ERROR_UNSUPPORTED,     /* a tokenizer kind we do not implement (WordPiece, Unigram, ...) */
  LSC_TOKENIZER_ERROR_INVALID_TEXT,    /* input is not valid UTF-8 */
  LSC_TOKENIZER_ERROR_INVALID_ID,      /* a token id outside the vocabulary */
} LscTokenizerError;

/* Running a model: sessions, generation, scoring. */
#define LSC_RUN_ERROR (lsc_run_error_quark ())
GQuark lsc_run_error_quark (void);

typedef enum {
  LSC_RUN_ERROR_UNSUPPORTED,     /* an architecture or feature this backend does not run */
  LSC_RUN_ERROR_CONTEXT_FULL,    /* more tokens than the session's context */
  LSC_RUN_ERROR_INVALID_TOKEN,   /* a token id outside the model's vocabulary */
  LSC_RUN_ERROR_OUT_OF_MEMORY,   /* an allocation the session needs would exceed the budget */
  LSC_RUN_ERROR_CANCELLED,
  LSC_RUN_ERROR_DEVICE,          /* the GPU failed (driver, launch or copy error) */
  LSC_RUN_ERROR_INVALID_ARGUMENT,   /* a parameter out of range; the message names it */
} LscRunError;

G_END_DECLS
