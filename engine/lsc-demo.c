/* SPDX-License-Identifier: MIT
 *
 * demo:induction: a two-layer Llama whose weights are set analytically so
 * that the ordinary forward pass (RMSNorm, NEOX RoPE, softmax attention,
 * SwiGLU with zero weights, tied embeddings) contains one previous-token head
 * in layer 0 and one induction (copy) head in layer 1; every other head is a
 * distractor with small random weights. It follows methods.md section 9,
 * adapted as described below. lsc-demo.h says what the heads do.
 *
 * Shape: vocab 100, dim 256, 2 layers, 4 heads x 128 (MHA: 4 KV heads), FFN
 * 64 (all zero), norm_eps 1e-5, rope_theta 1e32, NEOX layout, tied
 * embeddings, every weight F32. The weights live in one anonymous memory map
 * under GGUF names, bound by _lsc_model_bind_tensors () like every loader
 * (as lsc-synthetic.c does), so the model reports format GGUF.
 *
 * Residual stream (dim 256):
 *
 *   [  0, 100)  TOKEN block     one-hot identity of the token (embedding)
 *   [100, 200)  PREV block      history written by layer 0's previous-token
 *                               head: 0.65 e(t[i-1]) + 0.35 e(t[i-2])
 *   200         CONST dim       1 in every embedding: a position-free source
 *                               for the previous-token head's query and key
 *   [201, 256)  SCRATCH block   where the distractor heads write
 *
 * Embedding row t = e(t) + e(CONST): every layer-0 input has exactly two unit
 * entries, so RMSNorm multiplies it by exactly 1 / sqrt(2 / 256 + eps) and
 * layer 0's scales are exact. Layer 1's input also holds the PREV block
 * (squared norm 0.65^2 + 0.35^2 for distinct previous tokens); its scales
 * use that nominal norm, and the other cases only rescale a key by a few
 * per cent, far inside the margins below.
 *
 * RoPE as a tool (NEOX: pair m is dims (m, m + 64), frequency
 * theta_m = 1e32^(-m/64) = 10^(-m/2)). The fast pairs 0..9 (1 .. 3e-5 rad
 * per token) encode relative position; the slow pairs 14..63
 * (theta <= 1e-7 rad per token: under 0.01 rad across 100k tokens) behave
 * as plain dot products. Methods.md suggests theta 1e9; that leaves too few
 * slow pairs for a one-hot code of 100 tokens (50 pairs are needed), hence
 * 1e32. A frequency ratio of sqrt(10) between neighbouring pairs keeps one
 * pair with theta * distance in [1, 3.2] rad for every distance up to 1e5:
 * no aliasing far away.
 *
 * Layer 0, previous-token head: query and key read only the CONST dim and
 * live in the fast pairs; the key is pre-rotated by d0 * theta_m, so
 *
 *   logit(i, j) = A * sum_{m<10} cos ((i - j - d0) theta_m),
 *
 * a peak at distance d0 in (1, 1.5). d0 and A are solved for (solve_prev ())
 * so that the logit at distance 1 exceeds distance 2 by ln (0.65 / 0.35),
 * and distance 0 (itself) by 24; every other distance is lower still (>= 24
 * below the peak, checked up to 1e5 when the model is built). Value and
 * output copy the TOKEN block of the attended key into the PREV block.
 * Why two tokens and not one: a random 20..50 character sequence repeats
 * characters often (a 50-character sequence over 95 characters has about
 * 13 repeated pairs), so matching on the current character alone copies
 * the wrong continuation for ~20 % of positions. With the 0.35 share of
 * t[i-2] in the PREV block the copy head can match on bigrams.
 *
 * Layer 1, induction (copy) head, in the slow pairs (token t in dim
 * 14 + t/2 of pair half t%2): query = c1 e(t[i]) + c2 PREV_i, key = PREV_j,
 * both from the normalised stream. With a = 0.65, b = 0.35 and
 * c2 = 0.735 c1 the logits of key j for query i are, in units of c1:
 *
 *   bigram match (t[j-1] = t[i], t[j-2] = t[i-1])   a + (c2/c1) ab     = 0.817
 *   current token only (t[j-1] = t[i])               a                  = 0.65
 *   reversed bigram (t[j-1] = t[i-1], t[j-2] = t[i]) b + (c2/c1) a^2    = 0.661
 *   same history (j = i itself, or the earlier
 *     occurrence of t[i] when the history repeats)   (c2/c1)(a^2 + b^2) = 0.401
 *   anything else                                    about 0
 *
 * so a bigram match wins, a current-token match is the fallback (the
 * second copy's first token, a one-character cue), and with no match the
 * row attends to itself. a and c2/c1 maximise the smallest gap (19 % of
 * the peak); c1 = 150 logits makes it 23 logits, so 1e5 keys leak < 1e-5.
 * The one case it loses: an earlier doubled letter "xx" when the current
 * token is x (t[j-1] = t[j-2] = t[i] scores a + b = 1.0); no weights of
 * this shape win both that case and the current-token fallback, and a
 * doubled letter is the rarer of the two in random text. The value reads
 * the TOKEN block of the key and the output writes it, times COPY_GAIN = 4,
 * into the TOKEN block, so the tied unembedding gives the copied token a
 * logit 4x that of the current token (which the stream still holds).
 *
 * Distractor heads (0, 2, 3 of layer 0; 0, 1, 3 of layer 1): Q, K and V
 * read the whole stream with uniform(-0.12, 0.12) weights (logits of order 1:
 * spread, content-dependent attention), and the output writes only into the
 * SCRATCH block with uniform(-0.05, 0.05) / sqrt(128) weights, so that their
 * noise never reaches the planted circuit's inputs or the logits (nothing
 * reads the SCRATCH block; it only enters the RMSNorm denominators, by
 * well under 1 %). The generator is xorshift64* with a fixed seed.
 *
 * Tokenizer: SPM_BPE kind, 100 single-character pieces and no merges, no
 * dummy prefix, no byte fallback; " " is the piece U+2581 as in
 * SentencePiece vocabularies, so decoding turns it back into a space.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-demo.h"
#include "lsc-error.h"
#include "lsc-model-private.h"
#include "lsc-rope.h"
#include "lsc-tokenizer-private.h"

/* shape */
#define N_VOCAB LSC_DEMO_N_VOCAB
#define DIM 256
#define N_LAYERS 2
#define N_HEADS 4
#define HEAD_DIM 128
#define HALF (HEAD_DIM / 2)
#define HIDDEN 64
#define NORM_EPS 1e-5
#define ROPE_THETA 1e32
#define MAX_POSITION 65536     /* advisory; checked for aliasing up to CHECK_DISTANCE */

/* residual stream */
#define TOKEN_BLOCK 0          /* [0, 100) */
#define PREV_BLOCK 100         /* [100, 200) */
#define CONST_DIM 200
#define SCRATCH_BLOCK 201      /* [201, 256) */
#define SCRATCH_WIDTH (DIM - SCRATCH_BLOCK)

/* layer 0, previous-token head */
#define PREV_PAIRS 10          /* fast pairs 0 .. 9 */
#define PREV_SHARE_1 0.65      /* attention on key i - 1; the rest on i - 2 */
#define PREV_SELF_GAP 24.0     /* logit(i - 1) - logit(i): e^-24 leaks to itself */
#define CHECK_DISTANCE 100000  /* distances checked for aliasing when building */

/* layer 1, induction head */
#define SLOW_PAIR0 14          /* slow pairs 14 .. 63 hold the 100 token slots */
#define COPY_C1 150.0          /* logit of a current-token match (units above) */
#define COPY_C2_OVER_C1 0.735  /* weight of the query's own history */
#define COPY_GAIN 4.0          /* copied token's weight in the TOKEN block */

/* distractors */
#define DISTRACTOR_QKV 0.12
#define DISTRACTOR_OUT 0.05
#define DEMO_SEED 0x1d0c7104ull

#define TENSOR_ALIGN 64

static const char *const demo_names[] = { LSC_DEMO_INDUCTION, NULL };

const char *const *
lsc_demo_get_names (void)
{
  return demo_names;
}

const char *
lsc_demo_match_path (const char *path)
{
  g_return_val_if_fail (path != NULL, NULL);

  return g_str_has_prefix (path, LSC_DEMO_PREFIX) ? path : NULL;
}

static gboolean
is_known (const char *name)
{
  return g_strv_contains (demo_names, name);
}

static char *
known_list (void)
{
  return g_strjoinv (", ", (char **) demo_names);
}

/* ---------------------------------------------------------------------- */
/* weights                                                                */
/* ---------------------------------------------------------------------- */

typedef struct {
  float *attn_norm;   /* (DIM) */
  float *wq;          /* (N_HEADS * HEAD_DIM, DIM) */
  float *wk;          /* (N_HEADS * HEAD_DIM, DIM) */
  float *wv;          /* (N_HEADS * HEAD_DIM, DIM) */
  float *wo;          /* (DIM, N_HEADS * HEAD_DIM) */
  float *ffn_norm;    /* (DIM) */
  float *w_gate;      /* (HIDDEN, DIM) */
  float *w_up;        /* (HIDDEN, DIM) */
  float *w_down;      /* (DIM, HIDDEN) */
} DemoLayer;

typedef struct {
  float *embd;        /* (N_VOCAB, DIM) */
  float *output_norm; /* (DIM) */
  DemoLayer layers[N_LAYERS];
  double theta[HALF]; /* RoPE frequencies, as the forward pass computes them */
  guint64 rng;        /* xorshift64* state */
} DemoWeights;

/* One tensor of the map. */
typedef struct {
  char *name;
  int n_dims;
  gint64 rows, cols;  /* cols = 1 for vectors */
  float **slot;       /* where its address goes once mapped */
  guint64 offset;
} DemoTensor;

static void
plan (GArray *tensors, float **slot, gint64 rows, gint64 cols, int n_dims, const char *fmt, ...)
  G_GNUC_PRINTF (6, 7);

static void
plan (GArray *tensors, float **slot, gint64 rows, gint64 cols, int n_dims, const char *fmt, ...)
{
  va_list ap;
  DemoTensor t = { 0 };
  va_start (ap, fmt);
  t.name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  t.n_dims = n_dims;
  t.rows = rows;
  t.cols = cols;
  t.slot = slot;
  g_array_append_val (tensors, t);
}

static void
demo_tensor_clear (gpointer data)
{
  g_free (((DemoTensor *) data)->name);
}

/* xorshift64*: uniform in [-1, 1) */
static float
next_uniform (guint64 *x)
{
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  guint64 r = *x * 0x2545f4914f6cdd1dull;
  return (float) (r >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static float *
row (float *matrix, int r, int cols)
{
  return matrix + (gsize) r * cols;
}

/* The RMSNorm gain of a stream whose squared norm is sum_sq. */
static double
norm_gain (double sum_sq)
{
  return 1.0 / sqrt (sum_sq / DIM + NORM_EPS);
}

/* A distractor head: random Q, K, V over the whole stream, output into the
 * SCRATCH block only. */
static void
fill_distractor (DemoWeights *w, DemoLayer *L, int head)
{
  int q_dim = N_HEADS * HEAD_DIM;
  float out_scale = (float) (DISTRACTOR_OUT / sqrt (HEAD_DIM));

  for (int d = head * HEAD_DIM; d < (head + 1) * HEAD_DIM; d++)
    for (int c = 0; c < DIM; c++)
      {
        row (L->wq, d, DIM)[c] = (float) DISTRACTOR_QKV * next_uniform (&w->rng);
        row (L->wk, d, DIM)[c] = (float) DISTRACTOR_QKV * next_uniform (&w->rng);
        row (L->wv, d, DIM)[c] = (float) DISTRACTOR_QKV * next_uniform (&w->rng);
      }
  for (int r = SCRATCH_BLOCK; r < DIM; r++)
    for (int d = head * HEAD_DIM; d < (head + 1) * HEAD_DIM; d++)
      row (L->wo, r, q_dim)[d] = out_scale * next_uniform (&w->rng);
}

/* sum over the previous-token head's pairs of cos ((dist - d0) theta_m) */
static double
prev_profile (const DemoWeights *w, double dist, double d0)
{
  double s = 0.0;
  for (int m = 0; m < PREV_PAIRS; m++)
    s += cos ((dist - d0) * w->theta[m]);
  return s;
}

/* Solves for the peak offset d0 and the amplitude A of the previous-token
 * head's logits A * prev_profile (dist, d0): A (p(1) - p(2)) = ln (a / b)
 * sets the 0.65 / 0.35 split, and d0 is moved towards 1.5 (which flattens
 * p(1) - p(2) and so raises A) until A (p(1) - p(0)) = PREV_SELF_GAP. */
static void
solve_prev (const DemoWeights *w, double *d0_out, double *amp_out)
{
  double split = log (PREV_SHARE_1 / (1.0 - PREV_SHARE_1));
  double lo = 1.0, hi = 1.5;

  for (int it = 0; it < 100; it++)
    {
      double d0 = 0.5 * (lo + hi);
      double amp = split / (prev_profile (w, 1, d0) - prev_profile (w, 2, d0));
      double self_gap = amp * (prev_profile (w, 1, d0) - prev_profile (w, 0, d0));
      if (self_gap < PREV_SELF_GAP)
        lo = d0;
      else
        hi = d0;
    }
  *d0_out = 0.5 * (lo + hi);
  *amp_out = split / (prev_profile (w, 1, *d0_out) - prev_profile (w, 2, *d0_out));
}

/* Layer 0: the previous-token head at LSC_DEMO_PREV_TOKEN_HEAD. */
static gboolean
build_layer0_previous_token (DemoWeights *w, GError **error)
{
  DemoLayer *L = &w->layers[0];
  int q_dim = N_HEADS * HEAD_DIM;
  int base = LSC_DEMO_PREV_TOKEN_HEAD * HEAD_DIM;
  /* every embedding has two unit entries: RMSNorm scales them by exactly this */
  double gain = norm_gain (2.0);
  double d0, amp;

  solve_prev (w, &d0, &amp);

  /* Nothing far away may come near the peak (aliasing of the frequencies). */
  double peak = amp * prev_profile (w, 1, d0);
  for (int dist = 3; dist <= CHECK_DISTANCE; dist++)
    if (peak - amp * prev_profile (w, dist, d0) < PREV_SELF_GAP)
      {
        g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_BAD_CONFIG,
                     "%s: previous-token head: distance %d is only %.2f logits below the peak",
                     LSC_DEMO_INDUCTION, dist, peak - amp * prev_profile (w, dist, d0));
        return FALSE;
      }

  /* q . k / sqrt (head_dim) = amp per pair: q_m = k_m = g * gain */
  float g = (float) (sqrt (amp * sqrt (HEAD_DIM)) / gain);
  for (int m = 0; m < PREV_PAIRS; m++)
    {
      row (L->wq, base + m, DIM)[CONST_DIM] = g;
      /* the key pre-rotated by d0 positions of this pair's frequency */
      row (L->wk, base + m, DIM)[CONST_DIM] = g * (float) cos (d0 * w->theta[m]);
      row (L->wk, base + m + HALF, DIM)[CONST_DIM] = g * (float) sin (d0 * w->theta[m]);
    }

  /* value: the key's TOKEN block, undoing the norm gain; output: into PREV */
  for (int t = 0; t < N_VOCAB; t++)
    {
      row (L->wv, base + t, DIM)[TOKEN_BLOCK + t] = (float) (1.0 / gain);
      row (L->wo, PREV_BLOCK + t, q_dim)[base + t] = 1.0f;
    }

  for (int h = 0; h < N_HEADS; h++)
    if (h != LSC_DEMO_PREV_TOKEN_HEAD)
      fill_distractor (w, L, h);
  return TRUE;
}

/* The head dim of token t's slot in the slow pairs. */
static int
slow_slot (int t)
{
  return SLOW_PAIR0 + t / 2 + (t % 2) * HALF;
}

/* Layer 1: the induction (copy) head at LSC_DEMO_INDUCTION_COPY_HEAD. */
static void
build_layer1_induction (DemoWeights *w)
{
  DemoLayer *L = &w->layers[1];
  int q_dim = N_HEADS * HEAD_DIM;
  int base = LSC_DEMO_INDUCTION_COPY_HEAD * HEAD_DIM;
  double a = PREV_SHARE_1, b = 1.0 - PREV_SHARE_1;
  /* TOKEN (1) + CONST (1) + PREV (a^2 + b^2): the nominal layer-1 input */
  double gain = norm_gain (2.0 + a * a + b * b);
  /* query . key / sqrt (head_dim) = COPY_C1 for one unit match */
  float g = (float) (sqrt (COPY_C1 * sqrt (HEAD_DIM)) / gain);

  for (int t = 0; t < N_VOCAB; t++)
    {
      int d = base + slow_slot (t);
      row (L->wq, d, DIM)[TOKEN_BLOCK + t] = g;
      row (L->wq, d, DIM)[PREV_BLOCK + t] = (float) COPY_C2_OVER_C1 * g;
      row (L->wk, d, DIM)[PREV_BLOCK + t] = g;
      /* value: the key's own token; output: COPY_GAIN times it into TOKEN */
      row (L->wv, base + t, DIM)[TOKEN_BLOCK + t] = (float) (1.0 / gain);
      row (L->wo, TOKEN_BLOCK + t, q_dim)[base + t] = (float) COPY_GAIN;
    }

  for (int h = 0; h < N_HEADS; h++)
    if (h != LSC_DEMO_INDUCTION_COPY_HEAD)
      fill_distractor (w, L, h);
}

static void
build_embeddings_and_norms (DemoWeights *w)
{
  for (int t = 0; t < N_VOCAB; t++)
    {
      row (w->embd, t, DIM)[TOKEN_BLOCK + t] = 1.0f;
      row (w->embd, t, DIM)[CONST_DIM] = 1.0f;
    }
  for (int i = 0; i < DIM; i++)
    {
      w->output_norm[i] = 1.0f;
      for (int l = 0; l < N_LAYERS; l++)
        {
          w->layers[l].attn_norm[i] = 1.0f;
          w->layers[l].ffn_norm[i] = 1.0f;
        }
    }
  /* the MLP weights stay zero: SwiGLU(0) = 0 */
}

static void
demo_config (LscModelConfig *c)
{
  memset (c, 0, sizeof *c);
  c->arch = LSC_ARCH_LLAMA;
  c->vocab_size = N_VOCAB;
  c->dim = DIM;
  c->n_layers = N_LAYERS;
  c->n_heads = N_HEADS;
  c->n_kv_heads = N_HEADS;
  c->head_dim = HEAD_DIM;
  c->hidden_dim = HIDDEN;
  c->norm_eps = NORM_EPS;
  c->rope_theta = ROPE_THETA;
  c->rope_layout = LSC_ROPE_NEOX;
  c->rope_scaling.type = LSC_ROPE_SCALING_NONE;
  c->rope_scaling.factor = 1.0;
  c->max_position = MAX_POSITION;
  c->tied_embeddings = TRUE;
  c->bos_id = LSC_DEMO_BOS_ID;
  c->eos_id = LSC_DEMO_EOS_ID;
}

static LscModel *
induction_model_new (GError **error)
{
  DemoWeights w = { 0 };
  LscModelConfig config;
  int q_dim = N_HEADS * HEAD_DIM;

  demo_config (&config);
  lsc_rope_inv_freq (&config, 1, w.theta);
  w.rng = DEMO_SEED;

  g_autoptr(GArray) tensors = g_array_new (FALSE, TRUE, sizeof (DemoTensor));
  g_array_set_clear_func (tensors, demo_tensor_clear);
  plan (tensors, &w.embd, N_VOCAB, DIM, 2, "token_embd.weight");
  plan (tensors, &w.output_norm, DIM, 1, 1, "output_norm.weight");
  for (int l = 0; l < N_LAYERS; l++)
    {
      DemoLayer *L = &w.layers[l];
      plan (tensors, &L->attn_norm, DIM, 1, 1, "blk.%d.attn_norm.weight", l);
      plan (tensors, &L->wq, q_dim, DIM, 2, "blk.%d.attn_q.weight", l);
      plan (tensors, &L->wk, q_dim, DIM, 2, "blk.%d.attn_k.weight", l);
      plan (tensors, &L->wv, q_dim, DIM, 2, "blk.%d.attn_v.weight", l);
      plan (tensors, &L->wo, DIM, q_dim, 2, "blk.%d.attn_output.weight", l);
      plan (tensors, &L->ffn_norm, DIM, 1, 1, "blk.%d.ffn_norm.weight", l);
      plan (tensors, &L->w_gate, HIDDEN, DIM, 2, "blk.%d.ffn_gate.weight", l);
      plan (tensors, &L->w_up, HIDDEN, DIM, 2, "blk.%d.ffn_up.weight", l);
      plan (tensors, &L->w_down, DIM, HIDDEN, 2, "blk.%d.ffn_down.weight", l);
    }

  guint64 size = 0;
  for (guint i = 0; i < tensors->len; i++)
    {
      DemoTensor *t = &g_array_index (tensors, DemoTensor, i);
      t->offset = size;
      size += (guint64) t->rows * t->cols * sizeof (float);
      size = (size + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    }

  /* anonymous pages are zero: every weight not set below stays 0 */
  guint8 *map;
  LscMappedFile *file = lsc_mapped_file_new_anonymous (LSC_DEMO_INDUCTION, size, &map, error);
  if (file == NULL)
    return NULL;
  for (guint i = 0; i < tensors->len; i++)
    {
      DemoTensor *t = &g_array_index (tensors, DemoTensor, i);
      *t->slot = (float *) (map + t->offset);
    }

  build_embeddings_and_norms (&w);
  gboolean ok = build_layer0_previous_token (&w, error);
  if (ok)
    build_layer1_induction (&w);
  lsc_mapped_file_seal (file);

  LscModel *model = _lsc_model_new (LSC_DEMO_INDUCTION, LSC_FORMAT_GGUF);
  model->config = config;
  g_ptr_array_add (model->files, file);   /* owns the map from here on */
  if (!ok)
    {
      lsc_model_free (model);
      return NULL;
    }

  for (guint i = 0; i < tensors->len; i++)
    {
      const DemoTensor *t = &g_array_index (tensors, DemoTensor, i);
      gint64 shape[2] = { t->rows, t->cols };
      if (_lsc_model_add_tensor (model, t->name, LSC_DTYPE_F32, t->n_dims, shape, 0, t->offset,
                                 error) == NULL)
        {
          lsc_model_free (model);
          return NULL;
        }
    }
  if (!_lsc_model_bind_tensors (model, error))
    {
      lsc_model_free (model);
      return NULL;
    }
  _lsc_model_warn (model, "%s: weights set by hand (engine/lsc-demo.c), not a trained model",
                   LSC_DEMO_INDUCTION);
  return model;
}

LscModel *
lsc_demo_model_new (const char *name, GError **error)
{
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!is_known (name))
    {
      g_autofree char *known = known_list ();
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_NOT_FOUND,
                   "%s: no such demo model (known: %s)", name, known);
      return NULL;
    }
  return induction_model_new (error);
}

/* ---------------------------------------------------------------------- */
/* tokenizer                                                              */
/* ---------------------------------------------------------------------- */

#define SPM_SPACE "\xe2\x96\x81"   /* U+2581, SentencePiece's space */

LscTokenizer *
lsc_demo_tokenizer_new (const char *name, GError **error)
{
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!is_known (name))
    {
      g_autofree char *known = known_list ();
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_NOT_FOUND,
                   "%s: no such demo tokenizer (known: %s)", name, known);
      return NULL;
    }

  char **pieces = g_new0 (char *, N_VOCAB + 1);   /* (N_VOCAB) + NULL */
  guint8 *types = g_new (guint8, N_VOCAB);        /* (N_VOCAB) LscTokenType */
  int n = 0;
  pieces[n] = g_strdup ("<unk>");
  types[n++] = LSC_TOKEN_TYPE_UNKNOWN;
  pieces[n] = g_strdup ("<s>");
  types[n++] = LSC_TOKEN_TYPE_CONTROL;
  pieces[n] = g_strdup ("</s>");
  types[n++] = LSC_TOKEN_TYPE_CONTROL;
  pieces[n] = g_strdup ("\t");
  types[n++] = LSC_TOKEN_TYPE_NORMAL;
  pieces[n] = g_strdup ("\n");
  types[n++] = LSC_TOKEN_TYPE_NORMAL;
  pieces[n] = g_strdup (SPM_SPACE);
  types[n++] = LSC_TOKEN_TYPE_NORMAL;
  for (char c = '!'; c <= '~'; c++)
    {
      pieces[n] = g_strndup (&c, 1);
      types[n++] = LSC_TOKEN_TYPE_NORMAL;
    }
  g_assert (n == N_VOCAB);

  g_autoptr(LscTokenizer) tok = _lsc_tokenizer_new (name, LSC_TOKENIZER_SPM_BPE);
  /* no scores and no two-character pieces: nothing ever merges */
  if (!_lsc_tokenizer_set_vocab (tok, N_VOCAB, pieces, NULL, types, error))
    return NULL;
  tok->unk_id = LSC_DEMO_UNK_ID;
  tok->bos_id = LSC_DEMO_BOS_ID;
  tok->eos_id = LSC_DEMO_EOS_ID;
  tok->add_dummy_prefix = FALSE;
  tok->byte_fallback = FALSE;
  tok->strip_decoded_prefix = FALSE;
  return g_steal_pointer (&tok);
}

/* ---------------------------------------------------------------------- */
/* needle prompts                                                         */
/* ---------------------------------------------------------------------- */

/* uniform integer in [0, n) */
static int
next_int (guint64 *x, int n)
{
  return (int) (((double) next_uniform (x) + 1.0) * 0.5 * n) % n;
}

/* n characters of pseudo-words from LSC_DEMO_HAYSTACK_CHARS. */
static GString *
haystack (int n, guint64 seed)
{
  GString *s = g_string_sized_new (n + 16);
  guint64 x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  int words_left = 0;

  x |= 1;
  while ((int) s->len < n)
    {
      if (words_left == 0)
        words_left = 6 + next_int (&x, 9);
      int len = 2 + next_int (&x, 7);
      for (int i = 0; i < len; i++)
        g_string_append_c (s, (char) ('a' + next_int (&x, 26)));
      words_left--;
      if (words_left == 0)
        g_string_append (s, ". ");
      else if (next_int (&x, 8) == 0)
        g_string_append (s, ", ");
      else
        g_string_append_c (s, ' ');
    }
  g_string_truncate (s, n);
  return s;
}

static gboolean
needle_ok (const char *needle, GError **error)
{
  gsize n = strlen (needle);

  for (gsize i = 0; i < n; i++)
    {
      guchar c = (guchar) needle[i];
      if (c < '!' || c > '~' || strchr (LSC_DEMO_HAYSTACK_CHARS, c) != NULL)
        {
          g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                       "needle '%s': character %" G_GSIZE_FORMAT " (0x%02x) is not printable "
                       "ASCII outside the haystack's characters \"%s\"", needle, i, c,
                       LSC_DEMO_HAYSTACK_CHARS);
          return FALSE;
        }
      if (i > 0 && needle[i] == needle[i - 1])
        {
          g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                       "needle '%s': the character '%c' is doubled", needle, needle[i]);
          return FALSE;
        }
      for (gsize j = 0; j + 1 < i; j++)
        if (needle[j] == needle[i - 1] && needle[j + 1] == needle[i])
          {
            g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                         "needle '%s': the bigram '%c%c' occurs twice", needle, needle[i - 1],
                         needle[i]);
            return FALSE;
          }
    }
  return TRUE;
}

gboolean
lsc_demo_needle_prompt (const char *needle, int cue_len, int haystack_len, double depth,
                        guint64 seed, LscDemoNeedlePrompt *out, GError **error)
{
  g_return_val_if_fail (needle != NULL && out != NULL, FALSE);
  g_return_val_if_fail (haystack_len >= 0, FALSE);

  memset (out, 0, sizeof *out);
  int needle_len = (int) strlen (needle);
  if (!needle_ok (needle, error))
    return FALSE;
  if (cue_len < 1 || cue_len >= needle_len)
    {
      g_set_error (error, LSC_TOKENIZER_ERROR, LSC_TOKENIZER_ERROR_INVALID_TEXT,
                   "needle '%s': a cue of %d characters must be in [1, %d)", needle, cue_len,
                   needle_len);
      return FALSE;
    }

  g_autoptr(GString) hay = haystack (haystack_len, seed);
  int at = (int) (CLAMP (depth, 0.0, 1.0) * haystack_len);
  while (at > 0 && at < haystack_len && hay->str[at - 1] != ' ')
    at--;   /* back to the start of a word */

  GString *text = g_string_sized_new (haystack_len + 2 * needle_len + 4);
  g_string_append_len (text, hay->str, at);
  g_string_append (text, needle);
  g_string_append_c (text, '\n');
  g_string_append_len (text, hay->str + at, haystack_len - at);
  g_string_append_c (text, '\n');
  g_string_append_len (text, needle, cue_len);

  out->needle_offset = at;
  out->needle_len = needle_len;
  out->cue_len = cue_len;
  out->text = g_string_free (text, FALSE);
  return TRUE;
}

void
lsc_demo_needle_prompt_clear (LscDemoNeedlePrompt *prompt)
{
  if (prompt != NULL)
    g_clear_pointer (&prompt->text, g_free);
}
