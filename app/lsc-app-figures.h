/* SPDX-License-Identifier: MIT
 *
 * The renderer batch jobs draw their figures with: an LscFigureFunc
 * (engine/lsc-batch.h) on top of ui/figures.
 */
#pragma once

#include "lsc-batch.h"

gboolean lsc_app_render_figure (const LscFigureSpec *spec, gpointer user_data, GError **error);
