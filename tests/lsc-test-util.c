/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "lsc-test-util.h"

#include "lsc-model.h"

#include <glib/gstdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char *tmpdir;

static const char *
shared_dir (void)
{
  const char *env = g_getenv ("LSC_SHARED_DIR");
  return env != NULL ? env : LSC_DEFAULT_SHARED_DIR;
}

char *
lsc_test_shared_path (const char *rel)
{
  char *path = g_build_filename (shared_dir (), rel, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_autofree char *msg = g_strdup_printf ("test data %s is absent (set LSC_SHARED_DIR)", path);
      g_test_skip (msg);
      g_free (path);
      return NULL;
    }
  return path;
}

LscModel *
lsc_test_load_shared_model (const char *rel)
{
  g_autofree char *path = lsc_test_shared_path (rel);
  g_autoptr(GError) error = NULL;
  if (path == NULL)
    return NULL;
  LscModel *model = lsc_model_load (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (model);
  return model;
}

static void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  if (dir != NULL)
    {
      const char *name;
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            remove_tree (child);
          else
            g_unlink (child);
        }
      g_dir_close (dir);
    }
  g_rmdir (path);
}

static void
remove_tmpdir (void)
{
  if (tmpdir != NULL)
    remove_tree (tmpdir);
  g_clear_pointer (&tmpdir, g_free);
}

const char *
lsc_test_tmpdir (void)
{
  if (tmpdir == NULL)
    {
      g_autoptr(GError) error = NULL;
      tmpdir = g_dir_make_tmp ("lsc-test-XXXXXX", &error);
      g_assert_no_error (error);
      atexit (remove_tmpdir);
    }
  return tmpdir;
}

char *
lsc_test_write_file (const char *name, const void *data, gsize len)
{
  g_autoptr(GError) error = NULL;
  char *path = g_build_filename (lsc_test_tmpdir (), name, NULL);
  g_autofree char *parent = g_path_get_dirname (path);
  g_mkdir_with_parents (parent, 0700);
  g_file_set_contents (path, data, len, &error);
  g_assert_no_error (error);
  return path;
}

GBytes *
lsc_test_read_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  char *contents = NULL;
  gsize len = 0;
  g_file_get_contents (path, &contents, &len, &error);
  g_assert_no_error (error);
  return g_bytes_new_take (contents, len);
}

void
lsc_test_assert_error (const GError *error, GQuark domain, int code, ...)
{
  va_list ap;
  const char *frag;

  if (error == NULL)
    g_error ("expected error %s:%d, got none", g_quark_to_string (domain), code);
  if (error->domain != domain || error->code != code)
    g_error ("expected error %s:%d, got %s:%d: %s", g_quark_to_string (domain), code,
             g_quark_to_string (error->domain), error->code, error->message);
  va_start (ap, code);
  while ((frag = va_arg (ap, const char *)) != NULL)
    if (strstr (error->message, frag) == NULL)
      g_error ("error message \"%s\" lacks \"%s\"", error->message, frag);
  va_end (ap);
}
