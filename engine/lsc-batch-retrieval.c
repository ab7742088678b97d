/* SPDX-License-Identifier: MIT
 *
 * The "retrieval" part of a batch job: retrieval-head detection over a
 * needle-in-a-haystack grid, and head ablation. Schema (documented in the
 * README):
 *
 *   "retrieval": {
 *     "haystack_file": "path",        default data/haystack.txt
 *     "needles": [{"needle": s, "question": s, "answer": s}, ...],
 *                                     default the reference's San Francisco needle
 *     "context_lengths": [int, ...] | {"min": a, "max": b, "n": k},   required
 *     "depths": [number, ...] | {"min": a, "max": b, "n": k},
 *                                     default {"min": 0, "max": 100, "n": 10}
 *     "buffer_tokens": int,           default 200
 *     "cue_tokens": int,              default 0
 *     "chat_template": "auto" | "none" | "chatml" | "llama3" | "mistral",  default "auto"
 *     "max_tokens": int,              default 50
 *     "recall_threshold": number,     default 0.5
 *     "score_threshold": number,      default 0.1
 *     "ablation": [K, ...],           default []
 *     "seed": int,                    default 0
 *     "budget_mib": int               default 4096
 *   }
 *
 * {"min": a, "max": b, "n": k} is the reference's round(linspace(a, b, k)).
 *
 * Arrays go to tensors.safetensors:
 *   retrieval.scores                F32 [n_layers, n_heads]  mean score, NaN when no sample passed
 *   retrieval.sample_scores         F32 [n_samples, n_layers, n_heads]
 *   retrieval.S.argmax              I32 [steps, n_layers, n_heads]  sample S's argmax key
 *   retrieval.S.max_prob            F32 [steps, n_layers, n_heads]
 *   retrieval.S.in_needle, .copy_hit I32 [steps, n_layers, n_heads]  0 / 1
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-batch-private.h"
#include "lsc-error.h"
#include "lsc-json.h"
#include "lsc-needle.h"
#include "lsc-retrieval.h"

static const char default_needle[] =
  "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny "
  "day.\n";
static const char default_question[] = "What is the best thing to do in San Francisco?";
static const char default_answer[] = "eat a sandwich and sit in Dolores Park on a sunny day";

void
_lsc_job_retrieval_clear (LscJobRetrieval *r)
{
  g_clear_pointer (&r->haystack_file, g_free);
  g_clear_pointer (&r->needles, g_ptr_array_unref);
  g_clear_pointer (&r->context_lengths, g_array_unref);
  g_clear_pointer (&r->depths, g_array_unref);
  g_clear_pointer (&r->ablation, g_array_unref);
}

static gboolean
invalid (GError **error, const char *job, const char *path, const char *what, json_object *found)
{
  g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
               "%s: $.retrieval%s: expected %s, found %s", job, path, what,
               found == NULL ? "null" : json_object_to_json_string (found));
  return FALSE;
}

static gboolean
is_number (json_object *v)
{
  return json_object_is_type (v, json_type_int) || json_object_is_type (v, json_type_double);
}

static gboolean
int_in (json_object *v, gint64 min, gint64 max)
{
  return json_object_is_type (v, json_type_int) && json_object_get_int64 (v) >= min
         && json_object_get_int64 (v) <= max;
}

static gboolean
num_in (json_object *v, double min, double max)
{
  return is_number (v) && json_object_get_double (v) >= min && json_object_get_double (v) <= max;
}

/* [x, ...] or {"min": a, "max": b, "n": k} -> round(linspace (a, b, k)) */
static gboolean
parse_grid (GArray **out, gboolean integer, double min, double max, const char *job,
            const char *key, json_object *v, GError **error)
{
  g_autofree char *path = g_strconcat (".", key, NULL);
  *out = g_array_new (FALSE, FALSE, integer ? sizeof (int) : sizeof (double));
  const char *what = integer ? "an array of token counts >= 1 or {\"min\", \"max\", \"n\"}"
                             : "an array of percentages in [0, 100] or {\"min\", \"max\", \"n\"}";
  if (json_object_is_type (v, json_type_array))
    {
      if (json_object_array_length (v) == 0)
        return invalid (error, job, path, what, v);
      for (size_t i = 0; i < json_object_array_length (v); i++)
        {
          json_object *e = json_object_array_get_idx (v, i);
          if (integer ? !int_in (e, (gint64) min, (gint64) max) : !num_in (e, min, max))
            {
              g_autofree char *p = g_strdup_printf (".%s[%zu]", key, i);
              return invalid (error, job, p, integer ? "an integer >= 1" : "a number in [0, 100]", e);
            }
          if (integer)
            {
              int x = json_object_get_int (e);
              g_array_append_val (*out, x);
            }
          else
            {
              double x = json_object_get_double (e);
              g_array_append_val (*out, x);
            }
        }
      return TRUE;
    }
  if (!json_object_is_type (v, json_type_object))
    return invalid (error, job, path, what, v);
  json_object *a = NULL, *b = NULL, *n = NULL;
  json_object_object_foreach (v, field, val)
    {
      if (strcmp (field, "min") == 0)
        a = val;
      else if (strcmp (field, "max") == 0)
        b = val;
      else if (strcmp (field, "n") == 0)
        n = val;
      else
        return invalid (error, job, path, what, v);
    }
  if (!num_in (a, min, max) || !num_in (b, min, max) || !int_in (n, 1, 100000)
      || json_object_get_double (a) > json_object_get_double (b))
    return invalid (error, job, path, what, v);
  double lo = json_object_get_double (a), hi = json_object_get_double (b);
  int k = json_object_get_int (n);
  for (int i = 0; i < k; i++)
    {
      double x = k == 1 ? lo : lo + (hi - lo) * i / (k - 1);
      x = nearbyint (x);   /* numpy.round: half to even */
      if (integer)
        {
          int xi = (int) x;
          g_array_append_val (*out, xi);
        }
      else
        g_array_append_val (*out, x);
    }
  return TRUE;
}

gboolean
_lsc_job_retrieval_parse (LscJobRetrieval *r, const char *job, const char *base_dir,
                          json_object *obj, GError **error)
{
  static const char *const known[] = { "haystack_file", "needles", "context_lengths", "depths",
                                       "buffer_tokens", "cue_tokens", "chat_template",
                                       "max_tokens", "recall_threshold", "score_threshold",
                                       "ablation", "seed", "budget_mib", NULL };
  json_object *v;

  memset (r, 0, sizeof *r);
  r->enabled = TRUE;
  r->needles = g_ptr_array_new_with_free_func (g_free);
  r->ablation = g_array_new (FALSE, FALSE, sizeof (int));
  r->buffer_tokens = 200;
  r->chat_template = LSC_CHAT_TEMPLATE_AUTO;
  r->max_tokens = 50;
  r->recall_threshold = 0.5;
  r->score_threshold = 0.1;
  r->budget = (guint64) 4096 << 20;
  if (!json_object_is_type (obj, json_type_object))
    return invalid (error, job, "", "an object", obj);
  if (!lsc_json_check_keys (obj, known, job, "$.retrieval", error))
    return FALSE;

  if ((v = json_object_object_get (obj, "haystack_file")) != NULL)
    {
      if (!json_object_is_type (v, json_type_string) || json_object_get_string_len (v) == 0)
        return invalid (error, job, ".haystack_file", "a file name", v);
      r->haystack_file = g_canonicalize_filename (json_object_get_string (v), base_dir);
    }
  else
    r->haystack_file = lsc_needle_default_haystack_path ();
  if (!g_file_test (r->haystack_file, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.retrieval.haystack_file: %s: no such file", job, r->haystack_file);
      return FALSE;
    }

  if ((v = json_object_object_get (obj, "needles")) != NULL)
    {
      if (!json_object_is_type (v, json_type_array) || json_object_array_length (v) == 0)
        return invalid (error, job, ".needles", "a non-empty array of needles", v);
      for (size_t i = 0; i < json_object_array_length (v); i++)
        {
          static const char *const fields[] = { "needle", "question", "answer" };
          json_object *e = json_object_array_get_idx (v, i);
          g_autofree char *p = g_strdup_printf (".needles[%zu]", i);
          const char *what = "{\"needle\": text, \"question\": text, \"answer\": text}";
          if (!json_object_is_type (e, json_type_object) || json_object_object_length (e) != 3)
            return invalid (error, job, p, what, e);
          for (int f = 0; f < 3; f++)
            {
              json_object *s = json_object_object_get (e, fields[f]);
              if (!json_object_is_type (s, json_type_string) || json_object_get_string_len (s) == 0)
                return invalid (error, job, p, what, e);
              g_ptr_array_add (r->needles, g_strdup (json_object_get_string (s)));
            }
        }
    }
  else
    {
      g_ptr_array_add (r->needles, g_strdup (default_needle));
      g_ptr_array_add (r->needles, g_strdup (default_question));
      g_ptr_array_add (r->needles, g_strdup (default_answer));
    }

  if ((v = json_object_object_get (obj, "context_lengths")) == NULL)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.retrieval.context_lengths: missing (expected an array of token counts)",
                   job);
      return FALSE;
    }
  if (!parse_grid (&r->context_lengths, TRUE, 1, 1 << 24, job, "context_lengths", v, error))
    return FALSE;
  if ((v = json_object_object_get (obj, "depths")) != NULL)
    {
      if (!parse_grid (&r->depths, FALSE, 0, 100, job, "depths", v, error))
        return FALSE;
    }
  else
    {
      r->depths = g_array_new (FALSE, FALSE, sizeof (double));
      for (int i = 0; i < 10; i++)
        {
          double d = nearbyint (100.0 * i / 9);
          g_array_append_val (r->depths, d);
        }
    }

#define INT_KEY(name, field, lo, hi, what) \
  if ((v = json_object_object_get (obj, name)) != NULL) \
    { \
      if (!int_in (v, lo, hi)) \
        return invalid (error, job, "." name, what, v); \
      r->field = json_object_get_int (v); \
    }
  INT_KEY ("buffer_tokens", buffer_tokens, 0, 1 << 24, "an integer >= 0");
  INT_KEY ("cue_tokens", cue_tokens, 0, 1 << 20, "an integer >= 0");
  INT_KEY ("max_tokens", max_tokens, 1, 1 << 20, "an integer >= 1");
#undef INT_KEY
  if ((v = json_object_object_get (obj, "recall_threshold")) != NULL)
    {
      if (!num_in (v, 0, 1))
        return invalid (error, job, ".recall_threshold", "a number in [0, 1]", v);
      r->recall_threshold = json_object_get_double (v);
    }
  if ((v = json_object_object_get (obj, "score_threshold")) != NULL)
    {
      if (!num_in (v, 0, 1e6))
        return invalid (error, job, ".score_threshold", "a number >= 0", v);
      r->score_threshold = json_object_get_double (v);
    }
  if ((v = json_object_object_get (obj, "chat_template")) != NULL)
    {
      LscChatTemplate t;
      if (!json_object_is_type (v, json_type_string)
          || !lsc_chat_template_from_name (json_object_get_string (v), &t))
        return invalid (error, job, ".chat_template",
                        "\"auto\", \"none\", \"chatml\", \"llama3\" or \"mistral\"", v);
      r->chat_template = t;
    }
  if ((v = json_object_object_get (obj, "ablation")) != NULL)
    {
      if (!json_object_is_type (v, json_type_array))
        return invalid (error, job, ".ablation", "an array of head counts K >= 1", v);
      for (size_t i = 0; i < json_object_array_length (v); i++)
        {
          json_object *e = json_object_array_get_idx (v, i);
          if (!int_in (e, 1, 1 << 20))
            {
              g_autofree char *p = g_strdup_printf (".ablation[%zu]", i);
              return invalid (error, job, p, "a head count K >= 1", e);
            }
          int k = json_object_get_int (e);
          g_array_append_val (r->ablation, k);
        }
    }
  if ((v = json_object_object_get (obj, "seed")) != NULL)
    {
      if (!int_in (v, 0, G_MAXINT64))
        return invalid (error, job, ".seed", "an integer >= 0", v);
      r->seed = (guint64) json_object_get_int64 (v);
    }
  if ((v = json_object_object_get (obj, "budget_mib")) != NULL)
    {
      if (!int_in (v, 1, 1 << 24))
        return invalid (error, job, ".budget_mib", "a size in MiB >= 1", v);
      r->budget = (guint64) json_object_get_int64 (v) << 20;
    }
  return TRUE;
}

/* ---- running ---- */

typedef struct {
  int needle, length_index, depth_index;
  LscNeedlePrompt *prompt;
} GridPoint;

static json_object *
heads_json (const int *heads, int n, int H)
{
  json_object *a = json_object_new_array ();
  for (int i = 0; i < n; i++)
    {
      g_autofree char *k = g_strdup_printf ("%d-%d", heads[i] / H, heads[i] % H);
      json_object_array_add (a, json_object_new_string (k));
    }
  return a;
}

static json_object *
span_json (int a, int b)
{
  if (a < 0)
    return NULL;
  json_object *o = json_object_new_array ();
  json_object_array_add (o, json_object_new_int (a));
  json_object_array_add (o, json_object_new_int (b));
  return o;
}

static json_object *
sample_json (const GridPoint *g, const LscRetrievalSample *s, int L, int H)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "needle", json_object_new_int (g->needle));
  json_object_object_add (o, "context_length", json_object_new_int (g->prompt->context_length));
  json_object_object_add (o, "depth_percent", lsc_json_double (g->prompt->depth_percent));
  json_object_object_add (o, "prompt_tokens", json_object_new_int ((int) g->prompt->tokens->len));
  json_object_object_add (o, "insertion", json_object_new_int (g->prompt->insertion));
  json_object_object_add (o, "needle_span", span_json (g->prompt->needle_start, g->prompt->needle_end));
  json_object_object_add (o, "answer_span", span_json (g->prompt->answer_start, g->prompt->answer_end));
  json_object_object_add (o, "response", json_object_new_string (s->response));
  json_object *toks = json_object_new_array ();
  for (guint i = 0; i < s->tokens->len; i++)
    json_object_array_add (toks, json_object_new_int (g_array_index (s->tokens, gint32, i)));
  json_object_object_add (o, "tokens", toks);
  json_object_object_add (o, "recall", lsc_json_double (s->recall));
  json_object_object_add (o, "passed", json_object_new_boolean (s->passed));
  if (s->scores != NULL)
    {
      json_object_object_add (o, "copy_events", json_object_new_int (s->copy_events));
      /* the heads with a copy event in this sample, best first (at most 10) */
      json_object *top = json_object_new_array ();
      g_autofree int *order = g_new (int, L * H);
      int m = 0;
      for (int i = 0; i < L * H; i++)
        if (s->scores[i] > 0)
          order[m++] = i;
      for (int a = 0; a < m; a++)
        for (int b = a + 1; b < m; b++)
          if (s->scores[order[b]] > s->scores[order[a]])
            {
              int t = order[a];
              order[a] = order[b];
              order[b] = t;
            }
      for (int i = 0; i < MIN (m, 10); i++)
        {
          json_object *h = json_object_new_object ();
          json_object_object_add (h, "layer", json_object_new_int (order[i] / H));
          json_object_object_add (h, "head", json_object_new_int (order[i] % H));
          json_object_object_add (h, "score", lsc_json_double (s->scores[order[i]]));
          json_object_array_add (top, h);
        }
      json_object_object_add (o, "top_heads", top);
    }
  return o;
}

/* Runs every grid point with heads masked (no capture); mean recall and pass rate. */
static gboolean
run_masked (GridPoint *grid, int n, LscModel *model, const LscTokenizer *tok,
            const LscJobRetrieval *r, const LscRetrievalParams *base, LscJobBackend *backend,
            const int *heads, int n_heads, double *recall, double *pass_rate,
            json_object *per_sample, LscCancelFunc cancel, gpointer cancel_data, GError **error)
{
  LscRetrievalParams p = *base;
  p.capture = FALSE;
  p.masked_heads = heads;
  p.n_masked = n_heads;
  double sum = 0;
  int passed = 0;
  for (int i = 0; i < n; i++)
    {
      g_autoptr(LscRetrievalSample) s =
        lsc_retrieval_run (model, tok, grid[i].prompt, g_ptr_array_index (r->needles, 3 * grid[i].needle + 2),
                           &p, cancel, cancel_data, error);
      if (s == NULL)
        return FALSE;
      _lsc_job_backend_record (backend, s->backend, s->backend_note);
      sum += s->recall;
      passed += s->passed;
      json_object_array_add (per_sample, lsc_json_double (s->recall));
    }
  *recall = n > 0 ? sum / n : NAN;
  *pass_rate = n > 0 ? (double) passed / n : NAN;
  return TRUE;
}

static gboolean
run_retrieval (const LscJobRetrieval *r, LscModel *model, const LscTokenizer *tok, int threads,
               gboolean reference, LscJobBackend *backend, gboolean bos, gboolean stop_at_eos,
               const char *output_dir, json_object *results, LscTensorWriter *writer,
               GridPoint **grid_out, LscRetrievalSample ***samples_out, int *n_out,
               LscCancelFunc cancel, gpointer cancel_data, GError **error)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  int L = c->n_layers, H = c->n_heads;
  json_object *sec = json_object_new_object ();
  json_object_object_add (results, "retrieval", sec);

  g_autofree char *haystack = NULL;
  if (!g_file_get_contents (r->haystack_file, &haystack, NULL, error))
    return FALSE;
  if (!g_utf8_validate (haystack, -1, NULL))
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "%s: not UTF-8 text",
                   r->haystack_file);
      return FALSE;
    }

  LscNeedleParams np;
  lsc_needle_params_init (&np);
  np.chat_template = (LscChatTemplate) r->chat_template;
  np.buffer_tokens = r->buffer_tokens;
  np.cue_tokens = r->cue_tokens;
  np.bos = bos;
  g_autoptr(LscNeedleBuilder) builder = lsc_needle_builder_new (tok, haystack, &np, error);
  if (builder == NULL)
    return FALSE;
  json_object *warnings = json_object_new_array ();
  if (lsc_needle_builder_get_warning (builder) != NULL)
    {
      g_printerr ("longscope: warning: %s\n", lsc_needle_builder_get_warning (builder));
      json_object_array_add (warnings,
                             json_object_new_string (lsc_needle_builder_get_warning (builder)));
    }
  json_object_object_add (sec, "haystack_file", json_object_new_string (r->haystack_file));
  json_object_object_add (sec, "haystack_tokens",
                          json_object_new_int (lsc_needle_builder_get_haystack_tokens (builder)));
  json_object_object_add (sec, "chat_template", json_object_new_string (
                            lsc_chat_template_name (lsc_needle_builder_get_template (builder))));
  json_object_object_add (sec, "warnings", warnings);
  json_object_object_add (sec, "recall_threshold", lsc_json_double (r->recall_threshold));
  json_object_object_add (sec, "score_threshold", lsc_json_double (r->score_threshold));

  /* the grid: needles x lengths x depths */
  int n_needles = (int) r->needles->len / 3;
  int n = n_needles * (int) r->context_lengths->len * (int) r->depths->len;
  GridPoint *grid = *grid_out = g_new0 (GridPoint, n);
  LscRetrievalSample **samples = *samples_out = g_new0 (LscRetrievalSample *, n);
  *n_out = n;
  gboolean ok = TRUE;
  int done = 0;
  for (int k = 0, i = 0; ok && k < n_needles; k++)
    for (guint a = 0; ok && a < r->context_lengths->len; a++)
      for (guint b = 0; ok && b < r->depths->len; b++, i++)
        {
          LscNeedle nd = { g_ptr_array_index (r->needles, 3 * k),
                           g_ptr_array_index (r->needles, 3 * k + 1),
                           g_ptr_array_index (r->needles, 3 * k + 2) };
          grid[i].needle = k;
          grid[i].length_index = (int) a;
          grid[i].depth_index = (int) b;
          grid[i].prompt = lsc_needle_build (builder, &nd, g_array_index (r->context_lengths, int, a),
                                             g_array_index (r->depths, double, b), error);
          if (grid[i].prompt == NULL)
            {
              g_prefix_error (error, "$.retrieval: needle %d, context length %d: ", k,
                              g_array_index (r->context_lengths, int, a));
              ok = FALSE;
            }
          else if (grid[i].prompt->answer_start < 0)
            {
              g_autofree char *w = g_strdup_printf ("needle %d, context length %d, depth %g: the "
                                                    "answer's tokens were not found in the prompt "
                                                    "(scores 0)", k, grid[i].prompt->context_length,
                                                    grid[i].prompt->depth_percent);
              json_object_array_add (warnings, json_object_new_string (w));
            }
        }

  LscRetrievalParams rp;
  lsc_retrieval_params_init (&rp);
  rp.max_tokens = r->max_tokens;
  rp.recall_threshold = r->recall_threshold;
  rp.n_threads = threads;
  rp.reference = reference;
  rp.backend = backend->requested;
  rp.memory_budget = r->budget;
  rp.hooks = r->hooks;
  if (r->ablation->len > 0)
    {
      /* masked runs on the CPU and the others on the GPU would mix two
       * backends' rounding into the ablation's recalls: all on the CPU */
      g_autofree char *why = lsc_retrieval_masks_split_backends (model, &rp);
      if (why != NULL)
        {
          g_autofree char *note = g_strdup_printf ("every run on the CPU, as the ablation's "
                                                   "masked heads: %s", why);
          rp.backend = LSC_BACKEND_CPU;
          _lsc_job_backend_record (backend, LSC_BACKEND_CPU, note);
        }
    }
  if (stop_at_eos)
    {
      rp.eos_id = lsc_tokenizer_get_eos (tok);
      if (lsc_model_get_format (model) == LSC_FORMAT_LLAMA2C)
        rp.bos_id = lsc_tokenizer_get_bos (tok);
    }

  json_object *details = json_object_new_array ();
  json_object_object_add (sec, "samples", details);
  double recall_sum = 0;
  int passed_count = 0;
  for (int i = 0; ok && i < n; i++)
    {
      g_printerr ("longscope: retrieval sample %d / %d (needle %d, %d tokens, depth %g%%)\n",
                  i + 1, n, grid[i].needle, (int) grid[i].prompt->tokens->len,
                  grid[i].prompt->depth_percent);
      samples[i] = lsc_retrieval_run (model, tok, grid[i].prompt,
                                      g_ptr_array_index (r->needles, 3 * grid[i].needle + 2), &rp,
                                      cancel, cancel_data, error);
      if (samples[i] == NULL)
        {
          /* which run of the grid stopped (a device error names only its operation) */
          g_prefix_error (error, "$.retrieval: retrieval sample %d (needle %d, %d tokens, "
                          "depth %g%%): ", i + 1, grid[i].needle,
                          (int) grid[i].prompt->tokens->len, grid[i].prompt->depth_percent);
          ok = FALSE;
          break;
        }
      _lsc_job_backend_record (backend, samples[i]->backend, samples[i]->backend_note);
      json_object_array_add (details, sample_json (&grid[i], samples[i], L, H));
      recall_sum += samples[i]->recall;
      passed_count += samples[i]->passed;
      done++;
    }

  g_autoptr(LscRetrievalSummary) sum = lsc_retrieval_summarize (samples, done, L, H);
  /* a grid cut short (a device error, Ctrl-C) says so here as well as in
   * the job's status: its scores are of the samples that ran */
  const char *status = !ok ? "incomplete" : sum->n_passed > 0 ? "ok" : "no_successful_samples";
  json_object_object_add (sec, "status", json_object_new_string (status));
  json_object_object_add (sec, "n_samples", json_object_new_int (done));
  json_object_object_add (sec, "n_passed", json_object_new_int (sum->n_passed));
  json_object_object_add (sec, "mean_recall", lsc_json_double (done > 0 ? recall_sum / done : NAN));
  if (sum->n_passed > 0)
    {
      json_object *scores = json_object_new_array ();
      for (int l = 0; l < L; l++)
        {
          json_object *row = json_object_new_array ();
          for (int h = 0; h < H; h++)
            json_object_array_add (row, lsc_json_double (sum->mean[l * H + h]));
          json_object_array_add (scores, row);
        }
      json_object_object_add (sec, "scores", scores);
      json_object *ranking = json_object_new_array ();
      for (int i = 0; i < L * H; i++)
        {
          int k = sum->ranking[i];
          json_object *h = json_object_new_object ();
          json_object_object_add (h, "layer", json_object_new_int (k / H));
          json_object_object_add (h, "head", json_object_new_int (k % H));
          json_object_object_add (h, "score", lsc_json_double (sum->mean[k]));
          json_object_array_add (ranking, h);
        }
      json_object_object_add (sec, "ranking", ranking);
      json_object_object_add (sec, "n_heads_above_threshold",
                              json_object_new_int (lsc_retrieval_summary_count_above (sum, r->score_threshold)));
    }
  else
    {
      json_object_object_add (sec, "scores", NULL);
      json_object_object_add (sec, "ranking", NULL);
      json_object_object_add (sec, "n_heads_above_threshold", NULL);
    }

  /* the reference's file, only for a finished grid: its layout has no
   * place to say that samples are missing, and a reader would take the
   * scores of the samples that ran for the grid's */
  if (ok)
    {
      g_autoptr(json_object) ref = lsc_retrieval_reference_json (samples, done, L, H);
      g_autofree char *ref_path = g_build_filename (output_dir, "retrieval_heads.json", NULL);
      if (!_lsc_batch_make_output_dir (output_dir, error)
          || !lsc_json_write_file (ref, ref_path, error))
        return FALSE;
      json_object_object_add (sec, "reference_file",
                              json_object_new_string ("retrieval_heads.json"));
    }

  {
    gint64 shape[3] = { L, H, 0 };
    g_autofree float *f = g_new (float, (gsize) L * H);
    for (int i = 0; i < L * H; i++)
      f[i] = (float) sum->mean[i];
    lsc_tensor_writer_add_f32 (writer, "retrieval.scores", 2, shape, f);
    if (done > 0)
      {
        gint64 s3[3] = { done, L, H };
        g_autofree float *all = g_new (float, (gsize) done * L * H);
        for (int i = 0; i < done; i++)
          for (int k = 0; k < L * H; k++)
            all[(gsize) i * L * H + k] = (float) samples[i]->scores[k];
        lsc_tensor_writer_add_f32 (writer, "retrieval.sample_scores", 3, s3, all);
      }
    for (int i = 0; i < done; i++)
      {
        const LscRetrievalTrace *t = samples[i]->trace;
        if (t->n_steps == 0)
          continue;
        gsize m = (gsize) t->n_steps * L * H;
        gint64 st[3] = { t->n_steps, L, H };
        g_autofree gint32 *in = g_new (gint32, m), *cp = g_new (gint32, m);
        for (gsize j = 0; j < m; j++)
          {
            in[j] = t->in_span[j];
            cp[j] = t->copy_hit[j];
          }
        g_autofree char *n1 = g_strdup_printf ("retrieval.%d.argmax", i);
        g_autofree char *n2 = g_strdup_printf ("retrieval.%d.max_prob", i);
        g_autofree char *n3 = g_strdup_printf ("retrieval.%d.in_needle", i);
        g_autofree char *n4 = g_strdup_printf ("retrieval.%d.copy_hit", i);
        lsc_tensor_writer_add_i32 (writer, n1, 3, st, t->argmax);
        lsc_tensor_writer_add_f32 (writer, n2, 3, st, t->max_prob);
        lsc_tensor_writer_add_i32 (writer, n3, 3, st, in);
        lsc_tensor_writer_add_i32 (writer, n4, 3, st, cp);
      }
  }

  /* ablation: top-K retrieval heads vs K random non-retrieval heads */
  if (r->ablation->len > 0)
    {
      json_object *abl = json_object_new_object ();
      json_object_object_add (results, "ablation", abl);
      json_object_object_add (abl, "seed", json_object_new_int64 ((gint64) r->seed));
      json_object_object_add (abl, "baseline_recall", lsc_json_double (done > 0 ? recall_sum / done : NAN));
      json_object_object_add (abl, "baseline_pass_rate",
                              lsc_json_double (done > 0 ? (double) passed_count / done : NAN));
      json_object *ks = json_object_new_array ();
      json_object_object_add (abl, "k", ks);
      if (!ok || sum->n_passed == 0)
        {
          json_object_object_add (abl, "status", json_object_new_string (
                                    ok ? "skipped: no sample passed the recall filter, no ranking"
                                       : "skipped: detection did not finish"));
          return ok;
        }
      json_object_object_add (abl, "status", json_object_new_string ("ok"));
      for (guint a = 0; ok && a < r->ablation->len; a++)
        {
          int K = MIN (g_array_index (r->ablation, int, a), L * H);
          int n_rand = 0;
          g_autofree int *rand_heads = lsc_retrieval_random_heads (sum, K, K, r->score_threshold,
                                                                   r->seed + (guint64) K, &n_rand);
          double rr = NAN, rp_rate = NAN, xr = NAN, xp = NAN;
          json_object *e = json_object_new_object ();
          json_object_array_add (ks, e);
          json_object *per_top = json_object_new_array (), *per_rand = json_object_new_array ();
          json_object_object_add (e, "k", json_object_new_int (K));
          json_object_object_add (e, "retrieval_heads", heads_json (sum->ranking, K, H));
          json_object_object_add (e, "random_heads", heads_json (rand_heads, n_rand, H));
          g_printerr ("longscope: ablation K = %d: top retrieval heads\n", K);
          ok = run_masked (grid, done, model, tok, r, &rp, backend, sum->ranking, K, &rr,
                           &rp_rate, per_top, cancel, cancel_data, error);
          if (ok)
            {
              g_printerr ("longscope: ablation K = %d: %d random heads\n", K, n_rand);
              ok = run_masked (grid, done, model, tok, r, &rp, backend, rand_heads, n_rand, &xr,
                               &xp, per_rand, cancel, cancel_data, error);
            }
          json_object_object_add (e, "retrieval_recall", lsc_json_double (rr));
          json_object_object_add (e, "retrieval_pass_rate", lsc_json_double (rp_rate));
          json_object_object_add (e, "random_recall", lsc_json_double (xr));
          json_object_object_add (e, "random_pass_rate", lsc_json_double (xp));
          json_object_object_add (e, "retrieval_sample_recall", per_top);
          json_object_object_add (e, "random_sample_recall", per_rand);
        }
    }
  return ok;
}

gboolean
_lsc_job_retrieval_run (const LscJobRetrieval *r, LscModel *model, const LscTokenizer *tok,
                        int threads, gboolean reference, LscJobBackend *backend, gboolean bos,
                        gboolean stop_at_eos, const char *output_dir, json_object *results,
                        LscTensorWriter *writer, LscCancelFunc cancel, gpointer cancel_data,
                        GError **error)
{
  GridPoint *grid = NULL;
  LscRetrievalSample **samples = NULL;
  int n = 0;
  gboolean ok = run_retrieval (r, model, tok, threads, reference, backend, bos, stop_at_eos,
                               output_dir, results, writer, &grid, &samples, &n, cancel,
                               cancel_data, error);
  for (int i = 0; i < n; i++)
    {
      lsc_retrieval_sample_free (samples[i]);
      lsc_needle_prompt_free (grid[i].prompt);
    }
  g_free (samples);
  g_free (grid);
  return ok;
}
