/* SPDX-License-Identifier: MIT
 *
 * RoPE frequencies as Hugging Face computes them (modeling_rope_utils.py),
 * in double precision; the engine rounds cos and sin to float32 per position.
 *
 *   default:  inv[i] = base^(-2i/d)
 *   linear:   inv[i] / factor
 *   dynamic:  when seq_len > max_pos, base' = base * (factor * seq_len / max_pos - (factor - 1))^(d / (d - 2))
 *   yarn:     inv = inv_interp * (1 - m) + inv_extrap * m, m = 1 - ramp(i; low, high),
 *             low/high from the correction-dimension formula at beta_fast / beta_slow,
 *             cos and sin scaled by attention_factor (default 0.1 ln(factor) + 1)
 *   llama3:   wavelength bands around original / low_freq_factor and original / high_freq_factor
 */
#include "config.h"

#include <math.h>

#include "lsc-rope.h"

static double
yarn_correction_dim (double n_rot, int d, double base, double max_pos)
{
  return d * log (max_pos / (n_rot * 2 * G_PI)) / (2 * log (base));
}

static double
yarn_mscale (double factor)
{
  return factor <= 1 ? 1.0 : 0.1 * log (factor) + 1.0;
}

double
lsc_rope_inv_freq (const LscModelConfig *c, int seq_len, double *inv_freq)
{
  const LscRopeScaling *s = &c->rope_scaling;
  int d = c->head_dim, half = d / 2;
  double base = c->rope_theta > 0 ? c->rope_theta : 10000.0;
  double factor = s->factor > 0 ? s->factor : 1.0;
  double attention_factor = 1.0;

  if (s->type == LSC_ROPE_SCALING_DYNAMIC && c->max_position > 0 && seq_len > c->max_position)
    base *= pow (factor * seq_len / c->max_position - (factor - 1), (double) d / (d - 2));

  for (int i = 0; i < half; i++)
    inv_freq[i] = 1.0 / pow (base, 2.0 * i / d);

  switch (s->type)
    {
    case LSC_ROPE_SCALING_NONE:
    case LSC_ROPE_SCALING_DYNAMIC:
      break;

    case LSC_ROPE_SCALING_LINEAR:
      for (int i = 0; i < half; i++)
        inv_freq[i] /= factor;
      break;

    case LSC_ROPE_SCALING_YARN:
      {
        double orig = s->original_max_position > 0 ? s->original_max_position : c->max_position;
        /* HF: with original_max_position_embeddings given, the factor is max_pos / original */
        if (s->original_max_position > 0 && c->max_position > 0)
          factor = (double) c->max_position / s->original_max_position;
        double beta_fast = s->beta_fast > 0 ? s->beta_fast : 32.0;
        double beta_slow = s->beta_slow > 0 ? s->beta_slow : 1.0;
        double low = floor (yarn_correction_dim (beta_fast, d, base, orig));
        double high = ceil (yarn_correction_dim (beta_slow, d, base, orig));
        low = MAX (low, 0);
        high = MIN (high, d - 1);
        if (low == high)
          high += 0.001;
        for (int i = 0; i < half; i++)
          {
            double ramp = CLAMP ((i - low) / (high - low), 0.0, 1.0);
            double extrap = 1.0 - ramp;          /* weight of the unscaled frequency */
            inv_freq[i] = inv_freq[i] / factor * (1.0 - extrap) + inv_freq[i] * extrap;
          }
        attention_factor = s->attention_factor > 0 ? s->attention_factor : yarn_mscale (factor);
        break;
      }

    case LSC_ROPE_SCALING_LLAMA3:
      {
        double orig = s->original_max_position > 0 ? s->original_max_position : 8192;
        double low_f = s->low_freq_factor > 0 ? s->low_freq_factor : 1.0;
        double high_f = s->high_freq_factor > 0 ? s->high_freq_factor : 4.0;
        double low_wavelen = orig / low_f, high_wavelen = orig / high_f;
        for (int i = 0; i < half; i++)
          {
            double wavelen = 2 * G_PI / inv_freq[i];
            if (wavelen > low_wavelen)
              inv_freq[i] /= factor;
            else if (wavelen >= high_wavelen)
              {
                double smooth = (orig / wavelen - low_f) / (high_f - low_f);
                inv_freq[i] = (1 - smooth) * inv_freq[i] / factor + smooth * inv_freq[i];
              }
          }
        break;
      }
    }
  return attention_factor;
}

void
lsc_rope_cos_sin (const double *inv_freq, int half, double attention_factor, int pos,
                  float *cos_out, float *sin_out)
{
  for (int i = 0; i < half; i++)
    {
      double angle = pos * inv_freq[i];
      cos_out[i] = (float) (cos (angle) * attention_factor);
      sin_out[i] = (float) (sin (angle) * attention_factor);
    }
}
