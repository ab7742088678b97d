/* SPDX-License-Identifier: MIT
 *
 * lsc_test_run_batch (lsc-test-util.h), in a file of its own so that tests
 * which do not use it (the kernels suite) do not link the engine.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "lsc-batch.h"
#include "lsc-test-util.h"

int
lsc_test_run_batch (const char *job, const char *dir)
{
  fflush (stdout);
  int saved = dup (1), null = open ("/dev/null", O_WRONLY);
  g_assert_cmpint (saved, >=, 0);
  g_assert_cmpint (null, >=, 0);
  dup2 (null, 1);
  int status = lsc_batch_run_file (job, dir, NULL, NULL, NULL);
  fflush (stdout);
  dup2 (saved, 1);
  close (saved);
  close (null);
  return status;
}
