"""The stages of n-gram smoothing shared by every method (see ``lmtools.ngram.smoothing`` for the
alpha/gamma scheme and the three forms): the index over the count arrays, the stages over counts
(order truncation, a closed vocabulary, Kneser-Ney adjusted counts, counts of counts and discounts),
and the assembly of per-order alpha/gamma into an NGramModel (with count cutoffs)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.errors import LmError
from lmtools.ngram.counts import Counts
from lmtools.ngram.model import NGramModel
from lmtools.vocab import BOS_ID, SPECIALS, UNK_ID

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # used for an order whose modified-KN discounts are degenerate
STUPID_ALPHA = 0.4  # Brants et al. 2007


# ----------------------------------------------------------------------------------------------
# Index over the count arrays


class Index:
    """Prefix and suffix positions of every n-gram in the order below (orders >= 2).

    ``pre[n][i]``: row of ngrams[n-2] equal to ngrams[n-1][i, :-1] (its context h);
    ``suf[n][i]``: row of ngrams[n-2] equal to ngrams[n-1][i, 1:] (h'w, the lower-order n-gram).
    """

    def __init__(self, ngrams: Sequence[np.ndarray], what: str = "counts"):
        from lmtools.kernels.small import SMALL_ROWS

        if sum(int(g.shape[0]) for g in ngrams) < SMALL_ROWS:  # numba's start-up would dominate
            from lmtools.kernels.small import prefix_index, suffix_index
        else:
            from lmtools.kernels.smooth import prefix_index, suffix_index
        N = len(ngrams)
        V = ngrams[0].shape[0]
        if not np.array_equal(ngrams[0][:, 0], np.arange(V)):
            raise LmError(f"the {what} are inconsistent: unigrams must list every word id once, in order",
                          "recreate them with lm-count")
        self.pre: list = [None, None]
        self.suf: list = [None, None]
        for n in range(2, N + 1):
            g = ngrams[n - 1]
            pre = prefix_index(np.ascontiguousarray(g), np.ascontiguousarray(ngrams[n - 2]))
            if g.shape[0] and pre.min() < 0:
                raise LmError(f"the {what} are inconsistent: a {n}-gram's first {n - 1} words are not a {n - 1}-gram",
                              "recreate them with lm-count")
            if n == 2:
                suf = g[:, 1].astype(np.int64)
            else:
                prev = self.pre[n - 1]  # contexts of the order n-1 rows, non-decreasing
                start = np.zeros(ngrams[n - 3].shape[0] + 1, np.int64)
                np.cumsum(np.bincount(prev, minlength=ngrams[n - 3].shape[0]), out=start[1:])
                suf = suffix_index(pre, np.ascontiguousarray(g[:, n - 1]), self.suf[n - 1], start,
                                   np.ascontiguousarray(ngrams[n - 2][:, n - 2]))
                if g.shape[0] and suf.min() < 0:
                    raise LmError(f"the {what} are inconsistent: a {n}-gram's last {n - 1} words are not a {n - 1}-gram",
                                  "recreate them with lm-count")
            self.pre.append(pre)
            self.suf.append(suf)


# ----------------------------------------------------------------------------------------------
# Stages over counts


def truncate(counts: Counts, order: int | None) -> Counts:
    """The counts of orders 1..order (LmError when order exceeds the counts' order)."""
    if order is None or order == counts.order:
        return counts
    if order < 1:
        raise LmError(f"order {order} is not positive", "give an order >= 1")
    if order > counts.order:
        raise LmError(f"order {order} is larger than the counts' order {counts.order}",
                      f"count with lm-count -n {order} or train with -n {counts.order}")
    return Counts(vocab=counts.vocab, ngrams=counts.ngrams[:order], counts=counts.counts[:order],
                  tokens=counts.tokens, sentences=counts.sentences, provenance=counts.provenance)


def restrict_vocab(counts: Counts, words: Sequence[str]) -> Counts:
    """Closed vocabulary: words outside ``words`` become ``<unk>``; words of the list that never
    occurred get a unigram with count 0. Ids follow the list (after the three specials)."""
    new_vocab = list(SPECIALS)
    seen = set(SPECIALS)
    for w in words:
        if w not in seen:
            seen.add(w)
            new_vocab.append(w)
    new_id = {w: i for i, w in enumerate(new_vocab)}
    remap = np.array([new_id.get(w, UNK_ID) for w in counts.vocab], dtype=np.int32)
    V = len(new_vocab)
    ngrams = [np.arange(V, dtype=np.int32).reshape(V, 1)]
    cnts = [np.bincount(remap[counts.ngrams[0][:, 0]], weights=counts.counts[0], minlength=V).astype(np.int64)]
    for n in range(2, counts.order + 1):
        g = remap[counts.ngrams[n - 1]]
        c = counts.counts[n - 1]
        if g.shape[0]:
            perm = np.lexsort(g.T[::-1])
            g, c = g[perm], c[perm]
            start = np.ones(g.shape[0], bool)
            start[1:] = np.any(g[1:] != g[:-1], axis=1)
            first = np.flatnonzero(start)
            g, c = g[first], np.add.reduceat(c, first)
        ngrams.append(np.ascontiguousarray(g))
        cnts.append(c.astype(np.int64))
    prov = dict(counts.provenance)
    prov["closed_vocabulary"] = len(new_vocab)
    return Counts(vocab=new_vocab, ngrams=ngrams, counts=cnts, tokens=counts.tokens,
                  sentences=counts.sentences, provenance=prov)


def adjusted_counts(counts: Counts, index: Index) -> list[np.ndarray]:
    """Kneser-Ney adjusted counts a(g) per order (DESIGN.md): raw for order N and for n-grams that
    begin with <s>; otherwise the number of distinct words seen before g. The unigram <s> has 0."""
    N = counts.order
    out = []
    for n in range(1, N + 1):
        raw = counts.counts[n - 1].astype(np.int64)
        if n == N:
            a = raw.copy()
        else:
            a = np.bincount(index.suf[n + 1], minlength=raw.shape[0]).astype(np.int64)
            if n >= 2:
                bos = counts.ngrams[n - 1][:, 0] == BOS_ID
                a[bos] = raw[bos]
        if n == 1:
            a[BOS_ID] = 0
        out.append(a)
    return out


def count_of_counts(a: np.ndarray, kmax: int) -> np.ndarray:
    """n_k for k = 0..kmax (n_k = number of entries equal to k)."""
    return np.bincount(np.minimum(a, kmax + 1), minlength=kmax + 2)[: kmax + 1].astype(np.int64)


def mkn_discounts(a: np.ndarray) -> tuple[tuple[float, float, float], bool, list[int]]:
    """Modified-KN discounts (D1, D2, D3+) of one order from its adjusted counts.

    Returns (discounts, ok, [n1, n2, n3, n4]); ok is False when they are degenerate (some n_k = 0
    or a D_k outside [0, k]), and the caller falls back."""
    return mkn_discounts_of(count_of_counts(a, 4))


def mkn_discounts_of(nk: np.ndarray) -> tuple[tuple[float, float, float], bool, list[int]]:
    """``mkn_discounts`` from the counts of counts n_0..n_4 (or more) of the adjusted counts: they are
    sums, so a partitioned estimation adds them up over its partitions and calls this."""
    n1, n2, n3, n4 = (int(x) for x in nk[1:5])
    if n1 == 0 or n2 == 0 or n3 == 0:
        return FALLBACK_DISCOUNTS, False, [n1, n2, n3, n4]
    Y = n1 / (n1 + 2.0 * n2)
    D = (1 - 2 * Y * n2 / n1, 2 - 3 * Y * n3 / n2, 3 - 4 * Y * n4 / n3)
    ok = all(0.0 <= d <= k for k, d in zip((1, 2, 3), D))
    return (D if ok else FALLBACK_DISCOUNTS), ok, [n1, n2, n3, n4]


# ----------------------------------------------------------------------------------------------
# Assembly


@dataclass
class Order:
    alpha: np.ndarray  # float64 per n-gram
    gamma: np.ndarray | float  # per context row of the order below (float for unigrams)


def _prune_masks(counts: Counts, prune: Sequence[int] | None) -> list[np.ndarray | None]:
    N = counts.order
    if not prune:
        return [None] * N
    t = [int(x) for x in prune]
    check_prune(t)
    t = t + [t[-1]] * max(0, N - len(t))
    masks: list = [None]
    for n in range(2, N + 1):
        masks.append(counts.counts[n - 1] <= t[n - 1] if t[n - 1] > 0 else None)
    return masks


def log10_probs(p: np.ndarray, clip_one: bool = True) -> np.ndarray:
    with np.errstate(divide="ignore"):
        lp = np.log10(p)
    lp = np.where(p > 0, lp, LOG_ZERO)
    if clip_one:
        lp = np.minimum(lp, 0.0)
    return lp.astype(np.float32)


def assemble(counts: Counts, index: Index, orders: list[Order], form: str, method: str, info: dict,
              prune: Sequence[int] | None = None, base: np.ndarray | None = None,
              stupid_alpha: float = STUPID_ALPHA) -> NGramModel:
    """Turn per-order alpha/gamma into an NGramModel in the given form (see module docstring)."""
    N = counts.order
    V1 = counts.ngrams[0].shape[0]
    masks = _prune_masks(counts, prune)
    if base is None:
        base = np.full(V1, 1.0 / (V1 - 1))
        base[BOS_ID] = 0.0
    p1 = orders[0].alpha + float(orders[0].gamma) * base
    p1[BOS_ID] = 1.0
    probs = [p1]
    bows = []
    for n in range(2, N + 1):
        p, bow = order_probs(form, orders[n - 1], index.pre[n], counts.ngrams[n - 2].shape[0],
                             probs[n - 2][index.suf[n]], masks[n - 1], stupid_alpha)
        probs.append(p)
        bows.append(bow)
    ngrams, logprob, backoff = [], [], []
    for n in range(1, N + 1):
        keep = masks[n - 1]
        keep = None if keep is None else ~keep
        lp = log10_probs(probs[n - 1], clip_one=(form != "stupid"))
        if n < N:
            m = counts.ngrams[n - 1].shape[0]
            is_ctx = np.bincount(index.pre[n + 1], minlength=m) > 0
            if form == "stupid":
                bo = np.full(m, math.log10(stupid_alpha), np.float32)
            else:
                bo = np.where(is_ctx, log10_probs(bows[n - 1], clip_one=False), 0.0).astype(np.float32)
        else:
            bo = np.zeros(counts.ngrams[n - 1].shape[0], np.float32)
        g = counts.ngrams[n - 1]
        if keep is not None:
            g, lp, bo = g[keep], lp[keep], bo[keep]
        ngrams.append(np.ascontiguousarray(g, dtype=np.int32))
        logprob.append(lp)
        backoff.append(bo)
    info = dict(info)
    info["form"] = form
    if prune:
        info["prune"] = [int(x) for x in prune]
    prov = dict(counts.provenance)
    prov["tokens"] = int(counts.tokens)
    prov["sentences"] = int(counts.sentences)
    return NGramModel(vocab=list(counts.vocab), ngrams=ngrams, logprob=logprob, backoff=backoff, method=method,
                      info=info, provenance=prov, scores_only=(form == "stupid"))


def order_probs(form: str, o: Order, ctx: np.ndarray, m_ctx: int, lower: np.ndarray, pruned: np.ndarray | None,
                stupid_alpha: float = STUPID_ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities p (per n-gram of order n >= 2) and backoff weights (per context) of one order in
    the given form: ``ctx`` numbers each n-gram's context among ``m_ctx`` contexts, ``lower`` is
    p(w|h') of its suffix, ``pruned`` marks the n-grams removed by count cutoffs (None: none).
    Contexts are summed over in row order, so the n-grams of any set of whole contexts (a partition)
    give the same bits as the whole order."""
    gam = np.asarray(o.gamma, dtype=np.float64)
    if pruned is not None and pruned.any():
        gam = gam + np.bincount(ctx[pruned], weights=o.alpha[pruned], minlength=m_ctx)
    if form == "interpolated":
        bow = gam
        p = o.alpha + bow[ctx] * lower
        if pruned is not None:
            p = np.where(pruned, bow[ctx] * lower, p)
    elif form == "backoff":
        kept_lower = lower if pruned is None else np.where(pruned, 0.0, lower)
        denom = 1.0 - np.bincount(ctx, weights=kept_lower, minlength=m_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            bow = np.where(gam > 0, gam / np.maximum(denom, 1e-300), 0.0)
        p = o.alpha.copy() if pruned is None else np.where(pruned, bow[ctx] * lower, o.alpha)
    elif form == "stupid":
        bow = np.full(m_ctx, stupid_alpha)
        p = o.alpha.copy() if pruned is None else np.where(pruned, stupid_alpha * lower, o.alpha)
    else:
        raise ValueError(form)
    return p, bow


def raw_counts(counts: Counts, n: int) -> np.ndarray:
    c = counts.counts[n - 1].astype(np.int64)
    if n == 1:
        c = c.copy()
        c[BOS_ID] = 0  # <s> is never predicted
    return c


def context_sums(counts: Counts, index: Index, n: int, values: np.ndarray) -> np.ndarray:
    """sum of values over the n-grams of each context (order n >= 2), per row of order n-1."""
    return group_sums(index.pre[n], counts.ngrams[n - 2].shape[0], values)


def group_sums(ctx: np.ndarray, m_ctx: int, values: np.ndarray) -> np.ndarray:
    """sum of values per context, ``ctx`` numbering each n-gram's context among ``m_ctx`` (in row
    order: np.bincount adds in element order, which partitioned estimation relies on)."""
    return np.bincount(ctx, weights=values, minlength=m_ctx)


def check_nonempty(total: float) -> None:
    if total <= 0:
        raise LmError("the counts hold no words", "count a non-empty text")


def discounted_order(counts: Counts, index: Index, n: int, a: np.ndarray, D: np.ndarray) -> Order:
    """alpha = (a - d)/S(h), gamma = sum_x d(hx) / S(h) with d = min(D(a), a) (D indexed by a, capped)."""
    if n == 1:
        d = np.minimum(D[np.minimum(a, D.shape[0] - 1)], a.astype(np.float64))
        S = float(a.sum())
        check_nonempty(S)
        return Order(alpha=(a - d) / S, gamma=float(d.sum()) / S)
    return discounted_groups(index.pre[n], counts.ngrams[n - 2].shape[0], a, D)


def discounted_groups(ctx: np.ndarray, m_ctx: int, a: np.ndarray, D: np.ndarray) -> Order:
    """``discounted_order`` of an order n >= 2 given as contexts: ``ctx`` numbers each n-gram's
    context among ``m_ctx`` (the whole order, or the whole contexts of one partition)."""
    d = np.minimum(D[np.minimum(a, D.shape[0] - 1)], a.astype(np.float64))
    S = group_sums(ctx, m_ctx, a.astype(np.float64))
    safe = np.where(S > 0, S, 1.0)
    alpha = (a - d) / safe[ctx]
    gamma = np.where(S > 0, group_sums(ctx, m_ctx, d) / safe, 0.0)
    return Order(alpha=alpha, gamma=gamma)


def form_of(interpolate: bool | None, default: bool) -> str:
    return "interpolated" if (default if interpolate is None else interpolate) else "backoff"


def per_order(values, N: int, what: str) -> list:
    """Expand an option given per order (the last value repeats) to N entries."""
    if values is None:
        return [None] * N
    vals = list(values)
    if not vals:
        return [None] * N
    if len(vals) > N:
        raise LmError(f"{what} given for {len(vals)} orders, the model has {N}", f"give at most {N} values")
    return vals + [vals[-1]] * (N - len(vals))


def check_prune(t: list[int]) -> None:
    if any(x < 0 for x in t):
        raise LmError(f"--prune thresholds must be >= 0, got {' '.join(map(str, t))}", "e.g. --prune 0,0,1")
    if t[0] != 0:
        raise LmError("unigrams cannot be pruned", "the first --prune threshold must be 0, e.g. --prune 0,1,1")
    if any(b < a for a, b in zip(t, t[1:])):
        raise LmError(f"--prune thresholds must not decrease with the order, got {' '.join(map(str, t))}",
                      "e.g. --prune 0,0,1,1,1")
