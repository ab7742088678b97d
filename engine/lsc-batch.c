/* SPDX-License-Identifier: MIT
 *
 * The batch runner behind `longscope --batch job.json [--output DIR]`.
 *
 * Job schema, version 1 (documented in the README; names are stable):
 *
 *   {
 *     "schema_version": 1,        optional, must be 1
 *     "model": "path",            required; relative paths are relative to the job file
 *     "kind": "info"              optional; "info" (default) describes the model
 *   }
 *
 * Writes DIR/results.json atomically:
 *
 *   { "schema_version": 1, "kind": "info", "status": "done",
 *     "provenance": { "longscope_version", "longscope_commit", "model_path", "model_format",
 *                     "model_bytes", "config_sha256" },
 *     "job": { ...the job as read... },
 *     "model": { "architecture", "vocab_size", "dim", ..., "tensors": [ {name, dtype, shape, role} ] },
 *     "warnings": [ ... ] }
 *
 * The forward pass extends this schema with prompts and generation (issue 3).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lsc-batch.h"
#include "lsc-error.h"
#include "lsc-json.h"
#include "lsc-model.h"

#define SCHEMA_VERSION 1

enum {
  EXIT_DONE = 0,
  EXIT_RUNTIME = 1,
  EXIT_INVALID = 2,
  EXIT_LOAD = 3,
};

typedef struct {
  char *name;            /* the job file as given, for messages */
  char *base_dir;        /* relative paths are resolved here */
  json_object *root;     /* (owned) */
  char *model;           /* resolved model path */
  char *kind;
} LscJob;

static void
job_clear (LscJob *job)
{
  g_free (job->name);
  g_free (job->base_dir);
  json_object_put (job->root);
  g_free (job->model);
  g_free (job->kind);
}

static const char *
json_type_label (json_object *v)
{
  return v == NULL ? "null" : json_type_to_name (json_object_get_type (v));
}

static gboolean
job_parse (LscJob *job, const char *text, gsize len, GError **error)
{
  static const char *const known[] = { "schema_version", "model", "kind", NULL };
  json_object *v;

  job->root = lsc_json_parse (job->name, text, len, error);
  if (job->root == NULL)
    return FALSE;
  if (!json_object_is_type (job->root, json_type_object))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $: expected an object, found %s", job->name, json_type_label (job->root));
      return FALSE;
    }

  json_object_object_foreach (job->root, key, val)
    {
      (void) val;
      if (!g_strv_contains (known, key))
        {
          g_autofree char *list = g_strjoinv (", ", (char **) known);
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.%s: unknown key (expected one of %s)", job->name, key, list);
          return FALSE;
        }
    }

  if (json_object_object_get_ex (job->root, "schema_version", &v)
      && (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) != SCHEMA_VERSION))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.schema_version: expected %d, found %s", job->name, SCHEMA_VERSION,
                   json_object_to_json_string (v));
      return FALSE;
    }

  if (!json_object_object_get_ex (job->root, "model", &v))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.model: missing (expected the path of a model)", job->name);
      return FALSE;
    }
  if (!json_object_is_type (v, json_type_string) || json_object_get_string_len (v) == 0)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.model: expected a non-empty string, found %s", job->name,
                   json_type_label (v));
      return FALSE;
    }
  const char *model = json_object_get_string (v);
  job->model = g_path_is_absolute (model) ? g_strdup (model)
                                          : g_build_filename (job->base_dir, model, NULL);

  job->kind = g_strdup ("info");
  if (json_object_object_get_ex (job->root, "kind", &v))
    {
      if (!json_object_is_type (v, json_type_string) || strcmp (json_object_get_string (v), "info"))
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: $.kind: expected \"info\", found %s", job->name,
                       json_object_to_json_string (v));
          return FALSE;
        }
    }
  return TRUE;
}

static json_object *
shape_to_json (const LscTensor *t)
{
  json_object *a = json_object_new_array ();
  for (int d = 0; d < t->n_dims; d++)
    json_object_array_add (a, json_object_new_int64 (t->shape[d]));
  return a;
}

static json_object *
model_to_json (const LscModel *model)
{
  const LscModelConfig *c = lsc_model_get_config (model);
  json_object *o = json_object_new_object ();
  json_object *tensors = json_object_new_array ();

  json_object_object_add (o, "architecture", json_object_new_string (lsc_arch_name (c->arch)));
  json_object_object_add (o, "format",
                          json_object_new_string (lsc_model_format_name (lsc_model_get_format (model))));
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
  INT_FIELD (ssm_d_inner);
  INT_FIELD (ssm_d_state);
  INT_FIELD (ssm_d_conv);
  INT_FIELD (ssm_dt_rank);
#undef INT_FIELD
  json_object_object_add (o, "norm_eps", lsc_json_double (c->norm_eps));
  json_object_object_add (o, "rope_theta", lsc_json_double (c->rope_theta));
  json_object_object_add (o, "rope_layout",
                          json_object_new_string (c->rope_layout == LSC_ROPE_NEOX ? "neox" : "interleaved"));
  json_object_object_add (o, "tied_embeddings", json_object_new_boolean (c->tied_embeddings));
  json_object_object_add (o, "qkv_bias", json_object_new_boolean (c->attn_qkv_bias));

  for (guint i = 0; i < lsc_model_get_n_tensors (model); i++)
    {
      const LscTensor *t = lsc_model_get_tensor (model, i);
      json_object *jt = json_object_new_object ();
      json_object_object_add (jt, "name", json_object_new_string (t->name));
      json_object_object_add (jt, "dtype", json_object_new_string (lsc_dtype_name (t->dtype)));
      json_object_object_add (jt, "shape", shape_to_json (t));
      json_object_object_add (jt, "role", json_object_new_string (lsc_tensor_role_name (t->role)));
      json_object_array_add (tensors, jt);
    }
  json_object_object_add (o, "tensors", tensors);
  return o;
}

static json_object *
provenance_to_json (const LscModel *model)
{
  json_object *o = json_object_new_object ();
  const char *path = lsc_model_get_path (model);
  guint64 bytes = 0;

  for (guint i = 0; i < lsc_model_get_n_tensors (model); i++)
    bytes += lsc_model_get_tensor (model, i)->n_bytes;
  json_object_object_add (o, "longscope_version", json_object_new_string (PACKAGE_VERSION));
  json_object_object_add (o, "longscope_commit", json_object_new_string (LSC_GIT_COMMIT));
  json_object_object_add (o, "model_path", json_object_new_string (path));
  json_object_object_add (o, "model_format",
                          json_object_new_string (lsc_model_format_name (lsc_model_get_format (model))));
  json_object_object_add (o, "weight_bytes", json_object_new_int64 ((gint64) bytes));

  /* hash of the file that defines the model: config.json, or the file itself (its header) */
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

static int
run_job (LscJob *job, const char *output_dir)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = NULL;

  g_printerr ("longscope: loading %s\n", job->model);
  model = lsc_model_load (job->model, &error);
  if (model == NULL)
    {
      g_printerr ("longscope: %s: $.model: %s\n", job->name, error->message);
      return EXIT_LOAD;
    }

  g_autoptr(json_object) results = json_object_new_object ();
  json_object *warnings = json_object_new_array ();
  for (const char *const *w = lsc_model_get_warnings (model); *w != NULL; w++)
    json_object_array_add (warnings, json_object_new_string (*w));
  json_object_object_add (results, "schema_version", json_object_new_int (SCHEMA_VERSION));
  json_object_object_add (results, "kind", json_object_new_string (job->kind));
  json_object_object_add (results, "status", json_object_new_string ("done"));
  json_object_object_add (results, "provenance", provenance_to_json (model));
  json_object_object_add (results, "job", json_object_get (job->root));
  json_object_object_add (results, "model", model_to_json (model));
  json_object_object_add (results, "warnings", warnings);

  if (g_mkdir_with_parents (output_dir, 0755) != 0)
    {
      g_printerr ("longscope: %s: cannot create the output folder: %s\n", output_dir,
                  g_strerror (errno));
      return EXIT_RUNTIME;
    }
  g_autofree char *out = g_build_filename (output_dir, "results.json", NULL);
  if (!lsc_json_write_file (results, out, &error))
    {
      g_printerr ("longscope: %s\n", error->message);
      return EXIT_RUNTIME;
    }
  g_autoptr(GString) summary = g_string_new (NULL);
  lsc_model_describe (model, summary, FALSE);
  fputs (summary->str, stdout);
  g_printerr ("longscope: wrote %s\n", out);
  return EXIT_DONE;
}

int
lsc_batch_run_file (const char *job_path, const char *output_dir)
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
      job.base_dir = g_path_get_dirname (job_path);
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
  status = run_job (&job, output_dir != NULL ? output_dir : default_out);
  job_clear (&job);
  return status;
}
