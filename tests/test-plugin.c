/* SPDX-License-Identifier: MIT
 *
 * Plugins: the registry and its loader's errors, parameter values read from
 * jobs, joined hooks, and the Selective Attention plugin held to
 * transformers with the paper's temperature (tests/fixtures/
 * selective-attention.json, made by tools/make-selective-attention-fixture.py).
 */
#include "config.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "lsc-error.h"
#include "lsc-json.h"
#include "lsc-plugin.h"
#include "lsc-session.h"
#include "lsc-test-util.h"

static const LscPluginInfo *
selective (void)
{
  g_autoptr(GError) error = NULL;
  const LscPluginInfo *info = lsc_plugin_find ("selective-attention", &error);
  g_assert_no_error (error);
  return info;
}

static void
test_list (void)
{
  int n;
  const LscPluginInfo *const *list = lsc_plugin_list (&n);
  g_assert_cmpint (n, >=, 1);
  g_assert_null (list[n]);
  for (const char *const *p = lsc_plugin_get_load_problems (); *p != NULL; p++)
    g_test_message ("load problem: %s", *p);
  g_assert_null (lsc_plugin_get_load_problems ()[0]);

  const LscPluginInfo *info = selective ();
  g_assert_cmpstr (info->name, ==, "Selective Attention");
  g_assert_cmpint (info->n_params, ==, 5);
  const char *names[] = { "alpha", "form", "train_length", "first_layer", "last_layer" };
  for (int i = 0; i < 5; i++)
    g_assert_cmpstr (info->params[i].name, ==, names[i]);
  g_assert_cmpstr (info->params[1].choices[1], ==, "log-n");

  g_autoptr(GError) error = NULL;
  g_assert_null (lsc_plugin_find ("set-based", &error));
  lsc_test_assert_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_NOT_FOUND,
                         "no plugin \"set-based\" (found: ", "selective-attention", NULL);
}

static char *
write_descriptor (const char *dir, const char *name, const char *text)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  return g_steal_pointer (&path);
}

static void
test_load_errors (void)
{
  g_autofree char *dir = g_build_filename (lsc_test_tmpdir (), "plugins", NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  /* the real module under another descriptor */
  g_autofree char *built = g_test_build_filename (G_TEST_BUILT, "..", "plugins",
                                                  "libselective-attention." G_MODULE_SUFFIX, NULL);
  g_autofree char *real = g_canonicalize_filename (built, NULL);
  g_autofree char *link = g_build_filename (dir, "libselective-attention." G_MODULE_SUFFIX, NULL);
  g_assert_cmpint (symlink (real, link), ==, 0);
  g_autofree char *junk = g_build_filename (dir, "libjunk." G_MODULE_SUFFIX, NULL);
  g_assert_true (g_file_set_contents (junk, "not an ELF file", -1, NULL));

  static const struct {
    const char *text;
    int code;
    const char *fragment;
  } cases[] = {
    { "[Longscope Plugin]\nModule=selective-attention\n", LSC_PLUGIN_ERROR_DESCRIPTOR,
      "[Longscope Plugin] needs Id and Module (a file name, no folder)" },
    { "[Longscope Plugin]\nId=x\nModule=../selective-attention\n", LSC_PLUGIN_ERROR_DESCRIPTOR,
      "needs Id and Module" },
    { "[Longscope Plugin\nId=x\n", LSC_PLUGIN_ERROR_DESCRIPTOR, "bad.plugin: " },
    { "[Longscope Plugin]\nId=x\nModule=absent\n", LSC_PLUGIN_ERROR_MODULE,
      "bad.plugin: Module: " },
    { "[Longscope Plugin]\nId=junk\nModule=junk\n", LSC_PLUGIN_ERROR_MODULE,
      "bad.plugin: Module: " },
    { "[Longscope Plugin]\nId=other\nModule=selective-attention\n", LSC_PLUGIN_ERROR_INVALID,
      "libselective-attention.so: its id is \"selective-attention\", the descriptor says \"other\"" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *path = write_descriptor (dir, "bad.plugin", cases[i].text);
      g_assert_null (lsc_plugin_load (path, &error));
      lsc_test_assert_error (error, LSC_PLUGIN_ERROR, cases[i].code, cases[i].fragment, NULL);
    }
  g_autoptr(GError) error = NULL;
  g_autofree char *missing = g_build_filename (dir, "missing.plugin", NULL);
  g_assert_null (lsc_plugin_load (missing, &error));
  lsc_test_assert_error (error, LSC_PLUGIN_ERROR, LSC_PLUGIN_ERROR_DESCRIPTOR, "missing.plugin: ",
                         NULL);

  g_clear_error (&error);
  /* and the good one loads from here too: the same module, the same info */
  g_autofree char *good = write_descriptor (dir, "good.plugin",
                                            "[Longscope Plugin]\nId=selective-attention\n"
                                            "Module=selective-attention\n");
  g_assert_true (lsc_plugin_load (good, &error) == selective ());
  g_assert_no_error (error);
}

static json_object *
parse (const char *text)
{
  g_autoptr(GError) error = NULL;
  json_object *v = lsc_json_parse ("job.json", text, strlen (text), LSC_JOB_ERROR,
                                   LSC_JOB_ERROR_SYNTAX, &error);
  g_assert_no_error (error);
  return v;
}

static void
test_json (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscPluginStack) stack = lsc_plugin_stack_new ();
  g_autoptr(json_object) in = parse ("[{\"id\": \"selective-attention\", \"alpha\": 0.25, "
                                     "\"form\": \"log-n\", \"train_length\": 512}, "
                                     "{\"id\": \"selective-attention\"}]");
  g_assert_true (lsc_plugin_stack_parse_json (stack, in, "job.json", "$.plugins", &error));
  g_assert_no_error (error);
  g_assert_cmpint (lsc_plugin_stack_get_size (stack), ==, 2);
  const double *v;
  lsc_plugin_stack_get (stack, 0, &v);
  g_assert_cmpfloat (v[0], ==, 0.25);
  g_assert_cmpfloat (v[1], ==, 1);
  g_assert_cmpfloat (v[2], ==, 512);
  g_assert_cmpfloat (v[4], ==, -1);
  lsc_plugin_stack_get (stack, 1, &v);
  g_assert_cmpfloat (v[0], ==, 0.1);

  g_autoptr(json_object) out = lsc_plugin_stack_to_json (stack);
  g_assert_cmpstr (json_object_to_json_string_ext (out, JSON_C_TO_STRING_PLAIN), ==,
                   "[{\"id\":\"selective-attention\",\"alpha\":0.25,\"form\":\"log-n\","
                   "\"train_length\":512,\"first_layer\":0,\"last_layer\":-1},"
                   "{\"id\":\"selective-attention\",\"alpha\":0.1,\"form\":\"position\","
                   "\"train_length\":0,\"first_layer\":0,\"last_layer\":-1}]");
  /* what it writes reads back the same */
  g_autoptr(LscPluginStack) again = lsc_plugin_stack_new ();
  g_assert_true (lsc_plugin_stack_parse_json (again, out, "r.json", "$.plugins", &error));
  g_autoptr(json_object) out2 = lsc_plugin_stack_to_json (again);
  g_assert_cmpstr (json_object_to_json_string (out2), ==, json_object_to_json_string (out));

  static const struct {
    const char *json;
    const char *message;
  } bad[] = {
    { "{}", "job.json: $.plugins: expected an array of plugins, found {}" },
    { "[3]", "job.json: $.plugins[0]: expected an object with an \"id\" string" },
    { "[{\"alpha\": 1}]", "job.json: $.plugins[0]: expected an object with an \"id\" string" },
    { "[{\"id\": \"nope\"}]", "job.json: $.plugins[0].id: no plugin \"nope\" (found: " },
    { "[{\"id\": \"selective-attention\", \"beta\": 1}]",
      "job.json: $.plugins[0].beta: unknown key (expected one of id, alpha, form, "
      "train_length, first_layer, last_layer)" },
    { "[{\"id\": \"selective-attention\", \"alpha\": -1}]",
      "job.json: $.plugins[0].alpha: expected a number in [0, 10], found -1" },
    { "[{\"id\": \"selective-attention\", \"alpha\": \"0.1\"}]",
      "job.json: $.plugins[0].alpha: expected a number in [0, 10], found \"0.1\"" },
    { "[{\"id\": \"selective-attention\", \"form\": \"linear\"}]",
      "job.json: $.plugins[0].form: expected one of \"position\", \"log-n\", found \"linear\"" },
    { "[{\"id\": \"selective-attention\"}, {\"id\": \"selective-attention\", \"first_layer\": 1.5}]",
      "job.json: $.plugins[1].first_layer: expected an integer in [0, 4095], found 1.5" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) e = NULL;
      g_autoptr(LscPluginStack) s = lsc_plugin_stack_new ();
      g_autoptr(json_object) j = parse (bad[i].json);
      g_assert_false (lsc_plugin_stack_parse_json (s, j, "job.json", "$.plugins", &e));
      lsc_test_assert_error (e, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID, bad[i].message, NULL);
    }
}

/* Scales of one and of two plugins, and values that do not fit the model. */
static void
test_hooks (void)
{
  g_autoptr(GError) error = NULL;
  const LscPluginInfo *info = selective ();
  LscModelConfig config = { .n_layers = 4, .max_position = 64 };
  double a[LSC_PLUGIN_MAX_PARAMS], b[LSC_PLUGIN_MAX_PARAMS];
  lsc_plugin_get_defaults (info, a);
  lsc_plugin_get_defaults (info, b);
  a[0] = 0.5;
  a[3] = 1, a[4] = 2;       /* layers 1 .. 2 */
  b[1] = 1;                 /* log-n over the model's 64 */

  g_autoptr(LscPluginStack) one = lsc_plugin_stack_new ();
  g_assert_true (lsc_plugin_stack_add (one, info, a, &error));
  g_assert_true (lsc_plugin_stack_instantiate (one, &config, &error));
  LscAttentionHooks h;
  lsc_plugin_stack_get_hooks (one, &h);
  g_assert_nonnull (h.scale);
  g_assert_null (h.mask_row);
  g_assert_true (h.data != (gpointer) one);   /* the plugin's own hook, not a join */
  g_assert_cmpfloat (h.scale (h.data, 0, 0, 99), ==, 1.0f);
  g_assert_cmpfloat (h.scale (h.data, 1, 3, 0), ==, 1.0f);       /* ln 1 = 0 */
  g_assert_cmpfloat (h.scale (h.data, 2, 0, 99), ==, (float) (1 + 0.5 * log (100.0)));
  g_assert_cmpfloat (h.scale (h.data, 3, 0, 99), ==, 1.0f);

  g_autoptr(LscPluginStack) two = lsc_plugin_stack_new ();
  g_assert_true (lsc_plugin_stack_add (two, info, a, &error));
  g_assert_true (lsc_plugin_stack_add (two, info, b, &error));
  g_assert_true (lsc_plugin_stack_instantiate (two, &config, &error));
  lsc_plugin_stack_get_hooks (two, &h);
  g_assert_true (h.data == (gpointer) two);
  float want = (float) (1 + 0.5 * log (4096.0)) * (float) (log (4096.0) / log (64.0));
  g_assert_cmpfloat (h.scale (h.data, 1, 0, 4095), ==, want);
  g_assert_cmpfloat (h.scale (h.data, 0, 0, 31), ==, 1.0f);    /* inside L, outside the layers */

  g_autoptr(LscPluginStack) none = lsc_plugin_stack_new ();
  lsc_plugin_stack_get_hooks (none, &h);
  g_assert_null (h.scale);

  /* values outside the declared ranges never reach a plugin */
  a[0] = 11;
  g_assert_false (lsc_plugin_stack_add (none, info, a, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                         "plugin selective-attention: alpha: expected a number in [0, 10], found 11",
                         NULL);
  g_clear_error (&error);
  /* layers the model lacks */
  a[0] = 0.1, a[3] = 4, a[4] = -1;
  g_assert_true (lsc_plugin_stack_add (none, info, a, &error));
  g_assert_false (lsc_plugin_stack_instantiate (none, &config, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                         "plugin selective-attention: first_layer 4 .. last_layer -1: the model "
                         "has layers 0 .. 3", NULL);
  g_clear_error (&error);
  g_autoptr(LscPluginStack) logn = lsc_plugin_stack_new ();
  g_assert_true (lsc_plugin_stack_add (logn, info, b, &error));
  config.max_position = 0;
  g_assert_false (lsc_plugin_stack_instantiate (logn, &config, &error));
  lsc_test_assert_error (error, LSC_RUN_ERROR, LSC_RUN_ERROR_INVALID_ARGUMENT,
                         "plugin selective-attention: train_length: log-n scaling needs",
                         NULL);
}

/* Logits of the whole sequence through a session with the stack's hooks. */
static float *
run_with (LscModel *model, LscPluginStack *stack, const gint32 *tokens, int n, gboolean reference,
          LscSession **session)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.reference = reference;
  p.capture.enabled = TRUE;
  if (stack != NULL)
    {
      g_assert_true (lsc_plugin_stack_instantiate (stack, lsc_model_get_config (model), &error));
      lsc_plugin_stack_get_hooks (stack, &p.hooks);
    }
  LscSession *s = lsc_session_new (model, &p, &error);
  g_assert_no_error (error);
  int vocab = lsc_session_get_n_vocab (s);
  float *logits = g_new (float, (gsize) n * vocab);
  g_assert_true (lsc_session_eval (s, tokens, n, logits, TRUE, NULL, NULL, &error));
  g_assert_no_error (error);
  *session = s;
  return logits;
}

static void
test_selective_reference (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "fixtures",
                                                 "selective-attention.json", NULL);
  g_autoptr(json_object) root = json_object_from_file (path);
  g_assert_nonnull (root);
  json_object *cases = json_object_object_get (root, "cases");
  g_assert_cmpint (json_object_array_length (cases), ==, 2);
  for (size_t c = 0; c < json_object_array_length (cases); c++)
    {
      json_object *cs = json_object_array_get_idx (cases, c);
      const char *name = json_object_get_string (json_object_object_get (cs, "model"));
      json_object *toks = json_object_object_get (cs, "tokens");
      int n = (int) json_object_array_length (toks);
      g_autofree gint32 *tokens = g_new (gint32, n);
      for (int i = 0; i < n; i++)
        tokens[i] = json_object_get_int (json_object_array_get_idx (toks, i));
      g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf", name, NULL);
      g_autoptr(LscModel) model = lsc_model_load (dir, &error);
      g_assert_no_error (error);

      g_autoptr(LscPluginStack) stack = lsc_plugin_stack_new ();
      g_autoptr(json_object) plugins = json_object_new_array ();
      json_object_array_add (plugins, json_object_get (json_object_object_get (cs, "plugin")));
      g_assert_true (lsc_plugin_stack_parse_json (stack, plugins, path, "$.plugin", &error));
      g_assert_no_error (error);

      json_object *want = json_object_object_get (cs, "logits");
      json_object *maps = json_object_object_get (cs, "attentions");
      for (int reference = 0; reference <= 1; reference++)
        {
          g_autoptr(LscSession) s = NULL, plain = NULL;
          g_autofree float *got = run_with (model, stack, tokens, n, reference, &s);
          g_autofree float *model_only = run_with (model, NULL, tokens, n, reference, &plain);
          int vocab = lsc_session_get_n_vocab (s);
          double diff = 0, norm = 0, moved = 0;
          for (int t = 0; t < n; t++)
            for (int v = 0; v < vocab; v++)
              {
                double w = json_object_get_double (
                    json_object_array_get_idx (json_object_array_get_idx (want, t), v));
                double g = got[(gsize) t * vocab + v];
                diff += (g - w) * (g - w);
                norm += w * w;
                moved = fmax (moved, fabs (model_only[(gsize) t * vocab + v] - w));
              }
          double rel = sqrt (diff / norm);
          g_test_message ("%s (%s): relative error %.3g against transformers with the "
                          "temperature; the model alone is off by up to %.3g", name,
                          reference ? "reference" : "fast", rel, moved);
          g_assert_cmpfloat (rel, <=, 1e-5);
          g_assert_cmpfloat (moved, >=, 0.1);   /* the fixture is no model-only run */

          if (maps == NULL)
            continue;
          /* the maps recomputed from the store carry the temperature */
          const LscAttentionStore *store = lsc_session_get_attention (s);
          g_autofree float *tile = g_new (float, (gsize) n * n);
          double worst = 0;
          for (size_t l = 0; l < json_object_array_length (maps); l++)
            for (size_t h = 0; h < json_object_array_length (json_object_array_get_idx (maps, l)); h++)
              {
                json_object *rows = json_object_array_get_idx (json_object_array_get_idx (maps, l), h);
                g_assert_true (lsc_attention_tile (store, (int) l, (int) h, 0, n, 0, n, 0.0f, tile,
                                                   &error));
                for (int i = 0; i < n; i++)
                  for (int j = 0; j < n; j++)
                    worst = fmax (worst, fabs (tile[(gsize) i * n + j] - json_object_get_double (
                        json_object_array_get_idx (json_object_array_get_idx (rows, i), j))));
              }
          g_test_message ("%s: attention maps within %.3g of transformers'", name, worst);
          g_assert_cmpfloat (worst, <=, 1e-5);
        }
    }
}

/* alpha = 0 is the model itself, bit for bit. */
static void
test_selective_identity (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fixtures", "hf", "llama-rope-none",
                                                NULL);
  g_autoptr(LscModel) model = lsc_model_load (dir, &error);
  g_assert_no_error (error);
  const LscPluginInfo *info = selective ();
  double v[LSC_PLUGIN_MAX_PARAMS];
  lsc_plugin_get_defaults (info, v);
  v[0] = 0;
  g_autoptr(LscPluginStack) stack = lsc_plugin_stack_new ();
  g_assert_true (lsc_plugin_stack_add (stack, info, v, &error));
  gint32 tokens[40];
  for (int i = 0; i < 40; i++)
    tokens[i] = (i * 37 + 5) % 128;
  for (int reference = 0; reference <= 1; reference++)
    {
      g_autoptr(LscSession) a = NULL, b = NULL;
      g_autofree float *with = run_with (model, stack, tokens, 40, reference, &a);
      g_autofree float *without = run_with (model, NULL, tokens, 40, reference, &b);
      g_assert_cmpmem (with, 40 * 128 * sizeof (float), without, 40 * 128 * sizeof (float));
    }
}

/* Numbers that jobs and results write (plugin values, a KV policy's ratio,
 * a run's temperature) read back as written, in their shortest text. */
static void
test_json_shortest (void)
{
  static const struct {
    double v;
    gboolean single;
    const char *text;
  } cases[] = {
    { 0.1, FALSE, "0.1" },       { 10, FALSE, "10" },          { -1, FALSE, "-1" },
    { 1.0 / 3, FALSE, "0.3333333333333333" },                 { 2.5e-7, FALSE, "2.5e-07" },
    { 0.7f, TRUE, "0.7" },       { 10, TRUE, "10" },           { 1e-7f, TRUE, "1e-07" },
    { 1.0f / 3, TRUE, "0.33333334" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(json_object) o = cases[i].single ? lsc_json_float_short ((float) cases[i].v)
                                                 : lsc_json_double_short (cases[i].v);
      g_assert_cmpstr (json_object_to_json_string (o), ==, cases[i].text);
      if (cases[i].single)
        g_assert_cmpfloat ((float) json_object_get_double (o), ==, (float) cases[i].v);
      else
        g_assert_cmpfloat (json_object_get_double (o), ==, cases[i].v);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/plugin/list", test_list);
  g_test_add_func ("/engine/plugin/load-errors", test_load_errors);
  g_test_add_func ("/engine/plugin/json", test_json);
  g_test_add_func ("/engine/json/shortest", test_json_shortest);
  g_test_add_func ("/engine/plugin/hooks", test_hooks);
  g_test_add_func ("/engine/plugin/selective-attention/reference", test_selective_reference);
  g_test_add_func ("/engine/plugin/selective-attention/identity", test_selective_identity);
  return g_test_run ();
}
