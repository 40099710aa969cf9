"""Linear mixtures of models of any kind: p(w|h) = sum_i lambda_i p_i(w|h).

Each model sees the text through its own vocabulary (a word outside it is that model's ``<unk>``);
a token is an OOV of the mixture when it is outside every model's vocabulary. ``Mixture`` keeps the
``Scorer`` interface of lmtools.kinds, over the scorers of its models.
"""

from __future__ import annotations

import math

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.errors import LmError
from lmtools.ngram.query import NO_CONTEXT, LineScores, Scored
from lmtools.vocab import BOS_ID


class Mixture:
    """Linear interpolation: log10 sum_i lambda_i 10^(log10 p_i) per token."""

    kind = "mixture"

    def __init__(self, scorers: list, lambdas: list[float]):
        self.scorers = scorers
        self.lambdas = np.asarray(lambdas, np.float64)
        self.order = max(s.order for s in scorers)
        self.scores_only = any(s.scores_only for s in scorers)
        self.name = " + ".join(s.name for s in scorers)
        self.vocab = scorers[0].vocab

    def combine(self, parts: list[Scored]) -> Scored:
        first = parts[0]
        for p in parts[1:]:
            if p.ids.size != first.ids.size:
                raise AssertionError("models tokenized the text differently")
        L = np.stack([p.logp for p in parts])  # (k, T)
        lam = self.lambdas[:, None]
        with np.errstate(divide="ignore"):
            top = L.max(axis=0)
            safe = np.where(np.isfinite(top), top, 0.0)
            acc = (lam * np.power(10.0, L - safe)).sum(axis=0)
            lp = np.log10(acc) + safe
        is_start = (first.ids == BOS_ID) | (first.ids == NO_CONTEXT)
        lp[is_start] = 0.0
        oov = np.logical_and.reduce([p.oov for p in parts])
        order = np.max(np.stack([p.order for p in parts]), axis=0).astype(np.int32)
        zero = (lp <= LOG_ZERO) & ~is_start
        return Scored(first.ids, oov, lp, order, zero, first.n_lines, first.n_dropped)

    def score_text(self, data: bytes, threads: int = 1, fast: bool | None = None) -> Scored:
        return self.combine([s.score_text(data, threads, fast) for s in self.scorers])

    def line_scores(self, data: bytes, threads: int = 1, fast: bool | None = None) -> LineScores:
        return self.score_text(data, threads, fast).line_scores()

    def warm(self) -> None:
        for s in self.scorers:
            s.warm()



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


def mixture_text_kind(names: list[str], kinds: list[dict | None]) -> dict | None:
    """The one text kind of models scored together (None: none records one, as ARPA files); models
    that read their text differently (characters and words, lower-cased or not) cannot be mixed."""
    from lmtools.io.text import describe_text_kind

    known = [(n, k) for n, k in zip(names, kinds) if k is not None]
    for n, k in known[1:]:
        if k != known[0][1]:
            raise LmError(f"{known[0][0]} is a model of {describe_text_kind(known[0][1])}, {n} of "
                          f"{describe_text_kind(k)}: they read text differently and cannot be mixed",
                          "mix models counted with the same --chars and --lower")
    return known[0][1] if known else None
