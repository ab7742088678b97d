/* SPDX-License-Identifier: MIT
 *
 * The engine links without GTK, GDK, Cairo or Pango: this program is built
 * with the engine dependency alone, and checks at run time that none of those
 * libraries got mapped into the process anyway.
 */
#include "config.h"

#include <string.h>

#include "lsc-model.h"
#include "lsc-tokenizer.h"
#include "lsc-test-util.h"

static void
test_no_gui_libraries (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *maps = NULL;

  /* touch the engine so that it is really linked in */
  g_assert_null (lsc_model_load ("/nonexistent/model.gguf", &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  g_file_get_contents ("/proc/self/maps", &maps, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (strstr (maps, "libgtk-4"));
  g_assert_null (strstr (maps, "libgdk"));
  g_assert_null (strstr (maps, "libcairo"));
  g_assert_null (strstr (maps, "libpango"));
  g_assert_nonnull (strstr (maps, "libglib-2.0"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/layering/no-gui-libraries", test_no_gui_libraries);
  return g_test_run ();
}
