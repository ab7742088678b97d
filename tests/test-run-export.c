/* SPDX-License-Identifier: MIT
 *
 * A finished run as a batch job and as batch results, headless (no GTK):
 * lsc_run_save_job writes the job that `longscope --batch` reruns to the
 * same tokens, and lsc_run_export writes what that batch run writes
 * (results.json, tensors.safetensors), timings aside; lsc_run_open reads
 * such results back into a run equal to the one exported (the same tokens,
 * statistics and, from the saved store, the same attention bit for bit).
 * A run under a KV policy saves its job's "kv" section, exports the batch
 * runner's "kv" results and reopens with its log and comparison. Errors
 * name the file.
 */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsc-batch.h"
#include "lsc-demo.h"
#include "lsc-error.h"
#include "lsc-json.h"
#include "lsc-run-compare.h"
#include "lsc-run-export.h"
#include "lsc-run-open.h"
#include "lsc-test-util.h"

#define PROMPT "abcdefgh abcdefgh"

/* ------------------------------------------------------------ helpers */

/* Runs p on the model at path, to the end. */
static LscRun *
run_model (const char *path, const LscRunParams *p)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscLoadedModel) model = lsc_loaded_model_load (path, NULL, &error);
  g_assert_no_error (error);
  LscRun *run = lsc_run_new (model, p);
  g_assert_true (lsc_test_execute_run (run, FALSE, &error));
  g_assert_no_error (error);
  return run;
}

static LscRun *
demo_run (int max_tokens, gboolean capture, float temperature, guint64 seed)
{
  LscRunParams p;
  lsc_run_params_init (&p);
  p.prompt = PROMPT;
  p.max_tokens = max_tokens;
  p.capture = capture;
  p.temperature = temperature;
  p.seed = seed;
  p.n_threads = 1;
  return run_model (LSC_DEMO_INDUCTION, &p);
}

/* A fresh path under the test's scratch folder. */
static char *
scratch (const char *name)
{
  static int n;
  g_autofree char *unique = g_strdup_printf ("%d-%s", n++, name);
  return g_build_filename (lsc_test_tmpdir (), unique, NULL);
}

/* Parses a JSON file strictly (no duplicate keys) or fails the test. */
static json_object *
read_json (const char *path)
{
  g_autoptr(GBytes) bytes = lsc_test_read_file (path);
  gsize len;
  const char *text = g_bytes_get_data (bytes, &len);
  g_autoptr(GError) error = NULL;
  json_object *o = lsc_json_parse (path, text, len, LSC_JOB_ERROR, LSC_JOB_ERROR_SYNTAX, &error);
  g_assert_no_error (error);
  g_assert_true (json_object_is_type (o, json_type_object));
  return o;
}

static json_object *
read_results (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "results.json", NULL);
  return read_json (path);
}

static json_object *
member (json_object *o, const char *key)
{
  json_object *v = NULL;
  if (!json_object_object_get_ex (o, key, &v))
    g_error ("no \"%s\" in %s", key, json_object_to_json_string (o));
  return v;
}


static void
assert_ints (json_object *array, const gint32 *expected, int n)
{
  g_assert_true (json_object_is_type (array, json_type_array));
  g_assert_cmpint ((int) json_object_array_length (array), ==, n);
  for (int i = 0; i < n; i++)
    g_assert_cmpint (json_object_get_int (json_object_array_get_idx (array, i)), ==, expected[i]);
}

/* The F32 tensor `name` of a safetensors file, checked to be [rows, cols]. */
static const float *
tensor_2d (GBytes *file, const char *name, int rows, int cols)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (file, &size);
  guint64 hlen;
  g_assert_cmpuint (size, >=, 8);
  memcpy (&hlen, data, 8);
  g_assert_cmpuint (8 + hlen, <=, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) header = lsc_json_parse ("tensors.safetensors", (const char *) data + 8,
                                                  hlen, LSC_JOB_ERROR, LSC_JOB_ERROR_SYNTAX, &error);
  g_assert_no_error (error);
  json_object *t = member (header, name);
  g_assert_cmpstr (json_object_get_string (member (t, "dtype")), ==, "F32");
  json_object *shape = member (t, "shape");
  g_assert_cmpint ((int) json_object_array_length (shape), ==, 2);
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (shape, 0)), ==, rows);
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (shape, 1)), ==, cols);
  json_object *off = member (t, "data_offsets");
  gint64 begin = json_object_get_int64 (json_object_array_get_idx (off, 0));
  gint64 end = json_object_get_int64 (json_object_array_get_idx (off, 1));
  g_assert_cmpint (end - begin, ==, (gint64) rows * cols * 4);
  g_assert_cmpuint (8 + hlen + end, <=, size);
  return (const float *) (data + 8 + hlen + begin);
}

/* Saves the run's job, reruns it as a batch job, exports the run; checks
 * that the batch generated the run's tokens and that the export is what
 * the batch wrote, timings aside. Returns the export's folder. */
static char *
check_reproduced (LscRun *run)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *job_path = scratch ("job.json");
  g_autofree char *batch_dir = scratch ("batch");
  char *export_dir = scratch ("export");

  g_assert_true (lsc_run_save_job (run, job_path, &error));
  g_assert_no_error (error);
  g_assert_cmpint (lsc_test_run_batch (job_path, batch_dir), ==, 0);
  g_assert_true (lsc_run_export (run, export_dir, &error));
  g_assert_no_error (error);

  int n_tokens, n_prompt;
  const gint32 *tokens = lsc_run_get_tokens (run, &n_tokens, &n_prompt);
  g_autoptr(json_object) b = read_results (batch_dir);
  g_autoptr(json_object) e = read_results (export_dir);
  g_autoptr(json_object) job = read_json (job_path);
  g_assert_cmpstr (json_object_get_string (member (b, "status")), ==, "done");
  assert_ints (member (b, "prompt_tokens"), tokens, n_prompt);
  if (lsc_run_get_params (run)->max_tokens > 0)
    assert_ints (member (b, "tokens"), tokens + n_prompt, n_tokens - n_prompt);
  else
    g_assert_false (json_object_object_get_ex (b, "tokens", NULL));

  /* the same keys in the same order, the same values but for the timings */
  g_assert_true (json_object_equal (member (b, "job"), job));
  g_assert_true (json_object_equal (member (e, "job"), job));
  g_assert_cmpint (json_object_object_length (e), ==, json_object_object_length (b));
  struct json_object_iterator bi = json_object_iter_begin (b), ei = json_object_iter_begin (e);
  struct json_object_iterator bend = json_object_iter_end (b);
  for (; !json_object_iter_equal (&bi, &bend); json_object_iter_next (&bi), json_object_iter_next (&ei))
    {
      const char *key = json_object_iter_peek_name (&bi);
      g_assert_cmpstr (json_object_iter_peek_name (&ei), ==, key);
      json_object *bv = json_object_iter_peek_value (&bi), *ev = json_object_iter_peek_value (&ei);
      if (strcmp (key, "timings") == 0)
        {
          g_assert_true (json_object_object_get_ex (ev, "total_s", NULL));
          continue;
        }
      if (!json_object_equal (bv, ev))
        g_error ("results.json differ at \"%s\":\nbatch: %s\nexport: %s", key,
                 json_object_to_json_string (bv), json_object_to_json_string (ev));
    }

  /* the same arrays */
  g_autofree char *bt = g_build_filename (batch_dir, "tensors.safetensors", NULL);
  g_autofree char *et = g_build_filename (export_dir, "tensors.safetensors", NULL);
  g_assert_cmpint (g_file_test (bt, G_FILE_TEST_EXISTS), ==, g_file_test (et, G_FILE_TEST_EXISTS));
  if (g_file_test (bt, G_FILE_TEST_EXISTS))
    {
      g_autoptr(GBytes) bb = lsc_test_read_file (bt);
      g_autoptr(GBytes) eb = lsc_test_read_file (et);
      g_assert_true (g_bytes_equal (bb, eb));
    }
  return export_dir;
}

/* ---------------------------------------------------------------- tests */

static void
test_save_job (void)
{
  g_autoptr(LscRun) run = demo_run (8, TRUE, 0.0f, 0);
  g_autoptr(GError) error = NULL;
  g_autofree char *path = scratch ("job.json");
  g_assert_true (lsc_run_save_job (run, path, &error));
  g_assert_no_error (error);

  g_autoptr(json_object) job = read_json (path);
  static const char *const keys[] = { "schema_version", "model", "backend", "threads", "n_ctx",
                                      "prompt", "bos", "max_tokens", "temperature", "seed",
                                      "capture", NULL };
  g_assert_cmpint (json_object_object_length (job), ==, (int) g_strv_length ((char **) keys));
  int i = 0;
  json_object_object_foreach (job, key, val)
    {
      (void) val;
      g_assert_cmpstr (key, ==, keys[i++]);
    }
  g_assert_cmpint (json_object_get_int (member (job, "schema_version")), ==, 1);
  g_assert_cmpstr (json_object_get_string (member (job, "model")), ==, LSC_DEMO_INDUCTION);
  g_assert_cmpstr (json_object_get_string (member (job, "backend")), ==, "auto");
  g_assert_true (json_object_is_type (member (job, "threads"), json_type_int));
  g_assert_cmpint (json_object_get_int (member (job, "threads")), ==, 1);
  /* the run's context: BOS + 17 characters + 8 new tokens + 1 */
  g_assert_cmpint (json_object_get_int (member (job, "n_ctx")), ==,
                   lsc_session_get_params (lsc_run_get_session (run))->n_ctx);
  g_assert_cmpint (json_object_get_int (member (job, "n_ctx")), ==, 27);
  g_assert_cmpstr (json_object_get_string (member (job, "prompt")), ==, PROMPT);
  g_assert_true (json_object_is_type (member (job, "bos"), json_type_boolean));
  g_assert_true (json_object_get_boolean (member (job, "bos")));
  g_assert_cmpint (json_object_get_int (member (job, "max_tokens")), ==, 8);
  g_assert_cmpfloat (json_object_get_double (member (job, "temperature")), ==, 0.0);
  g_assert_true (json_object_is_type (member (job, "seed"), json_type_int));
  g_assert_cmpint (json_object_get_int64 (member (job, "seed")), ==, 0);
  json_object *capture = member (job, "capture");
  g_assert_cmpint (json_object_object_length (capture), ==, 4);
  g_assert_cmpstr (json_object_get_string (member (capture, "rows")), ==, "all");
  g_assert_true (json_object_get_boolean (member (capture, "stats")));
  g_assert_true (json_object_get_boolean (member (capture, "store")));
  g_assert_cmpint (json_object_get_int (member (capture, "sink_tokens")), ==, LSC_RUN_SINK_TOKENS);

  /* what lsc_run_dup_job gives, pretty, ending in a newline */
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_assert_true (g_str_has_suffix (text, "}\n"));
  g_autofree char *dup = lsc_run_dup_job (run, &error);
  g_assert_no_error (error);
  g_autofree char *with_nl = g_strconcat (dup, "\n", NULL);
  g_assert_cmpstr (text, ==, with_nl);
  /* no temporary file left beside it */
  g_autofree char *dir = g_path_get_dirname (path);
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  g_autofree char *base = g_path_get_basename (path);
  const char *name;
  while ((name = g_dir_read_name (d)) != NULL)
    g_assert_false (g_str_has_prefix (name, base) && strcmp (name, base) != 0);
}

/* The batch reruns the saved job to the same tokens, and writes what the
 * export writes. */
static void
test_batch_reproduces (void)
{
  g_autoptr(LscRun) run = demo_run (8, TRUE, 0.0f, 0);
  g_assert_cmpstr (lsc_run_get_output (run), ==, " abcdefg");
  g_free (check_reproduced (run));
}

/* A sampled run: same seed, same tokens. */
static void
test_sampled (void)
{
  g_autoptr(LscRun) run = demo_run (12, TRUE, 1.3f, 987654321);
  g_autoptr(GError) error = NULL;
  g_autofree char *text = lsc_run_dup_job (run, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (text, "\"temperature\": 1.3,"));
  g_assert_nonnull (strstr (text, "\"seed\": 987654321"));
  g_free (check_reproduced (run));
}

/* Without capture: no "capture" in the job, no arrays. Without new tokens:
 * the prompt alone, as a batch job runs it. */
static void
test_variants (void)
{
  g_autoptr(LscRun) plain = demo_run (8, FALSE, 0.0f, 0);
  g_autoptr(GError) error = NULL;
  g_autofree char *text = lsc_run_dup_job (plain, &error);
  g_assert_no_error (error);
  g_assert_null (strstr (text, "capture"));
  g_autofree char *dir = check_reproduced (plain);
  g_autoptr(json_object) res = read_results (dir);
  g_assert_false (json_object_object_get_ex (res, "attention", NULL));
  g_assert_false (json_object_object_get_ex (res, "tensors_file", NULL));
  g_autofree char *tensors = g_build_filename (dir, "tensors.safetensors", NULL);
  g_assert_false (g_file_test (tensors, G_FILE_TEST_EXISTS));

  g_autoptr(LscRun) prefill = demo_run (0, TRUE, 0.0f, 0);
  g_autofree char *dir2 = check_reproduced (prefill);
  g_autoptr(json_object) res2 = read_results (dir2);
  g_assert_false (json_object_object_get_ex (res2, "text", NULL));
  g_assert_true (json_object_object_get_ex (res2, "attention", NULL));
}

/* A run with a plugin: the job names it with every value, the batch
 * reproduces it (tokens, log-probabilities, statistics and the store with
 * its per-row scales, byte for byte), and the plugin changed the run. */
static void
test_plugins (void)
{
  g_autoptr(GError) error = NULL;
  const LscPluginInfo *info = lsc_plugin_find ("selective-attention", &error);
  g_assert_no_error (error);
  double values[LSC_PLUGIN_MAX_PARAMS];
  lsc_plugin_get_defaults (info, values);
  values[0] = 1.5;
  g_autoptr(LscPluginStack) stack = lsc_plugin_stack_new ();
  g_assert_true (lsc_plugin_stack_add (stack, info, values, &error));

  LscRunParams p;
  lsc_run_params_init (&p);
  p.prompt = PROMPT;
  p.max_tokens = 8;
  p.n_threads = 1;
  p.plugins = stack;
  g_autoptr(LscRun) run = run_model (LSC_DEMO_INDUCTION, &p);
  g_assert_true (lsc_run_get_params (run)->plugins != stack);   /* the run's own copy */
  g_autoptr(LscRun) plain = demo_run (8, TRUE, 0.0f, 0);

  g_autofree char *text = lsc_run_dup_job (run, &error);
  g_assert_no_error (error);
  g_autoptr(json_object) job = json_tokener_parse (text);
  g_assert_cmpstr (json_object_to_json_string_ext (member (job, "plugins"), JSON_C_TO_STRING_PLAIN),
                   ==, "[{\"id\":\"selective-attention\",\"alpha\":1.5,\"form\":\"position\","
                       "\"train_length\":0,\"first_layer\":0,\"last_layer\":-1}]");
  g_autofree char *dir = check_reproduced (run);
  g_autoptr(json_object) res = read_results (dir);
  g_assert_cmpint ((int) json_object_array_length (member (res, "plugins")), ==, 1);

  /* demo:induction's heads are near one-hot already: the temperature shows
   * in their entropies more than in the tokens */
  int nl, nh;
  const LscHeadStats *st = lsc_run_get_head_stats (run, &nl, &nh);
  const LscHeadStats *st_plain = lsc_run_get_head_stats (plain, &nl, &nh);
  double sum = 0, sum_plain = 0;
  for (int i = 0; i < nl * nh; i++)
    sum += st[i].entropy, sum_plain += st_plain[i].entropy;
  g_test_message ("mean head entropy: %.4f nats with alpha 1.5, %.4f without", sum / (nl * nh),
                  sum_plain / (nl * nh));
  g_assert_cmpfloat (sum, <, 0.9 * sum_plain);
}

/* The export's fields, and its statistics are the run's. */
static void
test_export (void)
{
  g_autoptr(LscRun) run = demo_run (8, TRUE, 0.0f, 0);
  g_autoptr(GError) error = NULL;
  /* a folder that does not exist yet, two levels deep */
  g_autofree char *parent = scratch ("new");
  g_autofree char *dir = g_build_filename (parent, "run", NULL);
  g_assert_true (lsc_run_export (run, dir, &error));
  g_assert_no_error (error);

  int n_tokens, n_prompt;
  const gint32 *tokens = lsc_run_get_tokens (run, &n_tokens, &n_prompt);
  g_assert_cmpint (n_prompt, ==, 18);
  g_assert_cmpint (n_tokens, ==, 26);
  g_autoptr(json_object) res = read_results (dir);
  static const char *const keys[] = { "schema_version", "status", "job", "model", "prompt_tokens",
                                      "text", "tokens", "logprobs", "attention", "tensors_file",
                                      "provenance", "timings", "warnings", NULL };
  int i = 0;
  json_object_object_foreach (res, key, val)
    {
      (void) val;
      g_assert_cmpstr (key, ==, keys[i++]);
    }
  g_assert_null (keys[i]);
  g_assert_cmpint (json_object_get_int (member (res, "schema_version")), ==, 1);
  g_assert_cmpstr (json_object_get_string (member (res, "status")), ==, "done");
  g_autofree char *job_text = lsc_run_dup_job (run, &error);
  g_assert_no_error (error);
  g_autoptr(json_object) job = json_tokener_parse (job_text);
  g_assert_true (json_object_equal (member (res, "job"), job));
  g_assert_cmpint (json_object_get_int (member (member (res, "model"), "n_layers")), ==, 2);
  g_assert_cmpint (json_object_get_int (member (member (res, "model"), "n_heads")), ==, 4);
  assert_ints (member (res, "prompt_tokens"), tokens, n_prompt);
  assert_ints (member (res, "tokens"), tokens + n_prompt, n_tokens - n_prompt);
  g_assert_cmpstr (json_object_get_string (member (res, "text")), ==, " abcdefg");
  json_object *lps = member (res, "logprobs");
  int n_lp;
  const double *lp = lsc_run_get_logprobs (run, &n_lp);
  g_assert_cmpint (n_lp, ==, 8);
  g_assert_cmpint ((int) json_object_array_length (lps), ==, 8);
  for (int k = 0; k < 8; k++)
    {
      g_assert_cmpfloat (lp[k], <=, 0.0);
      g_assert_cmpfloat (json_object_get_double (json_object_array_get_idx (lps, k)), ==, lp[k]);
    }
  const LscAttentionStore *store = lsc_run_get_attention (run);
  json_object *rows = member (member (res, "attention"), "rows");
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (rows, 0)), ==, 0);
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (rows, 1)), ==,
                   lsc_attention_get_n_rows (store));
  g_assert_cmpstr (json_object_get_string (member (res, "tensors_file")), ==, "tensors.safetensors");
  json_object *prov = member (res, "provenance");
  g_assert_cmpstr (json_object_get_string (member (prov, "model_path")), ==, LSC_DEMO_INDUCTION);
  g_assert_cmpstr (json_object_get_string (member (prov, "backend")), ==,
                   lsc_backend_name (lsc_session_get_backend (lsc_run_get_session (run))));
  g_assert_cmpint (json_object_get_int (member (prov, "threads")), ==, 1);
  json_object *timings = member (res, "timings");
  g_assert_cmpint (json_object_get_int (member (timings, "prefill_tokens")), ==, n_prompt - 1);
  g_assert_cmpint (json_object_get_int (member (timings, "decode_tokens")), ==, 8);
  g_assert_cmpfloat (json_object_get_double (member (timings, "total_s")), >, 0.0);
  g_assert_true (json_object_is_type (member (res, "warnings"), json_type_array));

  /* attn.stats.*: [n_layers, n_heads] F32, the run's statistics */
  int nl, nh;
  const LscHeadStats *stats = lsc_run_get_head_stats (run, &nl, &nh);
  g_assert_nonnull (stats);
  g_autofree char *tpath = g_build_filename (dir, "tensors.safetensors", NULL);
  g_autoptr(GBytes) file = lsc_test_read_file (tpath);
  const float *entropy = tensor_2d (file, "attn.stats.entropy", nl, nh);
  const float *sink = tensor_2d (file, "attn.stats.sink_mass", nl, nh);
  const float *maxp = tensor_2d (file, "attn.stats.max_prob", nl, nh);
  const float *dist = tensor_2d (file, "attn.stats.mean_distance", nl, nh);
  for (int k = 0; k < nl * nh; k++)
    {
      g_assert_cmpfloat (entropy[k], ==, (float) stats[k].entropy);
      g_assert_cmpfloat (sink[k], ==, (float) stats[k].sink_mass);
      g_assert_cmpfloat (maxp[k], ==, (float) stats[k].max_prob);
      g_assert_cmpfloat (dist[k], ==, (float) stats[k].mean_distance);
      g_assert_true (isfinite (entropy[k]));
    }

  /* exporting again replaces the files */
  g_assert_true (lsc_run_export (run, dir, &error));
  g_assert_no_error (error);
}

/* A model opened by a relative path: the job names it absolutely, and a
 * llama2.c checkpoint (which stops at BOS) reruns to the same tokens. */
static void
test_relative_model (void)
{
  g_autofree char *model = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  g_autofree char *cwd = g_get_current_dir ();
  g_autofree char *dir = g_path_get_dirname (model);
  g_assert_cmpint (g_chdir (dir), ==, 0);
  LscRunParams p;
  lsc_run_params_init (&p);
  p.prompt = "Once upon a time";
  p.max_tokens = 24;
  p.n_threads = 1;
  g_autoptr(LscRun) run = run_model ("stories260K.bin", &p);
  g_assert_cmpint (g_chdir (cwd), ==, 0);

  g_autoptr(GError) error = NULL;
  g_autofree char *text = lsc_run_dup_job (run, &error);
  g_assert_no_error (error);
  g_autoptr(json_object) job = json_tokener_parse (text);
  /* the same file (the shared folder may lie behind a symbolic link) */
  const char *saved = json_object_get_string (member (job, "model"));
  g_assert_true (g_path_is_absolute (saved));
  g_autofree char *saved_real = realpath (saved, NULL);
  g_autofree char *model_real = realpath (model, NULL);
  g_assert_nonnull (saved_real);
  g_assert_cmpstr (saved_real, ==, model_real);
  g_free (check_reproduced (run));
}

static void
test_errors (void)
{
  g_autoptr(LscRun) run = demo_run (4, TRUE, 0.0f, 0);
  g_autoptr(GError) error = NULL;

  /* into a regular file, and below one */
  g_autofree char *file = lsc_test_write_file ("plain", "x", 1);
  g_assert_false (lsc_run_export (run, file, &error));
  lsc_test_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOTDIR, file, NULL);
  g_clear_error (&error);
  g_autofree char *below = g_build_filename (file, "run", NULL);
  g_assert_false (lsc_run_export (run, below, &error));
  lsc_test_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOTDIR, below, NULL);
  g_clear_error (&error);
  g_assert_false (lsc_run_save_job (run, below, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, below));
  g_clear_error (&error);

  /* a folder whose results.json cannot be written (a folder is in the way:
   * unwritable even for root), then one whose tensors.safetensors cannot */
  g_autofree char *blocked = scratch ("blocked");
  g_autofree char *results = g_build_filename (blocked, "results.json", NULL);
  g_assert_cmpint (g_mkdir_with_parents (results, 0755), ==, 0);
  g_assert_false (lsc_run_export (run, blocked, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, results));
  g_clear_error (&error);
  g_assert_false (lsc_run_save_job (run, results, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, results));
  g_clear_error (&error);
  g_autofree char *blocked2 = scratch ("blocked2");
  g_autofree char *tensors = g_build_filename (blocked2, "tensors.safetensors", NULL);
  g_assert_cmpint (g_mkdir_with_parents (tensors, 0755), ==, 0);
  g_assert_false (lsc_run_export (run, blocked2, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, tensors));
  g_clear_error (&error);

  /* a read-only folder (not for root, whom permissions do not stop) */
  g_autofree char *ro = scratch ("read-only");
  g_assert_cmpint (g_mkdir (ro, 0555), ==, 0);
  if (access (ro, W_OK) != 0)
    {
      g_autofree char *inside = g_build_filename (ro, "run", NULL);
      g_assert_false (lsc_run_export (run, inside, &error));
      lsc_test_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_ACCES, inside, NULL);
      g_clear_error (&error);
      g_autofree char *job = g_build_filename (ro, "job.json", NULL);
      g_assert_false (lsc_run_save_job (run, job, &error));
      g_assert_nonnull (error);
      g_assert_nonnull (strstr (error->message, job));
      g_clear_error (&error);
    }
  g_chmod (ro, 0755);

  /* a run that has not run */
  g_autoptr(GError) load_error = NULL;
  g_autoptr(LscLoadedModel) model = lsc_loaded_model_load (LSC_DEMO_INDUCTION, NULL, &load_error);
  g_assert_no_error (load_error);
  LscRunParams p;
  lsc_run_params_init (&p);
  g_autoptr(LscRun) idle = lsc_run_new (model, &p);
  g_autofree char *never = scratch ("never.json");
  g_assert_false (lsc_run_save_job (idle, never, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED);
  g_clear_error (&error);
  g_assert_false (lsc_run_export (idle, never, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED);
  g_clear_error (&error);
  g_assert_false (g_file_test (never, G_FILE_TEST_EXISTS));
}


/* ---------------------------------------------------- reopening results */

/* An exported run reopens as the same run: tokens, text, log-probabilities,
 * settings, statistics, and from the saved store the same maps bit for bit. */
static void
test_reopen (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscRun) run = demo_run (8, TRUE, 0.0f, 0);
  g_autofree char *dir = scratch ("reopen");
  g_assert_true (lsc_run_export (run, dir, &error));
  g_assert_no_error (error);

  LscResultsInfo info;
  g_assert_true (lsc_results_info_read (dir, &info, &error));
  g_assert_no_error (error);
  g_assert_true (info.is_run);
  g_assert_false (info.is_retrieval);
  g_assert_true (info.has_store);
  g_assert_cmpstr (info.model_path, ==, LSC_DEMO_INDUCTION);
  g_assert_cmpstr (info.status, ==, "done");
  g_assert_cmpstr (info.dir, ==, dir);
  lsc_results_info_clear (&info);

  g_autofree char *file = g_build_filename (dir, "results.json", NULL);
  g_autoptr(LscRun) back = lsc_run_open (lsc_run_get_model (run), file, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (lsc_run_get_source (back), ==, dir);
  g_assert_null (lsc_run_get_source (run));

  int n, n_prompt, n2, n_prompt2;
  const gint32 *t = lsc_run_get_tokens (run, &n, &n_prompt);
  const gint32 *t2 = lsc_run_get_tokens (back, &n2, &n_prompt2);
  g_assert_cmpint (n_prompt2, ==, n_prompt);
  g_assert_cmpmem (t2, n2 * sizeof (gint32), t, n * sizeof (gint32));
  g_assert_cmpstr (lsc_run_get_output (back), ==, lsc_run_get_output (run));
  int nl, nl2;
  const double *lp = lsc_run_get_logprobs (run, &nl), *lp2 = lsc_run_get_logprobs (back, &nl2);
  g_assert_cmpint (nl, ==, n - n_prompt);
  g_assert_cmpmem (lp2, nl2 * sizeof (double), lp, nl * sizeof (double));   /* %.17g */
  const LscRunParams *p = lsc_run_get_params (run), *p2 = lsc_run_get_params (back);
  g_assert_cmpstr (p2->prompt, ==, p->prompt);
  g_assert_cmpint (p2->max_tokens, ==, p->max_tokens);
  g_assert_cmpfloat (p2->temperature, ==, p->temperature);
  g_assert_cmpuint (p2->seed, ==, p->seed);
  g_assert_true (p2->capture);
  g_assert_cmpint (p2->n_threads, ==, 1);

  int L, H, L2, H2;
  const LscHeadStats *st = lsc_run_get_head_stats (run, &L, &H);
  const LscHeadStats *st2 = lsc_run_get_head_stats (back, &L2, &H2);
  g_assert_cmpint (L2, ==, L);
  g_assert_cmpint (H2, ==, H);
  for (int k = 0; k < L * H; k++)
    {
      g_assert_cmpfloat (st2[k].entropy, ==, (float) st[k].entropy);
      g_assert_cmpfloat (st2[k].sink_mass, ==, (float) st[k].sink_mass);
    }

  const LscAttentionStore *a = lsc_run_get_attention (run), *b = lsc_run_get_attention (back);
  g_assert_nonnull (b);
  g_assert_cmpint (lsc_attention_get_n_rows (b), ==, lsc_attention_get_n_rows (a));
  int rows = lsc_attention_get_n_rows (a);
  g_autofree float *ta = g_new (float, rows * rows), *tb = g_new (float, rows * rows);
  for (int l = 0; l < L; l++)
    for (int h = 0; h < H; h++)
      {
        g_assert_true (lsc_attention_tile (a, l, h, 0, rows, 0, rows, NAN, ta, &error));
        g_assert_true (lsc_attention_tile (b, l, h, 0, rows, 0, rows, NAN, tb, &error));
        g_assert_cmpmem (ta, rows * rows * sizeof (float), tb, rows * rows * sizeof (float));
      }

  /* A/B of a run and its reopened self: nothing differs */
  LscRunCompare c;
  g_assert_true (lsc_run_compare (run, back, 1, 2, &c, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.n, ==, rows);
  g_assert_cmpfloat (c.max_abs, ==, 0.0);
  g_assert_cmpfloat (c.delta_logprob, ==, 0.0);
  lsc_run_compare_clear (&c);

  /* its job is the saved one; its results are where it came from */
  g_autofree char *job = lsc_run_dup_job (run, &error);
  g_autofree char *job2 = lsc_run_dup_job (back, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (job2, ==, job);
  g_autofree char *again = scratch ("reopen-again");
  g_assert_false (lsc_run_export (back, again, &error));
  lsc_test_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                         "the run was opened from ", dir, NULL);
}

/* Writes text as DIR/results.json in a fresh folder; returns the folder. */
static char *
results_folder (const char *name, const char *text)
{
  char *dir = scratch (name);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  g_autofree char *file = g_build_filename (dir, "results.json", NULL);
  g_assert_true (g_file_set_contents (file, text, -1, NULL));
  return dir;
}

static void
test_reopen_errors (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscRun) run = demo_run (4, TRUE, 0.0f, 0);
  LscLoadedModel *demo = lsc_run_get_model (run);
  g_autofree char *dir = scratch ("reopen-bad");
  g_assert_true (lsc_run_export (run, dir, &error));
  g_autofree char *file = g_build_filename (dir, "results.json", NULL);
  LscResultsInfo info;

  /* no results there */
  g_autofree char *none = scratch ("no-such-results");
  g_assert_null (lsc_run_open (demo, none, &error));
  lsc_test_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT, none, NULL);
  g_clear_error (&error);

  /* JSON, but not Longscope's */
  g_autofree char *other = results_folder ("other", "{\"a\": 1}");
  g_assert_false (lsc_results_info_read (other, &info, &error));
  lsc_test_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, other,
                         "$.schema_version: expected 1 (Longscope results), found nothing", NULL);
  g_clear_error (&error);

  /* a detection is no run */
  g_autofree char *det = results_folder ("detection", "{\"schema_version\": 1, \"retrieval\": {}, "
                                         "\"provenance\": {\"model_path\": \"demo:induction\"}}");
  g_assert_true (lsc_results_info_read (det, &info, &error));
  g_assert_true (info.is_retrieval);
  g_assert_false (info.is_run);
  lsc_results_info_clear (&info);
  g_assert_null (lsc_run_open (demo, det, &error));
  lsc_test_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "a retrieval-head detection, not a run", NULL);
  g_clear_error (&error);

  /* another model */
  g_autofree char *stories = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (stories != NULL)
    {
      g_autoptr(LscLoadedModel) other_model = lsc_loaded_model_load (stories, NULL, &error);
      g_assert_no_error (error);
      g_assert_null (lsc_run_open (other_model, dir, &error));
      lsc_test_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, file,
                             "$.model.vocab_size: the results are of a model with vocab_size 100, "
                             "the open model has 512", NULL);
      g_clear_error (&error);
    }

  /* a token outside the vocabulary, a log-probability that is text */
  json_object *root = read_results (dir);
  json_object_array_put_idx (member (root, "prompt_tokens"), 1, json_object_new_int (512));
  g_autofree char *bad_token = results_folder ("bad-token", json_object_to_json_string (root));
  json_object_put (root);
  g_assert_null (lsc_run_open (demo, bad_token, &error));
  lsc_test_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "results.json: $.prompt_tokens[1]: expected a token id in [0, 100), "
                         "found 512", NULL);
  g_clear_error (&error);
  root = read_results (dir);
  json_object_array_put_idx (member (root, "logprobs"), 2, json_object_new_string ("x"));
  g_autofree char *bad_lp = results_folder ("bad-logprob", json_object_to_json_string (root));
  json_object_put (root);
  g_assert_null (lsc_run_open (demo, bad_lp, &error));
  lsc_test_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "$.logprobs[2]: expected a number or null, found \"x\"", NULL);
  g_clear_error (&error);

  /* a tensor file cut short: named, nothing read */
  g_autofree char *tpath = g_build_filename (dir, "tensors.safetensors", NULL);
  g_autoptr(GBytes) bytes = lsc_test_read_file (tpath);
  g_assert_true (g_file_set_contents (tpath, g_bytes_get_data (bytes, NULL),
                                      g_bytes_get_size (bytes) / 2, NULL));
  g_assert_null (lsc_run_open (demo, dir, &error));
  lsc_test_assert_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED, tpath, NULL);
}

/* ------------------------------------------------------------- KV policy */

static LscRun *
kv_run (const LscKvPolicy *policy, int chunk, gboolean compare, int max_tokens)
{
  LscRunParams p;
  lsc_run_params_init (&p);
  g_assert_cmpint (p.kv_policy.kind, ==, LSC_KV_FULL);
  g_assert_cmpint (p.kv_chunk, ==, 0);
  g_assert_true (p.kv_compare);
  p.prompt = PROMPT;
  p.max_tokens = max_tokens;
  p.n_threads = 1;
  p.capture = TRUE;   /* ignored under a policy */
  p.kv_policy = *policy;
  p.kv_chunk = chunk;
  p.kv_compare = compare;
  return run_model (LSC_DEMO_INDUCTION, &p);
}

/* The log and the comparison of two runs are the same, bit for bit. */
static void
assert_same_kv (LscRun *a, LscRun *b)
{
  const LscKvLog *x = lsc_run_get_kv (a), *y = lsc_run_get_kv (b);
  g_assert_nonnull (x);
  g_assert_nonnull (y);
  g_assert_cmpmem (lsc_kv_log_get_policy (y), sizeof (LscKvPolicy), lsc_kv_log_get_policy (x),
                   sizeof (LscKvPolicy));
  int L = lsc_kv_log_get_n_layers (x), H = lsc_kv_log_get_n_heads (x);
  int N = lsc_kv_log_get_n_positions (x), nx, ny;
  g_assert_cmpint (lsc_kv_log_get_n_layers (y), ==, L);
  g_assert_cmpint (lsc_kv_log_get_n_heads (y), ==, H);
  g_assert_cmpint (lsc_kv_log_get_n_positions (y), ==, N);
  const int *sx = lsc_kv_log_get_steps (x, &nx), *sy = lsc_kv_log_get_steps (y, &ny);
  g_assert_cmpmem (sy, ny * sizeof (int), sx, nx * sizeof (int));
  for (int l = 0; l < L; l++)
    for (int h = 0; h < H; h++)
      {
        g_assert_cmpint (lsc_kv_log_count_alive (y, l, h), ==, lsc_kv_log_count_alive (x, l, h));
        for (int pos = 0; pos < N; pos++)
          {
            g_assert_cmpint (lsc_kv_log_evicted_at (y, l, h, pos), ==,
                             lsc_kv_log_evicted_at (x, l, h, pos));
            float fx = lsc_kv_log_score (x, l, h, pos), fy = lsc_kv_log_score (y, l, h, pos);
            g_assert_true (memcmp (&fx, &fy, sizeof fx) == 0 || (isnan (fx) && isnan (fy)));
          }
      }
  const double *kx, *ky;
  const gboolean *ax, *ay;
  int cx, cy;
  gboolean compared = lsc_run_get_kv_comparison (a, &kx, &ax, &cx);
  g_assert_cmpint (lsc_run_get_kv_comparison (b, &ky, &ay, &cy), ==, compared);
  g_assert_cmpint (cy, ==, cx);
  if (compared)
    {
      g_assert_cmpmem (ky, cy * sizeof (double), kx, cx * sizeof (double));   /* %.17g */
      g_assert_cmpmem (ay, cy * sizeof (gboolean), ax, cx * sizeof (gboolean));
    }
}

/* A run under H2O: the session has the policy's slots and no capture, the
 * log keeps heavy + recent tokens in every layer and head, the comparison
 * has a step for the prompt and every new token but the last; its job's
 * "kv" section reruns to the same results (log and KL included), and the
 * export reopens with the same log and comparison. */
static void
test_kv (void)
{
  g_autoptr(GError) error = NULL;
  LscKvPolicy h2o;
  lsc_kv_policy_init (&h2o, LSC_KV_H2O);
  h2o.n_heavy = 3;
  h2o.n_recent = 3;
  g_autoptr(LscRun) run = kv_run (&h2o, 0, TRUE, 8);

  int n_tokens, n_prompt;
  lsc_run_get_tokens (run, &n_tokens, &n_prompt);
  g_assert_cmpint (n_prompt, ==, 18);
  g_assert_cmpint (n_tokens, ==, 26);
  const LscSessionParams *sp = lsc_session_get_params (lsc_run_get_session (run));
  g_assert_cmpint (sp->kv_policy.kind, ==, LSC_KV_H2O);
  g_assert_cmpint (sp->n_ctx, ==, lsc_kv_policy_slots (&h2o, n_prompt, 0, 8));
  g_assert_false (sp->capture.enabled);
  g_assert_null (lsc_run_get_attention (run));
  g_assert_null (lsc_run_get_head_stats (run, NULL, NULL));
  LscSessionParams planned;
  lsc_run_params_get_session (lsc_run_get_params (run), NULL, n_prompt, &planned);
  g_assert_cmpint (planned.n_ctx, ==, sp->n_ctx);
  g_assert_false (planned.capture.enabled);

  const LscKvLog *log = lsc_run_get_kv (run);
  g_assert_nonnull (log);
  g_assert_cmpint (lsc_kv_log_get_n_layers (log), ==, 2);
  g_assert_cmpint (lsc_kv_log_get_n_heads (log), ==, 4);
  /* the last new token is never evaluated */
  g_assert_cmpint (lsc_kv_log_get_n_positions (log), ==, n_tokens - 1);
  for (int l = 0; l < 2; l++)
    for (int h = 0; h < 4; h++)
      g_assert_cmpint (lsc_kv_log_count_alive (log, l, h), ==, 6);
  const double *kl;
  const gboolean *agree;
  int n;
  g_assert_true (lsc_run_get_kv_comparison (run, &kl, &agree, &n));
  g_assert_cmpint (n, ==, 8);
  for (int i = 0; i < n; i++)
    g_assert_cmpfloat (kl[i], >=, -1e-9);

  /* the job: the policy's own keys, no capture */
  g_autofree char *text = lsc_run_dup_job (run, &error);
  g_assert_no_error (error);
  g_autoptr(json_object) job = json_tokener_parse (text);
  g_assert_false (json_object_object_get_ex (job, "capture", NULL));
  g_assert_cmpint (json_object_get_int (member (job, "n_ctx")), ==, sp->n_ctx);
  g_assert_cmpstr (json_object_to_json_string_ext (member (job, "kv"), JSON_C_TO_STRING_PLAIN), ==,
                   "{\"policy\":\"h2o\",\"heavy\":3,\"recent\":3,\"chunk\":0,\"compare\":true}");

  /* the batch runner's results, byte for byte; read back, the same log */
  g_autofree char *dir = check_reproduced (run);
  g_autoptr(json_object) res = read_results (dir);
  json_object *kv = member (res, "kv");
  g_assert_cmpstr (json_object_get_string (member (member (kv, "policy"), "kind")), ==, "h2o");
  g_assert_cmpint ((int) json_object_array_length (member (member (kv, "compare"), "kl")), ==, 8);
  g_autoptr(LscRun) back = lsc_run_open (lsc_run_get_model (run), dir, &error);
  g_assert_no_error (error);
  assert_same_kv (run, back);
  const LscRunParams *p2 = lsc_run_get_params (back);
  g_assert_cmpmem (&p2->kv_policy, sizeof (LscKvPolicy), &h2o, sizeof (LscKvPolicy));
  g_assert_cmpint (p2->kv_chunk, ==, 0);
  g_assert_true (p2->kv_compare);
  g_autofree char *job2 = lsc_run_dup_job (back, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (job2, ==, text);

  /* StreamingLLM fed in chunks of 5, not compared: no comparison anywhere */
  LscKvPolicy stream;
  lsc_kv_policy_init (&stream, LSC_KV_STREAMING_LLM);
  stream.n_sink = 2;
  stream.n_recent = 4;
  g_autoptr(LscRun) chunked = kv_run (&stream, 5, FALSE, 4);
  g_assert_false (lsc_run_get_kv_comparison (chunked, &kl, &agree, &n));
  g_assert_null (kl);
  g_assert_cmpint (n, ==, 0);
  int n_steps;
  lsc_kv_log_get_steps (lsc_run_get_kv (chunked), &n_steps);
  g_assert_cmpint (n_steps, ==, 4 + 3);   /* 18 tokens in 4 chunks, then 3 single steps */
  g_autofree char *dir2 = check_reproduced (chunked);
  g_autoptr(json_object) res2 = read_results (dir2);
  g_assert_false (json_object_object_get_ex (member (res2, "kv"), "compare", NULL));
  g_assert_cmpstr (json_object_to_json_string_ext (member (member (res2, "job"), "kv"),
                                                   JSON_C_TO_STRING_PLAIN), ==,
                   "{\"policy\":\"streaming-llm\",\"sink\":2,\"recent\":4,\"chunk\":5,"
                   "\"compare\":false}");
  g_autoptr(LscRun) back2 = lsc_run_open (lsc_run_get_model (chunked), dir2, &error);
  g_assert_no_error (error);
  assert_same_kv (chunked, back2);
  g_assert_cmpint (lsc_run_get_params (back2)->kv_chunk, ==, 5);
  g_assert_false (lsc_run_get_params (back2)->kv_compare);

  /* SnapKV's pooling, PyramidKV's beta: the job names them */
  LscKvPolicy pyramid;
  lsc_kv_policy_init (&pyramid, LSC_KV_PYRAMIDKV);
  pyramid.capacity = 8;
  pyramid.window = 2;
  pyramid.kernel = 3;
  pyramid.beta = 2;
  g_autoptr(LscRun) pyr = kv_run (&pyramid, 0, TRUE, 3);
  g_autofree char *dir3 = check_reproduced (pyr);
  g_autoptr(json_object) res3 = read_results (dir3);
  g_assert_cmpstr (json_object_to_json_string_ext (member (member (res3, "job"), "kv"),
                                                   JSON_C_TO_STRING_PLAIN), ==,
                   "{\"policy\":\"pyramidkv\",\"capacity\":8,\"window\":2,\"kernel\":3,"
                   "\"beta\":2,\"pooling\":\"max\",\"chunk\":0,\"compare\":true}");
  g_autoptr(LscRun) back3 = lsc_run_open (lsc_run_get_model (pyr), dir3, &error);
  g_assert_no_error (error);
  assert_same_kv (pyr, back3);

  /* LM-Infinite keeps the first `global` and the last local - 1 tokens */
  LscKvPolicy lambda;
  lsc_kv_policy_init (&lambda, LSC_KV_LM_INFINITE);
  lambda.n_global = 2;
  lambda.n_local = 6;
  g_autoptr(LscRun) lm = kv_run (&lambda, 4, TRUE, 4);
  for (int h = 0; h < 4; h++)
    g_assert_cmpint (lsc_kv_log_count_alive (lsc_run_get_kv (lm), 1, h), ==, 2 + 6 - 1);
  g_assert_cmpint (lsc_run_count_kv_pruned (lm, 0, 0, NULL), ==, -1);
  g_autofree char *dir4 = check_reproduced (lm);
  g_autoptr(json_object) res4 = read_results (dir4);
  g_assert_cmpstr (json_object_to_json_string_ext (member (member (res4, "job"), "kv"),
                                                   JSON_C_TO_STRING_PLAIN), ==,
                   "{\"policy\":\"lm-infinite\",\"global\":2,\"local\":6,\"chunk\":4,"
                   "\"compare\":true}");
  g_autoptr(LscRun) back4 = lsc_run_open (lsc_run_get_model (lm), dir4, &error);
  g_assert_no_error (error);
  assert_same_kv (lm, back4);

  /* ThinK evicts nothing and drops key channels: the job writes its ratio
   * as given, and the channels come back with the results */
  LscKvPolicy think;
  lsc_kv_policy_init (&think, LSC_KV_THINK);
  think.ratio = 0.3;
  think.n_recent = 4;
  g_autoptr(LscRun) th = kv_run (&think, 0, TRUE, 4);
  const LscKvLog *th_log = lsc_run_get_kv (th);
  int head_dim;
  g_assert_cmpint (lsc_kv_log_count_alive (th_log, 0, 0), ==,
                   lsc_kv_log_get_n_positions (th_log));
  g_assert_cmpint (lsc_run_count_kv_pruned (th, 1, 2, &head_dim), ==, (int) (128 * 0.3));
  g_assert_cmpint (head_dim, ==, 128);
  g_autofree char *dir5 = check_reproduced (th);
  g_autoptr(json_object) res5 = read_results (dir5);
  g_assert_cmpstr (json_object_to_json_string_ext (member (member (res5, "job"), "kv"),
                                                   JSON_C_TO_STRING_PLAIN), ==,
                   "{\"policy\":\"think\",\"recent\":4,\"ratio\":0.3,\"chunk\":0,"
                   "\"compare\":true}");
  g_autoptr(LscRun) back5 = lsc_run_open (lsc_run_get_model (th), dir5, &error);
  g_assert_no_error (error);
  assert_same_kv (th, back5);
  for (int l = 0; l < 2; l++)
    for (int h = 0; h < 4; h++)
      {
        g_assert_cmpint (lsc_run_count_kv_pruned (back5, l, h, &head_dim), ==,
                         lsc_run_count_kv_pruned (th, l, h, NULL));
        g_assert_cmpint (head_dim, ==, 128);
      }

  /* cancelled, as every run: G_IO_ERROR_CANCELLED (the task reports the
   * cancellation even when the worker finished first) */
  LscRunParams cp = *lsc_run_get_params (run);
  g_autoptr(LscRun) cancelled = lsc_run_new (lsc_run_get_model (run), &cp);
  g_assert_false (lsc_test_execute_run (cancelled, TRUE, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* a full-cache run has no log */
  g_autoptr(LscRun) plain = demo_run (2, FALSE, 0.0f, 0);
  g_assert_null (lsc_run_get_kv (plain));
  g_assert_false (lsc_run_get_kv_comparison (plain, NULL, NULL, NULL));
}

/* Saved "kv" results that do not hold together are refused, naming the
 * file and the field. */
static void
test_kv_errors (void)
{
  g_autoptr(GError) error = NULL;
  LscKvPolicy h2o;
  lsc_kv_policy_init (&h2o, LSC_KV_H2O);
  h2o.n_heavy = 2;
  h2o.n_recent = 2;
  g_autoptr(LscRun) run = kv_run (&h2o, 0, TRUE, 2);
  LscLoadedModel *demo = lsc_run_get_model (run);
  g_autofree char *dir = scratch ("kv-errors");
  g_assert_true (lsc_run_export (run, dir, &error));
  g_assert_no_error (error);
  g_autofree char *file = g_build_filename (dir, "results.json", NULL);
  g_autofree char *good = NULL;
  g_assert_true (g_file_get_contents (file, &good, NULL, NULL));

  static const struct {
    const char *edit;      /* JSON: replaces "kv".key */
    const char *key;
    const char *fragment;  /* in the message */
  } cases[] = {
    { "{\"kind\": \"full\"}", "policy", "$.kv.policy.kind" },
    { "{\"kind\": \"h2o\", \"heavy\": 2, \"recent\": 0}", "policy", "recent must be at least 1" },
    { "{\"kind\": \"h2o\", \"heavy\": -2}", "policy", "$.kv.policy.heavy" },
    { "[3, 2]", "steps", "$.kv.steps[1]" },
    { "[1, 2]", "steps", "$.kv.steps[1]" },
    { "\"many\"", "positions", "$.kv.positions" },
    { "{\"kl\": [0.5], \"agree\": []}", "compare", "$.kv.compare.agree" },
    { "{\"kl\": [\"x\"], \"agree\": [true]}", "compare", "$.kv.compare.kl[0]" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(json_object) root = json_tokener_parse (good);
      json_object_object_add (member (root, "kv"), cases[i].key,
                              json_tokener_parse (cases[i].edit));
      g_assert_true (json_object_to_file (file, root) == 0);
      g_assert_null (lsc_run_open (demo, dir, &error));
      g_test_message ("%s", error->message);
      lsc_test_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, file, cases[i].fragment,
                             NULL);
      g_clear_error (&error);
    }
  /* the log needs its tensors */
  g_autoptr(json_object) root = json_tokener_parse (good);
  json_object_object_del (root, "tensors_file");
  g_assert_true (json_object_to_file (file, root) == 0);
  g_assert_null (lsc_run_open (demo, dir, &error));
  lsc_test_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "$.tensors_file",
                         "kv.evicted_at", NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ui/RunExport/save-job", test_save_job);
  g_test_add_func ("/ui/RunExport/batch-reproduces", test_batch_reproduces);
  g_test_add_func ("/ui/RunExport/sampled", test_sampled);
  g_test_add_func ("/ui/RunExport/variants", test_variants);
  g_test_add_func ("/ui/RunExport/plugins", test_plugins);
  g_test_add_func ("/ui/RunExport/export", test_export);
  g_test_add_func ("/ui/RunExport/relative-model", test_relative_model);
  g_test_add_func ("/ui/RunExport/errors", test_errors);
  g_test_add_func ("/ui/RunExport/reopen", test_reopen);
  g_test_add_func ("/ui/RunExport/reopen-errors", test_reopen_errors);
  g_test_add_func ("/ui/RunExport/kv", test_kv);
  g_test_add_func ("/ui/RunExport/kv-errors", test_kv_errors);
  return g_test_run ();
}
