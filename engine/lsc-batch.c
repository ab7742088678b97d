/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "lsc-batch.h"

int
lsc_batch_run_file (const char *job_path, const char *output_dir)
{
  g_printerr ("longscope: --batch: not implemented yet\n");
  return 1;
}
