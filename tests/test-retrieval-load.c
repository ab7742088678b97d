/* SPDX-License-Identifier: MIT
 *
 * A retrieval batch job's results.json read back as the Retrieval Heads
 * view's detection (lsc_retrieval_detection_load, ui/lsc-retrieval-run.h):
 * the demo job's grid run by the batch runner and by lsc_retrieval_detect
 * gives the same detection (scores bit for bit, ranking, counts), a job
 * where no sample passed reads back as one, and every malformed file is
 * refused with a message naming the file and the JSON path.
 */
#include "config.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lsc-batch.h"
#include "lsc-demo.h"
#include "lsc-json.h"
#include "lsc-retrieval-run.h"
#include "lsc-test-util.h"

/* the demo model's grid, as the view runs it */
static void
demo_params (LscLoadedModel *m, LscRetrievalRunParams *p)
{
  lsc_retrieval_run_params_init (p, m);
  p->n_threads = 1;
}

/* The job a batch runner gets for the grid of p (no figures, no ablation). */
static char *
job_for (const LscRetrievalRunParams *p)
{
  g_autoptr(json_object) job = json_object_new_object ();
  json_object_object_add (job, "model", json_object_new_string (LSC_DEMO_INDUCTION));
  json_object_object_add (job, "threads", json_object_new_int (1));
  json_object *r = json_object_new_object ();
  json_object_object_add (job, "retrieval", r);
  json_object_object_add (r, "haystack_file", json_object_new_string (p->haystack_file));
  json_object *needle = json_object_new_object ();
  json_object_object_add (needle, "needle", json_object_new_string (p->needle));
  json_object_object_add (needle, "question", json_object_new_string (p->question));
  json_object_object_add (needle, "answer", json_object_new_string (p->answer));
  json_object *needles = json_object_new_array ();
  json_object_array_add (needles, needle);
  json_object_object_add (r, "needles", needles);
  json_object *lengths = json_object_new_array ();
  for (int i = 0; i < p->n_lengths; i++)
    json_object_array_add (lengths, json_object_new_int (p->context_lengths[i]));
  json_object_object_add (r, "context_lengths", lengths);
  json_object *depths = json_object_new_object ();
  json_object_object_add (depths, "min", json_object_new_int (0));
  json_object_object_add (depths, "max", json_object_new_int (100));
  json_object_object_add (depths, "n", json_object_new_int (p->n_depths));
  json_object_object_add (r, "depths", depths);
  json_object_object_add (r, "buffer_tokens", json_object_new_int (p->buffer_tokens));
  json_object_object_add (r, "cue_tokens", json_object_new_int (p->cue_tokens));
  json_object_object_add (r, "max_tokens", json_object_new_int (p->max_tokens));
  json_object_object_add (r, "recall_threshold", json_object_new_double (p->recall_threshold));
  json_object_object_add (r, "score_threshold", json_object_new_double (p->score_threshold));
  return g_strdup (json_object_to_json_string_ext (job, JSON_C_TO_STRING_PRETTY));
}


/* results.json of the demo grid run by the batch runner, made once */
static const char *
demo_results (void)
{
  static char *path;
  if (path == NULL)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(LscLoadedModel) m = lsc_loaded_model_load (LSC_DEMO_INDUCTION, NULL, &error);
      g_assert_no_error (error);
      LscRetrievalRunParams p;
      demo_params (m, &p);
      g_autofree char *job = job_for (&p);
      g_autofree char *job_path = lsc_test_write_file ("job.json", job, strlen (job));
      g_autofree char *out = g_build_filename (lsc_test_tmpdir (), "out", NULL);
      g_assert_cmpint (lsc_test_run_batch (job_path, out), ==, 0);
      path = g_build_filename (out, "results.json", NULL);
    }
  return path;
}

static void
assert_same_scores (const double *a, const double *b, int n)
{
  for (int i = 0; i < n; i++)
    if (!(isnan (a[i]) && isnan (b[i])))
      g_assert_cmpfloat (a[i], ==, b[i]);
}

static void
test_demo (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscRetrievalDetection) saved = lsc_retrieval_detection_load (demo_results (), &error);
  g_assert_no_error (error);
  g_assert_nonnull (saved);

  g_autoptr(LscLoadedModel) m = lsc_loaded_model_load (LSC_DEMO_INDUCTION, NULL, &error);
  g_assert_no_error (error);
  LscRetrievalRunParams p;
  demo_params (m, &p);
  g_autoptr(LscRetrievalDetection) d = lsc_retrieval_detect (m, &p, NULL, NULL, NULL, &error);
  g_assert_no_error (error);

  /* what results.json says: the copy head first with 12/13 in every sample */
  int L = saved->n_layers, H = saved->n_heads;
  g_assert_cmpint (L, ==, 2);
  g_assert_cmpint (H, ==, 4);
  g_assert_cmpint (saved->n_samples, ==, 6);
  g_assert_cmpint (saved->n_passed, ==, 6);
  g_assert_cmpfloat (saved->mean_recall, ==, 1.0);
  int copy = LSC_DEMO_INDUCTION_COPY_LAYER * H + LSC_DEMO_INDUCTION_COPY_HEAD;
  g_assert_cmpint (saved->ranking[0], ==, copy);
  g_assert_cmpfloat_with_epsilon (saved->scores[copy], 12.0 / 13, 1e-15);
  g_assert_cmpint (saved->n_above, ==, 1);
  g_assert_cmpfloat (saved->score_threshold, ==, 0.1);
  g_assert_cmpstr (saved->model_path, ==, LSC_DEMO_INDUCTION);
  g_assert_nonnull (strstr (saved->warning, "no chat template"));

  /* and what the view computes: the same detection */
  g_assert_cmpint (d->n_layers, ==, L);
  g_assert_cmpint (d->n_heads, ==, H);
  g_assert_cmpint (d->n_samples, ==, saved->n_samples);
  g_assert_cmpint (d->n_passed, ==, saved->n_passed);
  g_assert_cmpfloat (d->mean_recall, ==, saved->mean_recall);
  assert_same_scores (d->scores, saved->scores, L * H);
  for (int i = 0; i < L * H; i++)
    g_assert_cmpint (d->ranking[i], ==, saved->ranking[i]);
  g_assert_cmpint (d->n_above, ==, saved->n_above);
  g_assert_cmpfloat (d->score_threshold, ==, saved->score_threshold);
  g_assert_cmpstr (d->warning, ==, saved->warning);
  g_assert_cmpstr (d->model_path, ==, saved->model_path);

  /* the file's own ranking agrees with the recomputed one */
  g_autoptr(json_object) root = json_object_from_file (demo_results ());
  json_object *ranking = json_object_object_get (json_object_object_get (root, "retrieval"),
                                                 "ranking");
  g_assert_cmpint ((int) json_object_array_length (ranking), ==, L * H);
  for (int i = 0; i < L * H; i++)
    {
      json_object *e = json_object_array_get_idx (ranking, i);
      g_assert_cmpint (json_object_get_int (json_object_object_get (e, "layer")) * H
                       + json_object_get_int (json_object_object_get (e, "head")), ==,
                       saved->ranking[i]);
    }
}

/* The demo's results.json with `edit` applied, written as `name`. */
typedef void (*EditFunc) (json_object *root);

static char *
write_edited (const char *name, EditFunc edit)
{
  g_autoptr(json_object) root = json_object_from_file (demo_results ());
  g_assert_nonnull (root);
  edit (root);
  g_autofree char *path = g_build_filename (lsc_test_tmpdir (), name, NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true (lsc_json_write_file (root, path, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&path);
}

/* Loading `path` fails with `code` and exactly "path" + tail. */
static void
assert_load_error (const char *path, int code, const char *tail)
{
  g_autoptr(GError) error = NULL;
  g_assert_null (lsc_retrieval_detection_load (path, &error));
  g_assert_nonnull (error);
  g_autofree char *want = g_strconcat (path, tail, NULL);
  g_assert_cmpstr (error->message, ==, want);
  g_assert_error (error, G_IO_ERROR, code);
}

static void
test_missing_file (void)
{
  g_autofree char *path = g_build_filename (lsc_test_tmpdir (), "nowhere", "results.json", NULL);
  assert_load_error (path, G_IO_ERROR_NOT_FOUND, ": no such file");
}

static void
test_not_json (void)
{
  static const char text[] = "{\n  \"retrieval\": {\"scores\": [1, 2,]}\n}\n";
  g_autofree char *path = lsc_test_write_file ("not-json.json", text, strlen (text));
  assert_load_error (path, G_IO_ERROR_INVALID_DATA, ":2:33: not valid JSON: unexpected character");
  static const char empty[] = "";
  g_autofree char *path2 = lsc_test_write_file ("empty.json", empty, 0);
  assert_load_error (path2, G_IO_ERROR_INVALID_DATA, ":1:1: not valid JSON: unexpected end of text");
  static const char array[] = "[1, 2]";
  g_autofree char *path3 = lsc_test_write_file ("array.json", array, strlen (array));
  assert_load_error (path3, G_IO_ERROR_INVALID_DATA,
                     ": $: expected an object (a batch job's results.json), found [1,2]");
}

static void
drop_retrieval (json_object *root)
{
  json_object_object_del (root, "retrieval");
}

static void
test_not_retrieval (void)
{
  g_autofree char *path = write_edited ("no-retrieval.json", drop_retrieval);
  assert_load_error (path, G_IO_ERROR_INVALID_DATA, ": $.retrieval: missing (not a retrieval result)");
}

static json_object *
scores_of (json_object *root)
{
  return json_object_object_get (json_object_object_get (root, "retrieval"), "scores");
}

static void
string_score (json_object *root)
{
  json_object_array_put_idx (json_object_array_get_idx (scores_of (root), 1), 2,
                             json_object_new_string ("a"));
}

static void
bool_score (json_object *root)
{
  json_object_array_put_idx (json_object_array_get_idx (scores_of (root), 0), 3,
                             json_object_new_boolean (TRUE));
}

static void
test_wrong_type (void)
{
  g_autofree char *path = write_edited ("string-score.json", string_score);
  assert_load_error (path, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.scores[1][2]: expected a number or null, found \"a\"");
  g_autofree char *path2 = write_edited ("bool-score.json", bool_score);
  assert_load_error (path2, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.scores[0][3]: expected a number or null, found true");
}

static void
five_heads (json_object *root)
{
  json_object_object_add (json_object_object_get (root, "model"), "n_heads",
                          json_object_new_int (5));
}

static void
three_layers (json_object *root)
{
  json_object_object_add (json_object_object_get (root, "model"), "n_layers",
                          json_object_new_int (3));
}

static void
short_row (json_object *root)
{
  json_object_array_del_idx (json_object_array_get_idx (scores_of (root), 1), 3, 1);
}

static void
row_not_array (json_object *root)
{
  json_object_array_put_idx (scores_of (root), 0, json_object_new_int (7));
}

static void
null_scores (json_object *root)
{
  json_object_object_add (json_object_object_get (root, "retrieval"), "scores", NULL);
}

static void
test_wrong_shape (void)
{
  g_autofree char *p1 = write_edited ("five-heads.json", five_heads);
  assert_load_error (p1, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.scores[0]: expected 5 scores (model.n_heads), found 4");
  g_autofree char *p2 = write_edited ("three-layers.json", three_layers);
  assert_load_error (p2, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.scores: expected 3 rows (model.n_layers), found 2");
  g_autofree char *p3 = write_edited ("short-row.json", short_row);
  assert_load_error (p3, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.scores[1]: expected 4 scores (model.n_heads), found 3");
  g_autofree char *p4 = write_edited ("row-not-array.json", row_not_array);
  assert_load_error (p4, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.scores[0]: expected an array of 4 scores (model.n_heads), found 7");
  /* samples passed, so there must be scores */
  g_autofree char *p5 = write_edited ("null-scores.json", null_scores);
  assert_load_error (p5, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.scores: expected an array of 2 rows of 4 scores "
                     "(model.n_layers x model.n_heads), found null");
}

static void
bad_counts (json_object *root)
{
  json_object_object_add (json_object_object_get (root, "retrieval"), "n_passed",
                          json_object_new_int (7));
}

static void
no_model (json_object *root)
{
  json_object_object_del (root, "model");
}

static void
string_threshold (json_object *root)
{
  json_object_object_add (json_object_object_get (root, "retrieval"), "score_threshold",
                          json_object_new_string ("0.1"));
}

static void
bad_warning (json_object *root)
{
  json_object *w = json_object_object_get (json_object_object_get (root, "retrieval"), "warnings");
  json_object_array_add (w, json_object_new_int (3));
}

static void
test_wrong_fields (void)
{
  g_autofree char *p1 = write_edited ("bad-counts.json", bad_counts);
  assert_load_error (p1, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.n_passed: expected an integer in [0, 6], found 7");
  g_autofree char *p2 = write_edited ("no-model.json", no_model);
  assert_load_error (p2, G_IO_ERROR_INVALID_DATA,
                     ": $.model: expected an object with n_layers and n_heads, found nothing");
  g_autofree char *p3 = write_edited ("string-threshold.json", string_threshold);
  assert_load_error (p3, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.score_threshold: expected a number, found \"0.1\"");
  g_autofree char *p4 = write_edited ("bad-warning.json", bad_warning);
  assert_load_error (p4, G_IO_ERROR_INVALID_DATA,
                     ": $.retrieval.warnings[1]: expected a string, found 3");
}

/* as a job writes it when no sample passed: scores, ranking and the count null */
static void
none_passed (json_object *root)
{
  json_object *r = json_object_object_get (root, "retrieval");
  json_object_object_add (r, "status", json_object_new_string ("no_successful_samples"));
  json_object_object_add (r, "n_passed", json_object_new_int (0));
  json_object_object_add (r, "scores", NULL);
  json_object_object_add (r, "ranking", NULL);
  json_object_object_add (r, "n_heads_above_threshold", NULL);
}

/* a head without a score (null) ranks last */
static void
null_cell (json_object *root)
{
  json_object_array_put_idx (json_object_array_get_idx (scores_of (root), 0), 0, NULL);
}

static void
test_nulls (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *p1 = write_edited ("none-passed.json", none_passed);
  g_autoptr(LscRetrievalDetection) d = lsc_retrieval_detection_load (p1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (d->n_passed, ==, 0);
  g_assert_cmpint (d->n_samples, ==, 6);
  g_assert_cmpint (d->n_above, ==, 0);
  for (int i = 0; i < d->n_layers * d->n_heads; i++)
    {
      g_assert_true (isnan (d->scores[i]));
      g_assert_cmpint (d->ranking[i], ==, i);   /* as lsc_retrieval_summarize () ranks NaN */
    }

  g_autofree char *p2 = write_edited ("null-cell.json", null_cell);
  g_autoptr(LscRetrievalDetection) e = lsc_retrieval_detection_load (p2, &error);
  g_assert_no_error (error);
  int n = e->n_layers * e->n_heads;
  g_assert_true (isnan (e->scores[0]));
  g_assert_cmpint (e->ranking[n - 1], ==, 0);
  g_assert_cmpint (e->ranking[0], ==, LSC_DEMO_INDUCTION_COPY_LAYER * e->n_heads
                                      + LSC_DEMO_INDUCTION_COPY_HEAD);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ui/RetrievalLoad/demo", test_demo);
  g_test_add_func ("/ui/RetrievalLoad/nulls", test_nulls);
  g_test_add_func ("/ui/RetrievalLoad/missing-file", test_missing_file);
  g_test_add_func ("/ui/RetrievalLoad/not-json", test_not_json);
  g_test_add_func ("/ui/RetrievalLoad/not-retrieval", test_not_retrieval);
  g_test_add_func ("/ui/RetrievalLoad/wrong-type", test_wrong_type);
  g_test_add_func ("/ui/RetrievalLoad/wrong-shape", test_wrong_shape);
  g_test_add_func ("/ui/RetrievalLoad/wrong-fields", test_wrong_fields);
  return g_test_run ();
}
