/* SPDX-License-Identifier: MIT
 *
 * bench-capture: what attention capture costs.
 *
 *   bench-capture [--model PATH | --shape NAME] [--tokens N] [--layers N] [--threads N]
 *
 * On a fresh session it times a prefill of N tokens without capture and with
 * capture of every layer and head, and reports
 *   - the capture overhead (target: at most 30 %),
 *   - the store's bytes against the target: Q in float32 plus the normaliser,
 *     i.e. (H / (2 Hkv)) x the KV cache + 4 L H N bytes,
 *   - the time of one exact 512 x 512 tile at the end of the context
 *     (target: under 50 ms at 16k tokens),
 *   - the time of one head's whole pyramid and statistics (one streaming pass).
 * Registered as meson benchmarks, never as tests.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "lsc-session.h"

static double
now_s (void)
{
  return g_get_monotonic_time () / 1e6;
}

static char *opt_model;
static char *opt_shape;
static int opt_tokens = 512;
static int opt_layers;
static int opt_threads;

static const GOptionEntry entries[] = {
  { "model", 0, 0, G_OPTION_ARG_FILENAME, &opt_model, "A model file or directory", "PATH" },
  { "shape", 0, 0, G_OPTION_ARG_STRING, &opt_shape, "Synthetic model: llama-1b, stories260K-shape", "NAME" },
  { "tokens", 0, 0, G_OPTION_ARG_INT, &opt_tokens, "Prompt tokens (512)", "N" },
  { "layers", 0, 0, G_OPTION_ARG_INT, &opt_layers, "Keep the first N layers of the shape", "N" },
  { "threads", 0, 0, G_OPTION_ARG_INT, &opt_threads, "Threads (0 = all cores)", "N" },
  { NULL }
};

static double
prefill (LscModel *model, const gint32 *tokens, int n, gboolean capture, LscSession **keep)
{
  g_autoptr(GError) error = NULL;
  LscSessionParams p;
  lsc_session_params_init (&p);
  p.n_ctx = n;
  p.n_threads = opt_threads;
  p.capture.enabled = capture;
  p.capture.memory_budget = (guint64) 20 << 30;
  LscSession *s = lsc_session_new (model, &p, &error);
  if (s == NULL)
    {
      g_printerr ("bench-capture: %s\n", error->message);
      exit (1);
    }
  double t = now_s ();
  if (!lsc_session_eval (s, tokens, n, NULL, FALSE, NULL, NULL, &error))
    {
      g_printerr ("bench-capture: %s\n", error->message);
      exit (1);
    }
  t = now_s () - t;
  if (keep != NULL)
    *keep = s;
  else
    lsc_session_free (s);
  return t;
}

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- what attention capture costs");
  g_autoptr(GError) error = NULL;
  g_autoptr(LscModel) model = NULL;
  g_autofree char *what = NULL;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("bench-capture: %s\n", error->message);
      return 2;
    }
  if (opt_model != NULL)
    {
      model = lsc_model_load (opt_model, &error);
      what = g_strdup (opt_model);
    }
  else
    {
      LscModelConfig c;
      if (!lsc_model_config_init_shape (&c, opt_shape != NULL ? opt_shape : "llama-1b"))
        {
          g_printerr ("bench-capture: unknown shape %s\n", opt_shape);
          return 2;
        }
      if (opt_layers > 0 && opt_layers < c.n_layers)
        c.n_layers = opt_layers;
      model = lsc_model_new_synthetic (&c, LSC_DTYPE_F32, 1, &error);
      what = g_strdup_printf ("%s (synthetic F32, %d layers)", opt_shape ? opt_shape : "llama-1b",
                              c.n_layers);
    }
  if (model == NULL)
    {
      g_printerr ("bench-capture: %s\n", error->message);
      return 3;
    }
  const LscModelConfig *c = lsc_model_get_config (model);
  int n = opt_tokens;
  g_autofree gint32 *tokens = g_new (gint32, n);
  for (int i = 0; i < n; i++)
    tokens[i] = (int) ((i * 2654435761u + 1) % (guint) c->vocab_size);

  double plain = prefill (model, tokens, n, FALSE, NULL);
  LscSession *s = NULL;
  double captured = prefill (model, tokens, n, TRUE, &s);
  const LscAttentionStore *a = lsc_session_get_attention (s);

  double kv_bytes = 2.0 * c->n_layers * n * c->n_kv_heads * c->head_dim * 4;
  double target = (double) c->n_heads / (2.0 * c->n_kv_heads) * kv_bytes
                  + 4.0 * c->n_layers * c->n_heads * n;
  double store = (double) lsc_attention_get_bytes (a);

  int t = MIN (512, n);
  g_autofree float *tile = g_new (float, (gsize) t * t);
  double tt = now_s ();
  if (!lsc_attention_tile (a, c->n_layers - 1, 0, n - t, n, n - t, n, 0, tile, &error))
    {
      g_printerr ("bench-capture: %s\n", error->message);
      return 1;
    }
  tt = now_s () - tt;
  double tp = now_s ();
  LscAttentionPyramid *pyr = NULL;
  LscHeadStats st;
  if (!lsc_attention_analyze (a, 0, 0, 4, &pyr, &st, &error))
    {
      g_printerr ("bench-capture: %s\n", error->message);
      return 1;
    }
  tp = now_s () - tp;

  printf ("bench-capture: %s, %d tokens, %d layers x %d heads (%d KV heads)\n", what, n,
          c->n_layers, c->n_heads, c->n_kv_heads);
  printf ("| measure                         | value        | target            |\n");
  printf ("|---------------------------------|--------------|-------------------|\n");
  printf ("| prefill without capture         | %9.2f s  |                   |\n", plain);
  printf ("| prefill with capture (all)      | %9.2f s  |                   |\n", captured);
  printf ("| capture overhead                | %9.1f %%  | <= 30 %%           |\n",
          100.0 * (captured - plain) / plain);
  printf ("| store (queries + normalisers)   | %8.1f MiB | %8.1f MiB      |\n", store / 1048576.0,
          target / 1048576.0);
  printf ("| KV cache (for reference)        | %8.1f MiB |                   |\n", kv_bytes / 1048576.0);
  printf ("| one %dx%d tile                 | %9.1f ms | < 50 ms at 16k    |\n", t, t, tt * 1e3);
  printf ("| one head's pyramid + statistics | %9.1f ms | (finest block %d)  |\n", tp * 1e3,
          pyr->levels[0].block);
  lsc_attention_pyramid_free (pyr);
  lsc_session_free (s);
  return 0;
}
