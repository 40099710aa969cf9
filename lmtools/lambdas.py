"""The interpolation weights of a linear mixture, checked (lm-ppl, lm-score, lm-gen, lm-mix --lambda).

Apart from lmtools.mixture so that the programs check --lambda (a usage error) before importing numpy
and the scorers: a usage error costs the interpreter and click only.
"""

from __future__ import annotations

import math

from lmtools.errors import LmError


def check_lambdas(lambdas: list[float], k: int) -> list[float]:
    """Weights for k models from the given ones: k of them summing to 1, or k-1 (the last is the rest)."""
    if any(not (0.0 <= x <= 1.0) or math.isnan(x) for x in lambdas):
        raise LmError(f"interpolation weights must lie in [0, 1], got {lambdas}", "give weights like --lambda 0.6")
    if k == 1:
        if lambdas and abs(sum(lambdas) - 1.0) > 1e-6:
            raise LmError("--lambda needs two or more models (-m A -m B)", "give another -m or drop --lambda")
        return [1.0]
    if not lambdas:
        return [1.0 / k] * k
    if any(not (0.0 <= x <= 1.0) or math.isnan(x) for x in lambdas):
        raise LmError(f"interpolation weights must lie in [0, 1], got {lambdas}", "give weights like --lambda 0.6")
    if len(lambdas) == k - 1:
        rest = 1.0 - sum(lambdas)
        if rest < -1e-9:
            raise LmError(f"the weights {lambdas} sum to more than 1", "give weights that sum to at most 1")
        return list(lambdas) + [max(rest, 0.0)]
    if len(lambdas) == k:
        if abs(sum(lambdas) - 1.0) > 1e-6:
            raise LmError(f"the weights {lambdas} sum to {sum(lambdas):g}, not 1",
                          f"give {k} weights that sum to 1, or {k - 1} (the last model gets the rest)")
        return list(lambdas)
    raise LmError(f"{len(lambdas)} weights for {k} models", f"give {k - 1} or {k} weights with --lambda")
