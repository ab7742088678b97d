/* SPDX-License-Identifier: MIT
 *
 * lsc-batch.h: `longscope --batch job.json`, the headless runner.
 * Returns the process exit status: 0 done, 1 runtime failure, 2 invalid job
 * or arguments, 3 model or file could not be loaded, 130 interrupted.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

int lsc_batch_run_file (const char *job_path, const char *output_dir);

G_END_DECLS
