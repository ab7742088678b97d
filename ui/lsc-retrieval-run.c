/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>

#include "lsc-demo.h"
#include "lsc-error.h"
#include "lsc-json.h"
#include "lsc-needle.h"
#include "lsc-retrieval-run.h"
#include "lsc-run.h"
#include "lsc-retrieval.h"

/* the reference's needle (as a batch job's default) */
static const char ref_needle[] =
  "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny "
  "day.\n";
static const char ref_question[] = "What is the best thing to do in San Francisco?";
static const char ref_answer[] = "eat a sandwich and sit in Dolores Park on a sunny day";

/* the demo batch job's (data/demo-job.json) */
static const char demo_needle[] = "\n#7KZ9 X4W8 M2P6%\n";
static const char demo_question[] = "What is the code?";
static const char demo_answer[] = "KZ9 X4W8 M2P6";

/* data/haystack.txt and data/demo-haystack.txt, resolved once */
static const char *
haystack_path (gboolean demo)
{
  static char *paths[2];
  static gsize init = 0;
  if (g_once_init_enter (&init))
    {
      paths[0] = lsc_needle_default_haystack_path ();
      g_autofree char *dir = g_path_get_dirname (paths[0]);
      paths[1] = g_build_filename (dir, "demo-haystack.txt", NULL);
      g_once_init_leave (&init, 1);
    }
  return paths[demo ? 1 : 0];
}

void
lsc_retrieval_run_params_init (LscRetrievalRunParams *params, LscLoadedModel *model)
{
  g_return_if_fail (params != NULL);
  gboolean demo = model != NULL
                  && g_strcmp0 (lsc_loaded_model_get_path (model), LSC_DEMO_INDUCTION) == 0;
  *params = (LscRetrievalRunParams) {
    .needle = demo ? demo_needle : ref_needle,
    .question = demo ? demo_question : ref_question,
    .answer = demo ? demo_answer : ref_answer,
    .haystack_file = haystack_path (demo),
    .context_lengths = { demo ? 200 : 1000, demo ? 400 : 2000 },
    .n_lengths = 2,
    .n_depths = demo ? 3 : 5,
    .buffer_tokens = demo ? 64 : 200,
    .cue_tokens = demo ? 3 : 0,
    .max_tokens = demo ? 24 : 50,
    .recall_threshold = 0.5,
    .score_threshold = 0.1,
    .n_threads = 0,
  };
}

double
lsc_retrieval_run_depth (int i, int n_depths)
{
  /* numpy.round (linspace): half to even, as a batch job's grid */
  return n_depths <= 1 ? 0.0 : nearbyint (100.0 * i / (n_depths - 1));
}

void
lsc_retrieval_detection_free (LscRetrievalDetection *d)
{
  if (d == NULL)
    return;
  g_free (d->scores);
  g_free (d->ranking);
  g_free (d->warning);
  g_free (d->model_path);
  g_free (d);
}

static gboolean
is_cancelled (gpointer data)
{
  return g_cancellable_is_cancelled (data);
}

static gboolean
check_params (const LscRetrievalRunParams *p, GError **error)
{
  if (p->needle == NULL || *p->needle == '\0' || p->question == NULL || *p->question == '\0'
      || p->answer == NULL || *p->answer == '\0')
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           "the needle, question and answer must not be empty");
      return FALSE;
    }
  if (p->n_lengths < 1 || p->n_lengths > LSC_RETRIEVAL_RUN_MAX_LENGTHS || p->n_depths < 1
      || p->max_tokens < 1 || p->buffer_tokens < 0 || p->cue_tokens < 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           "the grid needs 1 to 16 context lengths, at least one depth and one "
                           "new token");
      return FALSE;
    }
  for (int i = 0; i < p->n_lengths; i++)
    if (p->context_lengths[i] < 1)
      {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                     "context length %d is not a positive number of tokens", p->context_lengths[i]);
        return FALSE;
      }
  return TRUE;
}

LscRetrievalDetection *
lsc_retrieval_detect (LscLoadedModel *loaded, const LscRetrievalRunParams *p,
                      LscRetrievalProgressFunc progress, gpointer progress_data,
                      GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (LSC_IS_LOADED_MODEL (loaded), NULL);
  g_return_val_if_fail (p != NULL, NULL);
  if (!check_params (p, error))
    return NULL;
  LscModel *model = lsc_loaded_model_get_model (loaded);
  LscTokenizer *tok = lsc_loaded_model_get_tokenizer (loaded);
  const LscModelConfig *c = lsc_model_get_config (model);
  int L = c->n_layers, H = c->n_heads;

  g_autofree char *haystack = NULL;
  if (!g_file_get_contents (p->haystack_file, &haystack, NULL, error))
    return NULL;
  if (!g_utf8_validate (haystack, -1, NULL))
    {
      g_set_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_UNSUPPORTED, "%s: not UTF-8 text",
                   p->haystack_file);
      return NULL;
    }

  LscNeedleParams np;
  lsc_needle_params_init (&np);
  np.buffer_tokens = p->buffer_tokens;
  np.cue_tokens = p->cue_tokens;
  g_autoptr(LscNeedleBuilder) builder = lsc_needle_builder_new (tok, haystack, &np, error);
  if (builder == NULL)
    return NULL;

  /* as a batch job runs it (lsc-batch-retrieval.c): stop at EOS, and at BOS
   * for llama2.c checkpoints */
  LscRetrievalParams rp;
  lsc_retrieval_params_init (&rp);
  rp.max_tokens = p->max_tokens;
  rp.recall_threshold = p->recall_threshold;
  rp.n_threads = p->n_threads;
  rp.eos_id = lsc_tokenizer_get_eos (tok);
  if (lsc_model_get_format (model) == LSC_FORMAT_LLAMA2C)
    rp.bos_id = lsc_tokenizer_get_bos (tok);

  LscNeedle needle = { p->needle, p->question, p->answer };
  int total = p->n_lengths * p->n_depths;
  g_autoptr(GPtrArray) samples = g_ptr_array_new_with_free_func ((GDestroyNotify) lsc_retrieval_sample_free);
  double recall = 0;
  for (int a = 0; a < p->n_lengths; a++)
    for (int b = 0; b < p->n_depths; b++)
      {
        if (g_cancellable_set_error_if_cancelled (cancellable, error))
          return NULL;
        if (progress != NULL)
          progress ((int) samples->len, total, progress_data);
        g_autoptr(LscNeedlePrompt) prompt =
          lsc_needle_build (builder, &needle, p->context_lengths[a],
                            lsc_retrieval_run_depth (b, p->n_depths), error);
        if (prompt == NULL)
          {
            g_prefix_error (error, "context length %d: ", p->context_lengths[a]);
            return NULL;
          }
        GError *local = NULL;
        LscRetrievalSample *s = lsc_retrieval_run (model, tok, prompt, p->answer, &rp,
                                                   cancellable != NULL ? is_cancelled : NULL,
                                                   cancellable, &local);
        if (s == NULL)
          {
            /* one notion of "cancelled" for the UI */
            if (g_error_matches (local, LSC_RUN_ERROR, LSC_RUN_ERROR_CANCELLED))
              {
                g_clear_error (&local);
                g_set_error_literal (&local, G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled");
              }
            g_propagate_error (error, local);
            return NULL;
          }
        recall += s->recall;
        g_ptr_array_add (samples, s);
      }
  if (progress != NULL)
    progress (total, total, progress_data);

  g_autoptr(LscRetrievalSummary) sum =
    lsc_retrieval_summarize ((LscRetrievalSample **) samples->pdata, (int) samples->len, L, H);
  LscRetrievalDetection *d = g_new0 (LscRetrievalDetection, 1);
  d->n_layers = L;
  d->n_heads = H;
  d->n_samples = sum->n_samples;
  d->n_passed = sum->n_passed;
  d->mean_recall = recall / total;
  d->scores = g_steal_pointer (&sum->mean);
  d->ranking = g_steal_pointer (&sum->ranking);
  d->score_threshold = p->score_threshold;
  for (int i = 0; i < L * H; i++)
    d->n_above += d->scores[i] > p->score_threshold;
  d->warning = g_strdup (lsc_needle_builder_get_warning (builder));
  d->model_path = g_strdup (lsc_model_get_path (model));
  return d;
}

/* --------------------------------------------------------- results.json */

/* what was found at a JSON path, for messages: "nothing" when the key is
 * missing, else the value as JSON, shortened */
static char *
describe (json_object *v, gboolean present)
{
  if (!present)
    return g_strdup ("nothing");
  const char *text = json_object_to_json_string_ext (v, JSON_C_TO_STRING_PLAIN);
  if (g_utf8_strlen (text, -1) <= 60)
    return g_strdup (text);
  g_autofree char *head = g_utf8_substring (text, 0, 57);
  return g_strconcat (head, "...", NULL);
}

static gboolean
invalid (GError **error, const char *file, const char *path, const char *expected,
         json_object *v, gboolean present)
{
  g_autofree char *what = describe (v, present);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: %s: expected %s, found %s", file,
               path, expected, what);
  return FALSE;
}

static gboolean
is_number (json_object *v)
{
  return json_object_is_type (v, json_type_double) || json_object_is_type (v, json_type_int);
}

/* obj.key, an integer in [min, max] */
static gboolean
get_int (json_object *obj, const char *path, const char *key, int min, int max, int *out,
         const char *file, GError **error)
{
  json_object *v = NULL;
  gboolean present = json_object_object_get_ex (obj, key, &v);
  if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < min
      || json_object_get_int64 (v) > max)
    {
      g_autofree char *at = g_strdup_printf ("%s.%s", path, key);
      g_autofree char *expected = max == G_MAXINT ? g_strdup_printf ("an integer >= %d", min)
                                                  : g_strdup_printf ("an integer in [%d, %d]", min, max);
      return invalid (error, file, at, expected, v, present);
    }
  *out = (int) json_object_get_int64 (v);
  return TRUE;
}

/* obj.key, a number, or null (NaN) when allow_null */
static gboolean
get_number (json_object *obj, const char *path, const char *key, gboolean allow_null,
            double *out, const char *file, GError **error)
{
  json_object *v = NULL;
  gboolean present = json_object_object_get_ex (obj, key, &v);
  if (allow_null && present && v == NULL)
    {
      *out = NAN;
      return TRUE;
    }
  if (!is_number (v))
    {
      g_autofree char *at = g_strdup_printf ("%s.%s", path, key);
      return invalid (error, file, at, allow_null ? "a number or null" : "a number", v, present);
    }
  *out = json_object_get_double (v);
  return TRUE;
}

/* $.retrieval.scores: [n_layers][n_heads] numbers or null into scores */
static gboolean
get_scores (json_object *sec, int L, int H, gboolean allow_null, double *scores,
            const char *file, GError **error)
{
  json_object *v = NULL;
  gboolean present = json_object_object_get_ex (sec, "scores", &v);
  if (allow_null && present && v == NULL)
    {
      for (int i = 0; i < L * H; i++)
        scores[i] = NAN;
      return TRUE;
    }
  if (!json_object_is_type (v, json_type_array))
    {
      g_autofree char *expected = g_strdup_printf ("an array of %d rows of %d scores "
                                                   "(model.n_layers x model.n_heads)", L, H);
      return invalid (error, file, "$.retrieval.scores", expected, v, present);
    }
  if ((int) json_object_array_length (v) != L)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: $.retrieval.scores: expected %d rows (model.n_layers), found %d", file, L,
                   (int) json_object_array_length (v));
      return FALSE;
    }
  for (int l = 0; l < L; l++)
    {
      json_object *row = json_object_array_get_idx (v, l);
      g_autofree char *at = g_strdup_printf ("$.retrieval.scores[%d]", l);
      if (!json_object_is_type (row, json_type_array))
        {
          g_autofree char *expected = g_strdup_printf ("an array of %d scores (model.n_heads)", H);
          return invalid (error, file, at, expected, row, TRUE);
        }
      if ((int) json_object_array_length (row) != H)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "%s: %s: expected %d scores (model.n_heads), found %d", file, at, H,
                       (int) json_object_array_length (row));
          return FALSE;
        }
      for (int h = 0; h < H; h++)
        {
          json_object *x = json_object_array_get_idx (row, h);
          if (x != NULL && !is_number (x))
            {
              g_autofree char *cell = g_strdup_printf ("%s[%d]", at, h);
              return invalid (error, file, cell, "a number or null", x, TRUE);
            }
          scores[l * H + h] = x != NULL ? json_object_get_double (x) : NAN;
        }
    }
  return TRUE;
}

/* $.retrieval.warnings (optional): strings, joined by newlines; NULL when none */
static gboolean
get_warnings (json_object *sec, char **out, const char *file, GError **error)
{
  json_object *v = NULL;
  *out = NULL;
  if (!json_object_object_get_ex (sec, "warnings", &v))
    return TRUE;
  if (!json_object_is_type (v, json_type_array))
    return invalid (error, file, "$.retrieval.warnings", "an array of strings", v, TRUE);
  g_autoptr(GString) text = g_string_new (NULL);
  for (gsize i = 0; i < json_object_array_length (v); i++)
    {
      json_object *w = json_object_array_get_idx (v, i);
      if (!json_object_is_type (w, json_type_string))
        {
          g_autofree char *at = g_strdup_printf ("$.retrieval.warnings[%" G_GSIZE_FORMAT "]", i);
          return invalid (error, file, at, "a string", w, TRUE);
        }
      if (text->len > 0)
        g_string_append_c (text, '\n');
      g_string_append (text, json_object_get_string (w));
    }
  *out = text->len > 0 ? g_strdup (text->str) : NULL;
  return TRUE;
}

/* $.provenance.model_path (optional) */
static gboolean
get_model_path (json_object *root, char **out, const char *file, GError **error)
{
  json_object *prov = NULL, *v = NULL;
  *out = NULL;
  if (!json_object_object_get_ex (root, "provenance", &prov))
    return TRUE;
  if (!json_object_is_type (prov, json_type_object))
    return invalid (error, file, "$.provenance", "an object", prov, TRUE);
  if (!json_object_object_get_ex (prov, "model_path", &v))
    return TRUE;
  if (!json_object_is_type (v, json_type_string))
    return invalid (error, file, "$.provenance.model_path", "a string", v, TRUE);
  *out = g_strdup (json_object_get_string (v));
  return TRUE;
}

LscRetrievalDetection *
lsc_retrieval_detection_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;
  if (!g_file_get_contents (path, &text, &len, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s: no such file", path);
      else
        g_set_error_literal (error, G_IO_ERROR, g_io_error_from_file_error (local->code),
                             local->message);
      return NULL;
    }
  g_autoptr(json_object) root = lsc_json_parse (path, text, len, G_IO_ERROR,
                                                G_IO_ERROR_INVALID_DATA, error);
  if (root == NULL)
    return NULL;
  if (!json_object_is_type (root, json_type_object))
    {
      invalid (error, path, "$", "an object (a batch job's results.json)", root, TRUE);
      return NULL;
    }
  json_object *sec = NULL, *model = NULL;
  if (!json_object_object_get_ex (root, "retrieval", &sec))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: $.retrieval: missing (not a retrieval result)", path);
      return NULL;
    }
  if (!json_object_is_type (sec, json_type_object))
    {
      invalid (error, path, "$.retrieval", "an object", sec, TRUE);
      return NULL;
    }
  gboolean has_model = json_object_object_get_ex (root, "model", &model);
  if (!json_object_is_type (model, json_type_object))
    {
      invalid (error, path, "$.model", "an object with n_layers and n_heads", model, has_model);
      return NULL;
    }

  /* validate everything before allocating the scores */
  int L, H, n_samples, n_passed;
  double mean_recall, threshold;
  if (!get_int (model, "$.model", "n_layers", 1, 1 << 16, &L, path, error)
      || !get_int (model, "$.model", "n_heads", 1, 1 << 16, &H, path, error))
    return NULL;
  if ((gint64) L * H > (1 << 24))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: $.model: %d layers x %d heads are too many heads", path, L, H);
      return NULL;
    }
  if (!get_int (sec, "$.retrieval", "n_samples", 0, G_MAXINT, &n_samples, path, error)
      || !get_int (sec, "$.retrieval", "n_passed", 0, n_samples, &n_passed, path, error)
      || !get_number (sec, "$.retrieval", "mean_recall", TRUE, &mean_recall, path, error)
      || !get_number (sec, "$.retrieval", "score_threshold", FALSE, &threshold, path, error))
    return NULL;
  g_autofree char *warning = NULL, *model_path = NULL;
  if (!get_warnings (sec, &warning, path, error) || !get_model_path (root, &model_path, path, error))
    return NULL;
  g_autofree double *scores = g_new (double, (gsize) L * H);
  if (!get_scores (sec, L, H, n_passed == 0, scores, path, error))
    return NULL;

  LscRetrievalDetection *d = g_new0 (LscRetrievalDetection, 1);
  d->n_layers = L;
  d->n_heads = H;
  d->n_samples = n_samples;
  d->n_passed = n_passed;
  d->mean_recall = mean_recall;
  d->scores = g_steal_pointer (&scores);
  d->ranking = g_new (int, (gsize) L * H);
  lsc_retrieval_rank (d->scores, L * H, d->ranking);
  d->score_threshold = threshold;
  for (int i = 0; i < L * H; i++)
    d->n_above += d->scores[i] > threshold;
  d->warning = g_steal_pointer (&warning);
  d->model_path = g_steal_pointer (&model_path);
  return d;
}

/* ---------------------------------------------------------------- async */

typedef struct {
  LscLoadedModel *model;
  LscRetrievalRunParams params;   /* strings owned */
  GMainContext *context;
  LscRetrievalProgressFunc progress;
  gpointer progress_data;

  GMutex lock;
  int done, total;
  guint idle;                     /* pending progress idle, 0 = none */
  gboolean finished;              /* _finish ran: no more progress calls */
} DetectData;

static void
detect_data_free (DetectData *data)
{
  g_object_unref (data->model);
  g_free ((char *) data->params.needle);
  g_free ((char *) data->params.question);
  g_free ((char *) data->params.answer);
  g_free ((char *) data->params.haystack_file);
  g_main_context_unref (data->context);
  g_mutex_clear (&data->lock);
  g_free (data);
}

static gboolean
publish_progress (gpointer user_data)
{
  GTask *task = user_data;
  DetectData *data = g_task_get_task_data (task);
  g_mutex_lock (&data->lock);
  data->idle = 0;
  int done = data->done, total = data->total;
  gboolean finished = data->finished;
  g_mutex_unlock (&data->lock);
  if (!finished && !g_cancellable_is_cancelled (g_task_get_cancellable (task)))
    data->progress (done, total, data->progress_data);
  return G_SOURCE_REMOVE;
}

/* worker thread */
static void
on_worker_progress (int done, int total, gpointer user_data)
{
  GTask *task = user_data;
  DetectData *data = g_task_get_task_data (task);
  g_mutex_lock (&data->lock);
  data->done = done;
  data->total = total;
  if (data->idle == 0)
    data->idle = lsc_progress_idle_attach (data->context, publish_progress, task,
                                           "[longscope] retrieval progress");
  g_mutex_unlock (&data->lock);
}

static void
detect_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  DetectData *data = task_data;
  GError *error = NULL;
  LscRetrievalDetection *d = lsc_retrieval_detect (data->model, &data->params,
                                                   data->progress != NULL ? on_worker_progress : NULL,
                                                   task, cancellable, &error);
  if (d == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, d, (GDestroyNotify) lsc_retrieval_detection_free);
}

void
lsc_retrieval_detect_async (LscLoadedModel *model, const LscRetrievalRunParams *params,
                            LscRetrievalProgressFunc progress, gpointer progress_data,
                            GCancellable *cancellable, GAsyncReadyCallback callback,
                            gpointer user_data)
{
  g_return_if_fail (LSC_IS_LOADED_MODEL (model));
  g_return_if_fail (params != NULL);
  DetectData *data = g_new0 (DetectData, 1);
  data->model = g_object_ref (model);
  data->params = *params;
  data->params.needle = g_strdup (params->needle);
  data->params.question = g_strdup (params->question);
  data->params.answer = g_strdup (params->answer);
  data->params.haystack_file = g_strdup (params->haystack_file);
  data->context = g_main_context_ref_thread_default ();
  data->progress = progress;
  data->progress_data = progress_data;
  g_mutex_init (&data->lock);
  g_autoptr(GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, lsc_retrieval_detect_async);
  g_task_set_task_data (task, data, (GDestroyNotify) detect_data_free);
  g_task_set_return_on_cancel (task, FALSE);
  g_task_run_in_thread (task, detect_thread);
}

LscRetrievalDetection *
lsc_retrieval_detect_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == lsc_retrieval_detect_async, NULL);
  DetectData *data = g_task_get_task_data (G_TASK (result));
  g_mutex_lock (&data->lock);
  data->finished = TRUE;
  g_mutex_unlock (&data->lock);
  return g_task_propagate_pointer (G_TASK (result), error);
}
