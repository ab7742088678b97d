/* SPDX-License-Identifier: MIT
 *
 * Colour map lookup: t in [0, 1] -> one of 256 entries, as matplotlib does.
 */
#include "config.h"

#include <math.h>

#include "lsc-figure-private.h"

static const struct {
  const char *name;
  const guint8 (*table)[3];
  gboolean diverging;
} maps[] = {
  [LSC_COLORMAP_VIRIDIS] = { "viridis", _lsc_colormap_viridis, FALSE },
  [LSC_COLORMAP_MAGMA] = { "magma", _lsc_colormap_magma, FALSE },
  [LSC_COLORMAP_RDBU_R] = { "RdBu_r", _lsc_colormap_rdbu_r, TRUE },
};

void
lsc_colormap_rgb (LscColormap map, double t, guint8 *r, guint8 *g, guint8 *b)
{
  g_return_if_fail ((guint) map < G_N_ELEMENTS (maps));
  g_return_if_fail (r != NULL && g != NULL && b != NULL);

  if (isnan (t))
    {
      *r = LSC_FIGURE_MASKED_R;
      *g = LSC_FIGURE_MASKED_G;
      *b = LSC_FIGURE_MASKED_B;
      return;
    }
  /* matplotlib: index = int (t * N), t == 1 -> N - 1, clipped */
  int i = t <= 0.0 ? 0 : t >= 1.0 ? 255 : (int) floor (t * 256.0);
  if (i > 255)
    i = 255;
  *r = maps[map].table[i][0];
  *g = maps[map].table[i][1];
  *b = maps[map].table[i][2];
}

const char *
lsc_colormap_get_name (LscColormap map)
{
  g_return_val_if_fail ((guint) map < G_N_ELEMENTS (maps), NULL);
  return maps[map].name;
}

gboolean
lsc_colormap_from_name (const char *name, LscColormap *map)
{
  g_return_val_if_fail (name != NULL && map != NULL, FALSE);
  for (guint i = 0; i < G_N_ELEMENTS (maps); i++)
    if (g_ascii_strcasecmp (name, maps[i].name) == 0)
      {
        *map = (LscColormap) i;
        return TRUE;
      }
  return FALSE;
}

gboolean
lsc_colormap_is_diverging (LscColormap map)
{
  g_return_val_if_fail ((guint) map < G_N_ELEMENTS (maps), FALSE);
  return maps[map].diverging;
}
