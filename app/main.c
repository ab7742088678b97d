/* SPDX-License-Identifier: MIT
 *
 * longscope: the command line.
 *
 *   longscope --info PATH              print the normalised model description
 *   longscope --tokenize PATH [--bos]  stdin text -> token ids on one line
 *   longscope --detokenize PATH        stdin ids -> text
 *   longscope --batch JOB [--output DIR] [--backend cpu|cuda|auto]
 *   longscope --plugins                the plugins found and their parameters
 *   longscope [MODEL]                  the GTK application (MODEL, else demo:induction)
 *
 * Exit status: 0 done, 1 runtime failure, 2 invalid job or arguments,
 * 3 model or file could not be loaded, 130 interrupted.
 */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lsc-batch.h"
#ifdef LSC_HAVE_FIGURES
#include "lsc-figure.h"
#define FIGURE_RENDERER lsc_figure_save_spec
#else
#define FIGURE_RENDERER NULL
#endif
#include "lsc-json.h"
#include "lsc-model.h"
#include "lsc-plugin.h"
#include "lsc-session.h"
#include "lsc-tokenizer.h"
#ifdef LSC_HAVE_GUI_APP
#include <glib/gi18n.h>
#include "lsc-application.h"
#endif

enum {
  EXIT_DONE = 0,
  EXIT_RUNTIME = 1,
  EXIT_USAGE = 2,
  EXIT_LOAD = 3,
};

static char *opt_info;
static char *opt_tokenize;
static char *opt_detokenize;
static gboolean opt_bos;
static gboolean opt_tensors = TRUE;
static char *opt_batch;
static char *opt_output;
static char *opt_backend;
static gboolean opt_version;
static gboolean opt_plugins;

static const GOptionEntry entries[] = {
  { "info", 0, 0, G_OPTION_ARG_FILENAME, &opt_info,
    "Print the model's normalised configuration and its tensors", "PATH" },
  { "no-tensors", 0, G_OPTION_FLAG_REVERSE, G_OPTION_ARG_NONE, &opt_tensors,
    "With --info, leave out the tensor list", NULL },
  { "tokenize", 0, 0, G_OPTION_ARG_FILENAME, &opt_tokenize,
    "Read UTF-8 text on standard input and print its token ids", "PATH" },
  { "bos", 0, 0, G_OPTION_ARG_NONE, &opt_bos,
    "With --tokenize, prepend the BOS token", NULL },
  { "detokenize", 0, 0, G_OPTION_ARG_FILENAME, &opt_detokenize,
    "Read token ids on standard input and print their text", "PATH" },
  { "batch", 0, 0, G_OPTION_ARG_FILENAME, &opt_batch,
    "Run a JSON job file headless ('-' reads standard input)", "JOB" },
  { "output", 'o', 0, G_OPTION_ARG_FILENAME, &opt_output,
    "With --batch, the folder for results (default: beside the job)", "DIR" },
  { "backend", 0, 0, G_OPTION_ARG_STRING, &opt_backend,
    "With --batch, run on cpu, cuda or auto (the GPU when there is one), "
    "whatever the job says", "BACKEND" },
  { "plugins", 0, 0, G_OPTION_ARG_NONE, &opt_plugins,
    "List the plugins found and the parameters a job's \"plugins\" can set", NULL },
  { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version, "Print the version", NULL },
  { NULL }
};

static char *
read_stdin (gsize *len)
{
  GString *s = g_string_new (NULL);
  char buf[65536];
  size_t n;
  while ((n = fread (buf, 1, sizeof buf, stdin)) > 0)
    g_string_append_len (s, buf, n);
  *len = s->len;
  return g_string_free (s, FALSE);
}

static int
run_info (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = lsc_model_load (path, &error);
  if (model == NULL)
    {
      g_printerr ("longscope: %s\n", error->message);
      return EXIT_LOAD;
    }
  g_autoptr(GString) out = g_string_new (NULL);
  lsc_model_describe (model, out, opt_tensors);
  fputs (out->str, stdout);
  return EXIT_DONE;
}

static LscTokenizer *
load_tokenizer (const char *path)
{
  g_autoptr(GError) error = NULL;
  LscTokenizer *tok = lsc_tokenizer_load (path, &error);
  if (tok == NULL)
    g_printerr ("longscope: %s\n", error->message);
  return tok;
}

static int
run_tokenize (const char *path)
{
  g_autoptr(GError) error = NULL;
  gsize len;
  g_autoptr(LscTokenizer) tok = load_tokenizer (path);
  if (tok == NULL)
    return EXIT_LOAD;
  g_autofree char *text = read_stdin (&len);
  g_autoptr(GArray) ids = lsc_tokenizer_encode (tok, text, len, opt_bos, &error);
  if (ids == NULL)
    {
      g_printerr ("longscope: standard input: %s\n", error->message);
      return EXIT_USAGE;
    }
  g_autoptr(GString) out = g_string_new (NULL);
  for (guint i = 0; i < ids->len; i++)
    g_string_append_printf (out, i ? " %d" : "%d", g_array_index (ids, gint32, i));
  g_string_append_c (out, '\n');
  fputs (out->str, stdout);
  return EXIT_DONE;
}

static int
run_detokenize (const char *path)
{
  g_autoptr(GError) error = NULL;
  gsize len;
  g_autoptr(LscTokenizer) tok = load_tokenizer (path);
  if (tok == NULL)
    return EXIT_LOAD;
  g_autofree char *text = read_stdin (&len);
  g_auto(GStrv) words = g_strsplit_set (text, " \t\r\n,", -1);
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  int status = EXIT_DONE;

  for (guint i = 0; words[i] != NULL; i++)
    {
      char *end = NULL;
      if (words[i][0] == '\0')
        continue;
      errno = 0;
      gint64 v = g_ascii_strtoll (words[i], &end, 10);
      if (errno != 0 || *end != '\0' || v < G_MININT32 || v > G_MAXINT32)
        {
          g_printerr ("longscope: standard input: '%s' is not a token id\n", words[i]);
          return EXIT_USAGE;
        }
      gint32 id = (gint32) v;
      if (lsc_tokenizer_id_is_padding (tok, id))
        g_printerr ("longscope: token %d is beyond the tokenizer's %d pieces "
                    "(a padding row of the model's vocabulary): decoded as empty text\n",
                    id, lsc_tokenizer_get_n_vocab (tok));
      else if (id < 0)
        {
          g_printerr ("longscope: token %d is negative: decoded as empty text\n", id);
          status = EXIT_USAGE;
        }
      g_array_append_val (ids, id);
    }
  g_autofree char *out = lsc_tokenizer_decode (tok, (const gint32 *) ids->data, ids->len);
  fputs (out, stdout);
  return status;
}

static const char *const param_types[] = { "number", "integer", "boolean", "choice" };

/* What a job's "plugins" entries can say: each plugin's parameters, their
 * types, ranges and defaults. Problems loading a plugin go to stderr. */
static int
run_plugins (void)
{
  int n;
  const LscPluginInfo *const *list = lsc_plugin_list (&n);
  g_autoptr(GString) out = g_string_new (NULL);
  for (int i = 0; i < n; i++)
    {
      const LscPluginInfo *info = list[i];
      g_string_append_printf (out, "%s%s: %s\n  %s\n", i ? "\n" : "", info->id, info->name,
                              info->description ? info->description : "");
      for (int k = 0; k < info->n_params; k++)
        {
          const LscPluginParam *p = &info->params[k];
          g_autoptr(json_object) def = lsc_plugin_value_to_json (p, p->default_value);
          g_string_append_printf (out, "  %-14s %s", p->name, param_types[p->type]);
          if (p->type == LSC_PLUGIN_PARAM_NUMBER || p->type == LSC_PLUGIN_PARAM_INT)
            {
              g_autofree char *range = lsc_plugin_param_dup_range (p);
              g_string_append_printf (out, " in %s", range);
            }
          for (int c = 0; p->type == LSC_PLUGIN_PARAM_CHOICE && p->choices[c] != NULL; c++)
            g_string_append_printf (out, "%s\"%s\"", c ? " | " : " ", p->choices[c]);
          g_string_append_printf (out, ", default %s\n",
                                  json_object_to_json_string_ext (def, JSON_C_TO_STRING_PLAIN));
          if (p->description != NULL)
            g_string_append_printf (out, "  %-14s %s\n", "", p->description);
        }
    }
  if (n == 0)
    g_string_append (out, "no plugins found\n");
  fputs (out->str, stdout);
  for (const char *const *problem = lsc_plugin_get_load_problems (); *problem != NULL; problem++)
    g_printerr ("longscope: %s\n", *problem);
  return EXIT_DONE;
}

#ifdef LSC_HAVE_GUI_APP
/* The only place GTK is initialised (by the application's startup). */
static int
run_gui (const char *argv0, const char *model_path)
{
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  g_set_application_name ("Longscope");

  g_autoptr(LscApplication) app = lsc_application_new (model_path);
  char *app_argv[] = { (char *) argv0, NULL };
  return g_application_run (G_APPLICATION (app), 1, app_argv);
}
#endif

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;

  setlocale (LC_ALL, "");

  context = g_option_context_new ("[MODEL]");
  g_option_context_set_summary (context,
      "Longscope: look inside long-context language models.\n"
      "MODEL is a Hugging Face directory, a GGUF file or a llama2.c checkpoint.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("longscope: %s\n", error->message);
      return EXIT_USAGE;
    }

  LscBackend backend = LSC_BACKEND_AUTO;
  if (opt_backend != NULL && !lsc_backend_from_string (opt_backend, &backend))
    {
      g_printerr ("longscope: --backend: expected \"cpu\", \"cuda\" or \"auto\", found \"%s\"\n",
                  opt_backend);
      return EXIT_USAGE;
    }

  if (opt_version)
    {
      g_print ("longscope %s (%s)\n", PACKAGE_VERSION, LSC_GIT_COMMIT);
      return EXIT_DONE;
    }
  if (opt_plugins)
    return run_plugins ();
  if (opt_info != NULL)
    return run_info (opt_info);
  if (opt_tokenize != NULL)
    return run_tokenize (opt_tokenize);
  if (opt_detokenize != NULL)
    return run_detokenize (opt_detokenize);
  if (opt_batch != NULL)
    return lsc_batch_run_file (opt_batch, opt_output, opt_backend != NULL ? &backend : NULL,
                               FIGURE_RENDERER, NULL);
#ifdef LSC_HAVE_GUI_APP
  if (argc <= 2)
    return run_gui (argv[0], argc == 2 ? argv[1] : NULL);
#else
  if (argc == 2)
    return run_info (argv[1]);
#endif

  g_autofree char *help = g_option_context_get_help (context, TRUE, NULL);
#ifdef LSC_HAVE_GUI_APP
  g_printerr ("%s", help);
#else
  g_printerr ("%s\nThe graphical application is not built: use --batch or --info.\n", help);
#endif
  return EXIT_USAGE;
}
