"""Numeric conventions shared by every layer (a leaf module: no lmtools imports).

numba kernels read module globals as compile-time constants, so kernels import them from here too.
"""

LOG_ZERO = -99.0  # log10 p at or below this is p = 0; ARPA files write log10 0 as -99
# Tokens are split at these bytes only (9-13 and 32), as KenLM does: a vocabulary word has none of
# them; io.text.line_words and kernels.tokenize.is_space apply the rule.
ASCII_WHITESPACE = " \t\n\v\f\r"
