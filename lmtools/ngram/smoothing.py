"""Smoothing: pure functions Counts -> NGramModel (the ARPA back-off form, exactly).

Every method is written as, for each order n and context h (the n-1 oldest words of an n-gram):

    alpha(hw)  the probability mass the method gives to the seen n-gram hw directly,
    gamma(h)   the mass left for the lower order, 1 - sum_w alpha(hw),

and the model is assembled in one of three forms (the ARPA file stores p for every seen n-gram
and one backoff weight per context, so that an unseen w after h gets bow(h) p(w|h')):

    interpolated  p(w|h) = alpha(hw) + gamma(h) p(w|h'),   bow(h) = gamma(h)
    backoff       p(w|h) = alpha(hw) for seen hw,           bow(h) = gamma(h) / (1 - sum_{seen hw} p(w|h'))
    stupid        S(w|h) = alpha(hw) for seen hw,           bow(h) = a constant (0.4)

where h' is h without its oldest word. The unigram level interpolates with a uniform
distribution over |V| = the unigrams less ``<s>`` (``<unk>`` and ``</s>`` in):
p(w) = alpha(w) + gamma() / |V|. ``<s>`` is only a context: its unigram has log10 p = 0.
log10 p is written as min(0, log10 p); log10 0 is written as -99 (LOG_ZERO).

Count cutoffs (``prune``, KenLM's meaning): n-grams of order n >= 2 whose raw count is <= the
threshold of order n are removed after estimation; their alpha mass moves into gamma of their
context (so the distribution still sums to one). Thresholds must not decrease with the order,
which keeps every kept n-gram's prefix and suffix in the model.

All work is vectorized over the n-gram arrays: an index (prefix and suffix position of every
n-gram in the order below) is built once, then every statistic is a bincount or a gather.

The index, the stages over counts and the assembly live in ``lmtools.ngram.smoothing_stages``, the
methods in ``lmtools.ngram.smoothing_methods``; this module picks a method by name (``smooth``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from lmtools.errors import LmError
from lmtools.ngram.counts import Counts
from lmtools.ngram.model import NGramModel
from lmtools.ngram.smoothing_methods import (
    absolute_discounting, add_k, katz, kneser_ney, mle, modified_kneser_ney, stupid_backoff, witten_bell,
)
from lmtools.ngram.smoothing_stages import STUPID_ALPHA, check_nonempty, check_prune, raw_counts, restrict_vocab, truncate

# the stages and statistics, read from here too
from lmtools.ngram.smoothing_methods import (  # noqa: F401
    KATZ_K, KATZ_MIN_LEFTOVER, good_turing_discounts, katz_denominators, kenlm_pending,
)
from lmtools.ngram.smoothing_stages import (  # noqa: F401
    FALLBACK_DISCOUNTS, Index, adjusted_counts, count_of_counts, mkn_discounts,
)

METHODS = {
    "kn-modified": "interpolated modified Kneser-Ney (three discounts per order), the default",
    "kn": "Kneser-Ney with one discount per order",
    "wb": "Witten-Bell",
    "abs": "absolute discounting",
    "add-k": "add-k (Laplace for k = 1)",
    "mle": "maximum likelihood (unsmoothed)",
    "katz": "Katz backoff with Good-Turing discounts",
    "stupid": "stupid backoff (scores, not probabilities)",
}
ALIASES = {
    "mkn": "kn-modified", "modified-kn": "kn-modified", "kneser-ney-modified": "kn-modified", "kn-mod": "kn-modified",
    "kneser-ney": "kn", "witten-bell": "wb", "absolute": "abs", "absolute-discounting": "abs",
    "addk": "add-k", "add_k": "add-k", "laplace": "laplace", "lidstone": "add-k", "ml": "mle",
    "good-turing": "katz", "stupid-backoff": "stupid", "sb": "stupid",
}


def canonical_method(name: str) -> str:
    """The canonical method name for a name or alias; LmError for an unknown one."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key == "laplace" or key in METHODS:
        return key
    if key == "ffnn":
        return key
    raise LmError(f"unknown smoothing method {name!r}",
                  "choose one of " + ", ".join(list(METHODS) + ["laplace", "ffnn"]))


def check_options(method: str, *, interpolate: bool | None = None, discount=None, k: float = 1.0,
                  alpha: float = STUPID_ALPHA, prune: Sequence[int] | None = None) -> str:
    """Validate the options of ``smooth`` that do not depend on the counts; return the canonical
    method name. (Called by ``smooth``; a CLI can call it before reading any input.)"""
    m = canonical_method(method)
    if m == "ffnn":
        raise LmError("ffnn is not an n-gram smoothing method", "train it with lm-train --method ffnn on text")
    if interpolate is not None and m in ("add-k", "laplace", "mle", "katz", "stupid"):
        if interpolate:
            raise LmError(f"{m} has no interpolated form", "drop --interpolate")
    if discount is not None and m not in ("kn-modified", "kn", "abs"):
        raise LmError(f"--discount does not apply to {m}", "use it with kn-modified, kn or abs")
    if discount is not None:
        for d in discount:
            if d is None:
                continue
            vals = [float(x) for x in (d if isinstance(d, (list, tuple)) else [d])]
            if m == "kn-modified" and len(vals) not in (1, 3) or m != "kn-modified" and len(vals) != 1:
                want = "three discounts" if m == "kn-modified" else "one discount"
                raise LmError(f"{m} needs {want} >= 0 per order, got {d}",
                              "e.g. --discount 0.5,1,1.5" if m == "kn-modified" else "e.g. --discount 0.75")
            if not all(math.isfinite(v) for v in vals):
                raise LmError(f"discounts must be finite numbers, got {d}",
                              "e.g. --discount 0.5,1,1.5" if m == "kn-modified" else "e.g. --discount 0.75")
            # D_k takes D_k off every count k (k = 1, 2, 3+): above k a probability would be negative
            # (KenLM's rule 0 <= D_k <= k); one value for kn-modified is D1 = D2 = D3+.
            bounds = (1.0, 2.0, 3.0) if len(vals) == 3 else (1.0,)
            if any(not 0.0 <= v <= b for v, b in zip(vals, bounds)):
                raise LmError(f"discounts must satisfy 0 <= D1 <= 1, 0 <= D2 <= 2, 0 <= D3+ <= 3, got {d}"
                              if len(vals) == 3 else f"a discount must lie in [0, 1], got {d}",
                              "e.g. --discount 0.5,1,1.5" if m == "kn-modified" else "e.g. --discount 0.75")
    if m in ("add-k",) and not (k > 0 and math.isfinite(k)):
        raise LmError(f"add-k needs k > 0, got {k}", "e.g. -k 1 (Laplace) or -k 0.01")
    if m == "stupid" and not 0 < alpha <= 1:
        raise LmError(f"stupid backoff needs 0 < alpha <= 1, got {alpha}", "e.g. --alpha 0.4")
    if prune:
        check_prune([int(x) for x in prune])
    return m


def smooth(counts: Counts, method: str = "kn-modified", *, order: int | None = None,
           interpolate: bool | None = None, discount=None, k: float = 1.0, alpha: float = STUPID_ALPHA,
           prune: Sequence[int] | None = None, vocab: Sequence[str] | None = None,
           kenlm_compat: bool = False, warn: Callable[[str], None] | None = None) -> NGramModel:
    """Estimate an NGramModel from counts with any method (the API behind lm-train).

    ``discount``: per order (last repeats): a (D1, D2, D3) triple for kn-modified, one number for
    kn and abs. ``interpolate``: None = the method's default (interpolated where it has a choice).
    ``vocab``: a closed vocabulary (words outside it become <unk>). ``kenlm_compat``: kn-modified
    only, count the discount statistics as lmplz does (see ``modified_kneser_ney``)."""
    m = check_options(method, interpolate=interpolate, discount=discount, k=k, alpha=alpha, prune=prune)
    text = getattr(counts, "text", None)  # how the text was read: the model keeps the counts' record
    counts = truncate(counts, order)
    check_memory(counts)
    if vocab is not None:
        counts = restrict_vocab(counts, vocab)
    check_nonempty(float(raw_counts(counts, 1).sum()))
    if kenlm_compat and m != "kn-modified":
        raise LmError(f"--kenlm-compat applies to kn-modified only, not {m}", "drop --kenlm-compat")
    model = _smooth_by(m, counts, discount, interpolate, prune, k, alpha, kenlm_compat, warn)
    model.text = text
    return model


def check_memory(counts: Counts) -> None:
    """Stop before estimating when the memory it needs (from the counts' sizes) is not available."""
    from lmtools import memory

    sizes = [int(g.shape[0]) for g in counts.ngrams]
    N = len(sizes)
    smaller = f"a smaller order (-n {N - 1}), " if N > 1 else ""
    memory.check(memory.estimate_smoothing(sizes), f"estimating a {N}-gram model from {sum(sizes):,} n-grams",
                 f"use {smaller}--prune (e.g. --prune {','.join(['0'] + ['1'] * max(N - 1, 1))}) or fewer "
                 "words (lm-count --vocab-size or --min-count)")


def _smooth_by(m, counts, discount, interpolate, prune, k, alpha, kenlm_compat, warn) -> NGramModel:
    if m == "kn-modified":
        return modified_kneser_ney(counts, discount, interpolate, prune, warn, kenlm_compat)
    if m == "kn":
        return kneser_ney(counts, discount, interpolate, prune, warn)
    if m == "abs":
        return absolute_discounting(counts, discount, interpolate, prune, warn)
    if m == "wb":
        return witten_bell(counts, interpolate, prune, warn)
    if m == "add-k":
        return add_k(counts, k, prune, warn)
    if m == "laplace":
        return add_k(counts, 1.0, prune, warn, method="laplace")
    if m == "mle":
        return mle(counts, prune, warn)
    if m == "katz":
        return katz(counts, prune, warn)
    if m == "stupid":
        return stupid_backoff(counts, alpha, prune, warn)
    raise AssertionError(m)


def smooth_if_counts(obj, name: str = "model", warn=None):
    """A counts model smoothed with the default method (how every consumer reads counts); any other
    model is returned as it is."""
    if not isinstance(obj, Counts):
        return obj
    if obj.tokens == 0 or len(obj.vocab) <= 3:
        raise LmError(f"{name}: the counts model holds no text", "count some text with lm-count first")
    return smooth(obj, "kn-modified", warn=warn)
