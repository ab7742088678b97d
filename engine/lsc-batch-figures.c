/* SPDX-License-Identifier: MIT
 *
 * The "figures" of a batch job. Each entry is an object:
 *
 *   common: "kind", "file" (default <kind>-...png; the extension picks PNG,
 *           SVG or PDF), "title", "colormap" (viridis | magma | rdbu_r),
 *           "scale" (linear | log | quantile), "dpi" (150)
 *   {"kind": "attention", "layer": L, "head": H, "rows": [q0, q1], "keys": [k0, k1]}
 *           an exact tile, token labels on the axes when they fit
 *   {"kind": "pyramid", "layer": L, "head": H, "level": k, "reduce": "max" | "mean"}
 *           a pooled level of the whole map (default: the first level with at
 *           most 512 x 512 blocks)
 *   {"kind": "stats", "stat": "entropy" | "sink_mass" | "max_prob" | "mean_distance"}
 *           one value per head, layers x heads
 *   {"kind": "loss"}
 *           teacher-forced negative log-likelihood against position (needs "score")
 *   {"kind": "retrieval_scores"}          retrieval scores, layers x heads
 *   {"kind": "retrieval_ranking", "top": N}   the N best heads as bars (20)
 *   {"kind": "ablation"}                  needle recall against the number of masked heads,
 *                                         retrieval heads vs random heads
 *           (the last three in a job with a "retrieval" section)
 *   {"kind": "ssm_decay"}                 each recorded channel's memory over the "ssm"
 *                                         window (log10 tA_prod), layers x channels
 *   {"kind": "ssm_receptive_field", "layer": L}   channels x distance from the last token
 *   {"kind": "ssm_dt", "layer": L}        Δ, channels x tokens, filtered tokens masked
 *           (the last three in a job with an "ssm" section)
 *   {"kind": "kv_timeline", "layer": L, "head": H}   which positions one layer's KV head
 *                                         held after each step (fraction cached)
 *   {"kind": "kv_layers", "head": H}      cached positions per layer at the end; no
 *                                         head: the mean over KV heads
 *   {"kind": "kv_kl"}                     KL from the full cache per new token, one line
 *                                         per compared policy
 *           (the last three in a job with a "kv" section; kv_kl with "compare";
 *           kv_timeline and kv_layers take "run": I for the I-th policy of a list)
 *
 * The engine prepares the numbers and labels; the drawing is the caller's
 * LscFigureFunc (ui/figures in the app), so the engine needs no Cairo.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-batch-private.h"
#include "lsc-json.h"

static void
figure_clear (LscJobFigure *f)
{
  g_free (f->file);
  g_free (f->title);
  g_free (f->colormap);
  g_free (f->scale);
  g_free (f->stat);
}

void
_lsc_job_figures_free (GArray *figures)
{
  if (figures == NULL)
    return;
  for (guint i = 0; i < figures->len; i++)
    figure_clear (&g_array_index (figures, LscJobFigure, i));
  g_array_unref (figures);
}

static gboolean
bad (GError **error, const char *job, guint i, const char *key, const char *expected,
     json_object *found)
{
  g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
               "%s: $.figures[%u]%s%s: expected %s, found %s", job, i, key[0] ? "." : "", key,
               expected, found == NULL ? "nothing" : json_object_to_json_string (found));
  return FALSE;
}

static gboolean
get_int (json_object *o, const char *key, int *out)
{
  json_object *v = json_object_object_get (o, key);
  if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0
      || json_object_get_int64 (v) > G_MAXINT)
    return FALSE;
  *out = json_object_get_int (v);
  return TRUE;
}

static gboolean
get_range (json_object *o, const char *key, int *a, int *b)
{
  json_object *v = json_object_object_get (o, key);
  if (!json_object_is_type (v, json_type_array) || json_object_array_length (v) != 2)
    return FALSE;
  json_object *x = json_object_array_get_idx (v, 0), *y = json_object_array_get_idx (v, 1);
  if (!json_object_is_type (x, json_type_int) || !json_object_is_type (y, json_type_int))
    return FALSE;
  *a = json_object_get_int (x);
  *b = json_object_get_int (y);
  return *a >= 0 && *a < *b;
}

static gboolean
get_choice (json_object *o, const char *key, const char *const *choices, char **out)
{
  json_object *v = json_object_object_get (o, key);
  if (v == NULL)
    return TRUE;
  if (!json_object_is_type (v, json_type_string)
      || !g_strv_contains (choices, json_object_get_string (v)))
    return FALSE;
  g_free (*out);
  *out = g_strdup (json_object_get_string (v));
  return TRUE;
}

static gboolean
parse_one (LscJobFigure *f, const char *job, guint i, json_object *o, GError **error)
{
  static const char *const kinds[] = { "attention", "pyramid", "stats", "loss", "retrieval_scores",
                                       "retrieval_ranking", "ablation", "ssm_decay",
                                       "ssm_receptive_field", "ssm_dt", "kv_timeline",
                                       "kv_layers", "kv_kl", NULL };
  static const char *const colormaps[] = { "viridis", "magma", "rdbu_r", NULL };
  static const char *const scales[] = { "linear", "log", "quantile", NULL };
  static const char *const stats[] = { "entropy", "sink_mass", "max_prob", "mean_distance", NULL };
  static const char *const reduces[] = { "max", "mean", NULL };
  static const char *const known[] = { "kind", "file", "title", "colormap", "scale", "dpi",
                                       "layer", "head", "rows", "keys", "level", "reduce", "stat",
                                       "top", "run", NULL };
  json_object *v;
  g_autofree char *kind = NULL, *reduce = NULL;

  memset (f, 0, sizeof *f);
  f->dpi = 150;
  f->level = -1;
  f->top = 20;
  f->colormap = g_strdup ("viridis");
  f->scale = g_strdup ("linear");
  if (!json_object_is_type (o, json_type_object))
    return bad (error, job, i, "", "an object", o);
  g_autofree char *path = g_strdup_printf ("$.figures[%u]", i);
  if (!lsc_json_check_keys (o, known, job, path, error))
    return FALSE;
  if (!get_choice (o, "kind", kinds, &kind) || kind == NULL)
    return bad (error, job, i, "kind", "\"attention\", \"pyramid\", \"stats\", \"loss\", "
                "\"retrieval_scores\", \"retrieval_ranking\", \"ablation\", \"ssm_decay\", "
                "\"ssm_receptive_field\", \"ssm_dt\", \"kv_timeline\", \"kv_layers\" or "
                "\"kv_kl\"",
                json_object_object_get (o, "kind"));
  if (!get_choice (o, "colormap", colormaps, &f->colormap))
    return bad (error, job, i, "colormap", "\"viridis\", \"magma\" or \"rdbu_r\"",
                json_object_object_get (o, "colormap"));
  if (!get_choice (o, "scale", scales, &f->scale))
    return bad (error, job, i, "scale", "\"linear\", \"log\" or \"quantile\"",
                json_object_object_get (o, "scale"));
  if ((v = json_object_object_get (o, "dpi")) != NULL)
    {
      if (!(json_object_is_type (v, json_type_int) || json_object_is_type (v, json_type_double))
          || json_object_get_double (v) < 10 || json_object_get_double (v) > 2400)
        return bad (error, job, i, "dpi", "a number in [10, 2400]", v);
      f->dpi = json_object_get_double (v);
    }
  if ((v = json_object_object_get (o, "title")) != NULL)
    {
      if (!json_object_is_type (v, json_type_string))
        return bad (error, job, i, "title", "a string", v);
      f->title = g_strdup (json_object_get_string (v));
    }

  if (strcmp (kind, "attention") == 0 || strcmp (kind, "pyramid") == 0)
    {
      if (!get_int (o, "layer", &f->layer))
        return bad (error, job, i, "layer", "a layer index", json_object_object_get (o, "layer"));
      if (!get_int (o, "head", &f->head))
        return bad (error, job, i, "head", "a head index", json_object_object_get (o, "head"));
    }
  if (strcmp (kind, "attention") == 0)
    {
      f->kind = LSC_JOB_FIGURE_ATTENTION;
      if (!get_range (o, "rows", &f->q0, &f->q1))
        return bad (error, job, i, "rows", "[q0, q1] with 0 <= q0 < q1",
                    json_object_object_get (o, "rows"));
      if (!get_range (o, "keys", &f->k0, &f->k1))
        return bad (error, job, i, "keys", "[k0, k1] with 0 <= k0 < k1",
                    json_object_object_get (o, "keys"));
      f->file = g_strdup_printf ("attention-L%d-H%d-%d-%d.png", f->layer, f->head, f->q0, f->k0);
    }
  else if (strcmp (kind, "pyramid") == 0)
    {
      f->kind = LSC_JOB_FIGURE_PYRAMID;
      if (json_object_object_get (o, "level") != NULL && !get_int (o, "level", &f->level))
        return bad (error, job, i, "level", "a level index >= 0", json_object_object_get (o, "level"));
      if (!get_choice (o, "reduce", reduces, &reduce))
        return bad (error, job, i, "reduce", "\"max\" or \"mean\"", json_object_object_get (o, "reduce"));
      f->reduce_mean = reduce != NULL && strcmp (reduce, "mean") == 0;
      f->file = g_strdup_printf ("pyramid-L%d-H%d.png", f->layer, f->head);
    }
  else if (strcmp (kind, "stats") == 0)
    {
      f->kind = LSC_JOB_FIGURE_STATS;
      if (!get_choice (o, "stat", stats, &f->stat) || f->stat == NULL)
        return bad (error, job, i, "stat", "\"entropy\", \"sink_mass\", \"max_prob\" or "
                    "\"mean_distance\"", json_object_object_get (o, "stat"));
      f->file = g_strdup_printf ("stats-%s.png", f->stat);
    }
  else if (strcmp (kind, "loss") == 0)
    {
      f->kind = LSC_JOB_FIGURE_LOSS;
      f->file = g_strdup ("loss.png");
    }
  else if (strcmp (kind, "retrieval_scores") == 0)
    {
      f->kind = LSC_JOB_FIGURE_RETRIEVAL_SCORES;
      f->file = g_strdup ("retrieval-scores.png");
    }
  else if (strcmp (kind, "retrieval_ranking") == 0)
    {
      f->kind = LSC_JOB_FIGURE_RETRIEVAL_RANKING;
      if (json_object_object_get (o, "top") != NULL && (!get_int (o, "top", &f->top) || f->top < 1))
        return bad (error, job, i, "top", "a number of heads >= 1", json_object_object_get (o, "top"));
      f->file = g_strdup ("retrieval-ranking.png");
    }
  else if (strcmp (kind, "ablation") == 0)
    {
      f->kind = LSC_JOB_FIGURE_ABLATION;
      f->file = g_strdup ("ablation.png");
    }
  else if (strcmp (kind, "ssm_decay") == 0)
    {
      f->kind = LSC_JOB_FIGURE_SSM_DECAY;
      f->file = g_strdup ("ssm-decay.png");
    }
  else if (strcmp (kind, "kv_timeline") == 0)
    {
      f->kind = LSC_JOB_FIGURE_KV_TIMELINE;
      if (!get_int (o, "layer", &f->layer))
        return bad (error, job, i, "layer", "a layer index", json_object_object_get (o, "layer"));
      if (!get_int (o, "head", &f->head))
        return bad (error, job, i, "head", "a KV head index", json_object_object_get (o, "head"));
      f->file = g_strdup_printf ("kv-timeline-L%d-H%d.png", f->layer, f->head);
    }
  else if (strcmp (kind, "kv_layers") == 0)
    {
      f->kind = LSC_JOB_FIGURE_KV_LAYERS;
      f->head = -1;
      if (json_object_object_get (o, "head") != NULL && !get_int (o, "head", &f->head))
        return bad (error, job, i, "head", "a KV head index", json_object_object_get (o, "head"));
      f->file = f->head < 0 ? g_strdup ("kv-layers.png")
                            : g_strdup_printf ("kv-layers-H%d.png", f->head);
    }
  else if (strcmp (kind, "kv_kl") == 0)
    {
      f->kind = LSC_JOB_FIGURE_KV_KL;
      f->file = g_strdup ("kv-kl.png");
    }
  else
    {
      gboolean rf = strcmp (kind, "ssm_receptive_field") == 0;
      f->kind = rf ? LSC_JOB_FIGURE_SSM_RECEPTIVE_FIELD : LSC_JOB_FIGURE_SSM_DT;
      if (!get_int (o, "layer", &f->layer))
        return bad (error, job, i, "layer", "a layer index", json_object_object_get (o, "layer"));
      f->file = g_strdup_printf ("%s-L%d.png", rf ? "ssm-receptive-field" : "ssm-dt", f->layer);
    }
  if ((f->kind == LSC_JOB_FIGURE_KV_TIMELINE || f->kind == LSC_JOB_FIGURE_KV_LAYERS)
      && json_object_object_get (o, "run") != NULL && (!get_int (o, "run", &f->run) || f->run < 0))
    return bad (error, job, i, "run", "a run index of the \"kv\" list",
                json_object_object_get (o, "run"));

  if ((v = json_object_object_get (o, "file")) != NULL)
    {
      const char *name = json_object_is_type (v, json_type_string) ? json_object_get_string (v) : "";
      g_autofree char *base = g_path_get_basename (name);
      if (name[0] == '\0' || strcmp (base, name) != 0
          || !(g_str_has_suffix (name, ".png") || g_str_has_suffix (name, ".svg")
               || g_str_has_suffix (name, ".pdf")))
        return bad (error, job, i, "file", "a file name ending in .png, .svg or .pdf", v);
      g_free (f->file);
      f->file = g_strdup (name);
    }
  return TRUE;
}

GArray *
_lsc_job_figures_parse (const char *job, json_object *array, LscJobFigureNeeds *needs,
                        GError **error)
{
  GArray *figures = g_array_new (FALSE, TRUE, sizeof (LscJobFigure));

  memset (needs, 0, sizeof *needs);
  if (!json_object_is_type (array, json_type_array))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: $.figures: expected an array of figures, found %s", job,
                   json_object_to_json_string (array));
      g_array_unref (figures);
      return NULL;
    }
  for (guint i = 0; i < json_object_array_length (array); i++)
    {
      LscJobFigure f;
      if (!parse_one (&f, job, i, json_object_array_get_idx (array, i), error))
        {
          figure_clear (&f);
          _lsc_job_figures_free (figures);
          return NULL;
        }
      gboolean retrieval = f.kind == LSC_JOB_FIGURE_RETRIEVAL_SCORES
                           || f.kind == LSC_JOB_FIGURE_RETRIEVAL_RANKING
                           || f.kind == LSC_JOB_FIGURE_ABLATION;
      needs->capture |= f.kind <= LSC_JOB_FIGURE_STATS;
      needs->ssm |= f.kind >= LSC_JOB_FIGURE_SSM_DECAY && f.kind <= LSC_JOB_FIGURE_SSM_DT;
      needs->kv |= f.kind == LSC_JOB_FIGURE_KV_TIMELINE || f.kind == LSC_JOB_FIGURE_KV_LAYERS;
      needs->kv_compare |= f.kind == LSC_JOB_FIGURE_KV_KL;
      needs->score |= f.kind == LSC_JOB_FIGURE_LOSS;
      needs->retrieval |= retrieval;
      needs->other |= !retrieval;
      g_array_append_val (figures, f);
    }
  return figures;
}

/* Token labels for positions [p0, p1): decoded pieces, NULL-terminated. */
static char **
token_labels (const LscJobFigureContext *ctx, int p0, int p1)
{
  char **labels = g_new0 (char *, p1 - p0 + 1);
  for (int p = p0; p < p1; p++)
    labels[p - p0] = p < ctx->n_tokens && ctx->tokenizer != NULL
                       ? lsc_tokenizer_decode (ctx->tokenizer, &ctx->tokens[p], 1)
                       : g_strdup ("");
  return labels;
}

/* The retrieval figures read results.json's "retrieval" and "ablation". */
static gboolean
retrieval_figure (const LscJobFigure *f, const LscJobFigureContext *ctx, LscFigureSpec *spec,
                  char **title, float **cells, double **x, double **y, char ***labels,
                  GError **error)
{
  json_object *ret = json_object_object_get (ctx->results, "retrieval");
  json_object *scores = json_object_object_get (ret, "scores");
  json_object *ranking = json_object_object_get (ret, "ranking");

  if (f->kind != LSC_JOB_FIGURE_ABLATION && !json_object_is_type (ranking, json_type_array))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: no retrieval scores to draw (no sample passed the recall filter)", f->file);
      return FALSE;
    }
  if (f->kind == LSC_JOB_FIGURE_RETRIEVAL_SCORES)
    {
      /* the figure the application's Retrieval Heads view exports */
      int L = ctx->config->n_layers, H = ctx->config->n_heads;
      g_autofree double *values = g_new (double, (gsize) L * H);
      for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
          {
            json_object *v = json_object_array_get_idx (json_object_array_get_idx (scores, l), h);
            values[l * H + h] = v != NULL ? json_object_get_double (v) : NAN;
          }
      *cells = g_new (float, (gsize) L * H);
      lsc_figure_spec_retrieval_scores (spec, values, L, H, *cells);
      *title = g_strdup (spec->title);
      return TRUE;
    }
  if (f->kind == LSC_JOB_FIGURE_RETRIEVAL_RANKING)
    {
      int n = MIN ((int) json_object_array_length (ranking), f->top);
      *labels = g_new0 (char *, n + 1);
      *y = g_new (double, MAX (n, 1));
      for (int i = 0; i < n; i++)
        {
          json_object *e = json_object_array_get_idx (ranking, i);
          (*labels)[i] = g_strdup_printf ("layer %d head %d",
                                          json_object_get_int (json_object_object_get (e, "layer")),
                                          json_object_get_int (json_object_object_get (e, "head")));
          (*y)[i] = json_object_get_double (json_object_object_get (e, "score"));
        }
      *title = g_strdup_printf ("Top %d retrieval heads", n);
      spec->kind = LSC_FIGURE_SPEC_BARS;
      spec->labels = (const char *const *) *labels;
      spec->y = *y;
      spec->n = n;
      spec->x_label = "Retrieval score";
      return TRUE;
    }

  /* ablation: recall at K = 0 (the baseline) and at each K, both kinds of heads masked */
  json_object *abl = json_object_object_get (ctx->results, "ablation");
  json_object *ks = json_object_object_get (abl, "k");
  if (!json_object_is_type (ks, json_type_array) || json_object_array_length (ks) == 0)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: no ablation results to draw (give \"ablation\": [K, ...] and make sure "
                   "some sample passes the recall filter)", f->file);
      return FALSE;
    }
  int n = (int) json_object_array_length (ks) + 1;
  static const char *const names[] = { "retrieval heads masked", "random heads masked" };
  *x = g_new (double, n);
  *y = g_new (double, 2 * n);
  (*x)[0] = 0;
  (*y)[0] = (*y)[n] = json_object_get_double (json_object_object_get (abl, "baseline_recall"));
  for (int i = 1; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (ks, i - 1);
      (*x)[i] = json_object_get_int (json_object_object_get (e, "k"));
      (*y)[i] = json_object_get_double (json_object_object_get (e, "retrieval_recall"));
      (*y)[n + i] = json_object_get_double (json_object_object_get (e, "random_recall"));
    }
  *title = g_strdup ("Needle recall with heads masked");
  spec->kind = LSC_FIGURE_SPEC_LINE;
  spec->x = *x;
  spec->y = *y;
  spec->n = n;
  spec->n_series = 2;
  spec->series_names = names;
  spec->x_label = "Heads masked";
  spec->y_label = "Mean ROUGE-1 recall";
  return TRUE;
}

/* The SSM figures read the session's Δ store and results.json's "ssm". */
static gboolean
ssm_figure (const LscJobFigure *f, const LscJobFigureContext *ctx, LscFigureSpec *spec,
            char **title, float **cells, GError **error)
{
  const LscSsmStore *st = lsc_session_get_ssm (ctx->session);
  int C = lsc_ssm_store_get_n_channels (st), n_rows = lsc_ssm_store_get_n_rows (st);
  int first = lsc_ssm_store_get_first_layer (st), last = lsc_ssm_store_get_last_layer (st);
  *title = g_malloc (64);
  if (f->kind == LSC_JOB_FIGURE_SSM_DECAY)
    {
      /* the layers the section recorded, over its window */
      json_object *ssm = json_object_object_get (ctx->results, "ssm");
      int window = json_object_get_int (json_object_object_get (ssm, "window"));
      int L = lsc_ssm_store_get_n_layers (st);
      g_autofree double *log_decay = g_new (double, (gsize) L * C);
      for (int l = 0; l < L; l++)
        if (l < first || l > last)
          for (int c = 0; c < C; c++)
            log_decay[(gsize) l * C + c] = NAN;
        else
          lsc_ssm_store_log_decay (st, l, 0, window, log_decay + (gsize) l * C);
      *cells = g_new (float, (gsize) L * C);
      lsc_figure_spec_ssm_decay (spec, log_decay, L, C, window, *cells, *title);
      return TRUE;
    }
  if (f->layer < first || f->layer > last || n_rows == 0)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: layer %d: the \"ssm\" section recorded layers %d .. %d", f->file,
                   f->layer, first, last);
      return FALSE;
    }
  const float *dt = lsc_ssm_store_get_dt (st, f->layer);
  *cells = g_new (float, (gsize) C * n_rows);
  if (f->kind == LSC_JOB_FIGURE_SSM_RECEPTIVE_FIELD)
    lsc_figure_spec_ssm_receptive_field (spec, dt, n_rows, C, lsc_ssm_store_get_a (st, f->layer),
                                         lsc_ssm_store_get_n_states (st), f->layer, *cells,
                                         *title);
  else
    lsc_figure_spec_ssm_dt (spec, dt, lsc_ssm_store_get_kept (st, f->layer), n_rows, C, f->layer,
                            *cells, *title);
  return TRUE;
}

/* The KV figures read each run's log and its comparison. */
static gboolean
kv_figure (const LscJobFigure *f, const LscJobFigureContext *ctx, LscFigureSpec *spec,
           char **title, float **cells, double **x, double **y, char ***names, GError **error)
{
  *title = g_malloc (64);
  if (f->kind == LSC_JOB_FIGURE_KV_KL)
    {
      /* one line per compared run, NaN past a run's last step */
      int n = 0, n_series = 0;
      for (int r = 0; r < ctx->kv_n_runs; r++)
        if (ctx->kv_kl[r] != NULL)
          {
            n = MAX (n, ctx->kv_n_compared[r]);
            n_series++;
          }
      *x = g_new (double, MAX (n, 1));
      *y = g_new (double, (gsize) MAX (n_series, 1) * MAX (n, 1));
      *names = g_new0 (char *, n_series + 1);
      for (int i = 0; i < n; i++)
        (*x)[i] = i;
      for (int r = 0, k = 0; r < ctx->kv_n_runs; r++)
        {
          if (ctx->kv_kl[r] == NULL)
            continue;
          for (int i = 0; i < n; i++)
            (*y)[(gsize) k * n + i] = i < ctx->kv_n_compared[r] ? ctx->kv_kl[r][i] : NAN;
          const LscKvLog *log = lsc_session_get_kv (ctx->kv_sessions[r]);
          (*names)[k++] = g_strdup (lsc_kv_policy_name (lsc_kv_log_get_policy (log)->kind));
        }
      const LscKvLog *first = lsc_session_get_kv (ctx->kv_sessions[0]);
      lsc_figure_spec_kv_kl (spec, *x, *y, n, lsc_kv_log_get_policy (first)->kind, *title);
      if (n_series > 1)
        {
          g_snprintf (*title, 64, "KV policies against the full cache");
          spec->n_series = n_series;
          spec->series_names = (const char *const *) *names;
        }
      return TRUE;
    }
  if (f->run >= ctx->kv_n_runs)
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: run %d: the \"kv\" section ran %d", f->file, f->run, ctx->kv_n_runs);
      return FALSE;
    }
  const LscKvLog *log = lsc_session_get_kv (ctx->kv_sessions[f->run]);
  int L = lsc_kv_log_get_n_layers (log), H = lsc_kv_log_get_n_heads (log), steps, cols;
  lsc_figure_spec_kv_size (log, &steps, &cols, NULL);
  if ((f->kind == LSC_JOB_FIGURE_KV_TIMELINE && (f->layer < 0 || f->layer >= L))
      || f->head >= H || (f->kind == LSC_JOB_FIGURE_KV_TIMELINE && f->head < 0))
    {
      g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                   "%s: layer %d, head %d: the model has layers 0 .. %d and KV heads 0 .. %d",
                   f->file, f->layer, f->head, L - 1, H - 1);
      return FALSE;
    }
  if (f->kind == LSC_JOB_FIGURE_KV_TIMELINE)
    {
      *cells = g_new (float, (gsize) MAX (steps, 1) * cols);
      lsc_figure_spec_kv_timeline (spec, log, f->layer, f->head, *cells, *title);
    }
  else
    {
      *cells = g_new (float, (gsize) L * MAX (cols, 1));
      lsc_figure_spec_kv_layers (spec, log, f->head, *cells, *title);
    }
  return TRUE;
}

static gboolean
render_one (const LscJobFigure *f, const LscJobFigureContext *ctx, const char *path,
            LscFigureFunc render, gpointer data, GError **error)
{
  const LscAttentionStore *a = ctx->session != NULL ? lsc_session_get_attention (ctx->session) : NULL;
  LscFigureSpec spec = { 0 };
  g_autofree char *title = NULL;
  g_autofree float *cells = NULL;
  g_autofree double *x = NULL, *y = NULL;
  g_auto(GStrv) series_names = NULL;
  g_auto(GStrv) row_labels = NULL, col_labels = NULL;
  g_autoptr(LscAttentionPyramid) pyr = NULL;

  spec.path = path;
  spec.dpi = f->dpi;
  spec.colormap = f->colormap;
  spec.scale = f->scale;
  switch (f->kind)
    {
    case LSC_JOB_FIGURE_ATTENTION:
      {
        gsize n = (gsize) (f->q1 - f->q0) * (f->k1 - f->k0);
        if (n > ((gsize) 1 << 24))
          {
            g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                         "%s: a %d x %d tile is too large for a figure (use a pyramid)", f->file,
                         f->q1 - f->q0, f->k1 - f->k0);
            return FALSE;
          }
        cells = g_new (float, n);
        if (!lsc_attention_tile (a, f->layer, f->head, f->q0, f->q1, f->k0, f->k1, NAN, cells, error))
          return FALSE;
        row_labels = token_labels (ctx, f->q0, f->q1);
        col_labels = token_labels (ctx, f->k0, f->k1);
        title = g_strdup_printf ("Layer %d, head %d", f->layer, f->head);
        spec.kind = LSC_FIGURE_SPEC_HEATMAP;
        spec.data = cells;
        spec.rows = f->q1 - f->q0;
        spec.cols = f->k1 - f->k0;
        spec.row_offset = f->q0;
        spec.col_offset = f->k0;
        spec.row_labels = (const char *const *) row_labels;
        spec.col_labels = (const char *const *) col_labels;
        spec.x_label = "Key position";
        spec.y_label = "Query position";
        spec.value_label = "Attention probability";
        break;
      }
    case LSC_JOB_FIGURE_PYRAMID:
      {
        if (!lsc_attention_analyze (a, f->layer, f->head, ctx->sink_tokens, &pyr, NULL, error))
          return FALSE;
        int level = f->level;
        if (level < 0)
          for (level = 0; level < pyr->n_levels - 1; level++)
            if (pyr->levels[level].rows <= 512 && pyr->levels[level].cols <= 512)
              break;
        if (level >= pyr->n_levels)
          {
            g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                         "%s: level %d does not exist (the pyramid has %d)", f->file, level,
                         pyr->n_levels);
            return FALSE;
          }
        const LscPyramidLevel *lv = &pyr->levels[level];
        title = g_strdup_printf ("Layer %d, head %d: block %s, %d x %d tokens per cell", f->layer,
                                 f->head, f->reduce_mean ? "mean" : "max", lv->block, lv->block);
        spec.kind = LSC_FIGURE_SPEC_HEATMAP;
        spec.data = f->reduce_mean ? lv->mean : lv->max;
        spec.rows = lv->rows;
        spec.cols = lv->cols;
        spec.x_label = lv->block > 1 ? "Key block" : "Key position";
        spec.y_label = lv->block > 1 ? "Query block" : "Query position";
        spec.value_label = f->reduce_mean ? "Mean probability" : "Max probability";
        break;
      }
    case LSC_JOB_FIGURE_STATS:
      {
        static const char *const names[] = { "entropy", "sink_mass", "max_prob", "mean_distance" };
        int which = 0;
        while (strcmp (names[which], f->stat) != 0)
          which++;
        g_assert (ctx->capture != NULL && ctx->capture->stat_values[which] != NULL);
        spec.kind = LSC_FIGURE_SPEC_HEATMAP;
        spec.data = ctx->capture->stat_values[which];
        spec.rows = ctx->config->n_layers;
        spec.cols = ctx->config->n_heads;
        title = g_strdup_printf ("Per-head %s", f->stat);
        spec.x_label = "Head";
        spec.y_label = "Layer";
        spec.value_label = f->stat;
        break;
      }
    case LSC_JOB_FIGURE_LOSS:
      x = g_new (double, MAX (ctx->n_score, 1));
      y = g_new (double, MAX (ctx->n_score, 1));
      for (int i = 0; i < ctx->n_score; i++)
        {
          x[i] = i + 1;
          y[i] = -ctx->score[i];
        }
      title = g_strdup ("Loss against position");
      spec.kind = LSC_FIGURE_SPEC_LINE;
      spec.x = x;
      spec.y = y;
      spec.n = ctx->n_score;
      spec.x_label = "Position";
      spec.y_label = "Negative log-likelihood (nats)";
      break;
    case LSC_JOB_FIGURE_RETRIEVAL_SCORES:
    case LSC_JOB_FIGURE_RETRIEVAL_RANKING:
    case LSC_JOB_FIGURE_ABLATION:
      if (!retrieval_figure (f, ctx, &spec, &title, &cells, &x, &y, &row_labels, error))
        return FALSE;
      break;
    case LSC_JOB_FIGURE_SSM_DECAY:
    case LSC_JOB_FIGURE_SSM_RECEPTIVE_FIELD:
    case LSC_JOB_FIGURE_SSM_DT:
      if (!ssm_figure (f, ctx, &spec, &title, &cells, error))
        return FALSE;
      break;
    case LSC_JOB_FIGURE_KV_TIMELINE:
    case LSC_JOB_FIGURE_KV_LAYERS:
    case LSC_JOB_FIGURE_KV_KL:
      if (!kv_figure (f, ctx, &spec, &title, &cells, &x, &y, &series_names, error))
        return FALSE;
      break;
    }
  spec.title = f->title != NULL ? f->title : title;
  if (!render (&spec, data, error))
    {
      g_prefix_error (error, "%s: ", path);
      return FALSE;
    }
  return TRUE;
}

gboolean
_lsc_job_figures_render (GArray *figures, const LscJobFigureContext *ctx, const char *output_dir,
                         LscFigureFunc render, gpointer data, json_object *written, GError **error)
{
  for (guint i = 0; i < figures->len; i++)
    {
      const LscJobFigure *f = &g_array_index (figures, LscJobFigure, i);
      g_autofree char *path = g_build_filename (output_dir, f->file, NULL);
      if (render == NULL)
        {
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "$.figures[%u]: this longscope was built without the figure renderer "
                       "(Cairo and Pango)", i);
          return FALSE;
        }
      if (!render_one (f, ctx, path, render, data, error))
        {
          g_prefix_error (error, "$.figures[%u]: ", i);
          return FALSE;
        }
      json_object_array_add (written, json_object_new_string (f->file));
    }
  return TRUE;
}
