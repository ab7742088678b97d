/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lsc-json.h"

G_DEFINE_QUARK (lsc-job-error-quark, lsc_job_error)

/* Duplicate keys: json-c has already checked the syntax, so a small scanner
 * that follows strings and nesting is enough. Each open object keeps the set
 * of its keys; a key seen twice is reported with its JSON path. */
typedef struct {
  GHashTable *keys;   /* NULL for arrays */
  char *path;
  int index;          /* next array element */
} Frame;

static char *
scan_string (const char *p, const char *end, const char **after)
{
  GString *s = g_string_new (NULL);
  p++;                                 /* opening quote */
  while (p < end && *p != '"')
    {
      if (*p == '\\' && p + 1 < end)
        {
          g_string_append_c (s, *p++);
        }
      g_string_append_c (s, *p++);
    }
  *after = p < end ? p + 1 : end;
  return g_string_free (s, FALSE);
}

static gboolean
check_duplicates (const char *name, const char *text, gsize len, GQuark domain, int code,
                  GError **error)
{
  const char *p = text, *end = text + len;
  g_autoptr(GArray) stack = g_array_new (FALSE, TRUE, sizeof (Frame));
  g_autofree char *pending = NULL;    /* path of the value that comes next */
  gboolean ok = TRUE;

  while (p < end && ok)
    {
      char ch = *p;
      Frame *top = stack->len ? &g_array_index (stack, Frame, stack->len - 1) : NULL;

      if (ch == '{' || ch == '[')
        {
          Frame f = { 0 };
          if (pending != NULL)
            f.path = g_steal_pointer (&pending);
          else if (top != NULL && top->keys == NULL)
            f.path = g_strdup_printf ("%s[%d]", top->path, top->index);
          else
            f.path = g_strdup ("$");
          f.keys = ch == '{' ? g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL) : NULL;
          g_array_append_val (stack, f);
          p++;
        }
      else if (ch == '}' || ch == ']')
        {
          if (top != NULL)
            {
              g_clear_pointer (&top->keys, g_hash_table_unref);
              g_free (top->path);
              g_array_set_size (stack, stack->len - 1);
            }
          g_clear_pointer (&pending, g_free);
          p++;
        }
      else if (ch == '"')
        {
          const char *after;
          char *s = scan_string (p, end, &after);
          const char *q = after;
          while (q < end && g_ascii_isspace (*q))
            q++;
          if (top != NULL && top->keys != NULL && q < end && *q == ':')
            {
              g_free (pending);
              pending = g_strdup_printf ("%s.%s", top->path, s);
              if (!g_hash_table_add (top->keys, s))
                {
                  g_set_error (error, domain, code, "%s: %s: duplicate key", name, pending);
                  ok = FALSE;
                }
              p = q + 1;
              continue;
            }
          g_free (s);
          g_clear_pointer (&pending, g_free);
          p = after;
        }
      else if (ch == ',')
        {
          if (top != NULL && top->keys == NULL)
            top->index++;
          g_clear_pointer (&pending, g_free);
          p++;
        }
      else
        p++;
    }

  for (guint i = 0; i < stack->len; i++)
    {
      Frame *f = &g_array_index (stack, Frame, i);
      g_clear_pointer (&f->keys, g_hash_table_unref);
      g_free (f->path);
    }
  return ok;
}

/* Line and column (1-based) of byte `offset` in text, for messages. */
static void
line_col (const char *text, gsize len, gsize offset, int *line, int *col)
{
  *line = 1;
  *col = 1;
  for (gsize i = 0; i < offset && i < len; i++)
    {
      if (text[i] == '\n')
        (*line)++, *col = 1;
      else
        (*col)++;
    }
}

json_object *
lsc_json_parse (const char *name, const char *text, gsize len, GQuark domain, int code,
                GError **error)
{
  g_autoptr(json_tokener) tok = NULL;
  const char *nul;
  json_object *obj;
  int line, col;

  if (len > G_MAXINT)
    {
      g_set_error (error, domain, code, "%s: %" G_GSIZE_FORMAT " bytes of JSON is too large",
                   name, len);
      return NULL;
    }
  /* json-c would stop at a NUL and call the rest trailing text */
  if ((nul = memchr (text, '\0', len)) != NULL)
    {
      line_col (text, len, nul - text, &line, &col);
      g_set_error (error, domain, code, "%s:%d:%d: not valid JSON: contains a NUL byte", name,
                   line, col);
      return NULL;
    }

  tok = json_tokener_new ();
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS
                               | JSON_TOKENER_VALIDATE_UTF8);
  obj = json_tokener_parse_ex (tok, text, (int) len);
  if (obj == NULL)
    {
      enum json_tokener_error jerr = json_tokener_get_error (tok);
      line_col (text, len, json_tokener_get_parse_end (tok), &line, &col);
      g_set_error (error, domain, code, "%s:%d:%d: not valid JSON: %s", name, line, col,
                   jerr == json_tokener_continue || jerr == json_tokener_success
                     ? "unexpected end of text" : json_tokener_error_desc (jerr));
      return NULL;
    }
  /* only whitespace may follow the value (safetensors pads its header with spaces) */
  for (gsize i = json_tokener_get_parse_end (tok); i < len; i++)
    if (!g_ascii_isspace (text[i]))
      {
        line_col (text, len, i, &line, &col);
        g_set_error (error, domain, code, "%s:%d:%d: not valid JSON: unexpected text after the value",
                     name, line, col);
        json_object_put (obj);
        return NULL;
      }
  if (!check_duplicates (name, text, len, domain, code, error))
    {
      json_object_put (obj);
      return NULL;
    }
  return obj;
}

gboolean
lsc_json_check_keys (json_object *obj, const char *const *known, const char *file,
                     const char *path, GError **error)
{
  json_object_object_foreach (obj, key, val)
    {
      (void) val;
      if (!g_strv_contains (known, key))
        {
          g_autofree char *list = g_strjoinv (", ", (char **) known);
          g_set_error (error, LSC_JOB_ERROR, LSC_JOB_ERROR_INVALID,
                       "%s: %s.%s: unknown key (expected one of %s)", file, path, key, list);
          return FALSE;
        }
    }
  return TRUE;
}

json_object *
lsc_json_double (double v)
{
  return isfinite (v) ? json_object_new_double (v) : NULL;
}

/* digits: 17 for a double, 9 for a float (enough to read either back) */
static json_object *
shortest (double v, gboolean single)
{
  char text[G_ASCII_DTOSTR_BUF_SIZE];
  if (v == floor (v) && fabs (v) < 1e15)
    g_ascii_formatd (text, sizeof text, "%.0f", v);
  else
    for (int digits = 1; digits <= (single ? 9 : 17); digits++)
      {
        char format[8];
        g_snprintf (format, sizeof format, "%%.%dg", digits);
        g_ascii_formatd (text, sizeof text, format, v);
        double back = g_ascii_strtod (text, NULL);
        if (single ? (float) back == (float) v : back == v)
          break;
      }
  return json_object_new_double_s (g_ascii_strtod (text, NULL), text);
}

json_object *
lsc_json_double_short (double v)
{
  return shortest (v, FALSE);
}

json_object *
lsc_json_float_short (float v)
{
  return shortest (v, TRUE);
}

gboolean
lsc_json_write_file (json_object *obj, const char *path, GError **error)
{
  const char *text = json_object_to_json_string_ext (obj, JSON_C_TO_STRING_PRETTY
                                                          | JSON_C_TO_STRING_SPACED
                                                          | JSON_C_TO_STRING_NOSLASHESCAPE);
  g_autofree char *with_nl = g_strconcat (text, "\n", NULL);
  /* g_file_set_contents writes a temporary file and renames it over path */
  return g_file_set_contents (path, with_nl, -1, error);
}

json_object *
lsc_json_doubles (const double *v, gsize n)
{
  json_object *a = json_object_new_array_ext ((int) n);
  for (gsize i = 0; i < n; i++)
    json_object_array_add (a, lsc_json_double (v[i]));
  return a;
}
