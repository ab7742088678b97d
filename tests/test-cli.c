/* SPDX-License-Identifier: MIT
 *
 * The `longscope` command as a user runs it: --info, --tokenize,
 * --detokenize and --batch, with their outputs, files and exit codes.
 */
#include "config.h"

#include <gio/gio.h>
#include <json-c/json.h>
#include <math.h>
#include <signal.h>
#include <unistd.h>
#include <string.h>

#include "lsc-attention.h"
#include "lsc-generate.h"
#include "lsc-session.h"
#include "lsc-tensor-reader.h"
#include "lsc-test-util.h"

typedef struct {
  int status;
  char *out;
  char *err;
} Run;

static void
run_clear (Run *r)
{
  g_free (r->out);
  g_free (r->err);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

/* Runs longscope in `cwd` (NULL: this process's) with argv (NULL-terminated)
 * and `input` on stdin. */
static void
run_in (Run *r, const char *cwd, const char *input, va_list ap)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  const char *a;

  g_ptr_array_add (argv, (char *) g_getenv ("LSC_LONGSCOPE"));
  while ((a = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, (char *) a);
  g_ptr_array_add (argv, NULL);

  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                               | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  if (cwd != NULL)
    g_subprocess_launcher_set_cwd (launcher, cwd);
  g_autoptr(GSubprocess) p = g_subprocess_launcher_spawnv (launcher,
                                                           (const char *const *) argv->pdata,
                                                           &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (p, input, NULL, &r->out, &r->err, &error);
  g_assert_no_error (error);
  r->status = g_subprocess_get_exit_status (p);
}

static void
run (Run *r, const char *input, ...)
{
  va_list ap;
  va_start (ap, input);
  run_in (r, NULL, input, ap);
  va_end (ap);
}

static void
run_cwd (Run *r, const char *cwd, const char *input, ...)
{
  va_list ap;
  va_start (ap, input);
  run_in (r, cwd, input, ap);
  va_end (ap);
}

static void
test_info (void)
{
  g_autofree char *path = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (path == NULL)
    return;
  g_auto(Run) r = { 0 };
  run (&r, "", "--info", path, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "format:           llama2.c\n"));
  g_assert_nonnull (strstr (r.out, "n_kv_heads:       4\n"));
  g_assert_nonnull (strstr (r.out, "rope_layout:      interleaved\n"));
  g_assert_nonnull (strstr (r.out, "blk.4.ffn_up.weight"));
  g_assert_nonnull (strstr (r.out, "[172, 64]"));

  g_auto(Run) missing = { 0 };
  run (&missing, "", "--info", "/nonexistent/model.gguf", NULL);
  g_assert_cmpint (missing.status, ==, 3);
  g_assert_nonnull (strstr (missing.err, "/nonexistent/model.gguf: no such file or directory"));
}

static void
test_plugins (void)
{
  g_auto(Run) r = { 0 };
  run (&r, "", "--plugins", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_true (g_str_has_prefix (r.out, "selective-attention: Selective Attention\n  Temperature-scaled"));
  g_assert_nonnull (strstr (r.out, "\n  alpha          number in [0, 10], default 0.1\n"));
  g_assert_nonnull (strstr (r.out, "\n  form           choice \"position\" | \"log-n\", default \"position\"\n"));
  g_assert_nonnull (strstr (r.out, "\n  last_layer     integer in [-1, 4095], default -1\n"));
}

static void
test_tokenize (void)
{
  g_autofree char *tok = lsc_test_shared_path ("models/stories260K/tok512.bin");
  if (tok == NULL)
    return;
  g_auto(Run) r = { 0 };
  run (&r, "Once upon a time", "--tokenize", tok, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_cmpstr (r.out, ==, "403 407 261 378\n");

  g_auto(Run) bos = { 0 };
  run (&bos, "Lily's mom said, \"Let's go!\"", "--tokenize", tok, "--bos", NULL);
  g_assert_cmpstr (bos.out, ==, "1 317 439 419 357 336 432 313 438 316 439 419 298 414 443 436\n");

  /* stdin is taken verbatim: the trailing newline is a token (<0x0A>) */
  g_auto(Run) nl = { 0 };
  run (&nl, "Zoo\n", "--tokenize", tok, NULL);
  g_assert_cmpstr (nl.out, ==, "410 469 347 13\n");

  g_auto(Run) empty = { 0 };
  run (&empty, "", "--tokenize", tok, NULL);
  g_assert_cmpint (empty.status, ==, 0);
  g_assert_cmpstr (empty.out, ==, "\n");

  /* through a model path: the tokenizer beside the checkpoint */
  g_autofree char *model = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  g_auto(Run) m = { 0 };
  run (&m, "Zoo", "--tokenize", model, "--bos", NULL);
  g_assert_cmpstr (m.out, ==, "1 410 469 347\n");

  g_auto(Run) d = { 0 };
  run (&d, "403 407 261 378\n", "--detokenize", tok, NULL);
  g_assert_cmpint (d.status, ==, 0);
  g_assert_cmpstr (d.out, ==, "Once upon a time");

  g_auto(Run) bad = { 0 };
  run (&bad, "403 x7", "--detokenize", tok, NULL);
  g_assert_cmpint (bad.status, ==, 2);
  g_assert_nonnull (strstr (bad.err, "'x7' is not a token id"));
}

static void
test_detokenize_padding (void)
{
  /* tiny-mamba's model vocabulary (112) pads its tokenizer's 105 pieces */
  g_autofree char *tok = lsc_test_shared_path ("models/random/tiny-mamba/tokenizer.model");
  if (tok == NULL)
    return;
  g_auto(Run) r = { 0 };
  run (&r, "34 110 9", "--detokenize", tok, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.err, "token 110 is beyond the tokenizer's 105 pieces"));
}

static json_object *
read_results (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "results.json", NULL);
  json_object *o = json_object_from_file (path);
  g_assert_nonnull (o);
  return o;
}

static void
test_batch_generate (void)
{
  g_autofree char *model = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  g_autofree char *job = g_strdup_printf ("{\"model\": \"%s\", \"prompt\": \"Zoo\", "
                                          "\"max_tokens\": 57, \"temperature\": 0, \"seed\": 7, "
                                          "\"score\": true}", model);
  g_autofree char *job_path = lsc_test_write_file ("zoo.json", job, strlen (job));
  g_autofree char *out_dir = g_build_filename (lsc_test_tmpdir (), "zoo-out", NULL);
  g_auto(Run) r = { 0 };
  run (&r, "", "--batch", job_path, "--output", out_dir, NULL);
  g_assert_cmpint (r.status, ==, 0);

  json_object *res = read_results (out_dir);
  g_assert_cmpint (json_object_get_int (json_object_object_get (res, "schema_version")), ==, 1);
  g_assert_cmpstr (json_object_get_string (json_object_object_get (res, "status")), ==, "done");
  g_autofree char *text = g_strdup (json_object_get_string (json_object_object_get (res, "text")));
  g_assert_true (g_str_has_prefix (text, " was a little girl named Lily."));
  g_assert_true (g_str_has_suffix (text, "but she didn't want to play with"));
  json_object *tokens = json_object_object_get (res, "tokens");
  json_object *logprobs = json_object_object_get (res, "logprobs");
  g_assert_cmpuint (json_object_array_length (tokens), ==, 57);
  g_assert_cmpuint (json_object_array_length (logprobs), ==, 57);
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (
                     json_object_object_get (res, "prompt_tokens"), 1)), ==, 410);
  json_object *score = json_object_object_get (res, "score");
  g_assert_cmpuint (json_object_array_length (json_object_object_get (score, "logprobs")), ==, 3);
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (score, "perplexity")), >, 1.0);
  json_object *prov = json_object_object_get (res, "provenance");
  g_autofree char *canonical = g_canonicalize_filename (model, NULL);
  g_assert_cmpstr (json_object_get_string (json_object_object_get (prov, "model_path")), ==, canonical);
  g_assert_cmpint (json_object_get_int (json_object_object_get (prov, "seed")), ==, 7);
  g_assert_nonnull (json_object_object_get (json_object_object_get (res, "timings"), "decode_tokens_per_s"));
  g_assert_cmpstr (json_object_get_string (json_object_object_get (
                     json_object_object_get (res, "job"), "prompt")), ==, "Zoo");
  json_object_put (res);

  /* a relative job path and a relative model path, resolved against the job's folder */
  g_autofree char *model_dir = g_path_get_dirname (model);
  g_autofree char *rel_job = g_strdup_printf ("{\"model\": \"stories260K.bin\", \"prompt\": \"Zoo\", "
                                              "\"max_tokens\": 3}");
  g_autofree char *rel_path = lsc_test_write_file ("rel/zoo.json", rel_job, strlen (rel_job));
  g_autofree char *link = g_build_filename (lsc_test_tmpdir (), "rel", "stories260K.bin", NULL);
  g_autofree char *tok = g_build_filename (model_dir, "tok512.bin", NULL);
  g_autofree char *tok_link = g_build_filename (lsc_test_tmpdir (), "rel", "tok512.bin", NULL);
  g_assert_cmpint (symlink (model, link), ==, 0);
  g_assert_cmpint (symlink (tok, tok_link), ==, 0);
  g_auto(Run) rr = { 0 };
  run_cwd (&rr, lsc_test_tmpdir (), "", "--batch", "rel/zoo.json", "--output", "rel-out", NULL);
  if (rr.status != 0)
    g_error ("relative job: exit %d: %s", rr.status, rr.err);
  g_autofree char *rel_out = g_build_filename (lsc_test_tmpdir (), "rel-out", NULL);
  json_object *rel_res = read_results (rel_out);
  json_object *rel_prov = json_object_object_get (rel_res, "provenance");
  g_assert_cmpstr (json_object_get_string (json_object_object_get (rel_prov, "model_path")), ==, link);
  json_object_put (rel_res);

  /* the same job from standard input */
  g_autofree char *out2 = g_build_filename (lsc_test_tmpdir (), "stdin-out", NULL);
  g_auto(Run) r2 = { 0 };
  run (&r2, job, "--batch", "-", "--output", out2, NULL);
  g_assert_cmpint (r2.status, ==, 0);
  json_object *res2 = read_results (out2);
  g_assert_cmpstr (json_object_get_string (json_object_object_get (res2, "text")), ==, text);
  json_object_put (res2);
}

/* Jobs that draw figures need the renderer, which is built with the GUI. */
static gboolean
have_figures (void)
{
#if LSC_HAVE_GUI
  return TRUE;
#else
  g_test_skip ("this longscope was built without the figure renderer (-Dgui=disabled)");
  return FALSE;
#endif
}

/* The README's main job: data/demo-job.json finds the planted copy head of
 * demo:induction, masks it, and draws the three retrieval figures. A build
 * without the figure renderer (no GUI, so no Cairo) fails at the first
 * figure, naming it, and keeps the analysis. */
static void
test_demo_job (void)
{
  g_autofree char *job = g_test_build_filename (G_TEST_DIST, "..", "data", "demo-job.json", NULL);
  g_autofree char *out_dir = g_build_filename (lsc_test_tmpdir (), "demo-out", NULL);
  g_auto(Run) r = { 0 };
  run (&r, "", "--batch", job, "--output", out_dir, NULL);
#if LSC_HAVE_GUI
  if (r.status != 0)
    g_error ("demo job: exit %d: %s", r.status, r.err);
  const char *status = "done";
  guint n_figures = 3;
#else
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "longscope: $.figures[0]: this longscope was built without the "
                                   "figure renderer (Cairo and Pango)\n"));
  const char *status = "failed";
  guint n_figures = 0;
#endif
  json_object *res = read_results (out_dir);
  g_assert_cmpstr (json_object_get_string (json_object_object_get (res, "status")), ==, status);
  json_object *best = json_object_array_get_idx (
    json_object_object_get (json_object_object_get (res, "retrieval"), "ranking"), 0);
  g_assert_cmpint (json_object_get_int (json_object_object_get (best, "layer")), ==, 1);
  g_assert_cmpint (json_object_get_int (json_object_object_get (best, "head")), ==, 2);
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (best, "score")), >, 0.5);
  json_object *k1 = json_object_array_get_idx (
    json_object_object_get (json_object_object_get (res, "ablation"), "k"), 0);
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (k1, "retrieval_recall")), <, 0.5);
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (k1, "random_recall")), >, 0.9);
  g_assert_cmpuint (json_object_array_length (json_object_object_get (res, "figures")), ==,
                    n_figures);
  /* what the retrieval sessions ran on */
  const char *backend = json_object_get_string (json_object_object_get (
                          json_object_object_get (res, "provenance"), "backend"));
  g_assert_true (g_strcmp0 (backend, "cpu") == 0 || g_strcmp0 (backend, "cuda") == 0);
  /* with a GPU, one backend for all: the GPU, or (where auto keeps the
   * masks' logit scales off it) the CPU for every run, saying why */
  const char *note = json_object_get_string (json_object_object_get (
                       json_object_object_get (res, "provenance"), "backend_note"));
  if (lsc_backend_cuda_unavailable () == NULL)
    g_assert_true ((g_strcmp0 (backend, "cuda") == 0 && note == NULL)
                   || (g_strcmp0 (backend, "cpu") == 0 && note != NULL
                       && g_str_has_prefix (note, "every run on the CPU, as the ablation's "
                                                  "masked heads: ")));
  json_object_put (res);
  static const char *const files[] = { "retrieval_heads.json", "retrieval-scores.png",
                                       "retrieval-ranking.png", "ablation.png" };
  for (gsize i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (out_dir, files[i], NULL);
      g_assert_cmpint (g_file_test (path, G_FILE_TEST_IS_REGULAR), ==, i < 1 + n_figures);
    }
}

/* Ctrl-C stops a run at the next layer and still leaves a valid result. */
static void
test_batch_interrupt (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *model = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  g_autofree char *job = g_strdup_printf ("{\"model\": \"%s\", \"prompt\": \"Once\", "
                                          "\"max_tokens\": 100000, \"stop_at_eos\": false}", model);
  g_autofree char *job_path = lsc_test_write_file ("long.json", job, strlen (job));
  g_autofree char *out_dir = g_build_filename (lsc_test_tmpdir (), "long-out", NULL);
  const char *argv[] = { g_getenv ("LSC_LONGSCOPE"), "--batch", job_path, "--output", out_dir, NULL };
  g_autoptr(GSubprocess) p = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE
                                                      | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);

  /* wait until generation has started, then interrupt */
  g_autoptr(GDataInputStream) err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (p));
  char *line;
  while ((line = g_data_input_stream_read_line (err, NULL, NULL, &error)) != NULL)
    {
      gboolean started = strstr (line, "generated 32 /") != NULL;
      g_free (line);
      if (started)
        break;
    }
  g_assert_no_error (error);
  g_subprocess_send_signal (p, SIGINT);
  g_subprocess_wait (p, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (p));
  g_assert_cmpint (g_subprocess_get_exit_status (p), ==, 130);

  json_object *res = read_results (out_dir);
  g_assert_cmpstr (json_object_get_string (json_object_object_get (res, "status")), ==, "interrupted");
  size_t n = json_object_array_length (json_object_object_get (res, "tokens"));
  g_assert_cmpuint (n, >=, 32);
  g_assert_cmpuint (n, <, 100000);
  g_assert_cmpuint (json_object_array_length (json_object_object_get (res, "logprobs")), ==, n);
  json_object_put (res);
}

/* Attention capture from a job: statistics, a pyramid and a tile in
 * tensors.safetensors, named as the README documents. */
static void
test_batch_capture (void)
{
  g_autofree char *model = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  g_autofree char *job = g_strdup_printf (
    "{\"model\": \"%s\", \"prompt\": \"Once upon a time, there was a little girl named Lily.\", "
    "\"max_tokens\": 0, \"capture\": {\"layers\": [1, 4], \"pyramids\": true, \"store\": true, "
    "\"tiles\": [{\"layer\": 4, \"head\": 2, \"rows\": [5, 12], \"keys\": [0, 16]}]}}", model);
  g_autofree char *job_path = lsc_test_write_file ("capture.json", job, strlen (job));
  g_autofree char *out_dir = g_build_filename (lsc_test_tmpdir (), "capture-out", NULL);
  g_auto(Run) r = { 0 };
  run (&r, "", "--batch", job_path, "--output", out_dir, NULL);
  if (r.status != 0)
    g_error ("capture job: exit %d: %s", r.status, r.err);

  json_object *res = read_results (out_dir);
  json_object *att = json_object_object_get (res, "attention");
  int n = (int) json_object_array_length (json_object_object_get (res, "prompt_tokens"));
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (json_object_object_get (att, "rows"), 1)), ==, n);
  g_assert_cmpstr (json_object_get_string (json_object_object_get (res, "tensors_file")), ==,
                   "tensors.safetensors");
  g_assert_true (json_object_get_boolean (json_object_object_get (att, "store")));
  json_object_put (res);

  /* the safetensors header: u64 length, then JSON */
  g_autofree char *tpath = g_build_filename (out_dir, "tensors.safetensors", NULL);
  g_autoptr(GBytes) bytes = lsc_test_read_file (tpath);
  gsize size;
  const guint8 *data = g_bytes_get_data (bytes, &size);
  guint64 hlen;
  memcpy (&hlen, data, 8);
  g_assert_cmpuint ((8 + hlen) % 8, ==, 0);
  g_autofree char *header_text = g_strndup ((const char *) data + 8, hlen);
  json_object *header = json_tokener_parse (header_text);
  json_object *ent = json_object_object_get (header, "attn.stats.entropy");
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (json_object_object_get (ent, "shape"), 0)), ==, 5);
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (json_object_object_get (ent, "shape"), 1)), ==, 8);
  g_assert_nonnull (json_object_object_get (header, "attn.4.7.pyramid.1.max"));
  g_assert_null (json_object_object_get (header, "attn.0.0.pyramid.1.max"));
  json_object *tile = json_object_object_get (header, "attn.4.2.tile.5-12.0-16");
  g_assert_nonnull (tile);
  gint64 begin = json_object_get_int64 (json_object_array_get_idx (json_object_object_get (tile, "data_offsets"), 0));
  const float *p = (const float *) (data + 8 + hlen + begin);
  for (int i = 0; i < 7; i++)
    {
      double sum = 0;
      for (int j = 0; j < 16; j++)
        {
          float x = p[i * 16 + j];
          g_assert_true (j > 5 + i ? isnan (x) : x >= 0);
          if (!isnan (x))
            sum += x;
        }
      g_assert_cmpfloat (fabs (sum - 1.0), <, 1e-5);   /* rows up to 12 see keys < 16 only */
    }
  /* entropy of an uncaptured layer is NaN */
  json_object *eoff = json_object_object_get (ent, "data_offsets");
  const float *e = (const float *) (data + 8 + hlen + json_object_get_int64 (json_object_array_get_idx (eoff, 0)));
  g_assert_true (isnan (e[0]));
  g_assert_true (e[1 * 8] > 0);
  json_object_put (header);

  /* the saved store reopens and recomputes the job's tile bit for bit */
  g_autoptr(GError) error = NULL;
  g_autoptr(LscAttentionStore) store = lsc_attention_load (tpath, &error);
  g_assert_no_error (error);
  g_assert_true (lsc_attention_has_head (store, 4, 2));
  g_assert_false (lsc_attention_has_head (store, 0, 2));
  g_assert_cmpint (lsc_attention_get_n_rows (store), ==, n);
  float again[7 * 16];
  g_assert_true (lsc_attention_tile (store, 4, 2, 5, 12, 0, 16, NAN, again, &error));
  g_assert_cmpmem (again, sizeof again, p, sizeof again);
}

/* Figures drawn by a job: one of each kind, in each format. */
static void
test_batch_figures (void)
{
  if (!have_figures ())
    return;
  g_autofree char *model = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  g_autofree char *job = g_strdup_printf (
    "{\"model\": \"%s\", \"prompt\": \"Once upon a time, there was a little girl.\", "
    "\"max_tokens\": 4, \"score\": true, \"capture\": {\"rows\": \"all\"}, \"figures\": ["
    "{\"kind\": \"attention\", \"layer\": 2, \"head\": 1, \"rows\": [0, 12], \"keys\": [0, 12], \"file\": \"tile.png\"},"
    "{\"kind\": \"pyramid\", \"layer\": 4, \"head\": 5, \"scale\": \"log\", \"file\": \"pyramid.svg\"},"
    "{\"kind\": \"stats\", \"stat\": \"sink_mass\", \"colormap\": \"magma\", \"file\": \"sink.pdf\"},"
    "{\"kind\": \"loss\"}]}", model);
  g_autofree char *job_path = lsc_test_write_file ("figures.json", job, strlen (job));
  g_autofree char *out_dir = g_build_filename (lsc_test_tmpdir (), "figures-out", NULL);
  g_auto(Run) r = { 0 };
  run (&r, "", "--batch", job_path, "--output", out_dir, NULL);
  if (r.status != 0)
    g_error ("figures job: exit %d: %s", r.status, r.err);
  static const struct { const char *file; const char *magic; } files[] = {
    { "tile.png", "\x89PNG" }, { "pyramid.svg", "<?xml" }, { "sink.pdf", "%PDF-" },
    { "loss.png", "\x89PNG" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (out_dir, files[i].file, NULL);
      g_autoptr(GBytes) b = lsc_test_read_file (path);
      g_assert_cmpuint (g_bytes_get_size (b), >, 1000);
      g_assert_cmpmem (g_bytes_get_data (b, NULL), strlen (files[i].magic), files[i].magic,
                       strlen (files[i].magic));
    }
  json_object *res = read_results (out_dir);
  g_assert_cmpuint (json_object_array_length (json_object_object_get (res, "figures")), ==, 4);
  json_object_put (res);
}

/* Runs a short generation job on stories260K with `backend` in the job (NULL:
 * none) and extra arguments; returns results.json, or NULL when none was
 * written. */
static json_object *
run_backend_job (Run *r, const char *model, const char *backend, const char *extra)
{
  static int n_jobs;
  g_autofree char *key = backend != NULL ? g_strdup_printf (", \"backend\": \"%s\"", backend)
                                         : g_strdup ("");
  g_autofree char *job = g_strdup_printf ("{\"model\": \"%s\", \"prompt\": \"Zoo\", "
                                          "\"max_tokens\": 3%s}", model, key);
  g_autofree char *name = g_strdup_printf ("backend-%d.json", n_jobs);
  g_autofree char *job_path = lsc_test_write_file (name, job, strlen (job));
  g_autofree char *out_dir = g_strdup_printf ("%s/backend-%d-out", lsc_test_tmpdir (), n_jobs++);
  if (extra != NULL)
    run (r, "", "--batch", job_path, "--output", out_dir, "--backend", extra, NULL);
  else
    run (r, "", "--batch", job_path, "--output", out_dir, NULL);
  g_autofree char *results = g_build_filename (out_dir, "results.json", NULL);
  return g_file_test (results, G_FILE_TEST_EXISTS) ? read_results (out_dir) : NULL;
}

static const char *
provenance_string (json_object *res, const char *key)
{
  return json_object_get_string (json_object_object_get (json_object_object_get (res, "provenance"),
                                                         key));
}

/* Asks for CUDA (in the job or by --backend) where the default found no GPU
 * (stories260K runs on the CUDA backend, so no CUDA build or no device): the
 * session cannot be made (exit 1, no results, a message naming CUDA). */
static void
assert_cuda_refused (const Run *r, json_object *res)
{
  if (r->status != 1 || strstr (r->err, "CUDA") == NULL)
    g_error ("backend cuda: exit %d, stderr: %s", r->status, r->err);
  g_assert_null (res);
}

/* "backend" and --backend: the default (auto) takes the GPU when there is
 * one and otherwise notes why it runs on the CPU; provenance names what ran. */
static void
test_batch_backend (void)
{
  g_autofree char *model = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;

  g_auto(Run) def = { 0 };
  json_object *res = run_backend_job (&def, model, NULL, NULL);
  if (def.status != 0)
    g_error ("default backend: exit %d: %s", def.status, def.err);
  g_autofree char *used = g_strdup (provenance_string (res, "backend"));
  g_autofree char *note = g_strdup (provenance_string (res, "backend_note"));
  json_object_put (res);
  gboolean gpu = g_strcmp0 (used, "cuda") == 0;
  if (!gpu)
    {
      g_assert_cmpstr (used, ==, "cpu");
      g_assert_nonnull (note);
      g_assert_cmpstr (note, !=, "");
      g_assert_nonnull (strstr (note, "CUDA"));
      /* auto without a GPU is no news: provenance only, no warning */
      g_assert_null (strstr (def.err, "warning: running on the CPU"));
    }
  else
    g_assert_null (note);

  /* "auto" spelled out is the default */
  g_auto(Run) aut = { 0 };
  res = run_backend_job (&aut, model, "auto", NULL);
  g_assert_cmpint (aut.status, ==, 0);
  g_assert_cmpstr (provenance_string (res, "backend"), ==, used);
  g_assert_cmpstr (provenance_string (res, "backend_note"), ==, note);
  json_object_put (res);

  /* "cpu": no fallback, nothing to say */
  g_auto(Run) cpu = { 0 };
  res = run_backend_job (&cpu, model, "cpu", NULL);
  g_assert_cmpint (cpu.status, ==, 0);
  g_assert_cmpstr (provenance_string (res, "backend"), ==, "cpu");
  g_assert_null (json_object_object_get (json_object_object_get (res, "provenance"), "backend_note"));
  g_assert_null (strstr (cpu.err, "warning: running on the CPU"));
  json_object_put (res);

  /* "cuda" */
  g_auto(Run) cuda = { 0 };
  res = run_backend_job (&cuda, model, "cuda", NULL);
  if (gpu)
    {
      g_assert_cmpint (cuda.status, ==, 0);
      g_assert_cmpstr (provenance_string (res, "backend"), ==, "cuda");
    }
  else
    assert_cuda_refused (&cuda, res);
  g_clear_pointer (&res, json_object_put);

  /* --backend overrides the job, both ways; the job in results.json is as written */
  g_auto(Run) over_cpu = { 0 };
  res = run_backend_job (&over_cpu, model, "cuda", "cpu");
  g_assert_cmpint (over_cpu.status, ==, 0);
  g_assert_cmpstr (provenance_string (res, "backend"), ==, "cpu");
  g_assert_cmpstr (json_object_get_string (json_object_object_get (
                     json_object_object_get (res, "job"), "backend")), ==, "cuda");
  json_object_put (res);
  g_auto(Run) over_cuda = { 0 };
  res = run_backend_job (&over_cuda, model, "cpu", "cuda");
  if (gpu)
    {
      g_assert_cmpint (over_cuda.status, ==, 0);
      g_assert_cmpstr (provenance_string (res, "backend"), ==, "cuda");
    }
  else
    assert_cuda_refused (&over_cuda, res);
  g_clear_pointer (&res, json_object_put);

  /* a --backend that is not one is a usage error, before anything runs */
  g_auto(Run) bad = { 0 };
  res = run_backend_job (&bad, model, NULL, "gpu");
  g_assert_cmpint (bad.status, ==, 2);
  g_assert_nonnull (strstr (bad.err, "longscope: --backend: expected \"cpu\", \"cuda\" or \"auto\", "
                                     "found \"gpu\""));
  g_assert_null (strstr (bad.err, "loading"));
  g_assert_null (res);
}

/* Invalid jobs: exit 2 and a message naming the file and the JSON path. */
static void
test_batch_invalid (void)
{
  static const struct { const char *job; int status; const char *msg; } cases[] = {
    { "{\"model\": \"a\", \"model\": \"b\"}", 2, "bad.json: $.model: duplicate key" },
    { "{\"model\": \"m\", \"promt\": \"x\"}", 2, "bad.json: $.promt: unknown key" },
    { "{\"model\": 3}", 2, "bad.json: $.model: expected a string, found int" },
    { "{\"prompt\": \"x\"}", 2, "bad.json: $.model: missing" },
    { "{\"model\": \"m\", \"temperature\": -1}", 2, "bad.json: $.temperature: expected a value in [0, 100], found -1" },
    { "{\"model\": \"m\", \"max_tokens\": 1.5}", 2, "bad.json: $.max_tokens: expected an integer, found double" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"prompt_file\": \"b\"}", 2, "$.prompt_file: give either" },
    { "{\"model\": \"m\", \"backend\": \"tpu\"}", 2,
      "bad.json: $.backend: expected \"cpu\", \"cuda\" or \"auto\", found \"tpu\"" },
    { "{\"model\": \"m\", \"backend\": \"CPU\"}", 2,
      "bad.json: $.backend: expected \"cpu\", \"cuda\" or \"auto\", found \"CPU\"" },
    { "{\"model\": \"m\",\n \"seed\": }", 2, "bad.json:2:" },
    { "[1, 2]", 2, "bad.json: $: expected an object, found array" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"capture\": {\"rows\": \"some\"}}", 2,
      "bad.json: $.capture.rows: expected \"prompt\" or \"all\", found \"some\"" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"capture\": {\"tiles\": [{\"layer\": 0}]}}", 2,
      "bad.json: $.capture.tiles[0]: expected {\"layer\": L" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"capture\": {\"layer\": [0]}}", 2,
      "bad.json: $.capture.layer: unknown key" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"capture\": {\"store\": 1}}", 2,
      "bad.json: $.capture.store: expected true or false, found 1" },
    { "{\"model\": \"m\", \"capture\": {}}", 2, "bad.json: $.capture: capturing attention needs a prompt" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"figures\": [{\"kind\": \"loss\"}]}", 2,
      "bad.json: $.figures: a loss figure needs \"score\": true" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"figures\": [{\"kind\": \"stats\", \"stat\": \"entropy\"}]}", 2,
      "bad.json: $.figures: attention figures need a \"capture\" section" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"capture\": {}, \"figures\": [{\"kind\": \"attention\", \"layer\": 0, \"head\": 0, \"rows\": [3, 1], \"keys\": [0, 2]}]}", 2,
      "bad.json: $.figures[0].rows: expected [q0, q1] with 0 <= q0 < q1, found [ 3, 1 ]" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"figures\": [{\"kind\": \"ablation\"}]}", 2,
      "bad.json: $.figures: retrieval figures need a \"retrieval\" section" },
    { "{\"model\": \"m\", \"prompt\": \"a\", \"score\": true, \"figures\": [{\"kind\": \"loss\", \"file\": \"../x.png\"}]}", 2,
      "bad.json: $.figures[0].file: expected a file name ending in .png, .svg or .pdf" },
    { "{\"model\": \"m\", \"plugins\": {\"id\": \"x\"}}", 2,
      "bad.json: $.plugins: expected an array, found object" },
    { "{\"model\": \"m\", \"plugins\": [{\"id\": \"nope\"}]}", 2,
      "bad.json: $.plugins[0].id: no plugin \"nope\" (found: " },
    { "{\"model\": \"m\", \"plugins\": [{\"id\": \"selective-attention\", \"alpha\": 20}]}", 2,
      "bad.json: $.plugins[0].alpha: expected a number in [0, 10], found 20" },
    { "{\"model\": \"demo:induction\", \"prompt\": \"ab\", \"plugins\": [{\"id\": \"selective-attention\", \"first_layer\": 5}]}", 2,
      "bad.json: $.plugins: plugin selective-attention: first_layer 5 .. last_layer -1: the model has layers 0 .. " },
    { "{\"model\": \"no/such/model.gguf\"}", 3, "bad.json: $.model: " },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = lsc_test_write_file ("bad.json", cases[i].job, strlen (cases[i].job));
      g_autofree char *out = g_build_filename (lsc_test_tmpdir (), "bad-out", NULL);
      g_auto(Run) r = { 0 };
      run (&r, "", "--batch", path, "--output", out, NULL);
      if (r.status != cases[i].status || strstr (r.err, cases[i].msg) == NULL)
        g_error ("job %s: exit %d, stderr: %s", cases[i].job, r.status, r.err);
      g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
    }
}

/* A job's plugins change the run, are written into results.json with every
 * parameter, and alpha = 0 changes nothing. */
static void
test_batch_plugins (void)
{
  g_autofree char *model = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  if (model == NULL)
    return;
  const char *plugins[] = {
    NULL,
    "[{\"id\": \"selective-attention\", \"alpha\": 0}]",
    "[{\"id\": \"selective-attention\", \"alpha\": 0.5, \"first_layer\": 1}]",
  };
  double ppl[3];
  for (int i = 0; i < 3; i++)
    {
      /* on the CPU: with a GPU, `auto` runs the plugin's scale hook on the CPU
       * until it is checked on a device, and the plain job on the GPU */
      g_autofree char *job = g_strdup_printf ("{\"model\": \"%s\", \"prompt\": \"Once upon a time "
                                              "there was a little dog. The dog\", \"max_tokens\": 0, "
                                              "\"backend\": \"cpu\", \"score\": true%s%s}", model,
                                              plugins[i] ? ", \"plugins\": " : "",
                                              plugins[i] ? plugins[i] : "");
      g_autofree char *job_path = lsc_test_write_file ("plugins.json", job, strlen (job));
      g_autofree char *out_dir = g_build_filename (lsc_test_tmpdir (), "plugins-out", NULL);
      g_auto(Run) r = { 0 };
      run (&r, "", "--batch", job_path, "--output", out_dir, NULL);
      if (r.status != 0)
        g_error ("plugins job %d: exit %d: %s", i, r.status, r.err);
      json_object *res = read_results (out_dir);
      ppl[i] = json_object_get_double (json_object_object_get (json_object_object_get (res, "score"),
                                                               "perplexity"));
      json_object *written = json_object_object_get (res, "plugins");
      if (i == 0)
        g_assert_null (written);
      else
        g_assert_cmpstr (json_object_to_json_string_ext (written, JSON_C_TO_STRING_PLAIN), ==,
                         i == 1 ? "[{\"id\":\"selective-attention\",\"alpha\":0,\"form\":\"position\","
                                  "\"train_length\":0,\"first_layer\":0,\"last_layer\":-1}]"
                                : "[{\"id\":\"selective-attention\",\"alpha\":0.5,\"form\":\"position\","
                                  "\"train_length\":0,\"first_layer\":1,\"last_layer\":-1}]");
      json_object_put (res);
    }
  g_test_message ("perplexity: model %.17g, alpha 0: %.17g, alpha 0.5: %.17g", ppl[0], ppl[1], ppl[2]);
  g_assert_cmpfloat (ppl[1], ==, ppl[0]);
  g_assert_cmpfloat (fabs (ppl[2] - ppl[0]), >, 1e-3 * ppl[0]);
}

/* The demo's retrieval job under a plugin: alpha = 0 leaves every score,
 * sample and ablation as the model's; alpha = 3 on every layer degrades
 * recall, and masked heads stay masked over the temperature. */
static void
test_batch_retrieval_plugins (void)
{
  g_autofree char *demo = g_test_build_filename (G_TEST_DIST, "..", "data", "demo-job.json", NULL);
  g_autofree char *haystack = g_test_build_filename (G_TEST_DIST, "..", "data", "demo-haystack.txt",
                                                     NULL);
  json_object *job = json_object_from_file (demo);
  g_assert_nonnull (job);
  json_object_object_del (job, "figures");
  json_object_object_add (json_object_object_get (job, "retrieval"), "haystack_file",
                          json_object_new_string (haystack));
  json_object *sections[3];
  const char *plugins[] = { NULL, "[{\"id\": \"selective-attention\", \"alpha\": 0}]",
                            "[{\"id\": \"selective-attention\", \"alpha\": 3}]" };
  for (int i = 0; i < 3; i++)
    {
      if (plugins[i] != NULL)
        json_object_object_add (job, "plugins", json_tokener_parse (plugins[i]));
      const char *text = json_object_to_json_string (job);
      g_autofree char *path = lsc_test_write_file ("retrieval-plugins.json", text, strlen (text));
      g_autofree char *out = g_build_filename (lsc_test_tmpdir (), "retrieval-plugins-out", NULL);
      g_auto(Run) r = { 0 };
      run (&r, "", "--batch", path, "--output", out, NULL);
      if (r.status != 0)
        g_error ("retrieval job %d: exit %d: %s", i, r.status, r.err);
      sections[i] = read_results (out);
    }
  for (int i = 1; i < 3; i++)
    g_assert_nonnull (json_object_object_get (sections[i], "plugins"));
  json_object *base = json_object_object_get (sections[0], "retrieval");
  json_object *zero = json_object_object_get (sections[1], "retrieval");
  json_object *hot = json_object_object_get (sections[2], "retrieval");
  g_assert_true (json_object_equal (json_object_object_get (zero, "scores"),
                                    json_object_object_get (base, "scores")));
  g_assert_true (json_object_equal (json_object_object_get (zero, "samples"),
                                    json_object_object_get (base, "samples")));
  g_assert_true (json_object_equal (json_object_object_get (sections[1], "ablation"),
                                    json_object_object_get (sections[0], "ablation")));
  double recall = json_object_get_double (json_object_object_get (hot, "mean_recall"));
  json_object *best = json_object_array_get_idx (json_object_object_get (hot, "ranking"), 0);
  g_test_message ("alpha 3: mean recall %.4f (the model: %.4f), best head %d-%d at %.4f", recall,
                  json_object_get_double (json_object_object_get (base, "mean_recall")),
                  json_object_get_int (json_object_object_get (best, "layer")),
                  json_object_get_int (json_object_object_get (best, "head")),
                  json_object_get_double (json_object_object_get (best, "score")));
  g_assert_cmpfloat (recall, <, 0.9);
  g_assert_cmpint (json_object_get_int (json_object_object_get (best, "layer")), ==, 1);
  g_assert_cmpint (json_object_get_int (json_object_object_get (best, "head")), ==, 2);
  /* masking the copy head still removes recall under the temperature */
  json_object *k1 = json_object_array_get_idx (
    json_object_object_get (json_object_object_get (sections[2], "ablation"), "k"), 0);
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (k1, "retrieval_recall")), ==, 0);
  for (int i = 0; i < 3; i++)
    json_object_put (sections[i]);
  json_object_put (job);
}

/* Runs a job given as text; its results (NULL unless it exits 0) and its stderr. */
static json_object *
run_job (const char *name, const char *job, int want_status, char **err)
{
  g_autofree char *file = g_strconcat (name, ".json", NULL);
  g_autofree char *job_path = lsc_test_write_file (file, job, strlen (job));
  g_autofree char *out_dir = g_build_filename (lsc_test_tmpdir (), name, NULL);
  g_auto(Run) r = { 0 };
  run (&r, "", "--batch", job_path, "--output", out_dir, NULL);
  if (r.status != want_status)
    g_error ("%s: exit %d (expected %d): %s", name, r.status, want_status, r.err);
  if (err != NULL)
    *err = g_strdup (r.err);
  return want_status == 0 ? read_results (out_dir) : NULL;
}

/* An "ssm" section on tiny-mamba (Mamba-1): the recorded layers' channel
 * memory over the window, as an in-process session of the same tokens
 * computes it; Δ in tensors.safetensors; the three SSM figures. */
static void
test_batch_ssm (void)
{
  if (!have_figures ())
    return;
  g_autofree char *model = lsc_test_shared_path ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  g_autofree char *job = g_strdup_printf (
    "{\"model\": \"%s\", \"prompt\": \"Once upon a time there was a little girl\", "
    "\"max_tokens\": 3, \"ssm\": {\"layers\": [1, 2], \"c\": 0.05, \"window\": 20}, "
    "\"figures\": [{\"kind\": \"ssm_decay\"}, {\"kind\": \"ssm_receptive_field\", \"layer\": 1}, "
    "{\"kind\": \"ssm_dt\", \"layer\": 2, \"file\": \"dt.svg\"}]}", model);
  json_object *res = run_job ("ssm", job, 0, NULL);
  json_object *ssm = json_object_object_get (res, "ssm");
  g_assert_cmpstr (json_object_to_json_string (json_object_object_get (ssm, "layers")), ==,
                   "[ 1, 2 ]");
  g_assert_cmpint (json_object_get_int (json_object_object_get (ssm, "n_channels")), ==, 128);
  g_assert_cmpint (json_object_get_int (json_object_object_get (ssm, "n_states")), ==, 16);
  g_assert_cmpint (json_object_get_int (json_object_object_get (ssm, "window")), ==, 20);
  json_object *figures = json_object_object_get (res, "figures");
  g_assert_cmpstr (json_object_to_json_string (figures), ==,
                   "[ \"ssm-decay.png\", \"ssm-receptive-field-L1.png\", \"dt.svg\" ]");
  g_assert_cmpstr (json_object_get_string (json_object_object_get (res, "tensors_file")), ==,
                   "tensors.safetensors");

  /* the same prompt in this process */
  json_object *toks = json_object_object_get (res, "prompt_tokens");
  int n = (int) json_object_array_length (toks);
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = json_object_get_int (json_object_array_get_idx (toks, i));
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) m = lsc_model_load (model, &error);
  g_assert_no_error (error);
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.ssm_capture = (LscSsmCapturePlan) { TRUE, 1, 2 };
  g_autoptr(LscSession) s = lsc_session_new (m, &p, &error);
  g_assert_no_error (error);
  g_assert_true (lsc_session_eval (s, tokens, n, NULL, FALSE, NULL, NULL, &error));
  json_object *per_layer = json_object_object_get (ssm, "per_layer");
  g_assert_cmpuint (json_object_array_length (per_layer), ==, 2);
  int n_global = 0;
  for (int i = 0; i < 2; i++)
    {
      json_object *e = json_object_array_get_idx (per_layer, i);
      json_object *ld = json_object_object_get (e, "log_decay");
      json_object *global = json_object_object_get (e, "global");
      double want[128];
      g_assert_cmpint (json_object_get_int (json_object_object_get (e, "layer")), ==, 1 + i);
      g_assert_true (lsc_ssm_store_log_decay (lsc_session_get_ssm (s), 1 + i, 0, 20, want));
      for (int c = 0, k = 0; c < 128; c++)
        {
          g_assert_cmpfloat (json_object_get_double (json_object_array_get_idx (ld, c)), ==, want[c]);
          if (want[c] > log (0.05))
            {
              g_assert_cmpint (json_object_get_int (json_object_array_get_idx (global, k++)), ==, c);
              n_global++;
            }
        }
      g_assert_null (json_object_object_get (e, "kept_fraction"));
    }
  g_test_message ("tiny-mamba layers 1-2: %d of 256 channels global over 20 tokens", n_global);
  g_assert_cmpint (n_global, >, 0);
  g_assert_cmpint (n_global, <, 256);
  json_object_put (res);
}

/* LongMamba's filter from a job on tiny-mamba2 with the fixture's
 * thresholds: global heads keep a fraction of the tokens, local heads all;
 * malformed sections are named by their JSON path. */
static void
test_batch_ssm_filter (void)
{
  g_autofree char *tok = lsc_test_shared_path ("models/random/tiny-mamba/tokenizer.model");
  if (tok == NULL)
    return;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "ssm", "tiny-mamba2", NULL);
  g_autofree char *expected = g_build_filename (dir, "expected.json", NULL);
  json_object *fx = json_object_from_file (expected);
  json_object *lm = json_object_object_get (fx, "longmamba");
  const char *thr = json_object_to_json_string_ext (json_object_object_get (lm, "threshold"),
                                                    JSON_C_TO_STRING_PLAIN);
  const char *glob = json_object_to_json_string_ext (json_object_object_get (lm, "global"),
                                                     JSON_C_TO_STRING_PLAIN);
  const char *prompt = "Once upon a time there was a little girl named Lily who loved the sea.";
  g_autofree char *job = g_strdup_printf (
    "{\"model\": \"%s\", \"tokenizer\": \"%s\", \"prompt\": \"%s\", \"max_tokens\": 0, "
    "\"ssm\": {\"filter\": {\"threshold\": %s, \"global\": %s, \"min_tokens\": 16}}}",
    dir, tok, prompt, thr, glob);
  json_object *res = run_job ("ssm-filter", job, 0, NULL);
  json_object *per_layer = json_object_object_get (json_object_object_get (res, "ssm"), "per_layer");
  json_object *global = json_object_object_get (lm, "global");
  for (int l = 0; l < 2; l++)
    {
      json_object *kf = json_object_object_get (json_object_array_get_idx (per_layer, l),
                                                "kept_fraction");
      for (int h = 0; h < 8; h++)
        {
          double f = json_object_get_double (json_object_array_get_idx (kf, h));
          gboolean g = json_object_get_boolean (json_object_array_get_idx (
            json_object_array_get_idx (global, l), h));
          g_test_message ("layer %d head %d (%s): kept %.3f", l, h, g ? "global" : "local", f);
          if (g)
            g_assert_cmpfloat (f, <, 1.0);
          else
            g_assert_cmpfloat (f, ==, 1.0);
        }
    }
  json_object_put (res);

  /* errors, each naming the field */
  struct { const char *ssm; const char *model; const char *message; } bad[] = {
    { "{\"filter\": {\"threshold\": [[1]], \"global\": [[true]]}}", dir,
      "$.ssm.filter.threshold: expected 2 arrays (one per layer) of 8 numbers (one per channel), "
      "found [ [ 1 ] ]" },
    { "{\"filter\": {\"threshold\": [[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0]], \"global\": "
      "[[true,true,true,true,true,true,true,1],[true,true,true,true,true,true,true,true]]}}", dir,
      "$.ssm.filter.global[0][7]: expected true or false, found 1" },
    { "{\"layers\": [0, 9]}", dir, "$.ssm.layers: [0, 9]: the model has layers 0 .. 1" },
    { "{\"c\": 2}", dir, "$.ssm.c: expected a number in (0, 1), found 2" },
    { "{\"filter\": {\"b\": 1}}", dir, "$.ssm.filter.threshold: expected [[Δ per channel] per layer]" },
    { "{}", NULL, "$.ssm: the model is llama, which has no SSM layers (Mamba-1 and Mamba-2 have)" },
  };
  g_autofree char *llama = lsc_test_shared_path ("models/stories260K/stories260K.bin");
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      if (bad[i].model == NULL && llama == NULL)
        continue;
      g_autofree char *bjob = g_strdup_printf (
        "{\"model\": \"%s\"%s%s%s, \"prompt\": \"abc\", \"ssm\": %s}",
        bad[i].model != NULL ? bad[i].model : llama, bad[i].model != NULL ? ", \"tokenizer\": \"" : "",
        bad[i].model != NULL ? tok : "", bad[i].model != NULL ? "\"" : "", bad[i].ssm);
      g_autofree char *err = NULL;
      run_job ("ssm-bad", bjob, 2, &err);
      if (strstr (err, bad[i].message) == NULL)
        g_error ("job %u: expected '%s' in: %s", i, bad[i].message, err);
    }
  g_autofree char *err = NULL;
  g_autofree char *fjob = g_strdup_printf (
    "{\"model\": \"%s\", \"tokenizer\": \"%s\", \"prompt\": \"abc\", "
    "\"figures\": [{\"kind\": \"ssm_dt\", \"layer\": 0}]}", dir, tok);
  run_job ("ssm-bad", fjob, 2, &err);
  g_assert_nonnull (strstr (err, "$.figures: SSM figures need an \"ssm\" section"));
  json_object_put (fx);
}

/* Checks a "calibration" section: shapes, alpha in (0, 1] and threshold > 0
 * for targets longer than a sample, exactly 1 and 0 for the others,
 * global = log_tA_prod > ln c. */
static void
check_calibration (json_object *cal, int n_layers, int n_targets, int C, double c)
{
  int rows = json_object_get_int (json_object_object_get (cal, "sample_rows"));
  json_object *targets = json_object_object_get (cal, "targets");
  json_object *per_layer = json_object_object_get (cal, "per_layer");
  g_assert_cmpint (rows, >, 0);
  g_assert_cmpuint (json_object_array_length (targets), ==, n_targets);
  g_assert_cmpuint (json_object_array_length (per_layer), ==, n_layers);
  for (int l = 0; l < n_layers; l++)
    {
      json_object *e = json_object_array_get_idx (per_layer, l);
      json_object *ltp = json_object_object_get (e, "log_tA_prod");
      json_object *sum = json_object_object_get (e, "dt_sum");
      json_object *glob = json_object_object_get (e, "global");
      json_object *alpha = json_object_object_get (e, "alpha");
      json_object *thr = json_object_object_get (e, "threshold");
      g_assert_cmpuint (json_object_array_length (ltp), ==, C);
      g_assert_cmpuint (json_object_array_length (sum), ==, C);
      g_assert_cmpuint (json_object_array_length (glob), ==, C);
      g_assert_cmpuint (json_object_array_length (alpha), ==, n_targets);
      g_assert_cmpuint (json_object_array_length (thr), ==, n_targets);
      for (int ch = 0; ch < C; ch++)
        {
          double x = json_object_get_double (json_object_array_get_idx (ltp, ch));
          g_assert_cmpfloat (x, <, 0);
          g_assert_cmpfloat (json_object_get_double (json_object_array_get_idx (sum, ch)), >, 0);
          g_assert_true (json_object_get_boolean (json_object_array_get_idx (glob, ch))
                         == (x > log (c)));
        }
      for (int j = 0; j < n_targets; j++)
        {
          int lt = json_object_get_int (json_object_array_get_idx (targets, j));
          json_object *aj = json_object_array_get_idx (alpha, j);
          json_object *tj = json_object_array_get_idx (thr, j);
          g_assert_cmpuint (json_object_array_length (aj), ==, C);
          g_assert_cmpuint (json_object_array_length (tj), ==, C);
          for (int ch = 0; ch < C; ch++)
            {
              double a = json_object_get_double (json_object_array_get_idx (aj, ch));
              double t = json_object_get_double (json_object_array_get_idx (tj, ch));
              if (lt <= rows)
                {
                  g_assert_cmpfloat (a, ==, 1);
                  g_assert_cmpfloat (t, ==, 0);
                }
              else
                {
                  g_assert_cmpfloat (a, >, 0);
                  g_assert_cmpfloat (a, <=, 1);
                  g_assert_cmpfloat (t, >, 0);
                }
            }
        }
    }
}

/* LongMamba's calibration ("calibrate") from a job on tiny-mamba: two
 * samples averaged over chosen targets, then the defaults (one sample, max,
 * the reference's 25 targets); malformed sections named by their path. */
static void
test_batch_ssm_calibrate (void)
{
  g_autofree char *model = lsc_test_shared_path ("models/random/tiny-mamba");
  if (model == NULL)
    return;
  const char *prompt = "Once upon a time there was a little girl named Lily who loved the sea.";
  g_autofree char *job = g_strdup_printf (
    "{\"model\": \"%s\", \"prompt\": \"%s\", \"max_tokens\": 0, \"ssm\": {\"layers\": [0, 1], "
    "\"tensors\": false, \"calibrate\": {\"ratio\": 0.2, \"targets\": [2, 5, 64, 1000], "
    "\"samples\": 2, \"aggregate\": \"mean\"}}}", model, prompt);
  json_object *res = run_job ("ssm-calibrate", job, 0, NULL);
  json_object *ssm = json_object_object_get (res, "ssm");
  json_object *cal = json_object_object_get (ssm, "calibration");
  int window = json_object_get_int (json_object_object_get (ssm, "window"));
  g_assert_nonnull (cal);
  g_assert_cmpstr (json_object_get_string (json_object_object_get (cal, "aggregate")), ==, "mean");
  g_assert_cmpint (json_object_get_int (json_object_object_get (cal, "samples")), ==, 2);
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (cal, "ratio")), ==, 0.2);
  g_assert_cmpint (json_object_get_int (json_object_object_get (cal, "sample_rows")), ==,
                   window / 2);
  g_assert_cmpint (window / 2, >=, 5);
  g_assert_cmpint (window / 2, <, 64);
  g_test_message ("tiny-mamba: %d-token window, 2 samples of %d", window, window / 2);
  check_calibration (cal, 2, 4, 128, 0.05);
  json_object_put (res);

  g_autofree char *djob = g_strdup_printf (
    "{\"model\": \"%s\", \"prompt\": \"%s\", \"max_tokens\": 0, \"ssm\": {\"tensors\": false, "
    "\"c\": 0.5, \"calibrate\": {}}}", model, prompt);
  res = run_job ("ssm-calibrate", djob, 0, NULL);
  cal = json_object_object_get (json_object_object_get (res, "ssm"), "calibration");
  g_assert_cmpstr (json_object_get_string (json_object_object_get (cal, "aggregate")), ==, "max");
  g_assert_cmpint (json_object_get_int (json_object_object_get (cal, "samples")), ==, 1);
  g_assert_cmpfloat (json_object_get_double (json_object_object_get (cal, "ratio")), ==, 0.15);
  json_object *targets = json_object_object_get (cal, "targets");
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (targets, 0)), ==, 1000);
  g_assert_cmpint (json_object_get_int (json_object_array_get_idx (targets, 24)), ==, 192000);
  check_calibration (cal, 3, 25, 128, 0.5);
  json_object_put (res);

  struct { const char *calibrate; const char *message; } bad[] = {
    { "{\"ratio\": 0}", "$.ssm.calibrate.ratio: expected a number in (0, 1], found 0" },
    { "{\"targets\": [100, 0]}", "$.ssm.calibrate.targets[1]: expected a length in tokens >= 1, "
      "found 0" },
    { "{\"targets\": []}", "$.ssm.calibrate.targets: expected a non-empty array of lengths "
      "(tokens), found [ ]" },
    { "{\"aggregate\": \"median\"}", "$.ssm.calibrate.aggregate: expected \"max\" or \"mean\", "
      "found \"median\"" },
    { "{\"samples\": 0}", "$.ssm.calibrate.samples: expected a number of windows >= 1, found 0" },
    { "[]", "$.ssm.calibrate: expected an object, found [ ]" },
    { "{\"samples\": 1000}", "$.ssm.calibrate.samples: 1000 windows need at least 1000 tokens, "
      "the window has " },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *bjob = g_strdup_printf (
        "{\"model\": \"%s\", \"prompt\": \"abc\", \"max_tokens\": 0, \"ssm\": {\"calibrate\": %s}}",
        model, bad[i].calibrate);
      g_autofree char *err = NULL;
      run_job ("ssm-calibrate-bad", bjob, i + 1 < G_N_ELEMENTS (bad) ? 2 : 1, &err);
      if (strstr (err, bad[i].message) == NULL)
        g_error ("job %u: expected '%s' in: %s", i, bad[i].message, err);
    }
}

/* A "kv" section on tiny-llama (GQA): the generation, the comparison and
 * the log are what an in-process lsc_generate_kv () of the same tokens
 * gives; the log's arrays in tensors.safetensors; the three KV figures;
 * then bad sections, each named by its JSON path. */
static void
test_batch_kv (void)
{
  if (!have_figures ())
    return;
  g_autofree char *model = lsc_test_shared_path ("models/random/tiny-llama");
  if (model == NULL)
    return;
  g_autofree char *job = g_strdup_printf (
    "{\"model\": \"%s\", \"prompt\": \"Once upon a time there was a little girl who liked "
    "to play in the sun with her dog\", \"max_tokens\": 9, \"stop_at_eos\": false, "
    "\"backend\": \"auto\", "
    "\"kv\": {\"policy\": \"h2o\", \"heavy\": 3, \"recent\": 5, \"chunk\": 7}, "
    "\"figures\": [{\"kind\": \"kv_timeline\", \"layer\": 1, \"head\": 1, \"file\": \"t.svg\"}, "
    "{\"kind\": \"kv_layers\"}, {\"kind\": \"kv_kl\"}]}", model);
  json_object *res = run_job ("kv", job, 0, NULL);
  json_object *kv = json_object_object_get (res, "kv");
  g_assert_cmpstr (json_object_to_json_string (json_object_object_get (kv, "policy")), ==,
                   "{ \"kind\": \"h2o\", \"heavy\": 3, \"recent\": 5 }");
  g_assert_cmpint (json_object_get_int (json_object_object_get (kv, "chunk")), ==, 7);
  g_assert_cmpstr (json_object_to_json_string (json_object_object_get (res, "figures")), ==,
                   "[ \"t.svg\", \"kv-layers.png\", \"kv-kl.png\" ]");

  /* the same run in this process, on the CPU: the comparison is to the
   * last bit, also where `auto` has a GPU (test-cli-on-gpu): the policy
   * runs on the CPU, and the full-cache session with it */
  json_object *toks = json_object_object_get (res, "prompt_tokens");
  int n = (int) json_object_array_length (toks);
  g_autofree gint32 *prompt = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    prompt[i] = json_object_get_int (json_object_array_get_idx (toks, i));
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) m = lsc_model_load (model, &error);
  g_assert_no_error (error);
  LscSessionParams p, fp;
  lsc_session_params_init (&p);
  lsc_kv_policy_init (&p.kv_policy, LSC_KV_H2O);
  p.kv_policy.n_heavy = 3;
  p.kv_policy.n_recent = 5;
  p.n_ctx = lsc_kv_policy_slots (&p.kv_policy, n, 7, 9);
  g_assert_cmpint (json_object_get_int (json_object_object_get (kv, "n_ctx")), ==, 8 + 7);
  g_assert_cmpint (p.n_ctx, ==, 15);
  lsc_session_params_init (&fp);
  fp.n_ctx = n + 9;
  p.backend = fp.backend = LSC_BACKEND_CPU;
  g_autoptr(LscSession) s = lsc_session_new (m, &p, &error);
  g_autoptr(LscSession) full = lsc_session_new (m, &fp, &error);
  g_assert_no_error (error);
  LscGenerateParams gp;
  lsc_generate_params_init (&gp);
  gp.max_tokens = 9;
  g_autoptr(GArray) out = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autoptr(GArray) kl = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) agree = g_array_new (FALSE, FALSE, sizeof (gboolean));
  g_assert_true (lsc_generate_kv (s, full, prompt, n, 7, &gp, out, NULL, kl, agree, NULL, NULL,
                                  NULL, NULL, &error));
  json_object *jt = json_object_object_get (res, "tokens");
  g_assert_cmpint (json_object_array_length (jt), ==, 9);
  for (guint i = 0; i < 9; i++)
    g_assert_cmpint (json_object_get_int (json_object_array_get_idx (jt, i)), ==,
                     g_array_index (out, gint32, i));
  /* the prompt's own logits, then 8 new tokens: 9 comparisons */
  json_object *cmp = json_object_object_get (kv, "compare");
  json_object *jkl = json_object_object_get (cmp, "kl");
  g_assert_cmpuint (kl->len, ==, 9);
  g_assert_cmpint (json_object_array_length (jkl), ==, 9);
  double sum = 0;
  for (guint i = 0; i < kl->len; i++)
    {
      double want = g_array_index (kl, double, i);
      g_assert_cmpfloat (json_object_get_double (json_object_array_get_idx (jkl, i)), ==, want);
      g_assert_cmpint (json_object_get_boolean (json_object_array_get_idx (
                         json_object_object_get (cmp, "agree"), i)), ==,
                       g_array_index (agree, gboolean, i));
      sum += want;
    }
  g_assert_cmpfloat (fabs (json_object_get_double (json_object_object_get (cmp, "mean_kl")) - sum / 9),
                     <, 1e-12);
  g_test_message ("tiny-llama, h2o 3 + 5: mean KL %.3f nats over 9 steps", sum / 9);

  /* 8 slots per head at the end; the evaluations: 7-token chunks, then singles */
  const LscKvLog *log = lsc_session_get_kv (s);
  int positions = n + 8;
  g_assert_cmpint (json_object_get_int (json_object_object_get (kv, "positions")), ==, positions);
  json_object *steps = json_object_object_get (kv, "steps");
  int n_steps;
  const int *want_steps = lsc_kv_log_get_steps (log, &n_steps);
  g_assert_cmpint (json_object_array_length (steps), ==, n_steps);
  g_assert_cmpint (n_steps, ==, (n + 6) / 7 + 8);
  for (int i = 0; i < n_steps; i++)
    g_assert_cmpint (json_object_get_int (json_object_array_get_idx (steps, i)), ==, want_steps[i]);
  json_object *alive = json_object_object_get (kv, "alive");
  g_assert_cmpstr (json_object_to_json_string (alive), ==, "[ [ 8, 8 ], [ 8, 8 ], [ 8, 8 ] ]");

  g_autofree char *tpath = g_build_filename (lsc_test_tmpdir (), "kv", "tensors.safetensors", NULL);
  g_autoptr(LscTensorReader) reader = lsc_tensor_reader_open (tpath, &error);
  g_assert_no_error (error);
  gint64 shape[3] = { 3, 2, positions };
  const gint32 *evicted = lsc_tensor_reader_get_i32 (reader, "kv.evicted_at", 3, shape, &error);
  const float *score = lsc_tensor_reader_get_f32 (reader, "kv.score", 3, shape, &error);
  g_assert_no_error (error);
  for (int l = 0; l < 3; l++)
    for (int h = 0; h < 2; h++)
      for (int pos = 0; pos < positions; pos++)
        {
          gsize i = ((gsize) l * 2 + h) * positions + pos;
          g_assert_cmpint (evicted[i], ==, lsc_kv_log_evicted_at (log, l, h, pos));
          g_assert_cmpfloat (score[i], ==, lsc_kv_log_score (log, l, h, pos));
        }
  json_object_put (res);

  struct { const char *kv; const char *message; } bad[] = {
    { "{\"policy\": \"lru\"}", "$.kv.policy: expected \"streaming-llm\", \"h2o\", \"snapkv\", "
      "\"pyramidkv\", \"lacache\", \"lm-infinite\" or \"think\", found \"lru\"" },
    { "{\"policy\": \"full\"}", "$.kv.policy: expected \"streaming-llm\"" },
    { "{\"heavy\": 3}", "$.kv.policy: expected \"streaming-llm\", \"h2o\", \"snapkv\", "
      "\"pyramidkv\", \"lacache\", \"lm-infinite\" or \"think\", found nothing" },
    { "{\"policy\": \"lacache\", \"window\": 3}", "$.kv.window: the lacache policy has no window" },
    { "[{\"policy\": \"h2o\"}, {\"policy\": \"snapkv\", \"kernel\": 2}]",
      "$.kv[1]: snapkv: kernel must be an odd number of at least 1, not 2" },
    { "[]", "$.kv: expected a policy or an array of 1 to 64 policies, found [ ]" },
    { "7", "$.kv: expected an object or an array, found int" },
    { "{\"policy\": \"snapkv\", \"heavy\": 3}", "$.kv.heavy: the snapkv policy has no heavy" },
    { "{\"policy\": \"h2o\", \"pooling\": \"max\"}", "$.kv.pooling: the h2o policy has no pooling" },
    { "{\"policy\": \"snapkv\", \"pooling\": \"mean\"}",
      "$.kv.pooling: expected \"avg\" or \"max\", found \"mean\"" },
    { "{\"policy\": \"h2o\", \"recent\": -1}", "$.kv.recent: expected a whole number >= 0, found -1" },
    { "{\"policy\": \"pyramidkv\", \"kernel\": 4}",
      "$.kv: pyramidkv: kernel must be an odd number of at least 1, not 4" },
    { "{\"policy\": \"h2o\", \"chunk\": 1.5}", "$.kv.chunk: expected a number of tokens >= 0, found 1.5" },
    { "{\"policy\": \"h2o\", \"compare\": 1}", "$.kv.compare: expected true or false, found 1" },
    { "{\"policy\": \"h2o\", \"evict\": 1}", "$.kv.evict: unknown key" },
    { "{\"policy\": \"h2o\"}, \"capture\": {}", "$.kv: a KV policy cannot be combined with "
      "\"capture\" yet" },
    { "{\"policy\": \"h2o\", \"compare\": false}, \"figures\": [{\"kind\": \"kv_kl\"}]",
      "$.figures: the kv_kl figure needs \"kv\": {\"compare\": true}" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *bjob = g_strdup_printf (
        "{\"model\": \"%s\", \"prompt\": \"abc\", \"max_tokens\": 0, \"kv\": %s}", model,
        bad[i].kv);
      g_autofree char *err = NULL;
      run_job ("kv-bad", bjob, 2, &err);
      if (strstr (err, bad[i].message) == NULL)
        g_error ("job %u: expected '%s' in: %s", i, bad[i].message, err);
    }
  /* several policies compared: each from an empty cache, one KL line each */
  g_autofree char *ljob = g_strdup_printf (
    "{\"model\": \"%s\", \"prompt\": \"Once upon a time there was a little girl\", "
    "\"max_tokens\": 5, \"stop_at_eos\": false, \"kv\": [{\"policy\": \"h2o\", \"heavy\": 3, "
    "\"recent\": 5}, {\"policy\": \"lacache\", \"capacity\": 8, \"sink\": 1, \"span\": 1, "
    "\"compare\": false}, {\"policy\": \"snapkv\", \"capacity\": 6, \"window\": 2}], "
    "\"figures\": [{\"kind\": \"kv_kl\", \"file\": \"kl.svg\"}, {\"kind\": \"kv_layers\", "
    "\"run\": 1}]}", model);
  res = run_job ("kv-list", ljob, 0, NULL);
  kv = json_object_object_get (res, "kv");
  g_assert_true (json_object_is_type (kv, json_type_array));
  g_assert_cmpint (json_object_array_length (kv), ==, 3);
  /* the first run's generation is also the top-level one */
  g_assert_cmpstr (json_object_to_json_string (json_object_object_get (
                     json_object_array_get_idx (kv, 0), "tokens")), ==,
                   json_object_to_json_string (json_object_object_get (res, "tokens")));
  g_assert_null (json_object_object_get (json_object_array_get_idx (kv, 1), "compare"));
  g_assert_cmpint (json_object_array_length (json_object_object_get (json_object_object_get (
                     json_object_array_get_idx (kv, 2), "compare"), "kl")), ==, 5);
  g_autofree char *lpath = g_build_filename (lsc_test_tmpdir (), "kv-list", "tensors.safetensors",
                                             NULL);
  g_autoptr(LscTensorReader) lreader = lsc_tensor_reader_open (lpath, &error);
  g_assert_no_error (error);
  for (int r = 0; r < 3; r++)
    {
      g_autofree char *name = g_strdup_printf ("kv.%d.evicted_at", r);
      g_assert_true (lsc_tensor_reader_lookup (lreader, name, NULL, NULL));
    }
  g_assert_false (lsc_tensor_reader_lookup (lreader, "kv.evicted_at", NULL, NULL));
  g_assert_cmpstr (json_object_to_json_string (json_object_object_get (res, "figures")), ==,
                   "[ \"kl.svg\", \"kv-layers.png\" ]");
  json_object_put (res);

  /* a policy that cannot run on the model fails at its turn, naming it; the
   * runs before it are in the results (and, under ASan, nothing leaks) */
  g_autofree char *rjob = g_strdup_printf (
    "{\"model\": \"%s\", \"prompt\": \"abc\", \"max_tokens\": 2, \"kv\": [{\"policy\": "
    "\"h2o\"}, {\"policy\": \"lacache\", \"capacity\": 64}]}", model);
  g_autofree char *rerr = NULL;
  run_job ("kv-run-fails", rjob, 1, &rerr);
  g_assert_nonnull (strstr (rerr, "$.kv[1]: "));
  g_assert_nonnull (strstr (rerr, "lacache: span 16 and overlap 0 drop no token with 3 layers"));

  /* figures without the section */
  g_autofree char *fjob = g_strdup_printf (
    "{\"model\": \"%s\", \"prompt\": \"abc\", \"figures\": [{\"kind\": \"kv_layers\"}]}",
    model);
  g_autofree char *err = NULL;
  run_job ("kv-bad", fjob, 2, &err);
  g_assert_nonnull (strstr (err, "$.figures: KV figures need a \"kv\" section"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (g_getenv ("LSC_LONGSCOPE") == NULL)
    g_error ("LSC_LONGSCOPE must name the longscope binary (meson test sets it)");
  g_test_add_func ("/cli/info", test_info);
  g_test_add_func ("/cli/tokenize", test_tokenize);
  g_test_add_func ("/cli/plugins", test_plugins);
  g_test_add_func ("/cli/detokenize-padding", test_detokenize_padding);
  g_test_add_func ("/cli/batch/generate", test_batch_generate);
  g_test_add_func ("/cli/batch/invalid", test_batch_invalid);
  g_test_add_func ("/cli/batch/backend", test_batch_backend);
  g_test_add_func ("/cli/batch/demo-job", test_demo_job);
  g_test_add_func ("/cli/batch/capture", test_batch_capture);
  g_test_add_func ("/cli/batch/figures", test_batch_figures);
  g_test_add_func ("/cli/batch/interrupt", test_batch_interrupt);
  g_test_add_func ("/cli/batch/plugins", test_batch_plugins);
  g_test_add_func ("/cli/batch/retrieval-plugins", test_batch_retrieval_plugins);
  g_test_add_func ("/cli/batch/ssm", test_batch_ssm);
  g_test_add_func ("/cli/batch/ssm-filter", test_batch_ssm_filter);
  g_test_add_func ("/cli/batch/ssm-calibrate", test_batch_ssm_calibrate);
  g_test_add_func ("/cli/batch/kv", test_batch_kv);
  return g_test_run ();
}
