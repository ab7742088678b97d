/* SPDX-License-Identifier: MIT
 *
 * RoPE frequencies for every scaling type of Hugging Face's
 * modeling_rope_utils.py: none, linear, dynamic NTK, YaRN and llama3.
 */
#pragma once

#include "lsc-model.h"

G_BEGIN_DECLS

/* inv_freq (head_dim / 2) <- the rotary frequencies used for a sequence whose
 * largest position is seq_len - 1 (only dynamic NTK depends on it). Returns
 * the factor cos and sin are multiplied by (YaRN's attention factor, else 1). */
double lsc_rope_inv_freq (const LscModelConfig *c, int seq_len, double *inv_freq);

/* cos, sin (head_dim / 2) for one position. */
void lsc_rope_cos_sin (const double *inv_freq, int half, double attention_factor, int pos,
                       float *cos_out, float *sin_out);

G_END_DECLS
