/* SPDX-License-Identifier: MIT
 *
 * JSON helpers over json-c for job and result files: strict parsing that
 * rejects duplicate keys (json-c alone silently keeps the last one), and
 * writing that never emits NaN or Infinity (written as null instead).
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

G_BEGIN_DECLS

#define LSC_JOB_ERROR (lsc_job_error_quark ())
GQuark lsc_job_error_quark (void);

typedef enum {
  LSC_JOB_ERROR_IO,
  LSC_JOB_ERROR_SYNTAX,        /* not JSON, or duplicate keys */
  LSC_JOB_ERROR_INVALID,       /* a field is missing, unknown, or of the wrong type or range */
} LscJobError;

/* Parses `len` bytes of JSON text strictly: valid UTF-8, no NUL bytes,
 * nothing but whitespace after the value, no duplicate keys. Failures use
 * `domain` and `code` (each caller has its own module's error), and name
 * `name` (a file name) with line and column for syntax errors and the JSON
 * path ($.a.b[2]) of a duplicate key. */
json_object *lsc_json_parse (const char *name, const char *text, gsize len, GQuark domain,
                             int code, GError **error);

/* FALSE, with LSC_JOB_ERROR_INVALID "FILE: PATH.KEY: unknown key (expected
 * one of A, B, ...)", when the object `obj` at JSON path `path` has a key not
 * in `known` (NULL-terminated). */
gboolean lsc_json_check_keys (json_object *obj, const char *const *known, const char *file,
                              const char *path, GError **error);

/* A finite double, or null for NaN and infinities. */
json_object *lsc_json_double (double v);
/* A finite number written as the shortest decimal that reads back as the
 * same double (0.1, not 0.10000000000000001; 10, not 1e+01), or, for
 * _float, as the same float (0.7f as 0.7, not 0.699999988079071). */
json_object *lsc_json_double_short (double v);
json_object *lsc_json_float_short (float v);
/* An array of lsc_json_double ()s. */
json_object *lsc_json_doubles (const double *v, gsize n);

/* Serialises `obj` (pretty, with a final newline) to `path` atomically:
 * a temporary file beside it, then rename. */
gboolean lsc_json_write_file (json_object *obj, const char *path, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (json_object, json_object_put)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (json_tokener, json_tokener_free)

G_END_DECLS
