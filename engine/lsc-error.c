/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "lsc-error.h"

G_DEFINE_QUARK (lsc-model-error-quark, lsc_model_error)
G_DEFINE_QUARK (lsc-tokenizer-error-quark, lsc_tokenizer_error)
G_DEFINE_QUARK (lsc-run-error-quark, lsc_run_error)
