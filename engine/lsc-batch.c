/* SPDX-License-Identifier: MIT
 *
 * The batch runner behind `longscope --batch job.json [--output DIR]`.
 * The job schema (version 1) is documented in the README; its keys are
 * listed in job_keys[] below with their types and ranges.
 *
 * Output: DIR/results.json, written atomically (temporary file + rename).
 * Progress goes to stderr. SIGINT stops the run at the next layer boundary
 * and still writes a valid result marked "status": "interrupted".
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lsc-batch.h"
#include "lsc-batch-private.h"
#include "lsc-demo.h"
#include "lsc-error.h"
#include "lsc-generate.h"
#include "lsc-json.h"
#include "lsc-model.h"
#include "lsc-plugin.h"
#include "lsc-session.h"
#include "lsc-tokenizer.h"

#define SCHEMA_VERSION 1

enum {
  EXIT_DONE = 0,
  EXIT_RUNTIME = 1,
  EXIT_INVALID = 2,
  EXIT_LOAD = 3,
  EXIT_INTERRUPTED = 130,
};

typedef struct {
  char *name;              /* the job file as given, for messages */
  char *base_dir;          /* relative paths are resolved here */
  json_object *root;       /* (owned) the job as read */

  char *model;             /* resolved paths */
  char *tokenizer;         /* NULL: found next to the model */
  char *prompt;            /* NULL: no prompt (describe the model only) */
  int threads;
  int n_ctx;
  LscJobBackend backend;   /* asked for, and what the sessions ran on */
  gboolean bos;
  gboolean reference;
  gboolean score;
  gboolean stop_at_eos;
  LscGenerateParams gen;
  LscJobCapture capture;
  LscPluginStack *plugins; /* (owned) as the job lists them; empty without "plugins" */
  GArray *figures;         /* (element-type LscJobFigure) or NULL */
  LscJobRetrieval retrieval;   /* lsc-batch-retrieval.c */
  LscJobSsm ssm;               /* lsc-batch-ssm.c */
  LscJobKv kv;                 /* lsc-batch-kv.c */
} LscJob;

static void
job_clear (LscJob *job)
{
  g_free (job->name);
  g_free (job->base_dir);
  json_object_put (job->root);
  g_free (job->model);
  g_free (job->tokenizer);
  g_free (job->prompt);
  g_free (job->backend.note);
  _lsc_job_capture_clear (&job->capture);
  lsc_plugin_stack_free (job->plugins);
  _lsc_job_figures_free (job->figures);
  _lsc_job_retrieval_clear (&job->retrieval);
  _lsc_job_ssm_clear (&job->ssm);
  _lsc_job_kv_clear (&job->kv);
}

/* ---- reading the job ---- */

typedef enum { KEY_INT, KEY_NUMBER, KEY_BOOL, KEY_STRING, KEY_OBJECT, KEY_ARRAY,
               KEY_OBJECT_OR_ARRAY } KeyType;

typedef struct {
  const char *key;
  KeyType type;
  double min, max;   /* for numbers */
} JobKey;

static const JobKey job_keys[] = {
  { "schema_version", KEY_INT, SCHEMA_VERSION, SCHEMA_VERSION },
  { "model", KEY_STRING },
  { "tokenizer", KEY_STRING },
  { "backend", KEY_STRING },
  { "threads", KEY_INT, 0, 1024 },
  { "n_ctx", KEY_INT, 0, 1 << 24 },
  { "prompt", KEY_STRING },
  { "prompt_file", KEY_STRING },
  { "bos", KEY_BOOL },
  { "max_tokens", KEY_INT, 0, 1 << 24 },
  { "temperature", KEY_NUMBER, 0, 100 },
  { "top_k", KEY_INT, 0, 1 << 24 },
  { "top_p", KEY_NUMBER, 0, 1 },
  { "seed", KEY_INT, 0, 9007199254740991.0 },
  { "stop_at_eos", KEY_BOOL },
  { "score", KEY_BOOL },
  { "reference", KEY_BOOL },
  { "capture", KEY_OBJECT },
  { "plugins", KEY_ARRAY },
  { "figures", KEY_ARRAY },
  { "retrieval", KEY_OBJECT },
  { "ssm", KEY_OBJECT },
  { "kv", KEY_OBJECT_OR_ARRAY },
};

static const char *
type_name (KeyType t)
{
  switch (t)
    {
    case KEY_INT: return "an integer";
    case KEY_NUMBER: return "a number";
    case KEY_BOOL: return "true or false";
    case KEY_STRING: return "a string";
    case KEY_OBJECT: return "an object";
    case KEY_ARRAY: return "an array";
    case KEY_OBJECT_OR_ARRAY: return "an object or an array";
    }
  return "?";
}

static const char *
json_type_label (json_object *v)
{
  return v == NULL ? "null" : json_type_to_name (json_object_get_type (v));
}

static gboolean
check_key (const LscJob *job, const JobKey *k, json_object *v, GError **error)
{
  gboolean ok;
  switch (k->type)
    {
    case KEY_INT: ok = json_object_is_type (v, json_type_int); break;
    case KEY_NUMBER: ok = json_object_is_type (v, json_type_int) || json_object_is_type (v, json_type_double); break;
    case KEY_BOOL: ok = json_object_is_type (v, json_type_boolean); break;
    case KEY_STRING: ok = json_object_is_type (v, json_type_string); break;
    case KEY_OBJECT: ok = json_object_is_type (v, json_type_object); break;
    case KEY_ARRAY: ok = json_object_is_type (v, json_type_array); break;
    case KEY_OBJECT_OR_ARRAY:
      ok = json_object_is_type (v, json_type_object) || json_object_is_type (v, json_type_array);
      break;
    default: ok = FALSE;
    }
  if (!ok)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, "%s: $.%s: expected %s, found %s",
                   job->name, k->key, type_name (k->type), json_type_label (v));
      return FALSE;
    }
  if (k->type == KEY_INT || k->type == KEY_NUMBER)
    {
      double d = json_object_get_double (v);
      if (!(d >= k->min && d <= k->max))
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.%s: expected a value in [%g, %g], found %s", job->name, k->key,
                       k->min, k->max, json_object_to_json_string (v));
          return FALSE;
        }
    }
  return TRUE;
}

static json_object *
get (const LscJob *job, const char *key)
{
  json_object *v = NULL;
  json_object_object_get_ex (job->root, key, &v);
  return v;
}

static char *
resolve (const LscJob *job, const char *path)
{
  /* built-in demo models are names, not files */
  if (lsc_demo_match_path (path) != NULL)
    return g_strdup (path);
  /* absolute and without ../ so that provenance names the file unambiguously */
  return g_canonicalize_filename (path, job->base_dir);
}

static gboolean
job_parse (LscJob *job, const char *text, gsize len, GError **error)
{
  json_object *v;

  job->root = lsc_json_parse (job->name, text, len, LSC_JOB_ERROR, LSC_JOB_ERROR_SYNTAX, error);
  if (job->root == NULL)
    return FALSE;
  if (!json_object_is_type (job->root, json_type_object))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $: expected an object, found %s", job->name, json_type_label (job->root));
      return FALSE;
    }

  /* every key known and well-typed */
  json_object_object_foreach (job->root, key, val)
    {
      const JobKey *k = NULL;
      for (gsize i = 0; i < G_N_ELEMENTS (job_keys); i++)
        if (strcmp (job_keys[i].key, key) == 0)
          k = &job_keys[i];
      if (k == NULL)
        {
          g_autoptr(GString) list = g_string_new (NULL);
          for (gsize i = 0; i < G_N_ELEMENTS (job_keys); i++)
            g_string_append_printf (list, i ? ", %s" : "%s", job_keys[i].key);
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.%s: unknown key (expected one of %s)", job->name, key, list->str);
          return FALSE;
        }
      if (!check_key (job, k, val, error))
        return FALSE;
    }

  if ((v = get (job, "model")) == NULL || json_object_get_string_len (v) == 0)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.model: missing (expected the path of a model)", job->name);
      return FALSE;
    }
  job->model = resolve (job, json_object_get_string (v));
  if ((v = get (job, "tokenizer")) != NULL)
    job->tokenizer = resolve (job, json_object_get_string (v));

  /* the GPU when there is one */
  job->backend.requested = LSC_BACKEND_AUTO;
  if ((v = get (job, "backend")) != NULL
      && !lsc_backend_from_string (json_object_get_string (v), &job->backend.requested))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.backend: expected \"cpu\", \"cuda\" or \"auto\", found %s", job->name,
                   json_object_to_json_string (v));
      return FALSE;
    }

  if (get (job, "prompt") != NULL && get (job, "prompt_file") != NULL)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.prompt_file: give either prompt or prompt_file, not both", job->name);
      return FALSE;
    }
  if ((v = get (job, "prompt")) != NULL)
    job->prompt = g_strdup (json_object_get_string (v));
  if ((v = get (job, "prompt_file")) != NULL)
    {
      g_autofree char *path = resolve (job, json_object_get_string (v));
      g_autoptr(GError) local = NULL;
      if (!g_file_get_contents (path, &job->prompt, NULL, &local))
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, "%s: $.prompt_file: %s",
                       job->name, local->message);
          return FALSE;
        }
    }

  lsc_generate_params_init (&job->gen);
  job->threads = (v = get (job, "threads")) ? json_object_get_int (v) : 0;
  job->n_ctx = (v = get (job, "n_ctx")) ? json_object_get_int (v) : 0;
  job->bos = (v = get (job, "bos")) ? json_object_get_boolean (v) : TRUE;
  job->reference = (v = get (job, "reference")) ? json_object_get_boolean (v) : FALSE;
  job->score = (v = get (job, "score")) ? json_object_get_boolean (v) : FALSE;
  job->stop_at_eos = (v = get (job, "stop_at_eos")) ? json_object_get_boolean (v) : TRUE;
  if ((v = get (job, "max_tokens")) != NULL)
    job->gen.max_tokens = json_object_get_int (v);
  if ((v = get (job, "temperature")) != NULL)
    job->gen.sampler.temperature = (float) json_object_get_double (v);
  if ((v = get (job, "top_k")) != NULL)
    job->gen.sampler.top_k = json_object_get_int (v);
  if ((v = get (job, "top_p")) != NULL)
    job->gen.sampler.top_p = (float) json_object_get_double (v);
  if ((v = get (job, "seed")) != NULL)
    job->gen.sampler.seed = (guint64) json_object_get_int64 (v);
  if ((v = get (job, "capture")) != NULL)
    {
      if (!_lsc_job_capture_parse (&job->capture, job->name, v, error))
        return FALSE;
      if (job->prompt == NULL)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.capture: capturing attention needs a prompt or prompt_file", job->name);
          return FALSE;
        }
    }
  if ((v = get (job, "ssm")) != NULL)
    {
      if (!_lsc_job_ssm_parse (&job->ssm, job->name, v, error))
        return FALSE;
      if (job->prompt == NULL)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.ssm: recording Δ needs a prompt or prompt_file", job->name);
          return FALSE;
        }
    }
  if ((v = get (job, "kv")) != NULL)
    {
      if (!_lsc_job_kv_parse (&job->kv, job->name, v, error))
        return FALSE;
      const char *other = job->prompt == NULL           ? NULL
                          : get (job, "capture") != NULL ? "capture"
                          : get (job, "ssm") != NULL     ? "ssm"
                          : get (job, "retrieval") != NULL ? "retrieval"
                          : job->score                   ? "score"
                                                         : NULL;
      if (job->prompt == NULL)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.kv: a KV policy needs a prompt or prompt_file", job->name);
          return FALSE;
        }
      if (other != NULL)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.kv: a KV policy cannot be combined with \"%s\" yet", job->name,
                       other);
          return FALSE;
        }
    }
  job->plugins = lsc_plugin_stack_new ();
  if ((v = get (job, "plugins")) != NULL
      && !lsc_plugin_stack_parse_json (job->plugins, v, job->name, "$.plugins", error))
    return FALSE;
  if ((v = get (job, "figures")) != NULL)
    {
      LscJobFigureNeeds needs;
      job->figures = _lsc_job_figures_parse (job->name, v, &needs, error);
      if (job->figures == NULL)
        return FALSE;
      if (needs.ssm && !job->ssm.enabled)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.figures: SSM figures need an \"ssm\" section", job->name);
          return FALSE;
        }
      if ((needs.kv || needs.kv_compare) && !job->kv.enabled)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.figures: KV figures need a \"kv\" section", job->name);
          return FALSE;
        }
      gboolean compared = FALSE;
      for (int i = 0; i < job->kv.n_runs; i++)
        compared |= job->kv.runs[i].compare;
      if (needs.kv_compare && job->kv.enabled && !compared)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.figures: the kv_kl figure needs \"kv\": {\"compare\": true}",
                       job->name);
          return FALSE;
        }
      if (needs.retrieval && get (job, "retrieval") == NULL)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.figures: retrieval figures need a \"retrieval\" section", job->name);
          return FALSE;
        }
      if (needs.other && get (job, "retrieval") != NULL)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.figures: a retrieval job draws only retrieval_scores, "
                       "retrieval_ranking and ablation figures", job->name);
          return FALSE;
        }
      if (needs.capture && !job->capture.enabled)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.figures: attention figures need a \"capture\" section", job->name);
          return FALSE;
        }
      if (needs.score && !job->score)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.figures: a loss figure needs \"score\": true", job->name);
          return FALSE;
        }
    }
  /* ---- retrieval-head detection (lsc-batch-retrieval.c): builds its own prompts ---- */
  if ((v = get (job, "retrieval")) != NULL)
    {
      if (job->prompt != NULL || job->capture.enabled || job->score)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.retrieval: a retrieval job builds its own prompts (give no prompt, "
                       "prompt_file, capture or score with it)", job->name);
          return FALSE;
        }
      if (!_lsc_job_retrieval_parse (&job->retrieval, job->name, job->base_dir, v, error))
        return FALSE;
    }
  /* ---- end of retrieval ---- */
  if (job->score && job->prompt == NULL)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.score: scoring needs a prompt or prompt_file", job->name);
      return FALSE;
    }
  return TRUE;
}

/* ---- results ---- */

static json_object *
model_to_json (const LscModel *model)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  json_object *o = json_object_new_object ();

  json_object_object_add (o, "architecture", json_object_new_string (lsc_arch_name (c->arch)));
#define INT_FIELD(name) json_object_object_add (o, #name, json_object_new_int (c->name))
  INT_FIELD (vocab_size);
  INT_FIELD (dim);
  INT_FIELD (n_layers);
  INT_FIELD (n_heads);
  INT_FIELD (n_kv_heads);
  INT_FIELD (head_dim);
  INT_FIELD (hidden_dim);
  INT_FIELD (max_position);
  INT_FIELD (sliding_window);
  INT_FIELD (bos_id);
  INT_FIELD (eos_id);
  if (lsc_arch_is_ssm (c->arch))
    {
      INT_FIELD (ssm_d_inner);
      INT_FIELD (ssm_d_state);
      INT_FIELD (ssm_d_conv);
      INT_FIELD (ssm_dt_rank);
    }
  if (c->arch == LSC_ARCH_MAMBA2)
    {
      INT_FIELD (ssm_n_heads);
      INT_FIELD (ssm_head_dim);
      INT_FIELD (ssm_n_groups);
    }
#undef INT_FIELD
  json_object_object_add (o, "norm_eps", lsc_json_double (c->norm_eps));
  json_object_object_add (o, "rope_theta", lsc_json_double (c->rope_theta));
  json_object_object_add (o, "tied_embeddings", json_object_new_boolean (c->tied_embeddings));
  json_object_object_add (o, "n_tensors", json_object_new_int ((int) lsc_model_get_n_tensors (model)));
  return o;
}

static json_object *
provenance_to_json (const LscJob *job, const LscModel *model, int threads)
{
  json_object *o = json_object_new_object ();
  const char *path = lsc_model_get_path (model);
  guint64 bytes = 0;
  gboolean seen[LSC_DTYPE_N_TYPES] = { FALSE };
  json_object *dtypes = json_object_new_array ();

  for (guint i = 0; i < lsc_model_get_n_tensors (model); i++)
    {
      const LscTensor *t = lsc_model_get_tensor (model, i);
      bytes += t->n_bytes;
      if (!seen[t->dtype])
        json_object_array_add (dtypes, json_object_new_string (lsc_dtype_name (t->dtype)));
      seen[t->dtype] = TRUE;
    }
  json_object_object_add (o, "longscope_version", json_object_new_string (PACKAGE_VERSION));
  json_object_object_add (o, "longscope_commit", json_object_new_string (LSC_GIT_COMMIT));
  json_object_object_add (o, "model_path", json_object_new_string (path));
  json_object_object_add (o, "model_format",
                          json_object_new_string (lsc_model_format_name (lsc_model_get_format (model))));
  json_object_object_add (o, "weight_bytes", json_object_new_int64 ((gint64) bytes));
  json_object_object_add (o, "weight_dtypes", dtypes);
  /* what the sessions ran on; null when none ran (a job that only describes the model) */
  json_object_object_add (o, "backend", job->backend.ran
                                          ? json_object_new_string (lsc_backend_name (job->backend.used))
                                          : NULL);
  if (job->backend.note != NULL)
    json_object_object_add (o, "backend_note", json_object_new_string (job->backend.note));
  json_object_object_add (o, "forward", json_object_new_string (job->reference ? "reference" : "fast"));
  json_object_object_add (o, "threads", json_object_new_int (threads));
  json_object_object_add (o, "seed", json_object_new_int64 ((gint64) job->gen.sampler.seed));

  /* the file that defines the model: config.json, or the model file itself (first MiB) */
  g_autofree char *config = g_build_filename (path, "config.json", NULL);
  const char *hashed = g_file_test (config, G_FILE_TEST_IS_REGULAR) ? config : path;
  g_autoptr(GMappedFile) mf = g_mapped_file_new (hashed, FALSE, NULL);
  if (mf != NULL)
    {
      gsize n = MIN (g_mapped_file_get_length (mf), (gsize) 1 << 20);
      g_autofree char *sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256,
                                                          (const guchar *) g_mapped_file_get_contents (mf), n);
      json_object_object_add (o, "config_file", json_object_new_string (hashed));
      json_object_object_add (o, "config_sha256_first_mib", json_object_new_string (sum));
    }
  return o;
}

static json_object *
ints_to_json (const gint32 *v, guint n)
{
  json_object *a = json_object_new_array_ext ((int) n);
  for (guint i = 0; i < n; i++)
    json_object_array_add (a, json_object_new_int (v[i]));
  return a;
}

/* The generated text as it continues the prompt: decoding the new tokens
 * alone would drop the leading space SentencePiece tokenizers strip at the
 * start of a text, so decode prompt + new and cut the prompt's text off. */
static char *
decode_continuation (const LscTokenizer *tok, const GArray *prompt, const GArray *out)
{
  g_autoptr(GArray) all = g_array_sized_new (FALSE, FALSE, sizeof (gint32), prompt->len + out->len);
  g_array_append_vals (all, prompt->data, prompt->len);
  g_array_append_vals (all, out->data, out->len);
  g_autofree char *head = lsc_tokenizer_decode (tok, (const gint32 *) prompt->data, prompt->len);
  g_autofree char *full = lsc_tokenizer_decode (tok, (const gint32 *) all->data, all->len);
  if (g_str_has_prefix (full, head))
    return g_strdup (full + strlen (head));
  return lsc_tokenizer_decode (tok, (const gint32 *) out->data, out->len);
}

/* ---- running ---- */

static volatile sig_atomic_t interrupted;

static void
on_sigint (int sig)
{
  interrupted = 1;
}

static gboolean
is_interrupted (gpointer data)
{
  return interrupted != 0;
}

typedef struct {
  gint64 start_us;
  int max_tokens;
  gboolean tty;
  gint64 first_us;         /* when the first new token came, 0 before */
} Progress;

static gboolean
on_token (int token, int index, gpointer data)
{
  Progress *p = data;
  int done = index + 1;
  if (index == 0)
    p->first_us = g_get_monotonic_time ();
  if (p->tty)
    g_printerr ("\rlongscope: generated %d / %d tokens", done, p->max_tokens);
  else if (done % 32 == 0)
    g_printerr ("longscope: generated %d / %d tokens\n", done, p->max_tokens);
  return TRUE;
}

static double
seconds_since (gint64 start_us)
{
  return (g_get_monotonic_time () - start_us) / 1e6;
}

void
_lsc_job_backend_record (LscJobBackend *backend, LscBackend used, const char *note)
{
  if (!backend->ran)
    {
      backend->ran = TRUE;
      backend->used = used;
    }
  if (note != NULL && backend->note == NULL)
    {
      backend->note = g_strdup (note);
      /* "auto" on a machine without a GPU is no news; "cuda" that could not
       * run the model is */
      if (backend->requested == LSC_BACKEND_CUDA)
        g_printerr ("longscope: warning: running on the CPU: %s\n", note);
    }
}

/* ---- results.json, shared by run_job and lsc_batch_write_record ---- */

/* results.json up to "model": the status comes last (results_write). */
static json_object *
results_new (const LscJob *job, const LscModel *model)
{
  json_object *results = json_object_new_object ();
  json_object_object_add (results, "schema_version", json_object_new_int (SCHEMA_VERSION));
  json_object_object_add (results, "status", NULL);
  json_object_object_add (results, "job", json_object_get (job->root));
  json_object_object_add (results, "model", model_to_json (model));
  /* every parameter, defaults included: the values the run used */
  if (lsc_plugin_stack_get_size (job->plugins) > 0)
    json_object_object_add (results, "plugins", lsc_plugin_stack_to_json (job->plugins));
  return results;
}

/* "text", "tokens" and "logprobs" (lps may be NULL: no "logprobs"), and
 * the prefill and decode timings. Returns the text (owned by results). */
static const char *
results_add_generation (json_object *results, json_object *timings, const LscTokenizer *tok,
                        const GArray *prompt, const GArray *out, const GArray *lps,
                        double prefill_s, double decode_s)
{
  g_autofree char *text = decode_continuation (tok, prompt, out);
  json_object *text_obj = json_object_new_string (text);
  json_object_object_add (results, "text", text_obj);
  json_object_object_add (results, "tokens", ints_to_json ((const gint32 *) out->data, out->len));
  if (lps != NULL)
    json_object_object_add (results, "logprobs", lsc_json_doubles ((const double *) lps->data, lps->len));
  json_object_object_add (timings, "prefill_s", lsc_json_double (prefill_s));
  json_object_object_add (timings, "prefill_tokens", json_object_new_int ((int) prompt->len - 1));
  json_object_object_add (timings, "decode_s", lsc_json_double (decode_s));
  json_object_object_add (timings, "decode_tokens", json_object_new_int ((int) out->len));
  json_object_object_add (timings, "decode_tokens_per_s",
                          lsc_json_double (decode_s > 0 ? out->len / decode_s : NAN));
  return json_object_get_string (text_obj);
}

/* DIR/tensors.safetensors, named in "tensors_file", when the writer has arrays. */
static gboolean
results_add_tensors (LscTensorWriter *writer, const char *output_dir, json_object *results,
                     GError **error)
{
  if (lsc_tensor_writer_get_n_tensors (writer) > 0)
    {
      g_autofree char *tpath = g_build_filename (output_dir, "tensors.safetensors", NULL);
      if (g_mkdir_with_parents (output_dir, 0755) == 0)
        {
          if (!lsc_tensor_writer_write (writer, tpath, error))
            return FALSE;
          json_object_object_add (results, "tensors_file",
                                  json_object_new_string ("tensors.safetensors"));
        }
    }
  return TRUE;
}

/* "attention" and, when the capture makes arrays, DIR/tensors.safetensors
 * named in "tensors_file". FALSE with error set on failure. */
static gboolean
results_add_capture (LscJobCapture *capture, const LscSession *session, const LscModel *model,
                     const char *output_dir, json_object *results, GError **error)
{
  g_autoptr(LscTensorWriter) writer = lsc_tensor_writer_new ();
  if (!_lsc_job_capture_write (capture, session, lsc_model_get_config (model), results, writer,
                               error))
    return FALSE;
  return results_add_tensors (writer, output_dir, results, error);
}

/* "ssm" and, with its tensors, DIR/tensors.safetensors. */
static gboolean
results_add_ssm (const LscJobSsm *ssm, const LscSession *session, int n_prompt,
                 const char *output_dir, json_object *results, GError **error)
{
  g_autoptr(LscTensorWriter) writer = lsc_tensor_writer_new ();
  return _lsc_job_ssm_write (ssm, session, n_prompt, results, writer, error)
         && results_add_tensors (writer, output_dir, results, error);
}

/* The runs of a job's "kv" section: each policy's session (the first is
 * the job's own session, borrowed) and its comparison with the full cache. */
typedef struct {
  int n;                      /* runs done or under way */
  LscSession **sessions;      /* (n_runs) */
  GArray **kl, **agree;       /* (n_runs) double, gboolean */
  json_object **entries;      /* (n_runs) each run's "kv" object so far, until results_add_kv
                                 hands it to the results */
} KvRuns;

static void
kv_runs_clear (KvRuns *r)
{
  for (int i = 1; i < r->n; i++)
    lsc_session_free (r->sessions[i]);
  for (int i = 0; i < r->n; i++)
    {
      g_array_unref (r->kl[i]);
      g_array_unref (r->agree[i]);
      json_object_put (r->entries[i]);
    }
  g_free (r->sessions);
  g_free (r->kl);
  g_free (r->agree);
  g_free (r->entries);
  memset (r, 0, sizeof *r);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (KvRuns, kv_runs_clear)

/* Run i's "kv" object (entry, or a new one; kl NULL when not compared)
 * into results, as "kv" or appended to the list there, and its log into
 * writer. */
static gboolean
results_add_kv_run (const LscJob *job, int i, const LscSession *session, int n_prompt,
                    const double *kl, const gboolean *agree, int n_compared, json_object *entry,
                    json_object *results, LscTensorWriter *writer, GError **error)
{
  json_object *o = entry != NULL ? entry : json_object_new_object ();
  if (!_lsc_job_kv_write (&job->kv, i, session, n_prompt, kl, agree, n_compared, o, writer,
                          error))
    {
      json_object_put (o);
      return FALSE;
    }
  if (!job->kv.list)
    {
      json_object_object_add (results, "kv", o);
      return TRUE;
    }
  json_object *list;
  if (!json_object_object_get_ex (results, "kv", &list))
    json_object_object_add (results, "kv", list = json_object_new_array ());
  json_object_array_add (list, o);
  return TRUE;
}

/* "kv" of every run of the runner and DIR/tensors.safetensors with their logs. */
static gboolean
results_add_kv (const LscJob *job, KvRuns *r, int n_prompt, const char *output_dir,
                json_object *results, GError **error)
{
  g_autoptr(LscTensorWriter) writer = lsc_tensor_writer_new ();
  for (int i = 0; i < r->n; i++)
    {
      json_object *entry = g_steal_pointer (&r->entries[i]);
      if (!results_add_kv_run (job, i, r->sessions[i], n_prompt,
                               job->kv.runs[i].compare ? (const double *) r->kl[i]->data : NULL,
                               (const gboolean *) r->agree[i]->data, (int) r->kl[i]->len, entry,
                               results, writer, error))
        return FALSE;
    }
  return results_add_tensors (writer, output_dir, results, error);
}

gboolean
_lsc_batch_make_output_dir (const char *output_dir, GError **error)
{
  if (g_mkdir_with_parents (output_dir, 0755) == 0)
    return TRUE;
  int saved = errno;
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
               "%s: cannot create the output folder: %s", output_dir, g_strerror (saved));
  return FALSE;
}

/* Ends results.json ("status", "provenance", "timings", "warnings"; timings
 * is taken) and writes it to DIR/results.json atomically. */
static gboolean
results_write (json_object *results, const LscJob *job, const LscModel *model, int threads,
               const char *status, json_object *timings, const char *output_dir, GError **error)
{
  json_object *warnings = json_object_new_array ();
  for (const char *const *w = lsc_model_get_warnings (model); *w != NULL; w++)
    json_object_array_add (warnings, json_object_new_string (*w));
  json_object_object_add (results, "status", json_object_new_string (status));
  json_object_object_add (results, "provenance", provenance_to_json (job, model, threads));
  json_object_object_add (results, "timings", timings);
  json_object_object_add (results, "warnings", warnings);

  if (!_lsc_batch_make_output_dir (output_dir, error))
    return FALSE;
  g_autofree char *out = g_build_filename (output_dir, "results.json", NULL);
  return lsc_json_write_file (results, out, error);
}

/* ---- retrieval-head detection (lsc-batch-retrieval.c) ---- */

/* Runs the job's "retrieval" section; returns the exit status and sets *status. */
static int
run_retrieval_job (LscJob *job, LscModel *model, const char *output_dir, json_object *results,
                   json_object *timings, const char **status, LscFigureFunc figure,
                   gpointer figure_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  g_autoptr(LscTensorWriter) writer = lsc_tensor_writer_new ();
  gint64 t0 = g_get_monotonic_time ();

  tok = lsc_tokenizer_load (job->tokenizer != NULL ? job->tokenizer : job->model, &error);
  if (tok == NULL)
    {
      g_printerr ("longscope: %s: $.%s: %s\n", job->name,
                  job->tokenizer != NULL ? "tokenizer" : "model", error->message);
      *status = "failed";
      json_object_object_add (results, "error", json_object_new_string (error->message));
      return EXIT_LOAD;
    }
  struct sigaction sa = { 0 }, old_sa;
  sa.sa_handler = on_sigint;
  sigaction (SIGINT, &sa, &old_sa);
  interrupted = 0;
  _lsc_job_retrieval_run (&job->retrieval, model, tok, job->threads, job->reference, &job->backend,
                          job->bos, job->stop_at_eos, output_dir, results, writer, is_interrupted,
                          NULL, &error);
  sigaction (SIGINT, &old_sa, NULL);
  json_object_object_add (timings, "retrieval_s", lsc_json_double (seconds_since (t0)));

  if (error == NULL && job->figures != NULL)
    {
      LscJobFigureContext ctx = { .config = lsc_model_get_config (model), .results = results };
      json_object *files = json_object_new_array ();
      json_object_object_add (results, "figures", files);
      if (g_mkdir_with_parents (output_dir, 0755) == 0)
        _lsc_job_figures_render (job->figures, &ctx, output_dir, figure, figure_data, files, &error);
    }

  g_autoptr(GError) write_error = NULL;
  g_autofree char *tpath = g_build_filename (output_dir, "tensors.safetensors", NULL);
  if (lsc_tensor_writer_get_n_tensors (writer) > 0 && g_mkdir_with_parents (output_dir, 0755) == 0
      && lsc_tensor_writer_write (writer, tpath, error == NULL ? &error : &write_error))
    json_object_object_add (results, "tensors_file", json_object_new_string ("tensors.safetensors"));

  if (error == NULL)
    return EXIT_DONE;
  if (g_error_matches (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED))
    {
      *status = "interrupted";
      g_printerr ("longscope: interrupted; writing the partial result\n");
      return EXIT_INTERRUPTED;
    }
  *status = "failed";
  g_printerr ("longscope: %s\n", error->message);
  json_object_object_add (results, "error", json_object_new_string (error->message));
  return EXIT_RUNTIME;
}

/* ---- end of retrieval ---- */

static int
run_job (LscJob *job, const char *output_dir, LscFigureFunc figure, gpointer figure_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = NULL;
  g_autoptr(LscTokenizer) tok = NULL;
  g_autoptr(LscSession) session = NULL;
  g_autoptr(LscSession) full = NULL;        /* the KV policies' comparison */
  g_auto(KvRuns) kv_runs = { 0 };
  g_autoptr(json_object) results = NULL;
  json_object *timings = json_object_new_object ();
  const char *status = "done";
  int exit_status = EXIT_DONE;
  gint64 t0 = g_get_monotonic_time ();

  g_printerr ("longscope: loading %s\n", job->model);
  model = lsc_model_load (job->model, &error);
  if (model == NULL)
    {
      g_printerr ("longscope: %s: $.model: %s\n", job->name, error->message);
      json_object_put (timings);
      return EXIT_LOAD;
    }
  json_object_object_add (timings, "load_s", lsc_json_double (seconds_since (t0)));

  LscSessionParams sp;
  lsc_session_params_init (&sp);
  sp.n_threads = job->threads;
  sp.n_ctx = job->n_ctx;
  sp.reference = job->reference;
  sp.backend = job->backend.requested;
  if (!lsc_plugin_stack_instantiate (job->plugins, lsc_model_get_config (model), &error))
    {
      g_printerr ("longscope: %s: $.plugins: %s\n", job->name, error->message);
      json_object_put (timings);
      return EXIT_INVALID;
    }
  lsc_plugin_stack_get_hooks (job->plugins, &sp.hooks);
  job->retrieval.hooks = sp.hooks;

  results = results_new (job, model);

  if (job->retrieval.enabled)   /* lsc-batch-retrieval.c */
    exit_status = run_retrieval_job (job, model, output_dir, results, timings, &status, figure,
                                     figure_data);
  else if (job->prompt != NULL)
    {
      tok = lsc_tokenizer_load (job->tokenizer != NULL ? job->tokenizer : job->model, &error);
      if (tok == NULL)
        {
          g_printerr ("longscope: %s: $.%s: %s\n", job->name,
                      job->tokenizer != NULL ? "tokenizer" : "model", error->message);
          json_object_put (timings);
          return EXIT_LOAD;
        }
      g_autoptr(GArray) prompt = lsc_tokenizer_encode (tok, job->prompt, -1, job->bos, &error);
      if (prompt == NULL)
        {
          g_printerr ("longscope: %s: $.prompt: %s\n", job->name, error->message);
          json_object_put (timings);
          return EXIT_INVALID;
        }
      if (prompt->len == 0)
        {
          g_printerr ("longscope: %s: $.prompt: the prompt encodes to no tokens "
                      "(set \"bos\": true or give some text)\n", job->name);
          json_object_put (timings);
          return EXIT_INVALID;
        }
      if (job->kv.enabled)
        {
          sp.kv_policy = job->kv.runs[0].policy;
          if (sp.n_ctx == 0)
            sp.n_ctx = lsc_kv_policy_slots (&sp.kv_policy, (int) prompt->len, job->kv.runs[0].chunk,
                                            job->gen.max_tokens);
        }
      if (sp.n_ctx == 0)
        sp.n_ctx = MAX (4096, (int) prompt->len + job->gen.max_tokens);

      if (job->capture.enabled)
        _lsc_job_capture_plan (&job->capture, (int) prompt->len, &sp);
      if (job->ssm.enabled
          && !_lsc_job_ssm_plan (&job->ssm, job->name, lsc_model_get_config (model), &sp, &error))
        {
          g_printerr ("longscope: %s\n", error->message);
          json_object_put (timings);
          return EXIT_INVALID;
        }
      session = lsc_session_new (model, &sp, &error);
      if (session == NULL)
        {
          g_printerr ("longscope: %s\n", error->message);
          json_object_put (timings);
          return EXIT_RUNTIME;
        }
      _lsc_job_backend_record (&job->backend, lsc_session_get_backend (session),
                               lsc_session_get_backend_note (session));
      gboolean kv_compare = FALSE;
      for (int i = 0; i < job->kv.n_runs; i++)
        kv_compare |= job->kv.runs[i].compare;
      if (kv_compare)
        {
          /* the same model without the policy, for the comparison */
          full = lsc_generate_kv_full_new (model, session, (int) prompt->len + job->gen.max_tokens,
                                           &error);
          if (full == NULL)
            {
              g_printerr ("longscope: %s\n", error->message);
              json_object_put (timings);
              return EXIT_RUNTIME;
            }
        }
      json_object_object_add (results, "prompt_tokens",
                              ints_to_json ((const gint32 *) prompt->data, prompt->len));

      struct sigaction sa = { 0 }, old_sa;
      sa.sa_handler = on_sigint;
      sigaction (SIGINT, &sa, &old_sa);
      interrupted = 0;

      /* every position the session runs, for figure labels: the prompt, then new tokens */
      g_autoptr(GArray) all_tokens = g_array_copy (prompt);
      g_autofree double *lp = NULL;   /* (prompt->len - 1) teacher-forced log-probabilities */
      if (job->score && prompt->len >= 2)
        {
          double ppl = 0;
          lp = g_new (double, prompt->len - 1);
          gint64 ts = g_get_monotonic_time ();
          g_printerr ("longscope: scoring %u tokens\n", prompt->len);
          if (lsc_score (session, (const gint32 *) prompt->data, (int) prompt->len, lp, &ppl,
                         is_interrupted, NULL, &error))
            {
              json_object *score = json_object_new_object ();
              json_object_object_add (score, "logprobs", lsc_json_doubles (lp, prompt->len - 1));
              json_object_object_add (score, "mean_nll", lsc_json_double (log (ppl)));
              json_object_object_add (score, "perplexity", lsc_json_double (ppl));
              json_object_object_add (results, "score", score);
              json_object_object_add (timings, "score_s", lsc_json_double (seconds_since (ts)));
            }
          lsc_session_rewind (session, 0);
        }

      LscGenerateParams gp = job->gen;
      if (job->stop_at_eos)
        {
          gp.eos_id = lsc_tokenizer_get_eos (tok);
          /* llama2.c checkpoints end a story with BOS */
          if (lsc_model_get_format (model) == LSC_FORMAT_LLAMA2C)
            gp.bos_id = lsc_tokenizer_get_bos (tok);
        }
      if (error == NULL && job->kv.enabled)
        {
          int n = job->kv.n_runs;
          kv_runs.sessions = g_new0 (LscSession *, n);
          kv_runs.kl = g_new0 (GArray *, n);
          kv_runs.agree = g_new0 (GArray *, n);
          kv_runs.entries = g_new0 (json_object *, n);
          for (int i = 0; i < n && error == NULL; i++)
            {
              /* each policy from an empty cache: the prompt (in chunks), then
               * generation, the full cache alongside */
              const LscJobKvRun *run = &job->kv.runs[i];
              if (i == 0)
                kv_runs.sessions[0] = session;
              else
                {
                  LscSessionParams rp = sp;
                  rp.kv_policy = run->policy;
                  if (job->n_ctx == 0)
                    rp.n_ctx = lsc_kv_policy_slots (&run->policy, (int) prompt->len, run->chunk,
                                                    job->gen.max_tokens);
                  kv_runs.sessions[i] = lsc_session_new (model, &rp, &error);
                  if (kv_runs.sessions[i] == NULL)
                    {
                      g_prefix_error (&error, "$.kv[%d]: ", i);
                      break;
                    }
                }
              kv_runs.kl[i] = g_array_new (FALSE, FALSE, sizeof (double));
              kv_runs.agree[i] = g_array_new (FALSE, FALSE, sizeof (gboolean));
              kv_runs.n = i + 1;
              if (full != NULL)
                lsc_session_rewind (full, 0);
              g_autoptr(GArray) out = g_array_new (FALSE, FALSE, sizeof (gint32));
              g_autoptr(GArray) lps = g_array_new (FALSE, FALSE, sizeof (double));
              Progress progress = { g_get_monotonic_time (), gp.max_tokens, isatty (2), 0 };
              g_printerr ("longscope: %u tokens under the %s policy%s\n", prompt->len,
                          lsc_kv_policy_name (run->policy.kind),
                          run->compare ? ", and with the full cache" : "");
              gboolean ok = lsc_generate_kv (kv_runs.sessions[i], run->compare ? full : NULL,
                                             (const gint32 *) prompt->data, (int) prompt->len,
                                             run->chunk, &gp, out, lps, kv_runs.kl[i],
                                             kv_runs.agree[i], on_token, &progress,
                                             is_interrupted, NULL, &error);
              gint64 end = g_get_monotonic_time ();
              gint64 first = progress.first_us != 0 ? progress.first_us : end;
              if (progress.tty && out->len > 0)
                g_printerr ("\n");
              /* without new tokens there is no generation to report, as
               * without a policy (and as an application's record) */
              if (i == 0 && gp.max_tokens > 0)
                {
                  g_array_append_vals (all_tokens, out->data, out->len);
                  const char *text = results_add_generation (results, timings, tok, prompt, out,
                                                             lps, (first - progress.start_us) / 1e6,
                                                             (end - first) / 1e6);
                  if (ok)
                    fputs (text, stdout), fputc ('\n', stdout);
                }
              if (job->kv.list)
                {
                  /* each run's own generation beside its log */
                  json_object *o = json_object_new_object ();
                  g_autofree char *text = decode_continuation (tok, prompt, out);
                  json_object_object_add (o, "text", json_object_new_string (text));
                  json_object_object_add (o, "tokens",
                                          ints_to_json ((const gint32 *) out->data, out->len));
                  json_object_object_add (o, "logprobs",
                                          lsc_json_doubles ((const double *) lps->data, lps->len));
                  kv_runs.entries[i] = o;
                }
            }
        }
      else if (error == NULL && job->gen.max_tokens > 0)
        {
          g_autoptr(GArray) out = g_array_new (FALSE, FALSE, sizeof (gint32));
          g_autoptr(GArray) lps = g_array_new (FALSE, FALSE, sizeof (double));
          Progress progress = { g_get_monotonic_time (), gp.max_tokens, isatty (2) };

          /* prefill and decode timed apart: the prompt first, then generation */
          gint64 tp = g_get_monotonic_time ();
          g_printerr ("longscope: prefill of %u tokens\n", prompt->len);
          gboolean ok = lsc_session_eval (session, (const gint32 *) prompt->data,
                                          (int) prompt->len - 1, NULL, FALSE, is_interrupted, NULL,
                                          &error);
          double prefill_s = seconds_since (tp);
          gint64 td = g_get_monotonic_time ();
          if (ok)
            ok = lsc_generate (session, (const gint32 *) prompt->data + prompt->len - 1, 1, &gp,
                               out, lps, on_token, &progress, is_interrupted, NULL, &error);
          double decode_s = seconds_since (td);
          if (progress.tty)
            g_printerr ("\n");

          g_array_append_vals (all_tokens, out->data, out->len);
          const char *text = results_add_generation (results, timings, tok, prompt, out, lps,
                                                     prefill_s, decode_s);
          if (ok)
            fputs (text, stdout), fputc ('\n', stdout);
        }
      /* without generation the prompt still has to run once for its attention or Δ */
      if (error == NULL && job->gen.max_tokens == 0 && (job->capture.enabled || job->ssm.enabled))
        {
          lsc_session_rewind (session, 0);
          lsc_session_eval (session, (const gint32 *) prompt->data, (int) prompt->len, NULL, FALSE,
                            is_interrupted, NULL, &error);
        }
      sigaction (SIGINT, &old_sa, NULL);

      if (error == NULL && job->capture.enabled)
        {
          g_printerr ("longscope: analysing the captured attention\n");
          results_add_capture (&job->capture, session, model, output_dir, results, &error);
        }

      if (error == NULL && job->ssm.enabled)
        results_add_ssm (&job->ssm, session, (int) prompt->len, output_dir, results, &error);

      /* the policies' logs are whole after a cancelled evaluation too */
      if (kv_runs.n > 0
          && (error == NULL || g_error_matches (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED)))
        {
          g_autoptr(GError) kv_error = NULL;
          if (!results_add_kv (job, &kv_runs, (int) prompt->len, output_dir, results, &kv_error)
              && error == NULL)
            g_propagate_error (&error, g_steal_pointer (&kv_error));
        }

      if (error == NULL && job->figures != NULL)
        {
          LscJobFigureContext ctx = {
            .session = session,
            .capture = job->capture.enabled ? &job->capture : NULL,
            .config = lsc_model_get_config (model),
            .tokenizer = tok,
            .tokens = (const gint32 *) all_tokens->data,
            .n_tokens = (int) all_tokens->len,
            .score = lp,
            .n_score = lp != NULL ? (int) prompt->len - 1 : 0,
            .sink_tokens = job->capture.sink_tokens,
            .results = results,
            .kv_n_runs = kv_runs.n,
            .kv_sessions = (const LscSession *const *) kv_runs.sessions,
          };
          g_autofree const double **kv_kl = g_new0 (const double *, MAX (kv_runs.n, 1));
          g_autofree int *kv_n = g_new0 (int, MAX (kv_runs.n, 1));
          for (int i = 0; i < kv_runs.n; i++)
            {
              kv_kl[i] = job->kv.runs[i].compare ? (const double *) kv_runs.kl[i]->data : NULL;
              kv_n[i] = (int) kv_runs.kl[i]->len;
            }
          ctx.kv_kl = kv_kl;
          ctx.kv_n_compared = kv_n;
          json_object *files = json_object_new_array ();
          json_object_object_add (results, "figures", files);
          g_printerr ("longscope: drawing %u figures\n", job->figures->len);
          if (g_mkdir_with_parents (output_dir, 0755) == 0)
            _lsc_job_figures_render (job->figures, &ctx, output_dir, figure, figure_data, files,
                                     &error);
        }

      if (error != NULL)
        {
          if (g_error_matches (error, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED))
            {
              status = "interrupted";
              exit_status = EXIT_INTERRUPTED;
              g_printerr ("longscope: interrupted; writing the partial result\n");
            }
          else
            {
              status = "failed";
              exit_status = EXIT_RUNTIME;
              g_printerr ("longscope: %s\n", error->message);
              json_object_object_add (results, "error", json_object_new_string (error->message));
            }
        }
    }
  else
    {
      g_autoptr(GString) summary = g_string_new (NULL);
      lsc_model_describe (model, summary, FALSE);
      fputs (summary->str, stdout);
    }

  json_object_object_add (timings, "total_s", lsc_json_double (seconds_since (t0)));
  g_autoptr(GError) write_error = NULL;
  if (!results_write (results, job, model,
                      session != NULL ? lsc_session_get_params (session)->n_threads : job->threads,
                      status, timings, output_dir, &write_error))
    {
      g_printerr ("longscope: %s\n", write_error->message);
      return EXIT_RUNTIME;
    }
  g_autofree char *out = g_build_filename (output_dir, "results.json", NULL);
  g_printerr ("longscope: wrote %s\n", out);
  return exit_status;
}

/* ---- runs made elsewhere (the application), written as a batch job writes them ---- */

static gboolean
write_record (LscJob *job, const LscBatchRecord *r, const char *output_dir, GError **error)
{
  if (!job_parse (job, r->job_json, strlen (r->job_json), error))
    return FALSE;
  if (job->prompt == NULL || job->retrieval.enabled || job->score || job->figures != NULL)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: a recorded run needs a job with a prompt and without retrieval, score "
                   "or figures", job->name);
      return FALSE;
    }
  if (job->capture.enabled && lsc_session_get_attention (r->session) == NULL)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.capture: the run captured no attention", job->name);
      return FALSE;
    }
  if (job->ssm.enabled && lsc_session_get_ssm (r->session) == NULL)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.ssm: the run recorded no Δ", job->name);
      return FALSE;
    }
  if (job->kv.enabled && (lsc_session_get_kv (r->session) == NULL || job->kv.list))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   job->kv.list ? "%s: $.kv: a recorded run has one KV policy, not a list"
                                : "%s: $.kv: the run had no KV policy", job->name);
      return FALSE;
    }
  /* the folder first: nothing is computed for a destination that cannot be written */
  if (!_lsc_batch_make_output_dir (output_dir, error))
    return FALSE;

  _lsc_job_backend_record (&job->backend, lsc_session_get_backend (r->session),
                           lsc_session_get_backend_note (r->session));
  g_autoptr(json_object) results = results_new (job, r->model);
  json_object *timings = json_object_new_object ();
  g_autoptr(GArray) prompt = g_array_sized_new (FALSE, FALSE, sizeof (gint32), r->n_prompt);
  g_array_append_vals (prompt, r->prompt, r->n_prompt);
  json_object_object_add (results, "prompt_tokens", ints_to_json (r->prompt, r->n_prompt));
  if (job->gen.max_tokens > 0)
    {
      g_autoptr(GArray) out = g_array_sized_new (FALSE, FALSE, sizeof (gint32), r->n_generated);
      g_array_append_vals (out, r->generated, r->n_generated);
      g_autoptr(GArray) lps = NULL;
      if (r->logprobs != NULL)
        {
          lps = g_array_sized_new (FALSE, FALSE, sizeof (double), r->n_generated);
          g_array_append_vals (lps, r->logprobs, r->n_generated);
        }
      results_add_generation (results, timings, r->tokenizer, prompt, out, lps, r->prefill_s,
                              r->decode_s);
    }
  if (job->capture.enabled)
    {
      job->capture.known_stats = r->head_stats;
      if (!results_add_capture (&job->capture, r->session, r->model, output_dir, results, error))
        {
          json_object_put (timings);
          return FALSE;
        }
    }
  if (job->ssm.enabled
      && !results_add_ssm (&job->ssm, r->session, r->n_prompt, output_dir, results, error))
    {
      json_object_put (timings);
      return FALSE;
    }
  if (job->kv.enabled)
    {
      g_autoptr(LscTensorWriter) writer = lsc_tensor_writer_new ();
      if (!results_add_kv_run (job, 0, r->session, r->n_prompt, r->kv_kl, r->kv_agree,
                               r->kv_n_compared, NULL, results, writer, error)
          || !results_add_tensors (writer, output_dir, results, error))
        {
          json_object_put (timings);
          return FALSE;
        }
    }
  json_object_object_add (timings, "total_s", lsc_json_double (r->total_s));
  return results_write (results, job, r->model, lsc_session_get_params (r->session)->n_threads,
                        "done", timings, output_dir, error);
}

gboolean
lsc_batch_write_record (const LscBatchRecord *record, const char *output_dir, GError **error)
{
  g_return_val_if_fail (record != NULL, FALSE);
  g_return_val_if_fail (record->job_json != NULL, FALSE);
  g_return_val_if_fail (record->model != NULL && record->tokenizer != NULL, FALSE);
  g_return_val_if_fail (record->session != NULL, FALSE);
  g_return_val_if_fail (record->prompt != NULL && record->n_prompt > 0, FALSE);
  g_return_val_if_fail (record->n_generated == 0 || record->generated != NULL, FALSE);
  g_return_val_if_fail (output_dir != NULL, FALSE);

  LscJob job = { 0 };
  job.name = g_strdup (record->job_name != NULL ? record->job_name : "<run>");
  job.base_dir = g_get_current_dir ();
  gboolean ok = write_record (&job, record, output_dir, error);
  job_clear (&job);
  return ok;
}

int
lsc_batch_run_file (const char *job_path, const char *output_dir, const LscBackend *backend,
                    LscFigureFunc figure, gpointer figure_data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autofree char *default_out = NULL;
  gsize len = 0;
  LscJob job = { 0 };
  int status;

  g_return_val_if_fail (job_path != NULL, EXIT_INVALID);

  if (strcmp (job_path, "-") == 0)
    {
      GString *s = g_string_new (NULL);
      char buf[65536];
      size_t n;
      while ((n = fread (buf, 1, sizeof buf, stdin)) > 0)
        g_string_append_len (s, buf, n);
      len = s->len;
      text = g_string_free (s, FALSE);
      job.name = g_strdup ("<stdin>");
      job.base_dir = g_get_current_dir ();
      default_out = g_strdup ("longscope-results");
    }
  else
    {
      if (!g_file_get_contents (job_path, &text, &len, &error))
        {
          g_printerr ("longscope: %s\n", error->message);
          return EXIT_INVALID;
        }
      job.name = g_strdup (job_path);
      g_autofree char *dir = g_path_get_dirname (job_path);
      job.base_dir = g_canonicalize_filename (dir, NULL);
      g_autofree char *base = g_path_get_basename (job_path);
      char *dot = strrchr (base, '.');
      if (dot != NULL && dot != base)
        *dot = '\0';
      default_out = g_strconcat (base, "-results", NULL);
    }

  if (!job_parse (&job, text, len, &error))
    {
      g_printerr ("longscope: %s\n", error->message);
      job_clear (&job);
      return EXIT_INVALID;
    }
  if (backend != NULL)
    job.backend.requested = *backend;
  status = run_job (&job, output_dir != NULL ? output_dir : default_out, figure, figure_data);
  job_clear (&job);
  return status;
}
