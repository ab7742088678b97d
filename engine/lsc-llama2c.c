/* SPDX-License-Identifier: MIT
 *
 * llama2.c checkpoints (karpathy/llama2.c), float32 only.
 *
 * Legacy layout (run.c, export.py legacy_export):
 *
 *   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *         (vocab_size < 0 means the classifier is NOT shared with the embedding)
 *   float token_embedding (vocab, dim)
 *   float rms_att (L, dim)
 *   float wq (L, n_heads * hs, dim)       hs = dim / n_heads
 *   float wk (L, n_kv_heads * hs, dim)
 *   float wv (L, n_kv_heads * hs, dim)
 *   float wo (L, dim, n_heads * hs)
 *   float rms_ffn (L, dim)
 *   float w1 (L, hidden, dim)             gate
 *   float w2 (L, dim, hidden)             down
 *   float w3 (L, hidden, dim)             up
 *   float rms_final (dim)
 *   float freq_cis_real (seq_len, hs / 2)  unused: RoPE is recomputed
 *   float freq_cis_imag (seq_len, hs / 2)
 *   float wcls (vocab, dim)               only when not shared
 *
 * Version 1 (export.py version1_export), a 256-byte header:
 *
 *   uint32 magic 0x616b3432 ("ak42"), int32 version = 1,
 *   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, max_seq_len,
 *   uint8 shared_classifier, zero padding to 256 bytes
 *   float rms_att (L, dim), rms_ffn (L, dim), rms_final (dim), token_embedding (vocab, dim),
 *         wq (L, ...), wk, wv, wo, w1, w2, w3 as above, then wcls (vocab, dim) if not shared
 *
 * Version 2 is the int8 (Q8_0-like, group-quantised) export of runq.c: refused.
 *
 * RoPE in llama2.c rotates adjacent pairs (2i, 2i + 1) with theta 10000; the
 * norm epsilon is 1e-5; ids 1 and 2 are BOS and EOS. Tensors get GGUF-style
 * names so that `--info` shows the same names as for a GGUF file.
 */
#include "config.h"

#include <string.h>

#include "lsc-model-private.h"
#include "lsc-error.h"

#define LLAMA2C_MAGIC 0x616b3432u
#define LLAMA2C_V1_HEADER 256

typedef struct {
  gint32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} Llama2cHeader;

typedef struct {
  LscModel *model;
  guint64 offset;    /* where the next tensor starts */
  GError **error;
} Cursor;

static gboolean
add (Cursor *cur, const char *name, gint64 d0, gint64 d1)
{
  gint64 shape[2] = { d0, d1 };
  int n_dims = d1 > 0 ? 2 : 1;
  LscTensor *t = _lsc_model_add_tensor (cur->model, name, LSC_DTYPE_F32, n_dims, shape, 0,
                                        cur->offset, cur->error);
  if (t == NULL)
    return FALSE;
  cur->offset += t->n_bytes;
  return TRUE;
}

/* One (d0, d1) tensor per layer, named blk.N.<what>. */
static gboolean
add_per_layer (Cursor *cur, int n_layers, const char *what, gint64 d0, gint64 d1)
{
  for (int l = 0; l < n_layers; l++)
    {
      g_autofree char *name = g_strdup_printf ("blk.%d.%s", l, what);
      if (!add (cur, name, d0, d1))
        return FALSE;
    }
  return TRUE;
}

static gboolean
check_header (const char *path, const Llama2cHeader *h, GError **error)
{
  const struct { const char *name; gint32 value; gint32 max; } fields[] = {
    { "dim", h->dim, 1 << 16 },
    { "hidden_dim", h->hidden_dim, 1 << 18 },
    { "n_layers", h->n_layers, 1024 },
    { "n_heads", h->n_heads, 1024 },
    { "n_kv_heads", h->n_kv_heads, 1024 },
    { "vocab_size", ABS (h->vocab_size), 1 << 22 },
    { "seq_len", h->seq_len, 1 << 24 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    if (fields[i].value <= 0 || fields[i].value > fields[i].max)
      {
        g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                     "%s: header field %s = %d is outside 1..%d (not a llama2.c float32 checkpoint?)",
                     path, fields[i].name, fields[i].value, fields[i].max);
        return FALSE;
      }
  if (h->dim % h->n_heads != 0 || h->n_heads % h->n_kv_heads != 0 || (h->dim / h->n_heads) % 2)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_CORRUPT,
                   "%s: header fields dim = %d, n_heads = %d, n_kv_heads = %d do not divide "
                   "into an even head size", path, h->dim, h->n_heads, h->n_kv_heads);
      return FALSE;
    }
  return TRUE;
}

gboolean
_lsc_model_load_llama2c (LscModel *model, const char *path, GError **error)
{
  LscMappedFile *file = lsc_mapped_file_open (path, error);
  Llama2cHeader h;
  gboolean v1 = FALSE, shared;
  guint64 header_bytes;

  if (file == NULL)
    return FALSE;
  g_ptr_array_add (model->files, file);

  if (file->size >= 8)
    {
      guint32 magic;
      gint32 version;
      memcpy (&magic, file->data, 4);
      memcpy (&version, file->data + 4, 4);
      if (magic == LLAMA2C_MAGIC)
        {
          if (version != 1)
            {
              g_set_error (error, LSC_MODEL_ERROR,
                           version == 2 ? LSC_MODEL_ERROR_UNSUPPORTED_DTYPE
                                        : LSC_MODEL_ERROR_UNSUPPORTED_VERSION,
                           version == 2
                             ? "%s: llama2.c version 2 is the int8-quantised export (runq.c); "
                               "Longscope reads float32 checkpoints (versions 0 and 1) only"
                             : "%s: llama2.c checkpoint version %d is not known (expected 1)",
                           path, version);
              return FALSE;
            }
          v1 = TRUE;
        }
    }

  header_bytes = v1 ? LLAMA2C_V1_HEADER : sizeof (Llama2cHeader);
  if (!lsc_mapped_file_check_range (file, 0, header_bytes, "header", error))
    return FALSE;
  memcpy (&h, file->data + (v1 ? 8 : 0), sizeof h);
  if (!check_header (path, &h, error))
    return FALSE;
  shared = v1 ? file->data[8 + sizeof h] != 0 : h.vocab_size > 0;

  int n_layers = h.n_layers;
  gint64 dim = h.dim, hidden = h.hidden_dim, vocab = ABS (h.vocab_size);
  gint64 hs = dim / h.n_heads, q_dim = h.n_heads * hs, kv_dim = h.n_kv_heads * hs;

  /* Every size fits comfortably in 64 bits given the bounds of check_header,
   * so the expected file size can be computed before any tensor is added. */
  guint64 n_floats = vocab * dim + n_layers * (2 * dim + 2 * q_dim * dim + 2 * kv_dim * dim
                                                + 3 * hidden * dim) + dim
                     + (v1 ? 0 : (guint64) h.seq_len * hs)
                     + (shared ? 0 : vocab * dim);
  guint64 expected = header_bytes + 4 * n_floats;
  if (file->size != expected)
    {
      g_set_error (error, LSC_MODEL_ERROR,
                   file->size < expected ? LSC_MODEL_ERROR_TRUNCATED : LSC_MODEL_ERROR_CORRUPT,
                   "%s: the header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, "
                   "vocab_size %d, seq_len %d, %s classifier) implies %" G_GUINT64_FORMAT
                   " bytes, the file has %" G_GUINT64_FORMAT, path, h.dim, h.hidden_dim, h.n_layers,
                   h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len, shared ? "shared" : "unshared",
                   expected, file->size);
      return FALSE;
    }

  Cursor cur = { model, header_bytes, error };
  gboolean ok;
  if (v1)
    ok = add_per_layer (&cur, n_layers, "attn_norm.weight", dim, 0)
         && add_per_layer (&cur, n_layers, "ffn_norm.weight", dim, 0)
         && add (&cur, "output_norm.weight", dim, 0)
         && add (&cur, "token_embd.weight", vocab, dim);
  else
    ok = add (&cur, "token_embd.weight", vocab, dim)
         && add_per_layer (&cur, n_layers, "attn_norm.weight", dim, 0);
  ok = ok
       && add_per_layer (&cur, n_layers, "attn_q.weight", q_dim, dim)
       && add_per_layer (&cur, n_layers, "attn_k.weight", kv_dim, dim)
       && add_per_layer (&cur, n_layers, "attn_v.weight", kv_dim, dim)
       && add_per_layer (&cur, n_layers, "attn_output.weight", dim, q_dim);
  if (ok && !v1)
    ok = add_per_layer (&cur, n_layers, "ffn_norm.weight", dim, 0);
  ok = ok
       && add_per_layer (&cur, n_layers, "ffn_gate.weight", hidden, dim)
       && add_per_layer (&cur, n_layers, "ffn_down.weight", dim, hidden)
       && add_per_layer (&cur, n_layers, "ffn_up.weight", hidden, dim);
  if (ok && !v1)
    {
      ok = add (&cur, "output_norm.weight", dim, 0);
      cur.offset += 4 * (guint64) h.seq_len * hs;   /* freq_cis_real and _imag */
    }
  if (ok && !shared)
    ok = add (&cur, "output.weight", vocab, dim);
  if (!ok)
    return FALSE;

  LscModelConfig *c = &model->config;
  c->arch = LSC_ARCH_LLAMA;
  c->vocab_size = (int) vocab;
  c->dim = h.dim;
  c->n_layers = h.n_layers;
  c->n_heads = h.n_heads;
  c->n_kv_heads = h.n_kv_heads;
  c->head_dim = (int) hs;
  c->hidden_dim = h.hidden_dim;
  c->norm_eps = 1e-5;
  c->rope_theta = 10000.0;
  c->rope_layout = LSC_ROPE_INTERLEAVED;
  c->max_position = h.seq_len;
  c->tied_embeddings = shared;
  c->bos_id = 1;
  c->eos_id = 2;
  return _lsc_model_bind_tensors (model, error);
}
